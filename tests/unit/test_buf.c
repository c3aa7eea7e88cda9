/*
 * test_buf.c - unit tests for util/buf.h, the growable byte buffer: appends
 * (with embedded NULs), printf across the 256-byte fast-path boundary, JSON
 * string escaping (checked against jansson's parser), reset, steal, free.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "util/buf.h"

/* The JSON literal for s[0..len) as tk_buf_json_string writes it, malloc'd. */
static char *json_lit(const char *s, size_t len)
{
	tk_buf b = TK_BUF_INIT;
	tk_buf_json_string(&b, s, len);
	assert_int_equal(strlen(b.data), b.len);
	return tk_buf_steal(&b);
}

static void expect_json(const char *s, size_t len, const char *want)
{
	char *got = json_lit(s, len);
	assert_string_equal(got, want);
	free(got);
}

static void test_append_puts_putc(void **state)
{
	(void)state;
	tk_buf b = TK_BUF_INIT;
	tk_buf_puts(&b, "abc");
	tk_buf_putc(&b, '-');
	tk_buf_append(&b, "xyz", 2);
	assert_int_equal(b.len, 6);
	assert_string_equal(b.data, "abc-xy");
	assert_true(b.cap > b.len);
	tk_buf_append(&b, "", 0);
	assert_int_equal(b.len, 6);
	assert_string_equal(b.data, "abc-xy");
	tk_buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
}

static void test_append_keeps_nul_bytes(void **state)
{
	(void)state;
	tk_buf b = TK_BUF_INIT;
	tk_buf_append(&b, "a\0b", 3);
	tk_buf_putc(&b, '\0');
	tk_buf_puts(&b, "c");
	assert_int_equal(b.len, 5);
	assert_memory_equal(b.data, "a\0b\0c", 5);
	assert_int_equal(b.data[5], '\0');
	tk_buf_free(&b);
}

static void test_growth_keeps_contents(void **state)
{
	(void)state;
	tk_buf b = TK_BUF_INIT;
	for (int i = 0; i < 10000; i++)
		tk_buf_putc(&b, (char)('a' + i % 26));
	assert_int_equal(b.len, 10000);
	assert_true(b.cap > b.len);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(b.data[i], 'a' + i % 26);
	assert_int_equal(b.data[10000], '\0');

	tk_buf_reserve(&b, 100000);
	assert_true(b.cap >= b.len + 100000 + 1);
	assert_int_equal(b.len, 10000);
	assert_int_equal(b.data[9999], 'a' + 9999 % 26);
	tk_buf_free(&b);
}

static void test_printf_short(void **state)
{
	(void)state;
	tk_buf b = TK_BUF_INIT;
	tk_buf_printf(&b, "%s=%d", "port", 8080);
	assert_string_equal(b.data, "port=8080");
	assert_int_equal(b.len, 9);
	tk_buf_printf(&b, "%s", "");
	assert_int_equal(b.len, 9);
	tk_buf_printf(&b, ", $%d", 2);
	assert_string_equal(b.data, "port=8080, $2");
	tk_buf_free(&b);
}

static void test_printf_long(void **state)
{
	(void)state;
	/* Lengths around the 256-byte stack buffer, and far beyond it. */
	size_t sizes[] = {254, 255, 256, 257, 300, 1000, 100000};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t n = sizes[i];
		char *s = malloc(n + 1);
		assert_non_null(s);
		for (size_t k = 0; k < n; k++)
			s[k] = (char)('A' + k % 23);
		s[n] = '\0';

		tk_buf b = TK_BUF_INIT;
		tk_buf_puts(&b, "<<");
		tk_buf_printf(&b, "[%s|%zu]", s, n);
		char tail[32];
		snprintf(tail, sizeof tail, "|%zu]", n);
		assert_int_equal(b.len, 2 + 1 + n + strlen(tail));
		assert_int_equal(strlen(b.data), b.len);
		assert_memory_equal(b.data, "<<[", 3);
		assert_memory_equal(b.data + 3, s, n);
		assert_string_equal(b.data + 3 + n, tail);

		/* Appending after a long printf still works. */
		tk_buf_putc(&b, '!');
		assert_int_equal(b.data[b.len - 1], '!');
		assert_int_equal(b.data[b.len], '\0');
		tk_buf_free(&b);
		free(s);
	}
}

static void test_printf_exact_boundary(void **state)
{
	(void)state;
	/* Formatted output of exactly 255, 256 and 257 bytes, the last one marked. */
	for (size_t n = 250; n <= 260; n++) {
		char s[300];
		memset(s, 'x', n - 1);
		s[n - 1] = 'Z';
		s[n] = '\0';
		tk_buf b = TK_BUF_INIT;
		tk_buf_printf(&b, "%s", s);
		assert_int_equal(b.len, n);
		assert_int_equal(b.data[n - 1], 'Z');
		assert_int_equal(b.data[n], '\0');
		assert_string_equal(b.data, s);
		tk_buf_free(&b);
	}
}

static void test_printf_long_from_formatting(void **state)
{
	(void)state;
	tk_buf b = TK_BUF_INIT;
	tk_buf_printf(&b, "%0*d", 600, 7);
	assert_int_equal(b.len, 600);
	assert_int_equal(strspn(b.data, "0"), 599);
	assert_int_equal(b.data[599], '7');
	tk_buf_printf(&b, "%-300s|", "x");
	assert_int_equal(b.len, 901);
	assert_int_equal(b.data[600], 'x');
	assert_int_equal(b.data[900], '|');
	tk_buf_free(&b);
}

