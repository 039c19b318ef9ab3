/* Unit tests of conn.c's direct path: a waiting plain-HTTP stream served by
 * the thread that saw its log change (the hub's `direct`), over a real
 * loopback TCP connection, with libmicrohttpd's part (its suspend and
 * resume) played by the test.  Written in one chunk with no resume; handed
 * to its reader (one resume, the bytes kept for it) when the socket has no
 * room; handed over when the client has gone; and ended when a write
 * fails. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "conn.h"
#include "logfile.h"

struct fx {
	char dir[64];
	char path[96];
	struct ts_stream_env env;
	struct ts_hub_hangups hs;
	struct ts_log *log;
	struct ts_conn *c;
	int server_fd, client_fd; /* the stream's socket, its client's */
	int resumes;		  /* libmicrohttpd resumes asked for */
};

static void count_resume(void *arg)
{
	struct fx *f = arg;
	f->resumes++;
}

/* A connected loopback pair: *server (the daemon's side), *client. */
static void tcp_pair(int *server, int *client, int sndbuf)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(l >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t al = sizeof(a);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
	*client = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(*client >= 0);
	assert_int_equal(connect(*client, (struct sockaddr *)&a, sizeof(a)), 0);
	*server = accept(l, NULL, NULL);
	assert_true(*server >= 0);
	close(l);
	if (sndbuf)
		assert_int_equal(setsockopt(*server, SOL_SOCKET, SO_SNDBUF,
					    &sndbuf, sizeof(sndbuf)),
				 0);
}

static void append(const char *path, const char *text)
{
	FILE *fp = fopen(path, "a");
	assert_non_null(fp);
	assert_true(fputs(text, fp) >= 0);
	assert_int_equal(fclose(fp), 0);
}

/* A stream of the log from its end, its `retry` sent, waiting suspended
 * (as its reader leaves it) on a socket the hub may write (chunked). */
static struct fx *stream(int sndbuf)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	strcpy(f->dir, "/tmp/ts-conn-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/app.log", f->dir);
	append(f->path, "old\n");
	assert_int_equal(ts_stream_env_init(&f->env, 1024, 1000), 0);
	assert_int_equal(ts_hub_hangups_init(&f->hs), 0);
	f->env.hangups = &f->hs;
	f->log = ts_log_new("app", f->path);
	assert_non_null(f->log);
	assert_int_equal(ts_log_check(f->log), TS_CREATED);
	f->c = ts_conn_new(&f->env, NULL, &f->log, 1, false, NULL, false,
			   false);
	assert_non_null(f->c);
	f->c->hub.resume = count_resume; /* libmicrohttpd's part */
	f->c->hub.arg = f;
	struct ts_start st = { TS_START_END, { 0, 0, false }, 0 };
	assert_int_equal(ts_conn_start(f->c, &st), 0);
	char buf[256];
	ssize_t n = ts_conn_read(f->c, 0, buf, sizeof(buf));
	assert_true(n > 0 && memcmp(buf, "retry: 1000\n", 12) == 0);
	assert_int_equal(f->c->out.len, 0);
	tcp_pair(&f->server_fd, &f->client_fd, sndbuf);
	assert_int_equal(ts_hub_watch_hangup(&f->hs, &f->c->hub, f->server_fd),
			 0);
	pthread_mutex_lock(&f->c->hub.lock);
	f->c->hub.ping_mode = TS_PING_CHUNKED;
	f->c->hub.suspended = true;
	pthread_mutex_unlock(&f->c->hub.lock);
	return f;
}

static void stream_free(struct fx *f)
{
	char cmd[128];
	ts_conn_free(f->c);
	ts_log_free(f->log);
	ts_hub_hangups_destroy(&f->hs);
	ts_stream_env_destroy(&f->env);
	if (f->client_fd >= 0)
		close(f->client_fd);
	close(f->server_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
}

/* What the client has received, within a second: at least `want` bytes
 * (bounded). */
static size_t receive(int fd, char *buf, size_t cap, size_t want)
{
	size_t got = 0;
	for (int i = 0; i < 100 && got < want; i++) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 10) <= 0)
			continue;
		ssize_t n = recv(fd, buf + got, cap - 1 - got, MSG_DONTWAIT);
		if (n > 0)
			got += (size_t)n;
	}
	buf[got] = '\0';
	return got;
}

static bool is_suspended(struct fx *f)
{
	pthread_mutex_lock(&f->c->hub.lock);
	bool s = f->c->hub.suspended;
	pthread_mutex_unlock(&f->c->hub.lock);
	return s;
}

