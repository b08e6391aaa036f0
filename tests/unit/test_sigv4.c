/*
 * Unit tests for agent/sigv4: every case of the AWS SigV4 test suite (each
 * step compared with .creq/.sts/.authz), the AWS key-derivation example, a
 * botocore-signed Secrets Manager request, canonicalisation details, caps,
 * and verification (accepts good signatures; rejects tampering, wrong keys
 * and malformed Authorization headers with the right error).
 *
 * The suite is read from ../shared/aws4_testsuite (cwd = repository root),
 * or from $SMCACHE_AWS4_TESTSUITE; when absent its test is skipped.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "sigv4.h"

#define SUITE_DEFAULT	"../shared/aws4_testsuite"
#define SUITE_AK	"AKIDEXAMPLE"
#define SUITE_SECRET	"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_DATE	"20150830T123600Z"
#define SUITE_REGION	"us-east-1"
#define SUITE_SERVICE	"service"
#define MAX_CASES	128
#define MAX_REQ_HEADERS	32

/* ---- small helpers ----------------------------------------------------------------- */

static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long size;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		return NULL;
	}
	buf = malloc((size_t)size + 1);
	if (buf == NULL || fread(buf, 1, (size_t)size, f) != (size_t)size) {
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[size] = '\0';
	if (len != NULL)
		*len = (size_t)size;
	return buf;
}

/* Expected-output files: compared without a trailing newline, if any. */
static char *
read_expected(const char *dir, const char *name, const char *ext)
{
	char path[4096];
	char *s;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s.%s", dir, name, ext);
	s = read_file(path, &n);
	if (s != NULL && n > 0 && s[n - 1] == '\n')
		s[n - 1] = '\0';
	return s;
}

static char *
repeat_char(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* ---- the AWS test suite -------------------------------------------------------------- */

struct http_req {
	char *buf;		/* the file, split in place */
	char *method, *path, *query;
	struct sigv4_header headers[MAX_REQ_HEADERS];
	size_t header_count;
	const char *body;
	size_t body_len;
};

/*
 * "METHOD TARGET HTTP/1.1", header lines "Name:value" (lines starting with
 * SP/HTAB continue the previous value; the signer folds them), a blank
 * line, then the body. The target may hold spaces (get-space).
 */
static int
parse_http(char *buf, size_t len, struct http_req *r)
{
	char *p = buf, *end = buf + len, *nl, *target, *ver, *colon, *q;

	memset(r, 0, sizeof(*r));
	r->buf = buf;
	if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
		nl = end;
	*nl = '\0';
	target = strchr(p, ' ');
	ver = strstr(p, " HTTP/");
	if (target == NULL || ver == NULL || ver <= target)
		return -1;
	while ((q = strstr(ver + 1, " HTTP/")) != NULL)
		ver = q;
	*target++ = '\0';
	*ver = '\0';
	r->method = p;
	r->path = target;
	if ((q = strchr(target, '?')) != NULL) {
		*q = '\0';
		r->query = q + 1;
	}
	p = nl < end ? nl + 1 : end;

	while (p < end) {
		if (*p == '\n') {	/* blank line: the body follows */
			r->body = p + 1;
			r->body_len = (size_t)(end - p - 1);
			return 0;
		}
		nl = p;
		for (;;) {
			nl = memchr(nl, '\n', (size_t)(end - nl));
			if (nl == NULL) {
				nl = end;
				break;
			}
			if (nl + 1 < end && (nl[1] == ' ' || nl[1] == '\t')) {
				nl++;
				continue;
			}
			break;
		}
		*nl = '\0';
		if ((colon = strchr(p, ':')) == NULL || r->header_count == MAX_REQ_HEADERS)
			return -1;
		*colon = '\0';
		r->headers[r->header_count].name = p;
		r->headers[r->header_count].value = colon + 1;
		r->header_count++;
		p = nl < end ? nl + 1 : end;
	}
	r->body = "";
	return 0;
}

struct suite_case {
	char dir[2048];
	char name[256];
};

static struct suite_case suite_cases[MAX_CASES];
static size_t suite_case_count;
static bool suite_truncated;

static const char *
suite_dir(void)
{
	const char *d = getenv("SMCACHE_AWS4_TESTSUITE");

	return d != NULL && d[0] != '\0' ? d : SUITE_DEFAULT;
}

/* Every folder holding NAME/NAME.req, recursively (cases nest one level). */
static void
collect_cases(const char *dir, int depth)
{
	char path[4096];
	struct dirent **names;
	struct stat st;
	const char *base;
	int n, i;

	base = strrchr(dir, '/');
	base = base != NULL ? base + 1 : dir;
	snprintf(path, sizeof(path), "%s/%s.req", dir, base);
	if (depth > 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
		if (suite_case_count == MAX_CASES) {
			suite_truncated = true;
			return;
		}
		snprintf(suite_cases[suite_case_count].dir, sizeof(suite_cases[0].dir), "%s", dir);
		snprintf(suite_cases[suite_case_count].name, sizeof(suite_cases[0].name), "%s", base);
		suite_case_count++;
	}
	if (depth >= 4 || (n = scandir(dir, &names, NULL, alphasort)) < 0)
		return;
	for (i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
			if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
				collect_cases(path, depth + 1);
		}
		free(names[i]);
	}
	free(names);
}

/* The suite's token case: the reference signer adds this signed header itself. */
#define VANILLA_TOKEN "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"

