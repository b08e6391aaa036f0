/*
 * test_cache_shared: the cache's hit fast path (cache_get_shared) and its
 * compact records, against the fake backend (fake_backend.h, answering every
 * request of a pass at once) on a real event_base.
 *
 *   - one unseal and one rendering per version per loop pass, shared by every
 *     hit in the pass; a body outlives the pass while a reference holds it;
 *   - a body is never reused for a version labelled otherwise, or for a new
 *     version at a freed one's address, within the same pass;
 *   - ARNs, names and VersionIds of every shape come back exactly as stored
 *     (shared ARN prefixes, UUIDs kept as 16 bytes, other strings as they are);
 *   - the sealing key's linger timer does not keep an idle loop alive;
 *   - big bodies reuse pooled blocks across passes, wiped, and the pool
 *     empties once idle;
 *   - with body_linger_ms a body serves later passes, until it is that old
 *     (while the key stays open) or the key closes, whichever is first.
 *
 * The render function writes "ARN|NAME|VERSIONID|STAGE,STAGE|VALUE", so a
 * body shows exactly what it was made from.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <event2/event.h>
#include <sodium.h>

#include "backend.h"
#include "body_pool.h"
#include "cache.h"
#include "fake_backend.h"

#define PFX		"arn:aws:secretsmanager:us-east-1:123456789012:secret:"
#define UUID1		"3c7d9a52-1f0b-4e8a-9d2c-5b6e7f8a9b0c"
#define UUID2		"9e2f6b10-0a4d-4c3e-8b7a-112233445566"

static struct {
	struct event_base *base;
	struct fake *fake;
	struct cache *cache;
	unsigned renders;
} T;

/* ---- fixture ----------------------------------------------------------------------------- */

static unsigned linger_ms;	/* body_linger_ms of the next setup */

static int
setup_sized(size_t max_versions)
{
	struct cache_options o = { .ttl_s = 300, .negative_ttl_s = 10,
	    .max_versions = max_versions, .max_bytes = 64u << 20, .body_linger_ms = linger_ms };
	char err[256] = "";

	memset(&T, 0, sizeof(T));
	T.base = event_base_new();
	if (T.base == NULL)
		return -1;
	/* Every request answered in one pass, by name or full ARN only: partial
	 * ARNs must be resolved by the cache. */
	T.fake = fake_new(T.base);
	T.fake->batch = true;
	T.fake->exact_ids = true;
	T.cache = cache_new(T.base, &T.fake->b, &o, err, sizeof(err));
	return T.cache == NULL ? -1 : 0;
}

static int
setup(void **state)
{
	(void)state;
	return setup_sized(100);
}

static int
setup_one_version(void **state)
{
	(void)state;
	return setup_sized(1);
}

static int
setup_linger(void **state)
{
	int rc;

	(void)state;
	linger_ms = 50;
	rc = setup_sized(100);
	linger_ms = 0;
	return rc;
}

static int
setup_large(void **state)
{
	(void)state;
	return setup_sized(100000);
}

static int
teardown(void **state)
{
	(void)state;
	cache_free(T.cache);
	if (T.fake != NULL)
		backend_free(&T.fake->b);
	if (T.base != NULL)
		event_base_free(T.base);
	memset(&T, 0, sizeof(T));
	return 0;
}

/* One loop pass: what is due runs, then the end-of-pass event. */
static void
one_pass(void)
{
	assert_true(event_base_loop(T.base, EVLOOP_NONBLOCK) >= 0);
}

/* ---- plain GETs ---------------------------------------------------------------------------- */

struct answer {
	int calls;
	bool ok;
	char arn[256], name[64], vid[72], value[64], stages[64];
};

