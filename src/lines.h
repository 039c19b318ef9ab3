/* lines.h: finding line boundaries in a log file.  Reads with pread only,
 * so any thread may call these on a shared fd. */
#ifndef TS_LINES_H
#define TS_LINES_H

#include <stddef.h>
#include <stdint.h>

/* Block size for backwards reads; exposed for the tests. */
#define TS_LINES_BLOCK 65536

/* Read backwards from `size` (the file's size): *end becomes the offset just
 * after the last '\n' before `size` (0 if none; bytes after it are a partial
 * line still being written), and *start the offset where the last `n`
 * complete lines before *end begin.  Reads only the blocks it needs:
 * about the size of those lines, plus the partial line.  0 or -errno. */
int ts_lines_tail(int fd, uint64_t size, uint64_t n, uint64_t *start,
		  uint64_t *end);

/* 1 when offset is 0 or the byte before it is '\n' (a line starts there),
 * 0 when it is not, -errno on a read error (-ENODATA past the end). */
int ts_lines_at_start(int fd, uint64_t off);

#endif
