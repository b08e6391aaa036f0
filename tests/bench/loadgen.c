/*
 * loadgen: closed-loop, pipelining load generator for the smcache protocol
 * over a Unix socket (used by run_bench.py against smcached and against
 * echo_server, the physical limit).
 *
 * It speaks the wire codec directly (proto/message.h), not libsmcache,
 * because the library sends one request and waits: here every connection
 * keeps `depth` GET requests outstanding. A few threads (one per core by
 * default) each drive their share of the connections with epoll, sending a
 * batch of requests in one write after each read.
 *
 * Every reply is checked: frame and message well formed (proto_reply_decode),
 * a GET reply with status OK, a request id that is outstanding on that
 * connection, and the expected value length. Latency (request written ->
 * reply parsed) of good replies goes into a log-linear histogram (under 1%
 * bucket error); wrong replies are counted as errors, not as throughput.
 * The result is one JSON line on stdout; the exit status is 1 when any reply
 * was wrong or missing, 2 on a usage or setup error.
 *
 * Spread access (-f FILE, one secret id a line): each connection cycles over
 * the list (its own starting point), so a pipelined batch of d requests asks
 * for d consecutive, distinct ids; every reply is still checked.
 *
 * Redis mode (-R): the same closed loop against redis-server's Unix socket,
 * sending RESP `GET key` (the ids are the keys) and checking that every reply
 * is a bulk string of the expected length. RESP has no request id, so replies
 * are matched to requests in order (redis answers a connection in order).
 * Same threads, same batching, same histogram: the comparison with the agent
 * measures the servers, not two different clients.
 *
 *   loadgen -s SOCKET (-i SECRET_ID | -f ID_FILE) [-R] [-c CONNS] [-d DEPTH]
 *           [-t SECONDS | -n REQUESTS] [-w WARMUP_SECONDS] [-T THREADS]
 *           [-l EXPECTED_VALUE_LEN]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "message.h"
#include "wire.h"

/* Histogram: values under 2*SUB are exact, then SUB buckets per power of two. */
#define HIST_SUB_BITS	7
#define HIST_SUB	(1u << HIST_SUB_BITS)
#define HIST_BUCKETS	((64 - HIST_SUB_BITS) * HIST_SUB + HIST_SUB)

#define IN_CAP		(256u * 1024u)	/* more than depth x largest expected reply */
#define MAX_EVENTS	64
#define MAX_CONNS	4096
#define MAX_DEPTH	1024
#define MAX_THREADS	64
#define DRAIN_NS	(3ull * 1000000000ull)	/* wait this long for the last replies */
#define ERRORS_SHOWN	5
#define MAX_IDS		100000

struct slot {
	uint64_t sent_ns;
	uint32_t id;
	bool busy;
};

struct lconn {
	int fd;
	bool dead;
	bool want_out;			/* EPOLLOUT registered */
	uint32_t seq;			/* high bits of the next request id */
	unsigned cursor;		/* next index into the id list */
	uint32_t *order;		/* redis: slots in the order sent (a ring) */
	unsigned order_head, order_len;
	unsigned outstanding;
	struct slot *slots;
	uint32_t *free_slots;		/* stack of idle slot indexes */
	unsigned nfree;
	uint8_t *in;
	size_t in_len;
	uint8_t *out;
	size_t out_len, out_off, out_cap;
};

struct worker {
	pthread_t thread;
	int epfd;
	struct lconn *conns;
	unsigned nconns;
	uint64_t quota;			/* measured replies to stop at; 0: none */
	/* results */
	uint64_t *hist;
	uint64_t measured;		/* replies received inside the window */
	uint64_t sent, received;
	uint64_t errors;
	uint64_t max_ns, sum_ns;
	uint64_t stop_ns;		/* when this worker stopped sending */
	size_t reply_frame_len;		/* length of the first good reply frame */
};

struct options {
	const char *socket_path;
	const char *secret_id;
	const char *id_file;
	bool redis;
	unsigned conns, depth, threads;
	double duration_s, warmup_s;
	uint64_t requests;
	long expect_len;		/* -1: not checked */
};

