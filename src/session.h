/*
 * session.h — resolving a credential to the identity bound to a request.
 *
 * Owns the one session query: herald.resolve_session() (the only lookup
 * the server makes), judged against the database clock, plus, for stream
 * opens, the channel heads in the same round trip. The identity is
 * resolved once and is immutable afterwards (SPEC §5.1).
 */
#ifndef HERALD_SESSION_H
#define HERALD_SESSION_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include "compiler.h"
#include "credential.h"

enum session_status {
	SESSION_OK,
	SESSION_MISSING,   /* no credential */
	SESSION_MALFORMED, /* not a well-formed token */
	SESSION_UNKNOWN,   /* no such session */
	SESSION_EXPIRED,
	SESSION_REVOKED,
	SESSION_UNAVAILABLE, /* database unreachable or the query failed */
};

struct identity {
	int64_t session_id;
	bool service;
	char *user_id, *tenant_id;
	char *org_id;     /* NULL for a tenant-wide service session */
	char *features;   /* PostgreSQL text[] literal, NULL = no list */
	char *expires_at; /* RFC 3339 UTC; NULL = never (NULL or 'infinity') */
	unsigned char token_hash[32]; /* the session token's hash (also via a ticket) */
};

/* What the lookup reports per channel asked for, in the caller's order. */
struct session_heads {
	const char *permission; /* in: decide this permission (NULL: skip) */
	const char *second_permission; /* in: and this one (NULL: skip) */
	const char *count_node; /* in: count the user's streams on other nodes than this */
	bool count_tenant;      /* in: and the tenant's */
	int64_t other_user_streams, other_tenant_streams; /* out, when asked */
	bool *second_allowed;   /* out when second_permission: authorize() said yes */
	char epoch[9];
	int64_t rules_version; /* herald.meta.rules_version (rules.h) */
	int64_t *seq, *trimmed; /* n each, owned by the caller */
	bool *feature, *allowed; /* feature enabled for the scope; authorize() said yes */
};

void identity_free(struct identity *id);
const char *session_status_name(enum session_status s);

/* Resolves c on conn (NULL conn = unavailable). When nch > 0, also reads
 * the heads of channels in the scope (identity tenant, identity org or
 * org_hint for a tenant-wide session) into heads, and decides
 * heads->permission for each through herald.feature_enabled() and
 * herald.authorize() — one round trip for any number of channels. id is filled for
 * SESSION_OK, and also for EXPIRED and REVOKED so the audit can say whose
 * session it was; the caller always identity_free()s it. */
enum session_status session_lookup(PGconn *conn, const struct credential *c,
                                   const char *org_hint, char *const *channels,
                                   size_t nch, struct identity *id,
                                   struct session_heads *heads) HERALD_MUSTCHECK;

/* One request of session_lookup_many(). */
struct session_request {
	const struct credential *cred; /* in: never a ticket */
	const char *org_hint;          /* in */
	char *channel;                 /* in: a valid channel, or NULL (nothing decided) */
	enum session_status status;    /* out, as session_lookup() returns it */
	struct identity id;            /* out, as session_lookup() fills it */
	bool feature, allowed;         /* out: the decisions for channel */
	int64_t rules_version;         /* out: herald.meta.rules_version */
};
/* session_lookup() for n requests of at most one channel each, deciding
 * permission for each channel — one round trip for all of them. */
void session_lookup_many(PGconn *conn, struct session_request *q, size_t n,
                         const char *permission);

/* The key that proves ticket cursors (herald.meta.cursor_key), read
 * through conn and re-read after a minute; false when it cannot be read. */
bool session_cursor_key(PGconn *conn, unsigned char key[32]) HERALD_MUSTCHECK;

/* Applies the explicit scope hints (Herald-Tenant / Herald-Org, SPEC §2)
 * to id. On success returns true with *org the effective org (borrowed
 * from id or org_hint); otherwise prepares the 400/403 in r. */
struct reply;
bool session_scope(const struct identity *id, const char *tenant_hint,
                   const char *org_hint, const char **org, struct reply *r) HERALD_MUSTCHECK;
/* Fills the session, user, tenant and org of an audit record from id
 * (nothing when id is NULL or holds no session). */
struct audit_record;
void session_audit_who(struct audit_record *a, const struct identity *id);

/* Audits a request refused after authentication (authz.denied is
 * policy.c's): kind "scope.violation" for a scope refusal, else route;
 * detail {"reason": problem code, "status", "route"}. a holds who, the
 * channel and the remote address. */
void session_audit_refusal(struct audit_record *a, const char *route, const struct reply *r);

/* Prepares the 401 (or 503) for a failed lookup, and records an
 * authentication failure (audit auth.failure, metrics) with its precise
 * reason; route names the endpoint ("stream", "publish", "me"). */
void session_reject(enum session_status st, const struct credential *c,
                    const struct identity *id, const char *route, const char *remote,
                    struct reply *r);

#endif
