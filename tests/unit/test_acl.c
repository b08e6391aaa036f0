/*
 * test_acl: access rules: parsing (good rules, every kind of bad rule and
 * its message), principals (users and groups by name and id, supplementary
 * groups), pattern matching over names, full and partial ARNs, the
 * resolved-name check, default deny with rules and allow-all without, and
 * who may read STATS.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acl.h"

#define ACCT	"arn:aws:secretsmanager:us-east-1:123456789012:secret:"
#define OTHER	"arn:aws:secretsmanager:us-east-1:999999999999:secret:"

static struct acl *
make(const char *const *rules, size_t n)
{
	char err[512] = "";
	struct acl *acl = acl_new(rules, n, err, sizeof(err));

	if (acl == NULL)
		fail_msg("acl_new: %s", err);
	return acl;
}

static const struct acl_peer user1000 = { .uid = 1000, .gid = 1000 };
static const struct acl_peer user2000 = { .uid = 2000, .gid = 2000 };
static const struct acl_peer root_peer = { .uid = 0, .gid = 0 };

/* ---- parsing ----------------------------------------------------------------------------- */

static void
expect_bad(const char *rule, const char *want)
{
	char why[512] = "", err[512] = "";
	const char *rules[1] = { rule };

	if (acl_rule_check(rule, why, sizeof(why)) == 0)
		fail_msg("rule <<%s>> accepted, expected '%s'", rule, want);
	if (strstr(why, want) == NULL)
		fail_msg("rule <<%s>>: message '%s' lacks '%s'", rule, why, want);
	assert_null(acl_new(rules, 1, err, sizeof(err)));
	assert_non_null(strstr(err, "access rule 1"));
	assert_non_null(strstr(err, want));
}

static void
test_parse_good(void **state)
{
	static const char *const good[] = {
		"user:root prod/*",
		"user:0 a b c",
		"user:1000\tprod/payments/*\t\tprod/shared/?-[a-z0-9]*",
		"group:root x",
		"group:0 arn:aws:secretsmanager:*:123456789012:secret:prod/*",
		"user:4294967294 *",
		"user:root [!a]* [^b]* []x]* [[:digit:]]* a+b=c.d@e_f-g",
		"  user:root   leading/blanks  ",
	};
	char why[512];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		why[0] = '\0';
		if (acl_rule_check(good[i], why, sizeof(why)) != 0)
			fail_msg("rule <<%s>> refused: %s", good[i], why);
	}
	struct acl *acl = make(good, sizeof(good) / sizeof(good[0]));
	assert_true(acl_enabled(acl));
	assert_int_equal(acl_rule_count(acl), sizeof(good) / sizeof(good[0]));
	acl_free(acl);
}

static void
test_parse_bad(void **state)
{
	expect_bad("", "empty rule");
	expect_bad("   ", "empty rule");
	expect_bad("root prod/*", "'root' is not user:NAME, user:UID, group:NAME or group:GID");
	expect_bad("uid:0 prod/*", "is not user:NAME");
	expect_bad("user: prod/*", "'user:' names no user");
	expect_bad("group: prod/*", "'group:' names no group");
	expect_bad("user:no-such-user-smc-test prod/*", "unknown user 'no-such-user-smc-test'");
	expect_bad("group:no-such-group-smc-test prod/*", "unknown group 'no-such-group-smc-test'");
	expect_bad("user:4294967295 x", "'user:4294967295' is not a valid uid");
	expect_bad("group:99999999999 x", "is not a valid gid");
	expect_bad("user:root", "'user:root' is granted no pattern");
	expect_bad("user:root a:b", "pattern 'a:b': a name cannot contain ':'");
	expect_bad("user:root a\\b", "pattern 'a\\b': '\\' cannot appear in a secret id");
	expect_bad("user:root a,b", "',' cannot appear");
	expect_bad("user:root a]", "']' cannot appear");
	expect_bad("user:root [abc", "'[' without a closing ']'");
	expect_bad("user:root [[:digit:]", "'[' without a closing ']'");
	expect_bad("user:root [a,b]", "',' cannot appear");
	expect_bad("user:root caf\xc3\xa9", "byte 0xc3 cannot appear");
}

/* ---- matching ---------------------------------------------------------------------------- */

