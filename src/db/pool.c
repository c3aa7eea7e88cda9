/*
 * pool.c - connection pool and per-connection statement cache (see pool.h).
 */
#include "db/pool.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/alloc.h"
#include "util/log.h"

#define POOL_STATEMENT_CACHE_MAX 256
/* After a failed connect, refuse new attempts for a backoff that doubles per
 * consecutive failure, from MIN to MAX: an outage costs requests a fast 503
 * and PostgreSQL a trickle of connection attempts, not a storm. */
#define POOL_BACKOFF_MIN_MS    100
#define POOL_BACKOFF_MAX_MS    2000
#define POOL_CONNECT_TIMEOUT_S "5"
/*
 * The recheck window (db_pool_options.recheck_after_ms, 50 ms by default):
 * a connection released less than that long ago is handed out without the
 * liveness poll, because under load every acquire finds one used
 * microseconds before, and the poll was one syscall per transaction (or
 * batch) that almost never finds anything.  A connection PostgreSQL closed
 * within the window fails like one closed while in use: a read is retried
 * once on a fresh connection, a write answers 503 and was not committed.
 * Once one connection is found dead, every acquire polls for the next
 * window: a restart closes all of them at once, and neither the retry nor
 * another worker's write may be handed one that died in the same instant.
 */

typedef struct stmt_entry {
	char *sql;
	unsigned long hash;
	bool as_user; /* prepared under tekup_app_user (tx.c) */
	char name[16];
	bool prepared;
} stmt_entry;

struct db_conn {
	const db_pool *pool;
	PGconn *pg;
	bool broken;
	int slot;
	bool unnamed;
	int statement_timeout_ms;
	stmt_entry stmts[POOL_STATEMENT_CACHE_MAX];
	int nstmts;
	bool was_released;
	struct timespec released; /* CLOCK_MONOTONIC */
};

struct db_pool {
	const char *name;
	char *conninfo;
	int size;
	int acquire_timeout_ms;
	int recheck_after_ms;
	int statement_timeout_ms;
	bool unnamed;
	atomic_bool pooler_reported; /* found a pooler in front: said so once */
	atomic_bool user_role;       /* db_pool_set_user_role */
	pthread_mutex_t lock;
	pthread_cond_t available;
	db_conn **slots; /* slot i's connection, or NULL when not connected */
	int *free_slots; /* stack of free slot indexes */
	int nfree;
	struct timespec connect_not_before;
	int connect_failures; /* consecutive, for the backoff */
	/* Until then every acquire polls its connection: one was just found
	 * dead, and its siblings may be too (see the recheck window above). */
	struct timespec poll_every_acquire_until;
};

static void timespec_add_ms(struct timespec *ts, long ms)
{
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static bool timespec_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

long long db_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

PGresult *db_get_result(PGconn *pg, long long deadline_ms, bool *late)
{
	while (PQisBusy(pg)) {
		long long remaining = deadline_ms - db_clock_ms();
		if (remaining <= 0) {
			/* The answer may be waiting unread (the caller was reading
			 * another connection): take it before giving up. */
			if (PQconsumeInput(pg) != 1)
				break; /* PQgetResult reports the failure */
			if (!PQisBusy(pg))
				break;
			*late = true;
			return NULL;
		}
		struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
		if (poll(&pfd, 1, remaining > INT_MAX ? INT_MAX : (int)remaining) < 0)
			continue;
		if (PQconsumeInput(pg) != 1)
			break; /* PQgetResult reports the failure */
	}
	return PQgetResult(pg);
}

tk_status db_connect(const char *conninfo, PGconn **out, tk_error *err)
{
	/* Our defaults first, so values in the user's URL override them. */
	const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
	const char *vals[] = {POOL_CONNECT_TIMEOUT_S, "tekup", conninfo, NULL};
	PGconn *pg = PQconnectdbParams(keys, vals, 1);
	if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
		char msg[256] = "out of memory";
		if (pg) {
			snprintf(msg, sizeof msg, "%s", PQerrorMessage(pg));
			msg[strcspn(msg, "\n")] = '\0';
		}
		log_error("cannot connect to PostgreSQL: %s", msg);
		PQfinish(pg);
		*out = NULL;
		return tk_error_database_unavailable(err);
	}
	*out = pg;
	return TK_OK;
}

