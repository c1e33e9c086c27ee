/*
 * log.c — one record per write(2) on stderr, as JSON lines or text.
 *
 * Each record is built in a private buffer and written with a single
 * write(), so concurrent threads never interleave within a line and no
 * lock is taken. log_init runs before any thread starts; only the level
 * changes afterwards (SIGHUP), hence the atomic.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util/buf.h"
#include "util/timeutil.h"

static atomic_int current_level = LOG_INFO;
static enum log_format current_format = LOG_FORMAT_JSON;
static char node[256];

static const char *const json_levels[] = {"error", "warn", "info", "debug"};
static const char *const text_levels[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void log_init(enum log_level level, enum log_format format, const char *node_id)
{
	atomic_store(&current_level, (int)level);
	current_format = format;
	snprintf(node, sizeof(node), "%s", node_id ? node_id : "");
}

void log_set_level(enum log_level level)
{
	atomic_store(&current_level, (int)level);
}

bool log_enabled(enum log_level level)
{
	return (int)level <= atomic_load_explicit(&current_level, memory_order_relaxed);
}

/* Text records stay on one line whatever a message contains (libpq's end
 * with a newline), so control bytes are shown escaped. */
static void append_text_escaped(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\n')
			buf_append_str(b, "\\n");
		else if (c == '\r')
			buf_append_str(b, "\\r");
		else if (c == '\t')
			buf_append_str(b, "\\t");
		else if (c < 0x20 || c == 0x7f) {
			buf_append_str(b, "\\x");
			buf_append_char(b, hex[c >> 4]);
			buf_append_char(b, hex[c & 15]);
		} else
			buf_append_char(b, (char)c);
	}
}

/* logfmt convention: quote a value only when a reader could misparse it. */
static void append_text_value(struct buf *b, const char *v)
{
	if (*v != '\0' && strpbrk(v, " \"=\\") == NULL) {
		append_text_escaped(b, v);
		return;
	}
	buf_append_json_str(b, v, strlen(v));
}

static void begin_record(struct buf *b, enum log_level level, const char *msg)
{
	char ts[32];

	time_format_rfc3339(time_wall_ms(), ts);
	if (current_format == LOG_FORMAT_TEXT) {
		buf_append_str(b, ts);
		buf_append_char(b, ' ');
		buf_append_str(b, text_levels[level]);
		buf_append_char(b, ' ');
		append_text_escaped(b, msg);
		return;
	}
	buf_append_str(b, "{\"ts\":\"");
	buf_append_str(b, ts);
	buf_append_str(b, "\",\"level\":\"");
	buf_append_str(b, json_levels[level]);
	buf_append_str(b, "\"");
	if (node[0] != '\0') {
		buf_append_str(b, ",\"node\":");
		buf_append_json_str(b, node, strlen(node));
	}
	buf_append_str(b, ",\"msg\":");
	buf_append_json_str(b, msg, strlen(msg));
}

static void add_pair(struct buf *b, const char *key, const char *value)
{
	if (current_format == LOG_FORMAT_TEXT) {
		buf_append_char(b, ' ');
		append_text_escaped(b, key);
		buf_append_char(b, '=');
		append_text_value(b, value ? value : "");
		return;
	}
	buf_append_char(b, ',');
	buf_append_json_str(b, key, strlen(key));
	buf_append_char(b, ':');
	if (value == NULL)
		buf_append_str(b, "null");
	else
		buf_append_json_str(b, value, strlen(value));
}

static void end_record(struct buf *b)
{
	size_t off = 0;

	if (current_format == LOG_FORMAT_JSON)
		buf_append_char(b, '}');
	buf_append_char(b, '\n');
	/* One write() per record; the loop only matters when stderr is a pipe
	 * that accepts part of a record larger than PIPE_BUF. */
	while (off < b->len) {
		ssize_t w = write(STDERR_FILENO, b->data + off, b->len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	buf_free(b);
}

void log_msg(enum log_level level, const char *msg, ...)
{
	struct buf b = BUF_INIT;
	const char *key;
	va_list ap;

	if (!log_enabled(level))
		return;
	begin_record(&b, level, msg);
	va_start(ap, msg);
	while ((key = va_arg(ap, const char *)) != NULL)
		add_pair(&b, key, va_arg(ap, const char *));
	va_end(ap);
	end_record(&b);
}

void log_json(enum log_level level, const char *msg, const char *key, const char *json)
{
	struct buf b = BUF_INIT;

	if (!log_enabled(level))
		return;
	begin_record(&b, level, msg);
	if (current_format == LOG_FORMAT_TEXT) {
		buf_append_char(&b, ' ');
		append_text_escaped(&b, key);
		buf_append_char(&b, '=');
		append_text_escaped(&b, json);
	} else {
		buf_append_char(&b, ',');
		buf_append_json_str(&b, key, strlen(key));
		buf_append_char(&b, ':');
		buf_append_str(&b, json);
	}
	end_record(&b);
}

void log_fmt(enum log_level level, const char *fmt, ...)
{
	struct buf b = BUF_INIT, msg = BUF_INIT;
	va_list ap, ap2;
	int n;

	if (!log_enabled(level))
		return;
	buf_reserve(&msg, 256);
	va_start(ap, fmt);
	va_copy(ap2, ap);
	n = vsnprintf(msg.data, msg.cap, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n >= msg.cap) {
		buf_reserve(&msg, (size_t)n);
		vsnprintf(msg.data, msg.cap, fmt, ap2);
	}
	va_end(ap2);
	if (n >= 0) {
		begin_record(&b, level, msg.data);
		end_record(&b);
	}
	buf_free(&msg);
}
