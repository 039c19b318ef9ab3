/* request.c: a request's query parameters and Last-Event-ID headers -> a
 * struct ts_request, or one error line (see request.h).
 *
 * Every value is a (pointer, length) pair that is never read past its
 * length: libmicrohttpd does end values with a NUL, but a %00 inside makes
 * the length the only truth, and the fuzzer gives no terminator at all. */
#include "request.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The parameters this module knows; the single-valued ones first, so that
 * they index the table of values seen. */
enum param_id {
	P_TAIL,
	P_LASTEVENTID,
	P_ICASE,
	P_FORMAT,
	P_TOKEN,
	P_BEFORE,
	P_N,
	P_NSINGLE,
	P_GREP = P_NSINGLE,
	P_EXCLUDE,
	P_LOG,
	P_UNKNOWN,
};

#define K_EVENTS (1u << TS_REQ_EVENTS)
#define K_MULTI (1u << TS_REQ_MULTI)
#define K_LINES (1u << TS_REQ_LINES)
#define K_STREAM (K_EVENTS | K_MULTI)
#define K_ALL (K_STREAM | K_LINES)

static const struct {
	const char *key;
	unsigned kinds; /* where it means something; elsewhere unknown */
} params[P_UNKNOWN] = {
	[P_TAIL] = { "tail", K_STREAM },
	[P_LASTEVENTID] = { "lastEventId", K_STREAM },
	[P_ICASE] = { "icase", K_ALL },
	[P_FORMAT] = { "format", K_STREAM },
	[P_TOKEN] = { "token", K_ALL },
	[P_BEFORE] = { "before", K_LINES },
	[P_N] = { "n", K_LINES },
	[P_GREP] = { "grep", K_ALL },
	[P_EXCLUDE] = { "exclude", K_ALL },
	[P_LOG] = { "log", K_MULTI },
};

#define HEADER "Last-Event-ID header"
#define CURSOR_SYNTAX "expected NAME=INODE:OFFSET,..."

struct parse {
	const struct ts_req_input *in;
	struct ts_request *out;
	const struct ts_param *single[P_NSINGLE]; /* NULL: not given */
	char *err;
	size_t errlen;
};

/* A value as it was found: s NULL when absent. */
struct slice {
	const char *s;
	size_t len;
};

