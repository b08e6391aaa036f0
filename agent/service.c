/*
 * service: start-up prefetch, readiness and the watchdog (see service.h).
 * Reloads are announced by the SIGHUP handler itself (access/policy.c), the
 * one place that knows when a reload starts and ends.
 */
#define LOG_COMPONENT "service"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <sodium.h>

#include "agent.h"
#include "backend.h"
#include "cache.h"
#include "config.h"
#include "log.h"
#include "message.h"
#include "sd_notify.h"
#include "service.h"
#include "sys_clock.h"

/* One entry of [cache] prefetch: a secret id, or a filter (backend.h). */
struct service_prefetch {
	struct service *svc;
	bool is_filter;
	bool done;
	struct backend_filter filter;
	char id[PROTO_MAX_SECRET_ID + 1];
};

struct service_waiter {
	void (*cb)(void *arg);
	void *arg;
};

#define SERVICE_WAITERS	4

struct service {
	struct agent *agent;
	struct event *watchdog;
	struct event *start_ev;		/* the prefetch's start, after its jitter */
	struct event *timeout_ev;	/* readiness stops waiting for it */
	size_t pending;			/* entries not answered yet */
	size_t loaded, failed;		/* entries */
	size_t found;			/* secrets the filters found */
	bool starting;			/* still issuing prefetches: not ready yet */
	bool timed_out;
	bool ready;
	uint64_t started_ms;
	struct service_prefetch *items;	/* one per entry */
	size_t count;
	struct service_waiter waiters[SERVICE_WAITERS];
	size_t nwaiters;
};

static void
notify_warn(int rc, const char *err)
{
	if (rc != 0)
		log_warn("%s", err);
}

static void
maybe_ready(struct service *svc)
{
	char status[128], err[256];

	if (svc->ready || svc->starting || (svc->pending > 0 && !svc->timed_out))
		return;
	svc->ready = true;
	if (svc->count > 0 && svc->pending == 0)
		log_info("prefetch done in %llu ms: %zu of %zu entr%s loaded (%zu secret(s) found by"
		    " filters), %zu failed",
		    (unsigned long long)(sys_clock_ms() - svc->started_ms), svc->loaded, svc->count,
		    svc->count == 1 ? "y" : "ies", svc->found, svc->failed);
	snprintf(status, sizeof(status), "serving; prefetch: %zu loaded, %zu failed%s",
	    svc->loaded, svc->failed, svc->pending > 0 ? ", some pending" : "");
	notify_warn(sd_notify_ready(status, err, sizeof(err)), err);
	for (size_t i = 0; i < svc->nwaiters; i++)
		svc->waiters[i].cb(svc->waiters[i].arg);
	svc->nwaiters = 0;
}

static void
entry_done(struct service_prefetch *p, bool ok)
{
	struct service *svc = p->svc;

	if (p->done)
		return;
	p->done = true;
	if (ok)
		svc->loaded++;
	else
		svc->failed++;
	svc->pending--;
	if (svc->agent->prefetch_pending > 0)
		svc->agent->prefetch_pending--;
	maybe_ready(svc);
}

static void
on_prefetched(void *arg, const struct backend_value *value, bool stale,
    const struct backend_error *error)
{
	struct service_prefetch *p = arg;

	/* Ids and version ids only: never the value. */
	if (value != NULL)
		log_info("prefetch: %s loaded (version %s%s)", p->id,
		    value->version_id != NULL ? value->version_id : "?", stale ? ", stale" : "");
	else
		log_warn("prefetch: %s failed: %s: %s", p->id,
		    error != NULL ? proto_status_name(error->status) : "?",
		    error != NULL ? error->message : "no answer");
	entry_done(p, value != NULL);
}

static void
on_filter_prefetched(void *arg, size_t found, const struct backend_error *error)
{
	struct service_prefetch *p = arg;

	p->svc->found += found;
	if (error == NULL)
		log_info("prefetch: %s: %zu secret(s) loaded", p->id, found);
	else
		log_warn("prefetch: %s failed after %zu secret(s): %s: %s", p->id, found,
		    proto_status_name(error->status), error->message);
	entry_done(p, error == NULL);
}

static void
on_prefetch_start(evutil_socket_t fd, short what, void *arg)
{
	struct service *svc = arg;

	(void)fd;
	(void)what;
	/* Answers may come back at once (a refused breaker, a file backend). */
	svc->starting = true;
	for (size_t i = 0; i < svc->count; i++) {
		struct service_prefetch *p = &svc->items[i];

		if (!p->is_filter) {
			cache_prefetch(svc->agent->cache, p->id, on_prefetched, p);
		} else if (cache_prefetch_filter(svc->agent->cache, &p->filter,
		    on_filter_prefetched, p) != 0) {
			log_warn("prefetch: %s: filters need a backend with BatchGetSecretValue"
			    " (the aws backend); skipped", p->id);
			entry_done(p, false);
		}
	}
	svc->starting = false;
	maybe_ready(svc);
}

static void
on_prefetch_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct service *svc = arg;

	(void)fd;
	(void)what;
	if (svc->ready || svc->pending == 0)
		return;
	log_warn("prefetch: %zu of %zu entr%s not done after %u s (prefetch_timeout); ready"
	    " without them, the prefetch goes on", svc->pending, svc->count,
	    svc->count == 1 ? "y" : "ies", svc->agent->config->cache_prefetch_timeout);
	svc->timed_out = true;
	svc->agent->prefetch_pending = 0;
	maybe_ready(svc);
}

