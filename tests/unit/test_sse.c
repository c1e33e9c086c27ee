/*
 * test_sse.c — SSE encoding: every line-break form in data becomes its own
 * "data:" line, id and event values with line breaks are refused, and
 * comments stay one line.
 */
#include <string.h>

#include "sse.h"
#include "tap.h"

/* A string literal and its length without the terminating NUL. */
#define L(lit) lit, sizeof(lit) - 1

static void event_is(const char *type, const char *data, size_t n,
                     const char *expected, const char *name)
{
	struct buf b = BUF_INIT;

	ok(sse_append_event(&b, type, data, n), "%s: accepted", name);
	is_str(b.data, expected, "%s: bytes", name);
	buf_free(&b);
}

static void test_data_split(void)
{
	event_is("t", L("hello"), "event: t\ndata: hello\n\n", "single line");
	event_is(NULL, L("x"), "data: x\n\n", "no type: no event field");
	event_is("t", L("a\nb"), "event: t\ndata: a\ndata: b\n\n", "LF");
	event_is("t", L("a\rb"), "event: t\ndata: a\ndata: b\n\n", "CR");
	event_is("t", L("a\r\nb"), "event: t\ndata: a\ndata: b\n\n", "CRLF is one break");
	event_is("t", L("a\n\rb"), "event: t\ndata: a\ndata:\ndata: b\n\n",
	         "LF then CR is two breaks");
	event_is("t", L("a\r\n\r\nb\rc\nd"),
	         "event: t\ndata: a\ndata:\ndata: b\ndata: c\ndata: d\n\n", "mixed");
	event_is("t", L("a\n"), "event: t\ndata: a\ndata:\n\n",
	         "trailing LF keeps an empty last line");
	event_is("t", L("a\r\n"), "event: t\ndata: a\ndata:\n\n", "trailing CRLF");
	event_is("t", L("a\r"), "event: t\ndata: a\ndata:\n\n", "trailing CR");
	event_is("t", L(""), "event: t\ndata:\n\n", "empty data: one data line");
	event_is(NULL, L("\n"), "data:\ndata:\n\n", "data that is one LF");
	event_is("t", L(" lead"), "event: t\ndata:  lead\n\n",
	         "leading space survives the one the client strips");
	event_is("t", L("\n\nevent: x\n\nid: 1"),
	         "event: t\ndata:\ndata:\ndata: event: x\ndata:\ndata: id: 1\n\n",
	         "injected frame stays inside data");
	event_is("", L("x"), "event: \ndata: x\n\n", "empty type string");
}

static void test_data_with_nul(void)
{
	struct buf b = BUF_INIT;
	static const char expect[] = "data: a\0b\n\n";

	ok(sse_append_event(&b, NULL, "a\0b", 3), "NUL in data accepted");
	ok(b.len == sizeof(expect) - 1 && memcmp(b.data, expect, b.len) == 0,
	   "NUL in data is passed through as a byte");
	buf_free(&b);
}

static void test_type_refused(void)
{
	static const char *const bad[] = {"a\nb", "a\rb", "\r\n", "t\n"};
	size_t i;

	for (i = 0; i < HERALD_ARRAY_LEN(bad); i++) {
		struct buf b = BUF_INIT;

		buf_append_str(&b, "keep");
		ok(!sse_append_event(&b, bad[i], "x", 1), "type %zu with a line break refused", i);
		is_str(b.data, "keep", "refused type %zu appends nothing", i);
		buf_free(&b);
	}
}

static void test_id(void)
{
	struct buf b = BUF_INIT;

	ok(sse_append_id(&b, "0000abcd-0123456789ab-7", 23), "id accepted");
	is_str(b.data, "id: 0000abcd-0123456789ab-7\n", "id line");
	ok(sse_append_id(&b, "xyz", 2), "id takes n bytes");
	is_str(b.data, "id: 0000abcd-0123456789ab-7\nid: xy\n", "only n bytes used");
	buf_reset(&b);
	ok(sse_append_id(&b, "", 0), "empty id accepted (resets the client's id)");
	is_str(b.data, "id: \n", "empty id line");
	buf_reset(&b);
	ok(!sse_append_id(&b, "a\nb", 3), "id with LF refused");
	ok(!sse_append_id(&b, "a\rb", 3), "id with CR refused");
	ok(!sse_append_id(&b, "a\0b", 3), "id with NUL refused");
	is_int(b.len, 0, "refused ids append nothing");
	buf_free(&b);
}

