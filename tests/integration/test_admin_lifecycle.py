"""test_admin_lifecycle.py - a tenant's life through the operator API (issue 4,
sections 2, 4, 5 and 6): status, features, API keys, data migration, cleanup
and retention, and the operator audit of all of it.

  - status: active -> suspended -> active and -> archived (final, 409 after);
    a suspended or archived tenant's (cached) key answers 401
    invalid_tenant_key within 5 s, its data untouched; reactivated, it
    works again;
  - a feature override (lead:delete false) denies DELETE /v1/leads within
    5 s with 403 feature_disabled; removing it restores the plan's value;
  - keys: listed with prefix, name, dates, status - never the secret or its
    hash; lastUsedAt set on use, at most once a minute; create (with
    expiry), revoke (stops within 5 s; again 404 key_not_found; another
    tenant's key is not reachable), rotate with the default 24 h grace
    (both keys work, expires_at ~24 h ahead in the database) and with 0
    (the old key stops within 5 s); failed key operations leave no audit row;
  - migration: every refusal (same tenant, unknown tenant, over the target's
    maxLeads/maxUsers, bad input) and an injected fault leave both tenants
    exactly as they were; without users, user references are cleared; a
    10,000-lead source with two users is copied with new ids, activities on
    the copied leads, created_at kept, created_by/assigned_to/user_id
    remapped to the copied users, and archived;
  - cleanup: archived tenants older than N days (crafted archived_at) are
    deleted with every row, one transaction each (an injected failure on one
    is reported and leaves it whole while the next is deleted); dry run
    reports the same counts and deletes nothing; a tenant archived 10 days
    ago is kept;
  - retention: rows older than the tenant's dataRetentionDays (crafted
    timestamps) are purged, recent ones and other tenants' kept; dry run
    purges nothing;
  - every operator action above is in the operator audit with the token's
    name, action and tenant.
"""
import hashlib
import re
import time
import uuid
from datetime import datetime, timedelta, timezone

from harness import rand, sql, sql1, assert_error, test

PASSWORD = "correct-horse-42"
KEY_RE = re.compile(r"^tk_[0-9a-f]{64}$")
KEY_FIELDS = {"id", "prefix", "name", "createdAt", "lastUsedAt", "expiresAt", "revokedAt",
              "status"}


# --------------------------------------------------------------------------
# helpers


def make_token(ctx, name):
    p = ctx.tekup("admin", "token", "create", "--name", name, "--data-dir", ctx.data_dir)
    assert p.returncode == 0, p.stdout + p.stderr
    fields = dict(line.split(": ", 1) for line in p.stdout.splitlines() if ": " in line)
    return fields["token_id"], fields["token"]


_OPERATOR = {}


def operator(ctx):
    if "tok" not in _OPERATOR:
        name = "lifecycle-tests-" + rand()
        tid, tok = make_token(ctx, name)
        _OPERATOR.update(id=tid, tok=tok, name=name)
    return _OPERATOR["id"], _OPERATOR["tok"], _OPERATOR["name"]


def admin(ctx, method, path, body=None, token=None, timeout=30):
    tok = token if token is not None else operator(ctx)[1]
    return ctx.http(method, path, body=body, headers={"Authorization": "Bearer " + tok},
                    timeout=timeout)


def create_tenant(ctx, token=None, **over):
    r = rand()
    body = {"name": "Lifecycle " + r, "plan": "professional",
            "billingEmail": "billing-%s@example.com" % r,
            "adminEmail": "admin-%s@example.com" % r, "adminName": "Lif Admin",
            "adminPassword": PASSWORD}
    body.update(over)
    resp = admin(ctx, "POST", "/admin/tenants", body, token=token)
    assert resp.status == 201, resp
    out = resp.json
    out["body"] = body
    return out


