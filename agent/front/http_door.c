/*
 * http_door: listeners, bounds and the checks before meaning (see
 * http_door.h). libevent's evhttp parses HTTP; this module decides who may
 * talk and what reaches http_api.c.
 *
 * A connection is known to the door from its first request on: then its
 * caller is established once (sock_diag for TCP, SO_PEERCRED for the Unix
 * socket), it takes a per-uid limits entry, and it counts against
 * [http] max_connections. Before that, evhttp says nothing about it, so the
 * door tracks every accepted socket itself (struct http_sock: the
 * bufferevent it gives evhttp, with a reference of its own): a socket that
 * has not finished a first request within [http] idle_timeout of its accept
 * (idle, or trickling its headers to dodge evhttp's per-read timeout), or
 * the oldest of more than max_connections such sockets, is shut down, so descriptors the Unix
 * socket needs cannot be held by idle HTTP clients. A sweep every 100 ms
 * applies that and drops the references of sockets evhttp has freed.
 *
 * Requests still arriving are bounded too, on every socket (evhttp's read
 * timeout restarts at each byte, and it keeps the whole of a body it reads):
 * the bytes read since a socket's last request was dispatched count as that
 * socket's pending bytes (an evbuffer callback on its input); a request whose
 * first byte came more than idle_timeout ago is shut, and when all sockets
 * together hold more than PENDING_MAX such bytes the longest-waiting are shut
 * at once (600 bodies of 250 KB held short of their length made 200 MB).
 *
 * Checks, in the order the AWS agent makes them: connection limit (429),
 * then ours, Host (400, DNS rebinding), then X-Forwarded-For (400), the
 * token (403, except /ping) and the method (405).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/queue.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sodium.h>

#include "agent.h"
#include "cache.h"
#include "config.h"
#include "dispatch.h"
#include "http_api.h"
#include "http_door.h"
#include "sm_endpoint.h"
#include "log.h"
#include "peer_inet.h"
#include "peer_limits.h"
#include "secmem.h"
#include "sys_clock.h"
#include "table.h"

#define MAX_LISTENERS	16
#define MAX_NAMES	16
#define MAX_TOKEN	4096
#define BACKLOG		512

const int http_door_statuses[8] = { 200, 400, 403, 404, 405, 429, 500, 0 };

struct http_conn {
	struct table_node node;
	struct evhttp_connection *evcon;
	struct http_door *door;
	struct dispatch_caller caller;
	bool is_unix;
	uint16_t local_port;		/* TCP: the listener's port, for the Host check */
	char why[128];			/* why the uid is unknown */
};

/* An accepted socket, from accept to the sweep after evhttp freed it. */
struct http_sock {
	struct table_node node;		/* keyed by bev */
	TAILQ_ENTRY(http_sock) link;	/* accept order */
	struct bufferevent *bev;	/* one reference is ours */
	struct http_door *door;
	struct evbuffer_cb_entry *input_cb;	/* counts what arrives */
	uint64_t accepted_ms;
	uint64_t pending_ms;		/* when the request being read began to arrive; 0: none */
	size_t pending;			/* bytes read since the last request was dispatched */
	bool requested;			/* finished a first request */
	bool shut;
};

#define SWEEP_MS	100
/* The bytes of requests still arriving that all sockets together may hold. */
#define PENDING_MAX	((size_t)16 << 20)

/* What a listener serves. */
enum listener_kind {
	LISTEN_API,			/* [http] listen, socket: the AWS agent's API */
	LISTEN_METRICS,			/* [http] metrics_listen */
	LISTEN_SDK,			/* [endpoint] listen: the Secrets Manager API (sm_endpoint.c) */
};

struct http_door {
	const struct config *cfg;
	struct agent *agent;
	struct evhttp *http;		/* [http] listen and [http] socket */
	struct evhttp *metrics_http;	/* [http] metrics_listen */
	struct evhttp *sdk_http;	/* [endpoint] listen */
	struct sm_endpoint *sdk;	/* what the [endpoint] listeners serve; NULL: none */
	char *sdk_hosts[MAX_NAMES];	/* [endpoint] allowed_hosts */
	size_t nsdk_hosts;
	int fds[MAX_LISTENERS];
	enum listener_kind kind[MAX_LISTENERS];
	size_t nfds;
	char *unix_path;		/* unlinked at free */
	uint8_t token_hash[crypto_generichash_BYTES];
	char *headers[MAX_NAMES];
	size_t nheaders;
	char *hosts[MAX_NAMES];
	size_t nhosts;
	struct table conns;
	struct table socks_by_bev;
	TAILQ_HEAD(, http_sock) socks;
	size_t pending;			/* the sum of the sockets' pending bytes */
	struct event *sweep;
	struct http_door_stats stats;
};

