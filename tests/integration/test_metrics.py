"""test_metrics.py — what an operator scrapes and reads (SPEC §2 /metrics,
§6 metrics_allow and log_format, §8): the Prometheus exposition and who
may read it, the counters and histograms that move with streams,
publishes and authentication failures, and a log made of JSON lines."""

import json
import secrets
import shutil
import subprocess

from harness import Metrics, bearer, problem_type, publish, publish_ok, stream_target, wait_for

EXPECTED_FAMILIES = [
    "herald_ready", "herald_streams_open", "herald_db_queue_depth", "herald_audit_backlog",
    "herald_streams_opened_total", "herald_events_published_total",
    "herald_events_received_total", "herald_events_delivered_total",
    "herald_listen_reconnects_total", "herald_audit_written_total",
    "herald_audit_spilled_total", "herald_audit_write_failures_total",
    "herald_presence_writes_total", "herald_presence_events_total",
    "herald_streams_closed_total", "herald_auth_failures_total", "herald_http_errors_total",
    "herald_fanout_latency_seconds", "herald_publish_latency_seconds",
    "herald_notify_lag_seconds", "process_resident_memory_bytes", "process_open_fds",
]


def value(m, name, **labels):
    v = m.value(name, **labels)
    assert v is not None, f"/metrics has no sample {name}{labels or ''}"
    return v


