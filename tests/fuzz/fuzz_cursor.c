/* fuzz_cursor.c: read invariance through a log's cursor (src/cursor.c,
 * with logfile.c, hub.c, lines.c, sse.c, filter.c as they are).
 *
 * A random program of file operations on DIR/app.log, in a private
 * directory under /dev/shm (tmpfs: no inode is reused within an input),
 * and of cursor steps with random read budgets, the log told of each change
 * the way the watcher tells it (ts_log_check after each operation, and
 * between the two halves of a rotation or a copytruncate when the input
 * says; ts_log_dir_changed for each change of the directory).  The cursor
 * is driven as tests/test_cursor.c drives it, without HTTP.  Every event
 * it writes is checked, as it comes, against a reference that knows every
 * byte ever written to every file (a model of the files, each version of
 * each one kept whole) and reads them at once:
 *
 *  - a line event is the next line of the file (the version) the reference
 *    is reading, at the offset the reference is at: its id INO:OFF is that
 *    file's inode and the offset just after the line's '\n', its data the
 *    line as ts_sse_text cuts and cleans it (format=json: the object
 *    ts_filter_json_line writes for it, with the grep literal's matches,
 *    or the first of them: filter.h's ranges are best effort);
 *    with a filter, the lines in between are lines the filter drops, and an
 *    event that is only an id moves the position over dropped lines only;
 *  - a `reset` comes only once every line of the file being read is
 *    delivered, with the reason and the id (NEW_INO:0; none for `deleted`)
 *    of the next step of the reference's reading, which is:
 *      rename-rotation (app.log -> app.log.1, a new app.log now or at the
 *        next append): the rest of the old file, then `rotated` and the new
 *        file from 0; lines its writer appends to the old file later are
 *        part of it while the reader has not left it (it leaves once the
 *        new file is not empty, and says so with the reset);
 *      copytruncate (app.log copied to a new app.log.1, then truncated to
 *        0): if the cursor had not read up to the size the file had, the
 *        rest of it from the copy (the copy's inode), then `rotated` and
 *        the file from 0; else `truncated` and the file from 0;
 *      deletion: the rest of the file, then `deleted`; a file created
 *        at the path later: `created` and it from 0;
 *  - *nevents counts the line and control events written;
 *  - the cursor's id_off, which a merged stream writes as this log's
 *    position in the ids of the other logs' events, is the offset of the
 *    last id the client got from it;
 *  - after the last operation, and after each "drain" operation, the
 *    cursor steps until it rests: then every line the reference has is
 *    delivered; what may stay undelivered is one `rotated` into a new
 *    file that is still empty (the cursor waits, up to TS_ROTATE_WAIT_MS,
 *    for the writer to move to it).
 *
 * Where exact equality is not defined, and how this target avoids it:
 *  - a truncation that the watcher has not seen when the cursor reads
 *    (the cursor reads only up to the size the watcher saw and checked, so
 *    a file truncated and rewritten behind its back may give new bytes at
 *    old offsets): the watcher here looks after every operation, before
 *    the cursor steps again, so every truncation is seen;
 *  - a copy, or a generation, that is gone before the cursor got to it
 *    (app.log.1 replaced by the next rotation while the cursor had not yet
 *    looked for the copy: the daemon keeps no data of its own), or that
 *    the daemon does not chain (known limitations: a second truncation
 *    while the cursor is still in an older version or in the first copy;
 *    a rotation while the cursor is in a copy, which leads back to
 *    whatever file is at the path then; a rotation while a `created` is
 *    still to come).  Before an operation that would make such a loss,
 *    the program drains the cursors first.
 *    Rename-rotations and deletions while the cursor is behind by several
 *    generations are not drained: the daemon chains the generations it
 *    holds open, and every line of them must arrive.
 *  - TS_ROTATE_WAIT_MS (5 s) of a rotation without a new line: an input
 *    takes milliseconds.
 *
 * Input: flags (1): bits 0-1 start (0, 3: the end; 1: tail=N; 2: the id
 *   "0:0"), bit 2 an initial file, bits 3-4 format (0 plain, 1 json, 2 a
 *   grep literal, 3 a grep literal and json), bit 5 icase, bit 6 an
 *   exclude literal, bit 7 a merged stream (/api/events: its one log
 *   "app", ids "app=INO:OFF", data {"log":"app","line":...}); max_line (1: 0 is 2048, 1 is 65536, else itself);
 *   tail N (1); grep literal (1 + 3), exclude literal (1 + 3); the initial
 *   content (a length byte, then that many bytes); then operations, one
 *   byte each and their arguments, at most MAX_OPS:
 *     0, 1 append: a length byte L, then L bytes, where FE C B is
 *          (C + 1) * 64 bytes B (long lines, reads of more than one block)
 *     2 step: a byte (count 1-4, budget class) and 2 bytes of budget
 *     3 drain: 2 bytes of budget; step until the cursor rests
 *     4 copytruncate: a byte (bit 0: the watcher looks between the copy
 *       and the truncation)
 *     5 rotate: a byte (bit 0: the watcher looks between the rename and
 *       the new file; bit 1: no new file until the next append)
 *     6 delete
 *     7 the watcher looks (nothing changed, or the directory did)
 *     8 a late append: as 0, to app.log.1 when it is the file the last
 *       rotation renamed (its writer has not moved to the new file yet)
 *     9 resume: a byte and 2 bytes of budget; a second reader starts from
 *       an id (Last-Event-ID), in place of the one before: bit 0 clear,
 *       an id the first reader wrote in the version it is in (the last
 *       or an earlier one, by the byte's other bits), and the second
 *       reader must then send what the first still has to, from there;
 *       bit 0 set, with the first reader in the file at the path, a line
 *       start of the file the last rotation renamed to app.log.1 (found
 *       beside the path): its rest, `rotated`, the file at the path.
 *       Every later operation applies to both; step (bit 2 of its byte)
 *       may step the second one.
 * Literals are 1-3 characters of "abcxyz01" (as in fuzz_lines: a byte
 * search is the reference of what PCRE2 matches).
 *
 * The stream environment (its per-thread frame cache among it) is made
 * anew for each input: the cache is keyed by the log's address and the
 * file's serial, which a new log of the next input may reuse (the daemon
 * frees its logs only when it exits). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cursor.h"
#include "filter.h"
#include "fuzz.h"
#include "fuzz_jsonp.h"
#include "fuzz_ref.h"
#include "logfile.h"
#include "sse.h"

#define MAX_OPS 64
#define MAX_FILES (2 * MAX_OPS + 4)
#define MAX_SEGS (2 * MAX_OPS + 4)
#define MAX_BYTES (512 * 1024) /* written per input, at most */
/* operation codes are the byte modulo 10 */
#define MAX_STEPS 100000 /* a drain that does not rest fails */

