/*
 * cli_exec: `smcache exec`, run a program with secrets in its environment or
 * in private files, and optionally keep it in step with rotations.
 *
 *   smcache [--socket P] [--timeout MS] exec
 *       [--env NAME=SECRET_ID[#json.field][@STAGE]]... [--env-json SECRET_ID]...
 *       [--file PATH=SECRET_ID[#field][:MODE]]... [--on-change restart|signal:SIG|none]
 *       -- COMMAND [ARGS]
 *
 * Everything is resolved first (one pipelined batch through libsmcache); any
 * failure means no exec and the CLI's exit code (3 not found, 4 denied, ...).
 * Files go to a fresh 0700 directory on a tmpfs ($XDG_RUNTIME_DIR, else
 * /dev/shm; never a disk), mode 0400 by default, named to the child by
 * $SMCACHE_EXEC_DIR, wiped and removed when smcache exits.
 *
 * Without files and with --on-change none, smcache execs the command itself
 * (nothing stays behind). Otherwise a small supervisor stays: it forwards
 * signals, passes the child's exit status through (a child killed by a
 * signal makes smcache die of the same signal), and with --on-change polls
 * the agent (a cached read: microseconds) every POLL_MS. It acts only when a
 * resolved value really changed (a digest of what the child sees; a new
 * version with the same value, or a change in a JSON field the child does
 * not use, is ignored), and never more often than a backoff that doubles
 * while changes keep coming (RESTART_MIN_MS to RESTART_MAX_MS), which is what
 * envconsul and Vault Agent users ask for (restarts on non-changes, signals
 * not forwarded, restart storms).
 *
 * Secret values live in guarded memory (sodium_malloc) in this process and
 * are wiped when replaced or at exit; the supervisor keeps the current set to
 * restart the child with it.
 */
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "cli_exec.h"
#include "cli_util.h"
#include "smcache.h"

extern char **environ;

/* How often the supervisor asks the agent whether a value changed. The agent
 * answers from its cache, so this costs a socket round trip per secret
 * (pipelined); a change reaches the child within the agent's ttl + POLL_MS. */
#define POLL_MS			500
/* Restarts (or reload signals) are at least this far apart; the gap doubles
 * while changes keep coming within RESTART_CALM_MS of each other. */
#define RESTART_MIN_MS		1000
#define RESTART_MAX_MS		60000
#define RESTART_CALM_MS		30000
/* After the stop signal, a child that has not exited is killed. */
#define STOP_GRACE_MS		10000

#define TMPFS_MAGIC_		0x01021994
#define RAMFS_MAGIC_		0x858458f6


/* A secret whose content does not fit its reference (not JSON, not an
 * object, NUL bytes for an environment variable): exit status 1, not the
 * usage status 2, since the command line itself was fine. */
#define CONTENT_MISMATCH	SMC_ERR_BAD_REQUEST

enum spec_kind { SPEC_ENV, SPEC_ENV_JSON, SPEC_FILE };
enum on_change { CHANGE_NONE, CHANGE_RESTART, CHANGE_SIGNAL };

struct spec {
	enum spec_kind kind;
	const char *name;	/* env name, or file path under the private dir */
	char *secret_id;	/* owned copies of the parsed parts */
	char *field;		/* NULL: the whole value */
	char *stage;		/* NULL: the agent's default (AWSCURRENT) */
	mode_t mode;
};

/* One resolved NAME=value (env) or file content, in guarded memory. */
struct value {
	char *buf;		/* sodium_malloc'd; env: "NAME=value\0"; file: the bytes */
	size_t len;
	const struct spec *spec;
};

