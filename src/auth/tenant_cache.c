/*
 * tenant_cache.c - key -> tenant resolution and cache (see tenant_cache.h).
 *
 * An open-addressing table of TENANT_CACHE_SLOTS entries under one rwlock.
 * When a slot's probe sequence is full the oldest entry in it is replaced:
 * the cache only saves work, so losing an entry is always safe.
 */
#include "auth/tenant_cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/apikey.h"
#include "auth/features.h"
#include "db/tx.h"
#include "util/alloc.h"
#include "util/validate.h"

#define TENANT_CACHE_SLOTS 4096
#define TENANT_CACHE_PROBE 8

typedef struct cache_entry {
	unsigned char hash[TK_APIKEY_HASH_LEN];
	long long expires_ms; /* 0: empty */
	tk_tenant tenant;
} cache_entry;

struct tenant_cache {
	long ttl_ms;
	pthread_rwlock_t lock;
	cache_entry entries[TENANT_CACHE_SLOTS];
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

tenant_cache *tenant_cache_create(long ttl_ms)
{
	tenant_cache *c = tk_calloc(1, sizeof *c);
	c->ttl_ms = ttl_ms;
	pthread_rwlock_init(&c->lock, NULL);
	return c;
}

void tenant_cache_destroy(tenant_cache *c)
{
	if (c == NULL)
		return;
	pthread_rwlock_destroy(&c->lock);
	free(c);
}

static size_t slot_of(const unsigned char *hash)
{
	size_t s;
	memcpy(&s, hash, sizeof s);
	return s % TENANT_CACHE_SLOTS;
}

static bool cache_get(tenant_cache *c, const unsigned char *hash, tk_tenant *out)
{
	bool found = false;
	long long now = now_ms();
	pthread_rwlock_rdlock(&c->lock);
	size_t base = slot_of(hash);
	for (size_t i = 0; i < TENANT_CACHE_PROBE; i++) {
		cache_entry *e = &c->entries[(base + i) % TENANT_CACHE_SLOTS];
		if (e->expires_ms > now && memcmp(e->hash, hash, TK_APIKEY_HASH_LEN) == 0) {
			*out = e->tenant;
			found = true;
			break;
		}
	}
	pthread_rwlock_unlock(&c->lock);
	return found;
}

static void cache_put(tenant_cache *c, const unsigned char *hash, const tk_tenant *t)
{
	if (c->ttl_ms <= 0)
		return;
	long long now = now_ms();
	pthread_rwlock_wrlock(&c->lock);
	size_t base = slot_of(hash);
	cache_entry *victim = NULL;
	for (size_t i = 0; i < TENANT_CACHE_PROBE; i++) {
		cache_entry *e = &c->entries[(base + i) % TENANT_CACHE_SLOTS];
		if (e->expires_ms <= now || memcmp(e->hash, hash, TK_APIKEY_HASH_LEN) == 0) {
			victim = e;
			break;
		}
		if (victim == NULL || e->expires_ms < victim->expires_ms)
			victim = e;
	}
	memcpy(victim->hash, hash, TK_APIKEY_HASH_LEN);
	victim->tenant = *t;
	victim->expires_ms = now + c->ttl_ms;
	pthread_rwlock_unlock(&c->lock);
}

static tk_status invalid_key(tk_error *err)
{
	return tk_error_set(err, 401, "invalid_tenant_key", NULL, "the tenant key is not valid");
}

bool tenant_cache_lookup(tenant_cache *c, const char *key, tk_tenant *out)
{
	if (key == NULL || key[0] == '\0')
		return false;
	size_t len = strlen(key);
	if (!tk_apikey_is_well_formed(key, len))
		return false;
	unsigned char hash[TK_APIKEY_HASH_LEN];
	tk_apikey_hash(key, len, hash);
	return cache_get(c, hash, out);
}

tk_status tenant_cache_resolve(tenant_cache *c, db_conn *conn, tk_arena *arena, const char *key,
                               tk_tenant *out, tk_error *err)
{
	if (key == NULL || key[0] == '\0')
		return tk_error_set(err, 401, "missing_tenant_key", NULL,
		                    "send the tenant's API key in the X-Tenant-Key header");
	size_t len = strlen(key);
	if (!tk_apikey_is_well_formed(key, len))
		return invalid_key(err);
	unsigned char hash[TK_APIKEY_HASH_LEN];
	tk_apikey_hash(key, len, hash);
	if (cache_get(c, hash, out))
		return TK_OK;

	char hash_hex[67];
	tk_apikey_hash_hex(hash, hash_hex);
	const char *params[] = {hash_hex};
	db_tx *tx = db_tx_new(arena, conn);
	int q = db_tx_add(tx,
	                  "SELECT tenant_id, tenant_name, enabled_features::text"
	                  " FROM resolve_api_key($1::bytea)",
	                  1, params);
	tk_status st = db_tx_run(tx, err);
	if (st == TK_OK) {
		PGresult *r = db_tx_result(tx, q);
		if (PQntuples(r) != 1 ||
		    !tk_uuid_normalize(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0),
		                       out->id)) {
			st = invalid_key(err);
		} else {
			snprintf(out->name, sizeof out->name, "%s", PQgetvalue(r, 0, 1));
			out->features = tk_features_from_json(PQgetvalue(r, 0, 2),
			                                      (size_t)PQgetlength(r, 0, 2));
			cache_put(c, hash, out);
		}
	}
	db_tx_clear(tx);
	return st;
}
