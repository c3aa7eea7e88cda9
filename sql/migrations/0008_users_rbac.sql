-- 0008_users_rbac.sql - users, sessions and role-based access inside a
-- tenant, enforced by PostgreSQL (the seed's "Advanced RLS Patterns").
--
-- Model:
--   * A request with the tenant key alone is the tenant's integration: it
--     sees every lead of the tenant (app.current_user unset).
--   * A request with a session (Authorization: Bearer ts_...) acts as that
--     user: the server sets app.current_user and app.current_user_role
--     (SET LOCAL, from the session row it just verified).  An admin sees all
--     leads; a user sees the leads assigned to or created by them.
--   * Tenant isolation stays the outer wall: it becomes RESTRICTIVE, so it is
--     AND-ed with the role rule (two permissive policies would be OR-ed and
--     the role rule would add nothing - the seed's mistake).
--   * A user cannot assign a lead away and keep editing it unless they
--     created it: UPDATE's WITH CHECK applies the same rule to the new row,
--     so an assignee who is not the creator cannot hand the lead to someone
--     else (the new row would be invisible to them: 403).  The creator can.

CREATE FUNCTION current_app_user_role() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.current_user_role', true), '') $$;

-- Whether the current actor may see a lead with these owners.
CREATE FUNCTION lead_access(p_created_by uuid, p_assigned_to uuid) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
    -- Evaluated per row: the integration and admin tests compare text, so
    -- the common case costs one setting lookup and no uuid parse.
    SELECT coalesce(current_setting('app.current_user', true), '') = ''
        OR current_setting('app.current_user_role', true) = 'admin'
        OR p_assigned_to = current_app_user_id()
        OR p_created_by = current_app_user_id()
$$;

-- Leads: restrictive tenant wall + permissive role rule.
DROP POLICY leads_tenant_select ON leads;
DROP POLICY leads_tenant_insert ON leads;
DROP POLICY leads_tenant_update ON leads;
DROP POLICY leads_tenant_delete ON leads;
CREATE POLICY leads_tenant_wall ON leads AS RESTRICTIVE FOR ALL
    USING (tenant_id = current_tenant_id()) WITH CHECK (tenant_id = current_tenant_id());
CREATE POLICY leads_role_select ON leads FOR SELECT USING (lead_access(created_by, assigned_to));
CREATE POLICY leads_role_insert ON leads FOR INSERT WITH CHECK (lead_access(created_by, assigned_to));
CREATE POLICY leads_role_update ON leads FOR UPDATE
    USING (lead_access(created_by, assigned_to)) WITH CHECK (lead_access(created_by, assigned_to));
CREATE POLICY leads_role_delete ON leads FOR DELETE USING (lead_access(created_by, assigned_to));

-- createdBy comes from the database, never from the client.
CREATE FUNCTION leads_set_created_by() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.created_by := current_app_user_id();
    RETURN NEW;
END $$;
CREATE TRIGGER leads_set_created_by BEFORE INSERT ON leads
    FOR EACH ROW WHEN (current_app_user_id() IS NOT NULL)
    EXECUTE FUNCTION leads_set_created_by();

-- assignedTo must be a user of the same tenant.
ALTER TABLE leads ADD CONSTRAINT leads_assigned_to_fkey
    FOREIGN KEY (tenant_id, assigned_to) REFERENCES users (tenant_id, id) ON DELETE SET NULL (assigned_to);

-- Activities are visible exactly when their lead is.
CREATE FUNCTION activity_lead_visible(p_tenant uuid, p_lead uuid) RETURNS boolean
    LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM leads l WHERE l.tenant_id = p_tenant AND l.id = p_lead)
$$;
DROP POLICY activities_tenant_select ON activities;
DROP POLICY activities_tenant_insert ON activities;
DROP POLICY activities_tenant_update ON activities;
DROP POLICY activities_tenant_delete ON activities;
CREATE POLICY activities_tenant_wall ON activities AS RESTRICTIVE FOR ALL
    USING (tenant_id = current_tenant_id()) WITH CHECK (tenant_id = current_tenant_id());
CREATE POLICY activities_via_lead ON activities FOR ALL
    USING (activity_lead_visible(tenant_id, lead_id))
    WITH CHECK (activity_lead_visible(tenant_id, lead_id));

-- Adding activities bumps their leads' lastActivityAt: once per statement,
-- set-based (a tenant migration inserts thousands in one statement).
CREATE FUNCTION activities_touch_lead() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    UPDATE leads l SET last_activity_at = greatest(l.last_activity_at, n.latest)
      FROM (SELECT tenant_id, lead_id, max(occurred_at) AS latest
              FROM new_activities GROUP BY tenant_id, lead_id) n
     WHERE l.tenant_id = n.tenant_id AND l.id = n.lead_id
       AND l.last_activity_at < n.latest;
    RETURN NULL;
END $$;
CREATE TRIGGER activities_touch_lead AFTER INSERT ON activities
    REFERENCING NEW TABLE AS new_activities
    FOR EACH STATEMENT EXECUTE FUNCTION activities_touch_lead();

-- A status change is recorded as a status_change activity.
CREATE FUNCTION leads_record_status_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO activities (tenant_id, lead_id, user_id, type, body)
    VALUES (NEW.tenant_id, NEW.id, current_app_user_id(), 'status_change',
            OLD.status || ' -> ' || NEW.status);
    RETURN NEW;
END $$;
CREATE TRIGGER leads_record_status_change AFTER UPDATE OF status ON leads
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION leads_record_status_change();

-- Sessions: "ts_" + 64 hex, stored as SHA-256; expiring and revocable.
CREATE TABLE sessions (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    token_hash bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX idx_sessions_user ON sessions (tenant_id, user_id);

-- Failed sign-ins per account, to slow down guessing.
CREATE TABLE login_failures (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email_lower varchar(255) NOT NULL,
    failures integer NOT NULL DEFAULT 0,
    last_failure_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, email_lower)
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sessions', 'login_failures'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR ALL USING (tenant_id = current_tenant_id())'
                       ' WITH CHECK (tenant_id = current_tenant_id())', t || '_tenant', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OF tenant_id ON %I'
                       ' FOR EACH ROW EXECUTE FUNCTION forbid_tenant_id_change()',
                       t || '_tenant_id_immutable', t);
    END LOOP;
END $$;

-- Users and memberships: the request role may manage them (the server
-- allows it to admins and integrations only); maxUsers is enforced here.
CREATE FUNCTION users_enforce_max() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    lim bigint;
BEGIN
    -- Serialise user creation per tenant so the count below is exact
    -- even for concurrent inserts.
    PERFORM pg_advisory_xact_lock(hashtext('tekup.users.' || NEW.tenant_id::text));
    SELECT (resource_limits ->> 'maxUsers')::bigint INTO lim FROM tenants WHERE id = NEW.tenant_id;
    IF lim IS NOT NULL AND (SELECT count(*) FROM users WHERE tenant_id = NEW.tenant_id) >= lim THEN
        RAISE EXCEPTION 'the plan''s maxUsers (%) is reached', lim USING ERRCODE = 'TKU01';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER users_enforce_max BEFORE INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION users_enforce_max();

GRANT SELECT, INSERT, UPDATE, DELETE ON users, tenant_users, sessions, login_failures TO tekup_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON sessions, login_failures TO tekup_operator;
REVOKE ALL ON FUNCTION current_app_user_role(), lead_access(uuid, uuid),
    activity_lead_visible(uuid, uuid), leads_set_created_by(), activities_touch_lead(),
    leads_record_status_change(), users_enforce_max() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION current_app_user_role(), lead_access(uuid, uuid),
    activity_lead_visible(uuid, uuid), leads_set_created_by(), activities_touch_lead(),
    leads_record_status_change(), users_enforce_max() TO tekup_app, tekup_operator;

-- The API's view of a user.
CREATE FUNCTION user_json(p_tenant uuid, p_user uuid) RETURNS json
    LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', u.id, 'tenantId', u.tenant_id, 'email', u.email, 'name', u.name,
        'role', tu.role, 'isActive', u.is_active,
        'createdAt', to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'updatedAt', to_char(u.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'lastLoginAt', to_char(u.last_login_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
      FROM users u JOIN tenant_users tu ON tu.tenant_id = u.tenant_id AND tu.user_id = u.id
     WHERE u.tenant_id = p_tenant AND u.id = p_user
$$;

-- Changes a user; NULL arguments keep the value.  The last active admin can
-- be neither demoted nor deactivated (TKU02); deactivation ends the user's
-- sessions in the same transaction.  Returns false when there is no such user.
CREATE FUNCTION user_change(p_tenant uuid, p_user uuid, p_name text, p_role text,
                            p_active boolean, p_password_hash text) RETURNS boolean
    LANGUAGE plpgsql AS $$
DECLARE
    cur_role text;
    cur_active boolean;
BEGIN
    -- One change at a time per tenant, so two admins demoting each other
    -- cannot both succeed.
    PERFORM pg_advisory_xact_lock(hashtext('tekup.admins.' || p_tenant::text));
    SELECT tu.role, u.is_active INTO cur_role, cur_active
      FROM users u JOIN tenant_users tu ON tu.tenant_id = u.tenant_id AND tu.user_id = u.id
     WHERE u.tenant_id = p_tenant AND u.id = p_user;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF cur_role = 'admin' AND cur_active
       AND (coalesce(p_role, 'admin') <> 'admin' OR NOT coalesce(p_active, true))
       AND NOT EXISTS (SELECT 1 FROM users u JOIN tenant_users tu
                          ON tu.tenant_id = u.tenant_id AND tu.user_id = u.id
                       WHERE u.tenant_id = p_tenant AND u.id <> p_user
                         AND tu.role = 'admin' AND u.is_active) THEN
        RAISE EXCEPTION 'the last admin cannot be demoted or deactivated' USING ERRCODE = 'TKU02';
    END IF;
    UPDATE users SET name = coalesce(p_name, name), is_active = coalesce(p_active, is_active),
                     password_hash = coalesce(p_password_hash, password_hash), updated_at = now()
     WHERE tenant_id = p_tenant AND id = p_user;
    IF p_role IS NOT NULL THEN
        UPDATE tenant_users SET role = p_role WHERE tenant_id = p_tenant AND user_id = p_user;
    END IF;
    IF p_active IS FALSE OR p_password_hash IS NOT NULL THEN
        UPDATE sessions SET revoked_at = now()
         WHERE tenant_id = p_tenant AND user_id = p_user AND revoked_at IS NULL;
    END IF;
    RETURN true;
END $$;

REVOKE ALL ON FUNCTION user_json(uuid, uuid), user_change(uuid, uuid, text, text, boolean, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION user_json(uuid, uuid), user_change(uuid, uuid, text, text, boolean, text)
    TO tekup_app, tekup_operator;
