/*
 * secmem: process-wide memory protection policy (dumps, ptrace, mlockall),
 * VmLck reporting and the wipe-on-free heap allocator.  See secmem.h.
 */
#include "secmem.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <sodium.h>

#define CAP_IPC_LOCK_BIT 14 /* linux/capability.h CAP_IPC_LOCK */

int
secmem_mlock_parse(const char *s, secmem_mlock_policy *out)
{
	if (s != NULL) {
		if (strcmp(s, "required") == 0) {
			*out = SECMEM_MLOCK_REQUIRED;
			return 0;
		}
		if (strcmp(s, "best-effort") == 0) {
			*out = SECMEM_MLOCK_BEST_EFFORT;
			return 0;
		}
		if (strcmp(s, "off") == 0) {
			*out = SECMEM_MLOCK_OFF;
			return 0;
		}
	}
	errno = EINVAL;
	return -1;
}

const char *
secmem_mlock_name(secmem_mlock_policy p)
{
	switch (p) {
	case SECMEM_MLOCK_OFF:
		return "off";
	case SECMEM_MLOCK_BEST_EFFORT:
		return "best-effort";
	case SECMEM_MLOCK_REQUIRED:
		return "required";
	}
	return "?";
}

int
secmem_init(void)
{
	/* 0 = initialised now, 1 = already initialised, -1 = failure. */
	return sodium_init() < 0 ? -1 : 0;
}

