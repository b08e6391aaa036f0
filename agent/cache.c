/*
 * cache: sealed, version-aware secret cache with single-flight fetches
 * (see cache.h for the model).
 *
 * Layout, chosen to keep per-version overhead small:
 *   - secrets live in one table keyed by name; a full or partial ARN is
 *     resolved by taking the name out of it and checking the stored ARN, so
 *     no alias entries are needed (secret names cannot contain ':');
 *   - each secret keeps its few cached versions in a short list, with the
 *     sealed blob in the same allocation as the version record;
 *   - the AWSCURRENT label is a field of the secret; other labels are a list.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>
#include <sodium.h>

#include "cache.h"
#include "log.h"
#include "seal.h"
#include "table.h"

#define STAGE_CURRENT		"AWSCURRENT"
#define MAX_NEGATIVES		4096
#define ARN_SUFFIX_LEN		7	/* "-" and six random characters */

struct version;

struct label {
	struct label *next;
	struct version *version;
	uint64_t expires_ms;
	char name[];
};

struct secret {
	struct table_node node;		/* by name */
	struct version *versions;	/* singly linked, few */
	struct label *labels;		/* labels other than AWSCURRENT */
	struct version *current;	/* AWSCURRENT -> version, NULL when unknown */
	uint64_t current_expires_ms;
	const char *name;		/* stored right after arn */
	char arn[];
};

struct version {
	struct version *next;		/* in secret->versions */
	struct secret *secret;
	TAILQ_ENTRY(version) lru;
	int64_t created_ms;
	uint32_t blob_len;
	bool is_binary;
	uint8_t *blob;			/* points just past version_id, same allocation */
	char version_id[];
};

/* A remembered "not found" for one (id, stage, version id). */
struct negative {
	struct table_node node;
	TAILQ_ENTRY(negative) fifo;
	uint64_t expires_ms;
	struct backend_error error;
	const char *id, *stage, *version_id;
	char strings[];
};

struct flight_waiter {
	struct flight_waiter *next;
	cache_value_cb cb;
	void *arg;
};

/* One backend fetch and everyone waiting for it. */
struct flight {
	struct table_node node;
	struct cache *cache;
	struct flight_waiter *waiters, **waiters_tail;
	struct backend_query query;	/* points into strings */
	char strings[];
};

struct cache {
	struct event_base *base;
	struct backend *backend;
	struct cache_options opts;
	struct cache_stats stats;
	struct table secrets;
	struct table negatives;
	struct table flights;
	TAILQ_HEAD(version_lru, version) lru;	/* most recently used first */
	TAILQ_HEAD(, negative) negative_fifo;
	seal_ctx *seal;
	bool key_held;			/* open until the end of this loop pass */
	struct event *key_close_ev;
	uint8_t *plain;			/* guarded buffer for one unsealed value */
	size_t plain_len;
	bool plain_busy;		/* plain is lent to a callback now */
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool
streq_opt(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* ---- the sealing key: opened once per loop pass, closed at its end ---------------- */

static void
key_close_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cache *c = arg;

	(void)fd;
	(void)what;
	if (c->key_held) {
		seal_key_close(c->seal);
		c->key_held = false;
	}
}

static int
key_hold(struct cache *c)
{
	if (c->key_held)
		return 0;
	if (seal_key_open(c->seal) != 0)
		return -1;
	c->key_held = true;
	/* Runs after the callbacks already due in this pass: one toggle per batch. */
	event_active(c->key_close_ev, EV_TIMEOUT, 0);
	return 0;
}

/* ---- secrets, versions, labels ------------------------------------------------------ */

static struct secret *
secret_by_name(struct cache *c, const char *name, size_t name_len)
{
	char buf[SMC_MAX_NAME + 1];
	struct table_node *n;
	uint64_t h;

	if (name_len > SMC_MAX_NAME)
		return NULL;
	memcpy(buf, name, name_len);
	buf[name_len] = '\0';
	h = table_hash(&c->secrets, buf, NULL, NULL);
	for (n = table_chain(&c->secrets, h); n != NULL; n = n->next) {
		struct secret *s = table_entry(n, struct secret, node);

		if (n->hash == h && strcmp(s->name, buf) == 0)
			return s;
	}
	return NULL;
}

/*
 * A secret id is a name, a full ARN (arn:...:secret:NAME-XXXXXX) or a partial
 * ARN (arn:...:secret:NAME). Names cannot contain ':', so the name is what
 * follows the sixth colon, with or without the random suffix.
 */
static struct secret *
secret_find(struct cache *c, const char *id)
{
	const char *rest = id;
	struct secret *s;
	size_t id_len, rest_len;
	int colons = 0;

	if (strncmp(id, "arn:", 4) != 0)
		return secret_by_name(c, id, strlen(id));
	for (const char *p = id; *p != '\0' && colons < 6; p++) {
		if (*p == ':' && ++colons == 6)
			rest = p + 1;
	}
	if (colons < 6)
		return NULL;
	id_len = strlen(id);
	rest_len = strlen(rest);
	/* Partial ARN: the stored ARN is the id plus a suffix. */
	s = secret_by_name(c, rest, rest_len);
	if (s != NULL && strlen(s->arn) == id_len + ARN_SUFFIX_LEN &&
	    strncmp(s->arn, id, id_len) == 0 && s->arn[id_len] == '-')
		return s;
	/* Full ARN. */
	if (rest_len > ARN_SUFFIX_LEN && rest[rest_len - ARN_SUFFIX_LEN] == '-') {
		s = secret_by_name(c, rest, rest_len - ARN_SUFFIX_LEN);
		if (s != NULL && strcmp(s->arn, id) == 0)
			return s;
	}
	return NULL;
}

static struct version *
version_find(const struct secret *s, const char *version_id)
{
	for (struct version *v = s->versions; v != NULL; v = v->next) {
		if (strcmp(v->version_id, version_id) == 0)
			return v;
	}
	return NULL;
}

static struct label **
label_slot(struct secret *s, const char *name)
{
	struct label **pp;

	for (pp = &s->labels; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, name) == 0)
			return pp;
	}
	return pp;
}

