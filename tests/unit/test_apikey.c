/*
 * test_apikey.c - unit tests for auth/apikey.h: the "tk_" + 64 hex key
 * format, generation from the CSPRNG, SHA-256 hashing and the bytea hex
 * form the hash is stored in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "auth/apikey.h"

#define SHA256_ABC   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA256_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define GOOD_KEY     "tk_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static bool well_formed(const char *key)
{
	return tk_apikey_is_well_formed(key, strlen(key));
}

static void hex_of(const unsigned char *bin, size_t len, char *out, size_t outlen)
{
	assert_non_null(sodium_bin2hex(out, outlen, bin, len));
}

static void test_generate_is_well_formed(void **state)
{
	(void)state;
	for (int i = 0; i < 64; i++) {
		char key[TK_APIKEY_LEN + 1];
		memset(key, 'X', sizeof key);
		tk_apikey_generate(key);
		assert_int_equal(key[TK_APIKEY_LEN], '\0');
		assert_int_equal(strlen(key), TK_APIKEY_LEN);
		assert_memory_equal(key, "tk_", 3);
		assert_int_equal(strspn(key + 3, "0123456789abcdef"), 64);
		assert_true(tk_apikey_is_well_formed(key, strlen(key)));
	}
}

static void test_generate_differs_each_time(void **state)
{
	(void)state;
	char a[TK_APIKEY_LEN + 1], b[TK_APIKEY_LEN + 1];
	tk_apikey_generate(a);
	tk_apikey_generate(b);
	assert_string_not_equal(a, b);
	/* Not just the tail: the display prefix differs too (2^-32 chance of a flake). */
	assert_memory_not_equal(a, b, TK_APIKEY_PREFIX_LEN);
}

static void test_generate_uses_every_hex_digit(void **state)
{
	(void)state;
	/* 64 keys carry 4,096 hex digits: each of 16 digits turns up. */
	bool seen[16] = {false};
	for (int i = 0; i < 64; i++) {
		char key[TK_APIKEY_LEN + 1];
		tk_apikey_generate(key);
		for (size_t j = 3; j < TK_APIKEY_LEN; j++) {
			char c = key[j];
			seen[c <= '9' ? c - '0' : c - 'a' + 10] = true;
		}
	}
	for (int d = 0; d < 16; d++)
		assert_true(seen[d]);
}

static void test_well_formed_accepts_good_key(void **state)
{
	(void)state;
	assert_int_equal(strlen(GOOD_KEY), TK_APIKEY_LEN);
	assert_true(well_formed(GOOD_KEY));
}

static void test_well_formed_rejects_uppercase_hex(void **state)
{
	(void)state;
	char key[] = GOOD_KEY;
	key[13] = 'A';
	assert_false(well_formed(key));
	key[13] = 'a';
	key[TK_APIKEY_LEN - 1] = 'F';
	assert_false(well_formed(key));
	assert_false(
	    well_formed("tk_0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"));
}

static void test_well_formed_rejects_wrong_prefix(void **state)
{
	(void)state;
	const char *bad[] = {
	    "TK_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	    "Tk_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	    "tk-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	    "sk_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	    "tkx0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef012",
	    "___0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(strlen(bad[i]), TK_APIKEY_LEN);
		if (well_formed(bad[i]))
			fail_msg("accepted \"%s\"", bad[i]);
	}
}

static void test_well_formed_rejects_wrong_length(void **state)
{
	(void)state;
	char key[TK_APIKEY_LEN + 2];
	memcpy(key, GOOD_KEY, TK_APIKEY_LEN);
	assert_false(tk_apikey_is_well_formed(key, TK_APIKEY_LEN - 1));
	assert_false(tk_apikey_is_well_formed(key, 3));
	assert_false(tk_apikey_is_well_formed(key, 0));
	key[TK_APIKEY_LEN] = '0';
	key[TK_APIKEY_LEN + 1] = '\0';
	assert_false(tk_apikey_is_well_formed(key, TK_APIKEY_LEN + 1));
	assert_false(tk_apikey_is_well_formed(NULL, TK_APIKEY_LEN));
	assert_false(well_formed(""));
	assert_false(well_formed("tk_"));
}

