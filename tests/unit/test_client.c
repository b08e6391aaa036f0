/*
 * test_client: libsmcache against a fake agent. A server thread accepts on a
 * temporary Unix socket and runs a per-test script that reads request frames
 * and answers with canned frames built by the codec, or misbehaves on
 * purpose (closes mid-reply, lies about lengths, answers the wrong request,
 * never answers). Failures seen by the server thread are recorded and
 * asserted from the test thread: cmocka is not thread-safe.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "frame.h"
#include "message.h"
#include "smcache.h"
#include "wire.h"

#define MAX_REQS	16
#define FRAME_CAP	(PROTO_FRAME_MAX_BODY + PROTO_FRAME_PREFIX_LEN)

struct seen_request {
	uint8_t op;
	uint16_t flags;
	uint32_t id;
	int connection;
	char secret_id[PROTO_MAX_SECRET_ID + 1];
	char stage[PROTO_MAX_VERSION_STAGE + 1];
	char version_id[PROTO_MAX_VERSION_ID + 1];
	int has_stage, has_version_id;
};

struct fake;
/* Serves one accepted connection; `conn` counts connections from 0. */
typedef void (*script_fn)(struct fake *f, int fd, int conn);

struct fake {
	char dir[64];
	char path[128];
	int lfd;
	pthread_t thread;
	script_fn script;
	int max_connections;
	int connections;		/* accepted so far */
	struct seen_request reqs[MAX_REQS];
	int nreqs;
	char failure[256];		/* first problem the server saw */
	uint16_t status;		/* for scripts that answer with an error */
	const char *value;		/* SecretString of GET replies (default "hunter2") */
	int batch;			/* script_batch_reverse: requests to read before answering */
	uint8_t *frame;			/* FRAME_CAP bytes of scratch */
};

