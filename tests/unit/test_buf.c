/*
 * test_buf.c — the util layer: buffers and the JSON string escaper, hash
 * maps (growth, tombstones, iteration), time formatting, and the logger's
 * records (which are built from buf and checked here with json-c).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compiler.h"
#include "log.h"
#include "util/buf.h"
#include "util/map.h"
#include "util/timeutil.h"
#include "tap.h"

#define L(lit) lit, sizeof(lit) - 1

static void test_buf_basics(void)
{
	struct buf b = BUF_INIT;
	char big[1000];
	char *s;
	size_t cap;

	ok(b.data == NULL && b.len == 0, "BUF_INIT is empty");
	buf_append(&b, "", 0);
	ok(b.data != NULL && b.data[0] == '\0', "an empty append allocates a NUL-terminated buffer");
	buf_append_str(&b, "ab");
	buf_append_char(&b, 'c');
	buf_append(&b, "d\0e", 3);
	is_int(b.len, 6, "len counts embedded NUL");
	ok(memcmp(b.data, "abcd\0e", 7) == 0, "bytes and terminator");
	buf_reset(&b);
	is_int(b.len, 0, "reset empties");
	is_str(b.data, "", "reset leaves a NUL-terminated empty string");
	buf_append_u64(&b, 0);
	buf_append_char(&b, ' ');
	buf_append_u64(&b, UINT64_MAX);
	is_str(b.data, "0 18446744073709551615", "u64 bounds");
	buf_reset(&b);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	buf_printf(&b, "<%s|%d>", big, -7);
	is_int(b.len, 1004, "printf longer than the first try grows the buffer");
	ok(b.data[0] == '<' && strcmp(b.data + 1000, "|-7>") == 0, "printf output intact");
	buf_printf(&b, "%" PRId64, INT64_MIN);
	ok(strcmp(b.data + 1004, "-9223372036854775808") == 0, "printf appends");
	cap = b.cap;
	buf_reset(&b);
	is_int(b.cap, cap, "reset keeps storage");
	buf_reserve(&b, 5000);
	ok(b.cap >= 5001 && b.len == 0, "reserve grows capacity, not length");
	buf_append_str(&b, "kept");
	s = buf_steal(&b);
	is_str(s, "kept", "steal returns the contents");
	ok(b.data == NULL && b.len == 0 && b.cap == 0, "steal leaves the buffer empty");
	free(s);
	s = buf_steal(&b);
	ok(s != NULL && s[0] == '\0', "steal of an empty buffer returns \"\"");
	free(s);
	buf_free(&b);
	buf_free(&b);
	ok(b.data == NULL, "buf_free twice is harmless");
}

static void json_is(const char *in, size_t n, const char *expected, const char *name)
{
	struct buf b = BUF_INIT;

	buf_append_json_str(&b, in, n);
	is_str(b.data, expected, "json: %s", name);
	buf_free(&b);
}

static void test_json_str(void)
{
	static const char *const round[] = {
		"plain", "", "quote \" backslash \\ slash /", "nl\ncr\rtab\t",
		"\x01\x1f\x7f", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
		("sep\xe2\x80\xa8para\xe2\x80\xa9" "end"), "</script>",
	};
	struct buf b = BUF_INIT;
	size_t i;

	json_is(L("plain"), "\"plain\"", "plain");
	json_is(L(""), "\"\"", "empty");
	json_is(L("a\"b\\c"), "\"a\\\"b\\\\c\"", "quote and backslash");
	json_is(L("\n\r\t"), "\"\\n\\r\\t\"", "short escapes");
	json_is(L("\x01\x08\x0c\x1f"), "\"\\u0001\\u0008\\u000c\\u001f\"", "other controls as \\u00XX");
	json_is(L("\x7f"), "\"\x7f\"", "DEL is legal JSON");
	json_is(L("caf\xc3\xa9"), "\"caf\xc3\xa9\"", "UTF-8 passes through");
	json_is(L("a\xe2\x80\xa8" "b\xe2\x80\xa9"), "\"a\\u2028b\\u2029\"", "U+2028 and U+2029 escaped");
	json_is(L("\xe2\x80\xaa"), "\"\xe2\x80\xaa\"", "U+202A not escaped");
	json_is("\xe2\x80", 2, "\"\\ufffd\\ufffd\"", "a truncated sequence becomes U+FFFD");
	json_is("a\xff" "b\xc0\xaf" "c", 6, "\"a\\ufffdb\\ufffd\\ufffdc\"", "invalid bytes and overlongs become U+FFFD");
	json_is("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"", "an encoded surrogate becomes U+FFFD");
	json_is("\xf0\x9f\x98\x80", 4, "\"\xf0\x9f\x98\x80\"", "valid 4-byte UTF-8 passes unchanged");
	json_is(L("\xe2\x80\xa8"), "\"\\u2028\"", "U+2028 as the whole input");
	json_is("ab", 1, "\"a\"", "only n bytes");

	buf_append_json_str(&b, L("a\0b"));
	is_int(b.len, 10, "NUL escaped, not truncated");
	ok(memcmp(b.data, "\"a\\u0000b\"", 10) == 0, "NUL as \\u0000");

	for (i = 0; i < HERALD_ARRAY_LEN(round); i++) {
		struct json_object *o;

		buf_reset(&b);
		buf_append_json_str(&b, round[i], strlen(round[i]));
		o = json_tokener_parse(b.data);
		ok(o != NULL && json_object_is_type(o, json_type_string), "json-c parses escaped %zu", i);
		is_str(o ? json_object_get_string(o) : NULL, round[i], "json-c reads back string %zu", i);
		json_object_put(o);
	}
	buf_free(&b);
}

static void test_map_strings(void)
{
	enum { N = 5000 };
	static char keys[N][16];
	struct map m;
	size_t i, iter, seen;
	void *v;
	int bad = 0;

	map_init(&m);
	ok(map_get(&m, "x", 1) == NULL, "get on an empty map");
	ok(map_del(&m, "x", 1) == NULL, "del on an empty map");
	iter = 0;
	ok(!map_next(&m, &iter, &v), "iterating an empty map ends at once");

	for (i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "key-%zu", i);
		map_put(&m, keys[i], strlen(keys[i]), &keys[i]);
	}
	is_int(m.count, N, "count after inserts");
	ok((m.cap & (m.cap - 1)) == 0, "capacity is a power of two");
	ok(m.used * 10 <= m.cap * 7, "load stays at or below 70%%");
	for (i = 0; i < N; i++)
		bad += map_get(&m, keys[i], strlen(keys[i])) != &keys[i];
	is_int(bad, 0, "every key found with its value");
	ok(map_get(&m, "key-", 4) == NULL, "prefix of a key not found");
	ok(map_get(&m, "key-1x", 6) == NULL, "absent key not found");

	map_put(&m, "key-7", 5, &keys[0]);
	is_int(m.count, N, "replacing does not add");
	ok(map_get(&m, "key-7", 5) == &keys[0], "replaced value returned");
	map_put(&m, "key-7", 5, &keys[7]);

	for (i = 0, bad = 0; i < N; i += 2)
		bad += map_del(&m, keys[i], strlen(keys[i])) != &keys[i];
	is_int(bad, 0, "del returns the old values");
	is_int(m.count, N / 2, "count after deleting half");
	ok(map_del(&m, "key-0", 5) == NULL, "second del returns NULL");
	for (i = 0, bad = 0; i < N; i++)
		bad += map_get(&m, keys[i], strlen(keys[i])) != (i % 2 ? &keys[i] : NULL);
	is_int(bad, 0, "deleted keys gone, the others kept");

	/* Deleting the current entry while iterating must visit every other
	 * entry exactly once. */
	for (iter = 0, seen = 0; map_next(&m, &iter, &v); seen++) {
		char *k = v;

		bad += map_del(&m, k, strlen(k)) != v;
	}
	is_int(seen, N / 2, "iteration visits every live entry once");
	is_int(bad, 0, "deleting during iteration");
	is_int(m.count, 0, "map empty after deleting everything");
	map_free(&m);
	ok(m.slots == NULL && m.cap == 0, "map_free resets the map");
}

