"""test_tls.py — HTTPS through libmicrohttpd and GnuTLS (SPEC §6 tls_cert /
tls_key): a node with a certificate serves only HTTPS — health, streams
and publishes — to clients that verify it; bad, missing or mismatched
files stop herald at start with a clear message."""

import os
import ssl
import subprocess

from harness import HarnessError, http_request, publish_ok


def make_cert(directory, name, host="127.0.0.1"):
    """A self-signed P-256 certificate for host; returns (cert, key) paths."""
    cert, key = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", f"/CN={host}", "-addext",
                    f"subjectAltName=IP:{host},DNS:localhost"],
                   check=True, capture_output=True)
    os.chmod(key, 0o644)  # herald runs as this user; the temp dir is private
    return cert, key


def tls_node(ctx, cert, key):
    client = ssl.create_default_context(cafile=cert)
    node = ctx.node(config={"tls_cert": cert, "tls_key": key}, start=False)
    node.ssl_context = client
    node.start()
    return node


def test_https_serves_health_streams_and_publishes(ctx):
    cert, key = make_cert(ctx.workdir, "node")
    node = tls_node(ctx, cert, key)
    assert node.get("/healthz").status == 200
    scope = ctx.scope()
    token = scope.token()
    client, opened = ctx.subscribe(node, ["chat:tls"], token)
    event_id = publish_ok(node, token, "chat:tls", "msg", {"over": "tls"})
    ev = client.read_until_type("msg", timeout=5)[-1]
    assert ev.json()["id"] == event_id and ev.json()["data"] == {"over": "tls"}
    again, _ = ctx.subscribe(node, ["chat:tls"], token, last_event_id=opened.id)
    assert again.read_until_type("msg", timeout=5)[-1].json()["id"] == event_id, "resume over TLS"


def test_plain_http_and_old_protocols_are_refused(ctx):
    cert, key = make_cert(ctx.workdir, "node")
    node = tls_node(ctx, cert, key)
    try:
        status = http_request(node.port, "GET", "/healthz", timeout=3).status
    except (OSError, HarnessError):
        status = None
    assert status != 200, "HTTPS only: plain HTTP gets no answer"
    old = ssl.create_default_context(cafile=cert)
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that the client does offer them
    node.ssl_context = old
    try:
        refused = node.get("/healthz", timeout=3).status != 200
    except (ssl.SSLError, OSError):
        refused = True
    assert refused, "TLS 1.0/1.1 are not offered"


def start_fails(ctx, config):
    node = ctx.node(config=config, start=False)
    proc = subprocess.run(node.argv, capture_output=True, text=True, timeout=20)
    return proc.returncode, proc.stderr


def test_bad_certificate_files_fail_at_start(ctx):
    cert, key = make_cert(ctx.workdir, "a")
    _, other_key = make_cert(ctx.workdir, "b")
    garbage = os.path.join(ctx.workdir, "garbage.pem")
    with open(garbage, "w") as f:
        f.write("not a certificate\n")
    cases = {
        "mismatched key": ({"tls_cert": cert, "tls_key": other_key}, "do not match"),
        "missing file": ({"tls_cert": cert + ".nope", "tls_key": key}, "cannot open tls_cert"),
        "not PEM": ({"tls_cert": garbage, "tls_key": key}, "tls_cert/tls_key"),
        "only a certificate": ({"tls_cert": cert}, "needs both tls_cert and tls_key"),
    }
    for label, (config, message) in cases.items():
        rc, err = start_fails(ctx, config)
        assert rc == 2 and message in err, f"{label}: exit {rc}, stderr {err!r}"
