/*
 * smc_batch: pipelined GETs (see smcache.h). Every queued request is encoded
 * up front into one buffer; run() borrows one connection, writes while it
 * reads (the agent stops reading a connection whose replies are not being
 * read, PROTOCOL.md section 8, so writing everything before reading could
 * deadlock on a large batch), matches replies to requests by id (they come in
 * any order) and turns each into a secret or an error right away, wiping the
 * receive buffer after each reply.
 */
#include <sys/socket.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "smc_conn.h"
#include "smc_error.h"
#include "smc_io.h"
#include "smc_result.h"
#include "frame.h"
#include "message.h"

enum item_state { ITEM_QUEUED, ITEM_DONE, ITEM_TAKEN };

struct batch_item {
	size_t off, len;	/* the request's frame inside b->frames */
	uint32_t id;		/* request id, once run() assigned it */
	enum item_state state;
	smc_secret *secret;	/* on success */
	smc_error err;		/* on failure */
};

struct smc_batch {
	smc_client *client;
	struct batch_item *items;
	size_t count, cap;
	uint8_t *frames;	/* requests, encoded back to back (ids patched in run) */
	size_t flen, fcap;
	int ran;
};

smc_batch *
smc_batch_new(smc_client *c, smc_error *err)
{
	smc_batch *b;

	if (c == NULL) {
		smci_err_set(err, SMC_ERR_USAGE, "no client handle");
		return NULL;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL) {
		smci_err_set(err, SMC_ERR_NOMEM, "%s", smc_strerror(SMC_ERR_NOMEM));
		return NULL;
	}
	b->client = c;
	smci_err_clear(err);
	return b;
}

size_t
smc_batch_count(const smc_batch *b)
{
	return b == NULL ? 0 : b->count;
}

static int
grow(void **ptr, size_t *cap, size_t need, size_t size)
{
	size_t ncap = *cap == 0 ? 16 : *cap;
	void *p;

	while (ncap < need)
		ncap *= 2;
	if (ncap == *cap)
		return 0;
	if ((p = realloc(*ptr, ncap * size)) == NULL)
		return -1;
	*ptr = p;
	*cap = ncap;
	return 0;
}

long
smc_batch_add(smc_batch *b, const char *secret_id, const smc_get_options *opts, smc_error *err)
{
	uint8_t frame[SMCI_REQUEST_MAX];
	struct batch_item *it;
	size_t flen;

	if (b == NULL || secret_id == NULL) {
		smci_err_set(err, SMC_ERR_USAGE, "smc_batch_add needs a batch and a secret id");
		return -1;
	}
	if (b->ran) {
		smci_err_set(err, SMC_ERR_USAGE, "this batch already ran");
		return -1;
	}
	if (b->count >= SMC_BATCH_MAX) {
		smci_err_set(err, SMC_ERR_USAGE, "a batch holds at most %d requests", SMC_BATCH_MAX);
		return -1;
	}
	/* Encoded with a placeholder id; run() writes the real one in place. */
	if (smci_build_request(PROTO_OP_GET, 1, secret_id, opts, frame, sizeof(frame), &flen, err) == -1)
		return -1;
	if (grow((void **)&b->items, &b->cap, b->count + 1, sizeof(*b->items)) == -1 ||
	    grow((void **)&b->frames, &b->fcap, b->flen + flen, 1) == -1) {
		smci_err_set(err, SMC_ERR_NOMEM, "%s", smc_strerror(SMC_ERR_NOMEM));
		return -1;
	}
	it = &b->items[b->count];
	memset(it, 0, sizeof(*it));
	it->off = b->flen;
	it->len = flen;
	memcpy(b->frames + b->flen, frame, flen);
	b->flen += flen;
	smci_err_clear(err);
	return (long)b->count++;
}

/* The request id sits after the prefix, version, op and flags. */
#define ID_OFFSET (PROTO_FRAME_PREFIX_LEN + 4)

