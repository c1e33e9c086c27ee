/*
 * pubload.c — HTTP publish throughput load generator for herald.
 *
 * Owns: P keep-alive publisher connections, each with one
 * POST /v1/channels/<prefix><i % C>/events in flight at a time (the next one
 * leaves as soon as the previous response is complete), the SSE
 * subscriber stream(s) that receive those events (one stream for up to
 * --per-stream channels, so every channel is watched exactly once), all in
 * one epoll loop with non-blocking sockets; and the measurements: accepted
 * (201) and delivered events per second in a window after a warm-up,
 * publish round-trip and publish-to-receive percentiles, events accepted but
 * never received, optionally the CPU used by given processes in the window.
 * Does not own starting herald or PostgreSQL: tests/bench/publish.sh does.
 *
 * Build: gcc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
 *            -o tests/bench/pubload tests/bench/pubload.c
 *
 * Every event carries {"t": CLOCK_REALTIME ns when the request was built,
 * "i": a number unique in the run}; "i" indexes a table that records which
 * event was accepted in the window and which one arrived, so "missed" is
 * exact (accepted in the window, not received within --drain seconds after
 * its end) and duplicates are seen.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)
#define MAX_HEAD 16384u      /* longest response head accepted */
#define MAX_RESP (1u << 20)  /* longest publish response accepted */
#define MAX_LINE (1u << 20)  /* longest SSE line accepted */
#define SHOW_ERRORS 5        /* non-201 bodies / errors printed */
#define MAX_CPU_GROUPS 8
#define MAX_CPU_PIDS 256
#define SUB_TAG_BASE (UINT64_C(1) << 32) /* epoll tags: publishers < this <= subscribers */

/* ---- options ----------------------------------------------------------- */

struct cpu_group {
	char name[32];
	long pids[MAX_CPU_PIDS];
	int npids;
	double ms0, ms1; /* CPU time summed over pids at the window's start / end */
};

struct options {
	const char *host;
	long port;
	const char *token;
	const char *prefix;
	long publishers;
	long channels;
	long per_stream;
	double duration_s;
	double warmup_s;
	double drain_s;
	bool subscribe;
	bool progress;
	struct cpu_group cpu[MAX_CPU_GROUPS];
	int ncpu;
};

/* ---- growable byte strings (NUL-terminated once allocated) ------------- */

struct bytes {
	char *p;
	size_t len, cap;
};

static void die_oom(void)
{
	fputs("pubload: out of memory\n", stderr);
	exit(2);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die_oom();
	return p;
}

