/*
 * sockpath: the default socket path shared by agent and client (see sockpath.h).
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "sockpath.h"

_Static_assert(sizeof(((struct sockaddr_un *)0)->sun_path) == PROTO_SOCKET_PATH_MAX,
    "PROTO_SOCKET_PATH_MAX must match sun_path");

int
proto_default_socket_path(char *buf, size_t len)
{
	const char *env, *xdg;
	uid_t uid = geteuid();
	int n;

	if ((env = getenv(PROTO_SOCKET_ENV)) != NULL && *env != '\0')
		n = snprintf(buf, len, "%s", env);
	else if (uid == 0)
		n = snprintf(buf, len, "%s", PROTO_SOCKET_SYSTEM_PATH);
	else if ((xdg = getenv("XDG_RUNTIME_DIR")) != NULL && xdg[0] == '/')
		n = snprintf(buf, len, "%s/%s", xdg, PROTO_SOCKET_SUBPATH);
	else
		n = snprintf(buf, len, "/tmp/smcache-%lu/smcached.sock", (unsigned long)uid);
	if (n < 0 || (size_t)n >= len || (size_t)n >= PROTO_SOCKET_PATH_MAX) {
		if (len > 0)
			buf[0] = '\0';
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int
fits(const char *path)
{
	return strlen(path) < PROTO_SOCKET_PATH_MAX;
}

int
proto_socket_candidates(struct proto_socket_candidate out[PROTO_SOCKET_CANDIDATES_MAX])
{
	const char *env = getenv(PROTO_SOCKET_ENV);
	size_t n = 0;

	memset(out, 0, PROTO_SOCKET_CANDIDATES_MAX * sizeof(*out));
	if (env != NULL && *env != '\0') {
		if (!fits(env)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(out[0].path, env, strlen(env) + 1);
		out[0].trust = PROTO_TRUST_AS_GIVEN;
		return 1;
	}
	/* The per-user path: what proto_default_socket_path gives a non-root user. */
	if (geteuid() != 0 && proto_default_socket_path(out[n].path, sizeof(out[n].path)) == 0) {
		out[n].trust = PROTO_TRUST_SELF;
		n++;
	}
	memcpy(out[n].path, PROTO_SOCKET_SYSTEM_PATH, sizeof(PROTO_SOCKET_SYSTEM_PATH));
	out[n].trust = PROTO_TRUST_SYSTEM;
	return (int)(n + 1);
}

int
proto_socket_uid_trusted(enum proto_socket_trust trust, uid_t uid)
{
	struct passwd pw, *res = NULL;
	char buf[1024];

	switch (trust) {
	case PROTO_TRUST_AS_GIVEN:
		return 1;
	case PROTO_TRUST_SELF:
		return uid == 0 || uid == geteuid();
	case PROTO_TRUST_SYSTEM:
		if (uid == 0)
			return 1;
		/* Looked up each time: the account may be created after start. */
		return getpwnam_r(PROTO_AGENT_USER, &pw, buf, sizeof(buf), &res) == 0 &&
		    res != NULL && res->pw_uid == uid;
	}
	return 0;
}
