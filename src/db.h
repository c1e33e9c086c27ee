/*
 * db.h — database workers: a pool of libpq connections taking jobs from
 * one queue, so that no HTTP thread ever waits on PostgreSQL.
 *
 * Owns the request connections, their (re)connection with backoff and the
 * job queue. A job's run function executes on a worker thread with a
 * connected PGconn, or with NULL when the database cannot be reached (the
 * job answers "unavailable"); afterwards the job belongs to its submitter
 * again. This and hub.c are the only libpq includers.
 */
#ifndef HERALD_DB_H
#define HERALD_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "compiler.h"

struct db_job;
typedef void (*db_job_cb)(struct db_job *job, PGconn *conn);

struct db_job {
	db_job_cb run;
	struct db_job *next;
};

/* Starts n workers connecting with conninfo (NULL = PG* environment);
 * application_name is "herald worker <node_id>". */
bool db_start(const char *conninfo, const char *node_id, int n) HERALD_MUSTCHECK;
/* Finishes queued jobs, then closes the connections. */
void db_stop(void);
/* Queues job; it runs exactly once. */
void db_submit(struct db_job *job);
/* The same, ahead of every queued job: for work whose lateness has
 * consequences (a node's heartbeat). */
void db_submit_first(struct db_job *job);
/* True when at least one worker holds a working connection. */
bool db_ready(void);
/* Jobs waiting for a worker. */
unsigned db_backlog(void);
/* Takes up to max queued jobs whose run function is run out of the queue,
 * oldest first, into out; returns how many. A worker serves them with its
 * current job, in one round trip where it can. */
size_t db_take_queued(db_job_cb run, struct db_job **out, size_t max);

/* Appends a PostgreSQL array literal of n strings (a NULL pointer is a
 * NULL element) / integers, for a text-format parameter ($1::text[],
 * $1::bigint[]). */
struct buf;
void db_append_text_array(struct buf *b, const char *const *v, size_t n);
void db_append_int8_array(struct buf *b, const int64_t *v, size_t n);

/* Opens a connection for a one-off task (migrations, the hub). */
PGconn *db_connect(const char *conninfo, const char *application_name);
/* Bounds every later statement on conn (statement_timeout, lock_timeout),
 * so that a lock held elsewhere turns into an error (503) instead of a
 * worker, or the hub, waiting without end. */
bool db_bound_statements(PGconn *conn) HERALD_MUSTCHECK;
/* After a failed command: true if the connection itself is broken. */
bool db_conn_broken(PGconn *conn);
/* PQexecParams for a statement run on every request: prepared under
 * name on conn the first time (parsed and planned once per connection,
 * not per call), then executed. name must identify sql for the life of
 * the process. */
PGresult *db_exec_prepared(PGconn *conn, const char *name, const char *sql, int n,
                           const char *const *values, const int *lengths, const int *formats,
                           int result_format);

#endif
