/*
 * webhook.c - outbox webhooks: body, signature and the signed POST (see
 * webhook.h).
 *
 * The body and signature are pure (tested in tests/unit/test_outbox.c).
 * The secret is used only inside outbox_webhook_signature; no error path
 * or log line can carry it, the URL, or the response body.
 */
#include "outbox/webhook.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

void outbox_webhook_body(tk_buf *out, const outbox_event *e)
{
	tk_buf_puts(out, "{\"id\":");
	tk_buf_json_string(out, e->event_id, strlen(e->event_id));
	tk_buf_puts(out, ",\"type\":");
	tk_buf_json_string(out, e->topic, strlen(e->topic));
	tk_buf_puts(out, ",\"createdAt\":");
	tk_buf_json_string(out, e->created_at, strlen(e->created_at));
	tk_buf_puts(out, ",\"data\":");
	tk_buf_puts(out, e->payload);
	tk_buf_putc(out, '}');
}

void outbox_webhook_signature(const char *secret, long long timestamp, const char *body,
                              size_t body_len, char out[OUTBOX_SIGNATURE_HEX_LEN + 1])
{
	crypto_auth_hmacsha256_state st;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char prefix[32];
	int n = snprintf(prefix, sizeof prefix, "%lld.", timestamp);
	/* The _init/_update/_final form takes a key of any length, as HMAC
	 * does (crypto_auth_hmacsha256 itself wants exactly 32 bytes). */
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)prefix, (unsigned long long)n);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, body_len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2hex(out, OUTBOX_SIGNATURE_HEX_LEN + 1, mac, sizeof mac);
	sodium_memzero(&st, sizeof st);
}

/* Adds one header line; a NULL list from libcurl means out of memory. */
static tk_status add_header(struct curl_slist **list, const char *line)
{
	struct curl_slist *grown = curl_slist_append(*list, line);
	if (grown == NULL)
		return TK_ERR;
	*list = grown;
	return TK_OK;
}

tk_status outbox_webhook_post(const outbox_target *t, const char *secret, const outbox_event *e,
                              time_t now, outbox_failure *f)
{
	tk_status st = TK_ERR;
	tk_buf body = TK_BUF_INIT;
	CURL *h = NULL;
	struct curl_slist *headers = NULL;
	CURLcode rc = CURLE_OK;
	tk_status hs = TK_OK;
	long status = 0;
	char sig[OUTBOX_SIGNATURE_HEX_LEN + 1];
	char line[256];

	outbox_webhook_body(&body, e);
	outbox_webhook_signature(secret, (long long)now, body.data, body.len, sig);
	if (outbox_curl_open(t, "http,https", &h, f) != TK_OK)
		goto cleanup;
	hs = add_header(&headers, "Content-Type: application/json");
	/* No "Expect: 100-continue" round trip before larger bodies. */
	hs = hs == TK_OK ? add_header(&headers, "Expect:") : hs;
	hs = hs == TK_OK ? add_header(&headers, "User-Agent: tekup/" TEKUP_VERSION) : hs;
	snprintf(line, sizeof line, "X-Tekup-Event-Id: %s", e->event_id);
	hs = hs == TK_OK ? add_header(&headers, line) : hs;
	snprintf(line, sizeof line, "X-Tekup-Timestamp: %lld", (long long)now);
	hs = hs == TK_OK ? add_header(&headers, line) : hs;
	snprintf(line, sizeof line, "X-Tekup-Signature: t=%lld,v1=%s", (long long)now, sig);
	hs = hs == TK_OK ? add_header(&headers, line) : hs;
	if (hs != TK_OK) {
		outbox_fail(f, false, "webhook: out of memory");
		goto cleanup;
	}
	if ((rc = curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers)) != CURLE_OK ||
	    (rc = curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data)) != CURLE_OK ||
	    (rc = curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len)) !=
	        CURLE_OK) {
		outbox_fail(f, false, "webhook: set-up failed: %s", curl_easy_strerror(rc));
		goto cleanup;
	}
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		outbox_curl_failure(rc, "webhook", f);
		goto cleanup;
	}
	if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
		status = 0;
	if (status < 200 || status > 299) {
		outbox_fail(f, false, "webhook: http status %ld", status);
		goto cleanup;
	}
	st = TK_OK;
cleanup:
	curl_slist_free_all(headers);
	curl_easy_cleanup(h);
	tk_buf_free(&body);
	return st;
}
