/*
 * worker.c - the outbox delivery thread (see outbox.h; design in README.md).
 *
 * The thread owns one PostgreSQL connection (operator role, no pipeline
 * mode: one statement at a time, each answer awaited with a deadline and
 * the stop flag, worker_exec).  Each step is one transaction that
 * claims one due row (FOR UPDATE SKIP LOCKED), delivers it while holding
 * the row lock, records the outcome and commits; steps repeat until no row
 * is due, then the thread sleeps outbox_poll_ms.  Any database failure
 * drops the connection (PostgreSQL then rolls back and releases the lock,
 * so the row is simply still pending) and the thread reconnects with a
 * doubling delay.  Every sleep waits on a condition variable that
 * outbox_worker_stop signals, and the same stop flag aborts a transfer.
 */
#include "outbox/outbox.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/pool.h"
#include "outbox/smtp.h"
#include "outbox/webhook.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/log.h"

/* Reconnect delays after a database failure: doubling between these. */
#define RECONNECT_MIN_MS 250L
#define RECONNECT_MAX_MS 10000L

/*
 * Session settings of the worker's connection.  A transaction stays open
 * while a transfer runs (at most OUTBOX_SMTP_TIMEOUT_MS), so the idle limit
 * is above that: it only ends a session whose worker has truly vanished,
 * which releases its row lock for another server.
 */
#define SESSION_SQL                                                                                \
	"SET TimeZone = 'UTC'; SET statement_timeout = '10s'; "                                    \
	"SET idle_in_transaction_session_timeout = '60s'"
#define SESSION_STATEMENT_TIMEOUT_MS 10000LL
/* How long an answer is awaited: the statement timeout plus the grace
 * (db/pool.h).  Longer means PostgreSQL stopped answering (a stopped or
 * partitioned host): the connection is dropped, so it costs a reconnect,
 * never the thread (or, with it, the server's shutdown). */
#define REPLY_DEADLINE_MS (SESSION_STATEMENT_TIMEOUT_MS + DB_REPLY_GRACE_MS)
/* How often a wait for an answer looks at the stop flag, and how long it
 * still waits once a stop is asked for: enough for a slow COMMIT (the
 * record of a delivery, which saves a duplicate), not for a dead peer. */
#define STOP_CHECK_MS 200LL
#define STOP_GRACE_MS 1000LL

/* The oldest due row of a kind we can deliver, skipping rows another
 * worker holds.  created_at is formatted here (one formatting authority). */
#define CLAIM_SQL                                                                                  \
	"SELECT id, event_id, kind, topic, payload::text, attempts, "                              \
	"to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "             \
	"FROM outbox WHERE status = 'pending' AND next_attempt_at <= now() "                       \
	"AND kind = ANY ($1::text[]) ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"

/* clock_timestamp(), not now(): the transaction began before the transfer,
 * which may have taken seconds. */
#define DELIVERED_SQL                                                                              \
	"UPDATE outbox SET status = 'delivered', delivered_at = clock_timestamp() WHERE id = $1"
#define FAILED_SQL                                                                                 \
	"UPDATE outbox SET attempts = attempts + 1, last_error = $2, status = $3, "                \
	"next_attempt_at = clock_timestamp() + $4::bigint * interval '1 millisecond' "             \
	"WHERE id = $1"

struct outbox_worker {
	const tk_config *cfg; /* borrowed */
	char *conninfo;
	char kinds[32]; /* text[] literal of the kinds with a peer, "{}" for none */
	PGconn *pg;     /* NULL while disconnected */
	long reconnect_ms;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	atomic_bool stopping; /* written under lock; read anywhere */
};

/* One claimed row; every string borrowed from the claim's PGresult. */
typedef struct outbox_row {
	const char *id;
	const char *event_id;
	const char *kind;
	const char *topic;
	const char *payload;
	long attempts;
	const char *created_at;
} outbox_row;

long long outbox_retry_delay_ms(long base_ms, long attempts)
{
	if (base_ms <= 0)
		return 0;
	if (attempts < 0)
		attempts = 0;
	long long delay = base_ms;
	for (long i = 0; i < attempts && delay < OUTBOX_BACKOFF_CAP_MS; i++)
		delay *= 2;
	return delay < OUTBOX_BACKOFF_CAP_MS ? delay : OUTBOX_BACKOFF_CAP_MS;
}

