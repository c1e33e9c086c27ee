"""test_presence.py — presence across the cluster (SPEC §2 presence route,
§3 herald.presence, §4 channel_rules.presence, herald.presence,
herald.nodes): members listed from every node, join/leave events only to
subscribers allowed to see presence, one join and one leave per user
however many streams, dead nodes cleaned up by the survivors, a restarted
node's stale rows cleaned up at start, and permission changes applied to
presence visibility."""

from harness import bearer, problem_type, publish_ok, unique, wait_audit, wait_for

FAST = {"node_heartbeat_interval": "200ms", "node_timeout": "1s"}


def presence_scope(ctx, watchers=()):
    """A scope whose chat:room-* channels have presence on; realtime.presence
    is granted only to the users in watchers."""
    scope = ctx.scope()
    ctx.pg.sql("DELETE FROM herald.grants WHERE tenant_id = $1 AND permission = 'realtime.presence'",
               scope.tenant)
    for user in watchers:
        ctx.pg.sql("INSERT INTO herald.grants (tenant_id, org_id, subject, permission, channel_pattern)"
                   " VALUES ($1, NULL, $2, 'realtime.presence', 'chat:*')", scope.tenant, f"user:{user}")
    ctx.pg.sql("INSERT INTO herald.channel_rules (tenant_id, channel_pattern, presence) "
               "VALUES ($1, 'chat:room-*', true)", scope.tenant)
    ctx.on_cleanup(lambda: ctx.pg.sql("DELETE FROM herald.channel_rules WHERE tenant_id = $1",
                                      scope.tenant))
    return scope


def members(node, token, channel):
    r = node.get(f"/v1/channels/{channel}/presence", headers=bearer(token))
    assert r.status == 200, r
    return {m["user_id"]: m["connections"] for m in r.json()}


def wait_members(node, token, channel, want, timeout=10):
    try:
        wait_for(lambda: members(node, token, channel) == want, timeout,
                 what=f"members {want}")
    except Exception:
        raise AssertionError(f"members of {channel}: {members(node, token, channel)}, want {want}")


def presence_events(client, duration):
    return [e.json() for e in client.collect(duration) if e.type == "herald.presence"]


def next_presence(client, timeout=8):
    ev = client.read_until_type("herald.presence", timeout=timeout)[-1]
    return ev.json()


def test_members_are_listed_across_nodes(ctx):
    n1, n2 = ctx.node("n1"), ctx.node("n2")
    scope = presence_scope(ctx, watchers=["alice"])
    alice, bob = scope.token(user="alice"), scope.token(user="bob")
    ctx.subscribe(n1, ["chat:room-1"], alice)
    ctx.subscribe(n1, ["chat:room-1", "chat:other"], alice)
    ctx.subscribe(n2, ["chat:room-1"], bob)
    wait_members(n1, alice, "chat:room-1", {"alice": 2, "bob": 1})
    wait_members(n2, alice, "chat:room-1", {"alice": 2, "bob": 1})
    r = n2.get("/v1/channels/chat:room-1/presence", headers=bearer(alice))
    for m in r.json():
        assert set(m) == {"user_id", "joined_at", "connections"}, m
        assert m["joined_at"].endswith("Z"), m
    assert members(n1, alice, "chat:room-2") == {}, "another channel has no members"


def test_presence_off_is_404_and_no_permission_is_403(ctx):
    node = ctx.node()
    scope = presence_scope(ctx, watchers=["alice"])
    alice, bob = scope.token(user="alice"), scope.token(user="bob")
    r = node.get("/v1/channels/chat:other/presence", headers=bearer(alice))
    assert r.status == 404 and problem_type(r) == "urn:herald:not_found", r
    r = node.get("/v1/channels/chat:room-1/presence", headers=bearer(bob))
    assert r.status == 403 and problem_type(r) == "urn:herald:permission_denied", r
    r = node.get("/v1/channels/chat:room-1/presence")
    assert r.status == 401, r
    r = node.get("/v1/channels/Bad:room/presence", headers=bearer(alice))
    assert r.status == 400, r
    rows = wait_audit(ctx.pg, node, "presence", lambda r: r["channel"] == "chat:other", 1)
    assert rows[0]["outcome"] == "rejected" and rows[0]["detail"]["reason"] == "not_found", rows
    rows = wait_audit(ctx.pg, node, "authz.denied", lambda r: r["channel"] == "chat:room-1", 1)
    assert rows[0]["user_id"] == "bob" and rows[0]["detail"]["reason"] == "permission_denied", rows
    assert node.metrics().value("herald_http_errors_total", code="permission_denied") >= 1


