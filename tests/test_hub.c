/* Unit tests of hub.c: a waiting connection is resumed exactly once, a
 * change while it reads is never lost, heartbeats, the batching accounting,
 * a race of several logs changing while the reader suspends, thousands
 * of rounds, and streams served by the thread that saw the change. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hub.h"

struct fake {
	atomic_int suspends, resumes;
	atomic_int errors; /* a resume of a connection not suspended */
	sem_t wake;
};

static void fake_resume(void *arg)
{
	struct fake *f = arg;
	if (atomic_fetch_add(&f->resumes, 1) + 1 > atomic_load(&f->suspends))
		atomic_fetch_add(&f->errors, 1);
	sem_post(&f->wake);
}

static void fake_suspend(void *arg)
{
	struct fake *f = arg;
	atomic_fetch_add(&f->suspends, 1);
}

static void fake_init(struct fake *f)
{
	atomic_init(&f->suspends, 0);
	atomic_init(&f->resumes, 0);
	atomic_init(&f->errors, 0);
	assert_int_equal(sem_init(&f->wake, 0, 0), 0);
}

static void test_resumed_once_by_two_logs(void **state)
{
	(void)state;
	struct fake f;
	fake_init(&f);
	struct ts_hub_log a, b;
	struct ts_hub_conn hc;
	struct ts_hub_link la, lb;
	assert_int_equal(ts_hub_log_init(&a), 0);
	assert_int_equal(ts_hub_log_init(&b), 0);
	assert_int_equal(ts_hub_conn_init(&hc, fake_resume, &f), 0);
	ts_hub_link(&a, &la, &hc, 0);
	ts_hub_link(&b, &lb, &hc, 1);
	assert_int_equal(ts_hub_nlinks(&a), 1);

	bool ping, gone;
	assert_int_equal(ts_hub_begin(&hc, &ping, &gone), 0);
	assert_true(ts_hub_try_suspend(&hc, fake_suspend, &f));
	ts_hub_changed(&a);
	ts_hub_changed(&b);
	assert_int_equal(atomic_load(&f.resumes), 1);
	assert_int_equal(a.nwoken, 1);
	assert_int_equal(b.nwoken, 0); /* b found it awake: only pending */
	uint32_t woken = ts_hub_begin(&hc, &ping, &gone);
	assert_int_equal(woken, 1u);
	assert_false(ping);
	ts_hub_done(&la);
	assert_int_equal(a.nwoken, 0);

	/* a change while it reads: it must look again, not suspend */
	ts_hub_changed(&b);
	assert_false(ts_hub_try_suspend(&hc, fake_suspend, &f));
	ts_hub_begin(&hc, &ping, &gone);
	assert_true(ts_hub_try_suspend(&hc, fake_suspend, &f));
	assert_int_equal(atomic_load(&f.errors), 0);

	ts_hub_unlink(&la);
	ts_hub_unlink(&lb);
	assert_int_equal(ts_hub_nlinks(&a), 0);
	ts_hub_conn_destroy(&hc);
	ts_hub_log_destroy(&a);
	ts_hub_log_destroy(&b);
	sem_destroy(&f.wake);
}

