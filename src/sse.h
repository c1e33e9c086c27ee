/*
 * sse.h — pure Server-Sent Events encoding (WHATWG HTML, "server-sent events").
 *
 * Produces the bytes of fields and comments. Never trusts its input to be
 * free of line breaks: data is split into one "data:" line per line (CR,
 * LF and CRLF all end a line), and a field value that may not contain a
 * line break (id, event) is refused rather than split, so no payload can
 * inject a frame. Does no I/O and holds no state.
 */
#ifndef HERALD_SSE_H
#define HERALD_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include "compiler.h"
#include "util/buf.h"

/* "retry: <ms>\n" */
void sse_append_retry(struct buf *b, unsigned long ms);
/* "id: <id>\n"; false (nothing appended) if id contains CR, LF or NUL. */
bool sse_append_id(struct buf *b, const char *id, size_t n) HERALD_MUSTCHECK;
/* "event: <type>\n" then data lines, then the blank line ending the event.
 * type may be NULL (no event field). false, with nothing appended, if type
 * contains CR, LF or NUL. Empty data still yields one "data:" line. */
bool sse_append_event(struct buf *b, const char *type, const char *data, size_t n) HERALD_MUSTCHECK;
/* ": <text>\n\n" with line breaks in text replaced by spaces. */
void sse_append_comment(struct buf *b, const char *text);

#endif
