/*
 * tx.h - one request transaction, sent to PostgreSQL in one round trip.
 *
 * A handler queues its statements, then db_tx_run sends, in libpq pipeline
 * mode and without waiting in between:
 *
 *     BEGIN
 *     SET LOCAL app.current_tenant = '<uuid>'   (when a tenant is set)
 *     SET LOCAL app."current_user", app.current_user_role  (a signed-in user)
 *     SELECT session_assert(...)   (a user taken from the session cache)
 *     [Parse of any statement this connection has not prepared yet]
 *     the queued statements, as prepared statements with bound parameters
 *     COMMIT
 *     Sync
 *
 * and then reads every result.  (Batched requests, server.c, put several
 * such transactions in one pipeline with the Sync after the last; see
 * below.)
 * The tenant UUID is one the server resolved
 * and validated itself; it is never client text.  Because the context is
 * SET LOCAL it ends with the transaction: a pooled connection cannot carry
 * one tenant's context into another's request.
 *
 * If any statement fails, PostgreSQL skips the rest of the pipeline and the
 * transaction is rolled back (by db_pool_release), so a failed request
 * writes nothing.  The failure is mapped from its SQLSTATE to an API error
 * in one table (tx.c).  Results are owned by the tx and freed by
 * db_tx_clear; the tx itself lives in the request arena.
 */
#ifndef TK_DB_TX_H
#define TK_DB_TX_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "db/pool.h"
#include "util/arena.h"
#include "util/error.h"
#include "util/status.h"

#define DB_TX_MAX_STATEMENTS 16
#define DB_TX_MAX_PARAMS     32

typedef struct db_tx db_tx;

db_tx *db_tx_new(tk_arena *arena, db_conn *conn);
/* tenant_uuid must be a validated, lower-case UUID; copied. */
void db_tx_set_tenant(db_tx *tx, const char *tenant_uuid);
/* user_uuid: a validated UUID; role: "admin" or "user" (literals we chose).
 * A "user" transaction runs SET LOCAL ROLE tekup_app_user (migration 0016)
 * unless db_pool_set_user_role(false) said the schema predates it. */
void db_tx_set_user(db_tx *tx, const char *user_uuid, const char *role);
/* Makes the transaction first check (after the SET LOCALs) that the
 * session whose token has this SHA-256 (bytea hex, borrowed until the tx's
 * last db_tx_send/db_tx_receive; needs a tenant and a user) is live and
 * belongs to the tenant, user and role it sets: session_assert(), which
 * raises TKS01 otherwise.  Then the transaction fails with 401
 * invalid_session before doing anything, and db_tx_session_ended says so. */
void db_tx_check_session(db_tx *tx, const char *token_hash_hex); /* before db_tx_add */
bool db_tx_session_ended(const db_tx *tx);
/*
 * Queues a statement; returns its index for db_tx_result.  sql and values are
 * borrowed until its results are read (values may be NULL for SQL NULL).
 * At most DB_TX_MAX_STATEMENTS statements of DB_TX_MAX_PARAMS parameters.
 */
int db_tx_add(db_tx *tx, const char *sql, int nparams, const char *const *values);
/* Runs the transaction.  On failure err says why (4xx for data errors, 503 for
 * an unreachable database, 500 otherwise). */
tk_status db_tx_run(db_tx *tx, tk_error *err) TK_MUST_CHECK;
/*
 * Coalescing (server.c): several request transactions sent on one
 * connection in one pipeline, with one Sync after the last (sync = true
 * for it only), so the lot is one write and one round trip.  db_tx_bind
 * gives a tx made with no connection its connection; db_tx_send queues it
 * (false: the connection is gone); db_tx_receive reads its results, in the
 * order sent.  When a batched tx fails, PostgreSQL skips everything after
 * it up to the Sync (those report db_tx_skipped) and leaves its transaction
 * aborted for the caller to roll back (db_pool_release does).
 */
