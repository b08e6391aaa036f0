/*
 * message: encoding and validating smcache protocol messages (see message.h
 * and proto/PROTOCOL.md).
 *
 * Every field a message may carry is described once, in `specs` below: its
 * type, size limit, how often it may repeat and where it may appear. The
 * decoders walk a body with a bounded reader and check each field against
 * that table before looking at its value, so the per-op code only stores
 * views and checks which fields are required.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "frame.h"
#include "message.h"
#include "utf8.h"
#include "wire.h"

#define ARRAY_LEN(a)	(sizeof(a) / sizeof((a)[0]))

/* Where a field may appear: a request of an op, a successful reply to an op,
 * any error reply, or inside a nested field. Ops are 1..5, so they fit. */
#define IN_REQ(op)	(1u << (op))
#define IN_REP(op)	(1u << (8 + (op)))
#define IN_ERROR	(1u << 16)
#define IN_VERSION	(1u << 17)
#define IN_STAT		(1u << 18)
#define IN_ANY_REPLY	(IN_REP(PROTO_OP_PING) | IN_REP(PROTO_OP_GET) | \
			 IN_REP(PROTO_OP_DESCRIBE) | IN_REP(PROTO_OP_STATS) | \
			 IN_REP(PROTO_OP_HEALTH) | IN_ERROR)

struct field_spec {
	uint16_t tag;
	const char *name;
	enum proto_field_type type;
	uint32_t max_len;	/* strings and bytes; 0 for nested: bounded by the frame */
	uint16_t max_count;	/* in a reply or nested field; 0: bounded by the frame.
				 * A request carries every field at most once. */
	bool nonempty;		/* an empty string is malformed */
	uint32_t where;
};

