/*
 * http_door: the HTTP front door (evhttp), compatible with the AWS Secrets
 * Manager Agent and the Parameters and Secrets Lambda extension. Owns the
 * listeners ([http] listen, [http] socket, [http] metrics_listen), their
 * bounds (connections, header and URI sizes, idle timeout), the SSRF token
 * and the checks every request passes before it means anything: token,
 * X-Forwarded-For, method, Host (DNS rebinding), and who the caller is (the
 * uid owning a loopback TCP client, SO_PEERCRED on the Unix socket).
 * What a request means is http_api.c's business.
 */
#ifndef SMC_AGENT_HTTP_DOOR_H
#define SMC_AGENT_HTTP_DOOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct agent;
struct config;
struct http_door;

struct http_door_stats {
	uint64_t connections_accepted;	/* connections that sent a request */
	uint64_t connections_active;
	uint64_t connections_rejected;	/* answered 429 */
	uint64_t requests;
	/* replies by HTTP status class index: see http_door_status_index() */
	uint64_t replies[8];
	uint64_t uid_unknown;		/* requests whose caller's uid could not be established */
	uint64_t sockets_open;		/* accepted and not yet closed, with or without a request */
	uint64_t sockets_shut;		/* shut down: a request not arrived within idle_timeout,
					 * too many sockets waiting for a first one, or too many
					 * bytes of requests still arriving */
};

/* The statuses replies are counted under, in order (the last is "other"). */
extern const int http_door_statuses[8];

/*
 * "ADDRESS:PORT" with a literal IPv4 address or a bracketed IPv6 one
 * ("127.0.0.1:2773", "[::1]:2773"). 0, or -1 with why.
 */
int http_door_parse_address(const char *text, struct sockaddr_storage *ss, socklen_t *len,
    char *why, size_t whylen);
bool http_door_is_loopback(const struct sockaddr_storage *ss);

/*
 * Binds every configured listener and reads the SSRF token (before the
 * agent drops privileges: the token file may be root's). NULL with err set
 * on failure; *door NULL and 0 returned when no listener is configured.
 */
int http_door_open(struct http_door **door, const struct config *cfg, char *err, size_t errlen);
/* Starts serving on agent's event loop; -1 with err on failure. */
int http_door_start(struct http_door *door, struct agent *agent, char *err, size_t errlen);
void http_door_free(struct http_door *door);
const struct http_door_stats *http_door_get_stats(const struct http_door *door);

/* For http_api.c: count a reply under its status; send a plain-text reply. */
struct evhttp_request;
void http_door_count_reply(struct http_door *door, int code);
void http_door_send_text(struct http_door *door, struct evhttp_request *req, int code,
    const char *text);

/*
 * Cleanups for reply bodies sent by reference (evbuffer_add_reference), for
 * every HTTP front door: a body from secmem_wipe_*alloc(), wiped and freed;
 * a shared cache body (arg), released.
 */
void http_door_body_wipe_free(const void *data, size_t len, void *arg);
void http_door_body_release(const void *data, size_t len, void *arg);
/* A new buffer holding body by reference: cleanup(body, len, arg) runs once it is written
 * or dropped. NULL when out of memory, cleanup having run. */
struct evbuffer;
struct evbuffer *http_door_body_ref(const void *body, size_t len,
    void (*cleanup)(const void *data, size_t len, void *arg), void *arg);

#endif
