/*
 * test_lead_input.c - unit tests for leads/lead_input.h: validation of a
 * lead's JSON body for POST (create) and PATCH (update).
 *
 * Covers the accepted shapes, every field's type and limit, mass-assignment
 * protection (server-owned keys are unknown_field), malformed JSON, and
 * hostile input (NUL escapes, deep nesting, huge numbers).  Every failure
 * must be a 400 with a stable code.  Bodies are passed in exactly-sized heap
 * buffers so a read past the given length is caught by AddressSanitizer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "leads/lead_input.h"

#define POST  false
#define PATCH true

static int arena_setup(void **state)
{
	*state = tk_arena_create();
	return *state ? 0 : -1;
}

static int arena_teardown(void **state)
{
	tk_arena_destroy(*state);
	return 0;
}

static tk_status parse_n(tk_arena *arena, const char *body, size_t len, bool for_update,
                         lead_input *in, tk_error *err)
{
	char *p = malloc(len ? len : 1);
	assert_non_null(p);
	memcpy(p, body, len);
	memset(err, 0, sizeof *err);
	tk_status st = lead_input_parse(arena, p, len, for_update, in, err);
	free(p);
	return st;
}

static tk_status parse(tk_arena *arena, const char *body, bool for_update, lead_input *in,
                       tk_error *err)
{
	return parse_n(arena, body, strlen(body), for_update, in, err);
}

/* Asserts body is accepted. */
static void expect_ok(tk_arena *arena, const char *body, bool for_update, lead_input *in)
{
	tk_error err;
	if (parse(arena, body, for_update, in, &err) != TK_OK)
		fail_msg("rejected %s: %s %s (%s)", body, err.code, err.field, err.message);
}

/* Asserts body is a 400 with the given code and field ("" for none). */
static void expect_err_n(tk_arena *arena, const char *body, size_t len, bool for_update,
                         const char *code, const char *field)
{
	lead_input in;
	tk_error err;
	if (parse_n(arena, body, len, for_update, &in, &err) != TK_ERR)
		fail_msg("accepted %.200s", body);
	assert_int_equal(err.http_status, 400);
	assert_non_null(err.code);
	if (strcmp(err.code, code) != 0 || strcmp(err.field, field) != 0)
		fail_msg("%.200s: expected %s/%s, got %s/%s (%s)", body, code, field, err.code,
		         err.field, err.message);
	assert_true(strlen(err.message) > 0);
}

static void expect_err(tk_arena *arena, const char *body, bool for_update, const char *code,
                       const char *field)
{
	expect_err_n(arena, body, strlen(body), for_update, code, field);
}

/* Both POST and PATCH give the same error. */
static void expect_err_both(tk_arena *arena, const char *body, const char *code, const char *field)
{
	expect_err(arena, body, POST, code, field);
	expect_err(arena, body, PATCH, code, field);
}

/* {"<key>":"<n copies of unit>"}, malloc'd. */
static char *string_body(const char *key, const char *unit, size_t n)
{
	size_t w = strlen(unit);
	size_t cap = strlen(key) + w * n + 16;
	char *b = malloc(cap);
	assert_non_null(b);
	char *p = b + sprintf(b, "{\"%s\":\"", key);
	for (size_t i = 0; i < n; i++, p += w)
		memcpy(p, unit, w);
	strcpy(p, "\"}");
	return b;
}

