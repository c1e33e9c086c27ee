/*
 * xmalloc.c — allocation that never returns NULL.
 *
 * Owns the single out-of-memory policy: report on stderr and abort, so no
 * caller carries a failure path it could never test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

static void *check(void *p)
{
	if (p == NULL) {
		fputs("herald: out of memory\n", stderr);
		abort();
	}
	return p;
}

/* malloc(0) may legally return NULL; asking for one byte keeps NULL
 * meaning only "out of memory". */
void *xmalloc(size_t n)
{
	return check(malloc(n ? n : 1));
}

void *xcalloc(size_t count, size_t size)
{
	return check(calloc(count ? count : 1, size ? size : 1));
}

void *xrealloc(void *p, size_t n)
{
	return check(realloc(p, n ? n : 1));
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *d = xmalloc(len + 1);

	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}
