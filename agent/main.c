/*
 * main: smcached's command line, start-up order and shutdown.
 *
 * Start-up: configuration, memory protection, backend, socket, then the
 * event loop. Any failure before the loop runs is one clear line on stderr
 * and exit status 1 (2 for a usage error).
 */
#define LOG_COMPONENT "main"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <sodium.h>

#include "agent.h"
#include "backend.h"
#include "backend_file.h"
#include "cache.h"
#include "config.h"
#include "dispatch.h"
#include "frame.h"
#include "http_door.h"
#include "http.h"
#include "json_secure.h"
#include "lambda_mode.h"
#include "listen.h"
#include "log.h"
#include "policy.h"
#include "privdrop.h"
#include "secmem.h"
#include "server.h"
#include "sys_file.h"
#include "service.h"
#include "health.h"
#include "sockpath.h"
#include "upstream_aws.h"

#define EXIT_USAGE	2
#define LISTEN_BACKLOG	512
#define MAX_IN_FLIGHT	128
/* Descriptors the agent needs besides one per client: listener, log, epoll,
 * the backend's files and upstream connections. */
#define FD_RESERVE	64

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: smcached [-c FILE | --lambda-extension[=NAME]] [--check-config] [--version] [--help]\n"
	    "  -c, --config FILE   read configuration from FILE (default: built-in defaults:\n"
	    "                      the file backend on conf/example-secrets.json)\n"
	    "      --check-config  validate the configuration, print it, and exit\n"
	    "      --dump-config-keys  print every configuration key, its default and bounds\n"
	    "                      (tab-separated; the table smcached.conf(5) is checked against)\n"
	    "      --lambda-extension[=NAME]\n"
	    "                      run as an AWS Lambda extension named NAME (smcache), configured\n"
	    "                      by the AWS Parameters and Secrets extension's variables\n"
	    "  -V, --version       print the version and exit\n"
	    "  -h, --help          this text\n"
	    "Runs in the foreground and logs to stderr. See smcached(8).\n");
}

static void
on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct event_base *base = arg;

	(void)what;
	log_info("received signal %d, shutting down", (int)sig);
	service_stopping();
	event_base_loopexit(base, NULL);
}

static struct backend *
make_backend(struct event_base *base, const struct config *cfg, char *err, size_t errlen)
{
	switch (cfg->backend) {
	case CONFIG_BACKEND_FILE:
		return backend_file_new(base, cfg->file_path, err, errlen);
	case CONFIG_BACKEND_AWS:
		return upstream_aws_new_from_config(base, cfg, err, errlen);
	}
	snprintf(err, errlen, "unknown backend");
	return NULL;
}

/* One descriptor per client: make room, and say so when max_connections cannot fit. */
static void
raise_fd_limit(const struct config *cfg)
{
	unsigned long long soft = 0;
	char err[256];
	/* The upstream's connections come out of the same limit ([aws] max_connections). */
	unsigned long long reserve = FD_RESERVE +
	    (cfg->backend == CONFIG_BACKEND_AWS ? cfg->aws_max_connections : 0);

	if (privdrop_raise_nofile(&soft, err, sizeof(err)) != 0)
		log_warn("%s", err);
	if (soft > 0 && (unsigned long long)cfg->max_connections + reserve > soft)
		log_warn("[agent] max_connections = %u does not fit the open-file limit"
		    " (RLIMIT_NOFILE %llu, of which the agent keeps %llu for itself and its"
		    " upstream connections): connections past about %llu will wait; raise the"
		    " hard limit (systemd: LimitNOFILE=)",
		    cfg->max_connections, soft, reserve, soft > reserve ? soft - reserve : 0);
}

/*
 * Who may connect, and who the agent runs as: the socket is adopted from
 * systemd or bound with the starting credentials, then root is dropped for
 * good (privdrop.h, listen.h). Nothing runs as root after this.
 */
