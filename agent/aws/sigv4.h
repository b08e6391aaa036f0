/*
 * sigv4: AWS Signature Version 4 with the Authorization header (the rules
 * for services other than S3), for signing outgoing requests (Secrets
 * Manager, STS) and for verifying incoming ones.
 *
 * Pure functions: no I/O, no clock, no global state. Every input is capped
 * (SIGV4_MAX_*); exceeding a cap fails with SIGV4_E_LIMIT.
 *
 * Canonicalisation, as botocore and the AWS test suite do it:
 * - path: the request-line path as given (already percent-encoded on the
 *   wire or not). Empty and "." segments and duplicate slashes are removed,
 *   ".." removes the previous segment, a trailing slash is kept, then every
 *   byte other than A-Z a-z 0-9 - _ . ~ and '/' is written as %XX. Existing
 *   escapes are not decoded, so a wire path "/a%20b" becomes "/a%2520b": the
 *   double encoding AWS requires for non-S3 services.
 * - query: split on '&' (empty pieces dropped), then on the first '='; valid
 *   %XX escapes are decoded, the bytes re-encoded as above (without the '/'
 *   exception), pairs sorted by encoded key then encoded value.
 * - headers: names lowercased, values trimmed with inner runs of white space
 *   (SP, HTAB, obs-fold line breaks) folded to one space; repeated names are
 *   joined with ',' in request order.
 *
 * Strings are NUL-terminated. Returned strings are malloc'd and owned by the
 * caller: release them with sigv4_free() (results with sigv4_result_free()),
 * which wipe them first since a canonical request can hold a session token.
 *
 * Every function returns 0 on success, -1 on error with the reason stored in
 * *err when err is not NULL.
 *
 * Typical use (Secrets Manager, JSON 1.1): headers Host, Content-Type,
 * X-Amz-Target, X-Amz-Date (equal to scope.amz_date) and, with temporary
 * credentials, X-Amz-Security-Token; sigv4_sign(); then send exactly those
 * headers plus "Authorization: " result.authorization.
 */
#ifndef SMC_AGENT_SIGV4_H
#define SMC_AGENT_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#define SIGV4_ALGORITHM		"AWS4-HMAC-SHA256"

#define SIGV4_MAX_METHOD	32
#define SIGV4_MAX_PATH		4096
#define SIGV4_MAX_QUERY		8192
#define SIGV4_MAX_QUERY_PARAMS	256
#define SIGV4_MAX_HEADERS	64	/* headers in a request, and names to sign */
#define SIGV4_MAX_HEADER_NAME	128
#define SIGV4_MAX_HEADER_VALUE	16384	/* session tokens run to a few KiB */
#define SIGV4_MAX_HEADER_BYTES	65536	/* all names and values together */
#define SIGV4_MAX_SCOPE_FIELD	64	/* region, service */
#define SIGV4_MAX_ACCESS_KEY	128
#define SIGV4_MAX_SECRET_KEY	256
#define SIGV4_MAX_PAYLOAD_HASH	64	/* hex SHA-256, or e.g. "UNSIGNED-PAYLOAD" */
#define SIGV4_MAX_SIGNED_LIST	4096	/* SignedHeaders, signing or parsing */
#define SIGV4_MAX_AUTHORIZATION	8192	/* a whole Authorization header value */

#define SIGV4_KEY_LEN		32	/* derived signing key */
#define SIGV4_HEX_LEN		64	/* signature and payload hash, in hex */
#define SIGV4_AMZ_DATE_LEN	16	/* YYYYMMDDTHHMMSSZ */
#define SIGV4_DATE_LEN		8	/* YYYYMMDD */

