/*
 * test_netmask.c — address allow-lists (metrics_allow): parsing, prefix
 * matching for IPv4 and IPv6, IPv4-mapped peers, and refusals.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "netmask.h"
#include "tap.h"

static struct sockaddr_storage addr(const char *text)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, text, &v4->sin_addr) == 1)
		v4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1)
		v6->sin6_family = AF_INET6;
	return ss;
}

static int allowed(const char *spec, const char *peer)
{
	struct netmask *list;
	size_t n;
	char err[128];
	if (!netmask_parse(spec, &list, &n, err, sizeof(err)))
		return -1;
	struct sockaddr_storage ss = addr(peer);
	int r = netmask_match(list, n, (struct sockaddr *)&ss);
	free(list);
	return r;
}

int main(void)
{
	const char *def = "127.0.0.1/8 ::1";

	is_int(allowed(def, "127.0.0.1"), 1, "default allows 127.0.0.1");
	is_int(allowed(def, "127.200.3.4"), 1, "default allows all of 127/8");
	is_int(allowed(def, "::1"), 1, "default allows ::1");
	is_int(allowed(def, "10.0.0.1"), 0, "default refuses 10.0.0.1");
	is_int(allowed(def, "::2"), 0, "default refuses ::2");
	is_int(allowed(def, "::ffff:127.0.0.1"), 1, "IPv4-mapped loopback matches 127/8");
	is_int(allowed(def, "::ffff:10.0.0.1"), 0, "IPv4-mapped other address does not");
	is_int(allowed("10.1.2.3", "10.1.2.3"), 1, "bare IPv4 is a /32");
	is_int(allowed("10.1.2.3", "10.1.2.4"), 0, "bare IPv4 matches only itself");
	is_int(allowed("192.168.0.0/23", "192.168.1.255"), 1, "/23 includes the second /24");
	is_int(allowed("192.168.0.0/23", "192.168.2.0"), 0, "/23 excludes the third /24");
	is_int(allowed("0.0.0.0/0", "203.0.113.9"), 1, "/0 allows every IPv4 address");
	is_int(allowed("0.0.0.0/0", "2001:db8::1"), 0, "an IPv4 /0 does not allow IPv6");
	is_int(allowed("2001:db8::/33", "2001:db8:7fff::1"), 1, "IPv6 /33 inside");
	is_int(allowed("2001:db8::/33", "2001:db8:8000::1"), 0, "IPv6 /33 outside");
	is_int(allowed("", "127.0.0.1"), 0, "an empty list allows nobody");
	is_int(allowed("10.0.0.0/8,127.0.0.1", "127.0.0.1"), 1, "commas separate too");

	is_int(allowed("10.0.0.0/33", "10.0.0.1"), -1, "IPv4 prefix above 32 refused");
	is_int(allowed("::1/129", "::1"), -1, "IPv6 prefix above 128 refused");
	is_int(allowed("10.0.0.0/", "10.0.0.1"), -1, "empty prefix refused");
	is_int(allowed("10.0.0.0/-1", "10.0.0.1"), -1, "negative prefix refused");
	is_int(allowed("10.0.0.0/8x", "10.0.0.1"), -1, "junk after prefix refused");
	is_int(allowed("localhost", "127.0.0.1"), -1, "host names refused");
	is_int(allowed("300.1.1.1", "127.0.0.1"), -1, "bad IPv4 refused");

	char err[128] = "";
	struct netmask *list;
	size_t n;
	ok(!netmask_parse("127.0.0.1 nonsense", &list, &n, err, sizeof(err)), "bad entry fails the list");
	ok(strstr(err, "nonsense") != NULL, "the error names the bad entry: %s", err);
	ok(list == NULL && n == 0, "nothing is returned on failure");
	return done_testing();
}
