/*
 * cli.h - the subcommands of the tekup binary and what they share.
 *
 * Each cmd_* function gets argv with argv[0] = the subcommand name and
 * returns the process exit code: 0 success, 1 failure, 2 bad usage.
 */
#ifndef TK_CLI_H
#define TK_CLI_H

#include <limits.h>

#include "util/config.h"
#include "util/status.h"

#define TK_EXIT_OK      0
#define TK_EXIT_FAILURE 1
#define TK_EXIT_USAGE   2

int cmd_serve(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_tenant(int argc, char **argv);
int cmd_db(int argc, char **argv);
int cmd_sql(int argc, char **argv);
int cmd_admin(int argc, char **argv);

typedef struct cli_urls {
	char request[PATH_MAX + 128];
	char admin[PATH_MAX + 128];
	char operator_[PATH_MAX + 128];
	int embedded;
} cli_urls;

/*
 * Where to connect: DATABASE_URL / DATABASE_ADMIN_URL when given, else the
 * embedded cluster (started and bootstrapped as needed).
 */
tk_status cli_database_urls(const tk_config *cfg, cli_urls *out) TK_MUST_CHECK;
/* Loads the master key (--master-key-file, default <data-dir>/master.key). */
tk_status cli_master_key(const tk_config *cfg, unsigned char key[32]) TK_MUST_CHECK;
/* "cli:<user>" - who runs this command, for the operator audit. */
const char *cli_actor(void);
/* True when argv holds -h or --help. */
int cli_wants_help(int argc, char **argv);
/* Loads config or prints the error and returns TK_ERR (exit 2). */
tk_status cli_load_config(tk_config *cfg, int scope, int argc, char **argv, char **rest,
                          int *nrest) TK_MUST_CHECK;

#endif
