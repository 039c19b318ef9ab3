/* buf.h: a length-tracking byte buffer used for all output building.
 * A buffer belongs to one thread at a time; no locking. */
#ifndef TS_BUF_H
#define TS_BUF_H

#include <stddef.h>
#include <stdint.h>

struct ts_buf {
	char *data;
	size_t len;
	size_t cap;
};

#define TS_BUF_INIT        \
	{                  \
		NULL, 0, 0 \
	}

/* Make room for `extra` more bytes.  0 or -ENOMEM. */
int ts_buf_reserve(struct ts_buf *b, size_t extra);
int ts_buf_append(struct ts_buf *b, const void *p, size_t n);
int ts_buf_puts(struct ts_buf *b, const char *s);
int ts_buf_printf(struct ts_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append `v` in decimal. */
int ts_buf_u64(struct ts_buf *b, uint64_t v);
/* Write `v` in decimal at p (room for TS_U64_DIGITS bytes); returns the
 * end. */
#define TS_U64_DIGITS 20
char *ts_u64_put(char *p, uint64_t v);
/* Drop the first n bytes, keeping the rest. */
void ts_buf_consume(struct ts_buf *b, size_t n);
static inline void ts_buf_reset(struct ts_buf *b)
{
	b->len = 0;
}
void ts_buf_free(struct ts_buf *b);

#endif
