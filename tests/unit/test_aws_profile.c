/*
 * test_aws_profile: region / endpoint / profile / shared-file resolution
 * (the precedence of the agent's settings, AWS_* variables and the config
 * file, FIPS, partitions) and lookups in temporary shared files: several
 * profiles, both section spellings, nested sub-sections, long session
 * tokens, comments, missing and malformed files.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "aws_profile.h"

static char tmpdir[256];

static const char *const aws_vars[] = {
	"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE",
	"AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER",
	"AWS_USE_FIPS_ENDPOINT",
};

static char *
tmp_path(const char *name)
{
	static char buf[4][512];
	static int n;
	char *p = buf[n++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", tmpdir, name);
	return p;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static int
setup(void **state)
{
	size_t i;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_aws_profile.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	for (i = 0; i < sizeof(aws_vars) / sizeof(aws_vars[0]); i++)
		unsetenv(aws_vars[i]);
	setenv("HOME", tmpdir, 1);	/* no ~/.aws: nothing from the real user */
	return 0;
}

static int
teardown(void **state)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
resolve_ok(const struct aws_settings *s, struct aws_resolved *r)
{
	char err[512] = "";

	if (aws_resolve(s, r, err, sizeof(err)) != 0)
		fail_msg("aws_resolve failed: %s", err);
}

static void
resolve_fails(const struct aws_settings *s, const char *want)
{
	struct aws_resolved r;
	char err[512] = "";

	if (aws_resolve(s, &r, err, sizeof(err)) == 0)
		fail_msg("aws_resolve succeeded, expected an error with '%s'", want);
	if (strstr(err, want) == NULL)
		fail_msg("message '%s' lacks '%s'", err, want);
	assert_string_equal(r.region, "");	/* zeroed on failure */
}

/* ---- region ------------------------------------------------------------------------------ */

static void
test_region_precedence(void **state)
{
	struct aws_settings s = { 0 };
	struct aws_resolved r;

	write_file(tmp_path("config"), "[default]\nregion = eu-central-1\n"
	    "[profile other]\nregion=ap-south-1\n");
	setenv("AWS_CONFIG_FILE", tmp_path("config"), 1);

	resolve_ok(&s, &r);
	assert_string_equal(r.region, "eu-central-1");
	assert_string_equal(r.profile, "default");

	setenv("AWS_PROFILE", "other", 1);
	resolve_ok(&s, &r);
	assert_string_equal(r.region, "ap-south-1");
	assert_string_equal(r.profile, "other");

	setenv("AWS_DEFAULT_REGION", "us-west-1", 1);
	resolve_ok(&s, &r);
	assert_string_equal(r.region, "us-west-1");

	setenv("AWS_REGION", "us-west-2", 1);
	resolve_ok(&s, &r);
	assert_string_equal(r.region, "us-west-2");

	s.region = "sa-east-1";
	resolve_ok(&s, &r);
	assert_string_equal(r.region, "sa-east-1");

	/* An empty variable counts as unset. */
	s.region = NULL;
	setenv("AWS_REGION", "", 1);
	resolve_ok(&s, &r);
	assert_string_equal(r.region, "us-west-1");

	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	unsetenv("AWS_PROFILE");
	unsetenv("AWS_CONFIG_FILE");
}

static void
test_region_missing_and_bad(void **state)
{
	struct aws_settings s = { 0 };

	/* No config file at all. */
	resolve_fails(&s, "no AWS region");
	resolve_fails(&s, "AWS_REGION");

	/* A profile without a region. */
	write_file(tmp_path("config-noregion"), "[default]\noutput = json\n");
	setenv("AWS_CONFIG_FILE", tmp_path("config-noregion"), 1);
	resolve_fails(&s, "profile 'default'");

	setenv("AWS_REGION", "US-EAST-1", 1);
	resolve_fails(&s, "AWS_REGION: 'US-EAST-1' is not a region name");
	setenv("AWS_REGION", "us--east-1", 1);
	resolve_fails(&s, "is not a region name");
	setenv("AWS_REGION", "-us-east-1", 1);
	resolve_fails(&s, "is not a region name");
	setenv("AWS_REGION", "us-east-1 ", 1);
	resolve_fails(&s, "is not a region name");
	s.region = "eu_west_1";
	resolve_fails(&s, "[aws] region");
	unsetenv("AWS_REGION");
	unsetenv("AWS_CONFIG_FILE");

	/* The rule is sm_id's (a region starts with a letter); before it was
	 * shared, this module took a leading digit. */
	setenv("AWS_REGION", "1us-east-1", 1);
	resolve_fails(&s, "is not a region name");
	unsetenv("AWS_REGION");
}

