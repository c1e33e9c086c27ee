/*
 * caps.c — connection caps (see caps.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caps.h"
#include "counts.h"
#include "db.h"
#include "log.h"
#include "util/buf.h"
#include "util/xmalloc.h"

/* Retry-After of a cap: streams end at their clients' pace, there is no
 * time to promise; a few seconds keeps retries from hammering. */
#define CAP_RETRY_AFTER_S 5

static const struct herald_config *cfg;
static struct counts node, addresses, tenants; /* checked here only */
static struct counts users;                    /* tenant \0 user \0: written */

void caps_start(const struct herald_config *c)
{
	cfg = c;
	counts_init(&node, false);
	counts_init(&addresses, false);
	counts_init(&tenants, false);
	counts_init(&users, true);
}

void caps_free(void)
{
	counts_free(&node);
	counts_free(&addresses);
	counts_free(&tenants);
	counts_free(&users);
}

static bool refuse(struct reply *r, const char *what)
{
	reply_problem(r, PROBLEM_TOO_MANY_CONNECTIONS, what);
	r->retry_after = CAP_RETRY_AFTER_S;
	return false;
}

/* A cap of 0 is none. */
static int64_t limit(int64_t cap)
{
	return cap > 0 ? cap : -1;
}

bool caps_reserve_address(const char *address, struct reply *r)
{
	if (!counts_reserve(&node, "", 0, limit(cfg->max_connections)))
		return refuse(r, "this node holds max_connections streams");
	if (!counts_reserve(&addresses, address, strlen(address),
	                    limit(config_live()->max_connections_per_ip))) {
		counts_add(&node, "", 0, -1);
		return refuse(r, "this address holds max_connections_per_ip streams");
	}
	return true;
}

void caps_release_address(const char *address)
{
	counts_add(&addresses, address, strlen(address), -1);
	counts_add(&node, "", 0, -1);
}

static void user_key(struct buf *k, const char *tenant, const char *user)
{
	buf_append(k, tenant, strlen(tenant) + 1);
	buf_append(k, user, strlen(user) + 1);
}

/* What is left of cap once others are counted: a limit for the local
 * count (-1: no cap; 0: none left). */
static int64_t room(int64_t cap, int64_t others)
{
	if (cap <= 0)
		return -1;
	return cap > others ? cap - others : 0;
}

bool caps_reserve_user(const struct rules *rules, const char *tenant, const char *user,
                       int64_t other_user, int64_t other_tenant, struct reply *r)
{
	struct tenant_limits tl = rules_limits(rules, tenant);
	int64_t user_cap = limits_pick(tl.max_connections_per_user, config_live()->max_connections_per_user);
	int64_t tenant_cap = limits_pick(tl.max_connections, config_live()->max_connections_per_tenant);
	struct buf k = BUF_INIT;
	user_key(&k, tenant, user);
	bool ok = counts_reserve(&users, k.data, k.len, room(user_cap, other_user));
	if (!ok) {
		refuse(r, "this user holds max_connections_per_user streams on all nodes");
	} else if (!counts_reserve(&tenants, tenant, strlen(tenant), room(tenant_cap, other_tenant))) {
		counts_add(&users, k.data, k.len, -1);
		ok = refuse(r, "this tenant holds its maximum of streams on all nodes");
	}
	buf_free(&k);
	return ok;
}

void caps_release_user(const char *tenant, const char *user)
{
	struct buf k = BUF_INIT;
	user_key(&k, tenant, user);
	counts_add(&users, k.data, k.len, -1);
	counts_add(&tenants, tenant, strlen(tenant), -1);
	buf_free(&k);
}

bool caps_count_tenants(const struct rules *rules)
{
	return config_live()->max_connections_per_tenant > 0 || rules_any_tenant_cap(rules);
}

bool caps_changed(void)
{
	return counts_changed(&users);
}

void caps_rewrite_all(void)
{
	struct count_batch b = counts_take(&users, true);
	counts_put_back(&users, &b);
	count_batch_free(&b);
}

bool caps_write(PGconn *conn, const char *node_id)
{
	struct count_batch b = counts_take(&users, false);
	if (!b.n) {
		count_batch_free(&b);
		return true;
	}
	const char **t = xcalloc(b.n, sizeof(*t)), **u = xcalloc(b.n, sizeof(*u));
	int64_t *n = xcalloc(b.n, sizeof(*n));
	for (size_t i = 0; i < b.n; i++) {
		const char *p[2];
		(void)count_key_parts(b.e[i], p, 2);
		t[i] = p[0];
		u[i] = p[1];
		n[i] = b.e[i]->count > 0 ? b.e[i]->count : 0;
	}
	struct buf at = BUF_INIT, au = BUF_INIT, an = BUF_INIT;
	db_append_text_array(&at, t, b.n);
	db_append_text_array(&au, u, b.n);
	db_append_int8_array(&an, n, b.n);
	const char *values[4] = {node_id, at.data, au.data, an.data};
	PGresult *r = conn ? PQexecParams(conn,
		"SELECT herald.node_streams_set($1, $2::text[], $3::text[], $4::int[])", 4, NULL,
		values, NULL, NULL, 0) : NULL;
	bool ok = r && PQresultStatus(r) == PGRES_TUPLES_OK;
	if (r && !ok)
		log_msg(LOG_WARN, "stream counts write failed", "error", PQresultErrorMessage(r), NULL);
	PQclear(r);
	if (!ok)
		counts_put_back(&users, &b);
	count_batch_free(&b);
	buf_free(&at);
	buf_free(&au);
	buf_free(&an);
	free(t);
	free(u);
	free(n);
	return ok;
}
