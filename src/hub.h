/* hub.h: who waits for which log, and waking each waiting connection
 * exactly once.
 *
 * A log has a `struct ts_hub_log`: the list of the cursors that read it
 * (their links), and the accounting that the watcher's adaptive batching
 * needs (how many connections it resumed whose reader has not run yet).
 * A connection has one `struct ts_hub_conn`, shared by all its cursors
 * (one per log it reads): whether it is suspended, and which logs woke it.
 *
 * A connection suspends only when no log changed since its reader last
 * looked (`pending`), so a change that lands while it reads is never lost;
 * and only the change that finds it suspended resumes it, so two logs
 * changing at once never resume it twice.
 *
 * A plain-HTTP stream at the end of its logs is not even resumed: the
 * thread that saw the change serves it (its `direct`) and writes to its
 * socket (ts_hub_write), while libmicrohttpd keeps it suspended; see
 * ts_hub_changed.
 *
 * Locks: a hub_log's lock, then a hub_conn's lock, then libmicrohttpd's
 * (through `resume`).  Never a log's own lock while holding either (a
 * `direct` runs with neither held).
 * Threads: any, as each function says. */
#ifndef TS_HUB_H
#define TS_HUB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* At most this many logs per connection (bits of `woken`). */
#define TS_HUB_MAX_LINKS 32

struct ts_hub_hangups;

#ifdef TS_BENCH_HIST
/* Bench builds only (CFLAGS=-DTS_BENCH_HIST): where a line's time goes on
 * its way through the daemon, in histograms printed on stderr at exit.
 * Times are CLOCK_MONOTONIC ns, as ts-writer's line stamps (t=...). */
enum ts_bh {
	TS_BH_WRITE_CHANGED,  /* line written -> its log's wake-up starts */
	TS_BH_BATCH_WAIT,     /* a wake-up held back: the last one not run */
	TS_BH_WAKE_LOOP,      /* one wake-up's resume loop */
	TS_BH_CHANGED_RESUME, /* wake-up start -> this connection resumed */
	TS_BH_RESUME_READ,    /* resumed -> its reader runs */
	TS_BH_READ_COST,      /* reader call that returned data */
	TS_BH_WRITE_READ,     /* line written -> handed to libmicrohttpd */
	TS_BH_LOG_LOCK,	      /* a reader blocked on its log's lock */
	TS_BH_RESUMED,	      /* connections resumed per wake-up (count) */
	TS_BH_EVENTS,	      /* events per reader call (count) */
	TS_BH_READS_PER_WAKE, /* reader rounds per resume (count) */
	TS_BH_N
};
int64_t ts_bh_now(void);
void ts_bh_add(enum ts_bh which, int64_t v);
/* pthread_mutex_lock, timing the wait when the lock is taken */
void ts_bh_lock(pthread_mutex_t *m, enum ts_bh which);
#endif

/* ts_hub_conn.ping_mode */
enum { TS_PING_RESUME, TS_PING_CHUNKED, TS_PING_IDENTITY };

struct ts_hub_conn {
	pthread_mutex_t lock; /* protects the fields below */
	bool suspended;	      /* waiting for a change, resumable */
	bool gone;	      /* the client hung up: end the stream */
	bool pending;	      /* a log changed since the reader looked */
	bool ping_due;	      /* a heartbeat is due */
	uint32_t woken;	      /* bit i: link i's log resumed it */
	_Atomic int64_t last_sent_ms; /* monotonic: the last write to the client
				 * (written by the reader without the lock) */
	void (*resume)(void *arg);    /* resumes the HTTP connection */
	void *arg;
	/* the hang-up watch of its socket: hs is set once by the thread
	 * that owns the connection; `watched` changes under hs->lock */
	struct ts_hub_hangups *hs;
	int fd;
	bool watched;
	/* how a heartbeat may be written to fd straight from the watcher
	 * (ts_hub_ping): TS_PING_RESUME (never: TLS, or not known), or the
	 * body's framing; set once by the thread that owns the connection */
	uint8_t ping_mode;
	/* a stream that its waking thread may serve itself (ts_hub_changed):
	 * `direct(direct_arg)`, or NULL; set once by its owner before it
	 * first suspends.  sndbuf: the socket's send buffer, as last read;
	 * queued: at most this much of it is taken, by the count of what
	 * the hub wrote since it asked (-1: ask; libmicrohttpd wrote) */
	void (*direct)(void *arg);
	void *direct_arg;
	struct ts_hub_conn *direct_next; /* ts_hub_changed's list */
	int sndbuf;
	int64_t queued;
#ifdef TS_BENCH_HIST
	int64_t bh_changed_ns, bh_resume_ns; /* its last wake-up's times */
	unsigned bh_reads; /* reader rounds since the last resume */
#endif
};

/* The sockets of streaming connections, watched for the client hanging
 * up: libmicrohttpd does not look at a suspended connection's socket, so
 * a client that leaves while its logs are quiet would keep its place (and
 * its file descriptor) until the next line or heartbeat.  One epoll set;
 * the watcher thread runs it.  `lock` protects the set's registrations. */
struct ts_hub_hangups {
	int epfd;
	pthread_mutex_t lock;
};

int ts_hub_hangups_init(struct ts_hub_hangups *hs);
void ts_hub_hangups_destroy(struct ts_hub_hangups *hs);

/* Watch `fd` (the connection's socket) for the client going away; when it
 * does, the connection is marked gone and resumed once.  0 or -errno.  Any
 * thread. */
int ts_hub_watch_hangup(struct ts_hub_hangups *hs, struct ts_hub_conn *hc,
			int fd);

/* Stop watching (before the connection is freed).  Any thread. */
void ts_hub_unwatch_hangup(struct ts_hub_conn *hc);

