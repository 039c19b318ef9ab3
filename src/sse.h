/* sse.h: Server-Sent Events encoding and the parsers of stream positions.
 * Pure functions: no I/O, no shared state; any thread may call them. */
#ifndef TS_SSE_H
#define TS_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Bytes that one event for a line can take beyond its sanitised text
 * ("id: " + two u64 + ":" + "\ndata: " + "…" + "\n\n", rounded up). */
#define TS_SSE_EVENT_OVERHEAD 64

/* A position in a log: `INODE:OFFSET`, or a bare OFFSET (has_ino false). */
struct ts_pos {
	uint64_t ino;
	uint64_t off;
	bool has_ino;
};

/* Append the text of one file line (without its '\n') as it goes after
 * "data: ": a trailing '\r' is dropped; any other CR, NUL and every byte
 * that is not part of valid UTF-8 becomes U+FFFD (one per maximal invalid
 * subpart, as Unicode recommends); if the result would exceed `max_line`
 * bytes it is cut at a character boundary to at most `max_line` bytes and
 * U+2026 is appended.  Returns 0 or -ENOMEM. */
int ts_sse_text(struct ts_buf *out, const char *line, size_t len,
		size_t max_line);

/* Append an id field, "id: INO:OFF\n".  Followed by a blank line alone, it
 * moves a client's lastEventId without an event. */
int ts_sse_id(struct ts_buf *out, uint64_t ino, uint64_t off);

/* Append a whole message event: "id: INO:OFF\ndata: TEXT\n\n". */
int ts_sse_line(struct ts_buf *out, const char *line, size_t len,
		size_t max_line, uint64_t ino, uint64_t off);

/* The length of the run at the start of s[0..n) that ts_sse_text passes
 * through as it is: no NUL, CR, LF or non-ASCII byte.  Where it stops at a
 * '\n', it is a whole plain line. */
size_t ts_sse_plain_run(const char *s, size_t n);

/* "id: INO:" of one file, formatted once for its many events. */
struct ts_sse_idp {
	size_t len;
	char s[4 + TS_U64_DIGITS + 1];
};
void ts_sse_idp_set(struct ts_sse_idp *idp, uint64_t ino);

/* ts_sse_line for a line known to be plain (ts_sse_plain_run covers it)
 * and no longer than max_line, of the file whose prefix is `idp`. */
int ts_sse_plain_line(struct ts_buf *out, const struct ts_sse_idp *idp,
		      const char *line, size_t len, uint64_t off);

/* Append "retry: MS\n\n". */
int ts_sse_retry(struct ts_buf *out, unsigned ms);

/* Append ": TEXT\n\n" (a comment; TEXT must be one line). */
int ts_sse_comment(struct ts_buf *out, const char *text);

/* Append a named event "event: TYPE\ndata: JSON\n\n", with an id line
 * when `pos` is non-NULL.  TYPE and JSON must be single lines. */
int ts_sse_event(struct ts_buf *out, const char *type, const char *json,
		 const struct ts_pos *pos);

/* Parse an event id as a client sends it back: "INODE:OFFSET" or "OFFSET",
 * decimal digits only; INODE fits in 64 bits, OFFSET in 63 (an off_t).
 * 0 or -EINVAL. */
int ts_sse_parse_id(const char *s, struct ts_pos *pos);

/* Parse a non-negative decimal integer no larger than `max`, digits only.
 * 0 or -EINVAL. */
int ts_parse_uint(const char *s, uint64_t max, uint64_t *out);

/* The same two parsers over s[0..len), which need not end in a NUL and is
 * never read past len (query values as libmicrohttpd gives them, a slice
 * of a cursor): one syntax, one parser. */
int ts_sse_parse_id_n(const char *s, size_t len, struct ts_pos *pos);
int ts_parse_uint_n(const char *s, size_t len, uint64_t max, uint64_t *out);

/* The length of the longest prefix of s[0..n) made of whole lines (each
 * ending in '\n') of plain ASCII (no NUL or CR): lines that ts_sse_text
 * passes through as they are (when not longer than max_line). */
size_t ts_sse_scannable(const char *s, size_t n);

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 when it is
 * invalid; then *bad is the length of its maximal subpart (1..3), which
 * stands for one U+FFFD (Unicode, "Substitution of Maximal Subparts"). */
size_t ts_utf8_seq(const unsigned char *s, size_t n, size_t *bad);

#endif
