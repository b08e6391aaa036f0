/*
 * cli_util: what the smcache subcommands share (cli.c, cli_exec.c): the exit
 * statuses smcache(1) documents, messages on stderr, usage errors.
 */
#ifndef SMC_CLI_UTIL_H
#define SMC_CLI_UTIL_H

#include "smcache.h"

/* smcache(1), EXIT STATUS. */
enum {
	EXIT_USAGE = 2,
	EXIT_NOT_FOUND = 3,
	EXIT_DENIED = 4,
	EXIT_UPSTREAM = 5,
	EXIT_UNREACHABLE = 6,
	EXIT_NOT_READY = 7,
	EXIT_CANNOT_EXEC = 126,		/* exec: the command was found but could not run */
	EXIT_NO_COMMAND = 127,		/* exec: the command was not found */
};

/* "smcache: MESSAGE" and a newline, on stderr. */
void cli_message(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * A usage error: "smcache: MESSAGE (see smcache --help)", or for a subcommand
 * ("exec") "smcache: exec: MESSAGE (see smcache exec --help)". Returns EXIT_USAGE.
 */
int cli_usage(const char *subcommand, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The exit status for a library error. */
int cli_exit_code(smc_error_code code);

#endif
