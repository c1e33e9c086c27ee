/*
 * policy.c — authorization decisions and their live re-check (see
 * policy.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "channel.h"
#include "db.h"
#include "log.h"
#include "policy.h"
#include "registry.h"
#include "util/buf.h"
#include "util/map.h"
#include "util/xmalloc.h"

#define RECHECK_BATCH 1000

static atomic_bool recheck_pending;
static atomic_uint_fast64_t generation;
/* Tenants with a re-check queued but not started: one job serves every
 * notice that arrives before it starts, since it reads the policy then. */
static pthread_mutex_t queued_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct map queued_tenants; /* tenant -> (void *)1; "" = every tenant */
static bool queued_init;

/* Is feature (n bytes) in the session's list, a PostgreSQL text[] literal
 * such as {chat,orders}? No list means every feature. */
static bool in_session_list(const char *list, const char *feature, size_t n)
{
	if (!list)
		return true;
	for (const char *p = list + (*list == '{'); *p && *p != '}';) {
		size_t k = strcspn(p, ",}");
		const char *e = p;
		size_t ek = k;
		if (ek >= 2 && e[0] == '"') { /* quoted only if it had odd bytes */
			e++;
			ek -= 2;
		}
		if (ek == n && memcmp(e, feature, n) == 0)
			return true;
		p += k + (p[k] == ',');
	}
	return false;
}

bool policy_feature_listed(const char *list, const char *channel)
{
	return in_session_list(list, channel, channel_feature_len(channel));
}

void policy_forbid(struct stream *s, size_t ch, struct stream ***wake, size_t *n, size_t *cap)
{
	struct buf d = BUF_INIT;
	buf_append_str(&d, "{\"channel\":");
	buf_append_json_str(&d, s->ch[ch].name, strlen(s->ch[ch].name));
	buf_append_str(&d, ",\"reason\":\"permission withdrawn\"}");
	struct message *m = message_new_control("herald.forbidden", d.data, true);
	if (stream_close(s, m, STREAM_END_FORBIDDEN) == STREAM_DELIVER_WAKE) {
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 16;
			*wake = xrealloc(*wake, *cap * sizeof(**wake));
		}
		(*wake)[(*n)++] = s;
	}
	message_unref(m);
	buf_free(&d);
}

static void deny(const struct identity *id, const char *org, const char *channel,
                 enum problem p, const char *route, const char *remote, struct reply *r)
{
	struct buf d = BUF_INIT, msg = BUF_INIT;
	bool feature = p == PROBLEM_FEATURE_DISABLED;
	buf_printf(&msg, "%s for channel %s", feature ? "feature disabled" : "permission denied",
	           channel);
	reply_problem(r, p, msg.data);
	buf_printf(&d, "{\"reason\":\"%s\",\"route\":\"%s\"}", problem_code(p), route);
	struct audit_record a = {
		.kind = "authz.denied", .outcome = "rejected", .channel = channel,
		.remote_addr = remote, .detail = d.data,
	};
	session_audit_who(&a, id);
	a.org_id = org;
	audit_record(&a);
	buf_free(&d);
	buf_free(&msg);
}

bool policy_decide(const struct identity *id, const char *org, char *const *channels,
                   size_t n, const struct session_heads *h, const char *route,
                   const char *remote, struct reply *r)
{
	for (size_t i = 0; i < n; i++) {
		size_t flen = channel_feature_len(channels[i]);
		if (!h->feature[i] || !in_session_list(id->features, channels[i], flen)) {
			deny(id, org, channels[i], PROBLEM_FEATURE_DISABLED, route, remote, r);
			return false;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!h->allowed[i]) {
			deny(id, org, channels[i], PROBLEM_PERMISSION_DENIED, route, remote, r);
			return false;
		}
	}
	return true;
}

/* ---- live re-check -------------------------------------------------------- */

/* One re-check: the distinct (session, org, channel) of the live streams
 * concerned — streams sharing one share its answer. */
struct recheck {
	struct db_job job;
	char *tenant;       /* NULL: all */
	uint64_t stream_id; /* non-zero: only this stream */
	struct map keys; /* key -> index + 1 */
	char **key;
	size_t *keylen;
	char **tenants, **orgs, **channels, **sessions;
	char **presence; /* "t": decide realtime.presence too (a presence channel) */
	bool *allowed, *visible;
	size_t n, cap;
};

static size_t make_key(char *out, int64_t session, const char *org, const char *channel)
{
	char sid[24];
	int k = snprintf(sid, sizeof(sid), "%lld", (long long)session);
	size_t a = (size_t)k + 1, b = strlen(org) + 1, c = strlen(channel);
	if (out) {
		memcpy(out, sid, a);
		memcpy(out + a, org, b);
		memcpy(out + a + b, channel, c);
	}
	return a + b + c;
}

