#include <errno.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <string.h>

#include "sse.h"

static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */
static const char ELLIPSIS[] = "\xE2\x80\xA6";	  /* U+2026 */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is invalid;
 * then *bad is the length of its maximal subpart (1..3), which becomes one
 * U+FFFD (Unicode 15, section 3.9, "U+FFFD Substitution of Maximal
 * Subparts"). */
size_t ts_utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
	unsigned char c = s[0];
	size_t need;
	unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		need = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 3;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else {
		*bad = 1;
		return 0;
	}
	size_t i = 1;
	for (; i < need; i++) {
		if (i >= n)
			break;
		unsigned char b = s[i];
		unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
		if (b < l || b > h)
			break;
	}
	if (i == need)
		return need;
	*bad = i;
	return 0;
}

/* Bytes that pass through unchanged and alone: printable ASCII, tab, and
 * other controls except NUL, CR and LF (a stray LF would start a new SSE
 * field: callers never pass one, and this makes sure). */
static inline int plain(unsigned char c)
{
	return c < 0x80 && c != 0 && c != '\r' && c != '\n';
}

#ifdef __SSE2__
/* Bit i set: byte i of the 16 at s is not plain. */
static inline unsigned not_plain16(const unsigned char *s)
{
	const __m128i vcr = _mm_set1_epi8(0x0d), vlf = _mm_set1_epi8(0x0a),
		      zero = _mm_setzero_si128();
	__m128i v = _mm_loadu_si128((const __m128i *)s);
	__m128i bad = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, vcr),
						_mm_cmpeq_epi8(v, vlf)),
				   _mm_cmpeq_epi8(v, zero));
	/* non-ASCII bytes have the high bit: movemask sees them */
	return (unsigned)_mm_movemask_epi8(_mm_or_si128(bad, v));
}
#endif

/* Length of the run of plain bytes at the start of s[0..n) (the usual log
 * line is plain from end to end, so this also finds its '\n'). */
static size_t plain_run(const unsigned char *s, size_t n)
{
	const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
	size_t i = 0;
#ifdef __SSE2__
	/* sixteen at a time where SSE2 is (every x86-64; measured on
	 * 170-byte lines: wider loops gain nothing) */
	for (; i + 16 <= n; i += 16) {
		unsigned m = not_plain16(s + i);
		if (m)
			return i + (size_t)__builtin_ctz(m);
	}
	if (n >= 16 && i < n) {
		/* the last 16, overlapping bytes already known plain */
		unsigned m = not_plain16(s + n - 16);
		return m ? n - 16 + (size_t)__builtin_ctz(m) : n;
	}
#endif
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, s + i, 8);
		uint64_t cr = w ^ (ones * '\r'), lf = w ^ (ones * '\n');
		/* a byte is zero in x iff (x - 1) & ~x has its high bit */
		uint64_t bad = w | ((w - ones) & ~w) | ((cr - ones) & ~cr) |
			       ((lf - ones) & ~lf);
		if (bad & highs)
			break;
	}
	while (i < n && plain(s[i]))
		i++;
	return i;
}

int ts_sse_text(struct ts_buf *out, const char *line, size_t len,
		size_t max_line)
{
	const unsigned char *s = (const unsigned char *)line;
	size_t used = 0; /* bytes of text written so far */
	int rc;

	if (len > 0 && s[len - 1] == '\r')
		len--;
	/* The text can grow (one bad byte becomes three), never beyond this. */
	size_t worst = len * 3 < max_line ? len * 3 : max_line;
	rc = ts_buf_reserve(out, worst + sizeof(ELLIPSIS));
	if (rc)
		return rc;

	size_t i = 0;
	while (i < len) {
		size_t run = i + plain_run(s + i, len - i);
		if (run > i) {
			size_t n = run - i;
			if (used + n > max_line) {
				ts_buf_append(out, s + i, max_line - used);
				goto cut;
			}
			ts_buf_append(out, s + i, n);
			used += n;
			i = run;
			continue;
		}
		size_t bad = 0;
		size_t n = s[i] < 0x80 ? 0 : ts_utf8_seq(s + i, len - i, &bad);
		const void *src = s + i;
		size_t outn = n;
		if (n == 0) {
			/* NUL, CR, or an invalid subpart */
			src = REPLACEMENT;
			outn = 3;
			n = bad ? bad : 1;
		}
		if (used + outn > max_line)
			goto cut;
		rc = ts_buf_append(out, src, outn);
		if (rc)
			return rc;
		used += outn;
		i += n;
	}
	return 0;
cut:
	return ts_buf_append(out, ELLIPSIS, 3);
}

size_t ts_sse_plain_run(const char *s, size_t n)
{
	return plain_run((const unsigned char *)s, n);
}

void ts_sse_idp_set(struct ts_sse_idp *idp, uint64_t ino)
{
	memcpy(idp->s, "id: ", 4);
	char *p = ts_u64_put(idp->s + 4, ino);
	*p++ = ':';
	idp->len = (size_t)(p - idp->s);
}

/* Write "id: INO:OFF\n" at p (room for TS_SSE_EVENT_OVERHEAD): the one
 * writer of the id field.  Returns the end. */
static char *put_id(char *p, const struct ts_sse_idp *idp, uint64_t off)
{
	memcpy(p, idp->s, sizeof(idp->s)); /* fixed size: one move */
	p = ts_u64_put(p + idp->len, off);
	*p++ = '\n';
	return p;
}

int ts_sse_id(struct ts_buf *out, uint64_t ino, uint64_t off)
{
	struct ts_sse_idp idp;
	ts_sse_idp_set(&idp, ino);
	int rc = ts_buf_reserve(out, TS_SSE_EVENT_OVERHEAD);
	if (rc)
		return rc;
	out->len =
		(size_t)(put_id(out->data + out->len, &idp, off) - out->data);
	return 0;
}

