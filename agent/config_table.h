/*
 * config_table.h: the configuration's key table, private to agent/config*.c:
 *   config.c        the table (one row per key), value syntax, setting one value,
 *                   defaults, describe, help, the key dump and the diff
 *   config_parse.c  reading a configuration: the INI reader on libinih, names
 *                   and hints, cross-key checks, the file's trust rule
 */
#ifndef SMC_AGENT_CONFIG_TABLE_H
#define SMC_AGENT_CONFIG_TABLE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

enum cfg_type {
	CT_STRING,	/* char *, owned; checked by the row's check function */
	CT_COUNT,	/* unsigned int, plain decimal */
	CT_DURATION,	/* unsigned int seconds; s/m/h suffix */
	CT_SIZE,	/* size_t bytes; K/M/G suffix */
	CT_LOGLEVEL,	/* enum log_level, via log_level_parse() */
	CT_ENUM,	/* an int-sized enum; the value is the index in names */
	CT_MODE,	/* unsigned int file permission bits, octal (0660) */
	CT_LIST,	/* struct config_list; may repeat, each line checked like CT_STRING */
};

/* Extra checks for a string value; on error writes why and returns -1. */
typedef int (*cfg_check_fn)(const char *value, char *why, size_t whylen);

struct cfg_key {
	const char *section;
	const char *key;
	enum cfg_type type;
	size_t offset;			/* of the field in struct config */
	const char *def;		/* default, in file syntax; NULL: unset */
	unsigned long long min, max;	/* numeric types, inclusive */
	const char *const *names;	/* CT_ENUM, NULL-terminated */
	cfg_check_fn check;		/* CT_STRING, optional */
	const char *unset;		/* CT_STRING: shown by describe when NULL */
	const char *doc;
	bool reload;			/* applied by a running agent on SIGHUP */
};

/* Every key, in the order describe, help and the dump show them. */
extern const struct cfg_key cfg_keys[];
extern const size_t cfg_key_count;

/* Parses v for key k into cfg. On error writes why (no key name) and returns -1. */
int cfg_set(struct config *cfg, const struct cfg_key *k, const char *v, char *why, size_t whylen);

#endif