static void
test_suite_case(void **state)
{
	const struct suite_case *c = *state;
	char path[4096], *buf, *creq, *sts, *authz, *step_creq = NULL, *step_sts = NULL;
	struct http_req http;
	struct sigv4_request req = { 0 };
	struct sigv4_scope scope = { SUITE_DATE, SUITE_REGION, SUITE_SERVICE };
	struct sigv4_credentials cred = { SUITE_AK, SUITE_SECRET, NULL };
	struct sigv4_result res;
	struct sigv4_header with_auth[MAX_REQ_HEADERS + 2];
	enum sigv4_error err = SIGV4_OK;
	size_t len, i;

	snprintf(path, sizeof(path), "%s/%s.req", c->dir, c->name);
	buf = read_file(path, &len);
	creq = read_expected(c->dir, c->name, "creq");
	sts = read_expected(c->dir, c->name, "sts");
	authz = read_expected(c->dir, c->name, "authz");
	assert_non_null(buf);
	assert_non_null(creq);
	assert_non_null(sts);
	assert_non_null(authz);
	assert_int_equal(parse_http(buf, len, &http), 0);

	if (strcmp(c->name, "get-vanilla-with-session-token") == 0) {
		http.headers[http.header_count].name = "X-Amz-Security-Token";
		http.headers[http.header_count].value = VANILLA_TOKEN;
		http.header_count++;
		cred.session_token = VANILLA_TOKEN;
	} else if (strcmp(c->name, "post-sts-header-before") == 0) {
		/* The token is in the request and signed: pass it as a credential too. */
		for (i = 0; i < http.header_count; i++)
			if (strcmp(http.headers[i].name, "X-Amz-Security-Token") == 0)
				cred.session_token = http.headers[i].value;
		assert_non_null(cred.session_token);
	}
	/* post-sts-header-after: the token header is added after signing, so
	 * nothing to do here. */

	req.method = http.method;
	req.path = http.path;
	req.query = http.query;
	req.headers = http.headers;
	req.header_count = http.header_count;
	req.body = http.body;
	req.body_len = http.body_len;

	/* Steps one by one. */
	assert_int_equal(sigv4_canonical_request(&req, &step_creq, NULL, &err), 0);
	assert_string_equal(step_creq, creq);
	assert_int_equal(sigv4_string_to_sign(&scope, step_creq, &step_sts, &err), 0);
	assert_string_equal(step_sts, sts);

	/* All at once. */
	if (sigv4_sign(&req, &scope, &cred, &res, &err) != 0)
		fail_msg("%s: sign failed: %s", c->name, sigv4_strerror(err));
	assert_string_equal(res.canonical_request, creq);
	assert_string_equal(res.string_to_sign, sts);
	assert_string_equal(res.authorization, authz);
	assert_non_null(strstr(authz, res.signature));

	/* And the verifier accepts what the suite signed. */
	assert_true(http.header_count < MAX_REQ_HEADERS + 1);
	memcpy(with_auth, http.headers, http.header_count * sizeof(with_auth[0]));
	with_auth[http.header_count].name = "Authorization";
	with_auth[http.header_count].value = authz;
	req.headers = with_auth;
	req.header_count = http.header_count + 1;
	if (sigv4_verify(&req, NULL, SUITE_SECRET, &err) != 0)
		fail_msg("%s: verify failed: %s", c->name, sigv4_strerror(err));
	assert_int_equal(sigv4_verify(&req, NULL, "wrong" SUITE_SECRET, &err), -1);
	assert_int_equal(err, SIGV4_E_MISMATCH);

	sigv4_result_free(&res);
	sigv4_free(step_creq);
	sigv4_free(step_sts);
	free(buf);
	free(creq);
	free(sts);
	free(authz);
}

static void
test_suite_absent(void **state)
{
	(void)state;
	print_message("AWS SigV4 test suite not found at %s: skipped\n", suite_dir());
	skip();
}

static void
test_suite_found_cases(void **state)
{
	(void)state;
	/* The folder exists: there must be cases, and all of them run. */
	assert_false(suite_truncated);
	assert_true(suite_case_count >= 25);
}

/* ---- signing key ------------------------------------------------------------------- */