/*
 * Reads the results of what was just sent on a connection being set up
 * (sent: what PQsendQuery or PQsendPrepare returned; not yet in pipeline
 * mode, so the last result is followed by NULL), waiting no later than
 * deadline_ms: TK_OK when there was one at least and each had status want.
 * The last is left in *last (owned by the caller) when last is not NULL.
 * Logs why not.
 */
static tk_status setup_results(PGconn *pg, int sent, long long deadline_ms, ExecStatusType want,
                               PGresult **last)
{
	if (sent != 1) {
		log_error("connection set-up failed: %s", PQerrorMessage(pg));
		return TK_ERR;
	}
	bool late = false, ok = true, any = false;
	PGresult *r, *kept = NULL;
	while ((r = db_get_result(pg, deadline_ms, &late)) != NULL) {
		any = true;
		if (PQresultStatus(r) != want)
			ok = false;
		PQclear(kept);
		kept = r;
	}
	if (late)
		log_error("connection set-up: the database did not answer in time");
	else if (!ok || !any)
		log_error("connection set-up failed: %s", PQerrorMessage(pg));
	if (late || !ok || !any || last == NULL)
		PQclear(kept);
	else
		*last = kept;
	return !late && ok && any ? TK_OK : TK_ERR;
}

/*
 * Whether a pooler (PgBouncer, in any pool mode) stands between us and
 * PostgreSQL.  A pooler answers the start-up itself, with a cancel key of
 * its own, so the backend pid libpq was given is not the pid of the backend
 * that runs our statements; a TCP proxy passes the backend's key on.
 * Behind a pooler no session state can be trusted: a SET would stay on a
 * backend that other clients share, and a statement prepared on one backend
 * is missing, or already there, on the next.
 */
static tk_status behind_pooler(PGconn *pg, long long deadline_ms, bool *pooled)
{
	PGresult *r = NULL;
	bool ok = setup_results(pg, PQsendQuery(pg, "SELECT pg_backend_pid()"), deadline_ms,
	                        PGRES_TUPLES_OK, &r) == TK_OK &&
	          PQntuples(r) == 1;
	if (ok)
		*pooled = strtol(PQgetvalue(r, 0, 0), NULL, 10) != PQbackendPID(pg);
	PQclear(r);
	return ok ? TK_OK : TK_ERR;
}

static tk_status conn_open(db_pool *pool, int slot, db_conn **out, tk_error *err)
{
	PGconn *pg = NULL;
	if (db_connect(pool->conninfo, &pg, err) != TK_OK)
		return TK_ERR;
	/* The set-up is trivial work: it gets one statement_timeout, plus the
	 * grace, in all, so that a peer that stops answering (a stopped host,
	 * a pooler with no backend to give) costs a 503, not a worker. */
	long long deadline_ms = db_clock_ms() + pool->statement_timeout_ms + DB_REPLY_GRACE_MS;
	bool unnamed = pool->unnamed;
	if (!unnamed) {
		if (behind_pooler(pg, deadline_ms, &unnamed) != TK_OK) {
			PQfinish(pg);
			return tk_error_database_unavailable(err);
		}
		if (unnamed && !atomic_exchange(&pool->pooler_reported, true))
			log_warn(
			    "the %s pool's URL leads to PostgreSQL through a connection pooler "
			    "(PgBouncer?): its connections run as with ?pgbouncer=true, with "
			    "unnamed statements and per-transaction settings",
			    pool->name);
	}
	if (!unnamed) {
		/* Session settings that are the same for every tenant; with PgBouncer
		 * they are sent per transaction instead (see tx.c).
		 * Generic plans: every statement is tenant-first and index-driven, so
		 * one plan serves all tenants, and re-planning a list query costs
		 * about as much as running it (measured: ~2 ms of ~5 ms).  No JIT:
		 * these are short OLTP statements that JIT compilation only delays. */
		char sql[192];
		snprintf(sql, sizeof sql,
		         "SET statement_timeout = %d; SET TimeZone = 'UTC';"
		         " SET plan_cache_mode = force_generic_plan; SET jit = off",
		         pool->statement_timeout_ms);
		bool ok = setup_results(pg, PQsendQuery(pg, sql), deadline_ms, PGRES_COMMAND_OK,
		                        NULL) == TK_OK;
		/* Every transaction's BEGIN and COMMIT, parsed once per session
		 * rather than once per request (see tx.c). */
		static const char *const control[][2] = {{DB_STMT_BEGIN, "BEGIN"},
		                                         {DB_STMT_COMMIT, "COMMIT"}};
		for (size_t i = 0; ok && i < TK_ARRAY_LEN(control); i++)
			ok = setup_results(pg,
			                   PQsendPrepare(pg, control[i][0], control[i][1], 0, NULL),
			                   deadline_ms, PGRES_COMMAND_OK, NULL) == TK_OK;
		if (!ok) {
			PQfinish(pg);
			return tk_error_database_unavailable(err);
		}
	}
	if (PQenterPipelineMode(pg) != 1) {
		log_error("cannot enter pipeline mode: %s", PQerrorMessage(pg));
		PQfinish(pg);
		return tk_error_database_unavailable(err);
	}
	db_conn *c = tk_calloc(1, sizeof *c);
	c->pool = pool;
	c->pg = pg;
	c->slot = slot;
	c->unnamed = unnamed;
	c->statement_timeout_ms = pool->statement_timeout_ms;
	*out = c;
	return TK_OK;
}

