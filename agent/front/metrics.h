/*
 * metrics: the agent's numbers in the Prometheus text exposition format
 * (version 0.0.4), for GET /metrics. Every STATS number (smcache stats) is
 * here under its STATS name, prefixed smcache_ (counters also suffixed
 * _total), so the two always agree; the HTTP door adds its own, labelled
 * by route and status. No secret id is ever a label.
 */
#ifndef SMC_AGENT_METRICS_H
#define SMC_AGENT_METRICS_H

struct agent;
struct evbuffer;
struct http_door;

/* Appends the exposition to out; door NULL: no HTTP door numbers. */
void metrics_render(struct evbuffer *out, struct agent *agent, const struct http_door *door);

#endif
