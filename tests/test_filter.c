/* test_filter.c: unit tests of the PCRE2 filters, the pattern cache, match
 * ranges and JSON encoding (src/filter.c).  Every matching test runs twice:
 * with a JIT cache and with an interpreter-only cache. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "filter.h"
#include "testdata.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define LONG_LINE 65536

/* The two caches every matching test runs with. */
struct env {
	struct ts_filter_cache *c[2]; /* [0] JIT, [1] interpreter */
};
static const char *const engine[2] = { "jit", "interpreter" };

static int group_setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	if (!e)
		return -1;
	e->c[0] = ts_filter_cache_new_jit(true);
	e->c[1] = ts_filter_cache_new_jit(false);
	if (!e->c[0] || !e->c[1]) {
		ts_filter_cache_free(e->c[0]);
		ts_filter_cache_free(e->c[1]);
		free(e);
		return -1;
	}
	*state = e;
	return 0;
}

static int group_teardown(void **state)
{
	struct env *e = *state;
	ts_filter_cache_free(e->c[0]);
	ts_filter_cache_free(e->c[1]);
	free(e);
	return 0;
}

static size_t count(const char *const *v, size_t max)
{
	size_t n = 0;
	while (n < max && v[n])
		n++;
	return n;
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* CPU time of this thread: what the budget counts, and what a loaded CI
 * machine does not inflate. */
static double cpu_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static const char *match_name(enum ts_match m)
{
	return m == TS_MATCH_YES ? "YES" : m == TS_MATCH_NO ? "NO" : "LIMIT";
}

/* A filter that must compile; on the JIT cache, every pattern must have JIT
 * code (so that both engines are really tested). */
static struct ts_filter *must_filter(struct ts_filter_cache *c, bool jit,
				     const char *const *grep, size_t ngrep,
				     const char *const *excl, size_t nexcl,
				     bool icase)
{
	struct ts_filter *f = NULL;
	char err[256];
	int rc = ts_filter_new(c, grep, ngrep, excl, nexcl, icase, &f, err,
			       sizeof(err));
	if (rc)
		fail_msg("ts_filter_new: %d %s (grep[0] %s)", rc, err,
			 ngrep ? grep[0] : "-");
	assert_non_null(f);
	assert_int_equal(ts_filter_jit(f), jit ? ngrep + nexcl : 0);
	return f;
}

/* ------------------------------------------------------------------ */
/* Matching and ranges */

struct mcase {
	const char *grep[4];
	const char *excl[4];
	bool icase;
	const char *line;
	size_t len; /* 0: strlen(line) */
	enum ts_match want;
	const char *ranges; /* for YES */
};

static const struct mcase mcases[] = {
	/* grep, exclude, icase */
	{ { "error" }, { 0 }, false, "an error here", 0, TS_MATCH_YES, "[3,8]" },
	{ { "error" }, { 0 }, false, "all fine", 0, TS_MATCH_NO, NULL },
	{ { "Error" }, { 0 }, false, "an error", 0, TS_MATCH_NO, NULL },
	{ { "Error" }, { 0 }, true, "an error", 0, TS_MATCH_YES, "[3,8]" },
	{ { "error" }, { 0 }, true, "AN ERROR", 0, TS_MATCH_YES, "[3,8]" },
	{ { 0 }, { "debug" }, false, "debug: x", 0, TS_MATCH_NO, NULL },
	{ { 0 }, { "debug" }, false, "info: x", 0, TS_MATCH_YES, "" },
	{ { 0 }, { "DEBUG" }, false, "debug: x", 0, TS_MATCH_YES, "" },
	{ { 0 }, { "DEBUG" }, true, "debug: x", 0, TS_MATCH_NO, NULL },
	{ { "a" }, { "b" }, false, "a b", 0, TS_MATCH_NO, NULL },
	{ { "a" }, { "b" }, false, "a c", 0, TS_MATCH_YES, "[0,1]" },
	{ { "warn" }, { "WARNING" }, true, "Warn: x", 0, TS_MATCH_YES, "[0,4]" },
	{ { "warn" }, { "WARNING" }, true, "warning: x", 0, TS_MATCH_NO, NULL },
	/* several greps: all must match */
	{ { "foo", "bar" },
	  { 0 },
	  false,
	  "foo bar",
	  0,
	  TS_MATCH_YES,
	  "[0,3],[4,7]" },
	{ { "foo", "bar" },
	  { 0 },
	  false,
	  "bar foo",
	  0,
	  TS_MATCH_YES,
	  "[0,3],[4,7]" },
	{ { "foo", "bar" }, { 0 }, false, "foo", 0, TS_MATCH_NO, NULL },
	{ { "foo", "bar" }, { 0 }, false, "bar", 0, TS_MATCH_NO, NULL },
	{ { "foo", "bar", "baz" },
	  { 0 },
	  false,
	  "baz bar foo",
	  0,
	  TS_MATCH_YES,
	  "[0,3],[4,7],[8,11]" },
	/* several excludes: any one drops */
	{ { 0 }, { "x", "y" }, false, "y", 0, TS_MATCH_NO, NULL },
	{ { 0 }, { "x", "y" }, false, "x", 0, TS_MATCH_NO, NULL },
	{ { 0 }, { "x", "y" }, false, "z", 0, TS_MATCH_YES, "" },
	{ { "z" }, { "x", "y" }, false, "zyx", 0, TS_MATCH_NO, NULL },
	/* several matches of one pattern */
	{ { "o" },
	  { 0 },
	  false,
	  "foo boo",
	  0,
	  TS_MATCH_YES,
	  "[1,2],[2,3],[5,6],[6,7]" },
	{ { "\\d+" },
	  { 0 },
	  false,
	  "a1 b22 c333",
	  0,
	  TS_MATCH_YES,
	  "[1,2],[4,6],[8,11]" },
	{ { "aa" }, { 0 }, false, "aaaaa", 0, TS_MATCH_YES, "[0,2],[2,4]" },
	{ { "^a" }, { 0 }, false, "aaa", 0, TS_MATCH_YES, "[0,1]" },
	{ { "a$" }, { 0 }, false, "aaa", 0, TS_MATCH_YES, "[2,3]" },
	{ { "a|ab" }, { 0 }, false, "ab ab", 0, TS_MATCH_YES, "[0,1],[3,4]" },
	{ { "(?<=a)b" }, { 0 }, false, "abbab", 0, TS_MATCH_YES, "[1,2],[4,5]" },
	{ { "\\bx" },
	  { 0 },
	  false,
	  "x xx ax x",
	  0,
	  TS_MATCH_YES,
	  "[0,1],[2,3],[8,9]" },
	/* ranges of several patterns: overlapping kept, sorted, duplicates
	 * once */
	{ { "abc", "bcd" },
	  { 0 },
	  false,
	  "abcd",
	  0,
	  TS_MATCH_YES,
	  "[0,3],[1,4]" },
	{ { "bcd", "abc" },
	  { 0 },
	  false,
	  "abcd",
	  0,
	  TS_MATCH_YES,
	  "[0,3],[1,4]" },
	{ { "abc", "ab" }, { 0 }, false, "abc", 0, TS_MATCH_YES, "[0,2],[0,3]" },
	{ { "ab", "a[b]" },
	  { 0 },
	  false,
	  "ab ab",
	  0,
	  TS_MATCH_YES,
	  "[0,2],[3,5]" },
	{ { "a", "b", "c" },
	  { 0 },
	  false,
	  "cba abc",
	  0,
	  TS_MATCH_YES,
	  "[0,1],[1,2],[2,3],[4,5],[5,6],[6,7]" },
	{ { "\\w+", "o" },
	  { 0 },
	  false,
	  "foo bo",
	  0,
	  TS_MATCH_YES,
	  "[0,3],[1,2],[2,3],[4,6],[5,6]" },
	/* empty matches: kept lines, no empty range, no endless loop */
	{ { "" }, { 0 }, false, "anything", 0, TS_MATCH_YES, "" },
	{ { "" }, { 0 }, false, "", 0, TS_MATCH_YES, "" },
	{ { "^" }, { 0 }, false, "xyz", 0, TS_MATCH_YES, "" },
	{ { "$" }, { 0 }, false, "xyz", 0, TS_MATCH_YES, "" },
	{ { "\\b" }, { 0 }, false, "ab cd", 0, TS_MATCH_YES, "" },
	{ { "a*" }, { 0 }, false, "baab", 0, TS_MATCH_YES, "[1,3]" },
	{ { "a*" }, { 0 }, false, "bbb", 0, TS_MATCH_YES, "" },
	{ { "a*" }, { 0 }, false, "aab", 0, TS_MATCH_YES, "[0,2]" },
	{ { "a*?" }, { 0 }, false, "aa", 0, TS_MATCH_YES, "[0,1],[1,2]" },
	{ { "x*" },
	  { 0 },
	  false,
	  "\xC3\xA9x\xC3\xA9xx",
	  0,
	  TS_MATCH_YES,
	  "[2,3],[5,7]" },
	{ { "(?=\xC3\xA9)" },
	  { 0 },
	  false,
	  "a\xC3\xA9\xC3\xA9",
	  0,
	  TS_MATCH_YES,
	  "" },
	{ { "\\B|\xE6\x97\xA5" },
	  { 0 },
	  false,
	  "\xE6\x97\xA5\xE6\x97\xA5",
	  0,
	  TS_MATCH_YES,
	  "[0,3],[3,6]" },
	{ { "a*", "b" }, { 0 }, false, "ab", 0, TS_MATCH_YES, "[0,1],[1,2]" },
	{ { 0 }, { "^" }, false, "xyz", 0, TS_MATCH_NO, NULL },
	{ { 0 }, { "a*" }, false, "xyz", 0, TS_MATCH_NO, NULL },
	/* UTF-8 patterns and lines: byte offsets, whole characters */
	{ { "\xC3\xA9" },
	  { 0 },
	  false,
	  "caf\xC3\xA9 \xC3\xA9",
	  0,
	  TS_MATCH_YES,
	  "[3,5],[6,8]" },
	{ { "\xE6\x97\xA5\xE6\x9C\xAC" /* 日本 */ },
	  { 0 },
	  false,
	  "\xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF"
	  "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",
	  0,
	  TS_MATCH_YES,
	  "[15,21]" },
	{ { "\xF0\x9F\x8E\x89" /* 🎉 */ },
	  { 0 },
	  false,
	  "ok \xF0\x9F\x8E\x89 \xF0\x9F\x8E\x89",
	  0,
	  TS_MATCH_YES,
	  "[3,7],[8,12]" },
	{ { "." },
	  { 0 },
	  false,
	  "\xC3\xA9\xF0\x9F\x8E\x89",
	  0,
	  TS_MATCH_YES,
	  "[0,2],[2,6]" },
	{ { "^.{2}$" },
	  { 0 },
	  false,
	  "\xC3\xA9\xF0\x9F\x8E\x89",
	  0,
	  TS_MATCH_YES,
	  "[0,6]" },
	{ { "[\xC3\xA0-\xC3\xBF]+" },
	  { 0 },
	  false,
	  "x\xC3\xA0\xC3\xA9y",
	  0,
	  TS_MATCH_YES,
	  "[1,5]" },
	/* caseless beyond ASCII */
	{ { "\xC3\x89" /* É */ },
	  { 0 },
	  true,
	  "caf\xC3\xA9",
	  0,
	  TS_MATCH_YES,
	  "[3,5]" },
	{ { "\xC3\x89" }, { 0 }, false, "caf\xC3\xA9", 0, TS_MATCH_NO, NULL },
	{ { "caf\xC3\xA9" },
	  { 0 },
	  true,
	  "CAF\xC3\x89",
	  0,
	  TS_MATCH_YES,
	  "[0,5]" },
	{ { "\xCE\xA3" /* Σ */ },
	  { 0 },
	  true,
	  "\xCF\x82\xCF\x83",
	  0,
	  TS_MATCH_YES,
	  "[0,2],[2,4]" },
	{ { 0 },
	  { "\xD0\x9E\xD0\xA8\xD0\x98\xD0\x91\xD0\x9A\xD0\x90" },
	  true,
	  "\xD0\xBE\xD1\x88\xD0\xB8\xD0\xB1\xD0\xBA\xD0\xB0",
	  0,
	  TS_MATCH_NO,
	  NULL }, /* ОШИБКА drops ошибка */
	/* subjects that are not valid UTF-8: no error (MATCH_INVALID_UTF) */
	{ { "b" },
	  { 0 },
	  false,
	  "a\xFF"
	  "b",
	  0,
	  TS_MATCH_YES,
	  "[2,3]" },
	{ { "." }, { 0 }, false, "\xFF", 0, TS_MATCH_NO, NULL },
	{ { "a" }, { 0 }, false, "a\xC3", 0, TS_MATCH_YES, "[0,1]" },
	{ { "a$" }, { 0 }, false, "a\xC3", 0, TS_MATCH_NO, NULL },
	{ { "\\w+" },
	  { 0 },
	  false,
	  "ab\x80\x80"
	  "cd\xED\xA0\x80"
	  "e",
	  0,
	  TS_MATCH_YES,
	  "[0,2],[4,6],[9,10]" },
	{ { 0 }, { "x" }, false, "\x80\x80x", 0, TS_MATCH_NO, NULL },
	{ { "\xC3\xA9" },
	  { 0 },
	  false,
	  "\xC3\xC3\xA9",
	  0,
	  TS_MATCH_YES,
	  "[1,3]" },
	/* lengths, not NUL terminators */
	{ { "b" }, { 0 }, false, "a\0b", 3, TS_MATCH_YES, "[2,3]" },
	{ { "\\x00" }, { 0 }, false, "a\0b", 3, TS_MATCH_YES, "[1,2]" },
	/* a pattern's own callouts still work */
	{ { "(?C1)a" }, { 0 }, false, "bab", 0, TS_MATCH_YES, "[1,2]" },
};

static void check_mcase(struct ts_filter_cache *c, bool jit,
			const struct mcase *m, size_t idx)
{
	size_t ng = count(m->grep, 4), ne = count(m->excl, 4);
	size_t len = m->len ? m->len : strlen(m->line);
	struct ts_filter *f =
		must_filter(c, jit, m->grep, ng, m->excl, ne, m->icase);
	struct ts_buf b = TS_BUF_INIT;

	/* Ranges are appended after what the buffer holds. */
	assert_int_equal(ts_buf_append(&b, "P", 1), 0);
	enum ts_match r = ts_filter_match(c, f, m->line, len, &b);
	const char *want = m->want == TS_MATCH_YES ? m->ranges : "";
	if (r != m->want || b.len != 1 + strlen(want) ||
	    memcmp(b.data + 1, want, b.len - 1) != 0)
		fail_msg("case %zu (%s, grep %s): got %s \"%.*s\", want %s "
			 "\"%s\"",
			 idx, engine[!jit], ng ? m->grep[0] : "-",
			 match_name(r), (int)b.len - 1, b.data + 1,
			 match_name(m->want), want);
	/* The same verdict without ranges. */
	assert_int_equal(ts_filter_match(c, f, m->line, len, NULL), m->want);
	ts_buf_free(&b);
	ts_filter_free(f);
}

static void test_match_table(void **state)
{
	struct env *e = *state;
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < ARRAY_LEN(mcases); i++)
			check_mcase(e->c[k], k == 0, &mcases[i], i);
}

