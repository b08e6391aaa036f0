/*
 * config: owns the key table (one row per key: section, name, type, field,
 * default, bounds, check, documentation, reloadable), value syntax (durations,
 * sizes, modes), setting one value, the defaults, and what is shown of the
 * table (describe, help, the key dump, the diff). Reading a file is
 * config_parse.c's; both see the table through config_table.h.
 */
#define LOG_COMPONENT "config"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "acl.h"
#include "backend.h"
#include "config.h"
#include "config_table.h"
#include "http_door.h"
#include "log.h"
#include "sm_id.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)


static int check_socket(const char *, char *, size_t);
static int check_region(const char *, char *, size_t);
static int check_endpoint(const char *, char *, size_t);
static int check_prefetch(const char *, char *, size_t);
static int check_profile(const char *, char *, size_t);
static int check_abs_path(const char *, char *, size_t);
static int check_ident(const char *, char *, size_t);
static int check_http_address(const char *, char *, size_t);
static int check_http_prefix(const char *, char *, size_t);
static int check_http_names(const char *, char *, size_t);

static const char *const backend_names[] = { "file", "aws", NULL };
/* In secmem_mlock_policy order. */
static const char *const mlock_names[] = { "off", "best-effort", "required", NULL };
static const char *const bool_names[] = { "false", "true", NULL };
static const char *const yesno_names[] = { "no", "yes", NULL };
static const char *const endpoint_auth_names[] = { "peer", "keys", NULL };
/* In enum audit_level order. */
static const char *const audit_names[] = { "off", "denied", "all", NULL };
/* In enum log_format order. */
static const char *const log_format_names[] = { "text", "json", NULL };

/* CT_ENUM fields are written as an int. */
_Static_assert(sizeof(enum config_backend) == sizeof(int), "enum size");

#define FIELD(f) offsetof(struct config, f)

