/*
 * upstream_aws: owns the life of a Secrets Manager request: credentials,
 * signing, the HTTP exchange, retries with backoff, the total deadline,
 * counters and handing results to callbacks. The wire format is aws_json's.
 *
 * A request (struct aws_call) moves through: waiting for credentials ->
 * HTTP in flight -> (backoff timer -> HTTP in flight)* -> finished. Its
 * deadline timer runs from the start and ends it wherever it is. Every live
 * call is on the backend's list, so freeing the backend cancels them all.
 *
 * User callbacks are made with be->busy raised. backend_free() from inside
 * one only marks the backend dying; the code that made the callback sees
 * that, stops, and the outermost frame releases everything.
 */
#define LOG_COMPONENT "aws"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <sodium.h>

#include "aws_credentials.h"
#include "aws_json.h"
#include "aws_profile.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "sigv4.h"
#include "sm_id.h"
#include "sys_clock.h"
#include "upstream_aws.h"

#define UA_SERVICE		"secretsmanager"
#define UA_CONTENT_TYPE		"application/x-amz-json-1.1"
#define UA_DEFAULT_CONNECT_MS	2000
#define UA_DEFAULT_REQUEST_MS	5000
#define UA_DEFAULT_UPSTREAM_MS	8000
#define UA_MAX_PAGES		20	/* NextToken pages followed for one batch */
#define UA_SHOWN_ID		64	/* secret ids are shortened to this in messages */

enum ua_op { UA_GET, UA_DESCRIBE, UA_BATCH, UA_FORWARD };

enum ua_state {
	UA_IDLE,		/* between steps */
	UA_WAIT_CREDS,		/* on be->creds_wait */
	UA_IN_FLIGHT,		/* call->http set */
	UA_BACKOFF,		/* timer set: retry */
	UA_FAILING,		/* timer set: report call->error */
};

struct ua_backend;
struct ua_batch;

struct ua_call {
	TAILQ_ENTRY(ua_call) entry;		/* be->calls */
	TAILQ_ENTRY(ua_call) wait_entry;	/* be->creds_wait, in UA_WAIT_CREDS */
	struct ua_backend *be;
	enum ua_op op;
	enum ua_state state;
	const char *target;			/* X-Amz-Target */
	char *body;				/* request JSON (aws_json_free) */
	size_t body_len;
	char shown_id[UA_SHOWN_ID + 4];		/* for log lines */
	struct timespec deadline;		/* CLOCK_MONOTONIC */
	unsigned int retries;
	struct event *timer;			/* backoff or deferred failure */
	struct event *deadline_ev;
	struct http_call *http;
	struct backend_error error;		/* the latest failure */
	backend_value_cb value_cb;
	backend_describe_cb describe_cb;
	void *arg;
	upstream_aws_forward_cb forward_cb;	/* UA_FORWARD */
	char forward_target[UPSTREAM_AWS_MAX_TARGET + 1];
	struct ua_batch *batch;			/* UA_BATCH, or a UA_GET of a batch fallback */
	size_t batch_index;			/* that UA_GET's id */
};

struct ua_batch {
	TAILQ_ENTRY(ua_batch) entry;
	struct upstream_aws_batch_cbs cbs;
	void *arg;
	size_t count;
	size_t remaining;			/* ids not answered yet */
	unsigned int pages;
	unsigned int children;			/* fallback GETs still running */
	struct timespec deadline;
	bool answered[UPSTREAM_AWS_BATCH_MAX];
	char *ids[UPSTREAM_AWS_BATCH_MAX];
};

TAILQ_HEAD(ua_call_list, ua_call);

struct ua_backend {
	struct backend backend;			/* first: the ops cast back */
	struct aws_resolved resolved;
	struct http_client *http;
	struct aws_credential_provider *creds;
	char host[256];
	char path[512];
	char url[1024];
	long request_timeout_ms;
	long upstream_timeout_ms;
	unsigned int max_retries;
	struct upstream_aws_stats stats;
	struct ua_call_list calls;
	struct ua_call_list creds_wait;
	TAILQ_HEAD(, ua_batch) batches;
	bool creds_fetching;
	unsigned int busy;			/* user callbacks on the stack */
	bool dying;				/* backend_free() called inside a callback */
	bool releasing;
};

static const struct backend_ops ua_ops;

static void ua_call_start(struct ua_call *);
static void ua_call_finish(struct ua_call *);
static void ua_release(struct ua_backend *);

/* ---- time ----------------------------------------------------------------------------- */

static struct timespec
ua_now(void)
{
	uint64_t ns = sys_clock_ns();

	return (struct timespec){
		.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)
	};
}