static void test_ping_only_idle(void **state)
{
	(void)state;
	struct fake f;
	fake_init(&f);
	struct ts_hub_log a;
	struct ts_hub_conn hc;
	struct ts_hub_link la;
	assert_int_equal(ts_hub_log_init(&a), 0);
	assert_int_equal(ts_hub_conn_init(&hc, fake_resume, &f), 0);
	ts_hub_link(&a, &la, &hc, 0);
	hc.last_sent_ms = 1000;
	bool ping, gone;
	ts_hub_begin(&hc, &ping, &gone);
	assert_true(ts_hub_try_suspend(&hc, fake_suspend, &f));
	/* due at 2000: not looked at before it may go, TS_HUB_PING_EARLY_MS
	 * early; never sent earlier */
	ts_hub_ping(&a, 1500, 1000);
	int64_t look = 2000 - TS_HUB_PING_EARLY_MS;
	assert_int_equal(atomic_load(&f.resumes), 0);
	assert_int_equal(a.next_ping_ms, look);
	ts_hub_ping(&a, look - 1, 1000);
	assert_int_equal(atomic_load(&f.resumes), 0);
	ts_hub_ping(&a, look, 1000);
	assert_int_equal(atomic_load(&f.resumes), 1);
	assert_int_equal(a.nwoken, 0); /* heartbeats do not count */
	assert_int_equal(ts_hub_begin(&hc, &ping, &gone), 0);
	assert_true(ping);
	ts_hub_unlink(&la);
	ts_hub_conn_destroy(&hc);
	ts_hub_log_destroy(&a);
	sem_destroy(&f.wake);
}

/* A plain-HTTP stream's heartbeat is written to its socket by the watcher,
 * the connection left suspended: a whole chunk, or the comment alone for an
 * unchunked body.  Over TLS (ping_mode RESUME), or with no room in the
 * socket, it is resumed for its reader instead. */
static void test_ping_written_to_the_socket(void **state)
{
	(void)state;
	struct fake f;
	fake_init(&f);
	struct ts_hub_hangups hs;
	assert_int_equal(ts_hub_hangups_init(&hs), 0);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct ts_hub_log a;
	struct ts_hub_conn hc;
	struct ts_hub_link la;
	assert_int_equal(ts_hub_log_init(&a), 0);
	assert_int_equal(ts_hub_conn_init(&hc, fake_resume, &f), 0);
	assert_int_equal(ts_hub_watch_hangup(&hs, &hc, sv[0]), 0);
	ts_hub_link(&a, &la, &hc, 0);
	bool ping, gone;
	ts_hub_begin(&hc, &ping, &gone);
	assert_true(ts_hub_try_suspend(&hc, fake_suspend, &f));
	const struct {
		int mode;
		const char *want; /* NULL: resumed instead */
	} rows[] = {
		{ TS_PING_CHUNKED, "8\r\n: ping\n\n\r\n" },
		{ TS_PING_IDENTITY, ": ping\n\n" },
		{ TS_PING_RESUME, NULL },
	};
	int64_t now = 1000;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		hc.ping_mode = (uint8_t)rows[i].mode;
		hc.last_sent_ms = now;
		now += 1000;
		uint64_t written = ts_hub_ping(&a, now, 1000);
		assert_int_equal(written, rows[i].want ? 8 : 0);
		if (!rows[i].want) {
			assert_int_equal(atomic_load(&f.resumes), 1);
			assert_int_equal(ts_hub_begin(&hc, &ping, &gone), 0);
			assert_true(ping);
			break;
		}
		char buf[64];
		ssize_t n = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT);
		assert_int_equal(n, (ssize_t)strlen(rows[i].want));
		assert_memory_equal(buf, rows[i].want, (size_t)n);
		assert_int_equal(atomic_load(&f.resumes), 0);
		assert_true(hc.suspended);
		assert_int_equal(hc.last_sent_ms, now);
	}
	ts_hub_unwatch_hangup(&hc);
	ts_hub_unlink(&la);
	ts_hub_conn_destroy(&hc);
	ts_hub_log_destroy(&a);
	ts_hub_hangups_destroy(&hs);
	close(sv[0]);
	close(sv[1]);
	sem_destroy(&f.wake);
}

static bool kicked(int efd)
{
	uint64_t v;
	return read(efd, &v, sizeof(v)) == (ssize_t)sizeof(v) && v > 0;
}

/* The watcher waits for the HTTP thread to run the connections it woke:
 * asked while some have not run, it is told once, when the last one has;
 * a connection that goes away settles its share. */
