/*
 * log: timestamped lines on stderr with a level and a component, filtered by
 * level, as text or JSON (see log.h). One write(2) per line so lines from a
 * crash or a concurrent writer never interleave mid-line. JSON escaping is
 * cJSON's, printed into a stack buffer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "log.h"

/* A message is cut at this many bytes; a JSON line can be up to 6 times longer (\uXXXX). */
#define LOG_MESSAGE_MAX	1024
#define LOG_LINE_MAX	(LOG_MESSAGE_MAX * 6 + 512)

static enum log_level log_current_level = LOG_INFO;
static enum log_format log_current_format = LOG_FORMAT_TEXT;

static const char *const log_level_names[] = { "error", "warn", "info", "debug" };

void
log_set_level(enum log_level level)
{
	log_current_level = level;
}

void
log_set_format(enum log_format format)
{
	log_current_format = format;
}

enum log_format
log_get_format(void)
{
	return log_current_format;
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
log_format_time(char *buf, size_t len)
{
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
}

static size_t
format_json(char *buf, size_t len, const char *time, enum log_level level,
    const char *component, const char *message)
{
	cJSON *o = cJSON_CreateObject();
	size_t n = 0;

	if (o != NULL && cJSON_AddStringToObject(o, "time", time) != NULL &&
	    cJSON_AddStringToObject(o, "level", log_level_name(level)) != NULL &&
	    cJSON_AddStringToObject(o, "component", component) != NULL &&
	    cJSON_AddNumberToObject(o, "pid", (double)getpid()) != NULL &&
	    cJSON_AddStringToObject(o, "message", message) != NULL &&
	    cJSON_PrintPreallocated(o, buf, (int)len, 0))
		n = strlen(buf);
	else
		n = (size_t)snprintf(buf, len, "{\"time\":\"%s\",\"level\":\"error\",\"component\":"
		    "\"log\",\"message\":\"cannot format a log line\"}", time);
	cJSON_Delete(o);
	return n < len ? n : len - 1;
}

size_t
log_format_line(char *buf, size_t len, enum log_level level, const char *component,
    const char *message)
{
	size_t clen = strlen(component);
	char time[LOG_TIME_LEN];
	int n;

	if (len == 0)
		return 0;
	/* "cache: x" from the cache component is written "x": the component says it. */
	if (strncmp(message, component, clen) == 0 && message[clen] == ':' &&
	    message[clen + 1] == ' ')
		message += clen + 2;
	log_format_time(time, sizeof(time));
	if (log_current_format == LOG_FORMAT_JSON)
		return format_json(buf, len, time, level, component, message);
	n = snprintf(buf, len, "%s smcached[%ld] [%s] %s: %s", time, (long)getpid(), component,
	    log_level_name(level), message);
	if (n < 0)
		return 0;
	return (size_t)n < len ? (size_t)n : len - 1;
}

void
log_write(enum log_level level, const char *component, const char *fmt, ...)
{
	char message[LOG_MESSAGE_MAX], line[LOG_LINE_MAX];
	va_list ap;
	size_t n;

	if (level > log_current_level)
		return;
	va_start(ap, fmt);
	if (vsnprintf(message, sizeof(message), fmt, ap) < 0)
		message[0] = '\0';
	va_end(ap);
	/* Text lines keep their old bound of 1 KiB. */
	n = log_format_line(line, log_current_format == LOG_FORMAT_JSON ? sizeof(line) :
	    LOG_MESSAGE_MAX - 1, level, component, message);
	line[n++] = '\n';
	/* Best effort: a logger has nowhere to report its own failure. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}
