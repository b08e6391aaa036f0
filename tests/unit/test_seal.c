/*
 * Unit tests for agent/seal: round trips, padding classes, tampering, identity
 * binding, key protection (fork + SIGSEGV) and open/close nesting.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include <cmocka.h>
#include <sodium.h>

#include "seal.h"
#include "secmem.h"

#define ARN_A "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db/main-AbCdEf"
#define ARN_B "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db/other-XyZ123"
#define VER_1 "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"
#define VER_2 "EXAMPLE2-90ab-cdef-fedc-ba987EXAMPLE"

/* The padded size of the smallest class (values up to 64 bytes), and its blob. */
#define SMALL_PADDED (64 + SEAL_TRAILERBYTES)
#define SMALL_BLOB   (SEAL_OVERHEAD + SMALL_PADDED)

static seal_ctx *ctx;
static enum seal_aead aead;	/* every test runs once per AEAD (see main) */

static seal_ctx *
new_ctx(void)
{
	return seal_ctx_new_aead(aead);
}

static int
group_setup(void **state)
{
	(void)state;
	ctx = new_ctx();
	return ctx == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	seal_ctx_free(ctx);
	ctx = NULL;
	return 0;
}

/* A sealed value with its own buffers, sized exactly so ASan sees overruns. */
struct sealed {
	uint8_t *blob;
	size_t   len;
};

static struct sealed
seal_value(const char *arn, const char *ver, const uint8_t *plain, size_t n)
{
	struct sealed r;
	size_t size = seal_sealed_size(n);

	assert_true(size > 0);
	r.blob = malloc(size);
	assert_non_null(r.blob);
	assert_int_equal(seal_seal_once(ctx, arn, ver, plain, n, r.blob, size, &r.len), 0);
	assert_int_equal(r.len, size);
	return r;
}

/* Unseal into a buffer of exactly seal_plain_capacity() bytes (pre-filled
 * with junk); returns its result and the buffer through *outp. */
static int
unseal_value(const char *arn, const char *ver, const uint8_t *blob, size_t len,
             uint8_t **outp, size_t *cap, size_t *plain_len)
{
	size_t c = seal_plain_capacity(len);
	uint8_t *out = malloc(c > 0 ? c : 1);
	int rc;

	assert_non_null(out);
	memset(out, 0xAA, c > 0 ? c : 1);
	rc = seal_unseal_once(ctx, arn, ver, blob, len, out, c > 0 ? c : 1, plain_len);
	*outp = out;
	*cap = c > 0 ? c : 1;
	return rc;
}

static int
all_zero(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

static void
test_round_trip_sizes(void **state)
{
	static const size_t sizes[] = { 0, 1, 60, 61, 63, 64, 65, 1023, 1024, 1025, 4092,
	                                4093, 4095, 4096, 4097, 65536, 65537, SEAL_MAX_PLAIN };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t n = sizes[i], cap, got = 12345;
		uint8_t *plain = malloc(n > 0 ? n : 1), *out;
		struct sealed s;

		assert_non_null(plain);
		randombytes_buf(plain, n);
		s = seal_value(ARN_A, VER_1, plain, n);
		assert_int_equal(unseal_value(ARN_A, VER_1, s.blob, s.len, &out, &cap, &got), 0);
		assert_int_equal(got, n);
		assert_memory_equal(out, plain, n);
		/* Everything after the value is zero: padding wiped, NUL-terminated. */
		assert_true(cap > n);
		assert_true(all_zero(out + n, cap - n));
		/* The plaintext does not appear in the blob. */
		if (n >= 16)
			assert_null(memmem(s.blob, s.len, plain, 16));
		free(out);
		free(s.blob);
		free(plain);
	}
}