def test_metrics_exposition_is_valid(ctx):
    node = ctx.node()
    r = node.get("/metrics")
    assert r.status == 200, r
    ctype = [p.strip().lower() for p in r.content_type.split(";")]
    assert ctype[0] == "text/plain" and "version=0.0.4" in ctype, \
        f"Content-Type should be text/plain; version=0.0.4, got {r.content_type!r}"
    m = Metrics(r.text)
    types = {}
    for line in r.text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
    missing = [f for f in EXPECTED_FAMILIES if f not in types]
    assert not missing, f"metric families missing from /metrics: {missing}"
    for h in ("herald_fanout_latency_seconds", "herald_publish_latency_seconds",
              "herald_notify_lag_seconds"):
        assert types[h] == "histogram", f"{h} is a {types[h]}"
        value(m, h + "_bucket", le="+Inf")
        value(m, h + "_count")
        value(m, h + "_sum")
    assert value(m, "herald_ready") == 1, "a ready node reports herald_ready 0"
    for reason in ("client", "shutdown", "database", "retention", "other"):
        value(m, "herald_streams_closed_total", reason=reason)
    for reason in ("missing", "malformed", "unknown", "expired", "revoked", "other"):
        value(m, "herald_auth_failures_total", reason=reason)
    assert value(m, "process_resident_memory_bytes") > 0
    assert value(m, "process_open_fds") > 0

    promtool = shutil.which("promtool")
    if promtool is None:
        ctx.info("promtool not installed: checked with the built-in parser only")
        return
    p = subprocess.run([promtool, "check", "metrics"], input=r.body, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    out = p.stdout.decode("utf-8", "replace").strip()
    assert p.returncode == 0 and not out, \
        f"promtool check metrics: exit {p.returncode}, problems:\n{out}"


def test_metrics_refused_outside_metrics_allow(ctx):
    node = ctx.node(config={"metrics_allow": "10.0.0.0/8"})
    r = node.get("/metrics")
    assert r.status == 403, f"/metrics from 127.0.0.1 with metrics_allow = 10.0.0.0/8: {r!r}"
    assert problem_type(r) == "urn:herald:permission_denied", r
    assert "herald_" not in r.text, f"a refused /metrics leaked samples: {r!r}"


def test_counters_move_with_streams_publishes_and_failures(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    channel = "chat:metrics"
    before = node.metrics()

    sub, _ = ctx.subscribe(node, channel, token)
    event_id = publish_ok(node, token, channel, "msg", {"n": 1})
    assert sub.next_event(5).json()["id"] == event_id

    def grew(m, name, **labels):
        return value(m, name, **labels) >= value(before, name, **labels) + 1

    moving = ["herald_streams_opened_total", "herald_events_published_total",
              "herald_events_received_total", "herald_events_delivered_total",
              "herald_fanout_latency_seconds_count", "herald_publish_latency_seconds_count"]

    def all_grew():
        m = node.metrics()
        return m if all(grew(m, n) for n in moving) else None
    try:
        after = wait_for(all_grew, 5, what="the stream and publish counters to grow")
    except Exception:
        m = node.metrics()
        raise AssertionError("did not grow by 1: " + ", ".join(
            f"{n} {value(before, n)} -> {value(m, n)}" for n in moving if not grew(m, n)))
    assert value(after, "herald_streams_open") >= 1, "a stream is open"

    r = node.get(stream_target(channel), headers=bearer("hrd_" + secrets.token_hex(32)))
    assert r.status == 401, r
    after = wait_for(lambda: (lambda m: m if value(m, "herald_http_errors_total", code="unauthenticated")
                              > value(before, "herald_http_errors_total", code="unauthenticated")
                              else None)(node.metrics()),
                     5, what="herald_http_errors_total{code=\"unauthenticated\"} to grow")
    unknown = (value(after, "herald_auth_failures_total", reason="unknown")
               - value(before, "herald_auth_failures_total", reason="unknown"))
    assert unknown == 1, f"one unknown token, herald_auth_failures_total{{reason=\"unknown\"}} grew by {unknown}"
    for reason in ("missing", "malformed", "expired", "revoked", "other"):
        delta = (value(after, "herald_auth_failures_total", reason=reason)
                 - value(before, "herald_auth_failures_total", reason=reason))
        assert delta == 0, f"an unknown token counted as {reason} (+{delta})"


def test_client_close_is_counted(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    sub, _ = ctx.subscribe(node, "chat:metrics-close", token)
    before = node.metrics()
    assert value(before, "herald_streams_open") >= 1, "the stream should be counted as open"
    sub.close()

    def closed():
        m = node.metrics()
        return m if (value(m, "herald_streams_closed_total", reason="client")
                     >= value(before, "herald_streams_closed_total", reason="client") + 1
                     and value(m, "herald_streams_open") == value(before, "herald_streams_open") - 1) \
            else None
    try:
        after = wait_for(closed, 5, what="the closed stream to be counted")
    except Exception:
        m = node.metrics()
        raise AssertionError(
            f"after the client left: streams_open {value(before, 'herald_streams_open')} -> "
            f"{value(m, 'herald_streams_open')}, streams_closed_total{{reason=\"client\"}} "
            f"{value(before, 'herald_streams_closed_total', reason='client')} -> "
            f"{value(m, 'herald_streams_closed_total', reason='client')}")
    for reason in ("shutdown", "database", "retention", "other"):
        assert value(after, "herald_streams_closed_total", reason=reason) == \
            value(before, "herald_streams_closed_total", reason=reason), \
            f"a client leaving was counted as {reason}"


def busy_scenario(ctx, node, scope):
    """Streams, publishes, refusals and a drain: most of what herald logs."""
    token = scope.token()
    sub, _ = ctx.subscribe(node, "chat:logs", token)
    publish_ok(node, token, "chat:logs", "msg", {"text": "line\nbreak \"quoted\" \u00e9"})
    sub.next_event(5)
    publish(node, token, "chat:logs", "msg", None, headers={"Content-Type": "text/plain"})
    publish(node, "hrd_" + secrets.token_hex(32), "chat:logs", "msg", {})
    ctx.sse(node, "Bad:channel", token=token, expect=400).close()
    ctx.sse(node, "chat:logs", headers={"Authorization": "Bearer a b"}, expect=401).close()
    node.get("/v1/nowhere")
    node.get("/v1/me", headers=bearer(token))
    other, _ = ctx.subscribe(node, "chat:logs-2", token)
    other.close()
    status = node.stop()
    assert status == 0, f"herald exited with {status}"


def node_lines(node):
    """The node's own output lines (without the harness's '=== harness' lines)."""
    return [line for line in node.log_text().splitlines()
            if line.strip() and not line.startswith("=== harness:")]


def test_log_lines_are_json_objects(ctx):
    node, scope = ctx.node(config={"log_level": "debug"}), ctx.scope()
    busy_scenario(ctx, node, scope)
    lines = node_lines(node)
    assert len(lines) >= 10, f"expected a busy log, got {len(lines)} lines"
    bad = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError as e:
            bad.append(f"not JSON ({e}): {line[:200]}")
            continue
        if not isinstance(rec, dict):
            bad.append(f"not an object: {line[:200]}")
            continue
        missing = [k for k in ("ts", "level", "node", "msg") if not isinstance(rec.get(k), str)]
        if missing:
            bad.append(f"without {missing}: {line[:200]}")
        elif rec["node"] != node.node_id:
            bad.append(f"node {rec['node']!r} != {node.node_id!r}: {line[:200]}")
        elif rec["level"] not in ("error", "warn", "info", "debug"):
            bad.append(f"level {rec['level']!r}: {line[:200]}")
    assert not bad, f"{len(bad)} of {len(lines)} log lines are not herald JSON lines:\n" + "\n".join(bad[:10])
    msgs = {json.loads(line)["msg"] for line in lines}
    assert "audit" in msgs, f"no audit record in the log; messages: {sorted(msgs)}"


def test_text_log_format_has_no_json_lines(ctx):
    node, scope = ctx.node(config={"log_level": "debug", "log_format": "text"}), ctx.scope()
    busy_scenario(ctx, node, scope)
    lines = node_lines(node)
    assert len(lines) >= 10, f"expected a busy log, got {len(lines)} lines"
    json_lines = [line[:200] for line in lines if line.lstrip().startswith("{")]
    assert not json_lines, f"log_format = text, yet JSON lines:\n" + "\n".join(json_lines[:10])
