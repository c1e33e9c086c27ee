/*
 * test_schema.c — the JSON Schema subset: each keyword passes and fails
 * something, failures name the deepest instance location and keyword,
 * compilation refuses what is not implemented and says where, patterns
 * keep ECMA-262 meaning on UTF-8, recursion is bounded, and one compiled
 * schema serves several threads at once.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "schema.h"
#include "tap.h"
#include "util/utf8.h"

static struct schema *compile(const char *schema)
{
	char err[256];
	struct schema *s = schema_compile(schema, strlen(schema), err, sizeof(err));
	if (s == NULL)
		tap_diag_value("compile", err);
	return s;
}

/* json-c reads JSON null as NULL, which is also the instance for null. */
static struct json_object *parse(const char *json)
{
	struct json_tokener *tok = json_tokener_new_ex(64);
	struct json_object *o = json_tokener_parse_ex(tok, json, (int)strlen(json));
	if (o == NULL && json_tokener_get_error(tok) == json_tokener_continue)
		o = json_tokener_parse_ex(tok, "", 1);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		tap_diag_value("bad test JSON", json);
		abort();
	}
	json_tokener_free(tok);
	return o;
}

/* 1 valid, 0 invalid (*e filled), -1 the schema does not compile. */
static int check(const char *schema, const char *instance, struct schema_error *e)
{
	struct schema *s = compile(schema);
	if (s == NULL)
		return -1;
	struct json_object *x = parse(instance);
	int valid = schema_validate(s, x, e);
	json_object_put(x);
	schema_free(s);
	return valid;
}

static void accepts(const char *schema, const char *instance)
{
	struct schema_error e;
	if (!ok(check(schema, instance, &e) == 1, "%s accepts %s", schema, instance))
		tap_diag_value("message", e.message);
}

static void refuses(const char *schema, const char *instance)
{
	struct schema_error e;
	ok(check(schema, instance, &e) == 0, "%s refuses %s", schema, instance);
}

/* The failure's path, keyword and (when not NULL) message. */
static void fails_at(const char *schema, const char *instance, const char *path,
                     const char *keyword, const char *message)
{
	struct schema_error e = {.path = "?", .keyword = "?", .message = "?"};
	ok(check(schema, instance, &e) == 0, "%s refuses %s", schema, instance);
	is_str(e.path, path, "  at path %s", path);
	is_str(e.keyword, keyword, "  by keyword %s", keyword);
	if (message != NULL)
		is_str(e.message, message, "  saying %s", message);
}

/* Compilation fails and the reason contains needle. */
static void not_compiled(const char *schema, const char *needle)
{
	char err[256] = "";
	struct schema *s = schema_compile(schema, strlen(schema), err, sizeof(err));
	ok(s == NULL && strstr(err, needle) != NULL, "compile refuses %s: %s", schema, err);
	if (s != NULL || strstr(err, needle) == NULL)
		tap_diag_value("wanted", needle);
	schema_free(s);
}

static void test_boolean_and_type(void)
{
	accepts("true", "{\"any\":1}");
	refuses("false", "null");
	fails_at("false", "1", "", "false", "not allowed (schema false)");
	accepts("{}", "[1,\"x\"]");
	accepts("{\"type\":\"string\"}", "\"a\"");
	refuses("{\"type\":\"string\"}", "1");
	accepts("{\"type\":\"integer\"}", "1.0");
	accepts("{\"type\":\"integer\"}", "-9223372036854775808");
	refuses("{\"type\":\"integer\"}", "1.5");
	accepts("{\"type\":\"number\"}", "1.5");
	refuses("{\"type\":\"number\"}", "\"1\"");
	accepts("{\"type\":\"null\"}", "null");
	refuses("{\"type\":\"null\"}", "false");
	accepts("{\"type\":\"boolean\"}", "false");
	refuses("{\"type\":\"boolean\"}", "0");
	accepts("{\"type\":\"object\"}", "{}");
	refuses("{\"type\":\"object\"}", "[]");
	accepts("{\"type\":\"array\"}", "[]");
	refuses("{\"type\":\"array\"}", "{}");
	accepts("{\"type\":[\"string\",\"null\"]}", "null");
	fails_at("{\"type\":[\"string\",\"null\"]}", "2.5", "", "type",
	         "must be null or string, not number");

	struct schema *s = compile("{\"type\":\"null\"}");
	ok(s != NULL && schema_validate(s, NULL, NULL), "a NULL instance is JSON null, e may be NULL");
	schema_free(s);
}

