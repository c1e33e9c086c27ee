/*
 * config.c — defaults, the key = value file format and value validation.
 *
 * Owns the table of SPEC §6 keys: each key's type, range and field. It
 * never opens sockets or reads the environment; main fills the defaults
 * that depend on the host (node_id, max_connections) after loading.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "cursor.h"
#include "util/buf.h"
#include "util/xmalloc.h"

#define KIB ((int64_t)1024)
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)
/* Ten years: long enough for any retention, short enough that adding a
 * duration to a clock reading can never overflow. */
#define DURATION_MAX ((int64_t)10 * 366 * 24 * 3600 * 1000)
/* Rates and caps above this are typos; it also keeps rate * time
 * arithmetic in token buckets far from overflow. */
#define COUNT_MAX ((int64_t)1000000000)
#define FILE_MAX (1 * MIB)

enum kind {
	K_STRING,   /* any text */
	K_OPTIONAL, /* any text, "" = unset (NULL) */
	K_LISTEN,
	K_NODE_ID,
	K_COOKIE,
	K_BOOL,
	K_DURATION,
	K_SIZE,
	K_COUNT,
	K_INT,      /* like K_COUNT, stored in an int */
	K_LOG_LEVEL,
	K_LOG_FORMAT,
};

struct key {
	const char *name;
	enum kind kind;
	size_t offset;
	int64_t min, max;
};

#define F(field) offsetof(struct herald_config, field)

static const struct key keys[] = {
	{"listen", K_LISTEN, F(listen), 0, 0},
	{"node_id", K_NODE_ID, F(node_id), 0, 0},
	{"db", K_OPTIONAL, F(db), 0, 0},
	{"tls_cert", K_OPTIONAL, F(tls_cert), 0, 0},
	{"tls_key", K_OPTIONAL, F(tls_key), 0, 0},
	{"cors_origins", K_STRING, F(cors_origins), 0, 0},
	{"cookie_name", K_COOKIE, F(cookie_name), 0, 0},
	{"token_query_param", K_BOOL, F(token_query_param), 0, 0},
	{"ticket_ttl", K_DURATION, F(ticket_ttl_ms), 1, DURATION_MAX},
	{"heartbeat_interval", K_DURATION, F(heartbeat_interval_ms), 1, DURATION_MAX},
	{"retry", K_DURATION, F(retry_ms), 0, DURATION_MAX},
	{"history_retention", K_DURATION, F(history_retention_ms), 0, DURATION_MAX},
	{"session_recheck_interval", K_DURATION, F(session_recheck_interval_ms), 1, DURATION_MAX},
	{"node_heartbeat_interval", K_DURATION, F(node_heartbeat_interval_ms), 100, DURATION_MAX},
	{"node_timeout", K_DURATION, F(node_timeout_ms), 300, DURATION_MAX},
	{"max_event_bytes", K_SIZE, F(max_event_bytes), 1, 16 * MIB},
	{"max_channels_per_stream", K_COUNT, F(max_channels_per_stream), 1, CURSOR_MAX_CHANNELS},
	{"max_connections", K_COUNT, F(max_connections), 0, COUNT_MAX},
	{"max_connections_per_ip", K_COUNT, F(max_connections_per_ip), 0, COUNT_MAX},
	{"max_connections_per_user", K_COUNT, F(max_connections_per_user), 0, COUNT_MAX},
	{"max_connections_per_tenant", K_COUNT, F(max_connections_per_tenant), 0, COUNT_MAX},
	{"subscribe_per_minute", K_COUNT, F(subscribe_per_minute), 0, COUNT_MAX},
	{"publish_per_second", K_COUNT, F(publish_per_second), 0, COUNT_MAX},
	{"tenant_publish_per_second", K_COUNT, F(tenant_publish_per_second), 0, COUNT_MAX},
	{"stream_queue_bytes", K_SIZE, F(stream_queue_bytes), 1, GIB},
	{"log_level", K_LOG_LEVEL, F(log_level), 0, 0},
	{"log_format", K_LOG_FORMAT, F(log_format), 0, 0},
	{"metrics_allow", K_STRING, F(metrics_allow), 0, 0},
	{"demo", K_BOOL, F(demo), 0, 0},
	{"drain_timeout", K_DURATION, F(drain_timeout_ms), 0, DURATION_MAX},
	{"db_workers", K_INT, F(db_workers), 1, 64},
	{"audit_queue_max", K_COUNT, F(audit_queue_max), 1, 10000000},
	{"publish_batch_max", K_INT, F(publish_batch_max), 1, 4096},
	{"max_db_queue", K_COUNT, F(max_db_queue), 1, COUNT_MAX},
};

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void config_defaults(struct herald_config *c)
{
	memset(c, 0, sizeof(*c));
	c->listen = xstrdup("127.0.0.1:8080");
	c->cors_origins = xstrdup("");
	c->cookie_name = xstrdup("herald_token");
	c->token_query_param = true;
	c->ticket_ttl_ms = 30000;
	c->heartbeat_interval_ms = 15000;
	c->retry_ms = 2000;
	c->history_retention_ms = 3600000;
	c->session_recheck_interval_ms = 60000;
	c->node_heartbeat_interval_ms = 5000;
	c->node_timeout_ms = 15000;
	c->max_event_bytes = 64 * KIB;
	c->max_channels_per_stream = 32;
	c->max_connections = 0;
	c->max_connections_per_ip = 1000;
	c->max_connections_per_user = 100;
	c->max_connections_per_tenant = 0;
	c->subscribe_per_minute = 120;
	c->publish_per_second = 100;
	c->tenant_publish_per_second = 0;
	c->stream_queue_bytes = 1 * MIB;
	c->log_level = LOG_INFO;
	c->log_format = LOG_FORMAT_JSON;
	c->metrics_allow = xstrdup("127.0.0.1/8 ::1");
	c->demo = false;
	c->drain_timeout_ms = 5000;
	c->db_workers = 4;
	c->audit_queue_max = 10000;
	c->publish_batch_max = 256;
	c->max_db_queue = 1000;
}

