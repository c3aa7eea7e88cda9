"""test_admin_cli.py - the operator's command line (issue 4): `tekup tenant
create/show/set/suspend/activate/archive/key/migrate/cleanup/retention/list`
and `tekup admin token create/list/revoke`, over the same code as the /admin
API.

  - exit status 0 on success, 2 on bad arguments - found before any database
    work (proved with DATABASE_URL pointing at a closed port, where touching
    the database would be exit 1) - and 1 on a failed operation, with the
    API's error code (and field) on stderr;
  - commands that print JSON print the /admin API's JSON, checked against
    the database; secrets (API keys, operator tokens, the admin password)
    are shown once or never;
  - every change is in the operator audit with actor "cli:<os user>";
  - tenant create with an admin (TEKUP_ADMIN_PASSWORD) writes the Argon2id
    admin, membership, settings and outbox rows; set/suspend/activate/
    archive (archived is final); key list/create/revoke/rotate (grace);
    migrate with --users/--archive-source/--no-leads; cleanup and retention
    with --dry-run and --older-than-days on crafted ages; admin tokens
    (revoked tokens stop opening /admin at once).
"""
import json
import os
import pwd
import re
import time
import uuid
from datetime import timedelta

from harness import rand, sql, sql1, assert_error, test

PASSWORD = "correct-horse-42"
ACTOR = "cli:" + pwd.getpwuid(os.getuid()).pw_name
KEY_RE = re.compile(r"^tk_[0-9a-f]{64}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# A database nobody listens on: a command that touches the database fails
# with exit 1 here, so exit 2 proves the arguments were refused first.
NO_DB = {"DATABASE_URL": "postgresql://tekup_app@127.0.0.1:1/tekup",
         "DATABASE_ADMIN_URL": "postgresql://tekup_owner@127.0.0.1:1/tekup",
         "DATABASE_OPERATOR_URL": "postgresql://tekup_operator@127.0.0.1:1/tekup"}
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
PRO_FEATURES = {"lead:read": True, "lead:create": True, "lead:update": True,
                "lead:delete": True, "voice:advanced": True, "api:access": True,
                "export:csv": True, "automation:basic": True}
BASIC_FEATURES = {"lead:read": True, "lead:create": True, "lead:update": True,
                  "lead:delete": False, "voice:basic": True, "api:access": True,
                  "export:csv": False}
BASIC_LIMITS = {"maxUsers": 5, "maxLeads": 1000, "maxStorageMb": 100, "apiRateLimit": 100}


# --------------------------------------------------------------------------
# helpers


def clean(p):
    out = p.stdout + p.stderr
    assert not any(m in out for m in SANITIZER_MARKERS), out[-4000:]
    assert p.returncode >= 0, "killed by signal %d" % -p.returncode
    return p


def cli(ctx, *args, env=None):
    """tekup ... against the suite's cluster."""
    return clean(ctx.tekup(*(list(args) + ["--data-dir", ctx.data_dir]), env=env))


def ok(ctx, *args, env=None):
    p = cli(ctx, *args, env=env)
    assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
    return p


def ok_json(ctx, *args, env=None):
    p = ok(ctx, *args, env=env)
    return json.loads(p.stdout)


def fails(ctx, code, *args, env=None):
    """Exit 1 with 'error: <code>: ...' on stderr and nothing on stdout."""
    p = cli(ctx, *args, env=env)
    assert p.returncode == 1, (args, p.returncode, p.stdout, p.stderr)
    assert p.stdout == "", (args, p.stdout)
    assert p.stderr.startswith("error: %s: " % code), (args, p.stderr)
    return p


def usage_error(ctx, *args, env=None, message=True):
    """Exit 2, before any database work, a message on stderr, nothing on stdout."""
    full_env = dict(NO_DB)
    if env:
        full_env.update(env)
    p = clean(ctx.tekup(*args, env=full_env))
    assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
    assert p.stdout == "", (args, p.stdout)
    if message:
        assert p.stderr.strip(), "exit 2 without a word on stderr: %r" % (args,)
    assert "cannot connect" not in p.stderr, (args, p.stderr)
    return p


def fields_of(stdout):
    return dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)


