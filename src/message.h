/*
 * message.h — an immutable, refcounted, already-encoded SSE frame.
 *
 * A published event is encoded once ("event:" and "data:" lines of its
 * envelope) and shared by every stream that delivers it; each stream only
 * prefixes its own "id:" line (its cursor differs per channel set). The
 * last message_unref frees it, from any thread.
 */
#ifndef HERALD_MESSAGE_H
#define HERALD_MESSAGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum message_kind {
	MESSAGE_EVENT,   /* a channel event: seq set, stream writes its cursor as id */
	MESSAGE_CONTROL, /* herald.* event: stream writes its current cursor as id */
	MESSAGE_COMMENT, /* heartbeat or retry: no id line */
};

struct message {
	atomic_uint refs;
	enum message_kind kind;
	bool closes;  /* the stream ends after writing this */
	int64_t seq;  /* MESSAGE_EVENT: the per-channel sequence number */
	int64_t received_ns; /* live events: monotonic time the hub received it */
	size_t len;
	char body[];  /* the frame bytes, ending with the blank line */
};

/* Event on one channel; event_id is its single-channel cursor. data is the
 * JSON payload text (dlen bytes) placed in the envelope unchanged.
 * Returns a new reference. */
struct message *message_new_event(const char *event_id, const char *channel,
                                  const char *type, const char *data, size_t dlen,
                                  const char *published_at, int64_t seq);
/* herald.* control event with a JSON data object. New reference. */
struct message *message_new_control(const char *type, const char *json, bool closes);
/* Raw comment or field bytes without an id (e.g. ": hb\n\n"). New reference. */
struct message *message_new_raw(const char *bytes, size_t n);

struct message *message_ref(struct message *m);
void message_unref(struct message *m);

#endif
