/* fuzz_config.c: any bytes -> ts_config_parse (src/config.c).
 *
 * Properties: it never crashes or reads past the text (an exact-size copy
 * without a NUL); it returns 0, -EINVAL or -ENOMEM; an error is one line of
 * printable text "FNAME:N: ..." whose N is a line of the input (1 to its
 * number of lines); a parsed config keeps the contract's bounds (every log
 * has a valid, unique name and a path; tls_cert and tls_key come
 * together).  The config is freed either way, so LeakSanitizer sees any leak. */
#include <errno.h>

#include "config.h"
#include "fuzz.h"

#define FNAME "fuzz.conf"

/* How many lines ts_config_parse numbers: the text after a UTF-8 BOM, cut
 * at each '\n', a last line without one counting too. */
static size_t count_lines(const char *s, size_t n)
{
	size_t lines = 0;
	if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
		s += 3;
		n -= 3;
	}
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\n')
			lines++;
	if (n > 0 && s[n - 1] != '\n')
		lines++;
	return lines;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > TS_NAME_MAX || strcmp(s, ".") == 0 ||
	    strcmp(s, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

static void check_error(const char *err, size_t errlen, size_t lines)
{
	size_t len = strnlen(err, errlen);
	FUZZ_CHECK(len < errlen, "error not terminated");
	for (size_t i = 0; i < len; i++)
		FUZZ_CHECK((unsigned char)err[i] >= 0x20 &&
				   (unsigned char)err[i] != 0x7f,
			   "control byte 0x%02x at %zu in \"%s\"",
			   (unsigned char)err[i], i, err);
	FUZZ_CHECK(strncmp(err, FNAME ":", strlen(FNAME ":")) == 0,
		   "error does not start with the file name: \"%s\"", err);
	const char *p = err + strlen(FNAME ":");
	size_t line = 0, digits = 0;
	for (; *p >= '0' && *p <= '9' && digits < 20; p++, digits++)
		line = line * 10 + (size_t)(*p - '0');
	FUZZ_CHECK(digits > 0 && *p == ':', "error has no line number: \"%s\"",
		   err);
	FUZZ_CHECK(line >= 1 && line <= lines,
		   "error names line %zu of %zu: \"%s\"", line, lines, err);
}

static void check_config(const struct ts_config *c)
{
	FUZZ_CHECK(c->listen && c->frame_ancestors && c->frame_ancestors[0],
		   "listen or frame_ancestors missing");
	FUZZ_CHECK(c->heartbeat >= 1 && c->heartbeat <= 86400, "heartbeat %u",
		   c->heartbeat);
	FUZZ_CHECK(c->max_clients >= 1, "max_clients 0");
	FUZZ_CHECK(c->max_line >= 16 && c->max_line <= 16777216, "max_line %zu",
		   c->max_line);
	FUZZ_CHECK(c->conn_memory >= 4096, "conn_memory %zu", c->conn_memory);
	/* both or neither (until TLS exists: neither, as token and
	 * cors_origin, which are refused with a value) */
	FUZZ_CHECK(!c->tls_cert == !c->tls_key, "tls_cert without tls_key");
	FUZZ_CHECK(c->nlogs == 0 || c->logs, "nlogs without logs");
	for (size_t i = 0; i < c->nlogs; i++) {
		FUZZ_CHECK(valid_name(c->logs[i].name), "log name '%s'",
			   c->logs[i].name);
		FUZZ_CHECK(c->logs[i].path && c->logs[i].path[0],
			   "log '%s' has no path", c->logs[i].name);
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(c->logs[i].name, c->logs[j].name),
				   "log '%s' twice", c->logs[i].name);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ts_config c;
	char err[TS_ERR_MAX];
	char *text = fuzz_dup(data, size);

	FUZZ_CHECK(ts_config_init(&c) == 0, "init");
	memset(err, 'x', sizeof(err));
	int rc = ts_config_parse(&c, text, size, FNAME, err, sizeof(err));
	if (rc == 0)
		check_config(&c);
	else if (rc == -EINVAL)
		check_error(err, sizeof(err), count_lines(text, size));
	else
		FUZZ_CHECK(rc == -ENOMEM, "rc %d", rc);
	ts_config_free(&c);
	free(text);
	return 0;
}
