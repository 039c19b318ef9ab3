/* Unit tests of worker.c: jobs run in order, off the caller's thread;
 * waiting for idle; freeing runs what is still queued. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "worker.h"

struct record {
	pthread_mutex_t lock;
	int order[64];
	int n;
	pthread_t ran_on;
	atomic_int gate; /* jobs wait while it is 0 */
};

struct job_arg {
	struct record *r;
	int id;
};

static void note(void *arg)
{
	struct job_arg *a = arg;
	while (atomic_load(&a->r->gate) == 0) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	pthread_mutex_lock(&a->r->lock);
	a->r->order[a->r->n++] = a->id;
	a->r->ran_on = pthread_self();
	pthread_mutex_unlock(&a->r->lock);
}

static void test_in_order_off_thread(void **state)
{
	(void)state;
	static struct record r = { PTHREAD_MUTEX_INITIALIZER, { 0 }, 0, 0, 1 };
	struct job_arg args[20];
	struct ts_worker *w = ts_worker_new();
	assert_non_null(w);
	for (int i = 0; i < 20; i++) {
		args[i] = (struct job_arg){ &r, i };
		assert_int_equal(ts_worker_submit(w, note, &args[i]), 0);
	}
	assert_int_equal(ts_worker_wait_idle(w, 5000), 0);
	assert_int_equal(r.n, 20);
	for (int i = 0; i < 20; i++)
		assert_int_equal(r.order[i], i);
	assert_false(pthread_equal(r.ran_on, pthread_self()));
	ts_worker_free(w);
}

static void test_wait_idle_times_out_then_free_runs_the_rest(void **state)
{
	(void)state;
	static struct record r = { PTHREAD_MUTEX_INITIALIZER, { 0 }, 0, 0, 0 };
	struct job_arg args[3];
	struct ts_worker *w = ts_worker_new();
	assert_non_null(w);
	for (int i = 0; i < 3; i++) {
		args[i] = (struct job_arg){ &r, i };
		assert_int_equal(ts_worker_submit(w, note, &args[i]), 0);
	}
	/* the first job waits at the gate: not idle */
	assert_int_equal(ts_worker_wait_idle(w, 50), -ETIMEDOUT);
	assert_int_equal(r.n, 0);
	atomic_store(&r.gate, 1);
	ts_worker_free(w); /* runs every job queued, then stops */
	assert_int_equal(r.n, 3);
}

static void test_free_null(void **state)
{
	(void)state;
	ts_worker_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_order_off_thread),
		cmocka_unit_test(
			test_wait_idle_times_out_then_free_runs_the_rest),
		cmocka_unit_test(test_free_null),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
