/*
 * cmd_tenant.c - `tekup tenant ...` and `tekup admin token ...`: the
 * operator's CLI, over the same code as the /admin API (tenants/provision.h,
 * tenants/tenant_ops.h), on a one-connection operator pool.
 *
 * Bad arguments are found before any database work and exit 2; a failed
 * operation exits 1 with the same message the API would give.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/operator_auth.h"
#include "cli/cli.h"
#include "tenants/provision.h"
#include "tenants/tenant.h"
#include "tenants/tenant_ops.h"
#include "util/log.h"
#include "util/validate.h"

#define MAX_ARGS 64

typedef struct cli_opt {
	const char *flag;   /* "--name" */
	const char **value; /* NULL: a boolean flag */
	bool *present;
} cli_opt;

/* Splits args into --flag values and positionals; TK_ERR (usage) on unknown flags. */
static tk_status parse_opts(const char *cmd, int n, char **args, const cli_opt *opts, size_t nopts,
                            const char **pos, int max_pos, int *npos)
{
	*npos = 0;
	for (int i = 0; i < n; i++) {
		const char *a = args[i];
		if (strncmp(a, "--", 2) != 0) {
			if (*npos >= max_pos) {
				fprintf(stderr, "tekup %s: unexpected argument '%s'\n", cmd, a);
				return TK_ERR;
			}
			pos[(*npos)++] = a;
			continue;
		}
		const char *eq = strchr(a, '=');
		size_t alen = eq ? (size_t)(eq - a) : strlen(a);
		const cli_opt *o = NULL;
		for (size_t k = 0; k < nopts; k++)
			if (strlen(opts[k].flag) == alen && !strncmp(opts[k].flag, a, alen))
				o = &opts[k];
		if (o == NULL) {
			fprintf(stderr, "tekup %s: unknown argument '%.*s'\n", cmd, (int)alen, a);
			return TK_ERR;
		}
		if (o->present)
			*o->present = true;
		if (o->value == NULL)
			continue;
		const char *v = eq ? eq + 1 : (i + 1 < n ? args[++i] : NULL);
		if (v == NULL) {
			fprintf(stderr, "tekup %s: %s needs a value\n", cmd, o->flag);
			return TK_ERR;
		}
		*o->value = v;
	}
	return TK_OK;
}

static bool is_uuid_arg(const char *cmd, const char *what, const char *v)
{
	if (v && tk_is_uuid(v, strlen(v)))
		return true;
	fprintf(stderr, "tekup %s: %s must be a UUID\n", cmd, what);
	return false;
}

static void tenant_usage(void)
{
	printf("usage: tekup tenant <command> [options]\n\n"
	       "  create --name NAME [--plan trial|basic|professional|enterprise] [--billing-email "
	       "E]\n"
	       "         [--admin-email E --admin-name N] [--timezone TZ] [--locale L]\n"
	       "         [--sample-leads N]      admin password: TEKUP_ADMIN_PASSWORD\n"
	       "  list [--status S] [--plan P]\n"
	       "  show ID\n"
	       "  set ID [--name N] [--plan P] [--billing-email E] [--retention-days N]\n"
	       "  suspend ID | activate ID | archive ID\n"
	       "  key list ID | key create ID [--name N] [--expires-at T]\n"
	       "  key revoke ID KEY_ID | key rotate ID KEY_ID [--grace-hours H]\n"
	       "  migrate SOURCE TARGET [--no-leads] [--users] [--archive-source]\n"
	       "  cleanup [--dry-run] [--older-than-days N]\n"
	       "  retention [--dry-run]\n\n"
	       "Operations print JSON, as the /admin API returns it; keys are shown once.\n");
	printf("\ndatabase options (flag, or the environment variable shown):\n");
	tk_config_usage(stdout, TK_CFG_DB);
}

/* One operator connection for the command. */
typedef struct cli_session {
	db_pool *pool;
	db_conn *conn;
	tk_arena *arena;
	cli_urls urls;
} cli_session;

