/*
 * cli_exec: the `smcache exec` subcommand (see cli_exec.c and smcache(1)).
 */
#ifndef SMC_CLI_EXEC_H
#define SMC_CLI_EXEC_H

/* When argv's command (after the global --socket/--timeout options) is
 * `exec`, runs it and returns the exit status; otherwise returns -1 and
 * touches nothing. On success with no supervisor it does not return. */
int cli_exec_dispatch(int argc, char **argv);

#endif
