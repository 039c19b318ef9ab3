/* test_config.c: unit tests of src/config.c, on golden files under
 * tests/data/config-*.conf and on in-memory text.  Run from the build
 * directory with $srcdir pointing at the source tree (automake does this). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* By path, not "config.h": with -I. first on automake's command line the
 * autoconf-generated config.h in the build directory would win. */
#include "config.h"

#define FAILF(...) fail_msg(__VA_ARGS__)

static void data_path(char *buf, size_t len, const char *name)
{
	const char *srcdir = getenv("srcdir");
	int n;

	if (srcdir == NULL || srcdir[0] == '\0')
		srcdir = ".";
	n = snprintf(buf, len, "%s/tests/data/%s", srcdir, name);
	assert_true(n > 0 && (size_t)n < len);
}

static int parse_str(struct ts_config *c, const char *text, char *err,
		     size_t errlen)
{
	return ts_config_parse(c, text, strlen(text), "t.conf", err, errlen);
}

/* Every message must be a single line. */
static void assert_one_line(const char *err)
{
	for (const char *p = err; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20)
			FAILF("control byte 0x%02x in error '%s'",
			      (unsigned char)*p, err);
	}
}

static void assert_addr(const struct sockaddr_storage *ss, socklen_t len,
			int family, const char *addr, unsigned port)
{
	char buf[INET6_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, family);
	if (family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;

		assert_int_equal(len, sizeof(*sin));
		assert_non_null(
			inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
		assert_int_equal(ntohs(sin->sin_port), port);
	} else {
		const struct sockaddr_in6 *sin6 = (const void *)ss;

		assert_int_equal(len, sizeof(*sin6));
		assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, buf,
					  sizeof(buf)));
		assert_int_equal(ntohs(sin6->sin6_port), port);
	}
	assert_string_equal(buf, addr);
}

/* ------------------------------------------------------------- defaults */

static void test_defaults(void **state)
{
	struct ts_config c;

	(void)state;
	assert_int_equal(ts_config_init(&c), 0);
	assert_string_equal(c.listen, "127.0.0.1:8080");
	assert_addr(&c.listen_addr, c.listen_addrlen, AF_INET, "127.0.0.1",
		    8080);
	assert_null(c.www);
	assert_int_equal(c.heartbeat, 15);
	assert_int_equal(c.retry_ms, 2000);
	assert_int_equal(c.max_clients, 10000);
	assert_int_equal(c.max_line, 65536);
	assert_int_equal(c.conn_memory, 6144);
	assert_int_equal(c.backlog_default, 0);
	assert_null(c.cors_origin);
	assert_string_equal(c.frame_ancestors, "'self'");
	assert_null(c.token);
	assert_null(c.tls_cert);
	assert_null(c.tls_key);
	assert_null(c.user);
	assert_null(c.logs);
	assert_int_equal(c.nlogs, 0);
	ts_config_free(&c);
}

static void test_free_zeroed_and_reinit(void **state)
{
	struct ts_config c, zero;
	char err[TS_ERR_MAX];

	(void)state;
	memset(&c, 0, sizeof(c));
	memset(&zero, 0, sizeof(zero));
	ts_config_free(&c);
	ts_config_free(NULL);
	assert_memory_equal(&c, &zero, sizeof(c));

	assert_int_equal(ts_config_init(&c), 0);
	assert_int_equal(parse_str(&c,
				   "[server]\nwww = /w\n[log a]\n"
				   "path = /a\n",
				   err, sizeof(err)),
			 0);
	ts_config_free(&c);
	assert_memory_equal(&c, &zero, sizeof(c));
	ts_config_free(&c); /* twice is harmless */

	assert_int_equal(ts_config_init(&c), 0);
	assert_int_equal(c.nlogs, 0);
	assert_string_equal(c.frame_ancestors, "'self'");
	ts_config_free(&c);
}

/* ----------------------------------------------------------- good files */

static void test_good_file(void **state)
{
	struct ts_config c;
	char path[4096], err[TS_ERR_MAX] = "";
	char raw[4096];
	FILE *f;
	size_t n;

	(void)state;
	data_path(path, sizeof(path), "config-good.conf");

	/* The fixture must really hold CRLF: a checkout that normalised line
	 * endings would silently stop testing them. */
	f = fopen(path, "rb");
	assert_non_null(f);
	n = fread(raw, 1, sizeof(raw) - 1, f);
	assert_int_equal(fclose(f), 0);
	raw[n] = '\0';
	assert_non_null(strstr(raw, "[server]\r\n"));

	assert_int_equal(ts_config_init(&c), 0);
	if (ts_config_load(&c, path, err, sizeof(err)) != 0)
		FAILF("load failed: %s", err);
	assert_string_equal(c.listen, "[::1]:9090");
	assert_addr(&c.listen_addr, c.listen_addrlen, AF_INET6, "::1", 9090);
	assert_string_equal(c.www, "/srv/tailsse/www#not-a-comment");
	assert_int_equal(c.heartbeat, 5);
	assert_int_equal(c.retry_ms, 0);
	assert_int_equal(c.max_clients, 1000000);
	assert_int_equal(c.max_line, 16);
	assert_int_equal(c.backlog_default, 100);
	assert_int_equal(c.conn_memory, 8192);
	assert_string_equal(c.frame_ancestors, "'self' https://embed.example");
	assert_string_equal(c.user, "tailsse");
	/* Set, then emptied: accepted, and off. */
	assert_null(c.cors_origin);
	assert_null(c.token);
	assert_null(c.tls_cert);
	assert_null(c.tls_key);
	assert_int_equal(c.nlogs, 2);
	assert_string_equal(c.logs[0].name, "syslog");
	assert_string_equal(c.logs[0].path, "/var/log/syslog");
	assert_string_equal(c.logs[1].name, "app.err_1-X");
	assert_string_equal(c.logs[1].path, "/var/log/a#b");
	ts_config_free(&c);
}

