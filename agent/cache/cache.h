/*
 * cache: the agent's sealed, version-aware cache of secrets, between the
 * dispatcher and the backend. The one cache API every front end (the Unix
 * protocol today, HTTP later) reads through.
 *
 * Two levels, following Secrets Manager semantics:
 *   1. labels: (secret, staging label) -> VersionId, trusted for `ttl`
 *      (AWSPENDING only for `pending_ttl`);
 *   2. versions: (secret ARN, VersionId) -> sealed value. A VersionId's value
 *      never changes, so a stored value is never fetched again, only evicted;
 *      but the labels it bears and the secret's existence do change, so a
 *      read by VersionId is trusted for `ttl` like a label, then revalidated.
 * A secret asked for by name, full ARN or partial ARN is one entry. "No
 * stage" means AWSCURRENT. Versions are bounded by count and sealed bytes,
 * least recently used first. "Not found" is remembered for `negative_ttl`.
 * Concurrent misses for the same (id, stage, version id) share one fetch.
 *
 * Freshness: a secret read within `refresh_idle` is refreshed in the
 * background once `refresh_ahead` percent of its ttl has passed (with
 * jitter): DescribeSecret, then GetSecretValue only for versions not held.
 * Secrets holding only AWSCURRENT are refreshed instead up to 20 to one batch
 * read (batch_refresh, with a backend that has one: BatchGetSecretValue),
 * which answers the current version with its value: one already held costs
 * nothing more, a new one is stored. A group due in one tick is filled with
 * such secrets more than halfway to their refresh, so groups stay full.
 * Readers never wait for that: while a held value's refresh is in flight,
 * due or failing (timeouts, 5xx, throttling), the value is served at once,
 * marked stale once past its ttl, for up to `max_stale` past it
 * (stale-while-revalidate); only a reader of a secret with no value held, or
 * of a cold one, waits. A definitive answer (deleted, access denied) ends
 * stale service at once. Failing refreshes back off per secret, and a
 * circuit breaker stops calling an upstream that fails everything, probing
 * it now and then; answers about one secret (struct backend_error's
 * about_secret) back off that secret only and never count toward it.
 *
 * Values are sealed (seal.h) under a key that is inaccessible except while
 * values are being sealed or unsealed (it closes about a millisecond after
 * its last use; see cache.c). Plaintext exists only in a guarded buffer for
 * the duration of a callback, or in a shared body (below) for at most one
 * event-loop pass plus the time its replies take to be written.
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
	bool batch_refresh;		/* secrets holding only AWSCURRENT: 20 to a batch read */
	unsigned body_linger_ms;	/* shared bodies reused this long across passes; 0: one
					 * pass (see "Shared bodies" below) */
};

