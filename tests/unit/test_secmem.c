/*
 * Unit tests for agent/secmem: mlock policy parsing, dumpable/core limits and
 * the mlock policy applied in forked children (so the test process itself is
 * left as it was), VmLck reporting, wipe-on-free buffers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>

#include <cmocka.h>
#include <sodium.h>

#include "secmem.h"

/* Child-side check: report and leave with a distinctive status. */
#define CHILD_CHECK(cond)                                                      \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "child check failed at line %d: %s\n", \
			        __LINE__, #cond);                              \
			_exit(100);                                            \
		}                                                              \
	} while (0)

/* Runs fn in a child process; asserts that it exited with status 0. */
static void
run_in_child(void (*fn)(void))
{
	pid_t pid;
	int status = 0;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
test_parse_good(void **state)
{
	static const struct { const char *s; secmem_mlock_policy p; } t[] = {
		{ "required", SECMEM_MLOCK_REQUIRED },
		{ "best-effort", SECMEM_MLOCK_BEST_EFFORT },
		{ "off", SECMEM_MLOCK_OFF },
	};
	secmem_mlock_policy p;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		p = (secmem_mlock_policy)-1;
		assert_int_equal(secmem_mlock_parse(t[i].s, &p), 0);
		assert_int_equal(p, t[i].p);
		assert_string_equal(secmem_mlock_name(p), t[i].s);
	}
}

static void
test_parse_bad(void **state)
{
	static const char *bad[] = { "", "Required", "REQUIRED", "best_effort",
	                             "besteffort", "best effort", "on", "yes", "1",
	                             "off ", " off", "required\n", "of", "offf" };
	secmem_mlock_policy p = SECMEM_MLOCK_REQUIRED;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		errno = 0;
		assert_int_equal(secmem_mlock_parse(bad[i], &p), -1);
		assert_int_equal(errno, EINVAL);
		assert_int_equal(p, SECMEM_MLOCK_REQUIRED); /* untouched */
	}
	assert_int_equal(secmem_mlock_parse(NULL, &p), -1);
}

static void
test_init_idempotent(void **state)
{
	(void)state;
	assert_int_equal(secmem_init(), 0);
	assert_int_equal(secmem_init(), 0);
}

static void
child_disable_dumps(void)
{
	char err[SECMEM_MSG_MAX] = "junk";
	struct rlimit rl;

	CHILD_CHECK(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 1); /* meaningful start */
	CHILD_CHECK(secmem_disable_dumps(err, sizeof err) == 0);
	CHILD_CHECK(err[0] == '\0');
	CHILD_CHECK(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0);
	CHILD_CHECK(getrlimit(RLIMIT_CORE, &rl) == 0);
	CHILD_CHECK(rl.rlim_cur == 0 && rl.rlim_max == 0);
	/* /proc/self/status stays readable for VmLck. */
	{
		uint64_t b;

		CHILD_CHECK(secmem_locked_bytes(&b) == 0);
	}
}

static void
test_disable_dumps(void **state)
{
	(void)state;
	run_in_child(child_disable_dumps);
	/* The parent is untouched. */
	assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1);
}

static void
child_startup_off(void)
{
	char msg[SECMEM_MSG_MAX] = "junk";
	uint64_t before, after;

	CHILD_CHECK(secmem_locked_bytes(&before) == 0);
	CHILD_CHECK(secmem_startup(SECMEM_MLOCK_OFF, msg, sizeof msg) == 0);
	CHILD_CHECK(msg[0] == '\0');
	CHILD_CHECK(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0);
	CHILD_CHECK(secmem_locked_bytes(&after) == 0);
	CHILD_CHECK(after == before);
}

static void
test_startup_off(void **state)
{
	(void)state;
	run_in_child(child_startup_off);
}

/* Whether mlockall() is expected to be allowed, by the module's own rule. */
static int
can_lock(void)
{
	struct rlimit rl;
	FILE *f;
	char line[256];
	unsigned long long vmsize_kb = 0;

	if (secmem_have_cap_ipc_lock() == 1)
		return 1;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0)
		return 0;
	if (rl.rlim_cur == RLIM_INFINITY)
		return 1;
	if ((f = fopen("/proc/self/status", "r")) == NULL)
		return 0;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "VmSize: %llu kB", &vmsize_kb) == 1)
			break;
	fclose(f);
	return (uint64_t)rl.rlim_cur >= vmsize_kb * 1024 + SECMEM_MLOCK_HEADROOM;
}

