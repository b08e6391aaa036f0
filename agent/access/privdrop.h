/*
 * privdrop: the agent's credentials and the process limits that go with
 * them. Resolves user and group names (or numeric ids), drops root for good
 * once the socket is bound ([agent] user / group), sets PR_SET_NO_NEW_PRIVS,
 * and raises RLIMIT_NOFILE so that max_connections fits.
 *
 * Order at start-up (see main.c): privdrop_plan() early, while name lookups
 * may still read /etc; mlockall and bind as the starting user; then
 * privdrop_apply(), which cannot be undone.
 *
 * No seccomp filter: libseccomp is not a dependency and a hand-written BPF
 * allow-list for libevent + libcurl + OpenSSL would not stay maintainable;
 * smcached.service sets SystemCallFilter= instead.
 *
 * This module does not log: messages go to caller buffers.
 */
#ifndef SMC_AGENT_PRIVDROP_H
#define SMC_AGENT_PRIVDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define PRIVDROP_NAME_MAX 64

struct privdrop_plan {
	bool change;			/* privdrop_apply() switches uid/gid */
	uid_t uid;			/* the agent's uid once running (after any drop) */
	gid_t gid;			/* the agent's gid once running */
	char user[PRIVDROP_NAME_MAX];	/* for the supplementary groups; "" when unknown */
};

/* A user name or decimal uid. gid, if not NULL, gets the user's primary
 * group (-1 for a numeric uid without a passwd entry). name_out, if not
 * NULL, gets the user's name ("" when it has no passwd entry).
 * Returns 0, or -1 with err ("no user 'x'"). */
int privdrop_lookup_user(const char *name, uid_t *uid, gid_t *gid, char *name_out,
    size_t name_len, char *err, size_t errlen);

/* A group name or decimal gid. Returns 0, or -1 with err. */
int privdrop_lookup_group(const char *name, gid_t *gid, char *err, size_t errlen);

/*
 * Works out who the agent will run as from [agent] user and group (either
 * may be NULL). Without them, or when they name the current ids, nothing
 * changes (plan->change false, uid/gid the current effective ids).
 * Changing ids needs root: otherwise -1 with a message saying so.
 */
int privdrop_plan_make(const char *user, const char *group, struct privdrop_plan *plan,
    char *err, size_t errlen);

/*
 * Switches to plan's ids, irrevocably: supplementary groups (the user's, or
 * only the gid), then real/effective/saved gid, then uid; verifies all
 * three of each and that root cannot be regained (setuid(0) must fail).
 * Memory locked with mlockall(MCL_FUTURE) stays locked, but CAP_IPC_LOCK is
 * gone, so later mappings count against RLIMIT_MEMLOCK and would start
 * failing: when memory is locked the limit is raised to unlimited first
 * (root may, given CAP_SYS_RESOURCE); when that fails, memory is unlocked,
 * *unlocked is set, and the caller must apply its mlock policy again after
 * the drop (which then locks within the limit, warns, or fails, as the
 * policy says). note gets a line for the log when either happened (""
 * otherwise). A no-op when !plan->change. Returns 0, or -1 with err: the
 * caller must then exit.
 */
int privdrop_apply(const struct privdrop_plan *plan, bool *unlocked, char *note, size_t notelen,
    char *err, size_t errlen);

/* PR_SET_NO_NEW_PRIVS: no exec can gain privileges (the agent never execs).
 * Returns 0, or -1 with err. */
int privdrop_no_new_privs(char *err, size_t errlen);

/*
 * Raises the soft RLIMIT_NOFILE to the hard limit. *soft gets the limit now
 * in force. Returns 0, or -1 with err (the limit is then unchanged).
 */
int privdrop_raise_nofile(unsigned long long *soft, char *err, size_t errlen);

#endif
