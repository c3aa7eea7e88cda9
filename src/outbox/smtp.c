/*
 * smtp.c - outbox e-mail: message building and SMTP delivery (see smtp.h).
 *
 * Building is pure (tested in tests/unit/test_outbox.c); sending is one
 * libcurl SMTP session per message.  Every peer reply that is not success
 * is retryable: a 5xx may come from a misconfigured relay the operator can
 * still fix, and the dead-letter state bounds the retries anyway.
 */
#include "outbox/smtp.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* RFC 2047: an encoded word is at most 75 characters.  39 bytes make 52
 * base64 characters, a 64-character word, so even the first line,
 * "Subject: " + word, stays within RFC 5322's 78. */
#define WORD_MAX_BYTES 39
/* RFC 2045: encoded lines of at most 76 characters, the soft break's "="
 * included. */
#define QP_LINE_MAX 76

static const char *const day_names[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

bool outbox_address_ok(const char *address)
{
	size_t len = strlen(address);
	const char *at = strrchr(address, '@');
	if (len < 3 || len > OUTBOX_ADDRESS_MAX || at == NULL || at == address || at[1] == '\0')
		return false;
	for (const unsigned char *p = (const unsigned char *)address; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || strchr("()<>[]:;,\\\"", *p))
			return false;
	return true;
}

static bool has_line_break(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

/* Printable ASCII that no reader could take for an encoded word. */
static bool subject_is_plain(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			return false;
	return strstr(s, "=?") == NULL;
}

void outbox_subject_encode(tk_buf *out, const char *value)
{
	if (subject_is_plain(value)) {
		tk_buf_puts(out, value);
		return;
	}
	const unsigned char *p = (const unsigned char *)value;
	size_t left = strlen(value);
	bool first = true;
	while (left > 0) {
		size_t n = left < WORD_MAX_BYTES ? left : WORD_MAX_BYTES;
		/* Back off to a character boundary: a word must decode alone. */
		while (n < left && n > 1 && (p[n] & 0xc0) == 0x80)
			n--;
		char b64[sodium_base64_ENCODED_LEN(WORD_MAX_BYTES, sodium_base64_VARIANT_ORIGINAL)];
		sodium_bin2base64(b64, sizeof b64, p, n, sodium_base64_VARIANT_ORIGINAL);
		/* Folding whitespace between encoded words is not displayed. */
		tk_buf_printf(out, "%s=?UTF-8?B?%s?=", first ? "" : "\r\n ", b64);
		first = false;
		p += n;
		left -= n;
	}
}

static bool qp_must_encode(unsigned char c, bool last_in_line)
{
	if (c == ' ' || c == '\t')
		return last_in_line; /* trailing white space would be stripped */
	return c == '=' || c < 0x20 || c > 0x7e;
}

void outbox_qp_encode(tk_buf *out, const char *text, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i = 0;
	while (i < len) {
		/* One input line: up to CRLF, LF or a lone CR. */
		size_t end = i;
		while (end < len && text[end] != '\r' && text[end] != '\n')
			end++;
		size_t col = 0;
		for (size_t k = i; k < end; k++) {
			unsigned char c = (unsigned char)text[k];
			bool enc = qp_must_encode(c, k + 1 == end);
			size_t width = enc ? 3 : 1;
			/* Keep one column for the soft break's "=". */
			if (col + width > QP_LINE_MAX - 1) {
				tk_buf_puts(out, "=\r\n");
				col = 0;
			}
			if (enc) {
				char e[3] = {'=', hex[c >> 4], hex[c & 0xf]};
				tk_buf_append(out, e, sizeof e);
			} else {
				tk_buf_putc(out, (char)c);
			}
			col += width;
		}
		tk_buf_puts(out, "\r\n");
		if (end < len && text[end] == '\r' && end + 1 < len && text[end + 1] == '\n')
			end++;
		i = end + 1;
	}
}

static tk_status append_date(tk_buf *out, time_t when, outbox_failure *f)
{
	struct tm tm;
	if (gmtime_r(&when, &tm) == NULL)
		return outbox_fail(f, false, "email: the clock is out of range");
	/* Names from our own tables: strftime's %a and %b follow the locale. */
	tk_buf_printf(out, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", day_names[tm.tm_wday],
	              tm.tm_mday, month_names[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	              tm.tm_sec);
	return TK_OK;
}

tk_status outbox_email_build(const outbox_email *m, tk_buf *out, outbox_failure *f)
{
	if (has_line_break(m->from) || has_line_break(m->to) || has_line_break(m->subject) ||
	    has_line_break(m->event_id))
		return outbox_fail(f, true, "email: line break in a header value");
	if (!outbox_address_ok(m->from))
		return outbox_fail(f, true, "email: the sender address is not a plain address");
	if (!outbox_address_ok(m->to))
		return outbox_fail(f, true, "email: the recipient address is not a plain address");
	if (strlen(m->subject) > OUTBOX_SUBJECT_MAX)
		return outbox_fail(f, true, "email: subject over %d bytes", OUTBOX_SUBJECT_MAX);
	size_t text_len = strlen(m->text);
	if (text_len > OUTBOX_TEXT_MAX)
		return outbox_fail(f, true, "email: text over %d bytes", OUTBOX_TEXT_MAX);

	if (append_date(out, m->date, f) != TK_OK)
		return TK_ERR;
	tk_buf_printf(out, "From: <%s>\r\nTo: <%s>\r\nSubject: ", m->from, m->to);
	outbox_subject_encode(out, m->subject);
	tk_buf_printf(out,
	              "\r\nMessage-ID: <%s@tekup>\r\n"
	              "MIME-Version: 1.0\r\n"
	              "Content-Type: text/plain; charset=utf-8\r\n"
	              "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
	              m->event_id);
	outbox_qp_encode(out, m->text, text_len);
	return TK_OK;
}

/* The upload source for libcurl: the built message, read once. */
typedef struct upload {
	const char *data;
	size_t left;
} upload;

static size_t read_message(char *dest, size_t size, size_t nmemb, void *user)
{
	upload *u = user;
	size_t n = size * nmemb < u->left ? size * nmemb : u->left;
	memcpy(dest, u->data, n);
	u->data += n;
	u->left -= n;
	return n;
}

tk_status outbox_smtp_send(const outbox_target *t, const outbox_email *m, outbox_failure *f)
{
	tk_status st = TK_ERR;
	tk_buf msg = TK_BUF_INIT;
	tk_buf from = TK_BUF_INIT;
	tk_buf to = TK_BUF_INIT;
	CURL *h = NULL;
	struct curl_slist *rcpt = NULL;
	CURLcode rc = CURLE_OK;
	upload u = {NULL, 0};

	if (outbox_email_build(m, &msg, f) != TK_OK)
		goto cleanup;
	if (outbox_curl_open(t, "smtp,smtps", &h, f) != TK_OK)
		goto cleanup;
	tk_buf_printf(&from, "<%s>", m->from);
	tk_buf_printf(&to, "<%s>", m->to);
	rcpt = curl_slist_append(NULL, to.data);
	if (rcpt == NULL) {
		outbox_fail(f, false, "smtp: out of memory");
		goto cleanup;
	}
	u = (upload){msg.data, msg.len};
	if ((rc = curl_easy_setopt(h, CURLOPT_MAIL_FROM, from.data)) != CURLE_OK ||
	    (rc = curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt)) != CURLE_OK ||
	    (rc = curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY)) != CURLE_OK ||
	    (rc = curl_easy_setopt(h, CURLOPT_UPLOAD, 1L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(h, CURLOPT_READFUNCTION, read_message)) != CURLE_OK ||
	    (rc = curl_easy_setopt(h, CURLOPT_READDATA, &u)) != CURLE_OK ||
	    (rc = curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)msg.len)) != CURLE_OK) {
		outbox_fail(f, false, "smtp: set-up failed: %s", curl_easy_strerror(rc));
		goto cleanup;
	}
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		long reply = 0;
		if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply) != CURLE_OK)
			reply = 0;
		outbox_curl_failure(rc, "smtp", f);
		if (reply >= 400 && !f->aborted) {
			/* The reply code says who refused; the reply text could echo
			 * addresses back, so it is not kept. */
			size_t used = strlen(f->message);
			snprintf(f->message + used, sizeof f->message - used, " (reply %ld)",
			         reply);
		}
		goto cleanup;
	}
	st = TK_OK;
cleanup:
	curl_slist_free_all(rcpt);
	curl_easy_cleanup(h);
	tk_buf_free(&to);
	tk_buf_free(&from);
	tk_buf_free(&msg);
	return st;
}