static void conn_close(db_conn *c)
{
	if (c == NULL)
		return;
	for (int i = 0; i < c->nstmts; i++)
		free(c->stmts[i].sql);
	PQfinish(c->pg);
	free(c);
}

db_pool *db_pool_create(const db_pool_options *o)
{
	db_pool *p = tk_calloc(1, sizeof *p);
	p->name = o->name ? o->name : "database";
	p->conninfo = tk_strdup(o->conninfo);
	p->size = o->size;
	p->acquire_timeout_ms = o->acquire_timeout_ms;
	p->recheck_after_ms = o->recheck_after_ms;
	p->statement_timeout_ms = o->statement_timeout_ms;
	p->unnamed = o->unnamed_statements;
	atomic_init(&p->pooler_reported, false);
	atomic_init(&p->user_role, true);
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&p->available, &attr);
	pthread_condattr_destroy(&attr);
	p->slots = tk_calloc((size_t)o->size, sizeof(db_conn *));
	p->free_slots = tk_calloc((size_t)o->size, sizeof(int));
	for (int i = 0; i < o->size; i++)
		p->free_slots[i] = o->size - 1 - i;
	p->nfree = o->size;
	return p;
}

/*
 * An idle connection has nothing to read.  If its socket is readable, the
 * server has closed it (restart, idle timeout, admin command) or sent an
 * error: find out now, with one non-blocking poll, rather than fail the
 * request that would use it.
 */
static bool conn_still_alive(db_conn *c)
{
	struct pollfd pfd = {.fd = PQsocket(c->pg), .events = POLLIN};
	if (pfd.fd < 0)
		return false;
	int n = poll(&pfd, 1, 0);
	if (n == 0)
		return true;
	if (n < 0 || (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)))
		return false;
	return PQconsumeInput(c->pg) == 1 && PQstatus(c->pg) == CONNECTION_OK &&
	       PQtransactionStatus(c->pg) == PQTRANS_IDLE;
}

static bool recently_released(const db_pool *p, const db_conn *c, const struct timespec *now)
{
	struct timespec recent = c->released;
	timespec_add_ms(&recent, p->recheck_after_ms);
	return c->was_released && timespec_before(now, &recent);
}

/* Called with p->lock held: from now, every acquire polls for a window. */
static void poll_every_acquire_for_a_while(db_pool *p)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	timespec_add_ms(&until, p->recheck_after_ms);
	if (timespec_before(&p->poll_every_acquire_until, &until))
		p->poll_every_acquire_until = until;
}

/* db_pool_acquire (wait), or db_pool_try_acquire: only while more than
 * keep_free connections are free. */
