/*
 * test_cache_memory: what a cached 1 KiB version costs in resident memory,
 * measured from /proc/self/status (VmRSS) as the memory bench does from
 * outside, through the public cache API with a trivial backend: 20,000
 * secrets of one 1 KiB version each, after a warm-up. Issue 15's budget is
 * 200 bytes per version beyond the value's 1,024; today's layout costs about
 * 1,190 (sealed blob 1,052, version record 60, secret record 72 with these
 * names, index 6), so a record growing past its size class fails here.
 * Skipped under AddressSanitizer, whose allocator and shadow say nothing of
 * the agent's own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "backend.h"
#include "cache.h"
#include "secmem.h"

#define VALUE_LEN	1024
#define WARM		2000
#define COUNT		20000
#define BUDGET		200	/* bytes per version beyond the value (issue 15) */
#define ARN_PREFIX	"arn:aws:secretsmanager:us-east-1:123456789012:secret:"

struct pending {
	char id[64];
	backend_value_cb cb;
	void *arg;
};

struct fake {
	struct backend b;		/* first: ops receive &fake->b */
	struct event *answer_ev;
	struct pending *pending;
	size_t npending, cap;
	unsigned long versions;
};

static struct {
	struct event_base *base;
	struct fake *fake;
	struct cache *cache;
	size_t answered, failed;
} T;

static void
fake_answer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;
	static const char *const stages[] = { "AWSCURRENT" };
	uint8_t data[VALUE_LEN];
	char arn[160], vid[40];
	size_t n = f->npending;

	(void)fd;
	(void)what;
	memset(data, 'v', sizeof(data));
	f->npending = 0;
	for (size_t i = 0; i < n; i++) {
		struct pending *p = &f->pending[i];
		struct backend_value v = { .arn = arn, .name = p->id, .version_id = vid,
		    .stages = stages, .stage_count = 1, .created_ms = 1700000000000,
		    .data = data, .len = sizeof(data) };

		snprintf(arn, sizeof(arn), "%s%s-AbCdEf", ARN_PREFIX, p->id);
		snprintf(vid, sizeof(vid), "00000000-0000-4000-8000-%012lx", ++f->versions);
		p->cb(p->arg, &v, NULL);
	}
}

static int
fake_get_value(struct backend *b, const struct backend_query *q, backend_value_cb cb, void *arg)
{
	struct fake *f = (struct fake *)b;
	struct pending *p;

	if (f->npending == f->cap) {
		size_t cap = f->cap != 0 ? f->cap * 2 : 256;

		if ((p = realloc(f->pending, cap * sizeof(*p))) == NULL)
			return -1;
		f->pending = p;
		f->cap = cap;
	}
	p = &f->pending[f->npending++];
	snprintf(p->id, sizeof(p->id), "%s", q->secret_id);
	p->cb = cb;
	p->arg = arg;
	event_active(f->answer_ev, EV_TIMEOUT, 0);
	return 0;
}

static int
fake_describe(struct backend *b, const char *secret_id, backend_describe_cb cb, void *arg)
{
	(void)b;
	(void)secret_id;
	(void)cb;
	(void)arg;
	return -1;
}

static void
fake_free(struct backend *b)
{
	struct fake *f = (struct fake *)b;

	event_free(f->answer_ev);
	free(f->pending);
	free(f);
}

static const struct backend_ops fake_ops = {
	.name = "fake", .get_value = fake_get_value, .describe = fake_describe, .free = fake_free,
};

static void
got(void *arg, const struct backend_value *value, bool stale, const struct backend_error *error)
{
	(void)arg;
	(void)stale;
	if (error == NULL && value != NULL && value->len == VALUE_LEN)
		T.answered++;
	else
		T.failed++;
}

/* GETs of mem/FIRST .. mem/FIRST+N-1, in batches, each answered. */
static void
fill(size_t first, size_t n)
{
	char id[64];

	for (size_t done = 0; done < n; ) {
		size_t batch = n - done < 256 ? n - done : 256, want = T.answered + batch;
		struct backend_query q = { .secret_id = id };

		for (size_t i = 0; i < batch; i++, done++) {
			snprintf(id, sizeof(id), "mem/%06zu", first + done);
			cache_get(T.cache, &q, 0, got, NULL);
		}
		while (T.answered + T.failed < want)
			assert_true(event_base_loop(T.base, EVLOOP_ONCE) >= 0);
		assert_int_equal(T.failed, 0);
	}
}

static size_t
rss_bytes(void)
{
	char line[256];
	size_t kb = 0;
	FILE *f = fopen("/proc/self/status", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "VmRSS: %zu kB", &kb) == 1)
			break;
	}
	fclose(f);
	assert_true(kb > 0);
	return kb * 1024;
}

static int
setup(void **state)
{
	struct cache_options o = { .ttl_s = 3600, .max_versions = WARM + COUNT + 1000,
	    .max_bytes = (size_t)1 << 30 };
	char err[256] = "";

	(void)state;
	memset(&T, 0, sizeof(T));
	T.base = event_base_new();
	T.fake = calloc(1, sizeof(*T.fake));
	if (T.base == NULL || T.fake == NULL)
		return -1;
	T.fake->b.ops = &fake_ops;
	T.fake->b.base = T.base;
	T.fake->answer_ev = event_new(T.base, -1, 0, fake_answer_cb, T.fake);
	T.cache = cache_new(T.base, &T.fake->b, &o, err, sizeof(err));
	return T.cache == NULL || T.fake->answer_ev == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	cache_free(T.cache);
	backend_free(&T.fake->b);
	event_base_free(T.base);
	return 0;
}

static void
test_rss_per_cached_version(void **state)
{
	const struct cache_stats *st;
	size_t before, after;
	double per;

	(void)state;
	if (SECMEM_UNDER_ASAN)
		skip();
	fill(0, WARM);
	before = rss_bytes();
	fill(WARM, COUNT);
	after = rss_bytes();
	st = cache_get_stats(T.cache);
	assert_int_equal(st->versions, WARM + COUNT);
	assert_int_equal(st->evictions, 0);
	per = (double)(after - before) / COUNT;
	print_message("RSS per cached 1 KiB version: %.0f bytes (%.0f beyond the value)\n",
	    per, per - VALUE_LEN);
	/* The sealed blob alone is 1,052 bytes: less means the measure is broken. */
	assert_true(per >= 1052.0);
	assert_true(per <= VALUE_LEN + BUDGET);
	/* Every one of them is still answered, from the cache. */
	st = cache_get_stats(T.cache);
	{
		uint64_t misses = st->misses;

		fill(WARM, COUNT);
		assert_int_equal(cache_get_stats(T.cache)->misses, misses);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rss_per_cached_version, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
