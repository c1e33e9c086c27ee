/*
 * publish.h — the publish flow: POST /v1/channels/{channel}/events.
 *
 * On a database worker: resolve the session, check the channel, scope,
 * permission and body (size against max_event_bytes and the channel
 * rule, media type, Idempotency-Key, strict JSON, type grammar, scope
 * references, event schema), then commit it with other publishes of the
 * moment through herald.publish_batch(), which shares herald.publish()'s
 * delivery path. The answer is 201 only once the event is committed; a
 * replay of an Idempotency-Key with the same body answers 200 with the
 * first publish's id.
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
	char *idempotency_key; /* NULL when absent */
	unsigned idempotency_keys; /* how many Idempotency-Key headers came */

	/* out */
	struct reply reply;

	/* private: who published (for the audit and the commit) */
	bool audit;
	int64_t session_id;
	char *user_id, *tenant, *session_org;
	char *org; /* the effective org */
	char body_hash[2 * 32 + 1];
	struct publish_job *group_next;
};

/* Makes pj a database job; the caller queues it with db_submit. */
void publish_prepare(struct publish_job *pj);
void publish_free(struct publish_job *pj);

/* Parses a publish body under the limits of jsoncheck.c: a JSON object
 * with a valid, unreserved "type" string and optional "data". Returns it
 * (the caller puts it), or NULL with a message for the 400 detail in err. */
struct json_object;
struct json_object *publish_parse_body(const char *body, size_t n, char *err, size_t errlen);
/* No cross-scope references (SPEC §5.5): every tenant_id / org_id member
 * at any depth of the body's "data" must be a string equal to the
 * publisher's tenant / effective org (null is not). false with the JSON
 * path in err. */
bool publish_scope_references_ok(struct json_object *body, const char *tenant, const char *org,
                                  char *err, size_t errlen);
/* 1 to 255 printable ASCII characters. */
#define PUBLISH_IDEMPOTENCY_KEY_MAX 255
bool publish_idempotency_key_ok(const char *key);
/* True for application/json, with optional parameters. */
bool publish_media_type_ok(const char *content_type);

#endif
