/*
 * smtp.h - outbox e-mail: build an RFC 5322 message and send it over SMTP.
 *
 * A message is plain text only: Date, From, To, Subject, Message-ID
 * (<event_id@tekup>, stable across retries so a receiver or a mail store
 * can drop duplicates), MIME-Version, Content-Type text/plain; charset=utf-8,
 * and a quoted-printable body (any UTF-8 text, any line length, over any
 * SMTP server, 8BITMIME or not).  A non-ASCII subject is encoded as RFC 2047
 * words.  Header values come from the outbox payload, so a CR or LF in any
 * of them is refused (header injection), and addresses must be plain
 * ASCII addr-specs: nothing a receiver could parse as a second header or a
 * second recipient.  Lines end in CRLF; libcurl adds SMTP dot-stuffing.
 */
#ifndef TK_OUTBOX_SMTP_H
#define TK_OUTBOX_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "outbox/outbox.h"
#include "outbox/transport.h"
#include "util/buf.h"
#include "util/status.h"

/* The welcome e-mail's subject is cut to fit OUTBOX_SUBJECT_MAX in SQL
 * (tenant_welcome_subject, migration 0015): the two move together. */
#define OUTBOX_ADDRESS_MAX     254       /* RFC 5321 path limit */
#define OUTBOX_SUBJECT_MAX     400       /* bytes of UTF-8, before encoding */
#define OUTBOX_TEXT_MAX        (1 << 20) /* body bytes, before encoding */
#define OUTBOX_SMTP_TIMEOUT_MS 30000L    /* a whole SMTP session */

/* One e-mail; every string borrowed. */
typedef struct outbox_email {
	const char *event_id; /* a UUID: the Message-ID's local part */
	const char *from;
	const char *to;
	const char *subject;
	const char *text;
	time_t date;
} outbox_email;

/* True for a plain ASCII "local@domain" with no space, control character,
 * or any of ()<>[]:;,\" -- conservative on purpose. */
bool outbox_address_ok(const char *address);

/*
 * Appends the whole message (headers, blank line, body; CRLF line ends) to
 * out.  A bad address, a CR or LF in a header value, or an over-long field
 * is a permanent failure (f filled, TK_ERR, out left partly written).
 */
tk_status outbox_email_build(const outbox_email *m, tk_buf *out, outbox_failure *f) TK_MUST_CHECK;

/* Appends value as a Subject header value: as is when plain printable
 * ASCII, else as folded RFC 2047 B-encoded words of at most 75 characters
 * that never split a UTF-8 sequence. */
void outbox_subject_encode(tk_buf *out, const char *value);

/* Appends text quoted-printable encoded (RFC 2045), line ends made CRLF. */
void outbox_qp_encode(tk_buf *out, const char *text, size_t len);

/*
 * Sends m through t->url (smtp:// or smtps://; STARTTLS when offered).
 * The envelope sender is m->from and the one recipient m->to.  On failure
 * fills f: permanent for an unusable message, else retryable (or aborted).
 */
tk_status outbox_smtp_send(const outbox_target *t, const outbox_email *m,
                           outbox_failure *f) TK_MUST_CHECK;

#endif
