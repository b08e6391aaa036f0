/*
 * test_sm_id: Secrets Manager identifier shapes against the documented
 * formats: names (1..512 of letters, digits and /_+=.@-), full and partial
 * ARNs in every partition, the six-character random suffix, version ids
 * (32..64), staging labels (1..256), regions and their partitions and DNS
 * suffixes. Table-driven: one row per case, what the service documents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sm_id.h"

#define ARN	"arn:aws:secretsmanager:us-east-1:123456789012:secret:"

static char *
repeat(char *buf, char c, size_t n)
{
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

static void
test_names(void **state)
{
	static const struct { const char *name; bool ok; } rows[] = {
		{ "db", true }, { "prod/db/password", true }, { "a_b+c=d.e@f-g", true },
		{ "A1", true }, { "", false }, { "has space", false }, { "colon:x", false },
		{ "tab\tx", false }, { "caf\xc3\xa9", false }, { "semi;x", false },
	};
	char buf[600];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		assert_int_equal(sm_id_name_valid(rows[i].name), rows[i].ok);
	assert_true(sm_id_name_valid(repeat(buf, 'n', 512)));
	assert_false(sm_id_name_valid(repeat(buf, 'n', 513)));
	assert_false(sm_id_name_valid(NULL));
}

static void
test_arn_split(void **state)
{
	struct sm_arn a;

	(void)state;
	assert_int_equal(sm_id_arn_split(ARN "db-AbC123", &a), 0);
	assert_int_equal(a.partition_len, 3);
	assert_memory_equal(a.partition, "aws", 3);
	assert_int_equal(a.region_len, 9);
	assert_memory_equal(a.region, "us-east-1", 9);
	assert_int_equal(a.account_len, 12);
	assert_memory_equal(a.account, "123456789012", 12);
	assert_string_equal(a.resource, "db-AbC123");
	assert_int_equal(a.prefix_len, strlen(ARN));
	/* Other partitions. */
	assert_int_equal(sm_id_arn_split("arn:aws-cn:secretsmanager:cn-north-1:1:secret:x", &a), 0);
	assert_int_equal(sm_id_arn_split("arn:aws-us-gov:secretsmanager:us-gov-west-1:1:secret:x-abcdef", &a), 0);
	/* Not secret ARNs. */
	assert_int_equal(sm_id_arn_split("db", &a), -1);
	assert_int_equal(sm_id_arn_split("arn:aws:s3:::bucket", &a), -1);
	assert_int_equal(sm_id_arn_split("arn:aws:secretsmanager:us-east-1:1:secret:", &a), -1);
	assert_int_equal(sm_id_arn_split("arn:aws:secretsmanager:us-east-1:1:secret:a:b", &a), -1);
	assert_int_equal(sm_id_arn_split("arn:aws:secretsmanager:us-east-1:1:parameter:x", &a), -1);
	assert_int_equal(sm_id_arn_split("arn::secretsmanager:us-east-1:1:secret:x", &a), -1);
	assert_int_equal(sm_id_arn_split("arn:aws:secretsmanager:us-east-1", &a), -1);
}

static void
test_suffix_and_name(void **state)
{
	size_t len = 0;
	const char *name;

	(void)state;
	assert_true(sm_id_has_suffix("db-AbC123", 9));
	assert_false(sm_id_has_suffix("-AbC123", 7));		/* nothing before it */
	assert_false(sm_id_has_suffix("db-AbC12", 8));		/* five characters */
	assert_false(sm_id_has_suffix("db_AbC123", 9));		/* no dash */
	assert_false(sm_id_has_suffix("db-AbC1/3", 9));		/* not alphanumeric */

	name = sm_id_arn_name(ARN "prod/db-AbC123", true, &len);
	assert_non_null(name);
	assert_int_equal(len, 7);
	assert_memory_equal(name, "prod/db", 7);
	/* A partial ARN keeps its whole resource unless told it is full. */
	name = sm_id_arn_name(ARN "prod/db", false, &len);
	assert_int_equal(len, 7);
	/* The ambiguity callers must live with: "my-secret" read as a full ARN is
	 * the secret "my" with suffix "-secret"; as a partial ARN, "my-secret". */
	name = sm_id_arn_name(ARN "my-secret", true, &len);
	assert_int_equal(len, 2);
	name = sm_id_arn_name(ARN "my-secret", false, &len);
	assert_int_equal(len, 9);
	assert_null(sm_id_arn_name("prod/db", true, &len));
}

