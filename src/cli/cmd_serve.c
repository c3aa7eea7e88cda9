/*
 * cmd_serve.c - `tekup serve`: migrate, first-run demo, then serve HTTP
 * until SIGTERM or SIGINT, and shut down gracefully.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cli/cli.h"
#include "db/migrate.h"
#include "http/server.h"
#include "outbox/outbox.h"
#include "db/tx.h"
#include "tenants/maintenance.h"
#include "tenants/provision.h"
#include "users/user.h"
#include "util/alloc.h"
#include "util/log.h"

#define DEMO_SAMPLE_LEADS 5
/* Operator traffic (/admin, jobs) is light; it must not take request slots. */
#define SERVE_OPERATOR_POOL_SIZE 2
/* Client addresses the sign-in limit keeps at once (auth/signin_limit.h). */
#define SERVE_SIGNIN_ADDRESSES 4096
/* Operator work (a 100,000-lead migration, a cleanup batch) may take minutes. */
#define SERVE_OPERATOR_STATEMENT_TIMEOUT_MS (30 * 60 * 1000)
/* Freed memory each malloc arena keeps (util/alloc.h): a few batches of
 * deep pages' results; 1 MiB already took most of W5's gain (bench/README). */
#define SERVE_MALLOC_KEEP_BYTES (4 * 1024 * 1024)

static void serve_usage(void)
{
	printf("usage: tekup serve [options]\n\n"
	       "Serves the lead API over HTTP.  Without DATABASE_URL it runs its own\n"
	       "PostgreSQL cluster under --data-dir.  Applies migrations first unless\n"
	       "--no-migrate.  On the first run creates a demo tenant and prints its key.\n\n"
	       "options (flag, or the environment variable shown):\n");
	tk_config_usage(stdout, TK_CFG_SERVE);
}

/* Asks the database a start-up question whose one row is n booleans
 * (answers); false, with err set, when it cannot be asked. */
static bool ask_database(db_pool *pool, const char *sql, bool *answers, int n, tk_error *err)
{
	db_conn *conn = NULL;
	if (db_pool_acquire(pool, &conn, err) != TK_OK)
		return false;
	tk_arena *arena = tk_arena_create();
	db_tx *tx = db_tx_new(arena, conn);
	int q = db_tx_add(tx, sql, 0, NULL);
	bool asked = db_tx_run(tx, err) == TK_OK;
	for (int i = 0; asked && i < n; i++)
		answers[i] = strcmp(PQgetvalue(db_tx_result(tx, q), 0, i), "t") == 0;
	db_tx_clear(tx);
	db_pool_release(pool, conn);
	tk_arena_destroy(arena);
	return asked;
}

/*
 * The session cache, when configured and the schema has session_assert()
 * (migration 0012), which every remembered session's request runs; NULL
 * (off) otherwise, with a warning, so that a binary newer than its schema
 * (serve --no-migrate) still serves signed-in users, two round trips each.
 * If the database cannot be asked now, the cache is on: a request whose
 * check finds the function missing is verified the old way (tx.c).
 */
static session_cache *sessions_if_supported(const tk_config *cfg, db_pool *pool)
{
	if (!cfg->session_cache)
		return NULL;
	bool has_function = true;
	tk_error err = {0};
	if (ask_database(pool, "SELECT to_regprocedure('session_assert(uuid,bytea)') IS NOT NULL",
	                 &has_function, 1, &err) &&
	    !has_function) {
		log_warn("the schema has no session_assert() (run tekup migrate): signed-in "
		         "requests verify their session in a transaction of their own");
		return NULL;
	}
	return context_sessions_create();
}

/*
 * Whether the schema has tekup_app_user and its policy (migration 0016),
 * for a binary newer than its schema (serve --no-migrate): without them a
 * plain user's transactions stay on the login role, whose older policies
 * read the user from the settings.  If the database cannot be asked, the
 * role is assumed (a plain user's requests then fail rather than read more).
 */