static void bytes_append(struct bytes *b, const void *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void bytes_printf(struct bytes *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void bytes_printf(struct bytes *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	va_start(ap, fmt);
	int need = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (need < 0)
		die_oom();
	if ((size_t)need < sizeof(small)) {
		bytes_append(b, small, (size_t)need);
		return;
	}
	char *big = xrealloc(NULL, (size_t)need + 1);
	va_start(ap, fmt);
	vsnprintf(big, (size_t)need + 1, fmt, ap);
	va_end(ap);
	bytes_append(b, big, (size_t)need);
	free(big);
}

/* ---- clocks and samples ------------------------------------------------- */

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static int64_t mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
static int64_t real_ns(void) { return clock_ns(CLOCK_REALTIME); }

struct samples {
	int64_t *v;
	size_t n, cap;
};

static void samples_add(struct samples *s, int64_t x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 4096;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = x;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile in ms of the sorted samples; -1 when empty. */
static double percentile_ms(const struct samples *s, double pct)
{
	if (s->n == 0)
		return -1;
	size_t rank = (size_t)(pct / 100.0 * (double)s->n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > s->n)
		rank = s->n;
	return (double)s->v[rank - 1] / 1e6;
}

/* ---- the event table ----------------------------------------------------- */

enum { EV_ACCEPTED_WIN = 1, EV_RECEIVED = 2 };

struct event {
	int64_t t;   /* CLOCK_REALTIME stamp in the payload */
	int64_t lat; /* receive - t, when received */
	uint8_t flags;
};

/* ---- HTTP response heads ------------------------------------------------- */

enum body_mode { BM_NONE, BM_LENGTH, BM_CHUNKED };

struct http_head {
	int status;
	enum body_mode mode;
	uint64_t length;
	bool close; /* Connection: close */
};

/* Length of the head including its blank line, or 0 if not complete. */
static size_t head_end(const char *p, size_t len)
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

/* The value of header @name in line [l, l+n), or NULL. */
static const char *header_value(const char *l, size_t n, const char *name, size_t *vlen)
{
	size_t k = strlen(name);
	if (n <= k || l[k] != ':' || strncasecmp(l, name, k) != 0)
		return NULL;
	const char *v = l + k + 1, *end = l + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	*vlen = (size_t)(end - v);
	return v;
}

static bool has_token(const char *v, size_t n, const char *tok)
{
	size_t k = strlen(tok);
	for (size_t i = 0; i + k <= n; i++)
		if (strncasecmp(v + i, tok, k) == 0)
			return true;
	return false;
}

static bool parse_head(const char *p, size_t len, struct http_head *h)
{
	*h = (struct http_head){.mode = BM_NONE};
	if (len < 12 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
		return false;
	if (p[9] < '1' || p[9] > '9' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
		return false;
	h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (p[7] == '0')
		h->close = true; /* HTTP/1.0: close unless told otherwise (we never are) */
	const char *l = memchr(p, '\n', len);
	while (l && (size_t)(l + 1 - p) < len) {
		l++;
		const char *nl = memchr(l, '\n', len - (size_t)(l - p));
		size_t n = nl ? (size_t)(nl - l) : len - (size_t)(l - p);
		const char *v;
		size_t vlen;
		if ((v = header_value(l, n, "transfer-encoding", &vlen))) {
			if (has_token(v, vlen, "chunked"))
				h->mode = BM_CHUNKED;
		} else if ((v = header_value(l, n, "content-length", &vlen)) && h->mode != BM_CHUNKED) {
			char num[24], *end;
			if (vlen == 0 || vlen >= sizeof(num))
				return false;
			memcpy(num, v, vlen);
			num[vlen] = '\0';
			errno = 0;
			h->length = strtoull(num, &end, 10);
			if (errno || *end)
				return false;
			h->mode = BM_LENGTH;
		} else if ((v = header_value(l, n, "connection", &vlen))) {
			h->close = has_token(v, vlen, "close");
		}
		l = nl;
	}
	return true;
}

/*
 * Whether the chunked body in [p, p+n) is complete; *end = its length.
 * -1 = malformed. Publish answers are small, so the whole body is scanned
 * again on every read.
 */
static int chunked_complete(const char *p, size_t n, size_t *end)
{
	size_t i = 0;
	for (;;) {
		uint64_t size = 0;
		size_t digits = 0;
		for (; i < n; i++, digits++) {
			char c = p[i];
			int d = c >= '0' && c <= '9' ? c - '0'
			      : c >= 'a' && c <= 'f' ? c - 'a' + 10
			      : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
			if (d < 0)
				break;
			if (size > (UINT64_MAX >> 4))
				return -1;
			size = size * 16 + (uint64_t)d;
		}
		if (i == n)
			return 0;
		if (digits == 0)
			return -1;
		const char *nl = memchr(p + i, '\n', n - i);
		if (!nl)
			return 0;
		i = (size_t)(nl - p) + 1;
		if (size == 0) {
			/* trailer lines until an empty one */
			for (;;) {
				nl = memchr(p + i, '\n', n - i);
				if (!nl)
					return 0;
				size_t llen = (size_t)(nl - (p + i));
				i = (size_t)(nl - p) + 1;
				if (llen == 0 || (llen == 1 && p[i - 2] == '\r')) {
					*end = i;
					return 1;
				}
			}
		}
		if (n - i < size)
			return 0;
		i += (size_t)size;
		if (i < n && p[i] == '\r')
			i++;
		if (i == n)
			return 0;
		if (p[i] != '\n')
			return -1;
		i++;
	}
}

/* ---- JSON numbers in the payload ----------------------------------------- */

/* Finds "key" : <integer> in s (after the envelope's "data" member). */
static bool json_int(const char *s, const char *key, int64_t *out)
{
	char pat[32];
	int k = snprintf(pat, sizeof(pat), "\"%s\"", key);
	for (const char *p = strstr(s, pat); p; p = strstr(p + 1, pat)) {
		const char *q = p + k;
		while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
			q++;
		if (*q != ':')
			continue;
		q++;
		while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
			q++;
		char *end;
		errno = 0;
		long long v = strtoll(q, &end, 10);
		if (end == q || errno)
			continue;
		*out = v;
		return true;
	}
	return false;
}

/* ---- connections ---------------------------------------------------------- */

enum pstate { P_IDLE, P_CONNECTING, P_WAITING };

struct publisher {
	int fd;
	enum pstate state;
	long channel;
	struct bytes req;
	size_t sent;
	struct bytes resp;
	size_t hlen;          /* head length once parsed, else 0 */
	struct http_head head;
	int64_t n;            /* event number in flight */
	int64_t start_ns;     /* monotonic, when the request was written */
	bool in_flight;
};

enum chunk_state { CK_SIZE, CK_EXT, CK_SIZE_LF, CK_DATA, CK_DATA_END, CK_DONE };

struct subscriber {
	int fd;
	bool connected, sent_req, head_done, open, ended;
	struct bytes req;
	size_t sent;
	struct bytes head;
	struct http_head http;
	enum chunk_state ck;
	uint64_t chunk_left;
	bool ck_digits;
	struct bytes line, data, errbody;
	char type[64];
	size_t type_len;
	bool after_cr;
};

struct bench {
	struct options opt;
	int ep;
	struct sockaddr_in dst;
	struct publisher *pubs;
	struct subscriber *subs;
	long nsubs;
	struct event *ev;
	size_t nev, evcap;
	/* window [ws, we) on the monotonic clock */
	int64_t ws, we;
	bool stopping;
	long in_flight;
	/* counters */
	long accepted_total, accepted_win, non201, pub_errors, reconnects;
	long delivered_win, received_total, duplicates, unknown_events, other_events;
	long pending_win; /* accepted in the window, not yet received */
	long sub_failures;
	long shown_non201, shown_errors;
	char first_other[64];
	struct samples rtt, deliver;
	int64_t now_real, now_mono;
	double self_cpu0, self_cpu1;
	char rbuf[1 << 16];
};

static void pub_connect(struct bench *b, struct publisher *p);
static void pub_send_next(struct bench *b, struct publisher *p);

static void watch(struct bench *b, int fd, int op, uint32_t events, uint64_t tag)
{
	struct epoll_event e = {.events = events, .data.u64 = tag};
	if (epoll_ctl(b->ep, op, fd, &e) != 0) {
		perror("pubload: epoll_ctl");
		exit(2);
	}
}

static int open_socket(struct bench *b)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("pubload: socket");
		exit(2);
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&b->dst, sizeof(b->dst)) != 0 && errno != EINPROGRESS) {
		fprintf(stderr, "pubload: connect: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- publishers ----------------------------------------------------------- */

static struct publisher *pub_of(struct bench *b, uint64_t tag) { return &b->pubs[tag]; }

static void pub_error(struct bench *b, struct publisher *p, const char *what)
{
	b->pub_errors++;
	if (b->shown_errors++ < SHOW_ERRORS)
		fprintf(stderr, "pubload: publisher %ld: %s\n", (long)(p - b->pubs), what);
}

/* Closes the connection; an unanswered request is lost (not accepted). */
static void pub_close(struct bench *b, struct publisher *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->state = P_IDLE;
	if (p->in_flight) {
		p->in_flight = false;
		b->in_flight--;
	}
}

/* A failed connection is re-opened (unless stopping), after a short pause
 * when it never connected, so a dead server is not hammered. */
static void pub_fail(struct bench *b, struct publisher *p, const char *what)
{
	pub_error(b, p, what);
	pub_close(b, p);
	if (!b->stopping) {
		b->reconnects++;
		pub_connect(b, p);
	}
}

static struct event *event_new(struct bench *b, int64_t *n)
{
	if (b->nev == b->evcap) {
		b->evcap = b->evcap ? b->evcap * 2 : 65536;
		b->ev = xrealloc(b->ev, b->evcap * sizeof(*b->ev));
	}
	*n = (int64_t)b->nev;
	struct event *e = &b->ev[b->nev++];
	*e = (struct event){0};
	return e;
}

static void pub_write(struct bench *b, struct publisher *p)
{
	while (p->sent < p->req.len) {
		ssize_t w = send(p->fd, p->req.p + p->sent, p->req.len - p->sent, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				watch(b, p->fd, EPOLL_CTL_MOD, EPOLLOUT, (uint64_t)(p - b->pubs));
				return;
			}
			pub_fail(b, p, strerror(errno));
			return;
		}
		p->sent += (size_t)w;
	}
	watch(b, p->fd, EPOLL_CTL_MOD, EPOLLIN | EPOLLRDHUP, (uint64_t)(p - b->pubs));
}

static void pub_send_next(struct bench *b, struct publisher *p)
{
	if (b->stopping || p->fd < 0)
		return;
	struct event *e = event_new(b, &p->n);
	e->t = real_ns();
	char body[128];
	int blen = snprintf(body, sizeof(body),
	                    "{\"type\":\"bench\",\"data\":{\"t\":%" PRId64 ",\"i\":%" PRId64 "}}", e->t,
	                    p->n);
	p->req.len = 0;
	bytes_printf(&p->req,
	             "POST /v1/channels/%s%ld/events HTTP/1.1\r\n"
	             "Host: %s:%ld\r\n"
	             "Authorization: Bearer %s\r\n"
	             "Content-Type: application/json\r\n"
	             "Content-Length: %d\r\n\r\n%s",
	             b->opt.prefix, p->channel, b->opt.host, b->opt.port, b->opt.token, blen, body);
	p->sent = 0;
	p->resp.len = 0;
	p->hlen = 0;
	p->in_flight = true;
	b->in_flight++;
	p->start_ns = mono_ns();
	pub_write(b, p);
}

static void pub_connect(struct bench *b, struct publisher *p)
{
	p->fd = open_socket(b);
	if (p->fd < 0) {
		pub_error(b, p, "connect failed");
		return; /* stays idle */
	}
	p->state = P_CONNECTING;
	struct epoll_event e = {.events = EPOLLOUT, .data.u64 = (uint64_t)(p - b->pubs)};
	if (epoll_ctl(b->ep, EPOLL_CTL_ADD, p->fd, &e) != 0) {
		perror("pubload: epoll_ctl");
		exit(2);
	}
}

/* A complete response for the request in flight. */
static void pub_answered(struct bench *b, struct publisher *p, const char *body, size_t blen)
{
	int64_t now = mono_ns();
	struct event *e = &b->ev[p->n];
	bool in_win = now >= b->ws && now < b->we;
	p->in_flight = false;
	b->in_flight--;
	if (p->head.status == 201) {
		b->accepted_total++;
		if (in_win) {
			b->accepted_win++;
			e->flags |= EV_ACCEPTED_WIN;
			if (!(e->flags & EV_RECEIVED))
				b->pending_win++;
			samples_add(&b->rtt, now - p->start_ns);
		}
	} else {
		b->non201++;
		if (b->shown_non201++ < SHOW_ERRORS)
			fprintf(stderr, "pubload: publisher %ld: HTTP %d: %.*s\n", (long)(p - b->pubs),
			        p->head.status, (int)(blen > 600 ? 600 : blen), body);
	}
	if (p->head.close) {
		pub_close(b, p);
		if (!b->stopping) {
			b->reconnects++;
			pub_connect(b, p);
		}
		return;
	}
	pub_send_next(b, p);
}

/* Checks whether the buffered response is complete; answers it if so. */
static void pub_check(struct bench *b, struct publisher *p, bool eof)
{
	if (!p->hlen) {
		size_t h = head_end(p->resp.p, p->resp.len);
		if (!h) {
			if (eof)
				pub_fail(b, p, "connection closed before a response head");
			else if (p->resp.len > MAX_HEAD)
				pub_fail(b, p, "response head larger than 16 KiB");
			return;
		}
		if (!parse_head(p->resp.p, h, &p->head)) {
			pub_fail(b, p, "malformed response head");
			return;
		}
		p->hlen = h;
	}
	const char *body = p->resp.p + p->hlen;
	size_t have = p->resp.len - p->hlen, end = 0;
	switch (p->head.mode) {
	case BM_LENGTH:
		if (have < p->head.length) {
			if (eof)
				pub_fail(b, p, "connection closed inside a response body");
			return;
		}
		end = (size_t)p->head.length;
		break;
	case BM_CHUNKED: {
		int r = chunked_complete(body, have, &end);
		if (r < 0) {
			pub_fail(b, p, "malformed chunked response");
			return;
		}
		if (r == 0) {
			if (eof)
				pub_fail(b, p, "connection closed inside a chunked response");
			return;
		}
		break;
	}
	case BM_NONE:
		if (!eof)
			return;
		end = have;
		p->head.close = true;
		break;
	}
	if (end != have) {
		pub_fail(b, p, "bytes after the response (none requested)");
		return;
	}
	pub_answered(b, p, body, end);
}

static void pub_io(struct bench *b, struct publisher *p, uint32_t events)
{
	if (p->fd < 0)
		return;
	if (p->state == P_CONNECTING) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err) {
			pub_error(b, p, strerror(err));
			pub_close(b, p);
			return; /* a refused connection is not retried in a loop */
		}
		p->state = P_WAITING;
		if (b->stopping) {
			pub_close(b, p);
			return;
		}
		pub_send_next(b, p);
		return;
	}
	if (p->sent < p->req.len) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			pub_write(b, p);
		return;
	}
	for (;;) {
		ssize_t r = read(p->fd, b->rbuf, sizeof(b->rbuf));
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			pub_fail(b, p, strerror(errno));
			return;
		}
		if (r == 0) {
			if (!p->in_flight) { /* idle keep-alive connection closed */
				pub_close(b, p);
				if (!b->stopping) {
					b->reconnects++;
					pub_connect(b, p);
				}
				return;
			}
			pub_check(b, p, true);
			return;
		}
		if (!p->in_flight) {
			pub_fail(b, p, "unexpected bytes on an idle connection");
			return;
		}
		if (p->resp.len + (size_t)r > MAX_RESP) {
			pub_fail(b, p, "response larger than 1 MiB");
			return;
		}
		bytes_append(&p->resp, b->rbuf, (size_t)r);
		pub_check(b, p, false);
		if (p->fd < 0 || !p->in_flight || p->sent < p->req.len)
			return; /* answered (next request written) or closed */
	}
}