/* The version a label points to while trusted, else NULL. */
static struct version *
label_lookup(struct secret *s, const char *name, uint64_t now)
{
	struct label *l;

	if (strcmp(name, STAGE_CURRENT) == 0)
		return now < s->current_expires_ms ? s->current : NULL;
	l = *label_slot(s, name);
	return l != NULL && now < l->expires_ms ? l->version : NULL;
}

static void
label_set(struct cache *c, struct secret *s, const char *name, struct version *v, uint64_t expires)
{
	struct label **pp, *l;
	size_t len;

	if (strcmp(name, STAGE_CURRENT) == 0) {
		s->current = v;
		s->current_expires_ms = expires;
		return;
	}
	pp = label_slot(s, name);
	if ((l = *pp) == NULL) {
		len = strlen(name);
		if ((l = malloc(sizeof(*l) + len + 1)) == NULL)
			return;		/* not cached; the next read fetches again */
		memcpy(l->name, name, len + 1);
		l->next = NULL;
		*pp = l;
		c->stats.labels++;
	}
	l->version = v;
	l->expires_ms = expires;
}

/* Labels that point to v (what GET replies list as VersionStages). */
static size_t
version_stages(const struct version *v, const char **out, size_t max)
{
	const struct secret *s = v->secret;
	size_t n = 0;

	if (s->current == v && n < max)
		out[n++] = STAGE_CURRENT;
	for (const struct label *l = s->labels; l != NULL && n < max; l = l->next) {
		if (l->version == v)
			out[n++] = l->name;
	}
	return n;
}

static void
version_free(struct cache *c, struct version *v)
{
	struct secret *s = v->secret;
	struct version **pp;

	for (pp = &s->versions; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == v) {
			*pp = v->next;
			break;
		}
	}
	if (s->current == v)
		s->current = NULL;
	for (struct label *l = s->labels; l != NULL; l = l->next) {
		if (l->version == v)
			l->version = NULL;
	}
	TAILQ_REMOVE(&c->lru, v, lru);
	c->stats.versions--;
	c->stats.sealed_bytes -= v->blob_len;
	free(v);
}

static void
secret_free(struct cache *c, struct secret *s)
{
	struct label *l;

	while (s->versions != NULL)
		version_free(c, s->versions);
	while ((l = s->labels) != NULL) {
		s->labels = l->next;
		free(l);
		c->stats.labels--;
	}
	table_remove(&c->secrets, &s->node);
	c->stats.secrets--;
	free(s);
}

/* Finds or makes the entry for (arn, name). A name now at another ARN means
 * the secret was deleted and created again: the old entry goes. */
