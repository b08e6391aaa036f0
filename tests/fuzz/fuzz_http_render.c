/*
 * fuzz_http_render: a GetSecretValue body from Secrets Manager, parsed by
 * agent/aws_json, rendered by the HTTP door (http_api_render_value, the AWS
 * agent's form) and by the Secrets Manager endpoint (http_api_render_sdk_value).
 * Beyond "no crash": the size asked for is the size written, and each rendered
 * document parses back (cJSON) to an object with the same ARN, Name, VersionId,
 * stages and SecretString bytes (up to a first NUL, where cJSON's strings end)
 * or SecretBinary (base64 of the same bytes): no value can break out of its
 * JSON string.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "aws_json.h"
#include "fuzz.h"
#include "http_api.h"

#define CHECK(cond) do {							\
	if (!(cond)) {								\
		fprintf(stderr, "fuzz_http_render: %s:%d: check failed: %s\n",	\
		    __FILE__, __LINE__, #cond);					\
		abort();							\
	}									\
} while (0)

static void
check_str(const cJSON *doc, const char *key, const char *want)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, key);

	if (want == NULL) {
		CHECK(cJSON_IsNull(m));
		return;
	}
	CHECK(cJSON_IsString(m) && strcmp(m->valuestring, want) == 0);
}

static void
check_render(const struct backend_value *v, int sdk)
{
	size_t need = sdk ? http_api_render_sdk_value(v, NULL, 0) : http_api_render_value(v, NULL, 0);
	unsigned char *out;
	const cJSON *m, *e;
	cJSON *doc;
	size_t i = 0;

	CHECK(need > 0);
	CHECK((out = malloc(need)) != NULL);
	CHECK((sdk ? http_api_render_sdk_value(v, out, need) : http_api_render_value(v, out, need))
	    == need);
	CHECK((doc = cJSON_ParseWithLength((const char *)out, need)) != NULL);
	CHECK(cJSON_IsObject(doc));
	check_str(doc, "ARN", v->arn);
	check_str(doc, "Name", v->name);
	check_str(doc, "VersionId", v->version_id);
	if (v->is_binary) {
		unsigned char *bin = malloc(v->len + 1);
		size_t got = 0;

		m = cJSON_GetObjectItemCaseSensitive(doc, "SecretBinary");
		CHECK(bin != NULL && cJSON_IsString(m));
		CHECK(sodium_base642bin(bin, v->len + 1, m->valuestring, strlen(m->valuestring),
		    NULL, &got, NULL, sodium_base64_VARIANT_ORIGINAL) == 0);
		CHECK(got == v->len && (v->len == 0 || memcmp(bin, v->data, v->len) == 0));
		CHECK(cJSON_GetObjectItemCaseSensitive(doc, "SecretString") == NULL);
		free(bin);
	} else {
		const unsigned char *nul = memchr(v->data, '\0', v->len);
		size_t upto = nul != NULL ? (size_t)(nul - v->data) : v->len;

		m = cJSON_GetObjectItemCaseSensitive(doc, "SecretString");
		CHECK(cJSON_IsString(m) && strlen(m->valuestring) == upto);
		CHECK(upto == 0 || memcmp(m->valuestring, v->data, upto) == 0);
		CHECK(cJSON_GetObjectItemCaseSensitive(doc, "SecretBinary") == NULL);
	}
	m = cJSON_GetObjectItemCaseSensitive(doc, "VersionStages");
	if (v->stage_count == 0) {
		CHECK(m == NULL);
	} else {
		CHECK(cJSON_IsArray(m) && (size_t)cJSON_GetArraySize(m) == v->stage_count);
		cJSON_ArrayForEach(e, m) {
			CHECK(cJSON_IsString(e) && strcmp(e->valuestring, v->stages[i]) == 0);
			i++;
		}
	}
	m = cJSON_GetObjectItemCaseSensitive(doc, "CreatedDate");
	CHECK(m != NULL && (v->created_ms > 0 ? (sdk ? cJSON_IsNumber(m) : cJSON_IsString(m)) :
	    cJSON_IsNull(m)));
	cJSON_Delete(doc);
	sodium_memzero(out, need);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct aws_get_result r;
	char err[160];

	if (aws_json_parse_get(data, size, &r, err, sizeof(err)) != 0)
		return 0;
	check_render(&r.v.value, 0);
	check_render(&r.v.value, 1);
	aws_get_result_free(&r);
	return 0;
}
