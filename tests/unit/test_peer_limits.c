/*
 * test_peer_limits: per-uid limits with an injected clock: the request
 * token bucket (burst, refill, cap), per-uid isolation, connection
 * counting, buckets surviving reconnects, forced refreshes per minute,
 * reconfiguration, the warning throttle and the sweep of idle entries.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <sodium.h>

#include "peer_limits.h"
#include "sys_clock.h"

#define MS 1000000ULL
#define S  1000000000ULL

static uint64_t fake_now;

/* The time every reading of sys_clock returns. */
static void
set_now(uint64_t ns)
{
	fake_now = ns;
	sys_clock_test_set_ns(ns);
}

static struct peer_limits *
make(unsigned conns, unsigned rps, unsigned burst, unsigned rpm)
{
	const struct peer_limits_config cfg = {
		.connections = conns, .requests_per_second = rps, .burst = burst,
		.refreshes_per_minute = rpm,
	};
	struct peer_limits *pl;

	set_now(1000 * S);
	pl = peer_limits_new(&cfg);
	assert_non_null(pl);
	return pl;
}

/* How many requests in a row are allowed right now. */
static unsigned
drain(struct peer_limits *pl, struct peer_entry *e)
{
	unsigned n = 0;

	while (peer_limits_allow_request(pl, e) && n < 1000000)
		n++;
	return n;
}

static void
test_token_bucket(void **state)
{
	struct peer_limits *pl = make(10, 10, 5, 60);
	struct peer_entry *e = peer_limits_conn_open(pl, 1000);

	assert_non_null(e);
	/* A fresh uid may send its burst at once, then no more. */
	assert_int_equal(drain(pl, e), 5);
	assert_false(peer_limits_allow_request(pl, e));
	/* 10 per second: one more every 100 ms, and not before. */
	set_now(fake_now + (99 * MS));
	assert_false(peer_limits_allow_request(pl, e));
	set_now(fake_now + (1 * MS));
	assert_true(peer_limits_allow_request(pl, e));
	assert_false(peer_limits_allow_request(pl, e));
	set_now(fake_now + (350 * MS));
	assert_int_equal(drain(pl, e), 3);
	/* Idle for long: the bucket holds the burst, not the time's worth. */
	set_now(fake_now + (60 * S));
	assert_int_equal(drain(pl, e), 5);
	/* The clock standing still or going back refills nothing. */
	set_now(fake_now - (5 * S));
	assert_false(peer_limits_allow_request(pl, e));
	assert_int_equal(peer_limits_get_stats(pl)->requests_rejected, 7);
	/* A sustained rate at the limit is served. */
	set_now(fake_now + (10 * S));
	drain(pl, e);
	for (int i = 0; i < 100; i++) {
		set_now(fake_now + (100 * MS));
		assert_true(peer_limits_allow_request(pl, e));
	}
	/* No entry (limits not set up): always allowed. */
	assert_true(peer_limits_allow_request(pl, NULL));
	assert_true(peer_limits_allow_request(NULL, e));
	peer_limits_conn_close(pl, e);
	peer_limits_free(pl);
}

static void
test_uid_isolation(void **state)
{
	struct peer_limits *pl = make(10, 100, 50, 60);
	struct peer_entry *a = peer_limits_conn_open(pl, 1000);
	struct peer_entry *a2 = peer_limits_conn_open(pl, 1000);
	struct peer_entry *b = peer_limits_conn_open(pl, 2000);

	assert_non_null(a);
	assert_non_null(b);
	/* Two connections of one uid share its bucket. */
	assert_ptr_equal(a, a2);
	assert_int_equal(drain(pl, a) + drain(pl, a2), 50);
	/* Another uid is untouched. */
	assert_int_equal(drain(pl, b), 50);
	set_now(fake_now + (100 * MS));
	assert_int_equal(drain(pl, a), 10);
	assert_int_equal(drain(pl, b), 10);
	assert_int_equal(peer_entry_uid(a), 1000);
	assert_int_equal(peer_entry_uid(b), 2000);
	peer_limits_conn_close(pl, a);
	peer_limits_conn_close(pl, a2);
	peer_limits_conn_close(pl, b);
	peer_limits_free(pl);
}

