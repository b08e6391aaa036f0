/*
 * lambda_mode: smcached as a Lambda extension (see lambda_mode.h).
 *
 * The AWS extension's variables and what they become here (values it would
 * refuse are refused, naming the variable):
 *   PARAMETERS_SECRETS_EXTENSION_HTTP_PORT (2773)   [http] listen = 127.0.0.1:PORT
 *   AWS_SESSION_TOKEN                               [http] ssrf_env_variables (the token)
 *   PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED      TRUE/FALSE; FALSE: ttl 1 s (see below)
 *   PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE (1000)  [cache] max_entries, 0..1000; 0: as FALSE
 *   SECRETS_MANAGER_TTL (300)                       [cache] ttl, 0..300 s; 0: as FALSE
 *   PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS (3) [aws] max_connections (upstream)
 *   SECRETS_MANAGER_TIMEOUT_MILLIS (0)              [aws] request_timeout, rounded up to
 *                                                   seconds; 0 (the AWS default: none) is 5 s
 *   PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL (INFO)   [agent] log_level; NONE: error
 *   SMCACHE_PREFETCH (ours)                          [cache] prefetch: fetched during INIT
 *                                                   (prefetch_jitter 0: INIT time is billed;
 *                                                   prefetch_timeout 10 s, INIT's own bound)
 * "No cache" cannot mean a fetch per request here (the cache is the agent);
 * it becomes a 1-second ttl, with concurrent reads still sharing one fetch.
 * The socket is /tmp/smcache/smcached.sock (/tmp is all Lambda lets us write).
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "agent.h"
#include "config.h"
#include "lambda_ext.h"
#include "lambda_mode.h"
#include "log.h"
#include "service.h"
#include "sys_clock.h"

struct lambda_mode {
	struct agent *agent;
	struct lambda_ext *ext;
	struct event *init_timer;
	uint64_t started_ms;
	int status;
};

/* ---- the environment ---------------------------------------------------------------- */

/* An unsigned decimal in [min, max], or the default when unset; -1 with err otherwise. */
static long
env_number(const char *name, long def, long min, long max, char *err, size_t errlen)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (v == NULL || v[0] == '\0')
		return def;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || !isdigit((unsigned char)v[0]) || n < min || n > max) {
		snprintf(err, errlen, "%s = '%.32s': expected a whole number from %ld to %ld",
		    name, v, min, max);
		return -1;
	}
	return n;
}

static int
env_bool(const char *name, bool def, bool *out, char *err, size_t errlen)
{
	const char *v = getenv(name);

	if (v == NULL || v[0] == '\0')
		*out = def;
	else if (strcasecmp(v, "true") == 0)
		*out = true;
	else if (strcasecmp(v, "false") == 0)
		*out = false;
	else {
		snprintf(err, errlen, "%s = '%.32s': expected TRUE or FALSE", name, v);
		return -1;
	}
	return 0;
}

static const char *
env_log_level(char *err, size_t errlen)
{
	static const char *const map[][2] = {
		{ "debug", "debug" }, { "info", "info" }, { "warn", "warn" },
		{ "error", "error" }, { "none", "error" },
	};
	const char *v = getenv("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL");

	if (v == NULL || v[0] == '\0')
		return "info";
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcasecmp(v, map[i][0]) == 0)
			return map[i][1];
	snprintf(err, errlen, "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL = '%.32s': expected DEBUG,"
	    " INFO, WARN, ERROR or NONE", v);
	return NULL;
}

/* The prefetch list as the config takes it: ids separated by commas or blanks. */
static int
env_prefetch(const char **out, char *err, size_t errlen)
{
	const char *v = getenv("SMCACHE_PREFETCH");

	*out = NULL;
	if (v == NULL || v[0] == '\0')
		return 0;
	if (strpbrk(v, "\n\r[;#") != NULL || strlen(v) > 190) {
		snprintf(err, errlen, "SMCACHE_PREFETCH: secret ids separated by commas, at most"
		    " 190 characters in all");
		return -1;
	}
	*out = v;
	return 0;
}

