"""test_integrity.py — event integrity (SPEC §2, §4, §5.5): channel rules
(payload caps, required schemas, retention), event schemas enforced on
publish with a detail naming path and keyword, schemas refused at INSERT,
rule changes taking effect for the next publish on every node,
Idempotency-Key across nodes, and herald.publish() from SQL with the same
rules and the same delivery path."""

import json
import os
import re
import threading

from harness import SQLError, audit_rows, bearer, problem_type, publish, publish_ok, unique, \
    wait_audit, wait_for

SCHEMA_VIOLATION = "urn:herald:schema_violation"


def add_rule(ctx, tenant, pattern, **attrs):
    """Inserts a herald.channel_rules row (removed after the test)."""
    cols = ", ".join(["tenant_id", "channel_pattern"] + list(attrs))
    marks = ", ".join(f"${i + 1}" for i in range(2 + len(attrs)))
    ctx.pg.sql(f"INSERT INTO herald.channel_rules ({cols}) VALUES ({marks})",
               tenant, pattern, *attrs.values())
    ctx.on_cleanup(lambda: ctx.pg.sql(
        "DELETE FROM herald.channel_rules WHERE tenant_id IS NOT DISTINCT FROM $1 "
        "AND channel_pattern = $2", tenant, pattern))


def add_schema(ctx, tenant, pattern, type_, schema):
    """Inserts a herald.event_schemas row (removed after the test)."""
    ctx.pg.sql("INSERT INTO herald.event_schemas (tenant_id, channel_pattern, event_type, schema) "
               "VALUES ($1, $2, $3, $4::jsonb)", tenant, pattern, type_, json.dumps(schema))
    ctx.on_cleanup(lambda: ctx.pg.sql(
        "DELETE FROM herald.event_schemas WHERE tenant_id IS NOT DISTINCT FROM $1 "
        "AND channel_pattern = $2 AND event_type = $3", tenant, pattern, type_))


def rejected_publishes(ctx, node, reason, count):
    return wait_audit(ctx.pg, node, "publish",
                      lambda r: r["outcome"] == "rejected" and r["detail"]["reason"] == reason,
                      count)


# ---- payload caps -----------------------------------------------------------

def test_channel_rule_max_bytes_and_global_cap_smaller_wins(ctx):
    node, scope = ctx.node(config={"max_event_bytes": "2KiB"}), ctx.scope()
    token = scope.token()
    add_rule(ctx, scope.tenant, "chat:small-*", max_bytes=200)
    add_rule(ctx, scope.tenant, "chat:big-*", max_bytes=1000000)
    r = publish(node, token, "chat:small-1", "msg", {"blob": "x" * 300})
    assert r.status == 413 and problem_type(r) == "urn:herald:payload_too_large", r
    assert "max_bytes" in r.json()["detail"], r
    assert publish(node, token, "chat:small-1", "msg", {"blob": "x" * 100}).status == 201
    # The rule allows 1 MB, the node 2 KiB: the smaller wins.
    r = publish(node, token, "chat:big-1", "msg", {"blob": "x" * 3000})
    assert r.status == 413, f"max_event_bytes still caps a channel whose rule allows more: {r!r}"
    assert publish(node, token, "chat:other", "msg", {"blob": "x" * 1000}).status == 201, \
        "a channel without a rule has the node's cap"
    rows = rejected_publishes(ctx, node, "payload_too_large", 2)
    assert {r["channel"] for r in rows} == {"chat:small-1", "chat:big-1"}, rows
    assert rows[0]["tenant_id"] == scope.tenant and rows[0]["detail"]["status"] == 413, rows


