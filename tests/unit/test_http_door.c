/*
 * test_http_door: the GetSecretValue JSON the HTTP door renders (field
 * order, escaping as serde_json does, base64 of binary values, CreatedDate
 * as the AWS agent writes it, the size contract of a cache render function)
 * and the listener address syntax.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend.h"
#include "http_api.h"
#include "http_door.h"

static char *
render(const struct backend_value *v)
{
	size_t need = http_api_render_value(v, NULL, 0);
	unsigned char *out = malloc(need + 1);

	assert_non_null(out);
	/* Too small: nothing written, the size needed returned. */
	memset(out, 'Z', need + 1);
	assert_int_equal(http_api_render_value(v, out, need - 1), need);
	assert_int_equal(out[0], 'Z');
	assert_int_equal(http_api_render_value(v, out, need), need);
	assert_int_equal(out[need], 'Z');
	out[need] = '\0';
	return (char *)out;
}

static void
test_string_value(void **state)
{
	static const char *const stages[] = { "AWSCURRENT", "AWSPENDING" };
	const char data[] = "a\"b\\c\n\t\x01\x1f\x7f" "\xc3\xa4";
	const struct backend_value v = {
		.arn = "arn:aws:secretsmanager:us-east-1:1:secret:x-AbCdEf", .name = "x",
		.version_id = "v1", .stages = stages, .stage_count = 2,
		.created_ms = 1569534789046, .data = (const uint8_t *)data, .len = sizeof(data) - 1,
	};
	char *s;

	(void)state;
	s = render(&v);
	assert_string_equal(s, "{\"ARN\":\"arn:aws:secretsmanager:us-east-1:1:secret:x-AbCdEf\","
	    "\"Name\":\"x\",\"VersionId\":\"v1\","
	    "\"SecretString\":\"a\\\"b\\\\c\\n\\t\\u0001\\u001f\x7f\xc3\xa4\","
	    "\"VersionStages\":[\"AWSCURRENT\",\"AWSPENDING\"],\"CreatedDate\":\"1569534789.046\"}");
	free(s);
}

static void
test_binary_value_and_dates(void **state)
{
	static const char *const stages[] = { "AWSCURRENT" };
	const uint8_t data[] = { 0x00, 0x01, 0x02, 0xff };
	struct backend_value v = {
		.arn = "a", .name = "n", .version_id = "v", .stages = stages, .stage_count = 1,
		.created_ms = 1700000000000, .is_binary = true, .data = data, .len = sizeof(data),
	};
	char *s;

	(void)state;
	s = render(&v);
	assert_string_equal(s, "{\"ARN\":\"a\",\"Name\":\"n\",\"VersionId\":\"v\","
	    "\"SecretBinary\":\"AAEC/w==\",\"VersionStages\":[\"AWSCURRENT\"],"
	    "\"CreatedDate\":\"1700000000\"}");
	free(s);
	v.created_ms = 1700000000500;
	s = render(&v);
	assert_non_null(strstr(s, "\"CreatedDate\":\"1700000000.5\"}"));
	free(s);
	v.created_ms = 1700000000050;
	s = render(&v);
	assert_non_null(strstr(s, "\"CreatedDate\":\"1700000000.05\"}"));
	free(s);
	/* Unknown date: null, as serde writes None; an empty value is "". */
	v.created_ms = 0;
	v.len = 0;
	v.stage_count = 0;
	s = render(&v);
	assert_string_equal(s, "{\"ARN\":\"a\",\"Name\":\"n\",\"VersionId\":\"v\","
	    "\"SecretBinary\":\"\",\"CreatedDate\":null}");
	free(s);
}

static void
test_addresses(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char why[128];

	(void)state;
	assert_int_equal(http_door_parse_address("127.0.0.1:2773", &ss, &len, why, sizeof(why)), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 2773);
	assert_true(http_door_is_loopback(&ss));
	assert_int_equal(http_door_parse_address("[::1]:1", &ss, &len, why, sizeof(why)), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_true(http_door_is_loopback(&ss));
	assert_int_equal(http_door_parse_address("127.9.9.9:80", &ss, &len, why, sizeof(why)), 0);
	assert_true(http_door_is_loopback(&ss));
	assert_int_equal(http_door_parse_address("10.0.0.1:80", &ss, &len, why, sizeof(why)), 0);
	assert_false(http_door_is_loopback(&ss));
	assert_int_equal(http_door_parse_address("[::]:80", &ss, &len, why, sizeof(why)), 0);
	assert_false(http_door_is_loopback(&ss));
	/* IPv4-mapped loopback is not accepted as loopback: it is an IPv6 socket address. */
	assert_int_equal(http_door_parse_address("[::ffff:127.0.0.1]:80", &ss, &len, why,
	    sizeof(why)), 0);
	assert_false(http_door_is_loopback(&ss));
	for (const char *const *bad = (const char *const[]){ "", ":80", "127.0.0.1", "127.0.0.1:",
	    "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:+80", "127.0.0.1:80x", "[::1]", "[::1]80",
	    "::1:80", "[127.0.0.1]:80", "localhost:80", "[::1:80", NULL }; *bad != NULL; bad++)
		assert_int_equal(http_door_parse_address(*bad, &ss, &len, why, sizeof(why)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_string_value),
		cmocka_unit_test(test_binary_value_and_dates),
		cmocka_unit_test(test_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
