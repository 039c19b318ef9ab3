/* config.c: parse the INI config file and command-line logs into
 * struct ts_config.  Pure apart from reading the file in ts_config_load, so
 * ts_config_parse can be unit-tested and fuzzed on any byte string. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* the GNU strerror_r, which returns the message */
#endif

#include "config.h"
#include "iplimit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* A config file is a few hundred bytes; anything this large is a wrong
 * path (a log, /dev/zero), and the bound keeps a reload cheap. */
#define CONFIG_MAX_BYTES (1024 * 1024)

#define NAME_RULE "(allowed: A-Z a-z 0-9 . _ -, 1 to 64 characters)"

/* ---------------------------------------------------------------- helpers */

/* Every message is one line: a newline or other control byte echoed from the
 * input (a command-line argument may hold one) is shown as '?', so a caller
 * can print err with a single "%s\n" and logs stay one record per error. */
void ts_config_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	/* A negative return means an encoding error: keep what was written. */
	if (vsnprintf(err, errlen, fmt, ap) < 0)
		err[0] = '\0';
	va_end(ap);
	for (char *p = err; *p != '\0'; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch < 0x20 || ch == 0x7f)
			*p = '?';
	}
}

static bool is_space(char ch)
{
	/* Not '\n', which never reaches here; '\r' is here so CRLF works. */
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' ||
	       ch == '\v';
}

static bool is_name_char(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	       (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

static bool is_dot_name(const char *s, size_t len)
{
	return (len == 1 && s[0] == '.') ||
	       (len == 2 && s[0] == '.' && s[1] == '.');
}

/* The parenthesised reason for an invalid name, to end a message with. */
static const char *name_rule(const char *s, size_t len)
{
	if (is_dot_name(s, len))
		return "('.' and '..' cannot be used: a URL path would "
		       "collapse them)";
	return NAME_RULE;
}

static void trim(const char **s, size_t *len)
{
	while (*len > 0 && is_space((*s)[0])) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && is_space((*s)[*len - 1]))
		(*len)--;
}

/* Replace *dst with a copy of (s, len); an empty value stores NULL when
 * empty_is_null, which is how "cors_origin =" turns a feature off. */
static int set_str(char **dst, const char *s, size_t len, bool empty_is_null)
{
	char *copy = NULL;

	if (len > 0 || !empty_is_null) {
		copy = strndup(s, len);
		if (copy == NULL)
			return -ENOMEM;
	}
	free(*dst);
	*dst = copy;
	return 0;
}

/* Decimal digits only: no sign, no spaces, no "0x", no trailing junk. */
static int parse_ulong(const char *s, size_t len, unsigned long min,
		       unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
		/* Stop before v can wrap: max is far below ULONG_MAX / 10. */
		if (v > max)
			return -ERANGE;
	}
	if (v < min)
		return -ERANGE;
	*out = v;
	return 0;
}

static struct ts_log_conf *find_log(const struct ts_config *c, const char *name,
				    size_t len)
{
	for (size_t i = 0; i < c->nlogs; i++) {
		if (strlen(c->logs[i].name) == len &&
		    memcmp(c->logs[i].name, name, len) == 0)
			return &c->logs[i];
	}
	return NULL;
}

/* Append a log; path may be NULL (a [log] section whose path comes later).
 * The caller has validated the name and checked for duplicates. */
static int append_log(struct ts_config *c, const char *name, size_t namelen,
		      const char *path, size_t pathlen)
{
	struct ts_log_conf *logs;
	char *p = NULL;

	if (path != NULL) {
		p = strndup(path, pathlen);
		if (p == NULL)
			return -ENOMEM;
	}
	logs = realloc(c->logs, (c->nlogs + 1) * sizeof(*logs));
	if (logs == NULL) {
		free(p);
		return -ENOMEM;
	}
	c->logs = logs;
	memset(&logs[c->nlogs], 0, sizeof(logs[c->nlogs]));
	memcpy(logs[c->nlogs].name, name, namelen);
	logs[c->nlogs].path = p;
	c->nlogs++;
	return 0;
}

/* ------------------------------------------------------------ public API */

bool ts_config_valid_name(const char *s, size_t len)
{
	if (s == NULL || len < 1 || len > TS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!is_name_char(s[i]))
			return false;
	}
	/* The contract's character set allows them, but /api/logs/../events
	 * is normalised away by every client, so such a log is unreachable. */
	return !is_dot_name(s, len);
}

