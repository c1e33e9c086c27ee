/*
 * rules.c — the node's copy of channel rules and event schemas (see
 * rules.h).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "log.h"
#include "rules.h"
#include "schema.h"
#include "util/xmalloc.h"

struct rule_entry {
	char *tenant; /* NULL: every tenant */
	char *pattern;
	struct channel_rule rule;
};

struct schema_entry {
	char *tenant, *pattern, *type;
	struct schema *schema; /* NULL when it did not compile */
	char *broken;          /* why, then */
};

struct limits_entry {
	char *tenant;
	struct tenant_limits limits;
};

struct rules {
	int refs; /* under rules_mutex */
	int64_t version;
	struct rule_entry *rule;
	size_t nrules;
	struct limits_entry *limits;
	size_t nlimits;
	struct schema_entry *schema;
	size_t nschemas;
};

static pthread_mutex_t rules_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct rules *current;
/* Bumped by every notification; a load records the value it started
 * under, so a notification that arrives while loading is not lost. */
static uint64_t notified, loaded_notified;

static void rules_free(struct rules *r)
{
	for (size_t i = 0; i < r->nrules; i++) {
		free(r->rule[i].tenant);
		free(r->rule[i].pattern);
	}
	for (size_t i = 0; i < r->nschemas; i++) {
		struct schema_entry *e = &r->schema[i];
		free(e->tenant);
		free(e->pattern);
		free(e->type);
		if (e->schema)
			schema_free(e->schema);
		free(e->broken);
	}
	for (size_t i = 0; i < r->nlimits; i++)
		free(r->limits[i].tenant);
	free(r->rule);
	free(r->schema);
	free(r->limits);
	free(r);
}

/* Both tables and the version in one statement, hence one snapshot. */
static const char load_sql[] =
	"SELECT 'v', NULL, NULL, NULL, NULL, NULL, NULL, NULL, m.rules_version::text"
	" FROM herald.meta m"
	" UNION ALL"
	" SELECT 'r', r.tenant_id, r.channel_pattern, r.presence::text,"
	"  (extract(epoch FROM r.history) * 1000)::bigint::text, r.max_bytes::text,"
	"  r.require_schema::text, NULL, NULL FROM herald.channel_rules r"
	" UNION ALL"
	" SELECT 's', s.tenant_id, s.channel_pattern, NULL, NULL, NULL, NULL, s.event_type,"
	"  s.schema::text FROM herald.event_schemas s"
	" UNION ALL"
	" SELECT 'l', l.tenant_id, NULL, l.max_connections::text,"
	"  l.max_connections_per_user::text, l.publish_per_second::text,"
	"  l.subscribe_per_minute::text, l.tenant_publish_per_second::text, NULL"
	" FROM herald.limits l";

static char *opt_dup(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : xstrdup(PQgetvalue(res, row, col));
}

