/* worker.h: one thread that runs, in order, the jobs that may take long
 * (reading a file backwards for tail=N, looking for a rotated generation in
 * a directory), so that the HTTP thread that serves every stream never
 * waits for them.
 *
 * Threads: ts_worker_new/free on main; ts_worker_submit and
 * ts_worker_wait_idle on any thread; jobs run on the worker's thread. */
#ifndef TS_WORKER_H
#define TS_WORKER_H

typedef void (*ts_job_fn)(void *arg);

struct ts_worker;

/* Start the thread.  NULL with errno set. */
struct ts_worker *ts_worker_new(void);

/* Queue fn(arg).  0, or -ENOMEM (then fn is not run). */
int ts_worker_submit(struct ts_worker *w, ts_job_fn fn, void *arg);

/* Wait until every job submitted so far has run, at most `ms`.  0, or
 * -ETIMEDOUT. */
int ts_worker_wait_idle(struct ts_worker *w, unsigned ms);

/* Run the jobs still queued, stop the thread, free.  Accepts NULL. */
void ts_worker_free(struct ts_worker *w);

#endif
