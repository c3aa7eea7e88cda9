"""test_admin_api.py - the operator API (issue 4, sections 1 to 4): access,
provisioning, listing, showing and updating tenants, the outbox and audit views.

  - operator access: every /admin route answers 401 missing_operator_token
    without a token and 401 invalid_operator_token (with WWW-Authenticate)
    for a wrong, malformed or revoked token; a tenant key never opens /admin
    and an operator token is never a tenant key on /v1; tokens are stored as
    SHA-256 only and record when they were last used;
  - POST /admin/tenants: 201 with {tenantId, apiKey, adminUserId, slug,
    dashboardUrl}; the key works on /v1; every row the seed writes (tenant
    with the plan's features and limits, data key, key hash, Argon2id admin,
    admin membership, settings, sample data, outbox side effects, operator
    audit) is checked in the database; slugs follow the seed's generateSlug
    and get -2, -3; every bad input (missing fields, unknown plan, invalid
    timezone, weak or over-long password, duplicate admin e-mail, unknown
    fields) is a 400/409 with the field and leaves no row behind; a fault
    injected halfway through the transaction (a trigger raising on
    tenant_settings or outbox) leaves nothing behind either;
  - GET /admin/tenants (filters, pagination, compared with SQL), GET
    /admin/tenants/{id} (usage, settings), PATCH /admin/tenants/{id} (plain
    fields, plan change with overrides kept, override merge and removal,
    validation with nothing changed, unknown tenants);
  - GET /admin/outbox and GET /admin/audit with their parameters.
"""
import hashlib
import math
import re
import time
import uuid
from datetime import datetime, timedelta, timezone

from harness import rand, sql, sql1, assert_error, test

