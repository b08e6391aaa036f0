/*
 * cache_flight: fetches for readers. One upstream call per query in flight,
 * joined by every reader of it; the negative cache ("not found", failures
 * backed off per query), backoff per secret, and when a forced refresh may
 * go to the upstream.
 */

#define LOG_COMPONENT "cache"

#include <stdlib.h>

#include "cache_internal.h"
#include "log.h"

/* Capped exponential backoff with full jitter, after the failures-th failure in a row. */
static uint64_t
backoff_ms(unsigned failures)
{
	uint64_t backoff = (uint64_t)BACKOFF_BASE_MS << (failures < 7 ? failures - 1 : 6);

	if (backoff > BACKOFF_CAP_MS)
		backoff = BACKOFF_CAP_MS;
	return 1 + random_below(backoff);
}

/* The upstream failed for s: retry later, capped exponential backoff with full jitter. */
void
secret_backoff(struct cache *c, struct secret *s, uint64_t now)
{
	if (s->failures < UINT16_MAX)
		s->failures++;
	/* The tick retries it once the backoff is over (a planned refresh waits too). */
	s->refresh_at_ms = now + backoff_ms(s->failures);
	c->stats.backoffs++;
	tick_arm(c);
}

/* ---- negative entries --------------------------------------------------------------- */

uint64_t
query_hash(const struct table *t, const struct backend_query *q)
{
	return table_hash(t, q->secret_id, q->version_stage, q->version_id);
}

static bool
query_equal(const struct backend_query *a, const char *id, const char *stage, const char *vid)
{
	return strcmp(a->secret_id, id) == 0 && streq_opt(a->version_stage, stage) &&
	    streq_opt(a->version_id, vid);
}

void
negative_free(struct cache *c, struct negative *n)
{
	table_remove(&c->negatives, &n->node);
	TAILQ_REMOVE(&c->negative_fifo, n, fifo);
	c->stats.negatives--;
	free(n);
}

struct negative *
negative_find(struct cache *c, const struct backend_query *q)
{
	uint64_t h = query_hash(&c->negatives, q);

	for (struct table_node *n = table_chain(&c->negatives, h); n != NULL; n = n->next) {
		struct negative *neg = table_entry(n, struct negative, node);

		if (n->hash == h && query_equal(q, neg->id, neg->stage, neg->version_id))
			return neg;
	}
	return NULL;
}

char *
copy_opt(char **dst, const char *src)
{
	char *start = *dst;
	size_t len;

	if (src == NULL)
		return NULL;
	len = strlen(src);
	memcpy(start, src, len + 1);
	*dst += len + 1;
	return start;
}

static size_t
query_strings_len(const struct backend_query *q)
{
	return strlen(q->secret_id) + 1 + (q->version_stage ? strlen(q->version_stage) + 1 : 0) +
	    (q->version_id ? strlen(q->version_id) + 1 : 0);
}

/* Remembers error for q until expires_ms; failures as struct negative says. */
static void
negative_put(struct cache *c, const struct backend_query *q, const struct backend_error *error,
    uint64_t now, uint64_t expires_ms, uint16_t failures)
{
	struct negative *n;
	char *p;

	if ((n = negative_find(c, q)) != NULL)
		negative_free(c, n);
	if (c->stats.negatives >= MAX_NEGATIVES)
		negative_free(c, TAILQ_FIRST(&c->negative_fifo));
	if ((n = malloc(sizeof(*n) + query_strings_len(q))) == NULL)
		return;
	p = n->strings;
	n->id = copy_opt(&p, q->secret_id);
	n->stage = copy_opt(&p, q->version_stage);
	n->version_id = copy_opt(&p, q->version_id);
	n->error = *error;
	n->created_ms = now;
	n->expires_ms = expires_ms;
	n->failures = failures;
	table_insert(&c->negatives, &n->node, query_hash(&c->negatives, q));
	TAILQ_INSERT_TAIL(&c->negative_fifo, n, fifo);
	c->stats.negatives++;
}

