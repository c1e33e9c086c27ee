/*
 * replay.h — resuming from a cursor and catching a stream up from the
 * event log.
 *
 * The guarantee (SPEC §3): a stream resumed from a cursor receives exactly
 * the events after it, in per-channel order, with no gap and no duplicate.
 * How it is kept:
 *   1. At open, the cursor is checked against the channel heads read in
 *      the session query: wrong epoch, channel set or shape, a position
 *      beyond the head (unknown) or below the trimmed mark (retention)
 *      gives herald.reset and the stream starts at the heads.
 *   2. The hub subscribes the stream; from then on live events are held
 *      while the stream is behind the hub's position on any channel.
 *   3. A database worker reads every event after the stream's positions
 *      (in pages) and hands them to the stream, which queues them and then
 *      the held ones, dropping anything at or below its position.
 */
#ifndef HERALD_REPLAY_H
#define HERALD_REPLAY_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include "message.h"
#include "stream.h"

enum replay_plan_result {
	REPLAY_FROM_HEAD,      /* no cursor given */
	REPLAY_FROM_CURSOR,
	REPLAY_RESET_MALFORMED,
	REPLAY_RESET_UNKNOWN,  /* other database, channel set, or a future position */
	REPLAY_RESET_TRIMMED,  /* events after it were deleted by retention */
};

/* Decides where a stream starts; fills start[n] (sorted channel order). */
enum replay_plan_result replay_plan(const char *cursor, const char *epoch, const char *digest,
                                    const int64_t *heads, const int64_t *trimmed,
                                    size_t n, int64_t *start);
const char *replay_plan_reason(enum replay_plan_result r);

/* The shared frame of one logged event; digest is the channel's event
 * digest. Returns a new reference. */
struct message *replay_event_message(const char *epoch, const char *digest,
                                     const char *channel, int64_t seq, const char *type,
                                     const char *data, size_t dlen, const char *published_at);

/* Starts an asynchronous catch-up of s from its positions (takes a
 * reference for the job). */
void replay_start(struct stream *s);

/* SQL fragment selecting an event's columns as the hub and replay read
 * them: seq, type, data text, published_at text. */
#define REPLAY_EVENT_COLUMNS \
	"e.seq, e.type, e.data::text, " \
	"to_char(e.published_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

#endif
