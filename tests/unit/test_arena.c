/*
 * test_arena.c - unit tests for util/arena.h, the per-request bump
 * allocator: alignment, allocations larger than a chunk, and
 * tk_arena_printf at every fill level of the current chunk (it formats
 * in place when the text fits and again elsewhere when it does not), with
 * earlier strings left intact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/arena.h"

static void test_alloc_is_aligned_and_distinct(void **state)
{
	(void)state;
	tk_arena *a = tk_arena_create();
	enum { N = 300 };
	unsigned char *got[N];
	/* Each allocation filled with its own byte: if two overlapped, the
	 * later fill would show in the earlier one. */
	for (size_t size = 0; size < N; size++) {
		got[size] = tk_arena_alloc(a, size);
		assert_non_null(got[size]);
		assert_int_equal((uintptr_t)got[size] % 16, 0);
		memset(got[size], (int)(size & 0xff), size);
	}
	for (size_t size = 0; size < N; size++)
		for (size_t k = 0; k < size; k++)
			assert_int_equal(got[size][k], size & 0xff);
	char *big = tk_arena_alloc(a, 100000); /* past a chunk */
	memset(big, 1, 100000);
	char *z = tk_arena_calloc(a, 1000, 3);
	for (size_t k = 0; k < 3000; k++)
		assert_int_equal(z[k], 0);
	tk_arena_destroy(a);
	tk_arena_destroy(NULL);
}

/* Fills the current chunk to every level, then prints texts of sizes
 * around what is left: each result equals snprintf's, and the strings
 * printed before are unchanged. */
static void test_printf_at_every_fill_level(void **state)
{
	(void)state;
	static const size_t lengths[] = {0, 1, 14, 15, 16, 17, 100, 1000, 8191, 8192, 20000};
	char want[20100];
	for (size_t fill = 0; fill <= 8192 + 64; fill += 16) {
		tk_arena *a = tk_arena_create();
		char *first = tk_arena_printf(a, "first %d", 1);
		if (fill > 0)
			memset(tk_arena_alloc(a, fill), 0x33, fill);
		char *got[sizeof lengths / sizeof lengths[0]];
		for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
			size_t n = lengths[i];
			got[i] = tk_arena_printf(a, "%0*zu", (int)n, i);
			assert_int_equal((uintptr_t)got[i] % 16, 0);
		}
		assert_string_equal(first, "first 1");
		for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
			snprintf(want, sizeof want, "%0*zu", (int)lengths[i], i);
			assert_string_equal(got[i], want);
		}
		tk_arena_destroy(a);
	}
}

static void test_printf_without_a_chunk_yet(void **state)
{
	(void)state;
	tk_arena *a = tk_arena_create();
	char *s = tk_arena_printf(a, "%s-%ld", "page", 42L);
	assert_string_equal(s, "page-42");
	char *e = tk_arena_printf(a, "%s", "");
	assert_string_equal(e, "");
	assert_true(e != s);
	tk_arena_destroy(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_alloc_is_aligned_and_distinct),
	    cmocka_unit_test(test_printf_at_every_fill_level),
	    cmocka_unit_test(test_printf_without_a_chunk_yet),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
