/*
 * sd_notify: systemd's notification datagrams (see sd_notify.h). The
 * protocol is small enough that libsystemd is not worth a dependency: one
 * SOCK_DGRAM sendto() per message, the address taken from $NOTIFY_SOCKET
 * ('@' meaning the abstract namespace, i.e. a leading NUL byte and no
 * terminating one). The socket is opened per message: messages are rare
 * (start-up, reload, stop, a watchdog ping every few seconds), and a fresh
 * socket survives the manager re-creating its own.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sd_notify.h"

static struct {
	int inited;
	struct sockaddr_un addr;
	socklen_t addr_len;		/* 0: no notify socket */
	uint64_t watchdog_usec;
	int ready;			/* READY=1 was sent */
} sdn;

void
sd_notify_reset(void)
{
	memset(&sdn, 0, sizeof(sdn));
}

/* Digits only, no sign, fits 64 bits. */
static int
parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (s == NULL || *s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

static void
read_watchdog(void)
{
	const char *pid = getenv("WATCHDOG_PID");
	uint64_t v;

	sdn.watchdog_usec = 0;
	if (pid != NULL && (parse_u64(pid, &v) != 0 || v != (uint64_t)getpid()))
		return;		/* meant for another process */
	if (parse_u64(getenv("WATCHDOG_USEC"), &v) == 0)
		sdn.watchdog_usec = v;
}

int
sd_notify_init(char *err, size_t errlen)
{
	const char *path = getenv("NOTIFY_SOCKET");
	size_t len;
	int rc = -1;

	sd_notify_reset();
	sdn.inited = 1;
	read_watchdog();
	if (path == NULL || *path == '\0') {
		rc = 0;
		goto out;
	}
	len = strlen(path);
	if (path[0] != '/' && path[0] != '@') {
		snprintf(err, errlen, "NOTIFY_SOCKET '%s' is neither an absolute path nor"
		    " an abstract socket name ('@...')", path);
		goto out;
	}
	if (len < 2 || len >= sizeof(sdn.addr.sun_path)) {
		snprintf(err, errlen, "NOTIFY_SOCKET is %s (%zu bytes; at most %zu)",
		    len < 2 ? "too short" : "too long", len, sizeof(sdn.addr.sun_path) - 1);
		goto out;
	}
	sdn.addr.sun_family = AF_UNIX;
	memcpy(sdn.addr.sun_path, path, len);
	if (path[0] == '@') {
		sdn.addr.sun_path[0] = '\0';	/* abstract: the name is exactly len bytes */
		sdn.addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	} else {
		sdn.addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	}
	rc = 1;
out:
	/* The agent starts no programs, but nothing should inherit these. */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	return rc;
}

int
sd_notify_send(const char *state, char *err, size_t errlen)
{
	size_t len = strlen(state);
	ssize_t n;
	int fd = -1, rc = -1;

	if (!sdn.inited || sdn.addr_len == 0)
		return 0;
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "sd_notify: socket: %s", strerror(errno));
		goto out;
	}
	do
		n = sendto(fd, state, len, MSG_NOSIGNAL, (const struct sockaddr *)&sdn.addr,
		    sdn.addr_len);
	while (n < 0 && errno == EINTR);
	if (n < 0 || (size_t)n != len) {
		snprintf(err, errlen, "sd_notify: cannot send '%.*s' to NOTIFY_SOCKET: %s",
		    (int)strcspn(state, "\n"), state, n < 0 ? strerror(errno) : "short write");
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

int
sd_notify_ready(const char *status, char *err, size_t errlen)
{
	char msg[256];

	sdn.ready = 1;
	if (status == NULL)
		return sd_notify_send("READY=1", err, errlen);
	/* STATUS= is one line: cut at the first newline. */
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%.*s", (int)strcspn(status, "\n"), status);
	return sd_notify_send(msg, err, errlen);
}

int
sd_notify_reloaded(const char *status, char *err, size_t errlen)
{
	if (!sdn.ready)
		return 0;
	return sd_notify_ready(status, err, errlen);
}

int
sd_notify_reloading(char *err, size_t errlen)
{
	struct timespec ts;
	char msg[64];

	if (!sdn.ready)
		return 0;
	/* MONOTONIC_USEC lets systemd (Type=notify-reload, 253+) tell this reload from a
	 * later one; older managers ignore it. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64,
	    (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
	return sd_notify_send(msg, err, errlen);
}

int
sd_notify_stopping(char *err, size_t errlen)
{
	return sd_notify_send("STOPPING=1", err, errlen);
}

int
sd_notify_watchdog(char *err, size_t errlen)
{
	return sd_notify_send("WATCHDOG=1", err, errlen);
}

uint64_t
sd_notify_watchdog_usec(void)
{
	return sdn.watchdog_usec;
}
