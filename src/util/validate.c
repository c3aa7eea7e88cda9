/*
 * validate.c - validators for untrusted text (see validate.h).
 */
#include "util/validate.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static bool is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool tk_is_uuid(const char *s, size_t len)
{
	if (s == NULL || len != TK_UUID_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!is_hex((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

bool tk_uuid_normalize(const char *s, size_t len, char out[TK_UUID_LEN + 1])
{
	if (!tk_is_uuid(s, len))
		return false;
	for (size_t i = 0; i < TK_UUID_LEN; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[TK_UUID_LEN] = '\0';
	return true;
}

size_t tk_utf8_char_length(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	if (len == 0 || s[0] == 0)
		return 0;
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t n;
	unsigned int cp;
	if (c >= 0xC2 && c <= 0xDF) {
		n = 1;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 2;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 3;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len <= n)
		return 0;
	for (size_t k = 1; k <= n; k++) {
		if ((s[k] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[k] & 0x3F);
	}
	if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n + 1;
}

bool tk_is_utf8(const char *str, size_t len)
{
	size_t i = 0;
	while (i < len) {
		/* ASCII, nearly all of what is checked (every access-log field),
		 * without a call per byte. */
		unsigned char c = (unsigned char)str[i];
		if (c != 0 && c < 0x80) {
			i++;
			continue;
		}
		size_t n = tk_utf8_char_length(str + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

size_t tk_utf8_length(const char *s, size_t len)
{
	size_t count = 0;
	for (size_t i = 0; i < len; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			count++;
	return count;
}

bool tk_has_control(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < len; i++)
		if (u[i] < 0x20 || u[i] == 0x7F ||
		    (u[i] == 0xC2 && i + 1 < len && u[i + 1] >= 0x80 && u[i + 1] <= 0x9F))
			return true;
	return false;
}

bool tk_is_email(const char *s, size_t len)
{
	if (s == NULL || len < 3 || len > 255)
		return false;
	const char *at = memchr(s, '@', len);
	if (at == NULL || at == s)
		return false;
	size_t local_len = (size_t)(at - s);
	const char *domain = at + 1;
	size_t domain_len = len - local_len - 1;
	if (local_len > 64 || domain_len < 3 || memchr(domain, '@', domain_len))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c == 0x7F || c == '<' || c == '>' || c == ',' || c == ';' ||
		    c == '"' || c == '\\' || c == '(' || c == ')' || c == '[' || c == ']')
			return false;
	}
	const char *dot = memchr(domain, '.', domain_len);
	if (dot == NULL || dot == domain || domain[domain_len - 1] == '.')
		return false;
	for (size_t i = 1; i < domain_len; i++)
		if (domain[i] == '.' && domain[i - 1] == '.')
			return false;
	return tk_is_utf8(s, len);
}

bool tk_parse_int(const char *s, long min, long max, long *out)
{
	if (s == NULL || *s == '\0' || strlen(s) > 18)
		return false;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	errno = 0;
	char *end = NULL;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == NULL || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int two_digit(const char *s)
{
	return (s[0] - '0') * 10 + (s[1] - '0');
}

static bool two_digit_in(const char *s, int lo, int hi)
{
	int v = two_digit(s);
	return v >= lo && v <= hi;
}

/* Proleptic Gregorian, as PostgreSQL reckons every date. */
static int days_in_month(int year, int month)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	return month == 2 && leap ? 29 : days[month - 1];
}

/*
 * Only timestamps PostgreSQL takes as timestamptz pass, so a value that gets
 * this far never fails in the database: real calendar dates in years
 * 0001-9999, and UTC offsets within PostgreSQL's +/-15:59.
 */
bool tk_is_timestamp(const char *s, size_t len)
{
	/* YYYY-MM-DD */
	if (len < 10 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
	    !digits(s + 8, 2))
		return false;
	int year = two_digit(s) * 100 + two_digit(s + 2);
	int month = two_digit(s + 5);
	if (year < 1 || month < 1 || month > 12 ||
	    !two_digit_in(s + 8, 1, days_in_month(year, month)))
		return false;
	if (len == 10)
		return true;
	/* THH:MM:SS[.frac](Z|+HH:MM|-HH:MM) */
	if (len < 20 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s + 11, 2) ||
	    s[13] != ':' || !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2) ||
	    !two_digit_in(s + 11, 0, 23) || !two_digit_in(s + 14, 0, 59) ||
	    !two_digit_in(s + 17, 0, 60))
		return false;
	/* PostgreSQL takes second 60 (rolling into the next minute) but no time
	 * of day past 24:00:00, so 23:59:60.5 fails there; a leap second's
	 * fraction must be zero whatever the hour, the simpler rule. */
	bool leap_second = two_digit(s + 17) == 60;
	size_t i = 19;
	if (s[i] == '.') {
		size_t start = ++i;
		while (i < len && s[i] >= '0' && s[i] <= '9') {
			if (leap_second && s[i] != '0')
				return false;
			i++;
		}
		if (i == start || i - start > 9)
			return false;
	}
	if (i == len)
		return false;
	if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == len)
		return true;
	if ((s[i] == '+' || s[i] == '-') && len - i == 6 && digits(s + i + 1, 2) &&
	    s[i + 3] == ':' && digits(s + i + 4, 2) && two_digit_in(s + i + 1, 0, 15) &&
	    two_digit_in(s + i + 4, 0, 59))
		return true;
	return false;
}

void tk_uuid_v4(char out[TK_UUID_LEN + 1])
{
	unsigned char b[16];
	randombytes_buf(b, sizeof b);
	b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* RFC 4122 variant */
	snprintf(out, TK_UUID_LEN + 1,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
	         b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
	         b[15]);
}
