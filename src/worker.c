#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "worker.h"

struct job {
	ts_job_fn fn;
	void *arg;
	struct job *next;
};

struct ts_worker {
	pthread_t thread;
	pthread_mutex_t lock; /* protects everything below */
	pthread_cond_t more;  /* a job was queued, or stop */
	pthread_cond_t idle;  /* the queue ran empty */
	struct job *head, *tail;
	bool busy; /* a job is running */
	bool stop;
};

static void *worker_main(void *arg)
{
	struct ts_worker *w = arg;
	/* (Not reniced: at nice 19 on a busy machine it held a log's lock
	 * for hundreds of ms while starved, and the watcher, waiting for that
	 * lock, stalled every log: a priority inversion.) */
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->head && !w->stop)
			pthread_cond_wait(&w->more, &w->lock);
		struct job *j = w->head;
		if (!j)
			break; /* stopping, and nothing left to run */
		w->head = j->next;
		if (!w->head)
			w->tail = NULL;
		w->busy = true;
		pthread_mutex_unlock(&w->lock);
		j->fn(j->arg);
		free(j);
		pthread_mutex_lock(&w->lock);
		w->busy = false;
		if (!w->head)
			pthread_cond_broadcast(&w->idle);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct ts_worker *ts_worker_new(void)
{
	struct ts_worker *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int rc = pthread_mutex_init(&w->lock, NULL);
	if (rc)
		goto fail_free;
	rc = pthread_cond_init(&w->more, NULL);
	if (rc)
		goto fail_lock;
	rc = pthread_cond_init(&w->idle, &ca);
	if (rc)
		goto fail_more;
	rc = pthread_create(&w->thread, NULL, worker_main, w);
	if (rc)
		goto fail_idle;
	pthread_condattr_destroy(&ca);
	return w;
fail_idle:
	pthread_cond_destroy(&w->idle);
fail_more:
	pthread_cond_destroy(&w->more);
fail_lock:
	pthread_mutex_destroy(&w->lock);
fail_free:
	pthread_condattr_destroy(&ca);
	free(w);
	errno = rc;
	return NULL;
}

int ts_worker_submit(struct ts_worker *w, ts_job_fn fn, void *arg)
{
	struct job *j = malloc(sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->fn = fn;
	j->arg = arg;
	j->next = NULL;
	pthread_mutex_lock(&w->lock);
	if (w->tail)
		w->tail->next = j;
	else
		w->head = j;
	w->tail = j;
	pthread_cond_signal(&w->more);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

int ts_worker_wait_idle(struct ts_worker *w, unsigned ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	int rc = 0;
	pthread_mutex_lock(&w->lock);
	while ((w->head || w->busy) && rc == 0)
		rc = pthread_cond_timedwait(&w->idle, &w->lock, &until);
	bool idle = !w->head && !w->busy;
	pthread_mutex_unlock(&w->lock);
	return idle ? 0 : -ETIMEDOUT;
}

void ts_worker_free(struct ts_worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->more);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->idle);
	pthread_cond_destroy(&w->more);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
