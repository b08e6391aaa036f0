/*
 * Unit tests for the AWS backend's pure parts: request bodies (agent/aws_json),
 * response parsing and validation, error parsing and mapping to protocol
 * statuses, the retry backoff and endpoint splitting (agent/upstream_aws).
 * Response bodies are the ones moto_server and AWS send.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <sodium.h>

#include "aws_json.h"
#include "json_secure.h"
#include "sm_id.h"
#include "upstream_aws.h"

#define ARN "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-gMWBeB"
#define V1 "6561df4a-e67b-46cb-82c1-05ffb7ed3e9b"
#define V2 "20aebed7-0fe9-474f-8cca-5b052405193b"

static const char moto_get_string[] =
    "{\"ARN\": \"" ARN "\", \"Name\": \"app/db\", \"VersionId\": \"" V1 "\", "
    "\"VersionStages\": [\"AWSCURRENT\"], \"CreatedDate\": 1795885114, "
    "\"SecretString\": \"pw2\"}";

/* ---- helpers ---------------------------------------------------------------------------- */

static int
parse_get(const char *body, struct aws_get_result *r, char *err, size_t errlen)
{
	return aws_json_parse_get(body, strlen(body), r, err, errlen);
}

/* Parsing must fail with a message containing want. */
static void
get_fails(const char *body, const char *want)
{
	struct aws_get_result r;
	char err[160] = "";

	if (parse_get(body, &r, err, sizeof(err)) == 0) {
		aws_get_result_free(&r);
		fail_msg("accepted: %s", body);
	}
	if (strstr(err, want) == NULL)
		fail_msg("error '%s' does not mention '%s' for %s", err, want, body);
}

static char *
printf_alloc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
printf_alloc(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	assert_true(vasprintf(&s, fmt, ap) >= 0);
	va_end(ap);
	return s;
}

/* A GetSecretValue body with the given value member(s) text. */
static char *
get_body(const char *value_members)
{
	return printf_alloc("{\"ARN\": \"%s\", \"Name\": \"app/db\", \"VersionId\": \"%s\","
	    " \"VersionStages\": [\"AWSCURRENT\"], %s}", ARN, V1, value_members);
}

/* ---- requests --------------------------------------------------------------------------- */

static void
check_json(char *body, const char *want)
{
	assert_non_null(body);
	assert_string_equal(body, want);
	aws_json_free(body);
}

static void
test_get_request(void **state)
{
	struct backend_query q = { .secret_id = "app/db" };
	char longid[PROTO_MAX_SECRET_ID + 2];

	(void)state;
	/* Neither stage nor version: AWSCURRENT is sent explicitly. */
	check_json(aws_json_get_request(&q), "{\"SecretId\":\"app/db\",\"VersionStage\":\"AWSCURRENT\"}");
	q.version_stage = "AWSPREVIOUS";
	check_json(aws_json_get_request(&q),
	    "{\"SecretId\":\"app/db\",\"VersionStage\":\"AWSPREVIOUS\"}");
	q.version_id = V1;
	check_json(aws_json_get_request(&q), "{\"SecretId\":\"app/db\",\"VersionId\":\"" V1
	    "\",\"VersionStage\":\"AWSPREVIOUS\"}");
	q.version_stage = NULL;
	check_json(aws_json_get_request(&q), "{\"SecretId\":\"app/db\",\"VersionId\":\"" V1 "\"}");
	/* Escaping is JSON's, not ours. */
	q.version_id = NULL;
	q.secret_id = "a\"b\\c\n";
	check_json(aws_json_get_request(&q),
	    "{\"SecretId\":\"a\\\"b\\\\c\\n\",\"VersionStage\":\"AWSCURRENT\"}");

	/* Bad queries. */
	assert_null(aws_json_get_request(NULL));
	q.secret_id = "";
	assert_null(aws_json_get_request(&q));
	q.secret_id = NULL;
	assert_null(aws_json_get_request(&q));
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	q.secret_id = longid;
	assert_null(aws_json_get_request(&q));
	longid[PROTO_MAX_SECRET_ID] = '\0';
	aws_json_free(aws_json_get_request(&q));
	q.secret_id = "x";
	q.version_stage = "";
	assert_null(aws_json_get_request(&q));
}

