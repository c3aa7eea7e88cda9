/*
 * buf.h - a growable byte buffer, the one string-building type in tekup.
 *
 * A tk_buf owns its data; tk_buf_free releases it.  The data is always
 * NUL-terminated so it can be handed to C string functions, but may also
 * contain NUL bytes (len is authoritative).  Appends abort on OOM.
 */
#ifndef TK_BUF_H
#define TK_BUF_H

#include <stddef.h>

#include "util/status.h"

typedef struct tk_buf {
	char *data;
	size_t len;
	size_t cap;
} tk_buf;

#define TK_BUF_INIT                                                                                \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}

void tk_buf_reserve(tk_buf *b, size_t extra);
void tk_buf_append(tk_buf *b, const void *data, size_t len);
void tk_buf_puts(tk_buf *b, const char *s);
void tk_buf_putc(tk_buf *b, char c);
/* The arguments must not point into b: it is formatted in place. */
void tk_buf_printf(tk_buf *b, const char *fmt, ...) TK_PRINTF(2, 3);
/* Appends s (of length len) as a JSON string literal, quotes included. */
void tk_buf_json_string(tk_buf *b, const char *s, size_t len);
void tk_buf_reset(tk_buf *b);
/* Transfers ownership of the data to the caller; b becomes empty. */
char *tk_buf_steal(tk_buf *b);
void tk_buf_free(tk_buf *b);

#endif
