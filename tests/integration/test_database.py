"""test_database.py - database-level security, connected as the request role
(issue 2, sections 4, 5, 6 and 11).

Connected with psycopg2 as tekup_app (the role the server's pool uses), with
no help from the server:

  - role attributes: not superuser, NOBYPASSRLS, no CREATEDB/CREATEROLE, not
    a member of the owner, owns nothing; every table is owned by tekup_owner;
  - the exact table grants (SELECT on tenants, tenant_settings; SELECT,
    INSERT, UPDATE, DELETE on leads, activities and - since 0008 - users,
    tenant_users, sessions, login_failures; nothing on api_keys, audit_logs,
    plans, schema_migrations or any other table) and the exact set of
    functions it may execute;
  - RLS ENABLED and FORCED on every tenant-scoped table; every policy goes
    through current_tenant_id(): one per command on api_keys,
    tenant_settings, users, tenant_users, audit_logs; one FOR ALL on
    sessions and login_failures; on leads and activities a RESTRICTIVE
    FOR ALL tenant wall AND-ed with the permissive role policies
    (lead_access(created_by, assigned_to) on writes; on reads, since 0010,
    the same rule with its row-independent parts as InitPlans;
    activity_lead_visible(...)) -
    and, whatever the policies, every command on every tenant table is bound
    to the tenant;
  - without tenant context: zero rows from every granted table, 42501 from
    the others, inserts fail with 42501 (on leads naming leads_tenant_wall)
    and updates/deletes touch nothing - also with an admin user context;
  - with SET LOCAL app.current_tenant = A: only A's rows (tenants included),
    whatever app.current_user / app.current_user_role say (a user of B, or
    an "admin", sees nothing of B: the role rule is inside the wall);
    writing B's tenant_id, or changing tenant_id, fails with 42501;
    assigned_to, sessions.user_id, tenant_users.user_id must name a user of
    the same tenant (composite foreign keys: 23503);
  - SET row_security = off raises 42501 instead of bypassing;
  - api_keys is unreadable; resolve_api_key() answers only for a valid
    key's SHA-256 and only the key's own tenant; keys are stored only hashed;
  - SET LOCAL context ends with the transaction (commit, rollback, error).
"""
import hashlib
import json
import time
import uuid

import psycopg2
import psycopg2.errors

from harness import test

TENANT_TABLES = ("api_keys", "tenant_settings", "users", "tenant_users", "leads",
                 "activities", "audit_logs", "sessions", "login_failures", "user_invitations")
ALL_TABLES = TENANT_TABLES + ("tenants", "plans", "schema_migrations")
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
CRUD = {"SELECT", "INSERT", "UPDATE", "DELETE"}
# 0002 (tenants, tenant_settings, leads, activities), 0008 (users,
# tenant_users, sessions, login_failures) and 0009 (user_invitations);
# every other table: nothing.
EXPECTED_GRANTS = {
    "tenants": {"SELECT"},
    "tenant_settings": {"SELECT"},
    "leads": CRUD,
    "activities": CRUD,
    "users": CRUD,
    "tenant_users": CRUD,
    "sessions": CRUD,
    "login_failures": CRUD,
    "user_invitations": CRUD,
    "api_keys": set(),
    "audit_logs": set(),
    "plans": set(),
    "schema_migrations": set(),
}
# Granted tables the request role reads through RLS, and the ungranted ones.
GRANTED_TENANT_TABLES = ("leads", "activities", "tenant_settings", "users", "tenant_users",
                         "sessions", "login_failures", "user_invitations")
UNGRANTED_TABLES = ("api_keys", "audit_logs", "plans", "schema_migrations")
# Every function tekup_app may execute (0002, 0006, 0008); nothing else.
EXPECTED_FUNCTIONS = {
    "current_tenant_id()", "current_app_user_id()", "forbid_tenant_id_change()",
    "leads_track_status()", "resolve_api_key(bytea)",
    "json_compact_length(jsonb)", "lead_custom_fields_checked(jsonb)",
    "lead_custom_fields_merge(jsonb,jsonb)",
    "current_app_user_role()", "lead_access(uuid,uuid)", "activity_lead_visible(uuid,uuid)",
    "leads_set_created_by()", "activities_touch_lead()", "leads_record_status_change()",
    "users_enforce_max()", "user_json(uuid,uuid)",
    "user_change(uuid,uuid,text,text,boolean,text)",
    "session_assert(uuid,bytea)", "wal_flush_point()", "lead_wall_tenant_id()",
}
TENANT_EXPR = "(tenant_id = current_tenant_id())"
# 0016: the leads wall also refuses a plain user's context on the login role.
LEADS_TENANT_EXPR = "(tenant_id = lead_wall_tenant_id())"
WALL_EXPR = {"leads": LEADS_TENANT_EXPR}


# --------------------------------------------------------------------------
# helpers


class World:
    pass


def owner_query(ctx, sql, params=()):
    c = ctx.owner_db()
    try:
        cur = c.cursor()
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None
    finally:
        c.close()


def world(ctx):
    """Tenants A and B with a row in every tenant-scoped table (made by the
    owner, who bypasses RLS), so "zero rows" means something."""
    w = getattr(ctx, "_database_world", None)
    if w is not None:
        return w
    w = World()
    tag = uuid.uuid4().hex[:8]
    w.a = ctx.new_tenant(name="Db Alpha %s" % tag, sample_leads=3)
    w.b = ctx.new_tenant(name="Db Bravo %s" % tag, sample_leads=5)
    c = ctx.owner_db()
    w.user = {}
    try:
        cur = c.cursor()
        for t in (w.a, w.b):
            cur.execute("INSERT INTO users (tenant_id, email, name) VALUES (%s, %s, 'U')"
                        " RETURNING id::text", (t.id, "u-%s@example.com" % tag))
            uid = cur.fetchone()[0]
            w.user[t.id] = uid
            cur.execute("INSERT INTO tenant_users (tenant_id, user_id, role)"
                        " VALUES (%s, %s, 'user')", (t.id, uid))
            cur.execute("SELECT id::text FROM leads WHERE tenant_id = %s ORDER BY id LIMIT 1",
                        (t.id,))
            lid = cur.fetchone()[0]
            # The tenant's first lead is assigned to its user (a real user of
            # the same tenant: assigned_to is a foreign key into users).
            cur.execute("UPDATE leads SET assigned_to = %s WHERE tenant_id = %s AND id = %s",
                        (uid, t.id, lid))
            cur.execute("INSERT INTO activities (tenant_id, lead_id, user_id, type, body)"
                        " VALUES (%s, %s, %s, 'note', 'hello')", (t.id, lid, uid))
            cur.execute("INSERT INTO audit_logs (tenant_id, table_name, record_id, action)"
                        " VALUES (%s, 'leads', %s, 'INSERT')", (t.id, lid))
            cur.execute("INSERT INTO sessions (tenant_id, user_id, token_hash, expires_at)"
                        " VALUES (%s, %s, %s, now() + interval '1 hour')",
                        (t.id, uid, psycopg2.Binary(hashlib.sha256(uuid.uuid4().bytes).digest())))
            cur.execute("INSERT INTO login_failures (tenant_id, email_lower, failures)"
                        " VALUES (%s, %s, 1)", (t.id, "u-%s@example.com" % tag))
            cur.execute("INSERT INTO user_invitations (tenant_id, user_id, token_hash)"
                        " VALUES (%s, %s, %s)",
                        (t.id, uid, psycopg2.Binary(hashlib.sha256(uuid.uuid4().bytes).digest())))
    finally:
        c.close()
    w.a_user, w.b_user = w.user[w.a.id], w.user[w.b.id]
    w.a_lead = owner_query(ctx, "SELECT id::text FROM leads WHERE tenant_id = %s ORDER BY id"
                                " LIMIT 1", (w.a.id,))[0][0]
    w.b_lead = owner_query(ctx, "SELECT id::text FROM leads WHERE tenant_id = %s ORDER BY id"
                                " LIMIT 1", (w.b.id,))[0][0]
    ctx._database_world = w
    return w