static void test_post_full_body(void **state)
{
	tk_arena *arena = *state;
	lead_input in;
	expect_ok(
	    arena,
	    "{\"name\":\"Ada Lovelace\",\"email\":\"ada@example.com\",\"phone\":\"+44 20 7946 "
	    "0000\",\"company\":\"Analytical Engines\",\"status\":\"QUALIFIED\","
	    "\"source\":\"referral\",\"customFields\":{ \"priority\" : \"high\", \"n\": [1, "
	    "2]},\"assignedTo\":\"ABCDEF01-2345-6789-ABCD-EF0123456789\"}",
	    POST, &in);
	for (int i = 0; i < LEAD_IN_COUNT; i++)
		assert_true(in.present[i]);
	assert_string_equal(in.value[LEAD_IN_NAME], "Ada Lovelace");
	assert_string_equal(in.value[LEAD_IN_EMAIL], "ada@example.com");
	assert_string_equal(in.value[LEAD_IN_PHONE], "+44 20 7946 0000");
	assert_string_equal(in.value[LEAD_IN_COMPANY], "Analytical Engines");
	assert_string_equal(in.value[LEAD_IN_STATUS], "QUALIFIED");
	assert_string_equal(in.value[LEAD_IN_SOURCE], "referral");
	/* customFields travels as the client wrote it, for a jsonb parameter. */
	assert_string_equal(in.value[LEAD_IN_CUSTOM_FIELDS],
	                    "{ \"priority\" : \"high\", \"n\": [1, 2]}");
	/* assignedTo is normalised to lower case. */
	assert_string_equal(in.value[LEAD_IN_ASSIGNED_TO], "abcdef01-2345-6789-abcd-ef0123456789");
}

static void test_post_minimal_body(void **state)
{
	tk_arena *arena = *state;
	lead_input in;
	expect_ok(arena, "{\"name\":\"Ada\"}", POST, &in);
	assert_true(in.present[LEAD_IN_NAME]);
	assert_string_equal(in.value[LEAD_IN_NAME], "Ada");
	for (int i = 0; i < LEAD_IN_COUNT; i++) {
		if (i == LEAD_IN_NAME)
			continue;
		assert_false(in.present[i]);
		assert_null(in.value[i]);
	}
	/* Whitespace around the JSON is fine. */
	expect_ok(arena, " \n\t{ \"name\" : \"Ada\" }\r\n ", POST, &in);
	assert_string_equal(in.value[LEAD_IN_NAME], "Ada");
}

static void test_values_are_copied_into_the_arena(void **state)
{
	tk_arena *arena = *state;
	lead_input in;
	tk_error err;
	char *body = strdup("{\"name\":\"Ada\",\"customFields\":{\"a\":1}}");
	assert_int_equal(lead_input_parse(arena, body, strlen(body), POST, &in, &err), TK_OK);
	free(body); /* the values must not point into the body */
	assert_string_equal(in.value[LEAD_IN_NAME], "Ada");
	assert_string_equal(in.value[LEAD_IN_CUSTOM_FIELDS], "{\"a\":1}");
}

static void test_name_required_on_post(void **state)
{
	tk_arena *arena = *state;
	expect_err(arena, "{}", POST, "validation_error", "name");
	expect_err(arena, "{\"email\":\"ada@example.com\"}", POST, "validation_error", "name");
	expect_err_both(arena, "{\"name\":\"\"}", "validation_error", "name");
	expect_err_both(arena, "{\"name\":null}", "validation_error", "name");
}

static void test_name_length_in_characters(void **state)
{
	tk_arena *arena = *state;
	lead_input in;
	/* 255 characters of 1, 2, 3 and 4 bytes are accepted; 256 are not. */
	const char *units[] = {"a",       "\xc3\xa9",      "\xe2\x82\xac", "\xf0\x9f\x98\x80",
	                       "\\u00e9", "\\ud83d\\ude00"};
	for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
		char *ok = string_body("name", units[u], LEAD_NAME_MAX);
		expect_ok(arena, ok, POST, &in);
		expect_ok(arena, ok, PATCH, &in);
		assert_true(strlen(in.value[LEAD_IN_NAME]) >= LEAD_NAME_MAX);
		free(ok);
		char *bad = string_body("name", units[u], LEAD_NAME_MAX + 1);
		expect_err_both(arena, bad, "validation_error", "name");
		free(bad);
	}
}

static void test_other_string_limits(void **state)
{
	tk_arena *arena = *state;
	lead_input in;
	static const struct {
		const char *key;
		size_t max;
	} cases[] = {
	    {"phone", LEAD_PHONE_MAX},
	    {"company", LEAD_COMPANY_MAX},
	    {"source", LEAD_SOURCE_MAX},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *ok = string_body(cases[i].key, "\xc3\xa9", cases[i].max);
		expect_ok(arena, ok, PATCH, &in);
		free(ok);
		char *bad = string_body(cases[i].key, "x", cases[i].max + 1);
		expect_err(arena, bad, PATCH, "validation_error", cases[i].key);
		free(bad);
	}
	/* An e-mail address over LEAD_EMAIL_MAX characters. */
	char body[600];
	char *p = body + sprintf(body, "{\"email\":\"ada@");
	memset(p, 'd', 252);
	strcpy(p + 252, ".com\"}");
	expect_err(arena, body, PATCH, "validation_error", "email");
}

