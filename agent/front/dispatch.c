/*
 * dispatch: what each protocol operation does. Decoded requests arrive from
 * the server; GET reads through the cache (answered at once on a hit, when
 * the fetch completes otherwise); DESCRIBE too (the cache remembers
 * descriptions for ttl); PING and STATS are answered at once.
 *
 * Replies that carry a secret value are built in the agent's locked scratch
 * buffer, copied once into an exact-size buffer the connection wipes after
 * writing, and the scratch is wiped at once. GET hits take a shorter way:
 * the reply is rendered once per version and loop pass into a body the
 * cache shares (cache_get_shared), and each reply is its own 14-byte head
 * (length, header with the request id) plus the rest of that body, sent by
 * reference.
 */
#define LOG_COMPONENT "dispatch"

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
count_reply(struct agent *agent, enum proto_status status)
{
	if ((unsigned)status <= PROTO_STATUS_MAX)
		agent->stats.replies_by_status[status]++;
}

static void
reply_error(struct agent *agent, struct conn *conn, uint8_t op, uint32_t request_id,
    enum proto_status status, const char *message)
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
	peer->key = NULL;
}

/* A NUL-terminated copy of a request string that fits buf (the decoder bounds them); NULL if absent. */
static const char *
str_copy(const struct proto_str *s, char *buf, size_t len)
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
audit_request(struct agent *agent, struct conn *conn, const struct proto_request *req,
    bool allowed, int status)
{
	char id[PROTO_MAX_SECRET_ID + 1], stage[PROTO_MAX_VERSION_STAGE + 1];
	char vid[PROTO_MAX_VERSION_ID + 1];
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
	e.door = e.reason = e.op_name = NULL;
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
 * Access rules for the id as given, and the forced-refresh budget: the one
 * check every front door makes before the cache or the backend is asked.
 * id NULL: absent or too long to copy whole (refused rather than judged by a
 * prefix when rules are on). PROTO_STATUS_OK, or the status and *message to
 * answer with.
 */
static enum proto_status
admit_core(struct agent *agent, const struct acl_peer *peer, pid_t pid, const char *id,
    bool refresh, const char **message)
{
	if (acl_enabled(agent->acl) && (id == NULL || !acl_allows_id(agent->acl, peer, id))) {
		*message = access_denied;
		return PROTO_STATUS_ACCESS_DENIED;
	}
	if (refresh && !peer_limits_allow_refresh(agent->peer_limits, peer->uid)) {
		if (peer_limits_should_warn(agent->peer_limits, peer->uid))
			log_warn("uid %ld (pid %ld) exceeds refreshes_per_minute_per_uid; answering"
			    " its forced refreshes with LIMIT_EXCEEDED", (long)peer->uid, (long)pid);
		*message = "too many forced refreshes from your user; try again later";
		return PROTO_STATUS_LIMIT_EXCEEDED;
	}
	return PROTO_STATUS_OK;
}

/*
 * Access rules and the per-uid refresh limit, checked before the cache or
 * the backend is asked: a refused peer gets the same answer whether the
 * secret exists or not, and causes no upstream call. False: answered here.
 */
static bool
admit_backend_op(struct agent *agent, struct conn *conn, const struct proto_request *req)
{
	char id[PROTO_MAX_SECRET_ID + 1];
	struct acl_peer peer = { .uid = conn_peer_uid(conn) };
	const char *idp = NULL, *message;
	enum proto_status st;

	/* The id and groups are copied only when access rules will read them. */
	if (acl_enabled(agent->acl)) {
		peer_of(conn, &peer);
		if (req->secret_id.ptr != NULL && req->secret_id.len < sizeof(id))
			idp = str_copy(&req->secret_id, id, sizeof(id));
	}
	st = admit_core(agent, &peer, conn_peer_pid(conn), idp, req->header.op == PROTO_OP_GET &&
	    (req->header.flags & PROTO_FLAG_REFRESH) != 0, &message);
	if (st == PROTO_STATUS_OK)
		return true;
	if (st == PROTO_STATUS_ACCESS_DENIED)
		audit_request(agent, conn, req, false, st);
	reply_error(agent, conn, req->header.op, req->header.request_id, st, message);
	return false;
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
id_unambiguous(const struct agent *agent, const struct conn *conn, const char *id)
{
	struct acl_peer peer;

	peer_of(conn, &peer);
	return acl_id_unambiguous(agent->acl, &peer, id);
}

static bool
admit_stats(struct agent *agent, struct conn *conn, const struct proto_request *req)
{
	struct acl_peer peer;
	bool ok;

	peer_of(conn, &peer);
	ok = acl_allows_stats(agent->acl, &peer, geteuid());
	audit_request(agent, conn, req, ok, ok ? PROTO_STATUS_OK : PROTO_STATUS_ACCESS_DENIED);
	if (!ok)
		reply_error(agent, conn, req->header.op, req->header.request_id,
		    PROTO_STATUS_ACCESS_DENIED, access_denied);
	return ok;
}

/* Sends the frame built in the scratch buffer; wipes the scratch. */
static void
send_from_scratch(struct agent *agent, struct conn *conn, struct proto_writer *w,
    uint8_t op, uint32_t request_id)
{
	uint8_t *frame;
	size_t len;

	if (proto_message_end(w, &len) != 0) {
		sodium_memzero(agent->reply_scratch, w->len < agent->reply_scratch_len ?
		    w->len : agent->reply_scratch_len);
		reply_error(agent, conn, op, request_id, PROTO_STATUS_INTERNAL,
		    "reply does not fit in a frame");
		return;
	}
	if ((frame = malloc(len)) == NULL) {
		sodium_memzero(agent->reply_scratch, len);
		reply_error(agent, conn, op, request_id, PROTO_STATUS_INTERNAL, "out of memory");
		return;
	}
	memcpy(frame, agent->reply_scratch, len);
	sodium_memzero(agent->reply_scratch, len);
	count_reply(agent, PROTO_STATUS_OK);
	conn_send_owned_secret(conn, frame, len);
}

/* The fields of a GET reply, after the header: the one place they are laid out. */
static void
put_get_fields(struct proto_writer *w, const struct backend_value *value)
{
	proto_put_cstr(w, PROTO_TAG_ARN, value->arn);
	proto_put_cstr(w, PROTO_TAG_NAME, value->name);
	proto_put_cstr(w, PROTO_TAG_VERSION_ID, value->version_id);
	for (size_t i = 0; i < value->stage_count; i++)
		proto_put_cstr(w, PROTO_TAG_VERSION_STAGE, value->stages[i]);
	if (value->created_ms > 0)
		proto_put_u64(w, PROTO_TAG_CREATED_DATE, (uint64_t)value->created_ms);
	proto_put_str(w, value->is_binary ? PROTO_TAG_SECRET_BINARY : PROTO_TAG_SECRET_STRING,
	    (const char *)value->data, value->len);
}

static size_t
cstr_field_len(const char *s)
{
	return s != NULL ? PROTO_FIELD_HEADER_LEN + strlen(s) : 0;
}

/*
 * A shared body is a whole GET reply frame whose header has request id 0 and
 * no flags: each reply copies those first bytes, patches in its own request
 * id and STALE flag, and sends the rest by reference. Where they sit
 * (proto/PROTOCOL.md: length u32, then version u8, op u8, flags u16,
 * request id u32, status u16):
 */
#define HEAD_LEN	(PROTO_FRAME_PREFIX_LEN + PROTO_HEADER_LEN)
#define HEAD_FLAGS_AT	(PROTO_FRAME_PREFIX_LEN + 2)
#define HEAD_ID_AT	(PROTO_FRAME_PREFIX_LEN + 4)
_Static_assert(PROTO_HEADER_LEN == 10, "the header layout the offsets above follow");

/* cache_render_fn: a GET reply frame, shared by the hits of one loop pass. */
static size_t
render_get_reply(const struct backend_value *value, uint8_t *out, size_t cap)
{
	struct proto_writer w;
	size_t need, len;

	need = HEAD_LEN + cstr_field_len(value->arn) + cstr_field_len(value->name) +
	    cstr_field_len(value->version_id) + PROTO_FIELD_HEADER_LEN + value->len;
	for (size_t i = 0; i < value->stage_count; i++)
		need += cstr_field_len(value->stages[i]);
	if (value->created_ms > 0)
		need += PROTO_FIELD_HEADER_LEN + 8;
	if (need > PROTO_FRAME_PREFIX_LEN + PROTO_FRAME_MAX_BODY)
		return 0;
	if (out == NULL || cap < need)
		return need;
	proto_writer_init(&w, out, cap);
	proto_message_begin(&w, PROTO_OP_GET | PROTO_OP_REPLY, 0, 0, PROTO_STATUS_OK);
	put_get_fields(&w, value);
	if (proto_message_end(&w, &len) != 0 || len != need)
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
	const struct proto_request *req;
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
			    PROTO_STATUS_ACCESS_DENIED);
			reply_error(h->agent, h->conn, h->req->header.op,
			    h->req->header.request_id, PROTO_STATUS_ACCESS_DENIED, access_denied);
			return;
		}
	}
	audit_request(h->agent, h->conn, h->req, true, PROTO_STATUS_OK);
	data = cache_body_data(body, &len);	/* render_get_reply made len > HEAD_LEN */
	memcpy(head, data, HEAD_LEN);
	head[HEAD_FLAGS_AT] = (uint8_t)((stale ? PROTO_FLAG_STALE : 0) >> 8);
	head[HEAD_FLAGS_AT + 1] = (uint8_t)(stale ? PROTO_FLAG_STALE : 0);
	proto_store_u32(head + HEAD_ID_AT, h->req->header.request_id);
	count_reply(h->agent, PROTO_STATUS_OK);
	conn_send_shared(h->conn, head, HEAD_LEN, data + HEAD_LEN, len - HEAD_LEN, release_body,
	    body);
}