struct exec_state {
	const char *socket_path;
	int timeout_ms;
	struct spec *specs;
	size_t nspecs;
	enum on_change on_change;
	int change_signal;
	char **command;
	smc_client *client;
	struct value *values;	/* current resolution */
	size_t nvalues;
	unsigned char digest[crypto_generichash_BYTES];
	char dir[PATH_MAX];	/* private file directory, "" when none */
	int dirfd;
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* cJSON hooks: every block it frees is wiped (values pass through it). */
static void
wipe_free(void *p)
{
	if (p != NULL) {
		sodium_memzero(p, malloc_usable_size(p));
		free(p);
	}
}

/* ---- parsing ------------------------------------------------------------------------- */

static int
valid_env_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || !(s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
		return 0;
	for (i = 1; i < n; i++)
		if (!(s[i] == '_' || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return 1;
}

/* A relative path of plain components: no "", ".", "..", no leading '/'. */
static int
valid_rel_path(const char *p)
{
	const char *c = p, *slash;
	size_t n;

	if (*p == '\0' || *p == '/' || strlen(p) >= 256)
		return 0;
	for (;;) {
		slash = strchr(c, '/');
		n = slash != NULL ? (size_t)(slash - c) : strlen(c);
		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
		if (slash == NULL)
			return 1;
		c = slash + 1;
	}
}

static char *
dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d == NULL) {
		cli_message("out of memory");
		exit(1);
	}
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/*
 * SECRET_ID[#field][@STAGE] (env) or SECRET_ID[#field][:MODE] (file). The
 * stage starts at the last '@' (a secret id containing '@' then needs an
 * explicit @STAGE); a mode is 3 or 4 octal digits after the last ':' (ARNs
 * contain ':' but never end in digits only after one); the field starts at
 * the first '#' (never part of a secret id).
 */
static int
parse_ref(const char *ref, struct spec *sp, const char *opt)
{
	const char *end = ref + strlen(ref), *at, *hash, *colon;
	char *stop;
	unsigned long mode;

	if (sp->kind == SPEC_FILE) {
		colon = strrchr(ref, ':');
		if (colon != NULL && (end - colon == 4 || end - colon == 5) &&
		    strspn(colon + 1, "01234567") == (size_t)(end - colon - 1)) {
			mode = strtoul(colon + 1, &stop, 8);
			if (mode > 07777 || (mode & 0400) == 0)
				return cli_usage("exec",
				    "%s: mode %s must let the owner read the file", opt,
				    colon + 1);
			sp->mode = (mode_t)mode;
			end = colon;
		}
	} else if ((at = memrchr(ref, '@', (size_t)(end - ref))) != NULL) {
		if (at + 1 == end)
			return cli_usage("exec", "%s: empty stage after '@' in '%s'", opt, ref);
		sp->stage = dup_n(at + 1, (size_t)(end - at - 1));
		end = at;
	}
	hash = memchr(ref, '#', (size_t)(end - ref));
	if (hash != NULL) {
		if (hash + 1 == end)
			return cli_usage("exec",
			    "%s: empty JSON field after '#' in '%s'", opt, ref);
		sp->field = dup_n(hash + 1, (size_t)(end - hash - 1));
		end = hash;
	}
	if (end == ref)
		return cli_usage("exec", "%s: empty secret id in '%s'", opt, ref);
	sp->secret_id = dup_n(ref, (size_t)(end - ref));
	return -1;
}

static int
add_spec(struct exec_state *st, enum spec_kind kind, const char *arg, const char *opt)
{
	struct spec *sp, *n;
	const char *eq;
	size_t i;

	if ((n = realloc(st->specs, (st->nspecs + 1) * sizeof(*n))) == NULL) {
		cli_message("out of memory");
		return 1;
	}
	st->specs = n;
	sp = &st->specs[st->nspecs++];	/* counted now, so state_free() frees its parts */
	memset(sp, 0, sizeof(*sp));
	sp->kind = kind;
	sp->mode = 0400;
	if (kind == SPEC_ENV_JSON) {
		if (arg[0] == '\0')
			return cli_usage("exec", "%s needs a secret id", opt);
		sp->secret_id = dup_n(arg, strlen(arg));
		return -1;
	}
	if ((eq = strchr(arg, '=')) == NULL)
		return cli_usage("exec", "%s takes %s, not '%s'", opt, kind == SPEC_ENV ?
		    "NAME=SECRET_ID[#json.field][@STAGE]" : "PATH=SECRET_ID[#field][:MODE]", arg);
	sp->name = dup_n(arg, (size_t)(eq - arg));
	if (kind == SPEC_ENV && !valid_env_name(sp->name, strlen(sp->name)))
		return cli_usage("exec",
		    "%s: '%s' is not a valid environment variable name", opt, sp->name);
	if (kind == SPEC_FILE && !valid_rel_path(sp->name))
		return cli_usage("exec",
		    "%s: '%s' must be a relative path without '.' or '..' components "
		    "(files are created under a private directory, $SMCACHE_EXEC_DIR)", opt, sp->name);
	for (i = 0; i + 1 < st->nspecs; i++)
		if (st->specs[i].kind == kind && strcmp(st->specs[i].name, sp->name) == 0)
			return cli_usage("exec", "%s %s given twice", opt, sp->name);
	return parse_ref(eq + 1, sp, opt);
}

static int
parse_on_change(struct exec_state *st, const char *arg)
{
	const char *name;
	int sig;

	if (strcmp(arg, "none") == 0)
		st->on_change = CHANGE_NONE;
	else if (strcmp(arg, "restart") == 0)
		st->on_change = CHANGE_RESTART;
	else if (strncmp(arg, "signal:", 7) == 0) {
		name = arg + 7;
		if (strncmp(name, "SIG", 3) == 0)
			name += 3;
		for (sig = 1; sig < NSIG; sig++) {
			const char *abbrev = sigabbrev_np(sig);

			if (abbrev != NULL && strcmp(abbrev, name) == 0)
				break;
		}
		if (sig >= NSIG) {
			char *stop;
			long n = strtol(name, &stop, 10);

			if (*name == '\0' || *stop != '\0' || n <= 0 || n >= NSIG)
				return cli_usage("exec",
				    "--on-change signal:%s: unknown signal", name);
			sig = (int)n;
		}
		if (sig == SIGKILL || sig == SIGSTOP)
			return cli_usage("exec",
			    "--on-change signal: SIGKILL and SIGSTOP cannot be used");
		st->on_change = CHANGE_SIGNAL;
		st->change_signal = sig;
	} else
		return cli_usage("exec",
		    "--on-change takes restart, signal:SIG or none, not '%s'", arg);
	return -1;
}

/* Global options before `exec`; returns the index of `exec`, or -1. */
static int
find_exec(int argc, char **argv, struct exec_state *st)
{
	int i;
	char *stop;
	long v;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;

		if (strcmp(a, "exec") == 0)
			return i;
		if (strcmp(a, "-s") == 0 || strcmp(a, "--socket") == 0 ||
		    strcmp(a, "-t") == 0 || strcmp(a, "--timeout") == 0) {
			if (i + 1 >= argc)
				return -1;
			val = argv[++i];
		} else if (strncmp(a, "--socket=", 9) == 0 || strncmp(a, "--timeout=", 10) == 0)
			val = strchr(a, '=') + 1;
		else
			return -1;	/* another option or command: not ours */
		if (a[1] == 's' || strncmp(a, "--socket", 8) == 0)
			st->socket_path = val;
		else {
			errno = 0;
			v = strtol(val, &stop, 10);
			if (errno != 0 || *val == '\0' || *stop != '\0' || v <= 0 || v > INT_MAX)
				return -1;	/* cli.c reports the bad value */
			st->timeout_ms = (int)v;
		}
	}
	return -1;
}

static const char exec_usage[] =
"usage: smcache [--socket PATH] [--timeout MS] exec [OPTIONS] -- COMMAND [ARGS]\n"
"\n"
"  --env NAME=SECRET_ID[#json.field][@STAGE]   set NAME to the value (or a JSON field)\n"
"  --env-json SECRET_ID                         one variable per key of a JSON object\n"
"  --file PATH=SECRET_ID[#field][:MODE]         write $SMCACHE_EXEC_DIR/PATH (tmpfs, 0400)\n"
"  --on-change restart|signal:SIG|none          act when a value changes (default none)\n"
"\n"
"Nothing runs unless every secret resolves; the command's exit status is\n"
"smcache's. See smcache(1).\n";

static int
parse_exec_args(int argc, char **argv, struct exec_state *st)
{
	enum { OPT_ENV = 256, OPT_ENV_JSON, OPT_FILE, OPT_ON_CHANGE };
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "env", required_argument, NULL, OPT_ENV },
		{ "env-json", required_argument, NULL, OPT_ENV_JSON },
		{ "file", required_argument, NULL, OPT_FILE },
		{ "on-change", required_argument, NULL, OPT_ON_CHANGE },
		{ NULL, 0, NULL, 0 },
	};
	int ch, rc;

	opterr = 0;
	optind = 0;	/* glibc: full reinitialisation */
	/* '+': stop at the command, so its own options are left alone. */
	while ((ch = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			fputs(exec_usage, stdout);
			return 0;
		case OPT_ENV:
			rc = add_spec(st, SPEC_ENV, optarg, "--env");
			break;
		case OPT_ENV_JSON:
			rc = add_spec(st, SPEC_ENV_JSON, optarg, "--env-json");
			break;
		case OPT_FILE:
			rc = add_spec(st, SPEC_FILE, optarg, "--file");
			break;
		case OPT_ON_CHANGE:
			rc = parse_on_change(st, optarg);
			break;
		case ':':
			return cli_usage("exec", "option '%s' needs a value", argv[optind - 1]);
		default:
			return cli_usage("exec", "unknown option '%s'", argv[optind - 1]);
		}
		if (rc != -1)
			return rc;
	}
	if (optind >= argc)
		return cli_usage("exec",
		    "no command given (smcache exec [OPTIONS] -- COMMAND [ARGS])");
	if (st->nspecs == 0)
		return cli_usage("exec", "no secret given (--env, --env-json or --file)");
	st->command = argv + optind;
	return -1;
}