/* ---- endpoint ---------------------------------------------------------------------------- */

static void
test_endpoint_precedence(void **state)
{
	struct aws_settings s = { .region = "us-east-1" };
	struct aws_resolved r;

	resolve_ok(&s, &r);
	assert_string_equal(r.endpoint, "https://secretsmanager.us-east-1.amazonaws.com");
	assert_false(r.fips);

	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000/", 1);
	resolve_ok(&s, &r);
	assert_string_equal(r.endpoint, "http://127.0.0.1:5000");

	setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "https://sm.example.com/base//", 1);
	resolve_ok(&s, &r);
	assert_string_equal(r.endpoint, "https://sm.example.com/base");

	s.endpoint = "http://localhost:4566";
	resolve_ok(&s, &r);
	assert_string_equal(r.endpoint, "http://localhost:4566");

	/* Bad endpoints name their source. */
	s.endpoint = "ftp://example.com";
	resolve_fails(&s, "[aws] endpoint: endpoint 'ftp://example.com' must start with http");
	s.endpoint = NULL;
	setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "https://", 1);
	resolve_fails(&s, "AWS_ENDPOINT_URL_SECRETS_MANAGER: endpoint 'https://' has no host");
	setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "https://a b", 1);
	resolve_fails(&s, "space or control character");
	setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "https://user:pw@host", 1);
	resolve_fails(&s, "must not contain '@'");
	setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "https://host/?x=1", 1);
	resolve_fails(&s, "must not contain '?'");
	unsetenv("AWS_ENDPOINT_URL_SECRETS_MANAGER");
	unsetenv("AWS_ENDPOINT_URL");

	/* Partitions. */
	s.region = "cn-north-1";
	resolve_ok(&s, &r);
	assert_string_equal(r.endpoint, "https://secretsmanager.cn-north-1.amazonaws.com.cn");
	s.region = "us-iso-east-1";
	resolve_ok(&s, &r);
	assert_string_equal(r.endpoint, "https://secretsmanager.us-iso-east-1.c2s.ic.gov");
	/* Partitions this module did not know before sm_id held the table. */
	s.region = "eu-isoe-west-1";
	resolve_ok(&s, &r);
	assert_string_equal(r.endpoint, "https://secretsmanager.eu-isoe-west-1.cloud.adc-e.uk");
}

