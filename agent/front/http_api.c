/*
 * http_api: the AWS Secrets Manager Agent's API over evhttp (see
 * http_api.h), reading through the same cache and the same rules as the
 * Unix socket (dispatch_admit, dispatch_granted).
 *
 * Values: a hit is answered with a body the cache shares (the
 * GetSecretValue JSON rendered once per version and loop pass, in locked
 * memory, wiped when its last reply is written), sent by reference; a miss
 * renders the JSON into a wiping buffer (secmem_wipe_calloc) handed to the
 * connection by reference and wiped by the evbuffer's cleanup callback once
 * written or dropped. No plaintext goes through evhttp's own copies.
 *
 * Errors: our own refusals are plain text as the AWS agent's (400 unknown
 * parameter, ...); answers from the secret store are the service's
 * {"__type": ..., "message": ...} with the status that agent uses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sodium.h>

#include "agent.h"
#include "backend.h"
#include "cache.h"
#include "config.h"
#include "dispatch.h"
#include "health.h"
#include "http_api.h"
#include "http_door.h"
#include "metrics.h"
#include "secmem.h"

/* A GET waiting for the backend. The caller is copied: its connection may go first. */
struct http_get {
	LIST_ENTRY(http_get) link;
	struct http_door *door;
	struct agent *agent;
	struct evhttp_request *req;
	struct dispatch_caller caller;
	struct backend_query q;
	char strings[];
};

/* One door per process: the GETs in flight, freed at shutdown. */
static LIST_HEAD(, http_get) pending_gets = LIST_HEAD_INITIALIZER(pending_gets);

/* ---- JSON --------------------------------------------------------------------------------- */

/* Counts every byte; writes only into a buffer known to be large enough. */
struct jw {
	unsigned char *out;		/* NULL: count only */
	size_t n;
};

static void
jw_raw(struct jw *w, const char *s, size_t len)
{
	if (w->out != NULL)
		memcpy(w->out + w->n, s, len);
	w->n += len;
}

static void
jw_lit(struct jw *w, const char *s)
{
	jw_raw(w, s, strlen(s));
}

/* A JSON string: '"', '\' and control bytes escaped (as serde_json does); other bytes as
 * they are (UTF-8). */
static void
jw_str(struct jw *w, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	static const char shorts[] = "\b\f\n\r\t";
	char esc[6] = { '\\', 'u', '0', '0', 0, 0 };
	const char *sp;

	jw_raw(w, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			char two[2] = { '\\', (char)c };

			jw_raw(w, two, 2);
		} else if ((sp = memchr(shorts, c, sizeof(shorts) - 1)) != NULL) {
			/* The short forms, as serde_json writes them. */
			char two[2] = { '\\', "bfnrt"[sp - shorts] };

			jw_raw(w, two, 2);
		} else if (c < 0x20) {
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			jw_raw(w, esc, 6);
		} else {
			jw_raw(w, (const char *)&s[i], 1);
		}
	}
	jw_raw(w, "\"", 1);
}

static void
jw_cstr(struct jw *w, const char *s)
{
	if (s == NULL)
		jw_lit(w, "null");
	else
		jw_str(w, s, strlen(s));
}

/* Base64 (standard alphabet, padded) as a JSON string. */
static void
jw_base64(struct jw *w, const unsigned char *data, size_t len)
{
	size_t b64 = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);

	jw_raw(w, "\"", 1);
	/* The encoder's NUL lands where the closing quote goes next. */
	if (w->out != NULL)
		sodium_bin2base64((char *)w->out + w->n, b64, data, len,
		    sodium_base64_VARIANT_ORIGINAL);
	w->n += b64 - 1;
	jw_raw(w, "\"", 1);
}

/*
 * The AWS agent's body: serde's GetSecretValueOutput, compact, fields in
 * this order, CreatedDate as a string of epoch seconds with the fraction
 * (serde_with TimestampSecondsWithFrac<String>), null when unknown.
 */
