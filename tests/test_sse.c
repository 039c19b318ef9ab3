/* test_sse.c: unit tests of the SSE encoder and the position parsers
 * (src/sse.c).  Byte-exact tables, a golden file, and a property test that
 * compares ts_sse_text with an independent reference over random input. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sse.h"
#include "testdata.h"

/* U+FFFD and U+2026 in UTF-8.  Beware when writing cases: a hex escape
 * swallows every hex digit after it, so "\x80" "a" must stay two literals. */
#define R "\xEF\xBF\xBD"
#define ELL "\xE2\x80\xA6"
#define BIG ((size_t)1 << 20) /* a max_line that never cuts these cases */

static int setup_buf(void **state)
{
	struct ts_buf *b = calloc(1, sizeof(*b));
	if (!b)
		return -1;
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

static void print_hex(const char *label, const void *p, size_t n)
{
	const unsigned char *s = p;
	print_error("%s (%zu bytes):", label, n);
	for (size_t i = 0; i < n; i++)
		print_error(" %02X", s[i]);
	print_error("\n");
}

/* Compare the buffer with the expected bytes, showing both in hex when
 * they differ. */
static void check_bytes(const char *what, const struct ts_buf *b,
			const void *exp, size_t n)
{
	if (b->len == n && (n == 0 || memcmp(b->data, exp, n) == 0))
		return;
	print_error("case: %s\n", what);
	print_hex("  want", exp, n);
	print_hex("  got ", b->data, b->len);
	fail();
}

#define CHECK_LIT(what, b, lit) check_bytes((what), (b), (lit), sizeof(lit) - 1)

/* ------------------------------------------------------------------ */
/* ts_sse_text: tables                                                  */

struct text_case {
	const char *name;
	const char *in;
	size_t inlen;
	size_t max;
	const char *out;
	size_t outlen;
};

#define TC(name, in, max, out)                                      \
	{                                                           \
		name, in, sizeof(in) - 1, max, out, sizeof(out) - 1 \
	}

static void run_text_cases(struct ts_buf *b, const struct text_case *c,
			   size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ts_buf_reset(b);
		assert_int_equal(ts_sse_text(b, c[i].in, c[i].inlen, c[i].max),
				 0);
		check_bytes(c[i].name, b, c[i].out, c[i].outlen);
	}
}

static const struct text_case plain_cases[] = {
	TC("empty", "", BIG, ""),
	TC("ascii", "Nov 21 22:49:12 host sshd[42]: ok", BIG,
	   "Nov 21 22:49:12 host sshd[42]: ok"),
	TC("trailing CR dropped", "a\r", BIG, "a"),
	TC("only CR", "\r", BIG, ""),
	TC("only one trailing CR dropped", "a\r\r", BIG, "a" R),
	TC("two CRs", "\r\r", BIG, R),
	TC("CR in the middle", "a\rb", BIG, "a" R "b"),
	TC("CR at the start", "\ra", BIG, R "a"),
	TC("CR then trailing CR", "\ra\r", BIG, R "a"),
	TC("NUL in the middle", "a\0b", BIG, "a" R "b"),
	TC("NUL alone", "\0", BIG, R),
	TC("NUL at the end", "ab\0", BIG, "ab" R),
	TC("NUL before trailing CR", "a\0\r", BIG, "a" R),
	TC("two NULs", "\0\0", BIG, R R),
	TC("tab and ESC pass", "\tx\x1b[1;31mred\x1b[0m", BIG,
	   "\tx\x1b[1;31mred\x1b[0m"),
	TC("DEL and other controls pass", "\x01\x02\x7f\x0b\x0c", BIG,
	   "\x01\x02\x7f\x0b\x0c"),
};

static void test_text_plain(void **state)
{
	run_text_cases(*state, plain_cases,
		       sizeof(plain_cases) / sizeof(plain_cases[0]));
}

static const struct text_case utf8_valid_cases[] = {
	TC("2-byte e-acute", "caf\xC3\xA9", BIG, "caf\xC3\xA9"),
	TC("2-byte U+0080", "\xC2\x80", BIG, "\xC2\x80"),
	TC("2-byte U+07FF", "\xDF\xBF", BIG, "\xDF\xBF"),
	TC("3-byte euro",
	   "\xE2\x82\xAC"
	   "5",
	   BIG,
	   "\xE2\x82\xAC"
	   "5"),
	TC("3-byte U+0800", "\xE0\xA0\x80", BIG, "\xE0\xA0\x80"),
	TC("3-byte U+D7FF", "\xED\x9F\xBF", BIG, "\xED\x9F\xBF"),
	TC("3-byte U+E000", "\xEE\x80\x80", BIG, "\xEE\x80\x80"),
	TC("3-byte U+FFFF", "\xEF\xBF\xBF", BIG, "\xEF\xBF\xBF"),
	TC("U+FFFD itself", R, BIG, R),
	TC("U+2026 itself", ELL, BIG, ELL),
	TC("4-byte emoji", "\xF0\x9F\x98\x80", BIG, "\xF0\x9F\x98\x80"),
	TC("4-byte U+10000", "\xF0\x90\x80\x80", BIG, "\xF0\x90\x80\x80"),
	TC("4-byte U+10FFFF", "\xF4\x8F\xBF\xBF", BIG, "\xF4\x8F\xBF\xBF"),
	TC("mixed",
	   "a\xC3\xA9"
	   "b\xE2\x82\xAC"
	   "c\xF0\x9F\x98\x80"
	   "d\r",
	   BIG,
	   "a\xC3\xA9"
	   "b\xE2\x82\xAC"
	   "c\xF0\x9F\x98\x80"
	   "d"),
};

static void test_text_utf8_valid(void **state)
{
	run_text_cases(*state, utf8_valid_cases,
		       sizeof(utf8_valid_cases) / sizeof(utf8_valid_cases[0]));
}

