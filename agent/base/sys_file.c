/*
 * sys_file: safe reading of small trusted files, and the trust rule (see
 * sys_file.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "sys_file.h"
#include "sys_user.h"

static bool sys_trust_uid_set;
static uid_t sys_trust_uid_value;

void
sys_file_trust_uid(uid_t uid)
{
	sys_trust_uid_value = uid;
	sys_trust_uid_set = true;
}

/* SYS_NO_UID: the uid set by sys_file_trust_uid(), if any. */
#define SYS_NO_UID	((uid_t)-1)

static bool
sys_owner_trusted(uid_t owner, uid_t agent)
{
	if (agent == SYS_NO_UID && sys_trust_uid_set)
		agent = sys_trust_uid_value;
	return owner == 0 || owner == geteuid() || (agent != SYS_NO_UID && owner == agent);
}

/* "group and others", "group" or "others" for the write bits of mode. */
static const char *
sys_writers(mode_t mode)
{
	if ((mode & S_IWGRP) && (mode & S_IWOTH))
		return "group and others";
	return (mode & S_IWGRP) ? "group" : "others";
}

static const char *
sys_chmod_who(mode_t mode)
{
	if ((mode & S_IWGRP) && (mode & S_IWOTH))
		return "go";
	return (mode & S_IWGRP) ? "g" : "o";
}

/* One file or directory against the rule; what is "directory " or "". */
static int
sys_check_one(const char *path, const struct stat *st, bool dir, uid_t agent, char *err,
    size_t errlen)
{
	char owner[96];

	if (!sys_owner_trusted(st->st_uid, agent)) {
		sys_user_describe(st->st_uid, owner, sizeof(owner));
		snprintf(err, errlen, "unsafe: %s%s is owned by uid %s, not by root or the "
		    "agent's user; fix: chown root %s", dir ? "directory " : "", path, owner, path);
		return -1;
	}
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) == 0)
		return 0;
	if (dir && (st->st_mode & S_ISVTX))
		return 0;	/* sticky: others cannot replace what they do not own */
	snprintf(err, errlen, "unsafe: %s%s is writable by %s (mode %04o)%s; fix: chmod %s-w %s",
	    dir ? "directory " : "", path, sys_writers(st->st_mode),
	    (unsigned)(st->st_mode & 07777), dir ? " and not sticky" : "",
	    sys_chmod_who(st->st_mode), path);
	return -1;
}

/* Every directory above abs (an absolute path), each through stat(2). */
static int
sys_check_dirs(const char *abs, uid_t agent, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	struct stat st;
	size_t len = strlen(abs);

	if (len >= sizeof(dir)) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	memcpy(dir, abs, len + 1);
	for (;;) {
		/* Cut the last component (and the slashes before it). */
		while (len > 1 && dir[len - 1] == '/')
			len--;
		while (len > 0 && dir[len - 1] != '/')
			len--;
		while (len > 1 && dir[len - 1] == '/')
			len--;
		if (len == 0)
			return 0;
		dir[len] = '\0';
		if (stat(dir, &st) != 0) {
			snprintf(err, errlen, "cannot check directory %s: %s", dir, strerror(errno));
			return -1;
		}
		if (sys_check_one(dir, &st, true, agent, err, errlen) != 0)
			return -1;
		if (len == 1)
			return 0;	/* "/" done */
	}
}

/* path made absolute against the working directory, into out. */
static int
sys_absolute(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
	char cwd[PATH_MAX];
	int n;

	if (path[0] == '/')
		n = snprintf(out, outlen, "%s", path);
	else if (getcwd(cwd, sizeof(cwd)) == NULL) {
		snprintf(err, errlen, "cannot find the working directory: %s", strerror(errno));
		return -1;
	} else
		n = snprintf(out, outlen, "%s/%s", cwd, path);
	if (n < 0 || (size_t)n >= outlen) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	return 0;
}

/* The directories of path as written and as resolved (resolved may be NULL). */
static int
sys_check_paths(const char *path, const char *resolved, uid_t agent, char *err, size_t errlen)
{
	char abs[PATH_MAX];

	if (sys_absolute(path, abs, sizeof(abs), err, errlen) != 0 ||
	    sys_check_dirs(abs, agent, err, errlen) != 0)
		return -1;
	if (resolved != NULL && strcmp(resolved, abs) != 0 &&
	    sys_check_dirs(resolved, agent, err, errlen) != 0)
		return -1;
	return 0;
}

int
sys_file_check_trust(const char *path, const struct stat *st, char *err, size_t errlen)
{
	return sys_file_check_trust_as(path, st, SYS_NO_UID, err, errlen);
}

