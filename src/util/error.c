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
	if (field)
		snprintf(e->field, sizeof e->field, "%s", field);
	else
		e->field[0] = '\0';
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