KEY_RE = re.compile(r"^tk_[0-9a-f]{64}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PASSWORD = "correct-horse-42"

# The seed's getDefaultFeatures / getDefaultLimits, copied from the seed.
BASIC_FEATURES = {"lead:read": True, "lead:create": True, "lead:update": True,
                  "lead:delete": False, "voice:basic": True, "api:access": True,
                  "export:csv": False}
PLAN_FEATURES = {
    "basic": BASIC_FEATURES,
    "trial": BASIC_FEATURES,
    "professional": {"lead:read": True, "lead:create": True, "lead:update": True,
                     "lead:delete": True, "voice:advanced": True, "api:access": True,
                     "export:csv": True, "automation:basic": True},
    "enterprise": {"lead:read": True, "lead:create": True, "lead:update": True,
                   "lead:delete": True, "voice:advanced": True, "api:access": True,
                   "export:csv": True, "export:api": True, "automation:advanced": True,
                   "sso:enabled": True, "audit:advanced": True},
}
BASIC_LIMITS = {"maxUsers": 5, "maxLeads": 1000, "maxStorageMb": 100, "apiRateLimit": 100}
PLAN_LIMITS = {
    "basic": BASIC_LIMITS,
    "trial": BASIC_LIMITS,
    "professional": {"maxUsers": 25, "maxLeads": 10000, "maxStorageMb": 1000,
                     "apiRateLimit": 1000},
    "enterprise": {"maxUsers": 100, "maxLeads": 100000, "maxStorageMb": 10000,
                   "apiRateLimit": 10000},
}
TENANT_KEYS = {"id", "name", "slug", "status", "plan", "billingEmail", "enabledFeatures",
               "resourceLimits", "featureOverrides", "limitOverrides", "dataRetentionDays",
               "complianceRequirements", "encryptionKeyId", "createdAt", "updatedAt",
               "archivedAt", "trialEndsAt"}
# Every row a provisioning writes lands in one of these.
PROVISION_TABLES = ("tenants", "users", "tenant_users", "api_keys", "tenant_settings",
                    "tenant_data_keys", "outbox", "leads", "activities")


# --------------------------------------------------------------------------
# helpers


def make_token(ctx, name):
    p = ctx.tekup("admin", "token", "create", "--name", name, "--data-dir", ctx.data_dir)
    assert p.returncode == 0, p.stdout + p.stderr
    fields = dict(line.split(": ", 1) for line in p.stdout.splitlines() if ": " in line)
    assert re.match(r"^to_[0-9a-f]{64}$", fields["token"]), p.stdout
    return fields["token_id"], fields["token"]


_OPERATOR = {}


def operator(ctx):
    """(token id, token, name) of this module's operator token."""
    if "tok" not in _OPERATOR:
        name = "api-tests-" + rand()
        tid, tok = make_token(ctx, name)
        _OPERATOR.update(id=tid, tok=tok, name=name)
    return _OPERATOR["id"], _OPERATOR["tok"], _OPERATOR["name"]


def admin(ctx, method, path, body=None, token=None, headers=None):
    tok = token if token is not None else operator(ctx)[1]
    h = {"Authorization": "Bearer " + tok}
    if headers:
        h.update(headers)
    return ctx.http(method, path, body=body, headers=h)


def tenant_body(**over):
    r = rand()
    body = {"name": "Admin Api " + r, "plan": "professional",
            "billingEmail": "billing-%s@example.com" % r,
            "adminEmail": "admin-%s@example.com" % r, "adminName": "Ada Admin",
            "adminPassword": PASSWORD}
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


def create_tenant(ctx, **over):
    body = tenant_body(**over)
    r = admin(ctx, "POST", "/admin/tenants", body)
    assert r.status == 201, r
    out = r.json
    out["body"] = body
    return out


def snapshot(ctx):
    """Row counts of every table a provisioning writes, in one query."""
    cols = ", ".join("(SELECT count(*) FROM %s)" % t for t in PROVISION_TABLES)
    row = sql(ctx, "SELECT " + cols + ", (SELECT count(*) FROM operator_audit"
                   " WHERE action = 'tenant.create')")[0]
    return dict(zip(PROVISION_TABLES + ("audit:tenant.create",), row))


def parse_ts(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def db_now(ctx):
    return sql1(ctx, "SELECT now()")


def seed_slug(name):
    """The seed's generateSlug (lower-case, non-alphanumerics to '-', runs of
    '-' collapsed, one leading/trailing '-' removed, first 50 characters)."""
    s = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", name.lower()))
    s = re.sub(r"^-|-$", "", s)
    return s[:50]


def tenant_row(ctx, tid):
    return sql(ctx, "SELECT name, slug, status, subscription_plan, billing_email,"
                    " enabled_features, resource_limits, feature_overrides, limit_overrides,"
                    " data_retention_days, compliance_requirements, trial_ends_at, archived_at"
                    " FROM tenants WHERE id = %s", (tid,))


def wait_status(ctx, method, path, key, status, timeout=5.5, body=None):
    """Polls until the response has the status; returns (response, seconds)."""
    t0 = time.time()
    while True:
        r = ctx.http(method, path, key=key, body=body)
        if r.status == status or time.time() - t0 > timeout:
            return r, time.time() - t0
        time.sleep(0.1)


# --------------------------------------------------------------------------
# operator access

ANY_ID = "6f1c1d2e-0000-4000-8000-000000000001"
ADMIN_ROUTES = [
    ("GET", "/admin/tenants", None),
    ("POST", "/admin/tenants", {}),
    ("GET", "/admin/tenants/" + ANY_ID, None),
    ("PATCH", "/admin/tenants/" + ANY_ID, {"name": "x"}),
    ("GET", "/admin/tenants/%s/keys" % ANY_ID, None),
    ("POST", "/admin/tenants/%s/keys" % ANY_ID, None),
    ("DELETE", "/admin/tenants/%s/keys/%s" % (ANY_ID, ANY_ID), None),
    ("POST", "/admin/tenants/%s/keys/%s/rotate" % (ANY_ID, ANY_ID), None),
    ("POST", "/admin/tenants/%s/migrate" % ANY_ID, {"targetTenantId": ANY_ID}),
    ("POST", "/admin/maintenance/cleanup", None),
    ("POST", "/admin/maintenance/retention", None),
    ("GET", "/admin/outbox", None),
    ("GET", "/admin/audit", None),
]


def assert_operator_401(r, code):
    assert_error(r, 401, code)
    www = r.header("WWW-Authenticate")
    assert www is not None and www.startswith("Bearer"), (r, r.headers)


@test
def every_admin_route_requires_an_operator_token(ctx):
    before = snapshot(ctx)
    for method, path, body in ADMIN_ROUTES:
        r = ctx.http(method, path, body=body)
        assert_operator_401(r, "missing_operator_token")
    _, tok, _ = operator(ctx)
    wrong = [
        "Bearer to_" + "0" * 64,              # well-formed, unknown
        "Bearer " + tok[:-1],                  # one character short
        "Bearer " + tok + "0",                 # one character long
        "Bearer " + tok.upper(),               # hex must be lower-case, prefix to_
        "Bearer " + tok[:3] + "g" + tok[4:],   # not hex
        "Basic " + tok,                        # wrong scheme
        tok,                                   # no scheme
        "Bearer",
    ]
    for method, path, body in ADMIN_ROUTES:
        for auth in wrong:
            r = ctx.http(method, path, body=body, headers={"Authorization": auth})
            assert_operator_401(r, "invalid_operator_token")
    # Nothing ran: no tenant created, no audit row, no maintenance.
    assert snapshot(ctx) == before
    # The right token opens the same door.
    assert admin(ctx, "GET", "/admin/tenants").status == 200


@test
def tenant_keys_and_operator_tokens_never_cross(ctx):
    t = create_tenant(ctx)
    _, tok, _ = operator(ctx)
    # A tenant key on /admin: as X-Tenant-Key it is no operator token at all,
    # as a bearer token it is not a valid one.
    r = ctx.http("GET", "/admin/tenants", key=t["apiKey"])
    assert_operator_401(r, "missing_operator_token")
    r = ctx.http("GET", "/admin/tenants", headers={"Authorization": "Bearer " + t["apiKey"]})
    assert_operator_401(r, "invalid_operator_token")
    r = ctx.http("GET", "/admin/tenants/" + t["tenantId"], key=t["apiKey"],
                 headers={"Authorization": "Bearer " + t["apiKey"]})
    assert_operator_401(r, "invalid_operator_token")
    # An operator token on /v1 is not a tenant key.
    r = ctx.http("GET", "/v1/leads", key=tok)
    assert_error(r, 401, "invalid_tenant_key")
    r = ctx.http("GET", "/v1/leads", headers={"Authorization": "Bearer " + tok})
    assert_error(r, 401, "missing_tenant_key")
    r = ctx.http("POST", "/v1/leads", key=tok, body={"name": "sneaky"},
                 headers={"Authorization": "Bearer " + tok})
    assert_error(r, 401, "invalid_tenant_key")
    assert ctx.count_leads(t["tenantId"]) == 0


@test
def operator_tokens_are_stored_hashed_and_record_last_use(ctx):
    name = "hash-check-" + rand()
    tid, tok = make_token(ctx, name)
    rows = sql(ctx, "SELECT encode(token_hash, 'hex'), prefix, name, last_used_at, revoked_at"
                    " FROM operator_tokens WHERE id = %s", (tid,))
    assert len(rows) == 1
    token_hash, prefix, stored_name, last_used, revoked = rows[0]
    assert token_hash == hashlib.sha256(tok.encode()).hexdigest()
    assert prefix == tok[:11] and stored_name == name
    assert last_used is None and revoked is None
    # The token's text is nowhere in the table.
    assert sql1(ctx, "SELECT count(*) FROM operator_tokens t"
                     " WHERE strpos(t::text, %s) > 0", (tok[3:],)) == 0
    assert admin(ctx, "GET", "/admin/audit?limit=1", token=tok).status == 200
    last_used = sql1(ctx, "SELECT last_used_at FROM operator_tokens WHERE id = %s", (tid,))
    assert last_used is not None
    assert abs((db_now(ctx) - last_used).total_seconds()) < 30
    # The creation was audited.
    rows = sql(ctx, "SELECT details->>'name', details->>'prefix' FROM operator_audit"
                    " WHERE action = 'token.create' AND token_id = %s", (tid,))
    assert rows == [(name, tok[:11])], rows


@test
def revoked_operator_token_is_refused_at_once(ctx):
    tid, tok = make_token(ctx, "revoke-me-" + rand())
    assert admin(ctx, "GET", "/admin/tenants", token=tok).status == 200
    p = ctx.tekup("admin", "token", "revoke", tid, "--data-dir", ctx.data_dir)
    assert p.returncode == 0, p.stdout + p.stderr
    r = admin(ctx, "GET", "/admin/tenants", token=tok)
    assert_operator_401(r, "invalid_operator_token")
    r = admin(ctx, "POST", "/admin/tenants", tenant_body(), token=tok)
    assert_operator_401(r, "invalid_operator_token")
    # Another token is unaffected.
    assert admin(ctx, "GET", "/admin/tenants").status == 200


# --------------------------------------------------------------------------
# provisioning


@test
def provisioning_returns_ids_and_a_working_key(ctx):
    body = tenant_body()
    r = admin(ctx, "POST", "/admin/tenants", body)
    assert r.status == 201, r
    out = r.json
    assert set(out) == {"tenantId", "apiKey", "adminUserId", "slug", "dashboardUrl"}, out
    assert UUID_RE.match(out["tenantId"]) and UUID_RE.match(out["adminUserId"]), out
    assert KEY_RE.match(out["apiKey"]), out
    assert out["slug"] == seed_slug(body["name"])
    base = ctx.env.get("TEKUP_DASHBOARD_URL", "https://app.tekup.org").rstrip("/")
    assert out["dashboardUrl"] == base + "/" + out["slug"], out
    assert r.header("Location") == "/admin/tenants/" + out["tenantId"]
    lr = ctx.http("GET", "/v1/leads", key=out["apiKey"])
    assert lr.status == 200, lr
    assert lr.header("X-Tenant-ID") == out["tenantId"]
    assert lr.json["data"] == []
    cr = ctx.http("POST", "/v1/leads", key=out["apiKey"], body={"name": "First lead"})
    assert cr.status == 201, cr
    assert ctx.count_leads(out["tenantId"]) == 1


@test
def provisioning_writes_every_row_in_the_database(ctx):
    tok_id, _, tok_name = operator(ctx)
    body = tenant_body(plan="enterprise", timezone="Europe/Copenhagen", locale="da-DK",
                       adminName="Birgitte Nyborg")
    r = admin(ctx, "POST", "/admin/tenants", body)
    assert r.status == 201, r
    out = r.json
    tid, key, uid = out["tenantId"], out["apiKey"], out["adminUserId"]

    (name, slug, status, plan, billing, features, limits, f_over, l_over, days, compliance,
     trial_ends, archived) = tenant_row(ctx, tid)[0]
    assert (name, slug, status, plan, billing) == (body["name"], out["slug"], "active",
                                                    "enterprise", body["billingEmail"])
    assert features == PLAN_FEATURES["enterprise"], features
    assert limits == PLAN_LIMITS["enterprise"], limits
    assert f_over == {} and l_over == {} and trial_ends is None and archived is None
    assert days == 365 and compliance == []

    # The data key named by encryption_key_id exists, wrapped, for this tenant.
    rows = sql(ctx, "SELECT k.id, octet_length(k.wrapped_key) FROM tenants t"
                    " JOIN tenant_data_keys k ON k.tenant_id = t.id AND k.id = t.encryption_key_id"
                    " WHERE t.id = %s", (tid,))
    assert len(rows) == 1 and rows[0][0] and rows[0][1] >= 32, rows
    assert sql1(ctx, "SELECT count(*) FROM tenant_data_keys WHERE tenant_id = %s", (tid,)) == 1

    # The key: SHA-256 and display prefix only.
    rows = sql(ctx, "SELECT encode(key_hash, 'hex'), prefix, revoked_at, expires_at"
                    " FROM api_keys WHERE tenant_id = %s", (tid,))
    assert rows == [(hashlib.sha256(key.encode()).hexdigest(), key[:11], None, None)], rows
    assert sql1(ctx, "SELECT count(*) FROM api_keys k WHERE strpos(k::text, %s) > 0",
                (key[3:],)) == 0

    # The admin: Argon2id hash, admin membership.
    rows = sql(ctx, "SELECT id::text, email, name, password_hash, is_active FROM users"
                    " WHERE tenant_id = %s", (tid,))
    assert len(rows) == 1, rows
    assert rows[0][:3] == (uid, body["adminEmail"], "Birgitte Nyborg"), rows
    assert rows[0][3].startswith("$argon2id$"), rows[0][3]
    assert PASSWORD not in rows[0][3] and rows[0][4] is True
    assert sql(ctx, "SELECT user_id::text, role FROM tenant_users WHERE tenant_id = %s",
               (tid,)) == [(uid, "admin")]

    # Settings.
    assert sql(ctx, "SELECT timezone, locale, date_format, time_format FROM tenant_settings"
                    " WHERE tenant_id = %s", (tid,)) == [("Europe/Copenhagen", "da-DK",
                                                         "YYYY-MM-DD", "24h")]

    # No sample data unless asked for.
    assert ctx.count_leads(tid) == 0

    # The side effects, in the outbox.
    rows = sql(ctx, "SELECT kind, topic, payload FROM outbox WHERE tenant_id = %s ORDER BY topic",
               (tid,))
    assert [(k, t) for k, t, _ in rows] == [("webhook", "billing.subscription.create"),
                                           ("email", "tenant.welcome")], rows
    billing, welcome = rows[0][2], rows[1][2]
    assert billing["tenantId"] == tid and billing["plan"] == "enterprise"
    assert billing["billingEmail"] == body["billingEmail"] and billing["slug"] == out["slug"]
    assert welcome["to"] == body["adminEmail"], welcome
    assert out["dashboardUrl"] in welcome["text"], welcome

    # The operator audit.
    rows = sql(ctx, "SELECT actor, token_id::text, details FROM operator_audit"
                    " WHERE action = 'tenant.create' AND tenant_id = %s", (tid,))
    assert len(rows) == 1, rows
    assert rows[0][0] == tok_name and rows[0][1] == tok_id, rows
    assert rows[0][2]["plan"] == "enterprise" and rows[0][2]["slug"] == out["slug"], rows


@test
def provisioning_defaults_basic_utc_en(ctx):
    body = tenant_body(plan=None)
    assert "plan" not in body
    r = admin(ctx, "POST", "/admin/tenants", body)
    assert r.status == 201, r
    tid = r.json["tenantId"]
    assert sql(ctx, "SELECT subscription_plan, enabled_features, resource_limits FROM tenants"
                    " WHERE id = %s", (tid,)) == [("basic", BASIC_FEATURES, BASIC_LIMITS)]
    assert sql(ctx, "SELECT timezone, locale, date_format, time_format FROM tenant_settings"
                    " WHERE tenant_id = %s", (tid,)) == [("UTC", "en", "YYYY-MM-DD", "24h")]
    # basic is a paying plan: billing is told.
    assert sql1(ctx, "SELECT count(*) FROM outbox WHERE tenant_id = %s"
                     " AND topic = 'billing.subscription.create'", (tid,)) == 1


@test
def every_plan_gets_the_seeds_features_and_limits(ctx):
    for plan in ("trial", "basic", "professional", "enterprise"):
        t = create_tenant(ctx, plan=plan)
        r = admin(ctx, "GET", "/admin/tenants/" + t["tenantId"])
        assert r.status == 200, r
        j = r.json
        assert j["plan"] == plan
        assert j["enabledFeatures"] == PLAN_FEATURES[plan], (plan, j)
        assert j["resourceLimits"] == PLAN_LIMITS[plan], (plan, j)
        assert j["featureOverrides"] == {} and j["limitOverrides"] == {}
        topics = [row[0] for row in sql(ctx, "SELECT topic FROM outbox WHERE tenant_id = %s"
                                             " ORDER BY topic", (t["tenantId"],))]
        if plan == "trial":
            ends = parse_ts(j["trialEndsAt"])
            expected = db_now(ctx) + timedelta(days=14)
            assert abs((ends - expected).total_seconds()) < 120, (ends, expected)
            # No billing subscription for a trial.
            assert topics == ["tenant.welcome"], topics
        else:
            assert j["trialEndsAt"] is None, j
            assert topics == ["billing.subscription.create", "tenant.welcome"], topics


@test
def sample_data_is_ten_leads_with_twenty_activities(ctx):
    t = create_tenant(ctx, includeSampleData=True)
    tid, uid = t["tenantId"], t["adminUserId"]
    assert sql(ctx, "SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE created_by = %s"
                    " AND assigned_to = %s) FROM leads WHERE tenant_id = %s",
               (uid, uid, tid)) == [(10, 10, 10)]
    assert sql1(ctx, "SELECT count(*) FROM activities WHERE tenant_id = %s", (tid,)) == 20
    # Two activities per lead.
    assert sql(ctx, "SELECT DISTINCT count(*) FROM activities WHERE tenant_id = %s"
                    " GROUP BY lead_id", (tid,)) == [(2,)]
    r = ctx.http("GET", "/v1/leads?page=1&limit=100", key=t["apiKey"])
    assert r.status == 200, r
    assert r.json["pagination"]["total"] == 10
    assert all(l["name"] and l["email"] for l in r.json["data"]), r.json
    r = admin(ctx, "GET", "/admin/tenants/" + tid)
    assert r.json["usage"]["leads"] == 10 and r.json["usage"]["activities"] == 20
    # includeSampleData false: nothing.
    t2 = create_tenant(ctx, includeSampleData=False)
    assert ctx.count_leads(t2["tenantId"]) == 0


@test
def slugs_follow_the_seed_and_are_made_unique(ctx):
    r = rand()
    name = "  Acme & Sons, Ltd. -- Nordic " + r + "!! "
    first = create_tenant(ctx, name=name)
    assert first["slug"] == "acme-sons-ltd-nordic-" + r, first
    second = create_tenant(ctx, name=name)
    third = create_tenant(ctx, name=name.upper())
    assert second["slug"] == first["slug"] + "-2", second
    assert third["slug"] == first["slug"] + "-3", third
    long_name = "Very Long Company Name " + r + " " + "x" * 60
    t = create_tenant(ctx, name=long_name)
    assert t["slug"] == seed_slug(long_name) and len(t["slug"]) == 50, t
    assert sql1(ctx, "SELECT count(DISTINCT slug) FROM tenants WHERE slug LIKE %s",
                (first["slug"] + "%",)) == 3


@test
def provisioning_errors_leave_no_partial_tenant(ctx):
    existing = create_tenant(ctx)
    taken = existing["body"]["adminEmail"]
    r = rand()
    email = "weak-%s@example.com" % r
    cases = [
        # (changes to a valid body, status, code, field)
        ({"name": None}, 400, "validation_error", "name"),
        ({"billingEmail": None}, 400, "validation_error", "billingEmail"),
        ({"adminEmail": None}, 400, "validation_error", "adminEmail"),
        ({"adminName": None}, 400, "validation_error", "adminName"),
        ({"adminPassword": None}, 400, "validation_error", "adminPassword"),
        ({"name": ""}, 400, "validation_error", "name"),
        ({"plan": "gold"}, 400, "validation_error", "plan"),
        ({"timezone": "Mars/Base"}, 400, "validation_error", "timezone"),
        ({"billingEmail": "not-an-address"}, 400, "validation_error", "billingEmail"),
        ({"adminEmail": "nobody"}, 400, "validation_error", "adminEmail"),
        ({"locale": "en US!"}, 400, "validation_error", "locale"),
        ({"includeSampleData": "yes"}, 400, "validation_error", "includeSampleData"),
        ({"adminPassword": "Short1abc"}, 400, "weak_password", "adminPassword"),
        ({"adminPassword": "12345678901234"}, 400, "weak_password", "adminPassword"),
        ({"adminPassword": "zzzzzzzzzzzzzz"}, 400, "weak_password", "adminPassword"),
        ({"adminEmail": email, "adminPassword": email}, 400, "weak_password", "adminPassword"),
        ({"adminPassword": "Ab1" * 43}, 400, "password_too_long", "adminPassword"),
        ({"adminPassword": "\u00e9" * 65}, 400, "password_too_long", "adminPassword"),
        ({"adminEmail": taken}, 409, "conflict", "adminEmail"),
        ({"adminEmail": taken.upper()}, 409, "conflict", "adminEmail"),
        ({"tenantId": str(uuid.uuid4())}, 400, "unknown_field", None),
        ({"sampleLeads": 5}, 400, "unknown_field", None),
    ]
    for change, status, code, field in cases:
        before = snapshot(ctx)
        body = tenant_body(**change)
        for k, v in change.items():
            if v is None:
                body.pop(k, None)
        resp = admin(ctx, "POST", "/admin/tenants", body)
        assert_error(resp, status, code, field)
        assert snapshot(ctx) == before, (change, before, snapshot(ctx))
        assert sql1(ctx, "SELECT count(*) FROM tenants WHERE name = %s",
                    (body.get("name", ""),)) == 0, change
    # Not JSON at all, or not an object.
    before = snapshot(ctx)
    assert_error(admin(ctx, "POST", "/admin/tenants", "{nope"), 400, "invalid_json")
    assert admin(ctx, "POST", "/admin/tenants", [1, 2]).status == 400
    assert snapshot(ctx) == before


@test
def password_far_over_the_limit_is_password_too_long(ctx):
    """Over 128 bytes is password_too_long however long it is (a 2,000-byte
    password is no different from a 129-byte one)."""
    before = snapshot(ctx)
    r = admin(ctx, "POST", "/admin/tenants", tenant_body(adminPassword="Ab1" * 700))
    assert_error(r, 400, "password_too_long", "adminPassword")
    assert snapshot(ctx) == before


@test
def exactly_128_bytes_is_accepted(ctx):
    pw = ("Ab1" * 43)[:128]
    t = create_tenant(ctx, adminPassword=pw)
    h = sql1(ctx, "SELECT password_hash FROM users WHERE id = %s", (t["adminUserId"],))
    assert h.startswith("$argon2id$")


@test
def duplicate_admin_email_when_racing_creates_one_tenant(ctx):
    """Two sign-ups of one address at the same time: one 201, one 409."""
    import threading
    body = tenant_body()
    results = []

    def go():
        results.append(admin(ctx, "POST", "/admin/tenants", dict(body)))

    threads = [threading.Thread(target=go) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    statuses = sorted(r.status for r in results)
    assert statuses == [201, 409, 409], results
    for r in results:
        if r.status == 409:
            assert_error(r, 409, "conflict", "adminEmail")
    assert sql1(ctx, "SELECT count(*) FROM users WHERE lower(email) = lower(%s)",
                (body["adminEmail"],)) == 1
    assert sql1(ctx, "SELECT count(*) FROM tenants WHERE name = %s", (body["name"],)) == 1


def with_failing_trigger(ctx, table, when, fn):
    """Runs fn() while a BEFORE INSERT trigger raises on table rows matching when."""
    name = "test_admin_fail_" + rand()
    c = ctx.owner_db()
    cur = c.cursor()
    cur.execute("CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN RAISE EXCEPTION 'injected fault'; END $$" % name)
    cur.execute("CREATE TRIGGER %s BEFORE INSERT ON %s FOR EACH ROW WHEN (%s)"
                " EXECUTE FUNCTION %s()" % (name, table, when, name))
    try:
        return fn()
    finally:
        cur.execute("DROP TRIGGER IF EXISTS %s ON %s" % (name, table))
        cur.execute("DROP FUNCTION IF EXISTS %s()" % name)
        c.close()


@test
def a_fault_halfway_through_provisioning_leaves_nothing(ctx):
    # The fault on tenant_settings comes after the tenant, its key, data key
    # and admin are written; the one on outbox is the very last insert, after
    # the sample data too.
    for table, field in (("tenant_settings", "locale"), ("outbox", None)):
        body = tenant_body(includeSampleData=True, locale="zz-FAIL")
        if table == "outbox":
            when = "NEW.payload->>'to' = '%s'" % body["adminEmail"]
        else:
            when = "NEW.locale = 'zz-FAIL'"
        before = snapshot(ctx)
        r = with_failing_trigger(ctx, table, when,
                                 lambda: admin(ctx, "POST", "/admin/tenants", body))
        assert_error(r, 500, "internal_error")
        assert snapshot(ctx) == before, (table, before, snapshot(ctx))
        assert sql1(ctx, "SELECT count(*) FROM tenants WHERE name = %s", (body["name"],)) == 0
        assert sql1(ctx, "SELECT count(*) FROM users WHERE email = %s",
                    (body["adminEmail"],)) == 0
        # Without the fault the same request succeeds: nothing was left
        # holding the name, the slug or the admin e-mail.
        r = admin(ctx, "POST", "/admin/tenants", body)
        assert r.status == 201, r
        assert r.json["slug"] == seed_slug(body["name"])
        assert ctx.count_leads(r.json["tenantId"]) == 10


# --------------------------------------------------------------------------
# list and show


def expected_page(ctx, status=None, plan=None, page=1, limit=20):
    where, params = [], []
    if status:
        where.append("status = %s")
        params.append(status)
    if plan:
        where.append("subscription_plan = %s")
        params.append(plan)
    w = (" WHERE " + " AND ".join(where)) if where else ""
    total = sql1(ctx, "SELECT count(*) FROM tenants" + w, tuple(params))
    ids = [row[0] for row in sql(ctx, "SELECT id::text FROM tenants" + w +
                                 " ORDER BY created_at, id LIMIT %s OFFSET %s",
                                 tuple(params) + (limit, (page - 1) * limit))]
    return ids, total


@test
def list_filters_and_paginates_like_sql(ctx):
    ts = [create_tenant(ctx, plan="enterprise") for _ in range(3)]
    r = admin(ctx, "PATCH", "/admin/tenants/" + ts[1]["tenantId"], {"status": "suspended"})
    assert r.status == 200, r
    queries = [
        ({}, dict()),
        ({"status": "suspended"}, dict(status="suspended")),
        ({"plan": "enterprise"}, dict(plan="enterprise")),
        ({"status": "active", "plan": "enterprise", "limit": "2", "page": "2"},
         dict(status="active", plan="enterprise", limit=2, page=2)),
        ({"limit": "1", "page": "3"}, dict(limit=1, page=3)),
        ({"limit": "100"}, dict(limit=100)),
        ({"page": "100000"}, dict(page=100000)),
        ({"plan": "gold"}, dict(plan="gold")),
    ]
    for params, exp in queries:
        qs = "&".join("%s=%s" % kv for kv in params.items())
        r = admin(ctx, "GET", "/admin/tenants" + ("?" + qs if qs else ""))
        assert r.status == 200, (params, r)
        j = r.json
        assert set(j) == {"data", "pagination"}
        ids, total = expected_page(ctx, **exp)
        limit = exp.get("limit", 20)
        assert [t["id"] for t in j["data"]] == ids, params
        assert j["pagination"] == {"page": exp.get("page", 1), "limit": limit, "total": total,
                                   "pages": math.ceil(total / limit)}, (params, j["pagination"])
        for t in j["data"]:
            assert set(t) == TENANT_KEYS, t
            if "status" in exp:
                assert t["status"] == exp["status"]
            if "plan" in exp:
                assert t["plan"] == exp["plan"]
    # The suspended one is listed as suspended, the others as active.
    ids, _ = expected_page(ctx, status="suspended", plan="enterprise", limit=100000)
    assert ts[1]["tenantId"] in ids
    assert ts[0]["tenantId"] not in ids and ts[2]["tenantId"] not in ids


@test
def list_rejects_bad_parameters(ctx):
    for qs, code, field in [("status=deleted", "invalid_parameter", "status"),
                            ("status=", "invalid_parameter", "status"),
                            ("plan=", "invalid_parameter", "plan"),
                            ("plan=" + "p" * 51, "invalid_parameter", "plan"),
                            ("page=0", "invalid_parameter", "page"),
                            ("page=abc", "invalid_parameter", "page"),
                            ("page=100001", "invalid_parameter", "page"),
                            ("limit=0", "invalid_parameter", "limit"),
                            ("limit=101", "invalid_parameter", "limit"),
                            ("limit=-1", "invalid_parameter", "limit"),
                            ("sort=name", "unknown_parameter", None),
                            ("tenantId=x", "unknown_parameter", None)]:
        assert_error(admin(ctx, "GET", "/admin/tenants?" + qs), 400, code, field)


@test
def show_has_usage_and_settings(ctx):
    t = create_tenant(ctx, includeSampleData=True, timezone="America/New_York", locale="en-US",
                      plan="trial")
    tid = t["tenantId"]
    r = admin(ctx, "GET", "/admin/tenants/" + tid)
    assert r.status == 200, r
    j = r.json
    assert set(j) == TENANT_KEYS | {"usage", "settings"}, j
    assert j["id"] == tid and j["slug"] == t["slug"] and j["name"] == t["body"]["name"]
    assert j["status"] == "active" and j["plan"] == "trial" and j["archivedAt"] is None
    assert j["billingEmail"] == t["body"]["billingEmail"]
    assert j["encryptionKeyId"] == sql1(ctx, "SELECT encryption_key_id FROM tenants"
                                             " WHERE id = %s", (tid,))
    assert j["settings"] == {"timezone": "America/New_York", "locale": "en-US",
                             "dateFormat": "YYYY-MM-DD", "timeFormat": "24h"}, j
    u = j["usage"]
    assert set(u) == {"leads", "users", "activities", "storageBytes"}, u
    assert (u["leads"], u["users"], u["activities"]) == (10, 1, 20), u
    assert isinstance(u["storageBytes"], int) and u["storageBytes"] > 0, u
    created = parse_ts(j["createdAt"])
    assert abs((db_now(ctx) - created).total_seconds()) < 60
    # Usage follows the data.
    assert ctx.http("POST", "/v1/leads", key=t["apiKey"],
                    body={"name": "One more", "company": "x" * 200}).status == 201
    u2 = admin(ctx, "GET", "/admin/tenants/" + tid).json["usage"]
    assert u2["leads"] == 11 and u2["storageBytes"] > u["storageBytes"], (u, u2)
    # A fresh tenant: only its admin.
    t2 = create_tenant(ctx)
    u3 = admin(ctx, "GET", "/admin/tenants/" + t2["tenantId"]).json["usage"]
    assert (u3["leads"], u3["users"], u3["activities"]) == (0, 1, 0), u3
    assert u3["storageBytes"] > 0


@test
def show_unknown_and_malformed_ids(ctx):
    assert_error(admin(ctx, "GET", "/admin/tenants/" + str(uuid.uuid4())), 404,
                 "tenant_not_found")
    assert_error(admin(ctx, "GET", "/admin/tenants/not-a-uuid"), 400, "invalid_id", "id")
    assert_error(admin(ctx, "GET", "/admin/tenants/1234"), 400, "invalid_id", "id")
    t = create_tenant(ctx)
    assert_error(admin(ctx, "GET", "/admin/tenants/%s?usage=1" % t["tenantId"]), 400,
                 "unknown_parameter")
    # Upper-case UUIDs are the same tenant.
    r = admin(ctx, "GET", "/admin/tenants/" + t["tenantId"].upper())
    assert r.status == 200 and r.json["id"] == t["tenantId"], r
    r = ctx.http("PUT", "/admin/tenants/" + t["tenantId"],
                 headers={"Authorization": "Bearer " + operator(ctx)[1]})
    assert_error(r, 405, "method_not_allowed")
    assert r.header("Allow") == "GET, PATCH", r.headers


# --------------------------------------------------------------------------
# update


@test
def update_plain_fields(ctx):
    tok_id, _, tok_name = operator(ctx)
    t = create_tenant(ctx)
    tid = t["tenantId"]
    before = admin(ctx, "GET", "/admin/tenants/" + tid).json
    time.sleep(0.01)
    change = {"name": "Renamed " + rand(), "billingEmail": "ap@example.org",
              "dataRetentionDays": 30, "complianceRequirements": ["GDPR", "SOC2"]}
    r = admin(ctx, "PATCH", "/admin/tenants/" + tid, change)
    assert r.status == 200, r
    j = r.json
    assert set(j) == TENANT_KEYS, j
    assert j["name"] == change["name"] and j["billingEmail"] == "ap@example.org"
    assert j["dataRetentionDays"] == 30 and j["complianceRequirements"] == ["GDPR", "SOC2"]
    assert j["slug"] == before["slug"], "the slug is the tenant's address; it does not change"
    assert j["plan"] == before["plan"] and j["status"] == "active"
    assert j["enabledFeatures"] == before["enabledFeatures"]
    assert parse_ts(j["updatedAt"]) > parse_ts(before["updatedAt"])
    row = tenant_row(ctx, tid)[0]
    assert (row[0], row[4], row[9], row[10]) == (change["name"], "ap@example.org", 30,
                                                 ["GDPR", "SOC2"]), row
    # A field left out is kept.
    r = admin(ctx, "PATCH", "/admin/tenants/" + tid, {"dataRetentionDays": 90})
    assert r.json["name"] == change["name"] and r.json["dataRetentionDays"] == 90
    # Audited with what changed.
    rows = sql(ctx, "SELECT actor, token_id::text, details FROM operator_audit"
                    " WHERE action = 'tenant.update' AND tenant_id = %s ORDER BY id", (tid,))
    assert len(rows) == 2, rows
    assert rows[0][0] == tok_name and rows[0][1] == tok_id
    assert rows[0][2] == change, rows[0][2]
    assert rows[1][2] == {"dataRetentionDays": 90}, rows[1][2]


@test
def plan_change_resets_to_the_new_plan_and_keeps_overrides(ctx):
    t = create_tenant(ctx, plan="basic")
    tid = t["tenantId"]
    path = "/admin/tenants/" + tid
    r = admin(ctx, "PATCH", path, {"featureOverrides": {"export:csv": True, "beta:x": True},
                                   "limitOverrides": {"maxLeads": 5000}})
    assert r.status == 200, r
    j = r.json
    assert j["featureOverrides"] == {"export:csv": True, "beta:x": True}
    assert j["limitOverrides"] == {"maxLeads": 5000}
    assert j["enabledFeatures"] == dict(BASIC_FEATURES, **{"export:csv": True, "beta:x": True})
    assert j["resourceLimits"] == dict(BASIC_LIMITS, maxLeads=5000)

    # Plan change: the new plan's defaults, overrides on top.
    r = admin(ctx, "PATCH", path, {"plan": "professional"})
    j = r.json
    assert j["plan"] == "professional"
    assert j["enabledFeatures"] == dict(PLAN_FEATURES["professional"],
                                        **{"export:csv": True, "beta:x": True}), j
    assert j["resourceLimits"] == dict(PLAN_LIMITS["professional"], maxLeads=5000), j
    assert j["featureOverrides"] == {"export:csv": True, "beta:x": True}

    # Override keys merge; null removes one.
    r = admin(ctx, "PATCH", path, {"featureOverrides": {"beta:x": None, "lead:delete": False},
                                   "limitOverrides": {"maxUsers": 2}})
    j = r.json
    assert j["featureOverrides"] == {"export:csv": True, "lead:delete": False}, j
    assert j["limitOverrides"] == {"maxLeads": 5000, "maxUsers": 2}, j
    assert j["enabledFeatures"] == dict(PLAN_FEATURES["professional"], **{"lead:delete": False})
    assert j["resourceLimits"] == dict(PLAN_LIMITS["professional"], maxLeads=5000, maxUsers=2)

    # Downgrade: defaults of enterprise then basic, overrides still kept.
    admin(ctx, "PATCH", path, {"plan": "enterprise"})
    r = admin(ctx, "PATCH", path, {"plan": "basic", "limitOverrides": {"maxLeads": None}})
    j = r.json
    assert j["enabledFeatures"] == dict(BASIC_FEATURES, **{"export:csv": True,
                                                           "lead:delete": False}), j
    assert j["resourceLimits"] == dict(BASIC_LIMITS, maxUsers=2), j
    assert j["limitOverrides"] == {"maxUsers": 2}
    row = tenant_row(ctx, tid)[0]
    assert row[3] == "basic" and row[5] == j["enabledFeatures"] and row[6] == j["resourceLimits"]


@test
def trial_plan_sets_and_clears_trial_end(ctx):
    t = create_tenant(ctx, plan="basic")
    path = "/admin/tenants/" + t["tenantId"]
    r = admin(ctx, "PATCH", path, {"plan": "trial"})
    assert r.status == 200, r
    ends = parse_ts(r.json["trialEndsAt"])
    assert abs((ends - (db_now(ctx) + timedelta(days=14))).total_seconds()) < 120
    assert r.json["enabledFeatures"] == BASIC_FEATURES
    r = admin(ctx, "PATCH", path, {"plan": "professional"})
    assert r.json["trialEndsAt"] is None, r.json


@test
def updating_a_trial_tenant_does_not_extend_its_trial(ctx):
    """A rename (or any change but the plan) keeps the trial's end."""
    t = create_tenant(ctx, plan="trial")
    tid = t["tenantId"]
    sql(ctx, "UPDATE tenants SET trial_ends_at = now() + interval '3 days' WHERE id = %s", (tid,))
    ends = sql1(ctx, "SELECT trial_ends_at FROM tenants WHERE id = %s", (tid,))
    r = admin(ctx, "PATCH", "/admin/tenants/" + tid, {"name": "Trial renamed " + rand()})
    assert r.status == 200, r
    assert parse_ts(r.json["trialEndsAt"]) == ends, (r.json["trialEndsAt"], ends)
    assert sql1(ctx, "SELECT trial_ends_at FROM tenants WHERE id = %s", (tid,)) == ends


@test
def update_validation_changes_nothing(ctx):
    t = create_tenant(ctx)
    tid = t["tenantId"]
    path = "/admin/tenants/" + tid
    before = tenant_row(ctx, tid)
    audits = sql1(ctx, "SELECT count(*) FROM operator_audit WHERE tenant_id = %s", (tid,))
    cases = [
        ({}, "validation_error", None),
        ({"slug": "new-slug"}, "unknown_field", None),
        ({"enabledFeatures": {"lead:delete": True}}, "unknown_field", None),
        ({"name": ""}, "validation_error", "name"),
        ({"name": "x" * 256}, "validation_error", "name"),
        ({"name": 5}, "validation_error", "name"),
        ({"billingEmail": "nope"}, "validation_error", "billingEmail"),
        ({"status": "deleted"}, "validation_error", "status"),
        ({"dataRetentionDays": 0}, "validation_error", "dataRetentionDays"),
        ({"dataRetentionDays": 36501}, "validation_error", "dataRetentionDays"),
        ({"dataRetentionDays": "30"}, "validation_error", "dataRetentionDays"),
        ({"complianceRequirements": "GDPR"}, "validation_error", "complianceRequirements"),
        ({"featureOverrides": ["lead:delete"]}, "validation_error", "featureOverrides"),
        ({"featureOverrides": {"lead:delete": "no"}}, "validation_error", "featureOverrides"),
        ({"featureOverrides": {"": True}}, "validation_error", "featureOverrides"),
        ({"limitOverrides": {"maxLeads": -1}}, "validation_error", "limitOverrides"),
        ({"limitOverrides": {"maxLeads": 1.5}}, "validation_error", "limitOverrides"),
        # A bad field with good ones: none of them is applied.
        ({"name": "Changed", "plan": "gold"}, "validation_error", "plan"),
        ({"name": "Changed", "featureOverrides": {"x": 1}}, "validation_error",
         "featureOverrides"),
    ]
    for body, code, field in cases:
        r = admin(ctx, "PATCH", path, body)
        assert_error(r, 400, code, field)
        assert tenant_row(ctx, tid) == before, body
    assert sql1(ctx, "SELECT count(*) FROM operator_audit WHERE tenant_id = %s",
                (tid,)) == audits
    assert_error(admin(ctx, "PATCH", "/admin/tenants/zzz", {"name": "x"}), 400, "invalid_id",
                 "id")
    assert_error(admin(ctx, "PATCH", path + "?force=1", {"name": "x"}), 400,
                 "unknown_parameter")


@test
def update_unknown_tenant_is_404(ctx):
    missing = str(uuid.uuid4())
    assert_error(admin(ctx, "PATCH", "/admin/tenants/" + missing, {"name": "Ghost"}), 404,
                 "tenant_not_found")
    assert_error(admin(ctx, "PATCH", "/admin/tenants/" + missing, {"plan": "basic"}), 404,
                 "tenant_not_found")
    assert sql1(ctx, "SELECT count(*) FROM tenants WHERE id = %s", (missing,)) == 0


@test
def update_unknown_tenant_with_status_is_404(ctx):
    missing = str(uuid.uuid4())
    for status in ("suspended", "active", "archived"):
        assert_error(admin(ctx, "PATCH", "/admin/tenants/" + missing, {"status": status}), 404,
                     "tenant_not_found")


# --------------------------------------------------------------------------
# outbox and audit views


@test
def outbox_view_lists_the_side_effects(ctx):
    t = create_tenant(ctx, plan="basic")
    tid = t["tenantId"]
    r = admin(ctx, "GET", "/admin/outbox?limit=500")
    assert r.status == 200, r
    mine = [m for m in r.json["data"] if m["tenantId"] == tid]
    assert sorted((m["kind"], m["topic"]) for m in mine) == [
        ("email", "tenant.welcome"), ("webhook", "billing.subscription.create")], mine
    for m in mine:
        assert set(m) == {"id", "eventId", "tenantId", "kind", "topic", "status", "attempts",
                          "lastError", "nextAttemptAt", "createdAt", "deliveredAt"}, m
        assert UUID_RE.match(m["eventId"]) and m["status"] in ("pending", "delivered", "dead")
    ids = [m["id"] for m in r.json["data"]]
    assert ids == sorted(ids, reverse=True), "newest first"
    # The status filter.
    for status in ("pending", "delivered", "dead"):
        r = admin(ctx, "GET", "/admin/outbox?limit=500&status=" + status)
        assert r.status == 200, r
        assert all(m["status"] == status for m in r.json["data"]), r.json
        expected = sql1(ctx, "SELECT least(count(*), 500) FROM outbox WHERE status = %s",
                        (status,))
        assert len(r.json["data"]) == expected
    r = admin(ctx, "GET", "/admin/outbox?limit=1")
    assert len(r.json["data"]) == 1
    for qs, code, field in [("status=sent", "invalid_parameter", "status"),
                            ("limit=0", "invalid_parameter", "limit"),
                            ("limit=501", "invalid_parameter", "limit"),
                            ("topic=x", "unknown_parameter", None)]:
        assert_error(admin(ctx, "GET", "/admin/outbox?" + qs), 400, code, field)


@test
def audit_view_lists_operator_actions(ctx):
    tok_id, _, tok_name = operator(ctx)
    t = create_tenant(ctx)
    admin(ctx, "PATCH", "/admin/tenants/" + t["tenantId"], {"name": "Audited " + rand()})
    r = admin(ctx, "GET", "/admin/audit?limit=10")
    assert r.status == 200, r
    data = r.json["data"]
    assert len(data) == 10 or len(data) == sql1(ctx, "SELECT count(*) FROM operator_audit")
    for a in data:
        assert set(a) == {"id", "actor", "tokenId", "action", "tenantId", "details",
                          "createdAt"}, a
    assert [a["id"] for a in data] == sorted((a["id"] for a in data), reverse=True)
    top = [(a["action"], a["tenantId"], a["actor"], a["tokenId"]) for a in data[:2]]
    assert top == [("tenant.update", t["tenantId"], tok_name, tok_id),
                   ("tenant.create", t["tenantId"], tok_name, tok_id)], top
    assert len(admin(ctx, "GET", "/admin/audit").json["data"]) <= 100
    for qs, code in [("limit=0", "invalid_parameter"), ("limit=1001", "invalid_parameter"),
                     ("actor=x", "unknown_parameter")]:
        assert_error(admin(ctx, "GET", "/admin/audit?" + qs), 400, code)
    assert_error(admin(ctx, "GET", "/admin/audit", body={"x": 1}), 400, "body_not_allowed")
