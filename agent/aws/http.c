/*
 * http: one libcurl multi handle driven by libevent through the multi-socket
 * API. libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and
 * when to wake it (CURLMOPT_TIMERFUNCTION); libevent tells libcurl what
 * happened (curl_multi_socket_action). Finished transfers are collected with
 * curl_multi_info_read and reported from the event loop only.
 *
 * Owns: the request/response buffers (request bodies and headers can carry
 * tokens, response bodies carry secrets: all are wiped before being freed),
 * the response size cap, the protocol whitelist and the proxy exception for
 * local addresses; and, process-wide, what libcurl and OpenSSL do with the
 * bytes they buffer (http_global_init): every allocation of both goes through
 * secmem's wipe-on-free allocator, and TLS connections clear a decrypted
 * record once it was read (SSL_OP_CLEANSE_PLAINTEXT) and drop their buffers
 * when idle (SSL_MODE_RELEASE_BUFFERS).  Measured on moto
 * (tests/integration/test_memory_aws.py): without any of it, GetSecretValue
 * bodies stayed in libcurl's freed download buffers, over TLS in OpenSSL's
 * record buffers too, and the session token in freed copies of the request
 * headers (4 to 10 copies per run, by transport).  libcurl's allocator alone
 * leaves 2 decrypted records (OpenSSL's buffers); for those, OpenSSL's
 * allocator or CLEANSE_PLAINTEXT each suffice in the test, and both are kept:
 * the allocator also covers key material (HMAC contexts), the option also a
 * buffer that is never freed.  libcurl 7.88 already sets RELEASE_BUFFERS
 * (mode 0x14 seen in the callback); it is set here so as not to depend on it.
 *
 * Proxies: libcurl reads http_proxy / HTTPS_PROXY / ALL_PROXY / NO_PROXY
 * itself (only the lower-case http_proxy, as for CGI safety). libcurl 7.88
 * sends even loopback requests through the proxy unless NO_PROXY names them,
 * so requests to loopback and link-local hosts (instance metadata, ECS
 * credentials, a local test peer) never use a proxy here: a proxy cannot
 * reach them, and must never answer for them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "http.h"
#include "secmem.h"

#define HTTP_DEFAULT_CONNECT_MS		2000L
#define HTTP_DEFAULT_TOTAL_MS		5000L
#define HTTP_DEFAULT_MAX_RESPONSE	((size_t)1 << 20)
#define HTTP_MAX_POOLED_CONNECTIONS	16L
#define HTTP_DEFAULT_MAX_CONNECTIONS	32L
#define HTTP_MIN_BODY_ALLOC		1024

struct http_sock {
	struct http_client *client;
	curl_socket_t fd;
	struct event *ev;
	struct http_sock *prev, *next;
};

struct http_call {
	struct http_client *client;
	CURL *easy;			/* NULL while it waits for a connection */
	struct http_call *prev, *next;
	TAILQ_ENTRY(http_call) wait;	/* in client->waiting while queued */
	bool queued;
	http_done_cb cb;
	void *arg;

	/* What the easy handle is made from when the call starts. */
	char *url;
	const char *method;		/* a literal: GET, HEAD, POST, PUT or DELETE */
	long timeout_ms;
	bool start_failed;		/* reported by the next dispatch */

	/* Our own copies: the body and the header lines are wiped on free. */
	uint8_t *req_body;
	size_t req_body_len;
	struct curl_slist *hdr_nodes;
	char *hdr_buf;
	size_t hdr_buf_len;

	uint8_t *resp;
	size_t resp_len, resp_cap, resp_max;
	bool too_large;
	char errbuf[CURL_ERROR_SIZE];
};

struct http_client {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct http_call *calls;
	struct http_sock *socks;
	long connect_timeout_ms;
	long total_timeout_ms;
	size_t max_response;
	char *ca_bundle;
	int dispatching;		/* depth of done-callback dispatch */
	bool free_pending;		/* http_client_free() called from a callback */
	/* Calls beyond max_active wait here without an easy handle: a queued
	 * libcurl transfer holds one (about 22 KiB with its read buffer), and
	 * under mlockall the heap a burst of them grew stays resident for good
	 * (measured: 200 misses at once left 2.9 MB more RSS than 16 did). */
	TAILQ_HEAD(, http_call) waiting;
	long active, max_active;
};