static void
put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Files one decoded reply under its request. -1: the reply cannot be trusted. */
static int
file_reply(smc_batch *b, uint32_t first_id, const struct proto_reply *reply, size_t *pending,
    smc_error *err)
{
	struct batch_item *it;
	uint32_t id = reply->header.request_id;
	size_t i;

	if (id == 0 && reply->header.status != PROTO_STATUS_OK) {
		/* Connection-level: it answers every request still pending. */
		smci_err_from_reply(err, reply->header.status, reply->message.ptr, reply->message.len);
		return -1;
	}
	i = (size_t)(id - first_id);
	if (i >= b->count || b->items[i].state != ITEM_QUEUED || b->items[i].id != id) {
		smci_err_set(err, SMC_ERR_PROTOCOL, "the agent answered request %lu, which is not pending",
		    (unsigned long)id);
		return -1;
	}
	it = &b->items[i];
	if (smci_check_reply(reply, PROTO_OP_GET, id, err) == -1)
		return -1;
	if (reply->header.status != PROTO_STATUS_OK)
		smci_err_from_reply(&it->err, reply->header.status, reply->message.ptr,
		    reply->message.len);
	else if (smci_secret_from_reply(reply, &it->secret, &it->err) == 0)
		smci_err_clear(&it->err);
	it->state = ITEM_DONE;
	(*pending)--;
	return 0;
}

/*
 * One pass over a connection: write what is left of frames[sent..], read and
 * file replies, until none is pending. Returns 0, or -1 with err set; *got_any
 * says whether any reply byte arrived and *closed whether the agent closed the
 * connection (a reused connection closed before any reply may be retried).
 */
