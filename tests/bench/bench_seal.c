/*
 * bench_seal: cost of agent/cache/seal operations, to size the batching of key
 * opens.  Prints ns/op for seal and unseal at a few sizes with the key held
 * open (batch), for one-shot unseal (an mprotect pair per op) and for the
 * open/close pair alone.  Usage: bench_seal [iterations]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "seal.h"

#define ARN "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bench-AbCdEf"
#define VER "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void
report(const char *what, size_t size, long iters, double ns)
{
	printf("%-28s %6zu B  %9.0f ns/op\n", what, size, ns / (double)iters);
}

int
main(int argc, char **argv)
{
	static const size_t sizes[] = { 32, 1024, 4096, 65536 };
	long iters = argc > 1 ? atol(argv[1]) : 20000, i;
	uint8_t *plain, *blob, *out;
	size_t blen = 0, n = 0, k;
	seal_ctx *s;
	double t;
	int rc = 1;

	if (iters <= 0 || sodium_init() < 0 || (s = seal_ctx_new()) == NULL)
		return 1;
	plain = malloc(SEAL_MAX_PLAIN);
	blob = malloc(SEAL_MAX_BLOB);
	out = sodium_malloc(SEAL_MAX_PADDED); /* locked, as the cache's buffers */
	if (plain == NULL || blob == NULL || out == NULL)
		goto out;
	randombytes_buf(plain, SEAL_MAX_PLAIN);

	t = now_ns();
	for (i = 0; i < iters; i++) {
		if (seal_key_open(s) != 0)
			goto out;
		seal_key_close(s);
	}
	report("key open+close", 0, iters, now_ns() - t);

	for (k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		size_t sz = sizes[k];
		long it = sz > 4096 ? iters / 16 + 1 : iters;

		if (seal_key_open(s) != 0)
			goto out;
		t = now_ns();
		for (i = 0; i < it; i++)
			if (seal_seal(s, ARN, VER, plain, sz, blob, SEAL_MAX_BLOB, &blen) != 0)
				goto out;
		report("seal (key open)", sz, it, now_ns() - t);
		t = now_ns();
		for (i = 0; i < it; i++)
			if (seal_unseal(s, ARN, VER, blob, blen, out, SEAL_MAX_PADDED, &n) != 0 || n != sz)
				goto out;
		report("unseal (key open)", sz, it, now_ns() - t);
		seal_key_close(s);

		t = now_ns();
		for (i = 0; i < it; i++)
			if (seal_unseal_once(s, ARN, VER, blob, blen, out, SEAL_MAX_PADDED, &n) != 0)
				goto out;
		report("unseal_once (open per op)", sz, it, now_ns() - t);
	}
	rc = 0;

out:
	if (rc != 0)
		fprintf(stderr, "bench_seal: operation failed\n");
	sodium_free(out);
	free(blob);
	free(plain);
	seal_ctx_free(s);
	return rc;
}