/* No filter: NULL, and everything is kept without ranges. */
static void test_no_filter(void **state)
{
	struct env *e = *state;
	struct ts_filter *f = (struct ts_filter *)&f; /* must be overwritten */
	char err[64] = "junk";

	assert_int_equal(ts_filter_new(e->c[0], NULL, 0, NULL, 0, true, &f, err,
				       sizeof(err)),
			 0);
	assert_null(f);
	assert_string_equal(err, "");
	struct ts_buf b = TS_BUF_INIT;
	assert_int_equal(ts_filter_match(e->c[0], NULL, "x", 1, &b),
			 TS_MATCH_YES);
	assert_int_equal(b.len, 0);
	assert_int_equal(ts_filter_jit(NULL), 0);
	ts_filter_free(NULL);
	ts_filter_cache_free(NULL);
	ts_buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* Compile errors and limits */

struct ecase {
	bool excl;
	const char *pat;
	const char *msg;
};

static const struct ecase ecases[] = {
	{ false, "ab(c", "grep: missing closing parenthesis at offset 4" },
	{ true, "ab(c", "exclude: missing closing parenthesis at offset 4" },
	{ false, "a)", "grep: unmatched closing parenthesis at offset 1" },
	{ false, "[a",
	  "grep: missing terminating ] for character class at offset 2" },
	{ false, "*a",
	  "grep: quantifier does not follow a repeatable item at offset 0" },
	{ false, "a{2,1}",
	  "grep: numbers out of order in {} quantifier at offset 5" },
	{ true, "\\", "exclude: \\ at end of pattern at offset 1" },
	{ false, "\\C",
	  "grep: using \\C is disabled by the application at offset 2" },
	/* patterns that are not UTF-8 */
	{ false, "\xFF",
	  "grep: UTF-8 error: illegal byte (0xfe or 0xff) at offset 0" },
	{ false, "a\xC3",
	  "grep: UTF-8 error: 1 byte missing at end at offset 1" },
	{ true, "ab\xC3(",
	  "exclude: UTF-8 error: byte 2 top bits not 0x80 at offset 2" },
	{ false, "\xED\xA0\x80",
	  "grep: UTF-8 error: code points 0xd800-0xdfff are not defined at "
	  "offset 0" },
	{ false, "\xC0\x80",
	  "grep: UTF-8 error: overlong 2-byte sequence at offset 0" },
};

static void test_errors(void **state)
{
	struct env *e = *state;
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < ARRAY_LEN(ecases); i++) {
			const struct ecase *ec = &ecases[i];
			const char *ok = "fine";
			const char *p[2] = { ec->excl ? ok : ec->pat,
					     ec->excl ? ec->pat : ok };
			struct ts_filter *f = (struct ts_filter *)&f;
			char err[256];
			int rc = ts_filter_new(e->c[k], &p[0], 1, &p[1], 1,
					       false, &f, err, sizeof(err));
			if (rc != -EINVAL || strcmp(err, ec->msg) != 0)
				fail_msg("case %zu: rc %d \"%s\", want \"%s\"",
					 i, rc, err, ec->msg);
			assert_null(f);
		}
		/* No error text wanted: still refused. */
		const char *bad = "(";
		struct ts_filter *f = NULL;
		assert_int_equal(ts_filter_new(e->c[k], &bad, 1, NULL, 0, false,
					       &f, NULL, 0),
				 -EINVAL);
		assert_null(f);
		/* The good patterns compiled on the way were released. */
		struct ts_filter_cache_stats st;
		ts_filter_cache_stats(e->c[k], &st);
		assert_int_equal(st.entries, st.idle);
	}
}