const struct cfg_key cfg_keys[] = {
	{ .section = "agent", .key = "socket", .type = CT_STRING,
	  .offset = FIELD(socket_path), .check = check_socket,
	  .unset = "(default)",
	  .doc = "Unix socket clients connect to (absolute path)" },
	{ .section = "agent", .key = "socket_mode", .type = CT_MODE,
	  .offset = FIELD(socket_mode), .def = "0660", .min = 0, .max = 0777,
	  .doc = "permissions of the socket file (octal)" },
	{ .section = "agent", .key = "socket_user", .type = CT_STRING,
	  .offset = FIELD(socket_user), .check = check_ident,
	  .unset = "(the agent's user)",
	  .doc = "owner of the socket file (name or uid)" },
	{ .section = "agent", .key = "socket_group", .type = CT_STRING,
	  .offset = FIELD(socket_group), .check = check_ident,
	  .unset = "(the agent's group)",
	  .doc = "group of the socket file (name or gid)" },
	{ .section = "agent", .key = "socket_dir_shared", .type = CT_ENUM,
	  .offset = FIELD(socket_dir_shared), .def = "false", .names = bool_names,
	  .doc = "the socket directory is a volume shared only with trusted containers"
	    " (accept it writable by others)" },
	{ .section = "agent", .key = "user", .type = CT_STRING,
	  .offset = FIELD(user), .check = check_ident,
	  .unset = "(not changed)",
	  .doc = "user to run as once the socket is bound (name or uid; needs root)" },
	{ .section = "agent", .key = "group", .type = CT_STRING,
	  .offset = FIELD(group), .check = check_ident,
	  .unset = "(the user's group)",
	  .doc = "group to run as once the socket is bound (name or gid; needs root)" },
	{ .section = "agent", .key = "max_connections", .type = CT_COUNT,
	  .offset = FIELD(max_connections), .def = "1024", .min = 1, .max = 65536,
	  .doc = "most clients connected at once" },
	{ .section = "agent", .key = "idle_timeout", .type = CT_DURATION,
	  .offset = FIELD(idle_timeout), .def = "60", .min = 1, .max = 86400,
	  .doc = "close a connection idle this long" },
	{ .section = "agent", .key = "max_output", .type = CT_SIZE,
	  .offset = FIELD(max_output), .def = "4M", .min = 256 * KIB, .max = GIB,
	  .doc = "most bytes queued to one client that is not reading" },
	{ .section = "agent", .key = "max_output_per_uid", .type = CT_SIZE,
	  .offset = FIELD(max_output_per_uid), .def = "32M", .min = 256 * KIB, .max = 16 * GIB,
	  .doc = "most bytes queued to all the clients of one local user" },
	{ .section = "agent", .key = "max_output_total", .type = CT_SIZE,
	  .offset = FIELD(max_output_total), .def = "128M", .min = 256 * KIB, .max = 64 * GIB,
	  .doc = "most bytes queued to all clients together" },
	{ .section = "agent", .key = "log_level", .type = CT_LOGLEVEL,
	  .offset = FIELD(log_level), .def = "info", .reload = true,
	  .doc = "error, warn, info or debug" },
	{ .section = "agent", .key = "log_format", .type = CT_ENUM,
	  .offset = FIELD(log_format), .def = "text", .names = log_format_names, .reload = true,
	  .doc = "log lines as text or json (one object per line)" },
	{ .section = "backend", .key = "type", .type = CT_ENUM,
	  .offset = FIELD(backend), .def = "file", .names = backend_names,
	  .doc = "where secrets come from: file or aws" },
	{ .section = "file", .key = "path", .type = CT_STRING,
	  .offset = FIELD(file_path), .def = "conf/example-secrets.json",
	  .doc = "JSON secrets file (relative to the working directory)" },
	{ .section = "aws", .key = "region", .type = CT_STRING,
	  .offset = FIELD(aws_region), .check = check_region,
	  .unset = "(from the environment)",
	  .doc = "AWS region, like us-east-1" },
	{ .section = "aws", .key = "endpoint", .type = CT_STRING,
	  .offset = FIELD(aws_endpoint), .check = check_endpoint,
	  .unset = "(default)",
	  .doc = "Secrets Manager endpoint URL (http:// or https://)" },
	{ .section = "aws", .key = "profile", .type = CT_STRING,
	  .offset = FIELD(aws_profile), .check = check_profile,
	  .unset = "(AWS_PROFILE, else default)",
	  .doc = "profile of the AWS shared config and credentials files" },
	{ .section = "aws", .key = "fips", .type = CT_ENUM,
	  .offset = FIELD(aws_fips), .def = "false", .names = bool_names,
	  .doc = "use the FIPS endpoint: true or false" },
	{ .section = "aws", .key = "ca_bundle", .type = CT_STRING,
	  .offset = FIELD(aws_ca_bundle), .check = check_abs_path,
	  .unset = "(the system's)",
	  .doc = "PEM file of CA certificates to verify the endpoint with (absolute path)" },
	{ .section = "aws", .key = "connect_timeout", .type = CT_DURATION,
	  .offset = FIELD(aws_connect_timeout), .def = "2", .min = 1, .max = 60,
	  .doc = "how long to wait for a connection to Secrets Manager" },
	{ .section = "aws", .key = "request_timeout", .type = CT_DURATION,
	  .offset = FIELD(aws_request_timeout), .def = "5", .min = 1, .max = 300,
	  .doc = "how long one HTTP exchange with Secrets Manager may take" },
	{ .section = "aws", .key = "upstream_timeout", .type = CT_DURATION,
	  .offset = FIELD(aws_upstream_timeout), .def = "8", .min = 1, .max = 600,
	  .doc = "how long a request may take in all, retries included" },
	{ .section = "aws", .key = "max_retries", .type = CT_COUNT,
	  .offset = FIELD(aws_max_retries), .def = "3", .min = 0, .max = 10,
	  .doc = "retries of a throttled, failed or timed-out request" },
	{ .section = "aws", .key = "max_connections", .type = CT_COUNT,
	  .offset = FIELD(aws_max_connections), .def = "32", .min = 1, .max = 1024,
	  .doc = "most connections to Secrets Manager at once; more requests queue" },
	{ .section = "cache", .key = "ttl", .type = CT_DURATION,
	  .offset = FIELD(cache_ttl), .def = "300", .min = 1, .max = 86400,
	  .doc = "how long a (secret, label) -> version mapping is trusted" },
	{ .section = "cache", .key = "negative_ttl", .type = CT_DURATION,
	  .offset = FIELD(cache_negative_ttl), .def = "10", .min = 0, .max = 3600,
	  .doc = "how long \"not found\" is remembered (0: not at all)" },
	{ .section = "cache", .key = "max_entries", .type = CT_COUNT,
	  .offset = FIELD(cache_max_entries), .def = "10000", .min = 1, .max = 10000000,
	  .doc = "most secret versions held; least recently used go first" },
	{ .section = "cache", .key = "max_bytes", .type = CT_SIZE,
	  .offset = FIELD(cache_max_bytes), .def = "64M", .min = 256 * KIB, .max = 16 * GIB,
	  .doc = "most sealed bytes held; least recently used go first" },
	{ .section = "cache", .key = "mlock", .type = CT_ENUM,
	  .offset = FIELD(cache_mlock), .def = "best-effort", .names = mlock_names,
	  .doc = "lock the agent's memory: required, best-effort or off" },
	{ .section = "cache", .key = "pending_ttl", .type = CT_DURATION,
	  .offset = FIELD(cache_pending_ttl), .def = "10", .min = 1, .max = 86400,
	  .doc = "how long an AWSPENDING label is trusted (at most ttl)" },
	{ .section = "cache", .key = "refresh_ahead", .type = CT_COUNT,
	  .offset = FIELD(cache_refresh_ahead), .def = "80", .min = 0, .max = 100,
	  .doc = "refresh a hot secret at this percent of its ttl (0: off)" },
	{ .section = "cache", .key = "refresh_jitter", .type = CT_COUNT,
	  .offset = FIELD(cache_refresh_jitter), .def = "10", .min = 0, .max = 50,
	  .doc = "refresh up to this percent of ttl earlier, at random" },
	{ .section = "cache", .key = "refresh_idle", .type = CT_DURATION,
	  .offset = FIELD(cache_refresh_idle), .def = "900", .min = 1, .max = 604800,
	  .doc = "stop refreshing a secret not read for this long" },
	{ .section = "cache", .key = "max_stale", .type = CT_DURATION,
	  .offset = FIELD(cache_max_stale), .def = "3600", .min = 0, .max = 604800,
	  .doc = "serve a value this long past its ttl while the upstream fails" },
	{ .section = "cache", .key = "max_refreshes", .type = CT_COUNT,
	  .offset = FIELD(cache_max_refreshes), .def = "16", .min = 1, .max = 1024,
	  .doc = "background upstream calls in flight at most" },
	{ .section = "cache", .key = "min_refresh_interval", .type = CT_DURATION,
	  .offset = FIELD(cache_min_refresh_interval), .def = "1", .min = 0, .max = 3600,
	  .doc = "forced refreshes of one secret at most this often" },
	{ .section = "cache", .key = "body_linger_ms", .type = CT_COUNT,
	  .offset = FIELD(cache_body_linger_ms), .def = "0", .min = 0, .max = 1000,
	  .doc = "keep a rendered reply for hits this many ms (0: one loop pass); plaintext lives that long" },
	{ .section = "cache", .key = "prefetch", .type = CT_STRING,
	  .offset = FIELD(cache_prefetch), .check = check_prefetch, .unset = "(none)",
	  .doc = "secret ids fetched at start-up, and filters name:PREFIX, tag-key:KEY,"
	    " tag-value:VALUE whose every match is (comma or space separated)" },
	{ .section = "cache", .key = "prefetch_jitter", .type = CT_DURATION,
	  .offset = FIELD(cache_prefetch_jitter), .def = "3", .min = 0, .max = 300,
	  .doc = "the prefetch starts this long after start-up at most, at random, so a fleet"
	    " restarting together does not call the upstream at once (Lambda and the file"
	    " backend: 0)" },
	{ .section = "cache", .key = "prefetch_timeout", .type = CT_DURATION,
	  .offset = FIELD(cache_prefetch_timeout), .def = "30", .min = 1, .max = 3600,
	  .doc = "readiness waits this long at most for the prefetch" },
	{ .section = "cache", .key = "batch_refresh", .type = CT_ENUM,
	  .offset = FIELD(cache_batch_refresh), .def = "yes", .names = yesno_names,
	  .doc = "refresh secrets holding only AWSCURRENT 20 to a BatchGetSecretValue call"
	    " (no: one DescribeSecret each): yes or no" },
	{ .section = "access", .key = "allow", .type = CT_LIST,
	  .offset = FIELD(access_allow), .check = acl_rule_check, .unset = "(none)",
	  .reload = true,
	  .doc = "a rule: user:NAME|UID or group:NAME|GID, then secret name or ARN patterns;"
	    " may be repeated; none: access control off" },
	{ .section = "audit", .key = "level", .type = CT_ENUM,
	  .offset = FIELD(audit_level), .def = "denied", .names = audit_names, .reload = true,
	  .doc = "which access decisions are logged: off, denied or all" },
	{ .section = "audit", .key = "file", .type = CT_STRING,
	  .offset = FIELD(audit_file), .check = check_abs_path, .unset = "(stderr)",
	  .reload = true,
	  .doc = "file audit lines are appended to (absolute path)" },
	{ .section = "limits", .key = "connections_per_uid", .type = CT_COUNT,
	  .offset = FIELD(limit_connections), .def = "256", .min = 1, .max = 65536,
	  .reload = true,
	  .doc = "connections one local user may hold at once" },
	{ .section = "limits", .key = "requests_per_second_per_uid", .type = CT_COUNT,
	  .offset = FIELD(limit_requests_per_second), .def = "0", .min = 0, .max = 10000000,
	  .reload = true,
	  .doc = "requests per second one local user may send, sustained (0: no limit)" },
	{ .section = "limits", .key = "burst_per_uid", .type = CT_COUNT,
	  .offset = FIELD(limit_burst), .def = "20000", .min = 1, .max = 10000000,
	  .reload = true,
	  .doc = "requests one local user may send at once after being idle" },
	{ .section = "limits", .key = "refreshes_per_minute_per_uid", .type = CT_COUNT,
	  .offset = FIELD(limit_refreshes_per_minute), .def = "60", .min = 1, .max = 100000,
	  .reload = true,
	  .doc = "forced refreshes (GET with the refresh flag) per minute of one local user" },
	{ .section = "limits", .key = "upstream_per_second_per_uid", .type = CT_COUNT,
	  .offset = FIELD(limit_upstream_per_second), .def = "20", .min = 0, .max = 1000000,
	  .reload = true,
	  .doc = "upstream calls per second one local user's requests may cause (0: no limit)" },
	{ .section = "limits", .key = "upstream_burst_per_uid", .type = CT_COUNT,
	  .offset = FIELD(limit_upstream_burst), .def = "200", .min = 1, .max = 1000000,
	  .reload = true,
	  .doc = "upstream calls one local user's requests may cause at once after being idle" },
	{ .section = "http", .key = "listen", .type = CT_LIST,
	  .offset = FIELD(http_listen), .check = check_http_address, .unset = "(none: off)",
	  .doc = "ADDRESS:PORT the HTTP API (AWS Secrets Manager Agent compatible) listens on,"
	    " e.g. 127.0.0.1:2773 or [::1]:2773; may be repeated" },
	{ .section = "http", .key = "allow_non_loopback", .type = CT_ENUM,
	  .offset = FIELD(http_allow_non_loopback), .def = "no", .names = yesno_names,
	  .doc = "DANGEROUS: let listen/metrics_listen use non-loopback addresses: yes or no" },
	{ .section = "http", .key = "socket", .type = CT_STRING,
	  .offset = FIELD(http_socket), .check = check_socket, .unset = "(none)",
	  .doc = "Unix socket serving the same HTTP API (absolute path)" },
	{ .section = "http", .key = "path_prefix", .type = CT_STRING,
	  .offset = FIELD(http_path_prefix), .def = "/v1/", .check = check_http_prefix,
	  .doc = "GET PREFIX<secret id> is GET /secretsmanager/get?secretId=<secret id>" },
	{ .section = "http", .key = "ssrf_headers", .type = CT_STRING,
	  .offset = FIELD(http_ssrf_headers), .check = check_http_names,
	  .def = "X-Aws-Parameters-Secrets-Token,X-Vault-Token",
	  .doc = "headers that may carry the SSRF token (comma separated)" },
	{ .section = "http", .key = "ssrf_env_variables", .type = CT_STRING,
	  .offset = FIELD(http_ssrf_env_variables), .check = check_http_names,
	  .def = "AWS_TOKEN,AWS_SESSION_TOKEN,AWS_CONTAINER_AUTHORIZATION_TOKEN",
	  .doc = "variables the SSRF token is read from, the first set one wins; a value"
	    " file://PATH is read from that file" },
	{ .section = "http", .key = "allowed_hosts", .type = CT_STRING,
	  .offset = FIELD(http_allowed_hosts), .check = check_http_names, .unset = "(none)",
	  .doc = "Host header names accepted besides localhost, 127.0.0.1 and [::1] (comma separated)" },
	{ .section = "http", .key = "metrics_listen", .type = CT_STRING,
	  .offset = FIELD(http_metrics_listen), .check = check_http_address, .unset = "(none)",
	  .doc = "ADDRESS:PORT serving only /metrics, without the token, for scrapers" },
	{ .section = "http", .key = "metrics_secret_labels", .type = CT_ENUM,
	  .offset = FIELD(http_metrics_secret_labels), .def = "no", .names = yesno_names,
	  .doc = "may metrics carry secret ids in labels: yes or no" },
	{ .section = "http", .key = "max_connections", .type = CT_COUNT,
	  .offset = FIELD(http_max_connections), .def = "800", .min = 1, .max = 65536,
	  .doc = "HTTP connections served at once; more are answered 429" },
	{ .section = "http", .key = "max_header_size", .type = CT_SIZE,
	  .offset = FIELD(http_max_header_size), .def = "16K", .min = 1 * KIB, .max = 1 * MIB,
	  .doc = "most bytes of a request's line and headers" },
	{ .section = "http", .key = "max_uri_size", .type = CT_SIZE,
	  .offset = FIELD(http_max_uri_size), .def = "8K", .min = 256, .max = 1 * MIB,
	  .doc = "most bytes of a request's URI" },
	{ .section = "http", .key = "idle_timeout", .type = CT_DURATION,
	  .offset = FIELD(http_idle_timeout), .def = "30", .min = 1, .max = 3600,
	  .doc = "close an HTTP connection that sends nothing this long" },
	{ .section = "endpoint", .key = "listen", .type = CT_LIST,
	  .offset = FIELD(endpoint_listen), .check = check_http_address, .unset = "(none: off)",
	  .doc = "ADDRESS:PORT the Secrets Manager API (for AWS SDKs and the aws CLI) listens on,"
	    " e.g. 127.0.0.1:2774 or [::1]:2774; may be repeated" },
	{ .section = "endpoint", .key = "allow_non_loopback", .type = CT_ENUM,
	  .offset = FIELD(endpoint_allow_non_loopback), .def = "no", .names = yesno_names,
	  .doc = "DANGEROUS: let [endpoint] listen use non-loopback addresses: yes or no" },
	{ .section = "endpoint", .key = "auth", .type = CT_ENUM,
	  .offset = FIELD(endpoint_auth), .def = "peer", .names = endpoint_auth_names,
	  .doc = "who the caller is: peer (the uid owning the client socket) or keys (a key of"
	    " keys_file, proved by its SigV4 signature)" },
	{ .section = "endpoint", .key = "keys_file", .type = CT_STRING,
	  .offset = FIELD(endpoint_keys_file), .check = check_abs_path, .unset = "(none)",
	  .doc = "auth = keys: lines ACCESS_KEY_ID SECRET_ACCESS_KEY NAME (absolute path; owned"
	    " by root or the agent's user, readable by no one else)" },
	{ .section = "endpoint", .key = "allowed_hosts", .type = CT_STRING,
	  .offset = FIELD(endpoint_allowed_hosts), .check = check_http_names, .unset = "(none)",
	  .doc = "Host header names accepted besides localhost, 127.0.0.1 and [::1] (comma separated)" },
	{ .section = "endpoint", .key = "forward", .type = CT_ENUM,
	  .offset = FIELD(endpoint_forward), .def = "no", .names = yesno_names,
	  .doc = "pass writes and other operations to Secrets Manager, signed with the agent's"
	    " credentials, for callers an [access] allow_write rule grants: yes or no" },
	{ .section = "access", .key = "allow_write", .type = CT_LIST,
	  .offset = FIELD(access_allow_write), .check = acl_rule_check, .unset = "(none: no writes)",
	  .doc = "a rule: user:NAME|UID, group:NAME|GID or key:NAME, then secret name or ARN"
	    " patterns whose writes [endpoint] forward passes to Secrets Manager; may be repeated" },
};