static void http_client_destroy(struct http_client *client);

const char *
http_error_name(enum http_error error)
{
	switch (error) {
	case HTTP_OK:		return "ok";
	case HTTP_ERR_TIMEOUT:	return "timeout";
	case HTTP_ERR_CONNECT:	return "connect";
	case HTTP_ERR_TLS:	return "tls";
	case HTTP_ERR_TOO_LARGE: return "too-large";
	case HTTP_ERR_OTHER:	return "other";
	}
	return "unknown";
}

static enum http_error
http_map_error(CURLcode rc, bool too_large)
{
	if (too_large)
		return HTTP_ERR_TOO_LARGE;
	switch (rc) {
	case CURLE_OK:
		return HTTP_OK;
	case CURLE_OPERATION_TIMEDOUT:
		return HTTP_ERR_TIMEOUT;
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
		return HTTP_ERR_CONNECT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_USE_SSL_FAILED:
		return HTTP_ERR_TLS;
	case CURLE_FILESIZE_EXCEEDED:
		return HTTP_ERR_TOO_LARGE;
	default:
		return HTTP_ERR_OTHER;
	}
}

/* ---- event loop glue --------------------------------------------------------------------- */

static void http_dispatch_done(struct http_client *client);

static void
http_sock_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_client *client = arg;
	int action = 0, running = 0;

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	curl_multi_socket_action(client->multi, fd, action, &running);
	http_dispatch_done(client);
}

static void
http_timer_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_client *client = arg;
	int running = 0;

	curl_multi_socket_action(client->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	http_dispatch_done(client);
}

static void
http_sock_forget(struct http_client *client, struct http_sock *sock)
{
	if (sock->ev != NULL)
		event_free(sock->ev);
	if (sock->prev != NULL)
		sock->prev->next = sock->next;
	else
		client->socks = sock->next;
	if (sock->next != NULL)
		sock->next->prev = sock->prev;
	free(sock);
}

/* CURLMOPT_SOCKETFUNCTION: watch, re-watch or forget one socket. */
static int
http_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http_client *client = userp;
	struct http_sock *sock = socketp;
	short kind = EV_PERSIST;

	if (what == CURL_POLL_REMOVE) {
		if (sock != NULL) {
			curl_multi_assign(client->multi, fd, NULL);
			http_sock_forget(client, sock);
		}
		return 0;
	}
	if (sock == NULL) {
		if ((sock = calloc(1, sizeof(*sock))) == NULL)
			return -1;
		sock->client = client;
		sock->fd = fd;
		sock->next = client->socks;
		if (client->socks != NULL)
			client->socks->prev = sock;
		client->socks = sock;
		curl_multi_assign(client->multi, fd, sock);
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (sock->ev != NULL) {
		event_free(sock->ev);
		sock->ev = NULL;
	}
	if ((sock->ev = event_new(client->base, fd, kind, http_sock_event_cb, client)) == NULL ||
	    event_add(sock->ev, NULL) != 0)
		return -1;	/* libcurl fails the transfers on this socket */
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: one non-repeating timer; -1 removes it. */
static int
http_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct http_client *client = userp;
	struct timeval tv;

	if (timeout_ms < 0) {
		evtimer_del(client->timer);
		return 0;
	}
	/* Even 0 goes through the loop: libcurl must not be re-entered from here. */
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(client->timer, &tv) == 0 ? 0 : -1;
}

/* ---- calls ------------------------------------------------------------------------------- */

static void
http_call_unlink(struct http_call *call)
{
	struct http_client *client = call->client;

	if (call->queued) {
		TAILQ_REMOVE(&client->waiting, call, wait);
		call->queued = false;
	}
	if (call->prev != NULL)
		call->prev->next = call->next;
	else if (client->calls == call)
		client->calls = call->next;
	if (call->next != NULL)
		call->next->prev = call->prev;
	call->prev = call->next = NULL;
}

