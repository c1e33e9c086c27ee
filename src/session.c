/*
 * session.c — the session query (see session.h).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include "audit.h"
#include "crypto.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "reply.h"
#include "session.h"
#include "util/buf.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"

/*
 * $1 the token's (or ticket's) hash, $2 channels, $3 org hint, $4 whether
 * $1 is a ticket, $5 whether that ticket came with a valid cursor proof,
 * $6 the permission to decide for each channel (NULL: none), $7 a second
 * one (NULL: none). Per channel: "seq:trimmed:feature enabled:authorized:
 * second authorized", all in this one round trip, with the streams the
 * user (and, if $9, the tenant) has on nodes other than $8 (NULL: not
 * asked),
 * with the version of the channel rules and event schemas (rules.h).
 * A ticket is claimed (first use) atomically: of two concurrent first uses
 * one wins. A used ticket resolves only with a proof. Either way the
 * session is then judged through resolve_session(), so revocation voids
 * tickets.
 */
static const char lookup_sql[] =
	"WITH claim AS ("
	"  UPDATE herald.tickets t SET used_at = now()"
	"  WHERE $4 AND t.ticket_hash = $1 AND t.used_at IS NULL AND t.expires_at > now()"
	"  RETURNING t.token_hash),"
	" k AS ("
	"  SELECT $1::bytea AS h WHERE NOT $4"
	"  UNION ALL SELECT claim.token_hash FROM claim"
	"  UNION ALL SELECT t.token_hash FROM herald.tickets t"
	"   WHERE $4 AND $5 AND t.ticket_hash = $1 AND t.used_at IS NOT NULL)"
	" SELECT r.session_id, r.kind, r.user_id, r.tenant_id, r.org_id, r.features::text,"
	" to_char(r.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
	" r.revoked_at IS NOT NULL, r.expires_at <= now(),"
	" (SELECT m.epoch FROM herald.meta m),"
	" CASE WHEN cardinality($2::text[]) > 0 THEN array_to_string(ARRAY("
	"   SELECT coalesce(h.seq, 0) || ':' || coalesce(t.trimmed_seq, 0) || ':' ||"
	"    CASE WHEN $6::text IS NULL THEN '1:1' ELSE"
	"     coalesce(herald.feature_enabled(r.tenant_id, coalesce(r.org_id, $3),"
	"      split_part(c.ch, ':', 1)), false)::int"
	"     || ':' || coalesce(herald.authorize(r.session_id, coalesce(r.org_id, $3), $6, c.ch),"
	"      false)::int END || ':' ||"
	"    CASE WHEN $7::text IS NULL THEN '0' ELSE"
	"     coalesce(herald.authorize(r.session_id, coalesce(r.org_id, $3), $7, c.ch),"
	"      false)::int::text END"
	"   FROM unnest($2::text[]) WITH ORDINALITY AS c(ch, i)"
	"   LEFT JOIN herald.channel_heads h ON h.tenant_id = r.tenant_id"
	"    AND h.org_id = coalesce(r.org_id, $3) AND h.channel = c.ch"
	"   LEFT JOIN herald.channel_trims t ON t.tenant_id = r.tenant_id"
	"    AND t.org_id = coalesce(r.org_id, $3) AND t.channel = c.ch"
	"   ORDER BY c.i), ',') END,"
	" encode(k.h, 'hex'), (SELECT m.rules_version FROM herald.meta m),"
	" CASE WHEN $8::text IS NOT NULL THEN (SELECT coalesce(sum(s.streams), 0)"
	"  FROM herald.node_streams s WHERE s.tenant_id = r.tenant_id AND s.user_id = r.user_id"
	"  AND s.node_id <> $8) END,"
	" CASE WHEN $8::text IS NOT NULL AND $9 THEN (SELECT coalesce(sum(s.streams), 0)"
	"  FROM herald.node_streams s WHERE s.tenant_id = r.tenant_id AND s.node_id <> $8) END"
	" FROM k CROSS JOIN LATERAL herald.resolve_session(k.h) AS r LIMIT 1";

#define CURSOR_KEY_TTL_MS 60000

static pthread_mutex_t key_mutex = PTHREAD_MUTEX_INITIALIZER;
static bool have_key;
static int64_t key_read_ms;
static unsigned char cursor_key[32];

