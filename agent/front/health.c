/*
 * health: liveness and readiness of the agent (see health.h). The facts
 * come from the backend's record of upstream answers (backend.h), the
 * cache's gauges and the start-up prefetch count kept here.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "backend.h"
#include "cache.h"
#include "config.h"
#include "health.h"
#include "sys_clock.h"

static void
not_ready(struct agent_health *h, const char *why)
{
	h->ready = false;
	if (h->reason_count < AGENT_HEALTH_REASONS)
		h->reasons[h->reason_count++] = why;
}

void
agent_health(const struct agent *agent, struct agent_health *out)
{
	const struct backend_health *bh = &agent->backend->health;
	const struct cache_stats *cs = cache_get_stats(agent->cache);

	memset(out, 0, sizeof(*out));
	out->live = true;
	out->ready = true;
	out->started_ms = (int64_t)agent->started * 1000;
	out->credentials = bh->credentials;
	out->last_success_ms = bh->last_success_ms;
	out->last_failure_ms = bh->last_failure_ms;
	out->last_failure_status = bh->last_failure_status;
	out->breaker_open = cs->breaker_open != 0;
	out->prefetch_pending = agent->prefetch_pending;
	out->cache_secrets = cs->secrets;
	out->cache_versions = cs->versions;

	switch (bh->credentials) {
	case PROTO_CRED_NOT_NEEDED:
	case PROTO_CRED_OK:
		break;
	case PROTO_CRED_UNKNOWN:
		not_ready(out, "the upstream has not been asked yet with the agent's credentials");
		break;
	case PROTO_CRED_UNAVAILABLE:
		not_ready(out, "no credentials for the upstream could be obtained");
		break;
	case PROTO_CRED_REJECTED:
		not_ready(out, "the upstream rejected the agent's credentials");
		break;
	}
	if (out->breaker_open)
		not_ready(out, "the upstream is failing (circuit breaker open)");
	if (out->prefetch_pending > 0)
		not_ready(out, "start-up prefetch not finished");
}

static void
probe_done(void *arg, const struct backend_description *d, const struct backend_error *error)
{
	/* The backend recorded the answer (backend_note) before calling us. */
	(void)arg;
	(void)d;
	(void)error;
}

void
agent_health_check(struct agent *agent, struct agent_health *out)
{
	enum proto_credentials_state cr = agent->backend->health.credentials;
	const char *list = agent->config->cache_prefetch;
	char id[PROTO_MAX_SECRET_ID + 1];
	/* Probes are spaced on the monotonic clock: a wall-clock step must not stop them. */
	int64_t now = (int64_t)sys_clock_ms();
	size_t len;

	if ((cr == PROTO_CRED_UNKNOWN || cr == PROTO_CRED_REJECTED ||
	    cr == PROTO_CRED_UNAVAILABLE) &&
	    (agent->health_probe_ms == 0 ||
	    now - agent->health_probe_ms >= AGENT_HEALTH_PROBE_INTERVAL_MS)) {
		agent->health_probe_ms = now;
		/* A secret the operator named, else one that need not exist. */
		snprintf(id, sizeof(id), "%s", AGENT_HEALTH_PROBE_ID);
		if (list != NULL) {
			list += strspn(list, ", \t");
			len = strcspn(list, ", \t");
			if (len > 0 && len < sizeof(id)) {
				memcpy(id, list, len);
				id[len] = '\0';
			}
		}
		(void)backend_describe(agent->backend, id, probe_done, NULL);
	}
	agent_health(agent, out);
}