/* Detaches the easy handle from the multi (if attached) and wipes and frees everything. */
static void
http_call_destroy(struct http_call *call, bool attached)
{
	if (call->easy != NULL) {
		if (attached)
			curl_multi_remove_handle(call->client->multi, call->easy);
		curl_easy_cleanup(call->easy);
	}
	if (call->req_body != NULL) {
		sodium_memzero(call->req_body, call->req_body_len);
		free(call->req_body);
	}
	if (call->hdr_buf != NULL) {
		sodium_memzero(call->hdr_buf, call->hdr_buf_len);
		free(call->hdr_buf);
	}
	free(call->hdr_nodes);
	free(call->url);
	secmem_wipe_free(call->resp);
	sodium_memzero(call->errbuf, sizeof(call->errbuf));
	free(call);
}

static size_t
http_write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct http_call *call = userp;
	size_t n = size * nmemb, need, cap;
	uint8_t *grown;

	if (n == 0)
		return 0;
	if (n > call->resp_max || call->resp_len > call->resp_max - n) {
		call->too_large = true;
		return 0;	/* aborts the transfer with CURLE_WRITE_ERROR */
	}
	need = call->resp_len + n + 1;		/* +1: the NUL the callback gets */
	if (need > call->resp_cap) {
		cap = call->resp_cap > 0 ? call->resp_cap : HTTP_MIN_BODY_ALLOC;
		while (cap < need)
			cap = cap > SIZE_MAX / 2 ? need : cap * 2;
		if (cap > call->resp_max + 1)
			cap = call->resp_max + 1;
		/* Never plain realloc(): it could leave an unwiped copy behind. */
		if ((grown = secmem_wipe_realloc(call->resp, cap)) == NULL)
			return 0;
		call->resp = grown;
		call->resp_cap = cap;
	}
	memcpy(call->resp + call->resp_len, data, n);
	call->resp_len += n;
	return n;
}

/* Reports one finished transfer, then frees it. */
static void
http_call_finish(struct http_call *call, CURLcode rc)
{
	struct http_response resp;
	enum http_error error;
	const char *msg = NULL;
	char *ctype = NULL;
	char toolarge[96];
	long status = 0;

	http_call_unlink(call);
	curl_multi_remove_handle(call->client->multi, call->easy);
	call->client->active--;

	memset(&resp, 0, sizeof(resp));
	error = http_map_error(rc, call->too_large);
	if (error == HTTP_OK) {
		curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(call->easy, CURLINFO_CONTENT_TYPE, &ctype);
		resp.status = status;
		resp.content_type = ctype;
		if (call->resp != NULL) {
			call->resp[call->resp_len] = '\0';
			resp.body = call->resp;
			resp.body_len = call->resp_len;
		} else {
			resp.body = (const uint8_t *)"";
			resp.body_len = 0;
		}
	} else if (error == HTTP_ERR_TOO_LARGE) {
		snprintf(toolarge, sizeof(toolarge), "response larger than %zu bytes",
		    call->resp_max);
		msg = toolarge;
	} else {
		msg = call->errbuf[0] != '\0' ? call->errbuf : curl_easy_strerror(rc);
	}
	call->cb(call->arg, error == HTTP_OK ? &resp : NULL, error, msg);
	http_call_destroy(call, false);
}

static int http_call_start(struct http_call *call);

/* Starts waiting calls while connections are free. One that cannot start
 * (out of memory) is reported by the next dispatch, which it schedules. */
static void
http_start_waiting(struct http_client *client)
{
	struct http_call *call;

	while (!client->free_pending && client->active < client->max_active &&
	    (call = TAILQ_FIRST(&client->waiting)) != NULL) {
		TAILQ_REMOVE(&client->waiting, call, wait);
		call->queued = false;
		if (http_call_start(call) != 0) {
			call->start_failed = true;
			event_active(client->timer, EV_TIMEOUT, 0);
		}
	}
}

/* Hands every finished transfer to its callback, then starts waiting calls.
 * Callbacks may start, cancel or free. */
