/* main.c: arguments, config loading, start and stop order, signals. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "logfile.h"
#include "cursor.h"
#include "priv.h"
#include "registry.h"
#include "stats.h"
#include "watch.h"

#ifndef TS_WWWDIR
#define TS_WWWDIR "/usr/local/share/tailsse/www"
#endif

/* The daemon's one top-level context: everything else hangs off it. */
struct ts_daemon {
	struct ts_config cfg;	/* in force: the start's, then each reload's */
	const char *cfile;	/* -c, read again on SIGHUP; NULL: none */
	const char *listen_arg; /* -l, over the file's listen */
	char **args;		/* command-line logs, added to the file's */
	int nargs;
	struct ts_registry reg;
	bool reg_ready;
	struct ts_stats stats;
	struct ts_stream_env env;
	bool env_ready;
	struct ts_hub_hangups hangups; /* epfd -1 until set up */
	struct ts_watch *watch;
	struct ts_http *http;
	int lfd; /* bound, not yet handed to ts_http_start; else -1 */
};

static void usage(FILE *f)
{
	fputs("Usage: tailsse [-c FILE] [-l ADDR:PORT] [-w WWWDIR] [NAME=PATH | PATH]...\n"
	      "Stream log files to browsers as Server-Sent Events.\n"
	      "\n"
	      "  -c, --config FILE     read the config file FILE\n"
	      "  -l, --listen ADDR:PORT  listen there (default " TS_DEFAULT_LISTEN
	      ";\n"
	      "                        [::1]:PORT for IPv6, :PORT for all interfaces)\n"
	      "  -w, --www DIR         serve the viewer from DIR (default " TS_WWWDIR
	      ")\n"
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
		fprintf(stderr,
			"tailsse: warning: open-file limit %llu is below "
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
	if (d->reg_ready)
		ts_registry_destroy(&d->reg);
	if (d->env_ready)
		ts_stream_env_destroy(&d->env);
	ts_config_free(&d->cfg);
}

static bool same_path(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* The secrets of the config (token_file, the TLS files).  At start, before
 * privileges go: they may be root's alone.  On a reload (`running` is the
 * config in force) the daemon may no longer be allowed to read them: the
 * same file that it cannot read keeps what was read from it before, said
 * in a line (systemd's LoadCredential= avoids that).  0, or -1 with one
 * line in err. */
static int read_secrets(struct ts_config *cfg, const struct ts_config *running,
			char *err, size_t errlen)
{
	int rc = ts_config_read_token(cfg, err, errlen);
	if (rc == -EACCES && running && running->token &&
	    same_path(cfg->token_file, running->token_file)) {
		fprintf(stderr,
			"tailsse: reload: %s; the token read before "
			"stays\n",
			err);
		cfg->token = strdup(running->token);
		rc = cfg->token ? 0 : -ENOMEM;
		if (rc)
			snprintf(err, errlen, "out of memory");
	}
	if (rc)
		return -1;
	rc = ts_config_read_tls(cfg, err, errlen);
	if (rc == -EACCES && running && running->tls_cert_pem &&
	    same_path(cfg->tls_cert, running->tls_cert) &&
	    same_path(cfg->tls_key, running->tls_key)) {
		fprintf(stderr,
			"tailsse: reload: %s; the certificate and key "
			"read before stay\n",
			err);
		free(cfg->tls_cert_pem);
		free(cfg->tls_key_pem);
		cfg->tls_cert_pem = strdup(running->tls_cert_pem);
		cfg->tls_key_pem = strdup(running->tls_key_pem);
		rc = cfg->tls_cert_pem && cfg->tls_key_pem ? 0 : -ENOMEM;
		if (rc)
			snprintf(err, errlen, "out of memory");
	}
	return rc ? -1 : 0;
}

/* The config file, then the command line over it; `running` on a reload,
 * else NULL.  0, or -1 with one line in err. */
static int load_config(struct ts_config *cfg, const struct ts_config *running,
		       const char *cfile, const char *listen, char **args,
		       int nargs, char *err, size_t errlen)
{
	if (cfile && ts_config_load(cfg, cfile, err, errlen) != 0)
		return -1;
	if (read_secrets(cfg, running, err, errlen) != 0)
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
		snprintf(err, errlen,
			 "no logs to follow: give NAME=PATH "
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
		      "[server] to drop privileges\n",
		      stderr);
	if (ts_priv_drop(d->cfg.user, err, errlen) != 0)
		return -1;
	return 0;
}

/* Start order: bind, drop privileges, only then open the logs (the
 * watcher) and serve.  0, or -1 with one line in err; d is freed by the
 * caller either way. */
static int start(struct ts_daemon *d, const char *www, char *err, size_t errlen)
{
	raise_fd_limit(&d->cfg, d->cfg.nlogs);
	if (bind_and_drop(d, err, errlen) != 0)
		return -1;
	if (ts_registry_init(&d->reg) != 0)
		goto oom;
	d->reg_ready = true;
	/* an array of pointers: the size of one is meant */
	/* NOLINTNEXTLINE(bugprone-sizeof-expression) */
	struct ts_log **logs = calloc(d->cfg.nlogs, sizeof(*logs));
	if (!logs)
		goto oom;
	size_t n = 0;
	int rc = 0;
	for (; n < d->cfg.nlogs; n++) {
		logs[n] = ts_log_new(d->cfg.logs[n].name, d->cfg.logs[n].path);
		if (!logs[n])
			break;
	}
	if (n == d->cfg.nlogs)
		rc = ts_registry_set(&d->reg, logs, n);
	ts_registry_put_list(logs, n); /* the registry holds its own */
	if (n < d->cfg.nlogs || rc)
		goto oom;
	if (ts_stream_env_init(&d->env, d->cfg.max_line, d->cfg.retry_ms) != 0)
		goto oom;
	d->env_ready = true;
	int hrc = ts_hub_hangups_init(&d->hangups);
	if (hrc) {
		snprintf(err, errlen, "epoll: %s", strerror(-hrc));
		return -1;
	}
	d->env.hangups = &d->hangups;
	size_t nlogs;
	logs = ts_registry_list(&d->reg, &nlogs);
	d->watch = ts_watch_new(logs, nlogs, d->cfg.heartbeat, err, errlen);
	ts_registry_put_list(logs, nlogs);
	if (!d->watch)
		return -1;
	ts_watch_set_hangups(d->watch, &d->hangups);
	ts_watch_set_stats(d->watch, &d->stats);
	struct ts_http_ctx hctx = { &d->cfg, &d->reg, &d->stats,
				    &d->env, www,     d->lfd };
	d->lfd = -1; /* the server's now, even if it fails to start */
	d->http = ts_http_start(&hctx, err, errlen);
	if (!d->http)
		return -1;
	rc = ts_watch_start(d->watch);
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

/* Keys that a running daemon cannot change: a new value is said, and the
 * one in force kept (so the next reload compares with what runs). */
static void keep_restart_keys(const struct ts_config *cur,
			      struct ts_config *next)
{
	static const char later[] = "takes effect at the next restart";
	if (strcmp(cur->listen, next->listen) != 0) {
		fprintf(stderr, "tailsse: reload: listen changed to %s: %s\n",
			next->listen, later);
		char *keep = strdup(cur->listen);
		if (keep) {
			free(next->listen);
			next->listen = keep;
			next->listen_addr = cur->listen_addr;
			next->listen_addrlen = cur->listen_addrlen;
		}
	}
	const char *const strs[][3] = {
		{ "www", cur->www, next->www },
		{ "user", cur->user, next->user },
	};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		const char *a = strs[i][1] ? strs[i][1] : "";
		const char *b = strs[i][2] ? strs[i][2] : "";
		if (strcmp(a, b) != 0)
			fprintf(stderr, "tailsse: reload: %s changed: %s\n",
				strs[i][0], later);
	}
	if (cur->conn_memory != next->conn_memory)
		fprintf(stderr, "tailsse: reload: conn_memory changed: %s\n",
			later);
	if (cur->max_line != next->max_line)
		fprintf(stderr, "tailsse: reload: max_line changed: %s\n",
			later);
	if (cur->retry_ms != next->retry_ms)
		fprintf(stderr, "tailsse: reload: retry changed: %s\n", later);
	if (!cur->tls_cert_pem != !next->tls_cert_pem)
		fprintf(stderr, "tailsse: reload: %s: %s\n",
			cur->tls_cert_pem ? "tls_cert and tls_key removed"
					  : "tls_cert and tls_key set",
			later);
	next->conn_memory = cur->conn_memory;
	next->max_line = cur->max_line;
	next->retry_ms = cur->retry_ms;
}

/* Is the log `log` the [log] `lc` (same name, same path)? */
static bool same_log(const struct ts_log *log, const struct ts_log_conf *lc)
{
	return strcmp(log->name, lc->name) == 0 &&
	       strcmp(log->path, lc->path) == 0;
}

/* What a reload does to the logs.  Every pointer in logs and gone holds a
 * reference; add points into logs. */
struct log_diff {
	struct ts_log **logs; /* next's, in its order */
	size_t nlogs;
	struct ts_log **add; /* the new ones among them */
	size_t nadd;
	struct ts_log **gone; /* the running ones that do not stay */
	size_t ngone;
};

static void diff_free(struct log_diff *df)
{
	ts_registry_put_list(df->logs, df->nlogs);
	ts_registry_put_list(df->gone, df->ngone);
	free(df->add);
	memset(df, 0, sizeof(*df));
}

/* The logs of `next`: the running ones that stay (same name and path), new
 * ones for the others; and the running ones that go.  0 or -ENOMEM. */
static int diff_logs(struct ts_daemon *d, const struct ts_config *next,
		     struct log_diff *df)
{
	size_t ncur;
	struct ts_log **cur = ts_registry_list(&d->reg, &ncur);
	memset(df, 0, sizeof(*df));
	/* arrays of pointers: the size of one is meant */
	/* NOLINTNEXTLINE(bugprone-sizeof-expression) */
	df->logs = calloc(next->nlogs + 1, sizeof(*df->logs));
	/* NOLINTNEXTLINE(bugprone-sizeof-expression) */
	df->add = calloc(next->nlogs + 1, sizeof(*df->add));
	/* NOLINTNEXTLINE(bugprone-sizeof-expression) */
	df->gone = calloc(ncur + 1, sizeof(*df->gone));
	int rc = df->logs && df->add && df->gone ? 0 : -ENOMEM;
	for (size_t i = 0; i < next->nlogs && !rc; i++) {
		struct ts_log *log = NULL;
		for (size_t k = 0; k < ncur && !log; k++) {
			if (cur[k] && same_log(cur[k], &next->logs[i])) {
				log = cur[k]; /* its reference moves */
				cur[k] = NULL;
			}
		}
		if (!log) {
			log = ts_log_new(next->logs[i].name,
					 next->logs[i].path);
			if (!log) {
				rc = -ENOMEM;
				break;
			}
			df->add[df->nadd++] = log;
		}
		df->logs[df->nlogs++] = log;
	}
	for (size_t k = 0; k < ncur; k++) {
		if (cur[k] && !rc)
			df->gone[df->ngone++] = cur[k];
		else if (cur[k])
			ts_log_unref(cur[k]);
	}
	free(cur);
	if (rc)
		diff_free(df);
	return rc;
}

/* Say what a reload changed in the logs, in one line. */
static void say_reload(const struct ts_daemon *d, const struct log_diff *df)
{
	char what[1024] = "";
	size_t len = 0;
	for (size_t i = 0; i < df->nadd + df->ngone && len < sizeof(what);
	     i++) {
		bool add = i < df->nadd;
		const struct ts_log *log = add ? df->add[i]
					       : df->gone[i - df->nadd];
		bool first = i == 0 || i == df->nadd;
		int n = snprintf(what + len, sizeof(what) - len, "%s%s",
				 !first ? ", "
				 : add	? "; added: "
					: "; removed: ",
				 log->name);
		if (n < 0)
			break;
		len += (size_t)n;
	}
	fprintf(stderr, "tailsse: reloaded %s: %zu log%s%s\n",
		d->cfile ? d->cfile : "the command line", df->nlogs,
		df->nlogs == 1 ? "" : "s", what);
}

/* The new config, read and checked as at start.  0, or -1 with one line
 * in err. */
static int read_next(struct ts_daemon *d, struct ts_config *next, char *err,
		     size_t errlen)
{
	if (ts_config_init(next) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (load_config(next, &d->cfg, d->cfile, d->listen_arg, d->args,
			d->nargs, err, errlen) != 0 ||
	    ts_priv_check(next->user, err, errlen) != 0)
		return -1;
	keep_restart_keys(&d->cfg, next);
	/* a new certificate is checked before anything changes */
	if (ts_http_set_tls(d->http, next->tls_cert_pem, next->tls_key_pem, err,
			    errlen) != 0)
		return -1;
	return 0;
}

/* SIGHUP: read the config again and apply it; a bad one is refused with
 * one line and the running one kept.  Logs that stay keep their streams;
 * removed ones end theirs (reset deleted); new ones are followed, and
 * looked at once, before they are served. */
static void reload(struct ts_daemon *d)
{
	char err[TS_ERR_MAX];
	struct ts_config next;
	struct log_diff df;
	int rc = read_next(d, &next, err, sizeof(err));
	if (rc == 0 && diff_logs(d, &next, &df) != 0) {
		snprintf(err, sizeof(err), "out of memory");
		rc = -1;
	}
	if (rc != 0) {
		fprintf(stderr,
			"tailsse: reload refused: %s; the running "
			"config stays\n",
			err);
		atomic_fetch_add(&d->stats.reloads_failed, 1);
		ts_config_free(&next);
		return;
	}
	if (ts_watch_update(d->watch, df.add, df.nadd, df.gone, df.ngone) !=
		    0 ||
	    ts_registry_set(&d->reg, df.logs, df.nlogs) != 0 ||
	    ts_http_reconfigure(d->http, &next) != 0)
		fputs("tailsse: reload: out of memory: some changes may not "
		      "apply\n",
		      stderr);
	for (size_t i = 0; i < df.ngone; i++)
		ts_log_retire(df.gone[i]);
	ts_watch_set_heartbeat(d->watch, next.heartbeat);
	say_reload(d, &df);
	diff_free(&df);
	ts_config_free(&d->cfg);
	d->cfg = next;
	atomic_fetch_add(&d->stats.reloads_ok, 1);
}

/* Until SIGTERM or SIGINT; SIGHUP reloads. */
static void wait_for_stop(struct ts_daemon *d, const sigset_t *sigs)
{
	for (;;) {
		int sig;
		if (sigwait(sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			reload(d);
			continue;
		}
		fprintf(stderr, "tailsse: %s: stopping\n",
			sig == SIGINT ? "SIGINT" : "SIGTERM");
		return;
	}
}

/* The command line's options; the arguments after them are logs. */
struct args {
	const char *cfile, *listen, *www;
	bool check;
};

/* -1: go on; else the exit status, after --help, --version or a bad
 * option. */
static int parse_args(int argc, char **argv, struct args *a)
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
	int c;

	while ((c = getopt_long(argc, argv, "c:l:w:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			a->cfile = optarg;
			break;
		case 'l':
			a->listen = optarg;
			break;
		case 'w':
			a->www = optarg;
			break;
		case 'C':
			a->check = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			puts("tailsse " PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct ts_daemon d;
	char err[TS_ERR_MAX];
	struct args a = { 0 };

	int status = parse_args(argc, argv, &a);
	if (status >= 0)
		return status;
	const char *cfile = a.cfile, *listen = a.listen, *www = a.www;
	memset(&d, 0, sizeof(d));
	d.hangups.epfd = -1;
	d.lfd = -1;

	if (ts_config_init(&d.cfg) != 0) {
		fputs("tailsse: out of memory\n", stderr);
		return 1;
	}
	if (load_config(&d.cfg, NULL, cfile, listen, argv + optind,
			argc - optind, err, sizeof(err)) != 0)
		goto fail_msg;
	if (a.check) {
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

	d.cfile = cfile;
	d.listen_arg = listen;
	d.args = argv + optind;
	d.nargs = argc - optind;
	d.stats.start_time_s = (int64_t)time(NULL);
	if (start(&d, www, err, sizeof(err)) != 0)
		goto fail_msg;
	fprintf(stderr, "tailsse %s: listening on %s (%s), %zu log%s, www %s\n",
		PACKAGE_VERSION, d.cfg.listen,
		d.cfg.tls_cert_pem ? "HTTPS" : "HTTP", d.cfg.nlogs,
		d.cfg.nlogs == 1 ? "" : "s", www);
	wait_for_stop(&d, &sigs);
	ts_http_stop(d.http);
	ts_watch_stop(d.watch);
	daemon_free(&d);
	return 0;

fail_msg:
	fprintf(stderr, "tailsse: %s\n", err);
	daemon_free(&d);
	return 1;
}
