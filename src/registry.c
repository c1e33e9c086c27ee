/*
 * registry.c — channel and stream indexes (see registry.h).
 *
 * Removing a subscriber swaps the last one into its slot and fixes that
 * stream's sub_index, so closing any stream is O(channels), not O(subs).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "cursor.h"
#include "presence.h"
#include "registry.h"
#include "util/map.h"
#include "util/xmalloc.h"

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct map channel_map; /* key bytes -> struct registry_entry */
static struct map streams;  /* stream id -> struct stream */
static struct map sessions; /* session id -> struct session_streams */

struct session_streams {
	struct stream **v;
	size_t n, cap;
};

void registry_digest(const char *tenant, const char *org, const char *const *channels,
                     size_t n, char out[13])
{
	struct buf in = BUF_INIT;
	unsigned char h[CRYPTO_SHA256_LEN];
	cursor_digest_input(&in, tenant, org, channels, n);
	crypto_sha256(in.data, in.len, h);
	crypto_hex(h, CURSOR_DIGEST_LEN / 2, out);
	buf_free(&in);
}

void registry_init(void)
{
	map_init(&channel_map);
	map_init(&streams);
	map_init(&sessions);
}

static void entry_free(struct registry_entry *e)
{
	free(e->subs);
	free(e->key);
	free(e);
}

void registry_shutdown(void)
{
	void *v;
	for (size_t i = 0; map_next(&channel_map, &i, &v);)
		entry_free(v);
	map_free(&channel_map);
	map_free(&streams);
	for (size_t i = 0; map_next(&sessions, &i, &v);) {
		free(((struct session_streams *)v)->v);
		free(v);
	}
	map_free(&sessions);
}

void registry_lock(void)
{
	pthread_mutex_lock(&registry_mutex);
}

void registry_unlock(void)
{
	pthread_mutex_unlock(&registry_mutex);
}

static size_t make_key(char *out, const char *tenant, const char *org, const char *channel)
{
	size_t a = strlen(tenant) + 1, b = strlen(org) + 1, c = strlen(channel);
	if (out) {
		memcpy(out, tenant, a);
		memcpy(out + a, org, b);
		memcpy(out + a + b, channel, c + 1);
	}
	return a + b + c;
}

struct registry_entry *registry_find(const char *tenant, const char *org, const char *channel)
{
	char stack[512];
	size_t n = make_key(NULL, tenant, org, channel);
	char *key = n < sizeof(stack) ? stack : xmalloc(n + 1);
	make_key(key, tenant, org, channel);
	struct registry_entry *e = map_get(&channel_map, key, n);
	if (key != stack)
		free(key);
	return e;
}

struct registry_entry *registry_create(const char *tenant, const char *org,
                                       const char *channel, int64_t last_seq)
{
	struct registry_entry *e = xcalloc(1, sizeof(*e));
	e->keylen = make_key(NULL, tenant, org, channel);
	e->key = xmalloc(e->keylen + 1);
	make_key(e->key, tenant, org, channel);
	e->tenant = e->key;
	e->org = e->tenant + strlen(e->tenant) + 1;
	e->channel = e->org + strlen(e->org) + 1;
	e->last_seq = last_seq;

	registry_digest(tenant, org, &channel, 1, e->event_digest);

	map_put(&channel_map, e->key, e->keylen, e);
	return e;
}

void registry_track(struct stream *s)
{
	map_iput(&streams, s->id, s);
	struct session_streams *ss = map_iget(&sessions, (uint64_t)s->session_id);
	if (!ss) {
		ss = xcalloc(1, sizeof(*ss));
		map_iput(&sessions, (uint64_t)s->session_id, ss);
	}
	if (ss->n == ss->cap) {
		ss->cap = ss->cap ? ss->cap * 2 : 2;
		ss->v = xrealloc(ss->v, ss->cap * sizeof(*ss->v));
	}
	ss->v[ss->n++] = s;
}

static void untrack_session(struct stream *s)
{
	struct session_streams *ss = map_iget(&sessions, (uint64_t)s->session_id);
	for (size_t i = 0; ss && i < ss->n; i++) {
		if (ss->v[i] != s)
			continue;
		ss->v[i] = ss->v[--ss->n];
		if (ss->n == 0) {
			map_idel(&sessions, (uint64_t)s->session_id);
			free(ss->v);
			free(ss);
		}
		return;
	}
}

struct stream *const *registry_session_streams(int64_t session_id, size_t *n)
{
	struct session_streams *ss = map_iget(&sessions, (uint64_t)session_id);
	*n = ss ? ss->n : 0;
	return ss ? ss->v : NULL;
}

void registry_subscribe(struct stream *s, struct registry_entry *const *entries)
{
	for (size_t i = 0; i < s->nch; i++) {
		struct registry_entry *e = entries[i];
		if (e->nsubs == e->cap) {
			e->cap = e->cap ? e->cap * 2 : 4;
			e->subs = xrealloc(e->subs, e->cap * sizeof(*e->subs));
		}
		e->subs[e->nsubs] = (struct registry_sub){s, (unsigned)i};
		s->ch[i].entry = e;
		s->ch[i].sub_index = e->nsubs++;
		if (s->ch[i].presence)
			presence_joined(s, i);
	}
	s->registered = true;
}

void registry_remove(struct stream *s)
{
	if (!s->finished && map_idel(&streams, s->id))
		untrack_session(s);
	s->finished = true;
	if (!s->registered)
		return;
	s->registered = false;
	for (size_t i = 0; i < s->nch; i++) {
		struct registry_entry *e = s->ch[i].entry;
		size_t at = s->ch[i].sub_index;
		struct registry_sub last = e->subs[--e->nsubs];
		if (at != e->nsubs) {
			e->subs[at] = last;
			last.s->ch[last.ch].sub_index = at;
		}
		s->ch[i].entry = NULL;
		if (s->ch[i].presence)
			presence_left(s, i);
		if (e->nsubs == 0) {
			map_del(&channel_map, e->key, e->keylen);
			entry_free(e);
		}
	}
}

struct stream *registry_stream(uint64_t id)
{
	return map_iget(&streams, id);
}

size_t registry_stream_count(void)
{
	return streams.count;
}

void registry_each_stream(void (*fn)(struct stream *s, void *arg), void *arg)
{
	void *v;
	for (size_t i = 0; map_next(&streams, &i, &v);)
		fn(v, arg);
}

void registry_each_entry(void (*fn)(struct registry_entry *e, void *arg), void *arg)
{
	void *v;
	for (size_t i = 0; map_next(&channel_map, &i, &v);)
		fn(v, arg);
}
