/*
 * webhook.h - outbox webhooks: signed JSON POSTs (billing events).
 *
 * The body is {"id": <event_id>, "type": <topic>, "createdAt": <ISO 8601
 * UTC>, "data": <payload>}; id and createdAt are the row's, so every retry
 * sends the same body and a receiver deduplicates on id.  Headers:
 *
 *     Content-Type: application/json
 *     X-Tekup-Event-Id: <event_id>
 *     X-Tekup-Timestamp: <unix seconds of this attempt>
 *     X-Tekup-Signature: t=<same seconds>,v1=<hex HMAC-SHA256>
 *
 * where the HMAC key is billing_webhook_secret and the signed text is
 * "<timestamp>.<body>" (Stripe's scheme): the receiver recomputes it,
 * compares in constant time, and rejects stale timestamps to stop replays.
 * Any 2xx is delivered; any other status or a transport error is a
 * retryable failure.
 */
#ifndef TK_OUTBOX_WEBHOOK_H
#define TK_OUTBOX_WEBHOOK_H

#include <stddef.h>
#include <time.h>

#include "outbox/outbox.h"
#include "outbox/transport.h"
#include "util/buf.h"
#include "util/status.h"

#define OUTBOX_WEBHOOK_TIMEOUT_MS 15000L
#define OUTBOX_SIGNATURE_HEX_LEN  64 /* HMAC-SHA256 as lower-case hex */

/* One webhook event; every string borrowed. */
typedef struct outbox_event {
	const char *event_id;   /* a UUID */
	const char *topic;      /* "type" */
	const char *created_at; /* ISO 8601 UTC, e.g. 2024-03-01T10:20:30.123Z */
	const char *payload;    /* JSON text, embedded verbatim as "data" */
} outbox_event;

/* Appends the request body for e to out.  payload must be valid JSON (it
 * is PostgreSQL's jsonb output); the other fields are JSON-escaped. */
void outbox_webhook_body(tk_buf *out, const outbox_event *e);

/* Writes the hex HMAC-SHA256 of "<timestamp>.<body>" keyed by secret (any
 * length) to out (OUTBOX_SIGNATURE_HEX_LEN characters + NUL). */
void outbox_webhook_signature(const char *secret, long long timestamp, const char *body,
                              size_t body_len, char out[OUTBOX_SIGNATURE_HEX_LEN + 1]);

/* POSTs e to t->url signed with secret, the timestamp taken from now. */
tk_status outbox_webhook_post(const outbox_target *t, const char *secret, const outbox_event *e,
                              time_t now, outbox_failure *f) TK_MUST_CHECK;

#endif
