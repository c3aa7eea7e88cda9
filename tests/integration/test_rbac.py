"""test_rbac.py - role-based access inside a tenant, enforced by PostgreSQL
(issue 5, sections 2 and 5).

One tenant A with an admin (made by `tekup tenant create --admin-email`) and
three users made through POST /v1/users: an assignee, a creator and an
unrelated user; a second tenant B.  The actors are

  integration    A's key alone             sees and changes every lead of A
  admin          A's key + admin session   sees and changes every lead of A
  assignee       a lead is assigned to them          sees and changes it
  creator        they created the lead               sees and changes it
  unrelated      neither                   404, exactly as for an absent id
  other-tenant   B's key                   404, exactly as for an absent id

and every lead and activity endpoint (GET/PATCH/DELETE /v1/leads/{id},
GET /v1/leads with its total, GET /v1/leads/stats, GET/POST
/v1/leads/{id}/activities, PATCH/DELETE /v1/activities/{id}) is tried by
each, proving with the owner's (RLS-bypassing) view that a refused request
changed nothing.  The same visibility is then checked at the database level
as the request role (tekup_app with SET LOCAL app.current_tenant,
app."current_user" and app.current_user_role): SELECT sees the same rows,
UPDATE/DELETE of an invisible lead touch 0 rows, activities follow their
lead.  Also: the reassignment rule (an assignee who did not create a lead
cannot give it away: 403 forbidden; the creator can), createdBy set by the
database (a client sending it gets 400 unknown_field), assignedTo limited to
users of the same tenant (400 invalid_reference, nothing written) and the
shape of the policies (a RESTRICTIVE tenant wall AND-ed with the role rule).
"""
import json
import uuid

import psycopg2

from harness import Server, assert_error, call, login, new_org, test

PASSWORD = "correct horse 9"


# --------------------------------------------------------------------------
# helpers


def create_user(ctx, key, token, email, name, role="user"):
    r = call(ctx, "POST", "/v1/users", key, token,
             {"email": email, "name": name, "password": PASSWORD, "role": role})
    assert r.status == 201, r
    return r.json["id"]


def owner_rows(ctx, sql, params=()):
    c = ctx.owner_db()
    try:
        cur = c.cursor()
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None
    finally:
        c.close()


def lead_row(ctx, lead_id):
    rows = owner_rows(ctx, "SELECT name, status, assigned_to::text, created_by::text, version"
                           " FROM leads WHERE id = %s", (lead_id,))
    return rows[0] if rows else None


def activity_row(ctx, act_id):
    rows = owner_rows(ctx, "SELECT type, body FROM activities WHERE id = %s", (act_id,))
    return rows[0] if rows else None


def activity_count(ctx, lead_id):
    return owner_rows(ctx, "SELECT count(*) FROM activities WHERE lead_id = %s", (lead_id,))[0][0]


_world = None


class World:
    pass


def world(ctx):
    """Tenant A (admin + assignee, creator, unrelated users) and tenant B,
    built once: password hashing is deliberately slow."""
    global _world
    if _world is not None:
        return _world
    w = World()
    w.a = new_org(ctx, "RBAC A")
    w.b = new_org(ctx, "RBAC B")
    w.admin_tok = login(ctx, w.a.key, w.a.admin_email)
    tag = uuid.uuid4().hex[:8]
    w.uid = {"admin": w.a.admin_id}
    w.tok = {"admin": w.admin_tok}
    for who in ("assignee", "creator", "unrelated"):
        email = "%s-%s@example.com" % (who, tag)
        w.uid[who] = create_user(ctx, w.a.key, w.admin_tok, email, who.title())
        w.tok[who] = login(ctx, w.a.key, email)
    # (name, key, token, sees the shared lead)
    w.actors = [
        ("integration", w.a.key, None, True),
        ("admin", w.a.key, w.admin_tok, True),
        ("assignee", w.a.key, w.tok["assignee"], True),
        ("creator", w.a.key, w.tok["creator"], True),
        ("unrelated", w.a.key, w.tok["unrelated"], False),
        ("other-tenant", w.b.key, None, False),
    ]
    _world = w
    return w


