/*
 * secmem: process-wide memory protection, applied once at agent start-up.
 *
 * Owns: libsodium initialisation, keeping secrets out of core dumps and away
 * from ptrace (PR_SET_DUMPABLE 0, RLIMIT_CORE 0), the mlockall() policy from
 * `[cache] mlock = required | best-effort | off`, reading VmLck for stats, and
 * and the wipe-on-free heap allocator (secmem_wipe_*) that our buffers and the
 * libraries' allocation hooks (cJSON, libcurl, OpenSSL) use.
 *
 * This module does not log: functions that have something to say write it to
 * a caller buffer and the caller logs it (see each function for the level).
 */
#ifndef SMC_SECMEM_H
#define SMC_SECMEM_H

#include <stddef.h>
#include <stdint.h>

/* 1 when built with AddressSanitizer.  ASan reserves terabytes of shadow
 * mappings, so mlockall(MCL_FUTURE) cannot work there and the policy is
 * treated as off (with a notice). */
#if defined(__SANITIZE_ADDRESS__)
#define SECMEM_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SECMEM_UNDER_ASAN 1
#endif
#endif
#ifndef SECMEM_UNDER_ASAN
#define SECMEM_UNDER_ASAN 0
#endif

/* Suggested size for the message buffers below. */
#define SECMEM_MSG_MAX 512

/* With MCL_FUTURE every later mapping (heap growth, thread stacks, malloc
 * arenas) counts against RLIMIT_MEMLOCK and fails with EAGAIN past it, so
 * without CAP_IPC_LOCK the limit must exceed the current address-space size by
 * this much before the agent locks its memory (creating one glibc malloc
 * arena alone maps 64-128 MiB; each thread stack 8 MiB). */
#define SECMEM_MLOCK_HEADROOM ((uint64_t)256 << 20)

typedef enum {
	SECMEM_MLOCK_OFF = 0,     /* do not lock */
	SECMEM_MLOCK_BEST_EFFORT, /* lock if possible, otherwise warn loudly */
	SECMEM_MLOCK_REQUIRED,    /* refuse to start unless memory is locked */
} secmem_mlock_policy;

/* Parses "required", "best-effort" or "off" (exact, lower case).
 * Returns 0, or -1 (errno EINVAL) leaving *out untouched. */
int secmem_mlock_parse(const char *s, secmem_mlock_policy *out);

/* The configuration spelling of a policy ("best-effort", ...). */
const char *secmem_mlock_name(secmem_mlock_policy p);

/* sodium_init() wrapper; safe to call more than once.  Returns 0 or -1. */
int secmem_init(void);

/* Makes the process non-dumpable (no core file, no ptrace or /proc/PID/mem
 * access by other non-root processes) and sets RLIMIT_CORE to 0.
 * Returns 0, or -1 with the reason in err (caller logs at LOG_ERROR). */
int secmem_disable_dumps(char *err, size_t errlen);

/*
 * Applies the mlock policy: mlockall(MCL_CURRENT | MCL_FUTURE), with
 * MCL_ONFAULT where the kernel has it so that reserved but untouched memory
 * (thread stacks, arenas) is not made resident.  Without CAP_IPC_LOCK a finite
 * RLIMIT_MEMLOCK must leave SECMEM_MLOCK_HEADROOM above the current size.
 *   off:         does nothing; returns 0, msg empty.
 *   best-effort: returns 0; if memory could not be locked msg says why, the
 *                current limit and what to raise (caller logs at LOG_WARN).
 *   required:    returns -1 with the same explanation in msg if memory could
 *                not be locked (caller logs at LOG_ERROR and exits).
 * Under AddressSanitizer every policy behaves as off and returns 0 with a
 * notice in msg (caller logs at LOG_WARN).  On 0 with msg empty, memory is
 * locked (or the policy is off).
 */
int secmem_mlock_apply(secmem_mlock_policy p, char *msg, size_t msglen);

/* Start-up sequence: secmem_init(), secmem_disable_dumps(), then
 * secmem_mlock_apply(p).  Same return and msg contract as
 * secmem_mlock_apply(); a failure of the first two is an error (-1). */
int secmem_startup(secmem_mlock_policy p, char *msg, size_t msglen);

/* Locked memory of this process (VmLck in /proc/self/status), in bytes.
 * Returns 0, or -1 if it cannot be read. */
int secmem_locked_bytes(uint64_t *bytes);

/*
 * Makes the whole pages of a fresh sodium_malloc() block non-resident again:
 * sodium_malloc() fills the block with garbage, which touches (and under
 * mlockall locks) every page of it, so a large buffer that is only ever used
 * in part (a reply scratch sized for the largest frame) stayed resident in
 * full. The pages are unlocked, dropped (they read as zeros when next
 * touched) and locked again on fault (MLOCK_ONFAULT), so they are locked
 * from their first write as before (under AddressSanitizer, which makes
 * libsodium's mlock() a no-op, they stay unlocked). Only whole pages inside [p, p+len) are
 * dropped: the canary sodium_malloc() keeps just before p is never touched.
 * Call it before the block holds anything. Best effort, no error.
 */
void secmem_drop_fresh_pages(void *p, size_t len);

/* Whether this process has CAP_IPC_LOCK in its effective set (1), not (0),
 * or unknown (-1). */
int secmem_have_cap_ipc_lock(void);

/*
 * Wipe-on-free heap allocation: the one home for "a heap block that held
 * plaintext is zeroed before it goes back to the heap".  Used directly and as
 * the allocation hooks of the libraries secrets pass through: cJSON
 * (json_secure.c), libcurl (curl_global_init_mem) and OpenSSL
 * (CRYPTO_set_mem_functions), both installed by http_global_init().
 *
 * Blocks are the C library's own (malloc), and the size wiped is
 * malloc_usable_size(), every byte the caller could have written.  So a
 * block allocated before the hooks were installed may be freed through them
 * and the other way round, and under AddressSanitizer (whose malloc reports
 * the requested size) they still work.  Same signatures and contracts as
 * malloc, calloc, realloc, strdup and free, except:
 *   - secmem_wipe_realloc never leaves an unwiped copy: a block that must
 *     move is copied into a new one and the old one wiped and freed (a
 *     shrinking block stays where it is; it is wiped whole when freed).
 *     secmem_wipe_realloc(p, 0) frees p and returns NULL.
 *   - secmem_wipe_calloc, like calloc, refuses nmemb * size overflow (ENOMEM).
 * secmem_wipe_free(NULL) does nothing.
 */
void *secmem_wipe_malloc(size_t n);
void *secmem_wipe_calloc(size_t nmemb, size_t size);
void *secmem_wipe_realloc(void *p, size_t n);
char *secmem_wipe_strdup(const char *s);
void secmem_wipe_free(void *p);

/* Zeroes the whole usable size of a heap block (p from malloc and friends,
 * not NULL) without freeing it, and returns that size: for free hooks that
 * need to look at the block between wiping and freeing. */
size_t secmem_wipe_block(void *p);

#endif /* SMC_SECMEM_H */
