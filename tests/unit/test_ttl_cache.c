/*
 * test_ttl_cache.c - unit tests for util/ttl_cache.h: values come back as
 * stored, per key; an entry ends at its deadline and on removal; a full
 * probe run replaces the entry closest to expiry, never the newest; a key
 * is never stored twice; and values of an odd size keep their neighbours
 * intact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "util/ttl_cache.h"

typedef struct value {
	char text[13]; /* odd size: entries must still be aligned */
} value;

/* Keys whose first 8 bytes (the slot) are slot and the rest tag. */
static void make_key(unsigned char key[TK_TTL_CACHE_KEY_LEN], uint64_t slot, unsigned char tag)
{
	memset(key, tag, TK_TTL_CACHE_KEY_LEN);
	memcpy(key, &slot, sizeof slot);
}

static value val(const char *s)
{
	value v = {{0}};
	strncpy(v.text, s, sizeof v.text - 1);
	return v;
}

static void test_get_returns_what_was_put_per_key(void **state)
{
	(void)state;
	tk_ttl_cache *c = tk_ttl_cache_create(64, sizeof(value));
	unsigned char a[TK_TTL_CACHE_KEY_LEN], b[TK_TTL_CACHE_KEY_LEN];
	make_key(a, 5, 1);
	make_key(b, 5, 2); /* same slot, other key */
	value out;
	assert_false(tk_ttl_cache_get(c, a, &out));
	value va = val("alpha"), vb = val("beta");
	tk_ttl_cache_put(c, a, &va, 60000);
	tk_ttl_cache_put(c, b, &vb, 60000);
	assert_true(tk_ttl_cache_get(c, a, &out));
	assert_string_equal(out.text, "alpha");
	assert_true(tk_ttl_cache_get(c, b, &out));
	assert_string_equal(out.text, "beta");
	/* Put again: replaced in place. */
	value va2 = val("alpha2");
	tk_ttl_cache_put(c, a, &va2, 60000);
	assert_true(tk_ttl_cache_get(c, a, &out));
	assert_string_equal(out.text, "alpha2");
	assert_true(tk_ttl_cache_get(c, b, &out));
	assert_string_equal(out.text, "beta");
	tk_ttl_cache_destroy(c);
}

static void test_entries_end_at_deadline_and_on_removal(void **state)
{
	(void)state;
	tk_ttl_cache *c = tk_ttl_cache_create(64, sizeof(value));
	unsigned char a[TK_TTL_CACHE_KEY_LEN], b[TK_TTL_CACHE_KEY_LEN];
	make_key(a, 9, 1);
	make_key(b, 9, 2);
	value v = val("x"), out;
	tk_ttl_cache_put(c, a, &v, 200);
	tk_ttl_cache_put(c, b, &v, 60000);
	tk_ttl_cache_put(c, b, &v, 0); /* no time to live: ignored */
	assert_true(tk_ttl_cache_get(c, a, &out));
	struct timespec pause = {0, 400 * 1000000L};
	nanosleep(&pause, NULL);
	assert_false(tk_ttl_cache_get(c, a, &out));
	assert_true(tk_ttl_cache_get(c, b, &out));
	tk_ttl_cache_remove(c, b);
	assert_false(tk_ttl_cache_get(c, b, &out));
	tk_ttl_cache_remove(c, b); /* removing twice is harmless */
	tk_ttl_cache_destroy(c);
}

static void test_full_probe_run_replaces_the_entry_closest_to_expiry(void **state)
{
	(void)state;
	tk_ttl_cache *c = tk_ttl_cache_create(64, sizeof(value));
	unsigned char keys[9][TK_TTL_CACHE_KEY_LEN];
	value v = val("v"), out;
	/* Eight keys fill the probe run from slot 3; key 4 expires first. */
	for (int i = 0; i < 8; i++) {
		make_key(keys[i], 3, (unsigned char)(i + 1));
		tk_ttl_cache_put(c, keys[i], &v, i == 4 ? 30000 : 60000);
	}
	make_key(keys[8], 3, 9);
	tk_ttl_cache_put(c, keys[8], &v, 60000);
	for (int i = 0; i < 9; i++)
		assert_int_equal(tk_ttl_cache_get(c, keys[i], &out), i != 4);
	tk_ttl_cache_destroy(c);
}

static void test_a_key_is_never_stored_twice(void **state)
{
	(void)state;
	tk_ttl_cache *c = tk_ttl_cache_create(64, sizeof(value));
	unsigned char keys[9][TK_TTL_CACHE_KEY_LEN];
	value v = val("old"), out;
	for (int i = 0; i < 9; i++)
		make_key(keys[i], 20, (unsigned char)(i + 1));
	for (int i = 0; i < 8; i++) /* the run from slot 20, full */
		tk_ttl_cache_put(c, keys[i], &v, 60000);
	/* Key 0's slot, first in the run, is freed; key 7, last, is stored
	 * again.  It must replace its own entry: a copy in the free slot would
	 * be the first to go when key 8 needs room, and key 7 would read as
	 * its old value again. */
	tk_ttl_cache_remove(c, keys[0]);
	value nv = val("new");
	tk_ttl_cache_put(c, keys[7], &nv, 1000);
	tk_ttl_cache_put(c, keys[8], &v, 60000);
	assert_true(tk_ttl_cache_get(c, keys[7], &out));
	assert_string_equal(out.text, "new");
	assert_true(tk_ttl_cache_get(c, keys[8], &out));
	tk_ttl_cache_remove(c, keys[7]);
	assert_false(tk_ttl_cache_get(c, keys[7], &out));
	tk_ttl_cache_destroy(c);
}

static void test_values_of_odd_size_do_not_overlap(void **state)
{
	(void)state;
	enum { N = 16 };
	tk_ttl_cache *c = tk_ttl_cache_create(N, sizeof(value));
	unsigned char keys[N][TK_TTL_CACHE_KEY_LEN];
	for (int i = 0; i < N; i++) {
		make_key(keys[i], (uint64_t)i, 7);
		value v;
		memset(v.text, 'a' + i, sizeof v.text);
		tk_ttl_cache_put(c, keys[i], &v, 60000);
	}
	for (int i = 0; i < N; i++) {
		value out;
		assert_true(tk_ttl_cache_get(c, keys[i], &out));
		for (size_t k = 0; k < sizeof out.text; k++)
			assert_int_equal(out.text[k], 'a' + i);
	}
	tk_ttl_cache_destroy(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_get_returns_what_was_put_per_key),
	    cmocka_unit_test(test_entries_end_at_deadline_and_on_removal),
	    cmocka_unit_test(test_full_probe_run_replaces_the_entry_closest_to_expiry),
	    cmocka_unit_test(test_a_key_is_never_stored_twice),
	    cmocka_unit_test(test_values_of_odd_size_do_not_overlap),
	};
	return cmocka_run_group_tests_name("ttl_cache", tests, NULL, NULL);
}
