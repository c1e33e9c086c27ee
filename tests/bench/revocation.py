#!/usr/bin/env python3
"""revocation.py — how fast a committed revocation ends the session's
streams, on two herald nodes (tests/bench/README.md explains the numbers):

    python3 tests/bench/revocation.py                  # defaults below
    python3 tests/bench/revocation.py --streams 2000 --revocations 400

1. starts a private PostgreSQL through tests/integration/harness.py pg-run,
   which re-runs this script with --inner and, on exit, Ctrl-C or failure,
   stops it and removes the temp dir;
2. --inner: installs the schema (herald --migrate), creates a tenant/org
   (features and grants where the schema has them), issues one session per
   stream for STREAMS users plus BULK sessions of one "bulk" user, starts
   two nodes from a *copy* of src/herald (a rebuild during the run cannot
   change it) with log_level = warn and the per-user/IP caps lifted;
3. opens STREAMS streams (one session each, alternating nodes) and BULK
   streams of the bulk user, all from one selectors (epoll) loop with
   non-blocking sockets;
4. single revocations: REVOCATIONS times, one at a time, `SELECT
   herald.revoke_session(id)` (autocommit) on a persistent psql connection
   whose output the same loop reads, and times statement sent / statement
   returned -> that stream's `herald.revoked` and its end;
5. bulk: `SELECT herald.revoke_user(tenant, 'bulk')` -> until the last of
   the BULK streams has ended;
6. prints the table; exit 0 only if every stream opened, every revoked
   stream got herald.revoked and ended, no other stream ended, and both
   nodes exited cleanly.

Standard library only.
"""

import argparse
import errno
import hashlib
import os
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import harness  # noqa: E402

CHANNEL = "bench:revoke"
MARK_OPEN = "event: herald.open"
MARK_REVOKED = "event: herald.revoked"


