/*
 * metrics: Prometheus text exposition (see metrics.h). One HELP and one TYPE
 * line per family, then its samples; names are [a-z_], label values are
 * fixed words, so nothing needs escaping.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "agent.h"
#include "backend.h"
#include "dispatch.h"
#include "http_door.h"
#include "metrics.h"
#include "secmem.h"

static void
family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One STATS number as its own family: smcache_NAME, counters with _total. */
static void
put_stat(const char *name, uint64_t value, bool counter, void *arg)
{
	struct evbuffer *out = arg;
	const size_t len = strlen(name);
	const bool has_total = len > 6 && strcmp(name + len - 6, "_total") == 0;
	char full[128];

	snprintf(full, sizeof(full), "smcache_%s%s", name, counter && !has_total ? "_total" : "");
	evbuffer_add_printf(out, "# HELP %s smcache stats: %s\n# TYPE %s %s\n%s %" PRIu64 "\n",
	    full, name, full, counter ? "counter" : "gauge", full, value);
}

/* One operation's samples of the latency histogram (cumulative buckets, as the format wants). */
static void
put_latency(struct evbuffer *out, const char *op, const struct backend_latency *lat)
{
	uint64_t cum = 0;

	for (size_t i = 0; i < BACKEND_LATENCY_BUCKETS; i++) {
		cum += lat->buckets[i];
		evbuffer_add_printf(out, "smcache_upstream_latency_seconds_bucket{operation=\"%s\","
		    "le=\"%g\"} %" PRIu64 "\n", op, backend_latency_bounds[i], cum);
	}
	cum += lat->buckets[BACKEND_LATENCY_BUCKETS];
	evbuffer_add_printf(out, "smcache_upstream_latency_seconds_bucket{operation=\"%s\","
	    "le=\"+Inf\"} %" PRIu64 "\n", op, cum);
	evbuffer_add_printf(out, "smcache_upstream_latency_seconds_sum{operation=\"%s\"} %.9f\n",
	    op, (double)lat->sum_ns / 1e9);
	evbuffer_add_printf(out, "smcache_upstream_latency_seconds_count{operation=\"%s\"} %"
	    PRIu64 "\n", op, lat->count);
}

static void
put_upstream(struct evbuffer *out, const struct backend_counters *bc)
{
	family(out, "smcache_upstream_calls_total", "counter",
	    "backend calls (Secrets Manager API requests with the aws backend) by operation and"
	    " outcome");
	evbuffer_add_printf(out, "smcache_upstream_calls_total{operation=\"GetSecretValue\","
	    "outcome=\"ok\"} %" PRIu64 "\n", bc->get_ok);
	evbuffer_add_printf(out, "smcache_upstream_calls_total{operation=\"GetSecretValue\","
	    "outcome=\"error\"} %" PRIu64 "\n", bc->get_error);
	evbuffer_add_printf(out, "smcache_upstream_calls_total{operation=\"DescribeSecret\","
	    "outcome=\"ok\"} %" PRIu64 "\n", bc->describe_ok);
	evbuffer_add_printf(out, "smcache_upstream_calls_total{operation=\"DescribeSecret\","
	    "outcome=\"error\"} %" PRIu64 "\n", bc->describe_error);
	family(out, "smcache_upstream_latency_seconds", "histogram",
	    "time from a backend call to its answer, retries included");
	put_latency(out, "GetSecretValue", &bc->get_latency);
	put_latency(out, "DescribeSecret", &bc->describe_latency);
}

void
metrics_render(struct evbuffer *out, struct agent *agent, const struct http_door *door)
{
	uint64_t locked = 0;

	dispatch_stats_each(agent, put_stat, out);
	put_upstream(out, &agent->backend->counters);
	family(out, "smcache_locked_bytes", "gauge", "bytes of the agent's memory locked in RAM");
	if (secmem_locked_bytes(&locked) != 0)
		locked = 0;
	evbuffer_add_printf(out, "smcache_locked_bytes %" PRIu64 "\n", locked);
	if (door != NULL) {
		const struct http_door_stats *s = http_door_get_stats(door);

		family(out, "smcache_http_connections_active", "gauge",
		    "HTTP connections open (that sent a request)");
		evbuffer_add_printf(out, "smcache_http_connections_active %" PRIu64 "\n",
		    s->connections_active);
		family(out, "smcache_http_sockets_open", "gauge",
		    "HTTP sockets accepted and not yet closed, whether or not they sent a request");
		evbuffer_add_printf(out, "smcache_http_sockets_open %" PRIu64 "\n", s->sockets_open);
		family(out, "smcache_http_sockets_shut_total", "counter",
		    "HTTP sockets shut down before a first request: idle_timeout passed, or more than"
		    " max_connections were waiting");
		evbuffer_add_printf(out, "smcache_http_sockets_shut_total %" PRIu64 "\n",
		    s->sockets_shut);
		family(out, "smcache_http_connections_accepted_total", "counter",
		    "HTTP connections that sent a request");
		evbuffer_add_printf(out, "smcache_http_connections_accepted_total %" PRIu64 "\n",
		    s->connections_accepted);
		family(out, "smcache_http_connections_rejected_total", "counter",
		    "HTTP connections answered 429 (over [http] max_connections or the per-uid"
		    " limit)");
		evbuffer_add_printf(out, "smcache_http_connections_rejected_total %" PRIu64 "\n",
		    s->connections_rejected);
		family(out, "smcache_http_requests_total", "counter", "HTTP requests received");
		evbuffer_add_printf(out, "smcache_http_requests_total %" PRIu64 "\n", s->requests);
		family(out, "smcache_http_uid_unknown_total", "counter",
		    "HTTP requests whose caller's uid could not be established");
		evbuffer_add_printf(out, "smcache_http_uid_unknown_total %" PRIu64 "\n",
		    s->uid_unknown);
		family(out, "smcache_http_replies_total", "counter", "HTTP replies by status code");
		for (size_t i = 0; i < 8; i++) {
			if (http_door_statuses[i] != 0)
				evbuffer_add_printf(out, "smcache_http_replies_total{code=\"%d\"} %"
				    PRIu64 "\n", http_door_statuses[i], s->replies[i]);
			else
				evbuffer_add_printf(out, "smcache_http_replies_total{code=\"other\"} %"
				    PRIu64 "\n", s->replies[i]);
		}
	}
}
