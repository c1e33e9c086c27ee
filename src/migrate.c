/*
 * migrate.c — schema migrations (see migrate.h).
 *
 * The SQL files are compiled into the binary (embedded.c), so an installed
 * herald can always migrate its own database. Each file is idempotent on
 * its own as well, for DBAs who apply them with psql.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "embedded.h"
#include "log.h"
#include "migrate.h"
#include "util/buf.h"

/* Any fixed key: serialises concurrent `herald --migrate` runs. */
#define MIGRATE_LOCK "SELECT pg_advisory_lock(7283457201)"

static PGresult *exec_checked(PGconn *c, const char *sql, const char *step)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		log_msg(LOG_ERROR, "migration failed", "step", step, "error",
		        PQresultErrorMessage(r), NULL);
		PQclear(r);
		return NULL;
	}
	return r;
}

static bool exec_ok(PGconn *c, const char *sql, const char *step)
{
	PGresult *r = exec_checked(c, sql, step);
	PQclear(r);
	return r != NULL;
}

/* Highest applied version: 0 for a fresh database, -1 on error. */
static long applied_version(PGconn *c)
{
	PGresult *r = exec_checked(c, "SELECT to_regclass('herald.schema_migrations') IS NOT NULL",
	                           "read version");
	if (!r)
		return -1;
	bool exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (!exists)
		return 0;
	r = exec_checked(c, "SELECT coalesce(max(version), 0) FROM herald.schema_migrations",
	                 "read version");
	if (!r)
		return -1;
	long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return v;
}

static bool check_encoding(PGconn *c)
{
	PGresult *r = exec_checked(c, "SHOW server_encoding", "check encoding");
	bool ok = r && strcmp(PQgetvalue(r, 0, 0), "UTF8") == 0;
	if (r && !ok)
		log_msg(LOG_ERROR, "the database encoding must be UTF8", "encoding",
		        PQgetvalue(r, 0, 0), NULL);
	PQclear(r);
	return ok;
}

static bool apply_file(PGconn *c, const struct embedded_file *f)
{
	struct buf sql = BUF_INIT;
	buf_append_str(&sql, "BEGIN;\n");
	buf_append(&sql, f->data, f->len);
	buf_append_str(&sql, "\n;COMMIT;");
	bool ok = exec_ok(c, sql.data, f->name);
	buf_free(&sql);
	if (!ok)
		exec_ok(c, "ROLLBACK", "rollback");
	return ok;
}

bool migrate_run(const char *conninfo)
{
	PGconn *c = db_connect(conninfo, "herald migrate");
	if (!c)
		return false;
	bool ok = check_encoding(c) && exec_ok(c, "SET client_min_messages = warning", "setup") &&
	          exec_ok(c, MIGRATE_LOCK, "lock");
	long have = ok ? applied_version(c) : -1;
	long version = have;
	for (const struct embedded_file *f = embedded_files; ok && f->name; f++) {
		long v;
		if (strncmp(f->name, "sql/", 4) != 0 || sscanf(f->name + 4, "%ld_", &v) != 1)
			continue;
		if (v <= have)
			continue;
		ok = apply_file(c, f);
		if (ok) {
			version = v;
			log_msg(LOG_INFO, "migration applied", "file", f->name, NULL);
		}
	}
	if (ok) {
		char v[24];
		snprintf(v, sizeof(v), "%ld", version);
		log_msg(LOG_INFO, "schema is current", "version", v, NULL);
	}
	PQfinish(c);
	return ok;
}
