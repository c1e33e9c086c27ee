/*
 * stream.c — one SSE connection's state machine and queue (see stream.h).
 *
 * Lock order: registry lock, then stream lock. The stream lock is never
 * held while calling into another module except the io->suspend callback,
 * which libmicrohttpd allows from inside its own content reader.
 */
#include <stdlib.h>
#include <string.h>

#include "cursor.h"
#include "metrics.h"
#include "stream.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

static void queue_push(struct stream_queue *q, struct message *m, unsigned ch)
{
	if (q->len == q->cap) {
		size_t ncap = q->cap ? q->cap * 2 : 8;
		struct stream_item *n = xmalloc(ncap * sizeof(*n));
		for (size_t i = 0; i < q->len; i++)
			n[i] = q->items[(q->head + i) % q->cap];
		free(q->items);
		q->items = n;
		q->cap = ncap;
		q->head = 0;
	}
	q->items[(q->head + q->len) % q->cap] = (struct stream_item){m, ch};
	q->len++;
}

static bool queue_pop(struct stream_queue *q, struct stream_item *out)
{
	if (q->len == 0)
		return false;
	*out = q->items[q->head];
	q->head = (q->head + 1) % q->cap;
	q->len--;
	return true;
}

static void queue_clear(struct stream_queue *q)
{
	struct stream_item it;
	while (queue_pop(q, &it))
		message_unref(it.msg);
}

const char *stream_end_name(enum stream_end e)
{
	switch (e) {
	case STREAM_END_CLIENT: return "client";
	case STREAM_END_SHUTDOWN: return "shutdown";
	case STREAM_END_DATABASE: return "database";
	case STREAM_END_RETENTION: return "retention";
	case STREAM_END_REVOKED: return "revoked";
	case STREAM_END_EXPIRED: return "expired";
	case STREAM_END_FORBIDDEN: return "forbidden";
	case STREAM_END_OVERFLOW: return "overflow";
	}
	return "client";
}

