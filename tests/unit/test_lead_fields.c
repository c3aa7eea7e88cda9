/*
 * test_lead_fields.c - unit tests for leads/lead_fields.h: parsing the
 * `fields` query parameter into a mask, and the json_build_object SQL built
 * from that mask (only ever from the fixed field table).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "leads/lead_fields.h"

static const char *const all_fields[LEAD_FIELD_COUNT] = {
    "id",        "tenantId",   "name",         "email",     "phone",
    "company",   "status",     "source",       "createdAt", "updatedAt",
    "createdBy", "assignedTo", "customFields", "version",   "lastActivityAt",
};

static unsigned popcount(unsigned m)
{
	return (unsigned)__builtin_popcount(m);
}

/* How often 'name' (quoted as a SQL literal) occurs in sql. */
static int count_key(const char *sql, const char *name)
{
	char needle[64];
	snprintf(needle, sizeof needle, "'%s'", name);
	int n = 0;
	for (const char *p = sql; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* Asserts the SQL for mask names exactly the fields in `want` (a comma list). */
static void expect_sql_fields(unsigned mask, const char *want)
{
	tk_buf sql = TK_BUF_INIT;
	lead_fields_json_sql(&sql, mask);
	assert_non_null(sql.data);
	assert_int_equal(strncmp(sql.data, "json_build_object(", 18), 0);
	assert_int_equal(sql.data[sql.len - 1], ')');
	assert_int_equal(strlen(sql.data), sql.len);
	size_t selected = 0;
	for (size_t i = 0; i < LEAD_FIELD_COUNT; i++) {
		char item[64];
		snprintf(item, sizeof item, ",%s,", all_fields[i]);
		char list[512];
		snprintf(list, sizeof list, ",%s,", want);
		int expected = strstr(list, item) ? 1 : 0;
		int got = count_key(sql.data, all_fields[i]);
		if (got != expected)
			fail_msg("field %s appears %d times in %s", all_fields[i], got, sql.data);
		selected += (size_t)expected;
	}
	/* No stray quoted keys beyond the selected ones: one "'" pair per key. */
	size_t quotes = 0;
	for (const char *p = sql.data; *p; p++)
		quotes += *p == '\'';
	size_t ts = 0; /* timestamps carry two literal quotes each in their to_char format */
	for (const char *p = sql.data; (p = strstr(p, "to_char(")) != NULL; p++)
		ts++;
	assert_int_equal(quotes, 2 * selected + 4 * ts);
	tk_buf_free(&sql);
}

static void test_parse_accepts_list(void **state)
{
	(void)state;
	unsigned mask = 0;
	tk_error err = {0};
	assert_int_equal(lead_fields_parse("id,name", &mask, &err), TK_OK);
	assert_int_equal(popcount(mask), 2);
	assert_int_equal(mask & ~LEAD_FIELDS_ALL, 0);
	expect_sql_fields(mask, "id,name");

	unsigned again = 0;
	assert_int_equal(lead_fields_parse("name,id", &again, &err), TK_OK);
	assert_int_equal(again, mask);
	assert_int_equal(err.http_status, 0);
}

static void test_parse_every_field_alone(void **state)
{
	(void)state;
	unsigned seen = 0;
	for (size_t i = 0; i < LEAD_FIELD_COUNT; i++) {
		unsigned mask = 0;
		tk_error err = {0};
		if (lead_fields_parse(all_fields[i], &mask, &err) != TK_OK)
			fail_msg("rejected %s", all_fields[i]);
		assert_int_equal(popcount(mask), 1);
		assert_int_equal(seen & mask, 0); /* each name has its own bit */
		seen |= mask;
		expect_sql_fields(mask, all_fields[i]);
	}
	assert_int_equal(seen, LEAD_FIELDS_ALL);
}

static void test_parse_all_and_duplicates(void **state)
{
	(void)state;
	char list[512] = "";
	for (size_t i = 0; i < LEAD_FIELD_COUNT; i++) {
		if (i)
			strcat(list, ",");
		strcat(list, all_fields[i]);
	}
	unsigned mask = 0;
	tk_error err = {0};
	assert_int_equal(lead_fields_parse(list, &mask, &err), TK_OK);
	assert_int_equal(mask, LEAD_FIELDS_ALL);

	assert_int_equal(lead_fields_parse("id,id,id", &mask, &err), TK_OK);
	unsigned id_only = 0;
	assert_int_equal(lead_fields_parse("id", &id_only, &err), TK_OK);
	assert_int_equal(mask, id_only);
}

static void test_parse_rejects_bad_lists(void **state)
{
	(void)state;
	const char *bad[] = {
	    "",           "nope",    "id,,name", "id,",      ",id",      ",",
	    "ID",         "Name",    "id ,name", " id",      "id, name", "tenant_id",
	    "created_at", "id;name", "id,nope",  "*",        "name'",    "id\n",
	    "idname",     "i",       "ids",      "id,name,",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		unsigned mask = 0;
		tk_error err = {0};
		if (lead_fields_parse(bad[i], &mask, &err) != TK_ERR)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_int_equal(err.http_status, 400);
		assert_string_equal(err.code, "invalid_parameter");
		assert_string_equal(err.field, "fields");
		assert_true(strlen(err.message) > 0);
	}
}

static void test_sql_for_all_fields(void **state)
{
	(void)state;
	expect_sql_fields(LEAD_FIELDS_ALL,
	                  "id,tenantId,name,email,phone,company,status,source,createdAt,updatedAt,"
	                  "createdBy,assignedTo,customFields,version,lastActivityAt");
	tk_buf sql = TK_BUF_INIT;
	lead_fields_json_sql(&sql, LEAD_FIELDS_ALL);
	/* Timestamps use the API's one format. */
	assert_non_null(strstr(sql.data, "'createdAt', " LEAD_SQL_TIMESTAMP("l.created_at")));
	assert_non_null(strstr(sql.data, "'id', l.id"));
	assert_null(strstr(sql.data, ",,"));
	assert_null(strstr(sql.data, "(, "));
	tk_buf_free(&sql);
}

static void test_sql_appends_and_handles_empty_mask(void **state)
{
	(void)state;
	tk_buf sql = TK_BUF_INIT;
	tk_buf_puts(&sql, "SELECT ");
	lead_fields_json_sql(&sql, 0);
	assert_string_equal(sql.data, "SELECT json_build_object()");
	tk_buf_reset(&sql);

	unsigned mask = 0;
	tk_error err = {0};
	assert_int_equal(lead_fields_parse("name", &mask, &err), TK_OK);
	tk_buf_puts(&sql, "SELECT ");
	lead_fields_json_sql(&sql, mask);
	assert_string_equal(sql.data, "SELECT json_build_object('name', l.name)");
	tk_buf_free(&sql);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_accepts_list),
	    cmocka_unit_test(test_parse_every_field_alone),
	    cmocka_unit_test(test_parse_all_and_duplicates),
	    cmocka_unit_test(test_parse_rejects_bad_lists),
	    cmocka_unit_test(test_sql_for_all_fields),
	    cmocka_unit_test(test_sql_appends_and_handles_empty_mask),
	};
	return cmocka_run_group_tests_name("lead_fields", tests, NULL, NULL);
}
