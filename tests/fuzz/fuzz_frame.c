/*
 * fuzz_frame: arbitrary bytes through the frame check and both message
 * decoders. Beyond "no crash", it checks what the codec promises: a decoded
 * request re-encodes to bytes that decode to the same request (and to the
 * very input when that was canonical), a decoded reply's repeated fields can
 * be walked, and any text given to proto_encode_error yields a reply the
 * client decoder accepts. A broken promise aborts, which both libFuzzer and
 * the replay driver report.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "fuzz.h"
#include "message.h"
#include "wire.h"

#define CHECK(cond) do {							\
	if (!(cond)) {								\
		fprintf(stderr, "fuzz_frame: %s:%d: check failed: %s\n",	\
		    __FILE__, __LINE__, #cond);					\
		abort();							\
	}									\
} while (0)

static bool
str_eq(struct proto_str a, struct proto_str b)
{
	if ((a.ptr == NULL) != (b.ptr == NULL) || a.len != b.len)
		return false;
	return a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0;
}

/* True when the body holds only request fields, in ascending tag order:
 * exactly what proto_request_encode writes. */
static bool
request_is_canonical(const uint8_t *body, size_t len)
{
	struct proto_reader r;
	struct proto_field f;
	unsigned last = 0;
	int rc;

	proto_reader_init(&r, body + PROTO_HEADER_LEN, len - PROTO_HEADER_LEN);
	while ((rc = proto_field_next(&r, &f)) == 1) {
		if (f.tag > PROTO_TAG_VERSION_ID || f.tag <= last)
			return false;
		last = f.tag;
	}
	return rc == 0;
}

static void
check_request(const uint8_t *body, size_t len)
{
	static uint8_t out1[PROTO_FRAME_PREFIX_LEN + PROTO_FRAME_MAX_BODY];
	static uint8_t out2[PROTO_FRAME_PREFIX_LEN + PROTO_FRAME_MAX_BODY];
	struct proto_request req, again;
	struct proto_decode_error err;
	struct proto_writer w;
	size_t len1, len2;

	if (proto_request_decode(body, len, &req, &err) != 0) {
		CHECK(err.status != PROTO_STATUS_OK);
		CHECK(memchr(err.message, '\0', sizeof(err.message)) != NULL);
		CHECK(req.secret_id.ptr == NULL && req.version_stage.ptr == NULL &&
		    req.version_id.ptr == NULL);
		return;
	}
	CHECK(req.header.version == PROTO_VERSION);
	CHECK(req.header.status == 0 && (req.header.flags & ~PROTO_REQUEST_FLAGS_KNOWN) == 0);
	/* REFRESH is a GET flag only. */
	CHECK(!(req.header.flags & PROTO_FLAG_REFRESH) || req.header.op == PROTO_OP_GET);
	if (req.header.op == PROTO_OP_GET || req.header.op == PROTO_OP_DESCRIBE)
		CHECK(req.secret_id.ptr != NULL && req.secret_id.len > 0 &&
		    req.secret_id.len <= PROTO_MAX_SECRET_ID);

	proto_writer_init(&w, out1, sizeof(out1));
	CHECK(proto_request_encode(&w, &req, &len1) == 0);
	CHECK(len1 <= len + PROTO_FRAME_PREFIX_LEN);
	CHECK(proto_request_decode(out1 + PROTO_FRAME_PREFIX_LEN, len1 - PROTO_FRAME_PREFIX_LEN,
	    &again, &err) == 0);
	CHECK(memcmp(&again.header, &req.header, sizeof(req.header)) == 0);
	CHECK(str_eq(again.secret_id, req.secret_id));
	CHECK(str_eq(again.version_stage, req.version_stage));
	CHECK(str_eq(again.version_id, req.version_id));
	proto_writer_init(&w, out2, sizeof(out2));
	CHECK(proto_request_encode(&w, &again, &len2) == 0);
	CHECK(len2 == len1 && memcmp(out1, out2, len1) == 0);
	if (request_is_canonical(body, len))
		CHECK(len1 == len + PROTO_FRAME_PREFIX_LEN &&
		    memcmp(out1 + PROTO_FRAME_PREFIX_LEN, body, len) == 0);
}

