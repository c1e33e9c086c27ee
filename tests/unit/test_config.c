/*
 * test_config.c — defaults, value parsers, every SPEC §6 key through
 * config_set, range checks, the file format and its error locations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compiler.h"
#include "config.h"
#include "tap.h"

static void test_defaults(void)
{
	struct herald_config c;

	config_defaults(&c);
	is_str(c.listen, "127.0.0.1:8080", "listen");
	ok(c.node_id == NULL, "node_id unset (main fills host:pid)");
	ok(c.db == NULL, "db unset (PG* variables)");
	ok(c.tls_cert == NULL && c.tls_key == NULL, "no TLS");
	is_str(c.cors_origins, "", "cors_origins empty");
	is_str(c.cookie_name, "herald_token", "cookie_name");
	ok(c.token_query_param, "token_query_param on");
	is_int(c.ticket_ttl_ms, 30000, "ticket_ttl 30s");
	is_int(c.heartbeat_interval_ms, 15000, "heartbeat_interval 15s");
	is_int(c.retry_ms, 2000, "retry 2000ms");
	is_int(c.history_retention_ms, 3600000, "history_retention 1h");
	is_int(c.session_recheck_interval_ms, 60000, "session_recheck_interval 60s");
	is_int(c.node_heartbeat_interval_ms, 5000, "node_heartbeat_interval 5s");
	is_int(c.node_timeout_ms, 15000, "node_timeout 15s");
	is_int(c.max_event_bytes, 65536, "max_event_bytes 64KiB");
	is_int(c.max_channels_per_stream, 32, "max_channels_per_stream 32");
	is_int(c.max_connections, 0, "max_connections 0 (main fills from the file limit)");
	is_int(c.max_connections_per_ip, 1000, "max_connections_per_ip");
	is_int(c.max_connections_per_user, 100, "max_connections_per_user");
	is_int(c.max_connections_per_tenant, 0, "max_connections_per_tenant none");
	is_int(c.subscribe_per_minute, 120, "subscribe_per_minute");
	is_int(c.publish_per_second, 100, "publish_per_second");
	is_int(c.tenant_publish_per_second, 0, "tenant_publish_per_second none");
	is_int(c.stream_queue_bytes, 1048576, "stream_queue_bytes 1MiB");
	is_int(c.log_level, LOG_INFO, "log_level info");
	is_int(c.log_format, LOG_FORMAT_JSON, "log_format json");
	is_str(c.metrics_allow, "127.0.0.1/8 ::1", "metrics_allow");
	ok(!c.demo, "demo off");
	is_int(c.drain_timeout_ms, 5000, "drain_timeout 5s");
	is_int(c.db_workers, 4, "db_workers 4");
	is_int(c.audit_queue_max, 10000, "audit_queue_max 10000");
	is_int(c.publish_batch_max, 256, "publish_batch_max 256");
	is_int(c.max_db_queue, 1000, "max_db_queue 1000");
	config_free(&c);
}

static void test_durations(void)
{
	static const struct { const char *s; int64_t ms; } good[] = {
		{"15s", 15000}, {"250ms", 250}, {"2min", 120000}, {"1h", 3600000},
		{"7", 7000}, {"0", 0}, {"0ms", 0}, {"9223372036854775807ms", INT64_MAX},
		{"2562047788015h", INT64_C(2562047788015) * 3600000},
	};
	static const char *const bad[] = {
		"", "s", "ms", "-1", "-1s", "+1", " 1", "1 ", "1 s", "1m", "1S", "1MS",
		"1.5s", "1e3", "0x10", "1hh", "1sec", "1d", "9223372036854775807",
		"9223372036854775808ms", "2562047788016h", "99999999999999999999",
	};
	size_t i;
	int64_t v;

	for (i = 0; i < HERALD_ARRAY_LEN(good); i++) {
		v = -1;
		ok(config_parse_duration_ms(good[i].s, &v), "duration '%s' accepted", good[i].s);
		ok(v == good[i].ms, "duration '%s' value", good[i].s);
	}
	for (i = 0; i < HERALD_ARRAY_LEN(bad); i++)
		ok(!config_parse_duration_ms(bad[i], &v), "duration '%s' refused", bad[i]);
}

static void test_sizes(void)
{
	static const struct { const char *s; int64_t bytes; } good[] = {
		{"64KiB", 65536}, {"1MiB", 1048576}, {"512B", 512}, {"100", 100},
		{"0", 0}, {"0B", 0}, {"16MiB", 16777216}, {"1GiB", 1073741824},
		{"8796093022207MiB", INT64_C(8796093022207) * 1048576},
	};
	static const char *const bad[] = {
		"", "B", "KiB", "-1", "+1", " 1", "1 KiB", "1KB", "1kib", "1k", "1K",
		"1.5MiB", "1b", "1MB", "8796093022208MiB", "9223372036854775808",
	};
	size_t i;
	int64_t v;

	for (i = 0; i < HERALD_ARRAY_LEN(good); i++) {
		v = -1;
		ok(config_parse_size(good[i].s, &v), "size '%s' accepted", good[i].s);
		ok(v == good[i].bytes, "size '%s' value", good[i].s);
	}
	for (i = 0; i < HERALD_ARRAY_LEN(bad); i++)
		ok(!config_parse_size(bad[i], &v), "size '%s' refused", bad[i]);
}

static void test_bools(void)
{
	static const char *const yes[] = {"on", "true", "yes", "1", "ON", "True"};
	static const char *const no[] = {"off", "false", "no", "0", "OFF", "No"};
	static const char *const bad[] = {"", "2", "yess", "enable", " on", "on ", "o"};
	size_t i;
	bool v;

	for (i = 0; i < HERALD_ARRAY_LEN(yes); i++) {
		v = false;
		ok(config_parse_bool(yes[i], &v) && v, "bool '%s' is true", yes[i]);
	}
	for (i = 0; i < HERALD_ARRAY_LEN(no); i++) {
		v = true;
		ok(config_parse_bool(no[i], &v) && !v, "bool '%s' is false", no[i]);
	}
	for (i = 0; i < HERALD_ARRAY_LEN(bad); i++)
		ok(!config_parse_bool(bad[i], &v), "bool '%s' refused", bad[i]);
}

static void test_split_listen(void)
{
	static const char *const bad[] = {
		"nohost", ":80", "h:99999", "h:x", "h:", "h:-1", "h:+1", "h:65536",
		"h:1 ", "::1:80", "[::1]", "[::1]80", "[]:80", "[::1:80", "::1]:80",
		"h]:80", "[a]b:80", "h:000080", "",
	};
	char *host = NULL;
	unsigned port = 0;
	size_t i;

	ok(config_split_listen("127.0.0.1:8080", &host, &port), "IPv4 split");
	is_str(host, "127.0.0.1", "IPv4 host");
	is_int(port, 8080, "IPv4 port");
	free(host);
	ok(config_split_listen("[::1]:9", &host, &port), "IPv6 split");
	is_str(host, "::1", "IPv6 host without brackets");
	is_int(port, 9, "IPv6 port");
	free(host);
	ok(config_split_listen("localhost:0", &host, &port), "port 0 (any free port)");
	is_str(host, "localhost", "name host");
	is_int(port, 0, "port 0");
	free(host);
	ok(config_split_listen("0.0.0.0:65535", &host, &port), "port 65535");
	is_int(port, 65535, "highest port");
	free(host);
	ok(config_split_listen("[fe80::1%eth0]:443", &host, &port), "scoped IPv6");
	is_str(host, "fe80::1%eth0", "scoped IPv6 host");
	free(host);
	for (i = 0; i < HERALD_ARRAY_LEN(bad); i++) {
		host = NULL;
		ok(!config_split_listen(bad[i], &host, &port), "listen '%s' refused", bad[i]);
		ok(host == NULL, "listen '%s' allocates nothing", bad[i]);
	}
}

static bool set(struct herald_config *c, const char *key, const char *value)
{
	char err[256];

	return config_set(c, key, value, err, sizeof(err));
}

static void test_every_key(void)
{
	struct herald_config c;

	config_defaults(&c);
	ok(set(&c, "listen", "[::]:9000"), "listen");
	is_str(c.listen, "[::]:9000", "listen stored as given");
	ok(set(&c, "node_id", "node-a"), "node_id");
	is_str(c.node_id, "node-a", "node_id stored");
	ok(set(&c, "db", "host=/tmp dbname=herald"), "db");
	is_str(c.db, "host=/tmp dbname=herald", "db stored");
	ok(set(&c, "tls_cert", "/etc/herald/cert.pem"), "tls_cert");
	is_str(c.tls_cert, "/etc/herald/cert.pem", "tls_cert stored");
	ok(set(&c, "tls_key", "/etc/herald/key.pem"), "tls_key");
	is_str(c.tls_key, "/etc/herald/key.pem", "tls_key stored");
	ok(set(&c, "cors_origins", "https://a.example https://b.example"), "cors_origins");
	is_str(c.cors_origins, "https://a.example https://b.example", "cors_origins stored");
	ok(set(&c, "cookie_name", "sid"), "cookie_name");
	is_str(c.cookie_name, "sid", "cookie_name stored");
	ok(set(&c, "token_query_param", "off"), "token_query_param");
	ok(!c.token_query_param, "token_query_param stored");
	ok(set(&c, "ticket_ttl", "10s"), "ticket_ttl");
	is_int(c.ticket_ttl_ms, 10000, "ticket_ttl stored");
	ok(set(&c, "heartbeat_interval", "500ms"), "heartbeat_interval");
	is_int(c.heartbeat_interval_ms, 500, "heartbeat_interval stored");
	ok(set(&c, "retry", "3s"), "retry");
	is_int(c.retry_ms, 3000, "retry stored");
	ok(set(&c, "history_retention", "2h"), "history_retention");
	is_int(c.history_retention_ms, 7200000, "history_retention stored");
	ok(set(&c, "session_recheck_interval", "5min"), "session_recheck_interval");
	is_int(c.session_recheck_interval_ms, 300000, "session_recheck_interval stored");
	ok(set(&c, "max_event_bytes", "1MiB"), "max_event_bytes");
	is_int(c.max_event_bytes, 1048576, "max_event_bytes stored");
	ok(set(&c, "max_channels_per_stream", "8"), "max_channels_per_stream");
	is_int(c.max_channels_per_stream, 8, "max_channels_per_stream stored");
	ok(set(&c, "max_connections", "5000"), "max_connections");
	is_int(c.max_connections, 5000, "max_connections stored");
	ok(set(&c, "max_connections_per_ip", "50"), "max_connections_per_ip");
	is_int(c.max_connections_per_ip, 50, "max_connections_per_ip stored");
	ok(set(&c, "max_connections_per_user", "7"), "max_connections_per_user");
	is_int(c.max_connections_per_user, 7, "max_connections_per_user stored");
	ok(set(&c, "max_connections_per_tenant", "900"), "max_connections_per_tenant");
	is_int(c.max_connections_per_tenant, 900, "max_connections_per_tenant stored");
	ok(set(&c, "subscribe_per_minute", "60"), "subscribe_per_minute");
	is_int(c.subscribe_per_minute, 60, "subscribe_per_minute stored");
	ok(set(&c, "publish_per_second", "20"), "publish_per_second");
	is_int(c.publish_per_second, 20, "publish_per_second stored");
	ok(set(&c, "tenant_publish_per_second", "200"), "tenant_publish_per_second");
	is_int(c.tenant_publish_per_second, 200, "tenant_publish_per_second stored");
	ok(set(&c, "stream_queue_bytes", "256KiB"), "stream_queue_bytes");
	is_int(c.stream_queue_bytes, 262144, "stream_queue_bytes stored");
	ok(set(&c, "log_level", "debug"), "log_level");
	is_int(c.log_level, LOG_DEBUG, "log_level stored");
	ok(set(&c, "log_level", "error"), "log_level error");
	is_int(c.log_level, LOG_ERROR, "log_level error stored");
	ok(set(&c, "log_level", "warn"), "log_level warn");
	is_int(c.log_level, LOG_WARN, "log_level warn stored");
	ok(set(&c, "log_format", "text"), "log_format");
	is_int(c.log_format, LOG_FORMAT_TEXT, "log_format stored");
	ok(set(&c, "log_format", "json"), "log_format json");
	is_int(c.log_format, LOG_FORMAT_JSON, "log_format json stored");
	ok(set(&c, "metrics_allow", "10.0.0.0/8"), "metrics_allow");
	is_str(c.metrics_allow, "10.0.0.0/8", "metrics_allow stored");
	ok(set(&c, "demo", "on"), "demo");
	ok(c.demo, "demo stored");
	ok(set(&c, "drain_timeout", "0"), "drain_timeout");
	is_int(c.drain_timeout_ms, 0, "drain_timeout stored");
	ok(set(&c, "db_workers", "16"), "db_workers");
	is_int(c.db_workers, 16, "db_workers stored");

	/* Later values replace earlier ones (ASan checks the old is freed). */
	ok(set(&c, "listen", "localhost:0"), "listen again");
	is_str(c.listen, "localhost:0", "later listen wins");
	ok(set(&c, "node_id", ""), "empty node_id");
	ok(c.node_id == NULL, "empty node_id restores the computed default");
	ok(set(&c, "tls_cert", ""), "empty tls_cert");
	ok(c.tls_cert == NULL, "empty tls_cert unsets it");
	ok(set(&c, "cors_origins", ""), "empty cors_origins");
	is_str(c.cors_origins, "", "cors_origins may be empty");
	config_free(&c);
}

