/*
 * smc_client: the smc_client handle and its requests (see smcache.h). One
 * request at a time per handle: encode, send, read the length prefix, read
 * the body into a guarded buffer, decode, check it answers this request,
 * copy the result out, wipe the buffer.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "smc_error.h"
#include "smc_io.h"
#include "smc_result.h"
#include "frame.h"
#include "message.h"
#include "sockpath.h"

/* A request frame: prefix, header and at most three fields at their limits. */
#define REQUEST_MAX (SMC_FRAME_PREFIX_LEN + SMC_HEADER_LEN + 3 * SMC_FIELD_HEADER_LEN + \
	SMC_MAX_SECRET_ID + SMC_MAX_VERSION_STAGE + SMC_MAX_VERSION_ID)
/* First receive buffer; grown (never shrunk) for larger replies. */
#define RBUF_MIN 4096

struct smc_client {
	int fd;			/* -1 between a lost connection and the next request */
	int timeout_ms;		/* < 0: none */
	enum smc_socket_trust trust;	/* whom we believe at path (sockpath.h) */
	unsigned int requests_on_fd;
	uint32_t next_id;
	uint8_t *rbuf;		/* sodium_malloc'd: replies carry secret values */
	size_t rcap;
	char path[SMC_SOCKET_PATH_MAX];
};

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

static void
drop_connection(smc_client *c)
{
	if (c->fd != -1)
		(void)close(c->fd);
	c->fd = -1;
	c->requests_on_fd = 0;
}

/*
 * In a shared directory (the /tmp fallback), whoever created the socket
 * first could pose as the agent and hand us forged secrets. At a default
 * path, only the agent sockpath.h's rule trusts is believed: root or
 * ourselves at the per-user path; at the system path, root or the agent's
 * user, both for the socket file's owner and for the process behind it.
 */
static int
check_peer(smc_client *c, int fd, smc_error *err)
{
	struct ucred cred;
	struct stat st;
	socklen_t len = sizeof(cred);

	if (c->trust == SMC_TRUST_AS_GIVEN)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		smci_err_set(err, SMC_ERR_UNREACHABLE, "cannot identify the agent at %s: %s",
		    c->path, strerror(errno));
		return -1;
	}
	if (!smc_socket_uid_trusted(c->trust, cred.uid)) {
		smci_err_set(err, SMC_ERR_UNREACHABLE,
		    "refusing the agent at %s: it runs as uid %lu, not as root or %s",
		    c->path, (unsigned long)cred.uid,
		    c->trust == SMC_TRUST_SYSTEM ? "user " SMC_AGENT_USER : "yourself");
		return -1;
	}
	if (c->trust == SMC_TRUST_SYSTEM) {
		if (lstat(c->path, &st) == -1) {
			smci_err_set(err, SMC_ERR_UNREACHABLE, "cannot check the owner of %s: %s",
			    c->path, strerror(errno));
			return -1;
		}
		if (!smc_socket_uid_trusted(c->trust, st.st_uid)) {
			smci_err_set(err, SMC_ERR_UNREACHABLE,
			    "refusing the agent at %s: the socket belongs to uid %lu, "
			    "not to root or user " SMC_AGENT_USER, c->path, (unsigned long)st.st_uid);
			return -1;
		}
	}
	return 0;
}

static int
open_connection(smc_client *c, int64_t deadline, smc_error *err)
{
	int fd;

	if ((fd = smci_io_connect(c->path, deadline, err)) == -1)
		return -1;
	if (check_peer(c, fd, err) == -1) {
		(void)close(fd);
		return -1;
	}
	c->fd = fd;
	c->requests_on_fd = 0;
	return 0;
}

/*
 * No path given: try sockpath.h's candidates in order and keep the first
 * agent that answers and is believed. The error names every path tried,
 * why each failed, and the variable that settles it.
 */
