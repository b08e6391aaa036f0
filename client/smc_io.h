/*
 * smc_io: the client side of the agent's Unix socket (internal to
 * libsmcache). Connect, send and receive with an absolute deadline on a
 * non-blocking socket: partial transfers, EINTR and EAGAIN are handled here
 * so the request logic above sees whole buffers or a classified failure.
 */
#ifndef SMC_CLIENT_IO_H
#define SMC_CLIENT_IO_H

#include <stddef.h>
#include <stdint.h>

#include "smcache.h"

/* Results of the transfer functions. */
#define SMCI_IO_OK	0
#define SMCI_IO_ERROR	(-1)	/* timeout or local error; err set */
#define SMCI_IO_CLOSED	(-2)	/* the agent closed or reset the connection; err set */

/* A deadline on CLOCK_MONOTONIC in ns for timeout_ms from now; < 0 waits forever. */
int64_t smci_deadline(int timeout_ms);

/* Milliseconds left until deadline (rounded up), -1 without one, 0 once passed. */
int smci_io_remaining_ms(int64_t deadline);
/* Sleeps ms, or until the deadline when that comes first. */
void smci_io_pause_ms(int ms, int64_t deadline);
/* Waits until fd is ready for events; *revents gets poll's answer. 0, or -1
 * with err set on timeout. */
int smci_io_wait(int fd, short events, int64_t deadline, short *revents, smc_error *err);

/* A connected, non-blocking, close-on-exec socket, or -1 with err set
 * (SMC_ERR_USAGE for an unusable path, else SMC_ERR_UNREACHABLE). */
int smci_io_connect(const char *path, int64_t deadline, smc_error *err);

/* Sends all len bytes, never raising SIGPIPE. */
int smci_io_write_all(int fd, const void *buf, size_t len, int64_t deadline, smc_error *err);

/* Receives exactly len bytes; *got says how many arrived before a failure. */
int smci_io_read_all(int fd, void *buf, size_t len, int64_t deadline, size_t *got,
    smc_error *err);

#endif