/* Indexed by tag - 1 (tags are dense from 1), so a field's spec is one load. */
#define SPEC(tag)	[(tag) - 1] = { (tag)
static const struct field_spec specs[] = {
	SPEC(PROTO_TAG_SECRET_ID), "SECRET_ID", PROTO_TYPE_STRING, PROTO_MAX_SECRET_ID, 1, true,
	    IN_REQ(PROTO_OP_GET) | IN_REQ(PROTO_OP_DESCRIBE) },
	SPEC(PROTO_TAG_VERSION_STAGE), "VERSION_STAGE", PROTO_TYPE_STRING, PROTO_MAX_VERSION_STAGE,
	    PROTO_MAX_STAGES, true, IN_REQ(PROTO_OP_GET) | IN_REP(PROTO_OP_GET) | IN_VERSION },
	SPEC(PROTO_TAG_VERSION_ID), "VERSION_ID", PROTO_TYPE_STRING, PROTO_MAX_VERSION_ID, 1, true,
	    IN_REQ(PROTO_OP_GET) | IN_REP(PROTO_OP_GET) | IN_VERSION },
	SPEC(PROTO_TAG_ARN), "ARN", PROTO_TYPE_STRING, PROTO_MAX_ARN, 1, true,
	    IN_REP(PROTO_OP_GET) | IN_REP(PROTO_OP_DESCRIBE) },
	SPEC(PROTO_TAG_NAME), "NAME", PROTO_TYPE_STRING, PROTO_MAX_NAME, 1, true,
	    IN_REP(PROTO_OP_GET) | IN_REP(PROTO_OP_DESCRIBE) },
	SPEC(PROTO_TAG_SECRET_STRING), "SECRET_STRING", PROTO_TYPE_BYTES, PROTO_MAX_VALUE, 1, false,
	    IN_REP(PROTO_OP_GET) },
	SPEC(PROTO_TAG_SECRET_BINARY), "SECRET_BINARY", PROTO_TYPE_BYTES, PROTO_MAX_VALUE, 1, false,
	    IN_REP(PROTO_OP_GET) },
	SPEC(PROTO_TAG_CREATED_DATE), "CREATED_DATE", PROTO_TYPE_U64, 8, 1, false,
	    IN_REP(PROTO_OP_GET) | IN_REP(PROTO_OP_DESCRIBE) | IN_VERSION },
	SPEC(PROTO_TAG_MESSAGE), "MESSAGE", PROTO_TYPE_STRING, PROTO_MAX_MESSAGE, 1, false,
	    IN_ANY_REPLY },
	SPEC(PROTO_TAG_DESCRIPTION), "DESCRIPTION", PROTO_TYPE_STRING, PROTO_MAX_DESCRIPTION, 1, false,
	    IN_REP(PROTO_OP_DESCRIBE) },
	SPEC(PROTO_TAG_LAST_CHANGED_DATE), "LAST_CHANGED_DATE", PROTO_TYPE_U64, 8, 1, false,
	    IN_REP(PROTO_OP_DESCRIBE) },
	SPEC(PROTO_TAG_DELETED_DATE), "DELETED_DATE", PROTO_TYPE_U64, 8, 1, false,
	    IN_REP(PROTO_OP_DESCRIBE) },
	SPEC(PROTO_TAG_VERSION), "VERSION", PROTO_TYPE_NESTED, 0, PROTO_MAX_VERSIONS, false,
	    IN_REP(PROTO_OP_DESCRIBE) },
	SPEC(PROTO_TAG_STAT), "STAT", PROTO_TYPE_NESTED, 0, 0, false, IN_REP(PROTO_OP_STATS) },
	SPEC(PROTO_TAG_STAT_NAME), "STAT_NAME", PROTO_TYPE_STRING, PROTO_MAX_STAT_NAME, 1, true, IN_STAT },
	SPEC(PROTO_TAG_STAT_VALUE), "STAT_VALUE", PROTO_TYPE_U64, 8, 1, false, IN_STAT },
	SPEC(PROTO_TAG_AGENT_VERSION), "AGENT_VERSION", PROTO_TYPE_STRING, PROTO_MAX_AGENT_VERSION, 1, true,
	    IN_REP(PROTO_OP_PING) },
	SPEC(PROTO_TAG_READY), "READY", PROTO_TYPE_U64, 8, 1, false, IN_REP(PROTO_OP_HEALTH) },
	SPEC(PROTO_TAG_HEALTH_REASON), "HEALTH_REASON", PROTO_TYPE_STRING, PROTO_MAX_REASON,
	    PROTO_MAX_REASONS, true, IN_REP(PROTO_OP_HEALTH) },
	SPEC(PROTO_TAG_CREDENTIALS), "CREDENTIALS", PROTO_TYPE_U64, 8, 1, false, IN_REP(PROTO_OP_HEALTH) },
	SPEC(PROTO_TAG_STARTED_DATE), "STARTED_DATE", PROTO_TYPE_U64, 8, 1, false,
	    IN_REP(PROTO_OP_HEALTH) },
	SPEC(PROTO_TAG_LAST_SUCCESS_DATE), "LAST_SUCCESS_DATE", PROTO_TYPE_U64, 8, 1, false,
	    IN_REP(PROTO_OP_HEALTH) },
	SPEC(PROTO_TAG_LAST_FAILURE_DATE), "LAST_FAILURE_DATE", PROTO_TYPE_U64, 8, 1, false,
	    IN_REP(PROTO_OP_HEALTH) },
	SPEC(PROTO_TAG_LAST_FAILURE_STATUS), "LAST_FAILURE_STATUS", PROTO_TYPE_U64, 8, 1, false,
	    IN_REP(PROTO_OP_HEALTH) },
	SPEC(PROTO_TAG_BREAKER_OPEN), "BREAKER_OPEN", PROTO_TYPE_U64, 8, 1, false,
	    IN_REP(PROTO_OP_HEALTH) },
	SPEC(PROTO_TAG_PREFETCH_PENDING), "PREFETCH_PENDING", PROTO_TYPE_U64, 8, 1, false,
	    IN_REP(PROTO_OP_HEALTH) },
	SPEC(PROTO_TAG_CACHE_SECRETS), "CACHE_SECRETS", PROTO_TYPE_U64, 8, 1, false,
	    IN_REP(PROTO_OP_HEALTH) },
	SPEC(PROTO_TAG_CACHE_VERSIONS), "CACHE_VERSIONS", PROTO_TYPE_U64, 8, 1, false,
	    IN_REP(PROTO_OP_HEALTH) },
};
#undef SPEC

/* Where a field list is being decoded, for the table checks and messages. */
enum scope_kind { SCOPE_REQUEST, SCOPE_REPLY, SCOPE_ERROR, SCOPE_NESTED };

struct scope {
	enum scope_kind kind;
	uint32_t where;		/* the IN_* bit */
	uint8_t op;		/* requests and replies */
	const char *nest;	/* nested: the enclosing field's name */
	const char *suffix;	/* for messages: " inside VERSION" when nested, else "" */
	uint16_t counts[ARRAY_LEN(specs)];
};

static const char *const status_names[] = {
	[PROTO_STATUS_OK] = "OK",
	[PROTO_STATUS_NOT_FOUND] = "NOT_FOUND",
	[PROTO_STATUS_ACCESS_DENIED] = "ACCESS_DENIED",
	[PROTO_STATUS_BAD_REQUEST] = "BAD_REQUEST",
	[PROTO_STATUS_UPSTREAM_UNAVAILABLE] = "UPSTREAM_UNAVAILABLE",
	[PROTO_STATUS_INTERNAL] = "INTERNAL",
	[PROTO_STATUS_UNSUPPORTED] = "UNSUPPORTED",
	[PROTO_STATUS_TOO_LARGE] = "TOO_LARGE",
	[PROTO_STATUS_LIMIT_EXCEEDED] = "LIMIT_EXCEEDED",
	[PROTO_STATUS_UPSTREAM_AUTH] = "UPSTREAM_AUTH",
};