static void
test_other_requests(void **state)
{
	const char *ids[AWS_BATCH_MAX + 1];

	(void)state;
	check_json(aws_json_describe_request("app/db"), "{\"SecretId\":\"app/db\"}");
	assert_null(aws_json_describe_request(""));
	assert_null(aws_json_describe_request(NULL));

	ids[0] = "a";
	ids[1] = ARN;
	check_json(aws_json_batch_request(ids, 2, NULL),
	    "{\"SecretIdList\":[\"a\",\"" ARN "\"]}");
	check_json(aws_json_batch_request(ids, 1, "tok"),
	    "{\"SecretIdList\":[\"a\"],\"NextToken\":\"tok\"}");
	for (size_t i = 0; i < AWS_BATCH_MAX + 1; i++)
		ids[i] = "x";
	aws_json_free(aws_json_batch_request(ids, AWS_BATCH_MAX, NULL));
	assert_null(aws_json_batch_request(ids, AWS_BATCH_MAX + 1, NULL));
	assert_null(aws_json_batch_request(ids, 0, NULL));
	ids[3] = "";
	assert_null(aws_json_batch_request(ids, 5, NULL));
	ids[3] = NULL;
	assert_null(aws_json_batch_request(ids, 5, NULL));
}

/* ---- GetSecretValue --------------------------------------------------------------------- */

static void
test_parse_get_string(void **state)
{
	struct aws_get_result r;
	char err[160];

	(void)state;
	assert_int_equal(parse_get(moto_get_string, &r, err, sizeof(err)), 0);
	assert_string_equal(r.v.value.arn, ARN);
	assert_string_equal(r.v.value.name, "app/db");
	assert_string_equal(r.v.value.version_id, V1);
	assert_int_equal(r.v.value.stage_count, 1);
	assert_string_equal(r.v.value.stages[0], "AWSCURRENT");
	assert_int_equal(r.v.value.created_ms, 1795885114000LL);
	assert_false(r.v.value.is_binary);
	assert_int_equal(r.v.value.len, 3);
	assert_memory_equal(r.v.value.data, "pw2", 3);
	aws_get_result_free(&r);
	aws_get_result_free(&r);	/* idempotent */
}

static void
test_parse_get_binary(void **state)
{
	uint8_t bytes[256];
	char b64[sodium_base64_ENCODED_LEN(256, sodium_base64_VARIANT_ORIGINAL)];
	struct aws_get_result r;
	char err[160], *body;

	(void)state;
	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (uint8_t)i;
	sodium_bin2base64(b64, sizeof(b64), bytes, sizeof(bytes), sodium_base64_VARIANT_ORIGINAL);
	body = printf_alloc("{\"ARN\": \"%s\", \"Name\": \"app/bin\", \"VersionId\": \"%s\","
	    " \"VersionStages\": [\"AWSCURRENT\", \"blue\"], \"CreatedDate\": 1700000000.1234,"
	    " \"SecretBinary\": \"%s\"}", ARN, V2, b64);
	assert_int_equal(parse_get(body, &r, err, sizeof(err)), 0);
	assert_true(r.v.value.is_binary);
	assert_int_equal(r.v.value.len, 256);
	assert_memory_equal(r.v.value.data, bytes, 256);
	assert_int_equal(r.v.value.stage_count, 2);
	assert_string_equal(r.v.value.stages[1], "blue");
	/* Fractions of seconds are kept, in ms. */
	assert_int_equal(r.v.value.created_ms, 1700000000123LL);
	aws_get_result_free(&r);
	free(body);

	/* An empty binary value is a value. */
	body = get_body("\"SecretBinary\": \"\"");
	assert_int_equal(parse_get(body, &r, err, sizeof(err)), 0);
	assert_true(r.v.value.is_binary);
	assert_int_equal(r.v.value.len, 0);
	aws_get_result_free(&r);
	free(body);
}

static void
test_parse_get_limits(void **state)
{
	struct aws_get_result r;
	char err[160], *big, *body;

	(void)state;
	/* 65536 bytes of SecretString is the AWS maximum; one more is refused. */
	big = malloc(PROTO_MAX_VALUE + 2);
	assert_non_null(big);
	memset(big, 'x', PROTO_MAX_VALUE + 1);
	big[PROTO_MAX_VALUE] = '\0';
	body = printf_alloc("{\"ARN\":\"%s\",\"Name\":\"n\",\"VersionId\":\"v\",\"SecretString\":\"%s\"}",
	    ARN, big);
	assert_int_equal(parse_get(body, &r, err, sizeof(err)), 0);
	assert_int_equal(r.v.value.len, PROTO_MAX_VALUE);
	/* No stages and no date are fine. */
	assert_int_equal(r.v.value.stage_count, 0);
	assert_int_equal(r.v.value.created_ms, 0);
	aws_get_result_free(&r);
	free(body);
	big[PROTO_MAX_VALUE] = 'x';
	big[PROTO_MAX_VALUE + 1] = '\0';
	body = printf_alloc("{\"ARN\":\"%s\",\"Name\":\"n\",\"VersionId\":\"v\",\"SecretString\":\"%s\"}",
	    ARN, big);
	get_fails(body, "larger than");
	free(body);
	free(big);

	/* A body over the cap is refused before parsing. */
	assert_int_equal(aws_json_parse_get(moto_get_string, AWS_JSON_MAX_BODY + 1, &r, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "limit"));
}

