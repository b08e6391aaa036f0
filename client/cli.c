/*
 * cli: the `smcache` command, a thin shell over libsmcache.
 *
 *   smcache [--socket PATH] [--timeout MS] get SECRET_ID
 *           [--version-stage S] [--version-id V] [--json | --output text] [--field KEY]
 *   smcache [...] describe SECRET_ID [--json]
 *   smcache [...] ping | stats | health [--json]
 *
 * `get` writes the value's bytes exactly as stored (no newline added), so
 * `$(smcache get x)` and `smcache get x > file` give back what was stored.
 * --json prints byte for byte what `aws secretsmanager get-secret-value` /
 * `describe-secret` print (cli_json.h). Exit status: 0 ok, 2 usage, 3 not
 * found, 4 access denied, 5 backend unavailable, 6 agent unreachable, 7 not
 * ready (health), 1 anything else (see smcache(1)).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "cli_exec.h"
#include "cli_json.h"
#include "cli_util.h"
#include "smcache.h"

struct cli_args {
	const char *socket_path;	/* NULL: the library's default */
	int timeout_ms;			/* 0: the library's default */
	const char *version_stage;
	const char *version_id;
	int json;
	int text;			/* --output text: the value and a newline */
	const char *field;		/* --field KEY */
	int refresh;
	const char *command;
	const char *secret_id;
};

static const char usage_text[] =
"usage: smcache [--socket PATH] [--timeout MS] COMMAND [ARGS]\n"
"\n"
"commands:\n"
"  get SECRET_ID [--version-stage STAGE] [--version-id ID] [--refresh]\n"
"      [--json | --output text] [--field KEY]\n"
"                       print a secret's value (exact bytes, no newline added)\n"
"  refresh SECRET_ID [--version-stage STAGE]\n"
"                       make the agent ask the upstream now; print the version\n"
"  describe SECRET_ID [--json]\n"
"                       print a secret's metadata and versions\n"
"  ping                 check that the agent answers; print its version\n"
"  stats                print the agent's counters, one \"name value\" per line\n"
"  health [--json]      print the agent's liveness and readiness; exit 0 only\n"
"                       when ready (7 when not)\n"
"\n"
"options:\n"
"  -s, --socket PATH    the agent's socket (default: $SMCACHE_SOCKET, else your\n"
"                       own agent's path, then /run/smcache/smcached.sock)\n"
"  -t, --timeout MS     give up after MS milliseconds (default 10000)\n"
"      --version-stage STAGE   the version with this staging label (get)\n"
"      --version-id ID          the version with this id (get)\n"
"      --refresh        ask the upstream now, not the agent's cache (get;\n"
"                       rate-limited by the agent)\n"
"      --json, --output json\n"
"                       print the JSON the AWS CLI prints, byte for byte\n"
"      --output text    print the value followed by a newline (a binary\n"
"                       value in base64), like the AWS CLI's --query\n"
"                       SecretString --output text\n"
"      --field KEY      print the field KEY of a JSON secret (a string as\n"
"                       is, anything else as JSON)\n"
"  -h, --help           print this help\n"
"  -V, --version        print the version\n"
"\n"
"exit status: 0 ok, 2 usage, 3 not found, 4 access denied, 5 backend\n"
"unavailable, 6 agent unreachable, 7 not ready (health), 1 other errors.\n";

static int
fail(const smc_error *err)
{
	cli_message("%s", err->message[0] != '\0' ? err->message : smc_strerror(err->code));
	return cli_exit_code(err->code);
}

/* ---- output helpers ------------------------------------------------------------------- */

/* Writes all of buf to fd; the value path avoids stdio so no copy of a
 * secret lingers in a stdio buffer. */
static int
write_all(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Metadata comes from the agent: keep control characters (C0, DEL, and C1
 * as UTF-8, which some terminals obey) off the terminal. */
static void
put_safe(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p != '\0'; p++) {
		if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			fputc('?', out);
			p++;
		} else
			fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, out);
	}
}

/* A date as the AWS CLI prints it (Python's isoformat() in local time):
 * 2024-01-02T03:04:05.123000+00:00, the fraction only when not zero. */
