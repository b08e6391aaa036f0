/*
 * server: connections on the agent's Unix socket (see server.h).
 *
 * Each connection uses plain events rather than bufferevents: replies are
 * written straight from the read callback, which saves a loop pass and two
 * epoll_ctl calls per request. The hot path avoids evbuffers altogether:
 *   - input is recv(2)'d into one server-wide buffer and whole frames are
 *     handled where they landed; only a partial frame (or frames held back
 *     by the bounds) is kept in the connection's input evbuffer;
 *   - replies sent by reference are gathered in one server-wide batch while
 *     a connection's input is handled, and written with one sendmsg(2).
 * The evbuffers (and evbuffer_write) take over whenever the socket cannot
 * take everything at once.
 */
#define LOG_COMPONENT "server"

#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <sodium.h>

#include "frame.h"
#include "log.h"
#include "message.h"
#include "peer_limits.h"
#include "server.h"

#define READ_CHUNK		65536	/* bytes received at once, into the server's buffer */
#define BATCH_IOV		64	/* iovecs in one sendmsg(2): a head and a body per reply */
#define BATCH_HEAD_MAX		32	/* longest head copied into the batch */
#define ACCEPTS_PER_CALLBACK	64
#define PEER_GROUPS_INLINE	32	/* supplementary groups read without a second call */
/* A client held at an output bound that reads nothing for this long is disconnected. */
#define OUTPUT_STALL_S		10
/* Freed reply bytes after which the heap's free pages go back to the system: replies of
 * clients that left must not stay resident (and locked, under mlockall) for good. */
#define TRIM_AFTER_BYTES	(8u << 20)
#define TRIM_DELAY_MS		200

struct conn {
	struct server *server;
	int fd;
	uint64_t id;
	struct ucred peer;
	gid_t *groups;			/* supplementary groups (SO_PEERGROUPS), malloc'ed */
	size_t ngroups;
	struct peer_entry *limit;	/* held from accept to close; NULL: no per-uid limits */
	struct event *read_ev;
	struct event *write_ev;
	struct event *idle_ev;
	struct evbuffer *in;
	struct evbuffer *out;
	struct timeval last_activity;
	unsigned in_flight;		/* attached waiters */
	size_t counted;			/* output bytes counted to its uid and the server */
	struct timeval last_write;	/* the client last took bytes (or output began) */
	bool output_held;		/* reading stopped at an output bound */
	bool reading;			/* read_ev is added */
	bool read_eof;			/* peer finished sending */
	bool close_after_flush;		/* a framing error: answer, then close */
	bool processing;		/* inside conn_process_input */
	TAILQ_HEAD(, conn_waiter) waiters;
	TAILQ_ENTRY(conn) entry;
};

/*
 * Replies sent by reference (conn_send_shared), gathered while one
 * connection's input is handled and written with one sendmsg(2) when it is
 * done. Anything that must follow them in order, and whatever sendmsg did not
 * take, moves to the connection's output evbuffer (batch_spill). While the
 * batch holds a connection's replies, that connection's evbuffer is empty.
 */
struct out_batch {
	struct conn *conn;		/* whose replies these are; NULL: empty */
	int n;
	size_t bytes;
	struct iovec iov[BATCH_IOV];
	conn_release_fn release[BATCH_IOV];	/* NULL: a head, copied into heads[i] */
	void *arg[BATCH_IOV];
	uint8_t heads[BATCH_IOV][BATCH_HEAD_MAX];
};

struct server {
	struct event_base *base;
	uint8_t *rbuf;			/* READ_CHUNK bytes: where every read lands */
	struct out_batch batch;
	int listen_fd;
	struct event *listen_ev;
	struct event *accept_pause_ev;
	struct server_limits limits;
	server_request_fn on_request;
	struct agent *agent;
	uint64_t next_conn_id;
	struct peer_limits *peer_limits;
	struct server_stats stats;	/* stats.output_queued: the agent-wide output count */
	size_t freed_since_trim;	/* output bytes released since the last malloc_trim */
	struct event *trim_ev;
	TAILQ_HEAD(, conn) conns;
};

