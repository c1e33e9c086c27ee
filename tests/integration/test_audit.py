"""test_audit.py — the audit trail a DBA reads (SPEC §2 credentials, §4
herald.audit_log, §5.7, §7, §8): accepted and rejected stream opens, every
authentication failure reason on every route, publish integrity
rejections, scope violations, forced disconnects on drain, no token in any
row or log line, and the bounded queue that spills to the JSON log while
PostgreSQL is away.

Rows are written in batches off the request path, so every check polls the
table (wait_for) until the expected rows are there."""

import json
import re
import secrets
import signal
import socket
import time
from urllib.parse import quote

from harness import bearer, problem_type, publish, stream_target, wait_for

COLUMNS = ("id", "kind", "outcome", "session_id", "user_id", "tenant_id", "org_id",
           "channel", "remote_addr", "detail")
BY_TOKEN = "token_hash = sha256(convert_to($1, 'UTF8'))"


def audit_rows(pg, node, kind=None):
    """The node's herald.audit_log rows (dicts, detail parsed), oldest first."""
    q = ("SELECT id, kind, outcome, session_id, user_id, tenant_id, org_id, channel, "
         "host(remote_addr), detail::text FROM herald.audit_log WHERE node_id = $1")
    params = [node.node_id]
    if kind is not None:
        q += " AND kind = $2"
        params.append(kind)
    out = []
    for row in pg.sql(q + " ORDER BY id", *params):
        r = dict(zip(COLUMNS, row))
        r["detail"] = json.loads(r["detail"])
        out.append(r)
    return out


def wait_rows(ctx, node, kind, count, timeout=5):
    """Polls until the node has at least `count` rows of `kind`; returns them."""
    return wait_for(lambda: (lambda rows: rows if len(rows) >= count else None)(
        audit_rows(ctx.pg, node, kind)), timeout,
        what=f"{count} {kind!r} rows of {node.node_id} in herald.audit_log "
             f"(have: {[(r['kind'], r['detail']) for r in audit_rows(ctx.pg, node)]})")


def session_of(pg, token):
    return pg.sql_value(f"SELECT id FROM herald.sessions WHERE {BY_TOKEN}", token)


def expire(pg, token):
    pg.sql(f"UPDATE herald.sessions SET expires_at = now() - interval '1 second' WHERE {BY_TOKEN}", token)


def revoke(pg, token):
    pg.sql(f"UPDATE herald.sessions SET revoked_at = now() WHERE {BY_TOKEN}", token)


def unknown_token():
    """Well-formed (like herald.issue_token's) but in no session."""
    return "hrd_" + secrets.token_hex(32)


def assert_session_fields(row, scope, user, session_id, what):
    got = (row["session_id"], row["user_id"], row["tenant_id"], row["org_id"])
    want = (session_id, user, scope.tenant, scope.org)
    assert got == want, f"{what}: (session_id, user_id, tenant_id, org_id) = {got}, expected {want}: {row}"


def assert_no_session_fields(row, what):
    got = (row["session_id"], row["user_id"], row["tenant_id"], row["org_id"])
    assert got == (None, None, None, None), f"{what}: a row without a session names one: {row}"


# ---------------------------------------------------------------------------


def test_accepted_stream_open_is_audited(ctx):
    node, scope = ctx.node(), ctx.scope()
    user = scope.user()
    token = scope.token(user)
    channel = "chat:audit-open"
    ctx.subscribe(node, channel, token)
    rows = wait_rows(ctx, node, "stream.open", 1)
    assert len(rows) == 1, f"one stream opened, {len(rows)} stream.open rows: {rows}"
    row = rows[0]
    assert row["outcome"] == "accepted", row
    assert_session_fields(row, scope, user, session_of(ctx.pg, token), "accepted stream.open")
    assert row["channel"] == channel, row
    assert row["remote_addr"] == "127.0.0.1", row
    d = row["detail"]
    assert d.get("credential") == "bearer", d
    assert d.get("reason") == "ok" and d.get("status") == 200, d
    assert d.get("channels") == [channel], d


