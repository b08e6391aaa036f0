/*
 * audit: formats and writes access-decision lines (see audit.h). One
 * write(2) per line, so lines from concurrent writers of the same file
 * (O_APPEND) or of stderr never interleave mid-line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "log.h"
#include "message.h"

#define AUDIT_LINE_MAX	4096
#define SHOWN_ID_MAX	512	/* bytes of an id shown; longer ones end with "..." */

struct audit {
	enum audit_level level;
	int fd;
	bool own_fd;
};

static const char *const level_names[] = { "off", "denied", "all" };

const char *
audit_level_name(enum audit_level level)
{
	if ((unsigned)level > AUDIT_ALL)
		return "?";
	return level_names[level];
}

struct audit *
audit_new(enum audit_level level, const char *path, char *err, size_t errlen)
{
	struct audit *a;

	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->level = level;
	a->fd = STDERR_FILENO;
	if (path != NULL) {
		a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW,
		    0600);
		if (a->fd < 0) {
			snprintf(err, errlen, "cannot open the audit log %s: %s", path, strerror(errno));
			free(a);
			return NULL;
		}
		a->own_fd = true;
	}
	return a;
}

void
audit_free(struct audit *a)
{
	if (a == NULL)
		return;
	if (a->own_fd)
		close(a->fd);
	free(a);
}

bool
audit_wants(const struct audit *a, bool allowed)
{
	if (a == NULL)
		return false;
	return a->level == AUDIT_ALL || (a->level == AUDIT_DENIED && !allowed);
}

static size_t put_text(char *buf, size_t len, size_t used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static size_t
put_text(char *buf, size_t len, size_t used, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (used >= len)
		return used;
	va_start(ap, fmt);
	n = vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
	if (n < 0)
		return used;
	return (size_t)n >= len - used ? len - 1 : used + (size_t)n;
}

/* Appends s quoted and escaped, or "-" for NULL; keeps buf NUL-terminated. */
static size_t
put_quoted(char *buf, size_t len, size_t used, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t shown = 0;

	if (used >= len)
		return used;
	if (s == NULL)
		return put_text(buf, len, used, "-");
	/* Room for the worst case of one more byte, the closing quote and the NUL. */
	if (used + 8 > len)
		return used;
	buf[used++] = '"';
	for (; *s != '\0' && used + 8 < len; s++, shown++) {
		unsigned char c = (unsigned char)*s;

		if (shown == SHOWN_ID_MAX) {
			memcpy(buf + used, "...", 3);
			used += 3;
			break;
		}
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
			buf[used++] = '\\';
			buf[used++] = 'x';
			buf[used++] = hex[c >> 4];
			buf[used++] = hex[c & 0xf];
		} else {
			buf[used++] = (char)c;
		}
	}
	buf[used++] = '"';
	buf[used] = '\0';
	return used;
}

size_t
audit_format(const struct audit_event *e, char *buf, size_t len)
{
	size_t used = 0;

	if (len == 0)
		return 0;
	buf[0] = '\0';
	used = put_text(buf, len, used, "op=%s decision=%s status=%s uid=%lu gid=%lu pid=%ld id=",
	    e->op_name != NULL ? e->op_name : proto_op_name(e->op), e->allowed ? "allowed" : "denied",
	    e->status < 0 ? "-" : proto_status_name((enum proto_status)e->status),
	    (unsigned long)e->uid, (unsigned long)e->gid, (long)e->pid);
	used = put_quoted(buf, len, used, e->secret_id);
	used = put_text(buf, len, used, " stage=");
	used = put_quoted(buf, len, used, e->version_stage);
	used = put_text(buf, len, used, " version_id=");
	used = put_quoted(buf, len, used, e->version_id);
	if (e->door != NULL)
		used = put_text(buf, len, used, " door=%s", e->door);
	if (e->reason != NULL) {
		used = put_text(buf, len, used, " reason=");
		used = put_quoted(buf, len, used, e->reason);
	}
	return used;
}

void
audit_record(struct audit *a, const struct audit_event *e)
{
	char line[AUDIT_LINE_MAX], when[LOG_TIME_LEN];
	int n;
	size_t used;

	/* Operations passed through (op_name, the endpoint's writes) are written at every
	 * level but off: a write is worth a line even when it was allowed. */
	if (!audit_wants(a, e->allowed && e->op_name == NULL))
		return;
	if (a->fd == STDERR_FILENO && log_get_format() == LOG_FORMAT_JSON) {
		/* Next to JSON log lines, one of them (component "audit"): a log shipper
		 * reads one format. An audit file keeps the text form. */
		char json[2 * AUDIT_LINE_MAX];

		audit_format(e, line, sizeof(line));
		used = log_format_line(json, sizeof(json) - 1, LOG_INFO, "audit", line);
		json[used++] = '\n';
		if (write(a->fd, json, used) < 0)
			return;
		return;
	}
	log_format_time(when, sizeof(when));
	n = snprintf(line, sizeof(line), "%s smcached[%ld] audit: ", when, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	used = (size_t)n + audit_format(e, line + n, sizeof(line) - (size_t)n - 1);
	line[used++] = '\n';
	/* Best effort, like the log: there is nowhere to report a failed write. */
	if (write(a->fd, line, used) < 0)
		return;
}
