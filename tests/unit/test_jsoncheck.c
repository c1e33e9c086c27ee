/*
 * test_jsoncheck.c — strict JSON validation: what RFC 8259 allows passes,
 * and every refusal SPEC §5.5 asks for (duplicates, huge numbers, invalid
 * UTF-8, trailing data, limits) fails with a message.
 */
#include <string.h>

#include "jsoncheck.h"
#include "tap.h"

static const struct jsoncheck_limits lim = JSONCHECK_DEFAULT_LIMITS;

static int check(const char *doc)
{
	char err[128];
	return jsoncheck(doc, strlen(doc), &lim, err, sizeof(err));
}

static int check_n(const char *doc, size_t n)
{
	char err[128];
	return jsoncheck(doc, n, &lim, err, sizeof(err));
}

int main(void)
{
	static const char *good[] = {
		"{}", "[]", "0", "-0", "1.5e300", "-1E-300", "\"\"", "true", "false", "null",
		" {\"a\": [1, 2, {\"b\": null}], \"c\": \"x\"} ",
		"{\"type\":\"msg\",\"data\":{\"text\":\"h\\u00e9llo \\ud83d\\ude00\"}}",
		"\"caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x80\xa8\"",
		"{\"a\":1,\"A\":2}", "{\"a\":{\"a\":1}}", "[1,1,1]",
		"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "1.7976931348623157e308",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ok(check(good[i]), "accepts %s", good[i]);

	static const char *bad[] = {
		"", " ", "{", "[1,]", "{\"a\":1,}", "{'a':1}", "{a:1}", "[1 2]", "01", "1.", ".5",
		"-", "+1", "1e", "NaN", "Infinity", "tru", "nul", "{} x", "{}{}", "[1]]",
		"{\"a\":1,\"a\":2}", "{\"x\":{\"b\":1,\"c\":2,\"b\":3}}",
		"{\"\\u0061\":1,\"a\":2}", "1e309", "-1e400", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"",
		"\"\\udc00\"", "\"\\ud800\\u0041\"", "\"a\nb\"", "\"tab\there\"",
		"\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xff\"", "\"\xc3\"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ok(!check(bad[i]), "refuses %s", bad[i]);

	ok(!check_n("{\"a\":\"x\0y\"}", 11), "refuses a raw NUL in a string");
	ok(!check_n("{}\0", 3), "refuses a NUL after the value");

	char deep[200];
	memset(deep, '[', 65);
	memset(deep + 65, ']', 65);
	ok(check_n(deep + 1, 128), "64 levels of nesting pass");
	ok(!check_n(deep, 130), "65 levels of nesting fail");

	char err[128] = "";
	struct jsoncheck_limits small = {8, 5, 4};
	ok(jsoncheck("[1,2,3,4]", 9, &small, err, sizeof(err)), "5 values pass a 5-value limit");
	ok(!jsoncheck("[1,2,3,4,5]", 11, &small, err, sizeof(err)), "6 values fail it");
	ok(strstr(err, "too many values") != NULL, "and say so: %s", err);
	ok(jsoncheck("\"abcd\"", 6, &small, err, sizeof(err)), "a 4-byte string passes a 4-byte limit");
	ok(!jsoncheck("\"abcde\"", 7, &small, err, sizeof(err)), "a 5-byte string fails it");
	ok(!jsoncheck("{\"abcde\":1}", 11, &small, err, sizeof(err)), "so does a 5-byte member name");
	ok(!jsoncheck("{\"a\":1,\"a\":2}", 13, &lim, err, sizeof(err)), "duplicate found");
	ok(strstr(err, "duplicate member name at byte 7") != NULL, "its message names the offset: %s", err);
	return done_testing();
}
