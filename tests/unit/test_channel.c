/*
 * test_channel.c — the channel and event-type grammar of SPEC §1 at its
 * boundaries: lengths, character classes, separators and the reserved
 * "herald." prefix.
 */
#include <string.h>

#include "channel.h"
#include "compiler.h"
#include "tap.h"

#define L(lit) lit, sizeof(lit) - 1

static int valid(const char *s)
{
	return channel_valid(s, strlen(s));
}

static char *repeat(char *out, char c, size_t n)
{
	memset(out, c, n);
	out[n] = '\0';
	return out;
}

static void test_channel_ok(void)
{
	ok(valid("chat:room-42"), "chat:room-42");
	ok(valid("orders:eu.fr"), "orders:eu.fr");
	ok(valid("a:b"), "shortest channel");
	ok(valid("a1_-z:X"), "feature with digits, '_' and '-'");
	ok(valid("chat:a:b:c"), "':' allowed inside the name");
	ok(valid("chat::"), "name of one ':'");
	ok(valid("chat:A-Z_a.z:0-9"), "every name character class");
	is_int(channel_feature_len("chat:room"), 4, "feature length");
	is_int(channel_feature_len("chat:a:b"), 4, "feature ends at the first ':'");
}

static void test_channel_lengths(void)
{
	char s[512];
	size_t n;

	repeat(s, 'f', 32);
	memcpy(s + 32, ":n", 3);
	ok(valid(s), "feature of 32 bytes accepted");
	repeat(s, 'f', 33);
	memcpy(s + 33, ":n", 3);
	ok(!valid(s), "feature of 33 bytes refused");

	memcpy(s, "f:", 2);
	repeat(s + 2, 'n', 200);
	ok(valid(s), "name of 200 bytes accepted");
	repeat(s + 2, 'n', 201);
	ok(!valid(s), "name of 201 bytes refused");

	repeat(s, 'f', 32);
	s[32] = ':';
	repeat(s + 33, 'n', 200);
	n = strlen(s);
	is_int(n, CHANNEL_MAX_LEN, "longest channel is CHANNEL_MAX_LEN");
	ok(channel_valid(s, n), "longest channel accepted");
	ok(!channel_valid(s, n - 200), "same channel cut after ':' refused");
	ok(channel_valid("chat:roomXXX", 9), "only n bytes are read");
}

static void test_channel_refused(void)
{
	static const char *const bad[] = {
		"", ":", "chat", "chat:", ":room", "Chat:room", "cHat:room",
		"1chat:room", "_chat:room", "-chat:room", "ch.at:room", "ch at:room",
		"chat:ro om", "chat:ro/om", "chat:ro%2Fom", "chat:r+m", "chat:é",
		"chat:room\n", "chat:room\r", "chat:\troom", "chat:*", "ch/at:room",
	};
	size_t i;

	for (i = 0; i < HERALD_ARRAY_LEN(bad); i++)
		ok(!valid(bad[i]), "refused: '%s'", bad[i]);
	ok(!channel_valid(L("chat:ro\0om")), "embedded NUL refused");
	ok(!channel_valid(L("chat:room\0")), "trailing NUL refused");
	ok(!channel_valid(L("ch\0at:room")), "NUL in the feature refused");
	ok(!channel_valid("chat:room", 0), "zero length refused");
}

static void test_type(void)
{
	char s[128];

	ok(event_type_valid(L("message")), "plain type");
	ok(event_type_valid(L("a")), "one byte type");
	ok(event_type_valid(L("Order.Created:v2-x_y")), "every type character class");
	ok(!event_type_valid(L("")), "empty type refused");
	ok(!event_type_valid(L("with space")), "space refused");
	ok(!event_type_valid(L("a\nb")), "LF refused");
	ok(!event_type_valid(L("a\0b")), "NUL refused");
	ok(!event_type_valid(L("a/b")), "'/' refused");
	ok(!event_type_valid(L("ünï")), "non-ASCII refused");
	repeat(s, 't', 100);
	ok(event_type_valid(s, 100), "type of 100 bytes accepted");
	repeat(s, 't', 101);
	ok(!event_type_valid(s, 101), "type of 101 bytes refused");
}

static void test_reserved(void)
{
	ok(event_type_reserved(L("herald.open")), "herald.open reserved");
	ok(event_type_reserved(L("herald.")), "bare prefix reserved");
	ok(event_type_reserved(L("herald.x.y")), "deeper herald. types reserved");
	ok(!event_type_reserved(L("heraldx")), "heraldx not reserved");
	ok(!event_type_reserved(L("heraldx.open")), "heraldx.open not reserved");
	ok(!event_type_reserved(L("herald")), "herald without dot not reserved");
	ok(!event_type_reserved(L("my.herald.open")), "prefix only at the start");
	ok(!event_type_reserved(L("")), "empty not reserved");
	ok(!event_type_reserved("herald.open", 6), "only n bytes are read");
}

static void test_rule_rank(void)
{
	ok(channel_rule_rank("chat:a", "chat:a") > channel_rule_rank("chat:a*", "chat:a"),
	   "an exact pattern beats a prefix of the same channel");
	ok(channel_rule_rank("chat:room-*", "chat:room-1") > channel_rule_rank("chat:*", "chat:room-1"),
	   "a longer prefix beats a shorter one");
	ok(channel_rule_rank("chat:*", "chat:room-1") > channel_rule_rank("*", "chat:room-1"),
	   "any prefix beats the catch-all");
	ok(channel_rule_rank("*", "chat:x") >= 0, "'*' matches every channel");
	ok(channel_rule_rank("chat*", "chatter:x") >= 0, "a prefix may end inside the feature");
	ok(channel_rule_rank("chat:a", "chat:ab") < 0, "an exact pattern is not a prefix");
	ok(channel_rule_rank("chat:b*", "chat:a") < 0, "a prefix that differs does not match");
	ok(channel_rule_rank("orders:*", "chat:a") < 0, "another feature does not match");
	ok(channel_rule_rank("", "chat:a") < 0, "an empty pattern matches nothing");
}

int main(void)
{
	test_channel_ok();
	test_channel_lengths();
	test_channel_refused();
	test_type();
	test_reserved();
	test_rule_rank();
	return done_testing();
}
