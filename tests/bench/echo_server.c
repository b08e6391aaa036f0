/*
 * echo_server: the physical limit for `make bench`. A minimal single-threaded
 * server on a Unix socket that speaks the smcache framing and answers every
 * request frame with one pre-encoded GET reply, only the request id patched
 * in. Given the agent's reply fields (ARN, name, version id, stage, created
 * date, value length) it sends byte-for-byte the same amount as the agent,
 * so what separates the two in the bench is the agent's own work.
 *
 * Same I/O shape as the agent: level-triggered epoll, non-blocking sockets,
 * one read of up to 64 KiB per readiness event, every complete frame in it
 * answered, then one write. It checks only the frame length, as the agent's
 * server does before decoding; the request itself is not decoded.
 *
 *   echo_server -s SOCKET [-a ARN] [-n NAME] [-v VERSION_ID] [-g STAGE]
 *               [-C CREATED_MS] [-l VALUE_LEN]
 * Runs until SIGTERM or SIGINT, then removes its socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "frame.h"
#include "message.h"
#include "wire.h"

#define READ_CHUNK	65536
#define MAX_OUTPUT	(4u * 1024u * 1024u)	/* stop reading a client that does not read */
#define MAX_EVENTS	64
#define BACKLOG		512
#define MAX_REQUEST	(READ_CHUNK - PROTO_FRAME_PREFIX_LEN)

struct econn {
	int fd;
	bool reading;			/* EPOLLIN registered (else only EPOLLOUT) */
	uint8_t in[READ_CHUNK];
	size_t in_len;
	uint8_t *out;
	size_t out_len, out_off, out_cap;
	LIST_ENTRY(econn) entry;
};

static LIST_HEAD(, econn) conns = LIST_HEAD_INITIALIZER(conns);

static volatile sig_atomic_t stopping;
static uint8_t *reply;
static size_t reply_len;

static void
on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
econn_close(int epfd, struct econn *c)
{
	LIST_REMOVE(c, entry);
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->out);
	free(c);
}

static int
econn_events(int epfd, struct econn *c, bool want_in, bool want_out)
{
	struct epoll_event ev = {
		.events = (want_in ? EPOLLIN : 0u) | (want_out ? EPOLLOUT : 0u),
		.data.ptr = c,
	};

	c->reading = want_in;
	return epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes what is queued. Returns -1 when the connection must close. */
static int
econn_flush(int epfd, struct econn *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* Back-pressure: stop reading until the client drains its replies. */
			return econn_events(epfd, c, c->out_len - c->out_off < MAX_OUTPUT, true);
		}
		return -1;
	}
	c->out_off = c->out_len = 0;
	if (!c->reading)
		return econn_events(epfd, c, true, false);
	return 0;
}

/* Answers every complete frame in the input buffer. Returns -1 on a bad frame. */
static int
econn_answer(struct econn *c)
{
	size_t off = 0, body_len;

	while (c->in_len - off >= PROTO_FRAME_PREFIX_LEN) {
		enum proto_frame_state st = proto_frame_check(c->in + off, c->in_len - off, MAX_REQUEST,
		    &body_len);

		if (st == PROTO_FRAME_NEED_MORE)
			break;
		if (st != PROTO_FRAME_READY)
			return -1;
		if (c->out_len + reply_len > c->out_cap) {
			size_t cap = c->out_cap ? c->out_cap * 2 : reply_len * 32;
			uint8_t *nb;

			while (cap < c->out_len + reply_len)
				cap *= 2;
			if ((nb = realloc(c->out, cap)) == NULL)
				return -1;
			c->out = nb;
			c->out_cap = cap;
		}
		memcpy(c->out + c->out_len, reply, reply_len);
		/* Request id: after the prefix, version, op and flags, in both frames. */
		memcpy(c->out + c->out_len + PROTO_FRAME_PREFIX_LEN + 4,
		    c->in + off + PROTO_FRAME_PREFIX_LEN + 4, 4);
		c->out_len += reply_len;
		off += PROTO_FRAME_PREFIX_LEN + body_len;
	}
	if (off > 0) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	return 0;
}

/* One read, every complete frame answered, one write. Returns -1 to close. */
static int
econn_readable(int epfd, struct econn *c)
{
	ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);

	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	c->in_len += (size_t)n;
	if (econn_answer(c) != 0)
		return -1;
	return econn_flush(epfd, c);
}

static void
accept_all(int epfd, int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev;
		struct econn *c;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->reading = true;
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			close(fd);
			free(c);
			continue;
		}
		LIST_INSERT_HEAD(&conns, c, entry);
	}
}

