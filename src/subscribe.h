/*
 * subscribe.h — the stream-open flow: GET /v1/stream.
 *
 * Parses the channel list, then on a database worker resolves the session
 * and reads the channel heads (one round trip), applies scope, decides
 * where the stream starts (replay.h) and builds the stream with its
 * herald.open (and herald.reset) queued. The HTTP layer then answers with
 * the stream and hands it to the hub. Owns no connection state.
 */
#ifndef HERALD_SUBSCRIBE_H
#define HERALD_SUBSCRIBE_H

#include <stdbool.h>
#include <stddef.h>
#include "config.h"
#include "credential.h"
#include "db.h"
#include "reply.h"
#include "session.h"
#include "stream.h"
#include "target.h"

struct subscribe_job {
	struct db_job job;
	void (*done)(struct subscribe_job *sj); /* on the worker, at the end */
	void *ctx;

	/* in: filled by subscribe_init and the caller */
	const struct herald_config *cfg;
	const struct stream_io *io;
	void *conn;
	struct credential cred;
	char *syntax_error; /* owned; reported after authentication */
	char *tenant_hint, *org_hint, *cursor;
	char *remote;       /* client address for the audit, owned */
	char **channels;    /* owned, sorted, valid */
	size_t nch;

	unsigned char proof_key[32]; /* ticket streams: loaded by the job */
	uint64_t validity_gen;       /* validity_generation() before the lookup */
	uint64_t policy_gen;         /* policy_generation() before the lookup */

	/* out */
	struct reply reply;     /* status != 0: answer with it */
	struct stream *stream;  /* otherwise: the new stream (one reference) */
};

/* Reads channels, scope hints and the cursor from the target
 * (last_event_id is overridden by a non-NULL header value). */
void subscribe_init(struct subscribe_job *sj, const struct herald_config *cfg,
                    const struct target *t, const char *last_event_id_header);
/* Makes sj a database job; the caller queues it with db_submit. */
void subscribe_prepare(struct subscribe_job *sj);
void subscribe_free(struct subscribe_job *sj);
/* Records the stream.open audit row (and scope.violation for a 403
 * scope_violation). id may be NULL or partly filled. */
void subscribe_audit(const struct subscribe_job *sj, const struct identity *id,
                     const char *outcome, const char *reason, unsigned status);

#endif
