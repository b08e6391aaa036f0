/*
 * test_peer_inet: the uid of a loopback TCP client, over IPv4 and IPv6 and
 * as another user (root only),
 * seen from the server's accepted socket (and from the client's side, the
 * same answer); a connection that no longer exists, or whose client closed
 * its socket (TIME_WAIT: sock_diag says uid 0), is an error, not a uid.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "peer_inet.h"

/* A listener, a client connected to it and the accepted end; -1 when the family is unavailable. */
static int
pair(int family, int *lfd, int *cfd, int *afd)
{
	struct sockaddr_storage ss;
	socklen_t len;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		len = sizeof(*a);
	}
	if ((*lfd = socket(family, SOCK_STREAM, 0)) < 0)
		return -1;
	if (bind(*lfd, (struct sockaddr *)&ss, len) != 0 || listen(*lfd, 4) != 0) {
		close(*lfd);
		return -1;
	}
	assert_int_equal(getsockname(*lfd, (struct sockaddr *)&ss, &len), 0);
	assert_true((*cfd = socket(family, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(connect(*cfd, (struct sockaddr *)&ss, len), 0);
	assert_true((*afd = accept(*lfd, NULL, NULL)) >= 0);
	return 0;
}

static void
check_family(int family)
{
	int lfd, cfd, afd;
	uid_t uid = (uid_t)-1;
	char err[256] = "";

	if (pair(family, &lfd, &cfd, &afd) != 0) {
		skip();
		return;
	}
	assert_int_equal(peer_inet_uid_fd(afd, &uid, err, sizeof(err)), 0);
	assert_int_equal(uid, geteuid());
	/* Asked from the client's side, the far end is the accepted socket: also ours. */
	uid = (uid_t)-1;
	assert_int_equal(peer_inet_uid_fd(cfd, &uid, err, sizeof(err)), 0);
	assert_int_equal(uid, geteuid());
	close(cfd);
	close(afd);
	close(lfd);
}

static void
test_ipv4(void **state)
{
	(void)state;
	check_family(AF_INET);
}

static void
test_ipv6(void **state)
{
	(void)state;
	check_family(AF_INET6);
}

/*
 * A loopback listener and a child that drops to nobody (65534) and connects to
 * it. With hang_up, the child sends a byte and exits at once (its socket
 * closes unread); without, it waits until the parent closes. Returns the
 * accepted socket; *lfd and *pid are the parent's to close and reap.
 */
static int
nobody_client(bool hang_up, int *lfd, pid_t *pid)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int afd;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((*lfd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(*lfd, (struct sockaddr *)&a, len), 0);
	assert_int_equal(listen(*lfd, 4), 0);
	assert_int_equal(getsockname(*lfd, (struct sockaddr *)&a, &len), 0);
	if ((*pid = fork()) == 0) {
		char c;
		int fd;

		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(2);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&a, len) != 0)
			_exit(3);
		if (hang_up)
			_exit(write(fd, "x", 1) == 1 ? 0 : 4);	/* closes the socket, unread */
		if (read(fd, &c, 1) < 0)	/* until the parent has looked */
			_exit(4);
		_exit(0);
	}
	assert_true(*pid > 0);
	assert_true((afd = accept(*lfd, NULL, NULL)) >= 0);
	return afd;
}

static void
reap(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A client of another uid (a child that dropped to nobody) is named as that uid. */
static void
test_other_uid(void **state)
{
	int lfd, afd;
	uid_t uid = 0;
	char err[256] = "";
	pid_t pid;

	(void)state;
	if (geteuid() != 0) {
		skip();
		return;
	}
	afd = nobody_client(false, &lfd, &pid);
	assert_int_equal(peer_inet_uid_fd(afd, &uid, err, sizeof(err)), 0);
	assert_int_equal(uid, 65534);
	close(afd);
	reap(pid);
	close(lfd);
}

/*
 * A client of another uid that closed its socket: once its FIN is ACKed the
 * kernel keeps a TIME_WAIT mini socket that sock_diag reports as uid 0. That
 * is an error (the caller is unknown), never root.
 */
static void
test_closed_client_is_not_root(void **state)
{
	int lfd, afd;
	uid_t uid = 12345;
	char err[256] = "";
	pid_t pid;

	(void)state;
	if (geteuid() != 0) {
		skip();
		return;
	}
	afd = nobody_client(true, &lfd, &pid);
	reap(pid);
	usleep(300 * 1000);	/* the FIN is ACKed (delayed ACK at most 200 ms) */
	assert_int_equal(peer_inet_uid_fd(afd, &uid, err, sizeof(err)), -1);
	assert_int_equal(uid, 12345);
	assert_non_null(strstr(err, "closed"));
	close(afd);
	close(lfd);
}

/* A 4-tuple no socket has: an error, never a made-up uid. */
static void
test_no_such_socket(void **state)
{
	struct sockaddr_in local = { .sin_family = AF_INET }, peer = { .sin_family = AF_INET };
	uid_t uid = 12345;
	char err[256] = "";

	(void)state;
	local.sin_addr.s_addr = peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	local.sin_port = htons(1);
	peer.sin_port = htons(2);
	assert_int_equal(peer_inet_uid((struct sockaddr *)&local, (struct sockaddr *)&peer, &uid,
	    err, sizeof(err)), -1);
	assert_int_equal(uid, 12345);
	assert_true(err[0] != '\0');
}

/* A Unix socket has no TCP identity. */
static void
test_not_tcp(void **state)
{
	int sv[2];
	uid_t uid;
	char err[256] = "";

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(peer_inet_uid_fd(sv[0], &uid, err, sizeof(err)), -1);
	close(sv[0]);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_other_uid),
		cmocka_unit_test(test_closed_client_is_not_root),
		cmocka_unit_test(test_no_such_socket),
		cmocka_unit_test(test_not_tcp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
