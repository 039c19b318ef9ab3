#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "tlscert.h"

#ifdef HAVE_GNUTLS
#include <pthread.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#define TS_TLS_CHAIN_MAX 16

/* One certificate chain and its key, and the PEM text they came from. */
struct pair {
	gnutls_pcert_st pcert[TS_TLS_CHAIN_MAX];
	unsigned npcert;
	gnutls_privkey_t key;
	char *cert_pem, *key_pem;
	struct pair *older; /* replaced ones, kept (see tlscert.h) */
};

struct ts_tls {
	pthread_mutex_t lock;
	struct pair *cur; /* with the replaced ones behind it */
};

bool ts_tls_available(void)
{
	return true;
}

static void pair_free(struct pair *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->npcert; i++)
		gnutls_pcert_deinit(&p->pcert[i]);
	if (p->key)
		gnutls_privkey_deinit(p->key);
	free(p->cert_pem);
	free(p->key_pem);
	free(p);
}

/* Does `key` go with the certificate's public key?  Compared as the
 * public keys' DER. */
static bool key_matches(gnutls_pcert_st *pc, gnutls_privkey_t key)
{
	gnutls_pubkey_t pub;
	if (gnutls_pubkey_init(&pub) < 0)
		return false;
	gnutls_datum_t a = { NULL, 0 }, b = { NULL, 0 };
	bool same = gnutls_pubkey_import_privkey(pub, key, 0, 0) >= 0 &&
		    gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &a) >= 0 &&
		    gnutls_pubkey_export2(pc->pubkey, GNUTLS_X509_FMT_DER,
					  &b) >= 0 &&
		    a.size == b.size && memcmp(a.data, b.data, a.size) == 0;
	gnutls_free(a.data);
	gnutls_free(b.data);
	gnutls_pubkey_deinit(pub);
	return same;
}

static struct pair *pair_new(const char *cert_pem, const char *key_pem,
			     char *err, size_t errlen)
{
	struct pair *p = calloc(1, sizeof(*p));
	if (!p || !(p->cert_pem = strdup(cert_pem)) ||
	    !(p->key_pem = strdup(key_pem))) {
		pair_free(p);
		ts_config_err(err, errlen, "out of memory");
		return NULL;
	}
	gnutls_datum_t c = { (unsigned char *)p->cert_pem,
			     (unsigned)strlen(p->cert_pem) };
	gnutls_datum_t k = { (unsigned char *)p->key_pem,
			     (unsigned)strlen(p->key_pem) };
	unsigned n = TS_TLS_CHAIN_MAX;
	int rc = gnutls_pcert_list_import_x509_raw(p->pcert, &n, &c,
						   GNUTLS_X509_FMT_PEM, 0);
	if (rc < 0 || n == 0) {
		ts_config_err(err, errlen,
			      "tls_cert: not a PEM certificate "
			      "(or a chain of more than %d): %s",
			      TS_TLS_CHAIN_MAX, gnutls_strerror(rc));
		pair_free(p);
		return NULL;
	}
	p->npcert = n;
	rc = gnutls_privkey_init(&p->key);
	if (rc >= 0)
		rc = gnutls_privkey_import_x509_raw(p->key, &k,
						    GNUTLS_X509_FMT_PEM, NULL,
						    0);
	if (rc < 0) {
		ts_config_err(err, errlen,
			      "tls_key: not a PEM private key "
			      "(or one with a passphrase): %s",
			      gnutls_strerror(rc));
		pair_free(p);
		return NULL;
	}
	if (!key_matches(&p->pcert[0], p->key)) {
		ts_config_err(err, errlen,
			      "tls_key is not the key of "
			      "tls_cert's certificate");
		pair_free(p);
		return NULL;
	}
	return p;
}

struct ts_tls *ts_tls_new(const char *cert_pem, const char *key_pem, char *err,
			  size_t errlen)
{
	struct ts_tls *t = calloc(1, sizeof(*t));
	if (!t || pthread_mutex_init(&t->lock, NULL) != 0) {
		free(t);
		ts_config_err(err, errlen, "out of memory");
		return NULL;
	}
	t->cur = pair_new(cert_pem, key_pem, err, errlen);
	if (!t->cur) {
		ts_tls_free(t);
		return NULL;
	}
	return t;
}

int ts_tls_set(struct ts_tls *t, const char *cert_pem, const char *key_pem,
	       bool *changed, char *err, size_t errlen)
{
	*changed = false;
	pthread_mutex_lock(&t->lock);
	bool same = strcmp(t->cur->cert_pem, cert_pem) == 0 &&
		    strcmp(t->cur->key_pem, key_pem) == 0;
	pthread_mutex_unlock(&t->lock);
	if (same)
		return 0;
	struct pair *p = pair_new(cert_pem, key_pem, err, errlen);
	if (!p)
		return -1;
	pthread_mutex_lock(&t->lock);
	p->older = t->cur;
	t->cur = p;
	pthread_mutex_unlock(&t->lock);
	*changed = true;
	return 0;
}

void ts_tls_get(struct ts_tls *t, void **pcert, unsigned *npcert, void **key)
{
	pthread_mutex_lock(&t->lock);
	*pcert = t->cur->pcert;
	*npcert = t->cur->npcert;
	*key = t->cur->key;
	pthread_mutex_unlock(&t->lock);
}

void ts_tls_free(struct ts_tls *t)
{
	if (!t)
		return;
	for (struct pair *p = t->cur, *older; p; p = older) {
		older = p->older;
		pair_free(p);
	}
	pthread_mutex_destroy(&t->lock);
	free(t);
}

#else /* !HAVE_GNUTLS */

bool ts_tls_available(void)
{
	return false;
}

struct ts_tls *ts_tls_new(const char *cert_pem, const char *key_pem, char *err,
			  size_t errlen)
{
	(void)cert_pem;
	(void)key_pem;
	ts_config_err(err, errlen, "built without GnuTLS's headers");
	return NULL;
}

int ts_tls_set(struct ts_tls *t, const char *cert_pem, const char *key_pem,
	       bool *changed, char *err, size_t errlen)
{
	(void)t;
	(void)cert_pem;
	(void)key_pem;
	*changed = false;
	ts_config_err(err, errlen, "built without GnuTLS's headers");
	return -1;
}

void ts_tls_get(struct ts_tls *t, void **pcert, unsigned *npcert, void **key)
{
	(void)t;
	*pcert = NULL;
	*npcert = 0;
	*key = NULL;
}

void ts_tls_free(struct ts_tls *t)
{
	(void)t;
}

#endif
