#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lines.h"

int ts_lines_tail(int fd, uint64_t size, uint64_t n, uint64_t *start,
		  uint64_t *end)
{
	char *blk = malloc(TS_LINES_BLOCK);
	if (!blk)
		return -ENOMEM;

	int rc = 0;
	uint64_t pos = size;   /* blk holds [pos, pos + got) */
	bool have_end = false;
	uint64_t e = 0;
	uint64_t seen = 0;     /* newlines found before e */

	*start = *end = 0;
	while (pos > 0) {
		size_t want = pos < TS_LINES_BLOCK ? (size_t)pos : TS_LINES_BLOCK;
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