/* Lock held: the first reason herald gives is the one reported. */
static void set_end_locked(struct stream *s, enum stream_end why)
{
	if (s->end == STREAM_END_CLIENT)
		s->end = why;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void stream_sort_channels(char **names, size_t n)
{
	if (n < 2)
		return; /* names may be NULL, which qsort must not see */
	qsort(names, n, sizeof(*names), compare_names);
}

struct stream *stream_new(uint64_t id, const struct stream_io *io, void *conn,
                          int64_t session_id, const char *user_id,
                          const char *tenant_id, const char *org_id,
                          const char *epoch, const char *digest,
                          char *const *sorted_channels, const int64_t *start, size_t nch)
{
	struct stream *s = xcalloc(1, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	atomic_init(&s->refs, 1);
	s->id = id;
	s->io = io;
	s->conn = conn;
	s->session_id = session_id;
	s->user_id = xstrdup(user_id);
	s->tenant_id = xstrdup(tenant_id);
	s->org_id = xstrdup(org_id);
	memcpy(s->epoch, epoch, sizeof(s->epoch) - 1);
	memcpy(s->digest, digest, sizeof(s->digest) - 1);
	s->nch = nch;
	s->ch = xcalloc(nch, sizeof(*s->ch));
	for (size_t i = 0; i < nch; i++) {
		s->ch[i].name = xstrdup(sorted_channels[i]);
		s->ch[i].queued = s->ch[i].sent = start[i];
	}
	s->state = STREAM_REGISTERING;
	return s;
}

struct stream *stream_ref(struct stream *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void stream_unref(struct stream *s)
{
	if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	queue_clear(&s->queue);
	queue_clear(&s->held);
	free(s->queue.items);
	free(s->held.items);
	buf_free(&s->out);
	for (size_t i = 0; i < s->nch; i++)
		free(s->ch[i].name);
	free(s->ch);
	free(s->user_id);
	free(s->tenant_id);
	free(s->org_id);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Called with the lock held after something was queued. */
static enum stream_deliver_result wake_locked(struct stream *s)
{
	if (!s->suspended)
		return STREAM_DELIVER_NONE;
	s->suspended = false;
	return STREAM_DELIVER_WAKE;
}

/* Lock held. The client cannot keep up: everything not yet written is
 * dropped and herald.overflow ends the stream. Its id is the cursor of
 * what was written, so a resume gets exactly the rest (SPEC §3). */
static enum stream_deliver_result overflow_locked(struct stream *s)
{
	struct message *m = message_new_control(
		"herald.overflow", "{\"reason\":\"the client reads too slowly; resume with this id\"}",
		true);
	set_end_locked(s, STREAM_END_OVERFLOW);
	s->state = STREAM_CLOSED;
	queue_clear(&s->held);
	queue_clear(&s->queue);
	s->held_bytes = 0;
	queue_push(&s->queue, m, 0);
	s->queued_bytes = m->len;
	return wake_locked(s);
}

/* The live backlog: while a catch-up runs, the queue holds paced log
 * steps (up to the limit by design) and only the held live events count. */
static bool over_limit_locked(const struct stream *s)
{
	return s->queue_limit &&
	       ((s->state == STREAM_LIVE && s->queued_bytes > s->queue_limit) ||
	        s->held_bytes > s->queue_limit);
}

static void hold_locked(struct stream *s, unsigned ch, struct message *m)
{
	queue_push(&s->held, message_ref(m), ch);
	s->held_bytes += m->len;
}

enum stream_deliver_result stream_push(struct stream *s, struct message *m)
{
	enum stream_deliver_result r = STREAM_DELIVER_NONE;
	pthread_mutex_lock(&s->lock);
	if (s->state != STREAM_CLOSED) {
		queue_push(&s->queue, message_ref(m), 0);
		s->queued_bytes += m->len;
		r = wake_locked(s);
		/* Heartbeats and presence events fill a stalled client too. */
		if (over_limit_locked(s) && overflow_locked(s) == STREAM_DELIVER_WAKE)
			r = STREAM_DELIVER_WAKE;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* Queues an event if it is the next one on its channel. */
static bool accept_event_locked(struct stream *s, unsigned ch, struct message *m)
{
	if (m->seq <= s->ch[ch].queued)
		return false; /* duplicate */
	queue_push(&s->queue, message_ref(m), ch);
	s->queued_bytes += m->len;
	s->ch[ch].queued = m->seq;
	return true;
}

enum stream_deliver_result stream_deliver(struct stream *s, unsigned ch, struct message *m)
{
	enum stream_deliver_result r = STREAM_DELIVER_NONE;
	pthread_mutex_lock(&s->lock);
	switch (s->state) {
	case STREAM_REGISTERING:
	case STREAM_REPLAYING:
		hold_locked(s, ch, m);
		break;
	case STREAM_LIVE:
		if (m->seq > s->ch[ch].queued + 1) {
			/* Missed something: hold this one and catch up from the log. */
			s->state = STREAM_REPLAYING;
			hold_locked(s, ch, m);
			r = STREAM_DELIVER_CATCH_UP;
		} else if (accept_event_locked(s, ch, m)) {
			r = wake_locked(s);
		}
		break;
	case STREAM_CLOSED:
		break;
	}
	if (s->state != STREAM_CLOSED && over_limit_locked(s) &&
	    overflow_locked(s) == STREAM_DELIVER_WAKE)
		r = STREAM_DELIVER_WAKE; /* a catch-up asked for is moot now */
	pthread_mutex_unlock(&s->lock);
	return r;
}

void stream_registered(struct stream *s, bool replay)
{
	pthread_mutex_lock(&s->lock);
	if (s->state == STREAM_REGISTERING)
		s->state = replay ? STREAM_REPLAYING : STREAM_LIVE;
	pthread_mutex_unlock(&s->lock);
	/* Messages held while registering are contiguous after the positions
	 * unless a replay is pending, which will flush them. */
	if (!replay)
		stream_replay_done(s, NULL, 0, false);
}

bool stream_replay_due(struct stream *s)
{
	pthread_mutex_lock(&s->lock);
	bool due = s->replay_more && s->state == STREAM_REPLAYING &&
	           s->queued_bytes <= s->queue_limit / 2;
	if (due)
		s->replay_more = false;
	pthread_mutex_unlock(&s->lock);
	return due;
}

void stream_positions(struct stream *s, int64_t *out)
{
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nch; i++)
		out[i] = s->ch[i].queued;
	pthread_mutex_unlock(&s->lock);
}

/*
 * Queues replayed, then held, events. Per-channel sequences are gap-free,
 * so a hole here means retention deleted events this stream never got:
 * the stream ends as if the client had left, the client reconnects with
 * its cursor, and the open path answers herald.reset (the cursor is now
 * below the trimmed mark). Never a silent skip.
 */
void stream_replay_done(struct stream *s, struct stream_item *items, size_t n, bool more)
{
	enum stream_deliver_result r = STREAM_DELIVER_NONE;
	bool gap = false;

	pthread_mutex_lock(&s->lock);
	if (s->state != STREAM_CLOSED) {
		for (size_t i = 0; i < n && !gap; i++) {
			gap = items[i].msg->seq > s->ch[items[i].ch].queued + 1;
			if (!gap)
				accept_event_locked(s, items[i].ch, items[i].msg);
		}
		struct stream_item it;
		while (!gap && !more && queue_pop(&s->held, &it)) {
			s->held_bytes -= it.msg->len;
			gap = it.msg->seq > s->ch[it.ch].queued + 1;
			if (!gap)
				accept_event_locked(s, it.ch, it.msg);
			message_unref(it.msg);
		}
		if (gap) {
			s->state = STREAM_CLOSED;
			s->gone = true;
			set_end_locked(s, STREAM_END_RETENTION);
			queue_clear(&s->held);
			queue_clear(&s->queue);
			s->queued_bytes = 0;
			s->held_bytes = 0;
		} else if (more) {
			s->replay_more = true;
		} else {
			s->state = STREAM_LIVE;
		}
		r = wake_locked(s);
	}
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < n; i++)
		message_unref(items[i].msg);
	if (r == STREAM_DELIVER_WAKE)
		stream_resume(s);
}

enum stream_deliver_result stream_close(struct stream *s, struct message *m,
                                        enum stream_end why)
{
	enum stream_deliver_result r = STREAM_DELIVER_NONE;
	pthread_mutex_lock(&s->lock);
	if ((m && s->state != STREAM_CLOSED) || (!m && !s->gone))
		set_end_locked(s, why);
	if (m && s->state != STREAM_CLOSED) {
		s->state = STREAM_CLOSED;
		queue_clear(&s->held);
		s->held_bytes = 0;
		queue_push(&s->queue, message_ref(m), 0);
		s->queued_bytes += m->len;
		r = wake_locked(s);
	} else if (!m && !s->gone) {
		/* Also ends a stream whose closing event is still queued. */
		s->state = STREAM_CLOSED;
		s->gone = true;
		queue_clear(&s->held);
		queue_clear(&s->queue);
		s->queued_bytes = 0;
		s->held_bytes = 0;
		r = wake_locked(s);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

void stream_resume(struct stream *s)
{
	s->io->resume(s->conn);
}

static void cursor_locked(struct stream *s, struct buf *b)
{
	int64_t seq[CURSOR_MAX_CHANNELS];
	size_t start = b->len;
	for (size_t i = 0; i < s->nch; i++)
		seq[i] = s->ch[i].sent;
	cursor_format(b, s->epoch, s->digest, seq, s->nch);
	if (s->prove) {
		char proof[CURSOR_PROOF_LEN + 1];
		cursor_prove(s->proof_key, s->ticket_hash, b->data + start, b->len - start, proof);
		buf_append_char(b, '-');
		buf_append_str(b, proof);
	}
}

void stream_cursor(struct stream *s, struct buf *b)
{
	pthread_mutex_lock(&s->lock);
	cursor_locked(s, b);
	pthread_mutex_unlock(&s->lock);
}

/* Renders the next queued item into s->out; false when the queue is empty. */
static bool render_next_locked(struct stream *s)
{
	struct stream_item it;
	if (!queue_pop(&s->queue, &it))
		return false;
	struct message *m = it.msg;
	s->queued_bytes -= m->len;
	buf_reset(&s->out);
	s->out_off = 0;
	if (m->kind != MESSAGE_COMMENT) {
		if (m->kind == MESSAGE_EVENT)
			s->ch[it.ch].sent = m->seq;
		buf_append_str(&s->out, "id: ");
		cursor_locked(s, &s->out);
		buf_append_char(&s->out, '\n');
	}
	buf_append(&s->out, m->body, m->len);
	s->out_closes = m->closes;
	s->out_event = m->kind == MESSAGE_EVENT;
	s->out_received_ns = m->received_ns;
	message_unref(m);
	return true;
}

ssize_t stream_read(struct stream *s, char *buf, size_t max)
{
	size_t n = 0;
	ssize_t r;

	pthread_mutex_lock(&s->lock);
	if (s->gone) {
		r = STREAM_READ_ERROR;
		goto out;
	}
	while (n < max && !s->ended) {
		if (s->out_off == s->out.len) {
			if (s->out_closes) {
				s->ended = true;
				break;
			}
			if (!render_next_locked(s))
				break;
		}
		size_t k = s->out.len - s->out_off;
		if (k > max - n)
			k = max - n;
		memcpy(buf + n, s->out.data + s->out_off, k);
		s->out_off += k;
		n += k;
		if (s->out_off == s->out.len && s->out_event) {
			s->out_event = false;
			metrics_inc(METRIC_EVENTS_DELIVERED);
			if (s->out_received_ns)
				metrics_observe(METRIC_FANOUT_SECONDS,
				                (double)(time_mono_ns() - s->out_received_ns) / 1e9);
		}
	}
	if (n == 0 && s->out_off == s->out.len && s->out_closes)
		s->ended = true;
	if (n > 0) {
		r = (ssize_t)n;
	} else if (s->ended) {
		r = STREAM_READ_END;
	} else {
		s->suspended = true;
		s->io->suspend(s->conn);
		r = 0;
	}
out:
	pthread_mutex_unlock(&s->lock);
	return r;
}
