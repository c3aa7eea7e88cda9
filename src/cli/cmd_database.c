/*
 * cmd_database.c - the database subcommands: `tekup migrate` and
 * `tekup db start|stop|status` (the embedded cluster).
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "db/cluster.h"
#include "db/migrate.h"
#include "util/log.h"
#include "util/validate.h"

#define MAX_ARGS 64

static void db_options_usage(void)
{
	printf("\ndatabase options (flag, or the environment variable shown):\n");
	tk_config_usage(stdout, TK_CFG_DB);
}

int cmd_migrate(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: tekup migrate [options]\n\n"
		       "Applies pending sql/migrations/NNNN_*.sql files in order, each in its own\n"
		       "transaction, as the schema owner (DATABASE_ADMIN_URL, or the embedded\n"
		       "cluster).  Refuses to continue if an applied file was edited.\n");
		db_options_usage();
		return TK_EXIT_OK;
	}
	tk_config cfg;
	char *rest[MAX_ARGS];
	int nrest = 0;
	if (argc > MAX_ARGS || cli_load_config(&cfg, TK_CFG_DB, argc, argv, rest, &nrest) != TK_OK)
		return TK_EXIT_USAGE;
	if (nrest > 0) {
		fprintf(stderr, "tekup migrate: unknown argument '%s' (see tekup migrate --help)\n",
		        rest[0]);
		tk_config_free(&cfg);
		return TK_EXIT_USAGE;
	}
	cli_urls urls;
	int code = TK_EXIT_FAILURE;
	if (cli_database_urls(&cfg, &urls) == TK_OK &&
	    tk_migrate(urls.admin, tk_migrations_default_dir(cfg.migrations_dir), stdout) == TK_OK)
		code = TK_EXIT_OK;
	tk_config_free(&cfg);
	return code;
}

int cmd_db(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf(
		    "usage: tekup db start|stop|status [--data-dir DIR]\n\n"
		    "Manages the embedded PostgreSQL cluster under --data-dir (default ./var).\n");
		db_options_usage();
		return TK_EXIT_OK;
	}
	tk_config cfg;
	char *rest[MAX_ARGS];
	int nrest = 0;
	if (argc > MAX_ARGS || cli_load_config(&cfg, TK_CFG_DB, argc, argv, rest, &nrest) != TK_OK)
		return TK_EXIT_USAGE;
	int code = TK_EXIT_USAGE;
	if (nrest != 1) {
		fprintf(stderr, "tekup db: expected start, stop or status\n");
	} else if (!strcmp(rest[0], "start")) {
		tk_cluster c;
		code = tk_cluster_ensure(cfg.data_dir, &c) == TK_OK ? TK_EXIT_OK : TK_EXIT_FAILURE;
		if (code == TK_EXIT_OK)
			printf("running; request URL: %s\nadmin URL: %s\n", c.request_url,
			       c.admin_url);
	} else if (!strcmp(rest[0], "stop")) {
		code = tk_cluster_stop(cfg.data_dir) == TK_OK ? TK_EXIT_OK : TK_EXIT_FAILURE;
	} else if (!strcmp(rest[0], "status")) {
		code = tk_cluster_status(cfg.data_dir) == TK_OK ? TK_EXIT_OK : TK_EXIT_FAILURE;
	} else {
		fprintf(stderr, "tekup db: unknown action '%s' (start, stop or status)\n", rest[0]);
	}
	tk_config_free(&cfg);
	return code;
}