void db_tx_bind(db_tx *tx, db_conn *conn);
void db_tx_set_batched(db_tx *tx, bool batched);
/*
 * How a transaction's COMMIT reaches the disk, so that the writes of one
 * pipeline can share one WAL flush (server.c):
 *
 *   OWN       as the connection's synchronous_commit says (the default).
 *   DEFERRED  ends with set_config('synchronous_commit', 'off', true): its
 *             COMMIT returns before its WAL is flushed, so it is NOT yet
 *             durable, though other transactions already see it.
 *   ANCHOR    ends with wal_flush_point() (migration 0013), which writes
 *             WAL, so that its COMMIT waits for the flush (and for any
 *             synchronous standby) as OWN does, even when the rest of the
 *             transaction wrote nothing.
 *
 * One backend runs a pipeline's transactions in order, so an ANCHOR's
 * commit record follows those of the DEFERRED ones before it, and its
 * flush covers them: a DEFERRED transaction is durable once an ANCHOR
 * after it in the same pipeline has committed, or db_tx_flush_wal has
 * succeeded on its connection; until then it must not be acknowledged.
 * Only within one PostgreSQL instance: on Citus each node has its own WAL,
 * and a restart or failover may lose what was not flushed.  Reset to OWN
 * by db_tx_clear.
 */
typedef enum db_tx_flush { DB_TX_FLUSH_OWN, DB_TX_FLUSH_DEFERRED, DB_TX_FLUSH_ANCHOR } db_tx_flush;
void db_tx_set_flush(db_tx *tx, db_tx_flush flush);
/* The tx failed because its flush statement's function is missing or not
 * executable (42883, 42501: the schema changed under the server): it was
 * rolled back, and nothing of it took effect. */
bool db_tx_flush_failed(const db_tx *tx);
/*
 * An ANCHOR transaction and nothing else, on conn, right after a pipeline
 * whose ANCHOR did not commit: makes its DEFERRED commits durable.  It
 * must run on the backend that ran them (its survival proves they are in
 * the WAL it flushes), so it refuses (503) a connection that cannot be
 * sure of that: broken, or behind PgBouncer with no transaction open to
 * pin the backend.  Rolls back the connection's failed transaction first.
 */
tk_status db_tx_flush_wal(db_conn *conn, tk_error *err) TK_MUST_CHECK;
tk_status db_tx_send(db_tx *tx, bool sync) TK_MUST_CHECK;
/*
 * How long PostgreSQL may legitimately take to run what the last
 * db_tx_send sent, in ms: statement_timeout applies to each statement on
 * its own, so it is statement_timeout times the statements that run SQL
 * (the queued ones, the session check, the flush statement and COMMIT;
 * not BEGIN, the SET LOCALs or a ROLLBACK, which are left to the grace).
 * db_tx_send gives a tx that has its own Sync (db_tx_run) this budget plus
 * DB_REPLY_GRACE_MS, from the send, to answer; past that its connection is
 * taken for dead (503 database_unavailable), though the transaction may
 * still commit: the budget must never be shorter than PostgreSQL may take.
 */
long long db_tx_budget_ms(const db_tx *tx);
/*
 * How long to wait for a batched tx's results, from now: batch_budget_ms
 * is the sum of db_tx_budget_ms over every tx sent in its pipeline up to
 * its Sync, as PostgreSQL holds a pipeline's results until the Sync, so
 * the first answer comes only when the last transaction has run; plus
 * DB_REPLY_GRACE_MS.  For each tx of the pipeline before reading the
 * first.
 */
void db_tx_allow_batch(db_tx *tx, long long batch_budget_ms);
/* For a tx that was sent but whose results will never be read (its
 * connection is lost): forgets the statement names it reserved there. */
void db_tx_abandon(db_tx *tx);
/* The batch's earlier failure skipped this tx: it never ran. */
bool db_tx_skipped(const db_tx *tx);
tk_status db_tx_receive(db_tx *tx, tk_error *err) TK_MUST_CHECK;
/* Drops the results of a batched tx that must be sent again; keeps its statements. */
void db_tx_forget_results(db_tx *tx);
/* The result of statement idx (borrowed; valid until db_tx_clear). */
PGresult *db_tx_result(db_tx *tx, int idx);
/* Whether the last failure was a lost connection (safe to retry reads). */
bool db_tx_connection_lost(const db_tx *tx);
void db_tx_clear(db_tx *tx);

/* Maps a SQLSTATE to an API error (exposed for unit tests). */
void db_error_from_sqlstate(const char *sqlstate, const char *constraint, tk_error *err);

#endif
