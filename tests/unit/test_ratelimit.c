/*
 * test_ratelimit.c — token buckets: the burst, the refill rate, exact
 * Retry-After values, independent keys, no limit at 0, limit changes and
 * the sweep of idle buckets.
 */
#include <string.h>

#include "ratelimit.h"
#include "tap.h"

#define K(s) s, strlen(s)

static int take(struct ratelimit *rl, const char *key, int64_t rate, int64_t period, int64_t now,
                int64_t *retry)
{
	return ratelimit_take(rl, K(key), rate, period, now, retry);
}

int main(void)
{
	struct ratelimit rl;
	int64_t retry = -1;
	ratelimit_init(&rl);

	int ok_count = 0;
	for (int i = 0; i < 5; i++)
		ok_count += take(&rl, "a", 5, 1000, 1000, &retry);
	is_int(ok_count, 5, "a burst of the rate passes");
	ok(!take(&rl, "a", 5, 1000, 1000, &retry), "the next one is refused");
	is_int(retry, 200, "5 per second: the next token in 200 ms");
	ok(!take(&rl, "a", 5, 1000, 1150, &retry), "still refused 150 ms later");
	is_int(retry, 50, "and then 50 ms to go");
	ok(take(&rl, "a", 5, 1000, 1200, &retry), "a token 200 ms later");
	ok(take(&rl, "b", 5, 1000, 1200, &retry), "another key has its own bucket");

	for (int i = 0; i < 120; i++)
		(void)take(&rl, "m", 120, 60000, 0, &retry);
	ok(!take(&rl, "m", 120, 60000, 0, &retry), "120 per minute: the 121st is refused");
	is_int(retry, 500, "a token every 500 ms");
	is_int(ratelimit_retry_after(retry), 1, "Retry-After rounds up to 1 s");
	is_int(ratelimit_retry_after(1001), 2, "1001 ms is 2 s");
	is_int(ratelimit_retry_after(0), 1, "never less than 1 s");
	ok(take(&rl, "m", 120, 60000, 30000, &retry), "half a minute later tokens are back");
	int refilled = 1;
	while (take(&rl, "m", 120, 60000, 30000, &retry))
		refilled++;
	is_int(refilled, 60, "half a minute refills exactly 60");

	ok(take(&rl, "z", 0, 1000, 0, &retry), "rate 0 means no limit");

	for (int i = 0; i < 30; i++)
		(void)take(&rl, "slow", 30, 60000, 0, &retry);
	int first = -1;
	for (int t = 1; t <= 2000 && first < 0; t++)
		if (take(&rl, "slow", 30, 60000, t, &retry))
			first = t;
	is_int(first, 2000, "30 per minute asked every millisecond: a token after exactly 2 s");

	for (int i = 0; i < 10; i++)
		(void)take(&rl, "c", 10, 1000, 5000, &retry);
	ok(!take(&rl, "c", 2, 1000, 5000, &retry), "a lowered limit keeps the bucket's debt");
	ok(take(&rl, "c", 2, 1000, 5500, &retry), "and refills at the new rate");

	ok(take(&rl, "idle", 1, 1000, 0, &retry), "an idle key's token");
	ok(take(&rl, "idle", 1, 1000, 100000000, &retry), "a very long idle time refills without overflow");
	ok(!take(&rl, "idle", 1, 1000, 100000000, &retry), "but only to the burst");
	ok(map_get(&rl.buckets, K("idle")) != NULL, "an empty bucket is kept");
	(void)take(&rl, "x", 1, 1000, 200000000, &retry); /* the sweep runs first */
	ok(map_get(&rl.buckets, K("idle")) == NULL, "a bucket full again is swept");
	is_int(rl.buckets.count, 1, "only the new key's bucket is left");

	ratelimit_free(&rl);
	return done_testing();
}
