/*
 * db.c — the database worker pool (see db.h).
 *
 * A worker whose connection breaks reconnects with exponential backoff
 * (100 ms doubling to 5 s); while no connection is up, jobs run with a
 * NULL connection so that callers answer 503 at once instead of queuing
 * behind an outage.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "util/buf.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

struct worker {
	pthread_t thread;
	PGconn *conn;
	int64_t retry_at_ms;
	int64_t backoff_ms;
};

static pthread_mutex_t queue_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_cond = PTHREAD_COND_INITIALIZER;
static struct db_job *queue_head, *queue_tail;
static unsigned queue_len;
static bool stopping;
static struct worker *workers;
static int nworkers;
static char *db_conninfo, *db_appname;
static atomic_int connected_workers;

/* Server notices (e.g. "terminating connection due to administrator
 * command") go to herald's log instead of libpq's default stderr print. */
static void log_notice(void *arg, const char *message)
{
	(void)arg;
	char *msg = xstrdup(message);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	log_msg(LOG_INFO, "database notice", "detail", msg, NULL);
	free(msg);
}

PGconn *db_connect(const char *conninfo, const char *application_name)
{
	/* Keepalives make a silently dead server (no FIN) visible within
	 * about 25 s instead of the kernel's two hours. */
	const char *keys[] = {"dbname", "application_name", "connect_timeout", "keepalives",
	                      "keepalives_idle", "keepalives_interval", "keepalives_count", NULL};
	const char *vals[] = {conninfo ? conninfo : "", application_name, "5", "1", "10", "5", "3",
	                      NULL};
	/* expand_dbname lets conninfo be a full connection string or URI
	 * while application_name and the timeout still apply. */
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(c) != CONNECTION_OK) {
		char *msg = xstrdup(PQerrorMessage(c));
		for (char *p = msg; *p; p++)
			if (*p == '\n')
				*p = ' ';
		log_msg(LOG_WARN, "database connection failed", "error", msg, NULL);
		free(msg);
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, log_notice, NULL);
	return c;
}

bool db_bound_statements(PGconn *conn)
{
	PGresult *r = PQexec(conn, "SET statement_timeout = '15s'; SET lock_timeout = '5s'");
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		log_msg(LOG_ERROR, "cannot set statement timeouts", "error", PQresultErrorMessage(r), NULL);
	PQclear(r);
	return ok;
}

bool db_conn_broken(PGconn *conn)
{
	return PQstatus(conn) != CONNECTION_OK;
}

static bool is_sqlstate(const PGresult *r, const char *state)
{
	const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	return s && strcmp(s, state) == 0;
}

PGresult *db_exec_prepared(PGconn *conn, const char *name, const char *sql, int n,
                           const char *const *values, const int *lengths, const int *formats,
                           int result_format)
{
	/* Asking is cheaper than tracking: a connection that lacks the
	 * statement (new, or reconnected) answers 26000 once. */
	PGresult *r = PQexecPrepared(conn, name, n, values, lengths, formats, result_format);
	if (!is_sqlstate(r, "26000"))
		return r;
	PQclear(r);
	r = PQprepare(conn, name, sql, n, NULL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		log_msg(LOG_ERROR, "cannot prepare a statement", "statement", name, "error",
		        PQresultErrorMessage(r), NULL);
		return r;
	}
	PQclear(r);
	return PQexecPrepared(conn, name, n, values, lengths, formats, result_format);
}

static void worker_disconnect(struct worker *w)
{
	if (w->conn) {
		PQfinish(w->conn);
		w->conn = NULL;
		atomic_fetch_sub(&connected_workers, 1);
	}
}

/* Returns a usable connection or NULL while backing off. */
/*
 * An idle connection whose server went away still reads as OK until a
 * query fails on it. Reading what is waiting on the socket (the server's
 * FATAL notice, then EOF) without blocking finds out first, so no job is
 * lost to a connection that is already dead.
 */
static bool conn_alive(PGconn *c)
{
	for (int i = 0; i < 4; i++) {
		struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
		if (poll(&p, 1, 0) <= 0)
			break;
		if (!PQconsumeInput(c))
			return false;
	}
	return !db_conn_broken(c);
}

static PGconn *worker_conn(struct worker *w)
{
	if (w->conn && !conn_alive(w->conn)) {
		log_msg(LOG_WARN, "database connection lost", NULL);
		worker_disconnect(w);
	}
	if (w->conn)
		return w->conn;
	int64_t now = time_mono_ms();
	if (now < w->retry_at_ms)
		return NULL;
	w->conn = db_connect(db_conninfo, db_appname);
	if (w->conn && !db_bound_statements(w->conn)) {
		PQfinish(w->conn);
		w->conn = NULL;
	}
	if (!w->conn) {
		w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : 100;
		if (w->backoff_ms > 5000)
			w->backoff_ms = 5000;
		w->retry_at_ms = now + w->backoff_ms;
		return NULL;
	}
	w->backoff_ms = 0;
	atomic_fetch_add(&connected_workers, 1);
	return w->conn;
}

