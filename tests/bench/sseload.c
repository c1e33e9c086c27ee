/*
 * sseload.c — load generator for herald's Server-Sent Events streams.
 *
 * Owns: N concurrent HTTP/1.1 streams driven by one epoll loop (non-blocking
 * sockets, local addresses spread over 127.0.0.1..127.0.0.K so that N can
 * exceed one address's ephemeral ports), an incremental response parser
 * (status line and headers, chunked transfer coding, SSE per the WHATWG
 * rules), the publish requests that drive fan-out rounds, and the three
 * measurements: open rate, server RSS per idle stream, fan-out time.
 * Optionally (--stalled K) K more streams that read their response head and
 * herald.open, then are never read again until the rounds are over: the
 * slow readers whose presence must not delay the others. They count in no
 * fan-out figure; after the rounds they are read to the end, to see whether
 * herald ended them with herald.overflow.
 * Does not own starting herald or PostgreSQL: tests/bench/fanout.sh does.
 *
 * Build: gcc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
 *            -o tests/bench/sseload tests/bench/sseload.c
 *
 * Timing: a stream's latency is (CLOCK_REALTIME when the bytes were read)
 * minus the publisher's CLOCK_REALTIME stamp carried in the event payload;
 * a round's fan-out time is the largest of those latencies, i.e. the time
 * until the LAST stream had the event. Client and server share the CPUs,
 * so the numbers include the client's own reading of N sockets.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)
#define PUB_TAG UINT64_MAX          /* epoll tag of the publish connection */
#define MAX_LINE (1u << 20)         /* longest SSE line accepted */
#define MAX_HEAD 16384u             /* longest response head accepted */
#define ERRBODY_MAX 1024u           /* bytes of a non-200 body kept */
#define ROUND_TIMEOUT_NS (30 * NS_PER_S)
#define FD_RESERVE 32               /* descriptors kept for epoll, stdio, publish */
#define STALLED_RCVBUF 4096         /* SO_RCVBUF of a stalled stream (the kernel doubles it) */
#define DRAIN_TIMEOUT_NS (10 * NS_PER_S)
#define DRAIN_QUIET_NS (2 * NS_PER_S) /* no stalled stream had data this long: done */

/* ---- options ----------------------------------------------------------- */

struct options {
	const char *host;
	long port;
	const char *path;
	long n;
	const char *token;
	long hold_s;
	long fanout;
	long settle_ms;
	long interval_ms;
	long sources;
	const char *channel;
	long batch;
	long open_timeout_s;
	long rss_pid;
	long stalled;          /* extra streams never read after herald.open */
	long payload;          /* POST body bytes (padded); 0 = unpadded */
};

/* ---- growable byte strings (always NUL-terminated once allocated) ------- */

struct bytes {
	char *p;
	size_t len, cap;
};

static void die_oom(void)
{
	fputs("sseload: out of memory\n", stderr);
	exit(2);
}

static void bytes_reserve(struct bytes *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p)
		die_oom();
	b->p = p;
	b->cap = cap;
}

static void bytes_append(struct bytes *b, const void *s, size_t n)
{
	bytes_reserve(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void bytes_printf(struct bytes *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), nonnull(1, 2)));

static void bytes_printf(struct bytes *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int need = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (need < 0)
		die_oom();
	bytes_reserve(b, (size_t)need);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)need + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)need;
}

static void bytes_free(struct bytes *b)
{
	free(b->p);
	*b = (struct bytes){0};
}

/* ---- clocks ------------------------------------------------------------ */

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static int64_t mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
static int64_t real_ns(void) { return clock_ns(CLOCK_REALTIME); }
static double ms(int64_t ns) { return (double)ns / 1e6; }

/* ---- HTTP response head ------------------------------------------------ */

enum body_mode { BM_IDENTITY, BM_LENGTH, BM_CHUNKED };

struct http_head {
	int status;
	enum body_mode mode;
	uint64_t length;
};

