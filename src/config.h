/* config.h: the daemon's configuration, parsed from an INI file and the
 * command line.  Pure: no I/O besides reading the config file itself, so it
 * can be unit-tested and fuzzed.  All functions may be called from any thread
 * that owns the struct (in practice: main, at start and on reload). */
#ifndef TS_CONFIG_H
#define TS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define TS_NAME_MAX 64 /* log names: [A-Za-z0-9._-]{1,64} */
#define TS_ERR_MAX 512 /* size of error buffers passed to this module */

#define TS_DEFAULT_LISTEN "127.0.0.1:8080"
#define TS_DEFAULT_HEARTBEAT 15
#define TS_DEFAULT_RETRY_MS 2000
#define TS_DEFAULT_MAX_CLIENTS 10000
#define TS_DEFAULT_MAX_LINE 65536
#define TS_DEFAULT_CONN_MEMORY 6144
#define TS_DEFAULT_FRAME_ANCESTORS "'self'"
#define TS_DEFAULT_HEADER_TIMEOUT 10

struct ts_log_conf {
	char name[TS_NAME_MAX + 1];
	char *path; /* as written: may not exist yet */
};

struct ts_config {
	/* [server] */
	char *listen;			     /* the text, for messages */
	struct sockaddr_storage listen_addr; /* parsed form of `listen` */
	socklen_t listen_addrlen;
	char *www;	    /* NULL: the compiled-in default */
	unsigned heartbeat; /* seconds, >= 1 */
	unsigned retry_ms;
	unsigned max_clients;	  /* >= 1 */
	size_t max_line;	  /* bytes, >= 16 */
	size_t conn_memory;	  /* bytes per connection (not in the
					    * contract: memory against speed) */
	unsigned backlog_default; /* lines */
	char *frame_ancestors;	  /* never NULL after init */
	char *user;		  /* drop to it after binding; NULL
					    * when empty (see priv.h) */
	char *cors_origin;	  /* NULL: no CORS; "*" or origins
					    * separated by spaces */
	char *token;		  /* NULL: no auth */
	char *token_file;	  /* read into token at start */
	char *tls_cert;		  /* PEM paths: both or neither */
	char *tls_key;
	char *tls_cert_pem; /* their text, read at start */
	char *tls_key_pem;
	unsigned header_timeout;     /* seconds for a request's headers,
					    * and a keep-alive's idle time */
	unsigned max_streams_per_ip; /* 0: no cap */
	char *trusted_proxies;	     /* IP addresses, space-separated,
					    * exempt from that cap; NULL: none */

	/* [log NAME] sections, then command-line logs, in order */
	struct ts_log_conf *logs;
	size_t nlogs;
};

/* Fill `c` with the defaults of the contract.  Returns 0 or -ENOMEM. */
int ts_config_init(struct ts_config *c);

/* Free everything `c` owns; `c` may then be init'ed again.  Accepts a
 * zeroed struct. */
void ts_config_free(struct ts_config *c);

/* A deep copy of `src` into `dst` (which owns nothing yet).  0 or -ENOMEM
 * (then dst owns nothing). */
int ts_config_copy(struct ts_config *dst, const struct ts_config *src);

/* Parse config text; `fname` is used in messages only.  On error returns
 * -EINVAL (or -ENOMEM) and writes one line "FNAME:LINE: what is wrong" into
 * err.  Keys may appear in any order; later values win over earlier ones.
 * `token` and `token_file` together are an error, and so is one of
 * `tls_cert` and `tls_key` without the other.
 * On error `c` holds whatever was parsed so far: free it. */
int ts_config_parse(struct ts_config *c, const char *text, size_t len,
		    const char *fname, char *err, size_t errlen);

/* Read `token_file` (when set) into `token`: its first line, without the
 * line break, not empty.  Called at start, before privileges are dropped.
 * 0, or -errno with one line in err naming the key. */
int ts_config_read_token(struct ts_config *c, char *err, size_t errlen);

/* Read the PEM files of tls_cert and tls_key (when set) into
 * tls_cert_pem and tls_key_pem.  At start, before privileges are dropped:
 * the key is often root's alone.  0, or -errno with one line in err naming
 * the key and the file. */
int ts_config_read_tls(struct ts_config *c, char *err, size_t errlen);

/* Read and parse the file `path`.  An unreadable file is "PATH: strerror". */
int ts_config_load(struct ts_config *c, const char *path, char *err,
		   size_t errlen);

/* Add a command-line log: "NAME=PATH" when the part before the first '=' is
 * a valid name, else "PATH" whose basename (invalid characters replaced by
 * '_', cut to TS_NAME_MAX) is the name.  A duplicate name is an error:
 * "duplicate log name 'x'". */
int ts_config_add_log_arg(struct ts_config *c, const char *arg, char *err,
			  size_t errlen);

/* Parse "ADDR:PORT", "[V6]:PORT" or ":PORT" (all interfaces) into `ss`. */
int ts_config_parse_listen(const char *s, struct sockaddr_storage *ss,
			   socklen_t *len, char *err, size_t errlen);

/* Write one line of printf text into err (errlen > 0), a control byte
 * (a newline echoed from input, say) shown as '?': every error of the
 * daemon's start is one line.  Any thread. */
void ts_config_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* True when `s` is a valid log name. */
bool ts_config_valid_name(const char *s, size_t len);

#endif
