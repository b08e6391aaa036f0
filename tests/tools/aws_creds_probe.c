/*
 * aws_creds_probe: drives the agent's AWS credential chain from the
 * environment, for tests/integration/test_aws_credentials.py.
 *
 *   aws_creds_probe [--watch SECONDS] [--interval MS] [--region R] [--verbose]
 *
 * Resolves region/profile (aws_resolve), builds the HTTP client and the
 * provider, waits for credentials and prints "key=value" lines:
 *   source=, access_key_id=, session_token=yes|no, expiration=EPOCH|never,
 *   expires_in=SECONDS; secret_match=yes|no and token_match=yes|no when
 *   SMC_PROBE_EXPECT_SECRET / SMC_PROBE_EXPECT_TOKEN are set (the probe
 *   compares, it never prints a secret key or a token).
 * With --watch it then keeps running, every --interval ms calling
 * aws_credentials_current() and aws_credentials_get(), and prints
 *   refresh access_key_id=... expiration=...   when the credentials changed
 *   miss t=...                                 when current() gave NULL
 *   summary refreshes=N misses=N get_errors=N expired_seen=N
 * Exit status: 0 ok, 1 no credentials (error= line), 2 set-up error.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <sodium.h>

#include "aws_credentials.h"
#include "aws_profile.h"
#include "http.h"
#include "log.h"

struct probe {
	struct event_base *base;
	struct aws_credential_provider *prov;
	struct event *tick;
	struct timespec start;
	long interval_ms;
	long watch_ms;
	int status;
	bool first_done;
	char last_akid[128];
	time_t last_exp;
	unsigned refreshes, misses, get_errors, expired_seen, gets_pending;
};

static long
elapsed_ms(const struct probe *pr)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - pr->start.tv_sec) * 1000 + (now.tv_nsec - pr->start.tv_nsec) / 1000000;
}

static void
print_match(const char *label, const char *env, const char *have)
{
	const char *want = getenv(env);

	if (want != NULL)
		printf("%s=%s\n", label, strcmp(want, have) == 0 ? "yes" : "no");
}

static void
first_cb(void *arg, const struct aws_credentials *c, const char *error)
{
	struct probe *pr = arg;
	time_t now = time(NULL);

	pr->first_done = true;
	if (c == NULL) {
		printf("error=%s\n", error);
		pr->status = 1;
		event_base_loopexit(pr->base, NULL);
		return;
	}
	printf("source=%s\n", c->source);
	printf("access_key_id=%s\n", c->access_key_id);
	printf("session_token=%s\n", c->session_token[0] != '\0' ? "yes" : "no");
	if (c->expiration != 0) {
		printf("expiration=%lld\n", (long long)c->expiration);
		printf("expires_in=%lld\n", (long long)(c->expiration - now));
	} else {
		printf("expiration=never\n");
	}
	print_match("secret_match", "SMC_PROBE_EXPECT_SECRET", c->secret_access_key);
	print_match("token_match", "SMC_PROBE_EXPECT_TOKEN", c->session_token);
	fflush(stdout);
	snprintf(pr->last_akid, sizeof(pr->last_akid), "%s", c->access_key_id);
	pr->last_exp = c->expiration;
	if (pr->watch_ms <= 0) {
		event_base_loopexit(pr->base, NULL);
		return;
	}
	{
		struct timeval tv = { pr->interval_ms / 1000, (pr->interval_ms % 1000) * 1000 };

		evtimer_add(pr->tick, &tv);
	}
}

static void
watch_get_cb(void *arg, const struct aws_credentials *c, const char *error)
{
	struct probe *pr = arg;

	pr->gets_pending--;
	if (c == NULL) {
		pr->get_errors++;
		printf("get_error t=%ld %s\n", elapsed_ms(pr), error);
	} else if (c->expiration != 0 && c->expiration <= time(NULL)) {
		pr->expired_seen++;
	}
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe *pr = arg;
	const struct aws_credentials *c;
	struct timeval tv = { pr->interval_ms / 1000, (pr->interval_ms % 1000) * 1000 };
	long t = elapsed_ms(pr);

	c = aws_credentials_current(pr->prov);
	if (c == NULL) {
		pr->misses++;
		printf("miss t=%ld\n", t);
	} else {
		if (c->expiration != 0 && c->expiration <= time(NULL))
			pr->expired_seen++;
		if (strcmp(c->access_key_id, pr->last_akid) != 0 || c->expiration != pr->last_exp) {
			pr->refreshes++;
			printf("refresh t=%ld access_key_id=%s expiration=%lld\n", t,
			    c->access_key_id, (long long)c->expiration);
			snprintf(pr->last_akid, sizeof(pr->last_akid), "%s", c->access_key_id);
			pr->last_exp = c->expiration;
		}
	}
	if (aws_credentials_get(pr->prov, watch_get_cb, pr) == 0)
		pr->gets_pending++;
	fflush(stdout);
	if (t >= pr->watch_ms) {
		/* Waiters still pending are dropped by aws_credentials_free(). */
		printf("summary refreshes=%u misses=%u get_errors=%u expired_seen=%u\n",
		    pr->refreshes, pr->misses, pr->get_errors, pr->expired_seen);
		event_base_loopexit(pr->base, NULL);
		return;
	}
	evtimer_add(pr->tick, &tv);
}