static int
pump(smc_batch *b, struct smci_conn *conn, uint32_t first_id, int64_t deadline, size_t *pending,
    int *got_any, int *closed, smc_error *err)
{
	struct proto_decode_error derr;
	struct proto_reply reply;
	uint8_t prefix[PROTO_FRAME_PREFIX_LEN];
	size_t sent = 0, have = 0, need = PROTO_FRAME_PREFIX_LEN, blen = 0;
	int in_body = 0, rc = -1;
	short revents;
	ssize_t n;

	while (*pending > 0) {
		if (smci_io_wait(conn->fd, POLLIN | (sent < b->flen ? POLLOUT : 0), deadline, &revents,
		    err) == -1)
			goto out;
		if (sent < b->flen && (revents & (POLLOUT | POLLERR | POLLHUP))) {
			n = send(conn->fd, b->frames + sent, b->flen - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				if ((errno == EPIPE || errno == ECONNRESET) && !(revents & POLLIN)) {
					smci_err_set(err, SMC_ERR_UNREACHABLE, "the agent closed the connection");
					*closed = 1;
					goto out;
				}
				if (errno != EPIPE && errno != ECONNRESET) {
					smci_err_set(err, SMC_ERR_UNREACHABLE, "send to the agent: %s",
					    strerror(errno));
					goto out;
				}
			}
		}
		if (!(revents & (POLLIN | POLLERR | POLLHUP)))
			continue;
		n = recv(conn->fd, in_body ? conn->rbuf + have : prefix + have, need - have, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			continue;
		if (n == 0 || errno == ECONNRESET) {
			smci_err_set(err, SMC_ERR_UNREACHABLE, "the agent closed the connection%s",
			    have > 0 || in_body ? " in the middle of a reply" : "");
			*closed = 1;
			goto out;
		}
		if (n < 0) {
			smci_err_set(err, SMC_ERR_UNREACHABLE, "receive from the agent: %s", strerror(errno));
			goto out;
		}
		*got_any = 1;
		have += (size_t)n;
		if (have < need)
			continue;
		if (!in_body) {
			if (proto_frame_check(prefix, sizeof(prefix), PROTO_FRAME_MAX_BODY, &blen) !=
			    PROTO_FRAME_NEED_MORE) {
				smci_err_set(err, SMC_ERR_PROTOCOL, "the agent announced a %zu-byte reply",
				    blen);
				goto out;
			}
			if (smci_conn_reserve(conn, blen, err) == -1)
				goto out;
			in_body = 1;
			have = 0;
			need = blen;
			continue;
		}
		if (proto_reply_decode(conn->rbuf, blen, &reply, &derr) != 0) {
			smci_err_set(err, SMC_ERR_PROTOCOL, "malformed reply from the agent: %s",
			    derr.message);
			goto out;
		}
		if (file_reply(b, first_id, &reply, pending, err) == -1)
			goto out;
		sodium_memzero(conn->rbuf, blen);
		in_body = 0;
		have = 0;
		need = PROTO_FRAME_PREFIX_LEN;
	}
	rc = 0;
out:
	if (conn->rbuf != NULL)
		sodium_memzero(conn->rbuf, conn->rcap);
	return rc;
}

int
smc_batch_run(smc_batch *b, int timeout_ms, smc_error *err)
{
	struct smci_conn *conn = NULL;
	smc_error e;
	int64_t deadline;
	uint32_t first_id;
	size_t i, pending;
	int attempt, got_any, closed, reused, rc = -1;

	if (b == NULL || b->ran) {
		smci_err_set(err, SMC_ERR_USAGE, b == NULL ? "no batch" : "this batch already ran");
		return -1;
	}
	b->ran = 1;
	smci_err_clear(&e);
	pending = b->count;
	deadline = smci_call_deadline(b->client, timeout_ms);
	for (attempt = 0; pending > 0; attempt++) {
		if (conn == NULL && (conn = smci_conn_borrow(b->client, deadline, &e)) == NULL)
			goto out;
		if (conn->fd == -1 && smci_conn_reopen(b->client, conn, deadline, &e) == -1)
			goto out;
		/* Consecutive ids on this connection, so a reply's index is id - first. */
		if (conn->next_id > UINT32_MAX - (uint32_t)b->count)
			conn->next_id = 1;
		first_id = conn->next_id;
		conn->next_id += (uint32_t)b->count;
		for (i = 0; i < b->count; i++) {
			b->items[i].id = first_id + (uint32_t)i;
			put_u32(b->frames + b->items[i].off + ID_OFFSET, b->items[i].id);
		}
		reused = conn->requests > 0;
		conn->requests++;
		got_any = closed = 0;
		if (pump(b, conn, first_id, deadline, &pending, &got_any, &closed, &e) == 0)
			break;
		smci_conn_drop(conn);
		/* Like smc_get: a connection the agent closed before any reply
		 * (idle, or a restart) is retried on a fresh one. */
		if (!smci_retry_closed(closed && !got_any, reused, attempt, deadline))
			goto out;
	}
	rc = 0;
out:
	if (rc == -1)
		for (i = 0; i < b->count; i++)
			if (b->items[i].state == ITEM_QUEUED) {
				b->items[i].err = e;
				b->items[i].state = ITEM_DONE;
			}
	smci_conn_give_back(b->client, conn);
	if (err != NULL)
		*err = e;
	return rc;
}

int
smc_batch_take(smc_batch *b, size_t i, smc_secret **out, smc_error *err)
{
	struct batch_item *it;

	if (out != NULL)
		*out = NULL;
	if (b == NULL || out == NULL || i >= b->count) {
		smci_err_set(err, SMC_ERR_USAGE, "no such batch result");
		return -1;
	}
	it = &b->items[i];
	if (it->state == ITEM_QUEUED) {
		smci_err_set(err, SMC_ERR_USAGE, "the batch has not run");
		return -1;
	}
	if (it->state == ITEM_TAKEN) {
		smci_err_set(err, SMC_ERR_USAGE, "result %zu was already taken", i);
		return -1;
	}
	if (it->secret == NULL) {
		if (err != NULL)
			*err = it->err;
		return -1;
	}
	*out = it->secret;
	it->secret = NULL;
	it->state = ITEM_TAKEN;
	smci_err_clear(err);
	return 0;
}

void
smc_batch_free(smc_batch *b)
{
	size_t i;

	if (b == NULL)
		return;
	for (i = 0; i < b->count; i++)
		smc_secret_free(b->items[i].secret);
	free(b->items);
	free(b->frames);	/* requests only: ids and labels, no values */
	free(b);
}
