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
 *   - the AWSCURRENT label is a field of the secret; other labels are a list.
 *
 * Background work runs from one periodic timer that walks the secrets: cheap
 * (a few nanoseconds a secret) and free of per-entry timers.
 *
 * Hits cost one unseal per version per event-loop pass, not per request:
 * cache_get_shared() keeps what the front end renders from a version (an
 * encoded reply body) in a small table of the pass, direct-mapped by version,
 * and the end-of-pass event releases the table's references.
 */
#define LOG_COMPONENT "cache"

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
#include "sm_id.h"
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

static uint64_t
now_ms(void)
{
	return sys_clock_coarse_ms();
}

static bool
streq_opt(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Uniform in [0, n). */
static uint64_t
random_below(uint64_t n)
{
	if (n == 0)
		return 0;
	if (n <= UINT32_MAX)
		return randombytes_uniform((uint32_t)n);
	return (((uint64_t)randombytes_random() << 32) | randombytes_random()) % n;
}

/* Errors that say the upstream could not answer, as opposed to a real answer. */
static bool
is_upstream_failure(enum smc_status status)
{
	return status == SMC_STATUS_UPSTREAM_UNAVAILABLE || status == SMC_STATUS_UPSTREAM_AUTH ||
	    status == SMC_STATUS_INTERNAL;
}

/*
 * What the circuit breaker counts: failures of the upstream as a whole. An
 * answer about one secret (its value malformed, its KMS key failing, access
 * to it denied, not found) shows the upstream answers: one user reading a
 * broken secret must not cut every other user off.
 */
static bool
upstream_answered(const struct backend_error *error)
{
	return error == NULL || error->about_secret || !is_upstream_failure(error->status);
}

/* ---- the sealing key: open while in use (see KEY_LINGER_MS) ------------------------- */

static void
key_close(struct cache *c)
{
	if (c->key_held) {
		seal_key_close(c->seal);
		c->key_held = false;
	}
	if (c->key_idle_ev != NULL)
		event_del(c->key_idle_ev);
}

/* Every KEY_LINGER_MS while the key is open: close it unless it was used meanwhile. */
static void
key_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cache *c = arg;
	const struct timeval linger = { 0, KEY_LINGER_MS * 1000 };

	(void)fd;
	(void)what;
	if (c->key_held && c->key_used) {
		c->key_used = false;
		evtimer_add(c->key_idle_ev, &linger);
		return;
	}
	key_close(c);
}

static int
key_hold(struct cache *c)
{
	const struct timeval linger = { 0, KEY_LINGER_MS * 1000 };

	c->key_used = true;
	if (c->key_held)
		return 0;
	if (seal_key_open(c->seal) != 0)
		return -1;
	c->key_held = true;
	c->key_used = false;	/* this period's use is the opening itself */
	if (KEY_LINGER_MS > 0)
		evtimer_add(c->key_idle_ev, &linger);
	else	/* Runs after the callbacks already due in this pass: one toggle per batch. */
		event_active(c->pass_end_ev, EV_TIMEOUT, 0);
	return 0;
}

/* ---- shared bodies of this loop pass ------------------------------------------------ */

const uint8_t *
cache_body_data(const struct cache_body *b, size_t *len)
{
	*len = b->len;
	return b->data;
}

void
cache_body_release(struct cache_body *b)
{
	if (b == NULL || --b->refs > 0)
		return;
	sodium_memzero(b->data, b->len);
	free(b);
}

static size_t
pass_slot(const struct version *v)
{
	/* Fibonacci hashing of the address: versions are malloc'ed, low bits alike. */
	return (size_t)(((uint64_t)(uintptr_t)v * 0x9E3779B97F4A7C15u) >> 58) & (PASS_SLOTS - 1);
}

static void
pass_drop(struct cache *c, size_t slot)
{
	struct cache_body *b = c->pass_bodies[slot];

	if (b == NULL)
		return;
	c->pass_bodies[slot] = NULL;
	for (unsigned i = 0; i < c->pass_count; i++) {
		if (c->pass_used[i] == slot) {
			c->pass_used[i] = c->pass_used[--c->pass_count];
			break;
		}
	}
	b->version = NULL;
	cache_body_release(b);
}