/* ---- configuration ------------------------------------------------------------------------ */

int
http_door_parse_address(const char *text, struct sockaddr_storage *ss, socklen_t *len,
    char *why, size_t whylen)
{
	char host[64];
	const char *colon, *end;
	unsigned long port;
	char *stop;
	size_t hlen;
	const bool bracketed = text[0] == '[';

	memset(ss, 0, sizeof(*ss));
	if (bracketed) {
		if ((end = strchr(text, ']')) == NULL || end[1] != ':')
			goto bad;
		hlen = (size_t)(end - text - 1);
		text++;
		colon = end + 1;
	} else {
		if ((colon = strrchr(text, ':')) == NULL)
			goto bad;
		hlen = (size_t)(colon - text);
	}
	if (hlen == 0 || hlen >= sizeof(host))
		goto bad;
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	if (colon[1] < '0' || colon[1] > '9')
		goto bad;
	errno = 0;
	port = strtoul(colon + 1, &stop, 10);
	if (errno != 0 || *stop != '\0' || port == 0 || port > 65535)
		goto bad;
	if (!bracketed && inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		((struct sockaddr_in *)ss)->sin_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
		*len = sizeof(struct sockaddr_in);
		return 0;
	}
	if (bracketed && inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
		*len = sizeof(struct sockaddr_in6);
		return 0;
	}
bad:
	snprintf(why, whylen, "not ADDRESS:PORT with a literal address (e.g. 127.0.0.1:2773"
	    " or [::1]:2773)");
	return -1;
}

bool
http_door_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return false;
}