const size_t cfg_key_count = nitems(cfg_keys);

/* ---- value syntax ---------------------------------------------------------------------- */

/*
 * Decimal digits, then at most one suffix character from suffixes whose
 * multiplier is mult[index]. Syntax errors win over overflow, so
 * "99999999999999999999x" is EINVAL.
 */
static int
parse_scaled(const char *text, const char *suffixes, const unsigned long long *mult,
    unsigned long long *out)
{
	unsigned long long v = 0;
	const char *s = text, *suf;
	bool overflow = false;

	if (text == NULL || *s < '0' || *s > '9')
		goto inval;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (ULLONG_MAX - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
	}
	if (*s != '\0') {
		if ((suf = strchr(suffixes, *s)) == NULL || s[1] != '\0')
			goto inval;
		if (!overflow && v > ULLONG_MAX / mult[suf - suffixes])
			overflow = true;
		else
			v *= mult[suf - suffixes];
	}
	if (overflow) {
		errno = ERANGE;
		return -1;
	}
	*out = v;
	return 0;
inval:
	errno = EINVAL;
	return -1;
}

/* Octal digits only, like chmod's "0660" or "660"; at most 4 digits. */
static int
parse_mode(const char *text, unsigned long long *out)
{
	unsigned long long v = 0;
	size_t i;

	for (i = 0; text[i] >= '0' && text[i] <= '7'; i++)
		v = v * 8 + (unsigned)(text[i] - '0');
	if (i == 0 || i > 4 || text[i] != '\0') {
		errno = EINVAL;
		return -1;
	}
	*out = v;
	return 0;
}