int
sys_file_check_trust_as(const char *path, const struct stat *st, uid_t agent_uid, char *err,
    size_t errlen)
{
	char resolved[PATH_MAX];
	struct stat own;

	if (realpath(path, resolved) == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	if (st == NULL) {
		if (stat(resolved, &own) != 0) {
			snprintf(err, errlen, "%s", strerror(errno));
			return -1;
		}
		st = &own;
	}
	if (sys_check_one(resolved, st, S_ISDIR(st->st_mode), agent_uid, err, errlen) != 0)
		return -1;
	return sys_check_paths(path, resolved, agent_uid, err, errlen);
}

/* "larger than 16 MiB" (or KiB, or bytes), as people write bounds. */
static void
sys_too_large(size_t max, char *err, size_t errlen)
{
	if (max >= (1u << 20) && max % (1u << 20) == 0)
		snprintf(err, errlen, "larger than %zu MiB", max >> 20);
	else if (max >= 1024 && max % 1024 == 0)
		snprintf(err, errlen, "larger than %zu KiB", max >> 10);
	else
		snprintf(err, errlen, "larger than %zu bytes", max);
}

/* Allocates a buffer of size bytes, moving len bytes of old (wiped, freed) into it. */
static char *
sys_grow(char *old, size_t len, size_t oldsize, size_t size)
{
	char *buf = malloc(size);

	if (buf != NULL && old != NULL)
		memcpy(buf, old, len);
	if (old != NULL) {
		sodium_memzero(old, oldsize);
		free(old);
	}
	return buf;
}

int
sys_file_read(const char *path, const struct sys_file_opts *o, struct sys_file *f,
    char *err, size_t errlen)
{
	char resolved[PATH_MAX], probe;
	const char *open_path = path;
	size_t want;
	ssize_t n;
	int fd = -1, flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, rc = -1;

	memset(f, 0, sizeof(*f));
	if (o->trust) {
		/* Open what the checks looked at: the resolved path, no symlink in between. */
		if (realpath(path, resolved) == NULL) {
			if ((errno == ENOENT || errno == ENOTDIR) && o->missing_ok)
				return 0;
			snprintf(err, errlen, "%s", strerror(errno));
			return -1;
		}
		open_path = resolved;
		flags |= O_NOFOLLOW;
	}
	if ((fd = open(open_path, flags)) < 0) {
		if ((errno == ENOENT || errno == ENOTDIR) && o->missing_ok)
			return 0;
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &f->st) != 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		goto out;
	}
	if (S_ISCHR(f->st.st_mode) && o->empty_device_ok) {
		/* /dev/null and its like: nothing to read, nothing anyone can write into it. */
		do
			n = read(fd, &probe, 1);
		while (n < 0 && errno == EINTR);
		if (n != 0) {
			snprintf(err, errlen, "not a regular file (a device that does not read empty)");
			goto out;
		}
		f->device = true;
	} else if (!S_ISREG(f->st.st_mode)) {
		snprintf(err, errlen, "not a regular file");
		goto out;
	} else if (o->trust && (sys_check_one(resolved, &f->st, false, SYS_NO_UID, err,
	    errlen) != 0 || sys_check_paths(path, resolved, SYS_NO_UID, err, errlen) != 0)) {
		goto out;
	} else if (f->st.st_size < 0 || (uint64_t)f->st.st_size > o->max_size) {
		sys_too_large(o->max_size, err, errlen);
		goto out;
	}
	if (f->device && o->trust && sys_check_paths(path, resolved, SYS_NO_UID, err, errlen) != 0)
		goto out;

	/* Room for the size fstat gave, one byte to notice growth, and the NUL. */
	want = f->device ? 0 : (size_t)f->st.st_size;
	f->size = want + 2;
	if ((f->data = malloc(f->size)) == NULL)
		goto nomem;
	while (!f->device) {
		if (f->len + 1 == f->size) {
			/* It grew while we read: follow it up to the bound. */
			size_t size = f->size * 2 > o->max_size + 2 ? o->max_size + 2 : f->size * 2;

			if (f->len > o->max_size) {
				sys_too_large(o->max_size, err, errlen);
				goto out;
			}
			if ((f->data = sys_grow(f->data, f->len, f->size, size)) == NULL)
				goto nomem;
			f->size = size;
		}
		n = read(fd, f->data + f->len, f->size - 1 - f->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		f->len += (size_t)n;
	}
	if (f->len > o->max_size) {
		sys_too_large(o->max_size, err, errlen);
		goto out;
	}
	f->data[f->len] = '\0';
	rc = 1;
	goto out;
nomem:
	snprintf(err, errlen, "out of memory");
out:
	if (fd >= 0)
		close(fd);
	if (rc != 1)
		sys_file_free(f);
	return rc;
}

void
sys_file_free(struct sys_file *f)
{
	if (f->data != NULL) {
		sodium_memzero(f->data, f->size);
		free(f->data);
	}
	memset(f, 0, sizeof(*f));
}

void
sys_file_ident_of(const struct stat *st, struct sys_file_ident *id)
{
	memset(id, 0, sizeof(*id));
	id->exists = true;
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtime = st->st_mtim;
	id->ctime = st->st_ctim;
}

void
sys_file_ident_path(const char *path, struct sys_file_ident *id)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		memset(id, 0, sizeof(*id));
		return;
	}
	sys_file_ident_of(&st, id);
}

bool
sys_file_ident_same(const struct sys_file_ident *a, const struct sys_file_ident *b)
{
	return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino &&
	    a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	    a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
	    a->ctime.tv_nsec == b->ctime.tv_nsec;
}
