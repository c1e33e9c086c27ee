/*
 * audit.h — the audit trail: one call per security-relevant action.
 *
 * audit_record() copies the record, writes it at once to the JSON-lines
 * log (msg "audit") and queues it for herald.audit_log, which a database
 * worker fills in batches (one INSERT per batch) off every request path.
 * Nothing is dropped silently: while the database is away rows wait in a
 * queue of audit_queue_max records; past that bound a record is written
 * to the log a second time as "audit record spilled" (warn) and counted in
 * herald_audit_spilled_total, and it never reaches the table.
 *
 * Kinds in use (detail members in brackets) — a new capability adds its
 * own with one audit_record() call and a line here and in sql/README.md:
 *   stream.open     accepted | rejected   [reason, status, channels, credential]
 *   auth.failure    rejected              [reason: missing, malformed, unknown,
 *                                          expired, revoked; route; credential]
 *   publish         rejected              [reason (problem code), status, detail]
 *   scope.violation rejected              [route, status]
 *   stream.close    closed                [reason: shutdown, database, retention]
 *                   (forced disconnects only; a client leaving is not audited)
 * Never put a token or ticket in any field.
 */
#ifndef HERALD_AUDIT_H
#define HERALD_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"

struct audit_record {
	const char *kind, *outcome;         /* required */
	int64_t session_id;                 /* 0 = none */
	const char *user_id, *tenant_id, *org_id, *channel; /* NULL = none */
	const char *remote_addr;            /* textual IP, NULL = none */
	const char *detail;                 /* a JSON object, NULL = {} */
};

void audit_start(const struct herald_config *cfg);
/* Copies r (all strings borrowed only for the call). Thread-safe. */
void audit_record(const struct audit_record *r);
/* Called on a timer: queues a batch write when rows wait. */
void audit_tick(void);
/* Records waiting, including a batch being written. */
size_t audit_backlog(void);
/* Final write attempt (bounded by the database timeouts); what still
 * cannot be written is spilled to the log. Call after the last record,
 * before the database workers stop. */
void audit_stop(void);

#endif
