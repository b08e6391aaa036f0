/*
 * smc_error: smc_error helpers and smc_strerror (see smc_error.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "smc_error.h"
#include "message.h"

const char *
smc_strerror(smc_error_code code)
{
	switch (code) {
	case SMC_OK:				return "success";
	case SMC_ERR_NOT_FOUND:			return "secret not found";
	case SMC_ERR_ACCESS_DENIED:		return "access denied";
	case SMC_ERR_BAD_REQUEST:		return "invalid request";
	case SMC_ERR_UPSTREAM_UNAVAILABLE:	return "secrets backend unavailable";
	case SMC_ERR_INTERNAL:			return "internal error in the agent";
	case SMC_ERR_UNSUPPORTED:		return "request not supported by the agent";
	case SMC_ERR_LIMIT_EXCEEDED:		return "agent limit exceeded";
	case SMC_ERR_UPSTREAM_AUTH:		return "the agent's credentials were refused upstream";
	case SMC_ERR_UNREACHABLE:		return "agent unreachable";
	case SMC_ERR_PROTOCOL:			return "protocol error";
	case SMC_ERR_USAGE:			return "invalid argument";
	case SMC_ERR_NOMEM:			return "out of memory";
	}
	return "unknown error";
}

void
smci_err_clear(smc_error *err)
{
	if (err == NULL)
		return;
	err->code = SMC_OK;
	err->message[0] = '\0';
}

void
smci_err_set(smc_error *err, smc_error_code code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	err->code = code;
	va_start(ap, fmt);
	(void)vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

smc_error_code
smci_status_to_code(uint16_t status)
{
	switch (status) {
	case PROTO_STATUS_OK:			return SMC_OK;
	case PROTO_STATUS_NOT_FOUND:		return SMC_ERR_NOT_FOUND;
	case PROTO_STATUS_ACCESS_DENIED:	return SMC_ERR_ACCESS_DENIED;
	case PROTO_STATUS_BAD_REQUEST:		return SMC_ERR_BAD_REQUEST;
	case PROTO_STATUS_UPSTREAM_UNAVAILABLE:	return SMC_ERR_UPSTREAM_UNAVAILABLE;
	case PROTO_STATUS_INTERNAL:		return SMC_ERR_INTERNAL;
	case PROTO_STATUS_UNSUPPORTED:		return SMC_ERR_UNSUPPORTED;
	/* Our requests are far below the frame limit; if the agent still says
	 * so, the request was unacceptable as sent. */
	case PROTO_STATUS_TOO_LARGE:		return SMC_ERR_BAD_REQUEST;
	case PROTO_STATUS_LIMIT_EXCEEDED:	return SMC_ERR_LIMIT_EXCEEDED;
	case PROTO_STATUS_UPSTREAM_AUTH:	return SMC_ERR_UPSTREAM_AUTH;
	}
	return SMC_ERR_PROTOCOL;
}

void
smci_err_from_reply(smc_error *err, uint16_t status, const char *msg, size_t msglen)
{
	smc_error_code code = smci_status_to_code(status);
	size_t i, n;

	if (err == NULL)
		return;
	err->code = code;
	if (msg == NULL || msglen == 0) {
		if (code == SMC_ERR_PROTOCOL)
			smci_err_set(err, code, "agent answered with unknown status %u", status);
		else
			smci_err_set(err, code, "%s", smc_strerror(code));
		return;
	}
	/* The agent's text ends up on terminals and in logs: keep it on one
	 * line and free of control characters (C0, DEL, C1 encoded as UTF-8). */
	n = msglen < sizeof(err->message) - 1 ? msglen : sizeof(err->message) - 1;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)msg[i];

		if (ch == 0xc2 && i + 1 < n && (unsigned char)msg[i + 1] >= 0x80 &&
		    (unsigned char)msg[i + 1] <= 0x9f) {
			err->message[i++] = '?';
			err->message[i] = '?';
		} else
			err->message[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	err->message[n] = '\0';
}
