/* main.c: arguments, config loading, start and stop order, signals. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "logfile.h"
#include "priv.h"
#include "cursor.h"
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
	struct ts_hub_hangups hangups;  /* epfd -1 until set up */
	struct ts_watch *watch;
	struct ts_http *http;
	int lfd;        /* bound, not yet handed to ts_http_start; else -1 */
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
	if (d->lfd >= 0)
		close(d->lfd);
	d->lfd = -1;
	ts_watch_free(d->watch);
	ts_hub_hangups_destroy(&d->hangups);
	for (size_t i = 0; i < d->nlogs; i++)
		ts_log_free(d->logs[i]);
	free(d->logs);
	if (d->env_ready)
		ts_stream_env_destroy(&d->env);
	ts_config_free(&d->cfg);
}

/* The config file, then the command line over it.  0, or -1 with one line
 * in err. */
static int load_config(struct ts_config *cfg, const char *cfile,
		       const char *listen, char **args, int nargs, char *err,
		       size_t errlen)
{
	if (cfile && ts_config_load(cfg, cfile, err, errlen) != 0)
		return -1;
	/* before privileges go: the secret may be root's to read */
	if (ts_config_read_token(cfg, err, errlen) != 0 ||
	    ts_config_read_tls(cfg, err, errlen) != 0)
		return -1;
	for (int i = 0; i < nargs; i++)
		if (ts_config_add_log_arg(cfg, args[i], err, errlen) != 0)
			return -1;
	if (listen) {
		char *copy = strdup(listen);
		if (!copy) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		free(cfg->listen);
		cfg->listen = copy;
		if (ts_config_parse_listen(listen, &cfg->listen_addr,
					   &cfg->listen_addrlen, err,
					   errlen) != 0)
			return -1;
	}
	if (cfg->nlogs == 0) {
		snprintf(err, errlen, "no logs to follow: give NAME=PATH "
			 "or PATH arguments, or [log NAME] sections in -c FILE");
		return -1;
	}
	return 0;
}

/* Bind, then stop being root: everything after this (opening the logs,
 * serving files) happens with the configured user's rights only.  0, or -1
 * with one line in err. */
static int bind_and_drop(struct ts_daemon *d, char *err, size_t errlen)
{
	d->lfd = ts_http_listen(&d->cfg, err, errlen);
	if (d->lfd < 0)
		return -1;
	if (!d->cfg.user && geteuid() == 0)
		fputs("tailsse: warning: running as root; set user = in "
		      "[server] to drop privileges\n", stderr);
	if (ts_priv_drop(d->cfg.user, err, errlen) != 0)
		return -1;
	return 0;
}

/* Say which logs are not there yet, or cannot be opened. */
static void report_logs(struct ts_daemon *d)
{
	for (size_t i = 0; i < d->nlogs; i++) {
		struct ts_log *log = d->logs[i];
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
}

/* Start order: bind, drop privileges, only then open the logs (the
 * watcher) and serve.  0, or -1 with one line in err; d is freed by the
 * caller either way. */
static int start(struct ts_daemon *d, const char *www, char *err,
		 size_t errlen)
{
	raise_fd_limit(&d->cfg, d->cfg.nlogs);
	if (bind_and_drop(d, err, errlen) != 0)
		return -1;
	/* an array of pointers: the size of one is meant */
	/* NOLINTNEXTLINE(bugprone-sizeof-expression) */
	d->logs = calloc(d->cfg.nlogs, sizeof(*d->logs));
	if (!d->logs)
		goto oom;
	for (size_t i = 0; i < d->cfg.nlogs; i++) {
		d->logs[i] = ts_log_new(d->cfg.logs[i].name,
					d->cfg.logs[i].path);
		if (!d->logs[i])
			goto oom;
		d->nlogs++;
	}
	if (ts_stream_env_init(&d->env, d->cfg.max_line, d->cfg.retry_ms) != 0)
		goto oom;
	d->env_ready = true;
	int hrc = ts_hub_hangups_init(&d->hangups);
	if (hrc) {
		snprintf(err, errlen, "epoll: %s", strerror(-hrc));
		return -1;
	}
	d->env.hangups = &d->hangups;
	d->watch = ts_watch_new(d->logs, d->nlogs, d->cfg.heartbeat, err,
				errlen);
	if (!d->watch)
		return -1;
	ts_watch_set_hangups(d->watch, &d->hangups);
	struct ts_http_ctx hctx = { &d->cfg, d->logs, d->nlogs, &d->env, www,
				    d->lfd };
	d->lfd = -1; /* the server's now, even if it fails to start */
	d->http = ts_http_start(&hctx, err, errlen);
	if (!d->http)
		return -1;
	int rc = ts_watch_start(d->watch);
	if (rc) {
		snprintf(err, errlen, "cannot start the watcher: %s",
			 strerror(-rc));
		ts_http_stop(d->http);
		d->http = NULL;
		return -1;
	}
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

/* Until SIGTERM or SIGINT. */
static void wait_for_stop(const sigset_t *sigs)
{
	for (;;) {
		int sig;
		if (sigwait(sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			fputs("tailsse: SIGHUP: reloading is not supported yet; "
			      "restart to change the config\n", stderr);
			continue;
		}
		fprintf(stderr, "tailsse: %s: stopping\n",
			sig == SIGINT ? "SIGINT" : "SIGTERM");
		return;
	}
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
	d.hangups.epfd = -1;
	d.lfd = -1;
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
	if (load_config(&d.cfg, cfile, listen, argv + optind, argc - optind,
			err, sizeof(err)) != 0)
		goto fail_msg;
	if (check) {
		/* A user that does not exist would stop the start, so it fails
		 * the check too.  Not whether this process may switch to it:
		 * a check is often run by someone else than the daemon. */
		if (ts_priv_check(d.cfg.user, err, sizeof(err)) != 0)
			goto fail_msg;
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
	(void)signal(SIGPIPE, SIG_IGN); /* fails only for a bad signal */

	if (start(&d, www, err, sizeof(err)) != 0)
		goto fail_msg;
	report_logs(&d);
	fprintf(stderr, "tailsse %s: listening on %s (%s), %zu log%s, www %s\n",
		PACKAGE_VERSION, d.cfg.listen,
		d.cfg.tls_cert_pem ? "HTTPS" : "HTTP", d.nlogs,
		d.nlogs == 1 ? "" : "s", www);
	wait_for_stop(&sigs);
	ts_http_stop(d.http);
	ts_watch_stop(d.watch);
	daemon_free(&d);
	return 0;

fail_msg:
	fprintf(stderr, "tailsse: %s\n", err);
	daemon_free(&d);
	return 1;
}
