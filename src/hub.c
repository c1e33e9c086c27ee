/*
 * hub.c — the hub thread: from NOTIFY to the streams.
 *
 * The flow and the guarantee it keeps (no event lost or duplicated on a
 * live stream, in per-channel commit order):
 *   1. The hub owns the LISTEN connection. herald.publish() bumps the
 *      channel's head row and NOTIFYs in the same transaction, so
 *      notifications arrive in per-channel sequence order.
 *   2. Each registry entry remembers last_seq, the last sequence number
 *      dispatched on this node. A notification at or below it is a
 *      duplicate; one above last_seq + 1 means notifications were missed,
 *      and the hub reads the gap from herald.events before dispatching.
 *      Events too large for NOTIFY arrive by reference and are read too.
 *   3. Each event becomes one message, encoded once and queued by
 *      reference on every subscribed stream; suspended streams are resumed
 *      in one burst after all pending notifications are dispatched.
 *   4. A new channel entry starts at the head read by the hub itself, on
 *      the LISTEN connection, so no notification can fall between the
 *      head and the first dispatch. A stream behind that position replays
 *      from the log (replay.c).
 *   5. When the LISTEN connection is lost, /readyz fails; the hub
 *      reconnects with backoff, LISTENs again, then reads every event after
 *      each entry's last_seq before marking itself ready.
 * The hub also sends heartbeats on a coarse tick, trims the log every
 * minute (through a database worker), hands herald_control notifications
 * and ticks to validity.c (revocation and expiry), and watches the sockets
 * of streams for EPOLLRDHUP, since a suspended connection never notices
 * its client leaving.
 */
#include <errno.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "audit.h"
#include "cursor.h"
#include "db.h"
#include "hub.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "presence.h"
#include "registry.h"
#include "rules.h"
#include "replay.h"
#include "util/buf.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"
#include "validity.h"

#define TAG_WAKE 1
#define TAG_TIMER 2
#define TAG_LISTEN 3
#define TAG_STREAM (1ULL << 63)
#define TICK_MS 250
#define TRIM_INTERVAL_MS 60000
#define USER_TIMEOUT_MS 30000

static const struct herald_config *cfg;
static pthread_t hub_thread;
static int epfd = -1, wakefd = -1, timerfd = -1;
static atomic_bool ready, stopping;
static PGconn *listen_conn;
static char *listen_appname;
static char epoch[CURSOR_EPOCH_LEN + 1];
static int64_t reconnect_at_ms, reconnect_backoff_ms;
static int64_t next_heartbeat_ms, next_trim_ms;
static bool lost_before; /* a listen after the first one is a reconnect */

static pthread_mutex_t pending_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct stream **pending;
static size_t npending, pending_cap;

/* Streams to resume / replay after the current dispatch round. */
static struct stream **wakes, **catchups;
static size_t nwakes, wakes_cap, ncatchups, catchups_cap;

static void wake_hub(void);

static void push_stream(struct stream ***arr, size_t *n, size_t *cap, struct stream *s)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*arr = xrealloc(*arr, *cap * sizeof(**arr));
	}
	(*arr)[(*n)++] = s;
}

/* Registry lock held. */
static void note_result(struct stream *s, enum stream_deliver_result r)
{
	if (r == STREAM_DELIVER_WAKE)
		push_stream(&wakes, &nwakes, &wakes_cap, s);
	else if (r == STREAM_DELIVER_CATCH_UP)
		push_stream(&catchups, &ncatchups, &catchups_cap, stream_ref(s));
}

/* Registry lock NOT held: resumes may re-enter the HTTP library. */
static void flush_wakes(void)
{
	for (size_t i = 0; i < nwakes; i++)
		stream_resume(wakes[i]);
	nwakes = 0;
	for (size_t i = 0; i < ncatchups; i++) {
		replay_start(catchups[i]);
		stream_unref(catchups[i]);
	}
	ncatchups = 0;
}

/* Registry lock held: dispatch one event on an entry. */
static void dispatch_entry(struct registry_entry *e, int64_t seq, const char *type,
                           const char *data, size_t dlen, const char *published_at)
{
	int64_t published_ms;
	if (seq <= e->last_seq)
		return;
	struct message *m = replay_event_message(epoch, e->event_digest, e->channel, seq,
	                                         type, data, dlen, published_at);
	m->received_ns = time_mono_ns();
	metrics_inc(METRIC_EVENTS_RECEIVED);
	if (time_parse_rfc3339(published_at, &published_ms))
		metrics_observe(METRIC_NOTIFY_LAG_SECONDS, (double)(time_wall_ms() - published_ms) / 1e3);
	for (size_t i = 0; i < e->nsubs; i++)
		note_result(e->subs[i].s, stream_deliver(e->subs[i].s, e->subs[i].ch, m));
	e->last_seq = seq;
	message_unref(m);
}

