-- 0004_operator.sql - the operator side: tokens, audit, overrides, outbox.
--
-- Operator work (the /admin API, the CLI's tenant commands, the daily jobs,
-- the outbox worker) runs as tekup_operator: BYPASSRLS because it works
-- across tenants, but not the owner, so it can change data and not schema.
-- Tenant keys can never reach it: the request role has no grant here.

DO $$
DECLARE
    r record;
BEGIN
    SELECT rolsuper INTO r FROM pg_roles WHERE rolname = 'tekup_operator';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role tekup_operator does not exist'
            USING HINT = 'CREATE ROLE tekup_operator LOGIN NOSUPERUSER BYPASSRLS PASSWORD ...';
    END IF;
    IF r.rolsuper THEN
        RAISE EXCEPTION 'role tekup_operator must not be a superuser';
    END IF;
END $$;

-- Operator tokens: "to_" + 64 hex, shown once, stored as SHA-256.
CREATE TABLE operator_tokens (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name varchar(100) NOT NULL,
    token_hash bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    prefix varchar(16) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);

-- Who did what, when: one row per operator action (API or CLI).
CREATE TABLE operator_audit (
    id bigserial PRIMARY KEY,
    token_id uuid REFERENCES operator_tokens (id) ON DELETE SET NULL,
    actor varchar(120) NOT NULL,           -- token name, or "cli:<os user>"
    action varchar(60) NOT NULL,           -- e.g. tenant.create, key.revoke
    tenant_id uuid,                        -- no FK: the tenant may be deleted later
    details jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_operator_audit_created ON operator_audit (created_at DESC);
CREATE INDEX idx_operator_audit_tenant ON operator_audit (tenant_id, created_at DESC);

-- Per-tenant overrides on top of the plan's defaults; a plan change resets
-- enabled_features/resource_limits to the new plan and re-applies these.
ALTER TABLE tenants
    ADD COLUMN feature_overrides jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN limit_overrides jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN trial_ends_at timestamptz;

-- Side effects of provisioning (welcome e-mail, billing subscription) are
-- written here in the same transaction as the tenant, and delivered by a
-- background worker, at least once, with retries and a dead-letter state.
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),  -- idempotency key for receivers
    tenant_id uuid,
    kind varchar(20) NOT NULL CHECK (kind IN ('email', 'webhook')),
    topic varchar(60) NOT NULL,            -- e.g. tenant.welcome, billing.subscription.create
    payload jsonb NOT NULL,
    status varchar(12) NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
CREATE INDEX idx_outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX idx_outbox_status ON outbox (status, created_at DESC);

GRANT USAGE ON SCHEMA public TO tekup_operator;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO tekup_operator;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO tekup_operator;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO tekup_operator;
REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM tekup_operator;
-- Later migrations' tables are granted the same way by default.
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO tekup_operator;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO tekup_operator;