const char *
proto_status_name(enum proto_status status)
{
	if ((unsigned)status >= ARRAY_LEN(status_names) || status_names[status] == NULL)
		return "UNKNOWN";
	return status_names[status];
}

const char *
proto_op_name(uint8_t op)
{
	switch (op & ~PROTO_OP_REPLY) {
	case PROTO_OP_PING:
		return "PING";
	case PROTO_OP_GET:
		return "GET";
	case PROTO_OP_DESCRIBE:
		return "DESCRIBE";
	case PROTO_OP_STATS:
		return "STATS";
	case PROTO_OP_HEALTH:
		return "HEALTH";
	}
	return "?";
}

static bool
op_known(uint8_t op)
{
	return op >= PROTO_OP_PING && op <= PROTO_OP_MAX;
}

/* The spec for a tag, or NULL when unknown. The tag check also covers a gap
 * in the table (an all-zero entry), should one ever be left. */
static inline const struct field_spec *
spec_find(uint16_t tag)
{
	size_t i = (size_t)tag - 1;	/* tag 0 wraps to SIZE_MAX: unknown */

	if (i >= ARRAY_LEN(specs) || specs[i].tag != tag)
		return NULL;
	return &specs[i];
}

static const char *
tag_name(uint16_t tag)
{
	const struct field_spec *s = spec_find(tag);

	return s != NULL ? s->name : "?";
}

/* Messages are formatted only here, on the way out: the success path never
 * touches *err (cold keeps this out of the decoders' hot code). */
static int __attribute__((format(printf, 3, 4), cold))
fail(struct proto_decode_error *err, enum proto_status status, const char *fmt, ...)
{
	va_list ap;

	err->status = status;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * Length of the leading run of bytes in 0x01..0x7f: text that needs neither
 * the NUL search nor the UTF-8 decoder. Eight bytes at a time: for bytes of
 * 0x01..0x7f, neither the byte nor the byte minus one (no borrow can occur
 * then) has the high bit set; a 0x00 or a byte >= 0x80 sets it in one of the
 * two, and the byte loop finds where.
 */
static size_t
ascii_prefix_len(const uint8_t *p, size_t len)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	uint64_t v;
	size_t i = 0;

	for (; len - i >= 8; i += 8) {
		memcpy(&v, p + i, 8);	/* unaligned load */
		if (((v | (v - ones)) & highs) != 0)
			break;
	}
	while (i < len && p[i] != 0 && p[i] < 0x80)
		i++;
	return i;
}

static int
check_value(const struct field_spec *s, const struct proto_field *f, const struct scope *sc,
    struct proto_decode_error *err)
{
	size_t i, n;

	switch (s->type) {
	case PROTO_TYPE_U64:
		if (f->len != 8)
			return fail(err, PROTO_STATUS_BAD_REQUEST,
			    "field %s%s must be 8 bytes, not %u", s->name, sc->suffix,
			    (unsigned)f->len);
		return 0;
	case PROTO_TYPE_BYTES:
	case PROTO_TYPE_STRING:
		if (f->len > s->max_len)
			return fail(err, PROTO_STATUS_BAD_REQUEST,
			    "field %s%s too long (%u bytes, max %u)", s->name, sc->suffix,
			    (unsigned)f->len, (unsigned)s->max_len);
		break;
	case PROTO_TYPE_NESTED:
		return 0;	/* the caller decodes the content */
	}
	if (s->type != PROTO_TYPE_STRING)
		return 0;
	if (s->nonempty && f->len == 0)
		return fail(err, PROTO_STATUS_BAD_REQUEST, "field %s%s is empty", s->name,
		    sc->suffix);
	/* Names and labels are nearly always plain ASCII: done in one pass. */
	if ((i = ascii_prefix_len(f->value, f->len)) == f->len)
		return 0;
	/* Otherwise the full checks, NUL first (over the whole value, as its
	 * message takes precedence); the prefix is valid UTF-8 already. */
	if (memchr(f->value, 0, f->len) != NULL)
		return fail(err, PROTO_STATUS_BAD_REQUEST, "field %s%s contains a NUL byte",
		    s->name, sc->suffix);
	for (; i < f->len; i += n) {
		if ((n = proto_utf8_seq_len(f->value + i, f->len - i)) == 0)
			return fail(err, PROTO_STATUS_BAD_REQUEST,
			    "field %s%s is not valid UTF-8 (byte %zu)", s->name, sc->suffix, i);
	}
	return 0;
}

/* A field's value runs past the end. Out of line: its buffer would cost the
 * hot caller a stack-protector check. */
static int __attribute__((cold, noinline))
fail_truncated(const struct scope *sc, const struct field_spec *s, const struct proto_field *f,
    size_t left, struct proto_decode_error *err)
{
	char tagbuf[8];

	snprintf(tagbuf, sizeof(tagbuf), "0x%04x", f->tag);
	return fail(err, PROTO_STATUS_BAD_REQUEST, "field %s%s truncated (length %u, %zu bytes left)",
	    s != NULL ? s->name : tagbuf, sc->suffix, (unsigned)f->len, left);
}

