/*
 * sm_endpoint: the AWS JSON 1.1 protocol and the caller (see sm_endpoint.h).
 *
 * A request means something only when it is what an SDK sends: POST /,
 * Content-Type application/x-amz-json-1.1, X-Amz-Target
 * secretsmanager.<Operation>, and a well-formed SigV4 Authorization for
 * service secretsmanager whose X-Amz-Date is within 5 minutes of our clock
 * (the service's skew window). A URL-only SSRF (the victim fetches a URL)
 * produces none of these; a browser page cannot send them without a CORS
 * preflight, which is refused (OPTIONS is not POST, and no
 * Access-Control-Allow-* header is ever sent).
 *
 * auth = peer: the caller is the uid owning the client socket (the door's
 * sock_diag); the signature itself is not checked, as the agent does not know
 * the SDK's secret key. auth = keys: the Authorization must name a key of
 * keys_file and its signature must verify (sigv4_verify, constant time); the
 * caller is then that key (key:NAME rules), with the socket's uid kept for
 * the per-uid budgets.
 *
 * Error bodies and codes are the service's for the same faults
 * (MissingAuthenticationTokenException, IncompleteSignatureException,
 * InvalidSignatureException, UnrecognizedClientException), status 400 as
 * JSON 1.1 errors are, with x-amzn-RequestId and x-amzn-ErrorType.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sodium.h>

#include "acl.h"
#include "agent.h"
#include "config.h"
#include "dispatch.h"
#include "http_door.h"
#include "log.h"
#include "secmem.h"
#include "sigv4.h"
#include "sm_api.h"
#include "sm_endpoint.h"
#include "sys_file.h"
#include "upstream_aws.h"

#define SKEW_S		300	/* the service's clock-skew window */
#define MAX_KEYS	1024
#define MAX_KEYS_FILE	(256 * 1024)
#define MAX_TARGET_OP	64
#define SERVICE		"secretsmanager"

struct sm_key {
	char *access_key_id;
	char *secret;		/* in secmem (sodium_malloc'd block below) */
	char *name;
};

struct sm_endpoint {
	const struct config *cfg;
	enum sm_endpoint_auth auth;
	struct sm_key keys[MAX_KEYS];
	size_t nkeys;
	char *key_store;	/* sodium_malloc: every key's strings */
	size_t key_store_len;
	struct acl *write_acl;	/* [access] allow_write */
};

/* ---- keys file ---------------------------------------------------------------------------- */

/*
 * Lines "ACCESS_KEY_ID SECRET_ACCESS_KEY NAME"; blank lines and lines
 * starting with '#' skipped. The file holds secret keys: it must be trusted
 * as every file the agent reads (sys_file: owned by root or the agent's user,
 * writable by no one else) and, besides, readable by no one else.
 */
