/* ts-hostile.c: hostile looping clients against a local tailsse, and a
 * /healthz prober that measures how long the server takes to answer
 * meanwhile.
 *
 * K clients, each over its own connection, loop: connect, GET one of the
 * --path's (assigned round-robin), read the response until the loop's end
 * condition, close, start again at once.  A loop ends at the first of:
 *
 *   --first-event       the first data: line (time to first event: what a
 *                       client that reconnects over and over makes the
 *                       server do)
 *   --bytes N           N bytes of SSE body (default 1 MiB)
 *   --until-offset N    an id: whose offset is >= N.  A filter that matches
 *                       nothing never sends a data: line, but the server's
 *                       progress ids reach the end of the file: the only
 *                       sign that it scanned it all.
 *   --loop-timeout MS   counted as a timeout, not as a loop
 *
 * Meanwhile a prober sends GET /healthz every --probe-ms on a fresh
 * connection, on schedule even when earlier probes are still waiting (a
 * stalled server must not lower the number of samples), and records each
 * full round trip.  A probe unanswered after --probe-timeout counts as
 * failed and goes into the histogram at that age, so a stall cannot hide
 * from the p99 by never ending.
 *
 * With --malformed the K clients loop instead over a catalogue of bad
 * requests (bad request lines and methods, bad percent-encoding, NULs,
 * invalid ids and cursors, pathological regexes on the --big log, huge
 * tail=, header floods, oversized URLs), taken in turn: each answer must be
 * a 4xx (counted "clean" with a one-line text/plain body, else "other"), a
 * closed connection, a 200 for the requests that are valid (a pathological
 * regex is a valid one: the daemon bounds its cost), or the 503 with
 * Retry-After of max_clients; never another 5xx, never a 200 for a
 * malformed request, never no answer within --loop-timeout (a hang; a
 * valid costly one unanswered in time is only counted as slow).
 * --half-open N keeps N connections open throughout that send nothing,
 * half a request head, or a head of the size that libmicrohttpd leaves
 * unanswered (see half_open_all), in turn.
 *
 * One thread, nonblocking sockets, epoll.  Loopback addresses only.  Stops
 * by itself after --duration (plus at most --probe-timeout for the last
 * probes).  Output: one "HOSTILE key=value ..." line on stdout, a summary
 * on stderr.
 *
 * Build: gcc -std=gnu11 -O2 -Wall -Wextra -D_GNU_SOURCE ts-hostile.c -o ts-hostile -lm
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S 1000000000LL
#define NS_PER_MS 1000000LL
/* Bytes kept of a header or SSE line: enough for a status line, the
 * headers looked at and an "id: INODE:OFFSET"; the rest is skipped. */
#define LINE_CAP 128
#define RBUF_SIZE (256 * 1024)
#define READS_PER_WAKE 4
#define MAX_EVENTS 256
#define MAX_PATHS 16
#define MAX_CLIENTS 1024
/* Probes waiting at once: --probe-timeout / --probe-ms at most, bounded. */
#define MAX_PROBES 512
/* After a failed loop (refused, reset, error status), wait this long
 * before the next: a dead server must not turn the client into a spin. */
#define ERROR_BACKOFF_NS (10 * NS_PER_MS)

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* ---- log-linear histogram of nanoseconds (as in ts-load): 32 buckets per
 * power of two from 2^10 ns to 2^37 ns, about 3% resolution ---- */

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