/*
 * The next field of a list that the table allows in this scope, its value
 * checked (nested content excepted). Unknown ignorable tags are skipped.
 * Returns 1 with *f and *specp set, 0 at the end, -1 with *err set.
 */
static int
next_field(struct proto_reader *r, struct scope *sc, struct proto_field *f,
    const struct field_spec **specp, struct proto_decode_error *err)
{
	const struct field_spec *s;
	const uint8_t *value;
	size_t left, idx;
	unsigned max;

	for (;;) {
		left = proto_reader_remaining(r);
		if (left == 0)
			return 0;
		if (left < PROTO_FIELD_HEADER_LEN)
			return fail(err, PROTO_STATUS_BAD_REQUEST,
			    "truncated field header%s (%zu bytes left, need %d)",
			    sc->suffix, left, PROTO_FIELD_HEADER_LEN);
		(void)proto_read_u16(r, &f->tag);
		(void)proto_read_u32(r, &f->len);
		s = spec_find(f->tag);
		if (s == NULL && !(f->tag & PROTO_TAG_IGNORABLE))
			return fail(err, PROTO_STATUS_BAD_REQUEST, "unknown field tag 0x%04x%s",
			    f->tag, sc->suffix);
		if (proto_read_bytes(r, f->len, &value) != 0)
			return fail_truncated(sc, s, f, proto_reader_remaining(r), err);
		f->value = value;
		if (s != NULL)
			break;
	}
	idx = (size_t)(s - specs);
	if (!(s->where & sc->where)) {
		switch (sc->kind) {
		case SCOPE_REQUEST:
			return fail(err, PROTO_STATUS_BAD_REQUEST, "field %s not valid for %s",
			    s->name, proto_op_name(sc->op));
		case SCOPE_REPLY:
			return fail(err, PROTO_STATUS_BAD_REQUEST, "field %s not valid in a %s reply",
			    s->name, proto_op_name(sc->op));
		case SCOPE_ERROR:
			return fail(err, PROTO_STATUS_BAD_REQUEST,
			    "field %s not valid in an error reply", s->name);
		case SCOPE_NESTED:
			return fail(err, PROTO_STATUS_BAD_REQUEST, "field %s not valid inside %s",
			    s->name, sc->nest);
		}
	}
	max = sc->kind == SCOPE_REQUEST ? 1 : s->max_count;
	if (max != 0 && sc->counts[idx] >= max) {
		if (max == 1)
			return fail(err, PROTO_STATUS_BAD_REQUEST, "duplicate field %s%s", s->name,
			    sc->suffix);
		return fail(err, PROTO_STATUS_BAD_REQUEST, "too many %s fields%s (max %u)", s->name,
		    sc->suffix, max);
	}
	if (check_value(s, f, sc, err) != 0)
		return -1;
	if (sc->counts[idx] < UINT16_MAX)
		sc->counts[idx]++;
	*specp = s;
	return 1;
}

/* Arguments for scope_init's nest and suffix: the suffix is built at compile
 * time, so no message needs a buffer (nor the decoders a snprintf per field). */
#define TOP_LEVEL	NULL, ""
#define NESTED_IN(name)	name, " inside " name

static void
scope_init(struct scope *sc, enum scope_kind kind, uint32_t where, uint8_t op, const char *nest,
    const char *suffix)
{
	memset(sc, 0, sizeof(*sc));
	sc->kind = kind;
	sc->where = where;
	sc->op = op;
	sc->nest = nest;
	sc->suffix = suffix;
}

static bool
seen(const struct scope *sc, uint16_t tag)
{
	const struct field_spec *s = spec_find(tag);

	return s != NULL && sc->counts[s - specs] > 0;
}

static int
require(const struct scope *sc, uint16_t tag, struct proto_decode_error *err)
{
	if (seen(sc, tag))
		return 0;
	return fail(err, PROTO_STATUS_BAD_REQUEST, "missing field %s%s", tag_name(tag),
	    sc->suffix);
}

static struct proto_str
str_view(const struct proto_field *f)
{
	struct proto_str s = { (const char *)f->value, f->len };

	return s;
}

/* The decoders call this, not proto_header_read: an exported function of a
 * -fPIC library is not inlined (it could be interposed). */
static inline int
header_read(struct proto_reader *r, struct proto_header *h)
{
	if (proto_reader_remaining(r) < PROTO_HEADER_LEN)
		return -1;
	(void)proto_read_u8(r, &h->version);
	(void)proto_read_u8(r, &h->op);
	(void)proto_read_u16(r, &h->flags);
	(void)proto_read_u32(r, &h->request_id);
	(void)proto_read_u16(r, &h->status);
	return 0;
}

