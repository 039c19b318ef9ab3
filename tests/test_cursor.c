/* Unit tests of cursor.c: every decision a reader's position takes (grown,
 * a partial line, truncated, rotated with lines left in the old file, a
 * copytruncate copy found, deleted, created, lost), and read-budget
 * invariance: the events do not depend on how appends and reads are
 * chunked. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cursor.h"
#include "filter.h"
#include "logfile.h"

struct fx {
	char dir[64];
	char path[96];
	struct ts_stream_env env;
	struct ts_log *log;
	struct ts_fmt fmt;
	struct ts_cursor c;
	struct ts_hub_conn hc;
	bool started;
	uint64_t inos[8]; /* inode -> letter 'A' + index */
	bool skip_ids;	  /* leave out events that are only an id */
	size_t ninos;
};

static void no_resume(void *arg)
{
	(void)arg;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/ts-cursor-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/app.log", f->dir);
	if (ts_stream_env_init(&f->env, 64, 1000) != 0)
		return -1;
	f->log = ts_log_new("app", f->path);
	if (!f->log || ts_hub_conn_init(&f->hc, no_resume, NULL) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];
	if (f->started)
		ts_cursor_release(&f->c);
	ts_hub_conn_destroy(&f->hc);
	ts_log_free(f->log);
	ts_filter_free(f->fmt.filter);
	ts_stream_env_destroy(&f->env);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	int rc = system(cmd);
	free(f);
	return rc == 0 ? 0 : -1;
}

static void put(const char *path, const char *text, const char *mode)
{
	FILE *fp = fopen(path, mode);
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static char letter(struct fx *f, uint64_t ino)
{
	for (size_t i = 0; i < f->ninos; i++)
		if (f->inos[i] == ino)
			return (char)('A' + i);
	assert_true(f->ninos < 8);
	f->inos[f->ninos++] = ino;
	return (char)('A' + f->ninos - 1);
}

/* Append the SSE text `s` to `norm` as one line per event,
 * "[event ]X:OFF data", inodes named by letter in order of appearance. */
static void normalize(struct fx *f, const char *s, size_t len,
		      struct ts_buf *norm)
{
	const char *p = s, *end = s + len;
	char ev[64] = "", id[64] = "", data[512] = "";
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		assert_non_null(nl);
		size_t n = (size_t)(nl - p);
		if (n == 0) { /* end of an event */
			/* an id alone (lines a filter dropped) comes where a
			 * read stopped: it depends on the chunking, and so
			 * is left out when f->skip_ids */
			bool id_only = !*ev && !*data && *id;
			if ((*ev || *id || *data) &&
			    !(id_only && f->skip_ids)) {
				if (*ev)
					ts_buf_printf(norm, "%s ", ev);
				if (*id) {
					unsigned long long ino, off;
					assert_int_equal(sscanf(id, "%llu:%llu",
								&ino, &off),
							 2);
					ts_buf_printf(norm, "%c:%llu ",
						      letter(f, ino), off);
				}
				ts_buf_printf(norm, "%s|", data);
			}
			ev[0] = id[0] = data[0] = '\0';
		} else if (n > 7 && memcmp(p, "event: ", 7) == 0) {
			snprintf(ev, sizeof(ev), "%.*s", (int)(n - 7), p + 7);
		} else if (n > 4 && memcmp(p, "id: ", 4) == 0) {
			snprintf(id, sizeof(id), "%.*s", (int)(n - 4), p + 4);
		} else if (n >= 6 && memcmp(p, "data: ", 6) == 0) {
			snprintf(data, sizeof(data), "%.*s", (int)(n - 6),
				 p + 6);
		}
		p = nl + 1;
	}
}

static void start(struct fx *f, enum ts_start_kind kind, uint64_t ino,
		  uint64_t off)
{
	struct ts_buf out = TS_BUF_INIT;
	struct ts_start st = { kind, { ino, off, true }, 0 };
	ts_log_check(f->log);
	ts_cursor_init(&f->c, f->log, &f->env, &f->fmt);
	assert_int_equal(ts_cursor_start(&f->c, &st, &out, &f->hc, 0), 0);
	f->started = true;
	ts_buf_free(&out);
}

/* Check the log, then step the cursor until it rests (bounded); the
 * events, normalized.  The caller frees. */
