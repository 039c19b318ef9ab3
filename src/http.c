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

#include "filter.h"
#include "http.h"
#include "sse.h"

/* Largest tail=N accepted: far more than a browser can show, small enough
 * that reading it back stays cheap. */
#define TS_TAIL_MAX 1000000

/* Memory per connection is the config's conn_memory (libmicrohttpd's pool).
 * Measured with 3,000 idle streams (RSS above the idle daemon): the pool
 * ends up about half touched, and the callback response's block is
 * calloc'ed.  pool 32 KiB + block 32 KiB: 53.6 KiB/stream; 8 KiB + 512:
 * 9.8 KiB; 6 KiB + 512: 7.8 KiB; 4 KiB + 256: 5.5 KiB.  The pool also caps
 * one write: replaying a file ran at 360 MB/s with 6 KiB, 590 with 16 KiB,
 * 700 with 256 KiB.  The block size is only used without chunked
 * encoding (HTTP/1.0, replays).
 *
 * So a stream that replays a file (ts_stream_take_replay) is sent without
 * chunked encoding (the connection closes when it ends, as for HTTP/1.0):
 * then each write comes from the response's own block, and that is made
 * big.  Measured replaying 1 GiB (1.25 GB of SSE): 64 KiB, 256 KiB and
 * 1 MiB blocks all near 1.1 GB/s, 64 KiB a little ahead. */
#ifndef TS_BLOCK_SIZE
#define TS_BLOCK_SIZE 512
#endif
#define TS_REPLAY_BLOCK (64 * 1024)

struct ts_http {
	struct ts_http_ctx ctx;   /* ctx.lfd is ours: closed by ts_http_stop */
	struct MHD_Daemon *mhd;
	char *www_real;   /* NULL when the www directory is missing */
};

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* A client going away mid-stream is how streams end: not news. */
	if (strstr(msg, "no longer available") ||
	    strstr(msg, "Connection reset") || strstr(msg, "Broken pipe") ||
	    strstr(msg, "forcibly closed"))
		return;
	/* libmicrohttpd's messages end with a newline already */
	fprintf(stderr, "tailsse: http: %s", msg);
}

static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned status,
				 const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum MHD_Result send_buf(struct MHD_Connection *conn, unsigned status,
				const char *ctype, struct ts_buf *b)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		b->len, b->data, MHD_RESPMEM_MUST_COPY);
	ts_buf_free(b);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", ctype);
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, "Allow", "GET, HEAD");
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		MHD_add_response_header(r, "Retry-After", "5");
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
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
static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned status,
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
	return send_buf(conn, status, "text/plain; charset=utf-8", &b);
}

