/*
 * http.c — the libmicrohttpd daemon and the routes of SPEC §2.
 *
 * Shape (DESIGN §1-2): an epoll thread pool with suspend/resume. A request
 * that needs the database is suspended before its job is queued and
 * resumed by the worker when the reply is ready, so these threads never
 * wait on PostgreSQL. The raw request target is captured by the URI log
 * callback and parsed by target.c, because libmicrohttpd decodes paths
 * before routing. A stream's body is produced by stream_read(), which
 * suspends the connection when nothing is queued.
 * This is the only libmicrohttpd includer.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "audit.h"
#include "caps.h"
#include "embedded.h"
#include "http.h"
#include "hub.h"
#include "log.h"
#include "metrics.h"
#include "netmask.h"
#include "db.h"
#include "policy.h"
#include "presence.h"
#include "publish.h"
#include "registry.h"
#include "replay.h"
#include "reply.h"
#include "session.h"
#include "subscribe.h"
#include "target.h"
#include "tls.h"
#include "ticket.h"
#include "util/buf.h"
#include "util/timeutil.h"
#include "util/utf8.h"
#include "validity.h"
#include "util/xmalloc.h"

#define STREAM_BLOCK_SIZE 2048
#define CONNECTION_MEMORY 8192
#define IDLE_TIMEOUT_S 60
#define CAP_HEADROOM 16
#define DROP_MAX (1u << 20)

enum route { ROUTE_NONE, ROUTE_HEALTHZ, ROUTE_READYZ, ROUTE_METRICS, ROUTE_STREAM,
             ROUTE_PUBLISH, ROUTE_PRESENCE, ROUTE_TICKETS, ROUTE_ME, ROUTE_DEMO };

enum phase { PHASE_NEW, PHASE_BODY, PHASE_WAITING, PHASE_READY };

struct request {
	struct MHD_Connection *conn;
	char *raw_target;
	char remote[INET6_ADDRSTRLEN];
	bool metrics_allowed;
	enum phase phase;
	enum route route;
	struct target target;
	bool target_ok;
	struct reply reply;
	union {
		struct subscribe_job sub;
		struct publish_job pub;
		struct ticket_job tkt;
		struct presence_job pres;
		struct me_job {
			struct db_job job;
			struct credential cred;
			struct reply reply;
		} me;
	} u;
	struct stream *stream; /* one reference while the connection lives */
	bool address_reserved; /* a stream attempt counted in caps.h */
	bool close_after;      /* the body was not read: close after answering */
	size_t dropped;        /* bytes of an oversized chunked body read and dropped */
};

static const struct herald_config *cfg;
static struct netmask *metrics_allow;
static size_t metrics_allow_n;
static struct MHD_Daemon *daemon_handle;
static MHD_socket quiesced_fd = MHD_INVALID_SOCKET;
static atomic_uint inflight;
static atomic_bool draining;

/* ---- stream io ---------------------------------------------------------- */

static void io_suspend(void *conn)
{
	MHD_suspend_connection(conn);
}

static void io_resume(void *conn)
{
	MHD_resume_connection(conn);
}

static const struct stream_io stream_io = {io_suspend, io_resume};

/* ---- responses ---------------------------------------------------------- */

