/* fuzz_ref.h: the plain reference of a filter of literals (grep, exclude,
 * ASCII case folding) for the targets that check what the daemon's PCRE2
 * filters keep (fuzz_cursor, fuzz_lines).  Static, like fuzz.h. */
#ifndef TS_FUZZ_REF_H
#define TS_FUZZ_REF_H

#include "buf.h"
#include "fuzz.h"

struct fuzz_ref_filter {
	bool grep, exclude, icase;
	char g[4], x[4]; /* literals of fuzz_take_literal */
};

static inline unsigned char fuzz_ref_fold(unsigned char c, bool icase)
{
	return icase && c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* The first match of `lit` in t[from..n), or n. */
static inline size_t fuzz_ref_find(const char *t, size_t n, size_t from,
				   const char *lit, bool icase)
{
	size_t k = strlen(lit);
	for (size_t i = from; i + k <= n; i++) {
		size_t j = 0;
		while (j < k && fuzz_ref_fold((unsigned char)t[i + j], icase) ==
					(unsigned char)lit[j])
			j++;
		if (j == k)
			return i;
	}
	return n;
}

/* Does the reference keep the text?  With ranges != NULL and a grep
 * literal, append its matches "[s,e],...". */
static inline bool fuzz_ref_keep(const struct fuzz_ref_filter *rf,
				 const char *t, size_t n, struct ts_buf *ranges)
{
	if (rf->exclude && fuzz_ref_find(t, n, 0, rf->x, rf->icase) < n)
		return false;
	if (!rf->grep)
		return true;
	size_t at = fuzz_ref_find(t, n, 0, rf->g, rf->icase);
	if (at == n)
		return false;
	size_t k = strlen(rf->g);
	bool first = true;
	while (ranges && at < n) {
		FUZZ_CHECK(ts_buf_printf(ranges, "%s[%zu,%zu]",
					 first ? "" : ",", at, at + k) == 0,
			   "oom");
		first = false;
		at = fuzz_ref_find(t, n, at + k, rf->g, rf->icase);
	}
	return true;
}

#endif
