/* fuzz_sse.c: the SSE line encoder (src/sse.c) against a plain reference.
 *
 * Input: max_line (2 bytes), inode (8), offset (8), then the text.
 *  - ts_sse_text on the whole text (its '\n's included) gives what the
 *    reference encoder below gives: a trailing CR dropped; NUL, CR, LF and
 *    each maximal invalid UTF-8 subpart as U+FFFD; cut at a character
 *    boundary to at most max_line bytes, then U+2026.
 *  - the text cut into lines at '\n', each through ts_sse_line (its fast
 *    path for plain lines included), gives "id: INO:OFF\ndata: REF\n\n"
 *    per line; the whole stream read back as SSE has one event, one id and
 *    one data: line per input line, each data valid UTF-8 without CR, LF
 *    or NUL and at most max_line + 3 bytes.
 *  - ts_sse_plain_run and ts_sse_scannable (SSE2 paths) agree with a
 *    byte-by-byte reference. */
#include <inttypes.h>

#include "buf.h"
#include "fuzz.h"
#include "sse.h"

static const char FFFD[] = "\xEF\xBF\xBD";
static const char ELLIPSIS[] = "\xE2\x80\xA6";

/* The reference: the whole sanitised text unit by unit, then cut. */
static char *ref_text(const unsigned char *s, size_t len, size_t max_line,
		      size_t *outlen)
{
	char *out = fuzz_alloc(len * 3 + 4);
	size_t o = 0, fits = 0; /* fits: length of the longest prefix of
				 * whole units within max_line */
	bool cut = false;

	if (len > 0 && s[len - 1] == '\r')
		len--;
	for (size_t i = 0; i < len;) {
		const void *unit = s + i;
		size_t ulen = 1, used = 1;
		if (s[i] == 0 || s[i] == '\r' || s[i] == '\n') {
			unit = FFFD;
			ulen = 3;
		} else if (s[i] >= 0x80) {
			size_t bad = 0;
			used = ulen = fuzz_utf8_ref(s + i, len - i, &bad);
			if (!ulen) {
				unit = FFFD;
				ulen = 3;
				used = bad;
			}
		}
		memcpy(out + o, unit, ulen);
		o += ulen;
		i += used;
		if (o <= max_line)
			fits = o;
		else
			cut = true;
	}
	if (cut) {
		memcpy(out + fits, ELLIPSIS, 3);
		o = fits + 3;
	}
	*outlen = o;
	return out;
}

static size_t ref_plain_run(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n && s[i] < 0x80 && s[i] != 0 && s[i] != '\r' &&
	       s[i] != '\n')
		i++;
	return i;
}

static size_t ref_scannable(const unsigned char *s, size_t n)
{
	size_t i = 0, whole = 0;
	while (i < n && s[i] < 0x80 && s[i] != 0 && s[i] != '\r') {
		if (s[i] == '\n')
			whole = i + 1;
		i++;
	}
	return whole;
}

static void check_same(const char *what, const char *got, size_t glen,
		       const char *want, size_t wlen)
{
	if (glen == wlen && memcmp(got, want, glen) == 0)
		return;
	fprintf(stderr, "%s: got %zu bytes \"", what, glen);
	fuzz_show(stderr, got, glen);
	fprintf(stderr, "\", reference %zu bytes \"", wlen);
	fuzz_show(stderr, want, wlen);
	fprintf(stderr, "\"\n");
	FUZZ_CHECK(0, "%s differs from the reference", what);
}

/* Read the stream back as SSE: events end at a blank line; each must be
 * "id: ..." then "data: ..." (the id must match what was written). */
static void check_stream(const char *s, size_t n, size_t lines, size_t max_line)
{
	size_t events = 0, at = 0;
	while (at < n) {
		const char *e = memmem(s + at, n - at, "\n\n", 2);
		FUZZ_CHECK(e, "an event without its blank line");
		const char *ev = s + at,
			   *nl = memchr(ev, '\n', (size_t)(e - ev));
		FUZZ_CHECK(nl && strncmp(ev, "id: ", 4) == 0,
			   "event %zu has no id line first", events);
		const char *data = nl + 1;
		size_t dlen = (size_t)(e - data);
		FUZZ_CHECK(dlen >= 6 && memcmp(data, "data: ", 6) == 0,
			   "event %zu has no data line second", events);
		data += 6;
		dlen -= 6;
		FUZZ_CHECK(!memchr(data, '\n', dlen) &&
				   !memchr(data, '\r', dlen) &&
				   !memchr(data, '\0', dlen),
			   "event %zu: LF, CR or NUL in the data", events);
		FUZZ_CHECK(fuzz_utf8_valid(data, dlen),
			   "event %zu: data not valid UTF-8", events);
		FUZZ_CHECK(dlen <= max_line + 3, "event %zu: %zu bytes of data",
			   events, dlen);
		events++;
		at = (size_t)(e - s) + 2;
	}
	FUZZ_CHECK(events == lines, "%zu events for %zu lines", events, lines);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	size_t max_line = (size_t)fuzz_take(&in, 2);
	uint64_t ino = fuzz_take(&in, 8), off0 = fuzz_take(&in, 8);
	char *text = fuzz_dup(in.p, in.n);
	const unsigned char *u = (const unsigned char *)text;
	size_t len = in.n;
	struct ts_buf out = TS_BUF_INIT, stream = TS_BUF_INIT;
	size_t rlen;
	char *want;

	/* the whole text, its '\n's become U+FFFD */
	want = ref_text(u, len, max_line, &rlen);
	FUZZ_CHECK(ts_sse_text(&out, text, len, max_line) == 0, "ts_sse_text");
	check_same("ts_sse_text", out.data, out.len, want, rlen);
	free(want);

	FUZZ_CHECK(ts_sse_plain_run(text, len) == ref_plain_run(u, len),
		   "ts_sse_plain_run %zu, reference %zu",
		   ts_sse_plain_run(text, len), ref_plain_run(u, len));
	FUZZ_CHECK(ts_sse_scannable(text, len) == ref_scannable(u, len),
		   "ts_sse_scannable %zu, reference %zu",
		   ts_sse_scannable(text, len), ref_scannable(u, len));

	/* line by line, as the stream sends them; a text that does not end
	 * in '\n' has a last (partial) line too, sent here all the same */
	size_t lines = 0;
	for (size_t at = 0; at < len || (at == 0 && len == 0);) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t llen = nl ? (size_t)(nl - text - at) : len - at;
		char *line = fuzz_dup(text + at, llen); /* exact size */
		uint64_t off = off0 + at;
		size_t before = stream.len;

		FUZZ_CHECK(ts_sse_line(&stream, line, llen, max_line, ino,
				       off) == 0,
			   "ts_sse_line");
		want = ref_text((const unsigned char *)line, llen, max_line,
				&rlen);
		char head[64];
		int hl = snprintf(head, sizeof(head),
				  "id: %" PRIu64 ":%" PRIu64 "\ndata: ", ino,
				  off);
		char *ev = fuzz_alloc((size_t)hl + rlen + 2);
		memcpy(ev, head, (size_t)hl);
		memcpy(ev + hl, want, rlen);
		memcpy(ev + (size_t)hl + rlen, "\n\n", 2);
		check_same("ts_sse_line", stream.data + before,
			   stream.len - before, ev, (size_t)hl + rlen + 2);
		free(ev);
		free(want);
		free(line);
		lines++;
		if (!nl)
			break;
		at += llen + 1;
	}
	check_stream(stream.data, stream.len, lines, max_line);

	ts_buf_free(&out);
	ts_buf_free(&stream);
	free(text);
	return 0;
}