def parse_ts(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def db_now(ctx):
    return sql1(ctx, "SELECT now()")


def wait_status(ctx, method, path, key, status, timeout=5.5, body=None):
    """Polls until the response has the status; returns (response, seconds)."""
    t0 = time.time()
    while True:
        r = ctx.http(method, path, key=key, body=body)
        if r.status == status or time.time() - t0 > timeout:
            return r, time.time() - t0
        time.sleep(0.1)


def assert_refused(r, status, code=None):
    """An error response of this status, with the error body (and code, when given)."""
    assert r.status == status, "expected %d, got %r" % (status, r)
    err = r.json["error"]
    assert set(r.json) == {"error"} and isinstance(err["code"], str) and err["code"], r
    assert isinstance(err["message"], str) and err["message"], r
    if code:
        assert err["code"] == code, r


def fingerprint(ctx, tid):
    """Everything of a tenant, as text: equal fingerprints, untouched tenant."""
    parts = ["(SELECT t::text FROM tenants t WHERE t.id = %(t)s)"]
    for table in ("leads", "activities", "users", "tenant_users", "api_keys", "tenant_settings",
                  "audit_logs"):
        parts.append("(SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, '|'"
                     " ORDER BY x::text)), '') FROM %s x WHERE x.tenant_id = %%(t)s)" % table)
    return sql(ctx, "SELECT " + ", ".join(parts), {"t": tid})[0]


def table_counts(ctx, tid):
    tables = ("leads", "activities", "users", "tenant_users", "api_keys", "tenant_settings",
              "tenant_data_keys", "audit_logs")
    row = sql(ctx, "SELECT " + ", ".join("(SELECT count(*) FROM %s WHERE tenant_id = %%(t)s)"
                                         % t for t in tables)
              + ", (SELECT count(*) FROM tenants WHERE id = %(t)s)", {"t": tid})[0]
    return dict(zip(tables + ("tenants",), row))


def with_failing_trigger(ctx, table, timing, when, fn):
    """Runs fn() while a row trigger raises on table rows matching when."""
    name = "test_lifecycle_fail_" + rand()
    c = ctx.owner_db()
    cur = c.cursor()
    cur.execute("CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN RAISE EXCEPTION 'injected fault'; END $$" % name)
    cur.execute("CREATE TRIGGER %s %s ON %s FOR EACH ROW WHEN (%s) EXECUTE FUNCTION %s()"
                % (name, timing, table, when, name))
    try:
        return fn()
    finally:
        cur.execute("DROP TRIGGER IF EXISTS %s ON %s" % (name, table))
        cur.execute("DROP FUNCTION IF EXISTS %s()" % name)
        c.close()


def keys_of(ctx, tid):
    r = admin(ctx, "GET", "/admin/tenants/%s/keys" % tid)
    assert r.status == 200, r
    return r.json["data"]


def lead_rows(ctx, tid):
    return sql(ctx, "SELECT id, name, version, updated_at FROM leads WHERE tenant_id = %s"
                    " ORDER BY id", (tid,))


# --------------------------------------------------------------------------
# status


@test
def suspend_stops_keys_within_five_seconds_and_activate_restores(ctx):
    t = create_tenant(ctx, includeSampleData=True)
    tid, key = t["tenantId"], t["apiKey"]
    lead = ctx.http("POST", "/v1/leads", key=key, body={"name": "Kept"}).json
    assert ctx.http("GET", "/v1/leads", key=key).status == 200  # cached now
    before = fingerprint(ctx, tid)

    r = admin(ctx, "PATCH", "/admin/tenants/" + tid, {"status": "suspended"})
    assert r.status == 200, r
    assert r.json["status"] == "suspended" and r.json["archivedAt"] is None
    resp, took = wait_status(ctx, "GET", "/v1/leads", key, 401)
    assert_error(resp, 401, "invalid_tenant_key")
    assert took <= 5.5, took
    assert_error(ctx.http("POST", "/v1/leads", key=key, body={"name": "x"}), 401,
                 "invalid_tenant_key")
    assert_error(ctx.http("DELETE", "/v1/leads/" + lead["id"], key=key), 401,
                 "invalid_tenant_key")
    # Suspending again is a no-op.
    assert admin(ctx, "PATCH", "/admin/tenants/" + tid, {"status": "suspended"}).status == 200
    # The data is untouched (the tenant row aside: status and updated_at).
    after = fingerprint(ctx, tid)
    assert after[1:] == before[1:]
    assert sql1(ctx, "SELECT status FROM tenants WHERE id = %s", (tid,)) == "suspended"

    r = admin(ctx, "PATCH", "/admin/tenants/" + tid, {"status": "active"})
    assert r.status == 200 and r.json["status"] == "active", r
    resp, took = wait_status(ctx, "GET", "/v1/leads/" + lead["id"], key, 200)
    assert resp.status == 200 and took <= 5.5, (resp, took)
    assert resp.json["name"] == "Kept" and resp.json["version"] == 1
    assert ctx.count_leads(tid) == 11


@test
def archive_is_final_and_stops_keys(ctx):
    t = create_tenant(ctx, includeSampleData=True)
    tid, key = t["tenantId"], t["apiKey"]
    assert ctx.http("GET", "/v1/leads", key=key).status == 200
    before = fingerprint(ctx, tid)
    r = admin(ctx, "PATCH", "/admin/tenants/" + tid, {"status": "archived"})
    assert r.status == 200, r
    assert r.json["status"] == "archived"
    archived_at = parse_ts(r.json["archivedAt"])
    assert abs((db_now(ctx) - archived_at).total_seconds()) < 30
    resp, took = wait_status(ctx, "GET", "/v1/leads", key, 401)
    assert_error(resp, 401, "invalid_tenant_key")
    assert took <= 5.5
    assert fingerprint(ctx, tid)[1:] == before[1:]
    # Archived is final.
    for status in ("active", "suspended"):
        r = admin(ctx, "PATCH", "/admin/tenants/" + tid, {"status": status})
        assert_error(r, 409, "invalid_status_change", "status")
        assert sql(ctx, "SELECT status, archived_at FROM tenants WHERE id = %s",
                   (tid,)) == [("archived", archived_at)]
    # A refused change changes nothing else either.
    name = sql1(ctx, "SELECT name FROM tenants WHERE id = %s", (tid,))
    assert_error(admin(ctx, "PATCH", "/admin/tenants/" + tid,
                       {"status": "active", "name": "Back from the dead"}), 409,
                 "invalid_status_change", "status")
    assert sql1(ctx, "SELECT name FROM tenants WHERE id = %s", (tid,)) == name
    # Archiving again keeps the first archivedAt.
    r = admin(ctx, "PATCH", "/admin/tenants/" + tid, {"status": "archived"})
    assert r.status == 200 and parse_ts(r.json["archivedAt"]) == archived_at, r
    assert_error(ctx.http("GET", "/v1/leads", key=key), 401, "invalid_tenant_key")


@test
def suspended_tenant_can_be_archived(ctx):
    t = create_tenant(ctx)
    path = "/admin/tenants/" + t["tenantId"]
    assert admin(ctx, "PATCH", path, {"status": "suspended"}).json["status"] == "suspended"
    r = admin(ctx, "PATCH", path, {"status": "archived"})
    assert r.status == 200 and r.json["status"] == "archived" and r.json["archivedAt"], r


# --------------------------------------------------------------------------
# features


@test
def feature_override_takes_effect_on_v1_within_five_seconds(ctx):
    t = create_tenant(ctx, plan="professional")
    tid, key = t["tenantId"], t["apiKey"]
    leads = [ctx.http("POST", "/v1/leads", key=key, body={"name": "L%d" % i}).json
             for i in range(2)]
    assert ctx.http("GET", "/v1/leads", key=key).status == 200  # cached with lead:delete
    r = admin(ctx, "PATCH", "/admin/tenants/" + tid, {"featureOverrides": {"lead:delete": False}})
    assert r.status == 200 and r.json["enabledFeatures"]["lead:delete"] is False, r
    # Probe with a lead that does not exist (404 while allowed, 403 once
    # denied), so no real lead is deleted while the old features are cached.
    probe = "/v1/leads/" + str(uuid.uuid4())
    resp, took = wait_status(ctx, "DELETE", probe, key, 403)
    assert_error(resp, 403, "feature_disabled")
    assert "lead:delete" in resp.json["error"]["message"]
    assert took <= 5.5, took
    assert_error(ctx.http("DELETE", "/v1/leads/" + leads[0]["id"], key=key), 403,
                 "feature_disabled")
    assert ctx.count_leads(tid) == 2
    # Reading is still allowed.
    assert ctx.http("GET", "/v1/leads/" + leads[0]["id"], key=key).status == 200
    # Removing the override restores the plan's value.
    r = admin(ctx, "PATCH", "/admin/tenants/" + tid, {"featureOverrides": {"lead:delete": None}})
    assert r.json["enabledFeatures"]["lead:delete"] is True and r.json["featureOverrides"] == {}
    resp, took = wait_status(ctx, "DELETE", probe, key, 404)
    assert_error(resp, 404, "lead_not_found")
    assert took <= 5.5, took
    assert ctx.http("DELETE", "/v1/leads/" + leads[1]["id"], key=key).status == 204
    assert ctx.count_leads(tid) == 1


@test
def feature_override_can_grant_what_the_plan_lacks(ctx):
    t = create_tenant(ctx, plan="basic")
    key = t["apiKey"]
    lead = ctx.http("POST", "/v1/leads", key=key, body={"name": "Gone soon"}).json
    assert_error(ctx.http("DELETE", "/v1/leads/" + lead["id"], key=key), 403, "feature_disabled")
    r = admin(ctx, "PATCH", "/admin/tenants/" + t["tenantId"],
              {"featureOverrides": {"lead:delete": True}})
    assert r.json["enabledFeatures"]["lead:delete"] is True, r
    resp, took = wait_status(ctx, "DELETE", "/v1/leads/" + lead["id"], key, 204)
    assert resp.status == 204 and took <= 5.5, (resp, took)


# --------------------------------------------------------------------------
# keys


@test
def key_list_never_shows_the_secret_and_records_last_use(ctx):
    t = create_tenant(ctx)
    tid, key = t["tenantId"], t["apiKey"]
    r = admin(ctx, "GET", "/admin/tenants/%s/keys" % tid)
    assert r.status == 200, r
    assert set(r.json) == {"data"}
    (k,) = r.json["data"]
    assert set(k) == KEY_FIELDS, k
    assert k["prefix"] == key[:11] and k["name"] == "default" and k["status"] == "active"
    assert k["lastUsedAt"] is None and k["expiresAt"] is None and k["revokedAt"] is None
    # Neither the key nor its hash is anywhere in the answer.
    assert key[11:] not in r.body and key[3:] not in r.body
    assert hashlib.sha256(key.encode()).hexdigest() not in r.body

    assert ctx.http("GET", "/v1/leads", key=key).status == 200
    (k,) = keys_of(ctx, tid)
    used = parse_ts(k["lastUsedAt"])
    assert abs((db_now(ctx) - used).total_seconds()) < 30
    # Further use within the minute (past the key cache) writes nothing.
    time.sleep(2.2)
    for _ in range(3):
        assert ctx.http("GET", "/v1/leads", key=key).status == 200
    (k,) = keys_of(ctx, tid)
    assert parse_ts(k["lastUsedAt"]) == used, (k, used)


@test
def key_create_and_revoke(ctx):
    t = create_tenant(ctx)
    tid, first = t["tenantId"], t["apiKey"]
    path = "/admin/tenants/%s/keys" % tid
    r = admin(ctx, "POST", path, {"name": "ci"})
    assert r.status == 201, r
    k = r.json
    assert set(k) == KEY_FIELDS | {"apiKey"}, k
    assert KEY_RE.match(k["apiKey"]) and k["prefix"] == k["apiKey"][:11]
    assert k["name"] == "ci" and k["status"] == "active" and k["revokedAt"] is None
    assert k["apiKey"] != first
    assert sql1(ctx, "SELECT encode(key_hash, 'hex') FROM api_keys WHERE id = %s",
                (k["id"],)) == hashlib.sha256(k["apiKey"].encode()).hexdigest()
    r = ctx.http("GET", "/v1/leads", key=k["apiKey"])
    assert r.status == 200 and r.header("X-Tenant-ID") == tid, r
    # No body at all: a key named "key".
    r = admin(ctx, "POST", path)
    assert r.status == 201 and r.json["name"] == "key", r
    # With an expiry: works until then; an expired one never works.
    future = (datetime.now(timezone.utc) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = admin(ctx, "POST", path, {"name": "temp", "expiresAt": future})
    assert r.status == 201, r
    assert r.json["expiresAt"] == future.replace("Z", ".000000Z"), r.json
    assert ctx.http("GET", "/v1/leads", key=r.json["apiKey"]).status == 200
    r = admin(ctx, "POST", path, {"name": "stale", "expiresAt": "2020-01-01T00:00:00Z"})
    assert r.status == 201, r
    stale = r.json
    assert_error(ctx.http("GET", "/v1/leads", key=stale["apiKey"]), 401, "invalid_tenant_key")
    listed = {x["name"]: x for x in keys_of(ctx, tid)}
    assert sorted(listed) == ["ci", "default", "key", "stale", "temp"], listed
    assert listed["stale"]["status"] == "expired" and listed["temp"]["status"] == "active"
    body = admin(ctx, "GET", path).body
    assert k["apiKey"][3:] not in body and first[3:] not in body

    # Revoke the cached "ci" key: it stops within 5 s, the others keep working.
    r = admin(ctx, "DELETE", "%s/%s" % (path, k["id"]))
    assert r.status == 204 and r.body == "", r
    resp, took = wait_status(ctx, "GET", "/v1/leads", k["apiKey"], 401)
    assert_error(resp, 401, "invalid_tenant_key")
    assert took <= 5.5
    assert ctx.http("GET", "/v1/leads", key=first).status == 200
    listed = {x["name"]: x for x in keys_of(ctx, tid)}
    assert listed["ci"]["status"] == "revoked" and listed["ci"]["revokedAt"], listed["ci"]
    # Again: it is no longer an active key.
    assert_error(admin(ctx, "DELETE", "%s/%s" % (path, k["id"])), 404, "key_not_found")
    assert_error(admin(ctx, "DELETE", "%s/%s" % (path, uuid.uuid4())), 404, "key_not_found")


@test
def key_errors(ctx):
    t = create_tenant(ctx)
    other = create_tenant(ctx)
    tid = t["tenantId"]
    path = "/admin/tenants/%s/keys" % tid
    before = sql1(ctx, "SELECT count(*) FROM api_keys WHERE tenant_id = %s", (tid,))
    for body, code, field in [({"name": ""}, "validation_error", "name"),
                              ({"name": "n" * 101}, "validation_error", "name"),
                              ({"expiresAt": "tomorrow"}, "validation_error", "expiresAt"),
                              ({"expiresAt": 5}, "validation_error", "expiresAt"),
                              ({"secret": "x"}, "unknown_field", None)]:
        assert_error(admin(ctx, "POST", path, body), 400, code, field)
    assert sql1(ctx, "SELECT count(*) FROM api_keys WHERE tenant_id = %s", (tid,)) == before
    missing = str(uuid.uuid4())
    assert_error(admin(ctx, "POST", "/admin/tenants/%s/keys" % missing, {"name": "x"}), 404,
                 "tenant_not_found")
    assert_error(admin(ctx, "GET", "/admin/tenants/%s/keys" % missing), 404, "tenant_not_found")
    assert sql1(ctx, "SELECT count(*) FROM api_keys WHERE tenant_id = %s", (missing,)) == 0
    assert_error(admin(ctx, "GET", "/admin/tenants/nope/keys"), 400, "invalid_id", "id")
    assert_error(admin(ctx, "DELETE", path + "/nope"), 400, "invalid_id", "keyId")
    assert_error(admin(ctx, "POST", path + "/nope/rotate"), 400, "invalid_id", "keyId")
    # Another tenant's key cannot be revoked or rotated through this tenant.
    (okey,) = keys_of(ctx, other["tenantId"])
    assert_error(admin(ctx, "DELETE", "%s/%s" % (path, okey["id"])), 404, "key_not_found")
    assert_error(admin(ctx, "POST", "%s/%s/rotate" % (path, okey["id"])), 404, "key_not_found")
    assert sql(ctx, "SELECT revoked_at, expires_at FROM api_keys WHERE id = %s",
               (okey["id"],)) == [(None, None)]
    assert sql1(ctx, "SELECT count(*) FROM api_keys WHERE tenant_id = %s",
                (other["tenantId"],)) == 1
    assert ctx.http("GET", "/v1/leads", key=other["apiKey"]).status == 200


@test
def rotate_with_default_grace_keeps_both_keys_for_24_hours(ctx):
    t = create_tenant(ctx)
    tid, old = t["tenantId"], t["apiKey"]
    (k0,) = keys_of(ctx, tid)
    assert ctx.http("GET", "/v1/leads", key=old).status == 200
    r = admin(ctx, "POST", "/admin/tenants/%s/keys/%s/rotate" % (tid, k0["id"]))
    assert r.status == 201, r
    j = r.json
    assert set(j) == {"newKey", "oldKey"}, j
    new = j["newKey"]
    assert set(new) == KEY_FIELDS | {"apiKey"} and KEY_RE.match(new["apiKey"]), new
    assert new["name"] == "default" and new["status"] == "active" and new["id"] != k0["id"]
    assert set(j["oldKey"]) == {"id", "expiresAt", "revokedAt"}, j
    assert j["oldKey"]["id"] == k0["id"] and j["oldKey"]["revokedAt"] is None
    now = db_now(ctx)
    expires = sql1(ctx, "SELECT expires_at FROM api_keys WHERE id = %s", (k0["id"],))
    assert abs((expires - (now + timedelta(hours=24))).total_seconds()) < 60, (expires, now)
    assert parse_ts(j["oldKey"]["expiresAt"]) == expires
    assert sql1(ctx, "SELECT revoked_at FROM api_keys WHERE id = %s", (k0["id"],)) is None
    # Both work, also past the key cache.
    time.sleep(2.2)
    for key in (old, new["apiKey"]):
        r = ctx.http("GET", "/v1/leads", key=key)
        assert r.status == 200 and r.header("X-Tenant-ID") == tid, r
    listed = {x["id"]: x for x in keys_of(ctx, tid)}
    assert listed[k0["id"]]["status"] == "active" and listed[k0["id"]]["expiresAt"]
    assert listed[new["id"]]["expiresAt"] is None
    # A shorter grace on the new key.
    r = admin(ctx, "POST", "/admin/tenants/%s/keys/%s/rotate" % (tid, new["id"]),
              {"graceHours": 2})
    assert r.status == 201, r
    expires = sql1(ctx, "SELECT expires_at FROM api_keys WHERE id = %s", (new["id"],))
    assert abs((expires - (db_now(ctx) + timedelta(hours=2))).total_seconds()) < 60


@test
def rotate_with_zero_grace_stops_the_old_key_within_five_seconds(ctx):
    t = create_tenant(ctx)
    tid, old = t["tenantId"], t["apiKey"]
    (k0,) = keys_of(ctx, tid)
    path = "/admin/tenants/%s/keys/%s/rotate" % (tid, k0["id"])
    for body in ({"graceHours": -1}, {"graceHours": 2161}, {"graceHours": "1"},
                 {"graceHours": 1.5}):
        assert_error(admin(ctx, "POST", path, body), 400, "validation_error", "graceHours")
    assert_error(admin(ctx, "POST", path, {"grace": 1}), 400, "unknown_field")
    assert sql(ctx, "SELECT revoked_at, expires_at FROM api_keys WHERE tenant_id = %s",
               (tid,)) == [(None, None)]
    assert ctx.http("GET", "/v1/leads", key=old).status == 200  # cached
    r = admin(ctx, "POST", path, {"graceHours": 0})
    assert r.status == 201, r
    assert r.json["oldKey"]["revokedAt"] is not None, r.json
    new = r.json["newKey"]["apiKey"]
    resp, took = wait_status(ctx, "GET", "/v1/leads", old, 401)
    assert_error(resp, 401, "invalid_tenant_key")
    assert took <= 5.5
    assert ctx.http("GET", "/v1/leads", key=new).status == 200
    assert sql1(ctx, "SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = %s", (k0["id"],))
    # A revoked key cannot be rotated (or revoked) again.
    assert_error(admin(ctx, "POST", path, {"graceHours": 0}), 404, "key_not_found")
    assert_error(admin(ctx, "DELETE", "/admin/tenants/%s/keys/%s" % (tid, k0["id"])), 404,
                 "key_not_found")
    assert sql1(ctx, "SELECT count(*) FROM api_keys WHERE tenant_id = %s", (tid,)) == 2


@test
def failed_operations_leave_no_audit_row(ctx):
    """A 404 is not an action: no audit row claims a revocation, rotation,
    key or update that did not happen."""
    t = create_tenant(ctx)
    tid = t["tenantId"]
    missing_key, missing_tenant = str(uuid.uuid4()), str(uuid.uuid4())
    assert_error(admin(ctx, "DELETE", "/admin/tenants/%s/keys/%s" % (tid, missing_key)), 404,
                 "key_not_found")
    assert_error(admin(ctx, "POST", "/admin/tenants/%s/keys/%s/rotate" % (tid, missing_key)),
                 404, "key_not_found")
    assert_error(admin(ctx, "POST", "/admin/tenants/%s/keys" % missing_tenant), 404,
                 "tenant_not_found")
    assert_error(admin(ctx, "PATCH", "/admin/tenants/" + missing_tenant, {"name": "Ghost"}), 404,
                 "tenant_not_found")
    rows = sql(ctx, "SELECT action, tenant_id::text, details::text FROM operator_audit"
                    " WHERE details->>'keyId' = %s OR tenant_id = %s",
               (missing_key, missing_tenant))
    assert rows == [], rows
    # The rotation that failed did not leave a new key behind either.
    assert sql1(ctx, "SELECT count(*) FROM api_keys WHERE tenant_id = %s", (tid,)) == 1


# --------------------------------------------------------------------------
# cleanup


@test
def cleanup_deletes_old_archived_tenants_one_transaction_each(ctx):
    tok_id, _, tok_name = operator(ctx)
    old = create_tenant(ctx, includeSampleData=True)
    broken = create_tenant(ctx, includeSampleData=True)
    recent = create_tenant(ctx, includeSampleData=True)
    active = create_tenant(ctx, includeSampleData=True)
    ids = {name: t["tenantId"] for name, t in
           (("old", old), ("broken", broken), ("recent", recent), ("active", active))}
    # Crafted ages: archived 100, 120 and 10 days ago; the active one was
    # created long ago (only archived tenants go).
    sql(ctx, "UPDATE tenants SET status = 'archived', archived_at = now() - interval '100 days'"
             " WHERE id = %s", (ids["old"],))
    sql(ctx, "UPDATE tenants SET status = 'archived', archived_at = now() - interval '120 days'"
             " WHERE id = %s", (ids["broken"],))
    sql(ctx, "UPDATE tenants SET status = 'archived', archived_at = now() - interval '10 days'"
             " WHERE id = %s", (ids["recent"],))
    sql(ctx, "UPDATE tenants SET created_at = now() - interval '400 days' WHERE id = %s",
        (ids["active"],))
    for tid in ids.values():
        sql(ctx, "INSERT INTO audit_logs (tenant_id, table_name, record_id, action)"
                 " VALUES (%s, 'leads', gen_random_uuid(), 'UPDATE')", (tid,))
    expected = {"leads": 10, "activities": 20, "users": 1, "auditLogs": 1, "apiKeys": 1}
    prints = {name: fingerprint(ctx, tid) for name, tid in ids.items()}

    def results(resp):
        assert resp.status == 200, resp
        j = resp.json
        assert set(j) == {"dryRun", "results", "tenantsProcessed", "tenantsFailed"}, j
        return j, {x["tenantId"]: x for x in j["results"]}

    # Dry run: reports, deletes nothing, audits nothing.
    j, res = results(admin(ctx, "POST", "/admin/maintenance/cleanup", {"dryRun": True}))
    assert j["dryRun"] is True
    assert res[ids["old"]] == {"tenantId": ids["old"], "name": old["body"]["name"],
                               "result": expected}, res[ids["old"]]
    assert res[ids["broken"]]["result"] == expected
    assert ids["recent"] not in res and ids["active"] not in res
    assert {name: fingerprint(ctx, tid) for name, tid in ids.items()} == prints
    # Older than 5 days: the recent one too; older than 200: none of them.
    _, res = results(admin(ctx, "POST", "/admin/maintenance/cleanup",
                           {"dryRun": True, "olderThanDays": 5}))
    assert {ids["old"], ids["broken"], ids["recent"]} <= set(res) and ids["active"] not in res
    _, res = results(admin(ctx, "POST", "/admin/maintenance/cleanup",
                           {"dryRun": True, "olderThanDays": 200}))
    assert not set(ids.values()) & set(res)
    assert {name: fingerprint(ctx, tid) for name, tid in ids.items()} == prints
    assert sql1(ctx, "SELECT count(*) FROM operator_audit WHERE action = 'tenant.delete'"
                     " AND tenant_id = ANY(%s::uuid[])", (list(ids.values()),)) == 0

    # The real run (default: 90 days), with deleting "broken"'s leads failing:
    # it is reported and left whole, and the batch goes on to "old".
    resp = with_failing_trigger(ctx, "leads", "BEFORE DELETE",
                                "OLD.tenant_id = '%s'" % ids["broken"],
                                lambda: admin(ctx, "POST", "/admin/maintenance/cleanup"))
    j, res = results(resp)
    assert j["dryRun"] is False
    assert res[ids["old"]].get("result") == expected, j
    assert set(res[ids["broken"]]) == {"tenantId", "name", "error"}, res[ids["broken"]]
    assert isinstance(res[ids["broken"]]["error"], str) and res[ids["broken"]]["error"]
    assert j["tenantsFailed"] >= 1 and j["tenantsProcessed"] >= 1
    assert ids["recent"] not in res and ids["active"] not in res
    # "old" is gone with every row; outbox and operator audit rows are history.
    assert set(table_counts(ctx, ids["old"]).values()) == {0}, table_counts(ctx, ids["old"])
    assert_error(ctx.http("GET", "/v1/leads", key=old["apiKey"]), 401, "invalid_tenant_key")
    assert_error(admin(ctx, "GET", "/admin/tenants/" + ids["old"]), 404, "tenant_not_found")
    # "broken" is exactly as it was (its activities were not deleted either).
    assert fingerprint(ctx, ids["broken"]) == prints["broken"]
    assert fingerprint(ctx, ids["recent"]) == prints["recent"]
    assert fingerprint(ctx, ids["active"]) == prints["active"]
    rows = sql(ctx, "SELECT tenant_id::text, actor, token_id::text FROM operator_audit"
                    " WHERE action = 'tenant.delete' AND tenant_id = ANY(%s::uuid[])",
               (list(ids.values()),))
    assert rows == [(ids["old"], tok_name, tok_id)], rows
    # Without the fault, "broken" goes too.
    _, res = results(admin(ctx, "POST", "/admin/maintenance/cleanup", {"olderThanDays": 90}))
    assert res[ids["broken"]]["result"] == expected
    assert set(table_counts(ctx, ids["broken"]).values()) == {0}
    assert fingerprint(ctx, ids["recent"]) == prints["recent"]


@test
def maintenance_rejects_bad_input(ctx):
    for path in ("/admin/maintenance/cleanup", "/admin/maintenance/retention"):
        for body, code, field in [({"dryRun": "yes"}, "validation_error", "dryRun"),
                                  ({"dryRun": 1}, "validation_error", "dryRun"),
                                  ({"force": True}, "unknown_field", None)]:
            assert_error(admin(ctx, "POST", path, body), 400, code, field)
        assert_error(admin(ctx, "POST", path + "?dryRun=true"), 400, "unknown_parameter")
        assert_error(admin(ctx, "GET", path), 405, "method_not_allowed")
    for days in (-1, 36501, "90", 1.5):
        assert_error(admin(ctx, "POST", "/admin/maintenance/cleanup", {"olderThanDays": days}),
                     400, "validation_error", "olderThanDays")


# --------------------------------------------------------------------------
# retention


def add_activity(ctx, tid, lead_id, age_days):
    sql(ctx, "INSERT INTO activities (tenant_id, lead_id, type, body, occurred_at, created_at)"
             " VALUES (%s, %s, 'note', 'n', now() - make_interval(days => %s),"
             " now() - make_interval(days => %s))", (tid, lead_id, age_days, age_days))


def age_lead(ctx, lead_id, created, updated, last_activity):
    sql(ctx, "UPDATE leads SET created_at = now() - make_interval(days => %s),"
             " updated_at = now() - make_interval(days => %s),"
             " last_activity_at = now() - make_interval(days => %s) WHERE id = %s",
        (created, updated, last_activity, lead_id))


@test
def retention_purges_rows_older_than_the_tenants_window(ctx):
    tok_id, _, tok_name = operator(ctx)
    t = create_tenant(ctx)
    s = create_tenant(ctx)
    tid, sid = t["tenantId"], s["tenantId"]
    r = admin(ctx, "PATCH", "/admin/tenants/" + tid, {"dataRetentionDays": 30})
    assert r.status == 200 and r.json["dataRetentionDays"] == 30, r
    lead = {}
    for n in ("old1", "old2", "old35", "edited", "active", "young"):
        lead[n] = ctx.http("POST", "/v1/leads", key=t["apiKey"], body={"name": n}).json["id"]
    # Activities first (adding one may bump its lead's last_activity_at),
    # then the leads' ages.
    add_activity(ctx, tid, lead["old1"], 400)
    add_activity(ctx, tid, lead["old1"], 390)
    add_activity(ctx, tid, lead["old2"], 400)
    add_activity(ctx, tid, lead["old35"], 35)
    add_activity(ctx, tid, lead["edited"], 400)     # old activity of a kept lead: purged
    add_activity(ctx, tid, lead["active"], 2)
    add_activity(ctx, tid, lead["young"], 25)
    # (created, updated, last activity) in days ago.
    age_lead(ctx, lead["old1"], 400, 400, 390)
    age_lead(ctx, lead["old2"], 400, 400, 400)
    age_lead(ctx, lead["old35"], 35, 35, 35)        # just past 30 days
    age_lead(ctx, lead["edited"], 400, 1, 400)      # edited yesterday: kept
    age_lead(ctx, lead["active"], 400, 400, 2)      # activity 2 days ago: kept
    age_lead(ctx, lead["young"], 25, 25, 25)        # inside the window: kept
    for days in (400, 31, 29):
        sql(ctx, "INSERT INTO audit_logs (tenant_id, table_name, record_id, action, created_at)"
                 " VALUES (%s, 'leads', gen_random_uuid(), 'UPDATE',"
                 " now() - make_interval(days => %s))", (tid, days))
    # The other tenant keeps the default 365 days: rows 100 days old stay.
    slead = ctx.http("POST", "/v1/leads", key=s["apiKey"], body={"name": "s"}).json["id"]
    add_activity(ctx, sid, slead, 100)
    age_lead(ctx, slead, 100, 100, 100)
    sql(ctx, "INSERT INTO audit_logs (tenant_id, table_name, record_id, action, created_at)"
             " VALUES (%s, 'leads', gen_random_uuid(), 'UPDATE', now() - interval '100 days')",
        (sid,))
    expected = {"leads": 3, "activities": 5, "auditLogs": 2}
    t_print, s_print = fingerprint(ctx, tid), fingerprint(ctx, sid)

    def results(resp):
        assert resp.status == 200, resp
        j = resp.json
        assert set(j) == {"dryRun", "results", "tenantsProcessed", "tenantsFailed"}, j
        return j, {x["tenantId"]: x for x in j["results"]}

    j, res = results(admin(ctx, "POST", "/admin/maintenance/retention", {"dryRun": True}))
    assert j["dryRun"] is True
    mine = res[tid]["result"]
    cutoff = datetime.strptime(mine.pop("cutoff"), "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc)
    assert abs((cutoff - (db_now(ctx) - timedelta(days=30))).total_seconds()) < 60, cutoff
    assert mine == expected, mine
    assert {k: v for k, v in res[sid]["result"].items() if k != "cutoff"} == {
        "leads": 0, "activities": 0, "auditLogs": 0}
    assert fingerprint(ctx, tid) == t_print and fingerprint(ctx, sid) == s_print
    assert sql1(ctx, "SELECT count(*) FROM operator_audit WHERE action = 'tenant.retention'"
                     " AND tenant_id = %s", (tid,)) == 0

    j, res = results(admin(ctx, "POST", "/admin/maintenance/retention"))
    assert j["dryRun"] is False
    mine = dict(res[tid]["result"])
    mine.pop("cutoff")
    assert mine == expected, mine
    names = [row[0] for row in sql(ctx, "SELECT name FROM leads WHERE tenant_id = %s"
                                        " ORDER BY name", (tid,))]
    assert names == ["active", "edited", "young"], names
    left = sql(ctx, "SELECT l.name, (now() - a.created_at) < interval '30 days'"
                    " FROM activities a JOIN leads l ON l.tenant_id = a.tenant_id"
                    " AND l.id = a.lead_id WHERE a.tenant_id = %s ORDER BY l.name", (tid,))
    assert left == [("active", True), ("young", True)], left
    assert sql1(ctx, "SELECT count(*) FROM audit_logs WHERE tenant_id = %s", (tid,)) == 1
    assert fingerprint(ctx, sid) == s_print
    rows = sql(ctx, "SELECT actor, token_id::text FROM operator_audit"
                    " WHERE action = 'tenant.retention' AND tenant_id = %s", (tid,))
    assert rows == [(tok_name, tok_id)], rows
    # The kept leads still answer on /v1.
    r = ctx.http("GET", "/v1/leads?limit=100", key=t["apiKey"])
    assert sorted(l["name"] for l in r.json["data"]) == ["active", "edited", "young"]
    # Nothing more to purge.
    _, res = results(admin(ctx, "POST", "/admin/maintenance/retention"))
    assert {k: v for k, v in res[tid]["result"].items() if k != "cutoff"} == {
        "leads": 0, "activities": 0, "auditLogs": 0}


# --------------------------------------------------------------------------
# the audit trail


@test
def every_operator_action_is_audited(ctx):
    name = "auditor-" + rand()
    tok_id, tok = make_token(ctx, name)
    a = create_tenant(ctx, token=tok, includeSampleData=True)
    b = create_tenant(ctx, token=tok)
    old = create_tenant(ctx, token=tok)
    aid, bid, oid = a["tenantId"], b["tenantId"], old["tenantId"]
    assert admin(ctx, "PATCH", "/admin/tenants/" + aid, {"name": "Audited " + rand()},
                 token=tok).status == 200
    assert admin(ctx, "PATCH", "/admin/tenants/" + aid, {"status": "suspended"},
                 token=tok).status == 200
    assert admin(ctx, "PATCH", "/admin/tenants/" + aid, {"status": "active"},
                 token=tok).status == 200
    k = admin(ctx, "POST", "/admin/tenants/%s/keys" % aid, {"name": "x"}, token=tok).json
    assert admin(ctx, "POST", "/admin/tenants/%s/keys/%s/rotate" % (aid, k["id"]), token=tok
                 ).status == 201
    assert admin(ctx, "DELETE", "/admin/tenants/%s/keys/%s" % (aid, k["id"]), token=tok
                 ).status == 204
    r = admin(ctx, "POST", "/admin/tenants/%s/migrate" % aid, {"targetTenantId": bid}, token=tok)
    assert r.status == 200, r
    sql(ctx, "UPDATE tenants SET status = 'archived', archived_at = now() - interval '100 days'"
             " WHERE id = %s", (oid,))
    assert admin(ctx, "POST", "/admin/maintenance/cleanup", token=tok).status == 200
    assert admin(ctx, "POST", "/admin/maintenance/retention", token=tok).status == 200
    # Reads and dry runs are not actions.
    admin(ctx, "GET", "/admin/tenants/" + aid, token=tok)
    admin(ctx, "GET", "/admin/tenants/%s/keys" % aid, token=tok)
    admin(ctx, "POST", "/admin/maintenance/cleanup", {"dryRun": True}, token=tok)
    admin(ctx, "POST", "/admin/maintenance/retention", {"dryRun": True}, token=tok)

    rows = sql(ctx, "SELECT action, tenant_id::text, actor, details FROM operator_audit"
                    " WHERE token_id = %s ORDER BY id", (tok_id,))
    # The token's own creation, by the CLI user; then its actions, by its name.
    assert rows[0][0] == "token.create" and rows[0][2].startswith("cli:"), rows[0]
    rows = rows[1:]
    assert all(r[2] == name for r in rows), rows
    mine = [(r[0], r[1]) for r in rows if r[1] in (aid, bid, oid)]
    assert mine == [("tenant.create", aid), ("tenant.create", bid), ("tenant.create", oid),
                    ("tenant.update", aid), ("tenant.update", aid), ("tenant.update", aid),
                    ("key.create", aid), ("key.rotate", aid), ("key.revoke", aid),
                    ("tenant.migrate", aid), ("tenant.delete", oid),
                    ("tenant.retention", aid), ("tenant.retention", bid)], mine
    details = {(r[0], r[1]): r[3] for r in rows}
    assert details[("tenant.migrate", aid)]["target"] == bid
    assert details[("key.revoke", aid)]["keyId"] == k["id"]
    # Retention is audited once per tenant it went through, and nothing else.
    others = [r[0] for r in rows if r[1] not in (aid, bid, oid)]
    assert set(others) <= {"tenant.retention", "tenant.delete"}, others
    # The same through the API.
    r = admin(ctx, "GET", "/admin/audit?limit=1000")
    api = [(x["action"], x["tenantId"]) for x in r.json["data"]
           if x["actor"] == name and x["tenantId"] in (aid, bid, oid)]
    assert list(reversed(api)) == mine, api
    assert all(x["tokenId"] == tok_id for x in r.json["data"] if x["actor"] == name)


# --------------------------------------------------------------------------
# migration


def migrate(ctx, source, body):
    # Generous: the server's own statement timeout is what bounds it.
    return admin(ctx, "POST", "/admin/tenants/%s/migrate" % source, body, timeout=180)


@test
def migrate_refusals_leave_both_tenants_as_they_were(ctx):
    src = create_tenant(ctx, includeSampleData=True)
    dst = create_tenant(ctx, includeSampleData=True, plan="basic")
    sid, did = src["tenantId"], dst["tenantId"]
    # The target has room for 5 more leads and no more users.
    r = admin(ctx, "PATCH", "/admin/tenants/" + did,
              {"limitOverrides": {"maxLeads": 15, "maxUsers": 1}})
    assert r.json["resourceLimits"]["maxLeads"] == 15, r
    prints = (fingerprint(ctx, sid), fingerprint(ctx, did))
    missing = str(uuid.uuid4())
    cases = [
        (sid, {"targetTenantId": sid}, 400, "validation_error", "targetTenantId"),
        (sid, {"targetTenantId": missing}, 404, "tenant_not_found", None),
        (missing, {"targetTenantId": did}, 404, "tenant_not_found", None),
        (sid, {"targetTenantId": did}, 409, "limit_exceeded", None),           # maxLeads
        (sid, {"targetTenantId": did, "includeLeads": False, "includeUsers": True},
         409, "limit_exceeded", None),                                         # maxUsers
        (sid, {}, 400, "validation_error", "targetTenantId"),
        (sid, {"targetTenantId": "nope"}, 400, "validation_error", "targetTenantId"),
        (sid, {"targetTenantId": did, "includeLeads": False}, 400, "validation_error",
         "includeLeads"),
        (sid, {"targetTenantId": did, "includeUsers": "yes"}, 400, "validation_error",
         "includeUsers"),
        (sid, {"targetTenantId": did, "archiveSource": 1}, 400, "validation_error",
         "archiveSource"),
        (sid, {"targetTenantId": did, "dryRun": True}, 400, "unknown_field", None),
    ]
    wrong = []
    for source, body, status, code, field in cases:
        r = migrate(ctx, source, body)
        try:
            if field:
                assert_error(r, status, code, field)
            else:
                assert_refused(r, status, code)
        except AssertionError:
            wrong.append("%s -> expected %d %s, got %d %s" % (body, status, code or "",
                                                              r.status, r.body))
        assert (fingerprint(ctx, sid), fingerprint(ctx, did)) == prints, body
    assert not wrong, "\n".join(wrong)
    assert_error(admin(ctx, "POST", "/admin/tenants/nope/migrate", {"targetTenantId": did}),
                 400, "invalid_id", "id")
    assert sql1(ctx, "SELECT count(*) FROM operator_audit WHERE action = 'tenant.migrate'"
                     " AND tenant_id IN (%s, %s)", (sid, missing)) == 0


@test
def migrate_user_email_clash_is_a_conflict(ctx):
    src = create_tenant(ctx, includeSampleData=True)
    dst = create_tenant(ctx)
    sid, did = src["tenantId"], dst["tenantId"]
    sql(ctx, "INSERT INTO users (tenant_id, email, name) VALUES (%s, upper(%s), 'Twin')",
        (did, src["body"]["adminEmail"]))
    prints = (fingerprint(ctx, sid), fingerprint(ctx, did))
    r = migrate(ctx, sid, {"targetTenantId": did, "includeUsers": True})
    assert_refused(r, 409, "conflict")
    assert (fingerprint(ctx, sid), fingerprint(ctx, did)) == prints


@test
def migrate_fault_halfway_rolls_back_everything(ctx):
    src = create_tenant(ctx, includeSampleData=True)
    dst = create_tenant(ctx)
    sid, did = src["tenantId"], dst["tenantId"]
    prints = (fingerprint(ctx, sid), fingerprint(ctx, did))
    # Users and leads are copied before activities: fail on the activities.
    r = with_failing_trigger(ctx, "activities", "BEFORE INSERT", "NEW.tenant_id = '%s'" % did,
                             lambda: migrate(ctx, sid, {"targetTenantId": did,
                                                        "includeUsers": True,
                                                        "archiveSource": True}))
    assert_error(r, 500, "internal_error")
    assert (fingerprint(ctx, sid), fingerprint(ctx, did)) == prints
    assert sql1(ctx, "SELECT status FROM tenants WHERE id = %s", (sid,)) == "active"
    # And without the fault it goes through.
    r = migrate(ctx, sid, {"targetTenantId": did, "includeUsers": True})
    assert r.status == 200, r
    assert r.json == {"leads": 10, "activities": 20, "users": 1, "tenantUsers": 1,
                      "sourceArchived": False}, r.json


@test
def migrate_leads_without_users_clears_user_references(ctx):
    src = create_tenant(ctx, includeSampleData=True)
    dst = create_tenant(ctx)
    sid, did = src["tenantId"], dst["tenantId"]
    src_print = fingerprint(ctx, sid)
    r = migrate(ctx, sid, {"targetTenantId": did})
    assert r.status == 200, r
    assert r.json == {"leads": 10, "activities": 20, "users": 0, "tenantUsers": 0,
                      "sourceArchived": False}, r.json
    assert fingerprint(ctx, sid) == src_print
    assert sql(ctx, "SELECT count(*), count(created_by), count(assigned_to) FROM leads"
                    " WHERE tenant_id = %s", (did,)) == [(10, 0, 0)]
    assert sql(ctx, "SELECT count(*), count(user_id) FROM activities WHERE tenant_id = %s",
               (did,)) == [(20, 0)]
    assert sql1(ctx, "SELECT count(*) FROM users WHERE tenant_id = %s", (did,)) == 1
    r = ctx.http("GET", "/v1/leads/stats", key=dst["apiKey"])
    assert r.status == 200 and r.json["totalLeads"] == 10, r
    # Users only.
    dst2 = create_tenant(ctx)
    r = migrate(ctx, sid, {"targetTenantId": dst2["tenantId"], "includeLeads": False,
                           "includeUsers": True})
    assert r.json == {"leads": 0, "activities": 0, "users": 1, "tenantUsers": 1,
                      "sourceArchived": False}, r.json
    assert ctx.count_leads(dst2["tenantId"]) == 0
    assert sql1(ctx, "SELECT count(*) FROM users WHERE tenant_id = %s", (dst2["tenantId"],)) == 2


_BIG = {}


def big_source(ctx):
    """An enterprise tenant with 10,000 sample leads (20,000 activities) and
    two users: made once, by `tekup tenant create`."""
    if "sid" in _BIG:
        return _BIG
    r = rand()
    src_email = "big-source-%s@example.com" % r
    p = ctx.tekup("tenant", "create", "--data-dir", ctx.data_dir, "--name", "Big Source " + r,
                  "--plan", "enterprise", "--sample-leads", "10000", "--admin-email", src_email,
                  "--admin-name", "Big Admin", env={"TEKUP_ADMIN_PASSWORD": PASSWORD})
    assert p.returncode == 0, p.stdout + p.stderr
    fields = dict(line.split(": ", 1) for line in p.stdout.splitlines() if ": " in line)
    sid = fields["tenant_id"]
    # A second user, with leads assigned and calls logged, so the remapping
    # has two users to tell apart.
    second_email = "second-%s@example.com" % r
    second = sql1(ctx, "INSERT INTO users (tenant_id, email, name) VALUES (%s, %s, 'Second')"
                       " RETURNING id::text", (sid, second_email))
    sql(ctx, "INSERT INTO tenant_users (tenant_id, user_id, role) VALUES (%s, %s, 'user')",
        (sid, second))
    sql(ctx, "UPDATE leads SET assigned_to = %s WHERE tenant_id = %s AND status = 'WON'",
        (second, sid))
    sql(ctx, "UPDATE activities SET user_id = %s WHERE tenant_id = %s AND type = 'call'",
        (second, sid))
    assert sql(ctx, "SELECT count(*), count(DISTINCT email) FROM leads WHERE tenant_id = %s",
               (sid,)) == [(10000, 10000)]
    assert sql1(ctx, "SELECT count(*) FROM activities WHERE tenant_id = %s", (sid,)) == 20000
    _BIG.update(sid=sid, key=fields["api_key"], admin=fields["admin_user_id"], second=second,
                second_email=second_email)
    return _BIG


@test
def migrate_over_the_targets_max_leads_is_refused(ctx):
    big = big_source(ctx)
    sid = big["sid"]
    # A basic target (maxLeads 1000) cannot take 10,000 leads; nothing moves.
    small = create_tenant(ctx, plan="basic")
    prints = (fingerprint(ctx, sid), fingerprint(ctx, small["tenantId"]))
    resp = migrate(ctx, sid, {"targetTenantId": small["tenantId"], "includeUsers": True})
    assert (fingerprint(ctx, sid), fingerprint(ctx, small["tenantId"])) == prints
    assert_refused(resp, 409, "limit_exceeded")


@test
def migrate_ten_thousand_leads_with_users_remapped(ctx):
    big = big_source(ctx)
    sid, skey, admin_uid, second = big["sid"], big["key"], big["admin"], big["second"]
    dst = create_tenant(ctx, plan="enterprise")
    did = dst["tenantId"]
    own = ctx.http("POST", "/v1/leads", key=dst["apiKey"], body={"name": "Target's own"})
    assert own.status == 201
    src_print = fingerprint(ctx, sid)
    try:
        check_big_migration(ctx, big, sid, skey, admin_uid, second, dst, did, src_print)
    finally:
        # 30,000 rows each: do not leave them to the rest of the suite.
        sql(ctx, "DELETE FROM tenants WHERE id IN (%s, %s)", (sid, did))
        _BIG.clear()


def check_big_migration(ctx, big, sid, skey, admin_uid, second, dst, did, src_print):
    resp = migrate(ctx, sid, {"targetTenantId": did, "includeUsers": True,
                              "archiveSource": True})
    assert resp.status == 200, resp
    assert resp.json == {"leads": 10000, "activities": 20000, "users": 2, "tenantUsers": 2,
                         "sourceArchived": True}, resp.json

    # Fresh statistics for the checks below, which join each tenant's
    # 10,000 leads and 20,000 activities on columns without an index: with
    # stale ones the planner chose nested loops there (two CI runs stopped
    # after minutes in one of these joins).
    sql(ctx, "ANALYZE leads, activities, users, tenant_users")

    # The source: its data as it was, now archived.
    assert fingerprint(ctx, sid)[1:] == src_print[1:]
    assert sql(ctx, "SELECT status, archived_at IS NOT NULL FROM tenants WHERE id = %s",
               (sid,)) == [("archived", True)]
    resp, took = wait_status(ctx, "GET", "/v1/leads", skey, 401)
    assert_error(resp, 401, "invalid_tenant_key")

    # The target: its own rows plus the copies.
    assert sql(ctx, "SELECT (SELECT count(*) FROM leads WHERE tenant_id = %(d)s),"
                    " (SELECT count(*) FROM activities WHERE tenant_id = %(d)s),"
                    " (SELECT count(*) FROM users WHERE tenant_id = %(d)s),"
                    " (SELECT count(*) FROM tenant_users WHERE tenant_id = %(d)s)",
               {"d": did}) == [(10001, 20000, 3, 3)]
    # New ids everywhere.  A set operation, not a join: without fresh
    # statistics the planner took the join of 20,000 activities with
    # 20,000 for a nested loop, minutes of comparisons.
    for table in ("leads", "activities", "users", "tenant_users"):
        assert sql1(ctx, "SELECT count(*) FROM (SELECT id FROM %s WHERE tenant_id = %%s"
                         " INTERSECT ALL SELECT id FROM %s WHERE tenant_id = %%s) shared"
                         % (table, table), (did, sid)) == 0, table
    # Users copied with their e-mail, name, hash and role.
    assert sql1(ctx, "SELECT count(*) FROM users s JOIN users t ON t.tenant_id = %s"
                     " AND t.email = s.email AND t.name IS NOT DISTINCT FROM s.name"
                     " AND t.password_hash IS NOT DISTINCT FROM s.password_hash"
                     " AND t.created_at = s.created_at"
                     " JOIN tenant_users su ON su.tenant_id = s.tenant_id AND su.user_id = s.id"
                     " JOIN tenant_users tu ON tu.tenant_id = t.tenant_id AND tu.user_id = t.id"
                     " AND tu.role = su.role WHERE s.tenant_id = %s", (did, sid)) == 2
    # Every lead copied with its data and created_at (matched by its unique e-mail).
    assert sql1(ctx, "SELECT count(*) FROM leads s JOIN leads t ON t.tenant_id = %s"
                     " AND t.email = s.email WHERE s.tenant_id = %s"
                     " AND t.name = s.name AND t.status = s.status AND t.company = s.company"
                     " AND t.phone = s.phone AND t.source = s.source"
                     " AND t.custom_fields = s.custom_fields AND t.created_at = s.created_at"
                     " AND t.status_changed_at = s.status_changed_at AND t.version = 1",
                (did, sid)) == 10000
    # created_by and assigned_to point at the copied users (same e-mail),
    # never at the source's users.
    assert sql1(ctx, "SELECT count(*) FROM leads s"
                     " JOIN leads t ON t.tenant_id = %(d)s AND t.email = s.email"
                     " JOIN users scb ON scb.tenant_id = s.tenant_id AND scb.id = s.created_by"
                     " JOIN users tcb ON tcb.tenant_id = t.tenant_id AND tcb.id = t.created_by"
                     " JOIN users sat ON sat.tenant_id = s.tenant_id AND sat.id = s.assigned_to"
                     " JOIN users tat ON tat.tenant_id = t.tenant_id AND tat.id = t.assigned_to"
                     " WHERE s.tenant_id = %(s)s AND tcb.email = scb.email"
                     " AND tat.email = sat.email", {"d": did, "s": sid}) == 10000
    new_second = sql1(ctx, "SELECT id::text FROM users WHERE tenant_id = %s AND email = %s",
                      (did, big["second_email"]))
    assert new_second != second
    won = sql1(ctx, "SELECT count(*) FROM leads WHERE tenant_id = %s AND status = 'WON'", (sid,))
    assert sql1(ctx, "SELECT count(*) FROM leads WHERE tenant_id = %s AND assigned_to = %s",
                (did, new_second)) == won > 0
    assert sql1(ctx, "SELECT count(*) FROM leads WHERE tenant_id = %s"
                     " AND (created_by IN (%s, %s) OR assigned_to IN (%s, %s))",
                (did, admin_uid, second, admin_uid, second)) == 0
    # Every activity is on the copy of its lead, with its created_at, by the
    # copy of its user.
    assert sql1(ctx, "SELECT count(*) FROM activities ta"
                     " JOIN leads tl ON tl.tenant_id = ta.tenant_id AND tl.id = ta.lead_id"
                     " JOIN leads sl ON sl.tenant_id = %(s)s AND sl.email = tl.email"
                     " JOIN activities sa ON sa.tenant_id = sl.tenant_id AND sa.lead_id = sl.id"
                     " AND sa.type = ta.type AND sa.body = ta.body"
                     " AND sa.created_at = ta.created_at AND sa.occurred_at = ta.occurred_at"
                     " JOIN users su ON su.tenant_id = sa.tenant_id AND su.id = sa.user_id"
                     " JOIN users tu ON tu.tenant_id = ta.tenant_id AND tu.id = ta.user_id"
                     " AND tu.email = su.email"
                     " WHERE ta.tenant_id = %(d)s", {"d": did, "s": sid}) == 20000
    # The target's key sees them.
    r = ctx.http("GET", "/v1/leads/stats", key=dst["apiKey"])
    assert r.status == 200 and r.json["totalLeads"] == 10001, r
