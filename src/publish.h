/*
 * publish.h — the publish flow: POST /v1/channels/{channel}/events.
 *
 * On a database worker: resolve the session, check the channel, scope and
 * body (size, media type, JSON shape and type grammar), then call
 * herald.publish(), the same path in-database publishers use. The answer
 * is 201 only once the event is committed.
 */
#ifndef HERALD_PUBLISH_H
#define HERALD_PUBLISH_H

#include <stdbool.h>
#include <stdint.h>
#include "config.h"
#include "credential.h"
#include "db.h"
#include "reply.h"
#include "util/buf.h"

struct publish_job {
	struct db_job job;
	void (*done)(struct publish_job *pj); /* on the worker, at the end */
	void *ctx;

	/* in */
	const struct herald_config *cfg;
	struct credential cred;
	char *channel;        /* decoded path segment, unchecked */
	char *tenant_hint, *org_hint;
	char *content_type;   /* NULL when absent */
	char *origin;         /* Origin header, NULL when absent */
	char *remote;         /* client address for the audit */
	int64_t started_ns;   /* request start, for the latency histogram */
	struct buf body;
	bool body_too_large;

	/* out */
	struct reply reply;
};

/* Makes pj a database job; the caller queues it with db_submit. */
void publish_prepare(struct publish_job *pj);
void publish_free(struct publish_job *pj);

/* Validates a publish body (pure): a JSON object with a valid, unreserved
 * "type" string and optional "data". On failure returns false with a
 * message for the 400 detail in err. */
bool publish_check_body(const char *body, size_t n, char *err, size_t errlen);
/* No cross-scope references (SPEC §5.5): every tenant_id / org_id member
 * at any depth of "data" must be a string equal to the publisher's tenant
 * / effective org (null is not). false with the JSON path in err. body is
 * NUL-terminated and already passed publish_check_body. */
bool publish_scope_references_ok(const char *body, const char *tenant, const char *org,
                                  char *err, size_t errlen);
/* True for application/json, with optional parameters. */
bool publish_media_type_ok(const char *content_type);

#endif
