/*
 * netmask.c — address allow-lists (see netmask.h).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netmask.h"
#include "util/xmalloc.h"

static bool parse_one(const char *tok, size_t len, struct netmask *m)
{
	char text[INET6_ADDRSTRLEN + 8];
	if (len == 0 || len >= sizeof(text))
		return false;
	memcpy(text, tok, len);
	text[len] = '\0';
	char *slash = strchr(text, '/');
	long prefix = -1;
	if (slash) {
		char *end;
		*slash = '\0';
		if (slash[1] < '0' || slash[1] > '9')
			return false;
		prefix = strtol(slash + 1, &end, 10);
		if (*end != '\0')
			return false;
	}
	memset(m, 0, sizeof(*m));
	if (inet_pton(AF_INET, text, m->addr) == 1) {
		m->family = AF_INET;
		if (prefix > 32)
			return false;
		m->prefix = prefix < 0 ? 32 : (unsigned)prefix;
	} else if (inet_pton(AF_INET6, text, m->addr) == 1) {
		m->family = AF_INET6;
		if (prefix > 128)
			return false;
		m->prefix = prefix < 0 ? 128 : (unsigned)prefix;
	} else {
		return false;
	}
	return true;
}

bool netmask_parse(const char *spec, struct netmask **out, size_t *n, char *err, size_t errlen)
{
	size_t cap = 0;
	*out = NULL;
	*n = 0;
	for (const char *p = spec ? spec : ""; *p;) {
		p += strspn(p, " \t,");
		size_t len = strcspn(p, " \t,");
		if (len == 0)
			break;
		if (*n == cap) {
			cap = cap ? cap * 2 : 4;
			*out = xrealloc(*out, cap * sizeof(**out));
		}
		if (!parse_one(p, len, &(*out)[*n])) {
			snprintf(err, errlen, "bad address or network '%.*s'", (int)(len > 64 ? 64 : len), p);
			free(*out);
			*out = NULL;
			*n = 0;
			return false;
		}
		(*n)++;
		p += len;
	}
	return true;
}

static bool prefix_equal(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned bytes = bits / 8, rest = bits % 8;
	if (memcmp(a, b, bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

bool netmask_match(const struct netmask *list, size_t n, const struct sockaddr *sa)
{
	unsigned char addr[16];
	int family;
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (!sa)
		return false;
	if (sa->sa_family == AF_INET) {
		family = AF_INET;
		memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const unsigned char *a6 = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (memcmp(a6, mapped, 12) == 0) {
			family = AF_INET;
			memcpy(addr, a6 + 12, 4);
		} else {
			family = AF_INET6;
			memcpy(addr, a6, 16);
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (list[i].family == family && prefix_equal(list[i].addr, addr, list[i].prefix))
			return true;
	return false;
}
