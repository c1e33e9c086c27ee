/*
 * rules.h — channel rules and event schemas, as this node knows them.
 *
 * Owns the node's copy of herald.channel_rules, herald.event_schemas and
 * herald.limits: the tables read in one statement together with herald.meta's
 * rules_version, every schema compiled once (schema.c). A copy is an
 * immutable, reference-counted snapshot, so a publish keeps the one it
 * started with while a newer one replaces it. The copy is renewed when a
 * publish's session lookup reports another rules_version (so a change
 * applies to the next publish on every node, NOTIFY or not) and when a
 * herald_control "rules" notification arrives.
 */
#ifndef HERALD_RULES_H
#define HERALD_RULES_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

struct rules;
struct schema;

/* The attributes of the rule that applies to a channel; zero / false
 * stand for "not set: the config default". */
struct channel_rule {
	bool presence;
	int64_t history_ms;
	int64_t max_bytes;
	bool require_schema;
};

/* The current snapshot, with a reference the caller gives back with
 * rules_put(). It is reloaded through conn first when it was never
 * loaded, when a notification said it changed, or when version (the
 * database's rules_version; -1: unknown) differs from its own. NULL when
 * a needed reload failed. */
struct rules *rules_get(PGconn *conn, int64_t version);
void rules_put(struct rules *r);
/* A herald_control "rules" notification: the next rules_get() reloads. */
void rules_changed(void);
/* Drops the node's snapshot (at exit). */
void rules_shutdown(void);

/* The rule for channel in tenant (SPEC §4 precedence: the tenant's own
 * rows first, then the most specific pattern); all defaults when none. */
struct channel_rule rules_channel(const struct rules *r, const char *tenant,
                                  const char *channel);
/* A tenant's herald.limits row; -1 where it says NULL (or has no row):
 * the config value applies. 0 means no limit. */
struct tenant_limits {
	int64_t max_connections, max_connections_per_user, publish_per_second,
		subscribe_per_minute, tenant_publish_per_second;
};
struct tenant_limits rules_limits(const struct rules *r, const char *tenant);
/* A tenant_limits value when the row sets it, else the config's. */
static inline int64_t limits_pick(int64_t tenant_value, int64_t config_value)
{
	return tenant_value >= 0 ? tenant_value : config_value;
}
/* Does some tenant's row set a connection cap (max_connections > 0)? */
bool rules_any_tenant_cap(const struct rules *r);

/* Could channel be a presence channel in some tenant (a rule with
 * presence on matches it)? Asked before the tenant is known. */
bool rules_presence_possible(const struct rules *r, const char *channel);
/* The schema for events of type on channel in tenant, by the same
 * precedence; NULL when none applies. When one applies but could not be
 * compiled, returns NULL with *broken set to why (else *broken = NULL). */
const struct schema *rules_schema(const struct rules *r, const char *tenant,
                                  const char *channel, const char *type,
                                  const char **broken);

#endif