/* ---- subscribers: chunked decoding and SSE (WHATWG rules) --------------- */

static void sub_fail(struct bench *b, struct subscriber *s, const char *what)
{
	if (s->ended)
		return;
	s->ended = true;
	b->sub_failures++;
	fprintf(stderr, "pubload: subscriber %ld %s: %s\n", (long)(s - b->subs),
	        s->open ? "after herald.open" : "before herald.open", what);
	if (s->errbody.len)
		fprintf(stderr, "pubload: subscriber %ld: HTTP %d: %.*s\n", (long)(s - b->subs),
		        s->http.status, (int)(s->errbody.len > 600 ? 600 : s->errbody.len), s->errbody.p);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

static void on_bench(struct bench *b, const char *data)
{
	const char *payload = strstr(data, "\"data\"");
	int64_t i, t;
	if (!payload || !json_int(payload, "i", &i) || !json_int(payload, "t", &t) || i < 0 ||
	    (size_t)i >= b->nev) {
		b->unknown_events++;
		return;
	}
	struct event *e = &b->ev[i];
	if (e->flags & EV_RECEIVED) {
		b->duplicates++;
		return;
	}
	e->flags |= EV_RECEIVED;
	e->lat = b->now_real - e->t;
	b->received_total++;
	if (b->now_mono >= b->ws && b->now_mono < b->we)
		b->delivered_win++;
	if (e->flags & EV_ACCEPTED_WIN)
		b->pending_win--;
}

static void sse_dispatch(struct bench *b, struct subscriber *s)
{
	if (s->data.len > 0) {
		s->data.p[--s->data.len] = '\0'; /* the last LF */
		s->type[s->type_len] = '\0';
		const char *type = s->type_len ? s->type : "message";
		if (strcmp(type, "bench") == 0) {
			on_bench(b, s->data.p);
		} else if (strcmp(type, "herald.open") == 0) {
			s->open = true;
		} else if (b->other_events++ == 0) {
			snprintf(b->first_other, sizeof(b->first_other), "%s", type);
			fprintf(stderr, "pubload: subscriber %ld: event %s: %.300s\n",
			        (long)(s - b->subs), type, s->data.p);
		}
	}
	s->type_len = 0;
	s->data.len = 0;
}

static void sse_line(struct bench *b, struct subscriber *s)
{
	const char *l = s->line.p ? s->line.p : "";
	size_t n = s->line.len;
	if (n == 0) {
		sse_dispatch(b, s);
		return;
	}
	if (l[0] == ':')
		return; /* comment (heartbeat) */
	const char *colon = memchr(l, ':', n);
	size_t flen = colon ? (size_t)(colon - l) : n;
	const char *v = colon ? colon + 1 : l + n;
	size_t vlen = (size_t)(l + n - v);
	if (vlen && *v == ' ') {
		v++;
		vlen--;
	}
	if (flen == 5 && memcmp(l, "event", 5) == 0) {
		s->type_len = vlen < sizeof(s->type) - 1 ? vlen : sizeof(s->type) - 1;
		memcpy(s->type, v, s->type_len);
	} else if (flen == 4 && memcmp(l, "data", 4) == 0) {
		bytes_append(&s->data, v, vlen);
		bytes_append(&s->data, "\n", 1);
	}
}

static void sse_feed(struct bench *b, struct subscriber *s, const char *p, size_t n)
{
	if (s->http.status != 200) {
		if (s->errbody.len < 4096)
			bytes_append(&s->errbody, p, n);
		return;
	}
	size_t i = 0;
	while (i < n && !s->ended) {
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
			if (s->line.len + (j - i) > MAX_LINE) {
				sub_fail(b, s, "SSE line longer than 1 MiB");
				return;
			}
			bytes_append(&s->line, p + i, j - i);
		}
		if (j == n)
			return;
		s->after_cr = p[j] == '\r';
		sse_line(b, s);
		s->line.len = 0;
		i = j + 1;
	}
}

