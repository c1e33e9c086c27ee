/*
 * crypto.c — random bytes, SHA-256 and constant-time comparison.
 *
 * Owns herald's only use of GnuTLS outside TLS setup, so token handling
 * has one audited home. SHA-256 matches PostgreSQL's sha256(), which the
 * SQL side uses to store the same token hashes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "crypto.h"

bool crypto_random(void *out, size_t n)
{
	return gnutls_rnd(GNUTLS_RND_RANDOM, out, n) == 0;
}

void crypto_sha256(const void *data, size_t n, unsigned char out[CRYPTO_SHA256_LEN])
{
	/* Hashing in memory fails only if the library itself is broken; going
	 * on would compare tokens against garbage. */
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, data, n, out) != 0) {
		fputs("herald: gnutls SHA-256 failed\n", stderr);
		abort();
	}
}

bool crypto_equal(const void *a, const void *b, size_t n)
{
	return gnutls_memcmp(a, b, n) == 0;
}

void crypto_hex(const unsigned char *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

void crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t n,
                        unsigned char out[CRYPTO_SHA256_LEN])
{
	if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, keylen, data, n, out) != 0)
		abort(); /* cannot fail for SHA-256 short of memory exhaustion */
}
