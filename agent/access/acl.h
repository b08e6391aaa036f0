/*
 * acl: who may read which secrets. Owns the rule syntax, the resolution of
 * user and group names (at parse time), and the matching of a peer and a
 * secret id against the rules.
 *
 * A rule grants one principal a list of secret-id patterns:
 *
 *     user:NAME|UID   PATTERN [PATTERN ...]
 *     group:NAME|GID  PATTERN [PATTERN ...]
 *     key:NAME        PATTERN [PATTERN ...]
 *
 * A key rule names a local key of the Secrets Manager endpoint ([endpoint]
 * auth = keys, keys_file): a caller that signed with that key is judged by
 * key rules only (acl_peer.key), and uid and group rules never match it.
 *
 * A group rule matches a peer whose primary group or any supplementary
 * group (SO_PEERGROUPS) is that group. A principal written with digits only
 * is a numeric id and need not exist in the user database.
 *
 * Patterns are fnmatch(3) globs without FNM_PATHNAME: '*' and '?' also
 * match '/', so "prod/payments/" followed by '*' covers every secret below
 * prod/payments/, at any depth. '[...]' is a character class; there are no
 * escapes (FNM_NOESCAPE; '\' cannot appear in a secret id anyway). A
 * pattern starting with "arn:" is an ARN pattern; any other is a name
 * pattern (and may not contain ':').
 *
 * A request names a secret by name, full ARN or partial ARN; it is allowed
 * before anything is looked up when one of the peer's patterns matches:
 *   - an id not starting with "arn:" (a name): the name patterns, as given;
 *     ARN patterns never match a name;
 *   - an id starting with "arn:": the ARN patterns, as given or with a
 *     "-XXXXXX" suffix added to the pattern; and the name patterns against
 *     the part after the sixth ':' (the name, or the name plus its suffix),
 *     as given or with the suffix added to the pattern.
 * After the backend resolved the id, the secret's own name and ARN must
 * pass again (acl_allows_resolved), so an ambiguous partial ARN cannot
 * reach a secret whose real name no pattern grants.
 *
 * With no rules at all, access control is off and everything is allowed.
 */
#ifndef SMC_AGENT_ACL_H
#define SMC_AGENT_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct acl;

/* Who is asking (SO_PEERCRED and SO_PEERGROUPS). */
struct acl_peer {
	uid_t uid;
	gid_t gid;			/* primary group */
	const gid_t *groups;		/* supplementary groups; NULL when none */
	size_t ngroups;
	const char *key;		/* the endpoint key the caller proved; NULL: a uid caller */
};

/* Checks one rule's text, resolving names. 0, or -1 with the reason in why. */
int acl_rule_check(const char *text, char *why, size_t whylen);

/*
 * Builds the rules from their texts; count 0 gives an ACL that allows
 * everything. NULL with err set when a rule is bad (or out of memory).
 */
struct acl *acl_new(const char *const *rules, size_t count, char *err, size_t errlen);
void acl_free(struct acl *acl);

/* False for NULL or an ACL without rules: everything is allowed. */
bool acl_enabled(const struct acl *acl);
size_t acl_rule_count(const struct acl *acl);

/* May peer ask for secret_id (as the client gave it)? */
bool acl_allows_id(const struct acl *acl, const struct acl_peer *peer, const char *secret_id);

/* May peer read the secret the backend resolved to (its name and ARN)? */
bool acl_allows_resolved(const struct acl *acl, const struct acl_peer *peer, const char *name,
    const char *arn);

/*
 * A request by ARN may name more than one secret (Secrets Manager's random
 * "-XXXXXX" suffix: "...:secret:app/db-AbCdEf" is the secret app/db, or a
 * secret named app/db-AbCdEf). True when every secret secret_id can resolve
 * to is granted to peer by a name pattern, so that "not found" tells the peer
 * nothing it could not read anyway; false (an ARN whose resolution may be
 * refused): the caller answers "not found" exactly as it answers a refusal,
 * or the difference would say whether a secret the peer may not read exists.
 * True for names and with access control off.
 */
bool acl_id_unambiguous(const struct acl *acl, const struct acl_peer *peer, const char *secret_id);

/* Does any rule name this peer (its user or one of its groups)? */
bool acl_names_peer(const struct acl *acl, const struct acl_peer *peer);

/*
 * STATS reveals counts but no secrets or ids: allowed with access control
 * off, to root, to the agent's own user, and to any peer a rule names.
 */
bool acl_allows_stats(const struct acl *acl, const struct acl_peer *peer, uid_t agent_uid);

#endif