def tables_snapshot(ctx):
    """Every row of every tenant-scoped table (and tenants), as the owner sees it."""
    return {table: owner_query(ctx, "SELECT row_to_json(x)::text FROM %s x ORDER BY 1" % table)
            for table in TENANT_TABLES + ("tenants",)}


def expect_sqlstate(cur, sql, params, sqlstate, message_part=None):
    """Runs sql expecting an error with sqlstate; rolls the transaction back."""
    conn = cur.connection
    try:
        cur.execute(sql, params)
    except psycopg2.Error as e:
        conn.rollback()
        assert e.pgcode == sqlstate, "%s: expected SQLSTATE %s, got %s (%s)" % (
            sql, sqlstate, e.pgcode, e.pgerror)
        if message_part:
            assert message_part in e.pgerror, (sql, e.pgerror)
        return e
    rows = cur.fetchall() if cur.description else None
    conn.rollback()
    raise AssertionError("%s: expected SQLSTATE %s, but it succeeded (%r)" % (sql, sqlstate, rows))


def set_tenant(cur, tenant_id):
    # As the server does: its own statement, SET LOCAL, a validated UUID.
    uuid.UUID(tenant_id)
    cur.execute("SET LOCAL app.current_tenant = '%s'" % tenant_id)


def set_user(cur, user_id, role):
    # As the server does for a signed-in user (from its verified session).
    uuid.UUID(user_id)
    assert role in ("admin", "user")
    cur.execute("SET LOCAL app.\"current_user\" = '%s'" % user_id)
    cur.execute("SET LOCAL app.current_user_role = '%s'" % role)
    if role != "admin":  # a plain user reads under the user rule (0016)
        cur.execute("SET LOCAL ROLE tekup_app_user")


def current_context(cur):
    cur.execute("SELECT current_setting('app.current_tenant', true), current_tenant_id()")
    return cur.fetchone()


# --------------------------------------------------------------------------
# role, ownership, grants, RLS flags, policies


@test
def request_role_attributes(ctx):
    c = ctx.app_db()
    try:
        cur = c.cursor()
        cur.execute("SELECT current_user, session_user")
        assert cur.fetchone() == ("tekup_app", "tekup_app")
        cur.execute("SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolreplication,"
                    " rolinherit, rolcanlogin FROM pg_roles WHERE rolname = 'tekup_app'")
        sup, bypass, createdb, createrole, repl, inherit, login = cur.fetchone()
        assert (sup, bypass, createdb, createrole, repl, login) == (
            False, False, False, False, False, True)
        cur.execute("SELECT pg_has_role('tekup_app', 'tekup_owner', 'MEMBER'),"
                    " pg_has_role('tekup_app', 'tekup_owner', 'USAGE')")
        assert cur.fetchone() == (False, False)
        # Member of tekup_app_user only, to SET LOCAL ROLE into it for a
        # signed-in user (0016), and NOINHERIT: it takes neither that role's
        # policies nor any privileges from it.
        cur.execute("SELECT g.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member"
                    " JOIN pg_roles g ON g.oid = m.roleid WHERE r.rolname = 'tekup_app'")
        assert cur.fetchall() == [("tekup_app_user",)]
        assert inherit is False
        # tekup_app_user: no login, no bypass, no membership of its own.
        cur.execute("SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolreplication,"
                    " rolcanlogin FROM pg_roles WHERE rolname = 'tekup_app_user'")
        assert cur.fetchone() == (False, False, False, False, False, False)
        cur.execute("SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member"
                    " WHERE r.rolname = 'tekup_app_user'")
        assert cur.fetchone()[0] == 0
        # Owns no table, view, sequence or function in public.
        cur.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = 'tekup_app'")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                    " WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) = 'tekup_app'")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'")
        owners = dict(cur.fetchall())
        assert set(ALL_TABLES) <= set(owners), owners
        assert set(owners.values()) == {"tekup_owner"}, owners
        # The owner, in turn, is no superuser (BYPASSRLS is what it needs).
        cur.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'tekup_owner'")
        assert cur.fetchone() == (False, True)
        # It cannot create objects in public, nor become the owner.
        expect_sqlstate(cur, "CREATE TABLE public.tk_probe (x int)", None, "42501")
        expect_sqlstate(cur, "SET ROLE tekup_owner", None, "42501")
        expect_sqlstate(cur, "SET SESSION AUTHORIZATION tekup_owner", None, "42501")
    finally:
        c.close()


def assert_request_role_grants(cur, role):
    # Every table in the schema: the listed grants, and none on any other
    # (a table added later gets nothing unless granted on purpose).
    cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    tables = [r[0] for r in cur.fetchall()]
    assert set(EXPECTED_GRANTS) <= set(tables), tables
    for table in tables:
        want = EXPECTED_GRANTS.get(table, set())
        got = set()
        for priv in PRIVILEGES:
            cur.execute("SELECT has_table_privilege('" + role + "', %s, %s)",
                        ("public." + table, priv))
            if cur.fetchone()[0]:
                got.add(priv)
        assert got == want, "%s: %s has %s, expected %s" % (table, role, got, want)
        # No column-level grants either.
        cur.execute("SELECT count(*) FROM information_schema.column_privileges"
                    " WHERE grantee = '" + role + "' AND table_name = %s"
                    " AND privilege_type NOT IN %s",
                    (table, tuple(want) if want else ("",)))
        assert cur.fetchone()[0] == 0, table
    # No sequence either.
    cur.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relkind = 'S'"
                " AND (has_sequence_privilege('" + role + "', c.oid, 'USAGE')"
                " OR has_sequence_privilege('" + role + "', c.oid, 'SELECT')"
                " OR has_sequence_privilege('" + role + "', c.oid, 'UPDATE'))")
    assert cur.fetchall() == []
    # Functions: exactly the granted set (a function added later without
    # REVOKE ... FROM PUBLIC would show up here).
    cur.execute("SELECT p.oid::regprocedure::text FROM pg_proc p"
                " JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE n.nspname = 'public' AND has_function_privilege('" + role + "', p.oid,"
                " 'EXECUTE')")
    got_funcs = {r[0] for r in cur.fetchall()}
    assert got_funcs == EXPECTED_FUNCTIONS, (
        "extra: %s, missing: %s" % (sorted(got_funcs - EXPECTED_FUNCTIONS),
                                    sorted(EXPECTED_FUNCTIONS - got_funcs)))
    # The operator's functions in particular stay closed.
    for fn in ("make_tenant_slug(text)", "tenant_apply_plan(uuid,text)",
               "create_sample_data(uuid,uuid,integer)", "tenant_usage(uuid)",
               "tenant_set_status(uuid,text)", "delete_tenant(uuid,boolean)",
               "migrate_tenant_data(uuid,uuid,boolean,boolean,boolean)",
               "purge_tenant_retention(uuid,boolean)"):
        cur.execute("SELECT has_function_privilege('" + role + "', %s, 'EXECUTE')", (fn,))
        assert cur.fetchone()[0] is False, fn
    cur.execute("SELECT count(*) FROM pg_proc WHERE proname = 'provision_tenant'"
                " AND has_function_privilege('" + role + "', oid, 'EXECUTE')")
    assert cur.fetchone()[0] == 0
    cur.execute("SELECT prosecdef, provolatile FROM pg_proc WHERE proname = 'resolve_api_key'")
    assert cur.fetchall() == [(True, "v")]
    cur.execute("SELECT prosecdef, provolatile, pg_get_functiondef(oid) FROM pg_proc"
                " WHERE proname = 'current_tenant_id'")
    rows = cur.fetchall()
    assert len(rows) == 1 and rows[0][:2] == (False, "s"), rows
    assert "NULLIF(current_setting('app.current_tenant', true), '')::uuid" in rows[0][2], rows
    # The only SECURITY DEFINER functions tekup_app can execute:
    # resolve_api_key, and wal_flush_point, which sets a sequence of its
    # own (0013) and takes no argument.
    cur.execute("SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE n.nspname = 'public' AND p.prosecdef"
                " AND has_function_privilege('" + role + "', p.oid, 'EXECUTE') ORDER BY 1")
    assert cur.fetchall() == [("resolve_api_key",), ("wal_flush_point",)]
    cur.execute("SELECT pg_get_functiondef('wal_flush_point()'::regprocedure)")
    body = cur.fetchone()[0]
    assert "PERFORM setval('public.wal_flush_seq', 1, true);" in body, body
    # setval writes WAL (which the anchor's COMMIT must flush) only for
    # a logged sequence.
    cur.execute("SELECT relpersistence FROM pg_class WHERE oid = 'public.wal_flush_seq'::regclass")
    assert cur.fetchone()[0] == "p"