static void
test_parse_get_malformed(void **state)
{
	static const struct { const char *members; const char *why; } cases[] = {
		{ "\"SecretString\": 5", "SecretString is not a string" },
		{ "\"SecretBinary\": \"***\"", "not valid base64" },
		{ "\"SecretBinary\": \"AAE\"", "not valid base64" },	/* unpadded */
		{ "\"SecretBinary\": true", "SecretBinary is not a string" },
		{ "\"SecretString\": \"a\", \"SecretBinary\": \"AA==\"", "both" },
		{ "\"SecretString\": null", "neither" },
		{ "\"CreatedDate\": \"2024-01-01\", \"SecretString\": \"a\"", "CreatedDate" },
		{ "\"CreatedDate\": -1, \"SecretString\": \"a\"", "CreatedDate" },
		{ "\"CreatedDate\": 1e300, \"SecretString\": \"a\"", "CreatedDate" },
		{ "\"SecretString\": \"x\\u0000y\"", "NUL" },
	};
	struct aws_get_result r;
	char *body;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		body = get_body(cases[i].members);
		get_fails(body, cases[i].why);
		free(body);
	}
	get_fails("", "empty");
	get_fails("[]", "not a JSON object");
	get_fails("{\"ARN\": ", "not valid JSON");
	get_fails("<html>500</html>", "not valid JSON");
	get_fails("{} x", "text after");
	get_fails("{}", "ARN is missing");
	get_fails("{\"ARN\": \"" ARN "\", \"Name\": 1}", "Name is not a string");
	get_fails("{\"ARN\": \"" ARN "\", \"Name\": \"\"}", "Name has a bad length");
	get_fails("{\"ARN\": \"a\\tb\", \"Name\": \"n\"}", "ARN is not printable");
	get_fails("{\"ARN\": \"a\", \"Name\": \"n\", \"VersionId\": \"v\", \"VersionStages\": \"AWSCURRENT\","
	    " \"SecretString\": \"s\"}", "VersionStages is not an array");
	get_fails("{\"ARN\": \"a\", \"Name\": \"n\", \"VersionId\": \"v\", \"VersionStages\": [1],"
	    " \"SecretString\": \"s\"}", "non-string");
	get_fails("{\"ARN\": \"a\", \"Name\": \"n\", \"VersionId\": \"v\", \"VersionStages\": [\"\"],"
	    " \"SecretString\": \"s\"}", "bad label");
	/* 21 labels: more than a version can carry. */
	body = get_body("\"SecretString\": \"s\"");
	{
		char *many = printf_alloc("{\"ARN\":\"a\",\"Name\":\"n\",\"VersionId\":\"v\",\"SecretString\":\"s\","
		    "\"VersionStages\":[%s\"l\"]}", "\"l\",\"l\",\"l\",\"l\",\"l\",\"l\",\"l\",\"l\",\"l\",\"l\","
		    "\"l\",\"l\",\"l\",\"l\",\"l\",\"l\",\"l\",\"l\",\"l\",\"l\",");
		get_fails(many, "more than 20");
		free(many);
	}
	free(body);
	/* A raw NUL byte, which cJSON would silently cut the string at. */
	assert_int_equal(aws_json_parse_get("{\"a\":\"x\0y\"}", 11, &r, NULL, 0), -1);
	/* An escaped backslash before u0000 is text, not a NUL. */
	body = get_body("\"SecretString\": \"\\\\u0000\"");
	assert_int_equal(parse_get(body, &r, NULL, 0), 0);
	assert_int_equal(r.v.value.len, 6);
	assert_memory_equal(r.v.value.data, "\\u0000", 6);
	aws_get_result_free(&r);
	free(body);
}

/* ---- DescribeSecret --------------------------------------------------------------------- */

