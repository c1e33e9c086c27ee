/*
 * utf8.c — UTF-8 validation and repair (see utf8.h).
 */
#include <string.h>

#include "util/buf.h"
#include "util/utf8.h"

size_t utf8_seq_len(const unsigned char *p, size_t avail)
{
	unsigned c = p[0], cp, k;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		k = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		k = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		k = 4, cp = c & 0x07;
	else
		return 0;
	if (avail < k)
		return 0;
	for (unsigned i = 1; i < k; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return k;
}

char *utf8_sanitize(const char *s)
{
	struct buf b = BUF_INIT;
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	buf_reserve(&b, n);
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq_len(p + i, n - i);
		if (k) {
			buf_append(&b, p + i, k);
			i += k;
		} else {
			buf_append_str(&b, "\xef\xbf\xbd");
			i++;
		}
	}
	return buf_steal(&b);
}
