#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#ifdef HAVE_GNUTLS
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#endif

#include "before.h"
#include "conn.h"
#include "lines.h"
#include "filter.h"
#include "http.h"
#include "iplimit.h"
#include "registry.h"
#include "stats.h"
#include "tlscert.h"
#include "request.h"
#include "sse.h"
#include "worker.h"

/* Memory per connection is the config's conn_memory (libmicrohttpd's pool).
 * Measured with 3,000 idle streams (RSS above the idle daemon): the pool
 * ends up about half touched, and the callback response's block is
 * calloc'ed.  pool 32 KiB + block 32 KiB: 53.6 KiB/stream; 8 KiB + 512:
 * 9.8 KiB; 6 KiB + 512: 7.8 KiB; 4 KiB + 256: 5.5 KiB.  The pool also caps
 * one write: replaying a file ran at 360 MB/s with 6 KiB, 590 with 16 KiB,
 * 700 with 256 KiB.  The block size is only used without chunked
 * encoding (HTTP/1.0, replays): a chunked stream's reader writes into the
 * pool (libmicrohttpd 0.9.75, try_ready_chunked_body), so its block is
 * made tiny, as it is calloc'ed all the same: 10,000 idle streams 8.08 ->
 * 7.57 KiB each (bench/ idle10k, the same run).
 *
 * So a stream that replays a file (ts_conn_take_replay) is sent without
 * chunked encoding (the connection closes when it ends, as for HTTP/1.0):
 * then each write comes from the response's own block, and that is made
 * big.  Measured replaying 1 GiB (1.25 GB of SSE): 64 KiB, 256 KiB and
 * 1 MiB blocks all near 1.1 GB/s, 64 KiB a little ahead. */
#ifndef TS_BLOCK_SIZE
#define TS_BLOCK_SIZE 16
#endif
#define TS_REPLAY_BLOCK (64 * 1024)
/* An HTTP/1.0 client (nginx's default proxy_http_version) is never sent
 * chunked encoding, so its writes come from the block too: 512 bytes would
 * send a burst in hundreds of small writes.  16 KiB carries one as a
 * chunked stream's pool would, for 16 KiB more per such stream. */
#define TS_HTTP10_BLOCK (16 * 1024)

/* A stream that cannot write (its client reads nothing) is closed after
 * this long; requests in progress get it too, idle connections the
 * config's header_timeout. */
#define TS_SEND_TIMEOUT_S 120

/* Per client connection (libmicrohttpd's socket context): for the
 * header_timeout and max_streams_per_ip accounting.  libmicrohttpd's
 * thread only. */
struct sock {
	struct ts_http *h; /* for the TLS certificate callback */
	int64_t accepted_ms;
	bool requested;	 /* a request reached the access handler */
	bool ip_counted; /* a stream of it counts in h->per_ip */
	struct ts_ipaddr addr;
	bool has_addr;
};

struct ts_http {
	struct ts_http_ctx ctx; /* ctx.lfd is ours: closed by ts_http_stop */
	/* The settings in force: a copy of its own, read and replaced on
	 * libmicrohttpd's thread only; a reload leaves the next one in
	 * next_cfg (under cfg_lock) and raises cfg_new. */
	struct ts_config *cfg;
	pthread_mutex_t cfg_lock;
	struct ts_config *next_cfg;
	atomic_bool cfg_new;
	struct ts_iplimit per_ip; /* libmicrohttpd's thread only */
	struct ts_tls *tls;	  /* HTTPS with a renewable certificate */
	struct MHD_Daemon *mhd;
	struct ts_worker *worker; /* stream starts that read or search */
	pthread_mutex_t log_lock; /* protects the two below */
	uint64_t client_errors;	  /* since client_errors_ms, unsaid */
	int64_t client_errors_ms; /* when they were last said; 0: never */
	uint64_t client_errors_total;
	bool starting; /* in MHD_start_daemon: keep its message */
	char start_msg[256];
	char *www_real; /* NULL when the www directory is missing */
};

/* Our part of a client connection (NULL if libmicrohttpd has none). */
static struct sock *sock_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn,
					MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

/* max_streams_per_ip: may this connection's address open one more
 * stream?  Loopback and trusted_proxies are not counted (a proxy carries
 * everyone's streams).  Counts it when it may. */
static bool admit_ip(struct ts_http *h, struct sock *sk)
{
	unsigned max = h->cfg->max_streams_per_ip;
	if (max == 0 || !sk->has_addr || sk->ip_counted ||
	    ts_ipaddr_loopback(&sk->addr) ||
	    ts_ipaddr_listed(&sk->addr, h->cfg->trusted_proxies))
		return true;
	if (!ts_iplimit_take(&h->per_ip, &sk->addr, max))
		return false;
	sk->ip_counted = true;
	return true;
}

static void release_ip(struct ts_http *h, struct sock *sk)
{
	if (sk && sk->ip_counted) {
		ts_iplimit_give(&h->per_ip, &sk->addr);
		sk->ip_counted = false;
	}
}

/* What libmicrohttpd says about one client's request or connection (a bad
 * or oversized request, a peer that went away) is the client's business:
 * anyone can make thousands of those, so they are said once, then counted
 * and summed up at most once a minute.  Anything else is about the
 * daemon's own state and is said each time. */
static bool client_side(const char *msg)
{
	static const char *const words[] = {
		"no longer available",
		"Connection reset",
		"Broken pipe",
		"forcibly closed",
		"Error processing request",
		"Failed to receive",
		"Failed to send",
		"timed out",
		"Closing connection",
		"header",
		"request",
		"Request",
		"Host",
		"HTTP/",
		"handshake",
		"TLS alert",
		"TLS",
		"decrypt",
		"certificate",
	};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strstr(msg, words[i]))
			return true;
	return false;
}

#define TS_CLIENT_LOG_MS 60000

static void say_client_error(struct ts_http *h, const char *msg);

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct ts_http *h = cls;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* A client going away mid-stream is how streams end: not news.  Nor
	 * is a stream that the reader ended with an error: that is a client
	 * that hung up, or a failure the reader has said itself. */
	if (strstr(msg, "no longer available") ||
	    strstr(msg, "Connection reset") || strstr(msg, "Broken pipe") ||
	    strstr(msg, "forcibly closed") ||
	    strstr(msg, "application error generating") ||
	    strstr(msg, "application reported error generating"))
		return;
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '.'))
		msg[--n] = '\0';
	if (h && h->starting) {
		/* main's thread, before any other: the reason for a failure */
		snprintf(h->start_msg, sizeof(h->start_msg), "%s", msg);
		return;
	}
	if (!h || !client_side(msg)) {
		fprintf(stderr, "tailsse: http: %s\n", msg);
		return;
	}
	say_client_error(h, msg);
}

/* A client's error: said once, then counted and summed up at most once a
 * minute. */
static void say_client_error(struct ts_http *h, const char *msg)
{
	int64_t now = ts_now_ms();
	pthread_mutex_lock(&h->log_lock);
	bool first = h->client_errors_ms == 0;
	bool due = !first && now - h->client_errors_ms >= TS_CLIENT_LOG_MS;
	uint64_t count = ++h->client_errors;
	h->client_errors_total++;
	if (first || due) {
		h->client_errors = 0;
		h->client_errors_ms = now;
	}
	pthread_mutex_unlock(&h->log_lock);
	if (first)
		fprintf(stderr,
			"tailsse: http: %s (more client errors are "
			"counted: at most one line a minute)\n",
			msg);
	else if (due)
		fprintf(stderr,
			"tailsse: http: %llu client errors since the "
			"last report; the last: %s\n",
			(unsigned long long)count, msg);
}