/* Unicode 15 section 3.9, "U+FFFD Substitution of Maximal Subparts". */
static const struct text_case utf8_invalid_cases[] = {
	TC("lone continuation 80", "\x80", BIG, R),
	TC("lone continuation BF", "\xBF", BIG, R),
	TC("two continuations", "\x80\x80", BIG, R R),
	TC("continuation between ascii",
	   "a\x80"
	   "b",
	   BIG, "a" R "b"),
	TC("overlong C0 AF", "\xC0\xAF", BIG, R R),
	TC("overlong C1 BF", "\xC1\xBF", BIG, R R),
	TC("overlong E0 80", "\xE0\x80", BIG, R R),
	TC("overlong E0 80 AF", "\xE0\x80\xAF", BIG, R R R),
	TC("overlong E0 9F BF", "\xE0\x9F\xBF", BIG, R R R),
	TC("surrogate ED A0 80", "\xED\xA0\x80", BIG, R R R),
	TC("surrogate ED BF BF", "\xED\xBF\xBF", BIG, R R R),
	TC("above U+10FFFF F4 90 80 80", "\xF4\x90\x80\x80", BIG, R R R R),
	TC("overlong F0 80 80 80", "\xF0\x80\x80\x80", BIG, R R R R),
	TC("overlong F0 8F BF BF", "\xF0\x8F\xBF\xBF", BIG, R R R R),
	TC("F5 80 80 80", "\xF5\x80\x80\x80", BIG, R R R R),
	TC("FE FF", "\xFE\xFF", BIG, R R),
	TC("truncated 2 of 3 at end", "x\xE2\x82", BIG, "x" R),
	TC("truncated 1 of 3 at end", "\xE2", BIG, R),
	TC("truncated 1 of 2 at end", "\xC3", BIG, R),
	TC("truncated 3 of 4 at end", "\xF0\x9F\x98", BIG, R),
	TC("truncated 2 of 4 at end", "\xF0\x9F", BIG, R),
	TC("truncated 3 of 4 then A",
	   "\xF0\x9F\x98"
	   "A",
	   BIG, R "A"),
	TC("truncated 1 of 3 then A",
	   "\xE2"
	   "A",
	   BIG, R "A"),
	TC("truncated then valid", "\xE2\x82\xE2\x82\xAC", BIG,
	   R "\xE2\x82\xAC"),
	TC("lead then valid 2-byte", "\xC3\xC3\xA9", BIG, R "\xC3\xA9"),
	TC("truncated before trailing CR", "\xE2\x82\r", BIG, R),
	TC("truncated before mid CR", "\xE2\x82\rx", BIG, R R "x"),
	TC("truncated before NUL", "\xF0\x9F\x98\0", BIG, R R),
	/* the example of Unicode table 3-8 */
	TC("table 3-8", "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64",
	   BIG, "a" R R R "b" R "c" R R "d"),
};

static void test_text_utf8_invalid(void **state)
{
	run_text_cases(*state, utf8_invalid_cases,
		       sizeof(utf8_invalid_cases) /
			       sizeof(utf8_invalid_cases[0]));
}

/* Every single byte: 01..7F pass alone (except CR, dropped at the end, and
 * LF, which never reaches this function); NUL and 80..FF become U+FFFD. */
static void test_text_every_single_byte(void **state)
{
	struct ts_buf *b = *state;
	char name[64];
	for (int c = 0; c < 256; c++) {
		char in[2] = { (char)c, 'z' };
		if (c == '\n')
			continue;
		ts_buf_reset(b);
		assert_int_equal(ts_sse_text(b, in, 2, BIG), 0);
		snprintf(name, sizeof(name), "byte %02X then z", c);
		if (c == 0 || c == '\r' || c >= 0x80)
			CHECK_LIT(name, b, R "z");
		else
			check_bytes(name, b, in, 2);
	}
	/* F5..FF are never valid, whatever follows: one U+FFFD each */
	for (int c = 0xF5; c <= 0xFF; c++) {
		char in[4] = { (char)c, '\x80', '\x80', '\x80' };
		ts_buf_reset(b);
		assert_int_equal(ts_sse_text(b, in, 4, BIG), 0);
		snprintf(name, sizeof(name), "%02X 80 80 80", c);
		CHECK_LIT(name, b, R R R R);
	}
}