@test
def request_role_has_exactly_the_needed_grants(ctx):
    # tekup_app_user (0016) holds exactly tekup_app's grants: only the
    # policies differ between the two.
    c = ctx.app_db()
    try:
        cur = c.cursor()
        for role in ("tekup_app", "tekup_app_user"):
            assert_request_role_grants(cur, role)
        c.rollback()
    finally:
        c.close()


@test
def rls_enabled_and_forced_on_every_tenant_table(ctx):
    rows = owner_query(ctx, "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity"
                            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                            " WHERE n.nspname = 'public' AND c.relkind = 'r'")
    flags = {r[0]: (r[1], r[2]) for r in rows}
    for table in TENANT_TABLES + ("tenants",):
        assert flags.get(table) == (True, True), "%s: relrowsecurity/relforcerowsecurity = %r" % (
            table, flags.get(table))
    # Every table with a tenant_id column that the request role can touch at
    # all is covered (operator-only tables may carry a tenant_id without RLS).
    reachable = {r[0] for r in owner_query(
        # By oid, from pg_class, so the privilege check never meets a name
        # outside public (the planner may evaluate it before other filters).
        ctx, "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
             " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'"
             " AND NOT a.attisdropped"
             " WHERE n.nspname = 'public' AND c.relkind = 'r'"
             " AND (has_table_privilege('tekup_app', c.oid, 'SELECT')"
             " OR has_table_privilege('tekup_app', c.oid, 'INSERT')"
             " OR has_table_privilege('tekup_app', c.oid, 'UPDATE')"
             " OR has_table_privilege('tekup_app', c.oid, 'DELETE'))")}
    for table in reachable:
        assert flags.get(table) == (True, True), table
    for table in TENANT_TABLES:
        nullable = owner_query(ctx, "SELECT is_nullable FROM information_schema.columns"
                                    " WHERE table_schema = 'public' AND table_name = %s"
                                    " AND column_name = 'tenant_id'", (table,))
        assert nullable == [("NO",)], table


ROLE_EXPR = "lead_access(created_by, assigned_to)"
# 0016: reads by role - the login role reads the whole tenant (inside the
# restrictive wall), tekup_app_user the leads assigned to or created by the
# user.
USER_READ_EXPR = "((assigned_to = current_app_user_id()) OR (created_by = current_app_user_id()))"
# The policies that apply to one role only; every other applies to all.
POLICY_ROLES = {("leads", "leads_role_select"): ["tekup_app"],
                ("leads", "leads_user_select"): ["tekup_app_user"]}
VIA_LEAD_EXPR = "activity_lead_visible(tenant_id, lead_id)"
# (name, permissive, cmd, qual, with_check) of every policy, per table.
EXPECTED_POLICIES = {
    "leads": {
        ("leads_tenant_wall", "RESTRICTIVE", "ALL", LEADS_TENANT_EXPR, LEADS_TENANT_EXPR),
        ("leads_role_select", "PERMISSIVE", "SELECT", "true", None),
        ("leads_user_select", "PERMISSIVE", "SELECT", USER_READ_EXPR, None),
        ("leads_role_insert", "PERMISSIVE", "INSERT", None, ROLE_EXPR),
        ("leads_role_update", "PERMISSIVE", "UPDATE", ROLE_EXPR, ROLE_EXPR),
        ("leads_role_delete", "PERMISSIVE", "DELETE", ROLE_EXPR, None),
    },
    "activities": {
        ("activities_tenant_wall", "RESTRICTIVE", "ALL", TENANT_EXPR, TENANT_EXPR),
        ("activities_via_lead", "PERMISSIVE", "ALL", VIA_LEAD_EXPR, VIA_LEAD_EXPR),
    },
    "tenants": {("tenants_self_select", "PERMISSIVE", "SELECT", "(id = current_tenant_id())",
                 None)},
}
for _t in ("api_keys", "tenant_settings", "users", "tenant_users", "audit_logs"):
    EXPECTED_POLICIES[_t] = {
        (_t + "_tenant_select", "PERMISSIVE", "SELECT", TENANT_EXPR, None),
        (_t + "_tenant_insert", "PERMISSIVE", "INSERT", None, TENANT_EXPR),
        (_t + "_tenant_update", "PERMISSIVE", "UPDATE", TENANT_EXPR, TENANT_EXPR),
        (_t + "_tenant_delete", "PERMISSIVE", "DELETE", TENANT_EXPR, None),
    }
for _t in ("sessions", "login_failures", "user_invitations"):
    EXPECTED_POLICIES[_t] = {(_t + "_tenant", "PERMISSIVE", "ALL", TENANT_EXPR, TENANT_EXPR)}


def tenant_bound(policies, cmd, tenant_expr):
    """Whether the policies bind command cmd to the tenant: PostgreSQL ORs the
    applicable permissive policies and ANDs the restrictive ones onto them,
    so cmd is bound if an applicable RESTRICTIVE policy is the tenant check
    (in USING and, for writes, WITH CHECK), or every applicable PERMISSIVE
    policy is (and there is at least one)."""
    applicable = [p for p in policies if p[2] in (cmd, "ALL")]

    def binds(qual, check):
        # INSERT has only WITH CHECK; SELECT/DELETE only USING; UPDATE both
        # (an ALL policy without WITH CHECK uses its USING for new rows).
        if cmd == "INSERT":
            return (check or qual) == tenant_expr
        if cmd == "UPDATE":
            return qual == tenant_expr and (check or qual) == tenant_expr
        return qual == tenant_expr

    if any(p[1] == "RESTRICTIVE" and binds(p[3], p[4]) for p in applicable):
        return True
    permissive = [p for p in applicable if p[1] == "PERMISSIVE"]
    return bool(permissive) and all(binds(p[3], p[4]) for p in permissive)


