/* fuzz_tail.c: the backwards readers of src/lines.c, ts_lines_tail (the
 * tail=N reader), ts_lines_tail_match (a filtered tail=N) and
 * ts_lines_at_start (where /lines and ids may start), on a random file
 * against a naive forward reference.
 *
 * lines.c is compiled into this file with its two sizes scaled down: a
 * block (TS_LINES_BLOCK) of 8 KiB instead of 64 KiB, still twice the 4 KiB
 * that tail_start_in reads at a time, and the bound (TS_LINES_TAIL_MAX) of
 * four blocks instead of 64 MiB.  The code is the same; block boundaries
 * and the bound are reached by files of a few KiB, which are cheap to
 * write and read (with the real sizes an input took 3 ms, 0.8 s at the
 * bound, nearly all of it in lines.c's byte loops under ASan).  test_lines
 * checks the real sizes, on sparse files for the bound.
 *
 * The file is a memfd: optionally a hole of zeros near TS_LINES_TAIL_MAX
 * bytes (sparse), then the content.  Input:
 *   flags (1): bits 0-1 size mode (0, 3: the file's size; 1: smaller by
 *     `cut`, as a reader that saw an older size; 2: larger than the file,
 *     which must give -EAGAIN, "shrank under us"); bits 2-3 hole (2: just
 *     under TS_LINES_TAIL_MAX, 3: just over); bit 4 n near UINT64_MAX;
 *     bit 5 max_bytes unbounded; bit 6 the predicate may say stop;
 *   n (2), max_bytes (3), keep byte (1), stop byte (1), cut (2), hole
 *   delta (2), at_start offset (3), then the content, where FE C B stands
 *   for (C + 1) * 64 bytes B (long lines, many lines, block boundaries),
 *   up to CONTENT_MAX (twice the bound).
 * A line is kept when it holds the keep byte, and (bit 6) stops the search
 * when it holds the stop byte; each line the predicate sees must be one
 * line of the file (no '\n' in it). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* memfd_create */
#endif
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"

/* lines.h first, its sizes made smaller, then lines.c, whose own
 * #include "lines.h" the include guard skips. */
#include "lines.h"
#undef TS_LINES_BLOCK
#undef TS_LINES_TAIL_MAX
#define TS_LINES_BLOCK 8192
#define TS_LINES_TAIL_MAX (4 * TS_LINES_BLOCK)
#include "lines.c"

#define CONTENT_MAX (2 * TS_LINES_TAIL_MAX)

/* The virtual file: `hole` zeros, then c[0..clen); `size` as passed. */
struct vfile {
	uint64_t hole;
	const unsigned char *c;
	size_t clen;
	uint64_t size;
	uint64_t *nl; /* offsets of the '\n's before size, ascending */
	size_t nnl;
};

struct pred {
	unsigned char keep, stop;
	bool may_stop;
};

static unsigned char vbyte(const struct vfile *f, uint64_t i)
{
	return i < f->hole ? 0 : f->c[i - f->hole];
}

/* Does [a, b) of the file hold byte k? */
static bool vholds(const struct vfile *f, uint64_t a, uint64_t b,
		   unsigned char k)
{
	if (k == 0 && a < b && a < f->hole)
		return true;
	if (a < f->hole)
		a = f->hole;
	return a < b && memchr(f->c + (a - f->hole), k, (size_t)(b - a));
}

static int ref_pred(const struct vfile *f, const struct pred *p, uint64_t a,
		    uint64_t b)
{
	if (p->may_stop && vholds(f, a, b, p->stop))
		return -1;
	return vholds(f, a, b, p->keep);
}

static int sut_pred(const char *line, size_t len, void *arg)
{
	const struct pred *p = arg;
	FUZZ_CHECK(!memchr(line, '\n', len), "a line given to keep() holds LF");
	if (p->may_stop && memchr(line, p->stop, len))
		return -1;
	return memchr(line, p->keep, len) != NULL;
}

/* Index of the first '\n' at or after `at`, or nnl. */
static size_t nl_from(const struct vfile *f, uint64_t at)
{
	size_t lo = 0, hi = f->nnl;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->nl[mid] < at)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The first line start at or after `at` (at > 0), at most e. */
static uint64_t start_from(const struct vfile *f, uint64_t at, uint64_t e)
{
	size_t k = nl_from(f, at - 1);
	uint64_t s = k < f->nnl ? f->nl[k] + 1 : e;
	return s < e ? s : e;
}

static int ref_tail(const struct vfile *f, uint64_t n, uint64_t *start,
		    uint64_t *end)
{
	uint64_t size = f->size;
	uint64_t lo = size > TS_LINES_TAIL_MAX ? size - TS_LINES_TAIL_MAX : 0;
	size_t first = nl_from(f, lo); /* first '\n' within what is read */
	if (first == f->nnl) {
		*start = *end = lo ? size : 0;
		return lo ? -ERANGE : 0;
	}
	uint64_t e = f->nl[f->nnl - 1] + 1;
	*end = e;
	if (n == 0) {
		*start = e;
		return 0;
	}
	/* the '\n's before the last one, within what is read */
	size_t before = f->nnl - 1 - first;
	if (before >= n)
		*start = f->nl[f->nnl - 1 - n] + 1;
	else if (lo == 0)
		*start = 0;
	else
		*start = start_from(f, lo, e);
	return 0;
}

