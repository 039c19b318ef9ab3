/* before.h: the lines before a position, as the JSON answer of
 * GET /api/logs/NAME/lines: {"lines":[{"id":"INO:OFF","line":"..."},...]},
 * oldest first, the line whose id is the position last.  Reads backwards
 * from the position like tail=N does, within the one file given.
 *
 * Threads: any (pread only); it may read up to TS_BEFORE_MAX_BYTES, so not
 * on the HTTP thread. */
#ifndef TS_BEFORE_H
#define TS_BEFORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "filter.h"

/* How far back the lines are looked for (with a filter: the last N
 * matching lines within this distance). */
#define TS_BEFORE_MAX_BYTES (16 * 1024 * 1024)

struct ts_before {
	int fd; /* the file the position names */
	uint64_t ino;
	uint64_t off;	 /* at a line start, <= the file's size */
	uint64_t n;	 /* lines wanted, >= 1 */
	size_t max_line; /* lines are cut like the stream cuts them */
	struct ts_filter_cache *filters;
	const struct ts_filter *filter; /* NULL: every line */
	bool grep;			/* add "match" ranges */
};

/* Append the JSON answer to `out`.  0 or -errno. */
int ts_before_json(const struct ts_before *b, struct ts_buf *out);

#endif