static void test_enum_const(void)
{
	accepts("{\"enum\":[1,\"a\",null]}", "1.0");
	accepts("{\"enum\":[1,\"a\",null]}", "null");
	refuses("{\"enum\":[1,\"a\",null]}", "\"b\"");
	refuses("{\"enum\":[false]}", "0");
	fails_at("{\"enum\":[\"x\",\"y\"]}", "\"z\"", "", "enum", "must be one of [\"x\",\"y\"]");
	accepts("{\"const\":{\"a\":[1,{\"b\":2}],\"c\":null}}", "{\"c\":null,\"a\":[1.0,{\"b\":2}]}");
	refuses("{\"const\":{\"a\":1}}", "{\"a\":1,\"b\":1}");
	refuses("{\"const\":[1,2]}", "[2,1]");
	accepts("{\"const\":null}", "null");
	refuses("{\"const\":null}", "0");
	accepts("{\"const\":9007199254740992}", "9007199254740992.0");
	refuses("{\"const\":9007199254740993}", "9007199254740992");
	accepts("{\"const\":18446744073709551615}", "18446744073709551615");
	refuses("{\"const\":18446744073709551615}", "9223372036854775807");
	accepts("{\"const\":\"a\\u0000b\"}", "\"a\\u0000b\"");
	refuses("{\"const\":\"a\\u0000b\"}", "\"a\\u0000c\"");
}

static void test_numbers(void)
{
	accepts("{\"multipleOf\":2}", "10");
	refuses("{\"multipleOf\":2}", "7");
	accepts("{\"multipleOf\":0.0001}", "0.0075");
	refuses("{\"multipleOf\":0.0001}", "0.00751");
	accepts("{\"multipleOf\":0.1}", "0.3");
	refuses("{\"type\":\"integer\",\"multipleOf\":0.123456789}", "1e308");
	accepts("{\"multipleOf\":1e-8}", "12391239123");
	fails_at("{\"multipleOf\":1.5}", "4", "", "multipleOf", "must be a multiple of 1.5");
	accepts("{\"maximum\":3}", "3");
	fails_at("{\"maximum\":3}", "3.5", "", "maximum", "must be <= 3");
	accepts("{\"exclusiveMaximum\":3}", "2.9");
	fails_at("{\"exclusiveMaximum\":3}", "3.0", "", "exclusiveMaximum", "must be < 3");
	accepts("{\"minimum\":0}", "0");
	fails_at("{\"minimum\":0}", "-1", "", "minimum", "must be >= 0");
	accepts("{\"exclusiveMinimum\":1.1}", "1.2");
	fails_at("{\"exclusiveMinimum\":1.1}", "1.1", "", "exclusiveMinimum", "must be > 1.1");
	/* exact at the ends of int64 and beyond: no rounding through double */
	refuses("{\"maximum\":9223372036854775806}", "9223372036854775807");
	refuses("{\"maximum\":9223372036854775807}", "18446744073709551615");
	accepts("{\"minimum\":9007199254740993}", "9007199254740993");
	refuses("{\"minimum\":9007199254740993}", "9007199254740992.0");
	accepts("{\"maximum\":1e300}", "9223372036854775807");
	accepts("{\"minimum\":-1e300}", "-9223372036854775808");
	accepts("{\"maximum\":3}", "\"not a number\"");
}

static void test_strings(void)
{
	accepts("{\"maxLength\":2}", "\"ab\"");
	fails_at("{\"maxLength\":2}", "\"abc\"", "", "maxLength", "must be at most 2 characters long");
	accepts("{\"minLength\":2.0}", "\"ab\"");
	refuses("{\"minLength\":2}", "\"a\"");
	/* code points, not bytes: é is 2 bytes, 😀 is 4 */
	accepts("{\"maxLength\":1}", "\"\xc3\xa9\"");
	accepts("{\"maxLength\":2,\"minLength\":2}", "\"\xf0\x9f\x98\x80\xf0\x9f\x98\x80\"");
	refuses("{\"minLength\":3}", "\"\xf0\x9f\x98\x80\xf0\x9f\x98\x80\"");
	accepts("{\"maxLength\":1}", "\"\\ud83d\\ude00\"");
	accepts("{\"pattern\":\"^a*$\"}", "\"aaa\"");
	fails_at("{\"pattern\":\"^a*$\"}", "\"abc\"", "", "pattern", "must match the pattern \"^a*$\"");
	accepts("{\"pattern\":\"b\"}", "\"abc\"");
	accepts("{\"pattern\":\"^x\"}", "3");
}