static void
on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	char err[256];

	(void)fd;
	(void)what;
	(void)arg;
	notify_warn(sd_notify_watchdog(err, sizeof(err)), err);
}

/* Splits list like the [cache] prefetch check does; ids too long were refused there. */
static size_t
split_entries(const char *list, struct service_prefetch *out, struct service *svc)
{
	char why[256];
	size_t n = 0, len;

	for (const char *p = list; p != NULL && *p != '\0'; p += len) {
		p += strspn(p, ", \t");
		if ((len = strcspn(p, ", \t")) == 0 || len > PROTO_MAX_SECRET_ID)
			continue;
		if (out != NULL) {
			out[n].svc = svc;
			memcpy(out[n].id, p, len);
			out[n].id[len] = '\0';
			out[n].is_filter = backend_filter_parse(p, len, &out[n].filter, why,
			    sizeof(why)) == 1;
		}
		n++;
	}
	return n;
}

static int
start_watchdog(struct service *svc, char *err, size_t errlen)
{
	uint64_t usec = sd_notify_watchdog_usec();
	struct timeval half;

	if (usec == 0)
		return 0;
	half.tv_sec = (time_t)(usec / 2 / 1000000u);
	half.tv_usec = (suseconds_t)(usec / 2 % 1000000u);
	svc->watchdog = event_new(svc->agent->base, -1, EV_PERSIST, on_watchdog, svc);
	if (svc->watchdog == NULL || event_add(svc->watchdog, &half) != 0) {
		snprintf(err, errlen, "cannot set the watchdog timer");
		return -1;
	}
	log_info("watchdog: pinging systemd every %llu ms", (unsigned long long)(usec / 2000u));
	/* The first ping now: start-up may have taken a good part of the period. */
	on_watchdog(-1, 0, svc);
	return 0;
}

struct service *
service_start(struct agent *agent, const char *list, char *err, size_t errlen)
{
	struct service *svc;
	struct timeval tv;
	uint64_t jitter_ms;
	char why[256];

	if ((svc = calloc(1, sizeof(*svc))) == NULL)
		goto nomem;
	svc->agent = agent;
	svc->started_ms = sys_clock_ms();
	if (sd_notify_init(why, sizeof(why)) < 0)
		log_warn("%s; not notifying the service manager", why);
	if (start_watchdog(svc, err, errlen) != 0)
		goto fail;
	svc->count = split_entries(list, NULL, NULL);
	if (svc->count > 0 && (svc->items = calloc(svc->count, sizeof(*svc->items))) == NULL)
		goto nomem;
	split_entries(list, svc->items, svc);
	svc->pending = svc->count;
	agent->prefetch_pending = (unsigned)svc->count;	/* HEALTH is not ready before 0 */
	if (svc->count == 0) {
		maybe_ready(svc);
		return svc;
	}
	/* A fleet restarting together spreads its prefetches over the jitter window; a
	 * local file has no upstream to spare. */
	jitter_ms = agent->config->backend == CONFIG_BACKEND_FILE ? 0 :
	    (uint64_t)agent->config->cache_prefetch_jitter * 1000u;
	if (jitter_ms > 0)
		jitter_ms = randombytes_uniform((uint32_t)jitter_ms + 1);
	svc->start_ev = evtimer_new(agent->base, on_prefetch_start, svc);
	svc->timeout_ev = evtimer_new(agent->base, on_prefetch_timeout, svc);
	if (svc->start_ev == NULL || svc->timeout_ev == NULL) {
		snprintf(err, errlen, "cannot create the prefetch timers");
		goto fail;
	}
	tv.tv_sec = agent->config->cache_prefetch_timeout;
	tv.tv_usec = 0;
	evtimer_add(svc->timeout_ev, &tv);
	if (jitter_ms > 0)
		log_info("prefetch: %zu entr%s, starting in %llu ms (prefetch_jitter)", svc->count,
		    svc->count == 1 ? "y" : "ies", (unsigned long long)jitter_ms);
	tv.tv_sec = (time_t)(jitter_ms / 1000u);
	tv.tv_usec = (suseconds_t)(jitter_ms % 1000u * 1000u);
	evtimer_add(svc->start_ev, &tv);
	return svc;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	service_free(svc);
	return NULL;
}

void
service_when_prefetched(struct service *svc, void (*cb)(void *arg), void *arg)
{
	if (svc == NULL || svc->ready) {
		cb(arg);
		return;
	}
	if (svc->nwaiters < SERVICE_WAITERS)
		svc->waiters[svc->nwaiters++] = (struct service_waiter){ cb, arg };
}

void
service_stopping(void)
{
	char err[256];

	notify_warn(sd_notify_stopping(err, sizeof(err)), err);
}

void
service_free(struct service *svc)
{
	if (svc == NULL)
		return;
	if (svc->watchdog != NULL)
		event_free(svc->watchdog);
	if (svc->start_ev != NULL)
		event_free(svc->start_ev);
	if (svc->timeout_ev != NULL)
		event_free(svc->timeout_ev);
	free(svc->items);
	free(svc);
}