static tk_status acquire(db_pool *p, bool wait, int keep_free, db_conn **out, tk_error *err)
{
	struct timespec now, deadline;
	clock_gettime(CLOCK_MONOTONIC, &now);
	deadline = now;
	timespec_add_ms(&deadline, p->acquire_timeout_ms);

	pthread_mutex_lock(&p->lock);
	bool waited = p->nfree == 0;
	if (!wait && p->nfree <= keep_free) {
		pthread_mutex_unlock(&p->lock);
		return tk_error_set(err, 503, "pool_timeout", NULL, "no free connection");
	}
	while (p->nfree == 0) {
		int rc = pthread_cond_timedwait(&p->available, &p->lock, &deadline);
		if (rc == ETIMEDOUT && p->nfree == 0) {
			pthread_mutex_unlock(&p->lock);
			err->retry_after = 1;
			return tk_error_set(err, 503, "pool_timeout", NULL,
			                    "the server is busy; retry shortly");
		}
	}
	int slot = p->free_slots[--p->nfree];
	db_conn *c = p->slots[slot];
	struct timespec not_before = p->connect_not_before;
	struct timespec poll_until = p->poll_every_acquire_until;
	pthread_mutex_unlock(&p->lock);

	/* The slot is ours now: check and replace its connection outside the
	 * lock, so a syscall never stalls other threads' acquire/release. */
	if (waited)
		clock_gettime(CLOCK_MONOTONIC, &now); /* the wait may have been long */
	bool skip_poll =
	    c != NULL && recently_released(p, c, &now) && !timespec_before(&now, &poll_until);
	if (c != NULL && !skip_poll && !conn_still_alive(c)) {
		log_warn("replacing a database connection the server closed");
		conn_close(c);
		c = NULL;
		/* Before connecting, which can take seconds, so the others
		 * check theirs meanwhile. */
		pthread_mutex_lock(&p->lock);
		poll_every_acquire_for_a_while(p);
		pthread_mutex_unlock(&p->lock);
	}
	bool may_connect = true;
	if (c == NULL) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		may_connect = !timespec_before(&now, &not_before);
	}

	if (c != NULL) {
		*out = c;
		return TK_OK;
	}
	tk_status st = TK_ERR;
	if (may_connect) {
		st = conn_open(p, slot, &c, err);
	} else {
		tk_error_database_unavailable(err);
	}
	pthread_mutex_lock(&p->lock);
	if (st == TK_OK) {
		p->slots[slot] = c;
		p->connect_failures = 0;
		*out = c;
	} else {
		if (may_connect) {
			long backoff = POOL_BACKOFF_MIN_MS;
			for (int i = 0; i < p->connect_failures && backoff < POOL_BACKOFF_MAX_MS;
			     i++)
				backoff *= 2;
			if (backoff > POOL_BACKOFF_MAX_MS)
				backoff = POOL_BACKOFF_MAX_MS;
			p->connect_failures++;
			clock_gettime(CLOCK_MONOTONIC, &p->connect_not_before);
			timespec_add_ms(&p->connect_not_before, backoff);
		}
		p->slots[slot] = NULL; /* a dead connection was closed above */
		p->free_slots[p->nfree++] = slot;
		pthread_cond_signal(&p->available);
	}
	pthread_mutex_unlock(&p->lock);
	return st;
}

tk_status db_pool_acquire(db_pool *p, db_conn **out, tk_error *err)
{
	return acquire(p, true, 0, out, err);
}

bool db_pool_try_acquire(db_pool *p, int keep_free, db_conn **out)
{
	tk_error ignored = {0};
	return acquire(p, false, keep_free, out, &ignored) == TK_OK;
}