def create(ctx, *extra, admin=True, plan="professional", samples=0):
    r = rand()
    args = ["tenant", "create", "--name", "Cli Admin " + r, "--plan", plan,
            "--billing-email", "billing-%s@example.com" % r, "--sample-leads", str(samples)]
    if admin:
        args += ["--admin-email", "admin-%s@example.com" % r, "--admin-name", "Cli Admin"]
    p = ok(ctx, *(args + list(extra)), env={"TEKUP_ADMIN_PASSWORD": PASSWORD})
    f = fields_of(p.stdout)
    f["name"] = "Cli Admin " + r
    f["admin_email"] = "admin-%s@example.com" % r
    return f


def audit_rows(ctx, tenant_id, action=None):
    q = "SELECT action, actor, token_id, details FROM operator_audit WHERE tenant_id = %s"
    params = [tenant_id]
    if action:
        q += " AND action = %s"
        params.append(action)
    return sql(ctx, q + " ORDER BY id", tuple(params))


def wait_status(ctx, path, key, status, timeout=5.5):
    t0 = time.time()
    while True:
        r = ctx.http("GET", path, key=key)
        if r.status == status or time.time() - t0 > timeout:
            return r, time.time() - t0
        time.sleep(0.1)


def tenant_count(ctx):
    return sql1(ctx, "SELECT count(*) FROM tenants")


# --------------------------------------------------------------------------
# tenant create


@test
def create_with_an_admin_writes_every_row(ctx):
    r = rand()
    name, email = "Cli Create " + r, "owner-%s@example.com" % r
    p = ok(ctx, "tenant", "create", "--name", name, "--plan", "professional",
           "--billing-email", "ap-%s@example.com" % r, "--admin-email", email,
           "--admin-name", "Olga Owner", "--timezone", "Europe/Oslo", "--locale", "nb-NO",
           "--sample-leads", "3", env={"TEKUP_ADMIN_PASSWORD": PASSWORD})
    assert PASSWORD not in p.stdout + p.stderr
    f = fields_of(p.stdout)
    assert set(f) == {"tenant_id", "slug", "api_key", "admin_user_id", "dashboard_url"}, f
    tid, uid = f["tenant_id"], f["admin_user_id"]
    assert UUID_RE.match(tid) and UUID_RE.match(uid) and KEY_RE.match(f["api_key"])
    assert f["slug"] == "cli-create-" + r and f["dashboard_url"].endswith("/" + f["slug"])
    assert p.stdout.count(f["api_key"]) == 1
    # The key works.
    resp = ctx.http("GET", "/v1/leads", key=f["api_key"])
    assert resp.status == 200 and resp.header("X-Tenant-ID") == tid, resp
    # The rows.
    assert sql(ctx, "SELECT subscription_plan, enabled_features, billing_email FROM tenants"
                    " WHERE id = %s", (tid,)) == [("professional", PRO_FEATURES,
                                                   "ap-%s@example.com" % r)]
    rows = sql(ctx, "SELECT id::text, email, name, password_hash FROM users WHERE tenant_id = %s",
               (tid,))
    assert len(rows) == 1 and rows[0][:3] == (uid, email, "Olga Owner"), rows
    assert rows[0][3].startswith("$argon2id$"), rows
    assert sql(ctx, "SELECT user_id::text, role FROM tenant_users WHERE tenant_id = %s",
               (tid,)) == [(uid, "admin")]
    assert sql(ctx, "SELECT timezone, locale, date_format, time_format FROM tenant_settings"
                    " WHERE tenant_id = %s", (tid,)) == [("Europe/Oslo", "nb-NO", "YYYY-MM-DD",
                                                         "24h")]
    assert sql(ctx, "SELECT count(*), count(*) FILTER (WHERE created_by = %s) FROM leads"
                    " WHERE tenant_id = %s", (uid, tid)) == [(3, 3)]
    assert sql(ctx, "SELECT topic FROM outbox WHERE tenant_id = %s ORDER BY topic",
               (tid,)) == [("billing.subscription.create",), ("tenant.welcome",)]
    assert sql1(ctx, "SELECT encryption_key_id IS NOT NULL FROM tenants WHERE id = %s", (tid,))
    rows = audit_rows(ctx, tid)
    assert [(a, actor, token) for a, actor, token, _ in rows] == [
        ("tenant.create", ACTOR, None)], rows


