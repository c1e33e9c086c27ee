/*
 * test_cursor.c — cursor syntax: format/parse round trip, every malformed
 * form cursor.h lists, the INT64_MAX and CURSOR_MAX_CHANNELS bounds, the
 * exact digest input bytes, and the crypto helpers the digest uses.
 */
#include <inttypes.h>
#include <string.h>

#include "compiler.h"
#include "crypto.h"
#include "cursor.h"
#include "tap.h"

#define EPOCH "0badcafe"
#define DIGEST "0123456789ab"
#define HEAD EPOCH "-" DIGEST "-"

static int parses(const char *s)
{
	struct cursor c;

	return cursor_parse(s, strlen(s), &c);
}

static void test_round_trip(void)
{
	static const int64_t seqs[][3] = {{0, 0, 0}, {1, 2, 3}, {INT64_MAX, 0, 42}};
	struct buf b = BUF_INIT;
	struct cursor c;
	size_t i, k;

	for (i = 0; i < HERALD_ARRAY_LEN(seqs); i++) {
		for (k = 1; k <= 3; k++) {
			buf_reset(&b);
			cursor_format(&b, EPOCH, DIGEST, seqs[i], k);
			ok(cursor_parse(b.data, b.len, &c), "round trip %zu/%zu parses: %s", i, k, b.data);
			is_str(c.epoch, EPOCH, "round trip %zu/%zu epoch", i, k);
			is_str(c.digest, DIGEST, "round trip %zu/%zu digest", i, k);
			is_int(c.nseq, k, "round trip %zu/%zu seq count", i, k);
			ok(memcmp(c.seq, seqs[i], k * sizeof(int64_t)) == 0, "round trip %zu/%zu seqs", i, k);
		}
	}
	buf_reset(&b);
	cursor_format(&b, EPOCH, DIGEST, seqs[1], 3);
	is_str(b.data, HEAD "1.2.3", "format layout");
	buf_reset(&b);
	cursor_format(&b, EPOCH, DIGEST, seqs[2], 1);
	is_str(b.data, HEAD "9223372036854775807", "INT64_MAX formatted");
	buf_free(&b);
}

static void test_parse_fields(void)
{
	struct cursor c;

	ok(cursor_parse(HEAD "7", strlen(HEAD "7"), &c), "single seq parses");
	is_int(c.nseq, 1, "one seq");
	is_int(c.seq[0], 7, "seq value");
	ok(cursor_parse(HEAD "10.0.305", strlen(HEAD "10.0.305"), &c), "three seqs parse");
	is_int(c.nseq, 3, "three seqs");
	is_int(c.seq[0], 10, "first seq");
	is_int(c.seq[1], 0, "zero seq");
	is_int(c.seq[2], 305, "third seq");
	ok(cursor_parse(HEAD "9223372036854775807", strlen(HEAD "9223372036854775807"), &c),
	   "INT64_MAX accepted");
	ok(c.seq[0] == INT64_MAX, "INT64_MAX value");
	ok(cursor_parse(HEAD "12x", strlen(HEAD "12"), &c), "only n bytes are read");
	is_int(c.seq[0], 12, "seq from the first n bytes");
}

static void test_malformed(void)
{
	static const char *const bad[] = {
		"",
		HEAD,                              /* no seq */
		EPOCH "-" DIGEST,                  /* no seq, no dash */
		EPOCH "-" DIGEST "-",              /* empty seq */
		"0BADCAFE-" DIGEST "-1",           /* upper case epoch */
		EPOCH "-0123456789AB-1",           /* upper case digest */
		"0badcaf-" DIGEST "-1",            /* short epoch */
		"0badcafe0-" DIGEST "-1",          /* long epoch */
		EPOCH "-0123456789a-1",            /* short digest */
		EPOCH "-0123456789abc-1",          /* long digest */
		"0badcafg-" DIGEST "-1",           /* non-hex epoch */
		EPOCH "-0123456789ag-1",           /* non-hex digest */
		EPOCH "_" DIGEST "-1",             /* wrong separator */
		EPOCH "-" DIGEST "_1",             /* wrong separator */
		HEAD "01",                         /* leading zero */
		HEAD "00",                         /* leading zero */
		HEAD "1.01",                       /* leading zero later */
		HEAD "1.",                         /* empty last seq */
		HEAD ".1",                         /* empty first seq */
		HEAD "1..2",                       /* empty middle seq */
		HEAD "-1",                         /* negative */
		HEAD "+1",                         /* sign */
		HEAD " 1",                         /* blank */
		HEAD "1 ",                         /* trailing blank */
		HEAD "1\n",                        /* trailing LF */
		HEAD "1x",                         /* trailing byte */
		HEAD "1-2",                        /* dash between seqs */
		HEAD "1,2",                        /* comma between seqs */
		HEAD "9223372036854775808",        /* INT64_MAX + 1 */
		HEAD "18446744073709551616",       /* UINT64_MAX + 1 */
		HEAD "99999999999999999999999",    /* far too big */
		HEAD "1.9223372036854775808",      /* too big later */
		" " HEAD "1",                      /* leading blank */
	};
	struct cursor c;
	size_t i;

	for (i = 0; i < HERALD_ARRAY_LEN(bad); i++)
		ok(!parses(bad[i]), "malformed %zu refused: '%s'", i, bad[i]);
	ok(!cursor_parse(HEAD "1\0", strlen(HEAD) + 2, &c), "trailing NUL refused");
	ok(!cursor_parse(HEAD "1\0.2", strlen(HEAD) + 4, &c), "NUL inside refused");
	ok(!cursor_parse(HEAD "1", strlen(HEAD), &c), "cut before the seq refused");
}

