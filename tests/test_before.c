/* Unit tests of before.c: the JSON of the lines before a position. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "before.h"

static int tmpfile_with(const char *text)
{
	char path[] = "/tmp/ts-before-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	return fd;
}

static char *answer(int fd, uint64_t off, uint64_t n, size_t max_line,
		    struct ts_filter_cache *c, const struct ts_filter *f,
		    bool grep)
{
	struct ts_before b = { fd, 7, off, n, max_line, c, f, grep };
	struct ts_buf out = TS_BUF_INIT;
	assert_int_equal(ts_before_json(&b, &out), 0);
	assert_int_equal(ts_buf_append(&out, "", 1), 0);
	return out.data;
}

static void test_plain(void **state)
{
	(void)state;
	int fd = tmpfile_with("a\nbb\nc\r\nd\xff\n");
	char *s = answer(fd, 11, 3, 100, NULL, NULL, false);
	assert_string_equal(s,
			    "{\"lines\":[{\"id\":\"7:5\",\"line\":\"bb\"},"
			    "{\"id\":\"7:8\",\"line\":\"c\"},"
			    "{\"id\":\"7:11\",\"line\":\"d\xef\xbf\xbd\"}]}\n");
	free(s);
	s = answer(fd, 2, 10, 100, NULL, NULL, false);
	assert_string_equal(s,
			    "{\"lines\":[{\"id\":\"7:2\",\"line\":\"a\"}]}\n");
	free(s);
	/* cut like a stream cuts them */
	s = answer(fd, 5, 1, 1, NULL, NULL, false);
	assert_non_null(strstr(s, "\"line\":\"b\xe2\x80\xa6\""));
	free(s);
	close(fd);
}

static void test_filtered(void **state)
{
	(void)state;
	struct ts_filter_cache *c = ts_filter_cache_new();
	assert_non_null(c);
	struct ts_filter *f = NULL;
	const char *grep[] = { "x+" };
	char err[256];
	assert_int_equal(ts_filter_new(c, grep, 1, NULL, 0, false, &f, err,
				       sizeof(err)),
			 0);
	int fd = tmpfile_with("ax\nb\nxxc\nd\n");
	char *s = answer(fd, 11, 5, 100, c, f, true);
	assert_string_equal(s, "{\"lines\":[{\"id\":\"7:3\",\"line\":\"ax\","
			       "\"match\":[[1,2]]},{\"id\":\"7:9\",\"line\":"
			       "\"xxc\",\"match\":[[0,2]]}]}\n");
	free(s);
	close(fd);
	ts_filter_free(f);
	ts_filter_cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_filtered),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
