/*
 * smc_io: deadline-bounded socket I/O for libsmcache (see smc_io.h).
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smc_error.h"
#include "smc_io.h"

#define NS_PER_MS	1000000LL
/* A full listen backlog makes a Unix connect fail with EAGAIN; retry this often. */
#define CONNECT_RETRY_MS 5

static int64_t
now_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t
smci_deadline(int timeout_ms)
{
	if (timeout_ms < 0)
		return -1;
	return now_ns() + (int64_t)timeout_ms * NS_PER_MS;
}

/* Milliseconds left, rounded up so we never wake just before the deadline;
 * -1 without a deadline, 0 once it passed. */
int
smci_io_remaining_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ns();
	if (left <= 0)
		return 0;
	left = (left + NS_PER_MS - 1) / NS_PER_MS;
	return left > INT_MAX ? INT_MAX : (int)left;
}

int
smci_io_wait(int fd, short events, int64_t deadline, short *revents, smc_error *err)
{
	struct pollfd pfd;
	int ms, n;

	for (;;) {
		ms = smci_io_remaining_ms(deadline);
		if (ms == 0) {
			smci_err_set(err, SMC_ERR_UNREACHABLE, "timed out waiting for the agent");
			return -1;
		}
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, ms);
		if (n > 0) {
			if (revents != NULL)
				*revents = pfd.revents;
			return 0;	/* ready, or an error the next call reports */
		}
		if (n < 0 && errno != EINTR) {
			smci_err_set(err, SMC_ERR_UNREACHABLE, "poll: %s", strerror(errno));
			return -1;
		}
	}
}

void
smci_io_pause_ms(int ms, int64_t deadline)
{
	int left = smci_io_remaining_ms(deadline);

	if (left >= 0 && left < ms)
		ms = left;
	if (ms > 0)
		(void)poll(NULL, 0, ms);
}

int
smci_io_connect(const char *path, int64_t deadline, smc_error *err)
{
	struct sockaddr_un sa;
	socklen_t salen;
	size_t plen;
	int fd = -1, soerr;
	socklen_t solen;

	plen = strlen(path);
	if (plen == 0) {
		smci_err_set(err, SMC_ERR_USAGE, "the socket path is empty");
		return -1;
	}
	if (plen >= sizeof(sa.sun_path)) {
		smci_err_set(err, SMC_ERR_USAGE, "socket path too long (%zu bytes, at most %zu)",
		    plen, sizeof(sa.sun_path) - 1);
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, plen + 1);
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		smci_err_set(err, errno == ENOMEM || errno == ENOBUFS ? SMC_ERR_NOMEM :
		    SMC_ERR_UNREACHABLE, "socket: %s", strerror(errno));
		return -1;
	}
	for (;;) {
		if (connect(fd, (struct sockaddr *)&sa, salen) == 0)
			return fd;
		if (errno == EAGAIN) {
			/* Backlog full: the agent is busy accepting. Retry until the deadline. */
			if (smci_io_remaining_ms(deadline) == 0)
				goto timeout;
			smci_io_pause_ms(CONNECT_RETRY_MS, deadline);
			continue;
		}
		if (errno != EINPROGRESS && errno != EINTR)
			goto fail;
		/* The connect goes on in the background; its result arrives as writability. */
		if (smci_io_wait(fd, POLLOUT, deadline, NULL, NULL) == -1)
			goto timeout;
		solen = sizeof(soerr);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &solen) == -1)
			goto fail;
		if (soerr == 0)
			return fd;
		errno = soerr;
		goto fail;
	}
timeout:
	smci_err_set(err, SMC_ERR_UNREACHABLE, "timed out connecting to the agent at %s", path);
	(void)close(fd);
	return -1;
fail:
	smci_err_set(err, SMC_ERR_UNREACHABLE, "cannot connect to the agent at %s: %s", path,
	    strerror(errno));
	(void)close(fd);
	return -1;
}

int
smci_io_write_all(int fd, const void *buf, size_t len, int64_t deadline, smc_error *err)
{
	const unsigned char *p = buf;
	size_t off = 0;
	ssize_t n;

	while (off < len) {
		n = send(fd, p + off, len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (smci_io_wait(fd, POLLOUT, deadline, NULL, err) == -1)
				return SMCI_IO_ERROR;
			continue;
		}
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			smci_err_set(err, SMC_ERR_UNREACHABLE, "the agent closed the connection");
			return SMCI_IO_CLOSED;
		}
		smci_err_set(err, SMC_ERR_UNREACHABLE, "send to the agent: %s",
		    n < 0 ? strerror(errno) : "no progress");
		return SMCI_IO_ERROR;
	}
	return SMCI_IO_OK;
}

int
smci_io_read_all(int fd, void *buf, size_t len, int64_t deadline, size_t *got, smc_error *err)
{
	unsigned char *p = buf;
	size_t off = 0;
	ssize_t n;
	int rc = SMCI_IO_OK;

	while (off < len) {
		n = recv(fd, p + off, len - off, 0);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n == 0 || errno == ECONNRESET) {
			smci_err_set(err, SMC_ERR_UNREACHABLE, off == 0 ?
			    "the agent closed the connection" :
			    "the agent closed the connection in the middle of a reply");
			rc = SMCI_IO_CLOSED;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (smci_io_wait(fd, POLLIN, deadline, NULL, err) == -1) {
				rc = SMCI_IO_ERROR;
				break;
			}
			continue;
		}
		smci_err_set(err, SMC_ERR_UNREACHABLE, "receive from the agent: %s", strerror(errno));
		rc = SMCI_IO_ERROR;
		break;
	}
	if (got != NULL)
		*got = off;
	return rc;
}