static void
test_no_rules_allows_everything(void **state)
{
	struct acl *acl = make(NULL, 0);

	assert_false(acl_enabled(acl));
	assert_false(acl_enabled(NULL));
	assert_int_equal(acl_rule_count(NULL), 0);
	assert_true(acl_allows_id(acl, &user1000, "anything/at/all"));
	assert_true(acl_allows_id(NULL, &user1000, ACCT "x-AbCdEf"));
	assert_true(acl_allows_resolved(acl, &user2000, "x", ACCT "x-AbCdEf"));
	assert_true(acl_allows_stats(acl, &user2000, 4242));
	assert_false(acl_names_peer(acl, &user1000));
	acl_free(acl);
	acl_free(NULL);
}

static void
test_names(void **state)
{
	static const char *const rules[] = { "user:1000 prod/payments/* shared/?b [a-c]x/*" };
	struct acl *acl = make(rules, 1);

	/* '*' crosses '/': everything below the prefix, at any depth. */
	assert_true(acl_allows_id(acl, &user1000, "prod/payments/db"));
	assert_true(acl_allows_id(acl, &user1000, "prod/payments/a/b/c"));
	assert_true(acl_allows_id(acl, &user1000, "prod/payments/"));
	assert_false(acl_allows_id(acl, &user1000, "prod/payments"));
	assert_false(acl_allows_id(acl, &user1000, "prod/paymentsX/db"));
	assert_false(acl_allows_id(acl, &user1000, "Prod/payments/db"));	/* case matters */
	assert_false(acl_allows_id(acl, &user1000, "x/prod/payments/db"));
	/* '?' is one character, '/' included. */
	assert_true(acl_allows_id(acl, &user1000, "shared/ab"));
	assert_true(acl_allows_id(acl, &user1000, "shared//b"));
	assert_false(acl_allows_id(acl, &user1000, "shared/b"));
	assert_false(acl_allows_id(acl, &user1000, "shared/abb"));
	/* Classes. */
	assert_true(acl_allows_id(acl, &user1000, "bx/1"));
	assert_false(acl_allows_id(acl, &user1000, "dx/1"));
	/* A name never gets the ARN suffix. */
	assert_false(acl_allows_id(acl, &user1000, "shared/ab-AbCdEf"));
	/* Default deny: another user, the same ids. */
	assert_false(acl_allows_id(acl, &user2000, "prod/payments/db"));
	assert_false(acl_allows_id(acl, &root_peer, "prod/payments/db"));
	assert_false(acl_allows_id(acl, &user1000, ""));
	acl_free(acl);
}

static void
test_arn_ids_against_name_patterns(void **state)
{
	static const char *const rules[] = { "user:1000 app/db prod/*" };
	struct acl *acl = make(rules, 1);

	/* Full ARN, partial ARN, another account's ARN of the same name. */
	assert_true(acl_allows_id(acl, &user1000, ACCT "app/db-AbCdEf"));
	assert_true(acl_allows_id(acl, &user1000, ACCT "app/db"));
	assert_true(acl_allows_id(acl, &user1000, OTHER "app/db-AbCdEf"));
	assert_true(acl_allows_id(acl, &user1000, "arn:aws-cn:secretsmanager:cn-north-1:1:secret:app/db"));
	assert_true(acl_allows_id(acl, &user1000, ACCT "prod/x/y-123456"));
	/* The suffix is exactly a dash and six letters or digits. */
	assert_false(acl_allows_id(acl, &user1000, ACCT "app/db-AbCdE"));
	assert_false(acl_allows_id(acl, &user1000, ACCT "app/db-AbCdEfG"));
	assert_false(acl_allows_id(acl, &user1000, ACCT "app/db-AbC.Ef"));
	assert_false(acl_allows_id(acl, &user1000, ACCT "app/dbx"));
	assert_false(acl_allows_id(acl, &user1000, ACCT "app/db-AbCdEf-GhIjKl"));
	assert_false(acl_allows_id(acl, &user1000, ACCT "other/app/db"));
	/* Not a Secrets Manager secret ARN, or malformed: name patterns do not apply. */
	assert_false(acl_allows_id(acl, &user1000, "arn:aws:s3:us-east-1:123456789012:secret:app/db"));
	assert_false(acl_allows_id(acl, &user1000,
	    "arn:aws:secretsmanager:us-east-1:123456789012:parameter:app/db"));
	assert_false(acl_allows_id(acl, &user1000, ACCT "app/db:extra"));
	assert_false(acl_allows_id(acl, &user1000, "arn:aws:secretsmanager:us-east-1:app/db"));
	assert_false(acl_allows_id(acl, &user1000, ACCT));
	assert_false(acl_allows_id(acl, &user1000, "arn:"));
	acl_free(acl);
}