static int
format_date(int64_t ms, char *buf, size_t len)
{
	struct tm tm;
	time_t t = (time_t)(ms / 1000);
	int frac = (int)(ms % 1000), n;
	long off;
	size_t used;

	if (ms < 0 || localtime_r(&t, &tm) == NULL)
		return -1;
	if ((used = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm)) == 0)
		return -1;
	if (frac != 0) {
		n = snprintf(buf + used, len - used, ".%03d000", frac);
		if (n < 0 || (size_t)n >= len - used)
			return -1;
		used += (size_t)n;
	}
	off = tm.tm_gmtoff;
	n = snprintf(buf + used, len - used, "%c%02ld:%02ld", off < 0 ? '-' : '+',
	    labs(off) / 3600, labs(off) % 3600 / 60);
	if (n < 0 || (size_t)n >= len - used)
		return -1;
	return 0;
}

/* cJSON allocates through these while it holds a secret: wipe on free. */
static void
wipe_free(void *p)
{
	if (p == NULL)
		return;
	sodium_memzero(p, malloc_usable_size(p));
	free(p);
}

static void
json_date(struct cjw *w, const char *key, int64_t ms)
{
	char date[64];

	if (ms == 0)
		return;
	if (format_date(ms, date, sizeof(date)) == -1) {
		w->failed = true;
		return;
	}
	cjw_key(w, key);
	cjw_cstring(w, date);
}

