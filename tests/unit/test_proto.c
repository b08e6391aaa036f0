/*
 * test_proto: the protocol codec (proto/message.c, frame.c, wire.c,
 * sockpath.c) against the golden vectors of proto/PROTOCOL.md, every
 * rejection path of the decoders, frame checks, writer overflow and the
 * default socket path.
 *
 * The golden vectors below are byte-identical copies of the `golden=` blocks
 * in proto/PROTOCOL.md; test_doc_vectors_match reads the document and fails
 * if the two ever differ.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "frame.h"
#include "message.h"
#include "sockpath.h"
#include "wire.h"

/* ---- golden vectors (keep identical to proto/PROTOCOL.md section 13) -------------- */

static const uint8_t golden_ping_request[] = {
	0x00, 0x00, 0x00, 0x0a, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
	0x00, 0x00,
};

static const uint8_t golden_ping_reply[] = {
	0x00, 0x00, 0x00, 0x1e, 0x01, 0x81, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
	0x00, 0x00, 0x00, 0x11, 0x00, 0x00, 0x00, 0x0e, 0x73, 0x6d, 0x63, 0x61,
	0x63, 0x68, 0x65, 0x64, 0x20, 0x30, 0x2e, 0x31, 0x2e, 0x30,
};

static const uint8_t golden_get_request[] = {
	0x00, 0x00, 0x00, 0x27, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
	0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07, 0x70, 0x72, 0x6f, 0x64,
	0x2f, 0x64, 0x62, 0x00, 0x02, 0x00, 0x00, 0x00, 0x0a, 0x41, 0x57, 0x53,
	0x43, 0x55, 0x52, 0x52, 0x45, 0x4e, 0x54,
};

static const uint8_t golden_get_reply[] = {
	0x00, 0x00, 0x00, 0xc4, 0x01, 0x82, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
	0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x43, 0x61, 0x72, 0x6e, 0x3a,
	0x61, 0x77, 0x73, 0x3a, 0x73, 0x65, 0x63, 0x72, 0x65, 0x74, 0x73, 0x6d,
	0x61, 0x6e, 0x61, 0x67, 0x65, 0x72, 0x3a, 0x75, 0x73, 0x2d, 0x65, 0x61,
	0x73, 0x74, 0x2d, 0x31, 0x3a, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
	0x38, 0x39, 0x30, 0x31, 0x32, 0x3a, 0x73, 0x65, 0x63, 0x72, 0x65, 0x74,
	0x3a, 0x70, 0x72, 0x6f, 0x64, 0x2f, 0x64, 0x62, 0x2d, 0x41, 0x62, 0x43,
	0x64, 0x45, 0x66, 0x00, 0x05, 0x00, 0x00, 0x00, 0x07, 0x70, 0x72, 0x6f,
	0x64, 0x2f, 0x64, 0x62, 0x00, 0x03, 0x00, 0x00, 0x00, 0x24, 0x61, 0x31,
	0x62, 0x32, 0x63, 0x33, 0x64, 0x34, 0x2d, 0x35, 0x36, 0x37, 0x38, 0x2d,
	0x39, 0x30, 0x61, 0x62, 0x2d, 0x63, 0x64, 0x65, 0x66, 0x2d, 0x45, 0x58,
	0x41, 0x4d, 0x50, 0x4c, 0x45, 0x31, 0x31, 0x31, 0x31, 0x31, 0x00, 0x02,
	0x00, 0x00, 0x00, 0x0a, 0x41, 0x57, 0x53, 0x43, 0x55, 0x52, 0x52, 0x45,
	0x4e, 0x54, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x01, 0x8b,
	0xcf, 0xe5, 0x68, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x16, 0x7b, 0x22,
	0x70, 0x61, 0x73, 0x73, 0x77, 0x6f, 0x72, 0x64, 0x22, 0x3a, 0x22, 0x68,
	0x75, 0x6e, 0x74, 0x65, 0x72, 0x32, 0x22, 0x7d,
};

static const uint8_t golden_error_not_found[] = {
	0x00, 0x00, 0x00, 0x2d, 0x01, 0x82, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
	0x00, 0x01, 0x00, 0x09, 0x00, 0x00, 0x00, 0x1d, 0x73, 0x65, 0x63, 0x72,
	0x65, 0x74, 0x20, 0x70, 0x72, 0x6f, 0x64, 0x2f, 0x6d, 0x69, 0x73, 0x73,
	0x69, 0x6e, 0x67, 0x20, 0x6e, 0x6f, 0x74, 0x20, 0x66, 0x6f, 0x75, 0x6e,
	0x64,
};

static const uint8_t golden_stats_request[] = {
	0x00, 0x00, 0x00, 0x0a, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04,
	0x00, 0x00,
};

static const uint8_t golden_stats_reply[] = {
	0x00, 0x00, 0x00, 0x54, 0x01, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04,
	0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x1e, 0x00, 0x0f, 0x00, 0x00,
	0x00, 0x0a, 0x63, 0x61, 0x63, 0x68, 0x65, 0x5f, 0x68, 0x69, 0x74, 0x73,
	0x00, 0x10, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x2a, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x20, 0x00, 0x0f, 0x00, 0x00,
	0x00, 0x0c, 0x63, 0x61, 0x63, 0x68, 0x65, 0x5f, 0x6d, 0x69, 0x73, 0x73,
	0x65, 0x73, 0x00, 0x10, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x07,
};

static const uint8_t golden_describe_request[] = {
	0x00, 0x00, 0x00, 0x17, 0x01, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
	0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07, 0x70, 0x72, 0x6f, 0x64,
	0x2f, 0x64, 0x62,
};

static const uint8_t golden_describe_reply[] = {
	0x00, 0x00, 0x00, 0xe1, 0x01, 0x83, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
	0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x43, 0x61, 0x72, 0x6e, 0x3a,
	0x61, 0x77, 0x73, 0x3a, 0x73, 0x65, 0x63, 0x72, 0x65, 0x74, 0x73, 0x6d,
	0x61, 0x6e, 0x61, 0x67, 0x65, 0x72, 0x3a, 0x75, 0x73, 0x2d, 0x65, 0x61,
	0x73, 0x74, 0x2d, 0x31, 0x3a, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
	0x38, 0x39, 0x30, 0x31, 0x32, 0x3a, 0x73, 0x65, 0x63, 0x72, 0x65, 0x74,
	0x3a, 0x70, 0x72, 0x6f, 0x64, 0x2f, 0x64, 0x62, 0x2d, 0x41, 0x62, 0x43,
	0x64, 0x45, 0x66, 0x00, 0x05, 0x00, 0x00, 0x00, 0x07, 0x70, 0x72, 0x6f,
	0x64, 0x2f, 0x64, 0x62, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x11, 0x44, 0x61,
	0x74, 0x61, 0x62, 0x61, 0x73, 0x65, 0x20, 0x70, 0x61, 0x73, 0x73, 0x77,
	0x6f, 0x72, 0x64, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x01,
	0x8b, 0xcf, 0xe5, 0x68, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x08, 0x00,
	0x00, 0x01, 0x8b, 0xcf, 0xed, 0x09, 0x20, 0x00, 0x0d, 0x00, 0x00, 0x00,
	0x48, 0x00, 0x03, 0x00, 0x00, 0x00, 0x24, 0x61, 0x31, 0x62, 0x32, 0x63,
	0x33, 0x64, 0x34, 0x2d, 0x35, 0x36, 0x37, 0x38, 0x2d, 0x39, 0x30, 0x61,
	0x62, 0x2d, 0x63, 0x64, 0x65, 0x66, 0x2d, 0x45, 0x58, 0x41, 0x4d, 0x50,
	0x4c, 0x45, 0x31, 0x31, 0x31, 0x31, 0x31, 0x00, 0x02, 0x00, 0x00, 0x00,
	0x0a, 0x41, 0x57, 0x53, 0x43, 0x55, 0x52, 0x52, 0x45, 0x4e, 0x54, 0x00,
	0x08, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68,
	0x00,
};

static const uint8_t golden_error_too_large[] = {
	0x00, 0x00, 0x00, 0x48, 0x01, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x07, 0x00, 0x09, 0x00, 0x00, 0x00, 0x38, 0x66, 0x72, 0x61, 0x6d,
	0x65, 0x20, 0x6f, 0x66, 0x20, 0x31, 0x30, 0x34, 0x38, 0x35, 0x37, 0x36,
	0x20, 0x62, 0x79, 0x74, 0x65, 0x73, 0x20, 0x65, 0x78, 0x63, 0x65, 0x65,
	0x64, 0x73, 0x20, 0x74, 0x68, 0x65, 0x20, 0x6c, 0x69, 0x6d, 0x69, 0x74,
	0x20, 0x6f, 0x66, 0x20, 0x32, 0x36, 0x32, 0x31, 0x34, 0x34, 0x20, 0x62,
	0x79, 0x74, 0x65, 0x73,
};

static const uint8_t golden_health_request[] = {
	0x00, 0x00, 0x00, 0x0a, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06,
	0x00, 0x00,
};

static const uint8_t golden_health_reply[] = {
	0x00, 0x00, 0x00, 0xc9, 0x01, 0x85, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06,
	0x00, 0x00, 0x00, 0x12, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x13, 0x00, 0x00, 0x00, 0x2d, 0x74, 0x68,
	0x65, 0x20, 0x75, 0x70, 0x73, 0x74, 0x72, 0x65, 0x61, 0x6d, 0x20, 0x72,
	0x65, 0x6a, 0x65, 0x63, 0x74, 0x65, 0x64, 0x20, 0x74, 0x68, 0x65, 0x20,
	0x61, 0x67, 0x65, 0x6e, 0x74, 0x27, 0x73, 0x20, 0x63, 0x72, 0x65, 0x64,
	0x65, 0x6e, 0x74, 0x69, 0x61, 0x6c, 0x73, 0x00, 0x14, 0x00, 0x00, 0x00,
	0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x15, 0x00,
	0x00, 0x00, 0x08, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, 0x00,
	0x16, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe6, 0x52,
	0x60, 0x00, 0x17, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x01, 0x8b, 0xcf,
	0xe7, 0x3c, 0xc0, 0x00, 0x18, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x09, 0x00, 0x19, 0x00, 0x00, 0x00, 0x08, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1a, 0x00, 0x00, 0x00,
	0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1b, 0x00,
	0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00,
	0x1c, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x03,
};

#define GOLDEN(n)	{ #n, golden_##n, sizeof(golden_##n) }
static const struct golden {
	const char *name;
	const uint8_t *data;
	size_t len;
} goldens[] = {
	GOLDEN(ping_request), GOLDEN(ping_reply), GOLDEN(get_request), GOLDEN(get_reply),
	GOLDEN(error_not_found), GOLDEN(stats_request), GOLDEN(stats_reply),
	GOLDEN(describe_request), GOLDEN(describe_reply), GOLDEN(error_too_large),
	GOLDEN(health_request), GOLDEN(health_reply),
};
#define NGOLDEN		(sizeof(goldens) / sizeof(goldens[0]))

#define ARN	"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"
#define VID	"a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"
#define T0	UINT64_C(1700000000000)
#define T1	UINT64_C(1700000500000)
#define SECRET	"{\"password\":\"hunter2\"}"

/* ---- helpers ------------------------------------------------------------------------ */

/* Room for the largest frame plus a margin, static: too big for a test's stack. */
static uint8_t buf[PROTO_FRAME_PREFIX_LEN + PROTO_FRAME_MAX_BODY + 4096];
static struct proto_writer w;

static void
assert_str_eq(struct proto_str s, const char *want)
{
	assert_non_null(s.ptr);
	assert_int_equal(s.len, strlen(want));
	assert_memory_equal(s.ptr, want, s.len);
}

