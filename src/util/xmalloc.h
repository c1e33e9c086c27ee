/*
 * xmalloc.h — the one place allocation failure is handled: it aborts.
 *
 * herald cannot do anything useful once malloc fails, so callers never
 * check for NULL from these.
 */
#ifndef HERALD_XMALLOC_H
#define HERALD_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
