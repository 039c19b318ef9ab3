/* filter.h: the grep=/exclude=/icase= filters of a stream (PCRE2), the
 * match ranges of format=json, and the JSON encoding of a line.
 *
 * A filter is a few compiled patterns.  Patterns come from a cache shared by
 * every stream: identical patterns with identical flags are compiled (and
 * JIT-compiled) once and refcounted.  Matching runs on any thread with
 * per-thread PCRE2 state (match data, match context with the limits, JIT
 * stack) that the cache creates on a thread's first match and frees at
 * thread exit (a pthread key destructor) or in ts_filter_cache_free.
 *
 * No pattern can stall a thread: besides PCRE2's match, depth and heap
 * limits and a bounded JIT stack, every pattern is compiled with automatic
 * callouts, and the callout stops a line once it has used its CPU-time
 * budget (TS_FILTER_BUDGET_NS below).  A stopped line is TS_MATCH_LIMIT: it
 * does not match, and the stream says so once with `event: filter-limit`.
 *
 * Threads: each function says which thread may call it. */
#ifndef TS_FILTER_H
#define TS_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* At most this many patterns per filter, grep and exclude together. */
#define TS_FILTER_MAX_PATTERNS 16
/* At most this many bytes per pattern (without the NUL). */
#define TS_FILTER_MAX_LEN 1024
/* Patterns that no filter uses any more stay compiled, least recently
 * released dropped first, up to this many (an EventSource that reconnects
 * finds its patterns still compiled). */
#define TS_FILTER_CACHE_IDLE_MAX 8

/* CPU time one line may use in ts_filter_match, all its patterns and the
 * match ranges together: TS_FILTER_BUDGET_NS, plus TS_FILTER_BUDGET_NS_PER_BYTE
 * for each byte of the line: 0.52 ms for a 1 KiB line, 2.07 ms for 64 KiB,
 * 0.4 s for the largest max_line (16 MiB).  The per-byte part is there for
 * ordinary patterns on long lines, which the interpreter (the fallback when
 * there is no JIT) runs at up to 25 ns a byte.  Checked every few callouts;
 * see filter.c for the measured times.  Being CPU time, it is not used up
 * while the thread is preempted. */
#define TS_FILTER_BUDGET_NS 500000u
#define TS_FILTER_BUDGET_NS_PER_BYTE 24u

/* PCRE2 limits, set in every thread's match context.  The time budget above
 * is what bounds the time; these bound memory and end the classic
 * exponential cases early (measured times in filter.c):
 *  - match limit: internal steps per start position; enough for a `.*`
 *    that backtracks over a whole 64 KiB line several times;
 *  - depth limit: nested backtracking frames (interpreter only).  A group
 *    repeated per character, like `(?:a|b)*c`, nests one or two frames a
 *    repetition, and the time budget stops it past about 12,000
 *    repetitions anyway (60 ns each at -O2).  Deeper nesting only costs:
 *    giving up at depth 64K and unwinding took 0.7 ms beyond the budget;
 *  - heap limit, KiB: the interpreter's backtracking frames (kept in the
 *    thread's match data between lines, so it is also the most a thread
 *    keeps); reached before the depth limit by patterns with many capture
 *    groups (a frame holds all their offsets);
 *  - JIT stack: 32 KiB growing to 1 MiB per thread (the JIT ignores the depth
 *    and heap limits); `(?:a|b)*c` over 32 KiB fits (0.6 ms), over 64 KiB it
 *    does not. */
#define TS_FILTER_MATCH_LIMIT 1000000u
/* The fast path (see filter.c): lines up to this long are first matched
 * with the JIT code compiled without callouts, under this match limit; a
 * pattern that hits it, or whose filter was found slow, moves to the guarded
 * path for good. */
#define TS_FILTER_FAST_MAX_LEN 512u
#define TS_FILTER_FAST_MATCH_LIMIT 20000u
#define TS_FILTER_DEPTH_LIMIT 25000u
#define TS_FILTER_HEAP_LIMIT_KIB 8192u
#define TS_FILTER_JIT_STACK_MIN (32u * 1024)
#define TS_FILTER_JIT_STACK_MAX (1024u * 1024)

struct ts_filter_cache;
struct ts_filter;

enum ts_match {
	TS_MATCH_NO,	/* filtered out */
	TS_MATCH_YES,	/* every grep matches, no exclude does */
	TS_MATCH_LIMIT, /* a limit or the time budget was hit (or memory ran
			 * out): the line counts as not matching */
};

/* A new cache, with JIT compilation unless the environment variable
 * TAILSSE_NO_JIT is set to a non-empty value other than "0" (read here,
 * once).  NULL on ENOMEM or when no pthread key is left.  Any thread. */
struct ts_filter_cache *ts_filter_cache_new(void);

/* The same with JIT compilation explicitly on or off (tests use both). */
struct ts_filter_cache *ts_filter_cache_new_jit(bool use_jit);

/* Free the cache, its compiled patterns and the per-thread state of every
 * thread that matched with it.  Every filter must have been freed, and no
 * other thread may be inside a ts_filter_* call on it or exit concurrently
 * (join the HTTP threads first).  Accepts NULL.  Any thread. */
void ts_filter_cache_free(struct ts_filter_cache *c);

