/* fuzz_json.c: the format=json line writer, ts_filter_json_line and
 * ts_json_string (src/filter.c).
 *
 * Input: flags (1 byte), offset (8), max_line (2), a count of ranges (1)
 * and each range (2 + 2 bytes), then the text.  Flag bit 0 sends the text
 * through ts_sse_text first, as the stream does (the JSON writer then sees
 * valid UTF-8); else the raw bytes go in.  Ranges are clipped to the line,
 * as ts_filter_match's are, and written "[s,e],[s,e]".
 *
 * Properties: the output, appended after what the buffer held, is one JSON
 * value by a strict parser (RFC 8259: no raw control byte in a string,
 * valid UTF-8, no lone surrogate; and no raw U+2028/U+2029, which the
 * writer promises to escape): an object {"line":S,"offset":N,"match":[...]}
 * in that order, whose line decodes to the text (the raw text with each
 * maximal invalid UTF-8 subpart as U+FFFD), whose offset is the offset, and
 * whose match is the ranges given, each inside the decoded line. */
#include <errno.h>

#include "buf.h"
#include "filter.h"
#include "fuzz.h"
#include "sse.h"

#define MAX_RANGES 16

/* ---- a strict JSON parser, just enough for this object ---- */

struct jp {
	const unsigned char *s;
	size_t n, i;
};

static void ws(struct jp *p)
{
	while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' ||
			       p->s[p->i] == '\n' || p->s[p->i] == '\r'))
		p->i++;
}

static bool lit(struct jp *p, const char *s)
{
	size_t n = strlen(s);
	if (p->n - p->i < n || memcmp(p->s + p->i, s, n) != 0)
		return false;
	p->i += n;
	return true;
}

static int hex4(struct jp *p)
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

static void put_utf8(struct ts_buf *b, uint32_t cp)
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
static bool jstring(struct jp *p, struct ts_buf *out)
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
			size_t k = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
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
			FUZZ_CHECK(ts_buf_append(out, &dec[simple - "\"\\/bfnrt"],
						 1) == 0, "oom");
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
static bool jnumber(struct jp *p, bool *is_u64, uint64_t *v)
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

static bool jvalue(struct jp *p, int depth);

static bool jarray(struct jp *p, int depth)
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

static bool jobject(struct jp *p, int depth)
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

static bool jvalue(struct jp *p, int depth)
{
	bool u;
	uint64_t v;
	if (depth > 64 || p->i >= p->n)
		return false;
	switch (p->s[p->i]) {
	case '{': return jobject(p, depth);
	case '[': return jarray(p, depth);
	case '"': return jstring(p, NULL);
	case 't': return lit(p, "true");
	case 'f': return lit(p, "false");
	case 'n': return lit(p, "null");
	default: return jnumber(p, &u, &v);
	}
}

/* ---- the expected line ---- */

/* The raw text with each maximal invalid subpart as U+FFFD. */
static void ref_json_text(const unsigned char *s, size_t n, struct ts_buf *b)
{
	for (size_t i = 0; i < n;) {
		size_t bad = 0, k = s[i] < 0x80 ? 1 : fuzz_utf8_ref(s + i, n - i,
								     &bad);
		if (k) {
			FUZZ_CHECK(ts_buf_append(b, s + i, k) == 0, "oom");
			i += k;
		} else {
			FUZZ_CHECK(ts_buf_append(b, "\xEF\xBF\xBD", 3) == 0,
				   "oom");
			i += bad;
		}
	}
}

/* Parse out, an object of exactly line, offset, match (in that order), and
 * check each against what went in. */