/* Starts a hand-made body; the header is written raw so tests can break it. */
static void
body_begin(uint8_t version, uint8_t op, uint16_t flags, uint32_t id, uint16_t status)
{
	proto_writer_init(&w, buf, sizeof(buf));
	proto_write_u32(&w, 0);
	proto_write_u8(&w, version);
	proto_write_u8(&w, op);
	proto_write_u16(&w, flags);
	proto_write_u32(&w, id);
	proto_write_u16(&w, status);
}

static void
req_begin(uint8_t op)
{
	body_begin(PROTO_VERSION, op, 0, 77, 0);
}

static void
rep_begin(uint8_t op, uint16_t status)
{
	body_begin(PROTO_VERSION, op | PROTO_OP_REPLY, 0, 77, status);
}

static void
put(uint16_t tag, const char *s)
{
	proto_put_bytes(&w, tag, s, strlen(s));
}

static int
decode_req(struct proto_request *req, struct proto_decode_error *err)
{
	assert_false(w.overflow);
	return proto_request_decode(buf + PROTO_FRAME_PREFIX_LEN, w.len - PROTO_FRAME_PREFIX_LEN, req,
	    err);
}

static int
decode_rep(struct proto_reply *rep, struct proto_decode_error *err)
{
	assert_false(w.overflow);
	return proto_reply_decode(buf + PROTO_FRAME_PREFIX_LEN, w.len - PROTO_FRAME_PREFIX_LEN, rep,
	    err);
}

static void
expect_req_error(enum proto_status status, const char *message)
{
	struct proto_request req;
	struct proto_decode_error err;

	assert_int_equal(decode_req(&req, &err), -1);
	assert_string_equal(err.message, message);
	assert_int_equal(err.status, status);
	assert_null(req.secret_id.ptr);
	assert_null(req.version_stage.ptr);
	assert_null(req.version_id.ptr);
}

static void
expect_rep_error(enum proto_status status, const char *message)
{
	struct proto_reply rep;
	struct proto_decode_error err;

	assert_int_equal(decode_rep(&rep, &err), -1);
	assert_string_equal(err.message, message);
	assert_int_equal(err.status, status);
	assert_null(rep.body);
}

static void
expect_rep_ok(struct proto_reply *rep)
{
	struct proto_decode_error err;

	if (decode_rep(rep, &err) != 0)
		fail_msg("reply rejected: %s", err.message);
}

/* A golden frame must be READY as a whole; returns its body. */
static const uint8_t *
golden_body(const uint8_t *frame, size_t len, size_t *body_len)
{
	assert_int_equal(proto_frame_check(frame, len, PROTO_FRAME_MAX_BODY, body_len),
	    PROTO_FRAME_READY);
	assert_int_equal(*body_len + PROTO_FRAME_PREFIX_LEN, len);
	return frame + PROTO_FRAME_PREFIX_LEN;
}

static void
expect_encoded(const uint8_t *want, size_t want_len)
{
	size_t len = 0;

	assert_int_equal(proto_message_end(&w, &len), 0);
	assert_int_equal(len, want_len);
	assert_int_equal(w.len, want_len);
	assert_memory_equal(buf, want, want_len);
}

/* ---- the document's vectors --------------------------------------------------------- */

static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		goto out;
	if ((data = malloc((size_t)n + 1)) == NULL)
		goto out;
	if (fread(data, 1, (size_t)n, f) != (size_t)n) {
		free(data);
		data = NULL;
		goto out;
	}
	data[n] = '\0';
	*len = (size_t)n;
out:
	fclose(f);
	return data;
}

/* proto/PROTOCOL.md from $SMCACHE_SRCDIR, the current directory, or above the binary. */
static char *
read_protocol_md(void)
{
	char path[PATH_MAX + 32], exe[PATH_MAX];
	const char *srcdir = getenv("SMCACHE_SRCDIR");
	char *doc, *slash;
	size_t len;
	ssize_t n;
	int up;

	if (srcdir != NULL) {
		snprintf(path, sizeof(path), "%s/proto/PROTOCOL.md", srcdir);
		return read_file(path, &len);
	}
	if ((doc = read_file("proto/PROTOCOL.md", &len)) != NULL)
		return doc;
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) <= 0)
		return NULL;
	exe[n] = '\0';
	for (up = 0; up < 5 && (slash = strrchr(exe, '/')) != NULL; up++) {
		*slash = '\0';
		snprintf(path, sizeof(path), "%s/proto/PROTOCOL.md", exe);
		if ((doc = read_file(path, &len)) != NULL)
			return doc;
	}
	return NULL;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parses one "```hex golden=NAME" block's lines: hex byte pairs, '#' starts a comment. */
static size_t
parse_hex_block(const char *p, const char *end, uint8_t *out, size_t cap, const char *name)
{
	size_t n = 0;
	int hi, lo;

	while (p < end) {
		if (*p == '#') {
			while (p < end && *p != '\n')
				p++;
			continue;
		}
		if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
			p++;
			continue;
		}
		hi = end - p >= 2 ? hexval(p[0]) : -1;
		lo = end - p >= 2 ? hexval(p[1]) : -1;
		if (hi < 0 || lo < 0 || (end - p > 2 && p[2] != ' ' && p[2] != '\n')) {
			fail_msg("golden block %s: bad hex near \"%.10s\"", name, p);
			return 0;
		}
		if (n == cap) {
			fail_msg("golden block %s: too long", name);
			return 0;
		}
		out[n++] = (uint8_t)(hi << 4 | lo);
		p += 2;
	}
	return n;
}

static void
test_doc_vectors_match(void **state)
{
	static const char open[] = "```hex golden=";
	char *doc = read_protocol_md();
	const char *p, *name, *start, *end;
	uint8_t bytes[4096];
	size_t i, n, namelen, found = 0;
	int seen[NGOLDEN] = { 0 };

	if (doc == NULL)
		fail_msg("cannot read proto/PROTOCOL.md (run from the source tree or set SMCACHE_SRCDIR)");
	for (p = doc; (p = strstr(p, open)) != NULL; p = end + 3) {
		name = p + strlen(open);
		namelen = strcspn(name, " \r\n");
		start = name + namelen;
		if ((end = strstr(start, "\n```")) == NULL)
			fail_msg("unterminated golden block %.*s", (int)namelen, name);
		n = parse_hex_block(start, end, bytes, sizeof(bytes), name);
		for (i = 0; i < NGOLDEN; i++)
			if (strlen(goldens[i].name) == namelen &&
			    memcmp(goldens[i].name, name, namelen) == 0)
				break;
		if (i == NGOLDEN)
			fail_msg("PROTOCOL.md has golden block %.*s unknown to this test",
			    (int)namelen, name);
		if (seen[i]++)
			fail_msg("PROTOCOL.md repeats golden block %s", goldens[i].name);
		if (n != goldens[i].len || memcmp(bytes, goldens[i].data, n) != 0)
			fail_msg("golden block %s differs between PROTOCOL.md and test_proto.c",
			    goldens[i].name);
		found++;
	}
	free(doc);
	assert_int_equal(found, NGOLDEN);
}

/* Every golden frame is accepted by the decoder of its direction. */
static void
test_golden_all_decode(void **state)
{
	struct proto_decode_error err;
	struct proto_request req;
	struct proto_reply rep;
	const uint8_t *body;
	size_t i, len;

	for (i = 0; i < NGOLDEN; i++) {
		body = golden_body(goldens[i].data, goldens[i].len, &len);
		if (body[1] & PROTO_OP_REPLY) {
			if (proto_reply_decode(body, len, &rep, &err) != 0)
				fail_msg("%s: %s", goldens[i].name, err.message);
			/* Replies are not requests. */
			assert_int_equal(proto_request_decode(body, len, &req, &err), -1);
		} else {
			if (proto_request_decode(body, len, &req, &err) != 0)
				fail_msg("%s: %s", goldens[i].name, err.message);
			assert_int_equal(proto_reply_decode(body, len, &rep, &err), -1);
		}
	}
}

/* ---- golden: encoding --------------------------------------------------------------- */

static void
test_encode_ping_request(void **state)
{
	struct proto_request req = { .header = { .op = PROTO_OP_PING, .request_id = 1 } };
	size_t len;

	proto_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(proto_request_encode(&w, &req, &len), 0);
	assert_int_equal(len, sizeof(golden_ping_request));
	assert_memory_equal(buf, golden_ping_request, len);
}

static void
test_encode_ping_reply(void **state)
{
	proto_writer_init(&w, buf, sizeof(buf));
	proto_message_begin(&w, PROTO_OP_PING | PROTO_OP_REPLY, 0, 1, PROTO_STATUS_OK);
	proto_put_cstr(&w, PROTO_TAG_AGENT_VERSION, "smcached 0.1.0");
	expect_encoded(golden_ping_reply, sizeof(golden_ping_reply));
}

static void
test_encode_get_request(void **state)
{
	struct proto_request req = { .header = { .op = PROTO_OP_GET, .request_id = 2 } };
	size_t len;

	req.secret_id.ptr = "prod/db";
	req.secret_id.len = 7;
	req.version_stage.ptr = "AWSCURRENT";
	req.version_stage.len = 10;
	proto_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(proto_request_encode(&w, &req, &len), 0);
	assert_int_equal(len, sizeof(golden_get_request));
	assert_memory_equal(buf, golden_get_request, len);
}

static void
test_encode_get_reply(void **state)
{
	proto_writer_init(&w, buf, sizeof(buf));
	proto_message_begin(&w, PROTO_OP_GET | PROTO_OP_REPLY, 0, 2, PROTO_STATUS_OK);
	proto_put_cstr(&w, PROTO_TAG_ARN, ARN);
	proto_put_cstr(&w, PROTO_TAG_NAME, "prod/db");
	proto_put_cstr(&w, PROTO_TAG_VERSION_ID, VID);
	proto_put_cstr(&w, PROTO_TAG_VERSION_STAGE, "AWSCURRENT");
	proto_put_u64(&w, PROTO_TAG_CREATED_DATE, T0);
	proto_put_bytes(&w, PROTO_TAG_SECRET_STRING, SECRET, strlen(SECRET));
	expect_encoded(golden_get_reply, sizeof(golden_get_reply));
}

static void
test_encode_error_not_found(void **state)
{
	size_t len;

	proto_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(proto_encode_error(&w, PROTO_OP_GET, 3, PROTO_STATUS_NOT_FOUND,
	    "secret prod/missing not found"), 0);
	/* Ending again (as the agent's server does) changes nothing. */
	assert_int_equal(proto_message_end(&w, &len), 0);
	assert_int_equal(len, sizeof(golden_error_not_found));
	assert_memory_equal(buf, golden_error_not_found, len);
}

static void
test_encode_error_too_large(void **state)
{
	proto_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(proto_encode_error(&w, 0, 0, PROTO_STATUS_TOO_LARGE,
	    "frame of 1048576 bytes exceeds the limit of 262144 bytes"), 0);
	expect_encoded(golden_error_too_large, sizeof(golden_error_too_large));
}

static void
test_encode_stats(void **state)
{
	struct proto_request req = { .header = { .op = PROTO_OP_STATS, .request_id = 4 } };
	size_t mark, len;

	proto_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(proto_request_encode(&w, &req, &len), 0);
	assert_int_equal(len, sizeof(golden_stats_request));
	assert_memory_equal(buf, golden_stats_request, len);

	proto_writer_init(&w, buf, sizeof(buf));
	proto_message_begin(&w, PROTO_OP_STATS | PROTO_OP_REPLY, 0, 4, PROTO_STATUS_OK);
	mark = proto_nested_begin(&w, PROTO_TAG_STAT);
	proto_put_cstr(&w, PROTO_TAG_STAT_NAME, "cache_hits");
	proto_put_u64(&w, PROTO_TAG_STAT_VALUE, 42);
	proto_nested_end(&w, mark);
	mark = proto_nested_begin(&w, PROTO_TAG_STAT);
	proto_put_cstr(&w, PROTO_TAG_STAT_NAME, "cache_misses");
	proto_put_u64(&w, PROTO_TAG_STAT_VALUE, 7);
	proto_nested_end(&w, mark);
	expect_encoded(golden_stats_reply, sizeof(golden_stats_reply));
}