static void listener_lost(const char *why)
{
	if (!listen_conn)
		return;
	log_msg(LOG_WARN, "listen connection lost", "reason", why, NULL);
	PQfinish(listen_conn);
	listen_conn = NULL;
	atomic_store(&ready, false);
	reconnect_backoff_ms = 100;
	reconnect_at_ms = time_mono_ms() + reconnect_backoff_ms;
}

/*
 * Reads events of one channel with lo < seq <= hi (hi < 0: no bound) and
 * dispatches them. Registry lock NOT held on entry. false if the query
 * failed (the listener is then reset and catch-up repeats the work).
 */
static bool fetch_and_dispatch(const char *tenant, const char *org, const char *channel,
                               int64_t lo, int64_t hi)
{
	static const char sql[] =
		"SELECT " REPLAY_EVENT_COLUMNS " FROM herald.events e"
		" WHERE e.tenant_id = $1 AND e.org_id = $2 AND e.channel = $3"
		" AND e.seq > $4 AND ($5 < 0 OR e.seq <= $5) ORDER BY e.seq";
	char los[24], his[24];
	snprintf(los, sizeof(los), "%lld", (long long)lo);
	snprintf(his, sizeof(his), "%lld", (long long)hi);
	const char *values[5] = {tenant, org, channel, los, his};
	PGresult *r = PQexecParams(listen_conn, sql, 5, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		listener_lost("event read failed");
		return false;
	}
	registry_lock();
	struct registry_entry *e = registry_find(tenant, org, channel);
	for (int row = 0; e && row < PQntuples(r); row++)
		dispatch_entry(e, strtoll(PQgetvalue(r, row, 0), NULL, 10), PQgetvalue(r, row, 1),
		               PQgetvalue(r, row, 2), (size_t)PQgetlength(r, row, 2),
		               PQgetvalue(r, row, 3));
	if (e && hi >= 0 && e->last_seq < hi)
		e->last_seq = hi; /* trimmed meanwhile: nothing more to find */
	registry_unlock();
	PQclear(r);
	return true;
}

