/*
 * aws_cred_imds: EC2 instance metadata credentials, IMDSv2: PUT a session
 * token, GET the role name, GET the role's credentials. The session token is
 * kept for its life and fetched again, once, when the service refuses it.
 */
#define LOG_COMPONENT "aws"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "aws_cred_internal.h"
#include "aws_profile.h"

#define CRED_IMDS_TIMEOUT_MS	1000
#define CRED_IMDS_TOKEN_TTL	21600

#define IMDS_DEFAULT_V4		"http://169.254.169.254"
#define IMDS_DEFAULT_V6		"http://[fd00:ec2::254]"
#define IMDS_ROLE_PATH		"/latest/meta-data/iam/security-credentials/"

static int cred_imds_request(struct aws_credential_provider *p, char *err, size_t errlen);

static bool
cred_role_name_ok(const char *s)
{
	if (*s == '\0' || strlen(s) > 64)
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr("+=,.@_-", *s) == NULL)
			return false;
	return true;
}

static void
cred_imds_next(struct aws_credential_provider *p, enum imds_step step)
{
	char err[CRED_ERR_LEN];

	p->imds_step = step;
	if (cred_imds_request(p, err, sizeof(err)) != 0)
		cred_fetch_failed(p, "%s", err);
}

static void
cred_imds_done(void *arg, const struct http_response *r, enum http_error error, const char *msg)
{
	static const char *const step_names[] = { "token", "role name", "credentials" };
	struct aws_credential_provider *p = arg;
	const char *what = step_names[p->imds_step];
	size_t n;

	p->call = NULL;
	if (cred_retry_once(p, r, error)) {
		cred_imds_next(p, p->imds_step);
		return;
	}
	p->attempt = 0;
	if (error != HTTP_OK) {
		cred_fetch_failed(p, "instance metadata %s (%s): %s", p->url, what, msg);
		return;
	}
	if (r->status == 401 && p->imds_step != IMDS_TOKEN && !p->imds_token_retried) {
		/* Our session token expired or was revoked: get a new one, once. */
		sodium_memzero(p->imds_token, sizeof(p->imds_token));
		p->imds_token_expires = 0;
		p->imds_token_retried = true;
		cred_imds_next(p, IMDS_TOKEN);
		return;
	}
	if (r->status == 404 && p->imds_step == IMDS_ROLE) {
		cred_fetch_failed(p, "instance metadata %s: no IAM role is attached to this "
		    "instance", p->url);
		return;
	}
	if (r->status != 200) {
		cred_fetch_failed(p, "instance metadata %s (%s): HTTP %ld", p->url, what,
		    r->status);
		return;
	}
	switch (p->imds_step) {
	case IMDS_TOKEN:
		n = r->body_len;
		while (n > 0 && isspace(r->body[n - 1]))
			n--;
		if (n == 0 || cred_copy(p->imds_token, sizeof(p->imds_token),
		        (const char *)r->body, n) != 0 || strpbrk(p->imds_token, "\r\n") != NULL) {
			sodium_memzero(p->imds_token, sizeof(p->imds_token));
			cred_fetch_failed(p, "instance metadata %s: unusable session token", p->url);
			return;
		}
		p->imds_token_expires = time(NULL) + CRED_IMDS_TOKEN_TTL - 60;
		cred_imds_next(p, IMDS_ROLE);
		return;
	case IMDS_ROLE:
		/* One role name per line; an instance profile has exactly one. */
		n = strcspn((const char *)r->body, "\r\n");
		if (cred_copy(p->imds_role, sizeof(p->imds_role), (const char *)r->body, n) != 0 ||
		    !cred_role_name_ok(p->imds_role)) {
			cred_fetch_failed(p, "instance metadata %s: no usable IAM role name", p->url);
			return;
		}
		cred_imds_next(p, IMDS_CREDS);
		return;
	case IMDS_CREDS:
		cred_take_json(p, r, "instance metadata");
		return;
	}
}

static int
cred_imds_request(struct aws_credential_provider *p, char *err, size_t errlen)
{
	char url[sizeof(p->url) + sizeof(IMDS_ROLE_PATH) + sizeof(p->imds_role)];
	char ttl[16];
	struct http_header h;
	struct http_request req;

	memset(&req, 0, sizeof(req));
	req.headers = &h;
	req.header_count = 1;
	req.timeout_ms = CRED_IMDS_TIMEOUT_MS;
	if (p->imds_step == IMDS_TOKEN) {
		snprintf(ttl, sizeof(ttl), "%d", CRED_IMDS_TOKEN_TTL);
		snprintf(url, sizeof(url), "%s/latest/api/token", p->url);
		req.method = "PUT";
		h.name = "X-aws-ec2-metadata-token-ttl-seconds";
		h.value = ttl;
	} else {
		snprintf(url, sizeof(url), "%s%s%s", p->url, IMDS_ROLE_PATH,
		    p->imds_step == IMDS_CREDS ? p->imds_role : "");
		req.method = "GET";
		h.name = "X-aws-ec2-metadata-token";
		h.value = p->imds_token;
	}
	req.url = url;
	if (http_client_request(p->http, &req, cred_imds_done, p, &p->call) != 0) {
		snprintf(err, errlen, "cannot start the request to %.160s", p->url);
		return -1;
	}
	return 0;
}

int
cred_imds_start(struct aws_credential_provider *p, char *err, size_t errlen)
{
	p->imds_token_retried = false;
	p->imds_step = p->imds_token[0] != '\0' && time(NULL) < p->imds_token_expires ?
	    IMDS_ROLE : IMDS_TOKEN;
	return cred_imds_request(p, err, errlen);
}

int
cred_setup_imds(struct aws_credential_provider *p, char *err, size_t errlen)
{
	const char *v, *mode;
	char why[CRED_ERR_LEN];

	p->src = SRC_IMDS;
	if ((v = cred_env("AWS_EC2_METADATA_SERVICE_ENDPOINT")) != NULL) {
		if (aws_endpoint_normalize(v, p->url, sizeof(p->url), why, sizeof(why)) != 0) {
			snprintf(err, errlen, "AWS_EC2_METADATA_SERVICE_ENDPOINT: %s", why);
			return -1;
		}
		return 0;
	}
	mode = cred_env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
	if (mode != NULL && strcasecmp(mode, "IPv6") == 0)
		snprintf(p->url, sizeof(p->url), "%s", IMDS_DEFAULT_V6);
	else if (mode == NULL || strcasecmp(mode, "IPv4") == 0)
		snprintf(p->url, sizeof(p->url), "%s", IMDS_DEFAULT_V4);
	else {
		snprintf(err, errlen, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE = '%.32s': expected"
		    " IPv4 or IPv6", mode);
		return -1;
	}
	return 0;
}
