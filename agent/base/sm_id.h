/*
 * sm_id: the one home of Secrets Manager's identifier shapes.
 *
 * Owns: secret names, full ARNs (arn:PARTITION:secretsmanager:REGION:ACCOUNT:
 * secret:NAME-XXXXXX) and partial ARNs (the same without "-XXXXXX"), the random
 * ARN suffix, regions with their partitions and DNS suffixes, staging labels
 * and version ids. Limits are the service model's (botocore's
 * secretsmanager/2017-10-17/service-2.json): SecretIdType 1..2048,
 * NameType 1..512, SecretVersionIdType 32..64, SecretVersionStageType 1..256.
 *
 * Pure functions over NUL-terminated strings (or pointer + length where a
 * caller holds a slice); no allocation, no logging.
 */
#ifndef SMC_AGENT_SM_ID_H
#define SMC_AGENT_SM_ID_H

#include <stdbool.h>
#include <stddef.h>

#define SM_ID_MAX_SECRET_ID	2048
#define SM_ID_MAX_NAME		512
#define SM_ID_MIN_VERSION_ID	32
#define SM_ID_MAX_VERSION_ID	64
#define SM_ID_MAX_STAGE		256
#define SM_ID_MAX_REGION	63
/* The random part AWS appends to a secret's name in its ARN: "-" and six
 * letters or digits. */
#define SM_ID_SUFFIX_CHARS	6
#define SM_ID_SUFFIX_LEN	(1 + SM_ID_SUFFIX_CHARS)

/* The fields of a secret ARN, as slices of the string it was split from. */
struct sm_arn {
	const char *partition;	size_t partition_len;
	const char *region;	size_t region_len;
	const char *account;	size_t account_len;
	const char *resource;	size_t resource_len;	/* NAME-XXXXXX, or NAME in a partial ARN */
	size_t prefix_len;	/* bytes before the resource: "arn:...:secret:" */
};

/* Whether id starts like an ARN ("arn:"); such an id is never a name. */
bool sm_id_is_arn(const char *id);

/* Splits a secret ARN (full or partial); 0 on success, -1 when id is not
 * shaped like arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:RESOURCE with
 * a non-empty resource that contains no ':'. */
int sm_id_arn_split(const char *id, struct sm_arn *out);

/* Whether name[0..len) ends with a well-formed random suffix ("-" + 6 letters
 * or digits) with at least one character before it. */
bool sm_id_has_suffix(const char *s, size_t len);

/* The name part of a secret ARN: its resource, less the random suffix when
 * the ARN is full. *len_out gets the name's length. NULL when id is not a
 * secret ARN. A partial ARN whose name happens to end in "-XXXXXX" is
 * ambiguous; with assume_full the suffix is taken off. */
const char *sm_id_arn_name(const char *id, bool assume_full, size_t *len_out);

/* Whether id names the secret with this ARN and name: the name, the full ARN,
 * or the partial ARN (the full ARN less its random suffix). Either of arn and
 * name may be NULL. */
bool sm_id_matches(const char *id, const char *arn, const char *name);

/* Whether id is the partial form of arn (arn == id + "-XXXXXX"). */
bool sm_id_is_partial_of(const char *id, size_t id_len, const char *arn);

/* Secret names: 1..512 of ASCII letters, digits and / _ + = . @ - (the
 * console's and API's documented set). */
bool sm_id_name_valid(const char *name);

/* A secret id as a request may carry it: a valid name, or a secret ARN of at
 * most 2048 bytes. */
bool sm_id_secret_id_valid(const char *id);

/* Version ids: 32..64 printable ASCII characters without blanks. */
bool sm_id_version_id_valid(const char *version_id);

/* Staging labels: 1..256 printable ASCII characters without blanks. */
bool sm_id_stage_valid(const char *stage);

/* Region names: 1..63 lowercase letters, digits and single dashes, starting
 * with a letter and not ending with a dash (us-east-1, us-gov-west-1,
 * cn-north-1, eu-isoe-west-1). */
bool sm_id_region_valid(const char *region);

/* The partition of a (valid) region: aws, aws-cn, aws-us-gov, aws-iso,
 * aws-iso-b, aws-iso-e, aws-iso-f. */
const char *sm_id_region_partition(const char *region);

/* The DNS suffix of a (valid) region's endpoints: amazonaws.com,
 * amazonaws.com.cn, c2s.ic.gov, sc2s.sgov.gov, cloud.adc-e.uk, csp.hci.ic.gov. */
const char *sm_id_region_dns_suffix(const char *region);

#endif