static void conn_close(struct conn *c, const char *why);
static void conn_after_io(struct conn *c);

uid_t
conn_peer_uid(const struct conn *c)
{
	return c->peer.uid;
}

gid_t
conn_peer_gid(const struct conn *c)
{
	return c->peer.gid;
}

pid_t
conn_peer_pid(const struct conn *c)
{
	return c->peer.pid;
}

const gid_t *
conn_peer_groups(const struct conn *c, size_t *count)
{
	*count = c->ngroups;
	return c->groups;
}

struct peer_entry *
conn_peer_entry(const struct conn *c)
{
	return c->limit;
}

void
server_set_peer_limits(struct server *s, struct peer_limits *limits)
{
	s->peer_limits = limits;
}

const struct server_stats *
server_get_stats(const struct server *s)
{
	return &s->stats;
}

static void
conn_touch(struct conn *c)
{
	event_base_gettimeofday_cached(c->server->base, &c->last_activity);
}

static void
conn_set_reading(struct conn *c, bool on)
{
	if (on == c->reading)
		return;
	if (on)
		event_add(c->read_ev, NULL);
	else
		event_del(c->read_ev);
	c->reading = on;
}

/* ---- the reply batch ----------------------------------------------------------------- */

/* Bytes queued for c, in the batch and in its evbuffer. */
static size_t
conn_out_len(const struct conn *c)
{
	const struct out_batch *b = &c->server->batch;

	if (b->conn == c)
		return b->bytes;	/* its evbuffer is empty meanwhile */
	return evbuffer_get_length(c->out);
}

static void
batch_clear(struct out_batch *b)
{
	b->conn = NULL;
	b->n = 0;
	b->bytes = 0;
}

/* Releases the bodies of entries [from, n) unsent and empties the batch. */
static void
batch_drop(struct out_batch *b, int from)
{
	for (int i = from; i < b->n; i++) {
		if (b->release[i] != NULL)
			b->release[i](b->iov[i].iov_base, b->iov[i].iov_len, b->arg[i]);
	}
	batch_clear(b);
}

/*
 * Moves entries [from, n) to their connection's evbuffer, in order, and
 * empties the batch. Out of memory midway breaks the stream: what could
 * not be queued is released and the connection closes once the rest is out.
 */
static void
batch_spill(struct out_batch *b, int from)
{
	struct conn *c = b->conn;
	int i;

	for (i = from; i < b->n; i++) {
		const struct iovec *v = &b->iov[i];
		int r = b->release[i] == NULL ? evbuffer_add(c->out, v->iov_base, v->iov_len) :
		    evbuffer_add_reference(c->out, v->iov_base, v->iov_len, b->release[i], b->arg[i]);

		if (r != 0)
			break;
	}
	if (i < b->n) {
		log_error("conn %llu: out of memory queuing replies; closing",
		    (unsigned long long)c->id);
		c->close_after_flush = true;
		conn_set_reading(c, false);
		batch_drop(b, i);
		return;
	}
	batch_clear(b);
}

/*
 * Writes the batch of c (whose evbuffer is empty) with one sendmsg. Returns 1
 * when all of it went out, 0 when the socket is full (the rest is spilled to
 * the evbuffer), -1 on an error (errno set; the batch is dropped).
 */
