-- 0015_provisioning_checks.sql - what provisioning refuses, and only that.
--
-- The admin e-mail check (TKP03) exists so that a repeated sign-up (a
-- double-click, a retried call) does not create a second tenant for the
-- same person.  It looked for the address among ALL users of ALL tenants,
-- so any tenant could block anyone's sign-up by adding a user with that
-- address (POST /v1/users).  Now it looks only for an earlier
-- provisioning's admin: tenants.signup_admin_email, written by
-- provision_tenant() and nothing else, unique case-insensitively.  An
-- address stays taken while its tenant exists (archived too), as before;
-- users copied by a tenant data migration, or added by a tenant, never
-- take it.
--
-- Existing tenants: the admin a tenant was provisioned with is the admin
-- user created in the tenant's own transaction (the same now()); where
-- one address was several tenants' first admin, the oldest tenant keeps it.
--
-- The welcome e-mail's subject is 'Welcome to tekup, ' || name, and the
-- outbox refuses (dead-letters) a subject over 400 bytes
-- (OUTBOX_SUBJECT_MAX, src/outbox/smtp.h): a valid name of 255 multi-byte
-- characters made one that could never be sent.  tenant_welcome_subject()
-- keeps it within 400 bytes, cutting the name at a character boundary and
-- marking the cut with an ellipsis.  (Control characters in a name, which
-- would also make it unsendable, are refused before provisioning runs:
-- src/tenants/provision.c.)

ALTER TABLE tenants ADD COLUMN signup_admin_email varchar(255);

UPDATE tenants t SET signup_admin_email = first.email
  FROM (SELECT DISTINCT ON (lower(u.email)) u.tenant_id, u.email
          FROM users u
          JOIN tenants ut ON ut.id = u.tenant_id AND ut.created_at = u.created_at
          JOIN tenant_users tu ON tu.tenant_id = u.tenant_id AND tu.user_id = u.id
                              AND tu.role = 'admin'
         ORDER BY lower(u.email), ut.created_at, ut.id) first
 WHERE t.id = first.tenant_id;

CREATE UNIQUE INDEX idx_tenants_signup_admin_email ON tenants (lower(signup_admin_email));

-- The first p_max bytes of p_text, cut at a character boundary.
CREATE FUNCTION utf8_left_bytes(p_text text, p_max integer) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    n integer := least(length(p_text), p_max);
BEGIN
    WHILE octet_length(left(p_text, n)) > p_max LOOP
        n := n - 1;
    END LOOP;
    RETURN left(p_text, n);
END $$;

-- 18 bytes of greeting + at most 382 of name = OUTBOX_SUBJECT_MAX (400).
CREATE FUNCTION tenant_welcome_subject(p_name text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT 'Welcome to tekup, ' ||
           CASE WHEN octet_length(p_name) <= 382 THEN p_name
                ELSE utf8_left_bytes(p_name, 379) || '…' END
$$;

CREATE OR REPLACE FUNCTION provision_tenant(
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
    -- Only an earlier provisioning's admin counts: a user some tenant added
    -- itself is no sign-up.  The advisory lock serialises concurrent
    -- sign-ups of one address (the unique index is the backstop).
    IF p_admin_email IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext(lower(p_admin_email)));
        IF EXISTS (SELECT 1 FROM tenants t
                    WHERE lower(t.signup_admin_email) = lower(p_admin_email)) THEN
            RAISE EXCEPTION 'admin e-mail already signed up' USING ERRCODE = 'TKP03';
        END IF;
    END IF;

    v_slug := make_tenant_slug(p_name);
    -- The caller chooses the id, so it can write the audit row for this
    -- tenant in the same round trip.
    INSERT INTO tenants (id, name, slug, billing_email, encryption_key_id, signup_admin_email)
    VALUES (p_tenant_id, p_name, v_slug, p_billing_email, p_data_key_id, p_admin_email)
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
                'subject', tenant_welcome_subject(p_name),
                'text', 'Hello ' || coalesce(p_admin_name, '') || E',\n\n'
                        || 'your workspace "' || p_name || '" is ready: '
                        || p_dashboard_base || '/' || v_slug || E'\n'));
    END IF;

    RETURN QUERY SELECT v_tenant, v_slug, v_user, p_dashboard_base || '/' || v_slug;
END $$;

REVOKE ALL ON FUNCTION utf8_left_bytes(text, integer), tenant_welcome_subject(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION utf8_left_bytes(text, integer), tenant_welcome_subject(text)
    TO tekup_operator;
