/*
 * reply.c — prepared HTTP answers and the problem+json catalogue (SPEC §7).
 */
#include <string.h>

#include "reply.h"

static const struct {
	unsigned status;
	const char *code;
	const char *title;
} problems[] = {
	[PROBLEM_INVALID_REQUEST] = {400, "invalid_request", "Invalid request"},
	[PROBLEM_UNAUTHENTICATED] = {401, "unauthenticated", "Authentication required"},
	[PROBLEM_PERMISSION_DENIED] = {403, "permission_denied", "Permission denied"},
	[PROBLEM_SCOPE_VIOLATION] = {403, "scope_violation", "Scope violation"},
	[PROBLEM_FEATURE_DISABLED] = {403, "feature_disabled", "Feature disabled"},
	[PROBLEM_NOT_FOUND] = {404, "not_found", "Not found"},
	[PROBLEM_METHOD_NOT_ALLOWED] = {405, "method_not_allowed", "Method not allowed"},
	[PROBLEM_IDEMPOTENCY_CONFLICT] = {409, "idempotency_conflict", "Idempotency conflict"},
	[PROBLEM_PAYLOAD_TOO_LARGE] = {413, "payload_too_large", "Payload too large"},
	[PROBLEM_UNSUPPORTED_MEDIA_TYPE] = {415, "unsupported_media_type", "Unsupported media type"},
	[PROBLEM_SCHEMA_VIOLATION] = {422, "schema_violation", "Schema violation"},
	[PROBLEM_CROSS_SCOPE_REFERENCE] = {422, "cross_scope_reference", "Cross-scope reference"},
	[PROBLEM_RATE_LIMITED] = {429, "rate_limited", "Rate limited"},
	[PROBLEM_TOO_MANY_CONNECTIONS] = {429, "too_many_connections", "Too many connections"},
	[PROBLEM_UNAVAILABLE] = {503, "unavailable", "Service unavailable"},
	[PROBLEM_DRAINING] = {503, "draining", "Node is draining"},
};

void reply_free(struct reply *r)
{
	buf_free(&r->body);
	memset(r, 0, sizeof(*r));
}

const char *problem_code(enum problem p)
{
	return problems[p].code;
}

void reply_problem(struct reply *r, enum problem p, const char *detail)
{
	reply_free(r);
	r->status = problems[p].status;
	r->code = problems[p].code;
	r->content_type = "application/problem+json";
	buf_append_str(&r->body, "{\"type\":\"urn:herald:");
	buf_append_str(&r->body, problems[p].code);
	buf_append_str(&r->body, "\",\"title\":");
	buf_append_json_str(&r->body, problems[p].title, strlen(problems[p].title));
	buf_printf(&r->body, ",\"status\":%u", problems[p].status);
	if (detail) {
		buf_append_str(&r->body, ",\"detail\":");
		buf_append_json_str(&r->body, detail, strlen(detail));
	}
	buf_append_char(&r->body, '}');
	if (p == PROBLEM_UNAVAILABLE || p == PROBLEM_DRAINING)
		r->retry_after = 1;
}

void reply_json(struct reply *r, unsigned status, struct buf *body)
{
	reply_free(r);
	r->status = status;
	r->content_type = "application/json";
	r->body = *body;
	*body = (struct buf)BUF_INIT;
}
