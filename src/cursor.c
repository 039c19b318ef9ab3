#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cursor.h"
#include "lines.h"

/* File bytes read per pread; lines longer than this take the long path. */
#define TS_RBUF (128 * 1024)
/* Bytes one call may read without producing output (a huge partial line)
 * before it yields to other connections. */
#define TS_READ_PER_CALL (4 * 1024 * 1024)
/* Thread CPU time a filtered stream may use in one call before it yields
 * (and its filter leaves the fast path: see filter.c). */
#define TS_FILTER_CALL_NS (500 * 1000)
/* A filter whose lines take longer than this on average is slow. */
#define TS_FILTER_SLOW_LINE_NS (20 * 1000)
/* Bytes of lines searched at once for a filter (ts_filter_scan).  This
 * bounds what one search can cost, as TS_FILTER_FAST_MAX_LEN does for one
 * line: (a|b|ab)*x, the worst pattern measured, is quadratic in it and not
 * counted by the match limit (1 ms at 512 bytes, 4 ms at 2 KiB).  With
 * max_line at least this, no line searched this way is cut. */
#define TS_SCAN_WINDOW 2048
/* How far back tail=N reads to find N matching lines.  Past
 * TS_TAIL_FILTER_NS of thread CPU time it gives up on a pattern that costs
 * TS_TAIL_SLOW_RATIO times more than preparing the lines it matches, or
 * that hit a limit on one of them (a ratio of two clocks of the same run
 * and a count, so that a slow or busy machine, or a sanitizer build, does
 * not cut an ordinary search short); past
 * TS_TAIL_FILTER_MAX_NS it gives up in any case. */
#define TS_TAIL_FILTER_MAX_BYTES (8 * 1024 * 1024)
#define TS_TAIL_FILTER_NS (10 * 1000 * 1000)
#define TS_TAIL_SLOW_RATIO 16
#define TS_TAIL_FILTER_MAX_NS (500 * 1000 * 1000)

/* test_cursor's hook between a step's read and its next decision, where
 * the watcher may see a change (a build of cursor.c for that test only) */
#ifdef TS_CURSOR_SEAM_TEST
void (*ts_cursor_seam)(struct ts_cursor *s);
#define TS_CURSOR_SEAM(s)                  \
	do {                               \
		if (ts_cursor_seam)        \
			ts_cursor_seam(s); \
	} while (0)
#else
#define TS_CURSOR_SEAM(s) ((void)0)
#endif

#ifdef TS_BENCH_HIST
#define TS_STEP_LOCK(m) ts_bh_lock((m), TS_BH_LOG_LOCK)
#else
#define TS_STEP_LOCK(m) pthread_mutex_lock(m)
#endif

/* Bytes of events the frame cache holds at most before it starts over. */
#define TS_FCACHE_MAX (1024 * 1024)

/* Encoded events of a run of whole lines of one file: streams at one of its
 * line starts copy events from it instead of reading and encoding the lines
 * again (encode once, send many: every stream at the end of a busy log
 * wants the same new lines).  Plain streams only; per thread, no lock. */
struct fcache {
	const struct ts_log *log; /* key: log (address and birth: a log
				     * freed by a reload and a new one made
				     * at its address differ), generation,
				     * truncations */
	int64_t born_ns;
	uint64_t serial;
	uint64_t trunc_seq;
	uint64_t start, end; /* the lines [start, end) of the file */
	struct ts_buf enc;   /* their events, in order */
	uint64_t *ends;	     /* ends[i]: offset after line i's '\n' */
	size_t *epos;	     /* epos[i]: enc.len after line i's event */
	size_t n, cap;
};

/* Per-thread scratch space, so that a stream owns no buffers while idle. */
struct ts_scratch {
	struct fcache fc;
	struct ts_buf out; /* events being encoded for the current call */
	char *rbuf;	   /* TS_RBUF bytes of the file */
	char *head;	   /* the first bytes of a long line */
	size_t headcap;
	struct ts_buf text;   /* a sanitised line, for filters and JSON */
	struct ts_buf ranges; /* its match ranges, JSON */
	struct ts_buf json;   /* the data of a format=json event */
};

static void scratch_free(void *p)
{
	struct ts_scratch *sc = p;
	if (!sc)
		return;
	ts_buf_free(&sc->fc.enc);
	free(sc->fc.ends);
	free(sc->fc.epos);
	ts_buf_free(&sc->out);
	ts_buf_free(&sc->text);
	ts_buf_free(&sc->ranges);
	ts_buf_free(&sc->json);
	free(sc->rbuf);
	free(sc->head);
	free(sc);
}

struct ts_scratch *ts_scratch_get(struct ts_stream_env *env)
{
	struct ts_scratch *sc = pthread_getspecific(env->scratch_key);
	if (sc)
		return sc;
	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return NULL;
	sc->rbuf = malloc(TS_RBUF);
	if (!sc->rbuf || pthread_setspecific(env->scratch_key, sc) != 0) {
		scratch_free(sc);
		return NULL;
	}
	return sc;
}

int ts_stream_env_init(struct ts_stream_env *env, size_t max_line,
		       unsigned retry_ms)
{
	memset(env, 0, sizeof(*env));
	env->max_line = max_line;
	env->retry_ms = retry_ms;
	atomic_init(&env->nstreams, 0);
	atomic_init(&env->nreplay, 0);
	atomic_init(&env->events_sent, 0);
	atomic_init(&env->filter_limits, 0);
	atomic_init(&env->bytes_sent, 0);
	env->filters = ts_filter_cache_new();
	if (!env->filters)
		return -ENOMEM;
	int rc = pthread_key_create(&env->scratch_key, scratch_free);
	if (rc) {
		ts_filter_cache_free(env->filters);
		return -rc;
	}
	return 0;
}

