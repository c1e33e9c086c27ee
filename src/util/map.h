/*
 * map.h — string-keyed and integer-keyed hash maps (open addressing).
 *
 * The map stores borrowed key pointers and opaque values: the caller owns
 * both and must keep a key alive while it is in the map. Not thread-safe;
 * callers lock around it.
 */
#ifndef HERALD_MAP_H
#define HERALD_MAP_H

#include <stddef.h>
#include <stdint.h>

struct map_slot {
	uint64_t hash;   /* 0 = empty, 1 = deleted (tombstone) */
	const void *key; /* string maps: borrowed key bytes */
	size_t keylen;
	uint64_t ikey;   /* integer maps */
	void *value;
};

struct map {
	struct map_slot *slots;
	size_t cap;   /* power of two */
	size_t count; /* live entries */
	size_t used;  /* live + tombstones */
};

void map_init(struct map *m);
void map_free(struct map *m); /* frees the table only, not keys or values */

/* String keys: key is n bytes (may contain NUL). */
void *map_get(const struct map *m, const void *key, size_t n);
void map_put(struct map *m, const void *key, size_t n, void *value); /* replaces */
void *map_del(struct map *m, const void *key, size_t n); /* returns old value or NULL */

/* Integer keys (use a map for one key kind only). */
void *map_iget(const struct map *m, uint64_t key);
void map_iput(struct map *m, uint64_t key, void *value);
void *map_idel(struct map *m, uint64_t key);

/* Iteration: for (size_t i = 0; map_next(m, &i, &value);) ...
 * Safe against map_del/map_idel of the current entry. */
int map_next(const struct map *m, size_t *iter, void **value);

uint64_t map_hash(const void *key, size_t n);

#endif