static void
test_batch_open(void **state)
{
	static const uint8_t v[] = "hunter2";
	uint8_t blob[SMALL_BLOB], out[SMALL_PADDED];
	size_t blen, n, i;

	(void)state;
	assert_int_equal(seal_key_open(ctx), 0);
	for (i = 0; i < 8; i++) {
		assert_int_equal(seal_seal(ctx, ARN_A, VER_1, v, sizeof v - 1, blob, sizeof blob, &blen), 0);
		assert_int_equal(blen, sizeof blob);
		assert_int_equal(seal_unseal(ctx, ARN_A, VER_1, blob, blen, out, sizeof out, &n), 0);
		assert_int_equal(n, sizeof v - 1);
		assert_string_equal((const char *)out, "hunter2");
	}
	seal_key_close(ctx);
	assert_int_equal(seal_key_depth(ctx), 0);
}

static void
test_sizes_and_classes(void **state)
{
	static const struct { size_t plain, padded; } t[] = {
		/* A class holds the value; the 4-byte length trailer comes on top, so
		 * a value of exactly a class's size stays in that class. */
		{ 0, 68 }, { 1, 68 }, { 60, 68 }, { 63, 68 }, { 64, 68 },
		{ 65, 132 }, { 124, 132 }, { 128, 132 }, { 129, 260 },
		{ 1000, 1028 }, { 1020, 1028 }, { 1024, 1028 }, { 1025, 2052 },
		{ 4092, 4100 }, { 4096, 4100 }, { 4097, 8196 }, { 8188, 8196 },
		{ 8192, 8196 }, { 8193, 12292 }, { 65532, 65540 }, { 65536, 65540 },
		{ 65537, 69636 }, { SEAL_MAX_PLAIN, SEAL_MAX_PADDED },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		assert_int_equal(seal_sealed_size(t[i].plain), t[i].padded + SEAL_OVERHEAD);
		assert_int_equal(seal_plain_capacity(t[i].padded + SEAL_OVERHEAD), t[i].padded);
	}
	assert_int_equal(SEAL_OVERHEAD, 24);
	assert_int_equal(SEAL_MAX_PLAIN, 69632);
	assert_int_equal(SEAL_MAX_PADDED, 69636);
	assert_int_equal(SEAL_MAX_BLOB, 69660);
	/* A 1 KiB value: counter 8, class 1024 + trailer 4, tag 16. */
	assert_int_equal(seal_sealed_size(1024), 1052);
	assert_int_equal(seal_sealed_size(SEAL_MAX_PLAIN + 1), 0);
	assert_int_equal(seal_sealed_size(SIZE_MAX), 0);
	/* Lengths no class produces, among them the old trailer-inside sizes. */
	assert_int_equal(seal_plain_capacity(0), 0);
	assert_int_equal(seal_plain_capacity(SEAL_OVERHEAD), 0);
	assert_int_equal(seal_plain_capacity(SEAL_OVERHEAD + 4), 0);
	assert_int_equal(seal_plain_capacity(SEAL_OVERHEAD + 32), 0);
	assert_int_equal(seal_plain_capacity(SEAL_OVERHEAD + 36), 0);
	assert_int_equal(seal_plain_capacity(SEAL_OVERHEAD + 64), 0);
	assert_int_equal(seal_plain_capacity(SEAL_OVERHEAD + 65), 0);
	assert_int_equal(seal_plain_capacity(SEAL_OVERHEAD + 67), 0);
	assert_int_equal(seal_plain_capacity(SEAL_OVERHEAD + 69), 0);
	assert_int_equal(seal_plain_capacity(SEAL_OVERHEAD + 100), 0);
	assert_int_equal(seal_plain_capacity(SEAL_OVERHEAD + 1024), 0);
	assert_int_equal(seal_plain_capacity(SEAL_OVERHEAD + 2048), 0);
	assert_int_equal(seal_plain_capacity(SEAL_OVERHEAD + 6148), 0);
	assert_int_equal(seal_plain_capacity(SEAL_OVERHEAD + 8192), 0);
	assert_int_equal(seal_plain_capacity(SEAL_OVERHEAD + 8197), 0);
	assert_int_equal(seal_plain_capacity(SEAL_OVERHEAD + SEAL_MAX_PADDED + 4096), 0);
	assert_int_equal(seal_plain_capacity(SIZE_MAX), 0);
}

