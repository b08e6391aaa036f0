/*
 * smc_conn: the pool of connections behind a handle (see smc_conn.h).
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "smc_conn.h"
#include "smc_error.h"
#include "smc_io.h"

/* First receive buffer; grown (never shrunk) for larger replies. */
#define RBUF_MIN 4096

int
smci_client_timeout(smc_client *c)
{
	int t;

	(void)pthread_mutex_lock(&c->lock);
	t = c->timeout_ms;
	(void)pthread_mutex_unlock(&c->lock);
	return t;
}

void
smci_conn_drop(struct smci_conn *conn)
{
	/* In a child after fork() this closes only the child's copy: the
	 * parent's connection stays open and in sync. */
	if (conn->fd != -1)
		(void)close(conn->fd);
	conn->fd = -1;
	conn->requests = 0;
}

static void
conn_free(struct smci_conn *conn)
{
	if (conn == NULL)
		return;
	smci_conn_drop(conn);
	if (conn->rbuf != NULL)
		sodium_free(conn->rbuf);	/* wipes */
	free(conn);
}

/*
 * In a shared directory (the /tmp fallback), whoever created the socket
 * first could pose as the agent and hand us forged secrets. At a default
 * path, only the agent sockpath.h's rule trusts is believed: root or
 * ourselves at the per-user path; at the system path, root or the agent's
 * user, both for the socket file's owner and for the process behind it.
 */
static int
check_peer(const smc_client *c, int fd, smc_error *err)
{
	struct ucred cred;
	struct stat st;
	socklen_t len = sizeof(cred);

	if (c->trust == PROTO_TRUST_AS_GIVEN)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		smci_err_set(err, SMC_ERR_UNREACHABLE, "cannot identify the agent at %s: %s",
		    c->path, strerror(errno));
		return -1;
	}
	if (!proto_socket_uid_trusted(c->trust, cred.uid)) {
		smci_err_set(err, SMC_ERR_UNREACHABLE,
		    "refusing the agent at %s: it runs as uid %lu, not as root or %s",
		    c->path, (unsigned long)cred.uid,
		    c->trust == PROTO_TRUST_SYSTEM ? "user " PROTO_AGENT_USER : "yourself");
		return -1;
	}
	if (c->trust == PROTO_TRUST_SYSTEM) {
		if (lstat(c->path, &st) == -1) {
			smci_err_set(err, SMC_ERR_UNREACHABLE, "cannot check the owner of %s: %s",
			    c->path, strerror(errno));
			return -1;
		}
		if (!proto_socket_uid_trusted(c->trust, st.st_uid)) {
			smci_err_set(err, SMC_ERR_UNREACHABLE,
			    "refusing the agent at %s: the socket belongs to uid %lu, "
			    "not to root or user " PROTO_AGENT_USER, c->path, (unsigned long)st.st_uid);
			return -1;
		}
	}
	return 0;
}

static int
open_fd(smc_client *c, int64_t deadline, smc_error *err)
{
	int fd;

	if ((fd = smci_io_connect(c->path, deadline, err)) == -1)
		return -1;
	if (check_peer(c, fd, err) == -1) {
		(void)close(fd);
		return -2;	/* an impostor does not go away by retrying */
	}
	return fd;
}

int
smci_conn_reopen(smc_client *c, struct smci_conn *conn, int64_t deadline, smc_error *err)
{
	smc_error e;	/* ours, so the retry decision works when the caller passed NULL */
	int fd, reached, left, delay = SMCI_RECONNECT_FIRST_MS;

	smci_conn_drop(conn);
	for (;;) {
		if ((fd = open_fd(c, deadline, &e)) >= 0)
			break;
		(void)pthread_mutex_lock(&c->lock);
		reached = c->reached;
		(void)pthread_mutex_unlock(&c->lock);
		left = smci_io_remaining_ms(deadline);
		/* A handle that never reached an agent fails at once; one that did
		 * is most likely seeing a restart, and waits for the new agent
		 * until the deadline. An unusable path or a refused peer (fd -2)
		 * is not going to heal. */
		if (fd == -2 || !reached || e.code != SMC_ERR_UNREACHABLE || left == 0 ||
		    (left > 0 && left <= delay)) {
			if (err != NULL)
				*err = e;
			return -1;
		}
		smci_io_pause_ms(delay, deadline);
		delay = delay * 2 > SMCI_RECONNECT_MAX_MS ? SMCI_RECONNECT_MAX_MS : delay * 2;
	}
	conn->fd = fd;
	conn->pid = getpid();
	conn->requests = 0;
	(void)pthread_mutex_lock(&c->lock);
	c->reached = 1;
	(void)pthread_mutex_unlock(&c->lock);
	return 0;
}