@test
def every_policy_goes_through_current_tenant_id(ctx):
    rows = owner_query(ctx, "SELECT tablename, policyname, permissive, roles::text[], cmd, qual,"
                            " with_check FROM pg_policies WHERE schemaname = 'public'")
    by_table = {}
    for table, name, permissive, roles, cmd, qual, check in rows:
        assert roles == POLICY_ROLES.get((table, name), ["public"]), (table, name, roles)
        by_table.setdefault(table, set()).add((name, permissive, cmd, qual, check))
    assert set(TENANT_TABLES) | {"tenants"} <= set(by_table), by_table.keys()
    # Exactly the policies the migrations define, on each of these tables.
    for table, want in EXPECTED_POLICIES.items():
        assert by_table.get(table) == want, (table, sorted(by_table.get(table, ())),
                                             sorted(want))
    # leads and activities: the tenant check is ONE restrictive policy for
    # every command - were it permissive it would be OR-ed with the role
    # policies, and a role rule could then reach another tenant's rows.
    for table in ("leads", "activities"):
        restrictive = [p for p in by_table[table] if p[1] == "RESTRICTIVE"]
        wall = WALL_EXPR.get(table, TENANT_EXPR)
        assert restrictive == [(table + "_tenant_wall", "RESTRICTIVE", "ALL", wall,
                                wall)], (table, restrictive)
        # A restrictive policy alone grants nothing: there is a permissive
        # (role) policy for every command, so the API still works.
        for cmd in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            assert any(p[1] == "PERMISSIVE" and p[2] in (cmd, "ALL")
                       for p in by_table[table]), (table, cmd)
    # Whatever the policy set: every command on every tenant table (and on
    # any other table with policies and a tenant_id) is bound to the tenant.
    with_tenant_id = {r[0] for r in owner_query(
        ctx, "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public'"
             " AND column_name = 'tenant_id'")}
    for table in set(TENANT_TABLES) | (set(by_table) & with_tenant_id):
        for cmd in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            assert tenant_bound(by_table[table], cmd, WALL_EXPR.get(table, TENANT_EXPR)), (
                table, cmd, sorted(by_table[table]))
    # The leads wall's function is current_tenant_id() but for a plain
    # user's context outside tekup_app_user, where it is NULL.
    body = owner_query(ctx, "SELECT pg_get_functiondef('lead_wall_tenant_id()'::regprocedure)")
    assert ("SELECT CASE WHEN current_setting('app.current_user_role', true) IS DISTINCT FROM"
            " 'user'\n                  OR current_user = 'tekup_app_user'\n"
            "                THEN current_tenant_id() END") in body[0][0], body
    assert tenant_bound(by_table["tenants"], "SELECT", "(id = current_tenant_id())")
    # No policy is a bare "true" but the login role's read of leads, which
    # the restrictive wall above binds to the tenant.  No subqueries (Citus
    # rejects them in an INSERT).
    for table, name, permissive, roles, cmd, qual, check in rows:
        assert "SELECT" not in (check or "").upper() + (qual or "").upper(), (name, qual, check)
        if (table, name) != ("leads", "leads_role_select"):
            assert "true" not in (qual or "").lower() + (check or "").lower(), (name, qual)
    # The role functions the policies call are plain (not SECURITY DEFINER),
    # so activity_lead_visible's look-up of the lead runs under the caller's
    # own row security.
    fns = owner_query(ctx, "SELECT proname, prosecdef, provolatile FROM pg_proc"
                           " WHERE proname IN ('lead_access', 'activity_lead_visible',"
                           " 'current_app_user_role', 'current_app_user_id')"
                           " ORDER BY proname")
    assert fns == [("activity_lead_visible", False, "s"), ("current_app_user_id", False, "s"),
                   ("current_app_user_role", False, "s"), ("lead_access", False, "s")], fns


@test
def request_role_cannot_change_the_security_setup(ctx):
    c = ctx.app_db()
    try:
        cur = c.cursor()
        for sql in ("ALTER TABLE leads NO FORCE ROW LEVEL SECURITY",
                    "ALTER TABLE leads DISABLE ROW LEVEL SECURITY",
                    "DROP POLICY leads_tenant_wall ON leads",
                    "ALTER POLICY leads_tenant_wall ON leads USING (true) WITH CHECK (true)",
                    "DROP POLICY leads_role_select ON leads",
                    "DROP POLICY activities_tenant_wall ON activities",
                    "CREATE POLICY open_all ON leads FOR SELECT USING (true)",
                    "CREATE POLICY open_all ON leads AS PERMISSIVE FOR ALL USING (true)",
                    "ALTER TABLE users DISABLE ROW LEVEL SECURITY",
                    "ALTER TABLE sessions NO FORCE ROW LEVEL SECURITY",
                    "DROP POLICY users_tenant_select ON users",
                    "DROP POLICY sessions_tenant ON sessions",
                    "ALTER TABLE leads DISABLE TRIGGER leads_tenant_id_immutable",
                    "ALTER TABLE leads DISABLE TRIGGER leads_set_created_by",
                    "ALTER TABLE leads DROP CONSTRAINT leads_assigned_to_fkey",
                    "CREATE SCHEMA tk_evil",
                    "CREATE OR REPLACE FUNCTION current_tenant_id() RETURNS uuid LANGUAGE sql"
                    " AS $$ SELECT NULL::uuid $$",
                    "CREATE OR REPLACE FUNCTION lead_access(uuid, uuid) RETURNS boolean"
                    " LANGUAGE sql AS $$ SELECT true $$",
                    "DROP POLICY leads_user_select ON leads",
                    "ALTER POLICY leads_user_select ON leads TO tekup_app",
                    "ALTER ROLE tekup_app_user BYPASSRLS",
                    "ALTER ROLE tekup_app INHERIT",
                    "GRANT tekup_owner TO tekup_app_user",
                    "ALTER FUNCTION activity_lead_visible(uuid, uuid) SECURITY DEFINER",
                    "GRANT SELECT ON api_keys TO tekup_app",
                    "ALTER ROLE tekup_app BYPASSRLS"):
            expect_sqlstate(cur, sql, None, "42501")
    finally:
        c.close()


@test
def planner_statistics_do_not_leak_other_tenants_values(ctx):
    """pg_stats holds sample values of every row; PostgreSQL hides it from a
    role that row security applies to."""
    w = world(ctx)
    for table in ("leads", "users", "tenant_users", "sessions", "login_failures"):
        owner_query(ctx, "ANALYZE " + table)
        assert owner_query(ctx, "SELECT count(*) FROM pg_stats WHERE tablename = %s",
                           (table,))[0][0] > 0, table
    c = ctx.app_db()
    try:
        cur = c.cursor()
        set_tenant(cur, w.a.id)
        cur.execute("SELECT count(*) FROM pg_stats WHERE tablename IN"
                    " ('leads', 'tenants', 'activities', 'tenant_settings', 'users',"
                    " 'tenant_users', 'sessions', 'login_failures')")
        assert cur.fetchone()[0] == 0
        c.rollback()
    finally:
        c.close()


# --------------------------------------------------------------------------
# no tenant context


