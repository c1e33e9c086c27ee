/*
 * quota.h — request rates per session, user and tenant (SPEC §5.6).
 *
 * Owns this node's token buckets: publishes per session
 * (publish_per_second) and per tenant (tenant_publish_per_second), stream
 * opens per user (subscribe_per_minute). Each limit is the tenant's
 * herald.limits value when it sets one, else the config value in force
 * (config_live(), so SIGHUP changes it); 0 means none. Buckets are per
 * node.
 */
#ifndef HERALD_QUOTA_H
#define HERALD_QUOTA_H

#include <stdbool.h>
#include <stdint.h>
#include "config.h"
#include "reply.h"
#include "rules.h"

void quota_start(void);
void quota_stop(void);

/* true when the session may publish now; else false with 429
 * rate_limited and its Retry-After prepared in r. */
bool quota_publish(const struct rules *rules, int64_t session_id, const char *tenant,
                    struct reply *r);
/* The same for a user opening a stream. */
bool quota_subscribe(const struct rules *rules, const char *tenant, const char *user,
                      struct reply *r);

#endif
