#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <linux/sock_diag.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "hub.h"

#ifdef TS_BENCH_HIST
/* Log-linear histograms: 4 buckets per power of two of the value (ns, or a
 * count), from 1 to 2^40. */
#define BH_NB (41 * 4)
static const char *const bh_names[TS_BH_N] = {
	"line written -> wake-up",	"wake-up held back (batching)",
	"resume loop of a wake-up",	"wake-up -> this stream resumed",
	"resumed -> reader runs",	"reader call (with data)",
	"line written -> given to MHD", "reader blocked on log lock",
	"streams resumed per wake-up",	"events per reader call",
	"reader rounds per resume",
};
static _Atomic uint64_t bh_b[TS_BH_N][BH_NB], bh_n[TS_BH_N], bh_max[TS_BH_N];
static _Atomic uint64_t bh_sum[TS_BH_N];

int64_t ts_bh_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static unsigned bh_bucket(uint64_t v)
{
	if (v < 4)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);
	unsigned i = e * 4 + (unsigned)((v >> (e - 2)) & 3);
	return i < BH_NB ? i : BH_NB - 1;
}

static double bh_low(unsigned i)
{
	if (i < 4)
		return i;
	unsigned e = i / 4, sub = i % 4;
	return (double)(1ULL << e) * (1 + sub / 4.0);
}

void ts_bh_add(enum ts_bh which, int64_t v)
{
	uint64_t u = v > 0 ? (uint64_t)v : 0;
	atomic_fetch_add_explicit(&bh_b[which][bh_bucket(u)], 1,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&bh_n[which], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&bh_sum[which], u, memory_order_relaxed);
	uint64_t m = atomic_load_explicit(&bh_max[which], memory_order_relaxed);
	while (u > m && !atomic_compare_exchange_weak(&bh_max[which], &m, u))
		;
}

void ts_bh_lock(pthread_mutex_t *m, enum ts_bh which)
{
	if (pthread_mutex_trylock(m) == 0)
		return;
	int64_t t0 = ts_bh_now();
	pthread_mutex_lock(m);
	ts_bh_add(which, ts_bh_now() - t0);
}

static double bh_q(unsigned w, double q)
{
	uint64_t n = bh_n[w], want = (uint64_t)(q * (double)n + 0.5), seen = 0;
	for (unsigned i = 0; i < BH_NB; i++) {
		seen += bh_b[w][i];
		if (seen >= (want ? want : 1))
			return bh_low(i + 1) < (double)bh_max[w]
				       ? bh_low(i + 1)
				       : (double)bh_max[w];
	}
	return (double)bh_max[w];
}

__attribute__((destructor)) static void bh_print(void)
{
	fprintf(stderr, "tailsse: bench histograms (upper bucket edges; "
			"times in us)\n");
	for (unsigned w = 0; w < TS_BH_N; w++) {
		if (!bh_n[w])
			continue;
		bool count = w >= TS_BH_RESUMED;
		double k = count ? 1 : 1000;
		fprintf(stderr,
			"tailsse: bh %-30s n %9llu mean %9.1f p50 %9.1f "
			"p90 %9.1f p99 %9.1f p99.9 %9.1f max %9.1f\n",
			bh_names[w], (unsigned long long)bh_n[w],
			(double)bh_sum[w] / (double)bh_n[w] / k,
			bh_q(w, 0.5) / k, bh_q(w, 0.9) / k, bh_q(w, 0.99) / k,
			bh_q(w, 0.999) / k, (double)bh_max[w] / k);
	}
}
#endif

int ts_hub_log_init(struct ts_hub_log *hl)
{
	hl->links = NULL;
	hl->nlinks = 0;
	atomic_init(&hl->nwoken, 0);
	atomic_init(&hl->idle_kick, false);
	atomic_init(&hl->kick_fd, -1);
	hl->next_ping_ms = 0;
	return -pthread_mutex_init(&hl->lock, NULL);
}

void ts_hub_log_destroy(struct ts_hub_log *hl)
{
	pthread_mutex_destroy(&hl->lock);
}

