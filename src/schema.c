/*
 * schema.c — JSON Schema (draft 2020-12 subset) compiler and validator.
 *
 * Owns a compiled schema: the parsed document (enum and const values,
 * member names and required lists point into it), one node per schema
 * location, and the POSIX regexes that ECMA-262 patterns become.
 * Compilation refuses what it does not implement rather than skip it;
 * validation only reads, so one schema serves many threads at once.
 * Does no I/O: $ref is a JSON Pointer into the same document.
 */
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "jsoncheck.h"
#include "schema.h"
#include "util/hex.h"
#include "util/buf.h"
#include "util/map.h"
#include "util/utf8.h"
#include "util/xmalloc.h"

#define DIALECT_2020_12 "https://json-schema.org/draft/2020-12/schema"

/* Nesting of a schema document; compilation recurses along it. */
#define PARSE_DEPTH 128
/* Nested subschema evaluations. A schema without $ref nests at most
 * PARSE_DEPTH deep, so only a recursive $ref can reach this. */
#define VALIDATE_DEPTH 256
/* Longest enum/const/bound spelling kept for messages. */
#define SHOWN_JSON 120

/* One comparison then serves json-c's int64, uint64 and double numbers:
 * long double holds each of them exactly. */
_Static_assert(LDBL_MANT_DIG >= 64, "long double must hold 64-bit integers exactly");

enum {
	TYPE_NULL = 1 << 0,
	TYPE_BOOLEAN = 1 << 1,
	TYPE_OBJECT = 1 << 2,
	TYPE_ARRAY = 1 << 3,
	TYPE_NUMBER = 1 << 4,
	TYPE_STRING = 1 << 5,
	TYPE_INTEGER = 1 << 6,
};

static const char *const type_names[] = {
	"null", "boolean", "object", "array", "number", "string", "integer",
};

struct pattern {
	regex_t re;
	const char *source; /* the ECMA-262 text, borrowed from the document */
};

struct bound {
	bool set;
	long double value;
	char *text; /* the schema's own spelling, for messages */
};

struct nodes {
	struct node **v;
	size_t n;
};

struct pattern_schema {
	struct pattern *pattern;
	struct node *schema;
};

struct dependent_schema {
	const char *name; /* borrowed from the document */
	struct node *schema;
};

/* One schema location. Unset maxima are UINT64_MAX and unset minima 0
 * (minContains 1), which are also what the specification defaults to. */
struct node {
	char *where; /* JSON Pointer of the location, for compile errors */
	bool never;  /* the schema false */
	unsigned types;
	char *type_text;
	struct json_object *enum_values; /* borrowed array, or NULL */
	char *enum_text;
	bool has_const;
	struct json_object *const_value; /* borrowed; NULL is JSON null */
	char *const_text;
	struct bound multiple_of, maximum, exclusive_maximum, minimum, exclusive_minimum;
	uint64_t min_length, max_length;
	struct pattern *pattern;
	uint64_t min_items, max_items, min_contains, max_contains;
	bool unique_items;
	uint64_t min_properties, max_properties;
	struct json_object *required;           /* borrowed array of strings, or NULL */
	struct json_object *dependent_required; /* borrowed object of string arrays, or NULL */
	struct map properties;                  /* member name (borrowed) -> node */
	struct pattern_schema *pattern_properties;
	size_t n_pattern_properties;
	struct dependent_schema *dependent_schemas;
	size_t n_dependent_schemas;
	struct node *additional_properties, *property_names, *items, *contains;
	struct node *not_, *if_, *then_, *else_;
	struct nodes prefix_items, all_of, any_of, one_of;
	const char *ref_text; /* borrowed; NULL without $ref */
	struct node *ref;
	unsigned char mark; /* cycle check colour, compile time only */
};

struct schema {
	struct json_object *doc;
	struct node *root;
	struct node **nodes; /* every node, owned here */
	size_t nnodes, capnodes;
};

/* ---- numbers and JSON equality ---------------------------------------- */

static long double number_value(struct json_object *x)
{
	if (json_object_is_type(x, json_type_double))
		return json_object_get_double(x);
	int64_t i = json_object_get_int64(x);
	/* json-c keeps integers above INT64_MAX as uint64 and clamps here.
	 * XXX integer literals beyond [-2^63, 2^64-1] arrive already clamped
	 * by json-c's parser (jsoncheck only refuses what a double cannot
	 * hold), so 1e20 written as digits compares as 2^64-1. */
	if (i == INT64_MAX)
		return (long double)json_object_get_uint64(x);
	return (long double)i;
}

static bool is_number(struct json_object *x)
{
	return json_object_is_type(x, json_type_int) || json_object_is_type(x, json_type_double);
}

/* JSON Schema's "integer": any number with a zero fractional part. */
static bool is_integer(struct json_object *x)
{
	if (json_object_is_type(x, json_type_int))
		return true;
	if (!json_object_is_type(x, json_type_double))
		return false;
	double d = json_object_get_double(x);
	return fabs(d) >= 0x1p53 ? isfinite(d) : d == (double)(int64_t)d;
}

static bool as_int64(long double v, int64_t *out)
{
	if (!(v >= -0x1p63L && v < 0x1p63L))
		return false;
	*out = (int64_t)v;
	return (long double)*out == v;
}

/*
 * Integers are checked exactly. Otherwise the quotient is computed in
 * double and must be within a few ulps of an integer, as decimal
 * fractions are inexact in binary (0.0075 / 0.0001 = 74.99999999999999).
 * A quotient beyond 2^53 has no fractional part left and counts as
 * integral; one that overflows does not (the test suite's choice).
 */
static bool is_multiple_of(long double x, long double m)
{
	int64_t xi, mi;
	if (as_int64(x, &xi) && as_int64(m, &mi))
		return xi % mi == 0;
	double q = (double)x / (double)m;
	if (!isfinite(q))
		return false;
	if (fabs(q) >= 0x1p53)
		return true;
	double frac = fabs(q - (double)(int64_t)q);
	if (frac > 0.5)
		frac = 1.0 - frac;
	return frac <= fabs(q) * 4 * DBL_EPSILON;
}

struct pair {
	struct json_object *a, *b;
};

struct pair_stack {
	struct pair *v;
	size_t n, cap;
	struct pair local[16];
};

static void pair_push(struct pair_stack *st, struct json_object *a, struct json_object *b)
{
	if (st->n == st->cap) {
		st->cap *= 2;
		if (st->v == st->local) {
			st->v = xmalloc(st->cap * sizeof(*st->v));
			memcpy(st->v, st->local, sizeof(st->local));
		} else {
			st->v = xrealloc(st->v, st->cap * sizeof(*st->v));
		}
	}
	st->v[st->n++] = (struct pair){a, b};
}

/* Compares one pair; members and items to compare next go on st. */
static bool shallow_equal(struct pair_stack *st, struct json_object *a, struct json_object *b)
{
	if (is_number(a) && is_number(b))
		return number_value(a) == number_value(b);
	enum json_type t = json_object_get_type(a);
	if (t != json_object_get_type(b))
		return false;
	switch (t) {
	case json_type_boolean:
		return json_object_get_boolean(a) == json_object_get_boolean(b);
	case json_type_string:
		return json_object_get_string_len(a) == json_object_get_string_len(b) &&
		       memcmp(json_object_get_string(a), json_object_get_string(b),
		              (size_t)json_object_get_string_len(a)) == 0;
	case json_type_array: {
		size_t n = json_object_array_length(a);
		if (n != json_object_array_length(b))
			return false;
		for (size_t i = 0; i < n; i++)
			pair_push(st, json_object_array_get_idx(a, i), json_object_array_get_idx(b, i));
		return true;
	}
	case json_type_object: {
		if (json_object_object_length(a) != json_object_object_length(b))
			return false;
		struct json_object_iterator it = json_object_iter_begin(a);
		struct json_object_iterator end = json_object_iter_end(a);
		for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
			struct json_object *other;
			if (!json_object_object_get_ex(b, json_object_iter_peek_name(&it), &other))
				return false;
			pair_push(st, json_object_iter_peek_value(&it), other);
		}
		return true;
	}
	default:
		return true; /* null */
	}
}

/* JSON equality (1 == 1.0, member order ignored) with an explicit stack,
 * so instance depth cannot exhaust the C stack. */
static bool json_equal(struct json_object *a, struct json_object *b)
{
	struct pair_stack st;
	st.v = st.local;
	st.n = 0;
	st.cap = HERALD_ARRAY_LEN(st.local);
	bool equal = true;

	pair_push(&st, a, b);
	while (equal && st.n > 0) {
		struct pair p = st.v[--st.n];
		equal = shallow_equal(&st, p.a, p.b);
	}
	if (st.v != st.local)
		free(st.v);
	return equal;
}

static uint64_t mix(uint64_t h)
{
	return map_hash(&h, sizeof(h));
}

/* Equal numbers hash alike whatever json-c type holds them. */
static uint64_t number_hash(long double v)
{
	int64_t i;
	if (as_int64(v, &i))
		return mix((uint64_t)i);
	if (v >= 0x1p63L && v < 0x1p64L && v == (long double)(uint64_t)v)
		return mix((uint64_t)v);
	double d = (double)v; /* not an int64 or uint64: it came from a double */
	uint64_t bits;
	memcpy(&bits, &d, sizeof(bits));
	return mix(bits ^ 0x5555);
}

/* A hash consistent with json_equal; below depth levels only the shape
 * counts, which keeps the recursion bounded. */
static uint64_t json_hash(struct json_object *x, unsigned depth)
{
	if (is_number(x))
		return number_hash(number_value(x));
	switch (json_object_get_type(x)) {
	case json_type_boolean:
		return mix(2 + (uint64_t)json_object_get_boolean(x));
	case json_type_string:
		return map_hash(json_object_get_string(x), (size_t)json_object_get_string_len(x));
	case json_type_array: {
		size_t n = json_object_array_length(x);
		uint64_t h = mix(4 + n);
		for (size_t i = 0; depth > 0 && i < n; i++)
			h = mix(h ^ json_hash(json_object_array_get_idx(x, i), depth - 1));
		return h;
	}
	case json_type_object: {
		uint64_t h = mix(5 + (uint64_t)json_object_object_length(x));
		struct json_object_iterator it = json_object_iter_begin(x);
		struct json_object_iterator end = json_object_iter_end(x);
		for (; depth > 0 && !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
			const char *name = json_object_iter_peek_name(&it);
			/* a sum, so member order does not matter */
			h += mix(map_hash(name, strlen(name)) ^
			         json_hash(json_object_iter_peek_value(&it), depth - 1));
		}
		return h;
	}
	default:
		return 1; /* null */
	}
}

