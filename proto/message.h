/*
 * message: the smcache protocol's messages (see proto/PROTOCOL.md).
 *
 * A message body is a fixed 10-byte header followed by typed fields
 * (tag u16, length u32, value). This module encodes and decodes bodies and
 * whole frames; it does no I/O and never allocates: decoded strings point
 * into the caller's buffer and encoded messages go into a caller's buffer.
 */
#ifndef PROTO_MESSAGE_H
#define PROTO_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#define PROTO_VERSION		1
#define PROTO_HEADER_LEN	10	/* version u8, op u8, flags u16, request id u32, status u16 */
#define PROTO_FIELD_HEADER_LEN	6	/* tag u16, length u32 */

/* Limits (bytes). Secrets Manager caps a secret value at 64 KiB. */
#define PROTO_MAX_SECRET_ID	2048
#define PROTO_MAX_VERSION_STAGE	256
#define PROTO_MAX_VERSION_ID	64
#define PROTO_MAX_ARN		2048
#define PROTO_MAX_NAME		512
#define PROTO_MAX_DESCRIPTION	2048
#define PROTO_MAX_VALUE		65536
#define PROTO_MAX_MESSAGE	1024
#define PROTO_MAX_STAT_NAME	64
#define PROTO_MAX_AGENT_VERSION	64
#define PROTO_MAX_STAGES	20	/* staging labels attached to one version */
#define PROTO_MAX_VERSIONS	100	/* versions listed by DESCRIBE */
#define PROTO_MAX_REASON	256	/* one HEALTH_REASON */
#define PROTO_MAX_REASONS	8	/* HEALTH_REASON fields in a HEALTH reply */

/* Operations. A reply carries the request's op with PROTO_OP_REPLY set. */
enum proto_op {
	PROTO_OP_PING = 1,
	PROTO_OP_GET = 2,
	PROTO_OP_DESCRIBE = 3,
	PROTO_OP_STATS = 4,
	PROTO_OP_HEALTH = 5,
};
#define PROTO_OP_MAX		PROTO_OP_HEALTH
#define PROTO_OP_REPLY		0x80

/* Reply status codes; stable numbers, never reused. */
enum proto_status {
	PROTO_STATUS_OK = 0,
	PROTO_STATUS_NOT_FOUND = 1,		/* secret, version id or stage does not exist */
	PROTO_STATUS_ACCESS_DENIED = 2,		/* this peer may not read this secret */
	PROTO_STATUS_BAD_REQUEST = 3,		/* malformed message, missing or invalid field */
	PROTO_STATUS_UPSTREAM_UNAVAILABLE = 4,	/* backend timed out, failed, or is throttling */
	PROTO_STATUS_INTERNAL = 5,		/* a bug or resource exhaustion in the agent */
	PROTO_STATUS_UNSUPPORTED = 6,		/* protocol version or op this agent does not speak */
	PROTO_STATUS_TOO_LARGE = 7,		/* frame over the size limit; the connection closes */
	PROTO_STATUS_LIMIT_EXCEEDED = 8,	/* a per-peer or global limit; retry later */
	PROTO_STATUS_UPSTREAM_AUTH = 9,		/* the agent's own upstream credentials were refused */
};
#define PROTO_STATUS_MAX	9

/* Header flags. Request bits not defined here must be zero. */
#define PROTO_FLAG_STALE	0x0001	/* reply: served from cache past its ttl (upstream failing) */
#define PROTO_FLAG_REFRESH	0x0001	/* request, GET only: ask the upstream now, not the cache */
#define PROTO_REQUEST_FLAGS_KNOWN	0x0001

/*
 * Field tags. A tag with PROTO_TAG_IGNORABLE set may be skipped by a receiver
 * that does not know it; an unknown tag without it is an error. New optional
 * fields are added with the bit set, so old peers keep working.
 */