static void
test_parse_describe(void **state)
{
	static const char moto[] =
	    "{\"ARN\": \"" ARN "\", \"Name\": \"app/db\", \"LastChangedDate\": 1795885114, "
	    "\"LastAccessedDate\": null, \"NextRotationDate\": null, \"DeletedDate\": 1796489914.486348, "
	    "\"CreatedDate\": 1795885113, \"KmsKeyId\": null, \"Description\": \"line one\\nline two\", "
	    "\"VersionIdsToStages\": {\"" V2 "\": [\"AWSPREVIOUS\"], \"" V1 "\": [\"AWSCURRENT\", \"blue\"]}, "
	    "\"SecretVersionsToStages\": {\"" V2 "\": [\"AWSPREVIOUS\"]}}";
	struct aws_describe_result r;
	char err[160];

	(void)state;
	assert_int_equal(aws_json_parse_describe(moto, strlen(moto), &r, err, sizeof(err)), 0);
	assert_string_equal(r.d.arn, ARN);
	assert_string_equal(r.d.name, "app/db");
	assert_string_equal(r.d.description, "line one\nline two");
	assert_int_equal(r.d.created_ms, 1795885113000LL);
	assert_int_equal(r.d.last_changed_ms, 1795885114000LL);
	assert_int_equal(r.d.deleted_ms, 1796489914486LL);
	assert_int_equal(r.d.version_count, 2);
	assert_string_equal(r.d.versions[0].version_id, V2);
	assert_int_equal(r.d.versions[0].stage_count, 1);
	assert_string_equal(r.d.versions[0].stages[0], "AWSPREVIOUS");
	assert_string_equal(r.d.versions[1].version_id, V1);
	assert_int_equal(r.d.versions[1].stage_count, 2);
	assert_string_equal(r.d.versions[1].stages[1], "blue");
	assert_int_equal(r.d.versions[1].created_ms, 0);
	aws_describe_result_free(&r);

	/* The minimum, with explicit nulls. */
	{
		static const char min[] = "{\"ARN\":\"a\",\"Name\":\"n\",\"Description\":null,"
		    "\"DeletedDate\":null,\"VersionIdsToStages\":null}";

		assert_int_equal(aws_json_parse_describe(min, strlen(min), &r, err, sizeof(err)), 0);
		assert_null(r.d.description);
		assert_int_equal(r.d.deleted_ms, 0);
		assert_int_equal(r.d.version_count, 0);
		aws_describe_result_free(&r);
	}
}

static void
test_parse_describe_malformed(void **state)
{
	static const char *const bad[] = {
		"{\"ARN\":\"a\",\"Name\":\"n\",\"VersionIdsToStages\":[]}",
		"{\"ARN\":\"a\",\"Name\":\"n\",\"VersionIdsToStages\":{\"v\":\"AWSCURRENT\"}}",
		"{\"ARN\":\"a\",\"Name\":\"n\",\"VersionIdsToStages\":{\"\":[\"AWSCURRENT\"]}}",
		"{\"ARN\":\"a\",\"Name\":\"n\",\"DeletedDate\":\"soon\"}",
		"{\"ARN\":\"a\",\"Name\":\"n\",\"Description\":7}",
		"{\"Name\":\"n\"}",
	};
	struct aws_describe_result r;
	char *body, *map, *p;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (aws_json_parse_describe(bad[i], strlen(bad[i]), &r, NULL, 0) == 0)
			fail_msg("accepted %s", bad[i]);
	}
	/* More versions than a DESCRIBE reply lists. */
	map = calloc(PROTO_MAX_VERSIONS + 1, 32);
	assert_non_null(map);
	p = map;
	for (i = 0; i <= PROTO_MAX_VERSIONS; i++)
		p += sprintf(p, "%s\"v%zu\":[]", i > 0 ? "," : "", i);
	body = printf_alloc("{\"ARN\":\"a\",\"Name\":\"n\",\"VersionIdsToStages\":{%s}}", map);
	assert_int_equal(aws_json_parse_describe(body, strlen(body), &r, NULL, 0), -1);
	free(body);
	free(map);
}

/* ---- BatchGetSecretValue ---------------------------------------------------------------- */

