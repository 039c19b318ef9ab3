#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "conn.h"

/* What a stream served directly reads at most in one round (see
 * serve_direct): more goes through its reader, in its pool's writes. */
#define TS_DIRECT_BUDGET (16 * 1024)

static void serve_direct(void *arg);

static void resume_mhd(void *arg)
{
	MHD_resume_connection(arg);
}

static void suspend_mhd(void *arg)
{
	MHD_suspend_connection(arg);
}

/* Round up to the alignment of any object. */
static size_t aligned(size_t n)
{
	size_t a = _Alignof(max_align_t);
	return (n + a - 1) / a * a;
}

struct ts_conn *ts_conn_new(struct ts_stream_env *env,
			    struct MHD_Connection *mhd, struct ts_log **logs,
			    size_t nlogs, bool merged, struct ts_filter *filter,
			    bool json, bool grep)
{
	if (nlogs == 0 || nlogs > TS_HUB_MAX_LINKS) {
		ts_filter_free(filter);
		return NULL;
	}
	/* One block for the connection and its per-log arrays: an idle
	 * stream's memory is counted in bytes (bench/ idle10k). */
	size_t o_cur = aligned(sizeof(struct ts_conn));
	size_t o_end = o_cur + aligned(nlogs * sizeof(struct ts_cursor));
	size_t o_serial = o_end + aligned(nlogs * sizeof(uint64_t));
	size_t o_all = o_serial + aligned(nlogs * sizeof(uint64_t));
	size_t size = o_all + (merged ? nlogs * sizeof(struct ts_cursor *) : 0);
	char *block = calloc(1, size);
	struct ts_conn *c = (struct ts_conn *)(void *)block;
	if (!c || ts_hub_conn_init(&c->hub, resume_mhd, mhd) != 0) {
		free(block);
		ts_filter_free(filter);
		return NULL;
	}
	c->cur = (struct ts_cursor *)(void *)(block + o_cur);
	c->bl_end = (uint64_t *)(void *)(block + o_end);
	c->bl_serial = (uint64_t *)(void *)(block + o_serial);
	c->all = merged ? (struct ts_cursor **)(void *)(block + o_all) : NULL;
	c->env = env;
	c->mhd = mhd;
	c->ncur = (uint8_t)nlogs;
	c->fmt.filter = filter;
	c->fmt.json = json;
	c->fmt.grep = grep;
	c->fmt.all = c->all;
	c->fmt.nall = c->all ? nlogs : 0;
	for (size_t i = 0; i < nlogs; i++) {
		ts_cursor_init(&c->cur[i], logs[i], env, &c->fmt);
		if (c->all)
			c->all[i] = &c->cur[i];
	}
	c->hub.last_sent_ms = ts_now_ms();
	if (!filter) {
		/* filtered streams stay on the HTTP thread: a slow pattern
		 * must not hold up the thread that serves every log */
		c->hub.direct = serve_direct;
		c->hub.direct_arg = c;
	}
	atomic_fetch_add(&env->nstreams, 1);
	return c;
}

void ts_conn_free(void *cls)
{
	struct ts_conn *c = cls;
	if (!c)
		return;
	ts_hub_unwatch_hangup(&c->hub);
	for (size_t i = 0; i < c->ncur; i++)
		ts_cursor_release(&c->cur[i]);
	ts_hub_conn_destroy(&c->hub);
	atomic_fetch_sub(&c->env->nstreams, 1);
	if (c->replay)
		atomic_fetch_sub(&c->env->nreplay, 1);
	ts_filter_free(c->fmt.filter);
	ts_buf_free(&c->out);
	free(c); /* the arrays are in its block */
}

int ts_conn_start(struct ts_conn *c, const struct ts_start *starts)
{
	int rc = ts_sse_retry(&c->out, c->env->retry_ms);
	for (size_t i = 0; i < c->ncur && rc == 0; i++) {
		struct ts_cursor *k = &c->cur[i];
		rc = ts_cursor_start(k, &starts[i], &c->out, &c->hub,
				     (unsigned)i);
		/* its backlog (tail=N): up to the end of its file as it is
		 * now; a resumed log has none, it catches up beside the
		 * others */
		c->bl_end[i] = k->off;
		if (starts[i].kind != TS_START_ID)
			c->bl_end[i] += ts_cursor_behind(k);
		c->bl_serial[i] = k->file ? k->file->serial : 0;
	}
	return rc;
}

