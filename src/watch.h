/* watch.h: the watcher thread.  One inotify instance for all logs: a watch
 * on each log's directory (shared by the logs in it) and one on each open
 * generation of each log.  Any event marks the logs it concerns; after a
 * batch of events each marked log is checked once (ts_log_check), which
 * wakes its streams.  IN_Q_OVERFLOW, or a watch that cannot be added, marks
 * every log, so nothing is ever silently left unfollowed.  The thread also
 * sends heartbeats and retries logs that could not be opened, once a
 * second. */
#ifndef TS_WATCH_H
#define TS_WATCH_H

#include <stddef.h>

#include "logfile.h"

struct ts_watch;

/* Set up inotify and check every log once (from the calling thread).  NULL
 * with a message in err on failure.  `logs` must outlive the watcher. */
struct ts_watch *ts_watch_new(struct ts_log **logs, size_t nlogs,
			      unsigned heartbeat_s, char *err, size_t errlen);

/* Also run the hang-up watch of the streaming connections (hub.h) on this
 * thread.  Before ts_watch_start; main thread. */
void ts_watch_set_hangups(struct ts_watch *w, struct ts_hub_hangups *hs);

/* Start / stop (and join) the thread.  Main thread. */
int ts_watch_start(struct ts_watch *w);
void ts_watch_stop(struct ts_watch *w);

void ts_watch_free(struct ts_watch *w);

/* Without the thread (tests): read the pending inotify events and check
 * every log they concern now, whatever the coalescing window.  Returns how
 * many logs were checked.  Only while the thread is not running. */
int ts_watch_run_once(struct ts_watch *w);

/* How many times the inotify queue overflowed.  Watcher thread, or any
 * thread while it is not running. */
unsigned long ts_watch_overflows(const struct ts_watch *w);

#endif
