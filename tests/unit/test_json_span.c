/*
 * test_json_span.c - unit tests for util/json_span.h: a top-level member's
 * own text is found (escaped keys, look-alike keys, the name inside nested
 * values and strings), and the compact length agrees with jansson's compact
 * output for documents whose numbers jansson writes back unchanged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "util/json_span.h"

static void expect_span(const char *doc, const char *name, const char *want)
{
	const char *v = NULL;
	size_t n = 0;
	bool found = tk_json_member_span(doc, strlen(doc), name, &v, &n);
	if (want == NULL) {
		if (found)
			fail_msg("%s: found %s in %s", name, v, doc);
		return;
	}
	if (!found)
		fail_msg("%s: not found in %s", name, doc);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(v, want, n);
}

static void test_member_span_finds_the_text_as_written(void **state)
{
	(void)state;
	expect_span("{\"a\":1,\"customFields\":{\"x\": 0.1, \"y\" :1e2}}", "customFields",
	            "{\"x\": 0.1, \"y\" :1e2}");
	expect_span(" {\n \"customFields\" :\t[1, 2]\n}\n", "customFields", "[1, 2]");
	expect_span("{\"customFields\":123456789012345678901234567890}", "customFields",
	            "123456789012345678901234567890");
	expect_span("{\"customFields\":\"a \\\"}\\\" b\",\"z\":1}", "customFields",
	            "\"a \\\"}\\\" b\"");
	expect_span("{\"b\":{\"customFields\":1},\"c\":\"customFields\",\"customFields\":{}}",
	            "customFields", "{}");
	/* The key compared decoded. */
	expect_span("{\"custom\\u0046ields\":{\"k\":[]}}", "customFields", "{\"k\":[]}");
	expect_span("{\"custom\\/Fields\":1}", "custom/Fields", "1");
	expect_span("{\"a\":true,\"b\":null,\"c\":false}", "c", "false");
}

static void test_member_span_misses(void **state)
{
	(void)state;
	expect_span("{\"customFieldsX\":1,\"xcustomFields\":2}", "customFields", NULL);
	expect_span("{\"customField\":1}", "customFields", NULL);
	expect_span("{\"custom\\u00c6ields\":1}", "customFields", NULL);
	expect_span("[{\"customFields\":1}]", "customFields", NULL);
	expect_span("{}", "customFields", NULL);
	expect_span("", "customFields", NULL);
	/* Not JSON: no match, and nothing read past the end (ASan). */
	const char *broken[] = {
	    "{",           "{\"customFields\"",    "{\"customFields\":", "{\"a\" 1}",
	    "{\"a\":\"\\", "{\"customFields\\u00", "{\"a\":1 \"",        "{\"customFields\":{"};
	for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
		char *copy = malloc(strlen(broken[i]) + 1);
		memcpy(copy, broken[i], strlen(broken[i]) + 1);
		const char *v;
		size_t n;
		(void)tk_json_member_span(copy, strlen(copy), "customFields", &v, &n);
		free(copy);
	}
}

/* Compact length against jansson's own compact output. */
static void expect_compact_like_jansson(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
	if (v == NULL)
		fail_msg("%s: %s", text, jerr.text);
	char *compact = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	assert_non_null(compact);
	if (tk_json_compact_length(text, strlen(text)) != strlen(compact))
		fail_msg("%s: %zu, jansson writes %s (%zu)", text,
		         tk_json_compact_length(text, strlen(text)), compact, strlen(compact));
	free(compact);
	json_decref(v);
}

static void test_compact_length_matches_compact_output(void **state)
{
	(void)state;
	expect_compact_like_jansson("{ \"a\" : [ 1 , 2 , { \"b\" : \"x y\" } ] }");
	expect_compact_like_jansson("{\n\t\"k\": \"  spaces  inside  \"\n}");
	expect_compact_like_jansson("{\"city\":\"K\\u00f8benhavn\"}");
	expect_compact_like_jansson("{\"e\":\"\\ud83d\\ude00\"}");
	expect_compact_like_jansson("{\"s\":\"a\\/b\",\"q\":\"\\\"\",\"b\":\"\\\\\"}");
	expect_compact_like_jansson("{\"c\":\"\\n\\t\\r\\b\\f\",\"u\":\"\\u000a\\u0008\"}");
	expect_compact_like_jansson("{\"ctl\":\"\\u0001\\u001f\",\"A\":\"\\u0041\\u0022\"}");
	expect_compact_like_jansson("{\"cjk\":\"\\u4e2d\\u6587\",\"raw\":\"\xe4\xb8\xad\"}");
	expect_compact_like_jansson("[true, false, null, -12, 0, \"\"]");
}

static void test_compact_length_keeps_numbers_as_written(void **state)
{
	(void)state;
	const char *t = "{ \"x\": 0.1, \"y\": 1e2 }";
	assert_int_equal(tk_json_compact_length(t, strlen(t)), strlen("{\"x\":0.1,\"y\":1e2}"));
	/* A lone backslash at the end is not read past. */
	char tail[] = {'"', '\\'};
	(void)tk_json_compact_length(tail, sizeof tail);
	char uni[] = {'"', '\\', 'u', '0'};
	(void)tk_json_compact_length(uni, sizeof uni);
}

static void test_value_count(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		size_t values;
	} cases[] = {
	    {"1", 1},      {"\"a,b,{[\"", 1},
	    {"{}", 2},     {"{\"a\":1,\"b\":[1,2,{}]}", 7}, /* 6 values: a bound */
	    {"[[[]]]", 4}, {"{\"k\":\"x\\\",[{\",\"j\":2}", 3},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (tk_json_value_count(cases[i].text, strlen(cases[i].text)) != cases[i].values)
			fail_msg("%s: %zu values, not %zu", cases[i].text,
			         tk_json_value_count(cases[i].text, strlen(cases[i].text)),
			         cases[i].values);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_member_span_finds_the_text_as_written),
	    cmocka_unit_test(test_member_span_misses),
	    cmocka_unit_test(test_compact_length_matches_compact_output),
	    cmocka_unit_test(test_compact_length_keeps_numbers_as_written),
	    cmocka_unit_test(test_value_count),
	};
	return cmocka_run_group_tests_name("json_span", tests, NULL, NULL);
}
