/*
 * backend: the one small interface every source of secrets implements
 * (the local JSON `file` backend, AWS Secrets Manager).
 *
 * Calls are asynchronous: a backend answers through the callback, and never
 * before the call returned, so callers need not guard against re-entrancy.
 * What a callback receives is borrowed: valid only during the callback. The
 * receiver copies (or seals) what it keeps. Value bytes passed to callbacks
 * are plaintext secrets: backends zero their buffers after the callback.
 */
#ifndef SMC_AGENT_BACKEND_H
#define SMC_AGENT_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "message.h"

struct event_base;
struct backend;

/* What to fetch. Strings are NUL-terminated; NULL when not given.
 * With neither version_id nor version_stage, AWSCURRENT is meant. */
struct backend_query {
	const char *secret_id;		/* name, full ARN or partial ARN */
	const char *version_stage;
	const char *version_id;
};

struct backend_error {
	enum proto_status status;	/* never PROTO_STATUS_OK */
	/*
	 * The answer is about this one secret (its value is malformed, its key
	 * fails to decrypt it, access to it is denied, it does not exist), not
	 * about the upstream as a whole (unreachable, timing out, 5xx, throttling,
	 * the agent's credentials refused). The cache's circuit breaker counts
	 * only the latter; the former back off that secret alone.
	 * backend_error_set() clears it; the backend sets it where it knows.
	 */
	bool about_secret;
	char message[256];		/* for the client and the log; never contains a value */
};

/* One version of a secret, with its value (GetSecretValue). */
struct backend_value {
	const char *arn;
	const char *name;
	const char *version_id;
	const char *const *stages;
	size_t stage_count;
	int64_t created_ms;		/* 0 when unknown */
	bool is_binary;			/* SecretBinary (else SecretString) */
	const uint8_t *data;
	size_t len;
};

struct backend_version_stages {
	const char *version_id;
	const char *const *stages;
	size_t stage_count;
	int64_t created_ms;
};

/* Metadata without values (DescribeSecret). */
struct backend_description {
	const char *arn;
	const char *name;
	const char *description;	/* NULL when none */
	int64_t created_ms;
	int64_t last_changed_ms;
	int64_t deleted_ms;		/* 0 unless scheduled for deletion */
	const struct backend_version_stages *versions;
	size_t version_count;
	/* The DescribeSecret response as the upstream sent it (NUL-terminated JSON, metadata
	 * only), so the Secrets Manager endpoint can answer exactly as the service did;
	 * NULL when the backend has none (the file backend). */
	const char *raw_json;
};

/* Exactly one of value/description and error is non-NULL. */
typedef void (*backend_value_cb)(void *arg, const struct backend_value *value,
    const struct backend_error *error);
typedef void (*backend_describe_cb)(void *arg, const struct backend_description *description,
    const struct backend_error *error);

/* How long backend calls took, from the call to the callback (a histogram, for /metrics). */
#define BACKEND_LATENCY_BUCKETS 12
/* Upper bounds in seconds of the buckets; one more bucket counts the rest (+Inf). */
extern const double backend_latency_bounds[BACKEND_LATENCY_BUCKETS];
struct backend_latency {
	uint64_t buckets[BACKEND_LATENCY_BUCKETS + 1];	/* not cumulative */
	uint64_t count;
	uint64_t sum_ns;
};

/* Upstream request counters, by operation and outcome (for STATS). */
struct backend_counters {
	uint64_t get_ok;
	uint64_t get_error;
	uint64_t describe_ok;
	uint64_t describe_error;
	struct backend_latency get_latency;	/* kept by backend_get_value() */
	struct backend_latency describe_latency;	/* kept by backend_describe() */
	uint64_t in_flight;		/* timed calls not answered yet (a gauge) */
};

/*
 * What the upstream's recent answers say, for HEALTH (front/health.h). An
 * answer is a success when the upstream could be used, whatever it said
 * (a value, not found, access denied: the credentials worked); a failure
 * when it could not (UPSTREAM_UNAVAILABLE, UPSTREAM_AUTH, INTERNAL).
 * credentials uses enum proto_credentials_state: a backend that needs
 * credentials starts at PROTO_CRED_UNKNOWN (the file backend stays at
 * NOT_NEEDED).
 */
struct backend_health {
	enum proto_credentials_state credentials;
	int64_t last_success_ms;	/* wall clock; 0: never */
	int64_t last_failure_ms;
	enum proto_status last_failure_status;
};

struct backend_ops {
	const char *name;
	/* Both return 0 when the callback will be called, -1 (nothing scheduled) otherwise. */
	int (*get_value)(struct backend *backend, const struct backend_query *query,
	    backend_value_cb cb, void *arg);
	int (*describe)(struct backend *backend, const char *secret_id,
	    backend_describe_cb cb, void *arg);
	/* Cancels nothing: pending callbacks still run before free returns or never
	 * run at all, as each backend documents. */
	void (*free)(struct backend *backend);
};

struct backend_timer;

struct backend {
	const struct backend_ops *ops;
	struct event_base *base;
	struct backend_counters counters;
	struct backend_timer *timers;	/* calls in flight, timed (backend.c) */
	struct backend_health health;
};

/* The calls every user makes: the backend's own, timed into counters' latency. */
int backend_get_value(struct backend *b, const struct backend_query *q, backend_value_cb cb,
    void *arg);
int backend_describe(struct backend *b, const char *secret_id, backend_describe_cb cb, void *arg);
/* Frees what timing still holds for callbacks that will never run, then the backend. */
void backend_free(struct backend *b);

/* Sets status and message; about_secret is cleared (an upstream-wide failure
 * unless the caller says otherwise). */
/* Records one upstream answer in b->health (error NULL: success). Backends
 * call it where they count outcomes, before the caller's callback. */
void backend_note(struct backend *b, const struct backend_error *error);

void backend_error_set(struct backend_error *error, enum proto_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