/* A GET the cache can answer at once, without a pending request; false: not answered. */
static bool
get_cached(struct agent *agent, struct conn *conn, const struct proto_request *req)
{
	char id[PROTO_MAX_SECRET_ID + 1], stage[PROTO_MAX_VERSION_STAGE + 1];
	char vid[PROTO_MAX_VERSION_ID + 1];
	const struct hit h = { agent, conn, req };
	struct backend_query q;

	if ((req->header.flags & PROTO_FLAG_REFRESH) != 0 || req->secret_id.ptr == NULL ||
	    req->secret_id.len >= sizeof(id) || req->version_stage.len >= sizeof(stage) ||
	    req->version_id.len >= sizeof(vid))
		return false;
	q.secret_id = str_copy(&req->secret_id, id, sizeof(id));
	q.version_stage = str_copy(&req->version_stage, stage, sizeof(stage));
	q.version_id = str_copy(&req->version_id, vid, sizeof(vid));
	return cache_get_shared(agent->cache, &q, 0, render_get_reply, get_hit, (void *)&h) == 1;
}

static struct pending *
pending_new(struct agent *agent, const struct proto_request *req)
{
	const struct proto_str *parts[3] = { &req->secret_id, &req->version_stage, &req->version_id };
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
	if (error != NULL && error->status == PROTO_STATUS_NOT_FOUND && acl_enabled(p->agent->acl) &&
	    !id_unambiguous(p->agent, conn, p->query.secret_id)) {
		/* An ARN that could name a secret the peer may not read: "not found"
		 * is answered as a refusal is, so neither says whether it exists. */
		audit_pending(p, false, PROTO_STATUS_ACCESS_DENIED);
		reply_error(p->agent, conn, p->op, p->request_id, PROTO_STATUS_ACCESS_DENIED,
		    access_denied);
		return NULL;
	}
	if (error != NULL) {
		audit_pending(p, true, error->status);
		reply_error(p->agent, conn, p->op, p->request_id, error->status, error->message);
		return NULL;
	}
	if (!resolved_granted(p->agent, conn, name, arn)) {
		audit_pending(p, false, PROTO_STATUS_ACCESS_DENIED);
		reply_error(p->agent, conn, p->op, p->request_id, PROTO_STATUS_ACCESS_DENIED,
		    access_denied);
		return NULL;
	}
	audit_pending(p, true, PROTO_STATUS_OK);
	return conn;
}