#define PROTO_TAG_IGNORABLE	0x8000
enum proto_tag {
	PROTO_TAG_SECRET_ID = 0x0001,		/* string: name, full ARN or partial ARN */
	PROTO_TAG_VERSION_STAGE = 0x0002,	/* string; repeated in replies */
	PROTO_TAG_VERSION_ID = 0x0003,		/* string */
	PROTO_TAG_ARN = 0x0004,			/* string */
	PROTO_TAG_NAME = 0x0005,		/* string */
	PROTO_TAG_SECRET_STRING = 0x0006,	/* bytes (UTF-8 text as stored) */
	PROTO_TAG_SECRET_BINARY = 0x0007,	/* bytes */
	PROTO_TAG_CREATED_DATE = 0x0008,	/* u64, milliseconds since the Unix epoch */
	PROTO_TAG_MESSAGE = 0x0009,		/* string: human-readable error text */
	PROTO_TAG_DESCRIPTION = 0x000a,		/* string */
	PROTO_TAG_LAST_CHANGED_DATE = 0x000b,	/* u64 ms */
	PROTO_TAG_DELETED_DATE = 0x000c,	/* u64 ms */
	PROTO_TAG_VERSION = 0x000d,		/* nested: VERSION_ID, VERSION_STAGE*, CREATED_DATE? */
	PROTO_TAG_STAT = 0x000e,		/* nested: STAT_NAME, STAT_VALUE */
	PROTO_TAG_STAT_NAME = 0x000f,		/* string */
	PROTO_TAG_STAT_VALUE = 0x0010,		/* u64 */
	PROTO_TAG_AGENT_VERSION = 0x0011,	/* string */
	/* HEALTH reply (PROTOCOL.md section 6) */
	PROTO_TAG_READY = 0x0012,		/* u64: 1 ready, 0 not */
	PROTO_TAG_HEALTH_REASON = 0x0013,	/* string: why not ready; repeated */
	PROTO_TAG_CREDENTIALS = 0x0014,		/* u64: enum proto_credentials_state */
	PROTO_TAG_STARTED_DATE = 0x0015,	/* u64 ms */
	PROTO_TAG_LAST_SUCCESS_DATE = 0x0016,	/* u64 ms: the upstream last answered */
	PROTO_TAG_LAST_FAILURE_DATE = 0x0017,	/* u64 ms: the upstream last could not be used */
	PROTO_TAG_LAST_FAILURE_STATUS = 0x0018,	/* u64: the status of that failure */
	PROTO_TAG_BREAKER_OPEN = 0x0019,	/* u64: 1 while the circuit breaker is open */
	PROTO_TAG_PREFETCH_PENDING = 0x001a,	/* u64: start-up prefetches not answered yet */
	PROTO_TAG_CACHE_SECRETS = 0x001b,	/* u64 */
	PROTO_TAG_CACHE_VERSIONS = 0x001c,	/* u64 */
};

/* CREDENTIALS values: the agent's upstream credentials. */
enum proto_credentials_state {
	PROTO_CRED_NOT_NEEDED = 0,		/* the backend needs none (file) */
	PROTO_CRED_UNKNOWN = 1,		/* not used yet */
	PROTO_CRED_OK = 2,			/* the upstream accepted them last time */
	PROTO_CRED_UNAVAILABLE = 3,	/* none could be obtained */
	PROTO_CRED_REJECTED = 4,	/* the upstream refused them last time */
};

enum proto_field_type {
	PROTO_TYPE_STRING = 1,	/* UTF-8 text without NUL bytes */
	PROTO_TYPE_BYTES = 2,
	PROTO_TYPE_U64 = 3,	/* exactly 8 bytes, big-endian */
	PROTO_TYPE_NESTED = 4,	/* a sequence of fields */
};

/* A length-delimited view into a message buffer; not NUL-terminated. */
struct proto_str {
	const char *ptr;
	size_t len;
};

struct proto_header {
	uint8_t version;
	uint8_t op;
	uint16_t flags;
	uint32_t request_id;
	uint16_t status;
};

struct proto_field {
	uint16_t tag;
	uint32_t len;
	const uint8_t *value;
};

/* Why a decode failed: the status to answer with and a short reason. */
struct proto_decode_error {
	enum proto_status status;
	char message[128];
};

struct proto_request {
	struct proto_header header;
	struct proto_str secret_id;	/* ptr == NULL when absent */
	struct proto_str version_stage;
	struct proto_str version_id;
};

struct proto_version_info {
	struct proto_str version_id;
	struct proto_str stages[PROTO_MAX_STAGES];
	size_t stage_count;
	uint64_t created_ms;		/* 0 when unknown */
};

/* A decoded reply. Repeated nested fields (versions, stats) are walked with
 * proto_reply_next_version() / proto_reply_next_stat(). */
