/*
 * presence.h — who is in a channel, across the cluster (SPEC §2, §3).
 *
 * Owns this node's member counts (per tenant, org, presence channel and
 * user: how many of the user's streams here are subscribed), their
 * batched writes to herald.presence (one statement per hub tick at most,
 * never on the stream-open path), the node's heartbeat in herald.nodes
 * (which also removes nodes that stopped heartbeating, with their
 * members' leaves), and GET /v1/channels/{channel}/presence. Its node
 * job also writes the stream counts of caps.h. Joins and
 * leaves are decided in PostgreSQL (herald.presence_set) and come back
 * through herald_presence; the hub delivers them (hub.c).
 */
#ifndef HERALD_PRESENCE_H
#define HERALD_PRESENCE_H

#include <stdbool.h>
#include <stddef.h>
#include "config.h"
#include "credential.h"
#include "db.h"
#include "reply.h"

struct stream;

void presence_start(const struct herald_config *cfg);
/* Queues the node's goodbye (its members leave); before db_stop(). */
void presence_stop(void);
/* Frees the member counts; after db_stop(). */
void presence_free(void);
/* Hub tick: the start, member writes and heartbeat, each when due. */
void presence_tick(void);

/* Channel rules changed (a herald_control notice, or the LISTEN connection
 * came back): open streams are re-marked as members at the next tick. */
void presence_rules_changed(void);

/* Stream s's channel ch (a presence channel) was subscribed / left.
 * Registry lock held. */
void presence_joined(const struct stream *s, size_t ch);
void presence_left(const struct stream *s, size_t ch);

/* GET /v1/channels/{channel}/presence. */
struct presence_job {
	struct db_job job;
	void (*done)(struct presence_job *pj); /* on the worker, at the end */
	void *ctx;
	struct credential cred;
	char *channel; /* decoded path segment, unchecked */
	char *tenant_hint, *org_hint;
	char *remote;
	struct reply reply;
};
void presence_prepare(struct presence_job *pj);
void presence_job_free(struct presence_job *pj);

#endif
