/*
 * tenant_cache.h - resolving X-Tenant-Key to a tenant, with a short cache.
 *
 * Resolution goes through the database's resolve_api_key() (SECURITY
 * DEFINER; the request role cannot read api_keys).  Successful results are
 * cached in memory for at most the configured TTL (<= 5 s), so a revoked key
 * or a suspended tenant stops working within that bound while a busy key
 * costs one database lookup per TTL instead of one per request.  The
 * tenant's enabled features are cached with it, so a feature change also
 * takes effect within the TTL.  Failures
 * are not cached.  Entries are keyed by the key's SHA-256, never the key.
 *
 * Thread-safe.
 */
#ifndef TK_AUTH_TENANT_CACHE_H
#define TK_AUTH_TENANT_CACHE_H

#include "db/pool.h"
#include "http/request.h"
#include "util/error.h"

typedef struct tenant_cache tenant_cache;

tenant_cache *tenant_cache_create(long ttl_ms);
void tenant_cache_destroy(tenant_cache *cache);

/*
 * Resolves key (untrusted header text, may be NULL) to *out.  401
 * missing_tenant_key when absent; 401 invalid_tenant_key when malformed,
 * unknown, revoked, expired or the tenant is not active (one error, no hint
 * which); 503 when the database cannot be asked.
 */
tk_status tenant_cache_resolve(tenant_cache *cache, db_conn *conn, tk_arena *arena, const char *key,
                               tk_tenant *out, tk_error *err) TK_MUST_CHECK;

/* The cached tenant for key, without asking the database: false when the
 * key is absent, malformed or not cached (then call tenant_cache_resolve). */
bool tenant_cache_lookup(tenant_cache *cache, const char *key, tk_tenant *out);

#endif
