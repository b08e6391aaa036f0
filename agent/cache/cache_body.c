/*
 * cache_body: plaintext access. The sealing key held open while in use,
 * the guarded buffer a value is unsealed into for a callback, and the bodies
 * a front end renders from a version, shared by the replies of one loop pass.
 */

#define LOG_COMPONENT "cache"

#include <stdlib.h>

#include "body_pool.h"
#include "cache_internal.h"
#include "log.h"

static void pass_drop_expired(struct cache *c);

/* ---- the sealing key: open while in use (see KEY_LINGER_MS) ------------------------- */

void
key_close(struct cache *c)
{
	/* Lingering bodies never outlive the key's readability (cache.h). */
	if (c->opts.body_linger_ms > 0)
		pass_drop_all(c);
	if (c->key_held) {
		seal_key_close(c->seal);
		c->key_held = false;
	}
	if (c->key_idle_ev != NULL)
		event_del(c->key_idle_ev);
}

/* Every KEY_LINGER_MS while the key is open: close it unless it was used meanwhile. */
void
key_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cache *c = arg;
	const struct timeval linger = { 0, KEY_LINGER_MS * 1000 };

	(void)fd;
	(void)what;
	if (c->key_held && c->key_used) {
		c->key_used = false;
		evtimer_add(c->key_idle_ev, &linger);
		if (c->opts.body_linger_ms > 0)
			pass_drop_expired(c);
		return;
	}
	key_close(c);
}

int
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
	body_pool_put(b, b->cap);
}

static size_t
pass_slot(const struct version *v)
{
	/* Fibonacci hashing of the address: versions are malloc'ed, low bits alike. */
	return (size_t)(((uint64_t)(uintptr_t)v * 0x9E3779B97F4A7C15u) >> 58) & (PASS_SLOTS - 1);
}

void
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
void
pass_forget(struct cache *c, const struct version *v)
{
	size_t slot = pass_slot(v);

	if (c->pass_count > 0 && c->pass_bodies[slot] != NULL &&
	    c->pass_bodies[slot]->version == v)
		pass_drop(c, slot);
}

void
pass_drop_all(struct cache *c)
{
	while (c->pass_count > 0)
		pass_drop(c, c->pass_used[c->pass_count - 1]);
}

/* Whether b has lingered its body_linger_ms (now: sys_clock_ms()). */
static bool
body_expired(const struct cache *c, const struct cache_body *b, uint64_t now)
{
	return now - b->made_ms >= c->opts.body_linger_ms;
}

/* body_linger_ms: bodies past their time leave the table (while the key stays
 * open under load, key_idle_cb calls this every KEY_LINGER_MS). */
static void
pass_drop_expired(struct cache *c)
{
	uint64_t now = sys_clock_ms();

	for (unsigned i = c->pass_count; i-- > 0;) {
		size_t slot = c->pass_used[i];

		if (body_expired(c, c->pass_bodies[slot], now))
			pass_drop(c, slot);	/* moves the last entry to i: already seen */
	}
}

/* End of the loop pass: the table lets go of its bodies (replies still queued keep
 * theirs); with body_linger_ms they stay for later passes, dropped by key_idle_cb. */
void
pass_end_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cache *c = arg;

	(void)fd;
	(void)what;
	if (c->opts.body_linger_ms == 0 || KEY_LINGER_MS == 0)
		pass_drop_all(c);
	if (KEY_LINGER_MS == 0)
		key_close(c);
}

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
			backend_error_set(error, PROTO_STATUS_INTERNAL, "out of memory");
			return NULL;
		}
	}
	if (key_hold(c) != 0 ||
	    seal_unseal(c->seal, arn, vid, version_blob(v), v->blob_len, plain, cap, &len) != 0) {
		backend_error_set(error, PROTO_STATUS_INTERNAL, "cached value failed to unseal");
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
	value->stage_count = version_stages(c, v, stages, PROTO_MAX_STAGES);
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
void
deliver_version(struct cache *c, struct version *v, bool stale, cache_value_cb cb, void *arg)
{
	const char *stages[PROTO_MAX_STAGES];
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
body_matches(const struct cache *c, const struct cache_body *b, const struct version *v,
    cache_render_fn render)
{
	const char *stages[PROTO_MAX_STAGES];
	const char *key = (const char *)b->data + b->len, *end = key + b->stages_len;
	size_t n, len;

	if (b->version != v || b->render != render)
		return false;
	n = version_stages(c, v, stages, PROTO_MAX_STAGES);
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
	const char *stages[PROTO_MAX_STAGES];
	struct backend_value value;
	struct backend_error error;
	struct cache_body *b = NULL;
	struct ident_buf ident;
	uint8_t *plain;
	size_t need, cap, stages_len = 0;
	char *p;

	if ((plain = plain_get(c, v, &value, stages, &ident, &error)) == NULL)
		return NULL;
	for (size_t i = 0; i < value.stage_count; i++)
		stages_len += strlen(stages[i]) + 1;
	need = render(&value, NULL, 0);
	if (need == 0 || (b = body_pool_get(sizeof(*b) + need + stages_len, &cap)) == NULL)
		goto out;
	if (render(&value, b->data, need) != need) {
		sodium_memzero(b->data, need);
		body_pool_put(b, cap);
		b = NULL;
		goto out;
	}
	b->cap = cap;
	b->made_ms = c->opts.body_linger_ms > 0 ? sys_clock_ms() : 0;
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
struct cache_body *
body_get(struct cache *c, struct version *v, cache_render_fn render)
{
	size_t slot = pass_slot(v);
	struct cache_body *b = c->pass_bodies[slot];

	if (b != NULL && body_matches(c, b, v, render) &&
	    (c->opts.body_linger_ms == 0 || !body_expired(c, b, sys_clock_ms()))) {
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
