/*
 * lambda_ext: the Lambda Extensions API client (see lambda_ext.h).
 *
 * Two HTTP connections to the runtime API: one for short control requests
 * (register, errors) with a 5 s timeout, one for the event/next long poll,
 * which blocks until the next invoke or shutdown. Lambda freezes the whole
 * execution environment between invokes and CLOCK_MONOTONIC runs on while it
 * is frozen, so the poll's timeout is long (12 h) and an expired or broken
 * poll is simply asked again, with a capped backoff; only a refusal by the API
 * (4xx) or a run of failures ends the extension.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "lambda_ext.h"

#define LAMBDA_EXT_PATH		"/2020-01-01/extension"
#define LAMBDA_EXT_MAX_BODY	65536
#define LAMBDA_EXT_CTL_TIMEOUT	5		/* seconds */
#define LAMBDA_EXT_POLL_TIMEOUT	(12 * 3600)	/* seconds; see the opening comment */
#define LAMBDA_EXT_BACKOFF_MIN	100		/* ms */
#define LAMBDA_EXT_BACKOFF_MAX	2000		/* ms */
#define LAMBDA_EXT_MAX_FAILURES	20		/* consecutive failed polls before giving up */

struct lambda_ext {
	struct event_base *base;
	struct evhttp_connection *ctl;
	struct evhttp_connection *poll;
	struct event *retry;
	char host[256];
	char host_header[300];
	uint16_t port;
	char name[128];
	char id[128];			/* Lambda-Extension-Identifier, once registered */
	bool registered;
	bool ready;
	bool polling;
	bool done;			/* SHUTDOWN seen or fatal: ask nothing more */
	unsigned failures;
	unsigned backoff_ms;
	struct lambda_ext_callbacks cb;
	struct lambda_ext_stats stats;
};

static void ext_poll(struct lambda_ext *ext);

static int
parse_runtime_api(const char *api, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon = strrchr(api, ':');
	char *end;
	unsigned long p;
	size_t len;

	if (colon == NULL || colon == api)
		return -1;
	len = (size_t)(colon - api);
	if (len >= hostlen)
		return -1;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || end == colon + 1 || p == 0 || p > 65535)
		return -1;
	memcpy(host, api, len);
	host[len] = '\0';
	/* An IPv6 literal comes bracketed: [::1]:9001. */
	if (host[0] == '[' && len > 2 && host[len - 1] == ']') {
		memmove(host, host + 1, len - 2);
		host[len - 2] = '\0';
	}
	*port = (uint16_t)p;
	return 0;
}

