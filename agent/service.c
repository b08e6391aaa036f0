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

#include "agent.h"
#include "backend.h"
#include "cache.h"
#include "log.h"
#include "message.h"
#include "sd_notify.h"
#include "service.h"

struct service_prefetch {
	struct service *svc;
	char id[PROTO_MAX_SECRET_ID + 1];
};

struct service {
	struct agent *agent;
	struct event *watchdog;
	size_t pending;			/* prefetches not answered yet */
	size_t loaded, failed;
	bool starting;			/* still issuing prefetches: not ready yet */
	bool ready;
	struct service_prefetch *items;	/* one per prefetched id */
	size_t count;
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

	if (svc->ready || svc->starting || svc->pending > 0)
		return;
	svc->ready = true;
	if (svc->count > 0)
		log_info("prefetch done: %zu of %zu secret(s) loaded, %zu failed", svc->loaded,
		    svc->count, svc->failed);
	snprintf(status, sizeof(status), "serving; prefetch: %zu loaded, %zu failed",
	    svc->loaded, svc->failed);
	notify_warn(sd_notify_ready(status, err, sizeof(err)), err);
}

static void
on_prefetched(void *arg, const struct backend_value *value, bool stale,
    const struct backend_error *error)
{
	struct service_prefetch *p = arg;
	struct service *svc = p->svc;

	/* Ids and version ids only: never the value. */
	if (value != NULL) {
		svc->loaded++;
		log_info("prefetch: %s loaded (version %s%s)", p->id,
		    value->version_id != NULL ? value->version_id : "?", stale ? ", stale" : "");
	} else {
		svc->failed++;
		log_warn("prefetch: %s failed: %s: %s", p->id,
		    error != NULL ? proto_status_name(error->status) : "?",
		    error != NULL ? error->message : "no answer");
	}
	svc->pending--;
	if (svc->agent->prefetch_pending > 0)
		svc->agent->prefetch_pending--;
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
split_ids(const char *list, struct service_prefetch *out, struct service *svc)
{
	size_t n = 0, len;

	for (const char *p = list; p != NULL && *p != '\0'; p += len) {
		p += strspn(p, ", \t");
		if ((len = strcspn(p, ", \t")) == 0 || len > PROTO_MAX_SECRET_ID)
			continue;
		if (out != NULL) {
			out[n].svc = svc;
			memcpy(out[n].id, p, len);
			out[n].id[len] = '\0';
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
	char why[256];

	if ((svc = calloc(1, sizeof(*svc))) == NULL)
		goto nomem;
	svc->agent = agent;
	if (sd_notify_init(why, sizeof(why)) < 0)
		log_warn("%s; not notifying the service manager", why);
	if (start_watchdog(svc, err, errlen) != 0)
		goto fail;
	svc->count = split_ids(list, NULL, NULL);
	if (svc->count > 0 && (svc->items = calloc(svc->count, sizeof(*svc->items))) == NULL)
		goto nomem;
	split_ids(list, svc->items, svc);
	svc->starting = true;
	svc->pending = svc->count;
	agent->prefetch_pending = (unsigned)svc->count;	/* HEALTH is not ready before 0 */
	/* Answers may come back at once (a refused breaker, a file backend). */
	for (size_t i = 0; i < svc->count; i++)
		cache_prefetch(agent->cache, svc->items[i].id, on_prefetched, &svc->items[i]);
	svc->starting = false;
	maybe_ready(svc);
	return svc;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	service_free(svc);
	return NULL;
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
	free(svc->items);
	free(svc);
}