static void
test_matches(void **state)
{
	const char *arn = ARN "prod/db-AbC123";

	(void)state;
	assert_true(sm_id_matches("prod/db", arn, "prod/db"));
	assert_true(sm_id_matches(arn, arn, "prod/db"));
	assert_true(sm_id_matches(ARN "prod/db", arn, "prod/db"));	/* partial */
	assert_false(sm_id_matches(ARN "prod/d", arn, "prod/db"));
	assert_false(sm_id_matches(ARN "prod/db-AbC12", arn, "prod/db"));
	assert_false(sm_id_matches("arn:aws:secretsmanager:us-east-1:999999999999:secret:prod/db",
	    arn, "prod/db"));
	assert_false(sm_id_matches("prod/db2", arn, "prod/db"));
	assert_false(sm_id_matches(NULL, arn, "prod/db"));
	assert_true(sm_id_matches("prod/db", NULL, "prod/db"));
	assert_false(sm_id_matches(ARN "x", NULL, NULL));
	/* A name is never a partial ARN. */
	assert_false(sm_id_is_partial_of("prod/db", 7, "prod/db-AbC123"));
}

static void
test_versions_and_stages(void **state)
{
	char buf[100];

	(void)state;
	assert_true(sm_id_version_id_valid("a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"));
	assert_true(sm_id_version_id_valid(repeat(buf, 'v', 32)));
	assert_false(sm_id_version_id_valid(repeat(buf, 'v', 31)));
	assert_true(sm_id_version_id_valid(repeat(buf, 'v', 64)));
	assert_false(sm_id_version_id_valid(repeat(buf, 'v', 65)));
	assert_false(sm_id_version_id_valid("a1b2c3d4 5678 90ab cdef EXAMPLE11111"));
	assert_true(sm_id_stage_valid("AWSCURRENT"));
	assert_true(sm_id_stage_valid("my-label_2"));
	assert_false(sm_id_stage_valid(""));
	assert_false(sm_id_stage_valid("with space"));
	assert_false(sm_id_stage_valid(NULL));
}

static void
test_regions(void **state)
{
	static const struct { const char *region; bool ok; const char *partition, *dns; } rows[] = {
		{ "us-east-1", true, "aws", "amazonaws.com" },
		{ "eu-central-2", true, "aws", "amazonaws.com" },
		{ "us-gov-west-1", true, "aws-us-gov", "amazonaws.com" },
		{ "cn-north-1", true, "aws-cn", "amazonaws.com.cn" },
		{ "us-iso-east-1", true, "aws-iso", "c2s.ic.gov" },
		{ "us-isob-east-1", true, "aws-iso-b", "sc2s.sgov.gov" },
		{ "eu-isoe-west-1", true, "aws-iso-e", "cloud.adc-e.uk" },
		{ "us-isof-south-1", true, "aws-iso-f", "csp.hci.ic.gov" },
		{ "", false, NULL, NULL }, { "US-EAST-1", false, NULL, NULL },
		{ "us--east-1", false, NULL, NULL }, { "-us-east-1", false, NULL, NULL },
		{ "us-east-1-", false, NULL, NULL }, { "1us-east", false, NULL, NULL },
		{ "us_east_1", false, NULL, NULL }, { "us-east-1.evil.com", false, NULL, NULL },
	};
	char buf[100];

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		assert_int_equal(sm_id_region_valid(rows[i].region), rows[i].ok);
		if (rows[i].ok) {
			assert_string_equal(sm_id_region_partition(rows[i].region), rows[i].partition);
			assert_string_equal(sm_id_region_dns_suffix(rows[i].region), rows[i].dns);
		}
	}
	assert_true(sm_id_region_valid(repeat(buf, 'a', 63)));
	assert_false(sm_id_region_valid(repeat(buf, 'a', 64)));
}

static void
test_secret_ids(void **state)
{
	(void)state;
	assert_true(sm_id_secret_id_valid("prod/db"));
	assert_true(sm_id_secret_id_valid(ARN "prod/db-AbC123"));
	assert_true(sm_id_secret_id_valid(ARN "prod/db"));
	assert_false(sm_id_secret_id_valid("arn:aws:s3:::bucket"));
	assert_false(sm_id_secret_id_valid(""));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_arn_split),
		cmocka_unit_test(test_suffix_and_name),
		cmocka_unit_test(test_matches),
		cmocka_unit_test(test_versions_and_stages),
		cmocka_unit_test(test_regions),
		cmocka_unit_test(test_secret_ids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
