/*
 * test_cache: the sealed cache (agent/cache.c) against the fake backend
 * (fake_backend.h) on a real event_base. The fake answers from an in-test
 * table after a chosen delay, counts its calls, can fail with any status, and
 * wipes the value it lent once its callback returns, so a cache that kept a
 * pointer to it instead of sealing a copy would read zeros.
 *
 * Time: the cache reads CLOCK_MONOTONIC_COARSE. This program defines
 * clock_gettime() itself (the agent library is linked statically, so its
 * calls bind here) and adds an offset to the monotonic clocks, so TTLs are
 * tested by moving time forward rather than sleeping.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <sodium.h>

#include "backend.h"
#include "cache.h"
#include "fake_backend.h"
#include "seal.h"

#define ARN_PREFIX	"arn:aws:secretsmanager:us-east-1:123456789012:secret:"
#define ARN(name, sfx)	ARN_PREFIX name "-" sfx
#define V1		"11111111-1111-1111-1111-111111111111"
#define V2		"22222222-2222-2222-2222-222222222222"
#define V3		"33333333-3333-3333-3333-333333333333"
#define MAX_WAITERS	256

/* ---- a clock that tests can move forward --------------------------------------------- */

static uint64_t clock_offset_ms;

int
clock_gettime(clockid_t id, struct timespec *ts)
{
	uint64_t ns;

	/* The raw system call: no libc symbol to recurse into. */
	if (syscall(SYS_clock_gettime, id, ts) != 0)
		return -1;
	if (clock_offset_ms != 0 && (id == CLOCK_MONOTONIC || id == CLOCK_MONOTONIC_COARSE ||
	    id == CLOCK_MONOTONIC_RAW || id == CLOCK_BOOTTIME)) {
		ns = (uint64_t)ts->tv_nsec + (clock_offset_ms % 1000u) * 1000000u;
		ts->tv_sec += (time_t)(clock_offset_ms / 1000u + ns / 1000000000u);
		ts->tv_nsec = (long)(ns % 1000000000u);
	}
	return 0;
}

static void
advance_ms(uint64_t ms)
{
	clock_offset_ms += ms;
}

/* ---- fixture and calls -------------------------------------------------------------------- */

struct answer {
	int calls;
	bool sync;			/* the callback ran before cache_get returned */
	bool ok;
	enum proto_status status;
	uint8_t *value;
	size_t len;
	bool is_binary;
	char arn[160];
	char name[64];
	char vid[72];
	char stages[PROTO_MAX_STAGES][32];
	size_t stage_count;
};

struct t {
	struct event_base *base;
	struct fake *fake;
	struct cache *cache;
	bool in_get;
	struct answer answers[MAX_WAITERS];
};

static struct t T;

static void
on_answer(void *arg, const struct backend_value *value, bool stale,
    const struct backend_error *error)
{
	struct answer *a = arg;

	assert_false(stale);	/* these tests never allow stale serving (max_stale 0) */
	assert_true((value == NULL) != (error == NULL));
	a->calls++;
	a->sync = T.in_get;
	a->ok = value != NULL;
	free(a->value);
	a->value = NULL;
	if (error != NULL) {
		assert_int_not_equal(error->status, PROTO_STATUS_OK);
		a->status = error->status;
		return;
	}
	/* The cache hands out its own (unsealed) copy, never the backend's buffer
	 * after the fetch callback, and never a buffer it keeps in the clear. */
	a->status = PROTO_STATUS_OK;
	a->value = malloc(value->len + 1);
	assert_non_null(a->value);
	memcpy(a->value, value->data, value->len);
	a->value[value->len] = '\0';
	a->len = value->len;
	a->is_binary = value->is_binary;
	snprintf(a->arn, sizeof(a->arn), "%s", value->arn);
	snprintf(a->name, sizeof(a->name), "%s", value->name);
	snprintf(a->vid, sizeof(a->vid), "%s", value->version_id);
	assert_true(value->stage_count <= PROTO_MAX_STAGES);
	a->stage_count = value->stage_count;
	for (size_t i = 0; i < value->stage_count; i++)
		snprintf(a->stages[i], sizeof(a->stages[i]), "%s", value->stages[i]);
}

static void
start(unsigned ttl, unsigned negative_ttl, size_t max_versions, size_t max_bytes)
{
	struct cache_options o = { .ttl_s = ttl, .negative_ttl_s = negative_ttl,
	    .max_versions = max_versions, .max_bytes = max_bytes };
	char err[256] = "";

	memset(&T, 0, sizeof(T));
	T.base = event_base_new();
	assert_non_null(T.base);
	T.fake = fake_new(T.base);
	T.cache = cache_new(T.base, &T.fake->b, &o, err, sizeof(err));
	if (T.cache == NULL)
		fail_msg("cache_new: %s", err);
}

static void
start_default(void)
{
	start(300, 10, 1000, 64u << 20);
}

static void
stop(void)
{
	cache_free(T.cache);
	if (T.fake != NULL)
		backend_free(&T.fake->b);
	if (T.base != NULL)
		event_base_free(T.base);
	for (size_t i = 0; i < MAX_WAITERS; i++)
		free(T.answers[i].value);
	memset(&T, 0, sizeof(T));
}

/* Also after a failed assertion, so ASan reports only real leaks. */
static int
teardown(void **state)
{
	(void)state;
	stop();
	return 0;
}

static void
reset_answer(struct answer *a)
{
	free(a->value);
	memset(a, 0, sizeof(*a));
}

/* Starts a GET into answers[slot]; does not run the loop. */
static void
get_async(size_t slot, const char *id, const char *stage, const char *vid)
{
	struct backend_query q = { .secret_id = id, .version_stage = stage, .version_id = vid };

	assert_true(slot < MAX_WAITERS);
	reset_answer(&T.answers[slot]);
	T.in_get = true;
	cache_get(T.cache, &q, 0, on_answer, &T.answers[slot]);
	T.in_get = false;
}

static void
run_loop(void)
{
	/* Until the fake has answered everything asked of it, then one more pass
	 * (the key closes); not "until the loop is empty", so a timer of the
	 * cache's own cannot keep a test waiting. */
	while (!TAILQ_EMPTY(&T.fake->pending))
		assert_true(event_base_loop(T.base, EVLOOP_ONCE) >= 0);
	assert_true(event_base_loop(T.base, EVLOOP_NONBLOCK) >= 0);
}