static void
usage(void)
{
	fprintf(stderr, "usage: aws_creds_probe [--watch SECONDS] [--interval MS] "
	    "[--region R] [--verbose]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct http_client_options hopts = { 0 };
	struct aws_settings settings = { 0 };
	struct http_client *http = NULL;
	struct aws_resolved *resolved = NULL;
	struct probe pr;
	char err[512];
	int i;

	memset(&pr, 0, sizeof(pr));
	pr.interval_ms = 250;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--watch") == 0 && i + 1 < argc)
			pr.watch_ms = atol(argv[++i]) * 1000;
		else if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc)
			pr.interval_ms = atol(argv[++i]);
		else if (strcmp(argv[i], "--region") == 0 && i + 1 < argc)
			settings.region = argv[++i];
		else if (strcmp(argv[i], "--verbose") == 0)
			log_set_level(LOG_DEBUG);
		else
			usage();
	}
	if (pr.interval_ms <= 0)
		usage();
	if (sodium_init() < 0) {
		printf("error=libsodium\n");
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &pr.start);
	pr.status = 0;
	if ((pr.base = event_base_new()) == NULL ||
	    (pr.tick = evtimer_new(pr.base, tick_cb, &pr)) == NULL ||
	    (resolved = calloc(1, sizeof(*resolved))) == NULL) {
		printf("error=out of memory\n");
		return 2;
	}
	if (aws_resolve(&settings, resolved, err, sizeof(err)) != 0 ||
	    (http = http_client_new(pr.base, &hopts, err, sizeof(err))) == NULL ||
	    (pr.prov = aws_credentials_new(pr.base, http, resolved, err, sizeof(err))) == NULL) {
		printf("error=%s\n", err);
		pr.status = 2;
		goto out;
	}
	printf("provider=%s\n", aws_credentials_source(pr.prov));
	fflush(stdout);
	if (aws_credentials_get(pr.prov, first_cb, &pr) != 0) {
		printf("error=aws_credentials_get: %s\n", strerror(errno));
		pr.status = 2;
		goto out;
	}
	if (pr.first_done) {
		printf("error=callback ran before aws_credentials_get returned\n");
		pr.status = 2;
		goto out;
	}
	event_base_dispatch(pr.base);
	printf("elapsed_ms=%ld\n", elapsed_ms(&pr));
out:
	aws_credentials_free(pr.prov);
	http_client_free(http);
	if (pr.tick != NULL)
		event_free(pr.tick);
	free(resolved);
	if (pr.base != NULL)
		event_base_free(pr.base);
	fflush(stdout);
	return pr.status;
}