static struct db_job *take_job(struct worker *w)
{
	pthread_mutex_lock(&queue_mutex);
	while (!queue_head && !stopping) {
		if (!w->conn) {
			/* Reconnect in the background even when idle, so /readyz
			 * recovers without waiting for traffic. */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&queue_cond, &queue_mutex, &ts);
			if (!queue_head) {
				pthread_mutex_unlock(&queue_mutex);
				worker_conn(w);
				pthread_mutex_lock(&queue_mutex);
			}
			continue;
		}
		pthread_cond_wait(&queue_cond, &queue_mutex);
	}
	struct db_job *job = queue_head;
	if (job) {
		queue_head = job->next;
		if (!queue_head)
			queue_tail = NULL;
		queue_len--;
	}
	pthread_mutex_unlock(&queue_mutex);
	return job;
}

size_t db_take_queued(db_job_cb run, struct db_job **out, size_t max)
{
	size_t n = 0;
	pthread_mutex_lock(&queue_mutex);
	struct db_job **link = &queue_head, *prev = NULL;
	while (*link && n < max) {
		struct db_job *j = *link;
		if (j->run == run) {
			*link = j->next;
			out[n++] = j;
			queue_len--;
		} else {
			prev = j;
			link = &j->next;
		}
	}
	queue_tail = queue_head ? (*link ? queue_tail : prev) : NULL;
	pthread_mutex_unlock(&queue_mutex);
	return n;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct db_job *job;
	while ((job = take_job(w))) {
		PGconn *c = worker_conn(w);
		job->next = NULL;
		job->run(job, c);
	}
	worker_disconnect(w);
	return NULL;
}

bool db_start(const char *conninfo, const char *node_id, int n)
{
	struct buf name = BUF_INIT;
	buf_printf(&name, "herald worker %s", node_id);
	db_appname = buf_steal(&name);
	db_conninfo = conninfo ? xstrdup(conninfo) : NULL;
	nworkers = n;
	workers = xcalloc((size_t)n, sizeof(*workers));
	for (int i = 0; i < n; i++) {
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
			nworkers = i;
			return false;
		}
	}
	return true;
}

void db_stop(void)
{
	pthread_mutex_lock(&queue_mutex);
	stopping = true;
	pthread_cond_broadcast(&queue_cond);
	pthread_mutex_unlock(&queue_mutex);
	for (int i = 0; i < nworkers; i++)
		pthread_join(workers[i].thread, NULL);
	free(workers);
	free(db_conninfo);
	free(db_appname);
	workers = NULL;
}

void db_submit(struct db_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&queue_mutex);
	if (queue_tail)
		queue_tail->next = job;
	else
		queue_head = job;
	queue_tail = job;
	queue_len++;
	pthread_cond_signal(&queue_cond);
	pthread_mutex_unlock(&queue_mutex);
}

void db_submit_first(struct db_job *job)
{
	pthread_mutex_lock(&queue_mutex);
	job->next = queue_head;
	queue_head = job;
	if (!queue_tail)
		queue_tail = job;
	queue_len++;
	pthread_cond_signal(&queue_cond);
	pthread_mutex_unlock(&queue_mutex);
}

bool db_ready(void)
{
	return atomic_load(&connected_workers) > 0;
}

unsigned db_backlog(void)
{
	pthread_mutex_lock(&queue_mutex);
	unsigned n = queue_len;
	pthread_mutex_unlock(&queue_mutex);
	return n;
}

void db_append_text_array(struct buf *b, const char *const *v, size_t n)
{
	buf_append_char(b, '{');
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_append_char(b, ',');
		if (!v[i]) {
			buf_append_str(b, "NULL");
			continue;
		}
		buf_append_char(b, '"');
		for (const char *p = v[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				buf_append_char(b, '\\');
			buf_append_char(b, *p);
		}
		buf_append_char(b, '"');
	}
	buf_append_char(b, '}');
}

void db_append_int8_array(struct buf *b, const int64_t *v, size_t n)
{
	buf_append_char(b, '{');
	for (size_t i = 0; i < n; i++)
		buf_printf(b, "%s%lld", i ? "," : "", (long long)v[i]);
	buf_append_char(b, '}');
}