def shared_lead(ctx, w, name, **extra):
    """A lead created by the creator (signed in) and assigned to the assignee."""
    body = {"name": name, "assignedTo": w.uid["assignee"]}
    body.update(extra)
    r = call(ctx, "POST", "/v1/leads", w.a.key, w.tok["creator"], body)
    assert r.status == 201, r
    lead = r.json
    assert lead["createdBy"] == w.uid["creator"], lead
    assert lead["assignedTo"] == w.uid["assignee"], lead
    return lead


def add_note(ctx, w, lead_id, text):
    r = call(ctx, "POST", "/v1/leads/%s/activities" % lead_id, w.a.key, None,
             {"type": "note", "body": text})
    assert r.status == 201, r
    return r.json


def absent_body(ctx, method, path_template, key, token, body=None):
    """The error body for an id that does not exist at all."""
    r = call(ctx, method, path_template % uuid.uuid4(), key, token, body)
    assert r.status == 404, r
    return r.json


def visible_by_rule(ctx, w, actor):
    """The leads of tenant A an actor should see, computed from the owner's
    view with the documented rule (an oracle independent of the policies)."""
    if actor == "other-tenant":
        return {}
    rows = owner_rows(ctx, "SELECT id::text, status, created_by::text, assigned_to::text"
                           " FROM leads WHERE tenant_id = %s", (w.a.id,))
    out = {}
    for lid, status, created_by, assigned_to in rows:
        if actor in ("integration", "admin") or w.uid[actor] in (created_by, assigned_to):
            out[lid] = status
    return out


def app_session(conn, tenant, user=None, role=None):
    cur = conn.cursor()
    cur.execute("BEGIN")
    if tenant:
        cur.execute("SET LOCAL app.current_tenant = %s", (tenant,))
    if user:
        cur.execute("SET LOCAL app.\"current_user\" = %s", (user,))
        cur.execute("SET LOCAL app.current_user_role = %s", (role,))
        if role != "admin":  # as the server does (migration 0016)
            cur.execute("SET LOCAL ROLE tekup_app_user")
    return cur


def raw_session(conn, tenant, user=None, role_setting=None, db_role=None):
    """A transaction with exactly these settings and role, whether or not
    the server would ever send them (app_session sends what it sends)."""
    cur = conn.cursor()
    cur.execute("BEGIN")
    cur.execute("SET LOCAL app.current_tenant = %s", (tenant,))
    if user:
        cur.execute("SET LOCAL app.\"current_user\" = %s", (user,))
    if role_setting:
        cur.execute("SET LOCAL app.current_user_role = %s", (role_setting,))
    if db_role:
        cur.execute("SET LOCAL ROLE " + db_role)
    return cur


# --------------------------------------------------------------------------
# the matrix over HTTP