static void
child_mlock_apply(void)
{
	char msg[SECMEM_MSG_MAX] = "junk";
	uint64_t locked = 0;
	int rc;

	rc = secmem_mlock_apply(SECMEM_MLOCK_REQUIRED, msg, sizeof msg);
	if (SECMEM_UNDER_ASAN) {
		/* Treated as off, with a notice. */
		CHILD_CHECK(rc == 0);
		CHILD_CHECK(strstr(msg, "AddressSanitizer") != NULL);
		CHILD_CHECK(strstr(msg, "NOT locked") != NULL);
		CHILD_CHECK(secmem_locked_bytes(&locked) == 0 && locked == 0);
	} else if (can_lock()) {
		if (rc != 0)
			fprintf(stderr, "unexpected: %s\n", msg);
		CHILD_CHECK(rc == 0);
		CHILD_CHECK(msg[0] == '\0');
		CHILD_CHECK(secmem_locked_bytes(&locked) == 0);
		CHILD_CHECK(locked > 0);
		/* Memory allocated afterwards is usable (MCL_FUTURE did not break
		 * allocation). */
		{
			char *p = malloc(4 << 20);

			CHILD_CHECK(p != NULL);
			memset(p, 1, 4 << 20);
			free(p);
		}
	} else {
		CHILD_CHECK(rc == -1);
		CHILD_CHECK(strstr(msg, "mlock = required") != NULL);
		CHILD_CHECK(strstr(msg, "RLIMIT_MEMLOCK") != NULL);
		CHILD_CHECK(secmem_locked_bytes(&locked) == 0 && locked == 0);
	}
}

static void
test_mlock_apply(void **state)
{
	(void)state;
	run_in_child(child_mlock_apply);
}

/* Drops CAP_IPC_LOCK from the effective set (if present), so that
 * RLIMIT_MEMLOCK applies to this process. */
static int
drop_cap_ipc_lock(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	memset(data, 0, sizeof data);
	if (syscall(SYS_capget, &hdr, data) != 0)
		return -1;
	data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective &= ~CAP_TO_MASK(CAP_IPC_LOCK);
	return (int)syscall(SYS_capset, &hdr, data);
}

static void
child_mlock_small_limit(void)
{
	char msg[SECMEM_MSG_MAX] = "junk", expect[64];
	struct rlimit rl;
	uint64_t locked = 1;

	CHILD_CHECK(drop_cap_ipc_lock() == 0);
	CHILD_CHECK(secmem_have_cap_ipc_lock() == 0);
	CHILD_CHECK(getrlimit(RLIMIT_MEMLOCK, &rl) == 0);
	rl.rlim_cur = 64 * 1024;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rl.rlim_cur)
		rl.rlim_cur = rl.rlim_max;
	CHILD_CHECK(setrlimit(RLIMIT_MEMLOCK, &rl) == 0);
	snprintf(expect, sizeof expect, "RLIMIT_MEMLOCK is %llu KiB",
	         (unsigned long long)rl.rlim_cur / 1024);

	if (SECMEM_UNDER_ASAN) {
		CHILD_CHECK(secmem_mlock_apply(SECMEM_MLOCK_BEST_EFFORT, msg, sizeof msg) == 0);
		CHILD_CHECK(strstr(msg, "AddressSanitizer") != NULL);
		return;
	}

	/* required: refuses, naming the limit and the remedies. */
	CHILD_CHECK(secmem_mlock_apply(SECMEM_MLOCK_REQUIRED, msg, sizeof msg) == -1);
	CHILD_CHECK(strstr(msg, "mlock = required") != NULL);
	CHILD_CHECK(strstr(msg, expect) != NULL);
	CHILD_CHECK(strstr(msg, "LimitMEMLOCK=infinity") != NULL);
	CHILD_CHECK(strstr(msg, "CAP_IPC_LOCK") != NULL);
	CHILD_CHECK(secmem_locked_bytes(&locked) == 0 && locked == 0);

	/* best-effort: carries on, with the same loud explanation. */
	strcpy(msg, "junk");
	CHILD_CHECK(secmem_mlock_apply(SECMEM_MLOCK_BEST_EFFORT, msg, sizeof msg) == 0);
	CHILD_CHECK(strstr(msg, "best-effort") != NULL);
	CHILD_CHECK(strstr(msg, "NOT locked") != NULL);
	CHILD_CHECK(strstr(msg, expect) != NULL);
	CHILD_CHECK(secmem_locked_bytes(&locked) == 0 && locked == 0);

	/* off: silent. */
	strcpy(msg, "junk");
	CHILD_CHECK(secmem_mlock_apply(SECMEM_MLOCK_OFF, msg, sizeof msg) == 0);
	CHILD_CHECK(msg[0] == '\0');
}