static void
get_done(void *arg, const struct backend_value *value, bool stale, const struct backend_error *error)
{
	struct pending *p = arg;
	struct agent *agent = p->agent;
	struct conn *conn;
	struct proto_writer w;

	conn = answer_or_refuse(p, error, error == NULL ? value->name : NULL,
	    error == NULL ? value->arn : NULL);
	if (conn == NULL)
		goto out;
	proto_writer_init(&w, agent->reply_scratch, agent->reply_scratch_len);
	proto_message_begin(&w, PROTO_OP_GET | PROTO_OP_REPLY, stale ? PROTO_FLAG_STALE : 0, p->request_id,
	    PROTO_STATUS_OK);
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
	struct proto_writer w;
	size_t mark;

	conn = answer_or_refuse(p, error, error == NULL ? d->name : NULL,
	    error == NULL ? d->arn : NULL);
	if (conn == NULL)
		goto out;
	proto_writer_init(&w, agent->reply_scratch, agent->reply_scratch_len);
	proto_message_begin(&w, PROTO_OP_DESCRIBE | PROTO_OP_REPLY, 0, p->request_id, PROTO_STATUS_OK);
	proto_put_cstr(&w, PROTO_TAG_ARN, d->arn);
	proto_put_cstr(&w, PROTO_TAG_NAME, d->name);
	if (d->description != NULL)
		proto_put_cstr(&w, PROTO_TAG_DESCRIPTION, d->description);
	if (d->created_ms > 0)
		proto_put_u64(&w, PROTO_TAG_CREATED_DATE, (uint64_t)d->created_ms);
	if (d->last_changed_ms > 0)
		proto_put_u64(&w, PROTO_TAG_LAST_CHANGED_DATE, (uint64_t)d->last_changed_ms);
	if (d->deleted_ms > 0)
		proto_put_u64(&w, PROTO_TAG_DELETED_DATE, (uint64_t)d->deleted_ms);
	for (size_t i = 0; i < d->version_count && i < PROTO_MAX_VERSIONS; i++) {
		const struct backend_version_stages *v = &d->versions[i];

		mark = proto_nested_begin(&w, PROTO_TAG_VERSION);
		proto_put_cstr(&w, PROTO_TAG_VERSION_ID, v->version_id);
		for (size_t j = 0; j < v->stage_count; j++)
			proto_put_cstr(&w, PROTO_TAG_VERSION_STAGE, v->stages[j]);
		if (v->created_ms > 0)
			proto_put_u64(&w, PROTO_TAG_CREATED_DATE, (uint64_t)v->created_ms);
		proto_nested_end(&w, mark);
	}
	send_from_scratch(agent, conn, &w, p->op, p->request_id);
out:
	pending_done(p);
}

