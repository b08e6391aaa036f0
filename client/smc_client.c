/*
 * smc_client: the smc_client handle and its requests (see smcache.h). A call
 * borrows a connection from the handle's pool (smc_conn.c), encodes, sends,
 * reads the length prefix, reads the body into the connection's guarded
 * buffer, decodes, checks it answers this request, copies the result out,
 * wipes the buffer and gives the connection back.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "smc_conn.h"
#include "smc_error.h"
#include "smc_io.h"
#include "smc_result.h"
#include "frame.h"
#include "message.h"
#include "sockpath.h"

const char *
smc_version(void)
{
	return SMC_VERSION;
}

static int
normalize_timeout(int timeout_ms)
{
	if (timeout_ms == 0)
		return SMC_DEFAULT_TIMEOUT_MS;
	return timeout_ms < 0 ? -1 : timeout_ms;
}

/* Connects now, so a missing or refused agent is reported by smc_connect. */
static int
try_connect(smc_client *c, smc_error *err)
{
	struct smci_conn *conn;

	if ((conn = smci_conn_borrow(c, smci_deadline(c->timeout_ms), err)) == NULL)
		return -1;
	smci_conn_give_back(c, conn);
	return 0;
}

/*
 * No path given: try sockpath.h's candidates in order and keep the first
 * agent that answers and is believed. The error names every path tried,
 * why each failed, and the variable that settles it.
 */
static int
connect_default(smc_client *c, smc_error *err)
{
	static const char tail[] = "; start smcached, or set " PROTO_SOCKET_ENV " to its socket";
	struct proto_socket_candidate cand[PROTO_SOCKET_CANDIDATES_MAX];
	char tried[SMC_ERROR_MESSAGE_MAX - sizeof(tail) - 24];
	smc_error e;
	const char *why;
	size_t used = 0;
	int n, i, w;

	if ((n = proto_socket_candidates(cand)) == -1) {
		smci_err_set(err, SMC_ERR_USAGE, "%s is too long for a socket path (at most %d bytes)",
		    PROTO_SOCKET_ENV, PROTO_SOCKET_PATH_MAX - 1);
		return -1;
	}
	tried[0] = '\0';
	for (i = 0; i < n; i++) {
		memcpy(c->path, cand[i].path, sizeof(c->path));
		c->trust = cand[i].trust;
		if (try_connect(c, &e) == 0)
			return 0;
		if (cand[i].trust == PROTO_TRUST_AS_GIVEN) {	/* $SMCACHE_SOCKET: its message says it all */
			if (err != NULL)
				*err = e;
			return -1;
		}
		/* "PATH (reason)": the reason is what follows "PATH: " in the message. */
		why = strstr(e.message, c->path);
		why = why != NULL && strncmp(why + strlen(c->path), ": ", 2) == 0 ?
		    why + strlen(c->path) + 2 : e.message;
		w = snprintf(tried + used, sizeof(tried) - used, "%s%s (%s%s)", i > 0 ? ", " : "",
		    c->path, strncmp(e.message, "refusing", 8) == 0 ? "refused: " : "", why);
		if (w < 0)
			break;
		used += (size_t)w < sizeof(tried) - used ? (size_t)w : sizeof(tried) - used - 1;
	}
	smci_err_set(err, SMC_ERR_UNREACHABLE, "no agent answers at %s%s", tried, tail);
	return -1;
}

smc_client *
smc_connect(const char *socket_path, int timeout_ms, smc_error *err)
{
	smc_client *c;

	if (sodium_init() < 0) {
		smci_err_set(err, SMC_ERR_INTERNAL, "libsodium failed to initialise");
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		smci_err_set(err, SMC_ERR_NOMEM, "%s", smc_strerror(SMC_ERR_NOMEM));
		return NULL;
	}
	if (pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c);
		smci_err_set(err, SMC_ERR_NOMEM, "%s", smc_strerror(SMC_ERR_NOMEM));
		return NULL;
	}
	c->timeout_ms = normalize_timeout(timeout_ms);
	if (socket_path != NULL) {
		if (strlen(socket_path) >= sizeof(c->path)) {
			smci_err_set(err, SMC_ERR_USAGE, "socket path too long (at most %zu bytes)",
			    sizeof(c->path) - 1);
			goto fail;
		}
		memcpy(c->path, socket_path, strlen(socket_path) + 1);
		c->trust = PROTO_TRUST_AS_GIVEN;	/* the path the user named is believed as named */
		if (try_connect(c, err) != 0)
			goto fail;
	} else if (connect_default(c, err) != 0) {
		goto fail;
	}
	smci_err_clear(err);
	return c;
fail:
	(void)pthread_mutex_destroy(&c->lock);
	free(c);
	return NULL;
}