/* ---- resolution ---------------------------------------------------------------------- */

/* "SECRET_ID: message", so the user knows which reference failed. */
static void
prefix_error(smc_error *err, const char *what)
{
	char buf[SMC_ERROR_MESSAGE_MAX + 256];

	snprintf(buf, sizeof(buf), "%.200s: %s", what, err->message);
	memcpy(err->message, buf, sizeof(err->message) - 1);
	err->message[sizeof(err->message) - 1] = '\0';
}

static void
values_free(struct value *v, size_t n)
{
	size_t i;

	for (i = 0; v != NULL && i < n; i++)
		if (v[i].buf != NULL)
			sodium_free(v[i].buf);	/* wipes */
	free(v);
}

static int
push_value(struct value **vs, size_t *n, const struct spec *sp, const char *name,
    const void *data, size_t len)
{
	struct value *nv, *v;
	size_t nlen = name != NULL ? strlen(name) + 1 : 0;

	if ((nv = realloc(*vs, (*n + 1) * sizeof(*nv))) == NULL)
		return -1;
	*vs = nv;
	v = &nv[*n];
	memset(v, 0, sizeof(*v));
	if ((v->buf = sodium_malloc(nlen + len + 1)) == NULL)
		return -1;
	if (name != NULL) {
		memcpy(v->buf, name, nlen - 1);
		v->buf[nlen - 1] = '=';
	}
	if (len > 0)
		memcpy(v->buf + nlen, data, len);
	v->buf[nlen + len] = '\0';
	v->len = nlen + len;
	v->spec = sp;
	(*n)++;
	return 0;
}