/* The upstream budget (peer_limits.h): what a refusal says, the one place it is worded. */
static const char upstream_refusal[] = "your user's requests caused too many upstream calls"
    " (upstream_per_second_per_uid); cached secrets are still served; try again later";

/* cache_charge.allow: one upstream call on the caller's uid, or a refusal (logged once in a while). */
static bool
charge_upstream(void *arg)
{
	const struct dispatch_charge *ch = arg;

	if (peer_limits_allow_upstream(ch->agent->peer_limits, ch->limits))
		return true;
	if (peer_limits_should_warn(ch->agent->peer_limits, ch->uid))
		log_warn("uid %ld (pid %ld) exceeds upstream_per_second_per_uid; answering its"
		    " requests that need the upstream with LIMIT_EXCEEDED", (long)ch->uid,
		    (long)ch->pid);
	return false;
}

static void
charge_init(struct dispatch_charge *ch, struct agent *agent, struct peer_entry *limits, uid_t uid,
    pid_t pid)
{
	ch->agent = agent;
	ch->limits = limits;
	ch->uid = uid;
	ch->pid = pid;
	ch->charge.allow = charge_upstream;
	ch->charge.arg = ch;
	ch->charge.refusal = upstream_refusal;
}

void
dispatch_charge_for(struct dispatch_charge *ch, struct agent *agent,
    const struct dispatch_caller *caller)
{
	charge_init(ch, agent, caller->limits, caller->peer.uid, caller->pid);
}