static void
on_value(void *arg, const struct backend_value *value, bool stale, const struct backend_error *error)
{
	struct answer *a = arg;

	(void)stale;
	a->calls++;
	a->ok = error == NULL;
	if (value == NULL)
		return;
	snprintf(a->arn, sizeof(a->arn), "%s", value->arn);
	snprintf(a->name, sizeof(a->name), "%s", value->name);
	snprintf(a->vid, sizeof(a->vid), "%s", value->version_id);
	snprintf(a->value, sizeof(a->value), "%.*s", (int)value->len, (const char *)value->data);
	a->stages[0] = '\0';
	for (size_t i = 0; i < value->stage_count; i++)
		snprintf(a->stages + strlen(a->stages), sizeof(a->stages) - strlen(a->stages),
		    "%s%s", i > 0 ? "," : "", value->stages[i]);
}

/* A GET through cache_get(), run until answered. */
static struct answer
get(const char *id, const char *stage, const char *vid)
{
	struct backend_query q = { .secret_id = id, .version_stage = stage, .version_id = vid };
	struct answer a;

	memset(&a, 0, sizeof(a));
	cache_get(T.cache, &q, 0, on_value, &a);
	for (int i = 0; i < 10 && a.calls == 0; i++)
		one_pass();
	assert_int_equal(a.calls, 1);
	return a;
}

/* ---- shared hits --------------------------------------------------------------------------- */

static size_t
render(const struct backend_value *v, uint8_t *out, size_t cap)
{
	char text[512];
	int n;

	n = snprintf(text, sizeof(text), "%s|%s|%s|", v->arn, v->name, v->version_id);
	for (size_t i = 0; i < v->stage_count; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "%s%s", i > 0 ? "," : "",
		    v->stages[i]);
	n += snprintf(text + n, sizeof(text) - (size_t)n, "|%.*s", (int)v->len,
	    (const char *)v->data);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	if (out == NULL || cap < (size_t)n)
		return (size_t)n;
	memcpy(out, text, (size_t)n);
	T.renders++;
	return (size_t)n;
}

struct shared {
	int calls;
	struct cache_body *body;
	char text[512];
	char arn[256], name[64];
};

static void
on_shared(void *arg, struct cache_hit *hit, bool stale, struct cache_body *body)
{
	struct shared *s = arg;
	const char *arn, *name;
	const uint8_t *data;
	size_t len;

	assert_false(stale);
	s->calls++;
	s->body = body;
	data = cache_body_data(body, &len);
	snprintf(s->text, sizeof(s->text), "%.*s", (int)len, (const char *)data);
	cache_hit_names(hit, &arn, &name);
	snprintf(s->arn, sizeof(s->arn), "%s", arn);
	snprintf(s->name, sizeof(s->name), "%s", name);
}

/* A hit through cache_get_shared(), keeping the body reference in the result. */
static struct shared
get_shared(const char *id, const char *stage, const char *vid)
{
	struct backend_query q = { .secret_id = id, .version_stage = stage, .version_id = vid };
	struct shared s;

	memset(&s, 0, sizeof(s));
	assert_int_equal(cache_get_shared(T.cache, &q, 0, render, on_shared, &s), 1);
	assert_int_equal(s.calls, 1);
	assert_non_null(s.body);
	return s;
}

static void
test_one_render_per_pass(void **state)
{
	struct shared a, b, c;
	const uint8_t *pa, *pb;
	size_t la, lb;

	(void)state;
	fake_put(T.fake, PFX "app/db-AbCdEf", "app/db", UUID1, "AWSCURRENT", "hunter2");
	assert_true(get("app/db", NULL, NULL).ok);
	one_pass();
	a = get_shared("app/db", NULL, NULL);
	b = get_shared(PFX "app/db-AbCdEf", "AWSCURRENT", NULL);
	assert_int_equal(T.renders, 1);
	pa = cache_body_data(a.body, &la);
	pb = cache_body_data(b.body, &lb);
	assert_ptr_equal(pa, pb);	/* one buffer, two references */
	assert_string_equal(a.text, PFX "app/db-AbCdEf|app/db|" UUID1 "|AWSCURRENT|hunter2");
	assert_string_equal(a.arn, PFX "app/db-AbCdEf");
	assert_string_equal(a.name, "app/db");
	/* The pass ends; references held keep the body readable and unchanged. */
	one_pass();
	pa = cache_body_data(a.body, &la);
	assert_int_equal(la, strlen(a.text));
	assert_memory_equal(pa, a.text, la);
	/* The next pass renders afresh. */
	c = get_shared("app/db", NULL, NULL);
	assert_int_equal(T.renders, 2);
	assert_string_equal(c.text, a.text);
	cache_body_release(a.body);
	cache_body_release(b.body);
	cache_body_release(c.body);
	assert_int_equal(cache_get_stats(T.cache)->hits, 3);
	assert_int_equal(T.fake->calls, 1);
}

