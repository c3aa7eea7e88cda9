/*
 * test_validate.c - unit tests for util/validate.h: UUIDs, UTF-8, e-mail
 * addresses, integers and timestamps (including the calendar and offset
 * limits PostgreSQL enforces).
 *
 * Every validator takes an explicit length, so inputs are copied into
 * exactly-sized heap buffers (no terminating NUL): AddressSanitizer then
 * reports any read past the length the caller gave.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/validate.h"

/* A heap copy of s[0..len) with no terminator, so over-reads are caught. */
static char *exact(const char *s, size_t len)
{
	char *p = malloc(len ? len : 1);
	assert_non_null(p);
	memcpy(p, s, len);
	return p;
}

static bool uuid_n(const char *s, size_t len)
{
	char *p = exact(s, len);
	bool ok = tk_is_uuid(p, len);
	free(p);
	return ok;
}

static bool uuid(const char *s)
{
	return uuid_n(s, strlen(s));
}

static bool utf8_n(const char *s, size_t len)
{
	char *p = exact(s, len);
	bool ok = tk_is_utf8(p, len);
	free(p);
	return ok;
}

static bool utf8(const char *s)
{
	return utf8_n(s, strlen(s));
}

static bool email_n(const char *s, size_t len)
{
	char *p = exact(s, len);
	bool ok = tk_is_email(p, len);
	free(p);
	return ok;
}

static bool email(const char *s)
{
	return email_n(s, strlen(s));
}

static bool ts(const char *s)
{
	size_t len = strlen(s);
	char *p = exact(s, len);
	bool ok = tk_is_timestamp(p, len);
	free(p);
	return ok;
}

static void test_uuid_accepts_canonical_forms(void **state)
{
	(void)state;
	assert_true(uuid("123e4567-e89b-12d3-a456-426614174000"));
	assert_true(uuid("00000000-0000-0000-0000-000000000000"));
	assert_true(uuid("ABCDEF01-2345-6789-ABCD-EF0123456789"));
	assert_true(uuid("AbCdEf01-2345-6789-aBcD-eF0123456789"));
}

static void test_uuid_rejects_malformed(void **state)
{
	(void)state;
	assert_false(uuid(""));
	assert_false(uuid("123e4567-e89b-12d3-a456-42661417400"));   /* 35 */
	assert_false(uuid("123e4567-e89b-12d3-a456-4266141740000")); /* 37 */
	assert_false(uuid("123e4567e89b-12d3-a456-4266141740000"));  /* dash moved */
	assert_false(uuid("123e4567-e89b-12d3-a456_426614174000"));
	assert_false(uuid("123e4567-e89b-12d3-a456-42661417400g"));
	assert_false(uuid("g23e4567-e89b-12d3-a456-426614174000"));
	assert_false(uuid("{23e4567-e89b-12d3-a456-42661417400}"));
	assert_false(uuid("123e4567-e89b-12d3-a456-42661417400 "));
	assert_false(uuid("123e4567+e89b-12d3-a456-426614174000"));
	assert_false(uuid("123e456789b0-12d3-a456-426614174000-"));
	assert_false(uuid("------------------------------------"));
	/* An embedded NUL within the given length is not hex. */
	assert_false(uuid_n("123e4567-e89b-12d3-a456-42661417400\0", 36));
	assert_false(tk_is_uuid(NULL, 36));
	/* Length is authoritative: a valid prefix is not a UUID. */
	assert_false(uuid_n("123e4567-e89b-12d3-a456-426614174000", 35));
}

static void test_uuid_normalize_lowercases(void **state)
{
	(void)state;
	char out[TK_UUID_LEN + 1];
	const char *in = "ABCDEF01-2345-6789-ABCD-EF0123456789";
	char *p = exact(in, TK_UUID_LEN);
	assert_true(tk_uuid_normalize(p, TK_UUID_LEN, out));
	free(p);
	assert_string_equal(out, "abcdef01-2345-6789-abcd-ef0123456789");
	assert_int_equal(strlen(out), TK_UUID_LEN);

	assert_true(tk_uuid_normalize("123e4567-e89b-12d3-a456-426614174000", 36, out));
	assert_string_equal(out, "123e4567-e89b-12d3-a456-426614174000");
}

static void test_uuid_normalize_rejects_invalid(void **state)
{
	(void)state;
	char out[TK_UUID_LEN + 1];
	assert_false(tk_uuid_normalize("not-a-uuid", 10, out));
	assert_false(tk_uuid_normalize("ABCDEF01-2345-6789-ABCD-EF012345678Z", 36, out));
	assert_false(tk_uuid_normalize(NULL, 36, out));
}

