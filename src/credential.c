/*
 * credential.c — credential extraction and hashing (see credential.h).
 */
#include <string.h>
#include <strings.h>

#include "credential.h"
#include "reply.h"

static bool token_well_formed(const char *t, size_t n)
{
	if (n == 0 || n > CREDENTIAL_MAX_TOKEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] < 0x21 || (unsigned char)t[i] > 0x7e)
			return false;
	return true;
}

static void take_token(struct credential *c, enum credential_source src,
                       const char *t, size_t n)
{
	c->source = src;
	c->malformed = !token_well_formed(t, n);
	if (!c->malformed)
		crypto_sha256(t, n, c->hash);
}

bool credential_cookie(const char *header, const char *name, const char **val, size_t *len)
{
	size_t nl = strlen(name);
	const char *p = header;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		const char *end = strchr(p, ';');
		if (!end)
			end = p + strlen(p);
		const char *eq = memchr(p, '=', (size_t)(end - p));
		if (eq && (size_t)(eq - p) == nl && memcmp(p, name, nl) == 0) {
			const char *v = eq + 1, *ve = end;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			if (ve - v >= 2 && v[0] == '"' && ve[-1] == '"') {
				v++;
				ve--;
			}
			*val = v;
			*len = (size_t)(ve - v);
			return true;
		}
		p = end;
	}
	return false;
}

void credential_extract(struct credential *c, const char *authorization,
                        const char *cookie_header, const char *cookie_name,
                        const char *ticket, const char *query_token)
{
	const char *v;
	size_t n;

	memset(c, 0, sizeof(*c));
	if (authorization) {
		/* Only the Bearer scheme exists here; anything else is a bad
		 * credential, not an absent one. */
		if (strncasecmp(authorization, "Bearer ", 7) == 0) {
			v = authorization + 7;
			while (*v == ' ')
				v++;
			n = strlen(v);
			while (n && v[n - 1] == ' ')
				n--;
			take_token(c, CREDENTIAL_BEARER, v, n);
		} else {
			c->source = CREDENTIAL_BEARER;
			c->malformed = true;
		}
		return;
	}
	if (cookie_header && credential_cookie(cookie_header, cookie_name, &v, &n)) {
		take_token(c, CREDENTIAL_COOKIE, v, n);
		return;
	}
	if (ticket) {
		take_token(c, CREDENTIAL_TICKET, ticket, strlen(ticket));
		return;
	}
	if (query_token)
		take_token(c, CREDENTIAL_QUERY, query_token, strlen(query_token));
}

const char *credential_source_name(enum credential_source s)
{
	switch (s) {
	case CREDENTIAL_BEARER: return "bearer";
	case CREDENTIAL_COOKIE: return "cookie";
	case CREDENTIAL_TICKET: return "ticket";
	case CREDENTIAL_QUERY: return "query";
	case CREDENTIAL_NONE: break;
	}
	return "none";
}

static bool origin_listed(const char *origin, const char *allowed)
{
	size_t n = origin ? strlen(origin) : 0;
	if (n == 0 || !allowed)
		return false;
	for (const char *p = allowed; *p;) {
		while (*p == ' ')
			p++;
		size_t k = strcspn(p, " ");
		if (k == n && memcmp(p, origin, n) == 0)
			return true;
		p += k;
	}
	return false;
}

bool credential_post_allowed(const struct credential *c, const char *origin,
                             const char *allowed, struct reply *r)
{
	if (c->source != CREDENTIAL_COOKIE || origin_listed(origin, allowed))
		return true;
	/* A browser attaches the cookie to a form posted from any site. */
	reply_problem(r, PROBLEM_PERMISSION_DENIED,
	              "cookie credentials on POST need an Origin listed in cors_origins");
	return false;
}
