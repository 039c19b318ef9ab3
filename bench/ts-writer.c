/* ts-writer.c: append numbered, timestamped lines to a log file at a set
 * rate, or generate a big access-log-like file fast; for tailsse benchmarks.
 *
 * Live mode: every tick (1 ms by default) the lines that are due are written
 * in one write(2), so the rate stays exact whatever the tick's jitter.  Each
 * line is
 *
 *     seq=<u64> t=<CLOCK_MONOTONIC ns at the write> [u=<seq % K>] <padding>
 *
 * padded to the line size (newline included); seq counts from -S (0).
 * ts-load reads seq and t back to measure loss and latency.
 *
 * Generate mode (-g BYTES): varied combined-log-format lines (about 3% with
 * a 5xx status) until the file holds at least BYTES, then one last line with
 * status 503, so that a filter on " 5\d\d " always matches the last line.
 * Sizes are never 500-599, so `grep -cP ' 5\d\d '` counts exactly the 5xx
 * lines.
 *
 * Output: "WROTE lines=N bytes=B seconds=S rate=R ..." on stdout.
 *
 * Build: gcc -std=gnu11 -O2 -Wall -Wextra -D_GNU_SOURCE ts-writer.c -o ts-writer -lm
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, memrchr */
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S 1000000000LL
#define NS_PER_MS 1000000LL
#define WBUF_SIZE (1 << 20)
#define MAX_LINE_SIZE 65536

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Decimal digits of v at p; returns the end. */
static char *put_u64(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *put_str(char *p, const char *s)
{
	size_t n = strlen(s);
	memcpy(p, s, n);
	return p + n;
}

/* ---- live mode ---- */

/* Delays in 10 us buckets up to 100 ms (the last bucket: longer): the
 * writer's own schedule slip and its write(2) times, so that a run can
 * tell its own stalls from the server's. */
#define LAG_BUCKET_NS 10000LL
#define LAG_NB 10001

struct lag {
	uint64_t n, over1ms;
	int64_t max;
	uint32_t b[LAG_NB];
};

static void lag_add(struct lag *l, int64_t ns)
{
	if (ns < 0)
		ns = 0;
	int64_t i = ns / LAG_BUCKET_NS;
	l->b[i < LAG_NB ? i : LAG_NB - 1]++;
	l->n++;
	if (ns > 1000000)
		l->over1ms++;
	if (ns > l->max)
		l->max = ns;
}

/* The p-quantile in ms (the bucket's upper edge, at most the max). */
static double lag_ms(const struct lag *l, double p)
{
	if (l->n == 0)
		return 0;
	uint64_t want = (uint64_t)(p * (double)l->n + 0.999999);
	uint64_t seen = 0;
	for (int i = 0; i < LAG_NB; i++) {
		seen += l->b[i];
		if (seen >= (want ? want : 1)) {
			int64_t v = (i + 1) * LAG_BUCKET_NS;
			return (double)(v < l->max ? v : l->max) / NS_PER_MS;
		}
	}
	return (double)l->max / NS_PER_MS;
}

static const char PAD[] =
	"the quick brown fox jumps over the lazy dog while the log keeps "
	"growing line after line for the benchmark of tailsse streams ";

/* One line of `size` bytes (longer when the fields do not fit) at p. */
static char *live_line(char *p, uint64_t seq, uint64_t t, uint64_t mod,
		       size_t size)
{
	char *start = p;
	p = put_str(p, "seq=");
	p = put_u64(p, seq);
	p = put_str(p, " t=");
	p = put_u64(p, t);
	if (mod) {
		p = put_str(p, " u=");
		p = put_u64(p, seq % mod);
	}
	*p++ = ' ';
	size_t used = (size_t)(p - start) + 1;
	size_t k = 0;
	while (used < size) {
		*p++ = PAD[k++ % (sizeof(PAD) - 1)];
		used++;
	}
	*p++ = '\n';
	return p;
}

struct live_opts {
	double rate; /* lines per second; 0: as fast as possible */
	size_t size;
	double duration;
	uint64_t total; /* 0: rate * duration */
	uint64_t first_seq;
	uint64_t mod;
	int64_t tick_ns;
};

static int live(int fd, const struct live_opts *o)
{
	uint64_t total = o->total;
	if (total == 0)
		total = (uint64_t)(o->rate * o->duration + 0.5);
	size_t maxline = o->size + 80;
	char *buf = malloc(WBUF_SIZE + maxline);
	if (!buf) {
		perror("ts-writer: malloc");
		return 1;
	}
	int64_t t0 = now_ns();
	/* bounded: the planned time plus a generous margin */
	double planned = o->rate > 0 ? (double)total / o->rate : 0;
	int64_t hard = t0 + (int64_t)((planned * 2 + 30) * NS_PER_S);
	static struct lag late, wr; /* tick slip, write(2) time */
	uint64_t written = 0, bytes = 0, writes = 0;
	uint64_t tick = 0;
	int rc = 0;

	while (written < total && !stop_signal) {
		int64_t now;
		if (o->rate > 0) {
			tick++;
			struct timespec ts;
			int64_t at = t0 + (int64_t)tick * o->tick_ns;
			ts.tv_sec = at / NS_PER_S;
			ts.tv_nsec = at % NS_PER_S;
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME,
					       &ts, NULL) == EINTR &&
			       !stop_signal)
				;
			now = now_ns();
			lag_add(&late, now - at);
		} else {
			now = now_ns();
		}
		if (now > hard) {
			fprintf(stderr, "ts-writer: time limit reached\n");
			rc = 1;
			break;
		}
		uint64_t due = total;
		if (o->rate > 0) {
			double d = (double)(now - t0) / NS_PER_S * o->rate;
			due = d >= (double)total ? total : (uint64_t)d;
		}
		while (written < due) {
			char *p = buf;
			now = now_ns();
			while (written < due && p - buf < WBUF_SIZE) {
				p = live_line(p, o->first_seq + written,
					      (uint64_t)now, o->mod, o->size);
				written++;
			}
			int64_t w0 = now_ns();
			if (write_all(fd, buf, (size_t)(p - buf)) != 0) {
				perror("ts-writer: write");
				rc = 1;
				goto out;
			}
			lag_add(&wr, now_ns() - w0);
			bytes += (uint64_t)(p - buf);
			writes++;
		}
	}
