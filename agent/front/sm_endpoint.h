/*
 * sm_endpoint: the Secrets Manager API itself ([endpoint] listen), so that
 * unmodified AWS SDKs and the aws CLI read through the cache once
 * AWS_ENDPOINT_URL_SECRETS_MANAGER points at the agent. The listeners, their
 * bounds, the Host (DNS rebinding) check and the caller's uid are the HTTP
 * door's (http_door.c); this module owns the AWS JSON 1.1 protocol (POST /,
 * X-Amz-Target, Content-Type, error shapes, x-amzn-RequestId), who the caller
 * is ([endpoint] auth = peer | keys, the SigV4 Authorization every request
 * must carry) and the loop guard at start-up. What an operation does is
 * sm_api.c's business.
 */
#ifndef SMC_AGENT_SM_ENDPOINT_H
#define SMC_AGENT_SM_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

struct agent;
struct config;
struct dispatch_caller;
struct evhttp_request;
struct http_door;
struct sm_endpoint;

/* A request body at most (PutSecretValue: a 64 KiB binary secret is 87,384 base64 bytes). */
#define SM_ENDPOINT_MAX_BODY	(256 * 1024)

enum sm_endpoint_auth { SM_AUTH_PEER = 0, SM_AUTH_KEYS = 1 };

/* Reads [endpoint] keys_file (before privileges are dropped); -1 with err. */
int sm_endpoint_open(struct sm_endpoint **ep, const struct config *cfg, char *err, size_t errlen);
/*
 * With the backend made: refuses (-1 with err) when the agent's upstream
 * endpoint is one of its own [endpoint] listen addresses (users set
 * AWS_ENDPOINT_URL_SECRETS_MANAGER to point SDKs at the agent, and the agent
 * reads that variable too).
 */
int sm_endpoint_start(struct sm_endpoint *ep, struct agent *agent, char *err, size_t errlen);
/* A request the door let in (connection bounds, Host). */
void sm_endpoint_handle(struct sm_endpoint *ep, struct http_door *door, struct agent *agent,
    struct evhttp_request *req, const struct dispatch_caller *caller);
/* Before the listeners are freed: requests still waiting are dropped. NULL is fine. */
void sm_endpoint_shutdown(struct sm_endpoint *ep);
void sm_endpoint_free(struct sm_endpoint *ep);

/* ---- replies, for sm_api.c ---- */

/* An error as the service shapes it: status, {"__type": type, "Message": message}. */
void sm_endpoint_error(struct http_door *door, struct evhttp_request *req, int status,
    const char *type, const char *message);
/*
 * A body sent by reference (secret values: locked memory the cleanup wipes);
 * cleanup runs once it is written or dropped, also on failure. error_type:
 * NULL for a success, else the x-amzn-ErrorType header.
 */
typedef void (*sm_endpoint_cleanup)(const void *data, size_t len, void *arg);
void sm_endpoint_send(struct http_door *door, struct evhttp_request *req, int status,
    const char *error_type, const void *body, size_t len, sm_endpoint_cleanup cleanup, void *arg);
/* Cleanup for bodies from cJSON_Print*(). (For secmem_wipe_*alloc() bodies and
 * cache bodies: http_door_body_wipe_free and http_door_body_release.) */
void sm_endpoint_json_free(const void *data, size_t len, void *arg);

#endif
