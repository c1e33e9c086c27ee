/*
 * crypto.h — randomness, SHA-256 and constant-time comparison (GnuTLS's
 * other includer is tls.c, which checks the HTTPS material).
 */
#ifndef HERALD_CRYPTO_H
#define HERALD_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include "compiler.h"

#define CRYPTO_SHA256_LEN 32

bool crypto_random(void *out, size_t n) HERALD_MUSTCHECK;
void crypto_sha256(const void *data, size_t n, unsigned char out[CRYPTO_SHA256_LEN]);
bool crypto_equal(const void *a, const void *b, size_t n);
void crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t n,
                        unsigned char out[CRYPTO_SHA256_LEN]);
/* Lowercase hex of n bytes into out (2n + 1 bytes). */
void crypto_hex(const unsigned char *in, size_t n, char *out);

#endif
