#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "stats.h"
#include "watch.h"

#define DIR_MASK                                                           \
	(IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_ATTRIB | \
	 IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
#define FILE_MASK (IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)
#define MAX_FWD 8 /* generations of one log watched at once */

struct logw;

/* One inotify watch descriptor and the logs it concerns. */
struct wdent {
	bool used;
	bool dir;
	struct logw **logs;
	size_t n, cap;
};

/* The watcher's view of one log. */
struct logw {
	struct ts_log *log; /* its path's directory and file name: log->dir,
			     * log->base */
	int dirwd;	    /* -1: not watched (retried every tick) */
	/* While the directory does not exist: a watch on the nearest
	 * ancestor that does, to notice it being created. */
	int ancwd;
	/* When the path is a symlink: the directory of its target, where
	 * the target may be rotated or created. */
	char *tdir, *tbase;
	int tdirwd;
	bool dirty; /* in the dirty queue */
	int64_t last_check_us;
	int64_t window_us; /* coalescing window, from the number of streams */
	bool watch_failed; /* a file watch could not be added */
	int watch_errno;   /* why a watch could not be added, 0: none */
	/* what was last said about the log on stderr (say_state) */
	enum log_state {
		ST_NEW,
		ST_OK,
		ST_MISSING,
		ST_UNREADABLE,
		ST_UNWATCHED
	} said;
	int said_errno;
	size_t nfwd;
	struct {
		int wd;
		uint64_t ino;
	} fwd[MAX_FWD];
};

struct ts_watch {
	int ifd, efd;
	int kfd; /* eventfd: a log's woken streams have all run */
	pthread_t thread;
	bool started;
	struct logw **lw; /* the logs followed, each allocated alone (the
			      * watches and the queue point to them) */
	size_t nlogs, cap;
	struct wdent *ents; /* indexed by wd */
	size_t nents;
	atomic_uint heartbeat_s;
	struct logw **queue; /* dirty logs, each once; room for cap */
	size_t nqueue;
	unsigned long overflows;	/* IN_Q_OVERFLOW seen */
	struct ts_hub_hangups *hangups; /* NULL: none to run */
	struct ts_stats *stats;		/* NULL: not counted */
	/* A change of the set of logs (a reload), handed to the thread:
	 * cfd wakes it, cmd_lock protects the four below, cmd_done is
	 * signalled once it is applied. */
	int cfd;
	pthread_mutex_t cmd_lock;
	pthread_cond_t cmd_done;
	struct ts_log *const *cmd_add, *const *cmd_del;
	size_t cmd_nadd, cmd_ndel;
	int cmd_rc;
	bool cmd_posted;
};

/* When a log changes, its streams are woken at once if the HTTP thread has
 * run every stream of the log's last wake-up (so the first change after a
 * quiet moment goes out at once); otherwise the changes gather until it has
 * (see check_at), so that one wake-up delivers many lines in one write, as
 * many as came while the thread was busy.  The window below only bounds
 * that wait, as a safety net (the HTTP thread busy with one huge read, say;
 * a stalled client's stream is not suspended, so it is not waited for):
 * waking a stream costs its HTTP thread some microseconds (resume, read,
 * send: about 7 µs here, mostly the kernel's), so it grows with the number
 * of streams.
 * Measured (bench/run.sh): a fixed window (1 ms floor) gave one stream p50
 * 0.61 ms, a 100 µs floor 0.15 ms; then waking as soon as the last wake-up
 * was run: 100 streams x 1,000 lines/s p50 0.91 -> 0.48 ms, p99 1.75 ->
 * 1.16 ms; 100 streams x 10,000 lines/s p99 29.6 -> 1.1 ms.
 * Streams that the watcher serves itself (hub.c, a plain-HTTP stream whose
 * client keeps up) are done when ts_hub_changed returns: they never hold
 * a change back; what comes while it writes to them gathers for the next
 * look, as above. */
#ifndef TS_COALESCE_MIN_US
#define TS_COALESCE_MIN_US 100
#endif
#define TS_COALESCE_MAX_US 50000
#ifndef TS_WAKE_COST_US
#define TS_WAKE_COST_US 10
#endif

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void mark(struct ts_watch *w, struct logw *l)
{
	if (l->dirty)
		return;
	l->dirty = true;
	w->queue[w->nqueue++] = l;
}

static struct wdent *ent_get(struct ts_watch *w, int wd, bool grow)
{
	if (wd < 0)
		return NULL;
	if ((size_t)wd >= w->nents) {
		if (!grow)
			return NULL;
		size_t n = w->nents ? w->nents : 16;
		while (n <= (size_t)wd)
			n *= 2;
		struct wdent *p = realloc(w->ents, n * sizeof(*p));
		if (!p)
			return NULL;
		memset(p + w->nents, 0, (n - w->nents) * sizeof(*p));
		w->ents = p;
		w->nents = n;
	}
	return &w->ents[wd];
}

static int ent_add_log(struct wdent *e, struct logw *log)
{
	for (size_t i = 0; i < e->n; i++)
		if (e->logs[i] == log)
			return 0;
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 2;
		/* an array of pointers: the size of one is meant */
		/* NOLINTNEXTLINE(bugprone-sizeof-expression) */
		struct logw **p = realloc(e->logs, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		e->logs = p;
		e->cap = cap;
	}
	e->logs[e->n++] = log;
	return 0;
}

/* Forget `log` on watch `wd`; drop the watch when nobody needs it. */
static void ent_del_log(struct ts_watch *w, int wd, struct logw *log)
{
	struct wdent *e = ent_get(w, wd, false);
	if (!e || !e->used)
		return;
	for (size_t i = 0; i < e->n; i++) {
		if (e->logs[i] == log) {
			e->logs[i] = e->logs[--e->n];
			break;
		}
	}
	if (e->n == 0) {
		inotify_rm_watch(w->ifd, wd);
		e->used = false;
	}
}

static void ent_clear(struct wdent *e)
{
	e->used = false;
	e->n = 0;
}

static int add_dir_watch(struct ts_watch *w, struct logw *l, const char *dir)
{
	int wd = inotify_add_watch(w->ifd, dir, DIR_MASK);
	if (wd < 0) {
		/* a missing directory is waited for, not an error */
		if (errno != ENOENT && errno != ENOTDIR) {
			l->watch_errno = errno;
			TS_COUNT(w->stats, watch_errors);
		}
		return -1;
	}
	struct wdent *e = ent_get(w, wd, true);
	if (!e || ent_add_log(e, l) != 0) {
		inotify_rm_watch(w->ifd, wd);
		return -1;
	}
	e->used = true;
	e->dir = true;
	return wd;
}

/* Watch the log's directory; while it does not exist, the nearest
 * ancestor that does, so that its creation is noticed without polling. */
static void watch_dir(struct ts_watch *w, struct logw *l)
{
	/* A directory created between our failed attempt and the watch on
	 * its parent raised no event there: go deeper until the watched
	 * ancestor's child is really missing (a few rounds at most). */
	for (int round = 0; round < 16; round++) {
		l->dirwd = add_dir_watch(w, l, l->log->dir);
		if (l->dirwd >= 0) {
			if (l->ancwd >= 0)
				ent_del_log(w, l->ancwd, l);
			l->ancwd = -1;
			return;
		}
		char *anc = strdup(l->log->dir);
		if (!anc)
			return;
		bool child_exists = false;
		for (;;) {
			char *slash = strrchr(anc, '/');
			if (!slash)
				break;
			char *child = strdup(anc);
			if (slash == anc)
				slash[1] = '\0'; /* the root */
			else
				*slash = '\0';
			int wd = add_dir_watch(w, l, anc);
			if (wd >= 0) {
				if (l->ancwd >= 0 && l->ancwd != wd)
					ent_del_log(w, l->ancwd, l);
				l->ancwd = wd;
				struct stat st;
				child_exists = child && stat(child, &st) == 0;
				free(child);
				break;
			}
			free(child);
			if (slash == anc)
				break;
		}
		free(anc);
		if (!child_exists)
			return;
	}
}

/* Make the file watches of `l` match the log's open generations.  The
 * files are referenced meanwhile, so their fds stay what they were. */
static bool sync_file_watches(struct ts_watch *w, struct logw *l)
{
	bool added = false;
	struct ts_log *log = l->log;
	struct ts_file *files[MAX_FWD];
	size_t nf = 0;

	pthread_mutex_lock(&log->lock);
	for (struct ts_file *f = log->files; f && nf < MAX_FWD; f = f->next) {
		ts_file_ref(f);
		files[nf++] = f;
	}
	pthread_mutex_unlock(&log->lock);

	/* drop watches of generations that are gone */
	for (size_t i = 0; i < l->nfwd;) {
		bool keep = false;
		for (size_t j = 0; j < nf; j++)
			keep |= files[j]->ino == l->fwd[i].ino;
		if (keep) {
			i++;
			continue;
		}
		ent_del_log(w, l->fwd[i].wd, l);
		l->fwd[i] = l->fwd[--l->nfwd];
	}
	/* add the new ones, through the fd: exactly the inode we read */
	for (size_t j = 0; j < nf; j++) {
		bool have = false;
		for (size_t i = 0; i < l->nfwd; i++)
			have |= l->fwd[i].ino == files[j]->ino;
		if (have || l->nfwd == MAX_FWD)
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", files[j]->fd);
		int wd = inotify_add_watch(w->ifd, path, FILE_MASK);
		if (wd < 0) {
			l->watch_errno = errno;
			TS_COUNT(w->stats, watch_errors);
		}
		struct wdent *e = wd >= 0 ? ent_get(w, wd, true) : NULL;
		if (!e || ent_add_log(e, l) != 0) {
			if (e && e->n == 0) {
				inotify_rm_watch(w->ifd, wd);
				e->used = false;
			}
			l->watch_failed = true; /* retried every tick */
			continue;
		}
		e->used = true;
		e->dir = false;
		l->fwd[l->nfwd].wd = wd;
		l->fwd[l->nfwd].ino = files[j]->ino;
		l->nfwd++;
		added = true;
	}

	pthread_mutex_lock(&log->lock);
	for (size_t j = 0; j < nf; j++)
		ts_file_unref(log, files[j]);
	pthread_mutex_unlock(&log->lock);
	return added;
}

/* If the path is a symlink, watch the directory of its target too (one
 * level: a chain of links is followed to its end by realpath). */
static void watch_link_target(struct ts_watch *w, struct logw *l)
{
	struct stat st;
	char *target = NULL;
	if (lstat(l->log->path, &st) == 0 && S_ISLNK(st.st_mode)) {
		target = realpath(l->log->path, NULL);
		if (!target) {
			/* dangling: the target may appear later */
			char buf[PATH_MAX];
			ssize_t n =
				readlink(l->log->path, buf, sizeof(buf) - 1);
			if (n > 0) {
				buf[n] = '\0';
				if (buf[0] == '/')
					target = strdup(buf);
				else if (asprintf(&target, "%s/%s", l->log->dir,
						  buf) < 0)
					target = NULL;
			}
		}
	}
	char *slash = target ? strrchr(target, '/') : NULL;
	if (slash && slash != target)
		*slash = '\0';
	if (slash && l->tdir && strcmp(target, l->tdir) == 0 &&
	    strcmp(slash + 1, l->tbase) == 0 && l->tdirwd >= 0) {
		free(target);
		return; /* unchanged */
	}
	if (l->tdirwd >= 0)
		ent_del_log(w, l->tdirwd, l);
	l->tdirwd = -1;
	free(l->tdir);
	l->tdir = NULL;
	l->tbase = NULL;
	if (!slash || slash == target || strcmp(target, l->log->dir) == 0) {
		free(target);
		return;
	}
	l->tdir = target;
	l->tbase = slash + 1;
	l->tdirwd = add_dir_watch(w, l, l->tdir);
}

/* What the log is now, for say_state: its file open, missing, unreadable,
 * or not watched (then its changes would go unnoticed). */
static enum log_state log_state(const struct logw *l, int *err)
{
	struct ts_log *log = l->log;
	pthread_mutex_lock(&log->lock);
	bool open = log->cur != NULL;
	int oerr = log->open_errno;
	pthread_mutex_unlock(&log->lock);
	*err = 0;
	if (l->watch_errno &&
	    (l->watch_failed || (l->dirwd < 0 && l->ancwd < 0))) {
		*err = l->watch_errno;
		return ST_UNWATCHED;
	}
	if (oerr) {
		*err = oerr;
		return ST_UNREADABLE;
	}
	return open ? ST_OK : ST_MISSING;
}

/* Say on stderr what became of a log, once per change of state (never
 * once per retry), and once when it is back. */
static void say_state(struct logw *l)
{
	int err;
	enum log_state st = log_state(l, &err);
	if (st == l->said && err == l->said_errno)
		return;
	const char *name = l->log->name, *path = l->log->path;
	switch (st) {
	case ST_OK:
		if (l->said != ST_NEW)
			fprintf(stderr, "tailsse: log %s: %s %s: followed\n",
				name, path,
				l->said == ST_MISSING ? "exists now"
				: l->said == ST_UNREADABLE
					? "can be read again"
					: "can be watched again");
		break;
	case ST_MISSING:
		fprintf(stderr,
			"tailsse: log %s: %s does not exist%s: "
			"waiting for it\n",
			name, path, l->said == ST_NEW ? " yet" : " any more");
		break;
	case ST_UNREADABLE:
		fprintf(stderr,
			"tailsse: log %s: %s cannot be opened: %s "
			"(tried again every second)\n",
			name, path, strerror(err));
		break;
	case ST_UNWATCHED:
		fprintf(stderr,
			"tailsse: log %s: %s cannot be watched: %s%s "
			"(tried again every second)\n",
			name, path, strerror(err),
			err == ENOSPC ? " (raise fs.inotify.max_user_watches)"
				      : "");
		break;
	case ST_NEW:
		break;
	}
	l->said = st;
	l->said_errno = err;
}

static void check_log(struct ts_watch *w, struct logw *l)
{
	l->last_check_us = now_us();
	if (l->dirwd < 0)
		watch_dir(w, l);
	watch_link_target(w, l);
	ts_log_check(l->log);
	int64_t window = (int64_t)ts_hub_nlinks(&l->log->hub) * TS_WAKE_COST_US;
	l->window_us = window < TS_COALESCE_MIN_US   ? TS_COALESCE_MIN_US
		       : window > TS_COALESCE_MAX_US ? TS_COALESCE_MAX_US
						     : window;
	/* A write between opening a new file and watching it raised no
	 * event: look once more now that the watch is in place. */
	if (sync_file_watches(w, l))
		ts_log_check(l->log);
	if (!l->watch_failed && l->dirwd >= 0)
		l->watch_errno = 0;
	say_state(l);
}

/* Stop following l's log: its watches, its place in the queue, its
 * reference. */
static void logw_free(struct ts_watch *w, struct logw *l)
{
	struct ts_log *log = l->log;
	if (w->ifd >= 0) {
		if (l->dirwd >= 0)
			ent_del_log(w, l->dirwd, l);
		if (l->ancwd >= 0)
			ent_del_log(w, l->ancwd, l);
		if (l->tdirwd >= 0)
			ent_del_log(w, l->tdirwd, l);
		for (size_t k = 0; k < l->nfwd; k++)
			ent_del_log(w, l->fwd[k].wd, l);
	}
	if (l->dirty) {
		size_t keep = 0;
		for (size_t i = 0; i < w->nqueue; i++)
			if (w->queue[i] != l)
				w->queue[keep++] = w->queue[i];
		w->nqueue = keep;
	}
	pthread_mutex_lock(&log->hub.lock);
	log->hub.kick_fd = -1;
	pthread_mutex_unlock(&log->hub.lock);
	ts_log_unref(log);
	free(l->tdir);
	free(l);
}

/* Room for `more` logs in lw and queue.  0 or -ENOMEM. */
static int reserve(struct ts_watch *w, size_t more)
{
	if (w->nlogs + more <= w->cap)
		return 0;
	size_t cap = w->cap ? w->cap : 4;
	while (cap < w->nlogs + more)
		cap *= 2;
	/* arrays of pointers: the size of one is meant */
	/* NOLINTNEXTLINE(bugprone-sizeof-expression) */
	struct logw **lw = realloc(w->lw, cap * sizeof(*lw));
	if (!lw)
		return -ENOMEM;
	w->lw = lw;
	/* NOLINTNEXTLINE(bugprone-sizeof-expression) */
	struct logw **q = realloc(w->queue, cap * sizeof(*q));
	if (!q)
		return -ENOMEM;
	w->queue = q;
	w->cap = cap;
	return 0;
}

/* Follow `log` too (a reference of the watcher's), and look at it once.
 * 0 or -ENOMEM. */
static int logw_add(struct ts_watch *w, struct ts_log *log)
{
	if (reserve(w, 1) != 0)
		return -ENOMEM;
	struct logw *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	ts_log_ref(log);
	l->log = log;
	l->dirwd = -1;
	l->ancwd = -1;
	l->tdirwd = -1;
	pthread_mutex_lock(&log->hub.lock);
	log->hub.kick_fd = w->kfd;
	pthread_mutex_unlock(&log->hub.lock);
	w->lw[w->nlogs++] = l;
	check_log(w, l);
	return 0;
}

static void logw_del(struct ts_watch *w, const struct ts_log *log)
{
	for (size_t i = 0; i < w->nlogs; i++) {
		if (w->lw[i]->log == log) {
			struct logw *l = w->lw[i];
			w->lw[i] = w->lw[--w->nlogs];
			/* a last look: lines written before the reload that
			 * the coalescing window still held are sent before
			 * the streams end */
			ts_log_check(l->log);
			logw_free(w, l);
			return;
		}
	}
}

void ts_watch_free(struct ts_watch *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->nlogs; i++)
		logw_free(w, w->lw[i]);
	for (size_t i = 0; i < w->nents; i++)
		free(w->ents[i].logs);
	free(w->ents);
	free(w->lw);
	free(w->queue);
	if (w->ifd >= 0)
		close(w->ifd);
	if (w->efd >= 0)
		close(w->efd);
	if (w->kfd >= 0)
		close(w->kfd);
	if (w->cfd >= 0)
		close(w->cfd);
	pthread_cond_destroy(&w->cmd_done);
	pthread_mutex_destroy(&w->cmd_lock);
	free(w);
}

