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
 */
#ifndef SMC_PROTO_SOCKPATH_H
#define SMC_PROTO_SOCKPATH_H

#include <stddef.h>

#define SMC_SOCKET_ENV		"SMCACHE_SOCKET"
#define SMC_SOCKET_SYSTEM_PATH	"/run/smcache/smcached.sock"
#define SMC_SOCKET_SUBPATH	"smcache/smcached.sock"	/* under $XDG_RUNTIME_DIR */
#define SMC_SOCKET_PATH_MAX	108	/* sizeof(sockaddr_un.sun_path), NUL included */

/* Writes the default socket path into buf. Returns 0, or -1 with errno
 * ENAMETOOLONG when the path does not fit in sun_path or in buf. */
int smc_default_socket_path(char *buf, size_t len);

#endif
