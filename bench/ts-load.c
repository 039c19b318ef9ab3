/* ts-load.c: an epoll load client for tailsse's Server-Sent Events streams.
 *
 * Opens N HTTP/1.1 connections to one loopback address, sends one GET per
 * connection, and parses every chunked SSE response incrementally with a
 * small fixed buffer per connection (10,000 connections cost a few MB).
 *
 * Lines written by ts-writer look like "seq=<u64> t=<CLOCK_MONOTONIC ns> ...":
 * the client takes seq and t from each data: line, records the
 * append-to-receive latency in a log-linear histogram (no per-sample storage)
 * and follows seq per connection to count lost, duplicated and reordered
 * lines.  Lines without seq= (generated logs) are only counted.
 *
 * With --multi the streams are merged ones (/api/events?log=A&log=B...):
 * each event's data is {"log":"A","line":"...","offset":N}, and the same
 * accounting is kept per (connection, log); a connection is complete when
 * every log's last line arrived.  The log names are the URL's log= values.
 *
 * With --tls the streams are HTTPS (GnuTLS): the handshake runs inside the
 * same epoll loop, non-blocking, and the decrypted records go into the same
 * parser.  TLS is a build option (TS_LOAD_TLS, set by configure and run.sh
 * when GnuTLS is there); the plain path only tests a per-connection pointer
 * once per wake-up.
 *
 * Output: one "RESULT key=value ..." line on stdout, a summary on stderr.
 * Every wait is bounded: the program always stops by itself.
 *
 * Build: gcc -std=gnu11 -O2 -Wall -Wextra -D_GNU_SOURCE ts-load.c -o ts-load -lm
 * with --tls: add -DTS_LOAD_TLS $(pkg-config --cflags --libs gnutls)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, memrchr */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef TS_LOAD_TLS
#include <gnutls/gnutls.h>
#endif

/* Bytes of one line kept per connection: enough for the fields parsed (the
 * start of a data: line, an id:, a status line or header); the rest of a
 * longer line is skipped. */
#define LINE_CAP 200
#define RBUF_SIZE (256 * 1024)
#define READS_PER_WAKE 4
#define MAX_EVENTS 1024
#define CONNECT_TIMEOUT_NS (10 * NS_PER_S)
#define NS_PER_S 1000000000LL
#define NS_PER_MS 1000000LL
#define MAX_LOGS 32   /* logs of one merged stream: the daemon's limit */
#define NAME_CAP 65   /* a log name: 64 bytes (the daemon's limit) + NUL */
#define LOG_NONE 0xff /* an event of no requested log */
/* Bytes of a merged event's line unescaped for parse_data: "seq=N t=NS"
 * takes at most 47 (two 20-digit numbers); not the whole line, which would
 * triple the client's cost per event. */
#define LINE_HEAD 64
/* TLS records read per wake-up at most (16 KiB each: 1 MiB, as the plain
 * path's READS_PER_WAKE reads of RBUF_SIZE) */
#define TLS_RECORDS_PER_WAKE 64
/* GnuTLS's default priorities (the system's), TLS 1.2 and 1.3 only: the
 * daemon accepts nothing older */
#define TLS_PRIORITIES "-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* ---- time ---- */

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* ---- log-linear histogram of nanoseconds: 32 buckets per power of two
 * from 2^10 ns (~1 us) to 2^37 ns (~137 s), so about 3% resolution ---- */

#define H_SUB_BITS 5
#define H_SUB (1 << H_SUB_BITS)
#define H_MIN_EXP 10
#define H_MAX_EXP 37
#define H_NB ((H_MAX_EXP - H_MIN_EXP) * H_SUB + 2)

struct hist {
	uint64_t count;
	uint64_t max;
	uint64_t b[H_NB];
};

static void hist_add(struct hist *h, uint64_t v)
{
	int i;
	if (v < (1ULL << H_MIN_EXP)) {
		i = 0;
	} else {
		int e = 63 - __builtin_clzll(v);
		if (e >= H_MAX_EXP)
			i = H_NB - 1;
		else
			i = 1 + (e - H_MIN_EXP) * H_SUB +
			    (int)((v >> (e - H_SUB_BITS)) & (H_SUB - 1));
	}
	h->b[i]++;
	h->count++;
	if (v > h->max)
		h->max = v;
}

/* The middle of bucket i, in ns. */
static double hist_mid(int i)
{
	if (i == 0)
		return (double)(1ULL << H_MIN_EXP) / 2;
	if (i == H_NB - 1)
		return (double)(1ULL << H_MAX_EXP);
	int e = (i - 1) / H_SUB + H_MIN_EXP, sub = (i - 1) % H_SUB;
	double w = (double)(1ULL << (e - H_SUB_BITS));
	return (double)(1ULL << e) + sub * w + w / 2;
}

/* The p-quantile (0 < p <= 1) in ms; 0 when empty. */
static double hist_ms(const struct hist *h, double p)
{
	if (h->count == 0)
		return 0;
	uint64_t want = (uint64_t)ceil(p * (double)h->count);
	if (want == 0)
		want = 1;
	uint64_t seen = 0;
	for (int i = 0; i < H_NB; i++) {
		seen += h->b[i];
		if (seen >= want) {
			double v = hist_mid(i);
			if (v > (double)h->max)
				v = (double)h->max;
			return v / NS_PER_MS;
		}
	}
	return (double)h->max / NS_PER_MS;
}

/* ---- options and totals ---- */

static struct {
	int family;
	union {
		struct sockaddr_in v4;
		struct sockaddr_in6 v6;
	} addr;
	socklen_t addrlen;
	const char *host;
	int port;
	unsigned nconns;
	const char *url;
	double duration; /* -d */
	double wait;	 /* -w */
	uint64_t expect; /* -e: lines (or events) each stream must get */
	bool have_expect;
	bool multi;	/* --multi: merged streams of several logs */
	unsigned nlogs; /* their log= names, in the URL's order */
	char log_name[MAX_LOGS][NAME_CAP];
	size_t log_len[MAX_LOGS];
	uint64_t expect_log[MAX_LOGS]; /* -e per log (one value: every log) */
	unsigned nexpect;
	double rate;	      /* -r connects per second, 0: no limit */
	unsigned max_pending; /* connects in flight */
	uint64_t replay_bytes;
	bool ttfb;
	uint64_t seq_mod; /* stream i receives seq == i (mod M) only */
	const char *ready_file;
	const char *exec_cmd;
	double max_time;
	bool verbose;
	bool tls;	    /* --tls: HTTPS */
	bool insecure;	    /* --insecure: no check of the certificate */
	const char *cafile; /* --cafile: the certificates to trust */
} opt = {
	.host = "127.0.0.1",
	.port = 8080,
	.nconns = 1,
	.url = "/",
	.duration = 10,
	.wait = 5,
	.max_pending = 256,
};

static struct {
	uint64_t events;   /* message events (lines) */
	uint64_t controls; /* named events (reset, filter-limit, ...) */
	uint64_t pings;
	uint64_t bytes; /* body bytes read, chunk framing included */
	uint64_t lost, dup, reordered, unexpected;
	uint64_t truncated; /* lines longer than LINE_CAP (only counted) */
	unsigned ok, failed, closed_early, complete, done;
	unsigned logs_complete; /* --multi: (connection, log) pairs complete */
	unsigned pending, started;
	unsigned finished; /* connections complete, failed or closed */
	int http_error;	   /* first non-200 status seen */
	char http_error_msg[160];
	int64_t t0, t_ready, t_first_ev, t_last_ev, t_end;
	uint64_t replay_sum; /* sum of the final offsets of replay streams */
	int64_t replay_max_ns;
	struct hist lat, ttfb, compl ;
} g;

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

/* ---- connections ---- */

enum cstate { C_NEW, C_CONNECTING, C_HANDSHAKE, C_HEADERS, C_BODY, C_DONE };
enum chstate { CH_SIZE, CH_EXT, CH_DATA, CH_DATA_END, CH_TRAILER, CH_END };

/* The line accounting of one log on one connection: a single-log stream's
 * own, or one log of a merged stream (--multi). */
struct track {
	uint64_t next_seq; /* expected, in units of seq_mod */
	uint64_t window;   /* bit i: next_seq-1-i was received */
	uint64_t nevents;
	uint32_t lost; /* this log's gaps (for completeness) */
	bool seq_started;
	bool complete; /* merged streams: this log is complete */
};

