/*
 * cursor.c — text form of resume cursors (pure).
 *
 * Owns the syntax "<epoch>-<digest>-<seq>[.<seq>]..." and the bytes the
 * digest is computed over. Parsing is strict (one spelling per cursor), so
 * a cursor can be compared as a string and an altered one never parses to
 * the same position. Whether a cursor is still resumable is replay's call.
 */
#include <inttypes.h>
#include <string.h>

#include "crypto.h"
#include "cursor.h"

static bool lower_hex(const char *s, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
		out[i] = s[i];
	}
	out[n] = '\0';
	return true;
}

/* One seq from s[*pos..n): digits without a leading zero, at most
 * INT64_MAX. Leaves *pos on the byte after the digits. */
static bool parse_seq(const char *s, size_t n, size_t *pos, int64_t *out)
{
	size_t i = *pos;
	uint64_t v = 0;

	if (i == n || s[i] < '0' || s[i] > '9')
		return false;
	if (s[i] == '0' && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9')
		return false;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (v > ((uint64_t)INT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*pos = i;
	*out = (int64_t)v;
	return true;
}

bool cursor_parse(const char *s, size_t n, struct cursor *c)
{
	const size_t head = CURSOR_EPOCH_LEN + 1 + CURSOR_DIGEST_LEN + 1;
	size_t pos = head;

	if (n <= head || s[CURSOR_EPOCH_LEN] != '-' || s[head - 1] != '-')
		return false;
	if (!lower_hex(s, CURSOR_EPOCH_LEN, c->epoch) ||
	    !lower_hex(s + CURSOR_EPOCH_LEN + 1, CURSOR_DIGEST_LEN, c->digest))
		return false;
	c->nseq = 0;
	c->proof[0] = '\0';
	for (;;) {
		if (c->nseq == CURSOR_MAX_CHANNELS)
			return false;
		if (!parse_seq(s, n, &pos, &c->seq[c->nseq]))
			return false;
		c->nseq++;
		c->body_len = pos;
		if (pos == n)
			return true;
		if (s[pos] == '-')
			return n - pos - 1 == CURSOR_PROOF_LEN &&
			       lower_hex(s + pos + 1, CURSOR_PROOF_LEN, c->proof);
		if (s[pos] != '.')
			return false;
		pos++;
	}
}

void cursor_format(struct buf *b, const char *epoch, const char *digest,
                   const int64_t *seq, size_t nseq)
{
	size_t i;

	buf_append_str(b, epoch);
	buf_append_char(b, '-');
	buf_append_str(b, digest);
	for (i = 0; i < nseq; i++) {
		buf_append_char(b, i == 0 ? '-' : '.');
		buf_printf(b, "%" PRId64, seq[i]);
	}
}

static void length_prefixed(struct buf *b, const char *s)
{
	size_t n = strlen(s);

	buf_append_u64(b, n);
	buf_append_char(b, ':');
	buf_append(b, s, n);
}

void cursor_digest_input(struct buf *b, const char *tenant, const char *org,
                         const char *const *channels, size_t nchannels)
{
	size_t i;

	length_prefixed(b, tenant);
	length_prefixed(b, org);
	for (i = 0; i < nchannels; i++)
		length_prefixed(b, channels[i]);
}

void cursor_prove(const unsigned char key[32], const unsigned char ticket_hash[32],
                  const char *body, size_t n, char out[CURSOR_PROOF_LEN + 1])
{
	struct buf msg = BUF_INIT;
	unsigned char mac[CRYPTO_SHA256_LEN];

	buf_append(&msg, ticket_hash, 32);
	buf_append(&msg, body, n);
	crypto_hmac_sha256(key, 32, msg.data, msg.len, mac);
	crypto_hex(mac, CURSOR_PROOF_LEN / 2, out);
	buf_free(&msg);
}