/* Splits a comma/space separated list into at most MAX_NAMES strdup'd items. */
static int
split_names(const char *list, char **out, size_t *count, char *err, size_t errlen, const char *key)
{
	size_t len;

	*count = 0;
	for (const char *p = list; p != NULL && *p != '\0'; p += len) {
		p += strspn(p, ", \t");
		if ((len = strcspn(p, ", \t")) == 0)
			continue;
		if (*count == MAX_NAMES) {
			snprintf(err, errlen, "[http] %s: more than %d names", key, MAX_NAMES);
			return -1;
		}
		if ((out[*count] = strndup(p, len)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		(*count)++;
	}
	return 0;
}

/*
 * The token file: a regular file no one but its owner (root or the agent's
 * user) may write, as small as a token. Read once; trailing and leading
 * blanks and newlines are not part of the token (the AWS agent's install
 * script writes one newline after it).
 */
static int
read_token_file(const char *path, uint8_t *buf, size_t cap, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	size_t got = 0;
	int fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		snprintf(err, errlen, "cannot open the SSRF token file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "SSRF token file %s is not a regular file", path);
		goto out;
	}
	if ((st.st_mode & 022) != 0 || (st.st_uid != 0 && st.st_uid != geteuid())) {
		snprintf(err, errlen, "SSRF token file %s must be owned by root or the agent's user"
		    " and writable by no one else (mode %03o, owner %lu)", path,
		    (unsigned)(st.st_mode & 0777), (unsigned long)st.st_uid);
		goto out;
	}
	while (got < cap && (n = read(fd, buf + got, cap - got)) > 0)
		got += (size_t)n;
	if (got == cap) {
		snprintf(err, errlen, "SSRF token file %s is larger than %zu bytes", path, cap - 1);
		goto out;
	}
	*len = got;
	rc = 0;
out:
	close(fd);
	return rc;
}

/* The token from the first set variable of [http] ssrf_env_variables, hashed. */
static int
load_token(struct http_door *d, char *err, size_t errlen)
{
	char *vars[MAX_NAMES];
	size_t nvars = 0, len = 0, start = 0;
	const char *value = NULL, *which = NULL;
	uint8_t *buf = NULL;
	int rc = -1;

	if (split_names(d->cfg->http_ssrf_env_variables, vars, &nvars, err, errlen,
	    "ssrf_env_variables") != 0)
		goto out;
	for (size_t i = 0; i < nvars && value == NULL; i++) {
		if ((value = getenv(vars[i])) != NULL)
			which = vars[i];
	}
	if (value == NULL) {
		snprintf(err, errlen, "[http] needs an SSRF token: set one of the variables in"
		    " [http] ssrf_env_variables (%s)", d->cfg->http_ssrf_env_variables);
		goto out;
	}
	if ((buf = sodium_malloc(MAX_TOKEN + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (strncmp(value, "file://", 7) == 0) {
		if (read_token_file(value + 7, buf, MAX_TOKEN + 1, &len, err, errlen) != 0)
			goto out;
		while (len > 0 && strchr(" \t\r\n", buf[len - 1]) != NULL)
			len--;
		while (start < len && strchr(" \t\r\n", buf[start]) != NULL)
			start++;
	} else {
		if ((len = strlen(value)) > MAX_TOKEN) {
			snprintf(err, errlen, "the SSRF token in %s is longer than %d bytes", which,
			    MAX_TOKEN);
			goto out;
		}
		memcpy(buf, value, len);
	}
	if (len - start == 0) {
		snprintf(err, errlen, "the SSRF token from %s is empty", which);
		goto out;
	}
	crypto_generichash(d->token_hash, sizeof(d->token_hash), buf + start, len - start, NULL, 0);
	rc = 0;
out:
	if (buf != NULL)
		sodium_free(buf);	/* wipes */
	for (size_t i = 0; i < nvars; i++)
		free(vars[i]);
	return rc;
}

/* ---- listeners ---------------------------------------------------------------------------- */

static int
bind_tcp(struct http_door *d, const char *text, enum listener_kind kind, char *err, size_t errlen)
{
	const char *section = kind == LISTEN_SDK ? "endpoint" : "http";
	struct sockaddr_storage ss;
	socklen_t len;
	const int one = 1;
	char why[128];
	int fd;

	if (d->nfds == MAX_LISTENERS) {
		snprintf(err, errlen, "[%s]: more than %d listeners", section, MAX_LISTENERS);
		return -1;
	}
	if (http_door_parse_address(text, &ss, &len, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "[%s] %s: %s", section, text, why);
		return -1;
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		goto fail;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, BACKLOG) != 0) {
		close(fd);
		goto fail;
	}
	d->kind[d->nfds] = kind;
	d->fds[d->nfds++] = fd;
	return 0;
fail:
	snprintf(err, errlen, "[%s] cannot listen on %s: %s", section, text, strerror(errno));
	return -1;
}

/* The same permission model as the agent's own socket: 0666 is fine, the uid decides. */
static int
bind_unix(struct http_door *d, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path) || d->nfds == MAX_LISTENERS) {
		snprintf(err, errlen, "[http] socket = %s: path too long", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	/* A stale socket from a previous run is replaced; anything else is refused. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "[http] socket = %s exists and is not a socket", path);
			return -1;
		}
		unlink(path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || chmod(path, 0666) != 0 ||
	    listen(fd, BACKLOG) != 0) {
		snprintf(err, errlen, "[http] cannot listen on %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if ((d->unix_path = strdup(path)) == NULL) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	d->kind[d->nfds] = LISTEN_API;
	d->fds[d->nfds++] = fd;
	return 0;
}

int
http_door_open(struct http_door **door, const struct config *cfg, char *err, size_t errlen)
{
	struct http_door *d;

	*door = NULL;
	if (cfg->http_listen.count == 0 && cfg->http_socket == NULL &&
	    cfg->http_metrics_listen == NULL && cfg->endpoint_listen.count == 0)
		return 0;
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	d->cfg = cfg;
	TAILQ_INIT(&d->socks);
	if (table_init(&d->conns, 64) != 0 || table_init(&d->socks_by_bev, 64) != 0) {
		table_destroy(&d->conns);
		free(d);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if ((cfg->http_listen.count > 0 || cfg->http_socket != NULL) &&
	    load_token(d, err, errlen) != 0)
		goto fail;
	if (split_names(cfg->http_ssrf_headers, d->headers, &d->nheaders, err, errlen,
	    "ssrf_headers") != 0 ||
	    split_names(cfg->http_allowed_hosts, d->hosts, &d->nhosts, err, errlen,
	    "allowed_hosts") != 0)
		goto fail;
	for (size_t i = 0; i < cfg->http_listen.count; i++) {
		if (bind_tcp(d, cfg->http_listen.items[i], LISTEN_API, err, errlen) != 0)
			goto fail;
	}
	if (cfg->http_socket != NULL && bind_unix(d, cfg->http_socket, err, errlen) != 0)
		goto fail;
	if (cfg->http_metrics_listen != NULL &&
	    bind_tcp(d, cfg->http_metrics_listen, LISTEN_METRICS, err, errlen) != 0)
		goto fail;
	if (cfg->endpoint_listen.count > 0) {
		/* Its keys file is read now, before the agent drops privileges. */
		if (split_names(cfg->endpoint_allowed_hosts, d->sdk_hosts, &d->nsdk_hosts, err,
		    errlen, "allowed_hosts") != 0 || sm_endpoint_open(&d->sdk, cfg, err, errlen) != 0)
			goto fail;
		for (size_t i = 0; i < cfg->endpoint_listen.count; i++) {
			if (bind_tcp(d, cfg->endpoint_listen.items[i], LISTEN_SDK, err, errlen) != 0)
				goto fail;
		}
	}
	*door = d;
	return 0;
fail:
	http_door_free(d);
	return -1;
}

/* ---- accepted sockets --------------------------------------------------------------------- */

static struct http_sock *
sock_find(const struct http_door *d, const struct bufferevent *bev)
{
	uint64_t h = table_hash_bytes(&d->socks_by_bev, &bev, sizeof(bev));

	for (struct table_node *n = table_chain(&d->socks_by_bev, h); n != NULL; n = n->next) {
		struct http_sock *s = table_entry(n, struct http_sock, node);

		if (n->hash == h && s->bev == bev)
			return s;
	}
	return NULL;
}

static void
sock_release(struct http_door *d, struct http_sock *s)
{
	if (s->input_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_input(s->bev), s->input_cb);
	d->pending -= s->pending;
	TAILQ_REMOVE(&d->socks, s, link);
	table_remove(&d->socks_by_bev, &s->node);
	bufferevent_decref(s->bev);	/* evhttp freed it: this closes the descriptor */
	d->stats.sockets_open--;
	free(s);
}

static void
sweep_arm(struct http_door *d)
{
	const struct timeval tv = { 0, SWEEP_MS * 1000 };

	if (d->sweep != NULL && !TAILQ_EMPTY(&d->socks) && !evtimer_pending(d->sweep, NULL))
		evtimer_add(d->sweep, &tv);
}

static void
sock_shut(struct http_door *d, struct http_sock *s)
{
	int fd;

	/* evhttp reads end-of-file and frees the connection itself. */
	if ((fd = bufferevent_getfd(s->bev)) >= 0)
		shutdown(fd, SHUT_RDWR);
	s->shut = true;
	d->pending -= s->pending;	/* no longer counted: it is going */
	s->pending = 0;
	d->stats.sockets_shut++;
}

/*
 * Over PENDING_MAX: the sockets whose request began to arrive first are shut
 * and their connections failed now, as a reset by the client would (evhttp
 * would otherwise read what the client still sends before the end-of-file),
 * until under it. From the sweep only: never inside a bufferevent's callback.
 */
static void
pending_cull(struct http_door *d)
{
	struct http_sock *s, *oldest;

	while (d->pending > PENDING_MAX) {
		oldest = NULL;
		TAILQ_FOREACH(s, &d->socks, link) {
			if (!s->shut && s->pending > 0 &&
			    (oldest == NULL || s->pending_ms < oldest->pending_ms))
				oldest = s;
		}
		if (oldest == NULL)
			break;
		sock_shut(d, oldest);
		bufferevent_trigger_event(oldest->bev, BEV_EVENT_READING | BEV_EVENT_ERROR, 0);
	}
}

/* Input callback of an accepted socket: bytes read from it count until a request is dispatched. */
static void
sock_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct http_sock *s = arg;
	struct http_door *d = s->door;

	(void)buf;
	if (info->n_added == 0 || s->shut)
		return;
	if (s->pending == 0)
		s->pending_ms = sys_clock_ms();
	s->pending += info->n_added;
	d->pending += info->n_added;
	if (d->pending > PENDING_MAX && d->sweep != NULL)
		event_active(d->sweep, EV_TIMEOUT, 0);	/* the sweep culls, at once */
}

static void
sweep(evutil_socket_t unused, short what, void *arg)
{
	struct http_door *d = arg;
	struct http_sock *s, *next;
	bufferevent_event_cb errcb;
	const uint64_t now = sys_clock_ms(), limit_ms = (uint64_t)d->cfg->http_idle_timeout * 1000;
	size_t waiting = 0;

	(void)unused;
	(void)what;
	pending_cull(d);
	for (s = TAILQ_FIRST(&d->socks); s != NULL; s = next) {
		next = TAILQ_NEXT(s, link);
		/* evhttp's bufferevent_free clears the callbacks; a live connection always has
		 * its error callback set. */
		bufferevent_getcb(s->bev, NULL, NULL, &errcb, NULL);
		if (errcb == NULL) {
			sock_release(d, s);
			continue;
		}
		if (s->shut)
			continue;
		if (s->requested) {
			/* A later request: it must arrive within idle_timeout of its first byte. */
			if (s->pending > 0 && now - s->pending_ms > limit_ms)
				sock_shut(d, s);
			continue;
		}
		if (now - s->accepted_ms > limit_ms)
			sock_shut(d, s);
		else
			waiting++;
	}
	/* Beyond max_connections sockets without a request, the ones that waited longest go:
	 * a client sends its request at once, so the oldest silent sockets are the ones
	 * holding places, and a newcomer is not cut before it could speak (sockets are
	 * in accept order). */
	for (s = TAILQ_FIRST(&d->socks); s != NULL && waiting > d->cfg->http_max_connections;
	    s = TAILQ_NEXT(s, link)) {
		if (s->shut || s->requested)
			continue;
		sock_shut(d, s);
		waiting--;
	}
	sweep_arm(d);
}

/* evhttp's hook for a new connection's bufferevent: ours, tracked. */
static struct bufferevent *
make_bev(struct event_base *base, void *arg)
{
	struct http_door *d = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	struct http_sock *s;

	if (bev == NULL || (s = calloc(1, sizeof(*s))) == NULL)
		return bev;	/* untracked; evhttp's own bounds still hold */
	s->bev = bev;
	s->door = d;
	s->accepted_ms = sys_clock_ms();
	s->input_cb = evbuffer_add_cb(bufferevent_get_input(bev), sock_input, s);
	bufferevent_incref(bev);
	TAILQ_INSERT_TAIL(&d->socks, s, link);
	table_insert(&d->socks_by_bev, &s->node,
	    table_hash_bytes(&d->socks_by_bev, &bev, sizeof(bev)));
	d->stats.sockets_open++;
	sweep_arm(d);
	return bev;
}

/* A request finished arriving on evcon: its socket is no longer waiting for one. */
static void
sock_requested(struct http_door *d, struct evhttp_connection *evcon)
{
	struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
	struct http_sock *s = bev != NULL ? sock_find(d, bev) : NULL;

	size_t left;

	if (s == NULL || s->shut)
		return;
	s->requested = true;
	/* What is left in the input is the start of the next request (pipelined). */
	left = evbuffer_get_length(bufferevent_get_input(bev));
	d->pending = d->pending - s->pending + left;
	s->pending = left;
	s->pending_ms = left > 0 ? sys_clock_ms() : 0;
}

/* ---- connections -------------------------------------------------------------------------- */

static uint64_t
conn_hash(const struct http_door *d, const struct evhttp_connection *evcon)
{
	return table_hash_bytes(&d->conns, &evcon, sizeof(evcon));
}

static void
conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct http_conn *hc = arg;
	struct http_door *d = hc->door;

	(void)evcon;
	table_remove(&d->conns, &hc->node);
	d->stats.connections_active--;
	if (hc->caller.limits != NULL && d->agent->peer_limits != NULL)
		peer_limits_conn_close(d->agent->peer_limits, hc->caller.limits);
	free(hc);
}

/* Who is on the other end: SO_PEERCRED on the Unix socket, sock_diag for TCP. */
static void
establish_caller(struct http_conn *hc, int fd)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	uid_t uid;

	hc->caller.door = "http";
	hc->caller.peer.gid = (gid_t)-1;
	hc->caller.peer.uid = (uid_t)-1;
	hc->caller.uid_unknown_why = hc->why;
	if (getsockname(fd, (struct sockaddr *)&local, &llen) != 0) {
		snprintf(hc->why, sizeof(hc->why), "getsockname: %s", strerror(errno));
		return;
	}
	if (local.ss_family == AF_UNIX) {
		hc->is_unix = true;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) {
			snprintf(hc->why, sizeof(hc->why), "SO_PEERCRED: %s", strerror(errno));
			return;
		}
		hc->caller.peer.uid = cred.uid;
		hc->caller.peer.gid = cred.gid;
		hc->caller.pid = cred.pid;
		hc->caller.uid_known = true;
		return;
	}
	hc->local_port = ntohs(local.ss_family == AF_INET ?
	    ((struct sockaddr_in *)&local)->sin_port : ((struct sockaddr_in6 *)&local)->sin6_port);
	if (peer_inet_uid_fd(fd, &uid, hc->why, sizeof(hc->why)) != 0) {
		log_warn("http: caller's uid unknown (%s); denied where access rules apply",
		    hc->why);
		return;
	}
	hc->caller.peer.uid = uid;
	hc->caller.uid_known = true;
}

