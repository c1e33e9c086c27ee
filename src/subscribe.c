/*
 * subscribe.c — the stream-open flow (see subscribe.h).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "caps.h"
#include "channel.h"
#include "crypto.h"
#include "cursor.h"
#include "quota.h"
#include "log.h"
#include "policy.h"
#include "registry.h"
#include "replay.h"
#include "rules.h"
#include "session.h"
#include "sse.h"
#include "subscribe.h"
#include "util/buf.h"
#include "util/timeutil.h"
#include "validity.h"
#include "util/xmalloc.h"

static atomic_uint_fast64_t next_stream_id = 1;

/* Keeps the first syntax error; name, if given, is quoted after msg. */
static void set_syntax_error(struct subscribe_job *sj, const char *msg, const char *name)
{
	if (sj->syntax_error)
		return;
	struct buf b = BUF_INIT;
	buf_append_str(&b, msg);
	if (name) {
		buf_append_str(&b, " '");
		buf_append_str(&b, name);
		buf_append_char(&b, '\'');
	}
	sj->syntax_error = buf_steal(&b);
}

static char *opt_dup(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

void subscribe_init(struct subscribe_job *sj, const struct herald_config *cfg,
                    const struct target *t, const char *last_event_id_header)
{
	memset(sj, 0, sizeof(*sj));
	sj->cfg = cfg;
	size_t n = target_param_count(t, "channel");
	if (n == 0)
		set_syntax_error(sj, "at least one channel parameter is required", NULL);
	else if ((int64_t)n > config_live()->max_channels_per_stream)
		set_syntax_error(sj, "more channels than max_channels_per_stream", NULL);
	else
		sj->channels = xcalloc(n, sizeof(*sj->channels));
	for (size_t i = 0; sj->channels && i < t->nparam; i++) {
		const char *v = t->param[i].value;
		if (strcmp(t->param[i].key, "channel") != 0)
			continue;
		if (!channel_valid(v, strlen(v))) {
			set_syntax_error(sj, "invalid channel name", v);
			continue;
		}
		bool dup = false;
		for (size_t j = 0; j < sj->nch && !dup; j++)
			dup = strcmp(sj->channels[j], v) == 0;
		if (!dup)
			sj->channels[sj->nch++] = xstrdup(v);
	}
	stream_sort_channels(sj->channels, sj->nch);
	sj->tenant_hint = opt_dup(target_param(t, "tenant"));
	sj->org_hint = opt_dup(target_param(t, "org"));
	sj->cursor = opt_dup(last_event_id_header ? last_event_id_header
	                                          : target_param(t, "last_event_id"));
}

void subscribe_free(struct subscribe_job *sj)
{
	for (size_t i = 0; i < sj->nch; i++)
		free(sj->channels[i]);
	free(sj->channels);
	free(sj->syntax_error);
	free(sj->tenant_hint);
	free(sj->org_hint);
	free(sj->cursor);
	free(sj->remote);
	reply_free(&sj->reply);
	if (sj->stream)
		stream_unref(sj->stream);
	memset(sj, 0, sizeof(*sj));
}

static struct message *open_message(struct stream *s, const char *node_id,
                                    const struct identity *id)
{
	struct buf d = BUF_INIT, sid = BUF_INIT;
	buf_printf(&sid, "%s/%llu", node_id, (unsigned long long)s->id);
	buf_append_str(&d, "{\"stream\":");
	buf_append_json_str(&d, sid.data, sid.len);
	buf_append_str(&d, ",\"channels\":[");
	for (size_t i = 0; i < s->nch; i++) {
		if (i)
			buf_append_char(&d, ',');
		buf_append_json_str(&d, s->ch[i].name, strlen(s->ch[i].name));
	}
	buf_append_str(&d, "],\"user_id\":");
	buf_append_json_str(&d, id->user_id, strlen(id->user_id));
	buf_append_str(&d, ",\"expires_at\":");
	if (id->expires_at)
		buf_append_json_str(&d, id->expires_at, strlen(id->expires_at));
	else
		buf_append_str(&d, "null");
	buf_append_char(&d, '}');
	struct message *m = message_new_control("herald.open", d.data, false);
	buf_free(&d);
	buf_free(&sid);
	return m;
}

/* Which channels are presence channels (the stream is a member) and
 * which of those it may see presence on. */
static void mark_presence(struct stream *s, const struct rules *rules,
                          const struct session_heads *heads)
{
	for (size_t i = 0; rules && i < s->nch; i++) {
		s->ch[i].presence = rules_channel(rules, s->tenant_id, s->ch[i].name).presence;
		/* A rule that appeared since the lookup: not visible until a
		 * re-check says so. */
		s->ch[i].presence_visible = s->ch[i].presence && heads->second_permission &&
		                            heads->second_allowed[i];
	}
}

static void build_stream(struct subscribe_job *sj, const struct identity *id,
                         const char *org, const struct session_heads *heads,
                         const struct rules *rules)
{
	char digest[CURSOR_DIGEST_LEN + 1];
	int64_t start[CURSOR_MAX_CHANNELS];

	registry_digest(id->tenant_id, org, (const char *const *)sj->channels, sj->nch, digest);
	enum replay_plan_result plan = replay_plan(sj->cursor, heads->epoch, digest, heads->seq,
	                                           heads->trimmed, sj->nch, start);
	struct stream *s = stream_new(atomic_fetch_add(&next_stream_id, 1), sj->io, sj->conn,
	                              id->session_id, id->user_id, id->tenant_id, org,
	                              heads->epoch, digest, sj->channels, start, sj->nch);
	memcpy(s->token_hash, id->token_hash, sizeof(s->token_hash));
	s->queue_limit = (size_t)config_live()->stream_queue_bytes;
	mark_presence(s, rules, heads);
	if (sj->cred.source == CREDENTIAL_TICKET) {
		s->prove = true;
		memcpy(s->ticket_hash, sj->cred.hash, sizeof(s->ticket_hash));
		memcpy(s->proof_key, sj->proof_key, sizeof(s->proof_key));
	}
	if (!id->expires_at || !time_parse_rfc3339(id->expires_at, &s->expires_ms))
		s->expires_ms = INT64_MAX; /* never */
	struct buf retry = BUF_INIT;
	sse_append_retry(&retry, (unsigned long)sj->cfg->retry_ms);
	buf_append_char(&retry, '\n');
	struct message *m = message_new_raw(retry.data, retry.len);
	(void)stream_push(s, m);
	message_unref(m);
	buf_free(&retry);
	m = open_message(s, sj->cfg->node_id, id);
	(void)stream_push(s, m);
	message_unref(m);
	const char *reason = replay_plan_reason(plan);
	if (reason) {
		struct buf d = BUF_INIT;
		buf_append_str(&d, "{\"reason\":");
		buf_append_json_str(&d, reason, strlen(reason));
		buf_append_char(&d, '}');
		m = message_new_control("herald.reset", d.data, false);
		(void)stream_push(s, m);
		message_unref(m);
		buf_free(&d);
		log_msg(LOG_DEBUG, "stream reset", "reason", reason, NULL);
	}
	sj->stream = s;
}

void subscribe_audit(const struct subscribe_job *sj, const struct identity *id,
                     const char *outcome, const char *reason, unsigned status)
{
	struct buf d = BUF_INIT;
	buf_append_str(&d, "{\"reason\":");
	buf_append_json_str(&d, reason, strlen(reason));
	buf_printf(&d, ",\"status\":%u,\"route\":\"stream\",\"credential\":\"%s\"", status,
	           credential_source_name(sj->cred.source));
	if (sj->syntax_error && strcmp(reason, "invalid_request") == 0) {
		buf_append_str(&d, ",\"error\":");
		buf_append_json_str(&d, sj->syntax_error, strlen(sj->syntax_error));
	}
	buf_append_str(&d, ",\"channels\":[");
	for (size_t i = 0; i < sj->nch; i++) {
		if (i)
			buf_append_char(&d, ',');
		buf_append_json_str(&d, sj->channels[i], strlen(sj->channels[i]));
	}
	buf_append_str(&d, "]}");
	struct audit_record a = {
		.kind = "stream.open", .outcome = outcome, .remote_addr = sj->remote,
		.channel = sj->nch == 1 ? sj->channels[0] : NULL, .detail = d.data,
	};
	session_audit_who(&a, id);
	audit_record(&a);
	if (strcmp(reason, "scope_violation") == 0) {
		a.kind = "scope.violation";
		audit_record(&a);
	}
	buf_free(&d);
}

/*
 * A ticket may open a stream again only with a cursor one of its own
 * streams sent: the cursor's proof must be the ticket's. Also loads the
 * key that this ticket's new stream will prove its cursors with. false
 * when the key cannot be read.
 */
static bool check_ticket_proof(struct subscribe_job *sj, PGconn *conn)
{
	struct cursor c;
	char expect[CURSOR_PROOF_LEN + 1];
	if (!conn || !session_cursor_key(conn, sj->proof_key))
		return false;
	if (sj->cursor && cursor_parse(sj->cursor, strlen(sj->cursor), &c) && c.proof[0]) {
		cursor_prove(sj->proof_key, sj->cred.hash, sj->cursor, c.body_len, expect);
		sj->cred.ticket_reuse = crypto_equal(expect, c.proof, CURSOR_PROOF_LEN);
	}
	return true;
}

/* Presence permission is decided in the same lookup, for channels that a
 * rule may make presence channels. */
static void want_presence(struct subscribe_job *sj, const struct rules *rules,
                          struct session_heads *heads)
{
	for (size_t i = 0; rules && i < sj->nch && !sj->syntax_error; i++)
		if (rules_presence_possible(rules, sj->channels[i]))
			heads->second_permission = PERMISSION_PRESENCE;
}

static void subscribe_run(struct db_job *job, PGconn *conn)
{
	struct subscribe_job *sj = (struct subscribe_job *)job;
	struct identity id;
	int64_t seq[CURSOR_MAX_CHANNELS], trimmed[CURSOR_MAX_CHANNELS];
	bool feature[CURSOR_MAX_CHANNELS], allowed[CURSOR_MAX_CHANNELS];
	bool presence[CURSOR_MAX_CHANNELS];
	struct session_heads heads = {.permission = PERMISSION_SUBSCRIBE, .seq = seq,
	                              .trimmed = trimmed, .feature = feature, .allowed = allowed,
	                              .second_allowed = presence};
	size_t nch = sj->syntax_error ? 0 : sj->nch;
	const char *org;

	enum session_status st;
	sj->validity_gen = validity_generation();
	sj->policy_gen = policy_generation();
	struct rules *rules = rules_get(conn, -1);
	want_presence(sj, rules, &heads);
	heads.count_node = sj->cfg->node_id;
	heads.count_tenant = rules && caps_count_tenants(rules);
	if (sj->cred.source == CREDENTIAL_TICKET && !sj->cred.malformed &&
	    !check_ticket_proof(sj, conn)) {
		memset(&id, 0, sizeof(id));
		st = SESSION_UNAVAILABLE;
	} else {
		st = session_lookup(conn, &sj->cred, sj->org_hint, sj->channels, nch, &id, &heads);
	}
	if (st == SESSION_OK && rules) {
		rules_put(rules);
		rules = rules_get(conn, heads.rules_version);
	}
	if (st != SESSION_OK)
		session_reject(st, &sj->cred, &id, "stream", sj->remote, &sj->reply);
	else if (sj->syntax_error)
		reply_problem(&sj->reply, PROBLEM_INVALID_REQUEST, sj->syntax_error);
	else if (!rules)
		reply_problem(&sj->reply, PROBLEM_UNAVAILABLE, "the channel rules cannot be read");
	else if (session_scope(&id, sj->tenant_hint, sj->org_hint, &org, &sj->reply) &&
	         policy_decide(&id, org, sj->channels, sj->nch, &heads, "stream", sj->remote,
	                       &sj->reply) &&
	         quota_subscribe(rules, id.tenant_id, id.user_id, &sj->reply) &&
	         caps_reserve_user(rules, id.tenant_id, id.user_id, heads.other_user_streams,
	                           heads.other_tenant_streams, &sj->reply))
		build_stream(sj, &id, org, &heads, rules); /* the stream holds the reservation */
	rules_put(rules);
	if (sj->reply.status)
		subscribe_audit(sj, &id, "rejected", sj->reply.code, sj->reply.status);
	identity_free(&id);
	sj->done(sj);
}

void subscribe_prepare(struct subscribe_job *sj)
{
	sj->job.run = subscribe_run;
}