static const struct text_case cut_cases[] = {
	TC("ascii exactly max", "aaaaa", 5, "aaaaa"),
	TC("ascii max+1", "aaaaaa", 5, "aaaaa" ELL),
	TC("ascii much longer", "abcdefghijklmnop", 5, "abcde" ELL),
	TC("trailing CR does not count", "aaaaa\r", 5, "aaaaa"),
	TC("max 0, empty", "", 0, ""),
	TC("max 0, one byte", "a", 0, ELL),
	TC("max 0, only CR", "\r", 0, ""),
	TC("2-byte ends exactly at max", "aaa\xC3\xA9", 5, "aaa\xC3\xA9"),
	TC("2-byte straddles the cut", "aaaa\xC3\xA9", 5, "aaaa" ELL),
	TC("2-byte fits, then more",
	   "aaa\xC3\xA9"
	   "b",
	   5, "aaa\xC3\xA9" ELL),
	TC("2-byte straddles, ascii after",
	   "aaaa\xC3\xA9"
	   "b",
	   5, "aaaa" ELL),
	TC("3-byte straddles by 1", "aaa\xE2\x82\xAC", 5, "aaa" ELL),
	TC("3-byte straddles by 2", "aaaa\xE2\x82\xAC", 5, "aaaa" ELL),
	TC("3-byte exactly", "a\xE2\x82\xAC", 4, "a\xE2\x82\xAC"),
	TC("3-byte one short", "a\xE2\x82\xAC", 3, "a" ELL),
	TC("4-byte then 4-byte", "\xF0\x9F\x98\x80\xF0\x9F\x98\x80", 7,
	   "\xF0\x9F\x98\x80" ELL),
	TC("4-byte twice exactly", "\xF0\x9F\x98\x80\xF0\x9F\x98\x80", 8,
	   "\xF0\x9F\x98\x80\xF0\x9F\x98\x80"),
	TC("4-byte alone, max 3", "\xF0\x9F\x98\x80", 3, ELL),
	TC("ascii run after multibyte crosses cut",
	   "\xC3\xA9"
	   "abcd",
	   4,
	   "\xC3\xA9"
	   "ab" ELL),
	TC("replacement would cross the cut", "ab\x80", 4, "ab" ELL),
	TC("replacement ends exactly at max", "ab\x80", 5, "ab" R),
	TC("replacement at max, more after",
	   "ab\x80"
	   "c",
	   5, "ab" R ELL),
	TC("NUL replacement crosses the cut", "abcd\0", 5, "abcd" ELL),
	TC("two replacements, room for one", "\0\0", 3, R ELL),
	TC("two replacements, room for one and a bit", "\0\0", 5, R ELL),
	/* the limit is on the text sent, so a short invalid line can be cut */
	TC("2 input bytes, 3 output bytes", "\xE2\x82", 2, ELL),
	TC("ellipsis in the input, exact", ELL, 3, ELL),
};

static void test_text_cut(void **state)
{
	run_text_cases(*state, cut_cases,
		       sizeof(cut_cases) / sizeof(cut_cases[0]));
}

/* ts_sse_text appends; it does not reset the buffer. */
static void test_text_appends(void **state)
{
	struct ts_buf *b = *state;
	assert_int_equal(ts_buf_puts(b, "data: "), 0);
	assert_int_equal(ts_sse_text(b, "x\0y", 3, BIG), 0);
	CHECK_LIT("append", b, "data: x" R "y");
	assert_int_equal(ts_sse_text(b, "abcdef", 6, 2), 0);
	CHECK_LIT("append cut", b, "data: x" R "yab" ELL);
}

/* A line of the default max_line and more: cut to exactly max_line bytes. */
static void test_text_long_line(void **state)
{
	struct ts_buf *b = *state;
	const size_t max = 65536, len = 200000;
	char *line = malloc(len);
	assert_non_null(line);
	for (size_t i = 0; i < len; i++)
		line[i] = (char)('a' + i % 26);

	assert_int_equal(ts_sse_text(b, line, len, max), 0);
	assert_int_equal(b->len, max + 3);
	assert_memory_equal(b->data, line, max);
	assert_memory_equal(b->data + max, ELL, 3);

	/* exactly max_line: no cut */
	ts_buf_reset(b);
	assert_int_equal(ts_sse_text(b, line, max, max), 0);
	assert_int_equal(b->len, max);
	assert_memory_equal(b->data, line, max);

	/* 2-byte characters from offset 1: the one at the cut is dropped */
	line[0] = 'a';
	for (size_t i = 1; i + 1 < len; i += 2) {
		line[i] = '\xC3';
		line[i + 1] = '\xA9';
	}
	ts_buf_reset(b);
	assert_int_equal(ts_sse_text(b, line, len - 1, max), 0);
	assert_int_equal(b->len, max - 1 + 3);
	assert_memory_equal(b->data, line, max - 1);
	assert_memory_equal(b->data + max - 1, ELL, 3);
	free(line);
}

/* ------------------------------------------------------------------ */
/* ts_sse_text: property test against an independent reference          */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15u);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
	return z ^ (z >> 31);
}

static size_t rnd_below(size_t n)
{
	return (size_t)(rnd() % n);
}

/* The number of bytes of a sequence that starts with lead byte c by its bit
 * pattern alone, or 0 for a byte that cannot start one (10xxxxxx, 11111xxx). */
static size_t ref_seq_len(unsigned char c)
{
	if ((c & 0xE0) == 0xC0)
		return 2;
	if ((c & 0xF0) == 0xE0)
		return 3;
	if ((c & 0xF8) == 0xF0)
		return 4;
	return 0;
}

/* Whether the k bytes at p (a lead of an L-byte sequence, then k-1
 * continuation bytes) can still be completed into a well-formed character:
 * the code points reachable from this prefix form an interval, which must
 * meet the range encodable in L bytes outside the surrogates. */