/* The door's state for evcon; made at its first request. NULL: out of memory. */
static struct http_conn *
conn_get(struct http_door *d, struct evhttp_connection *evcon, bool *fresh)
{
	uint64_t h = conn_hash(d, evcon);
	struct http_conn *hc;
	struct bufferevent *bev;

	*fresh = false;
	for (struct table_node *n = table_chain(&d->conns, h); n != NULL; n = n->next) {
		hc = table_entry(n, struct http_conn, node);
		if (n->hash == h && hc->evcon == evcon)
			return hc;
	}
	if ((hc = calloc(1, sizeof(*hc))) == NULL)
		return NULL;
	hc->evcon = evcon;
	hc->door = d;
	bev = evhttp_connection_get_bufferevent(evcon);
	establish_caller(hc, bev != NULL ? bufferevent_getfd(bev) : -1);
	table_insert(&d->conns, &hc->node, h);
	evhttp_connection_set_closecb(evcon, conn_closed, hc);
	d->stats.connections_active++;
	d->stats.connections_accepted++;
	*fresh = true;
	return hc;
}

/* ---- replies ------------------------------------------------------------------------------ */

void
http_door_count_reply(struct http_door *d, int code)
{
	size_t i;

	for (i = 0; i < 7 && http_door_statuses[i] != code; i++)
		;
	d->stats.replies[i]++;
}

