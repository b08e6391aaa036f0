/*
 * cache_index: the records of the cache (secrets, their versions and labels),
 * the name index with its shared ARN prefixes and VersionIds, storing a
 * fetched value, which held version answers a query, and eviction.
 */

#include <stdlib.h>

#include "cache_internal.h"
#include "sm_id.h"

/* ---- the secrets index --------------------------------------------------------------- */

int
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

/* The name, NUL-terminated: in the record, or in buf (PROTO_MAX_NAME + 1 bytes). */
const char *
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

/* The whole ARN: in the record, or in buf (PROTO_MAX_ARN + 1 bytes). */
const char *
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

uint8_t *
version_blob(struct version *v)
{
	return v->id + version_id_size(v);
}

/* The VersionId string: in the record, or in buf (PROTO_MAX_VERSION_ID + 1 bytes). */
const char *
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

	if (name_len > PROTO_MAX_NAME)
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
	char buf[PROTO_MAX_ARN + 1];
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
struct secret *
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

struct version *
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

void
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
		if (len > PROTO_MAX_VERSION_STAGE || (l = malloc(sizeof(*l) + len + 1)) == NULL)
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
void
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
size_t
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

void
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

void
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
	if (arn_len > PROTO_MAX_ARN || name_len > PROTO_MAX_NAME)
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

void
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
struct version *
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
		if (blob_len == 0 || id_size > PROTO_MAX_VERSION_ID + 1)
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

/*
 * What the cache holds for q: the version, and whether it is trusted now
 * (*stale false) or past its ttl but within max_stale (*stale true). NULL:
 * nothing held, or past max_stale. The value of a VersionId never changes,
 * but whether the secret still exists and which labels that version bears
 * do: a read by VersionId is trusted as long as the labels of held versions
 * are (versions_expires_ms), and with a stage too, that label as well.
 */
struct version *
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

void
touch(struct cache *c, struct version *v, uint64_t now)
{
	if (TAILQ_FIRST(&c->lru) != v) {
		TAILQ_REMOVE(&c->lru, v, lru);
		TAILQ_INSERT_HEAD(&c->lru, v, lru);
	}
	v->secret->last_read_ms = now;
}
