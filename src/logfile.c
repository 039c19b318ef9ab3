#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lines.h"
#include "logfile.h"
#include "stream.h"

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

struct ts_log *ts_log_new(const char *name, const char *path)
{
	struct ts_log *log = calloc(1, sizeof(*log));
	if (!log)
		return NULL;
	snprintf(log->name, sizeof(log->name), "%s", name);
	log->path = strdup(path);
	if (!log->path)
		goto fail;
	if (pthread_mutex_init(&log->lock, NULL) != 0)
		goto fail;
	log->kick_fd = -1;
	return log;
fail:
	free(log->path);
	free(log);
	return NULL;
}

static void file_close(struct ts_file *f)
{
	close(f->fd);
	free(f);
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
	pthread_mutex_destroy(&log->lock);
	free(log->path);
	free(log);
}

void ts_file_ref(struct ts_file *f)
{
	f->refs++;
}

void ts_file_unref(struct ts_log *log, struct ts_file *f)
{
	if (--f->refs > 0)
		return;
	for (struct ts_file **pp = &log->files; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	file_close(f);
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

static void set_mark(struct ts_file *f)
{
	f->mark_len = read_tail_bytes(f->fd, f->size, f->mark, TS_MARK_LEN);
	if (f->mark_len == 0)
		return;
	if (f->nhist == TS_HIST) {
		memmove(f->hist, f->hist + 1, (TS_HIST - 1) * sizeof(f->hist[0]));
		f->nhist--;
	}
	struct ts_mark *m = &f->hist[f->nhist++];
	m->size = f->size;
	m->len = f->mark_len;
	memcpy(m->bytes, f->mark, f->mark_len);
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
	set_mark(f);
	f->serial = ++log->serials;
	f->next = log->files;
	log->files = f;
	log->cur = f;
	return true;
}

static void detach_cur(struct ts_log *log, uint64_t size)
{
	struct ts_file *f = log->cur;
	f->size = size;
	f->detached = true;
	f->detached_ms = ts_now_ms();
	log->cur = NULL;
	ts_file_unref(log, f);
}

enum ts_change ts_log_check(struct ts_log *log)
{
	struct stat st;
	struct ts_fstate now = { false, 0, 0, 0 };
	int stat_errno = 0;

	if (stat(log->path, &st) == 0) {
		if (S_ISREG(st.st_mode)) {
			now.exists = true;
			now.dev = (uint64_t)st.st_dev;
			now.ino = (uint64_t)st.st_ino;
			now.size = (uint64_t)st.st_size;
		} else {
			stat_errno = EINVAL; /* a directory, FIFO, device... */
		}
	} else if (errno != ENOENT && errno != ENOTDIR) {
		stat_errno = errno;
	}

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
	enum ts_change ch = ts_log_decide(&known, &now, fd_size);
	/* Truncated and written again past the old size between two looks:
	 * the size alone cannot tell, the bytes before the old size can. */
	if (cur && (ch == TS_GROWN || ch == TS_UNCHANGED) && !mark_matches(cur))
		ch = TS_TRUNCATED;
	switch (ch) {
	case TS_UNCHANGED:
		if (!cur)
			log->open_errno = stat_errno;
		break;
	case TS_GROWN:
		cur->size = fd_size;
		set_mark(cur);
		break;
	case TS_TRUNCATED:
		/* remember what the old content ended with, to recognise a
		 * copy of it (copytruncate) when a client resumes */
		memcpy(cur->pre, cur->hist, sizeof(cur->hist));
		cur->npre = cur->nhist;
		cur->nhist = 0;
		cur->size = fd_size;
		cur->trunc_seq++;
		set_mark(cur);
		break;
	case TS_ROTATED:
	case TS_DELETED:
		detach_cur(log, fd_size);
		if (ch == TS_ROTATED) {
			log->rotations++;
			attach_new(log);
		} else {
			log->open_errno = stat_errno;
		}
		break;
	case TS_CREATED:
		if (!attach_new(log))
			ch = TS_UNCHANGED;
		break;
	}
	/* rotated-away files that streams still drain may still grow */
	bool old_grew = false;
	for (struct ts_file *f = log->files; f; f = f->next) {
		struct stat fst;
		if (f->detached && fstat(f->fd, &fst) == 0 &&
		    ((uint64_t)fst.st_size != f->size ||
		     (uint64_t)fst.st_nlink != f->nlink)) {
			f->size = (uint64_t)fst.st_size;
			f->nlink = (uint64_t)fst.st_nlink;
			old_grew = true;
		}
	}
	if (ch != TS_UNCHANGED || old_grew) {
		for (struct ts_stream *s = log->streams; s; s = s->next)
			ts_stream_wake_locked(s, false, 0);
	}
	pthread_mutex_unlock(&log->lock);
	return ch;
}

void ts_log_woken_done_locked(struct ts_log *log)
{
	if (--log->nwoken > 0 || !log->idle_kick)
		return;
	log->idle_kick = false;
	uint64_t one = 1;
	/* a full counter (EAGAIN) has already told the watcher */
	if (log->kick_fd >= 0 &&
	    write(log->kick_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		perror("tailsse: eventfd");
}

bool ts_log_idle_or_kick(struct ts_log *log)
{
	pthread_mutex_lock(&log->lock);
	bool idle = log->nwoken == 0;
	log->idle_kick = !idle;
	pthread_mutex_unlock(&log->lock);
	return idle;
}

void ts_log_wake(struct ts_log *log, bool ping, int64_t idle_before_ms)
{
	pthread_mutex_lock(&log->lock);
	for (struct ts_stream *s = log->streams; s; s = s->next)
		ts_stream_wake_locked(s, ping, idle_before_ms);
	pthread_mutex_unlock(&log->lock);
}

/* Does the open file `fd` qualify?  Used while scanning the directory. */
typedef bool (*match_fn)(int fd, const struct stat *st, const void *arg);

/* Scan the log's directory for a regular file that `match` accepts and
 * return it open, as a detached generation with one reference (not yet in
 * the log's list), or NULL. */
static struct ts_file *scan_dir(struct ts_log *log, match_fn match,
				const void *arg)
{
	struct ts_file *f = NULL;
	char *copy = strdup(log->path);
	if (!copy)
		return NULL;
	DIR *d = opendir(dirname(copy));
	if (!d) {
		free(copy);
		return NULL;
	}
	int dfd = dirfd(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			continue;
		int fd = openat(dfd, de->d_name,
				O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
		if (fd < 0)
			continue;
		struct stat st;
		if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
		    !match(fd, &st, arg)) {
			close(fd);
			continue;
		}
		f = file_new(fd, &st);
		if (f) {
			f->detached = true;
			/* rotated long ago as far as we know: no grace */
			f->detached_ms = ts_now_ms() - TS_ROTATE_WAIT_MS;
		}
		break;
	}
	closedir(d);
	free(copy);
	return f;
}

/* Put a file found by scan_dir into the log's list, unless the same inode
 * got there meanwhile (then that one is returned, referenced). */
static struct ts_file *adopt(struct ts_log *log, struct ts_file *f)
{
	pthread_mutex_lock(&log->lock);
	struct ts_file *again;
	for (again = log->files; again; again = again->next)
		if (again->ino == f->ino && again->dev == f->dev)
			break;
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
	f->serial = ++log->serials;
	f->next = log->files;
	log->files = f;
	pthread_mutex_unlock(&log->lock);
	return f;
}

static bool same_inode(int fd, const struct stat *st, const void *arg)
{
	(void)fd;
	return (uint64_t)st->st_ino == *(const uint64_t *)arg;
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
	f = scan_dir(log, same_inode, &ino);
	return f ? adopt(log, f) : NULL;
}

struct copy_want {
	uint64_t ino;        /* the truncated file: not its own copy */
	struct ts_mark m[TS_HIST]; /* what its old content ended with */
	unsigned n;
	uint64_t off;        /* the position to resume at */
};

/* A copy holds the old content up to one of its remembered sizes at least
 * as far as the client's position (logrotate's copy may stop short of the
 * last size we saw: lines written between its copy and its truncate). */
static bool is_copy(int fd, const struct stat *st, const void *arg)
{
	const struct copy_want *w = arg;
	unsigned char buf[TS_MARK_LEN];
	if ((uint64_t)st->st_ino == w->ino)
		return false;
	for (unsigned i = w->n; i-- > 0;) {
		const struct ts_mark *m = &w->m[i];
		if (m->size < w->off || (uint64_t)st->st_size < m->size)
			continue;
		if (read_tail_bytes(fd, m->size, buf, m->len) == m->len &&
		    memcmp(buf, m->bytes, m->len) == 0)
			return ts_lines_at_start(fd, w->off) == 1;
	}
	return false;
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
	pthread_mutex_unlock(&log->lock);
	if (w.n == 0)
		return NULL;
	struct ts_file *c = scan_dir(log, is_copy, &w);
	return c ? adopt(log, c) : NULL;
}
