#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lines.h"
#include "logfile.h"

int64_t ts_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum ts_change ts_log_decide(const struct ts_fstate *known,
			     const struct ts_fstate *now, uint64_t fd_size)
{
	if (!known->exists)
		return now->exists ? TS_CREATED : TS_UNCHANGED;
	if (!now->exists)
		return TS_DELETED;
	if (known->dev != now->dev || known->ino != now->ino)
		return TS_ROTATED;
	if (fd_size < known->size)
		return TS_TRUNCATED;
	if (fd_size > known->size)
		return TS_GROWN;
	return TS_UNCHANGED;
}

/* Wall-clock nanoseconds, compared with file times: the kernel stamps
 * those from the coarse clock, which may be a tick behind the fine one. */
static int64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

struct ts_log *ts_log_new(const char *name, const char *path)
{
	struct ts_log *log = calloc(1, sizeof(*log));
	if (!log)
		return NULL;
	snprintf(log->name, sizeof(log->name), "%s", name);
	log->path = strdup(path);
	if (!log->path)
		goto fail;
	const char *slash = strrchr(log->path, '/');
	log->base = slash ? slash + 1 : log->path;
	if (!slash)
		log->dir = strdup(".");
	else if (slash == log->path)
		log->dir = strdup("/");
	else
		log->dir = strndup(log->path, (size_t)(slash - log->path));
	if (!log->dir)
		goto fail;
	if (pthread_mutex_init(&log->lock, NULL) != 0)
		goto fail;
	if (pthread_mutex_init(&log->scan_lock, NULL) != 0) {
		pthread_mutex_destroy(&log->lock);
		goto fail;
	}
	atomic_init(&log->dir_seq, 0);
	atomic_init(&log->refs, 1);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	log->born_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (ts_hub_log_init(&log->hub) != 0) {
		pthread_mutex_destroy(&log->scan_lock);
		pthread_mutex_destroy(&log->lock);
		goto fail;
	}
	return log;
fail:
	free(log->dir);
	free(log->path);
	free(log);
	return NULL;
}

/* test_logfile's hook in ts_log_check, where the file may change: stage 0
 * between its look at the file and its decision, 1 between the decision
 * and taking the new mark (a build of logfile.c for that test only) */
#ifdef TS_LOGFILE_SEAM_TEST
void (*ts_logfile_seam)(struct ts_log *log, int stage);
#define TS_LOGFILE_SEAM(log, stage)                  \
	do {                                         \
		if (ts_logfile_seam)                 \
			ts_logfile_seam(log, stage); \
	} while (0)
#else
#define TS_LOGFILE_SEAM(log, stage) ((void)0)
#endif

static void file_close(struct ts_file *f)
{
	close(f->fd);
	free(f);
}

static void dcache_clear(struct ts_log *log)
{
	for (size_t i = 0; i < log->ndcache; i++)
		free(log->dcache[i].name);
	free(log->dcache);
	log->dcache = NULL;
	log->ndcache = 0;
	log->dcache_valid = false;
}

void ts_log_free(struct ts_log *log)
{
	if (!log)
		return;
	struct ts_file *f = log->files;
	while (f) {
		struct ts_file *next = f->next;
		file_close(f);
		f = next;
	}
	dcache_clear(log);
	ts_hub_log_destroy(&log->hub);
	pthread_mutex_destroy(&log->scan_lock);
	pthread_mutex_destroy(&log->lock);
	free(log->dir);
	free(log->path);
	free(log);
}

void ts_log_ref(struct ts_log *log)
{
	atomic_fetch_add(&log->refs, 1);
}

void ts_log_unref(struct ts_log *log)
{
	if (log && atomic_fetch_sub(&log->refs, 1) == 1)
		ts_log_free(log);
}

void ts_log_retire(struct ts_log *log)
{
	pthread_mutex_lock(&log->lock);
	log->removed = true;
	pthread_mutex_unlock(&log->lock);
	ts_hub_changed(&log->hub);
}

void ts_file_ref(struct ts_file *f)
{
	f->refs++;
}

void ts_file_unref(struct ts_log *log, struct ts_file *f)
{
	/* a file that goes lets go of the generation after it: a loop, not
	 * recursion, for a long chain */
	while (f && --f->refs == 0) {
		for (struct ts_file **pp = &log->files; *pp;
		     pp = &(*pp)->next) {
			if (*pp == f) {
				*pp = f->next;
				break;
			}
		}
		if (log->last_gen == f)
			log->last_gen = NULL;
		struct ts_file *succ = f->succ;
		file_close(f);
		f = succ;
	}
}

void ts_log_dir_changed(struct ts_log *log)
{
	atomic_fetch_add(&log->dir_seq, 1);
}