/* pattern p on string s (raw JSON string contents) */
static void matches(const char *p, const char *s, int expected)
{
	char schema[512], instance[512];
	struct schema_error e;
	snprintf(schema, sizeof(schema), "{\"pattern\":\"%s\"}", p);
	snprintf(instance, sizeof(instance), "\"%s\"", s);
	ok(check(schema, instance, &e) == expected, "/%s/ %s \"%s\"", p,
	   expected ? "matches" : "does not match", s);
}

static void test_patterns(void)
{
	matches("^\\\\d+$", "0123456789", 1);
	matches("^\\\\d$", "\xd9\xa3", 0); /* ARABIC-INDIC DIGIT THREE: \d is ASCII */
	matches("^\\\\D$", "\xd9\xa3", 1);
	matches("^\\\\w+$", "a_Z9", 1);
	matches("^\\\\w$", "\xc3\xa9", 0);
	matches("^\\\\W$", "\xc3\xa9", 1);
	matches("^\\\\s$", "\\u00a0", 1);
	matches("^\\\\s$", "\\u2003", 1);
	matches("^\\\\S$", "\\u3000", 0);
	matches("^.$", "\xc3\xa9", 1);
	matches("^.$", "\xf0\x9f\x98\x80", 1);
	matches("^.$", "\\n", 0);
	matches("^.$", "\\u2028", 0);
	matches("^.$", "\\u0000", 1);
	matches("^..$", "\xc3\xa9", 0);
	matches("^[\xc3\xa0-\xc3\xa2]$", "\xc3\xa1", 1);
	matches("^[\xc3\xa0-\xc3\xa2]$", "\xc3\xa3", 0);
	matches("^[^a]$", "\xf0\x9f\x98\x80", 1);
	matches("^[^a]$", "a", 0);
	matches("^[\\\\u0100-\\\\uffff]+$", "\xc4\x80\xe0\xa0\x80\xef\xbf\xbf", 1);
	matches("^[\\\\u0100-\\\\uffff]+$", "\xc3\xbf", 0);
	matches("^\\\\ud83d\\\\ude00$", "\xf0\x9f\x98\x80", 1);
	matches("^\\\\u{1F600}$", "\xf0\x9f\x98\x80", 1);
	matches("^\\\\x41\\\\u0042$", "AB", 1);
	matches("^[\\\\d.-]+$", "-1.5", 1);
	matches("^[\\\\D]$", "5", 0);
	matches("^[^\\\\D]$", "5", 1);
	matches("^[a\\\\s]$", "\\t", 1);
	matches("^[\\\\]^[-]+$", "]^[-", 1);
	matches("^[\\\\]\\\\\\\\]$", "\\\\", 1);
	matches("^a\\\\.b$", "a.b", 1);
	matches("^a\\\\.b$", "axb", 0);
	matches("^a\\\\/b\\\\-c$", "a/b-c", 1);
	matches("^\xc3\xa9+$", "\xc3\xa9\xc3\xa9", 1);
	matches("^\xc3\xa9+$", "\xc3\xa9\xa9", 0);
	matches("^(?:ab)+$", "abab", 1);
	matches("^(?<pair>ab){2}$", "abab", 1);
	matches("^a+?$", "aaa", 1);
	matches("^a{2,3}?$", "aaaa", 0);
	matches("^a{2}$", "aa", 1);
	matches("^a{,2}$", "a{,2}", 1);
	matches("^{}$", "{}", 1);
	matches("^(a|)$", "", 1);
	matches("^x\\\\0y$", "x\\u0000y", 1);
	matches("x$", "x\\n", 0);
	matches("^[\\\\b]$", "\\b", 1);
	matches("^\\\\cJ$", "\\n", 1);
	matches("^[^]$", "\\n", 1);
	/* a class that matches nothing: valid, never matches */
	matches("^a[]?$", "a", 1);
	matches("a[]", "ab", 0);
	matches("a[^\\\\s\\\\S]", "ab", 0);
	/* ^ and $ are the ends of the string, never a line inside it */
	matches("^[a-z]+$", "abc\\nxyz", 0);
	matches("^x", "a\\nx", 0);
	matches("a$", "a\\nb", 0);
	matches("\\n^x", "\\nx", 0);
	matches("a$\\n", "a\\n", 0);
	/* a repeated group holding an anchor keeps it in every repetition */
	matches("(.$){2}", "ab", 0);
	matches("(Z?.$){2}", "xZ", 0);
	matches("(^a|b){2}", "ab", 1);
	matches("(^a|b){2}", "bb", 1);
	matches("^(^a|b)+$", "abb", 1);
	matches("(b|^a)+c", "xbac", 0);
}

