/*
 * backend_file: the `file` backend, a local JSON file that models AWS Secrets
 * Manager (same field names and lookup rules), for development and tests.
 * The format is documented at the top of backend_file.c.
 *
 * The file is parsed once per change of it (a stat() per request tells;
 * every change is seen within a second) into an index whose values are
 * sealed: no plaintext value is kept between calls. A request opens one
 * value, hands it to the callback and wipes it. A file that became
 * unreadable, invalid or unsafe (sys_file.h's trust rule) fails requests
 * with PROTO_STATUS_UPSTREAM_UNAVAILABLE (logged once per change of the
 * file) until it is fixed.
 *
 * Callbacks run from the event loop, never before get_value/describe
 * returned, in the order the calls were made. backend_free() cancels pending
 * requests: their callbacks are never called. A callback may call
 * backend_free() on its own backend.
 */
#ifndef SMC_AGENT_BACKEND_FILE_H
#define SMC_AGENT_BACKEND_FILE_H

#include <stddef.h>

#include "backend.h"

#define BACKEND_FILE_MAX_SIZE	(16u * 1024 * 1024)	/* bytes */

/*
 * Validates the whole file now (its index answers the first requests).
 * Returns NULL with a message in err when the file cannot be read, is
 * invalid or fails the trust rule. A relative path is made absolute
 * against the current directory, so a later chdir does not change it.
 */
struct backend *backend_file_new(struct event_base *base, const char *path,
    char *err, size_t errlen);

/*
 * Parses and validates a secrets file's content (len bytes, no terminator
 * needed) exactly as the backend does. Returns 0 with the number of secrets
 * in *secret_count (may be NULL), or -1 with the reason in err. Every copy
 * of the content it made is wiped. For fuzzing and configuration checks.
 */
int backend_file_validate_buffer(const void *data, size_t len, size_t *secret_count,
    char *err, size_t errlen);

#endif