static struct secret *
secret_upsert(struct cache *c, const char *arn, const char *name)
{
	struct secret *s = secret_by_name(c, name, strlen(name));
	size_t arn_len = strlen(arn), name_len = strlen(name);

	if (s != NULL) {
		if (strcmp(s->arn, arn) == 0)
			return s;
		secret_free(c, s);
	}
	if (arn_len > SMC_MAX_ARN || name_len > SMC_MAX_NAME)
		return NULL;
	if ((s = calloc(1, sizeof(*s) + arn_len + 1 + name_len + 1)) == NULL)
		return NULL;
	memcpy(s->arn, arn, arn_len + 1);
	memcpy(s->arn + arn_len + 1, name, name_len + 1);
	s->name = s->arn + arn_len + 1;
	table_insert(&c->secrets, &s->node, table_hash(&c->secrets, s->name, NULL, NULL));
	c->stats.secrets++;
	return s;
}

static void
evict_to_bounds(struct cache *c, const struct version *keep)
{
	struct version *v;

	while ((c->stats.versions > c->opts.max_versions ||
	    c->stats.sealed_bytes > c->opts.max_bytes) &&
	    (v = TAILQ_LAST(&c->lru, version_lru)) != NULL && v != keep) {
		struct secret *s = v->secret;

		version_free(c, v);
		c->stats.evictions++;
		if (s->versions == NULL)
			secret_free(c, s);
	}
}

static bool
stage_listed(const struct backend_value *value, const char *name)
{
	for (size_t i = 0; i < value->stage_count; i++) {
		if (strcmp(value->stages[i], name) == 0)
			return true;
	}
	return false;
}

/* Seals and stores a fetched value; returns its version (existing or new), or NULL. */
static struct version *
store_value(struct cache *c, const struct backend_value *value, uint64_t now)
{
	struct secret *s;
	struct version *v;
	size_t vid_len, blob_len, out_len;
	uint64_t expires = now + (uint64_t)c->opts.ttl_s * 1000u;

	if ((s = secret_upsert(c, value->arn, value->name)) == NULL)
		return NULL;
	if ((v = version_find(s, value->version_id)) == NULL) {
		vid_len = strlen(value->version_id);
		blob_len = seal_sealed_size(value->len);
		if (blob_len == 0 || vid_len > SMC_MAX_VERSION_ID)
			return NULL;
		if ((v = malloc(sizeof(*v) + vid_len + 1 + blob_len)) == NULL)
			return NULL;
		memcpy(v->version_id, value->version_id, vid_len + 1);
		v->blob = (uint8_t *)v->version_id + vid_len + 1;
		if (key_hold(c) != 0 || seal_seal(c->seal, s->arn, v->version_id, value->data,
		    value->len, v->blob, blob_len, &out_len) != 0) {
			free(v);
			return NULL;
		}
		v->blob_len = (uint32_t)out_len;
		v->secret = s;
		v->created_ms = value->created_ms;
		v->is_binary = value->is_binary;
		v->next = s->versions;
		s->versions = v;
		TAILQ_INSERT_HEAD(&c->lru, v, lru);
		c->stats.versions++;
		c->stats.sealed_bytes += v->blob_len;
	} else {
		/* Fetched again (its label had expired): that is a use. */
		TAILQ_REMOVE(&c->lru, v, lru);
		TAILQ_INSERT_HEAD(&c->lru, v, lru);
	}
	for (size_t i = 0; i < value->stage_count; i++)
		label_set(c, s, value->stages[i], v, expires);
	/* The fetched stage list is the freshest word on v: a label still mapped
	 * to v that it no longer lists has moved, whatever its ttl says. */
	if (s->current == v && !stage_listed(value, STAGE_CURRENT))
		s->current = NULL;
	for (struct label *l = s->labels; l != NULL; l = l->next) {
		if (l->version == v && !stage_listed(value, l->name))
			l->version = NULL;
	}
	evict_to_bounds(c, v);
	return v;
}

