/*
 * smc_client_probe: drives libsmcache against a real agent for
 * tests/integration/test_libsmcache.py.
 *
 *   smc_client_probe threads SOCKET NTHREADS ITER ID=VERSION_ID...
 *	NTHREADS threads share one handle; each does ITER reads (every 10th a
 *	pipelined batch of all ids) and checks each answer's version id.
 *	Prints "ok READS" or the first mismatch/error; exit 0 only when all match.
 *   smc_client_probe loop SOCKET ID SECONDS
 *	Reads ID on one handle for SECONDS (the agent may restart meanwhile);
 *	prints "reads=N errors=M first_error=..." and exits 0 when M is 0.
 *   smc_client_probe fork SOCKET ID=VERSION_ID
 *	Reads, forks; parent and child both read 200 times on the same handle.
 *   smc_client_probe batch SOCKET ID...
 *	One batch; prints one line per id: "ok VERSION_ID" or "err CODE MESSAGE".
 */
#include <sys/wait.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smcache.h"

struct expect {
	char id[256];
	char version[128];
};

struct job {
	smc_client *c;
	const struct expect *ex;
	int nex, iter, reads, bad;
	char why[512];
};

static int
parse_expect(char **args, int n, struct expect *ex)
{
	int i;

	for (i = 0; i < n; i++) {
		const char *eq = strchr(args[i], '=');

		if (eq == NULL || (size_t)(eq - args[i]) >= sizeof(ex[i].id))
			return -1;
		memcpy(ex[i].id, args[i], (size_t)(eq - args[i]));
		ex[i].id[eq - args[i]] = '\0';
		snprintf(ex[i].version, sizeof(ex[i].version), "%s", eq + 1);
	}
	return 0;
}

static int
check(struct job *j, const struct expect *e, smc_secret *s, const smc_error *err)
{
	j->reads++;
	if (s == NULL) {
		snprintf(j->why, sizeof(j->why), "%.100s: error %d %.200s", e->id, err->code, err->message);
		return -1;
	}
	if (strcmp(smc_secret_version_id(s), e->version) != 0) {
		snprintf(j->why, sizeof(j->why), "%.100s: got version %.100s, want %.100s", e->id,
		    smc_secret_version_id(s), e->version);
		smc_secret_free(s);
		return -1;
	}
	smc_secret_free(s);
	return 0;
}

static void *
reader(void *arg)
{
	struct job *j = arg;
	smc_secret *s;
	smc_error err;
	smc_batch *b;
	int i, k;

	for (i = 0; i < j->iter && !j->bad; i++) {
		if (i % 10 == 9) {
			if ((b = smc_batch_new(j->c, &err)) == NULL)
				goto fail;
			for (k = 0; k < j->nex; k++)
				(void)smc_batch_add(b, j->ex[k].id, NULL, &err);
			if (smc_batch_run(b, 0, &err) == -1) {
				smc_batch_free(b);
				goto fail;
			}
			for (k = 0; k < j->nex && !j->bad; k++) {
				s = NULL;
				(void)smc_batch_take(b, (size_t)k, &s, &err);
				j->bad = check(j, &j->ex[k], s, &err) == -1;
			}
			smc_batch_free(b);
			continue;
		}
		k = i % j->nex;
		s = NULL;
		(void)smc_get(j->c, j->ex[k].id, NULL, &s, &err);
		j->bad = check(j, &j->ex[k], s, &err) == -1;
	}
	return NULL;
fail:
	snprintf(j->why, sizeof(j->why), "batch: %.300s", err.message);
	j->bad = 1;
	return NULL;
}