static void test_ranges(void)
{
	static const struct { const char *key, *value; bool ok; } cases[] = {
		{"heartbeat_interval", "0", false}, {"heartbeat_interval", "1ms", true},
		{"session_recheck_interval", "0s", false}, {"ticket_ttl", "0", false},
		{"retry", "0", true}, {"drain_timeout", "0", true},
		{"history_retention", "100000h", false},
		{"max_event_bytes", "0", false}, {"max_event_bytes", "1", true},
		{"max_event_bytes", "16MiB", true}, {"max_event_bytes", "16777217", false},
		{"max_channels_per_stream", "0", false}, {"max_channels_per_stream", "1", true},
		{"max_channels_per_stream", "64", true}, {"max_channels_per_stream", "65", false},
		{"db_workers", "0", false}, {"db_workers", "1", true},
		{"audit_queue_max", "0", false}, {"audit_queue_max", "5", true},
		{"publish_batch_max", "0", false}, {"publish_batch_max", "1", true},
		{"publish_batch_max", "4096", true}, {"publish_batch_max", "4097", false},
		{"db_workers", "64", true}, {"db_workers", "65", false},
		{"db_workers", "-1", false}, {"db_workers", "4x", false},
		{"db_workers", "99999999999999999999", false},
		{"max_connections", "0", true}, {"max_connections", "-5", false},
		{"max_connections_per_ip", "1k", false}, {"stream_queue_bytes", "0", false},
		{"publish_per_second", "", false}, {"publish_per_second", "1.5", false},
		{"log_level", "info", true}, {"log_level", "INFO", false},
		{"log_level", "trace", false}, {"log_format", "xml", false},
		{"demo", "maybe", false}, {"token_query_param", "", false},
		{"listen", "nohost", false}, {"listen", "h:99999", false},
		{"cookie_name", "", false}, {"cookie_name", "a b", false},
		{"cookie_name", "a;b", false}, {"cookie_name", "a=b", false},
		{"node_id", "has space", false}, {"node_id", "host:1234", true},
	};
	struct herald_config c;
	size_t i;

	config_defaults(&c);
	for (i = 0; i < HERALD_ARRAY_LEN(cases); i++)
		ok(set(&c, cases[i].key, cases[i].value) == cases[i].ok, "%s = '%s' %s",
		   cases[i].key, cases[i].value, cases[i].ok ? "accepted" : "refused");
	config_free(&c);
}

