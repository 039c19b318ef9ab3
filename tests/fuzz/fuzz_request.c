/* fuzz_request.c: a request's parameters (src/request.c).
 *
 * The input is "QUERY\nHEADER\nHEADER...": QUERY is split on '&' into
 * key=value pairs (a piece without '=' is a bare ?key, value NULL), each
 * part %XX-decoded as libmicrohttpd does; a key ends at its first NUL (it
 * is a C string there), a value keeps its NULs and is an exact-size heap
 * copy without a terminator, so AddressSanitizer catches a read past its
 * length.  Each line after the first is one Last-Event-ID header value,
 * raw.  The same input is parsed as each of the three kinds.
 *
 * Properties of ts_request_parse: it accepts exactly what a plain
 * reference of request.h's rules accepts (any error will do for the rest);
 * an error is one printable line starting "bad " or "too many ", cut
 * cleanly in a short buffer, and never shows the token (other bytes in it
 * give the same message); a success keeps the bounds (patterns, logs,
 * numbers), points only into the input, and starts where the ids and tail=
 * say.
 *
 * Properties of ts_request_parse_cursor, for each header value against the
 * log= values: it agrees with a plain reference of the cursor syntax
 * (entries NAME=INODE:OFFSET, comma-separated, names valid and unique, at
 * most TS_REQ_CURSOR_MAX), sets in_cursor[] and cursor[] as the reference
 * does (all false on error), and a cursor written back from what it found
 * parses to the same. */
#include <errno.h>

#include "fuzz.h"
#include "request.h"

#define MAX_PARAMS 96
#define MAX_HEADERS 4

struct decoded {
	struct ts_param q[MAX_PARAMS];
	size_t nq;
	char *keys[MAX_PARAMS]; /* what q[].key points to (to free) */
	char *vals[MAX_PARAMS];
	const char *hid[MAX_HEADERS];
	size_t hid_len[MAX_HEADERS];
	size_t nhid;
};

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* %XX-decode p[0..n) into out (n bytes of room); returns the length. */
static size_t unescape(const uint8_t *p, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '%' && i + 2 < n && hexval(p[i + 1]) >= 0 &&
		    hexval(p[i + 2]) >= 0) {
			out[o++] = (char)(hexval(p[i + 1]) * 16 +
					  hexval(p[i + 2]));
			i += 2;
		} else {
			out[o++] = (char)p[i];
		}
	}
	return o;
}

static void decode(const uint8_t *data, size_t size, struct decoded *d)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t qlen = nl ? (size_t)(nl - data) : size;
	char *tmp = fuzz_alloc(qlen);

	memset(d, 0, sizeof(*d));
	for (size_t at = 0; qlen > 0 && at <= qlen && d->nq < MAX_PARAMS;) {
		const uint8_t *piece = data + at;
		const uint8_t *amp = memchr(piece, '&', qlen - at);
		size_t plen = amp ? (size_t)(amp - piece) : qlen - at;
		const uint8_t *eq = memchr(piece, '=', plen);
		size_t klen = eq ? (size_t)(eq - piece) : plen;
		size_t n = unescape(piece, klen, tmp);
		struct ts_param *q = &d->q[d->nq];
		d->keys[d->nq] = fuzz_dupz(tmp, n); /* strlen ends it */
		q->key = d->keys[d->nq];
		if (eq) {
			n = unescape(eq + 1, plen - klen - 1, tmp);
			d->vals[d->nq] = fuzz_dup(tmp, n);
			q->value = d->vals[d->nq];
			q->value_len = n;
		}
		d->nq++;
		at += plen + 1;
	}
	free(tmp);

	if (!nl)
		return;
	const uint8_t *p = nl + 1, *end = data + size;
	while (d->nhid < MAX_HEADERS) {
		const uint8_t *e = memchr(p, '\n', (size_t)(end - p));
		size_t n = e ? (size_t)(e - p) : (size_t)(end - p);
		d->hid[d->nhid] = fuzz_dup(p, n);
		d->hid_len[d->nhid++] = n;
		if (!e)
			break;
		p = e + 1;
	}
}

static void free_decoded(struct decoded *d)
{
	for (size_t i = 0; i < d->nq; i++) {
		free(d->keys[i]);
		free(d->vals[i]);
	}
	for (size_t i = 0; i < d->nhid; i++)
		free((void *)d->hid[i]);
}

