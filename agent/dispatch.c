/*
 * dispatch: what each protocol operation does. Decoded requests arrive from
 * the server; GET reads through the cache (answered at once on a hit, when
 * the fetch completes otherwise); DESCRIBE goes to the backend; PING and
 * STATS are answered at once.
 *
 * Replies that carry a secret value are built in the agent's locked scratch
 * buffer, copied once into an exact-size buffer the connection wipes after
 * writing, and the scratch is wiped at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "agent.h"
#include "backend.h"
#include "cache.h"
#include "dispatch.h"
#include "frame.h"
#include "log.h"
#include "server.h"

/* A request waiting for the backend, with NUL-terminated copies of its strings. */
struct pending {
	struct conn_waiter waiter;
	struct agent *agent;
	uint8_t op;
	uint32_t request_id;
	struct backend_query query;
	char strings[];		/* secret id, stage, version id, each NUL-terminated */
};

static void
count_reply(struct agent *agent, enum smc_status status)
{
	if ((unsigned)status <= SMC_STATUS_MAX)
		agent->stats.replies_by_status[status]++;
}

static void
reply_error(struct agent *agent, struct conn *conn, uint8_t op, uint32_t request_id,
    enum smc_status status, const char *message)
{
	count_reply(agent, status);
	conn_send_error(conn, op, request_id, status, "%s", message);
}

/* Sends the frame built in the scratch buffer; wipes the scratch. */
static void
send_from_scratch(struct agent *agent, struct conn *conn, struct smc_writer *w,
    uint8_t op, uint32_t request_id)
{
	uint8_t *frame;
	size_t len;

	if (smc_message_end(w, &len) != 0) {
		sodium_memzero(agent->reply_scratch, w->len < agent->reply_scratch_len ?
		    w->len : agent->reply_scratch_len);
		reply_error(agent, conn, op, request_id, SMC_STATUS_INTERNAL,
		    "reply does not fit in a frame");
		return;
	}
	if ((frame = malloc(len)) == NULL) {
		sodium_memzero(agent->reply_scratch, len);
		reply_error(agent, conn, op, request_id, SMC_STATUS_INTERNAL, "out of memory");
		return;
	}
	memcpy(frame, agent->reply_scratch, len);
	sodium_memzero(agent->reply_scratch, len);
	count_reply(agent, SMC_STATUS_OK);
	conn_send_owned_secret(conn, frame, len);
}

static struct pending *
pending_new(struct agent *agent, const struct smc_request *req)
{
	const struct smc_str *parts[3] = { &req->secret_id, &req->version_stage, &req->version_id };
	const char **targets[3];
	struct pending *p;
	size_t total = 0;
	char *dst;

	for (size_t i = 0; i < 3; i++)
		total += parts[i]->len + 1;
	if ((p = calloc(1, sizeof(*p) + total)) == NULL)
		return NULL;
	p->agent = agent;
	p->op = req->header.op;
	p->request_id = req->header.request_id;
	targets[0] = &p->query.secret_id;
	targets[1] = &p->query.version_stage;
	targets[2] = &p->query.version_id;
	dst = p->strings;
	for (size_t i = 0; i < 3; i++) {
		if (parts[i]->ptr == NULL)
			continue;
		memcpy(dst, parts[i]->ptr, parts[i]->len);
		dst[parts[i]->len] = '\0';
		*targets[i] = dst;
		dst += parts[i]->len + 1;
	}
	return p;
}

static void
pending_done(struct pending *p)
{
	conn_waiter_finish(&p->waiter);
	free(p);
}

static void
get_done(void *arg, const struct backend_value *value, const struct backend_error *error)
{
	struct pending *p = arg;
	struct agent *agent = p->agent;
	struct conn *conn = p->waiter.conn;
	struct smc_writer w;

	if (conn == NULL)
		goto out;	/* the client left; nothing to answer */
	if (error != NULL) {
		reply_error(agent, conn, p->op, p->request_id, error->status, error->message);
		goto out;
	}
	smc_writer_init(&w, agent->reply_scratch, agent->reply_scratch_len);
	smc_message_begin(&w, SMC_OP_GET | SMC_OP_REPLY, 0, p->request_id, SMC_STATUS_OK);
	smc_put_cstr(&w, SMC_TAG_ARN, value->arn);
	smc_put_cstr(&w, SMC_TAG_NAME, value->name);
	smc_put_cstr(&w, SMC_TAG_VERSION_ID, value->version_id);
	for (size_t i = 0; i < value->stage_count; i++)
		smc_put_cstr(&w, SMC_TAG_VERSION_STAGE, value->stages[i]);
	if (value->created_ms > 0)
		smc_put_u64(&w, SMC_TAG_CREATED_DATE, (uint64_t)value->created_ms);
	smc_put_str(&w, value->is_binary ? SMC_TAG_SECRET_BINARY : SMC_TAG_SECRET_STRING,
	    (const char *)value->data, value->len);
	send_from_scratch(agent, conn, &w, p->op, p->request_id);
out:
	pending_done(p);
}

