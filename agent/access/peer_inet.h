/*
 * peer_inet: who is on the other end of a loopback TCP connection. The
 * client's socket lives in this host's kernel too, so sock_diag
 * (NETLINK_INET_DIAG) can name the uid that owns it: an exact lookup of the
 * socket whose local address is our peer's and whose remote address is
 * ours. This is what SO_PEERCRED is to a Unix socket, for the HTTP door.
 */
#ifndef SMC_AGENT_PEER_INET_H
#define SMC_AGENT_PEER_INET_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/*
 * The uid owning the TCP socket connected from peer to local (both
 * AF_INET, or both AF_INET6, as getpeername/getsockname give them).
 * 0 with *uid set; -1 with the reason in err (not a local socket, netlink
 * refused, no such socket, a closed socket in TIME_WAIT whose owner the
 * kernel no longer knows).
 */
int peer_inet_uid(const struct sockaddr *local, const struct sockaddr *peer, uid_t *uid,
    char *err, size_t errlen);

/* The same for a connected TCP socket, by its descriptor. */
int peer_inet_uid_fd(int fd, uid_t *uid, char *err, size_t errlen);

#endif