static void
expect_hex(const uint8_t *bytes, size_t n, const char *want)
{
	char hex[2 * 64 + 1];
	size_t i;

	assert_true(n <= 64);
	for (i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
	assert_string_equal(hex, want);
}

/* "Examples of how to derive a signing key for Signature Version 4" (AWS docs). */
static void
test_signing_key_doc_example(void **state)
{
	uint8_t key[SIGV4_KEY_LEN];
	enum sigv4_error err = SIGV4_OK;

	(void)state;
	assert_int_equal(sigv4_signing_key(SUITE_SECRET, "20120215", "us-east-1", "iam", key, &err), 0);
	expect_hex(key, sizeof(key),
	    "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");

	assert_int_equal(sigv4_signing_key(SUITE_SECRET, "2012021", "us-east-1", "iam", key, &err), -1);
	assert_int_equal(err, SIGV4_E_DATE);
	assert_int_equal(sigv4_signing_key(SUITE_SECRET, "20121315", "us-east-1", "iam", key, &err), -1);
	assert_int_equal(err, SIGV4_E_DATE);
	assert_int_equal(sigv4_signing_key("", "20120215", "us-east-1", "iam", key, &err), -1);
	assert_int_equal(err, SIGV4_E_INVALID);
	assert_int_equal(sigv4_signing_key(SUITE_SECRET, "20120215", "us/east", "iam", key, &err), -1);
	assert_int_equal(err, SIGV4_E_INVALID);
	assert_int_equal(sigv4_signing_key(SUITE_SECRET, "20120215", "us-east-1", "", key, &err), -1);
	assert_int_equal(err, SIGV4_E_INVALID);
}

/* ---- a Secrets Manager request (JSON 1.1) ---------------------------------------------- */

#define SM_HOST		"secretsmanager.eu-west-1.amazonaws.com"
#define SM_DATE		"20240115T093000Z"
#define SM_TOKEN	"FwoGZXIvYXdzEXAMPLETOKEN//+=="
#define SM_BODY		"{\"SecretId\": \"db/main\", \"VersionStage\": \"AWSCURRENT\"}"
/* botocore 1.43 SigV4Auth over the same request, timestamp 2024-01-15 09:30:00Z. */
#define SM_AUTHZ	"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240115/eu-west-1/" \
    "secretsmanager/aws4_request, SignedHeaders=content-type;host;x-amz-date;" \
    "x-amz-security-token;x-amz-target, " \
    "Signature=5432d8b3b8f699bba5b333f91f69b9ba5bc5637e30e58514bea54e198d0ea9f2"

struct fixture {
	struct sigv4_header headers[SIGV4_MAX_HEADERS + 2];
	char body[sizeof(SM_BODY)];
	struct sigv4_request req;
	struct sigv4_scope scope;
	struct sigv4_credentials cred;
	struct sigv4_result res;
};

static void
fixture_init(struct fixture *f)
{
	static const struct sigv4_header h[] = {
		{ "Host", SM_HOST },
		{ "Content-Type", "application/x-amz-json-1.1" },
		{ "X-Amz-Target", "secretsmanager.GetSecretValue" },
		{ "X-Amz-Date", SM_DATE },
		{ "X-Amz-Security-Token", SM_TOKEN },
	};

	memset(f, 0, sizeof(*f));
	memcpy(f->headers, h, sizeof(h));
	memcpy(f->body, SM_BODY, sizeof(SM_BODY));
	f->req.method = "POST";
	f->req.path = "/";
	f->req.headers = f->headers;
	f->req.header_count = sizeof(h) / sizeof(h[0]);
	f->req.body = f->body;
	f->req.body_len = strlen(f->body);
	f->scope.amz_date = SM_DATE;
	f->scope.region = "eu-west-1";
	f->scope.service = "secretsmanager";
	f->cred.access_key_id = SUITE_AK;
	f->cred.secret_key = SUITE_SECRET;
	f->cred.session_token = SM_TOKEN;
}

/* Signs f->req and appends the Authorization header, as a client sends it. */
static void
fixture_sign(struct fixture *f)
{
	enum sigv4_error err = SIGV4_OK;

	if (sigv4_sign(&f->req, &f->scope, &f->cred, &f->res, &err) != 0)
		fail_msg("sign failed: %s", sigv4_strerror(err));
	f->headers[f->req.header_count].name = "Authorization";
	f->headers[f->req.header_count].value = f->res.authorization;
	f->req.header_count++;
}

#define expect_verify(f, secret, want) expect_verify_at(f, secret, want, __LINE__)

static void
expect_verify_at(const struct fixture *f, const char *secret, enum sigv4_error want, int line)
{
	enum sigv4_error err = SIGV4_OK;
	int rc = sigv4_verify(&f->req, NULL, secret, &err);

	if (want == SIGV4_OK) {
		if (rc != 0)
			fail_msg("line %d: verify failed: %s", line, sigv4_strerror(err));
		return;
	}
	assert_int_equal(rc, -1);
	if (err != want)
		fail_msg("line %d: verify: got \"%s\", want \"%s\"", line, sigv4_strerror(err),
		    sigv4_strerror(want));
}

static void
test_secretsmanager_matches_botocore(void **state)
{
	struct fixture f;
	struct sigv4_result cached;
	struct sigv4_auth auth;
	uint8_t key[SIGV4_KEY_LEN];
	enum sigv4_error err = SIGV4_OK;

	(void)state;
	fixture_init(&f);
	fixture_sign(&f);
	assert_string_equal(f.res.authorization, SM_AUTHZ);
	assert_string_equal(f.res.signed_headers,
	    "content-type;host;x-amz-date;x-amz-security-token;x-amz-target");

	/* A cached signing key gives the same result. */
	f.req.header_count--;
	assert_int_equal(sigv4_signing_key(SUITE_SECRET, "20240115", "eu-west-1", "secretsmanager",
	    key, &err), 0);
	assert_int_equal(sigv4_sign_with_key(&f.req, &f.scope, SUITE_AK, key, &cached, &err), 0);
	assert_string_equal(cached.authorization, SM_AUTHZ);
	assert_string_equal(cached.canonical_request, f.res.canonical_request);
	sigv4_result_free(&cached);
	assert_null(cached.authorization);
	f.req.header_count++;

	/* Parse, then verify with the parsed header (the endpoint's two steps). */
	assert_int_equal(sigv4_auth_find(&f.req, &auth, &err), 0);
	assert_string_equal(auth.access_key_id, SUITE_AK);
	assert_string_equal(auth.date, "20240115");
	assert_string_equal(auth.region, "eu-west-1");
	assert_string_equal(auth.service, "secretsmanager");
	assert_int_equal(auth.signed_count, 5);
	assert_int_equal(sigv4_verify(&f.req, &auth, SUITE_SECRET, &err), 0);
	expect_verify(&f, SUITE_SECRET, SIGV4_OK);
	sigv4_result_free(&f.res);
}

/* ---- canonicalisation details ---------------------------------------------------------- */

/* The second line of the canonical request. */
static void
expect_uri(const char *path, const char *want)
{
	struct sigv4_header h[] = { { "Host", "h" } };
	struct sigv4_request req = { 0 };
	enum sigv4_error err = SIGV4_OK;
	char *creq = NULL, *line, *nl;

	req.method = "GET";
	req.path = path;
	req.headers = h;
	req.header_count = 1;
	if (sigv4_canonical_request(&req, &creq, NULL, &err) != 0)
		fail_msg("path \"%s\": %s", path, sigv4_strerror(err));
	line = strchr(creq, '\n') + 1;
	nl = strchr(line, '\n');
	*nl = '\0';
	if (strcmp(line, want) != 0)
		fail_msg("path \"%s\": got \"%s\", want \"%s\"", path, line, want);
	sigv4_free(creq);
}

static void
test_canonical_path(void **state)
{
	(void)state;
	expect_uri("", "/");
	expect_uri("/", "/");
	expect_uri("/a/b/../c/./d//e/", "/a/c/d/e/");
	expect_uri("/a/b/..", "/a");
	expect_uri("/../../a", "/a");
	expect_uri("/a/.../b", "/a/.../b");
	expect_uri("/a/..b/.c", "/a/..b/.c");
	/* Escapes are not decoded: non-S3 services want them encoded again. */
	expect_uri("/a%20b", "/a%2520b");
	expect_uri("/%2E%2E/x", "/%252E%252E/x");
	expect_uri("/a b+c=d&e;f,g:h@i!j*k'l(m)n$", "/a%20b%2Bc%3Dd%26e%3Bf%2Cg%3Ah%40i%21j%2Ak%27l%28m%29n%24");
	expect_uri("/\xe1\x88\xb4/\xff", "/%E1%88%B4/%FF");
	expect_uri("/-_.~AZaz09", "/-_.~AZaz09");
}

/* The third line of the canonical request. */
static void
expect_query(const char *query, const char *want)
{
	struct sigv4_header h[] = { { "Host", "h" } };
	struct sigv4_request req = { 0 };
	enum sigv4_error err = SIGV4_OK;
	char *creq = NULL, *line, *nl;

	req.method = "GET";
	req.path = "/";
	req.query = query;
	req.headers = h;
	req.header_count = 1;
	if (sigv4_canonical_request(&req, &creq, NULL, &err) != 0)
		fail_msg("query \"%s\": %s", query, sigv4_strerror(err));
	line = strchr(strchr(creq, '\n') + 1, '\n') + 1;
	nl = strchr(line, '\n');
	*nl = '\0';
	if (strcmp(line, want) != 0)
		fail_msg("query \"%s\": got \"%s\", want \"%s\"", query, line, want);
	sigv4_free(creq);
}

static void
test_canonical_query(void **state)
{
	(void)state;
	expect_query(NULL, "");
	expect_query("", "");
	expect_query("&&", "");
	expect_query("b=2&a=1&a=0&c", "a=0&a=1&b=2&c=");
	expect_query("a=&a", "a=&a=");
	expect_query("x=a=b", "x=a%3Db");
	/* Escapes are decoded then re-encoded: the form on the wire does not matter. */
	expect_query("%7e=%41%2f", "~=A%2F");
	expect_query("k=%e1%88%b4", "k=%E1%88%B4");
	expect_query("k=\xe1\x88\xb4", "k=%E1%88%B4");
	/* '+' is not a space here, and a broken escape is a literal '%'. */
	expect_query("a+b=%zz&p=%4", "a%2Bb=%25zz&p=%254");
	expect_query("k=a b", "k=a%20b");
	/* Sorted by encoded key (byte order), then by value. */
	expect_query("B=1&a=1&_=1&-=1&~=1", "-=1&B=1&_=1&a=1&~=1");
	expect_query("%E1%88%B4=1&Param=2&Param-3=3", "%E1%88%B4=1&Param=2&Param-3=3");
	expect_query("k=b&k=B&k=a", "k=B&k=a&k=b");
}

static void
test_canonical_headers(void **state)
{
	const struct sigv4_header h[] = {
		{ "Host", "example.com" },
		{ "ZZ-last", "  a \t  b  " },
		{ "My-Header", "one" },
		{ "my-header", "two\r\n   folded\n\tagain" },
		{ "MY-HEADER", "" },
		{ "X-Empty", "   " },
		{ "User-Agent", "not signed" },
	};
	const char *names[] = { "host", "ZZ-LAST", "my-header", "x-empty" };
	struct sigv4_request req = { 0 };
	enum sigv4_error err = SIGV4_OK;
	char *creq = NULL, *list = NULL;

	(void)state;
	req.method = "GET";
	req.path = "/";
	req.headers = h;
	req.header_count = sizeof(h) / sizeof(h[0]);
	req.signed_headers = names;
	req.signed_count = sizeof(names) / sizeof(names[0]);
	assert_int_equal(sigv4_canonical_request(&req, &creq, &list, &err), 0);
	assert_string_equal(creq,
	    "GET\n/\n\n"
	    "host:example.com\n"
	    "my-header:one,two folded again,\n"
	    "x-empty:\n"
	    "zz-last:a b\n"
	    "\nhost;my-header;x-empty;zz-last\n"
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_string_equal(list, "host;my-header;x-empty;zz-last");
	sigv4_free(creq);
	sigv4_free(list);

	/* Without a list every header is signed. */
	req.signed_headers = NULL;
	req.signed_count = 0;
	assert_int_equal(sigv4_canonical_request(&req, &creq, &list, &err), 0);
	assert_string_equal(list, "host;my-header;user-agent;x-empty;zz-last");
	sigv4_free(creq);
	sigv4_free(list);
}

static void
test_payload_hash(void **state)
{
	struct fixture f;
	struct sigv4_result pre;
	enum sigv4_error err = SIGV4_OK;
	char *creq = NULL;

	(void)state;
	fixture_init(&f);
	fixture_sign(&f);
	f.req.header_count--;
	/* A precomputed hash of the same body signs the same. */
	f.req.payload_hash = strrchr(f.res.canonical_request, '\n') + 1;
	f.req.body = NULL;
	f.req.body_len = 0;
	assert_int_equal(sigv4_sign(&f.req, &f.scope, &f.cred, &pre, &err), 0);
	assert_string_equal(pre.authorization, f.res.authorization);
	sigv4_result_free(&pre);

	f.req.payload_hash = "UNSIGNED-PAYLOAD";
	assert_int_equal(sigv4_canonical_request(&f.req, &creq, NULL, &err), 0);
	assert_string_equal(strrchr(creq, '\n') + 1, "UNSIGNED-PAYLOAD");
	sigv4_free(creq);

	f.req.payload_hash = "abc\ndef";
	assert_int_equal(sigv4_canonical_request(&f.req, &creq, NULL, &err), -1);
	assert_int_equal(err, SIGV4_E_INVALID);
	assert_null(creq);

	/* A body length without a body is a caller bug. */
	f.req.payload_hash = NULL;
	f.req.body_len = 3;
	assert_int_equal(sigv4_canonical_request(&f.req, &creq, NULL, &err), -1);
	assert_int_equal(err, SIGV4_E_INVALID);
	sigv4_result_free(&f.res);
}

/* ---- verification ------------------------------------------------------------------ */

static void
test_verify_body_bit_flips(void **state)
{
	struct fixture f;
	size_t i;
	int bit;

	(void)state;
	fixture_init(&f);
	fixture_sign(&f);
	expect_verify(&f, SUITE_SECRET, SIGV4_OK);
	for (i = 0; i < f.req.body_len; i += 7) {
		for (bit = 0; bit < 8; bit += 3) {
			f.body[i] ^= (char)(1 << bit);
			expect_verify(&f, SUITE_SECRET, SIGV4_E_MISMATCH);
			f.body[i] ^= (char)(1 << bit);
		}
	}
	/* A body cut short, or one byte longer. */
	f.req.body_len--;
	expect_verify(&f, SUITE_SECRET, SIGV4_E_MISMATCH);
	f.req.body_len++;
	expect_verify(&f, SUITE_SECRET, SIGV4_OK);
	sigv4_result_free(&f.res);
}

static void
test_verify_changed_headers(void **state)
{
	struct fixture f;
	size_t n;

	(void)state;
	fixture_init(&f);
	fixture_sign(&f);
	n = f.req.header_count;

	f.headers[2].value = "secretsmanager.PutSecretValue";
	expect_verify(&f, SUITE_SECRET, SIGV4_E_MISMATCH);
	f.headers[2].value = "secretsmanager.GetSecretValue";
	expect_verify(&f, SUITE_SECRET, SIGV4_OK);

	/* Same value after trimming and case-folding the name: still valid. */
	f.headers[2].name = "x-AMZ-target";
	f.headers[2].value = "  secretsmanager.GetSecretValue ";
	expect_verify(&f, SUITE_SECRET, SIGV4_OK);

	f.headers[0].value = SM_HOST ".evil.example";
	expect_verify(&f, SUITE_SECRET, SIGV4_E_MISMATCH);
	f.headers[0].value = SM_HOST;

	/* A repeated signed header changes its canonical value. */
	f.headers[n].name = "Content-Type";
	f.headers[n].value = "text/plain";
	f.req.header_count = n + 1;
	expect_verify(&f, SUITE_SECRET, SIGV4_E_MISMATCH);

	/* An unsigned header does not matter, unless it is an x-amz-* one. */
	f.headers[n].name = "User-Agent";
	f.headers[n].value = "test/1.0";
	expect_verify(&f, SUITE_SECRET, SIGV4_OK);
	f.headers[n].name = "X-Amz-Meta";
	expect_verify(&f, SUITE_SECRET, SIGV4_E_AUTH_MALFORMED);
	f.req.header_count = n;

	/* A signed header taken away. */
	f.headers[1].name = "Content-Typo";
	expect_verify(&f, SUITE_SECRET, SIGV4_E_NO_HEADER);
	f.headers[1].name = "Content-Type";

	/* Method, path and query are signed too. */
	f.req.method = "PUT";
	expect_verify(&f, SUITE_SECRET, SIGV4_E_MISMATCH);
	f.req.method = "POST";
	f.req.path = "/x";
	expect_verify(&f, SUITE_SECRET, SIGV4_E_MISMATCH);
	f.req.path = "/";
	f.req.query = "a=b";
	expect_verify(&f, SUITE_SECRET, SIGV4_E_MISMATCH);
	f.req.query = NULL;
	expect_verify(&f, SUITE_SECRET, SIGV4_OK);
	sigv4_result_free(&f.res);
}

static void
test_verify_wrong_secret(void **state)
{
	struct fixture f;
	char secret[] = SUITE_SECRET;

	(void)state;
	fixture_init(&f);
	fixture_sign(&f);
	secret[0] ^= 1;
	expect_verify(&f, secret, SIGV4_E_MISMATCH);
	expect_verify(&f, SUITE_SECRET "x", SIGV4_E_MISMATCH);
	expect_verify(&f, "x", SIGV4_E_MISMATCH);
	expect_verify(&f, "", SIGV4_E_INVALID);
	sigv4_result_free(&f.res);
}

/* The Authorization value of f with one substring replaced. */
#define expect_auth_variant(f, from, to, want) expect_auth_variant_at(f, from, to, want, __LINE__)

static void
expect_auth_variant_at(struct fixture *f, const char *from, const char *to, enum sigv4_error want,
    int line)
{
	char value[2048];
	const char *at = strstr(f->res.authorization, from);
	size_t slot = f->req.header_count - 1;
	const char *saved = f->headers[slot].value;

	assert_non_null(at);
	snprintf(value, sizeof(value), "%.*s%s%s", (int)(at - f->res.authorization),
	    f->res.authorization, to, at + strlen(from));
	f->headers[slot].value = value;
	expect_verify_at(f, SUITE_SECRET, want, line);
	f->headers[slot].value = saved;
}

static void
test_verify_authorization_shapes(void **state)
{
	static const char *const malformed[] = {
		"",
		"AWS4-HMAC-SHA256",
		"AWS4-HMAC-SHA256 ",
		"AWS4-HMAC-SHA1 Credential=AKIDEXAMPLE/20240115/eu-west-1/secretsmanager/aws4_request, "
		    "SignedHeaders=host;x-amz-date, Signature="
		    "5432d8b3b8f699bba5b333f91f69b9ba5bc5637e30e58514bea54e198d0ea9f2",
		"Bearer abc",
		"AWS4-HMAC-SHA256Credential=AKIDEXAMPLE/20240115/eu-west-1/secretsmanager/aws4_request",
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240115/eu-west-1/secretsmanager/aws4_request",
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240115/eu-west-1/secretsmanager/aws4_request, "
		    "SignedHeaders=host;x-amz-date",
		"AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature="
		    "5432d8b3b8f699bba5b333f91f69b9ba5bc5637e30e58514bea54e198d0ea9f2",
		"AWS4-HMAC-SHA256 ,,,",
		"AWS4-HMAC-SHA256 Credential",
		"AWS4-HMAC-SHA256 =x",
	};
	struct sigv4_auth auth;
	struct fixture f;
	enum sigv4_error err = SIGV4_OK;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		err = SIGV4_OK;
		if (sigv4_auth_parse(malformed[i], &auth, &err) != -1 || err != SIGV4_E_AUTH_MALFORMED)
			fail_msg("accepted or wrong error for \"%s\"", malformed[i]);
		assert_string_equal(auth.access_key_id, "");
	}
	assert_int_equal(sigv4_auth_parse(NULL, &auth, &err), -1);
	assert_int_equal(err, SIGV4_E_AUTH_MISSING);

	fixture_init(&f);
	fixture_sign(&f);
	expect_verify(&f, SUITE_SECRET, SIGV4_OK);
	/* Each component broken in turn. */
	expect_auth_variant(&f, "AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA256,", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "AWS4-HMAC-SHA256", "aws4-hmac-sha256", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "Credential=", "credential=", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "/aws4_request", "/aws4_reqest", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "/aws4_request", "/aws4_request/x", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "/secretsmanager/", "/", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "/20240115/", "/2024011/", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "/20240115/", "/2024o115/", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "AKIDEXAMPLE/", "/", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "AKIDEXAMPLE/", "AKID EXAMPLE/", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "/eu-west-1/", "/eu west/", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "SignedHeaders=content-type;host", "SignedHeaders=host;content-type",
	    SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "SignedHeaders=content-type;host", "SignedHeaders=content-type;Host",
	    SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "SignedHeaders=content-type;host", "SignedHeaders=host;host",
	    SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "SignedHeaders=content-type;host", "SignedHeaders=;host",
	    SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "SignedHeaders=content-type;host",
	    "SignedHeaders=authorization;content-type;host", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "x-amz-target, ", "x-amz-target;, ", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "x-amz-target, ", "x-amz-target, SignedHeaders=host, ",
	    SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "Signature=5432", "Signature=5432d", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "Signature=5432", "Signature=543", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "Signature=5432d8", "Signature=5432D8", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "Signature=5432d8", "Signature=5432g8", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "ea9f2", "ea9f2,", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "ea9f2", "ea9f2, Extra=1", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, ", Signature", ",, Signature", SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, ", Signature", ", Signature=00, Signature", SIGV4_E_AUTH_MALFORMED);
	/* Host and X-Amz-Date must be signed. */
	expect_auth_variant(&f, "SignedHeaders=content-type;host;", "SignedHeaders=content-type;",
	    SIGV4_E_AUTH_MALFORMED);
	expect_auth_variant(&f, "x-amz-date;", "", SIGV4_E_AUTH_MALFORMED);

	/* Well-formed but different: a mismatch, not a parse error. */
	expect_auth_variant(&f, "Signature=5432", "Signature=5433", SIGV4_E_MISMATCH);
	expect_auth_variant(&f, "ea9f2", "ea9f3", SIGV4_E_MISMATCH);	/* every byte compared */
	expect_auth_variant(&f, "d0ea9f2", "d1ea9f2", SIGV4_E_MISMATCH);
	expect_auth_variant(&f, "AKIDEXAMPLE/", "AKIDOTHER/", SIGV4_OK);	/* AK is not signed */
	expect_auth_variant(&f, "/eu-west-1/", "/eu-west-2/", SIGV4_E_MISMATCH);
	expect_auth_variant(&f, "/secretsmanager/", "/sts/", SIGV4_E_MISMATCH);
	expect_auth_variant(&f, ";x-amz-target", "", SIGV4_E_AUTH_MALFORMED);	/* x-amz-* unsigned */
	/* Credential day differs from X-Amz-Date. */
	expect_auth_variant(&f, "/20240115/", "/20240116/", SIGV4_E_DATE);

	/* Accepted layouts: no space after ',', extra spaces, any order, OWS around. */
	expect_auth_variant(&f, ", SignedHeaders", ",SignedHeaders", SIGV4_OK);
	expect_auth_variant(&f, ", Signature", " ,   Signature", SIGV4_OK);
	expect_auth_variant(&f, "AWS4-HMAC-SHA256 ", " AWS4-HMAC-SHA256   ", SIGV4_OK);
	expect_auth_variant(&f, "ea9f2", "ea9f2 \t", SIGV4_OK);
	{
		char moved[1024];
		const char *cred = strstr(f.res.authorization, "Credential=");
		const char *sig = strstr(f.res.authorization, ", Signature=");
		size_t slot = f.req.header_count - 1;

		snprintf(moved, sizeof(moved), "AWS4-HMAC-SHA256 Signature=%s, %.*s", sig + 12,
		    (int)(sig - cred), cred);
		f.headers[slot].value = moved;
		expect_verify(&f, SUITE_SECRET, SIGV4_OK);
		f.headers[slot].value = f.res.authorization;
	}

	/* No Authorization header, or two of them. */
	f.req.header_count--;
	expect_verify(&f, SUITE_SECRET, SIGV4_E_AUTH_MISSING);
	f.req.header_count++;
	f.headers[f.req.header_count] = f.headers[f.req.header_count - 1];
	f.headers[f.req.header_count].name = "authorization";
	f.req.header_count++;
	expect_verify(&f, SUITE_SECRET, SIGV4_E_AUTH_MALFORMED);
	sigv4_result_free(&f.res);
}

static void
test_verify_date_header(void **state)
{
	struct fixture f;

	(void)state;
	fixture_init(&f);
	fixture_sign(&f);
	f.headers[3].value = "20240115T093001Z";	/* same day, other second */
	expect_verify(&f, SUITE_SECRET, SIGV4_E_MISMATCH);
	f.headers[3].value = "20240116T093000Z";
	expect_verify(&f, SUITE_SECRET, SIGV4_E_DATE);
	f.headers[3].value = "2024-01-15T09:30:00Z";
	expect_verify(&f, SUITE_SECRET, SIGV4_E_DATE);
	f.headers[3].value = "20240115T093000";
	expect_verify(&f, SUITE_SECRET, SIGV4_E_DATE);
	f.headers[3].value = "20240115T093000Zx";
	expect_verify(&f, SUITE_SECRET, SIGV4_E_DATE);
	f.headers[3].value = " " SM_DATE " ";
	expect_verify(&f, SUITE_SECRET, SIGV4_OK);
	f.headers[3].name = "X-Amz-Datum";
	expect_verify(&f, SUITE_SECRET, SIGV4_E_AUTH_MALFORMED);	/* unsigned x-amz-* */
	f.headers[3].name = "Datum";
	expect_verify(&f, SUITE_SECRET, SIGV4_E_DATE);
	sigv4_result_free(&f.res);
}

/* ---- signing checks ------------------------------------------------------------------ */

#define expect_sign_error(f, want) expect_sign_error_at(f, want, __LINE__)

static void
expect_sign_error_at(struct fixture *f, enum sigv4_error want, int line)
{
	struct sigv4_result res;
	enum sigv4_error err = SIGV4_OK;

	memset(&res, 0xa5, sizeof(res));
	if (sigv4_sign(&f->req, &f->scope, &f->cred, &res, &err) != -1)
		fail_msg("line %d: sign succeeded", line);
	if (err != want)
		fail_msg("line %d: sign: got \"%s\", want \"%s\"", line, sigv4_strerror(err),
		    sigv4_strerror(want));
	/* A failed call leaves an empty result that is safe to free. */
	assert_null(res.canonical_request);
	assert_null(res.authorization);
	sigv4_result_free(&res);
}

static void
test_sign_token_and_date_checks(void **state)
{
	struct fixture f;
	const char *without_token[] = { "host", "x-amz-date", "x-amz-target", "content-type" };

	(void)state;
	fixture_init(&f);
	f.cred.session_token = "other-token";
	expect_sign_error(&f, SIGV4_E_TOKEN);
	f.cred.session_token = SM_TOKEN;
	f.req.signed_headers = without_token;
	f.req.signed_count = 4;
	expect_sign_error(&f, SIGV4_E_TOKEN);
	f.req.signed_headers = NULL;
	f.req.signed_count = 0;
	f.headers[4].name = "X-Amz-Security-Tokens";
	expect_sign_error(&f, SIGV4_E_TOKEN);
	f.headers[4].name = "X-Amz-Security-Token";

	/* Long-term keys need no token header; an extra one is just a header. */
	f.cred.session_token = NULL;
	fixture_sign(&f);
	sigv4_result_free(&f.res);
	fixture_init(&f);

	f.scope.amz_date = "20240115T093001Z";	/* differs from the X-Amz-Date header */
	expect_sign_error(&f, SIGV4_E_DATE);
	f.scope.amz_date = "20240115 093000Z";
	expect_sign_error(&f, SIGV4_E_DATE);
	f.scope.amz_date = "20241315T093000Z";
	expect_sign_error(&f, SIGV4_E_DATE);
	f.scope.amz_date = "20240115T253000Z";
	expect_sign_error(&f, SIGV4_E_DATE);
	f.scope.amz_date = NULL;
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.scope.amz_date = SM_DATE;
	f.headers[f.req.header_count].name = "x-amz-date";
	f.headers[f.req.header_count].value = SM_DATE;
	f.req.header_count++;
	expect_sign_error(&f, SIGV4_E_DATE);	/* two X-Amz-Date headers */
}

static void
test_sign_invalid_inputs(void **state)
{
	struct fixture f;
	const char *missing[] = { "host", "x-amz-date", "x-amz-security-token", "x-not-there" };
	const char *bad_name[] = { "host", "bad name" };

	(void)state;
	fixture_init(&f);
	f.headers[1].value = "text/plain\r\nX-Injected: 1";
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.headers[1].value = "text/plain\nX-Injected: 1";
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.headers[1].value = "text/plain\r";
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.headers[1].value = "a\001b";
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.headers[1].value = "a\177b";
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.headers[1].value = NULL;
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.headers[1].value = "application/x-amz-json-1.1";

	f.headers[1].name = "Content Type";
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.headers[1].name = "Content-Type:";
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.headers[1].name = "";
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.headers[1].name = "Content-Type";

	f.req.method = "PO ST";
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.req.method = "";
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.req.method = "POST";
	f.req.path = "relative";
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.req.path = "/a\nb";
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.req.path = NULL;
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.req.path = "/";
	f.req.query = "a=\tb";
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.req.query = NULL;

	f.req.signed_headers = missing;
	f.req.signed_count = 4;
	expect_sign_error(&f, SIGV4_E_NO_HEADER);
	f.req.signed_headers = bad_name;
	f.req.signed_count = 2;
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.req.signed_headers = NULL;
	f.req.signed_count = 0;
	f.req.header_count = 0;
	f.cred.session_token = NULL;
	expect_sign_error(&f, SIGV4_E_INVALID);	/* nothing to sign */
	fixture_init(&f);

	f.scope.region = "eu/west";
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.scope.region = "";
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.scope.region = "eu-west-1";
	f.scope.service = "secrets manager";
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.scope.service = "secretsmanager";
	f.cred.access_key_id = "AKID/X";
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.cred.access_key_id = "";
	expect_sign_error(&f, SIGV4_E_INVALID);
	f.cred.access_key_id = SUITE_AK;
	f.cred.secret_key = NULL;
	expect_sign_error(&f, SIGV4_E_INVALID);
}

static void
test_limits(void **state)
{
	struct fixture f;
	struct sigv4_auth auth;
	enum sigv4_error err = SIGV4_OK;
	char *big, *query, *auth_value;
	const char *names[SIGV4_MAX_HEADERS + 1];
	size_t i, n;

	(void)state;
	fixture_init(&f);
	big = repeat_char('a', SIGV4_MAX_HEADER_VALUE + 1);

	/* Paths and queries at the cap pass, one byte more fails. */
	big[0] = '/';
	big[SIGV4_MAX_PATH] = '\0';
	f.req.path = big;
	fixture_sign(&f);
	f.req.header_count--;
	sigv4_result_free(&f.res);
	big[SIGV4_MAX_PATH] = 'a';
	big[SIGV4_MAX_PATH + 1] = '\0';
	expect_sign_error(&f, SIGV4_E_LIMIT);
	f.req.path = "/";
	memset(big, 'a', SIGV4_MAX_HEADER_VALUE + 1);
	big[SIGV4_MAX_QUERY + 1] = '\0';
	f.req.query = big;
	expect_sign_error(&f, SIGV4_E_LIMIT);
	big[SIGV4_MAX_QUERY + 1] = 'a';

	/* Too many query parameters. */
	n = (SIGV4_MAX_QUERY_PARAMS + 1) * 2;
	query = repeat_char('&', n);
	for (i = 0; i < n; i += 2)
		query[i] = 'k';
	f.req.query = query;
	expect_sign_error(&f, SIGV4_E_LIMIT);
	query[n - 2] = '\0';	/* exactly the cap */
	fixture_sign(&f);
	f.req.header_count--;
	sigv4_result_free(&f.res);
	f.req.query = NULL;
	free(query);

	/* A header value, a header name, and all headers together. */
	f.headers[1].value = big;
	expect_sign_error(&f, SIGV4_E_LIMIT);
	big[SIGV4_MAX_HEADER_VALUE] = '\0';
	fixture_sign(&f);
	f.req.header_count--;
	sigv4_result_free(&f.res);
	f.headers[1].value = "application/x-amz-json-1.1";
	big[SIGV4_MAX_HEADER_NAME + 1] = '\0';
	f.headers[1].name = big;
	expect_sign_error(&f, SIGV4_E_LIMIT);
	f.headers[1].name = "Content-Type";
	big[SIGV4_MAX_HEADER_NAME + 1] = 'a';
	for (i = f.req.header_count; i < f.req.header_count + 5; i++) {
		f.headers[i].name = "X-Big";
		f.headers[i].value = big;
	}
	f.req.header_count += 5;
	expect_sign_error(&f, SIGV4_E_LIMIT);
	f.req.header_count -= 5;

	/* Too many headers, and too many names to sign. */
	for (i = f.req.header_count; i < SIGV4_MAX_HEADERS + 1; i++) {
		f.headers[i].name = "X-Many";
		f.headers[i].value = "v";
	}
	f.req.header_count = SIGV4_MAX_HEADERS + 1;
	expect_sign_error(&f, SIGV4_E_LIMIT);
	f.req.header_count = SIGV4_MAX_HEADERS;
	fixture_sign(&f);
	f.req.header_count--;
	sigv4_result_free(&f.res);
	for (i = 0; i < SIGV4_MAX_HEADERS + 1; i++)
		names[i] = "host";
	f.req.signed_headers = names;
	f.req.signed_count = SIGV4_MAX_HEADERS + 1;
	f.cred.session_token = NULL;
	expect_sign_error(&f, SIGV4_E_LIMIT);
	fixture_init(&f);

	/* A SignedHeaders list longer than a verifier would parse. */
	{
		static char long_names[40][SIGV4_MAX_HEADER_NAME + 1];

		for (i = 0; i < 40; i++) {
			memset(long_names[i], 'n', SIGV4_MAX_HEADER_NAME);
			snprintf(long_names[i], 8, "x%02zu", i);
			long_names[i][3] = 'n';
			f.headers[i].name = long_names[i];
			f.headers[i].value = "v";
		}
		f.headers[40].name = "Host";
		f.headers[40].value = SM_HOST;
		f.headers[41].name = "X-Amz-Date";
		f.headers[41].value = SM_DATE;
		f.req.header_count = 42;
		f.cred.session_token = NULL;
		expect_sign_error(&f, SIGV4_E_LIMIT);
		f.req.header_count = 28;	/* 28 * 129 < SIGV4_MAX_SIGNED_LIST */
		f.headers[26] = f.headers[40];
		f.headers[27] = f.headers[41];
		fixture_sign(&f);
		expect_verify(&f, SUITE_SECRET, SIGV4_OK);
		sigv4_result_free(&f.res);
	}
	fixture_init(&f);

	/* Credentials and scope. */
	big[SIGV4_MAX_SECRET_KEY + 1] = '\0';
	f.cred.secret_key = big;
	expect_sign_error(&f, SIGV4_E_LIMIT);
	f.cred.secret_key = SUITE_SECRET;
	big[SIGV4_MAX_SECRET_KEY + 1] = 'a';
	big[SIGV4_MAX_ACCESS_KEY + 1] = '\0';
	f.cred.access_key_id = big;
	expect_sign_error(&f, SIGV4_E_LIMIT);
	f.cred.access_key_id = SUITE_AK;
	big[SIGV4_MAX_ACCESS_KEY + 1] = 'a';
	big[SIGV4_MAX_SCOPE_FIELD + 1] = '\0';
	f.scope.region = big;
	expect_sign_error(&f, SIGV4_E_LIMIT);
	f.scope.region = "eu-west-1";
	f.scope.service = big;
	expect_sign_error(&f, SIGV4_E_LIMIT);
	f.scope.service = "secretsmanager";
	big[SIGV4_MAX_SCOPE_FIELD + 1] = 'a';

	/* An over-long Authorization header, and an over-long SignedHeaders. */
	auth_value = repeat_char(' ', SIGV4_MAX_AUTHORIZATION + 10);
	memcpy(auth_value, "AWS4-HMAC-SHA256 Credential=", 28);
	assert_int_equal(sigv4_auth_parse(auth_value, &auth, &err), -1);
	assert_int_equal(err, SIGV4_E_LIMIT);
	snprintf(auth_value, SIGV4_MAX_AUTHORIZATION, "AWS4-HMAC-SHA256 SignedHeaders=");
	n = strlen(auth_value);
	for (i = 0; i < SIGV4_MAX_HEADERS + 1; i++)
		n += (size_t)snprintf(auth_value + n, SIGV4_MAX_AUTHORIZATION - n, "%sh%03zu",
		    i > 0 ? ";" : "", i);
	assert_int_equal(sigv4_auth_parse(auth_value, &auth, &err), -1);
	assert_int_equal(err, SIGV4_E_LIMIT);
	memset(auth_value, 'a', SIGV4_MAX_AUTHORIZATION);
	n = (size_t)snprintf(auth_value, SIGV4_MAX_AUTHORIZATION, "AWS4-HMAC-SHA256 SignedHeaders=");
	auth_value[n] = 'a';
	auth_value[n + SIGV4_MAX_SIGNED_LIST + 1] = '\0';
	assert_int_equal(sigv4_auth_parse(auth_value, &auth, &err), -1);
	assert_int_equal(err, SIGV4_E_LIMIT);
	auth_value[n + SIGV4_MAX_HEADER_NAME + 1] = '\0';	/* one name too long */
	assert_int_equal(sigv4_auth_parse(auth_value, &auth, &err), -1);
	assert_int_equal(err, SIGV4_E_AUTH_MALFORMED);

	/* Through verify, too. */
	fixture_sign(&f);
	memset(auth_value, 'x', SIGV4_MAX_AUTHORIZATION + 9);
	memcpy(auth_value, f.res.authorization, strlen(f.res.authorization));
	f.headers[f.req.header_count - 1].value = auth_value;
	expect_verify(&f, SUITE_SECRET, SIGV4_E_LIMIT);
	sigv4_result_free(&f.res);

	free(auth_value);
	free(big);
}

static void
test_step_functions(void **state)
{
	struct fixture f;
	enum sigv4_error err = SIGV4_OK;
	uint8_t key[SIGV4_KEY_LEN];
	char *creq = NULL, *list = NULL, *sts = NULL, sig[SIGV4_HEX_LEN + 1];

	(void)state;
	fixture_init(&f);
	fixture_sign(&f);
	f.req.header_count--;
	assert_int_equal(sigv4_canonical_request(&f.req, &creq, &list, &err), 0);
	assert_string_equal(creq, f.res.canonical_request);
	assert_string_equal(list, f.res.signed_headers);
	assert_int_equal(sigv4_string_to_sign(&f.scope, creq, &sts, &err), 0);
	assert_string_equal(sts, f.res.string_to_sign);
	assert_int_equal(sigv4_signing_key(SUITE_SECRET, "20240115", "eu-west-1", "secretsmanager",
	    key, &err), 0);
	assert_int_equal(sigv4_signature(key, sts, sig, &err), 0);
	assert_string_equal(sig, f.res.signature);
	assert_int_equal(sigv4_signature(key, "", sig, &err), -1);
	assert_int_equal(err, SIGV4_E_INVALID);
	sigv4_free(creq);
	sigv4_free(list);
	sigv4_free(sts);
	assert_int_equal(sigv4_canonical_request(NULL, &creq, NULL, &err), -1);
	assert_int_equal(err, SIGV4_E_INVALID);
	assert_null(creq);
	assert_int_equal(sigv4_string_to_sign(&f.scope, NULL, &sts, &err), -1);
	assert_null(sts);
	assert_string_equal(sigv4_strerror(SIGV4_E_MISMATCH), "signature does not match");
	sigv4_free(NULL);
	sigv4_result_free(&f.res);
	sigv4_result_free(NULL);
}

/* The one percent-encoder (aws_credentials' STS form bodies use it too). */
static void
test_uri_encode(void **state)
{
	char buf[32];
	size_t off = 0;

	(void)state;
	assert_int_equal(sigv4_uri_encode(buf, sizeof(buf), &off, "aZ09-_.~"), 0);
	assert_string_equal(buf, "aZ09-_.~");
	assert_int_equal(off, 8);
	assert_int_equal(sigv4_uri_encode(buf, sizeof(buf), &off, "a b/+=\xc3\xa9"), 0);
	assert_string_equal(buf, "aZ09-_.~a%20b%2F%2B%3D%C3%A9");
	/* No room for the last escape and the NUL: refused, the offset kept. */
	off = 0;
	assert_int_equal(sigv4_uri_encode(buf, 5, &off, "ab/"), -1);
	assert_int_equal(off, 0);
	assert_int_equal(sigv4_uri_encode(buf, 6, &off, "ab/"), 0);
	assert_string_equal(buf, "ab%2F");
}

int
main(void)
{
	const struct CMUnitTest unit[] = {
		cmocka_unit_test(test_signing_key_doc_example),
		cmocka_unit_test(test_secretsmanager_matches_botocore),
		cmocka_unit_test(test_canonical_path),
		cmocka_unit_test(test_uri_encode),
		cmocka_unit_test(test_canonical_query),
		cmocka_unit_test(test_canonical_headers),
		cmocka_unit_test(test_payload_hash),
		cmocka_unit_test(test_step_functions),
		cmocka_unit_test(test_verify_body_bit_flips),
		cmocka_unit_test(test_verify_changed_headers),
		cmocka_unit_test(test_verify_wrong_secret),
		cmocka_unit_test(test_verify_authorization_shapes),
		cmocka_unit_test(test_verify_date_header),
		cmocka_unit_test(test_sign_token_and_date_checks),
		cmocka_unit_test(test_sign_invalid_inputs),
		cmocka_unit_test(test_limits),
	};
	struct CMUnitTest suite[MAX_CASES + 1];
	struct stat st;
	size_t n = 0, i;
	int failed;

	failed = cmocka_run_group_tests_name("sigv4", unit, NULL, NULL);

	memset(suite, 0, sizeof(suite));
	if (stat(suite_dir(), &st) != 0 || !S_ISDIR(st.st_mode)) {
		suite[n].name = "aws4_testsuite";
		suite[n++].test_func = test_suite_absent;
	} else {
		collect_cases(suite_dir(), 0);
		suite[n].name = "aws4_testsuite_found";
		suite[n++].test_func = test_suite_found_cases;
		for (i = 0; i < suite_case_count; i++) {
			suite[n].name = suite_cases[i].name;
			suite[n].test_func = test_suite_case;
			suite[n++].initial_state = &suite_cases[i];
		}
	}
	failed += _cmocka_run_group_tests("aws4_testsuite", suite, n, NULL, NULL);
	return failed;
}