static void
describe_done(void *arg, const struct backend_description *d, const struct backend_error *error)
{
	struct pending *p = arg;
	struct agent *agent = p->agent;
	struct conn *conn = p->waiter.conn;
	struct smc_writer w;
	size_t mark;

	if (conn == NULL)
		goto out;
	if (error != NULL) {
		reply_error(agent, conn, p->op, p->request_id, error->status, error->message);
		goto out;
	}
	smc_writer_init(&w, agent->reply_scratch, agent->reply_scratch_len);
	smc_message_begin(&w, SMC_OP_DESCRIBE | SMC_OP_REPLY, 0, p->request_id, SMC_STATUS_OK);
	smc_put_cstr(&w, SMC_TAG_ARN, d->arn);
	smc_put_cstr(&w, SMC_TAG_NAME, d->name);
	if (d->description != NULL)
		smc_put_cstr(&w, SMC_TAG_DESCRIPTION, d->description);
	if (d->created_ms > 0)
		smc_put_u64(&w, SMC_TAG_CREATED_DATE, (uint64_t)d->created_ms);
	if (d->last_changed_ms > 0)
		smc_put_u64(&w, SMC_TAG_LAST_CHANGED_DATE, (uint64_t)d->last_changed_ms);
	if (d->deleted_ms > 0)
		smc_put_u64(&w, SMC_TAG_DELETED_DATE, (uint64_t)d->deleted_ms);
	for (size_t i = 0; i < d->version_count && i < SMC_MAX_VERSIONS; i++) {
		const struct backend_version_stages *v = &d->versions[i];

		mark = smc_nested_begin(&w, SMC_TAG_VERSION);
		smc_put_cstr(&w, SMC_TAG_VERSION_ID, v->version_id);
		for (size_t j = 0; j < v->stage_count; j++)
			smc_put_cstr(&w, SMC_TAG_VERSION_STAGE, v->stages[j]);
		if (v->created_ms > 0)
			smc_put_u64(&w, SMC_TAG_CREATED_DATE, (uint64_t)v->created_ms);
		smc_nested_end(&w, mark);
	}
	send_from_scratch(agent, conn, &w, p->op, p->request_id);
out:
	pending_done(p);
}

static void
handle_backend_op(struct agent *agent, struct conn *conn, const struct smc_request *req)
{
	struct pending *p;
	int r;

	if ((p = pending_new(agent, req)) == NULL) {
		reply_error(agent, conn, req->header.op, req->header.request_id,
		    SMC_STATUS_INTERNAL, "out of memory");
		return;
	}
	conn_waiter_attach(conn, &p->waiter);
	if (req->header.op == SMC_OP_GET) {
		cache_get(agent->cache, &p->query, get_done, p);
		return;
	}
	r = backend_describe(agent->backend, p->query.secret_id, describe_done, p);
	if (r != 0) {
		reply_error(agent, conn, req->header.op, req->header.request_id,
		    SMC_STATUS_INTERNAL, "the backend could not take the request");
		pending_done(p);
	}
}

static void
handle_ping(struct agent *agent, struct conn *conn, const struct smc_request *req)
{
	uint8_t frame[128];
	struct smc_writer w;
	size_t len;

	smc_writer_init(&w, frame, sizeof(frame));
	smc_message_begin(&w, SMC_OP_PING | SMC_OP_REPLY, 0, req->header.request_id, SMC_STATUS_OK);
	smc_put_cstr(&w, SMC_TAG_AGENT_VERSION, "smcached " SMC_VERSION);
	if (smc_message_end(&w, &len) != 0) {
		reply_error(agent, conn, req->header.op, req->header.request_id,
		    SMC_STATUS_INTERNAL, "cannot encode PING reply");
		return;
	}
	count_reply(agent, SMC_STATUS_OK);
	conn_send(conn, frame, len);
}

