-- 0014_invitations_end_with_the_password.sql - an invitation is the way to
-- set a password that was never set, and nothing more.
--
-- Before, an invitation stayed usable after its user got a password another
-- way (an admin's PATCH) or was deactivated: whoever held the token could
-- later replace the password set since, or sign in once the user was
-- reactivated.  Now:
--   * user_change ends the user's pending invitations whenever it ends
--     their sessions (a new password, or deactivation), in the same
--     transaction.  Nothing lists or re-sends invitations, so an ended one
--     is deleted; an admin who wants to let the user in again sets a
--     password;
--   * accepting one (src/users/auth.c) also requires, in the transaction
--     that accepts it, that the user is active and still has no password.

CREATE OR REPLACE FUNCTION user_change(p_tenant uuid, p_user uuid, p_name text, p_role text,
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
        DELETE FROM user_invitations
         WHERE tenant_id = p_tenant AND user_id = p_user AND accepted_at IS NULL;
    END IF;
    RETURN true;
END $$;

-- Invitations made before this migration for users who already have a
-- password, or are inactive, end now too.
DELETE FROM user_invitations i
 USING users u
 WHERE u.tenant_id = i.tenant_id AND u.id = i.user_id AND i.accepted_at IS NULL
   AND (u.password_hash IS NOT NULL OR NOT u.is_active);
