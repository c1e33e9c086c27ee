/*
 * ticket.h — issuing stream tickets: POST /v1/tickets (SPEC §2).
 *
 * A ticket is 32 random bytes ("hkt_" + hex), returned once; only its
 * SHA-256 is stored, with the hash of the session token it stands for.
 * It opens one stream (GET /v1/stream?ticket=...) within ticket_ttl, on
 * any node; afterwards only with a cursor proof of its own streams (see
 * cursor.h and session.c), and only while its session is valid.
 */
#ifndef HERALD_TICKET_H
#define HERALD_TICKET_H

#include "config.h"
#include "credential.h"
#include "db.h"
#include "reply.h"

struct ticket_job {
	struct db_job job;
	void (*done)(struct ticket_job *tj); /* on the worker, at the end */
	void *ctx;

	/* in */
	const struct herald_config *cfg;
	struct credential cred;
	char *origin, *remote; /* owned */

	/* out */
	struct reply reply;
};

/* Makes tj a database job; the caller queues it with db_submit. */
void ticket_prepare(struct ticket_job *tj);
void ticket_free(struct ticket_job *tj);

#endif
