/*
 * sse.c — Server-Sent Events field encoding (pure).
 *
 * Owns the byte layout of retry, id, event, data and comment lines. A
 * client splits lines on CR, LF and CRLF alike, so every one of them in a
 * data payload starts a new "data:" line; id and event values are refused
 * instead, since splitting them would change their meaning.
 */
#include <string.h>

#include "sse.h"

static bool has_line_break(const char *s, size_t n)
{
	return memchr(s, '\n', n) != NULL || memchr(s, '\r', n) != NULL;
}

void sse_append_retry(struct buf *b, unsigned long ms)
{
	buf_append_str(b, "retry: ");
	buf_append_u64(b, ms);
	buf_append_char(b, '\n');
}

bool sse_append_id(struct buf *b, const char *id, size_t n)
{
	/* A client ignores an id containing NUL, which would silently keep the
	 * previous cursor: refusing is the honest answer. */
	if (has_line_break(id, n) || memchr(id, '\0', n) != NULL)
		return false;
	buf_append_str(b, "id: ");
	buf_append(b, id, n);
	buf_append_char(b, '\n');
	return true;
}

static void append_data_line(struct buf *b, const char *line, size_t n)
{
	/* The client drops one space after the colon, so "data: " keeps a
	 * payload's own leading space; an empty line needs no space at all. */
	if (n == 0) {
		buf_append_str(b, "data:\n");
		return;
	}
	buf_append_str(b, "data: ");
	buf_append(b, line, n);
	buf_append_char(b, '\n');
}

bool sse_append_event(struct buf *b, const char *type, const char *data, size_t n)
{
	size_t start = 0, i = 0;

	if (type != NULL) {
		if (has_line_break(type, strlen(type)))
			return false;
		buf_append_str(b, "event: ");
		buf_append_str(b, type);
		buf_append_char(b, '\n');
	}
	buf_reserve(b, n + 8);
	while (i < n) {
		if (data[i] == '\n' || data[i] == '\r') {
			append_data_line(b, data + start, i - start);
			if (data[i] == '\r' && i + 1 < n && data[i + 1] == '\n')
				i++;
			start = ++i;
		} else {
			i++;
		}
	}
	/* The last line, also when data is empty or ends with a line break:
	 * the client strips one final LF, so "a\n" must arrive as "a", "". */
	append_data_line(b, data + start, n - start);
	buf_append_char(b, '\n');
	return true;
}

void sse_append_comment(struct buf *b, const char *text)
{
	size_t i, n = strlen(text);

	buf_append_str(b, ": ");
	buf_reserve(b, n + 2);
	for (i = 0; i < n; i++)
		buf_append_char(b, text[i] == '\n' || text[i] == '\r' ? ' ' : text[i]);
	buf_append_str(b, "\n\n");
}