bool ts_log_gen_name(const char *base, const char *name)
{
	size_t bl = strlen(base);
	if (bl == 0 || strncmp(name, base, bl) != 0)
		return false;
	const char *p = name + bl;
	if (*p != '.' && *p != '-' && *p != '_')
		return false;
	bool digit = false;
	for (; *p; p++) {
		if (*p >= '0' && *p <= '9')
			digit = true;
		else if (*p != '.' && *p != '-' && *p != '_')
			return false;
	}
	return digit;
}

/* A generation for the open regular file `fd` as `st` describes it, with
 * one reference; it owns fd from now on.  NULL on ENOMEM (fd closed). */
static struct ts_file *file_new(int fd, const struct stat *st)
{
	struct ts_file *f = calloc(1, sizeof(*f));
	if (!f) {
		close(fd);
		return NULL;
	}
	f->fd = fd;
	f->dev = (uint64_t)st->st_dev;
	f->ino = (uint64_t)st->st_ino;
	f->size = (uint64_t)st->st_size;
	f->nlink = (uint64_t)st->st_nlink;
	f->refs = 1;
	return f;
}

/* Open the path as a new generation (refs 1, for `cur`).  O_NONBLOCK so
 * that a FIFO swapped in at the path cannot hang the watcher. */
static struct ts_file *file_open(const char *path, int *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		*err = errno;
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		*err = errno;
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		*err = EINVAL;
		close(fd);
		return NULL;
	}
	struct ts_file *f = file_new(fd, &st);
	if (!f)
		*err = ENOMEM;
	return f;
}

/* Read the `len` bytes before `size` into buf; the number read. */
static size_t read_tail_bytes(int fd, uint64_t size, unsigned char *buf,
			      size_t len)
{
	size_t n = size < len ? (size_t)size : len;
	ssize_t r = pread(fd, buf, n, (off_t)(size - n));
	return r < 0 ? 0 : (size_t)r;
}

/* The first bytes of the content, read until there are TS_MARK_LEN, into
 * head; their count (f->head_len when there is nothing more to read). */
static size_t read_head(const struct ts_file *f, unsigned char *head)
{
	if (f->head_len == TS_MARK_LEN || f->size <= f->head_len)
		return f->head_len;
	size_t n = f->size < TS_MARK_LEN ? (size_t)f->size : TS_MARK_LEN;
	ssize_t r = pread(f->fd, head, n, 0);
	return r < 0 ? 0 : (size_t)r;
}

unsigned ts_mark_drop(const struct ts_mark *h, unsigned n, int64_t now_ms)
{
	if (n < 3)
		return 0;
	unsigned best = 1;
	int64_t bgap = 0, bage = 1;
	for (unsigned i = 1; i + 1 < n; i++) {
		int64_t gap = h[i + 1].ms - h[i - 1].ms;
		int64_t age = now_ms - h[i - 1].ms + 1;
		if (age < 1)
			age = 1;
		/* gap/age < bgap/bage, without division */
		if (i == 1 || gap * bage < bgap * age) {
			best = i;
			bgap = gap;
			bage = age;
		}
	}
	return best;
}

/* Take the mark of the content up to f->size (and its head, while short)
 * into the history.  False, taking nothing, when the file holds less than
 * that now: cut while we looked, the bytes read would be the new
 * content's (the head is read first, so a cut after it shows in the mark's
 * read); the mark it had, of another size, no longer holds it to anything
 * and is dropped. */
static bool set_mark(struct ts_file *f)
{
	unsigned char head[TS_MARK_LEN], mark[TS_MARK_LEN];
	size_t head_len = read_head(f, head);
	size_t want = f->size < TS_MARK_LEN ? (size_t)f->size : TS_MARK_LEN;
	size_t mark_len = read_tail_bytes(f->fd, f->size, mark, TS_MARK_LEN);
	if (mark_len < want) {
		f->mark_len = 0;
		return false;
	}
	if (head_len != f->head_len) {
		memcpy(f->head, head, head_len);
		f->head_len = head_len;
	}
	memcpy(f->mark, mark, mark_len);
	f->mark_len = mark_len;
	if (f->mark_len == 0)
		return true;
	int64_t now = ts_now_ms();
	if (f->nhist == TS_HIST) {
		unsigned d = ts_mark_drop(f->hist, f->nhist, now);
		memmove(f->hist + d, f->hist + d + 1,
			(TS_HIST - 1 - d) * sizeof(f->hist[0]));
		f->nhist--;
	}
	struct ts_mark *m = &f->hist[f->nhist++];
	m->ms = now;
	m->size = f->size;
	m->len = f->mark_len;
	memcpy(m->bytes, f->mark, f->mark_len);
	return true;
}

/* Do the bytes before the size we knew still hold what they held? */
static bool mark_matches(const struct ts_file *f)
{
	unsigned char now[TS_MARK_LEN];
	if (f->mark_len == 0)
		return true;
	size_t n = read_tail_bytes(f->fd, f->size, now, f->mark_len);
	return n == f->mark_len && memcmp(now, f->mark, n) == 0;
}