static void
test_arn_patterns(void **state)
{
	static const char *const rules[] = {
		"user:1000 " ACCT "prod/* " ACCT "app/db",
	};
	struct acl *acl = make(rules, 1);

	assert_true(acl_allows_id(acl, &user1000, ACCT "prod/x-AbCdEf"));
	assert_true(acl_allows_id(acl, &user1000, ACCT "prod/x"));
	/* An exact ARN pattern also matches that secret's full ARN (the suffix). */
	assert_true(acl_allows_id(acl, &user1000, ACCT "app/db"));
	assert_true(acl_allows_id(acl, &user1000, ACCT "app/db-AbCdEf"));
	assert_false(acl_allows_id(acl, &user1000, ACCT "app/db-AbCdEf-GhIjKl"));
	/* ARN patterns pin the account and never match a name. */
	assert_false(acl_allows_id(acl, &user1000, OTHER "prod/x-AbCdEf"));
	assert_false(acl_allows_id(acl, &user1000, "prod/x"));
	assert_false(acl_allows_id(acl, &user1000, "app/db"));
	acl_free(acl);
}

static void
test_resolved(void **state)
{
	static const char *const rules[] = { "user:1000 app/db " ACCT "team/*" };
	struct acl *acl = make(rules, 1);

	assert_true(acl_allows_resolved(acl, &user1000, "app/db", ACCT "app/db-AbCdEf"));
	assert_true(acl_allows_resolved(acl, &user1000, "team/a", ACCT "team/a-AbCdEf"));
	assert_true(acl_allows_resolved(acl, &user1000, "app/db", NULL));
	/*
	 * The ambiguous case: ACCT "app/db-AbCdEf" passes the first check by
	 * the suffix rule, but resolves to a secret *named* "app/db-AbCdEf"
	 * (a partial ARN): its name is not granted.
	 */
	assert_true(acl_allows_id(acl, &user1000, ACCT "app/db-AbCdEf"));
	assert_false(acl_allows_resolved(acl, &user1000, "app/db-AbCdEf",
	    ACCT "app/db-AbCdEf-QwErTy"));
	/* Name patterns do not take the suffix for names. */
	assert_false(acl_allows_resolved(acl, &user1000, "team/a", OTHER "team/a-AbCdEf"));
	assert_false(acl_allows_resolved(acl, &user1000, NULL, NULL));
	assert_false(acl_allows_resolved(acl, &user2000, "app/db", ACCT "app/db-AbCdEf"));
	acl_free(acl);
}

/* Which ids may resolve to a secret the peer may not read (then "not found" is a refusal). */
static void
test_unambiguous(void **state)
{
	static const char *const rules[] = { "user:1000 app/db app/* team/x" };
	struct acl *acl = make(rules, 1);

	(void)state;
	assert_true(acl_id_unambiguous(acl, &user1000, "app/db"));		/* a name */
	assert_true(acl_id_unambiguous(acl, &user1000, "team/nope"));
	/* "app/" + "*" grants both app/db-AbCdEf and app/db. */
	assert_true(acl_id_unambiguous(acl, &user1000, ACCT "app/db-AbCdEf"));
	assert_true(acl_id_unambiguous(acl, &user1000, ACCT "app/db"));
	/* team/x grants team/x but not a secret named team/x-AbCdEf. */
	assert_false(acl_id_unambiguous(acl, &user1000, ACCT "team/x-AbCdEf"));
	assert_false(acl_id_unambiguous(acl, &user1000, ACCT "team/y"));
	assert_false(acl_id_unambiguous(acl, &user1000, "arn:aws:not-an-arn"));
	/* No rules: nothing to hide. */
	acl_free(acl);
	acl = make(NULL, 0);
	assert_true(acl_id_unambiguous(acl, &user1000, ACCT "team/x-AbCdEf"));
	acl_free(acl);
}

