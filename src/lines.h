/* lines.h: finding line boundaries in a log file.  Reads with pread only,
 * so any thread may call these on a shared fd. */
#ifndef TS_LINES_H
#define TS_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Block size for backwards reads; exposed for the tests. */
#define TS_LINES_BLOCK 65536
/* The most ts_lines_tail reads back (it runs on the HTTP thread). */
#define TS_LINES_TAIL_MAX (64 * 1024 * 1024)

/* Read backwards from `size` (the file's size): *end becomes the offset just
 * after the last '\n' before `size` (0 if none; bytes after it are a partial
 * line still being written), and *start the offset where the last `n`
 * complete lines before *end begin.  Reads only the blocks it needs:
 * about the size of those lines, plus the partial line, and never more
 * than TS_LINES_TAIL_MAX bytes: past that *start is the first line that
 * starts within them, or, when no newline was found at all, -ERANGE with
 * *start = *end = size (a partial line that long).  0 or -errno. */
int ts_lines_tail(int fd, uint64_t size, uint64_t n, uint64_t *start,
		  uint64_t *end);

/* Read [off, off + n) fully: 0, -EAGAIN when the file ends before (it
 * shrank under us), or -errno. */
int ts_lines_pread_full(int fd, char *buf, size_t n, uint64_t off);

/* 1 when offset is 0 or the byte before it is '\n' (a line starts there),
 * 0 when it is not, -errno on a read error (-ENODATA past the end). */
int ts_lines_at_start(int fd, uint64_t off);

/* Decides whether a line counts, for ts_lines_tail_match: 1 it does, 0 it
 * does not, -1 stop looking (a time budget is spent). */
typedef int (*ts_line_pred)(const char *line, size_t len, void *arg);

/* Like ts_lines_tail, but count only the lines `keep` accepts, and read at
 * most `max_bytes` back from *end: *start becomes where the last `n`
 * accepted lines begin, or, when fewer are found within the bound (or
 * `keep` said stop), the first line looked at last.  Reading the lines
 * forward from *start then gives exactly those lines.  0 or -errno. */
int ts_lines_tail_match(int fd, uint64_t size, uint64_t n, uint64_t max_bytes,
			ts_line_pred keep, void *arg, uint64_t *start,
			uint64_t *end);

#endif