def test_every_auth_failure_reason_on_stream_is_audited(ctx):
    node, scope = ctx.node(), ctx.scope()
    expired_user, revoked_user = scope.user("exp"), scope.user("rev")
    expired, revoked = scope.token(expired_user), scope.token(revoked_user)
    expire(ctx.pg, expired)
    revoke(ctx.pg, revoked)
    attempts = [  # (reason, headers)
        ("missing", {}),
        ("malformed", {"Authorization": "Bearer a b"}),
        ("malformed", {"Authorization": "Basic xyz"}),
        ("unknown", bearer(unknown_token())),
        ("expired", bearer(expired)),
        ("revoked", bearer(revoked)),
    ]
    bodies = {}
    for i, (reason, headers) in enumerate(attempts):
        client = ctx.sse(node, f"chat:af-{i}", headers=headers, expect=None)
        assert client.status == 401, f"{reason} {headers}: expected 401, got {client.status} {client.body!r}"
        assert problem_type(client) == "urn:herald:unauthenticated", client.body
        bodies[f"{reason} {headers}"] = client.body
    assert len(set(bodies.values())) == 1, f"401 bodies must not tell why: {bodies!r}"

    failures = wait_rows(ctx, node, "auth.failure", len(attempts))
    opens = wait_rows(ctx, node, "stream.open", len(attempts))
    assert [r["detail"].get("reason") for r in failures] == [a[0] for a in attempts], \
        f"auth.failure reasons, in request order: {[r['detail'] for r in failures]}"
    for row, (reason, _) in zip(failures, attempts):
        assert row["outcome"] == "rejected", row
        assert row["detail"].get("route") == "stream", row
        want_cred = "none" if reason == "missing" else "bearer"
        assert row["detail"].get("credential") == want_cred, row
        assert row["remote_addr"] == "127.0.0.1", row
        if reason == "expired":
            assert_session_fields(row, scope, expired_user, session_of(ctx.pg, expired), reason)
        elif reason == "revoked":
            assert_session_fields(row, scope, revoked_user, session_of(ctx.pg, revoked), reason)
        else:
            assert_no_session_fields(row, reason)

    by_channel = {r["channel"]: r for r in opens}
    assert len(by_channel) == len(attempts), f"stream.open rows: {opens}"
    for i, (reason, _) in enumerate(attempts):
        row = by_channel.get(f"chat:af-{i}")
        assert row is not None, f"no stream.open row for the {reason} attempt: {opens}"
        assert row["outcome"] == "rejected", row
        assert row["detail"].get("reason") == "unauthenticated", row
        assert row["detail"].get("status") == 401, row


def test_auth_failures_on_publish_and_me_name_the_route(ctx):
    node, scope = ctx.node(), ctx.scope()
    user = scope.user()
    expired = scope.token(user)
    expire(ctx.pg, expired)

    r = publish(node, unknown_token(), "chat:af-publish", "msg", {"n": 1})
    assert r.status == 401 and problem_type(r) == "urn:herald:unauthenticated", r
    r = node.get("/v1/me")
    assert r.status == 401 and problem_type(r) == "urn:herald:unauthenticated", r
    r = node.get("/v1/me", headers=bearer(expired))
    assert r.status == 401 and problem_type(r) == "urn:herald:unauthenticated", r

    rows = wait_rows(ctx, node, "auth.failure", 3)
    got = [(r["detail"].get("route"), r["detail"].get("reason"), r["detail"].get("credential"))
           for r in rows]
    assert got == [("publish", "unknown", "bearer"), ("me", "missing", "none"),
                   ("me", "expired", "bearer")], f"auth.failure (route, reason, credential): {got}"
    assert_session_fields(rows[2], scope, user, session_of(ctx.pg, expired), "expired on /v1/me")
    assert not audit_rows(ctx.pg, node, "publish"), \
        "a publish refused at authentication is an auth.failure, not a publish rejection"