/* Shared, read-only once the workers start. */
static struct options opt;
static uint8_t **req_templates;	/* one encoded request per id */
static size_t *req_lens;
static size_t req_max;			/* the longest of them */
static unsigned nids;
static unsigned slot_bits;
static uint64_t t_start, t_warm_end, t_end;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned errors_shown;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static unsigned
hist_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < 2 * HIST_SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - HIST_SUB_BITS;
	return shift * HIST_SUB + (unsigned)(v >> shift);
}

/* The middle of a bucket's range, as its representative value. */
static double
hist_value(unsigned i)
{
	unsigned shift;

	if (i < 2 * HIST_SUB)
		return (double)i;
	shift = i / HIST_SUB - 1;
	return ((double)(i - shift * HIST_SUB) + 0.5) * (double)(1ull << shift);
}

static double
hist_quantile(const uint64_t *hist, uint64_t total, double q)
{
	uint64_t want = (uint64_t)ceil(q * (double)total), seen = 0;

	if (total == 0)
		return 0.0;
	if (want == 0)
		want = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += hist[i];
		if (seen >= want)
			return hist_value(i);
	}
	return hist_value(HIST_BUCKETS - 1);
}

static void
report_error(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
report_error(struct worker *w, const char *fmt, ...)
{
	va_list ap;

	w->errors++;
	pthread_mutex_lock(&err_lock);
	if (errors_shown < ERRORS_SHOWN) {
		errors_shown++;
		fputs("loadgen: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	pthread_mutex_unlock(&err_lock);
}

static void
conn_kill(struct worker *w, struct lconn *c, const char *why)
{
	if (c->dead)
		return;
	if (c->outstanding > 0)
		report_error(w, "connection lost with %u requests outstanding: %s",
		    c->outstanding, why);
	else
		report_error(w, "connection lost: %s", why);
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->dead = true;
	c->outstanding = 0;
}

static void
conn_want_out(struct worker *w, struct lconn *c, bool on)
{
	struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0u), .data.ptr = c };

	if (on == c->want_out)
		return;
	if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->want_out = on;
}

static void
conn_flush(struct worker *w, struct lconn *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			conn_want_out(w, c, true);
			return;
		}
		conn_kill(w, c, n < 0 ? strerror(errno) : "send returned 0");
		return;
	}
	c->out_off = c->out_len = 0;
	conn_want_out(w, c, false);
}

/* Queues requests into every idle slot (the caller flushes). */
static void
conn_fill(struct worker *w, struct lconn *c, uint64_t now)
{
	while (c->nfree > 0) {
		uint32_t idx = c->free_slots[--c->nfree];
		struct slot *s = &c->slots[idx];
		unsigned k = c->cursor;
		size_t req_len = req_lens[k];
		uint8_t *p;

		if (c->out_len + req_len > c->out_cap) {
			size_t cap = (c->out_len + req_len) * 2;
			uint8_t *nb = realloc(c->out, cap);

			if (nb == NULL) {
				c->free_slots[c->nfree++] = idx;
				report_error(w, "out of memory");
				return;
			}
			c->out = nb;
			c->out_cap = cap;
		}
		s->id = (c->seq++ << slot_bits) | idx;
		s->sent_ns = now;
		s->busy = true;
		p = c->out + c->out_len;
		memcpy(p, req_templates[k], req_len);
		/* The request id sits after the prefix, version, op and flags. */
		if (!opt.redis)
			proto_store_u32(p + PROTO_FRAME_PREFIX_LEN + 4, s->id);
		else
			c->order[(c->order_head + c->order_len++) % opt.depth] = idx;
		c->cursor = k + 1 < nids ? k + 1 : 0;
		c->out_len += req_len;
		c->outstanding++;
		w->sent++;
	}
}

static void
record(struct worker *w, uint64_t lat, uint64_t now)
{
	if (now < t_warm_end || now >= w->stop_ns)
		return;
	w->hist[hist_index(lat)]++;
	w->measured++;
	w->sum_ns += lat;
	if (lat > w->max_ns)
		w->max_ns = lat;
}