@test
def without_context_granted_tables_show_zero_rows(ctx):
    w = world(ctx)
    # The rows exist (seen by the owner).
    for table in TENANT_TABLES:
        n = owner_query(ctx, "SELECT count(*) FROM %s WHERE tenant_id IN (%%s, %%s)" % table,
                        (w.a.id, w.b.id))[0][0]
        assert n >= 2, (table, n)
    c = ctx.app_db()
    try:
        cur = c.cursor()
        assert current_context(cur) in (("", None), (None, None))
        for table in GRANTED_TENANT_TABLES + ("tenants",):
            cur.execute("SELECT count(*) FROM %s" % table)
            assert cur.fetchone()[0] == 0, table
            cur.execute("SELECT * FROM %s" % table)
            assert cur.fetchall() == [], table
        cur.execute("SELECT count(*) FROM leads WHERE tenant_id = %s", (w.a.id,))
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM tenants WHERE id = %s", (w.a.id,))
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM users WHERE id = %s", (w.a_user,))
        assert cur.fetchone()[0] == 0
        # A user context without a tenant context: still nothing, even as
        # "admin" and for the leads assigned to that very user.
        set_user(cur, w.a_user, "admin")
        for table in GRANTED_TENANT_TABLES:
            cur.execute("SELECT count(*) FROM %s" % table)
            assert cur.fetchone()[0] == 0, table
        cur.execute("SELECT count(*) FROM leads WHERE assigned_to = %s", (w.a_user,))
        assert cur.fetchone()[0] == 0
        c.rollback()
        for table in UNGRANTED_TABLES:
            expect_sqlstate(cur, "SELECT count(*) FROM %s" % table, None, "42501",
                            "permission denied for table " + table)
        # An empty context is the same as none.
        cur.execute("SET LOCAL app.current_tenant = ''")
        cur.execute("SELECT count(*) FROM leads")
        assert cur.fetchone()[0] == 0
        c.rollback()
        # A context that is not a UUID raises rather than matching anything.
        cur.execute("SET LOCAL app.current_tenant = 'not-a-uuid'")
        expect_sqlstate(cur, "SELECT count(*) FROM leads", None, "22P02")
    finally:
        c.close()


@test
def without_context_writes_fail_or_touch_nothing(ctx):
    w = world(ctx)
    before = tables_snapshot(ctx)
    c = ctx.app_db()
    try:
        cur = c.cursor()
        # The restrictive tenant wall is what refuses it (the role rule
        # alone would let an integration - no user - insert).
        expect_sqlstate(cur, "INSERT INTO leads (tenant_id, name) VALUES (%s, 'no context')",
                        (w.a.id,), "42501",
                        'row-level security policy "leads_tenant_wall" for table "leads"')
        # The same with a user context, as an admin and as the assignee.
        for role in ("admin", "user"):
            set_user(cur, w.a_user, role)
            expect_sqlstate(cur, "INSERT INTO leads (tenant_id, name, assigned_to)"
                                 " VALUES (%s, 'no context', %s)", (w.a.id, w.a_user), "42501",
                            'row-level security policy "leads_tenant_wall" for table "leads"')
        expect_sqlstate(cur, "INSERT INTO activities (tenant_id, lead_id, type)"
                             " VALUES (%s, %s, 'note')", (w.a.id, w.a_lead), "42501",
                        'row-level security policy')
        expect_sqlstate(cur, "INSERT INTO users (tenant_id, email) VALUES (%s, 'nc@example.com')",
                        (w.a.id,), "42501", 'row-level security policy')
        expect_sqlstate(cur, "INSERT INTO tenant_users (tenant_id, user_id, role)"
                             " VALUES (%s, %s, 'admin')", (w.a.id, w.a_user), "42501",
                        'row-level security policy')
        expect_sqlstate(cur, "INSERT INTO sessions (tenant_id, user_id, token_hash, expires_at)"
                             " VALUES (%s, %s, %s, now() + interval '1 day')",
                        (w.a.id, w.a_user, psycopg2.Binary(b"\x01" * 32)), "42501",
                        'row-level security policy')
        expect_sqlstate(cur, "INSERT INTO login_failures (tenant_id, email_lower)"
                             " VALUES (%s, 'nc@example.com')", (w.a.id,), "42501",
                        'row-level security policy')
        for context_user in (None, "admin"):
            if context_user:
                set_user(cur, w.a_user, context_user)
            cur.execute("UPDATE leads SET name = 'no context' WHERE tenant_id = %s", (w.a.id,))
            assert cur.rowcount == 0
            cur.execute("UPDATE leads SET name = 'no context'")
            assert cur.rowcount == 0
            cur.execute("DELETE FROM leads")
            assert cur.rowcount == 0
            cur.execute("DELETE FROM activities")
            assert cur.rowcount == 0
            cur.execute("UPDATE users SET name = 'no context'")
            assert cur.rowcount == 0
            cur.execute("UPDATE tenant_users SET role = 'admin'")
            assert cur.rowcount == 0
            cur.execute("UPDATE sessions SET revoked_at = now()")
            assert cur.rowcount == 0
            for table in ("sessions", "login_failures", "tenant_users", "users"):
                cur.execute("DELETE FROM %s" % table)
                assert cur.rowcount == 0, table
            # The database functions the server calls see no user either.
            cur.execute("SELECT user_json(%s, %s)", (w.a.id, w.a_user))
            assert cur.fetchone()[0] is None
            cur.execute("SELECT user_change(%s, %s, 'no context', NULL, NULL, NULL)",
                        (w.a.id, w.a_user))
            assert cur.fetchone()[0] is False
            c.commit()
        expect_sqlstate(cur, "TRUNCATE leads", None, "42501")
        expect_sqlstate(cur, "TRUNCATE users", None, "42501")
        expect_sqlstate(cur, "UPDATE tenants SET status = 'suspended'", None, "42501")
        expect_sqlstate(cur, "DELETE FROM api_keys", None, "42501")
        expect_sqlstate(cur, "DELETE FROM audit_logs", None, "42501")
        expect_sqlstate(cur, "INSERT INTO tenants (name, slug) VALUES ('x', 'x')", None, "42501")
    finally:
        c.close()
    assert tables_snapshot(ctx) == before


# --------------------------------------------------------------------------
# with a tenant context