def test_publish_integrity_rejections_are_audited(ctx):
    node, scope = ctx.node(config={"max_event_bytes": "1KiB"}), ctx.scope()
    user = scope.user()
    token = scope.token(user)
    channel = "chat:integrity"
    target = f"/v1/channels/{channel}/events"
    good = json.dumps({"type": "msg", "data": {"n": 1}})
    cases = [  # (code, status, headers, body)
        ("unsupported_media_type", 415, {"Content-Type": "text/plain"}, good),
        ("invalid_request", 400, {"Content-Type": "application/json"}, '{"type":"msg","data":'),
        ("payload_too_large", 413, {"Content-Type": "application/json"},
         json.dumps({"type": "msg", "data": "x" * 2000})),
    ]
    for code, status, headers, body in cases:
        h = dict(bearer(token))
        h.update(headers)
        r = node.http("POST", target, headers=h, body=body)
        assert r.status == status and problem_type(r) == f"urn:herald:{code}", \
            f"expected {status} {code}, got {r!r}"

    rows = wait_rows(ctx, node, "publish", len(cases))
    assert len(rows) == len(cases), f"{len(cases)} refused publishes, rows: {rows}"
    sid = session_of(ctx.pg, token)
    for row, (code, status, _, _) in zip(rows, cases):
        assert row["outcome"] == "rejected", row
        assert row["detail"].get("reason") == code, f"expected reason {code}: {row}"
        assert row["detail"].get("status") == status, row
        assert row["detail"].get("route") == "publish", row
        assert row["channel"] == channel, row
        assert row["remote_addr"] == "127.0.0.1", row
        assert_session_fields(row, scope, user, sid, f"publish {code}")
    assert not scope.events(channel), "a refused publish stored an event"


def test_foreign_org_header_is_a_scope_violation(ctx):
    node, scope = ctx.node(), ctx.scope()
    user = scope.user()
    token = scope.token(user)
    other = scope.sibling().org
    channel = "chat:scope"

    client = ctx.sse(node, channel, token=token, headers={"Herald-Org": other}, expect=None)
    assert client.status == 403 and problem_type(client) == "urn:herald:scope_violation", \
        f"stream with a foreign Herald-Org: {client.status} {client.body!r}"
    r = publish(node, token, channel, "msg", {"n": 1}, headers={"Herald-Org": other})
    assert r.status == 403 and problem_type(r) == "urn:herald:scope_violation", r

    rows = wait_rows(ctx, node, "scope.violation", 2)
    assert len(rows) == 2, f"two scope violations, rows: {rows}"
    sid = session_of(ctx.pg, token)
    for row in rows:
        assert row["outcome"] == "rejected", row
        assert row["channel"] == channel, row
        assert_session_fields(row, scope, user, sid, "scope.violation")
    got = [(r["detail"].get("route"), r["detail"].get("status")) for r in rows]
    assert got == [("stream", 403), ("publish", 403)], \
        f"scope.violation detail (route, status) in request order: {got}; rows: {rows}"
    opens = wait_rows(ctx, node, "stream.open", 1)
    assert [(r["outcome"], r["detail"].get("reason")) for r in opens] == \
        [("rejected", "scope_violation")], f"stream.open rows: {opens}"
    assert not scope.events(channel) and not scope.sibling().events(channel)
    leaked = ctx.pg.sql_value("SELECT count(*) FROM herald.events WHERE org_id = $1", other)
    assert leaked == "0", f"the refused publish reached org {other}"


def test_sigterm_drain_audits_stream_close(ctx):
    node, scope = ctx.node(), ctx.scope()
    user = scope.user()
    token = scope.token(user)
    channel = "chat:drain-audit"
    sub, opened = ctx.subscribe(node, channel, token)
    stream_id = opened.json()["stream"]
    node.signal(signal.SIGTERM)
    sub.read_until_type("herald.shutdown", timeout=5)
    status = node.wait_exit(10)
    assert status == 0, f"herald exited with {status} after SIGTERM"

    # The node has exited: whatever it wrote is already in the table.
    rows = audit_rows(ctx.pg, node, "stream.close")
    assert len(rows) == 1, (f"after the drain exactly one stream.close row expected, got {rows}; "
                            f"spilled: {node.log_text().count('audit record spilled')}")
    row = rows[0]
    assert row["outcome"] == "closed", row
    assert row["detail"].get("reason") == "shutdown", row
    assert_session_fields(row, scope, user, session_of(ctx.pg, token), "stream.close")
    assert row["channel"] == channel, row
    stream = row["detail"].get("stream")
    assert stream and (stream == stream_id or stream.endswith("/" + stream_id)
                       or stream_id.endswith("/" + stream)), \
        f"stream.close names stream {stream!r}, herald.open said {stream_id!r}"


