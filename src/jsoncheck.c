/*
 * jsoncheck.c — strict, bounded JSON validation (see jsoncheck.h).
 *
 * A recursive descent whose depth is bounded by max_depth, so the C stack
 * is bounded too. Member names are decoded into a buffer and compared
 * through a hash set per object.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsoncheck.h"
#include "util/hex.h"
#include "util/buf.h"
#include "util/map.h"
#include "util/utf8.h"
#include "util/xmalloc.h"

struct scan {
	const unsigned char *s;
	size_t n, pos, values;
	const struct jsoncheck_limits *lim;
	char *err;
	size_t errlen;
	bool failed;
};

static bool fail(struct scan *sc, const char *what)
{
	if (!sc->failed)
		snprintf(sc->err, sc->errlen, "%s at byte %zu", what, sc->pos);
	sc->failed = true;
	return false;
}

static void skip_ws(struct scan *sc)
{
	while (sc->pos < sc->n && (sc->s[sc->pos] == ' ' || sc->s[sc->pos] == '\t' ||
	                           sc->s[sc->pos] == '\n' || sc->s[sc->pos] == '\r'))
		sc->pos++;
}

static bool literal(struct scan *sc, const char *word)
{
	size_t k = strlen(word);
	if (sc->n - sc->pos < k || memcmp(sc->s + sc->pos, word, k) != 0)
		return fail(sc, "invalid literal");
	sc->pos += k;
	return true;
}

static int hex4(const unsigned char *p)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		int d = hex_value(p[i]);
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* Appends code point cp as UTF-8 (cp is valid). */
static void put_utf8(struct buf *out, unsigned cp)
{
	char b[4];
	size_t k;
	if (cp < 0x80) {
		b[0] = (char)cp;
		k = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | cp >> 6);
		b[1] = (char)(0x80 | (cp & 0x3f));
		k = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | cp >> 12);
		b[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		k = 3;
	} else {
		b[0] = (char)(0xf0 | cp >> 18);
		b[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		b[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		k = 4;
	}
	buf_append(out, b, k);
}

/* A string at sc->pos (the opening quote); decoded into out when not NULL. */
static bool string(struct scan *sc, struct buf *out)
{
	size_t len = 0;
	sc->pos++;
	for (;;) {
		if (sc->pos >= sc->n)
			return fail(sc, "unterminated string");
		unsigned c = sc->s[sc->pos];
		if (c == '"') {
			sc->pos++;
			return true;
		}
		if (c < 0x20)
			return fail(sc, "control character in string");
		if (c == '\\') {
			if (sc->n - sc->pos < 2)
				return fail(sc, "unterminated string");
			unsigned e = sc->s[sc->pos + 1];
			const char *simple = strchr("\"\\/bfnrt", (int)e);
			if (e && simple) {
				static const char decoded[] = "\"\\/\b\f\n\r\t";
				if (out)
					buf_append_char(out, decoded[simple - "\"\\/bfnrt"]);
				sc->pos += 2;
				len++;
			} else if (e == 'u') {
				int hi = sc->n - sc->pos >= 6 ? hex4(sc->s + sc->pos + 2) : -1;
				unsigned cp;
				if (hi < 0)
					return fail(sc, "bad \\u escape");
				sc->pos += 6;
				cp = (unsigned)hi;
				if (cp >= 0xdc00 && cp <= 0xdfff)
					return fail(sc, "lone low surrogate");
				if (cp >= 0xd800 && cp <= 0xdbff) {
					int lo = sc->n - sc->pos >= 6 && sc->s[sc->pos] == '\\' &&
					                 sc->s[sc->pos + 1] == 'u'
					             ? hex4(sc->s + sc->pos + 2)
					             : -1;
					if (lo < 0xdc00 || lo > 0xdfff)
						return fail(sc, "lone high surrogate");
					sc->pos += 6;
					cp = 0x10000 + ((cp - 0xd800) << 10) + ((unsigned)lo - 0xdc00);
				}
				if (out)
					put_utf8(out, cp);
				len += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
			} else {
				return fail(sc, "bad escape");
			}
		} else {
			size_t k = utf8_seq_len(sc->s + sc->pos, sc->n - sc->pos);
			if (k == 0)
				return fail(sc, "invalid UTF-8");
			if (out)
				buf_append(out, sc->s + sc->pos, k);
			sc->pos += k;
			len += k;
		}
		if (len > sc->lim->max_string)
			return fail(sc, "string too long");
	}
}

static bool number(struct scan *sc)
{
	size_t start = sc->pos;
	const unsigned char *s = sc->s;
	if (sc->pos < sc->n && s[sc->pos] == '-')
		sc->pos++;
	if (sc->pos < sc->n && s[sc->pos] == '0')
		sc->pos++;
	else if (sc->pos < sc->n && s[sc->pos] >= '1' && s[sc->pos] <= '9')
		while (sc->pos < sc->n && s[sc->pos] >= '0' && s[sc->pos] <= '9')
			sc->pos++;
	else
		return fail(sc, "invalid number");
	if (sc->pos < sc->n && s[sc->pos] == '.') {
		sc->pos++;
		if (sc->pos >= sc->n || s[sc->pos] < '0' || s[sc->pos] > '9')
			return fail(sc, "invalid number");
		while (sc->pos < sc->n && s[sc->pos] >= '0' && s[sc->pos] <= '9')
			sc->pos++;
	}
	if (sc->pos < sc->n && (s[sc->pos] == 'e' || s[sc->pos] == 'E')) {
		sc->pos++;
		if (sc->pos < sc->n && (s[sc->pos] == '+' || s[sc->pos] == '-'))
			sc->pos++;
		if (sc->pos >= sc->n || s[sc->pos] < '0' || s[sc->pos] > '9')
			return fail(sc, "invalid number");
		while (sc->pos < sc->n && s[sc->pos] >= '0' && s[sc->pos] <= '9')
			sc->pos++;
	}
	/* The grammar holds, so strtod reads exactly these bytes. */
	char stack[64];
	size_t k = sc->pos - start;
	char *text = k < sizeof(stack) ? stack : xmalloc(k + 1);
	memcpy(text, s + start, k);
	text[k] = '\0';
	double v = strtod(text, NULL);
	if (text != stack)
		free(text);
	if (isinf(v)) {
		sc->pos = start;
		return fail(sc, "number outside the double range");
	}
	return true;
}

static bool value(struct scan *sc, unsigned depth);

static bool object(struct scan *sc, unsigned depth)
{
	struct map names;
	struct buf key = BUF_INIT;
	char **owned = NULL;
	size_t nowned = 0;
	bool ok = true;

	map_init(&names);
	sc->pos++;
	skip_ws(sc);
	if (sc->pos < sc->n && sc->s[sc->pos] == '}') {
		sc->pos++;
		map_free(&names);
		return true;
	}
	for (;;) {
		skip_ws(sc);
		if (sc->pos >= sc->n || sc->s[sc->pos] != '"') {
			ok = fail(sc, "expected a member name");
			break;
		}
		size_t at = sc->pos;
		buf_reset(&key);
		if (!(ok = string(sc, &key)))
			break;
		if (map_get(&names, key.data ? key.data : "", key.len)) {
			sc->pos = at;
			ok = fail(sc, "duplicate member name");
			break;
		}
		char *copy = xmalloc(key.len + 1);
		memcpy(copy, key.data ? key.data : "", key.len + 1);
		owned = xrealloc(owned, (nowned + 1) * sizeof(*owned));
		owned[nowned++] = copy;
		map_put(&names, copy, key.len, copy);
		skip_ws(sc);
		if (sc->pos >= sc->n || sc->s[sc->pos] != ':') {
			ok = fail(sc, "expected ':'");
			break;
		}
		sc->pos++;
		if (!(ok = value(sc, depth)))
			break;
		skip_ws(sc);
		if (sc->pos < sc->n && sc->s[sc->pos] == ',') {
			sc->pos++;
			continue;
		}
		if (sc->pos < sc->n && sc->s[sc->pos] == '}') {
			sc->pos++;
			break;
		}
		ok = fail(sc, "expected ',' or '}'");
		break;
	}
	for (size_t i = 0; i < nowned; i++)
		free(owned[i]);
	free(owned);
	buf_free(&key);
	map_free(&names);
	return ok;
}

static bool array(struct scan *sc, unsigned depth)
{
	sc->pos++;
	skip_ws(sc);
	if (sc->pos < sc->n && sc->s[sc->pos] == ']') {
		sc->pos++;
		return true;
	}
	for (;;) {
		if (!value(sc, depth))
			return false;
		skip_ws(sc);
		if (sc->pos < sc->n && sc->s[sc->pos] == ',') {
			sc->pos++;
			continue;
		}
		if (sc->pos < sc->n && sc->s[sc->pos] == ']') {
			sc->pos++;
			return true;
		}
		return fail(sc, "expected ',' or ']'");
	}
}

static bool value(struct scan *sc, unsigned depth)
{
	skip_ws(sc);
	if (++sc->values > sc->lim->max_values)
		return fail(sc, "too many values");
	if (sc->pos >= sc->n)
		return fail(sc, "unexpected end");
	switch (sc->s[sc->pos]) {
	case '{':
	case '[':
		if (depth + 1 > sc->lim->max_depth)
			return fail(sc, "nesting too deep");
		return sc->s[sc->pos] == '{' ? object(sc, depth + 1) : array(sc, depth + 1);
	case '"':
		return string(sc, NULL);
	case 't':
		return literal(sc, "true");
	case 'f':
		return literal(sc, "false");
	case 'n':
		return literal(sc, "null");
	default:
		return number(sc);
	}
}

bool jsoncheck(const char *s, size_t n, const struct jsoncheck_limits *lim,
               char *err, size_t errlen)
{
	struct scan sc = {(const unsigned char *)s, n, 0, 0, lim, err, errlen, false};
	if (!value(&sc, 0))
		return false;
	skip_ws(&sc);
	if (sc.pos != n)
		return fail(&sc, "trailing data");
	return true;
}
