/*
 * privdrop: credentials and process limits (see privdrop.h).
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "privdrop.h"
#include "secmem.h"
#include "sys_user.h"

/* When the hard RLIMIT_NOFILE is unlimited, the kernel still caps it at fs.nr_open. */
#define NOFILE_FALLBACK	1048576ULL

int
privdrop_lookup_user(const char *name, uid_t *uid, gid_t *gid, char *name_out, size_t name_len,
    char *err, size_t errlen)
{
	uint32_t id = 0;
	int found;

	if (name_out != NULL && name_len > 0)
		name_out[0] = '\0';
	if (gid != NULL)
		*gid = (gid_t)-1;
	/* A name is looked up as a name; a number is an id, with or without an entry. */
	if (sys_user_parse_id(name, &id) == 0) {
		*uid = (uid_t)id;
		return sys_user_by_uid(*uid, gid, name_out, name_len, err, errlen) < 0 ? -1 : 0;
	}
	if ((found = sys_user_by_name(name, uid, gid, name_out, name_len, err, errlen)) == 0)
		snprintf(err, errlen, "no user '%s' on this system", name);
	return found == 1 ? 0 : -1;
}

int
privdrop_lookup_group(const char *name, gid_t *gid, char *err, size_t errlen)
{
	uint32_t id;
	int found;

	if (sys_user_parse_id(name, &id) == 0) {
		*gid = (gid_t)id;
		return 0;
	}
	if ((found = sys_group_by_name(name, gid, err, errlen)) == 0)
		snprintf(err, errlen, "no group '%s' on this system", name);
	return found == 1 ? 0 : -1;
}

int
privdrop_plan_make(const char *user, const char *group, struct privdrop_plan *plan, char *err,
    size_t errlen)
{
	uid_t euid = geteuid(), ruid = getuid();
	gid_t egid = getegid(), rgid = getgid(), user_gid = (gid_t)-1;
	char why[256];

	memset(plan, 0, sizeof(*plan));
	plan->uid = euid;
	plan->gid = egid;
	if (user != NULL) {
		if (privdrop_lookup_user(user, &plan->uid, &user_gid, plan->user,
		    sizeof(plan->user), why, sizeof(why)) != 0) {
			snprintf(err, errlen, "[agent] user: %s", why);
			return -1;
		}
		plan->gid = user_gid;
	}
	if (group != NULL) {
		if (privdrop_lookup_group(group, &plan->gid, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "[agent] group: %s", why);
			return -1;
		}
	} else if (user != NULL && user_gid == (gid_t)-1) {
		snprintf(err, errlen, "[agent] user: uid %s has no passwd entry, so no primary"
		    " group: set [agent] group too", user);
		return -1;
	}
	if (plan->uid == euid && plan->uid == ruid && plan->gid == egid && plan->gid == rgid)
		return 0;	/* already there */
	if (euid != 0) {
		snprintf(err, errlen, "[agent] user/group: running as uid %lu gid %lu needs the"
		    " agent to be started as root, but it runs as uid %lu; start it as root or"
		    " leave [agent] user and group out", (unsigned long)plan->uid,
		    (unsigned long)plan->gid, (unsigned long)euid);
		return -1;
	}
	plan->change = true;
	return 0;
}

/*
 * Locked memory must be able to grow once CAP_IPC_LOCK is gone: raise the
 * limit, or (without CAP_SYS_RESOURCE) unlock, so that the caller locks
 * again within the limit as the new user, by its policy. Nothing secret is
 * in memory yet at this point.
 */