static void
render(struct jw *w, const struct backend_value *v, bool sdk)
{
	char date[48];

	jw_lit(w, "{\"ARN\":");
	jw_cstr(w, v->arn);
	jw_lit(w, ",\"Name\":");
	jw_cstr(w, v->name);
	jw_lit(w, ",\"VersionId\":");
	jw_cstr(w, v->version_id);
	if (v->is_binary) {
		jw_lit(w, ",\"SecretBinary\":");
		jw_base64(w, v->data, v->len);
	} else {
		jw_lit(w, ",\"SecretString\":");
		jw_str(w, (const char *)v->data, v->len);
	}
	if (v->stage_count > 0) {
		jw_lit(w, ",\"VersionStages\":[");
		for (size_t i = 0; i < v->stage_count; i++) {
			if (i > 0)
				jw_lit(w, ",");
			jw_cstr(w, v->stages[i]);
		}
		jw_lit(w, "]");
	}
	jw_lit(w, ",\"CreatedDate\":");
	if (v->created_ms <= 0) {
		jw_lit(w, "null");
	} else if (sdk) {
		/* The service's epoch number (AWS JSON 1.1 timestamps), e.g. 1569534789.046. */
		long long ms = v->created_ms % 1000;

		if (ms == 0)
			snprintf(date, sizeof(date), "%lld", (long long)(v->created_ms / 1000));
		else
			snprintf(date, sizeof(date), "%lld.%03lld", (long long)(v->created_ms / 1000),
			    ms);
		jw_lit(w, date);
	} else {
		long long ms = v->created_ms % 1000;

		if (ms == 0)
			snprintf(date, sizeof(date), "\"%lld\"", (long long)(v->created_ms / 1000));
		else if (ms % 100 == 0)
			snprintf(date, sizeof(date), "\"%lld.%lld\"", (long long)(v->created_ms / 1000),
			    ms / 100);
		else if (ms % 10 == 0)
			snprintf(date, sizeof(date), "\"%lld.%02lld\"",
			    (long long)(v->created_ms / 1000), ms / 10);
		else
			snprintf(date, sizeof(date), "\"%lld.%03lld\"",
			    (long long)(v->created_ms / 1000), ms);
		jw_lit(w, date);
	}
	jw_lit(w, "}");
}

static size_t
render_into(const struct backend_value *value, unsigned char *out, size_t cap, bool sdk)
{
	struct jw w = { NULL, 0 };
	size_t need;

	render(&w, value, sdk);
	need = w.n;
	if (out == NULL || cap < need)
		return need;
	w.out = out;
	w.n = 0;
	render(&w, value, sdk);
	return w.n == need ? need : 0;
}

size_t
http_api_render_value(const struct backend_value *value, unsigned char *out, size_t cap)
{
	return render_into(value, out, cap, false);
}

size_t
http_api_render_sdk_value(const struct backend_value *value, unsigned char *out, size_t cap)
{
	return render_into(value, out, cap, true);
}

/* ---- replies ------------------------------------------------------------------------------ */

static void
wipe_and_free(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	secmem_wipe_free((void *)(uintptr_t)data);	/* wipes */
}

static void
release_shared(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	cache_body_release(arg);
}

/* Sends body by reference; cleanup runs once it is written or dropped (also on failure). */
static void
send_json_ref(struct http_door *door, struct evhttp_request *req, const void *body, size_t len,
    bool stale, evbuffer_ref_cleanup_cb cleanup, void *arg)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct evbuffer *buf = evbuffer_new();

	if (buf == NULL || evbuffer_add_reference(buf, body, len, cleanup, arg) != 0) {
		cleanup(body, len, arg);
		if (buf != NULL)
			evbuffer_free(buf);
		http_door_send_text(door, req, 500, "out of memory");
		return;
	}
	http_door_count_reply(door, 200);
	evhttp_add_header(out, "Content-Type", "application/json");
	if (stale)
		evhttp_add_header(out, "X-Smcache-Stale", "true");
	evhttp_send_reply(req, 200, "OK", buf);
	evbuffer_free(buf);	/* empty unless the client is gone: then this wipes */
}

/* The service's error body, as the AWS agent writes it (but escaped). */
static void
send_service_error(struct http_door *door, struct evhttp_request *req, int code,
    const char *type, const char *message)
{
	struct evbuffer *buf = evbuffer_new();
	char body[768];
	struct jw w = { NULL, 0 };

	jw_lit(&w, "{\"__type\":\"");
	jw_lit(&w, type);
	jw_lit(&w, "\"");
	if (message != NULL) {
		jw_lit(&w, ", \"message\":");
		jw_str(&w, message, strnlen(message, 300));
	}
	jw_lit(&w, "}");
	if (w.n <= sizeof(body)) {
		w.out = (unsigned char *)body;
		w.n = 0;
		jw_lit(&w, "{\"__type\":\"");
		jw_lit(&w, type);
		jw_lit(&w, "\"");
		if (message != NULL) {
			jw_lit(&w, ", \"message\":");
			jw_str(&w, message, strnlen(message, 300));
		}
		jw_lit(&w, "}");
		if (buf != NULL)
			evbuffer_add(buf, body, w.n);
	}
	http_door_count_reply(door, code);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "application/json");
	evhttp_send_reply(req, code, NULL, buf);
	if (buf != NULL)
		evbuffer_free(buf);
}

