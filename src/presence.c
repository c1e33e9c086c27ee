/*
 * presence.c — presence across the cluster (see presence.h).
 *
 * Member counts change under the registry lock (stream subscribed or
 * removed) and only touch memory: a member whose count changed is marked
 * dirty, and one job at a time writes every dirty member's current count
 * with herald.presence_set(). So 10 000 streams opening in a burst cost a
 * few statements, and a member who opens and closes between two writes
 * costs none. The same job writes caps.c's streams per user, which need
 * this node's registration too.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "caps.h"
#include "channel.h"
#include "counts.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "presence.h"
#include "registry.h"
#include "rules.h"
#include "session.h"
#include "stream.h"
#include "util/buf.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

static const struct herald_config *cfg;
/* This node's members: tenant \0 org \0 channel \0 user \0 -> streams. */
static struct counts members;
/* One member write at a time, and none after the goodbye. */
static pthread_mutex_t write_mutex = PTHREAD_MUTEX_INITIALIZER;
/* The node's row is written (and its stale rows of an earlier run gone)
 * before any member is; nothing is written after the goodbye. */
static atomic_bool started, stopped;
static int64_t next_heartbeat_ms;

static struct node_job {
	struct db_job job;
	atomic_bool busy;
} start_job, flush_job, heartbeat_job, stop_job, remark_job;
/* A rules notice arrived: open streams must be re-marked (remark_run). */
static atomic_bool remark_wanted;

static void change(const struct stream *s, size_t ch, int delta)
{
	struct buf key = BUF_INIT;
	const char *part[4] = {s->tenant_id, s->org_id, s->ch[ch].name, s->user_id};
	for (int i = 0; i < 4; i++)
		buf_append(&key, part[i], strlen(part[i]) + 1);
	counts_add(&members, key.data, key.len, delta);
	buf_free(&key);
}

void presence_joined(const struct stream *s, size_t ch)
{
	change(s, ch, 1);
}

void presence_left(const struct stream *s, size_t ch)
{
	change(s, ch, -1);
}

/* ---- writing members ---------------------------------------------------- */

static bool write_batch(PGconn *conn, const struct count_batch *b)
{
	static const char sql[] =
		"SELECT herald.presence_set($1, $2::text[], $3::text[], $4::text[], $5::text[],"
		" $6::int[])";
	const char **part[4];
	int64_t *counts = xcalloc(b->n + 1, sizeof(*counts));
	for (int k = 0; k < 4; k++)
		part[k] = xcalloc(b->n + 1, sizeof(char *));
	for (size_t i = 0; i < b->n; i++) {
		const char *p[4];
		(void)count_key_parts(b->e[i], p, 4);
		for (int k = 0; k < 4; k++)
			part[k][i] = p[k];
		counts[i] = b->e[i]->count > 0 ? b->e[i]->count : 0;
	}
	struct buf arr[5] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
	for (int k = 0; k < 4; k++)
		db_append_text_array(&arr[k], part[k], b->n);
	db_append_int8_array(&arr[4], counts, b->n);
	const char *values[6] = {cfg->node_id, arr[0].data, arr[1].data, arr[2].data, arr[3].data,
	                         arr[4].data};
	PGresult *r = PQexecParams(conn, sql, 6, NULL, values, NULL, NULL, 0);
	bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
	if (ok)
		metrics_inc(METRIC_PRESENCE_WRITES);
	else
		log_msg(LOG_WARN, "presence write failed", "error", PQresultErrorMessage(r), NULL);
	PQclear(r);
	for (int k = 0; k < 5; k++)
		buf_free(&arr[k]);
	for (int k = 0; k < 4; k++)
		free(part[k]);
	free(counts);
	return ok;
}

static void flush_run(struct db_job *job, PGconn *conn)
{
	pthread_mutex_lock(&write_mutex);
	if (!atomic_load(&stopped)) {
		struct count_batch b = counts_take(&members, false);
		if (b.n && (!conn || !write_batch(conn, &b)))
			counts_put_back(&members, &b);
		count_batch_free(&b);
		(void)caps_write(conn, cfg->node_id); /* kept for the next run when it fails */
	}
	pthread_mutex_unlock(&write_mutex);
	atomic_store(&((struct node_job *)job)->busy, false);
}

/* ---- the node's row --------------------------------------------------------- */

/* node_timeout, raised to two heartbeats: a shorter one would remove
 * live nodes. The same for reaping and for listing. */