struct keyed {
	uint64_t hash;
	size_t index;
};

static int keyed_cmp(const void *pa, const void *pb)
{
	const struct keyed *a = pa, *b = pb;
	if (a->hash != b->hash)
		return a->hash < b->hash ? -1 : 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

/* Two equal items of array x, found by sorting hashes so that long arrays
 * cost O(n log n) rather than O(n^2) comparisons. */
static bool find_duplicate(struct json_object *x, size_t *first, size_t *second)
{
	size_t n = json_object_array_length(x);
	if (n < 2)
		return false;
	struct keyed *k = xmalloc(n * sizeof(*k));
	for (size_t i = 0; i < n; i++)
		k[i] = (struct keyed){json_hash(json_object_array_get_idx(x, i), 3), i};
	qsort(k, n, sizeof(*k), keyed_cmp);
	bool found = false;
	for (size_t i = 0; i < n && !found; i++) {
		for (size_t j = i + 1; j < n && k[j].hash == k[i].hash && !found; j++) {
			found = json_equal(json_object_array_get_idx(x, k[i].index),
			                   json_object_array_get_idx(x, k[j].index));
			if (found) {
				*first = k[i].index;
				*second = k[j].index;
			}
		}
	}
	free(k);
	return found;
}

/* ---- ECMA-262 patterns as POSIX EREs ----------------------------------- */

/*
 * A pattern becomes an ERE over bytes, compiled in the C locale: every
 * code-point set (a literal, ".", \d, a class) becomes an alternation of
 * UTF-8 byte sequences, so matching keeps code-point semantics without a
 * UTF-8 locale (glibc's C.UTF-8 refuses multibyte ranges in brackets) and
 * regexec reads no locale at all. Only whether a pattern matches is asked
 * (REG_NOSUB), so lazy quantifiers may become greedy ones and
 * non-capturing or named groups plain ones without changing the answer.
 * Lone braces are literals and \- is "-" outside classes too, as
 * ECMA-262 reads them without the u flag. regexec locks the regex_t, so
 * threads sharing a pattern take turns while matching it.
 * Needs glibc: REG_STARTEND (strings may hold U+0000) and the \` and \'
 * anchors are GNU extensions.
 */

#define MAX_CODE_POINT 0x10ffffu
/* glibc's ^ and $ also match next to a newline that the pattern itself
 * consumes ("\n^" matches); its buffer anchors \` and \' mean exactly
 * ECMA-262's ^ and $ without the m flag. */
#define START "\\`"
#define END "\\'"
/* An atom that matches nothing (a byte after the end), for a class such
 * as [^\s\S]. */
#define NEVER "(\\'x)"

struct range {
	uint32_t lo, hi;
};

struct cset {
	struct range *v;
	size_t n, cap;
};

#define NO_ATOM SIZE_MAX
#define UNBOUNDED ULONG_MAX
/* Output allowed for one spelled-out repetition (repeat_anchored). */
#define MAX_REPEAT_BYTES 65536

struct open_group {
	size_t at;      /* where its "(" is in the output */
	size_t anchors; /* anchors emitted before it */
};

struct translator {
	const unsigned char *p, *end;
	struct buf *out;
	size_t atom;        /* where the last atom starts in out, or NO_ATOM */
	bool atom_anchored; /* it is a group holding ^ or $ */
	size_t anchors;     /* ^ and $ emitted so far */
	struct open_group *groups;
	size_t ngroups, capgroups;
	bool failed;
	char why[96];
};

static void cset_add(struct cset *s, uint32_t lo, uint32_t hi)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 8;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = (struct range){lo, hi};
}

static void cset_free(struct cset *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

static int range_cmp(const void *pa, const void *pb)
{
	const struct range *a = pa, *b = pb;
	return a->lo < b->lo ? -1 : a->lo > b->lo;
}

/* Sorts and merges the ranges, and drops the surrogates: no UTF-8 text
 * contains them. */
static void cset_normalize(struct cset *s)
{
	struct cset out = {0};
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), range_cmp);
	for (size_t i = 0; i < s->n; i++) {
		struct range r = s->v[i];
		if (out.n > 0 && r.lo <= out.v[out.n - 1].hi + 1) {
			if (r.hi > out.v[out.n - 1].hi)
				out.v[out.n - 1].hi = r.hi;
			continue;
		}
		cset_add(&out, r.lo, r.hi);
	}
	cset_free(s);
	for (size_t i = 0; i < out.n; i++) {
		struct range r = out.v[i];
		if (r.lo < 0xd800 && r.hi >= 0xd800)
			cset_add(s, r.lo, 0xd7ff);
		else if (r.lo < 0xd800)
			cset_add(s, r.lo, r.hi);
		if (r.hi > 0xdfff)
			cset_add(s, r.lo > 0xe000 ? r.lo : 0xe000, r.hi);
	}
	cset_free(&out);
}

static void cset_complement(struct cset *s)
{
	struct cset out = {0};
	uint32_t next = 0;
	cset_normalize(s);
	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].lo > next)
			cset_add(&out, next, s->v[i].lo - 1);
		next = s->v[i].hi + 1;
	}
	if (next <= MAX_CODE_POINT)
		cset_add(&out, next, MAX_CODE_POINT);
	cset_free(s);
	*s = out;
	cset_normalize(s);
}

/* \d \w \s (ASCII digits and word characters, ECMA-262 white space and
 * line terminators) or, in capitals, their complements. */
static void cset_add_class(struct cset *s, int kind)
{
	static const struct range digit[] = {{'0', '9'}};
	static const struct range word[] = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
	static const struct range space[] = {
		{0x09, 0x0d}, {0x20, 0x20}, {0xa0, 0xa0}, {0x1680, 0x1680},
		{0x2000, 0x200a}, {0x2028, 0x2029}, {0x202f, 0x202f}, {0x205f, 0x205f},
		{0x3000, 0x3000}, {0xfeff, 0xfeff},
	};
	const struct range *v = digit;
	size_t n = HERALD_ARRAY_LEN(digit);
	struct cset tmp = {0};

	if (kind == 'w' || kind == 'W') {
		v = word;
		n = HERALD_ARRAY_LEN(word);
	} else if (kind == 's' || kind == 'S') {
		v = space;
		n = HERALD_ARRAY_LEN(space);
	}
	for (size_t i = 0; i < n; i++)
		cset_add(&tmp, v[i].lo, v[i].hi);
	if (kind == 'D' || kind == 'W' || kind == 'S')
		cset_complement(&tmp);
	for (size_t i = 0; i < tmp.n; i++)
		cset_add(s, tmp.v[i].lo, tmp.v[i].hi);
	cset_free(&tmp);
}

static size_t utf8_encode(uint32_t cp, unsigned char *b)
{
	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | cp >> 6);
		b[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | cp >> 12);
		b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	b[0] = (unsigned char)(0xf0 | cp >> 18);
	b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
	b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
	b[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

static const char ere_special[] = ".[\\()*+?{|^$]}";

static void emit_ascii_literal(struct buf *out, unsigned char c)
{
	if (strchr(ere_special, c) != NULL)
		buf_append_char(out, '\\');
	buf_append_char(out, (char)c);
}

/*
 * A bracket expression for the bytes set in bits (byte 0 excluded: the
 * caller negates the complement instead). Range ends are never one of
 * "]^[-": ']' goes first, '^' anywhere but first, '[' where no ':', '.'
 * or '=' can follow it, and '-' last.
 */
static void emit_bracket(struct buf *out, const bool bits[256], bool negate)
{
	static const char special[] = "]^[-";
	bool close = bits[']'], caret = bits['^'], open = bits['['], dash = bits['-'];
	bool emitted = close;

	buf_append_str(out, negate ? "[^" : "[");
	if (close)
		buf_append_char(out, ']');
	for (unsigned c = 1; c < 256;) {
		if (!bits[c] || strchr(special, (int)c) != NULL) {
			c++;
			continue;
		}
		unsigned last = c;
		while (last < 255 && bits[last + 1] && strchr(special, (int)(last + 1)) == NULL)
			last++;
		buf_append_char(out, (char)c);
		if (last > c + 1)
			buf_append_char(out, '-');
		if (last > c)
			buf_append_char(out, (char)last);
		emitted = true;
		c = last + 1;
	}
	if (caret) {
		if (!emitted && dash) {
			buf_append_char(out, '-');
			dash = false;
		} else if (!emitted && open) {
			buf_append_char(out, '[');
			open = false;
		}
		buf_append_char(out, '^');
	}
	if (open)
		buf_append_char(out, '[');
	if (dash)
		buf_append_char(out, '-');
	buf_append_char(out, ']');
}

/* One ERE atom for a set of ASCII code points (given as byte flags). */
static void emit_ascii(struct buf *out, bool bits[256])
{
	size_t count = 0;
	unsigned only = 0;
	for (unsigned c = 0; c < 128; c++) {
		if (bits[c]) {
			count++;
			only = c;
		}
	}
	if (count == 1 && only != 0) {
		emit_ascii_literal(out, (unsigned char)only);
		return;
	}
	/* NUL cannot appear in the pattern text: list what is not matched. */
	bool negate = bits[0];
	if (negate)
		for (unsigned c = 0; c < 256; c++)
			bits[c] = !bits[c];
	emit_bracket(out, bits, negate);
}

/*
 * Appends, as ERE alternatives, the UTF-8 byte sequences of code points
 * lo..hi (lo >= 0x80): split until each byte position is an independent
 * range, the construction RE2 and Rust's regex use.
 */
static void emit_utf8_range(struct buf *alts, size_t *count, uint32_t lo, uint32_t hi)
{
	static const uint32_t last_of_length[] = {0x7f, 0x7ff, 0xffff};
	unsigned char a[4], b[4];

	for (size_t i = 0; i < HERALD_ARRAY_LEN(last_of_length); i++) {
		if (lo <= last_of_length[i] && hi > last_of_length[i]) {
			emit_utf8_range(alts, count, lo, last_of_length[i]);
			emit_utf8_range(alts, count, last_of_length[i] + 1, hi);
			return;
		}
	}
	size_t len = utf8_encode(lo, a);
	for (size_t i = 1; i < len; i++) {
		uint32_t m = (1u << (6 * i)) - 1;
		if ((lo & ~m) == (hi & ~m))
			continue;
		if ((lo & m) != 0) {
			emit_utf8_range(alts, count, lo, lo | m);
			emit_utf8_range(alts, count, (lo | m) + 1, hi);
			return;
		}
		if ((hi & m) != m) {
			emit_utf8_range(alts, count, lo, (hi & ~m) - 1);
			emit_utf8_range(alts, count, hi & ~m, hi);
			return;
		}
	}
	utf8_encode(hi, b);
	if ((*count)++ > 0)
		buf_append_char(alts, '|');
	for (size_t i = 0; i < len; i++) {
		if (a[i] == b[i]) {
			buf_append_char(alts, (char)a[i]);
		} else {
			char bracket[5] = {'[', (char)a[i], '-', (char)b[i], ']'};
			buf_append(alts, bracket, sizeof(bracket));
		}
	}
}

/* One ERE atom matching exactly one code point of s (normalized, not
 * empty); groups what a following quantifier must take whole. */
static void emit_set(struct buf *out, const struct cset *s)
{
	bool ascii[256] = {false};
	bool any_ascii = false;
	struct buf alts = BUF_INIT;
	size_t count = 0;

	for (size_t i = 0; i < s->n; i++) {
		for (uint32_t c = s->v[i].lo; c <= s->v[i].hi && c < 0x80; c++)
			ascii[c] = any_ascii = true;
		if (s->v[i].hi >= 0x80)
			emit_utf8_range(&alts, &count, s->v[i].lo < 0x80 ? 0x80 : s->v[i].lo, s->v[i].hi);
	}
	if (count == 0) {
		emit_ascii(out, ascii);
	} else {
		buf_append_char(out, '(');
		if (any_ascii) {
			emit_ascii(out, ascii);
			buf_append_char(out, '|');
		}
		buf_append(out, alts.data, alts.len);
		buf_append_char(out, ')');
	}
	buf_free(&alts);
}

static bool refuse(struct translator *t, const char *fmt, ...) HERALD_PRINTF(2, 3);

static bool refuse(struct translator *t, const char *fmt, ...)
{
	if (!t->failed) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(t->why, sizeof(t->why), fmt, ap);
		va_end(ap);
	}
	t->failed = true;
	return false;
}