void ts_stream_env_destroy(struct ts_stream_env *env)
{
	/* The HTTP threads have exited (their destructors freed their
	 * scratch); main may have made one of its own. */
	scratch_free(pthread_getspecific(env->scratch_key));
	pthread_key_delete(env->scratch_key);
	ts_filter_cache_free(env->filters);
}

struct ts_buf *ts_scratch_out(struct ts_scratch *sc)
{
	return &sc->out;
}

void ts_cursor_init(struct ts_cursor *c, struct ts_log *log,
		    struct ts_stream_env *env, const struct ts_fmt *fmt)
{
	memset(c, 0, sizeof(*c));
	ts_log_ref(log);
	c->log = log;
	c->env = env;
	c->fmt = fmt;
}

void ts_cursor_release(struct ts_cursor *c)
{
	if (!c->log)
		return; /* released already */
	ts_hub_unlink(&c->link);
	if (c->file) {
		pthread_mutex_lock(&c->log->lock);
		ts_file_unref(c->log, c->file);
		pthread_mutex_unlock(&c->log->lock);
		c->file = NULL;
	}
	ts_log_unref(c->log);
	c->log = NULL;
}

uint64_t ts_cursor_behind(const struct ts_cursor *c)
{
	/* the file as it is (the watcher may not have seen it grow yet) */
	struct stat sb;
	if (!c->file || fstat(c->file->fd, &sb) != 0 ||
	    (uint64_t)sb.st_size < c->off)
		return 0;
	return (uint64_t)sb.st_size - c->off;
}

/* Replace the stream's generation by `f` (may be NULL); caller holds the
 * lock. */
/* Was the stream's file truncated since the content the stream reads?
 * Its count may be one ahead of the file's (ts_file_content_seq_locked: a
 * truncation the watcher has not counted yet), which is no truncation for
 * the stream.  Caller holds the lock. */
static bool truncated_since_locked(const struct ts_cursor *s)
{
	return s->file && s->file->trunc_seq > s->trunc_seq;
}

static void set_file_locked(struct ts_cursor *s, struct ts_file *f)
{
	if (f)
		ts_file_ref(f);
	if (s->file)
		ts_file_unref(s->log, s->file);
	s->file = f;
	s->off = s->scan = s->id_off = 0;
	s->skip_partial = false;
	s->trunc_seq = f ? ts_file_content_seq_locked(f) : 0;
}

int ts_cursor_write_id(const struct ts_cursor *c, struct ts_buf *out,
		       uint64_t ino, uint64_t off)
{
	const struct ts_fmt *fmt = c->fmt;
	if (!fmt->all)
		return ts_sse_id(out, ino, off);
	/* every log's position: this one's new one, the others' as their
	 * client has them */
	/* "id: " + per log NAME=INO:OFF, with room for the digits */
	size_t need = 5;
	for (size_t i = 0; i < fmt->nall; i++)
		need += strlen(fmt->all[i]->log->name) + 3 + 2 * TS_U64_DIGITS;
	if (ts_buf_reserve(out, need))
		return -ENOMEM;
	char *p = out->data + out->len;
	memcpy(p, "id: ", 4);
	p += 4;
	for (size_t i = 0; i < fmt->nall; i++) {
		const struct ts_cursor *k = fmt->all[i];
		uint64_t ki = k == c ? ino : k->file ? k->file->ino : 0;
		uint64_t ko = k == c ? off : k->file ? k->id_off : 0;
		size_t nl = strlen(k->log->name);
		if (i)
			*p++ = ',';
		memcpy(p, k->log->name, nl);
		p += nl;
		*p++ = '=';
		p = ts_u64_put(p, ki);
		*p++ = ':';
		p = ts_u64_put(p, ko);
	}
	*p++ = '\n';
	out->len = (size_t)(p - out->data);
	return 0;
}

/* A control event: `type` with JSON data {FIELDS} (plus the log's name in
 * a merged stream), and the id at (ino, off) when `with_id`. */
static int control_event(const struct ts_cursor *c, struct ts_buf *out,
			 const char *type, const char *fields, bool with_id,
			 uint64_t ino, uint64_t off)
{
	char json[TS_NAME_MAX + 160];
	if (c->fmt->all)
		snprintf(json, sizeof(json), "{\"log\":\"%s\",%s}",
			 c->log->name, fields);
	else
		snprintf(json, sizeof(json), "{%s}", fields);
	int rc = ts_buf_printf(out, "event: %s\n", type);
	if (rc == 0 && (with_id || c->fmt->all))
		rc = ts_cursor_write_id(c, out, ino, off);
	if (rc == 0)
		rc = ts_buf_printf(out, "data: %s\n\n", json);
	return rc;
}

static int reset_event(const struct ts_cursor *c, struct ts_buf *out,
		       const char *reason)
{
	char fields[64];
	snprintf(fields, sizeof(fields), "\"reason\":\"%s\"", reason);
	const struct ts_file *f = c->file;
	return control_event(c, out, "reset", fields, f != NULL, f ? f->ino : 0,
			     0);
}

int ts_cursor_removed_event(const struct ts_cursor *c, struct ts_buf *out)
{
	const struct ts_file *f = c->file;
	return control_event(c, out, "reset", "\"reason\":\"deleted\"",
			     f != NULL, f ? f->ino : 0, f ? c->off : 0);
}

static int64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* For tail=N with a filter: does the stream keep this line?  Bounded in
 * time as a whole (the HTTP thread serves everyone): every costly line and
 * every 32nd cheap one is timed, its preparation and its match apart. */
struct tail_scan {
	struct ts_cursor *s;
	int64_t cpu0;
	int64_t text_ns;  /* timed lines: sanitizing them */
	int64_t match_ns; /* timed lines: matching them */
	unsigned lines;
	unsigned limits; /* lines on which the filter hit a limit */
};

