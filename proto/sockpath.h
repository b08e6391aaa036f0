/*
 * sockpath: where the agent listens and the client connects by default, so
 * both sides agree without configuration.
 *
 *   1. $SMCACHE_SOCKET, when set and not empty;
 *   2. /run/smcache/smcached.sock for root (euid 0);
 *   3. $XDG_RUNTIME_DIR/smcache/smcached.sock when XDG_RUNTIME_DIR is an
 *      absolute path;
 *   4. otherwise /tmp/smcache-UID/smcached.sock (UID = effective uid). /tmp
 *      is shared, so anyone may have created that directory first: a client
 *      must then believe only an agent running as root or as itself
 *      (SO_PEERCRED), and the agent should create the directory 0700 and
 *      refuse one owned by another user.
 *
 * Clients (library, CLI and every later one) go one step further when
 * $SMCACHE_SOCKET is unset: a non-root user tries its own path (3 or 4)
 * and then the system path (2), where a system agent listens. They believe
 * the per-user path only from an agent running as root or as themselves,
 * and the system path only when the socket file's owner and the agent
 * behind it are root or PROTO_AGENT_USER. proto_socket_candidates() gives the
 * list, proto_socket_uid_trusted() the owner rule: one home for both.
 */
#ifndef PROTO_SOCKPATH_H
#define PROTO_SOCKPATH_H

#include <stddef.h>
#include <sys/types.h>

#define PROTO_SOCKET_ENV	"SMCACHE_SOCKET"
#define PROTO_SOCKET_SYSTEM_PATH	"/run/smcache/smcached.sock"
#define PROTO_SOCKET_SUBPATH	"smcache/smcached.sock"	/* under $XDG_RUNTIME_DIR */
#define PROTO_SOCKET_PATH_MAX	108	/* sizeof(sockaddr_un.sun_path), NUL included */

/* The user a system agent runs as (User= in conf/smcached.service). */
#define PROTO_AGENT_USER	"smcache"
#define PROTO_SOCKET_CANDIDATES_MAX 2

/* Whom a client believes at a path, by how it found the path. */
enum proto_socket_trust {
	PROTO_TRUST_AS_GIVEN = 0,	/* named by the user ($SMCACHE_SOCKET or a path argument) */
	PROTO_TRUST_SELF,	/* the per-user default: root or the caller's euid */
	PROTO_TRUST_SYSTEM,	/* the system path: root or PROTO_AGENT_USER */
};

struct proto_socket_candidate {
	char path[PROTO_SOCKET_PATH_MAX];
	enum proto_socket_trust trust;
};

/*
 * The paths a client tries when it was given none, in order: $SMCACHE_SOCKET
 * alone when set and not empty; else the per-user path (non-root only) and
 * then PROTO_SOCKET_SYSTEM_PATH. A per-user path too long for sun_path is
 * left out. Returns the number of candidates (1 or 2), or -1 with errno
 * ENAMETOOLONG when $SMCACHE_SOCKET does not fit.
 */
int proto_socket_candidates(struct proto_socket_candidate out[PROTO_SOCKET_CANDIDATES_MAX]);

/* 1 when uid may own, or serve, a socket found with this trust; else 0. */
int proto_socket_uid_trusted(enum proto_socket_trust trust, uid_t uid);

/* Writes the default socket path into buf. Returns 0, or -1 with errno
 * ENAMETOOLONG when the path does not fit in sun_path or in buf. */
int proto_default_socket_path(char *buf, size_t len);

#endif
