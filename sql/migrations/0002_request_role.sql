-- 0002_request_role.sql - what the request role may do, and nothing more.
--
-- The request role (tekup_app) must exist before migrating: LOGIN, not
-- superuser, NOBYPASSRLS, not the owner.  The embedded cluster creates it; on
-- an external server the operator does (see README "Database roles").

DO $$
DECLARE
    r record;
BEGIN
    SELECT rolsuper, rolbypassrls INTO r FROM pg_roles WHERE rolname = 'tekup_app';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role tekup_app does not exist'
            USING HINT = 'CREATE ROLE tekup_app LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD ...';
    END IF;
    IF r.rolsuper OR r.rolbypassrls THEN
        RAISE EXCEPTION 'role tekup_app must be NOSUPERUSER NOBYPASSRLS';
    END IF;
    IF current_user = 'tekup_app' THEN
        RAISE EXCEPTION 'migrations must run as the schema owner, not as tekup_app';
    END IF;
END $$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO tekup_app;

GRANT SELECT ON tenants, tenant_settings TO tekup_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON leads, activities TO tekup_app;
GRANT EXECUTE ON FUNCTION current_tenant_id(), current_app_user_id() TO tekup_app;
-- Trigger functions run as the invoking role.
GRANT EXECUTE ON FUNCTION forbid_tenant_id_change(), leads_track_status() TO tekup_app;

-- Resolving an API key: the one narrow door into api_keys and tenants for the
-- request role.  It takes a SHA-256 hash (never the key), returns only the
-- active tenant the unrevoked, unexpired key belongs to, and records
-- last_used_at at most once a minute per key (the server caches results, so
-- this runs once per key per cache period, not once per request).
CREATE FUNCTION resolve_api_key(p_key_hash bytea)
    RETURNS TABLE (tenant_id uuid, tenant_name text, enabled_features jsonb)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
BEGIN
    UPDATE api_keys k SET last_used_at = now()
     WHERE k.key_hash = p_key_hash
       AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute');
    RETURN QUERY
    SELECT t.id, t.name::text, t.enabled_features
      FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
     WHERE k.key_hash = p_key_hash
       AND k.revoked_at IS NULL
       AND (k.expires_at IS NULL OR k.expires_at > now())
       AND t.status = 'active';
END $$;
REVOKE ALL ON FUNCTION resolve_api_key(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION resolve_api_key(bytea) TO tekup_app;

-- resolve_api_key runs as the owner; FORCE ROW LEVEL SECURITY binds the owner
-- too, so the owner must be able to bypass it (BYPASSRLS or superuser).
DO $$
BEGIN
    IF NOT (SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'the schema owner (%) must have BYPASSRLS', current_user
            USING HINT = 'ALTER ROLE ' || current_user || ' BYPASSRLS (as a superuser)';
    END IF;
END $$;