static const char *json_str(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* One notification: a JSON header line, then the data (see sql/0001). */
static void handle_notify(const char *payload)
{
	const char *nl = strchr(payload, '\n');
	if (!nl) {
		log_msg(LOG_WARN, "malformed notification", NULL);
		return;
	}
	struct json_tokener *tok = json_tokener_new();
	struct json_object *h = json_tokener_parse_ex(tok, payload, (int)(nl - payload));
	json_tokener_free(tok);
	struct json_object *sv, *rv;
	const char *t = h ? json_str(h, "t") : NULL, *o = h ? json_str(h, "o") : NULL;
	const char *c = h ? json_str(h, "c") : NULL, *y = h ? json_str(h, "y") : NULL;
	const char *p = h ? json_str(h, "p") : NULL;
	if (!t || !o || !c || !y || !p || !json_object_object_get_ex(h, "s", &sv)) {
		log_msg(LOG_WARN, "malformed notification", NULL);
		json_object_put(h);
		return;
	}
	int64_t seq = json_object_get_int64(sv);
	bool by_ref = json_object_object_get_ex(h, "r", &rv) && json_object_get_boolean(rv);

	registry_lock();
	struct registry_entry *e = registry_find(t, o, c);
	if (!e || seq <= e->last_seq) {
		registry_unlock();
	} else if (by_ref || seq > e->last_seq + 1) {
		int64_t from = e->last_seq;
		registry_unlock();
		if (!by_ref)
			log_msg(LOG_INFO, "notification gap, reading the log", "channel", c, NULL);
		(void)fetch_and_dispatch(t, o, c, from, seq);
	} else {
		const char *data = nl + 1;
		dispatch_entry(e, seq, y, data, strlen(data), p);
		registry_unlock();
	}
	json_object_put(h);
}

/* herald_presence: a member joined or left a channel (herald.presence_set
 * decided it); tell the local subscribers allowed to see presence. */
static void dispatch_presence(const char *payload)
{
	struct json_object *o = json_tokener_parse(payload), *nv;
	const char *t = o ? json_str(o, "t") : NULL, *org = o ? json_str(o, "o") : NULL;
	const char *c = o ? json_str(o, "c") : NULL, *u = o ? json_str(o, "u") : NULL;
	const char *a = o ? json_str(o, "a") : NULL;
	if (!t || !org || !c || !u || !a || !json_object_object_get_ex(o, "n", &nv)) {
		log_msg(LOG_WARN, "malformed presence notification", NULL);
		json_object_put(o);
		return;
	}
	struct buf d = BUF_INIT;
	buf_append_str(&d, "{\"action\":");
	buf_append_json_str(&d, a, strlen(a));
	buf_append_str(&d, ",\"channel\":");
	buf_append_json_str(&d, c, strlen(c));
	buf_append_str(&d, ",\"user_id\":");
	buf_append_json_str(&d, u, strlen(u));
	buf_printf(&d, ",\"connections\":%lld}", (long long)json_object_get_int64(nv));
	struct message *m = message_new_control("herald.presence", d.data, false);
	registry_lock();
	struct registry_entry *e = registry_find(t, org, c);
	for (size_t i = 0; e && i < e->nsubs; i++) {
		struct registry_sub *sub = &e->subs[i];
		if (sub->s->ch[sub->ch].presence_visible) {
			note_result(sub->s, stream_push(sub->s, m));
			metrics_inc(METRIC_PRESENCE_EVENTS);
		}
	}
	registry_unlock();
	message_unref(m);
	buf_free(&d);
	json_object_put(o);
}

static void drain_notifications(void)
{
	PGnotify *n;
	while (listen_conn && (n = PQnotifies(listen_conn))) {
		if (strcmp(n->relname, "herald_control") == 0)
			validity_control(n->extra);
		else if (strcmp(n->relname, "herald_presence") == 0)
			dispatch_presence(n->extra);
		else
			handle_notify(n->extra);
		PQfreemem(n);
	}
}

struct entry_list {
	struct buf tenants, orgs, channels, after;
	size_t n;
};

static void collect_entry(struct registry_entry *e, void *arg)
{
	struct entry_list *l = arg;
	const char sep = l->n ? ',' : '{';
	struct buf *bufs[3] = {&l->tenants, &l->orgs, &l->channels};
	const char *vals[3] = {e->tenant, e->org, e->channel};
	for (int i = 0; i < 3; i++) {
		buf_append_char(bufs[i], sep);
		struct buf one = BUF_INIT;
		db_append_text_array(&one, &vals[i], 1);
		buf_append(bufs[i], one.data + 1, one.len - 2); /* strip braces */
		buf_free(&one);
	}
	buf_printf(&l->after, "%c%lld", sep, (long long)e->last_seq);
	l->n++;
}

/* After a reconnect: everything committed after each entry's last_seq. */
static bool catch_up_all(void)
{
	static const char sql[] =
		"SELECT c.t, c.o, c.ch, " REPLAY_EVENT_COLUMNS
		" FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS c(t, o, ch, after)"
		" JOIN herald.events e ON e.tenant_id = c.t AND e.org_id = c.o"
		"  AND e.channel = c.ch AND e.seq > c.after ORDER BY e.id";
	struct entry_list l = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT, 0};
	registry_lock();
	registry_each_entry(collect_entry, &l);
	registry_unlock();
	bool ok = true;
	if (l.n) {
		buf_append_char(&l.tenants, '}');
		buf_append_char(&l.orgs, '}');
		buf_append_char(&l.channels, '}');
		buf_append_char(&l.after, '}');
		const char *values[4] = {l.tenants.data, l.orgs.data, l.channels.data, l.after.data};
		PGresult *r = PQexecParams(listen_conn, sql, 4, NULL, values, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			ok = false;
		} else {
			registry_lock();
			for (int row = 0; row < PQntuples(r); row++) {
				struct registry_entry *e = registry_find(PQgetvalue(r, row, 0),
				                                         PQgetvalue(r, row, 1),
				                                         PQgetvalue(r, row, 2));
				if (e)
					dispatch_entry(e, strtoll(PQgetvalue(r, row, 3), NULL, 10),
					               PQgetvalue(r, row, 4), PQgetvalue(r, row, 5),
					               (size_t)PQgetlength(r, row, 5), PQgetvalue(r, row, 6));
			}
			registry_unlock();
		}
		PQclear(r);
	}
	buf_free(&l.tenants);
	buf_free(&l.orgs);
	buf_free(&l.channels);
	buf_free(&l.after);
	return ok;
}