/* Length of the head including its blank line, or 0 if not complete. */
static size_t http_head_end(const char *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (p[i] != '\n')
			continue;
		if (p[i + 1] == '\n')
			return i + 2;
		if (p[i + 1] == '\r' && i + 2 < len && p[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static bool header_is(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);
	return len > n && line[n] == ':' && strncasecmp(line, name, n) == 0;
}

/* The value of a header line: after the colon, leading blanks skipped. */
static const char *header_value(const char *line, size_t len, size_t name_len, size_t *vlen)
{
	const char *v = line + name_len + 1;
	const char *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	*vlen = (size_t)(end - v);
	return v;
}

static bool value_has_token(const char *v, size_t vlen, const char *tok)
{
	size_t n = strlen(tok);
	for (size_t i = 0; i + n <= vlen; i++)
		if (strncasecmp(v + i, tok, n) == 0)
			return true;
	return false;
}

/* Parses "HTTP/1.x NNN ..." and the framing headers of a complete head. */
static bool http_parse_head(const char *p, size_t len, struct http_head *h)
{
	*h = (struct http_head){.mode = BM_IDENTITY};
	if (len < 12 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
		return false;
	char code[4];
	memcpy(code, p + 9, 3);
	code[3] = '\0';
	char *end;
	long status = strtol(code, &end, 10);
	if (*end != '\0' || status < 100 || status > 999)
		return false;
	h->status = (int)status;
	const char *line = memchr(p, '\n', len);
	while (line && (size_t)(line + 1 - p) < len) {
		line++;
		const char *nl = memchr(line, '\n', len - (size_t)(line - p));
		size_t llen = nl ? (size_t)(nl - line) : len - (size_t)(line - p);
		size_t vlen;
		if (header_is(line, llen, "transfer-encoding")) {
			const char *v = header_value(line, llen, 17, &vlen);
			if (value_has_token(v, vlen, "chunked"))
				h->mode = BM_CHUNKED;
		} else if (header_is(line, llen, "content-length") && h->mode != BM_CHUNKED) {
			const char *v = header_value(line, llen, 14, &vlen);
			char num[32];
			if (vlen == 0 || vlen >= sizeof(num))
				return false;
			memcpy(num, v, vlen);
			num[vlen] = '\0';
			errno = 0;
			unsigned long long n = strtoull(num, &end, 10);
			if (errno || *end != '\0')
				return false;
			h->mode = BM_LENGTH;
			h->length = n;
		}
		line = nl;
	}
	return true;
}

/* ---- streams ----------------------------------------------------------- */

enum conn_state { CS_IDLE, CS_CONNECTING, CS_SENDING, CS_HEAD, CS_BODY, CS_CLOSED };

enum chunk_state { CK_SIZE, CK_EXT, CK_SIZE_LF, CK_DATA, CK_DATA_CR, CK_DATA_LF, CK_TRAILER };

enum failure { F_CONNECT, F_IO, F_STATUS, F_ENDED, F_PARSE, F_COUNT };

static const char *const failure_name[F_COUNT] = {
	[F_CONNECT] = "connect", [F_IO] = "io", [F_STATUS] = "status",
	[F_ENDED] = "ended", [F_PARSE] = "parse",
};

/* WHATWG SSE parser state for one stream. */
struct sse {
	struct bytes line;
	struct bytes data;
	char type[128];
	size_t type_len;
	bool after_cr; /* last byte was CR: a following LF belongs to it */
};

struct conn {
	int fd;
	enum conn_state state;
	size_t sent;
	struct bytes head;
	struct http_head http;
	uint64_t body_left;    /* BM_LENGTH: bytes left; BM_CHUNKED: of the chunk */
	enum chunk_state ck;
	bool ck_digits;
	struct sse sse;
	struct bytes errbody;  /* non-200 body, up to ERRBODY_MAX */
	bool open;             /* herald.open received */
	long round;            /* last fan-out round received, 0 = none */
	int64_t lat_ns;        /* that round's latency */
	int64_t start_ns;      /* monotonic, when connect() began */
	int64_t open_ns;       /* connect() to herald.open */
	bool stalled;          /* one of the --stalled streams (index >= n) */
	bool parked;           /* stalled and out of the epoll set */
};

enum pub_state { PUB_IDLE, PUB_CONNECTING, PUB_SENDING, PUB_READING, PUB_DONE };

/* The publish request of the current round. */
struct pub {
	int fd;
	enum pub_state state;
	struct bytes req;
	size_t sent;
	struct bytes resp;
	int status;
	int64_t start_ns, done_ns; /* monotonic */
	char err[160];
};

struct bench {
	struct options opt;
	int ep;
	struct sockaddr_in dst;
	struct bytes req;      /* the GET request, identical for every stream */
	struct conn *conns;
	long next;             /* next stream to start */
	long inflight;         /* started, neither open nor failed */
	long opened, failed, alive;
	long fails[F_COUNT];
	long ended_after_open;
	long comments, other_events;
	char first_other[128];
	bool reported[F_COUNT];
	long round;            /* current fan-out round, 0 = none */
	long round_got;
	struct pub pub;
	long pub_failures;
	long missed_total;     /* stream-events not received within a round */
	int64_t now_real;      /* CLOCK_REALTIME of the last read */
	long start_limit;      /* streams start_more may start: n, then n + stalled */
	/* --stalled streams, counted apart from the others */
	long stalled_open, stalled_failed, stalled_ended, stalled_parked;
	long stalled_ends[F_COUNT]; /* why the open ones ended */
	long stalled_overflow, stalled_events;
	uint64_t stalled_bytes;
	int64_t stalled_read_ns; /* monotonic, last read of a stalled stream */
	bool stalled_reported;
	struct bytes pad;      /* --payload padding, 'x' bytes */
	char rbuf[65536];
};

static void failure_report(struct bench *b, struct conn *c, enum failure why, const char *detail)
{
	if (b->reported[why])
		return;
	b->reported[why] = true;
	long idx = (long)(c - b->conns);
	fprintf(stderr, "sseload: first %s failure (stream %ld, %s): %s\n", failure_name[why], idx,
		c->open ? "after herald.open" : "before herald.open", detail);
	if (why == F_STATUS && c->errbody.len)
		fprintf(stderr, "sseload: status %d body: %.*s\n", c->http.status, (int)c->errbody.len,
			c->errbody.p);
}

/* Ends a stream for good and counts why. Always returns false ("gone"). */
static bool conn_fail(struct bench *b, struct conn *c, enum failure why, const char *detail)
{
	if (c->state == CS_CLOSED)
		return false;
	if (c->stalled) {
		/* Ended after herald.open is what a stalled stream may expect
		 * (overflow); failing to open is reported once. */
		if (!c->open && !b->stalled_reported) {
			b->stalled_reported = true;
			fprintf(stderr, "sseload: first stalled stream failure (stream %ld, %s): %s\n",
				(long)(c - b->conns), failure_name[why], detail);
		} else if (c->open && why != F_ENDED && b->stalled_ends[why] == 0) {
			fprintf(stderr, "sseload: first stalled stream end of kind %s (stream %ld): %s\n",
				failure_name[why], (long)(c - b->conns), detail);
		}
	} else {
		failure_report(b, c, why, detail);
	}
	if (c->fd >= 0)
		close(c->fd); /* also leaves the epoll set */
	c->fd = -1;
	c->state = CS_CLOSED;
	if (c->stalled) {
		if (c->open) {
			b->stalled_ended++;
			b->stalled_ends[why]++;
		} else {
			b->stalled_failed++;
			b->inflight--;
		}
	} else {
		b->fails[why]++;
		if (c->open) {
			b->alive--;
			b->ended_after_open++;
		} else {
			b->failed++;
			b->inflight--;
		}
	}
	bytes_free(&c->head);
	bytes_free(&c->sse.line);
	bytes_free(&c->sse.data);
	bytes_free(&c->errbody);
	return false;
}

/* ---- events ------------------------------------------------------------ */

/*
 * Finds `"key"` then optional blanks, ':', optional blanks and a JSON number
 * in @s; stores it in *out. Integers are read exactly; a number written with
 * a fraction or an exponent is read as a double.
 */
static bool json_number(const char *s, const char *key, int64_t *out)
{
	char pat[64];
	int n = snprintf(pat, sizeof(pat), "\"%s\"", key);
	if (n < 0 || (size_t)n >= sizeof(pat))
		return false;
	for (const char *p = strstr(s, pat); p; p = strstr(p + 1, pat)) {
		const char *q = p + n;
		while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
			q++;
		if (*q != ':')
			continue;
		q++;
		while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
			q++;
		char *end;
		errno = 0;
		long long v = strtoll(q, &end, 10);
		if (end == q)
			continue;
		if (*end == '.' || *end == 'e' || *end == 'E' || errno) {
			double d = strtod(q, &end);
			if (d < -9.2e18 || d > 9.2e18)
				return false;
			v = (long long)d;
		}
		*out = v;
		return true;
	}
	return false;
}

static void on_bench_event(struct bench *b, struct conn *c, const char *data)
{
	/* The payload sits under the envelope's "data" member. */
	const char *payload = strstr(data, "\"data\"");
	int64_t round, t;
	if (!payload || !json_number(payload, "round", &round) || !json_number(payload, "t", &t))
		return;
	if (round != b->round || c->round == round)
		return;
	c->round = (long)round;
	c->lat_ns = b->now_real - t;
	b->round_got++;
}

/* A stalled stream: open, then out of the epoll set; the socket stays. */
static void on_stalled_event(struct bench *b, struct conn *c, const char *type)
{
	if (strcmp(type, "herald.open") == 0) {
		if (c->open)
			return;
		c->open = true;
		c->open_ns = mono_ns() - c->start_ns;
		b->stalled_open++;
		b->inflight--;
		if (epoll_ctl(b->ep, EPOLL_CTL_DEL, c->fd, NULL) == 0) {
			c->parked = true;
			b->stalled_parked++;
		}
	} else if (strcmp(type, "herald.overflow") == 0) {
		b->stalled_overflow++;
	} else if (strcmp(type, "bench") == 0) {
		b->stalled_events++;
	}
}

static void on_event(struct bench *b, struct conn *c, const char *type, const char *data)
{
	if (c->stalled) {
		on_stalled_event(b, c, type);
		return;
	}
	if (strcmp(type, "herald.open") == 0) {
		if (c->open)
			return;
		c->open = true;
		c->open_ns = mono_ns() - c->start_ns;
		b->opened++;
		b->alive++;
		b->inflight--;
	} else if (strcmp(type, "bench") == 0) {
		on_bench_event(b, c, data);
	} else {
		if (b->other_events++ == 0)
			snprintf(b->first_other, sizeof(b->first_other), "%s", type);
	}
}

/* ---- SSE parsing (WHATWG "event stream interpretation") ------------------ */

static void sse_dispatch(struct bench *b, struct conn *c)
{
	struct sse *s = &c->sse;
	if (s->data.len > 0) {
		s->data.len--; /* the trailing LF */
		s->data.p[s->data.len] = '\0';
		s->type[s->type_len] = '\0';
		on_event(b, c, s->type_len ? s->type : "message", s->data.p);
	}
	s->type_len = 0;
	s->data.len = 0;
}

static void sse_field(struct sse *s, const char *f, size_t flen, const char *v, size_t vlen)
{
	if (flen == 5 && memcmp(f, "event", 5) == 0) {
		s->type_len = vlen < sizeof(s->type) - 1 ? vlen : sizeof(s->type) - 1;
		memcpy(s->type, v, s->type_len);
	} else if (flen == 4 && memcmp(f, "data", 4) == 0) {
		bytes_append(&s->data, v, vlen);
		bytes_append(&s->data, "\n", 1);
	}
	/* "id" and "retry" do not matter to the measurements; others are ignored. */
}

static void sse_line(struct bench *b, struct conn *c)
{
	struct sse *s = &c->sse;
	const char *l = s->line.p;
	size_t len = s->line.len;
	if (len == 0) {
		sse_dispatch(b, c);
		return;
	}
	if (l[0] == ':') {
		b->comments++;
		return;
	}
	const char *colon = memchr(l, ':', len);
	size_t flen = colon ? (size_t)(colon - l) : len;
	const char *v = colon ? colon + 1 : l + len;
	size_t vlen = (size_t)(l + len - v);
	if (vlen > 0 && *v == ' ') {
		v++;
		vlen--;
	}
	sse_field(s, l, flen, v, vlen);
}

/* Feeds decoded body bytes; lines end at LF, CR or CRLF. */
static bool sse_feed(struct bench *b, struct conn *c, const char *p, size_t n)
{
	struct sse *s = &c->sse;
	size_t i = 0;
	while (i < n) {
		if (s->after_cr) {
			s->after_cr = false;
			if (p[i] == '\n') {
				i++;
				continue;
			}
		}
		size_t j = i;
		while (j < n && p[j] != '\n' && p[j] != '\r')
			j++;
		if (j > i) {
			if (s->line.len + (j - i) > MAX_LINE)
				return conn_fail(b, c, F_PARSE, "SSE line longer than 1 MiB");
			bytes_append(&s->line, p + i, j - i);
		}
		if (j == n)
			break;
		s->after_cr = p[j] == '\r';
		sse_line(b, c);
		s->line.len = 0;
		i = j + 1;
	}
	return true;
}

/* ---- response body: identity, length, chunked ------------------------- */

static bool body_data(struct bench *b, struct conn *c, const char *p, size_t n)
{
	if (c->http.status == 200)
		return sse_feed(b, c, p, n);
	size_t room = ERRBODY_MAX - c->errbody.len;
	bytes_append(&c->errbody, p, n < room ? n : room);
	return true;
}

/* The response is over: a stream should never end, an error body has. */
static bool body_end(struct bench *b, struct conn *c)
{
	if (c->http.status == 200)
		return conn_fail(b, c, F_ENDED, "server ended the stream");
	char detail[64];
	snprintf(detail, sizeof(detail), "HTTP status %d", c->http.status);
	return conn_fail(b, c, F_STATUS, detail);
}

static int hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static bool chunk_size_done(struct bench *b, struct conn *c)
{
	if (!c->ck_digits)
		return conn_fail(b, c, F_PARSE, "chunk size line without digits");
	if (c->body_left == 0) {
		c->ck = CK_TRAILER;
		return body_end(b, c);
	}
	c->ck = CK_DATA;
	return true;
}

static bool chunk_next(struct conn *c)
{
	c->ck = CK_SIZE;
	c->body_left = 0;
	c->ck_digits = false;
	return true;
}

/* One framing byte of the chunked coding (everything but chunk data). */
static bool chunked_byte(struct bench *b, struct conn *c, char ch)
{
	switch (c->ck) {
	case CK_SIZE: {
		int d = hex_value(ch);
		if (d >= 0) {
			if (c->body_left > (UINT64_MAX >> 4))
				return conn_fail(b, c, F_PARSE, "chunk size overflow");
			c->body_left = c->body_left * 16 + (uint64_t)d;
			c->ck_digits = true;
			return true;
		}
		if (ch == ';' || ch == ' ' || ch == '\t') {
			c->ck = CK_EXT;
			return true;
		}
		if (ch == '\r') {
			c->ck = CK_SIZE_LF;
			return true;
		}
		if (ch == '\n')
			return chunk_size_done(b, c);
		return conn_fail(b, c, F_PARSE, "bad byte in chunk size");
	}
	case CK_EXT:
		if (ch == '\r')
			c->ck = CK_SIZE_LF;
		else if (ch == '\n')
			return chunk_size_done(b, c);
		return true;
	case CK_SIZE_LF:
		if (ch != '\n')
			return conn_fail(b, c, F_PARSE, "chunk size line: CR without LF");
		return chunk_size_done(b, c);
	case CK_DATA_CR:
		if (ch == '\r') {
			c->ck = CK_DATA_LF;
			return true;
		}
		if (ch == '\n')
			return chunk_next(c);
		return conn_fail(b, c, F_PARSE, "chunk data longer than its size");
	case CK_DATA_LF:
		if (ch != '\n')
			return conn_fail(b, c, F_PARSE, "chunk data: CR without LF");
		return chunk_next(c);
	case CK_DATA:
	case CK_TRAILER:
		break;
	}
	return true;
}

static bool chunked_feed(struct bench *b, struct conn *c, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if (c->ck == CK_TRAILER)
			return true;
		if (c->ck != CK_DATA) {
			if (!chunked_byte(b, c, p[i++]))
				return false;
			continue;
		}
		size_t take = n - i;
		if (take > c->body_left)
			take = (size_t)c->body_left;
		if (!body_data(b, c, p + i, take))
			return false;
		i += take;
		c->body_left -= take;
		if (c->body_left == 0)
			c->ck = CK_DATA_CR;
	}
	return true;
}

static bool body_feed(struct bench *b, struct conn *c, const char *p, size_t n)
{
	switch (c->http.mode) {
	case BM_IDENTITY:
		return body_data(b, c, p, n);
	case BM_LENGTH: {
		size_t take = n < c->body_left ? n : (size_t)c->body_left;
		if (!body_data(b, c, p, take))
			return false;
		c->body_left -= take;
		return c->body_left > 0 ? true : body_end(b, c);
	}
	case BM_CHUNKED:
		return chunked_feed(b, c, p, n);
	}
	return true;
}

/* Collects the head; once complete, parses it and feeds what follows. */
static bool head_feed(struct bench *b, struct conn *c, const char *p, size_t n)
{
	bytes_append(&c->head, p, n);
	size_t hlen = http_head_end(c->head.p, c->head.len);
	if (hlen == 0) {
		if (c->head.len > MAX_HEAD)
			return conn_fail(b, c, F_PARSE, "response head larger than 16 KiB");
		return true;
	}
	if (!http_parse_head(c->head.p, hlen, &c->http))
		return conn_fail(b, c, F_PARSE, "malformed status line or header");
	c->state = CS_BODY;
	chunk_next(c);
	c->body_left = c->http.mode == BM_LENGTH ? c->http.length : 0;
	struct bytes h = c->head;
	c->head = (struct bytes){0};
	bool ok = true;
	if (c->http.mode == BM_LENGTH && c->http.length == 0)
		ok = body_end(b, c);
	else if (h.len > hlen)
		ok = body_feed(b, c, h.p + hlen, h.len - hlen);
	bytes_free(&h);
	return ok;
}

/* ---- stream sockets ---------------------------------------------------- */

static bool conn_watch(struct bench *b, struct conn *c, int op, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)(c - b->conns)};
	if (epoll_ctl(b->ep, op, c->fd, &ev) != 0)
		return conn_fail(b, c, F_IO, strerror(errno));
	return true;
}