static void
test_encode_health(void **state)
{
	struct proto_request req = { .header = { .op = PROTO_OP_HEALTH, .request_id = 6 } };
	size_t len;

	proto_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(proto_request_encode(&w, &req, &len), 0);
	assert_int_equal(len, sizeof(golden_health_request));
	assert_memory_equal(buf, golden_health_request, len);

	proto_writer_init(&w, buf, sizeof(buf));
	proto_message_begin(&w, PROTO_OP_HEALTH | PROTO_OP_REPLY, 0, 6, PROTO_STATUS_OK);
	proto_put_u64(&w, PROTO_TAG_READY, 0);
	proto_put_cstr(&w, PROTO_TAG_HEALTH_REASON, "the upstream rejected the agent's credentials");
	proto_put_u64(&w, PROTO_TAG_CREDENTIALS, PROTO_CRED_REJECTED);
	proto_put_u64(&w, PROTO_TAG_STARTED_DATE, 1700000000000ULL);
	proto_put_u64(&w, PROTO_TAG_LAST_SUCCESS_DATE, 1700000060000ULL);
	proto_put_u64(&w, PROTO_TAG_LAST_FAILURE_DATE, 1700000120000ULL);
	proto_put_u64(&w, PROTO_TAG_LAST_FAILURE_STATUS, PROTO_STATUS_UPSTREAM_AUTH);
	proto_put_u64(&w, PROTO_TAG_BREAKER_OPEN, 0);
	proto_put_u64(&w, PROTO_TAG_PREFETCH_PENDING, 0);
	proto_put_u64(&w, PROTO_TAG_CACHE_SECRETS, 2);
	proto_put_u64(&w, PROTO_TAG_CACHE_VERSIONS, 3);
	expect_encoded(golden_health_reply, sizeof(golden_health_reply));
}

static void
test_decode_health(void **state)
{
	struct proto_decode_error err;
	struct proto_request req;
	struct proto_reply rep;
	size_t len;
	const uint8_t *body;

	body = golden_body(golden_health_request, sizeof(golden_health_request), &len);
	assert_int_equal(proto_request_decode(body, len, &req, &err), 0);
	assert_int_equal(req.header.op, PROTO_OP_HEALTH);

	body = golden_body(golden_health_reply, sizeof(golden_health_reply), &len);
	assert_int_equal(proto_reply_decode(body, len, &rep, &err), 0);
	assert_int_equal(rep.ready, 0);
	assert_int_equal(rep.reason_count, 1);
	assert_int_equal(rep.reasons[0].len, 45);
	assert_memory_equal(rep.reasons[0].ptr, "the upstream rejected", 21);
	assert_int_equal(rep.credentials, PROTO_CRED_REJECTED);
	assert_int_equal(rep.started_ms, 1700000000000ULL);
	assert_int_equal(rep.last_success_ms, 1700000060000ULL);
	assert_int_equal(rep.last_failure_ms, 1700000120000ULL);
	assert_int_equal(rep.last_failure_status, PROTO_STATUS_UPSTREAM_AUTH);
	assert_int_equal(rep.cache_secrets, 2);
	assert_int_equal(rep.cache_versions, 3);

	/* READY is required; HEALTH fields belong to HEALTH replies only; a
	 * HEALTH request carries no fields. */
	body_begin(1, PROTO_OP_HEALTH | PROTO_OP_REPLY, 0, 1, 0);
	proto_put_u64(&w, PROTO_TAG_CACHE_SECRETS, 1);
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "missing field READY");
	body_begin(1, PROTO_OP_PING | PROTO_OP_REPLY, 0, 1, 0);
	put(PROTO_TAG_AGENT_VERSION, "x");
	proto_put_u64(&w, PROTO_TAG_READY, 1);
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "field READY not valid in a PING reply");
	body_begin(1, PROTO_OP_HEALTH, 0, 1, 0);
	put(PROTO_TAG_SECRET_ID, "x");
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "field SECRET_ID not valid for HEALTH");
}

static void
test_encode_describe(void **state)
{
	struct proto_request req = { .header = { .op = PROTO_OP_DESCRIBE, .request_id = 5 } };
	size_t mark, len;

	req.secret_id.ptr = "prod/db";
	req.secret_id.len = 7;
	proto_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(proto_request_encode(&w, &req, &len), 0);
	assert_int_equal(len, sizeof(golden_describe_request));
	assert_memory_equal(buf, golden_describe_request, len);

	proto_writer_init(&w, buf, sizeof(buf));
	proto_message_begin(&w, PROTO_OP_DESCRIBE | PROTO_OP_REPLY, 0, 5, PROTO_STATUS_OK);
	proto_put_cstr(&w, PROTO_TAG_ARN, ARN);
	proto_put_cstr(&w, PROTO_TAG_NAME, "prod/db");
	proto_put_cstr(&w, PROTO_TAG_DESCRIPTION, "Database password");
	proto_put_u64(&w, PROTO_TAG_CREATED_DATE, T0);
	proto_put_u64(&w, PROTO_TAG_LAST_CHANGED_DATE, T1);
	mark = proto_nested_begin(&w, PROTO_TAG_VERSION);
	proto_put_cstr(&w, PROTO_TAG_VERSION_ID, VID);
	proto_put_cstr(&w, PROTO_TAG_VERSION_STAGE, "AWSCURRENT");
	proto_put_u64(&w, PROTO_TAG_CREATED_DATE, T0);
	proto_nested_end(&w, mark);
	expect_encoded(golden_describe_reply, sizeof(golden_describe_reply));
}

/* ---- golden: decoding --------------------------------------------------------------- */

static void
test_decode_ping(void **state)
{
	struct proto_decode_error err;
	struct proto_request req;
	struct proto_reply rep;
	const uint8_t *body;
	size_t len;

	body = golden_body(golden_ping_request, sizeof(golden_ping_request), &len);
	assert_int_equal(proto_request_decode(body, len, &req, &err), 0);
	assert_int_equal(req.header.version, 1);
	assert_int_equal(req.header.op, PROTO_OP_PING);
	assert_int_equal(req.header.flags, 0);
	assert_int_equal(req.header.request_id, 1);
	assert_int_equal(req.header.status, 0);
	assert_null(req.secret_id.ptr);
	assert_null(req.version_stage.ptr);
	assert_null(req.version_id.ptr);

	body = golden_body(golden_ping_reply, sizeof(golden_ping_reply), &len);
	assert_int_equal(proto_reply_decode(body, len, &rep, &err), 0);
	assert_int_equal(rep.header.op, PROTO_OP_PING | PROTO_OP_REPLY);
	assert_int_equal(rep.header.request_id, 1);
	assert_int_equal(rep.header.status, PROTO_STATUS_OK);
	assert_str_eq(rep.agent_version, "smcached 0.1.0");
	assert_null(rep.message.ptr);
}

static void
test_decode_get(void **state)
{
	struct proto_decode_error err;
	struct proto_request req;
	struct proto_reply rep;
	const uint8_t *body;
	size_t len;

	body = golden_body(golden_get_request, sizeof(golden_get_request), &len);
	assert_int_equal(proto_request_decode(body, len, &req, &err), 0);
	assert_int_equal(req.header.op, PROTO_OP_GET);
	assert_int_equal(req.header.request_id, 2);
	assert_str_eq(req.secret_id, "prod/db");
	assert_str_eq(req.version_stage, "AWSCURRENT");
	assert_null(req.version_id.ptr);

	body = golden_body(golden_get_reply, sizeof(golden_get_reply), &len);
	assert_int_equal(proto_reply_decode(body, len, &rep, &err), 0);
	assert_int_equal(rep.header.op, PROTO_OP_GET | PROTO_OP_REPLY);
	assert_int_equal(rep.header.request_id, 2);
	assert_int_equal(rep.header.flags, 0);
	assert_str_eq(rep.arn, ARN);
	assert_str_eq(rep.name, "prod/db");
	assert_str_eq(rep.version_id, VID);
	assert_int_equal(rep.stage_count, 1);
	assert_str_eq(rep.stages[0], "AWSCURRENT");
	assert_int_equal(rep.created_ms, T0);
	assert_non_null(rep.secret_string);
	assert_int_equal(rep.secret_string_len, strlen(SECRET));
	assert_memory_equal(rep.secret_string, SECRET, strlen(SECRET));
	assert_null(rep.secret_binary);
	assert_int_equal(rep.version_count, 0);
	assert_int_equal(rep.stat_count, 0);
}

static void
test_decode_error_not_found(void **state)
{
	struct proto_decode_error err;
	struct proto_reply rep;
	const uint8_t *body;
	size_t len;

	body = golden_body(golden_error_not_found, sizeof(golden_error_not_found), &len);
	assert_int_equal(proto_reply_decode(body, len, &rep, &err), 0);
	assert_int_equal(rep.header.op, PROTO_OP_GET | PROTO_OP_REPLY);
	assert_int_equal(rep.header.request_id, 3);
	assert_int_equal(rep.header.status, PROTO_STATUS_NOT_FOUND);
	assert_str_eq(rep.message, "secret prod/missing not found");
	assert_null(rep.arn.ptr);
	assert_null(rep.secret_string);

	body = golden_body(golden_error_too_large, sizeof(golden_error_too_large), &len);
	assert_int_equal(proto_reply_decode(body, len, &rep, &err), 0);
	assert_int_equal(rep.header.op, PROTO_OP_REPLY);
	assert_int_equal(rep.header.request_id, 0);
	assert_int_equal(rep.header.status, PROTO_STATUS_TOO_LARGE);
	assert_str_eq(rep.message, "frame of 1048576 bytes exceeds the limit of 262144 bytes");
}

static void
test_decode_stats(void **state)
{
	struct proto_decode_error err;
	struct proto_request req;
	struct proto_reply rep;
	struct proto_str name;
	const uint8_t *body;
	uint64_t value;
	size_t len, cursor = 0;

	body = golden_body(golden_stats_request, sizeof(golden_stats_request), &len);
	assert_int_equal(proto_request_decode(body, len, &req, &err), 0);
	assert_int_equal(req.header.op, PROTO_OP_STATS);
	assert_int_equal(req.header.request_id, 4);

	body = golden_body(golden_stats_reply, sizeof(golden_stats_reply), &len);
	assert_int_equal(proto_reply_decode(body, len, &rep, &err), 0);
	assert_int_equal(rep.header.request_id, 4);
	assert_int_equal(rep.stat_count, 2);
	assert_int_equal(proto_reply_next_stat(&rep, &cursor, &name, &value), 1);
	assert_str_eq(name, "cache_hits");
	assert_int_equal(value, 42);
	assert_int_equal(proto_reply_next_stat(&rep, &cursor, &name, &value), 1);
	assert_str_eq(name, "cache_misses");
	assert_int_equal(value, 7);
	assert_int_equal(proto_reply_next_stat(&rep, &cursor, &name, &value), 0);
	assert_int_equal(proto_reply_next_stat(&rep, &cursor, &name, &value), 0);
}

