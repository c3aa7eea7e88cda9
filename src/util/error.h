/*
 * error.h - structured API errors, as PostgreSQL's ereport(errcode, errmsg).
 *
 * A tk_error carries what the HTTP client is told: a stable machine code,
 * the HTTP status, a lower-case message saying what to fix, and optionally
 * the field or parameter at fault.  Messages never carry internals (SQL,
 * SQLSTATEs, paths); those go to the log instead.
 */
#ifndef TK_ERROR_H
#define TK_ERROR_H

#include <stdbool.h>

#include "util/status.h"

#define TK_ERROR_MESSAGE_MAX 256
#define TK_ERROR_FIELD_MAX   512

typedef struct tk_error {
	int http_status;  /* 0 while no error is set */
	const char *code; /* static string, e.g. "validation_error" */
	char message[TK_ERROR_MESSAGE_MAX];
	char field[TK_ERROR_FIELD_MAX]; /* valid when has_field; may be "" */
	bool has_field;
	int retry_after;   /* seconds for Retry-After, 0 for none */
	const char *allow; /* static Allow header value for 405 */
} tk_error;

/* Sets e and returns TK_ERR so callers can write: return tk_error_set(...). */
tk_status tk_error_set(tk_error *e, int http_status, const char *code, const char *field,
                       const char *fmt, ...) TK_PRINTF(5, 6);

/* Convenience for the most common case: 400 validation_error on a field. */
tk_status tk_error_invalid(tk_error *e, const char *field, const char *fmt, ...) TK_PRINTF(3, 4);

/* 503 database_unavailable with Retry-After: 1, the one answer for "the
 * database cannot be reached or was lost" wherever it is found. */
tk_status tk_error_database_unavailable(tk_error *e);

#endif