int
proto_header_read(struct proto_reader *r, struct proto_header *h)
{
	return header_read(r, h);
}

int
proto_field_next(struct proto_reader *r, struct proto_field *f)
{
	size_t start = r->off;
	const uint8_t *value;

	if (proto_reader_remaining(r) == 0)
		return 0;
	if (proto_read_u16(r, &f->tag) != 0 || proto_read_u32(r, &f->len) != 0 ||
	    proto_read_bytes(r, f->len, &value) != 0) {
		r->off = start;
		return -1;
	}
	f->value = value;
	return 1;
}

/* ---- encoding ---------------------------------------------------------------------- */

void
proto_message_begin(struct proto_writer *w, uint8_t op, uint16_t flags, uint32_t request_id,
    uint16_t status)
{
	w->frame_start = w->len;
	proto_write_u32(w, 0);	/* patched by proto_message_end */
	proto_write_u8(w, PROTO_VERSION);
	proto_write_u8(w, op);
	proto_write_u16(w, flags);
	proto_write_u32(w, request_id);
	proto_write_u16(w, status);
}

void
proto_put_bytes(struct proto_writer *w, uint16_t tag, const void *p, size_t len)
{
	if (len > UINT32_MAX) {
		w->overflow = 1;
		return;
	}
	proto_write_u16(w, tag);
	proto_write_u32(w, (uint32_t)len);
	proto_write_bytes(w, p, len);
}

void
proto_put_str(struct proto_writer *w, uint16_t tag, const char *s, size_t len)
{
	proto_put_bytes(w, tag, s, len);
}

void
proto_put_cstr(struct proto_writer *w, uint16_t tag, const char *s)
{
	if (s != NULL)
		proto_put_bytes(w, tag, s, strlen(s));
}

void
proto_put_u64(struct proto_writer *w, uint16_t tag, uint64_t v)
{
	proto_write_u16(w, tag);
	proto_write_u32(w, 8);
	proto_write_u64(w, v);
}

size_t
proto_nested_begin(struct proto_writer *w, uint16_t tag)
{
	proto_write_u16(w, tag);
	proto_write_u32(w, 0);	/* patched by proto_nested_end */
	return w->len;
}

void
proto_nested_end(struct proto_writer *w, size_t mark)
{
	if (w->overflow)
		return;
	if (mark < w->frame_start + PROTO_FRAME_PREFIX_LEN + PROTO_HEADER_LEN + PROTO_FIELD_HEADER_LEN ||
	    mark > w->len || w->len - mark > UINT32_MAX) {
		w->overflow = 1;	/* a mark from another frame: refuse to corrupt it */
		return;
	}
	proto_store_u32(w->data + mark - 4, (uint32_t)(w->len - mark));
}

int
proto_message_end(struct proto_writer *w, size_t *frame_len)
{
	size_t body;

	if (w->overflow || w->len < w->frame_start + PROTO_FRAME_PREFIX_LEN + PROTO_HEADER_LEN)
		return -1;
	body = w->len - w->frame_start - PROTO_FRAME_PREFIX_LEN;
	if (body > PROTO_FRAME_MAX_BODY)
		return -1;
	proto_store_u32(w->data + w->frame_start, (uint32_t)body);
	if (frame_len != NULL)
		*frame_len = body + PROTO_FRAME_PREFIX_LEN;
	return 0;
}

int
proto_encode_error(struct proto_writer *w, uint8_t request_op, uint32_t request_id,
    enum proto_status status, const char *message)
{
	uint8_t text[PROTO_MAX_MESSAGE];
	const uint8_t *m = (const uint8_t *)message;
	size_t len = 0, left, n;

	if (status == PROTO_STATUS_OK)
		return -1;
	proto_message_begin(w, request_op | PROTO_OP_REPLY, 0, request_id, (uint16_t)status);
	if (message != NULL && *message != '\0') {
		/* Whatever the caller formatted, the receiver must be able to decode it. */
		left = strlen(message);
		while (left > 0) {
			n = proto_utf8_seq_len(m, left);
			if (len + (n == 0 ? 1 : n) > sizeof(text))
				break;
			if (n == 0) {
				text[len++] = '?';
				n = 1;
			} else {
				memcpy(text + len, m, n);
				len += n;
			}
			m += n;
			left -= n;
		}
		proto_put_bytes(w, PROTO_TAG_MESSAGE, text, len);
	}
	return proto_message_end(w, NULL);
}

int
proto_request_encode(struct proto_writer *w, const struct proto_request *req, size_t *frame_len)
{
	proto_message_begin(w, req->header.op, req->header.flags, req->header.request_id, 0);
	if (req->secret_id.ptr != NULL)
		proto_put_str(w, PROTO_TAG_SECRET_ID, req->secret_id.ptr, req->secret_id.len);
	if (req->version_stage.ptr != NULL)
		proto_put_str(w, PROTO_TAG_VERSION_STAGE, req->version_stage.ptr,
		    req->version_stage.len);
	if (req->version_id.ptr != NULL)
		proto_put_str(w, PROTO_TAG_VERSION_ID, req->version_id.ptr, req->version_id.len);
	return proto_message_end(w, frame_len);
}