static void
test_decode_describe(void **state)
{
	struct proto_decode_error err;
	struct proto_version_info info;
	struct proto_request req;
	struct proto_reply rep;
	const uint8_t *body;
	size_t len, cursor = 0;

	body = golden_body(golden_describe_request, sizeof(golden_describe_request), &len);
	assert_int_equal(proto_request_decode(body, len, &req, &err), 0);
	assert_int_equal(req.header.op, PROTO_OP_DESCRIBE);
	assert_int_equal(req.header.request_id, 5);
	assert_str_eq(req.secret_id, "prod/db");

	body = golden_body(golden_describe_reply, sizeof(golden_describe_reply), &len);
	assert_int_equal(proto_reply_decode(body, len, &rep, &err), 0);
	assert_int_equal(rep.header.request_id, 5);
	assert_str_eq(rep.arn, ARN);
	assert_str_eq(rep.name, "prod/db");
	assert_str_eq(rep.description, "Database password");
	assert_int_equal(rep.created_ms, T0);
	assert_int_equal(rep.last_changed_ms, T1);
	assert_int_equal(rep.deleted_ms, 0);
	assert_int_equal(rep.version_count, 1);
	assert_int_equal(rep.stage_count, 0);	/* stages are inside VERSION */
	assert_int_equal(proto_reply_next_version(&rep, &cursor, &info), 1);
	assert_str_eq(info.version_id, VID);
	assert_int_equal(info.stage_count, 1);
	assert_str_eq(info.stages[0], "AWSCURRENT");
	assert_int_equal(info.created_ms, T0);
	assert_int_equal(proto_reply_next_version(&rep, &cursor, &info), 0);
	/* A reply without versions walks to the end at once. */
	cursor = 0;
	body = golden_body(golden_get_reply, sizeof(golden_get_reply), &len);
	assert_int_equal(proto_reply_decode(body, len, &rep, &err), 0);
	assert_int_equal(proto_reply_next_version(&rep, &cursor, &info), 0);
}

/* ---- request rejections: header ----------------------------------------------------- */

static void
test_req_truncated_header(void **state)
{
	static const uint8_t body[] = { 0x01, 0x02, 0x00, 0x00, 0x00 };
	struct proto_decode_error err;
	struct proto_request req;

	assert_int_equal(proto_request_decode(body, sizeof(body), &req, &err), -1);
	assert_int_equal(err.status, PROTO_STATUS_BAD_REQUEST);
	assert_string_equal(err.message, "truncated header (5 bytes, need 10)");
	assert_int_equal(req.header.request_id, 0);
	assert_int_equal(req.header.op, 0);
}

static void
test_req_bad_version(void **state)
{
	struct proto_decode_error err;
	struct proto_request req;

	body_begin(2, PROTO_OP_GET, 0, 0x01020304, 0);
	put(PROTO_TAG_SECRET_ID, "x");
	assert_int_equal(decode_req(&req, &err), -1);
	assert_int_equal(err.status, PROTO_STATUS_UNSUPPORTED);
	assert_string_equal(err.message,
	    "protocol version 2 not supported (this agent speaks 1)");
	/* Enough header for the agent to answer this request. */
	assert_int_equal(req.header.op, PROTO_OP_GET);
	assert_int_equal(req.header.request_id, 0x01020304);
	assert_int_equal(req.header.version, 2);
}

static void
test_req_unknown_op(void **state)
{
	struct proto_decode_error err;
	struct proto_request req;

	body_begin(1, 9, 0, 42, 0);
	assert_int_equal(decode_req(&req, &err), -1);
	assert_int_equal(err.status, PROTO_STATUS_UNSUPPORTED);
	assert_string_equal(err.message, "op 9 not supported");
	assert_int_equal(req.header.op, 9);
	assert_int_equal(req.header.request_id, 42);

	body_begin(1, 0, 0, 42, 0);
	expect_req_error(PROTO_STATUS_UNSUPPORTED, "op 0 not supported");
}

static void
test_req_reply_bit(void **state)
{
	body_begin(1, PROTO_OP_PING | PROTO_OP_REPLY, 0, 1, 0);
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "op 0x81 has the reply bit set");
}

static void
test_req_nonzero_status(void **state)
{
	body_begin(1, PROTO_OP_PING, 0, 1, PROTO_STATUS_BAD_REQUEST);
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "nonzero status 3 in a request");
}

static void
test_req_reserved_flags(void **state)
{
	body_begin(1, PROTO_OP_PING, 0x0002, 1, 0);
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "reserved flags 0x0002 set");
	body_begin(1, PROTO_OP_PING, 0x8000, 1, 0);
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "reserved flags 0x8000 set");
	/* REFRESH is a GET flag only. */
	body_begin(1, PROTO_OP_PING, PROTO_FLAG_REFRESH, 1, 0);
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "flag REFRESH not valid for PING");
	body_begin(1, PROTO_OP_DESCRIBE, PROTO_FLAG_REFRESH, 1, 0);
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "flag REFRESH not valid for DESCRIBE");
}

/* ---- request rejections: fields ----------------------------------------------------- */

static void
test_req_truncated_field_header(void **state)
{
	static const uint8_t partial[] = { 0x00, 0x01, 0x00 };

	req_begin(PROTO_OP_GET);
	put(PROTO_TAG_SECRET_ID, "prod/db");
	proto_write_bytes(&w, partial, sizeof(partial));
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "truncated field header (3 bytes left, need 6)");
}

static void
test_req_truncated_field_value(void **state)
{
	req_begin(PROTO_OP_GET);
	proto_write_u16(&w, PROTO_TAG_SECRET_ID);
	proto_write_u32(&w, 100);
	proto_write_bytes(&w, "prod/db", 7);
	expect_req_error(PROTO_STATUS_BAD_REQUEST,
	    "field SECRET_ID truncated (length 100, 7 bytes left)");

	/* A huge length must not wrap any bounds arithmetic. */
	req_begin(PROTO_OP_GET);
	proto_write_u16(&w, PROTO_TAG_SECRET_ID);
	proto_write_u32(&w, UINT32_MAX);
	proto_write_bytes(&w, "prod/db", 7);
	expect_req_error(PROTO_STATUS_BAD_REQUEST,
	    "field SECRET_ID truncated (length 4294967295, 7 bytes left)");

	/* An unknown ignorable field that is cut is still an error. */
	req_begin(PROTO_OP_PING);
	proto_write_u16(&w, 0x8123);
	proto_write_u32(&w, 9);
	expect_req_error(PROTO_STATUS_BAD_REQUEST,
	    "field 0x8123 truncated (length 9, 0 bytes left)");
}

static void
test_req_trailing_garbage(void **state)
{
	/* A complete request followed by bytes that are not a field. */
	req_begin(PROTO_OP_PING);
	proto_write_bytes(&w, "\xde\xad", 2);
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "truncated field header (2 bytes left, need 6)");

	req_begin(PROTO_OP_DESCRIBE);
	put(PROTO_TAG_SECRET_ID, "prod/db");
	proto_write_bytes(&w, "\0\0\0\0\0\0\0", 7);
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "unknown field tag 0x0000");
}

static void
test_req_unknown_tag(void **state)
{
	req_begin(PROTO_OP_GET);
	put(PROTO_TAG_SECRET_ID, "prod/db");
	put(0x0042, "what");
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "unknown field tag 0x0042");
}

static void
test_req_unknown_ignorable_tag_skipped(void **state)
{
	struct proto_decode_error err;
	struct proto_request req;

	req_begin(PROTO_OP_GET);
	put(0x8042, "from a newer client");
	put(PROTO_TAG_SECRET_ID, "prod/db");
	proto_put_bytes(&w, 0xffff, "", 0);
	/* The bit is part of the tag: 0x8001 is not SECRET_ID. */
	put(PROTO_TAG_SECRET_ID | PROTO_TAG_IGNORABLE, "other");
	assert_int_equal(decode_req(&req, &err), 0);
	assert_str_eq(req.secret_id, "prod/db");
}

static void
test_req_field_not_valid_for_op(void **state)
{
	req_begin(PROTO_OP_PING);
	put(PROTO_TAG_VERSION_ID, VID);
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "field VERSION_ID not valid for PING");

	req_begin(PROTO_OP_DESCRIBE);
	put(PROTO_TAG_SECRET_ID, "prod/db");
	put(PROTO_TAG_VERSION_STAGE, "AWSCURRENT");
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "field VERSION_STAGE not valid for DESCRIBE");

	req_begin(PROTO_OP_STATS);
	put(PROTO_TAG_SECRET_ID, "prod/db");
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "field SECRET_ID not valid for STATS");
}

static void
test_req_reply_field_in_request(void **state)
{
	req_begin(PROTO_OP_GET);
	put(PROTO_TAG_SECRET_ID, "prod/db");
	put(PROTO_TAG_SECRET_STRING, "hunter2");
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "field SECRET_STRING not valid for GET");

	req_begin(PROTO_OP_GET);
	put(PROTO_TAG_SECRET_ID, "prod/db");
	proto_put_u64(&w, PROTO_TAG_CREATED_DATE, 1);
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "field CREATED_DATE not valid for GET");
}

static void
test_req_duplicate_field(void **state)
{
	req_begin(PROTO_OP_GET);
	put(PROTO_TAG_SECRET_ID, "a");
	put(PROTO_TAG_SECRET_ID, "b");
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "duplicate field SECRET_ID");

	/* VERSION_STAGE repeats in replies, never in a request. */
	req_begin(PROTO_OP_GET);
	put(PROTO_TAG_SECRET_ID, "a");
	put(PROTO_TAG_VERSION_STAGE, "AWSCURRENT");
	put(PROTO_TAG_VERSION_STAGE, "AWSPREVIOUS");
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "duplicate field VERSION_STAGE");
}

static void
test_req_string_nul(void **state)
{
	req_begin(PROTO_OP_GET);
	proto_put_bytes(&w, PROTO_TAG_SECRET_ID, "prod\0db", 7);
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "field SECRET_ID contains a NUL byte");
}

static void
test_req_string_bad_utf8(void **state)
{
	static const struct {
		const char *bytes;
		const char *message;
	} cases[] = {
		{ "ab\xff", "field SECRET_ID is not valid UTF-8 (byte 2)" },
		{ "\x80", "field SECRET_ID is not valid UTF-8 (byte 0)" },		/* stray continuation */
		{ "a\xc0\xaf", "field SECRET_ID is not valid UTF-8 (byte 1)" },	/* overlong '/' */
		{ "\xe0\x80\xaf", "field SECRET_ID is not valid UTF-8 (byte 0)" },	/* overlong, 3 bytes */
		{ "\xed\xa0\x80", "field SECRET_ID is not valid UTF-8 (byte 0)" },	/* surrogate U+D800 */
		{ "\xf4\x90\x80\x80", "field SECRET_ID is not valid UTF-8 (byte 0)" },	/* U+110000 */
		{ "abcd\xe2\x82", "field SECRET_ID is not valid UTF-8 (byte 4)" },	/* cut sequence */
		{ "\xc3(", "field SECRET_ID is not valid UTF-8 (byte 0)" },	/* bad continuation */
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		req_begin(PROTO_OP_GET);
		put(PROTO_TAG_SECRET_ID, cases[i].bytes);
		expect_req_error(PROTO_STATUS_BAD_REQUEST, cases[i].message);
	}
}

static void
test_req_string_good_utf8(void **state)
{
	static const char *const good[] = {
		"prod/\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87",	/* Cyrillic */
		"\xe2\x82\xac",					/* U+20AC */
		"\xef\xbf\xbf",					/* U+FFFF */
		"\xf0\x9f\x94\x91",				/* U+1F511 */
		"\xf4\x8f\xbf\xbf",				/* U+10FFFF */
	};
	struct proto_decode_error err;
	struct proto_request req;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		req_begin(PROTO_OP_GET);
		put(PROTO_TAG_SECRET_ID, good[i]);
		if (decode_req(&req, &err) != 0)
			fail_msg("case %zu rejected: %s", i, err.message);
		assert_str_eq(req.secret_id, good[i]);
	}
}

static void
test_req_string_too_long(void **state)
{
	static char id[PROTO_MAX_SECRET_ID + 2];
	struct proto_decode_error err;
	struct proto_request req;

	memset(id, 'a', sizeof(id) - 1);
	req_begin(PROTO_OP_GET);
	proto_put_bytes(&w, PROTO_TAG_SECRET_ID, id, PROTO_MAX_SECRET_ID);
	assert_int_equal(decode_req(&req, &err), 0);
	assert_int_equal(req.secret_id.len, PROTO_MAX_SECRET_ID);

	req_begin(PROTO_OP_GET);
	proto_put_bytes(&w, PROTO_TAG_SECRET_ID, id, PROTO_MAX_SECRET_ID + 1);
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "field SECRET_ID too long (2049 bytes, max 2048)");

	req_begin(PROTO_OP_GET);
	put(PROTO_TAG_SECRET_ID, "a");
	proto_put_bytes(&w, PROTO_TAG_VERSION_ID, id, PROTO_MAX_VERSION_ID + 1);
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "field VERSION_ID too long (65 bytes, max 64)");
}