static int peek(const struct translator *t)
{
	return t->p < t->end ? *t->p : -1;
}

static uint32_t next_code_point(struct translator *t)
{
	size_t k = utf8_seq_len(t->p, (size_t)(t->end - t->p));
	uint32_t cp = *t->p;
	if (k <= 1) {
		t->p++;
		return cp; /* ASCII (the document is valid UTF-8) */
	}
	cp &= 0x3fu >> (k - 1);
	for (size_t i = 1; i < k; i++)
		cp = cp << 6 | (t->p[i] & 0x3fu);
	t->p += k;
	return cp;
}

/* n hex digits at t->p, or -1 (nothing consumed). */
static long hex_digits(struct translator *t, int n)
{
	long v = 0;
	if (t->end - t->p < n)
		return -1;
	for (int i = 0; i < n; i++) {
		int d = hex_value(t->p[i]);
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	t->p += n;
	return v;
}

/* \u{X...}, t->p after the brace. */
static bool braced_code_point(struct translator *t, uint32_t *cp)
{
	uint32_t v = 0;
	size_t digits = 0;
	int d;
	while ((d = hex_value(peek(t))) >= 0) {
		v = v * 16 + (uint32_t)d;
		t->p++;
		if (++digits > 6 || v > MAX_CODE_POINT)
			return refuse(t, "\\u{...} beyond U+10FFFF");
	}
	if (digits == 0 || peek(t) != '}')
		return refuse(t, "bad \\u{...} escape");
	t->p++;
	*cp = v;
	return true;
}

/* \uXXXX or \u{X...}, t->p after the u; a surrogate pair makes one code
 * point, a lone surrogate matches no UTF-8 text and is refused. */
static bool unicode_escape(struct translator *t, uint32_t *cp)
{
	if (peek(t) == '{') {
		t->p++;
		if (!braced_code_point(t, cp))
			return false;
	} else {
		long hi = hex_digits(t, 4);
		if (hi < 0)
			return refuse(t, "bad \\u escape");
		*cp = (uint32_t)hi;
		if (hi >= 0xd800 && hi <= 0xdbff && t->end - t->p >= 6 && t->p[0] == '\\' &&
		    t->p[1] == 'u') {
			const unsigned char *back = t->p;
			t->p += 2;
			long lo = hex_digits(t, 4);
			if (lo >= 0xdc00 && lo <= 0xdfff)
				*cp = 0x10000 + (((uint32_t)hi - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
			else
				t->p = back;
		}
	}
	if (*cp >= 0xd800 && *cp <= 0xdfff)
		return refuse(t, "lone surrogate U+%04" PRIX32, *cp);
	return true;
}

/* A character escape, valid in and out of classes; t->p after the
 * backslash. */
static bool char_escape(struct translator *t, uint32_t *cp)
{
	static const char controls[] = "tnvfr";
	static const char control_values[] = "\t\n\v\f\r";
	int c = peek(t);

	if (c < 0)
		return refuse(t, "pattern ends with a backslash");
	t->p++;
	if (c != 0 && strchr(controls, c) != NULL) {
		*cp = (unsigned char)control_values[strchr(controls, c) - controls];
		return true;
	}
	if (c != 0 && strchr("^$\\.*+?()[]{}|/-", c) != NULL) {
		*cp = (uint32_t)c;
		return true;
	}
	switch (c) {
	case '0':
		if (peek(t) >= '0' && peek(t) <= '9')
			return refuse(t, "octal escapes are not supported");
		*cp = 0;
		return true;
	case 'c': {
		int letter = peek(t);
		if (!((letter >= 'a' && letter <= 'z') || (letter >= 'A' && letter <= 'Z')))
			return refuse(t, "bad \\c escape");
		t->p++;
		*cp = (uint32_t)letter % 32;
		return true;
	}
	case 'x': {
		long v = hex_digits(t, 2);
		if (v < 0)
			return refuse(t, "bad \\x escape");
		*cp = (uint32_t)v;
		return true;
	}
	case 'u':
		return unicode_escape(t, cp);
	case 'b':
	case 'B':
		return refuse(t, "word boundaries (\\b, \\B) are not supported");
	case 'p':
	case 'P':
		return refuse(t, "Unicode property escapes (\\p, \\P) are not supported");
	case 'k':
		return refuse(t, "backreferences are not supported");
	default:
		if (c >= '1' && c <= '9')
			return refuse(t, "backreferences are not supported");
		return refuse(t, "unknown escape \\%c", c);
	}
}

/* An escape in a class: a class escape goes into set (*single false),
 * anything else is one code point. \b is a backspace here. */
static bool class_escape(struct translator *t, struct cset *set, uint32_t *cp, bool *single)
{
	int c = peek(t);
	*single = true;
	if (c > 0 && strchr("dDwWsS", c) != NULL) {
		t->p++;
		cset_add_class(set, c);
		*single = false;
		return true;
	}
	if (c == 'b') {
		t->p++;
		*cp = '\b';
		return true;
	}
	return char_escape(t, cp);
}

static bool class_atom(struct translator *t, struct cset *set, uint32_t *cp, bool *single)
{
	if (peek(t) == '\\') {
		t->p++;
		return class_escape(t, set, cp, single);
	}
	*single = true;
	*cp = next_code_point(t);
	return true;
}

/* [...] with t->p after the bracket. */
static bool translate_class(struct translator *t)
{
	struct cset set = {0};
	bool negate = peek(t) == '^';
	bool ok = true;

	if (negate)
		t->p++;
	for (;;) {
		uint32_t lo, hi;
		bool single, single_hi;
		if (peek(t) < 0) {
			ok = refuse(t, "unterminated character class");
			break;
		}
		if (peek(t) == ']') {
			t->p++;
			break;
		}
		if (!(ok = class_atom(t, &set, &lo, &single)))
			break;
		if (peek(t) != '-' || t->end - t->p < 2 || t->p[1] == ']') {
			if (single)
				cset_add(&set, lo, lo);
			continue;
		}
		t->p++;
		if (!(ok = class_atom(t, &set, &hi, &single_hi)))
			break;
		if (!single || !single_hi) {
			ok = refuse(t, "a class escape cannot end a range");
			break;
		}
		if (lo > hi) {
			ok = refuse(t, "range out of order in character class");
			break;
		}
		cset_add(&set, lo, hi);
	}
	if (ok) {
		if (negate)
			cset_complement(&set);
		else
			cset_normalize(&set);
		if (set.n == 0)
			buf_append_str(t->out, NEVER);
		else
			emit_set(t->out, &set);
	}
	cset_free(&set);
	return ok;
}

/* An escape outside classes, t->p after the backslash. */
static bool translate_escape(struct translator *t)
{
	struct cset set = {0};
	int c = peek(t);
	uint32_t cp;

	if (c > 0 && strchr("dDwWsS", c) != NULL) {
		t->p++;
		cset_add_class(&set, c);
	} else if (char_escape(t, &cp)) {
		cset_add(&set, cp, cp);
	} else {
		return false;
	}
	cset_normalize(&set);
	emit_set(t->out, &set);
	cset_free(&set);
	return true;
}

/* "(" with t->p after it: groups capture nothing under REG_NOSUB, so
 * (?:...) and (?<name>...) are plain groups. */
static bool translate_group(struct translator *t)
{
	if (peek(t) != '?') {
		buf_append_char(t->out, '(');
		return true;
	}
	t->p++;
	int c = peek(t);
	if (c == ':') {
		t->p++;
	} else if (c == '=' || c == '!') {
		return refuse(t, "lookahead is not supported");
	} else if (c == '<' && t->end - t->p >= 2 && (t->p[1] == '=' || t->p[1] == '!')) {
		return refuse(t, "lookbehind is not supported");
	} else if (c == '<') {
		const unsigned char *close = memchr(t->p, '>', (size_t)(t->end - t->p));
		if (close == NULL || close == t->p + 1)
			return refuse(t, "bad group name");
		t->p = close + 1;
	} else {
		return refuse(t, "unsupported group \"(?%c\"", c < 0 ? ' ' : c);
	}
	buf_append_char(t->out, '(');
	return true;
}

static bool digits_value(const unsigned char **q, const unsigned char *end, unsigned long *v)
{
	const unsigned char *start = *q;
	*v = 0;
	/* past 10^6 the count only has to stay too large for regcomp */
	for (; *q < end && **q >= '0' && **q <= '9'; (*q)++)
		if (*v < 1000000)
			*v = *v * 10 + (unsigned long)(**q - '0');
	return *q > start;
}

/* Reads {n}, {n,} or {n,m} at t->p; false (nothing consumed) when the
 * brace starts none, and is then a literal. */
static bool brace_bounds(struct translator *t, unsigned long *min, unsigned long *max)
{
	const unsigned char *q = t->p + 1;
	if (!digits_value(&q, t->end, min))
		return false;
	*max = *min;
	if (q < t->end && *q == ',') {
		q++;
		*max = UNBOUNDED;
		if (q < t->end && *q >= '0' && *q <= '9')
			digits_value(&q, t->end, max);
	}
	if (q >= t->end || *q != '}')
		return false;
	t->p = q + 1;
	return true;
}

static void shorten(struct buf *b, size_t len)
{
	b->len = len;
	if (b->data != NULL)
		b->data[len] = '\0';
}

/*
 * glibc repeats a group by copying its parse tree, and in the copies ^
 * and $ stop anchoring ("(.$){2}" matches "ab"). So such a group is
 * repeated in the text instead: X{n,m} becomes n copies of X then m-n of
 * X?, and X{n,} n copies then X*.
 */
static bool repeat_anchored(struct translator *t, unsigned long min, unsigned long max)
{
	size_t len = t->out->len - t->atom;
	unsigned long copies = max == UNBOUNDED ? min + 1 : max;

	if (copies > MAX_REPEAT_BYTES / (len + 1))
		return refuse(t, "a group holding ^ or $ repeated %lu times is not supported", copies);
	char *atom = xmalloc(len);
	memcpy(atom, t->out->data + t->atom, len);
	shorten(t->out, t->atom);
	for (unsigned long i = 0; i < copies; i++) {
		buf_append(t->out, atom, len);
		if (i >= min)
			buf_append_char(t->out, max == UNBOUNDED ? '*' : '?');
	}
	free(atom);
	return true;
}

/* A quantifier (its text from start to t->p) on the last atom; a lazy
 * one matches the same strings as the greedy one. */
static bool quantify(struct translator *t, const unsigned char *start, unsigned long min,
                     unsigned long max)
{
	if (t->atom == NO_ATOM)
		return refuse(t, "nothing to repeat");
	if (max < min)
		return refuse(t, "numbers out of order in {} quantifier");
	if (t->atom_anchored) {
		if (!repeat_anchored(t, min, max))
			return false;
	} else {
		buf_append(t->out, start, (size_t)(t->p - start));
	}
	t->atom = NO_ATOM;
	if (peek(t) == '?')
		t->p++;
	return true;
}

static void open_group(struct translator *t, size_t at)
{
	if (t->ngroups == t->capgroups) {
		t->capgroups = t->capgroups ? t->capgroups * 2 : 8;
		t->groups = xrealloc(t->groups, t->capgroups * sizeof(*t->groups));
	}
	t->groups[t->ngroups++] = (struct open_group){at, t->anchors};
	t->atom = NO_ATOM;
}

static bool close_group(struct translator *t)
{
	if (t->ngroups == 0)
		return refuse(t, "unmatched \")\"");
	struct open_group g = t->groups[--t->ngroups];
	buf_append_char(t->out, ')');
	t->atom = g.at;
	t->atom_anchored = t->anchors > g.anchors;
	return true;
}

static void anchor(struct translator *t, const char *ere)
{
	buf_append_str(t->out, ere);
	t->anchors++;
	t->atom = NO_ATOM;
}

static void translate_literal(struct translator *t)
{
	struct cset set = {0};
	uint32_t cp = next_code_point(t);
	cset_add(&set, cp, cp);
	emit_set(t->out, &set);
	cset_free(&set);
}

/* "." : any code point but a line terminator. */
static void translate_dot(struct translator *t)
{
	struct cset set = {0};
	cset_add(&set, '\n', '\n');
	cset_add(&set, '\r', '\r');
	cset_add(&set, 0x2028, 0x2029);
	cset_complement(&set);
	emit_set(t->out, &set);
	cset_free(&set);
}

/* One token at t->p: an atom (where it starts is noted for a
 * quantifier), a group bracket, an alternation, an anchor or a
 * quantifier. */
static void translate_token(struct translator *t)
{
	const unsigned char *start = t->p;
	size_t at = t->out->len;
	unsigned long min, max;

	switch (*t->p++) {
	case '(':
		if (translate_group(t))
			open_group(t, at);
		return;
	case ')':
		close_group(t);
		return;
	case '|':
		buf_append_char(t->out, '|');
		t->atom = NO_ATOM;
		return;
	case '^':
		anchor(t, START);
		return;
	case '$':
		anchor(t, END);
		return;
	case '*':
		quantify(t, start, 0, UNBOUNDED);
		return;
	case '+':
		quantify(t, start, 1, UNBOUNDED);
		return;
	case '?':
		quantify(t, start, 0, 1);
		return;
	case '{':
		t->p = start;
		if (brace_bounds(t, &min, &max)) {
			quantify(t, start, min, max);
			return;
		}
		break;
	}
	t->p = start;
	t->atom = at;
	t->atom_anchored = false;
	switch (*t->p) {
	case '\\':
		t->p++;
		translate_escape(t);
		break;
	case '[':
		t->p++;
		translate_class(t);
		break;
	case '.':
		t->p++;
		translate_dot(t);
		break;
	default:
		translate_literal(t);
		break;
	}
}

static bool translate_pattern(const char *src, size_t len, struct buf *out, char *why,
                              size_t whylen)
{
	struct translator t = {.p = (const unsigned char *)src,
	                       .end = (const unsigned char *)src + len,
	                       .out = out,
	                       .atom = NO_ATOM};

	while (!t.failed && t.p < t.end)
		translate_token(&t);
	if (!t.failed && t.ngroups > 0)
		refuse(&t, "unterminated group");
	free(t.groups);
	if (t.failed)
		snprintf(why, whylen, "%s", t.why);
	return !t.failed;
}

static void pattern_free(struct pattern *p)
{
	if (p == NULL)
		return;
	regfree(&p->re);
	free(p);
}

/* regoff_t is an int: text longer than that is never matched (no JSON
 * document herald accepts gets near it). */
static bool pattern_matches(const struct pattern *p, const char *s, size_t len)
{
	if (len > INT_MAX)
		return false;
	regmatch_t range = {.rm_so = 0, .rm_eo = (regoff_t)len};
	return regexec(&p->re, s, 1, &range, REG_STARTEND) == 0;
}

/* ---- JSON Pointers ----------------------------------------------------- */

static void pointer_append(struct buf *b, const char *token)
{
	buf_append_char(b, '/');
	for (; *token != '\0'; token++) {
		if (*token == '~')
			buf_append_str(b, "~0");
		else if (*token == '/')
			buf_append_str(b, "~1");
		else
			buf_append_char(b, *token);
	}
}

static bool percent_decode(const char *s, struct buf *out)
{
	for (; *s != '\0'; s++) {
		if (*s != '%') {
			buf_append_char(out, *s);
			continue;
		}
		int hi = hex_value((unsigned char)s[1]);
		int lo = hi < 0 ? -1 : hex_value((unsigned char)s[2]);
		if (lo < 0 || (hi == 0 && lo == 0))
			return false;
		buf_append_char(out, (char)(hi * 16 + lo));
		s += 2;
	}
	return true;
}

/* One reference token of a pointer, unescaped into token; *p moves past
 * it. */
static bool pointer_token(const char **p, struct buf *token)
{
	buf_reset(token);
	for (; **p != '\0' && **p != '/'; (*p)++) {
		if (**p != '~') {
			buf_append_char(token, **p);
		} else if ((*p)[1] == '0' || (*p)[1] == '1') {
			buf_append_char(token, (*p)[1] == '0' ? '~' : '/');
			(*p)++;
		} else {
			return false;
		}
	}
	return true;
}

static bool array_index(const char *s, size_t len, size_t *index)
{
	size_t v = 0;
	if (*s == '\0' || (s[0] == '0' && s[1] != '\0'))
		return false;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || v > (SIZE_MAX - 9) / 10)
			return false;
		v = v * 10 + (size_t)(*s - '0');
	}
	*index = v;
	return v < len;
}

/*
 * Follows ref ("#" then a percent-encoded JSON Pointer) from doc. Returns
 * NULL with *target and the decoded pointer set, or why it cannot.
 */
static const char *resolve_pointer(struct json_object *doc, const char *ref, struct buf *pointer,
                                   struct json_object **target)
{
	struct buf token = BUF_INIT;
	const char *why = NULL;

	buf_reset(pointer);
	if (!percent_decode(ref + 1, pointer))
		return "has a bad percent-encoding";
	const char *p = pointer->data ? pointer->data : "";
	if (*p != '\0' && *p != '/')
		return "is not a JSON Pointer (anchors are not supported)";
	while (*p == '/' && why == NULL) {
		p++;
		size_t index;
		if (!pointer_token(&p, &token))
			why = "has a bad ~ escape";
		else if (json_object_is_type(doc, json_type_object) &&
		         json_object_object_get_ex(doc, token.data ? token.data : "", &doc))
			continue;
		else if (json_object_is_type(doc, json_type_array) &&
		         array_index(token.data ? token.data : "", json_object_array_length(doc), &index))
			doc = json_object_array_get_idx(doc, index);
		else
			why = "does not resolve";
	}
	buf_free(&token);
	*target = doc;
	return why;
}

/* ---- compilation ------------------------------------------------------- */

struct compiler {
	struct schema *s;
	struct buf path; /* JSON Pointer of the location being compiled */
	struct map seen; /* document value -> its node: one node per location */
	locale_t c_locale;
	char *err;
	size_t errlen;
	bool failed;
};

struct keyword {
	const char *name;
	bool (*compile)(struct compiler *c, struct node *n, const struct keyword *k,
	                struct json_object *v);
	size_t field; /* offset of the node member the keyword fills */
};

#define FIELD(n, k, type) ((type *)(void *)((char *)(n) + (k)->field))

static const char *shown_location(const char *where)
{
	return *where != '\0' ? where : "(root)";
}

static bool vfail_at(struct compiler *c, const char *where, const char *fmt, va_list ap)
	HERALD_PRINTF(3, 0);

static bool vfail_at(struct compiler *c, const char *where, const char *fmt, va_list ap)
{
	if (!c->failed && c->errlen > 0) {
		char msg[256];
		vsnprintf(msg, sizeof(msg), fmt, ap);
		snprintf(c->err, c->errlen, "%s: %s", shown_location(where), msg);
	}
	c->failed = true;
	return false;
}

static bool fail_at(struct compiler *c, const char *where, const char *fmt, ...)
	HERALD_PRINTF(3, 4);

static bool fail_at(struct compiler *c, const char *where, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail_at(c, where, fmt, ap);
	va_end(ap);
	return false;
}

/* Fails at the schema location being compiled. */
static bool fail(struct compiler *c, const char *fmt, ...) HERALD_PRINTF(2, 3);

static bool fail(struct compiler *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail_at(c, c->path.data ? c->path.data : "", fmt, ap);
	va_end(ap);
	return false;
}

/* A copy of v's JSON text, shortened for messages. */
static char *shown_json(struct json_object *v)
{
	const char *text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
	                                                         JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t n = strlen(text);
	if (n <= SHOWN_JSON)
		return xstrdup(text);
	n = SHOWN_JSON;
	while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
		n--;
	char *shown = xmalloc(n + 4);
	memcpy(shown, text, n);
	memcpy(shown + n, "...", 4);
	return shown;
}

static struct node *node_new(struct compiler *c)
{
	struct schema *s = c->s;
	struct node *n = xcalloc(1, sizeof(*n));

	n->where = xstrndup(c->path.data ? c->path.data : "", c->path.len);
	n->max_length = n->max_items = n->max_contains = n->max_properties = UINT64_MAX;
	n->min_contains = 1;
	map_init(&n->properties);
	if (s->nnodes == s->capnodes) {
		s->capnodes = s->capnodes ? s->capnodes * 2 : 16;
		s->nodes = xrealloc(s->nodes, s->capnodes * sizeof(*s->nodes));
	}
	s->nodes[s->nnodes++] = n;
	return n;
}

static void node_free(struct node *n)
{
	struct bound *bounds[] = {&n->multiple_of, &n->maximum, &n->exclusive_maximum,
	                          &n->minimum, &n->exclusive_minimum};
	struct nodes *lists[] = {&n->prefix_items, &n->all_of, &n->any_of, &n->one_of};

	for (size_t i = 0; i < HERALD_ARRAY_LEN(bounds); i++)
		free(bounds[i]->text);
	for (size_t i = 0; i < HERALD_ARRAY_LEN(lists); i++)
		free(lists[i]->v);
	for (size_t i = 0; i < n->n_pattern_properties; i++)
		pattern_free(n->pattern_properties[i].pattern);
	free(n->pattern_properties);
	free(n->dependent_schemas);
	pattern_free(n->pattern);
	map_free(&n->properties);
	free(n->where);
	free(n->type_text);
	free(n->enum_text);
	free(n->const_text);
	free(n);
}

static struct node *compile_node(struct compiler *c, struct json_object *doc);

/* The subschema at <location>/keyword[/member]. */
static struct node *compile_sub(struct compiler *c, struct json_object *doc, const char *keyword,
                                const char *member)
{
	size_t mark = c->path.len;
	pointer_append(&c->path, keyword);
	if (member != NULL)
		pointer_append(&c->path, member);
	struct node *n = compile_node(c, doc);
	c->path.len = mark;
	c->path.data[mark] = '\0';
	return n;
}

static struct pattern *compile_pattern(struct compiler *c, const char *keyword, const char *source,
                                       size_t len)
{
	struct buf ere = BUF_INIT;
	char why[128];

	if (!translate_pattern(source, len, &ere, why, sizeof(why))) {
		buf_free(&ere);
		fail(c, "\"%s\" \"%s\": %s", keyword, source, why);
		return NULL;
	}
	if (c->c_locale == (locale_t)0)
		c->c_locale = newlocale(LC_CTYPE_MASK | LC_COLLATE_MASK, "C", (locale_t)0);
	if (c->c_locale == (locale_t)0) {
		buf_free(&ere);
		fail(c, "cannot create the C locale for \"%s\"", keyword);
		return NULL;
	}
	/* The ERE is bytes: compile it where a byte is a character, whatever
	 * locale the process runs in. */
	struct pattern *p = xcalloc(1, sizeof(*p));
	locale_t old = uselocale(c->c_locale);
	int rc = regcomp(&p->re, ere.data ? ere.data : "", REG_EXTENDED | REG_NOSUB);
	uselocale(old);
	buf_free(&ere);
	if (rc != 0) {
		char msg[96];
		regerror(rc, &p->re, msg, sizeof(msg));
		free(p);
		fail(c, "\"%s\" \"%s\" is not a supported regex: %s", keyword, source, msg);
		return NULL;
	}
	p->source = source;
	return p;
}

static bool kw_dialect(struct compiler *c, struct node *n, const struct keyword *k,
                       struct json_object *v)
{
	if (!json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), DIALECT_2020_12) != 0)
		return fail(c, "\"$schema\" must be \"%s\", the only dialect supported",
		            DIALECT_2020_12);
	return true;
}