/* Unseals v and hands it to cb; the plaintext is wiped before returning. */
static void
deliver_version(struct cache *c, struct version *v, cache_value_cb cb, void *arg)
{
	const char *stages[SMC_MAX_STAGES];
	struct backend_value value;
	struct backend_error error;
	uint8_t *plain = c->plain;
	size_t len, cap = c->plain_len;

	/* A callback may read the cache again: a nested hit must not reuse (and
	 * then wipe) the buffer the outer callback is still reading. */
	if (c->plain_busy) {
		cap = seal_plain_capacity(v->blob_len);
		if (cap == 0 || (plain = sodium_malloc(cap)) == NULL) {
			backend_error_set(&error, SMC_STATUS_INTERNAL, "out of memory");
			cb(arg, NULL, &error);
			return;
		}
	}
	c->plain_busy = true;
	if (key_hold(c) != 0 ||
	    seal_unseal(c->seal, v->secret->arn, v->version_id, v->blob, v->blob_len,
	    plain, cap, &len) != 0) {
		backend_error_set(&error, SMC_STATUS_INTERNAL, "cached value failed to unseal");
		log_error("cache: a sealed value failed its integrity check");
		cb(arg, NULL, &error);
		len = 0;
		goto out;
	}
	memset(&value, 0, sizeof(value));
	value.arn = v->secret->arn;
	value.name = v->secret->name;
	value.version_id = v->version_id;
	value.stages = stages;
	value.stage_count = version_stages(v, stages, SMC_MAX_STAGES);
	value.created_ms = v->created_ms;
	value.is_binary = v->is_binary;
	value.data = plain;
	value.len = len;
	cb(arg, &value, NULL);
out:
	sodium_memzero(plain, len);
	if (plain != c->plain)
		sodium_free(plain);
	else
		c->plain_busy = false;
}

/* ---- negative entries --------------------------------------------------------------- */

static uint64_t
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

static void
negative_free(struct cache *c, struct negative *n)
{
	table_remove(&c->negatives, &n->node);
	TAILQ_REMOVE(&c->negative_fifo, n, fifo);
	c->stats.negatives--;
	free(n);
}

static struct negative *
negative_find(struct cache *c, const struct backend_query *q, uint64_t h)
{
	for (struct table_node *n = table_chain(&c->negatives, h); n != NULL; n = n->next) {
		struct negative *neg = table_entry(n, struct negative, node);

		if (n->hash == h && query_equal(q, neg->id, neg->stage, neg->version_id))
			return neg;
	}
	return NULL;
}

static char *
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

static void
negative_add(struct cache *c, const struct backend_query *q, const struct backend_error *error,
    uint64_t now)
{
	struct negative *n;
	char *p;

	if (c->opts.negative_ttl_s == 0)
		return;
	if (c->stats.negatives >= MAX_NEGATIVES)
		negative_free(c, TAILQ_FIRST(&c->negative_fifo));
	if ((n = malloc(sizeof(*n) + query_strings_len(q))) == NULL)
		return;
	p = n->strings;
	n->id = copy_opt(&p, q->secret_id);
	n->stage = copy_opt(&p, q->version_stage);
	n->version_id = copy_opt(&p, q->version_id);
	n->error = *error;
	n->expires_ms = now + (uint64_t)c->opts.negative_ttl_s * 1000u;
	table_insert(&c->negatives, &n->node, query_hash(&c->negatives, q));
	TAILQ_INSERT_TAIL(&c->negative_fifo, n, fifo);
	c->stats.negatives++;
}

/* ---- fetches ------------------------------------------------------------------------ */

static void
flight_done(void *arg, const struct backend_value *value, const struct backend_error *error)
{
	struct flight *f = arg;
	struct cache *c = f->cache;
	struct flight_waiter *w, *next;
	struct backend_error stored_error;
	uint64_t now = now_ms();

	table_remove(&c->flights, &f->node);
	c->stats.in_flight--;
	if (error != NULL) {
		c->stats.fetch_errors++;
		if (error->status == SMC_STATUS_NOT_FOUND)
			negative_add(c, &f->query, error, now);
	} else if (store_value(c, value, now) == NULL) {
		/* Still answer from the fetched value; only caching failed. */
		log_warn("cache: could not store a fetched version (out of memory or too large)");
	}
	for (w = f->waiters; w != NULL; w = next) {
		next = w->next;
		if (error != NULL) {
			stored_error = *error;
			w->cb(w->arg, NULL, &stored_error);
		} else {
			w->cb(w->arg, value, NULL);
		}
		free(w);
	}
	free(f);
}

