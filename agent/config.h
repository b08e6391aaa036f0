/*
 * config: the agent's configuration. Built-in defaults, then an INI file
 * (parsed with libinih), then cross-key checks. Every key is one row of a
 * table in config.c; adding a key means adding a field here and a row there.
 *
 * File format (see conf/smcached.conf for every key):
 *   - "[section]" headers and "key = value" lines; section and key names are
 *     case-sensitive and spelled in lowercase.
 *   - Lines starting with ';' or '#' (after optional blanks) are comments; a
 *     ';' preceded by a blank also starts a comment at the end of a line.
 *   - Leading blanks are ignored: there are no multi-line values.
 *   - Values are taken literally (no quoting); empty values are an error
 *     (leave a key out to get its default). A key may appear once, except
 *     list keys ([access] allow), whose every line adds an item.
 *   - Durations: seconds, or a number with an s, m or h suffix ("90", "5m").
 *   - Sizes: bytes, or a number with a K, M or G suffix (powers of 1024).
 *   - Lines are at most 199 characters long.
 */
#ifndef SMC_AGENT_CONFIG_H
#define SMC_AGENT_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "log.h"

/* A buffer this large holds any message config_load() writes. */
#define CONFIG_ERR_SIZE 512

/* The items of a list key, in file order. */
struct config_list {
	char **items;
	size_t count;
};

enum config_backend {
	CONFIG_BACKEND_FILE = 0,
	CONFIG_BACKEND_AWS = 1,
};

struct config {
	/* [agent] */
	char *socket_path;		/* NULL: proto_default_socket_path() */
	unsigned int socket_mode;	/* permission bits of the socket file */
	char *socket_user;		/* name or uid; NULL: the agent's own (after the drop) */
	char *socket_group;		/* name or gid; NULL: the agent's own (after the drop) */
	int socket_dir_shared;		/* 1: the socket directory is a pod/task volume (0777) */
	char *user;			/* name or uid to run as; NULL: stay as started */
	char *group;			/* name or gid to run as; NULL: the user's primary group */
	unsigned int max_connections;
	unsigned int idle_timeout;	/* seconds */
	size_t max_output;		/* bytes queued to one client */
	size_t max_output_per_uid;	/* bytes queued to the clients of one uid */
	size_t max_output_total;	/* bytes queued to all clients */
	enum log_level log_level;
	int log_format;			/* an enum log_format: text, json */

	/* [backend] */
	enum config_backend backend;

	/* [file] */
	char *file_path;		/* never NULL after a successful load */

	/* [aws] */
	char *aws_region;		/* NULL: from the environment */
	char *aws_endpoint;		/* NULL: the regional AWS endpoint */
	char *aws_profile;		/* NULL: AWS_PROFILE, else "default" */
	int aws_fips;			/* 1: FIPS endpoints (0: as the environment says) */
	char *aws_ca_bundle;		/* NULL: the system's trust store */
	unsigned int aws_connect_timeout;	/* seconds, to connect */
	unsigned int aws_request_timeout;	/* seconds, one HTTP exchange */
	unsigned int aws_upstream_timeout;	/* seconds, a whole request with retries */
	unsigned int aws_max_retries;	/* retries after a failed attempt */
	unsigned int aws_max_connections;	/* connections to the upstream at once */

	/* [cache] */
	unsigned int cache_ttl;		/* seconds */
	unsigned int cache_negative_ttl;	/* seconds; 0: "not found" is not remembered */
	unsigned int cache_max_entries;	/* versions held at most */
	size_t cache_max_bytes;		/* sealed bytes held at most */
	int cache_mlock;		/* a secmem_mlock_policy: off, best-effort, required */
	unsigned int cache_pending_ttl;	/* seconds AWSPENDING is trusted */
	unsigned int cache_refresh_ahead;	/* percent of ttl; 0: no refresh-ahead */
	unsigned int cache_refresh_jitter;	/* percent of ttl */
	unsigned int cache_refresh_idle;	/* seconds without a read before refreshes stop */
	unsigned int cache_max_stale;	/* seconds past ttl a value is served while the upstream fails */
	unsigned int cache_max_refreshes;	/* background upstream calls in flight */
	unsigned int cache_min_refresh_interval;	/* seconds between forced refreshes of a secret */
	char *cache_prefetch;		/* secret ids and filters fetched at start-up */
	int cache_batch_refresh;	/* yes: AWSCURRENT refreshes go 20 to a BatchGetSecretValue */
	unsigned int cache_prefetch_jitter;	/* seconds: the prefetch starts within this, at random */
	unsigned int cache_prefetch_timeout;	/* seconds readiness waits for the prefetch */
	unsigned int cache_body_linger_ms;	/* a rendered reply is reused this long (0: one pass) */