struct conn {
	int fd;
	uint32_t idx;
	uint8_t state;
	uint8_t ch; /* enum chstate */
	bool chunked;
	bool has_length;
	bool line_trunc; /* the current line went past LINE_CAP */
	bool ev_control, ev_has_id, ev_has_seq, ev_has_t, ev_has_data;
	bool got_event;
	bool complete;
	bool finished;	       /* complete, failed or closed */
	uint8_t ev_log;	       /* --multi: the event's log, or LOG_NONE */
	uint8_t logs_complete; /* --multi: logs that got every line */
	uint16_t llen;
	uint16_t status;
	uint64_t body_left; /* chunk bytes left, or Content-Length left */
	int64_t t_start;
	uint64_t ev_off, ev_seq, ev_t;
	struct track trk; /* a single-log stream's lines */
	uint64_t last_off;
#ifdef TS_LOAD_TLS
	gnutls_session_t tls; /* NULL: plain HTTP (or no session yet) */
#endif
	char line[LINE_CAP];
};

/* Is c's stream TLS?  Constant false without TLS support, so that the
 * plain build carries no TLS code at all. */
#ifdef TS_LOAD_TLS
#define CONN_TLS(c) ((c)->tls != NULL)
#else
#define CONN_TLS(c) false
#endif

/* TLS, below (never called in a build without it) */
static void tls_start(struct conn *c);
static void tls_readable(struct conn *c);
static bool tls_send_all(struct conn *c, const char *p, size_t n);
static void tls_end(struct conn *c);

static struct conn *conns;
static struct track *tracks; /* --multi: nconns * nlogs, by (idx, log) */
static int epfd = -1;

static void conn_close(struct conn *c)
{
	if (!c->finished) {
		c->finished = true;
		g.finished++;
	}
	if (CONN_TLS(c))
		tls_end(c); /* before close: it may send a close_notify */
	if (c->fd >= 0) {
		close(c->fd); /* also leaves the epoll set */
		c->fd = -1;
	}
	if (c->state == C_CONNECTING || c->state == C_HANDSHAKE ||
	    c->state == C_HEADERS)
		g.pending--;
	c->state = C_DONE;
	g.done++;
}

/* c failed while connecting: what, and why (NULL: nothing more to say) */
static void conn_fail_why(struct conn *c, const char *what, const char *why)
{
	static unsigned reported;
	if (reported++ < 5)
		fprintf(stderr, "ts-load: connection %u: %s%s%s\n", c->idx,
			what, why ? ": " : "", why ? why : "");
	g.failed++;
	conn_close(c);
}

static void conn_fail(struct conn *c, const char *what, int err)
{
	conn_fail_why(c, what, err ? strerror(err) : NULL);
}

/* How many lines of seq < expect stream c should get. */
static uint64_t expected_count(const struct conn *c, uint64_t expect)
{
	if (!opt.seq_mod)
		return expect;
	uint64_t r = c->idx % opt.seq_mod;
	return expect > r ? (expect - r + opt.seq_mod - 1) / opt.seq_mod : 0;
}

/* Did the log of t get every line it must (-e), c being its connection? */
static bool track_done(const struct conn *c, const struct track *t,
		       uint64_t expect)
{
	return t->seq_started ? (t->lost == 0 &&
				 t->next_seq >= expected_count(c, expect))
			      : t->nevents >= expect;
}

static void mark_complete(struct conn *c, int64_t now)
{
	if (c->complete)
		return;
	c->complete = true;
	g.complete++;
	if (!c->finished) {
		c->finished = true;
		g.finished++;
	}
	hist_add(&g.compl, (uint64_t)(now - c->t_start));
}

static void check_complete(struct conn *c, int64_t now)
{
	if (c->complete || !opt.have_expect)
		return;
	if (track_done(c, &c->trk, opt.expect))
		mark_complete(c, now);
}

/* Line s of the log that t follows, on connection c.  Inlined as
 * parse_data is. */
static inline __attribute__((always_inline)) void account_seq(
	const struct conn *c, struct track *t, uint64_t s)
{
	if (opt.seq_mod) {
		if (s % opt.seq_mod != c->idx % opt.seq_mod) {
			g.unexpected++; /* a line the stream's filter lets through
					   but should not */
			return;
		}
		s /= opt.seq_mod;
	}
	if (!t->seq_started) {
		t->seq_started = true;
		/* with -e the stream must start at seq 0, else where it joined */
		t->next_seq = opt.have_expect ? 0 : s;
		t->window = 0;
	}
	if (s == t->next_seq) {
		t->window = (t->window << 1) | 1;
		t->next_seq++;
	} else if (s > t->next_seq) {
		uint64_t gap = s - t->next_seq;
		g.lost += gap;
		t->lost += (uint32_t)gap;
		t->window = gap + 1 >= 64 ? 1 : (t->window << (gap + 1)) | 1;
		t->next_seq = s + 1;
	} else {
		uint64_t back = t->next_seq - 1 - s;
		if (back < 64 && !(t->window >> back & 1)) {
			/* counted as lost when the gap opened: it came late */
			t->window |= 1ULL << back;
			g.reordered++;
			g.lost--;
			t->lost--;
		} else {
			g.dup++; /* (or older than the 64-line window) */
		}
	}
}

static bool parse_u64(const char *p, const char *end, uint64_t *v)
{
	uint64_t x = 0;
	const char *s = p;
	while (p < end && *p >= '0' && *p <= '9' && p - s < 20)
		x = x * 10 + (uint64_t)(*p++ - '0');
	*v = x;
	return p > s;
}

/* The first data: line of an event: ts-writer's lines start "seq=N t=NS"
 * (only there: a replayed log's lines are not searched through).  Inlined:
 * with a second caller (parse_merged) gcc would make it a call, and the
 * single-log path is the client's hot loop. */
static inline __attribute__((always_inline)) void parse_data(struct conn *c,
							     const char *v,
							     size_t n)
{
	const char *end = v + n;
	const char *p = n >= 4 && memcmp(v, "seq=", 4) == 0 ? v : NULL;
	if (p && parse_u64(p + 4, end, &c->ev_seq)) {
		c->ev_has_seq = true;
		const char *q = memmem(p + 4, (size_t)(end - p - 4), " t=", 3);
		if (q && parse_u64(q + 3, end, &c->ev_t))
			c->ev_has_t = true;
	}
}

/* The JSON string at *pp (after its opening quote) into out[0..cap): only
 * \" \\ and \/ are decoded, any other escape is kept as it is (the
 * writer's lines are plain ASCII: nothing else is escaped before the fields
 * parsed).  Stops after the closing quote (*closed), at end, or when out is
 * full; *pp is where it stopped.  Returns the length written. */
static size_t json_str(const char **pp, const char *end, char *out, size_t cap,
		       bool *closed)
{
	const char *p = *pp;
	size_t o = 0;
	*closed = false;
	while (p < end && o < cap) {
		char ch = *p++;
		if (ch == '"') {
			*closed = true;
			break;
		}
		if (ch == '\\' && p < end &&
		    (*p == '"' || *p == '\\' || *p == '/'))
			ch = *p++;
		out[o++] = ch;
	}
	*pp = p;
	return o;
}

/* At most cap bytes of the JSON string at *pp (after its opening quote):
 * in place when they hold no escape (the usual case: two memchr, no copy),
 * else unescaped into buf by json_str.  Sets *len and *closed (the closing
 * quote was within them) and moves *pp past what was read. */
static const char *json_head(const char **pp, const char *end, char *buf,
			     size_t cap, size_t *len, bool *closed)
{
	const char *p = *pp;
	size_t w = (size_t)(end - p) < cap ? (size_t)(end - p) : cap;
	const char *q = memchr(p, '"', w);
	size_t n = q ? (size_t)(q - p) : w;
	if (memchr(p, '\\', n)) {
		*len = json_str(pp, end, buf, cap, closed);
		return buf;
	}
	*len = n;
	*closed = q != NULL;
	*pp = q ? q + 1 : p + n;
	return p;
}

/* The first data: line of a merged stream's event,
 * {"log":"NAME","line":"LINE","offset":N} (the daemon writes the keys in
 * this order): NAME picks the log (ev_log; LOG_NONE when it is no requested
 * log or the data is not of this shape), and the start of LINE, unescaped,
 * is parsed as a single-log stream's data is.  Control events' data (no
 * "line") is looked at too, and ignored by dispatch.  Never inlined, nor
 * merged_event: inlined into sse_line, they cost the single-log path
 * instructions per event. */
