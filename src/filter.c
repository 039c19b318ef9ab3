/* filter.c: PCRE2 filters: a refcounted cache of compiled patterns, matching
 * with per-thread state and a per-line CPU budget, match ranges, JSON.
 *
 * Why a time budget and not only PCRE2's limits (measured with PCRE2 10.42,
 * -O2, 64 KiB lines, on the 2-CPU build machine):
 *  - PCRE2's match limit restarts from zero at every start position of an
 *    unanchored search (pcre2api, "match_limit"), so a pattern that costs a
 *    little less than the limit at each of 65536 positions runs on:
 *    `\w+x` on "aaa…a x" took 31.7 s in the interpreter with a limit of
 *    100,000, and `\w{0,5000}x` 5.5 s;
 *  - the JIT does not count backtracking inside single-character repeats at
 *    all: `\w*\w*x` on "aaa…a x" took 1.8 s with the JIT at any limit, and
 *    `\w{0,5000}x` 0.28 s;
 *  - one position of a counted catastrophic pattern is bounded by the match
 *    limit, but the cost of a step varies by pattern: at 100,000 steps,
 *    `(a+)+$` on "aaa…ab" took 2.8 ms in the interpreter (0.29 ms with the
 *    JIT), `(?:\w|\w\w)*x` 8.8 ms.
 * So every pattern is compiled with PCRE2_AUTO_CALLOUT (a callout before
 * each item, also taken at each step of backtracking, JIT and interpreter
 * alike), and the callout checks the clock every CHECK_EVERY callouts.  The
 * start-of-match optimisations stay on, so the callouts cost nothing on a
 * line where the pattern's first or required characters do not occur; on a
 * 64 KiB line with thousands of start positions they add about 0.1 ms.
 *
 * The budget is CPU time of the thread (CLOCK_THREAD_CPUTIME_ID), so that a
 * line does not fail because the thread was preempted: the cheap monotonic
 * clock is read every CHECK_EVERY callouts, and the CPU clock (a system
 * call) only when the line starts to need checking (after START_AFTER
 * callouts: short lines never read a clock) and when the monotonic deadline
 * has passed.  Work before the first check and between two checks is not
 * bounded by the budget; it is START_AFTER and CHECK_EVERY callouts of work,
 * microseconds for ordinary patterns, and at worst each callout can be
 * preceded by a scan of the whole line (about 30 µs at 64 KiB).
 *
 * Measured with this budget (0.5 ms + 24 ns/byte: 2.07 ms for a 64 KiB
 * line), tests/test_filter.c's catastrophic table at -O2 without
 * sanitizers, 64 KiB lines, median of 5 runs of the best of 3 (ms):
 *      pattern                 line              JIT    interpreter
 *      (a+)+$                  a…ab              2.20   2.14
 *      (a+)+$                  a…a (matches)     0.05   0.06
 *      (x+x+)+y                x…xzy             2.12   2.14
 *      (\w+\s?)+$              "wwwwww "…!       2.08   1.01 (depth)
 *      \w+x                    a…a x             2.12   2.18
 *      \w*\w*x                 a…a x             2.15   2.26
 *      \w{1,5000}x             a…a x             2.09   2.11
 *      (?:a|aa)+x              a…a x             0.65   0.82 (limits)
 *      (.*a){20}x              a…a x             2.12   2.45
 *      (?:(?=\w*+!)|a)+x       a…a x             2.40   3.59
 * The last one is the granularity at work: a possessive scan of the rest
 * of the line before every callout.  The first line that grows a thread's
 * interpreter frames takes up to 4 ms, once (the frames stay in the
 * thread's match data).  ASan/UBSan builds give about the same times
 * (PCRE2 is not instrumented).  The wall clock can only be longer on a
 * loaded machine; the CPU time used is what is bounded.
 *
 * The fast path.  The callouts make ordinary matching about 7 times slower
 * (measured: ` 5\d\d ` over 1M access-log lines, 283 MB/s guarded against
 * 1996 MB/s without callouts; `grep -P -c` does 1370 MB/s), so every pattern
 * is also JIT-compiled without them.  Short lines (at most
 * TS_FILTER_FAST_MAX_LEN bytes) are matched with that code first, under a
 * small match limit.  A pattern whose fast match hits the limit is marked
 * slow and goes through the guarded code from then on (the line is matched
 * again there); so is every pattern of a filter that its caller found slow
 * (ts_filter_slow: stream.c times its batches of lines in thread CPU time;
 * timing each match instead costs more than the match, 60 ns for the TSC on
 * this virtual machine).  What a hostile pattern can cost before it is
 * marked is a batch's worth of fast matches of lines of at most 512 bytes:
 * the worst measured, (a|b|ab)*x, quadratic and not counted by the JIT's
 * match limit, took 1.0 ms at 512 bytes (7.4 ms at 1 KiB, hence the bound);
 * counted ones stop at the limit in 0.1-0.4 ms.
 *
 * Ordinary patterns on a 64 KiB log line take 0.05-0.5 ms with the JIT
 * (`error`, `(?i)error|warn`, `lorem.*?end`; 1.1 ms for `\w+` and its
 * 12,000 ranges) and 0.15-1.6 ms in the interpreter (1.2 ms for
 * `(?i)ERROR`, 1.4 ms for `lorem.*?end`): within the budget, with less
 * room in the interpreter; tests/test_filter.c checks that such patterns
 * match with every range. */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <assert.h>
