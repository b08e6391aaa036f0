/*
 * smc_conn: the connections behind an smc_client handle (internal to
 * libsmcache). A handle keeps a small pool of idle connections under a mutex;
 * each call borrows one, so threads sharing a handle never share a
 * connection mid-request. A connection remembers the process that opened it:
 * after fork() the child never uses its parent's connections (it closes its
 * copies of the descriptors and opens its own).
 */
#ifndef SMC_CLIENT_CONN_H
#define SMC_CLIENT_CONN_H

#include <sys/types.h>

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "smcache.h"
#include "sockpath.h"

/* Idle connections a handle keeps; a burst of more threads opens more and
 * closes the extras on return. */
#define SMCI_POOL_IDLE_MAX	4
/* Reconnect backoff while an agent that answered before is gone (restart). */
#define SMCI_RECONNECT_FIRST_MS	10
#define SMCI_RECONNECT_MAX_MS	500

struct smci_conn {
	int fd;
	pid_t pid;		/* the process that opened fd */
	unsigned int requests;	/* sent on this fd: a reused fd may have been closed by the agent */
	uint32_t next_id;
	uint8_t *rbuf;		/* sodium_malloc'd: replies carry secret values */
	size_t rcap;
	struct smci_conn *next;	/* in the idle list */
};

struct smc_client {
	pthread_mutex_t lock;	/* guards idle, n_idle, timeout_ms, reached */
	struct smci_conn *idle;
	unsigned int n_idle;
	int timeout_ms;		/* < 0: none */
	int reached;		/* an agent answered once: retry connecting while it restarts */
	enum proto_socket_trust trust;	/* whom we believe at path (sockpath.h) */
	char path[PROTO_SOCKET_PATH_MAX];
};

/* The handle's per-call timeout (locked read). */
int smci_client_timeout(smc_client *c);

/* A connection for one call: an idle one of this process, else a new one
 * (retrying with backoff until the deadline when an agent answered before). */
struct smci_conn *smci_conn_borrow(smc_client *c, int64_t deadline, smc_error *err);
/* Back to the pool when still open and the pool has room; else freed. */
void smci_conn_give_back(smc_client *c, struct smci_conn *conn);
/* Opens a fresh fd on conn (after the agent closed the old one). */
int smci_conn_reopen(smc_client *c, struct smci_conn *conn, int64_t deadline, smc_error *err);
/* Closes the fd; the struct stays (fd -1). */
void smci_conn_drop(struct smci_conn *conn);
/* Frees every idle connection (smc_close). */
void smci_pool_free(smc_client *c);
/* Grows conn->rbuf to at least need bytes (guarded memory). */
int smci_conn_reserve(struct smci_conn *conn, size_t need, smc_error *err);
/* The next request id on conn (never 0). */
uint32_t smci_conn_next_id(struct smci_conn *conn);

/* The absolute deadline of one call: timeout_ms as in smc_connect, 0 meaning
 * the handle's own timeout. */
int64_t smci_call_deadline(smc_client *c, int timeout_ms);

struct proto_reply;
/* Encodes one request frame into frame (cap bytes); SMC_ERR_USAGE for
 * arguments the protocol cannot carry. */
int smci_build_request(uint8_t op, uint32_t id, const char *secret_id,
    const smc_get_options *opts, uint8_t *frame, size_t cap, size_t *frame_len, smc_error *err);
/* Checks that a decoded reply answers request id with op (SMC_ERR_PROTOCOL). */
int smci_check_reply(const struct proto_reply *reply, uint8_t op, uint32_t id, smc_error *err);

/* Sends of one request after the agent closed the connection before any
 * reply byte. */
#define SMCI_CLOSED_RETRIES	3
/*
 * Whether to send a request again after its connection closed. Every
 * request is read-only, so resending is harmless; a reused connection may
 * have been closed by an idle agent or one that is restarting, and the
 * connection after it may meet the old agent still shutting down, so up to
 * SMCI_CLOSED_RETRIES sends are made, with a short pause after the second.
 * A first send on a fresh connection that the agent closed is its answer
 * and is not repeated.
 */
int smci_retry_closed(int closed_before_reply, int reused, int attempt, int64_t deadline);

/* A request frame: prefix, header and at most three fields at their limits. */
#define SMCI_REQUEST_MAX (PROTO_FRAME_PREFIX_LEN + PROTO_HEADER_LEN + 3 * PROTO_FIELD_HEADER_LEN + \
	PROTO_MAX_SECRET_ID + PROTO_MAX_VERSION_STAGE + PROTO_MAX_VERSION_ID)

#endif