static bool ref_viable(const unsigned char *p, size_t k, size_t L)
{
	static const uint32_t lo_of[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	static const uint32_t hi_of[5] = { 0, 0, 0x7FF, 0xFFFF, 0x10FFFF };
	uint32_t lead = p[0] & (0x7Fu >> L);
	uint32_t mn = lead, mx = lead;
	for (size_t j = 1; j < L; j++) {
		uint32_t bits_min = j < k ? (p[j] & 0x3Fu) : 0;
		uint32_t bits_max = j < k ? (p[j] & 0x3Fu) : 0x3F;
		mn = mn << 6 | bits_min;
		mx = mx << 6 | bits_max;
	}
	uint32_t lo = mn > lo_of[L] ? mn : lo_of[L];
	uint32_t hi = mx < hi_of[L] ? mx : hi_of[L];
	if (lo > hi)
		return false;
	if (lo >= 0xD800 && hi <= 0xDFFF)
		return false;
	return true;
}

/* Reference of ts_sse_text, written differently: first split the input into
 * output units (a character, or U+FFFD for a maximal invalid subpart), then
 * keep the units that fit in max_line.  Writes into out (room for
 * 3 * len + 3 bytes), returns the length. */
static size_t ref_text(const unsigned char *s, size_t len, size_t max_line,
		       unsigned char *out)
{
	size_t o = 0;
	if (len && s[len - 1] == '\r')
		len--;
	for (size_t i = 0; i < len;) {
		const unsigned char *unit = s + i;
		size_t ulen = 1, consumed = 1;
		if (s[i] == 0 || s[i] == '\r') {
			unit = (const unsigned char *)R;
			ulen = 3;
		} else if (s[i] >= 0x80) {
			size_t L = ref_seq_len(s[i]);
			size_t k = 1;
			if (L && ref_viable(s + i, 1, L)) {
				while (k < L && i + k < len &&
				       (s[i + k] & 0xC0) == 0x80 &&
				       ref_viable(s + i, k + 1, L))
					k++;
			}
			if (L && k == L) {
				ulen = consumed = L;
			} else {
				unit = (const unsigned char *)R;
				ulen = 3;
				consumed = k;
			}
		}
		if (o + ulen > max_line) {
			memcpy(out + o, ELL, 3);
			return o + 3;
		}
		memcpy(out + o, unit, ulen);
		o += ulen;
		i += consumed;
	}
	return o;
}

/* Strict UTF-8 validation, decoding code points. */
static bool valid_utf8(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t L = s[i] < 0x80 ? 1 : ref_seq_len(s[i]);
		if (L == 0 || i + L > n)
			return false;
		uint32_t cp = L == 1 ? s[i] : s[i] & (0x7Fu >> L);
		for (size_t j = 1; j < L; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3Fu);
		}
		static const uint32_t min_of[5] = { 0, 0, 0x80, 0x800,
						    0x10000 };
		if (L > 1 && cp < min_of[L])
			return false;
		if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += L;
	}
	return true;
}

