#include <errno.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "hub.h"

int ts_hub_log_init(struct ts_hub_log *hl)
{
	hl->links = NULL;
	hl->nlinks = 0;
	hl->nwoken = 0;
	hl->idle_kick = false;
	hl->kick_fd = -1;
	hl->next_ping_ms = 0;
	return -pthread_mutex_init(&hl->lock, NULL);
}

void ts_hub_log_destroy(struct ts_hub_log *hl)
{
	pthread_mutex_destroy(&hl->lock);
}

int ts_hub_conn_init(struct ts_hub_conn *hc, void (*resume)(void *),
		     void *arg)
{
	hc->suspended = false;
	hc->gone = false;
	hc->hs = NULL;
	hc->fd = -1;
	hc->watched = false;
	hc->pending = false;
	hc->ping_due = false;
	hc->woken = 0;
	hc->last_sent_ms = 0;
	hc->resume = resume;
	hc->arg = arg;
	return -pthread_mutex_init(&hc->lock, NULL);
}

void ts_hub_conn_destroy(struct ts_hub_conn *hc)
{
	pthread_mutex_destroy(&hc->lock);
}

void ts_hub_link(struct ts_hub_log *hl, struct ts_hub_link *l,
		 struct ts_hub_conn *hc, unsigned idx)
{
	l->conn = hc;
	l->idx = idx;
	pthread_mutex_lock(&hl->lock);
	l->log = hl;
	/* a newcomer may be due before the time the last look found */
	hl->next_ping_ms = 0;
	l->prev = NULL;
	l->next = hl->links;
	if (l->next)
		l->next->prev = l;
	hl->links = l;
	hl->nlinks++;
	pthread_mutex_unlock(&hl->lock);
}

