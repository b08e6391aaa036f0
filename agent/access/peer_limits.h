/*
 * peer_limits: what one local user (peer uid) may use of the agent, so one
 * busy or hostile user cannot starve the others: connections open at once,
 * requests per second (a token bucket with a burst; off by default, since
 * a cache hit costs next to nothing), forced refreshes per minute (a token
 * bucket holding a minute's worth), and the upstream budget: calls to the
 * upstream its requests cause (misses, version ids, DESCRIBE, forced
 * refreshes), a token bucket with a burst. Queued output is counted per uid
 * here too (the server bounds it).
 *
 * A connection holds its uid's entry from accept to close, so the
 * per-request check is a pointer dereference and some arithmetic. Entries
 * outlive their connections (a user cannot reset its bucket by
 * reconnecting); idle entries with full buckets are swept once there are
 * many of them.
 */
#ifndef SMC_AGENT_PEER_LIMITS_H
#define SMC_AGENT_PEER_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct peer_limits;
struct peer_entry;

struct peer_limits_config {
	unsigned connections;		/* per uid, at once */
	unsigned requests_per_second;	/* per uid, sustained; 0: no request rate limit */
	unsigned burst;			/* per uid, requests at once (the bucket's size) */
	unsigned refreshes_per_minute;	/* per uid, forced refreshes */
	unsigned upstream_per_second;	/* per uid, upstream calls caused; 0: no budget */
	unsigned upstream_burst;	/* per uid, upstream calls at once (the bucket's size) */
};

struct peer_limits_stats {
	uint64_t connections_rejected;
	uint64_t requests_rejected;
	uint64_t refreshes_rejected;
	uint64_t upstream_rejected;	/* requests refused for the upstream budget */
	uint64_t uids;			/* entries held */
};

/* Time is sys_clock's (tests set it with sys_clock_test_set_ns). */
struct peer_limits *peer_limits_new(const struct peer_limits_config *config);
/* Every connection must have been closed (entries still held are freed anyway). */
void peer_limits_free(struct peer_limits *limits);

/* New limits for everyone (SIGHUP); buckets keep their state, clipped to the new burst. */
void peer_limits_set_config(struct peer_limits *limits, const struct peer_limits_config *config);

/*
 * Counts a new connection of uid and returns the entry it holds until
 * peer_limits_conn_close(). NULL with errno EUSERS when uid is at its
 * connection limit, ENOMEM when out of memory.
 */
struct peer_entry *peer_limits_conn_open(struct peer_limits *limits, uid_t uid);
void peer_limits_conn_close(struct peer_limits *limits, struct peer_entry *entry);

/* Takes one request token; false: over the rate, answer LIMIT_EXCEEDED. NULL entry: true. */
bool peer_limits_allow_request(struct peer_limits *limits, struct peer_entry *entry);

/*
 * True at most once per warning interval (10 s) per uid after its requests
 * or connections were refused, so the caller can log one line instead of
 * one per refusal.
 */
bool peer_limits_should_warn(struct peer_limits *limits, uid_t uid);

/* Takes one forced-refresh token of uid; false: over refreshes_per_minute. */
bool peer_limits_allow_refresh(struct peer_limits *limits, uid_t uid);

/*
 * Takes one upstream token of the entry's uid: called when a request of
 * that uid is about to cause an upstream call. False: over the budget,
 * answer LIMIT_EXCEEDED. NULL entry: true.
 */
bool peer_limits_allow_upstream(struct peer_limits *limits, struct peer_entry *entry);

/*
 * Queued output of the entry's uid (bytes, all its connections): the
 * server adds and subtracts as replies are queued and written.
 */
void peer_limits_output_add(struct peer_entry *entry, size_t bytes);
void peer_limits_output_sub(struct peer_entry *entry, size_t bytes);
size_t peer_limits_output(const struct peer_entry *entry);

/* Connections uid holds now (0 when unknown). */
unsigned peer_limits_connections(const struct peer_limits *limits, uid_t uid);
uid_t peer_entry_uid(const struct peer_entry *entry);

const struct peer_limits_stats *peer_limits_get_stats(const struct peer_limits *limits);

#endif
