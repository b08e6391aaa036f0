/*
 * sm_api: the operations of the Secrets Manager endpoint (see sm_api.h).
 *
 * Shapes follow botocore's service model (secretsmanager 2017-10-17): every
 * error is status 400 with {"__type", "Message"}; SecretId 1..2048
 * characters, VersionId 32..64, VersionStage 1..256, SecretIdList 1..20.
 *
 * Reads go through dispatch_admit / dispatch_granted (the [access] rules and
 * their audit, the per-uid request budget) and are charged to the caller's
 * upstream budget (dispatch_charge_for) exactly as the Unix socket's GET and
 * DESCRIBE. A GetSecretValue hit is answered with a body the cache shares;
 * values that wait for the backend are rendered into locked memory
 * (secmem_wipe_malloc) that is wiped once written. "Not found" is answered with
 * the service's own message.
 *
 * Writes (any operation not read here) are refused unless [endpoint] forward
 * = yes and an [access] allow_write rule grants the secret the request names
 * (SecretId, or Name for CreateSecret; operations naming no secret need a
 * rule granting "*"). Passed through with upstream_aws_forward(): the
 * upstream's status and body are relayed byte for byte; after a 2xx the cache
 * forgets the secret (its id as asked and the Name and ARN of the answer)
 * before the answer is sent. Every passed-through or refused write is audited.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <cjson/cJSON.h>
#include <event2/http.h>
#include <sodium.h>

#include "acl.h"
#include "agent.h"
#include "backend.h"
#include "cache.h"
#include "dispatch.h"
#include "http_api.h"
#include "http_door.h"
#include "secmem.h"
#include "sm_api.h"
#include "sm_endpoint.h"
#include "upstream_aws.h"

#define BATCH_MAX	20
#define NOT_FOUND_MSG	"Secrets Manager can't find the specified secret."
#define DELETED_MSG	"You can't perform this operation on the secret because it was marked" \
			" for deletion."

enum pending_kind { P_GET, P_DESCRIBE, P_VERSIONS, P_BATCH, P_FILTERS, P_FORWARD };

struct sm_batch;

/* A request waiting for the cache or the upstream. The caller is copied. */
struct sm_pending {
	LIST_ENTRY(sm_pending) link;
	enum pending_kind kind;
	struct http_door *door;
	struct agent *agent;
	struct evhttp_request *req;
	struct dispatch_caller caller;
	struct backend_query q;		/* points into strings */
	struct sm_batch *batch;		/* P_BATCH */
	char operation[UPSTREAM_AWS_MAX_TARGET];	/* P_FORWARD */
	char strings[];
};

/* BatchGetSecretValue with SecretIdList: one cache read per id. */
struct sm_batch {
	struct sm_pending *parent;
	size_t count;
	size_t remaining;
	struct sm_batch_item {
		struct sm_batch *batch;
		size_t index;
		unsigned char *json;	/* rendered value, secmem; NULL: in errors */
		size_t len;
		char *id;
	} items[BATCH_MAX];
	cJSON *errors;
};

static LIST_HEAD(, sm_pending) pendings = LIST_HEAD_INITIALIZER(pendings);

/* ---- small things ------------------------------------------------------------------------ */

static void
plain_free(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	cJSON_free((void *)(uintptr_t)data);
}

static void
release_shared(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	cache_body_release(arg);
}

/* A cJSON document as the reply (no secret in it, or wiped by json_secure's hooks). */
static void
send_cjson(struct http_door *door, struct evhttp_request *req, cJSON *doc)
{
	char *text = doc != NULL ? cJSON_PrintUnformatted(doc) : NULL;

	if (text == NULL) {
		sm_endpoint_error(door, req, 500, "InternalServiceError", "out of memory");
		return;
	}
	sm_endpoint_send(door, req, 200, NULL, text, strlen(text), plain_free, NULL);
}

/* The service's error for a backend answer that is not a value. */
static const char *
status_error(enum proto_status st, const char *message, const char **out_message, int *http)
{
	*http = 400;
	*out_message = message;
	switch (st) {
	case PROTO_STATUS_NOT_FOUND:
		if (message != NULL && strstr(message, "scheduled for deletion") != NULL) {
			*out_message = DELETED_MSG;
			return "InvalidRequestException";
		}
		*out_message = NOT_FOUND_MSG;
		return "ResourceNotFoundException";
	case PROTO_STATUS_BAD_REQUEST:
		return "InvalidRequestException";
	case PROTO_STATUS_ACCESS_DENIED:
		return "AccessDeniedException";
	case PROTO_STATUS_LIMIT_EXCEEDED:
		return "ThrottlingException";
	default:
		*http = 500;
		return "InternalServiceError";
	}
}

