/*
 * test_cursor.c - unit tests for leads/cursor.h, the keyset pagination
 * cursor codec: sort names, encode/decode round trips for every sort, and
 * rejection of every kind of forged or damaged cursor.
 *
 * Forged cursors are built by base64url-encoding hand-written raw text
 * ("v1\n<sort>\n<id>\n<key>"), so each test attacks exactly one part:
 * version, sort, id, key or the structure.  The key is everything after the
 * third newline, so a name key may itself hold newlines; only time keys and
 * the fixed-form parts before the key reject them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "leads/cursor.h"

#define ID "123e4567-e89b-12d3-a456-426614174000"
#define TS "2024-03-01T10:20:30.123456Z"

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

/* Decodes from an exactly-sized heap copy, so over-reads are caught. */
static tk_status decode_n(const char *text, size_t len, lead_cursor *out)
{
	char *p = malloc(len ? len : 1);
	assert_non_null(p);
	memcpy(p, text, len);
	tk_status st = lead_cursor_decode(p, len, out);
	free(p);
	return st;
}

static tk_status decode(const char *text, lead_cursor *out)
{
	return decode_n(text, strlen(text), out);
}

/* base64url (no padding) of raw[0..len), malloc'd. */
static char *b64_n(const void *raw, size_t len)
{
	size_t n = sodium_base64_encoded_len(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *out = malloc(n);
	assert_non_null(out);
	sodium_bin2base64(out, n, raw, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return out;
}

/* Decodes the cursor whose raw (pre-base64) text is raw[0..len). */
static tk_status decode_raw_n(const char *raw, size_t len, lead_cursor *out)
{
	char *text = b64_n(raw, len);
	tk_status st = decode(text, out);
	free(text);
	return st;
}

static tk_status decode_raw(const char *raw, lead_cursor *out)
{
	return decode_raw_n(raw, strlen(raw), out);
}

static void test_sort_names_round_trip(void **state)
{
	(void)state;
	static const struct {
		lead_sort sort;
		const char *name;
	} cases[] = {
	    {LEAD_SORT_CREATED_ASC, "createdAt"}, {LEAD_SORT_CREATED_DESC, "-createdAt"},
	    {LEAD_SORT_UPDATED_ASC, "updatedAt"}, {LEAD_SORT_UPDATED_DESC, "-updatedAt"},
	    {LEAD_SORT_NAME_ASC, "name"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_string_equal(lead_sort_name(cases[i].sort), cases[i].name);
		lead_sort s = (lead_sort)-1;
		assert_int_equal(lead_sort_parse(cases[i].name, &s), TK_OK);
		assert_int_equal(s, cases[i].sort);
	}
}

static void test_sort_parse_rejects_unknown(void **state)
{
	(void)state;
	const char *bad[] = {"",      "created", "CreatedAt",  "createdat",   "-name",
	                     "name ", " name",   "+createdAt", "--createdAt", "id"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		lead_sort s = LEAD_SORT_NAME_ASC;
		if (lead_sort_parse(bad[i], &s) != TK_ERR)
			fail_msg("accepted sort \"%s\"", bad[i]);
	}
}

static void test_round_trip_every_sort(void **state)
{
	tk_arena *arena = *state;
	static const struct {
		lead_sort sort;
		const char *key;
	} cases[] = {
	    {LEAD_SORT_CREATED_ASC, TS},
	    {LEAD_SORT_CREATED_DESC, TS},
	    {LEAD_SORT_UPDATED_ASC, "2024-12-31T23:59:59.000000Z"},
	    {LEAD_SORT_UPDATED_DESC, "1999-01-01T00:00:00.000001Z"},
	    {LEAD_SORT_NAME_ASC, "Ada Lovelace"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *text = lead_cursor_encode(arena, cases[i].sort, cases[i].key, ID);
		assert_non_null(text);
		/* Opaque and URL-safe: base64url without padding. */
		assert_true(strlen(text) > 0);
		assert_int_equal(strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		                              "0123456789-_"),
		                 strlen(text));
		assert_null(strstr(text, cases[i].key));

		lead_cursor c;
		memset(&c, 0xAA, sizeof c);
		assert_int_equal(decode(text, &c), TK_OK);
		assert_int_equal(c.sort, cases[i].sort);
		assert_string_equal(c.key, cases[i].key);
		assert_string_equal(c.id, ID);
	}
}

static void test_round_trip_normalizes_id(void **state)
{
	tk_arena *arena = *state;
	char *text = lead_cursor_encode(arena, LEAD_SORT_CREATED_DESC, TS,
	                                "ABCDEF01-2345-6789-ABCD-EF0123456789");
	lead_cursor c;
	assert_int_equal(decode(text, &c), TK_OK);
	assert_string_equal(c.id, "abcdef01-2345-6789-abcd-ef0123456789");
}

static void test_round_trip_other_timestamp_forms(void **state)
{
	tk_arena *arena = *state;
	const char *keys[] = {"2024-03-01", "2024-03-01T10:20:30Z", "2024-03-01T10:20:30+02:00",
	                      "2024-03-01 10:20:30.5-05:30"};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		char *text = lead_cursor_encode(arena, LEAD_SORT_UPDATED_ASC, keys[i], ID);
		lead_cursor c;
		assert_int_equal(decode(text, &c), TK_OK);
		assert_string_equal(c.key, keys[i]);
	}
}

static void test_round_trip_name_keys(void **state)
{
	tk_arena *arena = *state;
	char name[255 * 3 + 1];
	const char *keys[] = {
	    "x",
	    "O'Brien; DROP TABLE leads; --",
	    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
	    "  spaces  ",
	    "tab\there",
	};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		char *text = lead_cursor_encode(arena, LEAD_SORT_NAME_ASC, keys[i], ID);
		lead_cursor c;
		assert_int_equal(decode(text, &c), TK_OK);
		assert_int_equal(c.sort, LEAD_SORT_NAME_ASC);
		assert_string_equal(c.key, keys[i]);
	}

	/* The longest names the API stores: 255 characters of 1, 2 and 3 bytes. */
	static const char *const chars[] = {"a", "\xc3\xa9", "\xe2\x82\xac"};
	for (size_t k = 0; k < 3; k++) {
		size_t w = strlen(chars[k]);
		for (size_t i = 0; i < 255; i++)
			memcpy(name + i * w, chars[k], w);
		name[255 * w] = '\0';
		char *text = lead_cursor_encode(arena, LEAD_SORT_NAME_ASC, name, ID);
		lead_cursor c;
		assert_int_equal(decode(text, &c), TK_OK);
		assert_string_equal(c.key, name);
	}
}

/*
 * Regression: a name of 255 four-byte characters (the longest name
 * lead_input accepts) must fit in a cursor the decoder takes back.
 */
static void test_round_trip_longest_four_byte_name(void **state)
{
	tk_arena *arena = *state;

	char name[255 * 4 + 1];
	for (size_t i = 0; i < 255; i++)
		memcpy(name + i * 4, "\xf0\x9f\x98\x80", 4);
	name[255 * 4] = '\0';
	char *text = lead_cursor_encode(arena, LEAD_SORT_NAME_ASC, name, ID);
	lead_cursor c;
	assert_int_equal(decode(text, &c), TK_OK);
	assert_string_equal(c.key, name);
}

/*
 * Regression: names may contain a newline (lead_input accepts "\n"); the key
 * is the cursor's last part, so it survives the round trip.
 */
static void test_round_trip_name_with_newline(void **state)
{
	tk_arena *arena = *state;

	char *text = lead_cursor_encode(arena, LEAD_SORT_NAME_ASC, "two\nlines", ID);
	lead_cursor c;
	assert_int_equal(decode(text, &c), TK_OK);
	assert_string_equal(c.key, "two\nlines");
}

static void test_handmade_raw_is_accepted(void **state)
{
	(void)state;
	/* Guards the forgery tests below: their baseline really decodes. */
	lead_cursor c;
	assert_int_equal(decode_raw("v1\n-createdAt\n" ID "\n" TS, &c), TK_OK);
	assert_int_equal(c.sort, LEAD_SORT_CREATED_DESC);
	assert_string_equal(c.id, ID);
	assert_string_equal(c.key, TS);
	assert_int_equal(decode_raw("v1\nname\n" ID "\nAda", &c), TK_OK);
	assert_int_equal(c.sort, LEAD_SORT_NAME_ASC);
	assert_string_equal(c.id, ID);
	assert_string_equal(c.key, "Ada");
}

static void test_rejects_old_part_order(void **state)
{
	(void)state;
	lead_cursor c;
	/* The format before the key moved last: "v1\n<sort>\n<key>\n<id>". */
	assert_int_equal(decode_raw("v1\n-createdAt\n" TS "\n" ID, &c), TK_ERR);
	assert_int_equal(decode_raw("v1\nname\nAda\n" ID, &c), TK_ERR);
}

static void test_rejects_bad_base64(void **state)
{
	(void)state;
	lead_cursor c;
	char *good = b64_n("v1\nname\n" ID "\nAda", strlen("v1\nname\n" ID "\nAda"));
	size_t n = strlen(good);

	assert_int_equal(decode_n("", 0, &c), TK_ERR);
	assert_int_equal(decode("!!!!", &c), TK_ERR);
	assert_int_equal(decode("A", &c), TK_ERR);
	assert_int_equal(decode("dj E=", &c), TK_ERR);

	/* The standard alphabet's '+' and '/' are not base64url. */
	char *bad = strdup(good);
	bad[n / 2] = '+';
	assert_int_equal(decode(bad, &c), TK_ERR);
	bad[n / 2] = '/';
	assert_int_equal(decode(bad, &c), TK_ERR);
	bad[n / 2] = '.';
	assert_int_equal(decode(bad, &c), TK_ERR);
	free(bad);

	/* Padding, whitespace and trailing junk are refused. */
	char buf[256];
	snprintf(buf, sizeof buf, "%s=", good);
	assert_int_equal(decode(buf, &c), TK_ERR);
	snprintf(buf, sizeof buf, "%s==", good);
	assert_int_equal(decode(buf, &c), TK_ERR);
	snprintf(buf, sizeof buf, " %s", good);
	assert_int_equal(decode(buf, &c), TK_ERR);
	snprintf(buf, sizeof buf, "%s\n", good);
	assert_int_equal(decode(buf, &c), TK_ERR);

	/* A truncated cursor is no cursor. */
	assert_int_equal(decode_n(good, n - 1, &c), TK_ERR);
	assert_int_equal(decode_n(good, n / 2, &c), TK_ERR);
	free(good);
}

static void test_rejects_wrong_version(void **state)
{
	(void)state;
	lead_cursor c;
	assert_int_equal(decode_raw("v2\nname\n" ID "\nAda", &c), TK_ERR);
	assert_int_equal(decode_raw("v0\nname\n" ID "\nAda", &c), TK_ERR);
	assert_int_equal(decode_raw("V1\nname\n" ID "\nAda", &c), TK_ERR);
	assert_int_equal(decode_raw("v1 \nname\n" ID "\nAda", &c), TK_ERR);
	assert_int_equal(decode_raw("v10\nname\n" ID "\nAda", &c), TK_ERR);
	assert_int_equal(decode_raw("\nname\n" ID "\nAda", &c), TK_ERR);
	assert_int_equal(decode_raw("1\nname\n" ID "\nAda", &c), TK_ERR);
}

static void test_rejects_unknown_sort(void **state)
{
	(void)state;
	lead_cursor c;
	assert_int_equal(decode_raw("v1\ntitle\n" ID "\nAda", &c), TK_ERR);
	assert_int_equal(decode_raw("v1\n\n" ID "\nAda", &c), TK_ERR);
	assert_int_equal(decode_raw("v1\n-name\n" ID "\nAda", &c), TK_ERR);
	assert_int_equal(decode_raw("v1\nName\n" ID "\nAda", &c), TK_ERR);
	assert_int_equal(decode_raw("v1\nname \n" ID "\nAda", &c), TK_ERR);
	assert_int_equal(decode_raw("v1\ncreated_at\n" ID "\n" TS, &c), TK_ERR);
}

static void test_rejects_bad_timestamp_key(void **state)
{
	(void)state;
	lead_cursor c;
	const char *sorts[] = {"createdAt", "-createdAt", "updatedAt", "-updatedAt"};
	const char *keys[] = {"", "Ada", "yesterday", "now()", "2024-13-01T00:00:00Z",
	                      "2024-02-30T00:00:00Z", "2024-03-01T10:20:30",
	                      "2024-03-01T10:20:30Z'; DROP TABLE leads; --", "1709288430",
	                      /* Only a name key may run on past a newline. */
	                      TS "\n", TS "\njunk", TS "\n" ID, "\n" TS, TS "\r"};
	char raw[256];
	for (size_t s = 0; s < 4; s++) {
		snprintf(raw, sizeof raw, "v1\n%s\n%s\n%s", sorts[s], ID, TS);
		assert_int_equal(decode_raw(raw, &c), TK_OK);
		for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
			snprintf(raw, sizeof raw, "v1\n%s\n%s\n%s", sorts[s], ID, keys[k]);
			if (decode_raw(raw, &c) != TK_ERR)
				fail_msg("sort %s accepted key \"%s\"", sorts[s], keys[k]);
		}
	}
}

