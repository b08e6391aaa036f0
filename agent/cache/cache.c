/*
 * cache: sealed, version-aware secret cache with single-flight fetches,
 * refresh-ahead and stale-if-error (see cache.h for the model).
 *
 * Layout, chosen to keep per-version overhead small (the memory bench holds
 * it under 200 bytes per cached 1 KiB version beyond the sealed value):
 *   - secrets live in one hash index keyed by name, chained through the
 *     records (no separate nodes); a full or partial ARN is resolved by
 *     taking the name out of it and checking the stored ARN, so no alias
 *     entries are needed (secret names cannot contain ':');
 *   - a secret stores its ARN as a shared, refcounted prefix
 *     ("arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:", the same for
 *     every secret of an account and region) plus the rest, "NAME-XXXXXX",
 *     which also gives the name; ARNs of another shape are stored whole,
 *     with the name after them;
 *   - each secret keeps its few cached versions in a short list, with the
 *     VersionId (16 bytes when it is a canonical UUID, as AWS makes them,
 *     else the string) and the sealed blob in the same allocation as the
 *     version record;
 *   - the AWSCURRENT label is a flag of the version and its expiry a field of
 *     the secret; other labels are a list in a side record (struct
 *     secret_extra) that only secrets with such labels have;
 *   - secret and version records live in slabs of one size each
 *     (cache_slab.c), not in the heap, where the short-lived blocks of
 *     fetches would leave holes between them.
 * Measured (tests/bench, memory section): 1,190 bytes of RSS per cached 1 KiB
 * version, i.e. 166 beyond the value; tests/unit/test_cache_memory holds it
 * to the 200-byte budget.
 *
 * Background work runs from one periodic timer that walks the secrets: cheap
 * (a few nanoseconds a secret) and free of per-entry timers.
 *
 * Hits cost one unseal per version per event-loop pass, not per request:
 * cache_get_shared() keeps what the front end renders from a version (an
 * encoded reply body) in a small table of the pass, direct-mapped by version,
 * and the end-of-pass event releases the table's references.
 *
 * Files (shared definitions in cache_internal.h, private to this wing):
 *   cache.c          construction, options, stats; get, describe, forget;
 *   cache_index.c    secrets, versions, labels, the name index, eviction;
 *   cache_body.c     the sealing key, plaintext, shared bodies of a pass;
 *   cache_flight.c   fetches in flight, negative entries, failure backoff;
 *   cache_refresh.c  the breaker, the tick, background refresh;
 *   cache_batch.c    batch reads: AWSCURRENT refreshes 20 a call, prefetch by filter;
 *   cache_slab.c     where secret and version records live.
 */

#define LOG_COMPONENT "cache"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "body_pool.h"
#include "cache_internal.h"
#include "log.h"
#include "secmem.h"
#include "sm_id.h"

static void get_or_fetch(struct cache *c, const struct backend_query *query, unsigned flags,
    cache_value_cb cb, void *arg);

void
cache_get_charged(struct cache *c, const struct backend_query *query, unsigned flags,
    const struct cache_charge *charge, cache_value_cb cb, void *arg)
{
	const struct cache_charge *outer = c->charge;	/* a callback may ask again */

	c->charge = charge;
	get_or_fetch(c, query, flags, cb, arg);
	c->charge = outer;
}

void
cache_get(struct cache *c, const struct backend_query *query, unsigned flags, cache_value_cb cb,
    void *arg)
{
	cache_get_charged(c, query, flags, NULL, cb, arg);
}