static void
negative_add(struct cache *c, const struct backend_query *q, const struct backend_error *error,
    uint64_t now)
{
	if (c->opts.negative_ttl_s != 0)
		negative_put(c, q, error, now, now + (uint64_t)c->opts.negative_ttl_s * 1000u, 0);
}

/* A fetch for q failed and nothing held could answer it: back q off. */
static void
failure_add(struct cache *c, const struct backend_query *q, const struct backend_error *error,
    uint64_t now)
{
	struct negative *n = negative_find(c, q);
	unsigned failures = n != NULL && n->failures > 0 && n->failures < UINT16_MAX ?
	    n->failures + 1u : 1u;

	negative_put(c, q, error, now, now + backoff_ms(failures), (uint16_t)failures);
}

/* Whether n answers a read now (else the upstream is asked). */
bool
negative_applies(const struct cache *c, const struct negative *n, uint64_t now)
{
	if (now >= n->expires_ms)
		return false;
	return n->failures == 0 || n->error.about_secret || c->breaker_open_until_ms != 0;
}

/* ---- fetches for readers ------------------------------------------------------------ */

/*
 * A read by VersionId was answered from the upstream, but the labels of the
 * other versions held are not confirmed (versions_expires_ms): describe the
 * secret in the background, so the next reads are hits again.
 */
static void
confirm_versions(struct cache *c, struct secret *s, uint64_t now)
{
	bool probe;

	if (now < s->versions_expires_ms || s->refreshing ||
	    c->refresh_calls >= c->opts.max_refreshes || !breaker_allow(c, now, &probe))
		return;
	refresh_start(c, s, probe);
}

static void
flight_done(void *arg, const struct backend_value *value, const struct backend_error *error)
{
	struct flight *f = arg;
	struct cache *c = f->cache;
	struct flight_waiter *w, *next;
	struct backend_error stored_error;
	struct negative *neg;
	struct secret *s;
	struct version *v = NULL;
	uint64_t now = now_ms();
	bool stale = false;

	table_remove(&c->flights, &f->node);
	c->stats.in_flight--;
	if (error != NULL) {
		c->stats.fetch_errors++;
		stored_error = *error;
		breaker_record(c, upstream_answered(error), f->probe, now);
		s = secret_find(c, f->query.secret_id);
		if (is_upstream_failure(error->status)) {
			/* Stale-if-error: the last good value, within max_stale; and later
			 * readers get it at once instead of waiting on the upstream again. */
			v = lookup(c, s, &f->query, now, &stale);
			if (s != NULL)
				secret_backoff(c, s, now);
			/* Nothing to serve: this query backs off (see struct negative). */
			if (v == NULL && (error->about_secret || f->probe))
				failure_add(c, &f->query, error, now);
		} else if (s != NULL && (error->status == PROTO_STATUS_ACCESS_DENIED ||
		    (error->status == PROTO_STATUS_NOT_FOUND && f->query.version_id == NULL &&
		    strcmp(f->query.version_stage, STAGE_CURRENT) == 0))) {
			/* Access revoked, or the secret is gone: a definitive answer. */
			secret_free(c, s);
			if (error->status == PROTO_STATUS_ACCESS_DENIED && error->about_secret)
				failure_add(c, &f->query, error, now);
		} else if (s == NULL && error->status == PROTO_STATUS_ACCESS_DENIED &&
		    error->about_secret) {
			failure_add(c, &f->query, error, now);	/* denied: back off as a failure */
		} else if (s != NULL && error->status == PROTO_STATUS_NOT_FOUND &&
		    f->query.version_stage == NULL &&
		    (v = version_find(s, f->query.version_id)) != NULL) {
			/* A version we hold is gone (or the whole secret is): it goes. */
			version_free(c, v);
			v = NULL;
			if (s->versions == NULL)
				secret_free(c, s);
		} else if (s != NULL && error->status == PROTO_STATUS_NOT_FOUND &&
		    f->query.version_id == NULL) {
			label_drop(c, s, f->query.version_stage);	/* that label moved away */
		}
		if (error->status == PROTO_STATUS_NOT_FOUND)
			negative_add(c, &f->query, error, now);
	} else {
		breaker_record(c, true, f->probe, now);
		if ((neg = negative_find(c, &f->query)) != NULL)
			negative_free(c, neg);
		if ((s = secret_find(c, value->arn)) != NULL)
			s->failures = 0;
		if ((v = store_value(c, value, now)) == NULL)
			log_warn("cache: could not store a fetched version (out of memory or too large)");
		else if (f->query.version_id != NULL)
			confirm_versions(c, v->secret, now);
		v = NULL;
	}
	for (w = f->waiters; w != NULL; w = next) {
		next = w->next;
		if (error == NULL)
			w->cb(w->arg, value, false, NULL);
		else if (v != NULL)
			deliver_version(c, v, stale, w->cb, w->arg);
		else
			w->cb(w->arg, NULL, false, &stored_error);
		free(w);
	}
	free(f);
}