static void
test_padding_hides_length(void **state)
{
	/* Lengths within one class seal to the same size; includes both ends
	 * of classes (0 and 64, 65 and 128, 1000 and 1024, 4097 and 8192). */
	static const size_t pairs[][2] = { { 0, 64 }, { 10, 50 }, { 65, 128 }, { 100, 120 },
	                                   { 300, 500 }, { 1000, 1024 }, { 4097, 8192 },
	                                   { 5000, 8000 } };
	uint8_t plain[8192];
	size_t i;

	(void)state;
	memset(plain, 'x', sizeof plain);
	for (i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
		struct sealed a = seal_value(ARN_A, VER_1, plain, pairs[i][0]);
		struct sealed b = seal_value(ARN_A, VER_1, plain, pairs[i][1]);

		assert_int_equal(a.len, b.len);
		free(a.blob);
		free(b.blob);
	}
}

static void
test_tamper_every_byte(void **state)
{
	uint8_t plain[100], *out;
	struct sealed s;
	size_t i, cap, got;
	int bit;

	(void)state;
	randombytes_buf(plain, sizeof plain);
	s = seal_value(ARN_A, VER_1, plain, sizeof plain);
	assert_int_equal(s.len, SEAL_NONCEBYTES + 128 + SEAL_TRAILERBYTES + SEAL_TAGBYTES);
	/* Counter [0,8), ciphertext [8,140), tag [140,156): every byte, two bits. */
	for (i = 0; i < s.len; i++) {
		for (bit = 0; bit < 8; bit += 7) {
			s.blob[i] ^= (uint8_t)(1u << bit);
			errno = 0;
			got = 999;
			assert_int_equal(unseal_value(ARN_A, VER_1, s.blob, s.len, &out, &cap, &got), -1);
			assert_int_equal(errno, EBADMSG);
			assert_int_equal(got, 0);
			assert_true(all_zero(out, cap));
			free(out);
			s.blob[i] ^= (uint8_t)(1u << bit);
		}
	}
	/* Untouched again: still opens. */
	assert_int_equal(unseal_value(ARN_A, VER_1, s.blob, s.len, &out, &cap, &got), 0);
	assert_memory_equal(out, plain, sizeof plain);
	free(out);
	free(s.blob);
}

static void
test_truncated_and_extended(void **state)
{
	uint8_t plain[10] = "0123456789", blob[SMALL_BLOB + 1], out[128];
	size_t blen, got;

	(void)state;
	assert_int_equal(seal_seal_once(ctx, ARN_A, VER_1, plain, sizeof plain, blob, sizeof blob, &blen), 0);
	assert_int_equal(blen, SMALL_BLOB);
	blob[blen] = 0;
	memset(out, 0xAA, sizeof out);
	errno = 0;
	assert_int_equal(seal_unseal_once(ctx, ARN_A, VER_1, blob, blen - 1, out, sizeof out, &got), -1);
	assert_int_equal(errno, EINVAL);
	assert_true(all_zero(out, sizeof out));
	memset(out, 0xAA, sizeof out);
	assert_int_equal(seal_unseal_once(ctx, ARN_A, VER_1, blob, blen + 1, out, sizeof out, &got), -1);
	assert_true(all_zero(out, sizeof out));
	assert_int_equal(seal_unseal_once(ctx, ARN_A, VER_1, blob, 0, out, sizeof out, &got), -1);
	assert_int_equal(seal_unseal_once(ctx, ARN_A, VER_1, blob, blen, out, sizeof out, &got), 0);
	assert_int_equal(got, sizeof plain);
}

static void
expect_wrong_identity(const struct sealed *s, const char *arn, const char *ver)
{
	uint8_t *out;
	size_t cap, got = 1;

	errno = 0;
	assert_int_equal(unseal_value(arn, ver, s->blob, s->len, &out, &cap, &got), -1);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(got, 0);
	assert_true(all_zero(out, cap));
	free(out);
}