static void
send_status(struct http_door *door, struct evhttp_request *req, enum proto_status st,
    const char *message)
{
	const char *m;
	int http;
	const char *type = status_error(st, message, &m, &http);

	sm_endpoint_error(door, req, http, type, m);
}

/* A string member: 1 its value in *out, 0 absent (or null), -1 wrong type or length. */
static int
member_str(const cJSON *o, const char *name, size_t min, size_t max, const char **out)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);
	size_t len;

	*out = NULL;
	if (m == NULL || cJSON_IsNull(m))
		return 0;
	if (!cJSON_IsString(m) || m->valuestring == NULL)
		return -1;
	len = strlen(m->valuestring);
	if (len < min || len > max)
		return -1;
	*out = m->valuestring;
	return 1;
}

static void
bad_param(struct http_door *door, struct evhttp_request *req, const char *what)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "Invalid %s", what);
	sm_endpoint_error(door, req, 400, "InvalidParameterException", msg);
}

/* A pending request with copies of q's strings (q may be NULL). */
static struct sm_pending *
pending_new(const struct sm_api_ctx *ctx, enum pending_kind kind, const struct backend_query *q,
    struct dispatch_charge *charge)
{
	const char *src[3] = { NULL, NULL, NULL };
	const char **dst[3];
	size_t ls[3], total = 0;
	struct sm_pending *p;
	char *s;

	if (q != NULL) {
		src[0] = q->secret_id;
		src[1] = q->version_stage;
		src[2] = q->version_id;
	}
	for (size_t i = 0; i < 3; i++)
		total += (ls[i] = src[i] != NULL ? strlen(src[i]) + 1 : 0);
	if ((p = calloc(1, sizeof(*p) + total)) == NULL)
		return NULL;
	p->kind = kind;
	p->door = ctx->door;
	p->agent = ctx->agent;
	p->req = ctx->req;
	p->caller = *ctx->caller;
	if (charge != NULL)
		dispatch_charge_for(charge, ctx->agent, ctx->caller);	/* valid during the call */
	p->caller.limits = NULL;	/* held by the connection, which may close first */
	p->caller.uid_unknown_why = NULL;
	dst[0] = &p->q.secret_id;
	dst[1] = &p->q.version_stage;
	dst[2] = &p->q.version_id;
	s = p->strings;
	for (size_t i = 0; i < 3; i++) {
		if (src[i] == NULL)
			continue;
		memcpy(s, src[i], ls[i]);
		*dst[i] = s;
		s += ls[i];
	}
	LIST_INSERT_HEAD(&pendings, p, link);
	return p;
}

static void
batch_free(struct sm_batch *b)
{
	for (size_t i = 0; i < b->count; i++) {
		secmem_wipe_free(b->items[i].json);
		free(b->items[i].id);
	}
	cJSON_Delete(b->errors);
	free(b);
}

static void
pending_free(struct sm_pending *p)
{
	LIST_REMOVE(p, link);
	if (p->batch != NULL)
		batch_free(p->batch);
	free(p);
}

/* ---- GetSecretValue ----------------------------------------------------------------------- */

struct hit_ctx {
	const struct sm_api_ctx *ctx;
	const struct backend_query *q;
};

static void
on_hit(void *arg, struct cache_hit *hit, bool stale, struct cache_body *body)
{
	const struct hit_ctx *h = arg;
	const char *arn = NULL, *name = NULL;
	const uint8_t *data;
	size_t len;

	(void)stale;
	cache_hit_names(hit, &arn, &name);
	if (!dispatch_granted(h->ctx->agent, h->ctx->caller, PROTO_OP_GET, h->q, name, arn)) {
		cache_body_release(body);
		send_status(h->ctx->door, h->ctx->req, PROTO_STATUS_ACCESS_DENIED,
		    dispatch_access_denied_message());
		return;
	}
	data = cache_body_data(body, &len);
	sm_endpoint_send(h->ctx->door, h->ctx->req, 200, NULL, data, len, release_shared, body);
}