static struct timespec
ua_after_ms(struct timespec t, long ms)
{
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

/* Milliseconds from now until t, rounded up; <= 0 when past. */
static long
ua_ms_until(struct timespec t)
{
	struct timespec now = ua_now();
	long long ns = (long long)(t.tv_sec - now.tv_sec) * 1000000000LL + (t.tv_nsec - now.tv_nsec);

	if (ns <= 0)
		return 0;
	return (long)((ns + 999999) / 1000000);
}

static struct timeval
ua_tv_ms(long ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	return tv;
}

/* ---- pure helpers (exported for tests) ------------------------------------------------- */

unsigned int
upstream_aws_backoff_ms(unsigned int retry, uint32_t random)
{
	unsigned long long ceiling = UPSTREAM_AWS_BACKOFF_BASE_MS;

	while (retry-- > 0 && ceiling < UPSTREAM_AWS_BACKOFF_CAP_MS)
		ceiling *= 2;
	if (ceiling > UPSTREAM_AWS_BACKOFF_CAP_MS)
		ceiling = UPSTREAM_AWS_BACKOFF_CAP_MS;
	/* Full jitter: uniform in [0, ceiling]. */
	return (unsigned int)(((unsigned long long)random * (ceiling + 1)) >> 32);
}

int
upstream_aws_endpoint_parts(const char *endpoint, char *host, size_t host_len, char *path,
    size_t path_len, char *url, size_t url_len)
{
	const char *auth, *end;
	size_t alen;
	bool https;
	int n;

	if (endpoint == NULL)
		return -1;
	if (strncasecmp(endpoint, "https://", 8) == 0) {
		https = true;
		auth = endpoint + 8;
	} else if (strncasecmp(endpoint, "http://", 7) == 0) {
		https = false;
		auth = endpoint + 7;
	} else
		return -1;
	if (strpbrk(endpoint, "?# \t\r\n") != NULL)
		return -1;
	end = auth + strcspn(auth, "/");
	alen = (size_t)(end - auth);
	if (alen == 0 || memchr(auth, '@', alen) != NULL)
		return -1;
	/* The Host header AWS signs is what curl would send: no default port. */
	if (https && alen > 4 && memcmp(end - 4, ":443", 4) == 0)
		alen -= 4;
	else if (!https && alen > 3 && memcmp(end - 3, ":80", 3) == 0)
		alen -= 3;
	if (alen >= host_len)
		return -1;
	memcpy(host, auth, alen);
	host[alen] = '\0';
	n = snprintf(path, path_len, "%s", *end != '\0' ? end : "/");
	if (n < 0 || (size_t)n >= path_len)
		return -1;
	n = snprintf(url, url_len, "%s%s", endpoint, *end != '\0' ? "" : "/");
	if (n < 0 || (size_t)n >= url_len)
		return -1;
	return 0;
}

/* ---- callbacks into the user ---------------------------------------------------------- */

/*
 * After a user callback returned: true when the backend was freed meanwhile
 * (released here if this is the outermost frame); the caller then stops
 * touching anything the backend owns.
 */
static bool
ua_gone(struct ua_backend *be)
{
	if (!be->dying)
		return false;
	if (be->busy == 0)
		ua_release(be);
	return true;
}

/* ---- calls ---------------------------------------------------------------------------- */

static void ua_on_timer(evutil_socket_t, short, void *);
static void ua_on_deadline(evutil_socket_t, short, void *);

static void
ua_shown_id(char *dst, size_t len, const char *id)
{
	size_t n = strlen(id);

	if (n + 1 <= len)
		snprintf(dst, len, "%s", id);
	else
		snprintf(dst, len, "%.*s...", (int)(len - 4), id);
	for (; *dst != '\0'; dst++)
		if ((unsigned char)*dst < 0x20 || *dst == 0x7f)
			*dst = '?';
}

static struct ua_call *
ua_call_new(struct ua_backend *be, enum ua_op op, char *body, const char *shown_id,
    struct timespec deadline)
{
	struct ua_call *c;

	if (body == NULL)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		aws_json_free(body);
		return NULL;
	}
	c->be = be;
	c->op = op;
	c->body = body;
	c->body_len = strlen(body);
	c->deadline = deadline;
	c->target = op == UA_GET ? "secretsmanager.GetSecretValue" :
	    op == UA_DESCRIBE ? "secretsmanager.DescribeSecret" :
	    op == UA_FORWARD ? c->forward_target : "secretsmanager.BatchGetSecretValue";
	ua_shown_id(c->shown_id, sizeof(c->shown_id), shown_id);
	c->timer = evtimer_new(be->backend.base, ua_on_timer, c);
	c->deadline_ev = evtimer_new(be->backend.base, ua_on_deadline, c);
	if (c->timer == NULL || c->deadline_ev == NULL) {
		if (c->timer != NULL)
			event_free(c->timer);
		if (c->deadline_ev != NULL)
			event_free(c->deadline_ev);
		aws_json_free(body);
		free(c);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&be->calls, c, entry);
	return c;
}

/* Takes c off every list and stops its I/O; its callback can no longer fire. */
static void
ua_call_detach(struct ua_call *c)
{
	struct ua_backend *be = c->be;

	if (c->http != NULL) {
		http_call_cancel(c->http);
		c->http = NULL;
	}
	if (c->state == UA_WAIT_CREDS)
		TAILQ_REMOVE(&be->creds_wait, c, wait_entry);
	c->state = UA_IDLE;
	if (c->timer != NULL) {
		event_free(c->timer);
		c->timer = NULL;
	}
	if (c->deadline_ev != NULL) {
		event_free(c->deadline_ev);
		c->deadline_ev = NULL;
	}
	if (c->be != NULL) {
		TAILQ_REMOVE(&be->calls, c, entry);
		c->be = NULL;
	}
}

