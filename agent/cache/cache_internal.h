/*
 * cache_internal: private to the cache wing (agent/cache/cache*.c); nothing
 * outside agent/cache/ includes it. The records of the cache and the
 * functions that cross its files; see cache.c for the layout and the model.
 */
#ifndef SMC_AGENT_CACHE_INTERNAL_H
#define SMC_AGENT_CACHE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <sodium.h>

#include "cache.h"
#include "seal.h"
#include "sys_clock.h"
#include "table.h"

#define STAGE_CURRENT		"AWSCURRENT"
#define STAGE_PENDING		"AWSPENDING"
#define MAX_NEGATIVES		4096
#define TICK_MS			250	/* background scan period */
#define BACKOFF_BASE_MS		1000
#define BACKOFF_CAP_MS		60000
#define BREAKER_THRESHOLD	5	/* consecutive upstream failures that open it */
#define BREAKER_COOLDOWN_MS	2000	/* first wait before a probe; doubles */
#define BREAKER_COOLDOWN_CAP_MS	60000
#define PASS_SLOTS		64	/* shared bodies kept per loop pass (direct-mapped) */
#define INDEX_BUCKETS		1024	/* initial buckets of the secrets index */
#define MAX_PREFIXES		256	/* distinct ARN prefixes shared; past that, ARNs are whole */
#define NO_PREFIX		UINT16_MAX
#define UUID_LEN		36	/* 8-4-4-4-12 hex digits */
#define MAX_DESCRIPTIONS	1024	/* DESCRIBE answers remembered at most (oldest go first) */

/*
 * The sealing key closes after KEY_LINGER_MS without a seal or unseal (between
 * one and two periods after the last use), 0: at the end of every loop pass
 * that used it.
 *
 * Why linger: opening and closing the key is an mprotect pair (~2-3 us, more
 * than unsealing a 1 KiB value), and with one request per loop pass (one
 * client, or a few) closing per pass doubled the cost of a hit. What PROT_NONE
 * defends against is an in-process read of the key (an over-read bug), and
 * code runs in this single-threaded process only during loop passes: closing
 * at the end of a pass already left the key readable for the rest of any pass
 * that served a hit, including for requests handled after it. Lingering
 * widens that to the passes within a millisecond or two of a hit; a key idle
 * longer than that is closed, as before. No cap under continuous load: while
 * hits keep coming the key is in use, and closing it between them would only
 * have it reopened within microseconds, without making it less exposed.
 */
#ifndef KEY_LINGER_MS
#define KEY_LINGER_MS		1
#endif

struct version;

struct label {
	struct label *next;
	struct version *version;
	uint64_t expires_ms;
	char name[];
};

/* An ARN prefix shared by the secrets of one account and region. */
struct arn_prefix {
	unsigned refs;
	size_t len;
	char s[];			/* "arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:" */
};

/*
 * Mind the size: 52 bytes before the tail ("NAME-XXXXXX" and its NUL, the
 * name's length + 8), so the record is an 80-byte malloc chunk for names of
 * up to 12 characters and 96 bytes up to 28; every 16 bytes more cost 16 bytes
 * per secret, and the memory bench's budget is 200 bytes per cached 1 KiB
 * version all told. So: no hash in the record (the index computes it again
 * when it grows or removes one, and compares names on lookup: chains are
 * short), no AWSCURRENT pointer (a flag on the version), and what few secrets
 * have (labels other than AWSCURRENT, the last forced refresh) in a side
 * record, struct secret_extra.
 */
struct secret {
	struct secret *hnext;		/* chain in the name index */
	struct version *versions;	/* singly linked, few; the AWSCURRENT one flagged */
	uint64_t current_expires_ms;	/* the AWSCURRENT label is trusted until then */
	uint64_t last_read_ms;
	uint64_t refresh_at_ms;		/* next background refresh (after a failure: its
					 * backoff); 0: none planned */
	uint64_t versions_expires_ms;	/* the labels of held versions, which reads by
					 * VersionId report, are trusted until then */
	uint16_t prefix;		/* in cache->prefixes; NO_PREFIX: tail is "ARN\0NAME" */
	uint8_t failures;		/* consecutive failed refreshes (saturates) */
	uint8_t refreshing : 1;
	uint8_t has_extra : 1;		/* a struct secret_extra is in cache->extras */
	char tail[];			/* the ARN after the prefix: "NAME-XXXXXX" */
};
_Static_assert(offsetof(struct secret, tail) <= 52, "the secret record grew (see above)");