static void hist_add(struct hist *h, int64_t ns)
{
	uint64_t v = ns > 0 ? (uint64_t)ns : 0;
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

static double hist_max_ms(const struct hist *h)
{
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
	unsigned clients;
	const char *paths[MAX_PATHS];
	unsigned npaths;
	double duration;
	bool first_event;
	uint64_t bytes;
	uint64_t until_offset; /* 0: not used */
	int64_t loop_timeout_ns;
	int64_t probe_ns; /* 0: no prober */
	int64_t probe_timeout_ns;
	bool malformed;
	unsigned half_open;
	const char *log; /* a log of the daemon (--malformed) */
	const char *big; /* a big log for the costly ones */
} opt = {
	.log = "live",
	.big = "big",
	.host = "127.0.0.1",
	.port = 8080,
	.clients = 16,
	.duration = 10,
	.bytes = 1 << 20,
	.loop_timeout_ns = 5000 * NS_PER_MS,
	.probe_ns = 20 * NS_PER_MS,
	.probe_timeout_ns = 2000 * NS_PER_MS,
};

struct path_stats {
	uint64_t loops, timeouts, errors;
	struct hist loop; /* connect to the end condition */
	struct hist ttfe; /* connect to the first data: line */
};

static struct {
	struct path_stats path[MAX_PATHS];
	uint64_t loops, timeouts, errors, unfinished;
	uint64_t probes, probes_ok, probes_failed, probes_skipped;
	int http_error; /* first non-200 status of a hostile loop */
	/* --malformed: answers by class, and the first bad one's words */
	uint64_t m_clean, m_other4xx, m_closed, m_ok, m_503, m_5xx, m_accepted,
		m_hang, m_slow;
	char m_bad[256], m_other_example[256];
	unsigned half_up, half_closed;
	int probe_http_error;
	struct hist ttfe, loop, healthz;
	int64_t t0, t_end;
} g;

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

/* ---- connections ---- */

enum kind { K_HOSTILE, K_PROBE, K_MALFORMED, K_HALF };
enum state { S_IDLE, S_CONNECTING, S_HEADERS, S_BODY };
enum chstate { CH_SIZE, CH_EXT, CH_DATA, CH_DATA_END, CH_END };
enum outcome { O_DONE, O_TIMEOUT, O_ERROR, O_UNFINISHED };

struct conn {
	/* kept from one loop to the next */
	int fd;
	uint8_t kind;
	unsigned path;
	int64_t t_wake; /* S_IDLE hostile: when to reconnect */
	/* reset by conn_open, from here on */
	uint8_t state, ch;
	bool chunked, has_length, got_event;
	uint16_t status;
	uint16_t llen;
	uint64_t body_left;  /* chunk or Content-Length bytes left */
	uint64_t body_bytes; /* decoded body bytes */
	int64_t t_start;
	char line[LINE_CAP];
	/* K_MALFORMED */
	const struct bad_req *req;
	size_t out_off;
	bool plain, retry_after, body_done;
	uint16_t blen;
	char body[160];
};

static struct conn *hostile;
static struct conn probes[MAX_PROBES];
static const struct bad_req *next_request(void);
static int epfd = -1;

static bool conn_open(struct conn *c, int64_t now)
{
	memset(&c->state, 0, sizeof(*c) - offsetof(struct conn, state));
	c->t_start = now;
	if (c->kind == K_MALFORMED)
		c->req = next_request();
	c->fd = socket(opt.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0);
	if (c->fd < 0)
		return false;
	if (c->kind != K_PROBE) {
		/* The hostile side closes first, hundreds of times a second:
		 * a reset leaves no TIME_WAIT to use up the ephemeral ports. */
		struct linger lg = { 1, 0 };
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	if (connect(c->fd, (struct sockaddr *)&opt.addr, opt.addrlen) != 0 &&
	    errno != EINPROGRESS)
		goto fail;
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
		goto fail;
	c->state = S_CONNECTING;
	return true;
fail:
	close(c->fd);
	c->fd = -1;
	return false;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd); /* also leaves the epoll set */
	c->fd = -1;
	c->state = S_IDLE;
}

/* The end of one hostile loop: count it, close, and reconnect after the
 * event batch (never inside it: a later event of the same batch would
 * otherwise reach the new connection). */
static void hostile_end(struct conn *c, enum outcome o, int64_t now)
{
	struct path_stats *ps = &g.path[c->path];
	switch (o) {
	case O_DONE:
		g.loops++;
		ps->loops++;
		hist_add(&g.loop, now - c->t_start);
		hist_add(&ps->loop, now - c->t_start);
		break;
	case O_TIMEOUT:
		g.timeouts++;
		ps->timeouts++;
		break;
	case O_ERROR:
		g.errors++;
		ps->errors++;
		break;
	case O_UNFINISHED:
		g.unfinished++;
		break;
	}
	conn_close(c);
	c->t_wake = o == O_ERROR ? now + ERROR_BACKOFF_NS : now;
}

/* The end of one probe.  Timeouts go into the histogram at their age. */
static void probe_end(struct conn *c, enum outcome o, int64_t now)
{
	if (o == O_DONE && c->status == 200) {
		g.probes_ok++;
		hist_add(&g.healthz, now - c->t_start);
	} else if (o != O_UNFINISHED) {
		g.probes_failed++;
		if (o == O_DONE && !g.probe_http_error)
			g.probe_http_error = c->status;
		if (o == O_TIMEOUT)
			hist_add(&g.healthz, now - c->t_start);
	}
	conn_close(c);
}

static void conn_end(struct conn *c, enum outcome o, int64_t now)
{
	if (c->kind != K_PROBE)
		hostile_end(c, o, now);
	else
		probe_end(c, o, now);
}

/* ---- --malformed: the catalogue of bad requests ---- */

enum expect {
	X_4XX, /* a 4xx or a closed connection: the request is malformed */
	X_ANY, /* anything but a 5xx (a valid request, maybe a costly one) */
	X_VERSION, /* as X_4XX, or 505: the protocol's answer to a version */
};

struct bad_req {
	const char *name;
	uint8_t expect;
	char *data;
	size_t len;
	uint64_t sent;
	unsigned seen; /* classes answered: bit per enum answer */
};

enum answer {
	A_CLEAN,
	A_OTHER4XX,
	A_CLOSED,
	A_OK,
	A_503,
	A_5XX,
	A_ACCEPTED,
	A_HANG,
	A_SLOW,
	A_N
};
static const char answer_letter[A_N] = "c4xo3XAHs";

#define MAX_BAD 96
static struct bad_req bad[MAX_BAD];
static unsigned nbad, next_bad;

static void add_bad(const char *name, enum expect x, const char *data,
		    size_t len)
{
	if (nbad == MAX_BAD) {
		fprintf(stderr, "ts-hostile: MAX_BAD too small\n");
		exit(2);
	}
	struct bad_req *b = &bad[nbad++];
	b->name = name;
	b->expect = (uint8_t)x;
	b->data = malloc(len);
	if (!b->data) {
		perror("ts-hostile");
		exit(1);
	}
	memcpy(b->data, data, len);
	b->len = len;
}

/* A GET of target with the usual head and `extra` header lines (each
 * ending in CRLF). */
static void add_get(const char *name, enum expect x, const char *target,
		    const char *extra)
{
	size_t n = strlen(target) + strlen(extra) + 128;
	char *p = malloc(n);
	if (!p) {
		perror("ts-hostile");
		exit(1);
	}
	int len = snprintf(p, n,
			   "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			   "User-Agent: ts-hostile\r\n%s\r\n",
			   target, extra);
	add_bad(name, x, p, (size_t)len);
	free(p);
}

#define ADD_RAW(name, x, lit) add_bad(name, x, lit, sizeof(lit) - 1)

/* "PREFIX" + n bytes of c + "SUFFIX", as a new string */
static char *repeat(const char *prefix, char c, size_t n, const char *suffix)
{
	size_t a = strlen(prefix), b = strlen(suffix);
	char *p = malloc(a + n + b + 1);
	if (!p) {
		perror("ts-hostile");
		exit(1);
	}
	memcpy(p, prefix, a);
	memset(p + a, c, n);
	memcpy(p + a + n, suffix, b + 1);
	return p;
}

static void build_catalogue(void)
{
	char t[1024];
	const char *L = opt.log, *B = opt.big;
	/* request lines */
	ADD_RAW("garbage line", X_4XX, "GARBAGE\r\n\r\n");
	ADD_RAW("method only", X_4XX, "GET\r\n\r\n");
	ADD_RAW("no version", X_4XX, "GET /healthz\r\n\r\n");
	ADD_RAW("HTTP/9.9", X_VERSION,
		"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n");
	/* (libmicrohttpd requires Host only in its strict mode) */
	ADD_RAW("HTTP/1.1 no Host", X_ANY, "GET /healthz HTTP/1.1\r\n\r\n");
	ADD_RAW("bare LFs", X_ANY, "GET /healthz HTTP/1.1\nHost: x\n\n");
	ADD_RAW("header without colon", X_4XX,
		"GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n");
	ADD_RAW("folded first header", X_ANY,
		"GET /healthz HTTP/1.1\r\n Host: x\r\n\r\n");
	ADD_RAW("NUL in request line", X_4XX,
		"GET /heal\0thz HTTP/1.1\r\nHost: x\r\n\r\n");
	ADD_RAW("NUL in header", X_ANY,
		"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n");
	ADD_RAW("control char in method", X_4XX,
		"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n");
	/* methods */
	ADD_RAW("POST with body", X_4XX,
		"POST /api/logs HTTP/1.1\r\nHost: x\r\n"
		"Content-Length: 5\r\n\r\nhello");
	ADD_RAW("PUT, body never sent", X_4XX,
		"PUT / HTTP/1.1\r\nHost: x\r\n"
		"Content-Length: 1000000\r\n\r\n");
	ADD_RAW("DELETE", X_4XX,
		"DELETE /api/logs HTTP/1.1\r\nHost: x\r\n\r\n");
	ADD_RAW("TRACE", X_4XX, "TRACE / HTTP/1.1\r\nHost: x\r\n\r\n");
	ADD_RAW("CONNECT", X_4XX,
		"CONNECT 127.0.0.1:22 HTTP/1.1\r\n"
		"Host: 127.0.0.1:22\r\n\r\n");
	ADD_RAW("OPTIONS *", X_4XX, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
	/* answered at its head, before the body is read: then closed */
	ADD_RAW("GET with a chunked body", X_ANY,
		"GET /healthz HTTP/1.1\r\n"
		"Host: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n");
	ADD_RAW("Content-Length -1", X_4XX,
		"GET /healthz HTTP/1.1\r\nHost: x\r\n"
		"Content-Length: -1\r\n\r\n");
	/* percent-encoding, NULs */
	snprintf(t, sizeof(t), "/api/logs/%s/events?grep=%%zz", L);
	add_get("grep=%zz", X_ANY, t, "");
	snprintf(t, sizeof(t), "/api/logs/%s/events?grep=%%", L);
	add_get("grep=%", X_ANY, t, "");
	add_get("log name %ZZ", X_4XX, "/api/logs/%ZZ/events", "");
	/* served as "/": libmicrohttpd hands the handler the decoded URL as a
	 * C string, cut at the NUL (a finding, reported; within www/) */
	add_get("path %00", X_ANY, "/%00", "");
	add_get("path %2e%2e", X_4XX, "/%2e%2e/%2e%2e/etc/passwd", "");
	snprintf(t, sizeof(t), "/api/logs/%s/events?tail=%%00", L);
	add_get("tail=%00", X_4XX, t, "");
	snprintf(t, sizeof(t), "/api/logs/%s/events?grep=a%%00b&tail=0", L);
	add_get("grep with %00", X_ANY, t, "");
	/* ids, cursors, parameters */
	static const char *const bad_ids[] = {
		"abc",
		"1:2:3",
		"-1:5",
		"99999999999999999999999:1",
		"1:99999999999999999999",
		":",
		"1:",
		":1",
		"0x10:1",
		"1%3A2%00",
	};
	static const char *const id_names[] = {
		"id abc",	  "id 1:2:3",	 "id -1:5", "id huge inode",
		"id huge offset", "id :",	 "id 1:",   "id :1",
		"id 0x10:1",	  "id with NUL",
	};
	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(*bad_ids); i++) {
		snprintf(t, sizeof(t), "/api/logs/%s/events?lastEventId=%s", L,
			 bad_ids[i]);
		add_get(id_names[i], X_4XX, t, "");
	}
	snprintf(t, sizeof(t), "/api/logs/%s/events", L);
	add_get("Last-Event-ID ::::", X_4XX, t, "Last-Event-ID: ::::\r\n");
	add_get("Last-Event-ID 1:2,3", X_4XX, t, "Last-Event-ID: 1:2,3\r\n");
	snprintf(t, sizeof(t),
		 "/api/events?log=%s&log=%s&lastEventId=%s%%3D1%%3A2%%2Czz", L,
		 B, L);
	add_get("cursor a=1:2,zz", X_4XX, t, "");
	snprintf(t, sizeof(t), "/api/events?log=%s&lastEventId=%s%%3D1%%3Ax", L,
		 L);
	add_get("cursor a=1:x", X_4XX, t, "");
	add_get("log= empty", X_4XX, "/api/events?log=", "");
	snprintf(t, sizeof(t), "/api/events?log=%s&log=%s", L, L);
	add_get("log twice", X_4XX, t, "");
	{
		char many[33 * 16 + 32] = "/api/events?";
		size_t n = strlen(many);
		for (int i = 0; i < 33; i++)
			n += (size_t)snprintf(many + n, sizeof(many) - n,
					      "%slog=l%d", i ? "&" : "", i);
		add_get("33 logs", X_4XX, many, "");
	}
	static const char *const tails[] = {
		"-1", "99999999999999999999999", "1e9", "", "1&tail=2", "0x10"
	};
	static const char *const tail_names[] = { "tail=-1",	"tail=huge",
						  "tail=1e9",	"tail= empty",
						  "tail twice", "tail=0x10" };
	for (size_t i = 0; i < sizeof(tails) / sizeof(*tails); i++) {
		snprintf(t, sizeof(t), "/api/logs/%s/events?tail=%s", L,
			 tails[i]);
		add_get(tail_names[i], X_4XX, t, "");
	}
	snprintf(t, sizeof(t), "/api/logs/%s/events?icase=2&icase=1", L);
	add_get("icase twice", X_4XX, t, "");
	snprintf(t, sizeof(t), "/api/logs/%s/events?format=xml", L);
	add_get("format=xml", X_4XX, t, "");
	snprintf(t, sizeof(t), "/api/logs/%s/lines?before=abc", L);
	add_get("lines before=abc", X_4XX, t, "");
	snprintf(t, sizeof(t), "/api/logs/%s/lines?before=1:0&n=10001", L);
	add_get("lines n=10001", X_4XX, t, "");
	add_get("unknown log", X_4XX, "/api/logs/nope/events", "");
	add_get("unknown API", X_4XX, "/api/nope", "");
	/* regexes: bad ones, and pathological ones over the big log's
	 * tail (valid requests: the daemon bounds what they cost) */
	snprintf(t, sizeof(t), "/api/logs/%s/events?grep=(", L);
	add_get("grep=(", X_4XX, t, "");
	snprintf(t, sizeof(t), "/api/logs/%s/events?grep=a%%7B99999%%7D", L);
	add_get("grep=a{99999}", X_4XX, t, "");
	static const char *const pats[] = {
		"(a%2B)%2B%24",	  "(%3F%3Aa%7Ca)*b",
		"(x%2Bx%2B)%2By", "(.*a)%7B20%7Dx",
		"%5Cw*%5Cw*x",	  "(%3F%3A%5Cw%7C%5Cw%5Cw)%2Bx",
		"(%3FR)",
	};
	static const char *const pat_names[] = {
		"(a+)+$ tail=1000000",	  "(?:a|a)*b tail=1000000",
		"(x+x+)+y tail=1000000",  "(.*a){20}x tail=1000000",
		"\\w*\\w*x tail=1000000", "(?:\\w|\\w\\w)+x tail=1000000",
		"(?R) tail=1000000",
	};
	for (size_t i = 0; i < sizeof(pats) / sizeof(*pats); i++) {
		snprintf(t, sizeof(t),
			 "/api/logs/%s/events?tail=1000000&grep=%s", B,
			 pats[i]);
		add_get(pat_names[i], X_ANY, t, "");
	}
	snprintf(t, sizeof(t),
		 "/api/events?log=%s&log=%s&tail=1000000&grep="
		 "(a%%2B)%%2B%%24&icase=1&format=json",
		 B, L);
	add_get("merged (a+)+$ icase json", X_ANY, t, "");
	{
		/* 1500 nested groups: PCRE2's nesting limit (250); a
		 * request head that fits conn_memory's default (see
		 * half_open_all for one that does not quite) */
		char *p = repeat("/api/logs/", '(', 1500, "");
		char *q = malloc(strlen(p) + 1500 + 64);
		if (!q) {
			perror("ts-hostile");
			exit(1);
		}
		sprintf(q, "%s", "/api/logs/");
		strcat(q, L);
		strcat(q, "/events?grep=");
		strcat(q, p + strlen("/api/logs/"));
		size_t n = strlen(q);
		memset(q + n, ')', 1500);
		q[n + 1500] = '\0';
		add_get("grep 1500 nested groups", X_4XX, q, "");
		free(p);
		free(q);
	}
	/* header floods, oversized URLs */
	{
		size_t n = 5000, len = 0;
		char *h = malloc(n * 32);
		if (!h) {
			perror("ts-hostile");
			exit(1);
		}
		for (size_t i = 0; i < n; i++)
			len += (size_t)sprintf(h + len, "X-Flood-%zu: v\r\n",
					       i);
		add_get("5000 headers", X_4XX, "/healthz", h);
		/* 40 short lines fit conn_memory's default (README) */
		h[40 * 14] = '\0';
		char *e = strrchr(h, '\n');
		if (e)
			e[1] = '\0';
		add_get("40 headers", X_ANY, "/healthz", h);
		free(h);
	}
	{
		char *h = repeat("X-Huge: ", 'a', 100000, "\r\n");
		add_get("one 100 KB header", X_4XX, "/healthz", h);
		free(h);
		h = repeat("Cookie: tailsse_token=", '%', 60000, "\r\n");
		add_get("60 KB cookie of %", X_4XX, "/api/logs", h);
		free(h);
		h = repeat("Authorization: Bearer ", 'b', 20000, "\r\n");
		add_get("20 KB bearer token", X_4XX, "/api/logs", h);
		free(h);
	}
	{
		char *u = repeat("/", 'a', 100000, "");
		add_get("100 KB URL", X_4XX, u, "");
		free(u);
		snprintf(t, sizeof(t), "/api/logs/%s/events?grep=", L);
		u = repeat(t, 'a', 60000, "");
		add_get("60 KB grep", X_4XX, u, "");
		free(u);
		u = repeat(t, 'b', 3000, "&tail=0");
		add_get("3 KB grep", X_ANY, u, "");
		free(u);
	}
}

/* The next request of the catalogue, in turn. */
static const struct bad_req *next_request(void)
{
	const struct bad_req *b = &bad[next_bad];
	next_bad = (next_bad + 1) % nbad;
	return b;
}

static void malformed_count(struct conn *c, enum answer a, int64_t now)
{
	struct bad_req *b = (struct bad_req *)c->req;
	uint64_t *ctr[A_N] = { &g.m_clean,    &g.m_other4xx, &g.m_closed,
			       &g.m_ok,	      &g.m_503,	     &g.m_5xx,
			       &g.m_accepted, &g.m_hang,     &g.m_slow };
	(*ctr[a])++;
	b->seen |= 1u << a;
	bool badness = a == A_5XX || a == A_ACCEPTED || a == A_HANG;
	if (badness && !g.m_bad[0])
		snprintf(g.m_bad, sizeof(g.m_bad), "%s: %s (HTTP %u)", b->name,
			 a == A_HANG  ? "no answer"
			 : a == A_5XX ? "a 5xx"
				      : "accepted",
			 c->status);
	if (a == A_OTHER4XX && !g.m_other_example[0]) {
		char shown[64];
		size_t n = c->blen < sizeof(shown) - 1 ? c->blen
						       : sizeof(shown) - 1;
		for (size_t i = 0; i < n; i++)
			shown[i] = c->body[i] >= ' ' && c->body[i] < 127
					   ? c->body[i]
					   : '.';
		shown[n] = '\0';
		snprintf(g.m_other_example, sizeof(g.m_other_example),
			 "%s: HTTP %u, %s, body \"%s\"", b->name, c->status,
			 c->plain ? "text/plain" : "not text/plain", shown);
	}
	hostile_end(c, badness ? O_ERROR : O_DONE, now);
}

/* A whole 4xx error: a clean one is text/plain, one non-empty line. */
static void malformed_4xx_done(struct conn *c, int64_t now)
{
	bool one_line = c->blen > 1 && c->blen < sizeof(c->body) &&
			c->body[c->blen - 1] == '\n' &&
			memchr(c->body, '\n', c->blen) ==
				c->body + c->blen - 1 &&
			!memchr(c->body, '\r', c->blen);
	malformed_count(c, c->plain && one_line ? A_CLEAN : A_OTHER4XX, now);
}

/* The head of an answer to a bad request. */
static void malformed_head(struct conn *c, int64_t now)
{
	unsigned st = c->status;
	if (st == 505 && c->req->expect == X_VERSION) {
		malformed_count(c, A_CLEAN, now);
	} else if (st >= 500) {
		malformed_count(c, st == 503 && c->retry_after ? A_503 : A_5XX,
				now);
	} else if (st >= 400 && st < 500) {
		if (c->has_length && c->body_left == 0)
			malformed_4xx_done(c, now);
		/* else: its body, to the length or the close */
	} else {
		malformed_count(c, c->req->expect == X_4XX ? A_ACCEPTED : A_OK,
				now);
	}
}

static void malformed_body(struct conn *c, const char *p, size_t n, int64_t now)
{
	size_t room = sizeof(c->body) - c->blen;
	size_t k = n < room ? n : room;
	memcpy(c->body + c->blen, p, k);
	c->blen = (uint16_t)(c->blen + k);
	if (c->blen == sizeof(c->body)) {
		malformed_count(c, A_OTHER4XX, now); /* too long for a line */
		return;
	}
	if (c->has_length) {
		if (n >= c->body_left)
			malformed_4xx_done(c, now);
		else
			c->body_left -= n;
	}
}

/* Send what is left of the request; true once it is all sent. */
static bool malformed_send(struct conn *c, int64_t now)
{
	while (c->out_off < c->req->len) {
		ssize_t w = send(c->fd, c->req->data + c->out_off,
				 c->req->len - c->out_off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return false;
		if (w < 0) {
			/* closed by the server before the whole request: an
			 * answer may already be there to read */
			c->out_off = c->req->len;
			(void)now;
			return true;
		}
		c->out_off += (size_t)w;
	}
	return true;
}

/* The server closed (or reset) the connection of a bad request. */
static void malformed_closed(struct conn *c, int64_t now)
{
	if (c->status < 400 || c->status >= 500 || c->state != S_BODY)
		malformed_count(c, A_CLOSED, now);
	else if (!c->has_length)
		malformed_4xx_done(c, now);
	else
		malformed_count(c, A_OTHER4XX, now); /* cut short */
}

/* No answer within --loop-timeout: a hang, unless an error's body is
 * still coming, or the request is a valid one (then it is "slow": a
 * costly start waiting its turn behind the others of the same kind). */
static void malformed_timeout(struct conn *c, int64_t now)
{
	malformed_count(c,
			c->status		  ? A_OTHER4XX
			: c->req->expect == X_ANY ? A_SLOW
						  : A_HANG,
			now);
}

/* ---- --half-open ---- */

static struct conn *half;

static void half_open_all(void)
{
	static const char part[] =
		"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		"X-Half: ";
	/* A head that ends just at the daemon's default conn_memory (6144):
	 * libmicrohttpd 0.9.75 neither answers it (414/431, as a few bytes
	 * more or less get) nor reads on: it waits like a half-open one. */
	char fill[6200];
	char *bs = repeat("", 'b', 6000, "");
	int fill_len = snprintf(fill, sizeof(fill),
				"GET /api/logs/%s/events?"
				"grep=%s&tail=0 HTTP/1.1\r\nHost: x\r\n\r\n",
				opt.log, bs);
	free(bs);
	half = calloc(opt.half_open ? opt.half_open : 1, sizeof(*half));
	if (!half) {
		perror("ts-hostile");
		exit(1);
	}
	for (unsigned i = 0; i < opt.half_open; i++) {
		struct conn *c = &half[i];
		c->kind = K_HALF;
		c->fd = socket(opt.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&opt.addr,
					 opt.addrlen) != 0) {
			if (c->fd >= 0)
				close(c->fd);
			c->fd = -1;
			continue;
		}
		if (i % 3 == 1)
			(void)send(c->fd, part, sizeof(part) - 1, MSG_NOSIGNAL);
		else if (i % 3 == 2)
			(void)send(c->fd, fill, fill_len, MSG_NOSIGNAL);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP,
					  .data.ptr = c };
		epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
		c->state = S_HEADERS;
		g.half_up++;
	}
}