static int
batch_write(struct conn *c)
{
	struct out_batch *b = &c->server->batch;
	struct msghdr msg = { .msg_iov = b->iov, .msg_iovlen = (size_t)b->n };
	ssize_t n;
	size_t left;
	int i;

	/* sendmsg rather than writev: a socket call skips the file layer's
	 * position lock and checks, measurably cheaper per call. */
	do
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			batch_spill(b, 0);
			return 0;
		}
		batch_drop(b, 0);
		return -1;
	}
	conn_touch(c);
	left = (size_t)n;
	for (i = 0; i < b->n && left >= b->iov[i].iov_len; i++) {
		left -= b->iov[i].iov_len;
		if (b->release[i] != NULL)
			b->release[i](b->iov[i].iov_base, b->iov[i].iov_len, b->arg[i]);
	}
	if (i == b->n) {
		batch_clear(b);
		return 1;
	}
	/* Partly written: the rest of entry i, and those after it, wait in the evbuffer. */
	if (b->release[i] == NULL) {
		memmove(b->heads[i], b->heads[i] + left, b->iov[i].iov_len - left);
		b->iov[i].iov_base = b->heads[i];
	} else {
		b->iov[i].iov_base = (uint8_t *)b->iov[i].iov_base + left;
	}
	b->iov[i].iov_len -= left;
	batch_spill(b, i);
	return 0;
}

/* ---- output accounting (per connection, per uid, in all) --------------------------- */

static void
trim_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;

	(void)fd;
	(void)what;
	s->freed_since_trim = 0;
	malloc_trim(0);
}

/*
 * Brings the uid's and the server's output counts up to date with what c
 * holds now. A reply body shared by several connections counts once for
 * each: what would be freed if they all left. Big releases schedule a
 * malloc_trim, so memory of replies that were dropped or written goes back.
 */
static void
conn_account(struct conn *c)
{
	struct server *s = c->server;
	size_t now = c->out != NULL ? conn_out_len(c) : 0;	/* NULL: closing */

	if (now > c->counted) {
		if (c->counted == 0)
			event_base_gettimeofday_cached(s->base, &c->last_write);
		peer_limits_output_add(c->limit, now - c->counted);
		s->stats.output_queued += now - c->counted;
	} else if (now < c->counted) {
		peer_limits_output_sub(c->limit, c->counted - now);
		s->stats.output_queued -= c->counted - now;
		s->freed_since_trim += c->counted - now;
		if (s->freed_since_trim >= TRIM_AFTER_BYTES && s->trim_ev != NULL &&
		    !event_pending(s->trim_ev, EV_TIMEOUT, NULL)) {
			const struct timeval delay = { 0, TRIM_DELAY_MS * 1000 };

			event_add(s->trim_ev, &delay);
		}
	}
	c->counted = now;
}

/*
 * May c take another request, as far as output goes? Not at max_output;
 * and not when its uid's or everyone's output is at its bound, unless c has
 * nothing queued (so a client that reads keeps being served, one reply at
 * a time, whatever its uid's other connections do). resume: the lower
 * marks at which a held connection is read again.
 */
static bool
conn_output_ok(struct conn *c, bool resume)
{
	const struct server_limits *lim = &c->server->limits;
	size_t out, mine, uid, all;

	conn_account(c);
	out = conn_out_len(c);
	mine = resume ? lim->max_output / 2 + 1 : lim->max_output;
	uid = resume ? lim->max_output_per_uid / 2 + 1 : lim->max_output_per_uid;
	all = resume ? lim->max_output_total / 2 + 1 : lim->max_output_total;
	if (out == 0)
		return true;
	return out < mine && (c->limit == NULL || peer_limits_output(c->limit) < uid) &&
	    c->server->stats.output_queued < all;
}

/* Anything about to be queued for c must come after its batched replies. */
static void
conn_unbatch(struct conn *c)
{
	if (c->server->batch.conn == c)
		batch_spill(&c->server->batch, 0);
}

/* ---- output ---------------------------------------------------------------------------- */

/* Writes what is queued; returns -1 when the connection was closed. */
static int
conn_flush(struct conn *c)
{
	size_t before = conn_out_len(c);
	int n;

	if (c->server->batch.conn == c) {
		n = batch_write(c);
		if (n < 0) {
			conn_close(c, strerror(errno));
			return -1;
		}
		if (n == 0) {
			event_add(c->write_ev, NULL);
			goto out;
		}
	}
	while (evbuffer_get_length(c->out) > 0) {
		n = evbuffer_write(c->out, c->fd);
		if (n > 0) {
			conn_touch(c);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			event_add(c->write_ev, NULL);
			goto out;
		}
		if (n < 0 && errno == EINTR)
			continue;
		conn_close(c, n < 0 ? strerror(errno) : "write returned 0");
		return -1;
	}
	event_del(c->write_ev);
out:
	if (conn_out_len(c) < before)
		event_base_gettimeofday_cached(c->server->base, &c->last_write);
	conn_account(c);
	return 0;
}

