/*
 * test_log.c - unit tests for util/log.h's access-log line, which is built
 * without printf: each line is captured from stderr, parsed with jansson, and
 * its fields compared, including the millisecond timestamp and durationMs
 * rounded to three decimals as %.3f would.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "util/log.h"

/* Sends stderr to a new temporary file (*tmp); returns the saved stderr
 * for stderr_restore. */
static int stderr_capture(FILE **tmp)
{
	*tmp = tmpfile();
	assert_non_null(*tmp);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(*tmp), STDERR_FILENO) >= 0);
	return saved;
}

static void stderr_restore(int saved)
{
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
}

/* Runs tk_log_request with stderr sent to a temporary file; returns the line
 * parsed as JSON (the caller frees it). */
static json_t *logged(const tk_request_log *entry)
{
	FILE *tmp;
	int saved = stderr_capture(&tmp);
	tk_log_request(entry);
	stderr_restore(saved);
	char line[2048] = {0};
	rewind(tmp);
	assert_non_null(fgets(line, sizeof line, tmp));
	fclose(tmp);
	size_t n = strlen(line);
	assert_true(n > 0 && line[n - 1] == '\n');
	json_error_t jerr;
	json_t *j = json_loads(line, 0, &jerr);
	if (j == NULL)
		fail_msg("not JSON (%s): %s", jerr.text, line);
	return j;
}

