/*
 * audit: one line per access decision, to stderr (next to the log) or to a
 * file of its own opened for appending. A line names the time, the
 * operation, the decision and the reply status, the peer (uid, gid, pid)
 * and what was asked (secret id, version stage, version id) — never a
 * value. Ids come from clients, so they are quoted and every byte outside
 * printable ASCII, '"' and '\' is written as \xHH.
 *
 *   2025-01-02T03:04:05.678Z smcached[42] audit: op=GET decision=denied
 *   status=ACCESS_DENIED uid=1000 gid=1000 pid=4242 id="prod/db" stage=-
 *   version_id=-
 *
 * (one line; requests through the HTTP door add door=http, and a decision
 * with a reason, such as an HTTP caller whose uid is unknown, adds
 * reason="..."). Levels: off, denied (only refusals: access and STATS), all
 * (every GET, DESCRIBE and STATS, with the status it was answered with).
 */
#ifndef SMC_AGENT_AUDIT_H
#define SMC_AGENT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum audit_level {
	AUDIT_OFF = 0,
	AUDIT_DENIED = 1,
	AUDIT_ALL = 2,
};

struct audit;

struct audit_event {
	uint8_t op;			/* PROTO_OP_GET, ... */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	const char *secret_id;		/* NULL: none (STATS) */
	const char *version_stage;	/* NULL: not given */
	const char *version_id;		/* NULL: not given */
	bool allowed;
	int status;			/* the reply's proto_status; -1: no reply (client left) */
	const char *door;		/* NULL: the Unix socket; "http": the HTTP door */
	const char *reason;		/* NULL, or why a decision was made (e.g. uid unknown) */
	const char *op_name;		/* NULL: proto_op_name(op); else e.g. "CreateSecret" (an
					 * operation the Secrets Manager endpoint passed through) */
};

/* path NULL: stderr. Otherwise the file is opened (created 0600) for appending. */
struct audit *audit_new(enum audit_level level, const char *path, char *err, size_t errlen);
void audit_free(struct audit *audit);

/* Would an event with this decision be written? Lets callers skip building one. */
bool audit_wants(const struct audit *audit, bool allowed);
void audit_record(struct audit *audit, const struct audit_event *event);

/* Formats the line (without the timestamp prefix, without newline); for tests. */
size_t audit_format(const struct audit_event *event, char *buf, size_t len);

const char *audit_level_name(enum audit_level level);

#endif
