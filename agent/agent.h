/*
 * agent: the state one smcached process runs on, shared by the request
 * dispatcher and start-up code: event loop, configuration, backend, server
 * and the counters STATS reports.
 */
#ifndef SMC_AGENT_AGENT_H
#define SMC_AGENT_AGENT_H

#include <stdint.h>
#include <time.h>

#include "message.h"

struct event_base;
struct config;
struct backend;
struct cache;
struct server;
struct acl;
struct audit;
struct peer_limits;
struct policy;

struct agent_stats {
	uint64_t requests_by_op[PROTO_OP_MAX + 1];
	uint64_t replies_by_status[PROTO_STATUS_MAX + 1];
};

struct agent {
	struct event_base *base;
	const struct config *config;
	struct backend *backend;
	struct cache *cache;
	struct server *server;
	/* Run-time policy, swapped on SIGHUP (policy.h); NULL: allow all, no audit, no limits. */
	struct acl *acl;
	struct audit *audit;
	struct peer_limits *peer_limits;
	struct policy *policy;
	struct agent_stats stats;
	uint8_t *reply_scratch;		/* locked, guarded buffer where replies carrying values are built */
	size_t reply_scratch_len;
	time_t started;
	/* HEALTH (front/health.h) */
	unsigned prefetch_pending;	/* start-up prefetches not answered yet */
	int64_t health_probe_ms;	/* CLOCK_MONOTONIC ms HEALTH last asked the upstream; 0: never */
};

#endif
