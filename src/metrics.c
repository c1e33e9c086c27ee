/*
 * metrics.c — lock-free counters and histograms (see metrics.h).
 *
 * Names follow Prometheus conventions: herald_ prefix, _total for
 * counters, base units (_seconds, _bytes); process_* are the standard
 * process metrics.
 */
#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"

static const struct {
	const char *name, *help;
} counter_info[METRIC_COUNTER_COUNT] = {
	[METRIC_STREAMS_OPENED] = {"herald_streams_opened_total", "Streams opened (200 answered)."},
	[METRIC_EVENTS_PUBLISHED] = {"herald_events_published_total", "Events committed by this node's HTTP publishes."},
	[METRIC_EVENTS_RECEIVED] = {"herald_events_received_total", "Events the hub dispatched to local subscribers."},
	[METRIC_EVENTS_DELIVERED] = {"herald_events_delivered_total", "Event frames written to streams."},
	[METRIC_LISTEN_RECONNECTS] = {"herald_listen_reconnects_total", "Times the LISTEN connection was re-established."},
	[METRIC_AUDIT_WRITTEN] = {"herald_audit_written_total", "Audit records inserted into herald.audit_log."},
	[METRIC_AUDIT_SPILLED] = {"herald_audit_spilled_total", "Audit records written only to the log because the queue was full."},
	[METRIC_AUDIT_WRITE_FAILURES] = {"herald_audit_write_failures_total", "Failed audit batch inserts (rows kept for retry)."},
	[METRIC_PRESENCE_WRITES] = {"herald_presence_writes_total", "Statements writing this node's presence members (each covers every member changed since the last)."},
	[METRIC_PRESENCE_EVENTS] = {"herald_presence_events_total", "herald.presence events queued to streams allowed to see them."},
};

#define MAX_LABELS 20
static const struct {
	const char *name, *help, *label;
	const char *values[MAX_LABELS];
} family_info[METRIC_FAMILY_COUNT] = {
	[METRIC_STREAMS_CLOSED] = {"herald_streams_closed_total", "Streams ended, by reason.", "reason",
		{"client", "shutdown", "database", "retention", "revoked", "expired", "forbidden",
		 "overflow"}},
	[METRIC_AUTH_FAILURES] = {"herald_auth_failures_total", "Failed authentications, by reason.", "reason",
		{"missing", "malformed", "unknown", "expired", "revoked"}},
	[METRIC_HTTP_ERRORS] = {"herald_http_errors_total", "Error responses, by problem code.", "code",
		{"invalid_request", "unauthenticated", "permission_denied", "scope_violation",
		 "feature_disabled", "not_found", "method_not_allowed", "idempotency_conflict",
		 "payload_too_large", "unsupported_media_type", "schema_violation",
		 "cross_scope_reference", "rate_limited", "too_many_connections", "unavailable",
		 "draining"}},
};

#define NBUCKETS 14
static const struct {
	const char *name, *help;
	double bounds[NBUCKETS];
} histogram_info[METRIC_HISTOGRAM_COUNT] = {
	[METRIC_FANOUT_SECONDS] = {"herald_fanout_latency_seconds",
		"From the hub receiving an event to its frame being written to a stream.",
		{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5}},
	[METRIC_PUBLISH_SECONDS] = {"herald_publish_latency_seconds",
		"From a publish request to its commit.",
		{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}},
	[METRIC_NOTIFY_LAG_SECONDS] = {"herald_notify_lag_seconds",
		"From an event's published_at (database clock) to the hub receiving it.",
		{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}},
};

static atomic_uint_fast64_t counters[METRIC_COUNTER_COUNT];
static atomic_uint_fast64_t families[METRIC_FAMILY_COUNT][MAX_LABELS + 1]; /* + other */
static struct {
	atomic_uint_fast64_t buckets[NBUCKETS + 1]; /* + +Inf */
	atomic_uint_fast64_t sum_ns;
} histograms[METRIC_HISTOGRAM_COUNT];

