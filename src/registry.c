#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

int ts_registry_init(struct ts_registry *r)
{
	r->logs = NULL;
	r->n = 0;
	int rc = pthread_mutex_init(&r->lock, NULL);
	return rc ? -rc : 0;
}

void ts_registry_destroy(struct ts_registry *r)
{
	ts_registry_put_list(r->logs, r->n);
	r->logs = NULL;
	r->n = 0;
	pthread_mutex_destroy(&r->lock);
}

struct ts_log *ts_registry_find(struct ts_registry *r, const char *name,
				size_t len)
{
	struct ts_log *found = NULL;
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n && !found; i++) {
		struct ts_log *log = r->logs[i];
		if (strlen(log->name) == len &&
		    memcmp(log->name, name, len) == 0) {
			ts_log_ref(log);
			found = log;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return found;
}

/* A referenced copy of n pointers, or NULL. */
static struct ts_log **copy_refs(struct ts_log *const *logs, size_t n)
{
	/* an array of pointers: the size of one is meant */
	/* NOLINTNEXTLINE(bugprone-sizeof-expression) */
	struct ts_log **out = n ? malloc(n * sizeof(*out)) : NULL;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		ts_log_ref(logs[i]);
		out[i] = logs[i];
	}
	return out;
}

struct ts_log **ts_registry_list(struct ts_registry *r, size_t *n)
{
	pthread_mutex_lock(&r->lock);
	struct ts_log **out = copy_refs(r->logs, r->n);
	*n = out ? r->n : 0;
	pthread_mutex_unlock(&r->lock);
	return out;
}

void ts_registry_put_list(struct ts_log **logs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ts_log_unref(logs[i]);
	free(logs);
}

int ts_registry_set(struct ts_registry *r, struct ts_log *const *logs, size_t n)
{
	struct ts_log **next = copy_refs(logs, n);
	if (n && !next)
		return -ENOMEM;
	pthread_mutex_lock(&r->lock);
	struct ts_log **old = r->logs;
	size_t nold = r->n;
	r->logs = next;
	r->n = n;
	pthread_mutex_unlock(&r->lock);
	/* the last reference may free a log: not under the lock */
	ts_registry_put_list(old, nold);
	return 0;
}
