/*
 * target.c — raw request-target parsing (pure).
 *
 * Owns splitting and percent-decoding of the path and query. The order is
 * the guarantee: the path is split on '/' before any segment is decoded,
 * so "%2F" stays inside one segment, and every decoded byte is checked, so
 * "%00" or a control byte fails the whole target instead of truncating or
 * smuggling. Routing and channel grammar are the callers' business.
 */
#include <stdlib.h>
#include <string.h>

#include "target.h"
#include "util/hex.h"
#include "util/xmalloc.h"

/* DEL counts as a control byte too: nothing herald routes on contains
 * one, and it has no business in a log line. */
static bool is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Decodes s[0..n) into a new string, or NULL if an escape is malformed or
 * a byte (raw or decoded) is a control byte. */
static char *decode(const char *s, size_t n, bool plus_is_space)
{
	char *out = xmalloc(n + 1);
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (n - i < 3)
				goto bad;
			hi = hex_value(s[i + 1]);
			lo = hex_value(s[i + 2]);
			if (hi < 0 || lo < 0)
				goto bad;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && plus_is_space) {
			c = ' ';
		}
		if (is_control(c))
			goto bad;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

void target_free(struct target *t)
{
	size_t i;

	for (i = 0; i < t->nseg; i++)
		free(t->seg[i]);
	for (i = 0; i < t->nparam; i++) {
		free(t->param[i].key);
		free(t->param[i].value);
	}
	t->nseg = 0;
	t->nparam = 0;
}

static enum target_result parse_path(const char *p, size_t n, struct target *t)
{
	size_t start = 0, i;

	/* "/" names the root: no segments. Otherwise one trailing '/' is a
	 * flag, and every '/' left separates segments, empty ones included. */
	if (n == 0)
		return TARGET_OK;
	if (p[n - 1] == '/') {
		t->trailing_slash = true;
		n--;
	}
	for (i = 0; i <= n; i++) {
		if (i < n && p[i] != '/')
			continue;
		if (t->nseg == TARGET_MAX_SEGMENTS)
			return TARGET_TOO_MANY;
		t->seg[t->nseg] = decode(p + start, i - start, false);
		if (t->seg[t->nseg] == NULL)
			return TARGET_BAD_ESCAPE;
		t->nseg++;
		start = i + 1;
	}
	return TARGET_OK;
}

static enum target_result parse_query(const char *q, size_t n, struct target *t)
{
	size_t start = 0, i;

	for (i = 0; i <= n; i++) {
		const char *pair = q + start, *eq;
		size_t len = i - start;
		struct target_param *p;

		if (i < n && q[i] != '&')
			continue;
		start = i + 1;
		/* "a=1&&b=2" and a trailing '&' carry no parameter. */
		if (len == 0)
			continue;
		if (t->nparam == TARGET_MAX_PARAMS)
			return TARGET_TOO_MANY;
		eq = memchr(pair, '=', len);
		p = &t->param[t->nparam];
		p->key = decode(pair, eq ? (size_t)(eq - pair) : len, true);
		if (p->key == NULL)
			return TARGET_BAD_ESCAPE;
		p->value = eq ? decode(eq + 1, len - (size_t)(eq - pair) - 1, true)
		              : xstrdup("");
		if (p->value == NULL) {
			free(p->key);
			return TARGET_BAD_ESCAPE;
		}
		t->nparam++;
	}
	return TARGET_OK;
}

enum target_result target_parse(const char *raw, size_t n, struct target *t)
{
	const char *q;
	size_t plen;
	enum target_result r;

	t->nseg = 0;
	t->nparam = 0;
	t->trailing_slash = false;
	if (n == 0 || raw[0] != '/')
		return TARGET_NOT_ORIGIN;
	q = memchr(raw, '?', n);
	plen = q ? (size_t)(q - raw) : n;
	r = parse_path(raw + 1, plen - 1, t);
	if (r == TARGET_OK && q != NULL)
		r = parse_query(q + 1, n - plen - 1, t);
	if (r != TARGET_OK)
		target_free(t);
	return r;
}

const char *target_param(const struct target *t, const char *key)
{
	size_t i;

	for (i = 0; i < t->nparam; i++)
		if (strcmp(t->param[i].key, key) == 0)
			return t->param[i].value;
	return NULL;
}

size_t target_param_count(const struct target *t, const char *key)
{
	size_t i, count = 0;

	for (i = 0; i < t->nparam; i++)
		if (strcmp(t->param[i].key, key) == 0)
			count++;
	return count;
}
