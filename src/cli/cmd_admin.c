/*
 * cmd_admin.c - operator subcommands that work on the database directly:
 * `tekup migrate`, `tekup tenant create|list`, `tekup db start|stop|status`.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "db/cluster.h"
#include "db/migrate.h"
#include "tenants/tenant.h"
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

static void tenant_usage(void)
{
	printf("usage: tekup tenant create --name NAME [--plan PLAN] [--sample-leads N]\n"
	       "       tekup tenant list\n\n"
	       "create  provisions a tenant (plan: trial, basic, professional, enterprise;\n"
	       "        default basic) with one API key, printed once.\n"
	       "list    prints every tenant.\n");
	db_options_usage();
}

/* Parses `create` arguments; returns TK_ERR (usage) with a message. */
static tk_status parse_create(int nrest, char **rest, const char **name, const char **plan,
                              long *samples)
{
	for (int i = 1; i < nrest; i++) {
		const char *a = rest[i];
		const char *v = i + 1 < nrest ? rest[i + 1] : NULL;
		const char **slot = NULL;
		const char *eq = strchr(a, '=');
		size_t alen = eq ? (size_t)(eq - a) : strlen(a);
		if (alen == 6 && !strncmp(a, "--name", 6))
			slot = name;
		else if (alen == 6 && !strncmp(a, "--plan", 6))
			slot = plan;
		else if (alen == 14 && !strncmp(a, "--sample-leads", 14))
			slot = NULL;
		else {
			fprintf(stderr, "tekup tenant create: unknown argument '%s'\n", a);
			return TK_ERR;
		}
		const char *value = eq ? eq + 1 : v;
		if (value == NULL) {
			fprintf(stderr, "tekup tenant create: %.*s needs a value\n", (int)alen, a);
			return TK_ERR;
		}
		if (!eq)
			i++;
		if (slot) {
			*slot = value;
		} else if (!tk_parse_int(value, 0, 100000, samples)) {
			fprintf(stderr,
			        "tekup tenant create: --sample-leads must be 0 to 100000\n");
			return TK_ERR;
		}
	}
	if (*name == NULL || (*name)[0] == '\0') {
		fprintf(stderr, "tekup tenant create: --name is required\n");
		return TK_ERR;
	}
	if (strcmp(*plan, "trial") && strcmp(*plan, "basic") && strcmp(*plan, "professional") &&
	    strcmp(*plan, "enterprise")) {
		fprintf(stderr, "tekup tenant create: --plan must be trial, basic, professional or "
		                "enterprise\n");
		return TK_ERR;
	}
	return TK_OK;
}

int cmd_tenant(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		tenant_usage();
		return TK_EXIT_OK;
	}
	tk_config cfg;
	char *rest[MAX_ARGS];
	int nrest = 0;
	if (argc > MAX_ARGS || cli_load_config(&cfg, TK_CFG_DB, argc, argv, rest, &nrest) != TK_OK)
		return TK_EXIT_USAGE;
	const char *name = NULL, *plan = "basic";
	long samples = 0;
	int code = TK_EXIT_USAGE;
	bool create = nrest >= 1 && !strcmp(rest[0], "create");
	bool list = nrest == 1 && !strcmp(rest[0], "list");
	if (!create && !list) {
		fprintf(stderr,
		        "tekup tenant: expected 'create' or 'list' (see tekup tenant --help)\n");
		goto done;
	}
	if (create && parse_create(nrest, rest, &name, &plan, &samples) != TK_OK)
		goto done;
	code = TK_EXIT_FAILURE;
	cli_urls urls;
	if (cli_database_urls(&cfg, &urls) != TK_OK)
		goto done;
	PGconn *pg = PQconnectdb(urls.admin);
	if (PQstatus(pg) != CONNECTION_OK) {
		char msg[512];
		snprintf(msg, sizeof msg, "%s", PQerrorMessage(pg));
		msg[strcspn(msg, "\n")] = '\0';
		log_error("cannot connect to PostgreSQL as the schema owner: %s", msg);
	} else if (list) {
		if (tenant_list(pg, stdout) == TK_OK)
			code = TK_EXIT_OK;
	} else {
		tenant_created t;
		if (tenant_create(pg, name, plan, (int)samples, &t) == TK_OK) {
			printf("tenant_id: %s\nslug: %s\napi_key: %s\n"
			       "(the API key is shown once; only its hash is stored)\n",
			       t.id, t.slug, t.api_key);
			code = TK_EXIT_OK;
		}
	}
	PQfinish(pg);
done:
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