int ts_config_init(struct ts_config *c)
{
	char err[TS_ERR_MAX];
	int rc;

	memset(c, 0, sizeof(*c));
	c->heartbeat = TS_DEFAULT_HEARTBEAT;
	c->retry_ms = TS_DEFAULT_RETRY_MS;
	c->max_clients = TS_DEFAULT_MAX_CLIENTS;
	c->max_line = TS_DEFAULT_MAX_LINE;
	c->conn_memory = TS_DEFAULT_CONN_MEMORY;
	c->backlog_default = 0;
	c->header_timeout = TS_DEFAULT_HEADER_TIMEOUT;
	c->listen = strdup(TS_DEFAULT_LISTEN);
	c->frame_ancestors = strdup(TS_DEFAULT_FRAME_ANCESTORS);
	if (c->listen == NULL || c->frame_ancestors == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = ts_config_parse_listen(c->listen, &c->listen_addr,
				    &c->listen_addrlen, err, sizeof(err));
	if (rc < 0)
		goto fail;
	return 0;
fail:
	ts_config_free(c);
	return rc;
}

/* Every string a struct ts_config owns (its logs' paths aside): the one
 * list that freeing and copying go by. */
static const size_t owned_strs[] = {
	offsetof(struct ts_config, listen),
	offsetof(struct ts_config, www),
	offsetof(struct ts_config, cors_origin),
	offsetof(struct ts_config, frame_ancestors),
	offsetof(struct ts_config, token),
	offsetof(struct ts_config, token_file),
	offsetof(struct ts_config, tls_cert_pem),
	offsetof(struct ts_config, tls_key_pem),
	offsetof(struct ts_config, tls_cert),
	offsetof(struct ts_config, tls_key),
	offsetof(struct ts_config, user),
	offsetof(struct ts_config, trusted_proxies),
};
#define N_OWNED_STRS (sizeof(owned_strs) / sizeof(owned_strs[0]))

static char **str_at(struct ts_config *c, size_t off)
{
	return (char **)(void *)((char *)c + off);
}

static const char *str_of(const struct ts_config *c, size_t off)
{
	return *(char *const *)(const void *)((const char *)c + off);
}

void ts_config_free(struct ts_config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < N_OWNED_STRS; i++)
		free(*str_at(c, owned_strs[i]));
	for (size_t i = 0; i < c->nlogs; i++)
		free(c->logs[i].path);
	free(c->logs);
	/* Zeroed, so a second free or a new init is safe. */
	memset(c, 0, sizeof(*c));
}

int ts_config_copy(struct ts_config *dst, const struct ts_config *src)
{
	*dst = *src;
	/* every pointer dst owns is set below; until then none is */
	for (size_t i = 0; i < N_OWNED_STRS; i++)
		*str_at(dst, owned_strs[i]) = NULL;
	dst->logs = NULL;
	dst->nlogs = 0;
	int rc = 0;
	for (size_t i = 0; i < N_OWNED_STRS && !rc; i++) {
		const char *s = str_of(src, owned_strs[i]);
		char **d = str_at(dst, owned_strs[i]);
		*d = s ? strdup(s) : NULL;
		rc = s && !*d ? -ENOMEM : 0;
	}
	if (!rc && src->nlogs) {
		dst->logs = calloc(src->nlogs, sizeof(*dst->logs));
		rc = dst->logs ? 0 : -ENOMEM;
		for (size_t i = 0; i < src->nlogs && !rc; i++) {
			dst->logs[i] = src->logs[i];
			dst->logs[i].path = strdup(src->logs[i].path);
			dst->nlogs = i + 1;
			rc = dst->logs[i].path ? 0 : -ENOMEM;
		}
	}
	if (rc)
		ts_config_free(dst);
	return rc;
}

/* Split a listen value into its host and port: "[IPV6]:PORT", "ADDR:PORT"
 * or ":PORT".  *v6: the host was in brackets. */