#include <stdatomic.h>
#include <errno.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "filter.h"
#include "sse.h"

/* Callouts between two looks at the clock, and before the first. */
#define CHECK_EVERY 16u
#define START_AFTER 32u

#define COMPILE_OPTIONS                                                  \
	(PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_NEVER_BACKSLASH_C | \
	 PCRE2_AUTO_CALLOUT)

/* One compiled pattern, shared by every filter that uses the same text with
 * the same flags. */
struct entry {
	struct entry *prev, *next; /* c->head..c->tail (c->lock) */
	unsigned refs;		   /* filters using it (c->lock) */
	pcre2_code *code;	   /* read-only once in the cache */
	pcre2_code *strict;	   /* without JIT: see compile() */
	pcre2_code *fast;	   /* JIT code without callouts, or NULL */
	pcre2_code *scan;	   /* the same, multi-line, when scan_safe() */
	atomic_bool slow;	   /* a fast match was slow: guarded only */
	bool icase;
	bool jit; /* code has JIT code */
	size_t len;
	char pat[]; /* len bytes and a NUL */
};

/* One thread's matching state.  Only its thread uses it, but for the links,
 * which c->lock protects. */
struct tstate {
	struct tstate *prev, *next; /* c->threads (c->lock) */
	struct ts_filter_cache *cache;
	pcre2_match_data *md;
	pcre2_match_context *mc;  /* limits, callout, JIT stack */
	pcre2_match_context *fmc; /* the fast path's: small limit, JIT stack */
	pcre2_jit_stack *js;	  /* NULL without JIT */
	/* The budget of the line being matched. */
	uint32_t callouts;
	bool started;
	bool valid; /* the line is valid UTF-8 */
	int64_t budget_ns;
	int64_t cpu_start; /* CLOCK_THREAD_CPUTIME_ID */
	int64_t deadline;  /* CLOCK_MONOTONIC */
};

struct ts_filter_cache {
	/* Protects the entry list, the thread list and the counters. */
	pthread_mutex_t lock;
	/* Entries; the idle ones (refs 0) in the order they became idle, the
	 * most recent nearest the head, so the victim is found from the tail. */
	struct entry *head, *tail;
	size_t nentries, nidle;
	struct tstate *threads;
	size_t nthreads;
	uint64_t hits, misses;
	pthread_key_t key; /* this thread's struct tstate */
	bool use_jit;	   /* immutable */
};

struct ts_filter {
	struct ts_filter_cache *cache;
	size_t ngrep; /* pat[0..ngrep) grep, pat[ngrep..npat) exclude */
	size_t npat;
	bool interp; /* a pattern runs in the interpreter */
	int scan;    /* a grep pattern with scan code, or -1 */
	struct entry *pat[TS_FILTER_MAX_PATTERNS];
};

/* ------------------------------------------------------------------ */
/* Per-thread state */

static void tstate_free(struct tstate *ts)
{
	if (!ts)
		return;
	pcre2_match_data_free(ts->md);
	pcre2_match_context_free(ts->mc);
	pcre2_match_context_free(ts->fmc);
	pcre2_jit_stack_free(ts->js);
	free(ts);
}