/* Env entries of a JSON object secret: one per key, strings raw, other
 * values as compact JSON. */
static int
expand_env_json(const struct spec *sp, const smc_secret *s, struct value **vs, size_t *n,
    smc_error *err)
{
	const char *text = smc_secret_string(s);
	cJSON *root = NULL, *item;
	char *printed;
	int rc = -1;

	if (text == NULL || (root = cJSON_ParseWithLength(text, smc_secret_value_len(s))) == NULL ||
	    !cJSON_IsObject(root)) {
		snprintf(err->message, sizeof(err->message),
		    "--env-json %s: the secret is not a JSON object", sp->secret_id);
		err->code = CONTENT_MISMATCH;
		goto out;
	}
	cJSON_ArrayForEach(item, root) {
		if (!valid_env_name(item->string, strlen(item->string))) {
			snprintf(err->message, sizeof(err->message), "--env-json %s: key '%.64s' is "
			    "not a valid environment variable name", sp->secret_id, item->string);
			err->code = CONTENT_MISMATCH;
			goto out;
		}
		if (cJSON_IsString(item)) {
			if (push_value(vs, n, sp, item->string, item->valuestring,
			    strlen(item->valuestring)) == -1)
				goto nomem;
			continue;
		}
		if ((printed = cJSON_PrintUnformatted(item)) == NULL)
			goto nomem;
		rc = push_value(vs, n, sp, item->string, printed, strlen(printed));
		cJSON_free(printed);	/* wipe_free */
		if (rc == -1)
			goto nomem;
		rc = -1;
	}
	rc = 0;
	goto out;
nomem:
	err->code = SMC_ERR_NOMEM;
	snprintf(err->message, sizeof(err->message), "out of memory");
out:
	cJSON_Delete(root);	/* wipe_free */
	return rc;
}

/* The value one spec gives (whole value or JSON field). */
static int
spec_value(const struct spec *sp, const smc_secret *s, struct value **vs, size_t *n,
    smc_error *err)
{
	char *field = NULL;
	size_t flen;
	int rc;

	if (sp->kind == SPEC_ENV_JSON)
		return expand_env_json(sp, s, vs, n, err);
	if (sp->field != NULL) {
		if (smcache_get_json_field(s, sp->field, &field, &flen, err) == -1) {
			if (err->code == SMC_ERR_USAGE)	/* binary, or not JSON */
				err->code = CONTENT_MISMATCH;
			prefix_error(err, sp->secret_id);
			return -1;
		}
		rc = push_value(vs, n, sp, sp->kind == SPEC_ENV ? sp->name : NULL, field, flen);
		smc_value_free(field);
	} else {
		if (sp->kind == SPEC_ENV &&
		    memchr(smc_secret_value(s), '\0', smc_secret_value_len(s)) != NULL) {
			err->code = CONTENT_MISMATCH;
			snprintf(err->message, sizeof(err->message), "--env %s: the value of %s holds "
			    "NUL bytes and cannot be an environment variable (use --file)",
			    sp->name, sp->secret_id);
			return -1;
		}
		rc = push_value(vs, n, sp, sp->kind == SPEC_ENV ? sp->name : NULL,
		    smc_secret_value(s), smc_secret_value_len(s));
	}
	if (rc == -1) {
		err->code = SMC_ERR_NOMEM;
		snprintf(err->message, sizeof(err->message), "out of memory");
	}
	return rc;
}

