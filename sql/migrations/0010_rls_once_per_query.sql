-- 0010_rls_once_per_query.sql - the role rule on reads, decided once per
-- query instead of once per row.
--
-- Measured on the benchmark data (bench/, W2: a 20-row page of NEW leads
-- with its capped count, 16 pgbench clients, generic plans): 0008's
-- leads_role_select cost 2,150 tps against 3,300 as the owner with RLS off.
-- Two reasons, both per row:
--   * lead_access(created_by, assigned_to) was inlined into the scan's
--     filter, so every candidate row looked up one or two settings (and for
--     a user parsed a uuid) - about 300 rows for the count alone;
--   * the filter reads assigned_to and created_by, which no index carried,
--     so the count could not be an index-only scan (42 buffers, not 5).
-- Now:
--   * the "sees every lead of the tenant" part (the integration key, an
--     admin) is an uncorrelated scalar subquery: PostgreSQL runs it once per
--     query as an InitPlan, and per row only tests a parameter (the owner
--     columns are compared only for a plain user).  It reads no table, so a
--     single-tenant (router) query in Citus still runs whole on one worker.
--     One InitPlan, not three (the user id as two more): each costs executor
--     set-up on every execution, measurable on a single-row GET;
--   * idx_leads_tenant_status_created keeps its seed columns and INCLUDEs the
--     two owner columns, so the status count is an index-only scan again.
-- After, in three alternating rounds on the same 2-core machine: W2 3,580-
-- 4,280 tps as tekup_app against 3,130-3,930 as the owner (the count is now
-- index-only for the app; see bench/RESULTS.md for the harness's figure).
--
-- Only SELECT changes.  INSERT, UPDATE and DELETE touch one row each and
-- keep lead_access() without subqueries (Citus does not accept subqueries in
-- an INSERT).  The rule itself is the same as 0008's.

CREATE FUNCTION lead_access_all() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('app.current_user', true), '') = ''
        OR current_setting('app.current_user_role', true) = 'admin'
$$;
REVOKE ALL ON FUNCTION lead_access_all() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lead_access_all() TO tekup_app, tekup_operator;

DROP POLICY leads_role_select ON leads;
CREATE POLICY leads_role_select ON leads FOR SELECT
    USING ((SELECT lead_access_all())
           OR assigned_to = current_app_user_id()
           OR created_by = current_app_user_id());

DROP INDEX idx_leads_tenant_status_created;
CREATE INDEX idx_leads_tenant_status_created ON leads (tenant_id, status, created_at DESC)
    INCLUDE (assigned_to, created_by);