	/* [access] */
	struct config_list access_allow;	/* rules in acl.h syntax; none: access control off */

	/* [audit] */
	int audit_level;		/* an enum audit_level: off, denied, all */
	char *audit_file;		/* NULL: stderr */

	/* [limits], each per peer uid */
	unsigned int limit_connections;
	unsigned int limit_requests_per_second;
	unsigned int limit_burst;
	unsigned int limit_refreshes_per_minute;
	unsigned int limit_upstream_per_second;	/* 0: no upstream budget */
	unsigned int limit_upstream_burst;

	/* [http] (the HTTP front door, http_door.h) */
	struct config_list http_listen;	/* ADDRESS:PORT items; none: no TCP listener */
	int http_allow_non_loopback;	/* 1: listen addresses may be non-loopback (dangerous) */
	char *http_socket;		/* Unix socket serving the HTTP API; NULL: none */
	char *http_path_prefix;		/* GET PREFIX<id> */
	char *http_ssrf_headers;	/* token header names, comma/space separated */
	char *http_ssrf_env_variables;	/* variables the token is read from, first set wins */
	char *http_allowed_hosts;	/* more Host names accepted besides the loopback ones */
	char *http_metrics_listen;	/* ADDRESS:PORT serving /metrics without a token; NULL: none */
	int http_metrics_secret_labels;	/* 1: secret ids may appear in metric labels */
	unsigned int http_max_connections;
	size_t http_max_header_size;
	size_t http_max_uri_size;
	unsigned int http_idle_timeout;	/* seconds */

	/* [endpoint] (the Secrets Manager API for AWS SDKs, sm_endpoint.h) */
	struct config_list endpoint_listen;	/* ADDRESS:PORT items; none: off */
	int endpoint_allow_non_loopback;	/* 1: listen addresses may be non-loopback */
	int endpoint_auth;			/* enum sm_endpoint_auth: peer, keys */
	char *endpoint_keys_file;		/* ACCESS_KEY_ID SECRET_ACCESS_KEY NAME lines */
	char *endpoint_allowed_hosts;		/* Host names besides the loopback ones */
	int endpoint_forward;			/* 1: pass other operations to the upstream */
	struct config_list access_allow_write;	/* [access] allow_write rules (acl.h syntax) */
};

/*
 * Fills *cfg with the built-in defaults (any previous contents are
 * overwritten, not freed). Returns -1 only when out of memory.
 */
int config_defaults(struct config *cfg);

/*
 * Defaults, then the file at path (NULL: defaults only), then cross-key
 * checks. On error returns -1, writes one message naming the file and line
 * to err ("smcached.conf:12: unknown key 'tll' in section [cache]") and
 * leaves *cfg zeroed (nothing to free). *cfg is overwritten, not freed.
 */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);

/* The same from memory; name stands for the file name in messages. */
int config_load_string(struct config *cfg, const char *text, const char *name,
    char *err, size_t errlen);
/* data need not be NUL-terminated; a NUL byte inside it is an error. */
int config_load_buffer(struct config *cfg, const void *data, size_t len,
    const char *name, char *err, size_t errlen);

/* Frees the strings; *cfg is zeroed. Safe on a zeroed or freed config. */
void config_free(struct config *cfg);

/* The effective configuration, one "section.key = value" line per key. */
void config_describe(const struct config *cfg, FILE *out);

/* Every key with its meaning, default and bounds (for --help). */
void config_help(FILE *out);

/*
 * The key table for documentation checks (smcached --dump-config-keys), one
 * line per key, tab-separated: section, key, type, default (or what an unset
 * key means), bounds ("1s..86400s", "file, aws"; "-" for none), and
 * "reload" or "restart" (whether SIGHUP applies it).
 */
void config_dump_keys(FILE *out);

/*
 * Calls fn for every key whose value differs between a and b, saying
 * whether a running agent can apply it (on SIGHUP) or needs a restart.
 */
typedef void (*config_diff_fn)(const char *section, const char *key, int reloadable, void *arg);
void config_diff(const struct config *a, const struct config *b, config_diff_fn fn, void *arg);

const char *config_backend_name(enum config_backend backend);

/*
 * Value syntax shared with other parts of the agent. Digits only (no sign,
 * no blanks), then an optional suffix. Return 0, or -1 with errno EINVAL
 * (not that syntax) or ERANGE (does not fit 64 bits).
 */
int config_parse_duration(const char *text, unsigned long long *seconds);
int config_parse_size(const char *text, unsigned long long *bytes);

#endif
