/*
 * maintenance.c - the daily cleanup and retention job (see maintenance.h).
 */
#include "tenants/maintenance.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/tx.h"
#include "tenants/tenant_ops.h"
#include "util/alloc.h"
#include "util/log.h"

/* Arbitrary but fixed, distinct from the migration lock. */
#define MAINTENANCE_LOCK_KEY "7238450124"
/* How often a server checks whether the job is due. */
#define MAINTENANCE_CHECK_MAX_S 60

struct maintenance {
	tk_app *app;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stopping;
};

static tk_status run_sql(db_conn *conn, tk_arena *arena, const char *sql, int n,
                         const char *const *params, char *first, size_t first_len)
{
	tk_error err = {0};
	db_tx *tx = db_tx_new(arena, conn);
	int q = db_tx_add(tx, sql, n, params);
	tk_status st = db_tx_run(tx, &err);
	if (st == TK_OK && first) {
		PGresult *r = db_tx_result(tx, q);
		snprintf(first, first_len, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
	}
	if (st != TK_OK)
		log_warn("maintenance: %s", err.message);
	db_tx_clear(tx);
	return st;
}

/* One check: take the lock, run the job if due, record it, unlock. */
static void maintenance_step(maintenance *m)
{
	tk_app *app = m->app;
	db_conn *conn = NULL;
	tk_error err = {0};
	tk_arena *arena = tk_arena_create();
	char got[8] = "", due[8] = "";
	char interval[32];
	snprintf(interval, sizeof interval, "%ld", app->cfg->maintenance_interval_s);
	const char *interval_p[] = {interval};
	if (db_pool_acquire(app->operator_pool, &conn, &err) != TK_OK)
		goto done;
	if (run_sql(conn, arena, "SELECT pg_try_advisory_lock(" MAINTENANCE_LOCK_KEY ")", 0, NULL,
	            got, sizeof got) != TK_OK ||
	    strcmp(got, "t") != 0)
		goto release; /* another server is running it */
	if (run_sql(conn, arena,
	            "SELECT NOT EXISTS (SELECT 1 FROM maintenance_runs WHERE job = 'daily'"
	            " AND started_at > now() - make_interval(secs => $1::int))",
	            1, interval_p, due, sizeof due) == TK_OK &&
	    strcmp(due, "t") == 0 &&
	    run_sql(conn, arena,
	            "INSERT INTO maintenance_runs (job, started_at) VALUES ('daily', now())"
	            " ON CONFLICT (job) DO UPDATE SET started_at = now(), finished_at = NULL",
	            0, NULL, NULL, 0) == TK_OK) {
		ops_actor who = {NULL, "serve:daily-maintenance"};
		const char *cleanup = NULL, *retention = NULL;
		tk_error e1 = {0}, e2 = {0};
		if (tenant_ops_cleanup(conn, arena, &who, app->cfg->archive_retention_days, false,
		                       &cleanup, &e1) != TK_OK)
			log_warn("maintenance: cleanup failed: %s", e1.message);
		if (tenant_ops_retention(conn, arena, &who, false, &retention, &e2) != TK_OK)
			log_warn("maintenance: retention failed: %s", e2.message);
		const char *result =
		    tk_arena_printf(arena, "{\"cleanup\":%s,\"retention\":%s}",
		                    cleanup ? cleanup : "null", retention ? retention : "null");
		const char *p[] = {result};
		if (run_sql(conn, arena,
		            "UPDATE maintenance_runs SET finished_at = now(), result = $1::jsonb"
		            " WHERE job = 'daily'",
		            1, p, NULL, 0) == TK_OK)
			log_info("maintenance: daily cleanup and retention done");
	}
	if (run_sql(conn, arena, "SELECT pg_advisory_unlock(" MAINTENANCE_LOCK_KEY ")", 0, NULL,
	            NULL, 0) != TK_OK)
		db_conn_mark_broken(conn); /* closing the session drops the lock */
release:
	db_pool_release(app->operator_pool, conn);
done:
	tk_arena_destroy(arena);
}

static void *maintenance_main(void *arg)
{
	maintenance *m = arg;
	long period = m->app->cfg->maintenance_interval_s;
	if (period > MAINTENANCE_CHECK_MAX_S)
		period = MAINTENANCE_CHECK_MAX_S;
	pthread_mutex_lock(&m->lock);
	while (!m->stopping) {
		pthread_mutex_unlock(&m->lock);
		maintenance_step(m);
		pthread_mutex_lock(&m->lock);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += period;
		while (!m->stopping &&
		       pthread_cond_timedwait(&m->wake, &m->lock, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

maintenance *maintenance_start(tk_app *app)
{
	if (!app->cfg->maintenance)
		return NULL;
	maintenance *m = tk_calloc(1, sizeof *m);
	m->app = app;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->wake, NULL);
	if (pthread_create(&m->thread, NULL, maintenance_main, m) != 0) {
		log_error("cannot start the maintenance thread");
		free(m);
		return NULL;
	}
	return m;
}

void maintenance_stop(maintenance *m)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	m->stopping = true;
	pthread_cond_signal(&m->wake);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->thread, NULL);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->wake);
	free(m);
}
