/*
 * alloc.c - abort-on-OOM allocation wrappers (see alloc.h).
 */
#include "util/alloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

static void tk_oom(size_t size) __attribute__((noreturn));

static void tk_oom(size_t size)
{
	tk_log_flush(); /* this thread's access lines, already allocated */
	fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"out of memory allocating %zu bytes\"}\n",
	        size);
	abort();
}

void *tk_malloc(size_t size)
{
	void *p = malloc(size ? size : 1);
	if (p == NULL)
		tk_oom(size);
	return p;
}

void *tk_calloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);
	if (p == NULL)
		tk_oom(count * size);
	return p;
}

void *tk_realloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);
	if (p == NULL)
		tk_oom(size);
	return p;
}

void *tk_reallocarray(void *ptr, size_t count, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(count, size, &total))
		tk_oom(SIZE_MAX);
	return tk_realloc(ptr, total);
}

char *tk_strdup(const char *s)
{
	return tk_strndup(s, strlen(s));
}

char *tk_strndup(const char *s, size_t n)
{
	char *p = tk_malloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}
