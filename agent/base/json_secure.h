/*
 * json_secure: cJSON allocation hooks that wipe every block before freeing it.
 *
 * cJSON keeps the strings it parses (secret values included) in its own heap
 * blocks. With these hooks installed, cJSON_Delete() and cJSON_free() zero
 * each block first, so no plaintext survives in freed heap memory. The hooks
 * are process-wide: every cJSON user in the agent gets them.
 */
#ifndef SMC_AGENT_JSON_SECURE_H
#define SMC_AGENT_JSON_SECURE_H

#include <stddef.h>

/*
 * Installs the hooks (cJSON_InitHooks). Idempotent, and safe at any time:
 * both hooks end in the C library's malloc/free, so blocks allocated before
 * and after the call can be freed either way. Not thread-safe against
 * concurrent cJSON use (the agent is single-threaded).
 */
void json_secure_init(void);

/*
 * Test hook: called for every block freed through the hooks, after it was
 * zeroed and before it is handed back to free(). NULL removes it.
 */
typedef void (*json_secure_free_hook)(const void *block, size_t len, void *arg);
void json_secure_set_free_hook(json_secure_free_hook hook, void *arg);

#endif
