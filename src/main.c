/* main.c: arguments, config loading, start and stop order, signals. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "config.h"
#include "http.h"
#include "logfile.h"
#include "stream.h"
#include "watch.h"

#ifndef TS_WWWDIR
#define TS_WWWDIR "/usr/local/share/tailsse/www"
#endif

/* The daemon's one top-level context: everything else hangs off it. */
struct ts_daemon {
	struct ts_config cfg;
	struct ts_log **logs;
	size_t nlogs;
	struct ts_stream_env env;
	bool env_ready;
	struct ts_watch *watch;
	struct ts_http *http;
};

static void usage(FILE *f)
{
	fputs("Usage: tailsse [-c FILE] [-l ADDR:PORT] [-w WWWDIR] [NAME=PATH | PATH]...\n"
	      "Stream log files to browsers as Server-Sent Events.\n"
	      "\n"
	      "  -c, --config FILE     read the config file FILE\n"
	      "  -l, --listen ADDR:PORT  listen there (default " TS_DEFAULT_LISTEN ";\n"
	      "                        [::1]:PORT for IPv6, :PORT for all interfaces)\n"
	      "  -w, --www DIR         serve the viewer from DIR (default " TS_WWWDIR ")\n"
	      "      --check-config    validate the configuration and exit (0 ok, 1 bad)\n"
	      "  -h, --help            show this help and exit\n"
	      "  -V, --version         show the version and exit\n"
	      "\n"
	      "A PATH alone is named after its file name.  Streams: GET /api/logs/NAME/events\n",
	      f);
}

/* Room for every client, the logs and some slack, within the hard limit. */
static void raise_fd_limit(const struct ts_config *cfg, size_t nlogs)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rlim_t want = (rlim_t)cfg->max_clients + 2 * nlogs + 64;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
		fprintf(stderr, "tailsse: warning: open-file limit %llu is below "
				"max_clients + logs (%llu): raise it (LimitNOFILE=)\n",
			(unsigned long long)rl.rlim_cur,
			(unsigned long long)want);
}

static void daemon_free(struct ts_daemon *d)
{
	ts_watch_free(d->watch);
	for (size_t i = 0; i < d->nlogs; i++)
		ts_log_free(d->logs[i]);
	free(d->logs);
	if (d->env_ready)
		ts_stream_env_destroy(&d->env);
	ts_config_free(&d->cfg);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "www", required_argument, NULL, 'w' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ts_daemon d;
	char err[TS_ERR_MAX];
	const char *cfile = NULL, *listen = NULL, *www = NULL;
	bool check = false;
	int c;

	memset(&d, 0, sizeof(d));
	while ((c = getopt_long(argc, argv, "c:l:w:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cfile = optarg; break;
		case 'l': listen = optarg; break;
		case 'w': www = optarg; break;
		case 'C': check = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': puts("tailsse " PACKAGE_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}

	if (ts_config_init(&d.cfg) != 0) {
		fputs("tailsse: out of memory\n", stderr);
		return 1;
	}
	if (cfile && ts_config_load(&d.cfg, cfile, err, sizeof(err)) != 0)
		goto fail_msg;
	for (int i = optind; i < argc; i++)
		if (ts_config_add_log_arg(&d.cfg, argv[i], err, sizeof(err)) != 0)
			goto fail_msg;
	if (listen) {
		char *copy = strdup(listen);
		if (!copy) {
			snprintf(err, sizeof(err), "out of memory");
			goto fail_msg;
		}
		free(d.cfg.listen);
		d.cfg.listen = copy;
		if (ts_config_parse_listen(listen, &d.cfg.listen_addr,
					   &d.cfg.listen_addrlen, err,
					   sizeof(err)) != 0)
			goto fail_msg;
	}
	if (d.cfg.nlogs == 0) {
		snprintf(err, sizeof(err), "no logs to follow: give NAME=PATH "
			 "or PATH arguments, or [log NAME] sections in -c FILE");
		goto fail_msg;
	}
	if (check) {
		printf("%s: ok, %zu log%s\n", cfile ? cfile : "command line",
		       d.cfg.nlogs, d.cfg.nlogs == 1 ? "" : "s");
		ts_config_free(&d.cfg);
		return 0;
	}
	if (!www)
		www = d.cfg.www ? d.cfg.www : TS_WWWDIR;

	/* Signals are taken by sigwait in this thread only: block them
	 * before any thread starts, so every thread inherits the mask. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	raise_fd_limit(&d.cfg, d.cfg.nlogs);
	d.logs = calloc(d.cfg.nlogs, sizeof(*d.logs));
	if (!d.logs)
		goto oom;
	for (size_t i = 0; i < d.cfg.nlogs; i++) {
		d.logs[i] = ts_log_new(d.cfg.logs[i].name, d.cfg.logs[i].path);
		if (!d.logs[i])
			goto oom;
		d.nlogs++;
	}
	if (ts_stream_env_init(&d.env, d.cfg.max_line, d.cfg.retry_ms) != 0)
		goto oom;
	d.env_ready = true;
	d.watch = ts_watch_new(d.logs, d.nlogs, d.cfg.heartbeat, err,
			       sizeof(err));
	if (!d.watch)
		goto fail_msg;
	struct ts_http_ctx hctx = { &d.cfg, d.logs, d.nlogs, &d.env, www };
	d.http = ts_http_start(&hctx, err, sizeof(err));
	if (!d.http)
		goto fail_msg;
	int rc = ts_watch_start(d.watch);
	if (rc) {
		snprintf(err, sizeof(err), "cannot start the watcher: %s",
			 strerror(-rc));
		ts_http_stop(d.http);
		goto fail_msg;
	}
	for (size_t i = 0; i < d.nlogs; i++) {
		struct ts_log *log = d.logs[i];
		pthread_mutex_lock(&log->lock);
		if (!log->cur)
			fprintf(stderr, "tailsse: log %s: %s %s: %s\n",
				log->name, log->path,
				log->open_errno ? "cannot be opened"
						: "does not exist yet",
				log->open_errno ? strerror(log->open_errno)
						: "waiting for it");
		pthread_mutex_unlock(&log->lock);
	}
	fprintf(stderr, "tailsse %s: listening on %s, %zu log%s, www %s\n",
		PACKAGE_VERSION, d.cfg.listen, d.nlogs,
		d.nlogs == 1 ? "" : "s", www);

	for (;;) {
		int sig;
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			fputs("tailsse: SIGHUP: reloading is not supported yet; "
			      "restart to change the config\n", stderr);
			continue;
		}
		fprintf(stderr, "tailsse: %s: stopping\n",
			sig == SIGINT ? "SIGINT" : "SIGTERM");
		break;
	}
	ts_http_stop(d.http);
	ts_watch_stop(d.watch);
	daemon_free(&d);
	return 0;

oom:
	snprintf(err, sizeof(err), "out of memory");
fail_msg:
	fprintf(stderr, "tailsse: %s\n", err);
	daemon_free(&d);
	return 1;
}
