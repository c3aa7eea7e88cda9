"""test_database.py - database-level security, connected as the request role
(issue 2, sections 4, 5, 6 and 11).

Connected with psycopg2 as tekup_app (the role the server's pool uses), with
no help from the server:

  - role attributes: not superuser, NOBYPASSRLS, no CREATEDB/CREATEROLE, not
    a member of the owner, owns nothing; every table is owned by tekup_owner;
  - the exact table grants (SELECT on tenants, tenant_settings; SELECT,
    INSERT, UPDATE, DELETE on leads, activities; nothing on api_keys, users,
    tenant_users, audit_logs, plans, schema_migrations) and function grants;
  - RLS ENABLED and FORCED on every tenant-scoped table, one policy per
    command on each, all through current_tenant_id();
  - without tenant context: zero rows from every granted table, 42501 from
    the others, inserts fail with 42501 and updates/deletes touch nothing;
  - with SET LOCAL app.current_tenant = A: only A's rows (tenants included);
    writing B's tenant_id, or changing tenant_id, fails with 42501;
  - SET row_security = off raises 42501 instead of bypassing;
  - api_keys is unreadable; resolve_api_key() answers only for a valid
    key's SHA-256 and only the key's own tenant; keys are stored only hashed;
  - SET LOCAL context ends with the transaction (commit, rollback, error).
"""
import hashlib
import time
import uuid

import psycopg2
import psycopg2.errors

from harness import test

TENANT_TABLES = ("api_keys", "tenant_settings", "users", "tenant_users", "leads",
                 "activities", "audit_logs")
ALL_TABLES = TENANT_TABLES + ("tenants", "plans", "schema_migrations")
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
EXPECTED_GRANTS = {
    "tenants": {"SELECT"},
    "tenant_settings": {"SELECT"},
    "leads": {"SELECT", "INSERT", "UPDATE", "DELETE"},
    "activities": {"SELECT", "INSERT", "UPDATE", "DELETE"},
    "api_keys": set(),
    "users": set(),
    "tenant_users": set(),
    "audit_logs": set(),
    "plans": set(),
    "schema_migrations": set(),
}


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
    try:
        cur = c.cursor()
        for t in (w.a, w.b):
            cur.execute("INSERT INTO users (tenant_id, email, name) VALUES (%s, %s, 'U')"
                        " RETURNING id::text", (t.id, "u-%s@example.com" % tag))
            uid = cur.fetchone()[0]
            cur.execute("INSERT INTO tenant_users (tenant_id, user_id, role)"
                        " VALUES (%s, %s, 'admin')", (t.id, uid))
            cur.execute("SELECT id::text FROM leads WHERE tenant_id = %s ORDER BY id LIMIT 1",
                        (t.id,))
            lid = cur.fetchone()[0]
            cur.execute("INSERT INTO activities (tenant_id, lead_id, user_id, type, body)"
                        " VALUES (%s, %s, %s, 'note', 'hello')", (t.id, lid, uid))
            cur.execute("INSERT INTO audit_logs (tenant_id, table_name, record_id, action)"
                        " VALUES (%s, 'leads', %s, 'INSERT')", (t.id, lid))
    finally:
        c.close()
    w.a_lead = owner_query(ctx, "SELECT id::text FROM leads WHERE tenant_id = %s ORDER BY id"
                                " LIMIT 1", (w.a.id,))[0][0]
    w.b_lead = owner_query(ctx, "SELECT id::text FROM leads WHERE tenant_id = %s ORDER BY id"
                                " LIMIT 1", (w.b.id,))[0][0]
    ctx._database_world = w
    return w


def leads_snapshot(ctx):
    return owner_query(ctx, "SELECT row_to_json(l)::text FROM leads l ORDER BY tenant_id, id")


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
        sup, bypass, createdb, createrole, repl, _inherit, login = cur.fetchone()
        assert (sup, bypass, createdb, createrole, repl, login) == (
            False, False, False, False, False, True)
        cur.execute("SELECT pg_has_role('tekup_app', 'tekup_owner', 'MEMBER'),"
                    " pg_has_role('tekup_app', 'tekup_owner', 'USAGE')")
        assert cur.fetchone() == (False, False)
        # Member of no role at all (no inherited privileges).
        cur.execute("SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member"
                    " WHERE r.rolname = 'tekup_app'")
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


