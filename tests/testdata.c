#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "buf.h"
#include "testdata.h"

char *ts_test_read_data(const char *name, size_t *len)
{
	const char *dir = getenv("srcdir");
	char path[4096];
	snprintf(path, sizeof(path), "%s/tests/data/%s", dir ? dir : ".", name);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	struct ts_buf b = TS_BUF_INIT;
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		assert_int_equal(ts_buf_append(&b, tmp, n), 0);
	fclose(f);
	*len = b.len;
	if (!b.data)
		b.data = calloc(1, 1);
	return b.data;
}