def test_join_and_leave_once_per_user_only_to_allowed_subscribers(ctx):
    n1, n2 = ctx.node("n1"), ctx.node("n2")
    scope = presence_scope(ctx, watchers=["alice"])
    alice, bob, carol = (scope.token(user=u) for u in ("alice", "bob", "carol"))
    watcher, _ = ctx.subscribe(n1, ["chat:room-1"], alice)
    assert next_presence(watcher) == {"action": "join", "channel": "chat:room-1",
                                      "user_id": "alice", "connections": 1}
    blind, _ = ctx.subscribe(n2, ["chat:room-1"], carol)
    assert next_presence(watcher)["user_id"] == "carol"
    tab1, _ = ctx.subscribe(n2, ["chat:room-1"], bob)
    assert next_presence(watcher) == {"action": "join", "channel": "chat:room-1",
                                      "user_id": "bob", "connections": 1}
    tab2, _ = ctx.subscribe(n1, ["chat:room-1"], bob)   # second tab, other node
    wait_members(n1, alice, "chat:room-1", {"alice": 1, "bob": 2, "carol": 1})
    tab1.close()
    wait_members(n1, alice, "chat:room-1", {"alice": 1, "bob": 1, "carol": 1})
    tab2.close()
    assert next_presence(watcher) == {"action": "leave", "channel": "chat:room-1",
                                      "user_id": "bob", "connections": 0}, \
        "bob's second tab neither joined nor left again"
    # carol (no realtime.presence) saw none of it, and her stream still works.
    marker = publish_ok(n1, alice, "chat:room-1", "msg", {"n": 1})
    seen = blind.read_until(lambda e: e.type == "msg", timeout=5)
    assert [e.type for e in seen if e.type == "herald.presence"] == [], seen
    assert seen[-1].json()["id"] == marker
    assert n1.metrics().value("herald_presence_events_total") >= 4  # alice, carol, bob, bob
    assert n2.metrics().value("herald_presence_writes_total") >= 1


def test_dead_node_is_removed_by_the_survivors(ctx):
    n1, n2 = ctx.node("n1", config=FAST), ctx.node("n2", config=FAST)
    scope = presence_scope(ctx, watchers=["alice"])
    alice, bob = scope.token(user="alice"), scope.token(user="bob")
    watcher, _ = ctx.subscribe(n1, ["chat:room-1"], alice)
    ctx.subscribe(n2, ["chat:room-1"], bob)
    wait_members(n1, alice, "chat:room-1", {"alice": 1, "bob": 1})
    # The two nodes write their members independently: either join first.
    assert {next_presence(watcher)["user_id"] for _ in range(2)} == {"alice", "bob"}
    n2.kill9()
    leave = next_presence(watcher, timeout=10)
    assert leave == {"action": "leave", "channel": "chat:room-1", "user_id": "bob",
                     "connections": 0}, leave
    assert members(n1, alice, "chat:room-1") == {"alice": 1}
    assert ctx.pg.sql_value("SELECT count(*) FROM herald.nodes WHERE node_id = $1",
                            n2.node_id) == "0"


def test_restarted_node_cleans_its_stale_rows_at_start(ctx):
    slow = {"node_heartbeat_interval": "200ms", "node_timeout": "1h"}
    n1, n2 = ctx.node("n1", config=slow), ctx.node("n2", config=slow)
    scope = presence_scope(ctx, watchers=["alice"])
    alice, bob = scope.token(user="alice"), scope.token(user="bob")
    watcher, _ = ctx.subscribe(n1, ["chat:room-1"], alice)
    ctx.subscribe(n2, ["chat:room-1"], bob)
    wait_members(n1, alice, "chat:room-1", {"alice": 1, "bob": 1})
    n2.kill9()
    assert members(n1, alice, "chat:room-1") == {"alice": 1, "bob": 1}, \
        "within node_timeout a dead node still counts"
    n2.restart()
    events = [next_presence(watcher) for _ in range(3)]
    assert {"action": "leave", "channel": "chat:room-1", "user_id": "bob",
            "connections": 0} in events, events
    wait_members(n1, alice, "chat:room-1", {"alice": 1})