void
conn_send(struct conn *c, const void *frame, size_t len)
{
	conn_unbatch(c);
	if (evbuffer_add(c->out, frame, len) != 0)
		log_error("conn %llu: out of memory queuing a reply", (unsigned long long)c->id);
}

static void
wipe_and_free(const void *data, size_t len, void *arg)
{
	(void)arg;
	sodium_memzero((void *)(uintptr_t)data, len);
	free((void *)(uintptr_t)data);
}

void
conn_send_owned_secret(struct conn *c, uint8_t *frame, size_t len)
{
	conn_unbatch(c);
	if (evbuffer_add_reference(c->out, frame, len, wipe_and_free, NULL) != 0) {
		log_error("conn %llu: out of memory queuing a reply", (unsigned long long)c->id);
		wipe_and_free(frame, len, NULL);
	}
}

void
conn_send_shared(struct conn *c, const void *head, size_t head_len, const void *body,
    size_t body_len, conn_release_fn release, void *arg)
{
	struct out_batch *b = &c->server->batch;

	if (b->conn != c && b->conn != NULL) {
		/* Another connection's replies (not expected: batches are written
		 * before the loop moves on); they leave through its evbuffer. */
		struct conn *other = b->conn;

		batch_spill(b, 0);
		event_add(other->write_ev, NULL);
	}
	if (b->conn == c && b->n + 2 > BATCH_IOV && batch_write(c) < 0) {
		/* Full, and written early: the connection is broken. */
		release(body, body_len, arg);
		c->close_after_flush = true;
		conn_set_reading(c, false);
		return;
	}
	if (head_len <= BATCH_HEAD_MAX && (b->conn == c || evbuffer_get_length(c->out) == 0)) {
		b->conn = c;
		memcpy(b->heads[b->n], head, head_len);
		b->iov[b->n].iov_base = b->heads[b->n];
		b->iov[b->n].iov_len = head_len;
		b->release[b->n++] = NULL;
		b->iov[b->n].iov_base = (void *)(uintptr_t)body;
		b->iov[b->n].iov_len = body_len;
		b->release[b->n] = release;
		b->arg[b->n++] = arg;
		b->bytes += head_len + body_len;
		return;
	}
	if (evbuffer_add(c->out, head, head_len) != 0) {
		log_error("conn %llu: out of memory queuing a reply", (unsigned long long)c->id);
		release(body, body_len, arg);
		return;
	}
	if (evbuffer_add_reference(c->out, body, body_len, release, arg) != 0) {
		/* Half a frame is queued: the stream cannot go on. */
		log_error("conn %llu: out of memory queuing a reply; closing",
		    (unsigned long long)c->id);
		release(body, body_len, arg);
		c->close_after_flush = true;
		conn_set_reading(c, false);
	}
}

void
conn_send_error(struct conn *c, uint8_t op, uint32_t request_id, int status, const char *fmt, ...)
{
	uint8_t frame[PROTO_FRAME_PREFIX_LEN + PROTO_HEADER_LEN + PROTO_FIELD_HEADER_LEN + PROTO_MAX_MESSAGE];
	char message[PROTO_MAX_MESSAGE + 1];
	struct proto_writer w;
	size_t len;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	proto_writer_init(&w, frame, sizeof(frame));
	if (proto_encode_error(&w, op, request_id, (enum proto_status)status, message) != 0 ||
	    proto_message_end(&w, &len) != 0) {
		log_error("conn %llu: cannot encode an error reply", (unsigned long long)c->id);
		return;
	}
	conn_send(c, frame, len);
}

