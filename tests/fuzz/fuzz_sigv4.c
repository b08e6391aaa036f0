/*
 * fuzz_sigv4: arbitrary bytes through the Authorization parser and through
 * sign-then-verify. Input lines: line 1 is an Authorization value (parsed on
 * its own, and also the request body), line 2 a request target
 * ("path?query"), further lines "Name:value" headers. Beyond "no crash" it
 * checks: a parsed header has well-formed fields; what sigv4_sign() signs,
 * sigv4_verify() accepts with the same secret and rejects with another
 * secret or a body changed by one bit.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "sigv4.h"

#define CHECK(cond) do {							\
	if (!(cond)) {								\
		fprintf(stderr, "fuzz_sigv4: %s:%d: check failed: %s\n",	\
		    __FILE__, __LINE__, #cond);					\
		abort();							\
	}									\
} while (0)

#define MAX_LINES	(SIGV4_MAX_HEADERS + 8)
#define SECRET		"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define AMZ_DATE	"20240101T000000Z"

/* Lowercase names, strictly increasing, never "authorization". */
static void
check_signed_list(const char *list, size_t count)
{
	char copy[SIGV4_MAX_SIGNED_LIST + 1], *name, *save = NULL, *prev = NULL;
	const char *c;
	size_t n = 0;

	CHECK(strlen(list) <= SIGV4_MAX_SIGNED_LIST);
	strcpy(copy, list);
	for (name = strtok_r(copy, ";", &save); name != NULL; name = strtok_r(NULL, ";", &save)) {
		CHECK(strcmp(name, "authorization") != 0);
		for (c = name; *c != '\0'; c++)
			CHECK(!(*c >= 'A' && *c <= 'Z'));
		CHECK(prev == NULL || strcmp(prev, name) < 0);
		prev = name;
		n++;
	}
	CHECK(n == count);
}

static void
check_parsed(const char *value)
{
	struct sigv4_auth auth;
	enum sigv4_error err = SIGV4_OK;

	if (sigv4_auth_parse(value, &auth, &err) != 0) {
		CHECK(err == SIGV4_E_AUTH_MALFORMED || err == SIGV4_E_LIMIT);
		CHECK(auth.access_key_id[0] == '\0' && auth.signed_count == 0);
		return;
	}
	CHECK(strlen(auth.signature) == SIGV4_HEX_LEN);
	CHECK(strlen(auth.date) == SIGV4_DATE_LEN);
	CHECK(auth.access_key_id[0] != '\0' && auth.region[0] != '\0' && auth.service[0] != '\0');
	CHECK(auth.signed_count >= 1 && auth.signed_count <= SIGV4_MAX_HEADERS);
	check_signed_list(auth.signed_headers, auth.signed_count);
}

static bool
has_header(const struct sigv4_header *h, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(h[i].name, name) == 0)
			return true;
	return false;
}

static void
sign_and_verify(struct sigv4_request *req, struct sigv4_header *headers, char *body)
{
	struct sigv4_scope scope = { AMZ_DATE, "us-east-1", "secretsmanager" };
	struct sigv4_credentials cred = { "AKIDEXAMPLE", SECRET, NULL };
	struct sigv4_result res;
	enum sigv4_error err = SIGV4_OK;
	char *creq = NULL;
	bool clean;
	int rc;

	/* The canonical request alone, with every header the input gave. */
	if (sigv4_canonical_request(req, &creq, NULL, &err) == 0) {
		CHECK(strncmp(creq, "POST\n/", 6) == 0);
		sigv4_free(creq);
	} else {
		CHECK(creq == NULL && err != SIGV4_OK);
	}

	headers[req->header_count].name = "Host";
	headers[req->header_count++].value = "example.amazonaws.com";
	headers[req->header_count].name = "X-Amz-Date";
	headers[req->header_count++].value = AMZ_DATE;
	if (sigv4_sign(req, &scope, &cred, &res, &err) != 0) {
		CHECK(res.authorization == NULL);
		return;
	}
	/* A request of the input's own making with a second Authorization, or
	 * one too many headers once ours is added, is fairly refused; so is one
	 * whose headers grow past SIGV4_MAX_HEADER_BYTES with it. */
	clean = !has_header(headers, req->header_count, "authorization") &&
	    req->header_count < SIGV4_MAX_HEADERS;
	headers[req->header_count].name = "Authorization";
	headers[req->header_count++].value = res.authorization;

	rc = sigv4_verify(req, NULL, SECRET, &err);
	if (clean)
		CHECK(rc == 0 || err == SIGV4_E_LIMIT);
	if (rc == 0) {
		CHECK(sigv4_verify(req, NULL, SECRET "x", &err) == -1 && err == SIGV4_E_MISMATCH);
		if (req->body_len > 0) {
			body[0] ^= 1;
			CHECK(sigv4_verify(req, NULL, SECRET, &err) == -1 && err == SIGV4_E_MISMATCH);
			body[0] ^= 1;
		}
	}
	sigv4_result_free(&res);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sigv4_header headers[MAX_LINES + 4];
	struct sigv4_request req;
	char *buf, *lines[MAX_LINES], *p, *nl, *colon, *q;
	size_t n = 0, i;

	/* A C string copy split into lines; a NUL in the input ends it early. */
	if ((buf = malloc(size + 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	for (p = buf; n < MAX_LINES; p = nl + 1) {
		lines[n++] = p;
		if ((nl = strchr(p, '\n')) == NULL)
			break;
		*nl = '\0';
	}

	check_parsed(lines[0]);

	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.path = n > 1 ? lines[1] : "/";
	if (n > 1 && (q = strchr(lines[1], '?')) != NULL) {
		*q = '\0';
		req.query = q + 1;
	}
	req.headers = headers;
	for (i = 2; i < n; i++) {
		if ((colon = strchr(lines[i], ':')) == NULL)
			continue;
		*colon = '\0';
		headers[req.header_count].name = lines[i];
		headers[req.header_count++].value = colon + 1;
	}
	req.body = lines[0];
	req.body_len = strlen(lines[0]);
	sign_and_verify(&req, headers, lines[0]);

	free(buf);
	return 0;
}