static void try_connect(void)
{
	int64_t now = time_mono_ms();
	if (listen_conn || now < reconnect_at_ms)
		return;
	listen_conn = db_connect(cfg->db, listen_appname);
	if (listen_conn && !db_bound_statements(listen_conn)) {
		PQfinish(listen_conn);
		listen_conn = NULL;
	}
	PGresult *r = listen_conn ? PQexec(listen_conn,
		"LISTEN herald_events; LISTEN herald_control; LISTEN herald_presence;"
		" SELECT epoch FROM herald.meta") : NULL;
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		if (r)
			log_msg(LOG_ERROR, "listen failed", "error", PQresultErrorMessage(r), NULL);
		PQclear(r);
		if (listen_conn)
			PQfinish(listen_conn);
		listen_conn = NULL;
		reconnect_backoff_ms = reconnect_backoff_ms ? reconnect_backoff_ms * 2 : 100;
		if (reconnect_backoff_ms > 5000)
			reconnect_backoff_ms = 5000;
		reconnect_at_ms = now + reconnect_backoff_ms;
		return;
	}
	snprintf(epoch, sizeof(epoch), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	if (!catch_up_all()) {
		listener_lost("catch-up failed");
		return;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_LISTEN};
	epoll_ctl(epfd, EPOLL_CTL_ADD, PQsocket(listen_conn), &ev);
	reconnect_backoff_ms = 0;
	if (lost_before) {
		/* Revocations may have been missed while not listening. */
		metrics_inc(METRIC_LISTEN_RECONNECTS);
		validity_recheck_all();
		policy_changed(NULL);
		rules_changed();
		presence_rules_changed();
	}
	lost_before = true;
	atomic_store(&ready, true);
	log_msg(LOG_INFO, "listening", NULL);
}

/* Subscribes pending streams; new entries start at the head read here. */
static void register_pending(void)
{
	static const char sql[] =
		"SELECT coalesce(h.seq, 0) FROM unnest($1::text[], $2::text[], $3::text[])"
		" WITH ORDINALITY AS c(t, o, ch, i) LEFT JOIN herald.channel_heads h"
		" ON h.tenant_id = c.t AND h.org_id = c.o AND h.channel = c.ch ORDER BY c.i";

	if (!listen_conn)
		return; /* streams wait, already open, until the hub is back */
	pthread_mutex_lock(&pending_mutex);
	struct stream **list = pending;
	size_t n = npending;
	pending = NULL;
	npending = pending_cap = 0;
	pthread_mutex_unlock(&pending_mutex);
	if (!n)
		return;

	/* 1. Which channels have no entry yet? */
	struct buf ts = BUF_INIT, os = BUF_INIT, cs = BUF_INIT;
	const char **mt = NULL, **mo = NULL, **mc = NULL;
	size_t nm = 0, mcap = 0;
	registry_lock();
	for (size_t i = 0; i < n; i++) {
		struct stream *s = list[i];
		for (size_t c = 0; c < s->nch; c++) {
			if (registry_find(s->tenant_id, s->org_id, s->ch[c].name))
				continue;
			if (nm == mcap) {
				mcap = mcap ? mcap * 2 : 16;
				mt = xrealloc(mt, mcap * sizeof(*mt));
				mo = xrealloc(mo, mcap * sizeof(*mo));
				mc = xrealloc(mc, mcap * sizeof(*mc));
			}
			mt[nm] = s->tenant_id;
			mo[nm] = s->org_id;
			mc[nm] = s->ch[c].name;
			nm++;
		}
	}
	registry_unlock();

	/* 2. Their heads, in one round trip on the LISTEN connection. */
	PGresult *r = NULL;
	if (nm) {
		db_append_text_array(&ts, mt, nm);
		db_append_text_array(&os, mo, nm);
		db_append_text_array(&cs, mc, nm);
		const char *values[3] = {ts.data, os.data, cs.data};
		r = PQexecParams(listen_conn, sql, 3, NULL, values, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != (int)nm) {
			PQclear(r);
			r = NULL;
			listener_lost("head read failed");
			/* Put the streams back; they register after the reconnect. */
			pthread_mutex_lock(&pending_mutex);
			for (size_t i = 0; i < n; i++)
				push_stream(&pending, &npending, &pending_cap, list[i]);
			pthread_mutex_unlock(&pending_mutex);
			n = 0;
		}
	}

	/* 3. Subscribe; decide who must replay. An entry found in step 1 may
	 * have lost its last subscriber meanwhile: such a stream waits for the
	 * next round, which reads the head again. */
	enum { SKIP, RETRY, LIVE, REPLAY } *fate = xcalloc(n ? n : 1, sizeof(*fate));
	bool retry = false;
	registry_lock();
	for (size_t i = 0; r && i < nm; i++)
		if (!registry_find(mt[i], mo[i], mc[i]))
			registry_create(mt[i], mo[i], mc[i], strtoll(PQgetvalue(r, (int)i, 0), NULL, 10));
	for (size_t i = 0; i < n; i++) {
		struct stream *s = list[i];
		struct registry_entry *entries[CURSOR_MAX_CHANNELS];
		if (s->finished)
			continue;
		fate[i] = LIVE;
		for (size_t c = 0; c < s->nch && fate[i] != RETRY; c++) {
			entries[c] = registry_find(s->tenant_id, s->org_id, s->ch[c].name);
			if (!entries[c])
				fate[i] = RETRY;
			else if (s->ch[c].queued < entries[c]->last_seq)
				fate[i] = REPLAY;
		}
		if (fate[i] == RETRY) {
			pthread_mutex_lock(&pending_mutex);
			push_stream(&pending, &npending, &pending_cap, s);
			pthread_mutex_unlock(&pending_mutex);
			retry = true;
		} else {
			registry_subscribe(s, entries);
		}
	}
	registry_unlock();
	PQclear(r);

	for (size_t i = 0; i < n; i++) {
		if (fate[i] == RETRY)
			continue; /* the pending list keeps the reference */
		if (fate[i] != SKIP) {
			stream_registered(list[i], fate[i] == REPLAY);
			if (fate[i] == REPLAY)
				replay_start(list[i]);
		}
		stream_unref(list[i]);
	}
	if (retry)
		wake_hub();
	free(fate);
	free(list);
	free(mt);
	free(mo);
	free(mc);
	buf_free(&ts);
	buf_free(&os);
	buf_free(&cs);
}

