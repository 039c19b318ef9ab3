/* ts-publish.c: POST each line of stdin to an HTTP publisher (nchan's), over
 * one persistent keep-alive connection; for the nchan anchor of tailsse's
 * benchmarks (bench/run.sh: `tail -n 0 -F FILE | ts-publish -p PORT -u
 * /pub`).
 *
 * Each complete line (without its newline) is the body of one
 * `POST PATH HTTP/1.1`.  Requests are pipelined: a line goes out as soon as
 * it is read, without waiting for the answers to the earlier ones (nginx
 * answers pipelined requests in order), so the publisher adds one read and
 * one send per batch of lines to the path, not a round trip per line.  The
 * answers are read and counted (status and Content-Length or chunked body
 * parsed, so the connection stays in step); a non-2xx answer counts as an
 * error.  Loopback only.
 *
 * Output, at EOF on stdin or on SIGTERM/SIGINT: "PUBLISHED lines=N
 * answered=N errors=N max_inflight=N" on stderr.  Exit status 1 when the
 * server closed the connection or could not be reached.
 *
 * Build: gcc -std=gnu11 -O2 -Wall -Wextra -D_GNU_SOURCE ts-publish.c -o ts-publish
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_CAP (1 << 20)

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;
		while (cap < b->len + n)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			perror("ts-publish: realloc");
			exit(1);
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void buf_drop(struct buf *b, size_t n)
{
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

/* The answer parser: status line, headers, then a body of Content-Length
 * bytes or chunks. */
enum {
	A_STATUS,
	A_HEADERS,
	A_BODY,
	A_CHUNK_SIZE,
	A_CHUNK_DATA,
	A_CHUNK_CRLF,
	A_TRAILER
};

static struct {
	int state;
	unsigned status;
	uint64_t left;
	bool chunked;
	char line[512];
	size_t llen;
} ans;

static uint64_t sent, answered, errors, inflight_max;

static void answer_done(void)
{
	answered++;
	if (ans.status < 200 || ans.status > 299) {
		if (errors++ < 3)
			fprintf(stderr, "ts-publish: HTTP %u\n", ans.status);
	}
	ans.state = A_STATUS;
	ans.status = 0;
	ans.chunked = false;
	ans.left = 0;
}

/* One line of the answer's head or of its chunk framing (no CRLF). */
static void answer_line(const char *l, size_t n)
{
	switch (ans.state) {
	case A_STATUS:
		if (n == 0)
			return; /* stray CRLF */
		ans.status = n >= 12 ? (unsigned)atoi(l + 9) : 999;
		ans.state = A_HEADERS;
		ans.left = 0;
		return;
	case A_HEADERS:
		if (n == 0) {
			if (ans.chunked)
				ans.state = A_CHUNK_SIZE;
			else if (ans.left)
				ans.state = A_BODY;
			else
				answer_done();
			return;
		}
		if (n > 15 && strncasecmp(l, "content-length:", 15) == 0)
			ans.left = strtoull(l + 15, NULL, 10);
		else if (n > 18 &&
			 strncasecmp(l, "transfer-encoding:", 18) == 0 &&
			 memmem(l, n, "chunked", 7))
			ans.chunked = true;
		return;
	case A_CHUNK_SIZE:
		ans.left = strtoull(l, NULL, 16);
		ans.state = ans.left ? A_CHUNK_DATA : A_TRAILER;
		return;
	case A_CHUNK_CRLF:
		ans.state = A_CHUNK_SIZE;
		return;
	case A_TRAILER:
		if (n == 0)
			answer_done();
		return;
	}
}

static void answer_feed(const char *p, size_t n)
{
	while (n > 0) {
		if (ans.state == A_BODY || ans.state == A_CHUNK_DATA) {
			size_t k = n < ans.left ? n : (size_t)ans.left;
			p += k;
			n -= k;
			ans.left -= k;
			if (ans.left == 0) {
				if (ans.state == A_BODY)
					answer_done();
				else
					ans.state = A_CHUNK_CRLF;
			}
			continue;
		}
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;
		size_t room = sizeof(ans.line) - ans.llen;
		size_t cp = take < room ? take : room;
		memcpy(ans.line + ans.llen, p, cp);
		ans.llen += cp;
		if (!nl)
			return;
		size_t len = ans.llen;
		if (len && ans.line[len - 1] == '\r')
			len--;
		answer_line(ans.line, len);
		ans.llen = 0;
		p = nl + 1;
		n -= take + 1;
	}
}