static __attribute__((noinline)) void parse_merged(struct conn *c,
						   const char *v, size_t n)
{
	static const char k_log[] = "{\"log\":\"", k_line[] = ",\"line\":\"";
	const char *p = v, *end = v + n;
	char nbuf[NAME_CAP], lbuf[LINE_HEAD];
	size_t nl, ll;
	bool closed;

	c->ev_log = LOG_NONE;
	if (n < sizeof(k_log) - 1 || memcmp(p, k_log, sizeof(k_log) - 1) != 0)
		return;
	p += sizeof(k_log) - 1;
	const char *name = json_head(&p, end, nbuf, sizeof(nbuf), &nl, &closed);
	if (!closed || (size_t)(end - p) < sizeof(k_line) - 1 ||
	    memcmp(p, k_line, sizeof(k_line) - 1) != 0)
		return;
	p += sizeof(k_line) - 1;
	for (unsigned i = 0; i < opt.nlogs; i++) {
		if (opt.log_len[i] == nl &&
		    memcmp(opt.log_name[i], name, nl) == 0) {
			c->ev_log = (uint8_t)i;
			break;
		}
	}
	if (c->ev_log == LOG_NONE)
		return;
	/* only its start: it holds seq= and t= */
	const char *line = json_head(&p, end, lbuf, sizeof(lbuf), &ll, &closed);
	parse_data(c, line, ll);
}

/* A merged stream's line: the accounting of its log on c, as a single-log
 * stream's; c is complete when each of its logs is. */
static __attribute__((noinline)) void merged_event(struct conn *c, int64_t now)
{
	if (c->ev_log == LOG_NONE) {
		static unsigned shown;
		g.unexpected++;
		if (shown++ < 3)
			fprintf(stderr,
				"ts-load: connection %u: an event of no "
				"requested log, or not {\"log\":...,\"line\":...}"
				"\n",
				c->idx);
		return;
	}
	struct track *t = &tracks[(size_t)c->idx * opt.nlogs + c->ev_log];
	t->nevents++;
	if (c->ev_has_seq)
		account_seq(c, t, c->ev_seq);
	if (t->complete || !opt.have_expect ||
	    !track_done(c, t, opt.expect_log[c->ev_log]))
		return;
	t->complete = true;
	g.logs_complete++;
	if (++c->logs_complete == opt.nlogs)
		mark_complete(c, now);
}

/* Lines of t's log that c never received, when the run ended. */
static uint64_t missing(const struct conn *c, const struct track *t,
			uint64_t expect)
{
	if (!t->seq_started && t->nevents)
		return 0; /* lines without seq: nothing to say */
	uint64_t want = expected_count(c, expect);
	uint64_t got = t->seq_started ? t->next_seq : 0;
	return got < want ? want - got : 0;
}

static uint64_t merged_missing(const struct conn *c)
{
	uint64_t n = 0;
	for (unsigned l = 0; l < opt.nlogs; l++) {
		const struct track *t = &tracks[(size_t)c->idx * opt.nlogs + l];
		if (!t->complete)
			n += missing(c, t, opt.expect_log[l]);
	}
	return n;
}

static void finish_conn(struct conn *c, int64_t now)
{
	mark_complete(c, now);
	conn_close(c);
}

/* A blank line: the event is complete. */
static void dispatch(struct conn *c, int64_t now)
{
	if (c->ev_control) {
		static unsigned shown;
		g.controls++;
		if (shown++ < 3)
			fprintf(stderr,
				"ts-load: connection %u: control event "
				"(id %" PRIu64 ")\n",
				c->idx, c->ev_off);
	} else if (c->ev_has_data) {
		g.events++;
		c->trk.nevents++;
		if (!g.t_first_ev)
			g.t_first_ev = now;
		g.t_last_ev = now;
		if (!c->got_event) {
			c->got_event = true;
			hist_add(&g.ttfb, (uint64_t)(now - c->t_start));
		}
		if (c->ev_has_t)
			hist_add(&g.lat, now > (int64_t)c->ev_t
						 ? (uint64_t)now - c->ev_t
						 : 0);
		if (opt.multi) {
			merged_event(c, now);
		} else {
			if (c->ev_has_seq)
				account_seq(c, &c->trk, c->ev_seq);
			check_complete(c, now);
		}
		if (c->ev_has_id)
			c->last_off = c->ev_off;
		if (opt.replay_bytes && c->ev_has_id &&
		    c->ev_off >= opt.replay_bytes) {
			g.replay_sum += c->ev_off;
			if (now - c->t_start > g.replay_max_ns)
				g.replay_max_ns = now - c->t_start;
			finish_conn(c, now);
		} else if (opt.ttfb) {
			finish_conn(c, now);
		}
	}
	c->ev_control = c->ev_has_id = c->ev_has_seq = c->ev_has_t = false;
	c->ev_has_data = false;
}

/* One SSE line, without its '\n' (maybe cut at LINE_CAP). */
static void sse_line(struct conn *c, const char *l, size_t n, int64_t now)
{
	if (n && l[n - 1] == '\r')
		n--;
	if (n == 0) {
		dispatch(c, now);
		return;
	}
	if (l[0] == ':') {
		if (n >= 6 && memcmp(l, ": ping", 6) == 0)
			g.pings++;
		return;
	}
	const char *colon = memchr(l, ':', n);
	size_t flen = colon ? (size_t)(colon - l) : n;
	const char *v = colon ? colon + 1 : l + n;
	if (v < l + n && *v == ' ')
		v++;
	size_t vlen = (size_t)(l + n - v);
	if (flen == 4 && memcmp(l, "data", 4) == 0) {
		if (!c->ev_has_data) {
			c->ev_has_data = true;
			if (opt.multi)
				parse_merged(c, v, vlen);
			else
				parse_data(c, v, vlen);
		}
	} else if (flen == 2 && memcmp(l, "id", 2) == 0) {
		/* INODE:OFFSET or OFFSET: the offset is the last number */
		const char *p = memrchr(v, ':', vlen);
		p = p ? p + 1 : v;
		c->ev_has_id = parse_u64(p, l + n, &c->ev_off);
	} else if (flen == 5 && memcmp(l, "event", 5) == 0) {
		if (!(vlen == 7 && memcmp(v, "message", 7) == 0))
			c->ev_control = true;
	}
}

/* Split body bytes into SSE lines.  Complete lines inside `p` are parsed in
 * place; only a line split across reads is copied. */
static void sse_feed(struct conn *c, const char *p, size_t n, int64_t now)
{
	while (n > 0 && c->state == C_BODY) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;
		if (c->llen == 0 && !c->line_trunc && nl) {
			sse_line(c, p, take, now);
		} else {
			size_t room = LINE_CAP - c->llen;
			size_t cp = take < room ? take : room;
			memcpy(c->line + c->llen, p, cp);
			c->llen = (uint16_t)(c->llen + cp);
			if (cp < take)
				c->line_trunc = true;
			if (nl) {
				if (c->line_trunc)
					g.truncated++;
				sse_line(c, c->line, c->llen, now);
				c->llen = 0;
				c->line_trunc = false;
			}
		}
		if (!nl)
			return;
		p = nl + 1;
		n -= take + 1;
	}
}

/* One response header line (without CRLF). */
static void header_line(struct conn *c, const char *l, size_t n)
{
	if (c->status == 0) {
		/* "HTTP/1.1 200 OK" */
		unsigned st = 0;
		if (n >= 12 && memcmp(l, "HTTP/1.", 7) == 0)
			sscanf(l + 9, "%3u", &st);
		c->status = st ? (uint16_t)st : 999;
		return;
	}
	const char *colon = memchr(l, ':', n);
	if (!colon)
		return;
	size_t flen = (size_t)(colon - l);
	const char *v = colon + 1;
	while (v < l + n && *v == ' ')
		v++;
	if (flen == 17 && strncasecmp(l, "transfer-encoding", 17) == 0) {
		if (memmem(v, (size_t)(l + n - v), "chunked", 7))
			c->chunked = true;
	} else if (flen == 14 && strncasecmp(l, "content-length", 14) == 0) {
		uint64_t len;
		if (parse_u64(v, l + n, &len)) {
			c->has_length = true;
			c->body_left = len;
		}
	}
}