static bool kw_text(struct compiler *c, struct node *n, const struct keyword *k,
                    struct json_object *v)
{
	if (!json_object_is_type(v, json_type_string))
		return fail(c, "\"%s\" must be a string", k->name);
	return true;
}

static bool kw_annotation_flag(struct compiler *c, struct node *n, const struct keyword *k,
                               struct json_object *v)
{
	if (!json_object_is_type(v, json_type_boolean))
		return fail(c, "\"%s\" must be a boolean", k->name);
	return true;
}

/* default and examples hold data, never schemas. */
static bool kw_data(struct compiler *c, struct node *n, const struct keyword *k,
                    struct json_object *v)
{
	return true;
}

static bool add_type(struct compiler *c, struct node *n, struct json_object *name)
{
	const char *s = json_object_is_type(name, json_type_string) ? json_object_get_string(name) : "";
	for (size_t i = 0; i < HERALD_ARRAY_LEN(type_names); i++) {
		if (strcmp(s, type_names[i]) != 0)
			continue;
		if (n->types & 1u << i)
			return fail(c, "\"type\" lists \"%s\" twice", s);
		n->types |= 1u << i;
		return true;
	}
	return fail(c, "\"type\" must name JSON Schema types (null, boolean, object, array, "
	               "number, string, integer)");
}

