/*
 * aws_json: the bytes of the Secrets Manager API (AWS JSON 1.1), with no I/O.
 * Builds request bodies, parses the responses of GetSecretValue,
 * DescribeSecret and BatchGetSecretValue into the backend's structures, and
 * reads error responses in the three shapes met in practice (JSON
 * {"__type", "message"|"Message"}, the XML <ErrorResponse> of the auth layer,
 * and anything else, e.g. an HTML error page) before mapping them to a
 * protocol status and a retry decision.
 *
 * Parsers take untrusted bytes: every field is type- and size-checked and
 * anything unexpected fails with a message (never containing a secret
 * value). Parsed results own a cJSON tree whose strings are wiped on free
 * (json_secure) and, for SecretBinary, a decoded buffer wiped on free.
 */
#ifndef SMC_AGENT_AWS_JSON_H
#define SMC_AGENT_AWS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

#define AWS_JSON_MAX_BODY	(4u * 1024 * 1024)	/* largest response body parsed */
#define AWS_BATCH_MAX		20	/* ids in one BatchGetSecretValue call */
#define AWS_MAX_NEXT_TOKEN	4096
#define AWS_ERROR_CODE_LEN	64
#define AWS_ERROR_TEXT_LEN	200

struct cJSON;

/* ---- requests (NUL-terminated JSON; release with aws_json_free) ---------------------- */

/*
 * GetSecretValue. VersionStage is AWSCURRENT when the query names neither
 * a stage nor a version id: sent explicitly because an omitted stage is not
 * reliably the current version everywhere (moto). NULL on a bad query
 * (missing or over-long id, stage or version id) or out of memory.
 */
char *aws_json_get_request(const struct backend_query *query);
char *aws_json_describe_request(const char *secret_id);
/* 1..AWS_BATCH_MAX ids; next_token NULL for the first page. */
char *aws_json_batch_request(const char *const *secret_ids, size_t count, const char *next_token);
void aws_json_free(char *body);

/* ---- responses ------------------------------------------------------------------------ */

/* One secret version with its value. `value` points into the result. */
struct aws_value {
	struct backend_value value;
	const char *stages[PROTO_MAX_STAGES];
	uint8_t *binary;		/* decoded SecretBinary, wiped on free */
	size_t binary_len;
};

struct aws_get_result {
	struct cJSON *root;
	struct aws_value v;
	/* The body was a JSON object, an answer about the secret asked for: set
	 * even when parsing failed later, at a field of that answer. */
	bool answer_parsed;
};

struct aws_describe_result {
	struct cJSON *root;
	struct backend_description d;
	struct backend_version_stages *versions;
	const char **stages;		/* every version's labels, back to back */
};

/* One entry of BatchGetSecretValue's Errors[]. */
struct aws_batch_error {
	const char *secret_id;		/* as the caller sent it */
	const char *code;		/* ErrorCode, "" when absent */
	const char *message;		/* "" when absent */
};

struct aws_batch_result {
	struct cJSON *root;
	struct aws_value *values;
	size_t value_count;
	struct aws_batch_error *errors;
	size_t error_count;
	const char *next_token;		/* NULL on the last page */
};

/*
 * Each returns 0, or -1 with a reason in err (e.g. "SecretString is not a
 * string"); on -1 *out needs no free. Bodies need no terminator and may be
 * at most AWS_JSON_MAX_BODY bytes.
 */
int aws_json_parse_get(const void *body, size_t len, struct aws_get_result *out,
    char *err, size_t errlen);
int aws_json_parse_describe(const void *body, size_t len, struct aws_describe_result *out,
    char *err, size_t errlen);
int aws_json_parse_batch(const void *body, size_t len, struct aws_batch_result *out,
    char *err, size_t errlen);

/* Wipe and free; safe on a zeroed result and idempotent. */
void aws_get_result_free(struct aws_get_result *r);
void aws_describe_result_free(struct aws_describe_result *r);
void aws_batch_result_free(struct aws_batch_result *r);

/* ---- errors --------------------------------------------------------------------------- */

struct aws_error_info {
	long http_status;		/* 0 when there was no HTTP response */
	char code[AWS_ERROR_CODE_LEN];	/* "ResourceNotFoundException"; "" when unknown */
	char message[AWS_ERROR_TEXT_LEN];	/* upstream's text, printable; "" when none */
};

/*
 * Reads an error response. The code comes from the x-amzn-ErrorType header
 * (error_type, may be NULL), else the JSON body's __type (or code/Code),
 * else the XML body's first <Code>; namespace prefixes ("...#") and
 * suffixes (":http://...") are stripped. Never fails: an unreadable body
 * leaves code and message empty.
 */
void aws_error_parse(long http_status, const char *error_type, const void *body, size_t len,
    struct aws_error_info *out);

/*
 * The protocol status and client-facing message for an error, and whether
 * trying again may help (throttling, 5xx, 408/429). Messages name the code
 * and upstream's text, e.g. "upstream rejected the agent's credentials:
 * SignatureDoesNotMatch: The request signature ...". Returns retryable.
 *
 *   ResourceNotFoundException, any 404          NOT_FOUND
 *   InvalidRequestException about deletion      NOT_FOUND ("... scheduled for deletion ...")
 *   InvalidRequest/InvalidParameter/Validation  BAD_REQUEST
 *   AccessDenied(Exception)                     ACCESS_DENIED (the agent's IAM identity
 *                                               is not allowed this secret or its KMS key)
 *   refused credentials or signature, 401, 403  UPSTREAM_AUTH
 *   throttling, 5xx, DecryptionFailure, others  UPSTREAM_UNAVAILABLE
 */
bool aws_error_classify(const struct aws_error_info *info, struct backend_error *out);

/* Same mapping for one entry of BatchGetSecretValue's Errors[]. */
bool aws_batch_error_classify(const struct aws_batch_error *e, struct backend_error *out);

/* Whether a code means throttling (for counters and messages). */
bool aws_error_is_throttling(const char *code);

#endif
