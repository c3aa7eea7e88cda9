/*
 * pool.h - a fixed-size pool of libpq connections for request transactions.
 *
 * Connections are made lazily, on the first acquire that finds an empty
 * slot: start-up does not fail or stall when PostgreSQL is briefly down,
 * and a pool sized for peak load costs nothing while idle.  A connection
 * lives in pipeline mode from birth (see tx.h).  A connection goes back to
 * the pool only when its transaction status is idle; otherwise it is rolled
 * back or, failing that, closed and its slot emptied, so no transaction (and
 * so no SET LOCAL tenant context) can outlive the request that began it.
 * After a failed connect, further connects are refused for a backoff that
 * doubles with each consecutive failure (100 ms to 2 s), so a PostgreSQL
 * outage costs requests a fast 503, not a pile-up, and recovery is noticed
 * within about 2 s of PostgreSQL coming back.  A connection idle for
 * recheck_after_ms or more is checked (one non-blocking poll) before it is
 * handed out, so one that PostgreSQL closed while idle is replaced, not
 * failed on; after one is found dead, every acquire checks for as long.
 * The pool never waits for PostgreSQL without a deadline (a new
 * connection's set-up, a release's ROLLBACK: statement_timeout plus
 * DB_REPLY_GRACE_MS): a peer that stops answering costs the request a 503
 * and the pool the connection, never a worker for good.
 *
 * Thread-safe.  The pool owns its connections; an acquired db_conn is
 * borrowed by the caller until db_pool_release.
 */
#ifndef TK_DB_POOL_H
#define TK_DB_POOL_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "util/error.h"
#include "util/status.h"

typedef struct db_pool db_pool;
typedef struct db_conn db_conn;

typedef struct db_pool_options {
	const char *name;         /* for log lines: "request", "operator"; borrowed */
	const char *conninfo;     /* libpq URL or key=value string; copied */
	int size;                 /* number of connections */
	int acquire_timeout_ms;   /* wait for a free connection, then 503 */
	int recheck_after_ms;     /* no liveness poll if released more recently */
	int statement_timeout_ms; /* applied to every request transaction */
	/* PgBouncer transaction pooling: unnamed statements, settings per
	 * transaction.  Without it each new connection checks whether a pooler
	 * answers for PostgreSQL (its cancel key is not the backend's) and if
	 * so runs this way too. */
	bool unnamed_statements;
} db_pool_options;

db_pool *db_pool_create(const db_pool_options *opts);
/* Waits for a connection; 503 pool_timeout or database_unavailable on failure. */
tk_status db_pool_acquire(db_pool *pool, db_conn **out, tk_error *err) TK_MUST_CHECK;
/*
 * A connection only if more than keep_free are free now, without waiting
 * for one to be released; false otherwise, and on any failure.  A free slot
 * with no connection yet is connected here, like any acquire, unless the
 * pool is in its reconnect backoff.  For extra work that can also run on a
 * connection the caller already holds: a caller that holds one never waits
 * for another, so two callers cannot deadlock, and keep_free leaves
 * connections for the callers that hold none.
 */
bool db_pool_try_acquire(db_pool *pool, int keep_free, db_conn **out) TK_MUST_CHECK;
void db_pool_release(db_pool *pool, db_conn *conn);
/* Whether the schema has tekup_app_user (migration 0016); true until told
 * otherwise.  Set once at start, before any transaction is sent.  When
 * wrongly true, a plain user's transactions fail; when wrongly false, the
 * leads wall of 0016 refuses them: never more rows than the rule allows. */
void db_pool_set_user_role(db_pool *pool, bool exists);
/* Closes every connection; no acquire may be in progress. */
void db_pool_destroy(db_pool *pool);

/* Names of BEGIN and COMMIT, prepared on every connection of a pool that
 * uses named statements (not behind PgBouncer). */
#define DB_STMT_BEGIN  "tk_begin"
#define DB_STMT_COMMIT "tk_commit"

/* For tx.c: the underlying connection and its prepared-statement cache. */
PGconn *db_conn_pg(db_conn *conn);
bool db_conn_unnamed_statements(const db_conn *conn);
int db_conn_statement_timeout_ms(const db_conn *conn);
/* Its pool's db_pool_set_user_role. */
bool db_conn_user_role(const db_conn *conn);
/* Statements are cached per database role (as_user: run as tekup_app_user):
 * PostgreSQL re-plans a prepared statement whose policies depend on the
 * role whenever it runs under another role than before, so one name per
 * role keeps each plan valid. */
/* Returns the cached statement name for sql, or NULL when not yet prepared. */
const char *db_conn_statement_lookup(db_conn *conn, const char *sql, unsigned long hash,
                                     bool as_user);
/* Reserves a name for sql (to be prepared now); NULL when the cache is full. */
const char *db_conn_statement_reserve(db_conn *conn, const char *sql, unsigned long hash,
                                      bool as_user);
/* Confirms (prepared ok) or forgets (prepare failed) a reserved name. */
void db_conn_statement_settle(db_conn *conn, const char *name, bool prepared);

/*
 * Waiting for PostgreSQL with a deadline.  How long past its own
 * statement_timeout we wait for PostgreSQL (or PgBouncer) to answer before
 * giving the connection up: the server's timeout should fire first; the
 * grace only catches a peer that stopped answering (a stopped or
 * partitioned host, a hung pooler), which would otherwise hold a worker
 * for good.
 */
#define DB_REPLY_GRACE_MS 2000
/* Now, in ms on CLOCK_MONOTONIC: the clock of every deadline here. */
long long db_clock_ms(void);
/*
 * PQgetResult, but not waiting past deadline_ms (db_clock_ms): NULL with
 * *late set when the answer has not come by then (the connection is then
 * unusable: an answer may still arrive).  Otherwise as PQgetResult, and
 * *late is left alone.  An answer already received is taken even late.
 */
PGresult *db_get_result(PGconn *pg, long long deadline_ms, bool *late);

/* Rolls back whatever transaction is open, so the connection can run the next
 * one (batch jobs run several on one connection); false if it is unusable,
 * or did not answer within statement_timeout plus DB_REPLY_GRACE_MS (then
 * it is marked broken). */
bool db_conn_make_idle(db_conn *conn);
/* Marks a connection unusable (peer stopped answering): release closes it. */
void db_conn_mark_broken(db_conn *conn);
bool db_conn_is_broken(const db_conn *conn);

/* Opens one connection in pipeline mode (also used by the CLI). */
tk_status db_connect(const char *conninfo, PGconn **out, tk_error *err) TK_MUST_CHECK;

#endif
