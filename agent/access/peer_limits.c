/*
 * peer_limits: per-uid token buckets and connection counts (see
 * peer_limits.h). Buckets are refilled lazily, on use, from the time since
 * they were last touched; tokens are doubles, whole requests are taken.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "peer_limits.h"
#include "sys_clock.h"
#include "table.h"

#define NS_PER_S		1000000000ULL
#define WARN_INTERVAL_NS	(10ULL * NS_PER_S)
#define SWEEP_AT		1024	/* entries held before idle ones are swept */

struct bucket {
	double tokens;
	uint64_t last_ns;
};

struct peer_entry {
	struct table_node node;
	LIST_ENTRY(peer_entry) link;
	uid_t uid;
	unsigned conns;
	struct bucket requests;
	struct bucket refreshes;
	struct bucket upstream;
	size_t output;			/* bytes queued to its connections */
	bool refused_since_warn;	/* requests were refused since the last warning */
	uint64_t last_warn_ns;
	bool warned;
};

struct peer_limits {
	struct peer_limits_config cfg;
	struct table table;
	LIST_HEAD(, peer_entry) entries;
	size_t sweep_at;
	struct peer_limits_stats stats;
};

/* ---- token buckets ----------------------------------------------------------------------- */

static void
bucket_refill(struct bucket *b, double per_second, double capacity, uint64_t now)
{
	if (now > b->last_ns) {
		b->tokens += (double)(now - b->last_ns) * per_second / (double)NS_PER_S;
		b->last_ns = now;
	}
	if (b->tokens > capacity)
		b->tokens = capacity;
}

static bool
bucket_take(struct bucket *b, double per_second, double capacity, uint64_t now)
{
	bucket_refill(b, per_second, capacity, now);
	if (b->tokens < 1.0)
		return false;
	b->tokens -= 1.0;
	return true;
}

static double
request_rate(const struct peer_limits *pl)
{
	return (double)pl->cfg.requests_per_second;
}

/* The bucket holds burst requests: what an idle user may send at once. */
static double
request_capacity(const struct peer_limits *pl)
{
	return (double)pl->cfg.burst;
}

static double
refresh_rate(const struct peer_limits *pl)
{
	return (double)pl->cfg.refreshes_per_minute / 60.0;
}

static double
refresh_capacity(const struct peer_limits *pl)
{
	return (double)pl->cfg.refreshes_per_minute;
}

static double
upstream_rate(const struct peer_limits *pl)
{
	return (double)pl->cfg.upstream_per_second;
}

static double
upstream_capacity(const struct peer_limits *pl)
{
	return (double)pl->cfg.upstream_burst;
}

/* Settles every bucket of e up to now (at the current rates). */
static void
entry_refill(struct peer_limits *pl, struct peer_entry *e, uint64_t now)
{
	bucket_refill(&e->requests, request_rate(pl), request_capacity(pl), now);
	bucket_refill(&e->refreshes, refresh_rate(pl), refresh_capacity(pl), now);
	bucket_refill(&e->upstream, upstream_rate(pl), upstream_capacity(pl), now);
}

/* ---- entries ----------------------------------------------------------------------------- */

static uint64_t
uid_hash(const struct peer_limits *pl, uid_t uid)
{
	char key[24];

	snprintf(key, sizeof(key), "%lu", (unsigned long)uid);
	return table_hash(&pl->table, key, NULL, NULL);
}

static struct peer_entry *
entry_find(const struct peer_limits *pl, uid_t uid, uint64_t h)
{
	struct table_node *n;

	for (n = table_chain(&pl->table, h); n != NULL; n = n->next) {
		struct peer_entry *e = table_entry(n, struct peer_entry, node);

		if (n->hash == h && e->uid == uid)
			return e;
	}
	return NULL;
}

static void
entry_remove(struct peer_limits *pl, struct peer_entry *e)
{
	table_remove(&pl->table, &e->node);
	LIST_REMOVE(e, link);
	pl->stats.uids--;
	free(e);
}

/* An entry with no connection and full buckets carries no state: drop it. */
static void
sweep(struct peer_limits *pl, uint64_t now)
{
	struct peer_entry *e, *next;

	for (e = LIST_FIRST(&pl->entries); e != NULL; e = next) {
		next = LIST_NEXT(e, link);
		if (e->conns != 0 || e->output != 0)
			continue;
		entry_refill(pl, e, now);
		if (e->requests.tokens >= request_capacity(pl) &&
		    e->refreshes.tokens >= refresh_capacity(pl) &&
		    e->upstream.tokens >= upstream_capacity(pl))
			entry_remove(pl, e);
	}
	/* Entries still held are busy: sweep again only once as many more arrived. */
	pl->sweep_at = pl->stats.uids * 2 > SWEEP_AT ? pl->stats.uids * 2 : SWEEP_AT;
}