/* ---- input ----------------------------------------------------------------------------- */

/* Stops reading c at an output bound; the idle timer checks within OUTPUT_STALL_S. */
static void
conn_output_hold(struct conn *c)
{
	const struct timeval stall = { OUTPUT_STALL_S, 0 };

	conn_set_reading(c, false);
	if (!c->output_held) {
		c->output_held = true;
		event_add(c->idle_ev, &stall);
	}
}

/*
 * Handles the complete frames in data[0..avail), within the output and
 * in-flight bounds; returns how many bytes it consumed (all of them once the
 * framing is lost). Request strings point into data: it must stay put
 * during the call.
 */
static size_t
conn_handle_frames(struct conn *c, const uint8_t *data, size_t avail)
{
	const struct server_limits *lim = &c->server->limits;
	struct proto_decode_error derr;
	struct proto_request req;
	size_t used = 0, body_len;
	bool touched = false;

	c->processing = true;
	while (!c->close_after_flush) {
		if (!conn_output_ok(c, false)) {
			/* Back-pressure: resume once the client reads; disconnect it if it
			 * reads nothing for OUTPUT_STALL_S (the idle timer looks). */
			conn_output_hold(c);
			break;
		}
		if (c->in_flight >= lim->max_in_flight) {
			/* Resume once the backend answers. */
			conn_set_reading(c, false);
			break;
		}
		if (avail - used < PROTO_FRAME_PREFIX_LEN)
			break;
		switch (proto_frame_check(data + used, avail - used, PROTO_FRAME_MAX_BODY, &body_len)) {
		case PROTO_FRAME_NEED_MORE:
			goto out;
		case PROTO_FRAME_TOO_LARGE:
			c->server->stats.frames_rejected++;
			conn_send_error(c, 0, 0, PROTO_STATUS_TOO_LARGE,
			    "frame of %zu bytes exceeds the limit of %u bytes", body_len,
			    (unsigned)PROTO_FRAME_MAX_BODY);
			goto framing_lost;
		case PROTO_FRAME_TOO_SMALL:
			c->server->stats.frames_rejected++;
			conn_send_error(c, 0, 0, PROTO_STATUS_BAD_REQUEST,
			    "frame of %zu bytes is shorter than a message header (%d bytes)",
			    body_len, PROTO_HEADER_LEN);
			goto framing_lost;
		case PROTO_FRAME_READY:
			break;
		}
		c->server->stats.requests++;
		if (!touched) {
			conn_touch(c);	/* a request is progress; bytes of one are not */
			touched = true;
		}
		if (proto_request_decode(data + used + PROTO_FRAME_PREFIX_LEN, body_len, &req,
		    &derr) != 0) {
			c->server->stats.requests_bad++;
			conn_send_error(c, req.header.op, req.header.request_id, derr.status, "%s",
			    derr.message);
		} else {
			c->server->on_request(c->server->agent, c, &req);
		}
		used += PROTO_FRAME_PREFIX_LEN + body_len;
	}
	goto out;
framing_lost:
	/* Past a bad length prefix nothing in the stream can be trusted. */
	c->close_after_flush = true;
	conn_set_reading(c, false);
	used = avail;
out:
	c->processing = false;
	return used;
}

/* Handles the frames waiting in the input evbuffer; -1 when the connection was closed. */
static int
conn_process_input(struct conn *c)
{
	size_t avail = evbuffer_get_length(c->in);
	const uint8_t *data = NULL;

	/* Frames there may straddle chains: one contiguous run (bounded by a
	 * frame plus a read, since reading stops while frames wait). */
	if (avail > 0 && (data = evbuffer_pullup(c->in, -1)) == NULL) {
		conn_close(c, "out of memory");
		return -1;
	}
	evbuffer_drain(c->in, conn_handle_frames(c, data, avail));
	return 0;
}