static void conn_start(struct bench *b, struct conn *c)
{
	long idx = (long)(c - b->conns);
	b->inflight++;
	c->start_ns = mono_ns();
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		conn_fail(b, c, F_CONNECT, strerror(errno));
		return;
	}
	if (c->stalled) {
		/* Before connect(): the window scale is fixed by the handshake. */
		int rcvbuf = STALLED_RCVBUF;
		if (setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) != 0) {
			conn_fail(b, c, F_CONNECT, strerror(errno));
			return;
		}
	}
	if (b->opt.sources > 0) {
		int one = 1;
#ifdef IP_BIND_ADDRESS_NO_PORT
		/* Pick the port at connect(), per (source, destination) pair. */
		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#else
		(void)one;
#endif
		struct sockaddr_in src = {.sin_family = AF_INET};
		src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + (uint32_t)(idx % b->opt.sources));
		if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
			conn_fail(b, c, F_CONNECT, strerror(errno));
			return;
		}
	}
	if (connect(c->fd, (struct sockaddr *)&b->dst, sizeof(b->dst)) != 0 && errno != EINPROGRESS) {
		conn_fail(b, c, F_CONNECT, strerror(errno));
		return;
	}
	c->state = CS_CONNECTING;
	conn_watch(b, c, EPOLL_CTL_ADD, EPOLLOUT);
}