/* A version is going: its body (if any) must not be found by a newcomer at its address. */
static void
pass_forget(struct cache *c, const struct version *v)
{
	size_t slot = pass_slot(v);

	if (c->pass_count > 0 && c->pass_bodies[slot] != NULL &&
	    c->pass_bodies[slot]->version == v)
		pass_drop(c, slot);
}

/* End of the loop pass: the table lets go of its bodies (replies still queued keep theirs). */
static void
pass_end_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cache *c = arg;

	(void)fd;
	(void)what;
	while (c->pass_count > 0)
		pass_drop(c, c->pass_used[c->pass_count - 1]);
	if (KEY_LINGER_MS == 0)
		key_close(c);
}

/* Background work is due sometime: make sure the tick runs. The tick only
 * runs while there is something to refresh, so an idle loop can exit. */
static void
tick_arm(struct cache *c)
{
	struct timeval tick = { 0, TICK_MS * 1000 };

	if (c->opts.refresh_ahead_pct != 0 && !event_pending(c->tick_ev, EV_TIMEOUT, NULL))
		event_add(c->tick_ev, &tick);
}

/* ---- circuit breaker ---------------------------------------------------------------- */

/* May an upstream call start now? *probe is set when it is the half-open probe. */
static bool
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

static void
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

/* ---- the secrets index --------------------------------------------------------------- */

static int
index_init(struct secret_index *x)
{
	memset(x, 0, sizeof(*x));
	if ((x->buckets = calloc(INDEX_BUCKETS, sizeof(*x->buckets))) == NULL)
		return -1;
	x->mask = INDEX_BUCKETS - 1;
	crypto_shorthash_keygen(x->key);
	return 0;
}

static uint32_t
index_hash(const struct secret_index *x, const char *name, size_t len)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint32_t h;

	crypto_shorthash(out, (const unsigned char *)name, len, x->key);
	memcpy(&h, out, sizeof(h));
	return h;
}

/* Up to two entries a bucket on average: chains stay short (the hash is
 * compared first) and the buckets cost 4-8 bytes a secret. */
static void
index_grow(struct secret_index *x)
{
	size_t n = (x->mask + 1) * 2;
	struct secret **nb, *s, *next;

	if ((nb = calloc(n, sizeof(*nb))) == NULL)
		return;		/* longer chains, still correct */
	for (size_t i = 0; i <= x->mask; i++) {
		for (s = x->buckets[i]; s != NULL; s = next) {
			next = s->hnext;
			s->hnext = nb[s->hash & (n - 1)];
			nb[s->hash & (n - 1)] = s;
		}
	}
	free(x->buckets);
	x->buckets = nb;
	x->mask = n - 1;
}

static void
index_insert(struct secret_index *x, struct secret *s)
{
	if (x->count >= 2 * (x->mask + 1))
		index_grow(x);
	s->hnext = x->buckets[s->hash & x->mask];
	x->buckets[s->hash & x->mask] = s;
	x->count++;
}

static void
index_remove(struct secret_index *x, struct secret *s)
{
	for (struct secret **pp = &x->buckets[s->hash & x->mask]; *pp != NULL; pp = &(*pp)->hnext) {
		if (*pp == s) {
			*pp = s->hnext;
			x->count--;
			return;
		}
	}
}

/* ---- ARN prefixes, names, VersionIds ---------------------------------------------------- */

/* Length of "arn:...:secret:" at the start of arn (up to its sixth colon); 0: none. */
static size_t
arn_prefix_len(const char *arn)
{
	struct sm_arn a;

	return sm_id_arn_split(arn, &a) == 0 ? a.prefix_len : 0;
}

/* A reference to the shared copy of arn[0..len); NO_PREFIX when none can be had. */
static uint16_t
prefix_get(struct cache *c, const char *arn, size_t len)
{
	size_t free_slot = MAX_PREFIXES;
	struct arn_prefix *p;

	for (size_t i = 0; i < MAX_PREFIXES; i++) {
		p = c->prefixes[i];
		if (p == NULL) {
			if (free_slot == MAX_PREFIXES)
				free_slot = i;
			continue;
		}
		if (p->len == len && memcmp(p->s, arn, len) == 0) {
			p->refs++;
			return (uint16_t)i;
		}
	}
	if (free_slot == MAX_PREFIXES || (p = malloc(sizeof(*p) + len + 1)) == NULL)
		return NO_PREFIX;
	p->refs = 1;
	p->len = len;
	memcpy(p->s, arn, len);
	p->s[len] = '\0';
	c->prefixes[free_slot] = p;
	return (uint16_t)free_slot;
}