static void
test_mlock_small_limit(void **state)
{
	(void)state;
	run_in_child(child_mlock_small_limit);
}

static void
test_cap_and_vmlck_readable(void **state)
{
	uint64_t b = UINT64_MAX;
	int cap = secmem_have_cap_ipc_lock();

	(void)state;
	assert_true(cap == 0 || cap == 1);
	assert_int_equal(secmem_locked_bytes(&b), 0);
	assert_true(b != UINT64_MAX);
	assert_int_equal(b % 1024, 0);
}

static void
test_wipe_alloc(void **state)
{
	unsigned char *p, *q;
	size_t i, n;
	char *d;

	(void)state;
	/* secmem_wipe_block zeroes every usable byte and leaves the block allocated. */
	p = secmem_wipe_malloc(1000);
	assert_non_null(p);
	memset(p, 'S', 1000);
	n = secmem_wipe_block(p);
	assert_true(n >= 1000);
	for (i = 0; i < n; i++)
		assert_int_equal(p[i], 0);

	/* Growing keeps the contents (the old block is wiped and freed). */
	memset(p, 'S', 1000);
	q = secmem_wipe_realloc(p, 100000);
	assert_non_null(q);
	for (i = 0; i < 1000; i++)
		assert_int_equal(q[i], 'S');
	/* Shrinking keeps the first bytes. */
	p = secmem_wipe_realloc(q, 10);
	assert_non_null(p);
	assert_memory_equal(p, "SSSSSSSSSS", 10);
	assert_null(secmem_wipe_realloc(p, 0));		/* frees */
	p = secmem_wipe_realloc(NULL, 16);		/* allocates */
	assert_non_null(p);
	secmem_wipe_free(p);
	secmem_wipe_free(NULL);

	p = secmem_wipe_calloc(10, 100);
	assert_non_null(p);
	for (i = 0; i < 1000; i++)
		assert_int_equal(p[i], 0);
	secmem_wipe_free(p);

	d = secmem_wipe_strdup("token");
	assert_non_null(d);
	assert_string_equal(d, "token");
	secmem_wipe_free(d);
}

/* A fresh sodium_malloc() block's whole pages go back (mincore: not
 * resident), read as zeros, come back when written, and sodium_free() still
 * finds its canary (it aborts otherwise). */
static void
test_drop_fresh_pages(void **state)
{
	size_t len = 256 * 1024, pg = (size_t)sysconf(_SC_PAGESIZE), resident = 0;
	unsigned char vec[256 * 1024 / 4096 + 2];
	uint8_t *p, *first;

	(void)state;
	assert_int_equal(secmem_init(), 0);
	p = sodium_malloc(len);
	assert_non_null(p);
	assert_int_equal(p[len - 1], 0xdb);	/* libsodium's garbage: every page touched */
	secmem_drop_fresh_pages(p, len);
	first = (uint8_t *)(((uintptr_t)p + pg - 1) & ~(uintptr_t)(pg - 1));
	assert_true(first + 60 * pg <= p + len);
	assert_int_equal(mincore(first, 60 * pg, vec), 0);
	for (size_t i = 0; i < 60; i++)
		resident += vec[i] & 1;
	assert_int_equal(resident, 0);
	assert_int_equal(p[len - 1], 0);
	memset(p, 'x', len);		/* writable, every byte */
	assert_int_equal(mincore(first, 60 * pg, vec), 0);
	resident = 0;
	for (size_t i = 0; i < 60; i++)
		resident += vec[i] & 1;
	assert_int_equal(resident, 60);
	sodium_free(p);
	secmem_drop_fresh_pages(NULL, 10);	/* a no-op */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_init_idempotent),
		cmocka_unit_test(test_disable_dumps),
		cmocka_unit_test(test_startup_off),
		cmocka_unit_test(test_mlock_apply),
		cmocka_unit_test(test_mlock_small_limit),
		cmocka_unit_test(test_cap_and_vmlck_readable),
		cmocka_unit_test(test_wipe_alloc),
		cmocka_unit_test(test_drop_fresh_pages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
