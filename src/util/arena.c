/*
 * arena.c - chunked bump allocator (see arena.h).
 *
 * Chunks are 8 KiB unless one allocation needs more; a request that builds
 * a few SQL strings and parameters usually lives in its first chunk.
 */
#include "util/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

#define ARENA_CHUNK_SIZE 8192
#define ARENA_ALIGN      16

typedef struct arena_chunk {
	struct arena_chunk *next;
	size_t used;
	size_t size;
	_Alignas(ARENA_ALIGN) unsigned char data[];
} arena_chunk;

struct tk_arena {
	arena_chunk *head;
};

tk_arena *tk_arena_create(void)
{
	return tk_calloc(1, sizeof(tk_arena));
}

void *tk_arena_alloc(tk_arena *a, size_t size)
{
	size_t rounded;
	if (__builtin_add_overflow(size, ARENA_ALIGN - 1, &rounded))
		abort();
	rounded &= ~(size_t)(ARENA_ALIGN - 1);
	if (rounded == 0)
		rounded = ARENA_ALIGN;
	arena_chunk *c = a->head;
	if (c == NULL || c->size - c->used < rounded) {
		size_t size_chunk = rounded > ARENA_CHUNK_SIZE ? rounded : ARENA_CHUNK_SIZE;
		c = tk_malloc(sizeof(arena_chunk) + size_chunk);
		c->used = 0;
		c->size = size_chunk;
		c->next = a->head;
		a->head = c;
	}
	void *p = c->data + c->used;
	c->used += rounded;
	return p;
}

void *tk_arena_calloc(tk_arena *a, size_t count, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(count, size, &total))
		abort();
	void *p = tk_arena_alloc(a, total);
	memset(p, 0, total);
	return p;
}

char *tk_arena_strndup(tk_arena *a, const char *s, size_t n)
{
	char *p = tk_arena_alloc(a, n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *tk_arena_strdup(tk_arena *a, const char *s)
{
	return tk_arena_strndup(a, s, strlen(s));
}

/* Formats straight into the free end of the newest chunk, so a string that
 * fits (the usual case: SQL text, numbers) is formatted once; a longer one
 * is formatted again into an allocation of its exact size. */
char *tk_arena_printf(tk_arena *a, const char *fmt, ...)
{
	arena_chunk *c = a->head;
	char *dst = c != NULL ? (char *)c->data + c->used : NULL;
	size_t room = c != NULL ? c->size - c->used : 0;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(dst, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		return tk_arena_strdup(a, "");
	char *p = tk_arena_alloc(a, (size_t)n + 1);
	if ((size_t)n < room) {
		/* Chunk sizes and offsets are multiples of ARENA_ALIGN, so the
		 * allocation is the bytes just written; copied if it ever is not. */
		if (p != dst)
			memcpy(p, dst, (size_t)n + 1);
		return p;
	}
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

void tk_arena_destroy(tk_arena *a)
{
	if (a == NULL)
		return;
	arena_chunk *c = a->head;
	while (c) {
		arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	free(a);
}