/* After any I/O or completed request: write, resume reading, or close. */
static void
conn_after_io(struct conn *c)
{
	const struct server_limits *lim = &c->server->limits;

	if (conn_flush(c) != 0)
		return;
	if (conn_out_len(c) == 0 && c->close_after_flush) {
		conn_close(c, "protocol error");
		return;
	}
	if (c->read_eof && c->in_flight == 0 && conn_out_len(c) == 0) {
		conn_close(c, NULL);
		return;
	}
	if (!c->reading && !c->read_eof && !c->close_after_flush && !c->processing &&
	    conn_output_ok(c, true) && c->in_flight < lim->max_in_flight) {
		c->output_held = false;
		conn_set_reading(c, true);
		/* Frames may already be buffered: handle them now, not on the next byte. */
		if (conn_process_input(c) != 0)
			return;
		conn_after_io(c);
	}
}

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint8_t *buf = c->server->rbuf;
	ssize_t n;
	size_t used;

	(void)what;
	n = recv(fd, buf, READ_CHUNK, 0);	/* as sendmsg: no file layer */
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		conn_close(c, strerror(errno));
		return;
	}
	if (n == 0) {
		c->read_eof = true;
		conn_set_reading(c, false);
	}
	if (n > 0 && evbuffer_get_length(c->in) == 0) {
		/* The common case: whole frames, handled where they landed; only
		 * what is left (a partial frame, frames held back) is kept. */
		used = conn_handle_frames(c, buf, (size_t)n);
		if (used < (size_t)n && evbuffer_add(c->in, buf + used, (size_t)n - used) != 0) {
			conn_close(c, "out of memory");
			return;
		}
	} else {
		if (n > 0 && evbuffer_add(c->in, buf, (size_t)n) != 0) {
			conn_close(c, "out of memory");
			return;
		}
		if (conn_process_input(c) != 0)
			return;
	}
	conn_after_io(c);
}

static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_after_io(arg);
}

static void
conn_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct timeval now, idle, left;

	(void)fd;
	(void)what;
	event_base_gettimeofday_cached(c->server->base, &now);
	if (c->output_held && conn_out_len(c) > 0) {
		/* Held at an output bound: has the client taken anything lately? */
		const struct timeval stall = { OUTPUT_STALL_S, 0 };

		evutil_timersub(&now, &c->last_write, &left);
		if (!evutil_timercmp(&left, &stall, <)) {
			c->server->stats.connections_output_closed++;
			log_info("conn %llu (uid %ld pid %ld): disconnected: %zu bytes of replies"
			    " unread for %d s", (unsigned long long)c->id, (long)c->peer.uid,
			    (long)c->peer.pid, conn_out_len(c), OUTPUT_STALL_S);
			conn_close(c, NULL);
			return;
		}
		evutil_timersub(&stall, &left, &left);
		event_add(c->idle_ev, &left);
		return;
	}
	idle.tv_sec = c->server->limits.idle_timeout_s;
	idle.tv_usec = 0;
	evutil_timersub(&now, &c->last_activity, &left);
	if (c->in_flight == 0 && !evutil_timercmp(&left, &idle, <)) {
		c->server->stats.connections_idle_closed++;
		conn_close(c, "idle timeout");
		return;
	}
	/* Re-arm for what remains; a request in flight keeps the connection. */
	if (evutil_timercmp(&left, &idle, <))
		evutil_timersub(&idle, &left, &left);
	else
		left = idle;
	event_add(c->idle_ev, &left);
}

