/*
 * cache_batch: the backend's batch read (BatchGetSecretValue) in the cache.
 * Refreshes of secrets holding only AWSCURRENT go up to BACKEND_BATCH_MAX to
 * one call (the tick gathers them, fills a partial group with secrets more
 * than halfway to their refresh, and starts it here): a version already held
 * is only confirmed, a new one is stored as a fetch is; an error about one
 * secret follows the refresh rules for that secret alone; a failure of the
 * whole call counts once for the breaker and backs off each secret of the
 * group. A call the upstream refuses (no permission for it) turns batching
 * off: DescribeSecret from then on. And the start-up prefetch by filter.
 */
#define LOG_COMPONENT "cache"

#include <stdlib.h>

#include "cache_internal.h"
#include "log.h"


/* Refreshed by a batch read: holds only AWSCURRENT (a batch read answers nothing else). */
bool
batchable(const struct cache *c, const struct secret *s)
{
	return c->opts.batch_refresh && !c->batch_refused && secret_labels(c, s) == NULL &&
	    secret_current(s) != NULL && backend_can_batch(c->backend);
}

void
batch_free(struct cache_batch *b)
{
	LIST_REMOVE(b, entry);
	for (size_t i = 0; i < b->count; i++)
		free(b->arns[i]);
	free(b);
}

/* A secret's current version as a batch read answered it. */
static void
batch_refreshed(struct cache *c, const char *arn, const struct backend_value *value,
    uint64_t now)
{
	struct secret *s = secret_find(c, arn);
	struct version *v;
	uint64_t last_read;

	c->stats.batch_refreshed++;
	if (s == NULL)
		return;		/* evicted or forgotten meanwhile */
	s->refreshing = false;
	last_read = s->last_read_ms;
	if ((v = version_find(s, value->version_id)) != NULL) {
		/* Held: the answer only confirms its labels, at no further cost. */
		for (size_t i = 0; i < value->stage_count; i++)
			label_set(c, s, value->stages[i], v, now);
		if (s->versions == v && v->next == NULL)
			s->versions_expires_ms = now + (uint64_t)c->opts.ttl_s * 1000u;
	} else if (store_value(c, value, now) == NULL) {
		log_warn("cache: could not store a refreshed version");
		c->stats.refresh_errors++;
		if ((s = secret_find(c, arn)) != NULL)
			secret_backoff(c, s, now);
		return;
	}
	/* A refresh is no read: the secret goes cold when its readers stop. */
	if ((s = secret_find(c, arn)) == NULL)
		return;
	s->last_read_ms = last_read;
	s->failures = 0;
	s->refresh_at_ms = 0;
	plan_refresh(c, s, now);
}

/* An error about one secret in a batch answer: today's rules for a refresh. */
static void
batch_refresh_failed(struct cache *c, const char *arn, const struct backend_error *error,
    uint64_t now)
{
	struct secret *s = secret_find(c, arn);

	c->stats.refresh_errors++;
	if (s == NULL)
		return;
	s->refreshing = false;
	if (is_upstream_failure(error->status)) {
		log_debug("cache: refresh failed (%s); serving what is held", error->message);
		secret_backoff(c, s, now);
		return;
	}
	log_warn("cache: refresh got %s; dropping the cached secret",
	    proto_status_name(error->status));
	secret_free(c, s);
}

static void
batch_item(void *arg, size_t index, const struct backend_value *value,
    const struct backend_error *error)
{
	struct cache_batch *b = arg;
	struct cache *c = b->cache;
	uint64_t now = now_ms();

	if (b->prefetch) {
		if (value == NULL)
			return;
		if (store_value(c, value, now) == NULL) {
			log_warn("cache: could not store a prefetched version");
			return;
		}
		b->found++;
		c->stats.prefetches++;
		return;
	}
	if (index >= b->count || b->answered[index])
		return;
	b->answered[index] = true;
	if (value != NULL)
		batch_refreshed(c, b->arns[index], value, now);
	else
		batch_refresh_failed(c, b->arns[index], error, now);
}

static void
batch_done(void *arg, const struct backend_error *error)
{
	struct cache_batch *b = arg;
	struct cache *c = b->cache;
	uint64_t now = now_ms();
	bool refused = false;
	struct secret *s;

	if (b->prefetch) {
		breaker_record(c, upstream_answered(error), b->probe, now);
		b->cb(b->arg, b->found, error);
		batch_free(b);
		return;
	}
	c->refresh_calls--;
	/* A batch of one that is not found as a whole (moto answers so when the version has
	 * no value; the aws backend asks larger batches one by one then): that secret's answer. */
	if (error != NULL && error->status == PROTO_STATUS_NOT_FOUND && b->count == 1 &&
	    !b->answered[0]) {
		breaker_record(c, true, b->probe, now);
		b->answered[0] = true;
		batch_refresh_failed(c, b->arns[0], error, now);
		batch_free(b);
		return;
	}
	/* The call itself refused (no permission for BatchGetSecretValue, say): the upstream
	 * answers, only not this way. Those secrets go back to DescribeSecret. */
	if (error != NULL && (error->status == PROTO_STATUS_ACCESS_DENIED ||
	    error->status == PROTO_STATUS_BAD_REQUEST)) {
		refused = true;
		if (!c->batch_refused)
			log_warn("cache: the upstream refused a batch read (%s: %s); refreshing with"
			    " DescribeSecret from now on", proto_status_name(error->status),
			    error->message);
		c->batch_refused = true;
	}
	/* One call: one success or failure for the breaker, however many secrets it held. */
	breaker_record(c, refused || upstream_answered(error), b->probe, now);
	for (size_t i = 0; i < b->count; i++) {
		if (b->answered[i] || (s = secret_find(c, b->arns[i])) == NULL)
			continue;
		s->refreshing = false;
		if (refused) {
			s->refresh_at_ms = now;		/* due: the next tick describes it */
			tick_arm(c);
			continue;
		}
		/* The whole call failed: each secret backs off as a failed refresh does. */
		c->stats.refresh_errors++;
		if (error != NULL)
			log_debug("cache: refresh failed (%s); serving what is held",
			    error->message);
		secret_backoff(c, s, now);
	}
	batch_free(b);
}

