/* fuzz_lines.c: the reader of GET /api/logs/NAME/lines, ts_before_json
 * (src/before.c), with the position check that http.c makes before it
 * (lines_answer: the offset within the file, at a line start), on a random
 * file, position, n, max_line and filter, against a naive forward
 * reference.
 *
 * before.c and lines.c are compiled into this file with their sizes scaled
 * down, as fuzz_tail does: a block of 8 KiB, the read-back bound of
 * ts_lines_tail 32 KiB, and the distance within which the lines are looked
 * for (TS_BEFORE_MAX_BYTES, 16 MiB in the daemon) 24 KiB, so that files of
 * a few KiB reach every boundary.  The code is the same.
 *
 * The file is a memfd.  Input:
 *   flags (1): bit 0 a grep literal, bit 1 an exclude literal, bit 2 icase,
 *     bit 3 the position is any offset (else the start of line `pos` of
 *     the file, counted from the end), bit 4 n large (else 1..16);
 *   n (2), max_line (1; 0 means 65536), pos (2), grep literal (1 length
 *     and 3 bytes), exclude literal (the same), then the content, where
 *     FE C B stands for (C + 1) * 64 bytes B, up to CONTENT_MAX.
 * Literals are 1-3 characters of "abcxyz01" (no regex syntax, and no
 * character outside ASCII folds to them, so that a plain byte search,
 * ASCII-caseless with icase, is the reference of what PCRE2 matches).
 *
 * Properties:
 *  - the position check says "line start" exactly when the reference does
 *    (offset 0, or the byte before it is '\n'; past the end: not);
 *  - for any offset within the file (a line start or not: the reader's
 *    rule is the same, the lines that end at or before it), the answer is
 *    byte for byte the reference's: {"lines":[{"id":"INO:OFF","line":S
 *    [,"match":[[s,e],...]]},...]}\n with the last n kept lines among those
 *    that end at or before the offset and start within TS_BEFORE_MAX_BYTES
 *    of the end of the last of them, oldest first, S the line as a stream
 *    sends it (ts_sse_text, which fuzz_sse checks), OFF just after its
 *    '\n', and the ranges every non-overlapping match of the grep literal
 *    (only with a grep literal; the ones found may stop early, filter.h:
 *    best effort under a limit or the time budget, so the answer's are a
 *    prefix of the reference's); or -ERANGE when no '\n' is found within
 *    TS_LINES_TAIL_MAX bytes before the offset (never at a line start);
 *  - the answer is one JSON value by a strict parser. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* memfd_create, memmem */
#endif
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "fuzz_jsonp.h"
#include "fuzz_ref.h"

#include "lines.h"
#undef TS_LINES_BLOCK
#undef TS_LINES_TAIL_MAX
#define TS_LINES_BLOCK 8192
#define TS_LINES_TAIL_MAX (4 * TS_LINES_BLOCK)
#include "lines.c"

#include "before.h"
#undef TS_BEFORE_MAX_BYTES
#define TS_BEFORE_MAX_BYTES (3 * TS_LINES_BLOCK)
#include "before.c"

#define CONTENT_MAX (TS_LINES_TAIL_MAX + TS_BEFORE_MAX_BYTES)
#define FAKE_INO 4242

static const char alphabet[] = "abcxyz01";

static int file_fd(void)
{
	static int fd = -1;
	if (fd < 0)
		fd = memfd_create("fuzz_lines", MFD_CLOEXEC);
	FUZZ_CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
	return fd;
}

static struct ts_filter_cache *cache(void)
{
	static struct ts_filter_cache *c;
	if (!c)
		c = ts_filter_cache_new();
	FUZZ_CHECK(c != NULL, "ts_filter_cache_new");
	return c;
}

