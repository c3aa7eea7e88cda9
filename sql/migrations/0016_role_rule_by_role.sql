-- 0016_role_rule_by_role.sql - which leads a request may read, decided by
-- the database role it runs as instead of by an expression in every query.
--
-- Before, one SELECT policy served every caller: "(SELECT lead_access_all())
-- OR assigned_to = me OR created_by = me".  PostgreSQL builds that whole
-- expression (an InitPlan, two settings read, two uuid casts) on every
-- execution, even for the integration key, whose first arm is always true.
-- On a single-lead read that was the larger half of what RLS cost: W1 as
-- tekup_app ran 27% more backend instructions than as the owner (bench/
-- README.md, "The cost of RLS"), 35,000 of them the role rule.
--
-- Now a permissive SELECT policy exists per role:
--   * tekup_app (the login role: the integration key, a signed-in admin)
--     reads every lead inside the tenant wall: USING (true), which the
--     planner folds away;
--   * tekup_app_user (a signed-in user who is not an admin; the server sets
--     it per transaction with SET LOCAL ROLE) reads the leads assigned to or
--     created by that user.
-- The RESTRICTIVE tenant wall applies to both, with one check added
-- (below).  Writes keep lead_access() (0008): it reads the settings, so it
-- holds whichever role the server chose.  session_assert (0012) now also checks that a cached
-- session's user runs as the role that matches their tenant role.
--
-- A server older than this migration never switches roles: it would run a
-- plain user's reads as tekup_app, which now reads the whole tenant.  So the
-- leads wall refuses that context: for the login role with a plain user's
-- settings (app.current_user_role = 'user') it compares tenant_id with NULL
-- and matches nothing, reads and writes alike.  A rolling upgrade, or a
-- server started on the older schema, fails closed for plain users until it
-- runs this version.  The check is part of the wall's one-time comparison,
-- evaluated once per statement, not per row: W1 counts 7,000 more
-- instructions per transaction (bench/README.md).
--
-- tekup_app is a member of tekup_app_user (so it may SET ROLE to it) but
-- should not inherit it: NOINHERIT keeps tekup_app_user's policy off
-- tekup_app's queries (with INHERIT both apply, OR-ed to the same answer,
-- at a small cost).  Both roles hold the same privileges; only the
-- policies differ.

DO $$
DECLARE
    r record;
    may_create_roles boolean;
BEGIN
    SELECT rolcreaterole OR rolsuper INTO may_create_roles FROM pg_roles
     WHERE rolname = current_user;
    SELECT rolsuper, rolbypassrls, rolcanlogin INTO r FROM pg_roles
     WHERE rolname = 'tekup_app_user';
    IF NOT FOUND THEN
        IF NOT may_create_roles THEN
            RAISE EXCEPTION 'role tekup_app_user does not exist'
                USING HINT = 'as a superuser: CREATE ROLE tekup_app_user NOLOGIN NOSUPERUSER'
                             ' NOBYPASSRLS; GRANT tekup_app_user TO tekup_app;'
                             ' ALTER ROLE tekup_app NOINHERIT;';
        END IF;
        CREATE ROLE tekup_app_user NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    ELSIF r.rolsuper OR r.rolbypassrls OR r.rolcanlogin THEN
        RAISE EXCEPTION 'role tekup_app_user must be NOLOGIN NOSUPERUSER NOBYPASSRLS';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_auth_members WHERE member = 'tekup_app_user'::regrole) THEN
        RAISE EXCEPTION 'role tekup_app_user must be a member of no role';
    END IF;
    IF NOT pg_has_role('tekup_app', 'tekup_app_user', 'MEMBER') THEN
        IF NOT may_create_roles THEN
            RAISE EXCEPTION 'role tekup_app is not a member of tekup_app_user'
                USING HINT = 'as a superuser: GRANT tekup_app_user TO tekup_app;'
                             ' ALTER ROLE tekup_app NOINHERIT;';
        END IF;
        GRANT tekup_app_user TO tekup_app;
        ALTER ROLE tekup_app NOINHERIT;
    END IF;