static int
parse_count(const char *text, unsigned long long *out)
{
	return parse_scaled(text, "", NULL, out);
}

int
config_parse_duration(const char *text, unsigned long long *seconds)
{
	static const unsigned long long mult[] = { 1, 60, 3600 };

	return parse_scaled(text, "smh", mult, seconds);
}

int
config_parse_size(const char *text, unsigned long long *bytes)
{
	static const unsigned long long mult[] = { KIB, MIB, GIB, KIB, MIB, GIB };

	return parse_scaled(text, "KMGkmg", mult, bytes);
}

/* Largest exact binary suffix: 4194304 -> "4M". */
static void
format_size(unsigned long long v, char *buf, size_t len)
{
	if (v != 0 && v % GIB == 0)
		snprintf(buf, len, "%lluG", v / GIB);
	else if (v != 0 && v % MIB == 0)
		snprintf(buf, len, "%lluM", v / MIB);
	else if (v != 0 && v % KIB == 0)
		snprintf(buf, len, "%lluK", v / KIB);
	else
		snprintf(buf, len, "%llu", v);
}

static void
format_bounds(const struct cfg_key *k, char *buf, size_t len)
{
	char lo[32], hi[32];

	switch (k->type) {
	case CT_DURATION:
		snprintf(buf, len, "%llus..%llus", k->min, k->max);
		break;
	case CT_SIZE:
		format_size(k->min, lo, sizeof(lo));
		format_size(k->max, hi, sizeof(hi));
		snprintf(buf, len, "%s..%s", lo, hi);
		break;
	case CT_MODE:
		snprintf(buf, len, "%04llo..%04llo", k->min, k->max);
		break;
	default:
		snprintf(buf, len, "%llu..%llu", k->min, k->max);
		break;
	}
}