void
http_door_body_wipe_free(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	secmem_wipe_free((void *)(uintptr_t)data);	/* wipes */
}

void
http_door_body_release(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	cache_body_release(arg);
}

struct evbuffer *
http_door_body_ref(const void *body, size_t len,
    void (*cleanup)(const void *data, size_t len, void *arg), void *arg)
{
	struct evbuffer *buf = evbuffer_new();

	if (buf == NULL || evbuffer_add_reference(buf, body, len, cleanup, arg) != 0) {
		cleanup(body, len, arg);
		if (buf != NULL)
			evbuffer_free(buf);
		return NULL;
	}
	return buf;
}

void
http_door_send_text(struct http_door *d, struct evhttp_request *req, int code, const char *text)
{
	struct evbuffer *buf = evbuffer_new();

	http_door_count_reply(d, code);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "text/plain; charset=utf-8");
	if (buf != NULL)
		evbuffer_add(buf, text, strlen(text));
	evhttp_send_reply(req, code, NULL, buf);
	if (buf != NULL)
		evbuffer_free(buf);
}

/* ---- the checks --------------------------------------------------------------------------- */

/* "name" or "name:port" where name is a loopback name or an allowed host. */
static bool
host_ok(char *const *hosts, size_t nhosts, const struct http_conn *hc, const char *host)
{
	static const char *const loopback[] = { "localhost", "127.0.0.1", "[::1]" };
	const char *colon;
	size_t nlen;
	char port[8];

	if (host == NULL)
		return true;	/* HTTP/1.0 without Host: no browser sends that */
	colon = strrchr(host, ':');
	if (colon != NULL && strchr(colon, ']') != NULL)
		colon = NULL;	/* the ':' inside "[::1]" */
	nlen = colon != NULL ? (size_t)(colon - host) : strlen(host);
	if (hc->is_unix) {
		/* No browser reaches a Unix socket; curl --unix-socket sends Host: localhost. */
		port[0] = '\0';
	} else {
		snprintf(port, sizeof(port), "%u", (unsigned)hc->local_port);
		if (colon == NULL ? hc->local_port != 80 : strcmp(colon + 1, port) != 0)
			return false;
	}
	for (size_t i = 0; i < 3; i++) {
		if (strlen(loopback[i]) == nlen && strncasecmp(host, loopback[i], nlen) == 0)
			return true;
	}
	for (size_t i = 0; i < nhosts; i++) {
		if (strlen(hosts[i]) == nlen && strncasecmp(host, hosts[i], nlen) == 0)
			return true;
	}
	return false;
}