struct ts_watch *ts_watch_new(struct ts_log **logs, size_t nlogs,
			      unsigned heartbeat_s, char *err, size_t errlen)
{
	struct ts_watch *w = calloc(1, sizeof(*w));
	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->efd = -1;
	w->kfd = -1;
	w->cfd = -1;
	atomic_init(&w->heartbeat_s, heartbeat_s);
	if (pthread_mutex_init(&w->cmd_lock, NULL) != 0) {
		free(w);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (pthread_cond_init(&w->cmd_done, NULL) != 0) {
		pthread_mutex_destroy(&w->cmd_lock);
		free(w);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ifd < 0) {
		snprintf(err, errlen, "inotify_init1: %s%s", strerror(errno),
			 errno == EMFILE ? " (too many inotify instances:"
					   " see fs.inotify.max_user_instances)"
					 : "");
		goto fail;
	}
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->kfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->cfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->efd < 0 || w->kfd < 0 || w->cfd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (reserve(w, nlogs ? nlogs : 1) != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < nlogs; i++) {
		if (logw_add(w, logs[i]) != 0) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	return w;
fail:
	ts_watch_free(w);
	return NULL;
}

void ts_watch_set_hangups(struct ts_watch *w, struct ts_hub_hangups *hs)
{
	w->hangups = hs;
}

void ts_watch_set_stats(struct ts_watch *w, struct ts_stats *stats)
{
	w->stats = stats;
}

void ts_watch_set_heartbeat(struct ts_watch *w, unsigned heartbeat_s)
{
	atomic_store(&w->heartbeat_s, heartbeat_s);
}

static void mark_all(struct ts_watch *w)
{
	for (size_t i = 0; i < w->nlogs; i++) {
		ts_log_dir_changed(w->lw[i]->log);
		mark(w, w->lw[i]);
	}
}

static void handle_event(struct ts_watch *w, const struct inotify_event *ev)
{
	if (ev->mask & IN_Q_OVERFLOW) {
		w->overflows++;
		TS_COUNT(w->stats, inotify_overflows);
		fprintf(stderr, "tailsse: inotify queue overflow: "
				"re-checking every log\n");
		mark_all(w);
		return;
	}
	struct wdent *e = ent_get(w, ev->wd, false);
	if (!e || !e->used)
		return;
	for (size_t i = 0; i < e->n; i++) {
		struct logw *l = e->logs[i];
		/* the log's cache of its directory is stale now */
		if (e->dir)
			ts_log_dir_changed(l->log);
		/* in the log's own directory only its name matters; in an
		 * ancestor, anything may be the directory coming into being */
		if (e->dir && ev->len > 0 && !(ev->mask & IN_IGNORED) &&
		    ((ev->wd == l->dirwd &&
		      strcmp(ev->name, l->log->base) != 0) ||
		     (ev->wd == l->tdirwd && ev->wd != l->dirwd &&
		      strcmp(ev->name, l->tbase) != 0)))
			continue;
		mark(w, l);
		if (ev->mask & IN_IGNORED) {
			/* the watch is gone (its file or directory went) */
			if (ev->wd == l->dirwd) {
				l->dirwd = -1;
			} else if (ev->wd == l->ancwd) {
				l->ancwd = -1;
			} else if (ev->wd == l->tdirwd) {
				l->tdirwd = -1;
			} else {
				for (size_t k = 0; k < l->nfwd; k++)
					if (l->fwd[k].wd == ev->wd)
						l->fwd[k] = l->fwd[--l->nfwd];
			}
		}
	}
	if (ev->mask & IN_IGNORED)
		ent_clear(e);
}

static void drain_inotify(struct ts_watch *w)
{
	/* aligned as struct inotify_event requires */
	char buf[64 * 1024]
		__attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(w->ifd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *)p;
			handle_event(w, ev);
			p += sizeof(*ev) + ev->len;
		}
	}
}

