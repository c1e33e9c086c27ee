/*
 * publish.c — the publish flow (see publish.h).
 *
 * The body is checked by jsoncheck.c (limits, duplicates, number range,
 * UTF-8), its shape with json-c, then handed to PostgreSQL as text and
 * cast to jsonb there, so the stored payload is the client's JSON as
 * PostgreSQL reads it, never a re-serialisation.
 * XXX publishes commit one by one; grouping concurrent ones into one
 * transaction (one NOTIFY lock) is the next step for throughput.
 * XXX Idempotency-Key (SPEC §2) is not honoured yet: a client that retries
 * after a 503 whose commit did succeed publishes twice.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit.h"
#include "channel.h"
#include "jsoncheck.h"
#include "metrics.h"
#include "policy.h"
#include "log.h"
#include "publish.h"
#include "session.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

#define PUBLISH_MAX_DEPTH 64

bool publish_media_type_ok(const char *ct)
{
	if (!ct)
		return false;
	while (*ct == ' ')
		ct++;
	size_t n = strlen("application/json");
	if (strncasecmp(ct, "application/json", n) != 0)
		return false;
	ct += n;
	while (*ct == ' ')
		ct++;
	return *ct == '\0' || *ct == ';';
}

bool publish_check_body(const char *body, size_t n, char *err, size_t errlen)
{
	static const struct jsoncheck_limits limits = JSONCHECK_DEFAULT_LIMITS;
	char why[96];
	if (!jsoncheck(body, n, &limits, why, sizeof(why))) {
		snprintf(err, errlen, "invalid JSON: %s", why);
		return false;
	}
	struct json_tokener *tok = json_tokener_new_ex(PUBLISH_MAX_DEPTH);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	struct json_object *o = json_tokener_parse_ex(tok, body, (int)n);
	bool ok = false;

	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != n) {
		snprintf(err, errlen, "the body is not one valid JSON document");
	} else if (!json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "the body must be a JSON object with \"type\" and \"data\"");
	} else {
		struct json_object *type = NULL;
		ok = true;
		json_object_object_foreach(o, key, val) {
			(void)val;
			if (strcmp(key, "type") != 0 && strcmp(key, "data") != 0) {
				snprintf(err, errlen, "unknown member \"%.64s\"", key);
				ok = false;
			}
		}
		if (ok && (!json_object_object_get_ex(o, "type", &type) ||
		           !json_object_is_type(type, json_type_string))) {
			snprintf(err, errlen, "\"type\" must be a string");
			ok = false;
		}
		if (ok) {
			const char *t = json_object_get_string(type);
			size_t tl = (size_t)json_object_get_string_len(type);
			if (!event_type_valid(t, tl)) {
				snprintf(err, errlen, "invalid event type");
				ok = false;
			} else if (event_type_reserved(t, tl)) {
				snprintf(err, errlen, "event types beginning \"herald.\" are reserved");
				ok = false;
			}
		}
	}
	json_object_put(o);
	json_tokener_free(tok);
	return ok;
}

/* Walks o for tenant_id / org_id members; path names where we are. */
static bool scope_walk(struct json_object *o, const char *tenant, const char *org,
                       struct buf *path, char *err, size_t errlen)
{
	size_t at = path->len;
	bool ok = true;
	if (json_object_is_type(o, json_type_object)) {
		json_object_object_foreach(o, key, val) {
			if (!ok)
				break;
			const char *want = strcmp(key, "tenant_id") == 0 ? tenant
			                   : strcmp(key, "org_id") == 0   ? org
			                                                  : NULL;
			buf_append_char(path, '/');
			buf_append_str(path, key);
			if (want && (!json_object_is_type(val, json_type_string) ||
			             strcmp(json_object_get_string(val), want) != 0)) {
				snprintf(err, errlen, "%.120s must be the publisher's own %s", path->data,
				         key);
				ok = false;
			} else {
				ok = scope_walk(val, tenant, org, path, err, errlen);
			}
			path->len = at;
			path->data[at] = '\0';
		}
	} else if (json_object_is_type(o, json_type_array)) {
		for (size_t i = 0; ok && i < json_object_array_length(o); i++) {
			buf_printf(path, "/%zu", i);
			ok = scope_walk(json_object_array_get_idx(o, i), tenant, org, path, err, errlen);
			path->len = at;
			path->data[at] = '\0';
		}
	}
	return ok;
}

bool publish_scope_references_ok(const char *body, const char *tenant, const char *org,
                                  char *err, size_t errlen)
{
	struct json_object *o = json_tokener_parse(body), *data;
	bool ok = true;
	if (o && json_object_object_get_ex(o, "data", &data)) {
		struct buf path = BUF_INIT;
		buf_append_str(&path, "/data");
		ok = scope_walk(data, tenant, org, &path, err, errlen);
		buf_free(&path);
	}
	json_object_put(o);
	return ok;
}

