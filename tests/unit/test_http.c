/*
 * test_http: the agent's HTTP client against a libevent evhttp server on
 * the same event loop: bodies both ways, headers (no Expect: 100-continue),
 * methods, the response cap (with and without Content-Length), timeouts,
 * refused connections, TLS errors, the protocol whitelist, header injection,
 * cancel and free with requests in flight (no callback, no leak), freeing
 * from a callback, connection reuse, many requests at once, calls waiting
 * beyond max_connections, and proxies being bypassed for loopback.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

/* libevent's HTTP_OK (200) collides with our enum http_error's HTTP_OK. */
#undef HTTP_OK

#include "http.h"

struct result {
	bool done;
	enum http_error error;
	long status;
	char body[8192];
	size_t body_len;
	char content_type[64];
	char message[256];
};

struct fixture {
	struct event_base *base;
	struct evhttp *server;
	int port;
	struct http_client *client;
	int expected, finished;

	/* what the server saw last */
	char last_method[16];
	char last_expect[64];
	char last_ua[64];
	char last_xtest[64];
	char last_clen[32];
	size_t last_body_len;
	unsigned short last_peer_port;
	int requests_seen;
};

static struct fixture *fx;

/* ---- the server -------------------------------------------------------------------------- */

static void
copy_header(struct evhttp_request *req, const char *name, char *out, size_t outlen)
{
	const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), name);

	snprintf(out, outlen, "%s", v != NULL ? v : "");
}

static void
server_cb(struct evhttp_request *req, void *arg)
{
	struct fixture *f = arg;
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *out = evbuffer_new();
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	char *peer = NULL;
	ev_uint16_t pport = 0;
	const char *method = "?";

	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_GET: method = "GET"; break;
	case EVHTTP_REQ_POST: method = "POST"; break;
	case EVHTTP_REQ_PUT: method = "PUT"; break;
	case EVHTTP_REQ_DELETE: method = "DELETE"; break;
	case EVHTTP_REQ_HEAD: method = "HEAD"; break;
	default: break;
	}
	f->requests_seen++;
	snprintf(f->last_method, sizeof(f->last_method), "%s", method);
	copy_header(req, "Expect", f->last_expect, sizeof(f->last_expect));
	copy_header(req, "User-Agent", f->last_ua, sizeof(f->last_ua));
	copy_header(req, "X-Test", f->last_xtest, sizeof(f->last_xtest));
	copy_header(req, "Content-Length", f->last_clen, sizeof(f->last_clen));
	f->last_body_len = evbuffer_get_length(in);
	evhttp_connection_get_peer(conn, &peer, &pport);
	f->last_peer_port = pport;

	if (strcmp(uri, "/hang") == 0) {
		evbuffer_free(out);
		return;		/* never answered: the client times out or cancels */
	}
	if (strcmp(uri, "/echo") == 0) {
		evbuffer_add_buffer(out, in);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
		    "application/octet-stream");
		evhttp_send_reply(req, 200, "OK", out);
	} else if (strncmp(uri, "/big/", 5) == 0) {
		size_t n = strtoul(uri + 5, NULL, 10);
		char *b = malloc(n);

		memset(b, 'B', n);
		evbuffer_add(out, b, n);
		free(b);
		evhttp_send_reply(req, 200, "OK", out);
	} else if (strncmp(uri, "/chunked/", 9) == 0) {
		size_t n = strtoul(uri + 9, NULL, 10), i;
		char chunk[100];

		memset(chunk, 'C', sizeof(chunk));
		evhttp_send_reply_start(req, 200, "OK");
		for (i = 0; i < n; i += sizeof(chunk)) {
			evbuffer_add(out, chunk, n - i < sizeof(chunk) ? n - i : sizeof(chunk));
			evhttp_send_reply_chunk(req, out);
		}
		evhttp_send_reply_end(req);
	} else if (strcmp(uri, "/size") == 0) {
		evbuffer_add_printf(out, "%zu", f->last_body_len);
		evhttp_send_reply(req, 200, "OK", out);
	} else if (strcmp(uri, "/missing") == 0) {
		evbuffer_add_printf(out, "nope");
		evhttp_send_reply(req, 404, "Not Found", out);
	} else {
		evbuffer_add_printf(out, "hello %s", uri);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
		    "text/plain");
		evhttp_send_reply(req, 200, "OK", out);
	}
	evbuffer_free(out);
}