static void
test_misses_and_refreshes_are_left_to_cache_get(void **state)
{
	struct backend_query q = { .secret_id = "app/none" };
	struct shared s;

	(void)state;
	memset(&s, 0, sizeof(s));
	/* Not cached: nothing called, nothing counted, nothing asked upstream. */
	assert_int_equal(cache_get_shared(T.cache, &q, 0, render, on_shared, &s), 0);
	fake_put(T.fake, PFX "app/db-AbCdEf", "app/db", UUID1, "AWSCURRENT", "hunter2");
	assert_true(get("app/db", NULL, NULL).ok);
	q.secret_id = "app/db";
	assert_int_equal(cache_get_shared(T.cache, &q, CACHE_FORCE_REFRESH, render, on_shared, &s), 0);
	q.version_stage = "AWSPREVIOUS";	/* a label not held */
	assert_int_equal(cache_get_shared(T.cache, &q, 0, render, on_shared, &s), 0);
	assert_int_equal(s.calls, 0);
	assert_int_equal(T.renders, 0);
	assert_int_equal(cache_get_stats(T.cache)->hits, 0);
	assert_int_equal(T.fake->calls, 1);
}

/* Hooks that run inside the pass in which the fake answers: the cache's pass
 * table still holds what the early hit made when the late one looks. */
static struct shared early, late;

static void
hit_old_version_early(void)
{
	early = get_shared("app/db", NULL, UUID1);
}

static void
hit_old_version_late(void)
{
	late = get_shared("app/db", NULL, UUID1);
}

static void
test_relabelled_version_renders_again_in_the_pass(void **state)
{
	(void)state;
	fake_put(T.fake, PFX "app/db-AbCdEf", "app/db", UUID1, "AWSCURRENT", "old-pw");
	assert_true(get("app/db", NULL, NULL).ok);
	one_pass();
	/* Rotation: the new version takes AWSCURRENT from the old one. */
	fake_put(T.fake, PFX "app/db-AbCdEf", "app/db", UUID2, "AWSCURRENT", "new-pw");
	fake_put(T.fake, PFX "app/db-AbCdEf", "app/db", UUID1, "AWSPREVIOUS", "old-pw");
	T.fake->before_answer = hit_old_version_early;
	T.fake->after_answer = hit_old_version_late;
	assert_true(get("app/db", "AWSCURRENT", UUID2).ok);	/* the fetch that moves the label */
	assert_string_equal(early.text, PFX "app/db-AbCdEf|app/db|" UUID1 "|AWSCURRENT|old-pw");
	/* Same pass, but the old version's labels changed: made again, with them. */
	assert_string_equal(late.text, PFX "app/db-AbCdEf|app/db|" UUID1 "||old-pw");
	assert_int_equal(T.renders, 2);
	cache_body_release(early.body);
	cache_body_release(late.body);
}

static void
hit_a_early(void)
{
	early = get_shared("app/a", NULL, NULL);
}

static void
hit_c_late(void)
{
	late = get_shared("app/c", NULL, NULL);
}

