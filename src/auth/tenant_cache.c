/*
 * tenant_cache.c - key -> tenant resolution and cache (see tenant_cache.h).
 *
 * The cache itself is a tk_ttl_cache keyed by the key's SHA-256: it only
 * saves work, so losing an entry is always safe.
 */
#include "auth/tenant_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/apikey.h"
#include "auth/features.h"
#include "db/tx.h"
#include "util/alloc.h"
#include "util/ttl_cache.h"
#include "util/validate.h"

#define TENANT_CACHE_SLOTS 4096

_Static_assert(TK_APIKEY_HASH_LEN == TK_TTL_CACHE_KEY_LEN, "keys are SHA-256 hashes");

struct tenant_cache {
	long ttl_ms;
	tk_ttl_cache *entries;
};

tenant_cache *tenant_cache_create(long ttl_ms)
{
	tenant_cache *c = tk_calloc(1, sizeof *c);
	c->ttl_ms = ttl_ms;
	c->entries = tk_ttl_cache_create(TENANT_CACHE_SLOTS, sizeof(tk_tenant));
	return c;
}

void tenant_cache_destroy(tenant_cache *c)
{
	if (c == NULL)
		return;
	tk_ttl_cache_destroy(c->entries);
	free(c);
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
	return tk_ttl_cache_get(c->entries, hash, out);
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
	if (tk_ttl_cache_get(c->entries, hash, out))
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
			tk_ttl_cache_put(c->entries, hash, out, c->ttl_ms);
		}
	}
	db_tx_clear(tx);
	return st;
}