static size_t encode_cp(uint32_t cp, unsigned char *p)
{
	if (cp < 0x80) {
		p[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		p[0] = (unsigned char)(0xC0 | cp >> 6);
		p[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		p[0] = (unsigned char)(0xE0 | cp >> 12);
		p[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		p[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	p[0] = (unsigned char)(0xF0 | cp >> 18);
	p[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
	p[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
	p[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

static uint32_t random_scalar(void)
{
	static const uint32_t edges[] = { 0x80,	  0x7FF,   0x800,
					  0xD7FF, 0xE000,  0xFFFD,
					  0xFFFF, 0x10000, 0x10FFFF };
	uint32_t cp;
	switch (rnd_below(4)) {
	case 0:
		return edges[rnd_below(sizeof(edges) / sizeof(edges[0]))];
	case 1:
		return 0x80 + (uint32_t)rnd_below(0x800 - 0x80);
	case 2:
		cp = 0x800 + (uint32_t)rnd_below(0x10000 - 0x800);
		break;
	default:
		cp = 0x10000 + (uint32_t)rnd_below(0x110000 - 0x10000);
		break;
	}
	if (cp >= 0xD800 && cp <= 0xDFFF)
		cp -= 0x800;
	return cp;
}

/* Random line bytes biased towards the interesting cases.  Never '\n': a
 * line handed to ts_sse_text is by definition without one. */
static size_t random_line(unsigned char *p, size_t max)
{
	static const unsigned char ctl[] = { 0, '\r', '\t', 0x1B, 0x01, 0x7F };
	static const unsigned char leads[] = { 0xC0, 0xC1, 0xC2, 0xDF,
					       0xE0, 0xE1, 0xED, 0xEF,
					       0xF0, 0xF4, 0xF5, 0xFF };
	size_t target = rnd_below(max - 4), n = 0;
	while (n < target) {
		unsigned char tmp[4];
		size_t k;
		switch (rnd_below(16)) {
		case 0:
		case 1:
		case 2:
		case 3:
		case 4:
			p[n++] = (unsigned char)(0x20 + rnd_below(0x5F));
			break;
		case 5:
			p[n++] = ctl[rnd_below(sizeof(ctl))];
			break;
		case 6:
			p[n++] = (unsigned char)(0x80 + rnd_below(0x40));
			break;
		case 7:
			p[n++] = (unsigned char)(0xC0 + rnd_below(0x40));
			break;
		case 8:
			p[n++] = leads[rnd_below(sizeof(leads))];
			break;
		case 9:
		case 10:
		case 11:
			n += encode_cp(random_scalar(), p + n);
			break;
		case 12: /* a valid character cut short */
			k = encode_cp(random_scalar(), tmp);
			k = 1 + rnd_below(k);
			memcpy(p + n, tmp, k);
			n += k;
			break;
		case 13: /* a boundary lead and a random continuation */
			p[n++] = leads[rnd_below(sizeof(leads))];
			p[n++] = (unsigned char)(0x80 + rnd_below(0x40));
			break;
		case 14:
			p[n++] = (unsigned char)rnd_below(256);
			break;
		default:
			p[n++] = '\r';
			break;
		}
		if (p[n - 1] == '\n')
			p[n - 1] = 'n';
	}
	return n;
}

static void test_text_property(void **state)
{
	struct ts_buf *b = *state;
	enum { MAXIN = 64, ITER = 20000 };
	unsigned char in[MAXIN + 8], exp[3 * (MAXIN + 8) + 3];
	size_t cuts = 0, replaced = 0;

	rng_state = 20241121;
	for (int it = 0; it < ITER; it++) {
		size_t len = random_line(in, MAXIN);
		size_t max = rnd_below(8) == 0 ? BIG : rnd_below(48);

		ts_buf_reset(b);
		assert_int_equal(ts_sse_text(b, (const char *)in, len, max), 0);
		const unsigned char *o = (const unsigned char *)b->data;
		size_t olen = b->len;

		/* the properties the stream relies on */
		if (memchr(o, '\n', olen) || memchr(o, '\r', olen) ||
		    memchr(o, '\0', olen) || !valid_utf8(o, olen) ||
		    olen > max + 3) {
			print_error("iteration %d, max_line %zu\n", it, max);
			print_hex("  input", in, len);
			print_hex("  output", o, olen);
			fail();
		}

		/* exactly the reference */
		size_t elen = ref_text(in, len, max, exp);
		if (elen != olen || memcmp(exp, o, olen) != 0) {
			print_error("iteration %d, max_line %zu\n", it, max);
			print_hex("  input", in, len);
			print_hex("  want", exp, elen);
			print_hex("  got ", o, olen);
			fail();
		}

		/* cut output is a maximal prefix of the uncut one, at a
		 * character boundary */
		unsigned char full[3 * (MAXIN + 8) + 3];
		size_t flen = ref_text(in, len, BIG, full);
		if (flen > max) {
			cuts++;
			assert_true(olen >= 3);
			assert_memory_equal(o + olen - 3, ELL, 3);
			size_t p = olen - 3;
			assert_true(p <= max);
			assert_memory_equal(o, full, p);
			/* the next character would not have fitted */
			size_t L = full[p] < 0x80 ? 1 : ref_seq_len(full[p]);
			assert_true(L > 0);
			assert_true(p + L > max);
		} else {
			assert_int_equal(olen, flen);
		}
		if (memmem(o, olen, R, 3))
			replaced++;

		/* sanitised text without the cut is a fixed point */
		if (flen <= max) {
			struct ts_buf again = TS_BUF_INIT;
			assert_int_equal(ts_sse_text(&again, (const char *)o,
						     olen, BIG),
					 0);
			bool same =
				again.len == olen &&
				(olen == 0 || memcmp(again.data, o, olen) == 0);
			ts_buf_free(&again);
			assert_true(same);
		}
	}
	/* the generator did reach the interesting paths */
	assert_true(cuts > ITER / 10);
	assert_true(replaced > ITER / 10);
}

/* ------------------------------------------------------------------ */
/* Framing                                                              */

struct line_case {
	const char *name;
	const char *in;
	size_t inlen;
	size_t max;
	uint64_t ino, off;
	const char *out;
	size_t outlen;
};

#define LC(name, in, max, ino, off, out)                                      \
	{                                                                     \
		name, in, sizeof(in) - 1, max, ino, off, out, sizeof(out) - 1 \
	}

static const struct line_case line_cases[] = {
	LC("contract example", "text", BIG, 2049, 1734,
	   "id: 2049:1734\ndata: text\n\n"),
	LC("contract line",
	   "Nov 21 22:49:12 host sshd[42]: Accepted publickey "
	   "for root",
	   BIG, 2049, 1734,
	   "id: 2049:1734\ndata: Nov 21 22:49:12 host sshd[42]: Accepted "
	   "publickey for root\n\n"),
	LC("empty line", "", BIG, 0, 0, "id: 0:0\ndata: \n\n"),
	LC("CR only", "\r", BIG, 7, 2, "id: 7:2\ndata: \n\n"),
	LC("CRLF and cut", "abcdef\r", 3, 1, 8,
	   "id: 1:8\ndata: abc" ELL "\n\n"),
	LC("CR and NUL inside", "a\rb\0", BIG, 5, 5,
	   "id: 5:5\ndata: a" R "b" R "\n\n"),
	LC("invalid UTF-8",
	   "\xC0\xAF"
	   "ok",
	   BIG, 3, 9, "id: 3:9\ndata: " R R "ok\n\n"),
	LC("largest ids", "x", BIG, UINT64_MAX, INT64_MAX,
	   "id: 18446744073709551615:9223372036854775807\ndata: x\n\n"),
	LC("largest ids, max_line 0", "long", 0, UINT64_MAX, UINT64_MAX,
	   "id: 18446744073709551615:18446744073709551615\ndata: " ELL "\n\n"),
};

static void test_line_framing(void **state)
{
	struct ts_buf *b = *state;
	for (size_t i = 0; i < sizeof(line_cases) / sizeof(line_cases[0]);
	     i++) {
		const struct line_case *c = &line_cases[i];
		ts_buf_reset(b);
		assert_int_equal(ts_sse_line(b, c->in, c->inlen, c->max, c->ino,
					     c->off),
				 0);
		check_bytes(c->name, b, c->out, c->outlen);
	}
}

/* Events append: a stream body is built by concatenation. */
static void test_line_appends(void **state)
{
	struct ts_buf *b = *state;
	static const char want[] = "retry: 2000\n\n"
				   "id: 9:2\ndata: a\n\n"
				   "id: 9:5\ndata: b" R "\n\n";
	assert_int_equal(ts_sse_retry(b, 2000), 0);
	assert_int_equal(ts_sse_line(b, "a", 1, BIG, 9, 2), 0);
	assert_int_equal(ts_sse_line(b, "b\x80", 2, BIG, 9, 5), 0);
	CHECK_LIT("appended events", b, want);
}

/* TS_SSE_EVENT_OVERHEAD covers everything but the text, at the largest
 * ids and with a cut. */
static void test_line_overhead(void **state)
{
	struct ts_buf *b = *state;
	assert_int_equal(ts_sse_line(b, "abcdefgh", 8, 4, UINT64_MAX,
				     UINT64_MAX),
			 0);
	assert_true(b->len - 4 <= TS_SSE_EVENT_OVERHEAD);
}

static void test_retry(void **state)
{
	struct ts_buf *b = *state;
	static const struct {
		unsigned ms;
		const char *out;
	} cases[] = {
		{ 0, "retry: 0\n\n" },
		{ 2000, "retry: 2000\n\n" },
		{ UINT_MAX, "retry: 4294967295\n\n" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ts_buf_reset(b);
		assert_int_equal(ts_sse_retry(b, cases[i].ms), 0);
		check_bytes(cases[i].out, b, cases[i].out,
			    strlen(cases[i].out));
	}
}

static void test_comment(void **state)
{
	struct ts_buf *b = *state;
	static const struct {
		const char *text;
		const char *out;
	} cases[] = {
		{ "ping", ": ping\n\n" },
		{ "", ": \n\n" },
		{ "tailsse 0.1.0 %s %d", ": tailsse 0.1.0 %s %d\n\n" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ts_buf_reset(b);
		assert_int_equal(ts_sse_comment(b, cases[i].text), 0);
		check_bytes(cases[i].out, b, cases[i].out,
			    strlen(cases[i].out));
	}
}

static void test_event(void **state)
{
	struct ts_buf *b = *state;
	static const struct ts_pos p1 = { 2049, 0, true };
	static const struct ts_pos pmax = { UINT64_MAX, INT64_MAX, true };
	static const struct {
		const char *type, *json;
		const struct ts_pos *pos;
		const char *out;
	} cases[] = {
		{ "reset", "{\"reason\":\"rotated\"}", NULL,
		  "event: reset\ndata: {\"reason\":\"rotated\"}\n\n" },
		{ "reset", "{\"reason\":\"rotated\"}", &p1,
		  "event: reset\nid: 2049:0\ndata: {\"reason\":\"rotated\"}\n\n" },
		{ "reset", "{\"reason\":\"lost\"}", &pmax,
		  "event: reset\nid: 18446744073709551615:9223372036854775807\n"
		  "data: {\"reason\":\"lost\"}\n\n" },
		{ "filter-limit", "{}", NULL,
		  "event: filter-limit\ndata: {}\n\n" },
		{ "x", "", NULL, "event: x\ndata: \n\n" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ts_buf_reset(b);
		assert_int_equal(ts_sse_event(b, cases[i].type, cases[i].json,
					      cases[i].pos),
				 0);
		check_bytes(cases[i].out, b, cases[i].out,
			    strlen(cases[i].out));
	}
}

/* ------------------------------------------------------------------ */
/* Parsers                                                              */

static void test_parse_id_good(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		uint64_t ino, off;
		bool has_ino;
	} cases[] = {
		{ "2049:1734", 2049, 1734, true },
		{ "0:0", 0, 0, true },
		{ "1734", 0, 1734, false },
		{ "0", 0, 0, false },
		{ "18446744073709551615:9223372036854775807", UINT64_MAX,
		  INT64_MAX, true },
		{ "18446744073709551615:0", UINT64_MAX, 0, true },
		{ "0:9223372036854775807", 0, INT64_MAX, true },
		{ "9223372036854775807", 0, INT64_MAX, false },
		{ "007:010", 7, 10, true }, /* decimal, not octal */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ts_pos p = { 111, 222, !cases[i].has_ino };
		if (ts_sse_parse_id(cases[i].s, &p) != 0)
			fail_msg("\"%s\" refused", cases[i].s);
		if (p.ino != cases[i].ino || p.off != cases[i].off ||
		    p.has_ino != cases[i].has_ino)
			fail_msg("\"%s\" -> %" PRIu64 ":%" PRIu64 " has_ino %d",
				 cases[i].s, p.ino, p.off, p.has_ino);
	}
}

static void test_parse_id_bad(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		":",
		"1:",
		":1",
		"a:1",
		"1:a",
		"1:2:3",
		"1::2",
		"::",
		"-1",
		"+1",
		" 1",
		"1 ",
		"1\t",
		"\t1",
		"1:2x",
		"x1:2",
		"1: 2",
		"1 :2",
		"1:+2",
		"1:-2",
		"-1:2",
		"0x10",
		"1.5",
		"1e3",
		"1,2",
		"\xD9\xA1", /* ARABIC-INDIC DIGIT ONE */
		"18446744073709551616:0",
		"99999999999999999999:0",
		"184467440737095516150:0",
		"0:9223372036854775808",
		"0:18446744073709551615",
		"0:99999999999999999999",
		"9223372036854775808",
		"18446744073709551615",
		"18446744073709551616",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ts_pos p = { 0, 0, false };
		int rc = ts_sse_parse_id(bad[i], &p);
		if (rc != -EINVAL)
			fail_msg("\"%s\" -> %d, want -EINVAL", bad[i], rc);
	}
	struct ts_pos p;
	assert_int_equal(ts_sse_parse_id(NULL, &p), -EINVAL);
}

static void test_parse_uint_table(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		uint64_t max;
		int rc;
		uint64_t v;
	} cases[] = {
		{ "0", 10, 0, 0 },
		{ "10", 10, 0, 10 },
		{ "11", 10, -EINVAL, 0 },
		{ "0", 0, 0, 0 },
		{ "1", 0, -EINVAL, 0 },
		{ "9", 0, -EINVAL, 0 },
		{ "3", 3, 0, 3 },
		{ "5", 3, -EINVAL, 0 },
		{ "9", 8, -EINVAL, 0 },
		{ "99", 99, 0, 99 },
		{ "100", 99, -EINVAL, 0 },
		{ "1000", 999, -EINVAL, 0 },
		{ "65536", 65535, -EINVAL, 0 },
		{ "00000000000000000000000042", 42, 0, 42 },
		{ "18446744073709551615", UINT64_MAX, 0, UINT64_MAX },
		{ "18446744073709551616", UINT64_MAX, -EINVAL, 0 },
		{ "18446744073709551620", UINT64_MAX, -EINVAL, 0 },
		{ "99999999999999999999", UINT64_MAX, -EINVAL, 0 },
		{ "9223372036854775807", INT64_MAX, 0, INT64_MAX },
		{ "9223372036854775808", INT64_MAX, -EINVAL, 0 },
		{ "", UINT64_MAX, -EINVAL, 0 },
		{ "-0", UINT64_MAX, -EINVAL, 0 },
		{ "+5", UINT64_MAX, -EINVAL, 0 },
		{ " 5", UINT64_MAX, -EINVAL, 0 },
		{ "5 ", UINT64_MAX, -EINVAL, 0 },
		{ "5x", UINT64_MAX, -EINVAL, 0 },
		{ "0x5", UINT64_MAX, -EINVAL, 0 },
		{ "1:2", UINT64_MAX, -EINVAL, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 12345;
		int rc = ts_parse_uint(cases[i].s, cases[i].max, &v);
		if (rc != cases[i].rc)
			fail_msg("\"%s\" max %" PRIu64 " -> %d, want %d",
				 cases[i].s, cases[i].max, rc, cases[i].rc);
		if (rc == 0 && v != cases[i].v)
			fail_msg("\"%s\" -> %" PRIu64, cases[i].s, v);
	}
	uint64_t v;
	assert_int_equal(ts_parse_uint(NULL, 10, &v), -EINVAL);
}

/* Every number 0..1099 against every max 0..1099 and near UINT64_MAX. */
static void test_parse_uint_exhaustive(void **state)
{
	(void)state;
	char s[32];
	for (uint64_t x = 0; x < 1100; x++) {
		snprintf(s, sizeof(s), "%" PRIu64, x);
		for (uint64_t max = 0; max < 1100; max++) {
			uint64_t v = 0;
			int rc = ts_parse_uint(s, max, &v);
			if (x <= max ? rc != 0 || v != x : rc != -EINVAL)
				fail_msg("\"%s\" max %" PRIu64
					 " -> %d, %" PRIu64,
					 s, max, rc, v);
		}
	}
	for (uint64_t d = 0; d < 30; d++) {
		uint64_t x = UINT64_MAX - d;
		snprintf(s, sizeof(s), "%" PRIu64, x);
		for (uint64_t e = 0; e < 30; e++) {
			uint64_t max = UINT64_MAX - e, v = 0;
			int rc = ts_parse_uint(s, max, &v);
			if (x <= max ? rc != 0 || v != x : rc != -EINVAL)
				fail_msg("\"%s\" max %" PRIu64 " -> %d", s, max,
					 rc);
		}
	}
}

/* The bounded parsers answer as the NUL-terminated ones do for every
 * prefix of these, given in a buffer of exactly that length (ASan reports
 * a read past it). */
static void test_parse_bounded(void **state)
{
	(void)state;
	static const char *const ss[] = {
		"2049:1734",
		"1734",
		"0:0",
		"1:2:3",
		"1:x",
		":",
		"",
		"18446744073709551615:9223372036854775807",
		"18446744073709551616:0",
		"9223372036854775808",
		"12a",
	};
	char term[64];
	for (size_t i = 0; i < sizeof(ss) / sizeof(ss[0]); i++) {
		for (size_t len = 0; len <= strlen(ss[i]); len++) {
			char *x = malloc(len ? len : 1);
			assert_non_null(x);
			memcpy(x, ss[i], len);
			memcpy(term, ss[i], len);
			term[len] = '\0';
			struct ts_pos a = { 1, 1, false }, b = a;
			uint64_t u = 1, v = 1;
			int ra = ts_sse_parse_id(term, &a);
			int rb = ts_sse_parse_id_n(x, len, &b);
			int rc = ts_parse_uint(term, UINT64_MAX, &u);
			int rd = ts_parse_uint_n(x, len, UINT64_MAX, &v);
			free(x);
			if (ra != rb || a.ino != b.ino || a.off != b.off ||
			    a.has_ino != b.has_ino || rc != rd || u != v)
				fail_msg("\"%s\" cut at %zu: %d/%d %d/%d",
					 ss[i], len, ra, rb, rc, rd);
		}
	}
	struct ts_pos p;
	uint64_t v;
	assert_int_equal(ts_sse_parse_id_n(NULL, 0, &p), -EINVAL);
	assert_int_equal(ts_parse_uint_n(NULL, 0, 10, &v), -EINVAL);
	/* a NUL inside is just a byte that is not a digit */
	assert_int_equal(ts_sse_parse_id_n("1:2\0", 4, &p), -EINVAL);
	assert_int_equal(ts_parse_uint_n("5\0", 2, 10, &v), -EINVAL);
}

/* ------------------------------------------------------------------ */
/* Golden file: a small log encoded as a stream, max_line 16, inode 2049. */

static void test_golden(void **state)
{
	struct ts_buf *b = *state;
	size_t inlen, outlen;
	char *in = ts_test_read_data("sse-golden.log", &inlen);
	char *want = ts_test_read_data("sse-golden.events", &outlen);

	/* each complete line, id pointing after its newline; the partial last
	 * line is not an event */
	for (size_t pos = 0;;) {
		char *nl = memchr(in + pos, '\n', inlen - pos);
		if (!nl)
			break;
		size_t next = (size_t)(nl - in) + 1;
		assert_int_equal(ts_sse_line(b, in + pos, next - 1 - pos, 16,
					     2049, next),
				 0);
		pos = next;
	}
	bool same = b->len == outlen && memcmp(b->data, want, outlen) == 0;
	if (!same) {
		print_hex("want", want, outlen);
		print_hex("got ", b->data, b->len);
	}
	free(in);
	free(want);
	assert_true(same);
}

static void test_scannable(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		size_t n, want;
	} cases[] = {
		{ "ab\ncd\n", 6, 6 },
		{ "ab\ncd", 5, 3 },
		{ "", 0, 0 },
		{ "abc", 3, 0 },
		{ "ab\xff\ncd\n", 7, 0 },
		{ "a\nb\xff\n", 5, 2 },
		{ "ab\ncd\r\n", 7, 3 },
		{ "x\n\n\n", 4, 4 },
		{ "0123456789abcdef0123456789\n\t\n", 29, 29 },
		{ "0123456789abcdef0123456789\n0123\0x\n", 34, 27 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (ts_sse_scannable(cases[i].s, cases[i].n) != cases[i].want)
			fail_msg("case %zu: %zu, want %zu", i,
				 ts_sse_scannable(cases[i].s, cases[i].n),
				 cases[i].want);
	/* long runs: a bad byte anywhere stops at the line before it */
	char buf[300];
	for (size_t bad = 0; bad < 299; bad += 7) {
		for (size_t k = 0; k < 300; k++)
			buf[k] = k % 50 == 49 ? '\n' : 'a';
		size_t want_all = ts_sse_scannable(buf, 300);
		assert_int_equal(want_all, 300);
		char saved = buf[bad];
		buf[bad] = (char)(bad % 3 == 0	 ? 0x80
				  : bad % 3 == 1 ? '\r'
						 : 0);
		size_t want = bad / 50 * 50;
		if (ts_sse_scannable(buf, 300) != want)
			fail_msg("bad at %zu: %zu, want %zu", bad,
				 ts_sse_scannable(buf, 300), want);
		buf[bad] = saved;
	}
}

static uint64_t rnd_next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Random bytes, mostly plain, with now and then one of the bytes that end
 * a plain run: NUL, CR, LF, a high byte. */
static void random_text(uint64_t *x, unsigned char *buf, size_t n)
{
	static const unsigned char stop[] = { 0, '\r', '\n', 0x80, 0xC3, 0xFF };
	unsigned rate = 1 + (unsigned)(rnd_next(x) % 200);
	for (size_t i = 0; i < n; i++) {
		uint64_t r = rnd_next(x);
		buf[i] = r % rate == 0 ? stop[(r >> 8) % sizeof(stop)]
				       : (unsigned char)(' ' + (r >> 16) % 95);
	}
}

/* ts_sse_plain_run against a byte-by-byte reference, at every length and
 * alignment around the 16-byte steps and the overlapping last load. */
static void test_plain_run(void **state)
{
	(void)state;
	unsigned char buf[400];
	uint64_t x = 2463534242u;
	for (int round = 0; round < 20000; round++) {
		size_t n = (size_t)(rnd_next(&x) % 300);
		size_t at = (size_t)(rnd_next(&x) % 64);
		random_text(&x, buf + at, n);
		size_t want = 0;
		while (want < n && buf[at + want] != 0 &&
		       buf[at + want] != '\r' && buf[at + want] != '\n' &&
		       buf[at + want] < 0x80)
			want++;
		size_t got = ts_sse_plain_run((const char *)buf + at, n);
		if (got != want)
			fail_msg("round %d, n %zu: %zu, want %zu", round, n,
				 got, want);
	}
}

/* The one-pass writer of plain lines (ts_sse_plain_line, and ts_sse_line
 * taking it for such lines) writes what the field-by-field encoding
 * writes: id, "data: ", ts_sse_text, blank line. */
static void test_line_fast_path_same(void **state)
{
	struct ts_buf *b = *state;
	struct ts_buf want = TS_BUF_INIT;
	unsigned char line[300];
	uint64_t x = 88172645463325252u;
	for (int round = 0; round < 20000; round++) {
		size_t n = (size_t)(rnd_next(&x) % 260);
		random_text(&x, line, n);
		/* a stray LF never reaches the encoder: the line ends there */
		for (size_t i = 0; i < n; i++)
			if (line[i] == '\n')
				line[i] = 'x';
		size_t max = round % 3 == 0 ? (size_t)(rnd_next(&x) % 300)
					    : 65536;
		uint64_t ino = rnd_next(&x) >> (rnd_next(&x) % 64);
		uint64_t off = rnd_next(&x) >> (1 + rnd_next(&x) % 63);
		ts_buf_reset(&want);
		assert_int_equal(ts_sse_id(&want, ino, off), 0);
		assert_int_equal(ts_buf_puts(&want, "data: "), 0);
		assert_int_equal(ts_sse_text(&want, (const char *)line, n, max),
				 0);
		assert_int_equal(ts_buf_puts(&want, "\n\n"), 0);
		ts_buf_reset(b);
		assert_int_equal(ts_sse_line(b, (const char *)line, n, max, ino,
					     off),
				 0);
		assert_int_equal(b->len, want.len);
		assert_memory_equal(b->data, want.data, want.len);
		if (ts_sse_plain_run((const char *)line, n) == n && n <= max) {
			struct ts_sse_idp idp;
			ts_sse_idp_set(&idp, ino);
			ts_buf_reset(b);
			assert_int_equal(ts_sse_plain_line(b, &idp,
							   (const char *)line,
							   n, off),
					 0);
			assert_int_equal(b->len, want.len);
			assert_memory_equal(b->data, want.data, want.len);
		}
	}
	ts_buf_free(&want);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_buf, teardown_buf)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scannable),
		cmocka_unit_test(test_plain_run),
		T(test_line_fast_path_same),
		T(test_text_plain),
		T(test_text_utf8_valid),
		T(test_text_utf8_invalid),
		T(test_text_every_single_byte),
		T(test_text_cut),
		T(test_text_appends),
		T(test_text_long_line),
		T(test_text_property),
		T(test_line_framing),
		T(test_line_appends),
		T(test_line_overhead),
		T(test_retry),
		T(test_comment),
		T(test_event),
		T(test_golden),
		cmocka_unit_test(test_parse_id_good),
		cmocka_unit_test(test_parse_id_bad),
		cmocka_unit_test(test_parse_uint_table),
		cmocka_unit_test(test_parse_uint_exhaustive),
		cmocka_unit_test(test_parse_bounded),
	};
#undef T
	return cmocka_run_group_tests_name("sse", tests, NULL, NULL);
}
