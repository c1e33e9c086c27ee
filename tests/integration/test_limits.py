"""test_limits.py — abuse protection (SPEC §3 herald.overflow, §5.6, §6
stream_queue_bytes): a stream whose client reads too slowly is ended with
herald.overflow carrying the cursor of what it was sent, and resuming with
it delivers everything else exactly once; a long catch-up is read in steps
that fit the queue bound; publish and subscribe rates are token buckets
answering 429 rate_limited with Retry-After, per session, tenant and user,
with herald.limits overriding the config per tenant."""

import signal
import socket
import subprocess
import threading

from harness import HarnessError, problem_type, publish, publish_ok, wait_audit, wait_for, write_config

BIG = "x" * 60000  # an event of ~60 KB


def test_slow_reader_overflows_and_resumes_without_loss(ctx):
    node = ctx.node(config={"stream_queue_bytes": "256KiB", "publish_per_second": 100000})
    scope = ctx.scope()
    token = scope.token()
    slow, _ = ctx.subscribe(node, ["chat:flood"], token)
    # The client does not read while 24 MB are published: more than the
    # kernel buffers on both ends hold, so herald's own queue fills.
    ids = [publish_ok(node, token, "chat:flood", "big", {"i": i, "blob": BIG}) for i in range(400)]

    events = slow.read_until(lambda e: e.type == "herald.overflow", timeout=30)
    first = [e.json()["id"] for e in events if e.type == "big"]
    overflow = events[-1]
    assert first == ids[:len(first)] and len(first) < len(ids), \
        f"the slow reader got a prefix ({len(first)} of {len(ids)}) before herald.overflow"
    slow.wait_end(timeout=10)
    rest, _ = ctx.subscribe(node, ["chat:flood"], token, last_event_id=overflow.id)
    tail = [e.json()["id"] for e in rest.read_until(
        lambda e: e.type == "big" and e.json()["id"] == ids[-1], timeout=30) if e.type == "big"]
    assert first + tail == ids, "resuming from herald.overflow's id: the rest, exactly once"
    rows = wait_audit(ctx.pg, node, "stream.close",
                      lambda r: r["detail"].get("reason") == "overflow", 1)
    assert rows[0]["channel"] == "chat:flood", rows
    assert node.metrics().value("herald_streams_closed_total", reason="overflow") == 1


def test_long_catch_up_is_read_in_steps_within_the_bound(ctx):
    node = ctx.node(config={"stream_queue_bytes": "128KiB", "publish_per_second": 100000})
    scope = ctx.scope()
    token = scope.token()
    client, opened = ctx.subscribe(node, ["chat:backlog"], token)
    start = opened.id
    client.close()
    ids = [publish_ok(node, token, "chat:backlog", "big", {"i": i, "blob": BIG}) for i in range(60)]
    # 3.6 MB of backlog through a 128 KiB queue: only paced reading gets
    # it all to a reader that keeps up, without an overflow.
    again, _ = ctx.subscribe(node, ["chat:backlog"], token, last_event_id=start)
    events = again.read_until(lambda e: e.type in ("herald.overflow",) or
                              (e.type == "big" and e.json()["id"] == ids[-1]), timeout=60)
    assert [e.type for e in events if e.type.startswith("herald.")] == [], events[-1]
    assert [e.json()["id"] for e in events if e.type == "big"] == ids
    steps = node.log_text().count('"msg":"catch-up step"')
    assert steps >= 20, f"3.6 MB through a 128 KiB bound takes many steps, not {steps}"


def test_publish_rate_per_session_is_429_with_retry_after(ctx):
    node = ctx.node(config={"publish_per_second": 5})
    scope = ctx.scope()
    token, other = scope.token(), scope.token()
    statuses = [publish(node, token, "chat:r", "msg", {"i": i}) for i in range(8)]
    refused = [r for r in statuses if r.status != 201]
    assert [r.status for r in statuses[:5]] == [201] * 5, statuses
    assert refused and all(r.status == 429 and problem_type(r) == "urn:herald:rate_limited"
                           for r in refused), refused
    assert all(int(r.header("Retry-After")) == 1 for r in refused), refused
    assert publish(node, other, "chat:r", "msg", {}).status == 201, "another session has its own budget"
    rows = wait_audit(ctx.pg, node, "publish", lambda r: r["detail"]["reason"] == "rate_limited",
                      len(refused))
    assert rows[0]["detail"]["status"] == 429, rows
    assert node.metrics().value("herald_http_errors_total", code="rate_limited") >= len(refused)