@test
def create_bad_arguments_exit_2_before_the_database(ctx):
    before = tenant_count(ctx)
    base = ["tenant", "create", "--name", "Bad " + rand()]
    adm = ["--admin-email", "someone-%s@example.com" % rand(), "--admin-name", "Some One"]
    cases = [
        (["tenant", "create"], None),
        (["tenant", "create", "--name", ""], None),
        (["tenant", "create", "--name"], None),
        (base + ["--plan", "gold"], None),
        (base + ["--sample-leads", "abc"], None),
        (base + ["--sample-leads", "-1"], None),
        (base + ["--sample-leads", "100001"], None),
        (base + ["--frobnicate"], None),
        (base + ["extra-positional"], None),
        (base + ["--billing-email", "not-an-address"], None),
        (base + ["--admin-email", "nobody"] + adm[2:], {"TEKUP_ADMIN_PASSWORD": PASSWORD}),
        (base + adm, {"TEKUP_ADMIN_PASSWORD": ""}),                        # no password
        (base + adm, {"TEKUP_ADMIN_PASSWORD": "short1A"}),                 # too short
        (base + adm, {"TEKUP_ADMIN_PASSWORD": "123456789012"}),            # digits only
        (base + adm, {"TEKUP_ADMIN_PASSWORD": "Ab1" * 43}),                # 129 bytes
        (base + adm, {"TEKUP_ADMIN_PASSWORD": adm[1]}),                    # = the e-mail
        (base + adm[:2], {"TEKUP_ADMIN_PASSWORD": PASSWORD}),              # no admin name
        (base + ["--locale", "bad locale!"], None),
        (base + ["--timezone", "it's/bad"], None),
    ]
    for args, env in cases:
        p = usage_error(ctx, *args, env=env)
        if env and env.get("TEKUP_ADMIN_PASSWORD"):
            assert env["TEKUP_ADMIN_PASSWORD"] not in p.stderr, p.stderr
    assert tenant_count(ctx) == before


@test
def create_operation_errors_exit_1_and_leave_nothing(ctx):
    t = create(ctx)
    before = tenant_count(ctx)
    users = sql1(ctx, "SELECT count(*) FROM users")
    # The same admin e-mail (any case) is a conflict on adminEmail.
    p = fails(ctx, "conflict", "tenant", "create", "--name", "Dup " + rand(),
              "--admin-email", t["admin_email"].upper(), "--admin-name", "Dup",
              env={"TEKUP_ADMIN_PASSWORD": PASSWORD})
    assert "field: adminEmail" in p.stderr, p.stderr
    # A timezone PostgreSQL does not know.
    p = fails(ctx, "validation_error", "tenant", "create", "--name", "Mars " + rand(),
              "--timezone", "Mars/Base")
    assert "field: timezone" in p.stderr, p.stderr
    assert tenant_count(ctx) == before
    assert sql1(ctx, "SELECT count(*) FROM users") == users


# --------------------------------------------------------------------------
# show, set, status


@test
def show_and_set(ctx):
    t = create(ctx, samples=2)
    tid = t["tenant_id"]
    j = ok_json(ctx, "tenant", "show", tid)
    assert j["id"] == tid and j["name"] == t["name"] and j["plan"] == "professional"
    assert j["usage"]["leads"] == 2 and j["usage"]["users"] == 1 and j["usage"]["activities"] == 4
    assert j["settings"] == {"timezone": "UTC", "locale": "en", "dateFormat": "YYYY-MM-DD",
                             "timeFormat": "24h"}, j
    j = ok_json(ctx, "tenant", "set", tid, "--plan", "basic")
    assert j["plan"] == "basic" and j["enabledFeatures"] == BASIC_FEATURES, j
    assert j["resourceLimits"] == BASIC_LIMITS, j
    j = ok_json(ctx, "tenant", "set", tid, "--name", "Renamed " + t["name"],
                "--billing-email", "new-ap@example.com", "--retention-days", "30")
    assert j["name"] == "Renamed " + t["name"] and j["billingEmail"] == "new-ap@example.com"
    assert j["dataRetentionDays"] == 30 and j["plan"] == "basic"
    assert sql(ctx, "SELECT name, billing_email, data_retention_days, subscription_plan"
                    " FROM tenants WHERE id = %s", (tid,)) == [
        ("Renamed " + t["name"], "new-ap@example.com", 30, "basic")]
    rows = audit_rows(ctx, tid, "tenant.update")
    assert [(actor, token) for _, actor, token, _ in rows] == [(ACTOR, None)] * 2, rows
    assert rows[0][3] == {"plan": "basic"}, rows[0][3]
    assert rows[1][3] == {"name": "Renamed " + t["name"], "billingEmail": "new-ap@example.com",
                          "dataRetentionDays": 30}, rows[1][3]