static int
keep_memlock(bool *unlocked, char *note, size_t notelen, char *err, size_t errlen)
{
	struct rlimit rl;
	uint64_t locked = 0;

	if (secmem_locked_bytes(&locked) != 0 || locked == 0)
		return 0;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0) {
		snprintf(err, errlen, "getrlimit(RLIMIT_MEMLOCK): %s", strerror(errno));
		return -1;
	}
	if (rl.rlim_cur == RLIM_INFINITY)
		return 0;
	snprintf(note, notelen, "memory is locked and CAP_IPC_LOCK goes with root: raised"
	    " RLIMIT_MEMLOCK from %llu KiB to unlimited so locked memory can still grow",
	    (unsigned long long)rl.rlim_cur / 1024);
	rl.rlim_cur = rl.rlim_max = RLIM_INFINITY;
	if (setrlimit(RLIMIT_MEMLOCK, &rl) == 0)
		return 0;
	snprintf(note, notelen, "cannot raise RLIMIT_MEMLOCK to unlimited before dropping"
	    " root (%s): memory unlocked, to be locked again within the limit",
	    strerror(errno));
	if (munlockall() != 0) {
		snprintf(err, errlen, "munlockall: %s", strerror(errno));
		return -1;
	}
	*unlocked = true;
	return 0;
}

int
privdrop_apply(const struct privdrop_plan *plan, bool *unlocked, char *note, size_t notelen,
    char *err, size_t errlen)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	*unlocked = false;
	if (notelen > 0)
		note[0] = '\0';
	if (!plan->change)
		return 0;
	if (plan->uid != 0 && keep_memlock(unlocked, note, notelen, err, errlen) != 0)
		return -1;
	/* Groups first: once the uid is not 0 they can no longer be changed. */
	if (plan->user[0] != '\0') {
		if (initgroups(plan->user, plan->gid) != 0) {
			snprintf(err, errlen, "initgroups(%s, %lu): %s", plan->user,
			    (unsigned long)plan->gid, strerror(errno));
			return -1;
		}
	} else if (setgroups(1, &plan->gid) != 0) {
		snprintf(err, errlen, "setgroups(%lu): %s", (unsigned long)plan->gid, strerror(errno));
		return -1;
	}
	if (setresgid(plan->gid, plan->gid, plan->gid) != 0) {
		snprintf(err, errlen, "setresgid(%lu): %s", (unsigned long)plan->gid, strerror(errno));
		return -1;
	}
	if (setresuid(plan->uid, plan->uid, plan->uid) != 0) {
		snprintf(err, errlen, "setresuid(%lu): %s", (unsigned long)plan->uid, strerror(errno));
		return -1;
	}
	if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 ||
	    ru != plan->uid || eu != plan->uid || su != plan->uid ||
	    rg != plan->gid || eg != plan->gid || sg != plan->gid) {
		snprintf(err, errlen, "credentials are not uid %lu gid %lu after setresuid/setresgid",
		    (unsigned long)plan->uid, (unsigned long)plan->gid);
		return -1;
	}
	/* The drop must be permanent: saved ids and capabilities gone. */
	if (plan->uid != 0 && (setuid(0) != -1 || seteuid(0) != -1)) {
		snprintf(err, errlen, "could regain root after dropping privileges; refusing to run");
		return -1;
	}
	if (plan->uid != 0 && plan->gid != 0 && (setgid(0) != -1 || setegid(0) != -1)) {
		snprintf(err, errlen, "could regain group 0 after dropping privileges; refusing to run");
		return -1;
	}
	return 0;
}

int
privdrop_no_new_privs(char *err, size_t errlen)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		snprintf(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* fs.nr_open, the most descriptors a process may have; a fallback if unreadable. */
static unsigned long long
nr_open(void)
{
	unsigned long long v = 0;
	FILE *f = fopen("/proc/sys/fs/nr_open", "re");

	if (f != NULL) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v > 0 ? v : NOFILE_FALLBACK;
}

int
privdrop_raise_nofile(unsigned long long *soft, char *err, size_t errlen)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		snprintf(err, errlen, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return -1;
	}
	*soft = (unsigned long long)rl.rlim_cur;
	if (rl.rlim_cur == rl.rlim_max)
		return 0;
	rl.rlim_cur = rl.rlim_max;
	if (rl.rlim_cur == RLIM_INFINITY)
		rl.rlim_cur = (rlim_t)nr_open();
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		snprintf(err, errlen, "cannot raise RLIMIT_NOFILE from %llu to %llu: %s", *soft,
		    (unsigned long long)rl.rlim_cur, strerror(errno));
		return -1;
	}
	*soft = (unsigned long long)rl.rlim_cur;
	return 0;
}