static void test_pattern_refusals(void)
{
	not_compiled("{\"pattern\":\"a(?=b)\"}", "lookahead is not supported");
	not_compiled("{\"pattern\":\"a(?!b)\"}", "lookahead is not supported");
	not_compiled("{\"pattern\":\"(?<=a)b\"}", "lookbehind is not supported");
	not_compiled("{\"pattern\":\"(?<!a)b\"}", "lookbehind is not supported");
	not_compiled("{\"pattern\":\"(a)\\\\1\"}", "backreferences are not supported");
	not_compiled("{\"pattern\":\"(?<n>a)\\\\k<n>\"}", "backreferences are not supported");
	not_compiled("{\"pattern\":\"\\\\p{L}\"}", "Unicode property escapes");
	not_compiled("{\"pattern\":\"\\\\bword\"}", "word boundaries");
	not_compiled("{\"pattern\":\"\\\\q\"}", "unknown escape \\q");
	not_compiled("{\"pattern\":\"[a\"}", "unterminated character class");
	not_compiled("{\"pattern\":\"[z-a]\"}", "range out of order");
	not_compiled("{\"pattern\":\"a**\"}", "nothing to repeat");
	not_compiled("{\"pattern\":\"^*a\"}", "nothing to repeat");
	not_compiled("{\"pattern\":\"a)\"}", "unmatched \")\"");
	not_compiled("{\"pattern\":\"(^a){99999}\"}", "repeated 99999 times is not supported");
	not_compiled("{\"pattern\":\"\\\\ud800\"}", "lone surrogate");
	not_compiled("{\"pattern\":\"(a\"}", "unterminated group");
	not_compiled("{\"pattern\":\"a{3,2}\"}", "numbers out of order");
	not_compiled("{\"pattern\":\"a{99999}\"}", "is not a supported regex: Regular expression too big");
	not_compiled("{\"pattern\":\"\\\\\"}", "pattern ends with a backslash");
	not_compiled("{\"patternProperties\":{\"(?=x)\":true}}",
	             "(root): \"patternProperties\" \"(?=x)\": lookahead is not supported");
	not_compiled("{\"properties\":{\"a\":{\"pattern\":\"*\"}}}",
	             "/properties/a: \"pattern\" \"*\": nothing to repeat");
}

static void test_arrays(void)
{
	accepts("{\"maxItems\":2}", "[1,2]");
	fails_at("{\"maxItems\":2}", "[1,2,3]", "", "maxItems", "must have at most 2 items");
	accepts("{\"minItems\":1}", "[1]");
	refuses("{\"minItems\":1}", "[]");
	accepts("{\"uniqueItems\":true}", "[1,\"1\",[1],{\"a\":1},true,null]");
	fails_at("{\"uniqueItems\":true}", "[1,2,1.0]", "", "uniqueItems", "items 0 and 2 are equal");
	refuses("{\"uniqueItems\":true}", "[{\"a\":1,\"b\":[2]},{\"b\":[2.0],\"a\":1}]");
	accepts("{\"uniqueItems\":true}", "[[1],[true]]");
	accepts("{\"uniqueItems\":false}", "[1,1]");
	accepts("{\"items\":{\"type\":\"integer\"}}", "[1,2]");
	fails_at("{\"items\":{\"type\":\"integer\"}}", "[1,\"x\"]", "/1", "type", NULL);
	accepts("{\"prefixItems\":[{\"type\":\"string\"}],\"items\":{\"type\":\"integer\"}}", "[\"a\",1]");
	fails_at("{\"prefixItems\":[{\"type\":\"string\"}],\"items\":false}", "[\"a\",1]", "/1", "items",
	         NULL);
	fails_at("{\"prefixItems\":[{\"type\":\"string\"}]}", "[1]", "/0", "type", NULL);
	accepts("{\"contains\":{\"const\":1}}", "[0,1]");
	fails_at("{\"contains\":{\"const\":1}}", "[0,2]", "", "contains", NULL);
	accepts("{\"contains\":{\"const\":1},\"minContains\":2}", "[1,0,1]");
	fails_at("{\"contains\":{\"const\":1},\"minContains\":2}", "[1,0]", "", "minContains", NULL);
	accepts("{\"contains\":{\"const\":1},\"maxContains\":1}", "[1,0]");
	fails_at("{\"contains\":{\"const\":1},\"maxContains\":1}", "[1,1]", "", "maxContains", NULL);
	accepts("{\"contains\":{\"const\":1},\"minContains\":0}", "[]");
	accepts("{\"maxContains\":0}", "[1]");
}

