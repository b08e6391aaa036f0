/*
 * log: timestamped lines on stderr, filtered by level. One write(2) per line
 * so lines from a crash or a concurrent writer never interleave mid-line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static enum log_level log_current_level = LOG_INFO;

static const char *const log_level_names[] = { "error", "warn", "info", "debug" };

void
log_set_level(enum log_level level)
{
	log_current_level = level;
}

enum log_level
log_get_level(void)
{
	return log_current_level;
}

const char *
log_level_name(enum log_level level)
{
	if ((unsigned)level > LOG_DEBUG)
		return "?";
	return log_level_names[level];
}

int
log_level_parse(const char *text, enum log_level *level)
{
	for (unsigned i = 0; i <= LOG_DEBUG; i++) {
		if (strcasecmp(text, log_level_names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(text, "warning") == 0) {
		*level = LOG_WARN;
		return 0;
	}
	return -1;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	char line[1024];
	struct timespec now;
	struct tm tm;
	va_list ap;
	int n, m;

	if (level > log_current_level)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ smcached[%ld] %s: ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    now.tv_nsec / 1000000, (long)getpid(), log_level_name(level));
	if (n < 0)
		return;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* Best effort: a logger has nowhere to report its own failure. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}
