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
	uint64_t until_offset;    /* 0: not used */
	int64_t loop_timeout_ns;
	int64_t probe_ns;         /* 0: no prober */
	int64_t probe_timeout_ns;
} opt = {
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
	struct hist loop;     /* connect to the end condition */
	struct hist ttfe;     /* connect to the first data: line */
};

static struct {
	struct path_stats path[MAX_PATHS];
	uint64_t loops, timeouts, errors, unfinished;
	uint64_t probes, probes_ok, probes_failed, probes_skipped;
	int http_error;           /* first non-200 status of a hostile loop */
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

enum kind { K_HOSTILE, K_PROBE };
enum state { S_IDLE, S_CONNECTING, S_HEADERS, S_BODY };
enum chstate { CH_SIZE, CH_EXT, CH_DATA, CH_DATA_END, CH_END };
enum outcome { O_DONE, O_TIMEOUT, O_ERROR, O_UNFINISHED };

struct conn {
	/* kept from one loop to the next */
	int fd;
	uint8_t kind;
	unsigned path;
	int64_t t_wake;           /* S_IDLE hostile: when to reconnect */
	/* reset by conn_open, from here on */
	uint8_t state, ch;
	bool chunked, has_length, got_event;
	uint16_t status;
	uint16_t llen;
	uint64_t body_left;       /* chunk or Content-Length bytes left */
	uint64_t body_bytes;      /* decoded body bytes */
	int64_t t_start;
	char line[LINE_CAP];
};

static struct conn *hostile;
static struct conn probes[MAX_PROBES];
static int epfd = -1;

static bool conn_open(struct conn *c, int64_t now)
{
	memset(&c->state, 0, sizeof(*c) - offsetof(struct conn, state));
	c->t_start = now;
	c->fd = socket(opt.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0);
	if (c->fd < 0)
		return false;
	if (c->kind == K_HOSTILE) {
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
	if (c->kind == K_HOSTILE)
		hostile_end(c, o, now);
	else
		probe_end(c, o, now);
}

static int build_request(const struct conn *c, char *buf, size_t cap)
{
	const char *host = opt.family == AF_INET6 ? "[::1]" : opt.host;
	int n;
	if (c->kind == K_PROBE)
		n = snprintf(buf, cap, "GET /healthz HTTP/1.1\r\nHost: %s:%d\r\n"
			     "User-Agent: ts-hostile\r\nConnection: close\r\n\r\n",
			     host, opt.port);
	else
		n = snprintf(buf, cap, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n"
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
	char req[2200];
	int n = build_request(c, req, sizeof(req));
	if (n < 0 || send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		conn_end(c, O_ERROR, now);
		return;
	}
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
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
	if (flen == 17 && strncasecmp(l, "transfer-encoding", 17) == 0)
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
		if (c->state != S_IDLE && now - c->t_start > opt.loop_timeout_ns)
			hostile_end(c, O_TIMEOUT, now);
		if (running && c->state == S_IDLE && now >= c->t_wake &&
		    !conn_open(c, now))
			hostile_end(c, O_ERROR, now);
	}
	for (unsigned i = 0; i < MAX_PROBES; i++) {
		struct conn *c = &probes[i];
		if (c->state != S_IDLE && now - c->t_start > opt.probe_timeout_ns)
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
	int64_t wait = opt.probe_ns && running ? *next_probe - now : 10 * NS_PER_MS;
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
					hostile_end(&hostile[i], O_UNFINISHED, now);
		}
		int ms = timers(now, &next_probe, running);
		if (!running && probes_waiting() == 0)
			break;
		int n = epoll_wait(epfd, evs, MAX_EVENTS, ms);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c->fd < 0)
				continue; /* ended earlier in this batch */
			if (c->state == S_CONNECTING)
				conn_writable(c, now_ns());
			else
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
	      "\n"
	      "Output: HOSTILE key=value ... on stdout; a summary on stderr.\n", f);
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
	enum { O_PATH = 256, O_FIRST, O_BYTES, O_UNTIL, O_LOOPTO, O_PROBE,
	       O_PROBETO };
	static const struct option lopts[] = {
		{ "path", required_argument, NULL, O_PATH },
		{ "first-event", no_argument, NULL, O_FIRST },
		{ "bytes", required_argument, NULL, O_BYTES },
		{ "until-offset", required_argument, NULL, O_UNTIL },
		{ "loop-timeout", required_argument, NULL, O_LOOPTO },
		{ "probe-ms", required_argument, NULL, O_PROBE },
		{ "probe-timeout", required_argument, NULL, O_PROBETO },
		{ "duration", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "H:p:n:d:h", lopts, NULL)) != -1) {
		switch (c) {
		case 'H': opt.host = optarg; break;
		case 'p': opt.port = (int)parse_num(optarg, "port"); break;
		case 'n': opt.clients = (unsigned)parse_num(optarg, "-n"); break;
		case 'd': opt.duration = parse_num(optarg, "-d"); break;
		case O_PATH:
			if (opt.npaths == MAX_PATHS || optarg[0] != '/' ||
			    strlen(optarg) > 2000) {
				fprintf(stderr, "ts-hostile: bad or too many "
					"--path: %s\n", optarg);
				exit(2);
			}
			opt.paths[opt.npaths++] = optarg;
			break;
		case O_FIRST: opt.first_event = true; break;
		case O_BYTES:
			opt.bytes = (uint64_t)parse_num(optarg, "--bytes");
			break;
		case O_UNTIL:
			opt.until_offset = (uint64_t)parse_num(optarg, "--until-offset");
			break;
		case O_LOOPTO:
			opt.loop_timeout_ns = (int64_t)(parse_num(optarg,
					"--loop-timeout") * NS_PER_MS);
			break;
		case O_PROBE:
			opt.probe_ns = (int64_t)(parse_num(optarg, "--probe-ms") *
						 NS_PER_MS);
			break;
		case O_PROBETO:
			opt.probe_timeout_ns = (int64_t)(parse_num(optarg,
					"--probe-timeout") * NS_PER_MS);
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc || opt.port <= 0 || opt.port > 65535 ||
	    opt.clients > MAX_CLIENTS || (opt.clients && !opt.npaths) ||
	    opt.loop_timeout_ns <= 0 || opt.probe_timeout_ns <= 0) {
		usage(stderr);
		exit(2);
	}
	if (set_address(opt.host, opt.port) != 0) {
		fprintf(stderr, "ts-hostile: %s: only loopback addresses "
			"(127.x.x.x, ::1) are allowed\n", opt.host);
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
	fprintf(stderr, "ts-hostile: /healthz: %" PRIu64 " probes, %" PRIu64
		" failed (%" PRIu64 " not sent: too many waiting); p50 %.3f ms,"
		" p99 %.3f ms, max %.3f ms\n", g.probes, g.probes_failed,
		g.probes_skipped, hist_ms(&g.healthz, 0.5),
		hist_ms(&g.healthz, 0.99), hist_max_ms(&g.healthz));
	for (unsigned i = 0; i < opt.npaths; i++) {
		const struct path_stats *ps = &g.path[i];
		fprintf(stderr, "ts-hostile: %s: %" PRIu64 " loops (%" PRIu64
			" timeouts, %" PRIu64 " errors); loop p50 %.1f ms, max "
			"%.1f ms; first event p50 %.1f ms, max %.1f ms\n",
			opt.paths[i], ps->loops, ps->timeouts, ps->errors,
			hist_ms(&ps->loop, 0.5), hist_max_ms(&ps->loop),
			hist_ms(&ps->ttfe, 0.5), hist_max_ms(&ps->ttfe));
	}
	if (g.http_error)
		fprintf(stderr, "ts-hostile: a hostile request got HTTP %d\n",
			g.http_error);
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
	for (unsigned i = 0; i < opt.clients; i++) {
		hostile[i].fd = -1;
		hostile[i].kind = K_HOSTILE;
		hostile[i].path = i % opt.npaths;
		hostile[i].t_wake = g.t0;
	}
	for (unsigned i = 0; i < MAX_PROBES; i++)
		probes[i].fd = -1;
	run();
	if (stop_signal)
		fprintf(stderr, "ts-hostile: stopped by signal %d\n",
			(int)stop_signal);
	print_result();
	free(hostile);
	close(epfd);
	return g.loops + g.probes_ok > 0 ? 0 : 1;
}
