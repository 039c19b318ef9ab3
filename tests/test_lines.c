/* test_lines.c: unit tests of the backwards tail reader (src/lines.c), on
 * real temporary files.  Each file is unlinked as soon as it is created and
 * lives only as long as its descriptor, so nothing is left in /tmp even when
 * an assertion fails half-way. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkstemp, pwrite, ftruncate */
#endif
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lines.h"

#define B ((size_t)TS_LINES_BLOCK)

/* Each test that needs one gets an fd slot and a data buffer in *state; the
 * teardown closes and frees them. */
struct fixture {
	int fd;
	char *data;
};

static int setup_fixture(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	f->fd = -1;
	*state = f;
	return 0;
}

static int teardown_fixture(void **state)
{
	struct fixture *f = *state;
	if (f->fd >= 0)
		close(f->fd);
	free(f->data);
	free(f);
	return 0;
}

/* A new, already unlinked temporary file holding `len` bytes of `data`. */
static int temp_file(const void *data, size_t len)
{
	char path[] = "/tmp/tailsse-test-lines-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(unlink(path), 0);
	for (size_t done = 0; done < len;) {
		ssize_t w = pwrite(fd, (const char *)data + done, len - done,
				   (off_t)done);
		assert_true(w > 0);
		done += (size_t)w;
	}
	return fd;
}

static void fixture_file(struct fixture *f, const void *data, size_t len)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = temp_file(data, len);
}

/* The forward reference: every newline of d[0, size), then the same rule
 * as the contract states it. */
static void ref_tail(const char *d, size_t size, uint64_t n, uint64_t *start,
		     uint64_t *end)
{
	size_t k = 0; /* newlines */
	for (size_t i = 0; i < size; i++)
		k += d[i] == '\n';
	size_t *nl = malloc((k ? k : 1) * sizeof(*nl));
	assert_non_null(nl);
	k = 0;
	for (size_t i = 0; i < size; i++)
		if (d[i] == '\n')
			nl[k++] = i;
	*end = k ? nl[k - 1] + 1 : 0;
	if (n == 0)
		*start = *end;
	else if (n >= k)
		*start = 0;
	else
		*start = nl[k - 1 - n] + 1;
	free(nl);
}

static size_t count_newlines(const char *d, size_t size)
{
	size_t k = 0;
	for (size_t i = 0; i < size; i++)
		k += d[i] == '\n';
	return k;
}

static void check_tail(int fd, const char *d, size_t size, uint64_t n)
{
	uint64_t ws, we, s = 7777, e = 8888;
	ref_tail(d, size, n, &ws, &we);
	int rc = ts_lines_tail(fd, size, n, &s, &e);
	if (rc != 0 || s != ws || e != we)
		fail_msg("size %zu n %" PRIu64 ": rc %d start %" PRIu64
			 " end %" PRIu64 ", want start %" PRIu64
			 " end %" PRIu64,
			 size, n, rc, s, e, ws, we);
}

/* Every n from 0 to one past the number of lines, and a huge n. */
static void check_all_n(int fd, const char *d, size_t size)
{
	size_t k = count_newlines(d, size);
	for (uint64_t n = 0; n <= k + 1; n++)
		check_tail(fd, d, size, n);
	check_tail(fd, d, size, UINT64_MAX);
}

/* The size passed in may be smaller than the file (it grew since the
 * caller's stat): check around every block boundary counted from the
 * end and from the start. */
static void check_sizes_around_blocks(int fd, const char *d, size_t len,
				      const uint64_t *ns, size_t nn)
{
	for (size_t k = 0; k * B <= len + B; k++) {
		for (int dlt = -1; dlt <= 1; dlt++) {
			long long cand[2] = {
				(long long)(k * B) + dlt,
				(long long)len - (long long)(k * B) + dlt,
			};
			for (int c = 0; c < 2; c++) {
				if (cand[c] < 0 || cand[c] > (long long)len)
					continue;
				for (size_t j = 0; j < nn; j++)
					check_tail(fd, d, (size_t)cand[c],
						   ns[j]);
			}
		}
	}
}

/* ------------------------------------------------------------------ */
/* Small files                                                          */

struct small_case {
	const char *content;
	uint64_t n;
	uint64_t start, end;
};