/* Has the search used its time?  The byte bound limits ordinary patterns;
 * this stops the ones that are slow on these lines. */
static bool tail_scan_over(const struct tail_scan *t, int64_t now)
{
	int64_t used = now - t->cpu0;
	if (used > TS_TAIL_FILTER_MAX_NS)
		return true;
	return used > TS_TAIL_FILTER_NS &&
	       (t->limits > 0 || t->match_ns > TS_TAIL_SLOW_RATIO * t->text_ns);
}

static int keep_line(const char *line, size_t len, void *arg)
{
	struct tail_scan *t = arg;
	struct ts_cursor *s = t->s;
	struct ts_scratch *sc = ts_scratch_get(s->env);
	if (!sc)
		return -1;
	++t->lines;
	bool timed = len > TS_FILTER_FAST_MAX_LEN ||
		     ts_filter_is_slow(s->fmt->filter) || t->lines % 32 == 0;
	int64_t t0 = 0, t1 = 0;
	if (timed) {
		t0 = thread_cpu_ns();
		if (tail_scan_over(t, t0))
			return -1;
	}
	ts_buf_reset(&sc->text);
	if (ts_sse_text(&sc->text, line, len, s->env->max_line))
		return -1;
	if (timed)
		t1 = thread_cpu_ns();
	enum ts_match m = ts_filter_match(s->env->filters, s->fmt->filter,
					  sc->text.data ? sc->text.data : "",
					  sc->text.len, NULL);
	if (timed) {
		t->text_ns += t1 - t0;
		t->match_ns += thread_cpu_ns() - t1;
	}
	if (m == TS_MATCH_LIMIT)
		++t->limits;
	return m == TS_MATCH_YES;
}

/* Where a start goes: the file, its truncation count, and what to say. */
struct place {
	struct ts_file *f; /* referenced, or NULL */
	uint64_t trunc_seq;
	bool lost;    /* the id is gone: reset lost, current from 0 */
	bool created; /* "0:0" and a file now: reset created */
};

/* The file a start names: for an id, the generation with its inode (or,
 * for "0:0", the file now at the path); else the current file. */
static struct place start_file(struct ts_cursor *s, const struct ts_start *st)
{
	struct ts_log *log = s->log;
	struct place pl = { NULL, 0, false, false };
	bool by_ino = st->kind == TS_START_ID && st->pos.has_ino &&
		      st->pos.ino != 0;
	if (by_ino)
		/* the current file, or one rotated away beside it */
		pl.f = ts_log_find_inode(log, st->pos.ino);
	pthread_mutex_lock(&log->lock);
	if (by_ino) {
		if (pl.f)
			pl.trunc_seq = pl.f->trunc_seq;
		else if (log->cur || st->pos.off != 0)
			pl.lost = true;
	} else {
		pl.f = log->cur;
		if (pl.f) {
			ts_file_ref(pl.f);
			pl.trunc_seq = ts_file_content_seq_locked(pl.f);
			/* "0:0": the client saw no file yet; one that exists
			 * now is new to it, from its start */
			pl.created = st->kind == TS_START_ID && st->pos.has_ino;
		}
	}
	pthread_mutex_unlock(&log->lock);
	return pl;
}

/* An id's offset in pl->f: there if a line starts there; else the file
 * was truncated in place since, and its old content may live on in a copy
 * (copytruncate); else the id is lost. */
static void place_at_id(struct ts_cursor *s, struct place *pl, uint64_t off,
			uint64_t size)
{
	struct ts_log *log = s->log;
	if (off <= size && ts_lines_at_start(pl->f->fd, off) == 1 &&
	    !ts_log_rewritten(log, pl->f)) {
		s->off = off;
		return;
	}
	struct ts_file *c = ts_log_find_copy(log, pl->f, off);
	if (!c) {
		pl->lost = true;
		return;
	}
	pthread_mutex_lock(&log->lock);
	ts_file_unref(log, pl->f);
	pl->trunc_seq = c->trunc_seq;
	pthread_mutex_unlock(&log->lock);
	pl->f = c;
	s->off = off;
}

/* The last `tail` lines (matching lines, with a filter) of pl->f. */
static int place_at_tail(struct ts_cursor *s, struct place *pl, uint64_t tail,
			 uint64_t size)
{
	uint64_t start, end;
	struct tail_scan ts = { s, thread_cpu_ns(), 0, 0, 0, 0 };
	int rc = s->fmt->filter
			 ? ts_lines_tail_match(pl->f->fd, size, tail,
					       TS_TAIL_FILTER_MAX_BYTES,
					       keep_line, &ts, &start, &end)
			 : ts_lines_tail(pl->f->fd, size, tail, &start, &end);
	if (rc == -EAGAIN) { /* shrank meanwhile: truncated */
		start = 0;
		rc = 0;
	} else if (rc == -ERANGE) {
		/* in a partial line longer than we read back: start at the
		 * next line */
		start = size;
		s->skip_partial = true;
		rc = 0;
	}
	if (rc == 0)
		s->off = start;
	return rc;
}

int ts_cursor_start(struct ts_cursor *s, const struct ts_start *st,
		    struct ts_buf *out, struct ts_hub_conn *hc, unsigned idx)
{
	struct ts_log *log = s->log;
	struct place pl = start_file(s, st);
	int rc = 0;
	if (pl.f) {
		struct stat sb;
		if (fstat(pl.f->fd, &sb) != 0) {
			rc = -errno;
			goto fail;
		}
		uint64_t size = (uint64_t)sb.st_size;
		if (pl.created)
			s->off = 0;
		else if (st->kind == TS_START_ID)
			place_at_id(s, &pl, st->pos.off, size);
		else if ((rc = place_at_tail(s, &pl, st->tail, size)) != 0)
			goto fail;
		s->scan = s->id_off = s->off;
	}
	pthread_mutex_lock(&log->lock);
	s->file = pl.f;
	s->trunc_seq = pl.trunc_seq;
	if (pl.lost) {
		set_file_locked(s, log->cur);
		rc = reset_event(s, out, "lost");
	} else if (pl.created) {
		rc = reset_event(s, out, "created");
	}
	pthread_mutex_unlock(&log->lock);
	ts_hub_link(&log->hub, &s->link, hc, idx);
	return rc;
fail:
	pthread_mutex_lock(&log->lock);
	ts_file_unref(log, pl.f);
	pthread_mutex_unlock(&log->lock);
	return rc;
}