@test
def role_matrix_single_lead_endpoints(ctx):
    w = world(ctx)
    lead = shared_lead(ctx, w, "matrix lead")
    lid = lead["id"]
    act = add_note(ctx, w, lid, "first note")
    for actor, key, tok, sees in w.actors:
        before_lead = lead_row(ctx, lid)
        before_acts = activity_count(ctx, lid)
        before_act = activity_row(ctx, act["id"])

        # GET /v1/leads/{id}
        r = call(ctx, "GET", "/v1/leads/" + lid, key, tok)
        if sees:
            assert r.status == 200, (actor, r)
            assert r.json["id"] == lid and r.json["createdBy"] == w.uid["creator"], (actor, r)
        else:
            assert_error(r, 404, "lead_not_found")
            assert r.json == absent_body(ctx, "GET", "/v1/leads/%s", key, tok), (actor, r)

        # PATCH /v1/leads/{id}
        r = call(ctx, "PATCH", "/v1/leads/" + lid, key, tok, {"name": "renamed by " + actor})
        if sees:
            assert r.status == 200, (actor, r)
            assert r.json["name"] == "renamed by " + actor, (actor, r)
            assert lead_row(ctx, lid)[0] == "renamed by " + actor
            # Ownership is untouched by an ordinary edit.
            assert lead_row(ctx, lid)[2:4] == (w.uid["assignee"], w.uid["creator"])
        else:
            assert_error(r, 404, "lead_not_found")
            assert r.json == absent_body(ctx, "PATCH", "/v1/leads/%s", key, tok,
                                         {"name": "x"}), (actor, r)
            # A version precondition must not reveal the lead either (no 412).
            r = call(ctx, "PATCH", "/v1/leads/" + lid, key, tok, {"name": "x"},
                     headers={"If-Match": '"999"'})
            assert_error(r, 404, "lead_not_found")
            assert lead_row(ctx, lid) == before_lead, actor

        # GET /v1/leads/{id}/activities
        r = call(ctx, "GET", "/v1/leads/%s/activities" % lid, key, tok)
        if sees:
            assert r.status == 200, (actor, r)
            assert act["id"] in [a["id"] for a in r.json["data"]], (actor, r)
        else:
            assert_error(r, 404, "lead_not_found")
            assert r.json == absent_body(ctx, "GET", "/v1/leads/%s/activities", key, tok)

        # POST /v1/leads/{id}/activities
        r = call(ctx, "POST", "/v1/leads/%s/activities" % lid, key, tok,
                 {"type": "call", "body": "call by " + actor})
        if sees:
            assert r.status == 201, (actor, r)
            assert r.json["leadId"] == lid and r.json["type"] == "call", (actor, r)
            expect_user = None if actor == "integration" else w.uid[actor]
            assert r.json["userId"] == expect_user, (actor, r)
            assert activity_count(ctx, lid) == before_acts + 1, actor
        else:
            assert_error(r, 404, "lead_not_found")
            assert r.json == absent_body(ctx, "POST", "/v1/leads/%s/activities", key, tok,
                                         {"type": "call"}), (actor, r)
            assert activity_count(ctx, lid) == before_acts, actor

        # PATCH /v1/activities/{id}
        r = call(ctx, "PATCH", "/v1/activities/" + act["id"], key, tok,
                 {"body": "edited by " + actor})
        if sees:
            assert r.status == 200, (actor, r)
            assert r.json["body"] == "edited by " + actor, (actor, r)
            assert activity_row(ctx, act["id"]) == ("note", "edited by " + actor)
        else:
            assert_error(r, 404, "activity_not_found")
            assert r.json == absent_body(ctx, "PATCH", "/v1/activities/%s", key, tok,
                                         {"body": "x"}), (actor, r)
            assert activity_row(ctx, act["id"]) == before_act, actor

        # DELETE /v1/activities/{id} (a fresh activity each time)
        victim = add_note(ctx, w, lid, "to delete by " + actor)
        r = call(ctx, "DELETE", "/v1/activities/" + victim["id"], key, tok)
        if sees:
            assert r.status == 204 and r.body == "", (actor, r)
            assert activity_row(ctx, victim["id"]) is None, actor
        else:
            assert_error(r, 404, "activity_not_found")
            assert r.json == absent_body(ctx, "DELETE", "/v1/activities/%s", key, tok)
            assert activity_row(ctx, victim["id"]) == ("note", "to delete by " + actor)

        # DELETE /v1/leads/{id} (a fresh shared lead each time)
        doomed = shared_lead(ctx, w, "doomed for " + actor)
        doomed_act = add_note(ctx, w, doomed["id"], "on a doomed lead")
        r = call(ctx, "DELETE", "/v1/leads/" + doomed["id"], key, tok)
        if sees:
            assert r.status == 204, (actor, r)
            assert lead_row(ctx, doomed["id"]) is None, actor
            assert activity_row(ctx, doomed_act["id"]) is None, actor  # cascaded
        else:
            assert_error(r, 404, "lead_not_found")
            assert r.json == absent_body(ctx, "DELETE", "/v1/leads/%s", key, tok)
            assert lead_row(ctx, doomed["id"]) is not None, actor
            assert activity_row(ctx, doomed_act["id"]) is not None, actor


