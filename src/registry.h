/*
 * registry.h — which streams listen to which channel, on this node.
 *
 * Owns the map (tenant, org, channel) -> entry, where an entry holds the
 * subscribed streams and last_seq, the highest sequence number the hub has
 * dispatched on that channel, and the map stream id -> stream. Does not own
 * streams (it holds no reference: a stream leaves before it is freed) and
 * never does I/O: callers hold the lock only for memory work. Subscribing
 * and removing a stream count it in and out of presence (presence.h).
 * Lock order: registry, then stream.
 */
#ifndef HERALD_REGISTRY_H
#define HERALD_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "stream.h"

struct registry_sub {
	struct stream *s;
	unsigned ch; /* index into s->ch */
};

struct registry_entry {
	char *key; /* tenant \0 org \0 channel */
	size_t keylen;
	const char *tenant, *org, *channel; /* point into key */
	char event_digest[13];              /* digest of single-channel cursors */
	int64_t last_seq;
	struct registry_sub *subs;
	size_t nsubs, cap;
};

/* The 12-hex-digit cursor digest of a scope and a sorted channel set. */
void registry_digest(const char *tenant, const char *org, const char *const *channels,
                     size_t n, char out[13]);

void registry_init(void);
void registry_shutdown(void);
void registry_lock(void);
void registry_unlock(void);

/* All below: registry lock held. */
struct registry_entry *registry_find(const char *tenant, const char *org, const char *channel);
/* Creates the entry (it must not exist) with last_seq. */
struct registry_entry *registry_create(const char *tenant, const char *org,
                                       const char *channel, int64_t last_seq);
/* Adds s to the id map (heartbeats, disconnects and shutdown find it). */
void registry_track(struct stream *s);
/* Subscribes channel i of s to entries[i]. */
void registry_subscribe(struct stream *s, struct registry_entry *const *entries);
/* Unsubscribes and untracks s, drops emptied entries and marks it
 * finished; no delivery reaches it afterwards. */
void registry_remove(struct stream *s);
struct stream *registry_stream(uint64_t id);
/* The streams of one session (borrowed array, valid until the next
 * registry change); *n = 0 when none. */
struct stream *const *registry_session_streams(int64_t session_id, size_t *n);
size_t registry_stream_count(void);
/* Calls fn for every stream / entry; fn must not add or remove. */
void registry_each_stream(void (*fn)(struct stream *s, void *arg), void *arg);
void registry_each_entry(void (*fn)(struct registry_entry *e, void *arg), void *arg);

#endif
