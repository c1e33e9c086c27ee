/*
 * ratelimit.c — token buckets by key (see ratelimit.h).
 *
 * A bucket counts in units such that a token is period_ms units and a
 * millisecond refills rate units: any rate per any period refills
 * exactly, with nothing rounded away between calls.
 */
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"
#include "util/xmalloc.h"

struct bucket {
	char *key;
	size_t keylen;
	int64_t units;  /* tokens × period_ms */
	int64_t at_ms;  /* when units was last brought up to date */
	int64_t rate, period_ms;
};

void ratelimit_init(struct ratelimit *rl)
{
	pthread_mutex_init(&rl->lock, NULL);
	map_init(&rl->buckets);
	rl->next_sweep_ms = 0;
}

static void bucket_free(struct bucket *b)
{
	free(b->key);
	free(b);
}

void ratelimit_free(struct ratelimit *rl)
{
	void *v;
	for (size_t i = 0; map_next(&rl->buckets, &i, &v);)
		bucket_free(v);
	map_free(&rl->buckets);
	pthread_mutex_destroy(&rl->lock);
}

static void refill(struct bucket *b, int64_t now_ms)
{
	int64_t full = b->rate * b->period_ms;
	if (now_ms > b->at_ms) {
		/* A whole period refills any bucket, so longer idle times need
		 * not be multiplied (nor overflow). */
		int64_t elapsed = now_ms - b->at_ms < b->period_ms ? now_ms - b->at_ms : b->period_ms;
		int64_t gained = elapsed * b->rate;
		b->units = gained >= full - b->units ? full : b->units + gained;
		b->at_ms = now_ms;
	}
}

/* Drops buckets that are full again: they behave as new ones would. */
static void sweep(struct ratelimit *rl, int64_t now_ms)
{
	void *v;
	for (size_t i = 0; map_next(&rl->buckets, &i, &v);) {
		struct bucket *b = v;
		refill(b, now_ms);
		if (b->units == b->rate * b->period_ms) {
			map_del(&rl->buckets, b->key, b->keylen);
			bucket_free(b);
		}
	}
}

bool ratelimit_take(struct ratelimit *rl, const void *key, size_t n, int64_t rate,
                    int64_t period_ms, int64_t now_ms, int64_t *retry_ms)
{
	if (rate <= 0)
		return true;
	pthread_mutex_lock(&rl->lock);
	if (now_ms >= rl->next_sweep_ms) {
		sweep(rl, now_ms);
		rl->next_sweep_ms = now_ms + 60000;
	}
	struct bucket *b = map_get(&rl->buckets, key, n);
	if (!b) {
		b = xcalloc(1, sizeof(*b));
		b->key = xmalloc(n ? n : 1);
		memcpy(b->key, key, n);
		b->keylen = n;
		b->units = rate * period_ms;
		b->at_ms = now_ms;
		b->rate = rate;
		b->period_ms = period_ms;
		map_put(&rl->buckets, b->key, n, b);
	}
	if (b->rate != rate || b->period_ms != period_ms) {
		/* The limit changed (a reload, a herald.limits row): keep the
		 * tokens, capped at the new burst. */
		b->rate = rate;
		b->period_ms = period_ms;
		if (b->units > rate * period_ms)
			b->units = rate * period_ms;
	}
	refill(b, now_ms);
	bool ok = b->units >= period_ms;
	if (ok)
		b->units -= period_ms;
	else
		*retry_ms = (period_ms - b->units + rate - 1) / rate;
	pthread_mutex_unlock(&rl->lock);
	return ok;
}

unsigned ratelimit_retry_after(int64_t ms)
{
	int64_t s = (ms + 999) / 1000;
	return s < 1 ? 1 : (unsigned)s;
}