static void test_unknown_fields_are_rejected(void **state)
{
	tk_arena *arena = *state;
	const char *keys[] = {
	    "tenantId",  "tenant_id",      "id",   "version", "createdAt",     "updatedAt",
	    "createdBy", "lastActivityAt", "Name", "NAME",    "custom_fields", "assigned_to",
	    "",          "name "};
	char body[256];
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		/* After a valid field, before one, and alone. */
		snprintf(body, sizeof body, "{\"name\":\"Ada\",\"%s\":\"x\"}", keys[i]);
		expect_err_both(arena, body, "unknown_field", keys[i]);
		snprintf(body, sizeof body, "{\"%s\":1,\"name\":\"Ada\"}", keys[i]);
		expect_err_both(arena, body, "unknown_field", keys[i]);
		snprintf(body, sizeof body, "{\"%s\":null}", keys[i]);
		expect_err_both(arena, body, "unknown_field", keys[i]);
	}
	/* A forged tenant is refused even with a valid UUID. */
	expect_err_both(arena,
	                "{\"name\":\"Ada\",\"tenantId\":\"123e4567-e89b-12d3-a456-426614174000\"}",
	                "unknown_field", "tenantId");
}

static void test_duplicate_keys_are_invalid_json(void **state)
{
	tk_arena *arena = *state;
	expect_err_both(arena, "{\"name\":\"Ada\",\"name\":\"Bob\"}", "invalid_json", "");
	expect_err_both(arena, "{\"name\":\"Ada\",\"status\":\"NEW\",\"status\":\"WON\"}",
	                "invalid_json", "");
	/* The same key spelled with an escape is still a duplicate. */
	expect_err_both(arena, "{\"name\":\"Ada\",\"n\\u0061me\":\"Bob\"}", "invalid_json", "");
	expect_err_both(arena, "{\"name\":\"Ada\",\"customFields\":{\"a\":1,\"a\":2}}",
	                "invalid_json", "");
}

static void test_invalid_json(void **state)
{
	tk_arena *arena = *state;
	const char *bodies[] = {
	    "{",
	    "}",
	    "{\"name\":}",
	    "{\"name\":\"Ada\",}",
	    "{\"name\":\"Ada\"",
	    "{'name':'Ada'}",
	    "{name:\"Ada\"}",
	    "{\"name\":\"Ada\"} {}",
	    "{\"name\":\"Ada\"} x",
	    "{\"name\":\"unterminated}",
	    "{\"name\":\"bad \\x escape\"}",
	    "{\"name\":\"raw\ncontrol\"}",
	    "{\"name\":\"\\ud800\"}",  /* lone surrogate escape */
	    "{\"name\":\"\xff\xfe\"}", /* invalid UTF-8 */
	    "{\"name\":\"\xc0\x80\"}", /* overlong NUL */
	    "{\"name\":NaN}",
	    "{\"name\":Infinity}",
	    "{\"name\":01}",
	    "nope",
	    "\xef\xbb\xbf{\"name\":\"Ada\"}", /* byte order mark */
	    " ",
	};
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
		expect_err_both(arena, bodies[i], "invalid_json", "");
	expect_err_n(arena, "", 0, POST, "invalid_json", "");
	expect_err_n(arena, "", 0, PATCH, "invalid_json", "");
}

