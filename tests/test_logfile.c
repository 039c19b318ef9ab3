/* Unit tests of logfile.c: the rotated/truncated/grown decision table, and
 * ts_log_check on real files (created, grown, truncated, rotated, deleted). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "logfile.h"

static void test_decide_table(void **state)
{
	(void)state;
	static const struct {
		struct ts_fstate known, now;
		uint64_t fd_size;
		enum ts_change want;
	} cases[] = {
		{ { false, 0, 0, 0 }, { false, 0, 0, 0 }, 0, TS_UNCHANGED },
		{ { false, 0, 0, 0 }, { true, 1, 5, 0 }, 0, TS_CREATED },
		{ { true, 1, 5, 10 }, { false, 0, 0, 0 }, 10, TS_DELETED },
		{ { true, 1, 5, 10 }, { true, 1, 6, 0 }, 10, TS_ROTATED },
		{ { true, 1, 5, 10 }, { true, 2, 5, 10 }, 10, TS_ROTATED },
		{ { true, 1, 5, 10 }, { true, 1, 5, 10 }, 10, TS_UNCHANGED },
		{ { true, 1, 5, 10 }, { true, 1, 5, 20 }, 20, TS_GROWN },
		{ { true, 1, 5, 10 }, { true, 1, 5, 3 }, 3, TS_TRUNCATED },
		{ { true, 1, 5, 10 }, { true, 1, 5, 0 }, 0, TS_TRUNCATED },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum ts_change got = ts_log_decide(&cases[i].known,
						   &cases[i].now,
						   cases[i].fd_size);
		if (got != cases[i].want)
			fail_msg("case %zu: got %d, want %d", i, got,
				 cases[i].want);
	}
}

struct fixture {
	char dir[64];
	char path[96];
	struct ts_log *log;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/ts-logfile-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/app.log", f->dir);
	f->log = ts_log_new("app", f->path);
	*state = f;
	return f->log ? 0 : -1;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	ts_log_free(f->log);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void append(const char *path, const char *text)
{
	FILE *fp = fopen(path, "a");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static void test_check_lifecycle(void **state)
{
	struct fixture *f = *state;
	struct ts_log *log = f->log;
	char old[128];

	assert_int_equal(ts_log_check(log), TS_UNCHANGED);
	assert_null(log->cur);
	assert_int_equal(log->open_errno, 0);

	append(f->path, "one\n");
	assert_int_equal(ts_log_check(log), TS_CREATED);
	assert_non_null(log->cur);
	assert_int_equal(log->cur->size, 4);
	uint64_t ino = log->cur->ino;

	append(f->path, "two\n");
	assert_int_equal(ts_log_check(log), TS_GROWN);
	assert_int_equal(log->cur->size, 8);
	assert_int_equal(ts_log_check(log), TS_UNCHANGED);

	assert_int_equal(truncate(f->path, 0), 0);
	assert_int_equal(ts_log_check(log), TS_TRUNCATED);
	assert_int_equal(log->cur->size, 0);
	assert_int_equal(log->cur->trunc_seq, 1);

	snprintf(old, sizeof(old), "%s.1", f->path);
	assert_int_equal(rename(f->path, old), 0);
	append(f->path, "new\n");
	assert_int_equal(ts_log_check(log), TS_ROTATED);
	assert_non_null(log->cur);
	assert_true(log->cur->ino != ino);
	assert_int_equal(log->rotations, 1);
	/* nobody reads the old file: it was closed */
	assert_ptr_equal(log->files, log->cur);
	assert_null(log->files->next);

	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(ts_log_check(log), TS_DELETED);
	assert_null(log->cur);
	assert_null(log->files);
}

