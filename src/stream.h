/* stream.h: one SSE client of one log.  The stream holds its own position
 * (file generation, offset) and reads the file itself: the file is the
 * buffer, so nothing is queued per client and a slow client costs no memory.
 *
 * Threads: ts_stream_new/start/read/free run on the HTTP thread that owns the
 * connection (libmicrohttpd's polling thread); ts_stream_wake_locked runs on
 * any thread with the log's lock held. */
#ifndef TS_STREAM_H
#define TS_STREAM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "filter.h"
#include "logfile.h"
#include "sse.h"

struct MHD_Connection;

/* What every stream shares: settings, counters, per-thread scratch. */
struct ts_stream_env {
	size_t max_line;
	unsigned retry_ms;
	pthread_key_t scratch_key;  /* per HTTP thread: struct ts_scratch */
	struct ts_filter_cache *filters; /* compiled patterns, shared */
	atomic_uint nstreams;       /* streams open, all logs */
	atomic_uint nreplay;        /* streams with a replay's buffer */
	atomic_ullong events_sent;  /* lines and control events */
	atomic_ullong bytes_sent;
};

/* Where the client asked to start. */
enum ts_start_kind { TS_START_END, TS_START_ID, TS_START_TAIL };
struct ts_start {
	enum ts_start_kind kind;
	struct ts_pos pos;      /* TS_START_ID */
	uint64_t tail;          /* TS_START_TAIL and TS_START_END (backlog) */
};

struct ts_stream {
	struct ts_log *log;
	struct ts_stream_env *env;
	struct MHD_Connection *conn;
	struct ts_file *file;   /* generation being read; NULL: waiting for one */
	uint64_t off;           /* the next line starts here: the last id */
	uint64_t scan;          /* [off, scan) holds no '\n' */
	uint64_t limit;         /* read up to here: file->size when last looked */
	uint64_t trunc_seq;     /* file->trunc_seq when `off` was valid */
	struct ts_buf out;      /* encoded bytes MHD had no room for */
	struct ts_filter *filter; /* NULL: every line */
	bool json;              /* format=json */
	bool limit_reported;    /* filter-limit was sent */
	bool skip_partial;      /* off is inside a line: drop up to its '\n' */
	uint64_t id_off;        /* offset of the last id the client has */
	int64_t last_sent_ms;
	bool suspended;         /* (log->lock) */
	bool woken;             /* (log->lock) counted in log->nwoken */
	bool ping_due;          /* (log->lock) */
	bool linked;            /* in log->streams */
	bool replay;            /* holds one of env's replay places */
	struct ts_stream *prev, *next; /* (log->lock) */
};

/* 0 or -errno; the filter cache is created here. */
int ts_stream_env_init(struct ts_stream_env *env, size_t max_line,
		       unsigned retry_ms);
void ts_stream_env_destroy(struct ts_stream_env *env);

/* A new stream of `log`, not yet linked to it.  It takes over `filter`
 * (may be NULL) in every case.  NULL on ENOMEM. */
struct ts_stream *ts_stream_new(struct ts_log *log, struct ts_stream_env *env,
				struct MHD_Connection *conn,
				struct ts_filter *filter, bool json);

/* Position the stream as `st` asks and link it to its log, so that it is
 * woken from now on.  0 or -errno (then free it with ts_stream_free). */
int ts_stream_start(struct ts_stream *s, const struct ts_start *st);

/* A stream that starts far behind the end of its file (a replay: more than
 * TS_REPLAY_BEHIND bytes) is better sent from a big buffer of its own than
 * from the connection's small one (see http.c).  True when the stream is
 * one and got one of the TS_REPLAY_MAX places for it; ts_stream_free gives
 * the place back.  Call after ts_stream_start. */
#define TS_REPLAY_BEHIND (1024 * 1024)
#define TS_REPLAY_MAX 64
bool ts_stream_take_replay(struct ts_stream *s);

/* libmicrohttpd content reader and its free callback. */
ssize_t ts_stream_read(void *cls, uint64_t pos, char *buf, size_t max);
void ts_stream_free(void *cls);

/* Resume the stream if it is suspended (with `ping`: only if it sent
 * nothing since `idle_before_ms`, and then with a heartbeat).  Caller holds
 * s->log->lock. */
void ts_stream_wake_locked(struct ts_stream *s, bool ping,
			   int64_t idle_before_ms);

#endif