static void
test_evicted_version_not_confused_in_the_pass(void **state)
{
	struct backend_query qb = { .secret_id = "app/b" }, qc = { .secret_id = "app/c" };
	struct answer b, c;
	const uint8_t *p;
	size_t len;

	(void)state;
	/* max_versions 1, and b and c answered in one pass: storing b evicts a,
	 * storing c (likely in a's freed memory) evicts b, all in the pass that
	 * made a body for a. */
	fake_put(T.fake, PFX "app/a-AAAAAA", "app/a", UUID1, "AWSCURRENT", "value-a");
	fake_put(T.fake, PFX "app/b-BBBBBB", "app/b", UUID2, "AWSCURRENT", "value-b");
	fake_put(T.fake, PFX "app/c-CCCCCC", "app/c", UUID1, "AWSCURRENT", "value-a");
	assert_true(get("app/a", NULL, NULL).ok);
	one_pass();
	T.fake->before_answer = hit_a_early;
	T.fake->after_answer = hit_c_late;
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	cache_get(T.cache, &qb, 0, on_value, &b);
	cache_get(T.cache, &qc, 0, on_value, &c);
	one_pass();
	assert_true(b.ok && c.ok);
	assert_int_equal(cache_get_stats(T.cache)->versions, 1);
	assert_int_equal(cache_get_stats(T.cache)->evictions, 2);
	assert_string_equal(late.text, PFX "app/c-CCCCCC|app/c|" UUID1 "|AWSCURRENT|value-a");
	assert_int_equal(T.renders, 2);
	/* The evicted version's body lives on for its holder, unchanged. */
	assert_string_equal(early.text, PFX "app/a-AAAAAA|app/a|" UUID1 "|AWSCURRENT|value-a");
	p = cache_body_data(early.body, &len);
	assert_int_equal(len, strlen(early.text));
	assert_memory_equal(p, early.text, len);
	cache_body_release(early.body);
	cache_body_release(late.body);
}

/* ---- identities of every shape ------------------------------------------------------------- */

static void
expect_identity(const char *id, const char *vid_query, const char *arn, const char *name,
    const char *vid, const char *value)
{
	struct answer a = get(id, NULL, vid_query);
	struct shared s;
	char want[512];

	assert_true(a.ok);
	assert_string_equal(a.arn, arn);
	assert_string_equal(a.name, name);
	assert_string_equal(a.vid, vid);
	assert_string_equal(a.value, value);
	s = get_shared(id, NULL, vid_query);
	snprintf(want, sizeof(want), "%s|%s|%s|AWSCURRENT|%s", arn, name, vid, value);
	assert_string_equal(s.text, want);
	assert_string_equal(s.arn, arn);
	assert_string_equal(s.name, name);
	cache_body_release(s.body);
}