/* Checks one reply; frees its slot. */
static void
handle_reply(struct worker *w, struct lconn *c, const uint8_t *body, size_t len, uint64_t now)
{
	struct proto_decode_error derr;
	struct proto_reply reply;
	struct slot *s;
	uint32_t idx;
	size_t vlen;
	bool ok = false;

	if (proto_reply_decode(body, len, &reply, &derr) != 0) {
		report_error(w, "malformed reply (%s): %s", proto_status_name(derr.status),
		    derr.message);
		/* Its id may still be readable; without it the slot is lost. */
		if (len < PROTO_HEADER_LEN)
			return;
		reply.header.request_id = proto_load_u32(body + 4);
		goto release;
	}
	if (reply.header.status != PROTO_STATUS_OK) {
		report_error(w, "reply status %s: %.*s", proto_status_name(reply.header.status),
		    (int)reply.message.len, reply.message.ptr != NULL ? reply.message.ptr : "");
	} else if (reply.header.op != (PROTO_OP_GET | PROTO_OP_REPLY)) {
		report_error(w, "reply op 0x%02x, expected a GET reply", reply.header.op);
	} else {
		vlen = reply.secret_string != NULL ? reply.secret_string_len :
		    reply.secret_binary != NULL ? reply.secret_binary_len : 0;
		if (reply.secret_string == NULL && reply.secret_binary == NULL)
			report_error(w, "GET reply without a value");
		else if (opt.expect_len >= 0 && vlen != (size_t)opt.expect_len)
			report_error(w, "value of %zu bytes, expected %ld", vlen, opt.expect_len);
		else
			ok = true;
		if (ok && w->reply_frame_len == 0)
			w->reply_frame_len = len + PROTO_FRAME_PREFIX_LEN;
	}
release:
	idx = reply.header.request_id & ((1u << slot_bits) - 1u);
	if (idx >= opt.depth || !c->slots[idx].busy || c->slots[idx].id != reply.header.request_id) {
		report_error(w, "reply with request id %" PRIu32 ", which is not outstanding",
		    reply.header.request_id);
		return;
	}
	s = &c->slots[idx];
	s->busy = false;
	c->free_slots[c->nfree++] = idx;
	c->outstanding--;
	w->received++;
	/* Only good replies count: an agent answering errors fast is not fast. */
	if (ok)
		record(w, now - s->sent_ns, now);
}

/*
 * Redis mode: parses one RESP reply at p[0..len). Returns the bytes it takes,
 * 0 when more are needed, or -1 when the stream cannot be parsed (the
 * connection is then dropped). *vlen is the bulk length, -1 for nil, -2 for an
 * error or another type.
 */
static long
redis_parse(const uint8_t *p, size_t len, long *vlen)
{
	const uint8_t *nl = memchr(p, '\n', len);
	size_t head;
	long n = 0;

	if (nl == NULL)
		return len > 64 ? -1 : 0;
	head = (size_t)(nl - p) + 1;
	if (head < 3 || p[head - 2] != '\r')
		return -1;
	if (p[0] != '$') {
		*vlen = -2;
		return (long)head;
	}
	if (head == 5 && p[1] == '-' && p[2] == '1') {
		*vlen = -1;
		return (long)head;
	}
	for (size_t i = 1; i < head - 2; i++) {
		if (p[i] < '0' || p[i] > '9' || n > (long)IN_CAP)
			return -1;
		n = n * 10 + (p[i] - '0');
	}
	if (n > (long)(IN_CAP - 64))
		return -1;
	if (len < head + (size_t)n + 2)
		return 0;
	if (p[head + (size_t)n] != '\r' || p[head + (size_t)n + 1] != '\n')
		return -1;
	*vlen = n;
	return (long)(head + (size_t)n + 2);
}

