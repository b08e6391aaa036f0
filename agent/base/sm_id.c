/*
 * sm_id: Secrets Manager identifier shapes (see sm_id.h). Every other module
 * asks here instead of counting colons or suffix characters itself.
 */
#include <string.h>

#include "sm_id.h"

static bool
is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool
is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* Printable ASCII without blanks: what labels and version ids may hold here. */
static bool
all_graphic(const char *s, size_t min, size_t max)
{
	size_t len;

	if (s == NULL)
		return false;
	len = strlen(s);
	if (len < min || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

bool
sm_id_is_arn(const char *id)
{
	return id != NULL && strncmp(id, "arn:", 4) == 0;
}

int
sm_id_arn_split(const char *id, struct sm_arn *out)
{
	const char *field[7], *p = id;
	size_t n = 0;

	memset(out, 0, sizeof(*out));
	if (!sm_id_is_arn(id) || strlen(id) > SM_ID_MAX_SECRET_ID)
		return -1;
	field[n++] = p;
	while (n < 7 && (p = strchr(p, ':')) != NULL)
		field[n++] = ++p;
	if (n < 7 || field[6][0] == '\0' || strchr(field[6], ':') != NULL)
		return -1;
	if (strncmp(field[2], "secretsmanager:", 15) != 0 || strncmp(field[5], "secret:", 7) != 0)
		return -1;
	out->partition = field[1];
	out->partition_len = (size_t)(field[2] - field[1]) - 1;
	out->region = field[3];
	out->region_len = (size_t)(field[4] - field[3]) - 1;
	out->account = field[4];
	out->account_len = (size_t)(field[5] - field[4]) - 1;
	out->resource = field[6];
	out->resource_len = strlen(field[6]);
	out->prefix_len = (size_t)(field[6] - id);
	if (out->partition_len == 0)
		return -1;
	return 0;
}

bool
sm_id_has_suffix(const char *s, size_t len)
{
	if (len <= SM_ID_SUFFIX_LEN || s[len - SM_ID_SUFFIX_LEN] != '-')
		return false;
	for (size_t i = len - SM_ID_SUFFIX_CHARS; i < len; i++)
		if (!is_alnum(s[i]))
			return false;
	return true;
}

const char *
sm_id_arn_name(const char *id, bool assume_full, size_t *len_out)
{
	struct sm_arn a;
	size_t len;

	if (sm_id_arn_split(id, &a) != 0)
		return NULL;
	len = a.resource_len;
	if (assume_full && sm_id_has_suffix(a.resource, len))
		len -= SM_ID_SUFFIX_LEN;
	if (len_out != NULL)
		*len_out = len;
	return a.resource;
}

bool
sm_id_is_partial_of(const char *id, size_t id_len, const char *arn)
{
	size_t arn_len;

	if (arn == NULL || !sm_id_is_arn(id))
		return false;
	arn_len = strlen(arn);
	return arn_len == id_len + SM_ID_SUFFIX_LEN && strncmp(arn, id, id_len) == 0 &&
	    sm_id_has_suffix(arn, arn_len);
}

bool
sm_id_matches(const char *id, const char *arn, const char *name)
{
	if (id == NULL)
		return false;
	if ((name != NULL && strcmp(id, name) == 0) || (arn != NULL && strcmp(id, arn) == 0))
		return true;
	return sm_id_is_partial_of(id, strlen(id), arn);
}

bool
sm_id_name_valid(const char *name)
{
	size_t len;

	if (name == NULL || (len = strlen(name)) == 0 || len > SM_ID_MAX_NAME)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_alnum(name[i]) && strchr("/_+=.@-", name[i]) == NULL)
			return false;
	return true;
}

bool
sm_id_secret_id_valid(const char *id)
{
	struct sm_arn a;

	if (sm_id_is_arn(id))
		return sm_id_arn_split(id, &a) == 0;
	return sm_id_name_valid(id);
}

bool
sm_id_version_id_valid(const char *version_id)
{
	return all_graphic(version_id, SM_ID_MIN_VERSION_ID, SM_ID_MAX_VERSION_ID);
}

bool
sm_id_stage_valid(const char *stage)
{
	return all_graphic(stage, 1, SM_ID_MAX_STAGE);
}

bool
sm_id_region_valid(const char *region)
{
	size_t len;

	if (region == NULL || (len = strlen(region)) == 0 || len > SM_ID_MAX_REGION)
		return false;
	if (!(region[0] >= 'a' && region[0] <= 'z') || region[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (region[i] == '-') {
			if (region[i + 1] == '-')
				return false;
		} else if (!is_lower_alnum(region[i])) {
			return false;
		}
	}
	return true;
}

/* Region prefix -> partition and DNS suffix; the first match wins, so longer
 * prefixes come first. */
static const struct {
	const char *prefix;
	const char *partition;
	const char *dns_suffix;
} partitions[] = {
	{ "us-isob-", "aws-iso-b", "sc2s.sgov.gov" },
	{ "us-isof-", "aws-iso-f", "csp.hci.ic.gov" },
	{ "eu-isoe-", "aws-iso-e", "cloud.adc-e.uk" },
	{ "us-iso-", "aws-iso", "c2s.ic.gov" },
	{ "us-gov-", "aws-us-gov", "amazonaws.com" },
	{ "cn-", "aws-cn", "amazonaws.com.cn" },
};

const char *
sm_id_region_partition(const char *region)
{
	for (size_t i = 0; i < sizeof(partitions) / sizeof(partitions[0]); i++)
		if (strncmp(region, partitions[i].prefix, strlen(partitions[i].prefix)) == 0)
			return partitions[i].partition;
	return "aws";
}

const char *
sm_id_region_dns_suffix(const char *region)
{
	for (size_t i = 0; i < sizeof(partitions) / sizeof(partitions[0]); i++)
		if (strncmp(region, partitions[i].prefix, strlen(partitions[i].prefix)) == 0)
			return partitions[i].dns_suffix;
	return "amazonaws.com";
}