static enum MHD_Result queue_reply(struct MHD_Connection *conn, const struct reply *r)
{
	if (r->code)
		metrics_count(METRIC_HTTP_ERRORS, r->code);
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		r->body.len, r->body.data ? r->body.data : (void *)"", MHD_RESPMEM_MUST_COPY);
	if (r->content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (r->allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
	if (r->retry_after) {
		char v[16];
		snprintf(v, sizeof(v), "%u", r->retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
	}
	if (r->close)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result ret = MHD_queue_response(conn, r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result queue_problem(struct MHD_Connection *conn, enum problem p,
                                     const char *detail, const char *allow)
{
	struct reply r = {0};
	reply_problem(&r, p, detail);
	r.allow = allow;
	enum MHD_Result ret = queue_reply(conn, &r);
	reply_free(&r);
	return ret;
}

static enum MHD_Result queue_json(struct MHD_Connection *conn, unsigned status, const char *json)
{
	struct reply r = {0};
	struct buf b = BUF_INIT;
	buf_append_str(&b, json);
	reply_json(&r, status, &b);
	enum MHD_Result ret = queue_reply(conn, &r);
	reply_free(&r);
	return ret;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	ssize_t n = stream_read(cls, buf, max);
	if (stream_replay_due(cls))
		replay_start(cls);
	if (n == STREAM_READ_END)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n == STREAM_READ_ERROR)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	return n;
}

static void stream_reader_free(void *cls)
{
	stream_unref(cls);
}

static enum MHD_Result queue_stream(struct request *req)
{
	struct stream *s = req->u.sub.stream;

	/* Tracked under the registry lock, which http_quiesce takes to set
	 * draining: a stream either exists when the drain closes every stream,
	 * or is refused here. */
	registry_lock();
	bool refused = atomic_load(&draining);
	if (!refused)
		registry_track(s);
	registry_unlock();
	struct identity who = {.session_id = s->session_id, .user_id = s->user_id,
	                       .tenant_id = s->tenant_id, .org_id = s->org_id};
	if (refused) {
		subscribe_audit(&req->u.sub, &who, "rejected", "draining", 503);
		return queue_problem(req->conn, PROBLEM_DRAINING, "the node is shutting down", NULL);
	}
	subscribe_audit(&req->u.sub, &who, "accepted", "ok", 200);
	metrics_inc(METRIC_STREAMS_OPENED);
	validity_watch(s->expires_ms);
	if (validity_generation() != req->u.sub.validity_gen)
		validity_recheck_session(s->session_id); /* a revocation may have passed it by */
	if (policy_generation() != req->u.sub.policy_gen)
		policy_recheck_stream(s->id); /* so may a policy change */

	struct MHD_Response *resp = MHD_create_response_from_callback(
		MHD_SIZE_UNKNOWN, STREAM_BLOCK_SIZE, stream_reader, stream_ref(s), stream_reader_free);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	enum MHD_Result ret = MHD_queue_response(req->conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	req->stream = stream_ref(s); /* request_completed untracks it */
	if (ret != MHD_YES)
		return ret;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci)
		hub_watch(s->id, ci->connect_fd);
	hub_register(s);
	return MHD_YES;
}

/* ---- routing ------------------------------------------------------------ */

static bool seg_is(const struct target *t, size_t i, const char *s)
{
	return i < t->nseg && strcmp(t->seg[i], s) == 0;
}

/* Route by path; *allow names the methods of a known path. */
static enum route route_of(const struct target *t, const char **allow)
{
	*allow = "GET";
	if (t->trailing_slash && t->nseg > 0)
		return ROUTE_NONE;
	if (t->nseg == 0)
		return cfg->demo ? ROUTE_DEMO : ROUTE_NONE;
	if (t->nseg == 1 && seg_is(t, 0, "healthz"))
		return ROUTE_HEALTHZ;
	if (t->nseg == 1 && seg_is(t, 0, "readyz"))
		return ROUTE_READYZ;
	if (t->nseg == 1 && seg_is(t, 0, "metrics"))
		return ROUTE_METRICS;
	if (t->nseg == 2 && seg_is(t, 0, "v1") && seg_is(t, 1, "stream"))
		return ROUTE_STREAM;
	if (t->nseg == 2 && seg_is(t, 0, "v1") && seg_is(t, 1, "me"))
		return ROUTE_ME;
	if (t->nseg == 2 && seg_is(t, 0, "v1") && seg_is(t, 1, "tickets")) {
		*allow = "POST";
		return ROUTE_TICKETS;
	}
	if (t->nseg == 4 && seg_is(t, 0, "v1") && seg_is(t, 1, "channels") && seg_is(t, 3, "events")) {
		*allow = "POST";
		return ROUTE_PUBLISH;
	}
	if (t->nseg == 4 && seg_is(t, 0, "v1") && seg_is(t, 1, "channels") && seg_is(t, 3, "presence"))
		return ROUTE_PRESENCE;
	return ROUTE_NONE;
}

static const char *header(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

struct header_count {
	const char *name;
	unsigned n;
};

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
	struct header_count *hc = cls;
	(void)kind;
	(void)value;
	if (strcasecmp(key, hc->name) == 0)
		hc->n++;
	return MHD_YES;
}

/* How many times header name came (MHD's lookup sees only the first). */
static unsigned header_count(struct MHD_Connection *c, const char *name)
{
	struct header_count hc = {name, 0};
	MHD_get_connection_values(c, MHD_HEADER_KIND, count_header, &hc);
	return hc.n;
}

static void read_credential(struct request *req, struct credential *c)
{
	const char *q = cfg->token_query_param ? target_param(&req->target, "access_token") : NULL;
	const char *ticket = req->route == ROUTE_STREAM ? target_param(&req->target, "ticket") : NULL;
	credential_extract(c, header(req->conn, MHD_HTTP_HEADER_AUTHORIZATION),
	                   header(req->conn, MHD_HTTP_HEADER_COOKIE), cfg->cookie_name, ticket, q);
}

static const char *scope_hint(struct request *req, const char *hdr, const char *param)
{
	const char *v = header(req->conn, hdr);
	return v ? v : target_param(&req->target, param);
}

static char *opt_dup(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* A worker finished: the reply (or stream) is ready. The count drops only
 * after the resume, so shutdown never stops the daemon while this
 * connection is still suspended. */
static void job_done(struct request *req)
{
	req->phase = PHASE_READY;
	MHD_resume_connection(req->conn);
	atomic_fetch_sub(&inflight, 1);
}

static void subscribe_done(struct subscribe_job *sj)
{
	job_done(sj->ctx);
}

static void publish_done(struct publish_job *pj)
{
	job_done(pj->ctx);
}

static void ticket_done(struct ticket_job *tj)
{
	job_done(tj->ctx);
}

static void presence_done(struct presence_job *pj)
{
	job_done(pj->ctx);
}

static void me_run(struct db_job *job, PGconn *conn)
{
	struct me_job *mj = (struct me_job *)job;
	struct request *req = (struct request *)((char *)mj - offsetof(struct request, u));
	struct identity id;
	enum session_status st = session_lookup(conn, &mj->cred, NULL, NULL, 0, &id, NULL);
	if (st != SESSION_OK) {
		session_reject(st, &mj->cred, &id, "me", req->remote, &mj->reply);
	} else {
		struct buf b = BUF_INIT;
		buf_printf(&b, "{\"session_id\":%lld,\"kind\":\"%s\",\"user_id\":",
		           (long long)id.session_id, id.service ? "service" : "user");
		buf_append_json_str(&b, id.user_id, strlen(id.user_id));
		buf_append_str(&b, ",\"tenant_id\":");
		buf_append_json_str(&b, id.tenant_id, strlen(id.tenant_id));
		buf_append_str(&b, ",\"org_id\":");
		if (id.org_id)
			buf_append_json_str(&b, id.org_id, strlen(id.org_id));
		else
			buf_append_str(&b, "null");
		buf_append_str(&b, ",\"expires_at\":");
		if (id.expires_at)
			buf_append_json_str(&b, id.expires_at, strlen(id.expires_at));
		else
			buf_append_str(&b, "null");
		buf_append_char(&b, '}');
		reply_json(&mj->reply, 200, &b);
	}
	identity_free(&id);
	job_done(req);
}

/* Suspends first, so the worker's resume can never come too early. */
static void start_job(struct request *req, struct db_job *job)
{
	req->phase = PHASE_WAITING;
	atomic_fetch_add(&inflight, 1);
	MHD_suspend_connection(req->conn);
	db_submit(job);
}

static enum MHD_Result answer_ready(struct request *req)
{
	switch (req->route) {
	case ROUTE_STREAM:
		if (req->u.sub.reply.status)
			return queue_reply(req->conn, &req->u.sub.reply);
		return queue_stream(req);
	case ROUTE_PUBLISH:
		req->u.pub.reply.close = req->close_after;
		return queue_reply(req->conn, &req->u.pub.reply);
	case ROUTE_TICKETS:
		return queue_reply(req->conn, &req->u.tkt.reply);
	case ROUTE_PRESENCE:
		return queue_reply(req->conn, &req->u.pres.reply);
	case ROUTE_ME:
		return queue_reply(req->conn, &req->u.me.reply);
	default:
		return MHD_NO;
	}
}

static enum MHD_Result begin_stream(struct request *req)
{
	struct subscribe_job *sj = &req->u.sub;
	subscribe_init(sj, cfg, &req->target, header(req->conn, "Last-Event-ID"));
	read_credential(req, &sj->cred);
	sj->io = &stream_io;
	sj->conn = req->conn;
	sj->done = subscribe_done;
	sj->ctx = req;
	free(sj->tenant_hint);
	free(sj->org_hint);
	sj->tenant_hint = opt_dup(scope_hint(req, "Herald-Tenant", "tenant"));
	sj->org_hint = opt_dup(scope_hint(req, "Herald-Org", "org"));
	sj->remote = xstrdup(req->remote);
	/* Even without a credential the answer comes from a worker, which
	 * never touches the database for it: one path, one audit record. */
	subscribe_prepare(sj);
	start_job(req, &sj->job);
	return MHD_YES;
}

static void begin_publish(struct request *req)
{
	struct publish_job *pj = &req->u.pub;
	pj->cfg = cfg;
	pj->channel = xstrdup(req->target.seg[2]);
	read_credential(req, &pj->cred);
	pj->tenant_hint = opt_dup(scope_hint(req, "Herald-Tenant", "tenant"));
	pj->org_hint = opt_dup(scope_hint(req, "Herald-Org", "org"));
	pj->content_type = opt_dup(header(req->conn, MHD_HTTP_HEADER_CONTENT_TYPE));
	pj->origin = opt_dup(header(req->conn, MHD_HTTP_HEADER_ORIGIN));
	pj->idempotency_key = opt_dup(header(req->conn, "Idempotency-Key"));
	pj->idempotency_keys = header_count(req->conn, "Idempotency-Key");
	pj->remote = xstrdup(req->remote);
	pj->started_ns = time_mono_ns();
	pj->done = publish_done;
	pj->ctx = req;
}

static void begin_ticket(struct request *req)
{
	struct ticket_job *tj = &req->u.tkt;
	tj->cfg = cfg;
	read_credential(req, &tj->cred);
	tj->origin = opt_dup(header(req->conn, MHD_HTTP_HEADER_ORIGIN));
	tj->remote = xstrdup(req->remote);
	tj->done = ticket_done;
	tj->ctx = req;
}

static enum MHD_Result begin_presence(struct request *req)
{
	struct presence_job *pj = &req->u.pres;
	pj->channel = xstrdup(req->target.seg[2]);
	read_credential(req, &pj->cred);
	pj->tenant_hint = opt_dup(scope_hint(req, "Herald-Tenant", "tenant"));
	pj->org_hint = opt_dup(scope_hint(req, "Herald-Org", "org"));
	pj->remote = xstrdup(req->remote);
	pj->done = presence_done;
	pj->ctx = req;
	presence_prepare(pj);
	start_job(req, &pj->job);
	return MHD_YES;
}

static enum MHD_Result answer_metrics(struct request *req)
{
	if (!req->metrics_allowed)
		return queue_problem(req->conn, PROBLEM_PERMISSION_DENIED,
		                     "this address is not in metrics_allow", NULL);
	registry_lock();
	struct metrics_gauges g = {.streams_open = registry_stream_count()};
	registry_unlock();
	g.db_queue = db_backlog();
	g.audit_backlog = audit_backlog();
	g.ready = !atomic_load(&draining) && hub_ready() && db_ready();
	struct buf b = BUF_INIT;
	metrics_render(&b, &g);
	struct MHD_Response *resp = MHD_create_response_from_buffer(b.len, b.data,
	                                                            MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        "text/plain; version=0.0.4; charset=utf-8");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	enum MHD_Result ret = MHD_queue_response(req->conn, 200, resp);
	MHD_destroy_response(resp);
	buf_free(&b);
	return ret;
}

static enum MHD_Result handle_plain(struct request *req)
{
	switch (req->route) {
	case ROUTE_HEALTHZ:
		return queue_json(req->conn, 200, "{\"status\":\"ok\"}");
	case ROUTE_READYZ:
		if (!atomic_load(&draining) && hub_ready() && db_ready())
			return queue_json(req->conn, 200, "{\"status\":\"ready\"}");
		return queue_problem(req->conn, atomic_load(&draining) ? PROBLEM_DRAINING
		                                                       : PROBLEM_UNAVAILABLE,
		                     "the database or the LISTEN connection is down", NULL);
	case ROUTE_DEMO: {
		const struct embedded_file *page = embedded_find("src/demo/index.html");
		struct MHD_Response *resp = MHD_create_response_from_buffer(
			page->len, (void *)page->data, MHD_RESPMEM_PERSISTENT);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
		enum MHD_Result ret = MHD_queue_response(req->conn, 200, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	case ROUTE_METRICS:
		return answer_metrics(req);
	case ROUTE_ME:
		read_credential(req, &req->u.me.cred);
		req->u.me.job.run = me_run;
		start_job(req, &req->u.me.job);
		return MHD_YES;
	case ROUTE_STREAM:
		return begin_stream(req);
	case ROUTE_PRESENCE:
		return begin_presence(req);
	default:
		return MHD_NO;
	}
}

static void read_remote(struct request *req)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;
	req->remote[0] = '\0';
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, req->remote,
		          sizeof(req->remote));
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, req->remote,
		          sizeof(req->remote));
	req->metrics_allowed = netmask_match(metrics_allow, metrics_allow_n, sa);
}

/* Scope hints go into SQL: bounded, valid UTF-8, no control bytes. */
static bool hint_ok(const char *v)
{
	size_t n = v ? strlen(v) : 0;
	if (n > 256)
		return false;
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq_len((const unsigned char *)v + i, n - i);
		if (k == 0 || (k == 1 && (unsigned char)v[i] < 0x20))
			return false;
		i += k;
	}
	return true;
}

/* Errors no credential can excuse: an ambiguous credential, unusable
 * scope hints. NULL when there is none. */
static const char *request_syntax_error(struct request *req)
{
	if (req->route != ROUTE_STREAM && req->route != ROUTE_PUBLISH &&
	    req->route != ROUTE_TICKETS && req->route != ROUTE_ME && req->route != ROUTE_PRESENCE)
		return NULL;
	if (header_count(req->conn, MHD_HTTP_HEADER_AUTHORIZATION) > 1)
		return "several Authorization headers";
	if (!hint_ok(scope_hint(req, "Herald-Tenant", "tenant")) ||
	    !hint_ok(scope_hint(req, "Herald-Org", "org")))
		return "Herald-Tenant / Herald-Org must be printable UTF-8 of at most 256 bytes";
	return NULL;
}

/* A stream attempt refused by a node or address cap, before any
 * credential is read: audited as a connection attempt. */
static void audit_cap_refusal(const struct request *req)
{
	struct audit_record a = {
		.kind = "stream.open", .outcome = "rejected", .remote_addr = req->remote,
		.detail = "{\"reason\":\"too_many_connections\",\"status\":429,\"route\":\"stream\","
		          "\"cap\":\"node or address\"}",
	};
	audit_record(&a);
}

/* Content-Length says more than max_event_bytes: known before reading. */
static bool declared_too_large(struct request *req)
{
	const char *cl = header(req->conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
	char *end;
	unsigned long long n = cl ? strtoull(cl, &end, 10) : 0;
	return cl && *cl && *end == '\0' && n > (unsigned long long)config_live()->max_event_bytes;
}

/* A publish body over max_event_bytes is not read: the request is
 * judged (401/403 first, SPEC §2 order, else 413) without it, and the
 * connection closes after the answer instead of draining the rest. */
static enum MHD_Result body_refused(struct request *req)
{
	req->u.pub.body_too_large = true;
	req->close_after = true;
	publish_prepare(&req->u.pub);
	start_job(req, &req->u.pub.job);
	return MHD_YES;
}

static void audit_overload(const struct request *req)
{
	struct audit_record a = {
		.kind = req->route == ROUTE_STREAM ? "stream.open" : "publish", .outcome = "rejected",
		.remote_addr = req->remote,
		.detail = req->route == ROUTE_STREAM
			? "{\"reason\":\"unavailable\",\"status\":503,\"route\":\"stream\",\"cause\":\"overload\"}"
			: "{\"reason\":\"unavailable\",\"status\":503,\"route\":\"publish\",\"cause\":\"overload\"}",
	};
	audit_record(&a);
}

static enum MHD_Result first_call(struct request *req, const char *method)
{
	read_remote(req);
	if (!req->raw_target)
		return queue_problem(req->conn, PROBLEM_INVALID_REQUEST, "no request target", NULL);
	enum target_result tr = target_parse(req->raw_target, strlen(req->raw_target), &req->target);
	if (tr != TARGET_OK) {
		/* Not routable, so no credential is read; a stream attempt is
		 * still a connection attempt and is audited as one. */
		if (strncmp(req->raw_target, "/v1/stream", 10) == 0) {
			struct audit_record a = {
				.kind = "stream.open", .outcome = "rejected", .remote_addr = req->remote,
				.detail = "{\"reason\":\"invalid_request\",\"status\":400,\"route\":\"stream\","
				          "\"error\":\"malformed request target\"}",
			};
			audit_record(&a);
		}
		return queue_problem(req->conn, PROBLEM_INVALID_REQUEST,
		                     "malformed request target", NULL);
	}
	req->target_ok = true;
	const char *allow;
	req->route = route_of(&req->target, &allow);
	if (req->route == ROUTE_NONE)
		return queue_problem(req->conn, PROBLEM_NOT_FOUND, "no such resource", NULL);
	bool ok;
	if (req->route == ROUTE_PUBLISH || req->route == ROUTE_TICKETS)
		ok = strcmp(method, "POST") == 0;
	else if (req->route == ROUTE_STREAM || req->route == ROUTE_ME ||
	         req->route == ROUTE_PRESENCE)
		ok = strcmp(method, "GET") == 0;
	else
		ok = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	if (!ok)
		return queue_problem(req->conn, PROBLEM_METHOD_NOT_ALLOWED,
		                     "method not allowed on this resource", allow);
	if (atomic_load(&draining) && req->route != ROUTE_HEALTHZ && req->route != ROUTE_READYZ)
		return queue_problem(req->conn, PROBLEM_DRAINING, "the node is shutting down", NULL);
	if ((req->route == ROUTE_STREAM || req->route == ROUTE_PUBLISH) &&
	    db_backlog() >= (unsigned)config_live()->max_db_queue) {
		/* Overloaded: refusing at once beats queueing work that would
		 * time out anyway; open streams keep flowing. */
		audit_overload(req);
		return queue_problem(req->conn, PROBLEM_UNAVAILABLE,
		                     "the node is overloaded (database queue full); retry", NULL);
	}
	if (req->route == ROUTE_STREAM) {
		struct reply r = {0};
		if (!caps_reserve_address(req->remote, &r)) {
			audit_cap_refusal(req);
			enum MHD_Result ret = queue_reply(req->conn, &r);
			reply_free(&r);
			return ret;
		}
		req->address_reserved = true;
	}
	const char *bad = request_syntax_error(req);
	if (bad)
		return queue_problem(req->conn, PROBLEM_INVALID_REQUEST, bad, NULL);
	if (req->route == ROUTE_PUBLISH || req->route == ROUTE_TICKETS) {
		if (req->route == ROUTE_PUBLISH)
			begin_publish(req);
		else
			begin_ticket(req);
		req->phase = PHASE_BODY;
		if (req->route == ROUTE_PUBLISH && declared_too_large(req))
			return body_refused(req);
		return MHD_YES;
	}
	return handle_plain(req);
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_size,
                                      void **con_cls)
{
	struct request *req = *con_cls;
	(void)cls;
	(void)url;
	(void)version;
	if (!req)
		return MHD_NO;
	req->conn = conn;
	switch (req->phase) {
	case PHASE_NEW:
		return first_call(req, method);
	case PHASE_BODY:
		if (*upload_size) {
			struct publish_job *pj = &req->u.pub;
			size_t n = *upload_size;
			*upload_size = 0;
			if (req->route != ROUTE_PUBLISH) {
				/* A ticket request's body is dropped, and cut off past
				 * the same bound. */
				req->dropped += n;
				return req->dropped > DROP_MAX ? MHD_NO : MHD_YES;
			}
			if (!pj->body_too_large && (int64_t)(pj->body.len + n) <= config_live()->max_event_bytes) {
				buf_append(&pj->body, upload_data, n);
				return MHD_YES;
			}
			/* A chunked body past the limit: libmicrohttpd can answer
			 * only once it is all in, so a little more is read and
			 * dropped for a 413; much more cuts the connection. */
			pj->body_too_large = true;
			req->dropped += n;
			if (req->dropped > DROP_MAX) {
				log_msg(LOG_INFO, "oversized chunked body cut off", "remote", req->remote, NULL);
				return MHD_NO;
			}
			return MHD_YES;
		}
		if (req->route == ROUTE_PUBLISH) {
			publish_prepare(&req->u.pub);
			start_job(req, &req->u.pub.job);
		} else {
			ticket_prepare(&req->u.tkt);
			start_job(req, &req->u.tkt.job);
		}
		return MHD_YES;
	case PHASE_WAITING:
		return MHD_YES; /* not reached: suspended */
	case PHASE_READY:
		return answer_ready(req);
	}
	return MHD_NO;
}

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *conn)
{
	(void)cls;
	struct request *req = xcalloc(1, sizeof(*req));
	req->conn = conn;
	req->raw_target = uri ? xstrdup(uri) : NULL;
	return req;
}

/* Counts every stream end by reason; audits the ones herald forced. */
static void stream_ended(struct request *req)
{
	struct stream *s = req->stream;
	pthread_mutex_lock(&s->lock);
	enum stream_end end = s->end;
	pthread_mutex_unlock(&s->lock);
	const char *why = stream_end_name(end);
	char id[24];
	snprintf(id, sizeof(id), "%llu", (unsigned long long)s->id);
	log_msg(LOG_DEBUG, "stream closed", "stream", id, "tenant", s->tenant_id, "reason", why, NULL);
	metrics_count(METRIC_STREAMS_CLOSED, why);
	if (end == STREAM_END_CLIENT)
		return;
	struct buf d = BUF_INIT, sid = BUF_INIT;
	buf_printf(&sid, "%s/%s", cfg->node_id, id);
	buf_printf(&d, "{\"reason\":\"%s\",\"stream\":", why);
	buf_append_json_str(&d, sid.data, sid.len);
	buf_append_char(&d, '}');
	buf_free(&sid);
	struct audit_record a = {
		.kind = "stream.close", .outcome = "closed", .session_id = s->session_id,
		.user_id = s->user_id, .tenant_id = s->tenant_id, .org_id = s->org_id,
		.channel = s->nch == 1 ? s->ch[0].name : NULL, .remote_addr = req->remote,
		.detail = d.data,
	};
	audit_record(&a);
	buf_free(&d);
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
	struct request *req = *con_cls;
	(void)cls;
	(void)conn;
	(void)toe;
	if (!req)
		return;
	if (req->stream) {
		stream_ended(req);
		registry_lock();
		registry_remove(req->stream);
		registry_unlock();
		stream_unref(req->stream);
	}
	if (req->route == ROUTE_STREAM && req->u.sub.stream) /* built: the user's cap counted it */
		caps_release_user(req->u.sub.stream->tenant_id, req->u.sub.stream->user_id);
	if (req->address_reserved)
		caps_release_address(req->remote);
	if (req->route == ROUTE_STREAM)
		subscribe_free(&req->u.sub);
	else if (req->route == ROUTE_PUBLISH)
		publish_free(&req->u.pub);
	else if (req->route == ROUTE_TICKETS)
		ticket_free(&req->u.tkt);
	else if (req->route == ROUTE_PRESENCE)
		presence_job_free(&req->u.pres);
	else if (req->route == ROUTE_ME)
		reply_free(&req->u.me.reply);
	if (req->target_ok)
		target_free(&req->target);
	free(req->raw_target);
	free(req);
	*con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	/* Per-connection noise (a client leaving mid-stream is normal for SSE);
	 * failures that matter are logged by herald itself. */
	log_msg(LOG_DEBUG, "http", "detail", line, NULL);
}

bool http_start(const struct herald_config *config, const struct tls_material *tls)
{
	char *host;
	unsigned port;
	char err[128];
	cfg = config;
	if (!netmask_parse(cfg->metrics_allow, &metrics_allow, &metrics_allow_n, err, sizeof(err))) {
		log_msg(LOG_ERROR, "bad metrics_allow", "error", err, NULL);
		return false;
	}
	if (!config_split_listen(cfg->listen, &host, &port))
		return false;
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		flags |= MHD_USE_IPv6;
	} else if (strcmp(host, "localhost") == 0) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else {
		log_msg(LOG_ERROR, "listen address must be numeric", "listen", cfg->listen, NULL);
		free(host);
		return false;
	}
	free(host);
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	struct MHD_OptionItem no_opts[] = {{.option = MHD_OPTION_END}};
	struct MHD_OptionItem tls_opts[] = {
		{.option = MHD_OPTION_HTTPS_MEM_CERT, .ptr_value = tls->cert},
		{.option = MHD_OPTION_HTTPS_MEM_KEY, .ptr_value = tls->key},
		{.option = MHD_OPTION_HTTPS_PRIORITIES, .ptr_value = (void *)TLS_PRIORITIES},
		{.option = MHD_OPTION_END},
	};
	if (tls->cert)
		flags |= MHD_USE_TLS;
	daemon_handle = MHD_start_daemon(
		flags, (uint16_t)port, NULL, NULL, access_handler, NULL,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(cores > 0 ? cores : 1),
		/* Room above the stream cap, so that the streams past it get a
		 * 429 rather than a refused connection. */
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)(cfg->max_connections + CAP_HEADROOM),
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
		MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
		MHD_OPTION_URI_LOG_CALLBACK, uri_logger, NULL,
		MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
		MHD_OPTION_ARRAY, tls->cert ? tls_opts : no_opts,
		MHD_OPTION_END);
	if (!daemon_handle) {
		log_msg(LOG_ERROR, "cannot listen", "listen", cfg->listen, NULL);
		return false;
	}
	return true;
}

void http_quiesce(void)
{
	registry_lock();
	atomic_store(&draining, true);
	registry_unlock();
	/* The listening socket may still be in a worker's hands: it is closed
	 * only after MHD_stop_daemon (libmicrohttpd's rule). */
	quiesced_fd = MHD_quiesce_daemon(daemon_handle);
}

unsigned http_inflight(void)
{
	return atomic_load(&inflight);
}

void http_stop(void)
{
	if (daemon_handle)
		MHD_stop_daemon(daemon_handle);
	daemon_handle = NULL;
	if (quiesced_fd != MHD_INVALID_SOCKET)
		close(quiesced_fd);
	quiesced_fd = MHD_INVALID_SOCKET;
	free(metrics_allow);
	metrics_allow = NULL;
}