/* The headers ended.  A 200 starts the stream; anything else is read to
 * keep its message, then the connection counts as failed. */
static void headers_done(struct conn *c, int64_t now)
{
	g.pending--;
	if (c->status == 200) {
		g.ok++;
		c->state = C_BODY;
		c->ch = CH_SIZE;
		if (!c->chunked)
			c->body_left = c->has_length ? c->body_left
						     : UINT64_MAX;
		else
			c->body_left = 0;
		return;
	}
	(void)now;
	if (!g.http_error)
		g.http_error = c->status;
	c->state = C_BODY; /* read the message as a body, below */
	c->chunked = false;
	if (!c->has_length) {
		c->body_left = UINT64_MAX;
	} else if (c->body_left == 0) {
		g.failed++;
		conn_close(c);
	}
}

/* Body bytes of a non-200 answer: keep the first line of the first one. */
static void error_body(struct conn *c, const char *p, size_t n)
{
	size_t have = strlen(g.http_error_msg);
	if (c->status == g.http_error && have == 0) {
		size_t k = 0;
		while (k < n && p[k] != '\n' &&
		       k < sizeof(g.http_error_msg) - 1)
			k++;
		memcpy(g.http_error_msg, p, k);
		g.http_error_msg[k] = '\0';
	}
}

/* Feed bytes after the headers through the chunked decoder. */
static void body_feed(struct conn *c, const char *p, size_t n, int64_t now)
{
	g.bytes += n;
	if (c->status != 200) {
		error_body(c, p, n);
		if (c->has_length && n >= c->body_left) {
			g.failed++;
			conn_close(c);
		} else if (c->has_length) {
			c->body_left -= n;
		}
		return;
	}
	if (!c->chunked) {
		size_t k = n < c->body_left ? n : (size_t)c->body_left;
		sse_feed(c, p, k, now);
		if (c->body_left != UINT64_MAX)
			c->body_left -= k;
		return;
	}
	const char *end = p + n;
	while (p < end && c->state == C_BODY) {
		char ch;
		switch (c->ch) {
		case CH_SIZE:
			ch = *p++;
			if (ch >= '0' && ch <= '9')
				c->body_left = c->body_left * 16 +
					       (uint64_t)(ch - '0');
			else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
				c->body_left =
					c->body_left * 16 +
					(uint64_t)((ch | 0x20) - 'a' + 10);
			else if (ch == '\n')
				c->ch = c->body_left ? CH_DATA : CH_TRAILER;
			else
				c->ch = CH_EXT; /* ';' extension or '\r' */
			break;
		case CH_EXT:
			if (*p++ == '\n')
				c->ch = c->body_left ? CH_DATA : CH_TRAILER;
			break;
		case CH_DATA: {
			size_t k = (size_t)(end - p);
			if (k > c->body_left)
				k = (size_t)c->body_left;
			sse_feed(c, p, k, now);
			p += k;
			c->body_left -= k;
			if (c->body_left == 0)
				c->ch = CH_DATA_END;
			break;
		}
		case CH_DATA_END: /* the CRLF after the data */
			if (*p++ == '\n') {
				c->ch = CH_SIZE;
				c->body_left = 0;
			}
			break;
		case CH_TRAILER: /* the last chunk: the server ended the stream */
		case CH_END:
			c->ch = CH_END;
			p = end;
			break;
		}
	}
}

static void bytes_in(struct conn *c, const char *p, size_t n, int64_t now)
{
	while (n > 0 && c->state == C_HEADERS) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;
		size_t room = LINE_CAP - c->llen;
		size_t cp = take < room ? take : room;
		memcpy(c->line + c->llen, p, cp);
		c->llen = (uint16_t)(c->llen + cp);
		if (!nl)
			return;
		size_t ll = c->llen;
		if (ll && c->line[ll - 1] == '\r')
			ll--;
		c->llen = 0;
		p = nl + 1;
		n -= take + 1;
		if (ll == 0)
			headers_done(c, now);
		else
			header_line(c, c->line, ll);
	}
	if (n > 0 && c->state == C_BODY)
		body_feed(c, p, n, now);
}

static int build_request(const struct conn *c, char *buf, size_t cap)
{
	/* the URL with "{i}" replaced by the connection's index */
	char url[1024];
	size_t o = 0;
	for (const char *s = opt.url; *s && o < sizeof(url) - 12;) {
		if (strncmp(s, "{i}", 3) == 0) {
			o += (size_t)snprintf(url + o, sizeof(url) - o, "%u",
					      c->idx);
			s += 3;
		} else {
			url[o++] = *s++;
		}
	}
	url[o] = '\0';
	int n = snprintf(
		buf, cap,
		"GET %s HTTP/1.1\r\nHost: %s:%d\r\n"
		"Accept: text/event-stream\r\n"
		"Cache-Control: no-cache\r\nUser-Agent: ts-load\r\n\r\n",
		url, opt.family == AF_INET6 ? "[::1]" : opt.host, opt.port);
	return n > 0 && (size_t)n < cap ? n : -1;
}

static void conn_start(struct conn *c, int64_t now)
{
	c->t_start = now;
	c->fd = socket(opt.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0);
	g.started++;
	g.pending++;
	c->state = C_CONNECTING;
	if (c->fd < 0) {
		conn_fail(c, "socket", errno);
		return;
	}
	if (connect(c->fd, (struct sockaddr *)&opt.addr, opt.addrlen) != 0 &&
	    errno != EINPROGRESS) {
		conn_fail(c, "connect", errno);
		return;
	}
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
		conn_fail(c, "epoll_ctl", errno);
}

/* The GET (over c's TLS session once its handshake is done), then wait
 * for the answer. */
static void send_request(struct conn *c)
{
	char req[1400];
	int n = build_request(c, req, sizeof(req));
	if (n < 0) {
		conn_fail(c, "URL too long", 0);
		return;
	}
	if (CONN_TLS(c)) {
		if (!tls_send_all(c, req, (size_t)n))
			return; /* failed, and said so */
	} else {
		ssize_t w = send(c->fd, req, (size_t)n, MSG_NOSIGNAL);
		if (w != n) {
			conn_fail(c, "send", w < 0 ? errno : EAGAIN);
			return;
		}
	}
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP,
				  .data.ptr = c };
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
		conn_fail(c, "epoll_ctl", errno);
		return;
	}
	c->state = C_HEADERS;
}

/* The TCP connection is up (or failed). */
static void conn_writable(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err) {
		conn_fail(c, "connect", err);
		return;
	}
	if (opt.tls)
		tls_start(c); /* the GET follows the handshake */
	else
		send_request(c);
}

/* c's connection ended (why: NULL when it was closed in order). */
static void conn_eof(struct conn *c, const char *why)
{
	if (c->state == C_BODY && c->status == 200) {
		static unsigned shown;
		if (shown++ < 3)
			fprintf(stderr,
				"ts-load: connection %u: closed by the "
				"server%s%s\n",
				c->idx, why ? ": " : "", why ? why : "");
		g.closed_early++;
		conn_close(c);
	} else if (c->state == C_BODY) {
		g.failed++; /* an error answer without length */
		conn_close(c);
	} else {
		conn_fail_why(c, "closed before the headers", why);
	}
}

static char rbuf[RBUF_SIZE];

static void conn_readable(struct conn *c)
{
	if (CONN_TLS(c)) {
		tls_readable(c);
		return;
	}
	for (int i = 0; i < READS_PER_WAKE && c->fd >= 0; i++) {
		ssize_t r = read(c->fd, rbuf, sizeof(rbuf));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
		}
		int64_t now = now_ns();
		if (r <= 0) {
			conn_eof(c, r < 0 ? strerror(errno) : NULL);
			return;
		}
		bytes_in(c, rbuf, (size_t)r, now);
		if (c->state == C_BODY && c->chunked && c->ch == CH_END) {
			g.closed_early++;
			conn_close(c);
			return;
		}
		if ((size_t)r < sizeof(rbuf))
			return; /* drained: level-triggered epoll tells again */
	}
}

/* Connections still connecting after CONNECT_TIMEOUT_NS fail. */
static void check_timeouts(int64_t now)
{
	for (unsigned i = 0; i < g.started; i++) {
		struct conn *c = &conns[i];
		if ((c->state == C_CONNECTING || c->state == C_HANDSHAKE ||
		     c->state == C_HEADERS) &&
		    now - c->t_start > CONNECT_TIMEOUT_NS)
			conn_fail(c, "no answer within 10 s", 0);
	}
}