static void test_limits(void **state)
{
	struct env *e = *state;
	struct ts_filter_cache *c = e->c[1];
	const char *pats[TS_FILTER_MAX_PATTERNS + 1];
	char store[TS_FILTER_MAX_PATTERNS + 1][8];
	char err[256];
	struct ts_filter *f;

	for (size_t i = 0; i <= TS_FILTER_MAX_PATTERNS; i++) {
		snprintf(store[i], sizeof(store[i]), "p%zu", i);
		pats[i] = store[i];
	}
	/* 16 in all is fine, however split. */
	static const size_t ok_split[][2] = { { 16, 0 }, { 0, 16 }, { 9, 7 } };
	for (size_t i = 0; i < ARRAY_LEN(ok_split); i++) {
		size_t ng = ok_split[i][0], ne = ok_split[i][1];
		assert_int_equal(ts_filter_new(c, pats, ng, pats + ng, ne,
					       false, &f, err, sizeof(err)),
				 0);
		assert_non_null(f);
		/* A line with every pattern (p0..p15) but no other: every
		 * grep matches, and so does every exclude. */
		const char *line = "p0 p1 p2 p3 p4 p5 p6 p7 p8 p9 p10 p11 "
				   "p12 p13 p14 p15";
		assert_int_equal(ts_filter_match(c, f, line, strlen(line),
						 NULL),
				 ne ? TS_MATCH_NO : TS_MATCH_YES);
		ts_filter_free(f);
	}
	/* 17 is not. */
	static const size_t bad_split[][2] = { { 17, 0 },
					       { 0, 17 },
					       { 10, 7 },
					       { 1, 16 } };
	for (size_t i = 0; i < ARRAY_LEN(bad_split); i++) {
		size_t ng = bad_split[i][0], ne = bad_split[i][1];
		f = (struct ts_filter *)&f;
		assert_int_equal(ts_filter_new(c, pats, ng, pats, ne, false, &f,
					       err, sizeof(err)),
				 -EINVAL);
		assert_null(f);
		assert_string_equal(err, "too many patterns: 17, at most 16");
	}
	/* Length: 1024 bytes is fine, 1025 is not. */
	char *big = malloc(TS_FILTER_MAX_LEN + 2);
	assert_non_null(big);
	memset(big, 'a', TS_FILTER_MAX_LEN);
	big[TS_FILTER_MAX_LEN] = '\0';
	const char *bp = big;
	assert_int_equal(ts_filter_new(c, &bp, 1, NULL, 0, false, &f, err,
				       sizeof(err)),
			 0);
	char *line = malloc(TS_FILTER_MAX_LEN + 2);
	assert_non_null(line);
	memset(line, 'a', TS_FILTER_MAX_LEN + 1);
	assert_int_equal(ts_filter_match(c, f, line, TS_FILTER_MAX_LEN + 1,
					 NULL),
			 TS_MATCH_YES);
	assert_int_equal(ts_filter_match(c, f, line, TS_FILTER_MAX_LEN - 1,
					 NULL),
			 TS_MATCH_NO);
	ts_filter_free(f);
	big[TS_FILTER_MAX_LEN] = 'a';
	big[TS_FILTER_MAX_LEN + 1] = '\0';
	assert_int_equal(ts_filter_new(c, &bp, 1, NULL, 0, false, &f, err,
				       sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "grep: pattern longer than 1024 bytes");
	assert_int_equal(ts_filter_new(c, NULL, 0, &bp, 1, false, &f, err,
				       sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "exclude: pattern longer than 1024 bytes");
	/* A NULL in the list. */
	const char *withnull[2] = { "a", NULL };
	assert_int_equal(ts_filter_new(c, withnull, 2, NULL, 0, false, &f, err,
				       sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "grep: no pattern");
	/* A short error buffer is cut, not overrun. */
	char tiny[8];
	const char *paren = "(";
	assert_int_equal(ts_filter_new(c, &paren, 1, NULL, 0, false, &f, tiny,
				       sizeof(tiny)),
			 -EINVAL);
	assert_string_equal(tiny, "grep: m");
	free(big);
	free(line);
}

/* ------------------------------------------------------------------ */
/* Long lines: catastrophic patterns are cut short, ordinary ones work */

enum gen {
	G_A,	 /* aaaa…a */
	G_AB,	 /* aaaa…ab */
	G_A_X,	 /* aaaa…a x */
	G_XZY,	 /* xxxx…xzy */
	G_WORDS, /* "wwwwww " repeated, then "!" */
	G_LOG,	 /* "lorem ipsum 123 dolor " repeated, then "error: end" */
};

static char *gen_line(enum gen g, size_t n)
{
	char *s = malloc(n);
	assert_non_null(s);
	switch (g) {
	case G_A:
	case G_AB:
	case G_A_X:
		memset(s, 'a', n);
		if (g == G_AB)
			s[n - 1] = 'b';
		if (g == G_A_X)
			memcpy(s + n - 2, " x", 2);
		break;
	case G_XZY:
		memset(s, 'x', n);
		memcpy(s + n - 2, "zy", 2);
		break;
	case G_WORDS:
		for (size_t i = 0; i < n; i++)
			s[i] = i % 7 == 6 ? ' ' : 'w';
		s[n - 1] = '!';
		break;
	case G_LOG: {
		static const char rep[] = "lorem ipsum 123 dolor ";
		for (size_t i = 0; i < n; i++)
			s[i] = rep[i % (sizeof(rep) - 1)];
		memcpy(s + n - 10, "error: end", 10);
		break;
	}
	}
	return s;
}

struct ccase {
	const char *pat;
	enum gen gen;
	bool may_match; /* YES allowed (the true answer is YES) */
};

/* Each costs seconds without the budget, in one engine or both. */
static const struct ccase ccases[] = {
	{ "(a+)+$", G_AB, false },
	{ "(a+)+$", G_A, true },
	{ "(x+x+)+y", G_XZY, false },
	{ "(\\w+\\s?)+$", G_WORDS, false },
	{ "(?:\\w+\\s?)+!!", G_WORDS, false },
	{ "\\w+x", G_A_X, false },
	{ "\\w+\\w+x", G_A_X, false },
	{ "\\w*\\w*x", G_A_X, true },
	{ "\\w{1,5000}x", G_A_X, false },
	{ "a\\w{0,100}\\w{0,100}x", G_A_X, false },
	{ "(?:\\w|\\w\\w)+x", G_A_X, false },
	{ "(?:a|aa)+x", G_A_X, false },
	{ "(.*a){20}x", G_A_X, false },
	{ "(?:(?=\\w*+!)|a)+x", G_A_X, false }, /* a scan per callout */
};

/* Generous: the budget is 2.07 ms of CPU for a 64 KiB line; CI machines are
 * noisy and run this under ASan.  CPU time of the thread is asserted (a
 * loaded machine can stretch the wall clock at will); wall time is shown. */
#define CATASTROPHIC_MAX_MS 50.0

static void test_catastrophic(void **state)
{
	struct env *e = *state;
	double worst[2] = { 0, 0 };

	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < ARRAY_LEN(ccases); i++) {
			const struct ccase *cc = &ccases[i];
			char *line = gen_line(cc->gen, LONG_LINE);
			struct ts_filter *f = must_filter(e->c[k], k == 0,
							  &cc->pat, 1, NULL, 0,
							  false);
			struct ts_buf b = TS_BUF_INIT;
			double best = 1e9, max = 0, cpu_max = 0;
			enum ts_match r = TS_MATCH_NO;
			for (int rep = 0; rep < 3; rep++) {
				ts_buf_reset(&b);
				double t0 = now_ms(), c0 = cpu_ms();
				r = ts_filter_match(e->c[k], f, line, LONG_LINE,
						    &b);
				double dc = cpu_ms() - c0, dt = now_ms() - t0;
				best = dt < best ? dt : best;
				max = dt > max ? dt : max;
				cpu_max = dc > cpu_max ? dc : cpu_max;
				if (r == TS_MATCH_YES && !cc->may_match)
					fail_msg("%s %s: YES", engine[k],
						 cc->pat);
				if (dc > CATASTROPHIC_MAX_MS)
					fail_msg("%s %s: %.2f ms of CPU (%s)",
						 engine[k], cc->pat, dc,
						 match_name(r));
			}
			print_message("    %-12s %-24s %-6s best %.3f ms, "
				      "worst %.3f ms (%.3f ms CPU)\n",
				      engine[k], cc->pat, match_name(r), best,
				      max, cpu_max);
			worst[k] = cpu_max > worst[k] ? cpu_max : worst[k];
			/* The same pattern as an exclude: as quick. */
			struct ts_filter *x = must_filter(e->c[k], k == 0, NULL,
							  0, &cc->pat, 1,
							  false);
			double c0 = cpu_ms();
			r = ts_filter_match(e->c[k], x, line, LONG_LINE, NULL);
			double dc = cpu_ms() - c0;
			if (dc > CATASTROPHIC_MAX_MS)
				fail_msg("%s exclude %s: %.2f ms of CPU (%s)",
					 engine[k], cc->pat, dc, match_name(r));
			ts_filter_free(x);
			ts_filter_free(f);
			ts_buf_free(&b);
			free(line);
		}
	}
	print_message("    worst line: jit %.3f ms, interpreter %.3f ms of "
		      "CPU\n",
		      worst[0], worst[1]);
}

/* A catastrophic pattern stops the line, and the next line on the same
 * thread gets a whole budget again. */
static void test_budget_per_line(void **state)
{
	struct env *e = *state;
	for (int k = 0; k < 2; k++) {
		const char *pats[] = { "(?:\\w+\\s?)+!!", "ok" };
		struct ts_filter *f =
			must_filter(e->c[k], k == 0, pats, 2, NULL, 0, false);
		char *bad = gen_line(G_WORDS, LONG_LINE);
		char good[] = "wwwww ok wwwww !!";
		for (int i = 0; i < 3; i++) {
			enum ts_match r = ts_filter_match(e->c[k], f, bad,
							  LONG_LINE, NULL);
			assert_int_equal(r, TS_MATCH_LIMIT);
			struct ts_buf b = TS_BUF_INIT;
			r = ts_filter_match(e->c[k], f, good, strlen(good), &b);
			assert_int_equal(r, TS_MATCH_YES);
			assert_int_equal(b.len, strlen("[0,17],[6,8]"));
			assert_memory_equal(b.data, "[0,17],[6,8]", b.len);
			ts_buf_free(&b);
		}
		free(bad);
		ts_filter_free(f);
	}
}

/* A limit ends a line (the JIT stack with the JIT, the depth limit in the
 * interpreter), and ranges are best effort: the line
 * "c" + 60000 "a" + "c" matches (?:a|b)*c at once, but the second match
 * needs a backtracking frame per "a". */
static void test_pcre2_limits(void **state)
{
	struct env *e = *state;
	size_t n = 60002;
	char *line = malloc(n);
	assert_non_null(line);
	memset(line, 'a', n);
	line[0] = line[n - 1] = 'c';
	for (int k = 0; k < 2; k++) {
		const char *p = "(?:a|b)*c";
		struct ts_filter *f =
			must_filter(e->c[k], k == 0, &p, 1, NULL, 0, false);
		struct ts_buf b = TS_BUF_INIT;
		assert_int_equal(ts_filter_match(e->c[k], f, line, n, &b),
				 TS_MATCH_YES);
		assert_int_equal(b.len, 5);
		assert_memory_equal(b.data, "[0,1]", 5);
		/* Without the first "c": no quick match, the line is LIMIT. */
		ts_buf_reset(&b);
		assert_int_equal(ts_filter_match(e->c[k], f, line + 1, n - 1,
						 &b),
				 TS_MATCH_LIMIT);
		assert_int_equal(b.len, 0);
		/* A shorter run fits. */
		assert_int_equal(ts_filter_match(e->c[k], f, line + n - 501,
						 501, &b),
				 TS_MATCH_YES);
		assert_int_equal(b.len, strlen("[0,501]"));
		assert_memory_equal(b.data, "[0,501]", b.len);
		ts_buf_free(&b);
		ts_filter_free(f);
	}
	free(line);
}

struct ocase {
	const char *pat;
	enum gen gen;
	size_t len;
	size_t nranges;
	long s0;	    /* start of the first range; < 0: from the end */
	size_t e_last_back; /* end of the last range, from the end */
};

/* Ordinary patterns on long lines: not cut by the limits or the budget,
 * every range found.  The cases that take a callout per byte or so (a lazy
 * scan of the whole line, hundreds of ranges, a caseless first character
 * in the interpreter, a group repeated per character) use 4 KiB lines: at
 * -O2 they fit a 64 KiB line's budget (0.5 ms of 2.07 with the JIT, 1.4 ms
 * in the interpreter), but an -O0 sanitizer build makes the callout
 * function about three times slower, and that margin is too thin for a
 * test. */
static const struct ocase ocases[] = {
	{ "error", G_LOG, LONG_LINE, 1, -10, 5 },
	{ "error: end$", G_LOG, LONG_LINE, 1, -10, 0 },
	{ "\\bend\\b", G_LOG, LONG_LINE, 1, -3, 0 },
	{ "ipsum.*error", G_LOG, LONG_LINE, 1, 6, 5 },
	{ "^lorem.*ipsum", G_LOG, LONG_LINE, 1, 0, 31 },
	{ "^a+$", G_A, LONG_LINE, 1, 0, 0 },
	{ "(?i)ERROR", G_LOG, 4096, 1, -10, 5 },
	{ "lorem.*?end", G_LOG, 4096, 1, 0, 0 },
	{ "\\d{3} dolor(?= )", G_LOG, 4096, 185, 12, 27 },
	{ "^(?:\\w+ )+lorem", G_LOG, 4096, 1, 0, 21 },
	{ "(?:a|b)+", G_A, 1024, 1, 0, 0 },
	{ "error", G_LOG, 1 << 20, 1, -10, 5 },
	{ "ipsum.*error", G_LOG, 1 << 20, 1, 6, 5 },
};

static void test_long_ordinary(void **state)
{
	struct env *e = *state;
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < ARRAY_LEN(ocases); i++) {
			const struct ocase *oc = &ocases[i];
			char *line = gen_line(oc->gen, oc->len);
			struct ts_filter *f = must_filter(e->c[k], k == 0,
							  &oc->pat, 1, NULL, 0,
							  false);
			struct ts_buf b = TS_BUF_INIT;
			double dt = 0;
			size_t n = 0;
			/* Ranges are best effort within a CPU budget: a busy
			 * machine (sanitizers, a parallel make check) can cut
			 * one run short, not five in a row. */
			for (int attempt = 0; attempt < 5; attempt++) {
				ts_buf_reset(&b);
				double t0 = now_ms();
				enum ts_match r = ts_filter_match(e->c[k], f,
								  line, oc->len,
								  &b);
				dt = now_ms() - t0;
				if (r != TS_MATCH_YES)
					fail_msg("%s %s: %s after %.3f ms",
						 engine[k], oc->pat,
						 match_name(r), dt);
				assert_int_equal(ts_buf_append(&b, "", 1), 0);
				n = 0;
				for (const char *p = b.data; *p; p++)
					n += *p == '[';
				if (n == oc->nranges)
					break;
			}
			size_t s0 = oc->s0 < 0 ? oc->len - (size_t)-oc->s0
					       : (size_t)oc->s0;
			char first[32], last[32];
			snprintf(first, sizeof(first), "[%zu,", s0);
			snprintf(last, sizeof(last), ",%zu]",
				 oc->len - oc->e_last_back);
			size_t bl = strlen(b.data), ll = strlen(last);
			if (n != oc->nranges ||
			    strncmp(b.data, first, strlen(first)) != 0 ||
			    bl < ll || strcmp(b.data + bl - ll, last) != 0)
				fail_msg("%s %s: %zu ranges %.30s...%s; want "
					 "%zu %s...%s",
					 engine[k], oc->pat, n, b.data,
					 bl > 30 ? b.data + bl - 30 : "",
					 oc->nranges, first, last);
			print_message("    %-12s %-20s %7zu bytes %.3f ms\n",
				      engine[k], oc->pat, oc->len, dt);
			ts_buf_free(&b);
			ts_filter_free(f);
			free(line);
		}
	}
}

