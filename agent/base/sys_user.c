/*
 * sys_user: user and group lookups, decimal ids (see sys_user.h).
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sys_user.h"

/* Buffer for getpwnam_r and friends: sysconf's hint (or 4 KiB), doubled on ERANGE up to this. */
#define SYS_NSS_BUF_MAX	(1024 * 1024)

int
sys_user_parse_id(const char *s, uint32_t *id)
{
	uint32_t v = 0;

	if (s == NULL || *s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || v > (UINT32_MAX - 1 - (uint32_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint32_t)(*s - '0');
	}
	*id = v;
	return 0;
}

/* The errors getpw*_r / getgr*_r may give for "no such entry" (see getpwnam_r(3)). */
static bool
sys_nss_not_found(int rc)
{
	return rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM;
}

enum sys_nss_kind { NSS_PW_NAME, NSS_PW_UID, NSS_GR_NAME };

/* One lookup with a growing buffer; *buf is the caller's to free. 1, 0, -1. */
static int
sys_nss(enum sys_nss_kind kind, const char *name, uid_t uid, struct passwd *pw,
    struct group *gr, char **buf, char *err, size_t errlen)
{
	long hint = sysconf(kind == NSS_GR_NAME ? _SC_GETGR_R_SIZE_MAX : _SC_GETPW_R_SIZE_MAX);
	size_t len = hint > 0 && hint < SYS_NSS_BUF_MAX ? (size_t)hint : 4096;
	struct passwd *pwp = NULL;
	struct group *grp = NULL;
	char *nbuf;
	int rc;

	*buf = NULL;
	for (;;) {
		if ((nbuf = realloc(*buf, len)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		*buf = nbuf;
		switch (kind) {
		case NSS_PW_NAME:
			rc = getpwnam_r(name, pw, *buf, len, &pwp);
			break;
		case NSS_PW_UID:
			rc = getpwuid_r(uid, pw, *buf, len, &pwp);
			break;
		default:
			rc = getgrnam_r(name, gr, *buf, len, &grp);
			break;
		}
		if (rc != ERANGE || len >= SYS_NSS_BUF_MAX)
			break;
		len *= 2;
	}
	if (!sys_nss_not_found(rc)) {
		if (kind == NSS_PW_UID)
			snprintf(err, errlen, "cannot look up uid %lu: %s", (unsigned long)uid,
			    strerror(rc));
		else
			snprintf(err, errlen, "cannot look up %s '%s': %s",
			    kind == NSS_GR_NAME ? "group" : "user", name, strerror(rc));
		return -1;
	}
	return (kind == NSS_GR_NAME ? grp != NULL : pwp != NULL) ? 1 : 0;
}

static void
sys_user_fill(const struct passwd *pw, gid_t *gid, char *name_out, size_t name_len)
{
	if (gid != NULL)
		*gid = pw->pw_gid;
	if (name_out != NULL && name_len > 0) {
		if (pw->pw_name != NULL && strlen(pw->pw_name) < name_len)
			snprintf(name_out, name_len, "%s", pw->pw_name);
		else
			name_out[0] = '\0';
	}
}

int
sys_user_by_name(const char *name, uid_t *uid, gid_t *gid, char *name_out, size_t name_len,
    char *err, size_t errlen)
{
	struct passwd pw;
	char *buf;
	int rc = sys_nss(NSS_PW_NAME, name, 0, &pw, NULL, &buf, err, errlen);

	if (rc == 1) {
		if (uid != NULL)
			*uid = pw.pw_uid;
		sys_user_fill(&pw, gid, name_out, name_len);
	}
	free(buf);
	return rc;
}

int
sys_user_by_uid(uid_t uid, gid_t *gid, char *name_out, size_t name_len, char *err,
    size_t errlen)
{
	struct passwd pw;
	char *buf;
	int rc = sys_nss(NSS_PW_UID, NULL, uid, &pw, NULL, &buf, err, errlen);

	if (rc == 1)
		sys_user_fill(&pw, gid, name_out, name_len);
	free(buf);
	return rc;
}

int
sys_user_home(uid_t uid, char *home, size_t home_len, char *err, size_t errlen)
{
	struct passwd pw;
	char *buf;
	int rc = sys_nss(NSS_PW_UID, NULL, uid, &pw, NULL, &buf, err, errlen);

	if (home_len > 0)
		home[0] = '\0';
	if (rc == 1 && pw.pw_dir != NULL && strlen(pw.pw_dir) < home_len)
		snprintf(home, home_len, "%s", pw.pw_dir);
	free(buf);
	return rc;
}

int
sys_group_by_name(const char *name, gid_t *gid, char *err, size_t errlen)
{
	struct group gr;
	char *buf;
	int rc = sys_nss(NSS_GR_NAME, name, 0, NULL, &gr, &buf, err, errlen);

	if (rc == 1 && gid != NULL)
		*gid = gr.gr_gid;
	free(buf);
	return rc;
}

void
sys_user_describe(uid_t uid, char *out, size_t outlen)
{
	char name[64], err[128];

	if (sys_user_by_uid(uid, NULL, name, sizeof(name), err, sizeof(err)) == 1 &&
	    name[0] != '\0')
		snprintf(out, outlen, "%lu (%s)", (unsigned long)uid, name);
	else
		snprintf(out, outlen, "%lu", (unsigned long)uid);
}