/* ---- TLS (--tls) ---- */

#ifdef TS_LOAD_TLS

static gnutls_certificate_credentials_t tls_cred;
static gnutls_priority_t tls_prio;
static char tls_name[64]; /* checked against the certificate: -H, no [] */

/* Once: the credentials (what to trust) and priorities every session
 * shares.  -1 with a line on stderr. */
static int tls_init(void)
{
	const char *where = NULL;
	int r = gnutls_certificate_allocate_credentials(&tls_cred);
	if (r >= 0 && opt.cafile) {
		r = gnutls_certificate_set_x509_trust_file(tls_cred, opt.cafile,
							   GNUTLS_X509_FMT_PEM);
		if (r == 0) {
			fprintf(stderr,
				"ts-load: --cafile %s: no PEM "
				"certificate in it\n",
				opt.cafile);
			return -1;
		}
		if (r < 0) {
			fprintf(stderr, "ts-load: --cafile %s: %s\n",
				opt.cafile, gnutls_strerror(r));
			return -1;
		}
	}
	if (r >= 0)
		r = gnutls_priority_init2(&tls_prio, TLS_PRIORITIES, &where,
					  GNUTLS_PRIORITY_INIT_DEF_APPEND);
	if (r < 0) {
		fprintf(stderr, "ts-load: TLS: %s%s%s\n", gnutls_strerror(r),
			where ? " at " : "", where ? where : "");
		return -1;
	}
	/* "[::1]" is "::1" in the certificate */
	size_t n = strlen(opt.host);
	const char *h = opt.host;
	if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
		h++;
		n -= 2;
	}
	snprintf(tls_name, sizeof(tls_name), "%.*s", (int)n, h);
	return 0;
}

static void tls_cleanup(void)
{
	if (tls_prio)
		gnutls_priority_deinit(tls_prio);
	if (tls_cred)
		gnutls_certificate_free_credentials(tls_cred);
}

/* Read-ahead for TLS streams.  GnuTLS asks its pull function for exactly
 * what it needs (a record's 5-byte header, then its body): two recv per
 * record, ten times the plain path's syscalls on a live stream, which made
 * the client the bottleneck.  Once the handshake is done, the pull reads
 * what the socket has into this buffer and serves GnuTLS from it.  Only the
 * connection being read owns it: tls_readable drains it before returning
 * (and tls_end drops it), so no bytes of a connection wait in it while
 * another is read, and epoll's readiness stays that of the socket.  As on
 * the plain path, a short recv means the socket is drained: the next pull
 * says EAGAIN without asking (level-triggered epoll tells again). */
static struct {
	const struct conn *owner;
	size_t pos, len;
	bool drained;
	char buf[RBUF_SIZE];
} ra;

static bool ra_holds(const struct conn *c)
{
	return ra.owner == c && ra.pos < ra.len;
}

static ssize_t tls_pull(gnutls_transport_ptr_t p, void *data, size_t n)
{
	const struct conn *c = p;
	/* exact reads while handshaking: nothing is left in ra when it ends
	 * and the connection goes back to waiting for epoll */
	if (c->state == C_HANDSHAKE)
		return recv(c->fd, data, n, 0);
	if (!ra_holds(c)) {
		if (ra.owner == c && ra.drained) {
			errno = EAGAIN;
			return -1;
		}
		ssize_t r = recv(c->fd, ra.buf, sizeof(ra.buf), 0);
		if (r <= 0)
			return r; /* errno for GnuTLS: EAGAIN, or the error */
		ra.owner = c;
		ra.pos = 0;
		ra.len = (size_t)r;
		ra.drained = ra.len < sizeof(ra.buf);
	}
	size_t k = ra.len - ra.pos < n ? ra.len - ra.pos : n;
	memcpy(data, ra.buf + ra.pos, k);
	ra.pos += k;
	return (ssize_t)k;
}

/* Only when GnuTLS waits with a timeout (it does not here: non-blocking
 * sessions, no record timeout), but a replaced pull needs its own. */
static int tls_pull_timeout(gnutls_transport_ptr_t p, unsigned int ms)
{
	const struct conn *c = p;
	if (ra_holds(c))
		return 1;
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	return poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
}

static void tls_fail(struct conn *c, const char *what, int r)
{
	conn_fail_why(c, what, gnutls_strerror(r));
}

/* The handshake failed: with a certificate that did not verify, say why
 * (not trusted, another name, expired...) rather than GnuTLS's generic
 * "Error in the certificate verification". */
static void tls_handshake_failed(struct conn *c, int r)
{
	gnutls_datum_t out = { NULL, 0 };
	if (r != GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR ||
	    gnutls_certificate_verification_status_print(
		    gnutls_session_get_verify_cert_status(c->tls),
		    GNUTLS_CRT_X509, &out, 0) < 0) {
		tls_fail(c, "TLS handshake", r);
		return;
	}
	conn_fail_why(c, "TLS handshake", (const char *)out.data);
	gnutls_free(out.data);
}

/* What the first session negotiated (version, key exchange, signature,
 * cipher), once: run.sh shows it beside the figures. */
static void tls_describe(gnutls_session_t s)
{
	static bool shown;
	if (shown)
		return;
	shown = true;
	char *d = gnutls_session_get_desc(s);
	fprintf(stderr, "ts-load: TLS: %s\n", d ? d : "?");
	gnutls_free(d);
}

/* One step of c's non-blocking handshake; the GET goes out once it is
 * done.  GnuTLS says whether it waits to write or to read: the epoll
 * interest follows. */
static void tls_handshake(struct conn *c)
{
	int r;
	do
		r = gnutls_handshake(c->tls);
	while (r < 0 && r != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(r));
	if (r == GNUTLS_E_AGAIN) {
		struct epoll_event ev = {
			.events = gnutls_record_get_direction(c->tls) ? EPOLLOUT
								      : EPOLLIN,
			.data.ptr = c,
		};
		if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
			conn_fail(c, "epoll_ctl", errno);
		return;
	}
	if (r < 0) {
		tls_handshake_failed(c, r);
		return;
	}
	tls_describe(c->tls);
	send_request(c);
}

/* The TCP connection of c is up: a client session on it (verifying the
 * certificate and its name unless --insecure), and the first handshake
 * step. */
static void tls_start(struct conn *c)
{
	c->state = C_HANDSHAKE;
	int r = gnutls_init(&c->tls,
			    GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
	if (r < 0) {
		c->tls = NULL;
		tls_fail(c, "TLS", r);
		return;
	}
	if ((r = gnutls_priority_set(c->tls, tls_prio)) < 0 ||
	    (r = gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE,
					tls_cred)) < 0) {
		tls_fail(c, "TLS", r);
		return;
	}
	/* SNI takes a DNS name, never an address */
	if (strcmp(tls_name, "localhost") == 0)
		gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, tls_name,
				       strlen(tls_name));
	if (!opt.insecure)
		gnutls_session_set_verify_cert(c->tls, tls_name, 0);
	/* reads through tls_pull (given c), writes by GnuTLS (given the fd) */
	gnutls_transport_set_ptr2(c->tls, c,
				  (gnutls_transport_ptr_t)(intptr_t)c->fd);
	gnutls_transport_set_pull_function(c->tls, tls_pull);
	gnutls_transport_set_pull_timeout_function(c->tls, tls_pull_timeout);
	tls_handshake(c);
}

/* The request, whole (a few hundred bytes into an empty socket buffer: as
 * the plain path, a short write is a failure).  false when c failed. */
static bool tls_send_all(struct conn *c, const char *p, size_t n)
{
	ssize_t w;
	do
		w = gnutls_record_send(c->tls, p, n);
	while (w == GNUTLS_E_INTERRUPTED);
	if (w == (ssize_t)n)
		return true;
	tls_fail(c, "TLS send", w < 0 ? (int)w : GNUTLS_E_AGAIN);
	return false;
}

/* c's socket is ready: a handshake step, or the stream's bytes, one record
 * (at most 16 KiB) per gnutls_record_recv, into the plain path's parser.
 * Stop after TLS_RECORDS_PER_WAKE records, for fairness between streams,
 * but only once neither the read-ahead buffer nor GnuTLS holds bytes of c,
 * which epoll cannot see; what is still in the socket wakes it
 * (level-triggered) again. */