/* Handle the hang-ups that are ready (hs->epfd is readable).  Watcher
 * thread. */
void ts_hub_hangups_run(struct ts_hub_hangups *hs);

struct ts_hub_log;

/* One cursor waiting on one log. */
struct ts_hub_link {
	struct ts_hub_conn *conn;
	struct ts_hub_log *log; /* NULL while not linked */
	unsigned idx;		/* its bit in conn->woken */
	struct ts_hub_link *prev, *next;
};

struct ts_hub_log {
	pthread_mutex_t lock; /* protects the fields below */
	struct ts_hub_link *links;
	unsigned nlinks;
	/* connections resumed by this log whose reader has not run yet: while
	 * some are, the HTTP thread is still delivering the last change, and
	 * the watcher gathers new ones (see watch.c).  Atomic, with
	 * idle_kick: a reader counts itself off without the lock, which the
	 * watcher holds through a whole wake-up */
	atomic_uint nwoken;
	atomic_bool idle_kick; /* signal kick_fd when nwoken drops to 0 */
	_Atomic int kick_fd;   /* the watcher's eventfd, or -1 (read by
				 * readers without the lock) */
	int64_t next_ping_ms;  /* no heartbeat is due before this */
#ifdef TS_BENCH_HIST
	int64_t bh_wait_ns; /* the watcher began to wait for a kick */
#endif
};

/* 0 or -errno. */
int ts_hub_log_init(struct ts_hub_log *hl);
void ts_hub_log_destroy(struct ts_hub_log *hl);
int ts_hub_conn_init(struct ts_hub_conn *hc, void (*resume)(void *), void *arg);
void ts_hub_conn_destroy(struct ts_hub_conn *hc);

/* Link / unlink a cursor's link (idx < TS_HUB_MAX_LINKS) to a log.
 * Unlinking settles the link's share of the log's accounting.  Any
 * thread. */
void ts_hub_link(struct ts_hub_log *hl, struct ts_hub_link *l,
		 struct ts_hub_conn *hc, unsigned idx);
void ts_hub_unlink(struct ts_hub_link *l);

/* The log changed: resume every waiting connection (once each), and mark
 * the others to look again.  A waiting connection that has a `direct`
 * (and a socket the hub may write, see ts_hub_write) is not resumed: it is
 * served by this call, on this thread, once the log's lock is let go.
 * Any thread. */
void ts_hub_changed(struct ts_hub_log *hl);

/* Write event-stream bytes to the socket of a connection that
 * libmicrohttpd holds suspended, framed as its body is (ping_mode): only
 * by the thread that owns it now (ts_hub_changed's direct, or under
 * hc->lock while it is suspended).  libmicrohttpd has sent all that the
 * stream gave it, and sends nothing until it is resumed.  Returns len when
 * all went; 0 when nothing was written (no room: a slow client, or a
 * connection the hub may not write: TLS, not known); for an unchunked body
 * the bytes written when only a part went (the caller has the rest sent
 * through libmicrohttpd); -1 when the stream cannot go on (an error, or a
 * part of a chunk, whose framing is broken): the caller ends it, and its
 * client resumes from its last id. */
ssize_t ts_hub_write(struct ts_hub_conn *hc, const char *data, size_t len);

/* A connection served by its `direct` waits again: false if a log changed
 * (or a heartbeat fell due, or it is gone) since ts_hub_begin.  Then the
 * caller serves it once more, or hands it to its reader
 * (ts_hub_hand_over).  Direct's thread. */
bool ts_hub_wait_again(struct ts_hub_conn *hc);

/* Resume a connection served by its `direct` for its reader (which goes
 * on from where `direct` stopped).  Direct's thread. */
void ts_hub_hand_over(struct ts_hub_conn *hc);

/* The bytes of a heartbeat, ": ping\n\n". */
#define TS_HUB_PING_LEN 8

/* A heartbeat may go this much early (never late): see ts_hub_ping. */
#ifndef TS_HUB_PING_EARLY_MS
#define TS_HUB_PING_EARLY_MS 100
#endif

/* Heartbeats: a `: ping` to each waiting connection that has written
 * nothing for `every_ms` (or will have, within TS_HUB_PING_EARLY_MS):
 * written to its socket at once when its ping_mode allows, else by its
 * reader, resumed for it.  Cheap to call often: the links are only
 * looked at once the earliest of them may be due.  Watcher thread.
 * The bytes of event stream written at once (the comments, without the
 * chunks' framing: what a reader's ping would have counted). */
uint64_t ts_hub_ping(struct ts_hub_log *hl, int64_t now_ms, int64_t every_ms);

/* The reader of a connection starts a round: clear `pending`, take the
 * `woken` bits (the caller settles each with ts_hub_done), whether a ping
 * is due and whether the client is gone.  Reader's thread. */
uint32_t ts_hub_begin(struct ts_hub_conn *hc, bool *ping_due, bool *gone);

/* Link `l`'s log resumed its connection and the reader has run: count it
 * off (and tell the watcher when it was the last).  Takes no lock.
 * Reader's thread. */
void ts_hub_done(struct ts_hub_link *l);

/* Suspend unless a log changed since ts_hub_begin: then false, and the
 * reader looks again.  `suspend` is called under the connection's lock
 * (libmicrohttpd's MHD_suspend_connection).  Reader's thread. */
bool ts_hub_try_suspend(struct ts_hub_conn *hc, void (*suspend)(void *),
			void *arg);

/* Has the HTTP thread run every connection of the log's last wake-up?  If
 * not, ask to be told on kick_fd when it has.  Watcher thread. */
bool ts_hub_idle_or_kick(struct ts_hub_log *hl);

/* The number of links (for the watcher's window).  Any thread. */
unsigned ts_hub_nlinks(struct ts_hub_log *hl);

#endif