static void run_small(struct fixture *f, const struct small_case *c, size_t nc)
{
	for (size_t i = 0; i < nc; i++) {
		size_t len = strlen(c[i].content);
		fixture_file(f, c[i].content, len);
		uint64_t s = 7777, e = 8888;
		int rc = ts_lines_tail(f->fd, len, c[i].n, &s, &e);
		if (rc != 0 || s != c[i].start || e != c[i].end)
			fail_msg("\"%s\" n %" PRIu64 ": rc %d start %" PRIu64
				 " end %" PRIu64 ", want %" PRIu64 " %" PRIu64,
				 c[i].content, c[i].n, rc, s, e, c[i].start,
				 c[i].end);
		/* and the reference agrees with the table */
		check_tail(f->fd, c[i].content, len, c[i].n);
	}
}

static void test_tail_small(void **state)
{
	static const struct small_case cases[] = {
		{ "", 0, 0, 0 },
		{ "", 1, 0, 0 },
		{ "", 10, 0, 0 },
		{ "abc", 0, 0, 0 }, /* no newline: no complete line */
		{ "abc", 1, 0, 0 },
		{ "abc", 10, 0, 0 },
		{ "a\nb\nc\n", 0, 6, 6 },
		{ "a\nb\nc\n", 1, 4, 6 },
		{ "a\nb\nc\n", 2, 2, 6 },
		{ "a\nb\nc\n", 3, 0, 6 },
		{ "a\nb\nc\n", 10, 0, 6 },
		{ "a\nb\npart", 0, 4, 4 },
		{ "a\nb\npart", 1, 2, 4 },
		{ "a\nb\npart", 2, 0, 4 },
		{ "a\nb\npart", 5, 0, 4 },
		{ "\n", 0, 1, 1 },
		{ "\n", 1, 0, 1 },
		{ "\n", 2, 0, 1 },
		{ "\n\n\n", 1, 2, 3 },
		{ "\n\n\n", 2, 1, 3 },
		{ "\n\n\n", 3, 0, 3 },
		{ "\npart", 0, 1, 1 },
		{ "\npart", 1, 0, 1 },
		{ "one line\n", 1, 0, 9 },
		{ "first\nsecond line\r\nthird\n", 1, 19, 25 },
		{ "first\nsecond line\r\nthird\n", 2, 6, 25 },
	};
	run_small(*state, cases, sizeof(cases) / sizeof(cases[0]));
}

/* size smaller than the file: only [0, size) counts */
static void test_tail_size_limits(void **state)
{
	struct fixture *f = *state;
	static const char d[] = "a\nb\nc\nd\n";
	fixture_file(f, d, sizeof(d) - 1);
	uint64_t s, e;
	assert_int_equal(ts_lines_tail(f->fd, 5, 1, &s, &e), 0);
	assert_int_equal(s, 2);
	assert_int_equal(e, 4);
	assert_int_equal(ts_lines_tail(f->fd, 0, 5, &s, &e), 0);
	assert_int_equal(s, 0);
	assert_int_equal(e, 0);
	for (size_t size = 0; size < sizeof(d); size++)
		check_all_n(f->fd, d, size);
}

static void test_tail_errors(void **state)
{
	struct fixture *f = *state;
	uint64_t s, e;
	/* a file that shrank below the size given */
	fixture_file(f, "a\nb\n", 4);
	assert_int_equal(ts_lines_tail(f->fd, 10, 1, &s, &e), -EAGAIN);
	assert_int_equal(ts_lines_tail(f->fd, 3 * B, 1, &s, &e), -EAGAIN);
	/* not a file */
	assert_int_equal(ts_lines_tail(-1, 10, 1, &s, &e), -EBADF);
	/* a directory cannot be read */
	int dfd = open("/tmp", O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	int rc = ts_lines_tail(dfd, 10, 1, &s, &e);
	close(dfd);
	assert_int_equal(rc, -EISDIR);
}

/* ------------------------------------------------------------------ */
/* Block boundaries                                                     */

static char *filled(struct fixture *f, size_t len, char c)
{
	free(f->data);
	f->data = malloc(len ? len : 1);
	assert_non_null(f->data);
	memset(f->data, c, len);
	return f->data;
}

static const uint64_t some_n[] = { 0, 1, 2, 3, 5, UINT64_MAX };

/* A line exactly TS_LINES_BLOCK bytes long (newline included), one of
 * TS_LINES_BLOCK bytes plus its newline, and one a byte shorter. */
static void test_tail_block_sized_lines(void **state)
{
	struct fixture *f = *state;
	static const size_t lens[] = { B - 1, B, B + 1, B - 2, 2 * B, 1 };
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		/* "x\n" + long line + "\n" + "y\n" */
		size_t len = 2 + lens[li] + 1 + 2;
		char *d = filled(f, len, 'l');
		d[0] = 'x';
		d[1] = '\n';
		d[2 + lens[li]] = '\n';
		d[len - 2] = 'y';
		d[len - 1] = '\n';
		fixture_file(f, d, len);
		check_all_n(f->fd, d, len);
		check_sizes_around_blocks(f->fd, d, len, some_n,
					  sizeof(some_n) / sizeof(some_n[0]));
		/* the long line alone, as the whole file */
		fixture_file(f, d + 2, lens[li] + 1);
		check_all_n(f->fd, d + 2, lens[li] + 1);
	}
}