static void test_nul_bytes_are_rejected(void **state)
{
	tk_arena *arena = *state;
	/* The escape inside values, in keys and in nested customFields. */
	expect_err_both(arena, "{\"name\":\"Ada\\u0000Bob\"}", "invalid_json", "");
	expect_err_both(arena, "{\"name\":\"\\u0000\"}", "invalid_json", "");
	expect_err_both(arena, "{\"name\":\"Ada\",\"email\":\"a\\u0000@example.com\"}",
	                "invalid_json", "");
	expect_err_both(arena, "{\"na\\u0000me\":\"Ada\"}", "invalid_json", "");
	expect_err_both(arena, "{\"name\":\"Ada\",\"customFields\":{\"k\":\"\\u0000\"}}",
	                "invalid_json", "");
	expect_err_both(arena, "{\"name\":\"Ada\",\"customFields\":{\"\\u0000\":1}}",
	                "invalid_json", "");
	/* Raw NUL bytes, inside a string and after the document. */
	static const char raw_in[] = "{\"name\":\"Ada\0Bob\"}";
	expect_err_n(arena, raw_in, sizeof raw_in - 1, POST, "invalid_json", "");
	static const char raw_after[] = "{\"name\":\"Ada\"}\0";
	expect_err_n(arena, raw_after, sizeof raw_after - 1, POST, "invalid_json", "");
}

static void test_top_level_must_be_object(void **state)
{
	tk_arena *arena = *state;
	const char *bodies[] = {"[]", "[{\"name\":\"Ada\"}]", "\"Ada\"", "42", "null", "true"};
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
		expect_err_both(arena, bodies[i], "invalid_json", "");
}

static void test_wrong_types_name_the_field(void **state)
{
	tk_arena *arena = *state;
	static const struct {
		const char *body;
		const char *field;
	} cases[] = {
	    {"{\"name\":42}", "name"},
	    {"{\"name\":true}", "name"},
	    {"{\"name\":[\"Ada\"]}", "name"},
	    {"{\"name\":{\"first\":\"Ada\"}}", "name"},
	    {"{\"name\":\"Ada\",\"email\":1}", "email"},
	    {"{\"name\":\"Ada\",\"phone\":442079460000}", "phone"},
	    {"{\"name\":\"Ada\",\"company\":false}", "company"},
	    {"{\"name\":\"Ada\",\"status\":1}", "status"},
	    {"{\"name\":\"Ada\",\"source\":[]}", "source"},
	    {"{\"name\":\"Ada\",\"assignedTo\":5}", "assignedTo"},
	    {"{\"name\":\"Ada\",\"customFields\":[]}", "customFields"},
	    {"{\"name\":\"Ada\",\"customFields\":\"{}\"}", "customFields"},
	    {"{\"name\":\"Ada\",\"customFields\":7}", "customFields"},
	    {"{\"name\":\"Ada\",\"customFields\":true}", "customFields"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		expect_err_both(arena, cases[i].body, "validation_error", cases[i].field);
}

static void test_email_must_be_an_address(void **state)
{
	tk_arena *arena = *state;
	const char *bad[] = {"nope",
	                     "ada@",
	                     "@example.com",
	                     "ada@example",
	                     "ada @example.com",
	                     "ada@example..com",
	                     "",
	                     "ada@exa\\nmple.com"};
	char body[128];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(body, sizeof body, "{\"name\":\"Ada\",\"email\":\"%s\"}", bad[i]);
		expect_err_both(arena, body, "validation_error", "email");
	}
	lead_input in;
	expect_ok(arena, "{\"name\":\"Ada\",\"email\":\"ada+leads@example.co.uk\"}", POST, &in);
	assert_string_equal(in.value[LEAD_IN_EMAIL], "ada+leads@example.co.uk");
}

static void test_status_enum(void **state)
{
	tk_arena *arena = *state;
	const char *good[] = {"NEW", "CONTACTED", "QUALIFIED", "PROPOSAL", "WON", "LOST"};
	char body[128];
	lead_input in;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		assert_true(lead_status_is_valid(good[i]));
		snprintf(body, sizeof body, "{\"status\":\"%s\"}", good[i]);
		expect_ok(arena, body, PATCH, &in);
		assert_string_equal(in.value[LEAD_IN_STATUS], good[i]);
	}
	const char *bad[] = {"new", "New", "ARCHIVED", "", " NEW", "NEW ", "WON,LOST", "NEWS"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_false(lead_status_is_valid(bad[i]));
		snprintf(body, sizeof body, "{\"name\":\"Ada\",\"status\":\"%s\"}", bad[i]);
		expect_err_both(arena, body, "validation_error", "status");
	}
	/* status is not nullable: the column has a default, not a NULL. */
	expect_err_both(arena, "{\"name\":\"Ada\",\"status\":null}", "validation_error", "status");
}

