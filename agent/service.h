/*
 * service: what the agent tells its service manager (systemd Type=notify,
 * through sd_notify.h): READY=1 once the socket listens and every secret of
 * [cache] prefetch is held or has failed, STOPPING=1 on shutdown, and
 * WATCHDOG=1 at half the period of WatchdogSec=. Also owns the start-up
 * prefetch and its log lines. Without $NOTIFY_SOCKET only the prefetch and
 * its logging happen.
 */
#ifndef SMC_AGENT_SERVICE_H
#define SMC_AGENT_SERVICE_H

#include <stddef.h>

struct agent;
struct service;

/*
 * Call once the socket listens and the event loop is built. Starts the
 * prefetch of list (comma or blank separated ids; NULL or empty: none) and,
 * when asked for, the watchdog; sends READY=1 when the prefetch has ended.
 * Returns NULL with a message in err when out of memory or the watchdog
 * timer cannot be set. A bad NOTIFY_SOCKET is only a warning.
 */
struct service *service_start(struct agent *agent, const char *list, char *err, size_t errlen);

/* STOPPING=1; call when shutdown begins. */
void service_stopping(void);

void service_free(struct service *svc);

#endif
