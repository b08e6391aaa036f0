/*
 * upstream_aws: the `aws` backend, AWS Secrets Manager over HTTPS (AWS JSON
 * 1.1, SigV4-signed POSTs through the agent's libcurl/libevent client).
 *
 * GET is GetSecretValue (VersionStage AWSCURRENT sent explicitly when the
 * query names neither stage nor version id), DESCRIBE is DescribeSecret.
 * BATCH (the backend op batch_get, backend.h) is BatchGetSecretValue: 1..20
 * ids in one call, or Filters read 20 a page; the cache refreshes secrets
 * holding only AWSCURRENT and prefetches by filter with it.
 * upstream_aws_batch_get() is the same call for ids with every id answered
 * through item() (a whole failure too), for tools.
 *
 * Every request has a total deadline (upstream_timeout): within it,
 * throttling, HTTP 429/5xx, timeouts and connection failures are retried
 * with capped exponential backoff and full jitter (base 100 ms, cap 2 s, at
 * most max_retries retries); other errors are final at once. Past the
 * deadline the request fails with UPSTREAM_UNAVAILABLE. All waiting is done
 * with timers on the event loop.
 *
 * Callbacks run from the event loop, never before the call returned.
 * backend_free() cancels pending requests (their callbacks never run) and
 * may be called from inside a callback. Value bytes handed to callbacks
 * are wiped when the callback returns.
 */
#ifndef SMC_AGENT_UPSTREAM_AWS_H
#define SMC_AGENT_UPSTREAM_AWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

struct config;

#define UPSTREAM_AWS_BATCH_MAX		20	/* ids per upstream_aws_batch_get() */
#define UPSTREAM_AWS_BACKOFF_BASE_MS	100
#define UPSTREAM_AWS_BACKOFF_CAP_MS	2000

struct upstream_aws_options {
	/* What the configuration says; NULL/false: the environment decides (aws_profile.h). */
	const char *region;
	const char *endpoint;
	const char *profile;
	bool fips;
	const char *ca_bundle;		/* NULL: the system's trust store */
	long connect_timeout_ms;	/* 0: 2000 */
	long request_timeout_ms;	/* one HTTP exchange; 0: 5000 */
	long upstream_timeout_ms;	/* a whole request, retries included; 0: 8000 */
	unsigned int max_retries;	/* retries after the first attempt */
	unsigned int max_connections;	/* to the upstream at once; 0: 32 */
};

/* Counters beyond backend_counters (which counts GET and DESCRIBE outcomes). */
struct upstream_aws_stats {
	uint64_t batch_ok;		/* batch calls that got an answer for every id */
	uint64_t batch_error;		/* batch calls that failed as a whole */
	uint64_t batch_items_ok;
	uint64_t batch_items_error;
	uint64_t batch_fallbacks;	/* batches redone as single GetSecretValue calls */
	uint64_t http_requests;		/* HTTP exchanges started, retries included */
	uint64_t retries;
	uint64_t throttled;		/* responses that said throttling / 429 */
	uint64_t timeouts;		/* requests that hit upstream_timeout */
	uint64_t auth_failures;		/* responses that refused the agent's credentials */
};

/*
 * Resolves region, endpoint and credentials source now (aws_resolve,
 * aws_credentials_new) so configuration mistakes fail start-up with a clear
 * message. Credentials themselves are fetched on first use.
 */
struct backend *upstream_aws_new(struct event_base *base, const struct upstream_aws_options *opts,
    char *err, size_t errlen);

/* The options the [aws] section describes (strings borrowed from cfg). */
void upstream_aws_options_from_config(const struct config *cfg, struct upstream_aws_options *opts);

/* upstream_aws_new() with the [aws] section of cfg. */
struct backend *upstream_aws_new_from_config(struct event_base *base, const struct config *cfg,
    char *err, size_t errlen);

/*
 * BatchGetSecretValue for 1..UPSTREAM_AWS_BATCH_MAX secret ids (AWSCURRENT
 * only). item() is called exactly once per id (index into secret_ids), with
 * a value or an error, in no particular order, as answers arrive; then
 * done() once. Per-secret errors are per item; a failure of the whole call
 * is reported to every item not answered yet. When the upstream fails the
 * whole batch with not-found (moto does when one secret's version has no
 * value), each id is retried alone with GetSecretValue. Ids are copied.
 * Returns 0, or -1 (no callback will run) on bad arguments or no memory.
 */
struct upstream_aws_batch_cbs {
	void (*item)(void *arg, size_t index, const struct backend_value *value,
	    const struct backend_error *error);
	void (*done)(void *arg);
};
int upstream_aws_batch_get(struct backend *backend, const char *const *secret_ids, size_t count,
    const struct upstream_aws_batch_cbs *cbs, void *arg);

/*
 * A request of the Secrets Manager API passed through as it is (the
 * endpoint's writes): body (AWS JSON 1.1) POSTed with X-Amz-Target target,
 * signed with the agent's credentials, within upstream_timeout, never
 * retried (the upstream may have acted on an attempt whose answer was lost).
 * cb gets every HTTP answer (any status) as reply, or an error when there
 * was none (no credentials, unreachable, timeout); what it receives is valid
 * during the call. Returns 0, or -1 (no callback) when backend is not an aws
 * backend or on bad arguments. body is copied (and wiped when done).
 */
#define UPSTREAM_AWS_MAX_TARGET	96
struct upstream_aws_reply {
	long status;
	const uint8_t *body;
	size_t len;
	const char *content_type;	/* NULL when absent */
};
typedef void (*upstream_aws_forward_cb)(void *arg, const struct upstream_aws_reply *reply,
    const struct backend_error *error);
int upstream_aws_forward(struct backend *backend, const char *target, const void *body, size_t len,
    upstream_aws_forward_cb cb, void *arg);

/* The URL requests are POSTed to, and the signing region; NULL when not an aws backend. */
const char *upstream_aws_url(const struct backend *backend);
const char *upstream_aws_region(const struct backend *backend);

/* NULL when backend is not an aws backend. */
const struct upstream_aws_stats *upstream_aws_stats(const struct backend *backend);

/* Whether backend is an aws backend. */
bool upstream_aws_is(const struct backend *backend);

/*
 * The retry policy, exposed for tests. upstream_aws_backoff_ms: the delay
 * before retry number `retry` (0 for the first), uniform in
 * [0, min(cap, base * 2^retry)] given a uniform 32-bit random number.
 */
unsigned int upstream_aws_backoff_ms(unsigned int retry, uint32_t random);

/*
 * Splits an endpoint URL (scheme://host[:port][/path]) into what is signed
 * and sent: the Host header (default ports dropped), the request path ("/"
 * when none) and the URL to POST to. Returns 0, or -1 when the URL has no
 * host, user info, a query or a fragment.
 */
int upstream_aws_endpoint_parts(const char *endpoint, char *host, size_t host_len,
    char *path, size_t path_len, char *url, size_t url_len);

#endif