static void node_timeout(char *out, size_t n)
{
	int64_t t = cfg->node_timeout_ms;
	if (t < 2 * cfg->node_heartbeat_interval_ms)
		t = 2 * cfg->node_heartbeat_interval_ms;
	snprintf(out, n, "%lld milliseconds", (long long)t);
}

/* Runs sql with the node id as $1 (and the timeout as $2 when it has
 * one); the first column of its row, a boolean, goes to *result. */
static bool node_call(PGconn *conn, const char *sql, int nparams, const char *what,
                      bool *result)
{
	char timeout[32];
	node_timeout(timeout, sizeof(timeout));
	const char *values[2] = {cfg->node_id, timeout};
	PGresult *r = conn ? PQexecParams(conn, sql, nparams, NULL, values, NULL, NULL, 0) : NULL;
	bool ok = r && PQresultStatus(r) == PGRES_TUPLES_OK;
	if (r && !ok)
		log_msg(LOG_WARN, what, "error", PQresultErrorMessage(r), NULL);
	if (ok && result)
		*result = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return ok;
}

static void start_run(struct db_job *job, PGconn *conn)
{
	if (node_call(conn, "SELECT herald.node_start($1)", 1, "presence start failed", NULL))
		atomic_store(&started, true);
	atomic_store(&((struct node_job *)job)->busy, false);
}

static void heartbeat_run(struct db_job *job, PGconn *conn)
{
	bool known = true;
	if (node_call(conn, "SELECT herald.node_heartbeat($1, $2::interval)", 2,
	              "node heartbeat failed", &known) && !known) {
		/* Taken for dead (the database was away longer than
		 * node_timeout): the survivors removed our members. */
		log_msg(LOG_WARN, "this node was taken for dead; writing its members again", NULL);
		struct count_batch b = counts_take(&members, true);
		counts_put_back(&members, &b);
		count_batch_free(&b);
		caps_rewrite_all();
	}
	atomic_store(&((struct node_job *)job)->busy, false);
}

static void stop_run(struct db_job *job, PGconn *conn)
{
	(void)job;
	pthread_mutex_lock(&write_mutex);
	(void)node_call(conn, "SELECT herald.node_stop($1)", 1, "presence stop failed", NULL);
	pthread_mutex_unlock(&write_mutex);
}

/* ---- rule changes on open streams --------------------------------------------- */

struct remark {
	struct rules *rules;
	bool changed;
};

/* Registry lock held. */
static void remark_stream(struct stream *s, void *arg)
{
	struct remark *rm = arg;
	for (size_t i = 0; i < s->nch; i++) {
		bool want = rules_channel(rm->rules, s->tenant_id, s->ch[i].name).presence;
		if (want == s->ch[i].presence)
			continue;
		if (s->registered && want)
			presence_joined(s, i);
		else if (s->registered)
			presence_left(s, i);
		s->ch[i].presence = want;
		s->ch[i].presence_visible = false; /* until the re-check decides */
		rm->changed = true;
	}
}

/* Channel rules changed: streams already open join or leave as members
 * of the channels whose presence was turned on or off, and the policy
 * re-check decides who may now see presence on them. */
static void remark_run(struct db_job *job, PGconn *conn)
{
	struct remark rm = {rules_get(conn, -1), false};
	if (rm.rules) {
		registry_lock();
		registry_each_stream(remark_stream, &rm);
		registry_unlock();
		rules_put(rm.rules);
		if (rm.changed)
			policy_changed(NULL);
	} else {
		atomic_store(&remark_wanted, true); /* again at a later tick */
	}
	atomic_store(&((struct node_job *)job)->busy, false);
}

void presence_rules_changed(void)
{
	atomic_store(&remark_wanted, true);
}

static void submit(struct node_job *j, db_job_cb run, void (*queue)(struct db_job *))
{
	if (atomic_exchange(&j->busy, true))
		return;
	j->job.run = run;
	queue(&j->job);
}

void presence_start(const struct herald_config *c)
{
	cfg = c;
	counts_init(&members, true);
}

void presence_tick(void)
{
	if (atomic_load(&stopped))
		return;
	if (!atomic_load(&started)) {
		submit(&start_job, start_run, db_submit);
		return;
	}
	if (atomic_load(&remark_wanted) && !atomic_load(&remark_job.busy)) {
		atomic_store(&remark_wanted, false);
		submit(&remark_job, remark_run, db_submit);
	}
	int64_t now = time_mono_ms();
	if (now >= next_heartbeat_ms) {
		next_heartbeat_ms = now + cfg->node_heartbeat_interval_ms;
		/* First in the queue: late behind slow requests, a live node
		 * would be taken for dead. */
		submit(&heartbeat_job, heartbeat_run, db_submit_first);
	}
	if (counts_changed(&members) || caps_changed())
		submit(&flush_job, flush_run, db_submit);
}

