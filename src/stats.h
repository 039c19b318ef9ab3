/* stats.h: the daemon's counters that no single module owns, for
 * /metrics.  One instance, in main's context; the modules that count get a
 * pointer (NULL: not counted, as in the unit tests).  Any thread. */
#ifndef TS_STATS_H
#define TS_STATS_H

#include <stdatomic.h>
#include <stdint.h>

struct ts_stats {
	atomic_ullong reloads_ok;
	atomic_ullong reloads_failed;
	atomic_ullong watch_errors; /* inotify watches that failed */
	atomic_ullong inotify_overflows;
	atomic_ullong refused_max_clients;
	atomic_ullong refused_per_ip;
	atomic_ullong refused_auth;
	atomic_ullong header_timeouts; /* no complete request in time */
	/* heartbeats the watcher wrote to suspended streams' sockets: part of
	 * the bytes sent, which the connections count for the rest */
	atomic_ullong ping_bytes;
	int64_t start_time_s; /* wall clock, set before threads */
};

#define TS_COUNT(stats, field)                                \
	do {                                                  \
		if (stats)                                    \
			atomic_fetch_add(&(stats)->field, 1); \
	} while (0)

#endif