static void test_rotated_file_kept_while_referenced(void **state)
{
	struct fixture *f = *state;
	struct ts_log *log = f->log;
	char old[128];

	append(f->path, "a\n");
	assert_int_equal(ts_log_check(log), TS_CREATED);
	struct ts_file *first = log->cur;
	ts_file_ref(first); /* as a stream reading it would */

	snprintf(old, sizeof(old), "%s.1", f->path);
	assert_int_equal(rename(f->path, old), 0);
	append(f->path, "b\n");
	assert_int_equal(ts_log_check(log), TS_ROTATED);
	assert_true(first->detached);
	assert_ptr_not_equal(log->cur, first);

	/* the old file still grows (its writer has not reopened yet) */
	append(old, "late\n");
	ts_log_check(log);
	assert_int_equal(first->size, 7);

	ts_file_unref(log, first);
	assert_ptr_equal(log->files, log->cur);
	assert_null(log->files->next);
}

static void test_unreadable_and_not_regular(void **state)
{
	struct fixture *f = *state;
	struct ts_log *log = f->log;

	assert_int_equal(mkdir(f->path, 0700), 0);
	assert_int_equal(ts_log_check(log), TS_UNCHANGED);
	assert_null(log->cur);
	assert_int_equal(log->open_errno, EINVAL);
	assert_int_equal(rmdir(f->path), 0);

	if (geteuid() != 0) { /* root reads anything */
		append(f->path, "x\n");
		assert_int_equal(chmod(f->path, 0), 0);
		assert_int_equal(ts_log_check(log), TS_UNCHANGED);
		assert_int_equal(log->open_errno, EACCES);
	}
}

/* The kept marks thin out with age: after 2,000 checks 1 ms apart, the
 * oldest is kept (the content's start) and every decade of age back to a
 * second has one, so that a copy that stopped short of the last checks
 * still holds a remembered size. */
static void test_mark_history_spreads(void **state)
{
	(void)state;
	struct ts_mark h[TS_HIST];
	unsigned n = 0;
	int64_t now = 0;
	for (; now < 2000; now++) {
		if (n == TS_HIST) {
			unsigned d = ts_mark_drop(h, n, now);
			assert_true(d > 0 && d < TS_HIST - 1);
			memmove(h + d, h + d + 1, (n - d - 1) * sizeof(h[0]));
			n--;
		}
		h[n].ms = now;
		h[n].size = (uint64_t)now;
		n++;
	}
	assert_int_equal(h[0].ms, 0);
	for (int64_t lo = 1; lo < 1000; lo *= 10) {
		bool have = false;
		for (unsigned i = 0; i < n; i++)
			have |= now - 1 - h[i].ms >= lo &&
				now - 1 - h[i].ms < lo * 10;
		assert_true(have);
	}
	for (unsigned i = 1; i < n; i++)
		assert_true(h[i].ms > h[i - 1].ms);
}

/* logrotate's copy, then many lines (each seen by the watcher) before its
 * truncation: the copy holds none of the last sizes seen, and is still
 * found for a position in it, by the last size before that position. */
static void test_copy_short_of_the_last_checks(void **state)
{
	struct fixture *f = *state;
	struct ts_log *log = f->log;
	char old[128], cmd[320], line[16];

	append(f->path, "a1\n");
	assert_int_equal(ts_log_check(log), TS_CREATED);
	struct ts_file *cur = log->cur;
	append(f->path, "a2\n");
	ts_log_check(log);
	append(f->path, "a3\n");
	ts_log_check(log);
	snprintf(old, sizeof(old), "%s.1", f->path);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", f->path, old);
	assert_int_equal(system(cmd), 0);
	for (int i = 0; i < 3 * TS_HIST; i++) {
		snprintf(line, sizeof(line), "b%02d\n", i);
		append(f->path, line);
		assert_int_equal(ts_log_check(log), TS_GROWN);
	}
	assert_int_equal(truncate(f->path, 0), 0);
	append(f->path, "m1\n");
	assert_int_equal(ts_log_check(log), TS_TRUNCATED);
	struct ts_file *c = ts_log_find_copy(log, cur, 6);
	assert_non_null(c);
	struct stat st;
	assert_int_equal(stat(old, &st), 0);
	assert_int_equal(c->ino, (uint64_t)st.st_ino);
	ts_file_unref(log, c);
	/* past the copy's end: the lines between copy and truncation */
	assert_null(ts_log_find_copy(log, cur, 13));
}

