/*
 * test_tx_errors.c - unit tests for db_error_from_sqlstate (db/tx.h), the
 * one table mapping PostgreSQL SQLSTATEs to API errors: status, stable code,
 * Retry-After for transient failures, and messages that leak no internals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "db/tx.h"

typedef struct mapping {
	const char *sqlstate;
	int status;
	const char *code;
	int retry_after;
} mapping;

static void expect_mapping(const mapping *m)
{
	tk_error err;
	memset(&err, 0, sizeof err);
	db_error_from_sqlstate(m->sqlstate, "leads_some_constraint", &err);
	if (err.http_status != m->status || err.code == NULL || strcmp(err.code, m->code) != 0 ||
	    err.retry_after != m->retry_after)
		fail_msg("%s: expected %d %s retry %d, got %d %s retry %d", m->sqlstate, m->status,
		         m->code, m->retry_after, err.http_status, err.code ? err.code : "(null)",
		         err.retry_after);
	/* A message that says something, and nothing internal. */
	assert_true(strlen(err.message) > 0);
	if (m->sqlstate[0] != '\0')
		assert_null(strstr(err.message, m->sqlstate));
	assert_null(strstr(err.message, "leads_some_constraint"));
	assert_string_equal(err.field, "");
	assert_null(err.allow);
}

static void test_required_mappings(void **state)
{
	(void)state;
	static const mapping cases[] = {
	    {"23505", 409, "conflict", 0},
	    {"23514", 400, "validation_error", 0},
	    {"57014", 503, "statement_timeout", 1},
	    {"XX000", 500, "internal_error", 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		expect_mapping(&cases[i]);
}

static void test_data_errors_are_400(void **state)
{
	(void)state;
	static const mapping cases[] = {
	    {"23503", 400, "invalid_reference", 0}, /* foreign_key_violation */
	    {"23502", 400, "validation_error", 0},  /* not_null_violation */
	    {"22001", 400, "validation_error", 0},  /* string_data_right_truncation */
	    {"22P02", 400, "validation_error", 0},  /* invalid_text_representation */
	    {"22007", 400, "validation_error", 0},  /* invalid_datetime_format */
	    {"22008", 400, "validation_error", 0},  /* datetime_field_overflow */
	    {"22003", 400, "validation_error", 0},  /* numeric_value_out_of_range */
	    {"22012", 400, "validation_error", 0},  /* class 22 fallback */
	    {"22009", 400, "validation_error", 0},  /* invalid_time_zone_displacement */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		expect_mapping(&cases[i]);
}

static void test_transient_errors_are_503_with_retry(void **state)
{
	(void)state;
	static const mapping cases[] = {
	    {"40001", 503, "conflict_retry", 1},       /* serialization_failure */
	    {"40P01", 503, "conflict_retry", 1},       /* deadlock_detected */
	    {"55P03", 503, "conflict_retry", 1},       /* lock_not_available */
	    {"53300", 503, "database_unavailable", 1}, /* too_many_connections */
	    {"53100", 503, "database_unavailable", 1}, /* disk_full */
	    {"57014", 503, "statement_timeout", 1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		expect_mapping(&cases[i]);
}

static void test_permission_denied_is_403(void **state)
{
	(void)state;
	static const mapping m = {"42501", 403, "forbidden", 0};
	expect_mapping(&m);
}

static void test_unknown_states_are_500(void **state)
{
	(void)state;
	/* Neither the first digits of a mapped state nor other classes match. */
	const char *states[] = {"XX000", "XX001", "42P01", "42601", "42703", "2350", "23000",
	                        "23",    "40000", "57000", "55000", "P0001", ""};
	for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
		mapping m = {states[i], 500, "internal_error", 0};
		expect_mapping(&m);
	}
}

static void test_constraint_may_be_null(void **state)
{
	(void)state;
	tk_error err;
	memset(&err, 0, sizeof err);
	db_error_from_sqlstate("23505", NULL, &err);
	assert_int_equal(err.http_status, 409);
	assert_string_equal(err.code, "conflict");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_required_mappings),
	    cmocka_unit_test(test_data_errors_are_400),
	    cmocka_unit_test(test_transient_errors_are_503_with_retry),
	    cmocka_unit_test(test_permission_denied_is_403),
	    cmocka_unit_test(test_unknown_states_are_500),
	    cmocka_unit_test(test_constraint_may_be_null),
	};
	return cmocka_run_group_tests_name("tx_errors", tests, NULL, NULL);
}
