/* fuzz_jsonp.h: a strict JSON parser (RFC 8259) for the targets that
 * check JSON output (fuzz_json, fuzz_lines): no raw control byte in a
 * string, valid UTF-8, no lone surrogate, and no raw U+2028/U+2029 (which
 * the writer promises to escape).  jvalue() parses one value; jstring()
 * decodes a string into a buffer.  Static, like fuzz.h. */
#ifndef TS_FUZZ_JSONP_H
#define TS_FUZZ_JSONP_H

#include "buf.h"
#include "fuzz.h"

struct jp {
	const unsigned char *s;
	size_t n, i;
};

static inline void ws(struct jp *p)
{
	while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' ||
			       p->s[p->i] == '\n' || p->s[p->i] == '\r'))
		p->i++;
}

static inline bool lit(struct jp *p, const char *s)
{
	size_t n = strlen(s);
	if (p->n - p->i < n || memcmp(p->s + p->i, s, n) != 0)
		return false;
	p->i += n;
	return true;
}

static inline int hex4(struct jp *p)
{
	int v = 0;
	if (p->n - p->i < 4)
		return -1;
	for (int k = 0; k < 4; k++) {
		unsigned char c = p->s[p->i++];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
					       : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

static inline void put_utf8(struct ts_buf *b, uint32_t cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp, n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | cp >> 6), n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | cp >> 12), n = 3;
	} else {
		u[0] = (char)(0xF0 | cp >> 18), n = 4;
	}
	for (size_t k = 1; k < n; k++)
		u[k] = (char)(0x80 | ((cp >> (6 * (n - 1 - k))) & 0x3F));
	FUZZ_CHECK(ts_buf_append(b, u, n) == 0, "oom");
}

/* A string at p->i, decoded into `out` (may be NULL). */
static inline bool jstring(struct jp *p, struct ts_buf *out)
{
	struct ts_buf tmp = TS_BUF_INIT;
	bool ok = false;
	if (!out)
		out = &tmp;
	if (!lit(p, "\""))
		return false;
	for (;;) {
		if (p->i >= p->n)
			goto done;
		unsigned char c = p->s[p->i];
		if (c == '"') {
			p->i++;
			break;
		}
		if (c < 0x20)
			goto done;
		if (c != '\\') {
			/* one raw character: valid UTF-8, not U+2028/9 */
			size_t k = c < 0x80   ? 1
				   : c < 0xE0 ? 2
				   : c < 0xF0 ? 3
					      : 4;
			if (p->n - p->i < k || !fuzz_utf8_valid(p->s + p->i, k))
				goto done;
			if (k == 3 && c == 0xE2 && p->s[p->i + 1] == 0x80 &&
			    (p->s[p->i + 2] == 0xA8 || p->s[p->i + 2] == 0xA9))
				goto done;
			FUZZ_CHECK(ts_buf_append(out, p->s + p->i, k) == 0,
				   "oom");
			p->i += k;
			continue;
		}
		p->i++;
		if (p->i >= p->n)
			goto done;
		c = p->s[p->i++];
		const char *simple = strchr("\"\\/bfnrt", c);
		if (c && simple) {
			static const char dec[] = "\"\\/\b\f\n\r\t";
			FUZZ_CHECK(ts_buf_append(out,
						 &dec[simple - "\"\\/bfnrt"],
						 1) == 0,
				   "oom");
			continue;
		}
		if (c != 'u')
			goto done;
		int cp = hex4(p);
		if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
			goto done;
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			if (!lit(p, "\\u"))
				goto done;
			int lo = hex4(p);
			if (lo < 0xDC00 || lo > 0xDFFF)
				goto done;
			cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
		}
		put_utf8(out, (uint32_t)cp);
	}
	ok = true;
done:
	ts_buf_free(&tmp);
	return ok;
}

