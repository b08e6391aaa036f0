/*
 * test_sys_file: safe reading of small files (sys_file_read: content, size
 * bound, growth, missing files, /dev/null and other devices, FIFOs) and the
 * trust rule (modes of the file and of every directory on its path, sticky
 * directories, symlinks resolved, ownership), change identities, and the
 * user/group lookups and id parser of sys_user.
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

#include "sys_file.h"
#include "sys_user.h"

struct fx {
	char dir[64];
};

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	/* /tmp: root-owned and sticky, which the rule accepts. */
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/smc-sysfile-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

static void
put(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static const struct sys_file_opts trusted = { .max_size = 4096, .trust = true };

/* Expects a refusal whose message holds every needle. */
static void
expect_refused(const char *path, const struct sys_file_opts *o, const char *a, const char *b)
{
	struct sys_file f;
	char err[512] = "";

	if (sys_file_read(path, o, &f, err, sizeof(err)) != -1)
		fail_msg("%s was read; expected '%s'", path, a);
	if (strstr(err, a) == NULL || (b != NULL && strstr(err, b) == NULL))
		fail_msg("%s: message '%s' lacks '%s' or '%s'", path, err, a, b ? b : "");
	assert_null(f.data);
}

static void
expect_read(const char *path, const struct sys_file_opts *o, const char *want)
{
	struct sys_file f;
	char err[512] = "";

	if (sys_file_read(path, o, &f, err, sizeof(err)) != 1)
		fail_msg("%s: %s", path, err);
	assert_int_equal(f.len, strlen(want));
	assert_string_equal(f.data, want);
	sys_file_free(&f);
	assert_null(f.data);
}

static void
test_reads_whole_file(void **state)
{
	struct fx *fx = *state;
	char path[128];

	snprintf(path, sizeof(path), "%s/a", fx->dir);
	put(path, "hello\nworld", 0600);
	expect_read(path, &trusted, "hello\nworld");
	put(path, "", 0644);
	expect_read(path, &trusted, "");
}

static void
test_missing(void **state)
{
	struct fx *fx = *state;
	struct sys_file_opts o = trusted;
	struct sys_file f;
	char path[128], err[256];

	snprintf(path, sizeof(path), "%s/none", fx->dir);
	expect_refused(path, &o, "No such file", NULL);
	o.missing_ok = true;
	assert_int_equal(sys_file_read(path, &o, &f, err, sizeof(err)), 0);
	o.trust = false;
	assert_int_equal(sys_file_read(path, &o, &f, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/none/deeper", fx->dir);
	assert_int_equal(sys_file_read(path, &o, &f, err, sizeof(err)), 0);
}

static void
test_size_bound(void **state)
{
	struct fx *fx = *state;
	struct sys_file_opts o = trusted;
	char path[128], big[5000];

	snprintf(path, sizeof(path), "%s/big", fx->dir);
	memset(big, 'x', sizeof(big) - 1);
	big[4096] = '\0';
	put(path, big, 0600);
	expect_read(path, &o, big);		/* exactly the bound */
	big[4096] = 'x';
	big[4097] = '\0';
	put(path, big, 0600);
	expect_refused(path, &o, "larger than 4 KiB", NULL);
	o.max_size = 1000;
	expect_refused(path, &o, "larger than 1000 bytes", NULL);
}

static void
test_devices_and_fifos(void **state)
{
	struct fx *fx = *state;
	struct sys_file_opts o = trusted;
	struct sys_file f;
	char path[128], err[256];

	expect_refused("/dev/null", &o, "not a regular file", NULL);
	o.empty_device_ok = true;
	assert_int_equal(sys_file_read("/dev/null", &o, &f, err, sizeof(err)), 1);
	assert_int_equal(f.len, 0);
	assert_true(f.device);
	assert_string_equal(f.data, "");
	sys_file_free(&f);
	/* A device that reads something is no empty file. */
	expect_refused("/dev/zero", &o, "not a regular file", NULL);
	/* A FIFO neither hangs nor counts. */
	snprintf(path, sizeof(path), "%s/fifo", fx->dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	expect_refused(path, &o, "not a regular file", NULL);
	expect_refused(fx->dir, &o, "not a regular file", NULL);
}

static void
test_file_modes(void **state)
{
	struct fx *fx = *state;
	struct sys_file_opts o = trusted;
	char path[128], fix[160];

	snprintf(path, sizeof(path), "%s/conf", fx->dir);
	put(path, "x", 0666);
	snprintf(fix, sizeof(fix), "fix: chmod go-w %s", path);
	expect_refused(path, &o, "writable by group and others (mode 0666)", fix);
	put(path, "x", 0620);
	snprintf(fix, sizeof(fix), "fix: chmod g-w %s", path);
	expect_refused(path, &o, "writable by group (mode 0620)", fix);
	put(path, "x", 0602);
	expect_refused(path, &o, "writable by others", "chmod o-w");
	/* Readable by all is fine; writable only by the owner is fine. */
	put(path, "x", 0644);
	expect_read(path, &o, "x");
	/* Without the check, the mode does not matter. */
	put(path, "x", 0666);
	o.trust = false;
	expect_read(path, &o, "x");
}

static void
test_directory_modes(void **state)
{
	struct fx *fx = *state;
	char dir[128], path[160], fix[200];

	snprintf(dir, sizeof(dir), "%s/d", fx->dir);
	snprintf(path, sizeof(path), "%s/conf", dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	put(path, "x", 0600);
	expect_read(path, &trusted, "x");
	assert_int_equal(chmod(dir, 0777), 0);
	snprintf(fix, sizeof(fix), "fix: chmod go-w %s", dir);
	expect_refused(path, &trusted, "directory", fix);
	expect_refused(path, &trusted, "and not sticky", NULL);
	assert_int_equal(chmod(dir, 0770), 0);
	expect_refused(path, &trusted, "writable by group (mode 0770)", NULL);
	/* Sticky, like /tmp: others cannot replace a file they do not own. */
	assert_int_equal(chmod(dir, 01777), 0);
	expect_read(path, &trusted, "x");
	/* A parent further up counts too. */
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(chmod(fx->dir, 0777), 0);
	expect_refused(path, &trusted, fx->dir, "chmod go-w");
	assert_int_equal(chmod(fx->dir, 0700), 0);
}

static void
test_symlinks_resolved(void **state)
{
	struct fx *fx = *state;
	char bad[128], good[128], target[160], link[160], path[160];

	snprintf(bad, sizeof(bad), "%s/bad", fx->dir);
	snprintf(good, sizeof(good), "%s/good", fx->dir);
	assert_int_equal(mkdir(bad, 0700), 0);
	assert_int_equal(mkdir(good, 0700), 0);
	/* A link in a safe directory to a file in an unsafe one: the target's directory counts. */
	snprintf(target, sizeof(target), "%s/secret", bad);
	put(target, "s", 0600);
	snprintf(link, sizeof(link), "%s/link", good);
	assert_int_equal(symlink(target, link), 0);
	expect_read(link, &trusted, "s");
	assert_int_equal(chmod(bad, 0777), 0);
	expect_refused(link, &trusted, bad, "not sticky");
	assert_int_equal(chmod(bad, 0700), 0);
	/* A link to a world-writable file: the file's own mode counts, and the fix names it. */
	assert_int_equal(chmod(target, 0666), 0);
	expect_refused(link, &trusted, target, "chmod go-w");
	assert_int_equal(chmod(target, 0600), 0);
	/* A link in an unsafe directory to a safe file: whoever can write there could re-point it. */
	snprintf(target, sizeof(target), "%s/real", good);
	put(target, "r", 0600);
	snprintf(path, sizeof(path), "%s/sneaky", bad);
	assert_int_equal(symlink(target, path), 0);
	expect_read(path, &trusted, "r");
	assert_int_equal(chmod(bad, 0777), 0);
	expect_refused(path, &trusted, bad, "not sticky");
	/* A dangling link is a missing file. */
	assert_int_equal(chmod(bad, 0700), 0);
	snprintf(path, sizeof(path), "%s/dangling", good);
	assert_int_equal(symlink("/nonexistent/x", path), 0);
	expect_refused(path, &trusted, "No such file", NULL);
}

static void
test_ownership(void **state)
{
	struct fx *fx = *state;
	char path[128], err[512];

	if (geteuid() != 0)
		skip();
	snprintf(path, sizeof(path), "%s/owned", fx->dir);
	put(path, "o", 0600);
	assert_int_equal(chown(path, 65534, 65534), 0);
	expect_refused(path, &trusted, "is owned by uid 65534", "fix: chown root");
	assert_int_equal(sys_file_check_trust(path, NULL, err, sizeof(err)), -1);
	/* The agent's own user (after the drop) may own it. */
	sys_file_trust_uid(65534);
	expect_read(path, &trusted, "o");
	assert_int_equal(sys_file_check_trust(path, NULL, err, sizeof(err)), 0);
	sys_file_trust_uid(0);
	/* A directory owned by another user is unsafe, whatever its mode. */
	assert_int_equal(chown(path, 0, 0), 0);
	assert_int_equal(chown(fx->dir, 65534, 65534), 0);
	expect_refused(path, &trusted, "directory", "owned by uid 65534");
	assert_int_equal(chown(fx->dir, 0, 0), 0);
}

static void
test_identity(void **state)
{
	struct fx *fx = *state;
	struct sys_file_ident a, b;
	char path[128];

	snprintf(path, sizeof(path), "%s/id", fx->dir);
	sys_file_ident_path(path, &a);
	assert_false(a.exists);
	put(path, "one", 0600);
	sys_file_ident_path(path, &a);
	sys_file_ident_path(path, &b);
	assert_true(a.exists);
	assert_true(sys_file_ident_same(&a, &b));
	/* Same size, same inode: mtime/ctime tell. chmod alone changes ctime. */
	usleep(10000);
	assert_int_equal(chmod(path, 0644), 0);
	sys_file_ident_path(path, &b);
	assert_false(sys_file_ident_same(&a, &b));
}

static void
test_parse_id(void **state)
{
	uint32_t id = 7;

	(void)state;
	assert_int_equal(sys_user_parse_id("0", &id), 0);
	assert_int_equal(id, 0);
	assert_int_equal(sys_user_parse_id("65534", &id), 0);
	assert_int_equal(id, 65534);
	assert_int_equal(sys_user_parse_id("4294967294", &id), 0);
	assert_int_equal(id, 4294967294u);
	/* (uid_t)-1 means "no change" to setresuid: never an id. */
	assert_int_equal(sys_user_parse_id("4294967295", &id), -1);
	assert_int_equal(sys_user_parse_id("99999999999", &id), -1);
	assert_int_equal(sys_user_parse_id("", &id), -1);
	assert_int_equal(sys_user_parse_id("-1", &id), -1);
	assert_int_equal(sys_user_parse_id("+1", &id), -1);
	assert_int_equal(sys_user_parse_id("12a", &id), -1);
	assert_int_equal(sys_user_parse_id(" 1", &id), -1);
}

static void
test_lookups(void **state)
{
	char name[64], err[256], shown[96];
	uid_t uid = 1;
	gid_t gid = 1;

	(void)state;
	assert_int_equal(sys_user_by_name("root", &uid, &gid, name, sizeof(name), err,
	    sizeof(err)), 1);
	assert_int_equal(uid, 0);
	assert_int_equal(gid, 0);
	assert_string_equal(name, "root");
	assert_int_equal(sys_user_by_name("no-such-user-smc", &uid, NULL, NULL, 0, err,
	    sizeof(err)), 0);
	assert_int_equal(sys_user_by_uid(0, &gid, name, sizeof(name), err, sizeof(err)), 1);
	assert_string_equal(name, "root");
	assert_int_equal(sys_user_by_uid(4123456789u, NULL, name, sizeof(name), err,
	    sizeof(err)), 0);
	/* A name that does not fit is "", not cut. */
	assert_int_equal(sys_user_by_uid(0, NULL, name, 3, err, sizeof(err)), 1);
	assert_string_equal(name, "");
	gid = 1;
	assert_int_equal(sys_group_by_name("root", &gid, err, sizeof(err)), 1);
	assert_int_equal(gid, 0);
	assert_int_equal(sys_group_by_name("no-such-group-smc", &gid, err, sizeof(err)), 0);
	assert_int_equal(sys_user_home(0, name, sizeof(name), err, sizeof(err)), 1);
	assert_string_equal(name, "/root");
	assert_int_equal(sys_user_home(0, name, 2, err, sizeof(err)), 1);
	assert_string_equal(name, "");
	sys_user_describe(0, shown, sizeof(shown));
	assert_string_equal(shown, "0 (root)");
	sys_user_describe(4123456789u, shown, sizeof(shown));
	assert_string_equal(shown, "4123456789");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reads_whole_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_devices_and_fifos, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_directory_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlinks_resolved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ownership, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
		cmocka_unit_test(test_parse_id),
		cmocka_unit_test(test_lookups),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
