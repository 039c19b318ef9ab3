/* test_request.c: unit tests of the request-parameter parser
 * (src/request.c).  Tables of query strings (as a client types them, %XX
 * decoded the way libmicrohttpd does, so "%00" is a real NUL inside a
 * value) and Last-Event-ID headers -> ok and the struct, or the error's
 * leading words.  Every row also runs with each value copied into a buffer
 * of exactly its length, without a terminator, so that ASan catches any
 * read past value_len; and a seeded random test feeds it anything. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

#define MAX_PARAMS 80
#define MAX_HDRS 3
#define SECRET "s3cret" /* the token of every row: never in a message */

/* ------------------------------------------------------------------ */
/* Building the input                                                   */

struct query {
	struct ts_param p[MAX_PARAMS];
	size_t n;
	char buf[4096];
	size_t used;
	const char *hdr[MAX_HDRS];
	size_t hdrlen[MAX_HDRS];
	size_t nhdr;
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Copy s[0..len) into q->buf, %XX decoded, NUL-terminated as
 * libmicrohttpd leaves values; returns where it starts. */
static char *put_decoded(struct query *q, const char *s, size_t len,
			 size_t *outlen)
{
	char *start = q->buf + q->used;
	size_t o = 0;
	assert_true(q->used + len + 1 <= sizeof(q->buf));
	for (size_t i = 0; i < len; i++) {
		int hi, lo;
		if (s[i] == '%' && i + 2 < len &&
		    (hi = hexval(s[i + 1])) >= 0 &&
		    (lo = hexval(s[i + 2])) >= 0) {
			start[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			start[o++] = s[i];
		}
	}
	start[o] = '\0';
	q->used += o + 1;
	*outlen = o;
	return start;
}

/* "tail=3&icase&grep=a%00b" -> q->p[]: a piece without '=' is a bare key
 * (value NULL); the value is what follows the first '='. */
static void split_query(struct query *q, const char *qs)
{
	memset(q, 0, sizeof(*q));
	if (!qs || !*qs)
		return;
	for (const char *s = qs;;) {
		const char *amp = strchr(s, '&');
		size_t len = amp ? (size_t)(amp - s) : strlen(s);
		const char *eq = memchr(s, '=', len);
		size_t klen = eq ? (size_t)(eq - s) : len, vlen, dummy;
		assert_true(q->n < MAX_PARAMS);
		struct ts_param *p = &q->p[q->n++];
		p->key = put_decoded(q, s, klen, &dummy);
		if (eq) {
			p->value =
				put_decoded(q, eq + 1, len - klen - 1, &vlen);
			p->value_len = vlen;
		}
		if (!amp)
			break;
		s = amp + 1;
	}
}

static void add_headers(struct query *q, const char *const *hdr)
{
	for (size_t i = 0; i < MAX_HDRS && hdr[i]; i++) {
		q->hdr[i] =
			put_decoded(q, hdr[i], strlen(hdr[i]), &q->hdrlen[i]);
		q->nhdr++;
	}
}

static struct ts_req_input input_of(const struct query *q,
				    enum ts_req_kind kind)
{
	struct ts_req_input in = {
		kind, q->p, q->n, q->hdr, q->hdrlen, q->nhdr
	};
	return in;
}

/* The same input with every value and header in a malloc'd buffer of
 * exactly its length, no terminator: ASan reports any read past it. */
struct exact {
	struct ts_param p[MAX_PARAMS];
	char *val[MAX_PARAMS];
	const char *hdr[MAX_HDRS];
	char *hbuf[MAX_HDRS];
};

static char *dup_exact(const char *s, size_t len)
{
	char *d = malloc(len ? len : 1);
	assert_non_null(d);
	memcpy(d, s, len);
	return d;
}

static struct ts_req_input input_exact(const struct query *q,
				       enum ts_req_kind kind, struct exact *x)
{
	memset(x, 0, sizeof(*x));
	for (size_t i = 0; i < q->n; i++) {
		x->p[i] = q->p[i];
		if (q->p[i].value) {
			x->val[i] = dup_exact(q->p[i].value, q->p[i].value_len);
			x->p[i].value = x->val[i];
		}
	}
	for (size_t i = 0; i < q->nhdr; i++)
		x->hdr[i] = x->hbuf[i] = dup_exact(q->hdr[i], q->hdrlen[i]);
	struct ts_req_input in = {
		kind, x->p, q->n, x->hdr, q->hdrlen, q->nhdr
	};
	return in;
}

static void exact_free(struct exact *x)
{
	for (size_t i = 0; i < MAX_PARAMS; i++)
		free(x->val[i]);
	for (size_t i = 0; i < MAX_HDRS; i++)
		free(x->hbuf[i]);
}

/* ------------------------------------------------------------------ */
/* The table                                                            */

struct want {
	enum ts_from from;
	uint64_t ino, off; /* id (EVENTS) or before (LINES) */
	bool has_ino;
	uint64_t tail;
	bool has_tail, icase, json;
	size_t ngrep, nexclude, nlogs;
	bool token; /* ?token=SECRET given */
	uint64_t n;
};

struct req_case {
	const char *name;
	enum ts_req_kind kind;
	const char *query;
	const char *hdr[MAX_HDRS]; /* Last-Event-ID values, %XX decoded */
	const char *err;	   /* the error's leading words; NULL: ok */
	bool check;		   /* ok: compare with `want` */
	struct want want;
};

#define EV TS_REQ_EVENTS
#define MU TS_REQ_MULTI
#define LI TS_REQ_LINES

/* Rows: OK checks the whole struct, OKS only that it is accepted. */
#define OK(name, kind, q, h, ...)             \
	{                                     \
		name, kind, q, h, NULL, true, \
		{                             \
			__VA_ARGS__           \
		}                             \
	}
#define OKS(name, kind, q, h)                  \
	{                                      \
		name, kind, q, h, NULL, false, \
		{                              \
			0                      \
		}                              \
	}
#define ERR(name, kind, q, h, e)            \
	{                                   \
		name, kind, q, h, e, false, \
		{                           \
			0                   \
		}                           \
	}
#define NOH          \
	{            \
		NULL \
	}
#define H1(a)           \
	{               \
		a, NULL \
	}
#define H2(a, b)           \
	{                  \
		a, b, NULL \
	}

#define G4 "grep=a&grep=b&exclude=c&grep=d"
#define G16 G4 "&" G4 "&" G4 "&" G4
#define L4(p) "log=" p "0&log=" p "1&log=" p "2&log=" p "3"
#define L16(p) L4(p "a") "&" L4(p "b") "&" L4(p "c") "&" L4(p "d")
#define L32 L16("x") "&" L16("y")
#define TAILMSG "bad tail: expected a number of lines from 0 to 1000000"

static const struct req_case event_cases[] = {
	OK("nothing", EV, "", NOH, .from = TS_FROM_END),
	OK("unknown ignored", EV, "_=123&foo&bar=%00&log=x/y&n=0&before=z", NOH,
	   .from = TS_FROM_END),
	OK("tail", EV, "tail=5", NOH, .from = TS_FROM_TAIL, .tail = 5,
	   .has_tail = true),
	OK("tail 0", EV, "tail=0", NOH, .from = TS_FROM_TAIL, .tail = 0,
	   .has_tail = true),
	OK("tail max", EV, "tail=1000000", NOH, .from = TS_FROM_TAIL,
	   .tail = 1000000, .has_tail = true),
	ERR("tail max+1", EV, "tail=1000001", NOH, TAILMSG),
	ERR("tail bare", EV, "tail", NOH, "bad tail: empty"),
	ERR("tail empty", EV, "tail=", NOH, "bad tail: empty"),
	ERR("tail twice, bad second", EV, "tail=3&tail=-1", NOH,
	    "bad tail: given more than once"),
	ERR("tail twice, bad first", EV, "tail=-1&tail=3", NOH,
	    "bad tail: given more than once"),
	ERR("tail twice, same", EV, "tail=3&tail=3", NOH,
	    "bad tail: given more than once"),
	ERR("tail bare twice", EV, "tail&tail", NOH,
	    "bad tail: given more than once"),
	ERR("tail NUL", EV, "tail=5%00", NOH, "bad tail: contains a NUL byte"),
	ERR("tail NUL junk", EV, "tail=5%00junk", NOH,
	    "bad tail: contains a NUL byte"),
	ERR("tail negative", EV, "tail=-1", NOH, TAILMSG),
	ERR("tail plus", EV, "tail=+1", NOH, TAILMSG),
	ERR("tail space", EV, "tail=%205", NOH, TAILMSG),
	ERR("tail hex", EV, "tail=0x5", NOH, TAILMSG),
	ERR("tail huge", EV, "tail=99999999999999999999999", NOH, TAILMSG),

	OK("lastEventId", EV, "lastEventId=7:42", NOH, .from = TS_FROM_ID,
	   .ino = 7, .off = 42, .has_ino = true),
	OK("lastEventId bare offset", EV, "lastEventId=42", NOH,
	   .from = TS_FROM_ID, .off = 42),
	OK("id wins over tail", EV, "tail=5&lastEventId=7:42", NOH,
	   .from = TS_FROM_ID, .ino = 7, .off = 42, .has_ino = true, .tail = 5,
	   .has_tail = true),
	ERR("lastEventId bare", EV, "lastEventId", NOH,
	    "bad lastEventId: empty"),
	ERR("lastEventId empty", EV, "lastEventId=", NOH,
	    "bad lastEventId: empty"),
	ERR("lastEventId twice", EV, "lastEventId=1:2&lastEventId=1:2", NOH,
	    "bad lastEventId: given more than once"),
	ERR("lastEventId NUL junk", EV, "lastEventId=1:2%00junk", NOH,
	    "bad lastEventId: contains a NUL byte"),
	ERR("lastEventId bad", EV, "lastEventId=1:x", NOH,
	    "bad lastEventId: expected INODE:OFFSET or OFFSET"),
	ERR("lastEventId bad, tail good", EV, "tail=5&lastEventId=x", NOH,
	    "bad lastEventId: expected"),
	ERR("tail bad, id good", EV, "tail=x&lastEventId=1:2", NOH,
	    "bad tail: expected"),
	ERR("lastEventId offset overflow", EV,
	    "lastEventId=1:9223372036854775808", NOH, "bad lastEventId"),

	OK("header", EV, "", H1("7:42"), .from = TS_FROM_ID, .ino = 7,
	   .off = 42, .has_ino = true),
	OK("header, leading spaces", EV, "", H1("%20%20%097:42"),
	   .from = TS_FROM_ID, .ino = 7, .off = 42, .has_ino = true),
	OK("header, trailing spaces", EV, "", H1("7:42%20%09%20"),
	   .from = TS_FROM_ID, .ino = 7, .off = 42, .has_ino = true),
	OK("header, both ends", EV, "", H1("%097:42%20"), .from = TS_FROM_ID,
	   .ino = 7, .off = 42, .has_ino = true),
	OK("header empty is absent", EV, "tail=3", H1(""), .from = TS_FROM_TAIL,
	   .tail = 3, .has_tail = true),
	OK("header blank is absent", EV, "", H1("%20%09"), .from = TS_FROM_END),
	OK("header wins over lastEventId", EV, "lastEventId=1:1", H1("7:42"),
	   .from = TS_FROM_ID, .ino = 7, .off = 42, .has_ino = true),
	OK("empty header: lastEventId", EV, "lastEventId=1:1", H1(""),
	   .from = TS_FROM_ID, .ino = 1, .off = 1, .has_ino = true),
	ERR("header space inside", EV, "", H1("7:%2042"),
	    "bad Last-Event-ID header: expected INODE:OFFSET or OFFSET"),
	ERR("header NUL", EV, "", H1("7:42%00"),
	    "bad Last-Event-ID header: contains a NUL byte"),
	ERR("header NUL after spaces", EV, "", H1("%20%00"),
	    "bad Last-Event-ID header: contains a NUL byte"),
	ERR("two headers", EV, "", H2("1:2", "1:2"),
	    "bad Last-Event-ID header: given more than once"),
	ERR("two headers, one empty", EV, "", H2("1:2", ""),
	    "bad Last-Event-ID header: given more than once"),
	ERR("header bad, query good", EV, "lastEventId=1:2", H1("1:x"),
	    "bad Last-Event-ID header: expected"),
	ERR("header good, query bad", EV, "lastEventId=1:x", H1("1:2"),
	    "bad lastEventId: expected"),
	ERR("header good, query empty", EV, "lastEventId=", H1("1:2"),
	    "bad lastEventId: empty"),

	OK("icase bare", EV, "icase", NOH, .icase = true),
	OK("icase=1", EV, "icase=1", NOH, .icase = true),
	OK("icase=0", EV, "icase=0", NOH, .icase = false),
	ERR("icase empty", EV, "icase=", NOH, "bad icase: empty"),
	ERR("icase=2", EV, "icase=2", NOH, "bad icase: expected 0 or 1"),
	ERR("icase=yes", EV, "icase=yes", NOH, "bad icase: expected 0 or 1"),
	ERR("icase=10", EV, "icase=10", NOH, "bad icase: expected 0 or 1"),
	ERR("icase twice", EV, "icase=1&icase=1", NOH,
	    "bad icase: given more than once"),
	ERR("icase bare twice", EV, "icase&icase", NOH,
	    "bad icase: given more than once"),
	ERR("icase NUL", EV, "icase=1%00", NOH,
	    "bad icase: contains a NUL byte"),

	OK("format json", EV, "format=json", NOH, .json = true),
	OK("format text", EV, "format=text", NOH, .json = false),
	ERR("format twice", EV, "format=json&format=json", NOH,
	    "bad format: given more than once"),
	ERR("format bad", EV, "format=xml", NOH,
	    "bad format: expected json or text"),
	ERR("format case", EV, "format=JSON", NOH, "bad format: expected"),
	ERR("format prefix", EV, "format=js", NOH, "bad format: expected"),
	ERR("format bare", EV, "format", NOH, "bad format: empty"),
	ERR("format NUL", EV, "format=json%00", NOH,
	    "bad format: contains a NUL byte"),

	OK("token", EV, "token=" SECRET, NOH, .token = true),
	ERR("token twice", EV, "token=" SECRET "&token=" SECRET, NOH,
	    "bad token: given more than once"),
	ERR("token empty", EV, "token=", NOH, "bad token: empty"),
	ERR("token bare", EV, "token", NOH, "bad token: empty"),
	ERR("token NUL", EV, "token=" SECRET "%00" SECRET, NOH,
	    "bad token: contains a NUL byte"),

	OK("grep and exclude", EV, "grep=a&exclude=b&grep=c", NOH, .ngrep = 2,
	   .nexclude = 1),
	OK("grep empty and bare", EV, "grep=&grep&exclude", NOH, .ngrep = 2,
	   .nexclude = 1),
	OK("16 patterns", EV, G16, NOH, .ngrep = 12, .nexclude = 4),
	ERR("17 patterns", EV, G16 "&grep=e", NOH,
	    "too many grep/exclude patterns: at most 16"),
	ERR("17 patterns, last exclude", EV, G16 "&exclude", NOH,
	    "too many grep/exclude patterns: at most 16"),
	ERR("grep NUL", EV, "grep=a%00b", NOH, "bad grep: contains a NUL byte"),
	ERR("exclude NUL", EV, "exclude=%00", NOH,
	    "bad exclude: contains a NUL byte"),
	OKS("grep with metacharacters", EV, "grep=%5B(a%7Cb)*%5D%0A", NOH),

	OK("everything", EV,
	   "_=1&tail=10&grep=x&exclude=y&icase&format=json&token=" SECRET,
	   H1("3:4"), .from = TS_FROM_ID, .ino = 3, .off = 4, .has_ino = true,
	   .tail = 10, .has_tail = true, .icase = true, .json = true,
	   .ngrep = 1, .nexclude = 1, .token = true),
	ERR("keys are case-sensitive: Tail ignored, tail twice", EV,
	    "Tail=x&tail=1&tail=2", NOH, "bad tail: given more than once"),
};

static const struct req_case multi_cases[] = {
	OK("one log", MU, "log=A", NOH, .nlogs = 1),
	OK("two logs and tail", MU, "log=A&log=b.c_d-e&tail=3", NOH, .nlogs = 2,
	   .from = TS_FROM_TAIL, .tail = 3, .has_tail = true),
	OK("32 logs", MU, L32, NOH, .nlogs = 32),
	ERR("33 logs", MU, L32 "&log=z", NOH, "bad log: at most 32 logs"),
	ERR("no log", MU, "", NOH, "bad log: at least one log= is needed"),
	ERR("no log, other params", MU, "tail=3&_=1", NOH,
	    "bad log: at least one log= is needed"),
	ERR("bad name", MU, "log=x%2F", NOH,
	    "bad log: 'x%2F' is not a log name"),
	ERR("bad name with newline", MU, "log=a%0Ab", NOH,
	    "bad log: 'a%0Ab' is not a log name"),
	ERR("dot name", MU, "log=..", NOH, "bad log: '..' is not a log name"),
	ERR("name too long", MU,
	    "log=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    NOH, "bad log: 'aaaa"),
	OKS("name of 64", MU,
	    "log=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    NOH),
	ERR("empty log", MU, "log=A&log=", NOH, "bad log: empty"),
	ERR("bare log", MU, "log", NOH, "bad log: empty"),
	ERR("log NUL", MU, "log=A%00", NOH, "bad log: contains a NUL byte"),
	ERR("repeated log", MU, "log=A&log=B&log=A", NOH,
	    "bad log: 'A' given more than once"),
	OKS("names differ in case", MU, "log=A&log=a", NOH),
	OK("cursor in header", MU, "log=A&log=B", H1("A=1:2,B=3:4"), .nlogs = 2,
	   .from = TS_FROM_ID),
	OK("cursor in query", MU, "log=A&lastEventId=A=1:2", NOH, .nlogs = 1,
	   .from = TS_FROM_ID),
	OK("cursor header trimmed", MU, "log=A", H1("%20A=1:2,B=0:0%09"),
	   .nlogs = 1, .from = TS_FROM_ID),
	OK("cursor with no requested log", MU, "log=A", H1("Z=1:2"), .nlogs = 1,
	   .from = TS_FROM_ID),
	ERR("cursor bad in header", MU, "log=A", H1("A=1:2,,B=3:4"),
	    "bad Last-Event-ID header: expected NAME=INODE:OFFSET,..."),
	ERR("cursor bad in query", MU, "log=A&lastEventId=A=1", NOH,
	    "bad lastEventId: expected NAME=INODE:OFFSET,..."),
	ERR("cursor header bad, query good", MU, "log=A&lastEventId=A=1:2",
	    H1("A=x"),
	    "bad Last-Event-ID header: expected NAME=INODE:OFFSET,..."),
	ERR("cursor header good, query bad", MU, "log=A&lastEventId=A=x",
	    H1("A=1:2"), "bad lastEventId: expected NAME=INODE:OFFSET,..."),
	ERR("a plain id is no cursor", MU, "log=A", H1("1:2"),
	    "bad Last-Event-ID header: expected NAME=INODE:OFFSET,..."),
	ERR("cursor space inside", MU, "log=A", H1("A=1:2,%20B=1:2"),
	    "bad Last-Event-ID header: expected NAME=INODE:OFFSET,..."),
	ERR("cursor NUL", MU, "log=A", H1("A=1:2%00"),
	    "bad Last-Event-ID header: contains a NUL byte"),
	ERR("lastEventId twice", MU,
	    "log=A&lastEventId=A=1:2&lastEventId=A=1:2", NOH,
	    "bad lastEventId: given more than once"),
	OK("n and before are unknown here", MU, "log=A&n=0&before=x", NOH,
	   .nlogs = 1),
};

static const struct req_case lines_cases[] = {
	OK("before", LI, "before=7:42", NOH, .ino = 7, .off = 42,
	   .has_ino = true, .n = 100),
	OK("before INODE:0", LI, "before=7:0", NOH, .ino = 7, .off = 0,
	   .has_ino = true, .n = 100),
	ERR("before missing", LI, "n=5", NOH,
	    "bad before: missing, expected INODE:OFFSET"),
	ERR("before bare offset", LI, "before=42", NOH,
	    "bad before: expected INODE:OFFSET"),
	ERR("before bad", LI, "before=7:x", NOH,
	    "bad before: expected INODE:OFFSET"),
	ERR("before empty", LI, "before=", NOH, "bad before: empty"),
	ERR("before bare", LI, "before", NOH, "bad before: empty"),
	ERR("before twice", LI, "before=1:2&before=1:2", NOH,
	    "bad before: given more than once"),
	ERR("before NUL", LI, "before=1:2%00", NOH,
	    "bad before: contains a NUL byte"),
	ERR("n=0", LI, "before=1:2&n=0", NOH,
	    "bad n: expected a number of lines from 1 to 10000"),
	OK("n=1", LI, "before=1:2&n=1", NOH, .ino = 1, .off = 2,
	   .has_ino = true, .n = 1),
	OK("n=10000", LI, "before=1:2&n=10000", NOH, .ino = 1, .off = 2,
	   .has_ino = true, .n = 10000),
	ERR("n=10001", LI, "before=1:2&n=10001", NOH,
	    "bad n: expected a number of lines from 1 to 10000"),
	ERR("n empty", LI, "before=1:2&n=", NOH, "bad n: empty"),
	ERR("n twice", LI, "before=1:2&n=1&n=1", NOH,
	    "bad n: given more than once"),
	ERR("n negative", LI, "before=1:2&n=-1", NOH, "bad n: expected"),
	OK("filters, and stream parameters unknown here", LI,
	   "before=1:2&grep=a&exclude=b&icase&token=" SECRET
	   "&tail=x&lastEventId=x&format=x&log=/",
	   H2("x", "y"), .ino = 1, .off = 2, .has_ino = true, .n = 100,
	   .ngrep = 1, .nexclude = 1, .icase = true, .token = true),
	ERR("icase checked here too", LI, "before=1:2&icase=2", NOH,
	    "bad icase: expected 0 or 1"),
};

/* ------------------------------------------------------------------ */
/* Running a row                                                        */

static void check_err(const struct req_case *c, int rc, const char *err)
{
	if (rc != -EINVAL)
		fail_msg("%s: rc %d, want -EINVAL (%s)", c->name, rc, c->err);
	if (strncmp(err, c->err, strlen(c->err)) != 0)
		fail_msg("%s: error \"%s\", want \"%s...\"", c->name, err,
			 c->err);
	if (strchr(err, '\n') || strchr(err, '\r') || strlen(err) == 0)
		fail_msg("%s: error is not one line: \"%s\"", c->name, err);
	if (strstr(err, SECRET))
		fail_msg("%s: the token is in the error \"%s\"", c->name, err);
}

static void check_want(const struct req_case *c, const struct ts_request *r)
{
	const struct want *w = &c->want;
	const struct ts_pos *p = c->kind == LI ? &r->before : &r->id;
	if (r->from != w->from || p->ino != w->ino || p->off != w->off ||
	    p->has_ino != w->has_ino)
		fail_msg("%s: from %d %" PRIu64 ":%" PRIu64 " has_ino %d",
			 c->name, r->from, p->ino, p->off, p->has_ino);
	if (r->has_tail != w->has_tail || (w->has_tail && r->tail != w->tail))
		fail_msg("%s: tail %d %" PRIu64, c->name, r->has_tail, r->tail);
	if (r->icase != w->icase || r->json != w->json)
		fail_msg("%s: icase %d json %d", c->name, r->icase, r->json);
	if (r->ngrep != w->ngrep || r->nexclude != w->nexclude)
		fail_msg("%s: %zu grep, %zu exclude", c->name, r->ngrep,
			 r->nexclude);
	if (r->nlogs != w->nlogs)
		fail_msg("%s: %zu logs", c->name, r->nlogs);
	if (w->token ? !r->token || strcmp(r->token, SECRET) != 0 : !!r->token)
		fail_msg("%s: token %s", c->name, r->token ? "set" : "NULL");
	if (c->kind == LI && r->n != w->n)
		fail_msg("%s: n %" PRIu64, c->name, r->n);
}

static void run_case(const struct req_case *c)
{
	struct query q;
	struct ts_request r, r2;
	struct exact x;
	char err[TS_ERR_MAX], err2[TS_ERR_MAX];

	split_query(&q, c->query);
	add_headers(&q, c->hdr);
	struct ts_req_input in = input_of(&q, c->kind);
	int rc = ts_request_parse(&in, &r, err, sizeof(err));
	if (c->err) {
		check_err(c, rc, err);
	} else {
		if (rc != 0)
			fail_msg("%s: refused: %s", c->name, err);
		if (c->check)
			check_want(c, &r);
	}
	/* the same without terminators: the same answer */
	in = input_exact(&q, c->kind, &x);
	int rc2 = ts_request_parse(&in, &r2, err2, sizeof(err2));
	exact_free(&x);
	if (rc2 != rc || (rc && strcmp(err, err2) != 0))
		fail_msg("%s: unterminated values: %d \"%s\"", c->name, rc2,
			 err2);
	if (rc == 0 && (r2.from != r.from || r2.ngrep != r.ngrep ||
			r2.nlogs != r.nlogs || r2.tail != r.tail))
		fail_msg("%s: unterminated values: another result", c->name);
}

#define RUN(t)                                                \
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) \
	run_case(&t[i])

static void test_events_table(void **state)
{
	(void)state;
	RUN(event_cases);
}

static void test_multi_table(void **state)
{
	(void)state;
	RUN(multi_cases);
}

static void test_lines_table(void **state)
{
	(void)state;
	RUN(lines_cases);
}

/* ------------------------------------------------------------------ */
/* What the struct points at                                            */

static struct ts_request parse_ok(enum ts_req_kind kind, const char *qs,
				  const char *hdr, struct query *q)
{
	const char *h[MAX_HDRS] = { hdr, NULL };
	struct ts_request r;
	char err[TS_ERR_MAX];
	split_query(q, qs);
	add_headers(q, h);
	struct ts_req_input in = input_of(q, kind);
	if (ts_request_parse(&in, &r, err, sizeof(err)) != 0)
		fail_msg("\"%s\" refused: %s", qs, err);
	return r;
}

static void test_pointers_into_input(void **state)
{
	(void)state;
	struct query q;
	struct ts_request r = parse_ok(
		EV,
		"grep=one&exclude=two&grep&grep=th%20ree&exclude=&token=" SECRET,
		NULL, &q);
	assert_int_equal(r.ngrep, 3);
	assert_int_equal(r.nexclude, 2);
	assert_ptr_equal(r.grep[0], q.p[0].value);
	assert_string_equal(r.grep[0], "one");
	assert_string_equal(r.grep[1], "");
	assert_string_equal(r.grep[2], "th ree");
	assert_ptr_equal(r.exclude[0], q.p[1].value);
	assert_string_equal(r.exclude[1], "");
	assert_ptr_equal(r.token, q.p[5].value);

	r = parse_ok(MU, "log=web&_=1&log=db&log=a.b", NULL, &q);
	assert_int_equal(r.nlogs, 3);
	assert_ptr_equal(r.log[0], q.p[0].value);
	assert_int_equal(r.log_len[0], 3);
	assert_ptr_equal(r.log[1], q.p[2].value);
	assert_int_equal(r.log_len[1], 2);
	assert_memory_equal(r.log[2], "a.b", 3);
	assert_int_equal(r.log_len[2], 3);
	for (size_t i = 0; i < 3; i++)
		assert_false(r.in_cursor[i]);
	assert_int_equal(r.from, TS_FROM_END);
}

/* Which cursor lands where, from a whole request. */
static void test_multi_cursor_positions(void **state)
{
	(void)state;
	struct query q;
	struct ts_request r = parse_ok(MU, "log=A&log=B&log=C&tail=2",
				       "C=5:6,Z=9:9,A=1:2", &q);
	assert_int_equal(r.from, TS_FROM_ID);
	assert_true(r.has_tail);
	assert_int_equal(r.tail, 2);
	assert_true(r.in_cursor[0]);
	assert_int_equal(r.cursor[0].ino, 1);
	assert_int_equal(r.cursor[0].off, 2);
	assert_true(r.cursor[0].has_ino);
	assert_false(r.in_cursor[1]);
	assert_true(r.in_cursor[2]);
	assert_int_equal(r.cursor[2].ino, 5);
	assert_int_equal(r.cursor[2].off, 6);

	/* the header wins; the query's cursor, checked, is not used */
	r = parse_ok(MU, "log=A&log=B&lastEventId=A=7:7,B=8:8", "B=3:4", &q);
	assert_false(r.in_cursor[0]);
	assert_true(r.in_cursor[1]);
	assert_int_equal(r.cursor[1].ino, 3);
	assert_int_equal(r.cursor[1].off, 4);

	/* an empty header: the query's */
	r = parse_ok(MU, "log=A&log=B&lastEventId=A=7:7,B=8:8", " ", &q);
	assert_true(r.in_cursor[0]);
	assert_int_equal(r.cursor[0].ino, 7);
	assert_true(r.in_cursor[1]);
	assert_int_equal(r.cursor[1].off, 8);
}

/* ------------------------------------------------------------------ */
/* ts_request_parse_cursor                                              */

struct cursor_case {
	const char *name;
	const char *cursor; /* %XX decoded */
	const char *err;    /* leading words after "bad cursor: "; NULL ok */
	/* ok: for the logs A, B, C: "INO:OFF" or "-" (not in the cursor) */
	const char *want[3];
};

#define C4(p) p "0=1:1," p "1=1:1," p "2=1:1," p "3=1:1"
#define C16(p) C4(p "a") "," C4(p "b") "," C4(p "c") "," C4(p "d")
#define C64 C16("w") "," C16("x") "," C16("y") "," C16("z")
#define CSYN "expected NAME=INODE:OFFSET,..."
#define NO           \
	{            \
		NULL \
	}

static const struct cursor_case cursor_cases[] = {
	{ "all three", "A=1:2,B=3:4,C=5:6", NULL, { "1:2", "3:4", "5:6" } },
	{ "out of order", "C=5:6,A=1:2,B=3:4", NULL, { "1:2", "3:4", "5:6" } },
	{ "one missing", "A=1:2,C=5:6", NULL, { "1:2", "-", "5:6" } },
	{ "unrequested ignored",
	  "X=9:9,B=3:4,Y.z=8:8",
	  NULL,
	  { "-", "3:4", "-" } },
	{ "only unrequested", "X=9:9", NULL, { "-", "-", "-" } },
	{ "0:0", "A=0:0", NULL, { "0:0", "-", "-" } },
	{ "largest",
	  "A=18446744073709551615:9223372036854775807",
	  NULL,
	  { "18446744073709551615:9223372036854775807", "-", "-" } },
	{ "leading zeros", "A=007:010", NULL, { "7:10", "-", "-" } },
	{ "names are case-sensitive", "a=1:2", NULL, { "-", "-", "-" } },
	{ "64 entries", C64, NULL, { "-", "-", "-" } },
	{ "64 entries, A last",
	  C16("w") "," C16("x") "," C16("y") "," C4("za") "," C4("zb") "," C4(
		  "zc") ",zd0=1:1,zd1=1:1,zd2=1:1,A=4:4",
	  NULL,
	  { "4:4", "-", "-" } },

	{ "empty", "", CSYN " (entry 1 is empty)", NO },
	{ "empty entry", "A=1:2,,B=3:4", CSYN " (entry 2 is empty)", NO },
	{ "trailing comma", "A=1:2,", CSYN " (entry 2 is empty)", NO },
	{ "leading comma", ",A=1:2", CSYN " (entry 1 is empty)", NO },
	{ "only a comma", ",", CSYN " (entry 1 is empty)", NO },
	{ "missing =", "A=1:2,B3:4", CSYN " (entry 2 has no '=')", NO },
	{ "bad name", "a/b=1:2", CSYN " (entry 1: 'a%2Fb' is not a log name)",
	  NO },
	{ "empty name", "=1:2", CSYN " (entry 1: '' is not a log name)", NO },
	{ "dot name", "..=1:2", CSYN " (entry 1: '..' is not a log name)", NO },
	{ "name with NUL", "A%00=1:2", CSYN " (entry 1: 'A%00' is not", NO },
	{ "name too long",
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=1:2",
	  CSYN " (entry 1: 'aaaa", NO },
	{ "repeated name", "A=1:2,B=3:4,A=1:2",
	  CSYN " (entry 3: 'A' is in it twice)", NO },
	{ "repeated unrequested name", "Z=1:2,Z=1:2",
	  CSYN " (entry 2: 'Z' is in it twice)", NO },
	{ "no position", "A=", CSYN " (entry 1: 'A' is not at INODE:OFFSET)",
	  NO },
	{ "bare offset", "A=5", CSYN " (entry 1: 'A' is not at", NO },
	{ "non-digits", "A=1:x", CSYN " (entry 1: 'A' is not at", NO },
	{ "non-digit inode", "A=x:1", CSYN " (entry 1: 'A' is not at", NO },
	{ "sign", "A=+1:2", CSYN " (entry 1: 'A' is not at", NO },
	{ "unrequested, bad syntax", "A=1:2,Z=1:x",
	  CSYN " (entry 2: 'Z' is not at", NO },
	{ "two colons", "A=1:2:3", CSYN " (entry 1: 'A' is not at", NO },
	{ "two =", "A=1:2=3", CSYN " (entry 1: 'A' is not at", NO },
	{ "space before", " A=1:2", CSYN " (entry 1: '%20A' is not", NO },
	{ "space after", "A=1:2 ", CSYN " (entry 1: 'A' is not at", NO },
	{ "space after comma", "A=1:2, B=3:4", CSYN " (entry 2: '%20B' is",
	  NO },
	{ "inode overflow", "A=18446744073709551616:0",
	  CSYN " (entry 1: 'A' is not at", NO },
	{ "offset overflow", "A=1:9223372036854775808",
	  CSYN " (entry 1: 'A' is not at", NO },
	{ "65 entries", C64 ",v=1:1", CSYN " (more than 64 entries)", NO },
	{ "65 entries, the last bad", C64 ",", CSYN " (more than 64", NO },
	{ "semicolons", "A=1:2;B=3:4", CSYN " (entry 1: 'A' is not at", NO },
};

static void check_cursor(const struct cursor_case *c,
			 const struct ts_request *r)
{
	for (size_t i = 0; i < 3; i++) {
		const char *w = c->want[i];
		if (strcmp(w, "-") == 0) {
			if (r->in_cursor[i])
				fail_msg("%s: log %zu is in the cursor",
					 c->name, i);
			continue;
		}
		char got[64];
		snprintf(got, sizeof(got), "%" PRIu64 ":%" PRIu64,
			 r->cursor[i].ino, r->cursor[i].off);
		if (!r->in_cursor[i] || !r->cursor[i].has_ino ||
		    strcmp(got, w) != 0)
			fail_msg("%s: log %zu: %d %s, want %s", c->name, i,
				 r->in_cursor[i], got, w);
	}
	for (size_t i = 3; i < TS_REQ_MAX_LOGS; i++)
		assert_false(r->in_cursor[i]);
}

static void test_cursor_table(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(cursor_cases) / sizeof(cursor_cases[0]);
	     k++) {
		const struct cursor_case *c = &cursor_cases[k];
		struct query q;
		struct ts_request r;
		char err[TS_ERR_MAX], want[TS_ERR_MAX];
		size_t len;
		memset(&q, 0, sizeof(q));
		memset(&r, 0, sizeof(r));
		r.log[0] = "A";
		r.log[1] = "B";
		r.log[2] = "C";
		r.log_len[0] = r.log_len[1] = r.log_len[2] = 1;
		r.nlogs = 3;
		const char *s =
			put_decoded(&q, c->cursor, strlen(c->cursor), &len);
		/* exactly its length: no reading past it */
		char *x = malloc(len ? len : 1);
		assert_non_null(x);
		memcpy(x, s, len);
		int rc = ts_request_parse_cursor(x, len, &r, err, sizeof(err));
		free(x);
		if (!c->err) {
			if (rc != 0)
				fail_msg("%s: refused: %s", c->name, err);
			check_cursor(c, &r);
			continue;
		}
		snprintf(want, sizeof(want), "bad cursor: %s", c->err);
		if (rc != -EINVAL || strncmp(err, want, strlen(want)) != 0)
			fail_msg("%s: %d \"%s\", want \"%s...\"", c->name, rc,
				 err, want);
		for (size_t i = 0; i < TS_REQ_MAX_LOGS; i++)
			assert_false(r.in_cursor[i]);
	}
}

/* A failed parse leaves no half-filled cursor behind. */
static void test_cursor_failure_clears(void **state)
{
	(void)state;
	struct ts_request r;
	char err[TS_ERR_MAX];
	memset(&r, 0, sizeof(r));
	r.log[0] = "A";
	r.log_len[0] = 1;
	r.nlogs = 1;
	const char *ok = "A=1:2";
	assert_int_equal(ts_request_parse_cursor(ok, strlen(ok), &r, err,
						 sizeof(err)),
			 0);
	assert_true(r.in_cursor[0]);
	const char *bad = "A=1:2,B";
	assert_int_equal(ts_request_parse_cursor(bad, strlen(bad), &r, err,
						 sizeof(err)),
			 -EINVAL);
	assert_false(r.in_cursor[0]);
	assert_int_equal(ts_request_parse_cursor(NULL, 0, &r, err, sizeof(err)),
			 -EINVAL);
	/* and no error buffer at all is fine */
	assert_int_equal(ts_request_parse_cursor(bad, strlen(bad), &r, NULL, 0),
			 -EINVAL);
	/* a tiny buffer: cut, still terminated */
	char tiny[8];
	assert_int_equal(ts_request_parse_cursor(bad, strlen(bad), &r, tiny,
						 sizeof(tiny)),
			 -EINVAL);
	assert_string_equal(tiny, "bad cur");
}

/* ------------------------------------------------------------------ */
/* Anything at all                                                      */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rnd(void)
{
	/* xorshift64*: reproducible, so a failure can be replayed */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717u;
}

static const char alphabet[] = "0123456789:=,AB.z \t%\0\n-/";

/* A value of up to 40 bytes in a buffer of exactly its length: mostly
 * one of the good values, sometimes with a byte changed, else noise. */
static char *random_value(size_t *lenp)
{
	static const char *const good[] = {
		"1:2",	       "7:0",	      "0:0", "5", "1",	    "0",
		"json",	       "text",	      "A",   "B", "C",	    "A=1:2",
		"A=1:2,B=3:4", "Z=0:0,A=9:9", "x",   "",  " 3:4\t",
	};
	char tmp[40];
	size_t len;
	if (rnd() % 4) {
		const char *g = good[rnd() % (sizeof(good) / sizeof(*good))];
		len = strlen(g);
		memcpy(tmp, g, len);
		if (len && rnd() % 4 == 0)
			tmp[rnd() % len] =
				alphabet[rnd() % (sizeof(alphabet) - 1)];
	} else {
		len = rnd() % sizeof(tmp);
		for (size_t j = 0; j < len; j++)
			tmp[j] = alphabet[rnd() % (sizeof(alphabet) - 1)];
	}
	char *v = dup_exact(tmp, len);
	*lenp = len;
	return v;
}

/* Random keys from the known set with random values; whatever the
 * answer, it must come without a crash or a read out of bounds, and be
 * -EINVAL with one line, or 0. */
static void test_random_inputs(void **state)
{
	(void)state;
	static const char *const keys[] = {
		"tail", "lastEventId", "icase",	  "format", "token", "before",
		"n",	"grep",	       "exclude", "log",    "log",   "_",
	};
	size_t nok[3] = { 0, 0, 0 };
	for (int iter = 0; iter < 30000; iter++) {
		struct ts_param p[12];
		char *vals[12 + 2] = { NULL };
		enum ts_req_kind kind = (enum ts_req_kind)(rnd() % 3);
		size_t np = rnd() % 7, len;
		for (size_t i = 0; i < np; i++) {
			p[i].key = keys[rnd() % (sizeof(keys) / sizeof(*keys))];
			/* the one parameter each of these needs, often */
			if (i == 0 && kind != TS_REQ_EVENTS && rnd() % 2)
				p[i].key = kind == TS_REQ_LINES ? "before"
								: "log";
			vals[i] = random_value(&len);
			p[i].value = rnd() % 8 ? vals[i] : NULL;
			p[i].value_len = p[i].value ? len : 0;
		}
		const char *hdr[2] = { NULL, NULL };
		size_t hl[2] = { 0, 0 }, nh = rnd() % 3 ? 0 : 1 + rnd() % 2;
		for (size_t i = 0; i < nh; i++) {
			vals[12 + i] = random_value(&hl[i]);
			hdr[i] = vals[12 + i];
		}
		struct ts_req_input in = { kind, p, np, hdr, hl, nh };
		struct ts_request r;
		char err[TS_ERR_MAX];
		int rc = ts_request_parse(&in, &r, err, sizeof(err));
		if (rc != 0 && (rc != -EINVAL || strchr(err, '\n') || !*err))
			fail_msg("iteration %d: %d \"%s\"", iter, rc, err);
		if (rc == 0)
			nok[in.kind]++;
		for (size_t i = 0; i < 14; i++)
			free(vals[i]);
	}
	/* the random inputs reach past the first checks of every kind */
	for (size_t k = 0; k < 3; k++)
		if (nok[k] < 100)
			fail_msg("kind %zu accepted only %zu", k, nok[k]);
	print_message("accepted: %zu events, %zu multi, %zu lines\n", nok[0],
		      nok[1], nok[2]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_events_table),
		cmocka_unit_test(test_multi_table),
		cmocka_unit_test(test_lines_table),
		cmocka_unit_test(test_pointers_into_input),
		cmocka_unit_test(test_multi_cursor_positions),
		cmocka_unit_test(test_cursor_table),
		cmocka_unit_test(test_cursor_failure_clears),
		cmocka_unit_test(test_random_inputs),
	};
	return cmocka_run_group_tests_name("request", tests, NULL, NULL);
}