/* A number; *is_u64 and *v when it is a non-negative integer that fits. */
static inline bool jnumber(struct jp *p, bool *is_u64, uint64_t *v)
{
	size_t start = p->i;
	unsigned __int128 acc = 0;
	bool neg = lit(p, "-"), frac = false;
	size_t digits = 0;
	if (p->i < p->n && p->s[p->i] == '0') {
		p->i++;
		digits = 1;
	} else {
		while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
			if (digits < 30)
				acc = acc * 10 + (p->s[p->i] - '0');
			p->i++;
			digits++;
		}
	}
	if (digits == 0)
		return false;
	if (lit(p, ".")) {
		frac = true;
		if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9')
			return false;
		while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
			p->i++;
	}
	if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
		frac = true;
		p->i++;
		if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-'))
			p->i++;
		if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9')
			return false;
		while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
			p->i++;
	}
	*is_u64 = !neg && !frac && digits <= 20 && acc <= UINT64_MAX &&
		  p->i > start;
	*v = (uint64_t)acc;
	return true;
}

static inline bool jvalue(struct jp *p, int depth);

static inline bool jarray(struct jp *p, int depth)
{
	if (!lit(p, "["))
		return false;
	ws(p);
	if (lit(p, "]"))
		return true;
	for (;;) {
		ws(p);
		if (!jvalue(p, depth + 1))
			return false;
		ws(p);
		if (lit(p, "]"))
			return true;
		if (!lit(p, ","))
			return false;
	}
}

static inline bool jobject(struct jp *p, int depth)
{
	if (!lit(p, "{"))
		return false;
	ws(p);
	if (lit(p, "}"))
		return true;
	for (;;) {
		ws(p);
		if (!jstring(p, NULL))
			return false;
		ws(p);
		if (!lit(p, ":"))
			return false;
		ws(p);
		if (!jvalue(p, depth + 1))
			return false;
		ws(p);
		if (lit(p, "}"))
			return true;
		if (!lit(p, ","))
			return false;
	}
}

static inline bool jvalue(struct jp *p, int depth)
{
	bool u;
	uint64_t v;
	if (depth > 64 || p->i >= p->n)
		return false;
	switch (p->s[p->i]) {
	case '{':
		return jobject(p, depth);
	case '[':
		return jarray(p, depth);
	case '"':
		return jstring(p, NULL);
	case 't':
		return lit(p, "true");
	case 'f':
		return lit(p, "false");
	case 'n':
		return lit(p, "null");
	default:
		return jnumber(p, &u, &v);
	}
}

/* The end of a match array's items "[s,e],...]" at s[i] (i just after
 * its '['): the index of its closing ']'. */
static inline size_t ranges_end(const char *s, size_t n, size_t i)
{
	while (i < n && s[i] != ']') {
		while (i < n && s[i] != ']')
			i++; /* one item "[s,e" */
		if (i < n)
			i++; /* its ']' */
		if (i < n && s[i] == ',')
			i++;
	}
	return i;
}

/* Are the JSON texts g and w the same, but for each "match":[...] array
 * of g holding only the first ranges of w's?  The matches of a line are
 * best effort (filter.h: a limit or the time budget that stops the
 * search keeps the ranges found so far), so a reference of every match
 * sees a prefix of its ranges. */
static inline bool fuzz_same_but_ranges(const char *g, size_t gn, const char *w,
					size_t wn)
{
	static const char key[] = "\"match\":[";
	const size_t kn = sizeof(key) - 1;
	size_t i = 0, j = 0;
	while (i < gn && j < wn) {
		if (gn - i >= kn && wn - j >= kn &&
		    memcmp(g + i, key, kn) == 0 &&
		    memcmp(w + j, key, kn) == 0) {
			i += kn;
			j += kn;
			size_t ge = ranges_end(g, gn, i),
			       we = ranges_end(w, wn, j);
			size_t k = ge - i;
			/* a prefix of whole items: w goes on with ',' or ends */
			if (k > we - j || (k && memcmp(g + i, w + j, k) != 0) ||
			    (k < we - j && k && w[j + k] != ','))
				return false;
			i = ge;
			j = we;
			continue;
		}
		if (g[i] != w[j])
			return false;
		i++;
		j++;
	}
	return i == gn && j == wn;
}

#endif