struct cache_stats {
	uint64_t hits;			/* answered from the cache */
	uint64_t misses;		/* needed the backend */
	uint64_t negative_hits;		/* answered "not found" from memory */
	uint64_t backoff_hits;		/* answered with a backed-off query's last error */
	uint64_t joins;			/* waited on a fetch already in flight */
	uint64_t evictions;		/* versions dropped to stay in bounds */
	uint64_t fetches;		/* backend fetches started for readers */
	uint64_t fetch_errors;
	uint64_t stale_serves;		/* answered with a value past its ttl */
	uint64_t refreshes;		/* background refreshes started */
	uint64_t refresh_errors;
	uint64_t refresh_fetches;	/* GetSecretValue calls made by refreshes */
	uint64_t refresh_batches;	/* batch reads (BatchGetSecretValue) made by refreshes */
	uint64_t batch_refreshed;	/* secrets those answered */
	uint64_t backoffs;		/* refreshes postponed after a failure */
	uint64_t forced_refreshes;
	uint64_t forced_refresh_limited;
	uint64_t breaker_opens;		/* times the circuit breaker opened */
	uint64_t breaker_rejects;	/* requests answered at once while it was open */
	uint64_t prefetches;
	uint64_t describe_hits;		/* DESCRIBE answered from memory */
	uint64_t describe_joins;	/* DESCRIBE waited on a DescribeSecret in flight */
	uint64_t describe_fetches;	/* DescribeSecret calls made for DESCRIBE */
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
 * it is past its ttl (its refresh is in flight, due or failing).
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

/*
 * The upstream budget of whoever asks. cache_get_charged() calls
 * charge->allow(charge->arg) just before the request would start an upstream
 * call (a miss, a version id not held, a forced refresh); never for a hit, a
 * remembered "not found" or a join of a fetch already in flight. False: no
 * call is made and the request is answered LIMIT_EXCEEDED with
 * charge->refusal. Background refreshes and prefetches are charged to nobody.
 */
struct cache_charge {
	bool (*allow)(void *arg);
	void *arg;
	const char *refusal;
};
/* cache_get(), charging the upstream calls it causes to charge (NULL: to nobody). */
void cache_get_charged(struct cache *cache, const struct backend_query *query, unsigned flags,
    const struct cache_charge *charge, cache_value_cb cb, void *arg);

/*
 * Shared bodies: the fast path for hits. A front end that answers every hit
 * on a version with the same bytes (an encoded reply body) gives the cache a
 * render function; the cache unseals and renders a version once per
 * event-loop pass, keeps the bytes in a reference-counted buffer, and every
 * hit on that version in the same pass gets a reference to them. The bytes
 * are plaintext: locked memory (the process is mlockall'd), wiped and freed
 * when the pass has ended and the last reference is released.
 *
 * With opts.body_linger_ms = N > 0 (off by default: plaintext then outlives
 * the pass), a body also serves the hits of later passes, for at most N ms
 * after it was made and never past the closing of the sealing key (1 to 2 ms
 * after the last seal or unseal): one client reading one big secret in a loop
 * then costs a decryption per N ms, not per request.
 *
 * render writes the bytes for value into out[0..cap) and returns their
 * length; with cap too small (out may be NULL) it writes nothing and returns
 * the length it needs. 0: cannot render. It must not call the cache.
 */
struct cache_body;
typedef size_t (*cache_render_fn)(const struct backend_value *value, uint8_t *out, size_t cap);

/*
 * A hit: body is a reference the callee owns (pass it on or release it);
 * stale as for cache_value_cb; hit says which secret it is, during the call.
 */
struct cache_hit;
typedef void (*cache_body_cb)(void *arg, struct cache_hit *hit, bool stale,
    struct cache_body *body);
/* The hit's secret, for access checks: ARN and name, valid during the callback.
 * (Made on demand: the cache stores them compactly.) */
void cache_hit_names(struct cache_hit *hit, const char **arn, const char **name);

/*
 * Answers query from the cache alone when it can: a hit (fresh, or stale
 * while the upstream fails) goes to cb before this returns, and 1 is
 * returned. 0: nothing was called and nothing counted; use cache_get()
 * (a miss, a remembered "not found", a forced refresh, or a failure to
 * unseal or render).
 */
int cache_get_shared(struct cache *cache, const struct backend_query *query, unsigned flags,
    cache_render_fn render, cache_body_cb cb, void *arg);

const uint8_t *cache_body_data(const struct cache_body *body, size_t *len);
/* Drops a reference; the last one wipes and frees the body. NULL is a no-op.
 * Needs no cache: bodies may outlive it. */
void cache_body_release(struct cache_body *body);

/*
 * Answers a DESCRIBE (DescribeSecret: metadata, no value). An answer is
 * remembered for ttl under the id asked with ("not found" for negative_ttl),
 * and any number of DESCRIBEs of one id while it is asked share one upstream
 * call. The callback runs before this returns when the answer is remembered
 * (or cannot be asked for), from the event loop otherwise; what it receives
 * is valid during the call.
 */
typedef void (*cache_describe_cb)(void *arg, const struct backend_description *description,
    const struct backend_error *error);
void cache_describe(struct cache *cache, const char *secret_id, cache_describe_cb cb, void *arg);
/* cache_describe(), charging a DescribeSecret it starts to charge (see cache_get_charged). */
void cache_describe_charged(struct cache *cache, const char *secret_id,
    const struct cache_charge *charge, cache_describe_cb cb, void *arg);

/*
 * Drops everything held about one secret: its versions and labels, remembered
 * "not found" answers and descriptions. ids are what it is known by (its name,
 * its ARN, the id a client used), NULL entries skipped. For read-your-writes
 * after a write passed through to the upstream: the next read asks again.
 * (A fetch already in flight still answers its waiters with what it gets.)
 */
void cache_forget(struct cache *cache, const char *const *ids, size_t n);

/*
 * Fetches AWSCURRENT of secret_id in the background (start-up prefetch).
 * cb (may be NULL) is called once when it is held or has failed, possibly
 * before cache_prefetch() returns.
 */
void cache_prefetch(struct cache *cache, const char *secret_id, cache_value_cb cb, void *arg);

/*
 * Fetches every secret filter matches (start-up prefetch by pattern) with the
 * backend's batch read, page by page, storing each as a fetch does. cb runs
 * once, from the event loop: found is how many were stored, error NULL or
 * why the read stopped. -1 (cb never runs) when the backend has no batch
 * read (the file backend) or out of memory.
 */
typedef void (*cache_prefetch_done_cb)(void *arg, size_t found, const struct backend_error *error);
int cache_prefetch_filter(struct cache *cache, const struct backend_filter *filter,
    cache_prefetch_done_cb cb, void *arg);

/* Applies new tunables; bounds take effect as entries come and go. SIGHUP
 * does not reload [cache] keys (policy.c swaps access rules, audit, limits
 * and logging only), so today only tests call this. */
void cache_set_options(struct cache *cache, const struct cache_options *opts);

const struct cache_stats *cache_get_stats(const struct cache *cache);

#endif