void presence_stop(void)
{
	atomic_store(&stopped, true);
	if (atomic_load(&started)) {
		stop_job.job.run = stop_run;
		db_submit(&stop_job.job);
	}
}

void presence_free(void)
{
	counts_free(&members);
}

/* ---- GET /v1/channels/{channel}/presence ------------------------------------ */

static void list_members(struct presence_job *pj, PGconn *conn, const char *tenant,
                         const char *org)
{
	static const char sql[] =
		"SELECT coalesce(json_agg(json_build_object('user_id', m.user_id,"
		" 'joined_at', to_char(m.joined_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
		" 'connections', m.n) ORDER BY m.user_id), '[]')"
		" FROM (SELECT p.user_id, min(p.joined_at) AS joined_at, sum(p.connections) AS n"
		"  FROM herald.presence p JOIN herald.nodes n ON n.node_id = p.node_id"
		"  WHERE p.tenant_id = $1 AND p.org_id = $2 AND p.channel = $3"
		"   AND n.heartbeat_at > now() - $4::interval"
		"  GROUP BY p.user_id) m";
	char timeout[32];
	node_timeout(timeout, sizeof(timeout));
	const char *values[4] = {tenant, org, pj->channel, timeout};
	PGresult *r = PQexecParams(conn, sql, 4, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
		struct buf b = BUF_INIT;
		buf_append(&b, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
		reply_json(&pj->reply, 200, &b);
	} else {
		log_msg(LOG_ERROR, "presence read failed", "error", PQresultErrorMessage(r), NULL);
		reply_problem(&pj->reply, PROBLEM_UNAVAILABLE, "presence cannot be read");
	}
	PQclear(r);
}

/* Refusals after authentication other than authz.denied (written by
 * policy_decide): invalid channel, scope, presence off. */
static void audit_refusal(const struct presence_job *pj, const struct identity *id)
{
	struct audit_record a = {.channel = pj->channel, .remote_addr = pj->remote};
	session_audit_who(&a, id);
	session_audit_refusal(&a, "presence", &pj->reply);
}

static void presence_run(struct db_job *job, PGconn *conn)
{
	struct presence_job *pj = (struct presence_job *)job;
	struct identity id;
	const char *org;
	bool valid = channel_valid(pj->channel, strlen(pj->channel));
	int64_t seq, trimmed;
	bool feature, allowed;
	struct session_heads heads = {.permission = PERMISSION_PRESENCE, .seq = &seq,
	                              .trimmed = &trimmed, .feature = &feature, .allowed = &allowed};
	enum session_status st = session_lookup(conn, &pj->cred, pj->org_hint, &pj->channel,
	                                        valid ? 1 : 0, &id, &heads);
	struct rules *rules = NULL;
	bool audited = false;
	if (st != SESSION_OK) {
		session_reject(st, &pj->cred, &id, "presence", pj->remote, &pj->reply);
	} else if (!valid) {
		reply_problem(&pj->reply, PROBLEM_INVALID_REQUEST, "invalid channel name");
	} else if (!session_scope(&id, pj->tenant_hint, pj->org_hint, &org, &pj->reply)) {
		/* reply prepared */
	} else if (!policy_decide(&id, org, &pj->channel, 1, &heads, "presence", pj->remote,
	                          &pj->reply)) {
		audited = true; /* there, as authz.denied */
	} else if (!(rules = rules_get(conn, heads.rules_version))) {
		reply_problem(&pj->reply, PROBLEM_UNAVAILABLE, "the channel rules cannot be read");
	} else if (!rules_channel(rules, id.tenant_id, pj->channel).presence) {
		reply_problem(&pj->reply, PROBLEM_NOT_FOUND, "presence is off for this channel");
	} else {
		list_members(pj, conn, id.tenant_id, org);
	}
	if (st == SESSION_OK && !audited && pj->reply.status >= 400)
		audit_refusal(pj, &id);
	rules_put(rules);
	identity_free(&id);
	pj->done(pj);
}

void presence_prepare(struct presence_job *pj)
{
	pj->job.run = presence_run;
}

void presence_job_free(struct presence_job *pj)
{
	free(pj->channel);
	free(pj->tenant_hint);
	free(pj->org_hint);
	free(pj->remote);
	reply_free(&pj->reply);
	memset(pj, 0, sizeof(*pj));
}