/* The hook of logfile.c's test build (TS_LOGFILE_SEAM_TEST). */
extern void (*ts_logfile_seam)(struct ts_log *log, int stage);
static const char *seam_path;
static int seam_stage;

/* copytruncate's truncation, and the writer's next line, while the watcher
 * looks at the file (at seam_stage) */
static void truncate_in_seam(struct ts_log *log, int stage)
{
	(void)log;
	if (stage != seam_stage)
		return;
	ts_logfile_seam = NULL;
	assert_int_equal(truncate(seam_path, 0), 0);
	append(seam_path, "m1\n");
}

/* One cut, seen as one: the new size, no second count at the next look,
 * and the old content still known by its copy (old) at offset 6. */
static void check_one_cut(struct ts_log *log, struct ts_file *cur,
			  const char *old)
{
	assert_null(ts_logfile_seam); /* the cut came mid-look */
	assert_int_equal(cur->trunc_seq, 1);
	assert_int_equal(cur->size, 3);
	assert_int_equal(ts_log_check(log), TS_UNCHANGED);
	assert_int_equal(cur->trunc_seq, 1);
	assert_int_equal(cur->npre, 2);
	struct ts_file *c = ts_log_find_copy(log, cur, 6);
	assert_non_null(c);
	struct stat st;
	assert_int_equal(stat(old, &st), 0);
	assert_int_equal(c->ino, (uint64_t)st.st_ino);
	pthread_mutex_lock(&log->lock);
	ts_file_unref(log, c);
	pthread_mutex_unlock(&log->lock);
}

/* a1, a2 seen; a3 written; the copy taken before a3 or after it; then a
 * look at the file during which the cut comes, at `stage`. */
static void cut_during_check(struct fixture *f, bool copy_has_a3, int stage)
{
	struct ts_log *log = f->log;
	char old[128], cmd[320];

	append(f->path, "a1\n");
	assert_int_equal(ts_log_check(log), TS_CREATED);
	struct ts_file *cur = log->cur;
	append(f->path, "a2\n");
	assert_int_equal(ts_log_check(log), TS_GROWN);
	if (copy_has_a3)
		append(f->path, "a3\n");
	snprintf(old, sizeof(old), "%s.1", f->path);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", f->path, old);
	assert_int_equal(system(cmd), 0);
	if (!copy_has_a3)
		append(f->path, "a3\n");
	seam_path = f->path;
	seam_stage = stage;
	ts_logfile_seam = truncate_in_seam;
	assert_int_equal(ts_log_check(log), TS_TRUNCATED);
	check_one_cut(log, cur, old);
}

static void test_truncated_while_checked(void **state)
{
	/* the check's fstat saw the old content grown (a3), its mark read
	 * finds the new content: one truncation, with the new size */
	cut_during_check(*state, false, 0);
}

static void test_truncated_while_marked(void **state)
{
	/* the check saw it grow (a3) and its old bytes hold; the cut comes
	 * before it takes the new mark, which must not be the new
	 * content's bytes (nor its head) */
	cut_during_check(*state, true, 1);
}