/* The server answered or closed a half-open connection. */
static void half_readable(struct conn *c)
{
	char buf[4096];
	ssize_t r = read(c->fd, buf, sizeof(buf));
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		g.half_closed++;
		close(c->fd);
		c->fd = -1;
		c->state = S_IDLE;
	}
}

static int build_request(const struct conn *c, char *buf, size_t cap)
{
	const char *host = opt.family == AF_INET6 ? "[::1]" : opt.host;
	int n;
	if (c->kind == K_PROBE)
		n = snprintf(
			buf, cap,
			"GET /healthz HTTP/1.1\r\nHost: %s:%d\r\n"
			"User-Agent: ts-hostile\r\nConnection: close\r\n\r\n",
			host, opt.port);
	else
		n = snprintf(buf, cap,
			     "GET %s HTTP/1.1\r\nHost: %s:%d\r\n"
			     "Accept: text/event-stream\r\n"
			     "User-Agent: ts-hostile\r\n\r\n",
			     opt.paths[c->path], host, opt.port);
	return n > 0 && (size_t)n < cap ? n : -1;
}

static void conn_writable(struct conn *c, int64_t now)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err) {
		conn_end(c, O_ERROR, now);
		return;
	}
	if (c->kind == K_MALFORMED) {
		bool all = malformed_send(c, now);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP |
						    (all ? 0 : EPOLLOUT),
					  .data.ptr = c };
		if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
			conn_end(c, O_ERROR, now);
			return;
		}
		c->state = S_HEADERS;
		return;
	}
	char req[2200];
	int n = build_request(c, req, sizeof(req));
	if (n < 0 || send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		conn_end(c, O_ERROR, now);
		return;
	}
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP,
				  .data.ptr = c };
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
		conn_end(c, O_ERROR, now);
		return;
	}
	c->state = S_HEADERS;
}

