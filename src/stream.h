/*
 * stream.h — one SSE connection: its bound identity, channel positions,
 * queue of shared messages, and the suspend/resume handshake with the
 * HTTP layer.
 *
 * States: REGISTERING (created, waiting for the hub to subscribe it) ->
 * REPLAYING (catching up from the event log; live messages are held) ->
 * LIVE -> CLOSED (a closing control event queued, or the client left).
 * Exactly-once: every channel has a position, the last sequence number
 * queued; a message at or below it is a duplicate and dropped, one above
 * position + 1 reveals a gap and sends the stream back to REPLAYING.
 * Bounded: live events queued beyond queue_limit bytes (a client reading
 * too slowly) end the stream with herald.overflow, carrying the cursor of
 * what was written, so resuming loses nothing; a catch-up is read from
 * the log in steps of half the limit, the next when the queue has
 * drained below half.
 *
 * Owns its queue and the messages' references in it. Does not own the
 * HTTP connection (it only asks the stream_io to suspend or resume it) and
 * includes no libmicrohttpd or libpq header.
 */
#ifndef HERALD_STREAM_H
#define HERALD_STREAM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "compiler.h"
#include "message.h"
#include "util/buf.h"

struct registry_entry;

/* Provided by the HTTP layer. suspend is called from stream_read (inside
 * the server's own callback, under the stream lock); resume from any
 * thread, at most once per suspend. */
struct stream_io {
	void (*suspend)(void *conn);
	void (*resume)(void *conn);
};

enum stream_state { STREAM_REGISTERING, STREAM_REPLAYING, STREAM_LIVE, STREAM_CLOSED };

/* Why a stream ended; STREAM_END_CLIENT unless herald ended it. */
enum stream_end {
	STREAM_END_CLIENT,    /* the client went away */
	STREAM_END_SHUTDOWN,  /* node draining */
	STREAM_END_DATABASE,  /* the log could not be read to catch up */
	STREAM_END_RETENTION, /* events it still needed were trimmed */
	STREAM_END_REVOKED,   /* session revoked, deleted or no longer resolving */
	STREAM_END_EXPIRED,   /* session expires_at passed */
	STREAM_END_FORBIDDEN, /* the policy no longer allows one of its channels */
	STREAM_END_OVERFLOW,  /* the client read too slowly (queue_limit) */
};
const char *stream_end_name(enum stream_end e);

struct stream_channel {
	char *name;
	int64_t queued;   /* last seq queued (dedupe and gap detection) */
	int64_t sent;     /* last seq written to the client (its cursor) */
	struct registry_entry *entry; /* registry lock */
	size_t sub_index;             /* registry lock: index in entry->subs */
	bool presence;                /* a presence channel: the stream is a member */
	bool presence_visible;        /* registry lock: may see herald.presence */
};

struct stream_item {
	struct message *msg;
	unsigned ch; /* channel index, for MESSAGE_EVENT */
};

struct stream_queue {
	struct stream_item *items;
	size_t head, len, cap;
};

struct stream {
	pthread_mutex_t lock;
	atomic_uint refs;
	uint64_t id;
	const struct stream_io *io;
	void *conn;

	/* identity and subscription: immutable after stream_new (token_hash is
	 * filled by the creator before the stream is shared) */
	unsigned char token_hash[32]; /* SHA-256 of the session token, for re-checks */
	bool prove;                   /* opened with a ticket: cursors carry a proof */
	unsigned char ticket_hash[32], proof_key[32];
	int64_t session_id;
	char *user_id, *tenant_id, *org_id;
	char epoch[9], digest[13];
	size_t nch;
	struct stream_channel *ch; /* sorted by name */
	size_t queue_limit;        /* stream_queue_bytes; set before the stream is shared */

	/* stream lock */
	enum stream_state state;
	struct stream_queue queue, held;
	size_t queued_bytes, held_bytes;
	bool replay_more;        /* the catch-up stopped at the limit: more to read */
	struct buf out;  /* rendered bytes of the item being written */
	size_t out_off;
	bool out_closes;
	bool out_event;          /* the item being written is a channel event */
	int64_t out_received_ns; /* when the hub received it (0 = replayed) */
	bool suspended, ended, gone;
	enum stream_end end;     /* the first reason herald ended it */

	/* registry lock */
	bool registered, finished;
	int64_t expires_ms; /* session expiry, wall clock; re-checks move it */
};

enum stream_deliver_result {
	STREAM_DELIVER_NONE,
	STREAM_DELIVER_WAKE,     /* caller must stream_resume() after unlocking */
	STREAM_DELIVER_CATCH_UP, /* gap seen: caller must start a replay */
};

#define STREAM_READ_END   ((ssize_t)-1)
#define STREAM_READ_ERROR ((ssize_t)-2)

/* channels: nch distinct, valid names (copied; sorted here). start: the
 * position per channel in the same order as the sorted names — use
 * stream_sort_channels() first so both agree. Returns a new stream with
 * one reference, in REGISTERING. */
struct stream *stream_new(uint64_t id, const struct stream_io *io, void *conn,
                          int64_t session_id, const char *user_id,
                          const char *tenant_id, const char *org_id,
                          const char *epoch, const char *digest,
                          char *const *sorted_channels, const int64_t *start, size_t nch);
struct stream *stream_ref(struct stream *s);
void stream_unref(struct stream *s);

/* Sorts names (byte order) in place; the order cursors use. */
void stream_sort_channels(char **names, size_t n);

/* Queues a message without an id check (herald.open, herald.reset,
 * heartbeats). Dropped once CLOSED. */
enum stream_deliver_result stream_push(struct stream *s, struct message *m);
/* Offers a live channel event for channel index ch (registry lock held by
 * the caller; takes its own reference on m when it keeps it). */
enum stream_deliver_result stream_deliver(struct stream *s, unsigned ch, struct message *m);
/* The hub subscribed the stream: LIVE, or REPLAYING when replay is true. */
void stream_registered(struct stream *s, bool replay);
/* Positions to replay from (copy of ch[i].queued), under the lock. */
void stream_positions(struct stream *s, int64_t *out);
/* A catch-up step: items (n references, taken over) were read from the log
 * after the positions and are queued with dedupe. When more is true the
 * log has more: the stream stays REPLAYING until stream_replay_due() asks
 * for the next step. Otherwise the held live messages follow and the
 * stream goes LIVE — or, if events are missing (trimmed by retention), it
 * ends so that the client's reconnect gets herald.reset. */
void stream_replay_done(struct stream *s, struct stream_item *items, size_t n, bool more);
/* After a read: true (once) when the catch-up should read its next step,
 * the queue having drained below half the limit. */
bool stream_replay_due(struct stream *s);
/* Ends the stream: m (a closing control message; the stream takes its own
 * reference) is queued after what is already queued, once; m NULL means
 * the client is gone: everything is dropped and the connection is ended
 * with an error, even after a closing message was queued. */
enum stream_deliver_result stream_close(struct stream *s, struct message *m,
                                        enum stream_end why);
/* Resumes the connection if the last call returned STREAM_DELIVER_WAKE. */
void stream_resume(struct stream *s);

/* The reader: copies up to max bytes. Returns >0 bytes, 0 after asking the
 * io to suspend (nothing queued), STREAM_READ_END after a closing event,
 * STREAM_READ_ERROR when the client is gone. */
ssize_t stream_read(struct stream *s, char *buf, size_t max);

/* Appends the stream's current cursor (positions written so far). */
void stream_cursor(struct stream *s, struct buf *b);

#endif
