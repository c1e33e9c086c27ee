/*
 * validity.c — expiry timers, revocation notices and re-checks (see
 * validity.h).
 *
 * A re-check job carries the distinct token hashes to resolve and, for a
 * targeted check, the session ids to look at afterwards; results are
 * applied under the registry lock to whichever of those streams are still
 * there. A job that cannot reach the database leaves a full re-check
 * pending for the next tick, so no revocation is forgotten.
 */
#include <json-c/json.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "crypto.h"
#include "db.h"
#include "log.h"
#include "policy.h"
#include "presence.h"
#include "rules.h"
#include "registry.h"
#include "util/buf.h"
#include "util/map.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"
#include "validity.h"

#define RECHECK_BATCH 1000
#define HASH_LEN 32

enum verdict { VERDICT_VALID, VERDICT_REVOKED, VERDICT_EXPIRED };

struct result {
	enum verdict verdict;
	int64_t expires_ms;
	char *features; /* the session's feature list now, NULL = none */
};

struct recheck_job {
	struct db_job job;
	size_t n;
	unsigned char (*hash)[HASH_LEN];
	int64_t *sessions; /* NULL: apply to every stream */
	size_t nsessions;
	struct result *results;
};

static const struct herald_config *cfg;
static atomic_int_fast64_t next_expiry_ms = INT64_MAX;
static atomic_bool recheck_pending;
static atomic_uint_fast64_t generation;
static int64_t next_recheck_ms, retry_at_ms;

void validity_start(const struct herald_config *config)
{
	cfg = config;
	next_recheck_ms = time_mono_ms() + cfg->session_recheck_interval_ms;
}

void validity_watch(int64_t expires_ms)
{
	int_fast64_t cur = atomic_load(&next_expiry_ms);
	while (expires_ms < cur && !atomic_compare_exchange_weak(&next_expiry_ms, &cur, expires_ms))
		;
}

/* ---- ending streams ------------------------------------------------------ */

struct enders {
	struct message *revoked, *expired;
	struct stream **wake;
	size_t n, cap;
};

static void end_stream(struct enders *en, struct stream *s, enum verdict v)
{
	bool rev = v == VERDICT_REVOKED;
	enum stream_deliver_result r = stream_close(s, rev ? en->revoked : en->expired,
	                                            rev ? STREAM_END_REVOKED : STREAM_END_EXPIRED);
	if (r != STREAM_DELIVER_WAKE)
		return;
	if (en->n == en->cap) {
		en->cap = en->cap ? en->cap * 2 : 16;
		en->wake = xrealloc(en->wake, en->cap * sizeof(*en->wake));
	}
	en->wake[en->n++] = s;
}

static void enders_init(struct enders *en)
{
	memset(en, 0, sizeof(*en));
	en->revoked = message_new_control("herald.revoked", "{\"reason\":\"session revoked\"}", true);
	en->expired = message_new_control("herald.expired", "{\"reason\":\"session expired\"}", true);
}

/* Registry lock NOT held: resumes may re-enter the HTTP library. */
static void enders_finish(struct enders *en)
{
	for (size_t i = 0; i < en->n; i++)
		stream_resume(en->wake[i]);
	free(en->wake);
	message_unref(en->revoked);
	message_unref(en->expired);
}

/* ---- expiry ---------------------------------------------------------------- */

struct expiry_scan {
	struct enders *en;
	int64_t now, next;
};

static void expire_one(struct stream *s, void *arg)
{
	struct expiry_scan *sc = arg;
	if (s->expires_ms <= sc->now)
		end_stream(sc->en, s, VERDICT_EXPIRED);
	else if (s->expires_ms < sc->next)
		sc->next = s->expires_ms;
}

static void expire_due(void)
{
	int64_t now = time_wall_ms();
	if (now < atomic_load(&next_expiry_ms))
		return;
	struct enders en;
	enders_init(&en);
	struct expiry_scan sc = {&en, now, INT64_MAX};
	registry_lock();
	/* Reset before the scan: a stream tracked meanwhile lowers it again. */
	atomic_store(&next_expiry_ms, INT64_MAX);
	registry_each_stream(expire_one, &sc);
	registry_unlock();
	validity_watch(sc.next);
	enders_finish(&en);
}

/* ---- re-checks --------------------------------------------------------------- */

static const char recheck_sql[] =
	"SELECT r.revoked_at IS NOT NULL, r.expires_at <= now(),"
	" CASE WHEN isfinite(r.expires_at) THEN (extract(epoch FROM r.expires_at) * 1000)::bigint END,"
	" r.session_id IS NULL, r.features::text"
	" FROM unnest($1::text[]) WITH ORDINALITY AS h(hex, i)"
	" LEFT JOIN LATERAL (SELECT * FROM herald.resolve_session(decode(h.hex, 'hex')) LIMIT 1) r"
	" ON true ORDER BY h.i";

