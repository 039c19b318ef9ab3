#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		*err = S_ISREG(st.st_mode) ? errno : EINVAL;
		close(fd);
		return NULL;
	}
	struct ts_file *f = calloc(1, sizeof(*f));
	if (!f) {
		*err = ENOMEM;
		close(fd);
		return NULL;
	}
	f->fd = fd;
	f->dev = (uint64_t)st.st_dev;
	f->ino = (uint64_t)st.st_ino;
	f->size = (uint64_t)st.st_size;
	f->refs = 1;
	return f;
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
		fd_size = fstat(cur->fd, &fst) == 0 ? (uint64_t)fst.st_size
						     : cur->size;
	}
	enum ts_change ch = ts_log_decide(&known, &now, fd_size);
	switch (ch) {
	case TS_UNCHANGED:
		if (!cur)
			log->open_errno = stat_errno;
		break;
	case TS_GROWN:
		cur->size = fd_size;
		break;
	case TS_TRUNCATED:
		cur->size = fd_size;
		cur->trunc_seq++;
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
		    (uint64_t)fst.st_size != f->size) {
			f->size = (uint64_t)fst.st_size;
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

void ts_log_wake(struct ts_log *log, bool ping, int64_t idle_before_ms)
{
	pthread_mutex_lock(&log->lock);
	for (struct ts_stream *s = log->streams; s; s = s->next)
		ts_stream_wake_locked(s, ping, idle_before_ms);
	pthread_mutex_unlock(&log->lock);
}
