/* test_buf.c: unit tests of the byte buffer (src/buf.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* Each test gets a fresh empty buffer in *state; the teardown frees it, so
 * a failing assertion leaks nothing. */
static int setup_buf(void **state)
{
	struct ts_buf *b = calloc(1, sizeof(*b));
	if (!b)
		return -1;
	*b = (struct ts_buf)TS_BUF_INIT;
	*state = b;
	return 0;
}

static int teardown_buf(void **state)
{
	struct ts_buf *b = *state;
	ts_buf_free(b);
	free(b);
	return 0;
}

static void assert_buf_eq(const struct ts_buf *b, const void *exp, size_t n)
{
	assert_int_equal(b->len, n);
	assert_true(b->cap >= b->len);
	if (n)
		assert_memory_equal(b->data, exp, n);
}

#define ASSERT_BUF(b, lit) assert_buf_eq((b), (lit), sizeof(lit) - 1)

static void test_init_is_empty(void **state)
{
	struct ts_buf *b = *state;
	assert_null(b->data);
	assert_int_equal(b->len, 0);
	assert_int_equal(b->cap, 0);
	/* nothing to make room for: no allocation needed, none made */
	assert_int_equal(ts_buf_reserve(b, 0), 0);
	assert_int_equal(b->len, 0);
	/* appending nothing (even from NULL) is a no-op */
	assert_int_equal(ts_buf_append(b, NULL, 0), 0);
	assert_int_equal(b->len, 0);
	/* free accepts a never-used buffer, and twice */
	ts_buf_free(b);
	ts_buf_free(b);
	assert_null(b->data);
}

static void test_append_and_puts(void **state)
{
	struct ts_buf *b = *state;
	assert_int_equal(ts_buf_append(b, "abc", 3), 0);
	ASSERT_BUF(b, "abc");
	assert_int_equal(ts_buf_puts(b, "de"), 0);
	ASSERT_BUF(b, "abcde");
	assert_int_equal(ts_buf_puts(b, ""), 0);
	ASSERT_BUF(b, "abcde");
	/* binary data with NULs */
	assert_int_equal(ts_buf_append(b, "\0x\0", 3), 0);
	ASSERT_BUF(b, "abcde\0x\0");
}

static void test_reset_keeps_storage(void **state)
{
	struct ts_buf *b = *state;
	assert_int_equal(ts_buf_puts(b, "hello"), 0);
	size_t cap = b->cap;
	char *data = b->data;
	ts_buf_reset(b);
	assert_int_equal(b->len, 0);
	assert_int_equal(b->cap, cap);
	assert_ptr_equal(b->data, data);
	assert_int_equal(ts_buf_puts(b, "x"), 0);
	ASSERT_BUF(b, "x");
}

static void test_free_then_reuse(void **state)
{
	struct ts_buf *b = *state;
	assert_int_equal(ts_buf_puts(b, "one"), 0);
	ts_buf_free(b);
	assert_null(b->data);
	assert_int_equal(b->len, 0);
	assert_int_equal(b->cap, 0);
	assert_int_equal(ts_buf_puts(b, "two"), 0);
	ASSERT_BUF(b, "two");
}

static void test_printf(void **state)
{
	struct ts_buf *b = *state;
	assert_int_equal(ts_buf_printf(b, "%s=%d", "a", 42), 0);
	ASSERT_BUF(b, "a=42");
	/* appends, and an empty expansion adds nothing */
	assert_int_equal(ts_buf_printf(b, "%s", ""), 0);
	ASSERT_BUF(b, "a=42");
	assert_int_equal(ts_buf_printf(b, ";%u;%c", 7u, 'z'), 0);
	ASSERT_BUF(b, "a=42;7;z");
}

/* An expansion longer than the current capacity: the buffer grows and the
 * whole text lands, nothing cut at the old capacity. */
