/*
 * backend: helpers shared by every backend implementation.
 */
#include <stdarg.h>
#include <stdio.h>

#include "backend.h"

void
backend_error_set(struct backend_error *error, enum smc_status status, const char *fmt, ...)
{
	va_list ap;

	/* An error is never OK: a caller bug must not turn into a success reply. */
	error->status = status == SMC_STATUS_OK ? SMC_STATUS_INTERNAL : status;
	error->about_secret = false;
	va_start(ap, fmt);
	if (vsnprintf(error->message, sizeof(error->message), fmt, ap) < 0)
		error->message[0] = '\0';
	va_end(ap);
}