static void ext_fatal(struct lambda_ext *ext, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
ext_fatal(struct lambda_ext *ext, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	if (ext->done)
		return;
	ext->done = true;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (ext->cb.on_fatal != NULL)
		ext->cb.on_fatal(ext->cb.arg, why);
}

static struct evhttp_request *
ext_request(struct lambda_ext *ext, void (*done)(struct evhttp_request *, void *))
{
	struct evhttp_request *req = evhttp_request_new(done, ext);

	if (req == NULL)
		return NULL;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", ext->host_header);
	if (ext->registered)
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Lambda-Extension-Identifier", ext->id);
	return req;
}

/* The body as a NUL-terminated string (at most LAMBDA_EXT_MAX_BODY), or NULL. */
static char *
ext_body(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char *s;

	if (len > LAMBDA_EXT_MAX_BODY || (s = malloc(len + 1)) == NULL)
		return NULL;
	if (evbuffer_copyout(in, s, len) != (ev_ssize_t)len) {
		free(s);
		return NULL;
	}
	s[len] = '\0';
	return s;
}

/* ---- register ------------------------------------------------------------------------- */

static void
ext_registered(struct evhttp_request *req, void *arg)
{
	struct lambda_ext *ext = arg;
	const char *id;

	if (req == NULL || evhttp_request_get_response_code(req) != 200) {
		ext_fatal(ext, "Lambda extension registration failed (%s %d)",
		    req != NULL ? "HTTP status" : "no answer", req != NULL ?
		    evhttp_request_get_response_code(req) : 0);
		return;
	}
	id = evhttp_find_header(evhttp_request_get_input_headers(req), "Lambda-Extension-Identifier");
	if (id == NULL || id[0] == '\0' || strlen(id) >= sizeof(ext->id)) {
		ext_fatal(ext, "Lambda extension registration: no usable Lambda-Extension-Identifier");
		return;
	}
	memcpy(ext->id, id, strlen(id) + 1);
	ext->registered = true;
	ext->stats.registered = 1;
	if (ext->ready)
		ext_poll(ext);
}

static int
ext_register(struct lambda_ext *ext)
{
	static const char body[] = "{\"events\":[\"INVOKE\",\"SHUTDOWN\"]}";
	struct evhttp_request *req = ext_request(ext, ext_registered);

	if (req == NULL)
		return -1;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Lambda-Extension-Name", ext->name);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evbuffer_add(evhttp_request_get_output_buffer(req), body, sizeof(body) - 1);
	return evhttp_make_request(ext->ctl, req, EVHTTP_REQ_POST, LAMBDA_EXT_PATH "/register");
}

/* ---- event/next --------------------------------------------------------------------- */

static void
ext_retry_later(struct lambda_ext *ext)
{
	struct timeval tv;

	if (++ext->failures >= LAMBDA_EXT_MAX_FAILURES) {
		ext_fatal(ext, "Lambda extension: event/next failed %u times in a row", ext->failures);
		return;
	}
	ext->stats.event_errors++;
	ext->backoff_ms = ext->backoff_ms == 0 ? LAMBDA_EXT_BACKOFF_MIN :
	    (ext->backoff_ms * 2 > LAMBDA_EXT_BACKOFF_MAX ? LAMBDA_EXT_BACKOFF_MAX : ext->backoff_ms * 2);
	tv.tv_sec = ext->backoff_ms / 1000;
	tv.tv_usec = (ext->backoff_ms % 1000) * 1000;
	evtimer_add(ext->retry, &tv);
}

static void
ext_event(struct evhttp_request *req, void *arg)
{
	struct lambda_ext *ext = arg;
	const cJSON *type, *reason, *deadline;
	cJSON *doc = NULL;
	char *body = NULL;
	int status;

	ext->polling = false;
	if (ext->done)
		return;
	if (req == NULL || (status = evhttp_request_get_response_code(req)) == 0 || status >= 500) {
		ext_retry_later(ext);		/* timed out, broken, or the API's own trouble */
		return;
	}
	if (status != 200) {
		ext_fatal(ext, "Lambda extension: event/next refused (HTTP status %d)", status);
		return;
	}
	if ((body = ext_body(req)) == NULL || (doc = cJSON_Parse(body)) == NULL ||
	    !cJSON_IsString(type = cJSON_GetObjectItemCaseSensitive(doc, "eventType"))) {
		ext_retry_later(ext);
		goto out;
	}
	ext->failures = 0;
	ext->backoff_ms = 0;
	if (strcmp(type->valuestring, "SHUTDOWN") == 0) {
		reason = cJSON_GetObjectItemCaseSensitive(doc, "shutdownReason");
		deadline = cJSON_GetObjectItemCaseSensitive(doc, "deadlineMs");
		ext->done = true;
		if (ext->cb.on_shutdown != NULL)
			ext->cb.on_shutdown(ext->cb.arg,
			    cJSON_IsString(reason) ? reason->valuestring : "unknown",
			    cJSON_IsNumber(deadline) ? (int64_t)deadline->valuedouble : 0);
		goto out;
	}
	if (strcmp(type->valuestring, "INVOKE") == 0)
		ext->stats.invokes++;
	ext_poll(ext);
out:
	cJSON_Delete(doc);
	free(body);
}

static void
ext_poll(struct lambda_ext *ext)
{
	struct evhttp_request *req;

	if (ext->done || ext->polling || !ext->registered)
		return;
	if ((req = ext_request(ext, ext_event)) == NULL ||
	    evhttp_make_request(ext->poll, req, EVHTTP_REQ_GET, LAMBDA_EXT_PATH "/event/next") != 0) {
		ext_retry_later(ext);
		return;
	}
	ext->polling = true;
}

static void
ext_on_retry(evutil_socket_t fd, short what, void *arg)
{
	ext_poll(arg);
}

/* ---- public --------------------------------------------------------------------------- */

struct lambda_ext *
lambda_ext_new(struct event_base *base, const char *runtime_api, const char *name,
    const struct lambda_ext_callbacks *cb, char *err, size_t errlen)
{
	struct lambda_ext *ext;

	if ((ext = calloc(1, sizeof(*ext))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ext->base = base;
	ext->cb = *cb;
	if (runtime_api == NULL || parse_runtime_api(runtime_api, ext->host, sizeof(ext->host),
	    &ext->port) != 0) {
		snprintf(err, errlen, "AWS_LAMBDA_RUNTIME_API is %s%s%s: expected HOST:PORT",
		    runtime_api ? "'" : "", runtime_api ? runtime_api : "not set", runtime_api ? "'" : "");
		goto fail;
	}
	if (name == NULL || name[0] == '\0' || strlen(name) >= sizeof(ext->name)) {
		snprintf(err, errlen, "the extension's name must be 1..%zu bytes", sizeof(ext->name) - 1);
		goto fail;
	}
	memcpy(ext->name, name, strlen(name) + 1);
	if (strlen(runtime_api) >= sizeof(ext->host_header)) {
		snprintf(err, errlen, "AWS_LAMBDA_RUNTIME_API is too long");
		goto fail;
	}
	memcpy(ext->host_header, runtime_api, strlen(runtime_api) + 1);
	ext->ctl = evhttp_connection_base_new(base, NULL, ext->host, ext->port);
	ext->poll = evhttp_connection_base_new(base, NULL, ext->host, ext->port);
	ext->retry = evtimer_new(base, ext_on_retry, ext);
	if (ext->ctl == NULL || ext->poll == NULL || ext->retry == NULL) {
		snprintf(err, errlen, "cannot set up connections to the Lambda runtime API");
		goto fail;
	}
	evhttp_connection_set_timeout(ext->ctl, LAMBDA_EXT_CTL_TIMEOUT);
	evhttp_connection_set_timeout(ext->poll, LAMBDA_EXT_POLL_TIMEOUT);
	evhttp_connection_set_max_body_size(ext->ctl, LAMBDA_EXT_MAX_BODY);
	evhttp_connection_set_max_body_size(ext->poll, LAMBDA_EXT_MAX_BODY);
	return ext;
fail:
	lambda_ext_free(ext);
	return NULL;
}

int
lambda_ext_register(struct lambda_ext *ext, char *err, size_t errlen)
{
	if (ext_register(ext) != 0) {
		snprintf(err, errlen, "cannot send the registration to the Lambda runtime API at %s",
		    ext->host_header);
		return -1;
	}
	return 0;
}

void
lambda_ext_ready(struct lambda_ext *ext)
{
	ext->ready = true;
	ext_poll(ext);
}

/* One request on a private loop, for the last words of a process that is about
 * to exit (the main loop may not run again). Returns the HTTP status, 0 if none. */
struct sync_request {
	struct event_base *base;
	int status;
	char id[128];
};

static void
ext_sync_done(struct evhttp_request *req, void *arg)
{
	struct sync_request *sr = arg;
	const char *id;

	if (req != NULL) {
		sr->status = evhttp_request_get_response_code(req);
		id = evhttp_find_header(evhttp_request_get_input_headers(req),
		    "Lambda-Extension-Identifier");
		if (id != NULL && strlen(id) < sizeof(sr->id))
			memcpy(sr->id, id, strlen(id) + 1);
	}
	event_base_loopbreak(sr->base);
}

static int
ext_sync(struct lambda_ext *ext, const char *path, const char *error_type, const char *body,
    char *id_out, size_t id_len)
{
	struct sync_request sr = { NULL, 0, "" };
	struct evhttp_connection *conn = NULL;
	struct evhttp_request *req;
	struct evkeyvalq *h;
	struct timeval limit = { 1, 0 };

	if ((sr.base = event_base_new()) == NULL ||
	    (conn = evhttp_connection_base_new(sr.base, NULL, ext->host, ext->port)) == NULL ||
	    (req = evhttp_request_new(ext_sync_done, &sr)) == NULL)
		goto out;
	evhttp_connection_set_timeout(conn, 1);
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", ext->host_header);
	if (ext->registered)
		evhttp_add_header(h, "Lambda-Extension-Identifier", ext->id);
	else
		evhttp_add_header(h, "Lambda-Extension-Name", ext->name);
	if (error_type != NULL)
		evhttp_add_header(h, "Lambda-Extension-Function-Error-Type", error_type);
	evhttp_add_header(h, "Content-Type", "application/json");
	evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	if (evhttp_make_request(conn, req, EVHTTP_REQ_POST, path) != 0)
		goto out;
	event_base_loopexit(sr.base, &limit);
	event_base_dispatch(sr.base);
	if (id_out != NULL && sr.id[0] != '\0')
		snprintf(id_out, id_len, "%s", sr.id);
out:
	if (conn != NULL)
		evhttp_connection_free(conn);
	if (sr.base != NULL)
		event_base_free(sr.base);
	return sr.status;
}

void
lambda_ext_init_error(struct lambda_ext *ext, const char *error_type, const char *message)
{
	cJSON *doc = NULL;
	char *body = NULL;

	if (ext == NULL || ext->done)
		return;
	/* The error must name a registered extension: register now if that has not
	 * happened yet (start-up failed before the loop ran). */
	if (!ext->registered &&
	    ext_sync(ext, LAMBDA_EXT_PATH "/register", NULL, "{\"events\":[\"INVOKE\",\"SHUTDOWN\"]}",
	    ext->id, sizeof(ext->id)) == 200 && ext->id[0] != '\0')
		ext->registered = true;
	if ((doc = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(doc, "errorMessage", message) == NULL ||
	    cJSON_AddStringToObject(doc, "errorType", error_type) == NULL ||
	    (body = cJSON_PrintUnformatted(doc)) == NULL)
		goto out;
	(void)ext_sync(ext, LAMBDA_EXT_PATH "/init/error", error_type, body, NULL, 0);
	ext->done = true;
out:
	cJSON_free(body);
	cJSON_Delete(doc);
}

void
lambda_ext_get_stats(const struct lambda_ext *ext, struct lambda_ext_stats *out)
{
	*out = ext->stats;
}

void
lambda_ext_free(struct lambda_ext *ext)
{
	if (ext == NULL)
		return;
	if (ext->retry != NULL)
		event_free(ext->retry);
	if (ext->ctl != NULL)
		evhttp_connection_free(ext->ctl);
	if (ext->poll != NULL)
		evhttp_connection_free(ext->poll);
	free(ext);
}