/* The sample in the contract parses to the documented defaults. */
static void test_contract_sample(void **state)
{
	struct ts_config c;
	char path[4096], err[TS_ERR_MAX] = "";

	(void)state;
	data_path(path, sizeof(path), "config-contract.conf");
	assert_int_equal(ts_config_init(&c), 0);
	c.token = strdup("overwritten by 'token ='");
	assert_non_null(c.token);
	if (ts_config_load(&c, path, err, sizeof(err)) != 0)
		FAILF("load failed: %s", err);
	assert_string_equal(c.listen, "127.0.0.1:8080");
	assert_addr(&c.listen_addr, c.listen_addrlen, AF_INET, "127.0.0.1",
		    8080);
	assert_string_equal(c.www, "/usr/local/share/tailsse/www");
	assert_int_equal(c.heartbeat, 15);
	assert_int_equal(c.retry_ms, 2000);
	assert_int_equal(c.max_clients, 10000);
	assert_int_equal(c.max_line, 65536);
	assert_int_equal(c.backlog_default, 0);
	assert_null(c.cors_origin);
	assert_string_equal(c.frame_ancestors, "'self'");
	assert_null(c.token);
	assert_null(c.tls_cert);
	assert_null(c.tls_key);
	assert_null(c.user);
	assert_int_equal(c.nlogs, 2);
	assert_string_equal(c.logs[0].name, "syslog");
	assert_string_equal(c.logs[1].name, "nginx");
	assert_string_equal(c.logs[1].path, "/var/log/nginx/access.log");
	ts_config_free(&c);
}

static void test_empty_values_and_later_wins(void **state)
{
	struct ts_config c;
	char err[TS_ERR_MAX] = "";

	(void)state;
	assert_int_equal(ts_config_init(&c), 0);
	assert_int_equal(parse_str(&c,
				   "[server]\n"
				   "cors_origin = *\n"
				   "cors_origin =\n"
				   "token = a\n"
				   "token =     # off again\n"
				   "www = /w\n"
				   "www =\n"
				   "tls_cert = /c\n"
				   "tls_cert =\n"
				   "frame_ancestors = a\n"
				   "frame_ancestors = b\n"
				   "user = nobody\n"
				   "user =  # root again\n"
				   "listen = :1\n"
				   "listen = 10.0.0.1:2\n"
				   "max_line = 100\n"
				   "[log a]\n"
				   "path = /one\n"
				   "path = /two\n",
				   err, sizeof(err)),
			 0);
	assert_null(c.cors_origin);
	assert_null(c.token);
	assert_null(c.www);
	assert_null(c.tls_cert);
	assert_string_equal(c.frame_ancestors, "b");
	assert_null(c.user);
	assert_string_equal(c.listen, "10.0.0.1:2");
	assert_addr(&c.listen_addr, c.listen_addrlen, AF_INET, "10.0.0.1", 2);
	assert_int_equal(c.max_line, 100);
	assert_int_equal(c.nlogs, 1);
	assert_string_equal(c.logs[0].path, "/two");
	ts_config_free(&c);
}

