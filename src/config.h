/*
 * config.h — herald's settings: defaults, the key = value file, command
 * line flags, validation. The result is immutable once herald runs.
 *
 * Owns parsing only: it opens no sockets and reads no environment except
 * the file it is given. Durations are stored in milliseconds, sizes in
 * bytes. Every key of SPEC §6 is known here, so an unknown key is an error
 * with its line number.
 */
#ifndef HERALD_CONFIG_H
#define HERALD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "compiler.h"

enum log_format { LOG_FORMAT_JSON, LOG_FORMAT_TEXT };
enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

struct herald_config {
	char *listen;          /* "HOST:PORT" ["127.0.0.1:8080"]; "[::1]:8080" for IPv6 */
	char *node_id;         /* [NULL = "<hostname>:<pid>", filled by main] */
	char *db;              /* libpq conninfo [NULL = PG* variables] */
	char *tls_cert, *tls_key;
	char *cors_origins;    /* space separated [""] */
	char *cookie_name;     /* ["herald_token"] */
	bool token_query_param;   /* [true] */
	int64_t ticket_ttl_ms;    /* [30000] */
	int64_t heartbeat_interval_ms; /* [15000] */
	int64_t retry_ms;              /* [2000] */
	int64_t history_retention_ms;  /* [3600000] */
	int64_t session_recheck_interval_ms; /* [60000] */
	int64_t node_heartbeat_interval_ms; /* key "node_heartbeat_interval" [5000] */
	int64_t node_timeout_ms;        /* key "node_timeout" [15000]: silent nodes are removed */
	int64_t max_event_bytes;        /* [65536] */
	int64_t max_channels_per_stream; /* [32] */
	int64_t max_connections;        /* [0 = open-file limit - 64, filled by main] */
	int64_t max_connections_per_ip;  /* [1000] */
	int64_t max_connections_per_user; /* [100] */
	int64_t max_connections_per_tenant; /* [0 = none] */
	int64_t subscribe_per_minute;   /* [120] */
	int64_t publish_per_second;     /* [100] */
	int64_t tenant_publish_per_second; /* [0 = none] */
	int64_t stream_queue_bytes;     /* [1 MiB] */
	enum log_level log_level;       /* [LOG_INFO] */
	enum log_format log_format;     /* [LOG_FORMAT_JSON] */
	char *metrics_allow;            /* ["127.0.0.1/8 ::1"] */
	bool demo;                      /* [false] */
	int64_t drain_timeout_ms;       /* [5000] */
	int db_workers;                 /* key "db_workers" [4]: database connections for requests */
	int64_t audit_queue_max;        /* key "audit_queue_max" [10000]: audit records held while
	                                   the database is away before they spill to the log */
	int64_t max_db_queue;           /* key "max_db_queue" [1000]: past it, new streams and
	                                   publishes get 503 (overload) */
	int publish_batch_max;          /* key "publish_batch_max" [256]: publishes committed
	                                   together at most; 1 = a transaction per publish */
};

/* The settings in force: the start config, then after each SIGHUP a copy
 * of it with the reloaded limits (config_copy_reloadable). Readers of a
 * reloadable setting take config_live() each time; a replaced copy stays
 * valid until exit. set_live takes c: a shallow copy (its strings belong
 * to the start config). */
const struct herald_config *config_live(void);
void config_set_live(struct herald_config *c);
void config_live_free(void);
/* Copies the settings SIGHUP may change: the limits (SPEC §6), except
 * max_connections, which sizes the listener at start. */
void config_copy_reloadable(struct herald_config *to, const struct herald_config *from);

/* Fills every field with its default (strings are owned copies). */
void config_defaults(struct herald_config *c);
void config_free(struct herald_config *c);

/* Applies one key = value. Returns false and writes a one-line message
 * ("unknown key 'x'", "bad duration 'x' for heartbeat_interval") into err. */
bool config_set(struct herald_config *c, const char *key, const char *value,
                char *err, size_t errlen) HERALD_MUSTCHECK;

/* Parses a whole file's text: "key = value" lines, '#' comments (a '#'
 * anywhere starts a comment unless inside double quotes), blank lines,
 * optional double quotes around a value. On failure err reads
 * "<name>:<line>: <message>". */
bool config_parse_text(struct herald_config *c, const char *text, const char *name,
                       char *err, size_t errlen) HERALD_MUSTCHECK;
bool config_load_file(struct herald_config *c, const char *path,
                      char *err, size_t errlen) HERALD_MUSTCHECK;

/* "15s", "250ms", "2min", "1h", bare number = seconds. false on junk,
 * negative or overflowing values. */
bool config_parse_duration_ms(const char *s, int64_t *out) HERALD_MUSTCHECK;
/* "64KiB", "1MiB", "512B", bare number = bytes. */
bool config_parse_size(const char *s, int64_t *out) HERALD_MUSTCHECK;
/* "on/off/true/false/yes/no/1/0" */
bool config_parse_bool(const char *s, bool *out) HERALD_MUSTCHECK;

/* Splits "host:port" / "[v6]:port" into host (owned) and port. */
bool config_split_listen(const char *listen, char **host, unsigned *port) HERALD_MUSTCHECK;

#endif
