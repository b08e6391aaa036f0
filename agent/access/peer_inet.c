/*
 * peer_inet: the uid owning the client end of a local TCP connection, by
 * one exact sock_diag lookup (see peer_inet.h). Without NLM_F_DUMP the
 * kernel looks up exactly one socket by its 4-tuple (inet_diag_find_one),
 * so the cost does not grow with the host's number of sockets; the lookup
 * is made once per connection.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include "peer_inet.h"

/* include/net/tcp_states.h (not a uapi header). */
#define TCP_STATE_TIME_WAIT	6
#define TCP_STATE_NEW_SYN_RECV	12

/* Fills the id of the socket whose own end is peer and whose far end is local. */
static int
fill_id(struct inet_diag_sockid *id, const struct sockaddr *local, const struct sockaddr *peer)
{
	memset(id, 0, sizeof(*id));
	id->idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	id->idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	if (local->sa_family == AF_INET && peer->sa_family == AF_INET) {
		const struct sockaddr_in *l = (const struct sockaddr_in *)local;
		const struct sockaddr_in *p = (const struct sockaddr_in *)peer;

		id->idiag_sport = p->sin_port;
		id->idiag_dport = l->sin_port;
		memcpy(id->idiag_src, &p->sin_addr, 4);
		memcpy(id->idiag_dst, &l->sin_addr, 4);
		return AF_INET;
	}
	if (local->sa_family == AF_INET6 && peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *l = (const struct sockaddr_in6 *)local;
		const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)peer;

		id->idiag_sport = p->sin6_port;
		id->idiag_dport = l->sin6_port;
		memcpy(id->idiag_src, &p->sin6_addr, 16);
		memcpy(id->idiag_dst, &l->sin6_addr, 16);
		return AF_INET6;
	}
	return -1;
}

int
peer_inet_uid(const struct sockaddr *local, const struct sockaddr *peer, uid_t *uid,
    char *err, size_t errlen)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} q;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	const struct timeval tv = { .tv_sec = 1 };
	union {
		struct nlmsghdr nlh;
		char bytes[8192];
	} buf;
	const struct nlmsghdr *h;
	ssize_t n;
	int fd = -1, family, rc = -1;

	memset(&q, 0, sizeof(q));
	if ((family = fill_id(&q.req.id, local, peer)) < 0) {
		snprintf(err, errlen, "not a TCP/IP connection");
		goto out;
	}
	q.nlh.nlmsg_len = sizeof(q);
	q.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	q.nlh.nlmsg_flags = NLM_F_REQUEST;
	q.nlh.nlmsg_seq = 1;
	q.req.sdiag_family = (uint8_t)family;
	q.req.sdiag_protocol = IPPROTO_TCP;
	q.req.idiag_states = ~0U;
	if ((fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_INET_DIAG)) < 0) {
		snprintf(err, errlen, "sock_diag socket: %s", strerror(errno));
		goto out;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (sendto(fd, &q, sizeof(q), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		snprintf(err, errlen, "sock_diag request: %s", strerror(errno));
		goto out;
	}
	if ((n = recv(fd, &buf, sizeof(buf), 0)) < 0) {
		snprintf(err, errlen, "sock_diag answer: %s", strerror(errno));
		goto out;
	}
	for (h = &buf.nlh; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
		if (h->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = NLMSG_DATA(h);

			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e))) {
				snprintf(err, errlen, "sock_diag: truncated error");
				goto out;
			}
			snprintf(err, errlen, "sock_diag: %s", e->error == -ENOENT ?
			    "the client's socket is not on this host" : strerror(-e->error));
			goto out;
		}
		if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
			const struct inet_diag_msg *m = NLMSG_DATA(h);

			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*m))) {
				snprintf(err, errlen, "sock_diag: truncated answer");
				goto out;
			}
			/* The exact lookup names our peer's socket; check it is that one. */
			if (m->id.idiag_sport != q.req.id.idiag_sport ||
			    m->id.idiag_dport != q.req.id.idiag_dport ||
			    memcmp(m->id.idiag_src, q.req.id.idiag_src, sizeof(m->id.idiag_src)) != 0) {
				snprintf(err, errlen, "sock_diag: answer names another socket");
				goto out;
			}
			/* A socket its owner closed has no inode; once the FIN is ACKed
			 * it becomes a TIME_WAIT mini socket, which sock_diag reports
			 * with uid 0 (and the FIN_WAIT2 it came from as its state).
			 * Such a caller is unknown, never root. */
			if (m->idiag_inode == 0 || m->idiag_state == TCP_STATE_TIME_WAIT ||
			    m->idiag_state == TCP_STATE_NEW_SYN_RECV) {
				snprintf(err, errlen, "the client closed its socket (the kernel"
				    " keeps no owner for a closed socket)");
				goto out;
			}
			*uid = (uid_t)m->idiag_uid;
			rc = 0;
			goto out;
		}
	}
	snprintf(err, errlen, "sock_diag: no answer");
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

int
peer_inet_uid_fd(int fd, uid_t *uid, char *err, size_t errlen)
{
	struct sockaddr_storage local, peer;
	socklen_t llen = sizeof(local), plen = sizeof(peer);

	if (getsockname(fd, (struct sockaddr *)&local, &llen) != 0 ||
	    getpeername(fd, (struct sockaddr *)&peer, &plen) != 0) {
		snprintf(err, errlen, "cannot read the connection's addresses: %s", strerror(errno));
		return -1;
	}
	return peer_inet_uid((struct sockaddr *)&local, (struct sockaddr *)&peer, uid, err, errlen);
}
