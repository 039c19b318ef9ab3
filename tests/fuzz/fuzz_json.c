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
#include "fuzz_jsonp.h"
#include "sse.h"

#define MAX_RANGES 16

/* ---- the expected line ---- */

/* The raw text with each maximal invalid subpart as U+FFFD. */
static void ref_json_text(const unsigned char *s, size_t n, struct ts_buf *b)
{
	for (size_t i = 0; i < n;) {
		size_t bad = 0,
		       k = s[i] < 0x80 ? 1 : fuzz_utf8_ref(s + i, n - i, &bad);
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
				       max_line) == 0,
			   "ts_sse_text");
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
					 (unsigned long long)e) == 0,
			   "oom");
	}
	char *rcopy = fuzz_dup(rtext.data, rtext.len);

	/* appended after what the buffer holds */
	struct ts_buf out = TS_BUF_INIT;
	FUZZ_CHECK(ts_buf_append(&out, "data: ", 6) == 0, "oom");
	FUZZ_CHECK(ts_filter_json_line(&out, line, len, offset, rcopy,
				       rtext.len) == 0,
		   "ts_filter_json_line");
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