bool ts_conn_take_replay(struct ts_conn *c)
{
	if (c->ncur != 1 || ts_cursor_behind(&c->cur[0]) <= TS_REPLAY_BEHIND)
		return false;
	if (atomic_fetch_add(&c->env->nreplay, 1) >= TS_REPLAY_MAX) {
		atomic_fetch_sub(&c->env->nreplay, 1);
		return false;
	}
	c->replay = true;
	return true;
}

/* Does the stream end, now that every cursor is at rest?  When the
 * daemon stops (every log is marked), or when a reload took some of its
 * logs out of the config: then each of those says `reset` `deleted` into
 * `out` first.  0: go on; 1: end; -errno. */
static void end_flags(struct ts_log *log, bool *stop, bool *removed)
{
	pthread_mutex_lock(&log->lock);
	*stop = log->stopping;
	*removed = log->removed;
	pthread_mutex_unlock(&log->lock);
}

static int ending(const struct ts_conn *c, struct ts_buf *out)
{
	int end = 0;
	for (size_t i = 0; i < c->ncur; i++) {
		bool stop, removed;
		end_flags(c->cur[i].log, &stop, &removed);
		if (stop)
			return 1;
		if (removed) {
			int rc = ts_cursor_removed_event(&c->cur[i], out);
			if (rc)
				return rc;
			end = 1;
		}
	}
	return end;
}

/* A round of serving starts: the hub's state (ts_hub_begin), each log
 * that woke it counted off. */
static void begin_round(struct ts_conn *c, bool *ping, bool *gone)
{
	uint32_t woken = ts_hub_begin(&c->hub, ping, gone);
	for (size_t i = 0; i < c->ncur; i++)
		if (woken & (1u << i))
			ts_hub_done(&c->cur[i].link);
}

/* Has cursor i sent the backlog it started with? */
static bool backlog_sent(const struct ts_conn *c, size_t i)
{
	const struct ts_cursor *k = &c->cur[i];
	return !k->file || k->file->serial != c->bl_serial[i] ||
	       k->off >= c->bl_end[i];
}

/* Serve the cursors once, until about `budget` bytes are ready.  Their
 * backlogs go one log after another (tail=N of a merged stream); then each
 * call starts with the next cursor, so that a busy log cannot keep a
 * quiet one waiting more than a call.  *rest: every cursor is at rest.
 * 0, 1 to yield (enough work for one call), or -errno. */
static int serve_cursors(struct ts_conn *c, struct ts_scratch *sc,
			 size_t budget, unsigned *nevents, bool *rest)
{
	struct ts_buf *out = ts_scratch_out(sc);
	assert(c->ncur > 0); /* ts_conn_new: 1 to TS_HUB_MAX_LINKS logs */
	*rest = true;
	while (c->backlog < c->ncur) {
		size_t i = c->backlog;
		int r = backlog_sent(c, i) ? TS_STEP_REST
					   : ts_cursor_step(&c->cur[i], sc,
							    budget, nevents);
		if (r < 0)
			return r;
		if (r == TS_STEP_REST) {
			c->backlog++;
			continue;
		}
		*rest = false;
		return r == TS_STEP_YIELD;
	}
	int rc = 0;
	for (size_t k = 0; k < c->ncur && out->len < budget; k++) {
		size_t i = (c->next + k) % c->ncur;
		int r = ts_cursor_step(&c->cur[i], sc, budget, nevents);
		if (r < 0)
			return r;
		if (r != TS_STEP_REST)
			*rest = false;
		if (r == TS_STEP_YIELD) {
			rc = 1;
			break;
		}
	}
	c->next = (uint8_t)((c->next + 1) % c->ncur);
	return rc;
}

static void read_failed(const struct ts_conn *c, int rc)
{
	fprintf(stderr, "tailsse: %s: read: %s\n", c->cur[0].log->name,
		strerror(-rc));
}

/* `n` bytes went to the client (through libmicrohttpd, or written
 * directly): the hub's heartbeat clock and the metric. */