static void test_well_formed_rejects_non_hex(void **state)
{
	(void)state;
	const char subst[] = {'g', 'z', 'G', ' ', '-', '_', '\0', '\n', (char)0xc3};
	for (size_t i = 0; i < sizeof subst; i++) {
		char key[] = GOOD_KEY;
		key[40] = subst[i];
		if (tk_apikey_is_well_formed(key, TK_APIKEY_LEN))
			fail_msg("accepted byte 0x%02x", (unsigned char)subst[i]);
	}
}

static void test_hash_is_sha256(void **state)
{
	(void)state;
	unsigned char h[TK_APIKEY_HASH_LEN];
	char hex[2 * TK_APIKEY_HASH_LEN + 1];

	tk_apikey_hash("abc", 3, h);
	hex_of(h, sizeof h, hex, sizeof hex);
	assert_string_equal(hex, SHA256_ABC);

	tk_apikey_hash("", 0, h);
	hex_of(h, sizeof h, hex, sizeof hex);
	assert_string_equal(hex, SHA256_EMPTY);

	/* The length is authoritative, not the terminator. */
	tk_apikey_hash("abcdef", 3, h);
	hex_of(h, sizeof h, hex, sizeof hex);
	assert_string_equal(hex, SHA256_ABC);
}

static void test_hash_depends_on_every_byte(void **state)
{
	(void)state;
	unsigned char a[TK_APIKEY_HASH_LEN], b[TK_APIKEY_HASH_LEN];
	char key[] = GOOD_KEY;
	tk_apikey_hash(key, TK_APIKEY_LEN, a);
	tk_apikey_hash(key, TK_APIKEY_LEN, b);
	assert_memory_equal(a, b, sizeof a);
	key[TK_APIKEY_LEN - 1] = 'e';
	tk_apikey_hash(key, TK_APIKEY_LEN, b);
	assert_memory_not_equal(a, b, sizeof a);
}

static void test_hash_hex_is_bytea_input(void **state)
{
	(void)state;
	unsigned char h[TK_APIKEY_HASH_LEN];
	char out[67];
	memset(out, 'X', sizeof out);
	tk_apikey_hash("abc", 3, h);
	tk_apikey_hash_hex(h, out);
	assert_int_equal(out[66], '\0');
	assert_int_equal(strlen(out), 66);
	assert_string_equal(out, "\\x" SHA256_ABC);

	/* Every byte value renders as two lower-case hex digits. */
	unsigned char all[TK_APIKEY_HASH_LEN];
	for (size_t i = 0; i < sizeof all; i++)
		all[i] = (unsigned char)(i * 8 + 7);
	tk_apikey_hash_hex(all, out);
	assert_string_equal(out,
	                    "\\x070f171f272f373f474f575f676f777f878f979fa7afb7bfc7cfd7dfe7eff7ff");
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_generate_is_well_formed),
	    cmocka_unit_test(test_generate_differs_each_time),
	    cmocka_unit_test(test_generate_uses_every_hex_digit),
	    cmocka_unit_test(test_well_formed_accepts_good_key),
	    cmocka_unit_test(test_well_formed_rejects_uppercase_hex),
	    cmocka_unit_test(test_well_formed_rejects_wrong_prefix),
	    cmocka_unit_test(test_well_formed_rejects_wrong_length),
	    cmocka_unit_test(test_well_formed_rejects_non_hex),
	    cmocka_unit_test(test_hash_is_sha256),
	    cmocka_unit_test(test_hash_depends_on_every_byte),
	    cmocka_unit_test(test_hash_hex_is_bytea_input),
	};
	return cmocka_run_group_tests_name("apikey", tests, NULL, NULL);
}