static enum MHD_Result send_text(const struct ts_http *h,
				 struct MHD_Connection *conn, unsigned status,
				 const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Queue `r` (taken over) with the headers every answer carries: the one
 * place for them (CORS goes here). */
/* Is `origin` one of the space-separated origins of `list`? */
static bool origin_listed(const char *list, const char *origin)
{
	size_t ol = strlen(origin);
	for (const char *p = list; *p;) {
		while (*p == ' ' || *p == '\t')
			p++;
		size_t n = strcspn(p, " \t");
		if (n == ol && n > 0 && memcmp(p, origin, n) == 0)
			return true;
		p += n;
	}
	return false;
}

/* CORS: with cors_origin "*", every answer may be read by any page; with a
 * list, by the pages of the origins listed (the request's Origin is echoed,
 * and so caches must keep answers apart by it), with credentials, so that
 * a dashboard can send the token's cookie (withCredentials). */
static void cors_headers(const struct ts_http *h, struct MHD_Connection *conn,
			 struct MHD_Response *r)
{
	const char *allow = h->cfg->cors_origin;
	if (!allow)
		return;
	if (strcmp(allow, "*") == 0) {
		MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
		return;
	}
	MHD_add_response_header(r, "Vary", "Origin");
	const char *origin =
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
	if (!origin || !origin_listed(allow, origin))
		return;
	MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
	MHD_add_response_header(r, "Access-Control-Allow-Credentials", "true");
}

static enum MHD_Result answer(const struct ts_http *h,
			      struct MHD_Connection *conn, unsigned status,
			      struct MHD_Response *r, const char *ctype)
{
	cors_headers(h, conn, r);
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, "WWW-Authenticate",
					"Bearer realm=\"tailsse\"");
	MHD_add_response_header(r, "Content-Type", ctype);
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	/* (not on a stream: nothing sniffs an event stream, and each header
	 * costs every idle stream its bytes) */
	if (strncmp(ctype, "text/event-stream", 17) != 0)
		MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, "Allow", "GET, HEAD");
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE ||
	    status == MHD_HTTP_TOO_MANY_REQUESTS)
		MHD_add_response_header(r, "Retry-After", "5");
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_buf(const struct ts_http *h,
				struct MHD_Connection *conn, unsigned status,
				const char *ctype, struct ts_buf *b)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(b->len, b->data,
						MHD_RESPMEM_MUST_COPY);
	ts_buf_free(b);
	if (!r)
		return MHD_NO;
	return answer(h, conn, status, r, ctype);
}

/* Copy `s` into dst for a message: bytes that are not printable ASCII
 * (line breaks, controls, non-ASCII) are written as %XX, so a message stays
 * one line of plain text whatever the request held. */
static const char *printable(char *dst, size_t size, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (; *s && o + 4 < size; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c < 0x7f && c != '%') {
			dst[o++] = (char)c;
		} else {
			dst[o++] = '%';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
	return dst;
}

/* One line of text/plain: errors name what is wrong. */
static enum MHD_Result send_text(const struct ts_http *h,
				 struct MHD_Connection *conn, unsigned status,
				 const char *fmt, ...)
{
	struct ts_buf b = TS_BUF_INIT;
	va_list ap;
	char line[512];
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (ts_buf_puts(&b, line) || ts_buf_puts(&b, "\n")) {
		ts_buf_free(&b);
		return MHD_NO;
	}
	return send_buf(h, conn, status, "text/plain; charset=utf-8", &b);
}

const char *ts_http_mime(const char *path)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".htm", "text/html; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".mjs", "text/javascript; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".json", "application/json" },
		{ ".svg", "image/svg+xml" },
		{ ".png", "image/png" },
		{ ".ico", "image/x-icon" },
		{ ".txt", "text/plain; charset=utf-8" },
		{ ".woff2", "font/woff2" },
		{ ".map", "application/json" },
	};
	const char *dot = strrchr(path, '.');
	const char *slash = strrchr(path, '/');
	if (dot && (!slash || dot > slash))
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (strcasecmp(dot, types[i].ext) == 0)
				return types[i].type;
	return "application/octet-stream";
}

char *ts_http_static_path(const char *www_real, const char *url)
{
	if (!www_real || url[0] != '/') {
		errno = ENOENT;
		return NULL;
	}
	/* no ".." segment, whatever the file system says */
	for (const char *p = url; *p;) {
		const char *seg = p + (*p == '/');
		const char *end = strchr(seg, '/');
		size_t n = end ? (size_t)(end - seg) : strlen(seg);
		if (n == 2 && seg[0] == '.' && seg[1] == '.') {
			errno = EACCES;
			return NULL;
		}
		if (!end)
			break;
		p = end;
	}
	size_t ulen = strlen(url);
	const char *index = url[ulen - 1] == '/' ? "index.html" : "";
	size_t len = strlen(www_real) + ulen + strlen(index) + 1;
	char *want = malloc(len);
	if (!want)
		return NULL;
	snprintf(want, len, "%s%s%s", www_real, url, index);
	char *real = realpath(want, NULL);
	free(want);
	if (!real)
		return NULL;
	size_t wl = strlen(www_real);
	if (strncmp(real, www_real, wl) != 0 ||
	    (real[wl] != '/' && real[wl] != '\0')) {
		/* a symlink out of the www directory */
		free(real);
		errno = EACCES;
		return NULL;
	}
	return real;
}

static enum MHD_Result serve_static(struct ts_http *h,
				    struct MHD_Connection *conn,
				    const char *url)
{
	char *path = ts_http_static_path(h->www_real, url);
	char shown[256];
	if (!path)
		return send_text(h, conn, MHD_HTTP_NOT_FOUND, "not found: %s",
				 printable(shown, sizeof(shown), url));
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		/* a directory without the trailing slash: its index */
		close(fd);
		size_t len = strlen(path) + sizeof("/index.html");
		char *ip = malloc(len);
		if (ip) {
			snprintf(ip, len, "%s/index.html", path);
			fd = open(ip, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		} else {
			fd = -1;
		}
		free(path);
		path = ip;
		if (fd >= 0 && fstat(fd, &st) != 0) {
			close(fd);
			fd = -1;
		}
	}
	if (fd < 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		free(path);
		return send_text(h, conn, MHD_HTTP_NOT_FOUND, "not found: %s",
				 printable(shown, sizeof(shown), url));
	}
	const char *mime = ts_http_mime(path);
	struct MHD_Response *r =
		MHD_create_response_from_fd64((uint64_t)st.st_size, fd);
	free(path);
	if (!r) {
		close(fd);
		return MHD_NO;
	}
	if (strncmp(mime, "text/html", 9) == 0) {
		/* as long as the config's list: cut, it would name an origin
		 * that was not meant */
		char *csp;
		if (asprintf(&csp, "frame-ancestors %s",
			     h->cfg->frame_ancestors) < 0) {
			MHD_destroy_response(r);
			return MHD_NO;
		}
		MHD_add_response_header(r, "Content-Security-Policy", csp);
		free(csp);
	}
	return answer(h, conn, MHD_HTTP_OK, r, mime);
}