/* One GET, run to completion; returns its answer. */
static struct answer *
get(const char *id, const char *stage, const char *vid)
{
	get_async(0, id, stage, vid);
	run_loop();
	assert_int_equal(T.answers[0].calls, 1);
	return &T.answers[0];
}

static const struct cache_stats *
stats(void)
{
	return cache_get_stats(T.cache);
}

/* Asserts a successful answer with this value, and how many backend calls it took. */
static void
want_value(const char *id, const char *stage, const char *vid, const char *want,
    unsigned backend_calls)
{
	unsigned before = T.fake->calls;
	struct answer *a = get(id, stage, vid);

	if (!a->ok)
		fail_msg("GET %s stage=%s vid=%s: status %d, expected \"%s\"", id,
		    stage ? stage : "-", vid ? vid : "-", a->status, want);
	assert_string_equal((const char *)a->value, want);
	assert_int_equal(a->len, strlen(want));
	assert_int_equal(T.fake->calls - before, backend_calls);
	/* A hit is answered before cache_get returns, a fetch never is. */
	assert_true(a->sync == (backend_calls == 0));
}

static void
want_status(const char *id, const char *stage, const char *vid, enum proto_status want,
    unsigned backend_calls)
{
	unsigned before = T.fake->calls;
	struct answer *a = get(id, stage, vid);

	assert_false(a->ok);
	assert_int_equal(a->status, want);
	assert_int_equal(T.fake->calls - before, backend_calls);
	assert_true(a->sync == (backend_calls == 0));
}

static bool
has_label(const struct answer *a, const char *label)
{
	for (size_t i = 0; i < a->stage_count; i++)
		if (strcmp(a->stages[i], label) == 0)
			return true;
	return false;
}

/* app/db: V1 previous, V2 current (+blue), V3 pending. */
static void
put_db(void)
{
	fake_put(T.fake, ARN("app/db", "AbCdEf"), "app/db", V1, "AWSPREVIOUS", "old-pw");
	fake_put(T.fake, ARN("app/db", "AbCdEf"), "app/db", V2, "AWSCURRENT,blue", "new-pw");
	fake_put(T.fake, ARN("app/db", "AbCdEf"), "app/db", V3, "AWSPENDING", "pending-pw");
}

/* ---- tests ------------------------------------------------------------------------------- */

/* ---- batch refresh (BatchGetSecretValue) ------------------------------------------------- */

#define BATCH_SECRETS	25

/* The fake with a batch read; refresh-ahead at 80 % of a 10 s ttl, no jitter. */
static void
start_batch(bool batch_refresh)
{
	struct cache_options o = { .ttl_s = 10, .negative_ttl_s = 0, .max_versions = 1000,
	    .max_bytes = 64u << 20, .refresh_ahead_pct = 80, .refresh_idle_s = 900,
	    .max_stale_s = 3600, .max_refreshes = 16, .batch_refresh = batch_refresh };

	start_default();
	fake_enable_batch_read(T.fake);
	cache_set_options(T.cache, &o);
	for (int i = 0; i < BATCH_SECRETS; i++) {
		char arn[128], name[32], value[32];

		snprintf(name, sizeof(name), "b/%02d", i);
		snprintf(arn, sizeof(arn), ARN_PREFIX "%s-AbCd%02d", name, i);
		snprintf(value, sizeof(value), "v%02d", i);
		fake_put(T.fake, arn, name, V1, "AWSCURRENT", value);
		want_value(name, NULL, NULL, value, 1);
	}
}

/* Past the refresh point: one tick (libevent reads the same moved clock), its calls
 * answered. */
static void
refresh_round(void)
{
	advance_ms(8001);
	for (int i = 0; i < 100 && TAILQ_EMPTY(&T.fake->pending); i++)
		assert_true(event_base_loop(T.base, EVLOOP_ONCE) >= 0);
	run_loop();
}

static void
test_batch_refresh_twenty_a_call(void **state)
{
	(void)state;
	start_batch(true);
	refresh_round();
	/* 25 due secrets: one call of 20 and one of 5; held versions cost nothing more. */
	assert_int_equal(T.fake->batches, 2);
	assert_int_equal(T.fake->batch_ids, BATCH_SECRETS);
	assert_int_equal(T.fake->describes, 0);
	assert_int_equal(T.fake->calls, BATCH_SECRETS);
	assert_int_equal(stats()->refresh_batches, 2);
	assert_int_equal(stats()->batch_refreshed, BATCH_SECRETS);
	want_value("b/03", NULL, NULL, "v03", 0);
	/* A new current version comes with the answer: stored, no GetSecretValue. */
	fake_stages(T.fake, "b/03", V1, "");
	fake_put(T.fake, ARN_PREFIX "b/03-AbCd03", "b/03", V2, "AWSCURRENT", "v03-new");
	refresh_round();
	assert_int_equal(T.fake->batches, 4);
	assert_int_equal(T.fake->calls, BATCH_SECRETS);
	want_value("b/03", NULL, NULL, "v03-new", 0);
	/* batch_refresh off: one DescribeSecret each, as before. */
	stop();
	start_batch(false);
	refresh_round();
	assert_int_equal(T.fake->batches, 0);
	assert_int_equal(T.fake->describes, 16);	/* max_refreshes a tick */
}

static void
test_batch_per_id_errors_and_whole_failures(void **state)
{
	unsigned batches;

	(void)state;
	start_batch(true);
	/* One secret gone upstream: its refresh says "not found", it alone is dropped. */
	fake_remove_secret(T.fake, "b/07");
	refresh_round();
	assert_int_equal(stats()->refresh_errors, 1);
	assert_int_equal(stats()->breaker_opens, 0);
	want_value("b/06", NULL, NULL, "v06", 0);
	want_value("b/08", NULL, NULL, "v08", 0);
	want_status("b/07", NULL, NULL, PROTO_STATUS_NOT_FOUND, 1);
	/* Every call fails as a whole: 24 secrets back off, the breaker counts two calls
	 * (fewer than the 5 that open it), and the held values are served. */
	T.fake->batch_fail = PROTO_STATUS_UPSTREAM_UNAVAILABLE;
	refresh_round();
	assert_int_equal(stats()->refresh_errors, 1 + BATCH_SECRETS - 1);
	assert_int_equal(stats()->backoffs, BATCH_SECRETS - 1);
	assert_int_equal(stats()->breaker_opens, 0);
	assert_int_equal(T.fake->describes, 0);
	/* Refused as a whole (no permission for it): DescribeSecret from then on. */
	T.fake->batch_fail = PROTO_STATUS_ACCESS_DENIED;
	advance_ms(120 * 1000);		/* past every backoff */
	refresh_round();
	assert_int_equal(stats()->breaker_opens, 0);
	batches = T.fake->batches;
	/* Room for every due secret in one tick: with 16 a tick, which secret waits for
	 * a later tick depends on the refresh jitter, and a secret refreshed in one
	 * round is due again in the next (8,001 ms > 80 % of 10 s). */
	{
		struct cache_options o = { .ttl_s = 10, .negative_ttl_s = 0, .max_versions = 1000,
		    .max_bytes = 64u << 20, .refresh_ahead_pct = 80, .refresh_idle_s = 900,
		    .max_stale_s = 3600, .max_refreshes = 64, .batch_refresh = true };

		cache_set_options(T.cache, &o);
	}
	refresh_round();
	assert_true(T.fake->describes >= BATCH_SECRETS - 1);
	assert_int_equal(T.fake->batches, batches);
	want_value("b/08", NULL, NULL, "v08", 0);
}

