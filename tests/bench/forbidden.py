#!/usr/bin/env python3
"""forbidden.py — how fast a committed policy change ends the streams that
lost their channel (`herald.forbidden`), on two herald nodes, and how fast
one node opens authorized streams (tests/bench/README.md explains the
numbers):

    python3 tests/bench/forbidden.py                   # defaults below
    python3 tests/bench/forbidden.py --streams 2000 --deletions 400 --bulk 1000

1. starts a private PostgreSQL through tests/integration/harness.py pg-run,
   which re-runs this script with --inner and, on exit, Ctrl-C or failure,
   stops it and removes the temp dir;
2. --inner: installs the schema (herald --migrate), creates a bare
   tenant/org with the feature `bench` enabled and no other grant than
   these: STREAMS users `bench-u<i>`, one session each, each with its own
   grant `user:bench-u<i>` → realtime.subscribe on `bench:u<i>`; BULK users
   `bulk-<i>`, one session each, members of the role `bulk`, which has one
   grant on `bench:b*`; OPEN users `rate-u<i>` for the open-rate phase
   (grant `*` on `bench:rate`). Starts two nodes from a *copy* of
   src/herald (a rebuild during the run cannot change it) with
   log_level = warn and the per-user/IP caps and rates lifted;
3. open rate: OPEN streams (one session each, channel `bench:rate`) on node
   1 only, BATCH in flight, from one selectors (epoll) loop with
   non-blocking sockets; then closes them;
4. opens STREAMS streams (`bench:u<i>`) and BULK streams (`bench:b<i>`),
   alternating nodes;
5. single deletions: DELETIONS times, one at a time, a user's grant is
   deleted (`WITH d AS (DELETE FROM herald.grants WHERE id = …) SELECT
   count(*) FROM d`, autocommit) on a persistent psql connection whose
   output the same loop reads, timing statement sent / statement returned
   -> that stream's `herald.forbidden` and its end;
5b. burst: BURST more user grants deleted by as many autocommit
   statements sent in one go (a DBA script), timing sent -> the last
   `herald.forbidden`, and PROBES stream opens started right after the
   burst against PROBES opened before it while idle;
6. bulk: `DELETE` of the role's grant -> until the last of the BULK
   streams has ended;
7. prints the table; exit 0 only if every stream opened, every stream that
   lost its grant got herald.forbidden naming its channel and ended, no
   other stream ended or got another event, and both nodes exited
   cleanly.

The loop, the psql driver and the stream decoder are revocation.py's.
Standard library only.
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import revocation as rv  # noqa: E402

MARK_OPEN = "event: herald.open"
MARK_FORBIDDEN = "event: herald.forbidden"


def say(msg):
    print(f"forbidden: {msg}", file=sys.stderr, flush=True)


class FStream(rv.Stream):
    """revocation.py's stream on its own channel, watching for
    herald.forbidden (and keeping its data) instead of herald.revoked."""

    __slots__ = ("channel", "t_forbidden", "forbidden_data", "text")

    def __init__(self, idx, node, session, token, channel):
        super().__init__(idx, node, session, token)
        self.channel = channel
        self.out = (f"GET /v1/stream?channel={channel} HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n"
                    f"Accept: text/event-stream\r\nAuthorization: Bearer {token}\r\n"
                    "Connection: close\r\n\r\n").encode()
        self.t_forbidden = None
        self.forbidden_data = None
        self.text = ""

    def feed(self, data, now):
        if self.status is None:
            self.head += data
            i = self.head.find(b"\r\n\r\n")
            if i < 0:
                return False
            head, data = self.head[:i], self.head[i + 4:]
            lines = head.decode("iso-8859-1").split("\r\n")
            self.status = int(lines[0].split(" ")[1])
            self.chunked = any(ln.lower().startswith("transfer-encoding:") and "chunked" in ln.lower()
                               for ln in lines[1:])
            if self.status != 200:
                self.error = f"status {self.status}"
        body = self._dechunk(data) if self.chunked else data
        if body:
            self.text += body.decode("utf-8", "replace")
            if len(self.text) > 8192:  # keep the open event and what follows, bounded
                self.text = self.text[-8192:]
            if self.t_open is None and MARK_OPEN in self.text:
                self.t_open = now
            if self.t_forbidden is None and MARK_FORBIDDEN in self.text:
                self.t_forbidden = now
            if self.forbidden_data is None and self.t_forbidden is not None:
                after = self.text.split(MARK_FORBIDDEN, 1)[1]
                for line in after.splitlines():
                    if line.startswith("data: "):
                        self.forbidden_data = line[6:]
                        break
            if self.other is None:
                for line in self.text.split("\n"):
                    if line.startswith("event: ") and line[7:].strip() not in ("herald.open",
                                                                               "herald.forbidden"):
                        self.other = line[7:].strip()
        return self.chunked and self.chunk_state == "done"

    def forbidden_ok(self):
        try:
            return json.loads(self.forbidden_data or "null") == {
                "channel": self.channel, "reason": "permission withdrawn"}
        except ValueError:
            return False


def run_loop(loop, seconds):
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        loop.run_once(max(0.0, until - time.monotonic()))


def inner(args):
    ready = rv.prepare(args, max(args.streams + args.bulk, args.open) + 256, say)
    if not ready:
        return 1
    tmp, conninfo, binary, pg = ready
    scope = harness.setup_scope(pg, features=())  # bare: no feature, no grant
    t = scope.tenant
    pg.sql("INSERT INTO herald.features (tenant_id, org_id, feature) VALUES ($1, NULL, 'bench')", t)

    def issue(user_expr, n):
        return rv.issue_tokens(pg, scope, user_expr, n)

    single = issue("'bench-u' || g", args.streams)
    grant_ids = [int(row[0]) for row in pg.sql(
        "INSERT INTO herald.grants (tenant_id, org_id, subject, permission, channel_pattern) "
        "SELECT $1, NULL, 'user:bench-u' || g, 'realtime.subscribe', 'bench:u' || g "
        "FROM generate_series(1, $2::int) g ORDER BY g RETURNING id", t, args.streams, timeout=120)]
    bulk_sessions = issue("'bulk-' || g", args.bulk) if args.bulk else []
    role_grant = None
    if args.bulk:
        pg.sql("INSERT INTO herald.role_members (tenant_id, org_id, user_id, role) "
               "SELECT $1, NULL, 'bulk-' || g, 'bulk' FROM generate_series(1, $2::int) g", t, args.bulk)
        role_grant = pg.sql_value("INSERT INTO herald.grants (tenant_id, org_id, subject, permission, "
                                  "channel_pattern) VALUES ($1, NULL, 'role:bulk', 'realtime.subscribe', "
                                  "'bench:b*') RETURNING id", t)
    rate_sessions = issue("'rate-u' || g", args.open) if args.open else []
    probe_sessions = issue("'probe-u' || g", 2 * args.probes) if args.burst and args.probes else []
    pg.sql("INSERT INTO herald.grants (tenant_id, org_id, subject, permission, channel_pattern) "
           "VALUES ($1, NULL, '*', 'realtime.subscribe', 'bench:rate')", t)

    nodes = [harness.Herald(tmp, conninfo, f"bench-n{i}", rv.NODE_CONFIG, binary=binary)
             for i in (1, 2)]
    rc = 1
    psql = None
    try:
        for n in nodes:
            n.start(timeout=30)
        say(f"nodes {', '.join(f'{n.node_id} :{n.port}' for n in nodes)}")

        # ---- open rate, one node ----------------------------------------------------
        rate = None
        if args.open:
            say(f"open rate: {args.open} streams on {nodes[0].node_id}, {args.batch} in flight")
            rloop = rv.Loop()
            rstreams = [FStream(i, nodes[0], sid, tok, "bench:rate")
                        for i, (sid, tok) in enumerate(rate_sessions)]
            secs = rv.open_streams(rloop, rstreams, args.batch)
            ok = [s for s in rstreams if s.t_open is not None]
            lat = [s.t_open - s.t_connect for s in ok]
            rate = {"n": len(ok), "failed": len(rstreams) - len(ok), "secs": secs,
                    "p50": rv.pct(lat, 50) if lat else 0, "p99": rv.pct(lat, 99) if lat else 0,
                    "first_error": next((s.error for s in rstreams if s.t_open is None), None)}
            now = time.monotonic()
            for s in rstreams:
                if s.t_end is None:
                    rloop._end(s, now)
            if rate["failed"]:
                say(f"open rate: {rate['failed']} failed, first: {rate['first_error']}")
                return 1
            wait_until = time.monotonic() + 30
            while time.monotonic() < wait_until and any(
                    (n.metrics().value("herald_streams_open") or 0) > 0 for n in nodes):
                time.sleep(0.1)

        # ---- the streams under test ------------------------------------------------
        loop = rv.Loop()
        streams = [FStream(i, nodes[i % 2], sid, tok, f"bench:u{i + 1}")
                   for i, (sid, tok) in enumerate(single)]
        bulk = [FStream(len(streams) + i, nodes[i % 2], sid, tok, f"bench:b{i + 1}")
                for i, (sid, tok) in enumerate(bulk_sessions)]
        everyone = streams + bulk
        say(f"opening {len(streams)} + {len(bulk)} streams on both nodes")
        open_secs = rv.open_streams(loop, everyone, args.batch)
        opened = [s for s in everyone if s.t_open is not None and s.t_end is None]
        failed = [s for s in everyone if s.t_open is None]
        say(f"{len(opened)} streams open in {open_secs:.2f} s, {len(failed)} failed")
        if failed:
            say(f"first failure: stream {failed[0].idx}: {failed[0].error or 'no herald.open'}")
            return 1
        ended_before = len(loop.ended)
        psql = rv.Psql(loop, conninfo)
        psql.query("SELECT 1")
        run_loop(loop, args.settle)

        # ---- single deletions ------------------------------------------------------
        step = max(1, len(streams) // max(1, args.deletions))
        targets = streams[::step][:args.deletions]
        from_send, from_return, end_from_send, rtt, lost, wrong = [], [], [], [], [], []
        for s in targets:
            gid = grant_ids[s.idx]
            t0 = time.monotonic()
            psql.send(f"WITH d AS (DELETE FROM herald.grants WHERE id = {gid} RETURNING 1) "
                      "SELECT count(*) FROM d")
            deadline = t0 + 5.0
            while (psql.t_done is None or s.t_end is None) and time.monotonic() < deadline:
                loop.run_once(0.05)
            if psql.t_done is None or psql.result != "1":
                raise RuntimeError(f"deleting grant {gid} answered {psql.result!r}")
            rtt.append(psql.t_done - t0)
            if s.t_forbidden is None or s.t_end is None:
                lost.append(s)
                continue
            if not s.forbidden_ok():
                wrong.append(s)
            from_send.append(s.t_forbidden - t0)
            from_return.append(s.t_forbidden - psql.t_done)
            end_from_send.append(s.t_end - t0)
            run_loop(loop, args.pause / 1000)
        collateral_single = [x for x in loop.ended[ended_before:] if x not in targets]

        # ---- burst: many single-row deletions back to back -------------------------
        burst_res = None
        collateral_burst = []
        burst_targets = []
        if args.burst:
            untouched = [x for x in streams if x not in targets]
            burst_targets = untouched[::max(1, len(untouched) // args.burst)][:args.burst]

            def probes(sessions, label):
                ps = [FStream(-1 - i, nodes[i % 2], sid, tok, "bench:rate")
                      for i, (sid, tok) in enumerate(sessions)]
                for x in ps:
                    loop.connect(x)
                return ps

            def settle_probes(ps, deadline):
                while any(x.t_open is None and x.t_end is None for x in ps) and \
                        time.monotonic() < deadline:
                    loop.run_once(0.05)
                lat = [x.t_open - x.t_connect for x in ps if x.t_open is not None]
                return lat, len(ps) - len(lat)

            idle_probes = probes(probe_sessions[:args.probes], "idle")
            idle_lat, idle_failed = settle_probes(idle_probes, time.monotonic() + 30)
            mark = len(loop.ended)
            t0 = time.monotonic()
            psql.send(";\n".join(
                f"WITH d AS (DELETE FROM herald.grants WHERE id = {grant_ids[x.idx]} RETURNING 1) "
                "SELECT count(*) FROM d" for x in burst_targets))
            deadline = t0 + 120.0
            while (psql.t_done is None or any(x.t_end is None for x in burst_targets)) and \
                    time.monotonic() < deadline:
                loop.run_once(0.05)
            closed = [x for x in burst_targets if x.t_forbidden is not None and x.t_end is not None]
            wrong += [x for x in closed if not x.forbidden_ok()]
            backlog = {n.node_id: n.metrics().value("herald_db_queue_depth") for n in nodes}
            # Opens once every burst target has ended (the re-checks that are
            # still queued then have nothing left to find).
            t_busy = time.monotonic() - t0
            busy_probes = probes(probe_sessions[args.probes:], "busy")
            busy_lat, busy_failed = settle_probes(busy_probes, deadline)
            drained = {}
            while len(drained) < len(nodes) and time.monotonic() < deadline:
                for n in nodes:
                    if n.node_id not in drained and not n.metrics().value("herald_db_queue_depth"):
                        drained[n.node_id] = time.monotonic() - t0
                loop.run_once(0.02)
            burst_res = {
                "stmt": (psql.t_done - t0) if psql.t_done else None, "closed": len(closed),
                "backlog": backlog, "drained": drained, "t_busy": t_busy,
                "first": min(x.t_forbidden - t0 for x in closed) if closed else None,
                "median": rv.pct([x.t_forbidden - t0 for x in closed], 50) if closed else None,
                "last": max(x.t_forbidden - t0 for x in closed) if closed else None,
                "idle": idle_lat, "idle_failed": idle_failed, "busy": busy_lat,
                "busy_failed": busy_failed,
            }
            probes_all = idle_probes + busy_probes
            collateral_burst = [x for x in loop.ended[mark:] if x not in burst_targets
                                and x not in probes_all]
            now = time.monotonic()
            for x in probes_all:
                if x.t_end is None:
                    loop._end(x, now)
            run_loop(loop, args.settle)

        # ---- bulk: the role's grant ------------------------------------------------
        bulk_res = None
        collateral_bulk = []
        if bulk:
            mark = len(loop.ended)
            t0 = time.monotonic()
            psql.send(f"WITH d AS (DELETE FROM herald.grants WHERE id = {role_grant} RETURNING 1) "
                      "SELECT count(*) FROM d")
            deadline = t0 + 30.0
            while (psql.t_done is None or any(b.t_end is None for b in bulk)) and \
                    time.monotonic() < deadline:
                loop.run_once(0.05)
            closed = [b for b in bulk if b.t_forbidden is not None and b.t_end is not None]
            wrong += [b for b in closed if not b.forbidden_ok()]
            bulk_res = {
                "stmt": (psql.t_done - t0) if psql.t_done else None, "closed": len(closed),
                "first": min(b.t_forbidden - t0 for b in closed) if closed else None,
                "median": rv.pct([b.t_forbidden - t0 for b in closed], 50) if closed else None,
                "last": max(b.t_forbidden - t0 for b in closed) if closed else None,
                "last_end": max(b.t_end - t0 for b in closed) if closed else None,
                "per_node": {n.node_id: max((b.t_end - t0 for b in closed if b.node is n), default=None)
                             for n in nodes},
            }
            collateral_bulk = [x for x in loop.ended[mark:] if x not in bulk]

        others = [s for s in everyone if s.other]
        gone = set(targets) | set(burst_targets)
        still_open = [s for s in streams if s not in gone and s.t_end is None]
        psql.close()
        psql = None
        exits = {n.node_id: n.stop(timeout=15) for n in nodes}

        # ---- report ----------------------------------------------------------------
        print()
        print(f"herald policy re-check benchmark — 2 nodes, {os.cpu_count()} CPUs shared by client, "
              "servers and PostgreSQL")
        if rate:
            print(f"  open rate (1 node)        {rate['n']} streams (one session each, 1 channel, "
                  f"{args.batch} in flight) in {rate['secs']:.2f} s = {rate['n'] / rate['secs']:.0f} /s; "
                  f"connect -> herald.open p50 {rv.ms(rate['p50'])} ms, p99 {rv.ms(rate['p99'])} ms")
        print(f"  streams open              {len(opened)} ({len(streams)} with a user grant each + "
              f"{len(bulk)} through the role 'bulk'), {open_secs:.2f} s, "
              f"{len(opened) / open_secs:.0f} /s")
        print(f"  single grant deletions    {len(targets)} (one at a time, psql autocommit; each "
              f"re-decides the tenant's {len(everyone)} streams), {len(lost)} without "
              "herald.forbidden + end within 5 s")
        if from_send:
            print(f"  sent -> herald.forbidden  p50 {rv.ms(rv.pct(from_send, 50))} ms, p99 "
                  f"{rv.ms(rv.pct(from_send, 99))} ms, max {rv.ms(max(from_send))} ms   (upper bound "
                  "of commit -> client)")
            print(f"  returned -> forbidden     p50 {rv.ms(rv.pct(from_return, 50))} ms, p99 "
                  f"{rv.ms(rv.pct(from_return, 99))} ms, max {rv.ms(max(from_return))} ms   (lower "
                  "bound; < 0: the client had it before psql's answer)")
            print(f"  sent -> stream end        p50 {rv.ms(rv.pct(end_from_send, 50))} ms, p99 "
                  f"{rv.ms(rv.pct(end_from_send, 99))} ms, max {rv.ms(max(end_from_send))} ms")
            print(f"  statement round trip      p50 {rv.ms(rv.pct(rtt, 50))} ms, p99 "
                  f"{rv.ms(rv.pct(rtt, 99))} ms (DELETE sent -> psql answered)")
        if burst_res:
            b = burst_res
            print(f"  burst of deletions        {len(burst_targets)} user grants, one autocommit "
                  f"statement each, sent back to back: statements {rv.ms(b['stmt'] or 0)} ms; "
                  f"{b['closed']} closed")
            if b["closed"]:
                print(f"    sent -> herald.forbidden first {rv.ms(b['first'])} ms, median "
                      f"{rv.ms(b['median'])} ms, last {rv.ms(b['last'])} ms")
            print("    db job queue at last   " + ", ".join(
                f"{k} {v:.0f} jobs" for k, v in b["backlog"].items() if v is not None)
                + "; empty at " + ", ".join(f"{k} {rv.ms(v)} ms" for k, v in b["drained"].items()))
            if b["idle"] and b["busy"]:
                print(f"    stream opens at {rv.ms(b['t_busy'])} ms  {len(b['busy'])} probes: connect -> "
                      "herald.open median "
                      f"{rv.ms(rv.pct(b['busy'], 50))} ms, max {rv.ms(max(b['busy']))} ms (idle: median "
                      f"{rv.ms(rv.pct(b['idle'], 50))} ms, max {rv.ms(max(b['idle']))} ms); "
                      f"{b['busy_failed'] + b['idle_failed']} probes failed")
        if bulk_res:
            b = bulk_res
            print(f"  bulk: role grant deleted  {len(bulk)} streams: statement "
                  f"{rv.ms(b['stmt'] or 0)} ms; {b['closed']} closed")
            if b["closed"]:
                print(f"    sent -> herald.forbidden first {rv.ms(b['first'])} ms, median "
                      f"{rv.ms(b['median'])} ms, last {rv.ms(b['last'])} ms; last stream end "
                      f"{rv.ms(b['last_end'])} ms")
                print("    last end per node      " + ", ".join(
                    f"{k} {rv.ms(v) if v is not None else '-'} ms" for k, v in b["per_node"].items()))
        print(f"  wrong herald.forbidden    {len(wrong)} (data other than the stream's channel; must be 0)"
              + (f", first: {wrong[0].forbidden_data}" if wrong else ""))
        print(f"  other streams ended       "
              f"{len(collateral_single) + len(collateral_burst) + len(collateral_bulk)} "
              "(must be 0)")
        print(f"  unexpected events         {len(others)}"
              + (f" (first: {others[0].other})" if others else ""))
        print(f"  untouched streams open    {len(still_open)} of {len(streams) - len(gone)}")
        print("  herald exit               " + ", ".join(f"{k} {v}" for k, v in exits.items()))
        rv.print_node_logs(nodes)
        ok = (not lost and not wrong and not collateral_single and not collateral_bulk
              and not collateral_burst and not others and len(still_open) == len(streams) - len(gone)
              and (not bulk_res or bulk_res["closed"] == len(bulk))
              and (not burst_res or (burst_res["closed"] == len(burst_targets)
                                     and not burst_res["idle_failed"] and not burst_res["busy_failed"]))
              and all(v == 0 for v in exits.values()))
        rc = 0 if ok else 1
        return rc
    finally:
        rv.stop_all(psql, nodes, rc, say)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--streams", type=int, default=1000,
                   help="streams with a user grant each [1000]")
    p.add_argument("--deletions", type=int, default=200, help="single grant deletions [200]")
    p.add_argument("--bulk", type=int, default=500,
                   help="streams of the role whose grant goes in one DELETE [500]; 0 = none")
    p.add_argument("--burst", type=int, default=100,
                   help="user grants deleted back to back, one statement each [100]; 0 = none")
    p.add_argument("--probes", type=int, default=10,
                   help="streams opened while idle and during the burst, to time opens [10]")
    p.add_argument("--open", type=int, default=2000,
                   help="streams for the one-node open rate [2000]; 0 = skip")
    p.add_argument("--pause", type=float, default=10, help="ms between single deletions [10]")
    p.add_argument("--settle", type=float, default=1.0, help="s idle after opening [1]")
    p.add_argument("--batch", type=int, default=200, help="opens in flight at once [200]")
    p.add_argument("--herald-bin", default=harness.herald_bin(), help="[$HERALD_BIN or src/herald]")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    return rv.run_in_pg(args, argv, __file__, inner, say)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