static void test_objects(void)
{
	accepts("{\"maxProperties\":1}", "{\"a\":1}");
	fails_at("{\"maxProperties\":1}", "{\"a\":1,\"b\":2}", "", "maxProperties", NULL);
	accepts("{\"minProperties\":1}", "{\"a\":1}");
	refuses("{\"minProperties\":1}", "{}");
	accepts("{\"required\":[\"name\"]}", "{\"name\":1}");
	fails_at("{\"required\":[\"name\"]}", "{\"nam\":1}", "", "required", "missing member \"name\"");
	accepts("{\"dependentRequired\":{\"a\":[\"b\"]}}", "{\"c\":1}");
	fails_at("{\"dependentRequired\":{\"a\":[\"b\"]}}", "{\"a\":1}", "", "dependentRequired",
	         "missing member \"b\" (required with \"a\")");
	accepts("{\"properties\":{\"a\":{\"type\":\"string\"}}}", "{\"a\":\"x\",\"b\":1}");
	fails_at("{\"properties\":{\"a\":{\"type\":\"string\"}}}", "{\"a\":1}", "/a", "type",
	         "must be string, not integer");
	accepts("{\"patternProperties\":{\"^x-\":{\"type\":\"integer\"}}}", "{\"x-a\":1,\"y\":\"s\"}");
	fails_at("{\"patternProperties\":{\"^x-\":{\"type\":\"integer\"}}}", "{\"x-a\":\"s\"}", "/x-a",
	         "type", NULL);
	accepts("{\"properties\":{\"a\":true},\"patternProperties\":{\"^b\":true},"
	        "\"additionalProperties\":false}",
	        "{\"a\":1,\"bc\":2}");
	fails_at("{\"properties\":{\"a\":true},\"additionalProperties\":false}", "{\"a\":1,\"x\":2}",
	         "/x", "additionalProperties", "not allowed (schema false)");
	fails_at("{\"additionalProperties\":{\"type\":\"boolean\"}}", "{\"x\":2}", "/x", "type", NULL);
	accepts("{\"propertyNames\":{\"maxLength\":3}}", "{\"abc\":1}");
	fails_at("{\"propertyNames\":{\"maxLength\":3}}", "{\"abcd\":1}", "", "propertyNames",
	         "member name \"abcd\": must be at most 3 characters long");
	fails_at("{\"propertyNames\":false}", "{\"a\":1}", "", "propertyNames", NULL);
	accepts("{\"dependentSchemas\":{\"a\":{\"required\":[\"b\"]}}}", "{\"b\":1}");
	fails_at("{\"dependentSchemas\":{\"a\":{\"required\":[\"b\"]}}}", "{\"a\":1}", "", "required",
	         NULL);
}

static void test_applicators(void)
{
	accepts("{\"allOf\":[{\"minimum\":1},{\"maximum\":3}]}", "2");
	fails_at("{\"allOf\":[{\"minimum\":1},{\"maximum\":3}]}", "4", "", "maximum", NULL);
	accepts("{\"anyOf\":[{\"type\":\"string\"},{\"minimum\":3}]}", "4");
	fails_at("{\"anyOf\":[{\"type\":\"string\"},{\"minimum\":3}]}", "2", "", "anyOf",
	         "must match at least one of 2 subschemas");
	accepts("{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":3}]}", "1");
	fails_at("{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":3}]}", "4", "", "oneOf",
	         "must match exactly one subschema, matches 0 and 1");
	fails_at("{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":3}]}", "1.5", "", "oneOf", NULL);
	accepts("{\"not\":{\"type\":\"string\"}}", "1");
	fails_at("{\"not\":{\"type\":\"string\"}}", "\"s\"", "", "not", NULL);
	accepts("{\"if\":{\"minimum\":0},\"then\":{\"multipleOf\":2},\"else\":{\"multipleOf\":3}}", "4");
	accepts("{\"if\":{\"minimum\":0},\"then\":{\"multipleOf\":2},\"else\":{\"multipleOf\":3}}", "-3");
	fails_at("{\"if\":{\"minimum\":0},\"then\":{\"multipleOf\":2},\"else\":{\"multipleOf\":3}}", "3",
	         "", "multipleOf", NULL);
	fails_at("{\"if\":{\"minimum\":0},\"then\":{\"multipleOf\":2},\"else\":{\"multipleOf\":3}}", "-2",
	         "", "multipleOf", NULL);
	fails_at("{\"if\":true,\"then\":false}", "1", "", "then", NULL);
	accepts("{\"then\":false}", "1");
}

