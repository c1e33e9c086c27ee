/*
 * policy.h — authorization: feature and permission decisions at subscribe
 * and publish, and their live re-check when the policy changes.
 *
 * Decisions come only from herald.feature_enabled() and herald.authorize()
 * (evaluated in the session lookup, session.c) plus the session's own
 * feature list; this module applies them in the order of SPEC §2 (every
 * channel is checked at one stage before the next stage), answers 403 with
 * the failing channel named, and audits the refusal. Nothing is cached: a
 * decision is always the database's answer at that moment. When grants,
 * role members or features change (herald_control "policy" notices), or
 * the LISTEN connection comes back, the live streams of the tenant are
 * decided again in batched queries, and a stream that lost a channel ends
 * with herald.forbidden naming it.
 */
#ifndef HERALD_POLICY_H
#define HERALD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "reply.h"
#include "session.h"

#define PERMISSION_SUBSCRIBE "realtime.subscribe"
#define PERMISSION_PUBLISH "realtime.publish"
#define PERMISSION_PRESENCE "realtime.presence"

/* The feature stage, then the permission stage, for channels (n, as the
 * lookup saw them). true when every channel passes; else prepares the 403
 * in r and writes the authz.denied audit row (route names the endpoint). */
bool policy_decide(const struct identity *id, const char *org, char *const *channels,
                   size_t n, const struct session_heads *h, const char *route,
                   const char *remote, struct reply *r);

/* Is the channel's feature in a session feature list (a text[] literal;
 * NULL = no list, every feature)? */
bool policy_feature_listed(const char *list, const char *channel);
/* Ends s with herald.forbidden naming channel ch (registry lock held);
 * appends s to the wake list when it must be resumed after unlocking. */
struct stream;
void policy_forbid(struct stream *s, size_t ch, struct stream ***wake, size_t *n, size_t *cap);

/* A policy notice: re-decide the live streams of tenant (NULL: all). */
void policy_changed(const char *tenant);
/* Counts re-checks as they start. A stream open reads it before its
 * decision; if it moved by the time the stream is tracked, a re-check may
 * have missed the stream, which must then call policy_recheck_stream(). */
uint64_t policy_generation(void);
void policy_recheck_stream(uint64_t stream_id);

/* Hub tick: retries a re-check that could not reach the database. */
void policy_tick(void);

#endif