/* ---- decoding ---------------------------------------------------------------------- */

/* flatten: the agent's per-request path, so the field walk and checks are
 * inlined here (the reply decoders share them out of line). */
int __attribute__((flatten))
proto_request_decode(const uint8_t *body, size_t len, struct proto_request *req,
    struct proto_decode_error *err)
{
	const struct field_spec *s;
	struct proto_header *h = &req->header;
	struct proto_reader r;
	struct proto_field f;
	struct scope sc;
	int rc;

	memset(req, 0, sizeof(*req));	/* *err is written only on failure (fail()) */
	proto_reader_init(&r, body, len);
	if (header_read(&r, h) != 0) {
		memset(h, 0, sizeof(*h));
		return fail(err, PROTO_STATUS_BAD_REQUEST, "truncated header (%zu bytes, need %d)",
		    len, PROTO_HEADER_LEN);
	}
	if (h->version != PROTO_VERSION)
		return fail(err, PROTO_STATUS_UNSUPPORTED,
		    "protocol version %u not supported (this agent speaks %d)",
		    h->version, PROTO_VERSION);
	if (h->op & PROTO_OP_REPLY)
		return fail(err, PROTO_STATUS_BAD_REQUEST, "op 0x%02x has the reply bit set",
		    h->op);
	if (!op_known(h->op))
		return fail(err, PROTO_STATUS_UNSUPPORTED, "op %u not supported", h->op);
	if (h->status != PROTO_STATUS_OK)
		return fail(err, PROTO_STATUS_BAD_REQUEST, "nonzero status %u in a request",
		    h->status);
	if (h->flags & ~PROTO_REQUEST_FLAGS_KNOWN)
		return fail(err, PROTO_STATUS_BAD_REQUEST, "reserved flags 0x%04x set",
		    (unsigned)(h->flags & ~PROTO_REQUEST_FLAGS_KNOWN));
	if ((h->flags & PROTO_FLAG_REFRESH) && h->op != PROTO_OP_GET)
		return fail(err, PROTO_STATUS_BAD_REQUEST, "flag REFRESH not valid for %s",
		    proto_op_name(h->op));

	scope_init(&sc, SCOPE_REQUEST, IN_REQ(h->op), h->op, TOP_LEVEL);
	while ((rc = next_field(&r, &sc, &f, &s, err)) == 1) {
		/* f.tag == s->tag here; once next_field is inlined, GCC cannot see
		 * that s is always set on this path and would warn about it. */
		switch (f.tag) {
		case PROTO_TAG_SECRET_ID:
			req->secret_id = str_view(&f);
			break;
		case PROTO_TAG_VERSION_STAGE:
			req->version_stage = str_view(&f);
			break;
		case PROTO_TAG_VERSION_ID:
			req->version_id = str_view(&f);
			break;
		}
	}
	if (rc < 0)
		goto fail;
	if ((h->op == PROTO_OP_GET || h->op == PROTO_OP_DESCRIBE) &&
	    require(&sc, PROTO_TAG_SECRET_ID, err) != 0)
		goto fail;
	return 0;
fail:
	memset(&req->secret_id, 0, sizeof(req->secret_id));
	memset(&req->version_stage, 0, sizeof(req->version_stage));
	memset(&req->version_id, 0, sizeof(req->version_id));
	return -1;
}

/* VERSION content: VERSION_ID, VERSION_STAGE* (up to PROTO_MAX_STAGES), CREATED_DATE?. */
static int
decode_version(const uint8_t *p, size_t len, struct proto_version_info *info,
    struct proto_decode_error *err)
{
	const struct field_spec *s;
	struct proto_reader r;
	struct proto_field f;
	struct scope sc;
	int rc;

	memset(info, 0, sizeof(*info));
	proto_reader_init(&r, p, len);
	scope_init(&sc, SCOPE_NESTED, IN_VERSION, 0, NESTED_IN("VERSION"));
	while ((rc = next_field(&r, &sc, &f, &s, err)) == 1) {
		switch (s->tag) {
		case PROTO_TAG_VERSION_ID:
			info->version_id = str_view(&f);
			break;
		case PROTO_TAG_VERSION_STAGE:
			info->stages[info->stage_count++] = str_view(&f);
			break;
		case PROTO_TAG_CREATED_DATE:
			info->created_ms = proto_load_u64(f.value);
			break;
		}
	}
	if (rc < 0 || require(&sc, PROTO_TAG_VERSION_ID, err) != 0)
		return -1;
	return 0;
}