/* The log called name, with a reference for the caller, or NULL. */
static struct ts_log *find_log(struct ts_http *h, const char *name, size_t len)
{
	return ts_registry_find(h->ctx.reg, name, len);
}

static enum MHD_Result serve_logs(struct ts_http *h,
				  struct MHD_Connection *conn)
{
	struct ts_buf b = TS_BUF_INIT;
	size_t nlogs;
	struct ts_log **logs = ts_registry_list(h->ctx.reg, &nlogs);
	int rc = ts_buf_puts(&b, "[");
	for (size_t i = 0; i < nlogs && rc == 0; i++) {
		struct ts_log *log = logs[i];
		pthread_mutex_lock(&log->lock);
		uint64_t size = log->cur ? log->cur->size : 0;
		bool exists = log->cur != NULL;
		int oerr = log->open_errno;
		pthread_mutex_unlock(&log->lock);
		/* names are [A-Za-z0-9._-]: nothing to escape */
		rc = ts_buf_printf(&b,
				   "%s{\"name\":\"%s\",\"size\":%llu,"
				   "\"exists\":%s",
				   i ? "," : "", log->name,
				   (unsigned long long)size,
				   exists ? "true" : "false");
		if (rc == 0 && oerr)
			rc = ts_buf_printf(&b, ",\"error\":\"%s\"",
					   strerror(oerr));
		if (rc == 0)
			rc = ts_buf_puts(&b, "}");
	}
	ts_registry_put_list(logs, nlogs);
	if (rc == 0)
		rc = ts_buf_puts(&b, "]\n");
	if (rc) {
		ts_buf_free(&b);
		return MHD_NO;
	}
	return send_buf(h, conn, MHD_HTTP_OK, "application/json", &b);
}

/* One metric's HELP and TYPE lines. */
static int metric_head(struct ts_buf *b, const char *name, const char *type,
		       const char *help)
{
	return ts_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
			     name, type);
}

/* A metric without labels. */
static int metric(struct ts_buf *b, const char *name, const char *type,
		  const char *help, unsigned long long v)
{
	int rc = metric_head(b, name, type, help);
	return rc ? rc : ts_buf_printf(b, "%s %llu\n", name, v);
}

#define LOAD(x) ((unsigned long long)atomic_load(&(x)))

/* The counters of the daemon's refusals, reloads and watcher. */
static int metrics_stats(const struct ts_stats *st, struct ts_buf *b)
{
	int rc = metric_head(
		b, "tailsse_refused_total", "counter",
		"Requests refused at a limit: max_clients (503), max_streams_per_ip (429), a missing or wrong token (401).");
	if (!rc)
		rc = ts_buf_printf(
			b,
			"tailsse_refused_total{reason=\"max_clients\"} %llu\n"
			"tailsse_refused_total{reason=\"per_ip\"} %llu\n"
			"tailsse_refused_total{reason=\"auth\"} %llu\n",
			LOAD(st->refused_max_clients), LOAD(st->refused_per_ip),
			LOAD(st->refused_auth));
	if (!rc)
		rc = metric(
			b, "tailsse_header_timeouts_total", "counter",
			"Connections closed for sending no complete request within header_timeout.",
			LOAD(st->header_timeouts));
	if (!rc)
		rc = metric_head(b, "tailsse_reloads_total", "counter",
				 "Config reloads (SIGHUP), applied or refused.");
	if (!rc)
		rc = ts_buf_printf(
			b,
			"tailsse_reloads_total{result=\"ok\"} %llu\n"
			"tailsse_reloads_total{result=\"failed\"} %llu\n",
			LOAD(st->reloads_ok), LOAD(st->reloads_failed));
	if (!rc)
		rc = metric(
			b, "tailsse_watch_errors_total", "counter",
			"inotify watches that could not be added (retried every second).",
			LOAD(st->watch_errors));
	if (!rc)
		rc = metric(
			b, "tailsse_inotify_overflows_total", "counter",
			"Times the inotify queue overflowed (every log was looked at again).",
			LOAD(st->inotify_overflows));
	if (!rc)
		rc = metric(
			b, "process_start_time_seconds", "gauge",
			"Start time of the process since the Unix epoch, in seconds.",
			(unsigned long long)st->start_time_s);
	return rc;
}

/* The version, and whether this libmicrohttpd can serve HTTPS. */
static int metric_build_info(struct ts_buf *b)
{
	int rc = metric_head(
		b, "tailsse_build_info", "gauge",
		"The version, and whether this libmicrohttpd can serve HTTPS; always 1.");
	if (!rc)
		rc = ts_buf_printf(
			b, "tailsse_build_info{version=\"%s\",tls=\"%s\"} 1\n",
			PACKAGE_VERSION,
			MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES
				? "yes"
				: "no");
	return rc;
}

/* The counters that are not per log. */
static int metrics_daemon(struct ts_http *h, struct ts_buf *b)
{
	struct ts_stream_env *env = h->ctx.env;
	struct ts_stats *st = h->ctx.stats;
	pthread_mutex_lock(&h->log_lock);
	unsigned long long client_errors = h->client_errors_total;
	pthread_mutex_unlock(&h->log_lock);
	int rc = metric(b, "tailsse_clients", "gauge",
			"Event streams connected.",
			atomic_load(&env->nstreams));
	if (!rc)
		rc = metric(
			b, "tailsse_replay_clients", "gauge",
			"Streams that started far behind, sent from a big buffer.",
			atomic_load(&env->nreplay));
	if (!rc)
		rc = metric(b, "tailsse_events_sent_total", "counter",
			    "Events sent (lines and control events).",
			    LOAD(env->events_sent));
	if (!rc)
		rc = metric(b, "tailsse_bytes_sent_total", "counter",
			    "Bytes of event streams sent.",
			    LOAD(env->bytes_sent) +
				    (st ? LOAD(st->ping_bytes) : 0));
	if (!rc)
		rc = metric(
			b, "tailsse_filter_limit_total", "counter",
			"Streams told filter-limit: a pattern hit PCRE2's match or depth limit on a line.",
			LOAD(env->filter_limits));
	if (!rc)
		rc = metric(
			b, "tailsse_http_client_errors_total", "counter",
			"Requests and connections that libmicrohttpd refused or lost (malformed, oversized, reset).",
			client_errors);
	if (!rc && st)
		rc = metrics_stats(st, b);
	if (!rc)
		rc = metric_build_info(b);
	return rc;
}

/* The per-log metrics, each family together. */
static int metrics_logs(struct ts_http *h, struct ts_buf *b)
{
	size_t n;
	struct ts_log **logs = ts_registry_list(h->ctx.reg, &n);
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
		{ "tailsse_rotations_total", "counter",
		  "Rotations seen per log." },
		{ "tailsse_log_size_bytes", "gauge",
		  "Size of each log's current file." },
		{ "tailsse_log_streams", "gauge",
		  "Streams reading each log (a merged stream counts in each of its logs)." },
	};
	int rc = 0;
	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]) && !rc; f++) {
		rc = metric_head(b, fam[f].name, fam[f].type, fam[f].help);
		for (size_t i = 0; i < n && !rc; i++) {
			struct ts_log *log = logs[i];
			unsigned long long v;
			if (f == 2) {
				v = ts_hub_nlinks(&log->hub);
			} else {
				pthread_mutex_lock(&log->lock);
				v = f == 0     ? log->rotations
				    : log->cur ? log->cur->size
					       : 0;
				pthread_mutex_unlock(&log->lock);
			}
			rc = ts_buf_printf(b, "%s{log=\"%s\"} %llu\n",
					   fam[f].name, log->name, v);
		}
	}
	ts_registry_put_list(logs, n);
	return rc;
}