static const char alphabet[] = "abcxyz01";

/* ---- the model of the files ---- */

/* One version of one file: its inode, and every byte it holds.  A
 * truncation starts a new version of the same inode; the old one stays
 * as it was, for a reader still in it. */
struct mfile {
	uint64_t ino;
	struct ts_buf c;
};

enum kind {
	K_START,
	K_RENAME,
	K_COPY,
	K_AFTER_COPY,
	K_TRUNC,
	K_DELETED,
	K_CREATED
};

/* A step of the reference's reading: entered with the reset of `k`, the
 * file version `f` (-1: none) read from `off`. */
struct seg {
	int f;
	uint64_t off;
	enum kind k;
};

/* A reader: a cursor (a client's connection) and the reference's queue of
 * what it still has to read, q[0] where it is. */
struct reader {
	bool active;
	struct ts_cursor c;
	struct ts_cursor *all[1]; /* a merged stream: its one cursor */
	struct ts_fmt fmt;
	struct ts_hub_conn hc;
	struct seg q[MAX_SEGS];
	int nq;
	uint64_t last_id; /* the offset of the last id written (or the start) */
};

/* The ids the first reader wrote: where a client may resume from. */
#define MAX_HIST 64
struct hist {
	int f;
	uint64_t off;
};

static struct {
	char dir[64], path[96], path1[100];
	struct mfile f[MAX_FILES];
	int nf;
	int at_path;	      /* the version at the path, -1: none */
	int at_path1;	      /* the renamed generation at app.log.1, -1:
				 * none (or a copy) */
	bool renamed_pending; /* renamed away, no new file yet */
	struct reader r[2];   /* the client, and one that resumes */
	struct hist hist[MAX_HIST];
	unsigned nhist;
	size_t written;
	/* the system under test */
	struct ts_stream_env env;
	struct ts_log *log;
	struct ts_fmt fmt; /* the readers' format, but for `all` */
	bool merged;
	size_t max_line;
	struct fuzz_ref_filter rf;
	struct ts_buf text, want, ranges;
	bool trace; /* FUZZ_CURSOR_TRACE set: print what each step writes */
} M;

/* The reader whose events are being checked. */
static struct reader *R;

static void cleanup_dir(void)
{
	unlink(M.path);
	unlink(M.path1);
	rmdir(M.dir);
}

static void init_dir(void)
{
	if (M.dir[0])
		return;
	strcpy(M.dir, "/dev/shm/fuzz_cursor-XXXXXX");
	if (!mkdtemp(M.dir)) {
		strcpy(M.dir, "/tmp/fuzz_cursor-XXXXXX");
		FUZZ_CHECK(mkdtemp(M.dir) != NULL, "mkdtemp: %s",
			   strerror(errno));
	}
	snprintf(M.path, sizeof(M.path), "%s/app.log", M.dir);
	snprintf(M.path1, sizeof(M.path1), "%s.1", M.path);
	atexit(cleanup_dir);
	M.trace = getenv("FUZZ_CURSOR_TRACE") != NULL;
}

static void no_resume(void *arg)
{
	(void)arg;
}