static void check_output(const char *out, size_t n, const struct ts_buf *want,
			 uint64_t offset, const uint64_t (*ranges)[2],
			 size_t nranges)
{
	struct jp p = { (const unsigned char *)out, n, 0 };
	struct jp all = p;
	struct ts_buf line = TS_BUF_INIT, key = TS_BUF_INIT;
	bool u;
	uint64_t v;

	FUZZ_CHECK(jvalue(&all, 0) && (ws(&all), all.i == n),
		   "not one JSON value: %.*s", (int)(n < 200 ? n : 200), out);

	FUZZ_CHECK(lit(&p, "{") && jstring(&p, &key) && key.len == 4 &&
			   memcmp(key.data, "line", 4) == 0 && lit(&p, ":"),
		   "no \"line\" first");
	FUZZ_CHECK(jstring(&p, &line), "line not a string");
	if (line.len != want->len ||
	    (line.len && memcmp(line.data, want->data, line.len))) {
		fprintf(stderr, "line decodes to \"");
		fuzz_show(stderr, line.data, line.len);
		fprintf(stderr, "\", expected \"");
		fuzz_show(stderr, want->data, want->len);
		fprintf(stderr, "\"\n");
		FUZZ_CHECK(0, "line differs");
	}
	FUZZ_CHECK(lit(&p, ",\"offset\":") && jnumber(&p, &u, &v) && u &&
			   v == offset,
		   "offset");
	FUZZ_CHECK(lit(&p, ",\"match\":["), "no match array");
	for (size_t r = 0; r < nranges; r++) {
		uint64_t s, e;
		FUZZ_CHECK((r == 0 || lit(&p, ",")) && lit(&p, "[") &&
				   jnumber(&p, &u, &s) && u && lit(&p, ",") &&
				   jnumber(&p, &u, &e) && u && lit(&p, "]"),
			   "range %zu not [s,e]", r);
		FUZZ_CHECK(s == ranges[r][0] && e == ranges[r][1],
			   "range %zu changed", r);
		FUZZ_CHECK(s <= e && e <= line.len,
			   "range [%llu,%llu] outside a line of %zu bytes",
			   (unsigned long long)s, (unsigned long long)e,
			   line.len);
	}
	FUZZ_CHECK(lit(&p, "]}") && p.i == n, "junk after the match array");
	ts_buf_free(&line);
	ts_buf_free(&key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	unsigned flags = (unsigned)fuzz_take(&in, 1);
	uint64_t offset = fuzz_take(&in, 8);
	size_t max_line = (size_t)fuzz_take(&in, 2);
	size_t nranges = (size_t)fuzz_take(&in, 1) % (MAX_RANGES + 1);
	uint16_t raw[MAX_RANGES][2];
	for (size_t r = 0; r < nranges; r++) {
		raw[r][0] = (uint16_t)fuzz_take(&in, 2);
		raw[r][1] = (uint16_t)fuzz_take(&in, 2);
	}

	struct ts_buf text = TS_BUF_INIT, want = TS_BUF_INIT;
	char *line;
	size_t len;
	if (flags & 1) {
		FUZZ_CHECK(ts_sse_text(&text, (const char *)in.p, in.n,
				       max_line) == 0, "ts_sse_text");
		line = fuzz_dup(text.data, text.len);
		len = text.len;
		FUZZ_CHECK(fuzz_utf8_valid(line, len), "ts_sse_text output");
		FUZZ_CHECK(ts_buf_append(&want, line, len) == 0, "oom");
	} else {
		line = fuzz_dup(in.p, in.n);
		len = in.n;
		ref_json_text((const unsigned char *)line, len, &want);
	}

	/* ranges clipped to the line, as a matcher's are */
	uint64_t ranges[MAX_RANGES][2];
	struct ts_buf rtext = TS_BUF_INIT;
	for (size_t r = 0; r < nranges; r++) {
		uint64_t s = raw[r][0] % (len + 1);
		uint64_t e = s + raw[r][1] % (len - s + 1);
		ranges[r][0] = s;
		ranges[r][1] = e;
		FUZZ_CHECK(ts_buf_printf(&rtext, "%s[%llu,%llu]", r ? "," : "",
					 (unsigned long long)s,
					 (unsigned long long)e) == 0, "oom");
	}
	char *rcopy = fuzz_dup(rtext.data, rtext.len);

	/* appended after what the buffer holds */
	struct ts_buf out = TS_BUF_INIT;
	FUZZ_CHECK(ts_buf_append(&out, "data: ", 6) == 0, "oom");
	FUZZ_CHECK(ts_filter_json_line(&out, line, len, offset, rcopy,
				       rtext.len) == 0, "ts_filter_json_line");
	FUZZ_CHECK(memcmp(out.data, "data: ", 6) == 0, "prefix overwritten");
	check_output(out.data + 6, out.len - 6, &want, offset,
		     (const uint64_t(*)[2])ranges, nranges);

	/* ts_json_string alone: the same string as in the object */
	struct ts_buf str = TS_BUF_INIT;
	FUZZ_CHECK(ts_json_string(&str, line, len) == 0, "ts_json_string");
	FUZZ_CHECK(str.len + 8 < out.len - 6 &&
			   memcmp(out.data + 6 + 8, str.data, str.len) == 0,
		   "ts_json_string differs from the line in the object");

	ts_buf_free(&str);
	ts_buf_free(&out);
	ts_buf_free(&rtext);
	ts_buf_free(&text);
	ts_buf_free(&want);
	free(rcopy);
	free(line);
	return 0;
}
