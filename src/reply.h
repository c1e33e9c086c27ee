/*
 * reply.h — an HTTP answer prepared off the HTTP thread: status, body and
 * the few headers herald sets, including the RFC 9457 problem+json errors
 * with the stable codes of SPEC §7.
 *
 * Pure: the HTTP layer turns a reply into a libmicrohttpd response.
 */
#ifndef HERALD_REPLY_H
#define HERALD_REPLY_H

#include <stdbool.h>
#include "util/buf.h"

enum problem {
	PROBLEM_INVALID_REQUEST,
	PROBLEM_UNAUTHENTICATED,
	PROBLEM_PERMISSION_DENIED,
	PROBLEM_SCOPE_VIOLATION,
	PROBLEM_FEATURE_DISABLED,
	PROBLEM_NOT_FOUND,
	PROBLEM_METHOD_NOT_ALLOWED,
	PROBLEM_IDEMPOTENCY_CONFLICT,
	PROBLEM_PAYLOAD_TOO_LARGE,
	PROBLEM_UNSUPPORTED_MEDIA_TYPE,
	PROBLEM_SCHEMA_VIOLATION,
	PROBLEM_CROSS_SCOPE_REFERENCE,
	PROBLEM_RATE_LIMITED,
	PROBLEM_TOO_MANY_CONNECTIONS,
	PROBLEM_UNAVAILABLE,
	PROBLEM_DRAINING,
};

struct reply {
	unsigned status;          /* 0 = not prepared */
	const char *code;         /* problem code of an error reply, static */
	const char *content_type; /* static string */
	struct buf body;
	const char *allow;        /* Allow header for 405, static */
	unsigned retry_after;     /* seconds; 0 = none */
	bool close;               /* Connection: close (the request body was not read) */
};

void reply_free(struct reply *r);
/* A problem+json reply; detail may be NULL. Replaces anything prepared. */
void reply_problem(struct reply *r, enum problem p, const char *detail);
/* A JSON reply taking the bytes of body (which is emptied). */
void reply_json(struct reply *r, unsigned status, struct buf *body);
/* The stable code of p ("invalid_request"). */
const char *problem_code(enum problem p);

#endif
