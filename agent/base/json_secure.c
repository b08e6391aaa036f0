/*
 * json_secure: cJSON hooks whose free zeroes the whole usable block first
 * (secmem's wipe-on-free allocator).
 */
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "json_secure.h"
#include "secmem.h"

static json_secure_free_hook json_secure_hook;
static void *json_secure_hook_arg;

static void
json_secure_free(void *block)
{
	size_t len;

	if (block == NULL)
		return;
	len = secmem_wipe_block(block);
	if (json_secure_hook != NULL)
		json_secure_hook(block, len, json_secure_hook_arg);
	free(block);
}

void
json_secure_init(void)
{
	/* Not the C library's own malloc/free, so cJSON never uses realloc()
	 * (which could leave an unwiped copy behind when it moves a block). */
	cJSON_Hooks hooks = { .malloc_fn = secmem_wipe_malloc, .free_fn = json_secure_free };

	cJSON_InitHooks(&hooks);
}

void
json_secure_set_free_hook(json_secure_free_hook hook, void *arg)
{
	json_secure_hook = hook;
	json_secure_hook_arg = arg;
}