/* Redis mode: checks one reply against the oldest outstanding request. */
static void
handle_redis_reply(struct worker *w, struct lconn *c, long vlen, size_t frame, uint64_t now)
{
	struct slot *s;
	uint32_t idx;
	bool ok = false;

	if (c->order_len == 0) {
		report_error(w, "redis reply with no request outstanding");
		return;
	}
	idx = c->order[c->order_head];
	c->order_head = (c->order_head + 1) % opt.depth;
	c->order_len--;
	if (vlen == -1)
		report_error(w, "redis: nil reply (key missing)");
	else if (vlen < 0)
		report_error(w, "redis: reply is not a bulk string");
	else if (opt.expect_len >= 0 && vlen != opt.expect_len)
		report_error(w, "redis: value of %ld bytes, expected %ld", vlen, opt.expect_len);
	else
		ok = true;
	if (ok && w->reply_frame_len == 0)
		w->reply_frame_len = frame;
	s = &c->slots[idx];
	s->busy = false;
	c->free_slots[c->nfree++] = idx;
	c->outstanding--;
	w->received++;
	if (ok)
		record(w, now - s->sent_ns, now);
}

static void
conn_readable(struct worker *w, struct lconn *c, bool sending)
{
	size_t off = 0, body_len;
	ssize_t n;
	uint64_t now;

	for (;;) {
		n = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
		if (n > 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		conn_kill(w, c, n < 0 ? strerror(errno) : "closed by the server");
		return;
	}
	now = now_ns();
	c->in_len += (size_t)n;
	while (opt.redis && off < c->in_len) {
		long vlen = -2;
		long took = redis_parse(c->in + off, c->in_len - off, &vlen);

		if (took < 0) {
			conn_kill(w, c, "unparsable redis reply");
			return;
		}
		if (took == 0)
			break;
		handle_redis_reply(w, c, vlen, (size_t)took, now);
		off += (size_t)took;
	}
	while (!opt.redis && c->in_len - off >= PROTO_FRAME_PREFIX_LEN) {
		enum proto_frame_state st = proto_frame_check(c->in + off, c->in_len - off,
		    IN_CAP - PROTO_FRAME_PREFIX_LEN, &body_len);

		if (st == PROTO_FRAME_NEED_MORE)
			break;
		if (st != PROTO_FRAME_READY) {
			conn_kill(w, c, "bad frame length from the server");
			return;
		}
		handle_reply(w, c, c->in + off + PROTO_FRAME_PREFIX_LEN, body_len, now);
		off += PROTO_FRAME_PREFIX_LEN + body_len;
	}
	if (off > 0) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	if (sending)
		conn_fill(w, c, now);
	conn_flush(w, c);
}

static bool
worker_idle(const struct worker *w)
{
	for (unsigned i = 0; i < w->nconns; i++)
		if (!w->conns[i].dead && w->conns[i].outstanding > 0)
			return false;
	return true;
}

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	struct epoll_event events[MAX_EVENTS];
	uint64_t now = now_ns(), drain_end = 0;
	bool sending = true;
	int n;

	w->stop_ns = t_end;
	for (unsigned i = 0; i < w->nconns; i++) {
		conn_fill(w, &w->conns[i], now);
		conn_flush(w, &w->conns[i]);
	}
	for (;;) {
		n = epoll_wait(w->epfd, events, MAX_EVENTS, 20);
		if (n < 0 && errno != EINTR) {
			report_error(w, "epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			struct lconn *c = events[i].data.ptr;

			if (c->dead)
				continue;
			if (events[i].events & EPOLLOUT)
				conn_flush(w, c);
			if (!c->dead && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				conn_readable(w, c, sending);
		}
		now = now_ns();
		if (sending && (now >= t_end || (w->quota > 0 && w->measured >= w->quota))) {
			sending = false;
			if (now < w->stop_ns)
				w->stop_ns = now;
			drain_end = now + DRAIN_NS;
		}
		if (!sending && worker_idle(w))
			break;
		if (!sending && now >= drain_end) {
			for (unsigned i = 0; i < w->nconns; i++)
				if (!w->conns[i].dead && w->conns[i].outstanding > 0)
					conn_kill(w, &w->conns[i], "no reply within the drain time");
			break;
		}
	}
	return NULL;
}

static int
connect_one(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: loadgen -s SOCKET (-i SECRET_ID | -f ID_FILE) [-R] [-c CONNS] [-d DEPTH]\n"
	    "               [-t SECONDS | -n REQUESTS] [-w WARMUP_SECONDS] [-T THREADS]\n"
	    "               [-l EXPECTED_VALUE_LEN]\n");
	exit(2);
}

static unsigned long
parse_ulong(const char *s, unsigned long min, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		usage();
	return v;
}

static double
parse_seconds(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end != '\0' || !(v >= 0.0) || v > 3600.0)
		usage();
	return v;
}

