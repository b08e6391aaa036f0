/*
 * smcache.h: libsmcache, the client library of the smcache secrets agent.
 *
 * A program connects to the local agent (smcached) over its Unix socket and
 * asks it for secrets. The agent fetches them from AWS Secrets Manager (or
 * its file backend) and caches them; this library speaks the agent's wire
 * protocol and hands back plain C objects.
 *
 *	smc_error err;
 *	smc_secret *s;
 *	smc_client *c = smc_connect(NULL, 0, &err);
 *	if (c == NULL || smc_get(c, "prod/db/password", NULL, &s, &err) == -1)
 *		fprintf(stderr, "%s\n", err.message);
 *	else {
 *		use(smc_secret_value(s), smc_secret_value_len(s));
 *		smc_secret_free(s);	// wipes the value
 *	}
 *	smc_close(c);
 *
 * Conventions:
 *  - Functions returning int return 0 on success and -1 on failure. Every
 *    function that can fail takes an `smc_error *err` (may be NULL) that is
 *    filled on failure (and reset to SMC_OK on success).
 *  - Strings handed out by accessors belong to the object they came from and
 *    live until it is freed. Free functions accept NULL.
 *  - Dates are milliseconds since the Unix epoch; 0 means unknown or absent.
 *
 * Thread safety: the library has no global state. An smc_client handle may
 * be shared by threads: it keeps a small pool of connections and each call
 * borrows one, so calls from different threads run in parallel. (Before
 * SMCACHE_0.2 a handle had one connection and was used by one thread at a
 * time.) A smc_batch is used by one thread at a time. The objects returned
 * are independent of each other and of the handle that produced them.
 *
 * fork(): a child may keep using a handle created before the fork (as long
 * as no other thread of the parent was inside a call at that moment): it
 * never touches its parent's connections and opens its own.
 *
 * Agent restarts: a call whose connection the agent closed sends its request
 * again on a new one, and a handle that has reached an agent before keeps
 * trying to connect (backoff from 10 ms to 500 ms) until the call's deadline
 * while the agent is away.
 *
 * Secret values are kept in guarded, locked memory (libsodium's
 * sodium_malloc: guard pages, mlock, excluded from core dumps) and wiped by
 * smc_secret_free(); the library also wipes every buffer a value passed
 * through. Copy values out only when you must, and wipe your copies.
 *
 * Signals: the library never raises SIGPIPE (it sends with MSG_NOSIGNAL) and
 * restarts system calls interrupted by signal handlers; timeouts keep
 * counting across such interruptions.
 *
 * Link with `pkg-config --libs smcache` (libsmcache and libsodium).
 */
#ifndef SMCACHE_H
#define SMCACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Default per-request (and connect) timeout, used when 0 is passed. */
#define SMC_DEFAULT_TIMEOUT_MS	10000

/* Error codes. Numbers are stable: never renumbered, never reused. */
typedef enum smc_error_code {
	SMC_OK = 0,
	SMC_ERR_NOT_FOUND = 1,			/* secret, version id or stage does not exist */
	SMC_ERR_ACCESS_DENIED = 2,		/* the agent does not let this process read it */
	SMC_ERR_BAD_REQUEST = 3,		/* the agent rejected the request as invalid */
	SMC_ERR_UPSTREAM_UNAVAILABLE = 4,	/* the backend failed, timed out or throttled */
	SMC_ERR_INTERNAL = 5,			/* the agent failed internally */
	SMC_ERR_UNSUPPORTED = 6,		/* the agent does not speak this request */
	SMC_ERR_LIMIT_EXCEEDED = 7,		/* an agent limit was hit; retry later */
	SMC_ERR_UPSTREAM_AUTH = 8,		/* the agent's own credentials were refused */
	SMC_ERR_UNREACHABLE = 9,		/* cannot connect, connection lost, or timeout */
	SMC_ERR_PROTOCOL = 10,			/* the agent's reply made no sense */
	SMC_ERR_USAGE = 11,			/* bad arguments to a library function */
	SMC_ERR_NOMEM = 12,			/* out of memory */
} smc_error_code;

