/*
 * caps.h — connection caps (SPEC §5.6): streams per node, per client
 * address, per user and per tenant, the last two across all nodes.
 *
 * Owns this node's stream counts. Per address and node-wide they are
 * checked here only; per (tenant, user) they are also written in
 * batches to herald.node_streams (by presence.c's node job, which owns
 * this node's registration), and each stream open adds the other nodes'
 * counts, read in its session lookup. A stream holds its reservations
 * until its request completes.
 */
#ifndef HERALD_CAPS_H
#define HERALD_CAPS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include "config.h"
#include "reply.h"
#include "rules.h"

void caps_start(const struct herald_config *cfg);
void caps_free(void);

/* Before credentials: a stream from address fits the node's and the
 * address's caps; else 429 too_many_connections in r. */
bool caps_reserve_address(const char *address, struct reply *r);
void caps_release_address(const char *address);

/* After authorization: the user's and the tenant's caps (the tenant's
 * herald.limits row, else the config), counting other_user /
 * other_tenant streams elsewhere. */
bool caps_reserve_user(const struct rules *rules, const char *tenant, const char *user,
                       int64_t other_user, int64_t other_tenant, struct reply *r);
void caps_release_user(const char *tenant, const char *user);
/* Does some tenant cap apply (so lookups must count tenants)? */
bool caps_count_tenants(const struct rules *rules);

/* Writes the changed per-user counts (the node's row must exist); false
 * if the write failed (it is retried). */
bool caps_write(PGconn *conn, const char *node_id);
bool caps_changed(void);
/* All per-user counts count as changed (the node was taken for dead). */
void caps_rewrite_all(void);

#endif