static void
test_hit_after_miss(void **state)
{
	struct answer *a;

	(void)state;
	start_default();
	put_db();
	a = get("app/db", NULL, NULL);
	assert_true(a->ok);
	assert_false(a->sync);
	assert_string_equal((const char *)a->value, "new-pw");
	assert_string_equal(a->arn, ARN("app/db", "AbCdEf"));
	assert_string_equal(a->name, "app/db");
	assert_string_equal(a->vid, V2);
	assert_int_equal(T.fake->calls, 1);
	assert_int_equal(stats()->misses, 1);
	assert_int_equal(stats()->fetches, 1);
	assert_int_equal(stats()->hits, 0);

	/* The second read is answered synchronously, from the sealed copy. */
	a = get("app/db", NULL, NULL);
	assert_true(a->ok);
	assert_true(a->sync);
	assert_string_equal((const char *)a->value, "new-pw");
	assert_string_equal(a->arn, ARN("app/db", "AbCdEf"));
	assert_string_equal(a->name, "app/db");
	assert_string_equal(a->vid, V2);
	assert_int_equal(a->stage_count, 2);
	assert_true(has_label(a, "AWSCURRENT"));
	assert_true(has_label(a, "blue"));
	assert_int_equal(T.fake->calls, 1);
	assert_int_equal(stats()->hits, 1);
	assert_int_equal(stats()->versions, 1);
	assert_int_equal(stats()->secrets, 1);
	assert_int_equal(stats()->in_flight, 0);
	/* Stored sealed: exactly one blob of the padded size, not the plaintext. */
	assert_int_equal(stats()->sealed_bytes, seal_sealed_size(strlen("new-pw")));
	assert_true(stats()->sealed_bytes > strlen("new-pw") + SEAL_OVERHEAD);
	stop();
}

static void
test_canonical_ids_share_one_entry(void **state)
{
	(void)state;
	start_default();
	put_db();
	want_value("app/db", NULL, NULL, "new-pw", 1);
	want_value(ARN("app/db", "AbCdEf"), NULL, NULL, "new-pw", 0);
	want_value(ARN_PREFIX "app/db", NULL, NULL, "new-pw", 0);
	assert_int_equal(stats()->secrets, 1);
	assert_int_equal(stats()->versions, 1);

	/* And the other way round: first by full ARN, then name and partial ARN. */
	fake_put(T.fake, ARN("app/api", "Zz9Yy8"), "app/api", V1, "AWSCURRENT", "api-key");
	want_value(ARN("app/api", "Zz9Yy8"), NULL, NULL, "api-key", 1);
	want_value("app/api", NULL, NULL, "api-key", 0);
	want_value(ARN_PREFIX "app/api", "AWSCURRENT", NULL, "api-key", 0);
	assert_int_equal(stats()->secrets, 2);

	/* An ARN of another account or suffix is not this entry. */
	want_status("arn:aws:secretsmanager:us-east-1:999999999999:secret:app/db-AbCdEf",
	    NULL, NULL, PROTO_STATUS_NOT_FOUND, 1);
	want_status(ARN("app/db", "XXXXXX"), NULL, NULL, PROTO_STATUS_NOT_FOUND, 1);
	/* Nor is a malformed ARN or a name's prefix. */
	want_status("arn:aws:secretsmanager:app/db", NULL, NULL, PROTO_STATUS_NOT_FOUND, 1);
	want_status("app/d", NULL, NULL, PROTO_STATUS_NOT_FOUND, 1);
	stop();
}

static void
test_no_stage_means_awscurrent(void **state)
{
	(void)state;
	start_default();
	put_db();
	want_value("app/db", NULL, NULL, "new-pw", 1);
	/* The fetch asked for AWSCURRENT explicitly. */
	assert_true(T.fake->last_had_stage);
	assert_string_equal(T.fake->last_stage, "AWSCURRENT");
	want_value("app/db", "AWSCURRENT", NULL, "new-pw", 0);
	/* Every label the fetched version carries was learnt with it. */
	want_value("app/db", "blue", NULL, "new-pw", 0);
	want_value("app/db", "AWSPREVIOUS", NULL, "old-pw", 1);
	assert_int_equal(stats()->versions, 2);

	/* Reverse order on a fresh secret: explicit AWSCURRENT first. */
	fake_put(T.fake, ARN("app/x", "Qw12Er"), "app/x", V1, "AWSCURRENT", "x-value");
	want_value("app/x", "AWSCURRENT", NULL, "x-value", 1);
	want_value("app/x", NULL, NULL, "x-value", 0);
	stop();
}

static void
test_version_id_reads_follow_ttl(void **state)
{
	struct answer *a;

	(void)state;
	start(1, 10, 1000, 64u << 20);
	put_db();
	want_value("app/db", NULL, V1, "old-pw", 1);
	want_value("app/db", NULL, V1, "old-pw", 0);
	want_value(ARN("app/db", "AbCdEf"), NULL, V1, "old-pw", 0);
	/* The value of a VersionId never changes, but the labels it bears and
	 * whether the secret exists do: past the ttl, they are asked again. */
	fake_stages(T.fake, "app/db", V1, "");
	advance_ms(1100);
	want_value("app/db", NULL, V1, "old-pw", 1);
	a = &T.answers[0];
	assert_int_equal(a->stage_count, 0);
	want_value("app/db", NULL, V1, "old-pw", 0);
	/* Labels are re-checked after the ttl too. */
	want_value("app/db", NULL, NULL, "new-pw", 1);
	assert_int_equal(stats()->versions, 2);
	/* Deleted upstream: past the ttl, a read by VersionId says so. */
	fake_remove_secret(T.fake, "app/db");
	advance_ms(1100);
	want_status("app/db", NULL, V1, PROTO_STATUS_NOT_FOUND, 1);
	assert_int_equal(stats()->versions, 1);
	want_status("app/db", NULL, NULL, PROTO_STATUS_NOT_FOUND, 1);
	assert_int_equal(stats()->versions, 0);
	stop();
}