/* Count one woken connection off.  Caller holds hl->lock. */
static void done_locked(struct ts_hub_log *hl)
{
	if (--hl->nwoken > 0 || !hl->idle_kick)
		return;
	hl->idle_kick = false;
	uint64_t one = 1;
	/* a full counter (EAGAIN) has already told the watcher */
	if (hl->kick_fd >= 0 &&
	    write(hl->kick_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		perror("tailsse: eventfd");
}

void ts_hub_unlink(struct ts_hub_link *l)
{
	struct ts_hub_log *hl = l->log;
	if (!hl)
		return;
	pthread_mutex_lock(&hl->lock);
	if (l->prev)
		l->prev->next = l->next;
	else
		hl->links = l->next;
	if (l->next)
		l->next->prev = l->prev;
	hl->nlinks--;
	struct ts_hub_conn *hc = l->conn;
	pthread_mutex_lock(&hc->lock);
	bool owed = hc->woken & (1u << l->idx);
	hc->woken &= ~(1u << l->idx);
	pthread_mutex_unlock(&hc->lock);
	if (owed)
		done_locked(hl);
	l->log = NULL;
	pthread_mutex_unlock(&hl->lock);
}

void ts_hub_changed(struct ts_hub_log *hl)
{
	pthread_mutex_lock(&hl->lock);
	for (struct ts_hub_link *l = hl->links; l; l = l->next) {
		struct ts_hub_conn *hc = l->conn;
		pthread_mutex_lock(&hc->lock);
		if (hc->suspended) {
			hc->suspended = false;
			hc->woken |= 1u << l->idx;
			hl->nwoken++;
			hc->resume(hc->arg);
		} else {
			hc->pending = true;
		}
		pthread_mutex_unlock(&hc->lock);
	}
	pthread_mutex_unlock(&hl->lock);
}

void ts_hub_ping(struct ts_hub_log *hl, int64_t now_ms, int64_t every_ms)
{
	pthread_mutex_lock(&hl->lock);
	if (now_ms < hl->next_ping_ms) {
		pthread_mutex_unlock(&hl->lock);
		return;
	}
	/* when the earliest of them may be due: until then, nothing to look
	 * at (a connection that writes only moves its time later) */
	int64_t early = TS_HUB_PING_EARLY_MS;
	int64_t next = now_ms + every_ms - early;
	for (struct ts_hub_link *l = hl->links; l; l = l->next) {
		struct ts_hub_conn *hc = l->conn;
		/* most are not due: their time is read without the lock.  Those
		 * due before the next look go now, a little early: pings that
		 * go together cost the HTTP thread one wake-up, not several */
		int64_t due = hc->last_sent_ms + every_ms;
		if (due > now_ms + early) {
			if (due - early < next)
				next = due - early;
			continue;
		}
		pthread_mutex_lock(&hc->lock);
		if (hc->suspended) {
			hc->ping_due = true;
			hc->suspended = false;
			hc->resume(hc->arg);
		} else if (now_ms + 100 < next) {
			next = now_ms + 100; /* running now: look again soon */
		}
		pthread_mutex_unlock(&hc->lock);
	}
	hl->next_ping_ms = next;
	pthread_mutex_unlock(&hl->lock);
}

uint32_t ts_hub_begin(struct ts_hub_conn *hc, bool *ping_due, bool *gone)
{
	pthread_mutex_lock(&hc->lock);
	*gone = hc->gone;
	hc->pending = false;
	uint32_t woken = hc->woken;
	hc->woken = 0;
	*ping_due = hc->ping_due;
	hc->ping_due = false;
	pthread_mutex_unlock(&hc->lock);
	return woken;
}

void ts_hub_done(struct ts_hub_link *l)
{
	struct ts_hub_log *hl = l->log;
	if (!hl)
		return;
	pthread_mutex_lock(&hl->lock);
	done_locked(hl);
	pthread_mutex_unlock(&hl->lock);
}

bool ts_hub_try_suspend(struct ts_hub_conn *hc, void (*suspend)(void *),
			void *arg)
{
	pthread_mutex_lock(&hc->lock);
	bool ok = !hc->pending && !hc->ping_due;
	if (ok) {
		hc->suspended = true;
		suspend(arg);
	}
	pthread_mutex_unlock(&hc->lock);
	return ok;
}

bool ts_hub_idle_or_kick(struct ts_hub_log *hl)
{
	pthread_mutex_lock(&hl->lock);
	bool idle = hl->nwoken == 0;
	hl->idle_kick = !idle;
	pthread_mutex_unlock(&hl->lock);
	return idle;
}

unsigned ts_hub_nlinks(struct ts_hub_log *hl)
{
	pthread_mutex_lock(&hl->lock);
	unsigned n = hl->nlinks;
	pthread_mutex_unlock(&hl->lock);
	return n;
}

int ts_hub_hangups_init(struct ts_hub_hangups *hs)
{
	hs->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (hs->epfd < 0)
		return -errno;
	int rc = pthread_mutex_init(&hs->lock, NULL);
	if (rc) {
		close(hs->epfd);
		hs->epfd = -1;
		return -rc;
	}
	return 0;
}

void ts_hub_hangups_destroy(struct ts_hub_hangups *hs)
{
	if (hs->epfd < 0)
		return;
	close(hs->epfd);
	hs->epfd = -1;
	pthread_mutex_destroy(&hs->lock);
}

int ts_hub_watch_hangup(struct ts_hub_hangups *hs, struct ts_hub_conn *hc,
			int fd)
{
	/* level-triggered; removed at the first report, so it fires once */
	struct epoll_event ev = { EPOLLRDHUP | EPOLLHUP | EPOLLERR,
				  { .ptr = hc } };
	pthread_mutex_lock(&hs->lock);
	int rc = epoll_ctl(hs->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
	if (rc == 0) {
		hc->hs = hs;
		hc->fd = fd;
		hc->watched = true;
	}
	pthread_mutex_unlock(&hs->lock);
	return rc;
}

void ts_hub_unwatch_hangup(struct ts_hub_conn *hc)
{
	struct ts_hub_hangups *hs = hc->hs;
	if (!hs)
		return;
	pthread_mutex_lock(&hs->lock);
	if (hc->watched) {
		epoll_ctl(hs->epfd, EPOLL_CTL_DEL, hc->fd, NULL);
		hc->watched = false;
	}
	pthread_mutex_unlock(&hs->lock);
}

void ts_hub_hangups_run(struct ts_hub_hangups *hs)
{
	struct epoll_event evs[64];
	/* under the lock: a connection is unwatched (then freed) only while
	 * this is not looking at its events */
	pthread_mutex_lock(&hs->lock);
	int n = epoll_wait(hs->epfd, evs, 64, 0);
	for (int i = 0; i < n; i++) {
		struct ts_hub_conn *hc = evs[i].data.ptr;
		epoll_ctl(hs->epfd, EPOLL_CTL_DEL, hc->fd, NULL);
		hc->watched = false;
		pthread_mutex_lock(&hc->lock);
		hc->gone = true;
		if (hc->suspended) {
			hc->suspended = false;
			hc->resume(hc->arg);
		} else {
			hc->pending = true;
		}
		pthread_mutex_unlock(&hc->lock);
	}
	pthread_mutex_unlock(&hs->lock);
}