@test
def request_role_has_exactly_the_needed_grants(ctx):
    c = ctx.app_db()
    try:
        cur = c.cursor()
        # Every table in the schema: the listed grants, and none on any other
        # (a table added later gets nothing unless granted on purpose).
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [r[0] for r in cur.fetchall()]
        assert set(EXPECTED_GRANTS) <= set(tables), tables
        for table in tables:
            want = EXPECTED_GRANTS.get(table, set())
            got = set()
            for priv in PRIVILEGES:
                cur.execute("SELECT has_table_privilege('tekup_app', %s, %s)",
                            ("public." + table, priv))
                if cur.fetchone()[0]:
                    got.add(priv)
            assert got == want, "%s: tekup_app has %s, expected %s" % (table, got, want)
            # No column-level grants either.
            cur.execute("SELECT count(*) FROM information_schema.column_privileges"
                        " WHERE grantee = 'tekup_app' AND table_name = %s"
                        " AND privilege_type NOT IN %s",
                        (table, tuple(want) if want else ("",)))
            assert cur.fetchone()[0] == 0, table
        funcs = {
            "resolve_api_key(bytea)": True,
            "current_tenant_id()": True,
            "make_tenant_slug(text)": False,
        }
        for fn, want in funcs.items():
            cur.execute("SELECT has_function_privilege('tekup_app', %s, 'EXECUTE')", (fn,))
            assert cur.fetchone()[0] is want, fn
        cur.execute("SELECT prosecdef, provolatile FROM pg_proc WHERE proname = 'resolve_api_key'")
        assert cur.fetchall() == [(True, "v")]
        cur.execute("SELECT prosecdef, provolatile, pg_get_functiondef(oid) FROM pg_proc"
                    " WHERE proname = 'current_tenant_id'")
        rows = cur.fetchall()
        assert len(rows) == 1 and rows[0][:2] == (False, "s"), rows
        assert "NULLIF(current_setting('app.current_tenant', true), '')::uuid" in rows[0][2], rows
        # The only SECURITY DEFINER function tekup_app can execute is resolve_api_key.
        cur.execute("SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                    " WHERE n.nspname = 'public' AND p.prosecdef"
                    " AND has_function_privilege('tekup_app', p.oid, 'EXECUTE')")
        assert cur.fetchall() == [("resolve_api_key",)]
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
        ctx, "SELECT c.table_name FROM information_schema.columns c"
             " WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id'"
             " AND (has_table_privilege('tekup_app', 'public.' || c.table_name, 'SELECT')"
             " OR has_table_privilege('tekup_app', 'public.' || c.table_name, 'INSERT')"
             " OR has_table_privilege('tekup_app', 'public.' || c.table_name, 'UPDATE')"
             " OR has_table_privilege('tekup_app', 'public.' || c.table_name, 'DELETE'))")}
    for table in reachable:
        assert flags.get(table) == (True, True), table
    for table in TENANT_TABLES:
        nullable = owner_query(ctx, "SELECT is_nullable FROM information_schema.columns"
                                    " WHERE table_schema = 'public' AND table_name = %s"
                                    " AND column_name = 'tenant_id'", (table,))
        assert nullable == [("NO",)], table


