/*
 * netmask.h — address allow-lists such as metrics_allow (pure).
 *
 * A list is space-separated addresses with an optional prefix length:
 * "127.0.0.1/8 ::1 10.0.0.0/8". IPv4-mapped IPv6 peers (::ffff:a.b.c.d)
 * match the IPv4 entries.
 */
#ifndef HERALD_NETMASK_H
#define HERALD_NETMASK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "compiler.h"

struct netmask {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix;
};

/* Parses spec into a new array (*out, owned by the caller, free()) of *n
 * entries. false, with a message naming the bad entry, on junk. */
bool netmask_parse(const char *spec, struct netmask **out, size_t *n,
                   char *err, size_t errlen) HERALD_MUSTCHECK;
bool netmask_match(const struct netmask *list, size_t n, const struct sockaddr *sa);

#endif