bool session_cursor_key(PGconn *conn, unsigned char key[32])
{
	pthread_mutex_lock(&key_mutex);
	/* Re-read now and then, so that a DBA rotating the key is obeyed by
	 * every node within a minute without a restart. */
	if ((!have_key || time_mono_ms() - key_read_ms > CURSOR_KEY_TTL_MS) && conn) {
		PGresult *r = PQexecParams(conn, "SELECT cursor_key FROM herald.meta", 0, NULL, NULL,
		                           NULL, NULL, 1);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
		    PQgetlength(r, 0, 0) == (int)sizeof(cursor_key)) {
			memcpy(cursor_key, PQgetvalue(r, 0, 0), sizeof(cursor_key));
			have_key = true;
			key_read_ms = time_mono_ms();
		} else {
			log_msg(LOG_ERROR, "cannot read the cursor key", "error", PQresultErrorMessage(r), NULL);
		}
		PQclear(r);
	}
	bool ok = have_key;
	if (ok)
		memcpy(key, cursor_key, sizeof(cursor_key));
	pthread_mutex_unlock(&key_mutex);
	return ok;
}

static bool hex_to_bytes(const char *hex, unsigned char *out, size_t n)
{
	if (strlen(hex) != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return false;
		out[i] = (unsigned char)v;
	}
	return true;
}

void identity_free(struct identity *id)
{
	free(id->user_id);
	free(id->tenant_id);
	free(id->org_id);
	free(id->features);
	free(id->expires_at);
	memset(id, 0, sizeof(*id));
}

const char *session_status_name(enum session_status s)
{
	switch (s) {
	case SESSION_OK: return "ok";
	case SESSION_MISSING: return "missing";
	case SESSION_MALFORMED: return "malformed";
	case SESSION_UNKNOWN: return "unknown";
	case SESSION_EXPIRED: return "expired";
	case SESSION_REVOKED: return "revoked";
	case SESSION_UNAVAILABLE: return "unavailable";
	}
	return "?";
}

static char *opt_value(PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : xstrdup(PQgetvalue(r, row, col));
}

/* Columns 0-8 of both lookups: resolve_session()'s row, its expiry as
 * RFC 3339, revoked, expired (judged by the database clock). */
static enum session_status read_identity(PGresult *r, int row, struct identity *id)
{
	id->session_id = strtoll(PQgetvalue(r, row, 0), NULL, 10);
	id->service = strcmp(PQgetvalue(r, row, 1), "service") == 0;
	id->user_id = xstrdup(PQgetvalue(r, row, 2));
	id->tenant_id = xstrdup(PQgetvalue(r, row, 3));
	id->org_id = opt_value(r, row, 4);
	id->features = opt_value(r, row, 5);
	id->expires_at = opt_value(r, row, 6); /* NULL: never (NULL or infinite) */
	if (strcmp(PQgetvalue(r, row, 7), "t") == 0)
		return SESSION_REVOKED;
	if (strcmp(PQgetvalue(r, row, 8), "t") == 0)
		return SESSION_EXPIRED;
	return SESSION_OK;
}

static bool parse_flag(const char **s, bool *out, char end)
{
	if ((**s != '0' && **s != '1') || (*s)[1] != end)
		return false;
	*out = **s == '1';
	*s += 2;
	return true;
}

static bool parse_heads(const char *s, size_t nch, struct session_heads *h)
{
	char *end;
	for (size_t i = 0; i < nch; i++) {
		char last = i + 1 < nch ? ',' : '\0';
		h->seq[i] = strtoll(s, &end, 10);
		if (*end != ':')
			return false;
		h->trimmed[i] = strtoll(end + 1, &end, 10);
		if (*end != ':')
			return false;
		s = end + 1;
		bool second;
		if (!parse_flag(&s, &h->feature[i], ':') || !parse_flag(&s, &h->allowed[i], ':') ||
		    !parse_flag(&s, &second, last))
			return false;
		if (h->second_allowed)
			h->second_allowed[i] = second;
	}
	return true;
}

/* What can be told without the database; SESSION_OK: ask it. */
static enum session_status precheck(PGconn *conn, const struct credential *c)
{
	if (c->source == CREDENTIAL_NONE)
		return SESSION_MISSING;
	if (c->malformed)
		return SESSION_MALFORMED;
	if (!conn)
		return SESSION_UNAVAILABLE;
	return SESSION_OK;
}

enum session_status session_lookup(PGconn *conn, const struct credential *c,
                                   const char *org_hint, char *const *channels,
                                   size_t nch, struct identity *id,
                                   struct session_heads *heads)
{
	memset(id, 0, sizeof(*id));
	enum session_status pre = precheck(conn, c);
	if (pre != SESSION_OK)
		return pre;