/* ---- string checks --------------------------------------------------------------------- */

static int
check_socket(const char *v, char *why, size_t whylen)
{
	const size_t max = sizeof(((struct sockaddr_un *)0)->sun_path);
	size_t len = strlen(v);

	if (v[0] != '/') {
		snprintf(why, whylen, "'%s' is not an absolute path", v);
		return -1;
	}
	if (len >= max) {
		snprintf(why, whylen, "path is too long (%zu bytes, a Unix socket path must be"
		    " shorter than %zu)", len, max);
		return -1;
	}
	return 0;
}

static int
check_region(const char *v, char *why, size_t whylen)
{
	if (!sm_id_region_valid(v)) {
		snprintf(why, whylen, "'%s' is not a region name (expected lowercase letters,"
		    " digits and dashes, like us-east-1)", v);
		return -1;
	}
	return 0;
}

static int
check_endpoint(const char *v, char *why, size_t whylen)
{
	const char *host;

	if (strncmp(v, "https://", 8) == 0)
		host = v + 8;
	else if (strncmp(v, "http://", 7) == 0)
		host = v + 7;
	else {
		snprintf(why, whylen, "'%s' must start with http:// or https://", v);
		return -1;
	}
	if (*host == '\0' || *host == '/') {
		snprintf(why, whylen, "'%s' has no host name", v);
		return -1;
	}
	if (strpbrk(v, " \t") != NULL) {
		snprintf(why, whylen, "'%s' contains a space", v);
		return -1;
	}
	return 0;
}

