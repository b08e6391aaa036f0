/*
 * test_sys_clock: the agent's monotonic clock and its test hook: readings
 * never go back, the coarse clock is within a tick or two of the fine one,
 * a frozen time is what every reading returns, and 0 gives the real clock
 * back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sys_clock.h"

static void
test_real(void **state)
{
	uint64_t a, b, c, fine, coarse;

	(void)state;
	a = sys_clock_ns();
	b = sys_clock_ns();
	c = sys_clock_ms();
	assert_true(a > 0);
	assert_true(b >= a);
	assert_true(c >= a / 1000000u);
	fine = sys_clock_ms();
	coarse = sys_clock_coarse_ms();
	/* One coarse tick is 1 to 10 ms depending on CONFIG_HZ; allow a few. */
	assert_true(coarse + 50 >= fine && coarse <= fine + 50);
}

static void
test_hook(void **state)
{
	(void)state;
	sys_clock_test_set_ns(5000000123ULL);
	assert_int_equal(sys_clock_ns(), 5000000123ULL);
	assert_int_equal(sys_clock_ms(), 5000);
	assert_int_equal(sys_clock_coarse_ms(), 5000);
	/* Back in time too: the modules must cope with a clock standing still. */
	sys_clock_test_set_ns(1000000000ULL);
	assert_int_equal(sys_clock_ms(), 1000);
	sys_clock_test_set_ns(0);
	assert_true(sys_clock_ns() != 1000000000ULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real),
		cmocka_unit_test(test_hook),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
