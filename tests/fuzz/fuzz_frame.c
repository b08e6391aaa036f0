/*
 * fuzz_frame: arbitrary bytes through the frame check and both message
 * decoders. Beyond "no crash", it checks what the codec promises: a decoded
 * request re-encodes to bytes that decode to the same request (and to the
 * very input when that was canonical), a decoded reply's repeated fields can
 * be walked, and any text given to smc_encode_error yields a reply the
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
str_eq(struct smc_str a, struct smc_str b)
{
	if ((a.ptr == NULL) != (b.ptr == NULL) || a.len != b.len)
		return false;
	return a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0;
}

/* True when the body holds only request fields, in ascending tag order:
 * exactly what smc_request_encode writes. */
static bool
request_is_canonical(const uint8_t *body, size_t len)
{
	struct smc_reader r;
	struct smc_field f;
	unsigned last = 0;
	int rc;

	smc_reader_init(&r, body + SMC_HEADER_LEN, len - SMC_HEADER_LEN);
	while ((rc = smc_field_next(&r, &f)) == 1) {
		if (f.tag > SMC_TAG_VERSION_ID || f.tag <= last)
			return false;
		last = f.tag;
	}
	return rc == 0;
}

static void
check_request(const uint8_t *body, size_t len)
{
	static uint8_t out1[SMC_FRAME_PREFIX_LEN + SMC_FRAME_MAX_BODY];
	static uint8_t out2[SMC_FRAME_PREFIX_LEN + SMC_FRAME_MAX_BODY];
	struct smc_request req, again;
	struct smc_decode_error err;
	struct smc_writer w;
	size_t len1, len2;

	if (smc_request_decode(body, len, &req, &err) != 0) {
		CHECK(err.status != SMC_STATUS_OK);
		CHECK(memchr(err.message, '\0', sizeof(err.message)) != NULL);
		CHECK(req.secret_id.ptr == NULL && req.version_stage.ptr == NULL &&
		    req.version_id.ptr == NULL);
		return;
	}
	CHECK(req.header.version == SMC_PROTO_VERSION);
	CHECK(req.header.status == 0 && (req.header.flags & ~SMC_REQUEST_FLAGS_KNOWN) == 0);
	/* REFRESH is a GET flag only. */
	CHECK(!(req.header.flags & SMC_FLAG_REFRESH) || req.header.op == SMC_OP_GET);
	if (req.header.op == SMC_OP_GET || req.header.op == SMC_OP_DESCRIBE)
		CHECK(req.secret_id.ptr != NULL && req.secret_id.len > 0 &&
		    req.secret_id.len <= SMC_MAX_SECRET_ID);

	smc_writer_init(&w, out1, sizeof(out1));
	CHECK(smc_request_encode(&w, &req, &len1) == 0);
	CHECK(len1 <= len + SMC_FRAME_PREFIX_LEN);
	CHECK(smc_request_decode(out1 + SMC_FRAME_PREFIX_LEN, len1 - SMC_FRAME_PREFIX_LEN,
	    &again, &err) == 0);
	CHECK(memcmp(&again.header, &req.header, sizeof(req.header)) == 0);
	CHECK(str_eq(again.secret_id, req.secret_id));
	CHECK(str_eq(again.version_stage, req.version_stage));
	CHECK(str_eq(again.version_id, req.version_id));
	smc_writer_init(&w, out2, sizeof(out2));
	CHECK(smc_request_encode(&w, &again, &len2) == 0);
	CHECK(len2 == len1 && memcmp(out1, out2, len1) == 0);
	if (request_is_canonical(body, len))
		CHECK(len1 == len + SMC_FRAME_PREFIX_LEN &&
		    memcmp(out1 + SMC_FRAME_PREFIX_LEN, body, len) == 0);
}

static void
check_reply(const uint8_t *body, size_t len)
{
	struct smc_version_info info;
	struct smc_decode_error err;
	struct smc_reply rep;
	struct smc_str name;
	uint64_t value;
	size_t cursor, n;
	int rc;

	if (smc_reply_decode(body, len, &rep, &err) != 0) {
		CHECK(err.status != SMC_STATUS_OK);
		CHECK(rep.body == NULL);
		return;
	}
	CHECK(rep.header.op & SMC_OP_REPLY);
	CHECK(rep.stage_count <= SMC_MAX_STAGES);
	CHECK(rep.version_count <= SMC_MAX_VERSIONS);
	if (rep.header.status == SMC_STATUS_OK &&
	    rep.header.op == (SMC_OP_GET | SMC_OP_REPLY))
		CHECK((rep.secret_string != NULL) != (rep.secret_binary != NULL));
	for (cursor = 0, n = 0; (rc = smc_reply_next_version(&rep, &cursor, &info)) == 1; n++)
		CHECK(info.version_id.ptr != NULL && info.stage_count <= SMC_MAX_STAGES);
	CHECK(rc == 0 && n == rep.version_count);
	for (cursor = 0, n = 0; (rc = smc_reply_next_stat(&rep, &cursor, &name, &value)) == 1; n++)
		CHECK(name.ptr != NULL && name.len > 0);
	CHECK(rc == 0 && n == rep.stat_count);
}

/* The input as an error text, in a buffer sized as the agent sizes it. */
static void
check_error_text(const uint8_t *data, size_t size)
{
	static char text[2 * SMC_MAX_MESSAGE];
	uint8_t frame[SMC_FRAME_PREFIX_LEN + SMC_HEADER_LEN + SMC_FIELD_HEADER_LEN +
	    SMC_MAX_MESSAGE];
	struct smc_decode_error err;
	struct smc_reply rep;
	struct smc_writer w;
	size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1, len;
	enum smc_status status = (enum smc_status)(size % SMC_STATUS_MAX + 1);

	memcpy(text, data, n);
	text[n] = '\0';
	smc_writer_init(&w, frame, sizeof(frame));
	CHECK(smc_encode_error(&w, SMC_OP_GET, 0xabcdef01, status, text) == 0);
	CHECK(smc_frame_check(frame, w.len, SMC_FRAME_MAX_BODY, &len) == SMC_FRAME_READY);
	CHECK(smc_reply_decode(frame + SMC_FRAME_PREFIX_LEN, len, &rep, &err) == 0);
	CHECK(rep.header.status == status && rep.header.request_id == 0xabcdef01);
	CHECK(rep.message.len <= SMC_MAX_MESSAGE && rep.message.len <= strlen(text));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t body_len;

	/* A whole frame is decoded as such; anything else is tried as a bare body,
	 * so inputs need not get the prefix right to reach the decoders. */
	switch (smc_frame_check(data, size, SMC_FRAME_MAX_BODY, &body_len)) {
	case SMC_FRAME_READY:
		CHECK(body_len >= SMC_HEADER_LEN && body_len <= size - SMC_FRAME_PREFIX_LEN);
		check_request(data + SMC_FRAME_PREFIX_LEN, body_len);
		check_reply(data + SMC_FRAME_PREFIX_LEN, body_len);
		break;
	case SMC_FRAME_TOO_LARGE:
		CHECK(body_len > SMC_FRAME_MAX_BODY);
		/* fall through */
	default:
		if (size <= SMC_FRAME_MAX_BODY) {
			check_request(data, size);
			check_reply(data, size);
		}
		break;
	}
	check_error_text(data, size);
	return 0;
}