/* The client receives `body` as one chunk, and the stream was never
 * resumed: it waits again, as libmicrohttpd still holds it. */
static void expect_chunk(struct fx *f, const char *body)
{
	char want[256], got[512];
	snprintf(want, sizeof(want), "%zx\r\n%s\r\n", strlen(body), body);
	assert_int_equal(receive(f->client_fd, got, sizeof(got), strlen(want)),
			 strlen(want));
	assert_string_equal(got, want);
	assert_int_equal(f->resumes, 0);
	assert_true(is_suspended(f));
}

static void test_line_written_directly(void **state)
{
	(void)state;
	struct fx *f = stream(0);
	unsigned long long ino = f->log->cur->ino;
	char body[128];
	append(f->path, "l1\nl2\n");
	/* the watcher's look: the change serves the stream on this thread */
	assert_int_equal(ts_log_check(f->log), TS_GROWN);
	snprintf(body, sizeof(body),
		 "id: %llu:7\ndata: l1\n\nid: %llu:10\ndata: l2\n\n", ino, ino);
	expect_chunk(f, body);
	assert_int_equal(atomic_load(&f->env.events_sent), 2);
	/* and a second line is a second chunk */
	append(f->path, "l3\n");
	assert_int_equal(ts_log_check(f->log), TS_GROWN);
	snprintf(body, sizeof(body), "id: %llu:13\ndata: l3\n\n", ino);
	expect_chunk(f, body);
	stream_free(f);
}

static void test_no_room_goes_to_the_reader(void **state)
{
	(void)state;
	/* a send buffer this small leaves the hub no room to write in (a
	 * quarter of it, less a write's overhead): a client that does not
	 * keep up */
	struct fx *f = stream(1024);
	uint64_t ino = f->log->cur->ino;
	append(f->path, "l1\n");
	assert_int_equal(ts_log_check(f->log), TS_GROWN);
	assert_int_equal(f->resumes, 1);
	assert_false(is_suspended(f));
	char got[64];
	assert_int_equal(receive(f->client_fd, got, sizeof(got), 1), 0);
	/* its reader sends what was read, through libmicrohttpd */
	char buf[256], want[128];
	ssize_t n = ts_conn_read(f->c, 0, buf, sizeof(buf));
	snprintf(want, sizeof(want), "id: %llu:7\ndata: l1\n\n",
		 (unsigned long long)ino);
	assert_int_equal(n, (ssize_t)strlen(want));
	assert_memory_equal(buf, want, strlen(want));
	stream_free(f);
}

static void test_client_gone_is_handed_over(void **state)
{
	(void)state;
	struct fx *f = stream(0);
	close(f->client_fd);
	f->client_fd = -1;
	/* the watcher sees the hang-up: the stream is resumed to end */
	struct pollfd p = { f->hs.epfd, POLLIN, 0 };
	assert_int_equal(poll(&p, 1, 1000), 1);
	ts_hub_hangups_run(&f->hs);
	assert_int_equal(f->resumes, 1);
	char buf[64];
	assert_int_equal(ts_conn_read(f->c, 0, buf, sizeof(buf)),
			 MHD_CONTENT_READER_END_WITH_ERROR);
	stream_free(f);
}

static void test_write_failure_ends_the_stream(void **state)
{
	(void)state;
	struct fx *f = stream(0);
	/* the client resets the connection; a line comes before the watcher
	 * has seen the hang-up: the direct write fails, the stream ends */
	struct linger lg = { 1, 0 };
	assert_int_equal(setsockopt(f->client_fd, SOL_SOCKET, SO_LINGER, &lg,
				    sizeof(lg)),
			 0);
	close(f->client_fd);
	f->client_fd = -1;
	struct pollfd p = { f->server_fd, POLLIN, 0 };
	assert_int_equal(poll(&p, 1, 1000), 1); /* the reset has come */
	append(f->path, "l1\n");
	assert_int_equal(ts_log_check(f->log), TS_GROWN);
	assert_int_equal(f->resumes, 1);
	assert_true(f->c->broken);
	char buf[64];
	assert_int_equal(ts_conn_read(f->c, 0, buf, sizeof(buf)),
			 MHD_CONTENT_READER_END_WITH_ERROR);
	stream_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_written_directly),
		cmocka_unit_test(test_no_room_goes_to_the_reader),
		cmocka_unit_test(test_client_gone_is_handed_over),
		cmocka_unit_test(test_write_failure_ends_the_stream),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