static int
cmd_threads(const char *sock, int nthreads, int iter, char **args, int n)
{
	struct expect ex[32];
	struct job jobs[64];
	pthread_t th[64];
	smc_error err;
	smc_client *c;
	int i, reads = 0, rc = 0;

	if (n < 1 || n > 32 || nthreads < 1 || nthreads > 64 || parse_expect(args, n, ex) == -1)
		return 2;
	if ((c = smc_connect(sock, 10000, &err)) == NULL) {
		printf("connect: %s\n", err.message);
		return 1;
	}
	for (i = 0; i < nthreads; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		jobs[i].c = c;
		jobs[i].ex = ex;
		jobs[i].nex = n;
		jobs[i].iter = iter;
		if (pthread_create(&th[i], NULL, reader, &jobs[i]) != 0)
			return 1;
	}
	for (i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		reads += jobs[i].reads;
		if (jobs[i].bad && rc == 0) {
			printf("thread %d: %s\n", i, jobs[i].why);
			rc = 1;
		}
	}
	smc_close(c);
	if (rc == 0)
		printf("ok %d\n", reads);
	return rc;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmd_loop(const char *sock, const char *id, double seconds)
{
	char first[300] = "";
	smc_secret *s;
	smc_error err;
	smc_client *c;
	double end = now_s() + seconds;
	long reads = 0, errors = 0;

	if ((c = smc_connect(sock, 15000, &err)) == NULL) {
		printf("connect: %s\n", err.message);
		return 1;
	}
	while (now_s() < end) {
		if (smc_get(c, id, NULL, &s, &err) == 0)
			smc_secret_free(s);
		else if (errors++ == 0)
			snprintf(first, sizeof(first), "%d %.250s", err.code, err.message);
		reads++;
		usleep(2000);
	}
	smc_close(c);
	printf("reads=%ld errors=%ld first_error=%s\n", reads, errors, first);
	return errors == 0 ? 0 : 1;
}

static int
cmd_fork(const char *sock, char *arg)
{
	struct expect ex;
	struct job j;
	smc_secret *s = NULL;
	smc_error err;
	smc_client *c;
	pid_t pid;
	int i, status;

	if (parse_expect(&arg, 1, &ex) == -1)
		return 2;
	if ((c = smc_connect(sock, 10000, &err)) == NULL)
		return 1;
	memset(&j, 0, sizeof(j));
	(void)smc_get(c, ex.id, NULL, &s, &err);
	if (check(&j, &ex, s, &err) == -1) {
		printf("before fork: %s\n", j.why);
		return 1;
	}
	if ((pid = fork()) == -1)
		return 1;
	for (i = 0; i < 200; i++) {
		s = NULL;
		(void)smc_get(c, ex.id, NULL, &s, &err);
		if (check(&j, &ex, s, &err) == -1) {
			printf("%s: %s\n", pid == 0 ? "child" : "parent", j.why);
			if (pid == 0)
				_exit(1);
			return 1;
		}
	}
	if (pid == 0) {
		smc_close(c);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("child failed\n");
		return 1;
	}
	smc_close(c);
	printf("ok\n");
	return 0;
}

static int
cmd_batch(const char *sock, char **ids, int n)
{
	smc_secret *s;
	smc_error err;
	smc_client *c;
	smc_batch *b;
	int i;

	if ((c = smc_connect(sock, 10000, &err)) == NULL || (b = smc_batch_new(c, &err)) == NULL) {
		printf("connect: %s\n", err.message);
		return 1;
	}
	for (i = 0; i < n; i++)
		if (smc_batch_add(b, ids[i], NULL, &err) == -1) {
			printf("add: %s\n", err.message);
			return 1;
		}
	if (smc_batch_run(b, 0, &err) == -1)
		printf("run: %d %s\n", err.code, err.message);
	for (i = 0; i < n; i++)
		if (smc_batch_take(b, (size_t)i, &s, &err) == 0) {
			printf("ok %s\n", smc_secret_version_id(s));
			smc_secret_free(s);
		} else
			printf("err %d %s\n", err.code, err.message);
	smc_batch_free(b);
	smc_close(c);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 6 && strcmp(argv[1], "threads") == 0)
		return cmd_threads(argv[2], atoi(argv[3]), atoi(argv[4]), argv + 5, argc - 5);
	if (argc == 5 && strcmp(argv[1], "loop") == 0)
		return cmd_loop(argv[2], argv[3], atof(argv[4]));
	if (argc == 4 && strcmp(argv[1], "fork") == 0)
		return cmd_fork(argv[2], argv[3]);
	if (argc >= 4 && strcmp(argv[1], "batch") == 0)
		return cmd_batch(argv[2], argv + 3, argc - 3);
	fprintf(stderr, "usage: see tests/tools/smc_client_probe.c\n");
	return 2;
}