static void test_custom_fields_size_limit(void **state)
{
	tk_arena *arena = *state;
	lead_input in;
	/* Compact form {"a":"<n x>"} is n + 8 bytes: the limit is exact. */
	size_t n = LEAD_CUSTOM_FIELDS_MAX_BYTES - 8;
	char *body = malloc(n + 64);
	assert_non_null(body);
	char *p = body + sprintf(body, "{\"customFields\":{\"a\":\"");
	memset(p, 'x', n);
	strcpy(p + n, "\"}}");
	expect_ok(arena, body, PATCH, &in);
	assert_int_equal(strlen(in.value[LEAD_IN_CUSTOM_FIELDS]), LEAD_CUSTOM_FIELDS_MAX_BYTES);

	memset(p, 'x', n + 1);
	strcpy(p + n + 1, "\"}}");
	expect_err(arena, body, PATCH, "validation_error", "customFields");
	free(body);

	/* Many small keys over the limit. */
	size_t cap = 64 * 1024;
	body = malloc(cap);
	assert_non_null(body);
	size_t len = (size_t)sprintf(body, "{\"name\":\"Ada\",\"customFields\":{");
	for (int i = 0; i < 3000; i++)
		len += (size_t)sprintf(body + len, "%s\"k%d\":%d", i ? "," : "", i, i);
	strcpy(body + len, "}}");
	expect_err(arena, body, POST, "validation_error", "customFields");
	free(body);
}

static void test_custom_fields_objects_accepted(void **state)
{
	tk_arena *arena = *state;
	lead_input in;
	expect_ok(arena, "{\"name\":\"Ada\",\"customFields\":{}}", POST, &in);
	assert_string_equal(in.value[LEAD_IN_CUSTOM_FIELDS], "{}");
	expect_ok(arena,
	          "{\"customFields\":{\"priority\":\"high\",\"score\":9.5,\"tags\":[\"a\",null],"
	          "\"nested\":{\"ok\":true}}}",
	          PATCH, &in);
	assert_string_equal(in.value[LEAD_IN_CUSTOM_FIELDS],
	                    "{\"priority\":\"high\",\"score\":9.5,\"tags\":[\"a\",null],"
	                    "\"nested\":{\"ok\":true}}");
	/* Escapes and numbers are passed on as written (PostgreSQL decodes
	 * them); jansson would have written 0.1 as 0.10000000000000001. */
	expect_ok(arena, "{\"customFields\":{\"city\":\"K\\u00f8benhavn\",\"p\":0.1,\"e\":1e2}}",
	          PATCH, &in);
	assert_string_equal(in.value[LEAD_IN_CUSTOM_FIELDS],
	                    "{\"city\":\"K\\u00f8benhavn\",\"p\":0.1,\"e\":1e2}");
}

static void test_assigned_to_must_be_uuid(void **state)
{
	tk_arena *arena = *state;
	lead_input in;
	const char *bad[] = {"",
	                     "nobody",
	                     "123e4567-e89b-12d3-a456-42661417400",
	                     "123e4567-e89b-12d3-a456-4266141740000",
	                     "123e4567e89b12d3a456426614174000",
	                     "{123e4567-e89b-12d3-a456-426614174000}",
	                     "123e4567-e89b-12d3-a456-42661417400z"};
	char body[128];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(body, sizeof body, "{\"name\":\"Ada\",\"assignedTo\":\"%s\"}", bad[i]);
		expect_err_both(arena, body, "validation_error", "assignedTo");
	}
	expect_ok(arena, "{\"assignedTo\":\"123E4567-E89B-12D3-A456-426614174000\"}", PATCH, &in);
	assert_string_equal(in.value[LEAD_IN_ASSIGNED_TO], "123e4567-e89b-12d3-a456-426614174000");
	expect_ok(arena,
	          "{\"name\":\"Ada\",\"assignedTo\":\"123e4567-e89b-12d3-a456-426614174000\"}",
	          POST, &in);
	assert_string_equal(in.value[LEAD_IN_ASSIGNED_TO], "123e4567-e89b-12d3-a456-426614174000");
}