def test_no_token_in_audit_rows_or_logs(ctx):
    node, scope = ctx.node(), ctx.scope()
    valid = [scope.token() for _ in range(3)]
    expired = [scope.token() for _ in range(3)]
    revoked = [scope.token() for _ in range(3)]
    unknown = [unknown_token() for _ in range(3)]
    for t in expired:
        expire(ctx.pg, t)
    for t in revoked:
        revoke(ctx.pg, t)
    channel = "chat:secret"

    def by_bearer(tok):
        return {"target": stream_target(channel), "headers": {"Authorization": f"Bearer {tok}"}}

    def by_cookie(tok):
        return {"target": stream_target(channel), "headers": {"Cookie": f"a=b; herald_token={tok}"}}

    def by_query(tok):
        return {"target": stream_target(channel) + "&access_token=" + quote(tok, safe=""),
                "headers": {}}

    sources = [by_bearer, by_cookie, by_query]
    secrets_sent = []  # strings that must appear nowhere
    for i, source in enumerate(sources):
        for group, expect in ((valid, 200), (expired, 401), (revoked, 401), (unknown, 401)):
            tok = group[i]
            secrets_sent.append(tok)
            req = source(tok)
            client = ctx.sse(node, target=req["target"], headers=req["headers"], expect=None)
            assert client.status == expect, \
                f"{source.__name__} token: expected {expect}, got {client.status} {client.body!r}"
            if expect == 200:
                assert client.next_event(5).type == "herald.open"
            client.close()
        # Malformed: too long, and with bytes outside 0x21-0x7e.
        long_tok = "hrd_" + secrets.token_hex(2100)
        spaced_a, spaced_b = "hrd_" + secrets.token_hex(16), secrets.token_hex(16)
        ctl = "hrd_" + secrets.token_hex(16)
        malformed = [long_tok, f"{spaced_a} {spaced_b}", f"{ctl}\x7f"]
        secrets_sent += [long_tok, long_tok[:40], long_tok[-40:], spaced_a, spaced_b, ctl]
        for tok in malformed:
            req = source(tok)
            client = ctx.sse(node, target=req["target"], headers=req["headers"], expect=None)
            # (431: an oversized cookie header is refused by the HTTP layer.)
            assert client.status in (400, 401, 431), \
                f"{source.__name__} malformed token: {client.status} {client.body!r}"
            if client.status != 401:
                ctx.info(f"{source.__name__} malformed token of {len(tok)} bytes: {client.status}")
            client.close()
    # Publishes and /v1/me with tokens, valid and not.
    for tok in (valid[0], unknown[0], expired[0], revoked[0]):
        publish(node, tok, channel, "msg", {"n": 1})
        publish(node, tok, channel, "msg", {"n": 2}, headers={"Content-Type": "text/plain"})
        node.get("/v1/me", headers=bearer(tok))

    # Records are queued before the answer is sent: once the backlog is
    # empty, every one of them is in the table (or spilled to the log).
    wait_for(lambda: node.metrics().value("herald_audit_backlog") == 0, timeout=10,
             what="the audit backlog to drain")
    assert node.stop() == 0, "herald did not exit cleanly"
    table = ctx.pg.sql_value("SELECT string_agg(t::text, '') FROM herald.audit_log t") or ""
    log = node.log_text()
    assert "audit" in log and len(table) > 0, "nothing audited?"
    in_table = [s[:12] + "..." for s in secrets_sent if s in table]
    in_log = [s[:12] + "..." for s in secrets_sent if s in log]
    assert not in_table, f"tokens found in herald.audit_log: {in_table}"
    assert not in_log, f"tokens found in the node's log: {in_log}"


# ---------------------------------------------------------------------------
# spill while PostgreSQL is away