static enum MHD_Result serve_metrics(struct ts_http *h,
				     struct MHD_Connection *conn)
{
	struct ts_buf b = TS_BUF_INIT;
	int rc = metrics_daemon(h, &b);
	if (!rc)
		rc = metrics_logs(h, &b);
	if (rc) {
		ts_buf_free(&b);
		return MHD_NO;
	}
	return send_buf(h, conn, MHD_HTTP_OK, "text/plain; version=0.0.4", &b);
}

/* A request's query parameters and Last-Event-ID headers, as
 * libmicrohttpd holds them (values NUL-terminated, lengths given). */
#define TS_MAX_PARAMS 128
#define TS_MAX_ID_HEADERS 4
struct raw_request {
	struct ts_param q[TS_MAX_PARAMS];
	size_t nq;
	const char *hid[TS_MAX_ID_HEADERS];
	size_t hid_len[TS_MAX_ID_HEADERS];
	size_t nhid;
	bool too_many;
};

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind,
				   const char *key, size_t key_size,
				   const char *value, size_t value_size)
{
	struct raw_request *r = cls;
	(void)key_size;
	if (kind == MHD_HEADER_KIND) {
		if (strcasecmp(key, "Last-Event-ID") != 0)
			return MHD_YES;
		if (r->nhid == TS_MAX_ID_HEADERS) {
			r->too_many = true;
			return MHD_YES;
		}
		r->hid[r->nhid] = value ? value : "";
		r->hid_len[r->nhid++] = value ? value_size : 0;
		return MHD_YES;
	}
	if (r->nq == TS_MAX_PARAMS) {
		r->too_many = true;
		return MHD_YES;
	}
	r->q[r->nq++] = (struct ts_param){ key, value, value ? value_size : 0 };
	return MHD_YES;
}

/* Parse the request's parameters for `kind`: 0, or an answer was queued
 * (*ret) for a bad one. */
static int parse_request(const struct ts_http *h, struct MHD_Connection *conn,
			 enum ts_req_kind kind, struct raw_request *raw,
			 struct ts_request *req, enum MHD_Result *ret)
{
	char err[TS_ERR_MAX];
	memset(raw, 0, sizeof(*raw));
	MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, collect_arg,
				    raw);
	MHD_get_connection_values_n(conn, MHD_HEADER_KIND, collect_arg, raw);
	if (raw->too_many) {
		*ret = send_text(h, conn, MHD_HTTP_BAD_REQUEST,
				 "too many parameters: at most %d",
				 TS_MAX_PARAMS);
		return -EINVAL;
	}
	struct ts_req_input in = { kind,     raw->q,	   raw->nq,
				   raw->hid, raw->hid_len, raw->nhid };
	if (ts_request_parse(&in, req, err, sizeof(err)) != 0) {
		*ret = send_text(h, conn, MHD_HTTP_BAD_REQUEST, "%s", err);
		return -EINVAL;
	}
	return 0;
}

/* A stream being started on the worker; the request's con_cls. */
struct pending {
	struct MHD_Connection *conn;
	struct ts_conn *s;
	struct ts_start starts[TS_REQ_MAX_LOGS]; /* one per log of s */
	int rc;					 /* ts_conn_start's result */
	struct lines_job *lines; /* instead of a stream: /lines */
};

/* Worker thread: the connection is suspended until this resumes it, and
 * nothing else touches the stream meanwhile. */
/* Is the daemon stopping (ts_http_stop)?  Then a job still queued is not
 * worth its work: the stop waits for the queue to drain before it stops
 * libmicrohttpd, which must have no connection suspended then, and a
 * queue of costly starts (a filtered tail= of a big log each) would
 * outlast the wait. */
static bool stopping_log(struct ts_log *log)
{
	pthread_mutex_lock(&log->lock);
	bool s = log->stopping;
	pthread_mutex_unlock(&log->lock);
	return s;
}

static void start_job(void *arg)
{
	struct pending *p = arg;
	p->rc = stopping_log(p->s->cur[0].log) ? -ESHUTDOWN
					       : ts_conn_start(p->s, p->starts);
	MHD_resume_connection(p->conn); /* the last use of p here */
}

/* GET /api/logs/NAME/lines, answered on the worker. */
struct lines_job {
	struct ts_log *log;
	struct ts_stream_env *env;
	struct ts_pos pos;
	uint64_t n;
	struct ts_filter *filter;
	bool grep;
	unsigned status; /* the answer: status and body */
	struct ts_buf body;
};

static void lines_job_free(struct lines_job *j)
{
	if (!j)
		return;
	ts_filter_free(j->filter);
	ts_buf_free(&j->body);
	ts_log_unref(j->log);
	free(j);
}

/* The position names a file of the log, at a line start within it; else
 * 410 (the cases where a stream says reset lost). */
static void lines_answer(struct lines_job *j)
{
	j->status = MHD_HTTP_GONE;
	struct ts_file *f = ts_log_find_inode(j->log, j->pos.ino);
	if (!f) {
		ts_buf_printf(&j->body,
			      "gone: no file of log '%s' has inode "
			      "%llu any more\n",
			      j->log->name, (unsigned long long)j->pos.ino);
		return;
	}
	struct stat st;
	int at = fstat(f->fd, &st) != 0 ? -errno
		 : j->pos.off > (uint64_t)st.st_size
			 ? -ENODATA
			 : ts_lines_at_start(f->fd, j->pos.off);
	if (at != 1) {
		ts_buf_printf(&j->body,
			      "gone: %llu:%llu is not a line start "
			      "of log '%s' any more\n",
			      (unsigned long long)j->pos.ino,
			      (unsigned long long)j->pos.off, j->log->name);
	} else {
		struct ts_before b = {
			f->fd,	   f->ino,	     j->pos.off,
			j->n,	   j->env->max_line, j->env->filters,
			j->filter, j->grep
		};
		int rc = ts_before_json(&b, &j->body);
		j->status = rc == 0 ? MHD_HTTP_OK
				    : MHD_HTTP_INTERNAL_SERVER_ERROR;
		if (rc) {
			ts_buf_reset(&j->body);
			ts_buf_printf(&j->body, "cannot read log '%s': %s\n",
				      j->log->name, strerror(-rc));
		}
	}
	pthread_mutex_lock(&j->log->lock);
	ts_file_unref(j->log, f);
	pthread_mutex_unlock(&j->log->lock);
}

static void lines_work(void *arg)
{
	struct pending *p = arg;
	if (stopping_log(p->lines->log)) {
		p->lines->status = MHD_HTTP_SERVICE_UNAVAILABLE;
		ts_buf_printf(&p->lines->body, "the server is stopping\n");
	} else {
		lines_answer(p->lines);
	}
	MHD_resume_connection(p->conn); /* the last use of p here */
}

/* Run `fn` on the worker, the connection suspended meanwhile; the access
 * handler is called again when it is done.  Takes p over. */
static enum MHD_Result run_later(struct ts_http *h, struct pending *p,
				 void (*fn)(void *), void **con_cls)
{
	*con_cls = p;
	MHD_suspend_connection(p->conn);
	if (ts_worker_submit(h->worker, fn, p) != 0) {
		p->rc = -ENOMEM;
		if (p->lines)
			p->lines->status = MHD_HTTP_SERVICE_UNAVAILABLE;
		MHD_resume_connection(p->conn);
	}
	return MHD_YES;
}