static bool kw_type(struct compiler *c, struct node *n, const struct keyword *k,
                    struct json_object *v)
{
	struct buf text = BUF_INIT;

	if (json_object_is_type(v, json_type_array)) {
		if (json_object_array_length(v) == 0)
			return fail(c, "\"type\" must not be an empty array");
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (!add_type(c, n, json_object_array_get_idx(v, i)))
				return false;
	} else if (!add_type(c, n, v)) {
		return false;
	}
	for (size_t i = 0; i < HERALD_ARRAY_LEN(type_names); i++) {
		if (!(n->types & 1u << i))
			continue;
		if (text.len > 0)
			buf_append_str(&text, " or ");
		buf_append_str(&text, type_names[i]);
	}
	n->type_text = buf_steal(&text);
	return true;
}

static bool kw_enum(struct compiler *c, struct node *n, const struct keyword *k,
                    struct json_object *v)
{
	if (!json_object_is_type(v, json_type_array))
		return fail(c, "\"enum\" must be an array");
	n->enum_values = v;
	n->enum_text = shown_json(v);
	return true;
}

static bool kw_const(struct compiler *c, struct node *n, const struct keyword *k,
                     struct json_object *v)
{
	n->has_const = true;
	n->const_value = v;
	n->const_text = shown_json(v);
	return true;
}

/* maximum, exclusiveMaximum, minimum, exclusiveMinimum */
static bool kw_number(struct compiler *c, struct node *n, const struct keyword *k,
                      struct json_object *v)
{
	struct bound *b = FIELD(n, k, struct bound);
	if (!is_number(v))
		return fail(c, "\"%s\" must be a number", k->name);
	b->set = true;
	b->value = number_value(v);
	b->text = shown_json(v);
	return true;
}

static bool kw_multiple_of(struct compiler *c, struct node *n, const struct keyword *k,
                           struct json_object *v)
{
	if (is_number(v) && !(number_value(v) > 0))
		return fail(c, "\"multipleOf\" must be greater than 0");
	return kw_number(c, n, k, v);
}

/* maxLength, minLength, maxItems, ...: non-negative integers (2.0 too). */
static bool kw_count(struct compiler *c, struct node *n, const struct keyword *k,
                     struct json_object *v)
{
	if (!is_integer(v) || number_value(v) < 0)
		return fail(c, "\"%s\" must be a non-negative integer", k->name);
	long double x = number_value(v);
	*FIELD(n, k, uint64_t) = x >= 0x1p64L ? UINT64_MAX : (uint64_t)x;
	return true;
}

static bool kw_unique_items(struct compiler *c, struct node *n, const struct keyword *k,
                            struct json_object *v)
{
	if (!json_object_is_type(v, json_type_boolean))
		return fail(c, "\"uniqueItems\" must be a boolean");
	n->unique_items = json_object_get_boolean(v);
	return true;
}

static bool kw_pattern(struct compiler *c, struct node *n, const struct keyword *k,
                       struct json_object *v)
{
	if (!json_object_is_type(v, json_type_string))
		return fail(c, "\"pattern\" must be a string");
	n->pattern = compile_pattern(c, k->name, json_object_get_string(v),
	                             (size_t)json_object_get_string_len(v));
	return n->pattern != NULL;
}