static void
handle_backend_op(struct agent *agent, struct conn *conn, const struct proto_request *req)
{
	struct dispatch_charge ch;
	struct pending *p;

	if (!admit_backend_op(agent, conn, req))
		return;
	if (req->header.op == PROTO_OP_GET && get_cached(agent, conn, req))
		return;
	charge_init(&ch, agent, conn_peer_entry(conn), conn_peer_uid(conn), conn_peer_pid(conn));
	if ((p = pending_new(agent, req)) == NULL) {
		reply_error(agent, conn, req->header.op, req->header.request_id,
		    PROTO_STATUS_INTERNAL, "out of memory");
		return;
	}
	p->uid = conn_peer_uid(conn);
	p->gid = conn_peer_gid(conn);
	p->pid = conn_peer_pid(conn);
	conn_waiter_attach(conn, &p->waiter);
	if (req->header.op == PROTO_OP_GET) {
		cache_get_charged(agent->cache, &p->query,
		    (req->header.flags & PROTO_FLAG_REFRESH) ? CACHE_FORCE_REFRESH : 0, &ch.charge,
		    get_done, p);
		return;
	}
	cache_describe_charged(agent->cache, p->query.secret_id, &ch.charge, describe_done, p);
}

static void
handle_ping(struct agent *agent, struct conn *conn, const struct proto_request *req)
{
	uint8_t frame[128];
	struct proto_writer w;
	size_t len;

	proto_writer_init(&w, frame, sizeof(frame));
	proto_message_begin(&w, PROTO_OP_PING | PROTO_OP_REPLY, 0, req->header.request_id, PROTO_STATUS_OK);
	proto_put_cstr(&w, PROTO_TAG_AGENT_VERSION, "smcached " SMC_VERSION);
	if (proto_message_end(&w, &len) != 0) {
		reply_error(agent, conn, req->header.op, req->header.request_id,
		    PROTO_STATUS_INTERNAL, "cannot encode PING reply");
		return;
	}
	count_reply(agent, PROTO_STATUS_OK);
	conn_send(conn, frame, len);
}

static void
put_stat(const char *name, uint64_t value, bool counter, void *arg)
{
	struct proto_writer *w = arg;
	size_t mark = proto_nested_begin(w, PROTO_TAG_STAT);

	(void)counter;
	proto_put_cstr(w, PROTO_TAG_STAT_NAME, name);
	proto_put_u64(w, PROTO_TAG_STAT_VALUE, value);
	proto_nested_end(w, mark);
}