static void conn_writable(struct bench *b, struct conn *c)
{
	if (c->state == CS_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err != 0) {
			conn_fail(b, c, F_CONNECT, strerror(err));
			return;
		}
		c->state = CS_SENDING;
	}
	ssize_t w = send(c->fd, b->req.p + c->sent, b->req.len - c->sent, MSG_NOSIGNAL);
	if (w < 0) {
		if (errno != EAGAIN && errno != EINTR)
			conn_fail(b, c, F_IO, strerror(errno));
		return;
	}
	c->sent += (size_t)w;
	if (c->sent == b->req.len) {
		c->state = CS_HEAD;
		conn_watch(b, c, EPOLL_CTL_MOD, EPOLLIN | EPOLLRDHUP);
	}
}

static void conn_readable(struct bench *b, struct conn *c)
{
	ssize_t r = read(c->fd, b->rbuf, sizeof(b->rbuf));
	if (r < 0) {
		if (errno != EAGAIN && errno != EINTR)
			conn_fail(b, c, F_IO, strerror(errno));
		return;
	}
	if (r == 0) {
		if (c->state == CS_HEAD)
			conn_fail(b, c, F_IO, "connection closed before the response head");
		else
			body_end(b, c);
		return;
	}
	b->now_real = real_ns();
	if (c->stalled) {
		b->stalled_bytes += (uint64_t)r;
		b->stalled_read_ns = mono_ns();
	}
	if (c->state == CS_HEAD)
		head_feed(b, c, b->rbuf, (size_t)r);
	else
		body_feed(b, c, b->rbuf, (size_t)r);
}