@test
def every_policy_goes_through_current_tenant_id(ctx):
    rows = owner_query(ctx, "SELECT tablename, policyname, permissive, roles::text[], cmd, qual,"
                            " with_check FROM pg_policies WHERE schemaname = 'public'")
    by_table = {}
    for table, name, permissive, roles, cmd, qual, check in rows:
        by_table.setdefault(table, {})[cmd] = (permissive, roles, qual, check)
    assert set(TENANT_TABLES) | {"tenants"} <= set(by_table), by_table.keys()
    expr = "(tenant_id = current_tenant_id())"
    for table in TENANT_TABLES:
        p = by_table[table]
        assert set(p) == {"SELECT", "INSERT", "UPDATE", "DELETE"}, (table, p)
        for cmd, (permissive, roles, qual, check) in p.items():
            assert permissive == "PERMISSIVE" and roles == ["public"], (table, cmd, p[cmd])
            want_qual = None if cmd == "INSERT" else expr
            want_check = expr if cmd in ("INSERT", "UPDATE") else None
            assert (qual, check) == (want_qual, want_check), (table, cmd, qual, check)
    assert by_table["tenants"] == {
        "SELECT": ("PERMISSIVE", ["public"], "(id = current_tenant_id())", None)}
    # No policy anywhere uses a subquery (Citus rejects them) or "true".
    for table, name, permissive, roles, cmd, qual, check in rows:
        for text in (qual or "", check or ""):
            assert "SELECT" not in text.upper() and "true" not in text.lower(), (name, text)


@test
def request_role_cannot_change_the_security_setup(ctx):
    c = ctx.app_db()
    try:
        cur = c.cursor()
        for sql in ("ALTER TABLE leads NO FORCE ROW LEVEL SECURITY",
                    "ALTER TABLE leads DISABLE ROW LEVEL SECURITY",
                    "DROP POLICY leads_tenant_select ON leads",
                    "CREATE POLICY open_all ON leads FOR SELECT USING (true)",
                    "ALTER TABLE leads DISABLE TRIGGER leads_tenant_id_immutable",
                    "CREATE SCHEMA tk_evil",
                    "CREATE OR REPLACE FUNCTION current_tenant_id() RETURNS uuid LANGUAGE sql"
                    " AS $$ SELECT NULL::uuid $$",
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
    owner_query(ctx, "ANALYZE leads")
    assert owner_query(ctx, "SELECT count(*) FROM pg_stats WHERE tablename = 'leads'")[0][0] > 0
    c = ctx.app_db()
    try:
        cur = c.cursor()
        set_tenant(cur, w.a.id)
        cur.execute("SELECT count(*) FROM pg_stats WHERE tablename IN"
                    " ('leads', 'tenants', 'activities', 'tenant_settings')")
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
    for table in ("leads", "activities", "tenant_settings", "users", "tenant_users",
                  "audit_logs", "api_keys"):
        n = owner_query(ctx, "SELECT count(*) FROM %s WHERE tenant_id IN (%%s, %%s)" % table,
                        (w.a.id, w.b.id))[0][0]
        assert n >= 2, (table, n)
    c = ctx.app_db()
    try:
        cur = c.cursor()
        assert current_context(cur) in (("", None), (None, None))
        for table in ("leads", "activities", "tenants", "tenant_settings"):
            cur.execute("SELECT count(*) FROM %s" % table)
            assert cur.fetchone()[0] == 0, table
            cur.execute("SELECT * FROM %s" % table)
            assert cur.fetchall() == [], table
        cur.execute("SELECT count(*) FROM leads WHERE tenant_id = %s", (w.a.id,))
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM tenants WHERE id = %s", (w.a.id,))
        assert cur.fetchone()[0] == 0
        c.rollback()
        for table in ("api_keys", "users", "tenant_users", "audit_logs", "plans",
                      "schema_migrations"):
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
    before = leads_snapshot(ctx)
    c = ctx.app_db()
    try:
        cur = c.cursor()
        expect_sqlstate(cur, "INSERT INTO leads (tenant_id, name) VALUES (%s, 'no context')",
                        (w.a.id,), "42501", 'row-level security policy for table "leads"')
        expect_sqlstate(cur, "INSERT INTO activities (tenant_id, lead_id, type)"
                             " VALUES (%s, %s, 'note')", (w.a.id, w.a_lead), "42501")
        cur.execute("UPDATE leads SET name = 'no context' WHERE tenant_id = %s", (w.a.id,))
        assert cur.rowcount == 0
        cur.execute("UPDATE leads SET name = 'no context'")
        assert cur.rowcount == 0
        cur.execute("DELETE FROM leads")
        assert cur.rowcount == 0
        cur.execute("DELETE FROM activities")
        assert cur.rowcount == 0
        c.commit()
        expect_sqlstate(cur, "TRUNCATE leads", None, "42501")
        expect_sqlstate(cur, "UPDATE tenants SET status = 'suspended'", None, "42501")
        expect_sqlstate(cur, "DELETE FROM api_keys", None, "42501")
        expect_sqlstate(cur, "INSERT INTO tenants (name, slug) VALUES ('x', 'x')", None, "42501")
    finally:
        c.close()
    assert leads_snapshot(ctx) == before


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
            cur.execute("SELECT DISTINCT tenant_id::text FROM activities")
            assert cur.fetchall() == [(t.id,)]
            # A join across tables cannot reach the other tenant either.
            cur.execute("SELECT count(*) FROM leads l JOIN tenants x ON x.id = l.tenant_id"
                        " WHERE x.id = %s", (other.id,))
            assert cur.fetchone()[0] == 0
            c.rollback()
        # With a context, the ungranted tables are still closed.
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "SELECT count(*) FROM api_keys", None, "42501")
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "SELECT count(*) FROM users", None, "42501")
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "SELECT count(*) FROM audit_logs", None, "42501")
        # A context naming a tenant that does not exist sees nothing.
        set_tenant(cur, str(uuid.uuid4()))
        cur.execute("SELECT (SELECT count(*) FROM leads), (SELECT count(*) FROM tenants)")
        assert cur.fetchone() == (0, 0)
        c.rollback()
    finally:
        c.close()


