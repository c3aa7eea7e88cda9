"""test_smoke.py - the server answers and the basic lead round trip works."""
from harness import test, assert_error


@test
def create_then_get_lead(ctx):
    t = ctx.new_tenant()
    r = ctx.http("POST", "/v1/leads", key=t.key, body={"name": "Ada", "email": "ada@example.com"})
    assert r.status == 201, r
    lead = r.json
    assert r.header("Location") == "/v1/leads/" + lead["id"]
    assert lead["tenantId"] == t.id and lead["name"] == "Ada" and lead["status"] == "NEW"
    g = ctx.http("GET", "/v1/leads/" + lead["id"], key=t.key)
    assert g.status == 200 and g.json == lead, g
    assert g.header("ETag") == '"1"'
    assert g.header("X-Tenant-ID") == t.id


@test
def missing_key_is_401(ctx):
    assert_error(ctx.http("GET", "/v1/leads"), 401, "missing_tenant_key")