static void test_map_edges(void)
{
	static char names[64][8];
	struct map m;
	size_t i, maxcap = 0;
	int a, b2, c;

	map_init(&m);
	map_put(&m, "a\0b", 3, &a);
	map_put(&m, "a\0c", 3, &b2);
	map_put(&m, "a", 1, &c);
	ok(map_get(&m, "a\0b", 3) == &a, "key with NUL");
	ok(map_get(&m, "a\0c", 3) == &b2, "keys differing after a NUL are distinct");
	ok(map_get(&m, "a", 1) == &c, "shorter key distinct");
	ok(map_get(&m, "a\0", 2) == NULL, "length is part of the key");
	map_put(&m, "", 0, &a);
	ok(map_get(&m, "", 0) == &a, "empty key");
	map_free(&m);

	/* Insert/delete churn: tombstones must be reclaimed, not grow the
	 * table forever. */
	map_init(&m);
	for (i = 0; i < 64; i++)
		snprintf(names[i], sizeof(names[i]), "n%zu", i);
	for (i = 0; i < 100000; i++) {
		char *k = names[i % 64];

		map_put(&m, k, strlen(k), k);
		if (i >= 3) {
			char *old = names[(i - 3) % 64];

			map_del(&m, old, strlen(old));
		}
		if (m.cap > maxcap)
			maxcap = m.cap;
	}
	is_int(m.count, 3, "churn leaves the live entries");
	ok(maxcap <= 16, "churn keeps the table small (max cap %zu)", maxcap);
	ok(map_get(&m, names[99999 % 64], strlen(names[99999 % 64])) != NULL, "latest key present");
	map_free(&m);

	ok(map_hash("abc", 3) == map_hash("abc", 3), "hash is deterministic");
	ok(map_hash("abc", 3) != map_hash("abd", 3), "hash differs for different keys");
	ok(map_hash("", 0) > 1 && map_hash("a", 1) > 1, "hash values 0 and 1 never returned");
}