/* Resolves every spec in one pipelined batch. On success *out holds the
 * values (env-json first, so an explicit --env of the same name wins). */
static int
resolve(struct exec_state *st, struct value **out, size_t *nout, smc_error *err)
{
	struct value *vs = NULL;
	smc_secret **secrets;
	smc_batch *b = NULL;
	size_t i, n = 0;
	int pass, rc = -1;

	*out = NULL;
	*nout = 0;
	if ((secrets = calloc(st->nspecs, sizeof(*secrets))) == NULL) {
		err->code = SMC_ERR_NOMEM;
		snprintf(err->message, sizeof(err->message), "out of memory");
		return -1;
	}
	if ((b = smc_batch_new(st->client, err)) == NULL)
		goto out;
	for (i = 0; i < st->nspecs; i++) {
		smc_get_options o = { .version_stage = st->specs[i].stage };

		if (smc_batch_add(b, st->specs[i].secret_id, &o, err) == -1)
			goto out;
	}
	if (smc_batch_run(b, 0, err) == -1)
		goto out;
	for (i = 0; i < st->nspecs; i++)
		if (smc_batch_take(b, i, &secrets[i], err) == -1) {
			prefix_error(err, st->specs[i].secret_id);
			goto out;
		}
	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < st->nspecs; i++)
			if ((st->specs[i].kind == SPEC_ENV_JSON) == (pass == 0) &&
			    spec_value(&st->specs[i], secrets[i], &vs, &n, err) == -1)
				goto out;
	*out = vs;
	*nout = n;
	vs = NULL;
	rc = 0;
out:
	for (i = 0; i < st->nspecs; i++)
		smc_secret_free(secrets[i]);
	free(secrets);
	smc_batch_free(b);
	values_free(vs, n);
	return rc;
}

/* What the child sees, as one digest: a new version with the same values
 * does not change it. */
static void
digest_values(const struct value *vs, size_t n, unsigned char out[crypto_generichash_BYTES])
{
	crypto_generichash_state h;
	size_t i;
	uint64_t len;

	crypto_generichash_init(&h, NULL, 0, crypto_generichash_BYTES);
	for (i = 0; i < n; i++) {
		len = vs[i].len;
		crypto_generichash_update(&h, (const unsigned char *)&len, sizeof(len));
		crypto_generichash_update(&h, (const unsigned char *)vs[i].buf, vs[i].len);
		if (vs[i].spec->kind == SPEC_FILE)
			crypto_generichash_update(&h, (const unsigned char *)vs[i].spec->name,
			    strlen(vs[i].spec->name) + 1);
	}
	crypto_generichash_final(&h, out, crypto_generichash_BYTES);
}

/* ---- private files ------------------------------------------------------------------- */

static int
on_tmpfs(const char *dir)
{
	struct statfs sfs;

	return statfs(dir, &sfs) == 0 && ((unsigned long)sfs.f_type == TMPFS_MAGIC_ ||
	    (unsigned long)sfs.f_type == RAMFS_MAGIC_);
}

static int
make_private_dir(struct exec_state *st)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	const char *base = NULL;
	int n;

	if (xdg != NULL && xdg[0] == '/' && on_tmpfs(xdg))
		base = xdg;
	else if (on_tmpfs("/dev/shm"))
		base = "/dev/shm";
	if (base == NULL) {
		cli_message("exec: no tmpfs for --file: neither $XDG_RUNTIME_DIR nor /dev/shm is a"
		    " tmpfs (secrets are never written to a disk)");
		return -1;
	}
	n = snprintf(st->dir, sizeof(st->dir), "%s/smcache-exec-XXXXXX", base);
	if (n < 0 || (size_t)n >= sizeof(st->dir) || mkdtemp(st->dir) == NULL) {
		cli_message("exec: cannot create a private directory under %s: %s", base,
		    strerror(errno));
		st->dir[0] = '\0';
		return -1;
	}
	if ((st->dirfd = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		cli_message("exec: %s: %s", st->dir, strerror(errno));
		(void)rmdir(st->dir);
		st->dir[0] = '\0';
		return -1;
	}
	return 0;
}

