-- 0007_operations.sql - operator operations as set-based database functions.
--
-- Each runs inside the caller's transaction (one per call, one per tenant
-- for the batch jobs), so it is all or nothing.  SQLSTATEs of class "TK"
-- carry errors the API reports with a field:
--   TKT01 tenant not found (404)        TKT02 invalid status change (409)
--   TKM01 source = target (400)         TKM02 limit would be exceeded (409)
--   TKM03 a copied user's e-mail exists in the target (409)

-- Usage of one tenant: rows and bytes (the rows' on-disk size).
CREATE FUNCTION tenant_usage(p_tenant uuid) RETURNS jsonb
    LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'leads', (SELECT count(*) FROM leads WHERE tenant_id = p_tenant),
        'users', (SELECT count(*) FROM users WHERE tenant_id = p_tenant),
        'activities', (SELECT count(*) FROM activities WHERE tenant_id = p_tenant),
        'storageBytes',
            coalesce((SELECT sum(pg_column_size(l.*)) FROM leads l WHERE l.tenant_id = p_tenant), 0)
          + coalesce((SELECT sum(pg_column_size(a.*)) FROM activities a WHERE a.tenant_id = p_tenant), 0)
          + coalesce((SELECT sum(pg_column_size(u.*)) FROM users u WHERE u.tenant_id = p_tenant), 0)
          + coalesce((SELECT sum(pg_column_size(g.*)) FROM audit_logs g WHERE g.tenant_id = p_tenant), 0))
$$;

