-- 0005_provisioning.sql - tenant provisioning as one database function.
--
-- provision_tenant() does, in the caller's single transaction, everything
-- the seed's TenantProvisioningService does - tenant, API key, admin user,
-- membership, settings, data key, optional sample data - plus the side
-- effects the seed ran after its transaction (billing subscription, welcome
-- e-mail), written to the outbox so they cannot be lost.  The C side only
-- validates input, hashes the password (Argon2id) and the key (SHA-256),
-- and generates/wraps the data key.
--
-- Errors the API reports with a field use SQLSTATEs of class "TK":
--   TKP01 unknown plan (plan)        TKP02 unknown timezone (timezone)
--   TKP03 admin e-mail in use (adminEmail)

-- Per-tenant data keys, wrapped (encrypted) with the server's master key;
-- tenants.encryption_key_id names the current one.
CREATE TABLE tenant_data_keys (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id varchar(64) NOT NULL,
    wrapped_key bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
ALTER TABLE tenant_data_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_data_keys FORCE ROW LEVEL SECURITY;
-- No policy: only roles that bypass RLS (owner, operator) ever see a row.

-- Effective features and limits: the plan's defaults with the tenant's
-- explicit overrides on top.  Used at provisioning and on a plan change.
CREATE FUNCTION tenant_apply_plan(p_tenant uuid, p_plan text) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    p plans%ROWTYPE;
BEGIN
    SELECT * INTO p FROM plans WHERE name = p_plan;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown plan %', p_plan USING ERRCODE = 'TKP01';
    END IF;
    UPDATE tenants t
       SET subscription_plan = p.name,
           enabled_features = p.features || t.feature_overrides,
           resource_limits = p.limits || t.limit_overrides,
           -- A trial's clock starts when the tenant moves onto the trial plan;
           -- other changes (overrides, a PATCH naming the same plan) keep it.
           trial_ends_at = CASE WHEN p.trial_days IS NULL THEN NULL
                                WHEN t.subscription_plan = p.name AND t.trial_ends_at IS NOT NULL
                                THEN t.trial_ends_at
                                ELSE now() + make_interval(days => p.trial_days) END,
           updated_at = now()
     WHERE t.id = p_tenant;
END $$;

CREATE FUNCTION provision_tenant(
    p_tenant_id uuid, p_name text, p_plan text, p_billing_email text,
    p_admin_email text, p_admin_name text, p_password_hash text,
    p_timezone text, p_locale text,
    p_key_hash bytea, p_key_prefix text,
    p_data_key_id text, p_wrapped_data_key bytea,
    p_sample_leads integer, p_dashboard_base text)
    RETURNS TABLE (tenant_id uuid, slug text, admin_user_id uuid, dashboard_url text)
    LANGUAGE plpgsql AS $$
DECLARE
    v_tenant uuid;
    v_slug text;
    v_user uuid;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM plans WHERE name = p_plan) THEN
        RAISE EXCEPTION 'unknown plan %', p_plan USING ERRCODE = 'TKP01';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = p_timezone) THEN
        RAISE EXCEPTION 'unknown timezone %', p_timezone USING ERRCODE = 'TKP02';
    END IF;
    -- One person, one admin sign-up: a repeated request (a double-click, a
    -- retried call) must not create a second tenant for the same admin.
    -- The advisory lock serialises concurrent sign-ups of one address.
    IF p_admin_email IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext(lower(p_admin_email)));
        IF EXISTS (SELECT 1 FROM users WHERE lower(email) = lower(p_admin_email)) THEN
            RAISE EXCEPTION 'admin e-mail already in use' USING ERRCODE = 'TKP03';
        END IF;
    END IF;

    v_slug := make_tenant_slug(p_name);
    -- The caller chooses the id, so it can write the audit row for this
    -- tenant in the same round trip.
    INSERT INTO tenants (id, name, slug, billing_email, encryption_key_id)
    VALUES (p_tenant_id, p_name, v_slug, p_billing_email, p_data_key_id)
    RETURNING id INTO v_tenant;
    PERFORM tenant_apply_plan(v_tenant, p_plan);

    INSERT INTO tenant_data_keys (tenant_id, id, wrapped_key)
    VALUES (v_tenant, p_data_key_id, p_wrapped_data_key);
    INSERT INTO api_keys (tenant_id, key_hash, prefix, name)
    VALUES (v_tenant, p_key_hash, p_key_prefix, 'default');
    IF p_admin_email IS NOT NULL THEN
        INSERT INTO users (tenant_id, email, name, password_hash)
        VALUES (v_tenant, p_admin_email, p_admin_name, p_password_hash)
        RETURNING id INTO v_user;
        INSERT INTO tenant_users (tenant_id, user_id, role) VALUES (v_tenant, v_user, 'admin');
    END IF;
    INSERT INTO tenant_settings (tenant_id, timezone, locale, date_format, time_format)
    VALUES (v_tenant, p_timezone, p_locale, 'YYYY-MM-DD', '24h');

    IF p_sample_leads > 0 THEN
        PERFORM create_sample_data(v_tenant, v_user, p_sample_leads);
    END IF;

    -- The seed's post-transaction side effects, now part of the transaction.
    -- Billing only for paying plans with someone to bill.
    IF p_plan <> 'trial' AND p_billing_email IS NOT NULL THEN
        INSERT INTO outbox (tenant_id, kind, topic, payload)
        VALUES (v_tenant, 'webhook', 'billing.subscription.create',
                jsonb_build_object('tenantId', v_tenant, 'plan', p_plan,
                                   'billingEmail', p_billing_email, 'slug', v_slug));
    END IF;
    IF p_admin_email IS NOT NULL THEN
    INSERT INTO outbox (tenant_id, kind, topic, payload)
    VALUES (v_tenant, 'email', 'tenant.welcome',
            jsonb_build_object(
                'to', p_admin_email,
                'subject', 'Welcome to tekup, ' || p_name,
                'text', 'Hello ' || coalesce(p_admin_name, '') || E',\n\n'
                        || 'your workspace "' || p_name || '" is ready: '
                        || p_dashboard_base || '/' || v_slug || E'\n'));
    END IF;

    RETURN QUERY SELECT v_tenant, v_slug, v_user, p_dashboard_base || '/' || v_slug;