bool db_conn_make_idle(db_conn *c)
{
	if (c->broken)
		return false;
	if (PQstatus(c->pg) != CONNECTION_OK || PQpipelineStatus(c->pg) != PQ_PIPELINE_ON)
		return false;
	PGTransactionStatusType ts = PQtransactionStatus(c->pg);
	if (ts == PQTRANS_IDLE)
		return true;
	if (ts != PQTRANS_INTRANS && ts != PQTRANS_INERROR)
		return false;
	if (PQsendQueryParams(c->pg, "ROLLBACK", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	    PQpipelineSync(c->pg) != 1)
		return false;
	/* A ROLLBACK is quick, but the peer may have stopped answering: a
	 * connection that does not answer in time is given up, not waited on
	 * with the worker. */
	long long deadline_ms = db_clock_ms() + c->statement_timeout_ms + DB_REPLY_GRACE_MS;
	bool ok = false, late = false;
	PGresult *r;
	while ((r = db_get_result(c->pg, deadline_ms, &late)) != NULL) {
		if (PQresultStatus(r) == PGRES_COMMAND_OK)
			ok = true;
		PQclear(r);
	}
	r = late ? NULL : db_get_result(c->pg, deadline_ms, &late); /* the sync */
	bool synced = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
	PQclear(r);
	if (late) {
		log_error("the database did not answer a ROLLBACK in time; dropping the "
		          "connection");
		c->broken = true;
	}
	return ok && synced && PQtransactionStatus(c->pg) == PQTRANS_IDLE;
}

void db_pool_release(db_pool *p, db_conn *c)
{
	if (c == NULL)
		return;
	int slot = c->slot;
	if (!db_conn_make_idle(c)) {
		log_warn("discarding a database connection that is not idle or is broken");
		conn_close(c);
		c = NULL;
	} else {
		clock_gettime(CLOCK_MONOTONIC, &c->released);
		c->was_released = true;
	}
	pthread_mutex_lock(&p->lock);
	if (c == NULL)
		poll_every_acquire_for_a_while(p);
	p->slots[slot] = c;
	p->free_slots[p->nfree++] = slot;
	pthread_cond_signal(&p->available);
	pthread_mutex_unlock(&p->lock);
}

void db_pool_destroy(db_pool *p)
{
	if (p == NULL)
		return;
	for (int i = 0; i < p->size; i++)
		conn_close(p->slots[i]);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->available);
	free(p->slots);
	free(p->free_slots);
	free(p->conninfo);
	free(p);
}

void db_conn_mark_broken(db_conn *c)
{
	c->broken = true;
}

bool db_conn_is_broken(const db_conn *c)
{
	return c->broken;
}

PGconn *db_conn_pg(db_conn *c)
{
	return c->pg;
}

bool db_conn_unnamed_statements(const db_conn *c)
{
	return c->unnamed;
}

void db_pool_set_user_role(db_pool *p, bool exists)
{
	atomic_store(&p->user_role, exists);
}

bool db_conn_user_role(const db_conn *c)
{
	return atomic_load_explicit(&c->pool->user_role, memory_order_relaxed);
}

int db_conn_statement_timeout_ms(const db_conn *c)
{
	return c->statement_timeout_ms;
}

const char *db_conn_statement_lookup(db_conn *c, const char *sql, unsigned long hash, bool as_user)
{
	for (int i = 0; i < c->nstmts; i++) {
		stmt_entry *e = &c->stmts[i];
		/* A name reserved but not yet settled was sent earlier in the
		 * same pipeline (a batch): its Parse runs first, and if it
		 * fails everything after it is skipped. */
		if (e->hash == hash && e->as_user == as_user && strcmp(e->sql, sql) == 0)
			return e->name;
	}
	return NULL;
}

const char *db_conn_statement_reserve(db_conn *c, const char *sql, unsigned long hash, bool as_user)
{
	if (c->unnamed || c->nstmts >= POOL_STATEMENT_CACHE_MAX)
		return NULL;
	stmt_entry *e = &c->stmts[c->nstmts];
	e->sql = tk_strdup(sql);
	e->hash = hash;
	e->as_user = as_user;
	e->prepared = false;
	snprintf(e->name, sizeof e->name, "tk%d", c->nstmts);
	c->nstmts++;
	return e->name;
}

void db_conn_statement_settle(db_conn *c, const char *name, bool prepared)
{
	for (int i = 0; i < c->nstmts; i++) {
		stmt_entry *e = &c->stmts[i];
		if (strcmp(e->name, name) != 0)
			continue;
		if (prepared) {
			e->prepared = true;
		} else if (i == c->nstmts - 1) {
			/* Only the newest entry can be dropped without renaming others. */
			free(e->sql);
			c->nstmts--;
		} else {
			/* Leave a tombstone that never matches. */
			e->hash = 0;
			e->sql[0] = '\0';
		}
		return;
	}
}
