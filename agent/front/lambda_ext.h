/*
 * lambda_ext: smcached as an AWS Lambda extension, the client side of the
 * Lambda Extensions API (http://$AWS_LAMBDA_RUNTIME_API/2020-01-01/extension).
 *
 * Owns the extension's life cycle: register (POST /register with the
 * extension's name, for INVOKE and SHUTDOWN), then, once the agent says it is
 * ready (prefetch done), the event/next long poll; INVOKE events are counted,
 * SHUTDOWN calls the owner's shutdown callback with the deadline. Failures
 * during start-up are reported with POST /init/error, later fatal ones with
 * /exit/error, as the API asks, so Lambda shows why the extension died.
 *
 * The environment mapping (PARAMETERS_SECRETS_EXTENSION_*, SECRETS_MANAGER_TTL)
 * is the configuration's (config.c); this module only speaks the API.
 * Requests go over libevent's HTTP client on the event loop; answers are
 * bounded (64 KiB) and parsed with cJSON.
 */
#ifndef SMC_AGENT_LAMBDA_EXT_H
#define SMC_AGENT_LAMBDA_EXT_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct lambda_ext;

struct lambda_ext_callbacks {
	/* SHUTDOWN arrived: stop within deadline_ms (epoch milliseconds; 0 if not given). */
	void (*on_shutdown)(void *arg, const char *reason, int64_t deadline_ms);
	/* The API failed for good (register refused, event loop broken): exit. */
	void (*on_fatal)(void *arg, const char *why);
	void *arg;
};

/*
 * A client of the Extensions API at runtime_api ("HOST:PORT", as in
 * AWS_LAMBDA_RUNTIME_API) for the extension name (the file name Lambda
 * started, e.g. "smcache"). NULL with err on a bad address or name.
 */
struct lambda_ext *lambda_ext_new(struct event_base *base, const char *runtime_api,
    const char *name, const struct lambda_ext_callbacks *cb, char *err, size_t errlen);

/* Sends the registration (POST /register for INVOKE and SHUTDOWN); it
 * completes on the event loop, and lambda_ext_ready() may come before. */
int lambda_ext_register(struct lambda_ext *ext, char *err, size_t errlen);

/* The agent finished initialising (socket and HTTP door listening, prefetch
 * done): start asking for events, which ends Lambda's INIT phase. */
void lambda_ext_ready(struct lambda_ext *ext);

/* Start-up failed: tell Lambda why (POST /init/error, registering first if
 * that has not completed). Best effort, blocking for at most about two
 * seconds on a private loop, since the process exits next. */
void lambda_ext_init_error(struct lambda_ext *ext, const char *error_type, const char *message);

/* Counters for STATS / metrics. */
struct lambda_ext_stats {
	uint64_t invokes;
	uint64_t event_errors;
	int registered;
};
void lambda_ext_get_stats(const struct lambda_ext *ext, struct lambda_ext_stats *out);

void lambda_ext_free(struct lambda_ext *ext);

#endif
