/*
 * message.c — building and sharing encoded SSE frames (see message.h).
 *
 * The envelope is assembled as text: the payload is JSON already validated
 * (json-c on publish, jsonb in PostgreSQL), so it is copied, not re-encoded.
 */
#include <stdlib.h>
#include <string.h>

#include "message.h"
#include "sse.h"
#include "util/buf.h"
#include "util/xmalloc.h"

static struct message *message_from_buf(enum message_kind kind, const struct buf *b)
{
	struct message *m = xmalloc(sizeof(*m) + b->len);
	atomic_init(&m->refs, 1);
	m->kind = kind;
	m->closes = false;
	m->seq = 0;
	m->received_ns = 0;
	m->len = b->len;
	memcpy(m->body, b->data, b->len);
	return m;
}

struct message *message_new_event(const char *event_id, const char *channel,
                                  const char *type, const char *data, size_t dlen,
                                  const char *published_at, int64_t seq)
{
	struct buf env = BUF_INIT, frame = BUF_INIT;

	buf_append_str(&env, "{\"id\":");
	buf_append_json_str(&env, event_id, strlen(event_id));
	buf_append_str(&env, ",\"channel\":");
	buf_append_json_str(&env, channel, strlen(channel));
	buf_append_str(&env, ",\"type\":");
	buf_append_json_str(&env, type, strlen(type));
	buf_append_str(&env, ",\"data\":");
	buf_append(&env, data, dlen);
	buf_append_str(&env, ",\"published_at\":");
	buf_append_json_str(&env, published_at, strlen(published_at));
	buf_append_char(&env, '}');

	/* type passed the grammar check, so it cannot hold a line break; if it
	 * somehow did, the event goes out untyped rather than corrupting frames. */
	if (!sse_append_event(&frame, type, env.data, env.len) &&
	    !sse_append_event(&frame, NULL, env.data, env.len))
		abort();
	struct message *m = message_from_buf(MESSAGE_EVENT, &frame);
	m->seq = seq;
	buf_free(&env);
	buf_free(&frame);
	return m;
}

struct message *message_new_control(const char *type, const char *json, bool closes)
{
	struct buf frame = BUF_INIT;
	if (!sse_append_event(&frame, type, json, strlen(json)))
		abort(); /* control types are compile-time constants */
	struct message *m = message_from_buf(MESSAGE_CONTROL, &frame);
	m->closes = closes;
	buf_free(&frame);
	return m;
}

struct message *message_new_raw(const char *bytes, size_t n)
{
	struct buf b = {(char *)bytes, n, n};
	return message_from_buf(MESSAGE_COMMENT, &b);
}

struct message *message_ref(struct message *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return m;
}

void message_unref(struct message *m)
{
	if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		free(m);
}