enum action {
	ACT_NONE,
	ACT_READ,
	ACT_CREATED,
	ACT_TRUNCATED,
	ACT_ROTATED,
	ACT_DELETED
};

/* What the stream must do next, once it has read its file to the end.
 * Caller holds the lock. */
static enum action next_action_locked(struct ts_cursor *s, int64_t now)
{
	struct ts_log *log = s->log;
	struct ts_file *f = s->file;
	if (!f)
		return log->cur ? ACT_CREATED : ACT_NONE;
	if (truncated_since_locked(s))
		return ACT_TRUNCATED;
	if (s->scan < f->size) {
		/* The watcher saw more than our last read did: either data
		 * arrived since, or the file shrank and the watcher has not
		 * seen that yet (it will, and wake us). */
		struct stat sb;
		if (fstat(f->fd, &sb) == 0 && (uint64_t)sb.st_size > s->scan)
			return ACT_READ;
	}
	if (!f->detached || f->succ_pending)
		return ACT_NONE;
	/* At the end of a rotated-away file: go on in the generation that
	 * came after it, once its writer has moved on (the next one was
	 * written to, or left the path too), or after a grace period. */
	bool waited = now - f->detached_ms >= TS_ROTATE_WAIT_MS;
	if (f->succ)
		return f->succ->size > 0 || f->succ->detached || waited
			       ? ACT_ROTATED
			       : ACT_NONE;
	if (f->nlink == 0)
		return ACT_DELETED;
	if (log->cur)
		return log->cur->size > 0 || waited ? ACT_ROTATED : ACT_NONE;
	return waited ? ACT_DELETED : ACT_NONE;
}

static int apply_locked(struct ts_cursor *s, enum action act,
			struct ts_buf *out)
{
	struct ts_log *log = s->log;
	switch (act) {
	case ACT_NONE:
	case ACT_READ:
		return 0;
	case ACT_CREATED:
		set_file_locked(s, log->cur);
		return reset_event(s, out, "created");
	case ACT_TRUNCATED:
		s->trunc_seq = s->file->trunc_seq;
		s->scan = 0;
		s->skip_partial = false;
		/* at the start already (say it switched to this file just
		 * before the watcher saw it truncated): nothing to reset */
		if (s->off == 0)
			return 0;
		/* the client's position too: a merged stream writes it in
		 * the ids of the other logs' events */
		s->off = s->id_off = 0;
		return reset_event(s, out, "truncated");
	case ACT_ROTATED:
		set_file_locked(s, s->file->succ ? s->file->succ : log->cur);
		return reset_event(s, out, "rotated");
	case ACT_DELETED:
		set_file_locked(s, NULL);
		return reset_event(s, out, "deleted");
	}
	return 0;
}

static int pread_some(int fd, char *buf, size_t n, uint64_t off, size_t *got)
{
	for (;;) {
		ssize_t r = pread(fd, buf, n, (off_t)off);
		if (r >= 0) {
			*got = (size_t)r;
			return 0;
		}
		if (errno != EINTR)
			return -errno;
	}
}

/* The data of a merged stream's line: {"log":"A","line":"...","offset":N},
 * with "match" ranges when there are grep patterns. */
static int data_of_merged(const struct ts_cursor *s, struct ts_scratch *sc,
			  const char *text, uint64_t next)
{
	struct ts_buf *o = &sc->out;
	int rc = ts_buf_puts(o, "{\"log\":\"");
	if (rc == 0)
		rc = ts_buf_puts(o, s->log->name);
	if (rc == 0)
		rc = ts_buf_puts(o, "\",\"line\":");
	if (rc == 0)
		rc = ts_json_string(o, text, sc->text.len);
	if (rc == 0)
		rc = ts_buf_puts(o, ",\"offset\":");
	if (rc == 0)
		rc = ts_buf_u64(o, next);
	if (rc == 0 && s->fmt->grep)
		rc = ts_buf_puts(o, ",\"match\":[");
	if (rc == 0 && s->fmt->grep && sc->ranges.len)
		rc = ts_buf_append(o, sc->ranges.data, sc->ranges.len);
	if (rc == 0 && s->fmt->grep)
		rc = ts_buf_puts(o, "]");
	if (rc == 0)
		rc = ts_buf_puts(o, "}");
	return rc;
}

/* Encode the file line [p, p + len) whose '\n' ends before `next`, unless
 * the stream's filter drops it.  1: an event was written, 0: dropped,
 * -errno. */