static int
listen_on(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "echo_server: socket path too long\n");
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		perror("echo_server: socket");
		return -1;
	}
	(void)unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, BACKLOG) != 0) {
		perror("echo_server: bind/listen");
		close(fd);
		return -1;
	}
	return fd;
}

static void
usage(void)
{
	fprintf(stderr, "usage: echo_server -s SOCKET [-a ARN] [-n NAME] [-v VERSION_ID] "
	    "[-g STAGE] [-C CREATED_MS] [-l VALUE_LEN]\n");
	exit(2);
}

/* The reply, field for field in the order the agent's dispatcher writes them. */
static int
build_reply(const char *arn, const char *name, const char *version_id, const char *stage,
    unsigned long long created_ms, size_t value_len)
{
	size_t cap = PROTO_FRAME_PREFIX_LEN + PROTO_FRAME_MAX_BODY;
	struct proto_writer w;
	uint8_t *value;
	int rc;

	if ((reply = malloc(cap)) == NULL || (value = malloc(value_len + 1)) == NULL)
		return -1;
	memset(value, 'x', value_len);
	proto_writer_init(&w, reply, cap);
	proto_message_begin(&w, PROTO_OP_GET | PROTO_OP_REPLY, 0, 0, PROTO_STATUS_OK);
	proto_put_cstr(&w, PROTO_TAG_ARN, arn);
	proto_put_cstr(&w, PROTO_TAG_NAME, name);
	proto_put_cstr(&w, PROTO_TAG_VERSION_ID, version_id);
	if (stage != NULL && stage[0] != '\0')
		proto_put_cstr(&w, PROTO_TAG_VERSION_STAGE, stage);
	if (created_ms > 0)
		proto_put_u64(&w, PROTO_TAG_CREATED_DATE, created_ms);
	proto_put_bytes(&w, PROTO_TAG_SECRET_STRING, value, value_len);
	rc = proto_message_end(&w, &reply_len);
	free(value);
	return rc;
}

int
main(int argc, char **argv)
{
	const char *path = NULL, *stage = "AWSCURRENT";
	const char *arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench/1k-AbCdEf";
	const char *name = "bench/1k", *version_id = "00000000-0000-4000-8000-000000000001";
	unsigned long long created_ms = 1700000000000ull;
	unsigned long value_len = 1024;
	struct epoll_event events[MAX_EVENTS];
	struct sigaction sa;
	int ch, lfd = -1, epfd = -1, n, rc = 1;
	char *end;

	while ((ch = getopt(argc, argv, "s:a:n:v:g:C:l:")) != -1) {
		switch (ch) {
		case 's': path = optarg; break;
		case 'a': arn = optarg; break;
		case 'n': name = optarg; break;
		case 'v': version_id = optarg; break;
		case 'g': stage = optarg; break;
		case 'C':
			created_ms = strtoull(optarg, &end, 10);
			if (*end != '\0')
				usage();
			break;
		case 'l':
			value_len = strtoul(optarg, &end, 10);
			if (*end != '\0' || value_len > PROTO_MAX_VALUE)
				usage();
			break;
		default: usage();
		}
	}
	if (path == NULL || optind != argc)
		usage();
	if (build_reply(arn, name, version_id, stage, created_ms, value_len) != 0) {
		fprintf(stderr, "echo_server: cannot encode the reply\n");
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: epoll_wait returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((lfd = listen_on(path)) < 0)
		goto out;
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		perror("echo_server: epoll_create1");
		goto out;
	}
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

		if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) != 0) {
			perror("echo_server: epoll_ctl");
			goto out;
		}
	}
	while (!stopping) {
		n = epoll_wait(epfd, events, MAX_EVENTS, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("echo_server: epoll_wait");
			goto out;
		}
		for (int i = 0; i < n; i++) {
			struct econn *c = events[i].data.ptr;

			if (c == NULL) {
				accept_all(epfd, lfd);
				continue;
			}
			if (events[i].events & EPOLLOUT) {
				if (econn_flush(epfd, c) != 0) {
					econn_close(epfd, c);
					continue;
				}
			}
			if ((events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
			    econn_readable(epfd, c) != 0)
				econn_close(epfd, c);
		}
	}
	rc = 0;
out:
	while (!LIST_EMPTY(&conns))
		econn_close(epfd, LIST_FIRST(&conns));
	if (epfd >= 0)
		close(epfd);
	if (lfd >= 0) {
		close(lfd);
		(void)unlink(path);
	}
	free(reply);
	return rc;
}