static void test_find_inode_and_copy(void **state)
{
	struct fixture *f = *state;
	struct ts_log *log = f->log;
	char old[128], cmd[320];
	struct stat st;

	append(f->path, "n1\nn2\nn3\n");
	assert_int_equal(ts_log_check(log), TS_CREATED);
	struct ts_file *cur = log->cur;
	uint64_t ino = cur->ino;

	/* copytruncate: copy, truncate in place, new content */
	snprintf(old, sizeof(old), "%s.1", f->path);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", f->path, old);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(truncate(f->path, 0), 0);
	append(f->path, "m1\n");
	assert_int_equal(ts_log_check(log), TS_TRUNCATED);
	assert_int_equal(cur->npre, 1);
	assert_int_equal(cur->pre[0].size, 9);

	/* a position in the old content is found in the copy... */
	struct ts_file *c = ts_log_find_copy(log, cur, 6);
	assert_non_null(c);
	assert_int_equal(stat(old, &st), 0);
	assert_int_equal(c->ino, (uint64_t)st.st_ino);
	assert_true(c->detached);
	/* ...but not one that is not at a line start, or past the end */
	assert_null(ts_log_find_copy(log, cur, 5));
	assert_null(ts_log_find_copy(log, cur, 10));

	/* find_inode: the current file, an open one, one beside the path */
	struct ts_file *a = ts_log_find_inode(log, ino);
	assert_ptr_equal(a, cur);
	struct ts_file *b = ts_log_find_inode(log, c->ino);
	assert_ptr_equal(b, c);
	assert_null(ts_log_find_inode(log, 1));

	pthread_mutex_lock(&log->lock);
	ts_file_unref(log, a);
	ts_file_unref(log, b);
	ts_file_unref(log, c);
	pthread_mutex_unlock(&log->lock);
	assert_ptr_equal(log->files, cur);
	assert_null(cur->next);

	/* a renamed-away file is found by inode and opened again */
	assert_int_equal(rename(f->path, old), 0);
	append(f->path, "z\n");
	assert_int_equal(ts_log_check(log), TS_ROTATED);
	struct ts_file *r = ts_log_find_inode(log, ino);
	assert_non_null(r);
	assert_int_equal(r->ino, ino);
	assert_true(r->detached);
	pthread_mutex_lock(&log->lock);
	ts_file_unref(log, r);
	pthread_mutex_unlock(&log->lock);
}