static void
on_value(void *arg, const struct backend_value *value, bool stale, const struct backend_error *error)
{
	struct sm_pending *p = arg;
	unsigned char *out = NULL;
	size_t need;

	(void)stale;
	if (error != NULL) {
		dispatch_audit_answer(p->agent, &p->caller, PROTO_OP_GET, &p->q, error->status);
		send_status(p->door, p->req, error->status, error->message);
		goto out;
	}
	if (!dispatch_granted(p->agent, &p->caller, PROTO_OP_GET, &p->q, value->name, value->arn)) {
		send_status(p->door, p->req, PROTO_STATUS_ACCESS_DENIED,
		    dispatch_access_denied_message());
		goto out;
	}
	need = http_api_render_sdk_value(value, NULL, 0);
	if ((out = secmem_wipe_malloc(need)) == NULL ||
	    http_api_render_sdk_value(value, out, need) != need) {
		secmem_wipe_free(out);
		send_status(p->door, p->req, PROTO_STATUS_INTERNAL, NULL);
		goto out;
	}
	sm_endpoint_send(p->door, p->req, 200, NULL, out, need, sm_endpoint_wipe_free, NULL);
out:
	pending_free(p);
}

/* SecretId, VersionId, VersionStage into q; 0, or -1 answered. */
static int
parse_query(const struct sm_api_ctx *ctx, const cJSON *in, struct backend_query *q)
{
	memset(q, 0, sizeof(*q));
	if (member_str(in, "SecretId", 1, PROTO_MAX_SECRET_ID, &q->secret_id) != 1) {
		bad_param(ctx->door, ctx->req, "SecretId");
		return -1;
	}
	if (member_str(in, "VersionId", 32, PROTO_MAX_VERSION_ID, &q->version_id) < 0) {
		bad_param(ctx->door, ctx->req, "VersionId");
		return -1;
	}
	if (member_str(in, "VersionStage", 1, PROTO_MAX_VERSION_STAGE, &q->version_stage) < 0) {
		bad_param(ctx->door, ctx->req, "VersionStage");
		return -1;
	}
	return 0;
}

static void
get_secret_value(const struct sm_api_ctx *ctx, const cJSON *in)
{
	struct backend_query q;
	struct dispatch_charge charge;
	const struct hit_ctx h = { ctx, &q };
	const char *message = NULL;
	struct sm_pending *p;
	enum proto_status st;

	if (parse_query(ctx, in, &q) != 0)
		return;
	if ((st = dispatch_admit(ctx->agent, ctx->caller, PROTO_OP_GET, &q, false, &message)) !=
	    PROTO_STATUS_OK) {
		send_status(ctx->door, ctx->req, st, message);
		return;
	}
	if (cache_get_shared(ctx->agent->cache, &q, 0, http_api_render_sdk_value, on_hit,
	    (void *)&h) == 1)
		return;
	if ((p = pending_new(ctx, P_GET, &q, &charge)) == NULL) {
		send_status(ctx->door, ctx->req, PROTO_STATUS_INTERNAL, NULL);
		return;
	}
	cache_get_charged(ctx->agent->cache, &p->q, 0, &charge.charge, on_value, p);
}

/* ---- DescribeSecret, and ListSecretVersionIds from a description ------------------------- */

static void
add_date(cJSON *o, const char *name, int64_t ms)
{
	if (ms > 0)
		cJSON_AddNumberToObject(o, name, (double)ms / 1000.0);
}

static cJSON *
stages_array(const struct backend_version_stages *v)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t j = 0; a != NULL && j < v->stage_count; j++)
		cJSON_AddItemToArray(a, cJSON_CreateString(v->stages[j]));
	return a;
}

/* The DescribeSecret answer from what a backend without the raw answer knows. */
static cJSON *
render_description(const struct backend_description *d)
{
	cJSON *o = cJSON_CreateObject(), *map;

	if (o == NULL)
		return NULL;
	cJSON_AddStringToObject(o, "ARN", d->arn != NULL ? d->arn : "");
	cJSON_AddStringToObject(o, "Name", d->name != NULL ? d->name : "");
	if (d->description != NULL)
		cJSON_AddStringToObject(o, "Description", d->description);
	add_date(o, "CreatedDate", d->created_ms);
	add_date(o, "LastChangedDate", d->last_changed_ms);
	add_date(o, "DeletedDate", d->deleted_ms);
	if ((map = cJSON_AddObjectToObject(o, "VersionIdsToStages")) != NULL) {
		for (size_t i = 0; i < d->version_count; i++)
			cJSON_AddItemToObject(map, d->versions[i].version_id,
			    stages_array(&d->versions[i]));
	}
	return o;
}