/* What a secret rarely has, kept out of its record: in cache->extras, by the
 * record's address, while the secret lives. */
struct secret_extra {
	struct table_node node;
	const struct secret *secret;
	struct label *labels;		/* labels other than AWSCURRENT */
	uint64_t last_forced_ms;	/* the last forced refresh allowed; 0: none */
};

/* 44 bytes before the VersionId: with a UUID and a 1 KiB value's 1052-byte blob,
 * 1112 bytes, a 1120-byte malloc chunk (72 bytes beyond the sealed blob); 1 byte
 * more would cost 16. */
struct version {
	struct version *next;		/* in secret->versions */
	struct secret *secret;
	TAILQ_ENTRY(version) lru;
	int64_t created_ms;
	uint32_t blob_len : 24;		/* SEAL_MAX_BLOB fits */
	uint32_t is_binary : 1;
	uint32_t id_is_uuid : 1;	/* id: 16 bytes; else the VersionId string, NUL-terminated */
	uint32_t is_current : 1;	/* AWSCURRENT names it (one version of a secret at most) */
	uint8_t id[];			/* the VersionId, then the sealed blob */
};
_Static_assert(SEAL_MAX_BLOB < (1u << 24), "blob_len holds any blob length");
_Static_assert(offsetof(struct version, id) <= 44, "the version header grew (see above)");

/* The secrets, by name: chained through secret->hnext. */
struct secret_index {
	struct secret **buckets;
	size_t mask;			/* bucket count - 1 (a power of two) */
	size_t count;
	unsigned char key[crypto_shorthash_KEYBYTES];
};

/*
 * A remembered answer for one (id, stage, version id) that holds no value:
 * "not found" (failures 0, for negative_ttl), or a failure that backs this
 * query off (failures > 0): an answer about the secret (a malformed value, a
 * KMS failure, access denied to it) always, an upstream-wide one only while
 * the breaker is open (so the query whose probe failed does not take the
 * next one).
 */
struct negative {
	struct table_node node;
	TAILQ_ENTRY(negative) fifo;
	uint64_t created_ms;
	uint64_t expires_ms;
	uint16_t failures;
	struct backend_error error;
	const char *id, *stage, *version_id;
	char strings[];
};

struct flight_waiter {
	struct flight_waiter *next;
	cache_value_cb cb;
	void *arg;
};

/* One backend fetch for readers and everyone waiting for it. */
struct flight {
	struct table_node node;
	struct cache *cache;
	struct flight_waiter *waiters, **waiters_tail;
	bool probe;			/* the circuit breaker's probe */
	struct backend_query query;	/* points into strings */
	char strings[];
};

/*
 * What a front end rendered from a version, shared by the replies of one loop
 * pass (see cache.h). While in the pass table it is keyed by the version, the
 * render function and the version's labels, which are stored after the data.
 */
struct cache_body {
	unsigned refs;
	const struct version *version;	/* the key; NULL once out of the table */
	cache_render_fn render;
	size_t len;			/* of data */
	size_t cap;			/* of the whole block (body_pool) */
	uint64_t made_ms;		/* sys_clock_ms() when rendered (body_linger_ms) */
	size_t stages_len;		/* of the labels after it: each name and its NUL */
	uint8_t data[];
};

/* One background refresh of a secret: DescribeSecret, then the missing versions. */
struct refresh {
	LIST_ENTRY(refresh) entry;	/* cache->refreshes, so cache_free() can release it */
	struct cache *cache;
	unsigned pending;		/* upstream calls not answered yet */
	uint64_t described_ms;		/* when the DescribeSecret answer came; 0: not yet */
	bool failed;
	bool probe;
	char arn[];
};

/*
 * One batch read in the backend: a refresh of up to BACKEND_BATCH_MAX secrets
 * holding only AWSCURRENT (by ARN), or a prefetch by filter (cache_batch.c).
 */
struct cache_batch {
	LIST_ENTRY(cache_batch) entry;	/* cache->batches, so cache_free() can release it */
	struct cache *cache;
	bool probe;
	bool prefetch;
	size_t count;
	size_t found;			/* prefetch: secrets stored */
	cache_prefetch_done_cb cb;	/* prefetch */
	void *arg;
	bool answered[BACKEND_BATCH_MAX];
	char *arns[BACKEND_BATCH_MAX];
};

/* A group of due secrets for one batch read, gathered during one tick. */
struct refresh_group {
	struct secret *s[BACKEND_BATCH_MAX];
	size_t n;
};