static void
parse_options(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "secret", required_argument, NULL, 'i' },
		{ "connections", required_argument, NULL, 'c' },
		{ "depth", required_argument, NULL, 'd' },
		{ "duration", required_argument, NULL, 't' },
		{ "requests", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "threads", required_argument, NULL, 'T' },
		{ "expect-len", required_argument, NULL, 'l' },
		{ "id-file", required_argument, NULL, 'f' },
		{ "redis", no_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int ch;

	opt.conns = 1;
	opt.depth = 1;
	opt.duration_s = 2.0;
	opt.warmup_s = 0.5;
	opt.expect_len = -1;
	while ((ch = getopt_long(argc, argv, "s:i:f:Rc:d:t:n:w:T:l:", longopts, NULL)) != -1) {
		switch (ch) {
		case 's': opt.socket_path = optarg; break;
		case 'i': opt.secret_id = optarg; break;
		case 'f': opt.id_file = optarg; break;
		case 'R': opt.redis = true; break;
		case 'c': opt.conns = (unsigned)parse_ulong(optarg, 1, MAX_CONNS); break;
		case 'd': opt.depth = (unsigned)parse_ulong(optarg, 1, MAX_DEPTH); break;
		case 't': opt.duration_s = parse_seconds(optarg); break;
		case 'n': opt.requests = parse_ulong(optarg, 1, ULONG_MAX); break;
		case 'w': opt.warmup_s = parse_seconds(optarg); break;
		case 'T': opt.threads = (unsigned)parse_ulong(optarg, 1, MAX_THREADS); break;
		case 'l': opt.expect_len = (long)parse_ulong(optarg, 0, PROTO_MAX_VALUE); break;
		default: usage();
		}
	}
	if (optind != argc || opt.socket_path == NULL ||
	    (opt.secret_id == NULL) == (opt.id_file == NULL))
		usage();
	/* With a request count, the duration is only a safety limit. */
	if (opt.requests > 0)
		opt.duration_s = 3600.0;
	else if (opt.duration_s <= 0.0)
		usage();
	if (opt.threads == 0)
		opt.threads = ncpu > 0 && ncpu < MAX_THREADS ? (unsigned)ncpu : 1;
	if (opt.threads > opt.conns)
		opt.threads = opt.conns;
}

/* Encodes one request for id into *out (malloc'd). */
static int
encode_request(const char *id, uint8_t **out, size_t *len)
{
	struct proto_request req;
	struct proto_writer w;
	size_t idlen = strlen(id);
	size_t cap = PROTO_FRAME_PREFIX_LEN + PROTO_HEADER_LEN + PROTO_FIELD_HEADER_LEN + idlen + 64;
	int n;

	if (idlen == 0 || idlen > PROTO_MAX_SECRET_ID)
		return -1;
	if ((*out = malloc(cap)) == NULL)
		return -1;
	if (opt.redis) {
		n = snprintf((char *)*out, cap, "*2\r\n$3\r\nGET\r\n$%zu\r\n%s\r\n", idlen, id);
		if (n < 0 || (size_t)n >= cap)
			return -1;
		*len = (size_t)n;
		return 0;
	}
	memset(&req, 0, sizeof(req));
	req.header.version = PROTO_VERSION;
	req.header.op = PROTO_OP_GET;
	req.secret_id.ptr = id;
	req.secret_id.len = idlen;
	proto_writer_init(&w, *out, cap);
	return proto_request_encode(&w, &req, len);
}

