/*
 * test_counts.c — counters by key: adding, reserving within a limit,
 * batches of the changed keys in byte order, putting a failed batch
 * back, forgetting keys at 0, and key parts.
 */
#include <string.h>

#include "counts.h"
#include "tap.h"

#define K(s) s, sizeof(s) - 1

int main(void)
{
	struct counts c;
	counts_init(&c, true);
	counts_add(&c, K("b\0u1\0"), 1);
	counts_add(&c, K("a\0u2\0"), 2);
	counts_add(&c, K("a\0u1\0"), 1);
	is_int(counts_get(&c, K("a\0u2\0")), 2, "counts add up");
	ok(counts_changed(&c), "changes are remembered");

	struct count_batch b = counts_take(&c, false);
	is_int(b.n, 3, "a batch of the three changed keys");
	const char *p[2];
	is_int(count_key_parts(b.e[0], p, 2), 2, "two parts in a key");
	ok(strcmp(p[0], "a") == 0 && strcmp(p[1], "u1") == 0, "sorted by key bytes: a/u1 first");
	ok(strcmp(b.e[2]->key, "b") == 0, "b/u1 last");
	ok(!counts_changed(&c), "taking clears the marks");
	counts_put_back(&c, &b);
	ok(counts_changed(&c), "a failed write puts them back");
	count_batch_free(&b);
	b = counts_take(&c, false);
	is_int(b.n, 3, "and they are taken again");
	count_batch_free(&b);

	counts_add(&c, K("b\0u1\0"), -1);
	b = counts_take(&c, false);
	ok(b.n == 1 && b.e[0]->count == 0, "a key back at 0 is written once as 0");
	count_batch_free(&b);
	is_int(counts_get(&c, K("b\0u1\0")), 0, "and then forgotten");
	b = counts_take(&c, true);
	is_int(b.n, 2, "all: every key still counted");
	count_batch_free(&b);
	counts_free(&c);

	struct counts local;
	counts_init(&local, false);
	ok(counts_reserve(&local, K("ip"), 2), "a reservation within the limit");
	ok(counts_reserve(&local, K("ip"), 2), "a second one");
	ok(!counts_reserve(&local, K("ip"), 2), "not a third");
	is_int(counts_get(&local, K("ip")), 2, "a refused reservation changes nothing");
	ok(counts_reserve(&local, K("other"), -1), "limit -1: none");
	ok(!counts_reserve(&local, K("zero"), 0), "limit 0: nothing left");
	counts_add(&local, K("ip"), -2);
	is_int((long long)local.map.count, 1, "a local key at 0 is forgotten at once");
	ok(!counts_changed(&local), "local counts are never written");
	counts_free(&local);
	return done_testing();
}