static void test_rejects_bad_name_key(void **state)
{
	(void)state;
	lead_cursor c;
	/* Empty. */
	assert_int_equal(decode_raw("v1\nname\n" ID "\n", &c), TK_ERR);

	/* 255 characters are fine, 256 are not. */
	char raw[2048];
	char *p = raw + sprintf(raw, "v1\nname\n" ID "\n");
	memset(p, 'n', 255);
	p[255] = '\0';
	assert_int_equal(decode_raw(raw, &c), TK_OK);
	assert_int_equal(strlen(c.key), 255);
	memset(p, 'n', 256);
	p[256] = '\0';
	assert_int_equal(decode_raw(raw, &c), TK_ERR);

	/* Newlines in the key count as characters like any other. */
	memset(p, '\n', 255);
	p[255] = '\0';
	assert_int_equal(decode_raw(raw, &c), TK_OK);
	assert_int_equal(strlen(c.key), 255);
	memset(p, '\n', 256);
	p[256] = '\0';
	assert_int_equal(decode_raw(raw, &c), TK_ERR);

	/* 256 two-byte characters: 512 bytes, under the byte limit, over the char one. */
	for (size_t i = 0; i < 256; i++)
		memcpy(p + 2 * i, "\xc3\xa9", 2);
	p[512] = '\0';
	assert_int_equal(decode_raw(raw, &c), TK_ERR);

	/* Over CURSOR_KEY_MAX bytes. */
	memset(p, 'n', CURSOR_KEY_MAX + 1);
	p[CURSOR_KEY_MAX + 1] = '\0';
	assert_int_equal(decode_raw(raw, &c), TK_ERR);

	/* Invalid UTF-8 in the key. */
	assert_int_equal(decode_raw("v1\nname\n" ID "\n\xff\xfe", &c), TK_ERR);
	assert_int_equal(decode_raw("v1\nname\n" ID "\n\xed\xa0\x80", &c), TK_ERR);
	assert_int_equal(decode_raw("v1\nname\n" ID "\n\xc0\x80", &c), TK_ERR);
	assert_int_equal(decode_raw("v1\nname\n" ID "\nAda\n\xff", &c), TK_ERR);
}