static void
conn_close(struct conn *c, const char *why)
{
	struct server *s = c->server;
	struct conn_waiter *w;

	if (why != NULL)
		log_debug("conn %llu (uid %ld pid %ld) closed: %s", (unsigned long long)c->id,
		    (long)c->peer.uid, (long)c->peer.pid, why);
	while ((w = TAILQ_FIRST(&c->waiters)) != NULL) {
		TAILQ_REMOVE(&c->waiters, w, entry);
		w->conn = NULL;
	}
	if (s->batch.conn == c)
		batch_drop(&s->batch, 0);
	evbuffer_free(c->out);	/* runs the wipe callbacks of unsent secret replies */
	c->out = NULL;
	conn_account(c);	/* nothing is queued any more */
	TAILQ_REMOVE(&s->conns, c, entry);
	s->stats.connections_active--;
	peer_limits_conn_close(s->peer_limits, c->limit);
	free(c->groups);
	event_free(c->read_ev);
	event_free(c->write_ev);
	event_free(c->idle_ev);
	evbuffer_free(c->in);
	close(c->fd);
	free(c);
}

void
conn_waiter_attach(struct conn *c, struct conn_waiter *w)
{
	w->conn = c;
	TAILQ_INSERT_TAIL(&c->waiters, w, entry);
	c->in_flight++;
}

void
conn_waiter_finish(struct conn_waiter *w)
{
	struct conn *c = w->conn;

	if (c == NULL)
		return;
	TAILQ_REMOVE(&c->waiters, w, entry);
	w->conn = NULL;
	c->in_flight--;
	if (!c->processing)
		conn_after_io(c);
}

/* Over a cap: say so in one frame the client can read, then close. */
static void
reject_connection(struct server *s, int fd, const char *why)
{
	uint8_t frame[256];
	struct proto_writer w;
	size_t len;

	s->stats.connections_rejected++;
	proto_writer_init(&w, frame, sizeof(frame));
	if (proto_encode_error(&w, 0, 0, PROTO_STATUS_LIMIT_EXCEEDED, why) == 0 &&
	    proto_message_end(&w, &len) == 0)
		(void)send(fd, frame, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

static void
accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;

	(void)fd;
	(void)what;
	event_add(s->listen_ev, NULL);
}

/*
 * The peer's supplementary groups, for group rules (Linux >= 4.13). Where the
 * kernel cannot say, the connection has none and only its gid counts.
 */
static int
read_peer_groups(struct conn *c)
{
	gid_t inline_groups[PEER_GROUPS_INLINE];
	socklen_t len = sizeof(inline_groups);
	gid_t *buf = inline_groups;
	int rc;

	rc = getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, buf, &len);
	if (rc != 0 && errno == ERANGE) {
		/* len now says how much is needed. */
		if ((buf = malloc(len > 0 ? len : 1)) == NULL)
			return -1;
		rc = getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, buf, &len);
	}
	if (rc != 0) {
		if (errno != ENOPROTOOPT)
			log_debug("conn %llu: SO_PEERGROUPS failed: %s", (unsigned long long)c->id,
			    strerror(errno));
		if (buf != inline_groups)
			free(buf);
		return 0;
	}
	if (len / sizeof(gid_t) == 0) {
		if (buf != inline_groups)
			free(buf);
		return 0;
	}
	if (buf == inline_groups) {
		if ((buf = malloc(len)) == NULL)
			return -1;
		memcpy(buf, inline_groups, len);
	}
	c->groups = buf;
	c->ngroups = len / sizeof(gid_t);
	return 0;
}