static void
test_identities_round_trip(void **state)
{
	static const struct {
		const char *arn, *name, *vid, *value;
	} t[] = {
		/* The usual shape: shared prefix, UUID kept as 16 bytes. */
		{ PFX "app/db-AbCdEf", "app/db", UUID1, "v-usual" },
		/* Same prefix, another secret. */
		{ PFX "app/api-Zz9Yy8", "app/api", UUID2, "v-api" },
		/* Another region and partition: a prefix of their own. */
		{ "arn:aws-cn:secretsmanager:cn-north-1:210987654321:secret:app/cn-Q1w2E3", "app/cn",
		  "A1B2C3D4-0000-4000-8000-ABCDEF012345", "v-cn" },
		/* Not a canonical UUID: upper case, client tokens, short ids. */
		{ PFX "up-Up0000", "up", "3C7D9A52-1F0B-4E8A-9D2C-5B6E7F8A9B0C", "v-upper" },
		{ PFX "tok-Tok000", "tok", "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE", "v-token" },
		{ PFX "short-Sh0000", "short", "v1", "v-short" },
		{ PFX "dashes-Da0000", "dashes", "3c7d9a52x1f0b-4e8a-9d2c-5b6e7f8a9b0c", "v-x" },
		/* ARNs of other shapes are kept whole. */
		{ PFX "nosuffix", "nosuffix", UUID1, "v-nosuffix" },
		{ PFX "other-name-AbCdEf", "name-in-arn-differs", UUID1, "v-differs" },
		{ "not-an-arn", "plain", UUID1, "v-plain" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		fake_put(T.fake, t[i].arn, t[i].name, t[i].vid, "AWSCURRENT", t[i].value);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		expect_identity(t[i].name, NULL, t[i].arn, t[i].name, t[i].vid, t[i].value);
		expect_identity(t[i].name, t[i].vid, t[i].arn, t[i].name, t[i].vid, t[i].value);
		one_pass();
	}
	/* By full ARN and by partial ARN (the ARN without "-XXXXXX"), once cached. */
	expect_identity(PFX "app/db-AbCdEf", NULL, PFX "app/db-AbCdEf", "app/db", UUID1, "v-usual");
	expect_identity(PFX "app/db", NULL, PFX "app/db-AbCdEf", "app/db", UUID1, "v-usual");
	expect_identity("arn:aws-cn:secretsmanager:cn-north-1:210987654321:secret:app/cn-Q1w2E3",
	    NULL, "arn:aws-cn:secretsmanager:cn-north-1:210987654321:secret:app/cn-Q1w2E3",
	    "app/cn", "A1B2C3D4-0000-4000-8000-ABCDEF012345", "v-cn");
	/* A VersionId differing only in case is another version. */
	{
		struct backend_query q = { .secret_id = "app/db",
		    .version_id = "3C7D9A52-1F0B-4E8A-9D2C-5B6E7F8A9B0C" };
		struct shared s;

		memset(&s, 0, sizeof(s));
		assert_int_equal(cache_get_shared(T.cache, &q, 0, render, on_shared, &s), 0);
	}
	assert_int_equal(cache_get_stats(T.cache)->secrets, sizeof(t) / sizeof(t[0]));
}

static void
test_shared_prefix_outlives_its_secrets(void **state)
{
	(void)state;
	/* max_versions 1: each new secret evicts the last one, and with it the
	 * prefix's previous holder; the prefix must stay right for the newcomer. */
	fake_put(T.fake, PFX "one-AAAAAA", "one", UUID1, "AWSCURRENT", "1");
	fake_put(T.fake, PFX "two-BBBBBB", "two", UUID1, "AWSCURRENT", "2");
	fake_put(T.fake, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:three-CCCCCC", "three",
	    UUID1, "AWSCURRENT", "3");
	expect_identity("one", NULL, PFX "one-AAAAAA", "one", UUID1, "1");
	expect_identity("two", NULL, PFX "two-BBBBBB", "two", UUID1, "2");
	assert_int_equal(cache_get_stats(T.cache)->secrets, 1);
	expect_identity("three", NULL,
	    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:three-CCCCCC", "three", UUID1,
	    "3");
	expect_identity("one", NULL, PFX "one-AAAAAA", "one", UUID1, "1");
	assert_int_equal(T.fake->calls, 4);
}

static void
test_many_secrets_index(void **state)
{
	char name[32], arn[128], value[16];

	(void)state;
	/* Enough to grow the index several times (1024 buckets, two a bucket),
	 * then to shrink the cache back; every one still found by name and ARN. */
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "bulk/%05d", i);
		snprintf(arn, sizeof(arn), PFX "%s-X%05d", name, i);
		snprintf(value, sizeof(value), "v%d", i);
		fake_clear(T.fake);
		fake_put(T.fake, arn, name, UUID1, "AWSCURRENT", value);
		assert_true(get(name, NULL, NULL).ok);
	}
	assert_int_equal(cache_get_stats(T.cache)->secrets, 5000);
	for (int i = 0; i < 5000; i += 7) {
		struct backend_query q = { .secret_id = name };
		struct shared s;

		snprintf(name, sizeof(name), "bulk/%05d", i);
		memset(&s, 0, sizeof(s));
		assert_int_equal(cache_get_shared(T.cache, &q, 0, render, on_shared, &s), 1);
		snprintf(value, sizeof(value), "|v%d", i);
		assert_non_null(strstr(s.text, value));
		cache_body_release(s.body);
		snprintf(arn, sizeof(arn), PFX "%s-X%05d", name, i);
		q.secret_id = arn;
		memset(&s, 0, sizeof(s));
		assert_int_equal(cache_get_shared(T.cache, &q, 0, render, on_shared, &s), 1);
		assert_non_null(strstr(s.text, value));
		cache_body_release(s.body);
	}
	assert_int_equal(T.fake->calls, 5000);
	cache_set_options(T.cache, &(struct cache_options){ .ttl_s = 300, .max_versions = 10,
	    .max_bytes = 64u << 20 });
	assert_int_equal(cache_get_stats(T.cache)->secrets, 10);
	expect_identity("bulk/04999", NULL, PFX "bulk/04999-X04999", "bulk/04999", UUID1, "v4999");
}

