/*
 * sm_api: the operations of the Secrets Manager endpoint (sm_endpoint.h),
 * once the protocol and the caller are established. Reads come from the
 * cache under the same [access] rules, audit and per-uid budgets as the Unix
 * socket: GetSecretValue, DescribeSecret, BatchGetSecretValue (SecretIdList;
 * Filters go upstream), ListSecretVersionIds (upstream with the aws backend,
 * which alone knows each version's dates; from the cached description
 * otherwise). Every other operation is refused, or with [endpoint] forward =
 * yes and an [access] allow_write rule passed through to Secrets Manager and
 * its answer relayed byte for byte; after a write succeeds the cache forgets
 * the secret before the answer leaves (read-your-writes).
 */
#ifndef SMC_AGENT_SM_API_H
#define SMC_AGENT_SM_API_H

#include <stdbool.h>
#include <stddef.h>

struct acl;
struct agent;
struct dispatch_caller;
struct evhttp_request;
struct http_door;

struct sm_api_ctx {
	struct http_door *door;
	struct agent *agent;
	struct evhttp_request *req;
	const struct dispatch_caller *caller;	/* copied where a request waits */
	bool forward;				/* [endpoint] forward */
	const struct acl *write_acl;		/* [access] allow_write */
};

/* operation: "GetSecretValue", ...; body: the request's JSON (not kept past the call). */
void sm_api_handle(const struct sm_api_ctx *ctx, const char *operation, const char *body,
    size_t len);

/* Frees requests still waiting (before the listeners go). */
void sm_api_shutdown(void);

#endif