static void
test_identity_binding(void **state)
{
	static const uint8_t v[] = "s3cr3t-value";
	struct sealed s, e, x;
	uint8_t *out;
	size_t cap, got;

	(void)state;
	s = seal_value(ARN_A, VER_1, v, sizeof v - 1);
	expect_wrong_identity(&s, ARN_B, VER_1);      /* other ARN */
	expect_wrong_identity(&s, ARN_A, VER_2);      /* other VersionId */
	expect_wrong_identity(&s, ARN_B, VER_2);
	expect_wrong_identity(&s, ARN_A VER_1, "");   /* fields run together */
	expect_wrong_identity(&s, "", ARN_A VER_1);
	expect_wrong_identity(&s, VER_1, ARN_A);      /* fields swapped */

	/* Boundary shift: ("ab","c") and ("a","bc") are different identities. */
	x = seal_value("ab", "c", v, sizeof v - 1);
	expect_wrong_identity(&x, "a", "bc");
	expect_wrong_identity(&x, "abc", "");
	expect_wrong_identity(&x, "", "abc");
	assert_int_equal(unseal_value("ab", "c", x.blob, x.len, &out, &cap, &got), 0);
	assert_int_equal(got, sizeof v - 1);
	free(out);

	/* Empty identifiers are legal and still bound. */
	e = seal_value("", "", v, sizeof v - 1);
	assert_int_equal(unseal_value("", "", e.blob, e.len, &out, &cap, &got), 0);
	free(out);
	expect_wrong_identity(&e, "", "x");

	free(s.blob);
	free(e.blob);
	free(x.blob);
}

static void
test_swapped_blobs(void **state)
{
	static const uint8_t va[] = "value-of-a", vb[] = "value-of-b";
	struct sealed a, b;
	uint8_t *out;
	size_t cap, got;

	(void)state;
	a = seal_value(ARN_A, VER_1, va, sizeof va - 1);
	b = seal_value(ARN_B, VER_1, vb, sizeof vb - 1);
	assert_int_equal(a.len, b.len);
	/* Swap the blobs between the two entries: both must refuse. */
	expect_wrong_identity(&b, ARN_A, VER_1);
	expect_wrong_identity(&a, ARN_B, VER_1);
	assert_int_equal(unseal_value(ARN_B, VER_1, b.blob, b.len, &out, &cap, &got), 0);
	assert_memory_equal(out, vb, sizeof vb - 1);
	free(out);
	free(a.blob);
	free(b.blob);
}

static void
test_other_key_fails(void **state)
{
	static const uint8_t v[] = "value";
	seal_ctx *other = new_ctx();
	uint8_t blob[SMALL_BLOB], out[SMALL_PADDED];
	size_t blen, got;

	(void)state;
	assert_non_null(other);
	assert_int_equal(seal_seal_once(other, ARN_A, VER_1, v, sizeof v - 1, blob, sizeof blob, &blen), 0);
	assert_int_equal(seal_unseal_once(ctx, ARN_A, VER_1, blob, blen, out, sizeof out, &got), -1);
	assert_int_equal(seal_unseal_once(other, ARN_A, VER_1, blob, blen, out, sizeof out, &got), 0);
	seal_ctx_free(other);
}

static void
test_fresh_nonce(void **state)
{
	static const uint8_t v[] = "same value";
	struct sealed a, b;

	(void)state;
	a = seal_value(ARN_A, VER_1, v, sizeof v - 1);
	b = seal_value(ARN_A, VER_1, v, sizeof v - 1);
	assert_memory_not_equal(a.blob, b.blob, SEAL_NONCEBYTES);
	assert_memory_not_equal(a.blob + SEAL_NONCEBYTES, b.blob + SEAL_NONCEBYTES,
	                        a.len - SEAL_NONCEBYTES);
	free(a.blob);
	free(b.blob);
}