static bool check_name_list(struct compiler *c, const char *what, struct json_object *v)
{
	struct map names;
	bool ok = json_object_is_type(v, json_type_array);

	map_init(&names);
	for (size_t i = 0; ok && i < json_object_array_length(v); i++) {
		struct json_object *name = json_object_array_get_idx(v, i);
		if (!json_object_is_type(name, json_type_string)) {
			ok = false;
			break;
		}
		const char *s = json_object_get_string(name);
		size_t len = (size_t)json_object_get_string_len(name);
		if (map_get(&names, s, len) != NULL) {
			map_free(&names);
			return fail(c, "%s lists \"%s\" twice", what, s);
		}
		map_put(&names, s, len, name);
	}
	map_free(&names);
	if (!ok)
		return fail(c, "%s must be an array of strings", what);
	return true;
}

static bool kw_required(struct compiler *c, struct node *n, const struct keyword *k,
                        struct json_object *v)
{
	if (!check_name_list(c, "\"required\"", v))
		return false;
	n->required = v;
	return true;
}

static bool kw_dependent_required(struct compiler *c, struct node *n, const struct keyword *k,
                                  struct json_object *v)
{
	if (!json_object_is_type(v, json_type_object))
		return fail(c, "\"dependentRequired\" must be an object");
	struct json_object_iterator it = json_object_iter_begin(v);
	struct json_object_iterator end = json_object_iter_end(v);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
		if (!check_name_list(c, "each \"dependentRequired\" member", json_object_iter_peek_value(&it)))
			return false;
	n->dependent_required = v;
	return true;
}

static bool kw_properties(struct compiler *c, struct node *n, const struct keyword *k,
                          struct json_object *v)
{
	if (!json_object_is_type(v, json_type_object))
		return fail(c, "\"properties\" must be an object");
	struct json_object_iterator it = json_object_iter_begin(v);
	struct json_object_iterator end = json_object_iter_end(v);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *name = json_object_iter_peek_name(&it);
		struct node *sub = compile_sub(c, json_object_iter_peek_value(&it), k->name, name);
		if (sub == NULL)
			return false;
		map_put(&n->properties, name, strlen(name), sub);
	}
	return true;
}

static bool kw_pattern_properties(struct compiler *c, struct node *n, const struct keyword *k,
                                  struct json_object *v)
{
	if (!json_object_is_type(v, json_type_object))
		return fail(c, "\"patternProperties\" must be an object");
	n->pattern_properties = xcalloc((size_t)json_object_object_length(v) + 1,
	                                sizeof(*n->pattern_properties));
	struct json_object_iterator it = json_object_iter_begin(v);
	struct json_object_iterator end = json_object_iter_end(v);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *source = json_object_iter_peek_name(&it);
		struct pattern_schema *ps = &n->pattern_properties[n->n_pattern_properties];
		ps->pattern = compile_pattern(c, k->name, source, strlen(source));
		if (ps->pattern == NULL)
			return false;
		n->n_pattern_properties++;
		ps->schema = compile_sub(c, json_object_iter_peek_value(&it), k->name, source);
		if (ps->schema == NULL)
			return false;
	}
	return true;
}

static bool kw_dependent_schemas(struct compiler *c, struct node *n, const struct keyword *k,
                                 struct json_object *v)
{
	if (!json_object_is_type(v, json_type_object))
		return fail(c, "\"dependentSchemas\" must be an object");
	n->dependent_schemas = xcalloc((size_t)json_object_object_length(v) + 1,
	                               sizeof(*n->dependent_schemas));
	struct json_object_iterator it = json_object_iter_begin(v);
	struct json_object_iterator end = json_object_iter_end(v);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		struct dependent_schema *ds = &n->dependent_schemas[n->n_dependent_schemas];
		ds->name = json_object_iter_peek_name(&it);
		ds->schema = compile_sub(c, json_object_iter_peek_value(&it), k->name, ds->name);
		if (ds->schema == NULL)
			return false;
		n->n_dependent_schemas++;
	}
	return true;
}

/* $defs: compiled so that errors show up even if nothing refers to them. */
static bool kw_defs(struct compiler *c, struct node *n, const struct keyword *k,
                    struct json_object *v)
{
	if (!json_object_is_type(v, json_type_object))
		return fail(c, "\"$defs\" must be an object");
	struct json_object_iterator it = json_object_iter_begin(v);
	struct json_object_iterator end = json_object_iter_end(v);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
		if (compile_sub(c, json_object_iter_peek_value(&it), k->name,
		                json_object_iter_peek_name(&it)) == NULL)
			return false;
	return true;
}

/* additionalProperties, propertyNames, items, contains, not, if, then, else */
static bool kw_subschema(struct compiler *c, struct node *n, const struct keyword *k,
                         struct json_object *v)
{
	struct node **slot = FIELD(n, k, struct node *);
	*slot = compile_sub(c, v, k->name, NULL);
	return *slot != NULL;
}

/* prefixItems, allOf, anyOf, oneOf */
static bool kw_subschemas(struct compiler *c, struct node *n, const struct keyword *k,
                          struct json_object *v)
{
	struct nodes *list = FIELD(n, k, struct nodes);
	if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) == 0)
		return fail(c, "\"%s\" must be a non-empty array of schemas", k->name);
	list->v = xcalloc(json_object_array_length(v), sizeof(*list->v));
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		char index[24];
		snprintf(index, sizeof(index), "%zu", i);
		list->v[i] = compile_sub(c, json_object_array_get_idx(v, i), k->name, index);
		if (list->v[i] == NULL)
			return false;
		list->n++;
	}
	return true;
}

/* Only noted here: targets are compiled once every location is known
 * (resolve_refs). */
static bool kw_ref(struct compiler *c, struct node *n, const struct keyword *k,
                   struct json_object *v)
{
	if (!json_object_is_type(v, json_type_string))
		return fail(c, "\"$ref\" must be a string");
	const char *ref = json_object_get_string(v);
	if (ref[0] != '#')
		return fail(c, "\"$ref\" \"%s\" is not local: only \"#...\" references are supported",
		            ref);
	n->ref_text = ref;
	return true;
}

static const struct keyword keywords[] = {
	{"$schema", kw_dialect, 0},
	{"$comment", kw_text, 0},
	{"title", kw_text, 0},
	{"description", kw_text, 0},
	{"default", kw_data, 0},
	{"examples", kw_data, 0},
	{"deprecated", kw_annotation_flag, 0},
	{"readOnly", kw_annotation_flag, 0},
	{"writeOnly", kw_annotation_flag, 0},
	{"$defs", kw_defs, 0},
	{"$ref", kw_ref, 0},
	{"type", kw_type, 0},
	{"enum", kw_enum, 0},
	{"const", kw_const, 0},
	{"multipleOf", kw_multiple_of, offsetof(struct node, multiple_of)},
	{"maximum", kw_number, offsetof(struct node, maximum)},
	{"exclusiveMaximum", kw_number, offsetof(struct node, exclusive_maximum)},
	{"minimum", kw_number, offsetof(struct node, minimum)},
	{"exclusiveMinimum", kw_number, offsetof(struct node, exclusive_minimum)},
	{"maxLength", kw_count, offsetof(struct node, max_length)},
	{"minLength", kw_count, offsetof(struct node, min_length)},
	{"pattern", kw_pattern, 0},
	{"maxItems", kw_count, offsetof(struct node, max_items)},
	{"minItems", kw_count, offsetof(struct node, min_items)},
	{"uniqueItems", kw_unique_items, 0},
	{"maxContains", kw_count, offsetof(struct node, max_contains)},
	{"minContains", kw_count, offsetof(struct node, min_contains)},
	{"maxProperties", kw_count, offsetof(struct node, max_properties)},
	{"minProperties", kw_count, offsetof(struct node, min_properties)},
	{"required", kw_required, 0},
	{"dependentRequired", kw_dependent_required, 0},
	{"properties", kw_properties, 0},
	{"patternProperties", kw_pattern_properties, 0},
	{"additionalProperties", kw_subschema, offsetof(struct node, additional_properties)},
	{"propertyNames", kw_subschema, offsetof(struct node, property_names)},
	{"dependentSchemas", kw_dependent_schemas, 0},
	{"prefixItems", kw_subschemas, offsetof(struct node, prefix_items)},
	{"items", kw_subschema, offsetof(struct node, items)},
	{"contains", kw_subschema, offsetof(struct node, contains)},
	{"allOf", kw_subschemas, offsetof(struct node, all_of)},
	{"anyOf", kw_subschemas, offsetof(struct node, any_of)},
	{"oneOf", kw_subschemas, offsetof(struct node, one_of)},
	{"not", kw_subschema, offsetof(struct node, not_)},
	{"if", kw_subschema, offsetof(struct node, if_)},
	{"then", kw_subschema, offsetof(struct node, then_)},
	{"else", kw_subschema, offsetof(struct node, else_)},
};

static const struct keyword *keyword_find(const char *name)
{
	for (size_t i = 0; i < HERALD_ARRAY_LEN(keywords); i++)
		if (strcmp(keywords[i].name, name) == 0)
			return &keywords[i];
	return NULL;
}

static struct node *compile_node(struct compiler *c, struct json_object *doc)
{
	struct node *n = map_iget(&c->seen, (uintptr_t)doc);
	if (n != NULL)
		return n;
	if (!json_object_is_type(doc, json_type_object) &&
	    !json_object_is_type(doc, json_type_boolean)) {
		fail(c, "a schema must be an object or a boolean");
		return NULL;
	}
	n = node_new(c);
	map_iput(&c->seen, (uintptr_t)doc, n);
	if (json_object_is_type(doc, json_type_boolean)) {
		n->never = !json_object_get_boolean(doc);
		return n;
	}
	struct json_object_iterator it = json_object_iter_begin(doc);
	struct json_object_iterator end = json_object_iter_end(doc);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *name = json_object_iter_peek_name(&it);
		const struct keyword *k = keyword_find(name);
		if (k == NULL) {
			fail(c, "unsupported keyword \"%s\"", name);
			return NULL;
		}
		if (!k->compile(c, n, k, json_object_iter_peek_value(&it)))
			return NULL;
	}
	return n;
}

/* Compiles every $ref target; a target outside the locations compiled so
 * far (say "#/properties/a/items") becomes a node of its own, appended to
 * the list this loop walks. */
