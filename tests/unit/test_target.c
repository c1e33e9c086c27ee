/*
 * test_target.c — raw request-target parsing: split before decode, every
 * escape refusal, '+' only in the query, repeated keys, empty segments,
 * the trailing-slash flag and the segment/parameter bounds.
 */
#include <stdio.h>
#include <string.h>

#include "compiler.h"
#include "target.h"
#include "util/buf.h"
#include "tap.h"

static enum target_result parse(const char *raw, struct target *t)
{
	return target_parse(raw, strlen(raw), t);
}

static void test_paths(void)
{
	struct target t;

	is_int(parse("/v1/channels/chat%3Aroom/events", &t), TARGET_OK, "encoded ':' parses");
	is_int(t.nseg, 4, "four segments");
	is_str(t.seg[0], "v1", "segment 0");
	is_str(t.seg[1], "channels", "segment 1");
	is_str(t.seg[2], "chat:room", "%%3A decoded inside the segment");
	is_str(t.seg[3], "events", "segment 3");
	ok(!t.trailing_slash, "no trailing slash");
	is_int(t.nparam, 0, "no query");
	target_free(&t);

	is_int(parse("/v1/channels/a%2Fb/events", &t), TARGET_OK, "encoded '/' parses");
	is_int(t.nseg, 4, "%%2F does not split: still four segments");
	is_str(t.seg[2], "a/b", "%%2F decoded inside one segment");
	target_free(&t);

	is_int(parse("/v1/channels/a%2fb/events", &t), TARGET_OK, "lowercase escape parses");
	is_str(t.seg[2], "a/b", "lowercase hex decoded");
	target_free(&t);

	is_int(parse("/", &t), TARGET_OK, "root parses");
	is_int(t.nseg, 0, "root has zero segments");
	ok(!t.trailing_slash, "root has no trailing-slash flag");
	target_free(&t);

	is_int(parse("/v1/stream/", &t), TARGET_OK, "trailing slash parses");
	is_int(t.nseg, 2, "trailing slash adds no segment");
	ok(t.trailing_slash, "trailing slash flagged");
	target_free(&t);

	is_int(parse("/a//b", &t), TARGET_OK, "double slash parses");
	is_int(t.nseg, 3, "double slash keeps an empty segment");
	is_str(t.seg[1], "", "empty segment is \"\"");
	target_free(&t);

	is_int(parse("//", &t), TARGET_OK, "'//' parses");
	is_int(t.nseg, 1, "'//' is one empty segment");
	is_str(t.seg[0], "", "and it is empty");
	ok(t.trailing_slash, "then a trailing slash");
	target_free(&t);

	is_int(parse("/a+b", &t), TARGET_OK, "'+' in a path parses");
	is_str(t.seg[0], "a+b", "'+' stays '+' in the path");
	target_free(&t);

	is_int(parse("/caf%C3%A9", &t), TARGET_OK, "UTF-8 escape parses");
	is_str(t.seg[0], "caf\xc3\xa9", "UTF-8 bytes decoded");
	target_free(&t);

	is_int(target_parse("/a/bcd", 4, &t), TARGET_OK, "only n bytes are read");
	is_int(t.nseg, 2, "two segments in the first n bytes");
	is_str(t.seg[1], "b", "second segment cut at n");
	target_free(&t);
}

static void test_query(void)
{
	struct target t;

	is_int(parse("/v1/stream?channel=A&channel=B&last_event_id=x", &t), TARGET_OK,
	       "query parses");
	is_int(t.nseg, 2, "path before '?'");
	is_int(t.nparam, 3, "three parameters");
	is_str(t.param[0].key, "channel", "first key");
	is_str(t.param[0].value, "A", "first value");
	is_str(t.param[1].value, "B", "repeated key kept in order");
	is_str(target_param(&t, "channel"), "A", "target_param gives the first value");
	is_int(target_param_count(&t, "channel"), 2, "two channel values");
	is_int(target_param_count(&t, "last_event_id"), 1, "one last_event_id");
	is_int(target_param_count(&t, "nope"), 0, "absent key counts zero");
	ok(target_param(&t, "nope") == NULL, "absent key gives NULL");
	ok(target_param(&t, "chan") == NULL, "no prefix match");
	target_free(&t);

	is_int(parse("/s?a+b=c+d%2B&e=%26%3D", &t), TARGET_OK, "'+' and escapes in the query");
	is_str(t.param[0].key, "a b", "'+' is a space in a key");
	is_str(t.param[0].value, "c d+", "'+' is a space, %%2B a plus, in a value");
	is_str(t.param[1].value, "&=", "encoded '&' and '=' do not split");
	target_free(&t);

	is_int(parse("/s?flag&x=&=v&y=a=b", &t), TARGET_OK, "odd pairs parse");
	is_int(t.nparam, 4, "four parameters");
	is_str(t.param[0].key, "flag", "key without '='");
	is_str(t.param[0].value, "", "value \"\" without '='");
	is_str(t.param[1].value, "", "empty value after '='");
	is_str(t.param[2].key, "", "empty key");
	is_str(t.param[2].value, "v", "value of the empty key");
	is_str(t.param[3].value, "a=b", "only the first '=' splits");
	target_free(&t);

	is_int(parse("/s?&&a=1&&", &t), TARGET_OK, "empty pairs parse");
	is_int(t.nparam, 1, "empty pairs are skipped");
	target_free(&t);

	is_int(parse("/s?", &t), TARGET_OK, "empty query parses");
	is_int(t.nparam, 0, "empty query has no parameters");
	is_int(t.nseg, 1, "path kept");
	target_free(&t);

	is_int(parse("/?a=1?b=2", &t), TARGET_OK, "second '?' parses");
	is_str(t.param[0].value, "1?b=2", "second '?' belongs to the value");
	is_int(t.nseg, 0, "root before the query");
	target_free(&t);

	is_int(parse("/a/?x=1", &t), TARGET_OK, "trailing slash before a query parses");
	ok(t.trailing_slash, "trailing slash before a query is flagged");
	target_free(&t);
}

