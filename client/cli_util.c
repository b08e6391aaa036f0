/*
 * cli_util: see cli_util.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli_util.h"
#include "smcache.h"

void
cli_message(const char *fmt, ...)
{
	va_list ap;

	fputs("smcache: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
cli_usage(const char *subcommand, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (subcommand != NULL)
		cli_message("%s: %s (see smcache %s --help)", subcommand, buf, subcommand);
	else
		cli_message("%s (see smcache --help)", buf);
	return EXIT_USAGE;
}

int
cli_exit_code(smc_error_code code)
{
	switch (code) {
	case SMC_OK:				return 0;
	case SMC_ERR_USAGE:			return EXIT_USAGE;
	case SMC_ERR_NOT_FOUND:			return EXIT_NOT_FOUND;
	case SMC_ERR_ACCESS_DENIED:
	case SMC_ERR_UPSTREAM_AUTH:		return EXIT_DENIED;
	case SMC_ERR_UPSTREAM_UNAVAILABLE:	return EXIT_UPSTREAM;
	case SMC_ERR_UNREACHABLE:		return EXIT_UNREACHABLE;
	default:				return 1;
	}
}