static int
unused_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
		return -1;
	port = ntohs(sa.sin_port);
	close(fd);		/* nothing listens there now */
	return port;
}

static int
setup(void **state)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	char err[256];

	fx = calloc(1, sizeof(*fx));
	if (fx == NULL || (fx->base = event_base_new()) == NULL ||
	    (fx->server = evhttp_new(fx->base)) == NULL)
		return -1;
	evhttp_set_gencb(fx->server, server_cb, fx);
	if ((bs = evhttp_bind_socket_with_handle(fx->server, "127.0.0.1", 0)) == NULL ||
	    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &len) != 0)
		return -1;
	fx->port = ntohs(sa.sin_port);
	fx->client = http_client_new(fx->base, NULL, err, sizeof(err));
	if (fx->client == NULL) {
		print_error("http_client_new: %s\n", err);
		return -1;
	}
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	http_client_free(fx->client);
	evhttp_free(fx->server);
	event_base_free(fx->base);
	free(fx);
	fx = NULL;
	return 0;
}

/* ---- client helpers ---------------------------------------------------------------------- */

static void
done_cb(void *arg, const struct http_response *r, enum http_error error, const char *msg)
{
	struct result *res = arg;

	assert_false(res->done);
	res->done = true;
	res->error = error;
	if (error == HTTP_OK) {
		assert_non_null(r);
		res->status = r->status;
		res->body_len = r->body_len;
		assert_int_equal(r->body[r->body_len], '\0');
		memcpy(res->body, r->body, r->body_len < sizeof(res->body) - 1 ?
		    r->body_len : sizeof(res->body) - 1);
		snprintf(res->content_type, sizeof(res->content_type), "%s",
		    r->content_type != NULL ? r->content_type : "");
	} else {
		assert_null(r);
		assert_non_null(msg);
		snprintf(res->message, sizeof(res->message), "%s", msg);
	}
	fx->finished++;
	if (fx->finished >= fx->expected)
		event_base_loopbreak(fx->base);
}

static void
never_cb(void *arg, const struct http_response *r, enum http_error error, const char *msg)
{
	fail_msg("a cancelled request's callback ran (%s)", http_error_name(error));
}

/* Runs the loop until `expected` callbacks ran or ms passed. */
static void
run(int expected, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	fx->expected = expected;
	fx->finished = 0;
	event_base_loopexit(fx->base, &tv);
	event_base_dispatch(fx->base);
}

static char *
url(const char *path)
{
	static char buf[4][256];
	static int n;
	char *p = buf[n++ % 4];

	snprintf(p, sizeof(buf[0]), "http://127.0.0.1:%d%s", fx->port, path);
	return p;
}

static int
request(const char *method, const char *u, const void *body, size_t len, long timeout_ms,
    struct result *res, struct http_call **call)
{
	static const struct http_header h[] = { { "X-Test", "value 1" } };
	struct http_request req = {
		.method = method, .url = u, .headers = h, .header_count = 1,
		.body = body, .body_len = len, .timeout_ms = timeout_ms,
	};

