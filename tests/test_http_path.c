/* Unit tests of the static-file routing of http.c: traversal refused. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http.h"

struct fixture {
	char root[64];
	char www[96];
	char *www_real;
};

static void put(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char p[160];
	if (!f)
		return -1;
	strcpy(f->root, "/tmp/ts-www-XXXXXX");
	if (!mkdtemp(f->root))
		return -1;
	snprintf(f->www, sizeof(f->www), "%s/www", f->root);
	if (mkdir(f->www, 0755) != 0)
		return -1;
	snprintf(p, sizeof(p), "%s/index.html", f->www);
	put(p, "index");
	snprintf(p, sizeof(p), "%s/secret.txt", f->root);
	put(p, "secret");
	snprintf(p, sizeof(p), "%s/sub", f->www);
	if (mkdir(p, 0755) != 0)
		return -1;
	snprintf(p, sizeof(p), "%s/sub/app.js", f->www);
	put(p, "js");
	snprintf(p, sizeof(p), "%s/out", f->www);
	if (symlink("../secret.txt", p) != 0)
		return -1;
	snprintf(p, sizeof(p), "%s/in", f->www);
	if (symlink("sub/app.js", p) != 0)
		return -1;
	f->www_real = realpath(f->www, NULL);
	*state = f;
	return f->www_real ? 0 : -1;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	int rc = system(cmd);
	free(f->www_real);
	free(f);
	return rc == 0 ? 0 : -1;
}

static void expect_file(struct fixture *f, const char *url, const char *rel)
{
	char want[200];
	snprintf(want, sizeof(want), "%s/%s", f->www_real, rel);
	char *got = ts_http_static_path(f->www_real, url);
	if (!got)
		fail_msg("%s: refused, want %s", url, want);
	assert_string_equal(got, want);
	free(got);
}

static void test_served(void **state)
{
	struct fixture *f = *state;
	expect_file(f, "/", "index.html");
	expect_file(f, "/index.html", "index.html");
	expect_file(f, "/sub/app.js", "sub/app.js");
	expect_file(f, "//sub//app.js", "sub/app.js");
	expect_file(f, "/in", "sub/app.js"); /* symlink inside is fine */
	expect_file(f, "/sub/./app.js", "sub/app.js");
}

static void test_refused(void **state)
{
	struct fixture *f = *state;
	static const char *bad[] = {
		"/../secret.txt",
		"/sub/../../secret.txt",
		"/..",
		"/sub/..",
		"/../www/index.html",
		"/out",
		"/missing.html",
		"index.html",
		"/sub/../index.html",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *got = ts_http_static_path(f->www_real, bad[i]);
		if (got)
			fail_msg("%s: served %s", bad[i], got);
	}
	assert_null(ts_http_static_path(NULL, "/"));
}

static void test_mime(void **state)
{
	(void)state;
	assert_string_equal(ts_http_mime("/a/index.html"),
			    "text/html; charset=utf-8");
	assert_string_equal(ts_http_mime("x.JS"),
			    "text/javascript; charset=utf-8");
	assert_string_equal(ts_http_mime("/a.b/noext"),
			    "application/octet-stream");
	assert_string_equal(ts_http_mime("style.css"),
			    "text/css; charset=utf-8");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_served, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test(test_mime),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