static void
http_dispatch_done(struct http_client *client)
{
	struct http_call *call;
	CURLMsg *m;
	CURLcode rc;
	int left;

	client->dispatching++;
	while (!client->free_pending && (m = curl_multi_info_read(client->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		rc = m->data.result;
		call = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&call);
		if (call != NULL)
			http_call_finish(call, rc);
	}
	for (;;) {
		for (call = client->calls; call != NULL && !call->start_failed; call = call->next)
			;
		if (call == NULL || client->free_pending)
			break;
		http_call_unlink(call);
		call->cb(call->arg, NULL, HTTP_ERR_OTHER, "cannot start the request");
		http_call_destroy(call, false);
	}
	http_start_waiting(client);
	client->dispatching--;
	if (client->free_pending && client->dispatching == 0)
		http_client_destroy(client);
}

void
http_call_cancel(struct http_call *call)
{
	struct http_client *client;

	if (call == NULL)
		return;
	client = call->client;
	if (call->easy != NULL)
		client->active--;
	http_call_unlink(call);
	http_call_destroy(call, true);
	http_start_waiting(client);
}

/* ---- building a request ------------------------------------------------------------------ */

static bool
http_header_name_ok(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		/* RFC 9110 token characters. */
		if (c <= 0x20 || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", c) != NULL)
			return false;
	}
	return true;
}

static bool
http_header_value_ok(const char *s)
{
	if (s == NULL)
		return false;
	for (; *s != '\0'; s++)
		if (*s == '\r' || *s == '\n')
			return false;
	return true;
}

/*
 * Builds the header list in memory we own (curl_slist_append would make
 * copies we cannot wipe). An empty value is sent as "Name;" (libcurl reads
 * "Name:" as "remove that header"). "Expect:" turns off 100-continue.
 */
static int
http_build_headers(struct http_call *call, const struct http_request *req)
{
	size_t i, nodes = req->header_count + 1, total = sizeof("Expect:"), off = 0;
	const struct http_header *h;
	int n;

	for (i = 0; i < req->header_count; i++) {
		h = &req->headers[i];
		if (!http_header_name_ok(h->name) || !http_header_value_ok(h->value))
			return -1;
		total += strlen(h->name) + strlen(h->value) + 3;	/* ": " + NUL */
	}
	if ((call->hdr_nodes = calloc(nodes, sizeof(*call->hdr_nodes))) == NULL ||
	    (call->hdr_buf = malloc(total)) == NULL)
		return -1;
	call->hdr_buf_len = total;
	for (i = 0; i < req->header_count; i++) {
		h = &req->headers[i];
		call->hdr_nodes[i].data = call->hdr_buf + off;
		if (h->value[0] == '\0')
			n = snprintf(call->hdr_buf + off, total - off, "%s;", h->name);
		else
			n = snprintf(call->hdr_buf + off, total - off, "%s: %s", h->name, h->value);
		if (n < 0 || (size_t)n >= total - off)
			return -1;
		off += (size_t)n + 1;
		call->hdr_nodes[i].next = &call->hdr_nodes[i + 1];
	}
	memcpy(call->hdr_buf + off, "Expect:", sizeof("Expect:"));
	call->hdr_nodes[nodes - 1].data = call->hdr_buf + off;
	call->hdr_nodes[nodes - 1].next = NULL;
	return 0;
}

/* Loopback, link-local and "localhost": the proxy must be bypassed. */
static bool
http_host_is_local(const char *url)
{
	struct in6_addr a6;
	struct in_addr a4;
	char *host = NULL;
	bool local = false;
	CURLU *u;

	if ((u = curl_url()) == NULL)
		return false;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if (host[0] == '[') {
		size_t len = strlen(host);
		char inner[INET6_ADDRSTRLEN + 1];

		if (len < 3 || len - 2 >= sizeof(inner))
			goto out;
		memcpy(inner, host + 1, len - 2);
		inner[len - 2] = '\0';
		if (inet_pton(AF_INET6, inner, &a6) == 1)
			local = IN6_IS_ADDR_LOOPBACK(&a6) || IN6_IS_ADDR_LINKLOCAL(&a6) ||
			    /* fd00:ec2::/32 holds the IPv6 IMDS and EKS Pod Identity agent */
			    (a6.s6_addr[0] == 0xfd && a6.s6_addr[1] == 0x00 &&
			     a6.s6_addr[2] == 0x0e && a6.s6_addr[3] == 0xc2);
	} else if (inet_pton(AF_INET, host, &a4) == 1) {
		uint32_t ip = ntohl(a4.s_addr);

		local = (ip >> 24) == 127 || (ip >> 16) == 0xa9fe;	/* 127/8, 169.254/16 */
	} else {
		local = strcasecmp(host, "localhost") == 0;
	}
out:
	curl_free(host);
	curl_url_cleanup(u);
	return local;
}

/* Checks the method and body and keeps a copy of both in the call. */
static int
http_copy_method(struct http_call *call, const struct http_request *req)
{
	static const char *const methods[] = { "GET", "HEAD", "POST", "PUT", "DELETE" };
	const char *m = req->method != NULL ? req->method : "GET";

	call->method = NULL;
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (strcmp(m, methods[i]) == 0)
			call->method = methods[i];
	}
	if (call->method == NULL)
		return -1;
	if (req->body_len > 0) {
		if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
			return -1;
		if ((call->req_body = malloc(req->body_len)) == NULL)
			return -1;
		memcpy(call->req_body, req->body, req->body_len);
		call->req_body_len = req->body_len;
	}
	return 0;
}