/* Make the file at the path `cur`.  Caller holds the lock. */
static bool attach_new(struct ts_log *log)
{
	int err = 0;
	struct ts_file *f = file_open(log->path, &err);
	if (!f) {
		log->open_errno = err == ENOENT ? 0 : err;
		return false;
	}
	log->open_errno = 0;
	(void)set_mark(f); /* (none if cut at once: the next look sees it) */
	f->attach_rt_ns = realtime_ns();
	f->serial = ++log->serials;
	f->next = log->files;
	log->files = f;
	log->cur = f;
	return true;
}

/* ---- generations the log had, and which files may be one ---- */

static struct ts_seen *seen_find_locked(struct ts_log *log, uint64_t dev,
					uint64_t ino)
{
	for (unsigned i = 0; i < log->nseen; i++)
		if (log->seen[i].ino == ino && log->seen[i].dev == dev)
			return &log->seen[i];
	return NULL;
}

/* Remember a generation the log had at its path, with the bytes before
 * the size it had.  Caller holds the lock. */
static void seen_put_locked(struct ts_log *log, uint64_t dev, uint64_t ino,
			    const struct ts_mark *m)
{
	struct ts_seen *e = seen_find_locked(log, dev, ino);
	if (!e) {
		e = &log->seen[log->seen_next];
		log->seen_next = (log->seen_next + 1) % TS_SEEN;
		if (log->nseen < TS_SEEN)
			log->nseen++;
	}
	e->dev = dev;
	e->ino = ino;
	e->m = *m;
	/* the directory's candidates include seen files: look again */
	atomic_fetch_add(&log->dir_seq, 1);
}

static void file_mark(const struct ts_file *f, struct ts_mark *m)
{
	if (f->nhist > 0)
		*m = f->hist[f->nhist - 1];
	else
		memset(m, 0, sizeof(*m));
}

/* Does the open file still hold, before the size `m` was taken at, the
 * bytes it held then? */
static bool mark_holds(int fd, uint64_t size, const struct ts_mark *m)
{
	unsigned char now[TS_MARK_LEN];
	if (m->len == 0)
		return true;
	return size >= m->size &&
	       read_tail_bytes(fd, m->size, now, m->len) == m->len &&
	       memcmp(now, m->bytes, m->len) == 0;
}

/* Forget the file at the path: it was renamed away or deleted.  Remember
 * it, and what the watcher needs to find the generations that came and
 * went before it looked again.  Caller holds the lock. */
static void detach_cur(struct ts_log *log, uint64_t size, bool moved)
{
	struct ts_file *f = log->cur;
	struct ts_mark m;
	struct stat st;
	file_mark(f, &m);
	seen_put_locked(log, f->dev, f->ino, &m);
	log->gone = (struct ts_gone){ true,   moved, f->dev,
				      f->ino, 0,     f->attach_rt_ns };
	if (fstat(f->fd, &st) == 0)
		log->gone.mtime_ns = mtime_ns(&st);
	log->last_gen = f;
	f->size = size;
	f->detached = true;
	f->detached_ms = ts_now_ms();
	log->cur = NULL;
	ts_file_unref(log, f);
}

/* Refresh the cache of the directory's entries that may be generations:
 * those named like one, and those whose inode the log has seen.  Caller
 * holds scan_lock (not the lock).  0 or -errno. */