struct smci_conn *
smci_conn_borrow(smc_client *c, int64_t deadline, smc_error *err)
{
	struct smci_conn *conn, *stale = NULL;
	pid_t me = getpid();

	(void)pthread_mutex_lock(&c->lock);
	while ((conn = c->idle) != NULL) {
		c->idle = conn->next;
		c->n_idle--;
		conn->next = NULL;
		if (conn->pid == me && conn->fd != -1)
			break;
		conn->next = stale;	/* the parent's, after a fork: never used here */
		stale = conn;
	}
	(void)pthread_mutex_unlock(&c->lock);
	while (stale != NULL) {
		struct smci_conn *next = stale->next;

		conn_free(stale);
		stale = next;
	}
	if (conn != NULL)
		return conn;
	if ((conn = calloc(1, sizeof(*conn))) == NULL) {
		smci_err_set(err, SMC_ERR_NOMEM, "%s", smc_strerror(SMC_ERR_NOMEM));
		return NULL;
	}
	conn->fd = -1;
	conn->next_id = 1;
	if (smci_conn_reopen(c, conn, deadline, err) == -1) {
		conn_free(conn);
		return NULL;
	}
	return conn;
}

void
smci_conn_give_back(smc_client *c, struct smci_conn *conn)
{
	if (conn == NULL)
		return;
	if (conn->fd != -1 && conn->pid == getpid()) {
		(void)pthread_mutex_lock(&c->lock);
		if (c->n_idle < SMCI_POOL_IDLE_MAX) {
			conn->next = c->idle;
			c->idle = conn;
			c->n_idle++;
			conn = NULL;
		}
		(void)pthread_mutex_unlock(&c->lock);
	}
	conn_free(conn);
}

void
smci_pool_free(smc_client *c)
{
	struct smci_conn *conn, *next;

	for (conn = c->idle; conn != NULL; conn = next) {
		next = conn->next;
		conn_free(conn);
	}
	c->idle = NULL;
	c->n_idle = 0;
}

int
smci_conn_reserve(struct smci_conn *conn, size_t need, smc_error *err)
{
	size_t cap;

	if (need <= conn->rcap)
		return 0;
	cap = need < RBUF_MIN ? RBUF_MIN : need;
	if (conn->rbuf != NULL)
		sodium_free(conn->rbuf);
	conn->rcap = 0;
	if ((conn->rbuf = sodium_malloc(cap)) == NULL) {
		smci_err_set(err, SMC_ERR_NOMEM, "%s", smc_strerror(SMC_ERR_NOMEM));
		return -1;
	}
	conn->rcap = cap;
	return 0;
}

uint32_t
smci_conn_next_id(struct smci_conn *conn)
{
	uint32_t id = conn->next_id++;

	if (conn->next_id == 0)
		conn->next_id = 1;	/* 0 is what an agent answers when it could not read the id */
	return id;
}

int
smci_retry_closed(int closed_before_reply, int reused, int attempt, int64_t deadline)
{
	int left;

	/* A fresh connection closed on a first attempt: the agent saw the
	 * request and chose to hang up; that is its answer. */
	if (!closed_before_reply || (attempt == 0 && !reused) || attempt >= SMCI_CLOSED_RETRIES)
		return 0;
	/* A later attempt may meet an agent that is shutting down (it still
	 * accepts, then closes): give it a moment before the next one. */
	if (attempt > 0) {
		left = smci_io_remaining_ms(deadline);
		if (left == 0)
			return 0;
		smci_io_pause_ms(SMCI_RECONNECT_FIRST_MS << attempt, deadline);
	}
	return 1;
}