/* One request per id: -i's single id, or every line of -f's file. */
static int
build_templates(void)
{
	char line[PROTO_MAX_SECRET_ID + 2];
	FILE *f = NULL;
	int rc = -1;

	if ((req_templates = calloc(MAX_IDS, sizeof(*req_templates))) == NULL ||
	    (req_lens = calloc(MAX_IDS, sizeof(*req_lens))) == NULL)
		goto out;
	if (opt.id_file == NULL) {
		if (encode_request(opt.secret_id, &req_templates[0], &req_lens[0]) != 0)
			goto out;
		nids = 1;
	} else {
		if ((f = fopen(opt.id_file, "r")) == NULL) {
			fprintf(stderr, "loadgen: %s: %s\n", opt.id_file, strerror(errno));
			goto out;
		}
		while (fgets(line, sizeof(line), f) != NULL) {
			size_t n = strcspn(line, "\r\n");

			if (line[n] == '\0' && !feof(f))
				goto out;	/* an id longer than the protocol allows */
			line[n] = '\0';
			if (n == 0)
				continue;
			if (nids == MAX_IDS ||
			    encode_request(line, &req_templates[nids], &req_lens[nids]) != 0)
				goto out;
			nids++;
		}
		if (nids == 0)
			goto out;
	}
	for (unsigned i = 0; i < nids; i++)
		if (req_lens[i] > req_max)
			req_max = req_lens[i];
	rc = 0;
out:
	if (f != NULL)
		fclose(f);
	return rc;
}