static int dcache_refresh(struct ts_log *log)
{
	uint64_t seq = atomic_load(&log->dir_seq);
	int64_t now = ts_now_ms();
	/* The directory's own modification time says whether a name came or
	 * went since the listing, also before the watcher has read its event
	 * (a client reconnecting right after logrotate ran); one in the clock
	 * tick of the listing itself proves nothing. */
	struct stat dst;
	int64_t dmtime = stat(log->dir, &dst) == 0 ? mtime_ns(&dst) : -1;
	if (log->dcache_valid && seq == log->dcache_seq &&
	    now - log->dcache_ms < TS_DCACHE_MS &&
	    dmtime == log->dcache_mtime_ns &&
	    log->dcache_rt_ns - dmtime > 20 * 1000 * 1000)
		return 0;
	int64_t listed_rt = realtime_ns();
	uint64_t seen[TS_SEEN];
	unsigned nseen;
	pthread_mutex_lock(&log->lock);
	nseen = log->nseen;
	for (unsigned i = 0; i < nseen; i++)
		seen[i] = log->seen[i].ino;
	pthread_mutex_unlock(&log->lock);
	dcache_clear(log);
	DIR *d = opendir(log->dir);
	if (!d)
		return -errno;
	size_t cap = 0;
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN &&
		    de->d_type != DT_LNK)
			continue;
		bool by_name = ts_log_gen_name(log->base, de->d_name);
		uint64_t ino = (uint64_t)de->d_ino;
		bool was_seen = false;
		for (unsigned i = 0; i < nseen && !was_seen; i++)
			was_seen = seen[i] == ino;
		if (!by_name && !was_seen)
			continue;
		struct stat st;
		/* readdir's inode is not always stat's (overlayfs): the few
		 * named ones are looked at */
		if (by_name && fstatat(dirfd(d), de->d_name, &st, 0) == 0)
			ino = (uint64_t)st.st_ino;
		if (log->ndcache == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct ts_dent *p =
				realloc(log->dcache, ncap * sizeof(*p));
			if (!p) {
				rc = -ENOMEM;
				break;
			}
			log->dcache = p;
			cap = ncap;
		}
		char *name = strdup(de->d_name);
		if (!name) {
			rc = -ENOMEM;
			break;
		}
		log->dcache[log->ndcache++] =
			(struct ts_dent){ name, ino, by_name };
	}
	closedir(d);
	if (rc) {
		dcache_clear(log);
		return rc;
	}
	log->dcache_valid = true;
	log->dcache_seq = seq;
	log->dcache_ms = now;
	log->dcache_mtime_ns = dmtime;
	log->dcache_rt_ns = listed_rt;
	return 0;
}

/* Open a directory entry from the cache if it is really a generation of
 * the log now: a regular file with the inode listed, and, when its name is
 * not a generation's, one seen at the path whose bytes are unchanged.
 * The fd (or -1) and its stat.  Caller holds scan_lock. */
