/*
 * buf.c - growable byte buffer (see buf.h).
 */
#include "util/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

void tk_buf_reserve(tk_buf *b, size_t extra)
{
	size_t need;
	if (__builtin_add_overflow(b->len, extra + 1, &need))
		need = SIZE_MAX;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	b->data = tk_realloc(b->data, cap);
	b->cap = cap;
}

void tk_buf_append(tk_buf *b, const void *data, size_t len)
{
	tk_buf_reserve(b, len);
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void tk_buf_puts(tk_buf *b, const char *s)
{
	tk_buf_append(b, s, strlen(s));
}

void tk_buf_putc(tk_buf *b, char c)
{
	tk_buf_append(b, &c, 1);
}

/* Formats straight into the spare capacity (made room for at least 256
 * bytes and the NUL), so the usual fragment is formatted once; a longer
 * one a second time after growing. */
void tk_buf_printf(tk_buf *b, const char *fmt, ...)
{
	tk_buf_reserve(b, 256);
	size_t room = b->cap - b->len;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b->data + b->len, room, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->data[b->len] = '\0';
		return;
	}
	if ((size_t)n >= room) {
		tk_buf_reserve(b, (size_t)n);
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/* Runs of characters that need no escape (the whole string, usually) are
 * copied at once; only quotes, backslashes and control characters are
 * written one by one. */
void tk_buf_json_string(tk_buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	tk_buf_reserve(b, len + 2);
	b->data[b->len++] = '"';
	size_t run = 0; /* start of the pending unescaped run */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		if (i > run)
			tk_buf_append(b, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': tk_buf_append(b, "\\\"", 2); break;
		case '\\': tk_buf_append(b, "\\\\", 2); break;
		case '\n': tk_buf_append(b, "\\n", 2); break;
		case '\r': tk_buf_append(b, "\\r", 2); break;
		case '\t': tk_buf_append(b, "\\t", 2); break;
		default: {
			char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			tk_buf_append(b, esc, 6);
		}
		}
	}
	if (len > run)
		tk_buf_append(b, s + run, len - run);
	tk_buf_putc(b, '"');
}

void tk_buf_reset(tk_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

char *tk_buf_steal(tk_buf *b)
{
	char *d = b->data;
	if (d == NULL)
		d = tk_strdup("");
	b->data = NULL;
	b->len = b->cap = 0;
	return d;
}

void tk_buf_free(tk_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
