/* Unit tests of iplimit.c: addresses of both families, loopback and the
 * trusted list, and the per-address count against a plain reference over
 * many random takes and gives. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "iplimit.h"

static struct ts_ipaddr addr(const char *s)
{
	struct ts_ipaddr a;
	assert_true(ts_ipaddr_parse(&a, s, strlen(s)));
	return a;
}

static void test_addresses(void **state)
{
	(void)state;
	struct ts_ipaddr a;
	assert_false(ts_ipaddr_parse(&a, "", 0));
	assert_false(ts_ipaddr_parse(&a, "300.1.1.1", 9));
	assert_false(ts_ipaddr_parse(&a, "example.org", 11));
	/* an IPv4 client is the same whichever socket family it came on */
	struct sockaddr_in in = { .sin_family = AF_INET };
	inet_pton(AF_INET, "192.0.2.7", &in.sin_addr);
	assert_true(ts_ipaddr_from(&a, (struct sockaddr *)&in));
	struct ts_ipaddr m = addr("::ffff:192.0.2.7"), v4 = addr("192.0.2.7");
	assert_memory_equal(&a, &m, 16);
	assert_memory_equal(&a, &v4, 16);
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr);
	assert_true(ts_ipaddr_from(&a, (struct sockaddr *)&in6));
	struct ts_ipaddr b = addr("2001:db8::1");
	assert_memory_equal(&a, &b, 16);
	struct sockaddr un = { .sa_family = AF_UNIX };
	assert_false(ts_ipaddr_from(&a, &un));

	const char *loop[] = { "127.0.0.1", "127.255.0.9", "::1",
			       "::ffff:127.0.0.1" };
	for (size_t i = 0; i < 4; i++) {
		a = addr(loop[i]);
		assert_true(ts_ipaddr_loopback(&a));
	}
	const char *not_loop[] = { "128.0.0.1", "::2", "10.0.0.1", "::" };
	for (size_t i = 0; i < 4; i++) {
		a = addr(not_loop[i]);
		assert_false(ts_ipaddr_loopback(&a));
	}
	a = addr("10.0.0.5");
	assert_true(ts_ipaddr_listed(&a, "10.0.0.4  10.0.0.5"));
	assert_true(ts_ipaddr_listed(&a, "\t::ffff:10.0.0.5 "));
	assert_false(ts_ipaddr_listed(&a, "10.0.0.50 10.0.0.4"));
	assert_false(ts_ipaddr_listed(&a, NULL));
	assert_false(ts_ipaddr_listed(&a, ""));
}

static void test_cap(void **state)
{
	(void)state;
	struct ts_iplimit t;
	ts_iplimit_init(&t);
	struct ts_ipaddr a = addr("192.0.2.1"), b = addr("2001:db8::5");
	assert_true(ts_iplimit_take(&t, &a, 2));
	assert_true(ts_iplimit_take(&t, &a, 2));
	assert_false(ts_iplimit_take(&t, &a, 2));
	assert_true(ts_iplimit_take(&t, &b, 2));
	assert_int_equal(ts_iplimit_count(&t, &a), 2);
	ts_iplimit_give(&t, &a);
	assert_true(ts_iplimit_take(&t, &a, 2));
	assert_false(ts_iplimit_take(&t, &b, 0));
	ts_iplimit_give(&t, &a);
	ts_iplimit_give(&t, &a);
	ts_iplimit_give(&t, &a); /* not counted any more: nothing */
	assert_int_equal(ts_iplimit_count(&t, &a), 0);
	assert_int_equal(ts_iplimit_count(&t, &b), 1);
	ts_iplimit_destroy(&t);
}

/* Many addresses coming and going (tombstones, growth) against an array
 * of counts. */
static void test_random_against_reference(void **state)
{
	(void)state;
	enum { N = 600, MAX = 3 };
	static unsigned ref[N];
	memset(ref, 0, sizeof(ref));
	struct ts_iplimit t;
	ts_iplimit_init(&t);
	unsigned seed = 12345;
	for (int step = 0; step < 200000; step++) {
		seed = seed * 1103515245u + 12345u;
		unsigned i = (seed >> 8) % N;
		struct ts_ipaddr a;
		memset(&a, 0, sizeof(a));
		memcpy(a.b, &i, sizeof(i));
		a.b[15] = 7;
		if ((seed >> 20) & 1) {
			bool ok = ts_iplimit_take(&t, &a, MAX);
			assert_int_equal(ok, ref[i] < MAX);
			ref[i] += ok;
		} else {
			ts_iplimit_give(&t, &a);
			ref[i] -= ref[i] > 0;
		}
		if (step % 997 == 0)
			for (unsigned k = 0; k < N; k++) {
				struct ts_ipaddr b;
				memset(&b, 0, sizeof(b));
				memcpy(b.b, &k, sizeof(k));
				b.b[15] = 7;
				assert_int_equal(ts_iplimit_count(&t, &b),
						 ref[k]);
			}
	}
	assert_true(t.cap <= 4096); /* tombstones do not grow it forever */
	ts_iplimit_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_random_against_reference),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