/*
 * Issue 9 s3: a failure about one secret (a value the agent cannot accept, a
 * KMS failure) backs off that secret and never opens the breaker; the same
 * status from the upstream as a whole does.
 */
static void
test_secret_failures_back_off_that_secret_only(void **state)
{
	(void)state;
	start_default();
	put_db();
	fake_put(T.fake, ARN("app/web", "GhIjKl"), "app/web", V1, "AWSCURRENT", "web-pw");
	T.fake->fail = PROTO_STATUS_UPSTREAM_UNAVAILABLE;
	T.fake->fail_about_secret = true;
	for (int i = 0; i < 10; i++) {
		want_status("app/db", NULL, NULL, PROTO_STATUS_UPSTREAM_UNAVAILABLE, 1);
		/* Backed off: the last error, from memory, with no upstream call. */
		want_status("app/db", NULL, NULL, PROTO_STATUS_UPSTREAM_UNAVAILABLE, 0);
		advance_ms(61000);	/* past the longest backoff */
	}
	assert_int_equal(stats()->breaker_opens, 0);
	assert_true(stats()->backoff_hits >= 10);
	/* Another secret is read as usual. */
	T.fake->fail = PROTO_STATUS_OK;
	want_value("app/web", NULL, NULL, "web-pw", 1);
	/* Access denied to one secret backs that secret off too. */
	T.fake->fail = PROTO_STATUS_ACCESS_DENIED;
	want_status("app/db", "blue", NULL, PROTO_STATUS_ACCESS_DENIED, 1);
	want_status("app/db", "blue", NULL, PROTO_STATUS_ACCESS_DENIED, 0);
	assert_int_equal(stats()->breaker_opens, 0);
	/* The same status about the upstream as a whole opens the breaker. */
	T.fake->fail = PROTO_STATUS_UPSTREAM_UNAVAILABLE;
	T.fake->fail_about_secret = false;
	for (int i = 0; i < 5; i++)
		want_status("app/db", "AWSPENDING", NULL, PROTO_STATUS_UPSTREAM_UNAVAILABLE, 1);
	assert_int_equal(stats()->breaker_opens, 1);
	stop();
}

struct described_answers {
	unsigned ok, errors, last_versions;
	enum proto_status last_status;
};

static void
on_described(void *arg, const struct backend_description *d, const struct backend_error *error)
{
	struct described_answers *a = arg;

	if (d != NULL) {
		a->ok++;
		a->last_versions = (unsigned)d->version_count;
		assert_string_equal(d->name, "app/db");
	} else {
		a->errors++;
		a->last_status = error->status;
	}
}

/* Issue 9 s2: DESCRIBE is remembered for ttl and concurrent ones share one call. */
static void
test_describe_remembered_and_single_flighted(void **state)
{
	struct described_answers a = { 0 };

	(void)state;
	start(2, 10, 1000, 64u << 20);
	put_db();
	for (int i = 0; i < 300; i++)
		cache_describe(T.cache, "app/db", on_described, &a);
	assert_int_equal(a.ok, 0);	/* none before the upstream answered */
	run_loop();
	assert_int_equal(a.ok, 300);
	assert_int_equal(a.last_versions, 3);
	assert_int_equal(T.fake->describes, 1);
	/* Within ttl: answered at once, from memory. */
	advance_ms(1500);
	cache_describe(T.cache, "app/db", on_described, &a);
	assert_int_equal(a.ok, 301);
	assert_int_equal(T.fake->describes, 1);
	assert_int_equal(stats()->describe_hits, 1);
	assert_int_equal(stats()->describe_joins, 299);
	/* Past it: asked again, and sees the change. */
	fake_put(T.fake, ARN("app/db", "AbCdEf"), "app/db", "v4", "AWSCURRENT", "rotated-pw");
	advance_ms(600);
	cache_describe(T.cache, "app/db", on_described, &a);
	run_loop();
	assert_int_equal(T.fake->describes, 2);
	assert_int_equal(a.last_versions, 4);
	/* "Not found" is remembered for negative_ttl. */
	cache_describe(T.cache, "nope", on_described, &a);
	run_loop();
	cache_describe(T.cache, "nope", on_described, &a);
	assert_int_equal(a.errors, 2);
	assert_int_equal(a.last_status, PROTO_STATUS_NOT_FOUND);
	assert_int_equal(T.fake->describes, 3);
	stop();
}

static void
test_label_move_seen_after_ttl(void **state)
{
	struct answer *a;

	(void)state;
	start(1, 10, 1000, 64u << 20);
	put_db();
	want_value("app/db", NULL, NULL, "new-pw", 1);
	/* Rotation: a new version becomes current, V2 previous, V1 unlabelled. */
	fake_put(T.fake, ARN("app/db", "AbCdEf"), "app/db", "v4", "AWSCURRENT", "rotated-pw");
	fake_stages(T.fake, "app/db", V2, "AWSPREVIOUS,blue");
	fake_stages(T.fake, "app/db", V1, "");
	/* Within the ttl the cache still answers with what it trusted. */
	advance_ms(500);
	want_value("app/db", NULL, NULL, "new-pw", 0);
	advance_ms(600);
	/* Past it, the move is seen. */
	want_value("app/db", NULL, NULL, "rotated-pw", 1);
	a = &T.answers[0];
	assert_string_equal(a->vid, "v4");
	assert_int_equal(a->stage_count, 1);
	want_value("app/db", "AWSCURRENT", NULL, "rotated-pw", 0);
	/* AWSPREVIOUS now names the old current version. */
	want_value("app/db", "AWSPREVIOUS", NULL, "new-pw", 1);
	a = &T.answers[0];
	assert_string_equal(a->vid, V2);
	want_value("app/db", "AWSPREVIOUS", NULL, "new-pw", 0);
	/* The old version's value was not fetched again: it is the same VersionId. */
	assert_int_equal(stats()->versions, 2);
	stop();
}

