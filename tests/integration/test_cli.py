"""test_cli.py — the command line a user or an operator types (SPEC §6):
--help, --version, --migrate (idempotent), and a bad flag."""

import os
import re
import subprocess

from harness import REPO, herald_bin, unique


def run_herald(*args, timeout=30):
    """Runs herald with args; returns (exit status, stdout + stderr text)."""
    r = subprocess.run([herald_bin(), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


def package_version():
    """The version in configure.ac's AC_INIT."""
    srcdir = os.environ.get("HERALD_SRCDIR", REPO)
    with open(os.path.join(srcdir, "configure.ac")) as f:
        m = re.search(r"AC_INIT\(\[herald\],\s*\[([^\]]+)\]", f.read())
    return m.group(1) if m else None


def test_help_prints_usage(ctx):
    status, out = run_herald("--help")
    assert status == 0, f"--help exited with {status}: {out}"
    assert "usage" in out.lower(), f"--help printed no usage: {out!r}"
    for flag in ("--listen", "--db", "--config", "--migrate"):
        assert flag in out, f"--help does not mention {flag}: {out!r}"


def test_version_prints_version(ctx):
    status, out = run_herald("--version")
    assert status == 0, f"--version exited with {status}: {out}"
    version = package_version()
    assert version and version in out, f"--version should print {version!r}, printed {out!r}"


def test_bad_flag_fails(ctx):
    status, out = run_herald("--no-such-flag")
    assert status > 0, f"an unknown flag should exit with a failure status, got {status}: {out}"
    assert out.strip(), "an unknown flag should say what is wrong"


def test_migrate_twice_keeps_data(ctx):
    pg = ctx.pg
    db = unique("herald_mig").replace("-", "_")
    pg.sql(f'CREATE DATABASE "{db}"', db="postgres")
    ctx.on_cleanup(lambda: pg.sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)', db="postgres"))
    conninfo = pg.conninfo(dbname=db)

    status, out = run_herald("--migrate", "--db", conninfo)
    assert status == 0, f"first --migrate exited with {status}: {out}"
    token = pg.sql_value("SELECT herald.issue_token('u1', 't1', 'o1', '1 hour')", db=db)
    event_id = pg.sql_value("SELECT herald.publish('t1', 'o1', 'chat:x', 'msg', '{\"n\": 1}')", db=db)
    assert token and event_id

    status, out = run_herald("--migrate", "--db", conninfo)
    assert status == 0, f"second --migrate exited with {status}: {out}"
    sessions = pg.sql_value("SELECT count(*) FROM herald.sessions", db=db)
    events = pg.sql_value("SELECT count(*) FROM herald.events", db=db)
    assert (sessions, events) == ("1", "1"), \
        f"a second --migrate must keep the data: sessions={sessions} events={events}"