/* Secret ids and filters (backend_filter_parse) separated by commas and/or blanks; each
 * id within the protocol's limit. */
static int
check_prefetch(const char *v, char *why, size_t whylen)
{
	struct backend_filter f;
	size_t len;

	for (const char *p = v; *p != '\0'; p += len) {
		p += strspn(p, ", \t");
		len = strcspn(p, ", \t");
		if (len > 2048) {
			snprintf(why, whylen, "a secret id is longer than 2048 bytes");
			return -1;
		}
		if (len > 0 && backend_filter_parse(p, len, &f, why, whylen) < 0)
			return -1;
	}
	return 0;
}

static int
check_profile(const char *v, char *why, size_t whylen)
{
	size_t len = strlen(v);

	if (len > 127 || strpbrk(v, " \t[]") != NULL) {
		snprintf(why, whylen, "'%s' is not a profile name (at most 127 characters,"
		    " no blanks or brackets)", v);
		return -1;
	}
	return 0;
}

static int
check_abs_path(const char *v, char *why, size_t whylen)
{
	if (v[0] != '/') {
		snprintf(why, whylen, "'%s' is not an absolute path", v);
		return -1;
	}
	return 0;
}

/* A user or group: a portable name ([A-Za-z0-9._-], not starting with '-', an
 * optional final '$') or a numeric id. Whether it exists is checked at start-up. */
static int
check_ident(const char *v, char *why, size_t whylen)
{
	size_t len = strlen(v), i;
	bool ok = len > 0 && len <= 32 && v[0] != '-';

	for (i = 0; ok && i < len; i++) {
		char c = v[i];

		ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '_' || c == '-' || (c == '$' && i == len - 1 && i > 0);
	}
	if (!ok) {
		snprintf(why, whylen, "'%s' is not a user or group name or id (at most 32 of"
		    " letters, digits, '.', '_', '-')", v);
		return -1;
	}
	return 0;
}

static int
check_http_address(const char *v, char *why, size_t whylen)
{
	struct sockaddr_storage ss;
	socklen_t len;

	return http_door_parse_address(v, &ss, &len, why, whylen);
}

static int
check_http_prefix(const char *v, char *why, size_t whylen)
{
	if (v[0] != '/' || strlen(v) > 128 || strpbrk(v, "?#% ") != NULL) {
		snprintf(why, whylen, "'%s' must start with '/' and have no '?', '#', '%%' or blank",
		    v);
		return -1;
	}
	return 0;
}

/* A comma/space separated list of header, variable or host names. */
static int
check_http_names(const char *v, char *why, size_t whylen)
{
	for (const char *c = v; *c != '\0'; c++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || strchr("-_.:[], \t", *c) != NULL)) {
			snprintf(why, whylen, "'%c' is not allowed in a name", *c);
			return -1;
		}
	}
	if (strlen(v) > 1024) {
		snprintf(why, whylen, "the list is longer than 1024 bytes");
		return -1;
	}
	return 0;
}

/* ---- setting one value ----------------------------------------------------------------- */

/* Checks a string value and returns a copy of it in *out. */
static int
set_string_value(const struct cfg_key *k, const char *v, char **out, char *why, size_t whylen)
{
	size_t len = strlen(v), i;

	for (i = 0; i < len; i++) {
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) {
			snprintf(why, whylen, "value contains a control character");
			return -1;
		}
	}
	if (len >= 2 && (v[0] == '"' || v[0] == '\'') && v[len - 1] == v[0]) {
		snprintf(why, whylen, "%s is quoted, but values are taken literally:"
		    " remove the quotes", v);
		return -1;
	}
	if (k->check != NULL && k->check(v, why, whylen) == -1)
		return -1;
	if ((*out = strdup(v)) == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	return 0;
}

static int
set_string(struct config *cfg, const struct cfg_key *k, const char *v, char *why,
    size_t whylen)
{
	char **field = (char **)(void *)((char *)cfg + k->offset);
	char *copy;

	if (set_string_value(k, v, &copy, why, whylen) == -1)
		return -1;
	free(*field);
	*field = copy;
	return 0;
}

/* A list item: the same checks as a string, then appended. */
static int
list_append(struct config *cfg, const struct cfg_key *k, const char *v, char *why,
    size_t whylen)
{
	struct config_list *list = (struct config_list *)(void *)((char *)cfg + k->offset);
	char *item = NULL, **items;

	if (set_string_value(k, v, &item, why, whylen) == -1)
		return -1;
	if ((items = realloc(list->items, (list->count + 1) * sizeof(*items))) == NULL) {
		free(item);
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	items[list->count++] = item;
	list->items = items;
	return 0;
}

static void
list_free(struct config_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i]);
	free(list->items);
	list->items = NULL;
	list->count = 0;
}