static int
http_setup_method(struct http_call *call)
{
	CURL *e = call->easy;
	const char *m = call->method;
	bool has_body;

	if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) {
		if (strcmp(m, "HEAD") == 0)
			return curl_easy_setopt(e, CURLOPT_NOBODY, 1L) == CURLE_OK ? 0 : -1;
		return curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) == CURLE_OK ? 0 : -1;
	}
	has_body = call->req_body_len > 0 || strcmp(m, "DELETE") != 0;
	if (has_body) {
		/* POST and PUT always send a Content-Length, even 0 (IMDS wants one). */
		if (curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		        (curl_off_t)call->req_body_len) != CURLE_OK ||
		    curl_easy_setopt(e, CURLOPT_POSTFIELDS,
		        call->req_body != NULL ? (const char *)call->req_body : "") != CURLE_OK)
			return -1;
	}
	if (strcmp(m, "POST") != 0 &&
	    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m) != CURLE_OK)
		return -1;
	return 0;
}

/*
 * CURLOPT_SSL_CTX_FUNCTION, for each new TLS connection: a decrypted record is
 * cleansed from OpenSSL's buffer once libcurl read it (else the last answer
 * on a pooled connection stays there until the next one), and the buffers are
 * freed, through the wiping allocator, while the connection is idle.
 */
static CURLcode
http_ssl_ctx_cb(CURL *easy, void *ssl_ctx, void *arg)
{
	SSL_CTX_set_options(ssl_ctx, SSL_OP_CLEANSE_PLAINTEXT);
	SSL_CTX_set_mode(ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
	return CURLE_OK;
}

/* Makes the call's easy handle and hands it to libcurl; on failure the call
 * is left without one. */
static int
http_call_start(struct http_call *call)
{
	struct http_client *client = call->client;
	long total = call->timeout_ms, connect;
	CURL *e;

	connect = client->connect_timeout_ms < total ? client->connect_timeout_ms : total;
	if ((call->easy = e = curl_easy_init()) == NULL)
		return -1;
	if (http_setup_method(call) != 0)
		goto fail;
	if (curl_easy_setopt(e, CURLOPT_URL, call->url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PRIVATE, call) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK ||
#else
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS,
	        (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS,
	        (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK ||
#endif
	    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, total) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
	        (curl_off_t)client->max_response) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_write_cb) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, call) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->errbuf) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->hdr_nodes) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_USERAGENT, "smcached/" SMC_VERSION) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK)
		goto fail;
	if (client->ca_bundle != NULL &&
	    curl_easy_setopt(e, CURLOPT_CAINFO, client->ca_bundle) != CURLE_OK)
		goto fail;
	/* Refused by a libcurl built without OpenSSL: no request then, rather
	 * than one whose decrypted answer lingers. */
	if (curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, http_ssl_ctx_cb) != CURLE_OK)
		goto fail;
	if (http_host_is_local(call->url) &&
	    curl_easy_setopt(e, CURLOPT_NOPROXY, "*") != CURLE_OK)
		goto fail;

	/* Only arms the timer: the transfer starts, and ends, in the event loop. */
	if (curl_multi_add_handle(client->multi, e) != CURLM_OK)
		goto fail;
	client->active++;
	return 0;