/* Newlines on both sides of every block boundary counted from the end
 * (where ts_lines_tail's reads are aligned) and from the start. */
static void test_tail_newline_at_block_boundary(void **state)
{
	struct fixture *f = *state;
	const size_t len = 3 * B + 777;
	char *d = filled(f, len, 'x');
	const size_t at[] = { len - B - 1, len - B,	len - 2 * B - 1,
			      len - 2 * B, len - 3 * B, B - 1,
			      B,	   2 * B,	2 * B - 1,
			      0,	   len - 1 };
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
		d[at[i]] = '\n';
	fixture_file(f, d, len);
	check_all_n(f->fd, d, len);
	check_sizes_around_blocks(f->fd, d, len, some_n,
				  sizeof(some_n) / sizeof(some_n[0]));

	/* each boundary newline alone in a file without other newlines */
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		memset(d, 'x', len);
		d[at[i]] = '\n';
		fixture_file(f, d, len);
		check_all_n(f->fd, d, len);
	}
}

/* A partial last line of exactly one block, and of more than two: the
 * last complete line ends in an earlier block. */
static void test_tail_long_partial_line(void **state)
{
	struct fixture *f = *state;
	static const size_t partial[] = { B, B - 1, B + 1, 2 * B + B / 2 };
	for (size_t i = 0; i < sizeof(partial) / sizeof(partial[0]); i++) {
		size_t len = 6 + partial[i];
		char *d = filled(f, len, 'p');
		memcpy(d, "a\nb\nc\n", 6);
		fixture_file(f, d, len);
		uint64_t s, e;
		assert_int_equal(ts_lines_tail(f->fd, len, 2, &s, &e), 0);
		assert_int_equal(e, 6);
		assert_int_equal(s, 2);
		assert_int_equal(ts_lines_tail(f->fd, len, 0, &s, &e), 0);
		assert_int_equal(e, 6);
		assert_int_equal(s, 6);
		check_all_n(f->fd, d, len);
	}
	/* a file of only a partial line, longer than a block */
	char *d = filled(f, 3 * B, 'q');
	fixture_file(f, d, 3 * B);
	check_all_n(f->fd, d, 3 * B);
}

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15u);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
	return z ^ (z >> 31);
}

/* Files of about three and a half blocks with lines of varied lengths
 * (empty, short, a few longer than a block), some with a partial end. */
static void test_tail_random_files(void **state)
{
	struct fixture *f = *state;
	rng_state = 42;
	for (int round = 0; round < 6; round++) {
		size_t len = 3 * B + B / 2 + (size_t)(rnd() % 1000);
		char *d = filled(f, len, 0);
		size_t i = 0;
		while (i < len) {
			size_t ll;
			switch (rnd() % 10) {
			case 0:
				ll = 0;
				break;
			case 1:
				ll = B - 10 + rnd() % 20;
				break;
			case 2:
				ll = 1000 + rnd() % 5000;
				break;
			default:
				ll = rnd() % 120;
				break;
			}
			for (size_t j = 0; j < ll && i < len; j++, i++)
				d[i] = (char)('!' + rnd() % 90);
			if (i < len)
				d[i++] = '\n';
		}
		if (round % 2)
			d[len - 1] = 'z'; /* end on a partial line */
		fixture_file(f, d, len);
		check_all_n(f->fd, d, len);
		check_sizes_around_blocks(f->fd, d, len, some_n,
					  sizeof(some_n) / sizeof(some_n[0]));
	}
}

/* ------------------------------------------------------------------ */
/* Bounded reading                                                      */

/* Bytes this process has read with read/pread so far (rchar of
 * /proc/self/io), or -1 when the kernel does not account them. */