/* Syntax corners on in-memory text: each row parses, then one check. */
static void test_syntax_corners(void **state)
{
	static const struct {
		const char *text;
		const char *www;      /* expected c.www */
		const char *log_name; /* expected logs[0], or NULL */
		const char *log_path;
	} rows[] = {
		{ "", NULL, NULL, NULL },
		{ "\n\n  \t\n", NULL, NULL, NULL },
		{ "# only a comment", NULL, NULL, NULL },
		{ "[server]\nwww = x", "x", NULL, NULL }, /* no final \n */
		{ "\xEF\xBB\xBF[server]\nwww = bom\n", "bom", NULL, NULL },
		{ "[server]\r\nwww = crlf\r\n", "crlf", NULL, NULL },
		{ "[ server ]\n\twww\t=\tt1\t\n", "t1", NULL, NULL },
		{ "[server] # c\nwww=a#b # c\n", "a#b", NULL, NULL },
		{ "[server]\nwww = a = b\n", "a = b", NULL, NULL },
		{ "[server]\nwww = #x\n", NULL, NULL, NULL },
		{ "[server]\nwww = 'q' \"q\"\n", "'q' \"q\"", NULL, NULL },
		{ "[log  n  ]\npath = /p q\n", NULL, "n", "/p q" },
		{ "[log n]\npath = /a #b\n", NULL, "n", "/a" },
		{ "[log n]\n  path = C:\\x=y\n", NULL, "n", "C:\\x=y" },
		{ "[log ...]\npath = /x\n", NULL, "...", "/x" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct ts_config c;
		char err[TS_ERR_MAX] = "";
		int rc;

		assert_int_equal(ts_config_init(&c), 0);
		rc = parse_str(&c, rows[i].text, err, sizeof(err));
		if (rc != 0)
			FAILF("row %zu: rc %d: %s", i, rc, err);
		if (rows[i].www == NULL)
			assert_null(c.www);
		else
			assert_string_equal(c.www, rows[i].www);
		if (rows[i].log_name == NULL) {
			assert_int_equal(c.nlogs, 0);
		} else {
			assert_int_equal(c.nlogs, 1);
			assert_string_equal(c.logs[0].name, rows[i].log_name);
			assert_string_equal(c.logs[0].path, rows[i].log_path);
		}
		ts_config_free(&c);
	}
}

/* ------------------------------------------------------------ bad files */

static void test_bad_files(void **state)
{
	static const struct {
		const char *file;
		const char *msg; /* everything after the path */
	} rows[] = {
		{ "config-bad-key.conf", ":7: unknown key 'foo' in [server]" },
		{ "config-bad-section.conf", ":6: unknown section '[foo]'" },
		{ "config-bad-noeq.conf", ":5: expected 'key = value'" },
		{ "config-bad-name.conf",
		  ":7: invalid log name 'a b' (allowed: A-Z a-z 0-9 . _ -, "
		  "1 to 64 characters)" },
		{ "config-bad-dup-log.conf", ":9: duplicate log name 'x'" },
		{ "config-bad-no-path.conf", ":5: log 'x' has no path" },
		{ "config-bad-no-path-eof.conf", ":8: log 'z' has no path" },
		{ "config-bad-int.conf",
		  ":6: heartbeat: expected an integer from 1 to 86400, "
		  "got 'abc'" },
		{ "config-bad-listen.conf",
		  ":4: listen: expected ADDR:PORT with a numeric address, "
		  "got 'example.com:80'" },
		{ "config-bad-outside.conf",
		  ":3: key 'heartbeat' is outside any section (put it under "
		  "[server] or [log NAME])" },
		{ "config-bad-log-key.conf",
		  ":7: unknown key 'file' in [log x]" },
		{ "config-bad-header.conf",
		  ":5: expected ']' at the end of section header '[log x'" },
		{ "config-bad-empty-path.conf", ":6: path: must not be empty" },
		{ "config-bad-crlf.conf", ":5: unknown key 'foo' in [server]" },
		{ "config-bad-nul.conf",
		  ":3: NUL byte in the file (is it a text file?)" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct ts_config c;
		char path[4096], want[8192], err[TS_ERR_MAX] = "";
		int rc;

		data_path(path, sizeof(path), rows[i].file);
		snprintf(want, sizeof(want), "%s%s", path, rows[i].msg);
		assert_int_equal(ts_config_init(&c), 0);
		rc = ts_config_load(&c, path, err, sizeof(err));
		if (rc != -EINVAL)
			FAILF("%s: rc %d, err '%s'", rows[i].file, rc, err);
		assert_string_equal(err, want);
		assert_one_line(err);
		ts_config_free(&c); /* LSan: nothing leaks on the error path */
	}
}

/* Errors on in-memory text, for cases not worth a golden file. */
static void test_bad_text(void **state)
{
	static const struct {
		const char *text;
		const char *msg;
	} rows[] = {
		{ "[log]\npath = /x\n",
		  "t.conf:1: section [log] needs a name, e.g. [log syslog]" },
		{ "[logx]\n", "t.conf:1: unknown section '[logx]'" },
		{ "[]\n", "t.conf:1: unknown section '[]'" },
		{ "[\n", "t.conf:1: expected ']' at the end of section header "
			 "'['" },
		{ "[Server]\n", "t.conf:1: unknown section '[Server]'" },
		{ "[log ..]\npath = /x\n",
		  "t.conf:1: invalid log name '..' ('.' and '..' cannot be "
		  "used: a URL path would collapse them)" },
		{ "[log .]\n",
		  "t.conf:1: invalid log name '.' ('.' and '..' cannot be "
		  "used: a URL path would collapse them)" },
		{ "[log a/b]\n",
		  "t.conf:1: invalid log name 'a/b' (allowed: A-Z a-z 0-9 . _ "
		  "-, 1 to 64 characters)" },
		{ "[log "
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n",
		  "t.conf:1: invalid log name "
		  "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' "
		  "(allowed: A-Z a-z 0-9 . _ -, 1 to 64 characters)" },
		{ "[server]\n= x\n", "t.conf:2: expected 'key = value'" },
		{ "#[server]\ntoken = x\n",
		  "t.conf:2: key 'token' is outside any section (put it under "
		  "[server] or [log NAME])" },
		{ "[server]\nToken = x\n", "t.conf:2: unknown key 'Token' in "
					   "[server]" },
		{ "[server]\npath = /x\n", "t.conf:2: unknown key 'path' in "
					   "[server]" },
		{ "[log a]\nlisten = :80\n",
		  "t.conf:2: unknown key 'listen' in "
		  "[log a]" },
		{ "[server]\nframe_ancestors =\n",
		  "t.conf:2: frame_ancestors: must not be empty (use 'none' to "
		  "forbid embedding)" },
		{ "[server]\nlisten =\n",
		  "t.conf:2: listen: missing port: expected ADDR:PORT, "
		  "[IPV6]:PORT or :PORT, got ''" },
		{ "[server]\nlisten = ::1:80\n",
		  "t.conf:2: listen: an IPv6 address needs brackets, e.g. "
		  "[::1]:8080, got '::1:80'" },
		{ "[server]\nheartbeat = 1\0\n",
		  "t.conf:2: NUL byte in the file (is it a text file?)" },
		{ "\0", "t.conf:1: NUL byte in the file (is it a text file?)" },
		{ "[server]\n# x\0y\n",
		  "t.conf:2: NUL byte in the file (is it a text file?)" },
		{ "[server]\nwww = a\x1b[2Jb c\rd\n=",
		  "t.conf:3: expected 'key = value'" },
		{ "[server]\nx\x1b[31m = 1\n",
		  "t.conf:2: unknown key 'x?[31m' in [server]" },
		{ "[log a]\n[log b]\npath = /b\n",
		  "t.conf:1: log 'a' has no path" },
		{ "[log a]\npath = /a\nuser = nobody\n",
		  "t.conf:3: unknown key 'user' in [log a]" },
	};
	/* Lengths, as some rows hold a NUL. */
	static const size_t lens[] = {
		0, 0,
		0, 0,
		0, 0,
		0, 0,
		0, 0,
		0, 0,
		0, 0,
		0, 0,
		0, sizeof("[server]\nheartbeat = 1\0\n") - 1,
		1, sizeof("[server]\n# x\0y\n") - 1,
		0, 0,
		0, 0,
	};

	(void)state;
	assert_int_equal(sizeof(lens) / sizeof(lens[0]),
			 sizeof(rows) / sizeof(rows[0]));
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct ts_config c;
		char err[TS_ERR_MAX] = "";
		size_t len = lens[i] ? lens[i] : strlen(rows[i].text);
		int rc;

		assert_int_equal(ts_config_init(&c), 0);
		rc = ts_config_parse(&c, rows[i].text, len, "t.conf", err,
				     sizeof(err));
		if (rc != -EINVAL)
			FAILF("row %zu: rc %d, err '%s'", i, rc, err);
		assert_string_equal(err, rows[i].msg);
		assert_one_line(err);
		ts_config_free(&c);
	}
}

/* ---------------------------------------------- keys of missing features */

/* tls_cert and tls_key: both or neither; empty means off; a comment is not
 * a value; the last value wins. */
static void test_tls_keys(void **state)
{
	static const struct {
		const char *text;
		const char *msg; /* NULL: accepted */
	} rows[] = {
		{ "[server]\ntls_cert =\ntls_key =\n", NULL },
		{ "[server]\ntls_cert = /c.pem\ntls_key = /k.pem\n", NULL },
		{ "[server]\ntls_cert = /c.pem\n",
		  "t.conf:2: tls_cert is set without tls_key: HTTPS needs both" },
		{ "[server]\ntls_key = /k.pem   # no cert\n",
		  "t.conf:2: tls_key is set without tls_cert: HTTPS needs both" },
		{ "[server]\ntls_cert = /c.pem\ntls_key = /k.pem\n"
		  "tls_key =\n",
		  "t.conf:2: tls_cert is set without tls_key: HTTPS needs both" },
		/* an error in the syntax is reported first, where it is */
		{ "[server]\ntls_cert = t\nbogus\n",
		  "t.conf:3: expected 'key = value'" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct ts_config c;
		char err[TS_ERR_MAX] = "";
		int rc;

		assert_int_equal(ts_config_init(&c), 0);
		rc = parse_str(&c, rows[i].text, err, sizeof(err));
		if (rows[i].msg == NULL) {
			if (rc != 0)
				FAILF("row %zu: rc %d: %s", i, rc, err);
		} else {
			if (rc != -EINVAL)
				FAILF("row %zu: rc %d, err '%s'", i, rc, err);
			assert_string_equal(err, rows[i].msg);
			assert_one_line(err);
		}
		ts_config_free(&c);
	}
}

/* token, token_file and cors_origin keep their values; both token keys
 * at once are refused; token_file is read at start, its first line. */
static void test_token_and_cors(void **state)
{
	(void)state;
	struct ts_config c;
	char err[TS_ERR_MAX] = "";
	assert_int_equal(ts_config_init(&c), 0);
	assert_int_equal(parse_str(&c,
				   "[server]\ntoken = s3cret\n"
				   "cors_origin = https://a.example "
				   "https://b.example\n",
				   err, sizeof(err)),
			 0);
	assert_string_equal(c.token, "s3cret");
	assert_string_equal(c.cors_origin,
			    "https://a.example https://b.example");
	ts_config_free(&c);

	assert_int_equal(ts_config_init(&c), 0);
	assert_int_equal(parse_str(&c,
				   "[server]\ntoken = a\n"
				   "token_file = /x\n",
				   err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "t.conf:3: token and token_file are both "
				 "set: keep one");
	assert_one_line(err);
	ts_config_free(&c);

	char path[] = "/tmp/ts-token-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "t0ken\nsecond\n", 13), 13);
	close(fd);
	char text[128];
	snprintf(text, sizeof(text), "[server]\ntoken_file = %s\n", path);
	assert_int_equal(ts_config_init(&c), 0);
	assert_int_equal(parse_str(&c, text, err, sizeof(err)), 0);
	assert_null(c.token);
	assert_int_equal(ts_config_read_token(&c, err, sizeof(err)), 0);
	assert_string_equal(c.token, "t0ken");
	ts_config_free(&c);
	/* an empty first line is no token */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "\n", 1), 1);
	close(fd);
	assert_int_equal(ts_config_init(&c), 0);
	assert_int_equal(parse_str(&c, text, err, sizeof(err)), 0);
	assert_int_equal(ts_config_read_token(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "token_file = "));
	ts_config_free(&c);
	unlink(path);
}

/* --------------------------------------------------------------- ranges */

static unsigned long field(const struct ts_config *c, const char *key)
{
	if (strcmp(key, "heartbeat") == 0)
		return c->heartbeat;
	if (strcmp(key, "retry") == 0)
		return c->retry_ms;
	if (strcmp(key, "max_clients") == 0)
		return c->max_clients;
	if (strcmp(key, "max_line") == 0)
		return c->max_line;
	if (strcmp(key, "backlog_default") == 0)
		return c->backlog_default;
	if (strcmp(key, "conn_memory") == 0)
		return c->conn_memory;
	fail_msg("no field %s", key);
	return 0;
}

static void test_integer_ranges(void **state)
{
	static const struct {
		const char *key;
		const char *value;
		long want; /* -1: rejected */
		const char *range;
	} rows[] = {
		{ "heartbeat", "0", -1, "1 to 86400" },
		{ "heartbeat", "1", 1, NULL },
		{ "heartbeat", "86400", 86400, NULL },
		{ "heartbeat", "86401", -1, "1 to 86400" },
		{ "retry", "0", 0, NULL },
		{ "retry", "3600000", 3600000, NULL },
		{ "retry", "3600001", -1, "0 to 3600000" },
		{ "max_clients", "0", -1, "1 to 1000000" },
		{ "max_clients", "1", 1, NULL },
		{ "max_clients", "1000000", 1000000, NULL },
		{ "max_clients", "1000001", -1, "1 to 1000000" },
		{ "max_line", "15", -1, "16 to 16777216" },
		{ "max_line", "16", 16, NULL },
		{ "max_line", "16777216", 16777216, NULL },
		{ "max_line", "16777217", -1, "16 to 16777216" },
		{ "backlog_default", "0", 0, NULL },
		{ "backlog_default", "1000000", 1000000, NULL },
		{ "backlog_default", "1000001", -1, "0 to 1000000" },
		{ "conn_memory", "4095", -1, "4096 to 16777216" },
		{ "conn_memory", "4096", 4096, NULL },
		{ "conn_memory", "262144", 262144, NULL },
		{ "conn_memory", "16777217", -1, "4096 to 16777216" },
		{ "heartbeat", "007", 7, NULL },
		{ "heartbeat", "  42   # spaces and comment", 42, NULL },
		{ "heartbeat", "", -1, "1 to 86400" },
		{ "heartbeat", "abc", -1, "1 to 86400" },
		{ "heartbeat", "-1", -1, "1 to 86400" },
		{ "heartbeat", "+1", -1, "1 to 86400" },
		{ "heartbeat", "1x", -1, "1 to 86400" },
		{ "heartbeat", "1 2", -1, "1 to 86400" },
		{ "heartbeat", "1.5", -1, "1 to 86400" },
		{ "heartbeat", "0x10", -1, "1 to 86400" },
		{ "heartbeat", "1e3", -1, "1 to 86400" },
		{ "retry", "99999999999999999999999999999999", -1,
		  "0 to 3600000" },
		{ "retry", "18446744073709551617", -1, "0 to 3600000" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct ts_config c, def;
		char text[256], want[512], err[TS_ERR_MAX] = "";
		const char *v = rows[i].value;
		int rc;

		snprintf(text, sizeof(text), "[server]\n%s = %s\n", rows[i].key,
			 v);
		assert_int_equal(ts_config_init(&c), 0);
		assert_int_equal(ts_config_init(&def), 0);
		rc = parse_str(&c, text, err, sizeof(err));
		if (rows[i].want >= 0) {
			if (rc != 0)
				FAILF("row %zu: rc %d: %s", i, rc, err);
			assert_int_equal(field(&c, rows[i].key), rows[i].want);
		} else {
			/* The echoed value is trimmed and without comment;
			 * rows that need either are accepted rows. */
			snprintf(want, sizeof(want),
				 "t.conf:2: %s: expected an integer from %s, "
				 "got '%s'",
				 rows[i].key, rows[i].range, v);
			if (rc != -EINVAL)
				FAILF("row %zu: rc %d", i, rc);
			assert_string_equal(err, want);
			assert_int_equal(field(&c, rows[i].key),
					 field(&def, rows[i].key));
		}
		ts_config_free(&c);
		ts_config_free(&def);
	}
}

/* --------------------------------------------------------------- listen */

static void test_listen(void **state)
{
	static const struct {
		const char *in;
		int family;	  /* 0: rejected */
		const char *addr; /* or the expected message */
		unsigned port;
	} rows[] = {
		{ "127.0.0.1:8080", AF_INET, "127.0.0.1", 8080 },
		{ "0.0.0.0:1", AF_INET, "0.0.0.0", 1 },
		{ "192.168.10.20:65535", AF_INET, "192.168.10.20", 65535 },
		{ "localhost:8080", AF_INET, "127.0.0.1", 8080 },
		{ "LocalHost:81", AF_INET, "127.0.0.1", 81 },
		{ "[::1]:8443", AF_INET6, "::1", 8443 },
		{ "[::]:80", AF_INET6, "::", 80 },
		{ "[2001:db8::2:1]:9000", AF_INET6, "2001:db8::2:1", 9000 },
		{ "[::ffff:10.1.2.3]:9", AF_INET6, "::ffff:10.1.2.3", 9 },
		{ ":8080", AF_INET6, "::", 8080 },
		{ ":00080", AF_INET6, "::", 80 },
		{ "", 0,
		  "listen: missing port: expected ADDR:PORT, "
		  "[IPV6]:PORT or :PORT, got ''",
		  0 },
		{ "127.0.0.1", 0,
		  "listen: missing port: expected ADDR:PORT, "
		  "[IPV6]:PORT or :PORT, got '127.0.0.1'",
		  0 },
		{ "127.0.0.1:", 0,
		  "listen: port must be an integer from 1 to "
		  "65535, got '127.0.0.1:'",
		  0 },
		{ "127.0.0.1:0", 0,
		  "listen: port must be an integer from 1 to "
		  "65535, got '127.0.0.1:0'",
		  0 },
		{ "127.0.0.1:65536", 0,
		  "listen: port must be an integer from "
		  "1 to 65535, got '127.0.0.1:65536'",
		  0 },
		{ "127.0.0.1:-1", 0,
		  "listen: port must be an integer from 1 "
		  "to 65535, got '127.0.0.1:-1'",
		  0 },
		{ "127.0.0.1:80x", 0,
		  "listen: port must be an integer from 1 "
		  "to 65535, got '127.0.0.1:80x'",
		  0 },
		{ ":", 0,
		  "listen: port must be an integer from 1 to 65535, "
		  "got ':'",
		  0 },
		{ "example.com:80", 0,
		  "listen: expected ADDR:PORT with a "
		  "numeric address, got 'example.com:80'",
		  0 },
		{ "1.2.3:80", 0,
		  "listen: expected ADDR:PORT with a numeric "
		  "address, got '1.2.3:80'",
		  0 },
		{ "256.1.1.1:80", 0,
		  "listen: expected ADDR:PORT with a "
		  "numeric address, got '256.1.1.1:80'",
		  0 },
		{ "::1:80", 0,
		  "listen: an IPv6 address needs brackets, e.g. "
		  "[::1]:8080, got '::1:80'",
		  0 },
		{ "[::1]", 0, "listen: expected [IPV6]:PORT, got '[::1]'", 0 },
		{ "[::1]80", 0, "listen: expected [IPV6]:PORT, got '[::1]80'",
		  0 },
		{ "[::1:80", 0, "listen: expected [IPV6]:PORT, got '[::1:80'",
		  0 },
		{ "[1.2.3.4]:80", 0,
		  "listen: expected ADDR:PORT with a "
		  "numeric address, got '[1.2.3.4]:80'",
		  0 },
		{ "[localhost]:80", 0,
		  "listen: expected ADDR:PORT with a "
		  "numeric address, got '[localhost]:80'",
		  0 },
		{ "[fe80::1%eth0]:80", 0,
		  "listen: expected ADDR:PORT with a "
		  "numeric address, got "
		  "'[fe80::1%eth0]:80'",
		  0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sockaddr_storage ss, before;
		socklen_t len = 123;
		char err[TS_ERR_MAX] = "";
		int rc;

		memset(&ss, 0xa5, sizeof(ss));
		before = ss;
		rc = ts_config_parse_listen(rows[i].in, &ss, &len, err,
					    sizeof(err));
		if (rows[i].family != 0) {
			if (rc != 0)
				FAILF("'%s': rc %d: %s", rows[i].in, rc, err);
			assert_addr(&ss, len, rows[i].family, rows[i].addr,
				    rows[i].port);
		} else {
			if (rc != -EINVAL)
				FAILF("'%s': rc %d", rows[i].in, rc);
			assert_string_equal(err, rows[i].addr);
			/* A failed parse leaves the output alone. */
			assert_int_equal(len, 123);
			assert_memory_equal(&ss, &before, sizeof(ss));
		}
	}
}

/* -------------------------------------------------------- command line */

static void test_add_log_arg(void **state)
{
	static const char long_base[] =
		"/var/log/"
		"0123456789012345678901234567890123456789"
		"0123456789012345678901234567890123456789.log";
	static const struct {
		const char *arg;
		const char *name; /* NULL: rejected */
		const char *path; /* or the expected message */
	} rows[] = {
		{ "syslog=/var/log/syslog", "syslog", "/var/log/syslog" },
		{ "a.b_c-D=rel/x=y", "a.b_c-D", "rel/x=y" },
		{ "/var/log/nginx/access.log", "access.log",
		  "/var/log/nginx/access.log" },
		{ "access.log", "access.log", "access.log" },
		{ "/tmp/a=b.log", "a_b.log", "/tmp/a=b.log" },
		{ "a b=c", "a_b_c", "a b=c" },
		{ "=x", "_x", "=x" },
		{ "name=", "name_", "name=" },
		{ "/x/weird name@$!.log", "weird_name___.log",
		  "/x/weird name@$!.log" },
		{ "/x/caf\xc3\xa9-\xe2\x82\xac.log", "caf_-_.log",
		  "/x/caf\xc3\xa9-\xe2\x82\xac.log" },
		{ "/x/...", "...", "/x/..." },
		{ long_base,
		  "0123456789012345678901234567890123456789012345678901234567890123",
		  long_base },
		{ "dir/", NULL,
		  "cannot derive a log name from 'dir/' "
		  "(give one: NAME=PATH)" },
		{ "/", NULL,
		  "cannot derive a log name from '/' "
		  "(give one: NAME=PATH)" },
		{ "", NULL,
		  "cannot derive a log name from '' "
		  "(give one: NAME=PATH)" },
		{ "/var/log/..", NULL,
		  "cannot derive a log name from "
		  "'/var/log/..' (give one: NAME=PATH)" },
		{ ".", NULL,
		  "cannot derive a log name from '.' "
		  "(give one: NAME=PATH)" },
		{ "a\nb/", NULL,
		  "cannot derive a log name from 'a?b/' "
		  "(give one: NAME=PATH)" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct ts_config c;
		char err[TS_ERR_MAX] = "";
		int rc;

		assert_int_equal(ts_config_init(&c), 0);
		rc = ts_config_add_log_arg(&c, rows[i].arg, err, sizeof(err));
		if (rows[i].name != NULL) {
			if (rc != 0)
				FAILF("'%s': rc %d: %s", rows[i].arg, rc, err);
			assert_int_equal(c.nlogs, 1);
			assert_string_equal(c.logs[0].name, rows[i].name);
			assert_string_equal(c.logs[0].path, rows[i].path);
			assert_true(
				ts_config_valid_name(c.logs[0].name,
						     strlen(c.logs[0].name)));
		} else {
			if (rc != -EINVAL)
				FAILF("'%s': rc %d", rows[i].arg, rc);
			assert_string_equal(err, rows[i].path);
			assert_one_line(err);
			assert_int_equal(c.nlogs, 0);
		}
		ts_config_free(&c);
	}
}

static void test_add_log_arg_duplicates(void **state)
{
	struct ts_config c;
	char path[4096], err[TS_ERR_MAX] = "";

	(void)state;
	data_path(path, sizeof(path), "config-contract.conf");
	assert_int_equal(ts_config_init(&c), 0);
	assert_int_equal(ts_config_load(&c, path, err, sizeof(err)), 0);
	assert_int_equal(c.nlogs, 2);

	/* Against a log of the file, in both forms. */
	assert_int_equal(ts_config_add_log_arg(&c, "syslog=/other", err,
					       sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "duplicate log name 'syslog'");
	assert_int_equal(ts_config_add_log_arg(&c, "/elsewhere/syslog", err,
					       sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "duplicate log name 'syslog'");

	/* Command-line logs come after the file's, in order. */
	assert_int_equal(ts_config_add_log_arg(&c, "/var/log/auth.log", err,
					       sizeof(err)),
			 0);
	assert_int_equal(ts_config_add_log_arg(&c, "k=/var/log/kern.log", err,
					       sizeof(err)),
			 0);
	assert_int_equal(ts_config_add_log_arg(&c, "/x/k", err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "duplicate log name 'k'");
	assert_int_equal(ts_config_add_log_arg(&c, "auth.log=/y", err,
					       sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "duplicate log name 'auth.log'");

	assert_int_equal(c.nlogs, 4);
	assert_string_equal(c.logs[0].name, "syslog");
	assert_string_equal(c.logs[0].path, "/var/log/syslog");
	assert_string_equal(c.logs[1].name, "nginx");
	assert_string_equal(c.logs[2].name, "auth.log");
	assert_string_equal(c.logs[2].path, "/var/log/auth.log");
	assert_string_equal(c.logs[3].name, "k");
	assert_string_equal(c.logs[3].path, "/var/log/kern.log");
	ts_config_free(&c);
}

/* ---------------------------------------------------------------- names */

static void test_valid_name(void **state)
{
	static const struct {
		const char *s;
		size_t len; /* 0: strlen */
		bool ok;
	} rows[] = {
		{ "a", 0, true },
		{ "Az09._-", 0, true },
		{ "...", 0, true },
		{ ".hidden", 0, true },
		{ "a..", 0, true },
		{ "0123456789012345678901234567890123456789012345678901234567890123",
		  0, true },
		{ "01234567890123456789012345678901234567890123456789012345678901234",
		  0, false },
		{ "", 0, false },
		{ ".", 0, false },
		{ "..", 0, false },
		{ "a b", 0, false },
		{ "a/b", 0, false },
		{ "a=b", 0, false },
		{ "a%2e", 0, false },
		{ "caf\xc3\xa9", 0, false },
		{ "ab/", 2, true }, /* only len bytes count */
		{ "..x", 2, false },
	};

	(void)state;
	assert_false(ts_config_valid_name(NULL, 3));
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t len = rows[i].len ? rows[i].len : strlen(rows[i].s);

		if (ts_config_valid_name(rows[i].s, len) != rows[i].ok)
			FAILF("'%s' (len %zu): expected %s", rows[i].s, len,
			      rows[i].ok ? "valid" : "invalid");
	}
}

/* ----------------------------------------------------------------- load */

static void test_load_missing_file(void **state)
{
	struct ts_config c;
	char path[4096], want[8192], err[TS_ERR_MAX] = "";

	(void)state;
	data_path(path, sizeof(path), "config-does-not-exist.conf");
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	assert_int_equal(ts_config_init(&c), 0);
	assert_int_equal(ts_config_load(&c, path, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, want);
	assert_int_equal(c.heartbeat, 15);
	ts_config_free(&c);
}

static void test_load_directory(void **state)
{
	struct ts_config c;
	char path[4096], want[8192], err[TS_ERR_MAX] = "";

	(void)state;
	data_path(path, sizeof(path), "");
	snprintf(want, sizeof(want), "%s: Is a directory", path);
	assert_int_equal(ts_config_init(&c), 0);
	assert_int_equal(ts_config_load(&c, path, err, sizeof(err)), -EISDIR);
	assert_string_equal(err, want);
	ts_config_free(&c);
}

/* Write `size` bytes of comment lines ending in a valid key to a temp file. */
static void write_big(char *tmpl, size_t size)
{
	static const char tail[] = "[server]\nheartbeat = 9\n";
	size_t fill;
	FILE *f;
	int fd;

	assert_true(size > sizeof(tail));
	fill = size - (sizeof(tail) - 1);
	fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	for (size_t i = 0; i < fill; i++) {
		/* A newline ends every comment, including the last one. */
		int ch = (i % 64 == 63 || i == fill - 1) ? '\n' : '#';

		assert_int_not_equal(fputc(ch, f), EOF);
	}
	assert_int_equal(fputs(tail, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void test_load_size_limit(void **state)
{
	static const size_t sizes[] = { 1024 * 1024, 1024 * 1024 + 1 };

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct ts_config c;
		char tmpl[] = "/tmp/tailsse-test-config-XXXXXX";
		char want[256], err[TS_ERR_MAX] = "";
		int rc;

		write_big(tmpl, sizes[i]);
		assert_int_equal(ts_config_init(&c), 0);
		rc = ts_config_load(&c, tmpl, err, sizeof(err));
		assert_int_equal(unlink(tmpl), 0);
		if (i == 0) {
			if (rc != 0)
				FAILF("1 MiB: rc %d: %s", rc, err);
			assert_int_equal(c.heartbeat, 9);
		} else {
			snprintf(want, sizeof(want),
				 "%s: larger than 1024 KiB; not a config file?",
				 tmpl);
			assert_int_equal(rc, -EFBIG);
			assert_string_equal(err, want);
			assert_int_equal(c.heartbeat, 15);
		}
		ts_config_free(&c);
	}
}

static void test_load_nul_golden_is_binary(void **state)
{
	char path[4096], raw[256];
	FILE *f;
	size_t n;

	(void)state;
	/* Guard the fixture itself: the NUL must be on line 3. */
	data_path(path, sizeof(path), "config-bad-nul.conf");
	f = fopen(path, "rb");
	assert_non_null(f);
	n = fread(raw, 1, sizeof(raw), f);
	assert_int_equal(fclose(f), 0);
	assert_true(n > 0);
	assert_non_null(memchr(raw, '\0', n));
	assert_true(strlen(raw) < n);
	assert_int_equal(strstr(raw, "retry = 20") - raw,
			 (ptrdiff_t)strlen("[server]\nheartbeat = 15\n"));
}

/* --------------------------------------------------------- error buffer */

static void test_small_error_buffer(void **state)
{
	static const char text[] = "[server]\nfoo = 1\n";
	struct ts_config c;
	char err[8];

	(void)state;
	assert_int_equal(ts_config_init(&c), 0);

	memset(err, 'x', sizeof(err));
	assert_int_equal(parse_str(&c, text, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "t.conf:");

	memset(err, 'x', sizeof(err));
	assert_int_equal(parse_str(&c, text, err, 1), -EINVAL);
	assert_string_equal(err, "");
	assert_int_equal(err[1], 'x');

	assert_int_equal(parse_str(&c, text, NULL, 0), -EINVAL);
	assert_int_equal(ts_config_add_log_arg(&c, "/", NULL, 0), -EINVAL);
	assert_int_equal(ts_config_add_log_arg(&c, "a=/a", err, 3), 0);
	assert_int_equal(ts_config_add_log_arg(&c, "a=/a", err, 3), -EINVAL);
	assert_string_equal(err, "du");
	ts_config_free(&c);
}

static void test_limits_keys_and_copy(void **state)
{
	(void)state;
	struct ts_config c, d;
	char err[TS_ERR_MAX];
	assert_int_equal(ts_config_init(&c), 0);
	assert_int_equal(c.header_timeout, 10);
	assert_int_equal(c.max_streams_per_ip, 0);
	assert_null(c.trusted_proxies);
	assert_int_equal(parse_str(&c,
				   "[server]\nheader_timeout = 3\n"
				   "max_streams_per_ip = 8\n"
				   "trusted_proxies = 10.0.0.1  ::1\n"
				   "token = t\n[log a]\npath = /x/a.log\n"
				   "[log b]\npath = /x/b.log\n",
				   err, sizeof(err)),
			 0);
	assert_int_equal(c.header_timeout, 3);
	assert_int_equal(c.max_streams_per_ip, 8);
	assert_string_equal(c.trusted_proxies, "10.0.0.1  ::1");
	/* a deep copy: nothing shared */
	assert_int_equal(ts_config_copy(&d, &c), 0);
	ts_config_free(&c);
	assert_string_equal(d.trusted_proxies, "10.0.0.1  ::1");
	assert_string_equal(d.token, "t");
	assert_int_equal(d.nlogs, 2);
	assert_string_equal(d.logs[1].name, "b");
	assert_string_equal(d.logs[1].path, "/x/b.log");
	assert_string_equal(d.listen, "127.0.0.1:8080");
	assert_string_equal(d.frame_ancestors, "'self'");
	ts_config_free(&d);

	assert_int_equal(ts_config_init(&c), 0);
	assert_int_equal(parse_str(&c,
				   "[server]\n\ntrusted_proxies = 10.0.0.1 "
				   "proxy.example\n",
				   err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "t.conf:3: trusted_proxies: 'proxy.example' "
				 "is not an IP address");
	ts_config_free(&c);
	assert_int_equal(ts_config_init(&c), 0);
	assert_int_equal(parse_str(&c, "[server]\nheader_timeout = 0\n", err,
				   sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "t.conf:2:"));
	ts_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_free_zeroed_and_reinit),
		cmocka_unit_test(test_good_file),
		cmocka_unit_test(test_contract_sample),
		cmocka_unit_test(test_empty_values_and_later_wins),
		cmocka_unit_test(test_syntax_corners),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_bad_text),
		cmocka_unit_test(test_tls_keys),
		cmocka_unit_test(test_token_and_cors),
		cmocka_unit_test(test_integer_ranges),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_add_log_arg),
		cmocka_unit_test(test_add_log_arg_duplicates),
		cmocka_unit_test(test_valid_name),
		cmocka_unit_test(test_load_missing_file),
		cmocka_unit_test(test_load_directory),
		cmocka_unit_test(test_load_size_limit),
		cmocka_unit_test(test_load_nul_golden_is_binary),
		cmocka_unit_test(test_small_error_buffer),
		cmocka_unit_test(test_limits_keys_and_copy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