static void
test_label_move_one_real_second(void **state)
{
	struct timespec ts = { .tv_sec = 1, .tv_nsec = 100 * 1000 * 1000 };

	/* The same as above on the real clock, once, without moving time. */
	(void)state;
	start(1, 10, 1000, 64u << 20);
	put_db();
	want_value("app/db", NULL, NULL, "new-pw", 1);
	fake_put(T.fake, ARN("app/db", "AbCdEf"), "app/db", "v4", "AWSCURRENT", "rotated-pw");
	fake_stages(T.fake, "app/db", V2, "AWSPREVIOUS,blue");
	want_value("app/db", NULL, NULL, "new-pw", 0);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	want_value("app/db", NULL, NULL, "rotated-pw", 1);
	stop();
}

static void
test_fetched_stages_override_stale_labels(void **state)
{
	struct answer *a;

	(void)state;
	start(1, 10, 1000, 64u << 20);
	put_db();
	want_value("app/db", NULL, NULL, "new-pw", 1);
	fake_put(T.fake, ARN("app/db", "AbCdEf"), "app/db", "v4", "AWSCURRENT", "rotated-pw");
	fake_stages(T.fake, "app/db", V2, "AWSPREVIOUS,blue");
	fake_stages(T.fake, "app/db", V1, "");
	/* Within the ttl of AWSCURRENT -> V2, a fetch of V2 says it is AWSPREVIOUS
	 * now: the cache must not go on calling it AWSCURRENT. */
	want_value("app/db", "AWSPREVIOUS", NULL, "new-pw", 1);
	a = &T.answers[0];
	assert_false(has_label(a, "AWSCURRENT"));
	want_value("app/db", NULL, V2, "new-pw", 0);
	a = &T.answers[0];
	assert_false(has_label(a, "AWSCURRENT"));
	assert_true(has_label(a, "AWSPREVIOUS"));
	assert_true(has_label(a, "blue"));
	/* So AWSCURRENT is asked again, and the rotation is seen at once. */
	want_value("app/db", NULL, NULL, "rotated-pw", 1);
	stop();
}

static void
test_stage_and_version_id_must_match(void **state)
{
	(void)state;
	start_default();
	put_db();
	want_value("app/db", NULL, NULL, "new-pw", 1);
	want_value("app/db", NULL, V1, "old-pw", 1);
	/* V1 is held and AWSCURRENT is known to be V2: the pair does not match. */
	want_status("app/db", "AWSCURRENT", V1, PROTO_STATUS_NOT_FOUND, 1);
	/* Remembered as not found. */
	want_status("app/db", "AWSCURRENT", V1, PROTO_STATUS_NOT_FOUND, 0);
	/* Matching pairs: a hit when both are known (the V1 fetch brought its
	 * label AWSPREVIOUS), one fetch when not. */
	want_value("app/db", "AWSCURRENT", V2, "new-pw", 0);
	want_value("app/db", "AWSPREVIOUS", V1, "old-pw", 0);
	want_value("app/db", "AWSPENDING", V3, "pending-pw", 1);
	want_value("app/db", "AWSPENDING", V3, "pending-pw", 0);
	want_value("app/db", "AWSPENDING", NULL, "pending-pw", 0);
	/* AWSPENDING is known to be V3, so not V2's. */
	want_status("app/db", "AWSPENDING", V2, PROTO_STATUS_NOT_FOUND, 1);
	/* A stage the cache has not seen on a held version: asked. */
	want_status("app/db", "ORANGE", V1, PROTO_STATUS_NOT_FOUND, 1);
	stop();
}

static void
test_binary_empty_and_largest_values(void **state)
{
	uint8_t bin[300], *big;
	struct answer *a;

	(void)state;
	start_default();
	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (uint8_t)(i * 7);
	bin[3] = 0;
	fake_put_bytes(T.fake, ARN("bin", "Bb11Cc"), "bin", V1, "AWSCURRENT", bin, sizeof(bin), true);
	fake_put(T.fake, ARN("empty", "Ee22Ff"), "empty", V1, "AWSCURRENT", "");
	big = malloc(PROTO_MAX_VALUE);
	assert_non_null(big);
	randombytes_buf(big, PROTO_MAX_VALUE);
	fake_put_bytes(T.fake, ARN("big", "Gg33Hh"), "big", V1, "AWSCURRENT", big, PROTO_MAX_VALUE, true);
	for (int round = 0; round < 2; round++) {
		a = get("bin", NULL, NULL);
		assert_true(a->ok);
		assert_true(a->is_binary);
		assert_true(a->sync == (round == 1));
		assert_int_equal(a->len, sizeof(bin));
		assert_memory_equal(a->value, bin, sizeof(bin));
		a = get("empty", NULL, NULL);
		assert_true(a->ok);
		assert_false(a->is_binary);
		assert_int_equal(a->len, 0);
		a = get("big", NULL, NULL);
		assert_true(a->ok);
		assert_true(a->sync == (round == 1));
		assert_int_equal(a->len, PROTO_MAX_VALUE);
		assert_memory_equal(a->value, big, PROTO_MAX_VALUE);
	}
	assert_int_equal(T.fake->calls, 3);
	assert_int_equal(stats()->sealed_bytes, seal_sealed_size(sizeof(bin)) +
	    seal_sealed_size(0) + seal_sealed_size(PROTO_MAX_VALUE));
	free(big);
	stop();
}

static void
test_single_flight_200_waiters(void **state)
{
	(void)state;
	start_default();
	T.fake->delay.tv_usec = 5000;
	put_db();
	for (size_t i = 0; i < 200; i++)
		get_async(i, "app/db", NULL, NULL);
	assert_int_equal(T.fake->calls, 1);
	assert_int_equal(stats()->in_flight, 1);
	assert_int_equal(stats()->joins, 199);
	for (size_t i = 0; i < 200; i++)
		assert_int_equal(T.answers[i].calls, 0);
	run_loop();
	for (size_t i = 0; i < 200; i++) {
		struct answer *a = &T.answers[i];

		assert_int_equal(a->calls, 1);
		assert_true(a->ok);
		assert_false(a->sync);
		assert_string_equal((const char *)a->value, "new-pw");
		assert_string_equal(a->vid, V2);
	}
	assert_int_equal(T.fake->calls, 1);
	assert_int_equal(stats()->fetches, 1);
	assert_int_equal(stats()->joins, 199);
	assert_int_equal(stats()->misses, 200);
	assert_int_equal(stats()->in_flight, 0);
	assert_int_equal(stats()->versions, 1);
	/* Then a hit, as usual. */
	want_value("app/db", NULL, NULL, "new-pw", 0);
	stop();
}