int ts_hub_conn_init(struct ts_hub_conn *hc, void (*resume)(void *), void *arg)
{
	hc->suspended = false;
	hc->gone = false;
	hc->hs = NULL;
	hc->fd = -1;
	hc->ping_mode = TS_PING_RESUME;
	hc->direct = NULL;
	hc->direct_arg = NULL;
	hc->direct_next = NULL;
	hc->sndbuf = 0;
	hc->queued = -1;
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

/* Count one woken connection off; the last one tells the watcher if it
 * waits (ts_hub_idle_or_kick).  No lock: the decrement and the exchange
 * are sequentially consistent, as are the watcher's store of idle_kick
 * and its load of nwoken, so one of the two sides sees the other (a kick
 * too many is harmless: the watcher looks again). */
static void done(struct ts_hub_log *hl)
{
	if (atomic_fetch_sub(&hl->nwoken, 1) > 1 ||
	    !atomic_exchange(&hl->idle_kick, false))
		return;
	uint64_t one = 1;
	/* a full counter (EAGAIN) has already told the watcher */
	int fd = atomic_load(&hl->kick_fd);
	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
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
		done(hl);
	l->log = NULL;
	pthread_mutex_unlock(&hl->lock);
}

/* May the waking thread serve this suspended connection itself?  Caller
 * holds hc->lock. */
static bool servable(const struct ts_hub_conn *hc)
{
	return hc->direct && hc->ping_mode != TS_PING_RESUME && !hc->gone &&
	       hc->watched && hc->fd >= 0;
}

void ts_hub_changed(struct ts_hub_log *hl)
{
	/* served here once the log's lock is let go: their `direct` reads
	 * the log, and may hand them to libmicrohttpd */
	struct ts_hub_conn *direct = NULL;
	pthread_mutex_lock(&hl->lock);
#ifdef TS_BENCH_HIST
	int64_t bh_t0 = ts_bh_now();
	unsigned bh_resumed = 0;
	if (hl->bh_wait_ns)
		ts_bh_add(TS_BH_BATCH_WAIT, bh_t0 - hl->bh_wait_ns);
	hl->bh_wait_ns = 0;
#endif
	for (struct ts_hub_link *l = hl->links; l; l = l->next) {
		struct ts_hub_conn *hc = l->conn;
		pthread_mutex_lock(&hc->lock);
		if (hc->suspended && servable(hc)) {
			/* claimed: no other change, ping or hang-up touches it
			 * but through `pending` until it waits again */
			hc->suspended = false;
			hc->direct_next = direct;
			direct = hc;
		} else if (hc->suspended) {
			hc->suspended = false;
			hc->woken |= 1u << l->idx;
			atomic_fetch_add(&hl->nwoken, 1);
#ifdef TS_BENCH_HIST
			hc->bh_changed_ns = bh_t0;
			hc->bh_resume_ns = ts_bh_now();
			hc->bh_reads = 0;
			bh_resumed++;
			ts_bh_add(TS_BH_CHANGED_RESUME,
				  hc->bh_resume_ns - bh_t0);
#endif
			hc->resume(hc->arg);
		} else {
			hc->pending = true;
		}
		pthread_mutex_unlock(&hc->lock);
	}
#ifdef TS_BENCH_HIST
	if (hl->nlinks) {
		ts_bh_add(TS_BH_RESUMED, bh_resumed);
		ts_bh_add(TS_BH_WAKE_LOOP, ts_bh_now() - bh_t0);
	}
#endif
	pthread_mutex_unlock(&hl->lock);
	/* (a claimed connection is not freed: libmicrohttpd holds it
	 * suspended until its direct hands it over) */
	while (direct) {
		struct ts_hub_conn *hc = direct;
		direct = hc->direct_next;
		hc->direct(hc->direct_arg);
	}
}

/* Bytes of send buffer that the kernel charges per write, above what
 * it carries: its buffers' heads (a write spans at most two of them). */
#define TS_HUB_WRITE_OVERHEAD 2048
/* The hub writes to a socket only while this little of its send buffer is
 * taken (and at most a quarter of it): a client that keeps up.  The kernel
 * may cut a write short before the buffer is full (under memory pressure
 * it shrinks the buffer: seen here at 88 % of it, with 6 MiB written to a
 * client that read nothing), and a chunk cut short ends its stream; well
 * below the limit it goes whole. */
#define TS_HUB_WRITE_MAX_QUEUED (128 * 1024)

/* Is there room for `need` more bytes in the socket's send buffer, in the
 * kernel's own count (SO_MEMINFO: the memory of what is queued, heads and
 * all, against the buffer's size), within the limit above?  The kernel is
 * asked only when the hub's count (what it said last, plus what the hub
 * wrote since, overhead and all; what the client acknowledges only lowers
 * it) leaves no room: a system call less per line and stream. */
static size_t write_limit(int sndbuf)
{
	size_t quarter = (size_t)sndbuf / 4;
	return quarter < TS_HUB_WRITE_MAX_QUEUED ? quarter
						 : TS_HUB_WRITE_MAX_QUEUED;
}

static bool has_room(struct ts_hub_conn *hc, size_t need)
{
	size_t want = need + TS_HUB_WRITE_OVERHEAD;
	if (hc->queued >= 0 &&
	    (size_t)hc->queued + want <= write_limit(hc->sndbuf))
		return true;
	uint32_t mi[SK_MEMINFO_VARS];
	socklen_t sl = sizeof(mi);
	if (getsockopt(hc->fd, SOL_SOCKET, SO_MEMINFO, mi, &sl) != 0 ||
	    sl < sizeof(mi))
		return false;
	/* TCP's queue, or what other sockets have in flight */
	uint32_t q = mi[SK_MEMINFO_WMEM_QUEUED];
	if (mi[SK_MEMINFO_WMEM_ALLOC] > q)
		q = mi[SK_MEMINFO_WMEM_ALLOC];
	hc->queued = q;
	hc->sndbuf = mi[SK_MEMINFO_SNDBUF] > INT_MAX
			     ? INT_MAX
			     : (int)mi[SK_MEMINFO_SNDBUF];
	return (size_t)q + want <= write_limit(hc->sndbuf);
}

/* A chunk's head, "<len in hex>\r\n", into `head` (at least 19 bytes);
 * its length. */
static size_t chunk_head(char *head, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[16];
	size_t n = 0;
	do {
		tmp[n++] = hex[len & 15];
		len >>= 4;
	} while (len);
	for (size_t i = 0; i < n; i++)
		head[i] = tmp[n - 1 - i];
	head[n] = '\r';
	head[n + 1] = '\n';
	return n + 2;
}

ssize_t ts_hub_write(struct ts_hub_conn *hc, const char *data, size_t len)
{
	if (hc->ping_mode == TS_PING_RESUME || hc->fd < 0 || len == 0)
		return 0;
	bool chunked = hc->ping_mode == TS_PING_CHUNKED;
	char head[24];
	size_t hlen = chunked ? chunk_head(head, len) : 0;
	struct iovec iov[3] = { { head, hlen },
				{ (void *)data, len },
				{ (void *)"\r\n", chunked ? 2 : 0 } };
	size_t total = hlen + len + iov[2].iov_len;
	if (!has_room(hc, total))
		return 0; /* its client reads slowly: let its reader */
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 3 };
	ssize_t n = sendmsg(hc->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n > 0)
		hc->queued += n + TS_HUB_WRITE_OVERHEAD;
	if (n == (ssize_t)total)
		return (ssize_t)len;
	if (n < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (n > 0 && !chunked)
		return n;
	return -1; /* an error, or a chunk cut short */
}

bool ts_hub_wait_again(struct ts_hub_conn *hc)
{
	pthread_mutex_lock(&hc->lock);
	bool ok = !hc->pending && !hc->ping_due && !hc->gone;
	if (ok)
		hc->suspended = true; /* libmicrohttpd never saw it resumed */
	pthread_mutex_unlock(&hc->lock);
	return ok;
}

void ts_hub_hand_over(struct ts_hub_conn *hc)
{
	pthread_mutex_lock(&hc->lock);
	hc->resume(hc->arg);
	pthread_mutex_unlock(&hc->lock);
}

/* A heartbeat written to a suspended connection's socket from here, with
 * no wake-up of the HTTP thread.  Each ping that resumes its connection
 * costs that thread a walk of every suspended connection
 * (libmicrohttpd's resume): with 10,000 idle streams that was most of the
 * daemon's idle CPU.  Safe because libmicrohttpd has nothing of this
 * connection left to send (a reader suspends only once its output went
 * out) and does not touch the socket until it is resumed, which needs this
 * lock: so a whole chunk (or, unchunked, the comment itself) goes between
 * what it sent and what it will send.  Not over TLS (the session is
 * libmicrohttpd's).  Written only when the socket has room for all of it;
 * if only a part went anyway, the framing is broken: the stream ends (gone)
 * and its client resumes from its last id.  True when written; false:
 * resume it for its reader (to ping, or to see it gone).  Caller holds
 * hc->lock. */
static bool ping_raw(struct ts_hub_conn *hc, int64_t now_ms)
{
	static const char ping[] = ": ping\n\n";
	_Static_assert(sizeof(ping) - 1 == TS_HUB_PING_LEN, "ping size");
	if (hc->gone || !hc->watched)
		return false;
	ssize_t n = ts_hub_write(hc, ping, sizeof(ping) - 1);
	if (n == (ssize_t)sizeof(ping) - 1) {
		hc->last_sent_ms = now_ms;
		return true;
	}
	if (n != 0)
		hc->gone = true; /* broken, or a part of an unchunked one */
	return false;
}

uint64_t ts_hub_ping(struct ts_hub_log *hl, int64_t now_ms, int64_t every_ms)
{
	uint64_t written = 0;
	pthread_mutex_lock(&hl->lock);
	if (now_ms < hl->next_ping_ms) {
		pthread_mutex_unlock(&hl->lock);
		return 0;
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
		if (hc->suspended && ping_raw(hc, now_ms)) {
			/* written: it stays suspended */
			written += TS_HUB_PING_LEN;
		} else if (hc->suspended) {
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
	return written;
}

uint32_t ts_hub_begin(struct ts_hub_conn *hc, bool *ping_due, bool *gone)
{
	pthread_mutex_lock(&hc->lock);
#ifdef TS_BENCH_HIST
	if (hc->bh_reads++ == 0 && hc->bh_resume_ns)
		ts_bh_add(TS_BH_RESUME_READ, ts_bh_now() - hc->bh_resume_ns);
#endif
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
	/* l->log changes on the reader's thread only (link, unlink) */
	struct ts_hub_log *hl = l->log;
	if (hl)
		done(hl);
}

bool ts_hub_try_suspend(struct ts_hub_conn *hc, void (*suspend)(void *),
			void *arg)
{
	pthread_mutex_lock(&hc->lock);
	bool ok = !hc->pending && !hc->ping_due;
#ifdef TS_BENCH_HIST
	if (ok && hc->bh_resume_ns) {
		ts_bh_add(TS_BH_READS_PER_WAKE, hc->bh_reads);
		hc->bh_resume_ns = 0;
	}
#endif
	if (ok) {
		hc->suspended = true;
		hc->queued = -1; /* its reader wrote: ask the kernel */
		suspend(arg);
	}
	pthread_mutex_unlock(&hc->lock);
	return ok;
}

bool ts_hub_idle_or_kick(struct ts_hub_log *hl)
{
	pthread_mutex_lock(&hl->lock);
	/* ask first, then look: a reader counting the last one off meanwhile
	 * sees the request (see done) */
	atomic_store(&hl->idle_kick, true);
	bool idle = atomic_load(&hl->nwoken) == 0;
	if (idle)
		atomic_store(&hl->idle_kick, false);
#ifdef TS_BENCH_HIST
	if (!idle && !hl->bh_wait_ns)
		hl->bh_wait_ns = ts_bh_now();
#endif
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