/* The reference answer for `off` (<= clen), or -ERANGE. */
static int ref_answer(const unsigned char *c, size_t clen, uint64_t off,
		      uint64_t n, size_t max_line,
		      const struct fuzz_ref_filter *rf, struct ts_buf *out)
{
	(void)clen;
	/* e: just after the last '\n' before off */
	size_t e = (size_t)off;
	while (e > 0 && c[e - 1] != '\n')
		e--;
	if (e == 0 ? off > TS_LINES_TAIL_MAX : e + TS_LINES_TAIL_MAX <= off)
		return -ERANGE;
	size_t bound = e > TS_BEFORE_MAX_BYTES ? e - TS_BEFORE_MAX_BYTES : 0;
	/* the lines [ls, le) (le the '\n'), from the last one back */
	size_t *starts = fuzz_alloc(sizeof(size_t) * (e + 1));
	size_t nk = 0;
	struct ts_buf text = TS_BUF_INIT;
	size_t le = e;
	while (le > 0 && nk < n) {
		size_t ls = le - 1;
		while (ls > 0 && c[ls - 1] != '\n')
			ls--;
		if (ls < bound)
			break;
		ts_buf_reset(&text);
		FUZZ_CHECK(ts_sse_text(&text, (const char *)c + ls, le - 1 - ls,
				       max_line) == 0,
			   "oom");
		if (fuzz_ref_keep(rf, text.data ? text.data : "", text.len,
				  NULL))
			starts[nk++] = ls;
		le = ls;
	}
	FUZZ_CHECK(ts_buf_puts(out, "{\"lines\":[") == 0, "oom");
	for (size_t i = nk; i-- > 0;) {
		size_t ls = starts[i];
		size_t nl = ls;
		while (c[nl] != '\n')
			nl++;
		ts_buf_reset(&text);
		FUZZ_CHECK(ts_sse_text(&text, (const char *)c + ls, nl - ls,
				       max_line) == 0,
			   "oom");
		FUZZ_CHECK(ts_buf_printf(out, "%s{\"id\":\"%u:%zu\",\"line\":",
					 i + 1 == nk ? "" : ",", FAKE_INO,
					 nl + 1) == 0,
			   "oom");
		FUZZ_CHECK(ts_json_string(out, text.data ? text.data : "",
					  text.len) == 0,
			   "oom");
		if (rf->grep) {
			FUZZ_CHECK(ts_buf_puts(out, ",\"match\":[") == 0,
				   "oom");
			fuzz_ref_keep(rf, text.data ? text.data : "", text.len,
				      out);
			FUZZ_CHECK(ts_buf_puts(out, "]") == 0, "oom");
		}
		FUZZ_CHECK(ts_buf_puts(out, "}") == 0, "oom");
	}
	FUZZ_CHECK(ts_buf_puts(out, "]}\n") == 0, "oom");
	ts_buf_free(&text);
	free(starts);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char content[CONTENT_MAX];
	struct fuzz_in in = { data, size };
	unsigned flags = (unsigned)fuzz_take(&in, 1);
	uint64_t n = fuzz_take(&in, 2);
	size_t max_line = (size_t)fuzz_take(&in, 1);
	uint64_t pos = fuzz_take(&in, 2);
	struct fuzz_ref_filter rf = { (flags & 1) != 0, (flags & 2) != 0,
				      (flags & 4) != 0, "", "" };
	fuzz_take_literal(&in, alphabet, sizeof(alphabet) - 1, rf.g);
	fuzz_take_literal(&in, alphabet, sizeof(alphabet) - 1, rf.x);
	size_t clen = fuzz_expand(in.p, in.n, content, CONTENT_MAX);

	n = flags & 0x10 ? 1 + n % 10000 : 1 + n % 16;
	if (max_line == 0)
		max_line = 65536;

	/* the offset: any, or the start of a line counted from the end */
	uint64_t off;
	if (flags & 8) {
		off = pos % (clen + 2);
	} else {
		off = clen;
		for (uint64_t k = pos % 64; k > 0 && off > 0; k--) {
			off--;
			while (off > 0 && content[off - 1] != '\n')
				off--;
		}
	}

	int fd = file_fd();
	FUZZ_CHECK(ftruncate(fd, 0) == 0 && ftruncate(fd, (off_t)clen) == 0,
		   "ftruncate: %s", strerror(errno));
	FUZZ_CHECK(clen == 0 || pwrite(fd, content, clen, 0) == (ssize_t)clen,
		   "pwrite");

	/* http.c's check: within the file, at a line start */
	bool ref_start = off <= clen && (off == 0 || content[off - 1] == '\n');
	int at = off > clen ? -ENODATA : ts_lines_at_start(fd, off);
	FUZZ_CHECK((at == 1) == ref_start,
		   "ts_lines_at_start(%llu) %d, reference %d",
		   (unsigned long long)off, at, ref_start);
	if (off > clen)
		return 0;

	struct ts_filter *filter = NULL;
	const char *g[1] = { rf.g }, *x[1] = { rf.x };
	char err[256];
	FUZZ_CHECK(ts_filter_new(cache(), g, rf.grep ? 1 : 0, x,
				 rf.exclude ? 1 : 0, rf.icase, &filter, err,
				 sizeof(err)) == 0,
		   "ts_filter_new: %s", err);

	struct ts_before b = { .fd = fd,
			       .ino = FAKE_INO,
			       .off = off,
			       .n = n,
			       .max_line = max_line,
			       .filters = cache(),
			       .filter = filter,
			       .grep = rf.grep };
	struct ts_buf got = TS_BUF_INIT, want = TS_BUF_INIT;
	int rc = ts_before_json(&b, &got);
	int wrc = ref_answer(content, clen, off, n, max_line, &rf, &want);
	FUZZ_CHECK(rc == wrc,
		   "ts_before_json(off %llu, n %llu) rc %d, "
		   "reference %d",
		   (unsigned long long)off, (unsigned long long)n, rc, wrc);
	FUZZ_CHECK(!ref_start || rc == 0, "an error at a line start: %d", rc);
	if (rc == 0) {
		if (!fuzz_same_but_ranges(got.data, got.len, want.data,
					  want.len)) {
			size_t i = 0;
			while (i < got.len && i < want.len &&
			       got.data[i] == want.data[i])
				i++;
			size_t from = i > 20 ? i - 20 : 0;
			fprintf(stderr,
				"off %llu n %llu max_line %zu: differs "
				"at byte %zu\n got  ",
				(unsigned long long)off, (unsigned long long)n,
				max_line, i);
			fuzz_show(stderr, got.data + from, got.len - from);
			fprintf(stderr, "\n want ");
			fuzz_show(stderr, want.data + from, want.len - from);
			fputc('\n', stderr);
			FUZZ_CHECK(0, "the answer differs from the reference");
		}
		struct jp p = { (const unsigned char *)got.data, got.len, 0 };
		FUZZ_CHECK(jvalue(&p, 0) && (ws(&p), p.i == got.len),
			   "not one JSON value");
	}
	ts_filter_free(filter);
	ts_buf_free(&got);
	ts_buf_free(&want);
	return 0;
}