/* Creates the parent directories of rel (0700) under the private dir. */
static int
make_parents(int dirfd, const char *rel)
{
	char path[320];
	char *slash;

	snprintf(path, sizeof(path), "%s", rel);
	for (slash = strchr(path, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		if (mkdirat(dirfd, path, 0700) == -1 && errno != EEXIST)
			return -1;
		*slash = '/';
	}
	return 0;
}

/* Writes every file value: a temporary name, then rename, so a child that
 * rereads a file on a signal sees the old or the new content, never half. */
static int
write_files(struct exec_state *st, const struct value *vs, size_t n)
{
	char tmp[320];
	size_t i, off;
	ssize_t w;
	int fd;

	for (i = 0; i < n; i++) {
		const struct spec *sp = vs[i].spec;

		if (sp->kind != SPEC_FILE)
			continue;
		if (make_parents(st->dirfd, sp->name) == -1)
			goto fail;
		snprintf(tmp, sizeof(tmp), "%s.smcache-new", sp->name);
		(void)unlinkat(st->dirfd, tmp, 0);
		fd = openat(st->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd == -1)
			goto fail;
		for (off = 0; off < vs[i].len; off += (size_t)w)
			if ((w = write(fd, vs[i].buf + off, vs[i].len - off)) <= 0) {
				(void)close(fd);
				goto fail;
			}
		if (fchmod(fd, sp->mode) == -1 || close(fd) == -1)
			goto fail;
		if (renameat(st->dirfd, tmp, st->dirfd, sp->name) == -1)
			goto fail;
		continue;
fail:
		cli_message("exec: cannot write %s/%s: %s", st->dir, sp->name, strerror(errno));
		return -1;
	}
	return 0;
}

/* Overwrites, unlinks and removes everything under the private dir. */
static void
remove_files(struct exec_state *st)
{
	static const char zeros[4096];
	struct stat sb;
	size_t i, left;
	char path[320], *slash;
	int fd;

	if (st->dir[0] == '\0')
		return;
	for (i = 0; i < st->nspecs; i++) {
		const struct spec *sp = &st->specs[i];

		if (sp->kind != SPEC_FILE)
			continue;
		if (fchmodat(st->dirfd, sp->name, 0600, 0) == 0 &&
		    (fd = openat(st->dirfd, sp->name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)) != -1) {
			if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
				for (left = (size_t)sb.st_size; left > 0;) {
					ssize_t w = write(fd, zeros, left < sizeof(zeros) ? left : sizeof(zeros));

					if (w <= 0)
						break;
					left -= (size_t)w;
				}
			(void)close(fd);
		}
		(void)unlinkat(st->dirfd, sp->name, 0);
		snprintf(path, sizeof(path), "%s.smcache-new", sp->name);
		(void)unlinkat(st->dirfd, path, 0);
		/* Parent directories, deepest first (rmdir fails while others remain). */
		snprintf(path, sizeof(path), "%s", sp->name);
		while ((slash = strrchr(path, '/')) != NULL) {
			*slash = '\0';
			(void)unlinkat(st->dirfd, path, AT_REMOVEDIR);
		}
	}
	(void)close(st->dirfd);
	if (rmdir(st->dir) == -1)
		cli_message("exec: could not remove %s: %s", st->dir, strerror(errno));
	st->dir[0] = '\0';
}

/* ---- the child ----------------------------------------------------------------------- */

/* environ plus our values (ours replace inherited variables of the same name). */
static char **
build_env(const struct exec_state *st)
{
	size_t n = 0, i, j, k = 0;
	char **env, *dirvar = NULL;

	while (environ[n] != NULL)
		n++;
	if ((env = calloc(n + st->nvalues + 2, sizeof(*env))) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		int replaced = 0;

		for (j = 0; j < st->nvalues && !replaced; j++) {
			const char *v = st->values[j].buf;
			size_t nl;

			if (st->values[j].spec->kind == SPEC_FILE)
				continue;
			nl = (size_t)(strchr(v, '=') - v);
			replaced = strncmp(environ[i], v, nl + 1) == 0;
		}
		if (strncmp(environ[i], "SMCACHE_EXEC_DIR=", 17) == 0 && st->dir[0] != '\0')
			replaced = 1;
		if (!replaced)
			env[k++] = environ[i];
	}
	/* Later entries of the same name win: env-json first, then --env. */
	for (j = 0; j < st->nvalues; j++) {
		const char *v = st->values[j].buf;
		size_t nl, m;
		int later = 0;

		if (st->values[j].spec->kind == SPEC_FILE)
			continue;
		nl = (size_t)(strchr(v, '=') - v);
		for (m = j + 1; m < st->nvalues && !later; m++)
			later = st->values[m].spec->kind != SPEC_FILE &&
			    strncmp(st->values[m].buf, v, nl + 1) == 0;
		if (!later)
			env[k++] = st->values[j].buf;
	}
	if (st->dir[0] != '\0') {
		if ((dirvar = malloc(strlen(st->dir) + 18)) == NULL) {
			free(env);
			return NULL;
		}
		sprintf(dirvar, "SMCACHE_EXEC_DIR=%s", st->dir);
		env[k++] = dirvar;
	}
	env[k] = NULL;
	return env;
}

static void
free_env(char **env, const struct exec_state *st)
{
	size_t i;

	if (env == NULL)
		return;
	for (i = 0; env[i] != NULL; i++)
		if (strncmp(env[i], "SMCACHE_EXEC_DIR=", 17) == 0 && st->dir[0] != '\0' &&
		    strcmp(env[i] + 17, st->dir) == 0)
			free(env[i]);
	free(env);
}

static int
exec_failure_code(int e)
{
	return e == ENOENT ? EXIT_NO_COMMAND : EXIT_CANNOT_EXEC;
}

/* Forks and execs the command with the current values; 0 with *pid. */
static int
spawn(struct exec_state *st, const sigset_t *orig_mask, pid_t *pid)
{
	char **env = build_env(st);
	int sig;

	if (env == NULL) {
		cli_message("exec: out of memory");
		return -1;
	}
	if ((*pid = fork()) == -1) {
		cli_message("exec: fork: %s", strerror(errno));
		free_env(env, st);
		return -1;
	}
	if (*pid == 0) {
		for (sig = 1; sig < NSIG; sig++)
			(void)signal(sig, SIG_DFL);
		(void)sigprocmask(SIG_SETMASK, orig_mask, NULL);
		execvpe(st->command[0], st->command, env);
		cli_message("exec: %s: %s", st->command[0], strerror(errno));
		_exit(exec_failure_code(errno));
	}
	free_env(env, st);
	return 0;
}

/* ---- the supervisor ------------------------------------------------------------------ */

static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH,
	SIGCONT, SIGTSTP };