void metrics_inc(enum metrics_counter c)
{
	atomic_fetch_add_explicit(&counters[c], 1, memory_order_relaxed);
}

uint64_t metrics_value(enum metrics_counter c)
{
	return atomic_load_explicit(&counters[c], memory_order_relaxed);
}

void metrics_count(enum metrics_family f, const char *label)
{
	size_t i = 0;
	while (i < MAX_LABELS && family_info[f].values[i] && strcmp(family_info[f].values[i], label) != 0)
		i++;
	if (i < MAX_LABELS && !family_info[f].values[i])
		i = MAX_LABELS; /* other */
	atomic_fetch_add_explicit(&families[f][i], 1, memory_order_relaxed);
}

void metrics_observe(enum metrics_histogram h, double seconds)
{
	size_t i = 0;
	if (seconds < 0)
		seconds = 0;
	while (i < NBUCKETS && seconds > histogram_info[h].bounds[i])
		i++;
	atomic_fetch_add_explicit(&histograms[h].buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&histograms[h].sum_ns, (uint_fast64_t)(seconds * 1e9),
	                          memory_order_relaxed);
}

static void header(struct buf *b, const char *name, const char *help, const char *type)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static uint64_t load(atomic_uint_fast64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static void render_families(struct buf *b)
{
	for (int f = 0; f < METRIC_FAMILY_COUNT; f++) {
		header(b, family_info[f].name, family_info[f].help, "counter");
		for (size_t i = 0; i <= MAX_LABELS; i++) {
			const char *v = i < MAX_LABELS ? family_info[f].values[i] : "other";
			if (!v)
				continue;
			buf_printf(b, "%s{%s=\"%s\"} %llu\n", family_info[f].name, family_info[f].label, v,
			           (unsigned long long)load(&families[f][i]));
		}
	}
}

static void render_histograms(struct buf *b)
{
	for (int h = 0; h < METRIC_HISTOGRAM_COUNT; h++) {
		const char *name = histogram_info[h].name;
		uint64_t cumulative = 0;
		header(b, name, histogram_info[h].help, "histogram");
		for (size_t i = 0; i <= NBUCKETS; i++) {
			cumulative += load(&histograms[h].buckets[i]);
			if (i < NBUCKETS)
				buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, histogram_info[h].bounds[i],
				           (unsigned long long)cumulative);
			else
				buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name,
				           (unsigned long long)cumulative);
		}
		buf_printf(b, "%s_sum %.9f\n%s_count %llu\n", name,
		           (double)load(&histograms[h].sum_ns) / 1e9, name, (unsigned long long)cumulative);
	}
}

static long resident_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * sysconf(_SC_PAGESIZE);
}

static long open_fds(void)
{
	long n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory stream itself */
}

static void gauge(struct buf *b, const char *name, const char *help, double v)
{
	header(b, name, help, "gauge");
	buf_printf(b, "%s %.17g\n", name, v);
}

void metrics_render(struct buf *b, const struct metrics_gauges *g)
{
	gauge(b, "herald_ready", "1 while the node is ready (database and LISTEN up), else 0.", g->ready ? 1 : 0);
	gauge(b, "herald_streams_open", "Streams open on this node.", (double)g->streams_open);
	gauge(b, "herald_db_queue_depth", "Database jobs waiting for a worker.", g->db_queue);
	gauge(b, "herald_audit_backlog", "Audit records waiting to be written.", (double)g->audit_backlog);
	for (int c = 0; c < METRIC_COUNTER_COUNT; c++) {
		header(b, counter_info[c].name, counter_info[c].help, "counter");
		buf_printf(b, "%s %llu\n", counter_info[c].name, (unsigned long long)load(&counters[c]));
	}
	render_families(b);
	render_histograms(b);
	gauge(b, "process_resident_memory_bytes", "Resident memory size in bytes.",
	      (double)resident_bytes());
	gauge(b, "process_open_fds", "Number of open file descriptors.", (double)open_fds());
}