def test_tenant_publish_budget_and_herald_limits_override(ctx):
    node = ctx.node(config={"tenant_publish_per_second": 3, "publish_per_second": 1000})
    scope, other = ctx.scope(), ctx.scope()
    a, b = scope.token(), scope.token()
    got = [publish(node, t, "chat:t", "msg", {}).status for t in (a, b, a, b, a)]
    assert got[:3] == [201] * 3 and 429 in got[3:], f"3 per second for the whole tenant: {got}"
    ctx.pg.sql("INSERT INTO herald.limits (tenant_id, tenant_publish_per_second, publish_per_second)"
               " VALUES ($1, 0, 2)", other.tenant)
    ctx.on_cleanup(lambda: ctx.pg.sql("DELETE FROM herald.limits WHERE tenant_id = $1", other.tenant))
    c = other.token()
    got = [publish(node, c, "chat:t", "msg", {}).status for _ in range(4)]
    assert got[:2] == [201, 201] and got[2:] == [429, 429], \
        f"herald.limits: no tenant budget, 2 per session per second: {got}"


def test_subscribe_rate_per_user_is_429(ctx):
    node = ctx.node(config={"subscribe_per_minute": 3})
    scope = ctx.scope()
    user = scope.user()
    tokens = [scope.token(user=user) for _ in range(4)]
    for t in tokens[:3]:
        ctx.subscribe(node, ["chat:s"], t)
    refused = ctx.sse(node, ["chat:s"], token=tokens[3], expect=None)
    assert refused.status == 429 and problem_type(refused) == "urn:herald:rate_limited", refused.body
    assert 1 <= int(refused.header("Retry-After")) <= 20, refused.header("Retry-After")
    ctx.subscribe(node, ["chat:s"], scope.token())  # another user
    rows = wait_audit(ctx.pg, node, "stream.open",
                      lambda r: r["outcome"] == "rejected" and r["detail"]["reason"] == "rate_limited", 1)
    assert rows[0]["user_id"] == user, rows


def test_user_cap_holds_across_nodes(ctx):
    caps = {"max_connections_per_user": 2}
    n1, n2 = ctx.node("n1", config=caps), ctx.node("n2", config=caps)
    scope = ctx.scope()
    user = scope.user()
    token = scope.token(user=user)
    first, _ = ctx.subscribe(n1, ["chat:a"], token)
    ctx.subscribe(n1, ["chat:b"], token)
    refused = ctx.sse(n1, ["chat:c"], token=token, expect=None)
    assert refused.status == 429 and problem_type(refused) == "urn:herald:too_many_connections", \
        refused.body
    assert int(refused.header("Retry-After")) >= 1
    # n2 counts n1's streams once n1 has written them (a batch per tick).
    wait_for(lambda: ctx.pg.sql_value(
        "SELECT coalesce(sum(streams), 0) FROM herald.node_streams WHERE tenant_id = $1 AND user_id = $2",
        scope.tenant, user) == "2", 10, what="n1's stream counts written")
    other = ctx.sse(n2, ["chat:c"], token=token, expect=None)
    assert other.status == 429, f"the cap counts streams on every node: {other.status}"
    ctx.subscribe(n2, ["chat:c"], scope.token())  # another user is not capped
    first.close()
    wait_for(lambda: ctx.pg.sql_value(
        "SELECT coalesce(sum(streams), 0) FROM herald.node_streams WHERE tenant_id = $1 AND user_id = $2",
        scope.tenant, user) == "1", 10, what="the closed stream uncounted")
    ctx.subscribe(n2, ["chat:c"], token)
    rows = wait_audit(ctx.pg, n2, "stream.open",
                      lambda r: r["detail"]["reason"] == "too_many_connections", 1)
    assert rows[0]["user_id"] == user and rows[0]["detail"]["status"] == 429, rows


def test_tenant_cap_from_herald_limits(ctx):
    node = ctx.node()
    scope = ctx.scope()
    ctx.pg.sql("INSERT INTO herald.limits (tenant_id, max_connections) VALUES ($1, 2)", scope.tenant)
    ctx.on_cleanup(lambda: ctx.pg.sql("DELETE FROM herald.limits WHERE tenant_id = $1", scope.tenant))
    ctx.subscribe(node, ["chat:a"], scope.token())
    ctx.subscribe(node, ["chat:a"], scope.token())
    r = ctx.sse(node, ["chat:a"], token=scope.token(), expect=None)
    assert r.status == 429 and problem_type(r) == "urn:herald:too_many_connections", \
        "herald.limits.max_connections caps the tenant's streams"
    ctx.subscribe(node, ["chat:a"], ctx.scope().token())  # another tenant


