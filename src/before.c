#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "before.h"
#include "lines.h"
#include "sse.h"

/* What the predicate of the backwards search needs: a line counts when
 * the filter keeps its text as a client would get it. */
struct keep_arg {
	const struct ts_before *b;
	struct ts_buf text;
};

static int keep(const char *line, size_t len, void *arg)
{
	struct keep_arg *k = arg;
	if (!k->b->filter)
		return 1;
	ts_buf_reset(&k->text);
	if (ts_sse_text(&k->text, line, len, k->b->max_line))
		return -1;
	enum ts_match m = ts_filter_match(k->b->filters, k->b->filter,
					  k->text.data ? k->text.data : "",
					  k->text.len, NULL);
	return m == TS_MATCH_YES;
}

/* One {"id":...,"line":...[,"match":[...]]} for the line [p, p+len) whose
 * '\n' is at `nl_off`, if the filter keeps it.  1 written, 0 not, -errno. */
static int put_line(const struct ts_before *b, struct keep_arg *k,
		    struct ts_buf *ranges, const char *p, size_t len,
		    uint64_t nl_off, bool first, struct ts_buf *out)
{
	ts_buf_reset(&k->text);
	ts_buf_reset(ranges);
	if (ts_sse_text(&k->text, p, len, b->max_line))
		return -ENOMEM;
	const char *text = k->text.data ? k->text.data : "";
	if (b->filter &&
	    ts_filter_match(b->filters, b->filter, text, k->text.len,
			    b->grep ? ranges : NULL) != TS_MATCH_YES)
		return 0;
	int rc = ts_buf_printf(out, "%s{\"id\":\"%llu:%llu\",\"line\":",
			       first ? "" : ",", (unsigned long long)b->ino,
			       (unsigned long long)nl_off + 1);
	if (rc == 0)
		rc = ts_json_string(out, text, k->text.len);
	if (rc == 0 && b->grep) {
		rc = ts_buf_puts(out, ",\"match\":[");
		if (rc == 0 && ranges->len)
			rc = ts_buf_append(out, ranges->data, ranges->len);
		if (rc == 0)
			rc = ts_buf_puts(out, "]");
	}
	if (rc == 0)
		rc = ts_buf_puts(out, "}");
	return rc ? rc : 1;
}

int ts_before_json(const struct ts_before *b, struct ts_buf *out)
{
	struct keep_arg k = { b, TS_BUF_INIT };
	struct ts_buf ranges = TS_BUF_INIT;
	uint64_t start = 0, end = 0;
	char *buf = NULL;
	int rc = 0;
	if (b->off > 0)
		rc = ts_lines_tail_match(b->fd, b->off, b->n,
					 TS_BEFORE_MAX_BYTES, keep, &k, &start,
					 &end);
	if (rc == 0 && end > start) {
		buf = malloc((size_t)(end - start));
		rc = buf ? ts_lines_pread_full(b->fd, buf,
					       (size_t)(end - start), start)
			 : -ENOMEM;
	}
	if (rc == 0)
		rc = ts_buf_puts(out, "{\"lines\":[");
	bool first = true;
	for (size_t i = 0; rc == 0 && start + i < end;) {
		const char *p = buf + i;
		const char *nl = memchr(p, '\n', (size_t)(end - start - i));
		if (!nl)
			break;
		int r = put_line(b, &k, &ranges, p, (size_t)(nl - p),
				 start + (uint64_t)(nl - buf), first, out);
		if (r < 0)
			rc = r;
		else if (r > 0)
			first = false;
		i = (size_t)(nl - buf) + 1;
	}
	if (rc == 0)
		rc = ts_buf_puts(out, "]}\n");
	free(buf);
	ts_buf_free(&k.text);
	ts_buf_free(&ranges);
	return rc;
}
