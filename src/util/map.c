/*
 * map.c — open-addressing hash maps with linear probing.
 *
 * Owns the slot table only; keys and values belong to the caller. The
 * table is a power of two and is rebuilt once live entries plus tombstones
 * pass 70 %, so probe chains stay short even under churn. Hash values 0
 * and 1 mark empty and deleted slots, so real hashes are remapped above.
 */
#include <string.h>
#include <stdlib.h>

#include "util/map.h"
#include "util/xmalloc.h"

#define HASH_EMPTY 0
#define HASH_DELETED 1
#define MIN_CAP 8

static uint64_t mix64(uint64_t x)
{
	/* splitmix64's finaliser: every input bit affects every output bit,
	 * which masking by a power of two needs. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static uint64_t reserve_hash(uint64_t h)
{
	return h <= HASH_DELETED ? h + 2 : h;
}

/* FNV-1a over the bytes, then a full mix: FNV alone leaves the low bits
 * (the ones the mask keeps) weak for keys differing only at the end. */
uint64_t map_hash(const void *key, size_t n)
{
	const unsigned char *p = key;
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return reserve_hash(mix64(h ^ n));
}

static uint64_t int_hash(uint64_t key)
{
	return reserve_hash(mix64(key + 0x9e3779b97f4a7c15ULL));
}

void map_init(struct map *m)
{
	m->slots = NULL;
	m->cap = 0;
	m->count = 0;
	m->used = 0;
}

void map_free(struct map *m)
{
	free(m->slots);
	map_init(m);
}

static void rebuild(struct map *m)
{
	struct map_slot *old = m->slots;
	size_t oldcap = m->cap, i, cap = MIN_CAP;

	/* Sized for half load after the insert that triggered us: rebuilding
	 * also drops tombstones, so a churning map may keep its size. */
	while ((m->count + 1) * 2 > cap)
		cap *= 2;
	m->slots = xcalloc(cap, sizeof(*m->slots));
	m->cap = cap;
	m->used = m->count;
	for (i = 0; i < oldcap; i++) {
		size_t j;

		if (old[i].hash <= HASH_DELETED)
			continue;
		j = old[i].hash & (cap - 1);
		while (m->slots[j].hash != HASH_EMPTY)
			j = (j + 1) & (cap - 1);
		m->slots[j] = old[i];
	}
	free(old);
}

static int slot_matches(const struct map_slot *s, uint64_t h, const void *key,
                        size_t n, uint64_t ikey)
{
	if (s->hash != h)
		return 0;
	if (key == NULL)
		return s->key == NULL && s->ikey == ikey;
	return s->key != NULL && s->keylen == n && memcmp(s->key, key, n) == 0;
}

/* Index of the entry, or SIZE_MAX. key == NULL means an integer key. */
static size_t find(const struct map *m, uint64_t h, const void *key, size_t n,
                   uint64_t ikey)
{
	size_t j;

	if (m->cap == 0)
		return SIZE_MAX;
	for (j = h & (m->cap - 1); m->slots[j].hash != HASH_EMPTY; j = (j + 1) & (m->cap - 1))
		if (slot_matches(&m->slots[j], h, key, n, ikey))
			return j;
	return SIZE_MAX;
}

static void put(struct map *m, uint64_t h, const void *key, size_t n,
                uint64_t ikey, void *value)
{
	size_t j, tomb = SIZE_MAX;
	struct map_slot *s;

	if ((m->used + 1) * 10 > m->cap * 7)
		rebuild(m);
	for (j = h & (m->cap - 1); m->slots[j].hash != HASH_EMPTY; j = (j + 1) & (m->cap - 1)) {
		if (m->slots[j].hash == HASH_DELETED) {
			if (tomb == SIZE_MAX)
				tomb = j;
		} else if (slot_matches(&m->slots[j], h, key, n, ikey)) {
			m->slots[j].value = value;
			return;
		}
	}
	if (tomb != SIZE_MAX) {
		j = tomb;
	} else {
		m->used++;
	}
	s = &m->slots[j];
	s->hash = h;
	s->key = key;
	s->keylen = n;
	s->ikey = ikey;
	s->value = value;
	m->count++;
}

static void *del(struct map *m, size_t j)
{
	void *value;
	size_t mask = m->cap - 1;

	if (j == SIZE_MAX)
		return NULL;
	value = m->slots[j].value;
	memset(&m->slots[j], 0, sizeof(m->slots[j]));
	m->slots[j].hash = HASH_DELETED;
	m->count--;
	/* A tombstone followed by an empty slot ends no probe chain that
	 * continues, so it and the tombstones just before it become empty. */
	if (m->slots[(j + 1) & mask].hash == HASH_EMPTY) {
		while (m->slots[j].hash == HASH_DELETED) {
			m->slots[j].hash = HASH_EMPTY;
			m->used--;
			j = (j - 1) & mask;
		}
	}
	return value;
}

void *map_get(const struct map *m, const void *key, size_t n)
{
	size_t j = find(m, map_hash(key, n), key, n, 0);

	return j == SIZE_MAX ? NULL : m->slots[j].value;
}

void map_put(struct map *m, const void *key, size_t n, void *value)
{
	put(m, map_hash(key, n), key, n, 0, value);
}

void *map_del(struct map *m, const void *key, size_t n)
{
	return del(m, find(m, map_hash(key, n), key, n, 0));
}

void *map_iget(const struct map *m, uint64_t key)
{
	size_t j = find(m, int_hash(key), NULL, 0, key);

	return j == SIZE_MAX ? NULL : m->slots[j].value;
}

void map_iput(struct map *m, uint64_t key, void *value)
{
	put(m, int_hash(key), NULL, 0, key, value);
}

void *map_idel(struct map *m, uint64_t key)
{
	return del(m, find(m, int_hash(key), NULL, 0, key));
}

int map_next(const struct map *m, size_t *iter, void **value)
{
	size_t i;

	for (i = *iter; i < m->cap; i++) {
		if (m->slots[i].hash > HASH_DELETED) {
			*value = m->slots[i].value;
			*iter = i + 1;
			return 1;
		}
	}
	*iter = m->cap;
	return 0;
}