static tk_status session_open(const tk_config *cfg, cli_session *s)
{
	memset(s, 0, sizeof *s);
	if (cli_database_urls(cfg, &s->urls) != TK_OK)
		return TK_ERR;
	db_pool_options o = {.name = "operator",
	                     .conninfo = s->urls.operator_,
	                     .size = 1,
	                     .acquire_timeout_ms = 10000,
	                     .statement_timeout_ms = 600000,
	                     .unnamed_statements = false};
	s->pool = db_pool_create(&o);
	s->arena = tk_arena_create();
	tk_error err = {0};
	if (db_pool_acquire(s->pool, &s->conn, &err) != TK_OK) {
		log_error("cannot connect to PostgreSQL as the operator role");
		return TK_ERR;
	}
	return TK_OK;
}

static void session_close(cli_session *s)
{
	if (s->conn)
		db_pool_release(s->pool, s->conn);
	db_pool_destroy(s->pool);
	tk_arena_destroy(s->arena);
}

static int report(tk_status st, const char *json, const tk_error *err)
{
	if (st == TK_OK) {
		if (json)
			printf("%s\n", json);
		return TK_EXIT_OK;
	}
	if (err->has_field)
		fprintf(stderr, "error: %s: %s (field: %s)\n", err->code ? err->code : "failed",
		        err->message, err->field);
	else
		fprintf(stderr, "error: %s: %s\n", err->code ? err->code : "failed", err->message);
	return TK_EXIT_FAILURE;
}

/* One operation of tenants/tenant_ops.h, as the CLI runs it. */
typedef enum op_kind {
	OP_SHOW,
	OP_UPDATE,
	OP_KEYS,
	OP_KEY_CREATE,
	OP_KEY_REVOKE,
	OP_KEY_ROTATE,
	OP_MIGRATE,
	OP_CLEANUP,
	OP_RETENTION,
} op_kind;

typedef struct cli_op {
	op_kind kind;
	const char *tenant; /* the tenant (source for OP_MIGRATE) */
	const char *other;  /* key id, or the migration's target */
	const tenant_update *update;
	const char *name, *expires;
	long number; /* grace hours, or cleanup's older-than days */
	bool leads, users, archive, dry_run;
} cli_op;

static tk_status op_dispatch(cli_session *s, const ops_actor *who, const cli_op *op,
                             const char **json, tk_error *err)
{
	switch (op->kind) {
	case OP_SHOW: return tenant_ops_show(s->conn, s->arena, op->tenant, json, err);
	case OP_UPDATE:
		return tenant_ops_update(s->conn, s->arena, who, op->tenant, op->update, json, err);
	case OP_KEYS: return tenant_ops_keys(s->conn, s->arena, op->tenant, json, err);
	case OP_KEY_CREATE:
		return tenant_ops_key_create(s->conn, s->arena, who, op->tenant, op->name,
		                             op->expires, json, err);
	case OP_KEY_REVOKE:
		return tenant_ops_key_revoke(s->conn, s->arena, who, op->tenant, op->other, err);
	case OP_KEY_ROTATE:
		return tenant_ops_key_rotate(s->conn, s->arena, who, op->tenant, op->other,
		                             op->number, json, err);
	case OP_MIGRATE:
		return tenant_ops_migrate(s->conn, s->arena, who, op->tenant, op->other, op->leads,
		                          op->users, op->archive, json, err);
	case OP_CLEANUP:
		return tenant_ops_cleanup(s->conn, s->arena, who, op->number, op->dry_run, json,
		                          err);
	case OP_RETENTION:
		return tenant_ops_retention(s->conn, s->arena, who, op->dry_run, json, err);
	}
	return tk_error_set(err, 500, "internal_error", NULL, "unknown operation");
}

/* Opens an operator session, runs op, prints its JSON or its error. */
static int run_op(const tk_config *cfg, const cli_op *op)
{
	cli_session s;
	int code = TK_EXIT_FAILURE;
	if (session_open(cfg, &s) == TK_OK) {
		tk_error err = {0};
		const char *json = NULL;
		ops_actor who = {NULL, cli_actor()};
		tk_status st = op_dispatch(&s, &who, op, &json, &err);
		code = report(st, json, &err);
	}
	session_close(&s);
	return code;
}

