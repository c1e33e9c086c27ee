"""test_resume.py — resuming with Last-Event-ID (SPEC §3): exactly once,
in order, across nodes, under concurrent publishers; from herald.open's
id; with the last_event_id query parameter; and herald.reset for cursors
that cannot be resumed exactly (garbage, unknown, trimmed)."""

import collections
import random
import re
import threading
import time

from harness import SSEEnded, SSETimeout, publish, publish_ok, timeout

CHANNEL = "chat:resume"


def msg_ids(events):
    return [e.json()["id"] for e in events if not e.type.startswith("herald.")]


def read_ids_until(client, last_id, timeout=5):
    """Envelope ids of the non-control events up to and including last_id."""
    events = client.read_until(lambda e: not e.type.startswith("herald.")
                               and e.json().get("id") == last_id, timeout=timeout)
    controls = [e for e in events if e.type.startswith("herald.")]
    assert not controls, f"unexpected control events while resuming: {controls!r}"
    return msg_ids(events)


def resume_and_check(ctx, via_query):
    n1, n2, scope = ctx.node("n1"), ctx.node("n2"), ctx.scope()
    token = scope.token()
    first, opened = ctx.subscribe(n1, CHANNEL, token)
    first.close()
    published = [publish_ok(n2, token, CHANNEL, "msg", {"n": i}) for i in range(3)]
    kw = {"query_last_event_id": opened.id} if via_query else {"last_event_id": opened.id}
    again, _ = ctx.subscribe(n2, CHANNEL, token, **kw)
    sentinel = publish_ok(n1, token, CHANNEL, "msg", {"n": "sentinel"})
    got = read_ids_until(again, sentinel)
    assert got == published + [sentinel], \
        f"resume from herald.open's id: expected {published + [sentinel]}, got {got}"


def test_resume_from_open_id_gets_events_published_meanwhile(ctx):
    resume_and_check(ctx, via_query=False)


def test_resume_with_last_event_id_query_parameter(ctx):
    resume_and_check(ctx, via_query=True)