static void
ua_call_free(struct ua_call *c)
{
	if (c == NULL)
		return;
	if (c->be != NULL)
		ua_call_detach(c);
	aws_json_free(c->body);
	free(c);
}

static void ua_call_fail_soon(struct ua_call *, enum proto_status, const char *, ...)
    __attribute__((format(printf, 3, 4)));

/* Records an error and reports it from the event loop (never re-entrantly). */
static void
ua_call_fail_soon(struct ua_call *c, enum proto_status status, const char *fmt, ...)
{
	va_list ap;
	char msg[sizeof(c->error.message)];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	backend_error_set(&c->error, status, "%s", msg);
	c->state = UA_FAILING;
	event_active(c->timer, EV_TIMEOUT, 0);
}

/* ---- batches -------------------------------------------------------------------------- */

static void
ua_batch_free(struct ua_backend *be, struct ua_batch *b)
{
	TAILQ_REMOVE(&be->batches, b, entry);
	for (size_t i = 0; i < b->count; i++)
		free(b->ids[i]);
	free(b);
}

/* Answers one id (once). Returns -1 when the backend went away in the callback. */
static int
ua_batch_item(struct ua_backend *be, struct ua_batch *b, size_t index,
    const struct backend_value *value, const struct backend_error *error)
{
	if (index >= b->count || b->answered[index])
		return 0;
	b->answered[index] = true;
	b->remaining--;
	if (value != NULL)
		be->stats.batch_items_ok++;
	else
		be->stats.batch_items_error++;
	be->busy++;
	b->cbs.item(b->arg, index, value, error);
	be->busy--;
	return ua_gone(be) ? -1 : 0;
}

/* Answers every id not answered yet with error. */
static int
ua_batch_fail_rest(struct ua_backend *be, struct ua_batch *b, const struct backend_error *error)
{
	for (size_t i = 0; i < b->count; i++) {
		if (!b->answered[i] && ua_batch_item(be, b, i, NULL, error) != 0)
			return -1;
	}
	return 0;
}

/* Everything answered: done() and free. Returns -1 when the backend went away. */
static int
ua_batch_done(struct ua_backend *be, struct ua_batch *b)
{
	struct upstream_aws_batch_cbs cbs = b->cbs;
	void *arg = b->arg;

	ua_batch_free(be, b);
	be->busy++;
	cbs.done(arg);
	be->busy--;
	return ua_gone(be) ? -1 : 0;
}

/*
 * The whole batch failed with not-found: moto does this when one id's
 * current version has no value. Asks each unanswered id on its own.
 * Returns -1 when the backend went away.
 */
static int
ua_batch_fall_back(struct ua_backend *be, struct ua_batch *b)
{
	struct backend_error error;

	be->stats.batch_fallbacks++;
	log_debug("aws: BatchGetSecretValue failed as a whole; asking %zu secret(s) one by one",
	    b->remaining);
	for (size_t i = 0; i < b->count; i++) {
		struct backend_query q = { .secret_id = b->ids[i] };
		struct ua_call *c;

		if (b->answered[i])
			continue;
		c = ua_call_new(be, UA_GET, aws_json_get_request(&q), b->ids[i], b->deadline);
		if (c == NULL) {
			backend_error_set(&error, PROTO_STATUS_INTERNAL, "out of memory");
			if (ua_batch_item(be, b, i, NULL, &error) != 0)
				return -1;
			continue;
		}
		c->batch = b;
		c->batch_index = i;
		b->children++;
		ua_call_start(c);
	}
	if (b->children == 0)
		return ua_batch_done(be, b);
	return 0;
}

/* ---- finishing ------------------------------------------------------------------------ */

static void
ua_count_error(struct ua_backend *be, const struct ua_call *c)
{
	if (c->batch == NULL)	/* a batch's own call speaks for the upstream */
		backend_note(&be->backend, &c->error);
	switch (c->op) {
	case UA_GET:
		if (c->batch == NULL)
			be->backend.counters.get_error++;
		break;
	case UA_DESCRIBE:
		be->backend.counters.describe_error++;
		break;
	case UA_BATCH:
		be->stats.batch_error++;
		break;
	case UA_FORWARD:
		break;
	}
}

static void
ua_log_error(const struct ua_call *c)
{
	const struct backend_error *e = &c->error;
	enum log_level level = LOG_DEBUG;

	/* Operators watch warn and error: outages, denials and rejected credentials. */
	if (e->status == PROTO_STATUS_UPSTREAM_AUTH || e->status == PROTO_STATUS_INTERNAL)
		level = LOG_ERROR;
	else if (e->status == PROTO_STATUS_UPSTREAM_UNAVAILABLE ||
	    e->status == PROTO_STATUS_ACCESS_DENIED)
		level = LOG_WARN;
	log_msg(level, "aws: %s %s: %s: %s", c->target + strlen(UA_SERVICE) + 1, c->shown_id,
	    proto_status_name(e->status), e->message);
}

