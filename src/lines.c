#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lines.h"

/* The first line start at or after `pos` (no later than `e`, which is
 * one). */
static uint64_t tail_start_in(int fd, uint64_t pos, uint64_t e)
{
	char buf[4096];
	if (pos == 0)
		return 0;
	for (uint64_t at = pos - 1; at < e;) {
		ssize_t r = pread(fd, buf, sizeof(buf), (off_t)at);
		if (r <= 0)
			break;
		char *nl = memchr(buf, '\n', (size_t)r);
		if (nl)
			return at + (uint64_t)(nl - buf) + 1;
		at += (uint64_t)r;
	}
	return e;
}

int ts_lines_tail(int fd, uint64_t size, uint64_t n, uint64_t *start,
		  uint64_t *end)
{
	char *blk = malloc(TS_LINES_BLOCK);
	if (!blk)
		return -ENOMEM;

	int rc = 0;
	uint64_t pos = size; /* blk holds [pos, pos + got) */
	bool have_end = false;
	uint64_t e = 0;
	uint64_t seen = 0; /* newlines found before e */

	*start = *end = 0;
	while (pos > 0) {
		if (size - pos >= TS_LINES_TAIL_MAX) {
			/* read as far back as we go: no newline at all means
			 * a partial line longer than that, else the lines
			 * that start within the bound */
			if (!have_end) {
				*start = *end = size;
				rc = -ERANGE;
			} else {
				*end = e;
				*start = tail_start_in(fd, pos, e);
			}
			goto out;
		}
		size_t want = pos < TS_LINES_BLOCK ? (size_t)pos
						   : TS_LINES_BLOCK;
		pos -= want;
		size_t got = 0;
		while (got < want) {
			ssize_t r = pread(fd, blk + got, want - got,
					  (off_t)(pos + got));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				rc = -errno;
				goto out;
			}
			if (r == 0) {
				/* shrank under us: treat as truncated here */
				rc = -EAGAIN;
				goto out;
			}
			got += (size_t)r;
		}
		for (size_t i = want; i-- > 0;) {
			if (blk[i] != '\n')
				continue;
			if (!have_end) {
				have_end = true;
				e = pos + i + 1;
				if (n == 0) {
					*start = *end = e;
					goto out;
				}
				continue;
			}
			if (++seen == n) {
				*start = pos + i + 1;
				*end = e;
				goto out;
			}
		}
	}
	/* reached the beginning: fewer than n lines, all of them */
	*start = 0;
	*end = have_end ? e : 0;
out:
	free(blk);
	return rc;
}

int ts_lines_at_start(int fd, uint64_t off)
{
	if (off == 0)
		return 1;
	char c;
	for (;;) {
		ssize_t r = pread(fd, &c, 1, (off_t)(off - 1));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ENODATA;
		return c == '\n';
	}
}

int ts_lines_pread_full(int fd, char *buf, size_t n, uint64_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, buf + got, n - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EAGAIN; /* shrank under us */
		got += (size_t)r;
	}
	return 0;
}

int ts_lines_tail_match(int fd, uint64_t size, uint64_t n, uint64_t max_bytes,
			ts_line_pred keep, void *arg, uint64_t *start,
			uint64_t *end)
{
	uint64_t e, unused;
	int rc = ts_lines_tail(fd, size, 0, &e, &unused);
	if (rc)
		return rc;
	*end = e;
	*start = e;
	/* max_bytes 0: no line within the bound (the window below would be
	 * empty, and its scan start before it) */
	if (n == 0 || e == 0 || max_bytes == 0)
		return 0;
	uint64_t bound = e > max_bytes ? e - max_bytes : 0;

	/* A window [w, e) that doubles until it holds n accepted lines or
	 * reaches the bound; at most twice the bytes needed are read. */
	uint64_t want = TS_LINES_BLOCK;
	char *buf = NULL;
	for (;;) {
		uint64_t w = e - bound > want ? e - want : bound;
		size_t len = (size_t)(e - w);
		char *p = realloc(buf, len);
		if (!p) {
			rc = -ENOMEM;
			break;
		}
		buf = p;
		rc = ts_lines_pread_full(fd, buf, len, w);
		if (rc)
			break;
		/* the window's first line is whole only at a line start */
		bool whole = w == 0;
		if (!whole) {
			int at = ts_lines_at_start(fd, w);
			if (at < 0) {
				rc = at;
				break;
			}
			whole = at == 1;
		}
		uint64_t found = 0;
		size_t lend = len - 1; /* the '\n' ending the current line */
		for (;;) {
			size_t ls = lend;
			while (ls > 0 && buf[ls - 1] != '\n')
				ls--;
			if (ls == 0 && !whole)
				break; /* starts before the window */
			int k = keep(buf + ls, lend - ls, arg);
			if (k < 0 || (k > 0 && ++found == n)) {
				*start = w + ls;
				goto out;
			}
			*start = w + ls;
			if (ls == 0)
				break;
			lend = ls - 1;
		}
		if (w == bound) {
			/* fewer than n within the bound: from the first line
			 * that starts inside it */
			if (!whole) {
				char *nl = memchr(buf, '\n', len);
				*start = nl ? w + (uint64_t)(nl - buf) + 1 : e;
				if (*start > e)
					*start = e;
			}
			goto out;
		}
		want *= 2;
	}
out:
	free(buf);
	return rc;
}