void config_free(struct herald_config *c)
{
	size_t i;

	for (i = 0; i < HERALD_ARRAY_LEN(keys); i++) {
		switch (keys[i].kind) {
		case K_STRING: case K_OPTIONAL: case K_LISTEN: case K_NODE_ID: case K_COOKIE: {
			char **field = (char **)((char *)c + keys[i].offset);

			free(*field);
			*field = NULL;
			break;
		}
		default:
			break;
		}
	}
}

/* Digits only, then an optional suffix: strtoll alone would accept
 * leading blanks, signs and hex-looking junk. */
static bool parse_number(const char *s, int64_t *out, const char **suffix)
{
	char *end;
	long long v;

	if (s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0)
		return false;
	*out = v;
	*suffix = end;
	return true;
}

static bool scale(int64_t v, int64_t unit, int64_t *out)
{
	if (v > INT64_MAX / unit)
		return false;
	*out = v * unit;
	return true;
}

bool config_parse_duration_ms(const char *s, int64_t *out)
{
	static const struct { const char *suffix; int64_t ms; } units[] = {
		{"", 1000}, {"ms", 1}, {"s", 1000}, {"min", 60000}, {"h", 3600000},
	};
	const char *suffix;
	int64_t v;
	size_t i;

	if (!parse_number(s, &v, &suffix))
		return false;
	for (i = 0; i < HERALD_ARRAY_LEN(units); i++)
		if (strcmp(suffix, units[i].suffix) == 0)
			return scale(v, units[i].ms, out);
	return false;
}

bool config_parse_size(const char *s, int64_t *out)
{
	static const struct { const char *suffix; int64_t bytes; } units[] = {
		{"", 1}, {"B", 1}, {"KiB", KIB}, {"MiB", MIB}, {"GiB", GIB},
	};
	const char *suffix;
	int64_t v;
	size_t i;

	if (!parse_number(s, &v, &suffix))
		return false;
	for (i = 0; i < HERALD_ARRAY_LEN(units); i++)
		if (strcmp(suffix, units[i].suffix) == 0)
			return scale(v, units[i].bytes, out);
	return false;
}