static void test_rejects_bad_id(void **state)
{
	(void)state;
	lead_cursor c;
	const char *ids[] = {
	    "",
	    "Ada",
	    "not-a-uuid",
	    TS,
	    "123e4567-e89b-12d3-a456-42661417400",
	    "123e4567-e89b-12d3-a456-4266141740000",
	    "123e4567-e89b-12d3-a456-42661417400g",
	    "123e4567e89b12d3a456426614174000",
	    " 123e4567-e89b-12d3-a456-426614174000",
	    "123e4567-e89b-12d3-a456-426614174000 ",
	    "123e4567-e89b-12d3-a456-426614174000\r",
	};
	const char *sorts[] = {"name", "-createdAt"};
	const char *keys[] = {"Ada", TS};
	char raw[256];
	for (size_t s = 0; s < 2; s++) {
		for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
			snprintf(raw, sizeof raw, "v1\n%s\n%s\n%s", sorts[s], ids[i], keys[s]);
			if (decode_raw(raw, &c) != TK_ERR)
				fail_msg("sort %s accepted id \"%s\"", sorts[s], ids[i]);
		}
	}
}

static void test_rejects_missing_parts(void **state)
{
	(void)state;
	lead_cursor c;
	assert_int_equal(decode_raw("v1", &c), TK_ERR);
	assert_int_equal(decode_raw("v1\n", &c), TK_ERR);
	assert_int_equal(decode_raw("v1\nname", &c), TK_ERR);
	assert_int_equal(decode_raw("v1\nname\n", &c), TK_ERR);
	/* No separator before the key: there is no key at all. */
	assert_int_equal(decode_raw("v1\nname\n" ID, &c), TK_ERR);
	assert_int_equal(decode_raw("v1\n-createdAt\n" ID, &c), TK_ERR);
	/* A key but no id. */
	assert_int_equal(decode_raw("v1\nname\nAda", &c), TK_ERR);
	assert_int_equal(decode_raw("v1\n-createdAt\n" TS, &c), TK_ERR);
	assert_int_equal(decode_raw("v1\nname\n\nAda", &c), TK_ERR);
	assert_int_equal(decode_raw("v1\n-createdAt\n\n" TS, &c), TK_ERR);
	/* The separator is there but the key is empty. */
	assert_int_equal(decode_raw("v1\nname\n" ID "\n", &c), TK_ERR);
	assert_int_equal(decode_raw("v1\n-createdAt\n" ID "\n", &c), TK_ERR);
	/* No version or no sort. */
	assert_int_equal(decode_raw("name\n" ID "\nAda", &c), TK_ERR);
	assert_int_equal(decode_raw("v1\n" ID "\nAda", &c), TK_ERR);
	/* Only separators. */
	assert_int_equal(decode_raw("\n\n\n", &c), TK_ERR);
	assert_int_equal(decode_raw("\n\n\n\n", &c), TK_ERR);
	assert_int_equal(decode_raw("v1\n\n\n", &c), TK_ERR);
}

