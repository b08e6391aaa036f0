/*
 * policy: building and swapping the run-time policy (see policy.h).
 *
 * A reload builds every new object first and swaps only when all of them
 * could be built, so a half-applied configuration never runs. The objects
 * are used only from the event loop, like the SIGHUP callback, so a swap
 * needs no locking; requests waiting for the backend hold no policy
 * pointers and see the new rules when they complete.
 */
#define LOG_COMPONENT "policy"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "acl.h"
#include "agent.h"
#include "audit.h"
#include "config.h"
#include "log.h"
#include "sd_notify.h"
#include "peer_limits.h"
#include "policy.h"
#include "server.h"

struct policy {
	char *config_path;		/* NULL: built-in defaults, nothing to re-read */
	struct event *sighup;
	struct config last;		/* the last configuration reloaded */
	bool have_last;
};

struct built {
	struct acl *acl;
	struct audit *audit;
	struct peer_limits_config limits;
};

static void
limits_from(const struct config *cfg, struct peer_limits_config *lc)
{
	lc->connections = cfg->limit_connections;
	lc->requests_per_second = cfg->limit_requests_per_second;
	lc->burst = cfg->limit_burst;
	lc->refreshes_per_minute = cfg->limit_refreshes_per_minute;
	lc->upstream_per_second = cfg->limit_upstream_per_second;
	lc->upstream_burst = cfg->limit_upstream_burst;
}

static int
build(const struct config *cfg, struct built *b, char *err, size_t errlen)
{
	memset(b, 0, sizeof(*b));
	b->acl = acl_new((const char *const *)cfg->access_allow.items, cfg->access_allow.count,
	    err, errlen);
	if (b->acl == NULL)
		return -1;
	b->audit = audit_new((enum audit_level)cfg->audit_level, cfg->audit_file, err, errlen);
	if (b->audit == NULL) {
		acl_free(b->acl);
		b->acl = NULL;
		return -1;
	}
	limits_from(cfg, &b->limits);
	return 0;
}

static void
log_summary(const struct agent *agent, const struct config *cfg, const char *what)
{
	size_t n = acl_rule_count(agent->acl);

	if (n == 0)
		log_info("%s: access control is off (no [access] allow rules): every local user"
		    " who can connect to the socket may read every secret", what);
	else
		log_info("%s: access control on, %zu rule%s; audit %s to %s; per uid: %u connections,"
		    " %u requests/s (burst %u; 0: no limit), %u refreshes/min, %u upstream calls/s"
		    " (burst %u; 0: no limit)", what, n, n == 1 ? "" : "s",
		    audit_level_name((enum audit_level)cfg->audit_level),
		    cfg->audit_file != NULL ? cfg->audit_file : "stderr", cfg->limit_connections,
		    cfg->limit_requests_per_second, cfg->limit_burst,
		    cfg->limit_refreshes_per_minute, cfg->limit_upstream_per_second,
		    cfg->limit_upstream_burst);
}

/* systemd (Type=notify) sees the reload begin and end: RELOADING=1, then READY=1. */
static void
on_sighup(evutil_socket_t sig, short what, void *arg)
{
	char err[256];
	int rc;

	(void)sig;
	(void)what;
	if (sd_notify_reloading(err, sizeof(err)) != 0)
		log_warn("%s", err);
	rc = policy_reload(arg);
	if (sd_notify_reloaded(rc == 0 ? "serving; configuration reloaded" :
	    "serving; reload failed, the running configuration stays", err, sizeof(err)) != 0)
		log_warn("%s", err);
}