/* One of the token headers carries the token; compared as hashes, in constant time. */
static bool
token_ok(const struct http_door *d, struct evkeyvalq *in)
{
	uint8_t h[crypto_generichash_BYTES];
	const char *v;

	for (size_t i = 0; i < d->nheaders; i++) {
		if ((v = evhttp_find_header(in, d->headers[i])) == NULL)
			continue;
		crypto_generichash(h, sizeof(h), (const uint8_t *)v, strlen(v), NULL, 0);
		if (sodium_memcmp(h, d->token_hash, sizeof(h)) == 0)
			return true;
	}
	return false;
}

static const char *
request_path(struct evhttp_request *req)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;

	return path != NULL ? path : "";
}

/*
 * What every request on a caller-facing listener passes first: the door's
 * state for its connection, the connection limits (judged at a connection's
 * first request), the caller's identity. NULL: answered here.
 */
static struct http_conn *
conn_admit(struct http_door *d, struct evhttp_request *req, bool ping, const char *door_name)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct http_conn *hc;
	bool fresh;
	unsigned limit = d->cfg->http_max_connections;

	d->stats.requests++;
	sock_requested(d, evcon);
	if (evcon == NULL || (hc = conn_get(d, evcon, &fresh)) == NULL) {
		http_door_send_text(d, req, 500, "out of memory");
		return NULL;
	}
	if (fresh)
		hc->caller.door = door_name;
	/* Judged once, at a connection's first request (the one that made the count); like the
	 * AWS agent, /ping has a little headroom so health checks pass under load. */
	if (fresh && d->stats.connections_active > (ping ? limit + 2 : limit)) {
		d->stats.connections_rejected++;
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		http_door_send_text(d, req, 429, "Connection limit exceeded");
		return NULL;
	}
	if (fresh && d->agent->peer_limits != NULL && (hc->caller.limits =
	    peer_limits_conn_open(d->agent->peer_limits, hc->caller.peer.uid)) == NULL) {
		d->stats.connections_rejected++;
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		http_door_send_text(d, req, 429, errno == EUSERS ?
		    "too many connections from your user" : "out of memory");
		return NULL;
	}
	if (!hc->caller.uid_known)
		d->stats.uid_unknown++;
	return hc;
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct http_door *d = arg;
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct http_conn *hc;
	const char *path = request_path(req);
	bool ping = strcmp(path, "/ping") == 0;

	if ((hc = conn_admit(d, req, ping, "http")) == NULL)
		return;
	if (!host_ok(d->hosts, d->nhosts, hc, evhttp_find_header(in, "Host"))) {
		http_door_send_text(d, req, 400, "Bad Host");
		return;
	}
	if (!ping) {
		if (evhttp_find_header(in, "X-Forwarded-For") != NULL) {
			http_door_send_text(d, req, 400, "Forwarded");
			return;
		}
		if (!token_ok(d, in)) {
			http_door_send_text(d, req, 403, "Bad Token");
			return;
		}
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		http_door_send_text(d, req, 405, "Not allowed");
		return;
	}
	http_api_handle(d, d->agent, req, path, &hc->caller, d->cfg);
}