static void
accept_one(struct server *s, int fd)
{
	struct conn *c;
	struct timeval idle = { (time_t)s->limits.idle_timeout_s, 0 };
	socklen_t len = sizeof(c->peer);

	if (s->stats.connections_active >= s->limits.max_connections) {
		reject_connection(s, fd, "too many connections to the agent; try again later");
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto fail;
	c->server = s;
	c->fd = fd;
	c->id = ++s->next_conn_id;
	TAILQ_INIT(&c->waiters);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->peer, &len) != 0) {
		log_warn("accept: SO_PEERCRED failed: %s", strerror(errno));
		goto fail;
	}
	if (read_peer_groups(c) != 0)
		goto fail;
	if (s->peer_limits != NULL &&
	    (c->limit = peer_limits_conn_open(s->peer_limits, c->peer.uid)) == NULL) {
		if (errno != EUSERS)
			goto fail;
		if (peer_limits_should_warn(s->peer_limits, c->peer.uid))
			log_warn("uid %ld (pid %ld) is at connections_per_uid; refusing its new"
			    " connections with LIMIT_EXCEEDED", (long)c->peer.uid, (long)c->peer.pid);
		free(c->groups);
		free(c);
		reject_connection(s, fd, "too many connections from your user; try again later");
		return;
	}
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	c->read_ev = event_new(s->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	c->write_ev = event_new(s->base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
	c->idle_ev = evtimer_new(s->base, conn_idle_cb, c);
	if (c->in == NULL || c->out == NULL || c->read_ev == NULL || c->write_ev == NULL ||
	    c->idle_ev == NULL)
		goto fail;
	conn_touch(c);
	conn_set_reading(c, true);
	event_add(c->idle_ev, &idle);
	TAILQ_INSERT_TAIL(&s->conns, c, entry);
	s->stats.connections_accepted++;
	s->stats.connections_active++;
	log_debug("conn %llu: accepted uid %ld gid %ld pid %ld", (unsigned long long)c->id,
	    (long)c->peer.uid, (long)c->peer.gid, (long)c->peer.pid);
	return;
fail:
	if (c != NULL) {
		peer_limits_conn_close(s->peer_limits, c->limit);
		free(c->groups);
		if (c->read_ev)
			event_free(c->read_ev);
		if (c->write_ev)
			event_free(c->write_ev);
		if (c->idle_ev)
			event_free(c->idle_ev);
		if (c->in)
			evbuffer_free(c->in);
		if (c->out)
			evbuffer_free(c->out);
		free(c);
	}
	close(fd);
}

static void
listen_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct server *s = arg;
	struct timeval pause = { 0, 100000 };
	int fd;

	(void)what;
	for (int i = 0; i < ACCEPTS_PER_CALLBACK; i++) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			accept_one(s, fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* Out of descriptors: stop accepting briefly instead of spinning. */
			log_warn("accept: %s; pausing accepts for 100 ms", strerror(errno));
			event_del(s->listen_ev);
			event_add(s->accept_pause_ev, &pause);
		} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
			log_warn("accept: %s", strerror(errno));
		}
		return;
	}
}

struct server *
server_new(struct event_base *base, int listen_fd, const struct server_limits *limits,
    server_request_fn on_request, struct agent *agent)
{
	struct server *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->base = base;
	s->listen_fd = listen_fd;
	s->limits = *limits;
	if (s->limits.max_in_flight == 0)
		s->limits.max_in_flight = 1;
	if (s->limits.max_output_per_uid == 0)
		s->limits.max_output_per_uid = SIZE_MAX;
	if (s->limits.max_output_total == 0)
		s->limits.max_output_total = SIZE_MAX;
	s->on_request = on_request;
	s->agent = agent;
	TAILQ_INIT(&s->conns);
	if ((s->rbuf = malloc(READ_CHUNK)) == NULL) {
		free(s);
		return NULL;
	}
	s->listen_ev = event_new(base, listen_fd, EV_READ | EV_PERSIST, listen_cb, s);
	s->accept_pause_ev = evtimer_new(base, accept_resume_cb, s);
	s->trim_ev = evtimer_new(base, trim_cb, s);
	if (s->listen_ev == NULL || s->accept_pause_ev == NULL || s->trim_ev == NULL || event_add(s->listen_ev, NULL) != 0) {
		server_free(s);
		return NULL;
	}
	return s;
}

void
server_free(struct server *s)
{
	struct conn *c;

	if (s == NULL)
		return;
	if (s->listen_ev != NULL)
		event_free(s->listen_ev);
	s->listen_ev = NULL;
	while ((c = TAILQ_FIRST(&s->conns)) != NULL)
		conn_close(c, "agent shutting down");
	if (s->accept_pause_ev != NULL)
		event_free(s->accept_pause_ev);
	if (s->trim_ev != NULL)
		event_free(s->trim_ev);
	free(s->rbuf);
	free(s);
}