/* Reports c->error to whoever waits for c and frees c. */
static void
ua_call_finish(struct ua_call *c)
{
	struct ua_backend *be = c->be;
	struct ua_batch *b = c->batch;

	ua_call_detach(c);
	ua_count_error(be, c);
	ua_log_error(c);
	switch (c->op) {
	case UA_GET:
		if (b != NULL) {
			b->children--;
			if (ua_batch_item(be, b, c->batch_index, NULL, &c->error) == 0 &&
			    b->children == 0)
				(void)ua_batch_done(be, b);
			break;
		}
		be->busy++;
		c->value_cb(c->arg, NULL, &c->error);
		be->busy--;
		(void)ua_gone(be);
		break;
	case UA_DESCRIBE:
		be->busy++;
		c->describe_cb(c->arg, NULL, &c->error);
		be->busy--;
		(void)ua_gone(be);
		break;
	case UA_FORWARD:
		be->busy++;
		c->forward_cb(c->arg, NULL, &c->error);
		be->busy--;
		(void)ua_gone(be);
		break;
	case UA_BATCH:
		if (c->error.status == PROTO_STATUS_NOT_FOUND && b->remaining > 1 &&
		    b->remaining == b->count) {
			(void)ua_batch_fall_back(be, b);
			break;
		}
		if (ua_batch_fail_rest(be, b, &c->error) == 0)
			(void)ua_batch_done(be, b);
		break;
	}
	ua_call_free(c);
}

/* A retryable failure in c->error: back off and try again, or give up. */
static void
ua_call_retry(struct ua_call *c)
{
	struct ua_backend *be = c->be;
	struct timeval tv;
	unsigned int delay;
	long left;
	size_t n;

	if (c->retries >= be->max_retries) {
		n = strlen(c->error.message);
		if (be->max_retries > 0 && n + 1 < sizeof(c->error.message))
			snprintf(c->error.message + n, sizeof(c->error.message) - n,
			    " (after %u attempts)", c->retries + 1);
		ua_call_finish(c);
		return;
	}
	delay = upstream_aws_backoff_ms(c->retries, randombytes_random());
	left = ua_ms_until(c->deadline);
	if ((long)delay >= left) {
		ua_call_finish(c);
		return;
	}
	c->retries++;
	be->stats.retries++;
	log_debug("aws: %s %s: retry %u in %u ms after: %s", c->target + strlen(UA_SERVICE) + 1,
	    c->shown_id, c->retries, delay, c->error.message);
	c->state = UA_BACKOFF;
	tv = ua_tv_ms(delay);
	evtimer_add(c->timer, &tv);
}

/* ---- success -------------------------------------------------------------------------- */

static void ua_malformed(struct ua_call *, const char *, bool);

/* about_secret: the answer was about the secret (a JSON object), one of its
 * fields was not acceptable (a SecretString with a NUL byte, bad base64). */
static void
ua_malformed(struct ua_call *c, const char *why, bool about_secret)
{
	backend_error_set(&c->error, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
	    "malformed response from Secrets Manager: %s", why);
	c->error.about_secret = about_secret;
	ua_call_finish(c);
}

static void
ua_get_ok(struct ua_call *c, const struct http_response *r)
{
	struct ua_backend *be = c->be;
	struct ua_batch *b = c->batch;
	struct aws_get_result res;
	char err[160];

	if (aws_json_parse_get(r->body, r->body_len, &res, err, sizeof(err)) != 0) {
		ua_malformed(c, err, res.answer_parsed);
		return;
	}
	ua_call_detach(c);
	if (b != NULL) {
		b->children--;
		if (ua_batch_item(be, b, c->batch_index, &res.v.value, NULL) == 0 &&
		    b->children == 0)
			(void)ua_batch_done(be, b);
	} else {
		be->backend.counters.get_ok++;
		backend_note(&be->backend, NULL);
		be->busy++;
		c->value_cb(c->arg, &res.v.value, NULL);
		be->busy--;
		(void)ua_gone(be);
	}
	aws_get_result_free(&res);
	ua_call_free(c);
}

static void
ua_describe_ok(struct ua_call *c, const struct http_response *r)
{
	struct ua_backend *be = c->be;
	struct aws_describe_result res;
	char err[160];

	if (aws_json_parse_describe(r->body, r->body_len, &res, err, sizeof(err)) != 0) {
		ua_malformed(c, err, false);
		return;
	}
	ua_call_detach(c);
	res.d.raw_json = (const char *)r->body;	/* NUL-terminated (http.h) */
	be->backend.counters.describe_ok++;
	backend_note(&be->backend, NULL);
	be->busy++;
	c->describe_cb(c->arg, &res.d, NULL);
	be->busy--;
	(void)ua_gone(be);
	aws_describe_result_free(&res);
	ua_call_free(c);
}

/* Hands one page's values and errors to the ids they answer. -1: backend gone. */
static int
ua_batch_page(struct ua_backend *be, struct ua_batch *b, const struct aws_batch_result *res)
{
	struct backend_error error;

	for (size_t v = 0; v < res->value_count; v++) {
		const struct backend_value *val = &res->values[v].value;

		for (size_t i = 0; i < b->count; i++) {
			if (!b->answered[i] && sm_id_matches(b->ids[i], val->arn, val->name) &&
			    ua_batch_item(be, b, i, val, NULL) != 0)
				return -1;
		}
	}
	for (size_t e = 0; e < res->error_count; e++) {
		for (size_t i = 0; i < b->count; i++) {
			if (b->answered[i] || strcmp(b->ids[i], res->errors[e].secret_id) != 0)
				continue;
			(void)aws_batch_error_classify(&res->errors[e], &error);
			if (ua_batch_item(be, b, i, NULL, &error) != 0)
				return -1;
		}
	}
	return 0;
}