/* The one list of STATS numbers, also what /metrics exposes (metrics.c). */
void
dispatch_stats_each(struct agent *agent, dispatch_stat_fn fn, void *arg)
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
	const bool C = true, G = false;	/* counter, gauge */

	_Static_assert(sizeof(status_names) / sizeof(status_names[0]) == PROTO_STATUS_MAX + 1,
	    "a name for every status");
	fn("uptime_seconds", (uint64_t)(time(NULL) - agent->started), G, arg);
	fn("connections_active", ss->connections_active, G, arg);
	fn("connections_accepted", ss->connections_accepted, C, arg);
	fn("connections_rejected", ss->connections_rejected, C, arg);
	fn("connections_idle_closed", ss->connections_idle_closed, C, arg);
	fn("connections_output_closed", ss->connections_output_closed, C, arg);
	fn("output_queued_bytes", ss->output_queued, G, arg);
	fn("frames_rejected", ss->frames_rejected, C, arg);
	fn("requests_total", ss->requests, C, arg);
	fn("requests_malformed", ss->requests_bad, C, arg);
	fn("access_rules", acl_rule_count(agent->acl), G, arg);
	fn("limits_connections_rejected", ls != NULL ? ls->connections_rejected : 0, C, arg);
	fn("limits_requests_rejected", ls != NULL ? ls->requests_rejected : 0, C, arg);
	fn("limits_refreshes_rejected", ls != NULL ? ls->refreshes_rejected : 0, C, arg);
	fn("limits_upstream_rejected", ls != NULL ? ls->upstream_rejected : 0, C, arg);
	for (unsigned op = PROTO_OP_PING; op <= PROTO_OP_MAX; op++)
		fn(op_names[op], agent->stats.requests_by_op[op], C, arg);
	for (unsigned st = 0; st <= PROTO_STATUS_MAX; st++)
		fn(status_names[st], agent->stats.replies_by_status[st], C, arg);
	fn("cache_hits", cs->hits, C, arg);
	fn("cache_misses", cs->misses, C, arg);
	fn("cache_negative_hits", cs->negative_hits, C, arg);
	fn("cache_backoff_hits", cs->backoff_hits, C, arg);
	fn("cache_single_flight_joins", cs->joins, C, arg);
	fn("cache_evictions", cs->evictions, C, arg);
	fn("cache_entries", cs->versions, G, arg);
	fn("cache_sealed_bytes", cs->sealed_bytes, G, arg);
	fn("cache_secrets", cs->secrets, G, arg);
	fn("cache_labels_other", cs->labels, G, arg);
	fn("cache_negative_entries", cs->negatives, G, arg);
	fn("cache_fetches", cs->fetches, C, arg);
	fn("cache_fetch_errors", cs->fetch_errors, C, arg);
	fn("cache_fetches_in_flight", cs->in_flight, G, arg);
	fn("cache_stale_serves", cs->stale_serves, C, arg);
	fn("cache_refreshes", cs->refreshes, C, arg);
	fn("cache_refresh_errors", cs->refresh_errors, C, arg);
	fn("cache_refresh_fetches", cs->refresh_fetches, C, arg);
	fn("cache_backoffs", cs->backoffs, C, arg);
	fn("cache_forced_refreshes", cs->forced_refreshes, C, arg);
	fn("cache_forced_refreshes_limited", cs->forced_refresh_limited, C, arg);
	fn("cache_prefetches", cs->prefetches, C, arg);
	fn("cache_describe_hits", cs->describe_hits, C, arg);
	fn("cache_describe_joins", cs->describe_joins, C, arg);
	fn("cache_describe_fetches", cs->describe_fetches, C, arg);
	fn("upstream_breaker_opens", cs->breaker_opens, C, arg);
	fn("upstream_breaker_open", cs->breaker_open, G, arg);
	fn("upstream_breaker_rejects", cs->breaker_rejects, C, arg);
	fn("upstream_get_ok", bc->get_ok, C, arg);
	fn("upstream_get_error", bc->get_error, C, arg);
	fn("upstream_describe_ok", bc->describe_ok, C, arg);
	fn("upstream_describe_error", bc->describe_error, C, arg);
	fn("upstream_in_flight", bc->in_flight, G, arg);
}

static void
handle_stats(struct agent *agent, struct conn *conn, const struct proto_request *req)
{
	uint8_t frame[8192];
	struct proto_writer w;
	size_t len;

	/* Counted before building, so the reply includes itself. */
	count_reply(agent, PROTO_STATUS_OK);
	proto_writer_init(&w, frame, sizeof(frame));
	proto_message_begin(&w, PROTO_OP_STATS | PROTO_OP_REPLY, 0, req->header.request_id, PROTO_STATUS_OK);
	dispatch_stats_each(agent, put_stat, &w);
	if (proto_message_end(&w, &len) != 0) {
		reply_error(agent, conn, req->header.op, req->header.request_id,
		    PROTO_STATUS_INTERNAL, "cannot encode STATS reply");
		return;
	}
	conn_send(conn, frame, len);
}