	struct buf arr = BUF_INIT;
	db_append_text_array(&arr, (const char *const *)channels, nch);
	bool ticket = c->source == CREDENTIAL_TICKET;
	const char *values[9] = {(const char *)c->hash, arr.data, org_hint, ticket ? "t" : "f",
	                         c->ticket_reuse ? "t" : "f", heads ? heads->permission : NULL,
	                         heads ? heads->second_permission : NULL,
	                         heads ? heads->count_node : NULL,
	                         heads && heads->count_tenant ? "t" : "f"};
	int lengths[9] = {CRYPTO_SHA256_LEN, 0, 0, 0, 0, 0, 0, 0, 0};
	int formats[9] = {1, 0, 0, 0, 0, 0, 0, 0, 0};
	PGresult *r = db_exec_prepared(conn, "herald_session_lookup", lookup_sql, 9, values, lengths,
	                               formats, 0);
	buf_free(&arr);

	enum session_status st;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		log_msg(LOG_ERROR, "session lookup failed", "error", PQresultErrorMessage(r), NULL);
		st = SESSION_UNAVAILABLE;
	} else if (PQntuples(r) == 0) {
		st = SESSION_UNKNOWN;
	} else {
		st = read_identity(r, 0, id);
		if (!hex_to_bytes(PQgetvalue(r, 0, 11), id->token_hash, sizeof(id->token_hash)))
			st = SESSION_UNAVAILABLE; /* cannot happen: encode() of a 32-byte hash */
		if (st == SESSION_OK && heads) {
			snprintf(heads->epoch, sizeof(heads->epoch), "%s", PQgetvalue(r, 0, 9));
			heads->rules_version = strtoll(PQgetvalue(r, 0, 12), NULL, 10);
			heads->other_user_streams = strtoll(PQgetvalue(r, 0, 13), NULL, 10);
			heads->other_tenant_streams = strtoll(PQgetvalue(r, 0, 14), NULL, 10);
			if (nch && !parse_heads(PQgetvalue(r, 0, 10), nch, heads)) {
				log_msg(LOG_ERROR, "unexpected channel heads", NULL);
				identity_free(id);
				st = SESSION_UNAVAILABLE;
			}
		}
	}
	PQclear(r);
	return st;
}

/*
 * Many requests of one channel each (publishes), one round trip: $1 the
 * tokens' hashes in hex, $2 the channels (NULL: invalid, not decided), $3
 * the org hints, $4 the permission. Columns 0-8 as lookup_sql, then
 * "feature enabled:authorized", the rules version, and the request's
 * index; no row for an unknown token.
 */
static const char lookup_many_sql[] =
	"SELECT r.session_id, r.kind, r.user_id, r.tenant_id, r.org_id, r.features::text,"
	" to_char(r.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
	" r.revoked_at IS NOT NULL, r.expires_at <= now(),"
	" CASE WHEN q.ch IS NULL THEN '1:1' ELSE"
	"  coalesce(herald.feature_enabled(r.tenant_id, coalesce(r.org_id, q.org),"
	"   split_part(q.ch, ':', 1)), false)::int"
	"  || ':' || coalesce(herald.authorize(r.session_id, coalesce(r.org_id, q.org), $4, q.ch),"
	"   false)::int END,"
	" (SELECT m.rules_version FROM herald.meta m), q.i"
	" FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS q(h, ch, org, i)"
	" CROSS JOIN LATERAL (SELECT * FROM herald.resolve_session(decode(q.h, 'hex')) LIMIT 1) r";

static void read_decision(PGresult *r, int row, struct session_request *q)
{
	const char *s = PQgetvalue(r, row, 9);
	bool ok = parse_flag(&s, &q->feature, ':') && parse_flag(&s, &q->allowed, '\0');
	q->rules_version = strtoll(PQgetvalue(r, row, 10), NULL, 10);
	if (q->status == SESSION_OK && !ok) {
		log_msg(LOG_ERROR, "unexpected authorization columns", NULL);
		identity_free(&q->id);
		q->status = SESSION_UNAVAILABLE;
	}
}