/* The stored nonce is the context's seal counter: it grows with every seal,
 * so no two blobs under one key share a nonce (the prefix is the same). */
static void
test_nonces_never_repeat(void **state)
{
	static const uint8_t v[] = "value";
	uint64_t prev = 0, cur;
	int i, k;

	(void)state;
	for (i = 0; i < 4096; i++) {
		struct sealed a = seal_value(ARN_A, VER_1, v, sizeof v - 1);

		cur = 0;
		for (k = 0; k < (int)SEAL_NONCEBYTES; k++)
			cur = cur << 8 | a.blob[k];
		if (i > 0)
			assert_true(cur > prev);
		prev = cur;
		free(a.blob);
	}
}

static void
test_bad_arguments(void **state)
{
	static const uint8_t v[] = "value";
	uint8_t blob[SMALL_BLOB], out[SMALL_PADDED], *big;
	char *long_id;
	size_t blen = 7, got = 7;

	(void)state;
	/* Output buffer one byte short: refused, and nothing left in it. */
	memset(blob, 0xAA, sizeof blob);
	errno = 0;
	assert_int_equal(seal_seal_once(ctx, ARN_A, VER_1, v, sizeof v - 1, blob, sizeof blob - 1, &blen), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(blen, 0);
	assert_true(all_zero(blob, sizeof blob - 1));

	assert_int_equal(seal_seal_once(ctx, ARN_A, VER_1, v, sizeof v - 1, blob, sizeof blob, NULL), 0);
	memset(out, 0xAA, sizeof out);
	errno = 0;
	assert_int_equal(seal_unseal_once(ctx, ARN_A, VER_1, blob, sizeof blob, out, sizeof out - 1, &got), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(got, 0);
	assert_true(all_zero(out, sizeof out - 1));

	/* Too long a plaintext. */
	big = calloc(1, SEAL_MAX_PLAIN + 1);
	assert_non_null(big);
	errno = 0;
	assert_int_equal(seal_seal_once(ctx, ARN_A, VER_1, big, SEAL_MAX_PLAIN + 1, blob, sizeof blob, &blen), -1);
	assert_int_equal(errno, EINVAL);
	free(big);

	/* Identifiers: SEAL_ID_MAX bytes fit, one more does not. */
	long_id = malloc(SEAL_ID_MAX + 2);
	assert_non_null(long_id);
	memset(long_id, 'a', SEAL_ID_MAX);
	long_id[SEAL_ID_MAX] = '\0';
	assert_int_equal(seal_seal_once(ctx, long_id, long_id, v, sizeof v - 1, blob, sizeof blob, &blen), 0);
	assert_int_equal(seal_unseal_once(ctx, long_id, long_id, blob, blen, out, sizeof out, &got), 0);
	long_id[SEAL_ID_MAX] = 'a';
	long_id[SEAL_ID_MAX + 1] = '\0';
	errno = 0;
	assert_int_equal(seal_seal_once(ctx, long_id, VER_1, v, sizeof v - 1, blob, sizeof blob, &blen), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(seal_unseal_once(ctx, ARN_A, long_id, blob, sizeof blob, out, sizeof out, &got), -1);
	assert_int_equal(errno, EINVAL);
	free(long_id);
}

/* ---- key protection, observed from forked children ---- */

enum probe { PROBE_READ_KEY, PROBE_SEAL_CLOSED };

/* Runs the probe in a child and returns its wait status.  The child restores
 * the default SIGSEGV/SIGABRT action (cmocka and ASan install handlers) and
 * cannot leave a core file. */
static int
probe_in_child(enum probe what)
{
	const struct rlimit nocore = { 0, 0 };
	pid_t pid;
	int status = 0;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);

		(void)setrlimit(RLIMIT_CORE, &nocore);
		signal(SIGSEGV, SIG_DFL);
		signal(SIGBUS, SIG_DFL);
		signal(SIGABRT, SIG_DFL);
		if (devnull >= 0)
			dup2(devnull, STDERR_FILENO); /* the expected assert message */
		if (what == PROBE_READ_KEY) {
			volatile const uint8_t *k = seal_key_addr(ctx);

			(void)k[0];
		} else {
			uint8_t blob[SMALL_BLOB];
			size_t blen;

			(void)seal_seal(ctx, ARN_A, VER_1, (const uint8_t *)"x", 1, blob,
			                sizeof blob, &blen);
		}
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void
test_key_unreadable_when_closed(void **state)
{
	int st;

	(void)state;
	assert_int_equal(seal_key_depth(ctx), 0);
	st = probe_in_child(PROBE_READ_KEY);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSEGV);

	/* Control: the same read succeeds while the key is open. */
	assert_int_equal(seal_key_open(ctx), 0);
	st = probe_in_child(PROBE_READ_KEY);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	seal_key_close(ctx);

	/* And it is closed again afterwards. */
	st = probe_in_child(PROBE_READ_KEY);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSEGV);
}

static void
test_seal_with_closed_key_dies(void **state)
{
	int st;

	(void)state;
	st = probe_in_child(PROBE_SEAL_CLOSED);
	/* assert() when enabled (SIGABRT), otherwise the guarded page (SIGSEGV). */
	assert_true(WIFSIGNALED(st));
	assert_true(WTERMSIG(st) == SIGABRT || WTERMSIG(st) == SIGSEGV);
}

static void
test_nesting(void **state)
{
	static const uint8_t v[] = "nested";
	uint8_t blob[SMALL_BLOB], out[SMALL_PADDED];
	size_t blen, got;
	int st;

	(void)state;
	assert_int_equal(seal_key_depth(ctx), 0);
	assert_int_equal(seal_key_open(ctx), 0);
	assert_int_equal(seal_key_open(ctx), 0);
	assert_int_equal(seal_key_depth(ctx), 2);
	/* A one-shot call inside a batch leaves the batch open. */
	assert_int_equal(seal_seal_once(ctx, ARN_A, VER_1, v, sizeof v - 1, blob, sizeof blob, &blen), 0);
	assert_int_equal(seal_key_depth(ctx), 2);
	seal_key_close(ctx);
	assert_int_equal(seal_key_depth(ctx), 1);
	/* Inner close did not protect the key: still usable and readable. */
	assert_int_equal(seal_unseal(ctx, ARN_A, VER_1, blob, blen, out, sizeof out, &got), 0);
	assert_string_equal((const char *)out, "nested");
	st = probe_in_child(PROBE_READ_KEY);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	seal_key_close(ctx);
	assert_int_equal(seal_key_depth(ctx), 0);
	st = probe_in_child(PROBE_READ_KEY);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSEGV);
}