struct flight *
flight_find(struct cache *c, const struct backend_query *q, uint64_t h)
{
	for (struct table_node *n = table_chain(&c->flights, h); n != NULL; n = n->next) {
		struct flight *f = table_entry(n, struct flight, node);

		if (n->hash == h && query_equal(&f->query, q->secret_id, q->version_stage,
		    q->version_id))
			return f;
	}
	return NULL;
}

/* Joins the fetch in flight for q, or starts one. cb may be NULL (prefetch). */
void
flight_join(struct cache *c, const struct backend_query *q, cache_value_cb cb, void *arg)
{
	struct flight_waiter *w = NULL;
	struct backend_error error;
	struct flight *f;
	uint64_t h = query_hash(&c->flights, q);
	bool probe;
	char *p;

	if ((f = flight_find(c, q, h)) != NULL) {
		c->stats.joins++;
	} else {
		if (!breaker_allow(c, now_ms(), &probe)) {
			c->stats.breaker_rejects++;
			backend_error_set(&error, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
			    "the upstream is failing; not asking it again before the next probe");
			if (cb != NULL)
				cb(arg, NULL, false, &error);
			return;
		}
		if (c->charge != NULL && !c->charge->allow(c->charge->arg)) {
			if (probe)
				c->breaker_probing = false;
			backend_error_set(&error, PROTO_STATUS_LIMIT_EXCEEDED, "%s",
			    c->charge->refusal);
			if (cb != NULL)
				cb(arg, NULL, false, &error);
			return;
		}
		if ((f = calloc(1, sizeof(*f) + query_strings_len(q))) == NULL)
			goto fail;
		f->cache = c;
		f->probe = probe;
		f->waiters_tail = &f->waiters;
		p = f->strings;
		f->query.secret_id = copy_opt(&p, q->secret_id);
		f->query.version_stage = copy_opt(&p, q->version_stage);
		f->query.version_id = copy_opt(&p, q->version_id);
		if (backend_get_value(c->backend, &f->query, flight_done, f) != 0) {
			if (probe)
				c->breaker_probing = false;
			free(f);
			goto fail;
		}
		c->stats.fetches++;
		table_insert(&c->flights, &f->node, h);
		c->stats.in_flight++;
	}
	if (cb == NULL)
		return;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		goto fail;
	w->cb = cb;
	w->arg = arg;
	*f->waiters_tail = w;
	f->waiters_tail = &w->next;
	return;
fail:
	backend_error_set(&error, PROTO_STATUS_INTERNAL, "out of memory");
	if (cb != NULL)
		cb(arg, NULL, false, &error);
}

bool
forced_refresh_allowed(struct cache *c, const struct backend_query *q, uint64_t now)
{
	uint64_t interval = (uint64_t)c->opts.min_refresh_interval_s * 1000u;
	struct negative *neg;
	struct secret *s;

	if ((s = secret_find(c, q->secret_id)) != NULL) {
		if (s->last_forced_ms != 0 && now < s->last_forced_ms + interval)
			return false;
		s->last_forced_ms = now;
		return true;
	}
	/* Unknown ids are limited through their "not found" memory. */
	neg = negative_find(c, q);
	return neg == NULL || now >= neg->created_ms + interval;
}
