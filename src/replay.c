/*
 * replay.c — cursor checks and catch-up from herald.events (see replay.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cursor.h"
#include "db.h"
#include "log.h"
#include "registry.h"
#include "replay.h"
#include "util/xmalloc.h"

#define REPLAY_PAGE 1000
#define STR(x) #x
#define XSTR(x) STR(x)

enum replay_plan_result replay_plan(const char *cursor, const char *epoch, const char *digest,
                                    const int64_t *heads, const int64_t *trimmed,
                                    size_t n, int64_t *start)
{
	struct cursor c;
	enum replay_plan_result r = REPLAY_FROM_CURSOR;

	if (!cursor) {
		r = REPLAY_FROM_HEAD;
	} else if (!cursor_parse(cursor, strlen(cursor), &c)) {
		r = REPLAY_RESET_MALFORMED;
	} else if (strcmp(c.epoch, epoch) != 0 || strcmp(c.digest, digest) != 0 || c.nseq != n) {
		r = REPLAY_RESET_UNKNOWN;
	} else {
		for (size_t i = 0; i < n && r == REPLAY_FROM_CURSOR; i++) {
			if (c.seq[i] > heads[i])
				r = REPLAY_RESET_UNKNOWN;
			else if (c.seq[i] < trimmed[i])
				r = REPLAY_RESET_TRIMMED;
		}
	}
	for (size_t i = 0; i < n; i++)
		start[i] = r == REPLAY_FROM_CURSOR ? c.seq[i] : heads[i];
	return r;
}

const char *replay_plan_reason(enum replay_plan_result r)
{
	switch (r) {
	case REPLAY_RESET_MALFORMED: return "malformed cursor";
	case REPLAY_RESET_UNKNOWN: return "unknown cursor";
	case REPLAY_RESET_TRIMMED: return "cursor older than retention";
	case REPLAY_FROM_HEAD:
	case REPLAY_FROM_CURSOR: break;
	}
	return NULL;
}

struct message *replay_event_message(const char *epoch, const char *digest,
                                     const char *channel, int64_t seq, const char *type,
                                     const char *data, size_t dlen, const char *published_at)
{
	struct buf id = BUF_INIT;
	cursor_format(&id, epoch, digest, &seq, 1);
	struct message *m = message_new_event(id.data, channel, type, data, dlen, published_at, seq);
	buf_free(&id);
	return m;
}

struct replay_job {
	struct db_job job;
	struct stream *s;
};

/* One channel at a time, in seq order: the unique index serves each page
 * without sorting the rest of the backlog. Per-channel order is the
 * guarantee; events of different channels have no defined order. */
static const char page_sql[] =
	"SELECT " REPLAY_EVENT_COLUMNS " FROM herald.events e"
	" WHERE e.tenant_id = $1 AND e.org_id = $2 AND e.channel = $3 AND e.seq > $4"
	" ORDER BY e.seq LIMIT " XSTR(REPLAY_PAGE);

static void push_item(struct stream_item **items, size_t *n, size_t *cap,
                      struct message *m, size_t ch)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*items = xrealloc(*items, *cap * sizeof(**items));
	}
	(*items)[(*n)++] = (struct stream_item){m, (unsigned)ch};
}

/* Reads the events after pos[] into items, up to half the stream's queue
 * limit (whole pages; 0: no limit); *more tells whether the log has more.
 * false if a query failed. */
static bool read_log(PGconn *conn, struct stream *s, const int64_t *pos,
                     struct stream_item **items, size_t *nitems, bool *more)
{
	size_t cap = 0, bytes = 0, budget = s->queue_limit / 2;
	*more = false;
	for (size_t ch = 0; ch < s->nch && !*more; ch++) {
		char digest[CURSOR_DIGEST_LEN + 1], after[24];
		const char *name = s->ch[ch].name;
		int64_t last = pos[ch];
		registry_digest(s->tenant_id, s->org_id, &name, 1, digest);
		for (;;) {
			snprintf(after, sizeof(after), "%lld", (long long)last);
			const char *values[4] = {s->tenant_id, s->org_id, name, after};
			PGresult *r = PQexecParams(conn, page_sql, 4, NULL, values, NULL, NULL, 0);
			if (PQresultStatus(r) != PGRES_TUPLES_OK) {
				log_msg(LOG_ERROR, "replay query failed", "error", PQresultErrorMessage(r), NULL);
				PQclear(r);
				return false;
			}
			int rows = PQntuples(r), row;
			for (row = 0; row < rows && !(budget && bytes >= budget); row++) {
				last = strtoll(PQgetvalue(r, row, 0), NULL, 10);
				struct message *m = replay_event_message(
					s->epoch, digest, name, last, PQgetvalue(r, row, 1),
					PQgetvalue(r, row, 2), (size_t)PQgetlength(r, row, 2),
					PQgetvalue(r, row, 3));
				bytes += m->len;
				push_item(items, nitems, &cap, m, ch);
			}
			PQclear(r);
			if (budget && bytes >= budget) {
				/* The rest of the page is read again next step. */
				*more = row < rows || rows == REPLAY_PAGE || ch + 1 < s->nch;
				break;
			}
			if (rows < REPLAY_PAGE)
				break;
		}
	}
	return true;
}

static void replay_run(struct db_job *job, PGconn *conn)
{
	struct replay_job *rj = (struct replay_job *)job;
	struct stream *s = rj->s;
	int64_t pos[CURSOR_MAX_CHANNELS];
	struct stream_item *items = NULL;
	size_t n = 0;
	bool more;

	stream_positions(s, pos);
	if (conn && read_log(conn, s, pos, &items, &n, &more)) {
		char count[24];
		snprintf(count, sizeof(count), "%zu", n);
		log_msg(LOG_DEBUG, "catch-up step", "events", count, "more", more ? "yes" : "no", NULL);
		stream_replay_done(s, items, n, more);
	} else {
		/* The client reconnects with its cursor and tries again. */
		for (size_t i = 0; i < n; i++)
			message_unref(items[i].msg);
		if (stream_close(s, NULL, STREAM_END_DATABASE) == STREAM_DELIVER_WAKE)
			stream_resume(s);
	}
	free(items);
	stream_unref(s);
	free(rj);
}

void replay_start(struct stream *s)
{
	struct replay_job *rj = xcalloc(1, sizeof(*rj));
	rj->job.run = replay_run;
	rj->s = stream_ref(s);
	db_submit(&rj->job);
}