static void detect_user_role(db_pool *pool)
{
	bool exists = true;
	tk_error err = {0};
	if (ask_database(pool,
	                 "SELECT to_regrole('tekup_app_user') IS NOT NULL AND EXISTS (SELECT 1"
	                 " FROM pg_policies WHERE schemaname = 'public' AND tablename = 'leads'"
	                 " AND policyname = 'leads_user_select')",
	                 &exists, 1, &err) &&
	    !exists) {
		log_warn("the schema has no tekup_app_user (run tekup migrate, then restart): "
		         "signed-in users who are not admins read leads as before");
		db_pool_set_user_role(pool, false);
	}
}

/*
 * Whether the writes of a pipeline may share one WAL flush (db/tx.h,
 * db_tx_flush): when configured, the schema has wal_flush_point()
 * (migration 0013), and the database is not a Citus coordinator, whose
 * workers each flush their own WAL, so that the coordinator's flush would
 * vouch for none of them.  Off, with a warning, when it cannot be asked.
 */
static bool shared_flush_if_supported(const tk_config *cfg, db_pool *pool)
{
	if (!cfg->shared_flush)
		return false;
	bool answers[2] = {false, false}; /* has the function, is Citus */
	tk_error err = {0};
	if (!ask_database(pool,
	                  "SELECT CASE WHEN to_regprocedure('public.wal_flush_point()') IS NULL"
	                  " THEN false ELSE has_function_privilege("
	                  "to_regprocedure('public.wal_flush_point()'), 'EXECUTE') END,"
	                  " EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')",
	                  answers, 2, &err)) {
		log_warn("cannot check the database (%s): writes sent together each wait for "
		         "their own WAL flush",
		         err.message);
		return false;
	}
	if (!answers[0])
		log_warn("the schema has no wal_flush_point() (run tekup migrate): writes sent "
		         "together each wait for their own WAL flush");
	else if (answers[1])
		log_info("Citus: writes sent together each wait for their own WAL flush");
	return answers[0] && !answers[1];
}

/* On the first run (no tenant at all), a demo tenant with a few leads, made
 * through the same provisioning path as the operator API. */
static void create_demo(tk_app *app)
{
	db_conn *conn = NULL;
	tk_error err = {0};
	tk_arena *arena = tk_arena_create();
	if (db_pool_acquire(app->operator_pool, &conn, &err) != TK_OK) {
		log_warn("demo tenant skipped: %s", err.message);
		tk_arena_destroy(arena);
		return;
	}
	db_tx *tx = db_tx_new(arena, conn);
	int q = db_tx_add(tx, "SELECT EXISTS (SELECT 1 FROM tenants)", 0, NULL);
	bool empty =
	    db_tx_run(tx, &err) == TK_OK && strcmp(PQgetvalue(db_tx_result(tx, q), 0, 0), "f") == 0;
	db_tx_clear(tx);
	provision_request in = {
	    .name = "Demo Company", .plan = "professional", .sample_leads = DEMO_SAMPLE_LEADS};
	provision_actor who = {NULL, "serve:first-run-demo"};
	provision_result t;
	if (empty && provision_run(conn, arena, &in, app->master_key, app->cfg->dashboard_url, &who,
	                           &t, &err) == TK_OK) {
		printf("\nCreated a demo tenant \"Demo Company\" (%s) with %d leads.\n"
		       "Its API key (shown once, stored only as a hash):\n\n    %s\n\n"
		       "Try:\n    curl -s -H 'X-Tenant-Key: %s' http://%s:%ld/v1/leads\n\n",
		       t.tenant_id, DEMO_SAMPLE_LEADS, t.api_key, t.api_key, app->cfg->bind_address,
		       app->cfg->port);
		fflush(stdout);
	} else if (empty) {
		log_warn("demo tenant not created: %s", err.message);
	}
	db_pool_release(app->operator_pool, conn);
	tk_arena_destroy(arena);
}