def test_losing_the_presence_grant_hides_presence_on_open_streams(ctx):
    node = ctx.node()
    scope = presence_scope(ctx, watchers=["alice"])
    alice, bob = scope.token(user="alice"), scope.token(user="bob")
    watcher, _ = ctx.subscribe(node, ["chat:room-1"], alice)
    assert next_presence(watcher)["user_id"] == "alice"
    # A second stream of alice loses its channel in the same policy change,
    # so its herald.forbidden shows that the re-check has run.
    ctx.pg.sql("INSERT INTO herald.grants (tenant_id, org_id, subject, permission, channel_pattern)"
               " VALUES ($1, NULL, 'user:alice', 'realtime.subscribe', 'orders:x')", scope.tenant)
    other, _ = ctx.subscribe(node, ["orders:y"], alice)
    ctx.pg.sql("DELETE FROM herald.grants WHERE tenant_id = $1 AND "
               "(permission = 'realtime.presence' OR channel_pattern = 'orders:*')", scope.tenant)
    other.read_until_type("herald.forbidden", timeout=8)
    ctx.subscribe(node, ["chat:room-1"], bob)
    # bob's join is committed (and NOTIFYed) before the marker is published,
    # so it would reach alice before the marker if she could still see it.
    wait_for(lambda: ctx.pg.sql_value(
        "SELECT count(*) FROM herald.presence WHERE tenant_id = $1 AND user_id = 'bob'",
        scope.tenant) == "1", 10, what="bob's membership written")
    marker = publish_ok(node, alice, "chat:room-1", "msg", {"n": 1})
    seen = watcher.read_until(lambda e: e.type == "msg", timeout=5)
    assert [e for e in seen if e.type == "herald.presence"] == [], \
        f"alice lost realtime.presence: no presence event may reach her: {seen}"
    assert seen[-1].json()["id"] == marker


def test_presence_channels_cost_nothing_elsewhere(ctx):
    node = ctx.node()
    scope = presence_scope(ctx, watchers=["alice"])
    alice = scope.token(user="alice")
    client, _ = ctx.subscribe(node, ["chat:other"], alice)
    publish_ok(node, alice, "chat:other", "msg", {"n": 1})
    seen = client.read_until(lambda e: e.type == "msg", timeout=5)
    assert [e.type for e in seen] == ["msg"], seen
    assert ctx.pg.sql_value("SELECT count(*) FROM herald.presence WHERE tenant_id = $1",
                            scope.tenant) == "0"


def test_rule_changes_apply_to_open_streams(ctx):
    node = ctx.node()
    scope = presence_scope(ctx, watchers=["alice"])
    alice, bob = scope.token(user="alice"), scope.token(user="bob")
    watcher, _ = ctx.subscribe(node, ["chat:late-1"], alice)
    r = node.get("/v1/channels/chat:late-1/presence", headers=bearer(alice))
    assert r.status == 404, r
    ctx.pg.sql("INSERT INTO herald.channel_rules (tenant_id, channel_pattern, presence) "
               "VALUES ($1, 'chat:late-*', true)", scope.tenant)
    wait_members(node, alice, "chat:late-1", {"alice": 1})

    def bob_rows():
        return ctx.pg.sql_value("SELECT count(*) FROM herald.presence WHERE tenant_id = $1 "
                                "AND user_id = 'bob'", scope.tenant)

    def bob_visits():  # a join and a leave, each written before the next step
        client, _ = ctx.subscribe(node, ["chat:late-1"], bob)
        wait_for(lambda: bob_rows() == "1", 5, what="bob joined")
        client.close()
        wait_for(lambda: bob_rows() == "0", 5, what="bob left")
        return any(e.get("user_id") == "bob" for e in presence_events(watcher, 0.3))
    wait_for(bob_visits, 10, what="alice sees presence on the channel that became a presence channel")
    ctx.pg.sql("UPDATE herald.channel_rules SET presence = false WHERE tenant_id = $1 "
               "AND channel_pattern = 'chat:late-*'", scope.tenant)
    wait_for(lambda: ctx.pg.sql_value("SELECT count(*) FROM herald.presence WHERE tenant_id = $1 "
                                      "AND channel = 'chat:late-1'", scope.tenant) == "0", 10,
             what="alice's membership removed when presence is turned off")


def test_a_node_with_tens_of_thousands_of_members_is_written_and_removed(ctx):
    node = unique("bulk-node")
    scope = ctx.scope()
    n = 70000
    ctx.pg.sql("SELECT herald.node_start($1)", node)
    ctx.pg.sql("SELECT herald.presence_set($1, array_fill($2::text, ARRAY[$4::int]),"
               " array_fill($3::text, ARRAY[$4::int]), array_fill('chat:room-1'::text, ARRAY[$4::int]),"
               " ARRAY(SELECT 'u' || lpad(i::text, 6, '0') FROM generate_series(1, $4::int) i),"
               " array_fill(1, ARRAY[$4::int]))", node, scope.tenant, scope.org, n)
    assert ctx.pg.sql_value("SELECT count(*) FROM herald.presence_members WHERE tenant_id = $1",
                            scope.tenant) == str(n)
    ctx.pg.sql("UPDATE herald.nodes SET heartbeat_at = now() - interval '1 hour' WHERE node_id = $1",
               node)
    ctx.pg.sql("SELECT herald.node_heartbeat($1, interval '1 minute')", unique("survivor"))
    assert ctx.pg.sql_value("SELECT count(*) FROM herald.presence WHERE tenant_id = $1",
                            scope.tenant) == "0"
    assert ctx.pg.sql_value("SELECT count(*) FROM herald.presence_members WHERE tenant_id = $1",
                            scope.tenant) == "0"
