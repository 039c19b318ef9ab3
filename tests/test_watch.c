/* Unit tests of watch.c, run without its thread (ts_watch_run_once): an
 * append is noticed through inotify, and an overflowing inotify queue is
 * recovered by checking every log again. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "logfile.h"
#include "watch.h"

struct fixture {
	char dir[64];
	char path[96];
	struct ts_log *log;
	struct ts_watch *w;
};

static void append(const char *path, const char *text)
{
	FILE *fp = fopen(path, "a");
	assert_non_null(fp);
	assert_true(fputs(text, fp) >= 0);
	assert_int_equal(fclose(fp), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[TS_ERR_MAX];
	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/ts-watch-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/app.log", f->dir);
	append(f->path, "first\n");
	f->log = ts_log_new("app", f->path);
	if (!f->log)
		return -1;
	f->w = ts_watch_new(&f->log, 1, 15, err, sizeof(err));
	*state = f;
	return f->w ? 0 : -1;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	ts_watch_free(f->w);
	ts_log_free(f->log);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	int rc = system(cmd);
	free(f);
	return rc == 0 ? 0 : -1;
}

static uint64_t size_of(struct ts_log *log)
{
	return log->cur ? log->cur->size : 0;
}

static void test_append_noticed(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(size_of(f->log), 6);
	assert_int_equal(ts_watch_run_once(f->w), 0); /* nothing happened */
	append(f->path, "second\n");
	assert_int_equal(ts_watch_run_once(f->w), 1);
	assert_int_equal(size_of(f->log), 13);
	assert_int_equal(ts_watch_overflows(f->w), 0);
}

static void test_overflow_rechecks_everything(void **state)
{
	struct fixture *f = *state;
	unsigned long max = 16384;
	FILE *fp = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
	if (fp) {
		if (fscanf(fp, "%lu", &max) != 1)
			max = 16384;
		fclose(fp);
	}
	/* more events than the queue holds: each file makes a create and a
	 * delete event in the log's watched directory */
	char p[160];
	for (unsigned long i = 0; i < max / 2 + 1000; i++) {
		snprintf(p, sizeof(p), "%s/x%lu", f->dir, i);
		FILE *x = fopen(p, "w");
		assert_non_null(x);
		fclose(x);
		assert_int_equal(unlink(p), 0);
	}
	/* this append's own event is beyond the overflow: lost */
	append(f->path, "after the flood\n");
	ts_watch_run_once(f->w);
	assert_true(ts_watch_overflows(f->w) >= 1);
	/* yet the log was looked at again and knows its new size */
	assert_int_equal(size_of(f->log), 6 + 16);
}

/* A reload: a log added is followed at once (its file opened, its
 * appends noticed), a log removed is no longer (the watcher lets go of its
 * reference, its watches are dropped). */
static void test_update_adds_and_removes(void **state)
{
	struct fixture *f = *state;
	char p2[160];
	snprintf(p2, sizeof(p2), "%s/two.log", f->dir);
	append(p2, "12345\n");
	struct ts_log *two = ts_log_new("two", p2);
	assert_non_null(two);
	assert_int_equal(ts_watch_update(f->w, &two, 1, NULL, 0), 0);
	assert_int_equal(atomic_load(&two->refs), 2); /* ours, the watcher's */
	assert_int_equal(size_of(two), 6);
	append(p2, "more\n");
	assert_int_equal(ts_watch_run_once(f->w), 1);
	assert_int_equal(size_of(two), 11);
	/* removed: its changes are nobody's business any more */
	assert_int_equal(ts_watch_update(f->w, NULL, 0, &two, 1), 0);
	assert_int_equal(atomic_load(&two->refs), 1);
	append(p2, "later\n");
	append(f->path, "x\n");
	assert_int_equal(ts_watch_run_once(f->w), 1); /* app only */
	assert_int_equal(size_of(two), 11);
	assert_int_equal(size_of(f->log), 8);
	ts_log_unref(two);
	/* the same log added twice over many reloads leaks nothing (ASan) */
	for (int i = 0; i < 50; i++) {
		struct ts_log *t = ts_log_new("two", p2);
		assert_non_null(t);
		assert_int_equal(ts_watch_update(f->w, &t, 1, NULL, 0), 0);
		assert_int_equal(ts_watch_update(f->w, NULL, 0, &t, 1), 0);
		ts_log_unref(t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_noticed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_overflow_rechecks_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_adds_and_removes,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