/* ------------------------------------------------------------------ */
/* The cache */

static void stats(struct ts_filter_cache *c, size_t entries, size_t idle)
{
	struct ts_filter_cache_stats st;
	ts_filter_cache_stats(c, &st);
	if (st.entries != entries || st.idle != idle)
		fail_msg("cache: %zu entries, %zu idle; want %zu, %zu",
			 st.entries, st.idle, entries, idle);
}

static void test_cache(void **state)
{
	(void)state;
	for (int k = 0; k < 2; k++) {
		struct ts_filter_cache *c = ts_filter_cache_new_jit(k == 0);
		assert_non_null(c);
		struct ts_filter_cache_stats st;
		ts_filter_cache_stats(c, &st);
		assert_int_equal(st.jit, k == 0);
		stats(c, 0, 0);

		const char *p1[] = { "err(or)?" };
		struct ts_filter *a =
			must_filter(c, k == 0, p1, 1, NULL, 0, false);
		struct ts_filter *b =
			must_filter(c, k == 0, NULL, 0, p1, 1, false);
		stats(c, 1, 0); /* grep or exclude: the same program */
		struct ts_filter *ci =
			must_filter(c, k == 0, p1, 1, NULL, 0, true);
		stats(c, 2, 0); /* icase: another one */
		const char *p2[] = { "err(or)?", "err(or)?", "x" };
		struct ts_filter *d =
			must_filter(c, k == 0, p2, 3, NULL, 0, false);
		stats(c, 3, 0);
		ts_filter_cache_stats(c, &st);
		assert_int_equal(st.misses, 3);
		assert_int_equal(st.hits, 3);

		/* The shared program gives every user the right answers. */
		assert_int_equal(ts_filter_match(c, a, "err", 3, NULL),
				 TS_MATCH_YES);
		assert_int_equal(ts_filter_match(c, b, "err", 3, NULL),
				 TS_MATCH_NO);
		assert_int_equal(ts_filter_match(c, ci, "ERR", 3, NULL),
				 TS_MATCH_YES);
		assert_int_equal(ts_filter_match(c, a, "ERR", 3, NULL),
				 TS_MATCH_NO);

		ts_filter_free(a);
		stats(c, 3, 0);
		ts_filter_free(b);
		stats(c, 3, 0);
		ts_filter_free(d);
		stats(c, 3, 2); /* err(or)? and x are idle now */
		/* An idle program is found again without compiling. */
		a = must_filter(c, k == 0, p1, 1, NULL, 0, false);
		stats(c, 3, 1);
		ts_filter_cache_stats(c, &st);
		assert_int_equal(st.misses, 3);
		ts_filter_free(a);
		ts_filter_free(ci);
		stats(c, 3, 3);

		/* At most TS_FILTER_CACHE_IDLE_MAX idle programs, the least
		 * recently released dropped first. */
		char pat[32];
		for (int i = 0; i < TS_FILTER_CACHE_IDLE_MAX + 2; i++) {
			snprintf(pat, sizeof(pat), "n%d", i);
			const char *pp = pat;
			struct ts_filter *t =
				must_filter(c, k == 0, &pp, 1, NULL, 0, false);
			ts_filter_free(t);
		}
		stats(c, TS_FILTER_CACHE_IDLE_MAX, TS_FILTER_CACHE_IDLE_MAX);
		ts_filter_cache_stats(c, &st);
		assert_int_equal(st.misses, 3 + TS_FILTER_CACHE_IDLE_MAX + 2);
		/* The newest are there (a hit), the oldest were dropped. */
		snprintf(pat, sizeof(pat), "n%d", TS_FILTER_CACHE_IDLE_MAX + 1);
		const char *pp = pat;
		a = must_filter(c, k == 0, &pp, 1, NULL, 0, false);
		ts_filter_cache_stats(c, &st);
		assert_int_equal(st.misses, 3 + TS_FILTER_CACHE_IDLE_MAX + 2);
		/* In-use programs are never dropped, however many. */
		struct ts_filter *keep[TS_FILTER_CACHE_IDLE_MAX + 4];
		for (int i = 0; i < TS_FILTER_CACHE_IDLE_MAX + 4; i++) {
			snprintf(pat, sizeof(pat), "u%d", i);
			pp = pat;
			keep[i] =
				must_filter(c, k == 0, &pp, 1, NULL, 0, false);
		}
		ts_filter_cache_stats(c, &st);
		assert_int_equal(st.entries - st.idle,
				 TS_FILTER_CACHE_IDLE_MAX + 4 + 1);
		for (int i = 0; i < TS_FILTER_CACHE_IDLE_MAX + 4; i++) {
			snprintf(pat, sizeof(pat), "u%d", i);
			assert_int_equal(ts_filter_match(c, keep[i], pat,
							 strlen(pat), NULL),
					 TS_MATCH_YES);
			ts_filter_free(keep[i]);
		}
		ts_filter_free(a);
		stats(c, TS_FILTER_CACHE_IDLE_MAX, TS_FILTER_CACHE_IDLE_MAX);
		ts_filter_cache_free(c);
	}
}