static void
test_endpoint_normalize(void **state)
{
	char out[32], err[256];

	assert_int_equal(aws_endpoint_normalize("HTTPS://H:1/", out, sizeof(out), err,
	    sizeof(err)), 0);
	assert_string_equal(out, "HTTPS://H:1");
	assert_int_equal(aws_endpoint_normalize("http://h", out, sizeof(out), err,
	    sizeof(err)), 0);
	assert_string_equal(out, "http://h");
	assert_int_equal(aws_endpoint_normalize("http:///x", out, sizeof(out), err,
	    sizeof(err)), -1);
	assert_int_equal(aws_endpoint_normalize("h://x", out, sizeof(out), err, sizeof(err)), -1);
	assert_int_equal(aws_endpoint_normalize("http://x\ny", out, sizeof(out), err,
	    sizeof(err)), -1);
	assert_int_equal(aws_endpoint_normalize("http://a-very-long-host-name.example.com",
	    out, sizeof(out), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too long"));
}

static void
test_fips(void **state)
{
	struct aws_settings s = { .region = "us-east-2" };
	struct aws_resolved r;

	s.fips = true;
	resolve_ok(&s, &r);
	assert_true(r.fips);
	assert_string_equal(r.endpoint, "https://secretsmanager-fips.us-east-2.amazonaws.com");
	s.fips = false;

	setenv("AWS_USE_FIPS_ENDPOINT", "TRUE", 1);
	resolve_ok(&s, &r);
	assert_true(r.fips);
	assert_string_equal(r.endpoint, "https://secretsmanager-fips.us-east-2.amazonaws.com");

	/* An explicit endpoint wins over FIPS, which is still reported. */
	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9", 1);
	resolve_ok(&s, &r);
	assert_true(r.fips);
	assert_string_equal(r.endpoint, "http://127.0.0.1:9");
	unsetenv("AWS_ENDPOINT_URL");

	setenv("AWS_USE_FIPS_ENDPOINT", "yes", 1);
	resolve_fails(&s, "AWS_USE_FIPS_ENDPOINT = 'yes': expected true or false");

	/* From the profile, unless the environment says false. */
	write_file(tmp_path("config-fips"), "[default]\nuse_fips_endpoint = true\n");
	setenv("AWS_CONFIG_FILE", tmp_path("config-fips"), 1);
	unsetenv("AWS_USE_FIPS_ENDPOINT");
	resolve_ok(&s, &r);
	assert_true(r.fips);
	setenv("AWS_USE_FIPS_ENDPOINT", "false", 1);
	resolve_ok(&s, &r);
	assert_false(r.fips);
	assert_string_equal(r.endpoint, "https://secretsmanager.us-east-2.amazonaws.com");
	unsetenv("AWS_USE_FIPS_ENDPOINT");

	write_file(tmp_path("config-fips"), "[default]\nuse_fips_endpoint = maybe\n");
	resolve_fails(&s, "use_fips_endpoint = 'maybe'");
	unsetenv("AWS_CONFIG_FILE");
}

/* ---- profile and file names -------------------------------------------------------------- */

static void
test_profile_and_files(void **state)
{
	struct aws_settings s = { .region = "us-east-1" };
	struct aws_resolved r;
	char want[600];

	resolve_ok(&s, &r);
	assert_string_equal(r.profile, "default");
	snprintf(want, sizeof(want), "%s/.aws/config", tmpdir);
	assert_string_equal(r.config_file, want);
	snprintf(want, sizeof(want), "%s/.aws/credentials", tmpdir);
	assert_string_equal(r.credentials_file, want);

	setenv("AWS_PROFILE", "dev", 1);
	resolve_ok(&s, &r);
	assert_string_equal(r.profile, "dev");
	s.profile = "prod";
	resolve_ok(&s, &r);
	assert_string_equal(r.profile, "prod");
	s.profile = "bad]name";
	resolve_fails(&s, "not a usable profile name");
	s.profile = NULL;
	unsetenv("AWS_PROFILE");

	setenv("AWS_CONFIG_FILE", "/etc/aws-config", 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", "~/creds", 1);
	resolve_ok(&s, &r);
	assert_string_equal(r.config_file, "/etc/aws-config");
	snprintf(want, sizeof(want), "%s/creds", tmpdir);
	assert_string_equal(r.credentials_file, want);
	unsetenv("AWS_CONFIG_FILE");
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
}

/* ---- lookups in the shared files --------------------------------------------------------- */

static int
get(const char *path, bool config, const char *profile, const char *key, char *out,
    size_t outlen)
{
	char err[512] = "";
	int rc = aws_profile_get(path, config, profile, key, out, outlen, err, sizeof(err));

	if (rc < 0)
		print_message("aws_profile_get(%s, %s): %s\n", profile, key, err);
	return rc;
}

static void
expect_key(const char *path, bool config, const char *profile, const char *key,
    const char *want)
{
	char v[256];
	int rc = get(path, config, profile, key, v, sizeof(v));

	if (want == NULL) {
		if (rc != 0)
			fail_msg("[%s] %s: expected absent, got rc %d '%s'", profile, key, rc, v);
		assert_string_equal(v, "");
		return;
	}
	if (rc != 1)
		fail_msg("[%s] %s: expected '%s', got rc %d", profile, key, want, rc);
	assert_string_equal(v, want);
}

static void
test_credentials_file(void **state)
{
	const char *path = tmp_path("credentials");

	write_file(path,
	    "# a comment\n"
	    "[default]\n"
	    "aws_access_key_id=AKIDDEFAULT\n"
	    "aws_secret_access_key = secret/default+1\n"
	    "\n"
	    "[dev]\n"
	    "  aws_access_key_id   =   AKIDDEV  \n"
	    "AWS_SECRET_ACCESS_KEY = secretdev ; trailing comment\n"
	    "; another comment\n"
	    "[profile prod]\n"
	    "aws_access_key_id = NOT-IN-CREDENTIALS-FILE-SPELLING\n"
	    "[ spaced ]\n"
	    "aws_access_key_id = AKIDSPACED\n");

	expect_key(path, false, "default", "aws_access_key_id", "AKIDDEFAULT");
	expect_key(path, false, "default", "aws_secret_access_key", "secret/default+1");
	expect_key(path, false, "dev", "aws_access_key_id", "AKIDDEV");
	/* Keys compare without case. */
	expect_key(path, false, "dev", "aws_secret_access_key", "secretdev");
	expect_key(path, false, "dev", "aws_session_token", NULL);
	/* "[profile prod]" is not the credentials-file spelling of "prod". */
	expect_key(path, false, "prod", "aws_access_key_id", NULL);
	expect_key(path, false, "spaced", "aws_access_key_id", "AKIDSPACED");
	expect_key(path, false, "nosuch", "aws_access_key_id", NULL);

	assert_int_equal(aws_profile_exists(path, false, "dev", NULL, 0), 1);
	assert_int_equal(aws_profile_exists(path, false, "prod", NULL, 0), 0);
	assert_int_equal(aws_profile_exists(path, false, "nosuch", NULL, 0), 0);
}

static void
test_config_file(void **state)
{
	const char *path = tmp_path("config2");

	write_file(path,
	    "[default]\n"
	    "region = us-east-1\n"
	    "s3 =\n"
	    "    max_concurrent_requests = 20\n"
	    "    region = not-this-one\n"
	    "output = json\n"
	    "[profile  dev ]\n"
	    "region=eu-west-1\n"
	    "[prod]\n"
	    "region = ap-northeast-1\n"
	    "[profile empty]\n"
	    "[profile default]\n"
	    "region = from-profile-default\n");

	expect_key(path, true, "default", "region", "us-east-1");
	/* Nested sub-section keys do not leak into the profile; the next key is seen. */
	expect_key(path, true, "default", "max_concurrent_requests", NULL);
	expect_key(path, true, "default", "output", "json");
	expect_key(path, true, "default", "s3", "");
	expect_key(path, true, "dev", "region", "eu-west-1");
	/* In the config file, a bare [prod] is not profile prod. */
	expect_key(path, true, "prod", "region", NULL);
	assert_int_equal(aws_profile_exists(path, true, "empty", NULL, 0), 1);
	assert_int_equal(aws_profile_exists(path, true, "prod", NULL, 0), 0);
	assert_int_equal(aws_profile_exists(path, true, "default", NULL, 0), 1);

	/* The same file read as a credentials file: sections are bare names. */
	expect_key(path, false, "prod", "region", "ap-northeast-1");
	expect_key(path, false, "dev", "region", NULL);
}

static void
test_long_values(void **state)
{
	const char *path = tmp_path("credentials-long");
	char *token, *text, *out;
	size_t n = 3000;
	int rc;

	token = malloc(n + 1);
	text = malloc(n + 2048);
	out = malloc(n + 1);
	assert_non_null(token);
	assert_non_null(text);
	assert_non_null(out);
	for (size_t i = 0; i < n; i++)
		token[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="[i % 65];
	token[n] = '\0';
	snprintf(text, n + 2048, "[default]\naws_access_key_id = AKID\n"
	    "aws_session_token = %s\n"
	    "aws_secret_access_key = after-the-long-line\n"
	    "[other]\n"
	    "aws_session_token = %.400s ; with a comment\n"
	    "# %.400s\n"
	    "region = us-east-1\n", token, token, token);
	write_file(path, text);

	rc = get(path, false, "default", "aws_session_token", out, n + 1);
	assert_int_equal(rc, 1);
	assert_string_equal(out, token);	/* whole, not cut at inih's 200 bytes */
	expect_key(path, false, "default", "aws_secret_access_key", "after-the-long-line");
	rc = get(path, false, "other", "aws_session_token", out, n + 1);
	assert_int_equal(rc, 1);
	assert_int_equal(strlen(out), 400);
	assert_memory_equal(out, token, 400);
	expect_key(path, false, "other", "region", "us-east-1");

	/* A buffer too small is an error, not a truncated secret. */
	{
		char err[256] = "";

		rc = aws_profile_get(path, false, "default", "aws_session_token", out, 100, err,
		    sizeof(err));
		assert_int_equal(rc, -1);
		assert_non_null(strstr(err, "too long"));
		assert_string_equal(out, "");
	}
	free(token);
	free(text);
	free(out);
}

/* /dev/null and an empty file are "no profiles" (as botocore); errors name the variable. */
static void
test_dev_null_and_variables(void **state)
{
	struct aws_resolved r;
	char v[64], err[512];
	int rc;

	(void)state;
	expect_key("/dev/null", true, "default", "region", NULL);
	expect_key("/dev/null", false, "default", "aws_access_key_id", NULL);
	assert_int_equal(aws_profile_exists("/dev/null", false, "default", err, sizeof(err)), 0);
	write_file(tmp_path("empty"), "");
	expect_key(tmp_path("empty"), true, "default", "region", NULL);

	setenv("AWS_CONFIG_FILE", "/dev/null", 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null", 1);
	setenv("AWS_REGION", "eu-west-1", 1);
	assert_int_equal(aws_resolve(NULL, &r, err, sizeof(err)), 0);
	assert_string_equal(r.config_file, "/dev/null");
	unsetenv("AWS_REGION");
	/* No region anywhere: the message is about the region, not the file. */
	assert_int_equal(aws_resolve(NULL, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no AWS region"));

	/* A device that reads something is not "no profiles", and the variable is named. */
	setenv("AWS_CONFIG_FILE", "/dev/zero", 1);
	rc = aws_profile_get("/dev/zero", true, "default", "region", v, sizeof(v), err,
	    sizeof(err));
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, "AWS_CONFIG_FILE=/dev/zero: not a regular file"));
	/* A world-writable file: refused, naming the variable and the fix. */
	write_file(tmp_path("ww"), "[default]\nregion = us-east-1\n");
	assert_int_equal(chmod(tmp_path("ww"), 0666), 0);
	setenv("AWS_SHARED_CREDENTIALS_FILE", tmp_path("ww"), 1);
	rc = aws_profile_get(tmp_path("ww"), false, "default", "region", v, sizeof(v), err,
	    sizeof(err));
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, "AWS_SHARED_CREDENTIALS_FILE="));
	assert_non_null(strstr(err, "fix: chmod go-w"));
	unsetenv("AWS_CONFIG_FILE");
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
}

static void
test_missing_and_malformed(void **state)
{
	char v[64], err[512];
	int rc;

	/* Missing files are "not found", as is no file name. */
	expect_key(tmp_path("does-not-exist"), true, "default", "region", NULL);
	expect_key("", true, "default", "region", NULL);
	assert_int_equal(aws_profile_exists(tmp_path("nope/x"), false, "default", NULL, 0), 0);

	/* A line that is neither a section nor key = value fails the file, with its line. */
	write_file(tmp_path("bad1"), "[default]\nregion = us-east-1\nthis is not ini\n");
	rc = aws_profile_get(tmp_path("bad1"), true, "default", "region", v, sizeof(v), err,
	    sizeof(err));
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, "bad1:3:"));

	/* A NUL byte. */
	{
		FILE *f = fopen(tmp_path("bad2"), "w");

		assert_non_null(f);
		fwrite("[default]\nregion = a\0b\n", 1, 23, f);
		fclose(f);
	}
	rc = aws_profile_get(tmp_path("bad2"), true, "default", "region", v, sizeof(v), err,
	    sizeof(err));
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, "bad2:2:"));

	/* A long line that is not key = value. */
	{
		char line[400];

		memset(line, 'x', sizeof(line) - 1);
		line[sizeof(line) - 1] = '\0';
		snprintf(err, sizeof(err), "[default]\n%s\n", line);
		write_file(tmp_path("bad3"), err);
	}
	rc = aws_profile_get(tmp_path("bad3"), true, "default", "region", v, sizeof(v), err,
	    sizeof(err));
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, "line too long"));

	/* A directory is not a file. */
	rc = aws_profile_get(tmpdir, true, "default", "region", v, sizeof(v), err, sizeof(err));
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, "not a regular file"));

	/* An unreadable file is an error, not "missing" (root reads anything: skip then). */
	if (geteuid() != 0) {
		write_file(tmp_path("unreadable"), "[default]\nregion = x\n");
		chmod(tmp_path("unreadable"), 0);
		rc = aws_profile_get(tmp_path("unreadable"), true, "default", "region", v,
		    sizeof(v), err, sizeof(err));
		assert_int_equal(rc, -1);
		assert_non_null(strstr(err, "Permission denied"));
	}

	/* A malformed config file also fails aws_resolve when it needs the region. */
	setenv("AWS_CONFIG_FILE", tmp_path("bad1"), 1);
	{
		struct aws_settings s = { 0 };

		resolve_fails(&s, "bad1:3:");
		s.region = "us-east-1";		/* not read for the region... */
		resolve_fails(&s, "bad1:3:");	/* ...but for use_fips_endpoint */
		setenv("AWS_USE_FIPS_ENDPOINT", "false", 1);
		{
			struct aws_resolved r;

			resolve_ok(&s, &r);	/* not read at all */
		}
		unsetenv("AWS_USE_FIPS_ENDPOINT");
	}
	unsetenv("AWS_CONFIG_FILE");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_region_precedence),
		cmocka_unit_test(test_dev_null_and_variables),
		cmocka_unit_test(test_region_missing_and_bad),
		cmocka_unit_test(test_endpoint_precedence),
		cmocka_unit_test(test_endpoint_normalize),
		cmocka_unit_test(test_fips),
		cmocka_unit_test(test_profile_and_files),
		cmocka_unit_test(test_credentials_file),
		cmocka_unit_test(test_config_file),
		cmocka_unit_test(test_long_values),
		cmocka_unit_test(test_missing_and_malformed),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