static void test_max_channels(void)
{
	struct buf b = BUF_INIT;
	struct cursor c;
	int64_t seq[CURSOR_MAX_CHANNELS + 1];
	size_t i;

	for (i = 0; i < HERALD_ARRAY_LEN(seq); i++)
		seq[i] = (int64_t)i * 1000;
	cursor_format(&b, EPOCH, DIGEST, seq, CURSOR_MAX_CHANNELS);
	ok(cursor_parse(b.data, b.len, &c), "CURSOR_MAX_CHANNELS seqs accepted");
	is_int(c.nseq, CURSOR_MAX_CHANNELS, "all of them kept");
	is_int(c.seq[CURSOR_MAX_CHANNELS - 1], (CURSOR_MAX_CHANNELS - 1) * 1000, "last seq");
	buf_reset(&b);
	cursor_format(&b, EPOCH, DIGEST, seq, CURSOR_MAX_CHANNELS + 1);
	ok(!cursor_parse(b.data, b.len, &c), "CURSOR_MAX_CHANNELS + 1 seqs refused");
	buf_free(&b);
}

static void test_digest_input(void)
{
	static const char *const two[] = {"a:x", "b:y"};
	static const char *const one[] = {"chat:room-42"};
	static const char *const odd[] = {"a:x3:b:y"};
	struct buf b = BUF_INIT, b2 = BUF_INIT;

	cursor_digest_input(&b, "t1", "o1", two, 2);
	is_str(b.data, "2:t12:o13:a:x3:b:y", "two channels");
	buf_reset(&b);
	cursor_digest_input(&b, "t1", "o1", one, 1);
	is_str(b.data, "2:t12:o112:chat:room-42", "multi-digit length");
	buf_reset(&b);
	cursor_digest_input(&b, "", "", NULL, 0);
	is_str(b.data, "0:0:", "empty scope, no channels");
	buf_reset(&b);
	cursor_digest_input(&b, "t\xc3\xa9", "o", NULL, 0);
	is_str(b.data, "3:t\xc3\xa9" "1:o", "length counts bytes, not characters");

	/* Length prefixes keep different splits apart. */
	buf_reset(&b);
	cursor_digest_input(&b, "t1", "o1", two, 2);
	cursor_digest_input(&b2, "t1", "o1", odd, 1);
	ok(strcmp(b.data, b2.data) != 0, "one channel cannot forge two");
	buf_reset(&b);
	buf_reset(&b2);
	cursor_digest_input(&b, "ab", "c", NULL, 0);
	cursor_digest_input(&b2, "a", "bc", NULL, 0);
	ok(strcmp(b.data, b2.data) != 0, "tenant/org boundary is part of the input");
	buf_free(&b);
	buf_free(&b2);
}

static void test_crypto(void)
{
	unsigned char h[CRYPTO_SHA256_LEN], r1[32], r2[32];
	char hex[2 * CRYPTO_SHA256_LEN + 1];

	crypto_sha256("abc", 3, h);
	crypto_hex(h, sizeof(h), hex);
	is_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	       "SHA-256 of abc");
	crypto_sha256("", 0, h);
	crypto_hex(h, sizeof(h), hex);
	is_str(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	       "SHA-256 of nothing");
	crypto_hex((const unsigned char *)"\x00\x0f\xf0\xff", 4, hex);
	is_str(hex, "000ff0ff", "hex is lowercase and zero-padded");
	ok(crypto_equal("same", "same", 4), "equal bytes");
	ok(!crypto_equal("same", "samE", 4), "last byte differs");
	ok(!crypto_equal("xame", "same", 4), "first byte differs");
	ok(crypto_equal("ab", "ac", 1), "only n bytes compared");
	ok(crypto_random(r1, sizeof(r1)), "random bytes");
	ok(crypto_random(r2, sizeof(r2)), "more random bytes");
	ok(memcmp(r1, r2, sizeof(r1)) != 0, "two draws differ");
}

int main(void)
{
	test_round_trip();
	test_parse_fields();
	test_malformed();
	test_max_channels();
	test_digest_input();
	test_crypto();
	return done_testing();
}
