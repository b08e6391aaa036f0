/*
 * fuzz_aws_response: Secrets Manager response bodies into agent/aws_json.
 *
 * Input: one selector byte, then the body. Selector % 4:
 *   0 GetSecretValue, 1 DescribeSecret, 2 BatchGetSecretValue,
 *   3 an error response: two more bytes of HTTP status (big-endian), then the body.
 * Whatever parses must hold the documented bounds; nothing may crash or leak.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws_json.h"
#include "fuzz.h"
#include "sm_id.h"

static volatile unsigned int sink;

static void
check_value(const struct backend_value *v)
{
	if (v->arn == NULL || v->name == NULL || v->version_id == NULL ||
	    v->len > PROTO_MAX_VALUE || v->stage_count > PROTO_MAX_STAGES ||
	    (v->len > 0 && v->data == NULL) || v->created_ms < 0)
		abort();
	for (size_t i = 0; i < v->stage_count; i++)
		if (v->stages[i] == NULL || strlen(v->stages[i]) > PROTO_MAX_VERSION_STAGE)
			abort();
	/* Read every byte, so ASan sees any bad pointer. */
	for (size_t i = 0; i < v->len; i++)
		sink += v->data[i];
}

static void
check_error(const struct backend_error *e)
{
	if (e->status == PROTO_STATUS_OK || e->status > PROTO_STATUS_MAX ||
	    memchr(e->message, '\0', sizeof(e->message)) == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[160];

	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0: {
		struct aws_get_result r;

		if (aws_json_parse_get(data + 1, size - 1, &r, err, sizeof(err)) == 0) {
			check_value(&r.v.value);
			(void)sm_id_matches("x", r.v.value.arn, r.v.value.name);
			aws_get_result_free(&r);
		}
		break;
	}
	case 1: {
		struct aws_describe_result r;

		if (aws_json_parse_describe(data + 1, size - 1, &r, err, sizeof(err)) == 0) {
			if (r.d.arn == NULL || r.d.name == NULL || r.d.version_count > PROTO_MAX_VERSIONS)
				abort();
			for (size_t i = 0; i < r.d.version_count; i++)
				if (r.d.versions[i].version_id == NULL ||
				    r.d.versions[i].stage_count > PROTO_MAX_STAGES)
					abort();
			aws_describe_result_free(&r);
		}
		break;
	}
	case 2: {
		struct aws_batch_result r;
		struct backend_error e;

		if (aws_json_parse_batch(data + 1, size - 1, &r, err, sizeof(err)) == 0) {
			for (size_t i = 0; i < r.value_count; i++) {
				check_value(&r.values[i].value);
				(void)sm_id_matches(r.values[i].value.name,
				    r.values[i].value.arn, r.values[i].value.name);
			}
			for (size_t i = 0; i < r.error_count; i++) {
				(void)aws_batch_error_classify(&r.errors[i], &e);
				check_error(&e);
			}
			if (r.next_token != NULL && r.next_token[0] == '\0')
				abort();
			aws_batch_result_free(&r);
		}
		break;
	}
	case 3: {
		struct aws_error_info info;
		struct backend_error e;
		long status;

		if (size < 3)
			return 0;
		status = ((long)data[1] << 8) | data[2];
		aws_error_parse(status, NULL, data + 3, size - 3, &info);
		if (memchr(info.code, '\0', sizeof(info.code)) == NULL ||
		    memchr(info.message, '\0', sizeof(info.message)) == NULL)
			abort();
		(void)aws_error_classify(&info, &e);
		check_error(&e);
		break;
	}
	}
	return 0;
}
