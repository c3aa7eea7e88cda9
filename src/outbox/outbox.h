/*
 * outbox.h - the outbox delivery worker: the contract with `tekup serve`.
 *
 * Provisioning writes side effects (welcome e-mail, billing events) as rows
 * of the `outbox` table in the same transaction as the tenant; this worker
 * delivers them, at least once, with exponential backoff and a dead-letter
 * state.  One background thread per server, on its own PostgreSQL
 * connection as the operator role; several servers may run workers at once
 * (rows are claimed with FOR UPDATE SKIP LOCKED).  See README.md in this
 * folder for the design: locking, what "at least once" costs receivers, and
 * how failures are classified.
 *
 * The e-mail and webhook transports live in smtp.h and webhook.h; this
 * header holds what the worker and both transports share.
 */
#ifndef TK_OUTBOX_H
#define TK_OUTBOX_H

#include <stdatomic.h>
#include <stdbool.h>

#include "util/config.h"
#include "util/status.h"

/* Longest last_error stored for a failed attempt (the column is text; this
 * keeps it a short diagnosis, not a transcript). */
#define OUTBOX_ERROR_MAX 200
/* Retry delays double from outbox_backoff_ms up to this ceiling. */
#define OUTBOX_BACKOFF_CAP_MS 3600000LL

/*
 * Why an attempt did not deliver.  message is short, lower-case and never
 * holds a secret (no URL, credential, signature or response body): it is
 * stored in outbox.last_error, which the operator API shows.
 */
typedef struct outbox_failure {
	bool permanent; /* the row itself is unusable: retrying cannot help */
	bool aborted;   /* shutdown interrupted the attempt: not counted */
	char message[OUTBOX_ERROR_MAX];
} outbox_failure;

/* Fills f (aborted = permanent = false) and returns TK_ERR. */
tk_status outbox_fail(outbox_failure *f, bool permanent, const char *fmt, ...) TK_PRINTF(3, 4);

/*
 * The wait before the next attempt after a failure of a row that had
 * `attempts` failed attempts before this one: base_ms * 2^attempts, at most
 * OUTBOX_BACKOFF_CAP_MS, overflow-safe for any input.
 */
long long outbox_retry_delay_ms(long base_ms, long attempts);

typedef struct outbox_worker outbox_worker;

/*
 * Starts the worker thread.  cfg is borrowed and must outlive the worker
 * (its smtp_url, mail_from, billing_webhook_* and outbox_* settings are
 * used); conninfo (the operator role's URL) is copied.  Kinds whose peer is
 * not configured are left pending, untouched; with neither configured the
 * thread only waits for stop.  Start-up never waits for PostgreSQL: the
 * thread connects, and reconnects, by itself.  Returns NULL only when the
 * thread cannot be created.
 */
outbox_worker *outbox_worker_start(const tk_config *cfg, const char *conninfo);

/*
 * Stops the worker and frees it; NULL is a no-op.  An SMTP or HTTP transfer
 * in flight is aborted (its row stays pending, not counted as an attempt),
 * so this returns within about a second, and never later than the current
 * transfer's own timeout.
 */
void outbox_worker_stop(outbox_worker *w);

#endif