struct proto_reply {
	struct proto_header header;
	struct proto_str message;
	struct proto_str arn;
	struct proto_str name;
	struct proto_str description;
	struct proto_str agent_version;
	struct proto_str version_id;
	struct proto_str stages[PROTO_MAX_STAGES];
	size_t stage_count;
	const uint8_t *secret_string;	/* NULL when absent */
	size_t secret_string_len;
	const uint8_t *secret_binary;	/* NULL when absent */
	size_t secret_binary_len;
	uint64_t created_ms;
	uint64_t last_changed_ms;
	uint64_t deleted_ms;
	size_t version_count;
	size_t stat_count;
	/* HEALTH */
	uint64_t ready;
	uint64_t credentials;
	uint64_t started_ms;
	uint64_t last_success_ms;
	uint64_t last_failure_ms;
	uint64_t last_failure_status;
	uint64_t breaker_open;
	uint64_t prefetch_pending;
	uint64_t cache_secrets;
	uint64_t cache_versions;
	struct proto_str reasons[PROTO_MAX_REASONS];
	size_t reason_count;
	/* private: the body, for walking repeated nested fields */
	const uint8_t *body;
	size_t body_len;
};

const char *proto_status_name(enum proto_status status);	/* "NOT_FOUND", ...; "UNKNOWN" */
const char *proto_op_name(uint8_t op);	/* "GET", ... (reply bit ignored); "?" when unknown */

/* Header and field primitives, shared by the typed codecs below. */
int proto_header_read(struct proto_reader *r, struct proto_header *h);
/* Returns 1 with *f filled, 0 at the end of the reader, -1 when truncated. */
int proto_field_next(struct proto_reader *r, struct proto_field *f);

/*
 * Encoding. A message is built in place: begin writes the frame length
 * placeholder and header at the writer's current end (so several frames can
 * be appended to one buffer), fields follow, end patches the length. Any
 * write past the buffer latches w->overflow and proto_message_end() returns -1.
 * Encoders do not validate field contents; receivers do.
 */
void proto_message_begin(struct proto_writer *w, uint8_t op, uint16_t flags,
    uint32_t request_id, uint16_t status);
void proto_put_str(struct proto_writer *w, uint16_t tag, const char *s, size_t len);
void proto_put_cstr(struct proto_writer *w, uint16_t tag, const char *s);	/* NULL: omitted */
void proto_put_bytes(struct proto_writer *w, uint16_t tag, const void *p, size_t len);
void proto_put_u64(struct proto_writer *w, uint16_t tag, uint64_t v);
/* Returns a mark to pass to proto_nested_end. */
size_t proto_nested_begin(struct proto_writer *w, uint16_t tag);
void proto_nested_end(struct proto_writer *w, size_t mark);
/* Patches the length; *frame_len (may be NULL) gets the whole frame's length,
 * prefix included. Returns 0, or -1 on overflow or a body over PROTO_FRAME_MAX_BODY.
 * Calling it again on the same frame is harmless. */
int proto_message_end(struct proto_writer *w, size_t *frame_len);

/* A complete error reply frame, ended (MESSAGE carries the reason, sanitised
 * to valid UTF-8 and cut to PROTO_MAX_MESSAGE bytes at a character boundary;
 * NULL or "" omits it). Returns -1 on overflow or when status is OK. */
int proto_encode_error(struct proto_writer *w, uint8_t request_op, uint32_t request_id,
    enum proto_status status, const char *message);

/* A request frame from a filled proto_request (header.op, flags, request_id;
 * fields whose ptr is not NULL, in ascending tag order). */
int proto_request_encode(struct proto_writer *w, const struct proto_request *req, size_t *frame_len);

/*
 * Decoding a body (the bytes after the 4-byte length prefix).
 * proto_request_decode validates everything an agent must: version, op,
 * reserved flags, every field's type, size, uniqueness and that the op
 * allows it. On failure, req->header holds as much as was parsed (request id
 * and op when the header was complete) so the caller can answer; the field
 * views are cleared.
 * proto_reply_decode is the client's twin: as strict about the fields it knows
 * (which op's reply may carry them, types, sizes, required ones; an error
 * reply may carry only MESSAGE), it skips unknown ignorable tags and unknown
 * flags, and accepts any non-OK status. Its errors use BAD_REQUEST for a
 * malformed reply and UNSUPPORTED for another protocol version.
 */
int proto_request_decode(const uint8_t *body, size_t len, struct proto_request *req,
    struct proto_decode_error *err);
int proto_reply_decode(const uint8_t *body, size_t len, struct proto_reply *reply,
    struct proto_decode_error *err);
/* Walk a decoded reply's VERSION (DESCRIBE) and STAT (STATS) fields.
 * *cursor starts at 0. Returns 1 per item, 0 at the end, -1 on error. */
int proto_reply_next_version(const struct proto_reply *reply, size_t *cursor,
    struct proto_version_info *info);
int proto_reply_next_stat(const struct proto_reply *reply, size_t *cursor,
    struct proto_str *name, uint64_t *value);

#endif
