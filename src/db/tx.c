/*
 * tx.c - pipelined request transactions (see tx.h).
 */
#include "db/tx.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util/log.h"

typedef struct tx_stmt {
	const char *sql;
	int nparams;
	const char *const *values;
	const char *prepare_name; /* reserved this run, to settle after */
	PGresult *result;
} tx_stmt;

/* ROLLBACK (db_tx_flush_wal), BEGIN, two PgBouncer SET LOCALs, the
 * tenant's, the user's two and the role's: the most statements sent before
 * a transaction's own. */
#define TX_MAX_AUX 8

/* The role a signed-in user who is not an admin reads leads as (migration
 * 0016): its SELECT policy is the user rule; the login role's is "all of the
 * tenant". */
#define TX_SQL_USER_ROLE "SET LOCAL ROLE tekup_app_user"

/* The statement that ends a transaction in each flush mode but the
 * default (tx.h, db_tx_flush): a deferred one commits without waiting for
 * the WAL flush; an anchor writes WAL (setval on a sequence, migration
 * 0013), so that its COMMIT waits for the flush of every record before it. */
#define TX_SQL_DEFER_FLUSH  "SELECT set_config('synchronous_commit', 'off', true)"
#define TX_SQL_FLUSH_ANCHOR "SELECT public.wal_flush_point()"

struct db_tx {
	db_conn *conn;
	long long deadline_ms;
	long long budget_ms; /* db_tx_budget_ms of what db_tx_send sent */
	char tenant[40];
	bool has_tenant;
	char user[40];
	const char *user_role;
	bool has_user;
	bool plain_user;          /* has a user who is not an admin */
	bool as_user_role;        /* runs as tekup_app_user: decided by db_tx_send */
	const char *session_hash; /* bytea hex: check the session first */
	const char *check_params[2];
	bool session_ended;  /* that check failed */
	bool flush_failed;   /* the flush statement's function is gone (tx.h) */
	bool rollback_first; /* end the connection's failed transaction first */
	bool connection_lost;
	bool own_sync; /* sent with its own Sync (not the batch's last) */
	bool skipped;  /* a batch's earlier failure skipped it: it never ran */
	bool batched;  /* another transaction may follow in the pipeline */
	int naux;      /* BEGIN and SET LOCALs sent before the statements */
	int nhidden;   /* leading statements of our own (the session check) */
	db_tx_flush flush;
	int nstmts;
	int nsent; /* sent by the last db_tx_send: nstmts and any flush statement */
	tx_stmt stmts[DB_TX_MAX_STATEMENTS + 1]; /* + the flush statement */
};

db_tx *db_tx_new(tk_arena *arena, db_conn *conn)
{
	db_tx *tx = tk_arena_calloc(arena, 1, sizeof *tx);
	tx->conn = conn;
	return tx;
}

void db_tx_set_user(db_tx *tx, const char *user_uuid, const char *role)
{
	snprintf(tx->user, sizeof tx->user, "%s", user_uuid);
	bool admin = strcmp(role, "admin") == 0;
	tx->user_role = admin ? "admin" : "user";
	tx->has_user = true;
	tx->plain_user = !admin;
}

void db_tx_check_session(db_tx *tx, const char *token_hash_hex)
{
	if (tx->nstmts > 0) { /* it must run first: db_tx_send refuses the tx */
		log_error("a session check queued after a statement");
		tx->session_hash = token_hash_hex;
		return;
	}
	/* The first statement, hidden from the caller's indexes: prepared
	 * once per connection like the others (unnamed behind PgBouncer), and
	 * sent after the SET LOCALs, so it checks the context just set. */
	tx->session_hash = token_hash_hex;
	tx->check_params[0] = tx->tenant;
	tx->check_params[1] = token_hash_hex;
	db_tx_add(tx, "SELECT session_assert($1::uuid, $2::bytea)", 2, tx->check_params);
	tx->nhidden = 1;
}

bool db_tx_session_ended(const db_tx *tx)
{
	return tx->session_ended;
}

void db_tx_set_tenant(db_tx *tx, const char *tenant_uuid)
{
	snprintf(tx->tenant, sizeof tx->tenant, "%s", tenant_uuid);
	tx->has_tenant = true;
}