/*
 * The AWS agent answers a timeout 504 and other I/O failures 502. The
 * backend error says which only in words: these are the aws backend's
 * (upstream_aws.c: "did not answer in time", "no answer from Secrets
 * Manager within N ms"), tested in test_http_door.
 */
static bool
upstream_timed_out(const char *message)
{
	return message != NULL && (strstr(message, "in time") != NULL ||
	    strstr(message, "no answer") != NULL || strstr(message, "timed out") != NULL);
}

/* An answer other than a value, with the status the AWS agent would use. */
static void
send_status(struct http_door *door, struct evhttp_request *req, enum proto_status st,
    const char *message)
{
	switch (st) {
	case PROTO_STATUS_NOT_FOUND:
		send_service_error(door, req, 400, "ResourceNotFoundException", message);
		break;
	case PROTO_STATUS_BAD_REQUEST:
		send_service_error(door, req, 400, "InvalidRequestException", message);
		break;
	case PROTO_STATUS_ACCESS_DENIED:
		send_service_error(door, req, 403, "AccessDeniedException", message);
		break;
	case PROTO_STATUS_LIMIT_EXCEEDED:
		send_service_error(door, req, 429, "ThrottlingException", message);
		break;
	case PROTO_STATUS_UPSTREAM_UNAVAILABLE:
		if (upstream_timed_out(message))
			send_service_error(door, req, 504, "TimeoutError", "Timeout");
		else
			send_service_error(door, req, 502, "ConnectionError", message);
		break;
	default:
		send_service_error(door, req, 500, "InternalFailure", NULL);
		break;
	}
}

/* ---- GET ---------------------------------------------------------------------------------- */

struct hit_ctx {
	struct http_door *door;
	struct agent *agent;
	struct evhttp_request *req;
	const struct dispatch_caller *caller;
	const struct backend_query *q;
};

static void
on_hit(void *arg, struct cache_hit *hit, bool stale, struct cache_body *body)
{
	const struct hit_ctx *h = arg;
	const char *arn = NULL, *name = NULL;
	const uint8_t *data;
	size_t len;

	cache_hit_names(hit, &arn, &name);
	if (!dispatch_granted(h->agent, h->caller, PROTO_OP_GET, h->q, name, arn)) {
		cache_body_release(body);
		send_status(h->door, h->req, PROTO_STATUS_ACCESS_DENIED,
		    dispatch_access_denied_message());
		return;
	}
	data = cache_body_data(body, &len);
	send_json_ref(h->door, h->req, data, len, stale, release_shared, body);
}

static void
on_value(void *arg, const struct backend_value *value, bool stale, const struct backend_error *error)
{
	struct http_get *g = arg;
	unsigned char *out = NULL;
	size_t need;

	LIST_REMOVE(g, link);
	if (error != NULL) {
		dispatch_audit_answer(g->agent, &g->caller, PROTO_OP_GET, &g->q, error->status);
		send_status(g->door, g->req, error->status, error->message);
		goto out;
	}
	if (!dispatch_granted(g->agent, &g->caller, PROTO_OP_GET, &g->q, value->name, value->arn)) {
		send_status(g->door, g->req, PROTO_STATUS_ACCESS_DENIED,
		    dispatch_access_denied_message());
		goto out;
	}
	need = http_api_render_value(value, NULL, 0);
	if ((out = secmem_wipe_calloc(1, need)) == NULL ||
	    http_api_render_value(value, out, need) != need) {
		secmem_wipe_free(out);
		send_status(g->door, g->req, PROTO_STATUS_INTERNAL, NULL);
		goto out;
	}
	send_json_ref(g->door, g->req, out, need, stale, wipe_and_free, NULL);
out:
	free(g);
}