static void
test_req_string_empty(void **state)
{
	req_begin(PROTO_OP_GET);
	proto_put_bytes(&w, PROTO_TAG_SECRET_ID, "", 0);
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "field SECRET_ID is empty");

	req_begin(PROTO_OP_GET);
	put(PROTO_TAG_SECRET_ID, "a");
	proto_put_bytes(&w, PROTO_TAG_VERSION_STAGE, "", 0);
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "field VERSION_STAGE is empty");
}

static void
test_req_missing_secret_id(void **state)
{
	req_begin(PROTO_OP_GET);
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "missing field SECRET_ID");

	req_begin(PROTO_OP_GET);
	put(PROTO_TAG_VERSION_STAGE, "AWSCURRENT");
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "missing field SECRET_ID");

	req_begin(PROTO_OP_DESCRIBE);
	expect_req_error(PROTO_STATUS_BAD_REQUEST, "missing field SECRET_ID");
}

static void
test_req_get_stage_and_id(void **state)
{
	struct proto_decode_error err;
	struct proto_request req;

	/* Any order is accepted. */
	req_begin(PROTO_OP_GET);
	put(PROTO_TAG_VERSION_ID, VID);
	put(PROTO_TAG_VERSION_STAGE, "AWSPREVIOUS");
	put(PROTO_TAG_SECRET_ID, ARN);
	assert_int_equal(decode_req(&req, &err), 0);
	assert_int_equal(req.header.request_id, 77);
	assert_str_eq(req.secret_id, ARN);
	assert_str_eq(req.version_stage, "AWSPREVIOUS");
	assert_str_eq(req.version_id, VID);
}

/* Decoding then encoding a request gives the canonical bytes back. */
static void
test_req_roundtrip(void **state)
{
	static uint8_t out[512];
	struct proto_decode_error err;
	struct proto_request req;
	struct proto_writer w2;
	size_t len;

	req_begin(PROTO_OP_GET);
	put(PROTO_TAG_SECRET_ID, "prod/db");
	put(PROTO_TAG_VERSION_STAGE, "AWSCURRENT");
	put(PROTO_TAG_VERSION_ID, VID);
	assert_int_equal(proto_message_end(&w, NULL), 0);
	assert_int_equal(decode_req(&req, &err), 0);
	proto_writer_init(&w2, out, sizeof(out));
	assert_int_equal(proto_request_encode(&w2, &req, &len), 0);
	assert_int_equal(len, w.len);
	assert_memory_equal(out, buf, len);
}

/* ---- replies ------------------------------------------------------------------------ */

static void
put_get_reply_fields(void)
{
	put(PROTO_TAG_ARN, ARN);
	put(PROTO_TAG_NAME, "prod/db");
	put(PROTO_TAG_VERSION_ID, VID);
	proto_put_u64(&w, PROTO_TAG_CREATED_DATE, T0);
}

static void
test_rep_unknown_tags(void **state)
{
	struct proto_reply rep;

	/* Ignorable: skipped, also inside a nested field. */
	rep_begin(PROTO_OP_DESCRIBE, 0);
	put(0x8100, "new optional field");
	put(PROTO_TAG_ARN, ARN);
	put(PROTO_TAG_NAME, "prod/db");
	{
		size_t mark = proto_nested_begin(&w, PROTO_TAG_VERSION);

		put(0x8101, "nested optional");
		put(PROTO_TAG_VERSION_ID, VID);
		proto_nested_end(&w, mark);
	}
	expect_rep_ok(&rep);
	assert_str_eq(rep.arn, ARN);
	assert_int_equal(rep.version_count, 1);

	/* Not ignorable: rejected. */
	rep_begin(PROTO_OP_DESCRIBE, 0);
	put(PROTO_TAG_ARN, ARN);
	put(PROTO_TAG_NAME, "prod/db");
	put(0x0100, "must understand");
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "unknown field tag 0x0100");

	rep_begin(PROTO_OP_DESCRIBE, 0);
	put(PROTO_TAG_ARN, ARN);
	put(PROTO_TAG_NAME, "prod/db");
	{
		size_t mark = proto_nested_begin(&w, PROTO_TAG_VERSION);

		put(PROTO_TAG_VERSION_ID, VID);
		put(0x0101, "x");
		proto_nested_end(&w, mark);
	}
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "unknown field tag 0x0101 inside VERSION");

	/* Also in error replies. */
	rep_begin(PROTO_OP_GET, PROTO_STATUS_NOT_FOUND);
	put(0x8009, "x");
	put(PROTO_TAG_MESSAGE, "gone");
	expect_rep_ok(&rep);
	assert_str_eq(rep.message, "gone");
}

static void
test_rep_header_checks(void **state)
{
	struct proto_reply rep;

	body_begin(2, PROTO_OP_PING | PROTO_OP_REPLY, 0, 1, 0);
	expect_rep_error(PROTO_STATUS_UNSUPPORTED,
	    "protocol version 2 not supported (this client speaks 1)");

	body_begin(1, PROTO_OP_PING, 0, 1, 0);
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "op 0x01 is not a reply");

	body_begin(1, 0x86, 0, 1, 0);
	expect_rep_error(PROTO_STATUS_UNSUPPORTED, "successful reply to unknown op 6");

	/* An error reply to an op this client does not know is still readable. */
	body_begin(1, 0x86, 0, 1, PROTO_STATUS_UNSUPPORTED);
	put(PROTO_TAG_MESSAGE, "op 6 not supported");
	expect_rep_ok(&rep);
	assert_int_equal(rep.header.status, PROTO_STATUS_UNSUPPORTED);

	/* So is a status newer than this client, and unknown flags are ignored. */
	body_begin(1, PROTO_OP_GET | PROTO_OP_REPLY, 0xfffe, 1, 4242);
	expect_rep_ok(&rep);
	assert_int_equal(rep.header.status, 4242);
	assert_int_equal(rep.header.flags, 0xfffe);
	assert_null(rep.message.ptr);

	static const uint8_t short_body[] = { 1, 0x81, 0, 0 };
	struct proto_decode_error err;

	assert_int_equal(proto_reply_decode(short_body, sizeof(short_body), &rep, &err), -1);
	assert_string_equal(err.message, "truncated reply header (4 bytes, need 10)");
}

static void
test_rep_error_reply_fields(void **state)
{
	rep_begin(PROTO_OP_GET, PROTO_STATUS_INTERNAL);
	put(PROTO_TAG_MESSAGE, "oops");
	put(PROTO_TAG_ARN, ARN);
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "field ARN not valid in an error reply");
}

static void
test_rep_field_not_valid(void **state)
{
	rep_begin(PROTO_OP_PING, 0);
	put(PROTO_TAG_AGENT_VERSION, "smcached 0.1.0");
	put(PROTO_TAG_ARN, ARN);
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "field ARN not valid in a PING reply");

	rep_begin(PROTO_OP_STATS, 0);
	put(PROTO_TAG_STAT_NAME, "top-level");
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "field STAT_NAME not valid in a STATS reply");

	rep_begin(PROTO_OP_DESCRIBE, 0);
	put(PROTO_TAG_ARN, ARN);
	put(PROTO_TAG_NAME, "prod/db");
	{
		size_t mark = proto_nested_begin(&w, PROTO_TAG_VERSION);

		put(PROTO_TAG_VERSION_ID, VID);
		put(PROTO_TAG_ARN, ARN);
		proto_nested_end(&w, mark);
	}
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "field ARN not valid inside VERSION");
}

static void
test_rep_get_value_exactly_one(void **state)
{
	struct proto_reply rep;

	rep_begin(PROTO_OP_GET, 0);
	put_get_reply_fields();
	expect_rep_error(PROTO_STATUS_BAD_REQUEST,
	    "GET reply carries neither SECRET_STRING nor SECRET_BINARY");

	rep_begin(PROTO_OP_GET, 0);
	put_get_reply_fields();
	put(PROTO_TAG_SECRET_STRING, "s");
	proto_put_bytes(&w, PROTO_TAG_SECRET_BINARY, "\0\1", 2);
	expect_rep_error(PROTO_STATUS_BAD_REQUEST,
	    "GET reply carries both SECRET_STRING and SECRET_BINARY");

	/* Binary values may hold any byte; STALE flag passes through. */
	body_begin(1, PROTO_OP_GET | PROTO_OP_REPLY, PROTO_FLAG_STALE, 9, 0);
	put_get_reply_fields();
	proto_put_bytes(&w, PROTO_TAG_SECRET_BINARY, "\0\xff\1", 3);
	expect_rep_ok(&rep);
	assert_null(rep.secret_string);
	assert_int_equal(rep.secret_binary_len, 3);
	assert_memory_equal(rep.secret_binary, "\0\xff\1", 3);
	assert_int_equal(rep.header.flags, PROTO_FLAG_STALE);
	assert_int_equal(rep.stage_count, 0);
}

static void
test_rep_missing_required(void **state)
{
	struct proto_reply rep;

	rep_begin(PROTO_OP_GET, 0);
	put(PROTO_TAG_NAME, "prod/db");
	put(PROTO_TAG_VERSION_ID, VID);
	proto_put_u64(&w, PROTO_TAG_CREATED_DATE, T0);
	put(PROTO_TAG_SECRET_STRING, "s");
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "missing field ARN");

	rep_begin(PROTO_OP_GET, 0);
	put(PROTO_TAG_ARN, ARN);
	put(PROTO_TAG_NAME, "prod/db");
	put(PROTO_TAG_SECRET_STRING, "s");
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "missing field VERSION_ID");

	/* CREATED_DATE is optional: the agent leaves it out when it is unknown. */
	rep_begin(PROTO_OP_GET, 0);
	put(PROTO_TAG_ARN, ARN);
	put(PROTO_TAG_NAME, "prod/db");
	put(PROTO_TAG_VERSION_ID, VID);
	put(PROTO_TAG_SECRET_STRING, "s");
	expect_rep_ok(&rep);
	assert_int_equal(rep.created_ms, 0);

	rep_begin(PROTO_OP_PING, 0);
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "missing field AGENT_VERSION");

	rep_begin(PROTO_OP_DESCRIBE, 0);
	put(PROTO_TAG_ARN, ARN);
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "missing field NAME");

	rep_begin(PROTO_OP_DESCRIBE, 0);
	put(PROTO_TAG_ARN, ARN);
	put(PROTO_TAG_NAME, "prod/db");
	{
		size_t mark = proto_nested_begin(&w, PROTO_TAG_VERSION);

		put(PROTO_TAG_VERSION_STAGE, "AWSCURRENT");
		proto_nested_end(&w, mark);
	}
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "missing field VERSION_ID inside VERSION");

	rep_begin(PROTO_OP_STATS, 0);
	{
		size_t mark = proto_nested_begin(&w, PROTO_TAG_STAT);

		put(PROTO_TAG_STAT_NAME, "hits");
		proto_nested_end(&w, mark);
	}
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "missing field STAT_VALUE inside STAT");
}

static void
test_rep_u64_size(void **state)
{
	rep_begin(PROTO_OP_GET, 0);
	put(PROTO_TAG_ARN, ARN);
	put(PROTO_TAG_NAME, "prod/db");
	put(PROTO_TAG_VERSION_ID, VID);
	proto_put_bytes(&w, PROTO_TAG_CREATED_DATE, "\0\0\0\1", 4);
	put(PROTO_TAG_SECRET_STRING, "s");
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "field CREATED_DATE must be 8 bytes, not 4");

	rep_begin(PROTO_OP_STATS, 0);
	{
		size_t mark = proto_nested_begin(&w, PROTO_TAG_STAT);

		put(PROTO_TAG_STAT_NAME, "hits");
		proto_put_bytes(&w, PROTO_TAG_STAT_VALUE, "123456789", 9);
		proto_nested_end(&w, mark);
	}
	expect_rep_error(PROTO_STATUS_BAD_REQUEST,
	    "field STAT_VALUE inside STAT must be 8 bytes, not 9");
}

