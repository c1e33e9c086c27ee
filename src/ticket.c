/*
 * ticket.c — the ticket-issuing flow (see ticket.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "log.h"
#include "session.h"
#include "ticket.h"
#include "util/buf.h"

#define TICKET_PREFIX "hkt_"

static bool store_ticket(struct ticket_job *tj, PGconn *conn, const struct identity *id,
                         const unsigned char hash[CRYPTO_SHA256_LEN])
{
	static const char sql[] =
		"INSERT INTO herald.tickets (ticket_hash, token_hash, session_id, expires_at,"
		" session_expires_at) VALUES ($1, $2, $3, now() + $4::interval, $5::timestamptz)";
	char session[24], ttl[32];
	snprintf(session, sizeof(session), "%lld", (long long)id->session_id);
	snprintf(ttl, sizeof(ttl), "%lld milliseconds", (long long)tj->cfg->ticket_ttl_ms);
	const char *values[5] = {(const char *)hash, (const char *)id->token_hash, session, ttl,
	                         id->expires_at ? id->expires_at : "infinity"};
	int lengths[5] = {CRYPTO_SHA256_LEN, CRYPTO_SHA256_LEN, 0, 0, 0};
	int formats[5] = {1, 1, 0, 0, 0};
	PGresult *r = PQexecParams(conn, sql, 5, NULL, values, lengths, formats, 0);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		log_msg(LOG_ERROR, "ticket insert failed", "error", PQresultErrorMessage(r), NULL);
	PQclear(r);
	return ok;
}

static void issue(struct ticket_job *tj, PGconn *conn, const struct identity *id)
{
	unsigned char raw[32], hash[CRYPTO_SHA256_LEN];
	char ticket[sizeof(TICKET_PREFIX) + 2 * sizeof(raw)];

	if (!crypto_random(raw, sizeof(raw))) {
		reply_problem(&tj->reply, PROBLEM_UNAVAILABLE, "no randomness available");
		return;
	}
	memcpy(ticket, TICKET_PREFIX, sizeof(TICKET_PREFIX) - 1);
	crypto_hex(raw, sizeof(raw), ticket + sizeof(TICKET_PREFIX) - 1);
	crypto_sha256(ticket, strlen(ticket), hash);
	if (!store_ticket(tj, conn, id, hash)) {
		reply_problem(&tj->reply, PROBLEM_UNAVAILABLE, "the ticket could not be stored");
		return;
	}
	struct buf b = BUF_INIT;
	buf_printf(&b, "{\"ticket\":\"%s\",\"expires_in\":%lld}", ticket,
	           (long long)((tj->cfg->ticket_ttl_ms + 999) / 1000));
	reply_json(&tj->reply, 201, &b);
}

static void ticket_run(struct db_job *job, PGconn *conn)
{
	struct ticket_job *tj = (struct ticket_job *)job;
	struct identity id;
	enum session_status st = session_lookup(conn, &tj->cred, NULL, NULL, 0, &id, NULL);
	if (st != SESSION_OK)
		session_reject(st, &tj->cred, &id, "tickets", tj->remote, &tj->reply);
	else if (credential_post_allowed(&tj->cred, tj->origin, tj->cfg->cors_origins, &tj->reply))
		issue(tj, conn, &id);
	identity_free(&id);
	tj->done(tj);
}

void ticket_prepare(struct ticket_job *tj)
{
	tj->job.run = ticket_run;
}

void ticket_free(struct ticket_job *tj)
{
	free(tj->origin);
	free(tj->remote);
	reply_free(&tj->reply);
	memset(tj, 0, sizeof(*tj));
}