static void
srv_fail(struct fake *f, const char *fmt, ...)
{
	va_list ap;

	if (f->failure[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(f->failure, sizeof(f->failure), fmt, ap);
	va_end(ap);
}

static int
srv_read_n(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	ssize_t r;

	while (n > 0) {
		r = recv(fd, p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void
srv_send(struct fake *f, int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	ssize_t r;

	while (n > 0) {
		r = send(fd, p, n, MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			srv_fail(f, "send: %s", strerror(errno));
			return;
		}
		p += r;
		n -= (size_t)r;
	}
}

static void
copy_str(char *dst, size_t cap, struct proto_str s)
{
	size_t n = s.len < cap - 1 ? s.len : cap - 1;

	if (s.ptr != NULL)
		memcpy(dst, s.ptr, n);
	dst[s.ptr != NULL ? n : 0] = '\0';
}

/* Reads and decodes one request, recording it. -1 at EOF or on a bad frame. */
static int
srv_read_request(struct fake *f, int fd, int conn, struct proto_request *req)
{
	uint8_t prefix[PROTO_FRAME_PREFIX_LEN];
	static uint8_t body[PROTO_FRAME_MAX_BODY];
	struct proto_decode_error derr;
	struct seen_request *s;
	size_t len;

	if (srv_read_n(fd, prefix, sizeof(prefix)) == -1)
		return -1;
	if (proto_frame_check(prefix, sizeof(prefix), PROTO_FRAME_MAX_BODY, &len) !=
	    PROTO_FRAME_NEED_MORE) {
		srv_fail(f, "bad request length %zu", len);
		return -1;
	}
	if (srv_read_n(fd, body, len) == -1) {
		srv_fail(f, "truncated request");
		return -1;
	}
	if (proto_request_decode(body, len, req, &derr) != 0) {
		srv_fail(f, "undecodable request: %s", derr.message);
		return -1;
	}
	if (f->nreqs < MAX_REQS) {
		s = &f->reqs[f->nreqs++];
		s->op = req->header.op;
		s->flags = req->header.flags;
		s->id = req->header.request_id;
		s->connection = conn;
		copy_str(s->secret_id, sizeof(s->secret_id), req->secret_id);
		copy_str(s->stage, sizeof(s->stage), req->version_stage);
		copy_str(s->version_id, sizeof(s->version_id), req->version_id);
		s->has_stage = req->version_stage.ptr != NULL;
		s->has_version_id = req->version_id.ptr != NULL;
	}
	return 0;
}

/* Waits for the client to hang up (drains anything it sends). */
static void
srv_wait_eof(int fd)
{
	uint8_t buf[512];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	while (poll(&pfd, 1, 5000) > 0 && recv(fd, buf, sizeof(buf), 0) > 0)
		;
}

static void *
fake_main(void *arg)
{
	struct fake *f = arg;
	struct pollfd pfd;
	int fd;

	while (f->connections < f->max_connections) {
		pfd.fd = f->lfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 3000) <= 0)
			break;		/* the client did not come (back): stop */
		if ((fd = accept(f->lfd, NULL, NULL)) == -1)
			break;		/* shut down by fake_join */
		f->script(f, fd, f->connections++);
		close(fd);
	}
	return NULL;
}

static int
fake_listen(struct fake *f, int backlog)
{
	struct sockaddr_un sa;

	snprintf(f->dir, sizeof(f->dir), "/tmp/smc-test-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/s.sock", f->dir);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, f->path, strlen(f->path) + 1);
	if ((f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) == -1 || listen(f->lfd, backlog) == -1)
		return -1;
	return 0;
}

static struct fake *
fake_start(script_fn script, int max_connections)
{
	struct fake *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_non_null(f->frame = malloc(FRAME_CAP));
	f->script = script;
	f->max_connections = max_connections;
	assert_int_equal(fake_listen(f, 16), 0);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
	return f;
}

/* Waits for the server to finish (it stops when its clients are gone). */
static void
fake_join(struct fake *f)
{
	(void)shutdown(f->lfd, SHUT_RDWR);	/* wakes a server waiting for a client */
	pthread_join(f->thread, NULL);
	close(f->lfd);
	unlink(f->path);
	rmdir(f->dir);
}

/* Frees the fake after checking the server saw no problem. */
static void
fake_free(struct fake *f)
{
	char failure[sizeof(f->failure)];

	memcpy(failure, f->failure, sizeof(failure));
	free(f->frame);
	free(f);
	if (failure[0] != '\0')
		fail_msg("fake agent: %s", failure);
}

static void
fake_stop(struct fake *f)
{
	fake_join(f);
	fake_free(f);
}

static smc_client *
connect_ok(struct fake *f, int timeout_ms)
{
	smc_error err;
	smc_client *c = smc_connect(f->path, timeout_ms, &err);

	if (c == NULL)
		fail_msg("smc_connect: %s", err.message);
	assert_int_equal(err.code, SMC_OK);
	return c;
}

/* ---- canned replies ------------------------------------------------------------------- */

static const uint8_t binary_value[] = { 0x00, 'a', 0x00, 0xff, 0x00, '\n' };

/* GET reply for secret "db/pw"; `binary` picks SecretBinary with NUL bytes. */
static size_t
reply_get(struct fake *f, uint32_t id, uint16_t flags, int binary)
{
	struct proto_writer w;
	size_t len = 0;

	proto_writer_init(&w, f->frame, FRAME_CAP);
	proto_message_begin(&w, PROTO_OP_GET | PROTO_OP_REPLY, flags, id, PROTO_STATUS_OK);
	proto_put_cstr(&w, PROTO_TAG_ARN, "arn:aws:secretsmanager:us-east-1:123456789012:secret:db/pw-AbCdEf");
	proto_put_cstr(&w, PROTO_TAG_NAME, "db/pw");
	proto_put_cstr(&w, PROTO_TAG_VERSION_ID, "11111111-2222-3333-4444-555555555555");
	proto_put_cstr(&w, PROTO_TAG_VERSION_STAGE, "AWSCURRENT");
	proto_put_cstr(&w, PROTO_TAG_VERSION_STAGE, "ops-label");
	if (binary)
		proto_put_bytes(&w, PROTO_TAG_SECRET_BINARY, binary_value, sizeof(binary_value));
	else
		proto_put_bytes(&w, PROTO_TAG_SECRET_STRING, f->value != NULL ? f->value : "hunter2",
		    f->value != NULL ? strlen(f->value) : 7);
	proto_put_u64(&w, PROTO_TAG_CREATED_DATE, 1700000000123ULL);
	if (proto_message_end(&w, &len) != 0)
		srv_fail(f, "cannot encode GET reply");
	return len;
}

static size_t
reply_error(struct fake *f, uint8_t op, uint32_t id, uint16_t status, const char *msg)
{
	struct proto_writer w;
	size_t len = 0;

	proto_writer_init(&w, f->frame, FRAME_CAP);
	if (proto_encode_error(&w, op, id, (enum proto_status)status, msg) != 0)
		srv_fail(f, "cannot encode error reply");
	len = w.len;
	return len;
}

static size_t
reply_ping(struct fake *f, uint32_t id)
{
	struct proto_writer w;
	size_t len = 0;

	proto_writer_init(&w, f->frame, FRAME_CAP);
	proto_message_begin(&w, PROTO_OP_PING | PROTO_OP_REPLY, 0, id, PROTO_STATUS_OK);
	proto_put_cstr(&w, PROTO_TAG_AGENT_VERSION, "smcached 9.8.7");
	if (proto_message_end(&w, &len) != 0)
		srv_fail(f, "cannot encode PING reply");
	return len;
}

/* ---- scripts -------------------------------------------------------------------------- */

/* Answers GETs (string or binary: by secret id "bin"), PINGs, DESCRIBEs, STATS. */
static void
script_serve(struct fake *f, int fd, int conn)
{
	struct proto_request req;
	struct proto_writer w;
	size_t len = 0, mark;

	while (srv_read_request(f, fd, conn, &req) == 0) {
		uint32_t id = req.header.request_id;

		switch (req.header.op) {
		case PROTO_OP_GET:
			len = reply_get(f, id, 0, req.secret_id.len == 3 &&
			    memcmp(req.secret_id.ptr, "bin", 3) == 0);
			break;
		case PROTO_OP_PING:
			len = reply_ping(f, id);
			break;
		case PROTO_OP_DESCRIBE:
			proto_writer_init(&w, f->frame, FRAME_CAP);
			proto_message_begin(&w, PROTO_OP_DESCRIBE | PROTO_OP_REPLY, 0, id, 0);
			proto_put_cstr(&w, PROTO_TAG_ARN, "arn:x:db/pw");
			proto_put_cstr(&w, PROTO_TAG_NAME, "db/pw");
			proto_put_cstr(&w, PROTO_TAG_DESCRIPTION, "the database password");
			proto_put_u64(&w, PROTO_TAG_CREATED_DATE, 1000);
			proto_put_u64(&w, PROTO_TAG_LAST_CHANGED_DATE, 2000);
			proto_put_u64(&w, PROTO_TAG_DELETED_DATE, 3000);
			mark = proto_nested_begin(&w, PROTO_TAG_VERSION);
			proto_put_cstr(&w, PROTO_TAG_VERSION_ID, "v-new");
			proto_put_cstr(&w, PROTO_TAG_VERSION_STAGE, "AWSCURRENT");
			proto_put_cstr(&w, PROTO_TAG_VERSION_STAGE, "AWSPENDING");
			proto_put_u64(&w, PROTO_TAG_CREATED_DATE, 1500);
			proto_nested_end(&w, mark);
			mark = proto_nested_begin(&w, PROTO_TAG_VERSION);
			proto_put_cstr(&w, PROTO_TAG_VERSION_ID, "v-old");
			proto_put_cstr(&w, PROTO_TAG_VERSION_STAGE, "AWSPREVIOUS");
			proto_nested_end(&w, mark);
			if (proto_message_end(&w, &len) != 0)
				srv_fail(f, "cannot encode DESCRIBE reply");
			break;
		case PROTO_OP_STATS:
			proto_writer_init(&w, f->frame, FRAME_CAP);
			proto_message_begin(&w, PROTO_OP_STATS | PROTO_OP_REPLY, 0, id, 0);
			mark = proto_nested_begin(&w, PROTO_TAG_STAT);
			proto_put_cstr(&w, PROTO_TAG_STAT_NAME, "requests");
			proto_put_u64(&w, PROTO_TAG_STAT_VALUE, 42);
			proto_nested_end(&w, mark);
			mark = proto_nested_begin(&w, PROTO_TAG_STAT);
			proto_put_cstr(&w, PROTO_TAG_STAT_NAME, "big");
			proto_put_u64(&w, PROTO_TAG_STAT_VALUE, UINT64_MAX);
			proto_nested_end(&w, mark);
			mark = proto_nested_begin(&w, PROTO_TAG_STAT);
			proto_put_cstr(&w, PROTO_TAG_STAT_NAME, "zero");
			proto_put_u64(&w, PROTO_TAG_STAT_VALUE, 0);
			proto_nested_end(&w, mark);
			if (proto_message_end(&w, &len) != 0)
				srv_fail(f, "cannot encode STATS reply");
			break;
		case PROTO_OP_HEALTH:
			proto_writer_init(&w, f->frame, FRAME_CAP);
			proto_message_begin(&w, PROTO_OP_HEALTH | PROTO_OP_REPLY, 0, id, 0);
			proto_put_u64(&w, PROTO_TAG_READY, 0);
			proto_put_cstr(&w, PROTO_TAG_HEALTH_REASON, "first\x1b[31m");
			proto_put_cstr(&w, PROTO_TAG_HEALTH_REASON, "second");
			proto_put_u64(&w, PROTO_TAG_CREDENTIALS, PROTO_CRED_REJECTED);
			proto_put_u64(&w, PROTO_TAG_STARTED_DATE, 1000);
			proto_put_u64(&w, PROTO_TAG_LAST_SUCCESS_DATE, 2000);
			proto_put_u64(&w, PROTO_TAG_LAST_FAILURE_DATE, 3000);
			proto_put_u64(&w, PROTO_TAG_LAST_FAILURE_STATUS, PROTO_STATUS_UPSTREAM_AUTH);
			proto_put_u64(&w, PROTO_TAG_BREAKER_OPEN, 1);
			proto_put_u64(&w, PROTO_TAG_PREFETCH_PENDING, 2);
			proto_put_u64(&w, PROTO_TAG_CACHE_SECRETS, 5);
			proto_put_u64(&w, PROTO_TAG_CACHE_VERSIONS, 6);
			proto_put_u64(&w, 0x8123, 7);	/* a newer agent's field: skipped */
			if (proto_message_end(&w, &len) != 0)
				srv_fail(f, "cannot encode HEALTH reply");
			break;
		default:
			srv_fail(f, "unexpected op %u", req.header.op);
			return;
		}
		srv_send(f, fd, f->frame, len);
	}
}

/* ---- success paths -------------------------------------------------------------------- */

static void
test_get_string(void **state)
{
	struct fake *f = fake_start(script_serve, 1);
	smc_client *c = connect_ok(f, 2000);
	smc_secret *s = NULL;
	smc_error err;

	assert_int_equal(smc_get(c, "db/pw", NULL, &s, &err), 0);
	assert_int_equal(err.code, SMC_OK);
	assert_string_equal(smc_secret_arn(s),
	    "arn:aws:secretsmanager:us-east-1:123456789012:secret:db/pw-AbCdEf");
	assert_string_equal(smc_secret_name(s), "db/pw");
	assert_string_equal(smc_secret_version_id(s), "11111111-2222-3333-4444-555555555555");
	assert_int_equal(smc_secret_stage_count(s), 2);
	assert_string_equal(smc_secret_stage(s, 0), "AWSCURRENT");
	assert_string_equal(smc_secret_stage(s, 1), "ops-label");
	assert_null(smc_secret_stage(s, 2));
	assert_true(smc_secret_created_ms(s) == 1700000000123LL);
	assert_int_equal(smc_secret_is_binary(s), 0);
	assert_int_equal(smc_secret_is_stale(s), 0);
	assert_int_equal(smc_secret_value_len(s), 7);
	assert_memory_equal(smc_secret_value(s), "hunter2", 7);
	assert_int_equal(smc_secret_value(s)[7], 0);
	assert_string_equal(smc_secret_string(s), "hunter2");
	smc_secret_free(s);
	smc_close(c);
	fake_stop(f);
}

static void
test_get_sends_options(void **state)
{
	struct fake *f = fake_start(script_serve, 1);
	smc_client *c = connect_ok(f, 2000);
	smc_get_options o1 = { .version_stage = "AWSPREVIOUS" };
	smc_get_options o3 = { .version_stage = "AWSCURRENT", .version_id = "v-456" };
	smc_get_options o4 = { .refresh = 1 };
	smc_secret *s;
	smc_error err;
	struct seen_request r[4];

	assert_int_equal(smc_get(c, "a", NULL, &s, &err), 0);
	smc_secret_free(s);
	assert_int_equal(smc_get(c, "b", &o1, &s, &err), 0);
	smc_secret_free(s);
	assert_int_equal(smc_get(c, "c", &o3, &s, &err), 0);
	smc_secret_free(s);
	assert_int_equal(smc_get(c, "d", &o4, &s, &err), 0);
	smc_secret_free(s);
	smc_close(c);
	fake_join(f);
	memcpy(r, f->reqs, sizeof(r));
	assert_int_equal(f->nreqs, 4);
	/* Only a refresh request carries the REFRESH flag. */
	assert_int_equal(r[0].flags, 0);
	assert_int_equal(r[2].flags, 0);
	assert_int_equal(r[3].flags, PROTO_FLAG_REFRESH);
	assert_string_equal(r[3].secret_id, "d");
	assert_int_equal(r[0].op, PROTO_OP_GET);
	assert_string_equal(r[0].secret_id, "a");
	assert_false(r[0].has_stage);
	assert_false(r[0].has_version_id);
	assert_string_equal(r[1].secret_id, "b");
	assert_true(r[1].has_stage);
	assert_string_equal(r[1].stage, "AWSPREVIOUS");
	assert_false(r[1].has_version_id);
	assert_string_equal(r[2].stage, "AWSCURRENT");
	assert_string_equal(r[2].version_id, "v-456");
	/* Request ids count up per request on a handle. */
	assert_int_equal(r[1].id, r[0].id + 1);
	assert_int_equal(r[2].id, r[1].id + 1);
	assert_int_equal(r[0].connection, r[2].connection);
	fake_free(f);
}

static void
test_get_binary_with_nuls(void **state)
{
	struct fake *f = fake_start(script_serve, 1);
	smc_client *c = connect_ok(f, 2000);
	smc_secret *s = NULL;
	smc_error err;

	assert_int_equal(smc_get(c, "bin", NULL, &s, &err), 0);
	assert_int_equal(smc_secret_is_binary(s), 1);
	assert_null(smc_secret_string(s));
	assert_int_equal(smc_secret_value_len(s), sizeof(binary_value));
	assert_memory_equal(smc_secret_value(s), binary_value, sizeof(binary_value));
	assert_int_equal(smc_secret_value(s)[sizeof(binary_value)], 0);
	smc_secret_free(s);
	smc_close(c);
	fake_stop(f);
}

static void
script_stale(struct fake *f, int fd, int conn)
{
	struct proto_request req;
	size_t len;

	while (srv_read_request(f, fd, conn, &req) == 0) {
		len = reply_get(f, req.header.request_id, PROTO_FLAG_STALE, 0);
		srv_send(f, fd, f->frame, len);
	}
}

static void
test_get_stale_flag(void **state)
{
	struct fake *f = fake_start(script_stale, 1);
	smc_client *c = connect_ok(f, 2000);
	smc_secret *s = NULL;
	smc_error err;

	assert_int_equal(smc_get(c, "db/pw", NULL, &s, &err), 0);
	assert_int_equal(smc_secret_is_stale(s), 1);
	assert_string_equal(smc_secret_string(s), "hunter2");
	smc_secret_free(s);
	smc_close(c);
	fake_stop(f);
}

static void
test_describe(void **state)
{
	struct fake *f = fake_start(script_serve, 1);
	smc_client *c = connect_ok(f, 2000);
	smc_description *d = NULL;
	smc_error err;

	assert_int_equal(smc_describe(c, "db/pw", &d, &err), 0);
	assert_string_equal(smc_description_arn(d), "arn:x:db/pw");
	assert_string_equal(smc_description_name(d), "db/pw");
	assert_string_equal(smc_description_text(d), "the database password");
	assert_true(smc_description_created_ms(d) == 1000);
	assert_true(smc_description_last_changed_ms(d) == 2000);
	assert_true(smc_description_deleted_ms(d) == 3000);
	assert_int_equal(smc_description_is_stale(d), 0);
	assert_int_equal(smc_description_version_count(d), 2);
	assert_string_equal(smc_description_version_id(d, 0), "v-new");
	assert_int_equal(smc_description_version_stage_count(d, 0), 2);
	assert_string_equal(smc_description_version_stage(d, 0, 0), "AWSCURRENT");
	assert_string_equal(smc_description_version_stage(d, 0, 1), "AWSPENDING");
	assert_null(smc_description_version_stage(d, 0, 2));
	assert_true(smc_description_version_created_ms(d, 0) == 1500);
	assert_string_equal(smc_description_version_id(d, 1), "v-old");
	assert_int_equal(smc_description_version_stage_count(d, 1), 1);
	assert_string_equal(smc_description_version_stage(d, 1, 0), "AWSPREVIOUS");
	assert_true(smc_description_version_created_ms(d, 1) == 0);
	assert_null(smc_description_version_id(d, 2));
	assert_int_equal(smc_description_version_stage_count(d, 2), 0);
	smc_description_free(d);
	smc_close(c);
	fake_stop(f);
}

static void
test_ping(void **state)
{
	struct fake *f = fake_start(script_serve, 1);
	smc_client *c = connect_ok(f, 2000);
	char version[64], tiny[5];
	smc_error err;

	assert_int_equal(smc_ping(c, version, sizeof(version), &err), 0);
	assert_string_equal(version, "smcached 9.8.7");
	assert_int_equal(smc_ping(c, tiny, sizeof(tiny), &err), 0);
	assert_string_equal(tiny, "smca");	/* truncated, still terminated */
	assert_int_equal(smc_ping(c, NULL, 0, NULL), 0);
	smc_close(c);
	fake_stop(f);
}

static void
test_health(void **state)
{
	struct fake *f = fake_start(script_serve, 1);
	smc_client *c = connect_ok(f, 2000);
	smc_health_info hi;
	smc_error err;

	assert_int_equal(smc_health(c, &hi, &err), 0);
	assert_int_equal(err.code, SMC_OK);
	assert_int_equal(hi.live, 1);
	assert_int_equal(hi.ready, 0);
	assert_string_equal(hi.reasons, "first\x1b[31m; second");	/* the CLI neutralises */
	assert_int_equal(hi.credentials, SMC_CREDENTIALS_REJECTED);
	assert_int_equal(hi.started_ms, 1000);
	assert_int_equal(hi.last_success_ms, 2000);
	assert_int_equal(hi.last_failure_ms, 3000);
	assert_int_equal(hi.last_failure, SMC_ERR_UPSTREAM_AUTH);
	assert_int_equal(hi.breaker_open, 1);
	assert_int_equal(hi.prefetch_pending, 2);
	assert_int_equal(hi.cache_secrets, 5);
	assert_int_equal(hi.cache_versions, 6);
	assert_int_equal(smc_health(c, NULL, &err), -1);
	assert_int_equal(err.code, SMC_ERR_USAGE);
	smc_close(c);
	fake_stop(f);
}

static void
test_stats(void **state)
{
	struct fake *f = fake_start(script_serve, 1);
	smc_client *c = connect_ok(f, 2000);
	smc_stat_list *st = NULL;
	smc_error err;
	uint64_t v = 1;

	assert_int_equal(smc_stats(c, &st, &err), 0);
	assert_int_equal(smc_stat_list_count(st), 3);
	assert_string_equal(smc_stat_list_name(st, 0), "requests");
	assert_true(smc_stat_list_value(st, 0) == 42);
	assert_string_equal(smc_stat_list_name(st, 1), "big");
	assert_true(smc_stat_list_value(st, 1) == UINT64_MAX);
	assert_null(smc_stat_list_name(st, 3));
	assert_int_equal(smc_stat_list_find(st, "zero", &v), 0);
	assert_true(v == 0);
	assert_int_equal(smc_stat_list_find(st, "nope", &v), -1);
	smc_stat_list_free(st);
	smc_close(c);
	fake_stop(f);
}

static void
test_fetch_uses_env_socket(void **state)
{
	struct fake *f = fake_start(script_serve, 1);
	smc_secret *s = NULL;
	smc_error err;

	assert_int_equal(setenv("SMCACHE_SOCKET", f->path, 1), 0);
	assert_int_equal(smc_fetch("db/pw", &s, &err), 0);
	assert_string_equal(smc_secret_string(s), "hunter2");
	smc_secret_free(s);
	unsetenv("SMCACHE_SOCKET");
	fake_stop(f);
}

/* ---- agent errors --------------------------------------------------------------------- */

/* Answers every request with f->status and a message naming it; the
 * status is bumped by the test between calls. */
static void
script_errors(struct fake *f, int fd, int conn)
{
	struct proto_request req;
	char msg[64];
	size_t len;

	while (srv_read_request(f, fd, conn, &req) == 0) {
		snprintf(msg, sizeof(msg), "agent says %u\x1b[31m\xc2\x9b" "1m", f->status);
		len = reply_error(f, req.header.op, req.header.request_id, f->status, msg);
		srv_send(f, fd, f->frame, len);
	}
}

static void
test_status_mapping(void **state)
{
	static const struct { uint16_t status; smc_error_code code; } map[] = {
		{ PROTO_STATUS_NOT_FOUND, SMC_ERR_NOT_FOUND },
		{ PROTO_STATUS_ACCESS_DENIED, SMC_ERR_ACCESS_DENIED },
		{ PROTO_STATUS_BAD_REQUEST, SMC_ERR_BAD_REQUEST },
		{ PROTO_STATUS_UPSTREAM_UNAVAILABLE, SMC_ERR_UPSTREAM_UNAVAILABLE },
		{ PROTO_STATUS_INTERNAL, SMC_ERR_INTERNAL },
		{ PROTO_STATUS_UNSUPPORTED, SMC_ERR_UNSUPPORTED },
		{ PROTO_STATUS_LIMIT_EXCEEDED, SMC_ERR_LIMIT_EXCEEDED },
		{ PROTO_STATUS_UPSTREAM_AUTH, SMC_ERR_UPSTREAM_AUTH },
		{ PROTO_STATUS_TOO_LARGE, SMC_ERR_BAD_REQUEST },	/* closes: a reconnect follows */
		{ 77, SMC_ERR_PROTOCOL },			/* unknown: not trusted, reconnect */
		{ PROTO_STATUS_NOT_FOUND, SMC_ERR_NOT_FOUND },
	};
	struct fake *f = fake_start(script_errors, 3);
	smc_client *c = connect_ok(f, 2000);
	smc_secret *s;
	smc_error err;
	char want[64];
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		f->status = map[i].status;	/* the server reads it only after our send */
		s = (smc_secret *)&err;		/* must be reset to NULL */
		assert_int_equal(smc_get(c, "x", NULL, &s, &err), -1);
		assert_null(s);
		assert_int_equal(err.code, map[i].code);
		/* The agent's message is passed on, control characters neutralised. */
		snprintf(want, sizeof(want), "agent says %u?[31m??1m", map[i].status);
		if (map[i].code != SMC_ERR_PROTOCOL)
			assert_string_equal(err.message, want);
	}
	smc_close(c);
	fake_stop(f);
}

static void
test_status_mapping_other_ops(void **state)
{
	struct fake *f = fake_start(script_errors, 1);
	smc_client *c = connect_ok(f, 2000);
	smc_description *d = (smc_description *)&f;
	smc_stat_list *st = (smc_stat_list *)&f;
	smc_error err;

	f->status = PROTO_STATUS_NOT_FOUND;
	assert_int_equal(smc_describe(c, "x", &d, &err), -1);
	assert_null(d);
	assert_int_equal(err.code, SMC_ERR_NOT_FOUND);
	f->status = PROTO_STATUS_LIMIT_EXCEEDED;
	assert_int_equal(smc_stats(c, &st, &err), -1);
	assert_null(st);
	assert_int_equal(err.code, SMC_ERR_LIMIT_EXCEEDED);
	f->status = PROTO_STATUS_INTERNAL;
	assert_int_equal(smc_ping(c, NULL, 0, &err), -1);
	assert_int_equal(err.code, SMC_ERR_INTERNAL);
	smc_close(c);
	fake_stop(f);
}

/* An error the agent sends before it could read the request id. */
static void
script_error_id_zero(struct fake *f, int fd, int conn)
{
	struct proto_request req;
	size_t len;

	if (srv_read_request(f, fd, conn, &req) == 0) {
		len = reply_error(f, 0, 0, PROTO_STATUS_BAD_REQUEST, "unparseable");
		srv_send(f, fd, f->frame, len);
		srv_wait_eof(fd);
	}
}

static void
test_error_without_request_id(void **state)
{
	struct fake *f = fake_start(script_error_id_zero, 1);
	smc_client *c = connect_ok(f, 2000);
	smc_error err;

	assert_int_equal(smc_ping(c, NULL, 0, &err), -1);
	assert_int_equal(err.code, SMC_ERR_BAD_REQUEST);
	assert_string_equal(err.message, "unparseable");
	smc_close(c);
	fake_stop(f);
}

/* ---- transport failures --------------------------------------------------------------- */

static void
script_silent(struct fake *f, int fd, int conn)
{
	struct proto_request req;

	if (srv_read_request(f, fd, conn, &req) == 0)
		srv_wait_eof(fd);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
test_timeout(void **state)
{
	struct fake *f = fake_start(script_silent, 1);
	smc_client *c = connect_ok(f, 2000);
	smc_secret *s;
	smc_error err;
	int64_t t0, dt;

	smc_set_timeout(c, 200);
	t0 = now_ms();
	assert_int_equal(smc_get(c, "db/pw", NULL, &s, &err), -1);
	dt = now_ms() - t0;
	assert_int_equal(err.code, SMC_ERR_UNREACHABLE);
	assert_non_null(strstr(err.message, "timed out"));
	assert_true(dt >= 195 && dt < 1500);
	smc_close(c);	/* the server sees EOF and stops */
	fake_stop(f);
}

static void
test_connect_failures(void **state)
{
	struct sockaddr_un sa;
	char dir[] = "/tmp/smc-test-XXXXXX", path[128], longpath[300];
	smc_error err;
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/none.sock", dir);
	/* No socket file at all. */
	assert_null(smc_connect(path, 500, &err));
	assert_int_equal(err.code, SMC_ERR_UNREACHABLE);
	assert_non_null(strstr(err.message, path));
	/* A socket file nobody listens on: connection refused. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_null(smc_connect(path, 500, &err));
	assert_int_equal(err.code, SMC_ERR_UNREACHABLE);
	assert_non_null(strstr(err.message, "refused"));
	close(fd);
	unlink(path);
	rmdir(dir);
	/* A path that cannot fit sun_path is a usage error; so is an empty one. */
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_null(smc_connect(longpath, 500, &err));
	assert_int_equal(err.code, SMC_ERR_USAGE);
	assert_null(smc_connect("", 500, &err));
	assert_int_equal(err.code, SMC_ERR_USAGE);
	assert_null(smc_connect(path, 500, NULL));	/* err may be NULL */
}

static void
test_connect_timeout_backlog_full(void **state)
{
	struct fake f;
	smc_client *c[64];
	smc_error err;
	int n = 0, timed_out = 0;
	int64_t t0, dt = 0;

	/* Nobody accepts: once the backlog is full, connects must time out. */
	memset(&f, 0, sizeof(f));
	assert_int_equal(fake_listen(&f, 0), 0);
	while (n < 64) {
		t0 = now_ms();
		c[n] = smc_connect(f.path, 100, &err);
		if (c[n] == NULL) {
			dt = now_ms() - t0;
			timed_out = 1;
			break;
		}
		n++;
	}
	assert_true(timed_out);
	assert_int_equal(err.code, SMC_ERR_UNREACHABLE);
	assert_non_null(strstr(err.message, "timed out"));
	assert_true(dt >= 95 && dt < 1000);
	while (n > 0)
		smc_close(c[--n]);
	close(f.lfd);
	unlink(f.path);
	rmdir(f.dir);
}

static void
script_close_mid_frame(struct fake *f, int fd, int conn)
{
	struct proto_request req;
	size_t len;

	if (srv_read_request(f, fd, conn, &req) == 0) {
		len = reply_get(f, req.header.request_id, 0, 0);
		srv_send(f, fd, f->frame, len / 2);
	}
}

static void
test_agent_closes_mid_reply(void **state)
{
	struct fake *f = fake_start(script_close_mid_frame, 1);
	smc_client *c = connect_ok(f, 2000);
	smc_secret *s;
	smc_error err;

	assert_int_equal(smc_get(c, "db/pw", NULL, &s, &err), -1);
	assert_null(s);
	assert_int_equal(err.code, SMC_ERR_UNREACHABLE);
	assert_non_null(strstr(err.message, "middle"));
	smc_close(c);
	fake_stop(f);
}

static void
script_close_without_reply(struct fake *f, int fd, int conn)
{
	struct proto_request req;

	(void)srv_read_request(f, fd, conn, &req);
}

static void
test_agent_closes_fresh_connection(void **state)
{
	/* A fresh connection closed before any reply is not retried: the agent
	 * saw the request and chose to hang up. */
	struct fake *f = fake_start(script_close_without_reply, 2);
	smc_client *c = connect_ok(f, 2000);
	smc_error err;

	assert_int_equal(smc_ping(c, NULL, 0, &err), -1);
	assert_int_equal(err.code, SMC_ERR_UNREACHABLE);
	smc_close(c);
	fake_join(f);
	assert_int_equal(f->connections, 1);
	assert_int_equal(f->nreqs, 1);
	fake_free(f);
}

/* Connection 0 answers one request, then hangs up as an idle agent would;
 * connection 1 serves normally. */
static void
script_idle_close(struct fake *f, int fd, int conn)
{
	struct proto_request req;
	size_t len;

	if (conn > 0) {
		script_serve(f, fd, conn);
		return;
	}
	if (srv_read_request(f, fd, conn, &req) == 0) {
		len = reply_ping(f, req.header.request_id);
		srv_send(f, fd, f->frame, len);
	}
}

static void
test_reconnects_after_idle_close(void **state)
{
	struct fake *f = fake_start(script_idle_close, 2);
	smc_client *c = connect_ok(f, 2000);
	smc_secret *s;
	smc_error err;

	assert_int_equal(smc_ping(c, NULL, 0, &err), 0);
	usleep(50 * 1000);	/* let the agent's close land */
	assert_int_equal(smc_get(c, "db/pw", NULL, &s, &err), 0);
	assert_string_equal(smc_secret_string(s), "hunter2");
	smc_secret_free(s);
	assert_int_equal(f->connections, 2);
	smc_close(c);
	fake_stop(f);
}

static void
script_huge_length(struct fake *f, int fd, int conn)
{
	struct proto_request req;
	uint8_t prefix[4];

	if (srv_read_request(f, fd, conn, &req) == 0) {
		proto_store_u32(prefix, f->status == 0 ? 0xfffffff0u : PROTO_HEADER_LEN - 1);
		srv_send(f, fd, prefix, sizeof(prefix));
		srv_wait_eof(fd);
	}
}

static void
test_oversized_reply_length(void **state)
{
	struct fake *f = fake_start(script_huge_length, 1);
	smc_client *c = connect_ok(f, 2000);
	smc_secret *s;
	smc_error err;

	assert_int_equal(smc_get(c, "db/pw", NULL, &s, &err), -1);
	assert_int_equal(err.code, SMC_ERR_PROTOCOL);
	assert_non_null(strstr(err.message, "limit"));
	smc_close(c);
	fake_stop(f);

	f = fake_start(script_huge_length, 1);
	f->status = 1;		/* a length shorter than a header */
	c = connect_ok(f, 2000);
	assert_int_equal(smc_get(c, "db/pw", NULL, &s, &err), -1);
	assert_int_equal(err.code, SMC_ERR_PROTOCOL);
	smc_close(c);
	fake_stop(f);
}

/* Connection 0 answers with the wrong request id (f->status 0), the wrong
 * op (1) or garbage (2); connection 1 serves normally. */
static void
script_bad_reply(struct fake *f, int fd, int conn)
{
	struct proto_request req;
	uint8_t garbage[64];
	size_t len, i;

	if (conn > 0) {
		script_serve(f, fd, conn);
		return;
	}
	if (srv_read_request(f, fd, conn, &req) != 0)
		return;
	switch (f->status) {
	case 0:
		len = reply_get(f, req.header.request_id + 1, 0, 0);
		srv_send(f, fd, f->frame, len);
		break;
	case 1:
		len = reply_ping(f, req.header.request_id);
		srv_send(f, fd, f->frame, len);
		break;
	default:
		for (i = 0; i < sizeof(garbage); i++)
			garbage[i] = (uint8_t)(i * 37 + 11);
		proto_store_u32(garbage, sizeof(garbage) - 4);
		srv_send(f, fd, garbage, sizeof(garbage));
		break;
	}
	srv_wait_eof(fd);
}

static void
check_bad_reply(uint16_t variant, const char *needle)
{
	struct fake *f = fake_start(script_bad_reply, 2);
	smc_client *c;
	smc_secret *s;
	smc_error err;

	f->status = variant;
	c = connect_ok(f, 2000);
	assert_int_equal(smc_get(c, "db/pw", NULL, &s, &err), -1);
	assert_null(s);
	assert_int_equal(err.code, SMC_ERR_PROTOCOL);
	assert_non_null(strstr(err.message, needle));
	/* The handle dropped the desynchronised connection and recovers. */
	assert_int_equal(smc_get(c, "db/pw", NULL, &s, &err), 0);
	smc_secret_free(s);
	smc_close(c);
	fake_stop(f);
}

static void
test_wrong_request_id(void **state)
{
	check_bad_reply(0, "request");
}

static void
test_wrong_op(void **state)
{
	check_bad_reply(1, "PING");
}

static void
test_garbage_reply(void **state)
{
	check_bad_reply(2, "malformed");
}

/* Sends the reply one byte at a time. */
static void
script_trickle(struct fake *f, int fd, int conn)
{
	struct proto_request req;
	size_t len, i;

	while (srv_read_request(f, fd, conn, &req) == 0) {
		len = reply_get(f, req.header.request_id, 0, 1);
		for (i = 0; i < len; i++) {
			srv_send(f, fd, f->frame + i, 1);
			if (i % 16 == 0)
				usleep(200);
		}
	}
}

static void
test_partial_reads(void **state)
{
	struct fake *f = fake_start(script_trickle, 1);
	smc_client *c = connect_ok(f, 2000);
	smc_secret *s;
	smc_error err;

	assert_int_equal(smc_get(c, "bin", NULL, &s, &err), 0);
	assert_memory_equal(smc_secret_value(s), binary_value, sizeof(binary_value));
	smc_secret_free(s);
	smc_close(c);
	fake_stop(f);
}

/* ---- usage ---------------------------------------------------------------------------- */

static void
test_usage_errors(void **state)
{
	struct fake *f = fake_start(script_serve, 1);
	smc_client *c = connect_ok(f, 2000);
	char big[PROTO_MAX_SECRET_ID + 2];
	smc_get_options o;
	smc_secret *s;
	smc_error err;

	assert_int_equal(smc_get(c, NULL, NULL, &s, &err), -1);
	assert_int_equal(err.code, SMC_ERR_USAGE);
	assert_int_equal(smc_get(c, "", NULL, &s, &err), -1);
	assert_int_equal(err.code, SMC_ERR_USAGE);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(smc_get(c, big, NULL, &s, &err), -1);
	assert_int_equal(err.code, SMC_ERR_USAGE);
	o.version_stage = big;
	o.version_id = NULL;
	assert_int_equal(smc_get(c, "x", &o, &s, &err), -1);
	assert_int_equal(err.code, SMC_ERR_USAGE);
	o.version_stage = NULL;
	o.version_id = "";
	assert_int_equal(smc_get(c, "x", &o, &s, &err), -1);
	assert_int_equal(err.code, SMC_ERR_USAGE);
	assert_int_equal(smc_get(NULL, "x", NULL, &s, &err), -1);
	assert_int_equal(err.code, SMC_ERR_USAGE);
	assert_int_equal(smc_describe(c, NULL, NULL, &err), -1);
	assert_int_equal(err.code, SMC_ERR_USAGE);
	/* None of that reached the agent; the handle still works. */
	assert_int_equal(smc_ping(c, NULL, 0, &err), 0);
	assert_int_equal(f->nreqs, 1);
	smc_close(c);
	smc_close(NULL);
	smc_secret_free(NULL);
	smc_description_free(NULL);
	smc_stat_list_free(NULL);
	fake_stop(f);
}

/* ---- pipelined batches, per-call deadlines, JSON fields ------------------------------- */

/* Reads f->batch requests without answering, then answers them last first
 * (the protocol lets replies come in any order): "missing" gets NOT_FOUND,
 * "bin" a binary value. Then serves normally. */
static void
script_batch_reverse(struct fake *f, int fd, int conn)
{
	struct proto_request req;
	int i, first = f->nreqs;
	size_t len;

	for (i = 0; i < f->batch; i++)
		if (srv_read_request(f, fd, conn, &req) == -1) {
			srv_fail(f, "batch: only %d of %d requests arrived", i, f->batch);
			return;
		}
	for (i = f->nreqs - 1; i >= first; i--) {
		struct seen_request *r = &f->reqs[i];

		if (strcmp(r->secret_id, "missing") == 0)
			len = reply_error(f, PROTO_OP_GET | PROTO_OP_REPLY, r->id, PROTO_STATUS_NOT_FOUND,
			    "secret missing not found");
		else
			len = reply_get(f, r->id, 0, strcmp(r->secret_id, "bin") == 0);
		srv_send(f, fd, f->frame, len);
	}
	script_serve(f, fd, conn);
}

static void
test_batch_out_of_order(void **state)
{
	static const char *const ids[] = { "a", "missing", "bin", "c" };
	struct fake *f = fake_start(script_batch_reverse, 1);
	smc_client *c;
	smc_batch *b;
	smc_secret *s;
	smc_error err;
	size_t i;

	f->batch = 4;
	c = connect_ok(f, 2000);
	assert_non_null(b = smc_batch_new(c, &err));
	for (i = 0; i < 4; i++)
		assert_int_equal(smc_batch_add(b, ids[i], NULL, &err), (long)i);
	assert_int_equal(smc_batch_add(b, "", NULL, &err), -1);	/* checked before sending */
	assert_int_equal(err.code, SMC_ERR_USAGE);
	assert_int_equal(smc_batch_count(b), 4);
	assert_int_equal(smc_batch_take(b, 0, &s, &err), -1);	/* not run yet */
	assert_int_equal(smc_batch_run(b, 0, &err), 0);
	assert_int_equal(smc_batch_take(b, 0, &s, &err), 0);
	assert_string_equal(smc_secret_string(s), "hunter2");
	smc_secret_free(s);
	assert_int_equal(smc_batch_take(b, 0, &s, &err), -1);	/* taken */
	assert_int_equal(err.code, SMC_ERR_USAGE);
	assert_int_equal(smc_batch_take(b, 1, &s, &err), -1);
	assert_int_equal(err.code, SMC_ERR_NOT_FOUND);
	assert_null(s);
	assert_int_equal(smc_batch_take(b, 2, &s, &err), 0);
	assert_true(smc_secret_is_binary(s));
	assert_memory_equal(smc_secret_value(s), binary_value, sizeof(binary_value));
	smc_secret_free(s);
	/* Result 3 is not taken: smc_batch_free frees it. */
	assert_int_equal(smc_batch_run(b, 0, &err), -1);	/* a batch runs once */
	assert_int_equal(smc_batch_add(b, "x", NULL, &err), -1);
	smc_batch_free(b);
	/* All four went out on one connection, pipelined, with distinct ids. */
	assert_int_equal(f->nreqs, 4);
	for (i = 0; i < 4; i++) {
		assert_int_equal(f->reqs[i].connection, 0);
		assert_string_equal(f->reqs[i].secret_id, ids[i]);
		if (i > 0)
			assert_int_not_equal(f->reqs[i].id, f->reqs[i - 1].id);
	}
	/* The connection is back in the pool and still in sync. */
	assert_int_equal(smc_ping(c, NULL, 0, &err), 0);
	smc_close(c);
	fake_stop(f);
	smc_batch_free(NULL);
}

static void
test_get_timeout_per_call(void **state)
{
	struct fake *f = fake_start(script_silent, 1);
	smc_client *c = connect_ok(f, 5000);
	smc_secret *s;
	smc_error err;
	int64_t t0, dt;

	t0 = now_ms();
	assert_int_equal(smc_get_timeout(c, "db/pw", NULL, 200, &s, &err), -1);
	dt = now_ms() - t0;
	assert_int_equal(err.code, SMC_ERR_UNREACHABLE);
	assert_true(dt >= 195 && dt < 1500);	/* this call's deadline, not the handle's 5 s */
	smc_close(c);
	fake_stop(f);
}

static void
test_json_field(void **state)
{
	struct fake *f = fake_start(script_serve, 1);
	smc_client *c;
	smc_secret *s, *bin, *plain;
	smc_error err;
	char *v;
	size_t n;

	f->value = "{\"user\":\"admin\",\"port\":5432,\"hosts\":[\"h1\",\"h2\"],"
	    "\"db\":{\"tls\":true,\"name\":\"x\\u00e9\"}}";
	c = connect_ok(f, 2000);
	assert_int_equal(smc_get(c, "db/pw", NULL, &s, &err), 0);
	assert_int_equal(smcache_get_json_field(s, "user", &v, &n, &err), 0);
	assert_string_equal(v, "admin");
	assert_int_equal(n, 5);
	smc_value_free(v);
	assert_int_equal(smcache_get_json_field(s, "port", &v, NULL, &err), 0);
	assert_string_equal(v, "5432");
	smc_value_free(v);
	assert_int_equal(smcache_get_json_field(s, "hosts.1", &v, NULL, &err), 0);
	assert_string_equal(v, "h2");
	smc_value_free(v);
	assert_int_equal(smcache_get_json_field(s, "db.name", &v, NULL, &err), 0);
	assert_string_equal(v, "x\xc3\xa9");
	smc_value_free(v);
	assert_int_equal(smcache_get_json_field(s, "db", &v, NULL, &err), 0);
	assert_string_equal(v, "{\"tls\":true,\"name\":\"x\xc3\xa9\"}");
	smc_value_free(v);
	assert_int_equal(smcache_get_json_field(s, "db.tls", &v, NULL, &err), 0);
	assert_string_equal(v, "true");
	smc_value_free(v);
	assert_int_equal(smcache_get_json_field(s, "nope", &v, NULL, &err), -1);
	assert_int_equal(err.code, SMC_ERR_NOT_FOUND);
	assert_null(v);
	assert_int_equal(smcache_get_json_field(s, "user.x", &v, NULL, &err), -1);
	assert_int_equal(err.code, SMC_ERR_NOT_FOUND);
	assert_int_equal(smcache_get_json_field(s, "hosts.7", &v, NULL, &err), -1);
	assert_int_equal(err.code, SMC_ERR_NOT_FOUND);
	assert_int_equal(smcache_get_json_field(s, "", &v, NULL, &err), -1);
	assert_int_equal(err.code, SMC_ERR_USAGE);
	assert_int_equal(smc_get(c, "bin", NULL, &bin, &err), 0);
	assert_int_equal(smcache_get_json_field(bin, "user", &v, NULL, &err), -1);
	assert_int_equal(err.code, SMC_ERR_USAGE);
	f->value = "hunter2";
	assert_int_equal(smc_get(c, "db/pw", NULL, &plain, &err), 0);
	assert_int_equal(smcache_get_json_field(plain, "user", &v, NULL, &err), -1);
	assert_int_equal(err.code, SMC_ERR_USAGE);
	assert_null(strstr(err.message, "hunter2"));	/* errors never quote the value */
	smc_secret_free(s);
	smc_secret_free(bin);
	smc_secret_free(plain);
	smc_value_free(NULL);
	smc_close(c);
	fake_stop(f);
}

static void
test_strerror(void **state)
{
	int code;

	for (code = SMC_OK; code <= SMC_ERR_NOMEM; code++) {
		assert_non_null(smc_strerror((smc_error_code)code));
		assert_string_not_equal(smc_strerror((smc_error_code)code), "unknown error");
	}
	assert_string_equal(smc_strerror((smc_error_code)99), "unknown error");
	assert_string_equal(smc_version(), SMC_VERSION);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_string),
		cmocka_unit_test(test_get_sends_options),
		cmocka_unit_test(test_get_binary_with_nuls),
		cmocka_unit_test(test_get_stale_flag),
		cmocka_unit_test(test_describe),
		cmocka_unit_test(test_ping),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_health),
		cmocka_unit_test(test_fetch_uses_env_socket),
		cmocka_unit_test(test_status_mapping),
		cmocka_unit_test(test_status_mapping_other_ops),
		cmocka_unit_test(test_error_without_request_id),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_batch_out_of_order),
		cmocka_unit_test(test_get_timeout_per_call),
		cmocka_unit_test(test_json_field),
		cmocka_unit_test(test_connect_failures),
		cmocka_unit_test(test_connect_timeout_backlog_full),
		cmocka_unit_test(test_agent_closes_mid_reply),
		cmocka_unit_test(test_agent_closes_fresh_connection),
		cmocka_unit_test(test_reconnects_after_idle_close),
		cmocka_unit_test(test_oversized_reply_length),
		cmocka_unit_test(test_wrong_request_id),
		cmocka_unit_test(test_wrong_op),
		cmocka_unit_test(test_garbage_reply),
		cmocka_unit_test(test_partial_reads),
		cmocka_unit_test(test_usage_errors),
		cmocka_unit_test(test_strerror),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
