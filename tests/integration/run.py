"""run.py — the integration-test runner: discovery, TAP output, timeouts.

Owns: finding test_* functions in tests/integration/test_*.py (in file
and definition order), starting the one PostgreSQL shared by the run and
installing herald's schema with `herald --migrate`, running each test with
a TestContext under a per-test timeout, printing TAP ("1..N", "ok N -
name", "not ok N - name" followed by "# " lines: the assertion, the
traceback and the logs of the herald nodes the test started), and leaving
no process or temp dir behind, also on failure, timeout or a signal.

Usage:
    python3 tests/integration/run.py [-k SUBSTRING]... [--list] [NAME]...
NAME is a test function (test_publish_delivers), a module (test_stream)
or module::function. Environment: HERALD_BIN (default <repo>/src/herald),
HERALD_TEST_TIMEOUT (seconds per test, default 60), HERALD_IT_BUDGET
(seconds for the whole run, default 900), HERALD_IT_KEEP=1 keeps the temp
dir (logs) and prints its path.
Exit status: 0 all passed, 1 some failed (reported in TAP), 2 harness error.
"""

import argparse
import importlib
import inspect
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402

DEFAULT_TIMEOUT = float(os.environ.get("HERALD_TEST_TIMEOUT", "60"))
BUDGET = float(os.environ.get("HERALD_IT_BUDGET", "900"))


class TestTimeout(BaseException):
    """Raised in the main thread when a test overruns its timeout. A
    BaseException so that a test's `except Exception` cannot swallow it."""


class Interrupted(BaseException):
    """SIGTERM/SIGHUP/SIGINT reached the runner."""


# ---------------------------------------------------------------------------
# discovery


def discover(selectors, substrings):
    """[(name, function)] for every selected test, in file then line order."""
    tests = []
    for fname in sorted(os.listdir(HERE)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        module = importlib.import_module(fname[:-3])
        funcs = [f for n, f in vars(module).items()
                 if n.startswith("test_") and inspect.isfunction(f) and f.__module__ == module.__name__]
        funcs.sort(key=lambda f: f.__code__.co_firstlineno)
        for f in funcs:
            tests.append((f"{module.__name__}::{f.__name__}", f))
    return [(n, f) for n, f in tests if _selected(n, selectors, substrings)]


def _selected(name, selectors, substrings):
    module, func = name.split("::")
    if selectors and not any(s in (name, module, func, module + ".py") for s in selectors):
        return False
    return all(s in name for s in substrings)


# ---------------------------------------------------------------------------
# TAP


def emit(line=""):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def comment(text):
    for line in str(text).splitlines() or [""]:
        emit("# " + line)


# ---------------------------------------------------------------------------
# running


def migrate(pg, root):
    """Installs the schema with `herald --migrate`; returns an error text or None."""
    binary = harness.herald_bin()
    if not os.access(binary, os.X_OK):
        return f"herald binary {binary} not found: build it first (make)"
    try:
        r = subprocess.run([binary, "--migrate", "--db", pg.conninfo()], cwd=root,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
    except subprocess.TimeoutExpired:
        return "herald --migrate did not finish within 60 s"
    if r.returncode != 0:
        return (f"herald --migrate exited with {r.returncode}:\n"
                + r.stdout.decode("utf-8", "replace")[-4000:])
    return None


def _alarm(signum, frame):
    raise TestTimeout()


def run_one(number, name, fn, pg, root, deadline_of_run):
    """Runs one test; emits its TAP line and diagnostics. True if it passed."""
    limit = getattr(fn, "timeout", DEFAULT_TIMEOUT)
    left = deadline_of_run - time.monotonic()
    if left < 5:
        emit(f"not ok {number} - {name}")
        comment(f"not run: the run's time budget of {BUDGET:.0f} s is used up")
        return False
    limit = min(limit, left)
    workdir = os.path.join(root, "tests", name.replace("::", "."))
    ctx = harness.TestContext(pg, workdir, name)
    started = time.monotonic()
    failure = skipped = None
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        fn(ctx)
    except harness.Skip as e:
        skipped = str(e) or "skipped"
    except TestTimeout:
        failure = [f"TIMEOUT: the test ran longer than {limit:.0f} s; it was here:"]
        failure += _format_failure()[1:]
    except Interrupted:
        signal.setitimer(signal.ITIMER_REAL, 0)
        ctx.close()
        raise
    except BaseException:  # noqa: BLE001 - every failure is reported
        failure = _format_failure()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    cleanup_errors = ctx.close()
    if cleanup_errors and failure is None and skipped is None:
        failure = ["cleanup failed:"] + cleanup_errors
    elapsed = time.monotonic() - started
    if skipped is not None:
        emit(f"ok {number} - {name} # SKIP {skipped}")
        return True
    if failure is None:
        emit(f"ok {number} - {name}")
        comment("\n".join(ctx.infos + [f"{elapsed:.2f} s"]))
        return True
    emit(f"not ok {number} - {name}")
    comment("\n".join(failure))
    comment("\n".join(ctx.infos + [f"{elapsed:.2f} s"]))
    comment("\n".join(ctx.failure_report()))
    return False


def _format_failure():
    """The exception message first (what a user would notice), then the
    traceback frames inside the tests."""
    etype, value, tb = sys.exc_info()
    lines = [f"{etype.__name__}: {value}"]
    frames = [f for f in traceback.extract_tb(tb) if os.path.dirname(os.path.abspath(f.filename)) == HERE]
    lines += traceback.format_list(frames)
    return [line for chunk in lines for line in chunk.rstrip().splitlines()]


def on_signal(signum, frame):
    raise Interrupted(signum)


def main(argv):
    parser = argparse.ArgumentParser(description="herald integration tests (TAP)")
    parser.add_argument("names", nargs="*", help="test, module or module::test")
    parser.add_argument("-k", action="append", default=[], help="only names containing this")
    parser.add_argument("--list", action="store_true", help="list the tests and exit")
    args = parser.parse_args(argv)

    tests = discover(args.names, args.k)
    if args.list:
        for name, _ in tests:
            print(name)
        return 0
    if not tests:
        print("no test matches", file=sys.stderr)
        return 2

    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, on_signal)
    signal.signal(signal.SIGALRM, _alarm)

    emit(f"1..{len(tests)}")
    root = harness.make_tmp_root()
    pg = harness.Postgres(root)
    failed = 0
    number = 0
    try:
        comment(f"herald: {harness.herald_bin()}; temp dir {root}")
        try:
            pg.start()
        except harness.HarnessError as e:
            for number, (name, _) in enumerate(tests, 1):
                emit(f"not ok {number} - {name}")
                comment(f"PostgreSQL did not start: {e}")
            return 1
        comment(f"PostgreSQL {pg.bindir} on port {pg.port}")
        problem = migrate(pg, root)
        if problem:
            comment("schema migration failed, tests will fail:\n" + problem)
        deadline = time.monotonic() + BUDGET
        for number, (name, fn) in enumerate(tests, 1):
            if not run_one(number, name, fn, pg, root, deadline):
                failed += 1
        passed = len(tests) - failed
        comment(f"{passed} passed, {failed} failed")
        return 1 if failed else 0
    except Interrupted as e:
        comment(f"interrupted by signal {e.args[0]} during test {number}")
        return 2
    finally:
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN)
        signal.setitimer(signal.ITIMER_REAL, 0)
        pg.stop()
        if os.environ.get("HERALD_IT_KEEP") == "1":
            comment(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