static void
test_parse_batch(void **state)
{
	static const char body[] =
	    "{\"SecretValues\": [" "{\"ARN\": \"" ARN "\", \"Name\": \"app/db\", \"VersionId\": \"" V1 "\","
	    " \"VersionStages\": [\"AWSCURRENT\"], \"CreatedDate\": 1795885114, \"SecretString\": \"pw2\"},"
	    " {\"ARN\": \"arn:aws:secretsmanager:us-east-1:123456789012:secret:app/bin-UzQIri\","
	    " \"Name\": \"app/bin\", \"VersionId\": \"" V2 "\", \"SecretBinary\": \"AAEC\"}],"
	    " \"Errors\": [{\"SecretId\": \"nope\", \"ErrorCode\": \"ResourceNotFoundException\","
	    " \"Message\": \"Secrets Manager can't find the specified secret.\"},"
	    " {\"SecretId\": \"gone\", \"ErrorCode\": \"InvalidRequestException\","
	    " \"Message\": \"You can't perform this operation on the secret because it was marked for deletion.\"}],"
	    " \"NextToken\": \"\"}";
	struct aws_batch_result r;
	struct backend_error e;
	char err[160];

	(void)state;
	assert_int_equal(aws_json_parse_batch(body, strlen(body), &r, err, sizeof(err)), 0);
	assert_int_equal(r.value_count, 2);
	assert_string_equal(r.values[0].value.name, "app/db");
	assert_memory_equal(r.values[0].value.data, "pw2", 3);
	assert_true(r.values[1].value.is_binary);
	assert_int_equal(r.values[1].value.len, 3);
	assert_memory_equal(r.values[1].value.data, "\0\1\2", 3);
	assert_int_equal(r.error_count, 2);
	assert_string_equal(r.errors[0].secret_id, "nope");
	assert_null(r.next_token);	/* "" is the last page */
	assert_false(aws_batch_error_classify(&r.errors[0], &e));
	assert_int_equal(e.status, PROTO_STATUS_NOT_FOUND);
	assert_false(aws_batch_error_classify(&r.errors[1], &e));
	assert_int_equal(e.status, PROTO_STATUS_NOT_FOUND);
	assert_non_null(strstr(e.message, "deletion"));
	aws_batch_result_free(&r);
	aws_batch_result_free(&r);

	{
		static const char page[] = "{\"SecretValues\":[],\"NextToken\":\"abc\"}";
		static const char empty[] = "{}";

		assert_int_equal(aws_json_parse_batch(page, strlen(page), &r, err, sizeof(err)), 0);
		assert_string_equal(r.next_token, "abc");
		assert_int_equal(r.value_count, 0);
		aws_batch_result_free(&r);
		assert_int_equal(aws_json_parse_batch(empty, 2, &r, err, sizeof(err)), 0);
		aws_batch_result_free(&r);
	}
	{
		static const char *const bad[] = {
			"{\"SecretValues\":{}}",
			"{\"SecretValues\":[{\"ARN\":\"a\"}]}",
			"{\"Errors\":[{\"ErrorCode\":\"X\"}]}",
			"{\"Errors\":[5]}",
			"{\"NextToken\":5}",
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			if (aws_json_parse_batch(bad[i], strlen(bad[i]), &r, NULL, 0) == 0)
				fail_msg("accepted %s", bad[i]);
	}
}

static void
test_secret_id_matches(void **state)
{
	(void)state;
	assert_true(sm_id_matches("app/db", ARN, "app/db"));
	assert_true(sm_id_matches(ARN, ARN, "app/db"));
	/* Partial ARN: without "-" and the 6 random characters. */
	assert_true(sm_id_matches("arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db",
	    ARN, "app/db"));
	assert_false(sm_id_matches("arn:aws:secretsmanager:us-east-1:123456789012:secret:app/d",
	    ARN, "app/db"));
	assert_false(sm_id_matches("arn:aws:secretsmanager:us-east-1:123456789012:secret:app",
	    ARN, "app/db"));
	assert_false(sm_id_matches("app", ARN, "app/db"));
	assert_false(sm_id_matches("app/db-gMWBeB", ARN, "app/db"));
	assert_false(sm_id_matches(NULL, ARN, "app/db"));
}

/* ---- errors ----------------------------------------------------------------------------- */

static void
parse_error(long status, const char *hdr, const char *body, struct aws_error_info *info)
{
	aws_error_parse(status, hdr, body, body != NULL ? strlen(body) : 0, info);
}

static void
test_error_parse(void **state)
{
	struct aws_error_info i;

	(void)state;
	parse_error(404, NULL, "{\"__type\": \"ResourceNotFoundException\", \"message\": "
	    "\"Secrets Manager can't find the specified secret.\"}", &i);
	assert_int_equal(i.http_status, 404);
	assert_string_equal(i.code, "ResourceNotFoundException");
	assert_string_equal(i.message, "Secrets Manager can't find the specified secret.");

	/* AWS: a namespace prefix and a capitalised Message. */
	parse_error(400, NULL, "{\"__type\":\"com.amazonaws.secretsmanager#ThrottlingException\","
	    "\"Message\":\"Rate exceeded\"}", &i);
	assert_string_equal(i.code, "ThrottlingException");
	assert_string_equal(i.message, "Rate exceeded");

	/* The header wins and loses its ":http://..." suffix. */
	parse_error(400, "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral.service/",
	    "{\"__type\":\"Other\",\"message\":\"m\"}", &i);
	assert_string_equal(i.code, "AccessDeniedException");
	assert_string_equal(i.message, "m");

	/* moto's auth layer answers in XML. */
	parse_error(403, NULL, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ErrorResponse><Errors><Error>"
	    "<Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not "
	    "match &amp; &lt;so&gt; on.</Message><Type>Sender</Type></Error></Errors></ErrorResponse>", &i);
	assert_string_equal(i.code, "SignatureDoesNotMatch");
	assert_string_equal(i.message, "The request signature we calculated does not match & <so> on.");

	/* moto's HTML 500 page: nothing to read. */
	parse_error(500, NULL, "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>",
	    &i);
	assert_string_equal(i.code, "");
	assert_string_equal(i.message, "");

	/* White space runs fold, control characters and bad UTF-8 do not pass. */
	parse_error(400, NULL, "{\"__type\":\"InvalidRequestException\",\"message\":\"You tried to "
	    "                perform\\u001b[31m it \\n now\"}", &i);
	assert_string_equal(i.message, "You tried to perform [31m it now");
	parse_error(400, NULL, "<Error><Code>A B</Code><Message>x\xff\xfey</Message>", &i);
	assert_string_equal(i.code, "A");
	assert_string_equal(i.message, "x??y");
	parse_error(400, NULL, "<Code>Sig$Bad</Code>", &i);
	assert_string_equal(i.code, "Sig?Bad");

	/* Nothing, or junk. */
	parse_error(502, NULL, NULL, &i);
	assert_string_equal(i.code, "");
	parse_error(400, NULL, "{\"__type\": 5}", &i);
	assert_string_equal(i.code, "");
	parse_error(400, NULL, "{not json", &i);
	assert_string_equal(i.code, "");
	parse_error(400, NULL, "<Code>unterminated", &i);
	assert_string_equal(i.code, "");
}

static void
test_error_classify(void **state)
{
	static const struct {
		long http;
		const char *code;
		const char *message;
		enum proto_status status;
		bool retry;
		const char *says;
	} cases[] = {
		{ 404, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.",
		  PROTO_STATUS_NOT_FOUND, false, "ResourceNotFoundException: Secrets Manager can't" },
		{ 400, "ResourceNotFoundException", "", PROTO_STATUS_NOT_FOUND, false, "" },
		{ 400, "InvalidRequestException", "An error occurred (InvalidRequestException) when "
		  "calling the GetSecretValue operation: You tried to perform the operation on a secret "
		  "that's currently marked deleted.", PROTO_STATUS_NOT_FOUND, false, "scheduled for deletion" },
		{ 400, "InvalidRequestException", "You can't perform this operation on the secret "
		  "because it was marked for deletion.", PROTO_STATUS_NOT_FOUND, false, "deletion" },
		{ 404, "InvalidRequestException", "You provided a VersionStage that is not associated "
		  "to the provided VersionId.", PROTO_STATUS_NOT_FOUND, false, "VersionStage" },
		{ 400, "InvalidRequestException", "other", PROTO_STATUS_BAD_REQUEST, false, "rejected" },
		{ 400, "InvalidParameterException", "bad", PROTO_STATUS_BAD_REQUEST, false, "bad" },
		{ 400, "ValidationException", "bad", PROTO_STATUS_BAD_REQUEST, false, "" },
		{ 400, "AccessDeniedException", "User: arn:aws:iam::1:user/a is not authorized",
		  PROTO_STATUS_ACCESS_DENIED, false, "agent's IAM identity" },
		{ 403, "AccessDenied", "User is not authorized", PROTO_STATUS_ACCESS_DENIED, false, "" },
		{ 403, "SignatureDoesNotMatch", "The request signature we calculated does not match",
		  PROTO_STATUS_UPSTREAM_AUTH, false,
		  "upstream rejected the agent's credentials: SignatureDoesNotMatch: The request" },
		{ 403, "InvalidClientTokenId", "The security token included in the request is invalid.",
		  PROTO_STATUS_UPSTREAM_AUTH, false, "InvalidClientTokenId" },
		{ 400, "UnrecognizedClientException", "x", PROTO_STATUS_UPSTREAM_AUTH, false, "" },
		{ 400, "InvalidSignatureException", "Signature expired", PROTO_STATUS_UPSTREAM_AUTH, false, "" },
		{ 400, "ExpiredTokenException", "x", PROTO_STATUS_UPSTREAM_AUTH, false, "" },
		{ 400, "IncompleteSignatureException", "x", PROTO_STATUS_UPSTREAM_AUTH, false, "" },
		{ 403, "", "", PROTO_STATUS_UPSTREAM_AUTH, false, "HTTP 403" },
		{ 401, "", "", PROTO_STATUS_UPSTREAM_AUTH, false, "" },
		{ 400, "ThrottlingException", "Rate exceeded", PROTO_STATUS_UPSTREAM_UNAVAILABLE, true,
		  "throttling" },
		{ 429, "", "", PROTO_STATUS_UPSTREAM_UNAVAILABLE, true, "HTTP 429" },
		{ 500, "InternalServiceError", "oops", PROTO_STATUS_UPSTREAM_UNAVAILABLE, true, "oops" },
		{ 500, "", "", PROTO_STATUS_UPSTREAM_UNAVAILABLE, true, "HTTP 500" },
		{ 503, "", "", PROTO_STATUS_UPSTREAM_UNAVAILABLE, true, "" },
		{ 400, "DecryptionFailure", "KMS", PROTO_STATUS_UPSTREAM_UNAVAILABLE, false, "decrypt" },
		{ 400, "LimitExceededException", "quota", PROTO_STATUS_UPSTREAM_UNAVAILABLE, false, "quota" },
		{ 302, "", "", PROTO_STATUS_UPSTREAM_UNAVAILABLE, false, "HTTP 302" },
	};
	struct aws_error_info info;
	struct backend_error e;
	size_t i;
	bool retry;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&info, 0, sizeof(info));
		info.http_status = cases[i].http;
		snprintf(info.code, sizeof(info.code), "%s", cases[i].code);
		snprintf(info.message, sizeof(info.message), "%s", cases[i].message);
		retry = aws_error_classify(&info, &e);
		if (e.status != cases[i].status || retry != cases[i].retry ||
		    strstr(e.message, cases[i].says) == NULL)
			fail_msg("case %zu (%ld %s): got %s retry=%d '%s'", i, cases[i].http,
			    cases[i].code, proto_status_name(e.status), retry, e.message);
	}
	assert_true(aws_error_is_throttling("ThrottlingException"));
	assert_false(aws_error_is_throttling("ResourceNotFoundException"));
	assert_false(aws_error_is_throttling(NULL));
}