static cJSON *
render_versions(const struct backend_description *d)
{
	cJSON *o = cJSON_CreateObject(), *a;

	if (o == NULL)
		return NULL;
	if ((a = cJSON_AddArrayToObject(o, "Versions")) != NULL) {
		for (size_t i = 0; i < d->version_count; i++) {
			cJSON *v = cJSON_CreateObject();

			if (v == NULL)
				break;
			cJSON_AddStringToObject(v, "VersionId", d->versions[i].version_id);
			cJSON_AddItemToObject(v, "VersionStages", stages_array(&d->versions[i]));
			add_date(v, "CreatedDate", d->versions[i].created_ms);
			cJSON_AddItemToArray(a, v);
		}
	}
	cJSON_AddStringToObject(o, "ARN", d->arn != NULL ? d->arn : "");
	cJSON_AddStringToObject(o, "Name", d->name != NULL ? d->name : "");
	return o;
}

static void
on_described(void *arg, const struct backend_description *d, const struct backend_error *error)
{
	struct sm_pending *p = arg;
	cJSON *doc;
	char *copy;

	if (error != NULL) {
		dispatch_audit_answer(p->agent, &p->caller, PROTO_OP_DESCRIBE, &p->q, error->status);
		send_status(p->door, p->req, error->status, error->message);
		goto out;
	}
	if (!dispatch_granted(p->agent, &p->caller, PROTO_OP_DESCRIBE, &p->q, d->name, d->arn)) {
		send_status(p->door, p->req, PROTO_STATUS_ACCESS_DENIED,
		    dispatch_access_denied_message());
		goto out;
	}
	if (p->kind == P_DESCRIBE && d->raw_json != NULL) {
		/* The service's own answer, as it sent it. */
		if ((copy = cJSON_malloc(strlen(d->raw_json) + 1)) == NULL) {
			send_status(p->door, p->req, PROTO_STATUS_INTERNAL, NULL);
			goto out;
		}
		memcpy(copy, d->raw_json, strlen(d->raw_json) + 1);
		sm_endpoint_send(p->door, p->req, 200, NULL, copy, strlen(copy), plain_free, NULL);
		goto out;
	}
	doc = p->kind == P_DESCRIBE ? render_description(d) : render_versions(d);
	send_cjson(p->door, p->req, doc);
	cJSON_Delete(doc);
out:
	pending_free(p);
}

static void
describe(const struct sm_api_ctx *ctx, const cJSON *in, enum pending_kind kind)
{
	struct backend_query q = { 0 };
	struct dispatch_charge charge;
	const char *message = NULL;
	struct sm_pending *p;
	enum proto_status st;

	if (member_str(in, "SecretId", 1, PROTO_MAX_SECRET_ID, &q.secret_id) != 1) {
		bad_param(ctx->door, ctx->req, "SecretId");
		return;
	}
	if ((st = dispatch_admit(ctx->agent, ctx->caller, PROTO_OP_DESCRIBE, &q, false,
	    &message)) != PROTO_STATUS_OK) {
		send_status(ctx->door, ctx->req, st, message);
		return;
	}
	if ((p = pending_new(ctx, kind, &q, &charge)) == NULL) {
		send_status(ctx->door, ctx->req, PROTO_STATUS_INTERNAL, NULL);
		return;
	}
	cache_describe_charged(ctx->agent->cache, p->q.secret_id, &charge.charge, on_described, p);
}

/* ---- passing a request to the upstream ---------------------------------------------------- */

/* The upstream's answer as it is; type from its __type for errors. */
static void
relay(struct sm_pending *p, const struct upstream_aws_reply *r, const cJSON *doc)
{
	const cJSON *t = doc != NULL ? cJSON_GetObjectItemCaseSensitive(doc, "__type") : NULL;
	const char *type = NULL;
	unsigned char *copy;
	int status = r->status >= 100 && r->status <= 599 ? (int)r->status : 502;

	if ((status < 200 || status > 299) && cJSON_IsString(t) && t->valuestring != NULL) {
		type = strrchr(t->valuestring, '#');
		type = type != NULL ? type + 1 : t->valuestring;
	}
	if ((copy = secmem_wipe_malloc(r->len + 1)) == NULL) {
		send_status(p->door, p->req, PROTO_STATUS_INTERNAL, NULL);
		return;
	}
	if (r->len > 0)
		memcpy(copy, r->body, r->len);
	sm_endpoint_send(p->door, p->req, status, type, copy, r->len, sm_endpoint_wipe_free, NULL);
}

