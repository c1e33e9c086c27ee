/*
 * quota.c — request rates (see quota.h).
 */
#include <stdio.h>
#include <string.h>

#include "quota.h"
#include "ratelimit.h"
#include "util/buf.h"
#include "util/timeutil.h"

static struct ratelimit sessions, tenants, users;

void quota_start(void)
{
	ratelimit_init(&sessions);
	ratelimit_init(&tenants);
	ratelimit_init(&users);
}

void quota_stop(void)
{
	ratelimit_free(&sessions);
	ratelimit_free(&tenants);
	ratelimit_free(&users);
}

static bool refuse(struct reply *r, int64_t retry_ms, const char *what)
{
	char detail[96];
	snprintf(detail, sizeof(detail), "%s; retry in %lld ms", what, (long long)retry_ms);
	reply_problem(r, PROBLEM_RATE_LIMITED, detail);
	r->retry_after = ratelimit_retry_after(retry_ms);
	return false;
}

bool quota_publish(const struct rules *rules, int64_t session_id, const char *tenant,
                    struct reply *r)
{
	struct tenant_limits tl = rules_limits(rules, tenant);
	int64_t now = time_mono_ms(), retry;
	if (!ratelimit_take(&sessions, &session_id, sizeof(session_id),
	                    limits_pick(tl.publish_per_second, config_live()->publish_per_second), 1000, now, &retry))
		return refuse(r, retry, "publish_per_second reached for this session");
	if (!ratelimit_take(&tenants, tenant, strlen(tenant),
	                    limits_pick(tl.tenant_publish_per_second, config_live()->tenant_publish_per_second), 1000,
	                    now, &retry))
		return refuse(r, retry, "tenant_publish_per_second reached for this tenant");
	return true;
}

bool quota_subscribe(const struct rules *rules, const char *tenant, const char *user,
                      struct reply *r)
{
	struct tenant_limits tl = rules_limits(rules, tenant);
	struct buf key = BUF_INIT;
	buf_append(&key, tenant, strlen(tenant) + 1);
	buf_append_str(&key, user);
	int64_t retry;
	bool ok = ratelimit_take(&users, key.data, key.len,
	                         limits_pick(tl.subscribe_per_minute, config_live()->subscribe_per_minute), 60000,
	                         time_mono_ms(), &retry);
	buf_free(&key);
	return ok || refuse(r, retry, "subscribe_per_minute reached for this user");
}
