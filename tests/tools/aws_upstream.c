/*
 * aws_upstream: drives the aws backend (agent/upstream_aws) directly, without
 * the cache or the socket, for the integration tests against moto_server.
 *
 *   aws_upstream [options] get SECRET_ID [STAGE [VERSION_ID]]
 *   aws_upstream [options] describe SECRET_ID
 *   aws_upstream [options] batch SECRET_ID...
 *
 * Region, endpoint and credentials come from the environment, as in the
 * agent. Prints one JSON object per answer (batch: per id, then {"done":true}),
 * then {"stats": {...}}. Values are printed base64-encoded: this is a test
 * tool, never pointed at real secrets.
 *
 * Options: --timeout-ms N (upstream_timeout), --request-timeout-ms N,
 * --retries N, --free-in-callback (frees the backend inside the first
 * callback, then exits: checks that nothing runs afterwards).
 * Exit status: 0 when every answer was OK, 3 when some were errors, 2 usage.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <sodium.h>

#include "json_secure.h"
#include "log.h"
#include "upstream_aws.h"

struct tool {
	struct event_base *base;
	struct backend *backend;
	const char *const *ids;
	bool free_in_callback;
	bool freed;
	int errors;
	unsigned int answers;
};

static void
print_json(cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);

	if (s != NULL) {
		printf("%s\n", s);
		cJSON_free(s);
	}
	cJSON_Delete(o);
	fflush(stdout);
}

static void
add_value(cJSON *o, const struct backend_value *v)
{
	char *b64;
	size_t b64_len = sodium_base64_ENCODED_LEN(v->len, sodium_base64_VARIANT_ORIGINAL);
	cJSON *stages = cJSON_AddArrayToObject(o, "stages");

	cJSON_AddStringToObject(o, "status", "OK");
	cJSON_AddStringToObject(o, "arn", v->arn);
	cJSON_AddStringToObject(o, "name", v->name);
	cJSON_AddStringToObject(o, "version_id", v->version_id);
	for (size_t i = 0; i < v->stage_count; i++)
		cJSON_AddItemToArray(stages, cJSON_CreateString(v->stages[i]));
	cJSON_AddNumberToObject(o, "created_ms", (double)v->created_ms);
	cJSON_AddBoolToObject(o, "binary", v->is_binary);
	if ((b64 = malloc(b64_len)) != NULL) {
		sodium_bin2base64(b64, b64_len, v->data, v->len, sodium_base64_VARIANT_ORIGINAL);
		cJSON_AddStringToObject(o, "value_b64", b64);
		free(b64);
	}
}

static void
add_error(struct tool *t, cJSON *o, const struct backend_error *e)
{
	cJSON_AddStringToObject(o, "status", proto_status_name(e->status));
	cJSON_AddStringToObject(o, "message", e->message);
	t->errors++;
}

/* Returns true when the tool should stop now (backend freed). */
static bool
maybe_free(struct tool *t)
{
	if (!t->free_in_callback)
		return false;
	backend_free(t->backend);
	t->backend = NULL;
	t->freed = true;
	event_base_loopexit(t->base, NULL);
	return true;
}

static void
on_value(void *arg, const struct backend_value *v, const struct backend_error *e)
{
	struct tool *t = arg;
	cJSON *o = cJSON_CreateObject();

	if (v != NULL)
		add_value(o, v);
	else
		add_error(t, o, e);
	print_json(o);
	t->answers++;
	if (!maybe_free(t))
		event_base_loopexit(t->base, NULL);
}

static void
on_describe(void *arg, const struct backend_description *d, const struct backend_error *e)
{
	struct tool *t = arg;
	cJSON *o = cJSON_CreateObject(), *map;

	if (d != NULL) {
		cJSON_AddStringToObject(o, "status", "OK");
		cJSON_AddStringToObject(o, "arn", d->arn);
		cJSON_AddStringToObject(o, "name", d->name);
		if (d->description != NULL)
			cJSON_AddStringToObject(o, "description", d->description);
		cJSON_AddNumberToObject(o, "created_ms", (double)d->created_ms);
		cJSON_AddNumberToObject(o, "last_changed_ms", (double)d->last_changed_ms);
		cJSON_AddNumberToObject(o, "deleted_ms", (double)d->deleted_ms);
		map = cJSON_AddObjectToObject(o, "versions");
		for (size_t i = 0; i < d->version_count; i++) {
			cJSON *stages = cJSON_AddArrayToObject(map, d->versions[i].version_id);

			for (size_t j = 0; j < d->versions[i].stage_count; j++)
				cJSON_AddItemToArray(stages,
				    cJSON_CreateString(d->versions[i].stages[j]));
		}
	} else
		add_error(t, o, e);
	print_json(o);
	t->answers++;
	if (!maybe_free(t))
		event_base_loopexit(t->base, NULL);
}