def test_rule_precedence_tenant_rows_then_most_specific(ctx):
    node, scope = ctx.node(), ctx.scope()
    other = ctx.scope()
    token, other_token = scope.token(), other.token()
    mark = unique("p")
    # All-tenants rules, exact beats prefix; the tenant's own prefix beats both.
    add_rule(ctx, None, f"chat:{mark}-*", max_bytes=500)
    add_rule(ctx, None, f"chat:{mark}-exact", max_bytes=100)
    add_rule(ctx, scope.tenant, f"chat:{mark}*", max_bytes=2000)
    medium = {"blob": "x" * 300}
    assert publish(node, other_token, f"chat:{mark}-exact", "msg", medium).status == 413, \
        "the exact all-tenants rule (100 bytes) applies to a tenant without rules"
    assert publish(node, other_token, f"chat:{mark}-any", "msg", medium).status == 201, \
        "the prefix rule (500 bytes) applies to other channels"
    assert publish(node, other_token, f"chat:{mark}-any", "msg", {"blob": "x" * 600}).status == 413
    assert publish(node, token, f"chat:{mark}-exact", "msg", {"blob": "x" * 1500}).status == 201, \
        "the tenant's own rule wins over every all-tenants rule"


def test_rule_change_applies_to_the_next_publish_on_every_node(ctx):
    n1, n2 = ctx.node("n1"), ctx.node("n2")
    scope = ctx.scope()
    token = scope.token()
    body = {"blob": "x" * 300}
    for node in (n1, n2):
        assert publish(node, token, "chat:live", "msg", body).status == 201
    add_rule(ctx, scope.tenant, "chat:live", max_bytes=100)
    for node in (n1, n2):
        r = publish(node, token, "chat:live", "msg", body)
        assert r.status == 413, f"{node.node_id}: the new rule applies at once: {r!r}"
    ctx.pg.sql("UPDATE herald.channel_rules SET max_bytes = NULL WHERE tenant_id = $1",
               scope.tenant)
    for node in (n1, n2):
        assert publish(node, token, "chat:live", "msg", body).status == 201, \
            f"{node.node_id}: a NULL max_bytes means the config default again"


# ---- schemas ------------------------------------------------------------------

MESSAGE_SCHEMA = {
    "type": "object",
    "required": ["text"],
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 20},
        "items": {"type": "array", "items": {
            "type": "object", "properties": {"price": {"type": "number", "minimum": 0}}}},
    },
    "additionalProperties": False,
}