static void conn_io(struct bench *b, struct conn *c, uint32_t events)
{
	if (c->parked)
		return;
	if (c->state == CS_CONNECTING || c->state == CS_SENDING) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			conn_writable(b, c);
		return;
	}
	if ((c->state == CS_HEAD || c->state == CS_BODY) &&
	    (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		conn_readable(b, c);
}

/* ---- publish (one non-blocking POST per round, in the same loop) -------- */

/*
 * The POST goes through the epoll loop rather than a blocking call: while
 * herald answers it, events already reach the streams, and a blocked client
 * would read them late and inflate every latency by the publish round trip.
 */
static void pub_finish(struct bench *b, const char *err)
{
	struct pub *p = &b->pub;
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->state = PUB_DONE;
	p->done_ns = mono_ns();
	if (err)
		snprintf(p->err, sizeof(p->err), "%s", err);
}

static void pub_start(struct bench *b, long round)
{
	struct pub *p = &b->pub;
	p->req.len = 0;
	p->resp.len = 0;
	p->sent = 0;
	p->status = 0;
	p->err[0] = '\0';
	p->start_ns = mono_ns();
	/* {"type":"bench","data":{"t":..,"round":..}}; with --payload, a "pad"
	 * string member after them makes the body exactly that long (or as
	 * short as it can be). */
	struct bytes body = {0};
	bytes_printf(&body, "{\"type\":\"bench\",\"data\":{\"t\":%" PRId64 ",\"round\":%ld",
		     real_ns(), round);
	if (b->opt.payload > 0) {
		size_t fixed = body.len + strlen(",\"pad\":\"\"}}");
		size_t padlen = (size_t)b->opt.payload > fixed ? (size_t)b->opt.payload - fixed : 0;
		bytes_append(&body, ",\"pad\":\"", 8);
		bytes_append(&body, b->pad.p, padlen);
		bytes_append(&body, "\"", 1);
	}
	bytes_append(&body, "}}", 2);
	bytes_printf(&p->req,
		     "POST /v1/channels/%s/events HTTP/1.1\r\n"
		     "Host: %s:%ld\r\n"
		     "Authorization: Bearer %s\r\n"
		     "Content-Type: application/json\r\n"
		     "Content-Length: %zu\r\n"
		     "Connection: close\r\n\r\n",
		     b->opt.channel, b->opt.host, b->opt.port, b->opt.token, body.len);
	bytes_append(&p->req, body.p, body.len);
	bytes_free(&body);
	p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0) {
		pub_finish(b, strerror(errno));
		return;
	}
	if (connect(p->fd, (struct sockaddr *)&b->dst, sizeof(b->dst)) != 0 && errno != EINPROGRESS) {
		pub_finish(b, strerror(errno));
		return;
	}
	p->state = PUB_CONNECTING;
	struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = PUB_TAG};
	if (epoll_ctl(b->ep, EPOLL_CTL_ADD, p->fd, &ev) != 0)
		pub_finish(b, strerror(errno));
}

static void pub_writable(struct bench *b)
{
	struct pub *p = &b->pub;
	if (p->state == PUB_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err != 0) {
			pub_finish(b, strerror(err));
			return;
		}
		p->state = PUB_SENDING;
	}
	ssize_t w = send(p->fd, p->req.p + p->sent, p->req.len - p->sent, MSG_NOSIGNAL);
	if (w < 0) {
		if (errno != EAGAIN && errno != EINTR)
			pub_finish(b, strerror(errno));
		return;
	}
	p->sent += (size_t)w;
	if (p->sent < p->req.len)
		return;
	p->state = PUB_READING;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = PUB_TAG};
	if (epoll_ctl(b->ep, EPOLL_CTL_MOD, p->fd, &ev) != 0)
		pub_finish(b, strerror(errno));
}

/* Done when the Content-Length body is in, or at EOF. */
static void pub_readable(struct bench *b)
{
	struct pub *p = &b->pub;
	ssize_t r = read(p->fd, b->rbuf, sizeof(b->rbuf));
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r > 0 && p->resp.len < (1u << 16))
		bytes_append(&p->resp, b->rbuf, (size_t)r);
	size_t hlen = p->resp.len ? http_head_end(p->resp.p, p->resp.len) : 0;
	struct http_head h;
	bool parsed = hlen && http_parse_head(p->resp.p, hlen, &h);
	if (parsed)
		p->status = h.status;
	if (r < 0) {
		pub_finish(b, strerror(errno));
		return;
	}
	if (r == 0) {
		pub_finish(b, parsed ? NULL : "connection closed before a complete response head");
		return;
	}
	if (parsed && h.mode == BM_LENGTH && p->resp.len - hlen >= h.length)
		pub_finish(b, NULL);
}

static void pub_io(struct bench *b, uint32_t events)
{
	struct pub *p = &b->pub;
	if (p->state == PUB_CONNECTING || p->state == PUB_SENDING) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			pub_writable(b);
	} else if (p->state == PUB_READING) {
		pub_readable(b);
	}
}

static bool pub_ok(const struct bench *b)
{
	return b->pub.state == PUB_DONE && b->pub.err[0] == '\0' && b->pub.status == 201;
}

static void pub_report_failure(struct bench *b, long round)
{
	struct pub *p = &b->pub;
	b->pub_failures++;
	if (b->pub_failures > 3)
		return;
	if (p->err[0])
		fprintf(stderr, "sseload: round %ld: publish failed: %s\n", round, p->err);
	else if (p->state != PUB_DONE)
		fprintf(stderr, "sseload: round %ld: publish got no answer within 30 s\n", round);
	else
		fprintf(stderr, "sseload: round %ld: publish answered %d: %.*s\n", round, p->status,
			(int)(p->resp.len < 600 ? p->resp.len : 600), p->resp.p);
}

/* ---- the loop ---------------------------------------------------------- */

static void start_more(struct bench *b)
{
	while (b->next < b->start_limit && b->inflight < b->opt.batch)
		conn_start(b, &b->conns[b->next++]);
}

/* One epoll_wait and the I/O it reports; starts queued streams. */
static void pump(struct bench *b, int timeout_ms)
{
	struct epoll_event evs[1024];
	start_more(b);
	int k = epoll_wait(b->ep, evs, 1024, timeout_ms);
	if (k < 0 && errno != EINTR) {
		perror("sseload: epoll_wait");
		exit(2);
	}
	for (int i = 0; i < k; i++) {
		if (evs[i].data.u64 == PUB_TAG)
			pub_io(b, evs[i].events);
		else
			conn_io(b, &b->conns[evs[i].data.u64], evs[i].events);
	}
}

static int wait_ms(int64_t deadline)
{
	int64_t left = deadline - mono_ns();
	if (left <= 0)
		return 0;
	return left > 100 * NS_PER_MS ? 100 : (int)((left + NS_PER_MS - 1) / NS_PER_MS);
}

/* Keeps every stream serviced for @duration_ms. */
static void pump_for(struct bench *b, long duration_ms)
{
	int64_t deadline = mono_ns() + duration_ms * NS_PER_MS;
	while (mono_ns() < deadline)
		pump(b, wait_ms(deadline));
}

/* ---- measurements ------------------------------------------------------ */

