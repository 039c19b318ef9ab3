#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iplimit.h"

/* count 0 with `tomb`: a slot that held an address (the probe goes on) */
struct ts_ipslot {
	struct ts_ipaddr a;
	unsigned count;
	bool tomb;
};

static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0,    0,
					    0, 0, 0, 0, 0xff, 0xff };

bool ts_ipaddr_from(struct ts_ipaddr *a, const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		memcpy(a->b, v4mapped, 12);
		memcpy(a->b + 12, &in->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		memcpy(a->b, &in6->sin6_addr, 16);
		return true;
	}
	return false;
}

bool ts_ipaddr_parse(struct ts_ipaddr *a, const char *s, size_t len)
{
	char buf[INET6_ADDRSTRLEN + 1];
	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	unsigned char v4[4];
	if (inet_pton(AF_INET, buf, v4) == 1) {
		memcpy(a->b, v4mapped, 12);
		memcpy(a->b + 12, v4, 4);
		return true;
	}
	return inet_pton(AF_INET6, buf, a->b) == 1;
}

bool ts_ipaddr_loopback(const struct ts_ipaddr *a)
{
	static const unsigned char one[16] = { [15] = 1 };
	if (memcmp(a->b, one, 16) == 0)
		return true;
	return memcmp(a->b, v4mapped, 12) == 0 && a->b[12] == 127;
}

bool ts_ipaddr_listed(const struct ts_ipaddr *a, const char *list)
{
	for (const char *p = list; p && *p;) {
		p += strspn(p, " \t");
		size_t n = strcspn(p, " \t");
		struct ts_ipaddr b;
		if (n && ts_ipaddr_parse(&b, p, n) && memcmp(&b, a, 16) == 0)
			return true;
		p += n;
	}
	return false;
}

void ts_iplimit_init(struct ts_iplimit *t)
{
	t->slots = NULL;
	t->cap = t->used = t->tombs = 0;
}

void ts_iplimit_destroy(struct ts_iplimit *t)
{
	free(t->slots);
	ts_iplimit_init(t);
}

static size_t hash(const struct ts_ipaddr *a)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < 16; i++)
		h = (h ^ a->b[i]) * 1099511628211ull;
	return (size_t)h;
}

/* The slot holding `a`, or NULL. */
static struct ts_ipslot *find(const struct ts_iplimit *t,
			      const struct ts_ipaddr *a)
{
	if (!t->cap)
		return NULL;
	size_t mask = t->cap - 1;
	for (size_t i = hash(a) & mask, k = 0; k < t->cap;
	     i = (i + 1) & mask, k++) {
		struct ts_ipslot *s = &t->slots[i];
		if (s->count == 0 && !s->tomb)
			return NULL;
		if (s->count > 0 && memcmp(&s->a, a, 16) == 0)
			return s;
	}
	return NULL;
}

/* Rebuild with room for twice the addresses in use (tombstones go). */
static int grow(struct ts_iplimit *t)
{
	size_t cap = 16;
	while (cap < 4 * (t->used + 1))
		cap *= 2;
	struct ts_ipslot *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -1;
	for (size_t i = 0; i < t->cap; i++) {
		const struct ts_ipslot *s = &t->slots[i];
		if (s->count == 0)
			continue;
		size_t j = hash(&s->a) & (cap - 1);
		while (slots[j].count)
			j = (j + 1) & (cap - 1);
		slots[j] = *s;
	}
	free(t->slots);
	t->slots = slots;
	t->cap = cap;
	t->tombs = 0;
	return 0;
}

bool ts_iplimit_take(struct ts_iplimit *t, const struct ts_ipaddr *a,
		     unsigned max)
{
	struct ts_ipslot *s = find(t, a);
	if (s) {
		if (s->count >= max)
			return false;
		s->count++;
		return true;
	}
	if (max == 0)
		return false;
	/* at most half full, counting tombstones: probes stay short */
	if (2 * (t->used + t->tombs + 1) > t->cap && grow(t) != 0)
		return false;
	size_t mask = t->cap - 1, i = hash(a) & mask;
	while (t->slots[i].count)
		i = (i + 1) & mask;
	if (t->slots[i].tomb)
		t->tombs--;
	t->slots[i].a = *a;
	t->slots[i].count = 1;
	t->slots[i].tomb = false;
	t->used++;
	return true;
}

void ts_iplimit_give(struct ts_iplimit *t, const struct ts_ipaddr *a)
{
	struct ts_ipslot *s = find(t, a);
	if (!s)
		return;
	if (--s->count == 0) {
		s->tomb = true;
		t->used--;
		t->tombs++;
	}
}

unsigned ts_iplimit_count(const struct ts_iplimit *t, const struct ts_ipaddr *a)
{
	const struct ts_ipslot *s = find(t, a);
	return s ? s->count : 0;
}