static void test_newlines_after_the_id_are_key_text(void **state)
{
	(void)state;
	lead_cursor c;
	/* The key is everything after the third newline, newlines included. */
	assert_int_equal(decode_raw("v1\nname\n" ID "\nAda\nLovelace", &c), TK_OK);
	assert_string_equal(c.key, "Ada\nLovelace");
	assert_string_equal(c.id, ID);
	assert_int_equal(decode_raw("v1\nname\n" ID "\nAda\n", &c), TK_OK);
	assert_string_equal(c.key, "Ada\n");
	assert_int_equal(decode_raw("v1\nname\n" ID "\n\nAda", &c), TK_OK);
	assert_string_equal(c.key, "\nAda");
	assert_int_equal(decode_raw("v1\nname\n" ID "\n\n", &c), TK_OK);
	assert_string_equal(c.key, "\n");

	/* A name that ends in something id-shaped does not replace the id. */
	assert_int_equal(
	    decode_raw("v1\nname\n" ID "\nAda\n00000000-0000-0000-0000-000000000000", &c), TK_OK);
	assert_string_equal(c.id, ID);
	assert_string_equal(c.key, "Ada\n00000000-0000-0000-0000-000000000000");
	/* Nor does a name that looks like another cursor change the sort. */
	assert_int_equal(decode_raw("v1\nname\n" ID "\nv1\n-createdAt\n" ID "\n" TS, &c), TK_OK);
	assert_int_equal(c.sort, LEAD_SORT_NAME_ASC);
	assert_string_equal(c.key, "v1\n-createdAt\n" ID "\n" TS);
}

