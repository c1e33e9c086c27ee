/*
 * credential.h — finding the bearer credential in a request (pure).
 *
 * Precedence (SPEC §2): Authorization: Bearer, then the session cookie,
 * then a stream ticket (query "ticket"), then the access_token query
 * parameter. A token is 1..4096 visible ASCII
 * bytes; anything else is malformed and never reaches the database. The
 * token itself is hashed at once and never stored or logged.
 */
#ifndef HERALD_CREDENTIAL_H
#define HERALD_CREDENTIAL_H

#include <stdbool.h>
#include <stddef.h>
#include "compiler.h"
#include "crypto.h"

#define CREDENTIAL_MAX_TOKEN 4096

enum credential_source {
	CREDENTIAL_NONE, CREDENTIAL_BEARER, CREDENTIAL_COOKIE, CREDENTIAL_TICKET, CREDENTIAL_QUERY
};

struct credential {
	enum credential_source source;
	bool malformed;
	unsigned char hash[CRYPTO_SHA256_LEN]; /* of the token, or of the ticket */
	bool ticket_reuse; /* a ticket presented with a valid cursor proof */
};

/* Inputs are the raw header values (NULL when absent). authorization_count
 * above 1 is a syntax error the caller reports; here the first is used. */
void credential_extract(struct credential *c, const char *authorization,
                        const char *cookie_header, const char *cookie_name,
                        const char *ticket, const char *query_token);
/* Finds cookie name in a Cookie header; *val points into header. */
bool credential_cookie(const char *header, const char *name, const char **val, size_t *len);
const char *credential_source_name(enum credential_source s);

/* CSRF defence for POST (SPEC §2): a cookie credential needs an Origin
 * listed in allowed (space-separated origins); else prepares 403
 * permission_denied in r and returns false. */
struct reply;
bool credential_post_allowed(const struct credential *c, const char *origin,
                             const char *allowed, struct reply *r) HERALD_MUSTCHECK;

#endif