/* Start the stream on the worker (see run_later). */
static enum MHD_Result start_later(struct ts_http *h,
				   struct MHD_Connection *conn,
				   struct ts_conn *s,
				   const struct ts_start *starts,
				   void **con_cls)
{
	struct pending *p = calloc(1, sizeof(*p));
	if (!p) {
		ts_conn_free(s);
		return MHD_NO;
	}
	p->conn = conn;
	p->s = s;
	memcpy(p->starts, starts, s->ncur * sizeof(*starts));
	return run_later(h, p, start_job, con_cls);
}

static enum MHD_Result queue_stream(const struct ts_http *h,
				    struct MHD_Connection *conn,
				    struct MHD_Response *r)
{
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	/* a stream is freed with its response */
	return answer(h, conn, MHD_HTTP_OK, r,
		      "text/event-stream; charset=utf-8");
}

/* Answer with a started stream (rc: how its start went); takes it over. */
static enum MHD_Result respond_stream(struct ts_http *h,
				      struct MHD_Connection *conn,
				      struct ts_conn *s, int rc, bool http10)
{
	if (rc == -ESHUTDOWN) {
		ts_conn_free(s);
		return send_text(h, conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				 "the server is stopping");
	}
	if (rc) {
		ts_conn_free(s);
		return send_text(h, conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
				 "cannot start stream: %s", strerror(-rc));
	}
	ts_conn_watch_hangup(s);
	bool replay = ts_conn_take_replay(s);
	/* how the watcher may write a heartbeat itself (hub.c, ping_raw):
	 * never into a TLS session; an HTTP/1.0 body or a replay's is not
	 * chunked */
	s->hub.ping_mode = h->cfg->tls_cert_pem ? TS_PING_RESUME
			   : replay || http10	? TS_PING_IDENTITY
						: TS_PING_CHUNKED;
	size_t block = replay	? TS_REPLAY_BLOCK
		       : http10 ? TS_HTTP10_BLOCK
				: TS_BLOCK_SIZE;
	struct MHD_Response *r =
		MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, block,
						  ts_conn_read, s,
						  ts_conn_free);
	if (!r) {
		ts_conn_free(s);
		return MHD_NO;
	}
	/* (the name that libmicrohttpd 0.9.71 knows too) */
	if (replay && MHD_set_response_options(r, MHD_RF_HTTP_VERSION_1_0_ONLY,
					       MHD_RO_END) != MHD_YES)
		fprintf(stderr, "tailsse: cannot send a replay unchunked: it "
				"goes chunked\n");
	return queue_stream(h, conn, r);
}

/* libmicrohttpd: a request ended; a stream whose start never got its
 * answer (the connection closed first) is freed here. */
static void request_done(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct ts_http *h = cls;
	(void)toe;
	release_ip(h, sock_of(conn)); /* a stream's request ends with it */
	struct pending *p = *con_cls;
	if (!p)
		return;
	ts_conn_free(p->s);
	lines_job_free(p->lines);
	free(p);
	*con_cls = NULL;
}

/* Where a log starts that the request's id does not place. */
static struct ts_start fresh_start(const struct ts_http *h,
				   const struct ts_request *req)
{
	struct ts_start st = { TS_START_END,
			       { 0, 0, false },
			       h->cfg->backlog_default };
	if (req->has_tail) {
		st.kind = TS_START_TAIL;
		st.tail = req->tail;
	}
	return st;
}

/* What a route's handler gets. */
struct route_req {
	struct MHD_Connection *conn;
	const char *url;
	struct ts_log *log; /* routes with a log's name */
	bool head;
	void **con_cls;
	bool http10; /* an HTTP/1.0 request */
};

/* Open a stream of `n` logs starting at `starts` (a stream of one log, or
 * with `merged` the merged stream of /api/events), with the request's
 * filters and format. */
static enum MHD_Result open_stream(struct ts_http *h,
				   struct MHD_Connection *conn,
				   struct ts_log **logs,
				   const struct ts_start *starts, size_t n,
				   bool merged, const struct ts_request *req,
				   const struct route_req *q)
{
	bool head = q->head, http10 = q->http10;
	void **con_cls = q->con_cls;
	struct ts_filter *filter = NULL;
	char ferr[TS_ERR_MAX];
	int frc = ts_filter_new(h->ctx.env->filters, req->grep, req->ngrep,
				req->exclude, req->nexclude, req->icase,
				&filter, ferr, sizeof(ferr));
	if (frc == -EINVAL)
		return send_text(h, conn, MHD_HTTP_BAD_REQUEST, "bad %s", ferr);
	if (frc)
		return MHD_NO;
	/* one connection counts once, whatever the number of logs */
	if (atomic_load(&h->ctx.env->nstreams) >= h->cfg->max_clients) {
		ts_filter_free(filter);
		TS_COUNT(h->ctx.stats, refused_max_clients);
		say_client_error(h, "a stream was refused: max_clients streams "
				    "are open (503)");
		return send_text(h, conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				 "too many streams open (max_clients = %u)",
				 h->cfg->max_clients);
	}
	struct sock *sk = head ? NULL : sock_of(conn);
	if (sk && !admit_ip(h, sk)) {
		ts_filter_free(filter);
		TS_COUNT(h->ctx.stats, refused_per_ip);
		say_client_error(h, "a stream was refused: its address has "
				    "max_streams_per_ip streams open (429)");
		return send_text(h, conn, MHD_HTTP_TOO_MANY_REQUESTS,
				 "too many streams from this address "
				 "(max_streams_per_ip = %u)",
				 h->cfg->max_streams_per_ip);
	}
	/* a stream may wait long for its client to read: not the short
	 * time that idle connections get */
	if (!head)
		MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
					  (unsigned)TS_SEND_TIMEOUT_S);
	if (head) {
		ts_filter_free(filter);
		struct MHD_Response *r =
			MHD_create_response_from_buffer(0, NULL,
							MHD_RESPMEM_PERSISTENT);
		if (!r)
			return MHD_NO;
		return queue_stream(h, conn, r);
	}
	struct ts_conn *s = ts_conn_new(h->ctx.env, conn, logs, n, merged,
					filter, req->json, req->ngrep > 0);
	if (!s)
		return MHD_NO;
	/* The end of the file, nothing before it: no reading back, no
	 * search.  Anything else may read far back or scan a directory: on
	 * the worker, with this connection suspended meanwhile. */
	bool cheap = true;
	for (size_t i = 0; i < n; i++)
		cheap &= starts[i].kind == TS_START_END && starts[i].tail == 0;
	if (cheap)
		return respond_stream(h, conn, s, ts_conn_start(s, starts),
				      http10);
	return start_later(h, conn, s, starts, con_cls);
}

static enum MHD_Result serve_events(struct ts_http *h, struct route_req *q)
{
	struct raw_request raw;
	struct ts_request req;
	enum MHD_Result ret;
	if (parse_request(h, q->conn, TS_REQ_EVENTS, &raw, &req, &ret) != 0)
		return ret;
	struct ts_start st = fresh_start(h, &req);
	if (req.from == TS_FROM_ID) {
		st.kind = TS_START_ID;
		st.pos = req.id;
	}
	return open_stream(h, q->conn, &q->log, &st, 1, false, &req, q);
}