@test
def show_and_set_argument_and_operation_errors(ctx):
    t = create(ctx)
    tid = t["tenant_id"]
    before = sql(ctx, "SELECT t::text FROM tenants t WHERE id = %s", (tid,))
    for args in (["tenant", "show", "not-a-uuid"],
                 ["tenant", "show", tid, "--plan", "basic"],
                 ["tenant", "set", tid],
                 ["tenant", "set", "nope", "--plan", "basic"],
                 ["tenant", "set", tid, "--retention-days", "0"],
                 ["tenant", "set", tid, "--retention-days", "36501"],
                 ["tenant", "set", tid, "--retention-days", "ten"],
                 ["tenant", "set", tid, "--status", "active"],
                 ["tenant", "set", tid, "--plan"],
                 ["tenant", "archive", "x"],
                 ["tenant", "activate", tid, "--name", "x"],
                 ["tenant", "frobnicate"], ["tenant"]):
        usage_error(ctx, *args)
    missing = str(uuid.uuid4())
    fails(ctx, "tenant_not_found", "tenant", "show", missing)
    fails(ctx, "tenant_not_found", "tenant", "set", missing, "--name", "Ghost")
    fails(ctx, "tenant_not_found", "tenant", "suspend", missing)
    assert sql1(ctx, "SELECT count(*) FROM tenants WHERE id = %s", (missing,)) == 0
    # Valid arguments, but no database: exit 1, not 2.
    p = clean(ctx.tekup("tenant", "show", tid, env=NO_DB))
    assert p.returncode == 1 and "cannot connect" in p.stderr, (p.returncode, p.stderr)
    assert sql(ctx, "SELECT t::text FROM tenants t WHERE id = %s", (tid,)) == before


@test
def missing_or_extra_arguments_are_explained(ctx):
    """Too few or too many positional arguments: exit 2 and a message saying
    what is expected (not a silent exit 2)."""
    tid = str(uuid.uuid4())
    silent = []
    for args in (["tenant", "show"], ["tenant", "show", tid, tid],
                 ["tenant", "set", "--plan", "basic"], ["tenant", "suspend"],
                 ["tenant", "activate"], ["tenant", "archive", tid, tid],
                 ["tenant", "migrate"], ["tenant", "migrate", tid],
                 ["tenant", "migrate", tid, tid, tid]):
        p = usage_error(ctx, *args, message=False)
        if not p.stderr.strip():
            silent.append(" ".join(args))
    assert not silent, "exit 2 without a message: %s" % silent


@test
def failed_cli_operations_leave_no_audit_row(ctx):
    """A tenant or key that does not exist was not changed: no audit row."""
    t = create(ctx)
    missing_tenant, missing_key = str(uuid.uuid4()), str(uuid.uuid4())
    fails(ctx, "tenant_not_found", "tenant", "set", missing_tenant, "--name", "Ghost")
    fails(ctx, "tenant_not_found", "tenant", "key", "create", missing_tenant)
    fails(ctx, "key_not_found", "tenant", "key", "revoke", t["tenant_id"], missing_key)
    rows = sql(ctx, "SELECT action, tenant_id::text, details::text FROM operator_audit"
                    " WHERE tenant_id = %s OR details->>'keyId' = %s",
               (missing_tenant, missing_key))
    assert rows == [], rows


@test
def set_unknown_plan_is_a_bad_argument(ctx):
    """--plan names one of four plans: tenant create refuses another with exit
    2 before the database; tenant set must do the same."""
    t = create(ctx)
    before = sql(ctx, "SELECT t::text FROM tenants t WHERE id = %s", (t["tenant_id"],))
    usage_error(ctx, "tenant", "set", t["tenant_id"], "--plan", "gold")
    assert sql(ctx, "SELECT t::text FROM tenants t WHERE id = %s", (t["tenant_id"],)) == before


