/*
 * cli.c - shared helpers for subcommands (see cli.h).
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#include <errno.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/datakey.h"
#include "db/cluster.h"
#include "util/log.h"

tk_status cli_master_key(const tk_config *cfg, unsigned char key[32])
{
	char path[PATH_MAX];
	if (cfg->master_key_file)
		snprintf(path, sizeof path, "%s", cfg->master_key_file);
	else if (snprintf(path, sizeof path, "%s/master.key", cfg->data_dir) >= (int)sizeof path)
		return TK_ERR;
	if (!cfg->master_key_file && mkdir(cfg->data_dir, 0700) != 0 && errno != EEXIST) {
		log_error("cannot create %s: %s", cfg->data_dir, strerror(errno));
		return TK_ERR;
	}
	return tk_master_key_load(path, key);
}

const char *cli_actor(void)
{
	static char actor[64];
	struct passwd *pw = getpwuid(getuid());
	snprintf(actor, sizeof actor, "cli:%s", pw ? pw->pw_name : "unknown");
	return actor;
}

int cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return 1;
	return 0;
}

tk_status cli_load_config(tk_config *cfg, int scope, int argc, char **argv, char **rest, int *nrest)
{
	char err[512];
	if (tk_config_load(cfg, scope, argc, argv, rest, nrest, err, sizeof err) != TK_OK) {
		fprintf(stderr, "tekup %s: %s\n", argv[0], err);
		tk_config_free(cfg);
		return TK_ERR;
	}
	const char *lv = cfg->log_level;
	tk_log_set_level(!strcmp(lv, "debug")   ? TK_LOG_DEBUG
	                 : !strcmp(lv, "warn")  ? TK_LOG_WARN
	                 : !strcmp(lv, "error") ? TK_LOG_ERROR
	                                        : TK_LOG_INFO);
	return TK_OK;
}

tk_status cli_database_urls(const tk_config *cfg, cli_urls *out)
{
	memset(out, 0, sizeof *out);
	if (cfg->database_url) {
		snprintf(out->request, sizeof out->request, "%s", cfg->database_url);
		snprintf(out->admin, sizeof out->admin, "%s",
		         cfg->database_admin_url ? cfg->database_admin_url : cfg->database_url);
		snprintf(out->operator_, sizeof out->operator_, "%s",
		         cfg->database_operator_url ? cfg->database_operator_url : out->admin);
		return TK_OK;
	}
	if (cfg->database_admin_url) {
		log_error("DATABASE_ADMIN_URL is set but DATABASE_URL is not; set both, or neither "
		          "for the embedded database");
		return TK_ERR;
	}
	tk_cluster c;
	if (tk_cluster_ensure(cfg->data_dir, &c) != TK_OK)
		return TK_ERR;
	snprintf(out->request, sizeof out->request, "%s", c.request_url);
	snprintf(out->admin, sizeof out->admin, "%s", c.admin_url);
	snprintf(out->operator_, sizeof out->operator_, "%s",
	         cfg->database_operator_url ? cfg->database_operator_url : c.operator_url);
	out->embedded = 1;
	return TK_OK;
}