-- The operator's view of a tenant (camelCase, as the API returns it).
CREATE FUNCTION tenant_json(t tenants) RETURNS jsonb
    LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', t.id, 'name', t.name, 'slug', t.slug, 'status', t.status,
        'plan', t.subscription_plan, 'billingEmail', t.billing_email,
        'enabledFeatures', t.enabled_features, 'resourceLimits', t.resource_limits,
        'featureOverrides', t.feature_overrides, 'limitOverrides', t.limit_overrides,
        'dataRetentionDays', t.data_retention_days,
        'complianceRequirements', t.compliance_requirements,
        'encryptionKeyId', t.encryption_key_id,
        'createdAt', to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'updatedAt', to_char(t.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'archivedAt', to_char(t.archived_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'trialEndsAt', to_char(t.trial_ends_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
$$;

-- Status changes: active <-> suspended, and either -> archived (final).
CREATE FUNCTION tenant_set_status(p_tenant uuid, p_status text) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    cur text;
BEGIN
    SELECT status INTO cur FROM tenants WHERE id = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant not found' USING ERRCODE = 'TKT01';
    END IF;
    IF cur = p_status THEN
        RETURN;
    END IF;
    IF cur = 'archived' OR p_status NOT IN ('active', 'suspended', 'archived') THEN
        RAISE EXCEPTION 'cannot change status from % to %', cur, p_status USING ERRCODE = 'TKT02';
    END IF;
    UPDATE tenants
       SET status = p_status, updated_at = now(),
           archived_at = CASE WHEN p_status = 'archived' THEN now() ELSE archived_at END
     WHERE id = p_tenant;
END $$;

-- The seed's migrateTenantData, set-based: every copied row gets a new id,
-- references (activity -> lead, lead -> user, membership -> user) are
-- remapped through id maps, created_at is kept (the history is the data's,
-- not the copy's: a lead created last year is still a year old), and
-- updated_at records the copy.  Users are copied first so leads can point at
-- the copies; without includeUsers, user references are cleared.
CREATE FUNCTION migrate_tenant_data(p_source uuid, p_target uuid, p_leads boolean,
                                    p_users boolean, p_archive boolean) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    n_users bigint := 0;
    n_memberships bigint := 0;
    n_leads bigint := 0;
    n_activities bigint := 0;
    lim jsonb;
BEGIN
    IF p_source = p_target THEN
        RAISE EXCEPTION 'source and target are the same tenant' USING ERRCODE = 'TKM01';
    END IF;
    -- Lock both tenants (in a fixed order, so two opposite migrations cannot deadlock).
    PERFORM 1 FROM tenants WHERE id IN (p_source, p_target) ORDER BY id FOR UPDATE;
    IF (SELECT count(*) FROM tenants WHERE id IN (p_source, p_target)) <> 2 THEN
        RAISE EXCEPTION 'tenant not found' USING ERRCODE = 'TKT01';
    END IF;
    SELECT resource_limits INTO lim FROM tenants WHERE id = p_target;

    CREATE TEMP TABLE user_map (old_id uuid PRIMARY KEY, new_id uuid NOT NULL) ON COMMIT DROP;
    CREATE TEMP TABLE lead_map (old_id uuid PRIMARY KEY, new_id uuid NOT NULL) ON COMMIT DROP;

    IF p_users THEN
        IF (SELECT count(*) FROM users WHERE tenant_id = p_target)
         + (SELECT count(*) FROM users WHERE tenant_id = p_source)
           > coalesce((lim ->> 'maxUsers')::bigint, 9223372036854775807) THEN
            RAISE EXCEPTION 'the copy would exceed the target''s maxUsers' USING ERRCODE = 'TKM02';
        END IF;
        IF EXISTS (SELECT 1 FROM users s JOIN users t
                     ON t.tenant_id = p_target AND lower(t.email) = lower(s.email)
                    WHERE s.tenant_id = p_source) THEN
            RAISE EXCEPTION 'a user with the same e-mail exists in the target' USING ERRCODE = 'TKM03';
        END IF;
        INSERT INTO user_map SELECT id, gen_random_uuid() FROM users WHERE tenant_id = p_source;
        INSERT INTO users (tenant_id, id, email, name, password_hash, is_active, created_at,
                           updated_at, last_login_at)
        SELECT p_target, m.new_id, u.email, u.name, u.password_hash, u.is_active, u.created_at,
               now(), u.last_login_at
          FROM users u JOIN user_map m ON m.old_id = u.id
         WHERE u.tenant_id = p_source;
        GET DIAGNOSTICS n_users = ROW_COUNT;
        INSERT INTO tenant_users (tenant_id, user_id, role, permissions, created_at)
        SELECT p_target, m.new_id, tu.role, tu.permissions, tu.created_at
          FROM tenant_users tu JOIN user_map m ON m.old_id = tu.user_id
         WHERE tu.tenant_id = p_source;
        GET DIAGNOSTICS n_memberships = ROW_COUNT;
    END IF;

    IF p_leads THEN
        IF (SELECT count(*) FROM leads WHERE tenant_id = p_target)
         + (SELECT count(*) FROM leads WHERE tenant_id = p_source)
           > coalesce((lim ->> 'maxLeads')::bigint, 9223372036854775807) THEN
            RAISE EXCEPTION 'the copy would exceed the target''s maxLeads' USING ERRCODE = 'TKM02';
        END IF;
        INSERT INTO lead_map SELECT id, gen_random_uuid() FROM leads WHERE tenant_id = p_source;
        INSERT INTO leads (tenant_id, id, name, email, phone, company, status, source,
                           created_at, updated_at, created_by, assigned_to, custom_fields,
                           version, last_activity_at, status_changed_at)
        SELECT p_target, m.new_id, l.name, l.email, l.phone, l.company, l.status, l.source,
               l.created_at, now(), cb.new_id, at.new_id, l.custom_fields,
               1, l.last_activity_at, l.status_changed_at
          FROM leads l
          JOIN lead_map m ON m.old_id = l.id
          LEFT JOIN user_map cb ON cb.old_id = l.created_by
          LEFT JOIN user_map at ON at.old_id = l.assigned_to
         WHERE l.tenant_id = p_source;
        GET DIAGNOSTICS n_leads = ROW_COUNT;
        INSERT INTO activities (tenant_id, id, lead_id, user_id, type, body, occurred_at, created_at)
        SELECT p_target, gen_random_uuid(), m.new_id, um.new_id, a.type, a.body, a.occurred_at,
               a.created_at
          FROM activities a
          JOIN lead_map m ON m.old_id = a.lead_id
          LEFT JOIN user_map um ON um.old_id = a.user_id
         WHERE a.tenant_id = p_source;
        GET DIAGNOSTICS n_activities = ROW_COUNT;
    END IF;

    IF p_archive THEN
        PERFORM tenant_set_status(p_source, 'archived');
    END IF;
    RETURN jsonb_build_object('leads', n_leads, 'activities', n_activities, 'users', n_users,
                              'tenantUsers', n_memberships, 'sourceArchived', p_archive);
END $$;

-- Deletes a tenant and all its data (the seed's cleanupArchivedTenants body),
-- returning per-table counts; dry run counts without deleting.
CREATE FUNCTION delete_tenant(p_tenant uuid, p_dry_run boolean) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    counts jsonb;
BEGIN
    counts := jsonb_build_object(
        'leads', (SELECT count(*) FROM leads WHERE tenant_id = p_tenant),
        'activities', (SELECT count(*) FROM activities WHERE tenant_id = p_tenant),
        'users', (SELECT count(*) FROM users WHERE tenant_id = p_tenant),
        'auditLogs', (SELECT count(*) FROM audit_logs WHERE tenant_id = p_tenant),
        'apiKeys', (SELECT count(*) FROM api_keys WHERE tenant_id = p_tenant));
    IF NOT p_dry_run THEN
        -- Children first, then the tenant (its ON DELETE CASCADE covers the rest).
        DELETE FROM activities WHERE tenant_id = p_tenant;
        DELETE FROM leads WHERE tenant_id = p_tenant;
        DELETE FROM tenant_users WHERE tenant_id = p_tenant;
        DELETE FROM users WHERE tenant_id = p_tenant;
        DELETE FROM tenants WHERE id = p_tenant;
    END IF;
    RETURN counts;
END $$;

-- Retention: a tenant's rows older than its data_retention_days.  A lead is
-- "old" when neither it nor its activity changed within the window
-- (greatest of updated_at and last_activity_at); activities and audit rows
-- by created_at.  Activities of purged leads go with them (cascade).
CREATE FUNCTION purge_tenant_retention(p_tenant uuid, p_dry_run boolean) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz;
    n_leads bigint;
    n_activities bigint;
    n_audit bigint;
BEGIN
    SELECT now() - make_interval(days => data_retention_days) INTO cutoff
      FROM tenants WHERE id = p_tenant;
    IF cutoff IS NULL THEN
        RAISE EXCEPTION 'tenant not found' USING ERRCODE = 'TKT01';
    END IF;
    IF p_dry_run THEN
        SELECT count(*) INTO n_leads FROM leads
         WHERE tenant_id = p_tenant AND greatest(updated_at, last_activity_at) < cutoff;
        SELECT count(*) INTO n_activities FROM activities a
         WHERE a.tenant_id = p_tenant
           AND (a.created_at < cutoff OR EXISTS (SELECT 1 FROM leads l WHERE l.tenant_id = p_tenant
                 AND l.id = a.lead_id AND greatest(l.updated_at, l.last_activity_at) < cutoff));
        SELECT count(*) INTO n_audit FROM audit_logs WHERE tenant_id = p_tenant AND created_at < cutoff;
    ELSE
        DELETE FROM activities a
         WHERE a.tenant_id = p_tenant
           AND (a.created_at < cutoff OR EXISTS (SELECT 1 FROM leads l WHERE l.tenant_id = p_tenant
                 AND l.id = a.lead_id AND greatest(l.updated_at, l.last_activity_at) < cutoff));
        GET DIAGNOSTICS n_activities = ROW_COUNT;
        DELETE FROM leads WHERE tenant_id = p_tenant AND greatest(updated_at, last_activity_at) < cutoff;
        GET DIAGNOSTICS n_leads = ROW_COUNT;
        DELETE FROM audit_logs WHERE tenant_id = p_tenant AND created_at < cutoff;
        GET DIAGNOSTICS n_audit = ROW_COUNT;
    END IF;
    RETURN jsonb_build_object('leads', n_leads, 'activities', n_activities, 'auditLogs', n_audit,
                              'cutoff', to_char(cutoff AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
END $$;

-- When the daily job last ran (one row per job), so that several servers
-- run it once a day between them.
CREATE TABLE maintenance_runs (
    job varchar(40) PRIMARY KEY,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    result jsonb
);

REVOKE ALL ON FUNCTION tenant_usage(uuid), tenant_json(tenants), tenant_set_status(uuid, text),
    migrate_tenant_data(uuid, uuid, boolean, boolean, boolean), delete_tenant(uuid, boolean),
    purge_tenant_retention(uuid, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant_usage(uuid), tenant_json(tenants), tenant_set_status(uuid, text),
    migrate_tenant_data(uuid, uuid, boolean, boolean, boolean), delete_tenant(uuid, boolean),
    purge_tenant_retention(uuid, boolean) TO tekup_operator;
GRANT SELECT, INSERT, UPDATE, DELETE ON maintenance_runs TO tekup_operator;
-- The migration's id maps are temporary tables.
DO $$ BEGIN
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO tekup_operator', current_database());
END $$;