@test
def operation_error_names_its_field_on_one_line(ctx):
    """'error: <code>: <message> (field: <field>)' - one line, parentheses closed."""
    t = create(ctx)
    # Source = target is an operation error (found by the database), with a field.
    p = fails(ctx, "validation_error", "tenant", "migrate", t["tenant_id"], t["tenant_id"])
    assert p.stderr.count("\n") == 1 and \
        p.stderr.rstrip("\n").endswith("(field: targetTenantId)"), repr(p.stderr)
    # A plan the CLI knows is wrong is a usage error, found before the database.
    p = ctx.tekup("tenant", "set", t["tenant_id"], "--plan", "gold", "--data-dir", ctx.data_dir)
    assert p.returncode == 2 and "--plan" in p.stderr, (p.returncode, p.stderr)


@test
def suspend_activate_archive(ctx):
    t = create(ctx)
    tid, key = t["tenant_id"], t["api_key"]
    assert ctx.http("GET", "/v1/leads", key=key).status == 200
    j = ok_json(ctx, "tenant", "suspend", tid)
    assert j["status"] == "suspended" and j["archivedAt"] is None, j
    r, took = wait_status(ctx, "/v1/leads", key, 401)
    assert_error(r, 401, "invalid_tenant_key")
    assert took <= 5.5
    j = ok_json(ctx, "tenant", "activate", tid)
    assert j["status"] == "active", j
    r, took = wait_status(ctx, "/v1/leads", key, 200)
    assert r.status == 200 and took <= 5.5
    j = ok_json(ctx, "tenant", "archive", tid)
    assert j["status"] == "archived" and j["archivedAt"], j
    archived_at = sql1(ctx, "SELECT archived_at FROM tenants WHERE id = %s", (tid,))
    for sub in ("activate", "suspend"):
        p = fails(ctx, "invalid_status_change", "tenant", sub, tid)
        assert "field: status" in p.stderr, p.stderr
    assert sql(ctx, "SELECT status, archived_at FROM tenants WHERE id = %s",
               (tid,)) == [("archived", archived_at)]
    rows = audit_rows(ctx, tid, "tenant.update")
    assert [(d, actor) for _, actor, _, d in rows] == [
        ({"status": "suspended"}, ACTOR), ({"status": "active"}, ACTOR),
        ({"status": "archived"}, ACTOR)], rows


@test
def list_filters_by_status_and_plan(ctx):
    """`tenant list [--status S] [--plan P]`, as `tekup tenant --help` documents."""
    t = create(ctx, plan="enterprise")
    ok(ctx, "tenant", "suspend", t["tenant_id"])
    p = ok(ctx, "tenant", "list", "--status", "suspended", "--plan", "enterprise")
    rows = [l for l in p.stdout.splitlines() if UUID_RE.match(l[:36])]
    expected = [r[0] for r in sql(ctx, "SELECT id::text FROM tenants WHERE status = 'suspended'"
                                       " AND subscription_plan = 'enterprise'"
                                       " ORDER BY created_at, id")]
    assert [l[:36] for l in rows] == expected, p.stdout
    assert t["tenant_id"] in expected


# --------------------------------------------------------------------------
# keys


@test
def keys_list_create_revoke_rotate(ctx):
    t = create(ctx)
    tid, first = t["tenant_id"], t["api_key"]
    p = ok(ctx, "tenant", "key", "list", tid)
    j = json.loads(p.stdout)
    assert [(k["prefix"], k["name"], k["status"]) for k in j["data"]] == [
        (first[:11], "default", "active")], j
    assert first[11:] not in p.stdout
    kid0 = j["data"][0]["id"]

    k = ok_json(ctx, "tenant", "key", "create", tid, "--name", "ci",
                "--expires-at", "2099-01-01T00:00:00Z")
    assert KEY_RE.match(k["apiKey"]) and k["name"] == "ci" and k["status"] == "active", k
    assert k["expiresAt"] == "2099-01-01T00:00:00.000000Z", k
    r = ctx.http("GET", "/v1/leads", key=k["apiKey"])
    assert r.status == 200 and r.header("X-Tenant-ID") == tid, r
    p = ok(ctx, "tenant", "key", "revoke", tid, k["id"])
    assert p.stdout == "", p.stdout
    r, took = wait_status(ctx, "/v1/leads", k["apiKey"], 401)
    assert_error(r, 401, "invalid_tenant_key")
    assert took <= 5.5

    j = ok_json(ctx, "tenant", "key", "rotate", tid, kid0)
    assert j["oldKey"]["id"] == kid0 and j["oldKey"]["revokedAt"] is None, j
    new = j["newKey"]["apiKey"]
    expires = sql1(ctx, "SELECT expires_at FROM api_keys WHERE id = %s", (kid0,))
    now = sql1(ctx, "SELECT now()")
    assert abs((expires - (now + timedelta(hours=24))).total_seconds()) < 60, (expires, now)
    for key in (first, new):
        assert ctx.http("GET", "/v1/leads", key=key).status == 200
    j = ok_json(ctx, "tenant", "key", "rotate", tid, j["newKey"]["id"], "--grace-hours", "0")
    assert j["oldKey"]["revokedAt"] is not None, j
    newest = j["newKey"]["apiKey"]
    assert ctx.http("GET", "/v1/leads", key=newest).status == 200
    assert sql1(ctx, "SELECT revoked_at IS NOT NULL FROM api_keys WHERE key_hash ="
                     " sha256(%s::bytea)", (new.encode(),))
    listed = ok_json(ctx, "tenant", "key", "list", tid)["data"]
    assert sorted(x["status"] for x in listed) == ["active", "active", "revoked", "revoked"]
    body = json.dumps(listed)
    assert all(s[11:] not in body for s in (first, k["apiKey"], new, newest))
    actions = [(a, actor) for a, actor, _, _ in audit_rows(ctx, tid) if a.startswith("key.")]
    assert actions == [("key.create", ACTOR), ("key.revoke", ACTOR), ("key.rotate", ACTOR),
                       ("key.rotate", ACTOR)], actions
    # Revoked already: no active key with that id.
    fails(ctx, "key_not_found", "tenant", "key", "revoke", tid, k["id"])
    assert sql1(ctx, "SELECT count(*) FROM api_keys WHERE tenant_id = %s", (tid,)) == 4