static bool resolve_refs(struct compiler *c)
{
	struct buf pointer = BUF_INIT;
	bool ok = true;

	for (size_t i = 0; ok && i < c->s->nnodes; i++) {
		struct node *n = c->s->nodes[i];
		struct json_object *target;
		if (n->ref_text == NULL)
			continue;
		const char *why = resolve_pointer(c->s->doc, n->ref_text, &pointer, &target);
		if (why != NULL) {
			ok = fail_at(c, n->where, "\"$ref\" \"%s\" %s", n->ref_text, why);
			break;
		}
		buf_reset(&c->path);
		buf_append(&c->path, pointer.data, pointer.len);
		n->ref = compile_node(c, target);
		ok = n->ref != NULL;
	}
	buf_free(&pointer);
	return ok;
}

/* The i-th subschema that n applies to the same instance location
 * (*child may be NULL); false past the last. */
static bool in_place_child(const struct node *n, size_t i, struct node **child)
{
	/* then and else apply only with an if */
	struct node *const single[] = {n->ref, n->not_, n->if_, n->if_ ? n->then_ : NULL,
	                               n->if_ ? n->else_ : NULL};
	const struct nodes *lists[] = {&n->all_of, &n->any_of, &n->one_of};

	if (i < HERALD_ARRAY_LEN(single)) {
		*child = single[i];
		return true;
	}
	i -= HERALD_ARRAY_LEN(single);
	for (size_t l = 0; l < HERALD_ARRAY_LEN(lists); l++) {
		if (i < lists[l]->n) {
			*child = lists[l]->v[i];
			return true;
		}
		i -= lists[l]->n;
	}
	if (i < n->n_dependent_schemas) {
		*child = n->dependent_schemas[i].schema;
		return true;
	}
	return false;
}

enum { WHITE, GREY, BLACK };

/*
 * Refuses a loop of subschemas that all apply to the same instance
 * location (through $ref, allOf, not, if, ...): validating it would
 * never end. Loops through properties, items etc. consume the instance
 * and are bounded at run time. Depth-first with an explicit stack, as a
 * $ref chain can be as long as the schema.
 */
static bool check_cycles(struct compiler *c)
{
	struct frame {
		struct node *n;
		size_t next;
	} *stack = xmalloc(c->s->nnodes * sizeof(*stack));
	bool ok = true;

	for (size_t r = 0; ok && r < c->s->nnodes; r++) {
		size_t depth = 0;
		if (c->s->nodes[r]->mark != WHITE)
			continue;
		c->s->nodes[r]->mark = GREY;
		stack[depth++] = (struct frame){c->s->nodes[r], 0};
		while (ok && depth > 0) {
			struct frame *f = &stack[depth - 1];
			struct node *child;
			if (!in_place_child(f->n, f->next++, &child)) {
				f->n->mark = BLACK;
				depth--;
			} else if (child != NULL && child->mark == GREY) {
				ok = fail_at(c, f->n->where,
				             "$ref cycle back to %s never consumes the instance",
				             shown_location(child->where));
			} else if (child != NULL && child->mark == WHITE) {
				child->mark = GREY;
				stack[depth++] = (struct frame){child, 0};
			}
		}
	}
	free(stack);
	return ok;
}

/* jsoncheck first: json-c would keep the last of duplicate members and
 * quietly drop a keyword. */
static bool parse_document(struct compiler *c, const char *json, size_t len)
{
	static const struct jsoncheck_limits limits = {PARSE_DEPTH, 1000000, 65536};
	char why[96];

	if (len > INT_MAX) {
		snprintf(c->err, c->errlen, "schema too large");
		return false;
	}
	if (!jsoncheck(json, len, &limits, why, sizeof(why))) {
		snprintf(c->err, c->errlen, "invalid JSON: %s", why);
		return false;
	}
	struct json_tokener *tok = json_tokener_new_ex(PARSE_DEPTH + 1);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	c->s->doc = json_tokener_parse_ex(tok, json, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_continue) {
		/* a bare scalar ends only at the end of input */
		c->s->doc = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
	}
	json_tokener_free(tok);
	if (jerr != json_tokener_success) {
		snprintf(c->err, c->errlen, "invalid JSON: %s", json_tokener_error_desc(jerr));
		return false;
	}
	return true;
}

struct schema *schema_compile(const char *json, size_t len, char *err, size_t errlen)
{
	struct schema *s = xcalloc(1, sizeof(*s));
	struct compiler c = {.s = s, .path = BUF_INIT, .err = err, .errlen = errlen};

	if (errlen > 0)
		err[0] = '\0';
	map_init(&c.seen);
	bool ok = parse_document(&c, json, len) && (s->root = compile_node(&c, s->doc)) != NULL &&
	          resolve_refs(&c) && check_cycles(&c);
	map_free(&c.seen);
	buf_free(&c.path);
	if (c.c_locale != (locale_t)0)
		freelocale(c.c_locale);
	if (!ok) {
		schema_free(s);
		return NULL;
	}
	return s;
}

void schema_free(struct schema *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nnodes; i++)
		node_free(s->nodes[i]);
	free(s->nodes);
	json_object_put(s->doc);
	free(s);
}

/* ---- validation -------------------------------------------------------- */

/* An instance location: a chain from the leaf up, on the C stack. */
struct seg {
	const struct seg *up;
	const char *name; /* member name, or NULL for the array index */
	size_t index;
};

struct validator {
	struct schema_error *e; /* where a failure is described; NULL while probing */
	unsigned depth;
	bool too_deep;             /* sticky: the result is false, whatever else */
	struct schema_error deep; /* kept even while probing */
};

/* Copies src, cut at a UTF-8 character boundary when it does not fit. */
static void copy_text(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap) {
		n = cap - 1;
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void render_path(char *dst, size_t cap, const struct seg *at)
{
	size_t n = 0;
	for (const struct seg *s = at; s != NULL; s = s->up)
		n++;
	const struct seg **chain = xmalloc((n + 1) * sizeof(*chain));
	size_t i = n;
	for (const struct seg *s = at; s != NULL; s = s->up)
		chain[--i] = s;
	struct buf b = BUF_INIT;
	for (i = 0; i < n; i++) {
		if (chain[i]->name != NULL) {
			pointer_append(&b, chain[i]->name);
		} else {
			buf_append_char(&b, '/');
			buf_append_u64(&b, chain[i]->index);
		}
	}
	copy_text(dst, cap, b.data ? b.data : "");
	buf_free(&b);
	free(chain);
}

static void describe(struct schema_error *e, const struct seg *at, const char *keyword,
                     const char *fmt, va_list ap) HERALD_PRINTF(4, 0);

static void describe(struct schema_error *e, const struct seg *at, const char *keyword,
                     const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	render_path(e->path, sizeof(e->path), at);
	copy_text(e->keyword, sizeof(e->keyword), keyword);
	copy_text(e->message, sizeof(e->message), msg);
}

/* Describes a failure unless probing; always returns false. */
static bool report(struct validator *v, const struct seg *at, const char *keyword,
                   const char *fmt, ...) HERALD_PRINTF(4, 5);

static bool report(struct validator *v, const struct seg *at, const char *keyword,
                   const char *fmt, ...)
{
	if (v->e != NULL) {
		va_list ap;
		va_start(ap, fmt);
		describe(v->e, at, keyword, fmt, ap);
		va_end(ap);
	}
	return false;
}

static bool validate_node(struct validator *v, const struct node *n, struct json_object *x,
                          const struct seg *at, const char *via);

/* Whether x is valid against n, describing nothing. */
static bool probe(struct validator *v, const struct node *n, struct json_object *x,
                  const struct seg *at)
{
	struct schema_error *e = v->e;
	v->e = NULL;
	bool ok = validate_node(v, n, x, at, "");
	v->e = e;
	return ok;
}

static const char *type_name_of(struct json_object *x)
{
	switch (json_object_get_type(x)) {
	case json_type_boolean:
		return "boolean";
	case json_type_object:
		return "object";
	case json_type_array:
		return "array";
	case json_type_string:
		return "string";
	case json_type_int:
	case json_type_double:
		return is_integer(x) ? "integer" : "number";
	default:
		return "null";
	}
}

static bool type_matches(unsigned types, struct json_object *x)
{
	switch (json_object_get_type(x)) {
	case json_type_boolean:
		return types & TYPE_BOOLEAN;
	case json_type_object:
		return types & TYPE_OBJECT;
	case json_type_array:
		return types & TYPE_ARRAY;
	case json_type_string:
		return types & TYPE_STRING;
	case json_type_int:
	case json_type_double:
		return (types & TYPE_NUMBER) || ((types & TYPE_INTEGER) && is_integer(x));
	default:
		return types & TYPE_NULL;
	}
}

static bool check_values(struct validator *v, const struct node *n, struct json_object *x,
                         const struct seg *at)
{
	if (n->types != 0 && !type_matches(n->types, x))
		return report(v, at, "type", "must be %s, not %s", n->type_text, type_name_of(x));
	if (n->enum_values != NULL) {
		size_t count = json_object_array_length(n->enum_values);
		size_t i = 0;
		while (i < count && !json_equal(x, json_object_array_get_idx(n->enum_values, i)))
			i++;
		if (i == count)
			return report(v, at, "enum", "must be one of %s", n->enum_text);
	}
	if (n->has_const && !json_equal(x, n->const_value))
		return report(v, at, "const", "must be %s", n->const_text);
	return true;
}

static bool check_number(struct validator *v, const struct node *n, struct json_object *x,
                         const struct seg *at)
{
	long double d = number_value(x);

	if (n->multiple_of.set && !is_multiple_of(d, n->multiple_of.value))
		return report(v, at, "multipleOf", "must be a multiple of %s", n->multiple_of.text);
	if (n->maximum.set && d > n->maximum.value)
		return report(v, at, "maximum", "must be <= %s", n->maximum.text);
	if (n->exclusive_maximum.set && d >= n->exclusive_maximum.value)
		return report(v, at, "exclusiveMaximum", "must be < %s", n->exclusive_maximum.text);
	if (n->minimum.set && d < n->minimum.value)
		return report(v, at, "minimum", "must be >= %s", n->minimum.text);
	if (n->exclusive_minimum.set && d <= n->exclusive_minimum.value)
		return report(v, at, "exclusiveMinimum", "must be > %s", n->exclusive_minimum.text);
	return true;
}

/* Code points of valid UTF-8: every byte that does not continue one. */
static uint64_t code_points(const char *s, size_t len)
{
	uint64_t count = 0;
	for (size_t i = 0; i < len; i++)
		count += ((unsigned char)s[i] & 0xc0) != 0x80;
	return count;
}

static bool check_string(struct validator *v, const struct node *n, struct json_object *x,
                         const struct seg *at)
{
	const char *s = json_object_get_string(x);
	size_t len = (size_t)json_object_get_string_len(x);

	if (n->min_length > 0 || n->max_length < UINT64_MAX) {
		uint64_t chars = code_points(s, len);
		if (chars > n->max_length)
			return report(v, at, "maxLength", "must be at most %" PRIu64 " characters long",
			              n->max_length);
		if (chars < n->min_length)
			return report(v, at, "minLength", "must be at least %" PRIu64 " characters long",
			              n->min_length);
	}
	if (n->pattern != NULL && !pattern_matches(n->pattern, s, len))
		return report(v, at, "pattern", "must match the pattern \"%s\"", n->pattern->source);
	return true;
}

static bool check_contains(struct validator *v, const struct node *n, struct json_object *x,
                           const struct seg *at)
{
	size_t len = json_object_array_length(x);
	uint64_t count = 0;

	for (size_t i = 0; i < len && count <= n->max_contains; i++) {
		struct seg here = {at, NULL, i};
		count += probe(v, n->contains, json_object_array_get_idx(x, i), &here);
	}
	if (count < n->min_contains && n->min_contains == 1)
		return report(v, at, "contains", "must contain an item that matches \"contains\"");
	if (count < n->min_contains)
		return report(v, at, "minContains",
		              "must contain at least %" PRIu64 " items that match \"contains\"",
		              n->min_contains);
	if (count > n->max_contains)
		return report(v, at, "maxContains",
		              "must contain at most %" PRIu64 " items that match \"contains\"",
		              n->max_contains);
	return true;
}

static bool check_array(struct validator *v, const struct node *n, struct json_object *x,
                        const struct seg *at)
{
	size_t len = json_object_array_length(x);
	size_t first, second;

	if (len > n->max_items)
		return report(v, at, "maxItems", "must have at most %" PRIu64 " items", n->max_items);
	if (len < n->min_items)
		return report(v, at, "minItems", "must have at least %" PRIu64 " items", n->min_items);
	if (n->unique_items && find_duplicate(x, &first, &second))
		return report(v, at, "uniqueItems", "items %zu and %zu are equal", first, second);
	for (size_t i = 0; i < len; i++) {
		struct seg here = {at, NULL, i};
		bool prefix = i < n->prefix_items.n;
		const struct node *sub = prefix ? n->prefix_items.v[i] : n->items;
		if (sub != NULL && !validate_node(v, sub, json_object_array_get_idx(x, i), &here,
		                                  prefix ? "prefixItems" : "items"))
			return false;
	}
	if (n->contains != NULL)
		return check_contains(v, n, x, at);
	return true;
}

static bool has_member(struct json_object *x, const char *name)
{
	return json_object_object_get_ex(x, name, NULL);
}

static bool check_required(struct validator *v, const struct node *n, struct json_object *x,
                           const struct seg *at)
{
	for (size_t i = 0; n->required != NULL && i < json_object_array_length(n->required); i++) {
		const char *name = json_object_get_string(json_object_array_get_idx(n->required, i));
		if (!has_member(x, name))
			return report(v, at, "required", "missing member \"%s\"", name);
	}
	if (n->dependent_required == NULL)
		return true;
	struct json_object_iterator it = json_object_iter_begin(n->dependent_required);
	struct json_object_iterator end = json_object_iter_end(n->dependent_required);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *trigger = json_object_iter_peek_name(&it);
		struct json_object *names = json_object_iter_peek_value(&it);
		if (!has_member(x, trigger))
			continue;
		for (size_t i = 0; i < json_object_array_length(names); i++) {
			const char *name = json_object_get_string(json_object_array_get_idx(names, i));
			if (!has_member(x, name))
				return report(v, at, "dependentRequired",
				              "missing member \"%s\" (required with \"%s\")", name, trigger);
		}
	}
	return true;
}