def test_last_event_id_header_wins_over_query(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    first, opened = ctx.subscribe(node, CHANNEL, token)
    first.close()
    published = publish_ok(node, token, CHANNEL, "msg", {"n": 1})
    again, _ = ctx.subscribe(node, CHANNEL, token, last_event_id=opened.id,
                             query_last_event_id="garbage")
    assert read_ids_until(again, published) == [published]


def test_resume_mid_stream_skips_seen_events(ctx):
    n1, n2, scope = ctx.node("n1"), ctx.node("n2"), ctx.scope()
    token = scope.token()
    sub, _ = ctx.subscribe(n1, CHANNEL, token)
    ids = [publish_ok(n1, token, CHANNEL, "msg", {"n": i}) for i in range(4)]
    seen = read_ids_until(sub, ids[1])
    assert seen == ids[:2], f"live delivery: expected {ids[:2]}, got {seen}"
    cursor = sub.last_id
    sub.close()
    later = publish_ok(n2, token, CHANNEL, "msg", {"n": 4})
    again, _ = ctx.subscribe(n2, CHANNEL, token, last_event_id=cursor)
    got = read_ids_until(again, later)
    assert got == ids[2:] + [later], f"resuming from {cursor!r}: expected {ids[2:] + [later]}, got {got}"


# ---------------------------------------------------------------------------
# exactly once under load

PUBLISHERS_PER_NODE = 2
EVENTS_PER_PUBLISHER = 200
LOAD_CHANNELS = ["chat:eo-a", "chat:eo-b", "chat:eo-c"]


class Publisher(threading.Thread):
    """Publishes EVENTS_PER_PUBLISHER events round-robin over the channels,
    each tagged "p<k>-<i>"; records tag -> (channel, id). Honours 429."""

    def __init__(self, ctx, node, token, k):
        super().__init__(daemon=True, name=f"publisher-{k}")
        self.ctx, self.node, self.token, self.k = ctx, node, token, k
        self.ids = {}
        self.error = None

    def run(self):
        try:
            for i in range(EVENTS_PER_PUBLISHER):
                if self.ctx.stopping.is_set():
                    return
                channel = LOAD_CHANNELS[(i + self.k) % len(LOAD_CHANNELS)]
                self.ids[f"p{self.k}-{i}"] = (channel, self.publish(channel, i))
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = f"{self.name}: {e!r}"

    def publish(self, channel, i):
        data = {"tag": f"p{self.k}-{i}", "k": self.k, "i": i}
        while True:
            r = publish(self.node, self.token, channel, "msg", data)
            if r.status == 201:
                return r.json()["id"]
            if r.status == 429 and not self.ctx.stopping.is_set():
                time.sleep(min(1.0, float(r.header("retry-after") or "0.1")))
                continue
            raise AssertionError(f"publish {data['tag']} on {self.node.node_id}: {r!r}")


class Subscriber:
    """Reads the load channels, disconnecting every 15-40 events (sometimes
    right after herald.open) and resuming with the last id it saw on the
    other node, by header or query parameter."""

    def __init__(self, ctx, nodes, token, rnd):
        self.ctx, self.nodes, self.token, self.rnd = ctx, nodes, token, rnd
        self.received = []  # (channel, envelope id, tag)
        self.problems = []
        self.reconnects = 0
        self.client, _ = ctx.subscribe(nodes[0], LOAD_CHANNELS, token)

    def reconnect(self):
        cursor = self.client.last_id
        self.client.close()
        self.reconnects += 1
        node = self.nodes[self.reconnects % len(self.nodes)]
        via_query = self.reconnects % 3 == 0
        self.client, _ = self.ctx.subscribe(
            node, LOAD_CHANNELS, self.token,
            last_event_id=None if via_query else cursor,
            query_last_event_id=cursor if via_query else None)

    def read(self, quota, idle_timeout):
        """Reads up to quota events. False when nothing came for idle_timeout."""
        for _ in range(quota):
            try:
                ev = self.client.next_event(timeout=idle_timeout)
            except SSEEnded:
                return True  # the server ended the stream: resume
            except SSETimeout:
                return False
            if ev.type in ("herald.overflow", "herald.shutdown"):
                return True
            if ev.type.startswith("herald."):
                self.problems.append(f"unexpected control event {ev!r}")
                continue
            self.record(ev)
        return True

    def record(self, ev):
        env = ev.json()
        self.received.append((env["channel"], env["id"], env["data"]["tag"]))

    def run(self, total, publishers_done):
        """Reads until `total` events arrived or the stream stays idle."""
        while len(self.received) < total:
            if self.reconnects > 400:
                self.problems.append(f"gave up after {self.reconnects} reconnects")
                return
            quota = 0 if self.rnd.random() < 0.15 else self.rnd.randint(15, 40)
            if not self.read(min(quota, total - len(self.received)), idle_timeout=10):
                if publishers_done():
                    return
            self.reconnect()
        for ev in self.client.collect(0.5):  # duplicates after the last expected event?
            if not ev.type.startswith("herald."):
                self.record(ev)


def compare_per_channel(expected, got):
    """Problems between expected and got tag lists of one channel."""
    problems = []
    counts = collections.Counter(got)
    dups = sorted(t for t, n in counts.items() if n > 1)
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if dups:
        problems.append(f"{len(dups)} duplicated, e.g. {dups[:5]}")
    if missing:
        problems.append(f"{len(missing)} missing, e.g. {missing[:5]}")
    if extra:
        problems.append(f"{len(extra)} unknown, e.g. {extra[:5]}")
    if not problems and got != expected:
        i = next(i for i, (a, b) in enumerate(zip(expected, got)) if a != b)
        problems.append(f"order differs at {i}: expected {expected[i:i + 3]}, got {got[i:i + 3]}")
    return problems


@timeout(150)
def test_exactly_once_across_nodes_with_concurrent_publishers(ctx):
    nodes = [ctx.node("n1"), ctx.node("n2")]
    scope = ctx.scope()
    seed = random.randrange(1 << 30)
    ctx.note(f"random seed {seed}")
    subscriber = Subscriber(ctx, nodes, scope.token(), random.Random(seed))
    publishers = [Publisher(ctx, node, scope.token(), k)
                  for k, node in enumerate(n for n in nodes for _ in range(PUBLISHERS_PER_NODE))]
    for p in publishers:
        p.start()
    total = len(publishers) * EVENTS_PER_PUBLISHER
    subscriber.run(total, lambda: not any(p.is_alive() for p in publishers))
    for p in publishers:
        p.join(30)
    ctx.info(f"{len(subscriber.received)} events received over {subscriber.reconnects} reconnects")
    errors = [p.error for p in publishers if p.error]
    assert not errors, "publishers failed: " + "; ".join(errors)
    assert not subscriber.problems, subscriber.problems[:5]

    ids = {tag: cid for p in publishers for tag, cid in p.ids.items()}
    rows = scope.events()
    assert len(rows) == total, f"herald.events holds {len(rows)} events, {total} were acknowledged"
    report = []
    for channel in LOAD_CHANNELS:
        expected = [data["tag"] for ch, _, _, data in rows if ch == channel]
        got = [tag for ch, _, tag in subscriber.received if ch == channel]
        report += [f"{channel}: {p}" for p in compare_per_channel(expected, got)]
    wrong_ids = [(tag, eid) for ch, eid, tag in subscriber.received if ids.get(tag) != (ch, eid)]
    if wrong_ids:
        report.append(f"{len(wrong_ids)} envelope ids differ from what publish returned, e.g. {wrong_ids[:3]}")
    assert not report, "exactly-once violated: " + "; ".join(report)
    for p in publishers:  # sequential publishes of one publisher keep their order
        for channel in LOAD_CHANNELS:
            mine = [data["i"] for ch, _, _, data in rows if ch == channel and data["k"] == p.k]
            assert mine == sorted(mine), f"{p.name}'s events on {channel} are out of order in the log"


# ---------------------------------------------------------------------------
# herald.reset


def assert_reset_then_live(ctx, node, token, cursor):
    client = ctx.sse(node, CHANNEL, token=token, last_event_id=cursor)
    opened = client.next_event(5)
    assert opened.type == "herald.open", f"expected herald.open first, got {opened!r}"
    reset = client.next_event(5)
    assert reset.type == "herald.reset", f"cursor {cursor!r}: expected herald.reset, got {reset!r}"
    live = publish_ok(node, token, CHANNEL, "msg", {"after": "reset"})
    got = read_ids_until(client, live)
    assert got == [live], f"after herald.reset only live events should arrive, got {got}"


def test_garbage_cursor_resets(ctx):
    node, scope = ctx.node(), ctx.scope()
    assert_reset_then_live(ctx, node, scope.token(), "garbage")


def test_unknown_cursor_resets(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    sub, _ = ctx.subscribe(node, CHANNEL, token)
    read_ids_until(sub, publish_ok(node, token, CHANNEL, "msg", {"n": 1}))
    real = sub.last_id
    unknown = re.sub(r"\d+$", "999999", real)
    assert unknown != real, f"cannot make an unknown cursor from {real!r}"
    sub.close()
    assert_reset_then_live(ctx, node, token, unknown)


def test_trimmed_cursor_resets(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    sub, _ = ctx.subscribe(node, CHANNEL, token)
    ids = [publish_ok(node, token, CHANNEL, "msg", {"n": i}) for i in range(3)]
    read_ids_until(sub, ids[0])
    cursor = sub.last_id
    read_ids_until(sub, ids[2])
    sub.close()
    deleted = int(ctx.pg.sql_value("SELECT herald.trim_events('0 seconds'::interval)"))
    assert deleted >= 3, f"trim_events deleted {deleted} events"
    assert_reset_then_live(ctx, node, token, cursor)