static bool valid_name(const char *s, size_t n)
{
	if (n < 1 || n > TS_NAME_MAX || (n == 1 && s[0] == '.') ||
	    (n == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

/* ---- a plain reference of ids and cursors ---- */

static bool ref_uint(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	while (n > 1 && s[0] == '0')
		s++, n--;
	if (n > 20)
		return false;
	unsigned __int128 v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (unsigned)(s[i] - '0');
	if (v > max)
		return false;
	*out = (uint64_t)v;
	return true;
}

static bool ref_id(const char *s, size_t n, struct ts_pos *p)
{
	const char *colon = memchr(s, ':', n);
	p->ino = 0;
	p->has_ino = colon != NULL;
	if (!colon)
		return ref_uint(s, n, INT64_MAX, &p->off);
	size_t il = (size_t)(colon - s);
	return ref_uint(s, il, UINT64_MAX, &p->ino) &&
	       ref_uint(colon + 1, n - il - 1, INT64_MAX, &p->off);
}

/* The cursor s[0..n) for logs log[0..nlogs): true when valid, then in[]
 * and pos[] as the parser must set them. */
static bool ref_cursor(const char *s, size_t n, const char *const *log,
		       const size_t *log_len, size_t nlogs, bool *in,
		       struct ts_pos *pos)
{
	const char *names[TS_REQ_CURSOR_MAX];
	size_t name_len[TS_REQ_CURSOR_MAX], nn = 0;
	memset(in, 0, TS_REQ_MAX_LOGS * sizeof(*in));
	if (nlogs > TS_REQ_MAX_LOGS)
		return false;
	for (size_t at = 0; at <= n;) {
		const char *e = s + at;
		const char *comma = memchr(e, ',', n - at);
		size_t elen = comma ? (size_t)(comma - e) : n - at;
		const char *eq = memchr(e, '=', elen);
		if (nn == TS_REQ_CURSOR_MAX || !eq)
			return false;
		size_t nl = (size_t)(eq - e);
		struct ts_pos p;
		if (!valid_name(e, nl))
			return false;
		for (size_t i = 0; i < nn; i++)
			if (name_len[i] == nl && memcmp(names[i], e, nl) == 0)
				return false;
		names[nn] = e;
		name_len[nn++] = nl;
		if (!ref_id(eq + 1, elen - nl - 1, &p) || !p.has_ino)
			return false;
		for (size_t i = 0; i < nlogs; i++) {
			if (log_len[i] == nl && memcmp(log[i], e, nl) == 0) {
				in[i] = true;
				pos[i] = p;
			}
		}
		at += elen + 1;
	}
	return true;
}

/* Whether a request must be accepted, from request.h's rules alone (not
 * which error comes first: any one will do). */
enum { S_TAIL, S_ID, S_ICASE, S_FORMAT, S_TOKEN, S_BEFORE, S_N, NSINGLE };
#define EV (1u << TS_REQ_EVENTS)
#define MU (1u << TS_REQ_MULTI)
#define LI (1u << TS_REQ_LINES)

static bool ref_accepts(const struct decoded *d, enum ts_req_kind kind)
{
	/* the single-valued parameters, and the kinds they belong to */
	static const struct {
		const char *key;
		unsigned kinds;
	} singles[NSINGLE] = {
		[S_TAIL] = { "tail", EV | MU },
		[S_ID] = { "lastEventId", EV | MU },
		[S_ICASE] = { "icase", EV | MU | LI },
		[S_FORMAT] = { "format", EV | MU },
		[S_TOKEN] = { "token", EV | MU | LI },
		[S_BEFORE] = { "before", LI },
		[S_N] = { "n", LI },
	};
	const struct ts_param *one[NSINGLE] = { NULL };
	const char *logs[TS_REQ_MAX_LOGS];
	size_t log_len[TS_REQ_MAX_LOGS], nlogs = 0, npat = 0;
	unsigned me = 1u << kind;

	for (size_t i = 0; i < d->nq; i++) {
		const struct ts_param *q = &d->q[i];
		for (size_t k = 0; k < NSINGLE; k++) {
			if (!(singles[k].kinds & me) ||
			    strcmp(q->key, singles[k].key))
				continue;
			if (one[k])
				return false; /* given twice */
			one[k] = q;
		}
		if (!strcmp(q->key, "grep") || !strcmp(q->key, "exclude")) {
			if (++npat > TS_FILTER_MAX_PATTERNS ||
			    (q->value && memchr(q->value, 0, q->value_len)))
				return false;
		}
		if (kind == TS_REQ_MULTI && !strcmp(q->key, "log")) {
			if (nlogs == TS_REQ_MAX_LOGS || !q->value ||
			    !valid_name(q->value, q->value_len))
				return false;
			for (size_t j = 0; j < nlogs; j++)
				if (log_len[j] == q->value_len &&
				    !memcmp(logs[j], q->value, q->value_len))
					return false;
			logs[nlogs] = q->value;
			log_len[nlogs++] = q->value_len;
		}
	}
	if (kind == TS_REQ_MULTI && nlogs == 0)
		return false;

	/* the values of the single-valued ones: present means non-empty,
	 * without NUL (a bare ?icase is 1) */
	const char *v[NSINGLE];
	size_t vl[NSINGLE];
	for (size_t k = 0; k < NSINGLE; k++) {
		v[k] = NULL;
		vl[k] = 0;
		if (!one[k])
			continue;
		if (!one[k]->value && k == S_ICASE) {
			v[k] = "1";
			vl[k] = 1;
			continue;
		}
		if (!one[k]->value || one[k]->value_len == 0 ||
		    memchr(one[k]->value, 0, one[k]->value_len))
			return false;
		v[k] = one[k]->value;
		vl[k] = one[k]->value_len;
	}
	uint64_t u;
	struct ts_pos pos;
	if (v[S_ICASE] && !(vl[S_ICASE] == 1 &&
			    (v[S_ICASE][0] == '0' || v[S_ICASE][0] == '1')))
		return false;
	if (v[S_FORMAT] &&
	    !(vl[S_FORMAT] == 4 && (!memcmp(v[S_FORMAT], "json", 4) ||
				    !memcmp(v[S_FORMAT], "text", 4))))
		return false;
	if (v[S_TAIL] && !ref_uint(v[S_TAIL], vl[S_TAIL], TS_TAIL_MAX, &u))
		return false;
	if (kind == TS_REQ_LINES)
		return v[S_BEFORE] && ref_id(v[S_BEFORE], vl[S_BEFORE], &pos) &&
		       pos.has_ino &&
		       (!v[S_N] ||
			(ref_uint(v[S_N], vl[S_N], TS_LINES_N_MAX, &u) &&
			 u >= 1));

	/* ids: the header (once, no NUL, trimmed) and lastEventId */
	bool in[TS_REQ_MAX_LOGS];
	struct ts_pos cur[TS_REQ_MAX_LOGS];
	size_t hlen = 0;
	const char *h = NULL;
	if (d->nhid > 1 ||
	    (d->nhid == 1 && memchr(d->hid[0], 0, d->hid_len[0])))
		return false;
	if (d->nhid == 1) {
		h = d->hid[0];
		hlen = d->hid_len[0];
		while (hlen > 0 && (h[0] == ' ' || h[0] == '\t'))
			h++, hlen--;
		while (hlen > 0 && (h[hlen - 1] == ' ' || h[hlen - 1] == '\t'))
			hlen--;
	}
	if (kind == TS_REQ_EVENTS)
		return (!hlen || ref_id(h, hlen, &pos)) &&
		       (!v[S_ID] || ref_id(v[S_ID], vl[S_ID], &pos));
	return (!hlen || ref_cursor(h, hlen, logs, log_len, nlogs, in, cur)) &&
	       (!v[S_ID] ||
		ref_cursor(v[S_ID], vl[S_ID], logs, log_len, nlogs, in, cur));
}

/* ---- checks ---- */

static void check_line(const char *err, size_t errlen)
{
	size_t len = strnlen(err, errlen);
	FUZZ_CHECK(len > 0 && len < errlen, "error empty or not terminated");
	for (size_t i = 0; i < len; i++)
		FUZZ_CHECK((unsigned char)err[i] >= 0x20 &&
				   (unsigned char)err[i] != 0x7f,
			   "control byte 0x%02x in \"%s\"",
			   (unsigned char)err[i], err);
}

static void check_error(const char *err, size_t errlen)
{
	check_line(err, errlen);
	FUZZ_CHECK(strncmp(err, "bad ", 4) == 0 ||
			   strncmp(err, "too many ", 9) == 0,
		   "error \"%s\"", err);
}

/* p is "" (a bare key) or one of the values of `key`, without a NUL. */
static void check_value_ptr(const struct decoded *d, const char *p,
			    const char *key)
{
	for (size_t i = 0; i < d->nq; i++) {
		if (d->q[i].value != p)
			continue;
		FUZZ_CHECK(strcmp(d->q[i].key, key) == 0,
			   "a %s points at a %s value", key, d->q[i].key);
		FUZZ_CHECK(!memchr(p, '\0', d->q[i].value_len),
			   "a %s with a NUL", key);
		return;
	}
	FUZZ_CHECK(p[0] == '\0', "a %s points outside the input", key);
}

/* The Last-Event-ID header as the parser must see it: trimmed of spaces
 * and tabs at both ends, NULL when absent or empty. */
static const char *trimmed_header(const struct decoded *d, size_t *len)
{
	if (d->nhid != 1)
		return NULL;
	const char *s = d->hid[0];
	size_t n = d->hid_len[0];
	while (n > 0 && (s[0] == ' ' || s[0] == '\t'))
		s++, n--;
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	*len = n;
	return n ? s : NULL;
}

static const struct ts_param *find_param(const struct decoded *d,
					 const char *key)
{
	for (size_t i = 0; i < d->nq; i++)
		if (strcmp(d->q[i].key, key) == 0)
			return &d->q[i];
	return NULL;
}

static void check_request(const struct decoded *d, enum ts_req_kind kind,
			  const struct ts_request *r)
{
	FUZZ_CHECK(r->ngrep + r->nexclude <= TS_FILTER_MAX_PATTERNS,
		   "%zu patterns", r->ngrep + r->nexclude);
	for (size_t i = 0; i < r->ngrep; i++)
		check_value_ptr(d, r->grep[i], "grep");
	for (size_t i = 0; i < r->nexclude; i++)
		check_value_ptr(d, r->exclude[i], "exclude");
	if (r->token) {
		const struct ts_param *t = find_param(d, "token");
		FUZZ_CHECK(t && t->value == r->token && t->value_len > 0 &&
				   !memchr(t->value, '\0', t->value_len),
			   "token");
	}
	FUZZ_CHECK(r->tail <= TS_TAIL_MAX, "tail %llu",
		   (unsigned long long)r->tail);

	if (kind == TS_REQ_LINES) {
		FUZZ_CHECK(r->nlogs == 0 && r->from == TS_FROM_END,
			   "lines: logs or a start");
		FUZZ_CHECK(r->before.has_ino, "before without an inode");
		FUZZ_CHECK(r->n >= 1 && r->n <= TS_LINES_N_MAX, "n %llu",
			   (unsigned long long)r->n);
		return;
	}
	if (kind == TS_REQ_MULTI) {
		FUZZ_CHECK(r->nlogs >= 1 && r->nlogs <= TS_REQ_MAX_LOGS,
			   "%zu logs", r->nlogs);
		for (size_t i = 0; i < r->nlogs; i++) {
			check_value_ptr(d, r->log[i], "log");
			FUZZ_CHECK(valid_name(r->log[i], r->log_len[i]),
				   "log %zu not a name", i);
			for (size_t j = 0; j < i; j++)
				FUZZ_CHECK(r->log_len[i] != r->log_len[j] ||
						   memcmp(r->log[i], r->log[j],
							  r->log_len[i]),
					   "log %zu twice", i);
			FUZZ_CHECK(!r->in_cursor[i] || r->cursor[i].has_ino,
				   "cursor entry without an inode");
		}
	} else {
		FUZZ_CHECK(r->nlogs == 0, "events: logs");
	}

	size_t hlen = 0;
	const char *h = trimmed_header(d, &hlen);
	const struct ts_param *q = find_param(d, "lastEventId");
	bool has_q = q && q->value && q->value_len > 0;
	if (h || has_q)
		FUZZ_CHECK(r->from == TS_FROM_ID, "an id, from %d", r->from);
	else
		FUZZ_CHECK(r->from ==
				   (r->has_tail ? TS_FROM_TAIL : TS_FROM_END),
			   "from %d", r->from);
	if (kind == TS_REQ_EVENTS && r->from == TS_FROM_ID) {
		struct ts_pos want;
		bool ok = h ? ref_id(h, hlen, &want)
			    : ref_id(q->value, q->value_len, &want);
		FUZZ_CHECK(ok, "an id the reference refuses was accepted");
		FUZZ_CHECK(want.has_ino == r->id.has_ino &&
				   want.off == r->id.off &&
				   (!want.has_ino || want.ino == r->id.ino),
			   "id differs from the reference");
	}
	if (kind == TS_REQ_MULTI && r->from == TS_FROM_ID) {
		bool in[TS_REQ_MAX_LOGS];
		struct ts_pos pos[TS_REQ_MAX_LOGS];
		bool ok = h ? ref_cursor(h, hlen, r->log, r->log_len, r->nlogs,
					 in, pos)
			    : ref_cursor(q->value, q->value_len, r->log,
					 r->log_len, r->nlogs, in, pos);
		FUZZ_CHECK(ok, "a cursor the reference refuses was accepted");
		for (size_t i = 0; i < r->nlogs; i++)
			FUZZ_CHECK(in[i] == r->in_cursor[i] &&
					   (!in[i] ||
					    (pos[i].ino == r->cursor[i].ino &&
					     pos[i].off == r->cursor[i].off)),
				   "cursor entry %zu differs from the reference",
				   i);
	}
}

/* The token is never shown: with other bytes in every token= value (same
 * length, still without NUL, so the parse is the same), a failed request
 * fails with the same message. */
static void check_token_unseen(const struct decoded *d,
			       const struct ts_req_input *in, const char *err)
{
	struct ts_param q[MAX_PARAMS];
	char *other[MAX_PARAMS] = { NULL };
	bool any = false;

	memcpy(q, d->q, d->nq * sizeof(q[0]));
	for (size_t i = 0; i < d->nq; i++) {
		if (strcmp(q[i].key, "token") != 0 || !q[i].value ||
		    q[i].value_len == 0 ||
		    memchr(q[i].value, '\0', q[i].value_len))
			continue;
		other[i] = fuzz_alloc(q[i].value_len);
		for (size_t j = 0; j < q[i].value_len; j++)
			other[i][j] = q[i].value[j] == 'Q' ? 'R' : 'Q';
		q[i].value = other[i];
		any = true;
	}
	if (any) {
		struct ts_req_input in2 = *in;
		struct ts_request r;
		char err2[TS_ERR_MAX];
		in2.query = q;
		FUZZ_CHECK(ts_request_parse(&in2, &r, err2, sizeof(err2)) !=
					   0 &&
				   strcmp(err, err2) == 0,
			   "the message depends on the token: \"%s\", \"%s\"",
			   err, err2);
	}
	for (size_t i = 0; i < d->nq; i++)
		free(other[i]);
}

static void fuzz_parse(const struct decoded *d, enum ts_req_kind kind,
		       size_t small)
{
	struct ts_req_input in = { kind,   d->q,       d->nq,
				   d->hid, d->hid_len, d->nhid };
	struct ts_request r;
	char err[TS_ERR_MAX];

	memset(err, 'x', sizeof(err));
	int rc = ts_request_parse(&in, &r, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "rc %d", rc);
	FUZZ_CHECK((rc == 0) == ref_accepts(d, kind),
		   "kind %d: the parser %s (%s), the reference %s", (int)kind,
		   rc ? "rejects" : "accepts", rc ? err : "",
		   rc ? "accepts" : "rejects");
	if (rc == 0)
		check_request(d, kind, &r);
	else
		check_error(err, sizeof(err));

	/* the same into a short buffer: same answer, the message cut */
	char *serr = fuzz_alloc(small);
	int src = ts_request_parse(&in, &r, serr, small);
	FUZZ_CHECK(src == rc, "rc %d then %d", rc, src);
	if (rc) {
		size_t n = strnlen(serr, small);
		FUZZ_CHECK(n < small && memcmp(serr, err, n) == 0,
			   "short message \"%.*s\" not a prefix of \"%s\"",
			   (int)n, serr, err);
	}
	free(serr);
	if (rc)
		check_token_unseen(d, &in, err);
}

/* Write what a cursor parse found back, one entry per distinct log. */
static size_t write_cursor(const struct ts_request *r, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < r->nlogs; i++) {
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = r->log_len[j] == r->log_len[i] &&
			      memcmp(r->log[j], r->log[i], r->log_len[i]) == 0;
		if (!r->in_cursor[i] || dup)
			continue;
		if (o)
			out[o++] = ',';
		memcpy(out + o, r->log[i], r->log_len[i]);
		o += r->log_len[i];
		o += (size_t)sprintf(out + o, "=%llu:%llu",
				     (unsigned long long)r->cursor[i].ino,
				     (unsigned long long)r->cursor[i].off);
	}
	return o;
}

static void fuzz_cursor(const struct decoded *d)
{
	struct ts_request r;
	memset(&r, 0, sizeof(r));
	for (size_t i = 0; i < d->nq && r.nlogs <= TS_REQ_MAX_LOGS; i++) {
		if (strcmp(d->q[i].key, "log") != 0 || !d->q[i].value)
			continue;
		if (r.nlogs == TS_REQ_MAX_LOGS) {
			r.nlogs++; /* one too many: refused before any is read */
			break;
		}
		r.log[r.nlogs] = d->q[i].value;
		r.log_len[r.nlogs++] = d->q[i].value_len;
	}
	for (size_t h = 0; h < d->nhid; h++) {
		char err[TS_ERR_MAX];
		bool in[TS_REQ_MAX_LOGS];
		struct ts_pos pos[TS_REQ_MAX_LOGS];
		memset(r.in_cursor, 1, sizeof(r.in_cursor));
		int rc = ts_request_parse_cursor(d->hid[h], d->hid_len[h], &r,
						 err, sizeof(err));
		bool ok = ref_cursor(d->hid[h], d->hid_len[h], r.log, r.log_len,
				     r.nlogs, in, pos);
		FUZZ_CHECK(rc == 0 || rc == -EINVAL, "rc %d", rc);
		FUZZ_CHECK((rc == 0) == ok, "cursor parser %s, reference %s",
			   rc ? "rejects" : "accepts",
			   ok ? "accepts" : "rejects");
		for (size_t i = 0; i < TS_REQ_MAX_LOGS; i++)
			FUZZ_CHECK(r.in_cursor[i] == (ok && in[i]) &&
					   (!in[i] || !ok ||
					    (r.cursor[i].has_ino &&
					     r.cursor[i].ino == pos[i].ino &&
					     r.cursor[i].off == pos[i].off)),
				   "entry %zu differs from the reference", i);
		if (rc) {
			check_line(err, sizeof(err));
			FUZZ_CHECK(strncmp(err,
					   r.nlogs > TS_REQ_MAX_LOGS
						   ? "bad log: "
						   : "bad cursor: ",
					   r.nlogs > TS_REQ_MAX_LOGS ? 9
								     : 12) == 0,
				   "error \"%s\"", err);
			continue;
		}
		FUZZ_CHECK(r.nlogs <= TS_REQ_MAX_LOGS, "%zu logs accepted",
			   r.nlogs);
		/* write back, parse again: the same */
		char *buf = fuzz_alloc(TS_REQ_MAX_LOGS * (TS_NAME_MAX + 44));
		size_t n = write_cursor(&r, buf);
		if (n == 0) {
			free(buf);
			continue;
		}
		struct ts_request r2 = r;
		char *copy = fuzz_dup(buf, n);
		rc = ts_request_parse_cursor(copy, n, &r2, err, sizeof(err));
		FUZZ_CHECK(rc == 0, "written cursor \"%.*s\" refused: %s",
			   (int)n, buf, err);
		for (size_t i = 0; i < r.nlogs; i++)
			FUZZ_CHECK(r2.in_cursor[i] == r.in_cursor[i] &&
					   (!r.in_cursor[i] ||
					    (r2.cursor[i].ino ==
						     r.cursor[i].ino &&
					     r2.cursor[i].off ==
						     r.cursor[i].off)),
				   "entry %zu changed by write and parse", i);
		free(copy);
		free(buf);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct decoded d;
	decode(data, size, &d);
	size_t small = 1 + size % 24;
	fuzz_parse(&d, TS_REQ_EVENTS, small);
	fuzz_parse(&d, TS_REQ_MULTI, small);
	fuzz_parse(&d, TS_REQ_LINES, small);
	fuzz_cursor(&d);
	free_decoded(&d);
	return 0;
}