static void test_retry_comment(void)
{
	struct buf b = BUF_INIT;

	sse_append_retry(&b, 2000);
	is_str(b.data, "retry: 2000\n", "retry line");
	buf_reset(&b);
	sse_append_retry(&b, 0);
	is_str(b.data, "retry: 0\n", "retry 0");
	buf_reset(&b);
	sse_append_comment(&b, "hb");
	is_str(b.data, ": hb\n\n", "comment");
	buf_reset(&b);
	sse_append_comment(&b, "a\nb\rc\r\nd");
	is_str(b.data, ": a b c  d\n\n", "line breaks in a comment become spaces");
	buf_reset(&b);
	sse_append_comment(&b, "");
	is_str(b.data, ": \n\n", "empty comment");
	buf_free(&b);
}

/* The receiving half of the WHATWG algorithm, enough to check that what
 * the encoder writes is what a browser dispatches. Returns the number of
 * events dispatched; the last one's type and data are left in type/data. */
static int client_parse(const char *s, size_t n, struct buf *type, struct buf *data)
{
	struct buf pending = BUF_INIT;
	size_t i = 0;
	int events = 0;

	buf_reset(type);
	buf_reset(data);
	buf_append(&pending, "", 0);
	buf_append(type, "", 0);
	while (i < n) {
		size_t start = i, len, vlen;
		const char *line = s + i, *colon, *value;

		while (i < n && s[i] != '\n' && s[i] != '\r')
			i++;
		if (i == n)
			break; /* an unterminated last line is never processed */
		len = i - start;
		i += (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') ? 2 : 1;
		if (len == 0) {
			if (pending.len > 0) {
				buf_reset(data);
				buf_append(data, pending.data, pending.len - 1);
				events++;
			}
			buf_reset(&pending);
			continue;
		}
		if (line[0] == ':')
			continue;
		colon = memchr(line, ':', len);
		value = colon ? colon + 1 : line + len;
		vlen = (size_t)(line + len - value);
		if (vlen > 0 && value[0] == ' ') {
			value++;
			vlen--;
		}
		if (colon && (size_t)(colon - line) == 4 && memcmp(line, "data", 4) == 0) {
			buf_append(&pending, value, vlen);
			buf_append_char(&pending, '\n');
		} else if (colon && (size_t)(colon - line) == 5 && memcmp(line, "event", 5) == 0) {
			buf_reset(type);
			buf_append(type, value, vlen);
		}
	}
	buf_free(&pending);
	return events;
}

static void test_round_trip(void)
{
	static const char *const inputs[] = {
		"", "x", "a\nb", "a\r\nb", "a\rb", "\n", "\r\n", "\r", "\n\n\n",
		"a\n", "\na", " sp", "  two", ":colon", "data: fake\n\nid: 9",
		"\r\r\n\n\r", "{\"k\":\"v\"}",
	};
	struct buf type = BUF_INIT, data = BUF_INIT, expect = BUF_INIT;
	size_t i, j;

	for (i = 0; i < HERALD_ARRAY_LEN(inputs); i++) {
		const char *in = inputs[i];
		struct buf b = BUF_INIT;
		int events;

		/* The client sees every line break as LF. */
		buf_reset(&expect);
		buf_append(&expect, "", 0);
		for (j = 0; in[j] != '\0'; j++) {
			if (in[j] == '\r' && in[j + 1] == '\n')
				continue;
			buf_append_char(&expect, in[j] == '\r' ? '\n' : in[j]);
		}
		ok(sse_append_event(&b, "ty.pe", in, strlen(in)), "round trip %zu encodes", i);
		events = client_parse(b.data, b.len, &type, &data);
		is_int(events, 1, "round trip %zu: exactly one event dispatched", i);
		is_str(type.data, "ty.pe", "round trip %zu: type", i);
		ok(data.len == expect.len && memcmp(data.data, expect.data, data.len) == 0,
		   "round trip %zu: data arrives with line breaks as LF", i);
		buf_free(&b);
	}
	buf_free(&type);
	buf_free(&data);
	buf_free(&expect);
}

static void test_sequence(void)
{
	struct buf b = BUF_INIT;

	sse_append_retry(&b, 2000);
	buf_append_char(&b, '\n');
	ok(sse_append_id(&b, "c1", 2), "id in sequence");
	ok(sse_append_event(&b, "herald.open", "{}", 2), "event in sequence");
	is_str(b.data, "retry: 2000\n\nid: c1\nevent: herald.open\ndata: {}\n\n",
	       "fields append to what is already there");
	buf_free(&b);
}

int main(void)
{
	test_data_split();
	test_data_with_nul();
	test_type_refused();
	test_id();
	test_retry_comment();
	test_round_trip();
	test_sequence();
	return done_testing();
}