bool config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"on", "true", "yes", "1"};
	static const char *const no[] = {"off", "false", "no", "0"};
	size_t i;

	for (i = 0; i < HERALD_ARRAY_LEN(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

bool config_split_listen(const char *listen, char **host, unsigned *port)
{
	const char *colon = strrchr(listen, ':'), *h = listen, *end;
	bool bracketed = listen[0] == '[';
	size_t hlen;
	int64_t p;

	if (colon == NULL)
		return false;
	hlen = (size_t)(colon - listen);
	if (bracketed) {
		/* "[v6]:port": the brackets must close right before the colon. */
		if (hlen < 3 || listen[hlen - 1] != ']')
			return false;
		h = listen + 1;
		hlen -= 2;
	} else if (memchr(h, ':', hlen) != NULL) {
		return false; /* an IPv6 address needs brackets */
	}
	if (hlen == 0 || memchr(h, '[', hlen) != NULL || memchr(h, ']', hlen) != NULL)
		return false;
	if (strlen(colon + 1) > 5 || !parse_number(colon + 1, &p, &end) ||
	    *end != '\0' || p > 65535)
		return false;
	*host = xstrndup(h, hlen);
	*port = (unsigned)p;
	return true;
}

static bool valid_node_id(const char *s)
{
	size_t n = strlen(s);

	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return false;
	return n <= 128;
}

/* RFC 6265 cookie-name = token: visible ASCII minus separators. */
static bool valid_cookie_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", *s) != NULL)
			return false;
	return true;
}

static bool check_range(const struct key *k, int64_t v, const char *unit,
                        char *err, size_t errlen)
{
	if (v >= k->min && v <= k->max)
		return true;
	snprintf(err, errlen, "%s must be between %lld%s and %lld%s", k->name,
	         (long long)k->min, unit, (long long)k->max, unit);
	return false;
}

static bool set_number(const struct key *k, void *field, const char *value,
                       char *err, size_t errlen)
{
	const char *what, *unit, *end;
	int64_t v;
	bool ok;

	switch (k->kind) {
	case K_DURATION:
		ok = config_parse_duration_ms(value, &v);
		what = "duration";
		unit = "ms";
		break;
	case K_SIZE:
		ok = config_parse_size(value, &v);
		what = "size";
		unit = " bytes";
		break;
	default:
		ok = parse_number(value, &v, &end) && *end == '\0';
		what = "number";
		unit = "";
		break;
	}
	if (!ok) {
		snprintf(err, errlen, "bad %s '%s' for %s", what, value, k->name);
		return false;
	}
	if (!check_range(k, v, unit, err, errlen))
		return false;
	if (k->kind == K_INT)
		*(int *)field = (int)v;
	else
		*(int64_t *)field = v;
	return true;
}

static bool set_enum(const struct key *k, void *field, const char *value,
                     char *err, size_t errlen)
{
	size_t i;

	if (k->kind == K_LOG_LEVEL) {
		for (i = 0; i < HERALD_ARRAY_LEN(level_names); i++) {
			if (strcmp(value, level_names[i]) == 0) {
				*(enum log_level *)field = (enum log_level)i;
				return true;
			}
		}
		snprintf(err, errlen, "bad log_level '%s' (error, warn, info or debug)", value);
		return false;
	}
	if (strcmp(value, "json") == 0) {
		*(enum log_format *)field = LOG_FORMAT_JSON;
	} else if (strcmp(value, "text") == 0) {
		*(enum log_format *)field = LOG_FORMAT_TEXT;
	} else {
		snprintf(err, errlen, "bad log_format '%s' (json or text)", value);
		return false;
	}
	return true;
}

static bool set_string(const struct key *k, char **field, const char *value,
                       char *err, size_t errlen)
{
	char *host;
	unsigned port;

	switch (k->kind) {
	case K_LISTEN:
		if (!config_split_listen(value, &host, &port)) {
			snprintf(err, errlen, "bad address '%s' for listen (HOST:PORT or [V6]:PORT)", value);
			return false;
		}
		free(host);
		break;
	case K_NODE_ID:
		if (!valid_node_id(value)) {
			snprintf(err, errlen, "bad node_id '%s' (at most 128 visible characters)", value);
			return false;
		}
		break;
	case K_COOKIE:
		if (!valid_cookie_name(value)) {
			snprintf(err, errlen, "bad cookie_name '%s'", value);
			return false;
		}
		break;
	default:
		break;
	}
	free(*field);
	*field = NULL;
	/* An empty optional value restores the computed default. */
	if (*value != '\0' || (k->kind != K_OPTIONAL && k->kind != K_NODE_ID))
		*field = xstrdup(value);
	return true;
}

bool config_set(struct herald_config *c, const char *key, const char *value,
                char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < HERALD_ARRAY_LEN(keys); i++) {
		const struct key *k = &keys[i];
		void *field = (char *)c + k->offset;

		if (strcmp(key, k->name) != 0)
			continue;
		switch (k->kind) {
		case K_STRING: case K_OPTIONAL: case K_LISTEN: case K_NODE_ID: case K_COOKIE:
			return set_string(k, field, value, err, errlen);
		case K_BOOL:
			if (config_parse_bool(value, field))
				return true;
			snprintf(err, errlen, "bad boolean '%s' for %s (on or off)", value, k->name);
			return false;
		case K_DURATION: case K_SIZE: case K_COUNT: case K_INT:
			return set_number(k, field, value, err, errlen);
		case K_LOG_LEVEL: case K_LOG_FORMAT:
			return set_enum(k, field, value, err, errlen);
		}
	}
	snprintf(err, errlen, "unknown key '%s'", key);
	return false;
}