static int
open_default(smc_client *c, int64_t deadline, smc_error *err)
{
	static const char tail[] = "; start smcached, or set " SMC_SOCKET_ENV " to its socket";
	struct smc_socket_candidate cand[SMC_SOCKET_CANDIDATES_MAX];
	char tried[SMC_ERROR_MESSAGE_MAX - sizeof(tail) - 24];
	smc_error e;
	const char *why;
	size_t used = 0;
	int n, i, w;

	if ((n = smc_socket_candidates(cand)) == -1) {
		smci_err_set(err, SMC_ERR_USAGE, "%s is too long for a socket path (at most %d bytes)",
		    SMC_SOCKET_ENV, SMC_SOCKET_PATH_MAX - 1);
		return -1;
	}
	tried[0] = '\0';
	for (i = 0; i < n; i++) {
		memcpy(c->path, cand[i].path, sizeof(c->path));
		c->trust = cand[i].trust;
		if (open_connection(c, deadline, &e) == 0)
			return 0;
		if (cand[i].trust == SMC_TRUST_AS_GIVEN) {	/* $SMCACHE_SOCKET: its message says it all */
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
	c->fd = -1;
	c->timeout_ms = normalize_timeout(timeout_ms);
	c->next_id = 1;
	if (socket_path != NULL) {
		if (strlen(socket_path) >= sizeof(c->path)) {
			smci_err_set(err, SMC_ERR_USAGE, "socket path too long (at most %zu bytes)",
			    sizeof(c->path) - 1);
			goto fail;
		}
		memcpy(c->path, socket_path, strlen(socket_path) + 1);
		c->trust = SMC_TRUST_AS_GIVEN;
		if (open_connection(c, smci_deadline(c->timeout_ms), err) == -1)
			goto fail;
	} else if (open_default(c, smci_deadline(c->timeout_ms), err) == -1)
		goto fail;
	smci_err_clear(err);
	return c;
fail:
	free(c);
	return NULL;
}

void
smc_set_timeout(smc_client *c, int timeout_ms)
{
	if (c != NULL)
		c->timeout_ms = normalize_timeout(timeout_ms);
}

void
smc_close(smc_client *c)
{
	if (c == NULL)
		return;
	drop_connection(c);
	if (c->rbuf != NULL)
		sodium_free(c->rbuf);	/* wipes */
	free(c);
}

static int
reserve_rbuf(smc_client *c, size_t need, smc_error *err)
{
	size_t cap;

	if (need <= c->rcap)
		return 0;
	cap = need < RBUF_MIN ? RBUF_MIN : need;
	if (c->rbuf != NULL)
		sodium_free(c->rbuf);
	c->rcap = 0;
	if ((c->rbuf = sodium_malloc(cap)) == NULL) {
		smci_err_set(err, SMC_ERR_NOMEM, "%s", smc_strerror(SMC_ERR_NOMEM));
		return -1;
	}
	c->rcap = cap;
	return 0;
}

/* Sends the frame and reads one reply's body into c->rbuf. Retries once on
 * a fresh connection when a reused one turns out closed before any reply
 * byte (the agent drops idle connections; every request is read-only, so
 * sending it again is harmless). */
static int
exchange(smc_client *c, const uint8_t *frame, size_t frame_len, size_t *body_len,
    smc_error *err)
{
	uint8_t prefix[SMC_FRAME_PREFIX_LEN];
	int64_t deadline = smci_deadline(c->timeout_ms);
	size_t got, blen;
	int attempt, reused, rc;

	for (attempt = 0;; attempt++) {
		if (c->fd == -1 && open_connection(c, deadline, err) == -1)
			return -1;
		reused = c->requests_on_fd > 0;
		c->requests_on_fd++;
		got = 0;
		rc = smci_io_write_all(c->fd, frame, frame_len, deadline, err);
		if (rc == SMCI_IO_OK)
			rc = smci_io_read_all(c->fd, prefix, sizeof(prefix), deadline, &got, err);
		if (rc == SMCI_IO_OK)
			break;
		drop_connection(c);
		if (rc == SMCI_IO_CLOSED && got == 0 && reused && attempt == 0)
			continue;
		return -1;
	}
	switch (smc_frame_check(prefix, sizeof(prefix), SMC_FRAME_MAX_BODY, &blen)) {
	case SMC_FRAME_NEED_MORE:
		break;
	case SMC_FRAME_TOO_LARGE:
		smci_err_set(err, SMC_ERR_PROTOCOL, "the agent announced a %zu-byte reply "
		    "(limit %u)", blen, SMC_FRAME_MAX_BODY);
		goto fail;
	default:
		smci_err_set(err, SMC_ERR_PROTOCOL, "the agent announced a %zu-byte reply, "
		    "shorter than a header", blen);
		goto fail;
	}
	if (reserve_rbuf(c, blen, err) == -1)
		goto fail;
	if ((rc = smci_io_read_all(c->fd, c->rbuf, blen, deadline, &got, err)) != SMCI_IO_OK) {
		sodium_memzero(c->rbuf, got);
		if (rc == SMCI_IO_CLOSED)	/* the prefix was in: this is mid-reply */
			smci_err_set(err, SMC_ERR_UNREACHABLE,
			    "the agent closed the connection in the middle of a reply");
		goto fail;
	}
	*body_len = blen;
	return 0;
fail:
	drop_connection(c);
	return -1;
}

/*
 * One request/reply round. On success *reply points into c->rbuf, which the
 * caller wipes with end_request() once it copied what it needs. Error
 * replies are turned into err here; the connection survives them.
 */
static int
request(smc_client *c, uint8_t op, const char *secret_id, const smc_get_options *opts,
    struct smc_reply *reply, size_t *body_len, smc_error *err)
{
	struct smc_request req;
	struct smc_decode_error derr;
	struct smc_writer w;
	uint8_t frame[REQUEST_MAX];
	size_t frame_len, blen = 0;
	uint32_t id;

	*body_len = 0;
	if (c == NULL) {
		smci_err_set(err, SMC_ERR_USAGE, "no client handle");
		return -1;
	}
	memset(&req, 0, sizeof(req));
	if (secret_id != NULL) {
		if (secret_id[0] == '\0' || strlen(secret_id) > SMC_MAX_SECRET_ID) {
			smci_err_set(err, SMC_ERR_USAGE, "the secret id must be 1 to %d bytes long",
			    SMC_MAX_SECRET_ID);
			return -1;
		}
		req.secret_id.ptr = secret_id;
		req.secret_id.len = strlen(secret_id);
	}
	if (opts != NULL && opts->version_stage != NULL) {
		if (opts->version_stage[0] == '\0' ||
		    strlen(opts->version_stage) > SMC_MAX_VERSION_STAGE) {
			smci_err_set(err, SMC_ERR_USAGE, "the version stage must be 1 to %d bytes long",
			    SMC_MAX_VERSION_STAGE);
			return -1;
		}
		req.version_stage.ptr = opts->version_stage;
		req.version_stage.len = strlen(opts->version_stage);
	}
	if (opts != NULL && opts->version_id != NULL) {
		if (opts->version_id[0] == '\0' || strlen(opts->version_id) > SMC_MAX_VERSION_ID) {
			smci_err_set(err, SMC_ERR_USAGE, "the version id must be 1 to %d bytes long",
			    SMC_MAX_VERSION_ID);
			return -1;
		}
		req.version_id.ptr = opts->version_id;
		req.version_id.len = strlen(opts->version_id);
	}

	id = c->next_id++;
	if (c->next_id == 0)
		c->next_id = 1;	/* 0 is what an agent answers when it could not read the id */
	req.header.version = SMC_PROTO_VERSION;
	req.header.op = op;
	req.header.request_id = id;
	if (op == SMC_OP_GET && opts != NULL && opts->refresh)
		req.header.flags |= SMC_FLAG_REFRESH;
	smc_writer_init(&w, frame, sizeof(frame));
	if (smc_request_encode(&w, &req, &frame_len) != 0) {
		smci_err_set(err, SMC_ERR_USAGE, "the request cannot be encoded");
		return -1;
	}

	if (exchange(c, frame, frame_len, &blen, err) == -1)
		return -1;
	if (smc_reply_decode(c->rbuf, blen, reply, &derr) != 0) {
		smci_err_set(err, SMC_ERR_PROTOCOL, "malformed reply from the agent: %s",
		    derr.message);
		goto fail;
	}
	if (reply->header.status != SMC_STATUS_OK && reply->header.request_id == 0) {
		/* The agent rejected the frame before it could read our id. */
	} else if (reply->header.request_id != id) {
		smci_err_set(err, SMC_ERR_PROTOCOL, "the agent answered request %lu to request %lu",
		    (unsigned long)reply->header.request_id, (unsigned long)id);
		goto fail;
	} else if (reply->header.op != (op | SMC_OP_REPLY)) {
		smci_err_set(err, SMC_ERR_PROTOCOL, "the agent answered a %s request with %s",
		    smc_op_name(op), smc_op_name(reply->header.op & (uint8_t)~SMC_OP_REPLY));
		goto fail;
	}
	if (reply->header.status != SMC_STATUS_OK) {
		smci_err_from_reply(err, reply->header.status, reply->message.ptr,
		    reply->message.len);
		/* After TOO_LARGE the agent closes; anything unknown is not trusted. */
		if (reply->header.status == SMC_STATUS_TOO_LARGE ||
		    smci_status_to_code(reply->header.status) == SMC_ERR_PROTOCOL)
			drop_connection(c);
		sodium_memzero(c->rbuf, blen);
		return -1;
	}
	*body_len = blen;
	return 0;
fail:
	sodium_memzero(c->rbuf, blen);
	drop_connection(c);
	return -1;
}

static void
end_request(smc_client *c, size_t body_len)
{
	sodium_memzero(c->rbuf, body_len);
}

int
smc_get(smc_client *c, const char *secret_id, const smc_get_options *opts, smc_secret **out,
    smc_error *err)
{
	struct smc_reply reply;
	size_t blen;
	int rc;

	if (out == NULL || secret_id == NULL) {
		smci_err_set(err, SMC_ERR_USAGE, "smc_get needs a secret id and a result pointer");
		return -1;
	}
	*out = NULL;
	if (request(c, SMC_OP_GET, secret_id, opts, &reply, &blen, err) == -1)
		return -1;
	rc = smci_secret_from_reply(&reply, out, err);
	end_request(c, blen);
	if (rc == 0)
		smci_err_clear(err);
	return rc;
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
	struct smc_reply reply;
	size_t blen;
	int rc;

	if (out == NULL || secret_id == NULL) {
		smci_err_set(err, SMC_ERR_USAGE,
		    "smc_describe needs a secret id and a result pointer");
		return -1;
	}
	*out = NULL;
	if (request(c, SMC_OP_DESCRIBE, secret_id, NULL, &reply, &blen, err) == -1)
		return -1;
	rc = smci_description_from_reply(&reply, out, err);
	end_request(c, blen);
	if (rc == 0)
		smci_err_clear(err);
	return rc;
}

int
smc_ping(smc_client *c, char *version, size_t version_len, smc_error *err)
{
	struct smc_reply reply;
	size_t blen, n;

	if (request(c, SMC_OP_PING, NULL, NULL, &reply, &blen, err) == -1)
		return -1;
	if (version != NULL && version_len > 0) {
		n = reply.agent_version.len < version_len - 1 ? reply.agent_version.len :
		    version_len - 1;
		if (n > 0)
			memcpy(version, reply.agent_version.ptr, n);
		version[n] = '\0';
	}
	end_request(c, blen);
	smci_err_clear(err);
	return 0;
}

int
smc_stats(smc_client *c, smc_stat_list **out, smc_error *err)
{
	struct smc_reply reply;
	size_t blen;
	int rc;

	if (out == NULL) {
		smci_err_set(err, SMC_ERR_USAGE, "smc_stats needs a result pointer");
		return -1;
	}
	*out = NULL;
	if (request(c, SMC_OP_STATS, NULL, NULL, &reply, &blen, err) == -1)
		return -1;
	rc = smci_stats_from_reply(&reply, out, err);
	end_request(c, blen);
	if (rc == 0)
		smci_err_clear(err);
	return rc;
}

_Static_assert((int)SMC_CREDENTIALS_REJECTED == (int)SMC_CRED_REJECTED &&
    (int)SMC_CREDENTIALS_OK == (int)SMC_CRED_OK &&
    (int)SMC_CREDENTIALS_UNAVAILABLE == (int)SMC_CRED_UNAVAILABLE &&
    (int)SMC_CREDENTIALS_UNKNOWN == (int)SMC_CRED_UNKNOWN, "the protocol's CREDENTIALS values");

int
smc_health(smc_client *c, smc_health_info *out, smc_error *err)
{
	struct smc_reply reply;
	size_t blen, used = 0, n;

	if (out == NULL) {
		smci_err_set(err, SMC_ERR_USAGE, "smc_health needs a result pointer");
		return -1;
	}
	memset(out, 0, sizeof(*out));
	if (request(c, SMC_OP_HEALTH, NULL, NULL, &reply, &blen, err) == -1)
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
	end_request(c, blen);
	smci_err_clear(err);
	return 0;
}