enum sigv4_error {
	SIGV4_OK = 0,
	SIGV4_E_INVALID,	/* an input is not well formed */
	SIGV4_E_LIMIT,		/* an input exceeds a SIGV4_MAX_* cap */
	SIGV4_E_NO_HEADER,	/* a header named for signing is not in the request */
	SIGV4_E_DATE,		/* X-Amz-Date missing, malformed or not the signing date */
	SIGV4_E_TOKEN,		/* session token given but not sent as a signed header */
	SIGV4_E_AUTH_MISSING,	/* verify: no Authorization header */
	SIGV4_E_AUTH_MALFORMED,	/* verify: Authorization header cannot be parsed */
	SIGV4_E_MISMATCH,	/* verify: well-formed, but the signature is wrong */
	SIGV4_E_NOMEM,
	SIGV4_E_CRYPTO,		/* OpenSSL failed */
};

/* One header as sent. Names in any case; names may repeat. */
struct sigv4_header {
	const char *name;
	const char *value;
};

struct sigv4_request {
	const char *method;		/* "POST", as sent */
	const char *path;		/* request-line path without the query; "" means "/" */
	const char *query;		/* after '?', without it; NULL or "" for none */
	const struct sigv4_header *headers;
	size_t header_count;
	const void *body;		/* may be NULL when body_len is 0 */
	size_t body_len;
	const char *payload_hash;	/* when not NULL, used instead of hashing body */
	/* Names of the headers to sign, any case; NULL signs every header given.
	 * Each name must be present in headers. Ignored by sigv4_verify(). */
	const char *const *signed_headers;
	size_t signed_count;
};

struct sigv4_scope {
	const char *amz_date;		/* YYYYMMDDTHHMMSSZ, UTC */
	const char *region;		/* "us-east-1" */
	const char *service;		/* "secretsmanager" */
};

struct sigv4_credentials {
	const char *access_key_id;
	const char *secret_key;
	const char *session_token;	/* NULL or "" for long-term keys */
};

/* All strings malloc'd; release with sigv4_result_free(). */
struct sigv4_result {
	char *canonical_request;
	char *string_to_sign;
	char *signed_headers;		/* "host;x-amz-date" */
	char *authorization;		/* the whole Authorization header value */
	char signature[SIGV4_HEX_LEN + 1];
};

/* A parsed Authorization header (fixed size, no pointers: safe to copy). */
struct sigv4_auth {
	char access_key_id[SIGV4_MAX_ACCESS_KEY + 1];
	char date[SIGV4_DATE_LEN + 1];
	char region[SIGV4_MAX_SCOPE_FIELD + 1];
	char service[SIGV4_MAX_SCOPE_FIELD + 1];
	char signed_headers[SIGV4_MAX_SIGNED_LIST + 1];	/* lowercase, sorted, ';'-separated */
	size_t signed_count;
	char signature[SIGV4_HEX_LEN + 1];
};

const char *sigv4_strerror(enum sigv4_error err);

/* Wipes and frees a string returned by this module; NULL is fine. */
void sigv4_free(char *s);
/* Wipes and frees every string of a result and zeroes it; safe on a zeroed result. */
void sigv4_result_free(struct sigv4_result *result);

/*
 * Task 1: the canonical request. *signed_headers_out (may be NULL) receives
 * the SignedHeaders list (at most SIGV4_MAX_SIGNED_LIST bytes, so that what
 * is signed can be verified). No check of X-Amz-Date or tokens here.
 */
int sigv4_canonical_request(const struct sigv4_request *req, char **creq_out,
    char **signed_headers_out, enum sigv4_error *err);

/* Task 2: "AWS4-HMAC-SHA256\n<date>\n<scope>\n<hex sha256(creq)>". */
int sigv4_string_to_sign(const struct sigv4_scope *scope, const char *canonical_request,
    char **sts_out, enum sigv4_error *err);

/*
 * Task 3a: the signing key, HMAC chain over "AWS4"+secret, date (YYYYMMDD),
 * region, service and "aws4_request". It is valid for one (secret, date,
 * region, service): a cache must be keyed on all four. Intermediate keys
 * are wiped; the caller wipes key when done (OPENSSL_cleanse).
 */
int sigv4_signing_key(const char *secret_key, const char *date, const char *region,
    const char *service, uint8_t key[SIGV4_KEY_LEN], enum sigv4_error *err);

