/*
 * sys_clock: the agent's one monotonic clock, with a hook for unit tests.
 *
 * Deadlines, rates, TTLs and probe spacing are measured on CLOCK_MONOTONIC
 * (a wall-clock step must not expire or extend them); the cache's hot path
 * reads CLOCK_MONOTONIC_COARSE (one kernel tick of resolution, no hardware
 * counter read). A unit test may freeze every reading at a time of its
 * choosing, and move it forward or back.
 *
 * Not here: wall-clock times (log and audit timestamps, CreatedDate) and
 * systemd's MONOTONIC_USEC (sd_notify.c must report the kernel's clock
 * itself, whatever a test did).
 */
#ifndef SMC_AGENT_SYS_CLOCK_H
#define SMC_AGENT_SYS_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds and in milliseconds. */
uint64_t sys_clock_ns(void);
uint64_t sys_clock_ms(void);

/* CLOCK_MONOTONIC_COARSE in milliseconds: for the cache's many readings. */
uint64_t sys_clock_coarse_ms(void);

/* Tests only: every reading returns ns (ms readings ns / 10^6) until the
 * next call; 0 gives the real clocks back. */
void sys_clock_test_set_ns(uint64_t ns);

#endif
