/*
 * json_span.c - a value's own text inside a JSON document (see json_span.h).
 */
#include "util/json_span.h"

#include <string.h>

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && is_ws(*p))
		p++;
	return p;
}

/* p at the opening quote; returns just past the closing one (or end). */
static const char *skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return end;
}

/* p at a value's first character; returns just past the value (or end). */
static const char *skip_value(const char *p, const char *end)
{
	if (p >= end)
		return end;
	if (*p == '"')
		return skip_string(p, end);
	if (*p != '{' && *p != '[') {
		while (p < end && !is_ws(*p) && *p != ',' && *p != '}' && *p != ']')
			p++;
		return p;
	}
	int depth = 0;
	while (p < end) {
		if (*p == '"') {
			p = skip_string(p, end);
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if ((*p == '}' || *p == ']') && --depth == 0)
			return p + 1;
		p++;
	}
	return end;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Whether the string token [p, stop) (quotes included) decodes to name. */
static bool key_equals(const char *p, const char *stop, const char *name)
{
	const char *q = p + 1, *last = stop - 1; /* inside the quotes */
	for (; q < last; q++, name++) {
		char c = *q;
		if (c == '\\') {
			if (++q >= last)
				return false;
			switch (*q) {
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u': {
				if (last - q < 5)
					return false;
				int code = 0;
				for (int i = 1; i <= 4; i++) {
					int d = hex_digit(q[i]);
					if (d < 0)
						return false;
					code = code * 16 + d;
				}
				if (code == 0 || code >= 0x80) /* name is ASCII */
					return false;
				c = (char)code;
				q += 4;
				break;
			}
			default: c = *q; /* " \ / */
			}
		}
		if (*name == '\0' || c != *name)
			return false;
	}
	return *name == '\0';
}

bool tk_json_member_span(const char *doc, size_t len, const char *name, const char **value,
                         size_t *value_len)
{
	const char *end = doc + len;
	const char *p = skip_ws(doc, end);
	if (p >= end || *p != '{')
		return false;
	p = skip_ws(p + 1, end);
	while (p < end && *p == '"') {
		const char *key = p;
		p = skip_string(p, end);
		bool match = key_equals(key, p, name);
		p = skip_ws(p, end);
		if (p >= end || *p != ':')
			return false;
		const char *v = skip_ws(p + 1, end);
		p = skip_value(v, end);
		if (match) {
			*value = v;
			*value_len = (size_t)(p - v);
			return p > v;
		}
		p = skip_ws(p, end);
		if (p >= end || *p != ',')
			return false;
		p = skip_ws(p + 1, end);
	}
	return false;
}

/* \uXXXX at p (p[0] == '\\'), or -1. */
static long escaped_code(const char *p, const char *end)
{
	if (end - p < 6 || p[1] != 'u')
		return -1;
	long code = 0;
	for (int i = 2; i < 6; i++) {
		int d = hex_digit(p[i]);
		if (d < 0)
			return -1;
		code = code * 16 + d;
	}
	return code;
}

/* The bytes the escape at p (p[0] == '\\') takes in compact JSON as
 * PostgreSQL writes it; *used: how many bytes of text it took. */
static size_t escape_size(const char *p, const char *end, size_t *used)
{
	if (end - p < 2) { /* a lone backslash: not JSON */
		*used = 1;
		return 1;
	}
	long code = escaped_code(p, end);
	*used = 2;
	if (code < 0) /* \" \\ \b \f \n \r \t stay escaped; \/ is a plain / */
		return p[1] == '/' ? 1 : 2;
	*used = 6;
	if (code == '\b' || code == '\f' || code == '\n' || code == '\r' || code == '\t')
		return 2; /* written as \b \f \n \r \t */
	if (code < 0x20)
		return 6; /* stays \u00XX */
	if (code == '"' || code == '\\')
		return 2;
	if (code < 0x80)
		return 1;
	if (code < 0x800)
		return 2;
	if (code >= 0xD800 && code < 0xDC00) { /* a surrogate pair: one 4-byte character */
		long low = escaped_code(p + 6, end);
		if (p + 6 < end && p[6] == '\\' && low >= 0xDC00 && low < 0xE000) {
			*used = 12;
			return 4;
		}
	}
	return 3;
}

size_t tk_json_value_count(const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	size_t n = 1;
	while (p < end) {
		if (*p == '"') {
			p = skip_string(p, end);
			continue;
		}
		n += *p == '{' || *p == '[' || *p == ',';
		p++;
	}
	return n;
}

tk_status tk_json_check_values(const char *text, size_t len, tk_error *err)
{
	if (tk_json_value_count(text, len) <= TK_JSON_MAX_VALUES)
		return TK_OK;
	return tk_error_set(err, 413, "payload_too_large", NULL,
	                    "the JSON body holds more than %d values", TK_JSON_MAX_VALUES);
}

size_t tk_json_compact_length(const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	size_t n = 0;
	bool in_string = false;
	while (p < end) {
		if (in_string && *p == '\\') {
			size_t used;
			n += escape_size(p, end, &used);
			p += used;
			continue;
		}
		if (*p == '"')
			in_string = !in_string;
		n += in_string || !is_ws(*p);
		p++;
	}
	return n;
}
