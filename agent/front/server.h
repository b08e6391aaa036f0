/*
 * server: accepts connections on the agent's Unix socket and owns each
 * connection's life: reading frames incrementally, answering in order of
 * completion, and the bounds that keep one client from hurting the others
 * (frame size, idle timeout, connection cap, queued output per connection,
 * per uid and in all, requests in flight). What a request means is the
 * dispatcher's business (dispatch.h).
 */
#ifndef SMC_AGENT_SERVER_H
#define SMC_AGENT_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

struct event_base;
struct server;
struct conn;
struct agent;
struct proto_request;
struct peer_limits;
struct peer_entry;

struct server_limits {
	unsigned max_connections;
	unsigned idle_timeout_s;	/* close a connection with no request and no progress this long */
	size_t max_output;		/* stop reading a client whose unread replies reach this */
	size_t max_output_per_uid;	/* ... or whose uid's clients' unread replies reach this */
	size_t max_output_total;	/* ... or when all clients' unread replies reach this */
	unsigned max_in_flight;		/* requests of one connection waiting for the backend */
};

struct server_stats {
	uint64_t connections_accepted;
	uint64_t connections_rejected;	/* over max_connections */
	uint64_t connections_active;
	uint64_t connections_idle_closed;
	uint64_t connections_output_closed;	/* at an output bound, reading nothing for 10 s */
	uint64_t output_queued;		/* gauge: bytes of unread replies, all clients */
	uint64_t frames_rejected;	/* oversized or undersized frames (connection closed) */
	uint64_t requests;
	uint64_t requests_bad;		/* answered with a decode error */
};

/* Called for every well-formed request. The request's strings point into the
 * connection's input buffer: valid only during the call. */
typedef void (*server_request_fn)(struct agent *agent, struct conn *conn,
    const struct proto_request *request);

struct server *server_new(struct event_base *base, int listen_fd, const struct server_limits *limits,
    server_request_fn on_request, struct agent *agent);
/* Closes every connection (pending waiters are detached) and stops listening. */
void server_free(struct server *server);
const struct server_stats *server_get_stats(const struct server *server);

/*
 * Per-uid limits: from now on every accepted connection is counted against
 * its peer's uid, and refused with LIMIT_EXCEEDED past the uid's limit.
 * NULL: no per-uid limits. limits must outlive the server.
 */
void server_set_peer_limits(struct server *server, struct peer_limits *limits);

/* Who is on the other end (SO_PEERCRED and SO_PEERGROUPS at accept time). */
uid_t conn_peer_uid(const struct conn *conn);
gid_t conn_peer_gid(const struct conn *conn);
pid_t conn_peer_pid(const struct conn *conn);
/* Supplementary groups; *count 0 when the kernel could not say (then only the gid counts). */
const gid_t *conn_peer_groups(const struct conn *conn, size_t *count);
/* The uid's limits entry the connection holds; NULL without per-uid limits. */
struct peer_entry *conn_peer_entry(const struct conn *conn);

/* Queue a reply frame (copied). */
void conn_send(struct conn *conn, const void *frame, size_t len);
/* Queue a reply frame that holds a secret value: frame must come from
 * malloc; the connection zeroes and frees it once written or dropped. */
void conn_send_owned_secret(struct conn *conn, uint8_t *frame, size_t len);
/*
 * Queue a reply in two parts: head (copied) and body, sent by reference
 * without a copy. release(body, body_len, arg) runs once the body is written
 * or dropped, or before this returns if it cannot be queued.
 */
typedef void (*conn_release_fn)(const void *body, size_t body_len, void *arg);
void conn_send_shared(struct conn *conn, const void *head, size_t head_len, const void *body,
    size_t body_len, conn_release_fn release, void *arg);
/* Encode-and-send an error reply. */
void conn_send_error(struct conn *conn, uint8_t op, uint32_t request_id, int status,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * A request answered later (after a backend call) holds a waiter on its
 * connection. If the connection closes first, waiter->conn becomes NULL and
 * the answer is simply dropped.
 */
struct conn_waiter {
	struct conn *conn;
	TAILQ_ENTRY(conn_waiter) entry;
};
void conn_waiter_attach(struct conn *conn, struct conn_waiter *waiter);
/* Detaches and lets the connection write what was queued; the connection may
 * be closed by this call, so do not touch it afterwards. */
void conn_waiter_finish(struct conn_waiter *waiter);

#endif