/* Sleeps up to ms, returning early when stop is requested. */
static void worker_sleep(outbox_worker *w, long ms)
{
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->lock);
	while (!atomic_load(&w->stopping))
		if (pthread_cond_timedwait(&w->wake, &w->lock, &deadline) != 0)
			break; /* timed out (or a clock error: then just poll again) */
	pthread_mutex_unlock(&w->lock);
}

static bool worker_stopping(outbox_worker *w)
{
	return atomic_load(&w->stopping);
}

/* Logs the first line of libpq's error (the rest is hints and blanks). */
static void log_db_error(PGconn *pg, const char *what)
{
	const char *msg = PQerrorMessage(pg);
	log_warn("outbox: %s: %.*s", what, (int)strcspn(msg, "\n"), msg);
}

/*
 * Sends sql (nparams < 0: the simple protocol, which takes several
 * statements in one string) and reads every answer.  Returns the first
 * result that is not want, or else the last; the caller clears it.  NULL
 * (logged) when it could not be sent, when PostgreSQL did not answer
 * within REPLY_DEADLINE_MS, or within STOP_GRACE_MS of a stop: the
 * connection is then unusable, and the caller drops it (PostgreSQL rolls
 * back; an interrupted COMMIT may have committed, and an undelivered mark
 * means one more delivery: at least once, README.md).
 */
static PGresult *worker_exec(outbox_worker *w, PGconn *pg, const char *sql, int nparams,
                             const char *const *params, ExecStatusType want)
{
	int sent = nparams < 0 ? PQsendQuery(pg, sql)
	                       : PQsendQueryParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
	if (sent != 1) {
		log_db_error(pg, "database error");
		return NULL;
	}
	long long deadline = db_clock_ms() + REPLY_DEADLINE_MS;
	bool stop_seen = false;
	PGresult *kept = NULL;
	for (;;) {
		bool late = false;
		long long now = db_clock_ms();
		long long slice = now + STOP_CHECK_MS < deadline ? now + STOP_CHECK_MS : deadline;
		PGresult *r = db_get_result(pg, slice, &late);
		if (late) {
			if (worker_stopping(w) && !stop_seen) {
				stop_seen = true;
				long long grace = db_clock_ms() + STOP_GRACE_MS;
				deadline = grace < deadline ? grace : deadline;
			}
			if (db_clock_ms() >= deadline) {
				if (!stop_seen)
					log_warn(
					    "outbox: PostgreSQL did not answer within %lld ms; "
					    "dropping the connection",
					    REPLY_DEADLINE_MS);
				PQclear(kept);
				return NULL;
			}
			continue;
		}
		if (r == NULL)
			return kept;
		if (kept == NULL || PQresultStatus(kept) == want) {
			PQclear(kept);
			kept = r;
		} else {
			PQclear(r);
		}
	}
}

/* Runs a statement that returns no rows; logs and fails on any error. */
static tk_status exec_command(outbox_worker *w, const char *sql, int nparams,
                              const char *const *params)
{
	PGresult *r = worker_exec(w, w->pg, sql, nparams, params, PGRES_COMMAND_OK);
	tk_status st = PQresultStatus(r) == PGRES_COMMAND_OK ? TK_OK : TK_ERR;
	if (st != TK_OK && r != NULL)
		log_db_error(w->pg, "database error");
	PQclear(r);
	return st;
}

static tk_status worker_connect(outbox_worker *w)
{
	tk_error err = {0};
	PGconn *pg = NULL;
	if (db_connect(w->conninfo, &pg, &err) != TK_OK)
		return TK_ERR; /* db_connect logged why */
	PGresult *r = worker_exec(w, pg, SESSION_SQL, -1, NULL, PGRES_COMMAND_OK);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok && r != NULL)
		log_db_error(pg, "connection set-up failed");
	PQclear(r);
	if (!ok) {
		PQfinish(pg);
		return TK_ERR;
	}
	w->pg = pg;
	return TK_OK;
}

