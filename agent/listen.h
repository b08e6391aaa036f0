/*
 * listen: the agent's Unix socket. Creates the socket's directory when
 * missing, replaces a stale socket file left by a dead agent, and refuses to
 * steal the path from a live one.
 */
#ifndef SMC_AGENT_LISTEN_H
#define SMC_AGENT_LISTEN_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/un.h>

struct listen_socket {
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;		/* identity of the socket file we bound */
	ino_t ino;
};

/* Fills ls with a listening, non-blocking, close-on-exec socket; 0 / -1 with err set. */
int listen_unix(struct listen_socket *ls, const char *path, int backlog, char *err, size_t errlen);

/* Closes the socket and unlinks its file if it is still ours (not a successor's). */
void listen_unix_close(struct listen_socket *ls);

#endif
