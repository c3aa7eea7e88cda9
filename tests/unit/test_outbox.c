/*
 * test_outbox.c - unit tests for the pure parts of the outbox worker
 * (outbox/outbox.h, smtp.h, webhook.h): the webhook signature against
 * HMAC-SHA256 vectors computed with Python's hmac module, the webhook body,
 * the e-mail message (headers, quoted-printable body, RFC 2047 subjects),
 * rejection of header injection and of addresses that are not plain, and
 * the retry delay.  Delivery itself is tested end to end in
 * tests/integration/test_outbox.py against real SMTP and HTTP peers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "outbox/outbox.h"
#include "outbox/smtp.h"
#include "outbox/webhook.h"

#define EVENT_ID "0b7c6f0e-3f4a-4f7e-9a59-2f1e8c1d2a10"
/* Tue, 14 Nov 2023 22:13:20 UTC */
#define FIXED_DATE ((time_t)1700000000)

static const outbox_event billing_event = {
    .event_id = EVENT_ID,
    .topic = "billing.subscription.create",
    .created_at = "2024-03-01T10:20:30.123Z",
    .payload = "{\"plan\": \"basic\"}",
};

static outbox_email sample_email(void)
{
	outbox_email m = {
	    .event_id = EVENT_ID,
	    .from = "no-reply@tekup.local",
	    .to = "ada@example.com",
	    .subject = "Welcome to tekup",
	    .text = "Hello Ada,\nyour tenant is ready.\n",
	    .date = FIXED_DATE,
	};
	return m;
}

/* Builds m, expecting success; returns the malloc'd message. */
static char *build_ok(const outbox_email *m)
{
	tk_buf b = TK_BUF_INIT;
	outbox_failure f = {0};
	assert_int_equal(outbox_email_build(m, &b, &f), TK_OK);
	assert_int_equal(strlen(b.data), b.len);
	return tk_buf_steal(&b);
}

/* Builds m, expecting a permanent failure whose message contains want. */
static void build_rejected(const outbox_email *m, const char *want)
{
	tk_buf b = TK_BUF_INIT;
	outbox_failure f = {0};
	assert_int_equal(outbox_email_build(m, &b, &f), TK_ERR);
	assert_true(f.permanent);
	assert_false(f.aborted);
	assert_non_null(strstr(f.message, want));
	tk_buf_free(&b);
}

static char *qp(const char *text)
{
	tk_buf b = TK_BUF_INIT;
	outbox_qp_encode(&b, text, strlen(text));
	return tk_buf_steal(&b);
}

static char *subject(const char *value)
{
	tk_buf b = TK_BUF_INIT;
	outbox_subject_encode(&b, value);
	return tk_buf_steal(&b);
}

/* Decodes quoted-printable (CRLF lines, soft breaks) back to LF text. */
static char *qp_decode(const char *s)
{
	size_t len = strlen(s);
	char *out = malloc(len + 1);
	assert_non_null(out);
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '=' && s[i + 1] == '\r' && s[i + 2] == '\n') {
			i += 2;
		} else if (s[i] == '=') {
			assert_true(i + 2 < len);
			char hex[3] = {s[i + 1], s[i + 2], 0};
			out[n++] = (char)strtol(hex, NULL, 16);
			i += 2;
		} else if (s[i] == '\r') {
			assert_int_equal(s[i + 1], '\n'); /* never a bare CR */
		} else {
			out[n++] = s[i];
		}
	}
	out[n] = '\0';
	return out;
}

static void test_signature_matches_python_hmac(void **state)
{
	(void)state;
	/* python3: hmac.new(b"whsec_test_secret", b"1700000000." + body,
	 * hashlib.sha256).hexdigest() */
	tk_buf body = TK_BUF_INIT;
	outbox_webhook_body(&body, &billing_event);
	char sig[OUTBOX_SIGNATURE_HEX_LEN + 1];
	outbox_webhook_signature("whsec_test_secret", 1700000000LL, body.data, body.len, sig);
	assert_string_equal(sig,
	                    "abcc52dae9a2a0481a7ad0a47a9c2c37a468c5f502df06131144e6641dcb70cc");
	tk_buf_free(&body);
}