void
smc_set_timeout(smc_client *c, int timeout_ms)
{
	if (c == NULL)
		return;
	(void)pthread_mutex_lock(&c->lock);
	c->timeout_ms = normalize_timeout(timeout_ms);
	(void)pthread_mutex_unlock(&c->lock);
}

void
smc_close(smc_client *c)
{
	if (c == NULL)
		return;
	smci_pool_free(c);
	(void)pthread_mutex_destroy(&c->lock);
	free(c);
}

/* The deadline of one call: timeout_ms > 0 or < 0 as in smc_connect, 0 the
 * handle's timeout. */
int64_t
smci_call_deadline(smc_client *c, int timeout_ms)
{
	return smci_deadline(timeout_ms == 0 ? smci_client_timeout(c) : normalize_timeout(timeout_ms));
}

/* Sends the frame and reads one reply's body into conn->rbuf, sending it
 * again on a new connection when the agent closed the connection before any
 * reply byte (see smci_retry_closed). */
static int
exchange(smc_client *c, struct smci_conn *conn, const uint8_t *frame, size_t frame_len,
    int64_t deadline, size_t *body_len, smc_error *err)
{
	uint8_t prefix[PROTO_FRAME_PREFIX_LEN];
	size_t got, blen;
	int attempt, reused, rc;

	for (attempt = 0;; attempt++) {
		if (conn->fd == -1 && smci_conn_reopen(c, conn, deadline, err) == -1)
			return -1;
		reused = conn->requests > 0;
		conn->requests++;
		got = 0;
		rc = smci_io_write_all(conn->fd, frame, frame_len, deadline, err);
		if (rc == SMCI_IO_OK)
			rc = smci_io_read_all(conn->fd, prefix, sizeof(prefix), deadline, &got, err);
		if (rc == SMCI_IO_OK)
			break;
		smci_conn_drop(conn);
		if (smci_retry_closed(rc == SMCI_IO_CLOSED && got == 0, reused, attempt, deadline))
			continue;
		return -1;
	}
	switch (proto_frame_check(prefix, sizeof(prefix), PROTO_FRAME_MAX_BODY, &blen)) {
	case PROTO_FRAME_NEED_MORE:
		break;
	case PROTO_FRAME_TOO_LARGE:
		smci_err_set(err, SMC_ERR_PROTOCOL, "the agent announced a %zu-byte reply "
		    "(limit %u)", blen, PROTO_FRAME_MAX_BODY);
		goto fail;
	default:
		smci_err_set(err, SMC_ERR_PROTOCOL, "the agent announced a %zu-byte reply, "
		    "shorter than a header", blen);
		goto fail;
	}
	if (smci_conn_reserve(conn, blen, err) == -1)
		goto fail;
	if ((rc = smci_io_read_all(conn->fd, conn->rbuf, blen, deadline, &got, err)) != SMCI_IO_OK) {
		sodium_memzero(conn->rbuf, got);
		if (rc == SMCI_IO_CLOSED)	/* the prefix was in: this is mid-reply */
			smci_err_set(err, SMC_ERR_UNREACHABLE,
			    "the agent closed the connection in the middle of a reply");
		goto fail;
	}
	*body_len = blen;
	return 0;
fail:
	smci_conn_drop(conn);
	return -1;
}

int
smci_build_request(uint8_t op, uint32_t id, const char *secret_id, const smc_get_options *opts,
    uint8_t *frame, size_t cap, size_t *frame_len, smc_error *err)
{
	struct proto_request req;
	struct proto_writer w;

	memset(&req, 0, sizeof(req));
	if (secret_id != NULL) {
		if (secret_id[0] == '\0' || strlen(secret_id) > PROTO_MAX_SECRET_ID) {
			smci_err_set(err, SMC_ERR_USAGE, "the secret id must be 1 to %d bytes long",
			    PROTO_MAX_SECRET_ID);
			return -1;
		}
		req.secret_id.ptr = secret_id;
		req.secret_id.len = strlen(secret_id);
	}
	if (opts != NULL && opts->version_stage != NULL) {
		if (opts->version_stage[0] == '\0' ||
		    strlen(opts->version_stage) > PROTO_MAX_VERSION_STAGE) {
			smci_err_set(err, SMC_ERR_USAGE, "the version stage must be 1 to %d bytes long",
			    PROTO_MAX_VERSION_STAGE);
			return -1;
		}
		req.version_stage.ptr = opts->version_stage;
		req.version_stage.len = strlen(opts->version_stage);
	}
	if (opts != NULL && opts->version_id != NULL) {
		if (opts->version_id[0] == '\0' || strlen(opts->version_id) > PROTO_MAX_VERSION_ID) {
			smci_err_set(err, SMC_ERR_USAGE, "the version id must be 1 to %d bytes long",
			    PROTO_MAX_VERSION_ID);
			return -1;
		}
		req.version_id.ptr = opts->version_id;
		req.version_id.len = strlen(opts->version_id);
	}
	req.header.version = PROTO_VERSION;
	req.header.op = op;
	req.header.request_id = id;
	if (op == PROTO_OP_GET && opts != NULL && opts->refresh)
		req.header.flags |= PROTO_FLAG_REFRESH;
	proto_writer_init(&w, frame, cap);
	if (proto_request_encode(&w, &req, frame_len) != 0) {
		smci_err_set(err, SMC_ERR_USAGE, "the request cannot be encoded");
		return -1;
	}
	return 0;
}