static void test_refused(void)
{
	static const struct {
		const char *raw;
		enum target_result r;
	} cases[] = {
		{"/a%00b", TARGET_BAD_ESCAPE},
		{"/a?x=%00", TARGET_BAD_ESCAPE},
		{"/a?%00=x", TARGET_BAD_ESCAPE},
		{"/a%zz", TARGET_BAD_ESCAPE},
		{"/a%4", TARGET_BAD_ESCAPE},
		{"/a%", TARGET_BAD_ESCAPE},
		{"/a%4/b", TARGET_BAD_ESCAPE},
		{"/a%g0", TARGET_BAD_ESCAPE},
		{"/a?x=%4", TARGET_BAD_ESCAPE},
		{"/a?x=%", TARGET_BAD_ESCAPE},
		{"/a%0a", TARGET_BAD_ESCAPE},
		{"/a%0D", TARGET_BAD_ESCAPE},
		{"/a%1F", TARGET_BAD_ESCAPE},
		{"/a%7f", TARGET_BAD_ESCAPE},
		{"/a?x=%09", TARGET_BAD_ESCAPE},
		{"/a\nb", TARGET_BAD_ESCAPE},
		{"/a\tb", TARGET_BAD_ESCAPE},
		{"/a?x=\r", TARGET_BAD_ESCAPE},
		{"/a\x7f", TARGET_BAD_ESCAPE},
		{"/a%%41", TARGET_BAD_ESCAPE},
		{"", TARGET_NOT_ORIGIN},
		{"v1/stream", TARGET_NOT_ORIGIN},
		{"*", TARGET_NOT_ORIGIN},
		{"http://h/v1/stream", TARGET_NOT_ORIGIN},
		{"?a=1", TARGET_NOT_ORIGIN},
		{"/1/2/3/4/5/6/7/8/9", TARGET_TOO_MANY},
		{"//////////", TARGET_TOO_MANY},
	};
	struct target t;
	size_t i;

	for (i = 0; i < HERALD_ARRAY_LEN(cases); i++) {
		is_int(parse(cases[i].raw, &t), cases[i].r, "refused %zu: '%s'", i, cases[i].raw);
		is_int(t.nseg + t.nparam, 0, "refused %zu leaves nothing to free", i);
	}
	is_int(target_parse("/a\0b", 4, &t), TARGET_BAD_ESCAPE, "raw NUL refused");
	is_int(parse("/1/2/3/4/5/6/7/8", &t), TARGET_OK, "eight segments accepted");
	is_int(t.nseg, TARGET_MAX_SEGMENTS, "TARGET_MAX_SEGMENTS segments");
	target_free(&t);
	is_int(parse("/1/2/3/4/5/6/7/8/", &t), TARGET_OK, "eight segments and a trailing slash");
	target_free(&t);
}

static void test_param_bound(void)
{
	struct buf b = BUF_INIT;
	struct target t;
	int i;

	buf_append_str(&b, "/s?");
	for (i = 0; i < TARGET_MAX_PARAMS; i++)
		buf_printf(&b, "channel=c%d&", i);
	is_int(target_parse(b.data, b.len, &t), TARGET_OK, "TARGET_MAX_PARAMS parameters accepted");
	is_int(t.nparam, TARGET_MAX_PARAMS, "all kept");
	is_str(t.param[TARGET_MAX_PARAMS - 1].value, "c63", "last one in order");
	target_free(&t);
	buf_append_str(&b, "x=1");
	is_int(target_parse(b.data, b.len, &t), TARGET_TOO_MANY, "one more is TARGET_TOO_MANY");
	is_int(t.nparam, 0, "and leaves nothing to free");
	buf_reset(&b);
	buf_append_str(&b, "/s?");
	for (i = 0; i < TARGET_MAX_PARAMS; i++)
		buf_append_str(&b, "a=1&");
	buf_append_str(&b, "%zz");
	is_int(target_parse(b.data, b.len, &t), TARGET_TOO_MANY, "the bound is checked before decoding");
	buf_free(&b);
}

int main(void)
{
	test_paths();
	test_query();
	test_refused();
	test_param_bound();
	return done_testing();
}