static void test_signature_any_key_length(void **state)
{
	(void)state;
	char sig[OUTBOX_SIGNATURE_HEX_LEN + 1];
	/* A key longer than SHA-256's 64-byte block is hashed first (HMAC). */
	char key[101];
	memset(key, 'k', 100);
	key[100] = '\0';
	outbox_webhook_signature(key, 1, "x", 1, sig);
	assert_string_equal(sig,
	                    "8dc72019a8a249d8f2d36e36fac06f4497511f4f50cfee8600a5d97fb8a91da5");
	/* A short key and an empty body: the text signed is just "1.". */
	outbox_webhook_signature("key", 1, "", 0, sig);
	assert_string_equal(sig,
	                    "53123bc365c2fe4bee48bc5cc6cd6c19699147d43513154ed34277c7c063e80f");
}

static void test_signature_depends_on_every_input(void **state)
{
	(void)state;
	char a[OUTBOX_SIGNATURE_HEX_LEN + 1], b[OUTBOX_SIGNATURE_HEX_LEN + 1];
	outbox_webhook_signature("s", 100, "{}", 2, a);
	outbox_webhook_signature("s", 101, "{}", 2, b);
	assert_string_not_equal(a, b);
	outbox_webhook_signature("t", 100, "{}", 2, b);
	assert_string_not_equal(a, b);
	outbox_webhook_signature("s", 100, "[]", 2, b);
	assert_string_not_equal(a, b);
}

static void test_webhook_body(void **state)
{
	(void)state;
	tk_buf b = TK_BUF_INIT;
	outbox_webhook_body(&b, &billing_event);
	assert_string_equal(b.data,
	                    "{\"id\":\"" EVENT_ID "\",\"type\":\"billing.subscription.create\","
	                    "\"createdAt\":\"2024-03-01T10:20:30.123Z\","
	                    "\"data\":{\"plan\": \"basic\"}}");
	tk_buf_free(&b);

	/* Text fields are escaped; the result is always valid JSON. */
	outbox_event odd = billing_event;
	odd.topic = "a\"b\\c\n";
	odd.payload = "{\"nested\": {\"list\": [1, 2.5, null, \"\\u00e9\"]}}";
	outbox_webhook_body(&b, &odd);
	json_error_t err;
	json_t *root = json_loads(b.data, JSON_REJECT_DUPLICATES, &err);
	assert_non_null(root);
	assert_string_equal(json_string_value(json_object_get(root, "type")), "a\"b\\c\n");
	assert_string_equal(json_string_value(json_object_get(root, "id")), EVENT_ID);
	json_t *list =
	    json_object_get(json_object_get(json_object_get(root, "data"), "nested"), "list");
	assert_int_equal(json_array_size(list), 4);
	json_decref(root);
	tk_buf_free(&b);
}

static void test_email_message(void **state)
{
	(void)state;
	outbox_email m = sample_email();
	char *msg = build_ok(&m);
	assert_string_equal(msg, "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
	                         "From: <no-reply@tekup.local>\r\n"
	                         "To: <ada@example.com>\r\n"
	                         "Subject: Welcome to tekup\r\n"
	                         "Message-ID: <" EVENT_ID "@tekup>\r\n"
	                         "MIME-Version: 1.0\r\n"
	                         "Content-Type: text/plain; charset=utf-8\r\n"
	                         "Content-Transfer-Encoding: quoted-printable\r\n"
	                         "\r\n"
	                         "Hello Ada,\r\n"
	                         "your tenant is ready.\r\n");
	free(msg);
}

static void test_email_every_line_ends_in_crlf(void **state)
{
	(void)state;
	outbox_email m = sample_email();
	m.subject =
	    "Gr\xc3\xbc\xc3\x9f"
	    "e aus dem Team, diese Betreffzeile ist lang genug f\xc3\xbcr zwei W\xc3\xb6rter";
	m.text = "mixed\r\nline\rends\nhere";
	char *msg = build_ok(&m);
	for (const char *p = msg; *p; p++) {
		if (*p == '\n')
			assert_true(p > msg && p[-1] == '\r');
		if (*p == '\r')
			assert_int_equal(p[1], '\n');
	}
	assert_non_null(strstr(msg, "\r\n\r\nmixed\r\nline\r\nends\r\nhere\r\n"));
	free(msg);
}

static void test_qp_body(void **state)
{
	(void)state;
	char *got = qp("a=b caf\xc3\xa9 \nend\t");
	/* "=" and non-ASCII encoded; white space before a line end encoded. */
	assert_string_equal(got, "a=3Db caf=C3=A9=20\r\nend=09\r\n");
	free(got);

	got = qp("");
	assert_string_equal(got, "");
	free(got);

	got = qp("\n\n");
	assert_string_equal(got, "\r\n\r\n");
	free(got);
}