static void heartbeat_one(struct stream *s, void *arg)
{
	note_result(s, stream_push(s, arg));
}

static struct trim_job {
	struct db_job job;
	atomic_bool busy;
} trim_job;

static void trim_run(struct db_job *job, PGconn *conn)
{
	char retention[32];
	snprintf(retention, sizeof(retention), "%lld milliseconds",
	         (long long)cfg->history_retention_ms);
	const char *values[1] = {retention};
	if (conn) {
		PGresult *r = PQexecParams(conn, "SELECT herald.trim_events($1::interval), herald.trim_tickets()",
		                           1, NULL, values, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			log_msg(LOG_WARN, "trim failed", "error", PQresultErrorMessage(r), NULL);
		PQclear(r);
	}
	atomic_store(&((struct trim_job *)job)->busy, false);
}

static void tick(void)
{
	int64_t now = time_mono_ms();
	try_connect();
	audit_tick();
	validity_tick();
	policy_tick();
	presence_tick();
	if (now >= next_heartbeat_ms) {
		next_heartbeat_ms = now + cfg->heartbeat_interval_ms;
		struct message *hb = message_new_raw(": hb\n\n", 6);
		registry_lock();
		registry_each_stream(heartbeat_one, hb);
		registry_unlock();
		message_unref(hb);
	}
	if (now >= next_trim_ms) {
		next_trim_ms = now + TRIM_INTERVAL_MS;
		if (!atomic_exchange(&trim_job.busy, true)) {
			trim_job.job.run = trim_run;
			db_submit(&trim_job.job);
		}
	}
}

static void client_left(uint64_t id)
{
	enum stream_deliver_result r = STREAM_DELIVER_NONE;
	registry_lock();
	struct stream *s = registry_stream(id);
	if (s)
		r = stream_close(s, NULL, STREAM_END_CLIENT);
	if (r == STREAM_DELIVER_WAKE)
		push_stream(&wakes, &nwakes, &wakes_cap, s);
	registry_unlock();
}

static void *hub_main(void *arg)
{
	struct epoll_event evs[256];
	(void)arg;
	while (!atomic_load(&stopping)) {
		int n = epoll_wait(epfd, evs, (int)HERALD_ARRAY_LEN(evs), -1);
		if (n < 0 && errno != EINTR) {
			log_fmt(LOG_ERROR, "epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64, junk;
			if (tag & TAG_STREAM) {
				client_left(tag & ~TAG_STREAM);
			} else if (tag == TAG_WAKE) {
				if (read(wakefd, &junk, sizeof(junk)) < 0 && errno != EAGAIN)
					log_fmt(LOG_WARN, "eventfd read: %s", strerror(errno));
			} else if (tag == TAG_TIMER) {
				if (read(timerfd, &junk, sizeof(junk)) < 0 && errno != EAGAIN)
					log_fmt(LOG_WARN, "timerfd read: %s", strerror(errno));
				tick();
			} else if (tag == TAG_LISTEN && listen_conn) {
				if (!PQconsumeInput(listen_conn) || db_conn_broken(listen_conn))
					listener_lost(PQerrorMessage(listen_conn));
			}
		}
		drain_notifications();
		register_pending();
		drain_notifications();
		flush_wakes();
	}
	return NULL;
}

static void wake_hub(void)
{
	uint64_t one = 1;
	if (write(wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_fmt(LOG_WARN, "eventfd write: %s", strerror(errno));
}

void hub_register(struct stream *s)
{
	pthread_mutex_lock(&pending_mutex);
	push_stream(&pending, &npending, &pending_cap, stream_ref(s));
	pthread_mutex_unlock(&pending_mutex);
	wake_hub();
}

void hub_watch(uint64_t stream_id, int fd)
{
	unsigned timeout = USER_TIMEOUT_MS;
	/* Peers that vanish without a FIN: give up on unacknowledged data. */
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout, sizeof(timeout));
	struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLONESHOT, .data.u64 = TAG_STREAM | stream_id};
	/* A keep-alive connection carrying a second stream is still in the
	 * set (one-shot, disarmed): re-arm it for the new stream. */
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0 &&
	    (errno != EEXIST || epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) != 0))
		log_fmt(LOG_WARN, "watching stream socket: %s", strerror(errno));
}