static char *drain(struct fx *f, size_t budget, struct ts_buf *norm)
{
	ts_log_check(f->log);
	struct ts_scratch *sc = ts_scratch_get(&f->env);
	assert_non_null(sc);
	struct ts_buf *out = ts_scratch_out(sc);
	for (int i = 0; i < 100000; i++) {
		unsigned n = 0;
		ts_buf_reset(out);
		int r = ts_cursor_step(&f->c, sc, budget, &n);
		assert_true(r >= 0);
		normalize(f, out->data, out->len, norm);
		if (r == TS_STEP_REST)
			break;
	}
	assert_int_equal(ts_buf_puts(norm, ""), 0);
	return norm->data;
}

static void expect(struct fx *f, const char *want)
{
	struct ts_buf norm = TS_BUF_INIT;
	const char *got = drain(f, 1 << 16, &norm);
	if (strcmp(got ? got : "", want) != 0)
		fail_msg("got  %s\nwant %s", got ? got : "", want);
	ts_buf_free(&norm);
}

static void test_grown_and_partial(void **state)
{
	struct fx *f = *state;
	put(f->path, "x\n", "w");
	start(f, TS_START_END, 0, 0);
	letter(f, f->c.file->ino);
	expect(f, "");
	put(f->path, "a\nb\npar", "a");
	expect(f, "A:4 a|A:6 b|");
	put(f->path, "tial\n", "a");
	expect(f, "A:14 partial|");
}

/* A step that reads to the end of what the watcher has seen also decides
 * there is nothing more: a stream served directly (conn.c) writes its new
 * lines in one round, not one to read them and one to find nothing. */
static void test_rests_after_reading_to_the_end(void **state)
{
	struct fx *f = *state;
	put(f->path, "x\n", "w");
	start(f, TS_START_END, 0, 0);
	letter(f, f->c.file->ino);
	put(f->path, "a\nb\n", "a");
	ts_log_check(f->log);
	struct ts_scratch *sc = ts_scratch_get(&f->env);
	assert_non_null(sc);
	struct ts_buf *out = ts_scratch_out(sc);
	ts_buf_reset(out);
	unsigned n = 0;
	assert_int_equal(ts_cursor_step(&f->c, sc, 1 << 16, &n), TS_STEP_REST);
	assert_int_equal(n, 2);
	struct ts_buf norm = TS_BUF_INIT;
	normalize(f, out->data, out->len, &norm);
	assert_int_equal(ts_buf_puts(&norm, ""), 0);
	assert_string_equal(norm.data, "A:4 a|A:6 b|");
	ts_buf_free(&norm);
	/* (and with more to read than the budget: not at rest) */
	put(f->path, "c\nd\n", "a");
	ts_log_check(f->log);
	ts_buf_reset(out);
	n = 0;
	assert_int_equal(ts_cursor_step(&f->c, sc, 1, &n), TS_STEP_MORE);
	assert_int_equal(n, 1);
}

static void test_truncated(void **state)
{
	struct fx *f = *state;
	put(f->path, "one\ntwo\n", "w");
	start(f, TS_START_END, 0, 0);
	letter(f, f->c.file->ino);
	assert_int_equal(truncate(f->path, 0), 0);
	put(f->path, "n\n", "a");
	expect(f, "reset A:0 {\"reason\":\"truncated\"}|A:2 n|");
}

static void test_rotated_with_lines_left(void **state)
{
	struct fx *f = *state;
	char old[128];
	put(f->path, "x\n", "w");
	start(f, TS_START_END, 0, 0);
	letter(f, f->c.file->ino);
	put(f->path, "late\n", "a"); /* written just before the rename */
	snprintf(old, sizeof(old), "%s.1", f->path);
	assert_int_equal(rename(f->path, old), 0);
	put(f->path, "r\n", "w");
	expect(f, "A:7 late|reset B:0 {\"reason\":\"rotated\"}|B:2 r|");
}

static void test_copytruncate_copy_found(void **state)
{
	struct fx *f = *state;
	char old[128], cmd[320];
	put(f->path, "l1\nl2\n", "w");
	start(f, TS_START_ID, 0, 0);
	/* (started at "0:0": the whole file, from its start) */
	ts_log_check(f->log);
	letter(f, f->c.file->ino);
	snprintf(old, sizeof(old), "%s.1", f->path);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", f->path, old);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(truncate(f->path, 0), 0);
	put(f->path, "m1\n", "a");
	expect(f, "B:3 l1|B:6 l2|reset A:0 {\"reason\":\"rotated\"}|A:3 m1|");
}

