/* conn.h: one HTTP client that streams: its cursors (one per log it
 * reads), their shared format and filters, the output that did not fit in
 * the last write, and its wake-up state.  The libmicrohttpd content reader
 * and suspend/resume live here, on the HTTP side only.
 *
 * Threads: ts_conn_new/start/free and the reader run on the HTTP thread
 * (ts_conn_start may run on the worker while the connection waits
 * suspended in its access handler); the watcher reaches a connection only
 * through the hub, which may have it serve a waiting stream there (the
 * hub's `direct`, while libmicrohttpd holds it suspended). */
#ifndef TS_CONN_H
#define TS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cursor.h"
#include "hub.h"

struct MHD_Connection;

struct ts_conn {
	struct ts_stream_env *env;
	struct MHD_Connection *mhd;
	struct ts_fmt fmt;
	struct ts_cursor *cur;	/* ncur cursors, in the order requested */
	struct ts_cursor **all; /* fmt.all of a merged stream */
	uint64_t *bl_end;	/* each cursor's backlog ends there... */
	uint64_t *bl_serial;	/* ...in that generation (0: none) */
	uint8_t ncur;		/* 1..TS_HUB_MAX_LINKS */
	uint8_t backlog;	/* cursors before this one have sent their
				 * backlog (tail=N, one log after another) */
	uint8_t next;		/* the cursor served first on the next call */
	struct ts_buf out;	/* encoded bytes MHD had no room for */
	struct ts_hub_conn hub;
	bool replay; /* holds one of env's replay places */
	bool ended;  /* ends once `out` is sent (a removed log) */
	bool broken; /* a direct write failed: end it at once */
};

/* A connection reading `nlogs` logs, as a stream of one log or, with
 * `merged`, as a merged stream (JSON data with the log's name, cursor ids:
 * also for one log), with `filter` (taken over in every case; may be
 * NULL).  Counts in env->nstreams until freed.  NULL on ENOMEM. */
struct ts_conn *ts_conn_new(struct ts_stream_env *env,
			    struct MHD_Connection *mhd, struct ts_log **logs,
			    size_t nlogs, bool merged, struct ts_filter *filter,
			    bool json, bool grep);

/* Position every cursor where `starts` (one per log) says (may read back
 * far or search a directory: the worker runs it).  0 or -errno (then free
 * it with ts_conn_free). */
int ts_conn_start(struct ts_conn *c, const struct ts_start *starts);

/* A stream that starts far behind the end of its file (a replay: more than
 * TS_REPLAY_BEHIND bytes) is better sent from a big buffer of its own than
 * from the connection's small one (see http.c).  True when it is one (a
 * stream of one log) and got one of the TS_REPLAY_MAX places; ts_conn_free
 * gives the place back.  Call after ts_conn_start. */
#define TS_REPLAY_BEHIND (1024 * 1024)
#define TS_REPLAY_MAX 64
bool ts_conn_take_replay(struct ts_conn *c);

/* Watch the client's socket for a hang-up (env->hangups), so that a
 * client leaving a quiet stream is freed at once.  HTTP thread. */
void ts_conn_watch_hangup(struct ts_conn *c);

/* libmicrohttpd content reader and its free callback. */
ssize_t ts_conn_read(void *cls, uint64_t pos, char *buf, size_t max);
void ts_conn_free(void *cls);

#endif