@test
def with_context_writes_to_another_tenant_fail(ctx):
    w = world(ctx)
    before = leads_snapshot(ctx)
    c = ctx.app_db()
    try:
        cur = c.cursor()
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "INSERT INTO leads (tenant_id, name) VALUES (%s, 'into B')",
                        (w.b.id,), "42501", "row-level security")
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "INSERT INTO activities (tenant_id, lead_id, type)"
                             " VALUES (%s, %s, 'note')", (w.b.id, w.b_lead), "42501")
        # An activity of A pointing at B's lead: the composite foreign key
        # (tenant_id, lead_id) finds no such lead of A.
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "INSERT INTO activities (tenant_id, lead_id, type)"
                             " VALUES (%s, %s, 'note')", (w.a.id, w.b_lead), "23503")
        # Moving A's lead to B.
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "UPDATE leads SET tenant_id = %s WHERE id = %s",
                        (w.b.id, w.a_lead), "42501")
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "UPDATE leads SET tenant_id = %s", (w.b.id,), "42501")
        set_tenant(cur, w.a.id)
        expect_sqlstate(cur, "UPDATE activities SET tenant_id = %s", (w.b.id,), "42501")
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
        c.commit()
        # Writes within A work (control), and are rolled back here.
        set_tenant(cur, w.a.id)
        cur.execute("INSERT INTO leads (tenant_id, name) VALUES (%s, 'ok') RETURNING tenant_id::text",
                    (w.a.id,))
        assert cur.fetchone() == (w.a.id,)
        c.rollback()
    finally:
        c.close()
    assert leads_snapshot(ctx) == before


@test
def tenant_id_cannot_change_even_for_the_owner(ctx):
    w = world(ctx)
    before = leads_snapshot(ctx)
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
    assert leads_snapshot(ctx) == before


@test
def row_security_off_raises_instead_of_bypassing(ctx):
    w = world(ctx)
    c = ctx.app_db()
    try:
        cur = c.cursor()
        for context in (None, w.a.id):
            for sql in ("SELECT count(*) FROM leads", "SELECT * FROM tenants",
                        "SELECT count(*) FROM activities", "SELECT * FROM tenant_settings"):
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