/* HEALTH: liveness is this reply; readiness and its facts from health.c. */
static void
handle_health(struct agent *agent, struct conn *conn, const struct proto_request *req)
{
	uint8_t frame[4096];
	struct agent_health hl;
	struct proto_writer w;
	size_t len;

	agent_health_check(agent, &hl);
	proto_writer_init(&w, frame, sizeof(frame));
	proto_message_begin(&w, PROTO_OP_HEALTH | PROTO_OP_REPLY, 0, req->header.request_id,
	    PROTO_STATUS_OK);
	proto_put_u64(&w, PROTO_TAG_READY, hl.ready ? 1 : 0);
	for (unsigned i = 0; i < hl.reason_count; i++)
		proto_put_cstr(&w, PROTO_TAG_HEALTH_REASON, hl.reasons[i]);
	proto_put_u64(&w, PROTO_TAG_CREDENTIALS, (uint64_t)hl.credentials);
	proto_put_u64(&w, PROTO_TAG_STARTED_DATE, (uint64_t)hl.started_ms);
	if (hl.last_success_ms > 0)
		proto_put_u64(&w, PROTO_TAG_LAST_SUCCESS_DATE, (uint64_t)hl.last_success_ms);
	if (hl.last_failure_ms > 0) {
		proto_put_u64(&w, PROTO_TAG_LAST_FAILURE_DATE, (uint64_t)hl.last_failure_ms);
		proto_put_u64(&w, PROTO_TAG_LAST_FAILURE_STATUS, (uint64_t)hl.last_failure_status);
	}
	proto_put_u64(&w, PROTO_TAG_BREAKER_OPEN, hl.breaker_open ? 1 : 0);
	proto_put_u64(&w, PROTO_TAG_PREFETCH_PENDING, hl.prefetch_pending);
	proto_put_u64(&w, PROTO_TAG_CACHE_SECRETS, hl.cache_secrets);
	proto_put_u64(&w, PROTO_TAG_CACHE_VERSIONS, hl.cache_versions);
	if (proto_message_end(&w, &len) != 0) {
		reply_error(agent, conn, req->header.op, req->header.request_id,
		    PROTO_STATUS_INTERNAL, "cannot encode HEALTH reply");
		return;
	}
	count_reply(agent, PROTO_STATUS_OK);
	conn_send(conn, frame, len);
}

void
dispatch_request(struct agent *agent, struct conn *conn, const struct proto_request *req)
{
	if (req->header.op <= PROTO_OP_MAX)
		agent->stats.requests_by_op[req->header.op]++;
	if (!peer_limits_allow_request(agent->peer_limits, conn_peer_entry(conn))) {
		if (peer_limits_should_warn(agent->peer_limits, conn_peer_uid(conn)))
			log_warn("uid %ld (pid %ld) exceeds requests_per_second_per_uid; answering its"
			    " requests with LIMIT_EXCEEDED", (long)conn_peer_uid(conn),
			    (long)conn_peer_pid(conn));
		reply_error(agent, conn, req->header.op, req->header.request_id,
		    PROTO_STATUS_LIMIT_EXCEEDED, "too many requests from your user; slow down");
		return;
	}
	switch (req->header.op) {
	case PROTO_OP_PING:
		handle_ping(agent, conn, req);
		break;
	case PROTO_OP_GET:
	case PROTO_OP_DESCRIBE:
		handle_backend_op(agent, conn, req);
		break;
	case PROTO_OP_STATS:
		if (admit_stats(agent, conn, req))
			handle_stats(agent, conn, req);
		break;
	case PROTO_OP_HEALTH:
		handle_health(agent, conn, req);
		break;
	default:
		/* The decoder admits only known ops; this is a bug if reached. */
		reply_error(agent, conn, req->header.op, req->header.request_id,
		    PROTO_STATUS_UNSUPPORTED, "operation not supported");
		break;
	}
}

