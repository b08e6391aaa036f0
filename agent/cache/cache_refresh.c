/*
 * cache_refresh: background work. The circuit breaker over every upstream
 * call, the periodic tick, planning refreshes ahead of expiry, and the
 * DescribeSecret-driven refresh of a secret (GetSecretValue only for the
 * versions not held); stale-while-revalidate's rule.
 */

#define LOG_COMPONENT "cache"

#include <stdlib.h>

#include "cache_internal.h"
#include "log.h"

/* Background work is due sometime: make sure the tick runs. The tick only
 * runs while there is something to refresh, so an idle loop can exit. */
void
tick_arm(struct cache *c)
{
	struct timeval tick = { 0, TICK_MS * 1000 };

	if (c->opts.refresh_ahead_pct != 0 && !event_pending(c->tick_ev, EV_TIMEOUT, NULL))
		event_add(c->tick_ev, &tick);
}

/* ---- circuit breaker ---------------------------------------------------------------- */

/* May an upstream call start now? *probe is set when it is the half-open probe. */
bool
breaker_allow(struct cache *c, uint64_t now, bool *probe)
{
	*probe = false;
	if (c->breaker_open_until_ms == 0)
		return true;
	if (now < c->breaker_open_until_ms || c->breaker_probing)
		return false;
	c->breaker_probing = true;
	*probe = true;
	return true;
}

void
breaker_record(struct cache *c, bool ok, bool probe, uint64_t now)
{
	if (probe)
		c->breaker_probing = false;
	if (ok) {
		if (c->breaker_open_until_ms != 0)
			log_warn("cache: upstream answers again; circuit breaker closed");
		c->breaker_failures = 0;
		c->breaker_open_until_ms = 0;
		c->breaker_cooldown_ms = BREAKER_COOLDOWN_MS;
		c->stats.breaker_open = 0;
		return;
	}
	c->breaker_failures++;
	if (probe || (c->breaker_open_until_ms == 0 && c->breaker_failures >= BREAKER_THRESHOLD)) {
		if (probe && c->breaker_cooldown_ms < BREAKER_COOLDOWN_CAP_MS)
			c->breaker_cooldown_ms *= 2;
		if (c->breaker_cooldown_ms > BREAKER_COOLDOWN_CAP_MS)
			c->breaker_cooldown_ms = BREAKER_COOLDOWN_CAP_MS;
		if (c->breaker_open_until_ms == 0) {
			c->stats.breaker_opens++;
			log_warn("cache: %u upstream failures in a row; circuit breaker open, "
			    "probing every %llu ms at first", c->breaker_failures,
			    (unsigned long long)c->breaker_cooldown_ms);
		}
		c->breaker_open_until_ms = now + c->breaker_cooldown_ms;
		c->stats.breaker_open = 1;
	}
}

/* The upstream confirmed the secret now: plan its next refresh, never later than planned. */
void
plan_refresh(struct cache *c, struct secret *s, uint64_t now)
{
	uint64_t ttl_ms = (uint64_t)c->opts.ttl_s * 1000u, at, jitter;

	if (c->opts.refresh_ahead_pct == 0 || s->failures > 0)
		return;		/* off, or backing off: refresh_at_ms is the retry */
	at = now + ttl_ms * c->opts.refresh_ahead_pct / 100u;
	jitter = ttl_ms * c->opts.refresh_jitter_pct / 100u;
	/* Only earlier, never past expiry: a fleet of agents spreads out. */
	if (jitter > 0) {
		uint64_t j = random_below(jitter + 1);

		if (j < at - now)
			at -= j;
	}
	if (s->refresh_at_ms <= now || at < s->refresh_at_ms)
		s->refresh_at_ms = at;
	tick_arm(c);
}

/*
 * Stale-while-revalidate: may a reader get s's held value past its ttl at
 * once? Yes while the upstream is being asked about s (a refresh in flight),
 * is due to be (a hot secret whose planned refresh has not landed yet), or
 * fails (s backing off, or the breaker open): the upstream's answer is
 * what a wait would buy, and the value is marked stale meanwhile. No for a
 * cold secret (nothing planned): its reader asks the upstream, and waits.
 * cache_get() also lets readers join a fetch already in flight this way.
 */