static void test_kick_when_all_ran(void **state)
{
	(void)state;
	struct fake f;
	fake_init(&f);
	struct ts_hub_log a;
	struct ts_hub_conn h1, h2;
	struct ts_hub_link l1, l2;
	assert_int_equal(ts_hub_log_init(&a), 0);
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(efd >= 0);
	a.kick_fd = efd;
	assert_int_equal(ts_hub_conn_init(&h1, fake_resume, &f), 0);
	assert_int_equal(ts_hub_conn_init(&h2, fake_resume, &f), 0);
	ts_hub_link(&a, &l1, &h1, 0);
	ts_hub_link(&a, &l2, &h2, 0);
	bool ping, gone;
	assert_true(ts_hub_idle_or_kick(&a));
	assert_true(ts_hub_try_suspend(&h1, fake_suspend, &f));
	assert_true(ts_hub_try_suspend(&h2, fake_suspend, &f));
	ts_hub_changed(&a);
	assert_int_equal(a.nwoken, 2);
	assert_false(ts_hub_idle_or_kick(&a));
	assert_int_equal(ts_hub_begin(&h1, &ping, &gone), 1u);
	ts_hub_done(&l1);
	assert_false(kicked(efd));
	ts_hub_unlink(&l2); /* gone before its reader ran */
	assert_true(kicked(efd));
	assert_true(ts_hub_idle_or_kick(&a));
	ts_hub_unlink(&l1);
	close(efd);
	ts_hub_conn_destroy(&h1);
	ts_hub_conn_destroy(&h2);
	ts_hub_log_destroy(&a);
	sem_destroy(&f.wake);
}

/* ---- the race ---- */

#define NLOGS 3
#define ROUNDS 3000

/* NLOGS logs that one connection waits on, and the "lines" written to
 * each (by the writers below). */
struct changes {
	struct ts_hub_log logs[NLOGS];
	atomic_uint seq[NLOGS];
	struct ts_hub_link links[NLOGS];
};

static void changes_init(struct changes *ch, struct ts_hub_conn *hc)
{
	for (unsigned i = 0; i < NLOGS; i++) {
		assert_int_equal(ts_hub_log_init(&ch->logs[i]), 0);
		atomic_init(&ch->seq[i], 0);
		ts_hub_link(&ch->logs[i], &ch->links[i], hc, i);
	}
}

static void changes_destroy(struct changes *ch)
{
	for (unsigned i = 0; i < NLOGS; i++) {
		ts_hub_unlink(&ch->links[i]);
		assert_int_equal(ch->logs[i].nwoken, 0);
		ts_hub_log_destroy(&ch->logs[i]);
	}
}

struct race {
	struct changes ch;
	struct fake f;
	struct ts_hub_conn hc;
	unsigned got[NLOGS]; /* what the reader has seen */
	bool stalled;
};