	memset(res, 0, sizeof(*res));
	return http_client_request(fx->client, &req, done_cb, res, call);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void
test_get(void **state)
{
	struct result res;

	assert_int_equal(request("GET", url("/hello"), NULL, 0, 0, &res, NULL), 0);
	assert_false(res.done);		/* never called from inside request() */
	run(1, 3000);
	assert_true(res.done);
	assert_int_equal(res.error, HTTP_OK);
	assert_int_equal(res.status, 200);
	assert_string_equal(res.body, "hello /hello");
	assert_int_equal(res.body_len, strlen("hello /hello"));
	assert_string_equal(res.content_type, "text/plain");
	assert_string_equal(fx->last_method, "GET");
	assert_string_equal(fx->last_xtest, "value 1");
	assert_int_equal(strncmp(fx->last_ua, "smcached/", 9), 0);

	/* A 404 is a response, not an error. */
	assert_int_equal(request(NULL, url("/missing"), NULL, 0, 0, &res, NULL), 0);
	run(1, 3000);
	assert_int_equal(res.error, HTTP_OK);
	assert_int_equal(res.status, 404);
	assert_string_equal(res.body, "nope");
}

static void
test_post_put_delete(void **state)
{
	uint8_t body[5000];
	struct result res;
	size_t i;

	for (i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(i * 7);
	assert_int_equal(request("POST", url("/echo"), body, sizeof(body), 0, &res, NULL), 0);
	/* The request body was copied: scribbling on ours changes nothing. */
	memset(body, 0, 100);
	run(1, 3000);
	assert_int_equal(res.error, HTTP_OK);
	assert_int_equal(res.status, 200);
	assert_int_equal(res.body_len, sizeof(body));
	for (i = 0; i < sizeof(body); i++)
		if ((uint8_t)res.body[i] != (uint8_t)(i * 7))
			fail_msg("echoed body differs at %zu", i);
	assert_string_equal(fx->last_method, "POST");
	assert_string_equal(fx->last_expect, "");	/* no 100-continue */
	assert_string_equal(fx->last_clen, "5000");

	/* A body large enough for libcurl's 100-continue threshold (1 MiB). */
	{
		size_t big = 1536 * 1024;
		uint8_t *b = calloc(1, big);

		assert_non_null(b);
		assert_int_equal(request("POST", url("/size"), b, big, 0, &res, NULL), 0);
		free(b);
		run(1, 5000);
		assert_int_equal(res.error, HTTP_OK);
		assert_string_equal(res.body, "1572864");
		assert_string_equal(fx->last_expect, "");
	}

	/* PUT without a body still says Content-Length: 0 (IMDS needs it). */
	assert_int_equal(request("PUT", url("/put"), NULL, 0, 0, &res, NULL), 0);
	run(1, 3000);
	assert_int_equal(res.error, HTTP_OK);
	assert_string_equal(fx->last_method, "PUT");
	assert_string_equal(fx->last_clen, "0");

	assert_int_equal(request("DELETE", url("/del"), NULL, 0, 0, &res, NULL), 0);
	run(1, 3000);
	assert_int_equal(res.error, HTTP_OK);
	assert_string_equal(fx->last_method, "DELETE");
}

static void
test_bad_requests(void **state)
{
	struct http_header bad_value[] = { { "X-A", "v\r\nInjected: 1" } };
	struct http_header bad_name[] = { { "X A", "v" } };
	struct http_header colon[] = { { "X:A", "v" } };
	struct http_request req = { .method = "GET", .url = url("/x") };
	struct result res;

	memset(&res, 0, sizeof(res));
	req.headers = bad_value;
	req.header_count = 1;
	assert_int_equal(http_client_request(fx->client, &req, done_cb, &res, NULL), -1);
	req.headers = bad_name;
	assert_int_equal(http_client_request(fx->client, &req, done_cb, &res, NULL), -1);
	req.headers = colon;
	assert_int_equal(http_client_request(fx->client, &req, done_cb, &res, NULL), -1);
	req.header_count = 0;
	req.method = "TRACE";
	assert_int_equal(http_client_request(fx->client, &req, done_cb, &res, NULL), -1);
	req.method = "GET";
	req.body = (const uint8_t *)"x";
	req.body_len = 1;
	assert_int_equal(http_client_request(fx->client, &req, done_cb, &res, NULL), -1);
	req.body = NULL;
	req.body_len = 0;
	req.url = NULL;
	assert_int_equal(http_client_request(fx->client, &req, done_cb, &res, NULL), -1);
	req.url = url("/x");
	assert_int_equal(http_client_request(fx->client, &req, NULL, &res, NULL), -1);
	run(1, 200);
	assert_false(res.done);
}

static void
test_too_large(void **state)
{
	struct http_client_options o = { .max_response_bytes = 1000 };
	struct http_client *saved = fx->client;
	struct result res;
	char err[256];

	fx->client = http_client_new(fx->base, &o, err, sizeof(err));
	assert_non_null(fx->client);

	/* Exactly the cap is fine. */
	assert_int_equal(request("GET", url("/big/1000"), NULL, 0, 0, &res, NULL), 0);
	run(1, 3000);
	assert_int_equal(res.error, HTTP_OK);
	assert_int_equal(res.body_len, 1000);

	/* Content-Length above the cap. */
	assert_int_equal(request("GET", url("/big/1001"), NULL, 0, 0, &res, NULL), 0);
	run(1, 3000);
	assert_int_equal(res.error, HTTP_ERR_TOO_LARGE);
	assert_non_null(strstr(res.message, "1000"));

	/* Chunked: no length known up front, cut while reading. */
	assert_int_equal(request("GET", url("/chunked/950"), NULL, 0, 0, &res, NULL), 0);
	run(1, 3000);
	assert_int_equal(res.error, HTTP_OK);
	assert_int_equal(res.body_len, 950);
	assert_int_equal(request("GET", url("/chunked/5000"), NULL, 0, 0, &res, NULL), 0);
	run(1, 3000);
	assert_int_equal(res.error, HTTP_ERR_TOO_LARGE);

	http_client_free(fx->client);
	fx->client = saved;
}

static void
test_errors(void **state)
{
	struct result res;
	char u[128];
	struct timeval t0, t1;
	long ms;

	/* Nothing listening. */
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/", unused_port());
	assert_int_equal(request("GET", u, NULL, 0, 0, &res, NULL), 0);
	run(1, 3000);
	assert_int_equal(res.error, HTTP_ERR_CONNECT);
	assert_true(res.message[0] != '\0');

	/* The server never answers. */
	gettimeofday(&t0, NULL);
	assert_int_equal(request("GET", url("/hang"), NULL, 0, 300, &res, NULL), 0);
	run(1, 3000);
	gettimeofday(&t1, NULL);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000;
	assert_int_equal(res.error, HTTP_ERR_TIMEOUT);
	assert_true(ms >= 250 && ms < 2000);

	/* TLS to a plain HTTP server. */
	snprintf(u, sizeof(u), "https://127.0.0.1:%d/", fx->port);
	assert_int_equal(request("GET", u, NULL, 0, 0, &res, NULL), 0);
	run(1, 3000);
	assert_int_equal(res.error, HTTP_ERR_TLS);

	/* Only http and https: reported from the loop like any other failure. */
	assert_int_equal(request("GET", "file:///etc/passwd", NULL, 0, 0, &res, NULL), 0);
	assert_false(res.done);
	run(1, 3000);
	assert_int_equal(res.error, HTTP_ERR_OTHER);
	snprintf(u, sizeof(u), "ftp://127.0.0.1:%d/", fx->port);
	assert_int_equal(request("GET", u, NULL, 0, 0, &res, NULL), 0);
	run(1, 3000);
	assert_int_equal(res.error, HTTP_ERR_OTHER);

	assert_string_equal(http_error_name(HTTP_ERR_TIMEOUT), "timeout");
	assert_string_equal(http_error_name(HTTP_ERR_TOO_LARGE), "too-large");
}

static void
test_bad_ca_bundle(void **state)
{
	struct http_client_options o = { .ca_bundle = "/nonexistent/ca.pem" };
	char err[256] = "";

	assert_null(http_client_new(fx->base, &o, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/ca.pem"));
	assert_null(http_client_new(NULL, NULL, err, sizeof(err)));
}

static void
test_cancel(void **state)
{
	struct http_call *a = NULL, *b = NULL;
	struct http_request req = { .method = "GET", .url = url("/hang") };
	struct result res;

	/* Cancelled before the loop ever ran. */
	assert_int_equal(http_client_request(fx->client, &req, never_cb, NULL, &a), 0);
	assert_non_null(a);
	http_call_cancel(a);

	/* Cancelled while connected and waiting for the answer. */
	assert_int_equal(http_client_request(fx->client, &req, never_cb, NULL, &b), 0);
	run(1, 200);
	assert_int_equal(fx->requests_seen > 0, 1);
	http_call_cancel(b);
	http_call_cancel(NULL);

	/* The client still works. */
	assert_int_equal(request("GET", url("/after"), NULL, 0, 0, &res, NULL), 0);
	run(1, 3000);
	assert_int_equal(res.error, HTTP_OK);
	assert_string_equal(res.body, "hello /after");
}

static void
test_free_in_flight(void **state)
{
	struct http_request req = { .method = "GET", .url = url("/hang") };
	struct http_client *c;
	char err[256];
	int i;

	c = http_client_new(fx->base, NULL, err, sizeof(err));
	assert_non_null(c);
	for (i = 0; i < 3; i++)
		assert_int_equal(http_client_request(c, &req, never_cb, NULL, NULL), 0);
	run(1, 200);
	http_client_free(c);	/* no callbacks, no leaks (ASan) */
	run(1, 100);
}

struct free_ctx {
	struct http_client *c;
	int calls;
};

static void
free_from_cb(void *arg, const struct http_response *r, enum http_error error, const char *msg)
{
	struct free_ctx *ctx = arg;

	ctx->calls++;
	http_client_free(ctx->c);
	event_base_loopbreak(fx->base);
}

static void
test_free_from_callback(void **state)
{
	struct http_request quick = { .method = "GET", .url = url("/q") };
	struct http_request hang = { .method = "GET", .url = url("/hang") };
	struct free_ctx ctx = { 0 };
	char err[256];

	ctx.c = http_client_new(fx->base, NULL, err, sizeof(err));
	assert_non_null(ctx.c);
	assert_int_equal(http_client_request(ctx.c, &hang, never_cb, NULL, NULL), 0);
	assert_int_equal(http_client_request(ctx.c, &quick, free_from_cb, &ctx, NULL), 0);
	assert_int_equal(http_client_request(ctx.c, &quick, free_from_cb, &ctx, NULL), 0);
	run(100, 500);
	assert_int_equal(ctx.calls, 1);		/* the second quick one was dropped */
	run(1, 100);
}

struct chain {
	int left;
	unsigned short ports[3];
	int n;
	struct result res;
};

static void
chain_cb(void *arg, const struct http_response *r, enum http_error error, const char *msg)
{
	struct chain *ch = arg;
	struct http_request req = { .method = "GET", .url = url("/again") };

	assert_int_equal(error, HTTP_OK);
	ch->ports[ch->n++] = fx->last_peer_port;
	if (--ch->left > 0)
		assert_int_equal(http_client_request(fx->client, &req, chain_cb, ch, NULL), 0);
	else
		event_base_loopbreak(fx->base);
}

static void
test_connection_reuse(void **state)
{
	struct http_request req = { .method = "GET", .url = url("/first") };
	struct chain ch = { .left = 3 };

	assert_int_equal(http_client_request(fx->client, &req, chain_cb, &ch, NULL), 0);
	run(100, 3000);
	assert_int_equal(ch.n, 3);
	/* Same client port each time: one kept-alive connection. */
	assert_int_equal(ch.ports[0], ch.ports[1]);
	assert_int_equal(ch.ports[1], ch.ports[2]);
}

/* Past max_connections, calls wait without a libcurl handle and start, in
 * order, as transfers end; a waiting call can be cancelled. */
static void
test_waiting_beyond_max_connections(void **state)
{
	enum { N = 6 };
	struct http_client_options o = { .max_connections = 2 };
	struct http_request hang = { .method = "GET", .url = url("/hang"), .timeout_ms = 1000 };
	struct http_request gone = { .method = "GET", .url = url("/gone") };
	struct http_call *cancelled = NULL;
	struct result h[2], res[N];
	char path[32], want[64], err[256];

	http_client_free(fx->client);
	fx->client = http_client_new(fx->base, &o, err, sizeof(err));
	assert_non_null(fx->client);
	for (int i = 0; i < 2; i++) {
		memset(&h[i], 0, sizeof(h[i]));
		assert_int_equal(http_client_request(fx->client, &hang, done_cb, &h[i], NULL), 0);
	}
	for (int i = 0; i < N; i++) {
		snprintf(path, sizeof(path), "/w/%d", i);
		assert_int_equal(request("GET", url(path), NULL, 0, 0, &res[i], NULL), 0);
		if (i == 2)
			assert_int_equal(http_client_request(fx->client, &gone, never_cb, NULL,
			    &cancelled), 0);
	}
	/* Both connections hang: nothing else reached the server. */
	run(100, 300);
	assert_int_equal(fx->requests_seen, 2);
	assert_false(res[0].done);
	http_call_cancel(cancelled);
	/* The hanging two time out; then the rest, in turn. */
	run(2 + N, 5000);
	for (int i = 0; i < 2; i++) {
		assert_true(h[i].done);
		assert_int_equal(h[i].error, HTTP_ERR_TIMEOUT);
	}
	for (int i = 0; i < N; i++) {
		snprintf(want, sizeof(want), "hello /w/%d", i);
		assert_true(res[i].done);
		assert_int_equal(res[i].error, HTTP_OK);
		assert_string_equal(res[i].body, want);
	}
	assert_int_equal(fx->requests_seen, 2 + N);
}

static void
test_many_at_once(void **state)
{
	enum { N = 24 };
	struct result *res = calloc(N, sizeof(*res));
	char path[32], want[64];
	int i;

	assert_non_null(res);
	for (i = 0; i < N; i++) {
		snprintf(path, sizeof(path), "/n/%d", i);
		assert_int_equal(request("GET", url(path), NULL, 0, 0, &res[i], NULL), 0);
	}
	run(N, 5000);
	for (i = 0; i < N; i++) {
		snprintf(want, sizeof(want), "hello /n/%d", i);
		assert_true(res[i].done);
		assert_int_equal(res[i].error, HTTP_OK);
		assert_string_equal(res[i].body, want);
	}
	free(res);
}

static void
test_proxy_bypass_for_loopback(void **state)
{
	struct result res;
	char proxy[64];

	/* A proxy that does not exist: loopback requests must not try it. */
	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", unused_port());
	setenv("http_proxy", proxy, 1);
	setenv("HTTPS_PROXY", proxy, 1);
	unsetenv("NO_PROXY");
	unsetenv("no_proxy");
	assert_int_equal(request("GET", url("/via-no-proxy"), NULL, 0, 0, &res, NULL), 0);
	run(1, 3000);
	assert_int_equal(res.error, HTTP_OK);
	assert_string_equal(res.body, "hello /via-no-proxy");

	/* "localhost" too. */
	{
		char u[128];

		snprintf(u, sizeof(u), "http://localhost:%d/lh", fx->port);
		assert_int_equal(request("GET", u, NULL, 0, 0, &res, NULL), 0);
		run(1, 3000);
		/* localhost may resolve to ::1 first, where nothing listens: then a connect
		 * error, but never a proxy error. */
		if (res.error != HTTP_OK)
			assert_int_equal(res.error, HTTP_ERR_CONNECT);
		assert_null(strstr(res.message, "proxy"));
	}
	unsetenv("http_proxy");
	unsetenv("HTTPS_PROXY");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_waiting_beyond_max_connections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_put_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_ca_bundle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_from_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proxy_bypass_for_loopback, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
