/*
 * test_config: the agent configuration: defaults, every key's good and bad
 * values (messages name the line and the key), file structure errors, the
 * example conf/smcached.conf, value syntax edge cases. Run from the repo root.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

#define EXAMPLE_CONF "conf/smcached.conf"

/* ---- helpers --------------------------------------------------------------------------- */

static void
assert_zeroed(const struct config *cfg)
{
	static const struct config zero;

	assert_memory_equal(cfg, &zero, sizeof(zero));
}

static void
load_ok(struct config *cfg, const char *text)
{
	char err[CONFIG_ERR_SIZE] = "";

	if (config_load_string(cfg, text, "t.conf", err, sizeof(err)) != 0)
		fail_msg("unexpected error for <<%s>>: %s", text, err);
}

/*
 * Loading text fails and the message starts with prefix ("t.conf:N: ...")
 * and contains every further string given (NULL-terminated).
 */
static void
expect_err(const char *text, const char *prefix, ...)
{
	char err[CONFIG_ERR_SIZE] = "";
	struct config cfg;
	const char *want;
	va_list ap;

	if (config_load_string(&cfg, text, "t.conf", err, sizeof(err)) != -1)
		fail_msg("<<%s>> loaded, expected an error starting %s", text, prefix);
	assert_zeroed(&cfg);
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("<<%s>>: message '%s' does not start with '%s'", text, err, prefix);
	va_start(ap, prefix);
	while ((want = va_arg(ap, const char *)) != NULL) {
		if (strstr(err, want) == NULL)
			fail_msg("<<%s>>: message '%s' lacks '%s'", text, err, want);
	}
	va_end(ap);
	/* One line, no control bytes. */
	for (const char *c = err; *c != '\0'; c++)
		assert_true((unsigned char)*c >= 0x20 && *c != 0x7f);
}