static void test_refs(void)
{
	const char *tree = "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{"
	                   "\"value\":{\"type\":\"integer\"},"
	                   "\"children\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}}}},"
	                   "\"$ref\":\"#/$defs/node\"}";
	accepts(tree, "{\"value\":1,\"children\":[{\"value\":2,\"children\":[]}]}");
	fails_at(tree, "{\"value\":1,\"children\":[{\"value\":2},{\"value\":\"x\"}]}",
	         "/children/1/value", "type", NULL);
	accepts("{\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"$ref\":\"#/properties/a\"}}}",
	        "{\"b\":1}");
	refuses("{\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"$ref\":\"#/properties/a\"}}}",
	        "{\"b\":\"x\"}");
	refuses("{\"prefixItems\":[{\"type\":\"integer\"},{\"$ref\":\"#/prefixItems/0\"}]}", "[1,\"x\"]");
	const char *escaped = "{\"$defs\":{\"a/b\":{\"type\":\"integer\"},\"c~d\":{\"type\":\"string\"},"
	                      "\"e%f\":{\"type\":\"null\"}},\"properties\":{"
	                      "\"x\":{\"$ref\":\"#/$defs/a~1b\"},\"y\":{\"$ref\":\"#/$defs/c~0d\"},"
	                      "\"z\":{\"$ref\":\"#/$defs/e%25f\"}}}";
	accepts(escaped, "{\"x\":1,\"y\":\"s\",\"z\":null}");
	refuses(escaped, "{\"x\":\"s\"}");
	refuses(escaped, "{\"y\":1}");
	refuses(escaped, "{\"z\":1}");
	accepts("{\"$ref\":\"#/$defs/t\",\"$defs\":{\"t\":true}}", "1");
	fails_at("{\"$ref\":\"#/$defs/f\",\"$defs\":{\"f\":false}}", "1", "", "$ref", NULL);
	accepts("{\"properties\":{\"next\":{\"$ref\":\"#\"}},\"required\":[\"v\"]}",
	        "{\"v\":1,\"next\":{\"v\":2}}");
	fails_at("{\"properties\":{\"next\":{\"$ref\":\"#\"}},\"required\":[\"v\"]}",
	         "{\"v\":1,\"next\":{\"next\":{}}}", "/next", "required", NULL);
	/* enum and const hold data: a "$ref" there is not a reference */
	accepts("{\"$defs\":{\"s\":{\"type\":\"string\"}},\"enum\":[{\"$ref\":\"#/$defs/s\"}]}",
	        "{\"$ref\":\"#/$defs/s\"}");
	refuses("{\"$defs\":{\"s\":{\"type\":\"string\"}},\"enum\":[{\"$ref\":\"#/$defs/s\"}]}", "\"s\"");
}