/* STAT content: STAT_NAME and STAT_VALUE, both required. */
static int
decode_stat(const uint8_t *p, size_t len, struct proto_str *name, uint64_t *value,
    struct proto_decode_error *err)
{
	const struct field_spec *s;
	struct proto_reader r;
	struct proto_field f;
	struct scope sc;
	int rc;

	memset(name, 0, sizeof(*name));
	*value = 0;
	proto_reader_init(&r, p, len);
	scope_init(&sc, SCOPE_NESTED, IN_STAT, 0, NESTED_IN("STAT"));
	while ((rc = next_field(&r, &sc, &f, &s, err)) == 1) {
		if (s->tag == PROTO_TAG_STAT_NAME)
			*name = str_view(&f);
		else if (s->tag == PROTO_TAG_STAT_VALUE)
			*value = proto_load_u64(f.value);
	}
	if (rc < 0 || require(&sc, PROTO_TAG_STAT_NAME, err) != 0 ||
	    require(&sc, PROTO_TAG_STAT_VALUE, err) != 0)
		return -1;
	return 0;
}

/* Where a HEALTH u64 field goes in a decoded reply. */
static uint64_t *
health_slot(struct proto_reply *reply, uint16_t tag)
{
	switch (tag) {
	case PROTO_TAG_READY:			return &reply->ready;
	case PROTO_TAG_CREDENTIALS:		return &reply->credentials;
	case PROTO_TAG_STARTED_DATE:		return &reply->started_ms;
	case PROTO_TAG_LAST_SUCCESS_DATE:	return &reply->last_success_ms;
	case PROTO_TAG_LAST_FAILURE_DATE:	return &reply->last_failure_ms;
	case PROTO_TAG_LAST_FAILURE_STATUS:	return &reply->last_failure_status;
	case PROTO_TAG_BREAKER_OPEN:		return &reply->breaker_open;
	case PROTO_TAG_PREFETCH_PENDING:	return &reply->prefetch_pending;
	case PROTO_TAG_CACHE_SECRETS:		return &reply->cache_secrets;
	default:				return &reply->cache_versions;
	}
}

/* Which fields a successful reply to each op must carry. */
static int
reply_check_required(const struct scope *sc, uint8_t op, struct proto_decode_error *err)
{
	bool str, bin;

	switch (op) {
	case PROTO_OP_PING:
		return require(sc, PROTO_TAG_AGENT_VERSION, err);
	case PROTO_OP_GET:
		/* CREATED_DATE is left out when the source does not know it. */
		if (require(sc, PROTO_TAG_ARN, err) != 0 || require(sc, PROTO_TAG_NAME, err) != 0 ||
		    require(sc, PROTO_TAG_VERSION_ID, err) != 0)
			return -1;
		str = seen(sc, PROTO_TAG_SECRET_STRING);
		bin = seen(sc, PROTO_TAG_SECRET_BINARY);
		if (str && bin)
			return fail(err, PROTO_STATUS_BAD_REQUEST,
			    "GET reply carries both SECRET_STRING and SECRET_BINARY");
		if (!str && !bin)
			return fail(err, PROTO_STATUS_BAD_REQUEST,
			    "GET reply carries neither SECRET_STRING nor SECRET_BINARY");
		return 0;
	case PROTO_OP_DESCRIBE:
		if (require(sc, PROTO_TAG_ARN, err) != 0 || require(sc, PROTO_TAG_NAME, err) != 0)
			return -1;
		return 0;
	case PROTO_OP_HEALTH:
		return require(sc, PROTO_TAG_READY, err);
	}
	return 0;
}

int
proto_reply_decode(const uint8_t *body, size_t len, struct proto_reply *reply,
    struct proto_decode_error *err)
{
	const struct field_spec *s;
	struct proto_header *h = &reply->header, keep;
	struct proto_version_info info;
	struct proto_reader r;
	struct proto_field f;
	struct proto_str name;
	struct scope sc;
	uint64_t value;
	uint8_t op;
	int rc;

	memset(reply, 0, sizeof(*reply));
	proto_reader_init(&r, body, len);
	if (header_read(&r, h) != 0) {
		memset(h, 0, sizeof(*h));
		return fail(err, PROTO_STATUS_BAD_REQUEST,
		    "truncated reply header (%zu bytes, need %d)", len, PROTO_HEADER_LEN);
	}
	if (h->version != PROTO_VERSION)
		return fail(err, PROTO_STATUS_UNSUPPORTED,
		    "protocol version %u not supported (this client speaks %d)",
		    h->version, PROTO_VERSION);
	if (!(h->op & PROTO_OP_REPLY))
		return fail(err, PROTO_STATUS_BAD_REQUEST, "op 0x%02x is not a reply", h->op);
	op = h->op & ~PROTO_OP_REPLY;
	if (h->status != PROTO_STATUS_OK)
		scope_init(&sc, SCOPE_ERROR, IN_ERROR, op, TOP_LEVEL);
	else if (op_known(op))
		scope_init(&sc, SCOPE_REPLY, IN_REP(op), op, TOP_LEVEL);
	else
		return fail(err, PROTO_STATUS_UNSUPPORTED, "successful reply to unknown op %u", op);