static int
set_number(struct config *cfg, const struct cfg_key *k, const char *v, char *why,
    size_t whylen)
{
	void *field = (char *)cfg + k->offset;
	unsigned long long n;
	const char *what;
	char bounds[80];
	int rc;

	format_bounds(k, bounds, sizeof(bounds));
	switch (k->type) {
	case CT_DURATION:
		rc = config_parse_duration(v, &n);
		what = "a duration (expected seconds, or a number with s/m/h)";
		break;
	case CT_SIZE:
		rc = config_parse_size(v, &n);
		what = "a size (expected bytes, or a number with K/M/G)";
		break;
	case CT_MODE:
		rc = parse_mode(v, &n);
		what = "an octal file mode (like 0660)";
		break;
	default:
		rc = parse_count(v, &n);
		what = "a number";
		break;
	}
	if (rc == -1 && errno == EINVAL) {
		snprintf(why, whylen, "'%s' is not %s, allowed %s", v, what, bounds);
		return -1;
	}
	if (rc == -1 || n < k->min || n > k->max) {
		snprintf(why, whylen, "'%s' is out of range, allowed %s", v, bounds);
		return -1;
	}
	if (k->type == CT_SIZE)
		*(size_t *)field = (size_t)n;
	else
		*(unsigned int *)field = (unsigned int)n;
	return 0;
}

int
cfg_set(struct config *cfg, const struct cfg_key *k, const char *v, char *why, size_t whylen)
{
	void *field = (char *)cfg + k->offset;
	enum log_level level;
	int i;

	if (*v == '\0') {
		snprintf(why, whylen, "empty value (leave the key out to use the default)");
		return -1;
	}
	switch (k->type) {
	case CT_STRING:
		return set_string(cfg, k, v, why, whylen);
	case CT_LIST:
		return list_append(cfg, k, v, why, whylen);
	case CT_COUNT:
	case CT_DURATION:
	case CT_SIZE:
	case CT_MODE:
		return set_number(cfg, k, v, why, whylen);
	case CT_LOGLEVEL:
		if (log_level_parse(v, &level) == -1) {
			snprintf(why, whylen, "'%s' is not a log level (expected error, warn,"
			    " info or debug)", v);
			return -1;
		}
		*(enum log_level *)field = level;
		return 0;
	case CT_ENUM:
		for (i = 0; k->names[i] != NULL; i++) {
			if (strcmp(v, k->names[i]) == 0) {
				memcpy(field, &i, sizeof(i));
				return 0;
			}
		}
		snprintf(why, whylen, "'%s' is not one of:", v);
		for (i = 0; k->names[i] != NULL; i++) {
			size_t used = strlen(why);

			snprintf(why + used, whylen - used, "%s %s", i ? "," : "", k->names[i]);
		}
		return -1;
	}
	snprintf(why, whylen, "internal error: bad key type");
	return -1;
}

/* ---- public ---------------------------------------------------------------------------- */

int
config_defaults(struct config *cfg)
{
	char why[CONFIG_ERR_SIZE];
	size_t i;

	memset(cfg, 0, sizeof(*cfg));
	for (i = 0; i < nitems(cfg_keys); i++) {
		const struct cfg_key *k = &cfg_keys[i];

		/* A row whose bounds do not fit its field is a bug in the table. */
		if ((k->type == CT_COUNT || k->type == CT_DURATION || k->type == CT_MODE) &&
		    k->max > UINT_MAX)
			goto bad;
		if (k->type == CT_SIZE && k->max > SIZE_MAX)
			goto bad;
		if (k->def != NULL && cfg_set(cfg, k, k->def, why, sizeof(why)) == -1) {
			if (strcmp(why, "out of memory") == 0)
				goto nomem;
			goto bad;
		}
	}
	return 0;
bad:
	config_free(cfg);
	errno = EINVAL;
	return -1;
nomem:
	config_free(cfg);
	errno = ENOMEM;
	return -1;
}

void
config_free(struct config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < nitems(cfg_keys); i++) {
		if (cfg_keys[i].type == CT_STRING)
			free(*(char **)(void *)((char *)cfg + cfg_keys[i].offset));
		else if (cfg_keys[i].type == CT_LIST)
			list_free((struct config_list *)(void *)((char *)cfg + cfg_keys[i].offset));
	}
	memset(cfg, 0, sizeof(*cfg));
}

const char *
config_backend_name(enum config_backend backend)
{
	if ((unsigned)backend >= nitems(backend_names) - 1)
		return "?";
	return backend_names[backend];
}