int db_tx_add(db_tx *tx, const char *sql, int nparams, const char *const *values)
{
	if (tx->nstmts >= DB_TX_MAX_STATEMENTS || nparams > DB_TX_MAX_PARAMS)
		return -1;
	tx_stmt *s = &tx->stmts[tx->nstmts];
	s->sql = sql;
	s->nparams = nparams;
	s->values = values;
	return tx->nstmts++ - tx->nhidden;
}

/* The statement cache's key, computed for every statement sent: 8 bytes
 * per step: a lead statement is ~700 bytes, and byte-wise FNV-1a over it
 * was about 40% of db_tx_send's instructions (bench/README.md).  Equal
 * hashes are confirmed by strcmp (db_conn_statement_lookup), so collisions
 * cost time, not answers. */
static unsigned long sql_hash(const char *s)
{
	size_t n = strlen(s);
	uint64_t h = 1469598103934665603ULL ^ n;
	uint64_t word;
	for (; n >= sizeof word; n -= sizeof word, s += sizeof word) {
		memcpy(&word, s, sizeof word);
		h = (h ^ word) * 1099511628211ULL;
		h ^= h >> 29;
	}
	for (; n > 0; n--, s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (unsigned long)h;
}

/* Sends a statement with no parameters (SET LOCAL ...). */
static bool send_plain(PGconn *pg, const char *sql)
{
	return PQsendQueryParams(pg, sql, 0, NULL, NULL, NULL, NULL, 0) == 1;
}

/* BEGIN or COMMIT: prepared once per connection (pool.c), unnamed behind
 * PgBouncer. */
static bool send_control(db_tx *tx, PGconn *pg, const char *name, const char *sql)
{
	if (db_conn_unnamed_statements(tx->conn))
		return send_plain(pg, sql);
	return PQsendQueryPrepared(pg, name, 0, NULL, NULL, NULL, 0) == 1;
}

static bool send_stmt(db_tx *tx, tx_stmt *s)
{
	PGconn *pg = db_conn_pg(tx->conn);
	if (db_conn_unnamed_statements(tx->conn))
		return PQsendQueryParams(pg, s->sql, s->nparams, NULL, s->values, NULL, NULL, 0) ==
		       1;
	unsigned long h = sql_hash(s->sql);
	bool as_user = tx->as_user_role;
	const char *name = db_conn_statement_lookup(tx->conn, s->sql, h, as_user);
	if (name == NULL) {
		name = db_conn_statement_reserve(tx->conn, s->sql, h, as_user);
		if (name == NULL) /* cache full: run it unnamed */
			return PQsendQueryParams(pg, s->sql, s->nparams, NULL, s->values, NULL,
			                         NULL, 0) == 1;
		if (PQsendPrepare(pg, name, s->sql, 0, NULL) != 1)
			return false;
		s->prepare_name = name;
	}
	return PQsendQueryPrepared(pg, name, s->nparams, s->values, NULL, NULL, 0) == 1;
}

/* PQgetResult, but never blocking past the transaction's deadline; NULL and
 * a broken connection when the peer stops answering. */
static PGresult *get_result(db_tx *tx, PGconn *pg)
{
	bool late = false;
	PGresult *r = db_get_result(pg, tx->deadline_ms, &late);
	if (late) {
		log_error("the database did not answer within the deadline; dropping the "
		          "connection");
		db_conn_mark_broken(tx->conn);
	}
	return r;
}

/* Reads one command's results: keeps the first, discards the rest. */
static PGresult *read_one(db_tx *tx, PGconn *pg)
{
	PGresult *first = get_result(tx, pg);
	if (first == NULL)
		return NULL;
	PGresult *r;
	while ((r = get_result(tx, pg)) != NULL)
		PQclear(r);
	return first;
}

static void set_unavailable(db_tx *tx, tk_error *err)
{
	tx->connection_lost = true;
	tk_error_database_unavailable(err);
}

/* Remembers the first failure; later ones are PIPELINE_ABORTED echoes (or,
 * in a batch, the echoes of an earlier transaction's failure). */
static void note_failure(db_tx *tx, PGresult *r, PGresult **first_error)
{
	ExecStatusType st = PQresultStatus(r);
	if (st == PGRES_PIPELINE_ABORTED)
		tx->skipped = true;
	else if (*first_error == NULL && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		*first_error = r;
}

void db_tx_bind(db_tx *tx, db_conn *conn)
{
	tx->conn = conn;
}

tk_status db_tx_send(db_tx *tx, bool sync)
{
	PGconn *pg = db_conn_pg(tx->conn);
	bool pgbouncer = db_conn_unnamed_statements(tx->conn);
	char set_tenant[96];
	char set_timeout[64];

	tx->naux = 0;
	tx->nsent = tx->nstmts;
	if (tx->flush != DB_TX_FLUSH_OWN) {
		/* Last, so that a handler's statement indexes are unchanged. */
		tx_stmt *f = &tx->stmts[tx->nsent++];
		*f = (tx_stmt){.sql = tx->flush == DB_TX_FLUSH_DEFERRED ? TX_SQL_DEFER_FLUSH
		                                                        : TX_SQL_FLUSH_ANCHOR};
	}
	for (int i = 0; i < tx->nsent; i++)
		tx->stmts[i].prepare_name = NULL; /* any earlier were settled or abandoned */
	/* PostgreSQL times each statement on its own (from its Parse or Bind
	 * to the end of its Execute), so a transaction may take up to
	 * statement_timeout for every one that runs SQL of ours or of the
	 * schema: the queued statements (with the session check and the flush
	 * statement) and COMMIT, which fires deferred triggers.  BEGIN, the
	 * SET LOCALs and a ROLLBACK run none, and are left to the grace. */
	tx->budget_ms = (long long)(tx->nsent + 1) * db_conn_statement_timeout_ms(tx->conn);
	if (PQstatus(pg) != CONNECTION_OK)
		return TK_ERR;
	if (tx->session_hash && (!tx->has_user || !tx->has_tenant || tx->nhidden != 1)) {
		/* A check with no context to check, or not first, would vouch
		 * for nothing. */
		log_error("a session check without a user and tenant context, or not first");
		return TK_ERR;
	}
	/* A plain user, on a schema that has the role (the connection is
	 * bound by now; a batch's transaction gets it late, db_tx_bind). */
	tx->as_user_role = tx->plain_user && db_conn_user_role(tx->conn);
	int naux = (tx->rollback_first ? 1 : 0) + 1 + (pgbouncer ? 2 : 0) +
	           (tx->has_tenant ? 1 : 0) + (tx->has_user ? 2 : 0) + (tx->as_user_role ? 1 : 0);
	if (naux > TX_MAX_AUX) { /* db_tx_receive could not read them all */
		log_error("a transaction with %d statements before its own", naux);
		return TK_ERR;
	}
	tx->deadline_ms = db_clock_ms() + tx->budget_ms + DB_REPLY_GRACE_MS;
	bool sent = true;
	if (tx->rollback_first) {
		sent = send_plain(pg, "ROLLBACK");
		tx->naux++;
	}
	sent = sent && send_control(tx, pg, DB_STMT_BEGIN, "BEGIN");
	tx->naux++;
	if (sent && pgbouncer) {
		/* Session state cannot be trusted behind transaction pooling. */
		snprintf(set_timeout, sizeof set_timeout, "SET LOCAL statement_timeout = %d",
		         db_conn_statement_timeout_ms(tx->conn));
		sent = send_plain(pg, set_timeout) && send_plain(pg, "SET LOCAL TimeZone = 'UTC'");
		tx->naux += 2;
	}
	if (sent && tx->has_tenant) {
		snprintf(set_tenant, sizeof set_tenant, "SET LOCAL app.current_tenant = '%s'",
		         tx->tenant);
		sent = send_plain(pg, set_tenant);
		tx->naux++;
	}
	char set_user[96], set_role[64];
	if (sent && tx->has_user) {
		snprintf(set_user, sizeof set_user, "SET LOCAL app.\"current_user\" = '%s'",
		         tx->user);
		snprintf(set_role, sizeof set_role, "SET LOCAL app.current_user_role = '%s'",
		         tx->user_role);
		sent = send_plain(pg, set_user) && send_plain(pg, set_role);
		tx->naux += 2;
	}
	if (sent && tx->as_user_role) {
		sent = send_plain(pg, TX_SQL_USER_ROLE);
		tx->naux++;
	}
	for (int i = 0; sent && i < tx->nsent; i++)
		sent = send_stmt(tx, &tx->stmts[i]);
	sent = sent && send_control(tx, pg, DB_STMT_COMMIT, "COMMIT") &&
	       (!sync || PQpipelineSync(pg) == 1);
	tx->own_sync = sync;
	if (!sent) {
		log_error("sending a transaction failed: %s", PQerrorMessage(pg));
		return TK_ERR;
	}
	return TK_OK;
}

long long db_tx_budget_ms(const db_tx *tx)
{
	return tx->budget_ms;
}

void db_tx_allow_batch(db_tx *tx, long long batch_budget_ms)
{
	tx->deadline_ms = db_clock_ms() + batch_budget_ms + DB_REPLY_GRACE_MS;
}

void db_tx_abandon(db_tx *tx)
{
	for (int i = 0; i < tx->nsent; i++)
		if (tx->stmts[i].prepare_name) {
			db_conn_statement_settle(tx->conn, tx->stmts[i].prepare_name, false);
			tx->stmts[i].prepare_name = NULL;
		}
}

tk_status db_tx_run(db_tx *tx, tk_error *err)
{
	if (db_tx_send(tx, true) != TK_OK) {
		set_unavailable(tx, err);
		return TK_ERR;
	}
	return db_tx_receive(tx, err);
}

tk_status db_tx_receive(db_tx *tx, tk_error *err)
{
	PGconn *pg = db_conn_pg(tx->conn);
	PGresult *aux[TX_MAX_AUX] = {NULL};
	int naux = tx->naux;
	PGresult *first_error = NULL;
	PGresult *commit = NULL;
	tk_status st = TK_ERR;

	/* Results arrive in the order sent. */
	bool lost = false;
	for (int i = 0; i < naux; i++) {
		aux[i] = read_one(tx, pg);
		if (aux[i] == NULL)
			lost = true;
		else
			note_failure(tx, aux[i], &first_error);
	}
	for (int i = 0; i < tx->nsent && !lost; i++) {
		tx_stmt *s = &tx->stmts[i];
		if (s->prepare_name) {
			PGresult *pr = read_one(tx, pg);
			bool ok = pr && PQresultStatus(pr) == PGRES_COMMAND_OK;
			db_conn_statement_settle(tx->conn, s->prepare_name, ok);
			s->prepare_name = NULL;
			if (pr == NULL) {
				lost = true;
				break;
			}
			if (!ok && first_error == NULL) {
				note_failure(tx, pr, &first_error);
				if (first_error == pr) {
					/* keep it alive as the error: park it in the statement slot
					 */
					s->result = pr;
					pr = NULL;
				}
			}
			PQclear(pr);
		}
		PGresult *r = read_one(tx, pg);
		if (r == NULL) {
			lost = true;
			break;
		}
		if (s->result) /* the prepare failure stands for this statement */
			PQclear(r);
		else
			s->result = r;
		note_failure(tx, s->result, &first_error);
	}
	if (!lost) {
		commit = read_one(tx, pg);
		if (commit == NULL)
			lost = true;
		else
			note_failure(tx, commit, &first_error);
	}
	if (!lost && tx->own_sync) {
		PGresult *sync = get_result(tx, pg);
		if (sync == NULL || PQresultStatus(sync) != PGRES_PIPELINE_SYNC)
			lost = true;
		PQclear(sync);
	}
	/* Any reserved names never settled belong to statements never read. */
	for (int i = 0; i < tx->nsent; i++)
		if (tx->stmts[i].prepare_name) {
			db_conn_statement_settle(tx->conn, tx->stmts[i].prepare_name, false);
			tx->stmts[i].prepare_name = NULL;
		}

	if (first_error) /* its own failure: the rest of it was skipped, not it */
		tx->skipped = false;
	if (first_error) {
		const char *state = PQresultErrorField(first_error, PG_DIAG_SQLSTATE);
		const char *constraint = PQresultErrorField(first_error, PG_DIAG_CONSTRAINT_NAME);
		if (state == NULL || strncmp(state, "08", 2) == 0 ||
		    strncmp(state, "57P", 3) == 0) {
			log_error("database connection failed: %s",
			          PQresultErrorMessage(first_error));
			set_unavailable(tx, err);
		} else {
			/* 42883 from the session check: a schema older than the
			 * binary (serve --no-migrate) lacks session_assert(); the
			 * server then verifies the session the old way rather than
			 * failing the request. */
			bool check_failed = tx->nhidden == 1 && first_error == tx->stmts[0].result;
			tx->session_ended = strcmp(state, "TKS01") == 0 ||
			                    (check_failed && strcmp(state, "42883") == 0);
			/* The flush statement's function is gone or closed to us
			 * (a schema changed under the server): nothing of the tx took
			 * effect.  Its other failures are the tx's own. */
			tx->flush_failed =
			    tx->nsent > tx->nstmts &&
			    first_error == tx->stmts[tx->nsent - 1].result &&
			    (strcmp(state, "42883") == 0 || strcmp(state, "42501") == 0);
			db_error_from_sqlstate(state, constraint, err);
			if (err->http_status >= 500)
				log_error("statement failed (%s): %s", state,
				          PQresultErrorMessage(first_error));
		}
	} else if (lost || PQstatus(pg) != CONNECTION_OK || db_conn_is_broken(tx->conn)) {
		log_error("database connection lost: %s", PQerrorMessage(pg));
		set_unavailable(tx, err);
	} else if (tx->skipped) {
		/* Only in a batch: an earlier transaction failed, so this one was
		 * skipped without running; the batch sends it again. */
		tk_error_set(err, 500, "internal_error", NULL, "an internal error occurred");
	} else {
		st = TK_OK;
	}
	for (int i = 0; i < naux; i++)
		PQclear(aux[i]);
	PQclear(commit);
	/* A failed pipeline leaves the transaction aborted; end it now so the
	 * caller may run another on this connection. */
	if (st != TK_OK && !tx->batched && !db_conn_make_idle(tx->conn))
		db_conn_mark_broken(tx->conn);
	return st;
}

PGresult *db_tx_result(db_tx *tx, int idx)
{
	if (idx < 0 || idx + tx->nhidden >= tx->nstmts)
		return NULL;
	return tx->stmts[idx + tx->nhidden].result;
}

bool db_tx_connection_lost(const db_tx *tx)
{
	return tx->connection_lost;
}

void db_tx_forget_results(db_tx *tx)
{
	for (int i = 0; i < tx->nsent; i++) {
		PQclear(tx->stmts[i].result);
		tx->stmts[i].result = NULL;
	}
	tx->connection_lost = false;
	tx->skipped = false;
	tx->session_ended = false;
	tx->flush_failed = false;
}

bool db_tx_skipped(const db_tx *tx)
{
	return tx->skipped;
}

void db_tx_set_batched(db_tx *tx, bool batched)
{
	tx->batched = batched;
}

void db_tx_set_flush(db_tx *tx, db_tx_flush flush)
{
	tx->flush = flush;
}

bool db_tx_flush_failed(const db_tx *tx)
{
	return tx->flush_failed;
}

tk_status db_tx_flush_wal(db_conn *conn, tk_error *err)
{
	/* The flush must run on the backend that ran the deferred commits:
	 * that it is still there proves PostgreSQL did not restart (or fail
	 * over) since, losing them from the WAL this flush writes.  A libpq
	 * connection is one backend for its life.  Behind PgBouncer it is
	 * pinned to one only while a transaction is open - as a failed
	 * pipeline leaves it, so the ROLLBACK goes in the flush's pipeline. */
	PGTransactionStatusType ts = PQtransactionStatus(db_conn_pg(conn));
	bool open = ts == PQTRANS_INERROR || ts == PQTRANS_INTRANS;
	if (db_conn_is_broken(conn) || (!open && ts != PQTRANS_IDLE) ||
	    (!open && db_conn_unnamed_statements(conn))) {
		log_error("cannot flush the WAL on the backend that committed the writes");
		return tk_error_database_unavailable(err);
	}
	db_tx tx = {.conn = conn, .flush = DB_TX_FLUSH_ANCHOR, .rollback_first = open};
	tk_status st = db_tx_run(&tx, err);
	db_tx_clear(&tx);
	return st;
}

void db_tx_clear(db_tx *tx)
{
	for (int i = 0; i < tx->nsent; i++) {
		PQclear(tx->stmts[i].result);
		tx->stmts[i].result = NULL;
	}
	tx->nstmts = tx->nhidden; /* a tx used again checks its session again */
	tx->nsent = 0;
	tx->flush = DB_TX_FLUSH_OWN;
	tx->connection_lost = false;
}

typedef struct sqlstate_map {
	const char *prefix;
	int status;
	const char *code;
	const char *message;
	const char *field; /* for tekup's own "TK" SQLSTATEs */
} sqlstate_map;

/* One table from SQLSTATE to API error; the first matching prefix wins. */
static const sqlstate_map sqlstate_table[] = {
    /* Raised by tekup's own SQL functions (see sql/migrations). */
    {"TKC01", 400, "validation_error", "customFields must be a JSON object of at most 16384 bytes",
     "customFields"},
    {"TKP01", 400, "validation_error", "unknown plan (trial, basic, professional, enterprise)",
     "plan"},
    {"TKP02", 400, "validation_error",
     "unknown timezone; use an IANA name such as Europe/Copenhagen", "timezone"},
    {"TKP03", 409, "conflict", "a tenant was already provisioned for this admin e-mail",
     "adminEmail"},
    {"TKT01", 404, "tenant_not_found", "no tenant with this id", NULL},
    {"TKT02", 409, "invalid_status_change", "that status change is not allowed (archived is final)",
     "status"},
    {"TKM01", 400, "validation_error", "source and target must be different tenants",
     "targetTenantId"},
    {"TKM02", 409, "limit_exceeded", "the copy would exceed the target's plan limits", NULL},
    {"TKM03", 409, "conflict", "a copied user's e-mail already exists in the target", NULL},
    {"TKU01", 409, "limit_exceeded", "the plan's maxUsers is reached", NULL},
    {"TKU02", 409, "last_admin", "the last active admin cannot be demoted or deactivated", NULL},
    {"TKS01", 401, "invalid_session", "the session is not valid; sign in again", NULL},
    {"23505", 409, "conflict", "a record with these values already exists", NULL},
    {"23503", 400, "invalid_reference", "a referenced record does not exist", NULL},
    {"23502", 400, "validation_error", "a required value is missing", NULL},
    {"23514", 400, "validation_error", "a value is out of range or too large", NULL},
    {"22001", 400, "validation_error", "a value is too long", NULL},
    {"22P02", 400, "validation_error", "a value has the wrong format", NULL},
    {"22007", 400, "validation_error", "a date or time is not valid", NULL},
    {"22008", 400, "validation_error", "a date or time is out of range", NULL},
    {"22003", 400, "validation_error", "a number is out of range", NULL},
    {"22", 400, "validation_error", "a value is not valid", NULL},
    {"42501", 403, "forbidden", "this operation is not permitted", NULL},
    {"40001", 503, "conflict_retry", "a concurrent change interfered; retry the request", NULL},
    {"40P01", 503, "conflict_retry", "a concurrent change interfered; retry the request", NULL},
    {"57014", 503, "statement_timeout", "the request took too long; retry or narrow it", NULL},
    {"53", 503, "database_unavailable", "the database is overloaded; retry shortly", NULL},
    {"55P03", 503, "conflict_retry", "a record is locked; retry the request", NULL},
};

void db_error_from_sqlstate(const char *sqlstate, const char *constraint, tk_error *err)
{
	(void)constraint;
	for (size_t i = 0; i < TK_ARRAY_LEN(sqlstate_table); i++) {
		const sqlstate_map *m = &sqlstate_table[i];
		if (strncmp(sqlstate, m->prefix, strlen(m->prefix)) == 0) {
			tk_error_set(err, m->status, m->code, m->field, "%s", m->message);
			if (m->status == 503)
				err->retry_after = 1;
			return;
		}
	}
	tk_error_set(err, 500, "internal_error", NULL, "an internal error occurred");
}