int
secmem_disable_dumps(char *err, size_t errlen)
{
	const struct rlimit none = { 0, 0 };

	if (errlen > 0)
		err[0] = '\0';
	if (setrlimit(RLIMIT_CORE, &none) != 0) {
		snprintf(err, errlen, "setrlimit(RLIMIT_CORE, 0): %s", strerror(errno));
		return -1;
	}
	/* Also makes /proc/PID/{mem,environ,...} root-only and refuses ptrace
	 * attach from other unprivileged processes of the same user. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		snprintf(err, errlen, "prctl(PR_SET_DUMPABLE, 0): %s", strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Copies the value of field `name` of /proc/self/status, leading blanks and
 * the newline removed, into val.  Lines longer than the buffer are skipped
 * whole so that a continuation is never mistaken for a field.
 */
static int
status_field(const char *name, char *val, size_t vallen)
{
	char line[256];
	size_t nlen = strlen(name), len;
	int at_start = 1, line_start, rc = -1;
	const char *v;
	FILE *f;

	if ((f = fopen("/proc/self/status", "re")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL) {
		len = strlen(line);
		line_start = at_start;
		at_start = len > 0 && line[len - 1] == '\n';
		if (!line_start || !at_start)
			continue;
		if (strncmp(line, name, nlen) != 0 || line[nlen] != ':')
			continue;
		line[len - 1] = '\0';
		for (v = line + nlen + 1; *v == ' ' || *v == '\t'; v++)
			;
		if (strlen(v) >= vallen)
			break;
		memcpy(val, v, strlen(v) + 1);
		rc = 0;
		break;
	}
	fclose(f);
	return rc;
}

/* A "<n> kB" field of /proc/self/status, in bytes. */
static int
status_bytes(const char *name, uint64_t *bytes)
{
	char val[64], *end;
	unsigned long long kb;

	if (status_field(name, val, sizeof val) != 0)
		return -1;
	errno = 0;
	kb = strtoull(val, &end, 10);
	if (errno != 0 || end == val || strcmp(end, " kB") != 0 || kb > UINT64_MAX / 1024)
		return -1;
	*bytes = (uint64_t)kb * 1024;
	return 0;
}

void
secmem_drop_fresh_pages(void *p, size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t start, end;

	if (p == NULL || pg <= 0)
		return;
	start = ((uintptr_t)p + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
	end = ((uintptr_t)p + len) & ~((uintptr_t)pg - 1);
	if (end <= start)
		return;
	/* Unlocked, the pages hold only sodium_malloc()'s garbage. */
	(void)munlock((void *)start, end - start);
	(void)madvise((void *)start, end - start, MADV_DONTNEED);
	/* AddressSanitizer makes libsodium's mlock() a no-op (it intercepts it,
	 * not mlock2()): the block was never locked, so it stays unlocked. */
	if (SECMEM_UNDER_ASAN)
		return;
#ifdef MLOCK_ONFAULT
	if (mlock2((void *)start, end - start, MLOCK_ONFAULT) == 0)
		return;
#endif
	(void)mlock((void *)start, end - start);
}

int
secmem_locked_bytes(uint64_t *bytes)
{
	return status_bytes("VmLck", bytes);
}

int
secmem_have_cap_ipc_lock(void)
{
	char val[64], *end;
	unsigned long long caps;

	if (status_field("CapEff", val, sizeof val) != 0)
		return -1;
	errno = 0;
	caps = strtoull(val, &end, 16);
	if (errno != 0 || end == val || *end != '\0')
		return -1;
	return (caps >> CAP_IPC_LOCK_BIT) & 1 ? 1 : 0;
}

static void
format_limit(rlim_t lim, char *buf, size_t len)
{
	if (lim == RLIM_INFINITY)
		snprintf(buf, len, "unlimited");
	else
		snprintf(buf, len, "%llu KiB", (unsigned long long)lim / 1024);
}

static int
lock_all(void)
{
#ifdef MCL_ONFAULT
	/* Lock pages as they are touched: a page holding a secret is locked from
	 * its first write, and reservations nobody touches stay non-resident. */
	if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0)
		return 0;
	if (errno != EINVAL) /* EINVAL: kernel older than 4.4 */
		return -1;
#endif
	return mlockall(MCL_CURRENT | MCL_FUTURE);
}

int
secmem_mlock_apply(secmem_mlock_policy p, char *msg, size_t msglen)
{
	char why[SECMEM_MSG_MAX], limit[32];
	struct rlimit rl;
	uint64_t vmsize, want;
	int cap, saved;

	if (msglen > 0)
		msg[0] = '\0';
	if (p == SECMEM_MLOCK_OFF)
		return 0;
	if (SECMEM_UNDER_ASAN) {
		snprintf(msg, msglen, "mlock = %s ignored: built with AddressSanitizer, whose "
		         "shadow memory cannot be locked; memory is NOT locked",
		         secmem_mlock_name(p));
		return 0;
	}

	if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0) {
		snprintf(why, sizeof why, "getrlimit(RLIMIT_MEMLOCK): %s", strerror(errno));
		goto fail;
	}
	format_limit(rl.rlim_cur, limit, sizeof limit);
	cap = secmem_have_cap_ipc_lock();
	if (cap != 1 && rl.rlim_cur != RLIM_INFINITY) {
		if (status_bytes("VmSize", &vmsize) != 0) {
			snprintf(why, sizeof why, "cannot read VmSize from /proc/self/status");
			goto fail;
		}
		want = vmsize + SECMEM_MLOCK_HEADROOM;
		if ((uint64_t)rl.rlim_cur < want) {
			snprintf(why, sizeof why,
			         "RLIMIT_MEMLOCK is %s but the agent already maps %" PRIu64
			         " KiB and needs %" PRIu64 " MiB more to grow; raise it to at "
			         "least %" PRIu64 " KiB (systemd: LimitMEMLOCK=infinity; "
			         "shell: ulimit -l unlimited; /etc/security/limits.conf: "
			         "memlock) or grant CAP_IPC_LOCK",
			         limit, vmsize / 1024, SECMEM_MLOCK_HEADROOM >> 20, want / 1024);
			goto fail;
		}
	}
	if (lock_all() != 0) {
		saved = errno;
		(void)munlockall(); /* leave no half-applied MCL_FUTURE behind */
		snprintf(why, sizeof why,
		         "mlockall: %s (RLIMIT_MEMLOCK %s, CAP_IPC_LOCK %s); raise "
		         "RLIMIT_MEMLOCK (systemd: LimitMEMLOCK=infinity) or grant CAP_IPC_LOCK",
		         strerror(saved), limit, cap == 1 ? "yes" : cap == 0 ? "no" : "unknown");
		goto fail;
	}
	return 0;

fail:
	if (p == SECMEM_MLOCK_REQUIRED) {
		snprintf(msg, msglen, "mlock = required, but memory cannot be locked: %s", why);
		return -1;
	}
	snprintf(msg, msglen, "mlock = best-effort: memory is NOT locked, secrets may be "
	         "written to swap: %s", why);
	return 0;
}

int
secmem_startup(secmem_mlock_policy p, char *msg, size_t msglen)
{
	if (msglen > 0)
		msg[0] = '\0';
	if (secmem_init() != 0) {
		snprintf(msg, msglen, "sodium_init() failed");
		return -1;
	}
	if (secmem_disable_dumps(msg, msglen) != 0)
		return -1;
	return secmem_mlock_apply(p, msg, msglen);
}

/* ---- wipe-on-free heap blocks --------------------------------------------------------- */

size_t
secmem_wipe_block(void *p)
{
	/* The usable size covers every byte the owner could have written. */
	size_t n = malloc_usable_size(p);

	sodium_memzero(p, n);
	return n;
}

void
secmem_wipe_free(void *p)
{
	if (p == NULL)
		return;
	secmem_wipe_block(p);
	free(p);
}

void *
secmem_wipe_malloc(size_t n)
{
	return malloc(n);
}

void *
secmem_wipe_calloc(size_t nmemb, size_t size)
{
	return calloc(nmemb, size);
}

char *
secmem_wipe_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d;

	if ((d = malloc(n)) != NULL)
		memcpy(d, s, n);
	return d;
}

void *
secmem_wipe_realloc(void *p, size_t n)
{
	size_t old;
	void *q;

	if (p == NULL)
		return malloc(n);
	if (n == 0) {
		secmem_wipe_free(p);
		return NULL;
	}
	old = malloc_usable_size(p);
	/* In place when it fits; not under ASan, whose usable size is the size
	 * asked for, so that it keeps checking accesses past n. */
	if (n <= old && !SECMEM_UNDER_ASAN)
		return p;
	/* Not realloc(): when it moves a block, the old one is freed unwiped. */
	if ((q = malloc(n)) == NULL)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	secmem_wipe_free(p);
	return q;
}
