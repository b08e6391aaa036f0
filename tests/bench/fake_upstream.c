/*
 * fake_upstream: a fast Secrets Manager stand-in for filling the agent's cache
 * in `make bench`'s memory curve (100,000 fetches through the aws backend in
 * seconds, where a Python server managed ~330 a second on the loaded bench
 * machine). Single-threaded epoll HTTP/1.1 with keep-alive on 127.0.0.1.
 *
 * It answers POST / with X-Amz-Target secretsmanager.GetSecretValue or
 * .DescribeSecret for any SecretId: the name is the id, the value a
 * deterministic string of -l bytes beginning with the name, one AWSCURRENT
 * version whose id is derived from the name. Signatures are not checked
 * (bench only). Anything else gets a 400 JSON error. Requests are parsed with
 * bounds: headers must fit the read buffer, the body its Content-Length.
 *
 *   fake_upstream -p PORTFILE [-l VALUE_LEN]
 * Binds an ephemeral port and writes its number to PORTFILE; runs until
 * SIGTERM. Prints the count of requests answered by operation on exit.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#define BUF_CAP		(64u * 1024u)
#define MAX_VALUE	65536
#define MAX_EVENTS	64
#define MAX_ID		2048

struct fconn {
	int fd;
	size_t in_len;
	char in[BUF_CAP];
	char *out;
	size_t out_len, out_off, out_cap;
};

static volatile sig_atomic_t stopping;
static char *value_tail;
static size_t value_len = 1024;
static unsigned long n_get, n_describe, n_other;

static void
on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

/* Finds a header's value in head[0..len) (case-insensitive name); NULL if absent. */
static const char *
header(const char *head, size_t len, const char *name, size_t *vlen)
{
	size_t nlen = strlen(name);
	const char *p = head, *end = head + len;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t l = eol != NULL ? (size_t)(eol - p) : (size_t)(end - p);

		if (l > nlen + 1 && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
			const char *v = p + nlen + 1;

			while (v < p + l && *v == ' ')
				v++;
			*vlen = (size_t)(p + l - v);
			if (*vlen > 0 && v[*vlen - 1] == '\r')
				(*vlen)--;
			return v;
		}
		if (eol == NULL)
			break;
		p = eol + 1;
	}
	return NULL;
}

/* The SecretId string of a JSON body (no escapes expected from the agent). */
static int
secret_id(const char *body, size_t len, char *id, size_t cap)
{
	static const char key[] = "\"SecretId\"";
	const char *p = memmem(body, len, key, sizeof(key) - 1), *end = body + len, *q;

	if (p == NULL)
		return -1;
	p += sizeof(key) - 1;
	while (p < end && (*p == ' ' || *p == ':'))
		p++;
	if (p >= end || *p != '"')
		return -1;
	p++;
	q = memchr(p, '"', (size_t)(end - p));
	if (q == NULL || (size_t)(q - p) >= cap || memchr(p, '\\', (size_t)(q - p)) != NULL)
		return -1;
	memcpy(id, p, (size_t)(q - p));
	id[q - p] = '\0';
	/* An ARN: the name follows "secret:" (the bench uses names). */
	if ((q = strstr(id, ":secret:")) != NULL)
		memmove(id, q + 8, strlen(q + 8) + 1);
	return 0;
}

static int
out_reserve(struct fconn *c, size_t more)
{
	size_t cap;
	char *nb;

	if (c->out_len + more <= c->out_cap)
		return 0;
	cap = (c->out_len + more) * 2;
	if ((nb = realloc(c->out, cap)) == NULL)
		return -1;
	c->out = nb;
	c->out_cap = cap;
	return 0;
}

static int
respond(struct fconn *c, const char *target, size_t tlen, const char *body, size_t blen)
{
	char id[MAX_ID], vid[64], hdr[256];
	size_t idlen, room = MAX_VALUE + 2 * MAX_ID + 512;
	unsigned long hash = 5381;
	char *json;
	int n, h, rc = -1;

	if ((json = malloc(room)) == NULL)
		return -1;
	if (secret_id(body, blen, id, sizeof(id)) != 0) {
		n = snprintf(json, room, "{\"__type\":\"InvalidRequestException\","
		    "\"Message\":\"fake upstream: no SecretId\"}");
		h = 400;
		n_other++;
	} else {
		idlen = strlen(id);
		for (size_t i = 0; i < idlen; i++)
			hash = hash * 33 + (unsigned char)id[i];
		snprintf(vid, sizeof(vid), "%08lx-0000-4000-8000-%012lx", hash & 0xffffffffUL,
		    (hash >> 8) & 0xffffffffffffUL);
		h = 200;
		if (tlen >= 14 && memcmp(target + tlen - 14, "GetSecretValue", 14) == 0) {
			/* The value: the name, then the fixed tail, cut to value_len. */
			size_t head = idlen < value_len ? idlen : value_len;

			n = snprintf(json, room, "{\"ARN\":\"arn:aws:secretsmanager:us-east-1:"
			    "123456789012:secret:%s-AbCdEf\",\"Name\":\"%s\",\"VersionId\":\"%s\","
			    "\"SecretString\":\"%.*s%.*s\",\"VersionStages\":[\"AWSCURRENT\"],"
			    "\"CreatedDate\":1700000000.0}", id, id, vid, (int)head, id,
			    (int)(value_len - head), value_tail);
			n_get++;
		} else if (tlen >= 14 && memcmp(target + tlen - 14, "DescribeSecret", 14) == 0) {
			n = snprintf(json, room, "{\"ARN\":\"arn:aws:secretsmanager:us-east-1:"
			    "123456789012:secret:%s-AbCdEf\",\"Name\":\"%s\","
			    "\"VersionIdsToStages\":{\"%s\":[\"AWSCURRENT\"]}}", id, id, vid);
			n_describe++;
		} else {
			n = snprintf(json, room, "{\"__type\":\"InvalidRequestException\","
			    "\"Message\":\"fake upstream: unsupported operation\"}");
			h = 400;
			n_other++;
		}
	}
	if (n < 0 || (size_t)n >= room)
		goto out;
	h = snprintf(hdr, sizeof(hdr), "HTTP/1.1 %d %s\r\nContent-Type: application/x-amz-json-1.1"
	    "\r\nContent-Length: %d\r\n\r\n", h, h == 200 ? "OK" : "Bad Request", n);
	if (h < 0 || (size_t)h >= sizeof(hdr) || out_reserve(c, (size_t)h + (size_t)n) != 0)
		goto out;
	memcpy(c->out + c->out_len, hdr, (size_t)h);
	memcpy(c->out + c->out_len + (size_t)h, json, (size_t)n);
	c->out_len += (size_t)h + (size_t)n;
	rc = 0;
out:
	free(json);
	return rc;
}

