"""test_errors.py — requests herald refuses, each with the right status and
problem+json "type" (SPEC §1 grammar, §2 order of checks, §7 codes):
channel names, channel counts, encoded slashes, publish bodies, unknown
paths and wrong methods."""

from harness import bearer, problem_type, publish, stream_target

INVALID = "urn:herald:invalid_request"


def stream_refused(ctx, node, token, target):
    """GET target with a valid token; returns (status, problem type)."""
    client = ctx.sse(node, target=target, token=token, expect=None)
    client.close()
    if client.status == 200:
        return 200, None
    return client.status, problem_type(client)


def test_bad_channel_names_rejected(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    bad = {
        "upper-case feature": "Chat:room",
        "no colon": "chatroom",
        "empty name": "chat:",
        "name over 200 bytes": "chat:" + "a" * 201,
        "feature over 32 bytes": "c" * 33 + ":room",
        "literal slash": "chat:a/b",
        "encoded slash": "chat:a%2Fb",
        "encoded NUL": "chat:a%00b",
        "space": "chat:a%20b",
    }
    wrong = {}
    for label, raw in bad.items():
        got = stream_refused(ctx, node, token, f"/v1/stream?channel={raw}")
        if got != (400, INVALID):
            wrong[label] = got
    assert not wrong, f"expected 400 {INVALID} for: {wrong}"
    ok = ctx.sse(node, "chat:" + "a" * 200, token=token, expect=None)
    assert ok.status == 200, f"a 200-byte name is valid, got {ok.status} {ok.body!r}"


def test_too_many_channels_rejected(ctx):
    node, scope = ctx.node(config={"max_channels_per_stream": 4}), ctx.scope()
    token = scope.token()
    four = [f"chat:c{i}" for i in range(4)]
    ok = ctx.sse(node, four, token=token, expect=None)
    assert ok.status == 200, f"4 channels with max_channels_per_stream = 4: {ok.status} {ok.body!r}"
    got = stream_refused(ctx, node, token, stream_target(four + ["chat:c4"]))
    assert got == (400, INVALID), f"5 channels with a maximum of 4: {got}"


def test_default_channel_limit_is_32(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    got = stream_refused(ctx, node, token, stream_target([f"chat:c{i}" for i in range(33)]))
    assert got == (400, INVALID), f"33 channels: {got}"


def test_publish_path_with_encoded_slash_rejected(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    for path in ("/v1/channels/chat%2Fx/events", "/v1/channels/chat:a%2Fb/events",
                 "/v1/channels/chat:a%00b/events"):
        r = node.http("POST", path, headers=bearer(token), json_body={"type": "msg", "data": 1})
        assert r.status == 400, f"POST {path}: expected 400 (not a different channel or 404), got {r!r}"
        assert problem_type(r) == INVALID, r


def test_publish_wrong_content_type_415(ctx):
    node, scope = ctx.node(), ctx.scope()
    h = dict(bearer(scope.token()), **{"Content-Type": "text/plain"})
    r = node.http("POST", "/v1/channels/chat:x/events", headers=h, body='{"type":"msg","data":1}')
    assert r.status == 415, r
    assert problem_type(r) == "urn:herald:unsupported_media_type", r


def test_publish_malformed_body_400(ctx):
    node, scope = ctx.node(), ctx.scope()
    h = dict(bearer(scope.token()), **{"Content-Type": "application/json"})
    bodies = {
        "invalid JSON": '{"type": "msg", "data": ',
        "trailing garbage": '{"type": "msg", "data": 1} x',
        "missing type": '{"data": 1}',
        "type not a string": '{"type": 5, "data": 1}',
        "bad type characters": '{"type": "a b", "data": 1}',
        "not an object": '["msg", 1]',
        "duplicate member": '{"type": "msg", "type": "msg", "data": 1}',
        "duplicate member deeper": '{"type": "msg", "data": {"a": 1, "a": 2}}',
        "number outside double range": '{"type": "msg", "data": 1e400}',
        "lone surrogate": '{"type": "msg", "data": "\\ud800"}',
    }
    wrong = {}
    for label, body in bodies.items():
        r = node.http("POST", "/v1/channels/chat:x/events", headers=h, body=body)
        if r.status != 400 or problem_type(r) != INVALID:
            wrong[label] = r
    assert not wrong, f"expected 400 {INVALID} for: {wrong}"


def test_publish_reserved_type_400(ctx):
    node, scope = ctx.node(), ctx.scope()
    r = publish(node, scope.token(), "chat:x", "herald.x", {"a": 1})
    assert r.status == 400, r
    assert problem_type(r) == INVALID, r


def test_publish_over_max_event_bytes_413(ctx):
    node, scope = ctx.node(config={"max_event_bytes": "1KiB"}), ctx.scope()
    token = scope.token()
    r = publish(node, token, "chat:x", "msg", {"blob": "x" * 2000})
    assert r.status == 413, r
    assert problem_type(r) == "urn:herald:payload_too_large", r
    small = publish(node, token, "chat:x", "msg", {"blob": "x" * 500})
    assert small.status == 201, f"a 500-byte event is within 1KiB: {small!r}"


def test_unknown_path_404(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    for path in ("/v1/nope", "/nope", "/v1/channels/chat:x/nope", "/v2/stream"):
        for headers in (None, bearer(token)):
            r = node.get(path, headers=headers)
            assert r.status == 404, f"GET {path}: {r!r}"
            assert problem_type(r) == "urn:herald:not_found", r


def test_wrong_method_405(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    for method, path in (("DELETE", "/v1/channels/chat:x/events"), ("POST", "/v1/stream"),
                         ("PUT", "/v1/channels/chat:x/events")):
        for headers in (None, bearer(token)):
            r = node.http(method, path, headers=headers)
            assert r.status == 405, f"{method} {path}: {r!r}"
            assert problem_type(r) == "urn:herald:method_not_allowed", r


def test_several_authorization_headers_are_400_everywhere(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    two = [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    r = node.http("POST", "/v1/channels/chat:x/events", headers=two + [("Content-Type", "application/json")],
                  body='{"type":"msg","data":1}')
    assert r.status == 400 and problem_type(r) == INVALID, r
    assert node.http("GET", "/v1/me", headers=two).status == 400
    assert node.http("POST", "/v1/tickets", headers=two).status == 400


def test_cross_scope_references_are_422(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    own = {"tenant_id": scope.tenant, "org_id": scope.org,
           "items": [{"org_id": scope.org, "n": 1}]}
    assert publish(node, token, "chat:x", "msg", own).status == 201
    foreign = {
        "other tenant": {"tenant_id": "someone-else"},
        "other org, nested in an array": {"items": [{"n": 1}, {"org_id": "other-org"}]},
        "null org": {"org_id": None},
        "number tenant": {"deep": {"tenant_id": 7}},
    }
    wrong = {}
    for label, data in foreign.items():
        r = publish(node, token, "chat:x", "msg", data)
        if r.status != 422 or problem_type(r) != "urn:herald:cross_scope_reference":
            wrong[label] = r
    assert not wrong, f"expected 422 cross_scope_reference for: {wrong}"
    r = publish(node, token, "chat:x", "msg", {"items": [{"n": 1}, {"org_id": "other-org"}]})
    assert "/data/items/1/org_id" in r.json()["detail"], r
