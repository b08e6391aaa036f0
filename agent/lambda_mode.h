/*
 * lambda_mode: smcached as an AWS Lambda extension (`smcached
 * --lambda-extension[=NAME]`), a drop-in for the AWS Parameters and Secrets
 * Lambda extension.
 *
 * Owns the translation of that extension's environment into a configuration
 * (the HTTP door on 127.0.0.1:PARAMETERS_SECRETS_EXTENSION_HTTP_PORT with
 * AWS_SESSION_TOKEN as the SSRF token, SECRETS_MANAGER_TTL, cache size, log
 * level, upstream connections and timeout), and the run: register with the
 * Extensions API, end INIT once the prefetch list (SMCACHE_PREFETCH) has
 * landed, and stop on SHUTDOWN within its deadline. The API client itself is
 * front/lambda_ext.c.
 */
#ifndef SMC_AGENT_LAMBDA_MODE_H
#define SMC_AGENT_LAMBDA_MODE_H

#include <stddef.h>

struct agent;
struct config;
struct lambda_mode;
struct service;

/* The extension's default name: the file Lambda starts is /opt/extensions/smcache. */
#define LAMBDA_MODE_DEFAULT_NAME	"smcache"

/*
 * The configuration text the environment asks for (an INI document for
 * config_load_string()), in a buffer the caller frees. NULL with err naming
 * the variable when one holds a value the AWS extension would refuse.
 */
char *lambda_mode_config_text(char *err, size_t errlen);

/* Registers with the Extensions API ($AWS_LAMBDA_RUNTIME_API) under name; INIT
 * ends when svc says the prefetch is over (service_when_prefetched). */
struct lambda_mode *lambda_mode_start(struct agent *agent, struct service *svc,
    const char *name, char *err, size_t errlen);

/* Start-up failed after lambda_mode_start(), or before it (mode NULL: a
 * registration is attempted just to report it): tell Lambda why. */
void lambda_mode_init_error(struct lambda_mode *mode, const char *name, const char *why);

/* 0 after a SHUTDOWN, 1 when the Extensions API failed for good. */
int lambda_mode_status(const struct lambda_mode *mode);

void lambda_mode_free(struct lambda_mode *mode);

#endif