static void
flight_join(struct cache *c, const struct backend_query *q, uint64_t h, cache_value_cb cb, void *arg)
{
	struct flight_waiter *w;
	struct backend_error error;
	struct flight *f = NULL;
	char *p;

	for (struct table_node *n = table_chain(&c->flights, h); n != NULL; n = n->next) {
		struct flight *cand = table_entry(n, struct flight, node);

		if (n->hash == h && query_equal(&cand->query, q->secret_id, q->version_stage,
		    q->version_id)) {
			f = cand;
			break;
		}
	}
	if ((w = calloc(1, sizeof(*w))) == NULL)
		goto fail;
	w->cb = cb;
	w->arg = arg;
	if (f != NULL) {
		c->stats.joins++;
		*f->waiters_tail = w;
		f->waiters_tail = &w->next;
		return;
	}
	if ((f = calloc(1, sizeof(*f) + query_strings_len(q))) == NULL)
		goto fail;
	f->cache = c;
	f->waiters = w;
	f->waiters_tail = &w->next;
	p = f->strings;
	f->query.secret_id = copy_opt(&p, q->secret_id);
	f->query.version_stage = copy_opt(&p, q->version_stage);
	f->query.version_id = copy_opt(&p, q->version_id);
	c->stats.fetches++;
	if (backend_get_value(c->backend, &f->query, flight_done, f) != 0) {
		free(f);
		goto fail;
	}
	table_insert(&c->flights, &f->node, h);
	c->stats.in_flight++;
	return;
fail:
	free(w);
	backend_error_set(&error, SMC_STATUS_INTERNAL, "out of memory");
	cb(arg, NULL, &error);
}

void
cache_get(struct cache *c, const struct backend_query *query, cache_value_cb cb, void *arg)
{
	struct backend_query q = *query;
	struct negative *neg;
	struct secret *s;
	struct version *v = NULL;
	uint64_t now = now_ms(), h;

	if (q.version_stage == NULL && q.version_id == NULL)
		q.version_stage = STAGE_CURRENT;
	if ((s = secret_find(c, q.secret_id)) != NULL) {
		if (q.version_id != NULL) {
			v = version_find(s, q.version_id);
			/* With a stage too, it must still be that version's. */
			if (v != NULL && q.version_stage != NULL && label_lookup(s, q.version_stage, now) != v)
				v = NULL;
		} else {
			v = label_lookup(s, q.version_stage, now);
		}
	}
	if (v != NULL) {
		c->stats.hits++;
		TAILQ_REMOVE(&c->lru, v, lru);
		TAILQ_INSERT_HEAD(&c->lru, v, lru);
		deliver_version(c, v, cb, arg);
		return;
	}
	h = query_hash(&c->negatives, &q);
	if ((neg = negative_find(c, &q, h)) != NULL) {
		if (now < neg->expires_ms) {
			c->stats.negative_hits++;
			cb(arg, NULL, &neg->error);
			return;
		}
		negative_free(c, neg);
	}
	c->stats.misses++;
	flight_join(c, &q, query_hash(&c->flights, &q), cb, arg);
}

const struct cache_stats *
cache_get_stats(const struct cache *c)
{
	return &c->stats;
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
	c->base = base;
	c->backend = backend;
	c->opts = *opts;
	TAILQ_INIT(&c->lru);
	TAILQ_INIT(&c->negative_fifo);
	c->plain_len = SEAL_MAX_PADDED;
	if (table_init(&c->secrets, 1024) != 0 || table_init(&c->negatives, 64) != 0 ||
	    table_init(&c->flights, 64) != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((c->seal = seal_ctx_new()) == NULL) {
		snprintf(err, errlen, "cannot create the sealing key: %s", strerror(errno));
		goto fail;
	}
	if ((c->plain = sodium_malloc(c->plain_len)) == NULL) {
		snprintf(err, errlen, "cannot allocate the guarded plaintext buffer");
		goto fail;
	}
	if ((c->key_close_ev = event_new(base, -1, 0, key_close_cb, c)) == NULL) {
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

	if (c == NULL)
		return;
	for (size_t i = 0; c->secrets.buckets != NULL && i <= c->secrets.mask; i++) {
		while ((n = c->secrets.buckets[i]) != NULL)
			secret_free(c, table_entry(n, struct secret, node));
	}
	while (!TAILQ_EMPTY(&c->negative_fifo))
		negative_free(c, TAILQ_FIRST(&c->negative_fifo));
	/* Flights still in the backend are released when the backend is freed
	 * (its callbacks never run after that); their waiters are not called. */
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
	if (c->key_close_ev != NULL)
		event_free(c->key_close_ev);
	if (c->key_held)
		seal_key_close(c->seal);
	if (c->seal != NULL)
		seal_ctx_free(c->seal);
	if (c->plain != NULL)
		sodium_free(c->plain);
	table_destroy(&c->secrets);
	table_destroy(&c->negatives);
	table_destroy(&c->flights);
	free(c);
}