/* cache_charge: allows while tokens last, counting what it was asked. */
struct tokens {
	unsigned left;
	unsigned asked;
};

static bool
take_token(void *arg)
{
	struct tokens *t = arg;

	t->asked++;
	if (t->left == 0)
		return false;
	t->left--;
	return true;
}

/* The upstream budget is charged only for calls the request starts: not hits, joins or negatives. */
static void
test_charge_only_upstream_calls(void **state)
{
	struct tokens tok = { .left = 2 };
	const struct cache_charge charge = { take_token, &tok, "over budget" };
	struct backend_query q = { .secret_id = "app/db" };
	unsigned calls;

	(void)state;
	start_default();
	T.fake->delay.tv_usec = 2000;
	put_db();
	for (size_t i = 0; i < 5; i++) {	/* one miss, four joins: one token */
		reset_answer(&T.answers[i]);
		cache_get_charged(T.cache, &q, 0, &charge, on_answer, &T.answers[i]);
	}
	run_loop();
	assert_int_equal(tok.asked, 1);
	for (size_t i = 0; i < 5; i++)
		assert_true(T.answers[i].ok);
	reset_answer(&T.answers[0]);	/* a hit: free */
	cache_get_charged(T.cache, &q, 0, &charge, on_answer, &T.answers[0]);
	assert_true(T.answers[0].ok && T.answers[0].calls == 1);
	assert_int_equal(tok.asked, 1);
	q.secret_id = "app/missing";	/* a miss: the second token; then remembered: free */
	for (int round = 0; round < 2; round++) {
		reset_answer(&T.answers[0]);
		cache_get_charged(T.cache, &q, 0, &charge, on_answer, &T.answers[0]);
		run_loop();
		assert_int_equal(T.answers[0].status, PROTO_STATUS_NOT_FOUND);
	}
	assert_int_equal(tok.asked, 2);
	q.secret_id = "app/db";		/* a forced refresh over budget: refused, no call */
	reset_answer(&T.answers[0]);
	calls = T.fake->calls;
	cache_get_charged(T.cache, &q, CACHE_FORCE_REFRESH, &charge, on_answer, &T.answers[0]);
	assert_int_equal(T.answers[0].calls, 1);
	assert_int_equal(T.answers[0].status, PROTO_STATUS_LIMIT_EXCEEDED);
	assert_int_equal(T.fake->calls, calls);
	assert_int_equal(tok.asked, 3);
	assert_int_equal(stats()->in_flight, 0);
	stop();
}

static void
test_single_flight_per_key(void **state)
{
	static const char *const keys[][3] = {
		{ "app/db", NULL, NULL }, { "app/db", "AWSPREVIOUS", NULL },
		{ "app/db", "AWSPENDING", NULL }, { "app/db", NULL, V1 },
		{ "app/db", "AWSPREVIOUS", V1 }, { "other", NULL, NULL },
	};
	static const char *const want[] = { "new-pw", "old-pw", "pending-pw", "old-pw", "old-pw",
		"other-value" };
	const size_t nkeys = sizeof(keys) / sizeof(keys[0]);

	(void)state;
	start_default();
	T.fake->delay.tv_usec = 2000;
	put_db();
	fake_put(T.fake, ARN("other", "Oo11Pp"), "other", V1, "AWSCURRENT", "other-value");
	for (size_t i = 0; i < 20 * nkeys; i++)
		get_async(i, keys[i % nkeys][0], keys[i % nkeys][1], keys[i % nkeys][2]);
	assert_int_equal(T.fake->calls, nkeys);
	assert_int_equal(stats()->joins, 19 * nkeys);
	run_loop();
	for (size_t i = 0; i < 20 * nkeys; i++) {
		assert_int_equal(T.answers[i].calls, 1);
		assert_true(T.answers[i].ok);
		assert_string_equal((const char *)T.answers[i].value, want[i % nkeys]);
	}
	assert_int_equal(T.fake->calls, nkeys);
	/* Different spellings of one key are separate flights (the cache cannot
	 * know "app/db" and its ARN are one secret before the first answer). */
	stop();
}

static void
test_errors_fan_out(void **state)
{
	(void)state;
	start_default();
	put_db();
	T.fake->fail = PROTO_STATUS_UPSTREAM_UNAVAILABLE;
	for (size_t i = 0; i < 50; i++)
		get_async(i, "app/db", NULL, NULL);
	run_loop();
	assert_int_equal(T.fake->calls, 1);
	for (size_t i = 0; i < 50; i++) {
		assert_int_equal(T.answers[i].calls, 1);
		assert_false(T.answers[i].ok);
		assert_int_equal(T.answers[i].status, PROTO_STATUS_UPSTREAM_UNAVAILABLE);
	}
	assert_int_equal(stats()->fetch_errors, 1);
	assert_int_equal(stats()->negatives, 0);

	/* Not found fans out too, and is then remembered. */
	T.fake->fail = PROTO_STATUS_OK;
	for (size_t i = 0; i < 50; i++)
		get_async(i, "missing", NULL, NULL);
	run_loop();
	assert_int_equal(T.fake->calls, 2);
	for (size_t i = 0; i < 50; i++) {
		assert_int_equal(T.answers[i].calls, 1);
		assert_int_equal(T.answers[i].status, PROTO_STATUS_NOT_FOUND);
	}
	assert_int_equal(stats()->negatives, 1);
	/* The upstream recovered: the failed key is asked again and cached. */
	want_value("app/db", NULL, NULL, "new-pw", 1);
	stop();
}

