"""test_auth.py — who may open a stream (SPEC §2 credentials, §5.4, §7):
missing, garbage, expired and revoked credentials all get the same 401;
Bearer header, cookie and access_token query each work; revocation and
expiry end open streams."""

from urllib.parse import quote

from harness import bearer, problem_type, stream_target

CHANNEL = "chat:auth"
BY_TOKEN = "token_hash = sha256(convert_to($1, 'UTF8'))"


def expire(pg, token):
    pg.sql(f"UPDATE herald.sessions SET expires_at = now() - interval '1 second' WHERE {BY_TOKEN}", token)


def revoke(pg, token):
    pg.sql(f"UPDATE herald.sessions SET revoked_at = now() WHERE {BY_TOKEN}", token)


def refused(ctx, node, headers=None, target=None):
    """Opens a stream that must be refused with 401 problem+json; returns the body."""
    client = ctx.sse(node, CHANNEL, target=target, headers=headers, expect=None)
    assert client.status == 401, f"expected 401, got {client.status} {client.body[:300]!r}"
    assert problem_type(client) == "urn:herald:unauthenticated", client.body
    return client.body


def test_no_credentials_401(ctx):
    refused(ctx, ctx.node())


def test_garbage_token_401(ctx):
    refused(ctx, ctx.node(), headers=bearer("garbage-" + "x" * 40))


def test_expired_token_401(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    expire(ctx.pg, token)
    refused(ctx, node, headers=bearer(token))


def test_revoked_token_401(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    revoke(ctx.pg, token)
    refused(ctx, node, headers=bearer(token))


def test_401_bodies_are_identical(ctx):
    node, scope = ctx.node(), ctx.scope()
    expired, revoked = scope.token(), scope.token()
    expire(ctx.pg, expired)
    revoke(ctx.pg, revoked)
    bodies = {
        "missing": refused(ctx, node),
        "garbage": refused(ctx, node, headers=bearer("hrd_" + "0" * 64)),
        "expired": refused(ctx, node, headers=bearer(expired)),
        "revoked": refused(ctx, node, headers=bearer(revoked)),
    }
    distinct = set(bodies.values())
    assert len(distinct) == 1, "401 bodies must not tell why: " + repr(bodies)


def assert_opens(ctx, client, user):
    ev = client.next_event(timeout=5)
    assert ev.type == "herald.open", f"expected herald.open, got {ev!r}"
    assert ev.json().get("user_id") == user, f"stream opened for the wrong user: {ev.data}"


def test_bearer_header_opens_stream(ctx):
    node, scope = ctx.node(), ctx.scope()
    user = scope.user()
    client = ctx.sse(node, CHANNEL, token=scope.token(user))
    assert_opens(ctx, client, user)


def test_cookie_opens_stream(ctx):
    node, scope = ctx.node(), ctx.scope()
    user = scope.user()
    client = ctx.sse(node, CHANNEL, headers={"Cookie": f"herald_token={scope.token(user)}"})
    assert_opens(ctx, client, user)


def test_access_token_query_opens_stream(ctx):
    node, scope = ctx.node(), ctx.scope()
    user = scope.user()
    client = ctx.sse(node, target=stream_target(CHANNEL, token=scope.token(user)))
    assert_opens(ctx, client, user)


def test_bearer_wins_over_bad_query_token(ctx):
    node, scope = ctx.node(), ctx.scope()
    user = scope.user()
    target = stream_target(CHANNEL) + "&access_token=" + quote("not-a-token")
    client = ctx.sse(node, target=target, token=scope.token(user))
    assert_opens(ctx, client, user)


def test_revocation_closes_open_streams_on_every_node(ctx):
    n1, n2, scope = ctx.node("n1"), ctx.node("n2"), ctx.scope()
    token = scope.token()
    c1, _ = ctx.subscribe(n1, CHANNEL, token)
    c2, _ = ctx.subscribe(n2, CHANNEL, token)
    revoke(ctx.pg, token)
    for client in (c1, c2):
        client.read_until_type("herald.revoked", timeout=5)
        assert client.wait_end(5), f"{client.label}: stream still open after herald.revoked"


def test_expiry_closes_stream(ctx):
    node, scope = ctx.node(), ctx.scope()
    client, _ = ctx.subscribe(node, CHANNEL, scope.token(ttl="2 seconds"))
    client.read_until_type("herald.expired", timeout=6)
    assert client.wait_end(5), "stream still open after herald.expired"