/*
 * [endpoint] listen: the Secrets Manager API. The same connection bounds,
 * caller and Host (DNS rebinding) checks as the HTTP API; no token (the SigV4
 * Authorization plays its part, sm_endpoint.c) and no CORS headers ever.
 */
static void
on_sdk_request(struct evhttp_request *req, void *arg)
{
	struct http_door *d = arg;
	struct http_conn *hc;

	if ((hc = conn_admit(d, req, false, "sdk")) == NULL)
		return;
	if (!host_ok(d->sdk_hosts, d->nsdk_hosts, hc,
	    evhttp_find_header(evhttp_request_get_input_headers(req), "Host"))) {
		http_door_send_text(d, req, 400, "Bad Host");
		return;
	}
	sm_endpoint_handle(d->sdk, d, d->agent, req, &hc->caller);
}

/* [http] metrics_listen: /metrics, /ready and /ping for scrapers, no token, GET only. */
static void
on_metrics_request(struct evhttp_request *req, void *arg)
{
	struct http_door *d = arg;
	const char *path = request_path(req);

	d->stats.requests++;
	sock_requested(d, evhttp_request_get_connection(req));
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		http_door_send_text(d, req, 405, "Not allowed");
		return;
	}
	if (strcmp(path, "/metrics") != 0 && strcmp(path, "/ready") != 0 &&
	    strcmp(path, "/ping") != 0) {
		http_door_send_text(d, req, 404, "Not found");
		return;
	}
	http_api_handle(d, d->agent, req, path, NULL, d->cfg);
}