/* VmRSS of @pid in KiB, or -1. */
static long rss_kb(long pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char line[256];
	long kb = -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

/* utime + stime of @pid in milliseconds (from /proc/PID/stat), or -1. */
static double proc_cpu_ms(long pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command name, which may hold spaces: state is 3rd. */
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	p++;
	for (int field = 3; field < 14 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p)
		return -1;
	char *end;
	long long utime = strtoll(p, &end, 10);
	long long stime = strtoll(end, NULL, 10);
	long hz = sysconf(_SC_CLK_TCK);
	return hz > 0 ? (double)(utime + stime) * 1000.0 / (double)hz : -1;
}

static double self_cpu_ms(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted @v (n > 0). */
static int64_t percentile(const int64_t *v, size_t n, double pct)
{
	size_t rank = (size_t)(pct / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

static double median(double *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void open_phase(struct bench *b)
{
	int64_t t0 = mono_ns();
	int64_t deadline = t0 + b->opt.open_timeout_s * NS_PER_S;
	while (b->opened + b->failed < b->opt.n && mono_ns() < deadline)
		pump(b, wait_ms(deadline));
	double secs = (double)(mono_ns() - t0) / 1e9;
	if (b->opened + b->failed < b->opt.n) {
		long st[CS_CLOSED + 1] = {0};
		for (long i = 0; i < b->opt.n; i++)
			if (!b->conns[i].open)
				st[b->conns[i].state]++;
		fprintf(stderr,
			"sseload: open timed out after %ld s: not started %ld, connecting %ld, "
			"awaiting head %ld, awaiting herald.open %ld\n",
			b->opt.open_timeout_s, st[CS_IDLE], st[CS_CONNECTING] + st[CS_SENDING],
			st[CS_HEAD], st[CS_BODY]);
	}
	int64_t *lat = malloc(sizeof(*lat) * (size_t)(b->opened ? b->opened : 1));
	if (!lat)
		die_oom();
	size_t k = 0;
	for (long i = 0; i < b->opt.n; i++)
		if (b->conns[i].open)
			lat[k++] = b->conns[i].open_ns;
	qsort(lat, k, sizeof(*lat), cmp_i64);
	printf("open_streams %ld\n", b->opened);
	printf("open_failed %ld\n", b->opt.n - b->opened);
	printf("open_seconds %.3f\n", secs);
	printf("open_rate %.0f\n", secs > 0 ? (double)b->opened / secs : 0.0);
	if (k) {
		printf("open_latency_p50_ms %.2f\n", ms(percentile(lat, k, 50)));
		printf("open_latency_p99_ms %.2f\n", ms(percentile(lat, k, 99)));
	}
	free(lat);
}

/* Opens the --stalled streams once the others are open. */
static void stalled_open_phase(struct bench *b)
{
	long k = b->opt.stalled;
	b->start_limit = b->opt.n + k;
	int64_t t0 = mono_ns();
	int64_t deadline = t0 + b->opt.open_timeout_s * NS_PER_S;
	while (b->stalled_open + b->stalled_failed < k && mono_ns() < deadline)
		pump(b, wait_ms(deadline));
	printf("stalled_streams %ld\n", k);
	printf("stalled_open %ld\n", b->stalled_open);
	printf("stalled_parked %ld\n", b->stalled_parked);
	printf("stalled_open_seconds %.3f\n", (double)(mono_ns() - t0) / 1e9);
}

/*
 * After the rounds: reads the stalled streams again, until all have ended,
 * none has had data for 2 s or 10 s have passed, counting what herald had
 * written for them and whether it ended them with herald.overflow. Nothing
 * here is timed.
 */
static void stalled_drain_phase(struct bench *b)
{
	long waiting = 0;
	for (long i = b->opt.n; i < b->opt.n + b->opt.stalled; i++) {
		struct conn *c = &b->conns[i];
		if (!c->parked || c->state == CS_CLOSED)
			continue;
		c->parked = false;
		if (conn_watch(b, c, EPOLL_CTL_ADD, EPOLLIN | EPOLLRDHUP))
			waiting++;
	}
	long ended0 = b->stalled_ended;
	int64_t t0 = mono_ns();
	int64_t deadline = t0 + DRAIN_TIMEOUT_NS;
	b->stalled_read_ns = t0;
	while (b->stalled_ended - ended0 < waiting && mono_ns() < deadline &&
	       mono_ns() - b->stalled_read_ns < DRAIN_QUIET_NS)
		pump(b, wait_ms(deadline));
	printf("stalled_drain_seconds %.3f\n", (double)(mono_ns() - t0) / 1e9);
	printf("stalled_bytes_read %" PRIu64 "\n", b->stalled_bytes);
	printf("stalled_bench_events %ld\n", b->stalled_events);
	printf("stalled_overflow %ld\n", b->stalled_overflow);
	printf("stalled_ended %ld\n", b->stalled_ended);
	/* "ended": the response ended cleanly (after herald.overflow, say);
	 * "io": e.g. reset by the peer, whose TCP_USER_TIMEOUT can abort a
	 * connection whose receive window stayed at zero. */
	for (int f = 0; f < F_COUNT; f++)
		printf("stalled_ended_%s %ld\n", failure_name[f], b->stalled_ends[f]);
	printf("stalled_still_open %ld\n", b->stalled_open - b->stalled_ended);
}

struct round_result {
	long got, missed;
	double first_ms, fanout_ms, p50_ms, p99_ms, publish_ms;
	bool published;
};

static void run_round(struct bench *b, long r, int64_t *lat, struct round_result *res)
{
	long expected = b->alive;
	b->round = r;
	b->round_got = 0;
	pub_start(b, r);
	int64_t deadline = mono_ns() + ROUND_TIMEOUT_NS;
	while (mono_ns() < deadline) {
		bool pub_done = b->pub.state == PUB_DONE;
		if (pub_done && !pub_ok(b))
			break;
		if (pub_done && b->round_got >= b->alive)
			break;
		pump(b, wait_ms(deadline));
	}
	*res = (struct round_result){.published = pub_ok(b)};
	if (!res->published)
		pub_report_failure(b, r);
	else
		res->publish_ms = ms(b->pub.done_ns - b->pub.start_ns);
	if (b->pub.state != PUB_DONE)
		pub_finish(b, "timed out");
	size_t k = 0;
	for (long i = 0; i < b->opt.n; i++)
		if (b->conns[i].round == r)
			lat[k++] = b->conns[i].lat_ns;
	res->got = (long)k;
	res->missed = expected - (long)k;
	if (k) {
		qsort(lat, k, sizeof(*lat), cmp_i64);
		res->first_ms = ms(lat[0]);
		res->fanout_ms = ms(lat[k - 1]);
		res->p50_ms = ms(percentile(lat, k, 50));
		res->p99_ms = ms(percentile(lat, k, 99));
	}
	b->round = 0;
}

static void fanout_phase(struct bench *b)
{
	long rounds = b->opt.fanout;
	struct round_result *res = calloc((size_t)rounds, sizeof(*res));
	int64_t *lat = malloc(sizeof(*lat) * (size_t)b->opt.n);
	double *fan = calloc((size_t)rounds, sizeof(*fan));
	double *p50 = calloc((size_t)rounds, sizeof(*p50));
	double *p99 = calloc((size_t)rounds, sizeof(*p99));
	double *pubms = calloc((size_t)rounds, sizeof(*pubms));
	double *first = calloc((size_t)rounds, sizeof(*first));
	if (!res || !lat || !fan || !p50 || !p99 || !pubms || !first)
		die_oom();
	double server_cpu0 = b->opt.rss_pid ? proc_cpu_ms(b->opt.rss_pid) : -1;
	double client_cpu0 = self_cpu_ms();
	long ran = 0;
	size_t k = 0;
	long missed = 0;
	double fan_max = 0;
	for (long r = 1; r <= rounds && b->alive > 0; r++) {
		if (r > 1)
			pump_for(b, b->opt.interval_ms);
		struct round_result *x = &res[r - 1];
		run_round(b, r, lat, x);
		ran++;
		missed += x->missed;
		printf("round %ld streams %ld missed %ld first_ms %.2f fanout_ms %.2f p50_ms %.2f "
		       "p99_ms %.2f publish_ms %.2f%s\n",
		       r, x->got, x->missed, x->first_ms, x->fanout_ms, x->p50_ms, x->p99_ms,
		       x->publish_ms, x->published ? "" : " (publish failed)");
		if (x->got == 0)
			continue;
		first[k] = x->first_ms;
		fan[k] = x->fanout_ms;
		p50[k] = x->p50_ms;
		p99[k] = x->p99_ms;
		pubms[k] = x->publish_ms;
		if (x->fanout_ms > fan_max)
			fan_max = x->fanout_ms;
		k++;
	}
	double server_cpu1 = b->opt.rss_pid ? proc_cpu_ms(b->opt.rss_pid) : -1;
	double client_cpu1 = self_cpu_ms();
	printf("fanout_rounds %zu\n", k);
	printf("first_median_ms %.2f\n", median(first, k));
	printf("fanout_median_ms %.2f\n", median(fan, k));
	printf("fanout_max_ms %.2f\n", fan_max);
	printf("latency_p50_median_ms %.2f\n", median(p50, k));
	printf("latency_p99_median_ms %.2f\n", median(p99, k));
	printf("publish_median_ms %.2f\n", median(pubms, k));
	printf("fanout_missed_total %ld\n", missed);
	b->missed_total = missed;
	printf("publish_failures %ld\n", b->pub_failures);
	/* Includes the pauses between rounds and any heartbeats in them. */
	if (ran > 0 && server_cpu0 >= 0 && server_cpu1 >= 0)
		printf("server_cpu_ms_per_round %.1f\n", (server_cpu1 - server_cpu0) / (double)ran);
	if (ran > 0)
		printf("client_cpu_ms_per_round %.1f\n", (client_cpu1 - client_cpu0) / (double)ran);
	free(first);
	free(res);
	free(lat);
	free(fan);
	free(p50);
	free(p99);
	free(pubms);
}

/* ---- setup ------------------------------------------------------------- */

static void usage(FILE *f)
{
	fputs("usage: sseload [--host 127.0.0.1] [--port 8080] [--path P] [--n 1000]\n"
	      "               [--token T | env HERALD_TOKEN] [--hold S] [--fanout K]\n"
	      "               [--settle MS] [--interval MS] [--sources K] [--batch 500]\n"
	      "               [--channel bench:fanout] [--open-timeout S] [--rss-pid PID]\n"
	      "               [--stalled K] [--payload BYTES]\n"
	      "Opens N SSE streams (GET P, default /v1/stream?channel=bench:fanout), waits\n"
	      "for event herald.open on each, then holds them idle S seconds and/or runs K\n"
	      "fan-out rounds (one POST /v1/channels/<channel>/events each). Local addresses\n"
	      "rotate over 127.0.0.1..127.0.0.K (--sources 0: let the kernel choose).\n"
	      "--stalled K opens K more streams after the N (SO_RCVBUF 4096) that read\n"
	      "their head and herald.open, then nothing until the rounds are over; they\n"
	      "count in no latency or loss figure. --payload BYTES pads each round's POST\n"
	      "body to BYTES with a \"pad\" string member (default: no padding).\n"
	      "Results are 'name value' lines on stdout; errors go to stderr. Exit 1 when\n"
	      "any stream failed to open or ended, an event was missed or a publish failed.\n",
	      f);
}

static bool parse_long(const char *name, const char *s, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "sseload: --%s wants an integer in [%ld, %ld], got '%s'\n", name, min,
			max, s);
		return false;
	}
	*out = v;
	return true;
}

static bool parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{"host", required_argument, NULL, 'H'},
		{"port", required_argument, NULL, 'p'},
		{"path", required_argument, NULL, 'P'},
		{"n", required_argument, NULL, 'n'},
		{"token", required_argument, NULL, 't'},
		{"hold", required_argument, NULL, 'h'},
		{"fanout", required_argument, NULL, 'f'},
		{"settle", required_argument, NULL, 's'},
		{"interval", required_argument, NULL, 'i'},
		{"sources", required_argument, NULL, 'S'},
		{"channel", required_argument, NULL, 'c'},
		{"batch", required_argument, NULL, 'b'},
		{"open-timeout", required_argument, NULL, 'T'},
		{"rss-pid", required_argument, NULL, 'r'},
		{"stalled", required_argument, NULL, 'k'},
		{"payload", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'x'},
		{NULL, 0, NULL, 0},
	};
	*o = (struct options){
		.host = "127.0.0.1", .port = 8080, .path = "/v1/stream?channel=bench:fanout",
		.n = 1000, .token = getenv("HERALD_TOKEN"), .interval_ms = 200, .sources = 4,
		.channel = "bench:fanout", .batch = 500, .open_timeout_s = 120,
	};
	int ch;
	bool ok = true;
	while (ok && (ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'H': o->host = optarg; break;
		case 'p': ok = parse_long("port", optarg, 1, 65535, &o->port); break;
		case 'P': o->path = optarg; break;
		case 'n': ok = parse_long("n", optarg, 1, 10000000, &o->n); break;
		case 't': o->token = optarg; break;
		case 'h': ok = parse_long("hold", optarg, 0, 86400, &o->hold_s); break;
		case 'f': ok = parse_long("fanout", optarg, 0, 100000, &o->fanout); break;
		case 's': ok = parse_long("settle", optarg, 0, 3600000, &o->settle_ms); break;
		case 'i': ok = parse_long("interval", optarg, 0, 3600000, &o->interval_ms); break;
		case 'S': ok = parse_long("sources", optarg, 0, 254, &o->sources); break;
		case 'c': o->channel = optarg; break;
		case 'b': ok = parse_long("batch", optarg, 1, 1000000, &o->batch); break;
		case 'T': ok = parse_long("open-timeout", optarg, 1, 86400, &o->open_timeout_s); break;
		case 'r': ok = parse_long("rss-pid", optarg, 1, 1L << 30, &o->rss_pid); break;
		case 'k': ok = parse_long("stalled", optarg, 0, 1000000, &o->stalled); break;
		case 'l': ok = parse_long("payload", optarg, 0, 64L << 20, &o->payload); break;
		case 'x': usage(stdout); exit(0);
		default: usage(stderr); return false;
		}
	}
	if (ok && optind < argc) {
		fprintf(stderr, "sseload: unexpected argument '%s'\n", argv[optind]);
		return false;
	}
	if (ok && (!o->token || !*o->token)) {
		fputs("sseload: no token (--token or HERALD_TOKEN)\n", stderr);
		return false;
	}
	return ok;
}

/* Raises the soft descriptor limit to the hard one; checks N fits. */
static bool raise_nofile(long n)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		perror("sseload: getrlimit");
		return false;
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		perror("sseload: setrlimit (continuing with the soft limit)");
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)n + FD_RESERVE > rl.rlim_cur) {
		fprintf(stderr, "sseload: --n %ld needs %ld descriptors, the limit is %llu\n", n,
			n + FD_RESERVE, (unsigned long long)rl.rlim_cur);
		return false;
	}
	return true;
}