static void body_end(struct bench *b, struct subscriber *s)
{
	if (s->http.status != 200) {
		char what[48];
		snprintf(what, sizeof(what), "HTTP status %d", s->http.status);
		sub_fail(b, s, what);
	} else {
		sub_fail(b, s, "the server ended the stream");
	}
}

static void chunked_feed(struct bench *b, struct subscriber *s, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && !s->ended) {
		char c = p[i];
		switch (s->ck) {
		case CK_SIZE: {
			int d = c >= '0' && c <= '9' ? c - '0'
			      : c >= 'a' && c <= 'f' ? c - 'a' + 10
			      : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
			i++;
			if (d >= 0) {
				if (s->chunk_left > (UINT64_MAX >> 4)) {
					sub_fail(b, s, "chunk size overflow");
					return;
				}
				s->chunk_left = s->chunk_left * 16 + (uint64_t)d;
				s->ck_digits = true;
			} else if (c == ';' || c == ' ' || c == '\t') {
				s->ck = CK_EXT;
			} else if (c == '\r') {
				s->ck = CK_SIZE_LF;
			} else if (c == '\n') {
				s->ck = CK_SIZE_LF;
				i--; /* handled as the LF below */
			} else {
				sub_fail(b, s, "bad byte in a chunk size");
				return;
			}
			break;
		}
		case CK_EXT:
			i++;
			if (c == '\r' || c == '\n') {
				s->ck = CK_SIZE_LF;
				if (c == '\n')
					i--;
			}
			break;
		case CK_SIZE_LF:
			i++;
			if (c != '\n') {
				sub_fail(b, s, "chunk size line: CR without LF");
				return;
			}
			if (!s->ck_digits) {
				sub_fail(b, s, "chunk size line without digits");
				return;
			}
			if (s->chunk_left == 0) {
				s->ck = CK_DONE;
				body_end(b, s);
				return;
			}
			s->ck = CK_DATA;
			break;
		case CK_DATA: {
			size_t take = n - i < s->chunk_left ? n - i : (size_t)s->chunk_left;
			sse_feed(b, s, p + i, take);
			i += take;
			s->chunk_left -= take;
			if (s->chunk_left == 0)
				s->ck = CK_DATA_END;
			break;
		}
		case CK_DATA_END:
			i++;
			if (c == '\r')
				break;
			if (c != '\n') {
				sub_fail(b, s, "chunk longer than its size");
				return;
			}
			s->ck = CK_SIZE;
			s->chunk_left = 0;
			s->ck_digits = false;
			break;
		case CK_DONE:
			return;
		}
	}
}

