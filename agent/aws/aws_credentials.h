/*
 * aws_credentials: the standard AWS credential chain, asynchronous, cached,
 * and refreshed before expiry, in this order:
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *   2. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN
 *      (+ AWS_ROLE_SESSION_NAME) via STS AssumeRoleWithWebIdentity
 *   3. shared files: the profile's web_identity_token_file + role_arn (config
 *      file, as 2.), else its aws_access_key_id / aws_secret_access_key /
 *      aws_session_token (credentials file, then config file). A profile
 *      using role_arn alone, SSO or credential_process is refused with a
 *      message, as is a non-default profile found in neither file. Static
 *      keys are read once, at creation.
 *   4. ECS container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
 *      (http://169.254.170.2 + URI) or AWS_CONTAINER_CREDENTIALS_FULL_URI, with
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN or AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
 *   5. EC2 instance metadata, IMDSv2 (PUT token, then GET role and credentials);
 *      AWS_EC2_METADATA_DISABLED=true skips it; AWS_EC2_METADATA_SERVICE_ENDPOINT
 *      overrides http://169.254.169.254 (AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6:
 *      http://[fd00:ec2::254]).
 * AWS_CONTAINER_CREDENTIALS_FULL_URI must name a loopback address or the ECS/EKS
 * addresses 169.254.170.2, 169.254.170.23, [fd00:ec2::23] (no DNS lookup).
 * The first source that is configured is used (as the SDKs do); it is not a
 * fallback chain at request time. Secret parts are zeroed when replaced.
 */
#ifndef SMC_AGENT_AWS_CREDENTIALS_H
#define SMC_AGENT_AWS_CREDENTIALS_H

#include <stddef.h>
#include <time.h>

struct event_base;
struct http_client;
struct aws_resolved;
struct aws_credential_provider;

struct aws_credentials {
	char access_key_id[128];
	char secret_access_key[128];
	char session_token[4096];	/* empty when none */
	time_t expiration;		/* 0: does not expire */
	const char *source;		/* "environment", "web-identity", "shared-file", "ecs", "imds" */
};

/*
 * Creates the provider for the first configured source. Fails (-1 / NULL
 * with err) only when something configured is broken (unreadable token
 * file, half-set environment keys); with nothing configured it falls back to
 * IMDS, whose failure shows up on the first request.
 */
struct aws_credential_provider *aws_credentials_new(struct event_base *base,
    struct http_client *http, const struct aws_resolved *resolved, char *err, size_t errlen);
/* Pending callbacks are dropped, not called. Free it before the http client. */
void aws_credentials_free(struct aws_credential_provider *p);

/*
 * The cached credentials when they are valid for at least a minute more, or
 * NULL. Never blocks. A refresh starts in the background when they are
 * within 5 minutes of expiry, so callers normally always get non-NULL.
 * (For short-lived credentials, life L at fetch time, the margins shrink to
 * L/4 and L/2.) The pointer is valid until control returns to the event
 * loop: a refresh overwrites the struct in place.
 */
const struct aws_credentials *aws_credentials_current(struct aws_credential_provider *p);

/*
 * Waits for valid credentials (fetching them when needed, one fetch shared by
 * every waiter). The callback is never called before this returns; error is
 * a message (never containing secrets) when no credentials could be had.
 */
typedef void (*aws_credentials_cb)(void *arg, const struct aws_credentials *creds,
    const char *error);
int aws_credentials_get(struct aws_credential_provider *p, aws_credentials_cb cb, void *arg);

/* Name of the source in use ("environment", ...). */
const char *aws_credentials_source(const struct aws_credential_provider *p);

#endif
