/*
 * arena.h - a per-request memory arena (PostgreSQL memory contexts, small).
 *
 * Everything a request allocates while it is handled comes from its arena
 * and is released at once by tk_arena_destroy when the request completes,
 * so handlers never free piecemeal and cannot leak across requests.
 * Pointers returned are borrowed from the arena: valid until it is
 * destroyed, never to be passed to free().
 */
#ifndef TK_ARENA_H
#define TK_ARENA_H

#include <stddef.h>

typedef struct tk_arena tk_arena;

tk_arena *tk_arena_create(void);
void *tk_arena_alloc(tk_arena *a, size_t size);
void *tk_arena_calloc(tk_arena *a, size_t count, size_t size);
char *tk_arena_strdup(tk_arena *a, const char *s);
char *tk_arena_strndup(tk_arena *a, const char *s, size_t n);
char *tk_arena_printf(tk_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tk_arena_destroy(tk_arena *a);

#endif
