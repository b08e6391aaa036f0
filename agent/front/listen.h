/*
 * listen: the agent's Unix socket. Either adopts the one systemd passes
 * (socket activation, LISTEN_FDS) or creates it: makes the socket's
 * directory when missing, refuses a directory another user could write,
 * replaces a stale socket file left by a dead agent, refuses to steal the
 * path from a live one, and gives the file its owner, group and mode before
 * anyone can connect.
 */
#ifndef SMC_AGENT_LISTEN_H
#define SMC_AGENT_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/un.h>

/* The first descriptor systemd passes (SD_LISTEN_FDS_START). */
#define LISTEN_FDS_START 3

struct listen_socket {
	int fd;
	bool activated;		/* passed by systemd: the file is not ours to remove */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;		/* identity of the socket file we bound */
	ino_t ino;
};

struct listen_options {
	mode_t mode;		/* permission bits of the socket file */
	uid_t owner;		/* of the socket file */
	gid_t group;
	uid_t agent_uid;	/* who the agent runs as once started (after any drop) */
	gid_t agent_gid;
	int backlog;
	/* The socket's directory is a volume the container runtime made writable
	 * by everyone (a Kubernetes emptyDir, an ECS task volume) and shares only
	 * with the pod's or task's own containers: accept it as it is. */
	bool dir_shared;
};

/*
 * Creates path as a listening, non-blocking, close-on-exec socket owned by
 * opt->owner:opt->group with opt->mode. The file is created owner-only
 * (0600) and changed to its final owner and mode before listen(), so it is
 * never reachable with looser permissions.
 *
 * The directory holding it is created when missing (one level) owned by
 * agent_uid and the socket's group, with search permission for those the
 * mode lets in (0750 for 0660; 0755 for 0666 or another owner). It, and every directory above it, must be
 * owned by root or agent_uid; it must not be writable by others or by a
 * group that is not agent_gid (sticky directories like /tmp included,
 * since anyone could create names there); directories above it may be
 * writable by others only with the sticky bit.
 * Returns 0, or -1 with err set.
 */
int listen_unix(struct listen_socket *ls, const char *path, const struct listen_options *opt,
    char *err, size_t errlen);

/*
 * Socket activation without libsystemd: when LISTEN_PID is this process
 * and LISTEN_FDS is 1, adopts fd 3 after checking it is a listening Unix
 * stream socket, makes it non-blocking and close-on-exec, and unsets
 * LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES. Returns 1 (ls filled,
 * ls->activated), 0 when the agent was not socket-activated (LISTEN_PID
 * unset or another process's), or -1 with err (a malformed or unusable
 * activation: the caller must not fall back to creating its own socket).
 */
int listen_activated(struct listen_socket *ls, char *err, size_t errlen);

/* Closes the socket and unlinks its file if we created it and it is still
 * ours (not a successor's). Returns 0, or -1 with errno when the file could
 * not be removed (e.g. the directory is not writable after dropping root). */
int listen_unix_close(struct listen_socket *ls);

#endif