static struct evhttp *
make_http(struct http_door *d, void (*cb)(struct evhttp_request *, void *))
{
	struct evhttp *http = evhttp_new(d->agent->base);

	if (http == NULL)
		return NULL;
	evhttp_set_max_headers_size(http, (ev_ssize_t)d->cfg->http_max_header_size);
	evhttp_set_max_body_size(http, 0);
	evhttp_set_timeout(http, (int)d->cfg->http_idle_timeout);
	/* Every method reaches on_request, which answers 405 after the token check as the
	 * AWS agent does (evhttp's own 405 would come before it). */
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
	    EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(http, cb, d);
	evhttp_set_bevcb(http, make_bev, d);
	return http;
}

int
http_door_start(struct http_door *d, struct agent *agent, char *err, size_t errlen)
{
	d->agent = agent;
	if ((d->sweep = evtimer_new(agent->base, sweep, d)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (d->sdk != NULL && sm_endpoint_start(d->sdk, agent, err, errlen) != 0)
		return -1;
	for (size_t i = 0; i < d->nfds; i++) {
		struct evhttp **h = d->kind[i] == LISTEN_METRICS ? &d->metrics_http :
		    d->kind[i] == LISTEN_SDK ? &d->sdk_http : &d->http;

		if (*h == NULL && (*h = make_http(d, d->kind[i] == LISTEN_METRICS ?
		    on_metrics_request : d->kind[i] == LISTEN_SDK ? on_sdk_request :
		    on_request)) == NULL) {
			snprintf(err, errlen, "cannot create the HTTP server");
			return -1;
		}
		if (d->kind[i] == LISTEN_SDK)
			evhttp_set_max_body_size(*h, SM_ENDPOINT_MAX_BODY);
		if (evhttp_accept_socket_with_handle(*h, d->fds[i]) == NULL) {
			snprintf(err, errlen, "cannot serve HTTP on a listener");
			return -1;
		}
		d->fds[i] = -1;		/* evhttp owns it now */
	}
	for (size_t i = 0; i < agent->config->http_listen.count; i++)
		log_info("HTTP API (AWS Secrets Manager Agent compatible) on %s",
		    agent->config->http_listen.items[i]);
	if (d->unix_path != NULL)
		log_info("HTTP API on Unix socket %s", d->unix_path);
	if (agent->config->http_metrics_listen != NULL)
		log_info("metrics on %s", agent->config->http_metrics_listen);
	for (size_t i = 0; i < agent->config->endpoint_listen.count; i++)
		log_info("Secrets Manager API (for AWS SDKs) on %s",
		    agent->config->endpoint_listen.items[i]);
	return 0;
}

void
http_door_free(struct http_door *d)
{
	if (d == NULL)
		return;
	http_api_shutdown(d);
	sm_endpoint_shutdown(d->sdk);
	/* Frees every connection: conn_closed returns their per-uid entries. */
	if (d->http != NULL)
		evhttp_free(d->http);
	if (d->metrics_http != NULL)
		evhttp_free(d->metrics_http);
	if (d->sdk_http != NULL)
		evhttp_free(d->sdk_http);
	sm_endpoint_free(d->sdk);
	/* Every connection is freed now: our references are the last. */
	while (!TAILQ_EMPTY(&d->socks))
		sock_release(d, TAILQ_FIRST(&d->socks));
	if (d->sweep != NULL)
		event_free(d->sweep);
	table_destroy(&d->socks_by_bev);
	for (size_t i = 0; i < d->nfds; i++) {
		if (d->fds[i] >= 0)
			close(d->fds[i]);
	}
	if (d->unix_path != NULL) {
		unlink(d->unix_path);
		free(d->unix_path);
	}
	for (size_t i = 0; i < d->nheaders; i++)
		free(d->headers[i]);
	for (size_t i = 0; i < d->nhosts; i++)
		free(d->hosts[i]);
	for (size_t i = 0; i < d->nsdk_hosts; i++)
		free(d->sdk_hosts[i]);
	table_destroy(&d->conns);
	sodium_memzero(d->token_hash, sizeof(d->token_hash));
	free(d);
}

const struct http_door_stats *
http_door_get_stats(const struct http_door *d)
{
	return &d->stats;
}