static int new_version(uint64_t ino, const struct ts_buf *from)
{
	FUZZ_CHECK(M.nf < MAX_FILES, "too many files");
	struct mfile *m = &M.f[M.nf];
	m->ino = ino;
	m->c = (struct ts_buf)TS_BUF_INIT;
	if (from && from->len)
		FUZZ_CHECK(ts_buf_append(&m->c, from->data, from->len) == 0,
			   "oom");
	return M.nf++;
}

static uint64_t ino_of_fd(int fd)
{
	struct stat st;
	FUZZ_CHECK(fstat(fd, &st) == 0, "fstat: %s", strerror(errno));
	return (uint64_t)st.st_ino;
}

/* A step for every reader. */
static void push(int f, uint64_t off, enum kind k)
{
	for (int i = 0; i < 2; i++) {
		struct reader *r = &M.r[i];
		if (!r->active)
			continue;
		FUZZ_CHECK(r->nq < MAX_SEGS, "too many segments");
		r->q[r->nq++] = (struct seg){ f, off, k };
	}
}

/* ---- the reference's lines ---- */

static bool filtered(void)
{
	return M.rf.grep || M.rf.exclude;
}

/* The text of the line [a, nl) of version f into M.text; kept by the
 * filter?  With ranges, the grep literal's matches into M.ranges. */
static bool line_text(int f, size_t a, size_t nl, bool ranges)
{
	const struct ts_buf *c = &M.f[f].c;
	ts_buf_reset(&M.text);
	ts_buf_reset(&M.ranges);
	FUZZ_CHECK(ts_sse_text(&M.text, c->data + a, nl - a, M.max_line) == 0,
		   "oom");
	return fuzz_ref_keep(&M.rf, M.text.data ? M.text.data : "", M.text.len,
			     ranges ? &M.ranges : NULL);
}

/* The '\n' of the line at `a` in version f, or -1. */
static long line_nl(int f, size_t a)
{
	const struct ts_buf *c = &M.f[f].c;
	if (a >= c->len)
		return -1;
	const char *nl = memchr(c->data + a, '\n', c->len - a);
	return nl ? (long)(nl - c->data) : -1;
}

/* Does the reader's file hold no line it must still send? */
static bool head_done(void)
{
	const struct seg *h = &R->q[0];
	if (h->f < 0)
		return true;
	for (size_t a = (size_t)h->off;;) {
		long nl = line_nl(h->f, a);
		if (nl < 0)
			return true;
		if (line_text(h->f, a, (size_t)nl, false))
			return false;
		a = (size_t)nl + 1;
	}
}

/* Everything delivered, but maybe a rotation into a new empty file. */
static bool caught_up(void)
{
	if (!head_done())
		return false;
	if (R->nq == 1)
		return true;
	const struct seg *s = &R->q[1];
	return R->nq == 2 && s->k == K_RENAME && s->f == M.at_path &&
	       M.f[s->f].c.len == 0;
}

static void show_state(void)
{
	fprintf(stderr, "reference: %d segment(s):", R->nq);
	for (int i = 0; i < R->nq; i++)
		fprintf(stderr,
			" [kind %d, version %d (ino %llu, %zu bytes), "
			"off %llu]",
			R->q[i].k, R->q[i].f,
			R->q[i].f >= 0 ? (unsigned long long)M.f[R->q[i].f].ino
				       : 0ULL,
			R->q[i].f >= 0 ? M.f[R->q[i].f].c.len : 0,
			(unsigned long long)R->q[i].off);
	fputc('\n', stderr);
}

/* ---- checking the events ---- */

