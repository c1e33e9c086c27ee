/*
 * audit.c — batched audit writer with a bounded queue and log spill (see
 * audit.h).
 *
 * Ordering: records are written in the order they were recorded; a
 * failed batch goes back to the head of the queue. At most one batch is
 * in flight, so a slow database costs one worker, never the pool.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "util/buf.h"
#include "util/timeutil.h"
#include "util/utf8.h"
#include "util/xmalloc.h"

#define AUDIT_BATCH 500
#define AUDIT_RETRY_MS 1000

struct entry {
	struct entry *next;
	int64_t at_ms;
	int64_t session_id;
	char *kind, *outcome, *user_id, *tenant_id, *org_id, *channel, *remote_addr, *detail;
	char *json; /* the log form, kept for a spill */
};

static const struct herald_config *cfg;
static pthread_mutex_t audit_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t audit_cond = PTHREAD_COND_INITIALIZER;
static struct entry *head, *tail;
static size_t queued, inflight;
static bool busy;
static bool stopped; /* after audit_stop: records go to the log only */
static int64_t retry_at_ms;
static struct db_job flush_job;

/* Request input can hold any bytes; a row must be valid UTF-8 or the
 * whole batch would be refused by PostgreSQL. */
static char *opt_dup(const char *s)
{
	return s ? utf8_sanitize(s) : NULL;
}

static void json_member(struct buf *b, const char *key, const char *v)
{
	buf_printf(b, ",\"%s\":", key);
	if (v)
		buf_append_json_str(b, v, strlen(v));
	else
		buf_append_str(b, "null");
}

static char *to_json(const struct entry *e)
{
	char ts[32];
	struct buf b = BUF_INIT;
	time_format_rfc3339(e->at_ms, ts);
	buf_printf(&b, "{\"at\":\"%s\"", ts);
	json_member(&b, "kind", e->kind);
	json_member(&b, "outcome", e->outcome);
	if (e->session_id)
		buf_printf(&b, ",\"session_id\":%lld", (long long)e->session_id);
	else
		buf_append_str(&b, ",\"session_id\":null");
	json_member(&b, "user_id", e->user_id);
	json_member(&b, "tenant_id", e->tenant_id);
	json_member(&b, "org_id", e->org_id);
	json_member(&b, "channel", e->channel);
	json_member(&b, "remote_addr", e->remote_addr);
	buf_append_str(&b, ",\"detail\":");
	buf_append_str(&b, e->detail ? e->detail : "{}");
	buf_append_char(&b, '}');
	return buf_steal(&b);
}

static void entry_free(struct entry *e)
{
	free(e->kind);
	free(e->outcome);
	free(e->user_id);
	free(e->tenant_id);
	free(e->org_id);
	free(e->channel);
	free(e->remote_addr);
	free(e->detail);
	free(e->json);
	free(e);
}

static void spill(struct entry *e)
{
	log_json(LOG_WARN, "audit record spilled", "audit", e->json);
	metrics_inc(METRIC_AUDIT_SPILLED);
	entry_free(e);
}

void audit_record(const struct audit_record *r)
{
	struct entry *e = xcalloc(1, sizeof(*e));
	e->at_ms = time_wall_ms();
	e->session_id = r->session_id;
	e->kind = utf8_sanitize(r->kind);
	e->outcome = utf8_sanitize(r->outcome);
	e->user_id = opt_dup(r->user_id);
	e->tenant_id = opt_dup(r->tenant_id);
	e->org_id = opt_dup(r->org_id);
	e->channel = opt_dup(r->channel);
	e->remote_addr = opt_dup(r->remote_addr);
	e->detail = opt_dup(r->detail);
	e->json = to_json(e);
	log_json(LOG_INFO, "audit", "audit", e->json);

	pthread_mutex_lock(&audit_mutex);
	bool full = stopped || queued + inflight >= (size_t)cfg->audit_queue_max;
	if (!full) {
		if (tail)
			tail->next = e;
		else
			head = e;
		tail = e;
		queued++;
	}
	pthread_mutex_unlock(&audit_mutex);
	if (full)
		spill(e);
}

static const char insert_sql[] =
	"INSERT INTO herald.audit_log (at, node_id, kind, outcome, session_id, user_id,"
	" tenant_id, org_id, channel, remote_addr, detail)"
	" SELECT to_timestamp(x.a / 1000.0), $1, x.k, x.o, x.s, x.u, x.t, x.g, x.c, x.r::inet, x.d::jsonb"
	" FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[],"
	" $8::text[], $9::text[], $10::text[], $11::text[]) AS x(a, k, o, s, u, t, g, c, r, d)";

enum insert_result { INSERT_OK, INSERT_RETRY, INSERT_REFUSED };

