-- 0011_functions_planned_once.sql - stop re-planning function bodies per query.
--
-- PostgreSQL inlines a LANGUAGE sql function into the calling query only
-- when its body is a single expression without sub-queries.  Any other SQL
-- function is run by fmgr_sql, which parses, analyses and plans its body
-- again in every query that calls it.  json_compact_length() is such a
-- function, and every lead INSERT called it twice (lead_custom_fields_checked
-- and the table's CHECK): 506,000 instructions each, half of a W3
-- transaction's 1,993,000 (callgrind, bench/README.md).  PL/pgSQL keeps a
-- function's compiled form and its statements' plans for the session, so the
-- same bodies in PL/pgSQL are planned once per connection.
--
-- Also, the compact length of a document is never more than its jsonb text
-- length (the text form only adds spaces), so a document whose text fits in
-- 16 KiB is within the limit without measuring it.  The checks take that
-- short cut first.  Same rules, same errors (TKC01), same results.

CREATE OR REPLACE FUNCTION json_compact_length(j jsonb) RETURNS bigint
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN octet_length(j::text) - coalesce((
        SELECT sum(CASE jsonb_typeof(v)
                       WHEN 'object' THEN greatest(2 * (SELECT count(*) FROM jsonb_object_keys(v)) - 1, 0)
                       WHEN 'array' THEN greatest(jsonb_array_length(v) - 1, 0)
                       ELSE 0 END)
          FROM jsonb_path_query(j, 'strict $.**') AS v), 0);
END $$;

CREATE OR REPLACE FUNCTION lead_custom_fields_checked(p jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p IS NULL THEN
        RETURN '{}'::jsonb;
    END IF;
    IF jsonb_typeof(p) <> 'object' THEN
        RAISE EXCEPTION 'customFields must be a JSON object' USING ERRCODE = 'TKC01';
    END IF;
    IF octet_length(p::text) > 16384 AND json_compact_length(p) > 16384 THEN
        RAISE EXCEPTION 'customFields must be at most 16384 bytes' USING ERRCODE = 'TKC01';
    END IF;
    RETURN p;
END $$;

-- PATCH merge: the ARRAY(SELECT ...) kept the SQL version from being inlined.
CREATE OR REPLACE FUNCTION lead_custom_fields_merge(old jsonb, patch jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN lead_custom_fields_checked(
        (old || patch) - ARRAY(SELECT key FROM jsonb_each(patch) WHERE value = 'null'::jsonb));
END $$;

-- Called per row by the activities policies: the EXISTS kept it from being
-- inlined, so every query on activities planned it afresh.
CREATE OR REPLACE FUNCTION activity_lead_visible(p_tenant uuid, p_lead uuid) RETURNS boolean
    LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM leads l WHERE l.tenant_id = p_tenant AND l.id = p_lead);
END $$;

-- The API's view of a user (0008), once per user listed: the FROM kept it
-- from being inlined.
CREATE OR REPLACE FUNCTION user_json(p_tenant uuid, p_user uuid) RETURNS json
    LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT json_build_object(
        'id', u.id, 'tenantId', u.tenant_id, 'email', u.email, 'name', u.name,
        'role', tu.role, 'isActive', u.is_active,
        'createdAt', to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'updatedAt', to_char(u.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'lastLoginAt', to_char(u.last_login_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
      FROM users u JOIN tenant_users tu ON tu.tenant_id = u.tenant_id AND tu.user_id = u.id
     WHERE u.tenant_id = p_tenant AND u.id = p_user);
END $$;

-- Re-adding the constraint re-checks every lead under the migration's lock
-- (0.5 s for the benchmark's 200,000 leads, nearly all through the short cut).
ALTER TABLE leads DROP CONSTRAINT leads_custom_fields_check,
    ADD CONSTRAINT leads_custom_fields_check
    CHECK (jsonb_typeof(custom_fields) = 'object'
           AND (octet_length(custom_fields::text) <= 16384
                OR json_compact_length(custom_fields) <= 16384));
