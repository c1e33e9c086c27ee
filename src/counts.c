/*
 * counts.c — counters by key (see counts.h).
 */
#include <stdlib.h>
#include <string.h>

#include "counts.h"
#include "util/xmalloc.h"

void counts_init(struct counts *c, bool written)
{
	pthread_mutex_init(&c->lock, NULL);
	map_init(&c->map);
	c->ndirty = 0;
	c->written = written;
}

static void entry_free(struct count_entry *e)
{
	free(e->key);
	free(e);
}

void counts_free(struct counts *c)
{
	void *v;
	for (size_t i = 0; map_next(&c->map, &i, &v);)
		entry_free(v);
	map_free(&c->map);
	pthread_mutex_destroy(&c->lock);
}

static struct count_entry *new_entry(const void *key, size_t n, int64_t count)
{
	struct count_entry *e = xcalloc(1, sizeof(*e));
	e->key = xmalloc(n ? n : 1);
	memcpy(e->key, key, n);
	e->keylen = n;
	e->count = count;
	return e;
}

/* Lock held. */
static struct count_entry *entry(struct counts *c, const void *key, size_t n)
{
	struct count_entry *e = map_get(&c->map, key, n);
	if (!e) {
		e = new_entry(key, n, 0);
		map_put(&c->map, e->key, n, e);
	}
	return e;
}

/* Lock held. e changed: remembered for the next batch, or forgotten at 0
 * when nothing is written. */
static void mark(struct counts *c, struct count_entry *e)
{
	if (!c->written) {
		if (e->count == 0) {
			map_del(&c->map, e->key, e->keylen);
			entry_free(e);
		}
	} else if (!e->dirty) {
		e->dirty = true;
		c->ndirty++;
	}
}

void counts_add(struct counts *c, const void *key, size_t n, int64_t delta)
{
	pthread_mutex_lock(&c->lock);
	struct count_entry *e = entry(c, key, n);
	e->count += delta;
	mark(c, e);
	pthread_mutex_unlock(&c->lock);
}

bool counts_reserve(struct counts *c, const void *key, size_t n, int64_t limit)
{
	pthread_mutex_lock(&c->lock);
	struct count_entry *e = map_get(&c->map, key, n);
	bool ok = limit < 0 || (e ? e->count : 0) + 1 <= limit;
	if (ok) {
		e = e ? e : entry(c, key, n);
		e->count++;
		mark(c, e);
	}
	pthread_mutex_unlock(&c->lock);
	return ok;
}

int64_t counts_get(struct counts *c, const void *key, size_t n)
{
	pthread_mutex_lock(&c->lock);
	struct count_entry *e = map_get(&c->map, key, n);
	int64_t v = e ? e->count : 0;
	pthread_mutex_unlock(&c->lock);
	return v;
}

bool counts_changed(struct counts *c)
{
	pthread_mutex_lock(&c->lock);
	bool changed = c->ndirty > 0;
	pthread_mutex_unlock(&c->lock);
	return changed;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct count_entry *x = *(struct count_entry *const *)a;
	const struct count_entry *y = *(struct count_entry *const *)b;
	size_t n = x->keylen < y->keylen ? x->keylen : y->keylen;
	int r = memcmp(x->key, y->key, n);
	return r ? r : (x->keylen > y->keylen) - (x->keylen < y->keylen);
}

struct count_batch counts_take(struct counts *c, bool all)
{
	void *v;
	pthread_mutex_lock(&c->lock);
	struct count_batch b = {xmalloc((c->map.count + 1) * sizeof(*b.e)), 0};
	for (size_t i = 0; map_next(&c->map, &i, &v);) {
		struct count_entry *e = v;
		if (!e->dirty && !all)
			continue;
		b.e[b.n++] = new_entry(e->key, e->keylen, e->count);
		e->dirty = false;
		if (e->count <= 0) {
			map_del(&c->map, e->key, e->keylen);
			entry_free(e);
		}
	}
	c->ndirty = 0;
	pthread_mutex_unlock(&c->lock);
	qsort(b.e, b.n, sizeof(*b.e), cmp_entry);
	return b;
}

void counts_put_back(struct counts *c, const struct count_batch *b)
{
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < b->n; i++)
		mark(c, entry(c, b->e[i]->key, b->e[i]->keylen));
	pthread_mutex_unlock(&c->lock);
}

void count_batch_free(struct count_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		entry_free(b->e[i]);
	free(b->e);
	b->e = NULL;
	b->n = 0;
}

size_t count_key_parts(const struct count_entry *e, const char **parts, size_t max)
{
	size_t n = 0;
	for (size_t at = 0; at < e->keylen && n < max; n++) {
		parts[n] = e->key + at;
		at += strlen(e->key + at) + 1;
	}
	return n;
}