static struct peer_entry *
entry_get(struct peer_limits *pl, uid_t uid)
{
	uint64_t h = uid_hash(pl, uid), now;
	struct peer_entry *e;

	if ((e = entry_find(pl, uid, h)) != NULL)
		return e;
	now = sys_clock_ns();
	if (pl->stats.uids >= pl->sweep_at)
		sweep(pl, now);
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	e->uid = uid;
	e->requests.tokens = request_capacity(pl);
	e->requests.last_ns = now;
	e->refreshes.tokens = refresh_capacity(pl);
	e->refreshes.last_ns = now;
	e->upstream.tokens = upstream_capacity(pl);
	e->upstream.last_ns = now;
	table_insert(&pl->table, &e->node, h);
	LIST_INSERT_HEAD(&pl->entries, e, link);
	pl->stats.uids++;
	return e;
}

/* ---- public ------------------------------------------------------------------------------ */

struct peer_limits *
peer_limits_new(const struct peer_limits_config *cfg)
{
	struct peer_limits *pl;

	if ((pl = calloc(1, sizeof(*pl))) == NULL)
		return NULL;
	if (table_init(&pl->table, 64) != 0) {
		free(pl);
		return NULL;
	}
	pl->cfg = *cfg;
	pl->sweep_at = SWEEP_AT;
	LIST_INIT(&pl->entries);
	return pl;
}

void
peer_limits_free(struct peer_limits *pl)
{
	struct peer_entry *e;

	if (pl == NULL)
		return;
	while ((e = LIST_FIRST(&pl->entries)) != NULL) {
		LIST_REMOVE(e, link);
		free(e);
	}
	table_destroy(&pl->table);
	free(pl);
}

void
peer_limits_set_config(struct peer_limits *pl, const struct peer_limits_config *cfg)
{
	uint64_t now = sys_clock_ns();
	struct peer_entry *e;

	/* Settle the old rates up to now, then clip to the new capacities. */
	LIST_FOREACH(e, &pl->entries, link)
		entry_refill(pl, e, now);
	pl->cfg = *cfg;
	LIST_FOREACH(e, &pl->entries, link)
		entry_refill(pl, e, now);
}

struct peer_entry *
peer_limits_conn_open(struct peer_limits *pl, uid_t uid)
{
	struct peer_entry *e;

	if ((e = entry_get(pl, uid)) == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	if (e->conns >= pl->cfg.connections) {
		pl->stats.connections_rejected++;
		e->refused_since_warn = true;
		errno = EUSERS;
		return NULL;
	}
	e->conns++;
	return e;
}

void
peer_limits_conn_close(struct peer_limits *pl, struct peer_entry *e)
{
	/* Without the limits object (torn down first) the entry is gone too. */
	if (pl != NULL && e != NULL && e->conns > 0)
		e->conns--;
}

bool
peer_limits_allow_request(struct peer_limits *pl, struct peer_entry *e)
{
	if (pl == NULL || e == NULL || pl->cfg.requests_per_second == 0)
		return true;
	if (bucket_take(&e->requests, request_rate(pl), request_capacity(pl), sys_clock_ns()))
		return true;
	pl->stats.requests_rejected++;
	e->refused_since_warn = true;
	return false;
}

bool
peer_limits_should_warn(struct peer_limits *pl, uid_t uid)
{
	struct peer_entry *e;
	uint64_t now;

	if (pl == NULL || (e = entry_find(pl, uid, uid_hash(pl, uid))) == NULL ||
	    !e->refused_since_warn)
		return false;
	now = sys_clock_ns();
	if (e->warned && now - e->last_warn_ns < WARN_INTERVAL_NS)
		return false;
	e->warned = true;
	e->last_warn_ns = now;
	e->refused_since_warn = false;
	return true;
}

bool
peer_limits_allow_refresh(struct peer_limits *pl, uid_t uid)
{
	struct peer_entry *e;

	if (pl == NULL)
		return true;
	/* Callers hold a connection of uid, so this finds its entry; if memory ran out, refuse. */
	if ((e = entry_get(pl, uid)) == NULL)
		return false;
	if (bucket_take(&e->refreshes, refresh_rate(pl), refresh_capacity(pl), sys_clock_ns()))
		return true;
	pl->stats.refreshes_rejected++;
	e->refused_since_warn = true;
	return false;
}

bool
peer_limits_allow_upstream(struct peer_limits *pl, struct peer_entry *e)
{
	if (pl == NULL || e == NULL || pl->cfg.upstream_per_second == 0)
		return true;
	if (bucket_take(&e->upstream, upstream_rate(pl), upstream_capacity(pl), sys_clock_ns()))
		return true;
	pl->stats.upstream_rejected++;
	e->refused_since_warn = true;
	return false;
}

void
peer_limits_output_add(struct peer_entry *e, size_t bytes)
{
	if (e != NULL)
		e->output += bytes;
}

void
peer_limits_output_sub(struct peer_entry *e, size_t bytes)
{
	if (e != NULL)
		e->output = bytes < e->output ? e->output - bytes : 0;
}

size_t
peer_limits_output(const struct peer_entry *e)
{
	return e != NULL ? e->output : 0;
}

unsigned
peer_limits_connections(const struct peer_limits *pl, uid_t uid)
{
	const struct peer_entry *e = entry_find(pl, uid, uid_hash(pl, uid));

	return e != NULL ? e->conns : 0;
}

uid_t
peer_entry_uid(const struct peer_entry *e)
{
	return e->uid;
}

const struct peer_limits_stats *
peer_limits_get_stats(const struct peer_limits *pl)
{
	return &pl->stats;
}
