"""test_resilience.py — losing the LISTEN connection and draining on
SIGTERM (SPEC §2 /readyz and draining, §5.4, DESIGN §1 LISTEN/NOTIFY)."""

import signal
import subprocess
import time

from harness import ListenerOutage, publish, publish_ok, wait_for


def test_listener_loss_is_detected_and_recovered(ctx):
    outage = ListenerOutage(ctx, "ll")
    node, scope = outage.node, ctx.scope()
    token = scope.token()
    channel = "chat:listener"
    sub, _ = ctx.subscribe(node, channel, token)
    first = publish_ok(node, token, channel, "msg", {"n": 0})
    assert sub.next_event(5).json()["id"] == first

    outage.cut()
    missed = [scope.publish_sql(channel, "msg", {"n": i}) for i in range(1, 4)]
    outage.restore()

    last = publish_ok(node, token, channel, "msg", {"n": 4})
    events = sub.read_until(lambda e: e.type == "msg" and e.json()["id"] == last, timeout=10)
    controls = [e for e in events if e.type.startswith("herald.")]
    got = [e.json()["id"] for e in events if e.type == "msg"]
    assert not controls, f"unexpected control events after listener loss: {controls!r}"
    assert got == missed + [last], f"after listener loss expected {missed + [last]}, got {got}"


def test_sigterm_sends_shutdown_and_exits(ctx):
    node, scope = ctx.node(), ctx.scope()
    sub, _ = ctx.subscribe(node, "chat:drain", scope.token())
    started = time.monotonic()
    node.signal(signal.SIGTERM)
    sub.read_until_type("herald.shutdown", timeout=5)
    assert sub.wait_end(5), "the stream should end after herald.shutdown"
    status = node.wait_exit(max(0.1, 5 - (time.monotonic() - started)))
    assert status is not None, "herald still running 5 s after SIGTERM"
    assert status == 0, f"herald exited with {status} after SIGTERM"


def test_publish_behind_a_held_channel_lock_fails_fast(ctx):
    """A transaction that publishes and stays open holds the channel's head
    row: an HTTP publish to that channel must answer 503 (lock_timeout), not
    hang, and other channels keep working meanwhile."""
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    holder = subprocess.Popen(
        ctx.pg.psql_argv() + ["-c", "BEGIN", "-c",
                              f"SELECT herald.publish('{scope.tenant}', '{scope.org}', "
                              "'chat:locked', 'msg', '1')",
                              "-c", "SELECT pg_sleep(20)", "-c", "ROLLBACK"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx.on_cleanup(holder.kill)
    wait_for(lambda: ctx.pg.sql_value(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
        "WHERE a.application_name = 'herald-tests' AND a.query LIKE '%pg_sleep%'") != "0",
        timeout=10, what="the lock holder to sleep")
    publish_ok(node, token, "chat:free", "msg", {"n": 1})
    started = time.monotonic()
    r = publish(node, token, "chat:locked", "msg", {"n": 2}, timeout=20)
    assert r.status == 503, r
    assert r.json()["type"] == "urn:herald:unavailable", r
    assert time.monotonic() - started < 12, "the publish waited far beyond lock_timeout"


def test_requests_succeed_at_once_after_a_database_restart(ctx):
    """Idle worker connections die with the server; once /readyz is 200
    again, the very first publishes must not fail on a dead connection."""
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    publish_ok(node, token, "chat:restart", "msg", {"n": 0})
    ctx.on_cleanup(ctx.pg.start_again)
    ctx.pg.stop()
    node.wait_readyz(503, timeout=15)
    ctx.pg.start_again()
    node.wait_readyz(200, timeout=20)
    statuses = [publish(node, token, "chat:restart", "msg", {"n": i}).status for i in range(1, 9)]
    assert statuses == [201] * 8, f"publishes right after the restart answered {statuses}"