static void test_qp_long_lines_round_trip(void **state)
{
	(void)state;
	/* 80 x: Python's quopri gives 75 x, "=", then the rest. */
	char line[82];
	memset(line, 'x', 80);
	line[80] = '\n';
	line[81] = '\0';
	char *got = qp(line);
	assert_string_equal(
	    got, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx="
	         "\r\nxxxxx\r\n");
	free(got);

	/* Long lines of encoded bytes, spaces and "=": no output line over 76,
	 * no "=XX" split by a soft break, and the text decodes back. */
	tk_buf text = TK_BUF_INIT;
	for (int i = 0; i < 300; i++)
		tk_buf_puts(&text, i % 7 == 0   ? "\xc3\xa9"
		                   : i % 5 == 0 ? " "
		                   : i % 3 == 0 ? "="
		                                : "k");
	tk_buf_puts(&text, "\nsecond line \n");
	got = qp(text.data);
	size_t col = 0;
	for (const char *p = got; *p; p++) {
		if (*p == '\r') {
			assert_true(col <= 76);
			col = 0;
			p++;
			continue;
		}
		col++;
	}
	char *back = qp_decode(got);
	assert_string_equal(back, text.data);
	free(back);
	free(got);
	tk_buf_free(&text);
}

static void test_subject_plain_and_encoded(void **state)
{
	(void)state;
	char *got = subject("Welcome to tekup");
	assert_string_equal(got, "Welcome to tekup");
	free(got);

	got = subject("Gr\xc3\xbc\xc3\x9f"
	              "e");
	assert_string_equal(got, "=?UTF-8?B?R3LDvMOfZQ==?=");
	free(got);

	/* Text that looks like an encoded word is encoded, not sent raw. */
	got = subject("=?UTF-8?B?x?=");
	assert_true(strncmp(got, "=?UTF-8?B?", 10) == 0);
	assert_string_not_equal(got, "=?UTF-8?B?x?=");
	free(got);

	/* A control character is not sent raw either. */
	got = subject("tab\there");
	assert_true(strncmp(got, "=?UTF-8?B?", 10) == 0);
	free(got);
}

static void test_subject_long_utf8_splits_on_characters(void **state)
{
	(void)state;
	/* 60 three-byte characters: several words, none may split one. */
	tk_buf in = TK_BUF_INIT;
	for (int i = 0; i < 60; i++)
		tk_buf_puts(&in, "\xe2\x82\xac"); /* U+20AC EURO SIGN */
	char *got = subject(in.data);
	tk_buf back = TK_BUF_INIT;
	int words = 0;
	char *save = NULL;
	for (char *word = strtok_r(got, "\r\n ", &save); word;
	     word = strtok_r(NULL, "\r\n ", &save)) {
		size_t len = strlen(word);
		assert_true(len <= 75);
		assert_true(strncmp(word, "=?UTF-8?B?", 10) == 0);
		assert_true(strcmp(word + len - 2, "?=") == 0);
		unsigned char bin[64];
		size_t bin_len = 0;
		assert_int_equal(sodium_base642bin(bin, sizeof bin, word + 10, len - 12, NULL,
		                                   &bin_len, NULL, sodium_base64_VARIANT_ORIGINAL),
		                 0);
		assert_int_equal(bin_len % 3, 0); /* whole euro signs only */
		assert_int_equal(bin[0], 0xe2);
		tk_buf_append(&back, bin, bin_len);
		words++;
	}
	assert_true(words >= 2);
	assert_string_equal(back.data, in.data);
	tk_buf_free(&back);
	tk_buf_free(&in);
	free(got);
}

static void test_rejects_header_injection(void **state)
{
	(void)state;
	outbox_email m = sample_email();
	m.subject = "Hi\r\nBcc: victim@example.com";
	build_rejected(&m, "line break");
	m.subject = "Hi\nBcc: victim@example.com";
	build_rejected(&m, "line break");
	m.subject = "Hi\rthere";
	build_rejected(&m, "line break");

	m = sample_email();
	m.to = "ada@example.com\r\nBcc: victim@example.com";
	build_rejected(&m, "line break");
	m = sample_email();
	m.from = "no-reply@tekup.local\n";
	build_rejected(&m, "line break");
}

