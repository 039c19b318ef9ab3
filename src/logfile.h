/* logfile.h: one followed log: its path, the open file(s) behind it, the
 * one decision grown / truncated / rotated / deleted / created, and which
 * files may be its generations.
 *
 * A log owns a list of open "generations" (struct ts_file, one per inode).
 * `cur` is the file now at the path; older ones stay open while some
 * cursor still drains them after a rotation.  Cursors hold a reference on
 * the generation they read; the file is closed when the last one lets go.
 * The cursors waiting on the log are its hub's (hub.h): a change is
 * reported there, after the log's lock is let go.
 *
 * Threads: the watcher thread calls ts_log_check(); the HTTP thread(s) and
 * the worker read the files with pread and take/drop references.  `lock`
 * protects every field marked (L) and the generations' fields marked (L).
 * It is never held while taking the hub's locks or scan_lock. */
#ifndef TS_LOGFILE_H
#define TS_LOGFILE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "hub.h"

#define TS_MARK_LEN 32
#define TS_HIST 8

/* The bytes of a file just before `size`, and when the watcher saw it
 * (monotonic ms). */
struct ts_mark {
	uint64_t size;
	size_t len;
	int64_t ms;
	unsigned char bytes[TS_MARK_LEN];
};

/* Which of the n (TS_HIST, oldest first) marks of a history to drop for a
 * new one at now_ms: never the oldest nor the newest; the one whose loss
 * leaves the smallest gap for its age, so that the marks kept thin out
 * geometrically with age (ages ~0, 1, 15, 50, 160, 500 and 1,000 ms after
 * a second of checks every ms) instead of being the last 8 checks. */
unsigned ts_mark_drop(const struct ts_mark *h, unsigned n, int64_t now_ms);

/* How long a stream keeps draining a rotated-away file, waiting for its
 * writer to move to the new one, before it switches anyway. */
#define TS_ROTATE_WAIT_MS 5000

struct ts_file {
	int fd;
	uint64_t serial; /* unique among the log's generations, ever */
	uint64_t dev, ino;
	uint64_t size;	     /* (L) size at the last check */
	uint64_t trunc_seq;  /* (L) bumped each time the file shrank */
	bool detached;	     /* (L) no longer the file at the path */
	int64_t detached_ms; /* (L) monotonic time it was detached */
	uint64_t nlink;	     /* (L) 0 once deleted */
	/* (L) the last bytes before `size`: if they change while the file
	 * grows, it was truncated and rewritten between two looks */
	unsigned char mark[TS_MARK_LEN];
	size_t mark_len;
	/* (L) sizes seen, with their markers, oldest first, spread over the
	 * content's life (ts_mark_drop): after a truncation in place
	 * (copytruncate), `pre` holds those of the old content, to recognise
	 * its copy when a client resumes into it.  Spread, because the copy
	 * may stop short of many checks: the lines written between
	 * logrotate's copy and its truncation are in no copy. */
	struct ts_mark hist[TS_HIST];
	struct ts_mark pre[TS_HIST];
	unsigned nhist, npre;
	/* (L) the first bytes of the content, and (pre_head) of the content
	 * before the last truncation in place: a copy starts with them, which
	 * tells it from older copies whose bytes before a size are the same
	 * (lines that end alike) */
	unsigned char head[TS_MARK_LEN], pre_head[TS_MARK_LEN];
	size_t head_len, pre_head_len;
	unsigned refs;	      /* (L) streams reading it, +1 while `cur`,
				 * +1 while it is another one's `succ` */
	struct ts_file *next; /* (L) the log's list of generations */
	/* (L) the generation that came after this one at the path, with a
	 * reference: a stream that ends this file goes on there, so that a
	 * stream behind by several rotations reads every generation in
	 * order.  NULL: not known (then the file at the path now). */
	struct ts_file *succ;
	/* (L) the watcher is looking for generations that came and went
	 * between this one and the next: streams at its end wait */
	bool succ_pending;
	int64_t attach_rt_ns; /* wall clock when it became the file at the
				 * path; 0 when found beside it */
};

/* A generation the log had at its path, remembered after it left it: a
 * resume id may name it whatever it is called now, while its bytes before
 * the size it had are still the same. */
#define TS_SEEN 32
struct ts_seen {
	uint64_t dev, ino;
	struct ts_mark m;
};

/* The last generation that left the path (renamed or deleted). */
struct ts_gone {
	bool valid;
	bool moved; /* renamed away, not deleted */
	uint64_t dev, ino;
	int64_t mtime_ns; /* its last write */
	int64_t attach_rt_ns;
};

/* One entry of the log's directory that may be a generation of it. */
struct ts_dent {
	char *name;
	uint64_t ino;
	bool by_name; /* named like a rotated generation */
};

/* What ts_log_decide() concluded from one look at a log. */
enum ts_change {
	TS_UNCHANGED,
	TS_GROWN,     /* same file, larger */
	TS_TRUNCATED, /* same file, smaller than before */
	TS_ROTATED,   /* another file is now at the path */
	TS_DELETED,   /* nothing is at the path any more */
	TS_CREATED,   /* a file appeared where there was none */
};

/* One observation of a file: exists, identity, size. */
struct ts_fstate {
	bool exists;
	uint64_t dev, ino, size;
};

/* Pure: decide what happened between `known` (what the log last saw of its
 * current file; exists=false when it had none) and `now` (stat of the path
 * now). `fd_size` is the size of the known file through its open fd. */
enum ts_change ts_log_decide(const struct ts_fstate *known,
			     const struct ts_fstate *now, uint64_t fd_size);