static void
prefix_put(struct cache *c, uint16_t i)
{
	if (i == NO_PREFIX || --c->prefixes[i]->refs > 0)
		return;
	free(c->prefixes[i]);
	c->prefixes[i] = NULL;
}

static size_t
secret_name_len(const struct secret *s)
{
	if (s->prefix != NO_PREFIX)
		return strlen(s->tail) - SM_ID_SUFFIX_LEN;
	return strlen(s->tail + strlen(s->tail) + 1);
}

/* Whether s is named name[0..len). */
static bool
secret_named(const struct secret *s, const char *name, size_t len)
{
	const char *name_at;

	if (s->prefix != NO_PREFIX)
		return strncmp(s->tail, name, len) == 0 && s->tail[len] == '-' &&
		    strlen(s->tail + len) == SM_ID_SUFFIX_LEN;
	name_at = s->tail + strlen(s->tail) + 1;
	return strncmp(name_at, name, len) == 0 && name_at[len] == '\0';
}

/* The name, NUL-terminated: in the record, or in buf (SMC_MAX_NAME + 1 bytes). */
static const char *
secret_name(const struct secret *s, char *buf)
{
	size_t len;

	if (s->prefix == NO_PREFIX)
		return s->tail + strlen(s->tail) + 1;
	len = secret_name_len(s);
	memcpy(buf, s->tail, len);
	buf[len] = '\0';
	return buf;
}

/* The whole ARN: in the record, or in buf (SMC_MAX_ARN + 1 bytes). */
static const char *
secret_arn(const struct cache *c, const struct secret *s, char *buf)
{
	const struct arn_prefix *p;
	size_t len;

	if (s->prefix == NO_PREFIX)
		return s->tail;
	p = c->prefixes[s->prefix];
	len = strlen(s->tail);
	memcpy(buf, p->s, p->len);
	memcpy(buf + p->len, s->tail, len + 1);
	return buf;
}

/* Whether s's ARN is arn. */
static bool
secret_arn_is(const struct cache *c, const struct secret *s, const char *arn)
{
	const struct arn_prefix *p;

	if (s->prefix == NO_PREFIX)
		return strcmp(s->tail, arn) == 0;
	p = c->prefixes[s->prefix];
	return strncmp(arn, p->s, p->len) == 0 && strcmp(arn + p->len, s->tail) == 0;
}

static int
hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;		/* upper case is not canonical: it would not print back the same */
}

/* A VersionId in canonical UUID form (lower-case 8-4-4-4-12) as 16 bytes; false: another form. */
static bool
uuid_parse(const char *id, uint8_t out[16])
{
	size_t j = 0;
	int hi, lo;

	for (size_t i = 0; i < UUID_LEN; ) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (id[i++] != '-')
				return false;
			continue;
		}
		if ((hi = hex_digit(id[i])) < 0 || (lo = hex_digit(id[i + 1])) < 0)
			return false;
		out[j++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	return id[UUID_LEN] == '\0';
}