static const char *
doc_str(const cJSON *doc, const char *name)
{
	const cJSON *m = doc != NULL ? cJSON_GetObjectItemCaseSensitive(doc, name) : NULL;

	return cJSON_IsString(m) ? m->valuestring : NULL;
}

/* Drops the SecretValues a caller may not read from a BatchGetSecretValue answer. */
static void
filter_values(struct sm_pending *p, cJSON *doc)
{
	cJSON *values = cJSON_GetObjectItemCaseSensitive(doc, "SecretValues"), *v, *next;

	if (!cJSON_IsArray(values))
		return;
	for (v = values->child; v != NULL; v = next) {
		const char *name = doc_str(v, "Name"), *arn = doc_str(v, "ARN");
		const struct backend_query q = { name != NULL ? name : "", NULL, NULL };

		next = v->next;
		if (!dispatch_granted(p->agent, &p->caller, PROTO_OP_GET, &q, name, arn))
			cJSON_Delete(cJSON_DetachItemViaPointer(values, v));
	}
}

static void
on_forwarded(void *arg, const struct upstream_aws_reply *r, const struct backend_error *error)
{
	struct sm_pending *p = arg;
	cJSON *doc = NULL;
	char reason[96];
	bool ok;

	if (error != NULL) {
		if (p->kind == P_FORWARD)
			dispatch_audit_forward(p->agent, &p->caller, p->operation, p->q.secret_id,
			    true, error->status, "not answered by the upstream");
		send_status(p->door, p->req, error->status, error->message);
		goto out;
	}
	ok = r->status >= 200 && r->status <= 299;
	doc = cJSON_ParseWithLength((const char *)r->body, r->len);
	switch (p->kind) {
	case P_FORWARD: {
		/* Read-your-writes: the cache forgets the secret before the answer leaves. */
		const char *ids[3] = { p->q.secret_id, doc_str(doc, "Name"), doc_str(doc, "ARN") };

		if (ok)
			cache_forget(p->agent->cache, ids, 3);
		snprintf(reason, sizeof(reason), "passed through; upstream answered HTTP %ld",
		    r->status);
		dispatch_audit_forward(p->agent, &p->caller, p->operation, p->q.secret_id, true,
		    -1, reason);
		relay(p, r, doc);
		break;
	}
	case P_VERSIONS:
		if (ok && !dispatch_granted(p->agent, &p->caller, PROTO_OP_DESCRIBE, &p->q,
		    doc_str(doc, "Name"), doc_str(doc, "ARN"))) {
			send_status(p->door, p->req, PROTO_STATUS_ACCESS_DENIED,
			    dispatch_access_denied_message());
			break;
		}
		relay(p, r, doc);
		break;
	case P_FILTERS:
		if (ok && doc != NULL && acl_enabled(p->agent->acl)) {
			filter_values(p, doc);
			send_cjson(p->door, p->req, doc);
			break;
		}
		relay(p, r, doc);
		break;
	default:
		break;
	}
out:
	cJSON_Delete(doc);	/* wipes (json_secure) */
	pending_free(p);
}

/* Starts p upstream with body; answers and frees p when it cannot. */
static void
forward(struct sm_pending *p, const char *operation, const char *body, size_t len)
{
	char target[UPSTREAM_AWS_MAX_TARGET + 1];

	snprintf(target, sizeof(target), "secretsmanager.%s", operation);
	if (upstream_aws_forward(p->agent->backend, target, body, len, on_forwarded, p) != 0) {
		send_status(p->door, p->req, PROTO_STATUS_INTERNAL, "cannot pass the request on");
		pending_free(p);
	}
}