static void tls_readable(struct conn *c)
{
	if (c->state == C_HANDSHAKE) {
		tls_handshake(c);
		return;
	}
	/* a new wake-up: c's socket has bytes (ra holds none of anyone's) */
	ra.owner = c;
	ra.pos = ra.len = 0;
	ra.drained = false;
	for (unsigned i = 0; c->fd >= 0; i++) {
		if (i >= TLS_RECORDS_PER_WAKE && !ra_holds(c) &&
		    gnutls_record_check_pending(c->tls) == 0)
			return;
		ssize_t r = gnutls_record_recv(c->tls, rbuf, sizeof(rbuf));
		if (r == GNUTLS_E_AGAIN)
			return;
		if (r < 0 && !gnutls_error_is_fatal((int)r))
			continue; /* interrupted, or a warning alert */
		int64_t now = now_ns();
		if (r <= 0) {
			/* 0: close_notify; without it, the TCP close says the
			 * same here (the chunked framing tells a cut stream) */
			conn_eof(c,
				 r == 0 || r == GNUTLS_E_PREMATURE_TERMINATION
					 ? NULL
					 : gnutls_strerror((int)r));
			return;
		}
		bytes_in(c, rbuf, (size_t)r, now);
		if (c->state == C_BODY && c->chunked && c->ch == CH_END) {
			g.closed_early++;
			conn_close(c);
			return;
		}
	}
}

/* The end of c's session: a close_notify when it carried HTTP (the
 * orderly end of TLS: the daemon does not take it for an attack or a
 * cut), not waited for. */
static void tls_end(struct conn *c)
{
	if (ra.owner == c)
		ra.owner = NULL; /* its unread bytes go with it */
	if (c->state == C_HEADERS || c->state == C_BODY)
		gnutls_bye(c->tls, GNUTLS_SHUT_WR);
	gnutls_deinit(c->tls);
	c->tls = NULL;
}

#else /* no TLS support: parse_args refuses --tls, nothing below runs */

static int tls_init(void)
{
	return -1;
}
static void tls_cleanup(void)
{
}
static void tls_start(struct conn *c)
{
	(void)c;
}
static void tls_readable(struct conn *c)
{
	(void)c;
}
static bool tls_send_all(struct conn *c, const char *p, size_t n)
{
	(void)c, (void)p, (void)n;
	return false;
}
static void tls_end(struct conn *c)
{
	(void)c;
}

#endif

/* ---- the writer child (-x) ---- */

static pid_t child = -1;

static void spawn(const char *cmd)
{
	child = fork();
	if (child == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	if (child < 0)
		fprintf(stderr, "ts-load: fork: %s\n", strerror(errno));
}

/* ---- setup ---- */

static void raise_nofile(unsigned need)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)need + 32)
		fprintf(stderr,
			"ts-load: warning: open-file limit %llu is "
			"below %u connections: some will fail (EMFILE)\n",
			(unsigned long long)rl.rlim_cur, need);
}

/* Only loopback addresses: this is a benchmark of a local daemon. */
static int set_address(const char *host, int port)
{
	memset(&opt.addr, 0, sizeof(opt.addr));
	if (inet_pton(AF_INET, host, &opt.addr.v4.sin_addr) == 1) {
		if ((ntohl(opt.addr.v4.sin_addr.s_addr) >> 24) != 127)
			return -1;
		opt.family = AF_INET;
		opt.addr.v4.sin_family = AF_INET;
		opt.addr.v4.sin_port = htons((uint16_t)port);
		opt.addrlen = sizeof(opt.addr.v4);
		return 0;
	}
	if (strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0) {
		opt.family = AF_INET6;
		opt.addr.v6.sin6_family = AF_INET6;
		opt.addr.v6.sin6_addr = in6addr_loopback;
		opt.addr.v6.sin6_port = htons((uint16_t)port);
		opt.addrlen = sizeof(opt.addr.v6);
		return 0;
	}
	if (strcmp(host, "localhost") == 0)
		return set_address("127.0.0.1", port);
	return -1;
}

#ifdef TS_LOAD_TLS
#define TLS_BUILD ""
#else
#define TLS_BUILD " (not in this build: no GnuTLS then)"
#endif

static void usage(FILE *f)
{
	fputs("Usage: ts-load [options]\n"
	      "Open N Server-Sent Events streams to a local tailsse and measure them.\n"
	      "\n"
	      "  -H HOST        loopback address only: 127.x.x.x, ::1 (default 127.0.0.1)\n"
	      "  -p PORT        port (default 8080)\n"
	      "  -n N           connections (default 1)\n"
	      "  -u PATH        request path, e.g. /api/logs/bench/events?tail=0;\n"
	      "                 \"{i}\" is replaced by the connection index\n"
	      "  -d SECONDS     measuring time once every stream is up (default 10)\n"
	      "  -w SECONDS     extra wait for stragglers after -d or after the -x\n"
	      "                 command exited (default 5)\n"
	      "  -e COUNT       lines each stream must get (seq 0..COUNT-1): loss at the\n"
	      "                 end, streams_complete, and an early stop once all have them;\n"
	      "                 with --multi COUNT applies to each log, or COUNT,COUNT,...\n"
	      "                 gives each log's (in the order of the path's log=)\n"
	      "  -r RATE        connects per second (default: no limit)\n"
	      "  -P N           connects in flight at most (default 256)\n"
	      "  -x CMD         run CMD (sh -c) once every stream is up; the run ends -w\n"
	      "                 seconds after it exits (replaces -d)\n"
	      "  -R FILE        create FILE once every stream is up\n"
	      "  -T SECONDS     hard limit on the whole run (default: computed)\n"
	      "  -v             progress every 5 s on stderr\n"
	      "      --replay-bytes N  a stream is done at the first id with OFFSET >= N;\n"
	      "                 reports the file bytes replayed per second\n"
	      "      --ttfb     a stream is done at its first line (time to first event)\n"
	      "      --seq-mod M  stream i only gets lines with seq == i (mod M): a\n"
	      "                 per-stream filter; other lines count as unexpected\n"
	      "      --multi    merged streams (/api/events?log=A&log=B...): data is\n"
	      "                 {\"log\":\"A\",\"line\":\"...\",...}; lines are accounted per\n"
	      "                 (stream, log), the logs being the path's log= values; a\n"
	      "                 stream is complete when each of its logs is\n"
	      "      --tls      HTTPS (GnuTLS, TLS 1.2 or 1.3); the handshake is part of\n"
	      "                 connecting" TLS_BUILD "\n"
	      "      --cafile FILE  with --tls: trust the certificate(s) of FILE (PEM);\n"
	      "                 the server's must also name the -H address\n"
	      "      --insecure with --tls: do not check the server's certificate\n"
	      "\n"
	      "Output: RESULT key=value ... on stdout; a summary on stderr.\n",
	      f);
}

static double parse_num(const char *s, const char *what)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || v < 0) {
		fprintf(stderr, "ts-load: bad %s: %s\n", what, s);
		exit(2);
	}
	return v;
}

