/*
 * test_cache_slab: the cache's record slabs (agent/cache/cache_slab.c):
 * objects of one size packed without headers, reused, kept apart from other
 * sizes and intact; large objects from malloc; empty slabs given back;
 * everything unmapped at the end. Under AddressSanitizer the
 * slabs are bypassed (malloc), which the tests allow for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache_internal.h"
#include "secmem.h"

#define N 5000

static struct cache_slabs pool;

static int
setup(void **state)
{
	(void)state;
	cache_slab_init(&pool);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	cache_slab_destroy(&pool);
	assert_int_equal(pool.mapped, 0);
	assert_int_equal(pool.count, 0);
	return 0;
}

/* Objects of three sizes, interleaved, each filled with its own byte: all
 * aligned, none overwritten by another, and the records of one size packed
 * (the 1,112-byte version of a 1 KiB value: 471 to a 512 KiB slab). */
static void
test_packed_and_intact(void **state)
{
	static const size_t sizes[] = { 70, 1112, 4184 };
	static uint8_t *p[3][N];

	(void)state;
	for (size_t i = 0; i < N; i++) {
		for (size_t k = 0; k < 3; k++) {
			p[k][i] = cache_slab_alloc(&pool, sizes[k]);
			assert_non_null(p[k][i]);
			assert_int_equal((uintptr_t)p[k][i] % 8, 0);
			memset(p[k][i], (int)(i * 3 + k) & 0xff, sizes[k]);
		}
	}
	for (size_t i = 0; i < N; i++) {
		for (size_t k = 0; k < 3; k++) {
			for (size_t j = 0; j < sizes[k]; j++)
				assert_int_equal(p[k][i][j], (i * 3 + k) & 0xff);
		}
	}
	if (!SECMEM_UNDER_ASAN) {
		/* 1,112 rounds to itself: consecutive ones are 1,112 bytes apart. */
		assert_int_equal(p[1][1] - p[1][0], 1112);
		/* 70 rounds up to 72. */
		assert_int_equal(p[0][1] - p[0][0], 72);
		/* As few slabs as the objects need (a header is under 64 bytes). */
		size_t want = 0;

		for (size_t k = 0; k < 3; k++) {
			size_t per = (SLAB_SIZE - 64) / ((sizes[k] + 7) / 8 * 8);

			want += (N + per - 1) / per;
		}
		assert_true(pool.count <= want);
		assert_int_equal(pool.mapped, pool.count * SLAB_SIZE);
	}
	for (size_t i = 0; i < N; i++) {
		for (size_t k = 0; k < 3; k++)
			cache_slab_free(&pool, p[k][i], sizes[k]);
	}
	/* All empty: every slab given back. */
	assert_int_equal(pool.count, 0);
	assert_int_equal(pool.mapped, 0);
}

/* A freed object is the next one of its size; another size does not get it. */
static void
test_reuse(void **state)
{
	void *a, *b, *c, *d;

	(void)state;
	a = cache_slab_alloc(&pool, 200);
	b = cache_slab_alloc(&pool, 200);
	assert_ptr_not_equal(a, b);
	cache_slab_free(&pool, a, 200);
	c = cache_slab_alloc(&pool, 208);
	assert_ptr_not_equal(c, a);
	d = cache_slab_alloc(&pool, 196);	/* rounds to 200: same size */
	if (!SECMEM_UNDER_ASAN)
		assert_ptr_equal(d, a);
	cache_slab_free(&pool, b, 200);
	cache_slab_free(&pool, c, 208);
	cache_slab_free(&pool, d, 196);
}

/* Past SLAB_MAX_OBJECT, malloc: no slab mapped for it. */
static void
test_large_from_malloc(void **state)
{
	uint8_t *big;

	(void)state;
	big = cache_slab_alloc(&pool, SLAB_MAX_OBJECT + 1);
	assert_non_null(big);
	memset(big, 0x5a, SLAB_MAX_OBJECT + 1);
	assert_int_equal(pool.count, 0);
	cache_slab_free(&pool, big, SLAB_MAX_OBJECT + 1);
	assert_int_equal(pool.count, 0);
	cache_slab_free(&pool, NULL, 10);	/* a no-op */
}

/* Filling a slab exactly, freeing one object, then allocating: no new slab. */
static void
test_full_slab_takes_back(void **state)
{
	size_t per = (SLAB_SIZE - 64) / 4096, n = 0;
	static void *p[1024];

	(void)state;
	if (SECMEM_UNDER_ASAN)
		skip();
	while (pool.count < 2) {
		assert_true(n < sizeof(p) / sizeof(p[0]));
		p[n++] = cache_slab_alloc(&pool, 4096);
	}
	/* The first slab is full; the second has one object. */
	assert_true(n - 1 >= per);
	cache_slab_free(&pool, p[0], 4096);
	assert_ptr_equal(cache_slab_alloc(&pool, 4096), p[0]);
	assert_int_equal(pool.count, 2);
	for (size_t i = 0; i + 1 < n; i++)
		cache_slab_free(&pool, p[i], 4096);
	assert_int_equal(pool.count, 1);	/* the first went back when it emptied */
	cache_slab_free(&pool, p[n - 1], 4096);
	assert_int_equal(pool.count, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_packed_and_intact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_from_malloc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_slab_takes_back, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