static void
put_stat(struct smc_writer *w, const char *name, uint64_t value)
{
	size_t mark = smc_nested_begin(w, SMC_TAG_STAT);

	smc_put_cstr(w, SMC_TAG_STAT_NAME, name);
	smc_put_u64(w, SMC_TAG_STAT_VALUE, value);
	smc_nested_end(w, mark);
}

static void
handle_stats(struct agent *agent, struct conn *conn, const struct smc_request *req)
{
	static const char *const op_names[] = { NULL, "requests_ping", "requests_get",
		"requests_describe", "requests_stats" };
	static const char *const status_names[] = { "replies_ok", "replies_not_found",
		"replies_access_denied", "replies_bad_request", "replies_upstream_unavailable",
		"replies_internal", "replies_unsupported", "replies_too_large",
		"replies_limit_exceeded", "replies_upstream_auth" };
	const struct server_stats *ss = server_get_stats(agent->server);
	const struct backend_counters *bc = &agent->backend->counters;
	const struct cache_stats *cs = cache_get_stats(agent->cache);
	uint8_t frame[8192];
	struct smc_writer w;
	size_t len;

	_Static_assert(sizeof(status_names) / sizeof(status_names[0]) == SMC_STATUS_MAX + 1,
	    "a name for every status");
	/* Counted before building, so the reply includes itself. */
	count_reply(agent, SMC_STATUS_OK);
	smc_writer_init(&w, frame, sizeof(frame));
	smc_message_begin(&w, SMC_OP_STATS | SMC_OP_REPLY, 0, req->header.request_id, SMC_STATUS_OK);
	put_stat(&w, "uptime_seconds", (uint64_t)(time(NULL) - agent->started));
	put_stat(&w, "connections_active", ss->connections_active);
	put_stat(&w, "connections_accepted", ss->connections_accepted);
	put_stat(&w, "connections_rejected", ss->connections_rejected);
	put_stat(&w, "connections_idle_closed", ss->connections_idle_closed);
	put_stat(&w, "frames_rejected", ss->frames_rejected);
	put_stat(&w, "requests_total", ss->requests);
	put_stat(&w, "requests_malformed", ss->requests_bad);
	for (unsigned op = SMC_OP_PING; op <= SMC_OP_STATS; op++)
		put_stat(&w, op_names[op], agent->stats.requests_by_op[op]);
	for (unsigned st = 0; st <= SMC_STATUS_MAX; st++)
		put_stat(&w, status_names[st], agent->stats.replies_by_status[st]);
	put_stat(&w, "cache_hits", cs->hits);
	put_stat(&w, "cache_misses", cs->misses);
	put_stat(&w, "cache_negative_hits", cs->negative_hits);
	put_stat(&w, "cache_single_flight_joins", cs->joins);
	put_stat(&w, "cache_evictions", cs->evictions);
	put_stat(&w, "cache_entries", cs->versions);
	put_stat(&w, "cache_sealed_bytes", cs->sealed_bytes);
	put_stat(&w, "cache_secrets", cs->secrets);
	put_stat(&w, "cache_labels_other", cs->labels);
	put_stat(&w, "cache_negative_entries", cs->negatives);
	put_stat(&w, "cache_fetches", cs->fetches);
	put_stat(&w, "cache_fetch_errors", cs->fetch_errors);
	put_stat(&w, "cache_fetches_in_flight", cs->in_flight);
	put_stat(&w, "upstream_get_ok", bc->get_ok);
	put_stat(&w, "upstream_get_error", bc->get_error);
	put_stat(&w, "upstream_describe_ok", bc->describe_ok);
	put_stat(&w, "upstream_describe_error", bc->describe_error);
	if (smc_message_end(&w, &len) != 0) {
		reply_error(agent, conn, req->header.op, req->header.request_id,
		    SMC_STATUS_INTERNAL, "cannot encode STATS reply");
		return;
	}
	conn_send(conn, frame, len);
}

void
dispatch_request(struct agent *agent, struct conn *conn, const struct smc_request *req)
{
	if (req->header.op <= SMC_OP_STATS)
		agent->stats.requests_by_op[req->header.op]++;
	switch (req->header.op) {
	case SMC_OP_PING:
		handle_ping(agent, conn, req);
		break;
	case SMC_OP_GET:
	case SMC_OP_DESCRIBE:
		handle_backend_op(agent, conn, req);
		break;
	case SMC_OP_STATS:
		handle_stats(agent, conn, req);
		break;
	default:
		/* The decoder admits only known ops; this is a bug if reached. */
		reply_error(agent, conn, req->header.op, req->header.request_id,
		    SMC_STATUS_UNSUPPORTED, "operation not supported");
		break;
	}
}