static void test_error_paths(void)
{
	const char *order = "{\"properties\":{\"items\":{\"type\":\"array\",\"items\":{"
	                    "\"properties\":{\"price\":{\"minimum\":0}}}}}}";
	fails_at(order, "{\"items\":[{\"price\":1},{\"price\":0},{\"price\":-1}]}", "/items/2/price",
	         "minimum", "must be >= 0");
	fails_at("{\"properties\":{\"a/b\":{\"properties\":{\"c~d\":{\"type\":\"string\"}}}}}",
	         "{\"a/b\":{\"c~d\":1}}", "/a~1b/c~0d", "type", NULL);
	fails_at("{\"items\":{\"items\":{\"const\":0}}}", "[[0],[0,1]]", "/1/1", "const", "must be 0");
	fails_at("{\"properties\":{\"\":{\"type\":\"null\"}}}", "{\"\":1}", "/", "type", NULL);

	/* a path longer than the field is cut at a character boundary */
	char schema[1024], instance[1024], name[601];
	for (int i = 0; i < 300; i++)
		memcpy(name + 2 * i, "\xc3\xa9", 2);
	name[600] = '\0';
	snprintf(schema, sizeof(schema), "{\"properties\":{\"%s\":{\"type\":\"null\"}}}", name);
	snprintf(instance, sizeof(instance), "{\"%s\":1}", name);
	struct schema_error e;
	ok(check(schema, instance, &e) == 0, "a long member name fails");
	size_t len = strlen(e.path), i = 0, k;
	while (i < len && (k = utf8_seq_len((const unsigned char *)e.path + i, len - i)) > 0)
		i += k;
	ok(len > 150 && len < sizeof(e.path) && i == len, "its path is cut to valid UTF-8 (%zu bytes)",
	   len);
}

static void test_refusals(void)
{
	not_compiled("{\"properties\":{\"a\":{\"format\":\"email\"}}}",
	             "/properties/a: unsupported keyword \"format\"");
	not_compiled("{\"$id\":\"https://example.com/s\"}", "(root): unsupported keyword \"$id\"");
	not_compiled("{\"$defs\":{\"x\":{\"$anchor\":\"x\"}}}", "/$defs/x: unsupported keyword \"$anchor\"");
	not_compiled("{\"$dynamicRef\":\"#x\"}", "unsupported keyword \"$dynamicRef\"");
	not_compiled("{\"items\":{\"unevaluatedProperties\":false}}",
	             "/items: unsupported keyword \"unevaluatedProperties\"");
	not_compiled("{\"contentMediaType\":\"text/plain\"}", "unsupported keyword \"contentMediaType\"");
	not_compiled("{\"allOf\":[{},{\"foo\":1}]}", "/allOf/1: unsupported keyword \"foo\"");
	not_compiled("{\"definitions\":{}}", "unsupported keyword \"definitions\"");
	not_compiled("{\"$schema\":\"http://json-schema.org/draft-07/schema#\"}", "\"$schema\" must be");
	not_compiled("{\"minimum\":\"3\"}", "(root): \"minimum\" must be a number");
	not_compiled("{\"minLength\":-1}", "\"minLength\" must be a non-negative integer");
	not_compiled("{\"maxItems\":1.5}", "\"maxItems\" must be a non-negative integer");
	not_compiled("{\"multipleOf\":0}", "\"multipleOf\" must be greater than 0");
	not_compiled("{\"multipleOf\":-2}", "\"multipleOf\" must be greater than 0");
	not_compiled("{\"type\":\"text\"}", "\"type\" must name");
	not_compiled("{\"type\":[\"string\",\"string\"]}", "lists \"string\" twice");
	not_compiled("{\"type\":[]}", "\"type\" must not be an empty array");
	not_compiled("{\"required\":[\"a\",\"a\"]}", "lists \"a\" twice");
	not_compiled("{\"required\":\"a\"}", "\"required\" must be an array of strings");
	not_compiled("{\"enum\":1}", "\"enum\" must be an array");
	not_compiled("{\"uniqueItems\":1}", "\"uniqueItems\" must be a boolean");
	not_compiled("{\"allOf\":[]}", "\"allOf\" must be a non-empty array of schemas");
	not_compiled("{\"properties\":{\"a\":1}}", "/properties/a: a schema must be an object or a boolean");
	not_compiled("{\"title\":1}", "\"title\" must be a string");
	not_compiled("{\"readOnly\":\"yes\"}", "\"readOnly\" must be a boolean");
	not_compiled("{\"$ref\":\"#/$defs/missing\"}", "(root): \"$ref\" \"#/$defs/missing\" does not resolve");
	not_compiled("{\"$ref\":\"other.json#/a\"}", "is not local");
	not_compiled("{\"$ref\":\"#anchor\"}", "anchors are not supported");
	not_compiled("{\"$ref\":\"#/~2\"}", "bad ~ escape");
	not_compiled("{\"$ref\":\"#/enum/0\",\"enum\":[{\"x\":1}]}", "/enum/0: unsupported keyword \"x\"");
	not_compiled("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}",
	             "/$defs/a: $ref cycle back to /$defs/a never consumes the instance");
	not_compiled("{\"allOf\":[{\"$ref\":\"#\"}]}", "$ref cycle back to (root)");
	not_compiled("{\"$defs\":{\"a\":{\"not\":{\"$ref\":\"#/$defs/b\"}},\"b\":{\"anyOf\":[{\"$ref\":"
	             "\"#/$defs/a\"}]}}}",
	             "$ref cycle");
	not_compiled("{\"minimum\":1,}", "invalid JSON");
	not_compiled("{\"minimum\":1,\"minimum\":2}", "duplicate member name");
	not_compiled("\"string\"", "(root): a schema must be an object or a boolean");
	not_compiled("null", "a schema must be an object or a boolean");

	/* annotations and data locations are accepted, whatever they hold */
	accepts("{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"$comment\":\"c\","
	        "\"title\":\"t\",\"description\":\"d\",\"default\":{\"format\":1},"
	        "\"examples\":[{\"$id\":2}],\"deprecated\":false,\"readOnly\":true,\"writeOnly\":false,"
	        "\"const\":{\"format\":\"x\"}}",
	        "{\"format\":\"x\"}");
	/* then/else without if never run, so they close no cycle */
	accepts("{\"then\":{\"$ref\":\"#\"}}", "1");
}

