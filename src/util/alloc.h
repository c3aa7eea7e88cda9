/*
 * alloc.h - allocation wrappers that never return NULL.
 *
 * Running out of memory is not a condition a request handler can recover
 * from sensibly, so these abort with a message (as Redis' zmalloc and
 * PostgreSQL's palloc do).  Multiplications are overflow-checked.
 * Every pointer returned is owned by the caller and released with free().
 */
#ifndef TK_ALLOC_H
#define TK_ALLOC_H

#include <stddef.h>

void *tk_malloc(size_t size);
void *tk_calloc(size_t count, size_t size);
void *tk_realloc(void *ptr, size_t size);
void *tk_reallocarray(void *ptr, size_t count, size_t size);
char *tk_strdup(const char *s);
char *tk_strndup(const char *s, size_t n);

/* Lets each malloc arena keep up to `bytes` of freed memory instead of
 * handing it back to the kernel after every large free, and keeps blocks
 * under `bytes` in the heap.  For the server: see alloc.c for why.  Does
 * nothing when the operator tunes malloc (GLIBC_TUNABLES with
 * glibc.malloc.*, MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_THRESHOLD_). */
void tk_alloc_keep_freed_memory(size_t bytes);

#endif