static void test_printf_grows(void **state)
{
	struct ts_buf *b = *state;
	char big[1000];
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';

	assert_int_equal(ts_buf_puts(b, "<"), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(ts_buf_printf(b, "%s|%d", big, i), 0);
	assert_int_equal(b->len, 1 + 5 * (999 + 2));
	assert_int_equal(b->data[0], '<');
	for (int i = 0; i < 5; i++) {
		const char *p = b->data + 1 + (size_t)i * 1001;
		for (size_t j = 0; j < 999; j++)
			assert_int_equal(p[j], 'q');
		assert_int_equal(p[999], '|');
		assert_int_equal(p[1000], '0' + i);
	}
}

static void test_u64(void **state)
{
	struct ts_buf *b = *state;
	static const struct {
		uint64_t v;
		const char *s;
	} cases[] = {
		{ 0, "0" },
		{ 1, "1" },
		{ 9, "9" },
		{ 10, "10" },
		{ 1734, "1734" },
		{ 4294967295u, "4294967295" },
		{ 4294967296u, "4294967296" },
		{ 9223372036854775807u, "9223372036854775807" },
		{ 10000000000000000000u, "10000000000000000000" },
		{ UINT64_MAX, "18446744073709551615" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ts_buf_reset(b);
		assert_int_equal(ts_buf_u64(b, cases[i].v), 0);
		assert_buf_eq(b, cases[i].s, strlen(cases[i].s));
	}
	/* appends after existing content */
	ts_buf_reset(b);
	assert_int_equal(ts_buf_puts(b, "id: "), 0);
	assert_int_equal(ts_buf_u64(b, UINT64_MAX), 0);
	assert_int_equal(ts_buf_puts(b, ":"), 0);
	assert_int_equal(ts_buf_u64(b, 0), 0);
	ASSERT_BUF(b, "id: 18446744073709551615:0");
}

static void check_u64(struct ts_buf *b, uint64_t v)
{
	char exp[32];
	ts_buf_reset(b);
	assert_int_equal(ts_buf_u64(b, v), 0);
	int n = snprintf(exp, sizeof(exp), "%" PRIu64, v);
	assert_buf_eq(b, exp, (size_t)n);
}

/* Every value near a power of ten or of two (where the digit count, found
 * from the bit length, changes), and random ones of every length, against
 * printf. */
static void test_u64_against_printf(void **state)
{
	struct ts_buf *b = *state;
	uint64_t p = 1;
	for (int k = 0; k < 20; k++, p *= 10)
		for (int d = -2; d <= 2; d++)
			check_u64(b, p + (uint64_t)(int64_t)d);
	for (int k = 0; k < 64; k++)
		for (int d = -1; d <= 1; d++)
			check_u64(b, (UINT64_C(1) << k) + (uint64_t)(int64_t)d);
	uint64_t x = 88172645463325252u; /* xorshift64 */
	for (int i = 0; i < 200000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		check_u64(b, x >> (i % 64));
	}
}

static void test_consume(void **state)
{
	struct ts_buf *b = *state;
	assert_int_equal(ts_buf_puts(b, "abcdef"), 0);

	ts_buf_consume(b, 0);
	ASSERT_BUF(b, "abcdef");
	ts_buf_consume(b, 2); /* partial */
	ASSERT_BUF(b, "cdef");
	assert_int_equal(ts_buf_puts(b, "gh"),
			 0); /* still appends at the end */
	ASSERT_BUF(b, "cdefgh");
	ts_buf_consume(b, 5);
	ASSERT_BUF(b, "h");
	ts_buf_consume(b, 1); /* exactly all */
	assert_int_equal(b->len, 0);

	assert_int_equal(ts_buf_puts(b, "xyz"), 0);
	ts_buf_consume(b, 100); /* more than there is */
	assert_int_equal(b->len, 0);
	ts_buf_consume(b, 1); /* on empty */
	assert_int_equal(b->len, 0);
	assert_int_equal(ts_buf_puts(b, "k"), 0);
	ASSERT_BUF(b, "k");
	ts_buf_consume(b, SIZE_MAX);
	assert_int_equal(b->len, 0);
}

/* consume on a never-allocated buffer must not touch data */
static void test_consume_empty_unallocated(void **state)
{
	struct ts_buf *b = *state;
	ts_buf_consume(b, 0);
	ts_buf_consume(b, 10);
	assert_null(b->data);
	assert_int_equal(b->len, 0);
}

static void test_reserve(void **state)
{
	struct ts_buf *b = *state;
	assert_int_equal(ts_buf_reserve(b, 1), 0);
	assert_non_null(b->data);
	assert_true(b->cap >= 1);
	assert_int_equal(b->len, 0);

	assert_int_equal(ts_buf_reserve(b, 100000), 0);
	assert_true(b->cap - b->len >= 100000);
	/* the reserved room is usable without another allocation */
	char *data = b->data;
	size_t cap = b->cap;
	char *blob = malloc(100000);
	assert_non_null(blob);
	memset(blob, 'r', 100000);
	assert_int_equal(ts_buf_append(b, blob, 100000), 0);
	free(blob);
	assert_ptr_equal(b->data, data);
	assert_int_equal(b->cap, cap);
	assert_int_equal(b->len, 100000);

	/* reserving what is already there does not move the data */
	assert_int_equal(ts_buf_reserve(b, b->cap - b->len), 0);
	assert_ptr_equal(b->data, data);
}

static void test_reserve_impossible(void **state)
{
	struct ts_buf *b = *state;
	assert_int_equal(ts_buf_puts(b, "keep"), 0);
	assert_int_equal(ts_buf_reserve(b, SIZE_MAX), -ENOMEM);
	assert_int_equal(ts_buf_reserve(b, SIZE_MAX - 2), -ENOMEM);
	assert_int_equal(ts_buf_reserve(b, SIZE_MAX / 2), -ENOMEM);
	/* a failed reserve leaves the content alone */
	ASSERT_BUF(b, "keep");
	/* append of an impossible size fails the same way (no memcpy) */
	assert_int_equal(ts_buf_append(b, "x", SIZE_MAX), -ENOMEM);
	ASSERT_BUF(b, "keep");
}

/* Many appends of varied sizes: the content is exactly the concatenation,
 * across every reallocation. */
static void test_growth_many_appends(void **state)
{
	struct ts_buf *b = *state;
	size_t total = 0;
	for (unsigned i = 0; i < 5000; i++) {
		char chunk[300];
		size_t n = (i * 37u) % sizeof(chunk);
		for (size_t j = 0; j < n; j++)
			chunk[j] = (char)((total + j) % 251);
		assert_int_equal(ts_buf_append(b, chunk, n), 0);
		total += n;
		assert_int_equal(b->len, total);
		assert_true(b->cap >= b->len);
	}
	for (size_t j = 0; j < total; j++)
		if (b->data[j] != (char)(j % 251))
			fail_msg("byte %zu is %d, want %d", j, b->data[j],
				 (char)(j % 251));
	/* grows geometrically: fewer than twice the bytes held */
	assert_true(b->cap < 2 * total + 64);
}

/* Byte-at-a-time appends mixed with consumes, checked against a plain
 * array model. */
static void test_append_consume_model(void **state)
{
	struct ts_buf *b = *state;
	static char model[1 << 16];
	size_t mlen = 0;
	uint32_t x = 12345;
	for (int step = 0; step < 20000; step++) {
		x = x * 1103515245u + 12345u;
		unsigned op = (x >> 16) % 4;
		if (op < 3) {
			char c = (char)(x >> 8);
			if (mlen == sizeof(model))
				continue;
			model[mlen++] = c;
			assert_int_equal(ts_buf_append(b, &c, 1), 0);
		} else {
			size_t n = (x >> 20) % 8;
			if (n > mlen)
				n = mlen;
			memmove(model, model + n, mlen - n);
			mlen -= n;
			ts_buf_consume(b, n);
		}
		assert_int_equal(b->len, mlen);
	}
	if (mlen)
		assert_memory_equal(b->data, model, mlen);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_buf, teardown_buf)
	const struct CMUnitTest tests[] = {
		T(test_init_is_empty),
		T(test_append_and_puts),
		T(test_reset_keeps_storage),
		T(test_free_then_reuse),
		T(test_printf),
		T(test_printf_grows),
		T(test_u64),
		T(test_u64_against_printf),
		T(test_consume),
		T(test_consume_empty_unallocated),
		T(test_reserve),
		T(test_reserve_impossible),
		T(test_growth_many_appends),
		T(test_append_consume_model),
	};
#undef T
	return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
