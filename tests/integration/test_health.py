"""test_health.py — anonymous endpoints: /healthz, /readyz and the demo page
(SPEC §2, §6 `demo`)."""


def test_healthz_ok(ctx):
    node = ctx.node()
    r = node.get("/healthz")
    assert r.status == 200, f"/healthz: {r!r}"


def test_readyz_ok_when_up(ctx):
    node = ctx.node()
    r = node.get("/readyz")
    assert r.status == 200, f"/readyz: {r!r}"


def test_demo_page_served_with_demo_flag(ctx):
    node = ctx.node(demo=True)
    r = node.get("/")
    assert r.status == 200, f"GET / with --demo: {r!r}"
    assert r.content_type.startswith("text/html"), f"demo page Content-Type {r.content_type!r}"
    assert "EventSource" in r.text, "the demo page should use EventSource"


def test_no_demo_page_without_demo_flag(ctx):
    node = ctx.node()
    r = node.get("/")
    assert r.status == 404, f"GET / without --demo should be 404: {r!r}"