static int split_listen(const char *s, const char **host, size_t *hostlen,
			const char **port, bool *v6, char *err, size_t errlen)
{
	const char *colon;

	if (s[0] == '[') {
		const char *rbr = strchr(s, ']');

		if (rbr == NULL || rbr[1] != ':') {
			ts_config_err(err, errlen,
				      "listen: expected [IPV6]:PORT, got '%s'",
				      s);
			return -EINVAL;
		}
		*host = s + 1;
		*hostlen = (size_t)(rbr - *host);
		colon = rbr + 1;
		*v6 = true;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			ts_config_err(err, errlen,
				      "listen: missing port: expected ADDR:PORT, "
				      "[IPV6]:PORT or :PORT, got '%s'",
				      s);
			return -EINVAL;
		}
		*host = s;
		*hostlen = (size_t)(colon - s);
		if (memchr(s, ':', *hostlen) != NULL) {
			ts_config_err(err, errlen,
				      "listen: an IPv6 address needs brackets, "
				      "e.g. [::1]:8080, got '%s'",
				      s);
			return -EINVAL;
		}
		*v6 = false;
	}
	*port = colon + 1;
	return 0;
}

int ts_config_parse_listen(const char *s, struct sockaddr_storage *ss,
			   socklen_t *len, char *err, size_t errlen)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	const char *host, *port;
	char hostbuf[INET6_ADDRSTRLEN];
	size_t hostlen;
	unsigned long portnum;
	bool v6;

	if (s == NULL)
		s = "";
	if (split_listen(s, &host, &hostlen, &port, &v6, err, errlen) < 0)
		return -EINVAL;
	if (parse_ulong(port, strlen(port), 1, 65535, &portnum) < 0) {
		ts_config_err(err, errlen,
			      "listen: port must be an integer from 1 to 65535, "
			      "got '%s'",
			      s);
		return -EINVAL;
	}
	if (hostlen >= sizeof(hostbuf)) {
		ts_config_err(
			err, errlen,
			"listen: expected ADDR:PORT with a numeric address, "
			"got '%s'",
			s);
		return -EINVAL;
	}
	memcpy(hostbuf, host, hostlen);
	hostbuf[hostlen] = '\0';

	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	if (!v6 && hostlen == 0) {
		/* ":PORT" means every interface.  The IPv6 wildcard covers
		 * IPv4 too once the HTTP layer clears IPV6_V6ONLY (dual
		 * stack), which it must do for this address. */
		v6 = true;
		sin6.sin6_addr = in6addr_any;
	} else if (!v6 && strcasecmp(hostbuf, "localhost") == 0) {
		/* The one name we know without DNS, which a daemon starting
		 * at boot may not have yet. */
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (inet_pton(v6 ? AF_INET6 : AF_INET, hostbuf,
			     v6 ? (void *)&sin6.sin6_addr
				: (void *)&sin.sin_addr) != 1) {
		ts_config_err(
			err, errlen,
			"listen: expected ADDR:PORT with a numeric address, "
			"got '%s'",
			s);
		return -EINVAL;
	}

	memset(ss, 0, sizeof(*ss));
	if (v6) {
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons((uint16_t)portnum);
		memcpy(ss, &sin6, sizeof(sin6));
		*len = sizeof(sin6);
	} else {
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)portnum);
		memcpy(ss, &sin, sizeof(sin));
		*len = sizeof(sin);
	}
	return 0;
}

/* ---------------------------------------------------------------- parser */

enum key_kind { K_STR, K_STR_NONEMPTY, K_LISTEN, K_UINT, K_SIZE };

struct server_key {
	const char *name;
	enum key_kind kind;
	size_t off;		/* of the field in struct ts_config */
	unsigned long min, max; /* for K_UINT and K_SIZE */
};

#define FIELD(f) offsetof(struct ts_config, f)