static void usage(FILE *f)
{
	fputs("Usage: ts-publish -p PORT -u PATH [-H 127.0.0.1]\n"
	      "POST each line of stdin to http://HOST:PORT/PATH over one\n"
	      "keep-alive connection (pipelined).  Loopback only.\n",
	      f);
}

int main(int argc, char **argv)
{
	int port = 0, c;
	const char *path = NULL, *host = "127.0.0.1";
	while ((c = getopt(argc, argv, "p:u:H:h")) != -1) {
		switch (c) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'u':
			path = optarg;
			break;
		case 'H':
			host = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (port <= 0 || port > 65535 || !path) {
		usage(stderr);
		return 2;
	}
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
	    (ntohl(sa.sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr, "ts-publish: %s: only 127.0.0.0/8\n", host);
		return 2;
	}
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	struct sigaction sact = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sact, NULL);
	sigaction(SIGINT, &sact, NULL);
	signal(SIGPIPE, SIG_IGN);

	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("ts-publish: connect");
		return 1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

	char *in = malloc(IN_CAP);
	char rbuf[65536];
	struct buf out = { 0 };
	size_t inlen = 0;
	bool eof = false;
	int rc = 0;
	char head[512];
	while (!stop && !(eof && out.len == 0 && answered == sent)) {
		struct pollfd pfd[2] = {
			{ eof ? -1 : 0, POLLIN, 0 },
			{ fd, POLLIN | (out.len ? POLLOUT : 0), 0 },
		};
		if (poll(pfd, 2, 1000) < 0) {
			if (errno == EINTR)
				continue;
			perror("ts-publish: poll");
			rc = 1;
			break;
		}
		if (pfd[0].revents) {
			ssize_t n = read(0, in + inlen, IN_CAP - inlen);
			if (n <= 0 && !(n < 0 && errno == EINTR)) {
				eof = true;
			} else if (n > 0) {
				inlen += (size_t)n;
				char *p = in, *end = in + inlen, *nl;
				while ((nl = memchr(p, '\n',
						    (size_t)(end - p)))) {
					size_t len = (size_t)(nl - p);
					int h = snprintf(
						head, sizeof(head),
						"POST %s HTTP/1.1\r\nHost: %s:%d\r\n"
						"Content-Type: text/plain\r\n"
						"Content-Length: %zu\r\n\r\n",
						path, host, port, len);
					buf_add(&out, head, (size_t)h);
					buf_add(&out, p, len);
					sent++;
					p = nl + 1;
				}
				inlen = (size_t)(end - p);
				memmove(in, p, inlen);
				if (inlen == IN_CAP)
					inlen = 0; /* a line longer than 1 MiB */
				if (sent - answered > inflight_max)
					inflight_max = sent - answered;
			}
		}
		if (out.len) {
			ssize_t n = send(fd, out.p, out.len, MSG_NOSIGNAL);
			if (n > 0)
				buf_drop(&out, (size_t)n);
			else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				perror("ts-publish: send");
				rc = 1;
				break;
			}
		}
		if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(fd, rbuf, sizeof(rbuf), 0);
			if (n > 0) {
				answer_feed(rbuf, (size_t)n);
			} else if (n == 0 ||
				   (errno != EAGAIN && errno != EINTR)) {
				fprintf(stderr,
					"ts-publish: the server closed "
					"the connection after %" PRIu64
					" answers\n",
					answered);
				rc = 1;
				break;
			}
		}
	}
	fprintf(stderr,
		"PUBLISHED lines=%" PRIu64 " answered=%" PRIu64
		" errors=%" PRIu64 " max_inflight=%" PRIu64 "\n",
		sent, answered, errors, inflight_max);
	free(in);
	free(out.p);
	close(fd);
	return rc || errors ? 1 : 0;
}