static void test_env_no_jit(void **state)
{
	(void)state;
	static const struct {
		const char *val; /* NULL: unset */
		bool jit;
	} cases[] = { { NULL, true },
		      { "", true },
		      { "0", true },
		      { "1", false },
		      { "yes", false } };
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		if (cases[i].val)
			setenv("TAILSSE_NO_JIT", cases[i].val, 1);
		else
			unsetenv("TAILSSE_NO_JIT");
		struct ts_filter_cache *c = ts_filter_cache_new();
		assert_non_null(c);
		struct ts_filter_cache_stats st;
		ts_filter_cache_stats(c, &st);
		assert_int_equal(st.jit, cases[i].jit);
		const char *p = "a";
		struct ts_filter *f =
			must_filter(c, cases[i].jit, &p, 1, NULL, 0, false);
		ts_filter_free(f);
		ts_filter_cache_free(c);
	}
	unsetenv("TAILSSE_NO_JIT");
}

/* ------------------------------------------------------------------ */
/* Threads */

struct tcase {
	const char *line;
	enum ts_match want;
	const char *ranges;
};

static const struct tcase tcases[] = {
	{ "error 42 in module 7", TS_MATCH_YES, "[0,5],[6,8],[19,20]" },
	{ "debug error 1", TS_MATCH_NO, NULL },
	{ "nothing here", TS_MATCH_NO, NULL },
	{ "ERROR 1234567 \xC3\xA9", TS_MATCH_YES, "[0,5],[6,13]" },
	{ "fatal error", TS_MATCH_NO, NULL }, /* no digits */
	{ "99 errors", TS_MATCH_YES, "[0,2],[3,8]" },
};