static void
test_rep_stage_repeats(void **state)
{
	struct proto_reply rep;
	char stage[16];
	int i;

	rep_begin(PROTO_OP_GET, 0);
	put_get_reply_fields();
	put(PROTO_TAG_SECRET_STRING, "s");
	for (i = 0; i < PROTO_MAX_STAGES; i++) {
		snprintf(stage, sizeof(stage), "S%d", i);
		put(PROTO_TAG_VERSION_STAGE, stage);
	}
	expect_rep_ok(&rep);
	assert_int_equal(rep.stage_count, PROTO_MAX_STAGES);
	assert_str_eq(rep.stages[0], "S0");
	assert_str_eq(rep.stages[PROTO_MAX_STAGES - 1], "S19");

	put(PROTO_TAG_VERSION_STAGE, "one too many");
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "too many VERSION_STAGE fields (max 20)");

	/* Non-repeatable reply fields stay unique. */
	rep_begin(PROTO_OP_GET, 0);
	put_get_reply_fields();
	put(PROTO_TAG_NAME, "again");
	put(PROTO_TAG_SECRET_STRING, "s");
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "duplicate field NAME");
}

static void
test_rep_versions_and_stats(void **state)
{
	struct proto_version_info info;
	struct proto_reply rep;
	struct proto_str name;
	uint64_t value;
	char id[16];
	size_t cursor = 0, mark;
	int i;

	rep_begin(PROTO_OP_DESCRIBE, 0);
	put(PROTO_TAG_ARN, ARN);
	put(PROTO_TAG_NAME, "prod/db");
	for (i = 0; i < PROTO_MAX_VERSIONS; i++) {
		mark = proto_nested_begin(&w, PROTO_TAG_VERSION);
		snprintf(id, sizeof(id), "v%d", i);
		put(PROTO_TAG_VERSION_ID, id);
		if (i == 3) {
			put(PROTO_TAG_VERSION_STAGE, "AWSCURRENT");
			put(PROTO_TAG_VERSION_STAGE, "custom");
		}
		proto_nested_end(&w, mark);
	}
	expect_rep_ok(&rep);
	assert_int_equal(rep.version_count, PROTO_MAX_VERSIONS);
	for (i = 0; i < PROTO_MAX_VERSIONS; i++) {
		assert_int_equal(proto_reply_next_version(&rep, &cursor, &info), 1);
		snprintf(id, sizeof(id), "v%d", i);
		assert_str_eq(info.version_id, id);
		assert_int_equal(info.stage_count, i == 3 ? 2 : 0);
		assert_int_equal(info.created_ms, 0);
	}
	assert_int_equal(proto_reply_next_version(&rep, &cursor, &info), 0);

	mark = proto_nested_begin(&w, PROTO_TAG_VERSION);
	put(PROTO_TAG_VERSION_ID, "v100");
	proto_nested_end(&w, mark);
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "too many VERSION fields (max 100)");

	/* STATS: any number, empty allowed. */
	rep_begin(PROTO_OP_STATS, 0);
	expect_rep_ok(&rep);
	assert_int_equal(rep.stat_count, 0);
	cursor = 0;
	assert_int_equal(proto_reply_next_stat(&rep, &cursor, &name, &value), 0);

	for (i = 0; i < 500; i++) {
		mark = proto_nested_begin(&w, PROTO_TAG_STAT);
		snprintf(id, sizeof(id), "s%d", i);
		put(PROTO_TAG_STAT_NAME, id);
		proto_put_u64(&w, PROTO_TAG_STAT_VALUE, UINT64_MAX - (uint64_t)i);
		proto_nested_end(&w, mark);
	}
	expect_rep_ok(&rep);
	assert_int_equal(rep.stat_count, 500);
	cursor = 0;
	for (i = 0; i < 500; i++) {
		assert_int_equal(proto_reply_next_stat(&rep, &cursor, &name, &value), 1);
		assert_int_equal(value, UINT64_MAX - (uint64_t)i);
	}
	assert_int_equal(proto_reply_next_stat(&rep, &cursor, &name, &value), 0);

	/* A cursor that does not come from the walk is refused. */
	cursor = 3;
	assert_int_equal(proto_reply_next_stat(&rep, &cursor, &name, &value), -1);
	cursor = rep.body_len + 1;
	assert_int_equal(proto_reply_next_stat(&rep, &cursor, &name, &value), -1);
}

static void
test_rep_nested_truncated(void **state)
{
	size_t mark;

	rep_begin(PROTO_OP_STATS, 0);
	mark = proto_nested_begin(&w, PROTO_TAG_STAT);
	put(PROTO_TAG_STAT_NAME, "hits");
	proto_put_u64(&w, PROTO_TAG_STAT_VALUE, 1);
	proto_write_bytes(&w, "\0\x0f", 2);
	proto_nested_end(&w, mark);
	expect_rep_error(PROTO_STATUS_BAD_REQUEST,
	    "truncated field header inside STAT (2 bytes left, need 6)");

	rep_begin(PROTO_OP_STATS, 0);
	mark = proto_nested_begin(&w, PROTO_TAG_STAT);
	proto_write_u16(&w, PROTO_TAG_STAT_NAME);
	proto_write_u32(&w, 50);
	proto_write_bytes(&w, "hits", 4);
	proto_nested_end(&w, mark);
	expect_rep_error(PROTO_STATUS_BAD_REQUEST,
	    "field STAT_NAME inside STAT truncated (length 50, 4 bytes left)");
}

static void
test_rep_strings_checked(void **state)
{
	char big[PROTO_MAX_MESSAGE + 1];
	struct proto_reply rep;

	rep_begin(PROTO_OP_GET, PROTO_STATUS_INTERNAL);
	put(PROTO_TAG_MESSAGE, "bad \xc3");
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "field MESSAGE is not valid UTF-8 (byte 4)");

	memset(big, 'm', sizeof(big));
	rep_begin(PROTO_OP_GET, PROTO_STATUS_INTERNAL);
	proto_put_bytes(&w, PROTO_TAG_MESSAGE, big, sizeof(big));
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "field MESSAGE too long (1025 bytes, max 1024)");

	/* MESSAGE and DESCRIPTION may be empty, identifiers may not. */
	rep_begin(PROTO_OP_GET, PROTO_STATUS_INTERNAL);
	proto_put_bytes(&w, PROTO_TAG_MESSAGE, "", 0);
	expect_rep_ok(&rep);
	assert_non_null(rep.message.ptr);
	assert_int_equal(rep.message.len, 0);

	rep_begin(PROTO_OP_DESCRIBE, 0);
	put(PROTO_TAG_ARN, ARN);
	proto_put_bytes(&w, PROTO_TAG_NAME, "", 0);
	expect_rep_error(PROTO_STATUS_BAD_REQUEST, "field NAME is empty");

	/* SECRET_STRING is bytes: a value is passed through as stored. */
	rep_begin(PROTO_OP_GET, 0);
	put_get_reply_fields();
	proto_put_bytes(&w, PROTO_TAG_SECRET_STRING, "\0\xff", 2);
	expect_rep_ok(&rep);
	assert_int_equal(rep.secret_string_len, 2);
}

static void
test_rep_value_size_limit(void **state)
{
	static uint8_t value[PROTO_MAX_VALUE + 1];
	struct proto_reply rep;

	rep_begin(PROTO_OP_GET, 0);
	put_get_reply_fields();
	proto_put_bytes(&w, PROTO_TAG_SECRET_BINARY, value, PROTO_MAX_VALUE);
	expect_rep_ok(&rep);
	assert_int_equal(rep.secret_binary_len, PROTO_MAX_VALUE);

	rep_begin(PROTO_OP_GET, 0);
	put_get_reply_fields();
	proto_put_bytes(&w, PROTO_TAG_SECRET_BINARY, value, PROTO_MAX_VALUE + 1);
	expect_rep_error(PROTO_STATUS_BAD_REQUEST,
	    "field SECRET_BINARY too long (65537 bytes, max 65536)");
}

/* ---- frame_check -------------------------------------------------------------------- */

static void
test_frame_check(void **state)
{
	uint8_t f[PROTO_FRAME_PREFIX_LEN + 32] = { 0 };
	size_t len = 99;

	/* Not even a prefix. */
	assert_int_equal(proto_frame_check(f, 0, PROTO_FRAME_MAX_BODY, &len), PROTO_FRAME_NEED_MORE);
	assert_int_equal(len, 0);
	assert_int_equal(proto_frame_check(f, 3, PROTO_FRAME_MAX_BODY, &len), PROTO_FRAME_NEED_MORE);

	/* 0 and 9: shorter than a header, known from the prefix alone. */
	assert_int_equal(proto_frame_check(f, 4, PROTO_FRAME_MAX_BODY, &len), PROTO_FRAME_TOO_SMALL);
	assert_int_equal(len, 0);
	proto_store_u32(f, PROTO_HEADER_LEN - 1);
	assert_int_equal(proto_frame_check(f, 4, PROTO_FRAME_MAX_BODY, &len), PROTO_FRAME_TOO_SMALL);
	assert_int_equal(len, 9);

	/* A header-only body: need more until all of it is in. */
	proto_store_u32(f, PROTO_HEADER_LEN);
	assert_int_equal(proto_frame_check(f, 4, PROTO_FRAME_MAX_BODY, &len), PROTO_FRAME_NEED_MORE);
	assert_int_equal(proto_frame_check(f, 13, PROTO_FRAME_MAX_BODY, &len), PROTO_FRAME_NEED_MORE);
	assert_int_equal(proto_frame_check(f, 14, PROTO_FRAME_MAX_BODY, &len), PROTO_FRAME_READY);
	assert_int_equal(len, PROTO_HEADER_LEN);
	/* Exact or followed by the next frame (pipelining): the same answer. */
	assert_int_equal(proto_frame_check(f, sizeof(f), PROTO_FRAME_MAX_BODY, &len), PROTO_FRAME_READY);
	assert_int_equal(len, PROTO_HEADER_LEN);

	/* The limit itself is fine, one byte more is too large, at once. */
	proto_store_u32(f, PROTO_FRAME_MAX_BODY);
	assert_int_equal(proto_frame_check(f, 4, PROTO_FRAME_MAX_BODY, &len), PROTO_FRAME_NEED_MORE);
	proto_store_u32(f, PROTO_FRAME_MAX_BODY + 1);
	assert_int_equal(proto_frame_check(f, 4, PROTO_FRAME_MAX_BODY, &len), PROTO_FRAME_TOO_LARGE);
	assert_int_equal(len, PROTO_FRAME_MAX_BODY + 1);
	proto_store_u32(f, UINT32_MAX);
	assert_int_equal(proto_frame_check(f, 4, PROTO_FRAME_MAX_BODY, &len), PROTO_FRAME_TOO_LARGE);
	assert_int_equal(len, UINT32_MAX);
	/* The caller's max applies. */
	proto_store_u32(f, 20);
	assert_int_equal(proto_frame_check(f, sizeof(f), 19, &len), PROTO_FRAME_TOO_LARGE);
	assert_int_equal(proto_frame_check(f, sizeof(f), 20, &len), PROTO_FRAME_READY);
}

/* ---- encoding: writer limits -------------------------------------------------------- */