def test_address_cap_comes_before_credentials(ctx):
    node = ctx.node(config={"max_connections_per_ip": 2})
    scope = ctx.scope()
    ctx.subscribe(node, ["chat:a"], scope.token())
    ctx.subscribe(node, ["chat:a"], scope.token())
    r = ctx.sse(node, ["chat:a"], token=scope.token(), expect=None)
    assert r.status == 429 and problem_type(r) == "urn:herald:too_many_connections", \
        "max_connections_per_ip = 2"
    r = ctx.sse(node, ["chat:a"], expect=None)
    assert r.status == 429, "without a credential: the address cap is checked first (SPEC §2)"
    rows = wait_audit(ctx.pg, node, "stream.open",
                      lambda r: r["detail"]["reason"] == "too_many_connections", 2)
    assert all(r["user_id"] is None and r["detail"]["status"] == 429 for r in rows), rows


def test_overload_refuses_new_work_while_open_streams_flow(ctx):
    node = ctx.node(config={"db_workers": 1, "max_db_queue": 2, "publish_per_second": 100000})
    scope = ctx.scope()
    token = scope.token()
    watcher, _ = ctx.subscribe(node, ["chat:open"], token)
    publish_ok(node, token, "chat:locked", "msg", {})
    # A transaction holding the channel's head row makes publishes to it
    # wait in the node's only worker; more queue up behind them.
    holder = subprocess.Popen(ctx.pg.psql_argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    ctx.on_cleanup(holder.kill)
    holder.stdin.write("BEGIN; SELECT 1 FROM herald.channel_heads WHERE tenant_id = '%s' "
                       "AND channel = 'chat:locked' FOR UPDATE; SELECT pg_sleep(30);\n" % scope.tenant)
    holder.stdin.flush()
    wait_for(lambda: ctx.pg.sql_value("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a "
                                      "USING (pid) WHERE a.query LIKE '%pg_sleep(30)%' "
                                      "AND l.mode = 'RowShareLock'") != "0", 10,
             what="the row lock held")
    results = []

    def publish_locked():
        try:
            results.append(publish(node, token, "chat:locked", "msg", {}, timeout=30).status)
        except (OSError, HarnessError) as e:
            results.append(repr(e))
    threads = [threading.Thread(target=publish_locked) for _ in range(3)]
    for t in threads:
        t.start()
    # The blocked publish gives up after lock_timeout (5 s) and the queue
    # moves on, so the queue is observed through the answers themselves:
    # every publish not refused adds to it, until one is.
    def refused_publish():
        try:
            r = publish(node, token, "chat:other", "msg", {}, timeout=1)
        except (OSError, HarnessError):
            return None  # accepted and waiting in the queue
        return r if r.status == 503 else None
    r = wait_for(refused_publish, 30, what="a publish refused for overload")
    assert problem_type(r) == "urn:herald:unavailable" and r.header("Retry-After") == "1", r

    def refused_stream():
        try:
            c = ctx.sse(node, ["chat:open"], token=token, expect=None, timeout=1)
        except (OSError, HarnessError):
            return None
        return c if c.status == 503 else None
    wait_for(refused_stream, 30, what="a stream open refused for overload")
    scope.publish_sql("chat:open", "msg", {"still": "flowing"})
    ev = watcher.read_until_type("msg", timeout=5)[-1]
    assert ev.json()["data"] == {"still": "flowing"}, "open streams keep receiving"
    ctx.pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
               "WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()")
    holder.kill()
    for t in threads:
        t.join()
    assert all(s in (201, 503) for s in results), results
    wait_audit(ctx.pg, node, "publish", lambda r: r["detail"].get("cause") == "overload", 1)


def raw_post(node, head_lines, first_bytes, timeout=10):
    """Sends a POST head and the start of a body, never the rest; returns
    (status line, whether the server closed the connection)."""
    s = socket.create_connection(("127.0.0.1", node.port), timeout=timeout)
    try:
        s.sendall(("\r\n".join(head_lines) + "\r\n\r\n").encode() + first_bytes)
        data = b""
        while True:
            part = s.recv(65536)
            if not part:
                return data.split(b"\r\n", 1)[0].decode(), True, data
            data += part
    except socket.timeout:
        return data.split(b"\r\n", 1)[0].decode(), False, data
    finally:
        s.close()