static void sub_body(struct bench *b, struct subscriber *s, const char *p, size_t n)
{
	switch (s->http.mode) {
	case BM_CHUNKED:
		chunked_feed(b, s, p, n);
		break;
	case BM_LENGTH: {
		size_t take = n < s->chunk_left ? n : (size_t)s->chunk_left;
		sse_feed(b, s, p, take);
		s->chunk_left -= take;
		if (s->chunk_left == 0)
			body_end(b, s);
		break;
	}
	case BM_NONE:
		sse_feed(b, s, p, n);
		break;
	}
}

static void sub_read(struct bench *b, struct subscriber *s)
{
	for (;;) {
		ssize_t r = read(s->fd, b->rbuf, sizeof(b->rbuf));
		if (r < 0) {
			if (errno != EAGAIN && errno != EINTR)
				sub_fail(b, s, strerror(errno));
			return;
		}
		if (r == 0) {
			if (!s->head_done)
				sub_fail(b, s, "connection closed before the response head");
			else
				body_end(b, s);
			return;
		}
		b->now_real = real_ns();
		b->now_mono = mono_ns();
		const char *p = b->rbuf;
		size_t n = (size_t)r;
		if (!s->head_done) {
			bytes_append(&s->head, p, n);
			size_t h = head_end(s->head.p, s->head.len);
			if (!h) {
				if (s->head.len > MAX_HEAD)
					sub_fail(b, s, "response head larger than 16 KiB");
				continue;
			}
			if (!parse_head(s->head.p, h, &s->http)) {
				sub_fail(b, s, "malformed response head");
				return;
			}
			s->head_done = true;
			s->ck = CK_SIZE;
			s->chunk_left = s->http.mode == BM_LENGTH ? s->http.length : 0;
			if (s->http.mode == BM_LENGTH && s->http.length == 0) {
				body_end(b, s);
				return;
			}
			/* the body bytes that came with the head */
			struct bytes rest = {0};
			bytes_append(&rest, s->head.p + h, s->head.len - h);
			sub_body(b, s, rest.p, rest.len);
			free(rest.p);
		} else {
			sub_body(b, s, p, n);
		}
		if (s->ended)
			return;
	}
}