static void test_gen_name(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		bool want;
	} cases[] = {
		{ "app.log.1", true },
		{ "app.log.12", true },
		{ "app.log-20261202", true },
		{ "app.log-2026-12-02", true },
		{ "app.log.20261202-1530", true },
		{ "app.log_7", true },
		{ "app.log-20261202.1", true },
		{ "app.log", false },
		{ "app.log.", false },
		{ "app.log.-", false },
		{ "app.log.2.gz", false },
		{ "app.log.1.xz", false },
		{ "app.log.bak", false },
		{ "app.logx", false },
		{ "app.log1", false },
		{ "xapp.log.1", false },
		{ "notes.txt", false },
		{ "app.log.1 ", false },
		{ "app.log/1", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (ts_log_gen_name("app.log", cases[i].name) != cases[i].want)
			fail_msg("%s: want %d", cases[i].name, cases[i].want);
	assert_false(ts_log_gen_name("", ".1"));
}

static uint64_t ino_of(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_ino;
}

/* Set a file's modification time `sec` seconds from now. */
static void set_mtime(const char *path, int sec)
{
	struct timespec ts[2];
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec += sec;
	ts[1] = ts[0];
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void put_file(struct fixture *f, const char *name, const char *text)
{
	char p[160];
	snprintf(p, sizeof(p), "%s/%s", f->dir, name);
	append(p, text);
}

static void drop(struct ts_log *log, struct ts_file *x)
{
	pthread_mutex_lock(&log->lock);
	ts_file_unref(log, x);
	pthread_mutex_unlock(&log->lock);
}

/* An id may only name a generation of the log: never another file beside
 * it, whatever its inode. */
static void test_find_inode_only_generations(void **state)
{
	struct fixture *f = *state;
	struct ts_log *log = f->log;
	char p[160];

	append(f->path, "a1\na2\n");
	assert_int_equal(ts_log_check(log), TS_CREATED);
	static const char *const others[] = {
		"notes.txt", "app.log.bak", "app.log.2.gz",
		"app.logx",  "xapp.log.1",  "other.log",
	};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		put_file(f, others[i], "secret\n");
		snprintf(p, sizeof(p), "%s/%s", f->dir, others[i]);
		ts_log_dir_changed(log);
		if (ts_log_find_inode(log, ino_of(p)) != NULL)
			fail_msg("%s was taken for a generation", others[i]);
	}
	/* named like one: found */
	put_file(f, "app.log-20261202", "old\n");
	snprintf(p, sizeof(p), "%s/app.log-20261202", f->dir);
	ts_log_dir_changed(log);
	struct ts_file *g = ts_log_find_inode(log, ino_of(p));
	assert_non_null(g);
	assert_true(g->detached);
	drop(log, g);

	/* seen at the path, renamed to any name: found while unchanged */
	uint64_t seen = log->cur->ino;
	snprintf(p, sizeof(p), "%s/app.log.old", f->dir);
	assert_int_equal(rename(f->path, p), 0);
	append(f->path, "b1\n");
	assert_int_equal(ts_log_check(log), TS_ROTATED);
	ts_log_dir_changed(log);
	g = ts_log_find_inode(log, seen);
	assert_non_null(g);
	assert_int_equal(g->ino, seen);
	drop(log, g);
	/* ...and not once its bytes are others (a reused inode, say) */
	FILE *fp = fopen(p, "r+");
	assert_non_null(fp);
	assert_int_equal(fputs("XXXXXX", fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	ts_log_dir_changed(log);
	assert_null(ts_log_find_inode(log, seen));
}

/* A stream behind by two rotations, the middle one never seen by the
 * watcher: the generations are chained in order, and each counted. */
static void test_missed_generation_chained(void **state)
{
	struct fixture *f = *state;
	struct ts_log *log = f->log;
	char g1[160], g2[160];

	append(f->path, "one\n");
	set_mtime(f->path, -10);
	assert_int_equal(ts_log_check(log), TS_CREATED);
	struct ts_file *first = log->cur;
	ts_file_ref(first); /* as a stream reading it would */
	snprintf(g1, sizeof(g1), "%s.1", f->path);
	snprintf(g2, sizeof(g2), "%s.2", f->path);
	/* two logrotate rounds between two looks */
	assert_int_equal(rename(f->path, g1), 0);
	append(f->path, "two\n");
	set_mtime(f->path, 1);
	uint64_t second = ino_of(f->path);
	assert_int_equal(rename(g1, g2), 0);
	assert_int_equal(rename(f->path, g1), 0);
	append(f->path, "three\n");
	set_mtime(f->path, 2);
	assert_int_equal(ts_log_check(log), TS_ROTATED);
	assert_int_equal(log->rotations, 2);
	assert_non_null(first->succ);
	assert_int_equal(first->succ->ino, second);
	assert_true(first->succ->detached);
	assert_ptr_equal(first->succ->succ, log->cur);
	assert_false(first->succ_pending);
	/* the last reader lets go: the chain goes with it */
	drop(log, first);
	assert_ptr_equal(log->files, log->cur);
	assert_null(log->files->next);
}

/* Resuming into an old generation found beside the path goes on through
 * the newer ones there, by modification time, then the current file. */
static void test_found_generation_chains_newer(void **state)
{
	struct fixture *f = *state;
	struct ts_log *log = f->log;
	char p2[160], p1[160];

	snprintf(p2, sizeof(p2), "%s.2", f->path);
	snprintf(p1, sizeof(p1), "%s.1", f->path);
	append(p2, "oldest\n");
	set_mtime(p2, -20);
	append(p1, "older\n");
	set_mtime(p1, -10);
	put_file(f, "app.log.3", "before all\n");
	char p3[160];
	snprintf(p3, sizeof(p3), "%s.3", f->path);
	set_mtime(p3, -30);
	append(f->path, "now\n");
	assert_int_equal(ts_log_check(log), TS_CREATED);
	struct ts_file *g = ts_log_find_inode(log, ino_of(p2));
	assert_non_null(g);
	assert_non_null(g->succ);
	assert_int_equal(g->succ->ino, ino_of(p1));
	/* then the current file, linked: a rotation while a stream reads
	 * these extends the chain */
	assert_ptr_equal(g->succ->succ, log->cur);
	drop(log, g);
	assert_ptr_equal(log->files, log->cur);
	assert_null(log->files->next);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decide_table),
		cmocka_unit_test(test_gen_name),
		cmocka_unit_test_setup_teardown(test_find_inode_only_generations,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_missed_generation_chained,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_found_generation_chains_newer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_lifecycle, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_rotated_file_kept_while_referenced, setup,
			teardown),
		cmocka_unit_test(test_mark_history_spreads),
		cmocka_unit_test_setup_teardown(
			test_copy_short_of_the_last_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_find_inode_and_copy, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_truncated_while_checked,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_while_marked,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreadable_and_not_regular,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
