"""test_limits.py — abuse protection (SPEC §3 herald.overflow, §5.6, §6
stream_queue_bytes): a stream whose client reads too slowly is ended with
herald.overflow carrying the cursor of what it was sent, and resuming with
it delivers everything else exactly once; a long catch-up is read in steps
that fit the queue bound."""

from harness import publish_ok, wait_audit

BIG = "x" * 60000  # an event of ~60 KB


def test_slow_reader_overflows_and_resumes_without_loss(ctx):
    node = ctx.node(config={"stream_queue_bytes": "256KiB"})
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
    node = ctx.node(config={"stream_queue_bytes": "128KiB"})
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