bool hub_ready(void)
{
	return atomic_load(&ready);
}

struct close_all {
	struct message *m;
	enum stream_end why;
	struct stream **wake;
	size_t n, cap, count;
};

static void close_one(struct stream *s, void *arg)
{
	struct close_all *ca = arg;
	ca->count++;
	if (stream_close(s, ca->m, ca->why) == STREAM_DELIVER_WAKE)
		push_stream(&ca->wake, &ca->n, &ca->cap, s);
}

size_t hub_close_all(struct message *m, enum stream_end why)
{
	struct close_all ca = {m, why, NULL, 0, 0, 0};
	registry_lock();
	registry_each_stream(close_one, &ca);
	registry_unlock();
	for (size_t i = 0; i < ca.n; i++)
		stream_resume(ca.wake[i]);
	free(ca.wake);
	return ca.count;
}

bool hub_start(const struct herald_config *config)
{
	cfg = config;
	struct buf name = BUF_INIT;
	buf_printf(&name, "herald listener %s", cfg->node_id);
	listen_appname = buf_steal(&name);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (epfd < 0 || wakefd < 0 || timerfd < 0)
		return false;
	struct itimerspec its = {{0, TICK_MS * 1000000L}, {0, TICK_MS * 1000000L}};
	timerfd_settime(timerfd, 0, &its, NULL);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_WAKE};
	epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev);
	ev.data.u64 = TAG_TIMER;
	epoll_ctl(epfd, EPOLL_CTL_ADD, timerfd, &ev);
	int64_t now = time_mono_ms();
	next_heartbeat_ms = now + cfg->heartbeat_interval_ms;
	next_trim_ms = now + TRIM_INTERVAL_MS / 4;
	try_connect();
	return pthread_create(&hub_thread, NULL, hub_main, NULL) == 0;
}

void hub_stop(void)
{
	atomic_store(&stopping, true);
	wake_hub();
	pthread_join(hub_thread, NULL);
	for (size_t i = 0; i < npending; i++)
		stream_unref(pending[i]);
	free(pending);
	free(wakes);
	free(catchups);
	if (listen_conn)
		PQfinish(listen_conn);
	close(epfd);
	close(wakefd);
	close(timerfd);
	free(listen_appname);
}