static int ref_tail_match(const struct vfile *f, uint64_t n, uint64_t max_bytes,
			  const struct pred *p, uint64_t *start, uint64_t *end)
{
	uint64_t e, unused;
	int rc = ref_tail(f, 0, &e, &unused);
	if (rc)
		return rc;
	*start = *end = e;
	if (n == 0 || e == 0)
		return 0;
	uint64_t bound = e > max_bytes ? e - max_bytes : 0;
	uint64_t found = 0;
	/* lines backwards from the last; line k ends at nl[k] */
	for (size_t k = nl_from(f, e - 1) + 1; k-- > 0;) {
		uint64_t ls = k ? f->nl[k - 1] + 1 : 0;
		if (ls < bound)
			break;
		int r = ref_pred(f, p, ls, f->nl[k]);
		if (r < 0 || (r > 0 && ++found == n)) {
			*start = ls;
			return 0;
		}
	}
	/* fewer than n: from the first line that starts within the bound */
	*start = bound == 0 ? 0 : start_from(f, bound, e);
	return 0;
}

static int file_fd(void)
{
	static int fd = -1;
	if (fd < 0)
		fd = memfd_create("fuzz_tail", MFD_CLOEXEC);
	FUZZ_CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char content[CONTENT_MAX];
	struct fuzz_in in = { data, size };
	unsigned flags = (unsigned)fuzz_take(&in, 1);
	uint64_t n = fuzz_take(&in, 2);
	uint64_t max_bytes = fuzz_take(&in, 3);
	struct pred p = { (unsigned char)fuzz_take(&in, 1),
			  (unsigned char)fuzz_take(&in, 1),
			  (flags & 0x40) != 0 };
	uint64_t cut = fuzz_take(&in, 2);
	uint64_t delta = fuzz_take(&in, 2) % TS_LINES_TAIL_MAX;
	uint64_t at = fuzz_take(&in, 3);
	struct vfile f = { 0, content, 0, 0, NULL, 0 };

	if (flags & 0x10)
		n = UINT64_MAX - n;
	if (flags & 0x20)
		max_bytes = UINT64_MAX;
	switch ((flags >> 2) & 3) {
	case 2:
		f.hole = TS_LINES_TAIL_MAX - delta;
		break;
	case 3:
		f.hole = TS_LINES_TAIL_MAX + delta;
		break;
	}
	f.clen = fuzz_expand(in.p, in.n, content, CONTENT_MAX);
	uint64_t total = f.hole + f.clen;

	int fd = file_fd();
	FUZZ_CHECK(ftruncate(fd, 0) == 0 && ftruncate(fd, (off_t)total) == 0,
		   "ftruncate: %s", strerror(errno));
	FUZZ_CHECK(f.clen == 0 || pwrite(fd, content, f.clen, (off_t)f.hole) ==
					  (ssize_t)f.clen,
		   "pwrite");

	bool longer = false;
	switch (flags & 3) {
	case 1:
		f.size = total - cut % (total + 1);
		break;
	case 2:
		f.size = total + 1 + cut % 70000;
		longer = true;
		break;
	default:
		f.size = total;
	}

	size_t seen = f.size > f.hole ? (size_t)(f.size - f.hole) : 0;
	if (seen > f.clen)
		seen = f.clen;
	for (size_t i = 0; i < seen; i++)
		f.nnl += content[i] == '\n';
	f.nl = fuzz_alloc(sizeof(*f.nl) * (f.nnl + 1));
	f.nnl = 0;
	for (size_t i = 0; i < seen; i++)
		if (content[i] == '\n')
			f.nl[f.nnl++] = f.hole + i;

	uint64_t s1 = 1, e1 = 2, s2 = 3, e2 = 4;
	int rc = ts_lines_tail(fd, f.size, n, &s1, &e1);
	if (longer) {
		FUZZ_CHECK(rc == -EAGAIN, "a size past the end: rc %d", rc);
	} else {
		int want = ref_tail(&f, n, &s2, &e2);
		FUZZ_CHECK(rc == want, "ts_lines_tail rc %d, reference %d", rc,
			   want);
		FUZZ_CHECK(s1 == s2 && e1 == e2,
			   "ts_lines_tail(size %llu, n %llu): [%llu, %llu), "
			   "reference [%llu, %llu)",
			   (unsigned long long)f.size, (unsigned long long)n,
			   (unsigned long long)s1, (unsigned long long)e1,
			   (unsigned long long)s2, (unsigned long long)e2);
	}

	rc = ts_lines_tail_match(fd, f.size, n, max_bytes, sut_pred, &p, &s1,
				 &e1);
	if (longer) {
		FUZZ_CHECK(rc == -EAGAIN, "a size past the end: rc %d", rc);
	} else {
		int want = ref_tail_match(&f, n, max_bytes, &p, &s2, &e2);
		FUZZ_CHECK(rc == want,
			   "ts_lines_tail_match rc %d, reference %d", rc, want);
		FUZZ_CHECK(rc || (s1 == s2 && e1 == e2),
			   "ts_lines_tail_match(size %llu, n %llu, max %llu): "
			   "[%llu, %llu), reference [%llu, %llu)",
			   (unsigned long long)f.size, (unsigned long long)n,
			   (unsigned long long)max_bytes,
			   (unsigned long long)s1, (unsigned long long)e1,
			   (unsigned long long)s2, (unsigned long long)e2);
	}

	/* a line start: offset 0, or after a '\n' of the file */
	at %= total + 2;
	rc = ts_lines_at_start(fd, at);
	int want = at == 0	? 1
		   : at > total ? -ENODATA
				: vbyte(&f, at - 1) == '\n';
	FUZZ_CHECK(rc == want, "ts_lines_at_start(%llu) %d, reference %d",
		   (unsigned long long)at, rc, want);

	free(f.nl);
	return 0;
}