static void
get_or_fetch(struct cache *c, const struct backend_query *query, unsigned flags,
    cache_value_cb cb, void *arg)
{
	struct backend_query q = *query;
	struct backend_error error;
	struct negative *neg;
	struct version *v;
	struct secret *s;
	uint64_t now = now_ms();
	bool stale;

	if (q.version_stage == NULL && q.version_id == NULL)
		q.version_stage = STAGE_CURRENT;
	if (flags & CACHE_FORCE_REFRESH) {
		if (!forced_refresh_allowed(c, &q, now)) {
			c->stats.forced_refresh_limited++;
			backend_error_set(&error, PROTO_STATUS_LIMIT_EXCEEDED,
			    "this secret was refreshed less than %us ago; try again later",
			    c->opts.min_refresh_interval_s);
			cb(arg, NULL, false, &error);
			return;
		}
		c->stats.forced_refreshes++;
		c->stats.misses++;
		flight_join(c, &q, cb, arg);
		return;
	}
	/* A held value past its ttl is served at once (stale) while the upstream
	 * is being asked anyway, is due to be, or fails (see revalidating()). */
	s = secret_find(c, q.secret_id);
	v = lookup(c, s, &q, now, &stale);
	if (v != NULL && stale && !revalidating(c, s, now) &&
	    flight_find(c, &q, query_hash(&c->flights, &q)) == NULL)
		v = NULL;	/* cold: this reader asks the upstream, and waits */
	if (v != NULL) {
		c->stats.hits++;
		touch(c, v, now);
		deliver_version(c, v, stale, cb, arg);
		return;
	}
	if ((neg = negative_find(c, &q)) != NULL) {
		if (negative_applies(c, neg, now)) {
			if (neg->failures > 0)
				c->stats.backoff_hits++;
			else
				c->stats.negative_hits++;
			error = neg->error;
			cb(arg, NULL, false, &error);
			return;
		}
		if (neg->failures == 0)
			negative_free(c, neg);	/* a failure's count stays, for its next backoff */
	}
	c->stats.misses++;
	flight_join(c, &q, cb, arg);
}

struct cache_hit {
	const struct cache *cache;
	const struct secret *secret;
	struct ident_buf ident;		/* filled by cache_hit_names() */
};

void
cache_hit_names(struct cache_hit *hit, const char **arn, const char **name)
{
	*arn = secret_arn(hit->cache, hit->secret, hit->ident.arn);
	*name = secret_name(hit->secret, hit->ident.name);
}

int
cache_get_shared(struct cache *c, const struct backend_query *query, unsigned flags,
    cache_render_fn render, cache_body_cb cb, void *arg)
{
	struct backend_query q = *query;
	struct cache_hit hit;
	struct cache_body *b;
	struct version *v;
	struct secret *s;
	uint64_t now;
	bool stale;

	if (flags & CACHE_FORCE_REFRESH)
		return 0;
	if (q.version_stage == NULL && q.version_id == NULL)
		q.version_stage = STAGE_CURRENT;
	if ((s = secret_find(c, q.secret_id)) == NULL)
		return 0;
	now = now_ms();
	/* As cache_get() (which also lets a reader of a cold secret join a fetch). */
	v = lookup(c, s, &q, now, &stale);
	if (v == NULL || (stale && !revalidating(c, s, now)) || (b = body_get(c, v, render)) == NULL)
		return 0;
	c->stats.hits++;
	if (stale)
		c->stats.stale_serves++;
	touch(c, v, now);
	hit.cache = c;
	hit.secret = s;
	cb(arg, &hit, stale, b);
	return 1;
}

void
cache_prefetch(struct cache *c, const char *secret_id, cache_value_cb cb, void *arg)
{
	struct backend_query q = { .secret_id = secret_id, .version_stage = STAGE_CURRENT };

	c->stats.prefetches++;
	flight_join(c, &q, cb, arg);
}

/* ---- DESCRIBE: remembered for ttl, one upstream call for concurrent askers ---------- */

static void
described_free(struct cache *c, struct described *e)
{
	table_remove(&c->descs, &e->node);
	TAILQ_REMOVE(&c->desc_fifo, e, fifo);
	c->desc_count--;
	free(e);
}

static struct described *
described_find(struct cache *c, const char *id, uint64_t h)
{
	for (struct table_node *n = table_chain(&c->descs, h); n != NULL; n = n->next) {
		struct described *e = table_entry(n, struct described, node);

		if (n->hash == h && strcmp(e->id, id) == 0)
			return e;
	}
	return NULL;
}

static size_t
opt_len(const char *s)
{
	return s != NULL ? strlen(s) + 1 : 0;
}