@test
def role_matrix_list_and_stats(ctx):
    w = world(ctx)
    a = w.a.key
    # Leads with distinct owners and statuses, next to whatever earlier tests left.
    shared = shared_lead(ctx, w, "list shared", status="PROPOSAL")
    r = call(ctx, "POST", "/v1/leads", a, None, {"name": "list integration", "status": "QUALIFIED"})
    assert r.status == 201 and r.json["createdBy"] is None, r
    by_integration = r.json
    r = call(ctx, "POST", "/v1/leads", a, w.tok["unrelated"], {"name": "list own", "status": "WON"})
    assert r.status == 201 and r.json["createdBy"] == w.uid["unrelated"], r
    by_unrelated = r.json
    r = call(ctx, "POST", "/v1/leads", a, w.admin_tok,
             {"name": "list admin to assignee", "status": "CONTACTED",
              "assignedTo": w.uid["assignee"]})
    assert r.status == 201 and r.json["createdBy"] == w.uid["admin"], r
    admin_to_assignee = r.json

    must = {
        "integration": {shared["id"], by_integration["id"], by_unrelated["id"],
                        admin_to_assignee["id"]},
        "admin": {shared["id"], by_integration["id"], by_unrelated["id"],
                  admin_to_assignee["id"]},
        "assignee": {shared["id"], admin_to_assignee["id"]},
        "creator": {shared["id"]},
        "unrelated": {by_unrelated["id"]},
        "other-tenant": set(),
    }
    must_not = {
        "assignee": {by_integration["id"], by_unrelated["id"]},
        "creator": {by_integration["id"], by_unrelated["id"], admin_to_assignee["id"]},
        "unrelated": {shared["id"], by_integration["id"], admin_to_assignee["id"]},
        "other-tenant": must["integration"],
    }
    for actor, key, tok, _ in w.actors:
        expected = visible_by_rule(ctx, w, actor)
        assert must[actor] <= set(expected), (actor, must[actor], expected)
        assert not (must_not.get(actor, set()) & set(expected)), actor

        # page + limit: ids and total
        r = call(ctx, "GET", "/v1/leads?limit=100", key, tok)
        assert r.status == 200, (actor, r)
        ids = [l["id"] for l in r.json["data"]]
        if actor != "other-tenant":
            assert set(ids) == set(expected), (actor, set(ids) ^ set(expected))
            assert r.json["pagination"]["total"] == len(expected), (actor, r.json["pagination"])
        else:
            assert not (set(ids) & must["integration"]), ids
        assert len(ids) == len(set(ids)), actor

        # cursor pagination walks the same set
        seen, cursor = [], ""
        for _ in range(100):
            r = call(ctx, "GET", "/v1/leads?limit=3&cursor=" + cursor, key, tok)
            assert r.status == 200, (actor, r)
            seen += [l["id"] for l in r.json["data"]]
            cursor = r.json["nextCursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)), actor
        if actor != "other-tenant":
            assert set(seen) == set(expected), (actor, set(seen) ^ set(expected))

        # filters cannot reach around the rule
        r = call(ctx, "GET", "/v1/leads?limit=100&assignedTo=" + w.uid["assignee"], key, tok)
        assert r.status == 200, r
        got = {l["id"] for l in r.json["data"]}
        if actor in ("integration", "admin", "assignee"):
            assert {shared["id"], admin_to_assignee["id"]} <= got, (actor, got)
        if actor == "creator":
            assert shared["id"] in got and admin_to_assignee["id"] not in got, got
        if actor in ("unrelated", "other-tenant"):
            assert got == set(), (actor, got)

        # stats count only the visible leads
        r = call(ctx, "GET", "/v1/leads/stats", key, tok)
        assert r.status == 200, (actor, r)
        stats = r.json
        if actor != "other-tenant":
            assert stats["totalLeads"] == len(expected), (actor, stats, len(expected))
            for status in ("NEW", "CONTACTED", "QUALIFIED", "PROPOSAL", "WON", "LOST"):
                want = sum(1 for s in expected.values() if s == status)
                assert stats["byStatus"][status]["count"] == want, (actor, status, stats)


# --------------------------------------------------------------------------
# the same rule at the database level, as the request role


@test
def database_level_visibility_as_the_request_role(ctx):
    w = world(ctx)
    lead = shared_lead(ctx, w, "db-level lead")
    lid = lead["id"]
    act = add_note(ctx, w, lid, "db-level note")
    r = call(ctx, "POST", "/v1/leads", w.a.key, w.tok["unrelated"], {"name": "db-level own"})
    own = r.json["id"]
    roles = {
        "integration": (w.a.id, None, None),
        "admin": (w.a.id, w.uid["admin"], "admin"),
        "assignee": (w.a.id, w.uid["assignee"], "user"),
        "creator": (w.a.id, w.uid["creator"], "user"),
        "unrelated": (w.a.id, w.uid["unrelated"], "user"),
        "other-tenant": (w.b.id, None, None),
    }
    conn = ctx.app_db()
    try:
        for actor, (tenant, user, role) in roles.items():
            expected = visible_by_rule(ctx, w, actor)
            cur = app_session(conn, tenant, user, role)
            cur.execute("SELECT id::text FROM leads")
            got = {row[0] for row in cur.fetchall()}
            if actor == "other-tenant":
                assert lid not in got and own not in got, actor
            else:
                assert got == set(expected), (actor, got ^ set(expected))
            cur.execute("SELECT id::text FROM activities WHERE lead_id = %s", (lid,))
            acts = {row[0] for row in cur.fetchall()}
            sees = actor not in ("unrelated", "other-tenant")
            assert (act["id"] in acts) == sees, (actor, acts)

            # UPDATE / DELETE of the shared lead: 1 row when visible, else 0.
            cur.execute("UPDATE leads SET name = 'db touched' WHERE id = %s", (lid,))
            assert cur.rowcount == (1 if sees else 0), (actor, cur.rowcount)
            cur.execute("UPDATE activities SET body = 'db touched' WHERE id = %s", (act["id"],))
            assert cur.rowcount == (1 if sees else 0), (actor, cur.rowcount)
            cur.execute("DELETE FROM activities WHERE id = %s", (act["id"],))
            assert cur.rowcount == (1 if sees else 0), (actor, cur.rowcount)
            cur.execute("DELETE FROM leads WHERE id = %s", (lid,))
            assert cur.rowcount == (1 if sees else 0), (actor, cur.rowcount)
            conn.rollback()

            if not sees:
                # Inserting an activity on the invisible lead breaks the policy.
                cur = app_session(conn, tenant, user, role)
                try:
                    cur.execute("INSERT INTO activities (tenant_id, lead_id, type, body)"
                                " VALUES (%s, %s, 'note', 'sneaky')", (tenant, lid))
                    raise AssertionError("%s inserted an activity on an invisible lead" % actor)
                except psycopg2.Error as e:
                    assert e.pgcode in ("42501", "23503"), (actor, e.pgcode, e)
                conn.rollback()

        # createdBy comes from app.current_user even when the insert names another.
        cur = app_session(conn, w.a.id, w.uid["unrelated"], "user")
        cur.execute("INSERT INTO leads (tenant_id, name, created_by) VALUES (%s, 'forged', %s)"
                    " RETURNING created_by::text", (w.a.id, w.uid["creator"]))
        assert cur.fetchone()[0] == w.uid["unrelated"]
        conn.rollback()

        # The assignee cannot hand the lead away at the database either...
        cur = app_session(conn, w.a.id, w.uid["assignee"], "user")
        try:
            cur.execute("UPDATE leads SET assigned_to = %s WHERE id = %s",
                        (w.uid["unrelated"], lid))
            raise AssertionError("the assignee reassigned the lead at the database")
        except psycopg2.Error as e:
            assert e.pgcode == "42501", (e.pgcode, e)
        conn.rollback()
        # ...the creator can.
        cur = app_session(conn, w.a.id, w.uid["creator"], "user")
        cur.execute("UPDATE leads SET assigned_to = %s WHERE id = %s", (w.uid["unrelated"], lid))
        assert cur.rowcount == 1
        conn.rollback()

        # Reads as tekup_app_user follow the user rule whatever the settings
        # claim (fails closed): an "admin" role setting sees only the user's
        # own leads, and no user at all sees nothing.
        cur = raw_session(conn, w.a.id, w.uid["unrelated"], "admin", "tekup_app_user")
        cur.execute("SELECT id::text FROM leads")
        assert {row[0] for row in cur.fetchall()} == set(visible_by_rule(ctx, w, "unrelated"))
        conn.rollback()
        cur = raw_session(conn, w.a.id, db_role="tekup_app_user")
        cur.execute("SELECT count(*) FROM leads")
        assert cur.fetchone()[0] == 0
        conn.rollback()

        # A plain user's context on the login role - what a server older
        # than 0016 sends, never switching roles - reads and writes no lead
        # (the leads wall refuses it), and so reaches no activity either.
        cur = raw_session(conn, w.a.id, w.uid["creator"], "user")
        cur.execute("SELECT count(*) FROM leads")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM activities")
        assert cur.fetchone()[0] == 0
        cur.execute("UPDATE leads SET name = 'old server' WHERE id = %s", (lid,))
        assert cur.rowcount == 0
        cur.execute("DELETE FROM leads WHERE id = %s", (lid,))
        assert cur.rowcount == 0
        try:
            cur.execute("INSERT INTO leads (tenant_id, name) VALUES (%s, 'old server')",
                        (w.a.id,))
            raise AssertionError("a plain user's context on the login role inserted a lead")
        except psycopg2.Error as e:
            assert e.pgcode == "42501", (e.pgcode, e)
        conn.rollback()

        # Without a tenant, a user and even an "admin" role see nothing.
        cur = app_session(conn, None, w.uid["admin"], "admin")
        cur.execute("SELECT count(*) FROM leads")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM activities")
        assert cur.fetchone()[0] == 0
        conn.rollback()
        # A's user under B's tenant sees none of B's or A's leads.
        cur = app_session(conn, w.b.id, w.uid["admin"], "admin")
        cur.execute("SELECT count(*) FROM leads WHERE tenant_id <> %s", (w.b.id,))
        assert cur.fetchone()[0] == 0
        conn.rollback()
    finally:
        conn.close()
    # Everything above was rolled back.
    assert lead_row(ctx, lid)[0] == "db-level lead"
    assert activity_row(ctx, act["id"]) == ("note", "db-level note")


# --------------------------------------------------------------------------
# ownership rules


@test
def assignee_cannot_reassign_but_creator_can(ctx):
    w = world(ctx)
    a = w.a.key
    lead = shared_lead(ctx, w, "reassign me")
    lid = lead["id"]
    before = lead_row(ctx, lid)

    for target in (w.uid["unrelated"], w.uid["admin"], None):
        r = call(ctx, "PATCH", "/v1/leads/" + lid, a, w.tok["assignee"],
                 {"assignedTo": target, "name": "stolen"})
        assert_error(r, 403, "forbidden")
        assert lead_row(ctx, lid) == before, target
    # Keeping the assignment while editing is fine.
    r = call(ctx, "PATCH", "/v1/leads/" + lid, a, w.tok["assignee"],
             {"assignedTo": w.uid["assignee"], "name": "kept"})
    assert r.status == 200 and r.json["assignedTo"] == w.uid["assignee"], r

    # The creator can reassign; visibility follows at once.
    r = call(ctx, "PATCH", "/v1/leads/" + lid, a, w.tok["creator"],
             {"assignedTo": w.uid["unrelated"]})
    assert r.status == 200 and r.json["assignedTo"] == w.uid["unrelated"], r
    assert call(ctx, "GET", "/v1/leads/" + lid, a, w.tok["unrelated"]).status == 200
    assert_error(call(ctx, "GET", "/v1/leads/" + lid, a, w.tok["assignee"]), 404,
                 "lead_not_found")
    assert call(ctx, "GET", "/v1/leads/" + lid, a, w.tok["creator"]).status == 200
    # The new assignee (not the creator) cannot pass it on either.
    r = call(ctx, "PATCH", "/v1/leads/" + lid, a, w.tok["unrelated"],
             {"assignedTo": w.uid["assignee"]})
    assert_error(r, 403, "forbidden")
    assert lead_row(ctx, lid)[2] == w.uid["unrelated"]
    # The creator can unassign and hand it back; an admin can move it anywhere.
    r = call(ctx, "PATCH", "/v1/leads/" + lid, a, w.tok["creator"], {"assignedTo": None})
    assert r.status == 200 and r.json["assignedTo"] is None, r
    r = call(ctx, "PATCH", "/v1/leads/" + lid, a, w.admin_tok, {"assignedTo": w.uid["assignee"]})
    assert r.status == 200 and r.json["assignedTo"] == w.uid["assignee"], r
    r = call(ctx, "PATCH", "/v1/leads/" + lid, a, None, {"assignedTo": w.uid["unrelated"]})
    assert r.status == 200 and r.json["assignedTo"] == w.uid["unrelated"], r
    # A user may create a lead for someone else and still sees it (creator).
    r = call(ctx, "POST", "/v1/leads", a, w.tok["assignee"],
             {"name": "made for another", "assignedTo": w.uid["creator"]})
    assert r.status == 201, r
    assert r.json["createdBy"] == w.uid["assignee"] and r.json["assignedTo"] == w.uid["creator"]
    assert call(ctx, "GET", "/v1/leads/" + r.json["id"], a, w.tok["assignee"]).status == 200
    assert call(ctx, "GET", "/v1/leads/" + r.json["id"], a, w.tok["creator"]).status == 200


@test
def created_by_is_set_by_the_database(ctx):
    w = world(ctx)
    a = w.a.key
    for actor, tok, expect in (("integration", None, None),
                               ("admin", w.admin_tok, w.uid["admin"]),
                               ("creator", w.tok["creator"], w.uid["creator"])):
        r = call(ctx, "POST", "/v1/leads", a, tok, {"name": "made by " + actor})
        assert r.status == 201, r
        assert r.json["createdBy"] == expect, (actor, r.json)
        assert lead_row(ctx, r.json["id"])[3] == expect, actor
    lead = shared_lead(ctx, w, "createdBy fixed")
    before = lead_row(ctx, lead["id"])
    count = ctx.count_leads(w.a.id)
    for tok in (None, w.admin_tok, w.tok["creator"]):
        for field in ("createdBy", "created_by"):
            r = call(ctx, "POST", "/v1/leads", a, tok, {"name": "forged", field: w.uid["assignee"]})
            assert_error(r, 400, "unknown_field", field)
            r = call(ctx, "PATCH", "/v1/leads/" + lead["id"], a, tok, {field: w.uid["unrelated"]})
            assert_error(r, 400, "unknown_field", field)
    assert ctx.count_leads(w.a.id) == count
    assert lead_row(ctx, lead["id"]) == before


@test
def assigned_to_must_be_a_user_of_the_same_tenant(ctx):
    w = world(ctx)
    a = w.a.key
    lead = shared_lead(ctx, w, "fk target")
    before = lead_row(ctx, lead["id"])
    count = ctx.count_leads(w.a.id)
    strangers = (w.b.admin_id, str(uuid.uuid4()))
    for tok in (None, w.admin_tok, w.tok["creator"]):
        for stranger in strangers:
            r = call(ctx, "POST", "/v1/leads", a, tok, {"name": "bad ref", "assignedTo": stranger})
            assert_error(r, 400, "invalid_reference")
            r = call(ctx, "PATCH", "/v1/leads/" + lead["id"], a, tok,
                     {"assignedTo": stranger, "name": "bad ref"})
            assert_error(r, 400, "invalid_reference")
    assert ctx.count_leads(w.a.id) == count
    assert lead_row(ctx, lead["id"]) == before
    # B's admin is still only B's.
    assert owner_rows(ctx, "SELECT count(*) FROM leads WHERE assigned_to = %s",
                      (w.b.admin_id,))[0][0] == 0
    # The foreign key includes tenant_id.
    rows = owner_rows(ctx,
                      "SELECT array_agg(a.attname::text ORDER BY k.ord)"
                      " FROM pg_constraint c"
                      " CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY k(attnum, ord)"
                      " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum"
                      " WHERE c.conrelid = 'leads'::regclass AND c.contype = 'f'"
                      " AND c.confrelid = 'users'::regclass GROUP BY c.oid")
    assert ["tenant_id", "assigned_to"] in [r[0] for r in rows], rows


@test
def policies_are_a_restrictive_tenant_wall_and_a_permissive_role_rule(ctx):
    rows = owner_rows(ctx, "SELECT tablename::text, policyname::text, permissive, cmd, qual,"
                           " with_check, roles::text[] FROM pg_policies"
                           " WHERE tablename IN ('leads', 'activities')")
    by_table = {}
    for table, name, permissive, cmd, qual, check, roles in rows:
        if (table, name) == ("leads", "leads_role_select"):
            # Reads (0016): the login role (integration key, admins) reads
            # the whole tenant; tekup_app_user has the user rule below.
            assert (roles, qual, check) == (["tekup_app"], "true", None), (roles, qual, check)
            continue
        if (table, name) == ("leads", "leads_user_select"):
            assert roles == ["tekup_app_user"], roles
            assert qual == ("((assigned_to = current_app_user_id()) OR"
                            " (created_by = current_app_user_id()))"), qual
        else:
            assert roles == ["public"], (table, name, roles)
        by_table.setdefault(table, []).append((name, permissive, cmd, qual or "", check or ""))
    # leads: lead_access(...) on writes; on reads the user rule of 0016.
    for table, rule in (("leads", ("lead_access(created_by, assigned_to)",
                                   "current_app_user_id()")),
                        ("activities", ("activity_lead_visible(",))):
        pols = by_table.get(table, [])
        walls = [p for p in pols if p[1] == "RESTRICTIVE"]
        assert walls, (table, pols)
        tenant_fn = "lead_wall_tenant_id()" if table == "leads" else "current_tenant_id()"
        assert any(p[2] == "ALL" and tenant_fn in p[3] and tenant_fn in p[4]
                   for p in walls), (table, walls)
        permissive = [p for p in pols if p[1] == "PERMISSIVE"]
        assert permissive, (table, pols)
        # Every permissive policy carries the role rule: none of them is a
        # bare tenant check that would be OR-ed with it and void it.
        for name, _, cmd, qual, check in permissive:
            assert any(r in qual + check for r in rule), (table, name, qual, check)
        cmds = {p[2] for p in permissive}
        assert cmds == {"ALL"} or {"SELECT", "INSERT", "UPDATE", "DELETE"} <= cmds, cmds
    forced = owner_rows(ctx, "SELECT relname::text, relrowsecurity, relforcerowsecurity"
                             " FROM pg_class WHERE relname IN ('leads', 'activities', 'users',"
                             " 'tenant_users', 'sessions', 'login_failures') AND relkind = 'r'")
    assert len(forced) == 6, forced
    for relname, enabled, force in forced:
        assert enabled and force, relname


@test
def a_schema_without_the_user_role_is_found_at_start_and_plain_users_fail_closed(ctx):
    """serve on a schema without 0016's user policy (a binary newer than its
    schema, serve --no-migrate) warns at start and leaves plain users on the
    login role.  Where the leads wall of 0016 is present (here: only the
    policy is gone), that context reads no lead at all - never more than
    the user rule allows; admins and the integration are unaffected."""
    w = world(ctx)
    lead = shared_lead(ctx, w, "schema probe")["id"]
    rename = "ALTER POLICY %s ON leads RENAME TO %s"
    owner_rows(ctx, rename % ("leads_user_select", "leads_user_select_gone"))
    try:
        srv = Server(ctx)
        try:
            assert "the schema has no tekup_app_user" in srv.output()
            for actor, tok, sees in (("integration", None, True), ("admin", w.admin_tok, True),
                                     ("assignee", w.tok["assignee"], False)):
                headers = {"Authorization": "Bearer " + tok} if tok else {}
                r = ctx.http("GET", "/v1/leads?limit=100", key=w.a.key, port=srv.port,
                             headers=headers)
                assert r.status == 200, (actor, r)
                got = {row["id"] for row in r.json["data"]}
                assert (lead in got) == sees and (sees or got == set()), (actor, got)
        finally:
            assert srv.stop() == 0
    finally:
        owner_rows(ctx, rename % ("leads_user_select_gone", "leads_user_select"))
    # Restored: the shared server (which found the policy at start) serves
    # the assignee by the rule again.
    r = call(ctx, "GET", "/v1/leads?limit=100", w.a.key, w.tok["assignee"])
    assert r.status == 200 and lead in {row["id"] for row in r.json["data"]}, r
