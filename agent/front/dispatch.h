/*
 * dispatch: the meaning of each protocol operation (PING, GET, DESCRIBE,
 * STATS), between the server's connections and the backend.
 */
#ifndef SMC_AGENT_DISPATCH_H
#define SMC_AGENT_DISPATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "acl.h"
#include "cache.h"
#include "message.h"

struct agent;
struct conn;
struct proto_request;
struct backend_query;
struct peer_entry;

/* Matches server_request_fn. */
void dispatch_request(struct agent *agent, struct conn *conn, const struct proto_request *req);

/*
 * Callers of the other front doors (the HTTP door) go through the same
 * rules as Unix-socket connections: per-uid request budget, [access] rules
 * before and after the lookup, forced-refresh budget, audit.
 */
struct dispatch_caller {
	struct acl_peer peer;		/* uid, gid, groups (groups NULL for TCP callers) */
	pid_t pid;			/* 0 when unknown */
	bool uid_known;			/* false: denied whenever access rules are on */
	const char *uid_unknown_why;	/* for the audit line */
	struct peer_entry *limits;	/* the per-uid entry the caller's connection holds, or NULL */
	const char *door;		/* for the audit line, e.g. "http" */
};

/*
 * Before the cache: PROTO_STATUS_OK, or the status and *message to answer
 * with (refusals are audited). op PROTO_OP_STATS checks the STATS rule (q may
 * be NULL); otherwise q->secret_id is the id as given.
 */
enum proto_status dispatch_admit(struct agent *agent, const struct dispatch_caller *caller,
    uint8_t op, const struct backend_query *q, bool refresh, const char **message);
/* After the lookup: may the caller read the secret it resolved to? Audited either way. */
bool dispatch_granted(struct agent *agent, const struct dispatch_caller *caller, uint8_t op,
    const struct backend_query *q, const char *name, const char *arn);
/* Audits an allowed request answered with status (an error from the backend). */
void dispatch_audit_answer(struct agent *agent, const struct dispatch_caller *caller, uint8_t op,
    const struct backend_query *q, int status);
/*
 * The upstream budget of a caller for one cache_get_charged() call: what the
 * caller's requests cost upstream is charged to its uid (peer_limits.h).
 * Valid while caller->limits is, i.e. during the call.
 */
struct dispatch_charge {
	struct cache_charge charge;
	struct agent *agent;
	struct peer_entry *limits;
	uid_t uid;
	pid_t pid;
};
void dispatch_charge_for(struct dispatch_charge *charge, struct agent *agent,
    const struct dispatch_caller *caller);

/* Every number STATS reports, in its order; counter false: a gauge. */
typedef void (*dispatch_stat_fn)(const char *name, uint64_t value, bool counter, void *arg);
void dispatch_stats_each(struct agent *agent, dispatch_stat_fn fn, void *arg);

/*
 * Audits an operation the Secrets Manager endpoint passes through or refuses
 * (a write): operation is its API name, status the proto_status answered, or
 * -1 when the upstream's HTTP answer was relayed (reason says which). Written
 * at every audit level but off.
 */
void dispatch_audit_forward(struct agent *agent, const struct dispatch_caller *caller,
    const char *operation, const char *secret_id, bool allowed, int status, const char *reason);

/* The one answer to a refused request. */
const char *dispatch_access_denied_message(void);

#endif