static void test_patch_null_clears_nullable_fields(void **state)
{
	tk_arena *arena = *state;
	lead_input in;
	expect_ok(arena,
	          "{\"email\":null,\"phone\":null,\"company\":null,\"source\":null,"
	          "\"assignedTo\":null}",
	          PATCH, &in);
	const lead_input_field cleared[] = {LEAD_IN_EMAIL, LEAD_IN_PHONE, LEAD_IN_COMPANY,
	                                    LEAD_IN_SOURCE, LEAD_IN_ASSIGNED_TO};
	for (size_t i = 0; i < sizeof cleared / sizeof cleared[0]; i++) {
		assert_true(in.present[cleared[i]]);
		assert_null(in.value[cleared[i]]);
	}
	assert_false(in.present[LEAD_IN_NAME]);
	assert_false(in.present[LEAD_IN_STATUS]);
	assert_false(in.present[LEAD_IN_CUSTOM_FIELDS]);

	/* One null alone is a change. */
	expect_ok(arena, "{\"phone\":null}", PATCH, &in);
	assert_true(in.present[LEAD_IN_PHONE]);
	assert_null(in.value[LEAD_IN_PHONE]);
}

static void test_non_nullable_fields_reject_null(void **state)
{
	tk_arena *arena = *state;
	expect_err(arena, "{\"name\":null}", PATCH, "validation_error", "name");
	expect_err(arena, "{\"status\":null}", PATCH, "validation_error", "status");
	expect_err(arena, "{\"customFields\":null}", PATCH, "validation_error", "customFields");
}

static void test_patch_requires_a_field(void **state)
{
	tk_arena *arena = *state;
	lead_input in;
	expect_err(arena, "{}", PATCH, "validation_error", "");
	expect_err(arena, " { } ", PATCH, "validation_error", "");
	/* A PATCH needs no name. */
	expect_ok(arena, "{\"company\":\"Analytical Engines\"}", PATCH, &in);
	assert_false(in.present[LEAD_IN_NAME]);
	assert_true(in.present[LEAD_IN_COMPANY]);
}

static void test_parse_resets_output(void **state)
{
	tk_arena *arena = *state;
	lead_input in;
	expect_ok(arena, "{\"name\":\"Ada\",\"email\":\"ada@example.com\"}", POST, &in);
	assert_true(in.present[LEAD_IN_EMAIL]);
	expect_ok(arena, "{\"phone\":\"123\"}", PATCH, &in);
	assert_false(in.present[LEAD_IN_NAME]);
	assert_false(in.present[LEAD_IN_EMAIL]);
	assert_null(in.value[LEAD_IN_EMAIL]);
	assert_true(in.present[LEAD_IN_PHONE]);
}

static char *nested(const char *prefix, const char *open, const char *close, size_t depth,
                    const char *suffix)
{
	size_t cap = strlen(prefix) + depth * (strlen(open) + strlen(close)) + strlen(suffix) + 1;
	char *b = malloc(cap);
	assert_non_null(b);
	char *p = stpcpy(b, prefix);
	for (size_t i = 0; i < depth; i++)
		p = stpcpy(p, open);
	for (size_t i = 0; i < depth; i++)
		p = stpcpy(p, close);
	strcpy(p, suffix);
	return b;
}

static void test_deep_nesting_is_rejected(void **state)
{
	tk_arena *arena = *state;
	static const struct {
		const char *prefix, *open, *close, *suffix;
	} shapes[] = {
	    {"", "[", "]", ""},
	    {"{\"name\":\"Ada\",\"customFields\":", "[", "]", "}"},
	    {"{\"name\":\"Ada\",\"customFields\":{\"a\":", "{\"a\":", "}", "}}"},
	    {"{\"name\":", "[", "]", "}"},
	};
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		char *body = nested(shapes[i].prefix, shapes[i].open, shapes[i].close, 10000,
		                    shapes[i].suffix);
		expect_err(arena, body, POST, "invalid_json", "");
		expect_err(arena, body, PATCH, "invalid_json", "");
		free(body);
	}
	/* Unbalanced: only openings. */
	char *body = nested("{\"customFields\":", "[", "", 10000, "");
	expect_err(arena, body, PATCH, "invalid_json", "");
	free(body);
}