@test
def with_context_only_that_tenants_rows_are_visible(ctx):
    w = world(ctx)
    c = ctx.app_db()
    try:
        cur = c.cursor()
        for t, other in ((w.a, w.b), (w.b, w.a)):
            set_tenant(cur, t.id)
            assert current_context(cur) == (t.id, t.id)
            cur.execute("SELECT DISTINCT tenant_id::text FROM leads")
            assert cur.fetchall() == [(t.id,)]
            cur.execute("SELECT count(*) FROM leads")
            assert cur.fetchone()[0] == ctx.count_leads(t.id)
            cur.execute("SELECT count(*) FROM leads WHERE tenant_id = %s", (other.id,))
            assert cur.fetchone()[0] == 0
            other_lead = w.b_lead if other is w.b else w.a_lead
            cur.execute("SELECT count(*) FROM leads WHERE id = %s", (other_lead,))
            assert cur.fetchone()[0] == 0
            cur.execute("SELECT id::text, name FROM tenants")
            assert cur.fetchall() == [(t.id, t.name)]
            cur.execute("SELECT tenant_id::text FROM tenant_settings")
            assert cur.fetchall() == [(t.id,)]
            # Every other granted tenant table: exactly this tenant's rows.
            for table in ("activities", "users", "tenant_users", "sessions", "login_failures"):
                cur.execute("SELECT DISTINCT tenant_id::text FROM %s" % table)
                assert cur.fetchall() == [(t.id,)], table
                cur.execute("SELECT count(*) FROM %s" % table)
                want = owner_query(ctx, "SELECT count(*) FROM %s WHERE tenant_id = %%s" % table,
                                   (t.id,))[0][0]
                assert cur.fetchone()[0] == want, table
            cur.execute("SELECT count(*) FROM users WHERE id = %s", (w.user[other.id],))
            assert cur.fetchone()[0] == 0
            cur.execute("SELECT user_json(%s, %s)", (other.id, w.user[other.id]))
            assert cur.fetchone()[0] is None
            cur.execute("SELECT user_json(%s, %s)::jsonb ->> 'id'", (t.id, w.user[t.id]))
            assert cur.fetchone()[0] == w.user[t.id]
            # A join across tables cannot reach the other tenant either.
            cur.execute("SELECT count(*) FROM leads l JOIN tenants x ON x.id = l.tenant_id"
                        " WHERE x.id = %s", (other.id,))
            assert cur.fetchone()[0] == 0
            cur.execute("SELECT count(*) FROM leads l JOIN users u ON u.id = l.assigned_to"
                        " WHERE u.tenant_id = %s", (other.id,))
            assert cur.fetchone()[0] == 0
            c.rollback()
            # The role rule is inside the tenant wall.  As an "admin" (even
            # with the other tenant's user id): all of this tenant's leads,
            # none of the other's.
            set_tenant(cur, t.id)
            set_user(cur, w.user[other.id], "admin")
            cur.execute("SELECT DISTINCT tenant_id::text FROM leads")
            assert cur.fetchall() == [(t.id,)]
            cur.execute("SELECT count(*) FROM leads")
            assert cur.fetchone()[0] == ctx.count_leads(t.id)
            cur.execute("SELECT count(*) FROM leads WHERE id = %s", (other_lead,))
            assert cur.fetchone()[0] == 0
            c.rollback()
            # As the other tenant's user with role "user": the other
            # tenant's lead assigned to that very user stays invisible (two
            # permissive policies would have been OR-ed and shown it), and so
            # does everything of this tenant.
            set_tenant(cur, t.id)
            set_user(cur, w.user[other.id], "user")
            cur.execute("SELECT count(*) FROM leads")
            assert cur.fetchone()[0] == 0
            cur.execute("SELECT count(*) FROM leads WHERE assigned_to = %s", (w.user[other.id],))
            assert cur.fetchone()[0] == 0
            cur.execute("SELECT count(*) FROM activities")
            assert cur.fetchone()[0] == 0
            c.rollback()
            # As this tenant's own user: exactly the leads assigned to or
            # created by them, and only their activities.
            set_tenant(cur, t.id)
            set_user(cur, w.user[t.id], "user")
            want = sorted(r[0] for r in owner_query(
                ctx, "SELECT id::text FROM leads WHERE tenant_id = %s"
                     " AND (assigned_to = %s OR created_by = %s)",
                (t.id, w.user[t.id], w.user[t.id])))
            own_lead = w.a_lead if t is w.a else w.b_lead
            assert own_lead in want, want
            cur.execute("SELECT id::text FROM leads ORDER BY 1")
            assert [r[0] for r in cur.fetchall()] == want
            cur.execute("SELECT DISTINCT lead_id::text FROM activities")
            assert {r[0] for r in cur.fetchall()} <= set(want)
            c.rollback()
        # With a context, the ungranted tables are still closed.
        for table in ("api_keys", "audit_logs", "plans", "schema_migrations"):
            set_tenant(cur, w.a.id)
            expect_sqlstate(cur, "SELECT count(*) FROM %s" % table, None, "42501",
                            "permission denied for table " + table)
        # A context naming a tenant that does not exist sees nothing.
        set_tenant(cur, str(uuid.uuid4()))
        cur.execute("SELECT (SELECT count(*) FROM leads), (SELECT count(*) FROM tenants),"
                    " (SELECT count(*) FROM users), (SELECT count(*) FROM sessions)")
        assert cur.fetchone() == (0, 0, 0, 0)
        c.rollback()
    finally:
        c.close()