/* Remembers d (or error, when d is NULL) for id until expires_ms. */
static void
described_put(struct cache *c, const char *id, const struct backend_description *d,
    const struct backend_error *error, uint64_t expires_ms)
{
	uint64_t h = table_hash(&c->descs, id, NULL, NULL);
	size_t nv = d != NULL ? d->version_count : 0, size, nstages = 0;
	struct backend_version_stages *vs;
	struct described *e;
	const char **stage_at;
	char *p;

	if ((e = described_find(c, id, h)) != NULL)
		described_free(c, e);
	if (c->desc_count >= MAX_DESCRIPTIONS)
		described_free(c, TAILQ_FIRST(&c->desc_fifo));
	size = strlen(id) + 1;
	if (d != NULL) {
		size += opt_len(d->arn) + opt_len(d->name) + opt_len(d->description) +
		    opt_len(d->raw_json);
		for (size_t i = 0; i < nv; i++) {
			size += opt_len(d->versions[i].version_id);
			nstages += d->versions[i].stage_count;
			for (size_t j = 0; j < d->versions[i].stage_count; j++)
				size += opt_len(d->versions[i].stages[j]);
		}
	}
	size += sizeof(*e) + nv * sizeof(*vs) + nstages * sizeof(*stage_at);
	if ((e = calloc(1, size)) == NULL)
		return;		/* not remembered; the next DESCRIBE asks again */
	vs = (struct backend_version_stages *)(e + 1);
	stage_at = (const char **)(vs + nv);
	p = (char *)(stage_at + nstages);
	e->id = copy_opt(&p, id);
	e->expires_ms = expires_ms;
	if (d == NULL) {
		e->error = *error;
	} else {
		e->found = true;
		e->d = *d;
		e->d.arn = copy_opt(&p, d->arn);
		e->d.name = copy_opt(&p, d->name);
		e->d.description = copy_opt(&p, d->description);
		e->d.raw_json = copy_opt(&p, d->raw_json);
		e->d.versions = vs;
		for (size_t i = 0; i < nv; i++) {
			vs[i] = d->versions[i];
			vs[i].version_id = copy_opt(&p, d->versions[i].version_id);
			vs[i].stages = stage_at;
			for (size_t j = 0; j < d->versions[i].stage_count; j++)
				*stage_at++ = copy_opt(&p, d->versions[i].stages[j]);
		}
	}
	table_insert(&c->descs, &e->node, h);
	TAILQ_INSERT_TAIL(&c->desc_fifo, e, fifo);
	c->desc_count++;
}

static void
describe_flight_done(void *arg, const struct backend_description *d,
    const struct backend_error *error)
{
	struct describe_flight *f = arg;
	struct cache *c = f->cache;
	struct describe_waiter *w, *next;
	uint64_t now = now_ms();

	table_remove(&c->dflights, &f->node);
	breaker_record(c, upstream_answered(error), f->probe, now);
	if (d != NULL)
		described_put(c, f->id, d, NULL, now + (uint64_t)c->opts.ttl_s * 1000u);
	else if (error->status == PROTO_STATUS_NOT_FOUND && c->opts.negative_ttl_s != 0)
		described_put(c, f->id, NULL, error,
		    now + (uint64_t)c->opts.negative_ttl_s * 1000u);
	for (w = f->waiters; w != NULL; w = next) {
		next = w->next;
		w->cb(w->arg, d, error);
		free(w);
	}
	free(f);
}

