/*
 * aws_profile: the conventions every AWS tool follows to find its region,
 * endpoint and shared files. Reads AWS_* environment variables and the
 * shared config/credentials files (INI, parsed with libinih).
 *
 *   region:   [aws] region, else AWS_REGION, else AWS_DEFAULT_REGION, else the
 *             profile's `region` in the shared config file.
 *   endpoint: [aws] endpoint, else AWS_ENDPOINT_URL_SECRETS_MANAGER, else
 *             AWS_ENDPOINT_URL, else https://secretsmanager[-fips].<region>.<suffix>
 *             (suffix amazonaws.com; amazonaws.com.cn for cn-* regions)
 *             (FIPS when [aws] fips = true, AWS_USE_FIPS_ENDPOINT=true or the
 *             profile's use_fips_endpoint = true).
 *   profile:  [aws] profile, else AWS_PROFILE, else "default".
 *   files:    AWS_CONFIG_FILE (default ~/.aws/config, sections "[profile NAME]"
 *             and "[default]"), AWS_SHARED_CREDENTIALS_FILE (default
 *             ~/.aws/credentials, sections "[NAME]").
 */
#ifndef SMC_AGENT_AWS_PROFILE_H
#define SMC_AGENT_AWS_PROFILE_H

#include <stdbool.h>
#include <stddef.h>

/* What the agent's configuration says; NULL/false where it says nothing. */
struct aws_settings {
	const char *region;
	const char *endpoint;
	const char *profile;
	bool fips;
};

struct aws_resolved {
	char region[64];
	char endpoint[512];		/* scheme://host[:port][/path], no trailing slash */
	char profile[128];
	char config_file[4096];
	char credentials_file[4096];
	bool fips;			/* FIPS endpoints wanted (also for STS) */
};

/* Returns 0, or -1 with a clear message (e.g. no region from any source). */
int aws_resolve(const struct aws_settings *settings, struct aws_resolved *out,
    char *err, size_t errlen);

/*
 * Looks up `key` in the named profile of an AWS shared file. is_config_file
 * selects the "[profile NAME]" spelling (config) vs "[NAME]" (credentials);
 * "default" is "[default]" in both. Returns 1 found, 0 not found (also when
 * the file does not exist), -1 on a parse or read error (message in err).
 */
int aws_profile_get(const char *path, bool is_config_file, const char *profile,
    const char *key, char *value, size_t value_len, char *err, size_t errlen);

/* Whether the profile has a section in the file: 1 yes, 0 no (or no file), -1 error. */
int aws_profile_exists(const char *path, bool is_config_file, const char *profile,
    char *err, size_t errlen);

/*
 * Checks an endpoint URL (http:// or https://, a host, no blanks, control
 * characters, '?', '#' or '@') and copies it without trailing slashes.
 */
int aws_endpoint_normalize(const char *url, char *out, size_t outlen, char *err, size_t errlen);

#endif