static void sub_io(struct bench *b, struct subscriber *s, uint32_t events)
{
	if (s->ended || s->fd < 0)
		return;
	uint64_t tag = SUB_TAG_BASE + (uint64_t)(s - b->subs);
	if (!s->connected) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err) {
			sub_fail(b, s, strerror(err));
			return;
		}
		s->connected = true;
	}
	if (!s->sent_req) {
		while (s->sent < s->req.len) {
			ssize_t w = send(s->fd, s->req.p + s->sent, s->req.len - s->sent, MSG_NOSIGNAL);
			if (w < 0) {
				if (errno != EAGAIN && errno != EINTR)
					sub_fail(b, s, strerror(errno));
				return;
			}
			s->sent += (size_t)w;
		}
		s->sent_req = true;
		watch(b, s->fd, EPOLL_CTL_MOD, EPOLLIN | EPOLLRDHUP, tag);
		return;
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		sub_read(b, s);
}

static void sub_start(struct bench *b, struct subscriber *s, long first, long count)
{
	s->fd = -1;
	bytes_printf(&s->req, "GET /v1/stream?");
	for (long c = first; c < first + count; c++)
		bytes_printf(&s->req, "%schannel=%s%ld", c > first ? "&" : "", b->opt.prefix, c);
	bytes_printf(&s->req,
	             " HTTP/1.1\r\n"
	             "Host: %s:%ld\r\n"
	             "Authorization: Bearer %s\r\n"
	             "Accept: text/event-stream\r\n"
	             "Cache-Control: no-cache\r\n\r\n",
	             b->opt.host, b->opt.port, b->opt.token);
	s->fd = open_socket(b);
	if (s->fd < 0) {
		sub_fail(b, s, "connect failed");
		return;
	}
	struct epoll_event e = {.events = EPOLLOUT, .data.u64 = SUB_TAG_BASE + (uint64_t)(s - b->subs)};
	if (epoll_ctl(b->ep, EPOLL_CTL_ADD, s->fd, &e) != 0) {
		perror("pubload: epoll_ctl");
		exit(2);
	}
}

/* ---- the loop ------------------------------------------------------------- */

static void pump(struct bench *b, int64_t deadline)
{
	struct epoll_event evs[256];
	int64_t left = deadline - mono_ns();
	int timeout = left <= 0 ? 0 : left > 100 * NS_PER_MS ? 100 : (int)((left + NS_PER_MS - 1) / NS_PER_MS);
	int k = epoll_wait(b->ep, evs, 256, timeout);
	if (k < 0 && errno != EINTR) {
		perror("pubload: epoll_wait");
		exit(2);
	}
	for (int i = 0; i < k; i++) {
		uint64_t tag = evs[i].data.u64;
		if (tag >= SUB_TAG_BASE)
			sub_io(b, &b->subs[tag - SUB_TAG_BASE], evs[i].events);
		else
			pub_io(b, pub_of(b, tag), evs[i].events);
	}
}

/* ---- CPU accounting ------------------------------------------------------- */

/* utime + stime of pid in ms, or -1 (e.g. the process is gone). */
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
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	p++;
	for (int field = 3; field < 14 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p)
		return -1;
	char *end;
	long long ut = strtoll(p, &end, 10);
	long long st = strtoll(end, NULL, 10);
	long hz = sysconf(_SC_CLK_TCK);
	return hz > 0 ? (double)(ut + st) * 1000.0 / (double)hz : -1;
}

static double group_cpu_ms(const struct cpu_group *g)
{
	double sum = 0;
	for (int i = 0; i < g->npids; i++) {
		double v = proc_cpu_ms(g->pids[i]);
		if (v > 0)
			sum += v;
	}
	return sum;
}

static double self_cpu_ms(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}

static void cpu_mark(struct bench *b, bool end)
{
	for (int i = 0; i < b->opt.ncpu; i++) {
		double v = group_cpu_ms(&b->opt.cpu[i]);
		if (end)
			b->opt.cpu[i].ms1 = v;
		else
			b->opt.cpu[i].ms0 = v;
	}
	if (end)
		b->self_cpu1 = self_cpu_ms();
	else
		b->self_cpu0 = self_cpu_ms();
}

/* ---- options ------------------------------------------------------------- */

static void usage(FILE *f)
{
	fputs("usage: pubload [--host 127.0.0.1] [--port 8080] [--token T | env HERALD_TOKEN]\n"
	      "               [--prefix bench:pub] [--publishers 8] [--channels 8]\n"
	      "               [--duration 10] [--warmup 1] [--drain 5] [--per-stream 32]\n"
	      "               [--no-subscribe] [--progress] [--cpu NAME:PID[,PID...]]...\n"
	      "P keep-alive connections publish to <prefix><i % C> (one request in flight\n"
	      "each); ceil(C / per-stream) SSE streams receive every channel once. After\n"
	      "--warmup s, a --duration s window is measured; then --drain s at most for\n"
	      "the events accepted in the window to arrive. --cpu samples the CPU time of\n"
	      "the listed processes at the window's start and end (repeatable).\n"
	      "Prints one line of key=value pairs on stdout; diagnostics on stderr.\n"
	      "Exit 0 = no non-201, no publish error, nothing missed or duplicated, every\n"
	      "stream stayed open; 1 = one of those; 2 = usage or setup error.\n",
	      f);
}

static bool parse_long(const char *name, const char *s, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "pubload: --%s wants an integer in [%ld, %ld], got '%s'\n", name, min,
		        max, s);
		return false;
	}
	*out = v;
	return true;
}