static void test_utf8_accepts_valid(void **state)
{
	(void)state;
	assert_true(utf8_n("", 0));
	assert_true(utf8("plain ascii ~\x7f"));
	assert_true(utf8("\xc2\x80"));         /* U+0080, smallest 2-byte */
	assert_true(utf8("caf\xc3\xa9"));      /* é */
	assert_true(utf8("\xdf\xbf"));         /* U+07FF */
	assert_true(utf8("\xe0\xa0\x80"));     /* U+0800, smallest 3-byte */
	assert_true(utf8("\xe2\x82\xac"));     /* € */
	assert_true(utf8("\xed\x9f\xbf"));     /* U+D7FF, just below surrogates */
	assert_true(utf8("\xee\x80\x80"));     /* U+E000, just above surrogates */
	assert_true(utf8("\xef\xbf\xbf"));     /* U+FFFF */
	assert_true(utf8("\xf0\x90\x80\x80")); /* U+10000, smallest 4-byte */
	assert_true(utf8("\xf0\x9f\x98\x80")); /* 😀 */
	assert_true(utf8("\xf4\x8f\xbf\xbf")); /* U+10FFFF, the last code point */
	assert_true(utf8("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"));
}

static void test_utf8_rejects_overlong(void **state)
{
	(void)state;
	assert_false(utf8("\xc0\x80"));         /* overlong NUL */
	assert_false(utf8("\xc0\xaf"));         /* overlong '/' */
	assert_false(utf8("\xc1\xbf"));         /* overlong U+007F */
	assert_false(utf8("\xe0\x80\x80"));     /* overlong NUL, 3 bytes */
	assert_false(utf8("\xe0\x80\xaf"));     /* overlong '/', 3 bytes */
	assert_false(utf8("\xe0\x9f\xbf"));     /* overlong U+07FF */
	assert_false(utf8("\xf0\x80\x80\x80")); /* overlong NUL, 4 bytes */
	assert_false(utf8("\xf0\x80\x80\xaf")); /* overlong '/', 4 bytes */
	assert_false(utf8("\xf0\x8f\xbf\xbf")); /* overlong U+FFFF */
}

static void test_utf8_rejects_surrogates(void **state)
{
	(void)state;
	assert_false(utf8("\xed\xa0\x80"));             /* U+D800 */
	assert_false(utf8("\xed\xad\xbf"));             /* U+DB7F */
	assert_false(utf8("\xed\xb0\x80"));             /* U+DC00 */
	assert_false(utf8("\xed\xbf\xbf"));             /* U+DFFF */
	assert_false(utf8("\xed\xa0\xbd\xed\xb8\x80")); /* CESU-8 pair for 😀 */
}

static void test_utf8_rejects_above_max(void **state)
{
	(void)state;
	assert_false(utf8("\xf4\x90\x80\x80")); /* U+110000 */
	assert_false(utf8("\xf4\xbf\xbf\xbf"));
	assert_false(utf8("\xf5\x80\x80\x80"));
	assert_false(utf8("\xf7\xbf\xbf\xbf"));
	assert_false(utf8("\xf8\x88\x80\x80\x80")); /* old 5-byte form */
	assert_false(utf8("\xfc\x84\x80\x80\x80\x80"));
	assert_false(utf8("\xfe"));
	assert_false(utf8("\xff"));
}

static void test_utf8_rejects_truncated_and_stray(void **state)
{
	(void)state;
	/* Truncated at the end of the buffer (exact-size buffers catch over-reads). */
	assert_false(utf8("\xc3"));
	assert_false(utf8("abc\xc3"));
	assert_false(utf8("\xe2\x82"));
	assert_false(utf8("\xe2"));
	assert_false(utf8("\xf0\x9f\x98"));
	assert_false(utf8("\xf0\x9f"));
	assert_false(utf8("\xf0"));
	/* The given length cuts a valid sequence. */
	assert_false(utf8_n("\xe2\x82\xac", 2));
	assert_false(utf8_n("\xf0\x9f\x98\x80", 3));
	/* A sequence interrupted by a non-continuation byte. */
	assert_false(utf8("\xc3\x28"));
	assert_false(utf8("\xe2\x28\xa1"));
	assert_false(utf8("\xe2\x82\x28"));
	assert_false(utf8("\xf0\x28\x8c\xbc"));
	assert_false(utf8("\xf0\x9f\x98\x28"));
	assert_false(utf8("\xc3\xc3\xa9"));
	/* Stray continuation bytes. */
	assert_false(utf8("\x80"));
	assert_false(utf8("a\xbf"));
	assert_false(utf8("\xc3\xa9\xa9"));
}