static void
test_lookups_see_newcomers(void **state)
{
	struct shared s;

	(void)state;
	/* Names may hold '-': "foo-abcdef" is also how a partial ARN of a secret
	 * named "foo-abcdef" ends. An id answered once must be answered afresh
	 * once a secret that answers it better is cached. */
	fake_put(T.fake, PFX "foo-abcdef", "foo", UUID1, "AWSCURRENT", "old");
	fake_put(T.fake, PFX "foo-abcdef-ghijkl", "foo-abcdef", UUID2, "AWSCURRENT", "new");
	assert_string_equal(get(PFX "foo-abcdef", NULL, NULL).name, "foo");
	s = get_shared(PFX "foo-abcdef", NULL, NULL);
	assert_string_equal(s.name, "foo");
	cache_body_release(s.body);
	assert_string_equal(get("foo-abcdef", NULL, NULL).name, "foo-abcdef");
	s = get_shared(PFX "foo-abcdef", NULL, NULL);
	assert_string_equal(s.name, "foo-abcdef");	/* the partial ARN of the newcomer */
	cache_body_release(s.body);
	s = get_shared(PFX "foo-abcdef-ghijkl", NULL, NULL);
	assert_string_equal(s.name, "foo-abcdef");
	cache_body_release(s.body);
	s = get_shared("foo", NULL, NULL);
	assert_string_equal(s.name, "foo");
	cache_body_release(s.body);
}

/* ---- big bodies: pooled blocks ----------------------------------------------------------- */

#define BIG_BODY	(40u * 1024)	/* above BODY_POOL_MIN: a block of its own */

/* render(), padded with 'x' to BIG_BODY bytes. */
static size_t
render_big(const struct backend_value *v, uint8_t *out, size_t cap)
{
	size_t n = render(v, NULL, 0);

	if (out == NULL || cap < BIG_BODY)
		return BIG_BODY;
	assert_int_equal(render(v, out, cap), n);
	memset(out + n, 'x', BIG_BODY - n);
	return BIG_BODY;
}

static struct cache_body *
get_big(const uint8_t **data)
{
	struct backend_query q = { .secret_id = "app/db" };
	struct shared s;
	size_t len;

	memset(&s, 0, sizeof(s));
	assert_int_equal(cache_get_shared(T.cache, &q, 0, render_big, on_shared, &s), 1);
	*data = cache_body_data(s.body, &len);
	assert_int_equal(len, BIG_BODY);
	assert_memory_equal(*data, PFX "app/db-AbCdEf|app/db|", strlen(PFX) + 15);
	return s.body;
}

static bool
all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