static const struct server_key server_keys[] = {
	{ "listen", K_LISTEN, FIELD(listen), 0, 0 },
	{ "www", K_STR, FIELD(www), 0, 0 },
	{ "heartbeat", K_UINT, FIELD(heartbeat), 1, 86400 },
	{ "retry", K_UINT, FIELD(retry_ms), 0, 3600000 },
	{ "max_clients", K_UINT, FIELD(max_clients), 1, 1000000 },
	{ "max_line", K_SIZE, FIELD(max_line), 16, 16777216 },
	{ "conn_memory", K_SIZE, FIELD(conn_memory), 4096, 16777216 },
	{ "backlog_default", K_UINT, FIELD(backlog_default), 0, 1000000 },
	{ "cors_origin", K_STR, FIELD(cors_origin), 0, 0 },
	{ "frame_ancestors", K_STR_NONEMPTY, FIELD(frame_ancestors), 0, 0 },
	{ "token", K_STR, FIELD(token), 0, 0 },
	{ "token_file", K_STR, FIELD(token_file), 0, 0 },
	{ "tls_cert", K_STR, FIELD(tls_cert), 0, 0 },
	{ "tls_key", K_STR, FIELD(tls_key), 0, 0 },
	{ "user", K_STR, FIELD(user), 0, 0 },
	{ "header_timeout", K_UINT, FIELD(header_timeout), 1, 3600 },
	{ "max_streams_per_ip", K_UINT, FIELD(max_streams_per_ip), 0, 1000000 },
	{ "trusted_proxies", K_STR, FIELD(trusted_proxies), 0, 0 },
};

#define N_SERVER_KEYS (sizeof(server_keys) / sizeof(server_keys[0]))

enum section { SEC_NONE, SEC_SERVER, SEC_LOG };

struct parser {
	struct ts_config *c;
	const char *fname;
	char *err;
	size_t errlen;
	size_t lineno;
	enum section sec;
	size_t log_idx;	 /* the current [log] in c->logs */
	size_t log_line; /* its header line, where a missing path is reported */
	/* Per server_keys[] entry of kind K_STR: the line of its value when
	 * that value (the last one, as later values win) is non-empty, else
	 * 0: for the checks made once the whole file is read. */
	size_t value_line[N_SERVER_KEYS];
};

#define perr(ps, ...) parse_err((ps), (ps)->lineno, __VA_ARGS__)

static void __attribute__((format(printf, 3, 4)))
parse_err(struct parser *ps, size_t line, const char *fmt, ...)
{
	char what[TS_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(what, sizeof(what), fmt, ap) < 0)
		what[0] = '\0';
	va_end(ap);
	ts_config_err(ps->err, ps->errlen, "%s:%zu: %s", ps->fname, line, what);
}

static int oom(struct parser *ps)
{
	perr(ps, "out of memory");
	return -ENOMEM;
}

/* Called when a section ends (at the next header and at end of file). */
static int end_section(struct parser *ps)
{
	if (ps->sec == SEC_LOG && ps->c->logs[ps->log_idx].path == NULL) {
		parse_err(ps, ps->log_line, "log '%s' has no path",
			  ps->c->logs[ps->log_idx].name);
		return -EINVAL;
	}
	ps->sec = SEC_NONE;
	return 0;
}

/* line is trimmed, starts with '[', and is not empty. */
static int parse_header(struct parser *ps, const char *line, size_t len)
{
	const char *in, *name;
	size_t inlen, namelen;
	int rc;

	rc = end_section(ps);
	if (rc < 0)
		return rc;
	if (len < 2 || line[len - 1] != ']') {
		perr(ps, "expected ']' at the end of section header '%.*s'",
		     (int)len, line);
		return -EINVAL;
	}
	in = line + 1;
	inlen = len - 2;
	trim(&in, &inlen);
	if (inlen == 6 && memcmp(in, "server", 6) == 0) {
		ps->sec = SEC_SERVER;
		return 0;
	}
	if (inlen < 3 || memcmp(in, "log", 3) != 0 ||
	    (inlen > 3 && !is_space(in[3]))) {
		perr(ps, "unknown section '%.*s'", (int)len, line);
		return -EINVAL;
	}
	name = in + 3;
	namelen = inlen - 3;
	trim(&name, &namelen);
	if (namelen == 0) {
		perr(ps, "section [log] needs a name, e.g. [log syslog]");
		return -EINVAL;
	}
	if (!ts_config_valid_name(name, namelen)) {
		perr(ps, "invalid log name '%.*s' %s", (int)namelen, name,
		     name_rule(name, namelen));
		return -EINVAL;
	}
	if (find_log(ps->c, name, namelen) != NULL) {
		perr(ps, "duplicate log name '%.*s'", (int)namelen, name);
		return -EINVAL;
	}
	/* Added now, path to come, so a duplicate later in the file is
	 * caught by the same lookup as any other. */
	if (append_log(ps->c, name, namelen, NULL, 0) < 0)
		return oom(ps);
	ps->sec = SEC_LOG;
	ps->log_idx = ps->c->nlogs - 1;
	ps->log_line = ps->lineno;
	return 0;
}

