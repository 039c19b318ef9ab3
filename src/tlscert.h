/* tlscert.h: the certificate and key that HTTPS connections get, which a
 * reload can replace (certificate renewals) without a restart.
 *
 * libmicrohttpd asks for them at each handshake (its
 * MHD_OPTION_HTTPS_CERT_CALLBACK, GnuTLS's retrieve function).  A
 * connection may refer to the pair it got for as long as it lives, so a
 * replaced pair is kept until ts_tls_free (a few KiB per renewal), and an
 * unchanged one (the same PEM text) is not replaced at all.
 *
 * Built only with GnuTLS's headers (HAVE_GNUTLS); without them
 * ts_tls_available() is false and the daemon passes the PEM text to
 * libmicrohttpd at start instead (no renewal without a restart).
 *
 * Threads: set from main, read from libmicrohttpd's thread; one mutex. */
#ifndef TS_TLSCERT_H
#define TS_TLSCERT_H

#include <stdbool.h>
#include <stddef.h>

struct ts_tls;

bool ts_tls_available(void);

/* A holder with the pair of `cert_pem` (a certificate, or a chain with the
 * server's first) and `key_pem`.  NULL with one line in err: not PEM, or
 * the key is not the certificate's. */
struct ts_tls *ts_tls_new(const char *cert_pem, const char *key_pem, char *err,
			  size_t errlen);

/* Check a new pair and make it the one new handshakes get.  The same
 * text as now: nothing changes (*changed false).  0, or -1 with one line
 * in err (the pair in use stays). */
int ts_tls_set(struct ts_tls *t, const char *cert_pem, const char *key_pem,
	       bool *changed, char *err, size_t errlen);

/* The pair new handshakes get (GnuTLS types, as void to keep GnuTLS's
 * headers out of this one): *pcert (gnutls_pcert_st *), *npcert, *key
 * (gnutls_privkey_t).  Valid until ts_tls_free.  libmicrohttpd's thread. */
void ts_tls_get(struct ts_tls *t, void **pcert, unsigned *npcert, void **key);

void ts_tls_free(struct ts_tls *t);

#endif
