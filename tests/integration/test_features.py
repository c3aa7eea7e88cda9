"""test_features.py - plan features gate the /v1 endpoints (the seed's
TenantSecure): a tenant without the feature gets 403 feature_disabled and
nothing happens; a feature change takes effect within 5 seconds.
"""
import json
import time

from harness import assert_error, test

ENDPOINTS = [
    # (method, path template, body, feature)
    ("GET", "/v1/leads", None, "lead:read"),
    ("GET", "/v1/leads/stats", None, "lead:read"),
    ("GET", "/v1/leads/{id}", None, "lead:read"),
    ("POST", "/v1/leads", {"name": "gated"}, "lead:create"),
    ("PATCH", "/v1/leads/{id}", {"name": "changed"}, "lead:update"),
    ("DELETE", "/v1/leads/{id}", None, "lead:delete"),
]


def set_features(ctx, tenant_id, features):
    c = ctx.owner_db()
    c.cursor().execute("UPDATE tenants SET enabled_features = %s::jsonb WHERE id = %s",
                       (json.dumps(features), tenant_id))
    c.close()


def lead_row(ctx, lead_id):
    c = ctx.owner_db()
    cur = c.cursor()
    cur.execute("SELECT name, version FROM leads WHERE id = %s", (lead_id,))
    row = cur.fetchone()
    c.close()
    return row


def wait_status(ctx, method, path, key, body, status, timeout=5.5):
    deadline = time.time() + timeout
    while True:
        r = ctx.http(method, path, key=key, body=body)
        if r.status == status or time.time() > deadline:
            return r
        time.sleep(0.2)


@test
def basic_plan_cannot_delete_leads(ctx):
    t = ctx.new_tenant(plan="basic")
    lead = ctx.http("POST", "/v1/leads", key=t.key, body={"name": "keep me"}).json
    r = ctx.http("DELETE", "/v1/leads/" + lead["id"], key=t.key)
    assert_error(r, 403, "feature_disabled")
    assert "lead:delete" in r.json["error"]["message"]
    assert lead_row(ctx, lead["id"]) == ("keep me", 1)


@test
def every_gated_endpoint_denies_without_its_feature(ctx):
    all_on = {"lead:read": True, "lead:create": True, "lead:update": True,
              "lead:delete": True}
    for method, template, body, feature in ENDPOINTS:
        t = ctx.new_tenant()
        # Set up through the owner, so the server has never cached this key
        # with the feature still on.
        features = dict(all_on)
        features[feature] = False
        set_features(ctx, t.id, features)
        c = ctx.owner_db()
        cur = c.cursor()
        cur.execute("INSERT INTO leads (tenant_id, name) VALUES (%s, 'orig') RETURNING id::text",
                    (t.id,))
        lead = {"id": cur.fetchone()[0]}
        c.close()
        path = template.replace("{id}", lead["id"])
        before = ctx.count_leads(t.id)
        r = ctx.http(method, path, key=t.key, body=body)
        assert_error(r, 403, "feature_disabled")
        assert feature in r.json["error"]["message"], (feature, r)
        assert ctx.count_leads(t.id) == before, (method, template)
        assert lead_row(ctx, lead["id"]) == ("orig", 1), (method, template)


@test
def feature_change_takes_effect_within_five_seconds(ctx):
    t = ctx.new_tenant()
    assert ctx.http("GET", "/v1/leads", key=t.key).status == 200  # now cached
    set_features(ctx, t.id, {"lead:read": False, "lead:create": True})
    t0 = time.time()
    r = wait_status(ctx, "GET", "/v1/leads", t.key, None, 403)
    assert_error(r, 403, "feature_disabled")
    assert time.time() - t0 <= 5.5
    set_features(ctx, t.id, {"lead:read": True})
    r = wait_status(ctx, "GET", "/v1/leads", t.key, None, 200)
    assert r.status == 200, r