static void test_utf8_rejects_nul(void **state)
{
	(void)state;
	assert_false(utf8_n("\0", 1));
	assert_false(utf8_n("a\0b", 3));
	assert_false(utf8_n("abc\0", 4));
	/* The NUL is outside the given length: fine. */
	assert_true(utf8_n("abc\0", 3));
}

static void test_utf8_length_counts_code_points(void **state)
{
	(void)state;
	assert_int_equal(tk_utf8_length("", 0), 0);
	assert_int_equal(tk_utf8_length("abc", 3), 3);
	assert_int_equal(tk_utf8_length("caf\xc3\xa9", 5), 4);
	assert_int_equal(tk_utf8_length("\xe2\x82\xac", 3), 1);
	assert_int_equal(tk_utf8_length("\xf0\x9f\x98\x80", 4), 1);
	assert_int_equal(tk_utf8_length("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z", 11), 5);
	/* Only the given length is counted. */
	assert_int_equal(tk_utf8_length("abcdef", 2), 2);

	char big[255 * 4];
	for (size_t i = 0; i < sizeof big; i += 4)
		memcpy(big + i, "\xf0\x9f\x98\x80", 4);
	assert_int_equal(tk_utf8_length(big, sizeof big), 255);
}

static void test_has_control(void **state)
{
	(void)state;
	static const char *const clean[] = {"",
	                                    "Acme Corp",
	                                    "caf\xc3\xa9",
	                                    "\xc2\xa0nbsp",
	                                    "\xc2\xa9 sign",
	                                    "\xe2\x80\xa8 line sep",
	                                    "\xf0\x9f\x98\x80",
	                                    "~!@#$%^&*()"};
	for (size_t i = 0; i < sizeof clean / sizeof clean[0]; i++)
		if (tk_has_control(clean[i], strlen(clean[i])))
			fail_msg("'%s' has a control character?", clean[i]);
	static const char *const dirty[] = {"Acme\nCorp", "Acme\r",      "\tx",
	                                    "a\x7f",      "\x1b[31m",    "next\xc2\x85line",
	                                    "\xc2\x80",   "\xc2\x9f end"};
	for (size_t i = 0; i < sizeof dirty / sizeof dirty[0]; i++)
		if (!tk_has_control(dirty[i], strlen(dirty[i])))
			fail_msg("control character not found in case %zu", i);
	assert_true(tk_has_control("a\0b", 3));
	/* Only the given length is read. */
	assert_false(tk_has_control("ab\n", 2));
}

static void test_email_accepts_plausible(void **state)
{
	(void)state;
	assert_true(email("a@b.co"));
	assert_true(email("ada@example.com"));
	assert_true(email("first.last+tag@mail.example.org"));
	assert_true(email("user_name-1@sub-domain.example.io"));
	assert_true(email("j\xc3\xb6rg@m\xc3\xbcller.de")); /* UTF-8 is allowed */
}

static void test_email_rejects_malformed(void **state)
{
	(void)state;
	assert_false(email(""));
	assert_false(email("a@"));
	assert_false(email("ab"));
	assert_false(email("plainaddress"));
	assert_false(email("@example.com"));
	assert_false(email("ada@"));
	assert_false(email("ada@b"));
	assert_false(email("ada@bc"));
	assert_false(email("ada@localhost"));
	assert_false(email("ada@.example.com"));
	assert_false(email("ada@example."));
	assert_false(email("ada@example..com"));
	assert_false(email("ada@@example.com"));
	assert_false(email("ada@ex@ample.com"));
	assert_false(email("ada lovelace@example.com"));
	assert_false(email("ada@exa mple.com"));
	assert_false(email(" ada@example.com"));
	assert_false(email("ada@example.com "));
	assert_false(email("ada@example.com\n"));
	assert_false(email("ada\t@example.com"));
	assert_false(email("ada\x7f@example.com"));
	assert_false(email("<ada@example.com>"));
	assert_false(email("ada,bob@example.com"));
	assert_false(email("ada;bob@example.com"));
	assert_false(email("\"ada\"@example.com"));
	assert_false(email("ada\\@example.com"));
	assert_false(email("ada(x)@example.com"));
	assert_false(email("ada@[127.0.0.1]"));
	assert_false(email("\xff@example.com"));         /* invalid UTF-8 */
	assert_false(email("\xed\xa0\x80@example.com")); /* surrogate */
	assert_false(email_n("ada\0@example.com", 16));
	assert_false(email_n("ada@example.com\0", 16));
	assert_false(tk_is_email(NULL, 10));
}

