/*
 * tls.h — HTTPS material (SPEC §6 tls_cert / tls_key).
 *
 * Owns reading the PEM certificate chain and private key at start and
 * checking them with GnuTLS — both parse, the key belongs to the
 * certificate, the priority string is valid — so that a bad or
 * mismatched pair stops herald with a clear message instead of leaving a
 * listener no client can handshake with.
 */
#ifndef HERALD_TLS_H
#define HERALD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include "compiler.h"

/* TLS 1.2 and 1.3 with GnuTLS's NORMAL ciphers and groups. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct tls_material {
	char *cert, *key; /* PEM, NUL-terminated; NULL when HTTPS is off */
};

bool tls_load(const char *cert_file, const char *key_file, struct tls_material *m, char *err,
              size_t errlen) HERALD_MUSTCHECK;
void tls_free(struct tls_material *m);

#endif
