/*
 * sys_clock: the monotonic clocks (see sys_clock.h).
 */
#include <time.h>

#include "sys_clock.h"

#define NS_PER_S	1000000000ULL
#define NS_PER_MS	1000000ULL

static uint64_t test_now_ns;	/* 0: the real clocks */

static uint64_t
read_ns(clockid_t id)
{
	struct timespec ts;

	if (test_now_ns != 0)
		return test_now_ns;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

uint64_t
sys_clock_ns(void)
{
	return read_ns(CLOCK_MONOTONIC);
}

uint64_t
sys_clock_ms(void)
{
	return read_ns(CLOCK_MONOTONIC) / NS_PER_MS;
}

uint64_t
sys_clock_coarse_ms(void)
{
	return read_ns(CLOCK_MONOTONIC_COARSE) / NS_PER_MS;
}

void
sys_clock_test_set_ns(uint64_t ns)
{
	test_now_ns = ns;
}