struct worker {
	struct ts_filter_cache *c;
	const struct ts_filter *f;
	const struct ts_filter *g; /* a second filter: "." */
	int id;
	int iterations;
	int failures;
	char first_failure[160];
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct ts_buf b = TS_BUF_INIT;
	for (int it = 0; it < w->iterations; it++) {
		const struct tcase *t =
			&tcases[(size_t)(it + w->id) % ARRAY_LEN(tcases)];
		ts_buf_reset(&b);
		enum ts_match r = ts_filter_match(w->c, w->f, t->line,
						  strlen(t->line), &b);
		const char *want = t->want == TS_MATCH_YES ? t->ranges : "";
		bool ok = r == t->want && b.len == strlen(want) &&
			  (b.len == 0 || memcmp(b.data, want, b.len) == 0);
		/* Interleave another filter on the same thread state. */
		ts_buf_reset(&b);
		r = ts_filter_match(w->c, w->g, "\xC3\xA9x", 3, &b);
		ok = ok && r == TS_MATCH_YES && b.len == 11 &&
		     memcmp(b.data, "[0,2],[2,3]", 11) == 0;
		if (!ok && w->failures++ == 0)
			snprintf(w->first_failure, sizeof(w->first_failure),
				 "thread %d line \"%s\": %s", w->id, t->line,
				 match_name(r));
	}
	ts_buf_free(&b);
	return NULL;
}

static void test_threads(void **state)
{
	struct env *e = *state;
	enum { NT = 4 };
	for (int k = 0; k < 2; k++) {
		struct ts_filter_cache *c = e->c[k];
		const char *grep[] = { "error", "\\d+" };
		const char *excl[] = { "debug|fatal" };
		const char *dot = ".";
		struct ts_filter *f =
			must_filter(c, k == 0, grep, 2, excl, 1, true);
		struct ts_filter *g =
			must_filter(c, k == 0, &dot, 1, NULL, 0, false);
		struct ts_filter_cache_stats before, after;
		ts_filter_cache_stats(c, &before);

		pthread_t th[NT];
		struct worker w[NT];
		for (int i = 0; i < NT; i++) {
			w[i] = (struct worker){ .c = c,
						.f = f,
						.g = g,
						.id = i,
						.iterations = 3000 };
			assert_int_equal(pthread_create(&th[i], NULL,
							worker_main, &w[i]),
					 0);
		}
		for (int i = 0; i < NT; i++) {
			assert_int_equal(pthread_join(th[i], NULL), 0);
			if (w[i].failures)
				fail_msg("%s: %d failures, first %s", engine[k],
					 w[i].failures, w[i].first_failure);
		}
		/* Each thread's state was freed when it exited. */
		ts_filter_cache_stats(c, &after);
		assert_int_equal(after.threads, before.threads);
		ts_filter_free(f);
		ts_filter_free(g);
	}
}