static tk_status deliver_email(outbox_worker *w, const outbox_target *t, const outbox_row *row,
                               outbox_failure *f)
{
	json_error_t jerr;
	const char *to = NULL, *subject = NULL, *text = NULL;
	json_t *root = json_loads(row->payload, 0, &jerr);
	/* Other payload fields are allowed: the writer may add some later. */
	if (root == NULL || json_unpack_ex(root, &jerr, 0, "{s:s, s:s, s:s}", "to", &to, "subject",
	                                   &subject, "text", &text) != 0) {
		json_decref(root);
		return outbox_fail(f, true,
		                   "email: payload needs string fields to, subject and text");
	}
	outbox_email m = {
	    .event_id = row->event_id,
	    .from = w->cfg->mail_from,
	    .to = to,
	    .subject = subject,
	    .text = text,
	    .date = time(NULL),
	};
	tk_status st = outbox_smtp_send(t, &m, f);
	json_decref(root);
	return st;
}

static tk_status deliver(outbox_worker *w, const outbox_row *row, outbox_failure *f)
{
	outbox_target t = {.cancel = &w->stopping};
	if (strcmp(row->kind, "email") == 0) {
		t.url = w->cfg->smtp_url;
		t.timeout_ms = OUTBOX_SMTP_TIMEOUT_MS;
		return deliver_email(w, &t, row, f);
	}
	if (strcmp(row->kind, "webhook") == 0) {
		t.url = w->cfg->billing_webhook_url;
		t.timeout_ms = OUTBOX_WEBHOOK_TIMEOUT_MS;
		outbox_event e = {
		    .event_id = row->event_id,
		    .topic = row->topic,
		    .created_at = row->created_at,
		    .payload = row->payload,
		};
		return outbox_webhook_post(&t, w->cfg->billing_webhook_secret, &e, time(NULL), f);
	}
	/* The claim only selects configured kinds; this is a schema change. */
	return outbox_fail(f, true, "unknown kind");
}

/* Writes the outcome of one attempt (f NULL: delivered) into the row. */
static tk_status record_outcome(outbox_worker *w, const outbox_row *row, const outbox_failure *f)
{
	if (f == NULL) {
		const char *params[] = {row->id};
		if (exec_command(w, DELIVERED_SQL, 1, params) != TK_OK)
			return TK_ERR;
		log_info("outbox: delivered %s %s (event %s)", row->kind, row->topic,
		         row->event_id);
		return TK_OK;
	}
	long attempts = row->attempts + 1;
	bool dead = f->permanent || attempts >= w->cfg->outbox_max_attempts;
	long long delay = outbox_retry_delay_ms(w->cfg->outbox_backoff_ms, row->attempts);
	char delay_text[24];
	snprintf(delay_text, sizeof delay_text, "%lld", delay);
	const char *params[] = {row->id, f->message, dead ? "dead" : "pending", delay_text};
	if (exec_command(w, FAILED_SQL, 4, params) != TK_OK)
		return TK_ERR;
	if (dead)
		log_error("outbox: gave up on %s %s (event %s) after %ld attempt(s): %s", row->kind,
		          row->topic, row->event_id, attempts, f->message);
	else
		log_warn("outbox: %s %s (event %s) attempt %ld of %ld failed, retry in %lld ms: %s",
		         row->kind, row->topic, row->event_id, attempts,
		         w->cfg->outbox_max_attempts, delay, f->message);
	return TK_OK;
}

/*
 * One transaction: claim a due row, deliver it under its lock, record the
 * outcome, commit.  *found says whether a row was due.  TK_ERR means the
 * database failed; the caller drops the connection, which rolls back.
 */
static tk_status worker_step(outbox_worker *w, bool *found)
{
	tk_status st = TK_ERR;
	PGresult *claim = NULL;
	*found = false;

	if (exec_command(w, "BEGIN", 0, NULL) != TK_OK)
		goto cleanup;
	const char *params[] = {w->kinds};
	claim = worker_exec(w, w->pg, CLAIM_SQL, 1, params, PGRES_TUPLES_OK);
	if (PQresultStatus(claim) != PGRES_TUPLES_OK) {
		if (claim != NULL)
			log_db_error(w->pg, "database error");
		goto cleanup;
	}
	if (PQntuples(claim) == 0) {
		st = exec_command(w, "COMMIT", 0, NULL);
		goto cleanup;
	}
	*found = true;
	outbox_row row = {
	    .id = PQgetvalue(claim, 0, 0),
	    .event_id = PQgetvalue(claim, 0, 1),
	    .kind = PQgetvalue(claim, 0, 2),
	    .topic = PQgetvalue(claim, 0, 3),
	    .payload = PQgetvalue(claim, 0, 4),
	    .attempts = strtol(PQgetvalue(claim, 0, 5), NULL, 10),
	    .created_at = PQgetvalue(claim, 0, 6),
	};
	outbox_failure f = {0};
	if (deliver(w, &row, &f) == TK_OK) {
		if (record_outcome(w, &row, NULL) != TK_OK)
			goto cleanup;
	} else if (f.aborted) {
		/* Shutdown cut the transfer short: not an attempt, and the
		 * receiver may or may not have it; the row stays pending. */
		st = exec_command(w, "ROLLBACK", 0, NULL);
		goto cleanup;
	} else if (record_outcome(w, &row, &f) != TK_OK) {
		goto cleanup;
	}
	st = exec_command(w, "COMMIT", 0, NULL);
cleanup:
	PQclear(claim);
	return st;
}