/* ROUNDS lines to each log; arg: a struct changes */
static void *writer(void *arg)
{
	struct changes *ch = arg;
	for (unsigned k = 0; k < ROUNDS; k++) {
		for (unsigned i = 0; i < NLOGS; i++) {
			atomic_fetch_add(&ch->seq[i], 1);
			ts_hub_changed(&ch->logs[i]);
		}
		/* now and then let the reader catch up and suspend */
		if (k % 4 == 0) {
			struct timespec ts = { 0, 1000 };
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

static void *reader(void *arg)
{
	struct race *r = arg;
	unsigned want = 2 * ROUNDS; /* two writers */
	for (unsigned guard = 0; guard < 100 * ROUNDS; guard++) {
		bool ping, gone, all = true;
		uint32_t woken = ts_hub_begin(&r->hc, &ping, &gone);
		for (unsigned i = 0; i < NLOGS; i++) {
			if (woken & (1u << i))
				ts_hub_done(&r->ch.links[i]);
			r->got[i] = atomic_load(&r->ch.seq[i]);
			all &= r->got[i] == want;
		}
		if (all)
			return NULL;
		if (!ts_hub_try_suspend(&r->hc, fake_suspend, &r->f))
			continue;
		/* a lost wake-up leaves it here: a bounded wait says so */
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 5;
		if (sem_timedwait(&r->f.wake, &until) != 0) {
			r->stalled = true;
			return NULL;
		}
	}
	return NULL;
}

static void test_race_no_lost_no_double_wakeup(void **state)
{
	(void)state;
	static struct race r;
	fake_init(&r.f);
	assert_int_equal(ts_hub_conn_init(&r.hc, fake_resume, &r.f), 0);
	changes_init(&r.ch, &r.hc);
	pthread_t rt, w1, w2;
	assert_int_equal(pthread_create(&rt, NULL, reader, &r), 0);
	assert_int_equal(pthread_create(&w1, NULL, writer, &r.ch), 0);
	assert_int_equal(pthread_create(&w2, NULL, writer, &r.ch), 0);
	pthread_join(w1, NULL);
	pthread_join(w2, NULL);
	pthread_join(rt, NULL);
	assert_false(r.stalled);
	for (unsigned i = 0; i < NLOGS; i++)
		assert_int_equal(r.got[i], 2 * ROUNDS);
	assert_int_equal(atomic_load(&r.f.errors), 0);
	print_message("    %d suspends, %d resumes\n",
		      atomic_load(&r.f.suspends), atomic_load(&r.f.resumes));
	changes_destroy(&r.ch);
	ts_hub_conn_destroy(&r.hc);
	sem_destroy(&r.f.wake);
}

/* A client that hangs up is noticed while its connection is suspended:
 * marked gone and resumed once; unwatching after that is harmless. */
static void test_hangup(void **state)
{
	(void)state;
	struct fake f;
	fake_init(&f);
	struct ts_hub_hangups hs;
	struct ts_hub_conn hc;
	assert_int_equal(ts_hub_hangups_init(&hs), 0);
	assert_int_equal(ts_hub_conn_init(&hc, fake_resume, &f), 0);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(ts_hub_watch_hangup(&hs, &hc, sv[0]), 0);
	bool ping, gone;
	ts_hub_begin(&hc, &ping, &gone);
	assert_false(gone);
	assert_true(ts_hub_try_suspend(&hc, fake_suspend, &f));
	ts_hub_hangups_run(&hs); /* nothing yet */
	assert_int_equal(atomic_load(&f.resumes), 0);
	close(sv[1]);
	ts_hub_hangups_run(&hs);
	ts_hub_hangups_run(&hs); /* reported once */
	assert_int_equal(atomic_load(&f.resumes), 1);
	ts_hub_begin(&hc, &ping, &gone);
	assert_true(gone);
	ts_hub_unwatch_hangup(&hc);
	close(sv[0]);

	/* unwatched before the hang-up: never reported */
	struct ts_hub_conn h2;
	assert_int_equal(ts_hub_conn_init(&h2, fake_resume, &f), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(ts_hub_watch_hangup(&hs, &h2, sv[0]), 0);
	ts_hub_unwatch_hangup(&h2);
	close(sv[1]);
	ts_hub_hangups_run(&hs);
	assert_int_equal(atomic_load(&f.resumes), 1);
	close(sv[0]);
	ts_hub_conn_destroy(&h2);
	ts_hub_conn_destroy(&hc);
	ts_hub_hangups_destroy(&hs);
	sem_destroy(&f.wake);
}

/* ---- streams served by the thread that saw the change ---- */

struct direct_fx {
	struct ts_hub_conn *hc;
	struct ts_hub_log *other; /* changed from inside the first round */
	int calls, rounds;
	atomic_int inside; /* more than one thread in `direct`: an error */
	int overlaps;
};

static void fx_direct(void *arg)
{
	struct direct_fx *x = arg;
	if (atomic_fetch_add(&x->inside, 1) != 0)
		x->overlaps++;
	x->calls++;
	for (int round = 0; round < 10; round++) {
		bool ping, gone;
		assert_int_equal(ts_hub_begin(x->hc, &ping, &gone), 0);
		x->rounds++;
		assert_int_equal(ts_hub_write(x->hc, "data: x\n\n", 9), 9);
		if (x->other && x->rounds == 1)
			ts_hub_changed(x->other); /* a change while it writes */
		if (ts_hub_wait_again(x->hc))
			break;
	}
	atomic_fetch_sub(&x->inside, 1);
}

/* A waiting stream with a `direct` is served by ts_hub_changed's caller,
 * not resumed: its bytes framed as one chunk; a change (of any of its logs)
 * while it is served makes it look again, not serve it twice at once; it
 * then waits again, suspended, and libmicrohttpd never saw it resumed.
 * Over TLS, or without a socket, it is resumed as before. */
static void test_changed_serves_direct(void **state)
{
	(void)state;
	struct fake f;
	fake_init(&f);
	struct ts_hub_hangups hs;
	assert_int_equal(ts_hub_hangups_init(&hs), 0);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct ts_hub_log a, b;
	struct ts_hub_conn hc;
	struct ts_hub_link la, lb;
	assert_int_equal(ts_hub_log_init(&a), 0);
	assert_int_equal(ts_hub_log_init(&b), 0);
	assert_int_equal(ts_hub_conn_init(&hc, fake_resume, &f), 0);
	struct direct_fx x = { .hc = &hc, .other = &b };
	atomic_init(&x.inside, 0);
	hc.direct = fx_direct;
	hc.direct_arg = &x;
	hc.ping_mode = TS_PING_CHUNKED;
	assert_int_equal(ts_hub_watch_hangup(&hs, &hc, sv[0]), 0);
	ts_hub_link(&a, &la, &hc, 0);
	ts_hub_link(&b, &lb, &hc, 1);
	bool ping, gone;
	ts_hub_begin(&hc, &ping, &gone);
	assert_true(ts_hub_try_suspend(&hc, fake_suspend, &f));

	ts_hub_changed(&a);
	assert_int_equal(x.calls, 1);
	assert_int_equal(x.rounds, 2); /* b's change: one more round */
	assert_int_equal(x.overlaps, 0);
	assert_int_equal(atomic_load(&f.resumes), 0);
	assert_int_equal(a.nwoken, 0);
	assert_int_equal(b.nwoken, 0);
	assert_true(hc.suspended);
	char buf[64];
	const char *want = "9\r\ndata: x\n\n\r\n9\r\ndata: x\n\n\r\n";
	ssize_t n = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT);
	assert_int_equal(n, (ssize_t)strlen(want));
	assert_memory_equal(buf, want, (size_t)n);

	/* served again by the next change, from either log */
	x.other = NULL;
	ts_hub_changed(&b);
	assert_int_equal(x.calls, 2);
	assert_true(hc.suspended);
	assert_int_equal(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT), 14);

	/* over TLS: resumed for its reader, as before */
	hc.ping_mode = TS_PING_RESUME;
	ts_hub_changed(&a);
	assert_int_equal(x.calls, 2);
	assert_int_equal(atomic_load(&f.resumes), 1);
	assert_int_equal(ts_hub_begin(&hc, &ping, &gone), 1u);
	ts_hub_done(&la);
	assert_true(ts_hub_try_suspend(&hc, fake_suspend, &f));

	/* its client gone (hang-up seen): resumed, so its reader ends it */
	hc.ping_mode = TS_PING_CHUNKED;
	close(sv[1]);
	ts_hub_hangups_run(&hs);
	assert_int_equal(atomic_load(&f.resumes), 2);
	ts_hub_begin(&hc, &ping, &gone);
	assert_true(gone);
	assert_int_equal(atomic_load(&f.errors), 0);

	ts_hub_unwatch_hangup(&hc);
	ts_hub_unlink(&la);
	ts_hub_unlink(&lb);
	ts_hub_conn_destroy(&hc);
	ts_hub_log_destroy(&a);
	ts_hub_log_destroy(&b);
	ts_hub_hangups_destroy(&hs);
	close(sv[0]);
	sem_destroy(&f.wake);
}

/* ts_hub_write frames as the body is (a chunk, or the bytes alone), and
 * writes nothing when the socket has no room for all of it (a client that
 * reads slowly is left to libmicrohttpd), or when it may not write (TLS);
 * -1 when the client is gone. */
static void test_write_framing_and_room(void **state)
{
	(void)state;
	struct ts_hub_conn hc;
	assert_int_equal(ts_hub_conn_init(&hc, fake_resume, NULL), 0);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	hc.fd = sv[0];
	char buf[256];
	const char ev[] = "id: 0:1:42\ndata: a line of thirty bytes or so\n\n";
	size_t len = sizeof(ev) - 1;

	hc.ping_mode = TS_PING_RESUME;
	assert_int_equal(ts_hub_write(&hc, ev, len), 0);
	hc.ping_mode = TS_PING_CHUNKED;
	assert_int_equal(ts_hub_write(&hc, ev, len), (ssize_t)len);
	char want[256];
	int wl = snprintf(want, sizeof(want), "%zx\r\n%s\r\n", len, ev);
	assert_int_equal(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT), wl);
	assert_memory_equal(buf, want, (size_t)wl);
	static char big[0x1234 + 8];
	memset(big, 'x', sizeof(big));
	assert_int_equal(ts_hub_write(&hc, big, 0x1234), 0x1234);
	assert_int_equal(recv(sv[1], big, 6, MSG_DONTWAIT), 6);
	assert_memory_equal(big, "1234\r\n", 6);
	assert_int_equal(recv(sv[1], big, sizeof(big), MSG_DONTWAIT),
			 0x1234 + 2);
	assert_memory_equal(big + 0x1234, "\r\n", 2);
	hc.ping_mode = TS_PING_IDENTITY;
	assert_int_equal(ts_hub_write(&hc, ev, len), (ssize_t)len);
	assert_int_equal(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT),
			 (ssize_t)len);
	assert_memory_equal(buf, ev, len);

	/* a client that reads nothing: writes stop, whole, before the
	 * socket is full; then no byte goes, in either framing */
	hc.ping_mode = TS_PING_CHUNKED;
	size_t sent = 0;
	int i;
	for (i = 0; i < 100000; i++) {
		ssize_t n = ts_hub_write(&hc, ev, len);
		if (n == 0)
			break;
		assert_int_equal(n, (ssize_t)len);
		sent += (size_t)n;
	}
	assert_true(i < 100000);
	assert_true(sent > 0);
	int queued = 0;
	assert_int_equal(ioctl(sv[0], SIOCOUTQ, &queued), 0);
	hc.ping_mode = TS_PING_IDENTITY;
	assert_int_equal(ts_hub_write(&hc, ev, len), 0);
	int after = 0;
	assert_int_equal(ioctl(sv[0], SIOCOUTQ, &after), 0);
	assert_int_equal(after, queued);
	/* what went is whole chunks */
	size_t got = 0;
	for (int k = 0; k < 100000; k++) {
		ssize_t n = recv(sv[1], buf, (size_t)wl, MSG_DONTWAIT);
		if (n <= 0)
			break;
		assert_int_equal(n, wl);
		assert_memory_equal(buf, want, (size_t)wl);
		got += len;
	}
	assert_int_equal(got, sent);

	/* the client has gone */
	close(sv[1]);
	hc.ping_mode = TS_PING_CHUNKED;
	assert_int_equal(ts_hub_write(&hc, ev, len), -1);
	close(sv[0]);
	ts_hub_conn_destroy(&hc);
}

