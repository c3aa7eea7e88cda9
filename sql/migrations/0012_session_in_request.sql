-- 0012_session_in_request.sql - a signed-in request checks its session in
-- its own transaction.
--
-- Before, the server verified a session in one transaction and then ran the
-- request in a second: two round trips per signed-in request, and no
-- batching.  Now it remembers sessions it has verified (by the token's
-- SHA-256) and, for one it remembers, sets the user context from memory and
-- makes the transaction's first statement this check.  The check reads the
-- session in the same snapshot as the work that follows, so a session that
-- has been revoked, has expired, whose user was deactivated or whose role
-- changed makes the transaction fail before it does anything (TKS01); the
-- server then forgets it and verifies the session afresh, as before.
--
-- It checks the context actually set (app.current_user and
-- app.current_user_role, via current_app_user_id()/current_app_user_role()),
-- not values passed beside it, so the statement vouches for exactly what the
-- RLS policies will read.  SECURITY INVOKER: it runs as tekup_app under the
-- tenant wall like the server's own verification query.  PL/pgSQL keeps its
-- plan for the connection.

CREATE FUNCTION session_assert(p_tenant uuid, p_token_hash bytea) RETURNS void
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
            = current_app_user_role();
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the session has ended or changed' USING ERRCODE = 'TKS01';
    END IF;
END $$;
REVOKE ALL ON FUNCTION session_assert(uuid, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION session_assert(uuid, bytea) TO tekup_app;