static bool setup(struct bench *b)
{
	const struct options *o = &b->opt;
	b->dst = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
	const char *host = strcmp(o->host, "localhost") == 0 ? "127.0.0.1" : o->host;
	if (inet_pton(AF_INET, host, &b->dst.sin_addr) != 1) {
		fprintf(stderr, "sseload: --host must be a numeric IPv4 address, got '%s'\n", o->host);
		return false;
	}
	bytes_printf(&b->req,
		     "GET %s HTTP/1.1\r\n"
		     "Host: %s:%ld\r\n"
		     "Authorization: Bearer %s\r\n"
		     "Accept: text/event-stream\r\n"
		     "Cache-Control: no-cache\r\n\r\n",
		     o->path, o->host, o->port, o->token);
	b->ep = epoll_create1(EPOLL_CLOEXEC);
	if (b->ep < 0) {
		perror("sseload: epoll_create1");
		return false;
	}
	b->conns = calloc((size_t)(o->n + o->stalled), sizeof(*b->conns));
	if (!b->conns)
		die_oom();
	for (long i = 0; i < o->n + o->stalled; i++) {
		b->conns[i].fd = -1;
		b->conns[i].stalled = i >= o->n;
	}
	b->start_limit = o->n;
	if (o->payload > 0) {
		bytes_reserve(&b->pad, (size_t)o->payload);
		memset(b->pad.p, 'x', (size_t)o->payload);
		b->pad.len = (size_t)o->payload;
		b->pad.p[b->pad.len] = '\0';
	}
	b->pub.fd = -1;
	return true;
}