@test
def with_context_writes_to_another_tenant_fail(ctx):
    w = world(ctx)
    before = tables_snapshot(ctx)
    b_token = psycopg2.Binary(hashlib.sha256(uuid.uuid4().bytes).digest())
    c = ctx.app_db()
    try:
        cur = c.cursor()
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "INSERT INTO leads (tenant_id, name) VALUES (%s, 'into B')",
                        (w.b.id,), "42501",
                        'row-level security policy "leads_tenant_wall" for table "leads"')
        # An admin user context changes nothing about the tenant.
        set_tenant(cur, w.a.id)
        set_user(cur, w.a_user, "admin")
        expect_sqlstate(cur, "INSERT INTO leads (tenant_id, name) VALUES (%s, 'into B')",
                        (w.b.id,), "42501",
                        'row-level security policy "leads_tenant_wall" for table "leads"')
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "INSERT INTO activities (tenant_id, lead_id, type)"
                             " VALUES (%s, %s, 'note')", (w.b.id, w.b_lead), "42501")
        # An activity of A pointing at B's lead: refused by row security (the
        # lead is not visible) - and behind it the composite foreign key
        # (tenant_id, lead_id) finds no such lead of A (checked as the owner
        # below).
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "INSERT INTO activities (tenant_id, lead_id, type)"
                             " VALUES (%s, %s, 'note')", (w.a.id, w.b_lead), "42501",
                        "row-level security")
        # assigned_to must be a user of A: B's user is no user of A.
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "INSERT INTO leads (tenant_id, name, assigned_to)"
                             " VALUES (%s, 'to B user', %s)", (w.a.id, w.b_user), "23503",
                        "leads_assigned_to_fkey")
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "UPDATE leads SET assigned_to = %s WHERE id = %s",
                        (w.b_user, w.a_lead), "23503", "leads_assigned_to_fkey")
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "INSERT INTO leads (tenant_id, name, assigned_to)"
                             " VALUES (%s, 'to nobody', %s)", (w.a.id, str(uuid.uuid4())),
                        "23503", "leads_assigned_to_fkey")
        # Users, memberships, sessions, login failures of B: refused.
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "INSERT INTO users (tenant_id, email) VALUES (%s, 'x@example.com')",
                        (w.b.id,), "42501", "row-level security")
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "INSERT INTO tenant_users (tenant_id, user_id, role)"
                             " VALUES (%s, %s, 'admin')", (w.b.id, w.b_user), "42501",
                        "row-level security")
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "INSERT INTO sessions (tenant_id, user_id, token_hash, expires_at)"
                             " VALUES (%s, %s, %s, now() + interval '1 day')",
                        (w.b.id, w.b_user, b_token), "42501", "row-level security")
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "INSERT INTO login_failures (tenant_id, email_lower)"
                             " VALUES (%s, 'x@example.com')", (w.b.id,), "42501",
                        "row-level security")
        # ... and A's own rows cannot point at B's user (composite keys).
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "INSERT INTO tenant_users (tenant_id, user_id, role)"
                             " VALUES (%s, %s, 'admin')", (w.a.id, w.b_user), "23503")
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "INSERT INTO sessions (tenant_id, user_id, token_hash, expires_at)"
                             " VALUES (%s, %s, %s, now() + interval '1 day')",
                        (w.a.id, w.b_user, b_token), "23503")
        # Moving A's rows to B.
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "UPDATE leads SET tenant_id = %s WHERE id = %s",
                        (w.b.id, w.a_lead), "42501")
        for table in ("leads", "activities", "users", "tenant_users", "sessions",
                      "login_failures"):
            set_tenant(cur, w.a.id)
            expect_sqlstate(cur, "UPDATE %s SET tenant_id = %%s" % table, (w.b.id,), "42501")
        # B's rows are simply not there for A.
        set_tenant(cur, w.a.id)
        cur.execute("UPDATE leads SET name = 'hijacked' WHERE id = %s", (w.b_lead,))
        assert cur.rowcount == 0
        cur.execute("UPDATE leads SET name = 'hijacked' WHERE tenant_id = %s", (w.b.id,))
        assert cur.rowcount == 0
        cur.execute("DELETE FROM leads WHERE tenant_id = %s", (w.b.id,))
        assert cur.rowcount == 0
        cur.execute("DELETE FROM activities WHERE tenant_id = %s", (w.b.id,))
        assert cur.rowcount == 0
        cur.execute("UPDATE users SET name = 'hijacked', password_hash = 'x' WHERE id = %s",
                    (w.b_user,))
        assert cur.rowcount == 0
        cur.execute("UPDATE tenant_users SET role = 'admin' WHERE tenant_id = %s", (w.b.id,))
        assert cur.rowcount == 0
        cur.execute("UPDATE sessions SET expires_at = now() + interval '10 years'"
                    " WHERE tenant_id = %s", (w.b.id,))
        assert cur.rowcount == 0
        for table in ("sessions", "login_failures", "tenant_users", "users"):
            cur.execute("DELETE FROM %s WHERE tenant_id = %%s" % table, (w.b.id,))
            assert cur.rowcount == 0, table
        # The user functions do not reach B's user from A's context.
        cur.execute("SELECT user_change(%s, %s, 'hijacked', 'admin', false, 'x')",
                    (w.b.id, w.b_user))
        assert cur.fetchone()[0] is False
        c.commit()
        # Writes within A work (control), and are rolled back here.  As A's
        # signed-in user, created_by comes from the database (whatever the
        # statement says).
        set_tenant(cur, w.a.id)
        cur.execute("INSERT INTO leads (tenant_id, name, assigned_to) VALUES (%s, 'ok', %s)"
                    " RETURNING tenant_id::text, assigned_to::text", (w.a.id, w.a_user))
        assert cur.fetchone() == (w.a.id, w.a_user)
        set_user(cur, w.a_user, "user")
        cur.execute("INSERT INTO leads (tenant_id, name, created_by) VALUES (%s, 'mine', %s)"
                    " RETURNING tenant_id::text, created_by::text", (w.a.id, w.b_user))
        assert cur.fetchone() == (w.a.id, w.a_user)
        c.rollback()
    finally:
        c.close()
    # Behind row security, the composite foreign key refuses an activity of
    # A on B's lead even for the owner (who bypasses row security).
    o = ctx.owner_db()
    o.autocommit = False
    try:
        expect_sqlstate(o.cursor(), "INSERT INTO activities (tenant_id, lead_id, type)"
                                    " VALUES (%s, %s, 'note')", (w.a.id, w.b_lead), "23503")
        expect_sqlstate(o.cursor(), "UPDATE leads SET assigned_to = %s WHERE tenant_id = %s"
                                    " AND id = %s", (w.b_user, w.a.id, w.a_lead), "23503")
    finally:
        o.close()
    assert tables_snapshot(ctx) == before


@test
def tenant_id_cannot_change_even_for_the_owner(ctx):
    w = world(ctx)
    before = tables_snapshot(ctx)
    c = ctx.owner_db()
    c.autocommit = False
    try:
        cur = c.cursor()
        for table in TENANT_TABLES:
            cur.execute("SELECT count(*) FROM %s WHERE tenant_id = %%s" % table, (w.a.id,))
            assert cur.fetchone()[0] > 0, table
            expect_sqlstate(cur, "UPDATE %s SET tenant_id = %%s WHERE tenant_id = %%s" % table,
                            (w.b.id, w.a.id), "42501", "tenant_id cannot be changed")
    finally:
        c.close()
    assert tables_snapshot(ctx) == before


@test
def custom_fields_check_measures_compact_json_for_every_writer(ctx):
    """The table CHECK is the backstop behind the API's own check: it holds
    for the owner too (who bypasses RLS, not constraints), measures compact
    JSON, and takes its short cut (text length) only where that is exact."""
    w = world(ctx)
    before = tables_snapshot(ctx)
    insert = ("INSERT INTO leads (tenant_id, name, custom_fields) VALUES (%s, 'cf', %s::jsonb)"
              " RETURNING octet_length(custom_fields::text), json_compact_length(custom_fields)")
    limit = 16384
    pad = limit - len(json.dumps({"k": ""}, separators=(",", ":")))
    many = {"k%04d" % i: i for i in range(1200)}  # 14,491 compact, 16,890 as jsonb text
    nested = {"a": [1, {"b, c": "d: e"}, []], "f": {}}
    c = ctx.owner_db()
    c.autocommit = False
    try:
        cur = c.cursor()
        for doc in ({"k": "x" * pad}, many, nested):
            cur.execute(insert, (w.a.id, json.dumps(doc)))
            _, compact = cur.fetchone()
            assert compact == len(json.dumps(doc, separators=(",", ":")).encode()), (doc, compact)
            assert compact <= limit
            c.rollback()
        cur.execute("SELECT octet_length(%s::jsonb::text)", (json.dumps(many),))
        assert cur.fetchone()[0] > limit  # so the many-keys insert took the measured path
        for doc in ({"k": "x" * (pad + 1)}, {"k": "x" * 100000}, [1, 2], "text"):
            e = expect_sqlstate(cur, insert, (w.a.id, json.dumps(doc)), "23514")
            assert e.diag.constraint_name == "leads_custom_fields_check", (doc, e.pgerror)
    finally:
        c.close()
    assert tables_snapshot(ctx) == before


@test
def row_security_off_raises_instead_of_bypassing(ctx):
    w = world(ctx)
    c = ctx.app_db()
    try:
        cur = c.cursor()
        for context in (None, w.a.id):
            for sql in ("SELECT count(*) FROM leads", "SELECT * FROM tenants",
                        "SELECT count(*) FROM activities", "SELECT * FROM tenant_settings",
                        "SELECT count(*) FROM users", "SELECT count(*) FROM tenant_users",
                        "SELECT count(*) FROM sessions", "SELECT count(*) FROM login_failures"):
                if context:
                    set_tenant(cur, context)
                cur.execute("SET LOCAL row_security = off")
                expect_sqlstate(cur, sql, None, "42501", "row-level security")
        # Also at session level.
        c.autocommit = True
        cur.execute("SET row_security = off")
        for sql in ("SELECT count(*) FROM leads", "UPDATE leads SET name = name",
                    "DELETE FROM leads"):
            try:
                cur.execute(sql)
                raise AssertionError(sql + " succeeded with row_security = off")
            except psycopg2.Error as e:
                assert e.pgcode == "42501", (sql, e.pgcode, e.pgerror)
    finally:
        c.close()


# --------------------------------------------------------------------------
# api keys