/*
 * A DESCRIBE answer remembered under the id it was asked with: a description
 * for ttl, or "not found" for negative_ttl. One allocation: the record, the
 * versions, their stage arrays, then the strings (metadata, not values).
 */
struct described {
	struct table_node node;
	TAILQ_ENTRY(described) fifo;
	uint64_t expires_ms;
	const char *id;
	bool found;			/* else error says why not */
	struct backend_description d;
	struct backend_error error;
};

struct describe_waiter {
	struct describe_waiter *next;
	cache_describe_cb cb;
	void *arg;
};

/* One DescribeSecret for every DESCRIBE of the same id meanwhile. */
struct describe_flight {
	struct table_node node;
	struct cache *cache;
	struct describe_waiter *waiters, **waiters_tail;
	bool probe;
	char id[];
};

/* The records' slabs (cache_slab.c). */
#define SLAB_SIZE		((size_t)512 << 10)
#define SLAB_ALIGN		8u
#define SLAB_MAX_OBJECT		4608u	/* a 4 KiB value's version and then some */
#define SLAB_CLASSES		(SLAB_MAX_OBJECT / SLAB_ALIGN + 1)

struct slab;
struct cache_slabs {
	LIST_HEAD(, slab) room[SLAB_CLASSES];	/* slabs with room, by object size / 8 */
	struct slab **slabs;		/* every slab, by address */
	size_t count, cap;
	size_t mapped;			/* bytes of address space in slabs */
};

struct cache {
	struct event_base *base;
	struct backend *backend;
	struct cache_options opts;
	struct cache_stats stats;
	struct secret_index secrets;
	size_t tick_cursor;		/* bucket the next background scan starts at */
	struct secret *found;		/* secret_find()'s last answer, for found_id */
	size_t found_len;
	char found_id[256];
	struct arn_prefix *prefixes[MAX_PREFIXES];
	struct cache_slabs slabs;	/* where secrets and versions live */
	struct table extras;		/* struct secret_extra, by secret */
	struct table negatives;
	struct table flights;
	TAILQ_HEAD(version_lru, version) lru;	/* most recently used first */
	TAILQ_HEAD(, negative) negative_fifo;
	LIST_HEAD(, refresh) refreshes;	/* background refreshes in flight */
	LIST_HEAD(, cache_batch) batches;	/* batch reads in flight */
	bool batch_refused;		/* the upstream refused batch reads: DescribeSecret only */
	struct table descs;		/* struct described, by id */
	TAILQ_HEAD(, described) desc_fifo;
	size_t desc_count;
	struct table dflights;		/* struct describe_flight, by id */
	seal_ctx *seal;
	bool key_held;			/* open (see KEY_LINGER_MS) */
	bool key_used;			/* used since the linger timer last looked */
	struct event *key_idle_ev;	/* closes the key once it is not used */
	struct event *pass_end_ev;	/* end of the loop pass: release the pass's bodies */
	struct cache_body *pass_bodies[PASS_SLOTS];
	uint8_t pass_used[PASS_SLOTS];	/* the occupied slots, in pass_used[0..pass_count) */
	unsigned pass_count;
	struct event *tick_ev;
	uint8_t *plain;			/* guarded buffer for one unsealed value */
	size_t plain_len;
	bool plain_busy;		/* plain is lent to a callback now */
	unsigned refresh_calls;		/* background upstream calls in flight */
	/* circuit breaker over every upstream call */
	unsigned breaker_failures;
	uint64_t breaker_open_until_ms;	/* 0: closed */
	uint64_t breaker_cooldown_ms;
	bool breaker_probing;
	const struct cache_charge *charge;	/* who pays for a call started now (cache_get_charged) */
};

/* Room for a version's identity as strings. */
struct ident_buf {
	char arn[PROTO_MAX_ARN + 1];
	char name[PROTO_MAX_NAME + 1];
	char vid[PROTO_MAX_VERSION_ID + 1];
};

static inline uint64_t
now_ms(void)
{
	return sys_clock_coarse_ms();
}