static void test_set_errors(void)
{
	struct herald_config c;
	char err[256];

	config_defaults(&c);
	ok(!config_set(&c, "nope", "1", err, sizeof(err)), "unknown key refused");
	is_str(err, "unknown key 'nope'", "unknown key message names the key");
	ok(!config_set(&c, "heartbeat-interval", "1s", err, sizeof(err)), "dashed key refused");
	ok(strstr(err, "'heartbeat-interval'") != NULL, "dashed key named");
	ok(!config_set(&c, "heartbeat_interval", "x", err, sizeof(err)), "bad duration refused");
	is_str(err, "bad duration 'x' for heartbeat_interval", "bad duration message");
	ok(!config_set(&c, "heartbeat_interval", "0", err, sizeof(err)), "zero heartbeat refused");
	ok(strstr(err, "heartbeat_interval") != NULL, "range message names the key");
	ok(!config_set(&c, "max_event_bytes", "1KB", err, sizeof(err)), "bad size refused");
	is_str(err, "bad size '1KB' for max_event_bytes", "bad size message");
	ok(!config_set(&c, "demo", "maybe", err, sizeof(err)), "bad bool refused");
	ok(strstr(err, "'maybe'") != NULL && strstr(err, "demo") != NULL, "bad bool message");
	is_int(c.heartbeat_interval_ms, 15000, "refused values leave the field alone");
	ok(!c.demo, "refused bool leaves the field alone");
	ok(!config_set(&c, "nope", "1", err, 8), "short error buffer");
	is_str(err, "unknown", "message truncated to the buffer");
	config_free(&c);
}