static char *trim(char *s, char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*end = '\0';
	return s;
}

/* One line, modified in place. Returns false with a message in msg. */
static bool parse_line(struct herald_config *c, char *line, char *msg, size_t msglen)
{
	char *p, *eq = NULL, *key, *value, *end;
	bool quoted = false;

	for (p = line; *p != '\0'; p++) {
		if (*p == '"')
			quoted = !quoted;
		else if (*p == '#' && !quoted)
			break;
		else if (*p == '=' && !quoted && eq == NULL)
			eq = p;
	}
	if (quoted) {
		snprintf(msg, msglen, "unterminated quote");
		return false;
	}
	end = p;
	*end = '\0';
	if (line[strspn(line, " \t")] == '\0')
		return true;
	if (eq == NULL) {
		snprintf(msg, msglen, "expected 'key = value'");
		return false;
	}
	key = trim(line, eq);
	value = trim(eq + 1, end);
	if (*key == '\0') {
		snprintf(msg, msglen, "missing key before '='");
		return false;
	}
	if (strchr(key, '"') != NULL) {
		snprintf(msg, msglen, "unexpected quote in key");
		return false;
	}
	if (*value == '"') {
		size_t n = strlen(value);

		if (n < 2 || value[n - 1] != '"' || memchr(value + 1, '"', n - 2) != NULL) {
			snprintf(msg, msglen, "text after closing quote");
			return false;
		}
		value[n - 1] = '\0';
		value++;
	} else if (strchr(value, '"') != NULL) {
		snprintf(msg, msglen, "quote inside unquoted value");
		return false;
	}
	return config_set(c, key, value, msg, msglen);
}

bool config_parse_text(struct herald_config *c, const char *text, const char *name,
                       char *err, size_t errlen)
{
	const char *start = text;
	unsigned lineno = 0;

	while (*start != '\0') {
		const char *nl = strchr(start, '\n');
		size_t len = nl ? (size_t)(nl - start) : strlen(start);
		char msg[512];
		char *line;
		bool ok;

		lineno++;
		if (len > 0 && start[len - 1] == '\r')
			len--;
		line = xstrndup(start, len);
		ok = parse_line(c, line, msg, sizeof(msg));
		free(line);
		if (!ok) {
			snprintf(err, errlen, "%s:%u: %s", name, lineno, msg);
			return false;
		}
		if (nl == NULL)
			break;
		start = nl + 1;
	}
	return true;
}

bool config_load_file(struct herald_config *c, const char *path,
                      char *err, size_t errlen)
{
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t n;
	bool ok = false;
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return false;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		buf_append(&b, chunk, n);
		if (b.len > FILE_MAX) {
			snprintf(err, errlen, "%s: larger than %lld bytes", path, (long long)FILE_MAX);
			goto out;
		}
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		goto out;
	}
	if (b.len > 0 && memchr(b.data, '\0', b.len) != NULL) {
		snprintf(err, errlen, "%s: contains a NUL byte", path);
		goto out;
	}
	ok = config_parse_text(c, b.len > 0 ? b.data : "", path, err, errlen);
out:
	fclose(f);
	buf_free(&b);
	return ok;
}

/* Every copy ever published, newest first: readers may still hold any. */
struct live_copy {
	struct herald_config *cfg;
	struct live_copy *next;
};
static _Atomic(struct herald_config *) live;
static struct live_copy *copies;

const struct herald_config *config_live(void)
{
	return atomic_load(&live);
}

void config_set_live(struct herald_config *c)
{
	struct live_copy *lc = xcalloc(1, sizeof(*lc));
	lc->cfg = c;
	lc->next = copies;
	copies = lc;
	atomic_store(&live, c);
}

void config_live_free(void)
{
	atomic_store(&live, NULL);
	while (copies) {
		struct live_copy *next = copies->next;
		free(copies->cfg);
		free(copies);
		copies = next;
	}
}

void config_copy_reloadable(struct herald_config *to, const struct herald_config *from)
{
	to->max_connections_per_ip = from->max_connections_per_ip;
	to->max_connections_per_user = from->max_connections_per_user;
	to->max_connections_per_tenant = from->max_connections_per_tenant;
	to->subscribe_per_minute = from->subscribe_per_minute;
	to->publish_per_second = from->publish_per_second;
	to->tenant_publish_per_second = from->tenant_publish_per_second;
	to->stream_queue_bytes = from->stream_queue_bytes;
	to->max_event_bytes = from->max_event_bytes;
	to->max_channels_per_stream = from->max_channels_per_stream;
	to->max_db_queue = from->max_db_queue;
	to->log_level = from->log_level;
}
