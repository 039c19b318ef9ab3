/* registry.h: the logs the daemon serves now, by name.  A reload changes
 * the set while requests look logs up: each lookup hands out a reference,
 * so a log taken out of the set lives on until its last stream and request
 * let go of it (logfile.h, ts_log_unref).
 *
 * Threads: any; one mutex, held only to copy pointers. */
#ifndef TS_REGISTRY_H
#define TS_REGISTRY_H

#include <pthread.h>
#include <stddef.h>

#include "logfile.h"

struct ts_registry {
	pthread_mutex_t lock; /* protects the two below */
	struct ts_log **logs; /* each with a reference of the registry's */
	size_t n;
};

/* 0 or -errno. */
int ts_registry_init(struct ts_registry *r);

/* Drop every log's reference.  Accepts a zeroed struct. */
void ts_registry_destroy(struct ts_registry *r);

/* The log called `name` (len bytes, not NUL-terminated), with a reference
 * for the caller (ts_log_unref), or NULL. */
struct ts_log *ts_registry_find(struct ts_registry *r, const char *name,
				size_t len);

/* Every log, in config order, each with a reference for the caller, in a
 * malloc'd array (ts_registry_put_list).  *n = 0 and NULL when there are
 * none or on ENOMEM. */
struct ts_log **ts_registry_list(struct ts_registry *r, size_t *n);
void ts_registry_put_list(struct ts_log **logs, size_t n);

/* Make `logs` (n of them, config order) the set: the registry takes a
 * reference on each and drops the ones it held.  0 or -ENOMEM (then
 * nothing changed). */
int ts_registry_set(struct ts_registry *r, struct ts_log *const *logs,
		    size_t n);

#endif