static void
test_big_bodies_reuse_wiped_blocks(void **state)
{
	struct timespec t0, t1;
	const uint8_t *d1, *d2;
	struct cache_body *b;
	double ms;

	(void)state;
	fake_put(T.fake, PFX "app/db-AbCdEf", "app/db", UUID1, "AWSCURRENT", "hunter2");
	assert_true(get("app/db", NULL, NULL).ok);
	one_pass();
	assert_int_equal(body_pool_held(), 0);
	b = get_big(&d1);
	cache_body_release(b);
	one_pass();		/* the pass's reference goes: the block is pooled, wiped */
	assert_int_equal(body_pool_held(), 1);
	assert_true(all_zero(d1, BIG_BODY));	/* still allocated: held by the pool */
	b = get_big(&d2);	/* the next pass renders into the same block */
	assert_ptr_equal(d1, d2);
	assert_int_equal(body_pool_held(), 0);
	assert_int_equal(T.renders, 2);
	cache_body_release(b);
	one_pass();
	assert_int_equal(body_pool_held(), 1);
	/* Idle: the pool lets go of its blocks (after BODY_POOL_IDLE_MS, at most
	 * twice that), and then nothing keeps the loop alive. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(event_base_dispatch(T.base), 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	assert_int_equal(body_pool_held(), 0);
	assert_true(ms >= BODY_POOL_IDLE_MS * 0.9);
	assert_true(ms < BODY_POOL_IDLE_MS * 2 + 500);
}

/* ---- body_linger_ms --------------------------------------------------------------------- */

static double
elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void
test_linger_reuses_until_old_or_key_closed(void **state)
{
	const struct timespec nap = { 0, 200 * 1000 };
	struct timespec t0;
	struct shared a, b;
	unsigned renders;

	(void)state;
	fake_put(T.fake, PFX "app/db-AbCdEf", "app/db", UUID1, "AWSCURRENT", "hunter2");
	fake_put(T.fake, PFX "app/other-AbCdEf", "app/other", UUID2, "AWSCURRENT", "other");
	assert_true(get("app/db", NULL, NULL).ok);
	assert_true(get("app/other", NULL, NULL).ok);
	one_pass();
	a = get_shared("app/db", NULL, NULL);
	assert_int_equal(T.renders, 1);
	one_pass();
	b = get_shared("app/db", NULL, NULL);	/* a later pass: the same body */
	assert_int_equal(T.renders, 1);
	assert_ptr_equal(a.body, b.body);
	cache_body_release(a.body);
	cache_body_release(b.body);
	/* No unseal since: the key closes a few ms later (1-2 periods of its 1 ms
	 * timer, on libevent's coarse clock) and takes the body with it, long
	 * before its 50 ms are up. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(event_base_dispatch(T.base), 1);
	assert_true(elapsed_ms(&t0) < 45);
	a = get_shared("app/db", NULL, NULL);
	assert_int_equal(T.renders, 2);
	cache_body_release(a.body);
	/* Unseals of another secret keep the key open: the body is then made
	 * again once 50 ms old, i.e. about 6 times over 300 ms. */
	renders = T.renders;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (elapsed_ms(&t0) < 300) {
		assert_true(get("app/other", NULL, NULL).ok);
		a = get_shared("app/db", NULL, NULL);
		cache_body_release(a.body);
		one_pass();
		nanosleep(&nap, NULL);
	}
	assert_true(T.renders - renders >= 2);	/* 6 unless the machine stalls us */
	assert_true(T.renders - renders <= 12);	/* not one per pass (about a thousand) */
}

/* ---- the key's linger timer ----------------------------------------------------------------- */

static void
test_idle_loop_is_not_kept_alive(void **state)
{
	struct timespec t0, t1;
	struct shared s;
	double ms;

	(void)state;
	fake_put(T.fake, PFX "app/db-AbCdEf", "app/db", UUID1, "AWSCURRENT", "hunter2");
	assert_true(get("app/db", NULL, NULL).ok);
	s = get_shared("app/db", NULL, NULL);
	cache_body_release(s.body);
	/* The key was just used: its timer is pending, and once idle it closes
	 * the key and lets the loop end, within a few milliseconds. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(event_base_dispatch(T.base), 1);	/* 1: nothing left to wait for */
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	assert_true(ms >= 0.9);
	assert_true(ms < 500);
	/* And the cache still works after the key closed. */
	s = get_shared("app/db", NULL, NULL);
	assert_string_equal(s.text, PFX "app/db-AbCdEf|app/db|" UUID1 "|AWSCURRENT|hunter2");
	cache_body_release(s.body);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_one_render_per_pass, setup, teardown),
		cmocka_unit_test_setup_teardown(test_misses_and_refreshes_are_left_to_cache_get,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_relabelled_version_renders_again_in_the_pass,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_evicted_version_not_confused_in_the_pass,
		    setup_one_version, teardown),
		cmocka_unit_test_setup_teardown(test_identities_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_prefix_outlives_its_secrets,
		    setup_one_version, teardown),
		cmocka_unit_test_setup_teardown(test_many_secrets_index, setup_large, teardown),
		cmocka_unit_test_setup_teardown(test_lookups_see_newcomers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_loop_is_not_kept_alive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_bodies_reuse_wiped_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_linger_reuses_until_old_or_key_closed,
		    setup_linger, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