/* Once a second: look again at the logs that could not be opened or
 * watched, and at rotated-away files still being drained. */
static void tick(struct ts_watch *w)
{
	for (size_t i = 0; i < w->nlogs; i++) {
		struct logw *l = w->lw[i];
		struct ts_log *log = l->log;
		pthread_mutex_lock(&log->lock);
		bool retry = log->open_errno != 0 ||
			     (log->files &&
			      (log->files->next || log->files->detached));
		pthread_mutex_unlock(&log->lock);
		if (retry || l->watch_failed ||
		    (l->dirwd < 0 && l->ancwd < 0)) {
			l->watch_failed = false;
			mark(w, l);
		}
	}
}

/* Every TS_PING_TICK_US: a `: ping` to each stream that has written
 * nothing for `heartbeat` seconds, or will have before the next tick, so
 * each gets it within 100 ms of its own time (TS_HUB_PING_EARLY_MS early at
 * most, a tick minus that late at most), not of a global second (a proxy's
 * read timeout just above the heartbeat must not cut a quiet stream).  A
 * log's streams are only looked at when the earliest of them may be due
 * (ts_hub_ping).
 * A ping that resumed its connection cost the HTTP thread a walk of every
 * suspended connection (libmicrohttpd's resume): 10,000 idle streams
 * (bench/ idle10k, heartbeat 10 s, connected over 5 s) took 1.5-1.7 % of a
 * core with one global tick a second (pings up to a heartbeat late),
 * 3.7-3.9 % with a 100 ms tick, 3.0-3.3 % with this 200 ms one; with the
 * ping written by this thread to the suspended connection's socket
 * (hub.c, ping_raw), 1.9-2.0 % (the same invocation as 1.5-1.7). */