static void
test_writer_overflow(void **state)
{
	uint8_t small[sizeof(golden_get_reply) + 8];
	struct proto_writer sw;
	size_t cap, len;

	/* Every capacity short of the frame fails, and never writes past it. */
	for (cap = 0; cap <= sizeof(golden_get_reply); cap++) {
		memset(small, 0xa5, sizeof(small));
		proto_writer_init(&sw, small, cap);
		proto_message_begin(&sw, PROTO_OP_GET | PROTO_OP_REPLY, 0, 2, PROTO_STATUS_OK);
		proto_put_cstr(&sw, PROTO_TAG_ARN, ARN);
		proto_put_cstr(&sw, PROTO_TAG_NAME, "prod/db");
		proto_put_cstr(&sw, PROTO_TAG_VERSION_ID, VID);
		proto_put_cstr(&sw, PROTO_TAG_VERSION_STAGE, "AWSCURRENT");
		proto_put_u64(&sw, PROTO_TAG_CREATED_DATE, T0);
		proto_put_bytes(&sw, PROTO_TAG_SECRET_STRING, SECRET, strlen(SECRET));
		if (cap < sizeof(golden_get_reply)) {
			assert_int_equal(proto_message_end(&sw, &len), -1);
			assert_true(sw.overflow);
			assert_true(sw.len <= cap);
		} else {
			assert_int_equal(proto_message_end(&sw, &len), 0);
			assert_int_equal(len, sizeof(golden_get_reply));
			assert_memory_equal(small, golden_get_reply, len);
		}
		for (len = cap; len < sizeof(small); len++)
			assert_int_equal(small[len], 0xa5);
	}

	/* The overflow latches: a later small write that would fit does nothing. */
	proto_writer_init(&sw, small, 16);
	proto_message_begin(&sw, PROTO_OP_PING, 0, 1, 0);
	proto_put_cstr(&sw, PROTO_TAG_SECRET_ID, "too long for this");
	assert_true(sw.overflow);
	len = sw.len;
	proto_write_u8(&sw, 1);
	assert_int_equal(sw.len, len);
	assert_int_equal(proto_message_end(&sw, NULL), -1);

	/* Nested end after an overflow must not patch anything. */
	proto_writer_init(&sw, small, 22);
	proto_message_begin(&sw, PROTO_OP_STATS | PROTO_OP_REPLY, 0, 1, 0);
	cap = proto_nested_begin(&sw, PROTO_TAG_STAT);
	proto_put_cstr(&sw, PROTO_TAG_STAT_NAME, "hits");
	proto_nested_end(&sw, cap);
	assert_int_equal(proto_message_end(&sw, NULL), -1);
	/* A mark from nowhere is refused too. */
	proto_writer_init(&sw, small, sizeof(small));
	proto_message_begin(&sw, PROTO_OP_STATS | PROTO_OP_REPLY, 0, 1, 0);
	proto_nested_end(&sw, 2);
	assert_int_equal(proto_message_end(&sw, NULL), -1);

	/* No header, no frame. */
	proto_writer_init(&sw, small, sizeof(small));
	assert_int_equal(proto_message_end(&sw, NULL), -1);
}

static void
test_writer_oversize_body(void **state)
{
	static uint8_t value[PROTO_FRAME_MAX_BODY];
	size_t len;
	int i;

	/* Four maximal values fit in a buffer this large but not in a frame. */
	proto_writer_init(&w, buf, sizeof(buf));
	proto_message_begin(&w, PROTO_OP_GET | PROTO_OP_REPLY, 0, 1, 0);
	for (i = 0; i < 4; i++)
		proto_put_bytes(&w, 0x8000, value, PROTO_MAX_VALUE);
	assert_false(w.overflow);
	assert_int_equal(proto_message_end(&w, &len), -1);

	/* Exactly the maximum body is fine. */
	proto_writer_init(&w, buf, sizeof(buf));
	proto_message_begin(&w, PROTO_OP_GET | PROTO_OP_REPLY, 0, 1, 0);
	proto_put_bytes(&w, 0x8000, NULL, 0);
	proto_put_bytes(&w, 0x8000, value, PROTO_FRAME_MAX_BODY - PROTO_HEADER_LEN -
	    2 * PROTO_FIELD_HEADER_LEN);
	assert_int_equal(proto_message_end(&w, &len), 0);
	assert_int_equal(len, PROTO_FRAME_PREFIX_LEN + PROTO_FRAME_MAX_BODY);
}

/* Frames appended to one buffer each get their own length. */
static void
test_writer_appends_frames(void **state)
{
	struct proto_request req;
	struct proto_decode_error err;
	size_t len1, len2, body_len;
	const uint8_t *f2;

	proto_writer_init(&w, buf, sizeof(buf));
	proto_message_begin(&w, PROTO_OP_PING, 0, 1, 0);
	assert_int_equal(proto_message_end(&w, &len1), 0);
	proto_message_begin(&w, PROTO_OP_GET, 0, 2, 0);
	proto_put_cstr(&w, PROTO_TAG_SECRET_ID, "prod/db");
	proto_put_cstr(&w, PROTO_TAG_VERSION_STAGE, "AWSCURRENT");
	assert_int_equal(proto_message_end(&w, &len2), 0);
	assert_int_equal(len1 + len2, w.len);
	assert_memory_equal(buf, golden_ping_request, len1);
	f2 = buf + len1;
	assert_int_equal(len2, sizeof(golden_get_request));
	assert_memory_equal(f2, golden_get_request, len2);
	assert_int_equal(proto_frame_check(buf, w.len, PROTO_FRAME_MAX_BODY, &body_len),
	    PROTO_FRAME_READY);
	assert_int_equal(body_len + 4, len1);
	assert_int_equal(proto_request_decode(f2 + 4, len2 - 4, &req, &err), 0);
	assert_int_equal(req.header.request_id, 2);
}

static void
test_put_cstr_null(void **state)
{
	proto_writer_init(&w, buf, sizeof(buf));
	proto_message_begin(&w, PROTO_OP_PING | PROTO_OP_REPLY, 0, 1, PROTO_STATUS_OK);
	proto_put_cstr(&w, PROTO_TAG_DESCRIPTION, NULL);
	proto_put_cstr(&w, PROTO_TAG_AGENT_VERSION, "smcached 0.1.0");
	expect_encoded(golden_ping_reply, sizeof(golden_ping_reply));
}

/* ---- proto_encode_error --------------------------------------------------------------- */

static void
decode_error_frame(struct proto_reply *rep)
{
	struct proto_decode_error err;
	size_t body_len;

	assert_int_equal(proto_frame_check(buf, w.len, PROTO_FRAME_MAX_BODY, &body_len),
	    PROTO_FRAME_READY);
	assert_int_equal(body_len + 4, w.len);
	if (proto_reply_decode(buf + 4, body_len, rep, &err) != 0)
		fail_msg("error reply rejected: %s", err.message);
}

static void
test_encode_error_truncates_utf8(void **state)
{
	static char msg[PROTO_MAX_MESSAGE + 16];
	struct proto_reply rep;

	/* 1023 ASCII bytes, then a 2-byte character that would end past 1024. */
	memset(msg, 'a', PROTO_MAX_MESSAGE - 1);
	memcpy(msg + PROTO_MAX_MESSAGE - 1, "\xc3\xa9tail", 7);
	proto_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(proto_encode_error(&w, PROTO_OP_GET, 7, PROTO_STATUS_INTERNAL, msg), 0);
	decode_error_frame(&rep);
	assert_int_equal(rep.header.op, PROTO_OP_GET | PROTO_OP_REPLY);
	assert_int_equal(rep.header.request_id, 7);
	assert_int_equal(rep.header.status, PROTO_STATUS_INTERNAL);
	assert_int_equal(rep.message.len, PROTO_MAX_MESSAGE - 1);

	/* One byte earlier the character fits, and the cut falls after it. */
	memset(msg, 'a', PROTO_MAX_MESSAGE - 2);
	memcpy(msg + PROTO_MAX_MESSAGE - 2, "\xc3\xa9tail", 7);
	proto_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(proto_encode_error(&w, PROTO_OP_GET, 7, PROTO_STATUS_INTERNAL, msg), 0);
	decode_error_frame(&rep);
	assert_int_equal(rep.message.len, PROTO_MAX_MESSAGE);
	assert_memory_equal(rep.message.ptr + PROTO_MAX_MESSAGE - 2, "\xc3\xa9", 2);

	/* The error frame fits the buffer the agent sizes for it. */
	assert_true(w.len <= PROTO_FRAME_PREFIX_LEN + PROTO_HEADER_LEN + PROTO_FIELD_HEADER_LEN +
	    PROTO_MAX_MESSAGE);
}

static void
test_encode_error_sanitises(void **state)
{
	struct proto_reply rep;

	/* Whatever text the agent formats (upstream errors...) stays decodable. */
	proto_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(proto_encode_error(&w, PROTO_OP_DESCRIBE, 1, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
	    "bad \xff\xc3 bytes \xed\xa0\x80 ok \xe2\x82\xac"), 0);
	decode_error_frame(&rep);
	assert_str_eq(rep.message, "bad ?? bytes ??? ok \xe2\x82\xac");

	/* NULL or empty: no MESSAGE field. */
	proto_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(proto_encode_error(&w, PROTO_OP_PING, 1, PROTO_STATUS_INTERNAL, NULL), 0);
	assert_int_equal(w.len, PROTO_FRAME_PREFIX_LEN + PROTO_HEADER_LEN);
	decode_error_frame(&rep);
	assert_null(rep.message.ptr);

	/* An error reply with status OK is a bug in the caller. */
	proto_writer_init(&w, buf, sizeof(buf));
	assert_int_equal(proto_encode_error(&w, PROTO_OP_PING, 1, PROTO_STATUS_OK, "fine"), -1);

	/* Too small a buffer. */
	proto_writer_init(&w, buf, 20);
	assert_int_equal(proto_encode_error(&w, PROTO_OP_PING, 1, PROTO_STATUS_INTERNAL,
	    "a message longer than the room left"), -1);
}

/* ---- names -------------------------------------------------------------------------- */

static void
test_names(void **state)
{
	assert_string_equal(proto_status_name(PROTO_STATUS_OK), "OK");
	assert_string_equal(proto_status_name(PROTO_STATUS_NOT_FOUND), "NOT_FOUND");
	assert_string_equal(proto_status_name(PROTO_STATUS_ACCESS_DENIED), "ACCESS_DENIED");
	assert_string_equal(proto_status_name(PROTO_STATUS_BAD_REQUEST), "BAD_REQUEST");
	assert_string_equal(proto_status_name(PROTO_STATUS_UPSTREAM_UNAVAILABLE),
	    "UPSTREAM_UNAVAILABLE");
	assert_string_equal(proto_status_name(PROTO_STATUS_INTERNAL), "INTERNAL");
	assert_string_equal(proto_status_name(PROTO_STATUS_UNSUPPORTED), "UNSUPPORTED");
	assert_string_equal(proto_status_name(PROTO_STATUS_TOO_LARGE), "TOO_LARGE");
	assert_string_equal(proto_status_name(PROTO_STATUS_LIMIT_EXCEEDED), "LIMIT_EXCEEDED");
	assert_string_equal(proto_status_name(PROTO_STATUS_UPSTREAM_AUTH), "UPSTREAM_AUTH");
	assert_string_equal(proto_status_name((enum proto_status)(PROTO_STATUS_MAX + 1)), "UNKNOWN");
	assert_string_equal(proto_status_name((enum proto_status)4242), "UNKNOWN");

	assert_string_equal(proto_op_name(PROTO_OP_PING), "PING");
	assert_string_equal(proto_op_name(PROTO_OP_GET), "GET");
	assert_string_equal(proto_op_name(PROTO_OP_DESCRIBE), "DESCRIBE");
	assert_string_equal(proto_op_name(PROTO_OP_STATS), "STATS");
	assert_string_equal(proto_op_name(PROTO_OP_HEALTH), "HEALTH");
	assert_string_equal(proto_op_name(PROTO_OP_GET | PROTO_OP_REPLY), "GET");
	assert_string_equal(proto_op_name(0), "?");
	assert_string_equal(proto_op_name(6), "?");
	assert_string_equal(proto_op_name(0x80), "?");
}