def test_schema_violation_names_path_and_keyword(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    add_schema(ctx, scope.tenant, "chat:*", "msg", MESSAGE_SCHEMA)
    assert publish(node, token, "chat:s", "msg", {"text": "hi", "items": [{"price": 2}]}).status == 201
    cases = {
        "/data/items/1/price": ({"text": "hi", "items": [{"price": 1}, {"price": -1}]}, "minimum"),
        "/data/text": ({"text": 5}, "type"),
        "/data": ({"items": []}, "required"),
        "/data/extra": ({"text": "hi", "extra": 1}, "additionalProperties"),
    }
    for path, (data, keyword) in cases.items():
        r = publish(node, token, "chat:s", "msg", data)
        assert r.status == 422 and problem_type(r) == SCHEMA_VIOLATION, r
        detail = r.json()["detail"]
        assert path in detail and keyword in detail, f"{data}: detail {detail!r} should name " \
            f"{path} and {keyword}"
    assert publish(node, token, "chat:s", "other", {"anything": True}).status == 201, \
        "a type without a schema passes when the channel does not require one"
    assert publish(node, token, "orders:s", "msg", {"text": 5}).status == 201, \
        "the schema covers chat:* only"
    rows = rejected_publishes(ctx, node, "schema_violation", len(cases))
    assert all(r["detail"]["status"] == 422 and r["channel"] == "chat:s" for r in rows), rows
    m = node.metrics()
    assert m.value("herald_http_errors_total", code="schema_violation") >= len(cases)


def test_require_schema_refuses_types_without_one(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    add_rule(ctx, scope.tenant, "orders:*", require_schema=True)
    add_schema(ctx, scope.tenant, "orders:*", "created", {"type": "object", "required": ["id"]})
    assert publish(node, token, "orders:eu", "created", {"id": 1}).status == 201
    r = publish(node, token, "orders:eu", "deleted", {"id": 1})
    assert r.status == 422 and problem_type(r) == SCHEMA_VIOLATION, r
    assert "requires a schema" in r.json()["detail"], r
    assert publish(node, token, "chat:eu", "deleted", {"id": 1}).status == 201, \
        "other channels do not require schemas"
    rejected_publishes(ctx, node, "schema_violation", 1)


def test_tenant_schema_wins_and_other_tenants_are_untouched(ctx):
    node, scope = ctx.node(), ctx.scope()
    other = ctx.scope()
    mark = unique("t")
    typ = f"ev-{mark}"
    add_schema(ctx, None, "chat:*", typ, {"type": "object", "required": ["a"]})
    add_schema(ctx, scope.tenant, "chat:*", typ, {"type": "object", "required": ["b"]})
    token, other_token = scope.token(), other.token()
    assert publish(node, token, "chat:x", typ, {"b": 1}).status == 201
    assert publish(node, token, "chat:x", typ, {"a": 1}).status == 422, \
        "the tenant's own schema replaces the all-tenants one"
    assert publish(node, other_token, "chat:x", typ, {"a": 1}).status == 201
    assert publish(node, other_token, "chat:x", typ, {"b": 1}).status == 422, \
        "another tenant gets the all-tenants schema"


def test_unsupported_schema_keywords_are_refused_at_insert(ctx):
    scope = ctx.scope()
    for schema, where in (({"type": "string", "format": "email"}, 'unsupported keyword "format"'),
                          ({"properties": {"a": {"unevaluatedProperties": False}}},
                           "/properties/a"),
                          ({"$ref": "https://example.com/s.json"}, "local references"),
                          ({"$schema": "http://json-schema.org/draft-07/schema#"}, "2020-12")):
        try:
            add_schema(ctx, scope.tenant, "chat:*", "msg", schema)
        except SQLError as e:
            assert where in str(e), f"{schema}: the error should say {where!r}: {e}"
        else:
            raise AssertionError(f"{schema} was accepted")
    assert ctx.pg.sql_value("SELECT count(*) FROM herald.event_schemas WHERE tenant_id = $1",
                            scope.tenant) == "0"


def test_schema_the_node_cannot_compile_refuses_its_type(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    # The keyword is known to SQL's check, its value is not usable.
    add_schema(ctx, scope.tenant, "chat:*", "msg", {"minimum": "three"})
    r = publish(node, token, "chat:x", "msg", 5)
    assert r.status == 422 and problem_type(r) == SCHEMA_VIOLATION, r
    assert "cannot be used" in r.json()["detail"], r
    wait_for(lambda: "event schema refused" in node.log_text(), 5, what="the node logs why")
    assert publish(node, token, "chat:x", "other", 5).status == 201


def test_schema_change_applies_to_the_next_publish_on_every_node(ctx):
    n1, n2 = ctx.node("n1"), ctx.node("n2")
    scope = ctx.scope()
    token = scope.token()
    add_schema(ctx, scope.tenant, "chat:*", "msg", {"type": "string"})
    for node in (n1, n2):
        assert publish(node, token, "chat:x", "msg", 5).status == 422
    ctx.pg.sql("UPDATE herald.event_schemas SET schema = '{\"type\":\"number\"}' "
               "WHERE tenant_id = $1", scope.tenant)
    for node in (n1, n2):
        assert publish(node, token, "chat:x", "msg", 5).status == 201, node.node_id
        assert publish(node, token, "chat:x", "msg", "five").status == 422, node.node_id
    ctx.pg.sql("DELETE FROM herald.event_schemas WHERE tenant_id = $1", scope.tenant)
    for node in (n1, n2):
        assert publish(node, token, "chat:x", "msg", "five").status == 201, node.node_id


# ---- idempotency ----------------------------------------------------------------

def keyed(node, token, channel, key, data, type_="msg"):
    return publish(node, token, channel, type_, data, headers={"Idempotency-Key": key})


def test_idempotent_retry_on_another_node_returns_the_same_id_once(ctx):
    n1, n2 = ctx.node("n1"), ctx.node("n2")
    scope = ctx.scope()
    token = scope.token()
    client, _ = ctx.subscribe(n2, ["chat:idem"], token)
    first = keyed(n1, token, "chat:idem", "order-42", {"n": 1})
    assert first.status == 201, first
    for node in (n1, n2):
        again = keyed(node, token, "chat:idem", "order-42", {"n": 1})
        assert again.status == 200, f"{node.node_id}: a replay answers 200: {again!r}"
        assert again.json() == first.json(), (again.json(), first.json())
    marker = publish_ok(n1, token, "chat:idem", "msg", {"n": "after"})
    seen = client.read_until(lambda e: e.json().get("id") == marker, timeout=5)
    ids = [e.json()["id"] for e in seen if e.type == "msg"]
    assert ids == [first.json()["id"], marker], f"the keyed event is delivered once: {ids}"
    assert len(scope.events("chat:idem")) == 2


def test_idempotency_key_with_another_body_is_409(ctx):
    n1, n2 = ctx.node("n1"), ctx.node("n2")
    scope = ctx.scope()
    token = scope.token()
    assert keyed(n1, token, "chat:c", "k1", {"n": 1}).status == 201
    r = keyed(n2, token, "chat:c", "k1", {"n": 2})
    assert r.status == 409 and problem_type(r) == "urn:herald:idempotency_conflict", r
    rows = rejected_publishes(ctx, n2, "idempotency_conflict", 1)
    assert rows[0]["channel"] == "chat:c" and rows[0]["detail"]["status"] == 409, rows
    # Keys are scoped to (tenant, org, channel, key).
    assert keyed(n1, token, "chat:d", "k1", {"n": 2}).status == 201
    assert keyed(n1, scope.sibling().token(), "chat:c", "k1", {"n": 2}).status == 201
    assert len(scope.events("chat:c")) == 1


def test_concurrent_duplicates_yield_one_201(ctx):
    n1, n2 = ctx.node("n1"), ctx.node("n2")
    scope = ctx.scope()
    token = scope.token()
    results = []
    lock = threading.Lock()

    def send(node):
        r = keyed(node, token, "chat:race", "same-key", {"n": 1})
        with lock:
            results.append(r)

    threads = [threading.Thread(target=send, args=(n1 if i % 2 else n2,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status for r in results)
    assert statuses == [200] * 11 + [201], statuses
    assert len({r.json()["id"] for r in results}) == 1, [r.json() for r in results]
    assert len(scope.events("chat:race")) == 1


def test_malformed_idempotency_keys_are_400(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    for key in ("", "a" * 256, "has space", "caf\u00e9".encode().decode("latin-1")):
        r = keyed(node, token, "chat:k", key, {"n": 1})
        assert r.status == 400 and problem_type(r) == "urn:herald:invalid_request", (key, r)
    two = dict(bearer(token), **{"Content-Type": "application/json"})
    r = node.http("POST", "/v1/channels/chat:k/events",
                  headers=list(two.items()) + [("Idempotency-Key", "a"), ("Idempotency-Key", "b")],
                  body='{"type":"msg","data":1}')
    assert r.status == 400, r
    assert keyed(node, token, "chat:k", "a" * 255, {"n": 1}).status == 201
    assert scope.events("chat:k") and len(scope.events("chat:k")) == 1


# ---- in-database publishing --------------------------------------------------------

def test_sql_publish_applies_size_type_and_scope_rules(ctx):
    scope = ctx.scope()
    add_rule(ctx, scope.tenant, "chat:tiny", max_bytes=20)
    refused = {
        "reserved type": ("chat:x", "herald.open", {}, "reserved"),
        "bad type": ("chat:x", "bad type", {}, "invalid event type"),
        "bad channel": ("Chat:x", "msg", {}, "invalid channel"),
        "over the rule's max_bytes": ("chat:tiny", "msg", {"blob": "x" * 30}, "payload_too_large"),
        "foreign tenant": ("chat:x", "msg", {"a": [{"tenant_id": "other"}]}, "cross_scope_reference"),
        "null org": ("chat:x", "msg", {"org_id": None}, "cross_scope_reference"),
    }
    for label, (channel, type_, data, why) in refused.items():
        try:
            scope.publish_sql(channel, type_, data)
        except SQLError as e:
            assert why in str(e), f"{label}: expected {why!r} in {e}"
        else:
            raise AssertionError(f"{label}: herald.publish accepted it")
    assert scope.publish_sql("chat:tiny", "msg", {"ok": 1})
    assert scope.publish_sql("chat:x", "msg", {"tenant_id": scope.tenant, "org_id": scope.org})
    assert len(scope.events()) == 2


def readme_block(marker):
    """The ```sql block of sql/README.md that contains marker."""
    path = os.path.join(os.environ.get("HERALD_SRCDIR", "."), "sql", "README.md")
    with open(path, encoding="utf-8") as f:
        blocks = re.findall(r"```sql\n(.*?)```", f.read(), flags=re.S)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"sql/README.md should have one block with {marker!r}"
    return found[0]


def test_sql_trigger_publishes_row_changes_to_streams_on_two_nodes(ctx):
    n1, n2 = ctx.node("n1"), ctx.node("n2")
    scope = ctx.scope()
    token = scope.token()
    # The trigger example of sql/README.md, as written.
    ctx.pg.sql(readme_block("CREATE TRIGGER shop_orders_publish"))
    ctx.on_cleanup(lambda: ctx.pg.sql("DROP TABLE shop_orders; DROP FUNCTION shop_orders_publish()"))
    a, _ = ctx.subscribe(n1, ["orders:1000"], token)
    b, _ = ctx.subscribe(n2, ["orders:1000"], token)
    ctx.pg.sql("INSERT INTO shop_orders (id, tenant_id, org_id, status) VALUES (1000, $1, $2, 'new')",
               scope.tenant, scope.org)
    ctx.pg.sql("UPDATE shop_orders SET status = 'paid' WHERE id = 1000")
    for client in (a, b):
        got = [client.read_until_type(t, timeout=5)[-1] for t in ("order.insert", "order.update")]
        assert [e.json()["data"] for e in got] == [{"id": 1000, "status": "new"},
                                                   {"id": 1000, "status": "paid"}], got
    try:
        ctx.pg.sql("INSERT INTO shop_orders (id, tenant_id, org_id, status) VALUES "
                   "(1001, $1, $2, $3)", scope.tenant, scope.org, "x" * 70000)
    except SQLError as e:
        assert "payload_too_large" in str(e), e
    else:
        raise AssertionError("a row whose event exceeds 64 KiB was inserted")
    assert ctx.pg.sql_value("SELECT count(*) FROM shop_orders WHERE id = 1001") == "0", \
        "the refused event rolls back the row change"


# ---- retention ------------------------------------------------------------------------

def test_channel_rule_history_sets_retention(ctx):
    scope = ctx.scope()
    add_rule(ctx, scope.tenant, "chat:short", history="10 minutes")
    add_rule(ctx, scope.tenant, "chat:long", history="3 hours")
    for ch in ("chat:short", "chat:long", "chat:default"):
        scope.publish_sql(ch, "msg", {"n": 1})
    ctx.pg.sql("UPDATE herald.events SET published_at = now() - interval '2 hours' "
               "WHERE tenant_id = $1", scope.tenant)
    scope.publish_sql("chat:short", "msg", {"n": 2})
    wait_for(lambda: ctx.pg.sql_value("SELECT herald.trim_events('1 hour')") != "0", 10,
             what="a trim run that is not skipped")
    left = [(c, s) for c, s, _, _ in scope.events()]
    assert left == [("chat:long", 1), ("chat:short", 2)], \
        f"chat:short keeps 10 min, chat:long 3 h, others the 1 h default: {left}"


def test_idempotency_keys_expire_with_their_channel(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    first = keyed(node, token, "chat:exp", "k", {"n": 1})
    assert first.status == 201
    ctx.pg.sql("UPDATE herald.idempotency_keys SET created_at = now() - interval '2 hours' "
               "WHERE tenant_id = $1", scope.tenant)
    wait_for(lambda: ctx.pg.sql_value("SELECT herald.trim_events('1 hour') >= 0") == "t" and
             ctx.pg.sql_value("SELECT count(*) FROM herald.idempotency_keys WHERE tenant_id = $1",
                              scope.tenant) == "0", 10, what="the key trimmed")
    again = keyed(node, token, "chat:exp", "k", {"n": 1})
    assert again.status == 201 and again.json()["id"] != first.json()["id"], again


def test_rejections_are_counted_without_audit_rows_for_replays(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    assert keyed(node, token, "chat:r", "k", {"n": 1}).status == 201
    assert keyed(node, token, "chat:r", "k", {"n": 1}).status == 200
    assert keyed(node, token, "chat:r", "k", {"n": 2}).status == 409
    rows = rejected_publishes(ctx, node, "idempotency_conflict", 1)
    assert len([r for r in audit_rows(ctx.pg, node, "publish")]) == len(rows), \
        "a replay is not a rejection"


def test_concurrent_publishes_on_two_nodes_all_arrive_once_in_order(ctx):
    n1, n2 = ctx.node("n1"), ctx.node("n2")
    scope = ctx.scope()
    token = scope.token()
    channels = [f"chat:g{i}" for i in range(4)]
    subs = [ctx.subscribe(node, channels, token)[0] for node in (n1, n2)]
    results, lock = [], threading.Lock()

    def send(t):
        for j in range(10):
            ch = channels[(t + j) % len(channels)]
            key = f"k-{t}-{j}" if j % 2 else None
            r = publish(n1 if t % 2 else n2, token, ch, "msg", {"t": t, "j": j},
                        headers={"Idempotency-Key": key} if key else None)
            with lock:
                results.append((ch, r))

    threads = [threading.Thread(target=send, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bad = [r for _, r in results if r.status != 201]
    assert not bad, f"every concurrent publish is committed: {bad[:3]}"
    want = {ch: sorted((r.json()["id"] for c, r in results if c == ch),
                       key=lambda i: int(i.rsplit("-", 1)[1])) for ch in channels}
    for client in subs:
        got = {ch: [] for ch in channels}
        def have_all():
            for e in client.collect(0.2):
                if e.type == "msg":
                    got[e.json()["channel"]].append(e.json()["id"])
            return sum(map(len, got.values())) >= len(results)
        wait_for(have_all, 15, what="every event on the stream")
        assert got == want, "per channel: every event once, in sequence order"


def test_body_postgresql_refuses_fails_alone_in_a_busy_group(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    h = list(bearer(token).items()) + [("Content-Type", "application/json")]
    results, lock = [], threading.Lock()

    def send(body):
        r = node.http("POST", "/v1/channels/chat:nul/events", headers=h, body=body)
        with lock:
            results.append((body, r.status))

    # jsonb has no \u0000: strict JSON that only PostgreSQL refuses.
    bodies = ['{"type":"msg","data":"a\\u0000b"}'] + \
        [json.dumps({"type": "msg", "data": i}) for i in range(15)]
    threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    status = dict(results)
    assert status.pop(bodies[0]) == 400, results
    assert set(status.values()) == {201}, results
    assert len(scope.events("chat:nul")) == 15


def test_cross_scope_rejections_are_audited_and_counted(ctx):
    node, scope = ctx.node(), ctx.scope()
    token = scope.token()
    r = publish(node, token, "chat:x", "msg", {"order": {"tenant_id": "someone-else"}})
    assert r.status == 422 and problem_type(r) == "urn:herald:cross_scope_reference", r
    rows = rejected_publishes(ctx, node, "cross_scope_reference", 1)
    assert rows[0]["tenant_id"] == scope.tenant and rows[0]["channel"] == "chat:x", rows
    assert node.metrics().value("herald_http_errors_total", code="cross_scope_reference") >= 1