static int tenant_create_cmd(const tk_config *cfg, int n, char **args)
{
	provision_request in = {0};
	const char *samples = NULL, *pos[1];
	int npos;
	cli_opt opts[] = {{"--name", &in.name, NULL},
	                  {"--plan", &in.plan, NULL},
	                  {"--billing-email", &in.billing_email, NULL},
	                  {"--admin-email", &in.admin_email, NULL},
	                  {"--admin-name", &in.admin_name, NULL},
	                  {"--timezone", &in.timezone, NULL},
	                  {"--locale", &in.locale, NULL},
	                  {"--sample-leads", &samples, NULL}};
	if (parse_opts("tenant create", n, args, opts, TK_ARRAY_LEN(opts), pos, 0, &npos) != TK_OK)
		return TK_EXIT_USAGE;
	long nsamples = 0;
	if (samples && !tk_parse_int(samples, 0, PROVISION_SAMPLE_MAX, &nsamples)) {
		fprintf(stderr, "tekup tenant create: --sample-leads must be 0 to %d\n",
		        PROVISION_SAMPLE_MAX);
		return TK_EXIT_USAGE;
	}
	in.sample_leads = (int)nsamples;
	if (in.name == NULL || in.name[0] == '\0') {
		fprintf(stderr, "tekup tenant create: --name is required\n");
		return TK_EXIT_USAGE;
	}
	if (in.plan && strcmp(in.plan, "trial") && strcmp(in.plan, "basic") &&
	    strcmp(in.plan, "professional") && strcmp(in.plan, "enterprise")) {
		fprintf(stderr, "tekup tenant create: --plan must be trial, basic, professional or "
		                "enterprise\n");
		return TK_EXIT_USAGE;
	}
	/* A password on the command line would show in ps; take it from the environment. */
	in.admin_password = getenv("TEKUP_ADMIN_PASSWORD");
	tk_error err = {0};
	if (provision_validate(&in, &err) != TK_OK) {
		/* Name the flag the operator typed, not the API's field. */
		static const char *const flags[][2] = {{"name", "--name"},
		                                       {"billingEmail", "--billing-email"},
		                                       {"adminEmail", "--admin-email"},
		                                       {"adminName", "--admin-name"},
		                                       {"adminPassword", "TEKUP_ADMIN_PASSWORD"},
		                                       {"timezone", "--timezone"},
		                                       {"locale", "--locale"},
		                                       {"sampleLeads", "--sample-leads"}};
		const char *flag = err.field;
		for (size_t i = 0; i < TK_ARRAY_LEN(flags); i++)
			if (!strcmp(flags[i][0], err.field))
				flag = flags[i][1];
		fprintf(stderr, "tekup tenant create: %s: %s\n", flag, err.message);
		return TK_EXIT_USAGE;
	}
	cli_session s = {0};
	unsigned char master[32];
	int code = TK_EXIT_FAILURE;
	if (cli_master_key(cfg, master) == TK_OK && session_open(cfg, &s) == TK_OK) {
		provision_actor who = {NULL, cli_actor()};
		provision_result out;
		if (provision_run(s.conn, s.arena, &in, master, cfg->dashboard_url, &who, &out,
		                  &err) == TK_OK) {
			printf("tenant_id: %s\nslug: %s\napi_key: %s\n", out.tenant_id, out.slug,
			       out.api_key);
			if (out.admin_user_id[0])
				printf("admin_user_id: %s\n", out.admin_user_id);
			printf("dashboard_url: %s\n(the API key is shown once; only its hash is "
			       "stored)\n",
			       out.dashboard_url);
			code = TK_EXIT_OK;
		} else {
			code = report(TK_ERR, NULL, &err);
		}
	}
	session_close(&s);
	sodium_memzero(master, sizeof master);
	return code;
}