static enum insert_result insert_batch(PGconn *conn, struct entry *batch, size_t n)
{
	struct buf at = BUF_INIT, sid = BUF_INIT, cols[8] = {BUF_INIT};
	const char **v = xcalloc(n, sizeof(*v));
	buf_append_char(&at, '{');
	buf_append_char(&sid, '{');
	size_t i = 0;
	for (struct entry *e = batch; e; e = e->next, i++) {
		buf_printf(&at, "%s%lld", i ? "," : "", (long long)e->at_ms);
		if (e->session_id)
			buf_printf(&sid, "%s%lld", i ? "," : "", (long long)e->session_id);
		else
			buf_printf(&sid, "%sNULL", i ? "," : "");
	}
	buf_append_char(&at, '}');
	buf_append_char(&sid, '}');
	for (int c = 0; c < 8; c++) {
		i = 0;
		for (struct entry *e = batch; e; e = e->next, i++) {
			char *f[8] = {e->kind, e->outcome, e->user_id, e->tenant_id, e->org_id,
			              e->channel, e->remote_addr, e->detail ? e->detail : "{}"};
			v[i] = f[c];
		}
		db_append_text_array(&cols[c], v, n);
	}
	const char *values[11] = {cfg->node_id, at.data, cols[0].data, cols[1].data, sid.data,
	                          cols[2].data, cols[3].data, cols[4].data, cols[5].data,
	                          cols[6].data, cols[7].data};
	PGresult *r = PQexecParams(conn, insert_sql, 11, NULL, values, NULL, NULL, 0);
	enum insert_result ok = INSERT_OK;
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		/* A data error will not go away by retrying: those rows go to
		 * the log instead of blocking every later record. */
		ok = state && strncmp(state, "22", 2) == 0 ? INSERT_REFUSED : INSERT_RETRY;
		log_msg(LOG_WARN, "audit write failed", "error", PQresultErrorMessage(r), NULL);
	}
	PQclear(r);
	free(v);
	buf_free(&at);
	buf_free(&sid);
	for (int c = 0; c < 8; c++)
		buf_free(&cols[c]);
	return ok;
}

static void flush_run(struct db_job *job, PGconn *conn)
{
	(void)job;
	pthread_mutex_lock(&audit_mutex);
	struct entry *batch = head, *last = NULL;
	size_t n = 0;
	for (struct entry *e = head; e && n < AUDIT_BATCH; e = e->next) {
		last = e;
		n++;
	}
	if (last) {
		head = last->next;
		if (!head)
			tail = NULL;
		last->next = NULL;
	}
	queued -= n;
	inflight = n;
	pthread_mutex_unlock(&audit_mutex);

	enum insert_result ok = n == 0 ? INSERT_OK : conn ? insert_batch(conn, batch, n) : INSERT_RETRY;

	if (ok == INSERT_REFUSED) {
		while (batch) {
			struct entry *next = batch->next;
			spill(batch);
			batch = next;
		}
	}
	pthread_mutex_lock(&audit_mutex);
	if (ok == INSERT_REFUSED) {
		/* spilled above */
	} else if (ok == INSERT_OK) {
		while (batch) {
			struct entry *next = batch->next;
			entry_free(batch);
			batch = next;
		}
		for (size_t i = 0; i < n; i++)
			metrics_inc(METRIC_AUDIT_WRITTEN);
	} else {
		/* Back to the head, in order; retried after a pause. */
		last->next = head;
		head = batch;
		if (!tail)
			tail = last;
		queued += n;
		retry_at_ms = time_mono_ms() + AUDIT_RETRY_MS;
		metrics_inc(METRIC_AUDIT_WRITE_FAILURES);
	}
	inflight = 0;
	busy = false;
	pthread_cond_broadcast(&audit_cond);
	pthread_mutex_unlock(&audit_mutex);
}

/* Audit lock held. */
static bool start_flush_locked(bool ignore_retry)
{
	if (busy || queued == 0 || (!ignore_retry && time_mono_ms() < retry_at_ms))
		return false;
	busy = true;
	flush_job.run = flush_run;
	return true;
}

void audit_start(const struct herald_config *config)
{
	cfg = config;
}

void audit_tick(void)
{
	pthread_mutex_lock(&audit_mutex);
	bool go = start_flush_locked(false);
	pthread_mutex_unlock(&audit_mutex);
	if (go)
		db_submit(&flush_job);
}

size_t audit_backlog(void)
{
	pthread_mutex_lock(&audit_mutex);
	size_t n = queued + inflight;
	pthread_mutex_unlock(&audit_mutex);
	return n;
}

void audit_stop(void)
{
	pthread_mutex_lock(&audit_mutex);
	while (queued || busy) {
		size_t before = queued + inflight;
		if (start_flush_locked(true)) {
			pthread_mutex_unlock(&audit_mutex);
			db_submit(&flush_job);
			pthread_mutex_lock(&audit_mutex);
		}
		while (busy)
			pthread_cond_wait(&audit_cond, &audit_mutex);
		if (queued >= before)
			break; /* the database refused: stop trying */
	}
	struct entry *rest = head;
	head = tail = NULL;
	queued = 0;
	stopped = true;
	pthread_mutex_unlock(&audit_mutex);
	while (rest) {
		struct entry *next = rest->next;
		spill(rest);
		rest = next;
	}
}