/* Writes the finished text (and wipes it with w). */
static int
json_print(struct cjw *w)
{
	const char *text;
	size_t len;

	if (cjw_finish(w, &text, &len) == -1) {
		cli_message("out of memory");
		return -1;
	}
	if (write_all(STDOUT_FILENO, text, len) == -1) {
		cli_message("write error: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* base64 of a binary value, in guarded memory (sodium_free wipes it). */
static char *
base64_of(const smc_secret *s, size_t *b64len)
{
	size_t len = smc_secret_value_len(s);
	size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *b64;

	if ((b64 = sodium_malloc(cap)) == NULL)
		return NULL;
	sodium_bin2base64(b64, cap, smc_secret_value(s), len, sodium_base64_VARIANT_ORIGINAL);
	*b64len = strlen(b64);
	return b64;
}

/* GetSecretValue's output members in the order of the AWS API model. */
static int
secret_json(const smc_secret *s, struct cjw *w)
{
	size_t i, b64len;
	char *b64;

	cjw_object_begin(w);
	cjw_key(w, "ARN");
	cjw_cstring(w, smc_secret_arn(s));
	cjw_key(w, "Name");
	cjw_cstring(w, smc_secret_name(s));
	cjw_key(w, "VersionId");
	cjw_cstring(w, smc_secret_version_id(s));
	if (smc_secret_is_binary(s)) {
		if ((b64 = base64_of(s, &b64len)) == NULL)
			return -1;
		cjw_key(w, "SecretBinary");
		cjw_string(w, b64, b64len);
		sodium_free(b64);
	} else {
		cjw_key(w, "SecretString");
		cjw_string(w, (const char *)smc_secret_value(s), smc_secret_value_len(s));
	}
	cjw_key(w, "VersionStages");
	cjw_array_begin(w);
	for (i = 0; i < smc_secret_stage_count(s); i++)
		cjw_cstring(w, smc_secret_stage(s, i));
	cjw_array_end(w);
	json_date(w, "CreatedDate", smc_secret_created_ms(s));
	cjw_object_end(w);
	return w->failed ? -1 : 0;
}

/* Writes buf and, with --output text, a newline. */
static int
put_value(const struct cli_args *a, const void *buf, size_t len)
{
	if (write_all(STDOUT_FILENO, buf, len) == -1 ||
	    (a->text && write_all(STDOUT_FILENO, "\n", 1) == -1)) {
		cli_message("cannot write the value: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* --field KEY: one member of a SecretString holding a JSON object. */
static int
put_field(const struct cli_args *a, const smc_secret *s)
{
	cJSON *doc = NULL, *item;
	char *text = NULL;
	int rc = 1;

	if (smc_secret_is_binary(s) ||
	    (doc = cJSON_ParseWithLength((const char *)smc_secret_value(s),
	    smc_secret_value_len(s))) == NULL || !cJSON_IsObject(doc)) {
		cli_message("--field: the value of %s is not a JSON object", a->secret_id);
		goto out;
	}
	if ((item = cJSON_GetObjectItemCaseSensitive(doc, a->field)) == NULL) {
		cli_message("--field: %s has no field \"%s\"", a->secret_id, a->field);
		rc = EXIT_NOT_FOUND;
		goto out;
	}
	if (cJSON_IsString(item))
		rc = put_value(a, item->valuestring, strlen(item->valuestring)) == 0 ? 0 : 1;
	else if ((text = cJSON_PrintUnformatted(item)) == NULL)
		cli_message("out of memory");
	else
		rc = put_value(a, text, strlen(text)) == 0 ? 0 : 1;
out:
	cJSON_free(text);	/* wipe_free */
	cJSON_Delete(doc);
	return rc;
}

static int
cmd_get(smc_client *c, const struct cli_args *a)
{
	smc_get_options opts = { a->version_stage, a->version_id, a->refresh };
	smc_secret *s = NULL;
	smc_error err;
	struct cjw w;
	char *b64;
	size_t b64len;
	int rc = 1;

	cjw_init(&w);
	if (smc_get(c, a->secret_id, &opts, &s, &err) == -1)
		return fail(&err);
	if (strcmp(a->command, "refresh") == 0) {
		/* Report what is current now; the value itself is not printed. */
		printf("%s %s", smc_secret_name(s), smc_secret_version_id(s));
		for (size_t i = 0; i < smc_secret_stage_count(s); i++)
			printf("%s%s", i == 0 ? " " : ",", smc_secret_stage(s, i));
		printf("\n");
		rc = 0;
		goto out;
	}
	if (smc_secret_is_stale(s))
		cli_message("warning: %s was served from cache past its refresh time "
		    "(the backend is unreachable)", a->secret_id);
	if (a->field != NULL) {
		rc = put_field(a, s);
	} else if (a->json) {
		if (secret_json(s, &w) == 0 && json_print(&w) == 0)
			rc = 0;
		else if (w.failed)
			cli_message("out of memory");
	} else if (a->text && smc_secret_is_binary(s)) {
		/* As `--query SecretBinary --output text`: base64. */
		if ((b64 = base64_of(s, &b64len)) == NULL) {
			cli_message("out of memory");
			goto out;
		}
		rc = put_value(a, b64, b64len) == 0 ? 0 : 1;
		sodium_free(b64);
	} else
		rc = put_value(a, smc_secret_value(s), smc_secret_value_len(s)) == 0 ? 0 : 1;
out:
	cjw_free(&w);
	smc_secret_free(s);	/* wipes */
	return rc;
}

/* DescribeSecret's output members the agent knows, in the AWS API model's order. */
static int
description_json(const smc_description *d, struct cjw *w)
{
	size_t i, j;

	cjw_object_begin(w);
	cjw_key(w, "ARN");
	cjw_cstring(w, smc_description_arn(d));
	cjw_key(w, "Name");
	cjw_cstring(w, smc_description_name(d));
	if (smc_description_text(d) != NULL) {
		cjw_key(w, "Description");
		cjw_cstring(w, smc_description_text(d));
	}
	json_date(w, "LastChangedDate", smc_description_last_changed_ms(d));
	json_date(w, "DeletedDate", smc_description_deleted_ms(d));
	cjw_key(w, "VersionIdsToStages");
	cjw_object_begin(w);
	for (i = 0; i < smc_description_version_count(d); i++) {
		cjw_key(w, smc_description_version_id(d, i));
		cjw_array_begin(w);
		for (j = 0; j < smc_description_version_stage_count(d, i); j++)
			cjw_cstring(w, smc_description_version_stage(d, i, j));
		cjw_array_end(w);
	}
	cjw_object_end(w);
	json_date(w, "CreatedDate", smc_description_created_ms(d));
	cjw_object_end(w);
	return w->failed ? -1 : 0;
}

static void
put_date_line(const char *label, int64_t ms)
{
	char date[64];

	if (ms == 0 || format_date(ms, date, sizeof(date)) == -1)
		return;
	printf("%-13s %s\n", label, date);
}

static void
description_text(const smc_description *d)
{
	char date[64];
	size_t i, j;

	printf("%-13s ", "Name:");
	put_safe(stdout, smc_description_name(d));
	printf("\n%-13s ", "ARN:");
	put_safe(stdout, smc_description_arn(d));
	putchar('\n');
	if (smc_description_text(d) != NULL) {
		printf("%-13s ", "Description:");
		put_safe(stdout, smc_description_text(d));
		putchar('\n');
	}
	put_date_line("Created:", smc_description_created_ms(d));
	put_date_line("Last changed:", smc_description_last_changed_ms(d));
	put_date_line("Deleted:", smc_description_deleted_ms(d));
	printf("Versions:     %zu\n", smc_description_version_count(d));
	for (i = 0; i < smc_description_version_count(d); i++) {
		printf("  ");
		put_safe(stdout, smc_description_version_id(d, i));
		for (j = 0; j < smc_description_version_stage_count(d, i); j++) {
			fputs(j == 0 ? "  " : ",", stdout);
			put_safe(stdout, smc_description_version_stage(d, i, j));
		}
		if (smc_description_version_created_ms(d, i) != 0 &&
		    format_date(smc_description_version_created_ms(d, i), date, sizeof(date)) == 0)
			printf("  (created %s)", date);
		putchar('\n');
	}
}

static int
cmd_describe(smc_client *c, const struct cli_args *a)
{
	smc_description *d = NULL;
	smc_error err;
	struct cjw w;
	int rc = 1;

	cjw_init(&w);
	if (smc_describe(c, a->secret_id, &d, &err) == -1)
		return fail(&err);
	if (smc_description_is_stale(d))
		cli_message("warning: %s was served from cache past its refresh time "
		    "(the backend is unreachable)", a->secret_id);
	if (a->json) {
		if (description_json(d, &w) == 0 && json_print(&w) == 0)
			rc = 0;
		else if (w.failed)
			cli_message("out of memory");
	} else {
		description_text(d);
		rc = 0;
	}
	cjw_free(&w);
	smc_description_free(d);
	return rc;
}

static int
cmd_ping(smc_client *c)
{
	char version[128];
	smc_error err;

	if (smc_ping(c, version, sizeof(version), &err) == -1)
		return fail(&err);
	put_safe(stdout, version[0] != '\0' ? version : "ok");
	putchar('\n');
	return 0;
}

static int
cmd_stats(smc_client *c, const struct cli_args *a)
{
	smc_stat_list *st;
	smc_error err;
	struct cjw w;
	size_t i;
	int rc = 0;

	if (smc_stats(c, &st, &err) == -1)
		return fail(&err);
	if (a->json) {
		/* {"name": value, ...} in the agent's order: the numbers /metrics exposes. */
		cjw_init(&w);
		cjw_object_begin(&w);
		for (i = 0; i < smc_stat_list_count(st); i++) {
			cjw_key(&w, smc_stat_list_name(st, i));
			cjw_uint(&w, smc_stat_list_value(st, i));
		}
		cjw_object_end(&w);
		if (json_print(&w) == -1)
			rc = 1;
		cjw_free(&w);
		smc_stat_list_free(st);
		return rc;
	}
	for (i = 0; i < smc_stat_list_count(st); i++) {
		put_safe(stdout, smc_stat_list_name(st, i));
		printf(" %llu\n", (unsigned long long)smc_stat_list_value(st, i));
	}
	smc_stat_list_free(st);
	return 0;
}

static const char *
credentials_name(smc_credentials c)
{
	switch (c) {
	case SMC_CREDENTIALS_NOT_NEEDED:	return "not-needed";
	case SMC_CREDENTIALS_UNKNOWN:		return "unknown";
	case SMC_CREDENTIALS_OK:		return "ok";
	case SMC_CREDENTIALS_UNAVAILABLE:	return "unavailable";
	case SMC_CREDENTIALS_REJECTED:		return "rejected";
	}
	return "unknown";
}

static void
health_json(const smc_health_info *h, struct cjw *w)
{
	const char *p, *end;

	cjw_object_begin(w);
	cjw_key(w, "Live");
	cjw_bool(w, h->live);
	cjw_key(w, "Ready");
	cjw_bool(w, h->ready);
	cjw_key(w, "Reasons");
	cjw_array_begin(w);
	for (p = h->reasons; *p != '\0'; p = *end != '\0' ? end + 2 : end) {
		if ((end = strstr(p, "; ")) == NULL)
			end = p + strlen(p);
		cjw_string(w, p, (size_t)(end - p));
	}
	cjw_array_end(w);
	cjw_key(w, "Credentials");
	cjw_cstring(w, credentials_name(h->credentials));
	json_date(w, "StartedDate", h->started_ms);
	json_date(w, "LastUpstreamSuccessDate", h->last_success_ms);
	json_date(w, "LastUpstreamFailureDate", h->last_failure_ms);
	if (h->last_failure_ms != 0) {
		cjw_key(w, "LastUpstreamFailure");
		cjw_cstring(w, smc_strerror(h->last_failure));
	}
	cjw_key(w, "BreakerOpen");
	cjw_bool(w, h->breaker_open);
	cjw_key(w, "PrefetchPending");
	cjw_uint(w, h->prefetch_pending);
	cjw_key(w, "CacheSecrets");
	cjw_uint(w, h->cache_secrets);
	cjw_key(w, "CacheVersions");
	cjw_uint(w, h->cache_versions);
	cjw_object_end(w);
}

static int
cmd_health(smc_client *c, const struct cli_args *a)
{
	smc_health_info h;
	smc_error err;
	struct cjw w;
	int rc;

	if (smc_health(c, &h, &err) == -1)
		return fail(&err);
	rc = h.ready ? 0 : EXIT_NOT_READY;
	if (a->json) {
		cjw_init(&w);
		health_json(&h, &w);
		if (json_print(&w) == -1)
			rc = 1;
		cjw_free(&w);
		return rc;
	}
	printf("%-13s yes\n%-13s %s\n", "live:", "ready:", h.ready ? "yes" : "no");
	if (!h.ready) {
		printf("%-13s ", "reasons:");
		put_safe(stdout, h.reasons);
		putchar('\n');
	}
	printf("%-13s %s\n", "credentials:", credentials_name(h.credentials));
	put_date_line("started:", h.started_ms);
	put_date_line("last success:", h.last_success_ms);
	if (h.last_failure_ms != 0) {
		put_date_line("last failure:", h.last_failure_ms);
		printf("%-13s (%s)\n", "", smc_strerror(h.last_failure));
	}
	printf("%-13s %s\n", "breaker:", h.breaker_open ? "open" : "closed");
	printf("%-13s %s\n", "prefetch:", h.prefetch_pending == 0 ? "done" : "pending");
	printf("%-13s %llu secrets, %llu versions\n", "cache:",
	    (unsigned long long)h.cache_secrets, (unsigned long long)h.cache_versions);
	return rc;
}

/* ---- arguments ------------------------------------------------------------------------ */

static int
parse_timeout(const char *text, int *ms)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v <= 0 || v > INT_MAX)
		return -1;
	*ms = (int)v;
	return 0;
}

/* Returns -1 to go on, or an exit status (help, version, usage errors). */
static int
parse_args(int argc, char **argv, struct cli_args *a)
{
	enum { OPT_STAGE = 256, OPT_VERSION_ID, OPT_JSON, OPT_REFRESH, OPT_OUTPUT, OPT_FIELD };
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "version-stage", required_argument, NULL, OPT_STAGE },
		{ "version-id", required_argument, NULL, OPT_VERSION_ID },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "refresh", no_argument, NULL, OPT_REFRESH },
		{ "output", required_argument, NULL, OPT_OUTPUT },
		{ "field", required_argument, NULL, OPT_FIELD },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, nargs;

	memset(a, 0, sizeof(*a));
	opterr = 0;
	/* Options may come before or after the command, as with the AWS CLI. */
	while ((ch = getopt_long(argc, argv, ":s:t:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (optarg[0] == '\0')
				return cli_usage(NULL, "--socket needs a path");
			a->socket_path = optarg;
			break;
		case 't':
			if (parse_timeout(optarg, &a->timeout_ms) == -1)
				return cli_usage(NULL, "--timeout takes a positive number of "
				    "milliseconds, not '%s'", optarg);
			break;
		case OPT_STAGE:
			a->version_stage = optarg;
			break;
		case OPT_VERSION_ID:
			a->version_id = optarg;
			break;
		case OPT_JSON:
			a->json = 1;
			break;
		case OPT_REFRESH:
			a->refresh = 1;
			break;
		case OPT_OUTPUT:
			if (strcmp(optarg, "json") == 0)
				a->json = 1;
			else if (strcmp(optarg, "text") == 0)
				a->text = 1;
			else
				return cli_usage(NULL, "--output takes json or text, not '%s'",
				    optarg);
			break;
		case OPT_FIELD:
			if (optarg[0] == '\0')
				return cli_usage(NULL, "--field needs a key");
			a->field = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("smcache %s\n", smc_version());
			return 0;
		case ':':
			return cli_usage(NULL, "option '%s' needs a value", argv[optind - 1]);
		default:
			return cli_usage(NULL, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return cli_usage(NULL, "no command given");
	a->command = argv[optind++];
	nargs = argc - optind;

	if (strcmp(a->command, "refresh") == 0)
		a->refresh = 1;
	if (strcmp(a->command, "get") == 0 || strcmp(a->command, "describe") == 0 ||
	    strcmp(a->command, "refresh") == 0) {
		if (nargs != 1)
			return cli_usage(NULL, "%s takes one SECRET_ID", a->command);
		a->secret_id = argv[optind];
		if (a->secret_id[0] == '\0')
			return cli_usage(NULL, "the secret id is empty");
	} else if (strcmp(a->command, "ping") == 0 || strcmp(a->command, "stats") == 0 ||
	    strcmp(a->command, "health") == 0) {
		if (nargs != 0)
			return cli_usage(NULL, "%s takes no arguments", a->command);
	} else
		return cli_usage(NULL, "unknown command '%s'", a->command);

	if (a->version_id != NULL && strcmp(a->command, "get") != 0)
		return cli_usage(NULL, "--version-id goes with get only");
	if (a->version_stage != NULL && strcmp(a->command, "get") != 0 &&
	    strcmp(a->command, "refresh") != 0)
		return cli_usage(NULL, "--version-stage goes with get and refresh only");
	if (a->refresh && strcmp(a->command, "get") != 0 && strcmp(a->command, "refresh") != 0)
		return cli_usage(NULL, "--refresh goes with get only");
	if ((a->version_stage != NULL && a->version_stage[0] == '\0') ||
	    (a->version_id != NULL && a->version_id[0] == '\0'))
		return cli_usage(NULL, "--version-stage and --version-id need a non-empty value");
	if (a->json && strcmp(a->command, "get") != 0 && strcmp(a->command, "describe") != 0 &&
	    strcmp(a->command, "health") != 0 && strcmp(a->command, "stats") != 0)
		return cli_usage(NULL, "--json goes with get, describe, health and stats only");
	if ((a->text || a->field != NULL) && strcmp(a->command, "get") != 0)
		return cli_usage(NULL, "--output text and --field go with get only");
	if (a->json && (a->text || a->field != NULL))
		return cli_usage(NULL, "--json goes with neither --output text nor --field");
	return -1;
}

int
main(int argc, char **argv)
{
	struct cli_args a;
	smc_client *c;
	smc_error err;
	int rc;

	if ((rc = cli_exec_dispatch(argc, argv)) != -1)
		return rc;	/* `smcache exec` (cli_exec.c) */
	if ((rc = parse_args(argc, argv, &a)) != -1)
		return rc;
	if (sodium_init() < 0) {
		cli_message("libsodium failed to initialise");
		return 1;
	}
	cJSON_InitHooks(&(cJSON_Hooks){ .malloc_fn = malloc, .free_fn = wipe_free });

	if ((c = smc_connect(a.socket_path, a.timeout_ms, &err)) == NULL)
		return fail(&err);
	if (strcmp(a.command, "get") == 0 || strcmp(a.command, "refresh") == 0)
		rc = cmd_get(c, &a);
	else if (strcmp(a.command, "describe") == 0)
		rc = cmd_describe(c, &a);
	else if (strcmp(a.command, "ping") == 0)
		rc = cmd_ping(c);
	else if (strcmp(a.command, "health") == 0)
		rc = cmd_health(c, &a);
	else
		rc = cmd_stats(c, &a);
	smc_close(c);
	if (fflush(stdout) == EOF && rc == 0) {
		cli_message("write error: %s", strerror(errno));
		rc = 1;
	}
	return rc;
}
