"""harness.py — the integration-test toolkit: real PostgreSQL, real herald.

Owns: a private PostgreSQL cluster (Postgres), herald processes (Herald),
a raw-socket HTTP client (http_request / Response), an incremental
Server-Sent Events client (SSEParser / SSEClient), per-test scopes and
tokens (Scope) and the per-test resource tracker (TestContext) that the
runner (run.py) closes after every test, pass or fail.

Does not own test discovery, TAP output or timeouts: run.py does.
Standard library only. Synchronisation is always by polling with a
deadline, never by fixed sleeps.

Also a command line for shell scripts (tests/demo.sh):
    python3 tests/integration/harness.py pg-run -- CMD [ARG...]
starts a private PostgreSQL with a database `herald`, runs CMD with
HERALD_DB (a libpq conninfo) and PGHOST/PGPORT/PGUSER/PGDATABASE set, and
on CMD's exit, Ctrl-C or SIGTERM stops CMD, PostgreSQL, and removes every
temporary file.
"""

import codecs
import collections
import glob
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TMP_PREFIX = "herald-it-"


class HarnessError(Exception):
    """Something the harness could not do (start a process, parse a reply)."""


class Skip(Exception):
    """Raise in a test to report it skipped (TAP "ok N - name # SKIP why")."""


def timeout(seconds):
    """Test decorator: this test may run `seconds` instead of the default."""
    def mark(fn):
        fn.timeout = seconds
        return fn
    return mark


# ---------------------------------------------------------------------------
# small utilities


def free_port(host="127.0.0.1"):
    """A TCP port that is free right now on host (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, interval=0.02, what="condition"):
    """Polls predicate() until it returns a truthy value; returns it.

    Raises HarnessError naming `what` when timeout seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def unique(prefix):
    """prefix-<8 random hex digits>: ids that never collide between tests."""
    return f"{prefix}-{secrets.token_hex(4)}"