static void
test_free_open_or_closed(void **state)
{
	seal_ctx *a = new_ctx(), *b = new_ctx();

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_not_equal(seal_key_addr(a), seal_key_addr(b));
	assert_int_equal(seal_key_open(a), 0);
	seal_ctx_free(a); /* open */
	seal_ctx_free(b); /* closed */
	seal_ctx_free(NULL);
}

/*
 * The construction is the one seal.h states: the blob opens with the
 * primitives directly, under the context's key, with the documented
 * associated data (label, then each identifier length-prefixed).
 */
static void
test_construction(void **state)
{
	static const uint8_t value[] = "the construction seal.h describes";
	unsigned char ad[256], *p = ad, subkey[32], npub[12] = { 0 }, nonce[24];
	uint8_t out[SMALL_PADDED];
	unsigned long long n = 0;
	struct sealed r;
	uint32_t len;

	(void)state;
	assert_int_equal(seal_ctx_aead(ctx), aead);
	r = seal_value(ARN_A, VER_1, value, sizeof value);
	memcpy(p, "smcache/seal/v1", 15);
	p += 15;
	len = (uint32_t)strlen(ARN_A);
	*p++ = (unsigned char)(len >> 24), *p++ = (unsigned char)(len >> 16);
	*p++ = (unsigned char)(len >> 8), *p++ = (unsigned char)len;
	memcpy(p, ARN_A, len);
	p += len;
	len = (uint32_t)strlen(VER_1);
	*p++ = (unsigned char)(len >> 24), *p++ = (unsigned char)(len >> 16);
	*p++ = (unsigned char)(len >> 8), *p++ = (unsigned char)len;
	memcpy(p, VER_1, len);
	p += len;
	/* the nonce: the context's 16 random bytes, then the counter the blob stores */
	memcpy(nonce, seal_nonce_prefix(ctx), 16);
	memcpy(nonce + 16, r.blob, SEAL_NONCEBYTES);
	assert_int_equal(seal_key_open(ctx), 0);
	if (aead == SEAL_AEAD_AES256GCM) {
		/* and not as XChaCha20-Poly1305 */
		assert_int_not_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(out, &n, NULL,
		    r.blob + SEAL_NONCEBYTES, r.len - SEAL_NONCEBYTES, ad, (size_t)(p - ad), nonce,
		    seal_key_addr(ctx)), 0);
		crypto_core_hchacha20(subkey, nonce, seal_key_addr(ctx), NULL);
		memcpy(npub, nonce + 16, 8);
		assert_int_equal(crypto_aead_aes256gcm_decrypt(out, &n, NULL,
		    r.blob + SEAL_NONCEBYTES, r.len - SEAL_NONCEBYTES, ad, (size_t)(p - ad), npub,
		    subkey), 0);
	} else {
		assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(out, &n, NULL,
		    r.blob + SEAL_NONCEBYTES, r.len - SEAL_NONCEBYTES, ad, (size_t)(p - ad), nonce,
		    seal_key_addr(ctx)), 0);
	}
	seal_key_close(ctx);
	assert_int_equal(n, SMALL_PADDED);
	assert_memory_equal(out, value, sizeof value);
	free(r.blob);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_sizes),
		cmocka_unit_test(test_batch_open),
		cmocka_unit_test(test_sizes_and_classes),
		cmocka_unit_test(test_padding_hides_length),
		cmocka_unit_test(test_tamper_every_byte),
		cmocka_unit_test(test_truncated_and_extended),
		cmocka_unit_test(test_identity_binding),
		cmocka_unit_test(test_swapped_blobs),
		cmocka_unit_test(test_other_key_fails),
		cmocka_unit_test(test_fresh_nonce),
		cmocka_unit_test(test_nonces_never_repeat),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_key_unreadable_when_closed),
		cmocka_unit_test(test_seal_with_closed_key_dies),
		cmocka_unit_test(test_nesting),
		cmocka_unit_test(test_free_open_or_closed),
		cmocka_unit_test(test_construction),
	};
	int failed;

	if (secmem_init() != 0)
		return 1;
	aead = SEAL_AEAD_XCHACHA20POLY1305;
	failed = cmocka_run_group_tests_name("seal XChaCha20-Poly1305", tests, group_setup,
	    group_teardown);
	if (!crypto_aead_aes256gcm_is_available()) {
		/* AUTO must not pick what the CPU cannot do. */
		seal_ctx *a = seal_ctx_new();

		if (a == NULL || seal_ctx_aead(a) != SEAL_AEAD_XCHACHA20POLY1305)
			failed++;
		seal_ctx_free(a);
		print_message("no AES-NI: the AES-256-GCM group is skipped\n");
		return failed;
	}
	aead = SEAL_AEAD_AES256GCM;
	failed += cmocka_run_group_tests_name("seal AES-256-GCM", tests, group_setup,
	    group_teardown);
	{
		seal_ctx *a = seal_ctx_new();

		if (a == NULL || seal_ctx_aead(a) != SEAL_AEAD_AES256GCM)
			failed++;
		seal_ctx_free(a);
	}
	return failed;
}