static int
open_socket_and_drop(const struct config *cfg, const struct privdrop_plan *pl,
    const char *socket_path, struct listen_socket *ls)
{
	struct privdrop_plan plan = *pl;
	struct listen_options lo;
	char err[CONFIG_ERR_SIZE], why[256], note[256];
	bool unlocked;
	int rc;

	lo.mode = (mode_t)cfg->socket_mode;
	lo.owner = lo.agent_uid = plan.uid;
	lo.group = lo.agent_gid = plan.gid;
	lo.backlog = LISTEN_BACKLOG;
	lo.dir_shared = cfg->socket_dir_shared != 0;
	if (cfg->socket_user != NULL &&
	    privdrop_lookup_user(cfg->socket_user, &lo.owner, NULL, NULL, 0, why, sizeof(why)) != 0) {
		snprintf(err, sizeof(err), "[agent] socket_user: %s", why);
		goto fail;
	}
	if (cfg->socket_group != NULL &&
	    privdrop_lookup_group(cfg->socket_group, &lo.group, why, sizeof(why)) != 0) {
		snprintf(err, sizeof(err), "[agent] socket_group: %s", why);
		goto fail;
	}
	if ((rc = listen_activated(ls, err, sizeof(err))) < 0)
		goto fail;
	if (rc == 1) {
		log_info("socket activation: using %s from systemd", ls->path);
		if (cfg->socket_path != NULL && strcmp(cfg->socket_path, ls->path) != 0)
			log_warn("[agent] socket = %s is ignored: systemd passed %s",
			    cfg->socket_path, ls->path);
	} else if (listen_unix(ls, socket_path, &lo, err, sizeof(err)) != 0) {
		goto fail;
	}
	if (privdrop_apply(&plan, &unlocked, note, sizeof(note), err, sizeof(err)) != 0)
		goto fail;
	if (note[0] != '\0')
		log_info("%s", note);
	if (plan.change) {
		/* A credential change resets the dumpable flag to fs.suid_dumpable. */
		if (secmem_disable_dumps(err, sizeof(err)) != 0)
			goto fail;
		log_info("running as uid %lu gid %lu", (unsigned long)plan.uid,
		    (unsigned long)plan.gid);
	}
	if (unlocked) {
		/* Lock again as the new user, within its RLIMIT_MEMLOCK, by the policy. */
		if (secmem_mlock_apply((secmem_mlock_policy)cfg->cache_mlock, err, sizeof(err)) != 0)
			goto fail;
		if (err[0] != '\0')
			log_warn("%s", err);
	}
	if (privdrop_no_new_privs(err, sizeof(err)) != 0)
		goto fail;
	return 0;
fail:
	log_error("%s", err);
	return -1;
}

/*
 * --check-config: what start-up would do with the files, without the
 * socket: become the agent's user, then build the backend (the file
 * backend reads and validates its data file; the aws backend resolves the
 * region and reads the shared files and token files of its credential
 * source) and free it. 0, or -1 with err.
 */
