/*
 * service: what the agent tells its service manager (systemd Type=notify,
 * through sd_notify.h): READY=1 once the socket listens and every entry of
 * [cache] prefetch (secret ids, and filters whose every match is fetched) is
 * held or has failed, or prefetch_timeout has passed, STOPPING=1 on shutdown, and
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
 * prefetch of list (comma or blank separated ids and filters; NULL or empty:
 * none) after a random wait of up to [cache] prefetch_jitter and,
 * when asked for, the watchdog; sends READY=1 when the prefetch has ended.
 * Returns NULL with a message in err when out of memory or the watchdog
 * timer cannot be set. A bad NOTIFY_SOCKET is only a warning.
 */
struct service *service_start(struct agent *agent, const char *list, char *err, size_t errlen);

/*
 * The one signal that the start-up prefetch has ended (every entry held or
 * failed) or that readiness stopped waiting for it (prefetch_timeout): cb
 * runs then, once (at once when that has happened already). For readers of
 * readiness other than HEALTH (which reads agent->prefetch_pending) and
 * READY=1 (sent here): Lambda INIT. At most 4 waiters.
 */
void service_when_prefetched(struct service *svc, void (*cb)(void *arg), void *arg);

/* STOPPING=1; call when shutdown begins. */
void service_stopping(void);

void service_free(struct service *svc);

#endif
