/*
 * cache: the agent's sealed, version-aware cache of secrets, between the
 * dispatcher and the backend. The one cache API every front end (the Unix
 * protocol today, HTTP later) reads through.
 *
 * Two levels, following Secrets Manager semantics:
 *   1. labels: (secret, staging label) -> VersionId, trusted for `ttl`;
 *   2. versions: (secret ARN, VersionId) -> sealed value. A VersionId's value
 *      never changes, so a stored version is never refreshed, only evicted.
 * A secret asked for by name, full ARN or partial ARN is one entry. "No
 * stage" means AWSCURRENT. Versions are bounded by count and sealed bytes,
 * least recently used first. "Not found" is remembered for `negative_ttl`.
 * Concurrent misses for the same (id, stage, version id) share one fetch.
 *
 * Values are sealed (seal.h) under a key that is closed except during one
 * event-loop pass that needs it; plaintext exists only in a guarded buffer
 * for the duration of a callback.
 */
#ifndef SMC_AGENT_CACHE_H
#define SMC_AGENT_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

struct event_base;
struct cache;

struct cache_options {
	unsigned ttl_s;			/* label -> version trust */
	unsigned negative_ttl_s;	/* how long "not found" is remembered; 0: never */
	size_t max_versions;		/* versions held at most */
	size_t max_bytes;		/* sealed bytes held at most */
};

struct cache_stats {
	uint64_t hits;			/* answered from the cache */
	uint64_t misses;		/* needed the backend */
	uint64_t negative_hits;		/* answered "not found" from memory */
	uint64_t joins;			/* waited on a fetch already in flight */
	uint64_t evictions;		/* versions dropped to stay in bounds */
	uint64_t fetches;		/* backend fetches started */
	uint64_t fetch_errors;
	uint64_t versions;		/* gauges */
	uint64_t sealed_bytes;
	uint64_t secrets;
	uint64_t labels;
	uint64_t negatives;
	uint64_t in_flight;
};

/*
 * The answer to a GET. On success `value` is valid only during the call and
 * holds plaintext in guarded memory that is wiped right after.
 */
typedef void (*cache_value_cb)(void *arg, const struct backend_value *value,
    const struct backend_error *error);

struct cache *cache_new(struct event_base *base, struct backend *backend,
    const struct cache_options *opts, char *err, size_t errlen);
/* Pending waiters are not called. */
void cache_free(struct cache *cache);

/*
 * Answers a GET. The callback runs before this returns on a hit or a
 * remembered "not found", and from the event loop after a fetch otherwise.
 */
void cache_get(struct cache *cache, const struct backend_query *query, cache_value_cb cb,
    void *arg);

const struct cache_stats *cache_get_stats(const struct cache *cache);

#endif
