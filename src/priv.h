/* priv.h: giving up root.  Started as root, tailsse binds its socket, then
 * becomes the configured `user` before it opens any log file: a log path
 * that someone who can write its directory swaps for a symlink to a
 * root-only file (/etc/shadow) is then opened with that user's rights and
 * refused, never served.
 *
 * Threads: main only, before any other thread exists, so that no thread
 * keeps root's rights after the switch. */
#ifndef TS_PRIV_H
#define TS_PRIV_H

#include <stddef.h>

/* Could the daemon run as `user` (the config's `user =`; NULL: none)?  It
 * must exist and not be uid 0 (that would drop nothing).  Does not look at
 * who runs this check, so --check-config gives the same answer as root or
 * not.  Returns 0, or a negative errno with one line in err naming the key
 * ("user = x: no such user"). */
int ts_priv_check(const char *user, char *err, size_t errlen);

/* Become `user` for good: its supplementary groups (initgroups, so that
 * e.g. `adm` still opens /var/log), its group, its uid; then make sure
 * root cannot be regained.  Not running as root: fine when `user` is who
 * runs it already, else an error.  NULL: nothing to do.  Returns 0, or a
 * negative errno with one line in err naming the key; after an error the
 * caller must exit (the switch may be half done). */
int ts_priv_drop(const char *user, char *err, size_t errlen);

#endif