int cmd_serve(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		serve_usage();
		return TK_EXIT_OK;
	}
	tk_config cfg;
	char *rest[64];
	int nrest = 0;
	if (argc > 64 ||
	    cli_load_config(&cfg, TK_CFG_SERVE | TK_CFG_DB, argc, argv, rest, &nrest) != TK_OK)
		return TK_EXIT_USAGE;
	if (nrest > 0) {
		fprintf(stderr, "tekup serve: unknown argument '%s' (see tekup serve --help)\n",
		        rest[0]);
		tk_config_free(&cfg);
		return TK_EXIT_USAGE;
	}
	int code = TK_EXIT_FAILURE;
	cli_urls urls;
	db_pool *pool = NULL;
	db_pool *operator_pool = NULL;
	maintenance *jobs = NULL;
	tenant_cache *tenants = NULL;
	session_cache *sessions = NULL;
	tk_signin_limit *signin_limit = NULL;
	tk_server *server = NULL;
	outbox_worker *outbox = NULL;

	if (cli_database_urls(&cfg, &urls) != TK_OK)
		goto cleanup;
	if (cfg.migrate &&
	    tk_migrate(urls.admin, tk_migrations_default_dir(cfg.migrations_dir), stderr) != TK_OK)
		goto cleanup;

	/* Block the stop signals before any thread starts, so every thread
	 * inherits the mask and only sigwait below receives them. */
	sigset_t stop_signals;
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	signal(SIGPIPE, SIG_IGN);
	tk_alloc_keep_freed_memory(SERVE_MALLOC_KEEP_BYTES);

	db_pool_options po = {
	    .name = "request",
	    .conninfo = urls.request,
	    .size = (int)cfg.pool_size,
	    .acquire_timeout_ms = (int)cfg.pool_acquire_timeout_ms,
	    .recheck_after_ms = (int)cfg.pool_recheck_after_ms,
	    .statement_timeout_ms = (int)cfg.statement_timeout_ms,
	    .unnamed_statements = cfg.pgbouncer,
	};
	pool = db_pool_create(&po);
	/* Always started: it idles when no peer is configured. */
	outbox = outbox_worker_start(&cfg, urls.operator_);
	if (outbox == NULL)
		goto cleanup;
	db_pool_options oo = po;
	oo.name = "operator";
	oo.conninfo = urls.operator_;
	oo.size = SERVE_OPERATOR_POOL_SIZE;
	oo.statement_timeout_ms = SERVE_OPERATOR_STATEMENT_TIMEOUT_MS;
	/* Operator URLs are meant to go straight to PostgreSQL; a pooler in
	 * front is found by the pool itself. */
	oo.unnamed_statements = false;
	operator_pool = db_pool_create(&oo);
	tenants = tenant_cache_create(cfg.key_cache_ttl_ms);
	sessions = sessions_if_supported(&cfg, pool);
	detect_user_role(pool);
	signin_limit = tk_signin_limit_new(SERVE_SIGNIN_ADDRESSES, TK_LOGIN_MAX_IP_FAILURES,
	                                   TK_LOGIN_WINDOW_MIN * 60);
	tk_app app = {.cfg = &cfg,
	              .pool = pool,
	              .operator_pool = operator_pool,
	              .tenants = tenants,
	              .sessions = sessions,
	              .signin_limit = signin_limit,
	              .shared_flush = shared_flush_if_supported(&cfg, pool)};
	if (cli_master_key(&cfg, app.master_key) != TK_OK)
		goto cleanup;
	if (cfg.demo)
		create_demo(&app);
	server = tk_server_start(&app);
	if (server == NULL)
		goto cleanup;
	jobs = maintenance_start(&app);
	log_info("tekup %s listening on http://%s:%ld (%ld threads, pool of %ld%s)", TEKUP_VERSION,
	         cfg.bind_address, cfg.port, cfg.threads, cfg.pool_size,
	         cfg.pgbouncer ? ", pgbouncer mode" : "");
	int sig = 0;
	sigwait(&stop_signals, &sig);
	log_info("received %s: finishing in-flight requests (up to %lds)",
	         sig == SIGTERM ? "SIGTERM" : "SIGINT", cfg.shutdown_timeout_s);
	tk_server_stop(server, (int)cfg.shutdown_timeout_s);
	server = NULL;
	maintenance_stop(jobs);
	jobs = NULL;
	outbox_worker_stop(outbox);
	outbox = NULL;
	log_info("stopped");
	code = TK_EXIT_OK;
cleanup:
	tk_server_stop(server, 0);
	maintenance_stop(jobs);
	outbox_worker_stop(outbox);
	db_pool_destroy(pool);
	db_pool_destroy(operator_pool);
	tenant_cache_destroy(tenants);
	context_sessions_destroy(sessions);
	tk_signin_limit_free(signin_limit);
	tk_config_free(&cfg);
	return code;
}