static void test_email_length_limits(void **state)
{
	(void)state;
	char buf[300];

	/* Local part: 64 accepted, 65 rejected. */
	memset(buf, 'a', 64);
	strcpy(buf + 64, "@example.com");
	assert_true(email(buf));
	memset(buf, 'a', 65);
	strcpy(buf + 65, "@example.com");
	assert_false(email(buf));

	/* Whole address: 255 accepted, 256 rejected. */
	memcpy(buf, "ada@", 4);
	memset(buf + 4, 'd', 247);
	strcpy(buf + 251, ".com");
	assert_int_equal(strlen(buf), 255);
	assert_true(email(buf));
	memset(buf + 4, 'd', 248);
	strcpy(buf + 252, ".com");
	assert_int_equal(strlen(buf), 256);
	assert_false(email(buf));
}

static void test_parse_int_accepts_digits(void **state)
{
	(void)state;
	long v = -1;
	assert_true(tk_parse_int("0", 0, 10, &v));
	assert_int_equal(v, 0);
	assert_true(tk_parse_int("42", 0, 100, &v));
	assert_int_equal(v, 42);
	assert_true(tk_parse_int("007", 0, 100, &v));
	assert_int_equal(v, 7);
	assert_true(tk_parse_int("999999999999999999", 0, 999999999999999999L, &v));
	assert_int_equal(v, 999999999999999999L);
}

static void test_parse_int_bounds_are_inclusive(void **state)
{
	(void)state;
	long v = 0;
	assert_true(tk_parse_int("1", 1, 65535, &v));
	assert_int_equal(v, 1);
	assert_true(tk_parse_int("65535", 1, 65535, &v));
	assert_int_equal(v, 65535);
	v = 123;
	assert_false(tk_parse_int("0", 1, 65535, &v));
	assert_false(tk_parse_int("65536", 1, 65535, &v));
	assert_int_equal(v, 123); /* untouched on failure */
}

static void test_parse_int_rejects_signs_spaces_junk(void **state)
{
	(void)state;
	long v = 99;
	const char *bad[] = {
	    "",    "-1",  "+1",  "-0",  " 1",  "1 ",  "\t1", "1\n", "1a",  "a1",
	    "0x1", "1.0", "1e3", "1,0", "1_0", "--1", "abc", "١",   "1 2", "+",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (tk_parse_int(bad[i], -1000, 1000, &v))
			fail_msg("accepted \"%s\"", bad[i]);
	}
	assert_int_equal(v, 99);
	assert_false(tk_parse_int(NULL, 0, 10, &v));
}

static void test_parse_int_rejects_overflow(void **state)
{
	(void)state;
	long v = 5;
	assert_false(tk_parse_int("9223372036854775807", 0, LONG_MAX, &v));
	assert_false(tk_parse_int("9223372036854775808", 0, LONG_MAX, &v));
	assert_false(tk_parse_int("99999999999999999999999999999", 0, LONG_MAX, &v));
	assert_false(tk_parse_int("18446744073709551617", 0, LONG_MAX, &v));
	assert_int_equal(v, 5);
}

static void test_timestamp_accepts_dates_and_date_times(void **state)
{
	(void)state;
	assert_true(ts("2024-01-31"));
	assert_true(ts("1999-12-01"));
	assert_true(ts("2024-01-31T12:34:56Z"));
	assert_true(ts("2024-01-31t12:34:56z"));
	assert_true(ts("2024-01-31 12:34:56Z"));
	assert_true(ts("2024-01-31T00:00:00Z"));
	assert_true(ts("2024-01-31T23:59:59Z"));
	assert_true(ts("2016-12-31T23:59:60Z")); /* leap second */
	assert_true(ts("2024-01-31T12:34:56+02:00"));
	assert_true(ts("2024-01-31T12:34:56-05:30"));
	assert_true(ts("2024-01-31T12:34:56+00:00"));
	assert_true(ts("2024-01-31T12:34:56.1Z"));
	assert_true(ts("2024-01-31T12:34:56.123456Z"));
	assert_true(ts("2024-01-31T12:34:56.123456789Z"));
	assert_true(ts("2024-01-31T12:34:56.5+01:00"));
}