static int emit_line(struct ts_cursor *s, struct ts_scratch *sc, const char *p,
		     size_t len, uint64_t next, const struct ts_sse_idp *plain)
{
	uint64_t ino = s->file->ino;
	size_t max_line = s->env->max_line;
	int rc;

	const struct ts_fmt *fmt = s->fmt;
	if (!fmt->filter && !fmt->json && !fmt->all) {
		rc = plain ? ts_sse_plain_line(&sc->out, plain, p, len, next)
			   : ts_sse_line(&sc->out, p, len, max_line, ino, next);
		return rc ? rc : 1;
	}
	/* filters and JSON see the text the client would get */
	ts_buf_reset(&sc->text);
	ts_buf_reset(&sc->ranges);
	rc = ts_sse_text(&sc->text, p, len, max_line);
	if (rc)
		return rc;
	const char *text = sc->text.data ? sc->text.data : "";
	bool json = fmt->json || fmt->all;
	enum ts_match m = ts_filter_match(s->env->filters, fmt->filter, text,
					  sc->text.len,
					  json ? &sc->ranges : NULL);
	if (m == TS_MATCH_LIMIT && !s->limit_reported) {
		char fields[64];
		snprintf(fields, sizeof(fields), "\"offset\":%llu",
			 (unsigned long long)next);
		rc = control_event(s, &sc->out, "filter-limit", fields, false,
				   ino, s->id_off);
		if (rc)
			return rc;
		s->limit_reported = true;
		atomic_fetch_add(&s->env->filter_limits, 1);
	}
	if (m != TS_MATCH_YES)
		return 0;
	rc = ts_cursor_write_id(s, &sc->out, ino, next);
	if (rc == 0)
		rc = ts_buf_puts(&sc->out, "data: ");
	if (rc)
		return rc;
	if (fmt->all) {
		rc = data_of_merged(s, sc, text, next);
	} else if (fmt->json) {
		ts_buf_reset(&sc->json);
		rc = ts_filter_json_line(&sc->json, text, sc->text.len, next,
					 sc->ranges.data ? sc->ranges.data : "",
					 sc->ranges.len);
		if (rc == 0)
			rc = ts_buf_append(&sc->out, sc->json.data,
					   sc->json.len);
	} else {
		rc = ts_buf_append(&sc->out, text, sc->text.len);
	}
	if (rc == 0)
		rc = ts_buf_append(&sc->out, "\n\n", 2);
	return rc ? rc : 1;
}

/* Encode the line [s->off, end) that did not fit in one read: only its
 * first max_line (+4, so that a cut is still seen after dropping a '\r')
 * bytes matter. */
static int emit_long_line(struct ts_cursor *s, struct ts_scratch *sc,
			  uint64_t end)
{
	size_t want = s->env->max_line + 4;
	if (end - s->off < want)
		want = (size_t)(end - s->off);
	if (sc->headcap < want) {
		char *p = realloc(sc->head, want);
		if (!p)
			return -ENOMEM;
		sc->head = p;
		sc->headcap = want;
	}
	size_t got = 0;
	while (got < want) {
		size_t n = 0;
		int rc = pread_some(s->file->fd, sc->head + got, want - got,
				    s->off + got, &n);
		if (rc)
			return rc;
		if (n == 0)
			break;
		got += n;
	}
	return emit_line(s, sc, sc->head, got, end + 1, NULL);
}

/* Keep a line, or drop it and roll the output back, after emit_line. */
static int commit_line(struct ts_cursor *s, struct ts_scratch *sc, int rc,
		       size_t before, bool limit_was, size_t budget,
		       uint64_t next, unsigned *nevents)
{
	if (rc < 0)
		return rc;
	if (sc->out.len > budget && before > 0) {
		/* keep whole events together: this line goes out on the
		 * next call */
		sc->out.len = before;
		s->limit_reported = limit_was;
		s->scan = s->off;
		return 1;
	}
	if (rc == 1) {
		(*nevents)++;
		s->id_off = next;
	}
	s->off = next;
	return 0;
}

/* The end of the line at p (its '\n'), or NULL when it does not end before
 * `end`; *plain: a plain line no longer than max_line, for
 * ts_sse_plain_line.  One pass over the usual line. */
static const char *line_end(const char *p, const char *end, size_t max_line,
			    bool *plain)
{
	size_t k = ts_sse_plain_run(p, (size_t)(end - p));
	if (p + k < end && p[k] == '\n') {
		*plain = k <= max_line;
		return p + k;
	}
	*plain = false;
	return memchr(p + k, '\n', (size_t)(end - p) - k);
}

static bool fc_matches(const struct fcache *fc, const struct ts_cursor *s)
{
	return fc->log == s->log && fc->born_ns == s->log->born_ns &&
	       fc->serial == s->file->serial && fc->trunc_seq == s->trunc_seq;
}

enum { FC_MISS, FC_SERVED, FC_FULL };

/* Copy cached events from the stream's position: whole events, as many as
 * fit in `budget` (at least one when `out` is empty).  FC_FULL: the next
 * event does not fit. */
static int fc_serve(struct ts_cursor *s, struct fcache *fc, struct ts_buf *out,
		    size_t budget, unsigned *nevents)
{
	if (!fc_matches(fc, s) || s->off < fc->start || s->off >= fc->end ||
	    s->scan != s->off)
		return FC_MISS;
	size_t i0 = 0, e0 = 0;
	if (s->off != fc->start) {
		/* the line before ours ends at s->off */
		size_t lo = 0, hi = fc->n;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (fc->ends[mid] < s->off)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == fc->n || fc->ends[lo] != s->off)
			return FC_MISS; /* not at a line start we know */
		i0 = lo + 1;
		e0 = fc->epos[lo];
	}
	size_t room = budget > out->len ? budget - out->len : 0;
	/* the last event j >= i0 that still fits */
	size_t lo = i0, hi = fc->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (fc->epos[mid] - e0 <= room)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t j;
	if (lo > i0)
		j = lo - 1;
	else if (out->len == 0)
		j = i0; /* a big event alone: the caller keeps the rest */
	else
		return FC_FULL;
	if (ts_buf_append(out, fc->enc.data + e0, fc->epos[j] - e0))
		return FC_MISS;
	*nevents += (unsigned)(j - i0 + 1);
	s->off = s->scan = s->id_off = fc->ends[j];
	return FC_SERVED;
}