/* The watcher sees a copytruncate while the stream reads: the step looked
 * for a truncation (none seen yet), its read found the end of the
 * truncated file, and the watcher saw the truncation before the step
 * decided what comes next.  The stream, still in the old content, must go
 * on in the copy, not say `truncated` and lose the lines it had not read.
 * (CI caught it in test_scale, once.) */
extern void (*ts_cursor_seam)(struct ts_cursor *s);
static struct fx *seam_fx;

static void watcher_looks_now(struct ts_cursor *c)
{
	(void)c;
	ts_cursor_seam = NULL; /* once */
	ts_log_check(seam_fx->log);
}

static void test_copytruncate_seen_while_reading(void **state)
{
	struct fx *f = *state;
	char old[128], cmd[320];
	put(f->path, "l1\n", "w");
	start(f, TS_START_ID, 0, 0);
	letter(f, f->c.file->ino);
	expect(f, "A:3 l1|");
	put(f->path, "l2\nl3\nl4\n", "a");
	ts_log_check(f->log); /* the watcher knows the old content... */
	snprintf(old, sizeof(old), "%s.1", f->path);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", f->path, old);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(truncate(f->path, 0), 0);
	put(f->path, "m1\n", "a"); /* ...not yet this */
	seam_fx = f;
	ts_cursor_seam = watcher_looks_now;
	struct ts_scratch *sc = ts_scratch_get(&f->env);
	assert_non_null(sc);
	struct ts_buf *out = ts_scratch_out(sc);
	struct ts_buf norm = TS_BUF_INIT;
	for (int i = 0; i < 1000; i++) {
		unsigned n = 0;
		ts_buf_reset(out);
		int r = ts_cursor_step(&f->c, sc, 1 << 16, &n);
		assert_true(r >= 0);
		normalize(f, out->data, out->len, &norm);
		if (r == TS_STEP_REST)
			break;
	}
	assert_null(ts_cursor_seam); /* the watcher did look mid-step */
	assert_int_equal(ts_buf_puts(&norm, ""), 0);
	const char *want = "B:6 l2|B:9 l3|B:12 l4|"
			   "reset A:0 {\"reason\":\"rotated\"}|A:3 m1|";
	if (strcmp(norm.data, want) != 0)
		fail_msg("got  %s\nwant %s", norm.data, want);
	ts_buf_free(&norm);
}

static void test_deleted_then_created(void **state)
{
	struct fx *f = *state;
	put(f->path, "x\n", "w");
	start(f, TS_START_END, 0, 0);
	letter(f, f->c.file->ino);
	assert_int_equal(unlink(f->path), 0);
	expect(f, "reset {\"reason\":\"deleted\"}|");
	put(f->path, "c\n", "w");
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	char want[128];
	snprintf(want, sizeof(want),
		 "reset %c:0 {\"reason\":\"created\"}|%c:2 c|",
		 letter(f, (uint64_t)st.st_ino),
		 letter(f, (uint64_t)st.st_ino));
	expect(f, want);
}

static void test_lost(void **state)
{
	struct fx *f = *state;
	put(f->path, "a\n", "w");
	struct ts_buf out = TS_BUF_INIT, norm = TS_BUF_INIT;
	struct ts_start st = { TS_START_ID, { 999999999, 5, true }, 0 };
	ts_log_check(f->log);
	ts_cursor_init(&f->c, f->log, &f->env, &f->fmt);
	assert_int_equal(ts_cursor_start(&f->c, &st, &out, &f->hc, 0), 0);
	f->started = true;
	normalize(f, out.data, out.len, &norm);
	assert_int_equal(ts_buf_puts(&norm, ""), 0);
	assert_string_equal(norm.data, "reset A:0 {\"reason\":\"lost\"}|");
	ts_buf_free(&out);
	ts_buf_free(&norm);
	expect(f, "A:2 a|");
}

/* ---- read-budget invariance ---- */

static unsigned rnd(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return (*s >> 16) & 0x7fff;
}