static void publish_event(struct publish_job *pj, PGconn *conn, const struct identity *id,
                          const char *org)
{
	static const char sql[] =
		"SELECT herald.publish($1, $2, $3, ($4::jsonb)->>'type', ($4::jsonb)->'data')";
	const char *values[4] = {id->tenant_id, org, pj->channel, pj->body.data};
	PGresult *r = PQexecParams(conn, sql, 4, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK) {
		struct buf b = BUF_INIT;
		buf_append_str(&b, "{\"id\":");
		buf_append_json_str(&b, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
		buf_append_str(&b, ",\"channel\":");
		buf_append_json_str(&b, pj->channel, strlen(pj->channel));
		buf_append_char(&b, '}');
		reply_json(&pj->reply, 201, &b);
		metrics_inc(METRIC_EVENTS_PUBLISHED);
		metrics_observe(METRIC_PUBLISH_SECONDS, (double)(time_mono_ns() - pj->started_ns) / 1e9);
	} else {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		if (state && strncmp(state, "22", 2) == 0) {
			/* Data exceptions: JSON that json-c accepts and jsonb does not
			 * (e.g. \u0000). */
			reply_problem(&pj->reply, PROBLEM_INVALID_REQUEST, "the event data is not acceptable JSON");
		} else {
			log_msg(LOG_ERROR, "publish failed", "error", PQresultErrorMessage(r), NULL);
			reply_problem(&pj->reply, PROBLEM_UNAVAILABLE, "the event could not be stored");
		}
	}
	PQclear(r);
}

/* Every publish the server refuses after authentication is audited, with
 * the problem code as the reason (integrity, scope, CSRF, storage). */
static void audit_rejection(const struct publish_job *pj, const struct identity *id)
{
	bool scope = strcmp(pj->reply.code, "scope_violation") == 0;
	struct buf d = BUF_INIT;
	buf_printf(&d, "{\"reason\":\"%s\",\"status\":%u,\"route\":\"publish\"}",
	           pj->reply.code, pj->reply.status);
	struct audit_record a = {
		.kind = scope ? "scope.violation" : "publish", .outcome = "rejected",
		.channel = pj->channel, .remote_addr = pj->remote, .detail = d.data,
	};
	session_audit_who(&a, id);
	audit_record(&a);
	buf_free(&d);
}

static void publish_run(struct db_job *job, PGconn *conn)
{
	struct publish_job *pj = (struct publish_job *)job;
	struct identity id;
	const char *org;
	char err[160];

	int64_t seq, trimmed;
	bool feature, allowed;
	struct session_heads heads = {.permission = PERMISSION_PUBLISH, .seq = &seq,
	                              .trimmed = &trimmed, .feature = &feature, .allowed = &allowed};
	bool valid = channel_valid(pj->channel, strlen(pj->channel)), authz_denied = false;
	enum session_status st = session_lookup(conn, &pj->cred, pj->org_hint, &pj->channel,
	                                        valid ? 1 : 0, &id, &heads);
	if (st != SESSION_OK) {
		session_reject(st, &pj->cred, &id, "publish", pj->remote, &pj->reply);
	} else if (!credential_post_allowed(&pj->cred, pj->origin, pj->cfg->cors_origins,
	                                    &pj->reply)) {
		/* reply prepared */
	} else if (!valid) {
		reply_problem(&pj->reply, PROBLEM_INVALID_REQUEST, "invalid channel name");
	} else if (!session_scope(&id, pj->tenant_hint, pj->org_hint, &org, &pj->reply)) {
		/* reply prepared */
	} else if (!policy_decide(&id, org, &pj->channel, 1, &heads, "publish", pj->remote,
	                          &pj->reply)) {
		authz_denied = true; /* audited there (authz.denied) */
	} else if (pj->body_too_large) {
		reply_problem(&pj->reply, PROBLEM_PAYLOAD_TOO_LARGE, "the body exceeds max_event_bytes");
	} else if (!publish_media_type_ok(pj->content_type)) {
		reply_problem(&pj->reply, PROBLEM_UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json");
	} else if (!publish_check_body(pj->body.data ? pj->body.data : "", pj->body.len, err, sizeof(err))) {
		reply_problem(&pj->reply, PROBLEM_INVALID_REQUEST, err);
	} else if (!publish_scope_references_ok(pj->body.data, id.tenant_id, org, err, sizeof(err))) {
		reply_problem(&pj->reply, PROBLEM_CROSS_SCOPE_REFERENCE, err);
	} else {
		publish_event(pj, conn, &id, org);
	}
	if (st == SESSION_OK && pj->reply.status != 201 && !authz_denied)
		audit_rejection(pj, &id);
	identity_free(&id);
	pj->done(pj);
}

void publish_prepare(struct publish_job *pj)
{
	pj->job.run = publish_run;
}

void publish_free(struct publish_job *pj)
{
	free(pj->channel);
	free(pj->tenant_hint);
	free(pj->org_hint);
	free(pj->content_type);
	free(pj->origin);
	free(pj->remote);
	buf_free(&pj->body);
	reply_free(&pj->reply);
	memset(pj, 0, sizeof(*pj));
}