static void test_timestamp_rejects_bad_dates(void **state)
{
	(void)state;
	assert_false(ts(""));
	assert_false(ts("2024"));
	assert_false(ts("2024-01"));
	assert_false(ts("2024-1-31"));
	assert_false(ts("2024-01-3"));
	assert_false(ts("24-01-31"));
	assert_false(ts("2024/01/31"));
	assert_false(ts("2024-00-10"));
	assert_false(ts("2024-13-01"));
	assert_false(ts("2024-99-01"));
	assert_false(ts("2024-01-00"));
	assert_false(ts("2024-01-32"));
	assert_false(ts("2024-0a-10"));
	assert_false(ts("abcd-ef-gh"));
	assert_false(ts("+2024-01-31"));
	assert_false(ts("2024-01-31X"));
	assert_false(ts("2024-01-31T"));
	assert_false(ts("2024-01-31 "));
}

static void test_timestamp_rejects_bad_times_and_zones(void **state)
{
	(void)state;
	assert_false(ts("2024-01-31T24:00:00Z"));
	assert_false(ts("2024-01-31T99:00:00Z"));
	assert_false(ts("2024-01-31T12:60:00Z"));
	assert_false(ts("2024-01-31T12:00:61Z"));
	assert_false(ts("2024-01-31T1:00:00Z"));
	assert_false(ts("2024-01-31T12:34Z"));
	assert_false(ts("2024-01-31T12-34-56Z"));
	assert_false(ts("2024-01-31X12:34:56Z"));
	/* A zone is required. */
	assert_false(ts("2024-01-31T12:34:56"));
	assert_false(ts("2024-01-31T12:34:56.123"));
	/* Fractions: at least one and at most nine digits. */
	assert_false(ts("2024-01-31T12:34:56.Z"));
	assert_false(ts("2024-01-31T12:34:56.1234567890Z"));
	assert_false(ts("2024-01-31T12:34:56,5Z"));
	/* Offsets: +HH:MM only, in range. */
	assert_false(ts("2024-01-31T12:34:56+2:00"));
	assert_false(ts("2024-01-31T12:34:56+0200"));
	assert_false(ts("2024-01-31T12:34:56+02"));
	assert_false(ts("2024-01-31T12:34:56+02:00:00"));
	assert_false(ts("2024-01-31T12:34:56+24:00"));
	assert_false(ts("2024-01-31T12:34:56+02:60"));
	assert_false(ts("2024-01-31T12:34:56+ab:cd"));
	assert_false(ts("2024-01-31T12:34:56 +02:00"));
	/* Trailing garbage. */
	assert_false(ts("2024-01-31T12:34:56ZZ"));
	assert_false(ts("2024-01-31T12:34:56Z "));
	assert_false(ts("2024-01-31T12:34:56UTC"));
	assert_false(ts("2024-01-31T12:34:56+02:00Z"));
	assert_false(ts("2024-01-31T12:34:56Z; DROP TABLE leads"));
}

static void test_timestamp_checks_days_per_month(void **state)
{
	(void)state;
	static const char *const last_days[] = {
	    "2023-01-31", "2023-02-28", "2023-03-31", "2023-04-30", "2023-05-31", "2023-06-30",
	    "2023-07-31", "2023-08-31", "2023-09-30", "2023-10-31", "2023-11-30", "2023-12-31",
	};
	static const char *const day_after[] = {
	    "2023-01-32", "2023-02-29", "2023-03-32", "2023-04-31", "2023-05-32", "2023-06-31",
	    "2023-07-32", "2023-08-32", "2023-09-31", "2023-10-32", "2023-11-31", "2023-12-32",
	};
	for (size_t i = 0; i < 12; i++) {
		if (!ts(last_days[i]))
			fail_msg("rejected \"%s\"", last_days[i]);
		if (ts(day_after[i]))
			fail_msg("accepted \"%s\"", day_after[i]);
	}
	assert_false(ts("2024-02-30"));
	assert_false(ts("2024-04-31"));
	assert_false(ts("2024-04-31T12:00:00Z"));
	assert_false(ts("2024-11-31T00:00:00+01:00"));
}