static inline bool
streq_opt(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Uniform in [0, n). */
static inline uint64_t
random_below(uint64_t n)
{
	if (n == 0)
		return 0;
	if (n <= UINT32_MAX)
		return randombytes_uniform((uint32_t)n);
	return (((uint64_t)randombytes_random() << 32) | randombytes_random()) % n;
}

/* Errors that say the upstream could not answer, as opposed to a real answer. */
static inline bool
is_upstream_failure(enum proto_status status)
{
	return status == PROTO_STATUS_UPSTREAM_UNAVAILABLE || status == PROTO_STATUS_UPSTREAM_AUTH ||
	    status == PROTO_STATUS_INTERNAL;
}

/*
 * What the circuit breaker counts: failures of the upstream as a whole. An
 * answer about one secret (its value malformed, its KMS key failing, access
 * to it denied, not found) shows the upstream answers: one user reading a
 * broken secret must not cut every other user off.
 */
static inline bool
upstream_answered(const struct backend_error *error)
{
	return error == NULL || error->about_secret || !is_upstream_failure(error->status);
}

/* cache_slab.c */

void cache_slab_init(struct cache_slabs *pool);
void cache_slab_destroy(struct cache_slabs *pool);	/* every record must be freed */
void *cache_slab_alloc(struct cache_slabs *pool, size_t n);
void cache_slab_free(struct cache_slabs *pool, void *p, size_t n);	/* n as allocated */

/* cache_index.c */

int index_init(struct secret_index *x);
const char *secret_name(const struct secret *s, char *buf);
const char *secret_arn(const struct cache *c, const struct secret *s, char *buf);
uint8_t *version_blob(struct version *v);
const char *version_id(const struct version *v, char *buf);
struct secret *secret_find(struct cache *c, const char *id);
struct version *version_find(const struct secret *s, const char *vid);
struct version *secret_current(const struct secret *s);
void label_set(struct cache *c, struct secret *s, const char *name, struct version *v, uint64_t now);
void label_drop(struct cache *c, struct secret *s, const char *name);
size_t version_stages(const struct cache *c, const struct version *v, const char **out,
    size_t max);
struct secret_extra *extra_find(const struct cache *c, const struct secret *s);
struct secret_extra *extra_get(struct cache *c, struct secret *s);
struct label *secret_labels(const struct cache *c, const struct secret *s);
void version_free(struct cache *c, struct version *v);
void secret_free(struct cache *c, struct secret *s);
void evict_to_bounds(struct cache *c, const struct version *keep);
struct version *store_value(struct cache *c, const struct backend_value *value, uint64_t now);
struct version *lookup(struct cache *c, struct secret *s, const struct backend_query *q, uint64_t now,
    bool *stale);
void touch(struct cache *c, struct version *v, uint64_t now);

/* cache_body.c */

void key_close(struct cache *c);
void key_idle_cb(evutil_socket_t fd, short what, void *arg);
int key_hold(struct cache *c);
void pass_drop(struct cache *c, size_t slot);
void pass_forget(struct cache *c, const struct version *v);
void pass_end_cb(evutil_socket_t fd, short what, void *arg);
void deliver_version(struct cache *c, struct version *v, bool stale, cache_value_cb cb, void *arg);
struct cache_body *body_get(struct cache *c, struct version *v, cache_render_fn render);
void pass_drop_all(struct cache *c);

/* cache_flight.c */

void secret_backoff(struct cache *c, struct secret *s, uint64_t now);
uint64_t query_hash(const struct table *t, const struct backend_query *q);
void negative_free(struct cache *c, struct negative *n);
struct negative *negative_find(struct cache *c, const struct backend_query *q);
char *copy_opt(char **dst, const char *src);
bool negative_applies(const struct cache *c, const struct negative *n, uint64_t now);
struct flight *flight_find(struct cache *c, const struct backend_query *q, uint64_t h);
void flight_join(struct cache *c, const struct backend_query *q, cache_value_cb cb, void *arg);
bool forced_refresh_allowed(struct cache *c, const struct backend_query *q, uint64_t now);

/* cache_refresh.c */

void tick_arm(struct cache *c);
bool breaker_allow(struct cache *c, uint64_t now, bool *probe);
void breaker_record(struct cache *c, bool ok, bool probe, uint64_t now);
void plan_refresh(struct cache *c, struct secret *s, uint64_t now);
bool revalidating(struct cache *c, const struct secret *s, uint64_t now);
void refresh_start(struct cache *c, struct secret *s, bool probe);
void tick_cb(evutil_socket_t fd, short what, void *arg);

/* cache_batch.c */
bool batchable(const struct cache *c, const struct secret *s);
int refresh_group_start(struct cache *c, struct refresh_group *g, uint64_t now, bool *probe);
void refresh_group_fill(struct cache *c, struct refresh_group *g, uint64_t now);
void batch_free(struct cache_batch *b);

#endif
