/*
 * test_backend_file: the `file` backend (lookups, validation, re-reading,
 * asynchrony, counters, freeing with pending requests) and json_secure's
 * wiping free. Runs a real event_base over temporary files.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <event2/event.h>
#include <sodium.h>

#include "backend_file.h"
#include "json_secure.h"
#include "log.h"

#define ARN_PREFIX	"arn:aws:secretsmanager:us-east-1:123456789012:secret:"
#define DB_ARN		ARN_PREFIX "demo/db-password-a1B2c3"
#define HEAD		"{'Region':'us-east-1','Account':'123456789012','Secrets':["
#define TAIL		"]}"
#define CUR		"'VersionStages':['AWSCURRENT']"

/* Single quotes stand for double quotes, to keep the JSON below readable. */
static char *
q(const char *s)
{
	char *out = strdup(s);

	assert_non_null(out);
	for (char *p = out; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	return out;
}

static const char *const test_file_json =
    "{'Region':'us-east-1','Account':'123456789012','Secrets':[\n"
    " {'Name':'demo/db-password','ARN':'" DB_ARN "',\n"
    "  'Description':'database user','CreatedDate':1700000000,'LastChangedDate':1710000000.25,\n"
    "  'Versions':[\n"
    "   {'VersionId':'v0','SecretString':'unlabelled-value'},\n"
    "   {'VersionId':'v1','VersionStages':['AWSPREVIOUS'],'SecretString':'old-pw','CreatedDate':1700000000},\n"
    "   {'VersionId':'v2','VersionStages':['AWSCURRENT','BLUE'],'SecretString':'{\\'password\\':\\'cur-pw\\'}',\n"
    "    'CreatedDate':1710000000.25},\n"
    "   {'VersionId':'v3','VersionStages':['AWSPENDING'],'SecretString':'next-pw','CreatedDate':1720000000}]},\n"
    " {'Name':'demo/api-key','Versions':[{'VersionId':'k1'," CUR ",'SecretString':'api-value'}]},\n"
    " {'Name':'demo/tls-key','Versions':[{'VersionId':'t1'," CUR ",'SecretBinary':'AAEC/f7/SGk='}]},\n"
    " {'Name':'demo/retired','DeletedDate':1715000000.5,'CreatedDate':null,\n"
    "  'Versions':[{'VersionId':'r1'," CUR ",'SecretString':'retired-value'}]},\n"
    " {'Name':'demo/empty'}\n"
    "]}\n";

struct fixture {
	struct event_base *base;
	struct backend *b;
	char path[64];
};

struct result {
	int calls;
	bool returned;		/* set once the call returned; the callback checks it */
	bool ok;
	enum proto_status status;
	char message[256];
	char arn[256];
	char name[128];
	char version_id[72];
	char stages[PROTO_MAX_STAGES][64];
	size_t stage_count;
	int64_t created_ms;
	bool is_binary;
	uint8_t data[256];
	size_t len;
	/* describe */
	char description[128];
	bool has_description;
	int64_t last_changed_ms;
	int64_t deleted_ms;
	size_t version_count;
	char version_ids[8][72];
	size_t version_stage_counts[8];
	char version_stage0[8][64];
	int64_t version_created[8];
	/* shared call order, for FIFO checks */
	int *order_log;
	int order_id;
};

/* ---- files --------------------------------------------------------------------------------- */

static void
write_bytes(const char *path, const void *data, size_t len)
{
	char tmp[96];
	int fd;

	/* Written beside and renamed over, as editors do. */
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	assert_int_equal(rename(tmp, path), 0);
}

static void
write_json(const char *path, const char *single_quoted)
{
	char *json = q(single_quoted);

	write_bytes(path, json, strlen(json));
	free(json);
}

static void
make_temp_path(char *path, size_t len)
{
	int fd;

	snprintf(path, len, "/tmp/smc-test-file-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	assert_non_null(f);
	f->base = event_base_new();
	assert_non_null(f->base);
	make_temp_path(f->path, sizeof(f->path));
	write_json(f->path, test_file_json);
	f->b = backend_file_new(f->base, f->path, err, sizeof(err));
	if (f->b == NULL)
		fail_msg("backend_file_new: %s", err);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	/* A failed test must not leave a hook pointing into its dead frame. */
	json_secure_set_free_hook(NULL, NULL);

	backend_free(f->b);
	event_base_free(f->base);
	unlink(f->path);
	free(f);
	return 0;
}

/* ---- calls ----------------------------------------------------------------------------------- */

static void
copy_stages(char dst[][64], size_t *count, const char *const *stages, size_t n)
{
	assert_true(n <= PROTO_MAX_STAGES);
	for (size_t i = 0; i < n; i++)
		snprintf(dst[i], 64, "%s", stages[i]);
	*count = n;
}

static void
record_common(struct result *r, bool ok, const struct backend_error *error)
{
	assert_true(r->returned);	/* never called before the call returned */
	r->calls++;
	r->ok = ok;
	if (r->order_log != NULL) {
		int *p = r->order_log;

		while (*p != 0)
			p++;
		*p = r->order_id;
	}
	if (!ok) {
		assert_non_null(error);
		assert_int_not_equal(error->status, PROTO_STATUS_OK);
		r->status = error->status;
		snprintf(r->message, sizeof(r->message), "%s", error->message);
	}
}

static void
value_cb(void *arg, const struct backend_value *v, const struct backend_error *error)
{
	struct result *r = arg;

	assert_true((v == NULL) != (error == NULL));
	record_common(r, v != NULL, error);
	if (v == NULL)
		return;
	snprintf(r->arn, sizeof(r->arn), "%s", v->arn);
	snprintf(r->name, sizeof(r->name), "%s", v->name);
	snprintf(r->version_id, sizeof(r->version_id), "%s", v->version_id);
	copy_stages(r->stages, &r->stage_count, v->stages, v->stage_count);
	r->created_ms = v->created_ms;
	r->is_binary = v->is_binary;
	assert_true(v->len <= sizeof(r->data));
	memcpy(r->data, v->data, v->len);
	r->len = v->len;
}

static void
describe_cb(void *arg, const struct backend_description *d, const struct backend_error *error)
{
	struct result *r = arg;

	assert_true((d == NULL) != (error == NULL));
	record_common(r, d != NULL, error);
	if (d == NULL)
		return;
	snprintf(r->arn, sizeof(r->arn), "%s", d->arn);
	snprintf(r->name, sizeof(r->name), "%s", d->name);
	r->has_description = d->description != NULL;
	if (d->description != NULL)
		snprintf(r->description, sizeof(r->description), "%s", d->description);
	r->created_ms = d->created_ms;
	r->last_changed_ms = d->last_changed_ms;
	r->deleted_ms = d->deleted_ms;
	r->version_count = d->version_count;
	assert_true(d->version_count <= 8);
	for (size_t i = 0; i < d->version_count; i++) {
		snprintf(r->version_ids[i], sizeof(r->version_ids[i]), "%s", d->versions[i].version_id);
		r->version_stage_counts[i] = d->versions[i].stage_count;
		snprintf(r->version_stage0[i], 64, "%s",
		    d->versions[i].stage_count > 0 ? d->versions[i].stages[0] : "");
		r->version_created[i] = d->versions[i].created_ms;
	}
}

static void
run(struct fixture *f)
{
	assert_true(event_base_dispatch(f->base) >= 0);
}

static void
start_get(struct fixture *f, const char *id, const char *stage, const char *vid, struct result *r)
{
	struct backend_query query = { .secret_id = id, .version_stage = stage, .version_id = vid };

	memset(r, 0, sizeof(*r));
	assert_int_equal(backend_get_value(f->b, &query, value_cb, r), 0);
	assert_int_equal(r->calls, 0);
	r->returned = true;
}

static void
get(struct fixture *f, const char *id, const char *stage, const char *vid, struct result *r)
{
	start_get(f, id, stage, vid, r);
	run(f);
	assert_int_equal(r->calls, 1);
}

static void
describe(struct fixture *f, const char *id, struct result *r)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(backend_describe(f->b, id, describe_cb, r), 0);
	assert_int_equal(r->calls, 0);
	r->returned = true;
	run(f);
	assert_int_equal(r->calls, 1);
}

static void
assert_value(const struct result *r, const char *expected)
{
	if (!r->ok)
		fail_msg("expected a value, got %d: %s", r->status, r->message);
	assert_false(r->is_binary);
	assert_int_equal(r->len, strlen(expected));
	assert_memory_equal(r->data, expected, r->len);
}

static void
assert_error(const struct result *r, enum proto_status status, const char *fragment)
{
	assert_false(r->ok);
	assert_int_equal(r->status, status);
	if (strstr(r->message, fragment) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", r->message, fragment);
}

/* ---- lookups --------------------------------------------------------------------------------- */

static void
test_get_by_name_is_awscurrent(void **state)
{
	struct fixture *f = *state;
	struct result r;

	get(f, "demo/db-password", NULL, NULL, &r);
	assert_value(&r, "{\"password\":\"cur-pw\"}");
	assert_string_equal(r.arn, DB_ARN);
	assert_string_equal(r.name, "demo/db-password");
	assert_string_equal(r.version_id, "v2");
	assert_int_equal(r.stage_count, 2);
	assert_string_equal(r.stages[0], "AWSCURRENT");
	assert_string_equal(r.stages[1], "BLUE");
	assert_int_equal(r.created_ms, 1710000000250LL);
}

static void
test_get_by_full_and_partial_arn(void **state)
{
	struct fixture *f = *state;
	struct result r;

	get(f, DB_ARN, NULL, NULL, &r);
	assert_value(&r, "{\"password\":\"cur-pw\"}");
	assert_string_equal(r.name, "demo/db-password");

	get(f, ARN_PREFIX "demo/db-password", NULL, NULL, &r);
	assert_value(&r, "{\"password\":\"cur-pw\"}");

	/* Neither a wrong suffix nor a prefix of the partial ARN matches. */
	get(f, ARN_PREFIX "demo/db-password-a1B2c4", NULL, NULL, &r);
	assert_error(&r, PROTO_STATUS_NOT_FOUND, "not found");
	get(f, ARN_PREFIX "demo/db-passwor", NULL, NULL, &r);
	assert_error(&r, PROTO_STATUS_NOT_FOUND, "not found");
	get(f, "demo/db-passwor", NULL, NULL, &r);
	assert_error(&r, PROTO_STATUS_NOT_FOUND, "not found");
}

static void
test_derived_arn(void **state)
{
	struct fixture *f = *state;
	struct result r, r2;
	const char *suffix;
	char partial[256];

	get(f, "demo/api-key", NULL, NULL, &r);
	assert_value(&r, "api-value");
	assert_int_equal(strncmp(r.arn, ARN_PREFIX "demo/api-key-", strlen(ARN_PREFIX "demo/api-key-")), 0);
	suffix = r.arn + strlen(ARN_PREFIX "demo/api-key-");
	assert_int_equal(strlen(suffix), 6);
	assert_int_equal(strspn(suffix, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"), 6);
	/* Stable across reads and releases: clients may keep ARNs. */
	assert_string_equal(r.arn, ARN_PREFIX "demo/api-key-9ZZ0Ow");

	get(f, r.arn, NULL, NULL, &r2);
	assert_value(&r2, "api-value");
	snprintf(partial, sizeof(partial), "%.*s", (int)(strlen(r.arn) - 7), r.arn);
	get(f, partial, NULL, NULL, &r2);
	assert_value(&r2, "api-value");
}

static void
test_full_arn_wins_over_partial(void **state)
{
	struct fixture *f = *state;
	struct result r;

	/* "b-Abc123" is b's partial ARN and a's full ARN; the full one wins, in any order. */
	write_json(f->path, HEAD
	    "{'Name':'b-Abc123','ARN':'" ARN_PREFIX "b-Abc123-Zzz999','Versions':[{'VersionId':'b'," CUR
	    ",'SecretString':'bee'}]},"
	    "{'Name':'b','ARN':'" ARN_PREFIX "b-Abc123','Versions':[{'VersionId':'a'," CUR
	    ",'SecretString':'ay'}]}" TAIL);
	get(f, ARN_PREFIX "b-Abc123", NULL, NULL, &r);
	assert_value(&r, "ay");
	get(f, ARN_PREFIX "b", NULL, NULL, &r);
	assert_value(&r, "ay");
	get(f, "b-Abc123", NULL, NULL, &r);
	assert_value(&r, "bee");
	get(f, ARN_PREFIX "b-Abc123-Zzz999", NULL, NULL, &r);
	assert_value(&r, "bee");
}

static void
test_derived_arn_partition(void **state)
{
	struct fixture *f = *state;
	struct result r;

	write_json(f->path, "{'Region':'cn-north-1','Account':'123456789012','Secrets':["
	    "{'Name':'x','Versions':[{'VersionId':'a'," CUR ",'SecretString':'v'}]}]}");
	get(f, "x", NULL, NULL, &r);
	assert_true(r.ok);
	assert_int_equal(strncmp(r.arn, "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:x-",
	    strlen("arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:x-")), 0);

	/* The partition is sm_id's: this backend used to know only aws-cn and aws-us-gov. */
	write_json(f->path, "{'Region':'us-iso-east-1','Account':'123456789012','Secrets':["
	    "{'Name':'x','Versions':[{'VersionId':'a'," CUR ",'SecretString':'v'}]}]}");
	get(f, "x", NULL, NULL, &r);
	assert_true(r.ok);
	assert_int_equal(strncmp(r.arn, "arn:aws-iso:secretsmanager:us-iso-east-1:123456789012:secret:x-",
	    strlen("arn:aws-iso:secretsmanager:us-iso-east-1:123456789012:secret:x-")), 0);
}

static void
test_get_by_stage(void **state)
{
	struct fixture *f = *state;
	struct result r;

	get(f, "demo/db-password", "AWSPREVIOUS", NULL, &r);
	assert_value(&r, "old-pw");
	assert_string_equal(r.version_id, "v1");
	assert_int_equal(r.created_ms, 1700000000000LL);

	get(f, "demo/db-password", "AWSPENDING", NULL, &r);
	assert_value(&r, "next-pw");
	assert_string_equal(r.version_id, "v3");

	get(f, "demo/db-password", "BLUE", NULL, &r);
	assert_value(&r, "{\"password\":\"cur-pw\"}");

	get(f, "demo/db-password", "AWSCURRENT", NULL, &r);
	assert_string_equal(r.version_id, "v2");
}

static void
test_get_by_version_id(void **state)
{
	struct fixture *f = *state;
	struct result r;

	get(f, "demo/db-password", NULL, "v3", &r);
	assert_value(&r, "next-pw");
	assert_int_equal(r.stage_count, 1);
	assert_string_equal(r.stages[0], "AWSPENDING");

	/* A version without labels is still reachable by its id. */
	get(f, "demo/db-password", NULL, "v0", &r);
	assert_value(&r, "unlabelled-value");
	assert_int_equal(r.stage_count, 0);
	assert_int_equal(r.created_ms, 0);

	get(f, "demo/db-password", "AWSPREVIOUS", "v1", &r);
	assert_value(&r, "old-pw");
}

static void
test_version_and_stage_mismatch(void **state)
{
	struct fixture *f = *state;
	struct result r;

	get(f, "demo/db-password", "AWSCURRENT", "v1", &r);
	assert_error(&r, PROTO_STATUS_NOT_FOUND, "do not match");
	assert_non_null(strstr(r.message, "\"v1\""));
	assert_non_null(strstr(r.message, "\"AWSCURRENT\""));
	assert_null(strstr(r.message, "old-pw"));
}

static void
test_binary(void **state)
{
	struct fixture *f = *state;
	static const uint8_t expected[] = { 0x00, 0x01, 0x02, 0xfd, 0xfe, 0xff, 'H', 'i' };
	struct result r;

	get(f, "demo/tls-key", NULL, NULL, &r);
	assert_true(r.ok);
	assert_true(r.is_binary);
	assert_int_equal(r.len, sizeof(expected));
	assert_memory_equal(r.data, expected, sizeof(expected));
}

static void
test_not_found(void **state)
{
	struct fixture *f = *state;
	struct result r;

	get(f, "demo/nope", NULL, NULL, &r);
	assert_error(&r, PROTO_STATUS_NOT_FOUND, "secret \"demo/nope\" not found");

	get(f, "demo/db-password", "AWSNOPE", NULL, &r);
	assert_error(&r, PROTO_STATUS_NOT_FOUND, "has no version labelled \"AWSNOPE\"");

	get(f, "demo/db-password", NULL, "v9", &r);
	assert_error(&r, PROTO_STATUS_NOT_FOUND, "has no version \"v9\"");

	get(f, "demo/db-password", NULL, "v9", &r);
	assert_null(strstr(r.message, "cur-pw"));

	/* A secret without versions has no AWSCURRENT. */
	get(f, "demo/empty", NULL, NULL, &r);
	assert_error(&r, PROTO_STATUS_NOT_FOUND, "has no version labelled \"AWSCURRENT\"");

	get(f, "", NULL, NULL, &r);
	assert_error(&r, PROTO_STATUS_NOT_FOUND, "not found");
}

static void
test_not_found_message_is_sanitized_and_bounded(void **state)
{
	struct fixture *f = *state;
	struct result r;
	char id[1500];

	memset(id, 'a', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	id[3] = '\n';
	id[4] = '\x1b';
	get(f, id, NULL, NULL, &r);
	assert_error(&r, PROTO_STATUS_NOT_FOUND, "secret \"aaa??aaa");
	assert_non_null(strstr(r.message, "...\" not found"));
	assert_null(strchr(r.message, '\n'));
}

static void
test_deleted(void **state)
{
	struct fixture *f = *state;
	struct result r;

	get(f, "demo/retired", NULL, NULL, &r);
	assert_error(&r, PROTO_STATUS_NOT_FOUND, "secret \"demo/retired\" is scheduled for deletion");
	get(f, "demo/retired", NULL, "r1", &r);
	assert_error(&r, PROTO_STATUS_NOT_FOUND, "scheduled for deletion");

	describe(f, "demo/retired", &r);
	assert_true(r.ok);
	assert_int_equal(r.deleted_ms, 1715000000500LL);
	assert_int_equal(r.created_ms, 0);	/* null counts as absent */
	assert_int_equal(r.version_count, 1);
}

static void
test_describe(void **state)
{
	struct fixture *f = *state;
	struct result r;

	describe(f, "demo/db-password", &r);
	assert_true(r.ok);
	assert_string_equal(r.arn, DB_ARN);
	assert_string_equal(r.name, "demo/db-password");
	assert_true(r.has_description);
	assert_string_equal(r.description, "database user");
	assert_int_equal(r.created_ms, 1700000000000LL);
	assert_int_equal(r.last_changed_ms, 1710000000250LL);
	assert_int_equal(r.deleted_ms, 0);
	/* v0 has no label: DescribeSecret does not list it. */
	assert_int_equal(r.version_count, 3);
	assert_string_equal(r.version_ids[0], "v1");
	assert_string_equal(r.version_stage0[0], "AWSPREVIOUS");
	assert_int_equal(r.version_created[0], 1700000000000LL);
	assert_string_equal(r.version_ids[1], "v2");
	assert_int_equal(r.version_stage_counts[1], 2);
	assert_string_equal(r.version_ids[2], "v3");
	assert_string_equal(r.version_stage0[2], "AWSPENDING");

	describe(f, ARN_PREFIX "demo/db-password", &r);
	assert_true(r.ok);
	assert_string_equal(r.name, "demo/db-password");

	describe(f, "demo/api-key", &r);
	assert_true(r.ok);
	assert_false(r.has_description);
	assert_int_equal(r.version_count, 1);

	describe(f, "demo/empty", &r);
	assert_true(r.ok);
	assert_int_equal(r.version_count, 0);

	describe(f, "demo/nope", &r);
	assert_error(&r, PROTO_STATUS_NOT_FOUND, "secret \"demo/nope\" not found");
}

/* ---- validation ------------------------------------------------------------------------------ */

struct bad_case {
	const char *json;	/* single-quoted */
	const char *reason;	/* expected in the message, double quotes as is */
};

static const struct bad_case bad_cases[] = {
	{ "", "the file is empty" },
	{ " \n ", "the file is empty" },
	{ "{", "line 1, column 2: not valid JSON" },
	{ "{\n'Region':'us-east-1',\n  oops}", "line 3, column 4: not valid JSON" },
	{ HEAD TAIL " x", "not valid JSON" },
	{ "[]", "the top level must be a JSON object" },
	{ "{'Region':'us-east-1','Account':'123456789012','Secrets':[],'Extra':1}",
	  "unknown field \"Extra\" in the top level" },
	{ "{'Account':'123456789012','Secrets':[]}", "Region is missing" },
	{ "{'Region':'US-East-1','Account':'123456789012','Secrets':[]}", "Region must be" },
	/* sm_id's region rule (this backend took any [a-z0-9-]{1,32} before). */
	{ "{'Region':'1us-east-1','Account':'123456789012','Secrets':[]}", "Region must be" },
	{ "{'Region':'us--east-1','Account':'123456789012','Secrets':[]}", "Region must be" },
	{ "{'Region':5,'Account':'123456789012','Secrets':[]}", "Region must be a string" },
	{ "{'Region':'us-east-1','Secrets':[]}", "Account is missing" },
	{ "{'Region':'us-east-1','Account':'1234','Secrets':[]}", "Account must be 12 digits" },
	{ "{'Region':'us-east-1','Account':'123456789012'}", "Secrets is missing" },
	{ "{'Region':'us-east-1','Account':'123456789012','Secrets':{}}", "Secrets must be an array" },
	{ "{'Region':'us-east-1','Region':'us-east-1','Account':'123456789012','Secrets':[]}",
	  "field Region appears twice" },
	{ HEAD "1" TAIL, "Secrets[0]: a secret must be a JSON object" },
	{ HEAD "{}" TAIL, "Secrets[0]: Name is missing" },
	{ HEAD "{'Name':''}" TAIL, "Secrets[0]: Name must be 1 to 512 characters" },
	{ HEAD "{'Name':'a b'}" TAIL, "Secrets[0]: Name must be" },
	{ HEAD "{'Name':'a:b'}" TAIL, "Secrets[0]: Name must be" },
	{ HEAD "{'Name':'a'},{'Name':'b'},{'Name':'a'}" TAIL,
	  "secret \"a\" (Secrets[2]): Name is already used by Secrets[0]" },
	{ HEAD "{'Name':'a','Nmae':'b'}" TAIL, "secret \"a\" (Secrets[0]): unknown field \"Nmae\" in a secret" },
	{ HEAD "{'Name':'a','ARN':'arn:aws:secretsmanager:us-east-1:123456789012:secret:b-abcdef'}" TAIL,
	  "secret \"a\" (Secrets[0]): ARN must be arn:<partition>:secretsmanager:" },
	{ HEAD "{'Name':'a','ARN':'arn:aws:secretsmanager:eu-west-1:123456789012:secret:a-abcdef'}" TAIL,
	  "ARN must be" },
	{ HEAD "{'Name':'a','ARN':'arn:aws:secretsmanager:us-east-1:123456789013:secret:a-abcdef'}" TAIL,
	  "ARN must be" },
	{ HEAD "{'Name':'a','ARN':'arn:aws:secretsmanager:us-east-1:123456789012:secret:a-abcde'}" TAIL,
	  "ARN must be" },
	{ HEAD "{'Name':'a','ARN':'arn:aws:secretsmanager:us-east-1:123456789012:secret:a-abc_ef'}" TAIL,
	  "ARN must be" },
	{ HEAD "{'Name':'a','ARN':'arn:AWS:secretsmanager:us-east-1:123456789012:secret:a-abcdef'}" TAIL,
	  "ARN must be" },
	{ HEAD "{'Name':'a','ARN':'arn:aws:secretsmanager:us-east-1:123456789012:secret:a'}" TAIL,
	  "ARN must be" },
	{ HEAD "{'Name':'a','Description':7}" TAIL, "secret \"a\" (Secrets[0]): Description must be a string" },
	{ HEAD "{'Name':'a','Description':'\xff'}" TAIL, "Description must be valid UTF-8" },
	{ HEAD "{'Name':'a','Description':'\xed\xa0\x80'}" TAIL, "Description must be valid UTF-8" },
	{ HEAD "{'Name':'a','CreatedDate':'yesterday'}" TAIL, "CreatedDate must be a number" },
	{ HEAD "{'Name':'a','LastChangedDate':-1}" TAIL, "LastChangedDate must be a number of seconds" },
	{ HEAD "{'Name':'a','CreatedDate':1e300}" TAIL, "CreatedDate must be a number of seconds" },
	{ HEAD "{'Name':'a','DeletedDate':0}" TAIL, "DeletedDate must be a positive number" },
	{ HEAD "{'Name':'a','Versions':{}}" TAIL, "Versions must be an array" },
	{ HEAD "{'Name':'a','Versions':[[]]}" TAIL,
	  "secret \"a\" (Secrets[0]), Versions[0]: a version must be a JSON object" },
	{ HEAD "{'Name':'a','Versions':[{'SecretString':'s'}]}" TAIL, "Versions[0]: VersionId is missing" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':'a b','SecretString':'s'}]}" TAIL,
	  "Versions[0]: VersionId must be 1 to 64 characters of [A-Za-z0-9_-]" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':"
	  "'12345678901234567890123456789012345678901234567890123456789012345','SecretString':'s'}]}" TAIL,
	  "VersionId must be 1 to 64" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':'v'," CUR ",'SecretString':'s'},"
	  "{'VersionId':'w','SecretString':'s'},{'VersionId':'v','SecretString':'s'}]}" TAIL,
	  "secret \"a\" (Secrets[0]): Versions[0] and Versions[2] have the same VersionId \"v\"" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':'v','SecretString':'s','SecretBinary':'AA=='}]}" TAIL,
	  "Versions[0]: has both SecretString and SecretBinary" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':'v'," CUR "}]}" TAIL,
	  "Versions[0]: has neither SecretString nor SecretBinary" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':'v','SecretString':null}]}" TAIL,
	  "has neither SecretString nor SecretBinary" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':'v','SecretString':12}]}" TAIL,
	  "SecretString must be a string" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':'v','SecretBinary':'!!!!'}]}" TAIL,
	  "SecretBinary is not valid base64" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':'v','SecretBinary':'YQ'}]}" TAIL,
	  "SecretBinary is not valid base64" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':'v','SecretBinary':'YQ==\\n'}]}" TAIL,
	  "SecretBinary is not valid base64" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':'v','SecretBinary':'YQ=='}]}" TAIL,
	  "no version is labelled AWSCURRENT" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':'v','VersionStages':'AWSCURRENT','SecretString':'s'}]}" TAIL,
	  "VersionStages must be an array of strings" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':'v','VersionStages':[1],'SecretString':'s'}]}" TAIL,
	  "VersionStages must be an array of strings" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':'v','VersionStages':['AWSCURRENT',''],'SecretString':'s'}]}" TAIL,
	  "VersionStages[1] must be 1 to 256 printable ASCII characters" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':'v','VersionStages':['AWSCURRENT','X','X'],"
	  "'SecretString':'s'}]}" TAIL, "Versions[0]: staging label \"X\" is listed twice" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':'v'," CUR ",'SecretString':'s'},"
	  "{'VersionId':'w','VersionStages':['AWSCURRENT'],'SecretString':'t'}]}" TAIL,
	  "staging label \"AWSCURRENT\" is on Versions[0] and Versions[1]" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':'v','VersionStages':['AWSCURRENT','1','2','3',"
	  "'4','5','6','7','8','9','10','11','12','13','14','15','16','17','18','19','20'],"
	  "'SecretString':'s'}]}" TAIL, "VersionStages has more than 20 labels" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':'v'," CUR ",'SecretStrng':'s'}]}" TAIL,
	  "Versions[0]: unknown field \"SecretStrng\" in a version" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':'v'," CUR ",'SecretString':'s','CreatedDate':true}]}" TAIL,
	  "Versions[0]: CreatedDate must be a number" },
	{ HEAD "{'Name':'a','Versions':[{'VersionId':'v'," CUR ",'SecretString':'a\\u0000b'}]}" TAIL,
	  "line 1, column 148: \\u0000 in a string is not supported" },
};

static void
expect_load_error(const char *path, const char *reason)
{
	struct event_base *base = event_base_new();
	char err[256] = "";
	struct backend *b;

	assert_non_null(base);
	b = backend_file_new(base, path, err, sizeof(err));
	if (b != NULL)
		fail_msg("loaded, expected: %s", reason);
	if (strstr(err, reason) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, reason);
	event_base_free(base);
}

static void
test_validation_errors(void **state)
{
	struct fixture *f = *state;
	char expected[320], err[256];

	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		char *json = q(bad_cases[i].json);

		write_bytes(f->path, json, strlen(json));
		/* The message names the file as given; the reason follows. */
		snprintf(expected, sizeof(expected), "secrets file %s is invalid: ", f->path);
		expect_load_error(f->path, expected);
		expect_load_error(f->path, bad_cases[i].reason);
		/* The buffer validator says the same. */
		assert_int_equal(backend_file_validate_buffer(json, strlen(json), NULL, err,
		    sizeof(err)), -1);
		if (strstr(err, bad_cases[i].reason) == NULL)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, bad_cases[i].reason);
		free(json);
	}
}

static void
test_validation_never_shows_values(void **state)
{
	struct fixture *f = *state;

	write_json(f->path, HEAD "{'Name':'a','Versions':[{'VersionId':'v','VersionStages':['X','X'],"
	    "'SecretString':'TOPSECRET-1'}]}" TAIL);
	expect_load_error(f->path, "listed twice");
	write_json(f->path, HEAD "{'Name':'a','Versions':[{'VersionId':'v','SecretString':'TOPSECRET-1',"
	    "'Bogus':'x'}]}" TAIL);
	expect_load_error(f->path, "unknown field");
	/* A syntax error after a value names the line, never the text around it. */
	write_json(f->path, HEAD "{'Name':'a','Versions':[{'VersionId':'v','SecretString':'TOPSECRET-1' ]}" TAIL);
	{
		struct event_base *base = event_base_new();
		char err[256];

		assert_null(backend_file_new(base, f->path, err, sizeof(err)));
		assert_null(strstr(err, "TOPSECRET"));
		assert_non_null(strstr(err, "not valid JSON"));
		event_base_free(base);
	}
}

static char *
big_doc(const char *before, size_t fill_len, char fill, const char *after)
{
	size_t lb = strlen(before), la = strlen(after);
	char *doc = malloc(lb + fill_len + la + 1);

	assert_non_null(doc);
	memcpy(doc, before, lb);
	memset(doc + lb, fill, fill_len);
	memcpy(doc + lb + fill_len, after, la + 1);
	for (char *p = doc; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	return doc;
}

static void
test_validation_limits(void **state)
{
	struct fixture *f = *state;
	char err[256], *doc, *list, *p;
	size_t n;

	/* SecretString: 65536 bytes fine, 65537 not. */
	doc = big_doc(HEAD "{'Name':'a','Versions':[{'VersionId':'v'," CUR ",'SecretString':'", 65536, 'x',
	    "'}]}" TAIL);
	assert_int_equal(backend_file_validate_buffer(doc, strlen(doc), &n, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	free(doc);
	doc = big_doc(HEAD "{'Name':'a','Versions':[{'VersionId':'v'," CUR ",'SecretString':'", 65537, 'x',
	    "'}]}" TAIL);
	write_bytes(f->path, doc, strlen(doc));
	expect_load_error(f->path, "SecretString is larger than 65536 bytes");
	free(doc);

	/* SecretBinary: 65536 decoded bytes fine ("AAAA" is 3 bytes), more not. */
	doc = big_doc(HEAD "{'Name':'a','Versions':[{'VersionId':'v'," CUR ",'SecretBinary':'",
	    65535 / 3 * 4, 'A', "AA=='}]}" TAIL);
	assert_int_equal(backend_file_validate_buffer(doc, strlen(doc), NULL, err, sizeof(err)), 0);
	free(doc);
	doc = big_doc(HEAD "{'Name':'a','Versions':[{'VersionId':'v'," CUR ",'SecretBinary':'",
	    65541 / 3 * 4, 'A', "'}]}" TAIL);
	assert_int_equal(backend_file_validate_buffer(doc, strlen(doc), NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "SecretBinary is larger than 65536 bytes"));
	free(doc);
	doc = big_doc(HEAD "{'Name':'a','Versions':[{'VersionId':'v'," CUR ",'SecretBinary':'",
	    65538 / 3 * 4, 'A', "'}]}" TAIL);
	assert_int_equal(backend_file_validate_buffer(doc, strlen(doc), NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "SecretBinary is larger than 65536 bytes"));
	free(doc);
	doc = big_doc(HEAD "{'Name':'a','Versions':[{'VersionId':'v'," CUR ",'SecretBinary':'",
	    65536 / 3 * 4, 'A', "AAA='}]}" TAIL);
	assert_int_equal(backend_file_validate_buffer(doc, strlen(doc), NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "SecretBinary is larger than 65536 bytes"));
	free(doc);

	/* Description: 2048 bytes fine, 2049 not. */
	doc = big_doc(HEAD "{'Name':'a','Description':'", 2048, 'd', "'}" TAIL);
	assert_int_equal(backend_file_validate_buffer(doc, strlen(doc), NULL, err, sizeof(err)), 0);
	free(doc);
	doc = big_doc(HEAD "{'Name':'a','Description':'", 2049, 'd', "'}" TAIL);
	assert_int_equal(backend_file_validate_buffer(doc, strlen(doc), NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "Description must be valid UTF-8 of at most 2048 bytes"));
	free(doc);

	/* 100 versions fine, 101 not. */
	list = malloc(101 * 64 + 256);
	assert_non_null(list);
	p = list + sprintf(list, HEAD "{'Name':'a','Versions':[{'VersionId':'v0'," CUR ",'SecretString':'s'}");
	for (int i = 1; i < 100; i++)
		p += sprintf(p, ",{'VersionId':'v%d','SecretString':'s'}", i);
	strcpy(p, "]}" TAIL);
	doc = q(list);
	assert_int_equal(backend_file_validate_buffer(doc, strlen(doc), NULL, err, sizeof(err)), 0);
	free(doc);
	strcpy(p, ",{'VersionId':'v100','SecretString':'s'}]}" TAIL);
	doc = q(list);
	assert_int_equal(backend_file_validate_buffer(doc, strlen(doc), NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "Versions has more than 100 versions"));
	free(doc);
	free(list);

	/* Name: 512 characters fine, 513 not. */
	doc = big_doc(HEAD "{'Name':'", 512, 'n', "'}" TAIL);
	assert_int_equal(backend_file_validate_buffer(doc, strlen(doc), NULL, err, sizeof(err)), 0);
	free(doc);
	doc = big_doc(HEAD "{'Name':'", 513, 'n', "'}" TAIL);
	assert_int_equal(backend_file_validate_buffer(doc, strlen(doc), NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "Name must be 1 to 512"));
	free(doc);
}

static void
test_validation_file_level(void **state)
{
	struct fixture *f = *state;
	char expected[256], dir[] = "/tmp/smc-test-dir-XXXXXX";
	static const char nul_doc[] = "{\"Region\":\"us-east-1\",\n\"Acc\0unt\":\"1\"}";
	int fd;

	/* Missing file. */
	snprintf(expected, sizeof(expected), "cannot read secrets file %s.missing: No such file", f->path);
	{
		char missing[96];

		snprintf(missing, sizeof(missing), "%s.missing", f->path);
		expect_load_error(missing, expected);
	}
	/* A long path is shortened from the left in messages. */
	{
		char longpath[400], err[256];
		struct backend *b;

		memset(longpath, 'x', sizeof(longpath) - 1);
		for (size_t i = 50; i < sizeof(longpath) - 50; i += 50)
			longpath[i] = '/';	/* no component is over NAME_MAX */
		memcpy(longpath, "/tmp/", 5);
		memcpy(longpath + sizeof(longpath) - 9, "-the-end", 9);
		b = backend_file_new(f->base, longpath, err, sizeof(err));
		assert_null(b);
		assert_non_null(strstr(err, "cannot read secrets file ...xxx"));
		assert_non_null(strstr(err, "xxx-the-end: No such file or directory"));
	}
	/* A directory. */
	assert_non_null(mkdtemp(dir));
	expect_load_error(dir, "not a regular file");
	rmdir(dir);
	/* A NUL byte. */
	write_bytes(f->path, nul_doc, sizeof(nul_doc) - 1);
	expect_load_error(f->path, "line 2, column 5: NUL byte");
	/* Too large (sparse, so cheap). */
	fd = open(f->path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)BACKEND_FILE_MAX_SIZE + 1), 0);
	close(fd);
	expect_load_error(f->path, "larger than 16 MiB");
	/* Exactly the limit is read (and then fails as JSON, being all NULs). */
	fd = open(f->path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)BACKEND_FILE_MAX_SIZE), 0);
	close(fd);
	expect_load_error(f->path, "NUL byte");
	/* A relative path works and is shown as given. */
	{
		char cwd[256], err[256];
		struct backend *b;

		assert_non_null(getcwd(cwd, sizeof(cwd)));
		assert_int_equal(chdir("/tmp"), 0);
		write_json(f->path, test_file_json);
		b = backend_file_new(f->base, f->path + 5, err, sizeof(err));
		assert_non_null(b);
		/* Still readable after leaving the directory. */
		assert_int_equal(chdir("/"), 0);
		{
			struct fixture g = { .base = f->base, .b = b };
			struct result r;

			get(&g, "demo/api-key", NULL, NULL, &r);
			assert_value(&r, "api-value");
		}
		backend_free(b);
		assert_int_equal(chdir(cwd), 0);
	}
	/* Other checks of the argument. */
	{
		char err[256];

		assert_null(backend_file_new(NULL, f->path, err, sizeof(err)));
		assert_null(backend_file_new(f->base, "", err, sizeof(err)));
	}
}

static void
test_example_file_is_valid(void **state)
{
	struct fixture *f = *state;
	char err[256];
	struct backend *b;
	struct result r;

	(void)f;
	/* Run from the repository root, as `make test` does. */
	if (access("conf/example-secrets.json", R_OK) != 0)
		skip();
	b = backend_file_new(f->base, "conf/example-secrets.json", err, sizeof(err));
	if (b == NULL)
		fail_msg("%s", err);
	backend_free(f->b);
	f->b = b;
	get(f, "demo/db-password", "AWSPREVIOUS", NULL, &r);
	assert_true(r.ok);
	get(f, "demo/tls-key", NULL, NULL, &r);
	assert_true(r.ok && r.is_binary);
	get(f, "demo/rotating-token", "AWSPENDING", NULL, &r);
	assert_true(r.ok);
	get(f, "demo/rotating-token", "CANARY", NULL, &r);
	assert_true(r.ok);
	get(f, "demo/retired", NULL, NULL, &r);
	assert_error(&r, PROTO_STATUS_NOT_FOUND, "scheduled for deletion");
}

/* ---- changes on disk --------------------------------------------------------------------------- */

static void
test_file_change_is_seen(void **state)
{
	struct fixture *f = *state;
	struct result r;

	get(f, "demo/api-key", NULL, NULL, &r);
	assert_value(&r, "api-value");
	write_json(f->path, HEAD "{'Name':'demo/api-key','Versions':[{'VersionId':'k2'," CUR
	    ",'SecretString':'rotated-value'}]}" TAIL);
	get(f, "demo/api-key", NULL, NULL, &r);
	assert_value(&r, "rotated-value");
	assert_string_equal(r.version_id, "k2");
	get(f, "demo/db-password", NULL, NULL, &r);
	assert_error(&r, PROTO_STATUS_NOT_FOUND, "not found");
}

/* Captures what the logger writes to stderr during a test. */
struct capture {
	int saved;
	char path[64];
};

static void
capture_start(struct capture *c)
{
	int fd;

	make_temp_path(c->path, sizeof(c->path));
	fd = open(c->path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	c->saved = dup(STDERR_FILENO);
	assert_true(c->saved >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	close(fd);
}

static size_t
capture_count(struct capture *c, const char *needle)
{
	static char text[16384];
	size_t count = 0;
	ssize_t n;
	int fd = open(c->path, O_RDONLY);

	assert_true(fd >= 0);
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	assert_true(n >= 0);
	text[n] = '\0';
	for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
		count++;
	return count;
}

static void
capture_stop(struct capture *c)
{
	assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
	close(c->saved);
	unlink(c->path);
}

static void
test_invalid_then_valid_again(void **state)
{
	struct fixture *f = *state;
	struct capture cap;
	struct result r;
	char msg[256];

	capture_start(&cap);
	write_json(f->path, HEAD "{'Name':'demo/api-key','Versions':[{'VersionId':'k1'}]}" TAIL);
	for (int i = 0; i < 3; i++) {
		get(f, "demo/api-key", NULL, NULL, &r);
		snprintf(msg, sizeof(msg), "secrets file %s is invalid: secret \"demo/api-key\" "
		    "(Secrets[0]), Versions[0]: has neither SecretString nor SecretBinary", f->path);
		assert_error(&r, PROTO_STATUS_UPSTREAM_UNAVAILABLE, msg);
	}
	describe(f, "demo/api-key", &r);
	assert_error(&r, PROTO_STATUS_UPSTREAM_UNAVAILABLE, "is invalid");
	/* Logged once for that state of the file, not per request. */
	assert_int_equal(capture_count(&cap, "is invalid"), 1);

	/* A different broken edit is logged again. */
	write_json(f->path, "{");
	get(f, "demo/api-key", NULL, NULL, &r);
	assert_error(&r, PROTO_STATUS_UPSTREAM_UNAVAILABLE, "line 1, column 2: not valid JSON");
	get(f, "demo/api-key", NULL, NULL, &r);
	assert_int_equal(capture_count(&cap, "is invalid"), 2);

	/* Removed: also unavailable, logged once. */
	assert_int_equal(unlink(f->path), 0);
	get(f, "demo/api-key", NULL, NULL, &r);
	assert_error(&r, PROTO_STATUS_UPSTREAM_UNAVAILABLE, "cannot read secrets file");
	get(f, "demo/api-key", NULL, NULL, &r);
	assert_int_equal(capture_count(&cap, "cannot read secrets file"), 1);

	/* Fixed: served again, and the recovery is logged once. */
	write_json(f->path, test_file_json);
	get(f, "demo/api-key", NULL, NULL, &r);
	assert_value(&r, "api-value");
	get(f, "demo/api-key", NULL, NULL, &r);
	assert_value(&r, "api-value");
	assert_int_equal(capture_count(&cap, "valid again"), 1);

	/* Broken again the same way as before: a new change, so logged again. */
	write_json(f->path, "{");
	get(f, "demo/api-key", NULL, NULL, &r);
	assert_int_equal(capture_count(&cap, "is invalid"), 3);
	capture_stop(&cap);
}

/* ---- asynchrony, counters, freeing ------------------------------------------------------------- */

static void
test_counters(void **state)
{
	struct fixture *f = *state;
	struct capture cap;
	struct result r;

	assert_int_equal(f->b->counters.get_ok, 0);	/* validation at creation is not a call */
	get(f, "demo/api-key", NULL, NULL, &r);
	get(f, "demo/api-key", "AWSPREVIOUS", NULL, &r);
	get(f, "demo/nope", NULL, NULL, &r);
	get(f, "demo/tls-key", NULL, NULL, &r);
	describe(f, "demo/api-key", &r);
	describe(f, "demo/nope", &r);
	describe(f, "demo/retired", &r);
	capture_start(&cap);	/* the broken file is logged; keep the test output clean */
	write_json(f->path, "{");
	get(f, "demo/api-key", NULL, NULL, &r);
	describe(f, "demo/api-key", &r);
	capture_stop(&cap);
	assert_int_equal(f->b->counters.get_ok, 2);
	assert_int_equal(f->b->counters.get_error, 3);
	assert_int_equal(f->b->counters.describe_ok, 2);
	assert_int_equal(f->b->counters.describe_error, 2);
	assert_string_equal(f->b->ops->name, "file");
}

static void
test_callbacks_are_deferred_and_in_order(void **state)
{
	struct fixture *f = *state;
	struct result r[4];
	int order[5] = { 0 };
	struct backend_query query = { .secret_id = "demo/nope" };

	start_get(f, "demo/api-key", NULL, NULL, &r[0]);
	start_get(f, "demo/nope", NULL, NULL, &r[1]);	/* errors are deferred too */
	memset(&r[2], 0, sizeof(r[2]));
	assert_int_equal(backend_describe(f->b, "demo/nope", describe_cb, &r[2]), 0);
	r[2].returned = true;
	start_get(f, "demo/tls-key", NULL, NULL, &r[3]);
	for (int i = 0; i < 4; i++) {
		r[i].order_log = order;
		r[i].order_id = i + 1;
	}
	assert_int_equal(r[0].calls + r[1].calls + r[2].calls + r[3].calls, 0);
	run(f);
	for (int i = 0; i < 4; i++)
		assert_int_equal(r[i].calls, 1);
	for (int i = 0; i < 4; i++)
		assert_int_equal(order[i], i + 1);

	/* Bad arguments schedule nothing. */
	assert_int_equal(backend_get_value(f->b, &query, NULL, NULL), -1);
	query.secret_id = NULL;
	assert_int_equal(backend_get_value(f->b, &query, value_cb, &r[0]), -1);
	assert_int_equal(backend_describe(f->b, NULL, describe_cb, &r[0]), -1);
}

struct chain {
	struct fixture *f;
	struct result inner;
	int outer_calls;
	bool returned;
};

static void
chain_cb(void *arg, const struct backend_value *v, const struct backend_error *error)
{
	struct chain *c = arg;
	struct backend_query query = { .secret_id = "demo/tls-key" };

	assert_true(c->returned);
	assert_non_null(v);
	c->outer_calls++;
	/* A call made from a callback is deferred as well. */
	memset(&c->inner, 0, sizeof(c->inner));
	assert_int_equal(backend_get_value(c->f->b, &query, value_cb, &c->inner), 0);
	assert_int_equal(c->inner.calls, 0);
	c->inner.returned = true;
}

static void
test_call_from_callback(void **state)
{
	struct fixture *f = *state;
	struct chain c = { .f = f };
	struct backend_query query = { .secret_id = "demo/api-key" };

	assert_int_equal(backend_get_value(f->b, &query, chain_cb, &c), 0);
	c.returned = true;
	run(f);
	assert_int_equal(c.outer_calls, 1);
	assert_int_equal(c.inner.calls, 1);
	assert_true(c.inner.ok && c.inner.is_binary);
}

static void
test_free_with_pending_requests(void **state)
{
	struct fixture *f = *state;
	struct result r[4];

	for (int i = 0; i < 3; i++)
		start_get(f, "demo/api-key", NULL, NULL, &r[i]);
	memset(&r[3], 0, sizeof(r[3]));
	assert_int_equal(backend_describe(f->b, "demo/api-key", describe_cb, &r[3]), 0);
	r[3].returned = true;
	backend_free(f->b);
	f->b = NULL;
	run(f);
	for (int i = 0; i < 4; i++)
		assert_int_equal(r[i].calls, 0);
	/* The loop has nothing left: no leaked event keeps it busy. */
	assert_int_equal(event_base_loop(f->base, EVLOOP_NONBLOCK), 1);
}

struct freeing {
	struct fixture *f;
	int calls;
};

static void
freeing_cb(void *arg, const struct backend_value *v, const struct backend_error *error)
{
	struct freeing *fr = arg;

	fr->calls++;
	backend_free(fr->f->b);
	fr->f->b = NULL;
}

static void
test_free_from_callback(void **state)
{
	struct fixture *f = *state;
	struct freeing fr = { .f = f };
	struct backend_query query = { .secret_id = "demo/api-key" };
	struct result later;

	assert_int_equal(backend_get_value(f->b, &query, freeing_cb, &fr), 0);
	start_get(f, "demo/api-key", NULL, NULL, &later);
	run(f);
	assert_int_equal(fr.calls, 1);
	assert_int_equal(later.calls, 0);
}

/* ---- json_secure ------------------------------------------------------------------------------- */

struct wipe_watch {
	size_t blocks;
	size_t bytes;
	size_t dirty;		/* blocks handed to free() with a non-zero byte */
};

static void
wipe_hook(const void *block, size_t len, void *arg)
{
	struct wipe_watch *w = arg;
	const uint8_t *p = block;

	w->blocks++;
	w->bytes += len;
	for (size_t i = 0; i < len; i++) {
		if (p[i] != 0) {
			w->dirty++;
			break;
		}
	}
}

static void
test_json_secure_free_zeroes(void **state)
{
	struct wipe_watch w = { 0 };
	cJSON *root;
	char *p;

	(void)state;
	json_secure_init();
	json_secure_set_free_hook(wipe_hook, &w);
	p = cJSON_malloc(40);
	assert_non_null(p);
	memset(p, 'S', 40);
	cJSON_free(p);
	assert_int_equal(w.blocks, 1);
	assert_true(w.bytes >= 40);
	assert_int_equal(w.dirty, 0);

	cJSON_free(NULL);
	assert_int_equal(w.blocks, 1);

	/* A parsed tree: object, key, string value at least. */
	w = (struct wipe_watch){ 0 };
	root = cJSON_Parse("{\"key\":\"MARKER-0123456789\"}");
	assert_non_null(root);
	cJSON_Delete(root);
	assert_true(w.blocks >= 3);
	assert_int_equal(w.dirty, 0);

	/* Printing uses malloc+copy, not realloc, and wipes the drafts too. */
	w = (struct wipe_watch){ 0 };
	root = cJSON_CreateString("MARKER-0123456789");
	p = cJSON_PrintUnformatted(root);
	assert_string_equal(p, "\"MARKER-0123456789\"");
	cJSON_free(p);
	cJSON_Delete(root);
	assert_int_equal(w.dirty, 0);
	json_secure_set_free_hook(NULL, NULL);
}

static void
test_get_wipes_json(void **state)
{
	struct fixture *f = *state;
	struct wipe_watch w = { 0 };
	struct result r;

	json_secure_set_free_hook(wipe_hook, &w);
	/* A new state of the file: parsed once, its values sealed, their JSON strings wiped. */
	write_json(f->path, test_file_json);
	get(f, "demo/db-password", NULL, NULL, &r);
	assert_value(&r, "{\"password\":\"cur-pw\"}");
	assert_true(w.blocks >= 8);		/* the eight values' strings, at least */
	assert_int_equal(w.dirty, 0);
	/* Another change drops the old index: every cJSON block of it is wiped. */
	w = (struct wipe_watch){ 0 };
	write_json(f->path, HEAD "{'Name':'x','Versions':[{'VersionId':'a'," CUR ",'SecretString':'y'}]}" TAIL);
	get(f, "x", NULL, NULL, &r);
	json_secure_set_free_hook(NULL, NULL);
	assert_value(&r, "y");
	assert_true(w.blocks > 20);
	assert_int_equal(w.dirty, 0);
}

/* Misses are answered from the index: the file is parsed once per change, not per request. */
static void
test_parsed_once_per_change(void **state)
{
	struct fixture *f = *state;
	struct wipe_watch w = { 0 };
	struct result r;

	json_secure_set_free_hook(wipe_hook, &w);
	for (int i = 0; i < 50; i++) {
		get(f, "demo/nope", NULL, NULL, &r);
		assert_error(&r, PROTO_STATUS_NOT_FOUND, "not found");
		get(f, "demo/api-key", NULL, NULL, &r);
		assert_value(&r, "api-value");
	}
	/* No parse, so no cJSON block was freed. */
	assert_int_equal(w.blocks, 0);
	json_secure_set_free_hook(NULL, NULL);
}

/*
 * A same-size rewrite in place with the mtime put back is still seen (the
 * ctime tells). (A rewrite within one tick of the file-time clock, which
 * nothing in the identity tells, is caught by the second look a second after
 * a racy read; that one cannot be staged reliably from here.)
 */
static void
test_inplace_rewrite_seen(void **state)
{
	struct fixture *f = *state;
	struct result r;
	char *a = q(HEAD "{'Name':'s','Versions':[{'VersionId':'a'," CUR ",'SecretString':'AAAA'}]}" TAIL);
	char *b = q(HEAD "{'Name':'s','Versions':[{'VersionId':'a'," CUR ",'SecretString':'BBBB'}]}" TAIL);
	struct timespec t0, t1;
	struct stat st;
	int fd;

	write_bytes(f->path, a, strlen(a));
	get(f, "s", NULL, NULL, &r);
	assert_value(&r, "AAAA");
	/* In place, same size, and the times put back: only content differs. */
	assert_int_equal(stat(f->path, &st), 0);
	fd = open(f->path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, b, strlen(b), 0), (ssize_t)strlen(b));
	close(fd);
	{
		struct timespec times[2] = { st.st_atim, st.st_mtim };

		assert_int_equal(utimensat(AT_FDCWD, f->path, times, 0), 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		get(f, "s", NULL, NULL, &r);
		assert_true(r.ok);
		if (r.len == 4 && memcmp(r.data, "BBBB", 4) == 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (t1.tv_sec - t0.tv_sec > 3)
			fail_msg("an in-place rewrite was not seen within 3 s");
		usleep(20000);
	}
	free(a);
	free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_by_name_is_awscurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parsed_once_per_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inplace_rewrite_seen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_by_full_and_partial_arn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_derived_arn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_derived_arn_partition, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_arn_wins_over_partial, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_by_stage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_by_version_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_and_stage_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_found_message_is_sanitized_and_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_describe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validation_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validation_never_shows_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validation_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validation_file_level, setup, teardown),
		cmocka_unit_test_setup_teardown(test_example_file_is_valid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_change_is_seen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_then_valid_again, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callbacks_are_deferred_and_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_from_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_with_pending_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_from_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_secure_free_zeroes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_wipes_json, setup, teardown),
	};

	log_set_level(LOG_INFO);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
