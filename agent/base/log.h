/*
 * log: the agent's one logger. Every line has a time, a level and a
 * component, on stderr, as text or as JSON lines ([agent] log_format).
 * Never pass a secret value to it, at any level.
 *
 * Each source file names its component before including this header:
 *     #define LOG_COMPONENT "cache"
 *     #include "log.h"
 * and the log_* macros pass it along (files without one log as "smcached").
 *
 *   text: 2026-01-02T03:04:05.678Z smcached[812] [cache] warn: circuit breaker open ...
 *   json: {"time":"2026-01-02T03:04:05.678Z","level":"warn","component":"cache",
 *          "pid":812,"message":"circuit breaker open ..."}
 *
 * A message that starts with its own component and ": " (from before
 * components existed) is written without that prefix, so it appears once.
 */
#ifndef SMC_AGENT_LOG_H
#define SMC_AGENT_LOG_H

#ifndef LOG_COMPONENT
#define LOG_COMPONENT "smcached"
#endif

enum log_level {
	LOG_ERROR = 0,
	LOG_WARN = 1,
	LOG_INFO = 2,
	LOG_DEBUG = 3,
};

/* In the order of the [agent] log_format names. */
enum log_format {
	LOG_FORMAT_TEXT = 0,
	LOG_FORMAT_JSON = 1,
};

/* Messages above this level are dropped. Default LOG_INFO. */
void log_set_level(enum log_level level);
int log_level_parse(const char *text, enum log_level *level);
const char *log_level_name(enum log_level level);

/* Default LOG_FORMAT_TEXT. */
void log_set_format(enum log_format format);
enum log_format log_get_format(void);

void log_write(enum log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The time every line starts with, UTC to the millisecond
 * ("2026-01-31T12:00:00.123Z"); LOG_TIME_LEN bytes with the NUL. The audit
 * log's lines start with it too. */
#define LOG_TIME_LEN	32
void log_format_time(char *buf, size_t len);

/* Formats one line into buf (no newline) as log_write() would; for tests. Returns its length. */
size_t log_format_line(char *buf, size_t len, enum log_level level, const char *component,
    const char *message);

#define log_msg(level, ...) log_write(level, LOG_COMPONENT, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, LOG_COMPONENT, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_WARN, LOG_COMPONENT, __VA_ARGS__)
#define log_info(...)  log_write(LOG_INFO, LOG_COMPONENT, __VA_ARGS__)
#define log_debug(...) log_write(LOG_DEBUG, LOG_COMPONENT, __VA_ARGS__)

#endif