def test_oversized_bodies_are_refused_before_they_are_read(ctx):
    node = ctx.node(config={"max_event_bytes": "4KiB"})
    scope = ctx.scope()
    token = scope.token()
    head = ["POST /v1/channels/chat:x/events HTTP/1.1", "Host: x", "Content-Type: application/json"]
    status, closed, body = raw_post(node, head + [f"Authorization: Bearer {token}",
                                                  "Content-Length: 100000000"], b"{\"type\":")
    assert status.startswith("HTTP/1.1 413") and closed, (status, closed)
    assert b"payload_too_large" in body
    status, closed, _ = raw_post(node, head + ["Content-Length: 100000000"], b"{")
    assert status.startswith("HTTP/1.1 401") and closed, "no credential: 401 first, body unread"
    chunk = b"%x\r\n%s\r\n" % (3000, b"a" * 3000)
    chunked = head + [f"Authorization: Bearer {token}", "Transfer-Encoding: chunked"]
    status, closed, _ = raw_post(node, chunked + ["Connection: close"], chunk * 3 + b"0\r\n\r\n")
    assert status.startswith("HTTP/1.1 413"), ("a chunked body over the limit: 413", status)
    status, closed, _ = raw_post(node, chunked, chunk * 400)
    assert closed and not status.startswith("HTTP/1.1 2"), \
        "a chunked body that goes on far past the limit is cut off"
    assert publish(node, token, "chat:x", "msg", {"ok": True}).status == 201, "the node is fine"
    wait_audit(ctx.pg, node, "publish", lambda r: r["detail"]["reason"] == "payload_too_large", 2)


def raw_exchange(node, request):
    """Sends request bytes; returns what comes back until the server closes."""
    s = socket.create_connection(("127.0.0.1", node.port), timeout=10)
    try:
        s.sendall(request)
        data = b""
        while True:
            part = s.recv(65536)
            if not part:
                return data
            data += part
    finally:
        s.close()


def test_oversized_request_heads_are_refused_and_closed(ctx):
    node = ctx.node()
    big_header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 3000 + b"\r\n"
    long_url = b"GET /v1/stream?channel=" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    for label, request, status in (("one huge header", big_header, b"431"),
                                   ("a header flood", many, b"431"),
                                   ("a huge URL", long_url, b"414")):
        answer = raw_exchange(node, request)
        assert answer.startswith(b"HTTP/1.1 " + status), (label, answer[:80])
    assert node.get("/healthz").status == 200, "the node is unaffected"


def test_sighup_reloads_limits_and_keeps_them_on_a_bad_file(ctx):
    node = ctx.node(config={"publish_per_second": 1000})
    scope = ctx.scope()
    assert [publish(node, scope.token(), "chat:h", "msg", {}).status for _ in range(3)] == [201] * 3

    def reload(config):
        node.config = config
        write_config(node.config_file, config)
        offset = node.log_size()
        node.signal(signal.SIGHUP)
        wait_for(lambda: "reload" in node.log_text(offset), 10, what="the reload logged")
        return node.log_text(offset)

    assert "configuration reloaded" in reload({"log_level": "debug", "publish_per_second": 2})
    token = scope.token()
    got = [publish(node, token, "chat:h", "msg", {}).status for _ in range(3)]
    assert got == [201, 201, 429], f"publish_per_second = 2 after SIGHUP: {got}"
    assert "reload failed" in reload({"log_level": "debug", "publish_per_second": "lots"})
    token = scope.token()
    got = [publish(node, token, "chat:h", "msg", {}).status for _ in range(3)]
    assert got == [201, 201, 429], f"a bad file changes nothing: {got}"
    assert node.alive


def test_catch_up_with_live_traffic_does_not_overflow_a_reader_that_keeps_up(ctx):
    node = ctx.node(config={"stream_queue_bytes": "128KiB", "publish_per_second": 100000})
    scope = ctx.scope()
    token = scope.token()
    client, opened = ctx.subscribe(node, ["chat:backlog"], token)
    client.close()
    ids = [publish_ok(node, token, "chat:backlog", "big", {"i": i, "blob": BIG}) for i in range(150)]
    # Live events keep arriving (10 a second) while a reader that keeps up
    # (about 4 MB/s, a small receive buffer) catches up on 9 MB: the paced
    # catch-up fills the queue by design, which must not count as overflow.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.connect(("127.0.0.1", node.port))
    sock.sendall((f"GET /v1/stream?channel=chat:backlog HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {token}\r\nLast-Event-ID: {opened.id}\r\n\r\n").encode())
    stop, live = threading.Event(), []

    def publish_live():
        while not stop.wait(0.1):
            live.append(publish_ok(node, token, "chat:backlog", "small", {"n": len(live)}))
    publisher = threading.Thread(target=publish_live)
    publisher.start()
    data = b""
    sock.settimeout(20)
    try:
        while b"herald.overflow" not in data and not (
                ids[-1].encode() in data and data.count(b"event: small") >= 3):
            part = sock.recv(16384)
            if not part:
                break
            data += part
            stop.wait(0.004)  # the reader's own pace, not a synchronisation
    finally:
        stop.set()
        publisher.join()
        sock.close()
    assert b"herald.overflow" not in data, f"overflow after {len(data)} bytes"
    assert ids[-1].encode() in data, "the whole backlog arrived"