/* One upstream call of the caller's budget, for a read passed upstream; false: answered. */
static bool
charge_one(const struct sm_api_ctx *ctx)
{
	struct dispatch_charge charge;

	dispatch_charge_for(&charge, ctx->agent, ctx->caller);
	if (charge.charge.allow != NULL && !charge.charge.allow(charge.charge.arg)) {
		send_status(ctx->door, ctx->req, PROTO_STATUS_LIMIT_EXCEEDED, charge.charge.refusal);
		return false;
	}
	return true;
}

static void
list_versions(const struct sm_api_ctx *ctx, const cJSON *in, const char *body, size_t len)
{
	struct backend_query q = { 0 };
	const char *message = NULL;
	struct sm_pending *p;
	enum proto_status st;

	if (!upstream_aws_is(ctx->agent->backend)) {
		/* The file backend: the cached description has every version. */
		describe(ctx, in, P_VERSIONS);
		return;
	}
	/* Upstream: only the service knows each version's CreatedDate and LastAccessedDate
	 * and the deprecated versions IncludeDeprecated asks for. */
	if (member_str(in, "SecretId", 1, PROTO_MAX_SECRET_ID, &q.secret_id) != 1) {
		bad_param(ctx->door, ctx->req, "SecretId");
		return;
	}
	if ((st = dispatch_admit(ctx->agent, ctx->caller, PROTO_OP_DESCRIBE, &q, false,
	    &message)) != PROTO_STATUS_OK) {
		send_status(ctx->door, ctx->req, st, message);
		return;
	}
	if (!charge_one(ctx))
		return;
	if ((p = pending_new(ctx, P_VERSIONS, &q, NULL)) == NULL) {
		send_status(ctx->door, ctx->req, PROTO_STATUS_INTERNAL, NULL);
		return;
	}
	forward(p, "ListSecretVersionIds", body, len);
}

/* ---- BatchGetSecretValue ------------------------------------------------------------------ */

static void
batch_error(struct sm_batch *b, size_t i, const char *code, const char *message)
{
	cJSON *e = cJSON_CreateObject();

	if (e == NULL)
		return;
	cJSON_AddStringToObject(e, "SecretId", b->items[i].id);
	cJSON_AddStringToObject(e, "ErrorCode", code);
	cJSON_AddStringToObject(e, "Message", message != NULL ? message : "");
	cJSON_AddItemToArray(b->errors, e);
}

/* Every id answered: {"SecretValues": [...], "Errors": [...]} in locked memory. */
static void
batch_finish(struct sm_batch *b)
{
	struct sm_pending *p = b->parent;
	static const char head[] = "{\"SecretValues\":[", mid[] = "],\"Errors\":", tail[] = "}";
	char *errors = cJSON_PrintUnformatted(b->errors);
	size_t need = sizeof(head) - 1 + sizeof(mid) - 1 + sizeof(tail) - 1, at = 0;
	unsigned char *out;
	bool first = true;

	if (errors == NULL) {
		send_status(p->door, p->req, PROTO_STATUS_INTERNAL, NULL);
		goto out;
	}
	need += strlen(errors);
	for (size_t i = 0; i < b->count; i++)
		need += b->items[i].json != NULL ? b->items[i].len + 1 : 0;
	if ((out = secmem_wipe_malloc(need)) == NULL) {
		send_status(p->door, p->req, PROTO_STATUS_INTERNAL, NULL);
		goto out;
	}
#define PUT(s, n) do { memcpy(out + at, (s), (n)); at += (n); } while (0)
	PUT(head, sizeof(head) - 1);
	for (size_t i = 0; i < b->count; i++) {
		if (b->items[i].json == NULL)
			continue;
		if (!first)
			PUT(",", 1);
		first = false;
		PUT(b->items[i].json, b->items[i].len);
	}
	PUT(mid, sizeof(mid) - 1);
	PUT(errors, strlen(errors));
	PUT(tail, sizeof(tail) - 1);
#undef PUT
	sm_endpoint_send(p->door, p->req, 200, NULL, out, at, sm_endpoint_wipe_free, NULL);
out:
	cJSON_free(errors);
	pending_free(p);
}

static void
batch_done_one(struct sm_batch *b)
{
	if (--b->remaining == 0)
		batch_finish(b);
}