/* The calling thread's state exists after its first match, and a thread's
 * is freed at its exit. */
static void *one_match(void *arg)
{
	struct worker *w = arg;
	struct ts_filter_cache_stats st;
	w->failures = ts_filter_match(w->c, w->f, "a", 1, NULL) != TS_MATCH_YES;
	ts_filter_cache_stats(w->c, &st);
	w->iterations = (int)st.threads;
	return NULL;
}

static void test_thread_state(void **state)
{
	(void)state;
	struct ts_filter_cache *c = ts_filter_cache_new_jit(true);
	assert_non_null(c);
	const char *p = "a";
	struct ts_filter *f = must_filter(c, true, &p, 1, NULL, 0, false);
	struct ts_filter_cache_stats st;
	ts_filter_cache_stats(c, &st);
	assert_int_equal(st.threads, 0);
	assert_int_equal(ts_filter_match(c, f, "a", 1, NULL), TS_MATCH_YES);
	ts_filter_cache_stats(c, &st);
	assert_int_equal(st.threads, 1);

	struct worker w = { .c = c, .f = f };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, one_match, &w), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(w.failures, 0);
	assert_int_equal(w.iterations, 2); /* while it ran */
	ts_filter_cache_stats(c, &st);
	assert_int_equal(st.threads, 1); /* after it exited */
	ts_filter_free(f);
	ts_filter_cache_free(c); /* frees this thread's state (LSan) */
}

/* ------------------------------------------------------------------ */
/* JSON */

struct jcase {
	const char *in;
	size_t len; /* 0: strlen */
	const char *out;
};