static int
child_status_to_exit(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/* Dies of the child's signal so our parent sees what it would have seen. */
static void
die_like(int status, const sigset_t *orig_mask)
{
	sigset_t one;
	int sig;

	if (!WIFSIGNALED(status))
		return;
	sig = WTERMSIG(status);
	if (sig == SIGKILL || sig == SIGSTOP)
		return;
	(void)signal(sig, SIG_DFL);
	sigemptyset(&one);
	sigaddset(&one, sig);
	(void)sigprocmask(SIG_SETMASK, orig_mask, NULL);
	(void)sigprocmask(SIG_UNBLOCK, &one, NULL);
	(void)raise(sig);
}

static int
supervise(struct exec_state *st, const sigset_t *orig_mask, int sfd)
{
	struct signalfd_siginfo si;
	struct pollfd pfd;
	struct value *nv;
	smc_error err;
	unsigned char nd[crypto_generichash_BYTES];
	int64_t now, next_poll, next_allowed = 0, last_change = -RESTART_CALM_MS * 2;
	int64_t kill_at = -1, gap = RESTART_MIN_MS;
	pid_t child, w;
	size_t nn;
	int status = 0, stopping = 0, terminating = 0, pending = 0, warned = 0, timeout;

	if (spawn(st, orig_mask, &child) == -1)
		return 1;
	next_poll = now_ms() + POLL_MS;
	for (;;) {
		now = now_ms();
		timeout = -1;
		if (st->on_change != CHANGE_NONE && !terminating)
			timeout = (int)(next_poll > now ? next_poll - now : 0);
		if (pending && !stopping) {
			int t = (int)(next_allowed > now ? next_allowed - now : 0);

			timeout = timeout < 0 || t < timeout ? t : timeout;
		}
		if (kill_at >= 0) {
			int t = (int)(kill_at > now ? kill_at - now : 0);

			timeout = timeout < 0 || t < timeout ? t : timeout;
		}
		pfd.fd = sfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, timeout) > 0 && read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			if (si.ssi_signo == SIGCHLD) {
				while ((w = waitpid(-1, &status, WNOHANG)) > 0) {
					if (w != child)
						continue;	/* an orphan we inherited */
					if (!stopping || terminating)
						return -status - 1;	/* the child's own end */
					stopping = 0;
					kill_at = -1;
					if (spawn(st, orig_mask, &child) == -1)
						return 1;
				}
			} else {
				/* A terminal's ^C already reached the child (same process
				 * group); anything sent to us alone is passed on. */
				if (si.ssi_code != SI_KERNEL)
					(void)kill(child, (int)si.ssi_signo);
				if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT ||
				    si.ssi_signo == SIGQUIT || si.ssi_signo == SIGHUP)
					terminating = 1;	/* no more restarts */
			}
			continue;
		}
		now = now_ms();
		if (kill_at >= 0 && now >= kill_at) {
			(void)kill(child, SIGKILL);
			kill_at = -1;
		}
		if (st->on_change != CHANGE_NONE && !terminating && now >= next_poll) {
			next_poll = now + POLL_MS;
			if (resolve(st, &nv, &nn, &err) == -1) {
				/* Keep the child running on what it has; say so once. */
				if (!warned)
					cli_message("exec: cannot check for changes (%s); will keep trying",
					    err.message);
				warned = 1;
			} else {
				if (warned)
					cli_message("exec: checking for changes again");
				warned = 0;
				digest_values(nv, nn, nd);
				if (sodium_memcmp(nd, st->digest, sizeof(nd)) != 0) {
					values_free(st->values, st->nvalues);
					st->values = nv;
					st->nvalues = nn;
					memcpy(st->digest, nd, sizeof(nd));
					if (st->dir[0] != '\0' && write_files(st, nv, nn) == -1)
						cli_message("exec: keeping the old files");
					pending = 1;
				} else
					values_free(nv, nn);
			}
		}
		if (pending && !stopping && !terminating && now >= next_allowed) {
			pending = 0;
			/* Backoff: changes that keep coming are acted on ever less often. */
			gap = now - last_change < RESTART_CALM_MS ? gap * 2 : RESTART_MIN_MS;
			if (gap > RESTART_MAX_MS)
				gap = RESTART_MAX_MS;
			last_change = now;
			next_allowed = now + gap;
			if (st->on_change == CHANGE_SIGNAL)
				(void)kill(child, st->change_signal);
			else {
				stopping = 1;
				kill_at = now + STOP_GRACE_MS;
				(void)kill(child, SIGTERM);
			}
		}
	}
}