static void
print_result(struct worker *workers, unsigned nworkers, uint64_t *hist)
{
	uint64_t measured = 0, sent = 0, received = 0, errors = 0, max_ns = 0, sum_ns = 0;
	uint64_t stop = 0;
	size_t frame_len = 0;
	double window;

	for (unsigned t = 0; t < nworkers; t++) {
		struct worker *w = &workers[t];

		for (unsigned i = 0; i < HIST_BUCKETS; i++)
			hist[i] += w->hist[i];
		measured += w->measured;
		sent += w->sent;
		received += w->received;
		errors += w->errors;
		sum_ns += w->sum_ns;
		if (w->max_ns > max_ns)
			max_ns = w->max_ns;
		if (w->stop_ns > stop)
			stop = w->stop_ns;
		if (frame_len == 0)
			frame_len = w->reply_frame_len;
	}
	window = stop > t_warm_end ? (double)(stop - t_warm_end) / 1e9 : 0.0;
	printf("{\"connections\": %u, \"depth\": %u, \"threads\": %u, \"window_s\": %.3f, "
	    "\"requests\": %" PRIu64 ", \"rps\": %.0f, \"mean_us\": %.2f, \"p50_us\": %.2f, "
	    "\"p90_us\": %.2f, \"p99_us\": %.2f, \"p999_us\": %.2f, \"max_us\": %.2f, "
	    "\"sent\": %" PRIu64 ", \"received\": %" PRIu64 ", \"errors\": %" PRIu64 ", "
	    "\"reply_frame_bytes\": %zu}\n",
	    opt.conns, opt.depth, nworkers, window, measured,
	    window > 0 ? (double)measured / window : 0.0,
	    measured > 0 ? (double)sum_ns / (double)measured / 1e3 : 0.0,
	    hist_quantile(hist, measured, 0.50) / 1e3, hist_quantile(hist, measured, 0.90) / 1e3,
	    hist_quantile(hist, measured, 0.99) / 1e3, hist_quantile(hist, measured, 0.999) / 1e3,
	    (double)max_ns / 1e3, sent, received, errors, frame_len);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	struct worker *workers = NULL;
	struct lconn *conns = NULL;
	uint64_t *hist = NULL, errors = 0;
	unsigned next = 0;
	int rc = 2;

	parse_options(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	while ((1u << slot_bits) < opt.depth)
		slot_bits++;
	if (build_templates() != 0) {
		fprintf(stderr, "loadgen: cannot encode a GET for every secret id\n");
		return 2;
	}
	workers = calloc(opt.threads, sizeof(*workers));
	conns = calloc(opt.conns, sizeof(*conns));
	hist = calloc(HIST_BUCKETS, sizeof(*hist));
	if (workers == NULL || conns == NULL || hist == NULL)
		goto oom;
	for (unsigned t = 0; t < opt.threads; t++)
		workers[t].epfd = -1;
	for (unsigned i = 0; i < opt.conns; i++)
		conns[i].fd = -1;
	for (unsigned i = 0; i < opt.conns; i++) {
		struct lconn *c = &conns[i];

		c->slots = calloc(opt.depth, sizeof(*c->slots));
		c->free_slots = calloc(opt.depth, sizeof(*c->free_slots));
		c->in = malloc(IN_CAP);
		c->out_cap = req_max * opt.depth;
		c->out = malloc(c->out_cap);
		c->order = calloc(opt.depth, sizeof(*c->order));
		/* Connections start far apart in the id list (a prime stride). */
		c->cursor = (unsigned)(((uint64_t)i * opt.depth * 7919u) % nids);
		if (c->slots == NULL || c->free_slots == NULL || c->in == NULL || c->out == NULL ||
		    c->order == NULL)
			goto oom;
		for (unsigned k = 0; k < opt.depth; k++)
			c->free_slots[c->nfree++] = opt.depth - 1 - k;
	}
	for (unsigned i = 0; i < opt.conns; i++) {
		struct lconn *c = &conns[i];

		if ((c->fd = connect_one(opt.socket_path)) < 0) {
			fprintf(stderr, "loadgen: connect %s: %s\n", opt.socket_path, strerror(errno));
			goto out;
		}
	}
	/* Connections are split as evenly as possible, in contiguous runs. */
	for (unsigned t = 0; t < opt.threads; t++) {
		struct worker *w = &workers[t];
		unsigned share = opt.conns / opt.threads + (t < opt.conns % opt.threads ? 1 : 0);

		w->conns = &conns[next];
		w->nconns = share;
		next += share;
		if (opt.requests > 0)
			w->quota = (opt.requests * share + opt.conns - 1) / opt.conns;
		if ((w->hist = calloc(HIST_BUCKETS, sizeof(*w->hist))) == NULL)
			goto oom;
		if ((w->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
			fprintf(stderr, "loadgen: epoll_create1: %s\n", strerror(errno));
			goto out;
		}
		for (unsigned i = 0; i < share; i++) {
			struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &w->conns[i] };

			if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->conns[i].fd, &ev) != 0) {
				fprintf(stderr, "loadgen: epoll_ctl: %s\n", strerror(errno));
				goto out;
			}
		}
	}
	t_start = now_ns();
	t_warm_end = t_start + (uint64_t)(opt.warmup_s * 1e9);
	t_end = t_warm_end + (uint64_t)(opt.duration_s * 1e9);
	for (unsigned t = 0; t < opt.threads; t++) {
		if (pthread_create(&workers[t].thread, NULL, worker_run, &workers[t]) != 0) {
			fprintf(stderr, "loadgen: pthread_create failed\n");
			/* Threads already started finish on their own deadline. */
			for (unsigned k = 0; k < t; k++)
				pthread_join(workers[k].thread, NULL);
			goto out;
		}
	}
	for (unsigned t = 0; t < opt.threads; t++)
		pthread_join(workers[t].thread, NULL);
	print_result(workers, opt.threads, hist);
	for (unsigned t = 0; t < opt.threads; t++)
		errors += workers[t].errors;
	rc = errors > 0 ? 1 : 0;
	goto out;
oom:
	fprintf(stderr, "loadgen: out of memory\n");
out:
	for (unsigned i = 0; conns != NULL && i < opt.conns; i++) {
		if (conns[i].fd >= 0)
			close(conns[i].fd);
		free(conns[i].slots);
		free(conns[i].free_slots);
		free(conns[i].in);
		free(conns[i].out);
		free(conns[i].order);
	}
	for (unsigned t = 0; workers != NULL && t < opt.threads; t++) {
		free(workers[t].hist);
		if (workers[t].epfd >= 0)
			close(workers[t].epfd);
	}
	free(workers);
	free(conns);
	free(hist);
	for (unsigned i = 0; req_templates != NULL && i < nids; i++)
		free(req_templates[i]);
	free(req_templates);
	free(req_lens);
	return rc;
}