static void
check_reply(const uint8_t *body, size_t len)
{
	struct proto_version_info info;
	struct proto_decode_error err;
	struct proto_reply rep;
	struct proto_str name;
	uint64_t value;
	size_t cursor, n;
	int rc;

	if (proto_reply_decode(body, len, &rep, &err) != 0) {
		CHECK(err.status != PROTO_STATUS_OK);
		CHECK(rep.body == NULL);
		return;
	}
	CHECK(rep.header.op & PROTO_OP_REPLY);
	CHECK(rep.stage_count <= PROTO_MAX_STAGES);
	CHECK(rep.version_count <= PROTO_MAX_VERSIONS);
	if (rep.header.status == PROTO_STATUS_OK &&
	    rep.header.op == (PROTO_OP_GET | PROTO_OP_REPLY))
		CHECK((rep.secret_string != NULL) != (rep.secret_binary != NULL));
	for (cursor = 0, n = 0; (rc = proto_reply_next_version(&rep, &cursor, &info)) == 1; n++)
		CHECK(info.version_id.ptr != NULL && info.stage_count <= PROTO_MAX_STAGES);
	CHECK(rc == 0 && n == rep.version_count);
	for (cursor = 0, n = 0; (rc = proto_reply_next_stat(&rep, &cursor, &name, &value)) == 1; n++)
		CHECK(name.ptr != NULL && name.len > 0);
	CHECK(rc == 0 && n == rep.stat_count);
}

/* The input as an error text, in a buffer sized as the agent sizes it. */
static void
check_error_text(const uint8_t *data, size_t size)
{
	static char text[2 * PROTO_MAX_MESSAGE];
	uint8_t frame[PROTO_FRAME_PREFIX_LEN + PROTO_HEADER_LEN + PROTO_FIELD_HEADER_LEN +
	    PROTO_MAX_MESSAGE];
	struct proto_decode_error err;
	struct proto_reply rep;
	struct proto_writer w;
	size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1, len;
	enum proto_status status = (enum proto_status)(size % PROTO_STATUS_MAX + 1);

	memcpy(text, data, n);
	text[n] = '\0';
	proto_writer_init(&w, frame, sizeof(frame));
	CHECK(proto_encode_error(&w, PROTO_OP_GET, 0xabcdef01, status, text) == 0);
	CHECK(proto_frame_check(frame, w.len, PROTO_FRAME_MAX_BODY, &len) == PROTO_FRAME_READY);
	CHECK(proto_reply_decode(frame + PROTO_FRAME_PREFIX_LEN, len, &rep, &err) == 0);
	CHECK(rep.header.status == status && rep.header.request_id == 0xabcdef01);
	CHECK(rep.message.len <= PROTO_MAX_MESSAGE && rep.message.len <= strlen(text));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t body_len;

	/* A whole frame is decoded as such; anything else is tried as a bare body,
	 * so inputs need not get the prefix right to reach the decoders. */
	switch (proto_frame_check(data, size, PROTO_FRAME_MAX_BODY, &body_len)) {
	case PROTO_FRAME_READY:
		CHECK(body_len >= PROTO_HEADER_LEN && body_len <= size - PROTO_FRAME_PREFIX_LEN);
		check_request(data + PROTO_FRAME_PREFIX_LEN, body_len);
		check_reply(data + PROTO_FRAME_PREFIX_LEN, body_len);
		break;
	case PROTO_FRAME_TOO_LARGE:
		CHECK(body_len > PROTO_FRAME_MAX_BODY);
		/* fall through */
	default:
		if (size <= PROTO_FRAME_MAX_BODY) {
			check_request(data, size);
			check_reply(data, size);
		}
		break;
	}
	check_error_text(data, size);
	return 0;
}