static void
serve_get(struct http_door *door, struct agent *agent, struct evhttp_request *req,
    const struct dispatch_caller *caller, const struct backend_query *q, bool refresh)
{
	const struct hit_ctx h = { door, agent, req, caller, q };
	struct dispatch_charge charge;
	const char *message = NULL;
	enum proto_status st;
	struct http_get *g;
	size_t ls[3], total = 0;
	const char *src[3] = { q->secret_id, q->version_stage, q->version_id };
	const char **dst[3];
	char *p;

	st = dispatch_admit(agent, caller, PROTO_OP_GET, q, refresh, &message);
	if (st != PROTO_STATUS_OK) {
		send_status(door, req, st, message);
		return;
	}
	if (!refresh && cache_get_shared(agent->cache, q, 0, http_api_render_value, on_hit,
	    (void *)&h) == 1)
		return;
	for (size_t i = 0; i < 3; i++)
		total += (ls[i] = src[i] != NULL ? strlen(src[i]) + 1 : 0);
	if ((g = calloc(1, sizeof(*g) + total)) == NULL) {
		send_status(door, req, PROTO_STATUS_INTERNAL, NULL);
		return;
	}
	g->door = door;
	g->agent = agent;
	g->req = req;
	g->caller = *caller;
	dispatch_charge_for(&charge, agent, caller);	/* used during cache_get_charged() only */
	g->caller.limits = NULL;	/* held by the connection, which may close first */
	g->caller.uid_unknown_why = NULL;
	dst[0] = &g->q.secret_id;
	dst[1] = &g->q.version_stage;
	dst[2] = &g->q.version_id;
	p = g->strings;
	for (size_t i = 0; i < 3; i++) {
		if (src[i] == NULL)
			continue;
		memcpy(p, src[i], ls[i]);
		*dst[i] = p;
		p += ls[i];
	}
	LIST_INSERT_HEAD(&pending_gets, g, link);
	cache_get_charged(agent->cache, &g->q, refresh ? CACHE_FORCE_REFRESH : 0, &charge.charge,
	    on_value, g);
}

/* ---- parameters --------------------------------------------------------------------------- */

struct params {
	const char *secret_id;
	const char *version_id;
	const char *version_stage;
	bool refresh;
};