static void
test_connections(void **state)
{
	struct peer_limits *pl = make(2, 100, 100, 60);
	struct peer_entry *a1, *a2, *b;

	assert_int_equal(peer_limits_connections(pl, 1000), 0);
	a1 = peer_limits_conn_open(pl, 1000);
	a2 = peer_limits_conn_open(pl, 1000);
	assert_non_null(a1);
	assert_non_null(a2);
	assert_int_equal(peer_limits_connections(pl, 1000), 2);
	errno = 0;
	assert_null(peer_limits_conn_open(pl, 1000));
	assert_int_equal(errno, EUSERS);
	assert_int_equal(peer_limits_get_stats(pl)->connections_rejected, 1);
	/* Other uids are not counted against it. */
	b = peer_limits_conn_open(pl, 2000);
	assert_non_null(b);
	assert_int_equal(peer_limits_connections(pl, 2000), 1);
	/* A closed connection frees a slot. */
	peer_limits_conn_close(pl, a1);
	assert_int_equal(peer_limits_connections(pl, 1000), 1);
	a1 = peer_limits_conn_open(pl, 1000);
	assert_non_null(a1);
	assert_null(peer_limits_conn_open(pl, 1000));
	peer_limits_conn_close(pl, a1);
	peer_limits_conn_close(pl, a2);
	peer_limits_conn_close(pl, b);
	assert_int_equal(peer_limits_connections(pl, 1000), 0);
	peer_limits_conn_close(pl, NULL);
	peer_limits_free(pl);
}

static void
test_reconnect_keeps_bucket(void **state)
{
	struct peer_limits *pl = make(4, 10, 10, 60);
	struct peer_entry *e = peer_limits_conn_open(pl, 1000);

	assert_int_equal(drain(pl, e), 10);
	peer_limits_conn_close(pl, e);
	/* A new connection does not bring a fresh bucket. */
	e = peer_limits_conn_open(pl, 1000);
	assert_false(peer_limits_allow_request(pl, e));
	peer_limits_conn_close(pl, e);
	peer_limits_free(pl);
}

static void
test_refreshes(void **state)
{
	struct peer_limits *pl = make(4, 1000, 1000, 3);
	struct peer_entry *e = peer_limits_conn_open(pl, 1000);

	for (int i = 0; i < 3; i++)
		assert_true(peer_limits_allow_refresh(pl, 1000));
	assert_false(peer_limits_should_warn(pl, 1000));
	assert_false(peer_limits_allow_refresh(pl, 1000));
	assert_int_equal(peer_limits_get_stats(pl)->refreshes_rejected, 1);
	assert_true(peer_limits_should_warn(pl, 1000));
	/* Requests are a separate bucket. */
	assert_true(peer_limits_allow_request(pl, e));
	/* Another uid has its own minute. */
	assert_true(peer_limits_allow_refresh(pl, 2000));
	/* 3 a minute: one every 20 s. */
	set_now(fake_now + (19 * S));
	assert_false(peer_limits_allow_refresh(pl, 1000));
	set_now(fake_now + (1 * S));
	assert_true(peer_limits_allow_refresh(pl, 1000));
	assert_false(peer_limits_allow_refresh(pl, 1000));
	assert_true(peer_limits_allow_refresh(NULL, 1000));
	peer_limits_conn_close(pl, e);
	peer_limits_free(pl);
}

static void
test_reconfigure(void **state)
{
	const struct peer_limits_config smaller = {
		.connections = 1, .requests_per_second = 1, .burst = 2, .refreshes_per_minute = 1,
	};
	struct peer_limits *pl = make(4, 100, 100, 60);
	struct peer_entry *e = peer_limits_conn_open(pl, 1000);
	struct peer_entry *e2 = peer_limits_conn_open(pl, 1000);

	assert_int_equal(drain(pl, e), 100);
	set_now(fake_now + (500 * MS));		/* 50 tokens earned at the old rate */
	peer_limits_set_config(pl, &smaller);
	/* Clipped to the new burst, refilled at the new rate. */
	assert_int_equal(drain(pl, e), 2);
	set_now(fake_now + (1 * S));
	assert_int_equal(drain(pl, e), 1);
	/* The new connection limit applies to new connections only. */
	assert_null(peer_limits_conn_open(pl, 1000));
	assert_int_equal(peer_limits_connections(pl, 1000), 2);
	assert_true(peer_limits_allow_refresh(pl, 1000));
	assert_false(peer_limits_allow_refresh(pl, 1000));
	peer_limits_conn_close(pl, e);
	peer_limits_conn_close(pl, e2);
	peer_limits_free(pl);
}