#define SMC_ERROR_MESSAGE_MAX	256

/* What went wrong: a code to act on and a one-line message for humans
 * (control characters from the agent are replaced; never holds a value). */
typedef struct smc_error {
	smc_error_code code;
	char message[SMC_ERROR_MESSAGE_MAX];
} smc_error;

/* A short fixed description of a code ("secret not found", ...). */
const char *smc_strerror(smc_error_code code);

/* The library's version, e.g. "0.1.0". */
const char *smc_version(void);

typedef struct smc_client smc_client;
typedef struct smc_secret smc_secret;
typedef struct smc_description smc_description;
typedef struct smc_stat_list smc_stat_list;

/*
 * Connects to the agent. socket_path NULL means the default: the
 * SMCACHE_SOCKET environment variable when set, else the caller's per-user
 * path and then the system agent's /run/smcache/smcached.sock (PROTOCOL.md
 * section 1; the error then lists every path tried). timeout_ms bounds the connect and becomes the per-request
 * timeout: > 0 milliseconds, 0 the default (SMC_DEFAULT_TIMEOUT_MS), < 0 no
 * limit. Returns NULL with err set (SMC_ERR_UNREACHABLE when no agent
 * answers). If the agent later closes an idle connection, the next request
 * reconnects by itself.
 *
 * At the per-user default path, and so in the /tmp fallback that any user
 * could have created first, only an agent running as root or as the
 * caller's effective uid is accepted (SO_PEERCRED); at the system path, only
 * a socket owned by, and an agent running as, root or the user "smcache".
 * A path given here or in SMCACHE_SOCKET is trusted as given.
 */
smc_client *smc_connect(const char *socket_path, int timeout_ms, smc_error *err);

/* Changes the per-request timeout (same meaning of timeout_ms as above).
 * A request that times out fails with SMC_ERR_UNREACHABLE. */
void smc_set_timeout(smc_client *c, int timeout_ms);

/* Closes the connection and frees the handle. */
void smc_close(smc_client *c);

/* Which version GetSecretValue-style requests want. NULL fields are absent;
 * with neither, the agent returns the AWSCURRENT version. Both may be given
 * (they must then name the same version, as in AWS). */
typedef struct smc_get_options {
	const char *version_stage;
	const char *version_id;
	/* Nonzero: the agent asks the upstream now instead of trusting its cache
	 * (for "I know it just rotated"). The agent rate-limits this per secret
	 * and per user; over the limit the call fails with SMC_ERR_LIMIT_EXCEEDED. */
	int refresh;
} smc_get_options;

/* Fetches a secret's value. secret_id is a name, full ARN or partial ARN.
 * opts may be NULL. On success *out must be freed with smc_secret_free(). */
int smc_get(smc_client *c, const char *secret_id, const smc_get_options *opts,
    smc_secret **out, smc_error *err);

/* One-shot convenience: connect to the default socket with the default
 * timeout, fetch the AWSCURRENT version, disconnect. */
int smc_fetch(const char *secret_id, smc_secret **out, smc_error *err);

const char *smc_secret_arn(const smc_secret *s);
const char *smc_secret_name(const smc_secret *s);
const char *smc_secret_version_id(const smc_secret *s);
size_t smc_secret_stage_count(const smc_secret *s);
/* NULL when i is out of range. */
const char *smc_secret_stage(const smc_secret *s, size_t i);
int64_t smc_secret_created_ms(const smc_secret *s);
/* 1 for a SecretBinary, 0 for a SecretString. */
int smc_secret_is_binary(const smc_secret *s);
/* 1 when the agent served the value from cache past its refresh time
 * (the upstream was unreachable); the value is still the last one seen. */