/* ---- retry policy and endpoints --------------------------------------------------------- */

static void
test_backoff(void **state)
{
	static const unsigned int ceilings[] = { 100, 200, 400, 800, 1600, 2000, 2000, 2000 };
	unsigned int r, d, max_seen = 0;

	(void)state;
	for (r = 0; r < sizeof(ceilings) / sizeof(ceilings[0]); r++) {
		assert_int_equal(upstream_aws_backoff_ms(r, 0), 0);
		/* The largest random number reaches the ceiling (full jitter, inclusive). */
		assert_int_equal(upstream_aws_backoff_ms(r, UINT32_MAX), ceilings[r]);
		assert_true(upstream_aws_backoff_ms(r, UINT32_MAX / 2) <= ceilings[r] / 2 + 1);
	}
	assert_int_equal(upstream_aws_backoff_ms(1000, UINT32_MAX), UPSTREAM_AWS_BACKOFF_CAP_MS);
	assert_int_equal(upstream_aws_backoff_ms(UINT32_MAX, UINT32_MAX), UPSTREAM_AWS_BACKOFF_CAP_MS);
	/* Spread: random inputs cover the range. */
	for (int i = 0; i < 2000; i++) {
		d = upstream_aws_backoff_ms(3, randombytes_random());
		assert_true(d <= 800);
		if (d > max_seen)
			max_seen = d;
	}
	assert_true(max_seen > 600);
}