int ts_sse_plain_line(struct ts_buf *out, const struct ts_sse_idp *idp,
		      const char *line, size_t len, uint64_t off)
{
	int rc = ts_buf_reserve(out, TS_SSE_EVENT_OVERHEAD + len);
	if (rc)
		return rc;
	char *p = put_id(out->data + out->len, idp, off);
	memcpy(p, "data: ", 6);
	memcpy(p + 6, line, len);
	p += 6 + len;
	memcpy(p, "\n\n", 2);
	out->len = (size_t)(p + 2 - out->data);
	return 0;
}

int ts_sse_line(struct ts_buf *out, const char *line, size_t len,
		size_t max_line, uint64_t ino, uint64_t off)
{
	/* the usual line: written in one go (a replay encodes millions of
	 * events per second) */
	if (len <= max_line &&
	    plain_run((const unsigned char *)line, len) == len) {
		struct ts_sse_idp idp;
		ts_sse_idp_set(&idp, ino);
		return ts_sse_plain_line(out, &idp, line, len, off);
	}
	int rc = ts_sse_id(out, ino, off);
	if (rc == 0)
		rc = ts_buf_append(out, "data: ", 6);
	if (rc == 0)
		rc = ts_sse_text(out, line, len, max_line);
	if (rc)
		return rc;
	return ts_buf_append(out, "\n\n", 2);
}

int ts_sse_retry(struct ts_buf *out, unsigned ms)
{
	return ts_buf_printf(out, "retry: %u\n\n", ms);
}

int ts_sse_comment(struct ts_buf *out, const char *text)
{
	return ts_buf_printf(out, ": %s\n\n", text);
}

int ts_sse_event(struct ts_buf *out, const char *type, const char *json,
		 const struct ts_pos *pos)
{
	int rc = ts_buf_printf(out, "event: %s\n", type);
	if (rc == 0 && pos)
		rc = ts_sse_id(out, pos->ino, pos->off);
	if (rc == 0)
		rc = ts_buf_printf(out, "data: %s\n\n", json);
	return rc;
}

/* Parse [s, end) as decimal digits into *out, refusing overflow past max. */
static int parse_digits(const char *s, const char *end, uint64_t max,
			uint64_t *out)
{
	uint64_t v = 0;
	if (s == end)
		return -EINVAL;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		unsigned d = (unsigned)(*s - '0');
		if (d > max || v > (max - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int ts_parse_uint_n(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	if (!s)
		return -EINVAL;
	return parse_digits(s, s + len, max, out);
}

int ts_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	if (!s)
		return -EINVAL;
	return parse_digits(s, s + strlen(s), max, out);
}

int ts_sse_parse_id_n(const char *s, size_t len, struct ts_pos *pos)
{
	if (!s)
		return -EINVAL;
	const char *end = s + len;
	const char *colon = memchr(s, ':', len);
	struct ts_pos p = { 0, 0, false };
	if (colon) {
		if (parse_digits(s, colon, UINT64_MAX, &p.ino) ||
		    parse_digits(colon + 1, end, INT64_MAX, &p.off))
			return -EINVAL;
		p.has_ino = true;
	} else if (parse_digits(s, end, INT64_MAX, &p.off)) {
		return -EINVAL;
	}
	*pos = p;
	return 0;
}

int ts_sse_parse_id(const char *s, struct ts_pos *pos)
{
	if (!s)
		return -EINVAL;
	return ts_sse_parse_id_n(s, strlen(s), pos);
}

size_t ts_sse_scannable(const char *s, size_t n)
{
	/* the first byte that is not plain ASCII, LF allowed */
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
#ifdef __SSE2__
	const __m128i vcr = _mm_set1_epi8(0x0d), zero = _mm_setzero_si128();
	/* 64 bytes at a time while all is well, then 16 to find where */
	for (; i + 64 <= n; i += 64) {
		__m128i a = _mm_loadu_si128((const __m128i *)(u + i));
		__m128i b = _mm_loadu_si128((const __m128i *)(u + i + 16));
		__m128i c = _mm_loadu_si128((const __m128i *)(u + i + 32));
		__m128i d = _mm_loadu_si128((const __m128i *)(u + i + 48));
		__m128i all =
			_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d));
		__m128i eq = _mm_or_si128(
			_mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(a, vcr),
						  _mm_cmpeq_epi8(b, vcr)),
				     _mm_or_si128(_mm_cmpeq_epi8(c, vcr),
						  _mm_cmpeq_epi8(d, vcr))),
			_mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(a, zero),
						  _mm_cmpeq_epi8(b, zero)),
				     _mm_or_si128(_mm_cmpeq_epi8(c, zero),
						  _mm_cmpeq_epi8(d, zero))));
		if (_mm_movemask_epi8(_mm_or_si128(all, eq)))
			break;
	}
	for (; i + 16 <= n; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(u + i));
		int bad = _mm_movemask_epi8(
			_mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, vcr),
						  _mm_cmpeq_epi8(v, zero)),
				     v));
		if (bad) {
			i += (size_t)__builtin_ctz((unsigned)bad);
			goto found;
		}
	}
#endif
	while (i < n && u[i] != 0 && u[i] != '\r' && u[i] < 0x80)
		i++;
#ifdef __SSE2__
found:
#endif
    ;
	/* up to the end of the last whole line before it */
	const char *nl = i ? memrchr(s, '\n', i) : NULL;
	return nl ? (size_t)(nl - s) + 1 : 0;
}