def sha256(text):
    return hashlib.sha256(text.encode()).digest()


@test
def api_keys_are_unreadable_and_stored_only_hashed(ctx):
    w = world(ctx)
    c = ctx.app_db()
    try:
        cur = c.cursor()
        expect_sqlstate(cur, "SELECT key_hash FROM api_keys", None, "42501",
                        "permission denied for table api_keys")
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "SELECT * FROM api_keys WHERE tenant_id = %s", (w.a.id,), "42501")
    finally:
        c.close()
    for t in (w.a, w.b):
        rows = owner_query(ctx, "SELECT key_hash, prefix, revoked_at FROM api_keys"
                                " WHERE tenant_id = %s", (t.id,))
        assert len(rows) == 1, rows
        key_hash, prefix, revoked = rows[0]
        assert bytes(key_hash) == sha256(t.key)
        assert revoked is None
        assert t.key.startswith(prefix) and 3 < len(prefix) <= 16, prefix
        # The key itself is stored nowhere.
        secret = t.key[len(prefix):]
        for table in ("api_keys", "tenants", "tenant_settings"):
            n = owner_query(ctx, "SELECT count(*) FROM %s x WHERE x::text LIKE %%s" % table,
                            ("%" + secret + "%",))[0][0]
            assert n == 0, table


@test
def resolve_api_key_answers_only_for_a_valid_keys_hash(ctx):
    w = world(ctx)
    c = ctx.app_db()
    c.autocommit = True
    try:
        cur = c.cursor()

        def resolve(digest):
            cur.execute("SELECT tenant_id::text, tenant_name FROM resolve_api_key(%s)",
                        (psycopg2.Binary(digest),))
            return cur.fetchall()

        assert resolve(sha256(w.a.key)) == [(w.a.id, w.a.name)]
        assert resolve(sha256(w.b.key)) == [(w.b.id, w.b.name)]
        assert resolve(sha256("tk_" + "0" * 64)) == []
        assert resolve(w.a.key.encode()) == []             # the key itself is not a hash
        assert resolve(hashlib.sha256(w.a.key.upper().encode()).digest()) == []
        assert resolve(b"") == []
        # It sets no tenant context as a side effect.
        resolve(sha256(w.a.key))
        assert current_context(cur) in (("", None), (None, None))
        cur.execute("SELECT count(*) FROM leads")
        assert cur.fetchone()[0] == 0

        # Revoked, expired, suspended, archived: nothing.
        for label, sql in (
                ("revoked", "UPDATE api_keys SET revoked_at = now() WHERE tenant_id = %s"),
                ("expired", "UPDATE api_keys SET expires_at = now() - interval '1 second'"
                            " WHERE tenant_id = %s"),
                ("suspended", "UPDATE tenants SET status = 'suspended' WHERE id = %s"),
                ("archived", "UPDATE tenants SET status = 'archived', archived_at = now()"
                             " WHERE id = %s")):
            t = ctx.new_tenant(name="Db resolve %s %s" % (label, uuid.uuid4().hex[:6]))
            assert resolve(sha256(t.key)) == [(t.id, t.name)], label
            owner_query(ctx, sql, (t.id,))
            assert resolve(sha256(t.key)) == [], label
        # An expiry in the future is fine.
        t = ctx.new_tenant(name="Db resolve future %s" % uuid.uuid4().hex[:6])
        owner_query(ctx, "UPDATE api_keys SET expires_at = now() + interval '1 day'"
                         " WHERE tenant_id = %s", (t.id,))
        assert resolve(sha256(t.key)) == [(t.id, t.name)]
    finally:
        c.close()


@test
def resolve_api_key_records_last_used_at(ctx):
    t = ctx.new_tenant(name="Db last used %s" % uuid.uuid4().hex[:6])
    rows = owner_query(ctx, "SELECT last_used_at FROM api_keys WHERE tenant_id = %s", (t.id,))
    assert rows == [(None,)], rows
    c = ctx.app_db()
    c.autocommit = True
    try:
        c.cursor().execute("SELECT * FROM resolve_api_key(%s)", (psycopg2.Binary(sha256(t.key)),))
    finally:
        c.close()
    rows = owner_query(ctx, "SELECT last_used_at IS NOT NULL AND last_used_at <= now()"
                            " FROM api_keys WHERE tenant_id = %s", (t.id,))
    assert rows == [(True,)], rows


# --------------------------------------------------------------------------
# context lifetime


@test
def set_local_context_ends_with_the_transaction(ctx):
    w = world(ctx)
    n_a = ctx.count_leads(w.a.id)
    c = ctx.app_db()
    try:
        cur = c.cursor()
        # Commit.
        set_tenant(cur, w.a.id)
        cur.execute("SELECT count(*) FROM leads")
        assert cur.fetchone()[0] == n_a
        c.commit()
        assert current_context(cur) in (("", None), (None, None))
        cur.execute("SELECT count(*) FROM leads")
        assert cur.fetchone()[0] == 0
        c.commit()
        # Rollback.
        set_tenant(cur, w.a.id)
        c.rollback()
        assert current_context(cur) in (("", None), (None, None))
        c.rollback()
        # A transaction that failed after setting the context.
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "SELECT 1/0", None, "22012")
        assert current_context(cur) in (("", None), (None, None))
        c.rollback()
        # A second tenant in the next transaction on the same session sees
        # only its own rows: nothing of the first carried over.
        set_tenant(cur, w.a.id)
        c.commit()
        set_tenant(cur, w.b.id)
        cur.execute("SELECT DISTINCT tenant_id::text FROM leads")
        assert cur.fetchall() == [(w.b.id,)]
        c.commit()
        # Pipelined like the server: BEGIN; SET LOCAL; SELECT; COMMIT in one
        # simple-query string, then the session has no context.
        c.autocommit = True
        cur.execute("BEGIN; SET LOCAL app.current_tenant = '%s'; SELECT count(*) FROM leads;"
                    " COMMIT" % w.a.id)
        assert current_context(cur) in (("", None), (None, None))
        cur.execute("SELECT count(*) FROM leads")
        assert cur.fetchone()[0] == 0
    finally:
        c.close()


@test
def server_pool_connections_hold_no_open_transaction_after_requests(ctx):
    """After requests of two tenants, every pooled tekup_app connection of the
    server is idle outside any transaction - so no SET LOCAL context can
    survive into the next request on it."""
    w = world(ctx)
    for _ in range(10):
        for t in (w.a, w.b):
            assert ctx.http("GET", "/v1/leads", key=t.key).status == 200
            assert ctx.http("GET", "/v1/leads/" + w.b_lead, key=t.key).status in (200, 404)
            assert ctx.http("POST", "/v1/leads", key=t.key,
                            body={"name": "x", "unknown": 1}).status == 400
    su = psycopg2.connect(host=ctx.socket_dir, dbname="postgres", user="postgres")
    su.autocommit = True
    try:
        cur = su.cursor()
        deadline = time.time() + 2
        while True:
            cur.execute("SELECT pid, state, backend_xid::text, xact_start FROM pg_stat_activity"
                        " WHERE usename = 'tekup_app' AND application_name = 'tekup'"
                        " AND datname = 'tekup'")
            rows = cur.fetchall()
            busy = [r for r in rows if r[1] != "idle" or r[2] is not None or r[3] is not None]
            if not busy or time.time() > deadline:
                break
            time.sleep(0.1)
        assert rows
        assert not busy, busy
    finally:
        su.close()
