/* Unit tests of priv.c: which users are refused, and, when the tests run
 * as root, a real drop in a child process (it cannot be undone). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "priv.h"

static void test_check(void **state)
{
	(void)state;
	char err[TS_ERR_MAX];
	assert_int_equal(ts_priv_check(NULL, err, sizeof(err)), 0);
	assert_int_not_equal(ts_priv_check("no-such-user-ts", err, sizeof(err)),
			     0);
	assert_non_null(strstr(err, "user = no-such-user-ts"));
	assert_null(strchr(err, '\n'));
	/* uid 0 would drop nothing */
	assert_int_not_equal(ts_priv_check("root", err, sizeof(err)), 0);
	assert_non_null(strstr(err, "user = root"));
	if (getpwnam("nobody"))
		assert_int_equal(ts_priv_check("nobody", err, sizeof(err)), 0);
}

static void test_drop_refusals(void **state)
{
	(void)state;
	char err[TS_ERR_MAX];
	assert_int_equal(ts_priv_drop(NULL, err, sizeof(err)), 0);
	assert_int_not_equal(ts_priv_drop("no-such-user-ts", err, sizeof(err)),
			     0);
	assert_non_null(strstr(err, "user = no-such-user-ts"));
	if (geteuid() != 0) {
		/* not root: only the user it runs as already */
		struct passwd *me = getpwuid(geteuid());
		assert_non_null(me);
		char name[64];
		snprintf(name, sizeof(name), "%s", me->pw_name);
		assert_int_equal(ts_priv_drop(name, err, sizeof(err)), 0);
		if (getpwnam("nobody") && strcmp(name, "nobody") != 0)
			assert_int_not_equal(ts_priv_drop("nobody", err,
							  sizeof(err)),
					     0);
	}
}

static void test_drop_for_real(void **state)
{
	(void)state;
	struct passwd *pw = getpwnam("nobody");
	if (geteuid() != 0 || !pw) {
		skip();
		return;
	}
	uid_t uid = pw->pw_uid;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[TS_ERR_MAX];
		int ok = ts_priv_drop("nobody", err, sizeof(err)) == 0 &&
			 getuid() == uid && geteuid() == uid &&
			 setuid(0) != 0 && seteuid(0) != 0;
		_exit(ok ? 0 : 1);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_drop_refusals),
		cmocka_unit_test(test_drop_for_real),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
