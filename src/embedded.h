/*
 * embedded.h — files compiled into the binary (SQL migrations, demo page).
 *
 * src/embedded.c is generated at build time by src/tools/embed from the
 * EMBEDDED_FILES list in Makefile.am; names are paths relative to the
 * source tree, e.g. "sql/0001_core.sql".
 */
#ifndef HERALD_EMBEDDED_H
#define HERALD_EMBEDDED_H

#include <stddef.h>

struct embedded_file {
	const char *name;
	const unsigned char *data; /* followed by a NUL not counted in len */
	size_t len;
};

/* Ends with an entry whose name is NULL. */
extern const struct embedded_file embedded_files[];

/* The file called name, or NULL. Returns static storage. */
const struct embedded_file *embedded_find(const char *name);

#endif
