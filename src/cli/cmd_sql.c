/*
 * cmd_sql.c - `tekup sql ENDPOINT [QUERY]`: print, as JSON, the exact SQL
 * statement an endpoint sends and its parameters.
 *
 * A developer tool: the benchmark (bench/) feeds these statements to pgbench
 * to measure the database limit for precisely the work the server does, and
 * anyone can EXPLAIN them.  $1 is always the tenant id.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "http/request.h"
#include "leads/lead.h"
#include "util/buf.h"

#define SQL_TENANT_PLACEHOLDER "00000000-0000-0000-0000-000000000000"

static void print_json(const char *sql, int nparams, const char *const *params)
{
	tk_buf b = TK_BUF_INIT;
	tk_buf_puts(&b, "{\"sql\":");
	tk_buf_json_string(&b, sql, strlen(sql));
	tk_buf_puts(&b, ",\"params\":[");
	for (int i = 0; i < nparams; i++) {
		if (i)
			tk_buf_putc(&b, ',');
		if (params[i])
			tk_buf_json_string(&b, params[i], strlen(params[i]));
		else
			tk_buf_puts(&b, "null");
	}
	tk_buf_puts(&b, "]}\n");
	fwrite(b.data, 1, b.len, stdout);
	tk_buf_free(&b);
}

/* Splits "a=1&b=2" into req->query (no percent-decoding: a developer tool). */
static tk_status parse_query(tk_request *req, const char *query)
{
	char *copy = tk_arena_strdup(req->arena, query);
	char *save = NULL;
	for (char *part = strtok_r(copy, "&", &save); part; part = strtok_r(NULL, "&", &save)) {
		if (req->nquery >= TK_QUERY_MAX_PARAMS)
			return TK_ERR;
		char *eq = strchr(part, '=');
		tk_query_param *q = &req->query[req->nquery++];
		if (eq)
			*eq = '\0';
		q->name = part;
		q->value = eq ? eq + 1 : "";
		q->value_len = strlen(q->value);
	}
	return TK_OK;
}

int cmd_sql(int argc, char **argv)
{
	if (cli_wants_help(argc, argv) || argc < 2 || argc > 3) {
		printf("usage: tekup sql get|create|delete|stats|list [QUERY]\n\n"
		       "Prints {\"sql\": ..., \"params\": [...]} for the statement the endpoint\n"
		       "sends ($1 is the tenant).  QUERY is a list query string, e.g.\n"
		       "'status=NEW&limit=20&fields=id,name'.\n");
		return cli_wants_help(argc, argv) ? TK_EXIT_OK : TK_EXIT_USAGE;
	}
	const char *what = argv[1];
	int code = TK_EXIT_OK;
	tk_request req = {0};
	req.arena = tk_arena_create();
	snprintf(req.tenant.id, sizeof req.tenant.id, "%s", SQL_TENANT_PLACEHOLDER);
	const char *tenant_only[] = {SQL_TENANT_PLACEHOLDER};
	if (!strcmp(what, "get")) {
		print_json(lead_sql_get(req.arena), 1, tenant_only);
	} else if (!strcmp(what, "create")) {
		print_json(lead_sql_create(req.arena), 1, tenant_only);
	} else if (!strcmp(what, "delete")) {
		print_json(lead_sql_delete, 1, tenant_only);
	} else if (!strcmp(what, "stats")) {
		print_json(lead_sql_stats, 1, tenant_only);
	} else if (!strcmp(what, "list")) {
		lead_list_plan plan;
		tk_error err = {0};
		if (parse_query(&req, argc == 3 ? argv[2] : "") != TK_OK ||
		    lead_list_plan_build(&req, &plan, &err) != TK_OK) {
			fprintf(stderr, "tekup sql: %s (%s)\n",
			        err.message[0] ? err.message : "bad query", err.field);
			code = TK_EXIT_USAGE;
		} else {
			print_json(plan.sql, plan.nparams, plan.params);
		}
	} else {
		fprintf(stderr, "tekup sql: unknown endpoint '%s'\n", what);
		code = TK_EXIT_USAGE;
	}
	tk_arena_destroy(req.arena);
	return code;
}