char *
lambda_mode_config_text(char *err, size_t errlen)
{
	long port, size, ttl, conns, timeout_ms;
	const char *level, *prefetch;
	bool enabled;
	char *text = NULL;

	if ((port = env_number("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", 2773, 1, 65535,
	    err, errlen)) < 0 ||
	    (size = env_number("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", 1000, 0, 1000,
	    err, errlen)) < 0 ||
	    (ttl = env_number("SECRETS_MANAGER_TTL", 300, 0, 300, err, errlen)) < 0 ||
	    (conns = env_number("PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", 3, 1, 1024,
	    err, errlen)) < 0 ||
	    (timeout_ms = env_number("SECRETS_MANAGER_TIMEOUT_MILLIS", 0, 0, 300000,
	    err, errlen)) < 0 ||
	    env_bool("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", true, &enabled, err, errlen) != 0 ||
	    (level = env_log_level(err, errlen)) == NULL ||
	    env_prefetch(&prefetch, err, errlen) != 0)
		return NULL;
	if (!enabled || size == 0 || ttl == 0) {
		ttl = 1;
		size = 1000;
	}
	if (timeout_ms == 0)
		timeout_ms = 5000;	/* "no timeout": the agent's own default */
	if (asprintf(&text,
	    "[agent]\n"
	    "socket = /tmp/smcache/smcached.sock\n"
	    "log_level = %s\n"
	    "[backend]\n"
	    "type = aws\n"
	    "[aws]\n"
	    "max_connections = %ld\n"
	    "request_timeout = %ld\n"
	    "upstream_timeout = %ld\n"
	    "[cache]\n"
	    "ttl = %ld\n"
	    "max_entries = %ld\n"
	    "mlock = best-effort\n"
	    "prefetch_jitter = 0\n"
	    "prefetch_timeout = 10\n"
	    "%s%s%s"
	    "[http]\n"
	    "listen = 127.0.0.1:%ld\n"
	    "ssrf_env_variables = AWS_SESSION_TOKEN\n",
	    level, conns, (timeout_ms + 999) / 1000,
	    (timeout_ms + 999) / 1000 * 2 > 8 ? (timeout_ms + 999) / 1000 * 2 : 8, ttl, size,
	    prefetch != NULL ? "prefetch = " : "", prefetch != NULL ? prefetch : "",
	    prefetch != NULL ? "\n" : "", port) < 0) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	return text;
}

/* ---- the run ------------------------------------------------------------------------ */

static void
on_shutdown(void *arg, const char *reason, int64_t deadline_ms)
{
	struct lambda_mode *mode = arg;

	log_info("Lambda SHUTDOWN (%s): stopping", reason);
	mode->status = 0;
	event_base_loopexit(mode->agent->base, NULL);
}

static void
on_fatal(void *arg, const char *why)
{
	struct lambda_mode *mode = arg;

	log_error("%s", why);
	mode->status = 1;
	event_base_loopexit(mode->agent->base, NULL);
}

/* INIT ends (the first event/next) once the service says the prefetch has ended or
 * readiness stopped waiting for it (service_when_prefetched, the one signal). */
static void
on_init_tick(evutil_socket_t fd, short what, void *arg)
{
	struct lambda_mode *mode = arg;

	(void)fd;
	(void)what;
	if (mode->agent->config->cache_prefetch != NULL)
		log_info("Lambda INIT: prefetch over after %llu ms",
		    (unsigned long long)(sys_clock_ms() - mode->started_ms));
	lambda_ext_ready(mode->ext);
}

static void
on_prefetched(void *arg)
{
	struct lambda_mode *mode = arg;
	struct timeval now = { 0, 0 };

	/* From the loop, after the registration this call may precede. */
	evtimer_add(mode->init_timer, &now);
}

struct lambda_mode *
lambda_mode_start(struct agent *agent, struct service *svc, const char *name, char *err,
    size_t errlen)
{
	struct lambda_ext_callbacks cb = { on_shutdown, on_fatal, NULL };
	struct lambda_mode *mode;

	if ((mode = calloc(1, sizeof(*mode))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	mode->agent = agent;
	mode->status = 1;
	mode->started_ms = sys_clock_ms();
	cb.arg = mode;
	if ((mode->ext = lambda_ext_new(agent->base, getenv("AWS_LAMBDA_RUNTIME_API"), name, &cb,
	    err, errlen)) == NULL)
		goto fail;
	if ((mode->init_timer = evtimer_new(agent->base, on_init_tick, mode)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (lambda_ext_register(mode->ext, err, errlen) != 0)
		goto fail;
	service_when_prefetched(svc, on_prefetched, mode);
	return mode;
fail:
	lambda_mode_free(mode);
	return NULL;
}

void
lambda_mode_init_error(struct lambda_mode *mode, const char *name, const char *why)
{
	struct lambda_ext_callbacks cb = { NULL, NULL, NULL };
	struct lambda_ext *ext;
	struct event_base *base;
	char err[256];

	if (mode != NULL) {
		lambda_ext_init_error(mode->ext, "Extension.InitError", why);
		return;
	}
	/* Failed before the agent had a loop: a client of our own, just for this. */
	if ((base = event_base_new()) == NULL)
		return;
	if ((ext = lambda_ext_new(base, getenv("AWS_LAMBDA_RUNTIME_API"), name, &cb, err,
	    sizeof(err))) != NULL) {
		lambda_ext_init_error(ext, "Extension.InitError", why);
		lambda_ext_free(ext);
	}
	event_base_free(base);
}

int
lambda_mode_status(const struct lambda_mode *mode)
{
	return mode->status;
}

void
lambda_mode_free(struct lambda_mode *mode)
{
	if (mode == NULL)
		return;
	if (mode->init_timer != NULL)
		event_free(mode->init_timer);
	lambda_ext_free(mode->ext);
	free(mode);
}
