/*
 * sockpath: the default socket path shared by agent and client (see sockpath.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/un.h>
#include <unistd.h>

#include "sockpath.h"

_Static_assert(sizeof(((struct sockaddr_un *)0)->sun_path) == SMC_SOCKET_PATH_MAX,
    "SMC_SOCKET_PATH_MAX must match sun_path");

int
smc_default_socket_path(char *buf, size_t len)
{
	const char *env, *xdg;
	uid_t uid = geteuid();
	int n;

	if ((env = getenv(SMC_SOCKET_ENV)) != NULL && *env != '\0')
		n = snprintf(buf, len, "%s", env);
	else if (uid == 0)
		n = snprintf(buf, len, "%s", SMC_SOCKET_SYSTEM_PATH);
	else if ((xdg = getenv("XDG_RUNTIME_DIR")) != NULL && xdg[0] == '/')
		n = snprintf(buf, len, "%s/%s", xdg, SMC_SOCKET_SUBPATH);
	else
		n = snprintf(buf, len, "/tmp/smcache-%lu/smcached.sock", (unsigned long)uid);
	if (n < 0 || (size_t)n >= len || (size_t)n >= SMC_SOCKET_PATH_MAX) {
		if (len > 0)
			buf[0] = '\0';
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}