static void add_tuple(struct recheck *rc, const struct stream *s, size_t ch)
{
	size_t len = make_key(NULL, s->session_id, s->org_id, s->ch[ch].name);
	char *key = xmalloc(len + 1);
	make_key(key, s->session_id, s->org_id, s->ch[ch].name);
	uintptr_t at = (uintptr_t)map_get(&rc->keys, key, len);
	if (at) {
		/* Another stream of the session on the channel: one decision
		 * serves both, presence included if either is a member. */
		if (s->ch[ch].presence)
			rc->presence[at - 1] = "t";
		free(key);
		return;
	}
	if (rc->n == rc->cap) {
		rc->cap = rc->cap ? rc->cap * 2 : 16;
		rc->key = xrealloc(rc->key, rc->cap * sizeof(*rc->key));
		rc->keylen = xrealloc(rc->keylen, rc->cap * sizeof(*rc->keylen));
		rc->tenants = xrealloc(rc->tenants, rc->cap * sizeof(*rc->tenants));
		rc->orgs = xrealloc(rc->orgs, rc->cap * sizeof(*rc->orgs));
		rc->channels = xrealloc(rc->channels, rc->cap * sizeof(*rc->channels));
		rc->sessions = xrealloc(rc->sessions, rc->cap * sizeof(*rc->sessions));
		rc->presence = xrealloc(rc->presence, rc->cap * sizeof(*rc->presence));
	}
	rc->key[rc->n] = key;
	rc->keylen[rc->n] = len;
	rc->tenants[rc->n] = xstrdup(s->tenant_id);
	rc->orgs[rc->n] = xstrdup(s->org_id);
	rc->channels[rc->n] = xstrdup(s->ch[ch].name);
	rc->sessions[rc->n] = xstrdup(key); /* the key starts with the session id */
	rc->presence[rc->n] = s->ch[ch].presence ? "t" : "f";
	rc->n++;
	map_put(&rc->keys, key, len, (void *)(uintptr_t)rc->n);
}

static bool tenant_matches(const struct recheck *rc, const struct stream *s)
{
	if (rc->stream_id)
		return s->id == rc->stream_id;
	return !rc->tenant || strcmp(rc->tenant, s->tenant_id) == 0;
}

static void collect_stream(struct stream *s, void *arg)
{
	struct recheck *rc = arg;
	if (!tenant_matches(rc, s))
		return;
	for (size_t i = 0; i < s->nch; i++)
		add_tuple(rc, s, i);
}

static void recheck_free(struct recheck *rc)
{
	for (size_t i = 0; i < rc->n; i++) {
		free(rc->key[i]);
		free(rc->tenants[i]);
		free(rc->orgs[i]);
		free(rc->channels[i]);
		free(rc->sessions[i]);
	}
	free(rc->key);
	free(rc->keylen);
	free(rc->tenants);
	free(rc->orgs);
	free(rc->channels);
	free(rc->sessions);
	free(rc->presence);
	free(rc->allowed);
	free(rc->visible);
	map_free(&rc->keys);
	free(rc->tenant);
	free(rc);
}

/* Per tuple: may it still subscribe; on a presence channel, may it still
 * see presence. */
static const char decide_sql[] =
	"SELECT coalesce(herald.feature_enabled(t.ten, t.org, split_part(t.ch, ':', 1))"
	" AND herald.authorize(t.sid, t.org, '" PERMISSION_SUBSCRIBE "', t.ch), false),"
	" t.pres AND coalesce(herald.authorize(t.sid, t.org, '" PERMISSION_PRESENCE "', t.ch), false)"
	" FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bool[]) WITH ORDINALITY"
	" AS t(ten, sid, org, ch, pres, i) ORDER BY t.i";

static bool decide_batch(PGconn *conn, struct recheck *rc, size_t off, size_t n)
{
	struct buf ten = BUF_INIT, sid = BUF_INIT, org = BUF_INIT, ch = BUF_INIT, pres = BUF_INIT;
	db_append_text_array(&ten, (const char *const *)rc->tenants + off, n);
	db_append_text_array(&sid, (const char *const *)rc->sessions + off, n);
	db_append_text_array(&org, (const char *const *)rc->orgs + off, n);
	db_append_text_array(&ch, (const char *const *)rc->channels + off, n);
	db_append_text_array(&pres, (const char *const *)rc->presence + off, n);
	const char *values[5] = {ten.data, sid.data, org.data, ch.data, pres.data};
	PGresult *r = PQexecParams(conn, decide_sql, 5, NULL, values, NULL, NULL, 0);
	bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == (int)n;
	if (!ok)
		log_msg(LOG_WARN, "policy re-check failed", "error", PQresultErrorMessage(r), NULL);
	for (size_t i = 0; ok && i < n; i++) {
		rc->allowed[off + i] = strcmp(PQgetvalue(r, (int)i, 0), "t") == 0;
		rc->visible[off + i] = strcmp(PQgetvalue(r, (int)i, 1), "t") == 0;
	}
	PQclear(r);
	buf_free(&pres);
	buf_free(&ten);
	buf_free(&sid);
	buf_free(&org);
	buf_free(&ch);
	return ok;
}