#ifndef TS_PING_TICK_US
#define TS_PING_TICK_US 200000
#endif

static void ping_idle(struct ts_watch *w, int64_t now_ms)
{
	int64_t every = (int64_t)atomic_load(&w->heartbeat_s) * 1000;
	uint64_t written = 0;
	for (size_t i = 0; i < w->nlogs; i++)
		written += ts_hub_ping(&w->lw[i]->log->hub, now_ms, every);
	if (written && w->stats)
		atomic_fetch_add(&w->stats->ping_bytes, written);
}

/* When may this dirty log be checked (and its streams woken)?  Not before
 * the floor; at once once the HTTP thread has run every stream of the last
 * wake-up (ts_hub_idle_or_kick arranges to be told on kfd); at the end of
 * the window in any case. */
static int64_t check_at(struct logw *l, int64_t now)
{
	int64_t floor = l->last_check_us + TS_COALESCE_MIN_US;
	int64_t ceiling = l->last_check_us + l->window_us;
	if (now >= ceiling)
		return now;
	if (now < floor)
		return floor;
	return ts_hub_idle_or_kick(&l->log->hub) ? now : ceiling;
}

/* Check the dirty logs that may be checked now; returns when the next one
 * is due (INT64_MAX: none waiting). */
static int64_t check_dirty(struct ts_watch *w)
{
	int64_t due = INT64_MAX;
	size_t n = w->nqueue, keep = 0;
	for (size_t i = 0; i < n; i++) {
		struct logw *l = w->queue[i];
		int64_t now = now_us();
		int64_t at = check_at(l, now);
		if (at <= now) {
			l->dirty = false;
			check_log(w, l);
		} else {
			w->queue[keep++] = l;
			if (at < due)
				due = at;
		}
	}
	/* marked while checking the others: look again next round */
	for (size_t i = n; i < w->nqueue; i++) {
		struct logw *l = w->queue[i];
		w->queue[keep++] = l;
		int64_t at = l->last_check_us + TS_COALESCE_MIN_US;
		if (at < due)
			due = at;
	}
	w->nqueue = keep;
	return due;
}