END $$;

-- The same privileges as tekup_app, object by object.  A later migration
-- grants to both (tests/integration/test_database.py compares them).
DO $$
DECLARE
    g record;
BEGIN
    GRANT USAGE ON SCHEMA public TO tekup_app_user;
    FOR g IN SELECT c.oid::regclass AS obj, a.privilege_type AS priv
               FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
              WHERE c.relnamespace = 'public'::regnamespace
                AND a.grantee = 'tekup_app'::regrole LOOP
        EXECUTE format('GRANT %s ON TABLE %s TO tekup_app_user', g.priv, g.obj);
    END LOOP;
    FOR g IN SELECT c.oid::regclass AS obj, att.attname, a.privilege_type AS priv
               FROM pg_attribute att
               JOIN pg_class c ON c.oid = att.attrelid
               CROSS JOIN LATERAL aclexplode(att.attacl) a
              WHERE c.relnamespace = 'public'::regnamespace
                AND a.grantee = 'tekup_app'::regrole LOOP
        EXECUTE format('GRANT %s (%I) ON TABLE %s TO tekup_app_user', g.priv, g.attname, g.obj);
    END LOOP;
    FOR g IN SELECT p.oid::regprocedure AS obj
               FROM pg_proc p CROSS JOIN LATERAL aclexplode(p.proacl) a
              WHERE p.pronamespace = 'public'::regnamespace
                AND a.grantee = 'tekup_app'::regrole AND a.privilege_type = 'EXECUTE' LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO tekup_app_user', g.obj);
    END LOOP;
END $$;

DROP POLICY leads_role_select ON leads;
CREATE POLICY leads_role_select ON leads FOR SELECT TO tekup_app USING (true);
CREATE POLICY leads_user_select ON leads FOR SELECT TO tekup_app_user
    USING (assigned_to = current_app_user_id() OR created_by = current_app_user_id());
-- 0010's "sees everything" test is the choice of role now.
DROP FUNCTION lead_access_all();

-- The tenant a statement on leads may touch: current_tenant_id(), except in
-- a plain user's context on any role but tekup_app_user (see the top).
CREATE FUNCTION lead_wall_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN current_setting('app.current_user_role', true) IS DISTINCT FROM 'user'
                  OR current_user = 'tekup_app_user'
                THEN current_tenant_id() END
$$;
REVOKE ALL ON FUNCTION lead_wall_tenant_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lead_wall_tenant_id() TO tekup_app, tekup_app_user, tekup_operator;
ALTER POLICY leads_tenant_wall ON leads
    USING (tenant_id = lead_wall_tenant_id()) WITH CHECK (tenant_id = lead_wall_tenant_id());

-- 0012's check, plus: a plain user runs as tekup_app_user and an admin does
-- not, so a server that set the wrong role fails the transaction (TKS01)
-- instead of reading with the wrong policy.
CREATE OR REPLACE FUNCTION session_assert(p_tenant uuid, p_token_hash bytea) RETURNS void
    LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM 1
       FROM sessions s
       JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
       JOIN tenant_users tu ON tu.tenant_id = s.tenant_id AND tu.user_id = s.user_id
      WHERE s.tenant_id = p_tenant
        AND p_tenant = current_tenant_id()
        AND s.token_hash = p_token_hash
        AND s.user_id = current_app_user_id()
        AND s.revoked_at IS NULL AND s.expires_at > now() AND u.is_active
        AND CASE WHEN tu.role = 'admin' THEN 'admin' ELSE 'user' END
            = current_app_user_role()
        AND (current_user = 'tekup_app_user') = (tu.role <> 'admin');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the session has ended or changed' USING ERRCODE = 'TKS01';
    END IF;
END $$;