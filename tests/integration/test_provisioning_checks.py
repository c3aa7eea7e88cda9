"""test_provisioning_checks.py - what provisioning refuses, and only that
(migration 0015).

  - the admin e-mail check (409 conflict, field adminEmail) is there so a
    repeated sign-up does not create a second tenant: an earlier
    provisioning's admin still gets it, in any letter case, from the API
    and the CLI, with nothing written; but an address a tenant gave one of
    its own users (POST /v1/users) no longer blocks anyone's sign-up;
"""
import uuid

from harness import ADMIN_PASSWORD, assert_error, call, login, new_org, sql, sql1, test
from test_admin_api import admin, snapshot, tenant_body


def cli_create(ctx, name, admin_email, *extra):
    return ctx.tekup("tenant", "create", "--data-dir", ctx.data_dir, "--name", name,
                     "--plan", "professional", "--admin-email", admin_email,
                     "--admin-name", "Boss", *extra,
                     env={"TEKUP_ADMIN_PASSWORD": ADMIN_PASSWORD})


def fields_of(stdout):
    return dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)


@test
def a_tenants_own_user_does_not_block_a_sign_up(ctx):
    squatter = new_org(ctx, "Squatter")
    tag = uuid.uuid4().hex[:8]
    victim, victim2 = "ceo-%s@bigcorp.example" % tag, "cfo-%s@bigcorp.example" % tag
    for addr, pw in ((victim, None), (victim2, "squatters own pw 1")):
        body = {"email": addr, "name": "Squatted"}
        if pw:
            body["password"] = pw
        r = call(ctx, "POST", "/v1/users", key=squatter.key, body=body)
        assert r.status == 201, r
    # The CLI and the API both provision the real owners of those addresses.
    p = cli_create(ctx, "Big Corp " + tag, victim.upper())
    assert p.returncode == 0, p.stdout + p.stderr
    mine = fields_of(p.stdout)
    token = login(ctx, mine["api_key"], victim)
    me = call(ctx, "GET", "/v1/me", key=mine["api_key"], token=token).json
    assert me["id"] == mine["admin_user_id"] and me["role"] == "admin", me
    r = admin(ctx, "POST", "/admin/tenants", tenant_body(adminEmail=victim2))
    assert r.status == 201, r
    # The squatter's users are untouched, and still theirs.
    assert sql1(ctx, "SELECT count(*) FROM users WHERE tenant_id = %s AND lower(email) IN"
                     " (lower(%s), lower(%s))", (squatter.id, victim, victim2)) == 2
    login(ctx, squatter.key, victim2, "squatters own pw 1")


@test
def an_earlier_sign_up_still_gets_409(ctx):
    tag = uuid.uuid4().hex[:8]
    first = tenant_body(adminEmail="founder-%s@example.com" % tag)
    r = admin(ctx, "POST", "/admin/tenants", first)
    assert r.status == 201, r
    tenant_id = r.json["tenantId"]
    for addr in (first["adminEmail"], first["adminEmail"].upper()):
        before = snapshot(ctx)
        again = tenant_body(adminEmail=addr)
        r = admin(ctx, "POST", "/admin/tenants", again)
        assert_error(r, 409, "conflict", "adminEmail")
        assert snapshot(ctx) == before
        assert sql1(ctx, "SELECT count(*) FROM tenants WHERE name = %s", (again["name"],)) == 0
        p = cli_create(ctx, "Again " + tag, addr)
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
        assert "conflict" in p.stderr and "adminEmail" in p.stderr, p.stderr
        assert p.stdout == "", p.stdout
        assert snapshot(ctx) == before
    # Still taken when the admin user is deactivated, or the tenant archived.
    sql(ctx, "UPDATE users SET is_active = false WHERE tenant_id = %s", (tenant_id,))
    sql(ctx, "UPDATE tenants SET status = 'archived', archived_at = now() WHERE id = %s",
        (tenant_id,))
    before = snapshot(ctx)
    assert_error(admin(ctx, "POST", "/admin/tenants", tenant_body(adminEmail=first["adminEmail"])),
                 409, "conflict", "adminEmail")
    assert snapshot(ctx) == before
    # The address is recorded once, on the tenant provisioning made.
    assert sql(ctx, "SELECT lower(signup_admin_email) FROM tenants WHERE id = %s",
               (tenant_id,)) == [(first["adminEmail"].lower(),)]
    assert sql1(ctx, "SELECT count(*) FROM tenants WHERE lower(signup_admin_email) = lower(%s)",
                (first["adminEmail"],)) == 1


@test
def the_backfill_finds_the_provisioned_admin(ctx):
    """Migration 0015 names existing tenants' sign-up admins by the admin
    created in the tenant's own transaction; that rule picks exactly the
    provisioned admin, not one added later."""
    org = new_org(ctx, "Backfill")
    r = call(ctx, "POST", "/v1/users", key=org.key,
             body={"email": "later-%s@example.com" % uuid.uuid4().hex[:8], "name": "Later",
                   "role": "admin", "password": "a later admin 9"})
    assert r.status == 201, r
    picked = sql(ctx, "SELECT u.email FROM users u"
                      " JOIN tenants ut ON ut.id = u.tenant_id AND ut.created_at = u.created_at"
                      " JOIN tenant_users tu ON tu.tenant_id = u.tenant_id AND tu.user_id = u.id"
                      " AND tu.role = 'admin' WHERE u.tenant_id = %s", (org.id,))
    assert picked == [(org.admin_email,)], picked
    assert sql1(ctx, "SELECT signup_admin_email FROM tenants WHERE id = %s",
                (org.id,)) == org.admin_email
