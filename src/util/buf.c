/*
 * buf.c — growable byte buffer and the JSON string escaper.
 *
 * Owns its storage only; growth doubles so appends are amortised O(1).
 * Keeps one spare byte so the contents are always NUL-terminated.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/utf8.h"
#include "util/xmalloc.h"

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

void buf_reserve(struct buf *b, size_t extra)
{
	size_t need, cap;

	if (extra > SIZE_MAX - b->len - 1) {
		fputs("herald: buffer size overflow\n", stderr);
		abort();
	}
	need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void buf_append_str(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void buf_append_char(struct buf *b, char c)
{
	buf_append(b, &c, 1);
}

void buf_append_u64(struct buf *b, uint64_t v)
{
	char tmp[20];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	buf_append(b, tmp + i, sizeof(tmp) - i);
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	/* A first try into the spare capacity avoids formatting twice for
	 * the usual short output. */
	buf_reserve(b, 64);
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->data[b->len] = '\0';
		return;
	}
	if ((size_t)n >= b->cap - b->len) {
		buf_reserve(b, (size_t)n);
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

void buf_append_json_str(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t i, run = 0;

	buf_reserve(b, n + 2);
	buf_append_char(b, '"');
	for (i = 0; i < n; i++) {
		unsigned char c = p[i];
		const char *esc = NULL;
		char u[6];
		size_t seq, wide = 1; /* bytes the escape stands for */

		if (c == '"')
			esc = "\\\"";
		else if (c == '\\')
			esc = "\\\\";
		else if (c == '\n')
			esc = "\\n";
		else if (c == '\r')
			esc = "\\r";
		else if (c == '\t')
			esc = "\\t";
		else if (c == 0xe2 && i + 2 < n && p[i + 1] == 0x80 &&
		         (p[i + 2] == 0xa8 || p[i + 2] == 0xa9)) {
			esc = p[i + 2] == 0xa8 ? "\\u2028" : "\\u2029";
			wide = 3;
		}
		else if (c >= 0x80 && (seq = utf8_seq_len(p + i, n - i)) == 0)
			esc = "\\ufffd"; /* never emit invalid UTF-8 in JSON */
		else if (c >= 0x80) {
			i += seq - 1; /* a valid sequence passes unchanged */
			continue;
		}
		else if (c < 0x20) {
			memcpy(u, "\\u00", 4);
			u[4] = hex[c >> 4];
			u[5] = hex[c & 15];
		} else {
			continue;
		}
		/* Copy the unescaped run before this byte in one go. */
		buf_append(b, s + run, i - run);
		if (esc != NULL) {
			buf_append_str(b, esc);
			i += wide - 1;
		} else {
			buf_append(b, u, sizeof(u));
		}
		run = i + 1;
	}
	buf_append(b, s + run, n - run);
	buf_append_char(b, '"');
}

char *buf_steal(struct buf *b)
{
	char *d = b->data;

	if (d == NULL)
		d = xstrdup("");
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return d;
}