static long long rchar_now(void)
{
	char buf[512];
	int fd = open("/proc/self/io", O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	long long v;
	if (sscanf(buf, "rchar: %lld", &v) != 1)
		return -1;
	return v;
}

/* A 64 MiB file that is a hole of NULs (no newline in it) followed by 20
 * short lines: the last 10 lines are found in the last block, and only about
 * that much is read.  Reading the whole hole would cost 64 MiB of rchar. */
static void test_tail_bounded(void **state)
{
	struct fixture *f = *state;
	const size_t hole = (size_t)64 << 20;
	char lines[512];
	size_t ll = 0;
	for (int i = 0; i < 20; i++)
		ll += (size_t)snprintf(lines + ll, sizeof(lines) - ll,
				       "line %02d\n", i);
	assert_int_equal(ll, 20 * 8);

	fixture_file(f, NULL, 0);
	assert_int_equal(ftruncate(f->fd, (off_t)hole), 0);
	assert_int_equal(pwrite(f->fd, lines, ll, (off_t)hole), (ssize_t)ll);
	/* and a partial line after them */
	assert_int_equal(pwrite(f->fd, "part", 4, (off_t)(hole + ll)), 4);
	const uint64_t size = hole + ll + 4;

	uint64_t s, e;
	long long before = rchar_now();
	assert_int_equal(ts_lines_tail(f->fd, size, 10, &s, &e), 0);
	long long after = rchar_now();
	assert_int_equal(e, hole + ll);
	assert_int_equal(s, hole + 10 * 8);
	assert_true(s >= size - B);
	if (before >= 0 && after >= 0) {
		/* one block, plus the few hundred bytes of /proc/self/io */
		if (after - before > (long long)B + 4096)
			fail_msg("read %lld bytes to find 10 lines",
				 after - before);
	} else {
		print_message("/proc/self/io unavailable: read volume not "
			      "checked\n");
	}

	assert_int_equal(ts_lines_tail(f->fd, size, 0, &s, &e), 0);
	assert_int_equal(s, hole + ll);
	assert_int_equal(e, hole + ll);

	/* all 20, and more than there are: the NUL hole is part of the first
	 * line, which starts at 0, beyond the TS_LINES_TAIL_MAX it reads
	 * back: the lines from the first one that starts within it */
	assert_true(hole + 8 > TS_LINES_TAIL_MAX);
	assert_int_equal(ts_lines_tail(f->fd, size, 20, &s, &e), 0);
	assert_int_equal(s, hole + 8);
	assert_int_equal(e, hole + ll);
	assert_int_equal(ts_lines_tail(f->fd, size, 19, &s, &e), 0);
	assert_int_equal(s, hole + 8);
	assert_int_equal(ts_lines_tail(f->fd, size, 1000, &s, &e), 0);
	assert_int_equal(s, hole + 8);
	assert_int_equal(e, hole + ll);
	/* no newline at all within the bound (the hole and the first bytes
	 * of the first line): a partial line that long */
	assert_int_equal(ts_lines_tail(f->fd, hole + 4, 5, &s, &e), -ERANGE);
	assert_int_equal(s, hole + 4);
	assert_int_equal(e, hole + 4);
}

/* Lines that straddle the last block boundary: two blocks read, not
 * more. */
static void test_tail_bounded_two_blocks(void **state)
{
	struct fixture *f = *state;
	const size_t hole = (size_t)64 << 20;
	/* 100 lines of 1000 bytes: 100000 bytes, more than one block */
	char *d = filled(f, 100 * 1000, 'w');
	for (size_t i = 0; i < 100; i++)
		d[i * 1000 + 999] = '\n';
	fixture_file(f, NULL, 0);
	assert_int_equal(ftruncate(f->fd, (off_t)hole), 0);
	assert_int_equal(pwrite(f->fd, d, 100 * 1000, (off_t)hole), 100 * 1000);
	const uint64_t size = hole + 100 * 1000;

	uint64_t s, e;
	long long before = rchar_now();
	assert_int_equal(ts_lines_tail(f->fd, size, 90, &s, &e), 0);
	long long after = rchar_now();
	assert_int_equal(e, size);
	assert_int_equal(s, hole + 10 * 1000);
	if (before >= 0 && after >= 0 &&
	    after - before > 2 * (long long)B + 4096)
		fail_msg("read %lld bytes to find 90 lines", after - before);
}

/* A sparse file with no newline at all: nothing complete, start = end = 0. */
static void test_tail_hole_only(void **state)
{
	struct fixture *f = *state;
	fixture_file(f, NULL, 0);
	const uint64_t size = (uint64_t)16 << 20;
	assert_int_equal(ftruncate(f->fd, (off_t)size), 0);
	uint64_t s = 1, e = 1;
	assert_int_equal(ts_lines_tail(f->fd, size, 10, &s, &e), 0);
	assert_int_equal(s, 0);
	assert_int_equal(e, 0);
	s = e = 1;
	assert_int_equal(ts_lines_tail(f->fd, size, 0, &s, &e), 0);
	assert_int_equal(s, 0);
	assert_int_equal(e, 0);
}

/* ------------------------------------------------------------------ */
/* ts_lines_tail_match                                                  */

static int keep_all(const char *line, size_t len, void *arg)
{
	(void)line;
	(void)len;
	(void)arg;
	return 1;
}

/* The bound at its smallest: max_bytes 0 reads nothing and starts at the
 * end (it once scanned from before its empty window: fuzz_tail found it);
 * 1 byte holds no whole line; 2 bytes hold the last one. */
static void test_tail_match_tiny_bound(void **state)
{
	struct fixture *f = *state;
	static const char d[] = "a\nb\nc\n";
	static const struct {
		uint64_t max_bytes, start;
	} cases[] = { { 0, 6 }, { 1, 6 }, { 2, 4 }, { 4, 2 }, { 100, 0 } };
	fixture_file(f, d, sizeof(d) - 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t s = 7777, e = 8888;
		assert_int_equal(ts_lines_tail_match(f->fd, sizeof(d) - 1, 5,
						     cases[i].max_bytes,
						     keep_all, NULL, &s, &e),
				 0);
		assert_int_equal(e, 6);
		if (s != cases[i].start)
			fail_msg("max_bytes %" PRIu64 ": start %" PRIu64
				 ", want %" PRIu64,
				 cases[i].max_bytes, s, cases[i].start);
	}
}

/* ------------------------------------------------------------------ */
/* ts_lines_at_start                                                    */

static void test_at_start(void **state)
{
	struct fixture *f = *state;
	static const char d[] = "ab\ncd\n\nef";
	static const struct {
		uint64_t off;
		int want;
	} cases[] = {
		{ 0, 1 }, /* the start of the file */
		{ 1, 0 }, /* mid-line */
		{ 2, 0 }, /* just before the newline */
		{ 3, 1 }, /* after '\n' */
		{ 4, 0 },
		{ 6, 1 },
		{ 7, 1 }, /* after an empty line */
		{ 8, 0 },
		{ 9, 0 },	  /* == size, inside the partial last line */
		{ 10, -ENODATA }, /* past the end */
		{ 11, -ENODATA },
		{ 1000000, -ENODATA },
		{ INT64_MAX, -ENODATA },
	};
	fixture_file(f, d, sizeof(d) - 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = ts_lines_at_start(f->fd, cases[i].off);
		if (rc != cases[i].want)
			fail_msg("off %" PRIu64 ": %d, want %d", cases[i].off,
				 rc, cases[i].want);
	}

	/* == size right after a newline: a line starts there */
	fixture_file(f, "ab\n", 3);
	assert_int_equal(ts_lines_at_start(f->fd, 3), 1);
	assert_int_equal(ts_lines_at_start(f->fd, 4), -ENODATA);

	/* empty file: only offset 0 */
	fixture_file(f, "", 0);
	assert_int_equal(ts_lines_at_start(f->fd, 0), 1);
	assert_int_equal(ts_lines_at_start(f->fd, 1), -ENODATA);

	/* errors */
	assert_int_equal(ts_lines_at_start(-1, 5), -EBADF);
	assert_int_equal(ts_lines_at_start(-1, 0), 1); /* no read needed */
}

/* Across a block-sized file, agreeing with the bytes themselves. */
static void test_at_start_matches_data(void **state)
{
	struct fixture *f = *state;
	const size_t len = B + 100;
	char *d = filled(f, len, 'm');
	for (size_t i = 0; i < len; i += 1 + i % 97)
		d[i] = '\n';
	fixture_file(f, d, len);
	for (size_t off = 0; off <= len; off += 1 + off % 13) {
		int want = off == 0 || d[off - 1] == '\n';
		assert_int_equal(ts_lines_at_start(f->fd, off), want);
	}
	assert_int_equal(ts_lines_at_start(f->fd, len), d[len - 1] == '\n');
	assert_int_equal(ts_lines_at_start(f->fd, len + 1), -ENODATA);
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup_fixture, teardown_fixture)
	const struct CMUnitTest tests[] = {
		T(test_tail_small),
		T(test_tail_size_limits),
		T(test_tail_errors),
		T(test_tail_block_sized_lines),
		T(test_tail_newline_at_block_boundary),
		T(test_tail_long_partial_line),
		T(test_tail_random_files),
		T(test_tail_bounded),
		T(test_tail_bounded_two_blocks),
		T(test_tail_hole_only),
		T(test_tail_match_tiny_bound),
		T(test_at_start),
		T(test_at_start_matches_data),
	};
#undef T
	return cmocka_run_group_tests_name("lines", tests, NULL, NULL);
}