static void
test_endpoint_parts(void **state)
{
	char host[64], path[64], url[128];

	(void)state;
	assert_int_equal(upstream_aws_endpoint_parts("http://127.0.0.1:4566", host, sizeof(host),
	    path, sizeof(path), url, sizeof(url)), 0);
	assert_string_equal(host, "127.0.0.1:4566");
	assert_string_equal(path, "/");
	assert_string_equal(url, "http://127.0.0.1:4566/");

	assert_int_equal(upstream_aws_endpoint_parts("https://secretsmanager.us-east-1.amazonaws.com",
	    host, sizeof(host), path, sizeof(path), url, sizeof(url)), 0);
	assert_string_equal(host, "secretsmanager.us-east-1.amazonaws.com");
	assert_string_equal(url, "https://secretsmanager.us-east-1.amazonaws.com/");

	/* Default ports are not part of Host; paths are kept. */
	assert_int_equal(upstream_aws_endpoint_parts("https://vpce.example:443/sm", host, sizeof(host),
	    path, sizeof(path), url, sizeof(url)), 0);
	assert_string_equal(host, "vpce.example");
	assert_string_equal(path, "/sm");
	assert_string_equal(url, "https://vpce.example:443/sm");
	assert_int_equal(upstream_aws_endpoint_parts("http://[::1]:80", host, sizeof(host),
	    path, sizeof(path), url, sizeof(url)), 0);
	assert_string_equal(host, "[::1]");
	assert_int_equal(upstream_aws_endpoint_parts("http://h:443", host, sizeof(host),
	    path, sizeof(path), url, sizeof(url)), 0);
	assert_string_equal(host, "h:443");

	assert_int_equal(upstream_aws_endpoint_parts("ftp://h", host, sizeof(host), path,
	    sizeof(path), url, sizeof(url)), -1);
	assert_int_equal(upstream_aws_endpoint_parts("http://", host, sizeof(host), path,
	    sizeof(path), url, sizeof(url)), -1);
	assert_int_equal(upstream_aws_endpoint_parts("http:///x", host, sizeof(host), path,
	    sizeof(path), url, sizeof(url)), -1);
	assert_int_equal(upstream_aws_endpoint_parts("http://u:p@h", host, sizeof(host), path,
	    sizeof(path), url, sizeof(url)), -1);
	assert_int_equal(upstream_aws_endpoint_parts("http://h/?q", host, sizeof(host), path,
	    sizeof(path), url, sizeof(url)), -1);
	assert_int_equal(upstream_aws_endpoint_parts(NULL, host, sizeof(host), path,
	    sizeof(path), url, sizeof(url)), -1);
	/* Too long for the buffers. */
	assert_int_equal(upstream_aws_endpoint_parts("http://averyveryverylonghostname.example",
	    host, 8, path, sizeof(path), url, sizeof(url)), -1);
}