/* Task 3b: hex HMAC-SHA256 of the string to sign under a signing key. */
int sigv4_signature(const uint8_t key[SIGV4_KEY_LEN], const char *string_to_sign,
    char signature[SIGV4_HEX_LEN + 1], enum sigv4_error *err);

/*
 * All tasks, with a signing key from sigv4_signing_key() for the scope's day,
 * region and service. Does not add headers: the caller sends exactly the
 * headers it passed (including X-Amz-Date and X-Amz-Security-Token). An
 * X-Amz-Date header, when present, must equal scope->amz_date. On error
 * *out is left zeroed.
 */
int sigv4_sign_with_key(const struct sigv4_request *req, const struct sigv4_scope *scope,
    const char *access_key_id, const uint8_t key[SIGV4_KEY_LEN],
    struct sigv4_result *out, enum sigv4_error *err);

/*
 * sigv4_sign_with_key() after deriving the key from cred. With a session
 * token, the request must carry one X-Amz-Security-Token header holding it,
 * and that header must be signed (else SIGV4_E_TOKEN).
 */
int sigv4_sign(const struct sigv4_request *req, const struct sigv4_scope *scope,
    const struct sigv4_credentials *cred, struct sigv4_result *out, enum sigv4_error *err);

/*
 * Parses "AWS4-HMAC-SHA256 Credential=AK/YYYYMMDD/region/service/aws4_request,
 * SignedHeaders=a;b, Signature=<64 hex>" (components in any order, each once,
 * separated by ',' and optional spaces). SignedHeaders must be lowercase,
 * sorted, unique, and must not name "authorization". Failure:
 * SIGV4_E_AUTH_MALFORMED, or SIGV4_E_LIMIT when value is over-long.
 */
int sigv4_auth_parse(const char *value, struct sigv4_auth *auth, enum sigv4_error *err);

/* Finds the one Authorization header of req and parses it
 * (SIGV4_E_AUTH_MISSING when absent, SIGV4_E_AUTH_MALFORMED when repeated). */
int sigv4_auth_find(const struct sigv4_request *req, struct sigv4_auth *auth,
    enum sigv4_error *err);

/*
 * Verifies an incoming request signed with the Authorization header. auth is
 * the parsed header (NULL: found and parsed from req). The headers named in
 * SignedHeaders are taken from req; req->signed_headers is ignored. The
 * signature is recomputed and compared in constant time.
 *
 * Errors: SIGV4_E_AUTH_MISSING; SIGV4_E_AUTH_MALFORMED (unparseable, or host
 * or x-amz-date not signed, or an x-amz-* header of the request not signed:
 * x-amz-target picks the operation); SIGV4_E_DATE (X-Amz-Date absent,
 * repeated, malformed, or not the credential's day); SIGV4_E_NO_HEADER (a
 * signed header is absent); SIGV4_E_INVALID / SIGV4_E_LIMIT (the request
 * breaks the checks or caps that signing applies, on all its headers);
 * SIGV4_E_MISMATCH (well formed, wrong signature).
 *
 * Left to the caller: finding secret_key from auth->access_key_id, checking
 * auth->region and auth->service, the clock skew of X-Amz-Date, the session
 * token, and that an X-Amz-Content-SHA256 header matches the body. The Date
 * header form of SigV4 (without X-Amz-Date) and presigned URLs are not
 * supported.
 */
int sigv4_verify(const struct sigv4_request *req, const struct sigv4_auth *auth,
    const char *secret_key, enum sigv4_error *err);

/*
 * Percent-encodes the string s as SigV4 (and application/x-www-form-urlencoded
 * values) want it: RFC 3986's unreserved bytes (A-Z a-z 0-9 - _ . ~) stay,
 * every other byte becomes %XX in uppercase hex. Appends at buf + *off and
 * NUL-terminates; 0 and *off advanced, or -1 when it does not fit (buf past
 * *off is then undefined).
 */
int sigv4_uri_encode(char *buf, size_t buflen, size_t *off, const char *s);

#endif
