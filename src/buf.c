#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

int ts_buf_reserve(struct ts_buf *b, size_t extra)
{
	if (b->cap - b->len >= extra)
		return 0;
	if (extra > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	size_t cap = b->cap ? b->cap : 64;
	while (cap - b->len < extra)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int ts_buf_append(struct ts_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	int rc = ts_buf_reserve(b, n);
	if (rc)
		return rc;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int ts_buf_puts(struct ts_buf *b, const char *s)
{
	return ts_buf_append(b, s, strlen(s));
}

int ts_buf_printf(struct ts_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	int rc = ts_buf_reserve(b, (size_t)n + 1);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

char *ts_u64_put(char *p, uint64_t v)
{
	/* two digits per division, written in place from the end: ids are
	 * formatted for every event */
	static const char pairs[] =
		"00010203040506070809101112131415161718192021222324252627282930"
		"31323334353637383940414243444546474849505152535455565758596061"
		"6263646566676869707172737475767778798081828384858687888990919293"
		"949596979899";
	static const uint64_t pow10[] = { 1u,
					  10u,
					  100u,
					  1000u,
					  10000u,
					  100000u,
					  1000000u,
					  10000000u,
					  100000000u,
					  1000000000u,
					  10000000000u,
					  100000000000u,
					  1000000000000u,
					  10000000000000u,
					  100000000000000u,
					  1000000000000000u,
					  10000000000000000u,
					  100000000000000000u,
					  1000000000000000000u,
					  10000000000000000000u };
	/* digits from the bit length: log10(2) ~ 1233 / 4096 */
	unsigned bits = 64u - (unsigned)__builtin_clzll(v | 1);
	size_t n = (bits * 1233u >> 12) + 1;
	if (n < 20 && v >= pow10[n])
		n++;
	else if (v < pow10[n - 1] && n > 1)
		n--;
	char *end = p + n, *q = end;
	/* 32-bit divisions where the value allows: cheaper */
	while (v > UINT32_MAX) {
		unsigned r = (unsigned)(v % 100);
		v /= 100;
		*--q = pairs[2 * r + 1];
		*--q = pairs[2 * r];
	}
	uint32_t w = (uint32_t)v;
	while (w >= 100) {
		unsigned r = w % 100;
		w /= 100;
		*--q = pairs[2 * r + 1];
		*--q = pairs[2 * r];
	}
	if (w >= 10) {
		*--q = pairs[2 * w + 1];
		*--q = pairs[2 * w];
	} else {
		*--q = (char)('0' + w);
	}
	return end;
}

int ts_buf_u64(struct ts_buf *b, uint64_t v)
{
	int rc = ts_buf_reserve(b, TS_U64_DIGITS);
	if (rc)
		return rc;
	b->len = (size_t)(ts_u64_put(b->data + b->len, v) - b->data);
	return 0;
}

void ts_buf_consume(struct ts_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

void ts_buf_free(struct ts_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