static int open_dent(struct ts_log *log, int dfd, const struct ts_dent *e,
		     struct stat *st)
{
	int fd = openat(dfd, e->name,
			O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -1;
	bool ok = fstat(fd, st) == 0 && S_ISREG(st->st_mode) &&
		  (uint64_t)st->st_ino == e->ino;
	if (ok && !e->by_name) {
		pthread_mutex_lock(&log->lock);
		const struct ts_seen *sn =
			seen_find_locked(log, (uint64_t)st->st_dev,
					 (uint64_t)st->st_ino);
		struct ts_mark m;
		if (sn)
			m = sn->m;
		pthread_mutex_unlock(&log->lock);
		ok = sn && mark_holds(fd, (uint64_t)st->st_size, &m);
	}
	if (!ok) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A file found beside the path, as a detached generation (not yet in the
 * log's list) with one reference; it owns fd.  NULL on ENOMEM. */
static struct ts_file *found_file(int fd, const struct stat *st)
{
	struct ts_file *f = file_new(fd, st);
	if (f) {
		f->detached = true;
		/* rotated long ago as far as we know: no grace */
		f->detached_ms = ts_now_ms() - TS_ROTATE_WAIT_MS;
		(void)set_mark(f);
	}
	return f;
}

struct found {
	int fd;
	struct stat st;
};

/* A look through the directory's candidates (the cache, refreshed when
 * stale): `want` picks entries before they are opened (NULL: all), `visit`
 * gets each one picked and open as a generation (open_dent) and owns its
 * fd; it returns true to stop.  Takes scan_lock. */
struct dir_walk {
	bool (*want)(const struct ts_dent *e, void *arg);
	bool (*visit)(int fd, const struct stat *st, void *arg);
	void *arg;
};

static void walk_candidates(struct ts_log *log, const struct dir_walk *w)
{
	pthread_mutex_lock(&log->scan_lock);
	int dfd = open(log->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0 && dcache_refresh(log) == 0) {
		for (size_t i = 0; i < log->ndcache; i++) {
			const struct ts_dent *e = &log->dcache[i];
			if (w->want && !w->want(e, w->arg))
				continue;
			struct stat st;
			int fd = open_dent(log, dfd, e, &st);
			if (fd >= 0 && w->visit(fd, &st, w->arg))
				break;
		}
	}
	if (dfd >= 0)
		close(dfd);
	pthread_mutex_unlock(&log->scan_lock);
}

/* The generations in the directory last written after `after_ns`, oldest
 * first, at most `max` (the oldest ones); never the inodes skip1/skip2;
 * with `unseen`, only those named like a generation that the log never
 * had (the ones the watcher missed), and also those written in the same
 * tick of the file clock as `after_ns` (a rotation within a millisecond;
 * the older ones were seen).  Takes scan_lock.  Their count. */
struct newer {
	struct ts_log *log;
	int64_t after_ns;
	uint64_t skip1, skip2;
	bool unseen;
	struct found *out;
	size_t n, max;
};

static bool newer_want(const struct ts_dent *e, void *arg)
{
	const struct newer *nw = arg;
	return e->ino != nw->skip1 && e->ino != nw->skip2 &&
	       (!nw->unseen || e->by_name);
}

static bool newer_visit(int fd, const struct stat *st, void *arg)
{
	struct newer *nw = arg;
	struct found g = { fd, *st };
	bool keep = mtime_ns(st) > nw->after_ns ||
		    (nw->unseen && mtime_ns(st) == nw->after_ns);
	if (keep && nw->unseen) {
		pthread_mutex_lock(&nw->log->lock);
		keep = !seen_find_locked(nw->log, (uint64_t)st->st_dev,
					 (uint64_t)st->st_ino);
		pthread_mutex_unlock(&nw->log->lock);
	}
	struct found *out = nw->out;
	if (!keep || (nw->n == nw->max &&
		      mtime_ns(st) >= mtime_ns(&out[nw->n - 1].st))) {
		close(fd);
		return false;
	}
	if (nw->n == nw->max)
		close(out[--nw->n].fd);
	/* insertion in order of modification */
	size_t k = nw->n++;
	while (k > 0 && mtime_ns(&out[k - 1].st) > mtime_ns(st)) {
		out[k] = out[k - 1];
		k--;
	}
	out[k] = g;
	return false;
}

static size_t newer_generations(struct ts_log *log, int64_t after_ns,
				uint64_t skip1, uint64_t skip2, bool unseen,
				struct found *out, size_t max)
{
	struct newer nw = { log, after_ns, skip1, skip2, unseen, out, 0, max };
	struct dir_walk w = { newer_want, newer_visit, &nw };
	walk_candidates(log, &w);
	return nw.n;
}

static struct ts_file *open_gen_locked(struct ts_log *log, uint64_t dev,
				       uint64_t ino)
{
	for (struct ts_file *f = log->files; f; f = f->next)
		if (f->ino == ino && f->dev == dev)
			return f;
	return NULL;
}

/* Would prev -> f close a loop of successors? */
static bool leads_to_locked(const struct ts_file *f, const struct ts_file *to)
{
	for (int i = 0; f && i < 4 * TS_CHAIN_MAX; i++, f = f->succ)
		if (f == to)
			return true;
	return f != NULL;
}

static void add_file_locked(struct ts_log *log, struct ts_file *f)
{
	f->serial = ++log->serials;
	f->next = log->files;
	log->files = f;
}

/* Chain the found generations after `prev`, then `last` (may be NULL): a
 * found file that is open already ends the chain there (it has its own).
 * Takes over the fds.  Caller holds the lock. */
static void splice_locked(struct ts_log *log, struct ts_file *prev,
			  struct found *g, size_t n, struct ts_file *last)
{
	struct ts_file *p = prev;
	size_t i = 0;
	for (; i < n && p; i++) {
		struct ts_file *have =
			open_gen_locked(log, (uint64_t)g[i].st.st_dev,
					(uint64_t)g[i].st.st_ino);
		if (have) {
			if (!leads_to_locked(have, p)) {
				ts_file_ref(have);
				p->succ = have;
			}
			p = NULL;
			continue;
		}
		struct ts_file *f = found_file(g[i].fd, &g[i].st);
		g[i].fd = -1;
		if (!f)
			break;
		add_file_locked(log, f);
		p->succ = f; /* found_file's reference */
		p = f;
	}
	for (; i < n; i++)
		if (g[i].fd >= 0)
			close(g[i].fd);
	if (p && last && p != last && !leads_to_locked(last, p)) {
		ts_file_ref(last);
		p->succ = last;
	}
}

/* A new file came to the path after `gone` left it.  Generations that
 * came and went between two looks of the watcher are found beside the
 * path (named like one, never seen, written after `gone`): each is a
 * rotation, and when a stream still needs `prev` (the file that left, if
 * still open: the caller's reference on it is not counted) they are chained
 * between it and `cur`.  Then streams at the end of `prev` go on.  Watcher
 * thread; takes the locks. */
static void link_after(struct ts_log *log, struct ts_file *prev,
		       struct ts_file *cur, const struct ts_gone *gone)
{
	struct found g[TS_CHAIN_MAX];
	int64_t after = gone->mtime_ns > gone->attach_rt_ns
				? gone->mtime_ns
				: gone->attach_rt_ns;
	size_t n = newer_generations(log, after, gone->ino, cur ? cur->ino : 0,
				     true, g, TS_CHAIN_MAX);
	pthread_mutex_lock(&log->lock);
	log->rotations += n;
	for (size_t i = 0; i < n; i++) {
		struct ts_mark m = { 0 };
		m.size = (uint64_t)g[i].st.st_size;
		m.len = read_tail_bytes(g[i].fd, m.size, m.bytes, TS_MARK_LEN);
		seen_put_locked(log, (uint64_t)g[i].st.st_dev,
				(uint64_t)g[i].st.st_ino, &m);
	}
	if (prev && prev->refs > 1 && !prev->succ) {
		splice_locked(log, prev, g, n, cur);
	} else {
		for (size_t i = 0; i < n; i++)
			close(g[i].fd);
	}
	if (prev) {
		prev->succ_pending = false;
		ts_file_unref(log, prev);
	}
	if (cur)
		ts_file_unref(log, cur);
	pthread_mutex_unlock(&log->lock);
	ts_hub_changed(&log->hub);
}

/* stat the path: what is there now.  *stat_errno: why it is unusable. */
static struct ts_fstate stat_path(const char *path, int *stat_errno)
{
	struct stat st;
	struct ts_fstate now = { false, 0, 0, 0 };
	*stat_errno = 0;
	if (stat(path, &st) == 0) {
		if (S_ISREG(st.st_mode)) {
			now.exists = true;
			now.dev = (uint64_t)st.st_dev;
			now.ino = (uint64_t)st.st_ino;
			now.size = (uint64_t)st.st_size;
		} else {
			*stat_errno = EINVAL; /* a directory, FIFO, device... */
		}
	} else if (errno != ENOENT && errno != ENOTDIR) {
		*stat_errno = errno;
	}
	return now;
}

/* What to link once the lock is dropped: a new file after one that left. */
struct pending_link {
	bool due;
	struct ts_file *prev, *cur; /* referenced, or NULL */
	struct ts_gone gone;
};

/* A new file is `cur` after another left the path: count the rotation and
 * prepare the link (done by link_after, outside the lock). */
static void new_generation_locked(struct ts_log *log, struct pending_link *pl)
{
	if (!log->gone.valid || !log->gone.moved)
		return;
	log->rotations++;
	pl->due = true;
	pl->gone = log->gone;
	log->gone.moved = false;
	pl->prev = log->last_gen && log->last_gen->ino == pl->gone.ino
			   ? log->last_gen
			   : NULL;
	if (pl->prev) {
		ts_file_ref(pl->prev);
		pl->prev->succ_pending = true;
	}
	pl->cur = log->cur;
	if (pl->cur)
		ts_file_ref(pl->cur);
}

/* The file was cut in place (truncated); `seen`: its size at the look
 * that found it.  Caller holds the lock. */
static void cut_locked(struct ts_file *cur, uint64_t seen)
{
	/* The cut may have come after that look (its mark read saw it): the
	 * size seen was the old content's.  Kept, the next look would count
	 * the same cut again, and what the old content ended with (`pre`,
	 * for a resume into its copy) would be lost. */
	struct stat st;
	uint64_t size = fstat(cur->fd, &st) == 0 ? (uint64_t)st.st_size : seen;
	/* remember what the old content ended with, to recognise a copy of
	 * it (copytruncate) when a client resumes; content cut before any of
	 * it was seen (no client has an id in it) leaves what was known of
	 * the one before */
	if (cur->nhist > 0) {
		memcpy(cur->pre, cur->hist, sizeof(cur->hist));
		cur->npre = cur->nhist;
		memcpy(cur->pre_head, cur->head, sizeof(cur->head));
		cur->pre_head_len = cur->head_len;
	}
	cur->nhist = 0;
	cur->head_len = 0;
	cur->size = size;
	cur->trunc_seq++;
	(void)set_mark(cur); /* (cut again meanwhile: the next look sees it) */
}

/* Is the file shorter now than its known size? */
static bool shrunk(const struct ts_file *f)
{
	struct stat st;
	return fstat(f->fd, &st) == 0 && (uint64_t)st.st_size < f->size;
}

/* Apply a change to the log.  Caller holds the lock. */
static enum ts_change apply_change_locked(struct ts_log *log, enum ts_change ch,
					  uint64_t fd_size, int stat_errno,
					  struct pending_link *pl)
{
	struct ts_file *cur = log->cur;
	switch (ch) {
	case TS_UNCHANGED:
		if (!cur)
			log->open_errno = stat_errno;
		break;
	case TS_GROWN:
		cur->size = fd_size;
		if (!set_mark(cur) && shrunk(cur)) {
			/* cut after the look that saw it grow */
			cut_locked(cur, fd_size);
			ch = TS_TRUNCATED;
		}
		break;
	case TS_TRUNCATED:
		cut_locked(cur, fd_size);
		break;
	case TS_ROTATED:
		/* another file at the path: the old one renamed away (a
		 * rotation), or deleted and the name made anew */
		detach_cur(log, fd_size, cur->nlink > 0);
		if (attach_new(log))
			new_generation_locked(log, pl);
		break;
	case TS_DELETED:
		/* renamed away with nothing at the path yet, or deleted */
		detach_cur(log, fd_size, cur->nlink > 0);
		log->open_errno = stat_errno;
		break;
	case TS_CREATED:
		if (!attach_new(log))
			ch = TS_UNCHANGED;
		else
			new_generation_locked(log, pl);
		break;
	}
	return ch;
}

enum ts_change ts_log_check(struct ts_log *log)
{
	int stat_errno = 0;
	struct ts_fstate now = stat_path(log->path, &stat_errno);
	struct pending_link pl = { false, NULL, NULL, { 0 } };

	pthread_mutex_lock(&log->lock);
	struct ts_file *cur = log->cur;
	struct ts_fstate known = { false, 0, 0, 0 };
	uint64_t fd_size = 0;
	if (cur) {
		struct stat fst;
		known.exists = true;
		known.dev = cur->dev;
		known.ino = cur->ino;
		known.size = cur->size;
		fd_size = cur->size;
		if (fstat(cur->fd, &fst) == 0) {
			fd_size = (uint64_t)fst.st_size;
			cur->nlink = (uint64_t)fst.st_nlink;
		}
	}
	TS_LOGFILE_SEAM(log, 0);
	enum ts_change ch = ts_log_decide(&known, &now, fd_size);
	/* Truncated and written again past the old size between two looks:
	 * the size alone cannot tell, the bytes before the old size can. */
	if (cur && (ch == TS_GROWN || ch == TS_UNCHANGED) && !mark_matches(cur))
		ch = TS_TRUNCATED;
	TS_LOGFILE_SEAM(log, 1);
	ch = apply_change_locked(log, ch, fd_size, stat_errno, &pl);
	/* rotated-away files that streams still drain may still grow */
	bool old_grew = false;
	for (struct ts_file *f = log->files; f; f = f->next) {
		struct stat fst;
		if (f->detached && fstat(f->fd, &fst) == 0 &&
		    ((uint64_t)fst.st_size != f->size ||
		     (uint64_t)fst.st_nlink != f->nlink)) {
			/* appended to (its writer not moved yet): the marker
			 * follows, or the file would look rewritten and a
			 * resume into it be lost */
			bool appended = (uint64_t)fst.st_size > f->size &&
					mark_matches(f);
			f->size = (uint64_t)fst.st_size;
			f->nlink = (uint64_t)fst.st_nlink;
			if (appended)
				(void)set_mark(f); /* (cut meanwhile: none) */
			old_grew = true;
		}
	}
	pthread_mutex_unlock(&log->lock);
	if (ch != TS_UNCHANGED || old_grew)
		ts_hub_changed(&log->hub);
	if (pl.due)
		link_after(log, pl.prev, pl.cur, &pl.gone);
	return ch;
}

/* Put a file found beside the path into the log's list, unless the same
 * inode got there meanwhile (then that one is returned, referenced, and
 * *added is false). */
static struct ts_file *adopt(struct ts_log *log, struct ts_file *f, bool *added)
{
	*added = false;
	pthread_mutex_lock(&log->lock);
	struct ts_file *again = open_gen_locked(log, f->dev, f->ino);
	if (again) {
		ts_file_ref(again);
		pthread_mutex_unlock(&log->lock);
		file_close(f);
		return again;
	}
	if (log->cur && log->cur->dev != f->dev) {
		pthread_mutex_unlock(&log->lock);
		file_close(f);
		return NULL;
	}
	add_file_locked(log, f);
	*added = true;
	pthread_mutex_unlock(&log->lock);
	return f;
}

struct by_ino {
	uint64_t ino;
	struct ts_file *f;
};

static bool ino_want(const struct ts_dent *e, void *arg)
{
	return e->ino == ((struct by_ino *)arg)->ino;
}

static bool take_first(int fd, const struct stat *st, void *arg)
{
	((struct by_ino *)arg)->f = found_file(fd, st);
	return true;
}

/* Open the directory's generation with inode `ino`, if there is one. */
static struct ts_file *find_beside(struct ts_log *log, uint64_t ino)
{
	struct by_ino b = { ino, NULL };
	struct dir_walk w = { ino_want, take_first, &b };
	walk_candidates(log, &w);
	return b.f;
}

/* `f` was found beside the path: chain after it the generations written
 * after it there, oldest first, then the file now at the path, so that a
 * rotation while a stream still reads `f` extends the chain (link_after)
 * instead of leaving `f` with no successor: its end would then lead to
 * the file at the path at that time, past the one in between. */
static void chain_newer(struct ts_log *log, struct ts_file *f)
{
	struct found g[TS_CHAIN_MAX];
	struct stat st;
	if (fstat(f->fd, &st) != 0)
		return;
	pthread_mutex_lock(&log->lock);
	uint64_t cur_ino = log->cur ? log->cur->ino : 0;
	pthread_mutex_unlock(&log->lock);
	size_t n = newer_generations(log, mtime_ns(&st), f->ino, cur_ino, false,
				     g, TS_CHAIN_MAX);
	pthread_mutex_lock(&log->lock);
	if (!f->succ)
		splice_locked(log, f, g, n, log->cur);
	else
		for (size_t i = 0; i < n; i++)
			close(g[i].fd);
	pthread_mutex_unlock(&log->lock);
}

struct ts_file *ts_log_find_inode(struct ts_log *log, uint64_t ino)
{
	struct ts_file *f;

	pthread_mutex_lock(&log->lock);
	for (f = log->files; f; f = f->next)
		if (f->ino == ino)
			break;
	if (f)
		ts_file_ref(f);
	pthread_mutex_unlock(&log->lock);
	if (f)
		return f;
	/* Not open: look beside the path, where rotation renames it. */
	f = find_beside(log, ino);
	if (!f)
		return NULL;
	bool added;
	f = adopt(log, f, &added);
	if (f && added)
		chain_newer(log, f);
	return f;
}

struct copy_want {
	uint64_t ino;		   /* the truncated file: not its own copy */
	struct ts_mark m[TS_HIST]; /* what its old content ended with */
	unsigned n;
	unsigned char head[TS_MARK_LEN]; /* ... and began with */
	size_t head_len;
	uint64_t off; /* the position to resume at */
};

/* A copy begins as the old content began (the bytes before a size alone
 * are the same in every older copy long enough when lines end alike), has
 * a line start at the client's position, and holds the old content up to
 * the last of its remembered sizes that it is long enough for: one at
 * least as far as the client's position (2, sure), or else one before it
 * (1: logrotate's copy may stop short of every size we saw after the
 * client's position, when lines were written between its copy and its
 * truncation).  0: not a copy. */
static int is_copy(int fd, const struct stat *st, const struct copy_want *w)
{
	unsigned char buf[TS_MARK_LEN];
	uint64_t size = (uint64_t)st->st_size;
	if ((uint64_t)st->st_ino == w->ino || size < w->off)
		return 0;
	/* (a copy shorter than the head we knew: the content grew after it) */
	size_t hl = w->head_len < size ? w->head_len : (size_t)size;
	if (hl && (pread(fd, buf, hl, 0) != (ssize_t)hl ||
		   memcmp(buf, w->head, hl) != 0))
		return 0;
	if (ts_lines_at_start(fd, w->off) != 1)
		return 0;
	for (unsigned i = w->n; i-- > 0;) {
		const struct ts_mark *m = &w->m[i];
		if (m->size > size)
			continue;
		if (!mark_holds(fd, size, m))
			return 0;
		return m->size >= w->off ? 2 : 1;
	}
	return 0;
}

/* The best copy: the first sure one, else the first likely one. */
struct copy_found {
	const struct copy_want *w;
	struct ts_file *f;
	int score;
};

static bool take_copy(int fd, const struct stat *st, void *arg)
{
	struct copy_found *cf = arg;
	int score = is_copy(fd, st, cf->w);
	if (score <= cf->score) {
		close(fd);
		return false;
	}
	struct ts_file *f = found_file(fd, st);
	if (!f)
		return false;
	if (cf->f)
		file_close(cf->f);
	cf->f = f;
	cf->score = score;
	return score == 2;
}

/* Caller holds the lock. */
static bool rewritten_locked(const struct ts_file *f)
{
	struct stat st;
	return (fstat(f->fd, &st) == 0 && (uint64_t)st.st_size < f->size) ||
	       !mark_matches(f);
}

uint64_t ts_file_content_seq_locked(const struct ts_file *f)
{
	return f->trunc_seq + (rewritten_locked(f) ? 1 : 0);
}

bool ts_log_rewritten(struct ts_log *log, struct ts_file *f)
{
	pthread_mutex_lock(&log->lock);
	bool r = rewritten_locked(f);
	pthread_mutex_unlock(&log->lock);
	return r;
}

struct ts_file *ts_log_find_copy(struct ts_log *log, struct ts_file *f,
				 uint64_t off)
{
	struct copy_want w;

	pthread_mutex_lock(&log->lock);
	/* A truncation the watcher has not seen yet: what it knows of the
	 * file is the old content. */
	bool unseen = rewritten_locked(f);
	w.ino = f->ino;
	w.off = off;
	w.n = unseen ? f->nhist : f->npre;
	memcpy(w.m, unseen ? f->hist : f->pre, sizeof(w.m));
	w.head_len = unseen ? f->head_len : f->pre_head_len;
	memcpy(w.head, unseen ? f->head : f->pre_head, sizeof(w.head));
	pthread_mutex_unlock(&log->lock);
	if (w.n == 0)
		return NULL;
	struct copy_found cf = { &w, NULL, 0 };
	struct dir_walk walk = { NULL, take_copy, &cf };
	walk_candidates(log, &walk);
	struct ts_file *c = cf.f;
	bool added;
	return c ? adopt(log, c, &added) : NULL;
}