static int set_server_key(struct parser *ps, const struct server_key *k,
			  const char *val, size_t vlen)
{
	char *base = (char *)ps->c + k->off;
	unsigned long n;

	switch (k->kind) {
	case K_STR:
		if (set_str((char **)(void *)base, val, vlen, true) < 0)
			return oom(ps);
		ps->value_line[k - server_keys] = vlen > 0 ? ps->lineno : 0;
		return 0;
	case K_STR_NONEMPTY:
		if (vlen == 0) {
			/* An empty CSP source list is not valid CSP. */
			perr(ps,
			     "%s: must not be empty (use 'none' to forbid "
			     "embedding)",
			     k->name);
			return -EINVAL;
		}
		if (set_str((char **)(void *)base, val, vlen, false) < 0)
			return oom(ps);
		return 0;
	case K_LISTEN: {
		struct sockaddr_storage ss;
		socklen_t sslen;
		char why[TS_ERR_MAX];
		char *text = strndup(val, vlen);
		int rc;

		if (text == NULL)
			return oom(ps);
		rc = ts_config_parse_listen(text, &ss, &sslen, why,
					    sizeof(why));
		if (rc < 0) {
			free(text);
			perr(ps, "%s", why);
			return rc;
		}
		free(ps->c->listen);
		ps->c->listen = text;
		ps->c->listen_addr = ss;
		ps->c->listen_addrlen = sslen;
		return 0;
	}
	case K_UINT:
	case K_SIZE:
		if (parse_ulong(val, vlen, k->min, k->max, &n) < 0) {
			perr(ps,
			     "%s: expected an integer from %lu to %lu, "
			     "got '%.*s'",
			     k->name, k->min, k->max, (int)vlen, val);
			return -EINVAL;
		}
		if (k->kind == K_UINT)
			*(unsigned *)(void *)base = (unsigned)n;
		else
			*(size_t *)(void *)base = (size_t)n;
		return 0;
	}
	return -EINVAL; /* not reached: every kind is handled above */
}

/* line is trimmed, not empty, not a header. */
static int parse_key(struct parser *ps, const char *line, size_t len)
{
	const char *eq = memchr(line, '=', len);
	const char *key = line, *val;
	size_t klen, vlen;

	if (eq == NULL || eq == line) {
		perr(ps, "expected 'key = value'");
		return -EINVAL;
	}
	klen = (size_t)(eq - line);
	val = eq + 1;
	vlen = len - klen - 1;
	trim(&key, &klen);
	trim(&val, &vlen);

	switch (ps->sec) {
	case SEC_NONE:
		perr(ps,
		     "key '%.*s' is outside any section (put it under "
		     "[server] or [log NAME])",
		     (int)klen, key);
		return -EINVAL;
	case SEC_SERVER:
		for (size_t i = 0;
		     i < sizeof(server_keys) / sizeof(server_keys[0]); i++) {
			if (strlen(server_keys[i].name) == klen &&
			    memcmp(server_keys[i].name, key, klen) == 0)
				return set_server_key(ps, &server_keys[i], val,
						      vlen);
		}
		perr(ps, "unknown key '%.*s' in [server]", (int)klen, key);
		return -EINVAL;
	case SEC_LOG: {
		struct ts_log_conf *log = &ps->c->logs[ps->log_idx];

		if (klen != 4 || memcmp(key, "path", 4) != 0) {
			perr(ps, "unknown key '%.*s' in [log %s]", (int)klen,
			     key, log->name);
			return -EINVAL;
		}
		if (vlen == 0) {
			perr(ps, "path: must not be empty");
			return -EINVAL;
		}
		if (set_str(&log->path, val, vlen, false) < 0)
			return oom(ps);
		return 0;
	}
	}
	return -EINVAL; /* not reached */
}

