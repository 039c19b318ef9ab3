/* Unit tests of registry.c: lookups hand out references, a new set keeps
 * the logs that stay and lets go of the others, and a log taken out lives
 * on while someone holds it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

static unsigned refs(struct ts_log *log)
{
	return atomic_load(&log->refs);
}

static void test_find_and_list(void **state)
{
	(void)state;
	struct ts_registry r;
	assert_int_equal(ts_registry_init(&r), 0);
	struct ts_log *a = ts_log_new("a", "/nonexistent/a.log");
	struct ts_log *b = ts_log_new("bb", "/nonexistent/b.log");
	assert_non_null(a);
	assert_non_null(b);
	struct ts_log *set[] = { a, b };
	assert_int_equal(ts_registry_set(&r, set, 2), 0);
	assert_int_equal(refs(a), 2);
	struct ts_log *found = ts_registry_find(&r, "bbx", 2); /* "bb" */
	assert_ptr_equal(found, b);
	assert_int_equal(refs(b), 3);
	ts_log_unref(found);
	assert_null(ts_registry_find(&r, "b", 1));
	assert_null(ts_registry_find(&r, "", 0));
	size_t n;
	struct ts_log **all = ts_registry_list(&r, &n);
	assert_int_equal(n, 2);
	assert_ptr_equal(all[0], a);
	assert_ptr_equal(all[1], b);
	assert_int_equal(refs(a), 3);
	ts_registry_put_list(all, n);
	assert_int_equal(refs(a), 2);
	ts_log_unref(a);
	ts_log_unref(b);
	ts_registry_destroy(&r); /* frees both (ASan: no leak) */
}

static void test_replace_keeps_holders_alive(void **state)
{
	(void)state;
	struct ts_registry r;
	assert_int_equal(ts_registry_init(&r), 0);
	struct ts_log *a = ts_log_new("a", "/nonexistent/a.log");
	struct ts_log *b = ts_log_new("b", "/nonexistent/b.log");
	struct ts_log *set1[] = { a, b };
	assert_int_equal(ts_registry_set(&r, set1, 2), 0);
	ts_log_unref(a); /* the registry's alone now */
	ts_log_unref(b);
	struct ts_log *held = ts_registry_find(&r, "b", 1); /* a stream */
	struct ts_log *c = ts_log_new("c", "/nonexistent/c.log");
	struct ts_log *set2[] = { a, c };
	assert_int_equal(ts_registry_set(&r, set2, 2), 0);
	ts_log_unref(c);
	assert_null(ts_registry_find(&r, "b", 1));
	/* b is out of the set, and still valid for whoever holds it */
	assert_string_equal(held->name, "b");
	assert_int_equal(refs(held), 1);
	ts_log_retire(held);
	assert_true(held->removed);
	ts_log_unref(held); /* freed here */
	assert_int_equal(refs(a), 1);
	size_t n;
	struct ts_log **all = ts_registry_list(&r, &n);
	assert_int_equal(n, 2);
	assert_string_equal(all[1]->name, "c");
	ts_registry_put_list(all, n);
	assert_int_equal(ts_registry_set(&r, NULL, 0), 0);
	all = ts_registry_list(&r, &n);
	assert_null(all);
	assert_int_equal(n, 0);
	ts_registry_destroy(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find_and_list),
		cmocka_unit_test(test_replace_keeps_holders_alive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
