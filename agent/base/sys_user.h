/*
 * sys_user: the one home for user and group lookups (getpwnam_r and friends
 * with a buffer that grows on ERANGE) and for parsing a decimal uid/gid.
 * Used by the access rules, the privilege drop and the file trust check.
 *
 * Lookups return 1 found, 0 no such entry, -1 an error (message in err).
 */
#ifndef SMC_AGENT_SYS_USER_H
#define SMC_AGENT_SYS_USER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Decimal digits only, fitting 32 bits and not (uint32_t)-1 (which means
 * "no change" to setresuid). Returns 0, or -1 when s is not such a number. */
int sys_user_parse_id(const char *s, uint32_t *id);

/*
 * A user by name. uid, gid (the primary group) and name_out (the name as
 * the database spells it; "" when it does not fit) may be NULL.
 */
int sys_user_by_name(const char *name, uid_t *uid, gid_t *gid, char *name_out,
    size_t name_len, char *err, size_t errlen);

/* A user by uid; gid and name_out as above. */
int sys_user_by_uid(uid_t uid, gid_t *gid, char *name_out, size_t name_len,
    char *err, size_t errlen);

/* A user's home directory by uid ("" when it does not fit or is empty). */
int sys_user_home(uid_t uid, char *home, size_t home_len, char *err, size_t errlen);

/* A group by name. */
int sys_group_by_name(const char *name, gid_t *gid, char *err, size_t errlen);

/* For messages: "1000 (alice)", or "1000" when the uid has no name. */
void sys_user_describe(uid_t uid, char *out, size_t outlen);

#endif