out:;
	double secs = (double)(now_ns() - t0) / NS_PER_S;
	printf("WROTE lines=%" PRIu64 " bytes=%" PRIu64 " seconds=%.3f "
	       "rate=%.1f writes=%" PRIu64 " late_max_ms=%.3f "
	       "late_p50_ms=%.3f late_p99_ms=%.3f late_over1ms=%" PRIu64
	       " write_p99_ms=%.3f write_max_ms=%.3f write_over1ms=%" PRIu64
	       "\n",
	       written, bytes, secs, secs > 0 ? (double)written / secs : 0,
	       writes, (double)late.max / NS_PER_MS, lag_ms(&late, 0.5),
	       lag_ms(&late, 0.99), late.over1ms, lag_ms(&wr, 0.99),
	       (double)wr.max / NS_PER_MS, wr.over1ms);
	free(buf);
	return rc;
}

/* ---- generate mode ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rnd(void)
{
	/* xorshift64* */
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static unsigned rnd_below(unsigned n)
{
	return (unsigned)((rnd() >> 32) % n);
}

static const char *const METHODS[] = { "GET", "GET",  "GET",	"GET",
				       "GET", "GET",  "POST",	"POST",
				       "PUT", "HEAD", "DELETE", "OPTIONS" };
static const char *const PATHS[] = {
	"/",
	"/index.html",
	"/api/v1/items",
	"/api/v1/items/",
	"/api/v1/users/",
	"/api/v2/orders/",
	"/static/js/app.",
	"/static/css/site.",
	"/images/products/",
	"/login",
	"/logout",
	"/search?q=",
	"/healthz",
	"/metrics",
	"/favicon.ico",
	"/robots.txt",
	"/wp-login.php",
	"/cart/checkout",
	"/account/settings",
	"/api/v1/sessions/",
	"/downloads/release-",
	"/blog/2025/11/",
};
static const char *const REFERERS[] = {
	"-",
	"-",
	"-",
	"https://www.example.com/",
	"https://www.example.com/cart",
	"https://search.example.org/?q=shoes",
	"https://news.example.net/item/81",
	"http://localhost:3000/",
};
static const char *const AGENTS[] = {
	"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
	"curl/8.5.0",
	"Prometheus/2.53.0",
	"kube-probe/1.30",
	"Go-http-client/1.1",
	"python-requests/2.32.3",
	"Googlebot/2.1 (+http://www.google.com/bot.html)",
};
static const char *const MONTHS[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static unsigned pick_status(void)
{
	unsigned r = rnd_below(1000);
	if (r < 780)
		return 200;
	if (r < 800)
		return 201;
	if (r < 810)
		return 204;
	if (r < 830)
		return 206;
	if (r < 860)
		return 301;
	if (r < 880)
		return 302;
	if (r < 920)
		return 304;
	if (r < 925)
		return 400;
	if (r < 935)
		return 401;
	if (r < 945)
		return 403;
	if (r < 968)
		return 404;
	if (r < 970)
		return 429;
	if (r < 980)
		return 500;
	if (r < 990)
		return 502;
	if (r < 996)
		return 503;
	return 504;
}

static void fmt_time(char *out, size_t cap, int64_t secs)
{
	time_t t = (time_t)secs;
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, cap, "%02d/%s/%04d:%02d:%02d:%02d +0000", tm.tm_mday,
		 MONTHS[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec);
}

static int generate(int fd, uint64_t want)
{
	char *buf = malloc(WBUF_SIZE + 4096);
	if (!buf) {
		perror("ts-writer: malloc");
		return 1;
	}
	int64_t t0 = now_ns();
	int64_t clock_s = 1763769600; /* 2025-11-22 00:00:00 UTC */
	char ts[40];
	fmt_time(ts, sizeof(ts), clock_s);
	uint64_t bytes = 0, lines = 0, n5xx = 0;
	size_t len = 0;
	while (bytes + len < want && !stop_signal) {
		if (rnd_below(8) == 0) {
			clock_s++;
			fmt_time(ts, sizeof(ts), clock_s);
		}
		unsigned status = pick_status();
		n5xx += status >= 500;
		unsigned size = status == 304 || status == 204
					? 0
					: 20 + rnd_below(60000);
		if (size >= 500 && size < 600)
			size += 100; /* keep " 5\d\d " for the status only */
		const char *path = PATHS[rnd_below(NELEM(PATHS))];
		size_t pl = strlen(path);
		char tailbuf[24] = "";
		if (path[pl - 1] == '/' || path[pl - 1] == '=' ||
		    path[pl - 1] == '-' || path[pl - 1] == '.')
			snprintf(tailbuf, sizeof(tailbuf), "%u%s",
				 rnd_below(100000),
				 path[pl - 1] == '.'   ? ".js"
				 : path[pl - 1] == '-' ? ".tar.gz"
						       : "");
		int n = snprintf(
			buf + len, 4096,
			"%u.%u.%u.%u - %s [%s] \"%s %s%s HTTP/1.1\" %u %u "
			"\"%s\" \"%s\" %u.%03u\n",
			rnd_below(2) ? 10 : 203, rnd_below(256), rnd_below(256),
			1 + rnd_below(254), rnd_below(10) ? "-" : "alice", ts,
			METHODS[rnd_below(NELEM(METHODS))], path, tailbuf,
			status, size, REFERERS[rnd_below(NELEM(REFERERS))],
			AGENTS[rnd_below(NELEM(AGENTS))], rnd_below(3),
			rnd_below(1000));
		len += (size_t)n;
		lines++;
		if (len >= WBUF_SIZE) {
			if (write_all(fd, buf, len) != 0)
				goto fail;
			bytes += len;
			len = 0;
		}
	}
	/* the last line matches " 5\d\d ": a sentinel for filtered replays */
	len += (size_t)snprintf(buf + len, 4096,
				"127.0.0.1 - - [%s] \"GET /__ts_bench_end__ "
				"HTTP/1.1\" 503 0 \"-\" \"ts-writer\" 0.000\n",
				ts);
	lines++;
	n5xx++;
	if (write_all(fd, buf, len) != 0)
		goto fail;
	bytes += len;
	double secs = (double)(now_ns() - t0) / NS_PER_S;
	printf("WROTE lines=%" PRIu64 " bytes=%" PRIu64 " seconds=%.3f "
	       "rate=%.1f status_5xx=%" PRIu64 "\n",
	       lines, bytes, secs, secs > 0 ? (double)lines / secs : 0, n5xx);
	free(buf);
	return 0;
fail:
	perror("ts-writer: write");
	free(buf);
	return 1;
}

/* ---- main ---- */

/* Several writers (one per log) run in the background of one shell, which
 * ts-load stops when the run ends early (a signal, its time limit): they
 * must stop with it, not write on for minutes into a scenario directory
 * that is being removed while the next scenario runs. */
static void stop_with_parent(void)
{
	pid_t parent = getppid();
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
		return; /* only tidier: the writer still stops by itself */
	if (getppid() != parent)
		stop_signal = SIGTERM; /* the parent died before the prctl */
}

static void usage(FILE *f)
{
	fputs("Usage: ts-writer -f FILE (-r RATE -d SECONDS | -n LINES) [options]\n"
	      "       ts-writer -f FILE -g BYTES\n"
	      "Append \"seq=N t=NS ...\" lines at a steady rate, or generate a big log.\n"
	      "\n"
	      "  -f FILE     the log file (appended to; created if missing)\n"
	      "  -r RATE     lines per second (0 or absent with -n: as fast as possible)\n"
	      "  -s BYTES    line size, newline included (default 100)\n"
	      "  -d SECONDS  how long to write (lines = RATE * SECONDS)\n"
	      "  -n LINES    how many lines to write (instead of -d)\n"
	      "  -S SEQ      first seq (default 0)\n"
	      "  -k K        add \"u=<seq % K>\" to each line (per-stream filters)\n"
	      "  -i USEC     write tick in microseconds (default 1000)\n"
	      "  -g BYTES    generate mode: truncate FILE and fill it with at least\n"
	      "              BYTES of access-log lines (suffixes K, M, G)\n"
	      "\n"
	      "Output: WROTE lines=N bytes=B seconds=S rate=R ... on stdout.\n",
	      f);
}

static double parse_num(const char *s, const char *what)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (!errno && end != s) {
		switch (*end) {
		case 'k':
		case 'K':
			v *= 1024;
			end++;
			break;
		case 'm':
		case 'M':
			v *= 1024 * 1024;
			end++;
			break;
		case 'g':
		case 'G':
			v *= 1024.0 * 1024 * 1024;
			end++;
			break;
		default:
			break;
		}
	}
	if (errno || end == s || *end || v < 0) {
		fprintf(stderr, "ts-writer: bad %s: %s\n", what, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	struct live_opts o = { .size = 100, .tick_ns = NS_PER_MS };
	const char *file = NULL;
	uint64_t gen = 0;
	bool have_d = false;
	int c;
	while ((c = getopt(argc, argv, "f:r:s:d:n:S:k:i:g:h")) != -1) {
		switch (c) {
		case 'f':
			file = optarg;
			break;
		case 'r':
			o.rate = parse_num(optarg, "-r");
			break;
		case 's':
			o.size = (size_t)parse_num(optarg, "-s");
			break;
		case 'd':
			o.duration = parse_num(optarg, "-d");
			have_d = true;
			break;
		case 'n':
			o.total = (uint64_t)parse_num(optarg, "-n");
			break;
		case 'S':
			o.first_seq = (uint64_t)parse_num(optarg, "-S");
			break;
		case 'k':
			o.mod = (uint64_t)parse_num(optarg, "-k");
			break;
		case 'i':
			o.tick_ns = (int64_t)(parse_num(optarg, "-i") * 1000);
			break;
		case 'g':
			gen = (uint64_t)parse_num(optarg, "-g");
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!file || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!gen) {
		if (o.total == 0 && !(have_d && o.rate > 0)) {
			fprintf(stderr,
				"ts-writer: give -n LINES, or -r RATE and "
				"-d SECONDS: the writer must stop by itself\n");
			return 2;
		}
		if (o.size < 2 || o.size > MAX_LINE_SIZE || o.tick_ns < 10000) {
			fprintf(stderr,
				"ts-writer: -s must be 2..%d, -i at "
				"least 10\n",
				MAX_LINE_SIZE);
			return 2;
		}
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	stop_with_parent();
	int fd = open(file,
		      O_WRONLY | O_CREAT | O_CLOEXEC |
			      (gen ? O_TRUNC : O_APPEND),
		      0644);
	if (fd < 0) {
		fprintf(stderr, "ts-writer: %s: %s\n", file, strerror(errno));
		return 1;
	}
	int rc = gen ? generate(fd, gen) : live(fd, &o);
	if (close(fd) != 0) {
		fprintf(stderr, "ts-writer: %s: %s\n", file, strerror(errno));
		rc = 1;
	}
	fflush(stdout);
	return rc;
}
