"""test_tickets.py — stream tickets (SPEC §2): POST /v1/tickets, one
first use on any node, native EventSource reconnects through the cursor
proof, nothing else reopens a used ticket, revocation voids tickets."""

from harness import bearer, publish_ok, stream_target

CHANNEL = "chat:tickets"


def new_ticket(node, token, ttl=30):
    r = node.http("POST", "/v1/tickets", headers=bearer(token))
    assert r.status == 201, r
    body = r.json()
    assert set(body) == {"ticket", "expires_in"}, body
    assert body["expires_in"] == ttl, body
    return body["ticket"]


def ticket_target(ticket):
    return stream_target(CHANNEL, extra=f"ticket={ticket}")


def open_with_ticket(ctx, node, ticket, last_event_id=None, expect=200):
    client = ctx.sse(node, target=ticket_target(ticket), last_event_id=last_event_id,
                     expect=expect)
    if expect != 200:
        return client, None
    ev = client.next_event(timeout=5)
    assert ev.type == "herald.open", ev
    return client, ev


def test_ticket_opens_one_stream_on_another_node(ctx):
    n1, n2, scope = ctx.node("n1"), ctx.node("n2"), ctx.scope()
    token = scope.token()
    ticket = new_ticket(n1, token)
    client, _ = open_with_ticket(ctx, n2, ticket)
    event_id = publish_ok(n1, token, CHANNEL, "msg", {"n": 1})
    assert client.next_event(5).json()["id"] == event_id
    # A second use without a proof, on either node, is refused.
    for node in (n1, n2):
        refused, _ = open_with_ticket(ctx, node, ticket, expect=401)
        assert refused.json_body()["type"] == "urn:herald:unauthenticated"


def test_used_ticket_reopens_with_its_own_cursor_and_resumes(ctx):
    """What a browser's EventSource does on a ticket URL: reconnect with
    the same URL and Last-Event-ID — it resumes without a gap."""
    n1, n2, scope = ctx.node("n1"), ctx.node("n2"), ctx.scope()
    token = scope.token()
    ticket = new_ticket(n1, token)
    client, opened = open_with_ticket(ctx, n1, ticket)
    first = publish_ok(n1, token, CHANNEL, "msg", {"n": 1})
    ev = client.next_event(5)
    assert ev.json()["id"] == first
    client.close()
    missed = publish_ok(n2, token, CHANNEL, "msg", {"n": 2})
    again, _ = open_with_ticket(ctx, n2, ticket, last_event_id=ev.id)
    assert again.next_event(5).json()["id"] == missed
    # The herald.open id of a ticket stream is a valid proof as well.
    third, _ = open_with_ticket(ctx, n1, ticket, last_event_id=opened.id)
    assert [e.json()["id"] for e in (third.next_event(5), third.next_event(5))] == [first, missed]


def test_altered_or_foreign_cursor_does_not_reopen_a_used_ticket(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    ticket, other = new_ticket(node, token), new_ticket(node, token)
    _, opened = open_with_ticket(ctx, node, ticket)
    _, other_open = open_with_ticket(ctx, node, other)
    body, proof = opened.id.rsplit("-", 1)
    flipped = proof[:-1] + ("0" if proof[-1] != "0" else "1")
    bearer_client, bearer_open = ctx.subscribe(node, CHANNEL, token)
    for cursor in (f"{body}-{flipped}", body, other_open.id, bearer_open.id):
        open_with_ticket(ctx, node, ticket, last_event_id=cursor, expect=401)


def test_revocation_voids_tickets_and_closes_ticket_streams(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    used, unused = new_ticket(node, token), new_ticket(node, token)
    client, opened = open_with_ticket(ctx, node, used)
    ctx.pg.sql("UPDATE herald.sessions SET revoked_at = now() "
               "WHERE token_hash = sha256(convert_to($1, 'UTF8'))", token)
    client.read_until_type("herald.revoked", timeout=5)
    open_with_ticket(ctx, node, unused, expect=401)
    open_with_ticket(ctx, node, used, last_event_id=opened.id, expect=401)


def test_ticket_expires_for_its_first_use(ctx):
    node, scope = ctx.node(config={"ticket_ttl": "2s"}), ctx.scope()
    token = scope.token()
    ticket = new_ticket(node, token, ttl=2)
    ctx.pg.sql("UPDATE herald.tickets SET expires_at = now() - interval '1 second' "
               "WHERE ticket_hash = sha256(convert_to($1, 'UTF8'))", ticket)
    open_with_ticket(ctx, node, ticket, expect=401)


def test_ticket_is_stored_hashed_and_never_logged(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    ticket = new_ticket(node, token)
    open_with_ticket(ctx, node, ticket)
    open_with_ticket(ctx, node, ticket, expect=401)
    stored = ctx.pg.sql_value("SELECT count(*) FROM herald.tickets "
                              "WHERE ticket_hash = sha256(convert_to($1, 'UTF8'))", ticket)
    assert stored == "1", stored
    dump = ctx.pg.sql_value("SELECT coalesce(string_agg(t::text, ''), '') FROM herald.tickets t")
    assert ticket not in dump and ticket[4:] not in dump
    audit = ctx.pg.sql_value("SELECT coalesce(string_agg(a::text, ''), '') FROM herald.audit_log a")
    assert ticket not in audit
    assert ticket not in node.log_text()


def test_tickets_need_a_session(ctx):
    node = ctx.node()
    r = node.http("POST", "/v1/tickets")
    assert r.status == 401, r
    r = node.http("POST", "/v1/tickets", headers=bearer("hrd_" + "1" * 64))
    assert r.status == 401, r
    assert node.http("GET", "/v1/tickets").status == 405
