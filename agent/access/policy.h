/*
 * policy: the settings a running agent can change without a restart —
 * access rules ([access]), audit ([audit]), per-uid limits ([limits]) and
 * the log level. Builds them at start-up; on SIGHUP re-reads the
 * configuration file and, when it is valid, swaps the new ones in while the
 * cache, the connections and the socket stay. Keys that need a restart are
 * named at warn level and not applied. An invalid file changes nothing: the
 * running policy stays and the reason is logged.
 */
#ifndef SMC_AGENT_POLICY_H
#define SMC_AGENT_POLICY_H

#include <stddef.h>

struct agent;
struct config;

/*
 * Sets agent->acl, agent->audit and agent->peer_limits from cfg, hands the
 * limits to agent->server, logs whether access control is on, and handles
 * SIGHUP on agent->base. config_path NULL (built-in defaults): SIGHUP has no
 * file to re-read and says so. 0, or -1 with err set.
 */
int policy_init(struct agent *agent, const struct config *cfg, const char *config_path,
    char *err, size_t errlen);

/* What SIGHUP does. 0: the file was valid and its policy applied; -1: nothing changed. */
int policy_reload(struct agent *agent);

/*
 * Frees what policy_init made; agent's policy pointers become NULL. Call it
 * after server_free(): connections hold per-uid entries until they close.
 */
void policy_free(struct agent *agent);

#endif
