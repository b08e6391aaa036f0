/*
 * Unit tests for agent/base/sd_notify: the datagrams a Type=notify service
 * sends, received on real sockets the test binds (a path and an abstract
 * name), the watchdog variables, and bad NOTIFY_SOCKET values.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "sd_notify.h"

/* Binds a datagram socket at name ('@' for abstract) and points NOTIFY_SOCKET at it. */
static int
listen_notify(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(name);
	socklen_t sl;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memcpy(sa.sun_path, name, len);
	if (name[0] == '@') {
		sa.sun_path[0] = '\0';
		sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	} else {
		unlink(name);
		sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	}
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sl), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", name, 1), 0);
	return fd;
}

/* One datagram, as a string; fails the test if none is waiting. */
static void
recv_msg(int fd, char *buf, size_t len)
{
	ssize_t n = recv(fd, buf, len - 1, MSG_DONTWAIT);

	assert_true(n >= 0);
	buf[n] = '\0';
}

static void
assert_nothing_waiting(int fd)
{
	char buf[16];

	assert_true(recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0);
	assert_int_equal(errno, EAGAIN);
}

static void
test_abstract_socket(void **state)
{
	char name[64], buf[256], err[256];
	int fd;

	(void)state;
	snprintf(name, sizeof(name), "@smc-test-notify-%ld", (long)getpid());
	fd = listen_notify(name);
	assert_int_equal(sd_notify_init(err, sizeof(err)), 1);
	assert_null(getenv("NOTIFY_SOCKET"));	/* not inherited by anything started later */

	/* Before the first READY=1, a reload says nothing. */
	assert_int_equal(sd_notify_reloading(err, sizeof(err)), 0);
	assert_int_equal(sd_notify_reloaded("reloaded", err, sizeof(err)), 0);
	assert_nothing_waiting(fd);

	assert_int_equal(sd_notify_ready(NULL, err, sizeof(err)), 0);
	recv_msg(fd, buf, sizeof(buf));
	assert_string_equal(buf, "READY=1");

	assert_int_equal(sd_notify_ready("listening\non /x", err, sizeof(err)), 0);
	recv_msg(fd, buf, sizeof(buf));
	assert_string_equal(buf, "READY=1\nSTATUS=listening");

	assert_int_equal(sd_notify_reloading(err, sizeof(err)), 0);
	recv_msg(fd, buf, sizeof(buf));
	assert_true(strncmp(buf, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0);
	assert_true(strlen(buf) > 27 && strspn(buf + 27, "0123456789") == strlen(buf + 27));
	assert_int_equal(sd_notify_reloaded("reloaded", err, sizeof(err)), 0);
	recv_msg(fd, buf, sizeof(buf));
	assert_string_equal(buf, "READY=1\nSTATUS=reloaded");

	assert_int_equal(sd_notify_stopping(err, sizeof(err)), 0);
	recv_msg(fd, buf, sizeof(buf));
	assert_string_equal(buf, "STOPPING=1");

	assert_int_equal(sd_notify_watchdog(err, sizeof(err)), 0);
	recv_msg(fd, buf, sizeof(buf));
	assert_string_equal(buf, "WATCHDOG=1");
	assert_nothing_waiting(fd);
	close(fd);
	sd_notify_reset();
}

static void
test_path_socket(void **state)
{
	char path[64], buf[64], err[256];
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/smc-test-notify-%ld.sock", (long)getpid());
	fd = listen_notify(path);
	assert_int_equal(sd_notify_init(err, sizeof(err)), 1);
	assert_int_equal(sd_notify_send("READY=1", err, sizeof(err)), 0);
	recv_msg(fd, buf, sizeof(buf));
	assert_string_equal(buf, "READY=1");
	close(fd);

	/* Nobody listens any more: a clear error, not a crash or a hang. */
	unlink(path);
	assert_int_equal(sd_notify_send("READY=1", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot send 'READY=1' to NOTIFY_SOCKET"));
	sd_notify_reset();
}

static void
test_no_socket_is_a_no_op(void **state)
{
	char err[256];

	(void)state;
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(sd_notify_init(err, sizeof(err)), 0);
	assert_int_equal(sd_notify_ready(NULL, err, sizeof(err)), 0);
	assert_int_equal(sd_notify_stopping(err, sizeof(err)), 0);
	/* Before init too. */
	sd_notify_reset();
	assert_int_equal(sd_notify_send("READY=1", err, sizeof(err)), 0);
}

static void
test_bad_socket_names(void **state)
{
	static const char *const bad[] = { "relative/path", "@", "x" };
	char err[256], longname[200];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("NOTIFY_SOCKET", bad[i], 1);
		err[0] = '\0';
		assert_int_equal(sd_notify_init(err, sizeof(err)), -1);
		assert_non_null(strstr(err, "NOTIFY_SOCKET"));
		assert_int_equal(sd_notify_send("READY=1", err, sizeof(err)), 0);	/* disabled */
	}
	memset(longname, 'a', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longname, 1);
	assert_int_equal(sd_notify_init(err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too long"));
	sd_notify_reset();
}

static void
test_watchdog_variables(void **state)
{
	char err[256], pid[32];

	(void)state;
	unsetenv("NOTIFY_SOCKET");
	setenv("WATCHDOG_USEC", "30000000", 1);
	unsetenv("WATCHDOG_PID");
	assert_int_equal(sd_notify_init(err, sizeof(err)), 0);
	assert_int_equal(sd_notify_watchdog_usec(), 30000000);
	assert_null(getenv("WATCHDOG_USEC"));

	/* For this process. */
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	setenv("WATCHDOG_USEC", "4000000", 1);
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(sd_notify_init(err, sizeof(err)), 0);
	assert_int_equal(sd_notify_watchdog_usec(), 4000000);

	/* For another process (inherited by mistake): ignored. */
	setenv("WATCHDOG_USEC", "4000000", 1);
	setenv("WATCHDOG_PID", "1", 1);
	assert_int_equal(sd_notify_init(err, sizeof(err)), 0);
	assert_int_equal(sd_notify_watchdog_usec(), 0);

	/* Garbage: ignored. */
	setenv("WATCHDOG_USEC", "12x", 1);
	unsetenv("WATCHDOG_PID");
	assert_int_equal(sd_notify_init(err, sizeof(err)), 0);
	assert_int_equal(sd_notify_watchdog_usec(), 0);
	sd_notify_reset();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_abstract_socket),
		cmocka_unit_test(test_path_socket),
		cmocka_unit_test(test_no_socket_is_a_no_op),
		cmocka_unit_test(test_bad_socket_names),
		cmocka_unit_test(test_watchdog_variables),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