static int
load_keys(struct sm_endpoint *ep, const char *path, char *err, size_t errlen)
{
	const struct sys_file_opts o = { .max_size = MAX_KEYS_FILE, .trust = true };
	struct sys_file f = { 0 };
	char why[256], *line, *save = NULL, *p;
	size_t lineno = 0;
	int rc = -1;

	if (sys_file_read(path, &o, &f, why, sizeof(why)) != 1) {
		snprintf(err, errlen, "[endpoint] keys_file %s: %s", path, why);
		return -1;
	}
	if ((f.st.st_mode & 077) != 0) {
		snprintf(err, errlen, "[endpoint] keys_file %s holds secret keys and is readable"
		    " by group or others (mode %04o); fix: chmod 600 %s", path,
		    (unsigned)(f.st.st_mode & 07777), path);
		goto out;
	}
	if ((ep->key_store = sodium_malloc(f.len + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	ep->key_store_len = f.len + 1;
	memcpy(ep->key_store, f.data, f.len);
	ep->key_store[f.len] = '\0';
	for (line = strtok_r(ep->key_store, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char *field[4] = { NULL }, *fsave = NULL;
		size_t n = 0;

		lineno++;
		if ((p = strchr(line, '\r')) != NULL)
			*p = '\0';
		line += strspn(line, " \t");
		if (*line == '\0' || *line == '#')
			continue;
		for (p = strtok_r(line, " \t", &fsave); p != NULL && n < 4;
		    p = strtok_r(NULL, " \t", &fsave))
			field[n++] = p;
		if (n != 3 || strlen(field[0]) > SIGV4_MAX_ACCESS_KEY ||
		    strlen(field[1]) > SIGV4_MAX_SECRET_KEY) {
			snprintf(err, errlen, "[endpoint] keys_file %s line %zu: expected"
			    " ACCESS_KEY_ID SECRET_ACCESS_KEY NAME", path, lineno);
			goto out;
		}
		if (ep->nkeys == MAX_KEYS) {
			snprintf(err, errlen, "[endpoint] keys_file %s: more than %d keys", path,
			    MAX_KEYS);
			goto out;
		}
		for (size_t i = 0; i < ep->nkeys; i++) {
			if (strcmp(ep->keys[i].access_key_id, field[0]) == 0) {
				snprintf(err, errlen, "[endpoint] keys_file %s line %zu: access key"
				    " %s is listed twice", path, lineno, field[0]);
				goto out;
			}
		}
		ep->keys[ep->nkeys++] = (struct sm_key){ field[0], field[1], field[2] };
	}
	if (ep->nkeys == 0) {
		snprintf(err, errlen, "[endpoint] keys_file %s lists no key", path);
		goto out;
	}
	sodium_mprotect_readonly(ep->key_store);
	rc = 0;
out:
	sys_file_free(&f);	/* wipes */
	return rc;
}

int
sm_endpoint_open(struct sm_endpoint **out, const struct config *cfg, char *err, size_t errlen)
{
	struct sm_endpoint *ep;

	*out = NULL;
	if ((ep = calloc(1, sizeof(*ep))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ep->cfg = cfg;
	ep->auth = cfg->endpoint_auth == SM_AUTH_KEYS ? SM_AUTH_KEYS : SM_AUTH_PEER;
	if (ep->auth == SM_AUTH_KEYS && load_keys(ep, cfg->endpoint_keys_file, err, errlen) != 0)
		goto fail;
	if ((ep->write_acl = acl_new((const char *const *)cfg->access_allow_write.items,
	    cfg->access_allow_write.count, err, errlen)) == NULL)
		goto fail;
	*out = ep;
	return 0;
fail:
	sm_endpoint_free(ep);
	return -1;
}

void
sm_endpoint_free(struct sm_endpoint *ep)
{
	if (ep == NULL)
		return;
	if (ep->key_store != NULL)
		sodium_free(ep->key_store);	/* wipes */
	acl_free(ep->write_acl);
	free(ep);
}

void
sm_endpoint_shutdown(struct sm_endpoint *ep)
{
	if (ep != NULL)
		sm_api_shutdown();
}

/* ---- the loop guard ----------------------------------------------------------------------- */

/* "scheme://host[:port]/..." into host and port (the scheme's default when absent). */
static int
url_host_port(const char *url, char *host, size_t hostlen, unsigned *port)
{
	const char *p = strstr(url, "://"), *end, *colon = NULL;
	size_t len;

	if (p == NULL)
		return -1;
	*port = strncasecmp(url, "https", 5) == 0 ? 443 : 80;
	p += 3;
	len = strcspn(p, "/?#");
	end = p + len;
	if (*p == '[') {
		const char *close = memchr(p, ']', len);

		if (close == NULL)
			return -1;
		if ((size_t)(close - p - 1) >= hostlen)
			return -1;
		memcpy(host, p + 1, (size_t)(close - p - 1));
		host[close - p - 1] = '\0';
		if (close + 1 < end && close[1] == ':')
			colon = close + 1;
	} else {
		colon = memchr(p, ':', len);
		len = colon != NULL ? (size_t)(colon - p) : len;
		if (len == 0 || len >= hostlen)
			return -1;
		memcpy(host, p, len);
		host[len] = '\0';
	}
	if (colon != NULL)
		*port = (unsigned)strtoul(colon + 1, NULL, 10);
	return 0;
}

static bool
is_wildcard(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static bool
same_address(const struct sockaddr *a, const struct sockaddr_storage *listen_ss)
{
	if (a->sa_family != listen_ss->ss_family)
		return false;
	if (is_wildcard(listen_ss))
		return true;
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		    ((const struct sockaddr_in *)listen_ss)->sin_addr.s_addr;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
	    &((const struct sockaddr_in6 *)listen_ss)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

int
sm_endpoint_start(struct sm_endpoint *ep, struct agent *agent, char *err, size_t errlen)
{
	const char *url = upstream_aws_url(agent->backend);
	const struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	char host[256], why[128];
	unsigned port;
	int rc = 0;

	if (url == NULL || url_host_port(url, host, sizeof(host), &port) != 0)
		return 0;
	/* At start-up, before serving: resolving a name may take a moment. */
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return 0;
	for (size_t i = 0; i < ep->cfg->endpoint_listen.count && rc == 0; i++) {
		struct sockaddr_storage ss;
		socklen_t len;
		unsigned lport;

		if (http_door_parse_address(ep->cfg->endpoint_listen.items[i], &ss, &len, why,
		    sizeof(why)) != 0)
			continue;
		lport = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port :
		    ((struct sockaddr_in6 *)&ss)->sin6_port);
		if (lport != port)
			continue;
		for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
			if (same_address(ai->ai_addr, &ss)) {
				snprintf(err, errlen, "the agent's own upstream endpoint %s is its"
				    " [endpoint] listen = %s: it would call itself. The agent reads"
				    " AWS_ENDPOINT_URL_SECRETS_MANAGER / AWS_ENDPOINT_URL (and"
				    " [aws] endpoint) too: unset them in the agent's environment,"
				    " or set [aws] endpoint to the real Secrets Manager", url,
				    ep->cfg->endpoint_listen.items[i]);
				rc = -1;
				break;
			}
		}
	}
	freeaddrinfo(res);
	return rc;
}

/* ---- replies ------------------------------------------------------------------------------ */

static void
add_request_id(struct evkeyvalq *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[16];
	char id[37];
	size_t o = 0;

	randombytes_buf(r, sizeof(r));
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
	for (size_t i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			id[o++] = '-';
		id[o++] = hex[r[i] >> 4];
		id[o++] = hex[r[i] & 0xf];
	}
	id[o] = '\0';
	evhttp_add_header(out, "x-amzn-RequestId", id);
}

void
sm_endpoint_json_free(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	cJSON_free((void *)(uintptr_t)data);
}

void
sm_endpoint_send(struct http_door *door, struct evhttp_request *req, int status,
    const char *error_type, const void *body, size_t len, sm_endpoint_cleanup cleanup, void *arg)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct evbuffer *buf;

	if ((buf = http_door_body_ref(body, len, cleanup, arg)) == NULL) {
		http_door_count_reply(door, 500);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	http_door_count_reply(door, status);
	evhttp_add_header(out, "Content-Type", "application/x-amz-json-1.1");
	add_request_id(out);
	if (error_type != NULL)
		evhttp_add_header(out, "x-amzn-ErrorType", error_type);
	evhttp_send_reply(req, status, NULL, buf);
	evbuffer_free(buf);
}

void
sm_endpoint_error(struct http_door *door, struct evhttp_request *req, int status,
    const char *type, const char *message)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;

	if (o != NULL && cJSON_AddStringToObject(o, "__type", type) != NULL &&
	    cJSON_AddStringToObject(o, "Message", message != NULL ? message : "") != NULL)
		text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (text == NULL) {
		http_door_count_reply(door, 500);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	sm_endpoint_send(door, req, status, type, text, strlen(text), sm_endpoint_json_free, NULL);
}

/* ---- the protocol ------------------------------------------------------------------------- */

/* "application/x-amz-json-1.1", optionally with parameters ("; charset=utf-8"). */
static bool
content_type_ok(const char *v)
{
	static const char want[] = "application/x-amz-json-1.1";
	size_t n = sizeof(want) - 1;

	if (v == NULL || strncasecmp(v, want, n) != 0)
		return false;
	v += n;
	v += strspn(v, " \t");
	return *v == '\0' || *v == ';';
}

/* "secretsmanager.Operation" -> Operation (letters only), or NULL. */
static const char *
target_operation(const char *v)
{
	static const char prefix[] = SERVICE ".";
	const char *op;
	size_t n;

	if (v == NULL || strncmp(v, prefix, sizeof(prefix) - 1) != 0)
		return NULL;
	op = v + sizeof(prefix) - 1;
	n = strlen(op);
	if (n == 0 || n > MAX_TARGET_OP)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (!isalpha((unsigned char)op[i]))
			return NULL;
	}
	return op;
}

/* YYYYMMDDTHHMMSSZ -> seconds; -1 when malformed. */
static long long
amz_date_seconds(const char *v)
{
	struct tm tm = { 0 };

	if (v == NULL || strlen(v) != SIGV4_AMZ_DATE_LEN || v[8] != 'T' || v[15] != 'Z')
		return -1;
	for (size_t i = 0; i < 15; i++) {
		if (i != 8 && !isdigit((unsigned char)v[i]))
			return -1;
	}
	tm.tm_year = (v[0] - '0') * 1000 + (v[1] - '0') * 100 + (v[2] - '0') * 10 + (v[3] - '0') -
	    1900;
	tm.tm_mon = (v[4] - '0') * 10 + (v[5] - '0') - 1;
	tm.tm_mday = (v[6] - '0') * 10 + (v[7] - '0');
	tm.tm_hour = (v[9] - '0') * 10 + (v[10] - '0');
	tm.tm_min = (v[11] - '0') * 10 + (v[12] - '0');
	tm.tm_sec = (v[13] - '0') * 10 + (v[14] - '0');
	return (long long)timegm(&tm);
}

static void
format_amz_date(time_t t, char out[SIGV4_AMZ_DATE_LEN + 1])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, SIGV4_AMZ_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm);
}

/* The request as sigv4 sees it; headers point into evhttp's. -1: too many headers. */
static int
collect_headers(struct evkeyvalq *in, struct sigv4_header *h, size_t cap, size_t *n)
{
	struct evkeyval *kv;

	*n = 0;
	TAILQ_FOREACH(kv, in, next) {
		if (*n == cap)
			return -1;
		h[(*n)++] = (struct sigv4_header){ kv->key, kv->value };
	}
	return 0;
}

/*
 * The Authorization and the caller it proves. 0: *caller is who is asking;
 * -1: answered here.
 */
static int
authenticate(struct sm_endpoint *ep, struct http_door *door, struct evhttp_request *req,
    const char *body, size_t len, struct dispatch_caller *caller)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct sigv4_header headers[SIGV4_MAX_HEADERS];
	struct sigv4_request sreq = { 0 };
	struct sigv4_auth auth;
	enum sigv4_error e = SIGV4_OK;
	const char *date = evhttp_find_header(in, "X-Amz-Date");
	const struct sm_key *key = NULL;
	char msg[256], now_s[SIGV4_AMZ_DATE_LEN + 1], then_s[SIGV4_AMZ_DATE_LEN + 1];
	long long when;
	time_t now = time(NULL);
	size_t n;

	if (collect_headers(in, headers, SIGV4_MAX_HEADERS, &n) != 0) {
		sm_endpoint_error(door, req, 400, "IncompleteSignatureException",
		    "Too many headers to verify the request signature");
		return -1;
	}
	sreq.method = "POST";
	sreq.path = "/";
	sreq.headers = headers;
	sreq.header_count = n;
	sreq.body = body;
	sreq.body_len = len;
	if (sigv4_auth_find(&sreq, &auth, &e) != 0) {
		if (e == SIGV4_E_AUTH_MISSING)
			sm_endpoint_error(door, req, 400, "MissingAuthenticationTokenException",
			    "Missing Authentication Token");
		else
			sm_endpoint_error(door, req, 400, "IncompleteSignatureException",
			    "Authorization header requires 'Credential', 'Signature' and"
			    " 'SignedHeaders' parameters in the AWS4-HMAC-SHA256 form");
		return -1;
	}
	if (strcmp(auth.service, SERVICE) != 0) {
		snprintf(msg, sizeof(msg), "Credential should be scoped to correct service: '%s'.",
		    SERVICE);
		sm_endpoint_error(door, req, 400, "InvalidSignatureException", msg);
		return -1;
	}
	if ((when = amz_date_seconds(date)) < 0 || strncmp(date, auth.date, SIGV4_DATE_LEN) != 0) {
		sm_endpoint_error(door, req, 400, "IncompleteSignatureException",
		    "X-Amz-Date must be YYYYMMDDTHHMMSSZ on the credential's day");
		return -1;
	}
	if (when < (long long)now - SKEW_S || when > (long long)now + SKEW_S) {
		format_amz_date(now, now_s);
		format_amz_date(when < (long long)now ? now - SKEW_S : now + SKEW_S, then_s);
		snprintf(msg, sizeof(msg), "Signature %s: %s is now %s than %s (%s %s 5 min.)",
		    when < (long long)now ? "expired" : "not yet current", date,
		    when < (long long)now ? "earlier" : "later", then_s, now_s,
		    when < (long long)now ? "-" : "+");
		sm_endpoint_error(door, req, 400, "InvalidSignatureException", msg);
		return -1;
	}
	if (ep->auth == SM_AUTH_PEER)
		return 0;
	/* Every key is compared, so the time taken says nothing about which exist. */
	for (size_t i = 0; i < ep->nkeys; i++) {
		size_t kl = strlen(ep->keys[i].access_key_id);

		if (kl == strlen(auth.access_key_id) &&
		    sodium_memcmp(ep->keys[i].access_key_id, auth.access_key_id, kl) == 0)
			key = &ep->keys[i];
	}
	if (key == NULL) {
		sm_endpoint_error(door, req, 400, "UnrecognizedClientException",
		    "The security token included in the request is invalid.");
		return -1;
	}
	if (sigv4_verify(&sreq, &auth, key->secret, &e) != 0) {
		if (e == SIGV4_E_MISMATCH)
			sm_endpoint_error(door, req, 400, "InvalidSignatureException",
			    "The request signature we calculated does not match the signature you"
			    " provided. Check your AWS Secret Access Key and signing method."
			    " Consult the service documentation for details.");
		else
			sm_endpoint_error(door, req, 400, "IncompleteSignatureException",
			    sigv4_strerror(e));
		return -1;
	}
	/* The key is who asks; the socket's uid still pays the per-uid budgets. */
	caller->peer.key = key->name;
	caller->peer.groups = NULL;
	caller->peer.ngroups = 0;
	caller->uid_known = true;
	return 0;
}

void
sm_endpoint_handle(struct sm_endpoint *ep, struct http_door *door, struct agent *agent,
    struct evhttp_request *req, const struct dispatch_caller *caller)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evbuffer *inbuf = evhttp_request_get_input_buffer(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	const char *op;
	struct dispatch_caller who = *caller;
	struct sm_api_ctx ctx;
	size_t len = evbuffer_get_length(inbuf);
	char *body = NULL;

	who.peer.key = NULL;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		/* OPTIONS too: no CORS preflight ever succeeds. */
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
		sm_endpoint_error(door, req, 405, "UnknownOperationException",
		    "Only POST / with the AWS JSON 1.1 protocol is served");
		goto out;
	}
	if (path == NULL || strcmp(path, "/") != 0 || (query != NULL && *query != '\0')) {
		sm_endpoint_error(door, req, 404, "UnknownOperationException",
		    "Only POST / with the AWS JSON 1.1 protocol is served");
		goto out;
	}
	if (!content_type_ok(evhttp_find_header(in, "Content-Type"))) {
		sm_endpoint_error(door, req, 400, "SerializationException",
		    "Content-Type must be application/x-amz-json-1.1");
		goto out;
	}
	if ((op = target_operation(evhttp_find_header(in, "X-Amz-Target"))) == NULL) {
		sm_endpoint_error(door, req, 400, "UnknownOperationException",
		    "X-Amz-Target must be secretsmanager.<Operation>");
		goto out;
	}
	/* The body, copied into locked memory, and evhttp's copy wiped at once: a write's
	 * may hold a secret. The reply may free the request, so nothing of it is
	 * touched after sm_api_handle(). */
	if ((body = secmem_wipe_malloc(len + 1)) == NULL) {
		sm_endpoint_error(door, req, 500, "InternalServiceError", "out of memory");
		goto out;
	}
	if (len > 0) {
		unsigned char *view = evbuffer_pullup(inbuf, -1);

		if (view == NULL) {
			sm_endpoint_error(door, req, 500, "InternalServiceError", "out of memory");
			goto out;
		}
		memcpy(body, view, len);
		sodium_memzero(view, len);
		evbuffer_drain(inbuf, len);
	}
	body[len] = '\0';
	if (authenticate(ep, door, req, body, len, &who) != 0)
		goto out;
	ctx = (struct sm_api_ctx){ door, agent, req, &who, ep->cfg->endpoint_forward != 0,
		ep->write_acl };
	sm_api_handle(&ctx, op, body, len);
out:
	secmem_wipe_free(body);	/* wipes */
}