static void count_sent(struct ts_conn *c, size_t n)
{
	c->hub.last_sent_ms = ts_now_ms(); /* read by the hub: a word */
	atomic_fetch_add(&c->env->bytes_sent, n);
}

/* Hand `n` bytes of `src` to libmicrohttpd's buffer, keeping the rest. */
static ssize_t deliver(struct ts_conn *c, char *buf, size_t max,
		       const char *src, size_t len, bool keep_rest)
{
	size_t n = len < max ? len : max;
	memcpy(buf, src, n);
	if (keep_rest && n < len && ts_buf_append(&c->out, src + n, len - n))
		return MHD_CONTENT_READER_END_WITH_ERROR;
	count_sent(c, n);
	return (ssize_t)n;
}

#ifdef TS_BENCH_HIST
/* The stamp of the first of ts-writer's lines in `p` (its "data: seq=N
 * t=NS"), or 0. */
static int64_t bh_line_ns(const char *p, size_t n)
{
	const char *d = memmem(p, n, "data: seq=", 10);
	const char *t = d ? memmem(d, n - (size_t)(d - p), " t=", 3) : NULL;
	if (!t)
		return 0;
	int64_t v = 0;
	for (t += 3; t < p + n && *t >= '0' && *t <= '9'; t++)
		v = v * 10 + (*t - '0');
	return v;
}

/* The reader gives `out` (n events) to libmicrohttpd; it began at t0. */
static void bh_leave(struct ts_conn *c, int64_t t0, const struct ts_buf *out,
		     unsigned n)
{
	int64_t now = ts_bh_now();
	ts_bh_add(TS_BH_READ_COST, now - t0);
	ts_bh_add(TS_BH_EVENTS, n);
	int64_t line = bh_line_ns(out->data, out->len);
	if (!line)
		return;
	ts_bh_add(TS_BH_WRITE_READ, now - line);
	pthread_mutex_lock(&c->hub.lock);
	int64_t changed = c->hub.bh_changed_ns;
	c->hub.bh_changed_ns = 0; /* the first read after a wake-up only */
	pthread_mutex_unlock(&c->hub.lock);
	if (changed && changed > line)
		ts_bh_add(TS_BH_WRITE_CHANGED, changed - line);
}
#endif

ssize_t ts_conn_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct ts_conn *c = cls;
	(void)pos;

	if (c->broken)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (c->out.len == 0 && c->ended)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (c->out.len > 0) {
		/* the rest of what did not fit last time */
		ssize_t n =
			deliver(c, buf, max, c->out.data, c->out.len, false);
		ts_buf_consume(&c->out, (size_t)n);
		if (c->out.len == 0)
			ts_buf_free(&c->out);
		return n;
	}
#ifdef TS_BENCH_HIST
	int64_t bh_t0 = ts_bh_now();