static void
on_batch_value(void *arg, const struct backend_value *value, bool stale,
    const struct backend_error *error)
{
	struct sm_batch_item *it = arg;
	struct sm_batch *b = it->batch;
	struct sm_pending *p = b->parent;
	const struct backend_query q = { it->id, NULL, NULL };
	const char *type, *m;
	int http;
	size_t need;

	(void)stale;
	if (error != NULL) {
		dispatch_audit_answer(p->agent, &p->caller, PROTO_OP_GET, &q, error->status);
		type = status_error(error->status, error->message, &m, &http);
		batch_error(b, it->index, type, m);
	} else if (!dispatch_granted(p->agent, &p->caller, PROTO_OP_GET, &q, value->name,
	    value->arn)) {
		batch_error(b, it->index, "AccessDeniedException", dispatch_access_denied_message());
	} else {
		need = http_api_render_sdk_value(value, NULL, 0);
		if ((it->json = secmem_wipe_malloc(need)) == NULL ||
		    http_api_render_sdk_value(value, it->json, need) != need) {
			secmem_wipe_free(it->json);
			it->json = NULL;
			batch_error(b, it->index, "InternalServiceError", "out of memory");
		} else
			it->len = need;
	}
	batch_done_one(b);
}

static void
batch_get(const struct sm_api_ctx *ctx, const cJSON *in, const char *body, size_t len)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(in, "SecretIdList");
	const cJSON *filters = cJSON_GetObjectItemCaseSensitive(in, "Filters"), *e;
	struct dispatch_charge charge;
	struct sm_pending *p;
	struct sm_batch *b = NULL;
	size_t n = 0;

	if (list != NULL && cJSON_IsNull(list))
		list = NULL;
	if (filters != NULL && cJSON_IsNull(filters))
		filters = NULL;
	if ((list == NULL) == (filters == NULL)) {
		sm_endpoint_error(ctx->door, ctx->req, 400, "InvalidParameterException",
		    "Either SecretIdList or Filters must be given, but not both.");
		return;
	}
	if (filters != NULL) {
		if (!upstream_aws_is(ctx->agent->backend)) {
			sm_endpoint_error(ctx->door, ctx->req, 400, "InvalidRequestException",
			    "Filters need the aws backend");
			return;
		}
		/* Filtered answers are cut down to what the caller may read (filter_values). */
		if (!charge_one(ctx))
			return;
		if ((p = pending_new(ctx, P_FILTERS, NULL, NULL)) == NULL) {
			send_status(ctx->door, ctx->req, PROTO_STATUS_INTERNAL, NULL);
			return;
		}
		forward(p, "BatchGetSecretValue", body, len);
		return;
	}
	if (!cJSON_IsArray(list) || (n = (size_t)cJSON_GetArraySize(list)) == 0 || n > BATCH_MAX ||
	    cJSON_GetObjectItemCaseSensitive(in, "MaxResults") != NULL) {
		bad_param(ctx->door, ctx->req, "SecretIdList (1 to 20 ids, without MaxResults)");
		return;
	}
	cJSON_ArrayForEach(e, list) {
		if (!cJSON_IsString(e) || e->valuestring == NULL || e->valuestring[0] == '\0' ||
		    strlen(e->valuestring) > PROTO_MAX_SECRET_ID) {
			bad_param(ctx->door, ctx->req, "SecretIdList");
			return;
		}
	}
	if ((p = pending_new(ctx, P_BATCH, NULL, &charge)) == NULL ||
	    (b = calloc(1, sizeof(*b))) == NULL || (b->errors = cJSON_CreateArray()) == NULL) {
		if (p != NULL) {
			if (p->batch == NULL && b != NULL)
				free(b);
			pending_free(p);
		}
		send_status(ctx->door, ctx->req, PROTO_STATUS_INTERNAL, NULL);
		return;
	}
	p->batch = b;
	b->parent = p;
	b->count = n;
	for (size_t i = 0; i < n; i++) {
		b->items[i].batch = b;
		b->items[i].index = i;
		if ((b->items[i].id = strdup(cJSON_GetArrayItem(list, (int)i)->valuestring)) == NULL) {
			send_status(ctx->door, ctx->req, PROTO_STATUS_INTERNAL, NULL);
			pending_free(p);
			return;
		}
	}
	/* One more than the ids, so that answers given at once cannot finish it early. */
	b->remaining = n + 1;
	for (size_t i = 0; i < n; i++) {
		const struct backend_query q = { b->items[i].id, NULL, NULL };
		const char *message = NULL;
		enum proto_status st;
		const char *type, *m;
		int http;

		st = dispatch_admit(ctx->agent, ctx->caller, PROTO_OP_GET, &q, false, &message);
		if (st != PROTO_STATUS_OK) {
			type = status_error(st, message, &m, &http);
			batch_error(b, i, type, m);
			b->remaining--;
			continue;
		}
		cache_get_charged(ctx->agent->cache, &q, 0, &charge.charge, on_batch_value,
		    &b->items[i]);
	}
	batch_done_one(b);
}