@test
def key_argument_errors_exit_2(ctx):
    t = create(ctx)
    tid = t["tenant_id"]
    kid = str(uuid.uuid4())
    for args in (["tenant", "key"], ["tenant", "key", "frob", tid],
                 ["tenant", "key", "list"], ["tenant", "key", "list", "nope"],
                 ["tenant", "key", "list", tid, kid],
                 ["tenant", "key", "create", tid, "--expires-at", "soon"],
                 ["tenant", "key", "create", tid, "--colour", "red"],
                 ["tenant", "key", "revoke", tid], ["tenant", "key", "revoke", tid, "nope"],
                 ["tenant", "key", "rotate", "nope", kid],
                 ["tenant", "key", "rotate", tid, kid, "--grace-hours", "-1"],
                 ["tenant", "key", "rotate", tid, kid, "--grace-hours", "2161"],
                 ["tenant", "key", "rotate", tid, kid, "--grace-hours", "one"]):
        usage_error(ctx, *args)
    fails(ctx, "key_not_found", "tenant", "key", "rotate", tid, kid)
    fails(ctx, "tenant_not_found", "tenant", "key", "list", str(uuid.uuid4()))
    assert sql1(ctx, "SELECT count(*) FROM api_keys WHERE tenant_id = %s", (tid,)) == 1


# --------------------------------------------------------------------------
# migrate


@test
def migrate_with_users_and_archive_source(ctx):
    src = create(ctx, samples=5)
    dst = create(ctx)
    sid, did = src["tenant_id"], dst["tenant_id"]
    p = ok(ctx, "tenant", "migrate", sid, did, "--users", "--archive-source")
    assert sql1(ctx, "SELECT status FROM tenants WHERE id = %s", (sid,)) == "archived"
    assert sql(ctx, "SELECT (SELECT count(*) FROM leads WHERE tenant_id = %(d)s),"
                    " (SELECT count(*) FROM activities WHERE tenant_id = %(d)s),"
                    " (SELECT count(*) FROM users WHERE tenant_id = %(d)s)",
               {"d": did}) == [(5, 10, 2)]
    # Leads point at the copied admin, not the source's.
    copied_admin = sql1(ctx, "SELECT id::text FROM users WHERE tenant_id = %s AND email = %s",
                        (did, src["admin_email"]))
    assert copied_admin != src["admin_user_id"]
    assert sql1(ctx, "SELECT count(*) FROM leads WHERE tenant_id = %s AND created_by = %s",
                (did, copied_admin)) == 5
    rows = audit_rows(ctx, sid, "tenant.migrate")
    assert len(rows) == 1 and rows[0][1] == ACTOR and rows[0][3]["target"] == did, rows
    # Users only, into a third tenant.
    dst2 = create(ctx)
    p2 = ok(ctx, "tenant", "migrate", sid, dst2["tenant_id"], "--no-leads", "--users")
    assert sql(ctx, "SELECT (SELECT count(*) FROM leads WHERE tenant_id = %(d)s),"
                    " (SELECT count(*) FROM users WHERE tenant_id = %(d)s)",
               {"d": dst2["tenant_id"]}) == [(0, 2)]
    # The counts are printed as JSON, as the API returns them.
    assert p.stdout.strip(), "tekup tenant migrate printed nothing"
    assert json.loads(p.stdout) == {"leads": 5, "activities": 10, "users": 1, "tenantUsers": 1,
                                    "sourceArchived": True}, p.stdout
    assert json.loads(p2.stdout) == {"leads": 0, "activities": 0, "users": 1, "tenantUsers": 1,
                                     "sourceArchived": False}, p2.stdout