bool
revalidating(struct cache *c, const struct secret *s, uint64_t now)
{
	if (s->refreshing || s->failures > 0 || c->breaker_open_until_ms != 0)
		return true;
	if (s->refresh_at_ms != 0 && c->opts.refresh_ahead_pct != 0 &&
	    now < s->last_read_ms + (uint64_t)c->opts.refresh_idle_s * 1000u) {
		tick_arm(c);	/* due: make sure the refresh starts */
		return true;
	}
	return false;
}


/* ---- background refresh ------------------------------------------------------------- */

static void
refresh_finish(struct cache *c, struct refresh *r)
{
	struct secret *s = secret_find(c, r->arn);
	uint64_t now = now_ms();

	if (s != NULL) {
		s->refreshing = false;
		if (r->failed) {
			secret_backoff(c, s, now);
		} else {
			s->failures = 0;
			s->refresh_at_ms = 0;
			/* The labels of every held version are the upstream's now. */
			if (r->described_ms != 0)
				s->versions_expires_ms = r->described_ms +
				    (uint64_t)c->opts.ttl_s * 1000u;
			plan_refresh(c, s, now);
		}
	}
	LIST_REMOVE(r, entry);
	free(r);
}

/* A refresh failed. Definitive answers end the secret's cached life at once. */
static void
refresh_failed(struct cache *c, struct refresh *r, const struct backend_error *error)
{
	struct secret *s;

	c->stats.refresh_errors++;
	if (is_upstream_failure(error->status)) {
		r->failed = true;
		log_debug("cache: refresh failed (%s); serving what is held", error->message);
		return;
	}
	if ((s = secret_find(c, r->arn)) != NULL) {
		log_warn("cache: refresh got %s; dropping the cached secret",
		    proto_status_name(error->status));
		secret_free(c, s);
	}
}

static void
refresh_call_done(struct cache *c, struct refresh *r, const struct backend_error *error)
{
	c->refresh_calls--;
	breaker_record(c, upstream_answered(error), r->probe, now_ms());
	r->probe = false;
	if (error != NULL)
		refresh_failed(c, r, error);
	if (--r->pending == 0)
		refresh_finish(c, r);
}

static void
refresh_fetched(void *arg, const struct backend_value *value, const struct backend_error *error)
{
	struct refresh *r = arg;
	struct cache *c = r->cache;

	if (value != NULL && store_value(c, value, now_ms()) == NULL)
		log_warn("cache: could not store a refreshed version");
	refresh_call_done(c, r, error);
}

