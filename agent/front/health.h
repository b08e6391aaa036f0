/*
 * health: what HEALTH answers (and, later, an HTTP /ready), gathered in one
 * place: liveness (the agent answers at all) and readiness (a read would
 * work: credentials accepted, the upstream not failing, start-up prefetch
 * done), with the facts behind them.
 */
#ifndef SMC_AGENT_HEALTH_H
#define SMC_AGENT_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "message.h"

struct agent;

#define AGENT_HEALTH_REASONS	PROTO_MAX_REASONS
/* While not ready for want of credentials, HEALTH asks the upstream itself
 * at most this often, so a fixed key turns the agent ready without traffic
 * and no local user can make it spend more than one call per interval. */
#define AGENT_HEALTH_PROBE_INTERVAL_MS	5000
/* The secret id the probe describes when no prefetch list names one: an
 * answer of "not found" proves the credentials were accepted. */
#define AGENT_HEALTH_PROBE_ID	"smcache/health-probe"

struct agent_health {
	bool live;			/* always true: whoever can ask is answered */
	bool ready;
	enum proto_credentials_state credentials;
	int64_t started_ms;
	int64_t last_success_ms;	/* 0: never */
	int64_t last_failure_ms;	/* 0: never */
	enum proto_status last_failure_status;	/* with last_failure_ms */
	bool breaker_open;
	uint64_t prefetch_pending;
	uint64_t cache_secrets;
	uint64_t cache_versions;
	/* Why not ready: fixed English phrases (no secret names), one per check. */
	const char *reasons[AGENT_HEALTH_REASONS];
	unsigned reason_count;
};

/* Gathers the agent's health into *out. Never blocks, never calls out. */
void agent_health(const struct agent *agent, struct agent_health *out);

/* agent_health(), after starting an upstream probe when credentials are
 * unknown or refused and the last probe is AGENT_HEALTH_PROBE_INTERVAL_MS
 * old (its answer shows in a later call). What front ends call. */
void agent_health_check(struct agent *agent, struct agent_health *out);


#endif
