/* fuzz_id.c: event ids, "INODE:OFFSET" or "OFFSET" (src/sse.c).
 *
 * The input, as an exact-size heap copy without a NUL, goes to
 * ts_sse_parse_id_n; AddressSanitizer stops any read past its end, on
 * rejected input as on accepted.  Properties:
 *  - it accepts exactly what a plain reference accepts (digits only, INODE
 *    below 2^64, OFFSET below 2^63) and finds the same position;
 *  - an accepted id written back (ts_sse_id, "id: INO:OFF\n", or a bare
 *    OFFSET in decimal) parses to the same position, and is the input
 *    itself when the input had no leading zeros;
 *  - ts_sse_parse_id on a NUL-terminated copy agrees with the
 *    length-taking parser up to the first NUL;
 *  - ts_parse_uint_n / ts_parse_uint agree with the reference for a few
 *    bounds (UINT64_MAX, INT64_MAX, TS_TAIL_MAX-like ones, 0).
 * (Multi-log cursors, "A=INODE:OFFSET,...", go through this parser too;
 * their own syntax is fuzzed by fuzz_request.) */
#include <errno.h>

#include "buf.h"
#include "fuzz.h"
#include "sse.h"

/* Digits only, value at most max; leading zeros allowed. */
static bool ref_uint(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	while (n > 1 && s[0] == '0') {
		s++;
		n--;
	}
	if (n > 20)
		return false;
	unsigned __int128 v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (unsigned)(s[i] - '0');
	if (v > max)
		return false;
	*out = (uint64_t)v;
	return true;
}

static bool ref_id(const char *s, size_t n, struct ts_pos *p)
{
	const char *colon = memchr(s, ':', n);
	p->has_ino = colon != NULL;
	p->ino = 0;
	if (!colon)
		return ref_uint(s, n, INT64_MAX, &p->off);
	size_t il = (size_t)(colon - s);
	return ref_uint(s, il, UINT64_MAX, &p->ino) &&
	       ref_uint(colon + 1, n - il - 1, INT64_MAX, &p->off);
}

static bool same_pos(const struct ts_pos *a, const struct ts_pos *b)
{
	return a->has_ino == b->has_ino && a->off == b->off &&
	       (!a->has_ino || a->ino == b->ino);
}

static bool leading_zero(const char *s, size_t n)
{
	return n > 1 && s[0] == '0' && s[1] != ':';
}

/* Write p back as a client would send it, parse that again. */
static void round_trip(const char *s, size_t n, const struct ts_pos *p)
{
	struct ts_buf b = TS_BUF_INIT;
	const char *text;
	size_t tlen;
	if (p->has_ino) {
		FUZZ_CHECK(ts_sse_id(&b, p->ino, p->off) == 0, "ts_sse_id");
		FUZZ_CHECK(b.len > 5 && memcmp(b.data, "id: ", 4) == 0 &&
				   b.data[b.len - 1] == '\n',
			   "id field not \"id: ...\\n\"");
		text = b.data + 4;
		tlen = b.len - 5;
	} else {
		FUZZ_CHECK(ts_buf_u64(&b, p->off) == 0, "ts_buf_u64");
		text = b.data;
		tlen = b.len;
	}
	char *copy = fuzz_dup(text, tlen);
	struct ts_pos q;
	FUZZ_CHECK(ts_sse_parse_id_n(copy, tlen, &q) == 0,
		   "written id does not parse again");
	FUZZ_CHECK(same_pos(p, &q), "parse(write(id)) differs");
	/* canonical input: written back as it came */
	const char *colon = memchr(s, ':', n);
	if (!leading_zero(s, n) &&
	    !(colon && leading_zero(colon + 1, n - (size_t)(colon + 1 - s))))
		FUZZ_CHECK(tlen == n && memcmp(copy, s, n) == 0,
			   "write(parse(id)) is not the id");
	free(copy);
	ts_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t bounds[] = { UINT64_MAX, INT64_MAX, 1000000,
					   10000,      9,	  0 };
	char *s = fuzz_dup(data, size);
	struct ts_pos got = { 12345, 67890, true }, want;

	int rc = ts_sse_parse_id_n(s, size, &got);
	bool ok = ref_id(s, size, &want);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "rc %d", rc);
	FUZZ_CHECK((rc == 0) == ok, "parser %s what the reference %s",
		   rc ? "rejects" : "accepts", ok ? "accepts" : "rejects");
	if (ok) {
		FUZZ_CHECK(same_pos(&got, &want),
			   "position %d %llu:%llu, reference %llu:%llu",
			   got.has_ino, (unsigned long long)got.ino,
			   (unsigned long long)got.off,
			   (unsigned long long)want.ino,
			   (unsigned long long)want.off);
		round_trip(s, size, &got);
	}

	/* the NUL-terminated parser sees the text up to its first NUL */
	char *z = fuzz_dupz(data, size);
	size_t zlen = strlen(z);
	struct ts_pos zp, np;
	int zrc = ts_sse_parse_id(z, &zp);
	int nrc = ts_sse_parse_id_n(s, zlen, &np);
	FUZZ_CHECK(zrc == nrc, "parse_id %d, parse_id_n %d", zrc, nrc);
	if (zrc == 0)
		FUZZ_CHECK(same_pos(&zp, &np),
			   "parse_id and parse_id_n differ");

	uint64_t max = bounds[size % (sizeof(bounds) / sizeof(bounds[0]))];
	uint64_t v = 7, rv;
	rc = ts_parse_uint_n(s, size, max, &v);
	ok = ref_uint(s, size, max, &rv);
	FUZZ_CHECK((rc == 0) == ok && (!ok || v == rv),
		   "parse_uint_n %d %llu, reference %d %llu (max %llu)", rc,
		   (unsigned long long)v, ok, (unsigned long long)rv,
		   (unsigned long long)max);
	rc = ts_parse_uint(z, max, &v);
	ok = ref_uint(z, zlen, max, &rv);
	FUZZ_CHECK((rc == 0) == ok && (!ok || v == rv),
		   "parse_uint %d, reference %d", rc, ok);

	free(z);
	free(s);
	return 0;
}