	while ((rc = next_field(&r, &sc, &f, &s, err)) == 1) {
		switch (s->tag) {
		case PROTO_TAG_MESSAGE:
			reply->message = str_view(&f);
			break;
		case PROTO_TAG_ARN:
			reply->arn = str_view(&f);
			break;
		case PROTO_TAG_NAME:
			reply->name = str_view(&f);
			break;
		case PROTO_TAG_DESCRIPTION:
			reply->description = str_view(&f);
			break;
		case PROTO_TAG_AGENT_VERSION:
			reply->agent_version = str_view(&f);
			break;
		case PROTO_TAG_VERSION_ID:
			reply->version_id = str_view(&f);
			break;
		case PROTO_TAG_VERSION_STAGE:
			reply->stages[reply->stage_count++] = str_view(&f);
			break;
		case PROTO_TAG_SECRET_STRING:
			reply->secret_string = f.value;
			reply->secret_string_len = f.len;
			break;
		case PROTO_TAG_SECRET_BINARY:
			reply->secret_binary = f.value;
			reply->secret_binary_len = f.len;
			break;
		case PROTO_TAG_CREATED_DATE:
			reply->created_ms = proto_load_u64(f.value);
			break;
		case PROTO_TAG_LAST_CHANGED_DATE:
			reply->last_changed_ms = proto_load_u64(f.value);
			break;
		case PROTO_TAG_DELETED_DATE:
			reply->deleted_ms = proto_load_u64(f.value);
			break;
		case PROTO_TAG_VERSION:
			if (decode_version(f.value, f.len, &info, err) != 0)
				goto fail;
			reply->version_count++;
			break;
		case PROTO_TAG_STAT:
			if (decode_stat(f.value, f.len, &name, &value, err) != 0)
				goto fail;
			reply->stat_count++;
			break;
		case PROTO_TAG_HEALTH_REASON:
			reply->reasons[reply->reason_count++] = str_view(&f);
			break;
		case PROTO_TAG_READY:
		case PROTO_TAG_CREDENTIALS:
		case PROTO_TAG_STARTED_DATE:
		case PROTO_TAG_LAST_SUCCESS_DATE:
		case PROTO_TAG_LAST_FAILURE_DATE:
		case PROTO_TAG_LAST_FAILURE_STATUS:
		case PROTO_TAG_BREAKER_OPEN:
		case PROTO_TAG_PREFETCH_PENDING:
		case PROTO_TAG_CACHE_SECRETS:
		case PROTO_TAG_CACHE_VERSIONS:
			*health_slot(reply, s->tag) = proto_load_u64(f.value);
			break;
		}
	}
	if (rc < 0)
		goto fail;
	if (h->status == PROTO_STATUS_OK && reply_check_required(&sc, op, err) != 0)
		goto fail;
	reply->body = body;
	reply->body_len = len;
	return 0;
fail:
	keep = *h;
	memset(reply, 0, sizeof(*reply));
	reply->header = keep;
	return -1;
}

/* The next field with `tag` after *cursor in a decoded reply's body. */
static int
reply_next_tagged(const struct proto_reply *reply, size_t *cursor, uint16_t tag,
    struct proto_field *f)
{
	struct proto_reader r;
	size_t off = *cursor == 0 ? PROTO_HEADER_LEN : *cursor;
	int rc;

	if (reply->body == NULL || off < PROTO_HEADER_LEN || off > reply->body_len)
		return -1;
	proto_reader_init(&r, reply->body, reply->body_len);
	r.off = off;
	while ((rc = proto_field_next(&r, f)) == 1) {
		if (f->tag == tag) {
			*cursor = r.off;
			return 1;
		}
	}
	if (rc == 0)
		*cursor = reply->body_len;
	return rc;
}

int
proto_reply_next_version(const struct proto_reply *reply, size_t *cursor,
    struct proto_version_info *info)
{
	struct proto_decode_error err;
	struct proto_field f;
	int rc;

	if ((rc = reply_next_tagged(reply, cursor, PROTO_TAG_VERSION, &f)) != 1)
		return rc;
	return decode_version(f.value, f.len, info, &err) == 0 ? 1 : -1;
}

int
proto_reply_next_stat(const struct proto_reply *reply, size_t *cursor, struct proto_str *name,
    uint64_t *value)
{
	struct proto_decode_error err;
	struct proto_field f;
	int rc;

	if ((rc = reply_next_tagged(reply, cursor, PROTO_TAG_STAT, &f)) != 1)
		return rc;
	return decode_stat(f.value, f.len, name, value, &err) == 0 ? 1 : -1;
}