__attribute__((format(printf, 3, 4))) static void fail_msg(char *err,
							   size_t errlen,
							   const char *fmt, ...)
{
	if (err && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
}

/* The message in err, and -EINVAL.  A macro so that static analysis sees
 * the -EINVAL: it does not follow variadic functions, and took a failed
 * parse for a good one (reading names[] that were never written). */
#define fail(err, errlen, ...) (fail_msg(err, errlen, __VA_ARGS__), -EINVAL)

static bool is_lit(struct slice v, const char *lit)
{
	return v.len == strlen(lit) && memcmp(v.s, lit, v.len) == 0;
}

static bool has_nul(const char *s, size_t len)
{
	return len > 0 && memchr(s, '\0', len) != NULL;
}

static bool is_name_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

#define SHOWN_MAX TS_NAME_MAX /* bytes of a client's name put in a message */
#define SHOWN_SIZE (SHOWN_MAX * 3 + sizeof("..."))

/* A client's would-be log name as it can go in a one-line message: any
 * byte outside the name set as %XX (so no newline, quote or terminal
 * escape gets through), cut after SHOWN_MAX bytes. */
static const char *shown(const char *s, size_t len, char buf[SHOWN_SIZE])
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < len && i < SHOWN_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		if (is_name_byte(c)) {
			buf[o++] = (char)c;
		} else {
			buf[o++] = '%';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	if (len > SHOWN_MAX) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

static enum param_id classify(const char *key, enum ts_req_kind kind)
{
	if (!key)
		return P_UNKNOWN;
	for (int i = 0; i < P_UNKNOWN; i++) {
		if ((params[i].kinds & (1u << kind)) &&
		    strcmp(key, params[i].key) == 0)
			return (enum param_id)i;
	}
	return P_UNKNOWN;
}

/* ------------------------------------------------------------------ */
/* Multi-log cursors                                                    */

/* One entry "NAME=INODE:OFFSET" of a cursor, the `no`th (from 1). */
static int cursor_entry(const char *s, size_t len, size_t no,
			struct slice *names, size_t nnames,
			const struct ts_request *req, struct ts_pos *pos,
			bool *in, const char *what, char *err, size_t errlen)
{
	char buf[SHOWN_SIZE];
	if (len == 0)
		return fail(err, errlen,
			    "bad %s: " CURSOR_SYNTAX " (entry %zu is empty)",
			    what, no);
	const char *eq = memchr(s, '=', len);
	if (!eq)
		return fail(err, errlen,
			    "bad %s: " CURSOR_SYNTAX " (entry %zu has no '=')",
			    what, no);
	struct slice name = { s, (size_t)(eq - s) };
	if (!ts_config_valid_name(name.s, name.len))
		return fail(err, errlen,
			    "bad %s: " CURSOR_SYNTAX
			    " (entry %zu: '%s' is not a log name)",
			    what, no, shown(name.s, name.len, buf));
	for (size_t i = 0; i < nnames; i++) {
		if (names[i].len == name.len &&
		    memcmp(names[i].s, name.s, name.len) == 0)
			return fail(err, errlen,
				    "bad %s: " CURSOR_SYNTAX
				    " (entry %zu: '%s' is in it twice)",
				    what, no, shown(name.s, name.len, buf));
	}
	names[nnames] = name;
	struct ts_pos p;
	if (ts_sse_parse_id_n(eq + 1, len - name.len - 1, &p) != 0 ||
	    !p.has_ino)
		return fail(err, errlen,
			    "bad %s: " CURSOR_SYNTAX
			    " (entry %zu: '%s' is not at INODE:OFFSET)",
			    what, no, shown(name.s, name.len, buf));
	for (size_t i = 0; i < req->nlogs; i++) {
		if (req->log_len[i] == name.len &&
		    memcmp(req->log[i], name.s, name.len) == 0) {
			pos[i] = p;
			in[i] = true;
		}
	}
	return 0;
}

/* Parse s[0..len) for the logs of `req` into pos[] and in[] (each
 * TS_REQ_MAX_LOGS long, written only on success); `what` names the source
 * in the message. */
static int cursor_parse(const char *s, size_t len, const struct ts_request *req,
			struct ts_pos *pos, bool *in, const char *what,
			char *err, size_t errlen)
{
	struct slice names[TS_REQ_CURSOR_MAX];
	struct ts_pos p[TS_REQ_MAX_LOGS];
	bool got[TS_REQ_MAX_LOGS] = { false };
	size_t no = 0;

	if (!s) {
		s = "";
		len = 0;
	}
	const char *end = s + len;
	for (const char *e = s;; e++) {
		const char *comma = e < end ? memchr(e, ',', (size_t)(end - e))
					    : NULL;
		const char *stop = comma ? comma : end;
		if (no == TS_REQ_CURSOR_MAX)
			return fail(err, errlen,
				    "bad %s: " CURSOR_SYNTAX
				    " (more than %d entries)",
				    what, TS_REQ_CURSOR_MAX);
		int rc = cursor_entry(e, (size_t)(stop - e), no + 1, names, no,
				      req, p, got, what, err, errlen);
		if (rc)
			return rc;
		no++;
		if (!comma)
			break;
		e = comma;
	}
	for (size_t i = 0; i < TS_REQ_MAX_LOGS; i++) {
		in[i] = got[i];
		if (got[i])
			pos[i] = p[i];
	}
	return 0;
}

int ts_request_parse_cursor(const char *s, size_t len, struct ts_request *req,
			    char *err, size_t errlen)
{
	memset(req->in_cursor, 0, sizeof(req->in_cursor));
	if (req->nlogs > TS_REQ_MAX_LOGS)
		return fail(err, errlen, "bad log: at most %d logs",
			    TS_REQ_MAX_LOGS);
	return cursor_parse(s, len, req, req->cursor, req->in_cursor, "cursor",
			    err, errlen);
}

/* ------------------------------------------------------------------ */
/* The query, first pass: who is there                                  */

static int add_pattern(struct parse *ps, enum param_id id,
		       const struct ts_param *q)
{
	struct ts_request *o = ps->out;
	if (o->ngrep + o->nexclude == TS_FILTER_MAX_PATTERNS)
		return fail(ps->err, ps->errlen,
			    "too many grep/exclude patterns: at most %d",
			    TS_FILTER_MAX_PATTERNS);
	if (q->value && has_nul(q->value, q->value_len))
		return fail(ps->err, ps->errlen, "bad %s: contains a NUL byte",
			    params[id].key);
	/* an empty pattern matches every line: allowed, if useless */
	const char *v = q->value ? q->value : "";
	if (id == P_GREP)
		o->grep[o->ngrep++] = v;
	else
		o->exclude[o->nexclude++] = v;
	return 0;
}

static int add_log(struct parse *ps, const struct ts_param *q)
{
	struct ts_request *o = ps->out;
	char buf[SHOWN_SIZE];
	if (o->nlogs == TS_REQ_MAX_LOGS)
		return fail(ps->err, ps->errlen, "bad log: at most %d logs",
			    TS_REQ_MAX_LOGS);
	if (!q->value || q->value_len == 0)
		return fail(ps->err, ps->errlen, "bad log: empty");
	if (has_nul(q->value, q->value_len))
		return fail(ps->err, ps->errlen,
			    "bad log: contains a NUL byte");
	if (!ts_config_valid_name(q->value, q->value_len))
		return fail(ps->err, ps->errlen,
			    "bad log: '%s' is not a log name",
			    shown(q->value, q->value_len, buf));
	for (size_t i = 0; i < o->nlogs; i++) {
		if (o->log_len[i] == q->value_len &&
		    memcmp(o->log[i], q->value, q->value_len) == 0)
			return fail(ps->err, ps->errlen,
				    "bad log: '%s' given more than once",
				    shown(q->value, q->value_len, buf));
	}
	o->log[o->nlogs] = q->value;
	o->log_len[o->nlogs++] = q->value_len;
	return 0;
}

/* Sort the query into the single values, the patterns and the logs.  A
 * single-valued parameter given twice is reported before anything about
 * its values: which of the two was meant cannot be known. */
static int collect(struct parse *ps)
{
	const struct ts_req_input *in = ps->in;
	for (size_t i = 0; i < in->nquery; i++) {
		const struct ts_param *q = &in->query[i];
		enum param_id id = classify(q->key, in->kind);
		int rc = 0;
		if (id < P_NSINGLE) {
			if (ps->single[id])
				return fail(ps->err, ps->errlen,
					    "bad %s: given more than once",
					    params[id].key);
			ps->single[id] = q;
		} else if (id == P_GREP || id == P_EXCLUDE) {
			rc = add_pattern(ps, id, q);
		} else if (id == P_LOG) {
			rc = add_log(ps, q);
		}
		if (rc)
			return rc;
	}
	if (in->kind == TS_REQ_MULTI && ps->out->nlogs == 0)
		return fail(ps->err, ps->errlen,
			    "bad log: at least one log= is needed");
	return 0;
}

/* ------------------------------------------------------------------ */
/* Second pass: the values                                              */

/* The value of a single-valued parameter; v->s NULL when not given. */
static int single(struct parse *ps, enum param_id id, struct slice *v)
{
	const struct ts_param *q = ps->single[id];
	const char *key = params[id].key;
	v->s = NULL;
	v->len = 0;
	if (!q)
		return 0;
	if (!q->value) {
		/* a bare ?icase is a ticked checkbox */
		if (id != P_ICASE)
			return fail(ps->err, ps->errlen, "bad %s: empty", key);
		v->s = "1";
		v->len = 1;
		return 0;
	}
	if (has_nul(q->value, q->value_len))
		return fail(ps->err, ps->errlen, "bad %s: contains a NUL byte",
			    key);
	if (q->value_len == 0)
		return fail(ps->err, ps->errlen, "bad %s: empty", key);
	v->s = q->value;
	v->len = q->value_len;
	return 0;
}

/* token, icase, format, tail: the parameters of every stream. */
static int plain_values(struct parse *ps)
{
	struct ts_request *o = ps->out;
	struct slice v;
	int rc;

	if ((rc = single(ps, P_TOKEN, &v)) != 0)
		return rc;
	o->token = v.s;
	if ((rc = single(ps, P_ICASE, &v)) != 0)
		return rc;
	if (v.s && !is_lit(v, "0") && !is_lit(v, "1"))
		return fail(ps->err, ps->errlen, "bad icase: expected 0 or 1");
	o->icase = v.s && is_lit(v, "1");
	if ((rc = single(ps, P_FORMAT, &v)) != 0)
		return rc;
	if (v.s && !is_lit(v, "json") && !is_lit(v, "text"))
		return fail(ps->err, ps->errlen,
			    "bad format: expected json or text");
	o->json = v.s && is_lit(v, "json");
	if ((rc = single(ps, P_TAIL, &v)) != 0)
		return rc;
	if (v.s && ts_parse_uint_n(v.s, v.len, TS_TAIL_MAX, &o->tail) != 0)
		return fail(ps->err, ps->errlen,
			    "bad tail: expected a number of lines from 0 to %d",
			    TS_TAIL_MAX);
	o->has_tail = v.s != NULL;
	return 0;
}

/* before= and n= of /lines. */
static int lines_values(struct parse *ps)
{
	struct ts_request *o = ps->out;
	struct slice v;
	int rc;

	if ((rc = single(ps, P_BEFORE, &v)) != 0)
		return rc;
	if (!v.s)
		return fail(ps->err, ps->errlen,
			    "bad before: missing, expected INODE:OFFSET");
	/* a bare OFFSET would mean "whichever file is there now", and the
	 * lines are read within the one file the ID names */
	if (ts_sse_parse_id_n(v.s, v.len, &o->before) != 0 ||
	    !o->before.has_ino)
		return fail(ps->err, ps->errlen,
			    "bad before: expected INODE:OFFSET");
	if ((rc = single(ps, P_N, &v)) != 0)
		return rc;
	o->n = TS_LINES_N_DEFAULT;
	if (v.s && (ts_parse_uint_n(v.s, v.len, TS_LINES_N_MAX, &o->n) != 0 ||
		    o->n < 1))
		return fail(ps->err, ps->errlen,
			    "bad n: expected a number of lines from 1 to %d",
			    TS_LINES_N_MAX);
	return 0;
}

/* The Last-Event-ID header, HTTP's optional whitespace (spaces and tabs)
 * trimmed at both ends; h->s NULL when there is none or it is empty (an
 * EventSource that has no id yet may send one empty). */
static int header_id(struct parse *ps, struct slice *h)
{
	const struct ts_req_input *in = ps->in;
	h->s = NULL;
	h->len = 0;
	if (!in->last_event_id || in->nlast_event_id == 0)
		return 0;
	if (in->nlast_event_id > 1)
		return fail(ps->err, ps->errlen,
			    "bad " HEADER ": given more than once");
	const char *s = in->last_event_id[0];
	if (!s)
		return 0;
	size_t len = in->last_event_id_len ? in->last_event_id_len[0]
					   : strlen(s);
	if (has_nul(s, len))
		return fail(ps->err, ps->errlen,
			    "bad " HEADER ": contains a NUL byte");
	while (len > 0 && (s[0] == ' ' || s[0] == '\t')) {
		s++;
		len--;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len > 0) {
		h->s = s;
		h->len = len;
	}
	return 0;
}

/* The ids of a stream, header and query both checked: a typo in the one
 * that loses is still a typo. */
static int id_values(struct parse *ps)
{
	struct ts_request *o = ps->out;
	struct slice h, q;
	int rc;

	if ((rc = header_id(ps, &h)) != 0 ||
	    (rc = single(ps, P_LASTEVENTID, &q)) != 0)
		return rc;
	if (ps->in->kind == TS_REQ_EVENTS) {
		struct ts_pos qpos;
		if (h.s && ts_sse_parse_id_n(h.s, h.len, &o->id) != 0)
			return fail(ps->err, ps->errlen,
				    "bad " HEADER
				    ": expected INODE:OFFSET or OFFSET");
		if (q.s && ts_sse_parse_id_n(q.s, q.len, &qpos) != 0)
			return fail(ps->err, ps->errlen,
				    "bad lastEventId"
				    ": expected INODE:OFFSET or OFFSET");
		if (!h.s && q.s)
			o->id = qpos;
	} else {
		/* the loser's scratch; zeroed for cppcheck, which takes
		 * passing them for reading them */
		struct ts_pos spos[TS_REQ_MAX_LOGS] = { { 0 } };
		bool sin[TS_REQ_MAX_LOGS] = { false };
		if (h.s &&
		    (rc = cursor_parse(h.s, h.len, o, o->cursor, o->in_cursor,
				       HEADER, ps->err, ps->errlen)) != 0)
			return rc;
		/* the loser goes to scratch, the winner stays */
		if (q.s &&
		    (rc = cursor_parse(q.s, q.len, o, h.s ? spos : o->cursor,
				       h.s ? sin : o->in_cursor, "lastEventId",
				       ps->err, ps->errlen)) != 0)
			return rc;
	}
	if (h.s || q.s)
		o->from = TS_FROM_ID;
	else if (o->has_tail)
		o->from = TS_FROM_TAIL;
	return 0;
}

int ts_request_parse(const struct ts_req_input *in, struct ts_request *out,
		     char *err, size_t errlen)
{
	struct parse ps = { .in = in, .out = out, .err = err, .errlen = errlen };
	int rc;

	memset(out, 0, sizeof(*out));
	out->from = TS_FROM_END;
	if (err && errlen > 0)
		err[0] = '\0';
	if ((unsigned)in->kind > TS_REQ_LINES)
		return fail(err, errlen, "bad request kind %d", (int)in->kind);
	if ((rc = collect(&ps)) != 0 || (rc = plain_values(&ps)) != 0)
		return rc;
	if (in->kind == TS_REQ_LINES)
		return lines_values(&ps);
	return id_values(&ps);
}