static void
test_negative_caching(void **state)
{
	(void)state;
	start(300, 2, 1000, 64u << 20);
	put_db();
	want_status("missing", NULL, NULL, PROTO_STATUS_NOT_FOUND, 1);
	for (int i = 0; i < 5; i++)
		want_status("missing", NULL, NULL, PROTO_STATUS_NOT_FOUND, 0);
	assert_int_equal(stats()->negative_hits, 5);
	assert_int_equal(stats()->negatives, 1);
	/* Remembered per (id, stage, version id). */
	want_status("missing", "AWSPREVIOUS", NULL, PROTO_STATUS_NOT_FOUND, 1);
	want_status("app/db", "NOPE", NULL, PROTO_STATUS_NOT_FOUND, 1);
	want_status("app/db", "NOPE", NULL, PROTO_STATUS_NOT_FOUND, 0);
	assert_int_equal(stats()->negatives, 3);
	/* Within the window, a secret created upstream is not seen ... */
	fake_put(T.fake, ARN("missing", "Mm11Nn"), "missing", V1, "AWSCURRENT", "now-here");
	advance_ms(1500);
	want_status("missing", NULL, NULL, PROTO_STATUS_NOT_FOUND, 0);
	/* ... after it, the upstream is asked again. */
	advance_ms(600);
	want_value("missing", NULL, NULL, "now-here", 1);
	want_value("missing", NULL, NULL, "now-here", 0);
	assert_int_equal(stats()->negative_hits, 7);
	/* Expired entries went when they were met. */
	assert_int_equal(stats()->negatives, 2);

	/* A failing upstream is not remembered: every read asks again. */
	T.fake->fail = PROTO_STATUS_UPSTREAM_UNAVAILABLE;
	want_status("gone", NULL, NULL, PROTO_STATUS_UPSTREAM_UNAVAILABLE, 1);
	want_status("gone", NULL, NULL, PROTO_STATUS_UPSTREAM_UNAVAILABLE, 1);
	T.fake->fail = PROTO_STATUS_ACCESS_DENIED;
	want_status("gone", NULL, NULL, PROTO_STATUS_ACCESS_DENIED, 1);
	want_status("gone", NULL, NULL, PROTO_STATUS_ACCESS_DENIED, 1);
	assert_int_equal(stats()->negatives, 2);
	stop();

	/* negative_ttl 0: never remembered. */
	start(300, 0, 1000, 64u << 20);
	want_status("missing", NULL, NULL, PROTO_STATUS_NOT_FOUND, 1);
	want_status("missing", NULL, NULL, PROTO_STATUS_NOT_FOUND, 1);
	assert_int_equal(stats()->negatives, 0);
	assert_int_equal(stats()->negative_hits, 0);
	stop();
}

static void
put_numbered(int n)
{
	char name[16], arn[128], value[32];

	snprintf(name, sizeof(name), "s%d", n);
	snprintf(arn, sizeof(arn), ARN_PREFIX "s%d-Ab12Cd", n);
	snprintf(value, sizeof(value), "value-%d", n);
	fake_put(T.fake, arn, name, V1, "AWSCURRENT", value);
}

static void
want_numbered(int n, unsigned backend_calls)
{
	char name[16], value[32];

	snprintf(name, sizeof(name), "s%d", n);
	snprintf(value, sizeof(value), "value-%d", n);
	want_value(name, NULL, NULL, value, backend_calls);
}

/* s1..s3 held, s1 made recent, s4 pushes out s2 (the least recently used). */
static void
check_lru(void)
{
	for (int i = 1; i <= 5; i++)
		put_numbered(i);
	want_numbered(1, 1);
	want_numbered(2, 1);
	want_numbered(3, 1);
	assert_int_equal(stats()->versions, 3);
	assert_int_equal(stats()->evictions, 0);
	want_numbered(1, 0);
	want_numbered(4, 1);
	assert_int_equal(stats()->versions, 3);
	assert_int_equal(stats()->evictions, 1);
	/* A secret whose only version went is dropped whole. */
	assert_int_equal(stats()->secrets, 3);
	want_numbered(1, 0);
	want_numbered(3, 0);
	want_numbered(4, 0);
	/* Now s1, s3, s4 by age of use: s5 evicts s1. */
	want_numbered(5, 1);
	assert_int_equal(stats()->evictions, 2);
	want_numbered(3, 0);
	want_numbered(4, 0);
	want_numbered(5, 0);
	want_numbered(2, 1);
	assert_int_equal(stats()->evictions, 3);
	assert_int_equal(stats()->versions, 3);
	assert_int_equal(stats()->sealed_bytes, 3 * seal_sealed_size(strlen("value-1")));
}

static void
test_lru_by_count(void **state)
{
	(void)state;
	start(300, 10, 3, 64u << 20);
	check_lru();
	stop();
}

static void
test_lru_by_bytes(void **state)
{
	(void)state;
	start(300, 10, 1000, 3 * seal_sealed_size(strlen("value-1")));
	check_lru();
	stop();
}

static void
test_lru_refetch_counts_as_use(void **state)
{
	(void)state;
	start(1, 10, 2, 64u << 20);
	for (int i = 1; i <= 3; i++)
		put_numbered(i);
	want_numbered(1, 1);
	advance_ms(500);
	want_numbered(2, 1);
	/* s1's label expires first and is fetched again: same version, but used now. */
	advance_ms(600);
	want_numbered(1, 1);
	/* So s2, not s1, is the least recently used when s3 arrives. */
	want_numbered(3, 1);
	assert_int_equal(stats()->evictions, 1);
	want_value("s1", NULL, V1, "value-1", 0);
	want_value("s2", NULL, V1, "value-2", 1);
	stop();
}

static void
test_one_value_larger_than_max_bytes(void **state)
{
	uint8_t big[5000];

	(void)state;
	start(300, 10, 1000, 2 * seal_sealed_size(10));
	memset(big, 'b', sizeof(big));
	put_numbered(1);
	fake_put_bytes(T.fake, ARN("big", "Gg33Hh"), "big", V1, "AWSCURRENT", big, sizeof(big), false);
	want_numbered(1, 1);
	/* Still answered, and kept alone (the newest is never evicted for itself). */
	get("big", NULL, NULL);
	assert_true(T.answers[0].ok);
	assert_int_equal(T.answers[0].len, sizeof(big));
	assert_int_equal(stats()->versions, 1);
	assert_int_equal(stats()->evictions, 1);
	want_numbered(1, 1);
	assert_int_equal(stats()->versions, 1);
	stop();
}