static void print_rss(const char *name, long kb)
{
	if (kb >= 0)
		printf("%s %ld\n", name, kb);
}

static int final_report(struct bench *b)
{
	printf("errors_connect %ld\n", b->fails[F_CONNECT]);
	printf("errors_io %ld\n", b->fails[F_IO]);
	printf("errors_status %ld\n", b->fails[F_STATUS]);
	printf("errors_parse %ld\n", b->fails[F_PARSE]);
	printf("streams_ended %ld\n", b->fails[F_ENDED]);
	printf("streams_lost_after_open %ld\n", b->ended_after_open);
	printf("comments_seen %ld\n", b->comments);
	printf("other_events %ld%s%s\n", b->other_events, b->other_events ? " first " : "",
	       b->other_events ? b->first_other : "");
	bool bad = b->opened < b->opt.n || b->ended_after_open > 0 || b->pub_failures > 0 ||
		   b->missed_total > 0 || b->stalled_open < b->opt.stalled;
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	static struct bench bench;
	struct bench *b = &bench;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (!parse_options(argc, argv, &b->opt))
		return 2;
	if (!raise_nofile(b->opt.n + b->opt.stalled) || !setup(b))
		return 2;
	const struct options *o = &b->opt;
	printf("target %s:%ld %s n %ld sources %ld batch %ld\n", o->host, o->port, o->path, o->n,
	       o->sources, o->batch);
	if (o->payload > 0)
		printf("payload_bytes %ld\n", o->payload);
	long rss_before = o->rss_pid ? rss_kb(o->rss_pid) : -1;
	if (o->rss_pid && rss_before < 0)
		fprintf(stderr, "sseload: cannot read /proc/%ld/status\n", o->rss_pid);

	open_phase(b);
	printf("ready %ld\n", b->opened);
	fflush(stdout);

	long rss_after = o->rss_pid ? rss_kb(o->rss_pid) : -1;
	print_rss("rss_before_kb", rss_before);
	print_rss("rss_after_open_kb", rss_after);
	if (o->hold_s > 0) {
		double cpu0 = o->rss_pid ? proc_cpu_ms(o->rss_pid) : -1;
		pump_for(b, o->hold_s * 1000);
		double cpu1 = o->rss_pid ? proc_cpu_ms(o->rss_pid) : -1;
		rss_after = o->rss_pid ? rss_kb(o->rss_pid) : -1;
		print_rss("rss_after_hold_kb", rss_after);
		/* An idle node should use next to no CPU (heartbeat ticks aside). */
		if (cpu0 >= 0 && cpu1 >= 0)
			printf("server_cpu_idle_pct %.1f\n", (cpu1 - cpu0) / 10.0 / (double)o->hold_s);
	}
	print_rss("rss_after_kb", rss_after);
	if (rss_before >= 0 && rss_after >= 0 && b->opened > 0)
		printf("rss_per_stream_bytes %.0f\n",
		       (double)(rss_after - rss_before) * 1024.0 / (double)b->opened);

	/* After the RSS samples, so that those are the N idle streams' alone. */
	if (o->stalled > 0)
		stalled_open_phase(b);
	if (o->fanout > 0 && b->alive > 0) {
		pump_for(b, o->settle_ms);
		fanout_phase(b);
	}
	if (o->stalled > 0)
		stalled_drain_phase(b);
	return final_report(b);
}