static int parse_line(struct parser *ps, const char *line, size_t len)
{
	size_t i;

	if (memchr(line, '\0', len) != NULL) {
		perr(ps, "NUL byte in the file (is it a text file?)");
		return -EINVAL;
	}
	trim(&line, &len);
	if (len == 0 || line[0] == '#')
		return 0;
	/* '#' after whitespace starts a comment; elsewhere it is data, so
	 * "path = /var/log/a#b" keeps it. */
	for (i = 1; i < len; i++) {
		if (line[i] == '#' && is_space(line[i - 1])) {
			len = i;
			break;
		}
	}
	trim(&line, &len);
	if (line[0] == '[')
		return parse_header(ps, line, len);
	return parse_key(ps, line, len);
}

static size_t line_of(const struct parser *ps, const char *key)
{
	for (size_t i = 0; i < N_SERVER_KEYS; i++)
		if (strcmp(server_keys[i].name, key) == 0)
			return ps->value_line[i];
	return 0;
}

/* After the whole file (later values win): keys that go together. */
static int check_pairs(struct parser *ps)
{
	const struct ts_config *c = ps->c;
	if (!c->tls_cert != !c->tls_key) {
		const char *set = c->tls_cert ? "tls_cert" : "tls_key";
		parse_err(ps, line_of(ps, set),
			  "%s is set without %s: HTTPS "
			  "needs both",
			  set, c->tls_cert ? "tls_key" : "tls_cert");
		return -EINVAL;
	}
	if (c->token && c->token_file) {
		size_t a = line_of(ps, "token"), b = line_of(ps, "token_file");
		parse_err(ps, a > b ? a : b,
			  "token and token_file are both "
			  "set: keep one");
		return -EINVAL;
	}
	for (const char *p = c->trusted_proxies; p && *p;) {
		size_t n = strcspn(p, " \t");
		struct ts_ipaddr addr;
		if (n > 0 && !ts_ipaddr_parse(&addr, p, n)) {
			parse_err(ps, line_of(ps, "trusted_proxies"),
				  "trusted_proxies: '%.*s' is not an IP address",
				  (int)(n > 64 ? 64 : n), p);
			return -EINVAL;
		}
		p += n;
		p += strspn(p, " \t");
	}
	return 0;
}

int ts_config_parse(struct ts_config *c, const char *text, size_t len,
		    const char *fname, char *err, size_t errlen)
{
	struct parser ps = {
		.c = c,
		.fname = fname ? fname : "(config)",
		.err = err,
		.errlen = errlen,
		.sec = SEC_NONE,
	};
	const char *p, *end;
	int rc;

	if (text == NULL) {
		if (len == 0)
			return 0;
		ts_config_err(err, errlen, "%s: no text to parse", ps.fname);
		return -EINVAL;
	}
	p = text;
	end = text + len;
	/* Windows editors that write CRLF may also write a BOM. */
	if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;

		ps.lineno++;
		rc = parse_line(&ps, p, (size_t)(le - p));
		if (rc < 0)
			return rc;
		p = nl ? nl + 1 : end;
	}
	rc = end_section(&ps);
	if (rc < 0)
		return rc;
	return check_pairs(&ps);
}

#define PEM_MAX (1024 * 1024)

/* Read a PEM file whole into *out.  0 or -errno (err names key and path). */
static int read_pem(const char *key, const char *path, char **out, char *err,
		    size_t errlen)
{
	char ebuf[256];
	FILE *fp = fopen(path, "re");
	if (!fp) {
		int e = errno;
		ts_config_err(err, errlen, "%s = %s: %s", key, path,
			      strerror_r(e, ebuf, sizeof(ebuf)));
		return -e;
	}
	char *buf = malloc(PEM_MAX + 1);
	size_t n = buf ? fread(buf, 1, PEM_MAX + 1, fp) : 0;
	bool bad = !buf || ferror(fp) || n > PEM_MAX || n == 0 ||
		   memchr(buf, '\0', n) || !memmem(buf, n, "-----BEGIN ", 11);
	(void)fclose(fp); /* read only: all it read is checked */
	if (bad) {
		ts_config_err(err, errlen, "%s = %s: %s", key, path,
			      !buf	    ? "out of memory"
			      : n > PEM_MAX ? "too big for a PEM file"
					    : "not a PEM file");
		free(buf);
		return -EINVAL;
	}
	buf[n] = '\0';
	free(*out);
	*out = buf;
	return 0;
}

