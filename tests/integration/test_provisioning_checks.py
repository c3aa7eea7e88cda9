"""test_provisioning_checks.py - what provisioning refuses, and only that
(migration 0015).

  - the admin e-mail check (409 conflict, field adminEmail) is there so a
    repeated sign-up does not create a second tenant: an earlier
    provisioning's admin still gets it, in any letter case, from the API
    and the CLI, with nothing written; but an address a tenant gave one of
    its own users (POST /v1/users) no longer blocks anyone's sign-up;
  - nothing is provisioned whose welcome e-mail could never be sent: a
    name with a control character (line break, tab, DEL, NEL, ESC) is a 400
    validation_error on name, from the API and the CLI, and so is such a
    rename (PATCH /admin/tenants/{id}, tenant set); an admin e-mail the
    outbox cannot deliver to (non-ASCII, a ':' or 255 bytes) is a 400 on
    adminEmail - each with nothing written; and a 255-character name of
    4-byte characters gets a welcome e-mail that a real SMTP server
    receives, its subject cut to fit 400 bytes.
"""
import time
import uuid

from harness import ADMIN_PASSWORD, assert_error, call, login, new_org, sql, sql1, test
from test_admin_api import admin, snapshot, tenant_body
from test_outbox import SmtpSink, outbox_scope, wait_for

SUBJECT_MAX = 400  # OUTBOX_SUBJECT_MAX, src/outbox/smtp.h
CONTROL_NAMES = ["Acme\nCorp", "Acme\r\nBcc: x@example.com", "Acme\tCorp", "Acme\x7fCorp",
                 "Acme\u0085Corp", "\x1b[31mRed"]


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


def undeliverable_emails(tag):
    local = "a" * 64
    domain = "d" * (255 - 64 - 1 - 4) + ".com"
    long255 = local + "@" + domain
    assert len(long255) == 255
    return ["j\u00fcrgen-%s@example.com" % tag, "ops:%s@example.com" % tag,
            "admin-%s@b\u00fccher.example" % tag, long255]


@test
def provisioning_refuses_what_the_welcome_e_mail_cannot_carry(ctx):
    tag = uuid.uuid4().hex[:8]
    cases = [({"name": n + " " + tag}, "name") for n in CONTROL_NAMES]
    cases += [({"adminEmail": e}, "adminEmail") for e in undeliverable_emails(tag)]
    for change, field in cases:
        before = snapshot(ctx)
        body = tenant_body(**change)
        r = admin(ctx, "POST", "/admin/tenants", body)
        assert_error(r, 400, "validation_error", field)
        assert snapshot(ctx) == before, change
        assert sql1(ctx, "SELECT count(*) FROM tenants WHERE name = %s", (body["name"],)) == 0
    # The CLI: a usage error naming the flag, nothing written.
    before = snapshot(ctx)
    for name, addr, flag in [("Acme\nCorp " + tag, "ok-%s@example.com" % tag, "--name"),
                             ("Acme\tCorp " + tag, "ok-%s@example.com" % tag, "--name"),
                             ("Acme " + tag, "j\u00fcrgen-%s@example.com" % tag, "--admin-email")]:
        p = cli_create(ctx, name, addr)
        assert p.returncode == 2, (name, addr, p.returncode, p.stdout, p.stderr)
        assert flag in p.stderr and p.stdout == "", (flag, p.stderr)
    assert snapshot(ctx) == before
    # Plain printable names and addresses at the limits still go through.
    r = admin(ctx, "POST", "/admin/tenants",
              tenant_body(name="\u00a9 Caf\u00e9 \u2014 \U0001F600 " + tag,
                          adminEmail="a" * 64 + "@" + "d" * 185 + ".com"))
    assert r.status == 201, r


@test
def a_rename_with_a_control_character_is_refused(ctx):
    org = new_org(ctx, "Renamed")
    row = "SELECT name, updated_at FROM tenants WHERE id = %s"
    audit = "SELECT count(*) FROM operator_audit WHERE tenant_id = %s"
    before, audits = sql(ctx, row, (org.id,)), sql1(ctx, audit, (org.id,))
    for name in CONTROL_NAMES:
        r = admin(ctx, "PATCH", "/admin/tenants/" + org.id, {"name": name})
        assert_error(r, 400, "validation_error", "name")
        p = ctx.tekup("tenant", "set", org.id, "--name", name, "--data-dir", ctx.data_dir)
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
        assert "validation_error" in p.stderr and "name" in p.stderr, p.stderr
    assert sql(ctx, row, (org.id,)) == before
    assert sql1(ctx, audit, (org.id,)) == audits
    r = admin(ctx, "PATCH", "/admin/tenants/" + org.id, {"name": "Renamed \u00e9 " + org.slug})
    assert r.status == 200 and r.json["name"] == "Renamed \u00e9 " + org.slug, r


@test
def the_welcome_subject_fits_whatever_the_name(ctx):
    def subject(name):
        return sql1(ctx, "SELECT tenant_welcome_subject(%s)", (name,))
    greeting = "Welcome to tekup, "
    assert subject("Acme") == greeting + "Acme"
    rows = sql(ctx, "SELECT u, n, tenant_welcome_subject(repeat(u, n))"
                    " FROM unnest(%s::text[]) u, generate_series(1, 255) n",
               (["a", "\u00d8", "\u20ac", "\U0001D518"],))
    assert len(rows) == 4 * 255
    for unit, n, s in rows:
        name = unit * n
        assert len(s.encode()) <= SUBJECT_MAX, (unit, n, len(s.encode()))
        if len((greeting + name).encode()) <= SUBJECT_MAX:
            assert s == greeting + name, (unit, n)
        else:
            # Cut at a character boundary, as little as fits.
            assert s.endswith("\u2026") and name.startswith(s[len(greeting):-1]), (unit, n)
            assert len(s.encode()) > SUBJECT_MAX - 3 - len(unit.encode()), (unit, n)
    # Exactly at the limit: kept whole; one byte over: cut.
    assert subject("x" * 382) == greeting + "x" * 382
    assert subject("x" * 383) == greeting + "x" * 379 + "\u2026"


@test
def a_long_multi_byte_name_gets_its_welcome_e_mail(ctx):
    tag = uuid.uuid4().hex[:8]
    name = "\U0001D518" * 246 + " " + tag  # 255 characters, 993 bytes
    assert len(name) == 255
    with outbox_scope(ctx) as box:
        smtp = box.peer(SmtpSink())
        r = admin(ctx, "POST", "/admin/tenants", tenant_body(name=name, plan="trial"))
        assert r.status == 201, r
        tid = r.json["tenantId"]
        rows = sql(ctx, "SELECT id, event_id::text, octet_length(payload->>'subject')"
                        " FROM outbox WHERE tenant_id = %s AND topic = 'tenant.welcome'", (tid,))
        assert len(rows) == 1, rows
        box.ids.append(rows[0][0])
        event = rows[0][1]
        assert rows[0][2] <= SUBJECT_MAX, rows
        srv = box.server(smtp=smtp.url)
        assert wait_for(lambda: box.status(event) == "delivered", 15), (box.row(event),
                                                                         srv.output()[-2000:])
        got = smtp.for_event(event)
        assert len(got) == 1, got
        msg = got[0][3]
        assert msg["Subject"] == "Welcome to tekup, " + "\U0001D518" * 94 + "\u2026", msg["Subject"]
        assert name in msg.get_content()  # the body carries the whole name