/* Key destructor, at the exit of a thread that matched. */
static void tstate_destroy(void *p)
{
	struct tstate *ts = p;
	struct ts_filter_cache *c = ts->cache;

	pthread_mutex_lock(&c->lock);
	if (ts->prev)
		ts->prev->next = ts->next;
	else
		c->threads = ts->next;
	if (ts->next)
		ts->next->prev = ts->prev;
	c->nthreads--;
	pthread_mutex_unlock(&c->lock);
	tstate_free(ts);
}

static int64_t clock_ns(clockid_t id)
{
	struct timespec t;
	clock_gettime(id, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Taken before every pattern item (PCRE2_AUTO_CALLOUT) and at the
 * pattern's own callouts: give up on the line once it has used its CPU
 * budget.  See the comment at the top. */
static int on_callout(pcre2_callout_block *cb, void *data)
{
	struct tstate *ts = data;
	(void)cb;

	ts->callouts++;
	if (ts->callouts % CHECK_EVERY || ts->callouts < START_AFTER)
		return 0;
	int64_t now = clock_ns(CLOCK_MONOTONIC);
	if (!ts->started) {
		ts->started = true;
		ts->cpu_start = clock_ns(CLOCK_THREAD_CPUTIME_ID);
		ts->deadline = now + ts->budget_ns;
		return 0;
	}
	if (now < ts->deadline)
		return 0;
	int64_t used = clock_ns(CLOCK_THREAD_CPUTIME_ID) - ts->cpu_start;
	if (used >= ts->budget_ns)
		return PCRE2_ERROR_CALLOUT;
	/* The thread did not run all that time: wait for the rest. */
	ts->deadline = now + (ts->budget_ns - used);
	return 0;
}

/* This thread's state, created on its first use.  NULL on ENOMEM. */
static struct tstate *thread_state(struct ts_filter_cache *c)
{
	struct tstate *ts = pthread_getspecific(c->key);
	if (ts)
		return ts;

	ts = calloc(1, sizeof(*ts));
	if (!ts)
		return NULL;
	ts->cache = c;
	ts->md = pcre2_match_data_create(1, NULL);
	ts->mc = pcre2_match_context_create(NULL);
	ts->fmc = pcre2_match_context_create(NULL);
	if (!ts->md || !ts->mc || !ts->fmc)
		goto fail;
	pcre2_set_match_limit(ts->fmc, TS_FILTER_FAST_MATCH_LIMIT);
	pcre2_set_match_limit(ts->mc, TS_FILTER_MATCH_LIMIT);
	pcre2_set_depth_limit(ts->mc, TS_FILTER_DEPTH_LIMIT);
	pcre2_set_heap_limit(ts->mc, TS_FILTER_HEAP_LIMIT_KIB);
	pcre2_set_callout(ts->mc, on_callout, ts);
	if (c->use_jit) {
		/* Without it (no JIT in the library, or ENOMEM) the JIT uses
		 * its 32 KiB default: still bounded. */
		ts->js = pcre2_jit_stack_create(TS_FILTER_JIT_STACK_MIN,
						TS_FILTER_JIT_STACK_MAX, NULL);
		if (ts->js) {
			pcre2_jit_stack_assign(ts->mc, NULL, ts->js);
			pcre2_jit_stack_assign(ts->fmc, NULL, ts->js);
		}
	}
	if (pthread_setspecific(c->key, ts))
		goto fail;

	pthread_mutex_lock(&c->lock);
	ts->next = c->threads;
	if (c->threads)
		c->threads->prev = ts;
	c->threads = ts;
	c->nthreads++;
	pthread_mutex_unlock(&c->lock);
	return ts;

fail:
	tstate_free(ts);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The cache */

struct ts_filter_cache *ts_filter_cache_new_jit(bool use_jit)
{
	struct ts_filter_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	if (pthread_mutex_init(&c->lock, NULL))
		goto fail_mutex;
	if (pthread_key_create(&c->key, tstate_destroy))
		goto fail_key;
	c->use_jit = use_jit;
	return c;

fail_key:
	pthread_mutex_destroy(&c->lock);
fail_mutex:
	free(c);
	return NULL;
}

struct ts_filter_cache *ts_filter_cache_new(void)
{
	const char *v = getenv("TAILSSE_NO_JIT");
	bool no_jit = v && *v && strcmp(v, "0") != 0;
	return ts_filter_cache_new_jit(!no_jit);
}

static void entry_free(struct entry *e)
{
	if (!e)
		return;
	pcre2_code_free(e->code);
	pcre2_code_free(e->strict);
	pcre2_code_free(e->fast);
	pcre2_code_free(e->scan);
	free(e);
}

void ts_filter_cache_free(struct ts_filter_cache *c)
{
	if (!c)
		return;
	/* The calling thread's state is freed with the others below; deleting
	 * the key first means no destructor runs for it any more. */
	pthread_setspecific(c->key, NULL);
	pthread_key_delete(c->key);
	while (c->threads) {
		struct tstate *ts = c->threads;
		c->threads = ts->next;
		tstate_free(ts);
	}
	while (c->head) {
		struct entry *e = c->head;
		assert(e->refs == 0 && "a filter outlives its cache");
		c->head = e->next;
		entry_free(e);
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void ts_filter_cache_stats(struct ts_filter_cache *c,
			   struct ts_filter_cache_stats *st)
{
	pthread_mutex_lock(&c->lock);
	st->entries = c->nentries;
	st->idle = c->nidle;
	st->threads = c->nthreads;
	st->hits = c->hits;
	st->misses = c->misses;
	pthread_mutex_unlock(&c->lock);
	st->jit = c->use_jit;
}

/* Caller holds c->lock. */
static void unlink_entry(struct ts_filter_cache *c, struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

/* Caller holds c->lock. */
static void push_entry(struct ts_filter_cache *c, struct entry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	else
		c->tail = e;
	c->head = e;
}

/* Caller holds c->lock.  Takes a reference. */
static struct entry *find_locked(struct ts_filter_cache *c, const char *pat,
				 size_t len, bool icase)
{
	for (struct entry *e = c->head; e; e = e->next) {
		if (e->len == len && e->icase == icase &&
		    memcmp(e->pat, pat, len) == 0) {
			if (e->refs++ == 0)
				c->nidle--;
			c->hits++;
			return e;
		}
	}
	return NULL;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Can the pattern be searched for in many lines at once (ts_filter_scan)
 * without missing a line that it matches alone?  With PCRE2_MULTILINE, ^
 * and $ mean what they mean in one line, and \b sees the same non-word
 * character at a line's edge; what differs is only what can see or eat
 * past a line's end: lookarounds, atomic groups and possessive repeats,
 * \A \z \Z \G \K, option changes, verbs, and anything that matches a
 * newline (\s \v \R \D \W \N{..} \p \x.. [^..] and such).  Refusing
 * those (and any escape not known to be harmless) leaves a candidate
 * search: every line it finds is matched again alone, and no line it
 * skips could have matched.  Conservative: when in doubt, no. */
static bool scan_safe(const char *pat, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char ch = pat[i];
		char nx = (char)(i + 1 < len ? pat[i + 1] : '\0');
		if (ch == '\\') {
			if (!strchr("dwSbBh.\\/-[](){}|*+?^$:#'\"@%&=!,<>~` ",
				    nx) ||
			    nx == '\0')
				return false;
			i++;
			continue;
		}
		if (ch == '[' && nx == '^')
			return false;
		if (ch == '\n' || ch == '\r')
			return false;
		if (ch == '(' && nx == '?' &&
		    !(i + 2 < len &&
		      (pat[i + 2] == ':' ||
		       (pat[i + 2] == 'i' && i + 3 < len &&
			(pat[i + 3] == ')' || pat[i + 3] == ':')))))
			return false;
		if (ch == '(' && nx == '*')
			return false;
		if ((ch == '*' || ch == '+' || ch == '?' || ch == '}') &&
		    nx == '+')
			return false;
	}
	return true;
}

/* Compile a new entry (not in the cache yet). */
static int compile(const struct ts_filter_cache *c, const char *pat, size_t len,
		   bool icase, struct entry **out, const char *name, char *err,
		   size_t errlen)
{
	uint32_t opts = COMPILE_OPTIONS | (icase ? PCRE2_CASELESS : 0);
	int code;
	PCRE2_SIZE off;

	pcre2_code *re =
		pcre2_compile((PCRE2_SPTR)pat, len, opts, &code, &off, NULL);
	if (!re) {
		if (code == PCRE2_ERROR_HEAP_FAILED)
			return -ENOMEM;
		PCRE2_UCHAR msg[256];
		if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
			snprintf((char *)msg, sizeof(msg), "error %d", code);
		set_err(err, errlen, "%s: %s at offset %zu", name,
			(const char *)msg, (size_t)off);
		return -EINVAL;
	}
	struct entry *e = malloc(sizeof(*e) + len + 1);
	if (!e) {
		pcre2_code_free(re);
		return -ENOMEM;
	}
	memset(e, 0, sizeof(*e));
	e->code = re;
	e->icase = icase;
	e->len = len;
	memcpy(e->pat, pat, len);
	e->pat[len] = '\0';
	/* A JIT failure (no JIT, ENOMEM, a pattern it cannot handle) leaves
	 * the interpreter, which obeys the same limits and budget. */
	atomic_init(&e->slow, false);
	if (c->use_jit)
		e->jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
	if (e->jit) {
		e->fast = pcre2_compile((PCRE2_SPTR)pat, len,
					opts & ~PCRE2_AUTO_CALLOUT, &code, &off,
					NULL);
		if (e->fast &&
		    pcre2_jit_compile(e->fast, PCRE2_JIT_COMPLETE) != 0) {
			pcre2_code_free(e->fast);
			e->fast = NULL;
		}
	}
	if (e->fast && scan_safe(pat, len)) {
		e->scan = pcre2_compile((PCRE2_SPTR)pat, len,
					(opts & ~PCRE2_AUTO_CALLOUT) |
						PCRE2_MULTILINE,
					&code, &off, NULL);
		if (e->scan &&
		    pcre2_jit_compile(e->scan, PCRE2_JIT_COMPLETE) != 0) {
			pcre2_code_free(e->scan);
			e->scan = NULL;
		}
	}
	/* With PCRE2_MATCH_INVALID_UTF the interpreter checks the subject
	 * from the start offset to the end at every call (and ignores
	 * PCRE2_NO_UTF_CHECK), which makes collecting ranges quadratic.  So
	 * it also gets the pattern without that option, for lines that
	 * ts_filter_match found valid (all the sanitised lines of a stream),
	 * matched with PCRE2_NO_UTF_CHECK.  The JIT checks nothing up front. */
	if (!e->jit) {
		e->strict = pcre2_compile((PCRE2_SPTR)pat, len,
					  opts & ~PCRE2_MATCH_INVALID_UTF,
					  &code, &off, NULL);
		if (!e->strict) {
			entry_free(e);
			return -ENOMEM; /* it compiled with the option */
		}
	}
	*out = e;
	return 0;
}

/* A reference to the entry for (pat, icase), compiling it when needed. */
static int acquire(struct ts_filter_cache *c, const char *pat, bool icase,
		   struct entry **out, const char *name, char *err,
		   size_t errlen)
{
	if (!pat) {
		set_err(err, errlen, "%s: no pattern", name);
		return -EINVAL;
	}
	size_t len = strnlen(pat, TS_FILTER_MAX_LEN + 1);
	if (len > TS_FILTER_MAX_LEN) {
		set_err(err, errlen, "%s: pattern longer than %d bytes", name,
			TS_FILTER_MAX_LEN);
		return -EINVAL;
	}

	pthread_mutex_lock(&c->lock);
	struct entry *e = find_locked(c, pat, len, icase);
	pthread_mutex_unlock(&c->lock);
	if (e) {
		*out = e;
		return 0;
	}

	/* Compile without the lock (JIT compiling takes a while); another
	 * thread may have added the same pattern meanwhile. */
	struct entry *ne;
	int rc = compile(c, pat, len, icase, &ne, name, err, errlen);
	if (rc)
		return rc;
	pthread_mutex_lock(&c->lock);
	e = find_locked(c, pat, len, icase);
	if (!e) {
		e = ne;
		ne = NULL;
		e->refs = 1;
		push_entry(c, e);
		c->nentries++;
		c->misses++;
	}
	pthread_mutex_unlock(&c->lock);
	entry_free(ne);
	*out = e;
	return 0;
}

static void release(struct ts_filter_cache *c, struct entry *e)
{
	struct entry *victim = NULL;

	pthread_mutex_lock(&c->lock);
	assert(e->refs > 0);
	if (--e->refs == 0) {
		unlink_entry(c, e);
		push_entry(c, e);
		if (++c->nidle > TS_FILTER_CACHE_IDLE_MAX) {
			victim = c->tail;
			while (victim->refs)
				victim = victim->prev;
			unlink_entry(c, victim);
			c->nidle--;
			c->nentries--;
		}
	}
	pthread_mutex_unlock(&c->lock);
	entry_free(victim);
}

/* ------------------------------------------------------------------ */
/* Filters */

int ts_filter_new(struct ts_filter_cache *c, const char *const *grep,
		  size_t ngrep, const char *const *exclude, size_t nexclude,
		  bool icase, struct ts_filter **out, char *err, size_t errlen)
{
	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (ngrep > TS_FILTER_MAX_PATTERNS ||
	    nexclude > TS_FILTER_MAX_PATTERNS ||
	    ngrep + nexclude > TS_FILTER_MAX_PATTERNS) {
		set_err(err, errlen, "too many patterns: %zu, at most %d",
			ngrep + nexclude, TS_FILTER_MAX_PATTERNS);
		return -EINVAL;
	}
	if (ngrep + nexclude == 0)
		return 0;

	struct ts_filter *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->cache = c;
	f->ngrep = ngrep;
	f->scan = -1;
	int rc = 0;
	for (size_t i = 0; i < ngrep + nexclude; i++) {
		bool g = i < ngrep;
		rc = acquire(c, g ? grep[i] : exclude[i - ngrep], icase,
			     &f->pat[i], g ? "grep" : "exclude", err, errlen);
		if (rc)
			goto fail;
		f->interp |= !f->pat[i]->jit;
		if (g && f->scan < 0 && f->pat[i]->scan)
			f->scan = (int)i;
		f->npat++;
	}
	*out = f;
	return 0;

fail:
	ts_filter_free(f);
	return rc;
}

void ts_filter_free(struct ts_filter *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->npat; i++)
		release(f->cache, f->pat[i]);
	free(f);
}

size_t ts_filter_jit(const struct ts_filter *f)
{
	size_t n = 0;
	for (size_t i = 0; f && i < f->npat; i++)
		n += f->pat[i]->jit;
	return n;
}

/* ------------------------------------------------------------------ */
/* UTF-8 */

static bool utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, bad;

	while (i < n) {
		if (n - i >= 8) { /* ASCII, eight bytes at a time */
			uint64_t w;
			memcpy(&w, p + i, 8);
			if (!(w & 0x8080808080808080u)) {
				i += 8;
				continue;
			}
		}
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t k = ts_utf8_seq(p + i, n - i, &bad);
		if (!k)
			return false;
		i += k;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Matching */

/* Match `e` against the line from `from`. */
static int run(struct entry *e, struct tstate *ts, const char *line, size_t len,
	       size_t from, uint32_t opts)
{
	if (e->fast && len <= TS_FILTER_FAST_MAX_LEN &&
	    !atomic_load_explicit(&e->slow, memory_order_relaxed)) {
		int rc = pcre2_match(e->fast, (PCRE2_SPTR)line, len, from, opts,
				     ts->md, ts->fmc);
		if (rc >= 0 || rc == PCRE2_ERROR_NOMATCH)
			return rc;
		/* a limit: guarded from now on, and this line again */
		atomic_store_explicit(&e->slow, true, memory_order_relaxed);
	}
	const pcre2_code *code = e->code;
	if (!e->jit && ts->valid) {
		code = e->strict;
		opts |= PCRE2_NO_UTF_CHECK;
	}
	return pcre2_match(code, (PCRE2_SPTR)line, len, from, opts, ts->md,
			   ts->mc);
}

/* Next position after `at` that does not hold a UTF-8 continuation byte. */
static size_t next_char(const char *line, size_t len, size_t at)
{
	at++;
	while (at < len && ((unsigned char)line[at] & 0xC0) == 0x80)
		at++;
	return at;
}

struct cur {
	size_t s, e;
	bool live;
};

/* The first non-empty match of `e` at or after `from`: cur->live false when
 * there is none.  0, or -1 when PCRE2 failed (a limit). */
static int next_match(struct entry *e, struct tstate *ts, const char *line,
		      size_t len, size_t from, struct cur *cur)
{
	cur->live = false;
	while (from <= len) {
		/* PCRE2_NOTEMPTY: the leftmost non-empty match, which is the
		 * next one a global search (Perl's /g) would report after
		 * skipping empty ones, and no loop on patterns like a* or ^. */
		int rc = run(e, ts, line, len, from, PCRE2_NOTEMPTY);
		if (rc == PCRE2_ERROR_NOMATCH)
			return 0;
		if (rc < 0)
			return -1;
		const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(ts->md);
		if (ov[1] > ov[0]) {
			cur->s = ov[0];
			cur->e = ov[1];
			cur->live = true;
			return 0;
		}
		/* Only \K could get here (a start after the end): step on. */
		size_t at = ov[0] > ov[1] ? ov[0] : ov[1];
		from = next_char(line, len, at > from ? at : from);
	}
	return 0;
}

static int put_range(struct ts_buf *b, size_t s, size_t e, bool comma)
{
	if (comma && ts_buf_append(b, ",", 1))
		return -1;
	if (ts_buf_append(b, "[", 1) || ts_buf_u64(b, s) ||
	    ts_buf_append(b, ",", 1) || ts_buf_u64(b, e) ||
	    ts_buf_append(b, "]", 1))
		return -1;
	return 0;
}

/* Append every grep pattern's matches, merged in order of (start, end).
 * cur[i] holds pattern i's first match (maybe empty), found when deciding;
 * the array is used up.  Ranges are best effort: when a limit or the budget
 * stops the search, the ranges found so far stay.  0, or -ENOMEM with `out`
 * as it was. */
static int write_ranges(const struct ts_filter *f, struct tstate *ts,
			const char *line, size_t len, struct cur *cur,
			struct ts_buf *out)
{
	size_t saved = out->len;
	size_t last_s = 0, last_e = 0;
	bool any = false;

	for (size_t i = 0; i < f->ngrep; i++) {
		if (cur[i].e > cur[i].s)
			continue;
		size_t from = cur[i].s < cur[i].e ? cur[i].s : cur[i].e;
		if (next_match(f->pat[i], ts, line, len, from, &cur[i]))
			return 0;
	}
	for (;;) {
		struct cur *best = NULL;
		size_t bi = 0;
		for (size_t i = 0; i < f->ngrep; i++) {
			struct cur *k = &cur[i];
			if (k->live && (!best || k->s < best->s ||
					(k->s == best->s && k->e < best->e))) {
				best = k;
				bi = i;
			}
		}
		if (!best)
			return 0;
		if (!any || best->s != last_s || best->e != last_e) {
			if (put_range(out, best->s, best->e, any)) {
				out->len = saved;
				return -ENOMEM;
			}
			any = true;
			last_s = best->s;
			last_e = best->e;
		}
		/* e > s >= the previous start: every pattern moves forward. */
		if (next_match(f->pat[bi], ts, line, len, best->e, best))
			return 0;
	}
}

enum ts_match ts_filter_match(struct ts_filter_cache *c,
			      const struct ts_filter *f, const char *line,
			      size_t len, struct ts_buf *ranges)
{
	if (!f)
		return TS_MATCH_YES;
	assert(c == f->cache);
	if (!line)
		line = "";
	struct tstate *ts = thread_state(c);
	if (!ts)
		return TS_MATCH_LIMIT;

	ts->callouts = 0;
	ts->started = false;
	ts->valid = f->interp && utf8_valid(line, len);
	/* Lines are at most 16 MiB (max_line); keep the product sane for any
	 * length. */
	size_t blen = len < ((size_t)1 << 36) ? len : ((size_t)1 << 36);
	ts->budget_ns = (int64_t)TS_FILTER_BUDGET_NS +
			(int64_t)blen * TS_FILTER_BUDGET_NS_PER_BYTE;

	struct cur cur[TS_FILTER_MAX_PATTERNS];
	for (size_t i = 0; i < f->ngrep; i++) {
		int rc = run(f->pat[i], ts, line, len, 0, 0);
		if (rc == PCRE2_ERROR_NOMATCH)
			return TS_MATCH_NO;
		if (rc < 0) /* a limit, the budget, or no memory */
			return TS_MATCH_LIMIT;
		const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(ts->md);
		cur[i] = (struct cur){ ov[0], ov[1], true };
	}
	for (size_t i = f->ngrep; i < f->npat; i++) {
		int rc = run(f->pat[i], ts, line, len, 0, 0);
		if (rc == PCRE2_ERROR_NOMATCH)
			continue;
		return rc < 0 ? TS_MATCH_LIMIT : TS_MATCH_NO;
	}
	if (ranges && f->ngrep && write_ranges(f, ts, line, len, cur, ranges))
		return TS_MATCH_LIMIT;
	return TS_MATCH_YES;
}

/* ------------------------------------------------------------------ */
/* JSON */

int ts_json_string(struct ts_buf *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t saved = out->len;
	size_t i = 0, run_start = 0;

	if (!s)
		s = "";
	const unsigned char *p = (const unsigned char *)s;
	if (ts_buf_append(out, "\"", 1))
		goto nomem;
	while (i < len) {
		unsigned char ch = p[i];
		char tmp[6];
		const char *esc = tmp;
		size_t elen, n = 1;

		if (ch >= 0x20 && ch != '"' && ch != '\\' && ch < 0x80) {
			i++;
			continue;
		}
		if (ch >= 0x80) {
			size_t bad = 0;
			n = ts_utf8_seq(p + i, len - i, &bad);
			if (n == 3 && ch == 0xE2 && p[i + 1] == 0x80 &&
			    (p[i + 2] == 0xA8 || p[i + 2] == 0xA9)) {
				esc = p[i + 2] == 0xA8 ? "\\u2028" : "\\u2029";
				elen = 6;
			} else if (n) {
				i += n;
				continue;
			} else {
				n = bad;
				esc = "\xEF\xBF\xBD"; /* U+FFFD */
				elen = 3;
			}
		} else if (ch == '"' || ch == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)ch;
			elen = 2;
		} else if (ch == '\b' || ch == '\f' || ch == '\n' ||
			   ch == '\r' || ch == '\t') {
			tmp[0] = '\\';
			tmp[1] = (char)(ch == '\b'   ? 'b'
					: ch == '\f' ? 'f'
					: ch == '\n' ? 'n'
					: ch == '\r' ? 'r'
						     : 't');
			elen = 2;
		} else {
			memcpy(tmp, "\\u00", 4);
			tmp[4] = hex[ch >> 4];
			tmp[5] = hex[ch & 15];
			elen = 6;
		}
		if (ts_buf_append(out, s + run_start, i - run_start) ||
		    ts_buf_append(out, esc, elen))
			goto nomem;
		i += n;
		run_start = i;
	}
	if (ts_buf_append(out, s + run_start, i - run_start) ||
	    ts_buf_append(out, "\"", 1))
		goto nomem;
	return 0;

nomem:
	out->len = saved;
	return -ENOMEM;
}

int ts_filter_json_line(struct ts_buf *out, const char *text, size_t len,
			uint64_t offset, const char *ranges, size_t rlen)
{
	size_t saved = out->len;

	if (ts_buf_append(out, "{\"line\":", 8) ||
	    ts_json_string(out, text, len) ||
	    ts_buf_append(out, ",\"offset\":", 10) || ts_buf_u64(out, offset) ||
	    ts_buf_append(out, ",\"match\":[", 10) ||
	    ts_buf_append(out, ranges, rlen) || ts_buf_append(out, "]}", 2)) {
		out->len = saved;
		return -ENOMEM;
	}
	return 0;
}

void ts_filter_slow(const struct ts_filter *f)
{
	for (size_t i = 0; f && i < f->npat; i++)
		atomic_store_explicit(&f->pat[i]->slow, true,
				      memory_order_relaxed);
}

bool ts_filter_is_slow(const struct ts_filter *f)
{
	for (size_t i = 0; f && i < f->npat; i++)
		if (f->pat[i]->fast &&
		    !atomic_load_explicit(&f->pat[i]->slow,
					  memory_order_relaxed))
			return false;
	return true;
}

bool ts_filter_can_scan(const struct ts_filter *f)
{
	return f && f->scan >= 0 &&
	       !atomic_load_explicit(&f->pat[f->scan]->slow,
				     memory_order_relaxed);
}

size_t ts_filter_scan(struct ts_filter_cache *c, const struct ts_filter *f,
		      const char *buf, size_t len, size_t from)
{
	struct tstate *ts = thread_state(c);
	if (!ts || !ts_filter_can_scan(f))
		return (size_t)-1;
	int rc = pcre2_match(f->pat[f->scan]->scan, (PCRE2_SPTR)buf, len, from,
			     0, ts->md, ts->fmc);
	if (rc == PCRE2_ERROR_NOMATCH)
		return len;
	if (rc < 0) {
		/* a limit: not a pattern to scan with */
		atomic_store_explicit(&f->pat[f->scan]->slow, true,
				      memory_order_relaxed);
		return (size_t)-1;
	}
	const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(ts->md);
	return ov[0] < len ? ov[0] : len;
}