static void
on_item(void *arg, size_t index, const struct backend_value *v, const struct backend_error *e)
{
	struct tool *t = arg;
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "index", (double)index);
	cJSON_AddStringToObject(o, "id", t->ids[index]);
	if (v != NULL)
		add_value(o, v);
	else
		add_error(t, o, e);
	print_json(o);
	t->answers++;
	(void)maybe_free(t);
}

static void
on_done(void *arg)
{
	struct tool *t = arg;
	cJSON *o = cJSON_CreateObject();

	cJSON_AddBoolToObject(o, "done", 1);
	print_json(o);
	event_base_loopexit(t->base, NULL);
}

static void
print_stats(const struct backend *b)
{
	const struct upstream_aws_stats *s = upstream_aws_stats(b);
	cJSON *o = cJSON_CreateObject(), *st = cJSON_AddObjectToObject(o, "stats");

	cJSON_AddNumberToObject(st, "get_ok", (double)b->counters.get_ok);
	cJSON_AddNumberToObject(st, "get_error", (double)b->counters.get_error);
	cJSON_AddNumberToObject(st, "describe_ok", (double)b->counters.describe_ok);
	cJSON_AddNumberToObject(st, "describe_error", (double)b->counters.describe_error);
	cJSON_AddNumberToObject(st, "batch_ok", (double)s->batch_ok);
	cJSON_AddNumberToObject(st, "batch_error", (double)s->batch_error);
	cJSON_AddNumberToObject(st, "batch_items_ok", (double)s->batch_items_ok);
	cJSON_AddNumberToObject(st, "batch_items_error", (double)s->batch_items_error);
	cJSON_AddNumberToObject(st, "batch_fallbacks", (double)s->batch_fallbacks);
	cJSON_AddNumberToObject(st, "http_requests", (double)s->http_requests);
	cJSON_AddNumberToObject(st, "retries", (double)s->retries);
	cJSON_AddNumberToObject(st, "throttled", (double)s->throttled);
	cJSON_AddNumberToObject(st, "timeouts", (double)s->timeouts);
	cJSON_AddNumberToObject(st, "auth_failures", (double)s->auth_failures);
	print_json(o);
}

static int
usage(void)
{
	fprintf(stderr, "usage: aws_upstream [--timeout-ms N] [--request-timeout-ms N] [--retries N]"
	    " [--free-in-callback] get ID [STAGE [VERSION_ID]] | describe ID | batch ID...\n");
	return 2;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "request-timeout-ms", required_argument, NULL, 'r' },
		{ "retries", required_argument, NULL, 'n' },
		{ "free-in-callback", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	struct upstream_aws_options opts;
	struct upstream_aws_batch_cbs cbs = { on_item, on_done };
	struct backend_query q;
	struct tool t;
	char err[512];
	const char *cmd;
	int opt, rc;

	memset(&opts, 0, sizeof(opts));
	memset(&t, 0, sizeof(t));
	opts.max_retries = 3;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 't':
			opts.upstream_timeout_ms = atol(optarg);
			break;
		case 'r':
			opts.request_timeout_ms = atol(optarg);
			break;
		case 'n':
			opts.max_retries = (unsigned int)atoi(optarg);
			break;
		case 'f':
			t.free_in_callback = true;
			break;
		default:
			return usage();
		}
	}
	if (argc - optind < 2)
		return usage();
	cmd = argv[optind];
	if (sodium_init() < 0)
		return 1;
	json_secure_init();
	log_set_level(getenv("AWS_UPSTREAM_DEBUG") != NULL ? LOG_DEBUG : LOG_WARN);
	if ((t.base = event_base_new()) == NULL)
		return 1;
	if ((t.backend = upstream_aws_new(t.base, &opts, err, sizeof(err))) == NULL) {
		fprintf(stderr, "aws_upstream: %s\n", err);
		event_base_free(t.base);
		return 1;
	}
	t.ids = (const char *const *)argv + optind + 1;
	if (strcmp(cmd, "get") == 0 && argc - optind <= 4) {
		memset(&q, 0, sizeof(q));
		q.secret_id = argv[optind + 1];
		if (argc - optind >= 3 && argv[optind + 2][0] != '\0')
			q.version_stage = argv[optind + 2];
		if (argc - optind >= 4)
			q.version_id = argv[optind + 3];
		rc = backend_get_value(t.backend, &q, on_value, &t);
	} else if (strcmp(cmd, "describe") == 0 && argc - optind == 2) {
		rc = backend_describe(t.backend, argv[optind + 1], on_describe, &t);
	} else if (strcmp(cmd, "batch") == 0) {
		rc = upstream_aws_batch_get(t.backend, t.ids, (size_t)(argc - optind - 1), &cbs, &t);
	} else {
		backend_free(t.backend);
		event_base_free(t.base);
		return usage();
	}
	if (rc != 0) {
		fprintf(stderr, "aws_upstream: the backend refused the request\n");
		t.errors++;
	} else
		event_base_dispatch(t.base);
	if (!t.freed) {
		print_stats(t.backend);
		backend_free(t.backend);
	}
	event_base_free(t.base);
	return t.errors > 0 ? 3 : 0;
}