static struct json_object *nested_arrays(int depth)
{
	struct json_object *x = json_object_new_array();
	for (int i = 1; i < depth; i++) {
		struct json_object *outer = json_object_new_array();
		json_object_array_add(outer, x);
		x = outer;
	}
	return x;
}

static void test_recursion_bound(void)
{
	struct schema *s = compile("{\"items\":{\"$ref\":\"#\"}}");
	struct schema_error e;
	struct json_object *shallow = nested_arrays(100), *deep = nested_arrays(300);

	ok(s != NULL && schema_validate(s, shallow, &e), "100 nested arrays validate");
	ok(!schema_validate(s, deep, &e), "300 nested arrays exceed the bound and fail");
	is_str(e.keyword, "$ref", "  with keyword $ref");
	ok(strstr(e.message, "more than 256 nested subschemas") != NULL, "  saying so: %s", e.message);
	/* the bound holds inside not, which must not turn the failure into a pass */
	schema_free(s);
	s = compile("{\"not\":{\"$ref\":\"#/$defs/r\"},\"$defs\":{\"r\":{\"items\":{\"$ref\":\"#/$defs/r\"},"
	            "\"minItems\":1}}}");
	ok(s != NULL && !schema_validate(s, deep, &e), "under not as well");
	is_str(e.keyword, "$ref", "  with keyword $ref");
	schema_free(s);
	json_object_put(shallow);
	json_object_put(deep);
}

struct worker {
	const struct schema *s;
	struct json_object *good, *bad;
	int wrong;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < 2000; i++) {
		struct schema_error e;
		w->wrong += !schema_validate(w->s, w->good, &e);
		w->wrong += schema_validate(w->s, w->bad, &e) || strcmp(e.path, "/tags/1") != 0;
	}
	return NULL;
}

static void test_threads(void)
{
	struct schema *s = compile("{\"properties\":{\"tags\":{\"items\":{\"pattern\":\"^[a-z\xc3\xa9]+$\"},"
	                           "\"uniqueItems\":true},\"n\":{\"enum\":[1,2,3]}},"
	                           "\"patternProperties\":{\"^x-\":{\"const\":{\"a\":[1]}}}}");
	struct json_object *good = parse("{\"tags\":[\"caf\xc3\xa9\",\"tea\"],\"n\":2,\"x-y\":{\"a\":[1.0]}}");
	struct json_object *bad = parse("{\"tags\":[\"ok\",\"NO\"],\"n\":2}");
	struct worker w[4];
	pthread_t t[4];
	int wrong = 0;

	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){s, good, bad, 0};
		pthread_create(&t[i], NULL, work, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		wrong += w[i].wrong;
	}
	ok(s != NULL && wrong == 0, "4 threads share one schema: %d wrong answers", wrong);
	json_object_put(good);
	json_object_put(bad);
	schema_free(s);
}

int main(void)
{
	test_boolean_and_type();
	test_enum_const();
	test_numbers();
	test_strings();
	test_patterns();
	test_pattern_refusals();
	test_arrays();
	test_objects();
	test_applicators();
	test_refs();
	test_error_paths();
	test_refusals();
	test_recursion_bound();
	test_threads();
	return done_testing();
}