static bool parse(struct herald_config *c, const char *text, char *err, size_t errlen)
{
	return config_parse_text(c, text, "test.conf", err, errlen);
}

static void test_parse_text(void)
{
	static const char text[] =
		"# herald settings\n"
		"\n"
		"listen = 0.0.0.0:9090\n"
		"   heartbeat_interval=5s   \n"
		"\tretry\t=\t100ms\t# trailing comment\n"
		"cors_origins = \"https://a.example/#frag https://b.example\"\n"
		"cookie_name = \"sid\"  # comment after quotes\n"
		"db = host=db1 port=5433 # '=' in an unquoted value\n"
		"metrics_allow = \"\"\n"
		"log_format = text\r\n"
		"   # indented comment\n"
		"  \t  \n"
		"demo = yes";
	struct herald_config c;
	char err[256];

	config_defaults(&c);
	ok(parse(&c, text, err, sizeof(err)), "sample file parses");
	is_str(c.listen, "0.0.0.0:9090", "listen");
	is_int(c.heartbeat_interval_ms, 5000, "whitespace around '=' ignored");
	is_int(c.retry_ms, 100, "tabs and trailing comment");
	is_str(c.cors_origins, "https://a.example/#frag https://b.example",
	       "'#' inside quotes kept, quotes removed");
	is_str(c.cookie_name, "sid", "quoted value with a comment after it");
	is_str(c.db, "host=db1 port=5433", "only the first '=' splits");
	is_str(c.metrics_allow, "", "empty quoted value");
	is_int(c.log_format, LOG_FORMAT_TEXT, "CRLF line ending");
	ok(c.demo, "last line without newline");
	ok(parse(&c, "", err, sizeof(err)), "empty text parses");
	ok(parse(&c, "\n\n# only comments\n", err, sizeof(err)), "comments only parse");
	ok(parse(&c, "listen = a:1\nlisten = b:2\n", err, sizeof(err)), "repeated key parses");
	is_str(c.listen, "b:2", "later line wins");
	config_free(&c);
}

