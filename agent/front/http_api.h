/*
 * http_api: what an HTTP request means, once the door (http_door.c) let it
 * in: the AWS Secrets Manager Agent's API (GET /secretsmanager/get, GET
 * PREFIX<id>, /ping) with its parameter names, validation and error
 * bodies, and ours: /ready and /metrics.
 */
#ifndef SMC_AGENT_HTTP_API_H
#define SMC_AGENT_HTTP_API_H

#include <stdbool.h>
#include <stddef.h>

struct agent;
struct config;
struct dispatch_caller;
struct evhttp_request;
struct http_door;

/* caller NULL: the metrics listener (/metrics, /ready, /ping only, no identity). */
void http_api_handle(struct http_door *door, struct agent *agent, struct evhttp_request *req,
    const char *path, const struct dispatch_caller *caller, const struct config *cfg);

/* Frees requests still waiting for the backend (their connections are gone). */
void http_api_shutdown(struct http_door *door);

/*
 * Readiness for /ready: agent_health_check() (health.h), the same answer as
 * HEALTH and `smcache health`; false with its reasons in why.
 */
bool http_api_ready(struct agent *agent, char *why, size_t whylen);

/* The GetSecretValue JSON of value into out[0..cap); the length it needs when cap is short. */
struct backend_value;
size_t http_api_render_value(const struct backend_value *value, unsigned char *out, size_t cap);
/* The same as the service itself answers GetSecretValue (CreatedDate an epoch number),
 * for the Secrets Manager endpoint (sm_api.c). */
size_t http_api_render_sdk_value(const struct backend_value *value, unsigned char *out,
    size_t cap);
/* Either rendering (sdk: the service's) in a buffer from secmem_wipe_malloc(), *len long;
 * NULL when out of memory. Free it with secmem_wipe_free (http_door_body_wipe_free). */
unsigned char *http_api_render_alloc(const struct backend_value *value, bool sdk, size_t *len);

#endif
