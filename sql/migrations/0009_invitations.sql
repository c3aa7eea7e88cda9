-- 0009_invitations.sql - inviting a user instead of setting their password.
--
-- POST /v1/users without a password creates the user with no password and
-- an invitation: a random token ("ti_" + 64 hex) shown once, stored as
-- SHA-256, valid for 7 days, usable once.  POST /v1/auth/accept-invitation
-- (with the tenant key) sets the password and signs the user in.

CREATE TABLE user_invitations (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    token_hash bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL DEFAULT now() + interval '7 days',
    accepted_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
ALTER TABLE user_invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY user_invitations_tenant ON user_invitations FOR ALL
    USING (tenant_id = current_tenant_id()) WITH CHECK (tenant_id = current_tenant_id());
CREATE TRIGGER user_invitations_tenant_id_immutable BEFORE UPDATE OF tenant_id ON user_invitations
    FOR EACH ROW EXECUTE FUNCTION forbid_tenant_id_change();

GRANT SELECT, INSERT, UPDATE, DELETE ON user_invitations TO tekup_app, tekup_operator;