static void drain_eventfd(int fd)
{
	uint64_t v;
	while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
}

/* Apply the change of the set of logs that ts_watch_update posted. */
static void apply_cmd(struct ts_watch *w)
{
	pthread_mutex_lock(&w->cmd_lock);
	if (w->cmd_posted) {
		int rc = 0;
		for (size_t i = 0; i < w->cmd_ndel; i++)
			logw_del(w, w->cmd_del[i]);
		for (size_t i = 0; i < w->cmd_nadd && rc == 0; i++)
			rc = logw_add(w, w->cmd_add[i]);
		w->cmd_rc = rc;
		w->cmd_posted = false;
		pthread_cond_broadcast(&w->cmd_done);
	}
	pthread_mutex_unlock(&w->cmd_lock);
}

int ts_watch_update(struct ts_watch *w, struct ts_log *const *add, size_t nadd,
		    struct ts_log *const *del, size_t ndel)
{
	pthread_mutex_lock(&w->cmd_lock);
	w->cmd_add = add;
	w->cmd_nadd = nadd;
	w->cmd_del = del;
	w->cmd_ndel = ndel;
	w->cmd_posted = true;
	if (!w->started) {
		pthread_mutex_unlock(&w->cmd_lock);
		apply_cmd(w);
		return w->cmd_rc;
	}
	uint64_t one = 1;
	if (write(w->cfd, &one, sizeof(one)) < 0)
		perror("tailsse: eventfd");
	while (w->cmd_posted)
		pthread_cond_wait(&w->cmd_done, &w->cmd_lock);
	int rc = w->cmd_rc;
	pthread_mutex_unlock(&w->cmd_lock);
	return rc;
}

