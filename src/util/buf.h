/*
 * buf.h — growable byte buffer used to build SSE frames, JSON and SQL args.
 *
 * A struct buf owns its storage (free with buf_free). The contents are
 * always NUL-terminated so they can be handed to C string APIs, but may
 * also contain NUL bytes; len is authoritative.
 */
#ifndef HERALD_BUF_H
#define HERALD_BUF_H

#include <stddef.h>
#include <stdint.h>
#include "compiler.h"

struct buf {
	char *data;  /* NUL-terminated, NULL until the first append */
	size_t len;
	size_t cap;
};

#define BUF_INIT {NULL, 0, 0}

void buf_free(struct buf *b);
void buf_reset(struct buf *b);              /* len = 0, keeps storage */
void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_append_str(struct buf *b, const char *s);
void buf_append_char(struct buf *b, char c);
void buf_append_u64(struct buf *b, uint64_t v);
void buf_printf(struct buf *b, const char *fmt, ...) HERALD_PRINTF(2, 3);
/* Appends s (n bytes, need not be valid UTF-8 checked here) as a quoted JSON
 * string: escapes ", \, control characters (\n, \r, \t, \u00XX), and also
 * U+2028/U+2029 so the result is safe inside <script> as well. */
void buf_append_json_str(struct buf *b, const char *s, size_t n);
/* Takes the storage: returns data (never NULL) and leaves b empty. */
char *buf_steal(struct buf *b);

#endif
