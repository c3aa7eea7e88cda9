/*
 * alloc.c - abort-on-OOM allocation wrappers (see alloc.h).
 */
#include "util/alloc.h"

#include <limits.h>
#include <malloc.h>
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

/*
 * glibc gives the top of an arena back to the kernel (madvise, or a
 * shorter heap) once more than the trim threshold of it is free: 128 KiB
 * at first, raised only after a block too large for the heap (mmap'd, 128
 * KiB at first) is freed.  A worker that reads a batch of deep pages
 * (bench W5 at 64 connections) frees a few hundred KiB of results after
 * every batch, so the next batch faulted the same pages in again: 1,900 to
 * 18,800 page faults per 5 s, and 96-100 us of CPU per request against 70
 * with the memory kept (bench/README, "Freed memory kept by each worker").
 * Setting the trim threshold switches glibc's own adjustment off, so the
 * mmap threshold is set with it: blocks under `bytes` stay in the heap
 * rather than being mapped and unmapped on every use.  Peak RSS is
 * unchanged: an arena keeps only what it once used.
 */
void tk_alloc_keep_freed_memory(size_t bytes)
{
#if defined(M_TRIM_THRESHOLD) && defined(M_MMAP_THRESHOLD)
	const char *tunables = getenv("GLIBC_TUNABLES");
	if ((tunables != NULL && strstr(tunables, "glibc.malloc.") != NULL) ||
	    getenv("MALLOC_TRIM_THRESHOLD_") != NULL || getenv("MALLOC_MMAP_THRESHOLD_") != NULL)
		return; /* the operator tunes malloc */
	if (bytes > INT_MAX || mallopt(M_TRIM_THRESHOLD, (int)bytes) != 1 ||
	    mallopt(M_MMAP_THRESHOLD, (int)bytes) != 1)
		log_debug("malloc: mallopt refused the trim or mmap threshold");
#else
	(void)bytes;
#endif
}
