/*
 * aws_cred_internal.h: what the credential provider's files share (private to
 * agent/aws/aws_cred*.c; the interface is aws_credentials.h).
 *
 *   aws_credentials.c  the chain: choosing the source, the cache, its refresh and
 *                      retry timers, the waiters
 *   aws_cred_common.c  what the source clients share: token files, timestamps,
 *                      the JSON answer of ECS and IMDS, the retry rule
 *   aws_cred_sts.c     web identity: STS AssumeRoleWithWebIdentity
 *   aws_cred_ecs.c     the ECS/EKS container endpoint
 *   aws_cred_imds.c    EC2 instance metadata, IMDSv2
 *
 * A source client is set up once (cred_setup_*, from the chain), then started by
 * the chain for each fetch (cred_*_start); it ends every fetch with exactly one
 * cred_fetch_succeeded() or cred_fetch_failed().
 */
#ifndef SMC_AGENT_AWS_CRED_INTERNAL_H
#define SMC_AGENT_AWS_CRED_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "aws_credentials.h"
#include "http.h"

#define CRED_TOKEN_FILE_MAX	(16 * 1024)	/* web identity JWT, container auth token */
#define CRED_USABLE_MARGIN	60		/* seconds before expiry: stop handing them out */
#define CRED_REFRESH_LEAD	300		/* seconds before expiry: refresh */
#define CRED_BACKOFF_MAX	60		/* seconds between failed attempts, at most */
#define CRED_ERR_LEN		256

enum cred_source {
	SRC_ENVIRONMENT,
	SRC_WEB_IDENTITY,
	SRC_SHARED_FILE,
	SRC_ECS,
	SRC_IMDS,
};

enum imds_step {
	IMDS_TOKEN,
	IMDS_ROLE,
	IMDS_CREDS,
};

struct cred_waiter {
	aws_credentials_cb cb;
	void *arg;
	struct cred_waiter *next;
};

struct aws_credential_provider {
	struct event_base *base;
	struct http_client *http;
	enum cred_source src;

	/* configuration of the source */
	char role_arn[2048];
	char session_name[65];
	char token_file[4096];		/* web identity token, or container auth token file */
	char url[2048];			/* STS endpoint, container URL, or IMDS base */
	char ecs_token[4096];		/* AWS_CONTAINER_AUTHORIZATION_TOKEN */

	/* the cache */
	struct aws_credentials creds;
	bool have;
	time_t usable_until;		/* 0: forever */
	time_t refresh_at;		/* 0: never */

	/* the fetch in progress */
	bool fetching;
	struct http_call *call;
	enum imds_step imds_step;
	int attempt;			/* retries of the current step */
	bool imds_token_retried;
	char imds_token[512];
	time_t imds_token_expires;
	char imds_role[128];

	/* failures */
	unsigned failures;
	time_t next_attempt;		/* no new fetch for waiters before this */
	char last_error[CRED_ERR_LEN];

	struct event *refresh_ev;	/* background refresh and retry */
	struct event *notify_ev;	/* answers waiters from the loop */
	struct cred_waiter *waiters;
	struct cred_waiter *dispatching_list;
	int dispatching;
	bool free_pending;
};

/* ---- the chain (aws_credentials.c) ------------------------------------------------------- */

/* A fetch ended well: take the new credentials (c is wiped). */
void cred_fetch_succeeded(struct aws_credential_provider *p, struct aws_credentials *c);
/* A fetch failed: keep what still works, retry later, tell the waiters. */
void cred_fetch_failed(struct aws_credential_provider *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- shared by the source clients (aws_cred_common.c) ------------------------------------ */

/* The variable's value, NULL when unset or empty. */
const char *cred_env(const char *name);
/* Copies src[0..srclen) as a string; -1 when it does not fit. */
int cred_copy(char *dst, size_t dstlen, const char *src, size_t srclen);
int cred_copy_str(char *dst, size_t dstlen, const char *src);
/*
 * Reads a small secret file (token), trailing white space removed.
 * Returns 0, or -1 with a message naming the file (never its contents).
 */
int cred_read_token_file(const char *path, char *out, size_t outlen, char *err, size_t errlen);
/* ISO 8601 / RFC 3339: YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM). */
int cred_parse_time(const char *s, time_t *out);
/* Printable ASCII only, for text taken from a response into a message. */
void cred_sanitize(char *s);
/* {AccessKeyId, SecretAccessKey, Token, Expiration[, Code]} into credentials; ends the fetch. */
void cred_take_json(struct aws_credential_provider *p, const struct http_response *r,
    const char *what);
/* One retry for what may pass: timeouts, refused connections, 5xx. */
bool cred_retry_once(struct aws_credential_provider *p, const struct http_response *r,
    enum http_error error);

/* ---- the source clients: set up once, started for each fetch ----------------------------- */

/* aws_cred_sts.c; from names where the settings came from, for messages. */
int cred_setup_web_identity(struct aws_credential_provider *p, const struct aws_resolved *r,
    const char *role_arn, const char *token_file, const char *session, const char *from,
    char *err, size_t errlen);
int cred_sts_start(struct aws_credential_provider *p, char *err, size_t errlen);
/* aws_cred_ecs.c; exactly one of relative and full is non-NULL. */
int cred_setup_ecs(struct aws_credential_provider *p, const char *relative, const char *full,
    char *err, size_t errlen);
int cred_ecs_start(struct aws_credential_provider *p, char *err, size_t errlen);
/* aws_cred_imds.c */
int cred_setup_imds(struct aws_credential_provider *p, char *err, size_t errlen);
int cred_imds_start(struct aws_credential_provider *p, char *err, size_t errlen);

#endif