fail:
	curl_easy_cleanup(e);
	call->easy = NULL;
	return -1;
}

int
http_client_request(struct http_client *client, const struct http_request *req,
    http_done_cb cb, void *arg, struct http_call **call_out)
{
	struct http_call *call = NULL;

	if (call_out != NULL)
		*call_out = NULL;
	if (client == NULL || client->free_pending || req == NULL || req->url == NULL ||
	    cb == NULL || (req->body_len > 0 && req->body == NULL) ||
	    (req->header_count > 0 && req->headers == NULL)) {
		errno = EINVAL;
		return -1;
	}
	if ((call = calloc(1, sizeof(*call))) == NULL)
		return -1;
	call->client = client;
	call->cb = cb;
	call->arg = arg;
	call->resp_max = client->max_response;
	call->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : client->total_timeout_ms;
	if ((call->url = strdup(req->url)) == NULL || http_build_headers(call, req) != 0 ||
	    http_copy_method(call, req) != 0)
		goto fail;
	/* A connection free and nobody waiting: the transfer starts now; else it
	 * waits its turn. */
	if (client->active < client->max_active && TAILQ_EMPTY(&client->waiting)) {
		if (http_call_start(call) != 0)
			goto fail;
	} else {
		TAILQ_INSERT_TAIL(&client->waiting, call, wait);
		call->queued = true;
	}
	call->next = client->calls;
	if (client->calls != NULL)
		client->calls->prev = call;
	client->calls = call;
	if (call_out != NULL)
		*call_out = call;
	return 0;
fail:
	http_call_destroy(call, false);
	errno = EINVAL;
	return -1;
}

/* ---- process-wide --------------------------------------------------------------------- */

static void *
http_ossl_malloc(size_t n, const char *file, int line)
{
	return secmem_wipe_malloc(n);
}

static void *
http_ossl_realloc(void *p, size_t n, const char *file, int line)
{
	return secmem_wipe_realloc(p, n);
}

static void
http_ossl_free(void *p, const char *file, int line)
{
	secmem_wipe_free(p);
}

static bool http_global_done;

int
http_global_init(char *err, size_t errlen)
{
	if (http_global_done)
		return 0;
	/* OpenSSL accepts this only before its first allocation; libcurl's
	 * global init is the first thing that would make one. */
	if (CRYPTO_set_mem_functions(http_ossl_malloc, http_ossl_realloc, http_ossl_free) != 1) {
		snprintf(err, errlen, "http: OpenSSL allocated memory before its wiping allocator"
		    " could be installed (start-up order)");
		return -1;
	}
	/* Held until http_global_cleanup(): http_client_new/destroy's own init and
	 * cleanup only count up and down, so the allocator is never reset. */
	if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, secmem_wipe_malloc, secmem_wipe_free,
	        secmem_wipe_realloc, secmem_wipe_strdup, secmem_wipe_calloc) != CURLE_OK) {
		snprintf(err, errlen, "http: libcurl initialisation failed");
		return -1;
	}
	http_global_done = true;
	return 0;
}

void
http_global_cleanup(void)
{
	if (!http_global_done)
		return;
	curl_global_cleanup();
	http_global_done = false;
}

/* ---- client ------------------------------------------------------------------------------ */