int ts_config_read_tls(struct ts_config *c, char *err, size_t errlen)
{
	if (!c->tls_cert || !c->tls_key)
		return 0;
	int rc = read_pem("tls_cert", c->tls_cert, &c->tls_cert_pem, err,
			  errlen);
	if (rc == 0)
		rc = read_pem("tls_key", c->tls_key, &c->tls_key_pem, err,
			      errlen);
	return rc;
}

int ts_config_read_token(struct ts_config *c, char *err, size_t errlen)
{
	char ebuf[256];
	if (!c->token_file)
		return 0;
	FILE *fp = fopen(c->token_file, "re");
	if (!fp) {
		int e = errno;
		ts_config_err(err, errlen, "token_file = %s: %s", c->token_file,
			      strerror_r(e, ebuf, sizeof(ebuf)));
		return -e;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, fp);
	bool failed = n < 0 && ferror(fp);
	(void)fclose(fp); /* read only: all it read is checked */
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	if (n <= 0 || memchr(line, '\0', (size_t)n)) {
		free(line);
		ts_config_err(err, errlen, "token_file = %s: %s", c->token_file,
			      failed ? "cannot be read"
				     : "its first line is empty");
		return -EINVAL;
	}
	free(c->token);
	c->token = line;
	return 0;
}

int ts_config_load(struct ts_config *c, const char *path, char *err,
		   size_t errlen)
{
	char ebuf[256];
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		ts_config_err(err, errlen, "%s: %s", path,
			      strerror_r(-rc, ebuf, sizeof(ebuf)));
		return rc;
	}
	/* Read to EOF rather than trusting st_size, which is 0 for /proc
	 * files and pipes; one byte over the bound tells us it is too big. */
	for (;;) {
		ssize_t n;

		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			char *nbuf;

			if (ncap > CONFIG_MAX_BYTES + 1)
				ncap = CONFIG_MAX_BYTES + 1;
			nbuf = realloc(buf, ncap);
			if (nbuf == NULL) {
				rc = -ENOMEM;
				ts_config_err(err, errlen, "%s: out of memory",
					      path);
				goto out;
			}
			buf = nbuf;
			cap = ncap;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			ts_config_err(err, errlen, "%s: %s", path,
				      strerror_r(-rc, ebuf, sizeof(ebuf)));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CONFIG_MAX_BYTES) {
			rc = -EFBIG;
			ts_config_err(
				err, errlen,
				"%s: larger than %d KiB; not a config file?",
				path, CONFIG_MAX_BYTES / 1024);
			goto out;
		}
	}
	rc = ts_config_parse(c, buf, len, path, err, errlen);
out:
	free(buf);
	/* Read-only: a failing close cannot lose data, nothing to report. */
	(void)close(fd);
	return rc;
}

int ts_config_add_log_arg(struct ts_config *c, const char *arg, char *err,
			  size_t errlen)
{
	char name[TS_NAME_MAX + 1];
	size_t namelen = 0;
	const char *eq, *path;

	if (arg == NULL)
		arg = "";
	eq = strchr(arg, '=');
	if (eq != NULL && eq[1] != '\0' &&
	    ts_config_valid_name(arg, (size_t)(eq - arg))) {
		namelen = (size_t)(eq - arg);
		memcpy(name, arg, namelen);
		path = eq + 1;
	} else {
		const char *slash = strrchr(arg, '/');
		const unsigned char *b =
			(const unsigned char *)(slash ? slash + 1 : arg);

		path = arg;
		for (size_t i = 0; b[i] != '\0' && namelen < TS_NAME_MAX; i++) {
			/* One '_' per UTF-8 character, not per byte:
			 * continuation bytes after a lead byte are dropped. */
			if (b[i] >= 0x80 && b[i] < 0xc0 && i > 0 &&
			    b[i - 1] >= 0x80)
				continue;
			name[namelen++] =
				(char)(is_name_char((char)b[i]) ? b[i] : '_');
		}
		if (!ts_config_valid_name(name, namelen)) {
			ts_config_err(err, errlen,
				      "cannot derive a log name from '%s' "
				      "(give one: NAME=PATH)",
				      arg);
			return -EINVAL;
		}
	}
	name[namelen] = '\0';
	if (find_log(c, name, namelen) != NULL) {
		ts_config_err(err, errlen, "duplicate log name '%s'", name);
		return -EINVAL;
	}
	if (append_log(c, name, namelen, path, strlen(path)) < 0) {
		ts_config_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}
