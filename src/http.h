/* http.h: the libmicrohttpd daemon: routing, static files, the JSON and
 * metrics endpoints, error answers, and starting streams.
 *
 * Threads: ts_http_listen/start/stop run on main.  Every handler runs on
 * libmicrohttpd's polling thread. */
#ifndef TS_HTTP_H
#define TS_HTTP_H

#include <stddef.h>

#include "config.h"
#include "logfile.h"
#include "cursor.h"

struct ts_http;

/* What the handlers need; owned by the caller and outliving the daemon,
 * except lfd, which ts_http_start takes over. */
struct ts_http_ctx {
	const struct ts_config *cfg;
	struct ts_log **logs;
	size_t nlogs;
	struct ts_stream_env *env;
	const char *www;        /* the www directory (may not exist) */
	int lfd;                /* listening socket from ts_http_listen */
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