static void print_result(void)
{
	int64_t end = g.t_end;
	double window =
		g.t_last_ev > g.t_first_ev
			? (double)(g.t_last_ev - g.t_first_ev) / NS_PER_S
			: 0;
	double eps = window > 0 ? (double)g.events / window : 0;
	double bps = window > 0 ? (double)g.bytes / window : 0;
	double elapsed = (double)(end - g.t0) / NS_PER_S;
	double replay_s = (double)g.replay_max_ns / NS_PER_S;
	double fbps = replay_s > 0 ? (double)g.replay_sum / replay_s : 0;
	double ready_s = g.t_ready ? (double)(g.t_ready - g.t0) / NS_PER_S : -1;
	struct rusage ru;
	double cpu = 0;
	long maxrss = 0; /* KiB: with --tls, GnuTLS's sessions weigh */
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		      (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
		maxrss = ru.ru_maxrss;
	}

	printf("RESULT conns=%u conns_ok=%u conns_failed=%u closed_early=%u "
	       "events=%" PRIu64 " events_per_s=%.0f bytes=%" PRIu64
	       " bytes_per_s=%.0f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f "
	       "p90_ms=%.3f p999_ms=%.3f "
	       "lost=%" PRIu64 " dup=%" PRIu64 " reordered=%" PRIu64
	       " unexpected=%" PRIu64 " streams_complete=%u controls=%" PRIu64
	       " pings=%" PRIu64 " ttfb_p50_ms=%.3f ttfb_p99_ms=%.3f "
	       "ttfb_max_ms=%.3f complete_p50_ms=%.3f complete_max_ms=%.3f "
	       "replay_s=%.3f file_bytes_per_s=%.0f connect_s=%.3f "
	       "elapsed_s=%.3f client_cpu_s=%.3f http_error=%d logs=%u "
	       "logs_complete=%u client_maxrss_kb=%ld\n",
	       opt.nconns, g.ok, g.failed, g.closed_early, g.events, eps,
	       g.bytes, bps, hist_ms(&g.lat, 0.5), hist_ms(&g.lat, 0.99),
	       (double)g.lat.max / NS_PER_MS, hist_ms(&g.lat, 0.90),
	       hist_ms(&g.lat, 0.999), g.lost, g.dup, g.reordered, g.unexpected,
	       g.complete, g.controls, g.pings, hist_ms(&g.ttfb, 0.5),
	       hist_ms(&g.ttfb, 0.99), (double)g.ttfb.max / NS_PER_MS,
	       hist_ms(&g.compl, 0.5), (double)g.compl .max / NS_PER_MS,
	       replay_s, fbps, ready_s, elapsed, cpu, g.http_error,
	       opt.multi ? opt.nlogs : 1,
	       opt.multi ? g.logs_complete : g.complete, maxrss);
	fflush(stdout);

	fprintf(stderr,
		"ts-load: %u/%u streams up (%u failed, %u closed by the server) "
		"in %.2f s\n"
		"ts-load: %" PRIu64
		" events (%.0f/s), %.1f MB (%.1f MB/s) over "
		"%.2f s\n"
		"ts-load: latency p50 %.3f ms, p99 %.3f ms, max %.3f ms "
		"(%" PRIu64 " samples)\n"
		"ts-load: lost %" PRIu64 ", duplicated %" PRIu64 ", reordered "
		"%" PRIu64 ", unexpected %" PRIu64 ", complete streams %u\n",
		g.ok, opt.nconns, g.failed, g.closed_early, ready_s, g.events,
		eps, (double)g.bytes / 1e6, bps / 1e6, window,
		hist_ms(&g.lat, 0.5), hist_ms(&g.lat, 0.99),
		(double)g.lat.max / NS_PER_MS, g.lat.count, g.lost, g.dup,
		g.reordered, g.unexpected, g.complete);
	if (opt.multi && opt.have_expect)
		fprintf(stderr,
			"ts-load: merged streams of %u logs: %u of %u "
			"(stream, log) complete\n",
			opt.nlogs, g.logs_complete, opt.nconns * opt.nlogs);
	if (g.ttfb.count)
		fprintf(stderr,
			"ts-load: first event after p50 %.3f ms, p99 "
			"%.3f ms, max %.3f ms\n",
			hist_ms(&g.ttfb, 0.5), hist_ms(&g.ttfb, 0.99),
			(double)g.ttfb.max / NS_PER_MS);
	if (opt.replay_bytes)
		fprintf(stderr,
			"ts-load: replay: %.1f MB of file in %.3f s: "
			"%.1f MB/s\n",
			(double)g.replay_sum / 1e6, replay_s, fbps / 1e6);
	if (g.truncated)
		fprintf(stderr,
			"ts-load: %" PRIu64 " lines longer than %d "
			"bytes (parsed from their start)\n",
			g.truncated, LINE_CAP);
	if (g.http_error)
		fprintf(stderr, "ts-load: HTTP %d: %s\n", g.http_error,
			g.http_error_msg);
}

/* -e COUNT[,COUNT...]: one count, or with --multi one per log. */
static void parse_expect(const char *arg)
{
	char buf[1024];
	snprintf(buf, sizeof(buf), "%s", arg);
	opt.nexpect = 0;
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (opt.nexpect == MAX_LOGS) {
			fprintf(stderr, "ts-load: -e: more than %d counts\n",
				MAX_LOGS);
			exit(2);
		}
		opt.expect_log[opt.nexpect++] = (uint64_t)parse_num(tok, "-e");
	}
	if (opt.nexpect == 0)
		parse_num(arg, "-e"); /* says it is bad and exits */
	opt.expect = opt.expect_log[0];
	opt.have_expect = true;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = (char)(ch | 0x20);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* The log= values of the URL's query, percent-decoded, into opt.log_name:
 * the logs a merged stream carries.  -1 when there are none, too many, or
 * one is too long. */
static int url_logs(const char *url)
{
	const char *q = strchr(url, '?');
	while (q && *q) {
		q++;
		size_t len = strcspn(q, "&");
		if (len >= 4 && memcmp(q, "log=", 4) == 0) {
			if (opt.nlogs == MAX_LOGS)
				return -1;
			char *o = opt.log_name[opt.nlogs];
			size_t k = 0;
			for (size_t i = 4; i < len; i++) {
				char ch = q[i];
				if (k == NAME_CAP - 1)
					return -1;
				if (ch == '%' && i + 2 < len &&
				    hexval(q[i + 1]) >= 0 &&
				    hexval(q[i + 2]) >= 0) {
					ch = (char)(hexval(q[i + 1]) * 16 +
						    hexval(q[i + 2]));
					i += 2;
				}
				o[k++] = ch;
			}
			o[k] = '\0';
			opt.log_len[opt.nlogs++] = k;
		}
		q += len;
	}
	return opt.nlogs ? 0 : -1;
}

/* The options that go with --multi, and the -e count of each log. */
static int check_multi(void)
{
	if (!opt.multi) {
		if (opt.nexpect > 1) {
			fprintf(stderr, "ts-load: -e takes several counts "
					"with --multi only\n");
			return -1;
		}
		return 0;
	}
	if (url_logs(opt.url) != 0) {
		fprintf(stderr,
			"ts-load: --multi: the path needs 1 to %d "
			"log=NAME parameters (names of at most %d bytes)\n",
			MAX_LOGS, NAME_CAP - 1);
		return -1;
	}
	if (opt.replay_bytes) {
		fprintf(stderr, "ts-load: --replay-bytes does not go with "
				"--multi (an id holds one offset per log)\n");
		return -1;
	}
	if (opt.nexpect > 1 && opt.nexpect != opt.nlogs) {
		fprintf(stderr, "ts-load: -e: %u counts for %u logs\n",
			opt.nexpect, opt.nlogs);
		return -1;
	}
	for (unsigned l = opt.nexpect; l < opt.nlogs; l++)
		opt.expect_log[l] = opt.expect;
	return 0;
}

/* --tls: at once, so that a build without TLS says so before anything
 * else (run.sh asks `ts-load --tls -h`: exit status 2 without TLS). */
static void want_tls(void)
{
#ifndef TS_LOAD_TLS
	fprintf(stderr,
		"ts-load: --tls: this ts-load was built without TLS "
		"(no GnuTLS >= 3.6.3 headers then: install libgnutls28-dev "
		"and build again, see bench/README.md)\n");
	exit(2);
#endif
	opt.tls = true;
}

/* --tls, --cafile and --insecure go together: one of the last two. */
static int check_tls(void)
{
	if (!opt.tls && (opt.cafile || opt.insecure)) {
		fprintf(stderr, "ts-load: --cafile and --insecure go with "
				"--tls\n");
		return -1;
	}
	if (opt.tls && !opt.cafile == !opt.insecure) {
		fprintf(stderr,
			"ts-load: --tls needs either --cafile FILE (the "
			"certificate to trust) or --insecure\n");
		return -1;
	}
	return 0;
}

/* What parse_args cannot check one option at a time; exits on a bad
 * combination. */
static void check_args(bool have_duration)
{
	if (opt.nconns == 0 || opt.port <= 0 || opt.port > 65535 ||
	    opt.url[0] != '/' || opt.max_pending == 0) {
		usage(stderr);
		exit(2);
	}
	if (set_address(opt.host, opt.port) != 0) {
		fprintf(stderr,
			"ts-load: %s: only loopback addresses "
			"(127.x.x.x, ::1) are allowed\n",
			opt.host);
		exit(2);
	}
	if (check_multi() != 0 || check_tls() != 0)
		exit(2);
	if (opt.exec_cmd && have_duration)
		fprintf(stderr,
			"ts-load: -x given: -d is ignored (the run ends "
			"-w s after the command)\n");
	if (opt.max_time <= 0) {
		double connect = opt.rate > 0 ? opt.nconns / opt.rate : 0;
		opt.max_time = connect + 60 + opt.wait +
			       (opt.exec_cmd ? 3600 : opt.duration);
	}
}