/* ---- plaintext hygiene ------------------------------------------------------------------ */

struct wipe_seen {
	size_t blocks;
	bool dirty;
};

static void
on_free(const void *block, size_t len, void *arg)
{
	struct wipe_seen *w = arg;
	const uint8_t *p = block;

	w->blocks++;
	for (size_t i = 0; i < len; i++)
		if (p[i] != 0)
			w->dirty = true;
}

static void
test_wiped_on_free(void **state)
{
	struct wipe_seen seen = { 0 };
	struct aws_get_result r;

	(void)state;
	json_secure_init();
	json_secure_set_free_hook(on_free, &seen);
	assert_int_equal(parse_get(moto_get_string, &r, NULL, 0), 0);
	aws_get_result_free(&r);
	json_secure_set_free_hook(NULL, NULL);
	/* Every cJSON block, the one holding "pw2" included, was zeroed before free. */
	assert_true(seen.blocks > 5);
	assert_false(seen.dirty);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_request),
		cmocka_unit_test(test_other_requests),
		cmocka_unit_test(test_parse_get_string),
		cmocka_unit_test(test_parse_get_binary),
		cmocka_unit_test(test_parse_get_limits),
		cmocka_unit_test(test_parse_get_malformed),
		cmocka_unit_test(test_parse_describe),
		cmocka_unit_test(test_parse_describe_malformed),
		cmocka_unit_test(test_parse_batch),
		cmocka_unit_test(test_secret_id_matches),
		cmocka_unit_test(test_error_parse),
		cmocka_unit_test(test_error_classify),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_endpoint_parts),
		cmocka_unit_test(test_wiped_on_free),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