static void
refresh_described(void *arg, const struct backend_description *d, const struct backend_error *error)
{
	struct refresh *r = arg;
	struct cache *c = r->cache;
	struct backend_query q = { .secret_id = r->arn };
	const char *held[PROTO_MAX_STAGES + 1];
	struct secret *s;
	struct version *v;
	size_t nheld = 0;
	uint64_t now = now_ms();

	r->pending++;	/* keep r alive while the fetches below start */
	if (error != NULL || (s = secret_find(c, r->arn)) == NULL)
		goto out;
	r->described_ms = now;
	if (d->deleted_ms != 0) {
		/* Scheduled for deletion: a definitive answer, no stale service. */
		log_info("cache: a cached secret was deleted upstream; dropping it");
		secret_free(c, s);
		goto out;
	}
	/* Every label the upstream has, for versions we hold: trusted again. */
	for (size_t i = 0; i < d->version_count; i++) {
		const struct backend_version_stages *vs = &d->versions[i];

		v = version_find(s, vs->version_id);
		for (size_t j = 0; j < vs->stage_count; j++) {
			if (v != NULL)
				label_set(c, s, vs->stages[j], v, now);
		}
	}
	/* Labels we hold that now name a version we do not hold: fetch that version
	 * (only these cost a GetSecretValue). Labels the upstream no longer has go. */
	if (s->current != NULL || s->current_expires_ms != 0)
		held[nheld++] = STAGE_CURRENT;
	for (struct label *l = s->labels; l != NULL && nheld < PROTO_MAX_STAGES; l = l->next)
		held[nheld++] = l->name;
	for (size_t k = 0; k < nheld; k++) {
		const char *vid = NULL;

		if (held[k][0] == '\0')
			continue;	/* already covered by a fetch started below */

		for (size_t i = 0; i < d->version_count && vid == NULL; i++) {
			for (size_t j = 0; j < d->versions[i].stage_count; j++) {
				if (strcmp(d->versions[i].stages[j], held[k]) == 0) {
					vid = d->versions[i].version_id;
					break;
				}
			}
		}
		if (vid == NULL) {
			label_drop(c, s, held[k]);	/* held[k] may be freed: nothing reads it after */
			continue;
		}
		if (version_find(s, vid) != NULL)
			continue;
		q.version_id = vid;
		/* Two labels moving to one new version need one fetch: check our own calls. */
		r->pending++;
		c->refresh_calls++;
		c->stats.refresh_fetches++;
		if (backend_get_value(c->backend, &q, refresh_fetched, r) != 0) {
			c->refresh_calls--;
			r->pending--;
			r->failed = true;
		}
		/* Later labels naming the same version are satisfied by this fetch. */
		for (size_t m = k + 1; m < nheld; m++) {
			for (size_t i = 0; i < d->version_count; i++) {
				for (size_t j = 0; j < d->versions[i].stage_count; j++) {
					if (strcmp(d->versions[i].stages[j], held[m]) == 0 &&
					    strcmp(d->versions[i].version_id, vid) == 0)
						held[m] = "";
				}
			}
		}
	}
out:
	refresh_call_done(c, r, error);
	if (--r->pending == 0)
		refresh_finish(c, r);
}

void
refresh_start(struct cache *c, struct secret *s, bool probe)
{
	char buf[PROTO_MAX_ARN + 1];
	const char *arn = secret_arn(c, s, buf);
	size_t len = strlen(arn);
	struct refresh *r;

	if ((r = calloc(1, sizeof(*r) + len + 1)) == NULL)
		return;
	r->cache = c;
	r->probe = probe;
	r->pending = 1;
	memcpy(r->arn, arn, len + 1);
	s->refreshing = true;
	c->refresh_calls++;
	c->stats.refreshes++;
	LIST_INSERT_HEAD(&c->refreshes, r, entry);
	if (backend_describe(c->backend, r->arn, refresh_described, r) != 0) {
		c->refresh_calls--;
		if (probe)
			c->breaker_probing = false;
		s->refreshing = false;
		LIST_REMOVE(r, entry);
		free(r);
	}
}

/*
 * Every tick: refresh what is hot and due, within the in-flight cap and the
 * breaker. A scan that stops early (cap reached, or the breaker's one probe
 * sent) resumes after where it stopped, so due secrets take turns: a secret
 * that keeps failing cannot be the breaker's probe every time while others,
 * whose answers would close it, wait behind it.
 */
void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cache *c = arg;
	uint64_t now = now_ms(), idle = (uint64_t)c->opts.refresh_idle_s * 1000u;
	size_t buckets = c->secrets.mask + 1, i = 0;
	bool probe, more = false;

	(void)fd;
	(void)what;
	for (size_t n = 0; n < buckets; n++) {
		i = (c->tick_cursor + n) & c->secrets.mask;
		for (struct secret *s = c->secrets.buckets[i]; s != NULL; s = s->hnext) {
			if (s->refresh_at_ms == 0 || now >= s->last_read_ms + idle)
				continue;	/* nothing planned, or cold: left to expire */
			more = true;
			if (s->refreshing || now < s->refresh_at_ms)
				continue;
			if (c->refresh_calls >= c->opts.max_refreshes ||
			    !breaker_allow(c, now, &probe))
				goto stopped;
			refresh_start(c, s, probe);
			if (probe)
				goto stopped;	/* the one call the open breaker lets through */
		}
	}
	goto out;
stopped:
	c->tick_cursor = (i + 1) & c->secrets.mask;
out:
	if (more)
		tick_arm(c);
}
