/* fuzz.h: what the libFuzzer targets of tests/fuzz/ share.
 *
 *  - FUZZ_CHECK: a property that failed prints what and where, then aborts,
 *    which libFuzzer reports as a crash and keeps the input of;
 *  - struct fuzz_in: typed values taken off the front of the input (zeros
 *    once it is used up, so every input means something);
 *  - fuzz_dup: an exact-size heap copy without a terminating NUL, so that
 *    AddressSanitizer catches a parser reading one byte past its length;
 *  - a strict UTF-8 check written apart from src/ (src/sse.c's
 *    ts_utf8_seq is among what is under test) and a reference of the
 *    "maximal subpart" rule by which invalid bytes become U+FFFD.
 *
 * Everything is static: each target is one file plus the sources it tests. */
#ifndef TS_FUZZ_H
#define TS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                  \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, \
				__LINE__, #cond);                              \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
			abort();                                               \
		}                                                              \
	} while (0)

/* Out of memory in the harness itself is not a finding. */
static inline void *fuzz_alloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fputs("fuzz: out of memory\n", stderr);
		abort();
	}
	return p;
}

/* An exact-size copy of p[0..n), no NUL after it.  A zero-size copy is a
 * malloc(0) chunk: ASan reports any read of it. */
static inline char *fuzz_dup(const void *p, size_t n)
{
	char *s = malloc(n);
	if (!s && n == 0)
		s = fuzz_alloc(1);
	if (!s) {
		fputs("fuzz: out of memory\n", stderr);
		abort();
	}
	if (n)
		memcpy(s, p, n);
	return s;
}

/* The same with a NUL after the n bytes. */
static inline char *fuzz_dupz(const void *p, size_t n)
{
	char *s = fuzz_alloc(n + 1);
	if (n)
		memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

/* `bytes` (at most 8) little-endian bytes off the front; missing ones are
 * zero. */
static inline uint64_t fuzz_take(struct fuzz_in *in, size_t bytes)
{
	uint64_t v = 0;
	for (size_t i = 0; i < bytes; i++) {
		uint64_t b = 0;
		if (in->n > 0) {
			b = in->p[0];
			in->p++;
			in->n--;
		}
		v |= b << (8 * i);
	}
	return v;
}

/* Copy n input bytes into out (room for max), each "FE C B" written as
 * (C + 1) * 64 bytes B, so that a short input makes long lines; returns
 * the bytes written. */
static inline size_t fuzz_expand(const uint8_t *p, size_t n, unsigned char *out,
				 size_t max)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o < max; i++) {
		if (p[i] == 0xFE && i + 2 < n) {
			size_t k = ((size_t)p[i + 1] + 1) * 64;
			if (k > max - o)
				k = max - o;
			memset(out + o, p[i + 2], k);
			o += k;
			i += 2;
		} else {
			out[o++] = p[i];
		}
	}
	return o;
}

/* A literal off the input: 1-3 characters of `alphabet` (alen of them),
 * NUL-terminated in lit. */
static inline void fuzz_take_literal(struct fuzz_in *in, const char *alphabet,
				     size_t alen, char lit[4])
{
	size_t len = 1 + (size_t)fuzz_take(in, 1) % 3;
	for (size_t i = 0; i < 3; i++) {
		unsigned v = (unsigned)fuzz_take(in, 1);
		if (i < len)
			lit[i] = alphabet[v % alen];
	}
	lit[len] = '\0';
}

/* Print at most 64 bytes of s as C-escaped text, for check messages. */
static inline void fuzz_show(FILE *f, const void *s, size_t n)
{
	const unsigned char *u = s;
	for (size_t i = 0; i < n && i < 64; i++) {
		if (u[i] >= 0x20 && u[i] < 0x7f && u[i] != '\\')
			fputc(u[i], f);
		else
			fprintf(f, "\\x%02x", u[i]);
	}
	if (n > 64)
		fputs("...", f);
}

/* Strict UTF-8 by code points: no overlong form, no surrogate, nothing
 * above U+10FFFF, no truncated sequence. */
static inline bool fuzz_utf8_valid(const void *s, size_t n)
{
	const unsigned char *u = s;
	size_t i = 0;
	while (i < n) {
		unsigned c = u[i];
		size_t k;
		uint32_t cp, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			k = 2, cp = c & 0x1F, min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			k = 3, cp = c & 0x0F, min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			k = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i < k)
			return false;
		for (size_t j = 1; j < k; j++) {
			if ((u[i + j] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (u[i + j] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += k;
	}
	return true;
}

/* Reference of the substitution of maximal subparts (Unicode 15, 3.9,
 * table 3-7 of well-formed sequences), for a non-ASCII lead byte at s[0]:
 * the length of the valid sequence there, or 0 and in *bad the number of
 * bytes that one U+FFFD replaces. */
static inline size_t fuzz_utf8_ref(const unsigned char *s, size_t n,
				   size_t *bad)
{
	static const struct {
		unsigned char first, last, need, lo, hi;
	} table[] = {
		{ 0xC2, 0xDF, 2, 0x80, 0xBF }, { 0xE0, 0xE0, 3, 0xA0, 0xBF },
		{ 0xE1, 0xEC, 3, 0x80, 0xBF }, { 0xED, 0xED, 3, 0x80, 0x9F },
		{ 0xEE, 0xEF, 3, 0x80, 0xBF }, { 0xF0, 0xF0, 4, 0x90, 0xBF },
		{ 0xF1, 0xF3, 4, 0x80, 0xBF }, { 0xF4, 0xF4, 4, 0x80, 0x8F },
	};
	for (size_t t = 0; t < sizeof(table) / sizeof(table[0]); t++) {
		if (s[0] < table[t].first || s[0] > table[t].last)
			continue;
		size_t k = 1;
		if (k < n && s[1] >= table[t].lo && s[1] <= table[t].hi) {
			k++;
			while (k < table[t].need && k < n && s[k] >= 0x80 &&
			       s[k] <= 0xBF)
				k++;
		}
		if (k == table[t].need)
			return k;
		*bad = k;
		return 0;
	}
	*bad = 1;
	return 0;
}

#endif
