/*
 * cursor.h — the opaque resume cursor: format and parse (pure).
 *
 * A cursor names, for one (tenant, org, channel set), the last per-channel
 * sequence number a client has seen:
 *
 *     <epoch>-<digest>-<seq>[.<seq>]...[-<proof>]
 *
 * epoch: 8 lowercase hex digits identifying the database's event log (a
 * restored or recreated database has another one, so old cursors reset);
 * digest: 12 lowercase hex digits, the first 6 bytes of SHA-256 over the
 * scope and the channel set (see cursor_digest_input); seqs: decimal, no
 * leading zeros, one per channel in byte order (strcmp) of channel names.
 * A single-channel cursor is also the identity of an event (the "id" that
 * publish returns); sql/0001_core.sql builds the same string.
 * proof: streams opened with a ticket end every cursor with 16 lowercase
 * hex digits, the first 8 bytes of HMAC-SHA256(key shared through the
 * database, ticket hash || the cursor before "-<proof>"): only a stream of
 * that ticket can have produced it, so presenting it lets the ticket be
 * used again (SPEC §2).
 */
#ifndef HERALD_CURSOR_H
#define HERALD_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "compiler.h"
#include "util/buf.h"

#define CURSOR_EPOCH_LEN 8
#define CURSOR_DIGEST_LEN 12
#define CURSOR_MAX_CHANNELS 64
#define CURSOR_PROOF_LEN 16

struct cursor {
	char epoch[CURSOR_EPOCH_LEN + 1];
	char digest[CURSOR_DIGEST_LEN + 1];
	size_t nseq;
	int64_t seq[CURSOR_MAX_CHANNELS];
	char proof[CURSOR_PROOF_LEN + 1]; /* "" when the cursor has none */
	size_t body_len;                  /* bytes before "-<proof>" */
};

/* Parses s (n bytes). false for anything malformed: wrong lengths, upper
 * case hex, leading zeros, empty or too many seqs, a seq above INT64_MAX,
 * trailing bytes. On false *c is unspecified. */
bool cursor_parse(const char *s, size_t n, struct cursor *c) HERALD_MUSTCHECK;
/* Appends the textual cursor. */
void cursor_format(struct buf *b, const char *epoch, const char *digest,
                   const int64_t *seq, size_t nseq);
/* The proof of cursor body (n bytes, without "-<proof>") for a ticket:
 * 16 lowercase hex digits and a NUL into out. */
void cursor_prove(const unsigned char key[32], const unsigned char ticket_hash[32],
                  const char *body, size_t n, char out[CURSOR_PROOF_LEN + 1]);

/* Appends the bytes whose SHA-256 gives the digest: for tenant, org and each
 * channel in the given (already sorted) order, "<byte length>:<bytes>". */
void cursor_digest_input(struct buf *b, const char *tenant, const char *org,
                         const char *const *channels, size_t nchannels);

#endif