void
cache_describe_charged(struct cache *c, const char *secret_id, const struct cache_charge *charge,
    cache_describe_cb cb, void *arg)
{
	uint64_t h = table_hash(&c->descs, secret_id, NULL, NULL), now = now_ms();
	struct backend_error error;
	struct describe_waiter *w;
	struct describe_flight *f = NULL;
	struct described *e;
	size_t len;
	bool probe;

	if ((e = described_find(c, secret_id, h)) != NULL) {
		if (now < e->expires_ms) {
			c->stats.describe_hits++;
			if (e->found) {
				cb(arg, &e->d, NULL);
			} else {
				error = e->error;
				cb(arg, NULL, &error);
			}
			return;
		}
		described_free(c, e);
	}
	h = table_hash(&c->dflights, secret_id, NULL, NULL);
	for (struct table_node *n = table_chain(&c->dflights, h); n != NULL; n = n->next) {
		struct describe_flight *df = table_entry(n, struct describe_flight, node);

		if (n->hash == h && strcmp(df->id, secret_id) == 0) {
			f = df;
			break;
		}
	}
	if ((w = calloc(1, sizeof(*w))) == NULL)
		goto fail;
	w->cb = cb;
	w->arg = arg;
	if (f != NULL) {
		c->stats.describe_joins++;
	} else {
		if (charge != NULL && !charge->allow(charge->arg)) {
			free(w);
			backend_error_set(&error, PROTO_STATUS_LIMIT_EXCEEDED, "%s", charge->refusal);
			cb(arg, NULL, &error);
			return;
		}
		if (!breaker_allow(c, now, &probe)) {
			free(w);
			c->stats.breaker_rejects++;
			backend_error_set(&error, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
			    "the upstream is failing; not asking it again before the next probe");
			cb(arg, NULL, &error);
			return;
		}
		len = strlen(secret_id);
		if ((f = calloc(1, sizeof(*f) + len + 1)) == NULL) {
			free(w);
			if (probe)
				c->breaker_probing = false;
			goto fail;
		}
		f->cache = c;
		f->probe = probe;
		f->waiters_tail = &f->waiters;
		memcpy(f->id, secret_id, len + 1);
		if (backend_describe(c->backend, f->id, describe_flight_done, f) != 0) {
			if (probe)
				c->breaker_probing = false;
			free(f);
			free(w);
			backend_error_set(&error, PROTO_STATUS_INTERNAL,
			    "the backend could not take the request");
			cb(arg, NULL, &error);
			return;
		}
		c->stats.describe_fetches++;
		table_insert(&c->dflights, &f->node, h);
	}
	*f->waiters_tail = w;
	f->waiters_tail = &w->next;
	return;
fail:
	backend_error_set(&error, PROTO_STATUS_INTERNAL, "out of memory");
	cb(arg, NULL, &error);
}

/* Does id name the secret known by ids[] (names, ARNs, the id a write used)? */
static bool
forget_names(const char *id, const char *const *ids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t len;

		if (ids[i] == NULL)
			continue;
		if (strcmp(id, ids[i]) == 0)
			return true;
		/* A partial ARN of a full one: the ARN without its "-XXXXXX". */
		len = strlen(id);
		if (sm_id_is_partial_of(id, len, ids[i]))
			return true;
	}
	return false;
}

void
cache_forget(struct cache *c, const char *const *ids, size_t n)
{
	struct negative *neg, *nnext;
	struct described *e, *enext;
	struct secret *sec;

	for (size_t i = 0; i < n; i++) {
		if (ids[i] != NULL && (sec = secret_find(c, ids[i])) != NULL)
			secret_free(c, sec);
	}
	for (neg = TAILQ_FIRST(&c->negative_fifo); neg != NULL; neg = nnext) {
		nnext = TAILQ_NEXT(neg, fifo);
		if (forget_names(neg->id, ids, n))
			negative_free(c, neg);
	}
	for (e = TAILQ_FIRST(&c->desc_fifo); e != NULL; e = enext) {
		enext = TAILQ_NEXT(e, fifo);
		if (forget_names(e->id, ids, n) || (e->found && ((e->d.name != NULL &&
		    forget_names(e->d.name, ids, n)) || (e->d.arn != NULL &&
		    forget_names(e->d.arn, ids, n)))))
			described_free(c, e);
	}
}

void
cache_describe(struct cache *c, const char *secret_id, cache_describe_cb cb, void *arg)
{
	cache_describe_charged(c, secret_id, NULL, cb, arg);
}

const struct cache_stats *
cache_get_stats(const struct cache *c)
{
	return &c->stats;
}

void
cache_set_options(struct cache *c, const struct cache_options *opts)
{
	c->opts = *opts;
	evict_to_bounds(c, NULL);
}