static void
test_principals(void **state)
{
	static const char *const rules[] = {
		"user:root root/*",
		"user:1000 u1000/*",
		"group:root g0/*",
		"group:3000 g3000/*",
	};
	const gid_t supp[] = { 5, 3000, 7 };
	const struct acl_peer in_supp = { .uid = 2000, .gid = 2000, .groups = supp, .ngroups = 3 };
	const struct acl_peer primary0 = { .uid = 2000, .gid = 0 };
	const struct acl_peer primary3000 = { .uid = 2500, .gid = 3000 };
	struct acl *acl = make(rules, 4);

	/* Users by name and by uid; the group of the same number is not the user. */
	assert_true(acl_allows_id(acl, &root_peer, "root/x"));
	assert_true(acl_allows_id(acl, &user1000, "u1000/x"));
	assert_false(acl_allows_id(acl, &user1000, "root/x"));
	assert_false(acl_allows_id(acl, &user2000, "u1000/x"));
	/* root is not special: only what its rules grant (its group's, here). */
	assert_true(acl_allows_id(acl, &root_peer, "g0/x"));
	assert_false(acl_allows_id(acl, &root_peer, "u1000/x"));
	/* Groups: primary, or supplementary. */
	assert_true(acl_allows_id(acl, &primary0, "g0/x"));
	assert_false(acl_allows_id(acl, &primary0, "root/x"));
	assert_true(acl_allows_id(acl, &primary3000, "g3000/x"));
	assert_true(acl_allows_id(acl, &in_supp, "g3000/x"));
	assert_false(acl_allows_id(acl, &in_supp, "g0/x"));
	assert_false(acl_allows_id(acl, &user2000, "g3000/x"));
	assert_true(acl_names_peer(acl, &in_supp));
	assert_false(acl_names_peer(acl, &user2000));
	acl_free(acl);
}

static void
test_stats(void **state)
{
	static const char *const rules[] = { "user:1000 a/*" };
	struct acl *acl = make(rules, 1);

	assert_true(acl_allows_stats(acl, &root_peer, 4242));
	assert_true(acl_allows_stats(acl, &user1000, 4242));
	assert_false(acl_allows_stats(acl, &user2000, 4242));
	assert_true(acl_allows_stats(acl, &user2000, 2000));	/* the agent's own user */
	acl_free(acl);
}

/* key:NAME rules ([endpoint] auth = keys): a key caller is judged by key rules only. */
static void
test_key_principals(void **state)
{
	static const char *const rules[] = {
		"key:alice app/*",
		"key:bob other/*",
		"user:1000 app/* other/*",
	};
	const struct acl_peer alice = { .uid = 1000, .gid = 1000, .key = "alice" };
	const struct acl_peer bob_as_root = { .uid = 0, .gid = 0, .key = "bob" };
	const struct acl_peer carol = { .uid = 1000, .gid = 1000, .key = "carol" };
	struct acl *acl = make(rules, 3);
	char why[128];

	(void)state;
	assert_true(acl_allows_id(acl, &alice, "app/db"));
	assert_false(acl_allows_id(acl, &alice, "other/x"));	/* uid 1000's rule does not apply */
	assert_true(acl_allows_resolved(acl, &bob_as_root, "other/x", NULL));
	assert_false(acl_allows_id(acl, &bob_as_root, "app/db"));
	assert_false(acl_allows_id(acl, &carol, "app/db"));	/* an unnamed key: nothing */
	assert_true(acl_allows_id(acl, &user1000, "other/x"));	/* a uid caller: no key rule */
	assert_true(acl_names_peer(acl, &alice));
	assert_false(acl_names_peer(acl, &carol));
	assert_int_equal(acl_rule_check("key: app/*", why, sizeof(why)), -1);
	assert_int_equal(acl_rule_check("key:alice", why, sizeof(why)), -1);
	acl_free(acl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_no_rules_allows_everything),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_arn_ids_against_name_patterns),
		cmocka_unit_test(test_arn_patterns),
		cmocka_unit_test(test_resolved),
		cmocka_unit_test(test_unambiguous),
		cmocka_unit_test(test_principals),
		cmocka_unit_test(test_key_principals),
		cmocka_unit_test(test_stats),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
