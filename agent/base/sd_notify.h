/*
 * sd_notify: the systemd notification protocol, written by hand (no
 * libsystemd). A service of Type=notify tells the manager it is ready
 * (READY=1), reloading (RELOADING=1, then READY=1), stopping (STOPPING=1)
 * and alive (WATCHDOG=1) by sending one datagram per message to the
 * AF_UNIX socket named in $NOTIFY_SOCKET: an absolute path, or '@' for the
 * Linux abstract namespace. Without $NOTIFY_SOCKET every call does nothing.
 */
#ifndef SMC_AGENT_SD_NOTIFY_H
#define SMC_AGENT_SD_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

/*
 * Reads $NOTIFY_SOCKET (and $WATCHDOG_USEC/$WATCHDOG_PID) once, remembers
 * them, and unsets them so nothing the agent runs inherits them. Returns 1
 * when a notify socket is set, 0 when none is, -1 with a message in err when
 * it is set but unusable (not absolute, not '@', too long).
 */
int sd_notify_init(char *err, size_t errlen);

/*
 * Sends state (newline-separated "KEY=VALUE" lines, e.g. "READY=1") as one
 * datagram. 0 when sent or when there is no notify socket; -1 with a message
 * in err when sending failed.
 */
int sd_notify_send(const char *state, char *err, size_t errlen);

/*
 * The messages systemd.service(5) expects; 0 or -1 as sd_notify_send().
 * status (may be NULL) becomes STATUS=, cut at its first newline.
 * Reloading and reloaded send nothing before the first READY=1: a SIGHUP
 * during start-up must not tell the manager the agent is ready early.
 */
int sd_notify_ready(const char *status, char *err, size_t errlen);
int sd_notify_reloading(char *err, size_t errlen);	/* RELOADING=1 + MONOTONIC_USEC */
int sd_notify_reloaded(const char *status, char *err, size_t errlen);	/* READY=1 again */
int sd_notify_stopping(char *err, size_t errlen);
int sd_notify_watchdog(char *err, size_t errlen);

/*
 * The watchdog period systemd asks for (WatchdogSec=, from $WATCHDOG_USEC
 * when $WATCHDOG_PID is unset or this process), in microseconds; 0 when
 * there is none. Ping at half of it.
 */
uint64_t sd_notify_watchdog_usec(void);

/* Forgets what sd_notify_init() read (for tests). */
void sd_notify_reset(void);

#endif