static bool resolve_range(PGconn *conn, struct recheck_job *rj, size_t off, size_t n)
{
	struct buf arr = BUF_INIT;
	const char **hex = xcalloc(n, sizeof(*hex));
	char (*text)[2 * HASH_LEN + 1] = xcalloc(n, sizeof(*text));
	for (size_t i = 0; i < n; i++) {
		crypto_hex(rj->hash[off + i], HASH_LEN, text[i]);
		hex[i] = text[i];
	}
	db_append_text_array(&arr, hex, n);
	const char *values[1] = {arr.data};
	PGresult *r = PQexecParams(conn, recheck_sql, 1, NULL, values, NULL, NULL, 0);
	bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == (int)n;
	if (!ok)
		log_msg(LOG_WARN, "session re-check failed", "error", PQresultErrorMessage(r), NULL);
	for (size_t i = 0; ok && i < n; i++) {
		struct result *res = &rj->results[off + i];
		if (strcmp(PQgetvalue(r, (int)i, 3), "t") == 0 || strcmp(PQgetvalue(r, (int)i, 0), "t") == 0)
			res->verdict = VERDICT_REVOKED; /* unknown now = deleted or unmapped */
		else if (strcmp(PQgetvalue(r, (int)i, 1), "t") == 0)
			res->verdict = VERDICT_EXPIRED;
		else
			res->verdict = VERDICT_VALID;
		res->expires_ms = PQgetisnull(r, (int)i, 2) ? INT64_MAX /* never */
		                                              : strtoll(PQgetvalue(r, (int)i, 2), NULL, 10);
		res->features = PQgetisnull(r, (int)i, 4) ? NULL : xstrdup(PQgetvalue(r, (int)i, 4));
	}
	PQclear(r);
	buf_free(&arr);
	free(hex);
	free(text);
	return ok;
}

/*
 * Resolves every token of rj. When the batch fails on a working
 * connection (a replaced resolve_session() raising for one token), each
 * token is tried alone and one that still fails counts as revoked: a
 * session the server cannot verify keeps no stream open.
 */
static bool resolve_all(PGconn *conn, struct recheck_job *rj)
{
	if (resolve_range(conn, rj, 0, rj->n))
		return true;
	if (db_conn_broken(conn))
		return false;
	for (size_t i = 0; i < rj->n; i++) {
		if (!resolve_range(conn, rj, i, 1)) {
			if (db_conn_broken(conn))
				return false;
			rj->results[i].verdict = VERDICT_REVOKED;
		}
	}
	return true;
}

struct apply {
	struct map by_hash; /* hash bytes -> struct result */
	struct enders en;
	int64_t now;
};

static void apply_one(struct stream *s, void *arg)
{
	struct apply *ap = arg;
	struct result *res = map_get(&ap->by_hash, s->token_hash, HASH_LEN);
	if (!res)
		return; /* opened after the job was built: checked at its open */
	if (res->verdict == VERDICT_VALID && res->expires_ms != s->expires_ms) {
		s->expires_ms = res->expires_ms;
		validity_watch(s->expires_ms);
	}
	if (res->verdict != VERDICT_VALID) {
		end_stream(&ap->en, s, res->verdict);
	} else if (s->expires_ms <= ap->now) {
		end_stream(&ap->en, s, VERDICT_EXPIRED);
	} else {
		/* The session's feature list may have been narrowed. */
		for (size_t i = 0; i < s->nch; i++) {
			if (!policy_feature_listed(res->features, s->ch[i].name)) {
				policy_forbid(s, i, &ap->en.wake, &ap->en.n, &ap->en.cap);
				break;
			}
		}
	}
}

static void apply_results(struct recheck_job *rj)
{
	struct apply ap;
	map_init(&ap.by_hash);
	for (size_t i = 0; i < rj->n; i++)
		map_put(&ap.by_hash, rj->hash[i], HASH_LEN, &rj->results[i]);
	enders_init(&ap.en);
	ap.now = time_wall_ms();
	registry_lock();
	if (!rj->sessions) {
		registry_each_stream(apply_one, &ap);
	} else {
		for (size_t i = 0; i < rj->nsessions; i++) {
			size_t n;
			struct stream *const *v = registry_session_streams(rj->sessions[i], &n);
			/* apply_one never removes, so v stays valid through the loop */
			for (size_t j = 0; j < n; j++)
				apply_one(v[j], &ap);
		}
	}
	registry_unlock();
	enders_finish(&ap.en);
	map_free(&ap.by_hash);
}

static void recheck_free(struct recheck_job *rj)
{
	for (size_t i = 0; rj->results && i < rj->n; i++)
		free(rj->results[i].features);
	free(rj->hash);
	free(rj->sessions);
	free(rj->results);
	free(rj);
}

static void recheck_run(struct db_job *job, PGconn *conn)
{
	struct recheck_job *rj = (struct recheck_job *)job;
	if (conn && resolve_all(conn, rj))
		apply_results(rj);
	else
		atomic_store(&recheck_pending, true);
	recheck_free(rj);
}