static void
ua_batch_ok(struct ua_call *c, const struct http_response *r)
{
	struct ua_backend *be = c->be;
	struct ua_batch *b = c->batch;
	struct aws_batch_result res;
	struct backend_error error;
	char err[160], *body;

	if (aws_json_parse_batch(r->body, r->body_len, &res, err, sizeof(err)) != 0) {
		ua_malformed(c, err, false);
		return;
	}
	b->pages++;
	backend_note(&be->backend, NULL);
	/* The call stays on the list while items are answered: a callback that
	 * frees the backend must cancel it. */
	c->state = UA_IDLE;
	if (ua_batch_page(be, b, &res) != 0) {
		aws_batch_result_free(&res);
		return;	/* the backend released c with everything else */
	}
	if (res.next_token != NULL && b->remaining > 0 && b->pages < UA_MAX_PAGES) {
		body = aws_json_batch_request((const char *const *)b->ids, b->count,
		    res.next_token);
		aws_batch_result_free(&res);
		if (body == NULL) {
			backend_error_set(&c->error, PROTO_STATUS_INTERNAL,
			    "cannot build the next BatchGetSecretValue request");
			ua_call_finish(c);
			return;
		}
		aws_json_free(c->body);
		c->body = body;
		c->body_len = strlen(body);
		c->retries = 0;
		ua_call_start(c);
		return;
	}
	aws_batch_result_free(&res);
	ua_call_detach(c);
	be->stats.batch_ok++;
	backend_error_set(&error, PROTO_STATUS_NOT_FOUND,
	    "not in BatchGetSecretValue's answer");
	if (ua_batch_fail_rest(be, b, &error) == 0)
		(void)ua_batch_done(be, b);
	ua_call_free(c);
}

/* ---- the HTTP exchange ---------------------------------------------------------------- */

static void
ua_on_http(void *arg, const struct http_response *r, enum http_error error,
    const char *error_message)
{
	struct ua_call *c = arg;
	struct ua_backend *be = c->be;
	struct aws_error_info info;
	bool retry;

	c->http = NULL;
	c->state = UA_IDLE;
	if (c->op == UA_FORWARD && error == HTTP_OK) {
		const struct upstream_aws_reply reply = { r->status, r->body, r->body_len,
			r->content_type };

		ua_call_detach(c);
		be->busy++;
		c->forward_cb(c->arg, &reply, NULL);
		be->busy--;
		(void)ua_gone(be);
		ua_call_free(c);
		return;
	}
	if (error != HTTP_OK) {
		const char *why = error_message != NULL ? error_message : http_error_name(error);

		switch (error) {
		case HTTP_ERR_TOO_LARGE:
			backend_error_set(&c->error, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
			    "malformed response from Secrets Manager: body too large (%s)", why);
			ua_call_finish(c);
			return;
		case HTTP_ERR_TLS:
			backend_error_set(&c->error, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
			    "TLS failure talking to Secrets Manager at %s: %s", be->host, why);
			ua_call_finish(c);
			return;
		case HTTP_ERR_TIMEOUT:
			backend_error_set(&c->error, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
			    "Secrets Manager at %s did not answer in time: %s", be->host, why);
			break;
		default:
			backend_error_set(&c->error, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
			    "cannot reach Secrets Manager at %s: %s", be->host, why);
			break;
		}
		if (c->op == UA_FORWARD)
			ua_call_finish(c);	/* not retried: the upstream may have acted on it */
		else
			ua_call_retry(c);
		return;
	}
	if (r->status >= 200 && r->status < 300) {
		switch (c->op) {
		case UA_GET:
			ua_get_ok(c, r);
			break;
		case UA_DESCRIBE:
			ua_describe_ok(c, r);
			break;
		case UA_BATCH:
			ua_batch_ok(c, r);
			break;
		case UA_FORWARD:
			break;	/* answered above */
		}
		return;
	}
	/* http.h does not expose response headers yet, so no x-amzn-ErrorType. */
	aws_error_parse(r->status, NULL, r->body, r->body_len, &info);
	retry = aws_error_classify(&info, &c->error);
	if (aws_error_is_throttling(info.code) || r->status == 429)
		be->stats.throttled++;
	if (c->error.status == PROTO_STATUS_UPSTREAM_AUTH)
		be->stats.auth_failures++;
	if (retry)
		ua_call_retry(c);
	else
		ua_call_finish(c);
}

static void
ua_amz_date(char out[SIGV4_AMZ_DATE_LEN + 1])
{
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(out, SIGV4_AMZ_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm);
}