/* Read from the stream's position and encode the whole lines found into the
 * cache: appended when they continue it, else in place of it.  Returns the
 * number of lines added (0: none whole there, the caller reads itself). */
static size_t fc_fill(struct ts_cursor *s, struct ts_scratch *sc)
{
	struct fcache *fc = &sc->fc;
	struct ts_file *f = s->file;
	size_t got = 0;
	if (s->off >= s->limit)
		return 0;
	size_t want = s->limit - s->off < TS_RBUF ? (size_t)(s->limit - s->off)
						  : TS_RBUF;
	if (pread_some(f->fd, sc->rbuf, want, s->off, &got) || got == 0)
		return 0;
	const char *p = sc->rbuf, *end = sc->rbuf + got;
	if (!memchr(p, '\n', got))
		return 0;
	if (!fc_matches(fc, s) || s->off != fc->end ||
	    fc->enc.len > TS_FCACHE_MAX) {
		fc->log = s->log;
		fc->born_ns = s->log->born_ns;
		fc->serial = f->serial;
		fc->trunc_seq = s->trunc_seq;
		fc->start = fc->end = s->off;
		fc->n = 0;
		ts_buf_reset(&fc->enc);
	}
	size_t added = 0;
	struct ts_sse_idp idp;
	ts_sse_idp_set(&idp, f->ino);
	while (p < end) {
		bool plain;
		const char *nl = line_end(p, end, s->env->max_line, &plain);
		if (!nl)
			break;
		if (fc->n == fc->cap) {
			size_t cap = fc->cap ? fc->cap * 2 : 1024;
			uint64_t *e = realloc(fc->ends, cap * sizeof(*e));
			if (!e)
				break;
			fc->ends = e;
			size_t *ep = realloc(fc->epos, cap * sizeof(*ep));
			if (!ep)
				break;
			fc->epos = ep;
			fc->cap = cap;
		}
		uint64_t next = s->off + (uint64_t)(nl - sc->rbuf) + 1;
		int rc = plain ? ts_sse_plain_line(&fc->enc, &idp, p,
						   (size_t)(nl - p), next)
			       : ts_sse_line(&fc->enc, p, (size_t)(nl - p),
					     s->env->max_line, f->ino, next);
		if (rc)
			break;
		fc->ends[fc->n] = next;
		fc->epos[fc->n] = fc->enc.len;
		fc->n++;
		fc->end = next;
		added++;
		p = nl + 1;
	}
	return added;
}

/* Has this call used its time?  A filter's cost is the pattern's, so a
 * filtered stream is bounded in thread CPU time: the clock is read after
 * every costly line and every 64 cheap ones.  Going over also moves the
 * filter off the fast path (see filter.c). */
struct budget {
	int64_t cpu0;  /* thread CPU time at the start of the call */
	unsigned work; /* lines done, a long line or a run of lines
			     * skipped at once counting one per 128 bytes */
	unsigned next; /* look at the clock again at this much work */
};

static bool over_budget(struct ts_cursor *s, struct budget *b, size_t len,
			bool careful)
{
	if (!s->fmt->filter)
		return false;
	b->work += 1 + (unsigned)(len / 128);
	/* a line past the fast path's length went through the guarded path,
	 * which may spend its whole budget: look after each */
	if (!careful && b->work < b->next && len <= TS_FILTER_FAST_MAX_LEN)
		return false;
	b->next = b->work + 64;
	int64_t used = thread_cpu_ns() - b->cpu0;
	if (used <= TS_FILTER_CALL_NS)
		return false;
	/* many cheap lines are no reason to leave the fast path */
	if (used / b->work > TS_FILTER_SLOW_LINE_NS &&
	    !ts_filter_is_slow(s->fmt->filter))
		ts_filter_slow(s->fmt->filter);
	return true;
}

/* One read_lines call: what its steps share. */
struct reading {
	struct ts_cursor *s;
	struct ts_scratch *sc;
	size_t budget; /* about this many bytes of output */
	unsigned *nevents;
	struct budget bud;
	/* a pattern already found slow costs up to its budget on each line:
	 * look at the clock after every line then */
	bool careful;
	bool plain_lines; /* no filter, no JSON: lines go out as they are */
	struct ts_sse_idp idp;
};

/* What the lines of one read came to: all whole lines done, the output
 * full, or the call's time used (or -errno). */
enum { RD_MORE, RD_FULL, RD_YIELD };

/* Whole lines through the frame cache while it can.  True when the output
 * is full. */
static bool read_cached(struct reading *r)
{
	struct ts_cursor *s = r->s;
	struct ts_scratch *sc = r->sc;
	while (sc->out.len < r->budget) {
		int rc = fc_serve(s, &sc->fc, &sc->out, r->budget, r->nevents);
		if (rc == FC_FULL)
			return true;
		if (rc == FC_SERVED)
			continue;
		if (s->off != s->scan || fc_fill(s, sc) == 0)
			break;
		rc = fc_serve(s, &sc->fc, &sc->out, r->budget, r->nevents);
		if (rc == FC_FULL)
			return true;
		if (rc == FC_MISS)
			break;
	}
	return false;
}

/* The rest of a line the stream started in the middle of, in the read
 * [p, p + got) at s->scan: not a line to send. */
static void skip_rest_of_line(struct ts_cursor *s, const char *p, size_t got)
{
	uint64_t base = s->scan;
	const char *nl = memchr(p, '\n', got);
	s->off = s->scan = nl ? base + (uint64_t)(nl - p) + 1 : base + got;
	s->skip_partial = nl == NULL;
}

/* The end of a line that began in an earlier read, at the start of this
 * one, [*pp, end) at file offset base.  *pp: where the read's own lines
 * start (end when the line goes on past it). */
