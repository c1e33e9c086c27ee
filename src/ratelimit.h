/*
 * ratelimit.h — token buckets by key (pure; thread-safe).
 *
 * A bucket holds up to `rate` tokens and refills at `rate` per period; a
 * request takes one token or is refused with the time until the next one,
 * which is what Retry-After reports. Buckets are created on first use and
 * dropped when a sweep finds them full again (an idle key costs nothing
 * for long).
 */
#ifndef HERALD_RATELIMIT_H
#define HERALD_RATELIMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/map.h"

struct ratelimit {
	pthread_mutex_t lock;
	struct map buckets; /* key -> struct bucket */
	int64_t next_sweep_ms;
};

void ratelimit_init(struct ratelimit *rl);
void ratelimit_free(struct ratelimit *rl);

/* Takes a token from key's bucket (n bytes) allowing rate per period_ms
 * (rate 0: no limit, always true). On refusal returns false with the
 * milliseconds until a token is due in *retry_ms. now_ms: a monotonic
 * clock. */
bool ratelimit_take(struct ratelimit *rl, const void *key, size_t n, int64_t rate,
                    int64_t period_ms, int64_t now_ms, int64_t *retry_ms);

/* Seconds to announce in Retry-After for a wait of ms: rounded up, at
 * least 1. */
unsigned ratelimit_retry_after(int64_t ms);

#endif