/* ---- the same rules for callers of other front doors (http_api.c) ------------------------ */

static void
caller_audit(struct agent *agent, const struct dispatch_caller *c, uint8_t op,
    const struct backend_query *q, bool allowed, int status, const char *reason)
{
	const struct audit_event e = {
		.op = op, .uid = c->peer.uid, .gid = c->peer.gid, .pid = c->pid,
		.secret_id = q != NULL ? q->secret_id : NULL,
		.version_stage = q != NULL ? q->version_stage : NULL,
		.version_id = q != NULL ? q->version_id : NULL,
		.allowed = allowed, .status = status, .door = c->door, .reason = reason,
	};

	if (audit_wants(agent->audit, allowed))
		audit_record(agent->audit, &e);
}

enum proto_status
dispatch_admit(struct agent *agent, const struct dispatch_caller *c, uint8_t op,
    const struct backend_query *q, bool refresh, const char **message)
{
	enum proto_status st;

	if (!peer_limits_allow_request(agent->peer_limits, c->limits)) {
		if (peer_limits_should_warn(agent->peer_limits, c->peer.uid))
			log_warn("uid %ld exceeds requests_per_second_per_uid; answering its"
			    " requests with LIMIT_EXCEEDED", (long)c->peer.uid);
		*message = "too many requests from your user; slow down";
		return PROTO_STATUS_LIMIT_EXCEEDED;
	}
	/* Who is asking must be known before any rule can grant anything. */
	if (!c->uid_known && acl_enabled(agent->acl)) {
		caller_audit(agent, c, op, q, false, PROTO_STATUS_ACCESS_DENIED, c->uid_unknown_why);
		*message = access_denied;
		return PROTO_STATUS_ACCESS_DENIED;
	}
	if (op == PROTO_OP_STATS) {
		bool ok = acl_allows_stats(agent->acl, &c->peer, geteuid());

		caller_audit(agent, c, op, NULL, ok, ok ? PROTO_STATUS_OK : PROTO_STATUS_ACCESS_DENIED,
		    NULL);
		*message = access_denied;
		return ok ? PROTO_STATUS_OK : PROTO_STATUS_ACCESS_DENIED;
	}
	st = admit_core(agent, &c->peer, c->pid, q->secret_id, refresh, message);
	if (st == PROTO_STATUS_ACCESS_DENIED)
		caller_audit(agent, c, op, q, false, st, NULL);
	return st;
}

bool
dispatch_granted(struct agent *agent, const struct dispatch_caller *c, uint8_t op,
    const struct backend_query *q, const char *name, const char *arn)
{
	bool ok = !acl_enabled(agent->acl) || acl_allows_resolved(agent->acl, &c->peer, name, arn);

	caller_audit(agent, c, op, q, ok, ok ? PROTO_STATUS_OK : PROTO_STATUS_ACCESS_DENIED, NULL);
	return ok;
}

void
dispatch_audit_answer(struct agent *agent, const struct dispatch_caller *c, uint8_t op,
    const struct backend_query *q, int status)
{
	caller_audit(agent, c, op, q, true, status, NULL);
}

void
dispatch_audit_forward(struct agent *agent, const struct dispatch_caller *c, const char *operation,
    const char *secret_id, bool allowed, int status, const char *reason)
{
	const struct audit_event e = {
		.op = 0, .op_name = operation, .uid = c->peer.uid, .gid = c->peer.gid,
		.pid = c->pid, .secret_id = secret_id, .allowed = allowed, .status = status,
		.door = c->door, .reason = reason,
	};

	/* Every forwarded write is written, whatever the level but off. */
	if (audit_wants(agent->audit, false))
		audit_record(agent->audit, &e);
}

const char *
dispatch_access_denied_message(void)
{
	return access_denied;
}
