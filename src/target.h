/*
 * target.h — parse the raw HTTP request target (path and query) (pure).
 *
 * libmicrohttpd percent-decodes paths before the access handler runs, so
 * "%2F" would become a path separator and "%00" would truncate: herald
 * parses the raw target itself. The path is split on '/' first and each
 * segment decoded afterwards; query keys and values are decoded with '+'
 * as space. Any "%00", a malformed escape, or a decoded byte < 0x20 makes
 * the target invalid (400), so no trick yields a different channel.
 */
#ifndef HERALD_TARGET_H
#define HERALD_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include "compiler.h"

#define TARGET_MAX_SEGMENTS 8
#define TARGET_MAX_PARAMS 64

struct target_param {
	char *key;   /* decoded, NUL-terminated, owned by the target */
	char *value; /* decoded, NUL-terminated ("" when no '='), owned */
};

struct target {
	size_t nseg;
	char *seg[TARGET_MAX_SEGMENTS]; /* decoded path segments, owned */
	bool trailing_slash;
	size_t nparam;
	struct target_param param[TARGET_MAX_PARAMS];
};

enum target_result {
	TARGET_OK = 0,
	TARGET_BAD_ESCAPE,    /* malformed %XX, %00 or a control byte */
	TARGET_TOO_MANY,      /* too many segments or parameters */
	TARGET_NOT_ORIGIN,    /* does not start with '/' */
};

/* Parses raw (n bytes) into t. On TARGET_OK the caller must target_free(t);
 * on failure t holds nothing to free. An empty path segment ("//") is kept
 * as "" so the router can refuse it. "/" has zero segments. */
enum target_result target_parse(const char *raw, size_t n, struct target *t) HERALD_MUSTCHECK;
void target_free(struct target *t);
/* First value of key, or NULL. */
const char *target_param(const struct target *t, const char *key);
/* Number of values of key. */
size_t target_param_count(const struct target *t, const char *key);

#endif