static bool parse_secs(const char *name, const char *s, double min, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= min) || v > 86400) {
		fprintf(stderr, "pubload: --%s wants seconds >= %g, got '%s'\n", name, min, s);
		return false;
	}
	*out = v;
	return true;
}

static bool parse_cpu(const char *s, struct options *o)
{
	if (o->ncpu == MAX_CPU_GROUPS) {
		fputs("pubload: too many --cpu groups\n", stderr);
		return false;
	}
	struct cpu_group *g = &o->cpu[o->ncpu];
	const char *colon = strchr(s, ':');
	if (!colon || colon == s || (size_t)(colon - s) >= sizeof(g->name)) {
		fprintf(stderr, "pubload: --cpu wants NAME:PID[,PID...], got '%s'\n", s);
		return false;
	}
	memcpy(g->name, s, (size_t)(colon - s));
	g->name[colon - s] = '\0';
	for (const char *p = colon + 1; *p;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p || pid <= 0 || (*end && *end != ',') || g->npids == MAX_CPU_PIDS) {
			fprintf(stderr, "pubload: --cpu: bad pid list '%s'\n", colon + 1);
			return false;
		}
		g->pids[g->npids++] = pid;
		p = *end ? end + 1 : end;
	}
	o->ncpu++;
	return true;
}

static bool prefix_ok(const char *p)
{
	for (; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == ':' || *p == '-' || *p == '_' || *p == '.'))
			return false;
	return true;
}

static bool parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{"host", required_argument, NULL, 'H'},
		{"port", required_argument, NULL, 'p'},
		{"token", required_argument, NULL, 't'},
		{"prefix", required_argument, NULL, 'x'},
		{"publishers", required_argument, NULL, 'P'},
		{"channels", required_argument, NULL, 'C'},
		{"per-stream", required_argument, NULL, 'S'},
		{"duration", required_argument, NULL, 'd'},
		{"warmup", required_argument, NULL, 'w'},
		{"drain", required_argument, NULL, 'D'},
		{"no-subscribe", no_argument, NULL, 'n'},
		{"progress", no_argument, NULL, 'g'},
		{"cpu", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	*o = (struct options){
		.host = "127.0.0.1", .port = 8080, .token = getenv("HERALD_TOKEN"),
		.prefix = "bench:pub", .publishers = 8, .channels = 8, .per_stream = 32,
		.duration_s = 10, .warmup_s = 1, .drain_s = 5, .subscribe = true,
	};
	int ch;
	bool ok = true;
	while (ok && (ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'H': o->host = optarg; break;
		case 'p': ok = parse_long("port", optarg, 1, 65535, &o->port); break;
		case 't': o->token = optarg; break;
		case 'x': o->prefix = optarg; break;
		case 'P': ok = parse_long("publishers", optarg, 1, 10000, &o->publishers); break;
		case 'C': ok = parse_long("channels", optarg, 1, 100000, &o->channels); break;
		case 'S': ok = parse_long("per-stream", optarg, 1, 1024, &o->per_stream); break;
		case 'd': ok = parse_secs("duration", optarg, 0.1, &o->duration_s); break;
		case 'w': ok = parse_secs("warmup", optarg, 0, &o->warmup_s); break;
		case 'D': ok = parse_secs("drain", optarg, 0, &o->drain_s); break;
		case 'n': o->subscribe = false; break;
		case 'g': o->progress = true; break;
		case 'c': ok = parse_cpu(optarg, o); break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return false;
		}
	}
	if (ok && optind < argc) {
		fprintf(stderr, "pubload: unexpected argument '%s'\n", argv[optind]);
		return false;
	}
	if (ok && (!o->token || !*o->token)) {
		fputs("pubload: no token (--token or HERALD_TOKEN)\n", stderr);
		return false;
	}
	if (ok && !prefix_ok(o->prefix)) {
		fputs("pubload: --prefix may hold only letters, digits and : - _ .\n", stderr);
		return false;
	}
	return ok;
}

/* ---- main ----------------------------------------------------------------- */

static bool subs_all_open(const struct bench *b)
{
	for (long i = 0; i < b->nsubs; i++)
		if (!b->subs[i].open)
			return false;
	return true;
}

static bool subs_alive(const struct bench *b)
{
	for (long i = 0; i < b->nsubs; i++)
		if (b->subs[i].ended)
			return false;
	return true;
}

static void progress(struct bench *b, int64_t t0, int64_t *next, long *last_acc, long *last_rx)
{
	int64_t now = mono_ns();
	if (!b->opt.progress || now < *next)
		return;
	fprintf(stderr, "pubload: t=%.1fs accepted %ld/s received %ld/s in flight %ld\n",
	        (double)(now - t0) / 1e9, b->accepted_total - *last_acc,
	        b->received_total - *last_rx, b->in_flight);
	*last_acc = b->accepted_total;
	*last_rx = b->received_total;
	*next += NS_PER_S;
}