/* The describe() text of cfg, malloc'ed. */
static char *
describe(const struct config *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	config_describe(cfg, f);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static char *
read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long len;

	if (f == NULL)
		fail_msg("%s: %s (run from the repository root)", path, strerror(errno));
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	assert_true(len > 0);
	rewind(f);
	buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

/* Lines config_help() prints: one per key. */
static size_t
help_lines(void)
{
	char *buf = NULL;
	size_t len = 0, lines = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	config_help(f);
	assert_int_equal(fclose(f), 0);
	for (char *c = buf; *c != '\0'; c++)
		lines += *c == '\n';
	free(buf);
	return lines;
}

/* ---- defaults -------------------------------------------------------------------------- */

static const char default_description[] =
    "agent.socket = (default)\n"
    "agent.socket_mode = 0660\n"
    "agent.socket_user = (the agent's user)\n"
    "agent.socket_group = (the agent's group)\n"
    "agent.socket_dir_shared = false\n"
    "agent.user = (not changed)\n"
    "agent.group = (the user's group)\n"
    "agent.max_connections = 1024\n"
    "agent.idle_timeout = 60\n"
    "agent.max_output = 4M\n"
    "agent.max_output_per_uid = 32M\n"
    "agent.max_output_total = 128M\n"
    "agent.log_level = info\n"
    "agent.log_format = text\n"
    "backend.type = file\n"
    "file.path = conf/example-secrets.json\n"
    "aws.region = (from the environment)\n"
    "aws.endpoint = (default)\n"
    "aws.profile = (AWS_PROFILE, else default)\n"
    "aws.fips = false\n"
    "aws.ca_bundle = (the system's)\n"
    "aws.connect_timeout = 2\n"
    "aws.request_timeout = 5\n"
    "aws.upstream_timeout = 8\n"
    "aws.max_retries = 3\n"
    "aws.max_connections = 32\n"
    "cache.ttl = 300\n"
    "cache.negative_ttl = 10\n"
    "cache.max_entries = 10000\n"
    "cache.max_bytes = 64M\n"
    "cache.mlock = best-effort\n"
    "cache.pending_ttl = 10\n"
    "cache.refresh_ahead = 80\n"
    "cache.refresh_jitter = 10\n"
    "cache.refresh_idle = 900\n"
    "cache.max_stale = 3600\n"
    "cache.max_refreshes = 16\n"
    "cache.min_refresh_interval = 1\n"
    "cache.body_linger_ms = 0\n"
    "cache.prefetch = (none)\n"
    "cache.prefetch_jitter = 3\n"
    "cache.prefetch_timeout = 30\n"
    "cache.batch_refresh = yes\n"
    "access.allow = (none)\n"
    "audit.level = denied\n"
    "audit.file = (stderr)\n"
    "limits.connections_per_uid = 256\n"
    "limits.requests_per_second_per_uid = 0\n"
    "limits.burst_per_uid = 20000\n"
    "limits.refreshes_per_minute_per_uid = 60\n"
    "limits.upstream_per_second_per_uid = 20\n"
    "limits.upstream_burst_per_uid = 200\n"
    "http.listen = (none: off)\n"
    "http.allow_non_loopback = no\n"
    "http.socket = (none)\n"
    "http.path_prefix = /v1/\n"
    "http.ssrf_headers = X-Aws-Parameters-Secrets-Token,X-Vault-Token\n"
    "http.ssrf_env_variables = AWS_TOKEN,AWS_SESSION_TOKEN,AWS_CONTAINER_AUTHORIZATION_TOKEN\n"
    "http.allowed_hosts = (none)\n"
    "http.metrics_listen = (none)\n"
    "http.metrics_secret_labels = no\n"
    "http.max_connections = 800\n"
    "http.max_header_size = 16K\n"
    "http.max_uri_size = 8K\n"
    "http.idle_timeout = 30\n"
    "endpoint.listen = (none: off)\n"
    "endpoint.allow_non_loopback = no\n"
    "endpoint.auth = peer\n"
    "endpoint.keys_file = (none)\n"
    "endpoint.allowed_hosts = (none)\n"
    "endpoint.forward = no\n"
    "access.allow_write = (none: no writes)\n";

static void
check_defaults(const struct config *cfg)
{
	assert_null(cfg->socket_path);
	assert_int_equal(cfg->max_connections, 1024);
	assert_int_equal(cfg->idle_timeout, 60);
	assert_int_equal(cfg->max_output, 4 * 1024 * 1024);
	assert_int_equal(cfg->log_level, LOG_INFO);
	assert_int_equal(cfg->backend, CONFIG_BACKEND_FILE);
	assert_string_equal(cfg->file_path, "conf/example-secrets.json");
	assert_null(cfg->aws_region);
	assert_null(cfg->aws_endpoint);
	assert_int_equal(cfg->cache_ttl, 300);
}

static void
test_defaults(void **state)
{
	struct config cfg;
	char err[CONFIG_ERR_SIZE];
	char *text;

	assert_int_equal(config_defaults(&cfg), 0);
	check_defaults(&cfg);
	text = describe(&cfg);
	assert_string_equal(text, default_description);
	free(text);
	config_free(&cfg);
	assert_zeroed(&cfg);
	config_free(&cfg);	/* twice is fine */

	/* No file at all, an empty file, only comments and blank lines. */
	assert_int_equal(config_load(&cfg, NULL, err, sizeof(err)), 0);
	check_defaults(&cfg);
	config_free(&cfg);
	load_ok(&cfg, "");
	check_defaults(&cfg);
	config_free(&cfg);
	load_ok(&cfg, "\n\n; comment\n# comment\n   \n\t# indented comment\n[agent]\n[cache]\n");
	check_defaults(&cfg);
	config_free(&cfg);
}

/* ---- good values ----------------------------------------------------------------------- */

static void
test_all_keys(void **state)
{
	struct config cfg;
	char *text;

	load_ok(&cfg,
	    "[agent]\n"
	    "socket = /run/smcache/agent.sock\n"
	    "socket_mode = 600\n"
	    "socket_user = root\n"
	    "socket_group = 1234\n"
	    "user = smcache\n"
	    "group = _smc.grp-1$\n"
	    "max_connections = 65536\n"
	    "idle_timeout = 2h\n"
	    "max_output = 1G\n"
	    "log_level = debug\n"
	    "log_format = json\n"
	    "[backend]\n"
	    "type = aws\n"
	    "[file]\n"
	    "path = /etc/smcache/secrets.json\n"
	    "[aws]\n"
	    "region = eu-central-1\n"
	    "endpoint = http://127.0.0.1:4566\n"
	    "[cache]\n"
	    "ttl = 5m\n");
	assert_string_equal(cfg.socket_path, "/run/smcache/agent.sock");
	assert_int_equal(cfg.socket_mode, 0600);
	assert_string_equal(cfg.socket_user, "root");
	assert_string_equal(cfg.socket_group, "1234");
	assert_string_equal(cfg.user, "smcache");
	assert_string_equal(cfg.group, "_smc.grp-1$");
	assert_int_equal(cfg.max_connections, 65536);
	assert_int_equal(cfg.idle_timeout, 7200);
	assert_int_equal(cfg.max_output, 1024 * 1024 * 1024);
	assert_int_equal(cfg.log_level, LOG_DEBUG);
	assert_int_equal(cfg.backend, CONFIG_BACKEND_AWS);
	assert_string_equal(cfg.file_path, "/etc/smcache/secrets.json");
	assert_string_equal(cfg.aws_region, "eu-central-1");
	assert_string_equal(cfg.aws_endpoint, "http://127.0.0.1:4566");
	assert_int_equal(cfg.cache_ttl, 300);
	text = describe(&cfg);
	assert_string_equal(text,
	    "agent.socket = /run/smcache/agent.sock\n"
	    "agent.socket_mode = 0600\n"
	    "agent.socket_user = root\n"
	    "agent.socket_group = 1234\n"
	    "agent.socket_dir_shared = false\n"
	    "agent.user = smcache\n"
	    "agent.group = _smc.grp-1$\n"
	    "agent.max_connections = 65536\n"
	    "agent.idle_timeout = 7200\n"
	    "agent.max_output = 1G\n"
	    "agent.max_output_per_uid = 32M\n"
	    "agent.max_output_total = 128M\n"
	    "agent.log_level = debug\n"
	    "agent.log_format = json\n"
	    "backend.type = aws\n"
	    "file.path = /etc/smcache/secrets.json\n"
	    "aws.region = eu-central-1\n"
	    "aws.endpoint = http://127.0.0.1:4566\n"
	    "aws.profile = (AWS_PROFILE, else default)\n"
	    "aws.fips = false\n"
	    "aws.ca_bundle = (the system's)\n"
	    "aws.connect_timeout = 2\n"
	    "aws.request_timeout = 5\n"
	    "aws.upstream_timeout = 8\n"
	    "aws.max_retries = 3\n"
	    "aws.max_connections = 32\n"
	    "cache.ttl = 300\n"
	    "cache.negative_ttl = 10\n"
	    "cache.max_entries = 10000\n"
	    "cache.max_bytes = 64M\n"
	    "cache.mlock = best-effort\n"
	    "cache.pending_ttl = 10\n"
	    "cache.refresh_ahead = 80\n"
	    "cache.refresh_jitter = 10\n"
	    "cache.refresh_idle = 900\n"
	    "cache.max_stale = 3600\n"
	    "cache.max_refreshes = 16\n"
	    "cache.min_refresh_interval = 1\n"
	    "cache.body_linger_ms = 0\n"
	    "cache.prefetch = (none)\n"
	    "cache.prefetch_jitter = 3\n"
	    "cache.prefetch_timeout = 30\n"
	    "cache.batch_refresh = yes\n"
	    "access.allow = (none)\n"
	    "audit.level = denied\n"
	    "audit.file = (stderr)\n"
	    "limits.connections_per_uid = 256\n"
	    "limits.requests_per_second_per_uid = 0\n"
	    "limits.burst_per_uid = 20000\n"
	    "limits.refreshes_per_minute_per_uid = 60\n"
	    "limits.upstream_per_second_per_uid = 20\n"
	    "limits.upstream_burst_per_uid = 200\n"
	    "http.listen = (none: off)\n"
	    "http.allow_non_loopback = no\n"
	    "http.socket = (none)\n"
	    "http.path_prefix = /v1/\n"
	    "http.ssrf_headers = X-Aws-Parameters-Secrets-Token,X-Vault-Token\n"
	    "http.ssrf_env_variables = AWS_TOKEN,AWS_SESSION_TOKEN,AWS_CONTAINER_AUTHORIZATION_TOKEN\n"
	    "http.allowed_hosts = (none)\n"
	    "http.metrics_listen = (none)\n"
	    "http.metrics_secret_labels = no\n"
	    "http.max_connections = 800\n"
	    "http.max_header_size = 16K\n"
	    "http.max_uri_size = 8K\n"
	    "http.idle_timeout = 30\n"
	    "endpoint.listen = (none: off)\n"
	    "endpoint.allow_non_loopback = no\n"
	    "endpoint.auth = peer\n"
	    "endpoint.keys_file = (none)\n"
	    "endpoint.allowed_hosts = (none)\n"
	    "endpoint.forward = no\n"
	    "access.allow_write = (none: no writes)\n");
	free(text);
	config_free(&cfg);

	/* describe() output is itself loadable back to the same values. */
	load_ok(&cfg, "[agent]\nmax_output = 262144\n");
	text = describe(&cfg);
	assert_non_null(strstr(text, "agent.max_output = 256K\n"));
	free(text);
	assert_int_equal(cfg.max_output, 262144);
	config_free(&cfg);
}

struct good {
	const char *text;
	size_t offset;		/* of an unsigned int or size_t field */
	int is_size;
	unsigned long long want;
};

static void
test_good_numbers(void **state)
{
	static const struct good goods[] = {
		{ "[agent]\nmax_connections = 1\n", offsetof(struct config, max_connections), 0, 1 },
		{ "[agent]\nmax_connections = 007\n", offsetof(struct config, max_connections), 0, 7 },
		{ "[agent]\nidle_timeout = 1\n", offsetof(struct config, idle_timeout), 0, 1 },
		{ "[agent]\nidle_timeout = 1s\n", offsetof(struct config, idle_timeout), 0, 1 },
		{ "[agent]\nidle_timeout = 90s\n", offsetof(struct config, idle_timeout), 0, 90 },
		{ "[agent]\nidle_timeout = 86400\n", offsetof(struct config, idle_timeout), 0, 86400 },
		{ "[agent]\nidle_timeout = 24h\n", offsetof(struct config, idle_timeout), 0, 86400 },
		{ "[agent]\nidle_timeout = 1440m\n", offsetof(struct config, idle_timeout), 0, 86400 },
		{ "[agent]\nmax_output = 256K\n", offsetof(struct config, max_output), 1, 262144 },
		{ "[agent]\nmax_output = 256k\n", offsetof(struct config, max_output), 1, 262144 },
		{ "[agent]\nmax_output = 1048576\n", offsetof(struct config, max_output), 1, 1048576 },
		{ "[agent]\nmax_output = 16m\n", offsetof(struct config, max_output), 1, 16 << 20 },
		{ "[agent]\nmax_output = 1024M\n", offsetof(struct config, max_output), 1, 1 << 30 },
		{ "[agent]\nmax_output = 1g\n", offsetof(struct config, max_output), 1, 1 << 30 },
		{ "[cache]\nttl = 1\n", offsetof(struct config, cache_ttl), 0, 1 },
		{ "[cache]\nttl = 86400s\n", offsetof(struct config, cache_ttl), 0, 86400 },
		{ "[cache]\nttl = 1h\n", offsetof(struct config, cache_ttl), 0, 3600 },
		/* Blanks around values are inih's to strip. */
		{ "[cache]\nttl =  5 \n", offsetof(struct config, cache_ttl), 0, 5 },
		{ "[cache]\nttl=\t6\t\n", offsetof(struct config, cache_ttl), 0, 6 },
		/* An inline comment needs a blank before ';'. */
		{ "[cache]\nttl = 7 ; seven seconds\n", offsetof(struct config, cache_ttl), 0, 7 },
		/* Indented keys are keys, not continuation lines. */
		{ "[cache]\n    ttl = 8\n", offsetof(struct config, cache_ttl), 0, 8 },
		{ "  [cache]\n\tttl = 9\n", offsetof(struct config, cache_ttl), 0, 9 },
		/* CRLF, no final newline, a byte order mark. */
		{ "[cache]\r\nttl = 10\r\n", offsetof(struct config, cache_ttl), 0, 10 },
		{ "[cache]\nttl = 11", offsetof(struct config, cache_ttl), 0, 11 },
		{ "\xef\xbb\xbf[cache]\nttl = 12\n", offsetof(struct config, cache_ttl), 0, 12 },
		/* inih's "name: value" form. */
		{ "[cache]\nttl: 13\n", offsetof(struct config, cache_ttl), 0, 13 },
		/* A section may be opened again if its keys do not repeat. */
		{ "[cache]\n[agent]\n[cache]\nttl = 14\n", offsetof(struct config, cache_ttl), 0, 14 },
	};
	struct config cfg;
	size_t i;

	for (i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		unsigned long long got;

		load_ok(&cfg, goods[i].text);
		if (goods[i].is_size)
			got = *(size_t *)(void *)((char *)&cfg + goods[i].offset);
		else
			got = *(unsigned int *)(void *)((char *)&cfg + goods[i].offset);
		if (got != goods[i].want)
			fail_msg("<<%s>>: got %llu, want %llu", goods[i].text, got, goods[i].want);
		config_free(&cfg);
	}
}

static void
test_good_strings(void **state)
{
	struct config cfg;
	char text[256], path[108];

	load_ok(&cfg, "[agent]\nlog_level = error\n");
	assert_int_equal(cfg.log_level, LOG_ERROR);
	config_free(&cfg);
	load_ok(&cfg, "[agent]\nlog_level = warn\n");
	assert_int_equal(cfg.log_level, LOG_WARN);
	config_free(&cfg);
	load_ok(&cfg, "[backend]\ntype = file\n[file]\npath = secrets.json\n");
	assert_int_equal(cfg.backend, CONFIG_BACKEND_FILE);
	assert_string_equal(cfg.file_path, "secrets.json");
	config_free(&cfg);

	/* The longest socket path that fits sun_path (107 bytes + NUL). */
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	snprintf(text, sizeof(text), "[agent]\nsocket = %s\n", path);
	load_ok(&cfg, text);
	assert_string_equal(cfg.socket_path, path);
	config_free(&cfg);

	/* aws without a region: the environment supplies it later. */
	load_ok(&cfg, "[backend]\ntype = aws\n");
	assert_int_equal(cfg.backend, CONFIG_BACKEND_AWS);
	assert_null(cfg.aws_region);
	config_free(&cfg);
	load_ok(&cfg, "[backend]\ntype = aws\n[aws]\nregion = us-gov-west-1\n"
	    "endpoint = https://sm.example.com/x\n");
	assert_string_equal(cfg.aws_region, "us-gov-west-1");
	assert_string_equal(cfg.aws_endpoint, "https://sm.example.com/x");
	config_free(&cfg);
	/* Regions follow sm_id's rule, up to 63 characters (this key stopped at 32
	 * before the rule had one home). */
	load_ok(&cfg, "[backend]\ntype = aws\n[aws]\nregion = "
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
	assert_int_equal(strlen(cfg.aws_region), 63);
	config_free(&cfg);

	/* ';' without a blank before it and '#' after a value are part of the value. */
	load_ok(&cfg, "[file]\npath = a;b#c\n");
	assert_string_equal(cfg.file_path, "a;b#c");
	config_free(&cfg);
}

/* ---- bad values ------------------------------------------------------------------------ */

static void
test_bad_socket(void **state)
{
	char text[300], path[109];

	expect_err("[agent]\nsocket = run/x.sock\n", "t.conf:2: [agent] socket: ",
	    "'run/x.sock' is not an absolute path", NULL);
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';	/* 108 bytes: no room for the NUL */
	snprintf(text, sizeof(text), "[agent]\n\nsocket = %s\n", path);
	expect_err(text, "t.conf:3: [agent] socket: ", "too long", "108", NULL);
	expect_err("[agent]\nsocket =\n", "t.conf:2: [agent] socket: ", "empty value", NULL);
	expect_err("[agent]\nsocket = ; just a comment\n", "t.conf:2: [agent] socket: ",
	    "empty value", NULL);
	expect_err("[agent]\nsocket = \"/run/x.sock\"\n", "t.conf:2: [agent] socket: ", "quote",
	    NULL);
	expect_err("[agent]\nsocket = /run/\x1b[31mx\n", "t.conf:2: [agent] socket: ",
	    "control character", NULL);
}

/* [agent] socket_mode, socket_user, socket_group, user, group. */
static void
test_socket_and_user_keys(void **state)
{
	struct config cfg;

	load_ok(&cfg, "[agent]\nsocket_mode = 0\nuser = nobody\ngroup = 65534\n");
	assert_int_equal(cfg.socket_mode, 0);
	assert_string_equal(cfg.user, "nobody");
	assert_string_equal(cfg.group, "65534");
	config_free(&cfg);
	load_ok(&cfg, "[agent]\nsocket_mode = 0777\nsocket_user = a.b_c-d\n");
	assert_int_equal(cfg.socket_mode, 0777);
	assert_string_equal(cfg.socket_user, "a.b_c-d");
	config_free(&cfg);
	load_ok(&cfg, "[agent]\nsocket_mode = 640\n");
	assert_int_equal(cfg.socket_mode, 0640);
	config_free(&cfg);

	expect_err("[agent]\nsocket_mode = 0668\n", "t.conf:2: [agent] socket_mode: ",
	    "'0668' is not an octal file mode (like 0660), allowed 0000..0777", NULL);
	expect_err("[agent]\nsocket_mode = 1777\n", "t.conf:2: [agent] socket_mode: ",
	    "out of range, allowed 0000..0777", NULL);
	expect_err("[agent]\nsocket_mode = 00660\n", "t.conf:2: [agent] socket_mode: ",
	    "is not an octal file mode", NULL);
	expect_err("[agent]\nsocket_mode = 0o660\n", "t.conf:2: [agent] socket_mode: ",
	    "is not an octal file mode", NULL);
	expect_err("[agent]\nsocket_mode = -660\n", "t.conf:2: [agent] socket_mode: ",
	    "is not an octal file mode", NULL);
	expect_err("[agent]\nuser = -root\n", "t.conf:2: [agent] user: ",
	    "'-root' is not a user or group name or id", NULL);
	expect_err("[agent]\ngroup = a b\n", "t.conf:2: [agent] group: ",
	    "is not a user or group name or id", NULL);
	expect_err("[agent]\nsocket_user = a/b\n", "t.conf:2: [agent] socket_user: ",
	    "is not a user or group name or id", NULL);
	expect_err("[agent]\nsocket_group = $\n", "t.conf:2: [agent] socket_group: ",
	    "is not a user or group name or id", NULL);
	expect_err("[agent]\nsocket_group = abcdefghijabcdefghijabcdefghijabc\n",
	    "t.conf:2: [agent] socket_group: ", "is not a user or group name or id", NULL);
	expect_err("[agent]\nuser =\n", "t.conf:2: [agent] user: ", "empty value", NULL);
}

static void
test_bad_counts(void **state)
{
	expect_err("[agent]\nmax_connections = 0\n", "t.conf:2: [agent] max_connections: ",
	    "'0' is out of range, allowed 1..65536", NULL);
	expect_err("[agent]\nmax_connections = 65537\n", "t.conf:2: [agent] max_connections: ",
	    "'65537' is out of range, allowed 1..65536", NULL);
	expect_err("[agent]\nmax_connections = abc\n", "t.conf:2: [agent] max_connections: ",
	    "'abc' is not a number, allowed 1..65536", NULL);
	expect_err("[agent]\nmax_connections = -1\n", "t.conf:2:", "max_connections",
	    "is not a number", NULL);
	expect_err("[agent]\nmax_connections = 1.5\n", "t.conf:2:", "max_connections",
	    "is not a number", NULL);
	expect_err("[agent]\nmax_connections = 1k\n", "t.conf:2:", "max_connections",
	    "is not a number", NULL);
	expect_err("[agent]\nmax_connections = 99999999999999999999\n", "t.conf:2:",
	    "max_connections", "out of range", NULL);
	expect_err("[agent]\nmax_connections = 0x10\n", "t.conf:2:", "max_connections",
	    "is not a number", NULL);
}

static void
test_bad_durations(void **state)
{
	char err[CONFIG_ERR_SIZE];
	struct config cfg;

	/* The exact message for the documented example. */
	assert_int_equal(config_load_string(&cfg, "[agent]\n[cache]\n\nttl = abc\n",
	    "smcached.conf", err, sizeof(err)), -1);
	assert_string_equal(err, "smcached.conf:4: [cache] ttl: 'abc' is not a duration"
	    " (expected seconds, or a number with s/m/h), allowed 1s..86400s");

	expect_err("[cache]\nttl = 0\n", "t.conf:2: [cache] ttl: ",
	    "'0' is out of range, allowed 1s..86400s", NULL);
	expect_err("[cache]\nttl = 0s\n", "t.conf:2: [cache] ttl: ", "out of range", NULL);
	expect_err("[cache]\nttl = 86401\n", "t.conf:2: [cache] ttl: ", "out of range", NULL);
	expect_err("[cache]\nttl = 25h\n", "t.conf:2: [cache] ttl: ", "out of range", NULL);
	expect_err("[cache]\nttl = 99999999999999999999\n", "t.conf:2: [cache] ttl: ",
	    "out of range", NULL);
	expect_err("[cache]\nttl = 9999999999999999999h\n", "t.conf:2: [cache] ttl: ",
	    "out of range", NULL);
	expect_err("[cache]\nttl = -5\n", "t.conf:2: [cache] ttl: ", "is not a duration", NULL);
	expect_err("[cache]\nttl = 5x\n", "t.conf:2: [cache] ttl: ", "'5x' is not a duration",
	    NULL);
	expect_err("[cache]\nttl = 5 m\n", "t.conf:2: [cache] ttl: ", "is not a duration", NULL);
	expect_err("[cache]\nttl = 5M\n", "t.conf:2: [cache] ttl: ", "is not a duration", NULL);
	expect_err("[cache]\nttl = 5ms\n", "t.conf:2: [cache] ttl: ", "is not a duration", NULL);
	expect_err("[cache]\nttl = 1m30s\n", "t.conf:2: [cache] ttl: ", "is not a duration", NULL);
	expect_err("[cache]\nttl = m\n", "t.conf:2: [cache] ttl: ", "is not a duration", NULL);
	expect_err("[cache]\nttl = 300 # five minutes\n", "t.conf:2: [cache] ttl: ",
	    "is not a duration", NULL);
	expect_err("[cache]\nttl =\n", "t.conf:2: [cache] ttl: ", "empty value", NULL);

	expect_err("[agent]\nidle_timeout = 0\n", "t.conf:2: [agent] idle_timeout: ",
	    "'0' is out of range, allowed 1s..86400s", NULL);
	expect_err("[agent]\nidle_timeout = 1d\n", "t.conf:2: [agent] idle_timeout: ",
	    "is not a duration", NULL);
	expect_err("[agent]\nidle_timeout = 86401s\n", "t.conf:2: [agent] idle_timeout: ",
	    "out of range", NULL);
}

static void
test_bad_sizes(void **state)
{
	expect_err("[agent]\nmax_output = 255K\n", "t.conf:2: [agent] max_output: ",
	    "'255K' is out of range, allowed 256K..1G", NULL);
	expect_err("[agent]\nmax_output = 262143\n", "t.conf:2: [agent] max_output: ",
	    "out of range", NULL);
	expect_err("[agent]\nmax_output = 0\n", "t.conf:2: [agent] max_output: ",
	    "out of range", NULL);
	expect_err("[agent]\nmax_output = 2G\n", "t.conf:2: [agent] max_output: ",
	    "out of range", NULL);
	expect_err("[agent]\nmax_output = 1025M\n", "t.conf:2: [agent] max_output: ",
	    "out of range", NULL);
	expect_err("[agent]\nmax_output = 4MB\n", "t.conf:2: [agent] max_output: ",
	    "'4MB' is not a size (expected bytes, or a number with K/M/G), allowed 256K..1G",
	    NULL);
	expect_err("[agent]\nmax_output = 1T\n", "t.conf:2: [agent] max_output: ",
	    "is not a size", NULL);
	expect_err("[agent]\nmax_output = 99999999999G\n", "t.conf:2: [agent] max_output: ",
	    "out of range", NULL);
	expect_err("[agent]\nmax_output = four\n", "t.conf:2: [agent] max_output: ",
	    "is not a size", NULL);
}

static void
test_bad_enums(void **state)
{
	expect_err("[agent]\nlog_level = verbose\n", "t.conf:2: [agent] log_level: ",
	    "'verbose' is not a log level (expected error, warn, info or debug)", NULL);
	expect_err("[agent]\nlog_level = 3\n", "t.conf:2: [agent] log_level: ",
	    "is not a log level", NULL);
	expect_err("[backend]\ntype = s3\n", "t.conf:2: [backend] type: ",
	    "'s3' is not one of: file, aws", NULL);
	expect_err("[backend]\ntype = FILE\n", "t.conf:2: [backend] type: ",
	    "'FILE' is not one of", NULL);
	expect_err("[backend]\ntype =\n", "t.conf:2: [backend] type: ", "empty value", NULL);
	expect_err("[file]\npath =\n", "t.conf:2: [file] path: ", "empty value", NULL);
	expect_err("[file]\npath = 'secrets.json'\n", "t.conf:2: [file] path: ", "quote", NULL);
}

/* [aws] keys with the file backend are an error naming the first of them. */
static void
test_aws_keys_need_aws_backend(void **state)
{
	expect_err("[agent]\nlog_level = info\n[aws]\n\nendpoint = http://127.0.0.1:1\n"
	    "region = us-east-1\n",
	    "t.conf:5: [aws] endpoint is set but [backend] type is file", "type = aws", NULL);
	expect_err("[aws]\nregion = us-east-1\n[backend]\ntype = file\n",
	    "t.conf:2: [aws] region is set but [backend] type is file", NULL);
	expect_err("[aws]\nmax_retries = 2\n", "t.conf:2: [aws] max_retries is set", NULL);
}

static void
test_bad_aws(void **state)
{
	static const char *const regions[] = {
		"US-EAST-1", "us_east_1", "us-east-", "-us-east-1", "us--east-1", "1us-east",
		"us-east-1.", "us east 1",
		/* 64 characters: one more than sm_id's limit */
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	static const char *const endpoints[] = {
		"ftp://example.com", "secretsmanager.us-east-1.amazonaws.com", "http://",
		"https:///path", "HTTPS://example.com", "http://exa mple.com", "http:/x",
	};
	char text[200];
	size_t i;

	for (i = 0; i < sizeof(regions) / sizeof(regions[0]); i++) {
		snprintf(text, sizeof(text), "[aws]\nregion = %s\n", regions[i]);
		expect_err(text, "t.conf:2: [aws] region: ", "is not a region name", NULL);
	}
	for (i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++) {
		snprintf(text, sizeof(text), "[aws]\n\nendpoint = %s\n", endpoints[i]);
		expect_err(text, "t.conf:3: [aws] endpoint: ", NULL);
	}
	expect_err("[aws]\nendpoint = ftp://x\n", "t.conf:2:",
	    "must start with http:// or https://", NULL);
	expect_err("[aws]\nendpoint = http://a b\n", "t.conf:2:", "contains a space", NULL);
	expect_err("[aws]\nregion =\n", "t.conf:2: [aws] region: ", "empty value", NULL);
}

/* ---- structure ------------------------------------------------------------------------- */

static void
test_unknown_names(void **state)
{
	expect_err("[agent]\n\n[cache]\ntll = 5\n",
	    "t.conf:4: unknown key 'tll' in section [cache] (did you mean 'ttl'?)", NULL);
	expect_err("[cache]\nTTL = 5\n", "t.conf:2: unknown key 'TTL' in section [cache]",
	    "did you mean 'ttl'", NULL);
	expect_err("[cache]\nbogus_key = 5\n", "t.conf:2: unknown key 'bogus_key' in section [cache]",
	    NULL);
	expect_err("[agent]\nttl = 5\n", "t.conf:2: unknown key 'ttl' in section [agent]",
	    "belongs in section [cache]", NULL);
	/* An unknown section is reported on its header line, with or without keys. */
	expect_err("# x\n\n[agnet]\nsocket = /x\n", "t.conf:3: unknown section [agnet]",
	    "did you mean [agent]", NULL);
	expect_err("[agent]\n[nothing]\n", "t.conf:2: unknown section [nothing]", NULL);
	expect_err("[Agent]\n", "t.conf:1: unknown section [Agent]", "did you mean [agent]", NULL);
	expect_err("[ agent ]\n", "t.conf:1: unknown section [ agent ]", NULL);
	expect_err("[]\nsocket = /x\n", "t.conf:1: unknown section []", NULL);
	expect_err("socket = /x\n[agent]\n",
	    "t.conf:1: key 'socket' outside any section ('socket' belongs in section [agent])",
	    NULL);
	expect_err("\n\nbogus = 1\n", "t.conf:3: key 'bogus' outside any section", NULL);
}

static void
test_duplicates(void **state)
{
	expect_err("[cache]\nttl = 5\n\nttl = 6\n",
	    "t.conf:4: duplicate key 'ttl' in section [cache] (first set on line 2)", NULL);
	/* Also across a reopened section, and for an equal value. */
	expect_err("[cache]\nttl = 5\n[agent]\n[cache]\nttl = 5\n",
	    "t.conf:5: duplicate key 'ttl' in section [cache] (first set on line 2)", NULL);
	expect_err("[file]\npath = a\npath = a\n", "t.conf:3: duplicate key 'path'", NULL);
}

static void
test_syntax(void **state)
{
	char text[400];
	struct config cfg;

	expect_err("[agent]\nthis is not valid\n", "t.conf:2: cannot parse line", NULL);
	/* The first problem wins, whichever kind it is. */
	expect_err("[agent]\ngarbage\n[cache]\nttl = abc\n", "t.conf:2: cannot parse line", NULL);
	expect_err("[cache]\nttl = abc\ngarbage\n", "t.conf:2: [cache] ttl:", NULL);
	expect_err("[cache]\nttl = 5\nttl = 6\n[bogus]\n", "t.conf:3: duplicate key", NULL);
	expect_err("[agent\nsocket = /x\n", "t.conf:1: section header without a closing ']'",
	    NULL);
	expect_err("[agent] socket = /x\n", "t.conf:1: unexpected text after [agent]", NULL);
	expect_err("[agent]\n= /x\n", "t.conf:2: missing key name", NULL);
	/* No multi-line values: an indented line is a line of its own. */
	expect_err("[file]\npath = a\n  b\n", "t.conf:3: cannot parse line", NULL);
	expect_err("[file]\npath = a\n  ttl = 5\n", "t.conf:3: unknown key 'ttl' in section [file]",
	    NULL);
	/* A header with a trailing comment is fine. */
	load_ok(&cfg, "[cache] ; the cache\nttl = 3\n[agent] # the agent\n");
	assert_int_equal(cfg.cache_ttl, 3);
	config_free(&cfg);

	/* Long lines are refused, not split into two lines (which could smuggle a key). */
	memset(text, 0, sizeof(text));
	strcpy(text, "[file]\npath = /");
	memset(text + strlen(text), 'a', 192);	/* 200 characters */
	strcat(text, "\n");
	expect_err(text, "t.conf:2: line is too long (at most 199 characters)", NULL);
	memset(text, 0, sizeof(text));
	strcpy(text, "[cache]\n; ");
	memset(text + strlen(text), 'a', 250);
	strcat(text, " ttl = 1\n");
	/* ... except comments, whose tail is comment too. */
	load_ok(&cfg, text);
	assert_int_equal(cfg.cache_ttl, 300);
	config_free(&cfg);
	/* Exactly 199 characters is fine. */
	memset(text, 0, sizeof(text));
	strcpy(text, "[file]\npath = ");
	memset(text + strlen(text), 'b', 199 - strlen("path = "));
	strcat(text, "\n");
	load_ok(&cfg, text);
	assert_int_equal(strlen(cfg.file_path), 199 - strlen("path = "));
	config_free(&cfg);
}

static void
test_buffer(void **state)
{
	static const char nul[] = "[agent]\nsocket = /a\0b\n";
	static const char ok[] = "[cache]\nttl = 42\n[agent]";
	char err[CONFIG_ERR_SIZE];
	struct config cfg;

	assert_int_equal(config_load_buffer(&cfg, nul, sizeof(nul) - 1, "buf", err, sizeof(err)),
	    -1);
	assert_string_equal(err, "buf:2: line contains a NUL byte");
	assert_zeroed(&cfg);
	/* Not NUL-terminated: only len bytes are read ("[agent" lacks its ']'). */
	assert_int_equal(config_load_buffer(&cfg, ok, sizeof(ok) - 2, "buf", err, sizeof(err)), -1);
	assert_string_equal(err, "buf:3: section header without a closing ']'");
	assert_int_equal(config_load_buffer(&cfg, ok, sizeof(ok) - 1, "buf", err, sizeof(err)), 0);
	assert_int_equal(cfg.cache_ttl, 42);
	config_free(&cfg);
	assert_int_equal(config_load_buffer(&cfg, NULL, 0, "buf", err, sizeof(err)), 0);
	check_defaults(&cfg);
	config_free(&cfg);
	expect_err("\xef\xbb[cache]\n", "t.conf:1: broken UTF-8 byte order mark", NULL);
}

static void
test_error_buffer(void **state)
{
	char small[12];
	struct config cfg;

	memset(small, 'x', sizeof(small));
	assert_int_equal(config_load_string(&cfg, "[cache]\nttl = abc\n", "t.conf", small,
	    sizeof(small)), -1);
	assert_string_equal(small, "t.conf:2: [");
	assert_int_equal(config_load_string(&cfg, "[cache]\nttl = abc\n", "t.conf", NULL, 0), -1);
	assert_int_equal(config_load_string(&cfg, "[cache]\nttl = abc\n", NULL, small, 0), -1);
	assert_zeroed(&cfg);
	/* The default name for strings. */
	{
		char err[CONFIG_ERR_SIZE];

		assert_int_equal(config_load_string(&cfg, "[x]\n", NULL, err, sizeof(err)), -1);
		assert_string_equal(err, "(string):1: unknown section [x]");
	}
}

/* ---- files ----------------------------------------------------------------------------- */

static void
test_files(void **state)
{
	char path[] = "/tmp/test_config.XXXXXX", err[CONFIG_ERR_SIZE], want[128];
	struct config cfg;
	int fd;

	assert_int_equal(config_load(&cfg, "/nonexistent/smcached.conf", err, sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/smcached.conf: cannot open: No such file or directory");
	assert_zeroed(&cfg);

	/* A directory is not a configuration file. */
	assert_int_equal(config_load(&cfg, "conf", err, sizeof(err)), -1);
	assert_string_equal(err, "conf: cannot open: not a regular file");
	assert_zeroed(&cfg);

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "[agent]\nlog_level = debug\n[cache]\nttl = 5x\n", 44), 44);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:4: [cache] ttl: '5x' is not a duration", path);
	assert_memory_equal(err, want, strlen(want));
	assert_zeroed(&cfg);

	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pwrite(fd, "[cache]\nttl = 1m\n", 17, 0), 17);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), 0);
	assert_int_equal(cfg.cache_ttl, 60);
	assert_int_equal(cfg.log_level, LOG_INFO);
	config_free(&cfg);
	close(fd);
	unlink(path);
}