/* Collects distinct token hashes into a job. */
struct collect {
	struct recheck_job *rj;
	struct map seen;
	size_t cap;
};

static void collect_one(struct stream *s, void *arg)
{
	struct collect *c = arg;
	if (map_get(&c->seen, s->token_hash, HASH_LEN))
		return;
	if (c->rj->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->rj->hash = xrealloc(c->rj->hash, c->cap * sizeof(*c->rj->hash));
	}
	memcpy(c->rj->hash[c->rj->n++], s->token_hash, HASH_LEN);
	map_put(&c->seen, s->token_hash, HASH_LEN, s);
}

/* Registry lock NOT held. Submits in batches of RECHECK_BATCH hashes. */
static void submit(struct recheck_job *all)
{
	for (size_t off = 0; off < all->n; off += RECHECK_BATCH) {
		struct recheck_job *rj = xcalloc(1, sizeof(*rj));
		rj->job.run = recheck_run;
		rj->n = all->n - off < RECHECK_BATCH ? all->n - off : RECHECK_BATCH;
		rj->hash = xmalloc(rj->n * sizeof(*rj->hash));
		memcpy(rj->hash, all->hash + off, rj->n * sizeof(*rj->hash));
		rj->results = xcalloc(rj->n, sizeof(*rj->results));
		if (all->sessions) {
			rj->nsessions = all->nsessions;
			rj->sessions = xmalloc(all->nsessions * sizeof(*rj->sessions));
			memcpy(rj->sessions, all->sessions, all->nsessions * sizeof(*rj->sessions));
		}
		db_submit(&rj->job);
	}
	recheck_free(all);
}

uint64_t validity_generation(void)
{
	return atomic_load(&generation);
}

void validity_recheck_all(void)
{
	atomic_fetch_add(&generation, 1); /* before collecting: see validity.h */
	struct collect c = {xcalloc(1, sizeof(struct recheck_job)), {0}, 0};
	map_init(&c.seen);
	registry_lock();
	registry_each_stream(collect_one, &c);
	registry_unlock();
	map_free(&c.seen);
	submit(c.rj);
}

static void recheck_sessions(const int64_t *ids, size_t n)
{
	atomic_fetch_add(&generation, 1); /* before collecting: see validity.h */
	struct collect c = {xcalloc(1, sizeof(struct recheck_job)), {0}, 0};
	map_init(&c.seen);
	c.rj->sessions = xmalloc((n ? n : 1) * sizeof(*ids));
	registry_lock();
	for (size_t i = 0; i < n; i++) {
		size_t k;
		struct stream *const *v = registry_session_streams(ids[i], &k);
		if (k)
			c.rj->sessions[c.rj->nsessions++] = ids[i];
		for (size_t j = 0; j < k; j++)
			collect_one(v[j], &c);
	}
	registry_unlock();
	map_free(&c.seen);
	submit(c.rj);
}

void validity_recheck_session(int64_t session_id)
{
	recheck_sessions(&session_id, 1);
}

void validity_control(const char *payload)
{
	struct json_object *o = json_tokener_parse(payload), *k, *ids;
	const char *kind = o && json_object_object_get_ex(o, "k", &k) ? json_object_get_string(k) : NULL;
	struct json_object *tenant;
	if (kind && strcmp(kind, "recheck") == 0) {
		validity_recheck_all();
	} else if (kind && strcmp(kind, "policy") == 0) {
		bool one = json_object_object_get_ex(o, "tenant", &tenant) &&
		           json_object_is_type(tenant, json_type_string);
		policy_changed(one ? json_object_get_string(tenant) : NULL);
	} else if (kind && strcmp(kind, "rules") == 0) {
		rules_changed();
		presence_rules_changed();
	} else if (kind && strcmp(kind, "sessions") == 0 &&
	           json_object_object_get_ex(o, "ids", &ids) &&
	           json_object_is_type(ids, json_type_array)) {
		size_t n = json_object_array_length(ids);
		int64_t *v = xmalloc((n ? n : 1) * sizeof(*v));
		for (size_t i = 0; i < n; i++)
			v[i] = json_object_get_int64(json_object_array_get_idx(ids, i));
		recheck_sessions(v, n);
		free(v);
	} else {
		log_msg(LOG_WARN, "unknown control notification", NULL);
	}
	json_object_put(o);
}

void validity_tick(void)
{
	int64_t now = time_mono_ms();
	expire_due();
	bool retry = now >= retry_at_ms && atomic_exchange(&recheck_pending, false);
	if (retry)
		retry_at_ms = now + 1000; /* a failing database is not asked every tick */
	if (now >= next_recheck_ms || retry) {
		next_recheck_ms = now + cfg->session_recheck_interval_ms;
		validity_recheck_all();
	}
}