int smc_secret_is_stale(const smc_secret *s);
/* The value's bytes exactly as stored. Always followed by one NUL byte
 * that is not counted in the length, so a SecretString can be used as a C
 * string (as long as it holds no NUL itself). */
const unsigned char *smc_secret_value(const smc_secret *s);
size_t smc_secret_value_len(const smc_secret *s);
/* The SecretString as a C string; NULL for a binary secret. */
const char *smc_secret_string(const smc_secret *s);
/* Wipes the value and frees everything. */
void smc_secret_free(smc_secret *s);

/* Fetches a secret's metadata (no value), like DescribeSecret. */
int smc_describe(smc_client *c, const char *secret_id, smc_description **out,
    smc_error *err);

const char *smc_description_arn(const smc_description *d);
const char *smc_description_name(const smc_description *d);
/* NULL when the secret has no description. */
const char *smc_description_text(const smc_description *d);
int64_t smc_description_created_ms(const smc_description *d);
int64_t smc_description_last_changed_ms(const smc_description *d);
/* Non-zero when the secret is scheduled for deletion. */
int64_t smc_description_deleted_ms(const smc_description *d);
int smc_description_is_stale(const smc_description *d);
size_t smc_description_version_count(const smc_description *d);
/* Version accessors return NULL / 0 when an index is out of range. */
const char *smc_description_version_id(const smc_description *d, size_t i);
int64_t smc_description_version_created_ms(const smc_description *d, size_t i);
size_t smc_description_version_stage_count(const smc_description *d, size_t i);
const char *smc_description_version_stage(const smc_description *d, size_t i, size_t j);
void smc_description_free(smc_description *d);

/* smc_get with a deadline for this call only: timeout_ms > 0 milliseconds
 * (connecting, retries and reconnects included), < 0 no limit, 0 the
 * handle's timeout. (Symbol version SMCACHE_0.2.) */
int smc_get_timeout(smc_client *c, const char *secret_id, const smc_get_options *opts,
    int timeout_ms, smc_secret **out, smc_error *err);

/*
 * Pipelined reads (symbol version SMCACHE_0.2), for programs that read many secrets at
 * start-up: add GETs to a batch, run it (every request is written on one
 * connection without waiting, replies are collected as they come, in any
 * order), then take each result.
 *
 *	smc_batch *b = smc_batch_new(c, &err);
 *	smc_batch_add(b, "prod/db", NULL, &err);		// index 0
 *	smc_batch_add(b, "prod/api-key", NULL, &err);		// index 1
 *	if (smc_batch_run(b, 0, &err) == 0)
 *		for (size_t i = 0; i < smc_batch_count(b); i++)
 *			if (smc_batch_take(b, i, &s, &err) == 0) { use(s); smc_secret_free(s); }
 *			else report(i, &err);		// e.g. SMC_ERR_NOT_FOUND for that one
 *	smc_batch_free(b);
 */
typedef struct smc_batch smc_batch;

/* At most this many GETs in one batch. */
#define SMC_BATCH_MAX	1024

smc_batch *smc_batch_new(smc_client *c, smc_error *err);
/* Queues a GET (same arguments as smc_get; strings are copied). Returns its
 * index, or -1 (SMC_ERR_USAGE for a bad id, a full batch, or a batch that
 * already ran). */
long smc_batch_add(smc_batch *b, const char *secret_id, const smc_get_options *opts,
    smc_error *err);
size_t smc_batch_count(const smc_batch *b);
/* Sends every queued GET and waits for all replies under one deadline
 * (timeout_ms as in smc_get_timeout). Returns 0 when every reply arrived,
 * each being a secret or a per-secret error; -1 with err set when the
 * connection failed (requests already answered keep their results, the
 * others fail with that error). A batch runs once. */
int smc_batch_run(smc_batch *b, int timeout_ms, smc_error *err);
/* Result i: 0 with *out set (the caller frees it; a second take fails), or
 * -1 with that request's error. */