struct apply {
	struct recheck *rc;
	struct stream **wake;
	size_t n, cap;
};

static void apply_stream(struct stream *s, void *arg)
{
	struct apply *ap = arg;
	if (!tenant_matches(ap->rc, s))
		return;
	for (size_t i = 0; i < s->nch; i++) {
		char stack[512];
		size_t len = make_key(NULL, s->session_id, s->org_id, s->ch[i].name);
		char *key = len < sizeof(stack) ? stack : xmalloc(len + 1);
		make_key(key, s->session_id, s->org_id, s->ch[i].name);
		uintptr_t at = (uintptr_t)map_get(&ap->rc->keys, key, len);
		if (key != stack)
			free(key);
		if (!at)
			continue; /* opened since the collection */
		s->ch[i].presence_visible = ap->rc->visible[at - 1];
		if (ap->rc->allowed[at - 1])
			continue;
		policy_forbid(s, i, &ap->wake, &ap->n, &ap->cap);
		return;
	}
}

static void unqueue(const struct recheck *rc)
{
	if (rc->stream_id)
		return;
	const char *key = rc->tenant ? rc->tenant : "";
	pthread_mutex_lock(&queued_mutex);
	free(map_del(&queued_tenants, key, strlen(key)));
	pthread_mutex_unlock(&queued_mutex);
}

static void recheck_run(struct db_job *job, PGconn *conn)
{
	struct recheck *rc = (struct recheck *)job;
	unqueue(rc);
	/* Before collecting: a stream tracked after this sees the change (see
	 * policy_generation). */
	atomic_fetch_add(&generation, 1);
	registry_lock();
	registry_each_stream(collect_stream, rc);
	registry_unlock();
	bool ok = conn != NULL;
	rc->allowed = xcalloc(rc->n ? rc->n : 1, sizeof(*rc->allowed));
	rc->visible = xcalloc(rc->n ? rc->n : 1, sizeof(*rc->visible));
	for (size_t off = 0; ok && off < rc->n; off += RECHECK_BATCH) {
		size_t k = rc->n - off < RECHECK_BATCH ? rc->n - off : RECHECK_BATCH;
		if (decide_batch(conn, rc, off, k))
			continue;
		/* A replaced authorize() raising for one tuple must not keep the
		 * batch's other streams undecided: decide one by one, and a tuple
		 * that still fails is refused (allowed stays false). */
		for (size_t i = off; ok && i < off + k; i++)
			if (!decide_batch(conn, rc, i, 1))
				ok = !db_conn_broken(conn);
	}
	if (!ok) {
		atomic_store(&recheck_pending, true);
	} else if (rc->n) {
		struct apply ap = {rc, NULL, 0, 0};
		registry_lock();
		registry_each_stream(apply_stream, &ap);
		registry_unlock();
		for (size_t i = 0; i < ap.n; i++)
			stream_resume(ap.wake[i]);
		free(ap.wake);
	}
	recheck_free(rc);
}

static void submit(const char *tenant, uint64_t stream_id)
{
	struct recheck *rc = xcalloc(1, sizeof(*rc));
	rc->job.run = recheck_run;
	rc->tenant = tenant ? xstrdup(tenant) : NULL;
	rc->stream_id = stream_id;
	map_init(&rc->keys);
	db_submit(&rc->job);
}

void policy_changed(const char *tenant)
{
	const char *key = tenant ? tenant : "";
	pthread_mutex_lock(&queued_mutex);
	if (!queued_init) {
		map_init(&queued_tenants);
		queued_init = true;
	}
	bool already = map_get(&queued_tenants, key, strlen(key)) != NULL;
	char *owned = already ? NULL : xstrdup(key);
	if (owned)
		map_put(&queued_tenants, owned, strlen(owned), owned);
	pthread_mutex_unlock(&queued_mutex);
	if (!already)
		submit(tenant, 0);
}

uint64_t policy_generation(void)
{
	return atomic_load(&generation);
}

void policy_recheck_stream(uint64_t stream_id)
{
	submit(NULL, stream_id);
}

void policy_tick(void)
{
	if (atomic_exchange(&recheck_pending, false))
		policy_changed(NULL);
}