static void
uuid_format(const uint8_t in[16], char out[UUID_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	size_t j = 0;

	for (size_t i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[j++] = '-';
		out[j++] = digits[in[i] >> 4];
		out[j++] = digits[in[i] & 0xf];
	}
	out[j] = '\0';
}

static size_t
version_id_size(const struct version *v)
{
	return v->id_is_uuid ? 16 : strlen((const char *)v->id) + 1;
}

static uint8_t *
version_blob(struct version *v)
{
	return v->id + version_id_size(v);
}

/* The VersionId string: in the record, or in buf (SMC_MAX_VERSION_ID + 1 bytes). */
static const char *
version_id(const struct version *v, char *buf)
{
	if (!v->id_is_uuid)
		return (const char *)v->id;
	uuid_format(v->id, buf);
	return buf;
}

/* ---- secrets, versions, labels ------------------------------------------------------ */

static struct secret *
secret_by_name(struct cache *c, const char *name, size_t name_len)
{
	uint32_t h;

	if (name_len > SMC_MAX_NAME)
		return NULL;
	h = index_hash(&c->secrets, name, name_len);
	for (struct secret *s = c->secrets.buckets[h & c->secrets.mask]; s != NULL; s = s->hnext) {
		if (s->hash == h && secret_named(s, name, name_len))
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
secret_find_uncached(struct cache *c, const char *id)
{
	char buf[SMC_MAX_ARN + 1];
	const char *rest, *arn;
	struct secret *s;
	size_t id_len, rest_len, plen;

	if ((plen = arn_prefix_len(id)) == 0) {
		if (sm_id_is_arn(id))
			return NULL;	/* not a name (it has ':'), and no ARN */
		return secret_by_name(c, id, strlen(id));
	}
	rest = id + plen;
	id_len = strlen(id);
	rest_len = id_len - plen;
	/* Partial ARN: the stored ARN is the id plus a suffix. */
	if ((s = secret_by_name(c, rest, rest_len)) != NULL) {
		arn = secret_arn(c, s, buf);
		if (sm_id_is_partial_of(id, id_len, arn))
			return s;
	}
	/* Full ARN. */
	if (sm_id_has_suffix(rest, rest_len)) {
		s = secret_by_name(c, rest, rest_len - SM_ID_SUFFIX_LEN);
		if (s != NULL && secret_arn_is(c, s, id))
			return s;
	}
	return NULL;
}

/*
 * secret_find_uncached(), remembering the last id found: hits on a hot secret
 * skip hashing and the chain walk. Any secret made or freed forgets it, so
 * the answer is always the one a fresh lookup would give.
 */
static struct secret *
secret_find(struct cache *c, const char *id)
{
	size_t len = strnlen(id, sizeof(c->found_id));
	struct secret *s;

	if (c->found != NULL && len == c->found_len && memcmp(id, c->found_id, len) == 0)
		return c->found;
	if ((s = secret_find_uncached(c, id)) != NULL && len < sizeof(c->found_id)) {
		memcpy(c->found_id, id, len);
		c->found_len = len;
		c->found = s;
	}
	return s;
}

static void
secret_find_forget(struct cache *c)
{
	c->found = NULL;
}

static struct version *
version_find(const struct secret *s, const char *vid)
{
	uint8_t uuid[16];
	bool is_uuid = uuid_parse(vid, uuid);

	for (struct version *v = s->versions; v != NULL; v = v->next) {
		if (v->id_is_uuid ? is_uuid && memcmp(v->id, uuid, 16) == 0 :
		    !is_uuid && strcmp((const char *)v->id, vid) == 0)
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

/* The version a label points to (or NULL) and until when it is trusted. */
static struct version *
label_get(struct secret *s, const char *name, uint64_t *expires)
{
	struct label *l;

	if (strcmp(name, STAGE_CURRENT) == 0) {
		*expires = s->current_expires_ms;
		return s->current;
	}
	if ((l = *label_slot(s, name)) == NULL) {
		*expires = 0;
		return NULL;
	}
	*expires = l->expires_ms;
	return l->version;
}

static uint64_t
label_expiry(const struct cache *c, const char *name, uint64_t now)
{
	unsigned ttl = c->opts.ttl_s;

	if (strcmp(name, STAGE_PENDING) == 0 && c->opts.pending_ttl_s != 0 &&
	    c->opts.pending_ttl_s < ttl)
		ttl = c->opts.pending_ttl_s;
	return now + (uint64_t)ttl * 1000u;
}

static void
label_set(struct cache *c, struct secret *s, const char *name, struct version *v, uint64_t now)
{
	struct label **pp, *l;
	size_t len;

	if (strcmp(name, STAGE_CURRENT) == 0) {
		s->current = v;
		s->current_expires_ms = label_expiry(c, name, now);
		return;
	}
	pp = label_slot(s, name);
	if ((l = *pp) == NULL) {
		len = strlen(name);
		if (len > SMC_MAX_VERSION_STAGE || (l = malloc(sizeof(*l) + len + 1)) == NULL)
			return;		/* not cached; the next read fetches again */
		memcpy(l->name, name, len + 1);
		l->next = NULL;
		*pp = l;
		c->stats.labels++;
	}
	l->version = v;
	l->expires_ms = label_expiry(c, name, now);
}

/* Forgets a label the upstream no longer has. */
static void
label_drop(struct cache *c, struct secret *s, const char *name)
{
	struct label **pp, *l;

	if (strcmp(name, STAGE_CURRENT) == 0) {
		s->current = NULL;
		s->current_expires_ms = 0;
		return;
	}
	pp = label_slot(s, name);
	if ((l = *pp) != NULL) {
		*pp = l->next;
		free(l);
		c->stats.labels--;
	}
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
	pass_forget(c, v);
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
	index_remove(&c->secrets, s);
	secret_find_forget(c);
	prefix_put(c, s->prefix);
	c->stats.secrets--;
	free(s);
}

/* Finds or makes the entry for (arn, name). A name now at another ARN means
 * the secret was deleted and created again: the old entry goes. */
static struct secret *
secret_upsert(struct cache *c, const char *arn, const char *name)
{
	size_t arn_len = strlen(arn), name_len = strlen(name), plen, tail_len;
	struct secret *s = secret_by_name(c, name, name_len);
	uint16_t prefix = NO_PREFIX;

	if (s != NULL) {
		if (secret_arn_is(c, s, arn))
			return s;
		secret_free(c, s);
	}
	if (arn_len > SMC_MAX_ARN || name_len > SMC_MAX_NAME)
		return NULL;
	/* The usual shape, prefix + NAME-XXXXXX: share the prefix, keep the rest. */
	plen = arn_prefix_len(arn);
	if (plen > 0 && arn_len == plen + name_len + SM_ID_SUFFIX_LEN &&
	    memcmp(arn + plen, name, name_len) == 0 && arn[plen + name_len] == '-')
		prefix = prefix_get(c, arn, plen);
	tail_len = prefix != NO_PREFIX ? arn_len - plen + 1 : arn_len + 1 + name_len + 1;
	if ((s = calloc(1, offsetof(struct secret, tail) + tail_len)) == NULL) {
		prefix_put(c, prefix);
		return NULL;
	}
	s->prefix = prefix;
	if (prefix != NO_PREFIX) {
		memcpy(s->tail, arn + plen, arn_len - plen + 1);
	} else {
		memcpy(s->tail, arn, arn_len + 1);
		memcpy(s->tail + arn_len + 1, name, name_len + 1);
	}
	s->hash = index_hash(&c->secrets, name, name_len);
	index_insert(&c->secrets, s);
	secret_find_forget(c);	/* a newcomer may answer an id better (a partial ARN) */
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
		/* A secret with a refresh in flight stays: the refresh looks it up again. */
		if (s->versions == NULL)
			secret_free(c, s);
	}
}

/* The upstream confirmed the secret now: plan its next refresh, never later than planned. */
static void
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
	size_t id_size, blob_len, out_len;
	uint8_t uuid[16];
	bool is_uuid;

	if ((s = secret_upsert(c, value->arn, value->name)) == NULL)
		return NULL;
	if ((v = version_find(s, value->version_id)) == NULL) {
		is_uuid = uuid_parse(value->version_id, uuid);
		id_size = is_uuid ? sizeof(uuid) : strlen(value->version_id) + 1;
		blob_len = seal_sealed_size(value->len);
		if (blob_len == 0 || id_size > SMC_MAX_VERSION_ID + 1)
			return NULL;
		if ((v = malloc(offsetof(struct version, id) + id_size + blob_len)) == NULL)
			return NULL;
		v->id_is_uuid = is_uuid;
		memcpy(v->id, is_uuid ? uuid : (const uint8_t *)value->version_id, id_size);
		/* The identity the blob is bound to: the ARN and VersionId as received. */
		if (key_hold(c) != 0 || seal_seal(c->seal, value->arn, value->version_id,
		    value->data, value->len, v->id + id_size, blob_len, &out_len) != 0) {
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
		label_set(c, s, value->stages[i], v, now);
	/* The fetched stage list is the freshest word on v: a label still mapped
	 * to v that it no longer lists has moved, whatever its ttl says. */
	if (s->current == v && !stage_listed(value, STAGE_CURRENT))
		s->current = NULL;
	for (struct label *l = s->labels; l != NULL; l = l->next) {
		if (l->version == v && !stage_listed(value, l->name))
			l->version = NULL;
	}
	/* The answer lists every label of v: with no other version held, that is
	 * every label a read by VersionId can report. */
	if (s->versions == v && v->next == NULL)
		s->versions_expires_ms = now + (uint64_t)c->opts.ttl_s * 1000u;
	s->last_read_ms = now;
	plan_refresh(c, s, now);
	evict_to_bounds(c, v);
	return v;
}

/* Room for a version's identity as strings. */
struct ident_buf {
	char arn[SMC_MAX_ARN + 1];
	char name[SMC_MAX_NAME + 1];
	char vid[SMC_MAX_VERSION_ID + 1];
};

/* Unseals v into the guarded buffer (or a new one if it is lent out) and fills
 * value; returns the buffer, or NULL (error set). Give it back with plain_put(). */
static uint8_t *
plain_get(struct cache *c, struct version *v, struct backend_value *value,
    const char **stages, struct ident_buf *ident, struct backend_error *error)
{
	uint8_t *plain = c->plain;
	size_t len, cap = c->plain_len;
	const char *arn = secret_arn(c, v->secret, ident->arn);
	const char *vid = version_id(v, ident->vid);

	/* A callback may read the cache again: a nested hit must not reuse (and
	 * then wipe) the buffer the outer callback is still reading. */
	if (c->plain_busy) {
		cap = seal_plain_capacity(v->blob_len);
		if (cap == 0 || (plain = sodium_malloc(cap)) == NULL) {
			backend_error_set(error, SMC_STATUS_INTERNAL, "out of memory");
			return NULL;
		}
	}
	if (key_hold(c) != 0 ||
	    seal_unseal(c->seal, arn, vid, version_blob(v), v->blob_len, plain, cap, &len) != 0) {
		backend_error_set(error, SMC_STATUS_INTERNAL, "cached value failed to unseal");
		log_error("cache: a sealed value failed its integrity check");
		if (plain != c->plain)
			sodium_free(plain);
		return NULL;
	}
	if (plain == c->plain)
		c->plain_busy = true;
	memset(value, 0, sizeof(*value));
	value->arn = arn;
	value->name = secret_name(v->secret, ident->name);
	value->version_id = vid;
	value->stages = stages;
	value->stage_count = version_stages(v, stages, SMC_MAX_STAGES);
	value->created_ms = v->created_ms;
	value->is_binary = v->is_binary;
	value->data = plain;
	value->len = len;
	return plain;
}

static void
plain_put(struct cache *c, uint8_t *plain, size_t len)
{
	sodium_memzero(plain, len);
	if (plain != c->plain)
		sodium_free(plain);
	else
		c->plain_busy = false;
}

/* Unseals v and hands it to cb; the plaintext is wiped before returning. */
static void
deliver_version(struct cache *c, struct version *v, bool stale, cache_value_cb cb, void *arg)
{
	const char *stages[SMC_MAX_STAGES];
	struct backend_value value;
	struct backend_error error;
	struct ident_buf ident;
	uint8_t *plain;

	if ((plain = plain_get(c, v, &value, stages, &ident, &error)) == NULL) {
		cb(arg, NULL, false, &error);
		return;
	}
	if (stale)
		c->stats.stale_serves++;
	cb(arg, &value, stale, NULL);
	plain_put(c, plain, value.len);
}

/* Whether b was rendered from v as it is labelled now. */
static bool
body_matches(const struct cache_body *b, const struct version *v, cache_render_fn render)
{
	const char *stages[SMC_MAX_STAGES];
	const char *key = (const char *)b->data + b->len, *end = key + b->stages_len;
	size_t n, len;

	if (b->version != v || b->render != render)
		return false;
	n = version_stages(v, stages, SMC_MAX_STAGES);
	for (size_t i = 0; i < n; i++) {
		len = strlen(stages[i]) + 1;
		if ((size_t)(end - key) < len || memcmp(key, stages[i], len) != 0)
			return false;
		key += len;
	}
	return key == end;
}

/* Unseals and renders v into a new body (one reference); NULL on failure. */
static struct cache_body *
body_make(struct cache *c, struct version *v, cache_render_fn render)
{
	const char *stages[SMC_MAX_STAGES];
	struct backend_value value;
	struct backend_error error;
	struct cache_body *b = NULL;
	struct ident_buf ident;
	uint8_t *plain;
	size_t need, stages_len = 0;
	char *p;

	if ((plain = plain_get(c, v, &value, stages, &ident, &error)) == NULL)
		return NULL;
	for (size_t i = 0; i < value.stage_count; i++)
		stages_len += strlen(stages[i]) + 1;
	need = render(&value, NULL, 0);
	if (need == 0 || (b = malloc(sizeof(*b) + need + stages_len)) == NULL)
		goto out;
	if (render(&value, b->data, need) != need) {
		sodium_memzero(b->data, need);
		free(b);
		b = NULL;
		goto out;
	}
	b->refs = 1;
	b->version = v;
	b->render = render;
	b->len = need;
	b->stages_len = stages_len;
	p = (char *)b->data + need;
	for (size_t i = 0; i < value.stage_count; i++) {
		size_t len = strlen(stages[i]) + 1;

		memcpy(p, stages[i], len);
		p += len;
	}
out:
	plain_put(c, plain, value.len);
	return b;
}

/* The body for v in this pass, made if need be; a new reference, or NULL. */
static struct cache_body *
body_get(struct cache *c, struct version *v, cache_render_fn render)
{
	size_t slot = pass_slot(v);
	struct cache_body *b = c->pass_bodies[slot];

	if (b != NULL && body_matches(b, v, render)) {
		b->refs++;
		return b;
	}
	if ((b = body_make(c, v, render)) == NULL)
		return NULL;
	/* The slot's previous body (another version, or v labelled otherwise)
	 * lives on in the replies that hold it. */
	pass_drop(c, slot);
	b->refs++;
	c->pass_bodies[slot] = b;
	c->pass_used[c->pass_count] = (uint8_t)slot;
	if (c->pass_count++ == 0)
		event_active(c->pass_end_ev, EV_TIMEOUT, 0);
	return b;
}

/*
 * What the cache holds for q: the version, and whether it is trusted now
 * (*stale false) or past its ttl but within max_stale (*stale true). NULL:
 * nothing held, or past max_stale. The value of a VersionId never changes,
 * but whether the secret still exists and which labels that version bears
 * do: a read by VersionId is trusted as long as the labels of held versions
 * are (versions_expires_ms), and with a stage too, that label as well.
 */
static struct version *
lookup(struct cache *c, struct secret *s, const struct backend_query *q, uint64_t now,
    bool *stale)
{
	struct version *v, *by_label;
	uint64_t expires = 0, label_expires, stale_ms = (uint64_t)c->opts.max_stale_s * 1000u;

	*stale = false;
	if (s == NULL)
		return NULL;
	if (q->version_id != NULL) {
		if ((v = version_find(s, q->version_id)) == NULL)
			return NULL;
		expires = s->versions_expires_ms;
		if (q->version_stage != NULL) {
			/* With a stage too, it must still be that version's. */
			by_label = label_get(s, q->version_stage, &label_expires);
			if (by_label != v)
				return NULL;
			if (label_expires < expires)
				expires = label_expires;
		}
	} else if ((v = label_get(s, q->version_stage, &expires)) == NULL) {
		return NULL;
	}
	if (now < expires)
		return v;
	if (now < expires + stale_ms) {
		*stale = true;
		return v;
	}
	return NULL;
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
static bool
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

static void
touch(struct cache *c, struct version *v, uint64_t now)
{
	if (TAILQ_FIRST(&c->lru) != v) {
		TAILQ_REMOVE(&c->lru, v, lru);
		TAILQ_INSERT_HEAD(&c->lru, v, lru);
	}
	v->secret->last_read_ms = now;
}

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
static void
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
static bool
negative_applies(const struct cache *c, const struct negative *n, uint64_t now)
{
	if (now >= n->expires_ms)
		return false;
	return n->failures == 0 || n->error.about_secret || c->breaker_open_until_ms != 0;
}

/* ---- fetches for readers ------------------------------------------------------------ */

static void refresh_start(struct cache *c, struct secret *s, bool probe);

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
		} else if (s != NULL && (error->status == SMC_STATUS_ACCESS_DENIED ||
		    (error->status == SMC_STATUS_NOT_FOUND && f->query.version_id == NULL &&
		    strcmp(f->query.version_stage, STAGE_CURRENT) == 0))) {
			/* Access revoked, or the secret is gone: a definitive answer. */
			secret_free(c, s);
			if (error->status == SMC_STATUS_ACCESS_DENIED && error->about_secret)
				failure_add(c, &f->query, error, now);
		} else if (s == NULL && error->status == SMC_STATUS_ACCESS_DENIED &&
		    error->about_secret) {
			failure_add(c, &f->query, error, now);	/* denied: back off as a failure */
		} else if (s != NULL && error->status == SMC_STATUS_NOT_FOUND &&
		    f->query.version_stage == NULL &&
		    (v = version_find(s, f->query.version_id)) != NULL) {
			/* A version we hold is gone (or the whole secret is): it goes. */
			version_free(c, v);
			v = NULL;
			if (s->versions == NULL)
				secret_free(c, s);
		} else if (s != NULL && error->status == SMC_STATUS_NOT_FOUND &&
		    f->query.version_id == NULL) {
			label_drop(c, s, f->query.version_stage);	/* that label moved away */
		}
		if (error->status == SMC_STATUS_NOT_FOUND)
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

static struct flight *
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
static void
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
			backend_error_set(&error, SMC_STATUS_UPSTREAM_UNAVAILABLE,
			    "the upstream is failing; not asking it again before the next probe");
			if (cb != NULL)
				cb(arg, NULL, false, &error);
			return;
		}
		if (c->charge != NULL && !c->charge->allow(c->charge->arg)) {
			if (probe)
				c->breaker_probing = false;
			backend_error_set(&error, SMC_STATUS_LIMIT_EXCEEDED, "%s",
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
	backend_error_set(&error, SMC_STATUS_INTERNAL, "out of memory");
	if (cb != NULL)
		cb(arg, NULL, false, &error);
}

static bool
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
			backend_error_set(&error, SMC_STATUS_LIMIT_EXCEEDED,
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
	else if (error->status == SMC_STATUS_NOT_FOUND && c->opts.negative_ttl_s != 0)
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
			backend_error_set(&error, SMC_STATUS_LIMIT_EXCEEDED, "%s", charge->refusal);
			cb(arg, NULL, &error);
			return;
		}
		if (!breaker_allow(c, now, &probe)) {
			free(w);
			c->stats.breaker_rejects++;
			backend_error_set(&error, SMC_STATUS_UPSTREAM_UNAVAILABLE,
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
			backend_error_set(&error, SMC_STATUS_INTERNAL,
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
	backend_error_set(&error, SMC_STATUS_INTERNAL, "out of memory");
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
		    smc_status_name(error->status));
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
	const char *held[SMC_MAX_STAGES + 1];
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
	for (struct label *l = s->labels; l != NULL && nheld < SMC_MAX_STAGES; l = l->next)
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

static void
refresh_start(struct cache *c, struct secret *s, bool probe)
{
	char buf[SMC_MAX_ARN + 1];
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
static void
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
	c->base = base;
	c->backend = backend;
	c->opts = *opts;
	c->breaker_cooldown_ms = BREAKER_COOLDOWN_MS;
	TAILQ_INIT(&c->lru);
	TAILQ_INIT(&c->negative_fifo);
	LIST_INIT(&c->refreshes);
	TAILQ_INIT(&c->desc_fifo);
	c->plain_len = SEAL_MAX_PADDED;
	if (index_init(&c->secrets) != 0 || table_init(&c->negatives, 64) != 0 ||
	    table_init(&c->flights, 64) != 0 || table_init(&c->descs, 64) != 0 ||
	    table_init(&c->dflights, 16) != 0) {
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
	c->key_idle_ev = evtimer_new(base, key_idle_cb, c);
	c->pass_end_ev = event_new(base, -1, 0, pass_end_cb, c);
	c->tick_ev = evtimer_new(base, tick_cb, c);
	if (c->key_idle_ev == NULL || c->pass_end_ev == NULL || c->tick_ev == NULL) {
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
	if (c->key_idle_ev != NULL)
		event_free(c->key_idle_ev);
	if (c->seal != NULL)
		seal_ctx_free(c->seal);
	if (c->plain != NULL)
		sodium_free(c->plain);
	free(c->secrets.buckets);
	table_destroy(&c->negatives);
	table_destroy(&c->flights);
	table_destroy(&c->descs);
	table_destroy(&c->dflights);
	free(c);
}