/* propertyNames: the name is validated as a string; its failure is told
 * at the object, naming the member. */
static bool check_name(struct validator *v, const struct node *names, const char *name,
                       size_t len, const struct seg *at)
{
	struct json_object *s = json_object_new_string_len(name, (int)len);
	struct schema_error inner = {.message = ""};
	struct schema_error *outer = v->e;

	if (s == NULL)
		abort(); /* out of memory, as xmalloc would */
	v->e = outer != NULL ? &inner : NULL;
	bool ok = validate_node(v, names, s, at, "propertyNames");
	v->e = outer;
	json_object_put(s);
	if (ok)
		return true;
	return report(v, at, "propertyNames", "member name \"%s\": %s", name, inner.message);
}

static bool check_member(struct validator *v, const struct node *n, const char *name,
                         struct json_object *value, const struct seg *at)
{
	struct seg here = {at, name, 0};
	size_t len = strlen(name);
	const struct node *sub = map_get(&n->properties, name, len);
	bool matched = sub != NULL;

	if (n->property_names != NULL && !check_name(v, n->property_names, name, len, at))
		return false;
	if (sub != NULL && !validate_node(v, sub, value, &here, "properties"))
		return false;
	for (size_t i = 0; i < n->n_pattern_properties; i++) {
		const struct pattern_schema *ps = &n->pattern_properties[i];
		if (!pattern_matches(ps->pattern, name, len))
			continue;
		matched = true;
		if (!validate_node(v, ps->schema, value, &here, "patternProperties"))
			return false;
	}
	if (!matched && n->additional_properties != NULL)
		return validate_node(v, n->additional_properties, value, &here, "additionalProperties");
	return true;
}

static bool check_object(struct validator *v, const struct node *n, struct json_object *x,
                         const struct seg *at)
{
	uint64_t count = (uint64_t)json_object_object_length(x);

	if (count > n->max_properties)
		return report(v, at, "maxProperties", "must have at most %" PRIu64 " members",
		              n->max_properties);
	if (count < n->min_properties)
		return report(v, at, "minProperties", "must have at least %" PRIu64 " members",
		              n->min_properties);
	if (!check_required(v, n, x, at))
		return false;
	struct json_object_iterator it = json_object_iter_begin(x);
	struct json_object_iterator end = json_object_iter_end(x);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
		if (!check_member(v, n, json_object_iter_peek_name(&it),
		                  json_object_iter_peek_value(&it), at))
			return false;
	for (size_t i = 0; i < n->n_dependent_schemas; i++) {
		const struct dependent_schema *ds = &n->dependent_schemas[i];
		if (has_member(x, ds->name) &&
		    !validate_node(v, ds->schema, x, at, "dependentSchemas"))
			return false;
	}
	return true;
}

static bool check_one_of(struct validator *v, const struct node *n, struct json_object *x,
                         const struct seg *at)
{
	size_t matches[2], count = 0;

	for (size_t i = 0; i < n->one_of.n && count < 2; i++)
		if (probe(v, n->one_of.v[i], x, at))
			matches[count++] = i;
	if (count == 0)
		return report(v, at, "oneOf", "must match exactly one of %zu subschemas, matches none",
		              n->one_of.n);
	if (count > 1)
		return report(v, at, "oneOf", "must match exactly one subschema, matches %zu and %zu",
		              matches[0], matches[1]);
	return true;
}

/* Subschemas applied to x itself. */
static bool check_in_place(struct validator *v, const struct node *n, struct json_object *x,
                           const struct seg *at)
{
	if (n->ref != NULL && !validate_node(v, n->ref, x, at, "$ref"))
		return false;
	for (size_t i = 0; i < n->all_of.n; i++)
		if (!validate_node(v, n->all_of.v[i], x, at, "allOf"))
			return false;
	if (n->any_of.n > 0) {
		size_t i = 0;
		while (i < n->any_of.n && !probe(v, n->any_of.v[i], x, at))
			i++;
		if (i == n->any_of.n)
			return report(v, at, "anyOf", "must match at least one of %zu subschemas",
			              n->any_of.n);
	}
	if (n->one_of.n > 0 && !check_one_of(v, n, x, at))
		return false;
	if (n->not_ != NULL && probe(v, n->not_, x, at))
		return report(v, at, "not", "must not match the \"not\" subschema");
	if (n->if_ != NULL && (n->then_ != NULL || n->else_ != NULL)) {
		bool cond = probe(v, n->if_, x, at);
		const struct node *branch = cond ? n->then_ : n->else_;
		if (branch != NULL && !validate_node(v, branch, x, at, cond ? "then" : "else"))
			return false;
	}
	return true;
}

static bool check_by_type(struct validator *v, const struct node *n, struct json_object *x,
                          const struct seg *at)
{
	switch (json_object_get_type(x)) {
	case json_type_int:
	case json_type_double:
		return check_number(v, n, x, at);
	case json_type_string:
		return check_string(v, n, x, at);
	case json_type_array:
		return check_array(v, n, x, at);
	case json_type_object:
		return check_object(v, n, x, at);
	default:
		return true;
	}
}

/* via: the keyword that led here, named when n is the schema false. */
static bool validate_node(struct validator *v, const struct node *n, struct json_object *x,
                          const struct seg *at, const char *via)
{
	if (v->too_deep)
		return false;
	if (v->depth == VALIDATE_DEPTH) {
		struct schema_error *e = v->e;
		v->too_deep = true;
		v->e = &v->deep;
		report(v, at, "$ref", "more than %d nested subschemas (a recursive $ref?)",
		       VALIDATE_DEPTH);
		v->e = e;
		return false;
	}
	if (n->never)
		return report(v, at, via, "not allowed (schema false)");
	v->depth++;
	bool ok = check_values(v, n, x, at) && check_by_type(v, n, x, at) &&
	          check_in_place(v, n, x, at);
	v->depth--;
	return ok;
}

bool schema_validate(const struct schema *s, struct json_object *instance, struct schema_error *e)
{
	struct validator v = {.e = e};

	if (e != NULL)
		memset(e, 0, sizeof(*e));
	bool ok = validate_node(&v, s->root, instance, NULL, "false");
	if (v.too_deep) {
		if (e != NULL)
			*e = v.deep;
		return false;
	}
	return ok;
}