static void test_map_ints(void)
{
	enum { N = 2000 };
	static int vals[N];
	struct map m;
	uint64_t i;
	int bad = 0;

	map_init(&m);
	ok(map_iget(&m, 0) == NULL, "iget on an empty map");
	map_iput(&m, 0, &vals[0]);
	map_iput(&m, UINT64_MAX, &vals[1]);
	ok(map_iget(&m, 0) == &vals[0], "key 0");
	ok(map_iget(&m, UINT64_MAX) == &vals[1], "key UINT64_MAX");
	ok(map_idel(&m, 0) == &vals[0], "idel returns the value");
	ok(map_iget(&m, 0) == NULL, "idel removes");
	ok(map_idel(&m, 0) == NULL, "second idel returns NULL");
	map_free(&m);

	/* Keys equal in their low bits would all collide without mixing. */
	map_init(&m);
	for (i = 0; i < N; i++)
		map_iput(&m, i << 32, &vals[i]);
	for (i = 0; i < N; i++)
		bad += map_iget(&m, i << 32) != &vals[i];
	is_int(bad, 0, "keys differing only in high bits");
	is_int(m.count, N, "count of integer keys");
	ok(map_iget(&m, 1) == NULL, "absent integer key");
	for (i = 0; i < N; i += 3)
		map_idel(&m, i << 32);
	for (i = 0, bad = 0; i < N; i++)
		bad += map_iget(&m, i << 32) != (i % 3 ? &vals[i] : NULL);
	is_int(bad, 0, "integer deletes");
	map_free(&m);
}

static void test_time(void)
{
	char out[32];
	int64_t a, b;

	time_format_rfc3339(0, out);
	is_str(out, "1970-01-01T00:00:00.000Z", "epoch");
	time_format_rfc3339(INT64_C(1767323045678), out);
	is_str(out, "2026-01-02T03:04:05.678Z", "header example");
	time_format_rfc3339(INT64_C(951782400001), out);
	is_str(out, "2000-02-29T00:00:00.001Z", "leap day");
	time_format_rfc3339(-1, out);
	is_str(out, "1970-01-01T00:00:00.000Z", "before the epoch clamps");
	time_format_rfc3339(INT64_MAX, out);
	is_str(out, "9999-12-31T23:59:59.999Z", "far future clamps to four digits");
	a = time_mono_ms();
	b = time_mono_ms();
	ok(b >= a, "monotonic clock does not go back");
	ok(time_wall_ms() > INT64_C(1704067200000), "wall clock after 2024");
}