/* ---- field primitives --------------------------------------------------------------- */

static void
test_field_next(void **state)
{
	static const uint8_t data[] = { 0x00, 0x05, 0, 0, 0, 2, 'h', 'i', 0x00, 0x01, 0, 0, 0, 9, 'x' };
	struct proto_reader r;
	struct proto_field f;
	struct proto_header h;

	proto_reader_init(&r, data, sizeof(data));
	assert_int_equal(proto_field_next(&r, &f), 1);
	assert_int_equal(f.tag, PROTO_TAG_NAME);
	assert_int_equal(f.len, 2);
	assert_memory_equal(f.value, "hi", 2);
	/* Truncated: -1 and the reader does not move. */
	assert_int_equal(proto_field_next(&r, &f), -1);
	assert_int_equal(r.off, 8);
	r.off = sizeof(data);
	assert_int_equal(proto_field_next(&r, &f), 0);

	proto_reader_init(&r, golden_ping_request + 4, PROTO_HEADER_LEN - 1);
	assert_int_equal(proto_header_read(&r, &h), -1);
	assert_int_equal(r.off, 0);
	proto_reader_init(&r, golden_ping_request + 4, PROTO_HEADER_LEN);
	assert_int_equal(proto_header_read(&r, &h), 0);
	assert_int_equal(h.request_id, 1);
	assert_int_equal(proto_reader_remaining(&r), 0);
}

/* ---- proto_default_socket_path -------------------------------------------------------- */

static char *saved_socket_env, *saved_xdg;

static char *
dup_env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL ? strdup(v) : NULL;
}

static void
restore_env(const char *name, char *value)
{
	if (value != NULL)
		setenv(name, value, 1);
	else
		unsetenv(name);
	free(value);
}

static int
env_setup(void **state)
{
	saved_socket_env = dup_env(PROTO_SOCKET_ENV);
	saved_xdg = dup_env("XDG_RUNTIME_DIR");
	return 0;
}

static int
env_teardown(void **state)
{
	restore_env(PROTO_SOCKET_ENV, saved_socket_env);
	restore_env("XDG_RUNTIME_DIR", saved_xdg);
	saved_socket_env = saved_xdg = NULL;
	return 0;
}

static void
test_sockpath_env(void **state)
{
	char path[PROTO_SOCKET_PATH_MAX];

	setenv(PROTO_SOCKET_ENV, "/srv/custom/agent.sock", 1);
	assert_int_equal(proto_default_socket_path(path, sizeof(path)), 0);
	assert_string_equal(path, "/srv/custom/agent.sock");
}

static void
test_sockpath_env_too_long(void **state)
{
	char path[PROTO_SOCKET_PATH_MAX], lng[PROTO_SOCKET_PATH_MAX + 1], big[512];

	/* 107 bytes fit sun_path with its NUL; 108 do not. */
	memset(lng, 'x', sizeof(lng));
	lng[0] = '/';
	lng[PROTO_SOCKET_PATH_MAX - 1] = '\0';
	setenv(PROTO_SOCKET_ENV, lng, 1);
	assert_int_equal(proto_default_socket_path(path, sizeof(path)), 0);
	assert_string_equal(path, lng);

	lng[PROTO_SOCKET_PATH_MAX - 1] = 'x';
	lng[PROTO_SOCKET_PATH_MAX] = '\0';
	setenv(PROTO_SOCKET_ENV, lng, 1);
	errno = 0;
	assert_int_equal(proto_default_socket_path(big, sizeof(big)), -1);
	assert_int_equal(errno, ENAMETOOLONG);

	/* A buffer too small for a path that would fit sun_path. */
	setenv(PROTO_SOCKET_ENV, "/srv/custom/agent.sock", 1);
	errno = 0;
	assert_int_equal(proto_default_socket_path(path, 10), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	assert_string_equal(path, "");
}

static void
test_sockpath_default_for_uid(void **state)
{
	char path[PROTO_SOCKET_PATH_MAX], want[PROTO_SOCKET_PATH_MAX];

	/* An empty SMCACHE_SOCKET means unset. */
	setenv(PROTO_SOCKET_ENV, "", 1);
	setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
	assert_int_equal(proto_default_socket_path(path, sizeof(path)), 0);
	if (geteuid() == 0) {
		assert_string_equal(path, "/run/smcache/smcached.sock");
		return;
	}
	assert_string_equal(path, "/run/user/4242/smcache/smcached.sock");

	unsetenv(PROTO_SOCKET_ENV);
	unsetenv("XDG_RUNTIME_DIR");
	snprintf(want, sizeof(want), "/tmp/smcache-%lu/smcached.sock", (unsigned long)geteuid());
	assert_int_equal(proto_default_socket_path(path, sizeof(path)), 0);
	assert_string_equal(path, want);

	/* Relative or empty XDG_RUNTIME_DIR is ignored, as the XDG spec says. */
	setenv("XDG_RUNTIME_DIR", "relative/dir", 1);
	assert_int_equal(proto_default_socket_path(path, sizeof(path)), 0);
	assert_string_equal(path, want);
	setenv("XDG_RUNTIME_DIR", "", 1);
	assert_int_equal(proto_default_socket_path(path, sizeof(path)), 0);
	assert_string_equal(path, want);
}

/* Clients: $SMCACHE_SOCKET alone; else the per-user path (non-root), then the system one. */
static void
test_sockpath_candidates(void **state)
{
	struct proto_socket_candidate c[PROTO_SOCKET_CANDIDATES_MAX];
	char lng[PROTO_SOCKET_PATH_MAX + 1];

	setenv(PROTO_SOCKET_ENV, "/srv/custom/agent.sock", 1);
	assert_int_equal(proto_socket_candidates(c), 1);
	assert_string_equal(c[0].path, "/srv/custom/agent.sock");
	assert_int_equal(c[0].trust, PROTO_TRUST_AS_GIVEN);

	memset(lng, 'x', sizeof(lng) - 1);
	lng[0] = '/';
	lng[sizeof(lng) - 1] = '\0';
	setenv(PROTO_SOCKET_ENV, lng, 1);
	errno = 0;
	assert_int_equal(proto_socket_candidates(c), -1);
	assert_int_equal(errno, ENAMETOOLONG);

	setenv(PROTO_SOCKET_ENV, "", 1);
	setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
	if (geteuid() == 0) {
		assert_int_equal(proto_socket_candidates(c), 1);
		assert_string_equal(c[0].path, PROTO_SOCKET_SYSTEM_PATH);
		assert_int_equal(c[0].trust, PROTO_TRUST_SYSTEM);
	} else {
		assert_int_equal(proto_socket_candidates(c), 2);
		assert_string_equal(c[0].path, "/run/user/4242/smcache/smcached.sock");
		assert_int_equal(c[0].trust, PROTO_TRUST_SELF);
		assert_string_equal(c[1].path, PROTO_SOCKET_SYSTEM_PATH);
		assert_int_equal(c[1].trust, PROTO_TRUST_SYSTEM);
	}

	/* The owner rule. */
	assert_true(proto_socket_uid_trusted(PROTO_TRUST_AS_GIVEN, 12345));
	assert_true(proto_socket_uid_trusted(PROTO_TRUST_SELF, 0));
	assert_true(proto_socket_uid_trusted(PROTO_TRUST_SELF, geteuid()));
	assert_false(proto_socket_uid_trusted(PROTO_TRUST_SELF, geteuid() + 1));
	assert_true(proto_socket_uid_trusted(PROTO_TRUST_SYSTEM, 0));
	assert_false(proto_socket_uid_trusted(PROTO_TRUST_SYSTEM, 65534));	/* nobody */
}

static void
test_sockpath_root(void **state)
{
	char path[PROTO_SOCKET_PATH_MAX], lng[200];

	unsetenv(PROTO_SOCKET_ENV);
	memset(lng, 'r', sizeof(lng));
	lng[0] = '/';
	lng[sizeof(lng) - 1] = '\0';
	setenv("XDG_RUNTIME_DIR", lng, 1);
	if (geteuid() == 0) {
		/* root ignores XDG_RUNTIME_DIR entirely. */
		assert_int_equal(proto_default_socket_path(path, sizeof(path)), 0);
		assert_string_equal(path, PROTO_SOCKET_SYSTEM_PATH);
	} else {
		errno = 0;
		assert_int_equal(proto_default_socket_path(path, sizeof(path)), -1);
		assert_int_equal(errno, ENAMETOOLONG);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_doc_vectors_match),
		cmocka_unit_test(test_golden_all_decode),
		cmocka_unit_test(test_encode_ping_request),
		cmocka_unit_test(test_encode_ping_reply),
		cmocka_unit_test(test_encode_get_request),
		cmocka_unit_test(test_encode_get_reply),
		cmocka_unit_test(test_encode_error_not_found),
		cmocka_unit_test(test_encode_error_too_large),
		cmocka_unit_test(test_encode_stats),
		cmocka_unit_test(test_encode_health),
		cmocka_unit_test(test_decode_health),
		cmocka_unit_test(test_encode_describe),
		cmocka_unit_test(test_decode_ping),
		cmocka_unit_test(test_decode_get),
		cmocka_unit_test(test_decode_error_not_found),
		cmocka_unit_test(test_decode_stats),
		cmocka_unit_test(test_decode_describe),
		cmocka_unit_test(test_req_truncated_header),
		cmocka_unit_test(test_req_bad_version),
		cmocka_unit_test(test_req_unknown_op),
		cmocka_unit_test(test_req_reply_bit),
		cmocka_unit_test(test_req_nonzero_status),
		cmocka_unit_test(test_req_reserved_flags),
		cmocka_unit_test(test_req_truncated_field_header),
		cmocka_unit_test(test_req_truncated_field_value),
		cmocka_unit_test(test_req_trailing_garbage),
		cmocka_unit_test(test_req_unknown_tag),
		cmocka_unit_test(test_req_unknown_ignorable_tag_skipped),
		cmocka_unit_test(test_req_field_not_valid_for_op),
		cmocka_unit_test(test_req_reply_field_in_request),
		cmocka_unit_test(test_req_duplicate_field),
		cmocka_unit_test(test_req_string_nul),
		cmocka_unit_test(test_req_string_bad_utf8),
		cmocka_unit_test(test_req_string_good_utf8),
		cmocka_unit_test(test_req_string_too_long),
		cmocka_unit_test(test_req_string_empty),
		cmocka_unit_test(test_req_missing_secret_id),
		cmocka_unit_test(test_req_get_stage_and_id),
		cmocka_unit_test(test_req_roundtrip),
		cmocka_unit_test(test_rep_unknown_tags),
		cmocka_unit_test(test_rep_header_checks),
		cmocka_unit_test(test_rep_error_reply_fields),
		cmocka_unit_test(test_rep_field_not_valid),
		cmocka_unit_test(test_rep_get_value_exactly_one),
		cmocka_unit_test(test_rep_missing_required),
		cmocka_unit_test(test_rep_u64_size),
		cmocka_unit_test(test_rep_stage_repeats),
		cmocka_unit_test(test_rep_versions_and_stats),
		cmocka_unit_test(test_rep_nested_truncated),
		cmocka_unit_test(test_rep_strings_checked),
		cmocka_unit_test(test_rep_value_size_limit),
		cmocka_unit_test(test_frame_check),
		cmocka_unit_test(test_writer_overflow),
		cmocka_unit_test(test_writer_oversize_body),
		cmocka_unit_test(test_writer_appends_frames),
		cmocka_unit_test(test_put_cstr_null),
		cmocka_unit_test(test_encode_error_truncates_utf8),
		cmocka_unit_test(test_encode_error_sanitises),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_field_next),
		cmocka_unit_test_setup_teardown(test_sockpath_env, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_sockpath_env_too_long, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_sockpath_default_for_uid, env_setup,
		    env_teardown),
		cmocka_unit_test_setup_teardown(test_sockpath_root, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_sockpath_candidates, env_setup, env_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