static void test_rejects_addresses_that_are_not_plain(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "",
	    "no-at-sign",
	    "@example.com",
	    "ada@",
	    "ada example@example.com",
	    "ada@example.com, eve@example.com",
	    "ada@example.com>,<eve@example.com",
	    "<ada@example.com>",
	    "\"ada\"@example.com",
	    "ada@[127.0.0.1]",
	    "j\xc3\xbcrgen@example.com",
	    "ada\t@example.com",
	};
	for (size_t i = 0; i < TK_ARRAY_LEN(bad); i++) {
		assert_false(outbox_address_ok(bad[i]));
		outbox_email m = sample_email();
		m.to = bad[i];
		build_rejected(&m, "recipient");
	}
	assert_true(outbox_address_ok("ada.lovelace+crm@mail.example.co.uk"));
	assert_true(outbox_address_ok("a@b"));

	outbox_email m = sample_email();
	m.from = "Tekup <no-reply@tekup.local>";
	build_rejected(&m, "sender");
}

static void test_rejects_over_long_fields(void **state)
{
	(void)state;
	char long_text[OUTBOX_ADDRESS_MAX + 8];
	memset(long_text, 'a', sizeof long_text - 1);
	long_text[sizeof long_text - 1] = '\0';
	memcpy(long_text + sizeof long_text - 13, "@example.com", 12);
	assert_false(outbox_address_ok(long_text));

	char subj[OUTBOX_SUBJECT_MAX + 2];
	memset(subj, 's', sizeof subj - 1);
	subj[sizeof subj - 1] = '\0';
	outbox_email m = sample_email();
	m.subject = subj;
	build_rejected(&m, "subject");
	subj[OUTBOX_SUBJECT_MAX] = '\0'; /* exactly the limit is fine */
	free(build_ok(&m));
}

static void test_retry_delay(void **state)
{
	(void)state;
	assert_int_equal(outbox_retry_delay_ms(1000, 0), 1000);
	assert_int_equal(outbox_retry_delay_ms(1000, 1), 2000);
	assert_int_equal(outbox_retry_delay_ms(1000, 5), 32000);
	assert_int_equal(outbox_retry_delay_ms(1000, 11), 2048000);
	assert_int_equal(outbox_retry_delay_ms(1000, 12), OUTBOX_BACKOFF_CAP_MS);
	assert_int_equal(outbox_retry_delay_ms(50, 3), 400);
	/* Never past the cap, and no overflow for absurd inputs. */
	assert_int_equal(outbox_retry_delay_ms(1000, 1000000), OUTBOX_BACKOFF_CAP_MS);
	assert_int_equal(outbox_retry_delay_ms(3600000, 0), OUTBOX_BACKOFF_CAP_MS);
	assert_int_equal(outbox_retry_delay_ms(LONG_MAX, 63), OUTBOX_BACKOFF_CAP_MS);
	assert_int_equal(outbox_retry_delay_ms(1000, -1), 1000);
}

static void test_failure_message_is_bounded(void **state)
{
	(void)state;
	outbox_failure f = {0};
	char huge[OUTBOX_ERROR_MAX * 2];
	memset(huge, 'e', sizeof huge - 1);
	huge[sizeof huge - 1] = '\0';
	assert_int_equal(outbox_fail(&f, false, "smtp: %s", huge), TK_ERR);
	assert_int_equal(strlen(f.message), OUTBOX_ERROR_MAX - 1);
	assert_false(f.permanent);
	assert_false(f.aborted);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_signature_matches_python_hmac),
	    cmocka_unit_test(test_signature_any_key_length),
	    cmocka_unit_test(test_signature_depends_on_every_input),
	    cmocka_unit_test(test_webhook_body),
	    cmocka_unit_test(test_email_message),
	    cmocka_unit_test(test_email_every_line_ends_in_crlf),
	    cmocka_unit_test(test_qp_body),
	    cmocka_unit_test(test_qp_long_lines_round_trip),
	    cmocka_unit_test(test_subject_plain_and_encoded),
	    cmocka_unit_test(test_subject_long_utf8_splits_on_characters),
	    cmocka_unit_test(test_rejects_header_injection),
	    cmocka_unit_test(test_rejects_addresses_that_are_not_plain),
	    cmocka_unit_test(test_rejects_over_long_fields),
	    cmocka_unit_test(test_retry_delay),
	    cmocka_unit_test(test_failure_message_is_bounded),
	};
	return cmocka_run_group_tests_name("outbox", tests, NULL, NULL);
}