/* ---- responses ---- */

static bool parse_u64(const char *p, const char *end, uint64_t *v)
{
	uint64_t x = 0;
	const char *s = p;
	while (p < end && *p >= '0' && *p <= '9' && p - s < 20)
		x = x * 10 + (uint64_t)(*p++ - '0');
	*v = x;
	return p > s;
}

static void header_line(struct conn *c, const char *l, size_t n)
{
	if (c->status == 0) {
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
	const char *v = colon + 1, *end = l + n;
	while (v < end && *v == ' ')
		v++;
	if (flen == 12 && strncasecmp(l, "content-type", 12) == 0)
		c->plain = end - v >= 10 &&
			   strncasecmp(v, "text/plain", 10) == 0;
	else if (flen == 11 && strncasecmp(l, "retry-after", 11) == 0)
		c->retry_after = true;
	else if (flen == 17 && strncasecmp(l, "transfer-encoding", 17) == 0)
		c->chunked = memmem(v, (size_t)(end - v), "chunked", 7) != NULL;
	else if (flen == 14 && strncasecmp(l, "content-length", 14) == 0)
		c->has_length = parse_u64(v, end, &c->body_left);
}

/* The headers ended: a hostile loop that is not a 200 failed; a probe goes
 * on reading its body (or ends now when it has none). */
static void headers_done(struct conn *c, int64_t now)
{
	c->state = S_BODY;
	c->llen = 0;
	if (c->kind == K_MALFORMED) {
		malformed_head(c, now);
		return;
	}
	if (c->kind == K_HOSTILE && c->status != 200) {
		if (!g.http_error)
			g.http_error = c->status;
		conn_end(c, O_ERROR, now);
		return;
	}
	if (c->chunked) {
		c->ch = CH_SIZE;
		c->body_left = 0;
	} else if (!c->has_length) {
		c->body_left = UINT64_MAX; /* until the server closes */
	} else if (c->body_left == 0) {
		conn_end(c, O_DONE, now);
	}
}

/* One complete SSE line of a hostile loop (maybe cut at LINE_CAP). */
static void sse_line(struct conn *c, const char *l, size_t n, int64_t now)
{
	if (n >= 5 && memcmp(l, "data:", 5) == 0) {
		if (!c->got_event) {
			c->got_event = true;
			hist_add(&g.ttfe, now - c->t_start);
			hist_add(&g.path[c->path].ttfe, now - c->t_start);
		}
		if (opt.first_event)
			conn_end(c, O_DONE, now);
	} else if (opt.until_offset && n >= 3 && memcmp(l, "id:", 3) == 0) {
		/* INODE:OFFSET or OFFSET: the offset is the last number */
		const char *p = memrchr(l, ':', n);
		uint64_t off;
		if (p && parse_u64(p + 1, l + n, &off) &&
		    off >= opt.until_offset)
			conn_end(c, O_DONE, now);
	}
}

/* Decoded SSE bytes of a hostile loop: split into lines, keeping only the
 * first LINE_CAP bytes of each. */
static void sse_feed(struct conn *c, const char *p, size_t n, int64_t now)
{
	c->body_bytes += n;
	while (n > 0 && c->fd >= 0) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;
		size_t room = LINE_CAP - c->llen;
		size_t cp = take < room ? take : room;
		memcpy(c->line + c->llen, p, cp);
		c->llen = (uint16_t)(c->llen + cp);
		if (!nl)
			break;
		sse_line(c, c->line, c->llen, now);
		c->llen = 0;
		p = nl + 1;
		n -= take + 1;
	}
	if (c->fd >= 0 && c->body_bytes >= opt.bytes)
		conn_end(c, O_DONE, now);
}