static enum MHD_Result serve_multi(struct ts_http *h, struct route_req *q)
{
	struct raw_request raw;
	struct ts_request req;
	enum MHD_Result ret;
	if (parse_request(h, q->conn, TS_REQ_MULTI, &raw, &req, &ret) != 0)
		return ret;
	struct ts_log *logs[TS_REQ_MAX_LOGS];
	struct ts_start starts[TS_REQ_MAX_LOGS];
	size_t found = 0;
	for (; found < req.nlogs; found++) {
		size_t i = found;
		logs[i] = find_log(h, req.log[i], req.log_len[i]);
		if (!logs[i])
			break;
		starts[i] = fresh_start(h, &req);
		/* a cursor that omits a log starts it as a fresh connect */
		if (req.from == TS_FROM_ID && req.in_cursor[i]) {
			starts[i].kind = TS_START_ID;
			starts[i].pos = req.cursor[i];
		}
	}
	if (found < req.nlogs)
		ret = send_text(h, q->conn, MHD_HTTP_NOT_FOUND,
				"unknown log '%.*s'", (int)req.log_len[found],
				req.log[found]);
	else
		ret = open_stream(h, q->conn, logs, starts, req.nlogs, true,
				  &req, q);
	/* the stream's cursors hold their own references */
	for (size_t i = 0; i < found; i++)
		ts_log_unref(logs[i]);
	return ret;
}

static enum MHD_Result finish_lines(const struct ts_http *h,
				    struct MHD_Connection *conn,
				    struct pending *p)
{
	struct lines_job *j = p->lines;
	free(p);
	enum MHD_Result ret = send_buf(h, conn, j->status,
				       j->status == MHD_HTTP_OK
					       ? "application/json"
					       : "text/plain; charset=utf-8",
				       &j->body);
	lines_job_free(j);
	return ret;
}

static enum MHD_Result serve_lines(struct ts_http *h, struct route_req *q)
{
	struct raw_request raw;
	struct ts_request req;
	enum MHD_Result ret;
	if (parse_request(h, q->conn, TS_REQ_LINES, &raw, &req, &ret) != 0)
		return ret;
	struct lines_job *j = calloc(1, sizeof(*j));
	struct pending *p = calloc(1, sizeof(*p));
	if (!j || !p) {
		free(j);
		free(p);
		return MHD_NO;
	}
	char ferr[TS_ERR_MAX];
	int frc = ts_filter_new(h->ctx.env->filters, req.grep, req.ngrep,
				req.exclude, req.nexclude, req.icase,
				&j->filter, ferr, sizeof(ferr));
	if (frc) {
		free(j);
		free(p);
		return frc == -EINVAL
			       ? send_text(h, q->conn, MHD_HTTP_BAD_REQUEST,
					   "bad %s", ferr)
			       : MHD_NO;
	}
	ts_log_ref(q->log);
	j->log = q->log;
	j->env = h->ctx.env;
	j->pos = req.before;
	j->n = req.n;
	j->grep = req.ngrep > 0;
	if (q->head || req.before.off == 0) {
		/* nothing before the start of a file */
		j->status = MHD_HTTP_OK;
		ts_buf_puts(&j->body, q->head ? "" : "{\"lines\":[]}\n");
		p->lines = j;
		return finish_lines(h, q->conn, p);
	}
	p->conn = q->conn;
	p->lines = j;
	return run_later(h, p, lines_work, q->con_cls);
}

static enum MHD_Result serve_health(struct ts_http *h, struct route_req *q)
{
	(void)h;
	struct ts_buf b = TS_BUF_INIT;
	if (ts_buf_puts(&b, "ok\n"))
		return MHD_NO;
	return send_buf(h, q->conn, MHD_HTTP_OK, "text/plain; charset=utf-8",
			&b);
}

static enum MHD_Result route_metrics(struct ts_http *h, struct route_req *q)
{
	return serve_metrics(h, q->conn);
}

static enum MHD_Result route_logs(struct ts_http *h, struct route_req *q)
{
	return serve_logs(h, q->conn);
}

typedef enum MHD_Result (*route_fn)(struct ts_http *h, struct route_req *q);

/* The routes: a fixed path, or /api/logs/NAME + a suffix. */
static const struct route {
	const char *path;
	const char *suffix; /* non-NULL: path is a prefix, NAME between */
	route_fn fn;
} routes[] = {
	{ "/healthz", NULL, serve_health },
	{ "/metrics", NULL, route_metrics },
	{ "/api/logs", NULL, route_logs },
	{ "/api/logs/", NULL, route_logs },
	{ "/api/events", NULL, serve_multi },
	{ "/api/logs/", "/events", serve_events },
	{ "/api/logs/", "/lines", serve_lines },
};

/* Find the route of q->url; for a named one, its log (q->log) or the 404
 * to send.  NULL: none matches. */
static const struct route *find_route(struct ts_http *h, struct route_req *q,
				      const char **bad_name, size_t *bad_len)
{
	size_t ul = strlen(q->url);
	*bad_name = NULL;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct route *rt = &routes[i];
		if (!rt->suffix) {
			if (strcmp(q->url, rt->path) == 0)
				return rt;
			continue;
		}
		size_t pl = strlen(rt->path), sl = strlen(rt->suffix);
		if (ul <= pl + sl || strncmp(q->url, rt->path, pl) != 0 ||
		    strcmp(q->url + ul - sl, rt->suffix) != 0)
			continue;
		const char *name = q->url + pl;
		size_t nl = ul - pl - sl;
		q->log = find_log(h, name, nl);
		if (q->log)
			return rt;
		if (ts_config_valid_name(name, nl)) {
			*bad_name = name;
			*bad_len = nl;
		}
	}
	return NULL;
}

/* Equal, in a time that does not depend on where they differ. */
static bool same_secret(const char *a, size_t al, const char *b, size_t bl)
{
	unsigned char diff = al != bl;
	size_t n = al > bl ? al : bl;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)((i < al ? a[i] : 0) ^
					(i < bl ? b[i] : 0));
	return diff == 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* %XX-decode a cookie's value (the page writes it encodeURIComponent'ed)
 * into dst (size > 0).  Its length.  Not sscanf("%1x"): it skips spaces,
 * so "% 41" was taken for %41. */
static size_t cookie_decode(char *dst, size_t size, const char *s)
{
	size_t o = 0;
	for (; *s && o + 1 < size; s++) {
		int hi, lo;
		if (s[0] == '%' && (hi = hex_digit(s[1])) >= 0 &&
		    (lo = hex_digit(s[2])) >= 0) {
			dst[o++] = (char)(hi << 4 | lo);
			s += 2;
		} else {
			dst[o++] = *s;
		}
	}
	dst[o] = '\0';
	return o;
}

/* Does the request carry the token (when one is set)?  As
 * "Authorization: Bearer TOKEN", ?token=TOKEN or the tailsse_token cookie;
 * any one that matches will do. */
static bool authorized(const struct ts_http *h, struct MHD_Connection *conn)
{
	const char *tok = h->cfg->token;
	if (!tok)
		return true;
	size_t tl = strlen(tok);
	bool ok = false;
	const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						       "Authorization");
	if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
		const char *v = auth + 7;
		while (*v == ' ')
			v++;
		ok |= same_secret(v, strlen(v), tok, tl);
	}
	const char *q = NULL;
	size_t ql = 0;
	if (MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, "token",
					  5, &q, &ql) == MHD_YES &&
	    q)
		ok |= same_secret(q, ql, tok, tl);
	const char *c = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND,
						    "tailsse_token");
	if (c) {
		char dec[1024];
		size_t dl = cookie_decode(dec, sizeof(dec), c);
		ok |= same_secret(dec, dl, tok, tl);
	}
	return ok;
}

