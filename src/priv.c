/* priv.c: the `user =` key: look the user up, and switch to it after the
 * socket is bound and before any log is opened (see priv.h for why). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* getresuid, getresgid */
#endif

#include "priv.h"
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* The ids of `user`.  getpwnam(3) rather than getpwnam_r: main calls this
 * before any other thread exists, so its static result is safe. */
static int lookup(const char *user, uid_t *uid, gid_t *gid, char *err,
		  size_t errlen)
{
	struct passwd *pw;

	/* no one until found: the analyzer cannot tell that -errno is never
	 * 0, and so took a failed lookup's ids for used */
	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	errno = 0;
	/* cppcheck-suppress getpwnamCalled ; before any thread: see above */
	pw = getpwnam(user);
	if (pw == NULL) {
		int e = errno;

		/* Not found is NULL with errno 0, or one of these, depending
		 * on the NSS module (getpwnam(3)). */
		if (e == 0 || e == ENOENT || e == ESRCH || e == EBADF ||
		    e == EPERM) {
			ts_config_err(err, errlen, "user = %s: no such user",
				      user);
			return -ENOENT;
		}
		ts_config_err(err, errlen, "user = %s: cannot look it up: %s",
			      user, strerror(e));
		return -e;
	}
	if (pw->pw_uid == 0) {
		ts_config_err(err, errlen,
			      "user = %s: that is root (uid 0), nothing "
			      "would be dropped: name an unprivileged user",
			      user);
		return -EINVAL;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

int ts_priv_check(const char *user, char *err, size_t errlen)
{
	uid_t uid;
	gid_t gid;

	if (user == NULL)
		return 0;
	return lookup(user, &uid, &gid, err, errlen);
}

/* Root is gone for good: every id is the user's, and asking for root back
 * fails.  A kernel or a security module that let setuid(0) succeed here
 * would leave a daemon that believes it dropped and did not. */
static int verify(const char *user, uid_t uid, gid_t gid, char *err,
		  size_t errlen)
{
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;

	if (getresuid(&ruid, &euid, &suid) != 0 ||
	    getresgid(&rgid, &egid, &sgid) != 0) {
		int e = errno;

		ts_config_err(err, errlen,
			      "user = %s: cannot read the ids after the "
			      "switch: %s",
			      user, strerror(e));
		return -e;
	}
	if (ruid != uid || euid != uid || suid != uid || rgid != gid ||
	    egid != gid || sgid != gid || setuid(0) == 0 || seteuid(0) == 0) {
		ts_config_err(err, errlen,
			      "user = %s: root could still be regained "
			      "after switching to it: refusing to run",
			      user);
		return -EPERM;
	}
	return 0;
}

int ts_priv_drop(const char *user, char *err, size_t errlen)
{
	uid_t uid;
	gid_t gid;
	int rc;

	if (user == NULL)
		return 0;
	rc = lookup(user, &uid, &gid, err, errlen);
	if (rc < 0)
		return rc;
	if (geteuid() != 0) {
		/* Already that user (systemd's User=, a test): nothing to
		 * drop, and nothing we could do as anyone else. */
		if (geteuid() == uid && getuid() == uid)
			return 0;
		ts_config_err(err, errlen,
			      "user = %s: not running as root, cannot "
			      "switch users",
			      user);
		return -EPERM;
	}
	/* Groups first: once the uid is gone, so is the right to set them.
	 * initgroups, not setgroups(0): the user's own groups (adm for
	 * /var/log) are what lets it read the logs it is meant to. */
	if (initgroups(user, gid) != 0) {
		rc = -errno;
		ts_config_err(err, errlen, "user = %s: initgroups: %s", user,
			      strerror(-rc));
		return rc;
	}
	if (setgid(gid) != 0) {
		rc = -errno;
		ts_config_err(err, errlen, "user = %s: setgid(%lu): %s", user,
			      (unsigned long)gid, strerror(-rc));
		return rc;
	}
	if (setuid(uid) != 0) {
		rc = -errno;
		ts_config_err(err, errlen, "user = %s: setuid(%lu): %s", user,
			      (unsigned long)uid, strerror(-rc));
		return rc;
	}
	return verify(user, uid, gid, err, errlen);
}
