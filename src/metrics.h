/*
 * metrics.h — counters and histograms for /metrics (Prometheus text
 * format 0.0.4).
 *
 * Every update is a relaxed atomic add: no lock on any path, so the
 * fan-out path can count each delivery. Owns the numbers and their
 * rendering only; gauges that belong to other modules (open streams,
 * queue depths) are passed in at scrape time.
 */
#ifndef HERALD_METRICS_H
#define HERALD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"

enum metrics_counter {
	METRIC_STREAMS_OPENED,
	METRIC_EVENTS_PUBLISHED,   /* committed by this node's HTTP publishes */
	METRIC_EVENTS_RECEIVED,    /* dispatched by the hub (NOTIFY or log) */
	METRIC_EVENTS_DELIVERED,   /* event frames written to streams */
	METRIC_LISTEN_RECONNECTS,
	METRIC_AUDIT_WRITTEN,
	METRIC_AUDIT_SPILLED,
	METRIC_AUDIT_WRITE_FAILURES,
	METRIC_PRESENCE_WRITES,    /* herald.presence_set() statements */
	METRIC_PRESENCE_EVENTS,    /* herald.presence events queued to streams */
	METRIC_COUNTER_COUNT
};

/* Labelled families; labels outside a family's list count as "other". */
enum metrics_family {
	METRIC_STREAMS_CLOSED, /* reason: client, shutdown, database, retention, revoked, expired */
	METRIC_AUTH_FAILURES,  /* reason: missing, malformed, unknown, expired, revoked */
	METRIC_HTTP_ERRORS,    /* code: the problem codes of SPEC §7 */
	METRIC_FAMILY_COUNT
};

enum metrics_histogram {
	METRIC_FANOUT_SECONDS,  /* event received by the hub -> written to the socket */
	METRIC_PUBLISH_SECONDS, /* publish request -> commit */
	METRIC_NOTIFY_LAG_SECONDS, /* published_at (database clock) -> received */
	METRIC_HISTOGRAM_COUNT
};

struct metrics_gauges {
	size_t streams_open;
	unsigned db_queue;
	size_t audit_backlog;
	bool ready;
};

void metrics_inc(enum metrics_counter c);
void metrics_count(enum metrics_family f, const char *label);
void metrics_observe(enum metrics_histogram h, double seconds);
uint64_t metrics_value(enum metrics_counter c);

/* Appends the whole exposition, including process_resident_memory_bytes
 * and process_open_fds read from /proc. */
void metrics_render(struct buf *b, const struct metrics_gauges *g);

#endif
