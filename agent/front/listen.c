/*
 * listen: the agent's Unix socket, created or adopted from systemd, with
 * explicit errors (see listen.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "listen.h"

#define DIR_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

static int
fill_sockaddr(struct sockaddr_un *sun, const char *path, char *err, size_t errlen)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path)) {
		snprintf(err, errlen, "socket path too long (%zu bytes, limit %zu): %s",
		    strlen(path), sizeof(sun->sun_path) - 1, path);
		return -1;
	}
	memcpy(sun->sun_path, path, strlen(path) + 1);
	return 0;
}

/* The directory part of path: "/run/smcache" for "/run/smcache/x.sock". */
static void
parent_of(const char *path, char *dir, size_t len)
{
	char *slash;

	snprintf(dir, len, "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL)
		snprintf(dir, len, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
}

/* Search permission on the directory for those the socket's mode lets in; a
 * socket owner other than the agent (who owns the directory) counts as other. */
static mode_t
dir_mode_for(const struct listen_options *o)
{
	return 0700 | ((o->mode & 0070) ? 0050 : 0) |
	    ((o->mode & 0007) || o->owner != o->agent_uid ? 0005 : 0);
}

static int
owner_ok(const struct stat *st, const struct listen_options *o)
{
	return st->st_uid == 0 || st->st_uid == o->agent_uid;
}

/*
 * The socket's own directory: owned by root or the agent, writable by
 * nobody else. Sticky does not help here: another user could create the
 * socket's name (or names clients look for) before the agent does.
 */
static int
check_socket_dir(int dfd, const char *dir, const struct listen_options *o, char *err,
    size_t errlen)
{
	struct stat st;

	if (fstat(dfd, &st) != 0) {
		snprintf(err, errlen, "cannot stat socket directory %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!owner_ok(&st, o)) {
		snprintf(err, errlen, "socket directory %s is owned by uid %lu, not by root or the"
		    " agent's user (uid %lu): that user could replace the socket; refusing to start",
		    dir, (unsigned long)st.st_uid, (unsigned long)o->agent_uid);
		return -1;
	}
	if (o->dir_shared)
		return 0;	/* writable by the pod's own containers, by configuration */
	if (st.st_mode & S_IWOTH) {
		snprintf(err, errlen, "socket directory %s is writable by every user (mode %04o%s):"
		    " another user could create or replace names in it; refusing to start (use a"
		    " directory of its own, like /run/smcache; for a container volume shared only"
		    " with the pod's own containers, set [agent] socket_dir_shared = true)", dir,
		    (unsigned)(st.st_mode & 07777), (st.st_mode & S_ISVTX) ? ", sticky" : "");
		return -1;
	}
	if ((st.st_mode & S_IWGRP) && st.st_gid != o->agent_gid) {
		snprintf(err, errlen, "socket directory %s is writable by group %lu (mode %04o),"
		    " which is not the agent's group (%lu); refusing to start", dir,
		    (unsigned long)st.st_gid, (unsigned)(st.st_mode & 07777),
		    (unsigned long)o->agent_gid);
		return -1;
	}
	return 0;
}

/*
 * Every directory above the socket's: owned by root or the agent, and if
 * writable by others then sticky (like /tmp), so nobody can rename the
 * socket's directory away and put another in its place.
 */
static int
check_ancestors(const char *dir, const struct listen_options *o, char *err, size_t errlen)
{
	char *real, *slash;
	struct stat st;
	int rc = -1;

	if ((real = realpath(dir, NULL)) == NULL) {
		snprintf(err, errlen, "cannot resolve socket directory %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((slash = strrchr(real, '/')) != NULL) {
		if (slash == real) {
			if (real[1] == '\0')
				break;
			real[1] = '\0';		/* "/x" -> "/" */
		} else {
			*slash = '\0';
		}
		if (lstat(real, &st) != 0) {
			snprintf(err, errlen, "cannot stat %s: %s", real, strerror(errno));
			goto out;
		}
		if (!owner_ok(&st, o)) {
			snprintf(err, errlen, "%s, above the socket directory %s, is owned by uid %lu,"
			    " not by root or the agent's user (uid %lu): that user could replace the"
			    " socket directory; refusing to start", real, dir,
			    (unsigned long)st.st_uid, (unsigned long)o->agent_uid);
			goto out;
		}
		if (!(st.st_mode & S_ISVTX) && ((st.st_mode & S_IWOTH) ||
		    ((st.st_mode & S_IWGRP) && st.st_gid != o->agent_gid))) {
			snprintf(err, errlen, "%s, above the socket directory %s, is writable by"
			    " other users (mode %04o) and not sticky: they could replace the socket"
			    " directory; refusing to start", real, dir,
			    (unsigned)(st.st_mode & 07777));
			goto out;
		}
	}
	rc = 0;
out:
	free(real);
	return rc;
}

/* Creates the socket's directory when missing, then checks it and those above. */
static int
prepare_dir(const char *path, const struct listen_options *o, char *err, size_t errlen)
{
	char dir[DIR_MAX];
	int dfd = -1, created = 0, rc = -1;

	parent_of(path, dir, sizeof(dir));
	if (mkdir(dir, 0700) == 0)
		created = 1;
	else if (errno != EEXIST) {
		snprintf(err, errlen, "cannot create socket directory %s: %s", dir, strerror(errno));
		return -1;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		struct stat lst;
		int saved = errno;

		if (lstat(dir, &lst) == 0 && S_ISLNK(lst.st_mode))
			snprintf(err, errlen, "socket directory %s is a symbolic link; refusing to"
			    " start (name the real directory)", dir);
		else
			snprintf(err, errlen, "cannot open socket directory %s: %s", dir,
			    strerror(saved));
		return -1;
	}
	/* Created 0700 by us: give it its owner, then open it up as far as needed. */
	if (created && (fchown(dfd, o->agent_uid, o->group) != 0 ||
	    fchmod(dfd, dir_mode_for(o)) != 0)) {
		snprintf(err, errlen, "cannot set owner or mode of socket directory %s: %s", dir,
		    strerror(errno));
		goto out;
	}
	if (check_socket_dir(dfd, dir, o, err, errlen) != 0 ||
	    check_ancestors(dir, o, err, errlen) != 0)
		goto out;
	rc = 0;
out:
	close(dfd);
	return rc;
}

/*
 * A socket file that nobody accepts on is stale and may be replaced. One that
 * answers belongs to a live agent; anything that is not a socket is left alone.
 */
static int
clear_stale_socket(const struct sockaddr_un *sun, const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd, r = -1;

	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket; refusing to replace it", path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0) {
		snprintf(err, errlen, "another agent is listening on %s", path);
		goto out;
	}
	if (errno != ECONNREFUSED && errno != ENOENT) {
		snprintf(err, errlen, "cannot probe existing socket %s: %s", path, strerror(errno));
		goto out;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove stale socket %s: %s", path, strerror(errno));
		goto out;
	}
	r = 0;
out:
	close(fd);
	return r;
}

/*
 * bind() creates the file with 0777 less the umask: a umask of 0177 makes
 * it 0600, owner only, until its owner, group and mode are final. Nobody
 * can connect before listen() anyway; this keeps even that window closed.
 */
static int
bind_private(int fd, const struct sockaddr_un *sun, const char *path, char *err, size_t errlen)
{
	mode_t old = umask(0177);
	int rc = bind(fd, (const struct sockaddr *)sun, sizeof(*sun));
	int saved = errno;

	umask(old);
	if (rc != 0)
		snprintf(err, errlen, "bind %s: %s", path, strerror(saved));
	return rc;
}

static int
set_socket_perms(const char *path, const struct listen_options *o, struct stat *st, char *err,
    size_t errlen)
{
	/* The directory is checked: nobody else can have put a symlink at path. */
	if (lchown(path, o->owner, o->group) != 0) {
		snprintf(err, errlen, "cannot give socket %s owner %lu group %lu: %s%s", path,
		    (unsigned long)o->owner, (unsigned long)o->group, strerror(errno),
		    errno == EPERM ? " (another owner needs root; another group needs root or"
		    " membership in it)" : "");
		return -1;
	}
	if (chmod(path, o->mode) != 0) {
		snprintf(err, errlen, "cannot set mode %04o on socket %s: %s", (unsigned)o->mode,
		    path, strerror(errno));
		return -1;
	}
	if (lstat(path, st) != 0 || !S_ISSOCK(st->st_mode) || st->st_uid != o->owner ||
	    st->st_gid != o->group || (st->st_mode & 07777) != o->mode) {
		snprintf(err, errlen, "socket %s does not have owner %lu group %lu mode %04o after"
		    " setting them", path, (unsigned long)o->owner, (unsigned long)o->group,
		    (unsigned)o->mode);
		return -1;
	}
	return 0;
}

int
listen_unix(struct listen_socket *ls, const char *path, const struct listen_options *opt,
    char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd = -1, bound = 0;

	ls->fd = -1;
	ls->activated = false;
	if (fill_sockaddr(&sun, path, err, errlen) != 0)
		return -1;
	if (prepare_dir(path, opt, err, errlen) != 0)
		return -1;
	if (clear_stale_socket(&sun, path, err, errlen) != 0)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto fail;
	}
	if (bind_private(fd, &sun, path, err, errlen) != 0)
		goto fail;
	bound = 1;
	if (set_socket_perms(path, opt, &st, err, errlen) != 0)
		goto fail;
	if (listen(fd, opt->backlog) != 0) {
		snprintf(err, errlen, "listen %s: %s", path, strerror(errno));
		goto fail;
	}
	ls->fd = fd;
	ls->dev = st.st_dev;
	ls->ino = st.st_ino;
	memcpy(ls->path, sun.sun_path, sizeof(ls->path));
	return 0;
fail:
	if (bound)
		unlink(path);
	if (fd >= 0)
		close(fd);
	return -1;
}

/* LISTEN_PID / LISTEN_FDS as decimal numbers; -1 when not one. */
static long
env_number(const char *name)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (v == NULL || *v < '0' || *v > '9')
		return -1;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	return n;
}

static void
unset_activation_env(void)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

int
listen_activated(struct listen_socket *ls, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	socklen_t len, addrlen;
	long pid, nfds;
	int type = 0, listening = 0, flags, fd = LISTEN_FDS_START;

	ls->fd = -1;
	ls->activated = false;
	if (getenv("LISTEN_PID") == NULL)
		return 0;
	pid = env_number("LISTEN_PID");
	if (pid < 0) {
		snprintf(err, errlen, "socket activation: LISTEN_PID is not a number");
		return -1;
	}
	if (pid != (long)getpid())
		return 0;	/* meant for another process (we were exec'ed by it) */
	nfds = env_number("LISTEN_FDS");
	if (nfds != 1) {
		const char *v = getenv("LISTEN_FDS");

		snprintf(err, errlen, "socket activation: expected LISTEN_FDS=1 (one Unix stream"
		    " socket), got %s%.16s%s", v != NULL ? "'" : "", v != NULL ? v : "none",
		    v != NULL ? "'" : "");
		unset_activation_env();
		return -1;
	}
	unset_activation_env();
	len = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
		snprintf(err, errlen, "socket activation: fd %d is not a socket: %s", fd,
		    strerror(errno));
		return -1;
	}
	addrlen = sizeof(sun);
	memset(&sun, 0, sizeof(sun));
	if (getsockname(fd, (struct sockaddr *)&sun, &addrlen) != 0 || sun.sun_family != AF_UNIX ||
	    type != SOCK_STREAM) {
		snprintf(err, errlen, "socket activation: fd %d is not a Unix stream socket"
		    " (ListenStream= with a path)", fd);
		return -1;
	}
	len = sizeof(listening);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) {
		snprintf(err, errlen, "socket activation: fd %d is not listening (Accept=no is"
		    " needed)", fd);
		return -1;
	}
	if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
		snprintf(err, errlen, "socket activation: fcntl on fd %d: %s", fd, strerror(errno));
		return -1;
	}
	ls->fd = fd;
	ls->activated = true;
	/* The name is for messages; an unnamed or abstract socket shows as such. */
	if (addrlen > offsetof(struct sockaddr_un, sun_path) && sun.sun_path[0] != '\0')
		snprintf(ls->path, sizeof(ls->path), "%.*s", (int)(sizeof(sun.sun_path) - 1),
		    sun.sun_path);
	else
		snprintf(ls->path, sizeof(ls->path), "(unnamed socket from systemd)");
	return 1;
}

int
listen_unix_close(struct listen_socket *ls)
{
	struct stat st;
	int rc = 0, saved = 0;

	if (ls->fd < 0)
		return 0;
	if (!ls->activated && lstat(ls->path, &st) == 0 && st.st_dev == ls->dev &&
	    st.st_ino == ls->ino && unlink(ls->path) != 0) {
		saved = errno;
		rc = -1;
	}
	close(ls->fd);
	ls->fd = -1;
	errno = saved;
	return rc;
}