static const struct backend_batch_cbs batch_cbs = { batch_item, batch_done };

/*
 * Starts one batch read for the group (emptied either way). -1 when the cap or
 * the breaker says no (the group's secrets stay due); *probe set when it was
 * the breaker's one probe.
 */
int
refresh_group_start(struct cache *c, struct refresh_group *g, uint64_t now, bool *probe)
{
	char buf[PROTO_MAX_ARN + 1];
	struct backend_batch batch;
	struct cache_batch *b = NULL;
	int rc = -1;
	size_t i;

	*probe = false;
	if (g->n == 0)
		return 0;
	if (c->refresh_calls >= c->opts.max_refreshes || !breaker_allow(c, now, probe))
		goto out;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		goto out;
	b->cache = c;
	b->probe = *probe;
	LIST_INSERT_HEAD(&c->batches, b, entry);
	for (i = 0; i < g->n; i++) {
		if ((b->arns[i] = strdup(secret_arn(c, g->s[i], buf))) == NULL)
			goto out;
		b->count++;
	}
	memset(&batch, 0, sizeof(batch));
	batch.secret_ids = (const char *const *)b->arns;
	batch.count = b->count;
	if (backend_batch_get(c->backend, &batch, &batch_cbs, b) != 0)
		goto out;
	c->refresh_calls++;
	c->stats.refreshes += g->n;
	c->stats.refresh_batches++;
	b = NULL;
	rc = 0;
out:
	if (b != NULL) {
		batch_free(b);
		if (*probe)
			c->breaker_probing = false;
		*probe = false;
		rc = 0;		/* no memory: they stay due, the scan goes on */
	}
	if (b != NULL || rc != 0)
		for (i = 0; i < g->n; i++)
			g->s[i]->refreshing = false;
	g->n = 0;
	return rc;
}

/*
 * Fills a partial group with secrets more than halfway to their refresh (or
 * within the jitter window, if wider): the call is made anyway, and a secret
 * refreshed early in it is due with the group from then on. So secrets first
 * read at different times fall into full groups of 20 within a round or two,
 * instead of each stray subgroup costing a call every round. Secrets backing
 * off after a failed call come along too: their backoffs are jittered one by
 * one, and a group that failed together would otherwise come back as several
 * calls; the call they join is the upstream's test either way.
 */
void
refresh_group_fill(struct cache *c, struct refresh_group *g, uint64_t now)
{
	uint64_t idle = (uint64_t)c->opts.refresh_idle_s * 1000u;
	uint64_t ttl_ms = (uint64_t)c->opts.ttl_s * 1000u;
	uint64_t half = ttl_ms * c->opts.refresh_ahead_pct / 200u;
	uint64_t jitter = ttl_ms * c->opts.refresh_jitter_pct / 100u;
	uint64_t until = now + TICK_MS + (half > jitter ? half : jitter);

	for (size_t i = 0; i <= c->secrets.mask && g->n < BACKEND_BATCH_MAX; i++) {
		for (struct secret *s = c->secrets.buckets[i]; s != NULL &&
		    g->n < BACKEND_BATCH_MAX; s = s->hnext) {
			if (s->refresh_at_ms == 0 || s->refresh_at_ms > until || s->refreshing ||
			    now >= s->last_read_ms + idle || !batchable(c, s))
				continue;
			s->refreshing = true;
			g->s[g->n++] = s;
		}
	}
}

int
cache_prefetch_filter(struct cache *c, const struct backend_filter *filter,
    cache_prefetch_done_cb cb, void *arg)
{
	struct backend_batch batch = { .filters = filter, .filter_count = 1 };
	struct cache_batch *b;
	bool probe = false;

	if (filter == NULL || cb == NULL || !backend_can_batch(c->backend))
		return -1;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return -1;
	b->cache = c;
	b->prefetch = true;
	b->cb = cb;
	b->arg = arg;
	LIST_INSERT_HEAD(&c->batches, b, entry);
	if (!breaker_allow(c, now_ms(), &probe)) {
		struct backend_error error;

		c->stats.breaker_rejects++;
		backend_error_set(&error, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
		    "the upstream is failing (circuit breaker open)");
		batch_free(b);
		cb(arg, 0, &error);
		return 0;
	}
	b->probe = probe;
	if (backend_batch_get(c->backend, &batch, &batch_cbs, b) != 0) {
		if (probe)
			c->breaker_probing = false;
		batch_free(b);
		return -1;
	}
	return 0;
}
