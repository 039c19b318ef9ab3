/* testdata.h: what the cmocka tests share: reading a golden file. */
#ifndef TS_TESTDATA_H
#define TS_TESTDATA_H

#include <stddef.h>

/* The whole of tests/data/NAME (under $srcdir, for VPATH builds and
 * distcheck), its length in *len; the caller frees it.  Fails the
 * running test when the file cannot be read. */
char *ts_test_read_data(const char *name, size_t *len);

#endif