void session_lookup_many(PGconn *conn, struct session_request *q, size_t n,
                         const char *permission)
{
	struct buf hashes = BUF_INIT, channels = BUF_INIT, orgs = BUF_INIT;
	const char **h = xcalloc(n, sizeof(*h)), **ch = xcalloc(n, sizeof(*ch));
	const char **org = xcalloc(n, sizeof(*org));
	char (*hex)[2 * CRYPTO_SHA256_LEN + 1] = xcalloc(n, sizeof(*hex));
	size_t asked = 0;
	for (size_t i = 0; i < n; i++) {
		memset(&q[i].id, 0, sizeof(q[i].id));
		q[i].status = precheck(conn, q[i].cred);
		if (q[i].status != SESSION_OK)
			continue;
		q[i].status = SESSION_UNKNOWN; /* until its row is read */
		crypto_hex(q[i].cred->hash, CRYPTO_SHA256_LEN, hex[i]);
		h[i] = hex[i];
		ch[i] = q[i].channel;
		org[i] = q[i].org_hint;
		asked++;
	}
	if (asked) {
		db_append_text_array(&hashes, h, n);
		db_append_text_array(&channels, ch, n);
		db_append_text_array(&orgs, org, n);
		const char *values[4] = {hashes.data, channels.data, orgs.data, permission};
		PGresult *r = db_exec_prepared(conn, "herald_session_lookup_many", lookup_many_sql, 4,
		                               values, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			log_msg(LOG_ERROR, "session lookup failed", "error", PQresultErrorMessage(r), NULL);
			for (size_t i = 0; i < n; i++)
				if (h[i])
					q[i].status = SESSION_UNAVAILABLE;
		} else {
			for (int row = 0; row < PQntuples(r); row++) {
				size_t i = (size_t)strtoull(PQgetvalue(r, row, 11), NULL, 10) - 1;
				if (i >= n || !h[i] || q[i].id.user_id)
					continue; /* cannot happen: one row per asked index */
				q[i].status = read_identity(r, row, &q[i].id);
				memcpy(q[i].id.token_hash, q[i].cred->hash, CRYPTO_SHA256_LEN);
				read_decision(r, row, &q[i]);
			}
		}
		PQclear(r);
	}
	buf_free(&hashes);
	buf_free(&channels);
	buf_free(&orgs);
	free(h);
	free(ch);
	free(org);
	free(hex);
}

bool session_scope(const struct identity *id, const char *tenant_hint,
                   const char *org_hint, const char **org, struct reply *r)
{
	if (tenant_hint && strcmp(tenant_hint, id->tenant_id) != 0) {
		reply_problem(r, PROBLEM_SCOPE_VIOLATION, "the tenant named is not the session's tenant");
		return false;
	}
	if (!id->org_id && !id->service) {
		/* Only a service session may be tenant-wide; a replaced
		 * resolve_session() that returns no org for a user is refused
		 * rather than letting the user pick any org. */
		reply_problem(r, PROBLEM_SCOPE_VIOLATION, "a user session must belong to an org");
		return false;
	}
	if (id->org_id) {
		if (org_hint && strcmp(org_hint, id->org_id) != 0) {
			reply_problem(r, PROBLEM_SCOPE_VIOLATION, "the org named is not the session's org");
			return false;
		}
		*org = id->org_id;
		return true;
	}
	if (!org_hint || !*org_hint) {
		reply_problem(r, PROBLEM_INVALID_REQUEST,
		              "a tenant-wide session must name the org (Herald-Org header or org parameter)");
		return false;
	}
	*org = org_hint;
	return true;
}

void session_audit_who(struct audit_record *a, const struct identity *id)
{
	if (!id || !id->user_id)
		return;
	a->session_id = id->session_id;
	a->user_id = id->user_id;
	a->tenant_id = id->tenant_id;
	a->org_id = id->org_id;
}

void session_audit_refusal(struct audit_record *a, const char *route, const struct reply *r)
{
	struct buf d = BUF_INIT;
	buf_printf(&d, "{\"reason\":\"%s\",\"status\":%u,\"route\":\"%s\"}", r->code, r->status,
	           route);
	a->kind = strcmp(r->code, "scope_violation") == 0 ? "scope.violation" : route;
	a->outcome = "rejected";
	a->detail = d.data;
	audit_record(a);
	buf_free(&d);
}

void session_reject(enum session_status st, const struct credential *c,
                    const struct identity *id, const char *route, const char *remote,
                    struct reply *r)
{
	if (st == SESSION_UNAVAILABLE) {
		reply_problem(r, PROBLEM_UNAVAILABLE, "the database is unavailable");
		return;
	}
	/* One body for every reason: only the audit and metrics say which. */
	reply_problem(r, PROBLEM_UNAUTHENTICATED, "a valid session token is required");
	const char *reason = session_status_name(st);
	struct buf d = BUF_INIT;
	buf_printf(&d, "{\"reason\":\"%s\",\"route\":\"%s\",\"credential\":\"%s\"}", reason,
	           route, credential_source_name(c->source));
	struct audit_record a = {
		.kind = "auth.failure", .outcome = "rejected", .remote_addr = remote, .detail = d.data,
	};
	session_audit_who(&a, id);
	audit_record(&a);
	metrics_count(METRIC_AUTH_FAILURES, reason);
	buf_free(&d);
}