struct http_client *
http_client_new(struct event_base *base, const struct http_client_options *opts,
    char *err, size_t errlen)
{
	struct http_client *client = NULL;
	long max_conns = HTTP_DEFAULT_MAX_CONNECTIONS;
	bool global = false;

	if (base == NULL) {
		snprintf(err, errlen, "http: no event base");
		return NULL;
	}
	if (opts != NULL && opts->ca_bundle != NULL && access(opts->ca_bundle, R_OK) != 0) {
		snprintf(err, errlen, "http: CA bundle %s: %s", opts->ca_bundle, strerror(errno));
		return NULL;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "http: libcurl initialisation failed");
		return NULL;
	}
	global = true;
	if ((client = calloc(1, sizeof(*client))) == NULL)
		goto nomem;
	client->base = base;
	TAILQ_INIT(&client->waiting);
	client->connect_timeout_ms = HTTP_DEFAULT_CONNECT_MS;
	client->total_timeout_ms = HTTP_DEFAULT_TOTAL_MS;
	client->max_response = HTTP_DEFAULT_MAX_RESPONSE;
	if (opts != NULL) {
		if (opts->connect_timeout_ms > 0)
			client->connect_timeout_ms = opts->connect_timeout_ms;
		if (opts->total_timeout_ms > 0)
			client->total_timeout_ms = opts->total_timeout_ms;
		if (opts->max_response_bytes > 0)
			client->max_response = opts->max_response_bytes;
		if (opts->max_connections > 0)
			max_conns = opts->max_connections;
		if (opts->ca_bundle != NULL && (client->ca_bundle = strdup(opts->ca_bundle)) == NULL)
			goto nomem;
	}
	client->max_active = max_conns;
	if ((client->timer = evtimer_new(base, http_timer_event_cb, client)) == NULL ||
	    (client->multi = curl_multi_init()) == NULL)
		goto nomem;
	if (curl_multi_setopt(client->multi, CURLMOPT_SOCKETFUNCTION, http_socket_cb) != CURLM_OK ||
	    curl_multi_setopt(client->multi, CURLMOPT_SOCKETDATA, client) != CURLM_OK ||
	    curl_multi_setopt(client->multi, CURLMOPT_TIMERFUNCTION, http_timer_cb) != CURLM_OK ||
	    curl_multi_setopt(client->multi, CURLMOPT_TIMERDATA, client) != CURLM_OK ||
	    curl_multi_setopt(client->multi, CURLMOPT_MAXCONNECTS,
	        max_conns < HTTP_MAX_POOLED_CONNECTIONS ? max_conns :
	        HTTP_MAX_POOLED_CONNECTIONS) != CURLM_OK ||
	    /* The global cap on upstream connections (and so on fetches at once);
	     * calls beyond it wait in client->waiting, so libcurl's queue stays
	     * empty and this only backs that up. */
	    curl_multi_setopt(client->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
	        max_conns) != CURLM_OK) {
		snprintf(err, errlen, "http: cannot configure libcurl");
		goto fail;
	}
	return client;
nomem:
	snprintf(err, errlen, "http: out of memory");
fail:
	if (client != NULL) {
		if (client->multi != NULL)
			curl_multi_cleanup(client->multi);
		if (client->timer != NULL)
			event_free(client->timer);
		free(client->ca_bundle);
		free(client);
	}
	if (global)
		curl_global_cleanup();
	return NULL;
}

static void
http_client_destroy(struct http_client *client)
{
	while (client->socks != NULL)
		http_sock_forget(client, client->socks);
	event_free(client->timer);
	free(client->ca_bundle);
	free(client);
	curl_global_cleanup();
}

void
http_client_free(struct http_client *client)
{
	struct http_call *call;

	if (client == NULL || client->free_pending)
		return;
	while ((call = client->calls) != NULL) {
		http_call_unlink(call);
		http_call_destroy(call, true);
	}
	/* Closes the pooled connections; libcurl may still call http_socket_cb. */
	curl_multi_cleanup(client->multi);
	client->multi = NULL;
	evtimer_del(client->timer);
	if (client->dispatching > 0) {
		/* Called from a done callback: the dispatch loop frees on its way out. */
		client->free_pending = true;
		return;
	}
	http_client_destroy(client);
}