static int tenant_list_cmd(const tk_config *cfg, int n, char **args)
{
	const char *pos[1], *status = NULL, *plan = NULL;
	int npos;
	cli_opt opts[] = {{"--status", &status, NULL}, {"--plan", &plan, NULL}};
	if (parse_opts("tenant list", n, args, opts, TK_ARRAY_LEN(opts), pos, 0, &npos) != TK_OK)
		return TK_EXIT_USAGE;
	if (status && strcmp(status, "active") && strcmp(status, "suspended") &&
	    strcmp(status, "archived")) {
		fprintf(stderr,
		        "tekup tenant list: --status must be active, suspended or archived\n");
		return TK_EXIT_USAGE;
	}
	cli_urls urls;
	if (cli_database_urls(cfg, &urls) != TK_OK)
		return TK_EXIT_FAILURE;
	PGconn *pg = PQconnectdb(urls.operator_);
	int code = TK_EXIT_FAILURE;
	if (PQstatus(pg) != CONNECTION_OK)
		log_error("cannot connect to PostgreSQL as the operator role");
	else if (tenant_list(pg, status, plan, stdout) == TK_OK)
		code = TK_EXIT_OK;
	PQfinish(pg);
	return code;
}

/* show / set / suspend / activate / archive */
static int tenant_change_cmd(const tk_config *cfg, const char *sub, int n, char **args)
{
	tenant_update u = {0};
	const char *days = NULL, *pos[1];
	int npos;
	cli_opt opts[] = {{"--name", &u.name, NULL},
	                  {"--plan", &u.plan, NULL},
	                  {"--billing-email", &u.billing_email, NULL},
	                  {"--retention-days", &days, NULL}};
	bool is_set = !strcmp(sub, "set"), is_show = !strcmp(sub, "show");
	if (parse_opts(sub, n, args, opts, is_set ? TK_ARRAY_LEN(opts) : 0, pos, 1, &npos) != TK_OK)
		return TK_EXIT_USAGE;
	if (npos != 1) {
		fprintf(stderr,
		        "tekup tenant %s: expected the tenant id (see tekup tenant --help)\n", sub);
		return TK_EXIT_USAGE;
	}
	if (!is_uuid_arg(sub, "the tenant id", pos[0]))
		return TK_EXIT_USAGE;
	if (u.plan && strcmp(u.plan, "trial") && strcmp(u.plan, "basic") &&
	    strcmp(u.plan, "professional") && strcmp(u.plan, "enterprise")) {
		fprintf(stderr, "tekup tenant set: --plan must be trial, basic, professional or "
		                "enterprise\n");
		return TK_EXIT_USAGE;
	}
	long d;
	if (days && !tk_parse_int(days, 1, 36500, &d)) {
		fprintf(stderr, "tekup tenant set: --retention-days must be 1 to 36500\n");
		return TK_EXIT_USAGE;
	}
	u.data_retention_days = days;
	if (!strcmp(sub, "suspend"))
		u.status = "suspended";
	else if (!strcmp(sub, "activate"))
		u.status = "active";
	else if (!strcmp(sub, "archive"))
		u.status = "archived";
	if (is_set && !u.name && !u.plan && !u.billing_email && !days) {
		fprintf(stderr, "tekup tenant set: nothing to change\n");
		return TK_EXIT_USAGE;
	}
	cli_op op = {.kind = is_show ? OP_SHOW : OP_UPDATE, .tenant = pos[0], .update = &u};
	return run_op(cfg, &op);
}