/* A line event: id ino:next, data. */
static void on_line(uint64_t ino, uint64_t next, const char *data, size_t dlen)
{
	struct seg *h = &R->q[0];
	if (h->f < 0 || M.f[h->f].ino != ino)
		show_state();
	FUZZ_CHECK(h->f >= 0 && M.f[h->f].ino == ino,
		   "a line of inode %llu, not of the file being read",
		   (unsigned long long)ino);
	size_t a = (size_t)h->off;
	for (;;) {
		long nl = line_nl(h->f, a);
		if (nl < 0 || (uint64_t)nl + 1 > next)
			show_state();
		FUZZ_CHECK(nl >= 0 && (uint64_t)nl + 1 <= next,
			   "no line of %llu ends at %llu (from %zu)",
			   (unsigned long long)ino, (unsigned long long)next,
			   a);
		bool kept = line_text(h->f, a, (size_t)nl, true);
		if ((uint64_t)nl + 1 == next) {
			FUZZ_CHECK(kept, "a line the filter drops was sent");
			break;
		}
		if (!filtered() || kept)
			show_state();
		FUZZ_CHECK(filtered() && !kept,
			   "the line [%zu, %ld] of %llu was skipped", a, nl + 1,
			   (unsigned long long)ino);
		a = (size_t)nl + 1;
	}
	/* M.text and M.ranges hold the line */
	ts_buf_reset(&M.want);
	if (R->fmt.all) {
		FUZZ_CHECK(ts_buf_puts(&M.want, "{\"log\":\"app\",\"line\":") ==
					   0 &&
				   ts_json_string(&M.want,
						  M.text.data ? M.text.data
							      : "",
						  M.text.len) == 0 &&
				   ts_buf_printf(&M.want, ",\"offset\":%llu",
						 (unsigned long long)next) == 0,
			   "oom");
		if (M.fmt.grep)
			FUZZ_CHECK(ts_buf_printf(&M.want, ",\"match\":[%.*s]",
						 (int)M.ranges.len,
						 M.ranges.data ? M.ranges.data
							       : "") == 0,
				   "oom");
		FUZZ_CHECK(ts_buf_puts(&M.want, "}") == 0, "oom");
	} else if (M.fmt.json)
		FUZZ_CHECK(ts_filter_json_line(&M.want,
					       M.text.data ? M.text.data : "",
					       M.text.len, next,
					       M.ranges.data ? M.ranges.data
							     : "",
					       M.ranges.len) == 0,
			   "oom");
	else if (M.text.len)
		FUZZ_CHECK(ts_buf_append(&M.want, M.text.data, M.text.len) == 0,
			   "oom");
	if (M.fmt.json || R->fmt.all
		    ? !fuzz_same_but_ranges(data, dlen, M.want.data, M.want.len)
		    : dlen != M.want.len ||
			      (dlen && memcmp(data, M.want.data, dlen))) {
		fprintf(stderr, "data:     \"");
		fuzz_show(stderr, data, dlen);
		fprintf(stderr, "\"\nexpected: \"");
		fuzz_show(stderr, M.want.data, M.want.len);
		fprintf(stderr, "\"\n");
		FUZZ_CHECK(0, "the data of the line ending at %llu",
			   (unsigned long long)next);
	}
	h->off = next;
}

/* An event that is only an id: lines the filter dropped. */
static void on_id(uint64_t ino, uint64_t off)
{
	struct seg *h = &R->q[0];
	FUZZ_CHECK(filtered(), "an id alone without a filter");
	FUZZ_CHECK(h->f >= 0 && M.f[h->f].ino == ino && off >= h->off,
		   "an id alone (%llu:%llu) not ahead in the file being read",
		   (unsigned long long)ino, (unsigned long long)off);
	for (size_t a = (size_t)h->off; a < off;) {
		long nl = line_nl(h->f, a);
		FUZZ_CHECK(nl >= 0 && (uint64_t)nl + 1 <= off,
			   "an id alone at %llu, not a line end",
			   (unsigned long long)off);
		FUZZ_CHECK(!line_text(h->f, a, (size_t)nl, false),
			   "an id alone moved over a line the filter keeps");
		a = (size_t)nl + 1;
	}
	h->off = off;
}

static const char *reason_of(enum kind k)
{
	switch (k) {
	case K_RENAME:
	case K_AFTER_COPY:
		return "rotated";
	case K_TRUNC:
		return "truncated";
	case K_DELETED:
		return "deleted";
	case K_CREATED:
		return "created";
	default:
		return "?";
	}
}

static void on_reset(const char *reason, bool has_id, uint64_t ino,
		     uint64_t off)
{
	if (!head_done() || R->nq < 2)
		show_state();
	FUZZ_CHECK(head_done(), "reset %s before every line was sent", reason);
	FUZZ_CHECK(R->nq >= 2, "reset %s where the reference has none", reason);
	memmove(R->q, R->q + 1, sizeof(R->q[0]) * (size_t)(R->nq - 1));
	R->nq--;
	const struct seg *h = &R->q[0];
	FUZZ_CHECK(strcmp(reason, reason_of(h->k)) == 0,
		   "reset %s, the reference says %s", reason, reason_of(h->k));
	/* a merged stream's ids list every log: "app=0:0" for none */
	FUZZ_CHECK(has_id == (h->f >= 0 || R->fmt.all), "reset %s: id %s",
		   reason, has_id ? "given" : "missing");
	FUZZ_CHECK(!has_id ||
			   (ino == (h->f >= 0 ? M.f[h->f].ino : 0) && off == 0),
		   "reset %s: id %llu:%llu, expected %llu:0", reason,
		   (unsigned long long)ino, (unsigned long long)off,
		   (unsigned long long)(h->f >= 0 ? M.f[h->f].ino : 0));
}

static bool parse_id(const char *s, size_t n, uint64_t *ino, uint64_t *off)
{
	struct ts_pos pos;
	if (R->fmt.all) {
		/* "app=INO:OFF", the one log of the merged stream */
		if (n < 4 || memcmp(s, "app=", 4) != 0)
			return false;
		s += 4;
		n -= 4;
	}
	if (ts_sse_parse_id_n(s, n, &pos) != 0 || !pos.has_ino)
		return false;
	*ino = pos.ino;
	*off = pos.off;
	return true;
}