/* OPTIONS, with cors_origin set: a CORS preflight.  The methods and the
 * headers a dashboard sends: Authorization (the token) and Last-Event-ID
 * (a reconnecting stream). */
static enum MHD_Result preflight(const struct ts_http *h,
				 struct MHD_Connection *conn)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(0, NULL,
						MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Access-Control-Allow-Methods",
				"GET, HEAD, OPTIONS");
	MHD_add_response_header(r, "Access-Control-Allow-Headers",
				"Authorization, Last-Event-ID, Cache-Control");
	MHD_add_response_header(r, "Access-Control-Max-Age", "600");
	return answer(h, conn, MHD_HTTP_NO_CONTENT, r,
		      "text/plain; charset=utf-8");
}

/* libmicrohttpd's thread: take the settings of a reload, if one came. */
static void adopt_config(struct ts_http *h)
{
	if (!atomic_load_explicit(&h->cfg_new, memory_order_acquire))
		return;
	pthread_mutex_lock(&h->cfg_lock);
	struct ts_config *next = h->next_cfg;
	h->next_cfg = NULL;
	atomic_store(&h->cfg_new, false);
	pthread_mutex_unlock(&h->cfg_lock);
	if (!next)
		return;
	ts_config_free(h->cfg);
	free(h->cfg);
	h->cfg = next;
}

/* A client connection starts or ends.  Idle connections (no request yet,
 * or between two) get header_timeout; one that closes without ever having
 * sent a request after that long is counted as timed out (slowloris). */
static void conn_notify(void *cls, struct MHD_Connection *conn,
			void **socket_context,
			enum MHD_ConnectionNotificationCode code)
{
	struct ts_http *h = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		adopt_config(h);
		struct sock *sk = calloc(1, sizeof(*sk));
		*socket_context = sk;
		if (!sk)
			return;
		sk->h = h;
		sk->accepted_ms = ts_now_ms();
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
			conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		sk->has_addr = ci && ci->client_addr &&
			       ts_ipaddr_from(&sk->addr, ci->client_addr);
		MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
					  h->cfg->header_timeout);
		return;
	}
	struct sock *sk = *socket_context;
	if (!sk)
		return;
	release_ip(h, sk);
	int64_t age = ts_now_ms() - sk->accepted_ms;
	if (!sk->requested &&
	    age + 100 >= (int64_t)h->cfg->header_timeout * 1000) {
		TS_COUNT(h->ctx.stats, header_timeouts);
		say_client_error(h, "a connection sent no complete request "
				    "within header_timeout");
	}
	free(sk);
	*socket_context = NULL;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
			      const char *url, const char *method,
			      const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	struct ts_http *h = cls;
	(void)version;
	(void)upload_data;

	adopt_config(h);
	struct sock *sk = sock_of(conn);
	if (sk)
		sk->requested = true;
	if (*con_cls) {
		/* resumed: the worker has started the stream */
		struct pending *p = *con_cls;
		*con_cls = NULL;
		if (p->lines)
			return finish_lines(h, conn, p);
		struct ts_conn *s = p->s;
		int rc = p->rc;
		free(p);
		return respond_stream(h, conn, s, rc,
				      strcmp(version, MHD_HTTP_VERSION_1_0) ==
					      0);
	}

	char shown[256];
	if (strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0 && h->cfg->cors_origin)
		return preflight(h, conn);
	bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	if (!head && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
		return send_text(h, conn, MHD_HTTP_METHOD_NOT_ALLOWED,
				 "method %s not allowed: use GET or HEAD",
				 printable(shown, sizeof(shown), method));
	if (*upload_data_size != 0)
		return send_text(h, conn, MHD_HTTP_BAD_REQUEST,
				 "a GET request has no body");

	/* log data and counters need the token; /healthz and the page do
	 * not (the page must load to ask for it) */
	if ((strncmp(url, "/api/", 5) == 0 || strcmp(url, "/api") == 0 ||
	     strcmp(url, "/metrics") == 0) &&
	    !authorized(h, conn)) {
		TS_COUNT(h->ctx.stats, refused_auth);
		return send_text(h, conn, MHD_HTTP_UNAUTHORIZED,
				 "missing or wrong token: send it as "
				 "Authorization: Bearer, ?token= or the "
				 "tailsse_token cookie");
	}
	struct route_req q = {
		conn, url,     NULL,
		head, con_cls, strcmp(version, MHD_HTTP_VERSION_1_0) == 0
	};
	const char *bad;
	size_t bad_len = 0;
	const struct route *rt = find_route(h, &q, &bad, &bad_len);
	if (rt) {
		enum MHD_Result ret = rt->fn(h, &q);
		ts_log_unref(
			q.log); /* what the request made of it holds its own */
		return ret;
	}
	if (bad)
		return send_text(h, conn, MHD_HTTP_NOT_FOUND,
				 "unknown log '%.*s'", (int)bad_len, bad);
	if (strncmp(url, "/api/", 5) == 0 || strcmp(url, "/api") == 0)
		return send_text(h, conn, MHD_HTTP_NOT_FOUND,
				 "no such API endpoint: %s",
				 printable(shown, sizeof(shown), url));
	return serve_static(h, conn, url);
}

int ts_http_listen(const struct ts_config *cfg, char *err, size_t errlen)
{
	const struct sockaddr *sa = (const struct sockaddr *)&cfg->listen_addr;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "%s: socket: %s", cfg->listen,
			 strerror(errno));
		return -1;
	}
	int one = 1, zero = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->sa_family == AF_INET6)
		/* ":PORT" is all interfaces: IPv4 too */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, sa, cfg->listen_addrlen) != 0 ||
	    listen(fd, SOMAXCONN) != 0) {
		snprintf(err, errlen, "%s: %s", cfg->listen, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

#ifdef HAVE_GNUTLS
/* GnuTLS asks which certificate a handshake gets: the holder's current
 * pair (a reload may have renewed it). */
static int cert_callback(gnutls_session_t session,
			 const gnutls_datum_t *req_ca_dn, int nreqs,
			 const gnutls_pk_algorithm_t *pk_algos,
			 int pk_algos_length, gnutls_pcert_st **pcert,
			 unsigned int *pcert_length, gnutls_privkey_t *privkey)
{
	(void)req_ca_dn;
	(void)nreqs;
	(void)pk_algos;
	(void)pk_algos_length;
	struct MHD_Connection *conn = gnutls_session_get_ptr(session);
	struct sock *sk = conn ? sock_of(conn) : NULL;
	if (!sk || !sk->h->tls)
		return -1;
	void *pc, *key;
	ts_tls_get(sk->h->tls, &pc, pcert_length, &key);
	*pcert = pc;
	*privkey = key;
	return 0;
}
#endif

int ts_http_set_tls(struct ts_http *h, const char *cert_pem,
		    const char *key_pem, char *err, size_t errlen)
{
	if (!cert_pem || !key_pem)
		return 0;
	if (!h->tls) {
		if (h->cfg->tls_cert_pem)
			fputs("tailsse: reload: a new TLS certificate takes "
			      "effect at the next restart (built without "
			      "GnuTLS's headers)\n",
			      stderr);
		return 0;
	}
	bool changed;
	if (ts_tls_set(h->tls, cert_pem, key_pem, &changed, err, errlen) != 0)
		return -1;
	if (changed)
		fputs("tailsse: reload: the new TLS certificate is used from "
		      "the next connection on\n",
		      stderr);
	return 0;
}

/* TLS 1.2 and 1.3 only, no weak ciphers (GnuTLS's SECURE128 set). */
#define TS_TLS_PRIORITIES "SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* Start libmicrohttpd on the bound socket; HTTPS only when the config has
 * a certificate.  NULL with one line in err (libmicrohttpd's own reason
 * when it gave one). */
static struct MHD_Daemon *start_mhd(struct ts_http *h, char *err, size_t errlen)
{
	const struct ts_config *cfg = h->cfg;
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	struct MHD_OptionItem ops[16] = {
		{ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, h },
		{ MHD_OPTION_LISTEN_SOCKET, h->ctx.lfd, NULL },
		{ MHD_OPTION_CONNECTION_LIMIT, cfg->max_clients + 256, NULL },
		{ MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		  (intptr_t)cfg->conn_memory, NULL },
		{ MHD_OPTION_CONNECTION_TIMEOUT, cfg->header_timeout, NULL },
		{ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)request_done, h },
		{ MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)conn_notify, h },
	};
	size_t n = 7;
	if (cfg->tls_cert_pem) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			snprintf(err, errlen,
				 "tls_cert is set, but this "
				 "libmicrohttpd was built without TLS");
			return NULL;
		}
		flags |= MHD_USE_TLS;