/* Many changes from two threads while the stream is served directly: it is
 * never served by two threads at once, and it ends up with the last line of
 * every log (no change is lost between a round and waiting again). */
struct direct_race {
	struct changes ch;
	struct ts_hub_conn hc;
	atomic_uint got[NLOGS];
	atomic_int inside, overlaps, calls;
};

static void race_direct(void *arg)
{
	struct direct_race *r = arg;
	if (atomic_fetch_add(&r->inside, 1) != 0)
		atomic_fetch_add(&r->overlaps, 1);
	atomic_fetch_add(&r->calls, 1);
	for (unsigned guard = 0; guard < 100 * ROUNDS; guard++) {
		bool ping, gone;
		ts_hub_begin(&r->hc, &ping, &gone);
		for (unsigned i = 0; i < NLOGS; i++)
			atomic_store(&r->got[i], atomic_load(&r->ch.seq[i]));
		/* once it waits again, another change may serve it at once:
		 * this call is done with it */
		atomic_fetch_sub(&r->inside, 1);
		if (ts_hub_wait_again(&r->hc))
			return;
		if (atomic_fetch_add(&r->inside, 1) != 0)
			atomic_fetch_add(&r->overlaps, 1);
	}
	atomic_fetch_sub(&r->inside, 1);
}