static void test_rejects_embedded_newline_tricks(void **state)
{
	(void)state;
	lead_cursor c;
	/* A newline smuggled into a fixed-form part splits it. */
	assert_int_equal(decode_raw("v1\n-created\nAt\n" ID "\n" TS, &c), TK_ERR);
	assert_int_equal(decode_raw("v1\nname\n123e4567\n-e89b-12d3-a456-426614174000\nAda", &c),
	                 TK_ERR);
	assert_int_equal(decode_raw("v\n1\nname\n" ID "\nAda", &c), TK_ERR);
	/* CRLF line endings are not the format. */
	assert_int_equal(decode_raw("v1\r\nname\r\n" ID "\r\nAda", &c), TK_ERR);
	assert_int_equal(decode_raw("v1\nname\r\n" ID "\nAda", &c), TK_ERR);
	assert_int_equal(decode_raw("v1\nname\n" ID "\r\nAda", &c), TK_ERR);
	assert_int_equal(decode_raw("v1\nname\n" ID "\nAda\r", &c), TK_OK); /* CR is key text */
	assert_string_equal(c.key, "Ada\r");
	assert_int_equal(decode_raw("v1\n-createdAt\n" ID "\n" TS "\r\n", &c), TK_ERR);
	/* A NUL byte must not cut the text short of its validation. */
	static const char nul_in_key[] = "v1\nname\n" ID "\nA\0da";
	assert_int_equal(decode_raw_n(nul_in_key, sizeof nul_in_key - 1, &c), TK_ERR);
	static const char nul_after_key[] = "v1\nname\n" ID "\nAda\0junk";
	assert_int_equal(decode_raw_n(nul_after_key, sizeof nul_after_key - 1, &c), TK_ERR);
	static const char nul_after_ts[] = "v1\n-createdAt\n" ID "\n" TS "\0junk";
	assert_int_equal(decode_raw_n(nul_after_ts, sizeof nul_after_ts - 1, &c), TK_ERR);
	static const char nul_after_id[] = "v1\nname\n" ID "\0\nAda";
	assert_int_equal(decode_raw_n(nul_after_id, sizeof nul_after_id - 1, &c), TK_ERR);
	static const char nul_after_version[] = "v1\0\nname\n" ID "\nAda";
	assert_int_equal(decode_raw_n(nul_after_version, sizeof nul_after_version - 1, &c), TK_ERR);
}