/* Signs and sends one attempt with creds. */
static void
ua_call_send(struct ua_call *c, const struct aws_credentials *creds)
{
	struct ua_backend *be = c->be;
	char amz_date[SIGV4_AMZ_DATE_LEN + 1];
	struct sigv4_header sh[5];
	struct http_header hh[6];
	struct sigv4_request sreq;
	struct sigv4_scope scope;
	struct sigv4_credentials sc;
	struct sigv4_result sig;
	struct http_request hreq;
	enum sigv4_error serr = SIGV4_OK;
	size_t n = 0, i;
	long left, timeout;

	if ((left = ua_ms_until(c->deadline)) <= 0) {
		ua_call_fail_soon(c, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
		    "no answer from Secrets Manager within %ld ms", be->upstream_timeout_ms);
		return;
	}
	ua_amz_date(amz_date);
	sh[n++] = (struct sigv4_header){ "Host", be->host };
	sh[n++] = (struct sigv4_header){ "X-Amz-Date", amz_date };
	sh[n++] = (struct sigv4_header){ "Content-Type", UA_CONTENT_TYPE };
	sh[n++] = (struct sigv4_header){ "X-Amz-Target", c->target };
	if (creds->session_token[0] != '\0')
		sh[n++] = (struct sigv4_header){ "X-Amz-Security-Token", creds->session_token };
	memset(&sreq, 0, sizeof(sreq));
	sreq.method = "POST";
	sreq.path = be->path;
	sreq.headers = sh;
	sreq.header_count = n;
	sreq.body = c->body;
	sreq.body_len = c->body_len;
	scope.amz_date = amz_date;
	scope.region = be->resolved.region;
	scope.service = UA_SERVICE;
	sc.access_key_id = creds->access_key_id;
	sc.secret_key = creds->secret_access_key;
	sc.session_token = creds->session_token;
	memset(&sig, 0, sizeof(sig));
	if (sigv4_sign(&sreq, &scope, &sc, &sig, &serr) != 0) {
		ua_call_fail_soon(c, PROTO_STATUS_UPSTREAM_AUTH, "cannot sign the request: %s",
		    sigv4_strerror(serr));
		return;
	}
	for (i = 0; i < n; i++)
		hh[i] = (struct http_header){ sh[i].name, sh[i].value };
	hh[n] = (struct http_header){ "Authorization", sig.authorization };
	memset(&hreq, 0, sizeof(hreq));
	hreq.method = "POST";
	hreq.url = be->url;
	hreq.headers = hh;
	hreq.header_count = n + 1;
	hreq.body = (const uint8_t *)c->body;
	hreq.body_len = c->body_len;
	timeout = be->request_timeout_ms < left ? be->request_timeout_ms : left;
	hreq.timeout_ms = timeout > 0 ? timeout : 1;
	c->state = UA_IN_FLIGHT;
	be->stats.http_requests++;
	if (http_client_request(be->http, &hreq, ua_on_http, c, &c->http) != 0) {
		c->http = NULL;
		sigv4_result_free(&sig);
		ua_call_fail_soon(c, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
		    "cannot start an HTTP request to %s", be->host);
		return;
	}
	sigv4_result_free(&sig);
}

/* ---- credentials ---------------------------------------------------------------------- */

static void
ua_on_creds(void *arg, const struct aws_credentials *creds, const char *error)
{
	struct ua_backend *be = arg;
	struct ua_call_list ready;
	struct ua_call *c;

	be->creds_fetching = false;
	if (be->releasing)
		return;
	if (creds == NULL)
		be->backend.health.credentials = PROTO_CRED_UNAVAILABLE;
	else if (be->backend.health.credentials == PROTO_CRED_UNAVAILABLE)
		be->backend.health.credentials = PROTO_CRED_UNKNOWN;
	/* Only the calls waiting now; ones that start during callbacks queue anew. */
	TAILQ_INIT(&ready);
	while ((c = TAILQ_FIRST(&be->creds_wait)) != NULL) {
		TAILQ_REMOVE(&be->creds_wait, c, wait_entry);
		TAILQ_INSERT_TAIL(&ready, c, wait_entry);
	}
	while ((c = TAILQ_FIRST(&ready)) != NULL) {
		TAILQ_REMOVE(&ready, c, wait_entry);
		c->state = UA_IDLE;
		if (creds == NULL) {
			backend_error_set(&c->error, PROTO_STATUS_UPSTREAM_AUTH,
			    "no AWS credentials for the agent: %s",
			    error != NULL ? error : "unknown error");
			be->busy++;	/* keep be alive until the rest are requeued */
			ua_call_finish(c);
			be->busy--;
			if (be->dying)
				break;
		} else
			ua_call_send(c, creds);
	}
	if (be->dying) {
		/* The rest go back so release finds and frees them. */
		while ((c = TAILQ_FIRST(&ready)) != NULL) {
			TAILQ_REMOVE(&ready, c, wait_entry);
			c->state = UA_IDLE;
		}
		(void)ua_gone(be);
	}
}

static void
ua_call_start(struct ua_call *c)
{
	struct ua_backend *be = c->be;
	const struct aws_credentials *creds;
	struct timeval tv;
	long left;

	if (!evtimer_pending(c->deadline_ev, NULL)) {
		left = ua_ms_until(c->deadline);
		tv = ua_tv_ms(left > 0 ? left : 0);
		evtimer_add(c->deadline_ev, &tv);
	}
	if ((creds = aws_credentials_current(be->creds)) != NULL) {
		ua_call_send(c, creds);
		return;
	}
	c->state = UA_WAIT_CREDS;
	TAILQ_INSERT_TAIL(&be->creds_wait, c, wait_entry);
	if (be->creds_fetching)
		return;
	be->creds_fetching = true;
	if (aws_credentials_get(be->creds, ua_on_creds, be) != 0) {
		be->creds_fetching = false;
		TAILQ_REMOVE(&be->creds_wait, c, wait_entry);
		ua_call_fail_soon(c, PROTO_STATUS_UPSTREAM_AUTH,
		    "cannot start fetching AWS credentials (%s)",
		    aws_credentials_source(be->creds));
	}
}

