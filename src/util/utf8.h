/*
 * utf8.h — UTF-8 validity: one definition for every place that must not
 * pass invalid text on (JSON output, audit rows, strict JSON input).
 */
#ifndef HERALD_UTF8_H
#define HERALD_UTF8_H

#include <stddef.h>

/* Length of the valid UTF-8 sequence at p (at most avail bytes), or 0 for
 * an invalid one (overlong, surrogate, above U+10FFFF, truncated). */
size_t utf8_seq_len(const unsigned char *p, size_t avail);
/* A new copy of s with every invalid sequence replaced by U+FFFD. */
char *utf8_sanitize(const char *s);

#endif