static int tenant_key_cmd(const tk_config *cfg, int n, char **args)
{
	const char *name = NULL, *expires = NULL, *grace = NULL, *pos[3];
	int npos;
	cli_opt opts[] = {{"--name", &name, NULL},
	                  {"--expires-at", &expires, NULL},
	                  {"--grace-hours", &grace, NULL}};
	if (parse_opts("tenant key", n, args, opts, TK_ARRAY_LEN(opts), pos, 3, &npos) != TK_OK)
		return TK_EXIT_USAGE;
	const char *action = npos > 0 ? pos[0] : "";
	bool list = !strcmp(action, "list"), create = !strcmp(action, "create"),
	     revoke = !strcmp(action, "revoke"), rotate = !strcmp(action, "rotate");
	int want = (list || create) ? 2 : 3;
	long hours = 24;
	if (!(list || create || revoke || rotate) || npos != want) {
		fprintf(stderr,
		        "tekup tenant key: expected list ID, create ID, revoke ID KEY_ID or "
		        "rotate ID KEY_ID\n");
		return TK_EXIT_USAGE;
	}
	if (!is_uuid_arg("tenant key", "the tenant id", pos[1]) ||
	    (want == 3 && !is_uuid_arg("tenant key", "the key id", pos[2])))
		return TK_EXIT_USAGE;
	if (grace && !tk_parse_int(grace, 0, 24 * 90, &hours)) {
		fprintf(stderr, "tekup tenant key rotate: --grace-hours must be 0 to 2160\n");
		return TK_EXIT_USAGE;
	}
	if (expires && !tk_is_timestamp(expires, strlen(expires))) {
		fprintf(stderr, "tekup tenant key create: --expires-at must be ISO 8601\n");
		return TK_EXIT_USAGE;
	}
	cli_op op = {.kind = list     ? OP_KEYS
	                     : create ? OP_KEY_CREATE
	                     : revoke ? OP_KEY_REVOKE
	                              : OP_KEY_ROTATE,
	             .tenant = pos[1],
	             .other = want == 3 ? pos[2] : NULL,
	             .name = name,
	             .expires = expires,
	             .number = hours};
	return run_op(cfg, &op);
}

static int tenant_migrate_cmd(const tk_config *cfg, int n, char **args)
{
	bool no_leads = false, users = false, archive = false;
	const char *pos[2];
	int npos;
	cli_opt opts[] = {{"--no-leads", NULL, &no_leads},
	                  {"--users", NULL, &users},
	                  {"--archive-source", NULL, &archive}};
	if (parse_opts("tenant migrate", n, args, opts, TK_ARRAY_LEN(opts), pos, 2, &npos) != TK_OK)
		return TK_EXIT_USAGE;
	if (npos != 2) {
		fprintf(stderr, "tekup tenant migrate: expected SOURCE and TARGET tenant ids\n");
		return TK_EXIT_USAGE;
	}
	if (!is_uuid_arg("tenant migrate", "SOURCE", pos[0]) ||
	    !is_uuid_arg("tenant migrate", "TARGET", pos[1]))
		return TK_EXIT_USAGE;
	if (no_leads && !users) {
		fprintf(stderr,
		        "tekup tenant migrate: nothing to copy (--no-leads without --users)\n");
		return TK_EXIT_USAGE;
	}
	cli_op op = {.kind = OP_MIGRATE,
	             .tenant = pos[0],
	             .other = pos[1],
	             .leads = !no_leads,
	             .users = users,
	             .archive = archive};
	return run_op(cfg, &op);
}