const char *ts_http_mime(const char *path)
{
	static const struct { const char *ext, *type; } types[] = {
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
		return send_text(conn, MHD_HTTP_NOT_FOUND, "not found: %s",
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
		return send_text(conn, MHD_HTTP_NOT_FOUND, "not found: %s",
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
	MHD_add_response_header(r, "Content-Type", mime);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	if (strncmp(mime, "text/html", 9) == 0) {
		char csp[512];
		snprintf(csp, sizeof(csp), "frame-ancestors %s",
			 h->ctx.cfg->frame_ancestors);
		MHD_add_response_header(r, "Content-Security-Policy", csp);
	}
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static struct ts_log *find_log(struct ts_http *h, const char *name,
			       size_t len)
{
	for (size_t i = 0; i < h->ctx.nlogs; i++) {
		struct ts_log *log = h->ctx.logs[i];
		if (strlen(log->name) == len && memcmp(log->name, name, len) == 0)
			return log;
	}
	return NULL;
}

static enum MHD_Result serve_logs(struct ts_http *h,
				  struct MHD_Connection *conn)
{
	struct ts_buf b = TS_BUF_INIT;
	int rc = ts_buf_puts(&b, "[");
	for (size_t i = 0; i < h->ctx.nlogs && rc == 0; i++) {
		struct ts_log *log = h->ctx.logs[i];
		pthread_mutex_lock(&log->lock);
		uint64_t size = log->cur ? log->cur->size : 0;
		bool exists = log->cur != NULL;
		int oerr = log->open_errno;
		pthread_mutex_unlock(&log->lock);
		/* names are [A-Za-z0-9._-]: nothing to escape */
		rc = ts_buf_printf(&b, "%s{\"name\":\"%s\",\"size\":%llu,"
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
	if (rc == 0)
		rc = ts_buf_puts(&b, "]\n");
	if (rc) {
		ts_buf_free(&b);
		return MHD_NO;
	}
	return send_buf(conn, MHD_HTTP_OK, "application/json", &b);
}

static enum MHD_Result serve_metrics(struct ts_http *h,
				     struct MHD_Connection *conn)
{
	struct ts_stream_env *env = h->ctx.env;
	struct ts_buf b = TS_BUF_INIT;
	int rc = ts_buf_printf(
		&b,
		"# HELP tailsse_clients Event streams connected.\n"
		"# TYPE tailsse_clients gauge\n"
		"tailsse_clients %u\n"
		"# HELP tailsse_replay_clients Streams that started far behind, sent from a big buffer.\n"
		"# TYPE tailsse_replay_clients gauge\n"
		"tailsse_replay_clients %u\n"
		"# HELP tailsse_events_sent_total Events sent (lines and control events).\n"
		"# TYPE tailsse_events_sent_total counter\n"
		"tailsse_events_sent_total %llu\n"
		"# HELP tailsse_bytes_sent_total Bytes of event streams sent.\n"
		"# TYPE tailsse_bytes_sent_total counter\n"
		"tailsse_bytes_sent_total %llu\n"
		"# HELP tailsse_rotations_total Rotations seen per log.\n"
		"# TYPE tailsse_rotations_total counter\n",
		atomic_load(&env->nstreams), atomic_load(&env->nreplay),
		(unsigned long long)atomic_load(&env->events_sent),
		(unsigned long long)atomic_load(&env->bytes_sent));
	struct ts_buf sizes = TS_BUF_INIT;
	if (rc == 0)
		rc = ts_buf_puts(&sizes,
				 "# HELP tailsse_log_size_bytes Size of each log's current file.\n"
				 "# TYPE tailsse_log_size_bytes gauge\n");
	for (size_t i = 0; i < h->ctx.nlogs && rc == 0; i++) {
		struct ts_log *log = h->ctx.logs[i];
		pthread_mutex_lock(&log->lock);
		uint64_t size = log->cur ? log->cur->size : 0;
		uint64_t rot = log->rotations;
		pthread_mutex_unlock(&log->lock);
		rc = ts_buf_printf(&b, "tailsse_rotations_total{log=\"%s\"} %llu\n",
				   log->name, (unsigned long long)rot);
		if (rc == 0)
			rc = ts_buf_printf(&sizes, "tailsse_log_size_bytes{log=\"%s\"} %llu\n",
					   log->name, (unsigned long long)size);
	}
	if (rc == 0)
		rc = ts_buf_append(&b, sizes.data, sizes.len);
	ts_buf_free(&sizes);
	if (rc) {
		ts_buf_free(&b);
		return MHD_NO;
	}
	return send_buf(conn, MHD_HTTP_OK, "text/plain; version=0.0.4", &b);
}

/* The repeatable filter parameters of a request. */
struct filter_args {
	const char *grep[TS_FILTER_MAX_PATTERNS + 1];
	const char *exclude[TS_FILTER_MAX_PATTERNS + 1];
	size_t ngrep, nexclude;
	bool too_many;
	const char *nul;   /* the parameter holding a NUL byte */
};

static enum MHD_Result collect_filter_arg(void *cls, enum MHD_ValueKind kind,
					  const char *key, size_t key_size,
					  const char *value, size_t value_size)
{
	struct filter_args *a = cls;
	(void)kind;
	(void)key_size;
	const char **list = NULL;
	size_t *n = NULL;
	if (strcmp(key, "grep") == 0) {
		list = a->grep;
		n = &a->ngrep;
	} else if (strcmp(key, "exclude") == 0) {
		list = a->exclude;
		n = &a->nexclude;
	} else {
		return MHD_YES;
	}
	if (*n + 1 > TS_FILTER_MAX_PATTERNS) {
		a->too_many = true;
		return MHD_YES;
	}
	/* a pattern is text: an encoded NUL (%00) would cut it short */
	if (value && strlen(value) != value_size)
		a->nul = key;
	list[(*n)++] = value ? value : "";
	return MHD_YES;
}

static enum MHD_Result serve_events(struct ts_http *h,
				    struct MHD_Connection *conn,
				    struct ts_log *log, bool head)
{
	struct ts_start st = { TS_START_END, { 0, 0, false },
			       h->ctx.cfg->backlog_default };
	const char *hid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						      "Last-Event-ID");
	const char *qid = MHD_lookup_connection_value(
		conn, MHD_GET_ARGUMENT_KIND, "lastEventId");
	const char *tail = MHD_lookup_connection_value(
		conn, MHD_GET_ARGUMENT_KIND, "tail");

	/* Check every parameter given, even those that lose to another, so
	 * that a typo is never silently ignored. */
	struct ts_pos pos;
	if (hid && *hid && ts_sse_parse_id(hid, &pos) != 0)
		return send_text(conn, MHD_HTTP_BAD_REQUEST,
				 "bad Last-Event-ID header: expected INODE:OFFSET or OFFSET");
	if (qid && ts_sse_parse_id(qid, &pos) != 0)
		return send_text(conn, MHD_HTTP_BAD_REQUEST,
				 "bad lastEventId: expected INODE:OFFSET or OFFSET");
	uint64_t n;
	if (tail && ts_parse_uint(tail, TS_TAIL_MAX, &n) != 0)
		return send_text(conn, MHD_HTTP_BAD_REQUEST,
				 "bad tail: expected a number of lines from 0 to %d",
				 TS_TAIL_MAX);
	if (hid && *hid) {
		st.kind = TS_START_ID;
		ts_sse_parse_id(hid, &st.pos);
	} else if (qid) {
		st.kind = TS_START_ID;
		ts_sse_parse_id(qid, &st.pos);
	} else if (tail) {
		st.kind = TS_START_TAIL;
		st.tail = n;
	}

	struct filter_args fa;
	memset(&fa, 0, sizeof(fa));
	MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND,
				    collect_filter_arg, &fa);
	if (fa.too_many || fa.ngrep + fa.nexclude > TS_FILTER_MAX_PATTERNS)
		return send_text(conn, MHD_HTTP_BAD_REQUEST,
				 "too many grep/exclude patterns: at most %d",
				 TS_FILTER_MAX_PATTERNS);
	if (fa.nul)
		return send_text(conn, MHD_HTTP_BAD_REQUEST,
				 "bad %s: a pattern cannot contain NUL (%%00)",
				 fa.nul);
	/* a bare ?icase (no value) means yes, as a checkbox would */
	const char *icase = NULL;
	bool has_icase = MHD_lookup_connection_value_n(
		conn, MHD_GET_ARGUMENT_KIND, "icase", 5, &icase, NULL) == MHD_YES;
	if (has_icase && !icase)
		icase = "1";
	if (icase && strcmp(icase, "0") != 0 && strcmp(icase, "1") != 0)
		return send_text(conn, MHD_HTTP_BAD_REQUEST,
				 "bad icase: expected 0 or 1");
	const char *format = MHD_lookup_connection_value(
		conn, MHD_GET_ARGUMENT_KIND, "format");
	if (format && strcmp(format, "json") != 0 &&
	    strcmp(format, "text") != 0)
		return send_text(conn, MHD_HTTP_BAD_REQUEST,
				 "bad format: expected json or text");
	bool json = format && strcmp(format, "json") == 0;
	struct ts_filter *filter = NULL;
	char ferr[TS_ERR_MAX];
	int frc = ts_filter_new(h->ctx.env->filters, fa.grep, fa.ngrep,
				fa.exclude, fa.nexclude,
				icase && strcmp(icase, "1") == 0, &filter, ferr,
				sizeof(ferr));
	if (frc == -EINVAL)
		return send_text(conn, MHD_HTTP_BAD_REQUEST, "bad %s", ferr);
	if (frc)
		return MHD_NO;

	if (atomic_load(&h->ctx.env->nstreams) >= h->ctx.cfg->max_clients) {
		ts_filter_free(filter);
		return send_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				 "too many streams open (max_clients = %u)",
				 h->ctx.cfg->max_clients);
	}

	struct MHD_Response *r;
	struct ts_stream *s = NULL;
	if (head) {
		ts_filter_free(filter);
		r = MHD_create_response_from_buffer(0, NULL,
						    MHD_RESPMEM_PERSISTENT);
	} else {
		s = ts_stream_new(log, h->ctx.env, conn, filter, json);
		if (!s)
			return MHD_NO;
		int rc = ts_stream_start(s, &st);
		if (rc) {
			ts_stream_free(s);
			return send_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
					 "cannot start stream: %s",
					 strerror(-rc));
		}
		bool replay = ts_stream_take_replay(s);
		r = MHD_create_response_from_callback(
			MHD_SIZE_UNKNOWN,
			replay ? TS_REPLAY_BLOCK : TS_BLOCK_SIZE,
			ts_stream_read, s, ts_stream_free);
		/* (the name that libmicrohttpd 0.9.71 knows too) */
		if (r && replay &&
		    MHD_set_response_options(r, MHD_RF_HTTP_VERSION_1_0_ONLY,
					     MHD_RO_END) != MHD_YES)
			fprintf(stderr, "tailsse: cannot send a replay "
					"unchunked: it goes chunked\n");
	}
	if (!r) {
		ts_stream_free(s);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type",
				"text/event-stream; charset=utf-8");
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r); /* the stream is freed with the response */
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
			      const char *url, const char *method,
			      const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	struct ts_http *h = cls;
	(void)version;
	(void)upload_data;
	(void)con_cls;

	char shown[256];
	bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	if (!head && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
		return send_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
				 "method %s not allowed: use GET or HEAD",
				 printable(shown, sizeof(shown), method));
	if (*upload_data_size != 0)
		return send_text(conn, MHD_HTTP_BAD_REQUEST,
				 "a GET request has no body");

	if (strcmp(url, "/healthz") == 0) {
		struct ts_buf b = TS_BUF_INIT;
		if (ts_buf_puts(&b, "ok\n"))
			return MHD_NO;
		return send_buf(conn, MHD_HTTP_OK, "text/plain; charset=utf-8",
				&b);
	}
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(h, conn);
	if (strcmp(url, "/api/logs") == 0 || strcmp(url, "/api/logs/") == 0)
		return serve_logs(h, conn);
	if (strncmp(url, "/api/", 5) == 0 || strcmp(url, "/api") == 0) {
		static const char prefix[] = "/api/logs/";
		static const char suffix[] = "/events";
		size_t ul = strlen(url), pl = sizeof(prefix) - 1,
		       sl = sizeof(suffix) - 1;
		if (ul > pl + sl && strncmp(url, prefix, pl) == 0 &&
		    strcmp(url + ul - sl, suffix) == 0) {
			const char *name = url + pl;
			size_t nl = ul - pl - sl;
			struct ts_log *log = find_log(h, name, nl);
			if (log)
				return serve_events(h, conn, log, head);
			if (ts_config_valid_name(name, nl))
				return send_text(conn, MHD_HTTP_NOT_FOUND,
						 "unknown log '%.*s'", (int)nl,
						 name);
		}
		return send_text(conn, MHD_HTTP_NOT_FOUND,
				 "no such API endpoint: %s",
				 printable(shown, sizeof(shown), url));
	}
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
	h->www_real = realpath(ctx->www, NULL);
	if (!h->www_real)
		fprintf(stderr, "tailsse: www directory %s: %s (static files "
				"will be 404)\n", ctx->www, strerror(errno));
	unsigned limit = ctx->cfg->max_clients + 256;
	h->mhd = MHD_start_daemon(
		MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
			MHD_USE_ERROR_LOG,
		0, NULL, NULL, handle, h,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_LISTEN_SOCKET, h->ctx.lfd,
		MHD_OPTION_CONNECTION_LIMIT, limit,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, ctx->cfg->conn_memory,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
		MHD_OPTION_END);
	if (!h->mhd) {
		snprintf(err, errlen, "%s: cannot start the HTTP server",
			 ctx->cfg->listen);
		goto fail;
	}
	return h;
fail:
	close(h->ctx.lfd);
	free(h->www_real);
	free(h);
	return NULL;
}

void ts_http_stop(struct ts_http *h)
{
	if (!h)
		return;
	MHD_quiesce_daemon(h->mhd);
	/* End every stream: a stream that is woken while stopping ends its
	 * response, so none is suspended when the daemon stops (which
	 * libmicrohttpd 0.9.75 would refuse). */
	for (size_t i = 0; i < h->ctx.nlogs; i++) {
		struct ts_log *log = h->ctx.logs[i];
		pthread_mutex_lock(&log->lock);
		log->stopping = true;
		pthread_mutex_unlock(&log->lock);
		ts_log_wake(log, false, 0);
	}
	int64_t deadline = ts_now_ms() + 1000;
	while (atomic_load(&h->ctx.env->nstreams) > 0 &&
	       ts_now_ms() < deadline) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	MHD_stop_daemon(h->mhd);
	close(h->ctx.lfd);
	free(h->www_real);
	free(h);
}