def raw_get_from(source_ip, port, target, timeout=10):
    """GET target from a chosen loopback source address; returns the status."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                  source_address=(source_ip, 0)) as sock:
        sock.sendall((f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                      "Accept: text/event-stream\r\nConnection: close\r\n\r\n").encode())
        data = b""
        deadline = time.monotonic() + timeout
        while b"\r\n" not in data and time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    assert m, f"no HTTP answer from {target}: {data[:200]!r}"
    return int(m.group(1))


def spilled_records(log):
    out = []
    for line in log.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if rec.get("msg") == "audit record spilled":
                out.append(rec)
    return out


def test_audit_queue_spills_to_log_while_database_is_away(ctx):
    pg = ctx.pg
    queue_max = 5
    node = ctx.node(config={"audit_queue_max": queue_max})
    ctx.on_cleanup(pg.start_again)  # whatever happens, later tests get their database
    wait_for(lambda: node.metrics().value("herald_audit_backlog") == 0, 10,
             what="an empty audit backlog before the outage")
    offset = node.log_size()

    pg.stop()
    n = 12
    # Distinct loopback source addresses tell the records apart: the
    # auth.failure record of an anonymous request names no channel.
    requests = {f"127.0.0.{10 + i}": f"chat:spill-{i}" for i in range(n)}
    for ip, channel in requests.items():
        status = raw_get_from(ip, node.port, f"/v1/stream?channel={channel}")
        assert status == 401, f"anonymous stream open with the database away: {status}"
    expected = {(kind, ip) for ip in requests for kind in ("auth.failure", "stream.open")}
    assert len(expected) == 2 * n
    pg.start_again()

    wait_for(lambda: node.metrics().value("herald_audit_backlog") == 0, 20,
             what="herald_audit_backlog == 0 after PostgreSQL is back")
    metrics = node.metrics()

    rows = [r for r in audit_rows(pg, node) if r["remote_addr"] in requests]
    in_table = [(r["kind"], r["remote_addr"]) for r in rows]
    spilled = [rec["audit"] for rec in spilled_records(node.log_text(offset))]
    in_log = [(a.get("kind"), a.get("remote_addr")) for a in spilled]

    for r in rows + spilled:
        ip = r["remote_addr"]
        if r["kind"] == "stream.open":
            assert r["channel"] == requests[ip], f"stream.open from {ip} names {r['channel']}: {r}"
            assert r["outcome"] == "rejected", r
        else:
            assert r["detail"]["reason"] == "missing", r
    dup_table = {k for k in in_table if in_table.count(k) > 1}
    dup_log = {k for k in in_log if in_log.count(k) > 1}
    assert not dup_table, f"records written twice to the table: {sorted(dup_table)}"
    assert not dup_log, f"records spilled twice: {sorted(dup_log)}"
    both = set(in_table) & set(in_log)
    assert not both, f"records both in the table and spilled: {sorted(both)}"
    unexpected = (set(in_table) | set(in_log)) - expected
    assert not unexpected, f"unexpected records: {sorted(unexpected)}"
    missing = expected - set(in_table) - set(in_log)
    assert not missing, (f"records neither in herald.audit_log nor spilled to the log: "
                         f"{sorted(missing)}")
    all_spilled = len(spilled_records(node.log_text()))
    assert metrics.value("herald_audit_spilled_total") == all_spilled, \
        (f"herald_audit_spilled_total = {metrics.value('herald_audit_spilled_total')}, "
         f"'audit record spilled' lines: {all_spilled}")
    assert len(in_table) >= queue_max, \
        f"only {len(in_table)} records reached the table (queue holds {queue_max})"
    ctx.info(f"{len(in_table)} records written after the outage, {len(in_log)} spilled")


def test_invalid_utf8_in_a_request_does_not_stall_the_audit_writer(ctx):
    """A channel name with a raw 0xFF byte (percent-encoded) is refused; its
    audit row must not block later rows (PostgreSQL refuses invalid UTF-8)."""
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    bad = ctx.sse(node, target="/v1/stream?channel=chat:%FF", token=token, expect=400)
    assert bad.status == 400
    r = node.http("POST", "/v1/channels/chat:%FF/events", headers=bearer(token),
                  json_body={"type": "msg", "data": 1})
    assert r.status == 400, r
    ctx.subscribe(node, "chat:after", token)
    wait_for(lambda: any(row["outcome"] == "accepted" and row["channel"] == "chat:after"
                         for row in audit_rows(ctx.pg, node, "stream.open")),
             timeout=8, what="the accepted open after the bad requests in herald.audit_log")
    rejected = [row for row in audit_rows(ctx.pg, node, "stream.open") if row["outcome"] == "rejected"]
    assert rejected and "\ufffd" in rejected[0]["detail"].get("error", ""), rejected