/* printf after content already in the buffer: whatever spare capacity is
 * left (none, a little, exactly the output, more), the result is the
 * content followed by what snprintf makes of the same format. */
static void test_printf_after_content_any_spare_room(void **state)
{
	(void)state;
	char want[1200];
	for (size_t prefix = 0; prefix <= 600; prefix += 7) {
		for (size_t n = 0; n <= 600; n += 13) {
			tk_buf b = TK_BUF_INIT;
			for (size_t k = 0; k < prefix; k++)
				tk_buf_putc(&b, (char)('a' + k % 26));
			tk_buf_printf(&b, "%0*d|%s", (int)n, 5, "end");
			int wn = snprintf(want, sizeof want, "%0*d|%s", (int)n, 5, "end");
			assert_true(wn > 0);
			assert_int_equal(b.len, prefix + (size_t)wn);
			assert_int_equal(strlen(b.data), b.len);
			for (size_t k = 0; k < prefix; k++)
				assert_int_equal(b.data[k], 'a' + k % 26);
			assert_string_equal(b.data + prefix, want);
			tk_buf_free(&b);
		}
	}
}

static void test_json_string_plain_and_quotes(void **state)
{
	(void)state;
	expect_json("", 0, "\"\"");
	expect_json("abc", 3, "\"abc\"");
	expect_json("say \"hi\"", 8, "\"say \\\"hi\\\"\"");
	expect_json("C:\\path\\", 8, "\"C:\\\\path\\\\\"");
	expect_json("\\\"", 2, "\"\\\\\\\"\"");
	expect_json("/", 1, "\"/\"");
	expect_json("caf\xc3\xa9 \xf0\x9f\x98\x80", 10, "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
	expect_json("\x7f", 1, "\"\x7f\"");
}

static void test_json_string_control_chars(void **state)
{
	(void)state;
	expect_json("a\nb", 3, "\"a\\nb\"");
	expect_json("\r\t", 2, "\"\\r\\t\"");
	expect_json("\x01", 1, "\"\\u0001\"");
	expect_json("\x08\x0c", 2, "\"\\u0008\\u000c\"");
	expect_json("\x1f", 1, "\"\\u001f\"");
	expect_json("\x1b[0m", 4, "\"\\u001b[0m\"");
	expect_json("a\0b", 3, "\"a\\u0000b\"");
	/* Only len bytes are read. */
	expect_json("abcdef", 2, "\"ab\"");
}

static void test_json_string_appends(void **state)
{
	(void)state;
	tk_buf b = TK_BUF_INIT;
	tk_buf_puts(&b, "{\"k\":");
	tk_buf_json_string(&b, "v\"", 2);
	tk_buf_putc(&b, '}');
	assert_string_equal(b.data, "{\"k\":\"v\\\"\"}");
	tk_buf_free(&b);
}

static void test_json_string_round_trips_through_jansson(void **state)
{
	(void)state;
	/* Every byte below 0x80, each alone and all together, parses back to itself. */
	char all[128];
	for (int c = 0; c < 128; c++) {
		all[c] = (char)c;
		char *lit = json_lit(&all[c], 1);
		json_error_t jerr;
		json_t *v = json_loads(lit, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
		if (v == NULL)
			fail_msg("byte 0x%02x: %s gives invalid JSON: %s", c, lit, jerr.text);
		assert_true(json_is_string(v));
		assert_int_equal(json_string_length(v), 1);
		assert_int_equal(json_string_value(v)[0], (char)c);
		json_decref(v);
		free(lit);
	}
	char *lit = json_lit(all, sizeof all);
	json_error_t jerr;
	json_t *v = json_loads(lit, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	assert_non_null(v);
	assert_int_equal(json_string_length(v), sizeof all);
	assert_memory_equal(json_string_value(v), all, sizeof all);
	json_decref(v);
	free(lit);
}

static void test_reset_and_steal(void **state)
{
	(void)state;
	tk_buf b = TK_BUF_INIT;
	tk_buf_reset(&b); /* on an empty buffer: no crash */
	assert_int_equal(b.len, 0);

	tk_buf_puts(&b, "hello");
	size_t cap = b.cap;
	tk_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	assert_int_equal(b.cap, cap); /* memory kept for reuse */
	tk_buf_puts(&b, "again");
	assert_string_equal(b.data, "again");

	char *s = tk_buf_steal(&b);
	assert_string_equal(s, "again");
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	free(s);

	/* Stealing from an empty buffer gives an owned empty string. */
	tk_buf empty = TK_BUF_INIT;
	s = tk_buf_steal(&empty);
	assert_non_null(s);
	assert_string_equal(s, "");
	free(s);

	/* A freed buffer is reusable. */
	tk_buf_puts(&b, "x");
	tk_buf_free(&b);
	tk_buf_free(&b);
	assert_null(b.data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_append_puts_putc),
	    cmocka_unit_test(test_append_keeps_nul_bytes),
	    cmocka_unit_test(test_growth_keeps_contents),
	    cmocka_unit_test(test_printf_short),
	    cmocka_unit_test(test_printf_long),
	    cmocka_unit_test(test_printf_exact_boundary),
	    cmocka_unit_test(test_printf_long_from_formatting),
	    cmocka_unit_test(test_printf_after_content_any_spare_room),
	    cmocka_unit_test(test_json_string_plain_and_quotes),
	    cmocka_unit_test(test_json_string_control_chars),
	    cmocka_unit_test(test_json_string_appends),
	    cmocka_unit_test(test_json_string_round_trips_through_jansson),
	    cmocka_unit_test(test_reset_and_steal),
	};
	return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
