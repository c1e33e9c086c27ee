"""test_stream.py — what a subscriber sees on one node (SPEC §2, §3):
the stream head and herald.open, publish -> delivery with the envelope,
durability at 201, heartbeats, payloads that cannot inject frames, and
org isolation."""

import json
import os
import time

from harness import publish, publish_ok, wait_for

ENVELOPE_KEYS = {"id", "channel", "type", "data", "published_at"}


def test_stream_head_and_open_event(ctx):
    node, scope = ctx.node(), ctx.scope()
    user = scope.user()
    client = ctx.sse(node, "chat:room-1", token=scope.token(user))
    assert client.header("content-type", "").startswith("text/event-stream"), client.headers
    assert "no-store" in client.header("cache-control", ""), client.headers
    assert client.header("x-accel-buffering", "").lower() == "no", client.headers
    ev = client.next_event(timeout=5)
    assert client.raw.startswith("retry: 2000"), f"stream should start with 'retry: 2000': {client.raw[:80]!r}"
    assert ev.type == "herald.open", ev
    assert ev.id, "herald.open must carry an id: (the starting cursor)"
    data = ev.json()
    for key in ("stream", "channels", "user_id", "expires_at"):
        assert key in data, f"herald.open data lacks {key!r}: {ev.data}"
    assert data["channels"] == ["chat:room-1"], data
    assert data["user_id"] == user, data


def test_publish_is_delivered_with_envelope(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    client, _ = ctx.subscribe(node, "chat:room-2", token)
    payload = {"text": "hello", "n": 1, "nested": {"a": [1, 2, None, True]}}
    r = publish(node, token, "chat:room-2", "msg", payload)
    assert r.status == 201, r
    assert r.content_type.startswith("application/json"), r
    answer = r.json()
    assert answer.get("channel") == "chat:room-2" and answer.get("id"), answer
    ev = client.next_event(timeout=5)
    assert ev.type == "msg", ev
    assert ev.id, "the event should carry the stream cursor as id:"
    env = ev.json()
    assert set(env) == ENVELOPE_KEYS, f"envelope keys {sorted(env)}"
    assert env["id"] == answer["id"], f"envelope id {env['id']!r} != publish id {answer['id']!r}"
    assert (env["channel"], env["type"], env["data"]) == ("chat:room-2", "msg", payload), env
    assert isinstance(env["published_at"], str) and env["published_at"], env


def test_publish_is_durable_when_acknowledged(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    payload = {"durable": scope.user("marker")}
    publish_ok(node, token, "chat:durable", "msg", payload)
    count = ctx.pg.sql_value(
        "SELECT count(*) FROM herald.events WHERE tenant_id = $1 AND org_id = $2 "
        "AND channel = 'chat:durable' AND data = $3::jsonb", scope.tenant, scope.org, json.dumps(payload))
    assert count == "1", f"after 201 the event must be in herald.events; found {count} rows"


def test_heartbeat_comment_arrives(ctx):
    node, scope = ctx.node(config={"heartbeat_interval": "1s"}), ctx.scope()
    client, _ = ctx.subscribe(node, "chat:hb", scope.token())
    client.wait_comment(timeout=3.5)


def test_payload_cannot_inject_frames(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    client, _ = ctx.subscribe(node, "chat:inject", token)
    tricky = {
        "frames": "\n\ndata: x\n\nevent: evil",
        "cr": "a\rb\r\nc",
        "separators": "x\u2028y\u2029z",
        "emoji": "\U0001F600\U0001F389 caf\u00e9",
        "idline": "\nid: 999",
        "retry": "\nretry: 1\n",
    }
    sent = [("msg", tricky), ("msg", "\nid: 999\n\nevent: evil\ndata: {}"), ("msg", {"sentinel": True})]
    ids = [publish_ok(node, token, "chat:inject", t, d) for t, d in sent]
    events = client.read_until(lambda e: e.type == "msg" and e.json().get("id") == ids[-1], timeout=5)
    assert [e.type for e in events] == ["msg"] * 3, f"extra or missing events: {events!r}"
    for ev, (type_, data), id_ in zip(events, sent, ids):
        env = ev.json()
        assert env["id"] == id_ and env["data"] == data, f"payload changed in transit: {env!r}"
        assert ev.id != "999", "a payload set the event id"
    assert client.parser.retry == 2000, f"a payload changed the retry: {client.parser.retry}"


def test_publish_reaches_only_its_own_org(ctx):
    node = ctx.node()
    org_a = ctx.scope()
    org_b = org_a.sibling()
    token_a, token_b = org_a.token(), org_b.token()
    ch = "chat:shared"
    sub_a, _ = ctx.subscribe(node, ch, token_a)
    sub_b, _ = ctx.subscribe(node, ch, token_b)

    id_a = publish_ok(node, token_a, ch, "msg", {"from": "a"})
    assert sub_a.next_event(5).json()["id"] == id_a
    id_b = publish_ok(node, token_b, ch, "msg", {"from": "b"})
    first_b = sub_b.next_event(5)
    assert first_b.json()["id"] == id_b, f"org B received org A's event: {first_b!r}"
    id_a2 = publish_ok(node, token_a, ch, "msg", {"from": "a", "n": 2})
    next_a = sub_a.next_event(5)
    assert next_a.json()["id"] == id_a2, f"org A received org B's event: {next_a!r}"
    leaked = sub_b.collect(0.3)
    assert not leaked, f"org B received events of org A: {leaked!r}"


def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_idle_streams_cost_no_cpu(ctx):
    """Suspended streams must not spin (a reader returning 0 without
    suspending busy-loops a core, DESIGN §1)."""
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    clients = [ctx.subscribe(node, f"chat:idle-{i % 5}", token)[0] for i in range(40)]
    before = _cpu_seconds(node.proc.pid)
    t0 = time.monotonic()
    for c in clients:
        c.collect(0.05)  # also proves the streams stay open and quiet
    elapsed = time.monotonic() - t0
    used = _cpu_seconds(node.proc.pid) - before
    assert elapsed >= 1.5, elapsed
    assert used < 0.25 * elapsed, f"herald used {used:.2f}s CPU in {elapsed:.2f}s with 40 idle streams"


def test_disconnected_clients_are_released(ctx):
    """A suspended stream notices its client leaving (EPOLLRDHUP watcher)."""
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    clients = [ctx.subscribe(node, "chat:leave", token)[0] for _ in range(20)]
    for c in clients:
        c.close()
    wait_for(lambda: node.log_text().count('"msg":"stream closed"') >= 20, timeout=5,
             what="herald to close the 20 abandoned streams")
