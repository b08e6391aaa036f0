/*
 * cache: the agent's sealed, version-aware cache of secrets, between the
 * dispatcher and the backend. The one cache API every front end (the Unix
 * protocol today, HTTP later) reads through.
 *
 * Two levels, following Secrets Manager semantics:
 *   1. labels: (secret, staging label) -> VersionId, trusted for `ttl`
 *      (AWSPENDING only for `pending_ttl`);
 *   2. versions: (secret ARN, VersionId) -> sealed value. A VersionId's value
 *      never changes, so a stored version is never refreshed, only evicted.
 * A secret asked for by name, full ARN or partial ARN is one entry. "No
 * stage" means AWSCURRENT. Versions are bounded by count and sealed bytes,
 * least recently used first. "Not found" is remembered for `negative_ttl`.
 * Concurrent misses for the same (id, stage, version id) share one fetch.
 *
 * Freshness: a secret read within `refresh_idle` is refreshed in the
 * background once `refresh_ahead` percent of its ttl has passed (with
 * jitter): DescribeSecret, then GetSecretValue only for versions not held.
 * Readers never wait for that. When the upstream fails (timeouts, 5xx,
 * throttling), the last good value is served marked stale for up to
 * `max_stale` past its ttl; a definitive answer (deleted, access denied) ends
 * that at once. Failing refreshes back off per secret, and a circuit breaker
 * stops calling an upstream that fails everything, probing it now and then.
 *
 * Values are sealed (seal.h) under a key that is closed except during one
 * event-loop pass that needs it; plaintext exists only in a guarded buffer
 * for the duration of a callback.
 */
#ifndef SMC_AGENT_CACHE_H
#define SMC_AGENT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

struct event_base;
struct cache;

struct cache_options {
	unsigned ttl_s;			/* label -> version trust */
	unsigned pending_ttl_s;		/* AWSPENDING trust (capped at ttl); 0: ttl */
	unsigned negative_ttl_s;	/* how long "not found" is remembered; 0: never */
	size_t max_versions;		/* versions held at most */
	size_t max_bytes;		/* sealed bytes held at most */
	unsigned refresh_ahead_pct;	/* refresh at this percent of ttl; 0: no refresh-ahead */
	unsigned refresh_jitter_pct;	/* +- this percent of ttl, so agents do not align */
	unsigned refresh_idle_s;	/* stop refreshing a secret not read for this long */
	unsigned max_stale_s;		/* serve a value this long past its ttl while the upstream fails */
	unsigned max_refreshes;		/* background upstream calls in flight at most */
	unsigned min_refresh_interval_s; /* forced refreshes of one secret at most this often */
};

struct cache_stats {
	uint64_t hits;			/* answered from the cache */
	uint64_t misses;		/* needed the backend */
	uint64_t negative_hits;		/* answered "not found" from memory */
	uint64_t joins;			/* waited on a fetch already in flight */
	uint64_t evictions;		/* versions dropped to stay in bounds */
	uint64_t fetches;		/* backend fetches started for readers */
	uint64_t fetch_errors;
	uint64_t stale_serves;		/* answered with a value past its ttl */
	uint64_t refreshes;		/* background refreshes started */
	uint64_t refresh_errors;
	uint64_t refresh_fetches;	/* GetSecretValue calls made by refreshes */
	uint64_t backoffs;		/* refreshes postponed after a failure */
	uint64_t forced_refreshes;
	uint64_t forced_refresh_limited;
	uint64_t breaker_opens;		/* times the circuit breaker opened */
	uint64_t breaker_rejects;	/* requests answered at once while it was open */
	uint64_t prefetches;
	uint64_t versions;		/* gauges */
	uint64_t sealed_bytes;
	uint64_t secrets;
	uint64_t labels;
	uint64_t negatives;
	uint64_t in_flight;
	uint64_t breaker_open;		/* 1 while open */
};

/* cache_get flags */
#define CACHE_FORCE_REFRESH	0x1	/* ask the upstream now (rate-limited per secret) */

/*
 * The answer to a GET. On success `value` is valid only during the call and
 * holds plaintext in guarded memory that is wiped right after; `stale` says
 * it is past its ttl because the upstream is failing.
 */
typedef void (*cache_value_cb)(void *arg, const struct backend_value *value, bool stale,
    const struct backend_error *error);

struct cache *cache_new(struct event_base *base, struct backend *backend,
    const struct cache_options *opts, char *err, size_t errlen);
/* Pending waiters are not called. */
void cache_free(struct cache *cache);

/*
 * Answers a GET. The callback runs before this returns on a hit, a stale
 * serve or a remembered "not found", and from the event loop after a fetch
 * otherwise. The callback may call cache_get() again.
 */
void cache_get(struct cache *cache, const struct backend_query *query, unsigned flags,
    cache_value_cb cb, void *arg);

/* Fetches AWSCURRENT of secret_id in the background (start-up prefetch). */
void cache_prefetch(struct cache *cache, const char *secret_id);

/* Applies new tunables (SIGHUP); bounds take effect as entries come and go. */
void cache_set_options(struct cache *cache, const struct cache_options *opts);

const struct cache_stats *cache_get_stats(const struct cache *cache);

#endif