static void
format_value(const struct config *cfg, const struct cfg_key *k, char *buf, size_t len)
{
	const void *field = (const char *)cfg + k->offset;
	const char *s;
	int i, v;

	switch (k->type) {
	case CT_STRING:
		s = *(char *const *)field;
		if (s == NULL)
			s = k->unset != NULL ? k->unset : "";
		snprintf(buf, len, "%s", s);
		break;
	case CT_LIST:
		/* config_describe() writes one line per item; this is the empty list. */
		snprintf(buf, len, "%s", k->unset != NULL ? k->unset : "");
		break;
	case CT_COUNT:
	case CT_DURATION:
		snprintf(buf, len, "%u", *(const unsigned int *)field);
		break;
	case CT_SIZE:
		format_size(*(const size_t *)field, buf, len);
		break;
	case CT_MODE:
		snprintf(buf, len, "%04o", *(const unsigned int *)field);
		break;
	case CT_LOGLEVEL:
		snprintf(buf, len, "%s", log_level_name(*(const enum log_level *)field));
		break;
	case CT_ENUM:
		memcpy(&v, field, sizeof(v));
		for (s = "?", i = 0; k->names[i] != NULL; i++) {
			if (i == v)
				s = k->names[i];
		}
		snprintf(buf, len, "%s", s);
		break;
	}
}

void
config_describe(const struct config *cfg, FILE *out)
{
	char value[512];
	size_t i;

	for (i = 0; i < nitems(cfg_keys); i++) {
		const struct cfg_key *k = &cfg_keys[i];

		if (k->type == CT_LIST) {
			const struct config_list *list = (const struct config_list *)(const void *)
			    ((const char *)cfg + k->offset);

			for (size_t j = 0; j < list->count; j++)
				fprintf(out, "%s.%s = %s\n", k->section, k->key, list->items[j]);
			if (list->count > 0)
				continue;
		}
		format_value(cfg, k, value, sizeof(value));
		fprintf(out, "%s.%s = %s\n", k->section, k->key, value);
	}
}

static bool
list_equal(const struct config_list *a, const struct config_list *b)
{
	if (a->count != b->count)
		return false;
	for (size_t i = 0; i < a->count; i++)
		if (strcmp(a->items[i], b->items[i]) != 0)
			return false;
	return true;
}

void
config_diff(const struct config *a, const struct config *b, config_diff_fn fn, void *arg)
{
	char va[512], vb[512];

	for (size_t i = 0; i < nitems(cfg_keys); i++) {
		const struct cfg_key *k = &cfg_keys[i];
		bool same;

		if (k->type == CT_LIST) {
			same = list_equal((const struct config_list *)(const void *)
			    ((const char *)a + k->offset), (const struct config_list *)(const void *)
			    ((const char *)b + k->offset));
		} else {
			format_value(a, k, va, sizeof(va));
			format_value(b, k, vb, sizeof(vb));
			same = strcmp(va, vb) == 0;
		}
		if (!same)
			fn(k->section, k->key, k->reload, arg);
	}
}

void
config_help(FILE *out)
{
	char def[64], bounds[80];
	size_t i;

	for (i = 0; i < nitems(cfg_keys); i++) {
		const struct cfg_key *k = &cfg_keys[i];

		snprintf(def, sizeof(def), "%s", k->def != NULL ? k->def :
		    k->unset != NULL ? k->unset : "none");
		if (k->type == CT_COUNT || k->type == CT_DURATION || k->type == CT_SIZE ||
		    k->type == CT_MODE) {
			format_bounds(k, bounds, sizeof(bounds));
			fprintf(out, "[%s] %s: %s (default %s, allowed %s)\n", k->section, k->key,
			    k->doc, def, bounds);
		} else if (k->type == CT_LIST)
			fprintf(out, "[%s] %s: %s (default %s; may be repeated)\n", k->section,
			    k->key, k->doc, def);
		else
			fprintf(out, "[%s] %s: %s (default %s)\n", k->section, k->key, k->doc, def);
	}
}

void
config_dump_keys(FILE *out)
{
	static const char *const type_names[] = {
		[CT_STRING] = "string", [CT_COUNT] = "count", [CT_DURATION] = "duration",
		[CT_SIZE] = "size", [CT_LOGLEVEL] = "level", [CT_ENUM] = "enum", [CT_MODE] = "mode",
		[CT_LIST] = "list",
	};
	char bounds[256];
	size_t i, used;

	for (i = 0; i < nitems(cfg_keys); i++) {
		const struct cfg_key *k = &cfg_keys[i];

		switch (k->type) {
		case CT_COUNT:
		case CT_DURATION:
		case CT_SIZE:
		case CT_MODE:
			format_bounds(k, bounds, sizeof(bounds));
			break;
		case CT_LOGLEVEL:
		case CT_ENUM:
			bounds[0] = '\0';
			used = 0;
			for (size_t j = 0; used < sizeof(bounds); j++) {
				const char *name = k->type == CT_ENUM ? k->names[j] :
				    j <= LOG_DEBUG ? log_level_name((enum log_level)j) : NULL;

				if (name == NULL)
					break;
				used += (size_t)snprintf(bounds + used, sizeof(bounds) - used, "%s%s",
				    j > 0 ? ", " : "", name);
			}
			break;
		default:
			snprintf(bounds, sizeof(bounds), "-");
			break;
		}
		fprintf(out, "%s\t%s\t%s\t%s\t%s\t%s\n", k->section, k->key, type_names[k->type],
		    k->def != NULL ? k->def : k->unset != NULL ? k->unset : "(none)", bounds,
		    k->reload ? "reload" : "restart");
	}
}