/* ---- timers --------------------------------------------------------------------------- */

static void
ua_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct ua_call *c = arg;

	(void)fd;
	(void)what;
	if (c->state == UA_BACKOFF) {
		c->state = UA_IDLE;
		ua_call_start(c);
	} else if (c->state == UA_FAILING) {
		c->state = UA_IDLE;
		ua_call_finish(c);
	}
}

static void
ua_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct ua_call *c = arg;
	struct ua_backend *be = c->be;
	char last[sizeof(c->error.message)];

	(void)fd;
	(void)what;
	be->stats.timeouts++;
	snprintf(last, sizeof(last), "%s", c->error.message);
	if (last[0] != '\0')
		backend_error_set(&c->error, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
		    "no answer from Secrets Manager within %ld ms (last error: %s)",
		    be->upstream_timeout_ms, last);
	else
		backend_error_set(&c->error, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
		    "no answer from Secrets Manager within %ld ms", be->upstream_timeout_ms);
	ua_call_finish(c);
}

/* ---- backend ops ---------------------------------------------------------------------- */

static struct timespec
ua_deadline(const struct ua_backend *be)
{
	return ua_after_ms(ua_now(), be->upstream_timeout_ms);
}

static int
ua_get_value(struct backend *backend, const struct backend_query *q, backend_value_cb cb,
    void *arg)
{
	struct ua_backend *be = (struct ua_backend *)backend;
	struct ua_call *c;

	if (be->dying || q == NULL || q->secret_id == NULL || cb == NULL)
		return -1;
	if ((c = ua_call_new(be, UA_GET, aws_json_get_request(q), q->secret_id,
	    ua_deadline(be))) == NULL)
		return -1;
	c->value_cb = cb;
	c->arg = arg;
	ua_call_start(c);
	return 0;
}

static int
ua_describe(struct backend *backend, const char *secret_id, backend_describe_cb cb, void *arg)
{
	struct ua_backend *be = (struct ua_backend *)backend;
	struct ua_call *c;

	if (be->dying || secret_id == NULL || cb == NULL)
		return -1;
	if ((c = ua_call_new(be, UA_DESCRIBE, aws_json_describe_request(secret_id), secret_id,
	    ua_deadline(be))) == NULL)
		return -1;
	c->describe_cb = cb;
	c->arg = arg;
	ua_call_start(c);
	return 0;
}

int
upstream_aws_batch_get(struct backend *backend, const char *const *secret_ids, size_t count,
    const struct upstream_aws_batch_cbs *cbs, void *arg)
{
	struct ua_backend *be = (struct ua_backend *)backend;
	struct ua_batch *b;
	struct ua_call *c;
	size_t i;

	if (!upstream_aws_is(backend) || be->dying || secret_ids == NULL || count == 0 ||
	    count > UPSTREAM_AWS_BATCH_MAX || cbs == NULL || cbs->item == NULL ||
	    cbs->done == NULL)
		return -1;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return -1;
	TAILQ_INSERT_TAIL(&be->batches, b, entry);
	b->cbs = *cbs;
	b->arg = arg;
	b->count = count;
	b->remaining = count;
	b->deadline = ua_deadline(be);
	for (i = 0; i < count; i++) {
		if (secret_ids[i] == NULL || (b->ids[i] = strdup(secret_ids[i])) == NULL)
			goto fail;
	}
	c = ua_call_new(be, UA_BATCH, aws_json_batch_request((const char *const *)b->ids, count,
	    NULL), count == 1 ? b->ids[0] : "(batch)", b->deadline);
	if (c == NULL)
		goto fail;
	c->batch = b;
	ua_call_start(c);
	return 0;
fail:
	ua_batch_free(be, b);
	return -1;
}

int
upstream_aws_forward(struct backend *backend, const char *target, const void *body, size_t len,
    upstream_aws_forward_cb cb, void *arg)
{
	struct ua_backend *be = (struct ua_backend *)backend;
	struct ua_call *c;
	char *copy;

	if (!upstream_aws_is(backend) || be->dying || target == NULL || cb == NULL ||
	    strlen(target) > UPSTREAM_AWS_MAX_TARGET || (body == NULL && len > 0))
		return -1;
	/* aws_json_free() releases it: cJSON's hooks wipe (json_secure), and a write's body
	 * can hold a secret value. */
	if ((copy = cJSON_malloc(len + 1)) == NULL)
		return -1;
	if (len > 0)
		memcpy(copy, body, len);
	copy[len] = '\0';
	if ((c = ua_call_new(be, UA_FORWARD, copy, "(forwarded)", ua_deadline(be))) == NULL)
		return -1;
	c->body_len = len;
	snprintf(c->forward_target, sizeof(c->forward_target), "%s", target);
	c->target = c->forward_target;
	c->forward_cb = cb;
	c->arg = arg;
	ua_call_start(c);
	return 0;
}

const char *
upstream_aws_url(const struct backend *backend)
{
	return upstream_aws_is(backend) ? ((const struct ua_backend *)backend)->url : NULL;
}