/* Check the events in out; their number. */
static unsigned check_events(const char *s, size_t len)
{
	if (len == 0)
		return 0;
	const char *p = s, *end = s + len;
	const char *ev = NULL, *id = NULL, *data = NULL;
	size_t evn = 0, idn = 0, datan = 0;
	unsigned count = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		FUZZ_CHECK(nl != NULL, "output does not end in a newline");
		size_t n = (size_t)(nl - p);
		if (n == 0) {
			uint64_t ino = 0, off = 0;
			bool has_id = id && parse_id(id, idn, &ino, &off);
			FUZZ_CHECK(!id || has_id, "a bad id: %.*s", (int)idn,
				   id);
			if (has_id)
				R->last_id = off;
			bool rec = has_id && R == &M.r[0];
			if (ev) {
				FUZZ_CHECK(evn == 5 &&
						   memcmp(ev, "reset", 5) == 0,
					   "an event %.*s", (int)evn, ev);
				char reason[32];
				const char *pre =
					R->fmt.all
						? "{\"log\":\"app\",\"reason\":\""
						: "{\"reason\":\"";
				size_t pn = strlen(pre);
				FUZZ_CHECK(data && datan > pn + 2 &&
						   datan < pn + 30 &&
						   memcmp(data, pre, pn) == 0 &&
						   memcmp(data + datan - 2,
							  "\"}", 2) == 0,
					   "reset data %.*s", (int)datan,
					   data ? data : "");
				snprintf(reason, sizeof(reason), "%.*s",
					 (int)(datan - pn - 2), data + pn);
				on_reset(reason, has_id, ino, off);
				count++;
			} else if (data) {
				FUZZ_CHECK(has_id, "a line without an id");
				on_line(ino, off, data, datan);
				count++;
			} else {
				FUZZ_CHECK(has_id, "an empty event");
				on_id(ino, off);
			}
			if (rec && R->q[0].f >= 0 && M.nhist < MAX_HIST)
				M.hist[M.nhist++] =
					(struct hist){ R->q[0].f, off };
			ev = id = data = NULL;
		} else if (n >= 7 && memcmp(p, "event: ", 7) == 0) {
			FUZZ_CHECK(!ev, "two event fields");
			ev = p + 7, evn = n - 7;
		} else if (n >= 4 && memcmp(p, "id: ", 4) == 0) {
			FUZZ_CHECK(!id, "two id fields");
			id = p + 4, idn = n - 4;
		} else if (n >= 6 && memcmp(p, "data: ", 6) == 0) {
			FUZZ_CHECK(!data, "two data fields");
			data = p + 6, datan = n - 6;
		} else {
			FUZZ_CHECK(0, "a field: %.*s", (int)(n < 80 ? n : 80),
				   p);
		}
		p = nl + 1;
	}
	FUZZ_CHECK(!ev && !id && !data, "an event without its blank line");
	return count;
}

/* ---- driving the cursor ---- */

static void watcher(void)
{
	ts_log_check(M.log);
}

static void dir_changed(void)
{
	ts_log_dir_changed(M.log);
}

/* One step; true when the cursor rests. */
static bool step(size_t budget)
{
	struct ts_scratch *sc = ts_scratch_get(&M.env);
	FUZZ_CHECK(sc != NULL, "ts_scratch_get");
	struct ts_buf *out = ts_scratch_out(sc);
	ts_buf_reset(out);
	unsigned n = 0;
	int r = ts_cursor_step(&R->c, sc, budget, &n);
	FUZZ_CHECK(r >= 0, "ts_cursor_step: %s", strerror(-r));
	if (M.trace && out->len)
		fprintf(stderr, "step(%zu) -> %d:\n%.*s", budget, r,
			(int)out->len, out->data);
	unsigned got = check_events(out->data, out->len);
	FUZZ_CHECK(n == got, "*nevents %u, %u events written", n, got);
	/* what a merged stream writes as this log's position in the ids of
	 * the other logs' events: the last id the client has */
	FUZZ_CHECK(!R->c.file || R->c.id_off == R->last_id,
		   "id_off %llu, the client's last id is at %llu",
		   (unsigned long long)R->c.id_off,
		   (unsigned long long)R->last_id);
	return r == TS_STEP_REST;
}

/* Step every reader until it rests: then it has sent everything. */
static void drain(size_t budget)
{
	for (int k = 0; k < 2; k++) {
		R = &M.r[k];
		if (!R->active)
			continue;
		int i = 0;
		while (!step(budget))
			FUZZ_CHECK(++i < MAX_STEPS, "the cursor does not rest");
		if (!caught_up())
			show_state();
		FUZZ_CHECK(caught_up(), "the cursor rests with lines to send");
	}
	R = &M.r[0];
}