static void invariance(struct fx *f, unsigned seed)
{
	struct ts_buf chunked = TS_BUF_INIT, whole = TS_BUF_INIT;
	put(f->path, "", "w");
	start(f, TS_START_END, 0, 0);
	letter(f, f->c.file->ino);
	for (int step = 0; step < 300; step++) {
		char text[400];
		size_t n = 0, want = rnd(&seed) % 200;
		while (n < want) {
			unsigned k = rnd(&seed) % 40;
			text[n++] = k == 0   ? '\n'
				    : k == 1 ? '\r'
				    : k == 2 ? (char)0xc3
					     : (char)('a' + k % 26);
		}
		text[n] = '\0';
		if (n)
			put(f->path, text, "a");
		if (rnd(&seed) % 3 == 0)
			drain(f, 1 + rnd(&seed) % 300, &chunked);
	}
	put(f->path, "end\n", "a");
	drain(f, 1 + rnd(&seed) % 300, &chunked);
	/* the same file read at once, by a second cursor from its start */
	uint64_t ino = f->c.file->ino;
	ts_cursor_release(&f->c);
	start(f, TS_START_ID, ino, 0);
	drain(f, 1 << 20, &whole);
	assert_non_null(chunked.data);
	assert_string_equal(chunked.data, whole.data);
	ts_buf_free(&chunked);
	ts_buf_free(&whole);
}

static void test_budget_invariance_plain(void **state)
{
	struct fx *f = *state;
	for (unsigned seed = 1; seed <= 3; seed++) {
		invariance(f, seed);
		ts_cursor_release(&f->c);
		f->started = false;
	}
}

static void test_budget_invariance_filtered_json(void **state)
{
	struct fx *f = *state;
	const char *grep[] = { "a" };
	char err[TS_ERR_MAX];
	assert_int_equal(ts_filter_new(f->env.filters, grep, 1, NULL, 0, false,
				       &f->fmt.filter, err, sizeof(err)),
			 0);
	f->fmt.json = true;
	f->fmt.grep = true;
	f->skip_ids = true;
	invariance(f, 7);
	/* and the last id given is the end of the file, both ways */
	f->skip_ids = false;
	struct ts_buf norm = TS_BUF_INIT;
	put(f->path, "zzz\n", "a");
	const char *got = drain(f, 1 << 16, &norm);
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	char want[64];
	snprintf(want, sizeof(want), "A:%llu |",
		 (unsigned long long)st.st_size);
	assert_string_equal(got, want);
	ts_buf_free(&norm);
}

/* A merged stream's id lists every log: the event's at its new position,
 * the others where their client is ("0:0" for a log with no file). */
static void test_merged_id(void **state)
{
	struct fx *f = *state;
	struct ts_log *b = ts_log_new("b-2.x", "/nonexistent/b.log");
	assert_non_null(b);
	put(f->path, "x\n", "w");
	ts_log_check(f->log);
	struct ts_cursor c1, c2;
	struct ts_cursor *all[2] = { &c1, &c2 };
	struct ts_fmt fmt = { NULL, false, false, all, 2 };
	ts_cursor_init(&c1, f->log, &f->env, &fmt);
	ts_cursor_init(&c2, b, &f->env, &fmt);
	struct ts_buf out = TS_BUF_INIT;
	assert_int_equal(ts_cursor_write_id(&c2, &out, 0, 0), 0);
	assert_int_equal(ts_cursor_write_id(&c1, &out, 18446744073709551615u,
					    9223372036854775807u),
			 0);
	assert_int_equal(ts_buf_append(&out, "", 1), 0);
	assert_string_equal(out.data,
			    "id: app=0:0,b-2.x=0:0\n"
			    "id: app=18446744073709551615:9223372036854775807,"
			    "b-2.x=0:0\n");
	ts_buf_free(&out);
	ts_log_free(b);
}

/* After a truncation, a merged stream's ids give the log's position as 0,
 * where the reset left it: an id from another log's event must not send a
 * reconnecting client to the old offset in the new content (found by
 * fuzz_cursor: id_off kept the old offset). */
