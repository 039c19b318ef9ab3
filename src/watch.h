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

/* Set up inotify and check every log once (from the calling thread); the
 * watcher takes a reference on each log.  NULL with a message in err on
 * failure.  A log that is missing, unreadable or cannot be watched is said
 * on stderr, then again each time that changes (once, not per retry). */
struct ts_watch *ts_watch_new(struct ts_log **logs, size_t nlogs,
			      unsigned heartbeat_s, char *err, size_t errlen);

/* Also run the hang-up watch of the streaming connections (hub.h) on this
 * thread.  Before ts_watch_start; main thread. */
void ts_watch_set_hangups(struct ts_watch *w, struct ts_hub_hangups *hs);

/* Count watch errors and inotify overflows there (stats.h).  Before
 * ts_watch_start; main thread. */
struct ts_stats;
void ts_watch_set_stats(struct ts_watch *w, struct ts_stats *stats);

/* A reload: seconds between heartbeats from now on.  Any thread. */
void ts_watch_set_heartbeat(struct ts_watch *w, unsigned heartbeat_s);

/* A reload: stop following the `del` logs (the watcher lets go of its
 * reference) and follow the `add` ones (it takes one), looking at each
 * once.  Done on the watcher thread; returns once it is done.  0 or
 * -ENOMEM (some of `add` may not be followed then).  Main thread. */
int ts_watch_update(struct ts_watch *w, struct ts_log *const *add, size_t nadd,
		    struct ts_log *const *del, size_t ndel);

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
