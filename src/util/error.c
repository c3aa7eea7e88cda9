/*
 * error.c - filling tk_error (see error.h).
 */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void error_fill(tk_error *e, int http_status, const char *code, const char *field,
                       const char *fmt, va_list ap) TK_PRINTF(5, 0);

static void error_fill(tk_error *e, int http_status, const char *code, const char *field,
                       const char *fmt, va_list ap)
{
	e->http_status = http_status;
	e->code = code;
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	e->has_field = field != NULL;
	e->field[0] = '\0';
	if (field) {
		/* Cut long names at a character boundary, never inside one. */
		size_t n = strlen(field);
		if (n >= sizeof e->field) {
			n = sizeof e->field - 1;
			while (n > 0 && ((unsigned char)field[n] & 0xC0) == 0x80)
				n--;
		}
		memcpy(e->field, field, n);
		e->field[n] = '\0';
	}
}

tk_status tk_error_set(tk_error *e, int http_status, const char *code, const char *field,
                       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_fill(e, http_status, code, field, fmt, ap);
	va_end(ap);
	return TK_ERR;
}

tk_status tk_error_invalid(tk_error *e, const char *field, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_fill(e, 400, "validation_error", field, fmt, ap);
	va_end(ap);
	return TK_ERR;
}

tk_status tk_error_database_unavailable(tk_error *e)
{
	e->retry_after = 1;
	return tk_error_set(e, 503, "database_unavailable", NULL,
	                    "the database is unavailable; retry shortly");
}
