/*
 * smc_error: filling smc_error (internal to libsmcache). Maps the
 * protocol's reply statuses to the public error codes and copies the agent's
 * message with control characters neutralised, since callers print it.
 */
#ifndef SMC_CLIENT_ERROR_H
#define SMC_CLIENT_ERROR_H

#include <stddef.h>
#include <stdint.h>

#include "smcache.h"

/* Sets err (when not NULL) to code with a printf-style message. */
void smci_err_set(smc_error *err, smc_error_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Resets err (when not NULL) to SMC_OK with an empty message. */
void smci_err_clear(smc_error *err);
/* The public code for a reply status (SMC_ERR_PROTOCOL for unknown ones). */
smc_error_code smci_status_to_code(uint16_t status);
/* Sets err from an error reply: its status and its MESSAGE field (msg may be
 * NULL; it is not NUL-terminated). */
void smci_err_from_reply(smc_error *err, uint16_t status, const char *msg, size_t msglen);

#endif