static int finish_line(struct reading *r, const char **pp, const char *end,
		       uint64_t base)
{
	struct ts_cursor *s = r->s;
	struct ts_scratch *sc = r->sc;
	const char *nl = memchr(*pp, '\n', (size_t)(end - *pp));
	if (!nl) {
		*pp = end;
		return RD_MORE;
	}
	uint64_t lend = base + (uint64_t)(nl - sc->rbuf);
	uint64_t lstart = s->off;
	size_t before = sc->out.len;
	bool lw = s->limit_reported;
	int rc = commit_line(s, sc, emit_long_line(s, sc, lend), before, lw,
			     r->budget, lend + 1, r->nevents);
	if (rc)
		return rc < 0 ? rc : RD_FULL;
	*pp = nl + 1;
	return over_budget(s, &r->bud, lend - lstart, r->careful) ? RD_YIELD
								  : RD_MORE;
}

/* A filter that can search many lines at once skips the lines it cannot
 * keep without looking at them one by one. */
struct scan {
	bool on;
	const char *cand;  /* the next line that may match */
	const char *wend;  /* the end of the read's last whole line */
	const char *vend;  /* the end of what the filter may search as it is */
	unsigned adjacent; /* searches in a row that found the very next line */
};

static void scan_start(const struct reading *r, struct scan *st, const char *p,
		       const char *end)
{
	*st = (struct scan){ .vend = p };
	const struct ts_cursor *s = r->s;
	if (s->fmt->filter && !r->careful &&
	    ts_filter_can_scan(s->fmt->filter) &&
	    s->env->max_line >= TS_SCAN_WINDOW) {
		st->wend = memrchr(p, '\n', (size_t)(end - p));
		st->on = st->wend != NULL;
		if (st->wend)
			st->wend++;
	}
}

/* Search from the line at p for the next one that may match: only lines
 * that the filter sees as they are (plain, short: the pattern's cost per
 * line stays that of its fast path), a window at a time. */
static void scan_search(const struct reading *r, struct scan *st, const char *p)
{
	const char *buf = r->sc->rbuf;
	if (st->vend <= p) {
		size_t avail = (size_t)(st->wend - p);
		st->vend = p + ts_sse_scannable(p, avail < TS_SCAN_WINDOW
							   ? avail
							   : TS_SCAN_WINDOW);
	}
	size_t ok = (size_t)(st->vend - p);
	size_t at = (size_t)(p - buf);
	size_t m = ok == 0 ? at
			   : ts_filter_scan(r->s->env->filters,
					    r->s->fmt->filter, buf, at + ok,
					    at);
	if (m == (size_t)-1) {
		st->on = false;
		return;
	}
	const char *hit = buf + m;
	const char *ls = hit > p ? memrchr(p, '\n', (size_t)(hit - p)) : NULL;
	st->cand = hit >= p + ok ? p + ok : ls ? ls + 1 : p;
	/* searching gains nothing when every line is a candidate */
	st->adjacent = st->cand == p ? st->adjacent + 1 : 0;
	if (st->adjacent >= 8)
		st->on = false;
}

/* The next line to look at, from the line at p. */
static const char *scan_next(const struct reading *r, struct scan *st,
			     const char *p)
{
	if (st->on && (!st->cand || st->cand < p))
		scan_search(r, st, p);
	return st->on ? st->cand : p;
}

/* Encode the lines of one read, [sc->rbuf, sc->rbuf + got) at file offset
 * base, from the stream's position.  RD_MORE, RD_FULL, RD_YIELD or
 * -errno. */
static int read_chunk(struct reading *r, uint64_t base, size_t got)
{
	struct ts_cursor *s = r->s;
	struct ts_scratch *sc = r->sc;
	const char *p = sc->rbuf, *end = sc->rbuf + got;
	if (s->off < base) {
		int rc = finish_line(r, &p, end, base);
		if (rc != RD_MORE)
			return rc;
	}
	struct scan st;
	scan_start(r, &st, p, end);
	while (p < end) {
		const char *cand = scan_next(r, &st, p);
		if (cand > p) {
			size_t skipped = (size_t)(cand - p);
			s->off = base + (uint64_t)(cand - sc->rbuf);
			p = cand;
			/* skipped lines were short and plain, and searched at
			 * some GB/s: a unit per KiB */
			r->bud.work += (unsigned)(skipped / 1024);
			if (over_budget(s, &r->bud, 0, r->careful))
				return RD_YIELD;
			continue;
		}
		bool plain = false;
		const char *nl =
			r->plain_lines
				? line_end(p, end, s->env->max_line, &plain)
				: memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		uint64_t next = base + (uint64_t)(nl - sc->rbuf) + 1;
		size_t llen = (size_t)(nl - p);
		size_t before = sc->out.len;
		bool lw = s->limit_reported;
		int rc = commit_line(s, sc,
				     emit_line(s, sc, p, llen, next,
					       plain ? &r->idp : NULL),
				     before, lw, r->budget, next, r->nevents);
		if (rc)
			return rc < 0 ? rc : RD_FULL;
		p = nl + 1;
		if (over_budget(s, &r->bud, llen, r->careful))
			return RD_YIELD;
	}
	return RD_MORE;
}

/* Lines the filter dropped still move the client's position: an id
 * without data updates EventSource's lastEventId silently. */
static int write_dropped_id(struct ts_cursor *s, struct ts_scratch *sc)
{
	if (!s->fmt->filter || s->id_off == s->off)
		return 0;
	int rc = ts_cursor_write_id(s, &sc->out, s->file->ino, s->off);
	if (rc == 0)
		rc = ts_buf_append(&sc->out, "\n", 1);
	if (rc)
		return rc;
	s->id_off = s->off;
	return 0;
}

/* Read complete lines from the stream's file and encode them until about
 * `budget` bytes are ready.  *eof: the end of the file was reached.
 * Returns 0, 1 to yield (enough work for one call), or -errno. */
