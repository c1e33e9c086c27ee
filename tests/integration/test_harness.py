"""test_harness.py — the harness's own parsers, checked without herald, so a
failing integration test can be trusted to be herald's failure: the SSE
interpretation (WHATWG) fed in arbitrary splits, and HTTP chunked bodies."""

import socket
import threading

from harness import SSEClient, SSEParser, http_request

STREAM = (
    "\ufeffretry: 2000\r\n\r\n"
    ": hb\n\n"
    "id: c1\revent: herald.open\rdata: {\"a\":1}\r\r"
    "event: msg\r\ndata: line1\r\ndata:line2\r\ndata\r\n\r\n"
    "id: bad\0id\nevent: x\ndata: y\n\n"
    "id\ndata: no-id\n\n"
    "event: empty\n\n"
    "retry: 1x\nfoo: bar\ndata: \u2028\U0001F600\n\n"
)
EXPECTED = [
    ("herald.open", '{"a":1}', "c1"),
    ("msg", "line1\nline2\n", "c1"),
    ("x", "y", "c1"),
    ("message", "no-id", ""),
    ("message", "\u2028\U0001F600", ""),
]


def parse_in_pieces(data, size):
    parser = SSEParser()
    for i in range(0, len(data), size):
        parser.feed(data[i:i + size])
    return parser


def test_sse_parser_follows_whatwg_rules_in_any_split(ctx):
    data = STREAM.encode("utf-8")
    for size in (1, 2, 3, 7, len(data)):
        parser = parse_in_pieces(data, size)
        got = [(e.type, e.data, e.id) for e in parser.events]
        assert got == EXPECTED, f"split {size}: {got}"
        assert parser.retry == 2000, parser.retry
        assert [c for _, c in parser.comments] == [" hb"], parser.comments


def serve_once(response):
    """A one-shot TCP server answering `response` bytes; returns its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer():
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for i in range(0, len(response), 5):  # small writes: splits everywhere
                conn.sendall(response[i:i + 5])
        listener.close()

    threading.Thread(target=answer, daemon=True).start()
    return listener.getsockname()[1]


def test_http_client_decodes_chunked_bodies(ctx):
    body = b"0123456789abcdef" * 5
    chunked = b"10\r\n" + body[:16] + b"\r\n40;ext=1\r\n" + body[16:] + b"\r\n0\r\nX-Trailer: 1\r\n\r\n"
    port = serve_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nX-A: 2\r\n\r\n" + chunked)
    r = http_request(port, "GET", "/a%2Fb", timeout=5)
    assert (r.status, r.body) == (200, body), r
    assert r.header_all("x-a") == ["1", "2"], r.headers


def test_sse_client_reads_chunked_stream_and_end(ctx):
    events = b"retry: 2000\n\nid: 1\nevent: herald.open\ndata: {}\n\n: hb\n\ndata: x\n\n"
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(events), events)
    port = serve_once(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
    client = SSEClient(port, "/v1/stream?channel=chat:x", timeout=5)
    ctx.clients.append(client)
    assert client.next_event(2).type == "herald.open"
    assert client.last_id == "1"
    assert client.next_event(2).data == "x"
    assert client.wait_end(2), "the terminating chunk should end the stream"
    assert client.raw.startswith("retry: 2000")