static const struct jcase jcases[] = {
	{ "", 0, "\"\"" },
	{ "plain text", 0, "\"plain text\"" },
	{ "a\"b", 0, "\"a\\\"b\"" },
	{ "a\\b", 0, "\"a\\\\b\"" },
	{ "\\\"", 0, "\"\\\\\\\"\"" },
	{ "\t", 0, "\"\\t\"" },
	{ "a\tb", 0, "\"a\\tb\"" },
	{ "\b\f\n\r", 0, "\"\\b\\f\\n\\r\"" },
	{ "\x01", 0, "\"\\u0001\"" },
	{ "\x1f", 0, "\"\\u001f\"" },
	{ "\x1b[31mred\x1b[0m", 0, "\"\\u001b[31mred\\u001b[0m\"" },
	{ "\0", 1, "\"\\u0000\"" },
	{ "a\0b", 3, "\"a\\u0000b\"" },
	{ "\x7f", 0, "\"\x7f\"" },
	{ " ~/</script>", 0, "\" ~/</script>\"" },
	{ "\xE2\x80\xA8", 0, "\"\\u2028\"" },
	{ "\xE2\x80\xA9", 0, "\"\\u2029\"" },
	{ "a\xE2\x80\xA8"
	  "b\xE2\x80\xA9"
	  "c",
	  0, "\"a\\u2028b\\u2029c\"" },
	{ "\xE2\x80\xA7\xE2\x80\xAA", 0, "\"\xE2\x80\xA7\xE2\x80\xAA\"" },
	{ "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x8E\x89", 0,
	  "\"caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x8E\x89\"" },
	{ "\xC2\x80\xEF\xBF\xBF\xF4\x8F\xBF\xBF", 0,
	  "\"\xC2\x80\xEF\xBF\xBF\xF4\x8F\xBF\xBF\"" },
	/* not UTF-8: U+FFFD per maximal subpart */
	{ "\xFF", 0, "\"\xEF\xBF\xBD\"" },
	{ "a\xE2\x80", 0, "\"a\xEF\xBF\xBD\"" },
	{ "\xC3(", 0, "\"\xEF\xBF\xBD(\"" },
	{ "\xED\xA0\x80", 0, "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"" },
	{ "\xF4\x90\x80\x80", 0,
	  "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"" },
	{ "\xC0\xAF\"", 0, "\"\xEF\xBF\xBD\xEF\xBF\xBD\\\"\"" },
	{ "\xE2\x80\"", 0, "\"\xEF\xBF\xBD\\\"\"" },
};

static void test_json_string(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(jcases); i++) {
		const struct jcase *j = &jcases[i];
		struct ts_buf b = TS_BUF_INIT;
		assert_int_equal(ts_buf_append(&b, "<", 1), 0);
		size_t len = j->len ? j->len : strlen(j->in);
		assert_int_equal(ts_json_string(&b, j->in, len), 0);
		if (b.len != 1 + strlen(j->out) ||
		    memcmp(b.data + 1, j->out, b.len - 1) != 0)
			fail_msg("case %zu: got %.*s want %s", i,
				 (int)b.len - 1, b.data + 1, j->out);
		ts_buf_free(&b);
	}
	/* NULL with no bytes is the empty string. */
	struct ts_buf b = TS_BUF_INIT;
	assert_int_equal(ts_json_string(&b, NULL, 0), 0);
	assert_int_equal(b.len, 2);
	assert_memory_equal(b.data, "\"\"", 2);
	ts_buf_free(&b);
}

/* Every single byte value, alone: the output is valid JSON for it. */
static void test_json_every_byte(void **state)
{
	(void)state;
	for (int c = 0; c < 256; c++) {
		char in = (char)c;
		struct ts_buf b = TS_BUF_INIT;
		assert_int_equal(ts_json_string(&b, &in, 1), 0);
		char want[16];
		if (c == '"' || c == '\\')
			snprintf(want, sizeof(want), "\"\\%c\"", c);
		else if (c == '\b' || c == '\f' || c == '\n' || c == '\r' ||
			 c == '\t')
			snprintf(want, sizeof(want), "\"\\%c\"",
				 "bfnrt"[c == '\b'   ? 0
					 : c == '\f' ? 1
					 : c == '\n' ? 2
					 : c == '\r' ? 3
						     : 4]);
		else if (c < 0x20)
			snprintf(want, sizeof(want), "\"\\u%04x\"", c);
		else if (c < 0x80)
			snprintf(want, sizeof(want), "\"%c\"", c);
		else
			snprintf(want, sizeof(want), "\"\xEF\xBF\xBD\"");
		if (b.len != strlen(want) || memcmp(b.data, want, b.len) != 0)
			fail_msg("byte 0x%02x: %.*s", c, (int)b.len, b.data);
		ts_buf_free(&b);
	}
}

static void test_json_line(void **state)
{
	(void)state;
	static const struct {
		const char *text, *ranges;
		uint64_t off;
		const char *out;
	} cases[] = {
		{ "a \"b\"", "[0,1]", 1734,
		  "{\"line\":\"a \\\"b\\\"\",\"offset\":1734,\"match\":[[0,1]]}" },
		{ "", NULL, 0, "{\"line\":\"\",\"offset\":0,\"match\":[]}" },
		{ "x\ty", "", 18446744073709551615u,
		  "{\"line\":\"x\\ty\",\"offset\":18446744073709551615,"
		  "\"match\":[]}" },
		{ "caf\xC3\xA9 ok", "[0,5],[6,8]", 7,
		  "{\"line\":\"caf\xC3\xA9 ok\",\"offset\":7,"
		  "\"match\":[[0,5],[6,8]]}" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct ts_buf b = TS_BUF_INIT;
		assert_int_equal(ts_buf_puts(&b, "data: "), 0);
		const char *r = cases[i].ranges;
		assert_int_equal(ts_filter_json_line(&b, cases[i].text,
						     strlen(cases[i].text),
						     cases[i].off, r,
						     r ? strlen(r) : 0),
				 0);
		assert_int_equal(ts_buf_append(&b, "", 1), 0);
		assert_string_equal(b.data + 6, cases[i].out);
		assert_memory_equal(b.data, "data: ", 6);
		ts_buf_free(&b);
	}
}

/* ------------------------------------------------------------------ */
/* Golden file: a small log through a filter (grep err|warn, exclude
 * ignore, icase) into format=json data, each line's offset in the file as
 * its offset. */

static void test_golden(void **state)
{
	struct env *e = *state;
	size_t inlen, outlen;
	char *in = ts_test_read_data("filter-golden.txt", &inlen);
	char *want = ts_test_read_data("filter-golden.json", &outlen);

	for (int k = 0; k < 2; k++) {
		const char *grep[] = { "err|warn" };
		const char *excl[] = { "ignore" };
		struct ts_filter *f =
			must_filter(e->c[k], k == 0, grep, 1, excl, 1, true);
		struct ts_buf out = TS_BUF_INIT, ranges = TS_BUF_INIT;
		size_t pos = 0;
		while (pos < inlen) {
			const char *nl = memchr(in + pos, '\n', inlen - pos);
			size_t end = nl ? (size_t)(nl - in) : inlen;
			ts_buf_reset(&ranges);
			enum ts_match r = ts_filter_match(e->c[k], f, in + pos,
							  end - pos, &ranges);
			assert_int_not_equal(r, TS_MATCH_LIMIT);
			if (r == TS_MATCH_YES) {
				assert_int_equal(
					ts_filter_json_line(&out, in + pos,
							    end - pos, pos,
							    ranges.data,
							    ranges.len),
					0);
				assert_int_equal(ts_buf_append(&out, "\n", 1),
						 0);
			}
			pos = end + 1;
		}
		bool same =
			out.len == outlen &&
			(outlen == 0 || memcmp(out.data, want, outlen) == 0);
		if (!same)
			fail_msg("%s: golden output differs:\n%.*s", engine[k],
				 (int)out.len, out.data);
		ts_buf_free(&out);
		ts_buf_free(&ranges);
		ts_filter_free(f);
	}
	free(in);
	free(want);
}

/* Which patterns may be searched across lines (ts_filter_scan). */
static void test_scan_safe(void **state)
{
	(void)state;
	static const struct {
		const char *pat;
		bool ok;
	} cases[] = {
		{ " 5\\d\\d ", true },	    { "error", true },
		{ "(?i)warn|error", true }, { "GET /api/.*", true },
		{ "user=\\w+", true },	    { "^foo$", true },
		{ "(?:a|b)c", true },	    { "\\bword\\b", true },
		{ "x\\.y", true },	    { "(?=a)b", false },
		{ "(?!a)b", false },	    { "(?<=a)b", false },
		{ "(?>a+)b", false },	    { "a++b", false },
		{ "a*+b", false },	    { "a\\sb", false },
		{ "[^x]+", false },	    { "\\Aa", false },
		{ "a\\z", false },	    { "\\Ka", false },
		{ "a\\nb", false },	    { "a\nb", false },
		{ "(?s)a.b", false },	    { "(*SKIP)a", false },
		{ "\\x0a", false },	    { "\\p{Any}", false },
		{ "a\\Rb", false },	    { "\\D", false },
		{ "\\W", false },	    { "(?m)^a", false },
	};
	struct ts_filter_cache *c = ts_filter_cache_new_jit(true);
	assert_non_null(c);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ts_filter *f = NULL;
		char err[256];
		const char *g[] = { cases[i].pat };
		assert_int_equal(ts_filter_new(c, g, 1, NULL, 0, false, &f, err,
					       sizeof(err)),
				 0);
		if (ts_filter_can_scan(f) != cases[i].ok)
			fail_msg("%s: can_scan %d, want %d", cases[i].pat,
				 ts_filter_can_scan(f), cases[i].ok);
		ts_filter_free(f);
	}
	/* without the JIT nothing scans */
	struct ts_filter_cache *ci = ts_filter_cache_new_jit(false);
	struct ts_filter *f = NULL;
	const char *g[] = { "error" };
	assert_int_equal(ts_filter_new(ci, g, 1, NULL, 0, false, &f, NULL, 0),
			 0);
	assert_false(ts_filter_can_scan(f));
	ts_filter_free(f);
	ts_filter_cache_free(ci);
	ts_filter_cache_free(c);
}

/* The scan's promise: no line before the first match it reports could be
 * kept by the filter matching lines one by one.  Random plain lines and a
 * set of patterns, checked against ts_filter_match. */
static void test_scan_equivalence(void **state)
{
	(void)state;
	static const char *pats[] = {
		"ab",	    "^a",	  "b$",	    "a.c", "\\bcd\\b",
		"x\\d+",    "(?i)AB",	  "c|dd",   "^$",  "a*",
		"(?:ab)+c", "\\w+ \\w+$", "^.{5}$", "z",
	};
	static const char alphabet[] = "abcdx12 ";
	struct ts_filter_cache *c = ts_filter_cache_new_jit(true);
	assert_non_null(c);
	uint32_t seed = 12345;
	char buf[2048];
	for (size_t pi = 0; pi < sizeof(pats) / sizeof(pats[0]); pi++) {
		struct ts_filter *f = NULL;
		const char *g[] = { pats[pi] };
		assert_int_equal(ts_filter_new(c, g, 1, NULL, 0, false, &f,
					       NULL, 0),
				 0);
		assert_true(ts_filter_can_scan(f));
		for (int round = 0; round < 300; round++) {
			size_t len = 0;
			int nlines =
				1 + (int)((seed = seed * 1103515245 + 12345) >>
					  16) %
					    12;
			for (int l = 0; l < nlines; l++) {
				int ll = (int)((seed = seed * 1103515245 +
						       12345) >>
					       16) %
					 9;
				for (int k = 0; k < ll; k++)
					buf[len++] = alphabet
						[((seed = seed * 1103515245 +
							  12345) >>
						  16) %
						 8];
				buf[len++] = '\n';
			}
			size_t from = 0;
			while (from < len) {
				size_t r = ts_filter_scan(c, f, buf, len, from);
				assert_true(r != (size_t)-1);
				/* every line wholly before the one holding r
				 * must not match alone */
				size_t ls = from;
				for (size_t i = from; i < r && i < len; i++) {
					if (buf[i] != '\n')
						continue;
					if (ts_filter_match(c, f, buf + ls,
							    i - ls, NULL) ==
					    TS_MATCH_YES)
						fail_msg("%s: skipped line '%.*s'",
							 pats[pi],
							 (int)(i - ls),
							 buf + ls);
					ls = i + 1;
				}
				if (r >= len)
					break;
				/* go on after the candidate's line */
				const char *nl = memchr(buf + r, '\n', len - r);
				from = nl ? (size_t)(nl - buf) + 1 : len;
			}
		}
		ts_filter_free(f);
	}
	ts_filter_cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match_table),
		cmocka_unit_test(test_no_filter),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_catastrophic),
		cmocka_unit_test(test_budget_per_line),
		cmocka_unit_test(test_pcre2_limits),
		cmocka_unit_test(test_long_ordinary),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_env_no_jit),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_thread_state),
		cmocka_unit_test(test_json_string),
		cmocka_unit_test(test_json_every_byte),
		cmocka_unit_test(test_json_line),
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_scan_safe),
		cmocka_unit_test(test_scan_equivalence),
	};
	return cmocka_run_group_tests_name("filter", tests, group_setup,
					   group_teardown);
}