int smc_batch_take(smc_batch *b, size_t i, smc_secret **out, smc_error *err);
/* Frees the batch and every result not taken (values wiped). */
void smc_batch_free(smc_batch *b);

/*
 * A field of a JSON SecretString (symbol version SMCACHE_0.2): path is a dot-separated list
 * of object keys, a component made of digits indexing an array
 * ("db.hosts.0"). A string field gives its text, any other value its
 * compact JSON ("5432", "true", "{\"a\":1}"). *out is NUL-terminated, in
 * guarded memory, *out_len (may be NULL) its length; free it with
 * smc_value_free(), which wipes it. Fails with SMC_ERR_NOT_FOUND when the
 * field is absent and SMC_ERR_USAGE when the secret is binary or not JSON.
 */
int smcache_get_json_field(const smc_secret *s, const char *path, char **out, size_t *out_len,
    smc_error *err);
/* Wipes and frees a value from smcache_get_json_field (NULL is fine). */
void smc_value_free(char *value);

/* Checks the agent is alive. When version is not NULL, the agent's version
 * string is copied there (truncated to version_len - 1 bytes, NUL-terminated). */
int smc_ping(smc_client *c, char *version, size_t version_len, smc_error *err);

/* The agent's upstream credentials, as HEALTH reports them. */
typedef enum smc_credentials {
	SMC_CREDENTIALS_NOT_NEEDED = 0,		/* the backend needs none (file) */
	SMC_CREDENTIALS_UNKNOWN = 1,		/* not used yet */
	SMC_CREDENTIALS_OK = 2,			/* the upstream accepted them last time */
	SMC_CREDENTIALS_UNAVAILABLE = 3,	/* none could be obtained */
	SMC_CREDENTIALS_REJECTED = 4,		/* the upstream refused them last time */
} smc_credentials;

#define SMC_HEALTH_REASONS_MAX	1024

/* What smc_health() reports. Dates are milliseconds since the epoch, 0 for
 * never. Numbers the agent did not send are 0. */
typedef struct smc_health_info {
	int live;			/* 1: the agent answered */
	int ready;			/* 1: reads should work now */
	smc_credentials credentials;
	int64_t started_ms;
	int64_t last_success_ms;	/* the upstream last answered */
	int64_t last_failure_ms;	/* the upstream last could not be used */
	smc_error_code last_failure;	/* what that failure was (SMC_ERR_UPSTREAM_AUTH, ...) */
	int breaker_open;		/* 1: the agent stopped calling a failing upstream */
	uint64_t prefetch_pending;	/* start-up prefetches not answered yet */
	uint64_t cache_secrets;
	uint64_t cache_versions;
	/* Why not ready: the agent's reasons joined by "; " (empty when ready). */
	char reasons[SMC_HEALTH_REASONS_MAX];
} smc_health_info;

/* Asks the agent for its liveness and readiness (the HEALTH operation).
 * Returns 0 with *out filled whether or not the agent is ready (check
 * out->ready); -1 with err set when it could not be asked (SMC_ERR_UNSUPPORTED
 * from an agent older than HEALTH). */
int smc_health(smc_client *c, smc_health_info *out, smc_error *err);

/* Fetches the agent's counters: a list of (name, unsigned 64-bit value). */
int smc_stats(smc_client *c, smc_stat_list **out, smc_error *err);
size_t smc_stat_list_count(const smc_stat_list *st);
const char *smc_stat_list_name(const smc_stat_list *st, size_t i);
uint64_t smc_stat_list_value(const smc_stat_list *st, size_t i);
/* Looks a counter up by name: 0 with *value set, or -1 when absent. */
int smc_stat_list_find(const smc_stat_list *st, const char *name, uint64_t *value);
void smc_stat_list_free(smc_stat_list *st);

#ifdef __cplusplus
}
#endif

#endif