struct cache *
cache_new(struct event_base *base, struct backend *backend, const struct cache_options *opts,
    char *err, size_t errlen)
{
	struct cache *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	cache_slab_init(&c->slabs);
	c->base = base;
	c->backend = backend;
	c->opts = *opts;
	c->breaker_cooldown_ms = BREAKER_COOLDOWN_MS;
	TAILQ_INIT(&c->lru);
	TAILQ_INIT(&c->negative_fifo);
	LIST_INIT(&c->refreshes);
	LIST_INIT(&c->batches);
	TAILQ_INIT(&c->desc_fifo);
	c->plain_len = SEAL_MAX_PADDED;
	if (index_init(&c->secrets) != 0 || table_init(&c->extras, 16) != 0 ||
	    table_init(&c->negatives, 64) != 0 ||
	    table_init(&c->flights, 64) != 0 || table_init(&c->descs, 64) != 0 ||
	    table_init(&c->dflights, 16) != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((c->seal = seal_ctx_new()) == NULL) {
		snprintf(err, errlen, "cannot create the sealing key: %s", strerror(errno));
		goto fail;
	}
	log_info("cache: values are sealed with %s%s", seal_aead_name(seal_ctx_aead(c->seal)),
	    opts->body_linger_ms > 0 ? "; rendered replies linger (body_linger_ms)" : "");
	if ((c->plain = sodium_malloc(c->plain_len)) == NULL) {
		snprintf(err, errlen, "cannot allocate the guarded plaintext buffer");
		goto fail;
	}
	/* Sized for the largest value (68 KiB), used mostly for its first pages. */
	secmem_drop_fresh_pages(c->plain, c->plain_len);
	c->key_idle_ev = evtimer_new(base, key_idle_cb, c);
	c->pass_end_ev = event_new(base, -1, 0, pass_end_cb, c);
	c->tick_ev = evtimer_new(base, tick_cb, c);
	if (c->key_idle_ev == NULL || c->pass_end_ev == NULL || c->tick_ev == NULL ||
	    body_pool_attach(base) != 0) {
		snprintf(err, errlen, "cannot create an event");
		goto fail;
	}
	return c;
fail:
	cache_free(c);
	return NULL;
}

void
cache_free(struct cache *c)
{
	struct table_node *n;
	struct refresh *r;

	if (c == NULL)
		return;
	for (size_t i = 0; c->secrets.buckets != NULL && i <= c->secrets.mask; i++) {
		while (c->secrets.buckets[i] != NULL)
			secret_free(c, c->secrets.buckets[i]);
	}
	while (!TAILQ_EMPTY(&c->negative_fifo))
		negative_free(c, TAILQ_FIRST(&c->negative_fifo));
	while (c->descs.buckets != NULL && !TAILQ_EMPTY(&c->desc_fifo))
		described_free(c, TAILQ_FIRST(&c->desc_fifo));
	for (size_t i = 0; c->dflights.buckets != NULL && i <= c->dflights.mask; i++) {
		while ((n = c->dflights.buckets[i]) != NULL) {
			struct describe_flight *f = table_entry(n, struct describe_flight, node);
			struct describe_waiter *w, *next;

			table_remove(&c->dflights, n);
			for (w = f->waiters; w != NULL; w = next) {
				next = w->next;
				free(w);
			}
			free(f);
		}
	}
	/* Fetches and refreshes still in the backend: the backend is freed right
	 * after the cache and never calls back after that, so their records go
	 * here; waiters are not called. */
	while ((r = LIST_FIRST(&c->refreshes)) != NULL) {
		LIST_REMOVE(r, entry);
		free(r);
	}
	while (!LIST_EMPTY(&c->batches))
		batch_free(LIST_FIRST(&c->batches));
	for (size_t i = 0; c->flights.buckets != NULL && i <= c->flights.mask; i++) {
		while ((n = c->flights.buckets[i]) != NULL) {
			struct flight *f = table_entry(n, struct flight, node);
			struct flight_waiter *w, *next;

			table_remove(&c->flights, n);
			for (w = f->waiters; w != NULL; w = next) {
				next = w->next;
				free(w);
			}
			free(f);
		}
	}
	if (c->tick_ev != NULL)
		event_free(c->tick_ev);
	while (c->pass_count > 0)
		pass_drop(c, c->pass_used[c->pass_count - 1]);
	if (c->pass_end_ev != NULL)
		event_free(c->pass_end_ev);
	key_close(c);
	body_pool_detach();
	if (c->key_idle_ev != NULL)
		event_free(c->key_idle_ev);
	if (c->seal != NULL)
		seal_ctx_free(c->seal);
	if (c->plain != NULL)
		sodium_free(c->plain);
	free(c->secrets.buckets);
	table_destroy(&c->extras);
	table_destroy(&c->negatives);
	table_destroy(&c->flights);
	table_destroy(&c->descs);
	table_destroy(&c->dflights);
	cache_slab_destroy(&c->slabs);
	free(c);
}
