"""test_cluster.py — several nodes on one database (SPEC §1 node, §4
herald.publish): events published on one node, or in SQL, reach the
subscribers of every node; events over NOTIFY's 8000-byte limit arrive
intact."""

import random

from harness import publish_ok


def envelope_of(client, event_id, timeout=5):
    """Reads client's events until the one with envelope id event_id."""
    events = client.read_until(lambda e: e.type != "herald.open" and e.json().get("id") == event_id,
                               timeout=timeout)
    others = [e for e in events[:-1] if not e.type.startswith("herald.")]
    assert not others, f"{client.label}: unexpected events before {event_id}: {others!r}"
    return events[-1].json()


def test_publish_on_one_node_reaches_another(ctx):
    n1, n2, scope = ctx.node("n1"), ctx.node("n2"), ctx.scope()
    token = scope.token()
    sub, _ = ctx.subscribe(n1, "chat:cross", token)
    event_id = publish_ok(n2, token, "chat:cross", "msg", {"via": "n2"})
    env = envelope_of(sub, event_id)
    assert env["data"] == {"via": "n2"}, env


def test_sql_publish_reaches_every_node(ctx):
    n1, n2, scope = ctx.node("n1"), ctx.node("n2"), ctx.scope()
    token = scope.token()
    subs = [ctx.subscribe(n, "chat:sql", token)[0] for n in (n1, n2)]
    event_id = scope.publish_sql("chat:sql", "db.changed", {"row": 42})
    assert event_id, "herald.publish returned no id"
    for sub in subs:
        env = envelope_of(sub, event_id)
        assert (env["type"], env["data"], env["channel"]) == ("db.changed", {"row": 42}, "chat:sql"), env


def big_payload(size):
    """A JSON object whose text is about `size` bytes, with varied content."""
    rnd = random.Random(size)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 \u00e9\u4e2d\"\\\n"
    chunks = ["".join(rnd.choice(alphabet) for _ in range(100)) for _ in range(size // 130)]
    return {"chunks": chunks, "n": len(chunks)}


def test_large_event_delivered_intact_on_every_node(ctx):
    config = {"max_event_bytes": "64KiB"}
    n1, n2, scope = ctx.node("n1", config=config), ctx.node("n2", config=config), ctx.scope()
    token = scope.token()
    subs = [ctx.subscribe(n, "chat:big", token)[0] for n in (n1, n2)]
    payload = big_payload(20000)
    via_http = publish_ok(n1, token, "chat:big", "msg", payload)
    via_sql = scope.publish_sql("chat:big", "msg", payload)
    for sub in subs:
        for event_id in (via_http, via_sql):
            env = envelope_of(sub, event_id)
            assert env["data"] == payload, f"{sub.label}: large event {event_id} arrived altered"
