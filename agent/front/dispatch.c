/*
 * dispatch: what each protocol operation does. Decoded requests arrive from
 * the server; GET reads through the cache (answered at once on a hit, when
 * the fetch completes otherwise); DESCRIBE goes to the backend; PING and
 * STATS are answered at once.
 *
 * Replies that carry a secret value are built in the agent's locked scratch
 * buffer, copied once into an exact-size buffer the connection wipes after
 * writing, and the scratch is wiped at once. GET hits take a shorter way:
 * the reply is rendered once per version and loop pass into a body the
 * cache shares (cache_get_shared), and each reply is its own 14-byte head
 * (length, header with the request id) plus the rest of that body, sent by
 * reference.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "acl.h"
#include "agent.h"
#include "audit.h"
#include "backend.h"
#include "cache.h"
#include "dispatch.h"
#include "frame.h"
#include "health.h"
#include "log.h"
#include "peer_limits.h"
#include "server.h"

/* A request waiting for the backend, with NUL-terminated copies of its strings. */
struct pending {
	struct conn_waiter waiter;
	struct agent *agent;
	uint8_t op;
	uint32_t request_id;
	uid_t uid;		/* the peer, for the audit line once the backend answers */
	gid_t gid;
	pid_t pid;
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

/* ---- access control, audit, per-uid limits ----------------------------------------------- */

/* The one answer to a refused request: it names nothing, so it tells nothing. */
static const char access_denied[] = "access denied";

static void
peer_of(const struct conn *conn, struct acl_peer *peer)
{
	peer->uid = conn_peer_uid(conn);
	peer->gid = conn_peer_gid(conn);
	peer->groups = conn_peer_groups(conn, &peer->ngroups);
}

/* A NUL-terminated copy of a request string that fits buf (the decoder bounds them); NULL if absent. */
static const char *
str_copy(const struct smc_str *s, char *buf, size_t len)
{
	size_t n;

	if (s->ptr == NULL)
		return NULL;
	n = s->len < len - 1 ? s->len : len - 1;
	memcpy(buf, s->ptr, n);
	buf[n] = '\0';
	return buf;
}

static void
audit_request(struct agent *agent, struct conn *conn, const struct smc_request *req,
    bool allowed, int status)
{
	char id[SMC_MAX_SECRET_ID + 1], stage[SMC_MAX_VERSION_STAGE + 1];
	char vid[SMC_MAX_VERSION_ID + 1];
	struct audit_event e;

	if (!audit_wants(agent->audit, allowed))
		return;
	e.op = req->header.op;
	e.uid = conn_peer_uid(conn);
	e.gid = conn_peer_gid(conn);
	e.pid = conn_peer_pid(conn);
	e.secret_id = str_copy(&req->secret_id, id, sizeof(id));
	e.version_stage = str_copy(&req->version_stage, stage, sizeof(stage));
	e.version_id = str_copy(&req->version_id, vid, sizeof(vid));
	e.allowed = allowed;
	e.status = status;
	audit_record(agent->audit, &e);
}

static void
audit_pending(const struct pending *p, bool allowed, int status)
{
	const struct audit_event e = {
		.op = p->op, .uid = p->uid, .gid = p->gid, .pid = p->pid,
		.secret_id = p->query.secret_id, .version_stage = p->query.version_stage,
		.version_id = p->query.version_id, .allowed = allowed, .status = status,
	};

	if (audit_wants(p->agent->audit, allowed))
		audit_record(p->agent->audit, &e);
}

/*
 * Access rules and the per-uid refresh limit, checked before the cache or
 * the backend is asked: a refused peer gets the same answer whether the
 * secret exists or not, and causes no upstream call. False: answered here.
 */
static bool
admit_backend_op(struct agent *agent, struct conn *conn, const struct smc_request *req)
{
	char id[SMC_MAX_SECRET_ID + 1];
	struct acl_peer peer;
	uid_t uid = conn_peer_uid(conn);

	if (acl_enabled(agent->acl)) {
		peer_of(conn, &peer);
		/* An id too long to copy whole is refused rather than judged by a prefix. */
		if (req->secret_id.ptr == NULL || req->secret_id.len >= sizeof(id) ||
		    !acl_allows_id(agent->acl, &peer, str_copy(&req->secret_id, id, sizeof(id)))) {
			audit_request(agent, conn, req, false, SMC_STATUS_ACCESS_DENIED);
			reply_error(agent, conn, req->header.op, req->header.request_id,
			    SMC_STATUS_ACCESS_DENIED, access_denied);
			return false;
		}
	}
	if (req->header.op == SMC_OP_GET && (req->header.flags & SMC_FLAG_REFRESH) != 0 &&
	    !peer_limits_allow_refresh(agent->peer_limits, uid)) {
		if (peer_limits_should_warn(agent->peer_limits, uid))
			log_warn("uid %ld (pid %ld) exceeds refreshes_per_minute_per_uid; answering"
			    " its forced refreshes with LIMIT_EXCEEDED", (long)uid,
			    (long)conn_peer_pid(conn));
		reply_error(agent, conn, req->header.op, req->header.request_id,
		    SMC_STATUS_LIMIT_EXCEEDED, "too many forced refreshes from your user;"
		    " try again later");
		return false;
	}
	return true;
}

/* After the lookup: may the peer read the secret the id resolved to? */
static bool
resolved_granted(const struct agent *agent, const struct conn *conn, const char *name,
    const char *arn)
{
	struct acl_peer peer;

	if (!acl_enabled(agent->acl))
		return true;
	peer_of(conn, &peer);
	return acl_allows_resolved(agent->acl, &peer, name, arn);
}

static bool
admit_stats(struct agent *agent, struct conn *conn, const struct smc_request *req)
{
	struct acl_peer peer;
	bool ok;

	peer_of(conn, &peer);
	ok = acl_allows_stats(agent->acl, &peer, geteuid());
	audit_request(agent, conn, req, ok, ok ? SMC_STATUS_OK : SMC_STATUS_ACCESS_DENIED);
	if (!ok)
		reply_error(agent, conn, req->header.op, req->header.request_id,
		    SMC_STATUS_ACCESS_DENIED, access_denied);
	return ok;
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

/* The fields of a GET reply, after the header: the one place they are laid out. */
static void
put_get_fields(struct smc_writer *w, const struct backend_value *value)
{
	smc_put_cstr(w, SMC_TAG_ARN, value->arn);
	smc_put_cstr(w, SMC_TAG_NAME, value->name);
	smc_put_cstr(w, SMC_TAG_VERSION_ID, value->version_id);
	for (size_t i = 0; i < value->stage_count; i++)
		smc_put_cstr(w, SMC_TAG_VERSION_STAGE, value->stages[i]);
	if (value->created_ms > 0)
		smc_put_u64(w, SMC_TAG_CREATED_DATE, (uint64_t)value->created_ms);
	smc_put_str(w, value->is_binary ? SMC_TAG_SECRET_BINARY : SMC_TAG_SECRET_STRING,
	    (const char *)value->data, value->len);
}

static size_t
cstr_field_len(const char *s)
{
	return s != NULL ? SMC_FIELD_HEADER_LEN + strlen(s) : 0;
}

/*
 * A shared body is a whole GET reply frame whose header has request id 0 and
 * no flags: each reply copies those first bytes, patches in its own request
 * id and STALE flag, and sends the rest by reference. Where they sit
 * (proto/PROTOCOL.md: length u32, then version u8, op u8, flags u16,
 * request id u32, status u16):
 */
#define HEAD_LEN	(SMC_FRAME_PREFIX_LEN + SMC_HEADER_LEN)
#define HEAD_FLAGS_AT	(SMC_FRAME_PREFIX_LEN + 2)
#define HEAD_ID_AT	(SMC_FRAME_PREFIX_LEN + 4)
_Static_assert(SMC_HEADER_LEN == 10, "the header layout the offsets above follow");

/* cache_render_fn: a GET reply frame, shared by the hits of one loop pass. */
static size_t
render_get_reply(const struct backend_value *value, uint8_t *out, size_t cap)
{
	struct smc_writer w;
	size_t need, len;

	need = HEAD_LEN + cstr_field_len(value->arn) + cstr_field_len(value->name) +
	    cstr_field_len(value->version_id) + SMC_FIELD_HEADER_LEN + value->len;
	for (size_t i = 0; i < value->stage_count; i++)
		need += cstr_field_len(value->stages[i]);
	if (value->created_ms > 0)
		need += SMC_FIELD_HEADER_LEN + 8;
	if (need > SMC_FRAME_PREFIX_LEN + SMC_FRAME_MAX_BODY)
		return 0;
	if (out == NULL || cap < need)
		return need;
	smc_writer_init(&w, out, cap);
	smc_message_begin(&w, SMC_OP_GET | SMC_OP_REPLY, 0, 0, SMC_STATUS_OK);
	put_get_fields(&w, value);
	if (smc_message_end(&w, &len) != 0 || len != need)
		return 0;
	return need;
}

static void
release_body(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	cache_body_release(arg);
}

/* A GET answered from the cache (cache_get_shared). */
struct hit {
	struct agent *agent;
	struct conn *conn;
	const struct smc_request *req;
};

static void
get_hit(void *arg, struct cache_hit *hit, bool stale, struct cache_body *body)
{
	const struct hit *h = arg;
	uint8_t head[HEAD_LEN];
	const char *arn, *name;
	const uint8_t *data;
	size_t len;

	/* The names are made only when access rules will read them. */
	if (acl_enabled(h->agent->acl)) {
		cache_hit_names(hit, &arn, &name);
		if (!resolved_granted(h->agent, h->conn, name, arn)) {
			cache_body_release(body);
			audit_request(h->agent, h->conn, h->req, false,
			    SMC_STATUS_ACCESS_DENIED);
			reply_error(h->agent, h->conn, h->req->header.op,
			    h->req->header.request_id, SMC_STATUS_ACCESS_DENIED, access_denied);
			return;
		}
	}
	audit_request(h->agent, h->conn, h->req, true, SMC_STATUS_OK);
	data = cache_body_data(body, &len);	/* render_get_reply made len > HEAD_LEN */
	memcpy(head, data, HEAD_LEN);
	head[HEAD_FLAGS_AT] = (uint8_t)((stale ? SMC_FLAG_STALE : 0) >> 8);
	head[HEAD_FLAGS_AT + 1] = (uint8_t)(stale ? SMC_FLAG_STALE : 0);
	smc_store_u32(head + HEAD_ID_AT, h->req->header.request_id);
	count_reply(h->agent, SMC_STATUS_OK);
	conn_send_shared(h->conn, head, HEAD_LEN, data + HEAD_LEN, len - HEAD_LEN, release_body,
	    body);
}

/* A GET the cache can answer at once, without a pending request; false: not answered. */
static bool
get_cached(struct agent *agent, struct conn *conn, const struct smc_request *req)
{
	char id[SMC_MAX_SECRET_ID + 1], stage[SMC_MAX_VERSION_STAGE + 1];
	char vid[SMC_MAX_VERSION_ID + 1];
	const struct hit h = { agent, conn, req };
	struct backend_query q;

	if ((req->header.flags & SMC_FLAG_REFRESH) != 0 || req->secret_id.ptr == NULL ||
	    req->secret_id.len >= sizeof(id) || req->version_stage.len >= sizeof(stage) ||
	    req->version_id.len >= sizeof(vid))
		return false;
	q.secret_id = str_copy(&req->secret_id, id, sizeof(id));
	q.version_stage = str_copy(&req->version_stage, stage, sizeof(stage));
	q.version_id = str_copy(&req->version_id, vid, sizeof(vid));
	return cache_get_shared(agent->cache, &q, 0, render_get_reply, get_hit, (void *)&h) == 1;
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

/*
 * What every backend answer goes through first: the client may have left,
 * the answer may be an error, and the secret it resolved to must be granted.
 * Returns the connection to write the reply on, or NULL when that is all
 * done already (audited and, where someone is listening, answered).
 */
static struct conn *
answer_or_refuse(struct pending *p, const struct backend_error *error, const char *name,
    const char *arn)
{
	struct conn *conn = p->waiter.conn;

	if (conn == NULL) {
		audit_pending(p, true, -1);	/* the client left; nothing to answer */
		return NULL;
	}
	if (error != NULL) {
		audit_pending(p, true, error->status);
		reply_error(p->agent, conn, p->op, p->request_id, error->status, error->message);
		return NULL;
	}
	if (!resolved_granted(p->agent, conn, name, arn)) {
		audit_pending(p, false, SMC_STATUS_ACCESS_DENIED);
		reply_error(p->agent, conn, p->op, p->request_id, SMC_STATUS_ACCESS_DENIED,
		    access_denied);
		return NULL;
	}
	audit_pending(p, true, SMC_STATUS_OK);
	return conn;
}

static void
get_done(void *arg, const struct backend_value *value, bool stale, const struct backend_error *error)
{
	struct pending *p = arg;
	struct agent *agent = p->agent;
	struct conn *conn;
	struct smc_writer w;

	conn = answer_or_refuse(p, error, error == NULL ? value->name : NULL,
	    error == NULL ? value->arn : NULL);
	if (conn == NULL)
		goto out;
	smc_writer_init(&w, agent->reply_scratch, agent->reply_scratch_len);
	smc_message_begin(&w, SMC_OP_GET | SMC_OP_REPLY, stale ? SMC_FLAG_STALE : 0, p->request_id,
	    SMC_STATUS_OK);
	put_get_fields(&w, value);
	send_from_scratch(agent, conn, &w, p->op, p->request_id);
out:
	pending_done(p);
}

static void
describe_done(void *arg, const struct backend_description *d, const struct backend_error *error)
{
	struct pending *p = arg;
	struct agent *agent = p->agent;
	struct conn *conn;
	struct smc_writer w;
	size_t mark;

	conn = answer_or_refuse(p, error, error == NULL ? d->name : NULL,
	    error == NULL ? d->arn : NULL);
	if (conn == NULL)
		goto out;
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

	if (!admit_backend_op(agent, conn, req))
		return;
	if (req->header.op == SMC_OP_GET && get_cached(agent, conn, req))
		return;
	if ((p = pending_new(agent, req)) == NULL) {
		reply_error(agent, conn, req->header.op, req->header.request_id,
		    SMC_STATUS_INTERNAL, "out of memory");
		return;
	}
	p->uid = conn_peer_uid(conn);
	p->gid = conn_peer_gid(conn);
	p->pid = conn_peer_pid(conn);
	conn_waiter_attach(conn, &p->waiter);
	if (req->header.op == SMC_OP_GET) {
		cache_get(agent->cache, &p->query,
		    (req->header.flags & SMC_FLAG_REFRESH) ? CACHE_FORCE_REFRESH : 0, get_done, p);
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
		"requests_describe", "requests_stats", "requests_health" };
	static const char *const status_names[] = { "replies_ok", "replies_not_found",
		"replies_access_denied", "replies_bad_request", "replies_upstream_unavailable",
		"replies_internal", "replies_unsupported", "replies_too_large",
		"replies_limit_exceeded", "replies_upstream_auth" };
	const struct server_stats *ss = server_get_stats(agent->server);
	const struct backend_counters *bc = &agent->backend->counters;
	const struct cache_stats *cs = cache_get_stats(agent->cache);
	const struct peer_limits_stats *ls = agent->peer_limits != NULL ?
	    peer_limits_get_stats(agent->peer_limits) : NULL;
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
	put_stat(&w, "access_rules", acl_rule_count(agent->acl));
	put_stat(&w, "limits_connections_rejected", ls != NULL ? ls->connections_rejected : 0);
	put_stat(&w, "limits_requests_rejected", ls != NULL ? ls->requests_rejected : 0);
	put_stat(&w, "limits_refreshes_rejected", ls != NULL ? ls->refreshes_rejected : 0);
	for (unsigned op = SMC_OP_PING; op <= SMC_OP_MAX; op++)
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
	put_stat(&w, "cache_stale_serves", cs->stale_serves);
	put_stat(&w, "cache_refreshes", cs->refreshes);
	put_stat(&w, "cache_refresh_errors", cs->refresh_errors);
	put_stat(&w, "cache_refresh_fetches", cs->refresh_fetches);
	put_stat(&w, "cache_backoffs", cs->backoffs);
	put_stat(&w, "cache_forced_refreshes", cs->forced_refreshes);
	put_stat(&w, "cache_forced_refreshes_limited", cs->forced_refresh_limited);
	put_stat(&w, "cache_prefetches", cs->prefetches);
	put_stat(&w, "upstream_breaker_opens", cs->breaker_opens);
	put_stat(&w, "upstream_breaker_open", cs->breaker_open);
	put_stat(&w, "upstream_breaker_rejects", cs->breaker_rejects);
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

/* HEALTH: liveness is this reply; readiness and its facts from health.c. */
static void
handle_health(struct agent *agent, struct conn *conn, const struct smc_request *req)
{
	uint8_t frame[4096];
	struct agent_health hl;
	struct smc_writer w;
	size_t len;

	agent_health_check(agent, &hl);
	smc_writer_init(&w, frame, sizeof(frame));
	smc_message_begin(&w, SMC_OP_HEALTH | SMC_OP_REPLY, 0, req->header.request_id,
	    SMC_STATUS_OK);
	smc_put_u64(&w, SMC_TAG_READY, hl.ready ? 1 : 0);
	for (unsigned i = 0; i < hl.reason_count; i++)
		smc_put_cstr(&w, SMC_TAG_HEALTH_REASON, hl.reasons[i]);
	smc_put_u64(&w, SMC_TAG_CREDENTIALS, (uint64_t)hl.credentials);
	smc_put_u64(&w, SMC_TAG_STARTED_DATE, (uint64_t)hl.started_ms);
	if (hl.last_success_ms > 0)
		smc_put_u64(&w, SMC_TAG_LAST_SUCCESS_DATE, (uint64_t)hl.last_success_ms);
	if (hl.last_failure_ms > 0) {
		smc_put_u64(&w, SMC_TAG_LAST_FAILURE_DATE, (uint64_t)hl.last_failure_ms);
		smc_put_u64(&w, SMC_TAG_LAST_FAILURE_STATUS, (uint64_t)hl.last_failure_status);
	}
	smc_put_u64(&w, SMC_TAG_BREAKER_OPEN, hl.breaker_open ? 1 : 0);
	smc_put_u64(&w, SMC_TAG_PREFETCH_PENDING, hl.prefetch_pending);
	smc_put_u64(&w, SMC_TAG_CACHE_SECRETS, hl.cache_secrets);
	smc_put_u64(&w, SMC_TAG_CACHE_VERSIONS, hl.cache_versions);
	if (smc_message_end(&w, &len) != 0) {
		reply_error(agent, conn, req->header.op, req->header.request_id,
		    SMC_STATUS_INTERNAL, "cannot encode HEALTH reply");
		return;
	}
	count_reply(agent, SMC_STATUS_OK);
	conn_send(conn, frame, len);
}

void
dispatch_request(struct agent *agent, struct conn *conn, const struct smc_request *req)
{
	if (req->header.op <= SMC_OP_MAX)
		agent->stats.requests_by_op[req->header.op]++;
	if (!peer_limits_allow_request(agent->peer_limits, conn_peer_entry(conn))) {
		if (peer_limits_should_warn(agent->peer_limits, conn_peer_uid(conn)))
			log_warn("uid %ld (pid %ld) exceeds requests_per_second_per_uid; answering its"
			    " requests with LIMIT_EXCEEDED", (long)conn_peer_uid(conn),
			    (long)conn_peer_pid(conn));
		reply_error(agent, conn, req->header.op, req->header.request_id,
		    SMC_STATUS_LIMIT_EXCEEDED, "too many requests from your user; slow down");
		return;
	}
	switch (req->header.op) {
	case SMC_OP_PING:
		handle_ping(agent, conn, req);
		break;
	case SMC_OP_GET:
	case SMC_OP_DESCRIBE:
		handle_backend_op(agent, conn, req);
		break;
	case SMC_OP_STATS:
		if (admit_stats(agent, conn, req))
			handle_stats(agent, conn, req);
		break;
	case SMC_OP_HEALTH:
		handle_health(agent, conn, req);
		break;
	default:
		/* The decoder admits only known ops; this is a bug if reached. */
		reply_error(agent, conn, req->header.op, req->header.request_id,
		    SMC_STATUS_UNSUPPORTED, "operation not supported");
		break;
	}
}