/* Append a[0..n) to the file at the path, creating it if there is none. */
static void do_append(const unsigned char *a, size_t n)
{
	int fd = open(M.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	FUZZ_CHECK(fd >= 0, "open: %s", strerror(errno));
	if (M.at_path < 0) {
		M.at_path = new_version(ino_of_fd(fd), NULL);
		push(M.at_path, 0, M.renamed_pending ? K_RENAME : K_CREATED);
		M.renamed_pending = false;
		dir_changed();
	}
	FUZZ_CHECK(n == 0 || write(fd, a, n) == (ssize_t)n, "write");
	close(fd);
	if (n)
		FUZZ_CHECK(ts_buf_append(&M.f[M.at_path].c, a, n) == 0, "oom");
	M.written += n;
	watcher();
}

/* Is any loss possible if the path's file or app.log.1 changes now? */
static bool stable_one(const struct reader *r, bool for_copy)
{
	if (r->q[0].f >= 0 && r->q[0].k == K_COPY)
		return false;
	for (int i = 1; i < r->nq; i++)
		if (r->q[i].k != K_RENAME || for_copy)
			return false;
	/* a copytruncate needs the reader in the path's file's version */
	return !for_copy || r->q[0].f == M.at_path;
}

/* Is every reader where the next change of the files loses nothing? */
static bool stable(bool for_copy)
{
	for (int i = 0; i < 2; i++)
		if (M.r[i].active && !stable_one(&M.r[i], for_copy))
			return false;
	return true;
}

static void do_copytruncate(unsigned arg, size_t budget)
{
	if (M.at_path < 0)
		return;
	if (!stable(true))
		drain(budget);
	int g = M.at_path;
	const struct ts_buf *gc = &M.f[g].c;
	/* after a drain, a rotation into an empty file may be pending: the
	 * truncation of an empty file changes nothing */
	FUZZ_CHECK(stable(true) || gc->len == 0, "harness: not stable");
	/* the copy, by a new name as logrotate makes it */
	unlink(M.path1);
	M.at_path1 = -1;
	int fd = open(M.path1, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	FUZZ_CHECK(fd >= 0, "open: %s", strerror(errno));
	FUZZ_CHECK(gc->len == 0 ||
			   write(fd, gc->data, gc->len) == (ssize_t)gc->len,
		   "write");
	uint64_t cino = ino_of_fd(fd);
	close(fd);
	dir_changed();
	if (arg & 1)
		watcher();
	FUZZ_CHECK(truncate(M.path, 0) == 0, "truncate: %s", strerror(errno));
	watcher();
	if (gc->len == 0)
		return;
	int c = new_version(cino, gc);
	int g2 = new_version(M.f[g].ino, NULL);
	M.at_path = g2;
	for (int i = 0; i < 2; i++) {
		struct reader *r = &M.r[i];
		if (!r->active)
			continue;
		struct seg *h = &r->q[0];
		FUZZ_CHECK(r->nq < MAX_SEGS, "too many segments");
		if (h->off < M.f[g].c.len) {
			/* behind: the rest from the copy */
			h->f = c;
			h->k = K_COPY;
			r->q[r->nq++] = (struct seg){ g2, 0, K_AFTER_COPY };
		} else {
			r->q[r->nq++] = (struct seg){ g2, 0, K_TRUNC };
		}
	}
}

static void do_rotate(unsigned arg, size_t budget)
{
	if (M.at_path < 0)
		return;
	if (!stable(false))
		drain(budget);
	FUZZ_CHECK(rename(M.path, M.path1) == 0, "rename: %s", strerror(errno));
	dir_changed();
	M.at_path1 = M.at_path;
	M.at_path = -1;
	M.renamed_pending = true;
	if (arg & 1)
		watcher();
	if (arg & 2) {
		watcher();
		return;
	}
	do_append(NULL, 0); /* the new file, empty; and the watcher looks */
}

/* The writer, not yet moved to the new file, appends to the one it had
 * (renamed to app.log.1): a reader still in it or before it gets these
 * lines too. */
static void do_late_append(const unsigned char *a, size_t n)
{
	if (M.at_path1 < 0 || n == 0)
		return;
	int fd = open(M.path1, O_WRONLY | O_APPEND | O_CLOEXEC);
	FUZZ_CHECK(fd >= 0, "open: %s", strerror(errno));
	FUZZ_CHECK(write(fd, a, n) == (ssize_t)n, "write");
	close(fd);
	FUZZ_CHECK(ts_buf_append(&M.f[M.at_path1].c, a, n) == 0, "oom");
	M.written += n;
	watcher();
}

static void do_delete(size_t budget)
{
	if (M.at_path < 0)
		return;
	if (!stable(false))
		drain(budget);
	FUZZ_CHECK(unlink(M.path) == 0, "unlink: %s", strerror(errno));
	dir_changed();
	M.at_path = -1;
	M.renamed_pending = false;
	push(-1, 0, K_DELETED);
	watcher();
}

/* Where tail=n (0: the end) starts in version f, by the reference. */
static uint64_t ref_tail_start(int f, uint64_t n)
{
	const struct ts_buf *c = &M.f[f].c;
	size_t e = c->len;
	while (e > 0 && c->data[e - 1] != '\n')
		e--;
	size_t start = e;
	for (uint64_t found = 0; found < n && start > 0;) {
		size_t ls = start - 1;
		while (ls > 0 && c->data[ls - 1] != '\n')
			ls--;
		if (line_text(f, ls, start - 1, false))
			found++;
		start = ls;
		if (found < n && start == 0)
			break;
	}
	/* fewer than n kept lines: all of them, from 0 */
	return start;
}

static void stop_reader(struct reader *r)
{
	if (!r->active)
		return;
	ts_cursor_release(&r->c);
	ts_hub_conn_destroy(&r->hc);
	r->active = false;
}

/* Start reader r as `st` says; its queue is set.  R becomes r. */
static void start_reader(struct reader *r, const struct ts_start *st)
{
	R = r;
	r->fmt = M.fmt;
	if (M.merged) {
		r->all[0] = &r->c;
		r->fmt.all = r->all;
		r->fmt.nall = 1;
	}
	FUZZ_CHECK(ts_hub_conn_init(&r->hc, no_resume, NULL) == 0,
		   "ts_hub_conn_init");
	ts_cursor_init(&r->c, M.log, &M.env, &r->fmt);
	r->last_id = r->q[0].off;
	struct ts_buf out = TS_BUF_INIT;
	FUZZ_CHECK(ts_cursor_start(&r->c, st, &out, &r->hc,
				   (unsigned)(r - M.r)) == 0,
		   "ts_cursor_start");
	r->active = true;
	check_events(out.data, out.len);
	ts_buf_free(&out);
}

/* A client reconnects with an id the first reader wrote (Last-Event-ID):
 * a second reader starts there, and from then on must send what the
 * first one still has to (mode 0: an id in the version the first reader
 * is in, its last or an earlier one); or (mode 1), with the first reader
 * in the file at the path, a line start of the file the last rotation
 * renamed to app.log.1, which the daemon finds beside the path: its rest,
 * then `rotated` and the file at the path. */
static void do_resume(unsigned arg, size_t budget)
{
	struct reader *m = &M.r[0], *r = &M.r[1];
	stop_reader(r);
	if (!stable(false))
		drain(budget);
	R = m;
	int f = -1;
	uint64_t off = 0;
	if (!(arg & 1)) {
		/* the ids written in the version the first reader is in */
		unsigned n = 0, pick = (arg >> 1) & 0x3f;
		if (m->q[0].f < 0)
			return;
		for (unsigned i = 0; i < M.nhist; i++)
			n += M.hist[i].f == m->q[0].f;
		f = m->q[0].f;
		off = m->q[0].off; /* n == 0: where it started */
		for (unsigned i = 0, k = 0; n && i < M.nhist; i++)
			if (M.hist[i].f == f && k++ == pick % n)
				off = M.hist[i].off;
		memcpy(r->q, m->q, sizeof(r->q[0]) * (size_t)m->nq);
		r->nq = m->nq;
		r->q[0].off = off;
	} else {
		if (M.at_path1 < 0 || M.at_path < 0 || m->nq != 1 ||
		    m->q[0].f != M.at_path)
			return;
		/* a line start of the renamed file */
		f = M.at_path1;
		const struct ts_buf *c = &M.f[f].c;
		unsigned lines = 0, pick = arg >> 1;
		for (size_t i = 0; i < c->len; i++)
			lines += c->data[i] == '\n';
		pick %= lines + 1;
		for (size_t i = 0; i < c->len && pick; i++)
			if (c->data[i] == '\n' && --pick == 0)
				off = i + 1;
		r->q[0] = (struct seg){ f, off, K_START };
		r->q[1] = (struct seg){ M.at_path, 0, K_RENAME };
		r->nq = 2;
	}
	struct ts_start st = { TS_START_ID, { M.f[f].ino, off, true }, 0 };
	if (M.trace)
		fprintf(stderr, "resume at %llu:%llu\n",
			(unsigned long long)M.f[f].ino,
			(unsigned long long)off);
	start_reader(r, &st);
	R = m;
}

static void setup(struct fuzz_in *in, unsigned flags)
{
	size_t ml = (size_t)fuzz_take(in, 1);
	uint64_t tail = fuzz_take(in, 1);
	M.max_line = ml == 0 ? 2048 : ml == 1 ? 65536 : ml;
	M.rf.grep = (flags & 0x10) != 0;
	M.rf.exclude = (flags & 0x40) != 0;
	M.rf.icase = (flags & 0x20) != 0;
	fuzz_take_literal(in, alphabet, sizeof(alphabet) - 1, M.rf.g);
	fuzz_take_literal(in, alphabet, sizeof(alphabet) - 1, M.rf.x);

	FUZZ_CHECK(ts_stream_env_init(&M.env, M.max_line, 1000) == 0,
		   "ts_stream_env_init");
	memset(&M.fmt, 0, sizeof(M.fmt));
	M.fmt.json = (flags & 0x08) != 0;
	M.fmt.grep = M.rf.grep;
	M.merged = (flags & 0x80) != 0;
	const char *g[1] = { M.rf.g }, *x[1] = { M.rf.x };
	char err[256];
	FUZZ_CHECK(ts_filter_new(M.env.filters, g, M.rf.grep ? 1 : 0, x,
				 M.rf.exclude ? 1 : 0, M.rf.icase,
				 &M.fmt.filter, err, sizeof(err)) == 0,
		   "ts_filter_new: %s", err);

	unlink(M.path);
	unlink(M.path1);
	M.nf = 0;
	M.nhist = 0;
	memset(M.r, 0, sizeof(M.r));
	R = &M.r[0];
	R->active = true;
	M.at_path = M.at_path1 = -1;
	M.renamed_pending = false;
	M.written = 0;
	M.log = ts_log_new("app", M.path);
	FUZZ_CHECK(M.log != NULL, "ts_log_new");

	/* the initial file */
	size_t ilen = (size_t)fuzz_take(in, 1);
	if (ilen > in->n)
		ilen = in->n;
	if (flags & 0x04) {
		unsigned char buf[256];
		memcpy(buf, in->p, ilen);
		int fd = open(M.path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		FUZZ_CHECK(fd >= 0 && (ilen == 0 ||
				       write(fd, buf, ilen) == (ssize_t)ilen),
			   "initial file");
		M.at_path = new_version(ino_of_fd(fd), NULL);
		FUZZ_CHECK(ilen == 0 || ts_buf_append(&M.f[M.at_path].c, buf,
						      ilen) == 0,
			   "oom");
		close(fd);
	}
	in->p += ilen;
	in->n -= ilen;

	struct ts_start st = { TS_START_END, { 0, 0, true }, 0 };
	switch (flags & 3) {
	case 1:
		st.kind = TS_START_TAIL;
		st.tail = tail;
		break;
	case 2:
		st.kind = TS_START_ID;
		break;
	}
	ts_log_check(M.log);
	if (M.at_path < 0) {
		push(-1, 0, K_START);
	} else if (st.kind == TS_START_ID) {
		push(-1, 0, K_START);
		push(M.at_path, 0, K_CREATED);
	} else {
		push(M.at_path, ref_tail_start(M.at_path, st.tail), K_START);
	}
	start_reader(R, &st);
}

static void teardown(void)
{
	stop_reader(&M.r[0]);
	stop_reader(&M.r[1]);
	ts_log_free(M.log);
	ts_filter_free(M.fmt.filter);
	ts_stream_env_destroy(&M.env);
	for (int i = 0; i < M.nf; i++)
		ts_buf_free(&M.f[i].c);
	unlink(M.path);
	unlink(M.path1);
}

static size_t take_budget(struct fuzz_in *in)
{
	uint64_t v = fuzz_take(in, 2);
	/* mostly small: a budget below one event's size still sends one */
	return v & 0x8000 ? 1 + (size_t)(v & 0x7fff) * 8 : 1 + (v & 0xff);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char buf[MAX_BYTES];
	struct fuzz_in in = { data, size };
	init_dir();
	unsigned flags = (unsigned)fuzz_take(&in, 1);
	setup(&in, flags);

	for (int op = 0; op < MAX_OPS && in.n > 0; op++) {
		unsigned code = (unsigned)fuzz_take(&in, 1) % 10;
		if (M.trace)
			fprintf(stderr, "op %u\n", code);
		switch (code) {
		case 0:
		case 1:
		case 8: {
			size_t l = (size_t)fuzz_take(&in, 1);
			if (l > in.n)
				l = in.n;
			size_t n = fuzz_expand(in.p, l, buf,
					       MAX_BYTES - M.written);
			in.p += l;
			in.n -= l;
			if (code == 8)
				do_late_append(buf, n);
			else
				do_append(buf, n);
			break;
		}
		case 2: {
			unsigned a = (unsigned)fuzz_take(&in, 1);
			size_t budget = take_budget(&in);
			R = &M.r[(a & 4) && M.r[1].active ? 1 : 0];
			for (unsigned i = 0; i <= a % 4; i++)
				if (step(budget))
					break;
			R = &M.r[0];
			break;
		}
		case 9: {
			unsigned a = (unsigned)fuzz_take(&in, 1);
			do_resume(a, take_budget(&in));
			break;
		}
		case 3:
			drain(take_budget(&in));
			break;
		case 4: {
			unsigned a = (unsigned)fuzz_take(&in, 1);
			do_copytruncate(a, take_budget(&in));
			break;
		}
		case 5: {
			unsigned a = (unsigned)fuzz_take(&in, 1);
			do_rotate(a, take_budget(&in));
			break;
		}
		case 6:
			do_delete(take_budget(&in));
			break;
		case 7:
			dir_changed();
			watcher();
			break;
		}
	}
	watcher();
	drain(1 << 16);
	teardown();
	return 0;
}