/* Runs fn with stderr redirected to a file and returns what it wrote. */
static char *capture_stderr(void (*fn)(void))
{
	char path[] = "/tmp/herald-test-log-XXXXXX";
	struct buf b = BUF_INIT;
	char chunk[4096];
	ssize_t n;
	int fd = mkstemp(path), saved = dup(2);

	if (fd < 0 || saved < 0)
		return NULL;
	fflush(stderr);
	dup2(fd, 2);
	fn();
	dup2(saved, 2);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_append(&b, chunk, (size_t)n);
	close(fd);
	unlink(path);
	return buf_steal(&b);
}

static void log_json_records(void)
{
	log_init(LOG_INFO, LOG_FORMAT_JSON, "n1");
	log_msg(LOG_INFO, "stream opened", "stream", "s1", "tenant", "t\"1\n\xe2\x80\xa8", NULL);
	log_msg(LOG_DEBUG, "hidden", NULL);
	log_msg(LOG_ERROR, "no context", "missing", NULL, NULL);
	log_fmt(LOG_WARN, "retry in %d ms: %s", 250, "conn\nlost");
	log_set_level(LOG_DEBUG);
	log_msg(LOG_DEBUG, "now shown", NULL);
	log_fmt(LOG_INFO, "%0600d|%s", 7, "end");
}

static void log_text_records(void)
{
	log_init(LOG_WARN, LOG_FORMAT_TEXT, "n2");
	log_msg(LOG_INFO, "hidden", NULL);
	log_msg(LOG_ERROR, "db down", "reason", "server closed\n", "node2", "a b", "x", "", NULL);
}

static struct json_object *line_json(char **cursor)
{
	char *nl = strchr(*cursor, '\n');
	struct json_object *o;

	if (nl == NULL)
		return NULL;
	*nl = '\0';
	o = json_tokener_parse(*cursor);
	*cursor = nl + 1;
	return o;
}

static const char *field(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v))
		return "(absent)";
	return json_object_is_type(v, json_type_null) ? "(null)" : json_object_get_string(v);
}

static void test_log(void)
{
	char *out = capture_stderr(log_json_records), *cur = out, *nl;
	struct json_object *o;
	int lines = 0;

	ok(out != NULL, "stderr captured");
	if (out == NULL)
		return;
	for (nl = out; (nl = strchr(nl, '\n')) != NULL; nl++)
		lines++;
	is_int(lines, 5, "five records, debug suppressed until enabled");
	o = line_json(&cur);
	ok(o != NULL, "record 1 is JSON");
	is_str(field(o, "level"), "info", "record 1 level");
	is_str(field(o, "node"), "n1", "record 1 node");
	is_str(field(o, "msg"), "stream opened", "record 1 msg");
	is_str(field(o, "stream"), "s1", "record 1 context pair");
	is_str(field(o, "tenant"), "t\"1\n\xe2\x80\xa8", "record 1 escaped value reads back");
	ok(strlen(field(o, "ts")) == 24 && field(o, "ts")[23] == 'Z', "record 1 ts is RFC 3339 UTC");
	json_object_put(o);
	o = line_json(&cur);
	is_str(field(o, "level"), "error", "record 2 level");
	is_str(field(o, "missing"), "(null)", "NULL value is JSON null");
	json_object_put(o);
	o = line_json(&cur);
	is_str(field(o, "level"), "warn", "log_fmt level");
	is_str(field(o, "msg"), "retry in 250 ms: conn\nlost", "log_fmt message formatted and escaped");
	json_object_put(o);
	o = line_json(&cur);
	is_str(field(o, "msg"), "now shown", "log_set_level enables debug");
	json_object_put(o);
	o = line_json(&cur);
	is_int(strlen(field(o, "msg")), 604, "long log_fmt message kept whole");
	ok(strcmp(field(o, "msg") + 595, "00007|end") == 0, "long log_fmt message intact");
	json_object_put(o);
	free(out);

	out = capture_stderr(log_text_records);
	ok(out != NULL, "text stderr captured");
	if (out == NULL)
		return;
	ok(strlen(out) > 25 && out[23] == 'Z' && out[24] == ' ', "text starts with the timestamp");
	is_str(out + 25, "ERROR db down reason=\"server closed\\n\" node2=\"a b\" x=\"\"\n",
	       "text record: one line, values quoted when needed");
	free(out);
}

int main(void)
{
	test_buf_basics();
	test_json_str();
	test_map_strings();
	test_map_edges();
	test_map_ints();
	test_time();
	test_log();
	return done_testing();
}