int
smci_check_reply(const struct proto_reply *reply, uint8_t op, uint32_t id, smc_error *err)
{
	if (reply->header.status != PROTO_STATUS_OK && reply->header.request_id == 0) {
		/* The agent rejected the frame before it could read our id. */
	} else if (reply->header.request_id != id) {
		smci_err_set(err, SMC_ERR_PROTOCOL, "the agent answered request %lu to request %lu",
		    (unsigned long)reply->header.request_id, (unsigned long)id);
		return -1;
	} else if (reply->header.op != (op | PROTO_OP_REPLY)) {
		smci_err_set(err, SMC_ERR_PROTOCOL, "the agent answered a %s request with %s",
		    proto_op_name(op), proto_op_name(reply->header.op & (uint8_t)~PROTO_OP_REPLY));
		return -1;
	}
	return 0;
}

/*
 * One request/reply round on a borrowed connection. On success *reply points
 * into (*connp)->rbuf, which the caller wipes with end_request() once it
 * copied what it needs (that also returns the connection to the pool). Error
 * replies are turned into err here; the connection survives them.
 */
static int
request(smc_client *c, uint8_t op, const char *secret_id, const smc_get_options *opts,
    int timeout_ms, struct smci_conn **connp, struct proto_reply *reply, size_t *body_len,
    smc_error *err)
{
	struct proto_decode_error derr;
	struct smci_conn *conn;
	uint8_t frame[SMCI_REQUEST_MAX];
	size_t frame_len, blen = 0;
	int64_t deadline;
	uint32_t id;

	*body_len = 0;
	*connp = NULL;
	if (c == NULL) {
		smci_err_set(err, SMC_ERR_USAGE, "no client handle");
		return -1;
	}
	/* Arguments are checked before a connection is taken. */
	if (smci_build_request(op, 1, secret_id, opts, frame, sizeof(frame), &frame_len, err) == -1)
		return -1;
	deadline = smci_call_deadline(c, timeout_ms);
	if ((conn = smci_conn_borrow(c, deadline, err)) == NULL)
		return -1;
	id = smci_conn_next_id(conn);
	if (smci_build_request(op, id, secret_id, opts, frame, sizeof(frame), &frame_len, err) == -1)
		goto fail;
	if (exchange(c, conn, frame, frame_len, deadline, &blen, err) == -1)
		goto fail;
	if (proto_reply_decode(conn->rbuf, blen, reply, &derr) != 0) {
		smci_err_set(err, SMC_ERR_PROTOCOL, "malformed reply from the agent: %s",
		    derr.message);
		goto drop;
	}
	if (smci_check_reply(reply, op, id, err) == -1)
		goto drop;
	if (reply->header.status != PROTO_STATUS_OK) {
		smci_err_from_reply(err, reply->header.status, reply->message.ptr,
		    reply->message.len);
		/* After TOO_LARGE the agent closes; anything unknown is not trusted;
		 * a connection-level error ends the connection. */
		if (reply->header.status == PROTO_STATUS_TOO_LARGE || reply->header.request_id == 0 ||
		    smci_status_to_code(reply->header.status) == SMC_ERR_PROTOCOL)
			smci_conn_drop(conn);
		sodium_memzero(conn->rbuf, blen);
		goto fail;
	}
	*body_len = blen;
	*connp = conn;
	return 0;
drop:
	sodium_memzero(conn->rbuf, blen);
	smci_conn_drop(conn);
fail:
	smci_conn_give_back(c, conn);
	return -1;
}

static void
end_request(smc_client *c, struct smci_conn *conn, size_t body_len)
{
	sodium_memzero(conn->rbuf, body_len);
	smci_conn_give_back(c, conn);
}

int
smc_get_timeout(smc_client *c, const char *secret_id, const smc_get_options *opts,
    int timeout_ms, smc_secret **out, smc_error *err)
{
	struct proto_reply reply;
	struct smci_conn *conn;
	size_t blen;
	int rc;

	if (out == NULL || secret_id == NULL) {
		smci_err_set(err, SMC_ERR_USAGE, "smc_get needs a secret id and a result pointer");
		return -1;
	}
	*out = NULL;
	if (request(c, PROTO_OP_GET, secret_id, opts, timeout_ms, &conn, &reply, &blen, err) == -1)
		return -1;
	rc = smci_secret_from_reply(&reply, out, err);
	end_request(c, conn, blen);
	if (rc == 0)
		smci_err_clear(err);
	return rc;
}