static void test_merged_id_after_truncation(void **state)
{
	struct fx *f = *state;
	char bpath[128];
	snprintf(bpath, sizeof(bpath), "%s/b.log", f->dir);
	put(f->path, "one\ntwo\n", "w");
	put(bpath, "", "w");
	struct ts_log *b = ts_log_new("b", bpath);
	assert_non_null(b);
	ts_log_check(f->log);
	ts_log_check(b);
	struct ts_cursor c1, c2;
	struct ts_cursor *all[2] = { &c1, &c2 };
	struct ts_fmt fmt = { NULL, false, false, all, 2 };
	struct ts_start st = { TS_START_END, { 0, 0, false }, 0 };
	struct ts_buf out = TS_BUF_INIT;
	ts_cursor_init(&c1, f->log, &f->env, &fmt);
	ts_cursor_init(&c2, b, &f->env, &fmt);
	assert_int_equal(ts_cursor_start(&c1, &st, &out, &f->hc, 0), 0);
	assert_int_equal(ts_cursor_start(&c2, &st, &out, &f->hc, 1), 0);
	uint64_t ino = c1.file->ino;

	assert_int_equal(truncate(f->path, 0), 0);
	ts_log_check(f->log);
	struct ts_scratch *sc = ts_scratch_get(&f->env);
	assert_non_null(sc);
	struct ts_buf *o = ts_scratch_out(sc);
	unsigned n = 0;
	ts_buf_reset(o);
	while (ts_cursor_step(&c1, sc, 1 << 16, &n) != TS_STEP_REST)
		;
	assert_int_equal(ts_buf_append(o, "", 1), 0);
	assert_non_null(strstr(o->data, "\"reason\":\"truncated\""));

	put(bpath, "x\n", "a");
	ts_log_check(b);
	ts_buf_reset(o);
	while (ts_cursor_step(&c2, sc, 1 << 16, &n) != TS_STEP_REST)
		;
	assert_int_equal(ts_buf_append(o, "", 1), 0);
	char want[64];
	snprintf(want, sizeof(want),
		 "id: app=%llu:0,b=", (unsigned long long)ino);
	if (!strstr(o->data, want))
		fail_msg("no \"%s\" in:\n%s", want, o->data);

	ts_cursor_release(&c1);
	ts_cursor_release(&c2);
	ts_buf_free(&out);
	ts_log_free(b);
}

/* Resumed into a rotated generation found beside the path, then rotated
 * again before the stream got to the next one: every generation in order,
 * each with `rotated` (found by fuzz_cursor: the found file had no
 * successor, and its name taken by the next rotation made it "deleted",
 * the generation in between skipped). */
static void test_resume_beside_then_rotated(void **state)
{
	struct fx *f = *state;
	char old[128];
	struct stat st;
	snprintf(old, sizeof(old), "%s.1", f->path);
	put(f->path, "a\nb\n", "w");
	ts_log_check(f->log);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(rename(f->path, old), 0);
	put(f->path, "r\n", "w");
	ts_log_check(f->log);
	/* a client reconnects with an id of the renamed file */
	start(f, TS_START_ID, (uint64_t)st.st_ino, 2);
	letter(f, (uint64_t)st.st_ino);
	assert_int_equal(rename(f->path, old), 0);
	put(f->path, "q\n", "w");
	expect(f, "A:4 b|reset B:0 {\"reason\":\"rotated\"}|B:2 r|"
		  "reset C:0 {\"reason\":\"rotated\"}|C:2 q|");
}

/* A line its writer appends to a rotated file after the rename (it has
 * not reopened the path yet), then a client resumes into that file while
 * a stream still holds it open: an exact resume, not `lost` (found by
 * fuzz_cursor: the file's marker still held the bytes before its old
 * size, so it looked rewritten). */
static void test_resume_after_late_append(void **state)
{
	struct fx *f = *state;
	char old[128];
	snprintf(old, sizeof(old), "%s.1", f->path);
	put(f->path, "a\nb\n", "w");
	ts_log_check(f->log);
	/* a stream at the end holds the file open */
	struct ts_cursor holder;
	struct ts_hub_conn hc2;
	struct ts_buf out = TS_BUF_INIT;
	struct ts_start st = { TS_START_END, { 0, 0, false }, 0 };
	assert_int_equal(ts_hub_conn_init(&hc2, no_resume, NULL), 0);
	ts_cursor_init(&holder, f->log, &f->env, &f->fmt);
	assert_int_equal(ts_cursor_start(&holder, &st, &out, &hc2, 0), 0);
	uint64_t ino = holder.file->ino;
	assert_int_equal(rename(f->path, old), 0);
	put(f->path, "r\n", "w");
	ts_log_check(f->log);
	put(old, "late\n", "a");
	ts_log_check(f->log);
	start(f, TS_START_ID, ino, 2);
	letter(f, ino);
	expect(f, "A:4 b|A:9 late|reset B:0 {\"reason\":\"rotated\"}|B:2 r|");
	ts_cursor_release(&holder);
	ts_hub_conn_destroy(&hc2);
	ts_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_grown_and_partial, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_rests_after_reading_to_the_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rotated_with_lines_left,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_copytruncate_seen_while_reading, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copytruncate_copy_found,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_then_created,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume_beside_then_rotated,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume_after_late_append,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_merged_id, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_merged_id_after_truncation,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_invariance_plain,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_budget_invariance_filtered_json, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