static void *watch_main(void *arg)
{
	struct ts_watch *w = arg;
	int64_t next_tick = now_us() + 1000000;
	int64_t next_ping = now_us() + TS_PING_TICK_US;
	int64_t due = INT64_MAX;
	for (;;) {
		int64_t now = now_us();
		int64_t until = due < next_tick ? due : next_tick;
		if (next_ping < until)
			until = next_ping;
		int64_t wait = until > now ? until - now : 0;
		struct timespec ts = { wait / 1000000,
				       (wait % 1000000) * 1000 };
		struct pollfd pfd[5] = {
			{ w->ifd, POLLIN, 0 },
			{ w->efd, POLLIN, 0 },
			{ w->kfd, POLLIN, 0 },
			{ w->hangups ? w->hangups->epfd : -1, POLLIN, 0 },
			{ w->cfd, POLLIN, 0 },
		};
		int r = ppoll(pfd, 5, &ts, NULL);
		if (r < 0 && errno != EINTR) {
			fprintf(stderr, "tailsse: poll: %s\n", strerror(errno));
			break;
		}
		if (r > 0 && pfd[1].revents)
			break;
		if (r > 0 && pfd[0].revents)
			drain_inotify(w);
		if (r > 0 && pfd[2].revents)
			drain_eventfd(w->kfd);
		if (r > 0 && pfd[3].revents)
			ts_hub_hangups_run(w->hangups);
		if (r > 0 && pfd[4].revents) {
			drain_eventfd(w->cfd);
			apply_cmd(w);
		}
		now = now_us();
		if (now >= next_tick) {
			tick(w);
			next_tick = now + 1000000;
		}
		if (now >= next_ping) {
			ping_idle(w, now / 1000);
			next_ping = now + TS_PING_TICK_US;
		}
		due = check_dirty(w);
	}
	return NULL;
}

int ts_watch_run_once(struct ts_watch *w)
{
	drain_inotify(w);
	int n = (int)w->nqueue;
	for (size_t i = 0; i < w->nqueue; i++)
		w->queue[i]->last_check_us = 0;
	check_dirty(w);
	return n;
}

unsigned long ts_watch_overflows(const struct ts_watch *w)
{
	return w->overflows;
}

int ts_watch_start(struct ts_watch *w)
{
	int rc = pthread_create(&w->thread, NULL, watch_main, w);
	if (rc)
		return -rc;
	w->started = true;
	return 0;
}

void ts_watch_stop(struct ts_watch *w)
{
	if (!w || !w->started)
		return;
	uint64_t one = 1;
	if (write(w->efd, &one, sizeof(one)) < 0)
		perror("tailsse: eventfd");
	pthread_join(w->thread, NULL);
	w->started = false;
}
