/*
 * counts.h — counters by key that remember which changed (pure;
 * thread-safe).
 *
 * What a node counts in memory and writes to PostgreSQL in batches
 * (presence members, streams per user) or only checks locally (streams
 * per client address). A key is bytes: callers join NUL-terminated parts.
 * A batch takes the changed counters, sorted by key bytes (the order the
 * database locks them in); a failed write puts them back.
 */
#ifndef HERALD_COUNTS_H
#define HERALD_COUNTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/map.h"

struct count_entry {
	char *key;
	size_t keylen;
	int64_t count;
	bool dirty;
};

struct counts {
	pthread_mutex_t lock;
	struct map map; /* key -> struct count_entry */
	size_t ndirty;
	bool written;   /* false: only checked here; a count back at 0 goes */
};

struct count_batch {
	struct count_entry **e; /* copies: key and the count to write */
	size_t n;
};

/* written: the counts are written in batches (counts_take); otherwise
 * they are only read here, and nothing is remembered for a key at 0. */
void counts_init(struct counts *c, bool written);
void counts_free(struct counts *c);

/* Adds delta to key's count (n bytes) and marks it changed. */
void counts_add(struct counts *c, const void *key, size_t n, int64_t delta);
/* Adds 1 to key's count if it stays within limit (<= limit; limit < 0:
 * none). false, and nothing changed, when it would not. */
bool counts_reserve(struct counts *c, const void *key, size_t n, int64_t limit);
int64_t counts_get(struct counts *c, const void *key, size_t n);
bool counts_changed(struct counts *c);

/* The changed counters (every counter when all), their marks cleared;
 * counters back at 0 are forgotten. */
struct count_batch counts_take(struct counts *c, bool all);
/* A write of b failed: its keys count as changed again. */
void counts_put_back(struct counts *c, const struct count_batch *b);
void count_batch_free(struct count_batch *b);
/* Points parts[0..max) at the NUL-terminated parts of e's key; returns
 * how many there are. */
size_t count_key_parts(const struct count_entry *e, const char **parts, size_t max);

#endif
