/*
 * backend: helpers shared by every backend implementation.
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "backend.h"

void
backend_error_set(struct backend_error *error, enum smc_status status, const char *fmt, ...)
{
	va_list ap;

	/* An error is never OK: a caller bug must not turn into a success reply. */
	error->status = status == SMC_STATUS_OK ? SMC_STATUS_INTERNAL : status;
	va_start(ap, fmt);
	if (vsnprintf(error->message, sizeof(error->message), fmt, ap) < 0)
		error->message[0] = '\0';
	va_end(ap);
}

void
backend_note(struct backend *b, const struct backend_error *error)
{
	struct backend_health *h = &b->health;
	struct timespec ts;
	int64_t now;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (error == NULL || (error->status != SMC_STATUS_UPSTREAM_UNAVAILABLE &&
	    error->status != SMC_STATUS_UPSTREAM_AUTH && error->status != SMC_STATUS_INTERNAL)) {
		h->last_success_ms = now;
		if (h->credentials != SMC_CRED_NOT_NEEDED)
			h->credentials = SMC_CRED_OK;
		return;
	}
	h->last_failure_ms = now;
	h->last_failure_status = error->status;
	/* "None could be had" (set by the backend) stays until some are had. */
	if (error->status == SMC_STATUS_UPSTREAM_AUTH &&
	    h->credentials != SMC_CRED_NOT_NEEDED &&
	    h->credentials != SMC_CRED_UNAVAILABLE)
		h->credentials = SMC_CRED_REJECTED;
}