END $$;

-- Realistic sample leads, each with a few activities, set-based.
CREATE FUNCTION create_sample_data(p_tenant uuid, p_user uuid, p_leads integer) RETURNS void
    LANGUAGE sql AS $$
    WITH l AS (
        INSERT INTO leads (tenant_id, name, email, phone, company, status, source,
                           custom_fields, created_by, assigned_to,
                           created_at, updated_at, status_changed_at)
        SELECT p_tenant, f.first || ' ' || f.last,
               lower(f.first || '.' || f.last || g || '@' || f.domain),
               '+45 ' || (20000000 + g * 7919)::text, f.company,
               (ARRAY['NEW','CONTACTED','QUALIFIED','PROPOSAL','WON','LOST'])[1 + g % 6],
               (ARRAY['website','referral','linkedin','event'])[1 + g % 4],
               jsonb_build_object('priority', (ARRAY['high','medium','low'])[1 + g % 3]),
               p_user, p_user,
               now() - make_interval(days => g), now() - make_interval(days => g),
               now() - make_interval(days => g)
          FROM generate_series(1, p_leads) g
          CROSS JOIN LATERAL (SELECT
               (ARRAY['Anna','Lars','Mette','Jonas','Sofie','Emil'])[1 + g % 6] AS first,
               (ARRAY['Hansen','Nielsen','Jensen','Pedersen','Larsen'])[1 + g % 5] AS last,
               (ARRAY['Nordic Logistics','Fjord Foods','Aarhus Analytics','Copenhagen Cloud'])[1 + g % 4] AS company,
               (ARRAY['example.com','example.org','example.net'])[1 + g % 3] AS domain) f
        RETURNING id, created_at)
    INSERT INTO activities (tenant_id, lead_id, user_id, type, body, occurred_at, created_at)
    SELECT p_tenant, l.id, p_user, a.type, a.body, l.created_at + a.after, l.created_at + a.after
      FROM l CROSS JOIN (VALUES ('note', 'First contact via the website form.', interval '1 hour'),
                                ('call', 'Intro call: interested, wants a proposal.', interval '1 day'))
                         AS a(type, body, after);
$$;

GRANT EXECUTE ON FUNCTION tenant_apply_plan(uuid, text), create_sample_data(uuid, uuid, integer),
    provision_tenant(uuid, text, text, text, text, text, text, text, text, bytea, text, text, bytea,
                     integer, text) TO tekup_operator;
REVOKE ALL ON FUNCTION tenant_apply_plan(uuid, text), create_sample_data(uuid, uuid, integer),
    provision_tenant(uuid, text, text, text, text, text, text, text, text, bytea, text, text, bytea,
                     integer, text) FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_data_keys TO tekup_operator;
