/*
 * log.h — levelled logging as JSON lines (default) or text, to stderr.
 *
 * Every record carries time, level, node and a short lowercase message in
 * PostgreSQL's style; callers add context as key/value string pairs. Never
 * pass a token or ticket: there is no field for one.
 */
#ifndef HERALD_LOG_H
#define HERALD_LOG_H

#include "compiler.h"
#include "config.h"

void log_init(enum log_level level, enum log_format format, const char *node_id);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

/* Context pairs: a NULL-terminated list of key, value strings, e.g.
 * log_msg(LOG_INFO, "stream opened", "stream", id, "tenant", t, NULL). */
void log_msg(enum log_level level, const char *msg, ...) __attribute__((sentinel));

/* One record whose context is a single member holding already-encoded
 * JSON (key: json), e.g. an audit record; text format prints it as is. */
void log_json(enum log_level level, const char *msg, const char *key, const char *json);

/* printf-style message without context. */
void log_fmt(enum log_level level, const char *fmt, ...) HERALD_PRINTF(2, 3);

#endif
