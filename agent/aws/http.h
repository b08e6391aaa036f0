/*
 * http: the agent's one HTTP client. A single libcurl multi handle driven by
 * libevent (CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION), so connections
 * are reused, many requests run at once, and nothing ever blocks the event
 * loop. TLS verification is always on. Proxy environment variables work as
 * libcurl reads them. Used by the AWS backend and the credential providers.
 */
#ifndef SMC_AGENT_HTTP_H
#define SMC_AGENT_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct http_client;
struct http_call;

struct http_client_options {
	long connect_timeout_ms;	/* 0: 2000 */
	long total_timeout_ms;		/* default per request; 0: 5000 */
	const char *ca_bundle;		/* NULL: the system's */
	size_t max_response_bytes;	/* 0: 1 MiB; a larger body fails with HTTP_ERR_TOO_LARGE */
	long max_connections;		/* open at once, pooled ones included; more requests
					 * wait, without a libcurl handle, for a transfer to
					 * end; 0: 32 */
};

struct http_header {
	const char *name;
	const char *value;
};

struct http_request {
	const char *method;		/* "GET", "PUT", "POST" */
	const char *url;
	const struct http_header *headers;
	size_t header_count;
	const uint8_t *body;
	size_t body_len;
	long timeout_ms;		/* 0: the client's default */
};

struct http_response {
	long status;
	const uint8_t *body;		/* NUL-terminated for convenience; body_len excludes it */
	size_t body_len;
	const char *content_type;	/* NULL when absent */
};

enum http_error {
	HTTP_OK = 0,
	HTTP_ERR_TIMEOUT,
	HTTP_ERR_CONNECT,		/* refused, unreachable, DNS */
	HTTP_ERR_TLS,
	HTTP_ERR_TOO_LARGE,
	HTTP_ERR_OTHER,
};

/*
 * Called once per request, never before http_client_request() returned. On
 * HTTP_OK the response is valid only during the call; its body may hold a
 * secret and is zeroed right after the callback returns.
 */
typedef void (*http_done_cb)(void *arg, const struct http_response *response,
    enum http_error error, const char *error_message);

/*
 * Process-wide, once, before anything uses OpenSSL or libcurl (main.c calls it
 * during start-up, before the backend exists): every allocation of libcurl
 * and OpenSSL goes through secmem's wipe-on-free allocator from then on, so
 * the response bodies, request headers (the session token) and TLS records
 * they buffer are zeroed when freed.  Idempotent.  Returns 0, or -1 with the
 * reason in err (OpenSSL had already allocated: the start-up order is wrong).
 */
int http_global_init(char *err, size_t errlen);
/* At exit, after the last http_client_free(). */
void http_global_cleanup(void);

struct http_client *http_client_new(struct event_base *base, const struct http_client_options *opts,
    char *err, size_t errlen);
/* Cancels requests in flight (their callbacks are not called) and frees. */
void http_client_free(struct http_client *client);

/* Copies everything it needs from req. Returns 0, or -1 (callback will not run). */
int http_client_request(struct http_client *client, const struct http_request *req,
    http_done_cb cb, void *arg, struct http_call **call_out);
/* Cancels one request; its callback is not called. */
void http_call_cancel(struct http_call *call);

const char *http_error_name(enum http_error error);

#endif
