/*
 * jsoncheck.h — strict JSON validation under explicit limits (pure).
 *
 * Checks a document byte by byte before anything is parsed into objects:
 * RFC 8259 grammar with nothing after the value, valid UTF-8 (no overlong
 * forms, no surrogates, nothing above U+10FFFF) in raw bytes and in \u
 * escapes (paired surrogates only), no control characters in strings,
 * numbers that fit an IEEE double, no duplicate member names in an object,
 * and the limits below. json-c accepts some of these (duplicates keep the
 * last value; huge numbers saturate), so publish runs this first (SPEC
 * §5.5). Does not build a tree and allocates only to compare member names.
 */
#ifndef HERALD_JSONCHECK_H
#define HERALD_JSONCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include "compiler.h"

struct jsoncheck_limits {
	unsigned max_depth;    /* nesting of arrays and objects [64] */
	size_t max_values;     /* values in the whole document [100000] */
	size_t max_string;     /* bytes of one string or member name, decoded [65536] */
};

#define JSONCHECK_DEFAULT_LIMITS {64, 100000, 65536}

/* true when s (n bytes) is one valid JSON document within lim; otherwise
 * false with a short message naming the problem and its byte offset. */
bool jsoncheck(const char *s, size_t n, const struct jsoncheck_limits *lim,
               char *err, size_t errlen) HERALD_MUSTCHECK;

#endif