static void
test_recreated_secret_replaces_entry(void **state)
{
	(void)state;
	start(1, 10, 1000, 64u << 20);
	put_db();
	want_value("app/db", NULL, NULL, "new-pw", 1);
	want_value("app/db", NULL, V1, "old-pw", 1);
	assert_int_equal(stats()->versions, 2);
	/* Deleted and created again: same name, new ARN, new versions. */
	fake_remove_secret(T.fake, "app/db");
	fake_put(T.fake, ARN("app/db", "NeW999"), "app/db", V3, "AWSCURRENT", "reborn-pw");
	advance_ms(1100);
	want_value("app/db", NULL, NULL, "reborn-pw", 1);
	assert_string_equal(T.answers[0].arn, ARN("app/db", "NeW999"));
	/* The old entry went whole: its versions too. */
	assert_int_equal(stats()->secrets, 1);
	assert_int_equal(stats()->versions, 1);
	assert_int_equal(stats()->sealed_bytes, seal_sealed_size(strlen("reborn-pw")));
	/* The old ARN is not the new secret, and an old VersionId is gone. */
	want_status(ARN("app/db", "AbCdEf"), NULL, NULL, PROTO_STATUS_NOT_FOUND, 1);
	want_status("app/db", NULL, V1, PROTO_STATUS_NOT_FOUND, 1);
	want_value(ARN("app/db", "NeW999"), NULL, NULL, "reborn-pw", 0);
	want_value(ARN_PREFIX "app/db", NULL, NULL, "reborn-pw", 0);
	stop();
}

static void
test_value_is_copied_and_sealed(void **state)
{
	char marker[65];
	uint8_t raw[32];
	struct answer *a;

	(void)state;
	start_default();
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(marker, sizeof(marker), raw, sizeof(raw));
	fake_put(T.fake, ARN("m", "Mm00Mm"), "m", V1, "AWSCURRENT", marker);
	/* The fake wipes the buffer it lent right after the fetch callback, so
	 * every later hit proves the cache answered from its own sealed copy. */
	want_value("m", NULL, NULL, marker, 1);
	for (int i = 0; i < 3; i++) {
		a = get("m", NULL, NULL);
		assert_true(a->sync);
		assert_string_equal((const char *)a->value, marker);
	}
	assert_int_equal(stats()->sealed_bytes, seal_sealed_size(strlen(marker)));
	stop();
}

/* Answers from inside a callback must not disturb the delivery in progress. */
static struct answer reentrant_inner;

static void
on_answer_reenter(void *arg, const struct backend_value *value, bool stale,
    const struct backend_error *error)
{
	struct backend_query q = { .secret_id = "s2" };
	struct answer *a = arg;

	cache_get(T.cache, &q, 0, on_answer, &reentrant_inner);
	on_answer(a, value, stale, error);
}

static void
test_get_from_callback(void **state)
{
	struct backend_query q = { .secret_id = "s1" };

	(void)state;
	start_default();
	put_numbered(1);
	put_numbered(2);
	want_numbered(1, 1);
	want_numbered(2, 1);
	/* A hit whose callback reads another hit before using its own value. */
	reset_answer(&T.answers[1]);
	cache_get(T.cache, &q, 0, on_answer_reenter, &T.answers[1]);
	assert_int_equal(reentrant_inner.calls, 1);
	assert_string_equal((const char *)reentrant_inner.value, "value-2");
	assert_int_equal(T.answers[1].calls, 1);
	assert_string_equal((const char *)T.answers[1].value, "value-1");
	free(reentrant_inner.value);
	memset(&reentrant_inner, 0, sizeof(reentrant_inner));
	run_loop();
	stop();
}

static void
test_free_with_fetches_in_flight(void **state)
{
	(void)state;
	start_default();
	put_db();
	want_value("app/db", NULL, V1, "old-pw", 1);
	want_status("nope", NULL, NULL, PROTO_STATUS_NOT_FOUND, 1);
	T.fake->delay.tv_sec = 5;
	for (size_t i = 0; i < 30; i++)
		get_async(i, (i % 3) ? "app/db" : "other", (i % 2) ? "AWSPENDING" : NULL, NULL);
	assert_int_equal(stats()->in_flight, 4);
	/* Everything goes, waiters are not called; ASan's leak check has the rest. */
	cache_free(T.cache);
	T.cache = NULL;
	backend_free(&T.fake->b);
	T.fake = NULL;
	for (size_t i = 0; i < 30; i++)
		assert_int_equal(T.answers[i].calls, 0);
	stop();
}

static void
test_cache_free_null(void **state)
{
	(void)state;
	cache_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_hit_after_miss, teardown),
		cmocka_unit_test_teardown(test_canonical_ids_share_one_entry, teardown),
		cmocka_unit_test_teardown(test_no_stage_means_awscurrent, teardown),
		cmocka_unit_test_teardown(test_version_id_reads_follow_ttl, teardown),
		cmocka_unit_test_teardown(test_secret_failures_back_off_that_secret_only, teardown),
		cmocka_unit_test_teardown(test_describe_remembered_and_single_flighted, teardown),
		cmocka_unit_test_teardown(test_label_move_seen_after_ttl, teardown),
		cmocka_unit_test_teardown(test_label_move_one_real_second, teardown),
		cmocka_unit_test_teardown(test_fetched_stages_override_stale_labels, teardown),
		cmocka_unit_test_teardown(test_stage_and_version_id_must_match, teardown),
		cmocka_unit_test_teardown(test_binary_empty_and_largest_values, teardown),
		cmocka_unit_test_teardown(test_single_flight_200_waiters, teardown),
		cmocka_unit_test_teardown(test_single_flight_per_key, teardown),
		cmocka_unit_test_teardown(test_charge_only_upstream_calls, teardown),
		cmocka_unit_test_teardown(test_errors_fan_out, teardown),
		cmocka_unit_test_teardown(test_negative_caching, teardown),
		cmocka_unit_test_teardown(test_lru_by_count, teardown),
		cmocka_unit_test_teardown(test_lru_by_bytes, teardown),
		cmocka_unit_test_teardown(test_lru_refetch_counts_as_use, teardown),
		cmocka_unit_test_teardown(test_one_value_larger_than_max_bytes, teardown),
		cmocka_unit_test_teardown(test_recreated_secret_replaces_entry, teardown),
		cmocka_unit_test_teardown(test_value_is_copied_and_sealed, teardown),
		cmocka_unit_test_teardown(test_get_from_callback, teardown),
		cmocka_unit_test_teardown(test_free_with_fetches_in_flight, teardown),
		cmocka_unit_test_teardown(test_cache_free_null, teardown),
		cmocka_unit_test_teardown(test_batch_refresh_twenty_a_call, teardown),
		cmocka_unit_test_teardown(test_batch_per_id_errors_and_whole_failures, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