@test
def migrate_errors(ctx):
    src = create(ctx, samples=2)
    dst = create(ctx, plan="basic")
    sid, did = src["tenant_id"], dst["tenant_id"]
    for args in (["tenant", "migrate", sid, "nope"], ["tenant", "migrate", "nope", did],
                 ["tenant", "migrate", sid, did, "--no-leads"],
                 ["tenant", "migrate", sid, did, "--dry-run"]):
        usage_error(ctx, *args)
    p = fails(ctx, "validation_error", "tenant", "migrate", sid, sid)
    assert "targetTenantId" in p.stderr
    fails(ctx, "tenant_not_found", "tenant", "migrate", sid, str(uuid.uuid4()))
    sql(ctx, "UPDATE tenants SET limit_overrides = '{\"maxLeads\": 1}',"
             " resource_limits = resource_limits || '{\"maxLeads\": 1}' WHERE id = %s", (did,))
    fails(ctx, "limit_exceeded", "tenant", "migrate", sid, did)
    assert ctx.count_leads(did) == 0 and ctx.count_leads(sid) == 2
    assert sql1(ctx, "SELECT status FROM tenants WHERE id = %s", (sid,)) == "active"


# --------------------------------------------------------------------------
# cleanup and retention


@test
def cleanup_and_retention(ctx):
    old = create(ctx, samples=2)
    recent = create(ctx, samples=2)
    oid, rid = old["tenant_id"], recent["tenant_id"]
    sql(ctx, "UPDATE tenants SET status = 'archived', archived_at = now() - interval '100 days'"
             " WHERE id = %s", (oid,))
    sql(ctx, "UPDATE tenants SET status = 'archived', archived_at = now() - interval '10 days'"
             " WHERE id = %s", (rid,))
    expected = {"leads": 2, "activities": 4, "users": 1, "auditLogs": 0, "apiKeys": 1}

    def results(j):
        assert set(j) == {"dryRun", "results", "tenantsProcessed", "tenantsFailed"}, j
        return {x["tenantId"]: x.get("result", x.get("error")) for x in j["results"]}

    res = results(ok_json(ctx, "tenant", "cleanup", "--dry-run", "--older-than-days", "200"))
    assert oid not in res and rid not in res
    j = ok_json(ctx, "tenant", "cleanup", "--dry-run")
    assert j["dryRun"] is True
    res = results(j)
    assert res.get(oid) == expected and rid not in res, res
    assert ctx.count_leads(oid) == 2
    j = ok_json(ctx, "tenant", "cleanup", "--older-than-days", "90")
    assert j["dryRun"] is False
    res = results(j)
    assert res.get(oid) == expected and rid not in res, res
    assert sql1(ctx, "SELECT count(*) FROM tenants WHERE id = %s", (oid,)) == 0
    assert ctx.count_leads(oid) == 0 and ctx.count_leads(rid) == 2
    assert [(a, actor) for a, actor, _, _ in audit_rows(ctx, oid, "tenant.delete")] == [
        ("tenant.delete", ACTOR)]
    for args in (["tenant", "cleanup", "--older-than-days", "-1"],
                 ["tenant", "cleanup", "--older-than-days", "x"],
                 ["tenant", "cleanup", "--older-than-days"],
                 ["tenant", "cleanup", "now"],
                 ["tenant", "retention", "--older-than-days", "5"],
                 ["tenant", "retention", "--dry"]):
        usage_error(ctx, *args)

    # Retention: one lead untouched for 400 days in a tenant keeping 365.
    t = create(ctx, samples=3)
    tid = t["tenant_id"]
    stale = sql1(ctx, "SELECT id::text FROM leads WHERE tenant_id = %s ORDER BY id LIMIT 1",
                 (tid,))
    sql(ctx, "UPDATE leads SET created_at = now() - interval '400 days',"
             " updated_at = now() - interval '400 days',"
             " last_activity_at = now() - interval '400 days' WHERE id = %s", (stale,))
    sql(ctx, "UPDATE activities SET created_at = now() - interval '400 days',"
             " occurred_at = now() - interval '400 days' WHERE lead_id = %s", (stale,))
    j = ok_json(ctx, "tenant", "retention", "--dry-run")
    res = results(j)
    assert {k: v for k, v in res[tid].items() if k != "cutoff"} == {
        "leads": 1, "activities": 2, "auditLogs": 0}, res[tid]
    assert ctx.count_leads(tid) == 3
    assert audit_rows(ctx, tid, "tenant.retention") == []
    j = ok_json(ctx, "tenant", "retention")
    res = results(j)
    assert {k: v for k, v in res[tid].items() if k != "cutoff"} == {
        "leads": 1, "activities": 2, "auditLogs": 0}, res[tid]
    assert ctx.count_leads(tid) == 2
    assert sql1(ctx, "SELECT count(*) FROM leads WHERE id = %s", (stale,)) == 0
    assert sql1(ctx, "SELECT count(*) FROM activities WHERE tenant_id = %s", (tid,)) == 4
    assert [(a, actor) for a, actor, _, _ in audit_rows(ctx, tid, "tenant.retention")] == [
        ("tenant.retention", ACTOR)]