/* ---- everything else: passed through, or refused ----------------------------------------- */

static void
write_op(const struct sm_api_ctx *ctx, const char *operation, const cJSON *in, const char *body,
    size_t len)
{
	const char *url = upstream_aws_url(ctx->agent->backend);
	struct backend_query q = { 0 };
	struct sm_pending *p;
	char msg[512];

	/* The secret the request is about: SecretId, or Name for CreateSecret. */
	if (member_str(in, "SecretId", 1, PROTO_MAX_SECRET_ID, &q.secret_id) != 1 &&
	    member_str(in, "Name", 1, PROTO_MAX_SECRET_ID, &q.secret_id) != 1)
		q.secret_id = NULL;
	if (!ctx->forward || url == NULL) {
		snprintf(msg, sizeof(msg), "smcache serves reads only (GetSecretValue,"
		    " DescribeSecret, BatchGetSecretValue, ListSecretVersionIds): send %s to %s%s",
		    operation, url != NULL ? url : "Secrets Manager itself",
		    url != NULL ? " (or set [endpoint] forward = yes with an [access] allow_write"
		    " rule)" : " (the agent's backend is not aws)");
		dispatch_audit_forward(ctx->agent, ctx->caller, operation, q.secret_id, false,
		    PROTO_STATUS_ACCESS_DENIED, "forward = no");
		sm_endpoint_error(ctx->door, ctx->req, 400, "AccessDeniedException", msg);
		return;
	}
	if (!acl_enabled(ctx->write_acl) || !acl_allows_id(ctx->write_acl, &ctx->caller->peer,
	    q.secret_id != NULL ? q.secret_id : "*") || !ctx->caller->uid_known) {
		snprintf(msg, sizeof(msg), "no [access] allow_write rule lets you %s %s", operation,
		    q.secret_id != NULL ? "this secret" : "(a rule granting * is needed)");
		dispatch_audit_forward(ctx->agent, ctx->caller, operation, q.secret_id, false,
		    PROTO_STATUS_ACCESS_DENIED, "no allow_write rule");
		sm_endpoint_error(ctx->door, ctx->req, 400, "AccessDeniedException", msg);
		return;
	}
	if (!charge_one(ctx))
		return;
	if ((p = pending_new(ctx, P_FORWARD, &q, NULL)) == NULL) {
		send_status(ctx->door, ctx->req, PROTO_STATUS_INTERNAL, NULL);
		return;
	}
	snprintf(p->operation, sizeof(p->operation), "%s", operation);
	forward(p, operation, body, len);
}

void
sm_api_handle(const struct sm_api_ctx *ctx, const char *operation, const char *body, size_t len)
{
	cJSON *in = cJSON_ParseWithLength(body, len);

	if (!cJSON_IsObject(in)) {
		sm_endpoint_error(ctx->door, ctx->req, 400, "SerializationException",
		    "The request body is not a JSON object");
		goto out;
	}
	if (strcmp(operation, "GetSecretValue") == 0)
		get_secret_value(ctx, in);
	else if (strcmp(operation, "DescribeSecret") == 0)
		describe(ctx, in, P_DESCRIBE);
	else if (strcmp(operation, "BatchGetSecretValue") == 0)
		batch_get(ctx, in, body, len);
	else if (strcmp(operation, "ListSecretVersionIds") == 0)
		list_versions(ctx, in, body, len);
	else
		write_op(ctx, operation, in, body, len);
out:
	cJSON_Delete(in);	/* wipes (json_secure) */
}

void
sm_api_shutdown(void)
{
	struct sm_pending *p;

	/*
	 * Before evhttp_free: a request whose client left is detached from any
	 * connection and ours to free. The cache and the backend never call these
	 * back now.
	 */
	while ((p = LIST_FIRST(&pendings)) != NULL) {
		if (evhttp_request_get_connection(p->req) == NULL)
			evhttp_request_free(p->req);
		pending_free(p);
	}
}
