/* http.h: the libmicrohttpd daemon: routing, static files, the JSON and
 * metrics endpoints, error answers, and starting streams.
 *
 * Threads: ts_http_listen/start/stop run on main.  Every handler runs on
 * libmicrohttpd's polling thread. */
#ifndef TS_HTTP_H
#define TS_HTTP_H

#include <stddef.h>

#include "config.h"
#include "cursor.h"
#include "logfile.h"
#include "registry.h"
#include "stats.h"

struct ts_http;

/* What the handlers need; owned by the caller and outliving the daemon,
 * except lfd, which ts_http_start takes over, and cfg, of which it keeps a
 * copy. */
struct ts_http_ctx {
	const struct ts_config *cfg;
	struct ts_registry *reg; /* the logs served, by name */
	struct ts_stats *stats;	 /* NULL: not counted */
	struct ts_stream_env *env;
	const char *www; /* the www directory (may not exist) */
	int lfd;	 /* listening socket from ts_http_listen */
};

/* Bind and listen on cfg's address.  Separate from ts_http_start so that
 * the one step that may need root (a port below 1024) is done before the
 * daemon drops privileges and opens any log.  Returns the socket, or -1
 * with one line in err ("127.0.0.1:8080: Address already in use"). */
int ts_http_listen(const struct ts_config *cfg, char *err, size_t errlen);

/* Start serving on ctx->lfd.  From this call on the socket belongs to the
 * server, whatever the outcome: closed here on failure, by ts_http_stop
 * otherwise.  NULL with one line in err. */
struct ts_http *ts_http_start(const struct ts_http_ctx *ctx, char *err,
			      size_t errlen);

/* A reload: the settings of `cfg` that can change while running (token,
 * cors_origin, frame_ancestors, max_clients up to the start's value + 256,
 * backlog_default, header_timeout, max_streams_per_ip, trusted_proxies)
 * apply from the next request on.  cfg is copied.  0 or -ENOMEM.  Main
 * thread. */
int ts_http_reconfigure(struct ts_http *h, const struct ts_config *cfg);

/* A reload: new handshakes get this certificate and key (PEM text), once
 * checked; the same as now changes nothing.  NULL: not HTTPS (a change
 * between HTTP and HTTPS needs a restart: main says so).  0, or -1 with one
 * line in err (the certificate in use stays).  Main thread. */
int ts_http_set_tls(struct ts_http *h, const char *cert_pem,
		    const char *key_pem, char *err, size_t errlen);

/* Stop accepting, end every stream cleanly, stop the daemon, close the
 * listening socket, free. */
void ts_http_stop(struct ts_http *h);

/* Route a request path to a file under `www_real` (a realpath): refuses
 * any ".." segment and anything whose real path leaves the directory.
 * Returns a malloc'd real path, or NULL (errno ENOENT/EACCES/EINVAL).
 * Pure apart from realpath(3); any thread. */
char *ts_http_static_path(const char *www_real, const char *url);

/* The Content-Type for a file name. */
const char *ts_http_mime(const char *path);

#endif
