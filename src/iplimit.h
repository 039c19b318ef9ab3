/* iplimit.h: event streams open per client address, for the
 * max_streams_per_ip cap.  Addresses are kept as 16 bytes (IPv4 as
 * IPv4-mapped IPv6), so a client counts once whichever way it came in.
 *
 * Threads: one (libmicrohttpd's polling thread); no lock. */
#ifndef TS_IPLIMIT_H
#define TS_IPLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct ts_ipaddr {
	unsigned char b[16];
};

struct ts_iplimit {
	struct ts_ipslot *slots; /* open addressing, a power of two */
	size_t cap, used, tombs; /* used: slots with a count > 0; tombs:
				  * slots that had one */
};

/* The address of a sockaddr (AF_INET or AF_INET6); false for others. */
bool ts_ipaddr_from(struct ts_ipaddr *a, const struct sockaddr *sa);

/* Parse a textual IPv4 or IPv6 address.  False when it is none. */
bool ts_ipaddr_parse(struct ts_ipaddr *a, const char *s, size_t len);

/* 127.0.0.0/8, ::1 (and IPv4-mapped loopback). */
bool ts_ipaddr_loopback(const struct ts_ipaddr *a);

/* Is `a` one of the space-separated addresses of `list` (may be NULL)? */
bool ts_ipaddr_listed(const struct ts_ipaddr *a, const char *list);

void ts_iplimit_init(struct ts_iplimit *t);
void ts_iplimit_destroy(struct ts_iplimit *t);

/* Count one more stream of `a` if it has fewer than `max`: true.  False
 * when it has `max` already (or on ENOMEM: refusing is the safe side). */
bool ts_iplimit_take(struct ts_iplimit *t, const struct ts_ipaddr *a,
		     unsigned max);

/* One stream of `a` ended (it was taken). */
void ts_iplimit_give(struct ts_iplimit *t, const struct ts_ipaddr *a);

/* Streams counted for `a`. */
unsigned ts_iplimit_count(const struct ts_iplimit *t,
			  const struct ts_ipaddr *a);

#endif
