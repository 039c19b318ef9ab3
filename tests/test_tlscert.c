/* Unit tests of tlscert.c: a pair is checked (PEM, the key the
 * certificate's), a renewal replaces it, the same text changes nothing, a
 * bad new pair leaves the old one in use. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "tlscert.h"

/* Test certificates (EC P-256, self-signed, valid until 2126), made with:
 * openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes
 *   -keyout X.key -out X.pem -days 36500 -subj /CN=X */
static const char a_cert[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBbzCCARWgAwIBAgIUBgpZxngFUm2HlmojH9UNkLGGVaowCgYIKoZIzj0EAwIw\n"
	"DDEKMAgGA1UEAwwBYTAgFw0yNjEyMDIxMTIyMDRaGA8yMTI2MTEwODExMjIwNFow\n"
	"DDEKMAgGA1UEAwwBYTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNzvaOgY5FrL\n"
	"H1N1lIhmLsEH9xZdLLBUsdCbiBIZplL83xfvIunfpR9hIwwEQU95zwbq/N1oi1z7\n"
	"zzBPTQlaA+ejUzBRMB0GA1UdDgQWBBSwB5HTuL0kqOafqlq2zTI7T6H4TzAfBgNV\n"
	"HSMEGDAWgBSwB5HTuL0kqOafqlq2zTI7T6H4TzAPBgNVHRMBAf8EBTADAQH/MAoG\n"
	"CCqGSM49BAMCA0gAMEUCIF5JLgwr7hCyccQnn0jwDV+76d6xae5q7C8cl/ljM2y8\n"
	"AiEAthmNe7t1JkG254FpQ3w3FpAIzZ+vO3rlXYIUkPS1tP4=\n"
	"-----END CERTIFICATE-----\n";

static const char a_key[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgS19DxeGJAvPqEuB5\n"
	"ySAg45xc0mIKc0i37TeLx7rokmOhRANCAATc72joGORayx9TdZSIZi7BB/cWXSyw\n"
	"VLHQm4gSGaZS/N8X7yLp36UfYSMMBEFPec8G6vzdaItc+88wT00JWgPn\n"
	"-----END PRIVATE KEY-----\n";

static const char b_cert[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBbzCCARWgAwIBAgIUYSHYG+Rtm+3WFizXny9w4b6tpHkwCgYIKoZIzj0EAwIw\n"
	"DDEKMAgGA1UEAwwBYjAgFw0yNjEyMDIxMTIyMDRaGA8yMTI2MTEwODExMjIwNFow\n"
	"DDEKMAgGA1UEAwwBYjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABAVSLqEGX0Kx\n"
	"JAEBUV3HDO2CBuEqKdy9h60Hsy4m5fuewMdWVuAyRTGGsRKvd4Mp35sYROPvuB3N\n"
	"YzhyeCD/NoyjUzBRMB0GA1UdDgQWBBQTVPwcZoh5WDJJZ+JogO5M/qDrbTAfBgNV\n"
	"HSMEGDAWgBQTVPwcZoh5WDJJZ+JogO5M/qDrbTAPBgNVHRMBAf8EBTADAQH/MAoG\n"
	"CCqGSM49BAMCA0gAMEUCIGDNOU9jYpu2b2GR9/WNGTQuBM3zkBosvbluU//Jgyil\n"
	"AiEAt2kUTBF2KxjtfW7M5ASBDVP6HumJMkmVLhdBgxnk51E=\n"
	"-----END CERTIFICATE-----\n";

static const char b_key[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgnvZKP6LwH1e6LGIt\n"
	"Nezw9uQAjW8pdhW0QU6Vz8SYK+WhRANCAAQFUi6hBl9CsSQBAVFdxwztggbhKinc\n"
	"vYetB7MuJuX7nsDHVlbgMkUxhrESr3eDKd+bGETj77gdzWM4cngg/zaM\n"
	"-----END PRIVATE KEY-----\n";

static void test_pairs(void **state)
{
	(void)state;
	char err[TS_ERR_MAX];
	if (!ts_tls_available()) {
		assert_null(ts_tls_new(a_cert, a_key, err, sizeof(err)));
		skip();
	}
	assert_null(ts_tls_new(a_cert, b_key, err, sizeof(err)));
	assert_non_null(strstr(err, "not the key"));
	assert_null(ts_tls_new("nonsense", a_key, err, sizeof(err)));
	assert_non_null(strstr(err, "tls_cert"));
	assert_null(ts_tls_new(a_cert, "-----BEGIN PRIVATE KEY-----\nx\n", err,
			       sizeof(err)));
	assert_non_null(strstr(err, "tls_key"));

	struct ts_tls *t = ts_tls_new(a_cert, a_key, err, sizeof(err));
	assert_non_null(t);
	void *pc1, *key1, *pc2, *key2;
	unsigned n1, n2;
	ts_tls_get(t, &pc1, &n1, &key1);
	assert_int_equal(n1, 1);
	bool changed = true;
	assert_int_equal(ts_tls_set(t, a_cert, a_key, &changed, err,
				    sizeof(err)),
			 0);
	assert_false(changed);
	ts_tls_get(t, &pc2, &n2, &key2);
	assert_ptr_equal(pc1, pc2);
	/* a bad renewal: refused, the pair in use stays */
	assert_int_equal(ts_tls_set(t, b_cert, a_key, &changed, err,
				    sizeof(err)),
			 -1);
	assert_false(changed);
	ts_tls_get(t, &pc2, &n2, &key2);
	assert_ptr_equal(key1, key2);
	/* a renewal: new handshakes get it; the old pair stays valid */
	assert_int_equal(ts_tls_set(t, b_cert, b_key, &changed, err,
				    sizeof(err)),
			 0);
	assert_true(changed);
	ts_tls_get(t, &pc2, &n2, &key2);
	assert_ptr_not_equal(pc1, pc2);
	assert_ptr_not_equal(key1, key2);
	/* a chain: both certificates */
	char chain[4096];
	snprintf(chain, sizeof(chain), "%s%s", a_cert, b_cert);
	assert_int_equal(ts_tls_set(t, chain, a_key, &changed, err,
				    sizeof(err)),
			 0);
	ts_tls_get(t, &pc2, &n2, &key2);
	assert_int_equal(n2, 2);
	ts_tls_free(t); /* every pair (ASan: no leak) */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pairs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
