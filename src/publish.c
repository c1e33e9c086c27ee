/*
 * publish.c — the publish flow (see publish.h).
 *
 * The body is checked by jsoncheck.c (limits, duplicates, number range,
 * UTF-8), its shape with json-c, its size against the channel rule, its
 * scope references and its event schema; then it is handed to PostgreSQL
 * as text and cast to jsonb there, so the stored payload is the client's
 * JSON as PostgreSQL reads it, never a re-serialisation.
 *
 * Group commit: every notifying commit takes PostgreSQL's cluster-wide
 * NOTIFY lock (DESIGN.md §1), so checked publishes wait in one queue and
 * whichever worker finds no commit under way commits everything queued
 * in one herald.publish_batch() call, then the next group, until the
 * queue is empty. Under load, publishes share commits; alone, one waits
 * for nothing.
 */
#include <json-c/json.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit.h"
#include "crypto.h"
#include "channel.h"
#include "jsoncheck.h"
#include "quota.h"
#include "metrics.h"
#include "log.h"
#include "policy.h"
#include "publish.h"
#include "rules.h"
#include "schema.h"
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

struct json_object *publish_parse_body(const char *body, size_t n, char *err, size_t errlen)
{
	static const struct jsoncheck_limits limits = JSONCHECK_DEFAULT_LIMITS;
	char why[96];
	if (!jsoncheck(body, n, &limits, why, sizeof(why))) {
		snprintf(err, errlen, "invalid JSON: %s", why);
		return NULL;
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
	json_tokener_free(tok);
	if (!ok) {
		json_object_put(o);
		return NULL;
	}
	return o;
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

bool publish_scope_references_ok(struct json_object *body, const char *tenant, const char *org,
                                  char *err, size_t errlen)
{
	struct json_object *data;
	bool ok = true;
	if (json_object_object_get_ex(body, "data", &data)) {
		struct buf path = BUF_INIT;
		buf_append_str(&path, "/data");
		ok = scope_walk(data, tenant, org, &path, err, errlen);
		buf_free(&path);
	}
	return ok;
}

bool publish_idempotency_key_ok(const char *key)
{
	size_t n = 0;
	for (; key[n]; n++)
		if (key[n] < 0x21 || key[n] > 0x7e)
			return false;
	return n >= 1 && n <= PUBLISH_IDEMPOTENCY_KEY_MAX;
}

/* ---- checks, on the worker that took the job ------------------------ */

/* The event schema that applies, if any (SPEC §5.5): a failure names the
 * data path and the keyword. */
static void check_schema(struct publish_job *pj, const struct rules *rules,
                         const struct channel_rule *rule, struct json_object *body)
{
	struct json_object *type, *data = NULL;
	json_object_object_get_ex(body, "type", &type);
	json_object_object_get_ex(body, "data", &data);
	const char *broken;
	const struct schema *schema = rules_schema(rules, pj->tenant, pj->channel,
	                                           json_object_get_string(type), &broken);
	char detail[512];
	struct schema_error e;
	if (broken) {
		snprintf(detail, sizeof(detail), "the schema for this event type cannot be used: %s",
		         broken);
		reply_problem(&pj->reply, PROBLEM_SCHEMA_VIOLATION, detail);
	} else if (!schema && rule->require_schema) {
		reply_problem(&pj->reply, PROBLEM_SCHEMA_VIOLATION,
		              "this channel requires a schema for every event type, and this type has none");
	} else if (schema && !schema_validate(schema, data, &e)) {
		snprintf(detail, sizeof(detail), "/data%s fails \"%s\": %s", e.path, e.keyword,
		         e.message);
		reply_problem(&pj->reply, PROBLEM_SCHEMA_VIOLATION, detail);
	}
}

/* The body checks of SPEC §2's last stage, in order: size, media type,
 * JSON, scope references, schema. Prepares the reply on failure. */
static void check_body(struct publish_job *pj, const struct rules *rules)
{
	struct channel_rule rule = rules_channel(rules, pj->tenant, pj->channel);
	char err[160];
	struct json_object *body = NULL;
	if (pj->body_too_large || (rule.max_bytes && (int64_t)pj->body.len > rule.max_bytes)) {
		reply_problem(&pj->reply, PROBLEM_PAYLOAD_TOO_LARGE,
		              pj->body_too_large ? "the body exceeds max_event_bytes"
		                                 : "the body exceeds the channel rule's max_bytes");
	} else if (!publish_media_type_ok(pj->content_type)) {
		reply_problem(&pj->reply, PROBLEM_UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json");
	} else if (pj->idempotency_keys > 1 ||
	           (pj->idempotency_key && !publish_idempotency_key_ok(pj->idempotency_key))) {
		reply_problem(&pj->reply, PROBLEM_INVALID_REQUEST,
		              "Idempotency-Key must be one header of 1 to 255 printable ASCII characters");
	} else if (!(body = publish_parse_body(pj->body.data ? pj->body.data : "", pj->body.len,
	                                       err, sizeof(err)))) {
		reply_problem(&pj->reply, PROBLEM_INVALID_REQUEST, err);
	} else if (!publish_scope_references_ok(body, pj->tenant, pj->org, err, sizeof(err))) {
		reply_problem(&pj->reply, PROBLEM_CROSS_SCOPE_REFERENCE, err);
	} else {
		check_schema(pj, rules, &rule, body);
	}
	json_object_put(body);
}

/* Every publish the server refuses after authentication is audited, with
 * the problem code as the reason (integrity, scope, CSRF, idempotency,
 * storage). */
static void audit_rejection(const struct publish_job *pj)
{
	struct audit_record a = {
		.channel = pj->channel, .remote_addr = pj->remote, .session_id = pj->session_id,
		.user_id = pj->user_id, .tenant_id = pj->tenant, .org_id = pj->session_org,
	};
	session_audit_refusal(&a, "publish", &pj->reply);
}

static void finish(struct publish_job *pj)
{
	if (pj->audit && pj->reply.status >= 400)
		audit_rejection(pj);
	pj->done(pj);
}

/* ---- group commit ----------------------------------------------------- */

#define GROUP_MAX_BYTES (4 << 20)

static pthread_mutex_t group_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct publish_job *group_head, **group_tail = &group_head;
static bool group_committing;

static void answer_created(struct publish_job *pj, const char *id, unsigned status)
{
	struct buf b = BUF_INIT;
	buf_append_str(&b, "{\"id\":");
	buf_append_json_str(&b, id, strlen(id));
	buf_append_str(&b, ",\"channel\":");
	buf_append_json_str(&b, pj->channel, strlen(pj->channel));
	buf_append_char(&b, '}');
	reply_json(&pj->reply, status, &b);
	if (status == 201) {
		metrics_inc(METRIC_EVENTS_PUBLISHED);
		metrics_observe(METRIC_PUBLISH_SECONDS, (double)(time_mono_ns() - pj->started_ns) / 1e9);
	}
}

/* One herald.publish_batch() call for the n jobs from first. False when
 * the statement failed (nothing was committed); the replies are then
 * left to the caller. */
static bool commit_group(PGconn *conn, struct publish_job *first, size_t n, PGresult **res)
{
	static const char sql[] =
		"SELECT event_id, outcome FROM herald.publish_batch($1::text[], $2::text[],"
		" $3::text[], $4::text[], $5::text[], $6::text[])";
	const char **col[6];
	for (int c = 0; c < 6; c++)
		col[c] = xcalloc(n, sizeof(char *));
	size_t i = 0;
	for (struct publish_job *pj = first; i < n; pj = pj->group_next, i++) {
		col[0][i] = pj->tenant;
		col[1][i] = pj->org;
		col[2][i] = pj->channel;
		col[3][i] = pj->body.data;
		col[4][i] = pj->idempotency_key;
		col[5][i] = pj->idempotency_key ? pj->body_hash : NULL;
	}
	struct buf arr[6];
	const char *values[6];
	for (int c = 0; c < 6; c++) {
		arr[c] = (struct buf)BUF_INIT;
		db_append_text_array(&arr[c], col[c], n);
		values[c] = arr[c].data;
		free(col[c]);
	}
	*res = db_exec_prepared(conn, "herald_publish_batch", sql, 6, values, NULL, NULL, 0);
	for (int c = 0; c < 6; c++)
		buf_free(&arr[c]);
	return PQresultStatus(*res) == PGRES_TUPLES_OK && PQntuples(*res) == (int)n;
}

static void answer_from_row(struct publish_job *pj, PGresult *res, int row)
{
	const char *outcome = PQgetvalue(res, row, 1);
	if (strcmp(outcome, "conflict") == 0)
		reply_problem(&pj->reply, PROBLEM_IDEMPOTENCY_CONFLICT,
		              "this Idempotency-Key was used with a different body");
	else
		answer_created(pj, PQgetvalue(res, row, 0), strcmp(outcome, "created") == 0 ? 201 : 200);
}

static void answer_failure(struct publish_job *pj, PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (state && strncmp(state, "22", 2) == 0) {
		/* Data exceptions: JSON that json-c accepts and jsonb does not
		 * (e.g. \u0000). */
		reply_problem(&pj->reply, PROBLEM_INVALID_REQUEST, "the event data is not acceptable JSON");
	} else {
		log_msg(LOG_ERROR, "publish failed", "error", PQresultErrorMessage(res), NULL);
		reply_problem(&pj->reply, PROBLEM_UNAVAILABLE, "the event could not be stored");
	}
}

/* Commits n queued jobs from first and answers each. A failed group is
 * retried one job at a time, so that one body PostgreSQL refuses fails
 * alone (the failed statement committed nothing). */
static void commit_and_answer(PGconn *conn, struct publish_job *first, size_t n)
{
	PGresult *res;
	bool ok = commit_group(conn, first, n, &res);
	struct publish_job *pj = first, *next;
	for (size_t i = 0; i < n; i++, pj = next) {
		next = pj->group_next;
		if (ok) {
			answer_from_row(pj, res, (int)i);
		} else if (n == 1 || db_conn_broken(conn)) {
			answer_failure(pj, res);
		} else {
			pj->group_next = NULL;
			commit_and_answer(conn, pj, 1);
			continue;
		}
		finish(pj);
	}
	PQclear(res);
}

static int cmp_opt(const char *a, const char *b)
{
	return a && b ? strcmp(a, b) : (a != NULL) - (b != NULL);
}

static int cmp_lock_order(const void *x, const void *y)
{
	const struct publish_job *a = *(struct publish_job *const *)x;
	const struct publish_job *b = *(struct publish_job *const *)y;
	int c = strcmp(a->tenant, b->tenant);
	if (!c)
		c = strcmp(a->org, b->org);
	if (!c)
		c = strcmp(a->channel, b->channel);
	return c ? c : cmp_opt(a->idempotency_key, b->idempotency_key);
}

/* Orders the n jobs from first by (tenant, org, channel, key): the order
 * herald.publish_batch() takes its locks in, the same on every node, so
 * that concurrent groups cannot deadlock. Concurrent publishes have no
 * order of their own to keep. Returns the new first. */
static struct publish_job *sort_group(struct publish_job *first, size_t n)
{
	struct publish_job **v = xmalloc(n * sizeof(*v));
	for (size_t i = 0; i < n; i++, first = first->group_next)
		v[i] = first;
	qsort(v, n, sizeof(*v), cmp_lock_order);
	for (size_t i = 0; i + 1 < n; i++)
		v[i]->group_next = v[i + 1];
	v[n - 1]->group_next = NULL;
	first = v[0];
	free(v);
	return first;
}

/* Queues the n checked jobs for commit. The first worker to find no
 * commit under way commits group after group until the queue is empty;
 * the others return at once. */
static void group_commit(struct publish_job **pj, size_t n, PGconn *conn)
{
	/* The jobs are answered, and may be freed, by whoever commits them. */
	size_t max = (size_t)pj[0]->cfg->publish_batch_max;
	pthread_mutex_lock(&group_mutex);
	for (size_t i = 0; i < n; i++) {
		pj[i]->group_next = NULL;
		*group_tail = pj[i];
		group_tail = &pj[i]->group_next;
	}
	if (group_committing) {
		pthread_mutex_unlock(&group_mutex);
		return;
	}
	group_committing = true;
	while (group_head) {
		struct publish_job *first = group_head, *last = first;
		size_t k = 1, bytes = first->body.len;
		while (last->group_next && k < max && bytes < GROUP_MAX_BYTES) {
			last = last->group_next;
			bytes += last->body.len;
			k++;
		}
		group_head = last->group_next;
		if (!group_head)
			group_tail = &group_head;
		pthread_mutex_unlock(&group_mutex);
		commit_and_answer(conn, sort_group(first, k), k);
		pthread_mutex_lock(&group_mutex);
	}
	group_committing = false;
	pthread_mutex_unlock(&group_mutex);
}

/* ---- the job ------------------------------------------------------------ */

/* Copies what the audit and the commit need from the identity, which
 * lives only as long as publish_run. */
static void take_identity(struct publish_job *pj, const struct identity *id)
{
	pj->audit = true;
	pj->session_id = id->session_id;
	pj->user_id = xstrdup(id->user_id);
	pj->tenant = xstrdup(id->tenant_id);
	pj->session_org = id->org_id ? xstrdup(id->org_id) : NULL;
}

/* The checks of SPEC §2 in their order, for a resolved session. */
static void check_publish(struct publish_job *pj, PGconn *conn, struct session_request *q)
{
	const char *org;
	struct rules *rules;
	if (!credential_post_allowed(&pj->cred, pj->origin, pj->cfg->cors_origins, &pj->reply))
		return;
	if (!q->channel) {
		reply_problem(&pj->reply, PROBLEM_INVALID_REQUEST, "invalid channel name");
		return;
	}
	if (!session_scope(&q->id, pj->tenant_hint, pj->org_hint, &org, &pj->reply))
		return;
	struct session_heads heads = {.feature = &q->feature, .allowed = &q->allowed};
	if (!policy_decide(&q->id, org, &pj->channel, 1, &heads, "publish", pj->remote,
	                   &pj->reply)) {
		pj->audit = false; /* audited there (authz.denied) */
		return;
	}
	pj->org = xstrdup(org);
	rules = rules_get(conn, q->rules_version);
	if (!rules) {
		reply_problem(&pj->reply, PROBLEM_UNAVAILABLE, "the channel rules cannot be read");
		return;
	}
	if (quota_publish(rules, q->id.session_id, q->id.tenant_id, &pj->reply))
		check_body(pj, rules);
	rules_put(rules);
}

/* How many queued publishes a worker takes with its own, to resolve
 * their sessions in one round trip. */
#define LOOKUP_GROUP_MAX 64

/* Resolves the n jobs' sessions together, checks each, answers the ones
 * refused and commits the rest as one group. */
static void publish_jobs(struct publish_job **pj, size_t n, PGconn *conn)
{
	struct session_request q[LOOKUP_GROUP_MAX];
	memset(q, 0, n * sizeof(*q));
	for (size_t i = 0; i < n; i++) {
		q[i].cred = &pj[i]->cred;
		q[i].org_hint = pj[i]->org_hint;
		/* An invalid channel is not decided; check_publish answers 400. */
		q[i].channel = channel_valid(pj[i]->channel, strlen(pj[i]->channel)) ? pj[i]->channel
		                                                                      : NULL;
	}
	session_lookup_many(conn, q, n, PERMISSION_PUBLISH);
	size_t ready = 0;
	for (size_t i = 0; i < n; i++) {
		if (q[i].status != SESSION_OK) {
			session_reject(q[i].status, &pj[i]->cred, &q[i].id, "publish", pj[i]->remote,
			               &pj[i]->reply);
		} else {
			take_identity(pj[i], &q[i].id);
			check_publish(pj[i], conn, &q[i]);
		}
		identity_free(&q[i].id);
		if (pj[i]->reply.status != 0) {
			finish(pj[i]);
			continue;
		}
		unsigned char hash[CRYPTO_SHA256_LEN];
		crypto_sha256(pj[i]->body.data, pj[i]->body.len, hash);
		crypto_hex(hash, sizeof(hash), pj[i]->body_hash);
		pj[ready++] = pj[i];
	}
	if (ready)
		group_commit(pj, ready, conn);
}

static void publish_run(struct db_job *job, PGconn *conn)
{
	struct db_job *jobs[LOOKUP_GROUP_MAX];
	struct publish_job *pj[LOOKUP_GROUP_MAX];
	jobs[0] = job;
	size_t n = 1 + db_take_queued(publish_run, jobs + 1, LOOKUP_GROUP_MAX - 1);
	for (size_t i = 0; i < n; i++)
		pj[i] = (struct publish_job *)jobs[i];
	publish_jobs(pj, n, conn);
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
	free(pj->idempotency_key);
	free(pj->user_id);
	free(pj->tenant);
	free(pj->session_org);
	free(pj->org);
	buf_free(&pj->body);
	reply_free(&pj->reply);
	memset(pj, 0, sizeof(*pj));
}