int
policy_init(struct agent *agent, const struct config *cfg, const char *config_path,
    char *err, size_t errlen)
{
	struct policy *pol;
	struct built b;

	if ((pol = calloc(1, sizeof(*pol))) == NULL)
		goto nomem;
	agent->policy = pol;
	/* Absolute, so a reload reads the same file whatever the working directory is then. */
	if (config_path != NULL && (pol->config_path = realpath(config_path, NULL)) == NULL &&
	    (pol->config_path = strdup(config_path)) == NULL)
		goto nomem;
	if (build(cfg, &b, err, errlen) != 0)
		goto fail;
	agent->acl = b.acl;
	agent->audit = b.audit;
	if ((agent->peer_limits = peer_limits_new(&b.limits)) == NULL)
		goto nomem;
	if (agent->server != NULL)
		server_set_peer_limits(agent->server, agent->peer_limits);
	pol->sighup = evsignal_new(agent->base, SIGHUP, on_sighup, agent);
	if (pol->sighup == NULL || evsignal_add(pol->sighup, NULL) != 0) {
		snprintf(err, errlen, "cannot handle SIGHUP");
		goto fail;
	}
	log_summary(agent, cfg, "start-up");
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	if (agent->server != NULL)
		server_set_peer_limits(agent->server, NULL);
	policy_free(agent);
	return -1;
}

/* config_diff callbacks: what a reload applies and what it cannot; arg counts them. */
static void
note_restart(const char *section, const char *key, int reloadable, void *arg)
{
	if (!reloadable) {
		(*(unsigned *)arg)++;
		log_warn("reload: [%s] %s changed, needs a restart; not applied", section, key);
	}
}

static void
note_applied(const char *section, const char *key, int reloadable, void *arg)
{
	if (reloadable) {
		(*(unsigned *)arg)++;
		log_info("reload: [%s] %s changed, applied", section, key);
	}
}

int
policy_reload(struct agent *agent)
{
	struct policy *pol = agent->policy;
	char err[CONFIG_ERR_SIZE];
	struct config cfg;
	struct built b;
	unsigned applied = 0, restart = 0;

	if (pol == NULL)
		return -1;
	if (pol->config_path == NULL) {
		log_warn("reload: running on built-in defaults (no -c FILE); nothing to re-read");
		return -1;
	}
	log_info("reload: re-reading %s", pol->config_path);
	if (config_load(&cfg, pol->config_path, err, sizeof(err)) != 0) {
		log_error("reload failed, the running configuration stays: %s", err);
		return -1;
	}
	if (build(&cfg, &b, err, sizeof(err)) != 0) {
		log_error("reload failed, the running configuration stays: %s: %s",
		    pol->config_path, err);
		config_free(&cfg);
		return -1;
	}
	/* Everything is built: swap. */
	acl_free(agent->acl);
	agent->acl = b.acl;
	audit_free(agent->audit);
	agent->audit = b.audit;
	peer_limits_set_config(agent->peer_limits, &b.limits);
	log_set_level(cfg.log_level);
	log_set_format((enum log_format)cfg.log_format);

	/* Restart-only keys against what runs (the start-up file), the rest against the last reload. */
	config_diff(agent->config, &cfg, note_restart, &restart);
	config_diff(pol->have_last ? &pol->last : agent->config, &cfg, note_applied, &applied);
	log_summary(agent, &cfg, "reload");
	/* The outcome at warn, so it shows at every useful log_level. */
	log_warn("reload: %s read; %u change(s) applied, %u need a restart", pol->config_path,
	    applied, restart);
	if (pol->have_last)
		config_free(&pol->last);
	pol->last = cfg;
	pol->have_last = true;
	return 0;
}

void
policy_free(struct agent *agent)
{
	struct policy *pol = agent->policy;

	if (pol != NULL) {
		if (pol->sighup != NULL)
			event_free(pol->sighup);
		if (pol->have_last)
			config_free(&pol->last);
		free(pol->config_path);
		free(pol);
	}
	acl_free(agent->acl);
	audit_free(agent->audit);
	peer_limits_free(agent->peer_limits);
	agent->policy = NULL;
	agent->acl = NULL;
	agent->audit = NULL;
	agent->peer_limits = NULL;
}
