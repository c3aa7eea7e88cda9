/*
 * ttl_cache.c - bounded hash -> value cache with deadlines (see ttl_cache.h).
 *
 * Open addressing over a flat array under one rwlock; a key lives in one of
 * TTL_CACHE_PROBE consecutive slots from the one its first bytes pick (the
 * keys are cryptographic hashes, so those bytes are uniform).
 */
#include "util/ttl_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/alloc.h"

#define TTL_CACHE_PROBE 8

typedef struct entry_head {
	unsigned char key[TK_TTL_CACHE_KEY_LEN];
	long long expires_ms; /* 0: empty */
} entry_head;

struct tk_ttl_cache {
	size_t slots;
	size_t probes; /* TTL_CACHE_PROBE, or fewer in a smaller table */
	size_t value_size;
	size_t entry_size; /* head + value, aligned */
	pthread_rwlock_t lock;
	unsigned char *entries;
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

tk_ttl_cache *tk_ttl_cache_create(size_t slots, size_t value_size)
{
	tk_ttl_cache *c = tk_calloc(1, sizeof *c);
	c->slots = slots > 0 ? slots : 1;
	c->probes = c->slots < TTL_CACHE_PROBE ? c->slots : TTL_CACHE_PROBE;
	c->value_size = value_size;
	size_t align = _Alignof(max_align_t);
	c->entry_size = (sizeof(entry_head) + value_size + align - 1) / align * align;
	c->entries = tk_calloc(c->slots, c->entry_size);
	pthread_rwlock_init(&c->lock, NULL);
	return c;
}

void tk_ttl_cache_destroy(tk_ttl_cache *c)
{
	if (c == NULL)
		return;
	pthread_rwlock_destroy(&c->lock);
	free(c->entries);
	free(c);
}

static entry_head *slot(tk_ttl_cache *c, const unsigned char *key, size_t probe)
{
	size_t s;
	memcpy(&s, key, sizeof s);
	return (entry_head *)(c->entries + ((s % c->slots + probe) % c->slots) * c->entry_size);
}

static void *value_of(entry_head *e)
{
	return (unsigned char *)e + sizeof *e;
}

bool tk_ttl_cache_get(tk_ttl_cache *c, const unsigned char key[TK_TTL_CACHE_KEY_LEN], void *out)
{
	bool found = false;
	long long now = now_ms();
	pthread_rwlock_rdlock(&c->lock);
	for (size_t i = 0; i < c->probes; i++) {
		entry_head *e = slot(c, key, i);
		if (e->expires_ms > now && memcmp(e->key, key, TK_TTL_CACHE_KEY_LEN) == 0) {
			memcpy(out, value_of(e), c->value_size);
			found = true;
			break;
		}
	}
	pthread_rwlock_unlock(&c->lock);
	return found;
}

void tk_ttl_cache_put(tk_ttl_cache *c, const unsigned char key[TK_TTL_CACHE_KEY_LEN],
                      const void *value, long long ttl_ms)
{
	if (ttl_ms <= 0)
		return;
	long long now = now_ms();
	pthread_rwlock_wrlock(&c->lock);
	/* The key's own entry if it has one (even expired: never a second
	 * copy), else the free or expired one, else the one closest to expiry. */
	entry_head *victim = slot(c, key, 0);
	bool found = false;
	for (size_t i = 0; i < c->probes && !found; i++) {
		entry_head *e = slot(c, key, i);
		if (memcmp(e->key, key, TK_TTL_CACHE_KEY_LEN) == 0) {
			victim = e;
			found = true;
		} else if (e->expires_ms < victim->expires_ms) {
			victim = e; /* free and expired entries have the smallest */
		}
	}
	memcpy(victim->key, key, TK_TTL_CACHE_KEY_LEN);
	memcpy(value_of(victim), value, c->value_size);
	victim->expires_ms = now + ttl_ms;
	pthread_rwlock_unlock(&c->lock);
}

void tk_ttl_cache_remove(tk_ttl_cache *c, const unsigned char key[TK_TTL_CACHE_KEY_LEN])
{
	pthread_rwlock_wrlock(&c->lock);
	for (size_t i = 0; i < c->probes; i++) {
		entry_head *e = slot(c, key, i);
		if (memcmp(e->key, key, TK_TTL_CACHE_KEY_LEN) == 0)
			e->expires_ms = 0;
	}
	pthread_rwlock_unlock(&c->lock);
}