static void test_timestamp_checks_leap_years(void **state)
{
	(void)state;
	assert_true(ts("2024-02-29"));           /* divisible by 4 */
	assert_true(ts("2024-02-29T23:59:59Z")); /* in a date-time too */
	assert_true(ts("2000-02-29"));           /* divisible by 400 */
	assert_true(ts("1600-02-29"));
	assert_true(ts("0004-02-29"));
	assert_false(ts("2023-02-29")); /* not divisible by 4 */
	assert_false(ts("2023-02-29T00:00:00Z"));
	assert_false(ts("1900-02-29")); /* divisible by 100, not 400 */
	assert_false(ts("2100-02-29"));
	assert_false(ts("1500-02-29")); /* Gregorian, as PostgreSQL, not Julian */
	assert_false(ts("2024-02-30"));
}

static void test_timestamp_checks_year_range(void **state)
{
	(void)state;
	assert_true(ts("0001-01-01"));
	assert_true(ts("0001-01-01T00:00:00Z"));
	assert_true(ts("9999-12-31"));
	assert_true(ts("9999-12-31T23:59:59.999999Z"));
	assert_false(ts("0000-01-01"));
	assert_false(ts("0000-12-31T23:59:59Z"));
	assert_false(ts("0000-02-29"));
}

static void test_timestamp_checks_leap_second(void **state)
{
	(void)state;
	/* PostgreSQL rolls second 60 into the next minute... */
	assert_true(ts("2024-06-30T23:59:60Z"));
	assert_true(ts("2024-06-30T23:59:60.0Z"));
	assert_true(ts("2024-06-30T23:59:60.000000000+02:00"));
	/* ...but refuses anything past it. */
	assert_false(ts("2024-06-30T23:59:60.000001Z"));
	assert_false(ts("2024-06-30T23:59:60.5Z"));
	assert_false(ts("2024-06-30T23:59:60.100000000Z"));
	assert_false(ts("2024-06-30T23:59:61Z"));
	/* A non-zero fraction of an ordinary second is fine. */
	assert_true(ts("2024-06-30T23:59:59.999999999Z"));
}

static void test_timestamp_checks_offset_range(void **state)
{
	(void)state;
	assert_true(ts("2024-01-31T12:00:00+14:00"));
	assert_true(ts("2024-01-31T12:00:00-12:00"));
	assert_true(ts("2024-01-31T12:00:00+15:59"));
	assert_true(ts("2024-01-31T12:00:00-15:59"));
	assert_true(ts("2024-01-31T12:00:00-00:00"));
	assert_false(ts("2024-01-31T12:00:00+16:00"));
	assert_false(ts("2024-01-31T12:00:00-16:00"));
	assert_false(ts("2024-01-31T12:00:00+23:59"));
	assert_false(ts("2024-01-31T12:00:00+15:60"));
	assert_false(ts("2024-01-31T12:00:00-99:00"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uuid_accepts_canonical_forms),
	    cmocka_unit_test(test_uuid_rejects_malformed),
	    cmocka_unit_test(test_uuid_normalize_lowercases),
	    cmocka_unit_test(test_uuid_normalize_rejects_invalid),
	    cmocka_unit_test(test_utf8_accepts_valid),
	    cmocka_unit_test(test_utf8_rejects_overlong),
	    cmocka_unit_test(test_utf8_rejects_surrogates),
	    cmocka_unit_test(test_utf8_rejects_above_max),
	    cmocka_unit_test(test_utf8_rejects_truncated_and_stray),
	    cmocka_unit_test(test_utf8_rejects_nul),
	    cmocka_unit_test(test_utf8_length_counts_code_points),
	    cmocka_unit_test(test_has_control),
	    cmocka_unit_test(test_email_accepts_plausible),
	    cmocka_unit_test(test_email_rejects_malformed),
	    cmocka_unit_test(test_email_length_limits),
	    cmocka_unit_test(test_parse_int_accepts_digits),
	    cmocka_unit_test(test_parse_int_bounds_are_inclusive),
	    cmocka_unit_test(test_parse_int_rejects_signs_spaces_junk),
	    cmocka_unit_test(test_parse_int_rejects_overflow),
	    cmocka_unit_test(test_timestamp_accepts_dates_and_date_times),
	    cmocka_unit_test(test_timestamp_rejects_bad_dates),
	    cmocka_unit_test(test_timestamp_rejects_bad_times_and_zones),
	    cmocka_unit_test(test_timestamp_checks_days_per_month),
	    cmocka_unit_test(test_timestamp_checks_leap_years),
	    cmocka_unit_test(test_timestamp_checks_year_range),
	    cmocka_unit_test(test_timestamp_checks_leap_second),
	    cmocka_unit_test(test_timestamp_checks_offset_range),
	};
	return cmocka_run_group_tests_name("validate", tests, NULL, NULL);
}