struct ts_log {
	char name[TS_NAME_MAX + 1];
	char *path;
	pthread_mutex_t lock;
	struct ts_file *cur;   /* (L) NULL while the path has no file */
	struct ts_file *files; /* (L) all open generations, cur included */
	struct ts_hub_log hub; /* the cursors reading it, and waking them */
	int open_errno;	       /* (L) why the path could not be opened */
	uint64_t rotations;    /* (L) count, for metrics */
	uint64_t serials;      /* (L) the last ts_file serial given */
	bool stopping;	       /* (L) the daemon is shutting down */
	/* (L) taken out of the config by a reload: its streams send what is
	 * left, a `reset` `deleted`, and end */
	bool removed;
	/* who holds it: the registry, the watcher, each cursor, each /lines
	 * request; the last to let go frees it */
	atomic_uint refs;
	/* monotonic ns when made: with its address, names this log and no
	 * later one at the same address (a reload frees and makes logs), for
	 * caches keyed by log (cursor.c's frame cache) */
	int64_t born_ns;
	struct ts_seen seen[TS_SEEN]; /* (L) a ring of generations seen */
	unsigned nseen, seen_next;    /* (L) */
	struct ts_gone gone;	      /* (L) */
	struct ts_file *last_gen;     /* (L) the generation that left the path
				     * last, while it is open (no reference) */
	char *dir;		      /* the path's directory */
	const char *base;	      /* the path's file name, in `path` */
	/* The directory's candidates for generations, cached while the
	 * directory's modification time and dir_seq (bumped by the watcher on
	 * each event there, and when the seen list changes) stay the same,
	 * and for at most TS_DCACHE_MS: a resume id that names no file must
	 * not cost a directory scan each time.  scan_lock protects them; it
	 * is taken before `lock`, never while holding it. */
	pthread_mutex_t scan_lock;
	struct ts_dent *dcache;
	size_t ndcache;
	bool dcache_valid;
	int64_t dcache_ms;
	uint64_t dcache_seq;
	int64_t dcache_mtime_ns; /* the directory's, when listed */
	int64_t dcache_rt_ns;	 /* wall clock of the listing */
	_Atomic uint64_t dir_seq;
};

#define TS_DCACHE_MS 1000
/* Generations chained at once after one file, at most. */
#define TS_CHAIN_MAX 64

/* Create a log for `name` and `path`, with one reference for the caller;
 * does not touch the file yet (call ts_log_check).  NULL on ENOMEM.  Any
 * thread. */
struct ts_log *ts_log_new(const char *name, const char *path);

/* Free a log with no streams left, whatever its references.  Accepts NULL. */
void ts_log_free(struct ts_log *log);

/* Take / drop a reference; the last one dropped frees the log.  Any
 * thread; unref accepts NULL. */
void ts_log_ref(struct ts_log *log);
void ts_log_unref(struct ts_log *log);

/* A reload took the log out of the config: mark it removed and wake its
 * streams, which end (cursor.h).  Any thread but the watcher's. */
void ts_log_retire(struct ts_log *log);

/* Look at the path again (stat, open, fstat) and update the log: a grown or
 * truncated file, a rotation, deletion or creation.  Then resume every
 * suspended stream of the log.  Returns the change seen.  Watcher thread,
 * or main before the threads start. */
enum ts_change ts_log_check(struct ts_log *log);

/* Is `name` (an entry of the log's directory) the log's file name `base`
 * followed by a suffix that logrotate gives rotated files: '.', '-' or '_'
 * and then only digits and '.', '-', '_', at least one digit (app.log.1,
 * app.log-20261202, app.log.2026-12-02-1530)?  Compressed ones
 * (app.log.2.gz) are not text: not generations.  Pure. */
bool ts_log_gen_name(const char *base, const char *name);

/* Find a generation of the log by inode and keep it open (detached when it
 * is not the current file): one of its open generations, or a file in the
 * log's directory that is one of its generations (named like one:
 * ts_log_gen_name; or seen at the path by this daemon, its bytes unchanged).
 * Any other file is never found, whatever its inode.  A file found in the
 * directory gets the generations newer than it there chained after it
 * (by modification time), then the current file, so a stream reads them
 * all in order (and the ones rotated while it reads).  Returns it
 * with a reference for the caller, or NULL.  Any thread but the
 * watcher's; takes scan_lock and the lock.  May scan the directory: not on
 * the HTTP thread. */
struct ts_file *ts_log_find_inode(struct ts_log *log, uint64_t ino);

/* The watcher saw something happen in the log's directory. */
void ts_log_dir_changed(struct ts_log *log);

/* The trunc_seq that goes with `f`'s content as it is now: one more than
 * f->trunc_seq when it was truncated and the watcher has not counted that
 * yet (it will, by one).  A stream that starts reading a file takes this,
 * so the coming count does not reset it again.  Caller holds the lock. */
uint64_t ts_file_content_seq_locked(const struct ts_file *f);

/* True when `f` no longer holds what the watcher last saw (shorter, or
 * other bytes before that size): truncated and maybe rewritten, and the
 * watcher has not handled it yet.  HTTP thread; takes the lock. */
bool ts_log_rewritten(struct ts_log *log, struct ts_file *f);

/* After `f` was truncated in place (copytruncate), find the copy of its old
 * content beside the path: a file at least as long as `f` was, ending its
 * old content with the same bytes, with a line starting at `off`.  Returns
 * it referenced and detached, or NULL.  HTTP thread; takes the lock. */
struct ts_file *ts_log_find_copy(struct ts_log *log, struct ts_file *f,
				 uint64_t off);

/* Take / drop a reference on a generation. Caller holds log->lock. */
void ts_file_ref(struct ts_file *f);
void ts_file_unref(struct ts_log *log, struct ts_file *f);

/* Monotonic milliseconds. */
int64_t ts_now_ms(void);

#endif
