-- 0001_schema.sql - the seed's tables, made tenant-safe.
--
-- Every tenant-scoped table has tenant_id NOT NULL, PRIMARY KEY (tenant_id, id)
-- and foreign keys that include tenant_id, so each table can be distributed by
-- tenant_id on Citus and a row can never reference another tenant's row.
-- Timestamps are timestamptz (the seed's TIMESTAMP loses the zone).
-- The seed's plaintext tenants.api_key is replaced by api_keys (hash only).

-- The current tenant, or NULL when no context is set: with NULL every policy
-- comparison is NULL, so a statement sees no rows and may write none, and
-- nothing raises.  A STABLE function rather than a (SELECT ...) subquery
-- because Citus rejects subqueries in policies on distributed tables.
CREATE FUNCTION current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.current_tenant', true), '')::uuid $$;

-- The signed-in user inside the tenant, or NULL (integration access).
CREATE FUNCTION current_app_user_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.current_user', true), '')::uuid $$;

CREATE TABLE tenants (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name varchar(255) NOT NULL CHECK (length(name) >= 1),
    slug varchar(100) UNIQUE NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    status varchar(20) NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'suspended', 'archived')),
    archived_at timestamptz,

    enabled_features jsonb NOT NULL DEFAULT '{}',
    resource_limits jsonb NOT NULL DEFAULT '{
        "max_users": 100,
        "max_leads": 10000,
        "max_storage_mb": 1000,
        "api_rate_limit": 1000
    }',

    subscription_plan varchar(50) NOT NULL DEFAULT 'basic',
    billing_email varchar(255),

    data_retention_days integer NOT NULL DEFAULT 365 CHECK (data_retention_days > 0),
    encryption_key_id varchar(255),
    compliance_requirements jsonb NOT NULL DEFAULT '[]'
);
CREATE INDEX idx_tenants_status ON tenants (status);

CREATE TABLE api_keys (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    key_hash bytea NOT NULL CHECK (octet_length(key_hash) = 32),  -- SHA-256 of the key
    prefix varchar(16) NOT NULL,                                  -- shown in listings
    name varchar(100),
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    expires_at timestamptz,
    revoked_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
-- Key lookup is by hash alone (the tenant is what we are looking for).
CREATE UNIQUE INDEX idx_api_keys_hash ON api_keys (key_hash);

CREATE TABLE tenant_settings (
    tenant_id uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    timezone varchar(64) NOT NULL DEFAULT 'UTC',
    locale varchar(16) NOT NULL DEFAULT 'en',
    date_format varchar(32) NOT NULL DEFAULT 'YYYY-MM-DD',
    time_format varchar(8) NOT NULL DEFAULT '24h',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    email varchar(255) NOT NULL,
    name varchar(255),
    password_hash text,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX idx_users_tenant_id ON users (tenant_id);
CREATE UNIQUE INDEX idx_users_tenant_email ON users (tenant_id, lower(email));

CREATE TABLE tenant_users (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    role varchar(50) NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'user')),
    permissions jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE leads (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),

    name varchar(255) NOT NULL CHECK (length(name) >= 1),
    email varchar(255),
    phone varchar(50),
    company varchar(255),
    status varchar(50) NOT NULL DEFAULT 'NEW'
        CHECK (status IN ('NEW', 'CONTACTED', 'QUALIFIED', 'PROPOSAL', 'WON', 'LOST')),
    source varchar(100),

    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    created_by uuid,
    assigned_to uuid,

    custom_fields jsonb NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(custom_fields) = 'object' AND octet_length(custom_fields::text) <= 16384),

    version integer NOT NULL DEFAULT 1,
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    -- When the lead entered its current status (for avgDaysInStatus).
    status_changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
-- The seed's indexes, tenant first.  (tenant_id) alone is the primary key's prefix.
CREATE INDEX idx_leads_tenant_status_created ON leads (tenant_id, status, created_at DESC);
CREATE INDEX idx_leads_tenant_created ON leads (tenant_id, created_at DESC, id DESC);
CREATE INDEX idx_leads_tenant_updated ON leads (tenant_id, updated_at DESC, id DESC);
CREATE INDEX idx_leads_tenant_name ON leads (tenant_id, name, id);
CREATE INDEX idx_leads_tenant_assigned_status ON leads (tenant_id, assigned_to, status);
CREATE INDEX idx_leads_tenant_active ON leads (tenant_id, updated_at DESC)
    WHERE status IN ('NEW', 'CONTACTED', 'QUALIFIED');
CREATE INDEX idx_leads_tenant_email ON leads (tenant_id, email) WHERE email IS NOT NULL;
CREATE INDEX idx_leads_tenant_custom_fields ON leads (tenant_id, (custom_fields ->> 'priority'))
    WHERE custom_fields ->> 'priority' IS NOT NULL;

CREATE TABLE activities (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    lead_id uuid NOT NULL,
    user_id uuid,
    type varchar(32) NOT NULL
        CHECK (type IN ('note', 'call', 'email', 'meeting', 'status_change')),
    body text,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, lead_id) REFERENCES leads (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX idx_activities_tenant_lead_created ON activities (tenant_id, lead_id, created_at DESC);

CREATE TABLE audit_logs (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    table_name varchar(100) NOT NULL,
    record_id uuid NOT NULL,
    action varchar(20) NOT NULL,
    old_values jsonb,
    new_values jsonb,
    user_id uuid,
    ip_address inet,
    user_agent text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX idx_audit_logs_tenant_created ON audit_logs (tenant_id, created_at DESC);

-- tenant_id never changes on UPDATE.  The seed's "tenant_id = OLD.tenant_id"
-- policy is not valid SQL (OLD does not exist in policies), so a trigger.
CREATE FUNCTION forbid_tenant_id_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.tenant_id IS DISTINCT FROM OLD.tenant_id THEN
        RAISE EXCEPTION 'tenant_id cannot be changed' USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION leads_track_status() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        NEW.status_changed_at := now();
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER leads_track_status BEFORE UPDATE OF status ON leads
    FOR EACH ROW EXECUTE FUNCTION leads_track_status();

-- Row Level Security: ENABLE and FORCE on every tenant-scoped table, and one
-- policy per command comparing tenant_id with current_tenant_id().
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['api_keys', 'tenant_settings', 'users', 'tenant_users',
                             'leads', 'activities', 'audit_logs']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR SELECT USING (tenant_id = current_tenant_id())',
                       t || '_tenant_select', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR INSERT WITH CHECK (tenant_id = current_tenant_id())',
                       t || '_tenant_insert', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR UPDATE USING (tenant_id = current_tenant_id())'
                       ' WITH CHECK (tenant_id = current_tenant_id())', t || '_tenant_update', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR DELETE USING (tenant_id = current_tenant_id())',
                       t || '_tenant_delete', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OF tenant_id ON %I'
                       ' FOR EACH ROW EXECUTE FUNCTION forbid_tenant_id_change()',
                       t || '_tenant_id_immutable', t);
    END LOOP;
END $$;

-- tenants: a request sees only its own tenant's row.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenants_self_select ON tenants FOR SELECT USING (id = current_tenant_id());