static int
check_backend(const struct config *cfg, const struct privdrop_plan *plan, char *err,
    size_t errlen)
{
	struct event_base *base = NULL;
	struct backend *backend = NULL;
	char note[256], why[CONFIG_ERR_SIZE - 16];
	bool unlocked;
	int rc = -1;

	if (privdrop_apply(plan, &unlocked, note, sizeof(note), err, errlen) != 0)
		return -1;
	json_secure_init();
	if ((base = event_base_new()) == NULL) {
		snprintf(err, errlen, "cannot create the event loop");
		goto out;
	}
	if ((backend = make_backend(base, cfg, why, sizeof(why))) == NULL) {
		snprintf(err, errlen, "backend: %s", why);
		goto out;
	}
	rc = 0;
out:
	backend_free(backend);
	if (base != NULL)
		event_base_free(base);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option long_options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "dump-config-keys", no_argument, NULL, 'K' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "lambda-extension", optional_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 },
	};
	struct agent agent;
	struct config cfg;
	struct listen_socket ls = { .fd = -1 };
	struct event *sig_int = NULL, *sig_term = NULL;
	struct service *service = NULL;
	sigset_t held;
	struct server_limits limits;
	struct http_door *http_door = NULL;
	struct cache_options cache_opts;
	struct privdrop_plan plan;
	char err[CONFIG_ERR_SIZE], socket_path[sizeof(ls.path)], msg[SECMEM_MSG_MAX];
	const char *config_path = NULL, *lambda_name = NULL;
	struct lambda_mode *lambda = NULL;
	char *lambda_config = NULL;
	int opt, check_only = 0, status = 1, loop_ran = 0;

	/* libevent's buffers (evbuffer chains, evhttp requests, their headers and bodies)
	 * hold request and reply bodies of the TCP doors: a pullup or a partial move
	 * leaves copies in chains it frees, so libevent allocates through the wiping
	 * allocator, set before its first allocation. */
	event_set_mem_functions(secmem_wipe_malloc, secmem_wipe_realloc, secmem_wipe_free);
	memset(&agent, 0, sizeof(agent));
	memset(&cfg, 0, sizeof(cfg));
	while ((opt = getopt_long(argc, argv, "c:Vh", long_options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'C':
			check_only = 1;
			break;
		case 'L':
			lambda_name = optarg != NULL && optarg[0] != '\0' ? optarg :
			    LAMBDA_MODE_DEFAULT_NAME;
			break;
		case 'K':
			config_dump_keys(stdout);
			return 0;
		case 'V':
			printf("smcached %s\n", SMC_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "smcached: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}

	if (lambda_name != NULL) {
		/* A Lambda extension is configured by its environment, as AWS's is. */
		if (config_path != NULL) {
			fprintf(stderr, "smcached: --lambda-extension takes its configuration from"
			    " the environment (lambda_mode.h); -c cannot be used with it\n");
			return EXIT_USAGE;
		}
		if ((lambda_config = lambda_mode_config_text(err, sizeof(err))) == NULL ||
		    config_load_string(&cfg, lambda_config, "the Lambda environment", err,
		    sizeof(err)) != 0) {
			fprintf(stderr, "smcached: %s\n", err);
			if (!check_only)
				lambda_mode_init_error(NULL, lambda_name, err);
			free(lambda_config);
			return 1;
		}
		free(lambda_config);
	} else if (config_load(&cfg, config_path, err, sizeof(err)) != 0) {
		fprintf(stderr, "smcached: %s\n", err);
		return 1;
	}
	if (cfg.socket_path == NULL &&
	    proto_default_socket_path(socket_path, sizeof(socket_path)) != 0) {
		fprintf(stderr, "smcached: cannot form the default socket path: %s\n",
		    strerror(errno));
		goto out;
	} else if (cfg.socket_path != NULL) {
		snprintf(socket_path, sizeof(socket_path), "%s", cfg.socket_path);
	}
	/* Who the agent runs as: files that user owns are trusted (sys_file.h). */
	if (privdrop_plan_make(cfg.user, cfg.group, &plan, err, sizeof(err)) != 0) {
		fprintf(stderr, "smcached: %s\n", err);
		goto out;
	}
	sys_file_trust_uid(plan.uid);
	if (check_only) {
		if (check_backend(&cfg, &plan, err, sizeof(err)) != 0) {
			fprintf(stderr, "smcached: %s\n", err);
			goto out;
		}
		config_describe(&cfg, stdout);
		printf("effective socket path: %s\n", socket_path);
		printf("configuration OK\n");
		status = 0;
		goto out;
	}
	log_set_level(cfg.log_level);
	log_set_format((enum log_format)cfg.log_format);
	/* The socket listens before the handlers exist: hold SIGTERM, SIGINT and SIGHUP until
	 * they do, so a stop or reload during start-up is handled rather than fatal. */
	sigemptyset(&held);
	sigaddset(&held, SIGTERM);
	sigaddset(&held, SIGINT);
	sigaddset(&held, SIGHUP);
	sigprocmask(SIG_BLOCK, &held, NULL);
	raise_fd_limit(&cfg);

	/*
	 * Blocks of 32 KiB and more (reply bodies of big secrets, their frames) get
	 * their own mappings, returned to the system when freed: under mlockall the
	 * heap's free pages cannot be given back (madvise refuses locked pages), so
	 * replies queued to clients that left would stay resident for good (measured:
	 * +309 MiB still held 5 s after 128 non-reading clients of a 64 KiB secret left).
	 */
	(void)mallopt(M_MMAP_THRESHOLD, 32 * 1024);
	/* Memory protection first, before any secret can be fetched. */
	if (secmem_init() != 0) {
		log_error("libsodium initialisation failed");
		goto out;
	}
	if (secmem_disable_dumps(msg, sizeof(msg)) != 0) {
		log_error("%s", msg);
		goto out;
	}
	if (secmem_mlock_apply((secmem_mlock_policy)cfg.cache_mlock, msg, sizeof(msg)) != 0) {
		log_error("%s", msg);
		goto out;
	}
	if (msg[0] != '\0')
		log_warn("%s", msg);
	/* Wiping allocators for cJSON, libcurl and OpenSSL: before anything uses
	 * them (OpenSSL accepts its allocator only before its first allocation). */
	json_secure_init();
	if (http_global_init(err, sizeof(err)) != 0) {
		log_error("%s", err);
		goto out;
	}
	/* [http]: its sockets and token file, before privileges are dropped. */
	if (http_door_open(&http_door, &cfg, err, sizeof(err)) != 0) {
		log_error("%s", err);
		goto out;
	}
	if (open_socket_and_drop(&cfg, &plan, socket_path, &ls) != 0)
		goto out;

	agent.config = &cfg;
	agent.started = time(NULL);
	agent.reply_scratch_len = PROTO_FRAME_PREFIX_LEN + PROTO_FRAME_MAX_BODY;
	if ((agent.reply_scratch = sodium_malloc(agent.reply_scratch_len)) == NULL) {
		log_error("cannot allocate the reply buffer");
		goto out;
	}
	/* Sized for the largest frame (256 KiB), used mostly for its first pages. */
	secmem_drop_fresh_pages(agent.reply_scratch, agent.reply_scratch_len);
	if ((agent.base = event_base_new()) == NULL) {
		log_error("cannot create the event loop");
		goto out;
	}
	if ((agent.backend = make_backend(agent.base, &cfg, err, sizeof(err))) == NULL) {
		log_error("backend: %s", err);
		goto out;
	}
	cache_opts.ttl_s = cfg.cache_ttl;
	cache_opts.negative_ttl_s = cfg.cache_negative_ttl;
	cache_opts.max_versions = cfg.cache_max_entries;
	cache_opts.max_bytes = cfg.cache_max_bytes;
	cache_opts.pending_ttl_s = cfg.cache_pending_ttl;
	cache_opts.refresh_ahead_pct = cfg.cache_refresh_ahead;
	cache_opts.refresh_jitter_pct = cfg.cache_refresh_jitter;
	cache_opts.refresh_idle_s = cfg.cache_refresh_idle;
	cache_opts.max_stale_s = cfg.cache_max_stale;
	cache_opts.max_refreshes = cfg.cache_max_refreshes;
	cache_opts.min_refresh_interval_s = cfg.cache_min_refresh_interval;
	cache_opts.batch_refresh = cfg.cache_batch_refresh != 0;
	cache_opts.body_linger_ms = cfg.cache_body_linger_ms;
	if ((agent.cache = cache_new(agent.base, agent.backend, &cache_opts, err, sizeof(err))) == NULL) {
		log_error("cache: %s", err);
		goto out;
	}
	limits.max_connections = cfg.max_connections;
	limits.idle_timeout_s = cfg.idle_timeout;
	limits.max_output = cfg.max_output;
	limits.max_output_per_uid = cfg.max_output_per_uid;
	limits.max_output_total = cfg.max_output_total;
	limits.max_in_flight = MAX_IN_FLIGHT;
	agent.server = server_new(agent.base, ls.fd, &limits, dispatch_request, &agent);
	if (agent.server == NULL) {
		log_error("cannot start the server");
		goto out;
	}
	/* Access rules, audit, per-uid limits; SIGHUP re-reads them. */
	if (policy_init(&agent, &cfg, config_path, err, sizeof(err)) != 0) {
		log_error("%s", err);
		goto out;
	}
	if (http_door != NULL && http_door_start(http_door, &agent, err, sizeof(err)) != 0) {
		log_error("%s", err);
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	sig_int = evsignal_new(agent.base, SIGINT, on_stop_signal, agent.base);
	sig_term = evsignal_new(agent.base, SIGTERM, on_stop_signal, agent.base);
	if (sig_int == NULL || sig_term == NULL || evsignal_add(sig_int, NULL) != 0 ||
	    evsignal_add(sig_term, NULL) != 0) {
		log_error("cannot install signal handlers");
		goto out;
	}
	sigprocmask(SIG_UNBLOCK, &held, NULL);	/* one held during start-up is delivered now */
	log_info("smcached %s listening on %s (backend %s)", SMC_VERSION, ls.path,
	    config_backend_name(cfg.backend));
	/* The prefetch, then READY=1 for systemd once it has ended. */
	if ((service = service_start(&agent, cfg.cache_prefetch, err, sizeof(err))) == NULL) {
		log_error("%s", err);
		goto out;
	}
	if (lambda_name != NULL &&
	    (lambda = lambda_mode_start(&agent, service, lambda_name, err, sizeof(err))) == NULL) {
		log_error("Lambda extension: %s", err);
		goto out;
	}
	loop_ran = 1;
	if (event_base_dispatch(agent.base) != 0) {
		log_error("event loop failed");
		goto out;
	}
	status = lambda != NULL ? lambda_mode_status(lambda) : 0;
out:
	if (lambda_name != NULL && !loop_ran && !check_only)
		lambda_mode_init_error(lambda, lambda_name, "smcached could not start; its log says why");
	lambda_mode_free(lambda);
	if (sig_int != NULL)
		event_free(sig_int);
	if (sig_term != NULL)
		event_free(sig_term);
	server_free(agent.server);
	http_door_free(http_door);	/* also before policy_free: its connections hold entries */
	policy_free(&agent);	/* after the connections that hold per-uid entries */
	if (listen_unix_close(&ls) != 0)
		log_warn("cannot remove the socket file %s: %s", ls.path, strerror(errno));
	cache_free(agent.cache);
	backend_free(agent.backend);
	service_free(service);	/* after the cache, which may still answer its prefetches */
	if (agent.base != NULL)
		event_base_free(agent.base);
	if (agent.reply_scratch != NULL)
		sodium_free(agent.reply_scratch);
	http_global_cleanup();
	config_free(&cfg);
	return status;
}