static void test_parse_errors(void)
{
	static const struct { const char *text, *err; } cases[] = {
		{"foo = 1\n", "test.conf:1: unknown key 'foo'"},
		{"# c\n\nlisten = a:1\nbogus = 2\n", "test.conf:4: unknown key 'bogus'"},
		{"\n\nheartbeat_interval = soon\n", "test.conf:3: bad duration 'soon' for heartbeat_interval"},
		{"listen\n", "test.conf:1: expected 'key = value'"},
		{"a\n# x\nlisten 127.0.0.1:80\n", "test.conf:1: expected 'key = value'"},
		{"demo = on\nlisten # = x\n", "test.conf:2: expected 'key = value'"},
		{"= 5\n", "test.conf:1: missing key before '='"},
		{"cookie_name = \"sid\n", "test.conf:1: unterminated quote"},
		{"cookie_name = \"sid\" x\n", "test.conf:1: text after closing quote"},
		{"cookie_name = s\"id\"\n", "test.conf:1: quote inside unquoted value"},
		{"\"demo\" = on\n", "test.conf:1: unexpected quote in key"},
		{"demo = on\r\nretry = -1\r\n", "test.conf:2: bad duration '-1' for retry"},
	};
	struct herald_config c;
	char err[256];
	size_t i;

	for (i = 0; i < HERALD_ARRAY_LEN(cases); i++) {
		config_defaults(&c);
		err[0] = '\0';
		ok(!parse(&c, cases[i].text, err, sizeof(err)), "bad file %zu refused", i);
		is_str(err, cases[i].err, "bad file %zu message", i);
		config_free(&c);
	}
}

static void test_load_file(void)
{
	char path[] = "/tmp/herald-test-config-XXXXXX";
	static const char text[] = "listen = 127.0.0.1:7000\nnot_a_key = 1\n";
	struct herald_config c;
	char err[512], expect[600];
	int fd = mkstemp(path);

	ok(fd >= 0, "temporary file created");
	if (fd < 0)
		return;
	ok(write(fd, text, sizeof(text) - 1) == (ssize_t)(sizeof(text) - 1), "temporary file written");
	close(fd);
	config_defaults(&c);
	ok(!config_load_file(&c, path, err, sizeof(err)), "file with an unknown key refused");
	snprintf(expect, sizeof(expect), "%s:2: unknown key 'not_a_key'", path);
	is_str(err, expect, "error names the file and line");
	is_str(c.listen, "127.0.0.1:7000", "lines before the error were applied");
	unlink(path);
	ok(!config_load_file(&c, path, err, sizeof(err)), "missing file refused");
	ok(strncmp(err, path, strlen(path)) == 0 && strstr(err, "No such file") != NULL,
	   "missing file error names the path and the reason");
	config_free(&c);
}

int main(void)
{
	test_defaults();
	test_durations();
	test_sizes();
	test_bools();
	test_split_listen();
	test_every_key();
	test_ranges();
	test_set_errors();
	test_parse_text();
	test_parse_errors();
	test_load_file();
	return done_testing();
}