static void test_rejects_over_long_input(void **state)
{
	(void)state;
	lead_cursor c;
	/* Decodable base64 one character over the limit, and much more. */
	size_t sizes[] = {CURSOR_MAX_ENCODED + 1, CURSOR_MAX_ENCODED + 4, 64 * 1024};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		char *text = malloc(sizes[i]);
		assert_non_null(text);
		memset(text, 'A', sizes[i]);
		assert_int_equal(decode_n(text, sizes[i], &c), TK_ERR);
		free(text);
	}

	/* A well-formed cursor whose raw text is too long to be one we issued. */
	size_t rawlen = CURSOR_MAX_ENCODED;
	char *raw = malloc(rawlen + 1);
	assert_non_null(raw);
	int head = sprintf(raw, "v1\nname\n" ID "\n");
	memset(raw + head, 'n', rawlen - (size_t)head);
	raw[rawlen] = '\0';
	assert_int_equal(decode_raw(raw, &c), TK_ERR);
	free(raw);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sort_names_round_trip),
	    cmocka_unit_test(test_sort_parse_rejects_unknown),
	    cmocka_unit_test_setup_teardown(test_round_trip_every_sort, arena_setup,
	                                    arena_teardown),
	    cmocka_unit_test_setup_teardown(test_round_trip_normalizes_id, arena_setup,
	                                    arena_teardown),
	    cmocka_unit_test_setup_teardown(test_round_trip_other_timestamp_forms, arena_setup,
	                                    arena_teardown),
	    cmocka_unit_test_setup_teardown(test_round_trip_name_keys, arena_setup, arena_teardown),
	    cmocka_unit_test_setup_teardown(test_round_trip_longest_four_byte_name, arena_setup,
	                                    arena_teardown),
	    cmocka_unit_test_setup_teardown(test_round_trip_name_with_newline, arena_setup,
	                                    arena_teardown),
	    cmocka_unit_test(test_handmade_raw_is_accepted),
	    cmocka_unit_test(test_rejects_old_part_order),
	    cmocka_unit_test(test_rejects_bad_base64),
	    cmocka_unit_test(test_rejects_wrong_version),
	    cmocka_unit_test(test_rejects_unknown_sort),
	    cmocka_unit_test(test_rejects_bad_timestamp_key),
	    cmocka_unit_test(test_rejects_bad_name_key),
	    cmocka_unit_test(test_rejects_bad_id),
	    cmocka_unit_test(test_rejects_missing_parts),
	    cmocka_unit_test(test_newlines_after_the_id_are_key_text),
	    cmocka_unit_test(test_rejects_embedded_newline_tricks),
	    cmocka_unit_test(test_rejects_over_long_input),
	};
	return cmocka_run_group_tests_name("cursor", tests, NULL, NULL);
}
