/*
 * dispatch: the meaning of each protocol operation (PING, GET, DESCRIBE,
 * STATS), between the server's connections and the backend.
 */
#ifndef SMC_AGENT_DISPATCH_H
#define SMC_AGENT_DISPATCH_H

struct agent;
struct conn;
struct smc_request;

/* Matches server_request_fn. */
void dispatch_request(struct agent *agent, struct conn *conn, const struct smc_request *req);

#endif