static void test_race_direct(void **state)
{
	(void)state;
	static struct direct_race r;
	struct fake f;
	fake_init(&f);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct ts_hub_hangups hs;
	assert_int_equal(ts_hub_hangups_init(&hs), 0);
	assert_int_equal(ts_hub_conn_init(&r.hc, fake_resume, &f), 0);
	assert_int_equal(ts_hub_watch_hangup(&hs, &r.hc, sv[0]), 0);
	r.hc.direct = race_direct;
	r.hc.direct_arg = &r;
	r.hc.ping_mode = TS_PING_CHUNKED;
	atomic_init(&r.inside, 0);
	atomic_init(&r.overlaps, 0);
	atomic_init(&r.calls, 0);
	for (unsigned i = 0; i < NLOGS; i++)
		atomic_init(&r.got[i], 0);
	changes_init(&r.ch, &r.hc);
	bool ping, gone;
	ts_hub_begin(&r.hc, &ping, &gone);
	assert_true(ts_hub_try_suspend(&r.hc, fake_suspend, &f));
	pthread_t w1, w2;
	assert_int_equal(pthread_create(&w1, NULL, writer, &r.ch), 0);
	assert_int_equal(pthread_create(&w2, NULL, writer, &r.ch), 0);
	pthread_join(w1, NULL);
	pthread_join(w2, NULL);
	assert_int_equal(atomic_load(&r.overlaps), 0);
	assert_int_equal(atomic_load(&f.resumes), 0);
	assert_true(r.hc.suspended);
	for (unsigned i = 0; i < NLOGS; i++)
		assert_int_equal(atomic_load(&r.got[i]), 2 * ROUNDS);
	print_message("    %d direct calls for %d changes\n",
		      atomic_load(&r.calls), 2 * ROUNDS * NLOGS);
	changes_destroy(&r.ch);
	ts_hub_unwatch_hangup(&r.hc);
	ts_hub_conn_destroy(&r.hc);
	ts_hub_hangups_destroy(&hs);
	close(sv[0]);
	close(sv[1]);
	sem_destroy(&f.wake);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resumed_once_by_two_logs),
		cmocka_unit_test(test_ping_only_idle),
		cmocka_unit_test(test_ping_written_to_the_socket),
		cmocka_unit_test(test_kick_when_all_ran),
		cmocka_unit_test(test_hangup),
		cmocka_unit_test(test_race_no_lost_no_double_wakeup),
		cmocka_unit_test(test_changed_serves_direct),
		cmocka_unit_test(test_write_framing_and_room),
		cmocka_unit_test(test_race_direct),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