def say(msg):
    print(f"revocation: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# one SSE stream on a non-blocking socket


class Stream:
    __slots__ = ("idx", "node", "session", "sock", "out", "head", "status", "chunked", "raw",
                 "chunk_left", "chunk_state", "tail", "t_connect", "t_open", "t_revoked",
                 "t_end", "other", "error")

    def __init__(self, idx, node, session, token):
        self.idx = idx
        self.node = node
        self.session = session
        self.sock = None
        self.out = (f"GET /v1/stream?channel={CHANNEL} HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n"
                    f"Accept: text/event-stream\r\nAuthorization: Bearer {token}\r\n"
                    "Connection: close\r\n\r\n").encode()
        self.head = b""
        self.status = None
        self.chunked = False
        self.raw = b""
        self.chunk_left = 0
        self.chunk_state = "size"
        self.tail = ""
        self.t_connect = self.t_open = self.t_revoked = self.t_end = None
        self.other = None  # first unexpected event type
        self.error = None

    # -- body decoding (chunked or until close) --------------------------------

    def _dechunk(self, data):
        self.raw += data
        out = []
        while True:
            if self.chunk_state == "size":
                i = self.raw.find(b"\r\n")
                if i < 0:
                    break
                size = int(self.raw[:i].split(b";")[0].strip() or b"0", 16)
                self.raw = self.raw[i + 2:]
                if size == 0:
                    self.chunk_state = "done"
                    break
                self.chunk_left, self.chunk_state = size, "data"
            elif self.chunk_state == "data":
                if not self.raw:
                    break
                piece = self.raw[:self.chunk_left]
                out.append(piece)
                self.raw = self.raw[len(piece):]
                self.chunk_left -= len(piece)
                if self.chunk_left == 0:
                    self.chunk_state = "crlf"
            elif self.chunk_state == "crlf":
                if len(self.raw) < 2:
                    break
                self.raw = self.raw[2:]
                self.chunk_state = "size"
            else:
                break
        return b"".join(out)

    def feed(self, data, now):
        """Consumes bytes read from the socket; returns True when the
        response has ended (terminating chunk)."""
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
            text = self.tail + body.decode("utf-8", "replace")
            if self.t_open is None and MARK_OPEN in text:
                self.t_open = now
            if self.t_revoked is None and MARK_REVOKED in text:
                self.t_revoked = now
            if self.other is None:
                for line in text.split("\n"):
                    if line.startswith("event: ") and line[7:].strip() not in ("herald.open",
                                                                               "herald.revoked"):
                        self.other = line[7:].strip()
            self.tail = text[-64:]
        return self.chunked and self.chunk_state == "done"


class Loop:
    """One selectors loop for every stream and the psql session."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.connecting = 0
        self.ended = []  # streams that ended, in order

    def connect(self, s):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sock = sock
        s.t_connect = time.monotonic()
        self.connecting += 1
        rc = sock.connect_ex(("127.0.0.1", s.node.port))
        if rc not in (0, errno.EINPROGRESS):
            s.error = f"connect: {os.strerror(rc)}"
            self._end(s, s.t_connect)
            return
        self.sel.register(sock, selectors.EVENT_WRITE, s)

    def _end(self, s, now):
        if s.t_end is not None:
            return
        s.t_end = now
        if s.t_open is None:
            self.connecting -= 1
        try:
            self.sel.unregister(s.sock)
        except (KeyError, ValueError):
            pass
        s.sock.close()
        self.ended.append(s)

    def run_once(self, timeout):
        events = self.sel.select(timeout)
        now = time.monotonic()
        for key, mask in events:
            s = key.data
            if isinstance(s, Psql):
                s.on_readable(now)
                continue
            if mask & selectors.EVENT_WRITE:
                err = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    s.error = f"connect: {os.strerror(err)}"
                    self._end(s, now)
                    continue
                try:
                    n = s.sock.send(s.out)
                except OSError as e:
                    s.error = f"send: {e}"
                    self._end(s, now)
                    continue
                s.out = s.out[n:]
                if not s.out:
                    self.sel.modify(s.sock, selectors.EVENT_READ, s)
                continue
            try:
                data = s.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                s.error = s.error or f"recv: {e}"
                data = b""
            if not data:
                self._end(s, now)
                continue
            had_open = s.t_open is not None
            done = s.feed(data, now)
            if not had_open and s.t_open is not None:
                self.connecting -= 1
            if done or (s.error and s.status is not None and s.status != 200):
                self._end(s, now)


class Psql:
    """A persistent psql session driven through the loop's selector."""

    def __init__(self, loop, conninfo):
        self.proc = subprocess.Popen(
            [os.path.join(harness.pg_bindir(), "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
             "-d", conninfo], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        os.set_blocking(self.proc.stdout.fileno(), False)
        loop.sel.register(self.proc.stdout, selectors.EVENT_READ, self)
        self.loop = loop
        self.buf = b""
        self.n = 0
        self.marker = None
        self.result = None
        self.t_done = None

    def send(self, sql):
        self.n += 1
        self.marker = f"__bench_done_{self.n}__".encode()
        self.result = self.t_done = None
        self.buf = b""
        self.proc.stdin.write(f"{sql};\n\\echo {self.marker.decode()}\n".encode())

    def on_readable(self, now):
        try:
            data = os.read(self.proc.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        if not data:
            raise RuntimeError("psql exited (SQL error?)")
        self.buf += data
        i = self.buf.find(self.marker + b"\n") if self.marker else -1
        if i >= 0:
            self.result = self.buf[:i].decode().strip()
            self.t_done = now
            self.marker = None

    def query(self, sql, timeout=60):
        """Sends sql and runs the loop until psql has answered."""
        self.send(sql)
        deadline = time.monotonic() + timeout
        while self.t_done is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"psql did not answer within {timeout}s: {sql[:100]}")
            self.loop.run_once(0.5)
        return self.result

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


# ---------------------------------------------------------------------------


def pct(values, p):
    """Nearest-rank percentile of a non-empty list."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


def ms(x):
    return f"{x * 1000:.1f}"


def open_streams(loop, streams, batch, timeout=120):
    started = time.monotonic()
    pending = list(reversed(streams))
    deadline = started + timeout
    while pending or loop.connecting > 0:
        while pending and loop.connecting < batch:
            loop.connect(pending.pop())
        if time.monotonic() > deadline:
            break
        loop.run_once(0.5)
    return time.monotonic() - started


# ---- scaffolding shared with forbidden.py -------------------------------------

# SPEC §6 keys only; caps and rates far above what a bench opens.
NODE_CONFIG = {"log_level": "warn", "max_connections_per_user": 1000000,
               "max_connections_per_ip": 1000000, "subscribe_per_minute": 1000000,
               "publish_per_second": 1000000}


def prepare(args, files, log):
    """Inside pg-run: raises the fd limit to `files`, copies the herald
    binary (a rebuild during the run cannot touch it), migrates. Returns
    (tmp, conninfo, binary, pg) or None after logging why not."""
    tmp = os.environ["HERALD_TMPDIR"]
    conninfo = os.environ["HERALD_DB"]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < files:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(files, soft)), hard))
    binary = os.path.join(tmp, "herald")
    shutil.copy2(args.herald_bin, binary)
    r = subprocess.run([binary, "--migrate", "--db", conninfo], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if r.returncode != 0:
        log("herald --migrate failed:\n" + r.stdout.decode("utf-8", "replace"))
        return None
    pg = harness.Postgres(tmp)  # not started: the cluster pg-run started
    pg.port = int(os.environ["PGPORT"])
    return tmp, conninfo, binary, pg


def issue_tokens(pg, scope, user_expr, n):
    """n sessions for users named by the SQL expression over g; returns
    [(session id, token)] in order."""
    toks = [row[0] for row in pg.sql(
        "SELECT herald.issue_token(" + user_expr + ", $1, $2, '1 day') "
        "FROM generate_series(1, $3::int) g ORDER BY g", scope.tenant, scope.org, n, timeout=120)]
    ids = dict(pg.sql("SELECT encode(token_hash, 'hex'), id FROM herald.sessions "
                      "WHERE tenant_id = $1", scope.tenant, timeout=120))
    return [(int(ids[hashlib.sha256(t.encode()).hexdigest()]), t) for t in toks]


def print_node_logs(nodes):
    for n in nodes:
        lines = [ln for ln in n.log_text().splitlines() if not ln.startswith("=== harness")]
        if lines:
            print(f"  {n.node_id} log ({len(lines)} lines), first: {lines[0][:200]}")


def stop_all(psql, nodes, rc, log):
    if psql:
        psql.close()
    for n in nodes:
        n.stop(timeout=5)
    if rc != 0:
        for n in nodes:
            log(f"{n.node_id} log tail:\n" + "\n".join(harness.tail(n.logfile, 20)))


def run_in_pg(args, argv, script, inner, log):
    """main(): run inner(args) inside `harness.py pg-run` (a private
    PostgreSQL for the run), re-invoking script with --inner."""
    args.herald_bin = os.path.abspath(args.herald_bin)
    if args.inner:
        sys.stdout.reconfigure(line_buffering=True)
        return inner(args)
    if not os.access(args.herald_bin, os.X_OK):
        log(f"{args.herald_bin} is not built (make)")
        return 2
    return subprocess.call([sys.executable, os.path.join(REPO, "tests", "integration", "harness.py"),
                            "pg-run", "--", sys.executable, os.path.abspath(script), "--inner"]
                           + argv + ["--herald-bin", args.herald_bin])


def inner(args):
    ready = prepare(args, args.streams + args.bulk + 256, say)
    if not ready:
        return 1
    tmp, conninfo, binary, pg = ready
    scope = harness.setup_scope(pg, features=("bench",))

    def issue(user_expr, n):
        return issue_tokens(pg, scope, user_expr, n)

    single = issue("'bench-u' || g", args.streams)
    bulk_sessions = issue("'bulk'", args.bulk_sessions) if args.bulk else []

    config = dict(NODE_CONFIG)
    if args.recheck_interval:
        config["session_recheck_interval"] = args.recheck_interval
    nodes = [harness.Herald(tmp, conninfo, f"bench-n{i}", config, binary=binary) for i in (1, 2)]
    rc = 1
    loop = Loop()
    psql = None
    try:
        for n in nodes:
            n.start(timeout=30)
        say(f"nodes {', '.join(f'{n.node_id} :{n.port}' for n in nodes)}; opening "
            f"{args.streams} + {args.bulk} streams")
        streams = [Stream(i, nodes[i % 2], sid, tok) for i, (sid, tok) in enumerate(single)]
        bulk = [Stream(len(streams) + i, nodes[i % 2], *bulk_sessions[i % len(bulk_sessions)])
                for i in range(args.bulk)]
        everyone = streams + bulk
        open_secs = open_streams(loop, everyone, args.batch)
        opened = [s for s in everyone if s.t_open is not None and s.t_end is None]
        failed = [s for s in everyone if s.t_open is None]
        say(f"{len(opened)} streams open in {open_secs:.2f} s, {len(failed)} failed")
        if failed:
            say(f"first failure: stream {failed[0].idx}: {failed[0].error or 'no herald.open'}")
            return 1
        ended_before = len(loop.ended)

        psql = Psql(loop, conninfo)
        psql.query("SELECT 1")
        # Settle: let the nodes finish post-open work (audit batches, ...).
        settle_until = time.monotonic() + args.settle
        while time.monotonic() < settle_until:
            loop.run_once(max(0.0, settle_until - time.monotonic()))

        # ---- single revocations ------------------------------------------------
        step = max(1, len(streams) // max(1, args.revocations))
        targets = streams[::step][:args.revocations]
        from_send, from_return, end_from_send, rtt, lost = [], [], [], [], []
        for s in targets:
            t0 = time.monotonic()
            psql.send(f"SELECT herald.revoke_session({s.session})")
            deadline = t0 + 5.0
            while (psql.t_done is None or s.t_end is None) and time.monotonic() < deadline:
                loop.run_once(0.05)
            if psql.t_done is None or psql.result != "t":
                raise RuntimeError(f"revoke_session({s.session}) answered {psql.result!r}")
            rtt.append(psql.t_done - t0)
            if s.t_revoked is None or s.t_end is None:
                lost.append(s)
                continue
            from_send.append(s.t_revoked - t0)
            from_return.append(s.t_revoked - psql.t_done)
            end_from_send.append(s.t_end - t0)
            pause_until = time.monotonic() + args.pause / 1000
            while time.monotonic() < pause_until:
                loop.run_once(max(0.0, pause_until - time.monotonic()))
        collateral_single = [x for x in loop.ended[ended_before:] if x not in targets]

        # ---- bulk revoke_user ----------------------------------------------------
        bulk_res = None
        if bulk:
            mark = len(loop.ended)
            t0 = time.monotonic()
            psql.send(f"SELECT herald.revoke_user('{scope.tenant}', 'bulk')")
            deadline = t0 + 30.0
            while (psql.t_done is None or any(b.t_end is None for b in bulk)) and \
                    time.monotonic() < deadline:
                loop.run_once(0.05)
            closed = [b for b in bulk if b.t_revoked is not None and b.t_end is not None]
            bulk_res = {
                "sessions": psql.result, "stmt": (psql.t_done - t0) if psql.t_done else None,
                "closed": len(closed),
                "first": min(b.t_revoked - t0 for b in closed) if closed else None,
                "median": pct([b.t_revoked - t0 for b in closed], 50) if closed else None,
                "last_revoked": max(b.t_revoked - t0 for b in closed) if closed else None,
                "last_end": max(b.t_end - t0 for b in closed) if closed else None,
                "per_node": {n.node_id: max((b.t_end - t0 for b in closed if b.node is n), default=None)
                             for n in nodes},
            }
            collateral_bulk = [x for x in loop.ended[mark:] if x not in bulk]
        else:
            collateral_bulk = []

        others = [s for s in everyone if s.other]
        still_open = [s for s in streams if s not in targets and s.t_end is None]
        psql.close()
        psql = None
        exits = {n.node_id: n.stop(timeout=15) for n in nodes}

        # ---- report ------------------------------------------------------------------
        print()
        print(f"herald revocation benchmark — 2 nodes, {os.cpu_count()} CPUs shared by client, "
              "server and PostgreSQL")
        print(f"  streams open              {len(opened)} ({args.streams} one session each + "
              f"{args.bulk} of user 'bulk' on {len(bulk_sessions)} sessions), "
              f"{open_secs:.2f} s, {len(opened) / open_secs:.0f} /s")
        print(f"  single revocations        {len(targets)} (one at a time, psql autocommit), "
              f"{len(lost)} without herald.revoked + end within 5 s")
        if from_send:
            print(f"  sent -> herald.revoked    p50 {ms(pct(from_send, 50))} ms, p99 "
                  f"{ms(pct(from_send, 99))} ms, max {ms(max(from_send))} ms   (upper bound of "
                  "commit -> client)")
            print(f"  returned -> herald.revoked p50 {ms(pct(from_return, 50))} ms, p99 "
                  f"{ms(pct(from_return, 99))} ms, max {ms(max(from_return))} ms   (lower bound; "
                  "< 0: the client had it before psql's answer)")
            print(f"  sent -> stream end        p50 {ms(pct(end_from_send, 50))} ms, p99 "
                  f"{ms(pct(end_from_send, 99))} ms, max {ms(max(end_from_send))} ms")
            print(f"  statement round trip      p50 {ms(pct(rtt, 50))} ms, p99 {ms(pct(rtt, 99))} ms "
                  "(revoke_session sent -> psql answered)")
            verdict = "met" if pct(from_send, 99) <= 0.100 else "NOT met"
            print(f"  goal p99 <= 100 ms        {verdict}")
        if bulk_res:
            b = bulk_res
            print(f"  bulk revoke_user          {b['sessions']} sessions, {len(bulk)} streams: "
                  f"statement {ms(b['stmt'] or 0)} ms; {b['closed']} closed")
            if b["closed"]:
                print(f"    sent -> herald.revoked  first {ms(b['first'])} ms, median "
                      f"{ms(b['median'])} ms, last {ms(b['last_revoked'])} ms; last stream end "
                      f"{ms(b['last_end'])} ms")
                print("    last end per node      " + ", ".join(
                    f"{k} {ms(v) if v is not None else '-'} ms" for k, v in b["per_node"].items()))
        print(f"  other streams ended       {len(collateral_single) + len(collateral_bulk)} "
              "(must be 0)")
        print(f"  unexpected events         {len(others)}"
              + (f" (first: {others[0].other})" if others else ""))
        print(f"  untouched streams open    {len(still_open)} of {len(streams) - len(targets)}")
        print("  herald exit               " + ", ".join(f"{k} {v}" for k, v in exits.items()))
        print_node_logs(nodes)
        ok = (not lost and not collateral_single and not collateral_bulk and not others
              and len(still_open) == len(streams) - len(targets)
              and (not bulk_res or bulk_res["closed"] == len(bulk))
              and all(v == 0 for v in exits.values()))
        rc = 0 if ok else 1
        return rc
    finally:
        stop_all(psql, nodes, rc, say)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--streams", type=int, default=1000, help="streams with one session each [1000]")
    p.add_argument("--revocations", type=int, default=200, help="single revocations [200]")
    p.add_argument("--bulk", type=int, default=500, help="streams of the bulk user [500]; 0 = none")
    p.add_argument("--bulk-sessions", type=int, default=None,
                   help="sessions of the bulk user [= --bulk: one stream each]")
    p.add_argument("--pause", type=float, default=10, help="ms between single revocations [10]")
    p.add_argument("--settle", type=float, default=1.0, help="s idle after opening [1]")
    p.add_argument("--batch", type=int, default=200, help="opens in flight at once [200]")
    p.add_argument("--recheck-interval", default=None,
                   help="session_recheck_interval for the nodes [server default]")
    p.add_argument("--herald-bin", default=harness.herald_bin(), help="[$HERALD_BIN or src/herald]")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.bulk_sessions is None:
        args.bulk_sessions = args.bulk
    args.bulk_sessions = max(1, min(args.bulk_sessions, args.bulk or 1))
    return run_in_pg(args, argv, __file__, inner, say)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