/* The command line into opt; exits on a bad one. */
static void parse_args(int argc, char **argv)
{
	enum {
		O_REPLAY = 256,
		O_TTFB,
		O_SEQMOD,
		O_MULTI,
		O_TLS,
		O_CAFILE,
		O_INSECURE
	};
	static const struct option lopts[] = {
		{ "replay-bytes", required_argument, NULL, O_REPLAY },
		{ "ttfb", no_argument, NULL, O_TTFB },
		{ "seq-mod", required_argument, NULL, O_SEQMOD },
		{ "multi", no_argument, NULL, O_MULTI },
		{ "tls", no_argument, NULL, O_TLS },
		{ "cafile", required_argument, NULL, O_CAFILE },
		{ "insecure", no_argument, NULL, O_INSECURE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	bool have_duration = false;
	while ((c = getopt_long(argc, argv, "H:p:n:u:d:w:e:r:P:x:R:T:vh", lopts,
				NULL)) != -1) {
		switch (c) {
		case 'H':
			opt.host = optarg;
			break;
		case 'p':
			opt.port = (int)parse_num(optarg, "port");
			break;
		case 'n':
			opt.nconns = (unsigned)parse_num(optarg, "-n");
			break;
		case 'u':
			opt.url = optarg;
			break;
		case 'd':
			opt.duration = parse_num(optarg, "-d");
			have_duration = true;
			break;
		case 'w':
			opt.wait = parse_num(optarg, "-w");
			break;
		case 'e':
			parse_expect(optarg);
			break;
		case 'r':
			opt.rate = parse_num(optarg, "-r");
			break;
		case 'P':
			opt.max_pending = (unsigned)parse_num(optarg, "-P");
			break;
		case 'x':
			opt.exec_cmd = optarg;
			break;
		case 'R':
			opt.ready_file = optarg;
			break;
		case 'T':
			opt.max_time = parse_num(optarg, "-T");
			break;
		case 'v':
			opt.verbose = true;
			break;
		case O_REPLAY:
			opt.replay_bytes =
				(uint64_t)parse_num(optarg, "--replay-bytes");
			break;
		case O_TTFB:
			opt.ttfb = true;
			break;
		case O_SEQMOD:
			opt.seq_mod = (uint64_t)parse_num(optarg, "--seq-mod");
			break;
		case O_MULTI:
			opt.multi = true;
			break;
		case O_TLS:
			want_tls();
			break;
		case O_CAFILE:
			opt.cafile = optarg;
			break;
		case O_INSECURE:
			opt.insecure = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind != argc) {
		usage(stderr);
		exit(2);
	}
	check_args(have_duration);
}

/* Every stream is up (or failed): say so, create -R, start -x.  The
 * deadline of the run, or 0 while the -x command runs. */
static int64_t on_ready(int64_t now)
{
	g.t_ready = now;
	fprintf(stderr, "ts-load: %u streams up, %u failed, in %.2f s\n", g.ok,
		g.failed, (double)(now - g.t0) / NS_PER_S);
	if (opt.ready_file) {
		FILE *f = fopen(opt.ready_file, "w");
		if (f) {
			fprintf(f, "%u %u\n", g.ok, g.failed);
			fclose(f);
		}
	}
	if (opt.exec_cmd && g.ok > 0)
		spawn(opt.exec_cmd);
	if (child > 0)
		return 0;
	return now + (int64_t)(((opt.exec_cmd ? 0 : opt.duration) + opt.wait) *
			       NS_PER_S);
}

/* After the run: stop the -x command, count what never came as lost, close
 * everything and print the result.  The exit status. */
static int finish(int child_status)
{
	if (stop_signal)
		fprintf(stderr, "ts-load: stopped by signal %d\n",
			(int)stop_signal);
	if (child > 0) {
		fprintf(stderr, "ts-load: stopping the -x command (pid %d)\n",
			(int)child);
		kill(child, SIGTERM);
		waitpid(child, NULL, 0);
	}
	if (child_status > 0)
		fprintf(stderr, "ts-load: the -x command exited with %d\n",
			child_status);

	/* lines never received at the end of each stream count as lost */
	for (unsigned i = 0; i < opt.nconns; i++) {
		struct conn *cn = &conns[i];
		if (opt.have_expect && cn->status == 200 && !cn->complete)
			g.lost += opt.multi ? merged_missing(cn)
					    : missing(cn, &cn->trk, opt.expect);
		if (CONN_TLS(cn))
			tls_end(cn);
		if (cn->fd >= 0)
			close(cn->fd);
	}
	print_result();
	free(conns);
	free(tracks);
	close(epfd);
	if (opt.tls)
		tls_cleanup();
	if (g.ok == 0 || child_status > 0)
		return 1;
	return 0;
}

/* Signals, limits, the connections and the epoll set; -1 on failure. */
static int setup(void)
{
	raise_nofile(opt.nconns);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	conns = calloc(opt.nconns, sizeof(*conns));
	if (opt.multi)
		tracks =
			calloc((size_t)opt.nconns * opt.nlogs, sizeof(*tracks));
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || (opt.multi && !tracks) || epfd < 0) {
		fprintf(stderr, "ts-load: %s\n", strerror(errno));
		return -1;
	}
	for (unsigned i = 0; i < opt.nconns; i++) {
		conns[i].fd = -1;
		conns[i].idx = i;
	}
	return 0;
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	if (opt.tls && tls_init() != 0)
		return 2;
	if (setup() != 0)
		return 1;

	struct epoll_event evs[MAX_EVENTS];
	g.t0 = now_ns();
	int64_t deadline = 0, hard = g.t0 + (int64_t)(opt.max_time * NS_PER_S);
	int64_t next_timeout_check = g.t0 + NS_PER_S,
		next_progress = g.t0 + 5 * NS_PER_S;
	int child_status = -1;
	bool ready = false;

	while (!stop_signal) {
		int64_t now = now_ns();
		/* start connections: rate limit and in-flight limit */
		while (g.started < opt.nconns && g.pending < opt.max_pending) {
			if (opt.rate > 0 &&
			    g.started >=
				    (double)(now - g.t0) / NS_PER_S * opt.rate +
					    1)
				break;
			conn_start(&conns[g.started], now);
		}
		if (!ready && g.started == opt.nconns && g.pending == 0) {
			ready = true;
			deadline = on_ready(now);
		}
		if (child > 0) {
			int st;
			if (waitpid(child, &st, WNOHANG) == child) {
				child_status = WIFEXITED(st) ? WEXITSTATUS(st)
							     : 128;
				child = -1;
				deadline = now + (int64_t)(opt.wait * NS_PER_S);
			}
		}
		if (ready && child <= 0) {
			if (now >= deadline)
				break;
			if (g.done == opt.nconns)
				break; /* every stream ended */
			if ((opt.have_expect || opt.replay_bytes || opt.ttfb) &&
			    g.finished >= opt.nconns)
				break;
		}
		if (now >= hard) {
			fprintf(stderr,
				"ts-load: hard time limit (-T %.0f s) "
				"reached\n",
				opt.max_time);
			break;
		}
		if (now >= next_timeout_check) {
			next_timeout_check = now + NS_PER_S;
			if (g.pending)
				check_timeouts(now);
		}
		if (opt.verbose && now >= next_progress) {
			next_progress = now + 5 * NS_PER_S;
			fprintf(stderr,
				"ts-load: %.0f s: %u up, %u failed, %" PRIu64
				" events, %u complete\n",
				(double)(now - g.t0) / NS_PER_S, g.ok, g.failed,
				g.events, g.complete);
		}
		int n = epoll_wait(epfd, evs, MAX_EVENTS, 20);
		for (int i = 0; i < n; i++) {
			struct conn *cn = evs[i].data.ptr;
			if (cn->fd < 0)
				continue; /* closed earlier in this batch */
			if (cn->state == C_CONNECTING)
				conn_writable(cn);
			else
				conn_readable(cn);
		}
	}
	g.t_end = now_ns();
	return finish(child_status);
}