static void
test_warning_throttle(void **state)
{
	struct peer_limits *pl = make(4, 1, 1, 60);
	struct peer_entry *e = peer_limits_conn_open(pl, 1000);

	assert_false(peer_limits_should_warn(pl, 1000));	/* nothing refused yet */
	assert_true(peer_limits_allow_request(pl, e));
	assert_false(peer_limits_allow_request(pl, e));
	assert_true(peer_limits_should_warn(pl, 1000));
	assert_false(peer_limits_allow_request(pl, e));
	assert_false(peer_limits_should_warn(pl, 1000));	/* within 10 s */
	set_now(fake_now + (10 * S));
	assert_true(peer_limits_allow_request(pl, e));
	assert_false(peer_limits_allow_request(pl, e));
	assert_true(peer_limits_should_warn(pl, 1000));
	assert_false(peer_limits_should_warn(pl, 2000));	/* unknown uid */
	/* Refused connections warn too. */
	peer_limits_conn_close(pl, e);
	{
		const struct peer_limits_config one = { .connections = 1, .requests_per_second = 1,
		    .burst = 1, .refreshes_per_minute = 60 };
		struct peer_entry *c1;

		peer_limits_set_config(pl, &one);
		c1 = peer_limits_conn_open(pl, 3000);
		assert_false(peer_limits_should_warn(pl, 3000));
		assert_null(peer_limits_conn_open(pl, 3000));
		assert_true(peer_limits_should_warn(pl, 3000));
		peer_limits_conn_close(pl, c1);
	}
	e = peer_limits_conn_open(pl, 1000);
	peer_limits_conn_close(pl, e);
	peer_limits_free(pl);
}

static void
test_sweep(void **state)
{
	struct peer_limits *pl = make(4, 10, 10, 60);
	struct peer_entry *busy = peer_limits_conn_open(pl, 1), *e;

	/* A uid that used its bucket and left keeps its entry until refilled. */
	e = peer_limits_conn_open(pl, 2);
	drain(pl, e);
	peer_limits_conn_close(pl, e);
	for (uid_t uid = 100; uid < 3000; uid++) {
		e = peer_limits_conn_open(pl, uid);
		assert_non_null(e);
		peer_limits_conn_close(pl, e);
	}
	/* Idle entries with full buckets were swept along the way. */
	assert_true(peer_limits_get_stats(pl)->uids < 2000);
	assert_int_equal(peer_limits_connections(pl, 1), 1);
	e = peer_limits_conn_open(pl, 2);
	assert_false(peer_limits_allow_request(pl, e));	/* still empty */
	peer_limits_conn_close(pl, e);
	assert_true(peer_limits_allow_request(pl, busy));
	peer_limits_conn_close(pl, busy);
	peer_limits_free(pl);
}

/* Rate 0 means no request limit; the upstream budget is its own bucket, per uid. */
static void
test_upstream_budget(void **state)
{
	const struct peer_limits_config cfg = {
		.connections = 10, .requests_per_second = 0, .burst = 1,
		.refreshes_per_minute = 60, .upstream_per_second = 20, .upstream_burst = 50,
	};
	struct peer_limits *pl;
	struct peer_entry *a, *b;
	unsigned n;

	(void)state;
	set_now(1000 * S);
	assert_non_null(pl = peer_limits_new(&cfg));
	a = peer_limits_conn_open(pl, 1000);
	b = peer_limits_conn_open(pl, 2000);
	assert_int_equal(drain(pl, a), 1000000);	/* no request limit at all */
	for (n = 0; peer_limits_allow_upstream(pl, a) && n < 1000; n++)
		;
	assert_int_equal(n, 50);			/* the burst */
	assert_false(peer_limits_allow_upstream(pl, a));
	assert_true(peer_limits_allow_upstream(pl, b));	/* another uid is not affected */
	set_now(fake_now + (S / 2));				/* half a second: 10 more */
	for (n = 0; peer_limits_allow_upstream(pl, a) && n < 1000; n++)
		;
	assert_int_equal(n, 10);
	assert_int_equal(peer_limits_get_stats(pl)->upstream_rejected, 3);	/* each loop ends on one */
	assert_true(peer_limits_allow_upstream(pl, NULL));
	/* Queued output is counted per uid, and never below zero. */
	peer_limits_output_add(a, 100);
	peer_limits_output_sub(a, 40);
	assert_int_equal(peer_limits_output(a), 60);
	peer_limits_output_sub(a, 100);
	assert_int_equal(peer_limits_output(a), 0);
	peer_limits_conn_close(pl, a);
	peer_limits_conn_close(pl, b);
	peer_limits_free(pl);
}

static int
setup(void **state)
{
	(void)state;
	return sodium_init() < 0 ? -1 : 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_bucket),
		cmocka_unit_test(test_upstream_budget),
		cmocka_unit_test(test_uid_isolation),
		cmocka_unit_test(test_connections),
		cmocka_unit_test(test_reconnect_keeps_bucket),
		cmocka_unit_test(test_refreshes),
		cmocka_unit_test(test_reconfigure),
		cmocka_unit_test(test_warning_throttle),
		cmocka_unit_test(test_sweep),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