static void
state_free(struct exec_state *st)
{
	size_t i;

	for (i = 0; i < st->nspecs; i++) {
		free((char *)st->specs[i].name);
		free(st->specs[i].secret_id);
		free(st->specs[i].field);
		free(st->specs[i].stage);
	}
	free(st->specs);
	values_free(st->values, st->nvalues);
	smc_close(st->client);
}

static int
run(struct exec_state *st)
{
	sigset_t mask, orig;
	smc_error err;
	char **env;
	size_t i, nfiles = 0;
	int sfd = -1, rc, status;

	if ((st->client = smc_connect(st->socket_path, st->timeout_ms, &err)) == NULL ||
	    resolve(st, &st->values, &st->nvalues, &err) == -1) {
		cli_message("%s", err.message);
		return cli_exit_code(err.code);
	}
	digest_values(st->values, st->nvalues, st->digest);
	for (i = 0; i < st->nspecs; i++)
		nfiles += st->specs[i].kind == SPEC_FILE;

	if (nfiles == 0 && st->on_change == CHANGE_NONE) {
		/* Nothing to watch or clean up: become the command. */
		if ((env = build_env(st)) == NULL) {
			cli_message("exec: out of memory");
			return 1;
		}
		smc_close(st->client);
		st->client = NULL;
		execvpe(st->command[0], st->command, env);
		rc = errno;
		free_env(env, st);
		cli_message("exec: %s: %s", st->command[0], strerror(rc));
		return exec_failure_code(rc);
	}

	/* Signals are read from a signalfd, before the first fork, so none is lost. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	for (i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaddset(&mask, forwarded[i]);
	if (sigprocmask(SIG_BLOCK, &mask, &orig) == -1 ||
	    (sfd = signalfd(-1, &mask, SFD_CLOEXEC)) == -1) {
		cli_message("exec: signalfd: %s", strerror(errno));
		return 1;
	}
	st->dirfd = -1;
	if (nfiles > 0 && (make_private_dir(st) == -1 || write_files(st, st->values, st->nvalues) == -1)) {
		remove_files(st);
		(void)close(sfd);
		return 1;
	}
	rc = supervise(st, &orig, sfd);
	(void)close(sfd);
	remove_files(st);
	if (rc < 0) {
		status = -(rc + 1);
		state_free(st);
		memset(st, 0, sizeof(*st));
		die_like(status, &orig);
		return child_status_to_exit(status);
	}
	return rc;
}

int
cli_exec_dispatch(int argc, char **argv)
{
	struct exec_state st;
	int at, rc;

	memset(&st, 0, sizeof(st));
	st.dirfd = -1;
	if ((at = find_exec(argc, argv, &st)) == -1)
		return -1;
	if (sodium_init() < 0) {
		cli_message("libsodium failed to initialise");
		return 1;
	}
	cJSON_InitHooks(&(cJSON_Hooks){ .malloc_fn = malloc, .free_fn = wipe_free });
	if ((rc = parse_exec_args(argc - at, argv + at, &st)) == -1)
		rc = run(&st);
	state_free(&st);
	return rc;
}