static int tenant_batch_cmd(const tk_config *cfg, const char *sub, int n, char **args)
{
	bool dry_run = false;
	const char *days = NULL, *pos[1];
	int npos;
	bool cleanup = !strcmp(sub, "cleanup");
	cli_opt opts[] = {{"--dry-run", NULL, &dry_run}, {"--older-than-days", &days, NULL}};
	if (parse_opts(sub, n, args, opts, cleanup ? 2 : 1, pos, 0, &npos) != TK_OK)
		return TK_EXIT_USAGE;
	long older = cfg->archive_retention_days;
	if (days && !tk_parse_int(days, 0, 36500, &older)) {
		fprintf(stderr, "tekup tenant cleanup: --older-than-days must be 0 to 36500\n");
		return TK_EXIT_USAGE;
	}
	cli_op op = {
	    .kind = cleanup ? OP_CLEANUP : OP_RETENTION, .number = older, .dry_run = dry_run};
	return run_op(cfg, &op);
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
	const char *sub = nrest > 0 ? rest[0] : "";
	int code;
	if (!strcmp(sub, "create"))
		code = tenant_create_cmd(&cfg, nrest - 1, rest + 1);
	else if (!strcmp(sub, "list"))
		code = tenant_list_cmd(&cfg, nrest - 1, rest + 1);
	else if (!strcmp(sub, "show") || !strcmp(sub, "set") || !strcmp(sub, "suspend") ||
	         !strcmp(sub, "activate") || !strcmp(sub, "archive"))
		code = tenant_change_cmd(&cfg, sub, nrest - 1, rest + 1);
	else if (!strcmp(sub, "key"))
		code = tenant_key_cmd(&cfg, nrest - 1, rest + 1);
	else if (!strcmp(sub, "migrate"))
		code = tenant_migrate_cmd(&cfg, nrest - 1, rest + 1);
	else if (!strcmp(sub, "cleanup") || !strcmp(sub, "retention"))
		code = tenant_batch_cmd(&cfg, sub, nrest - 1, rest + 1);
	else if (sub[0] == '\0') {
		fprintf(stderr,
		        "tekup tenant: expected a command: create, list, show, set, suspend, "
		        "activate, archive, key, migrate, cleanup or retention\n");
		code = TK_EXIT_USAGE;
	} else {
		fprintf(stderr, "tekup tenant: unknown command '%s' (see tekup tenant --help)\n",
		        sub);
		code = TK_EXIT_USAGE;
	}
	tk_config_free(&cfg);
	return code;
}

int cmd_admin(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf(
		    "usage: tekup admin token create --name NAME | token list | token revoke ID\n\n"
		    "Operator tokens authenticate the /admin API (Authorization: Bearer ...).\n"
		    "A new token is printed once; only its SHA-256 is stored.\n");
		return TK_EXIT_OK;
	}
	tk_config cfg;
	char *rest[MAX_ARGS];
	int nrest = 0;
	if (argc > MAX_ARGS || cli_load_config(&cfg, TK_CFG_DB, argc, argv, rest, &nrest) != TK_OK)
		return TK_EXIT_USAGE;
	const char *name = NULL, *pos[3];
	int npos = 0, code = TK_EXIT_USAGE;
	cli_opt opts[] = {{"--name", &name, NULL}};
	if (parse_opts("admin", nrest, rest, opts, 1, pos, 3, &npos) != TK_OK)
		goto done;
	bool create = npos == 2 && !strcmp(pos[0], "token") && !strcmp(pos[1], "create");
	bool list = npos == 2 && !strcmp(pos[0], "token") && !strcmp(pos[1], "list");
	bool revoke = npos == 3 && !strcmp(pos[0], "token") && !strcmp(pos[1], "revoke");
	if (!create && !list && !revoke) {
		fprintf(stderr,
		        "tekup admin: expected token create --name NAME, token list or token "
		        "revoke ID\n");
		goto done;
	}
	if (create && (name == NULL || name[0] == '\0' || strlen(name) > 100)) {
		fprintf(stderr,
		        "tekup admin token create: --name (1 to 100 characters) is required\n");
		goto done;
	}
	if (revoke && !is_uuid_arg("admin token revoke", "ID", pos[2]))
		goto done;
	code = TK_EXIT_FAILURE;
	cli_urls urls;
	if (cli_database_urls(&cfg, &urls) != TK_OK)
		goto done;
	PGconn *pg = PQconnectdb(urls.operator_);
	if (PQstatus(pg) != CONNECTION_OK)
		log_error("cannot connect to PostgreSQL as the operator role");
	else if ((create && operator_token_create(pg, name, cli_actor(), stdout) == TK_OK) ||
	         (list && operator_token_list(pg, stdout) == TK_OK) ||
	         (revoke && operator_token_revoke(pg, pos[2], cli_actor(), stdout) == TK_OK))
		code = TK_EXIT_OK;
	PQfinish(pg);
done:
	tk_config_free(&cfg);
	return code;
}