static void test_fields_and_number_formats(void **state)
{
	(void)state;
	const struct {
		double duration_ms;
		const char *want;
	} cases[] = {
	    {0.0, "0.000"},      {0.0004, "0.000"},      {0.0005, "0.001"}, {1.5, "1.500"},
	    {12.3456, "12.346"}, {999.9996, "1000.000"}, {-1.0, "0.000"},   {61234.5, "61234.500"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		tk_request_log e = {.request_id = "rid-1",
		                    .tenant_id = "b0000000-0000-4000-8000-000000000001",
		                    .method = "GET",
		                    .path = "/v1/leads",
		                    .status = 200,
		                    .duration_ms = cases[i].duration_ms};
		json_t *j = logged(&e);
		assert_string_equal(json_string_value(json_object_get(j, "msg")), "request");
		assert_string_equal(json_string_value(json_object_get(j, "requestId")), "rid-1");
		assert_string_equal(json_string_value(json_object_get(j, "tenantId")),
		                    "b0000000-0000-4000-8000-000000000001");
		assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
		assert_null(json_object_get(j, "error"));
		assert_null(json_object_get(j, "batch")); /* only for batched reads */
		/* The number as written: read it back as text via a real JSON number. */
		json_t *d = json_object_get(j, "durationMs");
		assert_true(json_is_real(d));
		char got[32];
		snprintf(got, sizeof got, "%.3f", json_real_value(d));
		assert_string_equal(got, cases[i].want);
		json_decref(j);
	}
}

static void test_timestamp_status_and_error(void **state)
{
	(void)state;
	tk_request_log e = {.request_id = "r",
	                    .tenant_id = NULL,
	                    .method = "POST",
	                    .path = "/v1/leads",
	                    .status = 503,
	                    .duration_ms = 2.0,
	                    .error_code = "database_unavailable"};
	json_t *j = logged(&e);
	const char *t = json_string_value(json_object_get(j, "time"));
	assert_non_null(t);
	/* 2026-11-27T20:12:42.560Z */
	assert_int_equal(strlen(t), 24);
	assert_true(t[10] == 'T' && t[19] == '.' && t[23] == 'Z');
	for (int i = 20; i < 23; i++)
		assert_true(t[i] >= '0' && t[i] <= '9');
	assert_true(json_is_null(json_object_get(j, "tenantId")));
	assert_int_equal(json_integer_value(json_object_get(j, "status")), 503);
	assert_string_equal(json_string_value(json_object_get(j, "error")), "database_unavailable");
	json_decref(j);

	e.status = 0; /* never answered (client went away) */
	j = logged(&e);
	assert_int_equal(json_integer_value(json_object_get(j, "status")), 0);
	json_decref(j);
}

/* A path as the client sent it need not be UTF-8: the line stays JSON, with
 * U+FFFD for each malformed byte, and a long path is cut between characters. */
static void test_text_that_is_not_utf8_stays_json(void **state)
{
	(void)state;
	tk_request_log e = {.request_id = "r", .method = "GET", .path = "/v1/\xff\xfe\"x\xc3"};
	json_t *j = logged(&e);
	assert_string_equal(json_string_value(json_object_get(j, "path")),
	                    "/v1/\xef\xbf\xbd\xef\xbf\xbd\"x\xef\xbf\xbd");
	json_decref(j);

	char path[1 + 2 * 300 + 1] = "a"; /* "a" then 300 x U+00E9: the cut falls mid-character */
	for (int i = 0; i < 300; i++)
		memcpy(path + 1 + 2 * i, "\xc3\xa9", 2);
	path[sizeof path - 1] = '\0';
	e.path = path;
	j = logged(&e);
	const char *got = json_string_value(json_object_get(j, "path"));
	assert_int_equal(strlen(got), 511);
	assert_memory_equal(got, path, 511);
	json_decref(j);

	/* Other log lines too (a peer's error message, say). */
	FILE *tmp;
	int saved = stderr_capture(&tmp);
	tk_log(TK_LOG_ERROR, "peer said %s",
	       "\x80"
	       "bad\xff");
	stderr_restore(saved);
	char line[512] = {0};
	rewind(tmp);
	assert_non_null(fgets(line, sizeof line, tmp));
	fclose(tmp);
	json_error_t jerr;
	j = json_loads(line, 0, &jerr);
	if (j == NULL)
		fail_msg("not JSON (%s): %s", jerr.text, line);
	assert_string_equal(json_string_value(json_object_get(j, "msg")), "peer said \xef\xbf\xbd"
	                                                                  "bad\xef\xbf\xbd");
	json_decref(j);
}

/* A read sent in a pipeline with others says how many: "batch":N. */
static void test_batch_size(void **state)
{
	(void)state;
	tk_request_log e = {.request_id = "r",
	                    .tenant_id = "b0000000-0000-4000-8000-000000000001",
	                    .method = "GET",
	                    .path = "/v1/leads/stats",
	                    .status = 200,
	                    .duration_ms = 0.5,
	                    .batch = 13};
	json_t *j = logged(&e);
	assert_int_equal(json_integer_value(json_object_get(j, "batch")), 13);
	assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
	json_decref(j);
}

/* Bytes written to the file behind fd so far. */
static long file_size(FILE *f)
{
	fflush(f);
	long here = ftell(f);
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fseek(f, here, SEEK_SET);
	return size;
}

/* A deferring thread's access lines wait (up to PIPE_BUF bytes, 5 ms); another line
 * writes them first, so the order holds; ending the deferral writes the rest
 * and later lines go straight out. */
static void test_deferred_lines(void **state)
{
	(void)state;
	FILE *tmp;
	int saved = stderr_capture(&tmp);

	/* Checked once stderr is back, so a failure's message is seen. */
	tk_request_log e = {.method = "GET", .path = "/v1/leads", .status = 200};
	int due_before = tk_log_flush_due_ms();
	tk_log_defer_requests();
	char rid[32];
	for (int i = 0; i < 3; i++) {
		snprintf(rid, sizeof rid, "d%d", i);
		e.request_id = rid;
		tk_log_request(&e);
	}
	long held = file_size(tmp);
	int due = tk_log_flush_due_ms();
	usleep(6000);
	int due_later = tk_log_flush_due_ms();
	log_warn("after three requests");
	long after_warn = file_size(tmp);

	/* Many lines: written in pieces of at most PIPE_BUF, never all held. */
	char path[300];
	memset(path, 'p', sizeof path - 1);
	path[0] = '/';
	path[sizeof path - 1] = '\0';
	e.path = path;
	long written_before_end = file_size(tmp), largest_write = 0;
	for (int i = 3; i < 60; i++) {
		snprintf(rid, sizeof rid, "d%d", i);
		e.request_id = rid;
		tk_log_request(&e);
		long size = file_size(tmp); /* grows while lines are held */
		if (size - written_before_end > largest_write)
			largest_write = size - written_before_end;
		written_before_end = size;
	}
	tk_log_end_deferring();
	long all = file_size(tmp);
	e.request_id = "straight";
	tk_log_request(&e);
	long straight = file_size(tmp);

	stderr_restore(saved);
	assert_int_equal(due_before, -1);
	assert_true(due >= 0 && due <= 5);
	assert_int_equal(due_later, 0);
	assert_true(largest_write > 0 && largest_write <= PIPE_BUF);
	assert_int_equal(held, 0);
	assert_true(after_warn > 0);
	assert_true(written_before_end > after_warn && written_before_end < all);
	assert_true(all - written_before_end <= PIPE_BUF);
	assert_true(straight > all);

	/* Every line complete and in order: d0..d59, the warning after d2. */
	rewind(tmp);
	char line[2048];
	int next = 0;
	bool warned = false;
	while (fgets(line, sizeof line, tmp) != NULL) {
		json_error_t jerr;
		json_t *j = json_loads(line, 0, &jerr);
		if (j == NULL)
			fail_msg("not JSON (%s): %s", jerr.text, line);
		const char *msg = json_string_value(json_object_get(j, "msg"));
		const char *id = json_string_value(json_object_get(j, "requestId"));
		if (strcmp(msg, "after three requests") == 0) {
			assert_int_equal(next, 3);
			warned = true;
		} else if (next < 60) {
			snprintf(rid, sizeof rid, "d%d", next++);
			assert_string_equal(id, rid);
		} else {
			assert_string_equal(id, "straight");
			next++;
		}
		json_decref(j);
	}
	fclose(tmp);
	assert_true(warned);
	assert_int_equal(next, 61);
}

/* Escaping can make one access line longer than an atomic pipe write: such
 * a line is written on its own, after the lines held before it. */
static void test_line_longer_than_a_pipe_write(void **state)
{
	(void)state;
	FILE *tmp;
	int saved = stderr_capture(&tmp);

	char path[513];
	memset(path, '\x01', sizeof path - 1); /* each becomes \u0001 */
	path[0] = '/';
	path[sizeof path - 1] = '\0';
	tk_log_defer_requests();
	tk_request_log e = {.request_id = "short", .method = "GET", .path = "/v1", .status = 200};
	tk_log_request(&e);
	long held = file_size(tmp);
	e.request_id = "long";
	e.path = path;
	e.tenant_id = path;
	tk_log_request(&e);
	long after_long = file_size(tmp);
	tk_log_end_deferring();
	long all = file_size(tmp);

	stderr_restore(saved);
	assert_int_equal(held, 0);
	assert_true(after_long > PIPE_BUF); /* both written, not held */
	assert_int_equal(all, after_long);

	rewind(tmp);
	static char line[8192];
	const char *want[] = {"short", "long"};
	for (int i = 0; i < 2; i++) {
		assert_non_null(fgets(line, sizeof line, tmp));
		json_error_t jerr;
		json_t *j = json_loads(line, 0, &jerr);
		if (j == NULL)
			fail_msg("not JSON (%s): %.200s", jerr.text, line);
		assert_string_equal(json_string_value(json_object_get(j, "requestId")), want[i]);
		if (i == 1)
			assert_int_equal(strlen(json_string_value(json_object_get(j, "path"))),
			                 512);
		json_decref(j);
	}
	assert_null(fgets(line, sizeof line, tmp));
	fclose(tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fields_and_number_formats),
	    cmocka_unit_test(test_timestamp_status_and_error),
	    cmocka_unit_test(test_text_that_is_not_utf8_stays_json),
	    cmocka_unit_test(test_batch_size),
	    cmocka_unit_test(test_deferred_lines),
	    cmocka_unit_test(test_line_longer_than_a_pipe_write),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
