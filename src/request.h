/* request.h: a request's parameters -> struct ts_request, or one error line.
 * Pure: no I/O, no allocation; the result points into the input.  Any thread.
 *
 * Which parameters a request has depends on its kind; a parameter that is
 * not one of its kind's is unknown and ignored, like a cache-buster `_=123`:
 *
 *   every kind       token, grep, exclude, icase
 *   EVENTS, MULTI    tail, lastEventId (and the Last-Event-ID header), format
 *   MULTI            log
 *   LINES            before, n */
#ifndef TS_REQUEST_H
#define TS_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sse.h"    /* struct ts_pos */
#include "filter.h" /* TS_FILTER_MAX_PATTERNS */
#include "config.h" /* TS_NAME_MAX, TS_ERR_MAX */

#define TS_REQ_MAX_LOGS 32
#define TS_TAIL_MAX 1000000  /* largest tail=N */
#define TS_LINES_N_MAX 10000 /* largest n= of /lines */
#define TS_LINES_N_DEFAULT 100
/* Most entries a multi-log cursor may have: every requested log once, and
 * room for a client that kept entries of logs it no longer asks for. */
#define TS_REQ_CURSOR_MAX 64

enum ts_req_kind {
	TS_REQ_EVENTS, /* /api/logs/NAME/events */
	TS_REQ_MULTI,  /* /api/events?log=A&log=B */
	TS_REQ_LINES
}; /* /api/logs/NAME/lines */

/* One query parameter as libmicrohttpd gives it: value NULL for a bare
 * `?key` (no '='), else the decoded value and its length (which may hold NUL). */
struct ts_param {
	const char *key;
	const char *value;
	size_t value_len;
};

struct ts_req_input {
	enum ts_req_kind kind;
	const struct ts_param *query;
	size_t nquery;			  /* in request order */
	const char *const *last_event_id; /* each Last-Event-ID header value */
	const size_t *last_event_id_len;
	size_t nlast_event_id;
};

enum ts_from { TS_FROM_END, TS_FROM_ID, TS_FROM_TAIL };

struct ts_request {
	/* Where a stream starts.  For TS_REQ_MULTI, TS_FROM_ID says that a
	 * cursor was given: log[i] starts at cursor[i] when in_cursor[i],
	 * else as a fresh connect would (tail= when has_tail, else the end). */
	enum ts_from from;
	struct ts_pos id; /* TS_FROM_ID, TS_REQ_EVENTS */
	uint64_t tail;	  /* TS_FROM_TAIL, or has_tail */
	/* tail= was given, also when an id wins over it: a log of a MULTI
	 * stream that the cursor omits starts as a fresh connect would, and
	 * "absent" (backlog_default lines) differs from tail=0. */
	bool has_tail;
	/* Each points at the value (NUL-terminated by libmicrohttpd, and free
	 * of NUL before it); a bare ?grep is "". */
	const char *grep[TS_FILTER_MAX_PATTERNS];
	size_t ngrep;
	const char *exclude[TS_FILTER_MAX_PATTERNS];
	size_t nexclude;
	bool icase, json;
	const char *token; /* ?token=, NULL when absent */
	/* TS_REQ_MULTI: the logs requested, in order, and each one's cursor
	 * position when the cursor has it (TS_FROM_ID) */
	const char *log[TS_REQ_MAX_LOGS];
	size_t log_len[TS_REQ_MAX_LOGS];
	size_t nlogs;
	struct ts_pos cursor[TS_REQ_MAX_LOGS];
	bool in_cursor[TS_REQ_MAX_LOGS];
	/* TS_REQ_LINES */
	struct ts_pos before; /* has_ino always true */
	uint64_t n;
};

/* 0, or -EINVAL with one line in err naming the parameter ("bad tail: ...").
 * errlen >= TS_ERR_MAX is enough.  On error *out holds nothing usable.
 * The only value ever echoed in err is a log name (non-name bytes as %XX,
 * cut short when long); never the token. */
int ts_request_parse(const struct ts_req_input *in, struct ts_request *out,
		     char *err, size_t errlen);

/* Parse a multi-log cursor "A=INODE:OFFSET,B=INODE:OFFSET" into `out`
 * for the logs `req->log[]`: fills cursor[] / in_cursor[].  0 or -EINVAL
 * (err as above, naming what is wrong).  Exposed for the tests and the fuzzer.
 * Here the error names the source "cursor" ("bad cursor: expected ..."),
 * ts_request_parse names the header or lastEventId instead.  On error
 * in_cursor[] is all false. */
int ts_request_parse_cursor(const char *s, size_t len, struct ts_request *req,
			    char *err, size_t errlen);

#endif
