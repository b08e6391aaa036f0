/*
 * test_audit: the audit line's fields, escaping of client-chosen ids (no
 * control bytes, quotes or backslashes reach the log; long ids are cut),
 * level filtering, and the append-only file destination.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit.h"
#include "message.h"

static void
test_format(void **state)
{
	struct audit_event e = {
		.op = PROTO_OP_GET, .uid = 1000, .gid = 100, .pid = 4242,
		.secret_id = "prod/db", .version_stage = "AWSPREVIOUS", .version_id = NULL,
		.allowed = false, .status = PROTO_STATUS_ACCESS_DENIED,
	};
	char buf[4096];

	audit_format(&e, buf, sizeof(buf));
	assert_string_equal(buf, "op=GET decision=denied status=ACCESS_DENIED uid=1000 gid=100"
	    " pid=4242 id=\"prod/db\" stage=\"AWSPREVIOUS\" version_id=-");
	e.op = PROTO_OP_STATS;
	e.secret_id = e.version_stage = NULL;
	e.allowed = true;
	e.status = PROTO_STATUS_OK;
	audit_format(&e, buf, sizeof(buf));
	assert_string_equal(buf, "op=STATS decision=allowed status=OK uid=1000 gid=100 pid=4242"
	    " id=- stage=- version_id=-");
	e.status = -1;
	audit_format(&e, buf, sizeof(buf));
	assert_non_null(strstr(buf, "status=- "));
	/* The HTTP door, and a reason (quoted like ids: it may quote the kernel's words). */
	e.status = PROTO_STATUS_ACCESS_DENIED;
	e.allowed = false;
	e.door = "http";
	e.reason = "sock_diag: \"no\"\n";
	audit_format(&e, buf, sizeof(buf));
	assert_string_equal(buf, "op=STATS decision=denied status=ACCESS_DENIED uid=1000 gid=100"
	    " pid=4242 id=- stage=- version_id=- door=http reason=\"sock_diag: \\x22no\\x22\\x0a\"");
}

static void
test_escaping(void **state)
{
	struct audit_event e = { .op = PROTO_OP_DESCRIBE, .allowed = true };
	char buf[4096], *id;

	e.secret_id = "a\nop=GET decision=allowed \"x\\y\x7f\xc3\xa9";
	audit_format(&e, buf, sizeof(buf));
	assert_non_null(strstr(buf, "id=\"a\\x0aop=GET decision=allowed \\x22x\\x5cy\\x7f\\xc3\\xa9\""));
	for (const char *c = buf; *c != '\0'; c++)
		assert_true((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f);
	/* Long ids are cut at 512 bytes and marked. */
	id = malloc(2049);
	assert_non_null(id);
	memset(id, 'z', 2048);
	id[2048] = '\0';
	e.secret_id = id;
	audit_format(&e, buf, sizeof(buf));
	assert_non_null(strstr(buf, "zzz...\" stage=-"));
	assert_true(strlen(buf) < 700);
	/* A small buffer is never overrun and stays terminated. */
	memset(id, '\n', 2048);
	for (size_t len = 1; len < 200; len++) {
		char *small = malloc(len);

		assert_non_null(small);
		assert_true(audit_format(&e, small, len) < len);
		assert_true(strlen(small) < len);
		free(small);
	}
	free(id);
}

static char *
slurp(const char *path)
{
	static char buf[8192];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

static void
test_levels_and_file(void **state)
{
	char dir[] = "/tmp/test_audit.XXXXXX", path[256], err[256];
	struct audit_event allowed = { .op = PROTO_OP_GET, .uid = 1, .secret_id = "ok",
		.allowed = true, .status = 0 };
	struct audit_event denied = { .op = PROTO_OP_GET, .uid = 2, .secret_id = "no",
		.allowed = false, .status = PROTO_STATUS_ACCESS_DENIED };
	struct audit *a;
	struct stat st;
	char *text;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/audit.log", dir);

	a = audit_new(AUDIT_DENIED, path, err, sizeof(err));
	assert_non_null(a);
	assert_false(audit_wants(a, true));
	assert_true(audit_wants(a, false));
	audit_record(a, &allowed);
	audit_record(a, &denied);
	audit_free(a);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	text = slurp(path);
	assert_null(strstr(text, "id=\"ok\""));
	assert_non_null(strstr(text, "] audit: op=GET decision=denied status=ACCESS_DENIED uid=2 "));
	assert_int_equal(text[strlen(text) - 1], '\n');

	/* Appends; "all" writes both. */
	a = audit_new(AUDIT_ALL, path, err, sizeof(err));
	audit_record(a, &allowed);
	audit_free(a);
	text = slurp(path);
	assert_non_null(strstr(text, "uid=2 "));
	assert_non_null(strstr(text, "decision=allowed status=OK uid=1 "));

	a = audit_new(AUDIT_OFF, NULL, err, sizeof(err));
	assert_false(audit_wants(a, false));
	audit_free(a);
	assert_false(audit_wants(NULL, false));

	/* A symlink is not followed; a missing directory is an error that names the path. */
	snprintf(path, sizeof(path), "%s/link", dir);
	assert_int_equal(symlink("/dev/null", path), 0);
	assert_null(audit_new(AUDIT_ALL, path, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	unlink(path);
	assert_null(audit_new(AUDIT_ALL, "/nonexistent/dir/audit.log", err, sizeof(err)));
	assert_non_null(strstr(err, "cannot open the audit log /nonexistent/dir/audit.log"));
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	unlink(path);
	rmdir(dir);
	assert_string_equal(audit_level_name(AUDIT_DENIED), "denied");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_levels_and_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
