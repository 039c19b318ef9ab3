/* cursor.h: one reader's position in one log, and reading it.
 *
 * A cursor holds the generation it reads and the offset where the next
 * line starts; it reads the file itself (pread, or the thread's frame
 * cache), so the file is the buffer: nothing is queued per reader, and a
 * slow one costs no memory.  It takes every decision about its place: the
 * file grew, was truncated (and maybe copied: copytruncate), rotated away
 * (go on in the next generation), deleted, created.  It writes the events
 * for the lines and for those decisions; how an event's data and id look
 * is the connection's (struct ts_fmt), so one cursor type serves a stream
 * of one log and a merged stream of several.  No libmicrohttpd here.
 *
 * Threads: a cursor is used by one thread at a time: the worker while it
 * starts, then the HTTP thread that owns its connection.  The log's lock
 * guards what it shares with the watcher. */
#ifndef TS_CURSOR_H
#define TS_CURSOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "filter.h"
#include "hub.h"
#include "logfile.h"
#include "sse.h"

/* What every stream shares: settings, counters, per-thread scratch. */
struct ts_stream_env {
	size_t max_line;
	unsigned retry_ms;
	pthread_key_t scratch_key;	 /* per thread: struct ts_scratch */
	struct ts_filter_cache *filters; /* compiled patterns, shared */
	atomic_uint nstreams;		 /* connections streaming, all logs */
	atomic_uint nreplay;		 /* streams with a replay's buffer */
	atomic_ullong events_sent;	 /* lines and control events */
	atomic_ullong bytes_sent;
	atomic_ullong filter_limits;	/* filter-limit events sent */
	struct ts_hub_hangups *hangups; /* NULL: no hang-up watch */
};

/* 0 or -errno; the filter cache is created here. */
int ts_stream_env_init(struct ts_stream_env *env, size_t max_line,
		       unsigned retry_ms);
void ts_stream_env_destroy(struct ts_stream_env *env);

/* Where a reader asked to start. */
enum ts_start_kind { TS_START_END, TS_START_ID, TS_START_TAIL };
struct ts_start {
	enum ts_start_kind kind;
	struct ts_pos pos; /* TS_START_ID */
	uint64_t tail;	   /* TS_START_TAIL and TS_START_END (backlog) */
};

struct ts_cursor;

/* How a connection's events look; shared by its cursors. */
struct ts_fmt {
	struct ts_filter *filter; /* NULL: every line */
	bool json;		  /* format=json */
	bool grep;		  /* the filter has grep patterns */
	/* A merged stream of several logs: data is JSON with the log's name,
	 * and every id lists every cursor ("A=INO:OFF,B=INO:OFF").  NULL
	 * for a stream of one log (id "INO:OFF"). */
	struct ts_cursor **all;
	size_t nall;
};

struct ts_cursor {
	struct ts_log *log;
	struct ts_stream_env *env;
	const struct ts_fmt *fmt;
	struct ts_file *file; /* generation being read; NULL: none yet */
	uint64_t off;	      /* the next line starts here */
	uint64_t scan;	      /* [off, scan) holds no '\n' */
	uint64_t limit;	      /* read up to here: file->size when last looked */
	uint64_t trunc_seq;   /* file->trunc_seq when `off` was valid */
	uint64_t id_off;      /* the offset of the last id the client has */
	bool skip_partial;    /* off is inside a line: drop up to its '\n' */
	bool limit_reported;  /* filter-limit was sent */
	struct ts_hub_link link; /* in the log's hub while linked */
};

/* Per-thread scratch space, so that a cursor owns no buffers while idle.
 * `out` collects the events of one call of a connection's reader. */
struct ts_scratch;
struct ts_scratch *ts_scratch_get(struct ts_stream_env *env);
struct ts_buf *ts_scratch_out(struct ts_scratch *sc);

void ts_cursor_init(struct ts_cursor *c, struct ts_log *log,
		    struct ts_stream_env *env, const struct ts_fmt *fmt);

/* Position the cursor as `st` asks (reading back for tail=N, looking for a
 * rotated generation for an id: this may take long, so not on the HTTP
 * thread), write a `reset lost` into `out` when the id is gone, and link it
 * to its log's hub as waiter `idx` of `hc`.  0 or -errno. */
int ts_cursor_start(struct ts_cursor *c, const struct ts_start *st,
		    struct ts_buf *out, struct ts_hub_conn *hc, unsigned idx);

/* Let go of the file and the log.  Any thread that owns the cursor. */
void ts_cursor_release(struct ts_cursor *c);

/* Bytes between the cursor and the end of its file as it is now. */
uint64_t ts_cursor_behind(const struct ts_cursor *c);

enum ts_step { TS_STEP_REST, TS_STEP_MORE, TS_STEP_YIELD };

/* One step: follow a truncation, read lines into sc's out until about
 * `budget` bytes are there, and at the end of the file take what comes
 * next (a rotation, a deletion...).  TS_STEP_REST: nothing (more) to do
 * until the log changes, with or without events written; TS_STEP_MORE:
 * call again; TS_STEP_YIELD: enough work for now.  *nevents counts the
 * events written.  Or -errno. */
int ts_cursor_step(struct ts_cursor *c, struct ts_scratch *sc, size_t budget,
		   unsigned *nevents);

/* The cursor's log was removed by a reload: its last event, a `reset`
 * `deleted` whose id is the cursor's place (a client that comes back once
 * the log is configured again resumes there).  0 or -ENOMEM. */
int ts_cursor_removed_event(const struct ts_cursor *c, struct ts_buf *out);

/* Write "id: ..." for `c` at (ino, off): the connection's id. */
int ts_cursor_write_id(const struct ts_cursor *c, struct ts_buf *out,
		       uint64_t ino, uint64_t off);

#endif