#ifdef HAVE_GNUTLS
		if (h->tls)
			ops[n++] = (struct MHD_OptionItem){
				MHD_OPTION_HTTPS_CERT_CALLBACK, 0,
				(void *)cert_callback
			};
#endif
		if (!h->tls) {
			ops[n++] = (struct MHD_OptionItem){
				MHD_OPTION_HTTPS_MEM_CERT, 0, cfg->tls_cert_pem
			};
			ops[n++] = (struct MHD_OptionItem){
				MHD_OPTION_HTTPS_MEM_KEY, 0, cfg->tls_key_pem
			};
		}
		ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES,
						    0,
						    (void *)TS_TLS_PRIORITIES };
	}
	ops[n] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	/* what libmicrohttpd says while starting is the reason it failed */
	h->starting = true;
	h->start_msg[0] = '\0';
	struct MHD_Daemon *mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle,
						  h, MHD_OPTION_ARRAY, ops,
						  MHD_OPTION_END);
	h->starting = false;
	if (!mhd)
		snprintf(err, errlen, "%s: cannot start the HTTP server%s%s%s",
			 cfg->listen, h->start_msg[0] ? ": " : "", h->start_msg,
			 cfg->tls_cert_pem
				 ? " (is tls_key the key of tls_cert, "
				   "and both PEM?)"
				 : "");
	return mhd;
}

/* What ts_http_start set up besides the daemon and the worker. */
static void free_settings(struct ts_http *h)
{
	pthread_mutex_destroy(&h->log_lock);
	pthread_mutex_destroy(&h->cfg_lock);
	ts_config_free(h->cfg);
	free(h->cfg);
	if (h->next_cfg)
		ts_config_free(h->next_cfg);
	free(h->next_cfg);
	ts_iplimit_destroy(&h->per_ip);
	ts_tls_free(h->tls);
}

struct ts_http *ts_http_start(const struct ts_http_ctx *ctx, char *err,
			      size_t errlen)
{
	struct ts_http *h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(err, errlen, "out of memory");
		close(ctx->lfd);
		return NULL;
	}
	h->ctx = *ctx;
	h->cfg = calloc(1, sizeof(*h->cfg));
	if (!h->cfg || ts_config_copy(h->cfg, ctx->cfg) != 0) {
		snprintf(err, errlen, "out of memory");
		close(ctx->lfd);
		free(h->cfg);
		free(h);
		return NULL;
	}
	ts_iplimit_init(&h->per_ip);
	atomic_init(&h->cfg_new, false);
	if (pthread_mutex_init(&h->log_lock, NULL) != 0 ||
	    pthread_mutex_init(&h->cfg_lock, NULL) != 0) {
		snprintf(err, errlen, "out of memory");
		close(ctx->lfd);
		ts_config_free(h->cfg);
		free(h->cfg);
		free(h);
		return NULL;
	}
	h->www_real = realpath(ctx->www, NULL);
	int www_errno = errno;
	if (h->cfg->tls_cert_pem && ts_tls_available() &&
	    MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES) {
		h->tls = ts_tls_new(h->cfg->tls_cert_pem, h->cfg->tls_key_pem,
				    err, errlen);
		if (!h->tls)
			goto fail;
	}
	h->worker = ts_worker_new();
	if (!h->worker) {
		snprintf(err, errlen, "cannot start the worker thread: %s",
			 strerror(errno));
		goto fail;
	}
	h->mhd = start_mhd(h, err, errlen);
	if (!h->mhd)
		goto fail;
	/* said once it runs: a start that fails says one line only */
	if (!h->www_real)
		fprintf(stderr,
			"tailsse: www directory %s: %s (static files "
			"will be 404)\n",
			ctx->www, strerror(www_errno));
	return h;
fail:
	ts_worker_free(h->worker);
	close(h->ctx.lfd);
	free_settings(h);
	free(h->www_real);
	free(h);
	return NULL;
}

int ts_http_reconfigure(struct ts_http *h, const struct ts_config *cfg)
{
	struct ts_config *next = calloc(1, sizeof(*next));
	if (!next || ts_config_copy(next, cfg) != 0) {
		free(next);
		return -ENOMEM;
	}
	pthread_mutex_lock(&h->cfg_lock);
	struct ts_config *old = h->next_cfg; /* never taken: a newer came */
	h->next_cfg = next;
	atomic_store_explicit(&h->cfg_new, true, memory_order_release);
	pthread_mutex_unlock(&h->cfg_lock);
	if (old) {
		ts_config_free(old);
		free(old);
	}
	return 0;
}

void ts_http_stop(struct ts_http *h)
{
	if (!h)
		return;
	MHD_quiesce_daemon(h->mhd);
	/* End every stream: a stream that is woken while stopping ends its
	 * response, so none is suspended when the daemon stops (which
	 * libmicrohttpd 0.9.75 would refuse). */
	size_t nlogs;
	struct ts_log **logs = ts_registry_list(h->ctx.reg, &nlogs);
	for (size_t i = 0; i < nlogs; i++) {
		struct ts_log *log = logs[i];
		pthread_mutex_lock(&log->lock);
		log->stopping = true;
		pthread_mutex_unlock(&log->lock);
		ts_hub_changed(&log->hub);
	}
	ts_registry_put_list(logs, nlogs);
	/* streams being started are suspended until the worker is done:
	 * libmicrohttpd must not stop with any suspended */
	if (ts_worker_wait_idle(h->worker, 5000) != 0)
		fprintf(stderr, "tailsse: stream starts still running at "
				"exit\n");
	int64_t deadline = ts_now_ms() + 1000;
	while (atomic_load(&h->ctx.env->nstreams) > 0 &&
	       ts_now_ms() < deadline) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	MHD_stop_daemon(h->mhd);
	ts_worker_free(h->worker);
	close(h->ctx.lfd);
	free_settings(h);
	free(h->www_real);
	free(h);
}