static void test_huge_numbers_do_not_crash(void **state)
{
	tk_arena *arena = *state;
	const char *bodies[] = {
	    "{\"name\":123456789012345678901234567890}",
	    "{\"name\":1e999999}",
	    "{\"name\":-1e999999}",
	    "{\"name\":\"Ada\",\"customFields\":{\"n\":1e400}}",
	    "{\"name\":\"Ada\",\"customFields\":{\"n\":-1e400}}",
	    "{\"name\":\"Ada\",\"phone\":99999999999999999999999}",
	};
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		lead_input in;
		tk_error err;
		assert_int_equal(parse(arena, bodies[i], POST, &in, &err), TK_ERR);
		assert_int_equal(err.http_status, 400);
		if (strcmp(err.code, "invalid_json") != 0 &&
		    strcmp(err.code, "validation_error") != 0)
			fail_msg("%s: unexpected code %s", bodies[i], err.code);
	}
	/* Big but representable numbers in customFields keep their exact text. */
	lead_input in;
	expect_ok(arena,
	          "{\"customFields\":{\"n\":9223372036854775807,\"m\":-9223372036854775808}}",
	          PATCH, &in);
	assert_string_equal(in.value[LEAD_IN_CUSTOM_FIELDS],
	                    "{\"n\":9223372036854775807,\"m\":-9223372036854775808}");
	/* Beyond 64 bits too: PostgreSQL stores the exact value from the text. */
	expect_ok(arena, "{\"customFields\":{\"n\":123456789012345678901234567890}}", PATCH, &in);
	assert_string_equal(in.value[LEAD_IN_CUSTOM_FIELDS],
	                    "{\"n\":123456789012345678901234567890}");
}

static void test_long_unknown_key_is_truncated_safely(void **state)
{
	tk_arena *arena = *state;
	/* A 1,000-byte key: err.field must stay NUL-terminated within its buffer. */
	size_t klen = 1000;
	char *body = malloc(klen + 16);
	assert_non_null(body);
	body[0] = '{';
	body[1] = '"';
	memset(body + 2, 'k', klen);
	strcpy(body + 2 + klen, "\":1}");
	lead_input in;
	tk_error err;
	assert_int_equal(parse(arena, body, PATCH, &in, &err), TK_ERR);
	assert_string_equal(err.code, "unknown_field");
	assert_int_equal(err.http_status, 400);
	assert_int_equal(strlen(err.field), TK_ERROR_FIELD_MAX - 1);
	assert_int_equal(strspn(err.field, "k"), TK_ERROR_FIELD_MAX - 1);
	free(body);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, arena_setup, arena_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_post_full_body),
	    T(test_post_minimal_body),
	    T(test_values_are_copied_into_the_arena),
	    T(test_name_required_on_post),
	    T(test_name_length_in_characters),
	    T(test_other_string_limits),
	    T(test_unknown_fields_are_rejected),
	    T(test_duplicate_keys_are_invalid_json),
	    T(test_invalid_json),
	    T(test_nul_bytes_are_rejected),
	    T(test_top_level_must_be_object),
	    T(test_wrong_types_name_the_field),
	    T(test_email_must_be_an_address),
	    T(test_status_enum),
	    T(test_custom_fields_size_limit),
	    T(test_custom_fields_objects_accepted),
	    T(test_assigned_to_must_be_uuid),
	    T(test_patch_null_clears_nullable_fields),
	    T(test_non_nullable_fields_reject_null),
	    T(test_patch_requires_a_field),
	    T(test_parse_resets_output),
	    T(test_deep_nesting_is_rejected),
	    T(test_huge_numbers_do_not_crash),
	    T(test_long_unknown_key_is_truncated_safely),
	};
#undef T
	return cmocka_run_group_tests_name("lead_input", tests, NULL, NULL);
}
