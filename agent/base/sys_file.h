/*
 * sys_file: the one home for reading a small trusted file (configuration,
 * the file backend's data, AWS shared files, token files) and for deciding
 * whether a file may be trusted at all.
 *
 * Reading: the whole file into memory with read(2) (no stdio buffer keeps a
 * copy), opened O_NONBLOCK (a FIFO cannot hang the agent) and, when trust is
 * checked, by its resolved path with O_NOFOLLOW; a regular file, or when
 * asked a character device that reads empty (/dev/null: "no content");
 * bounded in size. The buffer is wiped by sys_file_free().
 *
 * Trust (as OpenSSH's StrictModes): a file is refused when it is writable by
 * group or others, or owned by a user other than root, the agent's own
 * effective uid, or the uid the agent will run as (sys_file_trust_uid());
 * symlinks are resolved and every directory on the path, as written and as
 * resolved, is checked too: a directory owned by another user, or writable
 * by group or others without the sticky bit, is refused (/tmp, root-owned
 * and sticky, is fine). The message names the file or directory, what is
 * wrong and the command that fixes it.
 *
 * Returns follow the house rule: 0 / -1 with a message, and 1 / 0 / -1
 * (read / missing / error) where a missing file is allowed.
 */
#ifndef SMC_AGENT_SYS_FILE_H
#define SMC_AGENT_SYS_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

struct sys_file_opts {
	size_t max_size;		/* bytes; a larger file is an error */
	bool missing_ok;		/* no such file: return 0, not an error */
	bool empty_device_ok;		/* a character device that reads empty is an empty file */
	bool trust;			/* refuse files others could write (see above) */
};

struct sys_file {
	char *data;			/* len bytes and a NUL; wiped and freed by sys_file_free */
	size_t len;
	size_t size;			/* of the allocation */
	struct stat st;			/* the opened file's fstat */
	bool device;			/* an empty character device (/dev/null) */
};

/*
 * Reads path into *f. Returns 1 (read), 0 (missing, only with missing_ok),
 * or -1 with the reason in err (not naming path, which the caller knows,
 * except where a fix names it). *f needs sys_file_free() after 1 only.
 */
int sys_file_read(const char *path, const struct sys_file_opts *o, struct sys_file *f,
    char *err, size_t errlen);

/* Wipes and frees the data; safe on a zeroed struct. */
void sys_file_free(struct sys_file *f);

/*
 * The trust check alone: st is the file's fstat (NULL: stat(path)). Returns
 * 0 when trusted, -1 with err ("writable by group and others (mode 0666);
 * fix: chmod go-w /etc/smcache/smcached.conf").
 */
int sys_file_check_trust(const char *path, const struct stat *st, char *err, size_t errlen);

/* The same, trusting agent_uid (not the one set by sys_file_trust_uid()) besides
 * root and the effective uid: for the configuration, which names that user. */
int sys_file_check_trust_as(const char *path, const struct stat *st, uid_t agent_uid,
    char *err, size_t errlen);

/* The uid the agent runs as once privileges are dropped: trusted as owner too. */
void sys_file_trust_uid(uid_t uid);

/* What identifies one state of a file, to notice a change cheaply (stat). */
struct sys_file_ident {
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct timespec ctime;		/* chmod and chown change it too */
};

void sys_file_ident_of(const struct stat *st, struct sys_file_ident *id);
/* stat(path); exists is false when it fails. */
void sys_file_ident_path(const char *path, struct sys_file_ident *id);
bool sys_file_ident_same(const struct sys_file_ident *a, const struct sys_file_ident *b);

#endif