/* Body bytes of a probe: it is done once Content-Length bytes came. */
static void probe_body(struct conn *c, size_t n, int64_t now)
{
	if (!c->has_length)
		return; /* until the server closes (Connection: close) */
	if (n >= c->body_left)
		conn_end(c, O_DONE, now);
	else
		c->body_left -= n;
}

/* One step of the chunked decoder; returns the bytes used. */
static size_t chunk_step(struct conn *c, const char *p, size_t n, int64_t now)
{
	char ch = *p;
	switch (c->ch) {
	case CH_SIZE:
		if (ch >= '0' && ch <= '9')
			c->body_left = c->body_left * 16 + (uint64_t)(ch - '0');
		else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
			c->body_left = c->body_left * 16 +
				       (uint64_t)((ch | 0x20) - 'a' + 10);
		else if (ch == '\n')
			c->ch = c->body_left ? CH_DATA : CH_END;
		else
			c->ch = CH_EXT; /* ';' extension or '\r' */
		return 1;
	case CH_EXT:
		if (ch == '\n')
			c->ch = c->body_left ? CH_DATA : CH_END;
		return 1;
	case CH_DATA: {
		size_t k = n < c->body_left ? n : (size_t)c->body_left;
		c->body_left -= k;
		if (c->body_left == 0)
			c->ch = CH_DATA_END;
		sse_feed(c, p, k, now);
		return k;
	}
	case CH_DATA_END: /* the CRLF after the data */
		if (ch == '\n') {
			c->ch = CH_SIZE;
			c->body_left = 0;
		}
		return 1;
	case CH_END:
		break;
	}
	return n;
}