static int read_lines(struct ts_cursor *s, struct ts_scratch *sc, size_t budget,
		      bool *eof, unsigned *nevents)
{
	struct ts_file *f = s->file;
	struct reading r = {
		.s = s,
		.sc = sc,
		.budget = budget,
		.nevents = nevents,
		.bud = { s->fmt->filter ? thread_cpu_ns() : 0, 0, 64 },
		.careful = s->fmt->filter && ts_filter_is_slow(s->fmt->filter),
		.plain_lines = !s->fmt->filter && !s->fmt->json && !s->fmt->all,
	};
	ts_sse_idp_set(&r.idp, f->ino);
	/* Read about what fits: reading far more than `budget` would only
	 * be thrown away and read again on the next call. */
	size_t want = budget * 2 < 16384 ? 16384 : budget * 2;
	/* a filter drops most lines: read big, it is all used */
	if (want > TS_RBUF || s->fmt->filter)
		want = TS_RBUF;
	*eof = false;
	/* Streams near the end of the file share what they read there; one
	 * far behind (a replay) would only copy its events twice through the
	 * cache. */
	if (r.plain_lines && !s->skip_partial &&
	    (s->off >= s->limit || s->limit - s->off <= TS_FCACHE_MAX) &&
	    read_cached(&r))
		return 0;
	int rc = 0;
	size_t nread = 0;
	while (sc->out.len < budget && nread < TS_READ_PER_CALL) {
		size_t got = 0;
		if (s->scan >= s->limit) {
			*eof = true;
			break;
		}
		size_t n = s->limit - s->scan < want
				   ? (size_t)(s->limit - s->scan)
				   : want;
		rc = pread_some(f->fd, sc->rbuf, n, s->scan, &got);
		if (rc)
			return rc;
		if (got == 0) {
			*eof = true;
			break;
		}
		nread += got;
		if (s->skip_partial) {
			skip_rest_of_line(s, sc->rbuf, got);
			continue;
		}
		uint64_t base = s->scan;
		rc = read_chunk(&r, base, got);
		if (rc == RD_MORE) {
			s->scan = base + got;
			continue;
		}
		if (rc != RD_YIELD)
			return rc == RD_FULL ? 0 : rc;
		s->scan = s->off;
		rc = 1;
		break;
	}
	int r2 = write_dropped_id(s, sc);
	return r2 ? r2 : rc;
}

/* The stream's file was truncated in place before the stream had read it
 * all: if a copy of the old content is beside it (copytruncate), go on in
 * the copy from the same offset, so that no line is lost; its end leads
 * back to the file, from 0, with `reset rotated` (as for a client that
 * resumes into the copy).  True when it did. */
static bool follow_copy(struct ts_cursor *s)
{
	struct ts_log *log = s->log;
	struct ts_file *c = ts_log_find_copy(log, s->file, s->off);
	if (!c)
		return false;
	pthread_mutex_lock(&log->lock);
	ts_file_unref(log, s->file);
	s->file = c; /* find_copy's reference is the stream's now */
	s->trunc_seq = c->trunc_seq;
	s->scan = s->off;
	pthread_mutex_unlock(&log->lock);
	return true;
}

int ts_cursor_step(struct ts_cursor *s, struct ts_scratch *sc, size_t budget,
		   unsigned *nevents)
{
	struct ts_log *log = s->log;
	bool eof = true;
	/* A truncation seen by the watcher must win over what a read now
	 * would find at our offset: new bytes of a rewritten file, mid-line.
	 * The log's lock is the watcher's too, held by it across system
	 * calls: taken once here in the usual case (no copy to look for), as
	 * a reader that finds it taken sleeps until the scheduler runs it
	 * again (bench/README.md, the bench histograms). */
	TS_STEP_LOCK(&log->lock);
	bool trunc = truncated_since_locked(s);
	/* behind when the old content was cut away? */
	bool behind = trunc && s->file->npre > 0 &&
		      s->off < s->file->pre[s->file->npre - 1].size;
	if (behind) {
		pthread_mutex_unlock(&log->lock);
		if (follow_copy(s))
			trunc = false;
		TS_STEP_LOCK(&log->lock);
	}
	if (trunc && truncated_since_locked(s) &&
	    apply_locked(s, ACT_TRUNCATED, &sc->out) == 0)
		(*nevents)++;
	/* Read only what the watcher has seen and checked (its marker):
	 * bytes past it may belong to a rewrite. */
	s->limit = s->file ? s->file->size : 0;
	pthread_mutex_unlock(&log->lock);
	if (s->file) {
		int rc = read_lines(s, sc, budget, &eof, nevents);
		if (rc < 0)
			return rc;
		if (rc > 0)
			return TS_STEP_YIELD;
	}
	/* at the end: what comes next is decided now, also after lines were
	 * read (a stream served directly would otherwise take a round more
	 * per line only to find nothing: see conn.c serve_direct) */
	if (!eof)
		return TS_STEP_MORE;
	TS_CURSOR_SEAM(s);
	TS_STEP_LOCK(&log->lock);
	enum action act = next_action_locked(s, ts_now_ms());
	if (act == ACT_TRUNCATED) {
		/* seen by the watcher while we read: the top of the next step
		 * takes it, where a stream still in the old content looks
		 * for its copy (a reset here would lose the lines) */
		pthread_mutex_unlock(&log->lock);
		return TS_STEP_MORE;
	}
	int rc = 0;
	if (act != ACT_NONE) {
		rc = apply_locked(s, act, &sc->out);
		if (act != ACT_READ && rc == 0)
			(*nevents)++;
	}
	pthread_mutex_unlock(&log->lock);
	if (rc)
		return rc;
	return act == ACT_NONE ? TS_STEP_REST : TS_STEP_MORE;
}