int main(int argc, char **argv)
{
	static struct bench bench;
	struct bench *b = &bench;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (!parse_options(argc, argv, &b->opt))
		return 2;
	const struct options *o = &b->opt;
	const char *host = strcmp(o->host, "localhost") == 0 ? "127.0.0.1" : o->host;
	b->dst = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
	if (inet_pton(AF_INET, host, &b->dst.sin_addr) != 1) {
		fprintf(stderr, "pubload: --host must be a numeric IPv4 address, got '%s'\n", o->host);
		return 2;
	}
	b->ep = epoll_create1(EPOLL_CLOEXEC);
	if (b->ep < 0) {
		perror("pubload: epoll_create1");
		return 2;
	}

	/* 1. subscriber streams, each channel on exactly one of them */
	b->nsubs = o->subscribe ? (o->channels + o->per_stream - 1) / o->per_stream : 0;
	b->subs = calloc((size_t)(b->nsubs ? b->nsubs : 1), sizeof(*b->subs));
	if (!b->subs)
		die_oom();
	for (long i = 0; i < b->nsubs; i++) {
		long first = i * o->per_stream;
		long count = o->channels - first < o->per_stream ? o->channels - first : o->per_stream;
		sub_start(b, &b->subs[i], first, count);
	}
	/* the window opens only after every stream is open */
	b->ws = b->we = INT64_MAX;
	int64_t open_deadline = mono_ns() + 30 * NS_PER_S;
	while (!subs_all_open(b) && subs_alive(b) && mono_ns() < open_deadline)
		pump(b, open_deadline);
	if (!subs_all_open(b)) {
		fprintf(stderr, "pubload: the subscriber stream(s) did not open\n");
		return 2;
	}

	/* 2. publishers; warm-up, then the window */
	b->pubs = calloc((size_t)o->publishers, sizeof(*b->pubs));
	if (!b->pubs)
		die_oom();
	int64_t t0 = mono_ns();
	b->ws = t0 + (int64_t)(o->warmup_s * 1e9);
	b->we = b->ws + (int64_t)(o->duration_s * 1e9);
	for (long i = 0; i < o->publishers; i++) {
		b->pubs[i].fd = -1;
		b->pubs[i].channel = i % o->channels;
		pub_connect(b, &b->pubs[i]);
	}
	int64_t next_progress = t0 + NS_PER_S;
	long last_acc = 0, last_rx = 0;
	bool marked = false;
	while (mono_ns() < b->we) {
		if (!marked && mono_ns() >= b->ws) {
			cpu_mark(b, false);
			marked = true;
		}
		pump(b, marked ? b->we : b->ws);
		progress(b, t0, &next_progress, &last_acc, &last_rx);
	}
	if (!marked)
		cpu_mark(b, false);
	cpu_mark(b, true);

	/* 3. no new requests; wait for those in flight and for the window's
	 * events to arrive, --drain s at most */
	b->stopping = true;
	int64_t drain_end = b->we + (int64_t)(o->drain_s * 1e9);
	while (mono_ns() < drain_end &&
	       (b->in_flight > 0 || (b->nsubs > 0 && b->pending_win > 0 && subs_alive(b)))) {
		pump(b, drain_end);
		progress(b, t0, &next_progress, &last_acc, &last_rx);
	}
	for (long i = 0; i < o->publishers; i++)
		pub_close(b, &b->pubs[i]);
	for (long i = 0; i < b->nsubs; i++)
		if (b->subs[i].fd >= 0)
			close(b->subs[i].fd);

	/* 4. results */
	double win = o->duration_s;
	for (size_t i = 0; i < b->nev; i++)
		if ((b->ev[i].flags & (EV_ACCEPTED_WIN | EV_RECEIVED)) == (EV_ACCEPTED_WIN | EV_RECEIVED))
			samples_add(&b->deliver, b->ev[i].lat);
	qsort(b->rtt.v, b->rtt.n, sizeof(int64_t), cmp_i64);
	qsort(b->deliver.v, b->deliver.n, sizeof(int64_t), cmp_i64);
	long missed = b->nsubs > 0 ? b->pending_win : 0;
	printf("accepted_per_s=%.0f delivered_per_s=%.0f non201=%ld publish_rtt_p50_ms=%.2f "
	       "publish_rtt_p99_ms=%.2f deliver_p50_ms=%.2f deliver_p99_ms=%.2f missed=%ld",
	       (double)b->accepted_win / win, (double)b->delivered_win / win, b->non201,
	       percentile_ms(&b->rtt, 50), percentile_ms(&b->rtt, 99),
	       percentile_ms(&b->deliver, 50), percentile_ms(&b->deliver, 99), missed);
	printf(" accepted=%ld delivered=%ld window_s=%g publishers=%ld channels=%ld streams=%ld"
	       " sent_total=%zu accepted_total=%ld received_total=%ld pub_errors=%ld reconnects=%ld"
	       " duplicates=%ld unknown_events=%ld other_events=%ld%s%s stream_failures=%ld"
	       " deliver_max_ms=%.2f",
	       b->accepted_win, b->delivered_win, win, o->publishers, o->channels, b->nsubs, b->nev,
	       b->accepted_total, b->received_total, b->pub_errors, b->reconnects, b->duplicates,
	       b->unknown_events, b->other_events, b->other_events ? " first_other=" : "",
	       b->other_events ? b->first_other : "", b->sub_failures,
	       b->deliver.n ? (double)b->deliver.v[b->deliver.n - 1] / 1e6 : -1.0);
	double wall_ms = win * 1000.0;
	printf(" cpu_pubload_pct=%.0f", (b->self_cpu1 - b->self_cpu0) / wall_ms * 100.0);
	for (int i = 0; i < o->ncpu; i++)
		printf(" cpu_%s_pct=%.0f", o->cpu[i].name,
		       (o->cpu[i].ms1 - o->cpu[i].ms0) / wall_ms * 100.0);
	printf("\n");
	bool bad = b->non201 > 0 || b->pub_errors > 0 || missed > 0 || b->duplicates > 0 ||
	           b->sub_failures > 0 || b->accepted_win == 0;
	return bad ? 1 : 0;
}