/* A configuration others can write is refused (whoever writes it grants themselves access). */
static void
test_file_trust(void **state)
{
	char path[] = "/tmp/test_config.XXXXXX", err[CONFIG_ERR_SIZE], want[160];
	struct config cfg;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "[cache]\nttl = 1m\n", 17), 17);
	assert_int_equal(fchmod(fd, 0666), 0);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "fix: chmod go-w %s", path);
	assert_non_null(strstr(err, "writable by group and others (mode 0666)"));
	assert_non_null(strstr(err, want));
	assert_zeroed(&cfg);
	assert_int_equal(fchmod(fd, 0640), 0);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), 0);
	config_free(&cfg);
	if (geteuid() == 0) {
		/* Owned by another user: refused, unless it is the user the agent runs as. */
		assert_int_equal(fchown(fd, 65534, 65534), 0);
		assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "owned by uid 65534"));
		assert_int_equal(pwrite(fd, "[agent]\nuser = 65534\n", 21, 0), 21);
		assert_int_equal(config_load(&cfg, path, err, sizeof(err)), 0);
		config_free(&cfg);
	}
	close(fd);
	unlink(path);
}

/* The example loads; uncommenting every "#key = value" line gives the defaults. */
static void
test_example_file(void **state)
{
	char err[CONFIG_ERR_SIZE], *text, *out, *line, *save, *got, *want;
	struct config cfg;
	size_t keys = 0, olen = 0;
	FILE *f;

	if (config_load(&cfg, EXAMPLE_CONF, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	check_defaults(&cfg);
	config_free(&cfg);

	text = read_text(EXAMPLE_CONF);
	f = open_memstream(&out, &olen);
	assert_non_null(f);
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#' && line[1] >= 'a' && line[1] <= 'z' && strstr(line, " = ")) {
			line++;
			keys++;
			/* Every [aws] key is set below: they need the aws backend. */
			if (strcmp(line, "type = file") == 0)
				line = "type = aws";
		}
		fprintf(f, "%s\n", line);
	}
	assert_int_equal(fclose(f), 0);
	free(text);
	if (config_load_string(&cfg, out, "uncommented " EXAMPLE_CONF, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	free(out);
	/* Keys cannot repeat and unknown ones fail, so this many keys is every key. */
	assert_int_equal(keys, help_lines());
	/* The keys without a default carry an example value. */
	assert_non_null(cfg.socket_path);
	assert_non_null(cfg.aws_region);
	assert_non_null(cfg.aws_endpoint);
	free(cfg.socket_path);
	free(cfg.aws_region);
	free(cfg.aws_endpoint);
	free(cfg.aws_profile);
	free(cfg.aws_ca_bundle);
	assert_non_null(cfg.cache_prefetch);
	free(cfg.cache_prefetch);
	cfg.cache_prefetch = NULL;
	/* The list key is shown once, with one example rule. */
	assert_int_equal(cfg.access_allow.count, 1);
	free(cfg.access_allow.items[0]);
	free(cfg.access_allow.items);
	cfg.access_allow.items = NULL;
	cfg.access_allow.count = 0;
	assert_non_null(cfg.audit_file);
	free(cfg.audit_file);
	cfg.audit_file = NULL;
	/* [http]: one listen example, the optional socket, hosts and scrape address. */
	assert_int_equal(cfg.http_listen.count, 1);
	free(cfg.http_listen.items[0]);
	free(cfg.http_listen.items);
	cfg.http_listen.items = NULL;
	cfg.http_listen.count = 0;
	assert_non_null(cfg.http_socket);
	assert_non_null(cfg.http_allowed_hosts);
	assert_non_null(cfg.http_metrics_listen);
	free(cfg.http_socket);
	free(cfg.http_allowed_hosts);
	free(cfg.http_metrics_listen);
	cfg.http_socket = cfg.http_allowed_hosts = cfg.http_metrics_listen = NULL;
	/* [endpoint] and [access] allow_write: one example each. */
	assert_int_equal(cfg.endpoint_listen.count, 1);
	assert_int_equal(cfg.access_allow_write.count, 1);
	free(cfg.endpoint_listen.items[0]);
	free(cfg.endpoint_listen.items);
	free(cfg.access_allow_write.items[0]);
	free(cfg.access_allow_write.items);
	cfg.endpoint_listen.items = cfg.access_allow_write.items = NULL;
	cfg.endpoint_listen.count = cfg.access_allow_write.count = 0;
	assert_non_null(cfg.endpoint_keys_file);
	assert_non_null(cfg.endpoint_allowed_hosts);
	free(cfg.endpoint_keys_file);
	free(cfg.endpoint_allowed_hosts);
	cfg.endpoint_keys_file = cfg.endpoint_allowed_hosts = NULL;
	free(cfg.socket_user);
	free(cfg.socket_group);
	free(cfg.user);
	free(cfg.group);
	cfg.socket_user = cfg.socket_group = cfg.user = cfg.group = NULL;
	cfg.socket_path = cfg.aws_region = cfg.aws_endpoint = NULL;
	cfg.aws_profile = cfg.aws_ca_bundle = NULL;
	assert_int_equal(cfg.backend, CONFIG_BACKEND_AWS);	/* set above, for [aws] */
	cfg.backend = CONFIG_BACKEND_FILE;
	got = describe(&cfg);
	config_free(&cfg);
	assert_int_equal(config_defaults(&cfg), 0);
	want = describe(&cfg);
	config_free(&cfg);
	assert_string_equal(got, want);
	free(got);
	free(want);
}

/* [http]: addresses, loopback only unless allowed, yes/no, the prefix. */
static void
test_http_keys(void **state)
{
	struct config cfg;

	(void)state;
	load_ok(&cfg, "[http]\nlisten = 127.0.0.1:2773\nlisten = [::1]:2773\n"
	    "metrics_listen = 127.0.0.2:9273\npath_prefix = /secrets/\n");
	assert_int_equal(cfg.http_listen.count, 2);
	assert_string_equal(cfg.http_listen.items[1], "[::1]:2773");
	assert_string_equal(cfg.http_path_prefix, "/secrets/");
	assert_int_equal(cfg.http_allow_non_loopback, 0);
	config_free(&cfg);
	load_ok(&cfg, "[http]\nlisten = 0.0.0.0:2773\nallow_non_loopback = yes\n");
	assert_int_equal(cfg.http_allow_non_loopback, 1);
	config_free(&cfg);
	expect_err("[http]\nlisten = 0.0.0.0:2773\n", "t.conf:2:", "not a loopback address",
	    "allow_non_loopback", NULL);
	expect_err("[http]\nlisten = [::]:2773\n", "t.conf:2:", "not a loopback address", NULL);
	expect_err("[http]\nmetrics_listen = 10.1.2.3:9273\n", "t.conf:2:", "not a loopback", NULL);
	expect_err("[http]\nlisten = localhost:2773\n", "t.conf:2:", "ADDRESS:PORT", NULL);
	expect_err("[http]\nlisten = 127.0.0.1\n", "t.conf:2:", "ADDRESS:PORT", NULL);
	expect_err("[http]\nlisten = 127.0.0.1:0\n", "t.conf:2:", "ADDRESS:PORT", NULL);
	expect_err("[http]\nlisten = 127.0.0.1:65536\n", "t.conf:2:", "ADDRESS:PORT", NULL);
	expect_err("[http]\nlisten = ::1:2773\n", "t.conf:2:", "ADDRESS:PORT", NULL);
	expect_err("[http]\nlisten = [127.0.0.1]:2773\n", "t.conf:2:", "ADDRESS:PORT", NULL);
	expect_err("[http]\nallow_non_loopback = true\n", "t.conf:2:", NULL);
	expect_err("[http]\npath_prefix = v1/\n", "t.conf:2:", "must start with '/'", NULL);
	expect_err("[http]\nssrf_headers = X-Token; rm\n", "t.conf:2:", "not allowed", NULL);
}

static void
test_help(void **state)
{
	char *buf = NULL;
	size_t len = 0, lines = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	config_help(f);
	assert_int_equal(fclose(f), 0);
	for (char *c = buf; *c != '\0'; c++)
		lines += *c == '\n';
	assert_int_equal(lines, help_lines());
	assert_true(lines >= 14);
	assert_non_null(strstr(buf, "[cache] ttl: "));
	assert_non_null(strstr(buf, "default 300, allowed 1s..86400s"));
	assert_non_null(strstr(buf, "default 4M, allowed 256K..1G"));
	free(buf);
}

/* ---- [access], [audit], [limits] and reloading ------------------------------------------ */

static void
count_diff(const char *section, const char *key, int reloadable, void *arg)
{
	char *buf = arg;
	size_t used = strlen(buf);

	snprintf(buf + used, 512 - used, "%s.%s%s ", section, key, reloadable ? "" : "!");
}

static void
test_access_keys(void **state)
{
	struct config cfg, other;
	char diff[512] = "";
	char *text;

	/* allow repeats, in file order; describe shows one line per rule. */
	load_ok(&cfg,
	    "[access]\n"
	    "allow = user:root prod/*\n"
	    "allow = group:0   a b\n"
	    "[cache]\n"
	    "[access]\n"
	    "allow = user:1000 arn:aws:secretsmanager:*:*:secret:x\n"
	    "[audit]\n"
	    "level = all\n"
	    "file = /var/log/smcache-audit.log\n"
	    "[limits]\n"
	    "connections_per_uid = 4\n"
	    "requests_per_second_per_uid = 100\n"
	    "burst_per_uid = 7\n"
	    "refreshes_per_minute_per_uid = 2\n");
	assert_int_equal(cfg.access_allow.count, 3);
	assert_string_equal(cfg.access_allow.items[0], "user:root prod/*");
	assert_string_equal(cfg.access_allow.items[1], "group:0   a b");
	assert_string_equal(cfg.access_allow.items[2], "user:1000 arn:aws:secretsmanager:*:*:secret:x");
	assert_int_equal(cfg.audit_level, 2);
	assert_string_equal(cfg.audit_file, "/var/log/smcache-audit.log");
	assert_int_equal(cfg.limit_connections, 4);
	assert_int_equal(cfg.limit_requests_per_second, 100);
	assert_int_equal(cfg.limit_burst, 7);
	assert_int_equal(cfg.limit_refreshes_per_minute, 2);
	text = describe(&cfg);
	assert_non_null(strstr(text, "access.allow = user:root prod/*\n"
	    "access.allow = group:0   a b\n"
	    "access.allow = user:1000 arn:aws:secretsmanager:*:*:secret:x\n"
	    "audit.level = all\n"));
	free(text);

	/* What differs, and whether a running agent can take it. */
	load_ok(&other,
	    "[agent]\nlog_level = debug\nmax_connections = 5\n"
	    "[access]\nallow = user:root prod/*\nallow = group:0 a b\n"
	    "allow = user:1000 arn:aws:secretsmanager:*:*:secret:x\n"
	    "[audit]\nlevel = all\nfile = /var/log/smcache-audit.log\n"
	    "[limits]\nconnections_per_uid = 4\nrequests_per_second_per_uid = 100\n"
	    "burst_per_uid = 8\nrefreshes_per_minute_per_uid = 2\n"
	    "[cache]\nttl = 1\n");
	config_diff(&cfg, &other, count_diff, diff);
	assert_string_equal(diff, "agent.max_connections! agent.log_level cache.ttl! "
	    "access.allow limits.burst_per_uid ");
	diff[0] = '\0';
	config_diff(&cfg, &cfg, count_diff, diff);
	assert_string_equal(diff, "");
	config_free(&other);
	config_free(&cfg);

	/* Bad rules name their line and say why. */
	expect_err("[access]\nallow = user:root a\nallow = user:no-such-user-smc x\n",
	    "t.conf:3: [access] allow: unknown user 'no-such-user-smc'", NULL);
	expect_err("[access]\nallow = group:no-such-group-smc x\n",
	    "t.conf:2: [access] allow: unknown group 'no-such-group-smc'", NULL);
	expect_err("[access]\nallow = user:root\n",
	    "t.conf:2: [access] allow: 'user:root' is granted no pattern", NULL);
	expect_err("[access]\nallow = root prod/*\n", "t.conf:2: [access] allow: 'root' is not", NULL);
	expect_err("[access]\nallow = user:root a:b\n", "t.conf:2: [access] allow: pattern 'a:b'",
	    NULL);
	expect_err("[access]\nallow = \"user:root a\"\n", "t.conf:2: [access] allow:", "quoted",
	    NULL);
	expect_err("[access]\nallow =\n", "t.conf:2: [access] allow: empty value", NULL);
	expect_err("[access]\nalow = user:root a\n", "t.conf:2: unknown key 'alow' in section"
	    " [access] (did you mean 'allow'?)", NULL);
	expect_err("[audit]\nlevel = some\n", "t.conf:2: [audit] level: 'some' is not one of:"
	    " off, denied, all", NULL);
	expect_err("[audit]\nfile = audit.log\n", "t.conf:2: [audit] file: 'audit.log' is not an"
	    " absolute path", NULL);
	expect_err("[audit]\nlevel = all\nlevel = off\n", "t.conf:3: duplicate key 'level'", NULL);
	expect_err("[limits]\nconnections_per_uid = 0\n", "t.conf:2: [limits] connections_per_uid:"
	    " '0' is out of range, allowed 1..65536", NULL);
	expect_err("[limits]\nburst_per_uid = many\n", "t.conf:2: [limits] burst_per_uid: 'many'"
	    " is not a number", NULL);
	expect_err("[limits]\nrequests_per_second_per_uid = 10000001\n", "t.conf:2: [limits]"
	    " requests_per_second_per_uid: '10000001' is out of range", NULL);
	expect_err("[limits]\nrefreshes_per_minute_per_uid = 0\n", "t.conf:2:", "out of range",
	    NULL);
}

/* ---- value syntax ---------------------------------------------------------------------- */

static void
test_parse_duration(void **state)
{
	unsigned long long v;

	v = 1;
	assert_int_equal(config_parse_duration("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(config_parse_duration("5", &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(config_parse_duration("5s", &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(config_parse_duration("5m", &v), 0);
	assert_int_equal(v, 300);
	assert_int_equal(config_parse_duration("2h", &v), 0);
	assert_int_equal(v, 7200);
	assert_int_equal(config_parse_duration("18446744073709551615", &v), 0);
	assert_true(v == 18446744073709551615ULL);

	v = 77;
	errno = 0;
	assert_int_equal(config_parse_duration("99999999999999999999", &v), -1);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(config_parse_duration("18446744073709551616", &v), -1);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(config_parse_duration("5124095576030432h", &v), -1);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(v, 77);	/* untouched on error */

	static const char *const bad[] = {
		"", " 5", "5 ", " 5 ", "-5", "+5", "5x", "5ss", "5S", "s", "5.0", "1e3",
		"0x10", "5 s", "1m30s", "99999999999999999999x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		if (config_parse_duration(bad[i], &v) != -1 || errno != EINVAL)
			fail_msg("duration '%s' accepted or wrong errno", bad[i]);
	}
	errno = 0;
	assert_int_equal(config_parse_duration(NULL, &v), -1);
	assert_int_equal(errno, EINVAL);
}

static void
test_parse_size(void **state)
{
	unsigned long long v;

	assert_int_equal(config_parse_size("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(config_parse_size("1K", &v), 0);
	assert_int_equal(v, 1024);
	assert_int_equal(config_parse_size("1k", &v), 0);
	assert_int_equal(v, 1024);
	assert_int_equal(config_parse_size("4M", &v), 0);
	assert_int_equal(v, 4194304);
	assert_int_equal(config_parse_size("3G", &v), 0);
	assert_true(v == 3ULL << 30);
	assert_int_equal(config_parse_size("17179869183G", &v), 0);
	assert_true(v == 17179869183ULL << 30);
	errno = 0;
	assert_int_equal(config_parse_size("17179869184G", &v), -1);	/* 2^64 */
	assert_int_equal(errno, ERANGE);
	assert_int_equal(config_parse_size("99999999999999999999", &v), -1);
	assert_int_equal(errno, ERANGE);

	static const char *const bad[] = {
		"", " 5", "5 ", " 5 ", "-5", "5x", "5KB", "5KiB", "5T", "K", "1.5M", "5 K",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		if (config_parse_size(bad[i], &v) != -1 || errno != EINVAL)
			fail_msg("size '%s' accepted or wrong errno", bad[i]);
	}
}

/* Deterministic junk and mutations of the example: no crash, no leak, a message on error. */
static void
test_robustness(void **state)
{
	char *example = read_text(EXAMPLE_CONF), err[CONFIG_ERR_SIZE], buf[512];
	size_t elen = strlen(example);
	uint32_t seed = 12345;
	struct config cfg;

	for (int round = 0; round < 3000; round++) {
		size_t len;

		if (round % 2 == 0) {
			/* Random bytes biased towards INI punctuation. */
			static const char alphabet[] = "[]=:;# \t\nagentcachettlfilepath0123456789smhKMG/-\0\xef";

			len = (seed = seed * 1103515245 + 12345) % sizeof(buf);
			for (size_t i = 0; i < len; i++) {
				seed = seed * 1103515245 + 12345;
				buf[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
			}
		} else {
			/* The example with a few bytes changed. */
			char *m = malloc(elen);

			assert_non_null(m);
			memcpy(m, example, elen);
			for (int k = 0; k < 4; k++) {
				seed = seed * 1103515245 + 12345;
				m[(seed >> 8) % elen] = (char)(seed >> 24);
			}
			err[0] = '\0';
			if (config_load_buffer(&cfg, m, elen, "m", err, sizeof(err)) == 0)
				config_free(&cfg);
			else
				assert_true(strncmp(err, "m:", 2) == 0);
			free(m);
			continue;
		}
		err[0] = '\0';
		if (config_load_buffer(&cfg, buf, len, "r", err, sizeof(err)) == 0)
			config_free(&cfg);
		else
			assert_true(strncmp(err, "r:", 2) == 0);
	}
	free(example);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_all_keys),
		cmocka_unit_test(test_good_numbers),
		cmocka_unit_test(test_good_strings),
		cmocka_unit_test(test_bad_socket),
		cmocka_unit_test(test_socket_and_user_keys),
		cmocka_unit_test(test_bad_counts),
		cmocka_unit_test(test_bad_durations),
		cmocka_unit_test(test_bad_sizes),
		cmocka_unit_test(test_bad_enums),
		cmocka_unit_test(test_bad_aws),
		cmocka_unit_test(test_aws_keys_need_aws_backend),
		cmocka_unit_test(test_unknown_names),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_access_keys),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_buffer),
		cmocka_unit_test(test_error_buffer),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_file_trust),
		cmocka_unit_test(test_example_file),
		cmocka_unit_test(test_http_keys),
		cmocka_unit_test(test_help),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_robustness),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