int
smc_get(smc_client *c, const char *secret_id, const smc_get_options *opts, smc_secret **out,
    smc_error *err)
{
	return smc_get_timeout(c, secret_id, opts, 0, out, err);
}

int
smc_fetch(const char *secret_id, smc_secret **out, smc_error *err)
{
	smc_client *c;
	int rc;

	if (out != NULL)
		*out = NULL;
	if ((c = smc_connect(NULL, 0, err)) == NULL)
		return -1;
	rc = smc_get(c, secret_id, NULL, out, err);
	smc_close(c);
	return rc;
}

int
smc_describe(smc_client *c, const char *secret_id, smc_description **out, smc_error *err)
{
	struct proto_reply reply;
	struct smci_conn *conn;
	size_t blen;
	int rc;

	if (out == NULL || secret_id == NULL) {
		smci_err_set(err, SMC_ERR_USAGE,
		    "smc_describe needs a secret id and a result pointer");
		return -1;
	}
	*out = NULL;
	if (request(c, PROTO_OP_DESCRIBE, secret_id, NULL, 0, &conn, &reply, &blen, err) == -1)
		return -1;
	rc = smci_description_from_reply(&reply, out, err);
	end_request(c, conn, blen);
	if (rc == 0)
		smci_err_clear(err);
	return rc;
}

int
smc_ping(smc_client *c, char *version, size_t version_len, smc_error *err)
{
	struct proto_reply reply;
	struct smci_conn *conn;
	size_t blen, n;

	if (request(c, PROTO_OP_PING, NULL, NULL, 0, &conn, &reply, &blen, err) == -1)
		return -1;
	if (version != NULL && version_len > 0) {
		n = reply.agent_version.len < version_len - 1 ? reply.agent_version.len :
		    version_len - 1;
		if (n > 0)
			memcpy(version, reply.agent_version.ptr, n);
		version[n] = '\0';
	}
	end_request(c, conn, blen);
	smci_err_clear(err);
	return 0;
}

int
smc_health(smc_client *c, smc_health_info *out, smc_error *err)
{
	struct proto_reply reply;
	struct smci_conn *conn;
	size_t blen, used = 0, n;

	if (out == NULL) {
		smci_err_set(err, SMC_ERR_USAGE, "smc_health needs a result pointer");
		return -1;
	}
	memset(out, 0, sizeof(*out));
	if (request(c, PROTO_OP_HEALTH, NULL, NULL, 0, &conn, &reply, &blen, err) == -1)
		return -1;
	out->live = 1;
	out->ready = reply.ready != 0;
	out->credentials = reply.credentials <= SMC_CREDENTIALS_REJECTED ?
	    (smc_credentials)reply.credentials : SMC_CREDENTIALS_UNKNOWN;
	out->started_ms = (int64_t)reply.started_ms;
	out->last_success_ms = (int64_t)reply.last_success_ms;
	out->last_failure_ms = (int64_t)reply.last_failure_ms;
	out->last_failure = reply.last_failure_ms == 0 ? SMC_OK :
	    reply.last_failure_status > UINT16_MAX ? SMC_ERR_PROTOCOL :
	    smci_status_to_code((uint16_t)reply.last_failure_status);
	out->breaker_open = reply.breaker_open != 0;
	out->prefetch_pending = reply.prefetch_pending;
	out->cache_secrets = reply.cache_secrets;
	out->cache_versions = reply.cache_versions;
	for (size_t i = 0; i < reply.reason_count; i++) {
		n = reply.reasons[i].len;
		if (used + n + 3 > sizeof(out->reasons))
			break;
		if (used > 0) {
			memcpy(out->reasons + used, "; ", 2);
			used += 2;
		}
		memcpy(out->reasons + used, reply.reasons[i].ptr, n);
		used += n;
	}
	out->reasons[used] = '\0';
	end_request(c, conn, blen);
	smci_err_clear(err);
	return 0;
}

int
smc_stats(smc_client *c, smc_stat_list **out, smc_error *err)
{
	struct proto_reply reply;
	struct smci_conn *conn;
	size_t blen;
	int rc;

	if (out == NULL) {
		smci_err_set(err, SMC_ERR_USAGE, "smc_stats needs a result pointer");
		return -1;
	}
	*out = NULL;
	if (request(c, PROTO_OP_STATS, NULL, NULL, 0, &conn, &reply, &blen, err) == -1)
		return -1;
	rc = smci_stats_from_reply(&reply, out, err);
	end_request(c, conn, blen);
	if (rc == 0)
		smci_err_clear(err);
	return rc;
}