def tail(path, lines=80, width=400):
    """The last `lines` lines of a text file (each cut to `width` chars)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        return [f"<cannot read {path}: {e}>"]
    out = text.splitlines()[-lines:]
    return [line if len(line) <= width else line[:width] + "..." for line in out]


def _is_root():
    return os.geteuid() == 0


def _as_user_prefix(user, deathsig="TERM"):
    """argv prefix that runs a command as `user` (when we are root) and
    sends it `deathsig` if this process dies (util-linux setpriv execs, so
    the child's pid is the command's own).

    PR_SET_PDEATHSIG fires when the *thread* that started the child exits:
    start long-lived processes from the main thread.
    """
    prefix = ["setpriv", f"--pdeathsig={deathsig}"]
    if user and _is_root():
        prefix += ["--reuid", user, "--regid", user, "--init-groups", "--reset-env"]
    if shutil.which("setpriv") is None:
        if user and _is_root():
            return ["runuser", "-u", user, "--"]
        return []
    return prefix + ["--"]


def remove_stale_tmpdirs():
    """Removes temp roots left by runs that died (their owner pid is gone)."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), TMP_PREFIX + "*")):
        try:
            with open(os.path.join(path, "owner.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        _kill_pids_from(path)
        shutil.rmtree(path, ignore_errors=True)


def _kill_pids_from(root):
    """SIGKILLs the postmaster recorded in a dead run's data directory."""
    for pidfile in glob.glob(os.path.join(root, "pg", "data", "postmaster.pid")):
        try:
            with open(pidfile) as f:
                pid = int(f.readline().strip())
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass


def make_tmp_root():
    """A fresh temp root (mode 0711: the postgres user may traverse it),
    tagged with our pid so a later run can clean it if we die."""
    remove_stale_tmpdirs()
    root = tempfile.mkdtemp(prefix=TMP_PREFIX)
    os.chmod(root, 0o711)
    with open(os.path.join(root, "owner.pid"), "w") as f:
        f.write(str(os.getpid()))
    return root


# ---------------------------------------------------------------------------
# PostgreSQL


def pg_bindir():
    """Directory of the PostgreSQL server binaries ($HERALD_PG_BINDIR or the
    newest /usr/lib/postgresql/*/bin, else wherever `postgres` is on PATH)."""
    env = os.environ.get("HERALD_PG_BINDIR")
    if env:
        return env
    found = glob.glob("/usr/lib/postgresql/*/bin/postgres")
    if found:
        found.sort(key=lambda p: int(re.search(r"/(\d+)/bin/", p).group(1)))
        return os.path.dirname(found[-1])
    exe = shutil.which("postgres")
    if exe:
        return os.path.dirname(exe)
    raise HarnessError("PostgreSQL server binaries not found (set HERALD_PG_BINDIR)")


class SQLError(HarnessError):
    """psql reported an error; .stderr has its message."""

    def __init__(self, query, stderr):
        super().__init__(f"SQL failed: {stderr.strip()}\n  query: {query.strip()[:500]}")
        self.stderr = stderr


_NULL = "\x1d<NULL>\x1d"
_FIELD_SEP = "\x1f"
_RECORD_SEP = "\x1e"


class Postgres:
    """A private PostgreSQL cluster in a temp dir, on a free port, run as the
    `postgres` OS user when we are root (PostgreSQL refuses root).

    Usage: pg = Postgres(root); pg.start(); pg.sql(...); pg.stop().
    Authentication is `trust` on 127.0.0.1 only.
    """

    def __init__(self, root, dbname="herald"):
        self.root = root
        self.dir = os.path.join(root, "pg")
        self.data = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "postgres.log")
        self.bindir = pg_bindir()
        self.port = None
        self.dbname = dbname
        self.user = "postgres"
        self.proc = None

    # -- lifecycle

    def start(self, timeout=60):
        os_user = "postgres" if _is_root() else None
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        if os_user:
            shutil.chown(self.dir, os_user, os_user)
        self._initdb(os_user)
        self.port = free_port()
        self._spawn(os_user)
        wait_for(self._accepting, timeout, interval=0.05,
                 what=f"PostgreSQL on port {self.port} (log: {self.logfile})")
        self.sql(f'CREATE DATABASE "{self.dbname}"', db="postgres")
        return self

    def _initdb(self, os_user):
        cmd = _as_user_prefix(os_user) + [
            os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", self.user,
            "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]
        r = subprocess.run(cmd, cwd=self.dir, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        if r.returncode != 0:
            raise HarnessError("initdb failed:\n" + r.stdout.decode("utf-8", "replace"))

    def _spawn(self, os_user):
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": self.dir,
            "max_connections": "300",
            "shared_buffers": "32MB",
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "on",
            "log_min_messages": "warning",
            "log_line_prefix": "%m [%p] %a ",
        }
        cmd = _as_user_prefix(os_user, deathsig="INT") + [
            os.path.join(self.bindir, "postgres"), "-D", self.data, "-p", str(self.port)]
        for k, v in settings.items():
            cmd += ["-c", f"{k}={v}"]
        log = open(self.logfile, "ab")
        if os_user:
            shutil.chown(self.logfile, os_user, os_user)
        self.proc = subprocess.Popen(cmd, cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()

    def _accepting(self):
        if self.proc.poll() is not None:
            raise HarnessError("PostgreSQL exited during start:\n" + "\n".join(tail(self.logfile, 30)))
        r = subprocess.run([os.path.join(self.bindir, "pg_isready"), "-q", "-h", "127.0.0.1",
                            "-p", str(self.port), "-U", self.user, "-d", "postgres"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        return r.returncode == 0

    def stop(self, timeout=15):
        """Fast shutdown (SIGINT), SIGKILL after timeout. Idempotent."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGINT)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def start_again(self, timeout=60):
        """Starts the cluster again after stop(): same data directory, same
        port (clients reconnect to the address they had). Does nothing while
        it runs, so it is safe as a cleanup."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        self._spawn("postgres" if _is_root() else None)
        wait_for(self._accepting, timeout, interval=0.05,
                 what=f"PostgreSQL to accept again on port {self.port} (log: {self.logfile})")
        return self

    # -- access

    def conninfo(self, dbname=None, user=None, application_name=None):
        """A libpq conninfo string for this cluster."""
        parts = [f"host=127.0.0.1 port={self.port} dbname={dbname or self.dbname}",
                 f"user={user or self.user}"]
        if application_name:
            parts.append(f"application_name='{application_name}'")
        return " ".join(parts)

    def psql_argv(self, db=None, user=None):
        return [os.path.join(self.bindir, "psql"), "-X", "-q", "-A", "-t",
                "-v", "ON_ERROR_STOP=1", "-P", f"null={_NULL}",
                "-F", _FIELD_SEP, "-R", _RECORD_SEP,
                "-d", self.conninfo(db, user, application_name="herald-tests")]

    def sql(self, query, *params, db=None, user=None, timeout=30):
        """Runs query through psql; returns rows as tuples of str (None for
        NULL). $1, $2 ... in query are bound to params (passed as psql
        variables, so they are quoted safely; None binds NULL)."""
        argv = self.psql_argv(db, user)

        def bind(m):
            i = int(m.group(1))
            if i < 1 or i > len(params):
                raise HarnessError(f"no parameter ${i} for query {query!r}")
            if params[i - 1] is None:
                return "NULL"
            return f":'p{i}'"

        text = re.sub(r"\$(\d+)", bind, query)
        for i, p in enumerate(params, 1):
            if p is not None:
                if isinstance(p, (dict, list)):
                    p = json.dumps(p)
                argv += ["-v", f"p{i}={p}"]
        r = subprocess.run(argv, input=text.encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        if r.returncode != 0:
            raise SQLError(query, r.stderr.decode("utf-8", "replace"))
        out = r.stdout.decode("utf-8")
        if out.endswith("\n"):
            out = out[:-1]
        rows = []
        for rec in out.split(_RECORD_SEP):
            if rec == "":
                continue
            rows.append(tuple(None if f == _NULL else f for f in rec.split(_FIELD_SEP)))
        return rows

    def sql_value(self, query, *params, **kw):
        """The first column of the first row (None when there is no row)."""
        rows = self.sql(query, *params, **kw)
        return rows[0][0] if rows else None

    def has_table(self, name):
        return self.sql_value("SELECT to_regclass($1) IS NOT NULL", name) == "t"


# ---------------------------------------------------------------------------
# raw HTTP


class Response:
    """An HTTP response: status, reason, headers (list of (name, value) in
    arrival order), body (bytes)."""

    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def header(self, name, default=None):
        """The last value of header `name` (case-insensitive)."""
        value = default
        for k, v in self.headers:
            if k.lower() == name.lower():
                value = v
        return value

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def content_type(self):
        return self.header("content-type", "")

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        body = self.text
        if len(body) > 300:
            body = body[:300] + "..."
        return f"<Response {self.status} {self.content_type!r} {body!r}>"


def _build_request(method, target, host, headers, body):
    lines = [f"{method} {target} HTTP/1.1"]
    names = {k.lower() for k, _ in headers}
    if "host" not in names:
        lines.append(f"Host: {host}")
    if body is not None and "content-length" not in names:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in headers]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    return head + (body or b"")


def _normalize_headers(headers):
    if headers is None:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)


class _Wire:
    """A socket with a read buffer and deadline-based reads."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False

    def fill(self, deadline):
        """Reads more bytes into buf. False on EOF; raises socket.timeout."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("deadline passed")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_head(self, deadline):
        while b"\r\n\r\n" not in self.buf:
            if not self.fill(deadline):
                raise HarnessError(f"connection closed before the response head: {self.buf[:200]!r}")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("iso-8859-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise HarnessError(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
        return status, reason, headers


class _Body:
    """Incremental HTTP/1.1 body decoder (Content-Length, chunked, or
    until close). read_some() returns new body bytes, b"" when it needs to
    wait for more, None at the end of the body."""

    def __init__(self, wire, method, status, headers):
        self.wire = wire
        get = lambda n: next((v for k, v in reversed(headers) if k.lower() == n), None)  # noqa: E731
        te = (get("transfer-encoding") or "").lower()
        cl = get("content-length")
        self.done = False
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self.mode, self.left = "length", 0
        elif "chunked" in te:
            self.mode, self.left = "chunked", None
        elif cl is not None:
            self.mode, self.left = "length", int(cl)
        else:
            self.mode, self.left = "close", None
        self.chunk_left = 0
        self.chunk_state = "size"  # size -> data -> crlf -> size ... -> trailers

    def read_some(self, deadline):
        if self.done:
            return None
        while True:
            out = self._decode()
            if out or self.done:
                return out if out else (None if self.done else b"")
            if not self.wire.fill(deadline):
                self.done = True
                return None

    def _decode(self):
        w = self.wire
        if self.mode == "length":
            n = min(self.left, len(w.buf))
            out, w.buf = w.buf[:n], w.buf[n:]
            self.left -= n
            if self.left == 0:
                self.done = True
            return out
        if self.mode == "close":
            out, w.buf = w.buf, b""
            return out
        return self._decode_chunked()

    def _decode_chunked(self):
        w = self.wire
        out = b""
        while True:
            if self.chunk_state == "size":
                if b"\r\n" not in w.buf:
                    return out
                line, w.buf = w.buf.split(b"\r\n", 1)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    self.chunk_state = "trailers"
                else:
                    self.chunk_left, self.chunk_state = size, "data"
            elif self.chunk_state == "data":
                if not w.buf:
                    return out
                n = min(self.chunk_left, len(w.buf))
                out += w.buf[:n]
                w.buf = w.buf[n:]
                self.chunk_left -= n
                if self.chunk_left == 0:
                    self.chunk_state = "crlf"
            elif self.chunk_state == "crlf":
                if len(w.buf) < 2:
                    return out
                w.buf = w.buf[2:]
                self.chunk_state = "size"
            else:  # trailers: lines until an empty one
                if b"\r\n" not in w.buf:
                    return out
                line, w.buf = w.buf.split(b"\r\n", 1)
                if line == b"":
                    self.done = True
                    return out


def connect(host, port, timeout, ssl_context=None):
    """A connected socket; over TLS (verified by ssl_context) when given."""
    sock = socket.create_connection((host, port), timeout=timeout)
    if ssl_context is not None:
        try:
            sock = ssl_context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
    return sock


def http_request(port, method, target, headers=None, body=None, json_body=None,
                 host="127.0.0.1", timeout=10, ssl_context=None):
    """Sends one request with the target exactly as given (no encoding) and
    returns a Response. `headers` is a dict or a list of (name, value)
    pairs (a list may repeat a name). `json_body` is serialised and sent as
    application/json unless a Content-Type is given. With ssl_context, over
    HTTPS."""
    headers = _normalize_headers(headers)
    if json_body is not None:
        body = json.dumps(json_body).encode("utf-8")
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/json"))
    if isinstance(body, str):
        body = body.encode("utf-8")
    if not any(k.lower() == "connection" for k, _ in headers):
        headers.append(("Connection", "close"))
    deadline = time.monotonic() + timeout
    with connect(host, port, timeout, ssl_context) as sock:
        sock.sendall(_build_request(method, target, f"{host}:{port}", headers, body))
        wire = _Wire(sock)
        status, reason, rheaders = wire.read_head(deadline)
        decoder = _Body(wire, method, status, rheaders)
        chunks = []
        while True:
            part = decoder.read_some(deadline)
            if part is None:
                break
            chunks.append(part)
        return Response(status, reason, rheaders, b"".join(chunks))


# ---------------------------------------------------------------------------
# Server-Sent Events


class Event:
    """One dispatched SSE event: type ("message" when none was given), data
    (str), id (the last event ID at dispatch, "" when none)."""

    __slots__ = ("type", "data", "id", "at")

    def __init__(self, type_, data, id_):
        self.type = type_
        self.data = data
        self.id = id_
        self.at = time.monotonic()

    def json(self):
        return json.loads(self.data)

    def __repr__(self):
        data = self.data if len(self.data) <= 200 else self.data[:200] + "..."
        return f"<Event {self.type!r} id={self.id!r} data={data!r}>"


class SSEParser:
    """The WHATWG event-stream interpretation, fed incrementally with bytes.

    Lines end at CRLF, LF or CR (also when split across feeds); a leading
    BOM is dropped; fields event/data/id/retry; comments (": ...") are
    recorded in .comments as (monotonic time, text); dispatched events
    queue in .events. .last_id is the last event ID buffer.
    """

    def __init__(self):
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._after_cr = False
        self._started = False
        self._data = []
        self._type = ""
        self.last_id = ""
        self.retry = None
        self.events = collections.deque()
        self.comments = []
        self.raw = ""  # the first 64 KiB of the decoded stream, for assertions

    _LINE_END = re.compile(r"\r\n|\r|\n")

    def feed(self, data):
        text = self._decoder.decode(data)
        if len(self.raw) < 65536:
            self.raw += text[: 65536 - len(self.raw)]
        if not self._started and text:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        if self._after_cr and text.startswith("\n"):
            text = text[1:]
        self._after_cr = False
        text = self._pending + text
        pos = 0
        for m in self._LINE_END.finditer(text):
            self._line(text[pos:m.start()])
            pos = m.end()
        self._pending = text[pos:]
        if text.endswith("\r") and pos == len(text):
            self._after_cr = True

    def _line(self, line):
        if line == "":
            self._dispatch()
            return
        if line.startswith(":"):
            self.comments.append((time.monotonic(), line[1:]))
            return
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._type = value
        elif field == "data":
            self._data.append(value)
        elif field == "id":
            if "\0" not in value:
                self.last_id = value
        elif field == "retry":
            if value.isascii() and value.isdigit():
                self.retry = int(value)

    def _dispatch(self):
        if not self._data:
            self._type = ""
            return
        self.events.append(Event(self._type or "message", "\n".join(self._data), self.last_id))
        self._data = []
        self._type = ""


class SSETimeout(AssertionError):
    """No event (or comment, or end) arrived in time."""


class SSEEnded(AssertionError):
    """The stream ended while an event was expected."""


class SSEClient:
    """One GET on a raw socket whose body is parsed as an event stream.

    After construction .status/.headers hold the response head; for a
    non-200 answer .body holds the whole (error) body. Reads never block
    past their timeout.
    """

    def __init__(self, port, target, headers=None, host="127.0.0.1", timeout=10, label="",
                 ssl_context=None):
        self.label = label or f"{host}:{port}{target}"
        self.parser = SSEParser()
        self._last_id = ""
        self.ended = False
        self.body = b""
        headers = _normalize_headers(headers)
        if not any(k.lower() == "accept" for k, _ in headers):
            headers.append(("Accept", "text/event-stream"))
        deadline = time.monotonic() + timeout
        self.sock = connect(host, port, timeout, ssl_context)
        try:
            self.sock.sendall(_build_request("GET", target, f"{host}:{port}", headers, None))
            self.wire = _Wire(self.sock)
            self.status, self.reason, self.headers = self.wire.read_head(deadline)
            self._body = _Body(self.wire, "GET", self.status, self.headers)
            if self.status != 200:
                self._read_error_body(deadline)
        except BaseException:
            self.close()
            raise

    def _read_error_body(self, deadline):
        chunks = []
        while True:
            part = self._body.read_some(deadline)
            if part is None:
                break
            chunks.append(part)
        self.body = b"".join(chunks)
        self.ended = True

    def header(self, name, default=None):
        return Response(self.status, self.reason, self.headers, b"").header(name, default)

    def json_body(self):
        return json.loads(self.body.decode("utf-8"))

    @property
    def last_id(self):
        """The last event ID of the events read so far (through poll_event
        and friends): what an EventSource that dispatched exactly those
        events would send on reconnect. Events parsed but not yet read do
        not count."""
        return self._last_id

    @property
    def raw(self):
        return self.parser.raw

    @property
    def comments(self):
        return self.parser.comments

    # -- reading

    def _pump(self, deadline):
        """Reads and parses more of the stream. False when the stream has
        ended (or the deadline passed without data)."""
        if self.ended:
            return False
        try:
            part = self._body.read_some(deadline)
        except (socket.timeout, TimeoutError):
            return False
        except OSError:
            part = None
        if part is None:
            self.ended = True
            return False
        if part:
            self.parser.feed(part)
        return True

    def poll_event(self, timeout=5.0):
        """The next event, or None when none arrives within timeout or the
        stream ends."""
        deadline = time.monotonic() + timeout
        while not self.parser.events:
            if self.ended:
                return None
            if not self._pump(deadline) and time.monotonic() >= deadline:
                return None
        ev = self.parser.events.popleft()
        self._last_id = ev.id
        return ev

    def next_event(self, timeout=5.0):
        """The next event; raises SSETimeout / SSEEnded otherwise."""
        ev = self.poll_event(timeout)
        if ev is None:
            if self.ended and not self.parser.events:
                raise SSEEnded(f"{self.label}: stream ended, no further event")
            raise SSETimeout(f"{self.label}: no event within {timeout}s")
        return ev

    def read_until(self, predicate, timeout=5.0):
        """Events up to and including the first one for which predicate(ev)
        is true. Raises SSETimeout/SSEEnded (with what was seen) otherwise."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            remaining = deadline - time.monotonic()
            ev = self.poll_event(max(0.0, remaining))
            if ev is None:
                kind = SSEEnded if self.ended else SSETimeout
                raise kind(f"{self.label}: condition not met within {timeout}s; "
                           f"saw {len(seen)} events: {seen[-5:]!r}")
            seen.append(ev)
            if predicate(ev):
                return seen

    def read_until_type(self, type_, timeout=5.0):
        return self.read_until(lambda e: e.type == type_, timeout)

    def collect(self, duration):
        """Every event that arrives within `duration` seconds."""
        deadline = time.monotonic() + duration
        out = []
        while True:
            ev = self.poll_event(max(0.0, deadline - time.monotonic()))
            if ev is None:
                return out
            out.append(ev)

    def wait_comment(self, timeout=5.0):
        """Waits for a comment line not seen before this call; returns its text."""
        start = len(self.parser.comments)
        deadline = time.monotonic() + timeout
        while len(self.parser.comments) == start:
            if self.ended:
                raise SSEEnded(f"{self.label}: stream ended before a comment")
            if not self._pump(deadline) and time.monotonic() >= deadline:
                raise SSETimeout(f"{self.label}: no comment within {timeout}s")
        return self.parser.comments[start][1]

    def wait_end(self, timeout=5.0):
        """True when the server ends the stream within timeout (events that
        arrive meanwhile stay queued)."""
        deadline = time.monotonic() + timeout
        while not self.ended and time.monotonic() < deadline:
            self._pump(deadline)
        return self.ended

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.ended = True


# ---------------------------------------------------------------------------
# Prometheus text exposition (GET /metrics)


_PROM_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?[ \t]*$')
_PROM_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


class Metrics:
    """Samples of a Prometheus text exposition (format 0.0.4).

    value(name, **labels) is the sample with exactly those labels (None if
    absent); .samples maps (name, frozenset(labels.items())) to a float.
    """

    def __init__(self, text):
        self.text = text
        self.samples = {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            m = _PROM_SAMPLE.match(line)
            if not m:
                raise HarnessError(f"metrics line {number} is not a sample: {line!r}")
            name, raw, value = m.groups()
            labels, pos = {}, 0
            while raw and pos < len(raw):
                lm = _PROM_LABEL.match(raw, pos)
                if not lm:
                    raise HarnessError(f"metrics line {number}: bad labels {raw!r}")
                labels[lm.group(1)] = re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1),
                                             lm.group(2))
                pos = lm.end()
            key = (name, frozenset(labels.items()))
            if key in self.samples:
                raise HarnessError(f"metrics line {number}: duplicate sample {line!r}")
            self.samples[key] = float(value)

    def value(self, name, **labels):
        return self.samples.get((name, frozenset(labels.items())))


# ---------------------------------------------------------------------------
# herald processes


def herald_bin():
    return os.environ.get("HERALD_BIN") or os.path.join(REPO, "src", "herald")


def write_config(path, config):
    """Writes a herald config file: `key = value` lines (SPEC §6)."""
    with open(path, "w") as f:
        f.write("# written by tests/integration/harness.py\n")
        for k, v in config.items():
            if isinstance(v, bool):
                v = "on" if v else "off"
            f.write(f"{k} = {v}\n")


class Herald:
    """One herald node: a real $HERALD_BIN process on a free port.

    Output goes to <workdir>/<node_id>.log (appended across restarts).
    start() waits for GET /readyz == 200; stop() sends SIGTERM and waits.
    """

    def __init__(self, workdir, conninfo, node_id, config=None, demo=False,
                 extra_args=(), binary=None, ssl_context=None):
        self.workdir = workdir
        self.conninfo = conninfo
        self.node_id = node_id
        self.config = dict(config or {})
        self.demo = demo
        self.extra_args = list(extra_args)
        self.binary = binary or herald_bin()
        self.port = free_port()
        self.logfile = os.path.join(workdir, f"{node_id}.log")
        self.config_file = os.path.join(workdir, f"{node_id}.conf")
        self.proc = None
        self.returncode = None
        self.ssl_context = ssl_context  # the node serves HTTPS: clients verify with this

    def __repr__(self):
        return f"<Herald {self.node_id} :{self.port}>"

    @property
    def argv(self):
        argv = [self.binary, "--listen", f"127.0.0.1:{self.port}", "--db", self.conninfo,
                "--node-id", self.node_id]
        if self.config:
            write_config(self.config_file, self.config)
            argv += ["--config", self.config_file]
        if self.demo:
            argv.append("--demo")
        return argv + self.extra_args

    _PORT_TAKEN = re.compile(r"cannot listen|address already in use|bind", re.I)

    def start(self, wait=True, timeout=15):
        """Starts the process; with wait, returns once /readyz is 200. If
        the port was taken meanwhile (free_port() races with other
        programs), retries on another port, up to 3 times."""
        for attempt in range(3):
            offset = self.log_size()
            try:
                return self._start_once(wait, timeout)
            except HarnessError:
                fresh = self.log_text(offset)
                if attempt == 2 or self.alive or not self._PORT_TAKEN.search(fresh):
                    raise
                self.port = free_port()
        return self

    def _start_once(self, wait, timeout):
        if not os.access(self.binary, os.X_OK):
            raise HarnessError(f"herald binary {self.binary} is missing (run make)")
        log = open(self.logfile, "ab")
        log.write(f"=== harness: starting {' '.join(self.argv)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(_as_user_prefix(None) + self.argv, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()
        self.returncode = None
        if wait:
            self.wait_ready(timeout)
        return self

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def readyz(self, timeout=2):
        """Status of GET /readyz, or None when the node does not answer."""
        try:
            return http_request(self.port, "GET", "/readyz", timeout=timeout,
                                ssl_context=self.ssl_context).status
        except (OSError, HarnessError):
            return None

    def wait_ready(self, timeout=15):
        def ready():
            if not self.alive:
                raise HarnessError(f"herald {self.node_id} exited with status "
                                   f"{self.proc.poll()} during start; log:\n"
                                   + "\n".join(tail(self.logfile, 40)))
            return self.readyz(timeout=1) == 200
        wait_for(ready, timeout, interval=0.05, what=f"herald {self.node_id} /readyz == 200")

    def wait_readyz(self, status, timeout=15):
        """Polls /readyz until it answers `status`."""
        wait_for(lambda: self.readyz(timeout=1) == status, timeout, interval=0.05,
                 what=f"herald {self.node_id} /readyz == {status}")

    def signal(self, sig):
        if self.alive:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """The exit status, or None if still running after timeout."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, timeout=10):
        """SIGTERM, wait; SIGKILL if it does not exit in time. Returns the
        exit status (negative = killed by that signal)."""
        if self.proc is None:
            return self.returncode
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait_exit(timeout) is None:
                self._append_log(f"=== harness: no exit {timeout}s after SIGTERM, killing")
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        return self.returncode

    def kill9(self):
        if self.alive:
            self.proc.kill()
        if self.proc is not None:
            self.returncode = self.proc.wait()

    def restart(self, wait=True):
        self.stop()
        return self.start(wait=wait)

    def _append_log(self, line):
        with open(self.logfile, "ab") as f:
            f.write((line + "\n").encode())

    def log_size(self):
        try:
            return os.path.getsize(self.logfile)
        except OSError:
            return 0

    def log_text(self, offset=0):
        """The node's output from byte `offset` on."""
        try:
            with open(self.logfile, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # -- client conveniences

    def http(self, method, target, **kw):
        return http_request(self.port, method, target, ssl_context=self.ssl_context, **kw)

    def get(self, target, **kw):
        return self.http("GET", target, **kw)

    def metrics(self, timeout=5):
        """GET /metrics parsed into a Metrics (HarnessError unless 200)."""
        r = self.get("/metrics", timeout=timeout)
        if r.status != 200:
            raise HarnessError(f"GET /metrics on {self.node_id}: {r!r}")
        return Metrics(r.text)

    def sse(self, target, headers=None, timeout=10):
        return SSEClient(self.port, target, headers=headers, timeout=timeout,
                         label=f"{self.node_id}{target}", ssl_context=self.ssl_context)


# ---------------------------------------------------------------------------
# scopes, tokens, channels


def stream_target(channels, last_event_id=None, token=None, extra=""):
    """/v1/stream?channel=..&channel=..[&last_event_id=..][&access_token=..]
    (values percent-encoded, except that callers pass raw strings through
    `extra`)."""
    from urllib.parse import quote
    if isinstance(channels, str):
        channels = [channels]
    q = [f"channel={quote(c, safe=':')}" for c in channels]
    if last_event_id is not None:
        q.append(f"last_event_id={quote(last_event_id, safe='')}")
    if token is not None:
        q.append(f"access_token={quote(token, safe='')}")
    if extra:
        q.append(extra)
    return "/v1/stream?" + "&".join(q)


class Scope:
    """One tenant + org for one test, with features and grants that allow
    subscribe/publish/presence on `<feature>:*` for everyone (when the
    schema has those tables)."""

    def __init__(self, pg, tenant, org):
        self.pg = pg
        self.tenant = tenant
        self.org = org

    def __repr__(self):
        return f"<Scope {self.tenant}/{self.org}>"

    def user(self, name="u"):
        return unique(name)

    def token(self, user=None, ttl="1 hour", kind="user", features=None, org=...):
        """Issues a token through herald.issue_token; returns it."""
        if org is ...:
            org = self.org
        user = user or self.user()
        feats = None if features is None else "{" + ",".join(features) + "}"
        return self.pg.sql_value("SELECT herald.issue_token($1, $2, $3, $4::interval, $5, $6::text[])",
                                 user, self.tenant, org, ttl, kind, feats)

    def sibling(self):
        """Another org of the same tenant (features and grants are tenant-wide)."""
        return Scope(self.pg, self.tenant, unique("org"))

    def events(self, channel=None):
        """(channel, seq, type, data) rows of herald.events in this scope,
        ordered by channel then seq."""
        q = ("SELECT channel, seq, type, data::text FROM herald.events "
             "WHERE tenant_id = $1 AND org_id = $2")
        params = [self.tenant, self.org]
        if channel is not None:
            q += " AND channel = $3"
            params.append(channel)
        return [(c, int(s), t, json.loads(d)) for c, s, t, d in
                self.pg.sql(q + " ORDER BY channel, seq", *params)]

    def publish_sql(self, channel, type_, data):
        """herald.publish(...) in SQL; returns the event id it returns."""
        return self.pg.sql_value("SELECT herald.publish($1, $2, $3, $4, $5::jsonb)",
                                 self.tenant, self.org, channel, type_, json.dumps(data))


def setup_scope(pg, features=("chat", "orders", "demo")):
    """Creates a fresh tenant/org and, where the schema has them, enables
    `features` and grants every permission on `<feature>:*` to everyone."""
    scope = Scope(pg, unique("tenant"), unique("org"))
    stmts = []
    if pg.has_table("herald.features"):
        for f in features:
            stmts.append(("INSERT INTO herald.features (tenant_id, org_id, feature, enabled) "
                          f"VALUES ($1, NULL, '{f}', true)"))
    if pg.has_table("herald.grants"):
        for f in features:
            for perm in ("realtime.subscribe", "realtime.publish", "realtime.presence"):
                stmts.append("INSERT INTO herald.grants (tenant_id, org_id, subject, permission, "
                             f"channel_pattern) VALUES ($1, NULL, '*', '{perm}', '{f}:*')")
    if stmts:
        pg.sql(";\n".join(stmts) + ";", scope.tenant)
    return scope


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def publish(node, token, channel, type_="msg", data=None, headers=None, timeout=10):
    """POST /v1/channels/<channel>/events; returns the Response."""
    h = dict(bearer(token))
    h.update(headers or {})
    return node.http("POST", f"/v1/channels/{channel}/events", headers=h,
                     json_body={"type": type_, "data": data}, timeout=timeout)


def publish_ok(node, token, channel, type_="msg", data=None):
    """Publishes and asserts 201 {"id", "channel"}; returns the event id."""
    r = publish(node, token, channel, type_, data)
    assert r.status == 201, f"publish to {channel} on {node.node_id}: expected 201, got {r!r}"
    body = r.json()
    assert isinstance(body.get("id"), str) and body["id"], f"publish answer without id: {body!r}"
    return body["id"]


def problem_type(resp):
    """The "type" of an application/problem+json body (asserts the format)."""
    ct = resp.content_type if isinstance(resp, Response) else resp.header("content-type", "")
    assert ct.split(";")[0].strip() == "application/problem+json", \
        f"expected application/problem+json, got {ct!r} in {resp!r}"
    body = resp.json() if isinstance(resp, Response) else json.loads(resp.body)
    return body.get("type")


# ---------------------------------------------------------------------------
# per-test context


class TestContext:
    """What a test gets: the shared PostgreSQL, a private workdir, and
    factories whose products are closed after the test (clients first,
    then nodes), pass or fail. Logs of the nodes it started are reported
    when the test fails."""

    def __init__(self, pg, workdir, name):
        self.pg = pg
        self.workdir = workdir
        self.name = name
        self.nodes = []
        self.clients = []
        self.cleanups = []
        self.notes = []
        self.infos = []
        self.stopping = threading.Event()
        os.makedirs(workdir, exist_ok=True)

    # -- factories

    def node(self, name="n1", config=None, demo=False, start=True, conninfo=None, **kw):
        """A started herald node (node id `<name>-<random>`). `config` adds
        SPEC §6 keys to the defaults (log_level = debug)."""
        cfg = {"log_level": "debug"}
        cfg.update(config or {})
        node = Herald(self.workdir, conninfo or self.pg.conninfo(), unique(name), cfg, demo=demo, **kw)
        self.nodes.append(node)
        if start:
            node.start()
        return node

    def scope(self, **kw):
        return setup_scope(self.pg, **kw)

    def sse(self, node, channels=None, token=None, target=None, last_event_id=None,
            query_last_event_id=None, headers=None, expect=200, timeout=10):
        """Opens a stream on node (Bearer token unless headers say otherwise).
        With expect=200 asserts the status and returns after the head."""
        if target is None:
            target = stream_target(channels, last_event_id=query_last_event_id)
        h = _normalize_headers(headers)
        if token is not None:
            h.append(("Authorization", f"Bearer {token}"))
        if last_event_id is not None:
            h.append(("Last-Event-ID", last_event_id))
        client = node.sse(target, headers=h, timeout=timeout)
        self.clients.append(client)
        if expect is not None:
            assert client.status == expect, (f"GET {target} on {node.node_id}: expected {expect}, "
                                              f"got {client.status} {client.body[:500]!r}")
        return client

    def subscribe(self, node, channels, token, **kw):
        """sse() then reads herald.open; returns (client, open event)."""
        client = self.sse(node, channels, token, **kw)
        ev = client.next_event(timeout=5)
        assert ev.type == "herald.open", f"first event should be herald.open, got {ev!r}"
        return client, ev

    def on_cleanup(self, fn):
        self.cleanups.append(fn)

    def note(self, text):
        """A line printed with the failure report."""
        self.notes.append(text)

    def info(self, text):
        """A line printed (as a TAP comment) whether the test passes or not."""
        self.infos.append(text)

    # -- teardown and reports

    def close(self):
        """Closes clients, stops nodes (SIGKILL if stuck), then runs the
        cleanups (last registered first). Returns cleanup errors."""
        self.stopping.set()
        errors = []
        for c in self.clients:
            c.close()
        stoppers = [threading.Thread(target=n.stop, kwargs={"timeout": 8}) for n in self.nodes]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        for n in self.nodes:
            n.kill9()
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - report, keep cleaning
                errors.append(f"cleanup {getattr(fn, '__name__', fn)}: {e}")
        return errors

    def failure_report(self, lines=60):
        out = list(self.notes)
        for n in self.nodes:
            out.append(f"--- {n.node_id} (port {n.port}, exit {n.returncode}) log, last {lines} lines: "
                       f"{n.logfile}")
            out += tail(n.logfile, lines)
        return out


# ---------------------------------------------------------------------------
# command line: pg-run


def _pg_run(argv):
    """pg-run -- CMD...: see the module docstring."""
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: harness.py pg-run -- CMD [ARG...]", file=sys.stderr)
        return 2
    interrupted = []

    def on_signal(signum, frame):
        interrupted.append(signum)
        raise KeyboardInterrupt

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    root = make_tmp_root()
    pg = Postgres(root)
    child = None
    try:
        pg.start()
        env = dict(os.environ, HERALD_DB=pg.conninfo(), PGHOST="127.0.0.1",
                   PGPORT=str(pg.port), PGUSER=pg.user, PGDATABASE=pg.dbname,
                   HERALD_TMPDIR=root)
        # Own process group: Ctrl-C reaches us, we stop the child in order.
        # (setpriv --pdeathsig: the child goes too if we are SIGKILLed.)
        child = subprocess.Popen(_as_user_prefix(None) + argv, env=env, process_group=0,
                                 stdin=subprocess.DEVNULL)
        return child.wait()
    except KeyboardInterrupt:
        return 130 if not interrupted or interrupted[0] == signal.SIGINT else 143
    except HarnessError as e:
        print(f"pg-run: {e}", file=sys.stderr)
        return 1
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        if child is not None and child.poll() is None:
            _stop_group(child)
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def _stop_group(child, timeout=10):
    """SIGTERM to the child's process group; SIGKILL after timeout."""
    try:
        os.killpg(child.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.wait()


# ---------------------------------------------------------------------------
# listener outages


def terminate_listener(pg, node):
    """Terminates node's LISTEN connection (by its application_name)."""
    app = f"herald listener {node.node_id}"
    killed = pg.sql_value("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                          "WHERE application_name = $1", app)
    assert killed == "1", f"expected one connection named {app!r}, terminated {killed}"


class ListenerOutage:
    """A node connecting as its own role, so that its LISTEN connection can
    be cut and kept down (the role may not log in meanwhile): /readyz is
    then observably 503 and notifications sent meanwhile are missed."""

    def __init__(self, ctx, name, **node_kw):
        self.pg = pg = ctx.pg
        self.role = role = unique(f"herald_{name}").replace("-", "_")
        pg.sql(f'CREATE ROLE "{role}" LOGIN SUPERUSER')
        ctx.on_cleanup(lambda: pg.sql(f'DROP ROLE IF EXISTS "{role}"'))
        ctx.on_cleanup(lambda: pg.sql(f'ALTER ROLE "{role}" LOGIN'))
        self.node = ctx.node(name, conninfo=pg.conninfo(user=role), **node_kw)

    def cut(self):
        self.pg.sql(f'ALTER ROLE "{self.role}" NOLOGIN')
        terminate_listener(self.pg, self.node)
        self.node.wait_readyz(503, timeout=10)

    def restore(self):
        self.pg.sql(f'ALTER ROLE "{self.role}" LOGIN')
        self.node.wait_readyz(200, timeout=30)


# ---------------------------------------------------------------------------
# audit rows

AUDIT_COLUMNS = ("kind", "outcome", "session_id", "user_id", "tenant_id", "org_id", "channel",
                 "detail")


def audit_rows(pg, node, kind):
    rows = []
    for r in pg.sql("SELECT kind, outcome, session_id, user_id, tenant_id, org_id, channel, "
                    "detail::text FROM herald.audit_log WHERE node_id = $1 AND kind = $2 ORDER BY id",
                    node.node_id, kind):
        d = dict(zip(AUDIT_COLUMNS, r))
        d["detail"] = json.loads(d["detail"])
        rows.append(d)
    return rows


def wait_audit(pg, node, kind, pred, count, timeout=8):
    """Polls until `count` of node's `kind` rows satisfy pred; returns them."""
    def got():
        rows = [r for r in audit_rows(pg, node, kind) if pred(r)]
        return rows if len(rows) >= count else None
    try:
        return wait_for(got, timeout, what=f"{count} {kind} rows on {node.node_id}")
    except HarnessError:
        raise AssertionError(f"{node.node_id}: expected {count} matching {kind} rows, have "
                             f"{audit_rows(pg, node, kind)}")


def main(argv):
    if len(argv) >= 1 and argv[0] == "pg-run":
        return _pg_run(argv[1:])
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