struct ts_filter_cache_stats {
	size_t entries;	 /* compiled patterns held, in use or idle */
	size_t idle;	 /* of which no filter uses (kept for reuse) */
	size_t threads;	 /* threads that hold matching state */
	uint64_t hits;	 /* pattern lookups served from the cache */
	uint64_t misses; /* pattern lookups that compiled */
	bool jit;	 /* JIT compilation enabled (it may still fail for a
			  * pattern: see ts_filter_jit) */
};

/* A snapshot of the cache's counters.  Any thread. */
void ts_filter_cache_stats(struct ts_filter_cache *c,
			   struct ts_filter_cache_stats *st);

/* Compile a filter: every `grep` pattern must match and no `exclude`
 * pattern may match; `icase` makes all of them caseless.  Patterns are UTF-8
 * (PCRE2_UTF, with PCRE2_MATCH_INVALID_UTF so that any subject is matched
 * without error), at most TS_FILTER_MAX_LEN bytes each and
 * TS_FILTER_MAX_PATTERNS in all; \C is refused.  When both lists are empty
 * there is no filter: *out is set to NULL and 0 returned (ts_filter_match
 * takes a NULL filter as "keep everything").
 *
 * Returns 0, -EINVAL with a one-line message in `err` (e.g. "grep: missing
 * closing parenthesis at offset 4", PCRE2's text and the offset in bytes;
 * `err` may be NULL), or -ENOMEM.  Any thread; the cache must outlive the
 * filter. */
int ts_filter_new(struct ts_filter_cache *c, const char *const *grep,
		  size_t ngrep, const char *const *exclude, size_t nexclude,
		  bool icase, struct ts_filter **out, char *err, size_t errlen);

/* Release the filter's patterns to its cache.  Accepts NULL.  Any thread. */
void ts_filter_free(struct ts_filter *f);

/* How many of the filter's patterns run JIT code (the others run in the
 * interpreter).  0 for NULL.  Any thread. */
size_t ts_filter_jit(const struct ts_filter *f);

/* Match one line (`len` bytes, any bytes; the stream passes the sanitised
 * text the client receives).  YES when every grep pattern matches and no
 * exclude pattern does; a NULL filter keeps every line.
 *
 * When the line is kept and `ranges` is non-NULL, append to it the match
 * ranges for format=json, the inside of the JSON array: "[s,e]" pairs
 * separated by commas, every non-overlapping non-empty match of every grep
 * pattern (as a global search finds them, empty matches skipped), byte
 * offsets into `line`, sorted by start then end; ranges of different
 * patterns may overlap, identical ones are written once.  Nothing is
 * appended for a NULL filter, or when the result is not YES.  The ranges
 * are best effort: when a limit or the budget stops the search for them
 * (the line has matched by then), the line stays YES with the ranges found
 * so far, a prefix of the full list.
 *
 * Allocates nothing per line once the calling thread has its state (made
 * at its first call), but for `ranges` growing and the interpreter's
 * backtracking frames growing to a new high (they are kept for the next
 * lines).  Any thread, several at once, also with the same filter; `c` must
 * be the filter's cache. */
enum ts_match ts_filter_match(struct ts_filter_cache *c,
			      const struct ts_filter *f, const char *line,
			      size_t len, struct ts_buf *ranges);

/* Append `s` (`len` bytes) as a JSON string with its quotes: '"' and '\\'
 * escaped, \b \f \n \r \t as such, other bytes below 0x20 as \u00XX (lower
 * case hex), U+2028 and U+2029 as \u2028 and \u2029 (JavaScript string
 * literals cannot hold them), DEL and other UTF-8 as they are; every byte
 * that is not part of valid UTF-8 becomes U+FFFD (one per maximal invalid
 * subpart, as ts_sse_text does).  0 or -ENOMEM (then `out` is as it was).
 * Pure; any thread. */
int ts_json_string(struct ts_buf *out, const char *s, size_t len);

/* Append the data of one format=json event:
 *   {"line":"TEXT","offset":OFFSET,"match":[RANGES]}
 * where RANGES (`rlen` bytes, may be NULL when 0) is what ts_filter_match
 * appended.  0 or -ENOMEM (then `out` is as it was).  Pure; any thread. */
int ts_filter_json_line(struct ts_buf *out, const char *text, size_t len,
			uint64_t offset, const char *ranges, size_t rlen);

/* Move every pattern of `f` off the fast path for good: its caller found a
 * batch of matches slow.  Any thread. */
void ts_filter_slow(const struct ts_filter *f);

/* True when no pattern of `f` can take the fast path any more (or f is
 * NULL): the caller need not time it.  Any thread. */
bool ts_filter_is_slow(const struct ts_filter *f);

/* True when `f` can search many lines at once (ts_filter_scan).  Any
 * thread. */
bool ts_filter_can_scan(const struct ts_filter *f);

/* Search buf[from, len), whole lines of plain ASCII (no NUL or CR) none
 * longer than TS_FILTER_FAST_MAX_LEN, for a grep pattern of `f`: returns
 * the offset of the first match, where the first line `f` may keep begins
 * or ends (every line before that one is certainly dropped), `len` when no
 * line can be kept, or (size_t)-1 when the caller must match line by line.
 * Any thread. */
size_t ts_filter_scan(struct ts_filter_cache *c, const struct ts_filter *f,
		      const char *buf, size_t len, size_t from);

#endif
