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
#include <sys/stat.h>
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

static bool kicked(int efd)
{
	uint64_t v;
	return read(efd, &v, sizeof(v)) == (ssize_t)sizeof(v) && v > 0;
}

/* The watcher waits for the HTTP thread to run the streams it woke: asked
 * while some have not run, it is told once, when the last one has. */
static void test_woken_streams_kick_the_watcher(void **state)
{
	(void)state;
	struct ts_log *log = ts_log_new("app", "/nonexistent/app.log");
	assert_non_null(log);
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(efd >= 0);
	log->kick_fd = efd;

	assert_true(ts_log_idle_or_kick(log)); /* none woken: at once */
	log->nwoken = 2;
	assert_false(ts_log_idle_or_kick(log));
	pthread_mutex_lock(&log->lock);
	ts_log_woken_done_locked(log);
	pthread_mutex_unlock(&log->lock);
	assert_false(kicked(efd)); /* one still to run */
	pthread_mutex_lock(&log->lock);
	ts_log_woken_done_locked(log);
	pthread_mutex_unlock(&log->lock);
	assert_true(kicked(efd));
	assert_int_equal(log->nwoken, 0);
	assert_true(ts_log_idle_or_kick(log));

	/* nobody asked: no signal */
	log->nwoken = 1;
	pthread_mutex_lock(&log->lock);
	ts_log_woken_done_locked(log);
	pthread_mutex_unlock(&log->lock);
	assert_false(kicked(efd));

	close(efd);
	ts_log_free(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decide_table),
		cmocka_unit_test(test_woken_streams_kick_the_watcher),
		cmocka_unit_test_setup_teardown(test_check_lifecycle, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_rotated_file_kept_while_referenced, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_find_inode_and_copy, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unreadable_and_not_regular,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