static void *worker_main(void *arg)
{
	outbox_worker *w = arg;
	if (strcmp(w->kinds, "{}") == 0) {
		/* Nothing to deliver to: idle without a connection. */
		while (!worker_stopping(w))
			worker_sleep(w, 60000);
		return NULL;
	}
	while (!worker_stopping(w)) {
		tk_status st = w->pg ? TK_OK : worker_connect(w);
		bool found = true;
		while (st == TK_OK && found && !worker_stopping(w))
			st = worker_step(w, &found);
		if (st != TK_OK) {
			/* Also on errors that are not a lost connection (a missing
			 * migration, a revoked grant): a fresh session costs
			 * little, and the delay below keeps retries slow. */
			PQfinish(w->pg);
			w->pg = NULL;
			log_warn("outbox: database unavailable; retrying in %ld ms",
			         w->reconnect_ms);
			worker_sleep(w, w->reconnect_ms);
			w->reconnect_ms = w->reconnect_ms * 2 < RECONNECT_MAX_MS
			                      ? w->reconnect_ms * 2
			                      : RECONNECT_MAX_MS;
			continue;
		}
		w->reconnect_ms = RECONNECT_MIN_MS;
		worker_sleep(w, w->cfg->outbox_poll_ms);
	}
	PQfinish(w->pg);
	w->pg = NULL;
	return NULL;
}

/* The kinds whose peer is configured, as a text[] literal for CLAIM_SQL;
 * logs once what waits and why. */
static void worker_kinds(outbox_worker *w)
{
	const tk_config *cfg = w->cfg;
	bool email = cfg->smtp_url != NULL && cfg->smtp_url[0] != '\0';
	bool webhook = cfg->billing_webhook_url != NULL && cfg->billing_webhook_url[0] != '\0' &&
	               cfg->billing_webhook_secret != NULL;
	snprintf(w->kinds, sizeof w->kinds, "{%s%s%s}", email ? "email" : "",
	         email && webhook ? "," : "", webhook ? "webhook" : "");
	if (!email)
		log_info("outbox: no smtp-url set; e-mail stays pending in the outbox");
	if (!webhook)
		log_info("outbox: no billing-webhook-url set; webhooks stay pending in the outbox");
	if (email || webhook)
		log_info("outbox: delivering %s, polling every %ld ms", w->kinds,
		         cfg->outbox_poll_ms);
}

outbox_worker *outbox_worker_start(const tk_config *cfg, const char *conninfo)
{
	outbox_worker *w = tk_calloc(1, sizeof *w);
	pthread_condattr_t attr;
	bool cond_ready = false;
	w->cfg = cfg;
	w->conninfo = tk_strdup(conninfo);
	w->reconnect_ms = RECONNECT_MIN_MS;
	atomic_init(&w->stopping, false);
	worker_kinds(w);
	if (pthread_mutex_init(&w->lock, NULL) != 0)
		goto fail_mutex;
	/* A monotonic clock, so setting the wall clock cannot stretch a sleep. */
	if (pthread_condattr_init(&attr) != 0)
		goto fail_cond;
	cond_ready = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
	             pthread_cond_init(&w->wake, &attr) == 0;
	pthread_condattr_destroy(&attr);
	if (!cond_ready)
		goto fail_cond;
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		goto fail_thread;
	return w;
fail_thread:
	pthread_cond_destroy(&w->wake);
fail_cond:
	pthread_mutex_destroy(&w->lock);
fail_mutex:
	log_error("outbox: cannot start the delivery thread");
	free(w->conninfo);
	free(w);
	return NULL;
}

void outbox_worker_stop(outbox_worker *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	atomic_store(&w->stopping, true);
	pthread_cond_broadcast(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w->conninfo);
	free(w);
}
