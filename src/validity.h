/*
 * validity.h — continuous session validity for open streams (SPEC §5.4).
 *
 * A stream's session is checked once at open; afterwards this module ends
 * the stream when the session stops being valid:
 *   - expiry: every hub tick compares each stream's expires_at with the
 *     wall clock (only when the earliest expiry is due), so a stream ends
 *     with herald.expired at most one tick (250 ms) late;
 *   - change: herald_control notifications ("sessions" with ids, or
 *     "recheck") name sessions whose row changed; their streams' tokens
 *     are re-resolved through herald.resolve_session() in one query on a
 *     database worker, and revoked, deleted or expired ones are ended
 *     (herald.revoked / herald.expired); a moved expires_at is taken over;
 *   - doubt: every session_recheck_interval, and right after the LISTEN
 *     connection is re-established (notifications may have been missed),
 *     every live session is re-resolved the same way, in batches.
 * Owns no streams; works through the registry and the stream API.
 */
#ifndef HERALD_VALIDITY_H
#define HERALD_VALIDITY_H

#include <stdint.h>
#include "config.h"

void validity_start(const struct herald_config *cfg);
/* Hub tick: due expiries, the periodic re-check. */
void validity_tick(void);
/* A herald_control notification payload (policy notices are handed to
 * policy.c, rules notices to rules.c). */
void validity_control(const char *payload);
/* Re-resolves every live session (after a LISTEN reconnect). */
void validity_recheck_all(void);
/* A new stream expires at expires_ms (wall clock). */
void validity_watch(int64_t expires_ms);

/* Counts session-change notices and full re-checks as they start. A
 * stream open reads it before its session lookup; if it moved by the time
 * the stream is tracked, a notice may have missed the stream, which must
 * then call validity_recheck_session(). */
uint64_t validity_generation(void);
void validity_recheck_session(int64_t session_id);

#endif
