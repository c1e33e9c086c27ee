/*
 * tls.c — HTTPS material (see tls.h).
 */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"
#include "util/buf.h"

#define PEM_MAX (1 << 20)

static bool read_file(const char *path, const char *what, char **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "cannot open %s %s: %s", what, path, strerror(errno));
		return false;
	}
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len <= PEM_MAX)
		buf_append(&b, chunk, n);
	bool ok = !ferror(f) && b.len > 0 && b.len <= PEM_MAX;
	fclose(f);
	if (!ok) {
		snprintf(err, errlen, "%s %s is empty, unreadable or over 1 MiB", what, path);
		buf_free(&b);
		return false;
	}
	*out = buf_steal(&b);
	return true;
}

/* The pair as GnuTLS will use it: parses both and matches key to cert. */
static bool check_pair(const struct tls_material *m, char *err, size_t errlen)
{
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
	const char *where;
	if (gnutls_certificate_allocate_credentials(&cred) < 0) {
		snprintf(err, errlen, "GnuTLS cannot allocate credentials");
		return false;
	}
	gnutls_datum_t c = {(unsigned char *)m->cert, (unsigned)strlen(m->cert)};
	gnutls_datum_t k = {(unsigned char *)m->key, (unsigned)strlen(m->key)};
	int rc = gnutls_certificate_set_x509_key_mem2(cred, &c, &k, GNUTLS_X509_FMT_PEM, NULL, 0);
	gnutls_certificate_free_credentials(cred);
	if (rc < 0) {
		snprintf(err, errlen, "tls_cert/tls_key: %s", gnutls_strerror(rc));
		return false;
	}
	rc = gnutls_priority_init(&prio, TLS_PRIORITIES, &where);
	if (rc < 0) {
		snprintf(err, errlen, "TLS priorities at \"%s\": %s", where, gnutls_strerror(rc));
		return false;
	}
	gnutls_priority_deinit(prio);
	return true;
}

bool tls_load(const char *cert_file, const char *key_file, struct tls_material *m, char *err,
              size_t errlen)
{
	memset(m, 0, sizeof(*m));
	if (!cert_file || !key_file) {
		snprintf(err, errlen, "HTTPS needs both tls_cert and tls_key");
		return false;
	}
	if (read_file(cert_file, "tls_cert", &m->cert, err, errlen) &&
	    read_file(key_file, "tls_key", &m->key, err, errlen) && check_pair(m, err, errlen))
		return true;
	tls_free(m);
	return false;
}

void tls_free(struct tls_material *m)
{
	if (m->key) /* our copy of the private key does not linger in freed memory */
		explicit_bzero(m->key, strlen(m->key));
	free(m->cert);
	free(m->key);
	memset(m, 0, sizeof(*m));
}