#endif
	struct ts_scratch *sc = ts_scratch_get(c->env);
	if (!sc)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	struct ts_buf *out = ts_scratch_out(sc);
	ts_buf_reset(out);
	unsigned nevents = 0;
	for (int round = 0; round < 8 && out->len == 0; round++) {
		bool ping, gone;
		begin_round(c, &ping, &gone);
		if (gone)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (ping && ts_sse_comment(out, "ping"))
			return MHD_CONTENT_READER_END_WITH_ERROR;
		bool rest;
		int rc = serve_cursors(c, sc, max, &nevents, &rest);
		if (rc < 0) {
			read_failed(c, rc);
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (rc > 0)
			break; /* yield to other connections */
		if (out->len || !rest)
			continue;
		int end = ending(c, out);
		if (end < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (end && out->len == 0)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (end) {
			c->ended = true; /* once its last events are out */
			break;
		}
		if (ts_hub_try_suspend(&c->hub, suspend_mhd, c->mhd))
			return 0;
	}
	if (out->len == 0)
		return 0; /* read far into a long line: yield */
	atomic_fetch_add(&c->env->events_sent, nevents);
#ifdef TS_BENCH_HIST
	bh_leave(c, bh_t0, out, nevents);
#endif
	return deliver(c, buf, max, out->data, out->len, true);
}

/* Do any of its logs end the stream (the daemon stopping, a reload taking
 * it out)?  Its reader says so (see ending). */
static bool any_ending(const struct ts_conn *c)
{
	for (size_t i = 0; i < c->ncur; i++) {
		bool stop, removed;
		end_flags(c->cur[i].log, &stop, &removed);
		if (stop || removed)
			return true;
	}
	return false;
}

/* How a round of a stream served directly went (see serve_direct). */
enum direct { DIRECT_REST, DIRECT_SENT, DIRECT_HAND_OVER };

/* One round of a stream served by the thread that found it waiting: what
 * the cursors have, written to its socket.  DIRECT_REST: nothing was left
 * to send; DIRECT_SENT: look again; DIRECT_HAND_OVER: its reader is to go
 * on (with what could not be written in `out`, a heartbeat due, the
 * client gone, the stream ending, much to read, or an error). */
static enum direct direct_round(struct ts_conn *c)
{
	bool ping, gone;
	begin_round(c, &ping, &gone); /* (no log woke it: not resumed) */
	if (gone || c->out.len || any_ending(c))
		return DIRECT_HAND_OVER;
	struct ts_scratch *sc = ts_scratch_get(c->env);
	if (!sc)
		return DIRECT_HAND_OVER;
	struct ts_buf *out = ts_scratch_out(sc);
	ts_buf_reset(out);
	if (ping && ts_sse_comment(out, "ping"))
		return DIRECT_HAND_OVER;
	unsigned nevents = 0;
	bool rest;
	int rc = serve_cursors(c, sc, TS_DIRECT_BUDGET, &nevents, &rest);
	if (rc < 0) {
		read_failed(c, rc);
		c->broken = true; /* as its reader would: the stream ends */
		return DIRECT_HAND_OVER;
	}
	/* rc 1: much to read, or far into a long line: its reader goes on,
	 * in libmicrohttpd's flow.  At rest, what it wrote was all there was
	 * (a change since ts_hub_begin is `pending`: ts_hub_wait_again) */
	enum direct next = rc	  ? DIRECT_HAND_OVER
			   : rest ? DIRECT_REST
				  : DIRECT_SENT;
	if (out->len == 0)
		return next;
	ssize_t n = ts_hub_write(&c->hub, out->data, out->len);
	if (n < 0) {
		c->broken = true; /* its reader ends it */
		return DIRECT_HAND_OVER;
	}
	atomic_fetch_add(&c->env->events_sent, nevents);
	if (n > 0)
		count_sent(c, (size_t)n);
	if ((size_t)n < out->len) {
		/* no room (or a part of an unchunked body): its reader sends
		 * the rest, framed by libmicrohttpd */
		if (ts_buf_append(&c->out, out->data + n, out->len - (size_t)n))
			c->broken = true;
		return DIRECT_HAND_OVER;
	}
	return next;
}

/* The hub's `direct`: a live line costs the HTTP thread a resume, a
 * reader call and a send per stream, and a handover between threads; most
 * streams are at the end of their file with room in their socket, so the
 * thread that saw the change (the watcher) writes it to them itself.  The
 * connection stays suspended in libmicrohttpd throughout; anything else
 * (a client that does not keep up, a big read, the end of the stream) is
 * handed to its reader.  Filtered streams are not served here (see
 * ts_conn_new).  Measured (bench/run.sh --repeat 5, against the HTTP
 * thread doing it all): 1 stream p50 0.174 -> 0.085 ms, p99 1.13 -> 0.42
 * ms, server CPU halved; 100 streams p50 0.84 -> 0.61 ms; 1,000 streams
 * p99 38 -> 33 ms. */
static void serve_direct(void *arg)
{
	struct ts_conn *c = arg;
	for (int round = 0; round < 8; round++) {
		enum direct d = direct_round(c);
		if (d == DIRECT_HAND_OVER)
			break;
		if (d == DIRECT_REST && ts_hub_wait_again(&c->hub))
			return;
	}
	ts_hub_hand_over(&c->hub);
}

void ts_conn_watch_hangup(struct ts_conn *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c->mhd,
					MHD_CONNECTION_INFO_CONNECTION_FD);
	/* without it, a hang-up is noticed at the next line or heartbeat */
	if (ci && c->env->hangups)
		(void)ts_hub_watch_hangup(c->env->hangups, &c->hub,
					  ci->connect_fd);
}