# --------------------------------------------------------------------------
# operator tokens


@test
def admin_tokens_create_list_revoke(ctx):
    name = "cli-token-" + rand()
    p = ok(ctx, "admin", "token", "create", "--name", name)
    f = fields_of(p.stdout)
    tok, tid = f["token"], f["token_id"]
    assert re.match(r"^to_[0-9a-f]{64}$", tok) and UUID_RE.match(tid) and f["name"] == name, f
    assert p.stdout.count(tok) == 1
    r = ctx.http("GET", "/admin/tenants?limit=1", headers={"Authorization": "Bearer " + tok})
    assert r.status == 200, r

    p = ok(ctx, "admin", "token", "list")
    assert tok[3:] not in p.stdout and tok not in p.stdout
    line = [l for l in p.stdout.splitlines() if l.startswith(tid)]
    assert len(line) == 1, p.stdout
    cols = line[0].split()
    assert cols[1] == tok[:11] and cols[2] == "active" and cols[-1] == name, line
    assert cols[4] != "-", "last used is recorded: %r" % line

    p = ok(ctx, "admin", "token", "revoke", tid)
    assert p.stdout.strip() == "revoked " + tid, p.stdout
    r = ctx.http("GET", "/admin/tenants?limit=1", headers={"Authorization": "Bearer " + tok})
    assert_error(r, 401, "invalid_operator_token")
    line = [l for l in ok(ctx, "admin", "token", "list").stdout.splitlines()
            if l.startswith(tid)]
    assert line[0].split()[2] == "revoked", line
    p = cli(ctx, "admin", "token", "revoke", tid)
    assert p.returncode == 1 and p.stdout == "" and tid in p.stderr, (p.returncode, p.stderr)
    rows = sql(ctx, "SELECT action, actor, details->>'name' FROM operator_audit"
                    " WHERE token_id = %s ORDER BY id", (tid,))
    assert rows == [("token.create", ACTOR, name), ("token.revoke", ACTOR, name)], rows


@test
def admin_token_argument_errors_exit_2(ctx):
    before = sql1(ctx, "SELECT count(*) FROM operator_tokens")
    for args in (["admin"], ["admin", "token"], ["admin", "token", "create"],
                 ["admin", "token", "create", "--name", ""],
                 ["admin", "token", "create", "--name", "n" * 101],
                 ["admin", "token", "create", "--name"],
                 ["admin", "token", "create", "--name", "x", "--colour", "red"],
                 ["admin", "token", "list", "extra"],
                 ["admin", "token", "revoke"], ["admin", "token", "revoke", "nope"],
                 ["admin", "frob"], ["admin", "key", "create", "--name", "x"]):
        usage_error(ctx, *args)
    assert sql1(ctx, "SELECT count(*) FROM operator_tokens") == before