/* The AWS agent's reading of refreshNow. */
static int
parse_refresh(const char *v, bool *out)
{
	if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0)
		*out = true;
	else if (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

/*
 * The query's parameters into p (pointing into kv); secretId only when
 * allowed. 0, or -1 with the AWS agent's message in msg.
 */
static int
parse_params(const char *query, struct evkeyvalq *kv, struct params *p, bool allow_secret_id,
    char *msg, size_t msglen)
{
	struct evkeyval *e;

	if (query == NULL || *query == '\0')
		return 0;
	/* "%00" would cut a value short after decoding: refuse rather than guess. */
	for (const char *c = query; (c = strchr(c, '%')) != NULL; c++) {
		if (c[1] == '0' && c[2] == '0') {
			snprintf(msg, msglen, "invalid parameter value");
			return -1;
		}
	}
	if (evhttp_parse_query_str(query, kv) != 0) {
		snprintf(msg, msglen, "malformed query");
		return -1;
	}
	TAILQ_FOREACH(e, kv, next) {
		if (allow_secret_id && strcmp(e->key, "secretId") == 0) {
			p->secret_id = e->value;
		} else if (strcmp(e->key, "versionId") == 0) {
			p->version_id = e->value;
		} else if (strcmp(e->key, "versionStage") == 0) {
			p->version_stage = e->value;
		} else if (strcmp(e->key, "refreshNow") == 0) {
			if (parse_refresh(e->value, &p->refresh) != 0) {
				snprintf(msg, msglen, "invalid refreshNow value");
				return -1;
			}
		} else {
			snprintf(msg, msglen, "unknown parameter: %.64s", e->key);
			return -1;
		}
	}
	return 0;
}

static void
get_secret(struct http_door *door, struct agent *agent, struct evhttp_request *req,
    const struct dispatch_caller *caller, const char *path, const struct config *cfg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	struct evkeyvalq kv = TAILQ_HEAD_INITIALIZER(kv);
	struct params p = { 0 };
	struct backend_query q;
	char msg[128];
	char *path_id = NULL;
	size_t plen = strlen(cfg->http_path_prefix);
	bool path_form = strcmp(path, "/secretsmanager/get") != 0;

	if (parse_params(query, &kv, &p, !path_form, msg, sizeof(msg)) != 0) {
		http_door_send_text(door, req, 400, msg);
		goto out;
	}
	if (path_form) {
		size_t len;

		if ((path_id = evhttp_uridecode(path + plen, 0, &len)) == NULL ||
		    len != strlen(path_id)) {
			http_door_send_text(door, req, 400, "invalid secret ID");
			goto out;
		}
		if (len == 0) {
			http_door_send_text(door, req, 400, "missing secret ID");
			goto out;
		}
		p.secret_id = path_id;
	} else if (p.secret_id == NULL || p.secret_id[0] == '\0') {
		http_door_send_text(door, req, 400, "missing parameter secretId");
		goto out;
	}
	if (strlen(p.secret_id) > PROTO_MAX_SECRET_ID ||
	    (p.version_id != NULL && strlen(p.version_id) > PROTO_MAX_VERSION_ID) ||
	    (p.version_stage != NULL && strlen(p.version_stage) > PROTO_MAX_VERSION_STAGE)) {
		http_door_send_text(door, req, 400, "parameter too long");
		goto out;
	}
	q.secret_id = p.secret_id;
	q.version_id = p.version_id != NULL && p.version_id[0] != '\0' ? p.version_id : NULL;
	q.version_stage = p.version_stage != NULL && p.version_stage[0] != '\0' ?
	    p.version_stage : NULL;
	serve_get(door, agent, req, caller, &q, p.refresh);
out:
	evhttp_clear_headers(&kv);
	free(path_id);
}

/* ---- /ready, /metrics --------------------------------------------------------------------- */

bool
http_api_ready(struct agent *agent, char *why, size_t whylen)
{
	struct agent_health h;
	size_t used = 0;
	int n;

	/* The same answer as HEALTH (smcache health): one home for readiness. */
	agent_health_check(agent, &h);
	if (h.ready)
		return true;
	why[0] = '\0';
	for (unsigned i = 0; i < h.reason_count && used < whylen; i++) {
		n = snprintf(why + used, whylen - used, "%s%s", i > 0 ? "; " : "", h.reasons[i]);
		if (n < 0)
			break;
		used += (size_t)n;
	}
	return false;
}

static void
serve_ready(struct http_door *door, struct agent *agent, struct evhttp_request *req)
{
	char why[128], text[160];

	if (http_api_ready(agent, why, sizeof(why))) {
		http_door_send_text(door, req, 200, "ready");
		return;
	}
	snprintf(text, sizeof(text), "not ready: %s", why);
	http_door_send_text(door, req, 503, text);
}

static void
serve_metrics(struct http_door *door, struct agent *agent, struct evhttp_request *req,
    const struct dispatch_caller *caller)
{
	struct evbuffer *buf;
	const char *message;

	if (caller != NULL &&
	    dispatch_admit(agent, caller, PROTO_OP_STATS, NULL, false, &message) != PROTO_STATUS_OK) {
		send_status(door, req, PROTO_STATUS_ACCESS_DENIED, message);
		return;
	}
	if ((buf = evbuffer_new()) == NULL) {
		http_door_send_text(door, req, 500, "out of memory");
		return;
	}
	/* Counted first, so the scrape includes itself, as STATS does. */
	http_door_count_reply(door, 200);
	metrics_render(buf, agent, door);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, 200, "OK", buf);
	evbuffer_free(buf);
}

void
http_api_handle(struct http_door *door, struct agent *agent, struct evhttp_request *req,
    const char *path, const struct dispatch_caller *caller, const struct config *cfg)
{
	const char *uri = evhttp_request_get_uri(req);

	if (uri != NULL && strlen(uri) > cfg->http_max_uri_size) {
		http_door_send_text(door, req, 414, "URI too long");
		return;
	}
	if (strcmp(path, "/ping") == 0)
		http_door_send_text(door, req, 200, "healthy");
	else if (strcmp(path, "/ready") == 0)
		serve_ready(door, agent, req);
	else if (strcmp(path, "/metrics") == 0)
		serve_metrics(door, agent, req, caller);
	else if (caller != NULL && (strcmp(path, "/secretsmanager/get") == 0 ||
	    strncmp(path, cfg->http_path_prefix, strlen(cfg->http_path_prefix)) == 0))
		get_secret(door, agent, req, caller, path, cfg);
	else
		http_door_send_text(door, req, 404, "Not found");
}

void
http_api_shutdown(struct http_door *door)
{
	struct http_get *g, *next;

	(void)door;
	/*
	 * Before evhttp_free: a request whose client left is detached from any
	 * connection and ours to free; the others go with their connections. The
	 * cache never calls these back now.
	 */
	for (g = LIST_FIRST(&pending_gets); g != NULL; g = next) {
		next = LIST_NEXT(g, link);
		LIST_REMOVE(g, link);
		if (evhttp_request_get_connection(g->req) == NULL)
			evhttp_request_free(g->req);
		free(g);
	}
}