static void body_feed(struct conn *c, const char *p, size_t n, int64_t now)
{
	if (c->kind == K_PROBE) {
		probe_body(c, n, now);
		return;
	}
	if (c->kind == K_MALFORMED) {
		malformed_body(c, p, n, now);
		return;
	}
	if (!c->chunked) {
		sse_feed(c, p, n, now);
		return;
	}
	while (n > 0 && c->fd >= 0) {
		size_t k = chunk_step(c, p, n, now);
		p += k;
		n -= k;
		if (c->ch == CH_END && c->fd >= 0) {
			conn_end(c, O_ERROR, now); /* the server ended it */
			return;
		}
	}
}

static void bytes_in(struct conn *c, const char *p, size_t n, int64_t now)
{
	while (n > 0 && c->state == S_HEADERS) {
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
	if (n > 0 && c->state == S_BODY && c->fd >= 0)
		body_feed(c, p, n, now);
}

static char rbuf[RBUF_SIZE];

static void conn_readable(struct conn *c)
{
	for (int i = 0; i < READS_PER_WAKE && c->fd >= 0; i++) {
		ssize_t r = read(c->fd, rbuf, sizeof(rbuf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		int64_t now = now_ns();
		if (r <= 0) {
			/* a probe's body without length ends here; anything
			 * else closed before its end condition failed */
			bool done = c->kind == K_PROBE && r == 0 &&
				    c->state == S_BODY;
			if (c->kind == K_MALFORMED)
				malformed_closed(c, now);
			else
				conn_end(c, done ? O_DONE : O_ERROR, now);
			return;
		}
		bytes_in(c, rbuf, (size_t)r, now);
		if ((size_t)r < sizeof(rbuf))
			return; /* drained: level-triggered epoll tells again */
	}
}

/* ---- timers ---- */

/* Reconnects idle hostile clients, ends loops and probes past their time
 * limit, and sends the probes due.  Returns the ms until the next probe is
 * due (for epoll_wait), at most 10 ms so that limits are checked often. */
static int timers(int64_t now, int64_t *next_probe, bool running)
{
	for (unsigned i = 0; i < opt.clients; i++) {
		struct conn *c = &hostile[i];
		if (c->state != S_IDLE &&
		    now - c->t_start > opt.loop_timeout_ns) {
			if (c->kind == K_MALFORMED)
				malformed_timeout(c, now);
			else
				hostile_end(c, O_TIMEOUT, now);
		}
		if (running && c->state == S_IDLE && now >= c->t_wake &&
		    !conn_open(c, now))
			hostile_end(c, O_ERROR, now);
	}
	for (unsigned i = 0; i < MAX_PROBES; i++) {
		struct conn *c = &probes[i];
		if (c->state != S_IDLE &&
		    now - c->t_start > opt.probe_timeout_ns)
			probe_end(c, O_TIMEOUT, now);
	}
	while (running && opt.probe_ns && now >= *next_probe) {
		/* on schedule, from the schedule: a late wake-up sends the
		 * probes it missed now rather than dropping them */
		*next_probe += opt.probe_ns;
		unsigned i = 0;
		while (i < MAX_PROBES && probes[i].state != S_IDLE)
			i++;
		g.probes++;
		if (i == MAX_PROBES) {
			g.probes_skipped++;
			g.probes_failed++;
			continue;
		}
		probes[i].kind = K_PROBE;
		if (!conn_open(&probes[i], now))
			probe_end(&probes[i], O_ERROR, now);
	}
	int64_t wait = opt.probe_ns && running ? *next_probe - now
					       : 10 * NS_PER_MS;
	if (wait > 10 * NS_PER_MS)
		wait = 10 * NS_PER_MS;
	return wait > 0 ? (int)((wait + NS_PER_MS - 1) / NS_PER_MS) : 0;
}

static unsigned probes_waiting(void)
{
	unsigned n = 0;
	for (unsigned i = 0; i < MAX_PROBES; i++)
		n += probes[i].state != S_IDLE;
	return n;
}

/* Hostile loops until the deadline; then the probes still waiting get up to
 * their timeout to answer. */
static void run(void)
{
	struct epoll_event evs[MAX_EVENTS];
	int64_t deadline = g.t0 + (int64_t)(opt.duration * NS_PER_S);
	int64_t next_probe = g.t0;
	bool running = true;
	while (!stop_signal) {
		int64_t now = now_ns();
		if (running && now >= deadline) {
			running = false;
			for (unsigned i = 0; i < opt.clients; i++)
				if (hostile[i].state != S_IDLE)
					hostile_end(&hostile[i], O_UNFINISHED,
						    now);
		}
		int ms = timers(now, &next_probe, running);
		if (!running && probes_waiting() == 0)
			break;
		int n = epoll_wait(epfd, evs, MAX_EVENTS, ms);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c->fd < 0)
				continue; /* ended earlier in this batch */
			if (c->kind == K_HALF) {
				half_readable(c);
				continue;
			}
			if (c->state == S_CONNECTING) {
				conn_writable(c, now_ns());
				continue;
			}
			if (c->kind == K_MALFORMED &&
			    (evs[i].events & EPOLLOUT) &&
			    c->out_off < c->req->len &&
			    malformed_send(c, now_ns())) {
				struct epoll_event ev = { .events = EPOLLIN |
								    EPOLLRDHUP,
							  .data.ptr = c };
				epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
			}
			if (evs[i].events &
			    (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				conn_readable(c);
		}
	}
	g.t_end = now_ns();
	int64_t now = g.t_end;
	for (unsigned i = 0; i < opt.clients; i++)
		if (hostile[i].state != S_IDLE)
			hostile_end(&hostile[i], O_UNFINISHED, now);
	for (unsigned i = 0; i < MAX_PROBES; i++)
		if (probes[i].state != S_IDLE)
			probe_end(&probes[i], O_UNFINISHED, now);
}

/* ---- setup and output ---- */

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

static void usage(FILE *f)
{
	fputs("Usage: ts-hostile -p PORT --path PATH [--path PATH...] [options]\n"
	      "K clients loop on the paths (round-robin) while a prober times /healthz.\n"
	      "\n"
	      "  -H HOST              loopback address only: 127.x.x.x, ::1 (default 127.0.0.1)\n"
	      "  -p PORT              port (default 8080)\n"
	      "  -n K                 looping clients (default 16; 0: only the prober)\n"
	      "      --path PATH      a request path (repeatable, at most 16)\n"
	      "  -d SECONDS           run time (default 10)\n"
	      "      --first-event    a loop ends at the first data: line\n"
	      "      --bytes N        a loop ends after N bytes of body (default 1048576)\n"
	      "      --until-offset N a loop ends at the first id: with OFFSET >= N\n"
	      "      --loop-timeout MS  a loop still going after MS is a timeout (default 5000)\n"
	      "      --probe-ms MS    one GET /healthz every MS, fresh connection (default 20;\n"
	      "                       0: no prober)\n"
	      "      --probe-timeout MS  a probe unanswered after MS failed (default 2000)\n"
	      "      --malformed      the K clients loop over a catalogue of bad requests\n"
	      "                       (instead of --path): 4xx, closed, or 200 for the\n"
	      "                       valid costly ones; never a 5xx (but 503 with\n"
	      "                       Retry-After), a 200 to a bad one, or no answer\n"
	      "      --log NAME       a log of the daemon for --malformed (default live)\n"
	      "      --big NAME       a big log for its pathological regexes (default big)\n"
	      "      --half-open N    N connections held open that send nothing, half\n"
	      "                       a request head, or a head that libmicrohttpd\n"
	      "                       leaves unanswered (in turn)\n"
	      "\n"
	      "Output: HOSTILE key=value ... on stdout; a summary on stderr.\n",
	      f);
}

static double parse_num(const char *s, const char *what)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || v < 0) {
		fprintf(stderr, "ts-hostile: bad %s: %s\n", what, s);
		exit(2);
	}
	return v;
}

static void parse_args(int argc, char **argv)
{
	enum {
		O_PATH = 256,
		O_FIRST,
		O_BYTES,
		O_UNTIL,
		O_LOOPTO,
		O_PROBE,
		O_PROBETO,
		O_MALFORMED,
		O_HALF,
		O_LOG,
		O_BIG
	};
	static const struct option lopts[] = {
		{ "path", required_argument, NULL, O_PATH },
		{ "first-event", no_argument, NULL, O_FIRST },
		{ "bytes", required_argument, NULL, O_BYTES },
		{ "until-offset", required_argument, NULL, O_UNTIL },
		{ "loop-timeout", required_argument, NULL, O_LOOPTO },
		{ "probe-ms", required_argument, NULL, O_PROBE },
		{ "probe-timeout", required_argument, NULL, O_PROBETO },
		{ "malformed", no_argument, NULL, O_MALFORMED },
		{ "half-open", required_argument, NULL, O_HALF },
		{ "log", required_argument, NULL, O_LOG },
		{ "big", required_argument, NULL, O_BIG },
		{ "duration", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "H:p:n:d:h", lopts, NULL)) != -1) {
		switch (c) {
		case 'H':
			opt.host = optarg;
			break;
		case 'p':
			opt.port = (int)parse_num(optarg, "port");
			break;
		case 'n':
			opt.clients = (unsigned)parse_num(optarg, "-n");
			break;
		case 'd':
			opt.duration = parse_num(optarg, "-d");
			break;
		case O_PATH:
			if (opt.npaths == MAX_PATHS || optarg[0] != '/' ||
			    strlen(optarg) > 2000) {
				fprintf(stderr,
					"ts-hostile: bad or too many "
					"--path: %s\n",
					optarg);
				exit(2);
			}
			opt.paths[opt.npaths++] = optarg;
			break;
		case O_FIRST:
			opt.first_event = true;
			break;
		case O_BYTES:
			opt.bytes = (uint64_t)parse_num(optarg, "--bytes");
			break;
		case O_UNTIL:
			opt.until_offset =
				(uint64_t)parse_num(optarg, "--until-offset");
			break;
		case O_LOOPTO:
			opt.loop_timeout_ns =
				(int64_t)(parse_num(optarg, "--loop-timeout") *
					  NS_PER_MS);
			break;
		case O_PROBE:
			opt.probe_ns =
				(int64_t)(parse_num(optarg, "--probe-ms") *
					  NS_PER_MS);
			break;
		case O_PROBETO:
			opt.probe_timeout_ns =
				(int64_t)(parse_num(optarg, "--probe-timeout") *
					  NS_PER_MS);
			break;
		case O_MALFORMED:
			opt.malformed = true;
			break;
		case O_HALF:
			opt.half_open =
				(unsigned)parse_num(optarg, "--half-open");
			break;
		case O_LOG:
			opt.log = optarg;
			break;
		case O_BIG:
			opt.big = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind != argc || opt.port <= 0 || opt.port > 65535 ||
	    opt.clients > MAX_CLIENTS ||
	    (opt.clients && !opt.npaths && !opt.malformed) ||
	    strlen(opt.log) > 64 || strlen(opt.big) > 64 ||
	    opt.loop_timeout_ns <= 0 || opt.probe_timeout_ns <= 0) {
		usage(stderr);
		exit(2);
	}
	if (set_address(opt.host, opt.port) != 0) {
		fprintf(stderr,
			"ts-hostile: %s: only loopback addresses "
			"(127.x.x.x, ::1) are allowed\n",
			opt.host);
		exit(2);
	}
}

static void print_result(void)
{
	double elapsed = (double)(g.t_end - g.t0) / NS_PER_S;
	struct rusage ru;
	double cpu = 0;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		      (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	printf("HOSTILE clients=%u paths=%u loops=%" PRIu64 " loops_per_s=%.1f"
	       " timeouts=%" PRIu64 " errors=%" PRIu64 " unfinished=%" PRIu64
	       " http_error=%d ttfe_n=%" PRIu64 " ttfe_p50_ms=%.3f"
	       " ttfe_p99_ms=%.3f ttfe_max_ms=%.3f loop_p50_ms=%.3f"
	       " loop_p99_ms=%.3f loop_max_ms=%.3f healthz=%" PRIu64
	       " healthz_ok=%" PRIu64 " healthz_failed=%" PRIu64
	       " healthz_http_error=%d healthz_p50_ms=%.3f healthz_p99_ms=%.3f"
	       " healthz_max_ms=%.3f elapsed_s=%.3f client_cpu_s=%.3f\n",
	       opt.clients, opt.npaths, g.loops,
	       elapsed > 0 ? (double)g.loops / elapsed : 0, g.timeouts,
	       g.errors, g.unfinished, g.http_error, g.ttfe.count,
	       hist_ms(&g.ttfe, 0.5), hist_ms(&g.ttfe, 0.99),
	       hist_max_ms(&g.ttfe), hist_ms(&g.loop, 0.5),
	       hist_ms(&g.loop, 0.99), hist_max_ms(&g.loop), g.probes,
	       g.probes_ok, g.probes_failed, g.probe_http_error,
	       hist_ms(&g.healthz, 0.5), hist_ms(&g.healthz, 0.99),
	       hist_max_ms(&g.healthz), elapsed, cpu);
	fflush(stdout);
	fprintf(stderr,
		"ts-hostile: /healthz: %" PRIu64 " probes, %" PRIu64
		" failed (%" PRIu64 " not sent: too many waiting); p50 %.3f ms,"
		" p99 %.3f ms, max %.3f ms\n",
		g.probes, g.probes_failed, g.probes_skipped,
		hist_ms(&g.healthz, 0.5), hist_ms(&g.healthz, 0.99),
		hist_max_ms(&g.healthz));
	for (unsigned i = 0; i < opt.npaths; i++) {
		const struct path_stats *ps = &g.path[i];
		fprintf(stderr,
			"ts-hostile: %s: %" PRIu64 " loops (%" PRIu64
			" timeouts, %" PRIu64 " errors); loop p50 %.1f ms, max "
			"%.1f ms; first event p50 %.1f ms, max %.1f ms\n",
			opt.paths[i], ps->loops, ps->timeouts, ps->errors,
			hist_ms(&ps->loop, 0.5), hist_max_ms(&ps->loop),
			hist_ms(&ps->ttfe, 0.5), hist_max_ms(&ps->ttfe));
	}
	if (g.http_error)
		fprintf(stderr, "ts-hostile: a hostile request got HTTP %d\n",
			g.http_error);
	if (opt.malformed || opt.half_open) {
		printf("MALFORMED requests=%u answers=%" PRIu64
		       " clean_4xx=%" PRIu64 " other_4xx=%" PRIu64
		       " closed=%" PRIu64 " ok=%" PRIu64 " busy_503=%" PRIu64
		       " bad_5xx=%" PRIu64 " accepted=%" PRIu64
		       " hangs=%" PRIu64 " slow=%" PRIu64
		       " half_open=%u half_open_closed=%u\n",
		       nbad,
		       g.m_clean + g.m_other4xx + g.m_closed + g.m_ok +
			       g.m_503 + g.m_5xx + g.m_accepted + g.m_hang +
			       g.m_slow,
		       g.m_clean, g.m_other4xx, g.m_closed, g.m_ok, g.m_503,
		       g.m_5xx, g.m_accepted, g.m_hang, g.m_slow, g.half_up,
		       g.half_closed);
		fflush(stdout);
		fprintf(stderr,
			"ts-hostile: answers to each bad request (c: "
			"clean 4xx, 4: other 4xx, x: closed, o: 200 to a valid "
			"one, 3: 503, X: 5xx, A: 200 to a bad one, H: hang, s: "
			"a valid one unanswered in time)\n");
		for (unsigned i = 0; i < nbad; i++) {
			char l[A_N + 1];
			unsigned k = 0;
			for (int a = 0; a < A_N; a++)
				if (bad[i].seen & (1u << a))
					l[k++] = answer_letter[a];
			l[k] = '\0';
			fprintf(stderr, "ts-hostile:   %-6s %s\n", l,
				bad[i].name);
		}
		if (g.m_other_example[0])
			fprintf(stderr,
				"ts-hostile: first 4xx not one text/plain "
				"line: %s\n",
				g.m_other_example);
		if (g.m_bad[0])
			fprintf(stderr, "ts-hostile: first bad answer: %s\n",
				g.m_bad);
	}
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	hostile = calloc(opt.clients ? opt.clients : 1, sizeof(*hostile));
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!hostile || epfd < 0) {
		fprintf(stderr, "ts-hostile: %s\n", strerror(errno));
		return 1;
	}
	g.t0 = now_ns();
	if (opt.malformed)
		build_catalogue();
	for (unsigned i = 0; i < opt.clients; i++) {
		hostile[i].fd = -1;
		hostile[i].kind = opt.malformed ? K_MALFORMED : K_HOSTILE;
		hostile[i].path = opt.npaths ? i % opt.npaths : 0;
		hostile[i].t_wake = g.t0;
	}
	for (unsigned i = 0; i < MAX_PROBES; i++)
		probes[i].fd = -1;
	half_open_all();
	run();
	if (stop_signal)
		fprintf(stderr, "ts-hostile: stopped by signal %d\n",
			(int)stop_signal);
	print_result();
	free(hostile);
	for (unsigned i = 0; i < opt.half_open; i++)
		if (half[i].fd >= 0)
			close(half[i].fd);
	free(half);
	for (unsigned i = 0; i < nbad; i++)
		free(bad[i].data);
	close(epfd);
	return g.loops + g.probes_ok > 0 ? 0 : 1;
}
