/*
 * ttl_cache.h - a bounded, thread-safe map from a 32-byte hash to a small
 * fixed-size value, each entry valid until its own deadline.
 *
 * For caches that only save work (the tenant key cache, the session
 * cache): an entry may be dropped at any time, so a full table replaces
 * the entry closest to expiry instead of growing.  Keys are hashes
 * (SHA-256 of a secret), never the secret itself.  Values are copied in
 * and out; the cache owns no pointers.
 */
#ifndef TK_UTIL_TTL_CACHE_H
#define TK_UTIL_TTL_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#define TK_TTL_CACHE_KEY_LEN 32

typedef struct tk_ttl_cache tk_ttl_cache;

/* slots: the most entries kept; value_size: bytes per value. */
tk_ttl_cache *tk_ttl_cache_create(size_t slots, size_t value_size);
void tk_ttl_cache_destroy(tk_ttl_cache *c);

/* Copies the value for key into out (value_size bytes) while it is valid. */
bool tk_ttl_cache_get(tk_ttl_cache *c, const unsigned char key[TK_TTL_CACHE_KEY_LEN], void *out);
/* Stores value for key, valid for ttl_ms from now (nothing when <= 0). */
void tk_ttl_cache_put(tk_ttl_cache *c, const unsigned char key[TK_TTL_CACHE_KEY_LEN],
                      const void *value, long long ttl_ms);
/* Drops key's entry, if any. */
void tk_ttl_cache_remove(tk_ttl_cache *c, const unsigned char key[TK_TTL_CACHE_KEY_LEN]);

#endif