const char *
upstream_aws_region(const struct backend *backend)
{
	return upstream_aws_is(backend) ?
	    ((const struct ua_backend *)backend)->resolved.region : NULL;
}

/* Frees everything; no callback runs after this starts. */
static void
ua_release(struct ua_backend *be)
{
	struct ua_call *c;
	struct ua_batch *b;

	be->releasing = true;
	while ((c = TAILQ_FIRST(&be->calls)) != NULL)
		ua_call_free(c);
	while ((b = TAILQ_FIRST(&be->batches)) != NULL)
		ua_batch_free(be, b);
	aws_credentials_free(be->creds);
	http_client_free(be->http);
	sodium_memzero(be, sizeof(*be));
	free(be);
}

static void
ua_free(struct backend *backend)
{
	struct ua_backend *be = (struct ua_backend *)backend;

	if (be->busy > 0) {
		be->dying = true;
		return;
	}
	ua_release(be);
}

static const struct backend_ops ua_ops = {
	.name = "aws",
	.get_value = ua_get_value,
	.describe = ua_describe,
	.free = ua_free,
};

bool
upstream_aws_is(const struct backend *backend)
{
	return backend != NULL && backend->ops == &ua_ops;
}

const struct upstream_aws_stats *
upstream_aws_stats(const struct backend *backend)
{
	if (!upstream_aws_is(backend))
		return NULL;
	return &((const struct ua_backend *)backend)->stats;
}

struct backend *
upstream_aws_new(struct event_base *base, const struct upstream_aws_options *opts, char *err,
    size_t errlen)
{
	struct aws_settings settings;
	struct http_client_options ho;
	struct ua_backend *be;
	char why[256];

	if ((be = calloc(1, sizeof(*be))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	be->backend.ops = &ua_ops;
	be->backend.base = base;
	be->backend.health.credentials = PROTO_CRED_UNKNOWN;
	TAILQ_INIT(&be->calls);
	TAILQ_INIT(&be->creds_wait);
	TAILQ_INIT(&be->batches);
	be->request_timeout_ms = opts->request_timeout_ms > 0 ? opts->request_timeout_ms :
	    UA_DEFAULT_REQUEST_MS;
	be->upstream_timeout_ms = opts->upstream_timeout_ms > 0 ? opts->upstream_timeout_ms :
	    UA_DEFAULT_UPSTREAM_MS;
	be->max_retries = opts->max_retries;

	memset(&settings, 0, sizeof(settings));
	settings.region = opts->region;
	settings.endpoint = opts->endpoint;
	settings.profile = opts->profile;
	settings.fips = opts->fips;
	why[0] = '\0';
	if (aws_resolve(&settings, &be->resolved, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "aws: %s", why);
		goto fail;
	}
	if (upstream_aws_endpoint_parts(be->resolved.endpoint, be->host, sizeof(be->host),
	    be->path, sizeof(be->path), be->url, sizeof(be->url)) != 0) {
		snprintf(err, errlen, "aws: unusable Secrets Manager endpoint '%s'",
		    be->resolved.endpoint);
		goto fail;
	}
	memset(&ho, 0, sizeof(ho));
	ho.connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms :
	    UA_DEFAULT_CONNECT_MS;
	ho.total_timeout_ms = be->request_timeout_ms;
	ho.ca_bundle = opts->ca_bundle;
	ho.max_response_bytes = AWS_JSON_MAX_BODY;
	ho.max_connections = (long)opts->max_connections;
	if ((be->http = http_client_new(base, &ho, why, sizeof(why))) == NULL) {
		snprintf(err, errlen, "aws: HTTP client: %s", why);
		goto fail;
	}
	if ((be->creds = aws_credentials_new(base, be->http, &be->resolved, why,
	    sizeof(why))) == NULL) {
		snprintf(err, errlen, "aws: credentials: %s", why);
		goto fail;
	}
	log_info("aws: Secrets Manager at %s, region %s, credentials from %s, timeout %ld ms,"
	    " %u retries", be->url, be->resolved.region, aws_credentials_source(be->creds),
	    be->upstream_timeout_ms, be->max_retries);
	return &be->backend;
fail:
	if (be->http != NULL)
		http_client_free(be->http);
	free(be);
	return NULL;
}

void
upstream_aws_options_from_config(const struct config *cfg, struct upstream_aws_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->region = cfg->aws_region;
	opts->endpoint = cfg->aws_endpoint;
	opts->profile = cfg->aws_profile;
	opts->fips = cfg->aws_fips != 0;
	opts->ca_bundle = cfg->aws_ca_bundle;
	opts->connect_timeout_ms = (long)cfg->aws_connect_timeout * 1000;
	opts->request_timeout_ms = (long)cfg->aws_request_timeout * 1000;
	opts->upstream_timeout_ms = (long)cfg->aws_upstream_timeout * 1000;
	opts->max_retries = cfg->aws_max_retries;
	opts->max_connections = cfg->aws_max_connections;
}

struct backend *
upstream_aws_new_from_config(struct event_base *base, const struct config *cfg, char *err,
    size_t errlen)
{
	struct upstream_aws_options opts;

	upstream_aws_options_from_config(cfg, &opts);
	return upstream_aws_new(base, &opts, err, errlen);
}
