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
 * Mind the size: with a 15-character name this record is 104 bytes, a
 * 112-byte malloc chunk; 8 bytes more make it 128 (16 bytes per secret),
 * and the memory bench's 200-byte budget per version has about 5 to spare.
 * Rarely used state belongs in a side structure, not here.
 */
struct secret {
	struct secret *hnext;		/* chain in the name index */
	struct version *versions;	/* singly linked, few */
	struct label *labels;		/* labels other than AWSCURRENT */
	struct version *current;	/* AWSCURRENT -> version, NULL when unknown */
	uint64_t current_expires_ms;
	uint64_t last_read_ms;
	uint64_t refresh_at_ms;		/* next background refresh (after a failure: its
					 * backoff); 0: none planned */
	uint64_t versions_expires_ms;	/* the labels of held versions, which reads by
					 * VersionId report, are trusted until then */
	uint64_t last_forced_ms;
	uint32_t hash;			/* of the name, in the index */
	uint16_t prefix;		/* in cache->prefixes; NO_PREFIX: tail is "ARN\0NAME" */
	uint16_t failures;		/* consecutive failed refreshes */
	bool refreshing;
	char tail[];			/* the ARN after the prefix: "NAME-XXXXXX" */
};

/* 44 bytes before the VersionId: with a UUID and a 1 KiB value's 1068-byte blob,
 * a 1136-byte chunk (68 bytes of overhead); 4 bytes more would cost 16. */
struct version {
	struct version *next;		/* in secret->versions */
	struct secret *secret;
	TAILQ_ENTRY(version) lru;
	int64_t created_ms;
	uint32_t blob_len : 24;		/* SEAL_MAX_BLOB fits */
	uint32_t is_binary : 1;
	uint32_t id_is_uuid : 1;	/* id: 16 bytes; else the VersionId string, NUL-terminated */
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
	struct table negatives;
	struct table flights;
	TAILQ_HEAD(version_lru, version) lru;	/* most recently used first */
	TAILQ_HEAD(, negative) negative_fifo;
	LIST_HEAD(, refresh) refreshes;	/* background refreshes in flight */
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

/* cache_index.c */

int index_init(struct secret_index *x);
const char *secret_name(const struct secret *s, char *buf);
const char *secret_arn(const struct cache *c, const struct secret *s, char *buf);
uint8_t *version_blob(struct version *v);
const char *version_id(const struct version *v, char *buf);
struct secret *secret_find(struct cache *c, const char *id);
struct version *version_find(const struct secret *s, const char *vid);
void label_set(struct cache *c, struct secret *s, const char *name, struct version *v, uint64_t now);
void label_drop(struct cache *c, struct secret *s, const char *name);
size_t version_stages(const struct version *v, const char **out, size_t max);
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

#endif
