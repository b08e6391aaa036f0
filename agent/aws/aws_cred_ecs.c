/*
 * aws_cred_ecs: ECS/EKS container credentials, a GET to
 * AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on 169.254.170.2) or
 * AWS_CONTAINER_CREDENTIALS_FULL_URI (loopback or the ECS/EKS addresses only),
 * with the authorization token or token file when one is set.
 */
#define LOG_COMPONENT "aws"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "aws_cred_internal.h"

#define CRED_ECS_TIMEOUT_MS	2000

#define ECS_RELATIVE_HOST	"http://169.254.170.2"

static void
cred_ecs_done(void *arg, const struct http_response *r, enum http_error error, const char *msg)
{
	struct aws_credential_provider *p = arg;
	char err[CRED_ERR_LEN];

	p->call = NULL;
	if (cred_retry_once(p, r, error)) {
		if (cred_ecs_start(p, err, sizeof(err)) != 0)
			cred_fetch_failed(p, "%s", err);
		return;
	}
	if (error != HTTP_OK) {
		cred_fetch_failed(p, "container endpoint %s: %s", p->url, msg);
		return;
	}
	if (r->status != 200) {
		cred_fetch_failed(p, "container endpoint %s: HTTP %ld%s", p->url, r->status,
		    r->status == 401 || r->status == 403 ? " (authorization token refused)" : "");
		return;
	}
	cred_take_json(p, r, "container endpoint");
}

int
cred_ecs_start(struct aws_credential_provider *p, char *err, size_t errlen)
{
	struct http_header headers[2] = { { "Accept", "application/json" } };
	struct http_request req;
	char *token = NULL;
	int rc = -1;

	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = p->url;
	req.headers = headers;
	req.header_count = 1;
	req.timeout_ms = CRED_ECS_TIMEOUT_MS;
	if (p->token_file[0] != '\0') {
		/* Re-read each time: the file is rotated underneath us. */
		if ((token = sodium_malloc(CRED_TOKEN_FILE_MAX)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		if (cred_read_token_file(p->token_file, token, CRED_TOKEN_FILE_MAX,
		        err, errlen) != 0)
			goto out;
		headers[1].name = "Authorization";
		headers[1].value = token;
		req.header_count = 2;
	} else if (p->ecs_token[0] != '\0') {
		headers[1].name = "Authorization";
		headers[1].value = p->ecs_token;
		req.header_count = 2;
	}
	if (http_client_request(p->http, &req, cred_ecs_done, p, &p->call) != 0) {
		snprintf(err, errlen, "cannot start the request to %.160s", p->url);
		goto out;
	}
	rc = 0;
out:
	if (token != NULL)
		sodium_free(token);
	return rc;
}

/* Hosts the SDKs accept for AWS_CONTAINER_CREDENTIALS_FULL_URI (no DNS lookups here). */
static bool
cred_container_host_ok(const char *url)
{
	static const char *const allowed[] = {
		"169.254.170.2", "169.254.170.23", "[fd00:ec2::23]", "localhost", "[::1]",
	};
	const char *host, *end;
	size_t len, i;
	int a, b, c, d;
	char tail;

	if (strncasecmp(url, "http://", 7) == 0)
		host = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		host = url + 8;
	else
		return false;
	if (host[0] == '[')
		end = strchr(host, ']') != NULL ? strchr(host, ']') + 1 : NULL;
	else
		end = host + strcspn(host, ":/");
	if (end == NULL || (*end != '\0' && *end != ':' && *end != '/'))
		return false;
	len = (size_t)(end - host);
	for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (strlen(allowed[i]) == len && strncasecmp(host, allowed[i], len) == 0)
			return true;
	/* Any 127.0.0.0/8 address. */
	if (len < 16 && sscanf(host, "%3d.%3d.%3d.%3d%c", &a, &b, &c, &d, &tail) >= 4 &&
	    a == 127 && b >= 0 && b < 256 && c >= 0 && c < 256 && d >= 0 && d < 256) {
		char canon[16];

		snprintf(canon, sizeof(canon), "%d.%d.%d.%d", a, b, c, d);
		return strlen(canon) == len && strncmp(canon, host, len) == 0;
	}
	return false;
}

int
cred_setup_ecs(struct aws_credential_provider *p, const char *relative, const char *full,
    char *err, size_t errlen)
{
	const char *token = cred_env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	const char *token_file = cred_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	char *tmp, why[CRED_ERR_LEN];
	int n, rc;

	p->src = SRC_ECS;
	if (relative != NULL) {
		if (relative[0] != '/') {
			snprintf(err, errlen, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must start"
			    " with '/'");
			return -1;
		}
		n = snprintf(p->url, sizeof(p->url), "%s%s", ECS_RELATIVE_HOST, relative);
		if (n < 0 || (size_t)n >= sizeof(p->url)) {
			snprintf(err, errlen, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is too long");
			return -1;
		}
	} else {
		if (cred_copy_str(p->url, sizeof(p->url), full) != 0) {
			snprintf(err, errlen, "AWS_CONTAINER_CREDENTIALS_FULL_URI is too long");
			return -1;
		}
		if (!cred_container_host_ok(full) || strpbrk(full, " \t\r\n@") != NULL) {
			snprintf(err, errlen, "AWS_CONTAINER_CREDENTIALS_FULL_URI %.200s: only "
			    "http(s) URLs to a loopback address or the ECS/EKS addresses "
			    "169.254.170.2, 169.254.170.23 and [fd00:ec2::23] are allowed", full);
			return -1;
		}
	}
	/* The token file wins over the token, as in the SDKs; it is re-read on each fetch. */
	if (token_file != NULL) {
		if (cred_copy_str(p->token_file, sizeof(p->token_file), token_file) != 0) {
			snprintf(err, errlen, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE is too long");
			return -1;
		}
		if ((tmp = sodium_malloc(CRED_TOKEN_FILE_MAX)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		rc = cred_read_token_file(token_file, tmp, CRED_TOKEN_FILE_MAX, why, sizeof(why));
		sodium_free(tmp);
		if (rc != 0) {
			snprintf(err, errlen, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: %s", why);
			return -1;
		}
	} else if (token != NULL) {
		if (cred_copy_str(p->ecs_token, sizeof(p->ecs_token), token) != 0 ||
		    strpbrk(token, "\r\n") != NULL) {
			snprintf(err, errlen, "AWS_CONTAINER_AUTHORIZATION_TOKEN is too long or "
			    "holds a line break");
			return -1;
		}
	}
	return 0;
}