static int64_t opt_int(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* A herald.limits column: -1 for NULL (the config value). */
static int64_t opt_limit(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? -1 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static bool opt_true(PGresult *res, int row, int col)
{
	return !PQgetisnull(res, row, col) && strcmp(PQgetvalue(res, row, col), "true") == 0;
}

static void compile_entry(struct schema_entry *e, const char *text, size_t len)
{
	char err[256];
	e->schema = schema_compile(text, len, err, sizeof(err));
	if (!e->schema) {
		e->broken = xstrdup(err);
		/* The SQL trigger refuses what it can see; this is the rest
		 * (a bad keyword value, a regex only PostgreSQL accepts). Events
		 * of this type are refused until the DBA fixes the row. */
		log_msg(LOG_ERROR, "event schema refused", "tenant", e->tenant ? e->tenant : "*",
		        "channel_pattern", e->pattern, "event_type", e->type, "error", err, NULL);
	}
}

static struct rules *rules_load(PGconn *conn)
{
	PGresult *res = PQexecParams(conn, load_sql, 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_msg(LOG_ERROR, "cannot read channel rules and event schemas", "error",
		        PQresultErrorMessage(res), NULL);
		PQclear(res);
		return NULL;
	}
	int n = PQntuples(res);
	struct rules *r = xcalloc(1, sizeof(*r));
	r->refs = 1;
	r->rule = xcalloc((size_t)n + 1, sizeof(*r->rule));
	r->schema = xcalloc((size_t)n + 1, sizeof(*r->schema));
	r->limits = xcalloc((size_t)n + 1, sizeof(*r->limits));
	for (int i = 0; i < n; i++) {
		char kind = PQgetvalue(res, i, 0)[0];
		if (kind == 'v') {
			r->version = opt_int(res, i, 8);
		} else if (kind == 'r') {
			struct rule_entry *e = &r->rule[r->nrules++];
			e->tenant = opt_dup(res, i, 1);
			e->pattern = xstrdup(PQgetvalue(res, i, 2));
			e->rule.presence = opt_true(res, i, 3);
			e->rule.history_ms = opt_int(res, i, 4);
			e->rule.max_bytes = opt_int(res, i, 5);
			e->rule.require_schema = opt_true(res, i, 6);
		} else if (kind == 'l') {
			struct limits_entry *e = &r->limits[r->nlimits++];
			e->tenant = xstrdup(PQgetvalue(res, i, 1));
			e->limits = (struct tenant_limits){
				.max_connections = opt_limit(res, i, 3),
				.max_connections_per_user = opt_limit(res, i, 4),
				.publish_per_second = opt_limit(res, i, 5),
				.subscribe_per_minute = opt_limit(res, i, 6),
				.tenant_publish_per_second = opt_limit(res, i, 7),
			};
		} else {
			struct schema_entry *e = &r->schema[r->nschemas++];
			e->tenant = opt_dup(res, i, 1);
			e->pattern = xstrdup(PQgetvalue(res, i, 2));
			e->type = xstrdup(PQgetvalue(res, i, 7));
			compile_entry(e, PQgetvalue(res, i, 8), (size_t)PQgetlength(res, i, 8));
		}
	}
	PQclear(res);
	return r;
}

struct rules *rules_get(PGconn *conn, int64_t version)
{
	pthread_mutex_lock(&rules_mutex);
	bool stale = !current || notified != loaded_notified ||
	             (version >= 0 && current->version != version);
	if (stale && conn) {
		/* Loading under the lock: a change is rare, and every publish
		 * that needs it must wait for it anyway. */
		uint64_t seen = notified;
		struct rules *fresh = rules_load(conn);
		if (fresh) {
			if (current && --current->refs == 0)
				rules_free(current);
			current = fresh;
			loaded_notified = seen;
			stale = false;
		}
	}
	struct rules *r = stale ? NULL : current;
	if (r)
		r->refs++;
	pthread_mutex_unlock(&rules_mutex);
	return r;
}

void rules_put(struct rules *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&rules_mutex);
	bool last = --r->refs == 0;
	pthread_mutex_unlock(&rules_mutex);
	if (last)
		rules_free(r);
}

void rules_changed(void)
{
	pthread_mutex_lock(&rules_mutex);
	notified++;
	pthread_mutex_unlock(&rules_mutex);
}

void rules_shutdown(void)
{
	pthread_mutex_lock(&rules_mutex);
	struct rules *r = current;
	current = NULL;
	pthread_mutex_unlock(&rules_mutex);
	rules_put(r);
}

/* SPEC §4: a tenant's own rows before the all-tenants rows, then the
 * most specific pattern. Returns a comparable score, -1 for no match. */
static long precedence(const char *row_tenant, const char *pattern, const char *tenant,
                       const char *channel)
{
	if (row_tenant && strcmp(row_tenant, tenant) != 0)
		return -1;
	int rank = channel_rule_rank(pattern, channel);
	if (rank < 0)
		return -1;
	return (row_tenant ? 1L << 20 : 0) + rank;
}

struct channel_rule rules_channel(const struct rules *r, const char *tenant,
                                  const char *channel)
{
	struct channel_rule none = {0};
	const struct channel_rule *best = &none;
	long best_score = -1;
	for (size_t i = 0; i < r->nrules; i++) {
		long s = precedence(r->rule[i].tenant, r->rule[i].pattern, tenant, channel);
		if (s > best_score) {
			best_score = s;
			best = &r->rule[i].rule;
		}
	}
	return *best;
}

bool rules_presence_possible(const struct rules *r, const char *channel)
{
	for (size_t i = 0; i < r->nrules; i++)
		if (r->rule[i].rule.presence && channel_rule_rank(r->rule[i].pattern, channel) >= 0)
			return true;
	return false;
}

const struct schema *rules_schema(const struct rules *r, const char *tenant,
                                  const char *channel, const char *type,
                                  const char **broken)
{
	const struct schema_entry *best = NULL;
	long best_score = -1;
	for (size_t i = 0; i < r->nschemas; i++) {
		const struct schema_entry *e = &r->schema[i];
		if (strcmp(e->type, type) != 0)
			continue;
		long s = precedence(e->tenant, e->pattern, tenant, channel);
		if (s > best_score) {
			best_score = s;
			best = e;
		}
	}
	*broken = best ? best->broken : NULL;
	return best ? best->schema : NULL;
}

struct tenant_limits rules_limits(const struct rules *r, const char *tenant)
{
	for (size_t i = 0; i < r->nlimits; i++)
		if (strcmp(r->limits[i].tenant, tenant) == 0)
			return r->limits[i].limits;
	return (struct tenant_limits){-1, -1, -1, -1, -1};
}

bool rules_any_tenant_cap(const struct rules *r)
{
	for (size_t i = 0; i < r->nlimits; i++)
		if (r->limits[i].limits.max_connections > 0)
			return true;
	return false;
}