/* Answers every complete request in the buffer; -1 to drop the connection. */
static int
serve(struct fconn *c)
{
	size_t off = 0;

	for (;;) {
		char *hend = memmem(c->in + off, c->in_len - off, "\r\n\r\n", 4);
		const char *cl, *tg;
		size_t hlen, cllen, tlen, blen;

		if (hend == NULL)
			break;
		hlen = (size_t)(hend - (c->in + off)) + 4;
		cl = header(c->in + off, hlen, "Content-Length", &cllen);
		tg = header(c->in + off, hlen, "X-Amz-Target", &tlen);
		blen = cl != NULL ? strtoul(cl, NULL, 10) : 0;
		if (tg == NULL || blen > BUF_CAP)
			return -1;
		if (c->in_len - off - hlen < blen)
			break;
		if (respond(c, tg, tlen, c->in + off + hlen, blen) != 0)
			return -1;
		off += hlen + blen;
	}
	if (off == 0 && c->in_len == BUF_CAP)
		return -1;	/* a request larger than the buffer */
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return 0;
}

static int
flush(struct fconn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
	}
	c->out_off = c->out_len = 0;
	return 0;
}

static void
drop(int ep, struct fconn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->out);
	free(c);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t slen = sizeof(sa);
	struct epoll_event ev, events[MAX_EVENTS];
	const char *portfile = NULL;
	FILE *pf;
	int lfd, ep, ch, one = 1;

	while ((ch = getopt(argc, argv, "p:l:")) != -1) {
		if (ch == 'p')
			portfile = optarg;
		else if (ch == 'l')
			value_len = strtoul(optarg, NULL, 10);
		else
			return 2;
	}
	if (portfile == NULL || value_len == 0 || value_len > MAX_VALUE) {
		fprintf(stderr, "usage: fake_upstream -p PORTFILE [-l VALUE_LEN (1..65536)]\n");
		return 2;
	}
	if ((value_tail = malloc(value_len + 1)) == NULL)
		return 1;
	for (size_t i = 0; i < value_len; i++)
		value_tail[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[(i * 7 + i / 36) % 36];
	value_tail[value_len] = '\0';
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 512) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &slen) != 0 ||
	    (ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		perror("fake_upstream: listen");
		return 1;
	}
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	if ((pf = fopen(portfile, "w")) == NULL) {
		perror(portfile);
		return 1;
	}
	fprintf(pf, "%u\n", ntohs(sa.sin_port));
	fclose(pf);
	while (!stopping) {
		int n = epoll_wait(ep, events, MAX_EVENTS, 200);

		for (int i = 0; i < n; i++) {
			struct fconn *c = events[i].data.ptr;
			ssize_t r;

			if (c == NULL) {
				int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

				if (fd < 0)
					continue;
				if ((c = calloc(1, sizeof(*c))) == NULL) {
					close(fd);
					continue;
				}
				c->fd = fd;
				ev.events = EPOLLIN;
				ev.data.ptr = c;
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				continue;
			}
			r = read(c->fd, c->in + c->in_len, BUF_CAP - c->in_len);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0) {
				drop(ep, c);
				continue;
			}
			c->in_len += (size_t)r;
			/* Replies are small: a blocking-style flush loop is enough here. */
			if (serve(c) != 0 || flush(c) != 0 || c->out_len > 0) {
				if (c->out_len > 0) {
					ev.events = EPOLLIN;
					ev.data.ptr = c;
					while (c->out_len > 0 && flush(c) == 0)
						;
					if (c->out_len == 0)
						continue;
				}
				drop(ep, c);
			}
		}
	}
	printf("{\"GetSecretValue\": %lu, \"DescribeSecret\": %lu, \"other\": %lu}\n", n_get,
	    n_describe, n_other);
	free(value_tail);
	return 0;
}
