"""test_activities.py - the activities API (issue 5, section 4).

GET/POST /v1/leads/{id}/activities and PATCH/DELETE /v1/activities/{id}:

  - create with type note|call|email|meeting, body and occurredAt (ISO 8601,
    answered in UTC); status_change (and anything else) -> 400; unknown
    fields, bad bodies -> 400; nothing written on a refusal; userId is the
    signed-in user (null for the integration);
  - list newest first (created_at DESC, id DESC) with cursor pagination:
    every page size walks all activities exactly once in the owner's order,
    also across rows with identical created_at; bad limit/cursor -> 400;
  - PATCH changes type/body/occurredAt; a recorded status_change is not
    editable; DELETE -> 204 then 404;
  - adding an activity bumps the lead's lastActivityAt (never backwards);
  - changing a lead's status via PATCH records a status_change activity
    "NEW -> CONTACTED" by the acting user; no change, no activity;
  - the activities of a lead the caller cannot see -> 404 lead_not_found,
    identical to an absent lead; activities of a visible lead follow the
    lead's assignment; bad ids -> 400 invalid_id; unknown activity -> 404
    activity_not_found.
"""
import datetime
import time
import uuid

from harness import call, login, new_org, owner, assert_error, test

PASSWORD = "correct horse 9"
ACTIVITY_KEYS = {"id", "tenantId", "leadId", "userId", "type", "body", "occurredAt",
                 "createdAt"}


# --------------------------------------------------------------------------
# helpers


def parse_ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)


_world = None


class World:
    pass


def world(ctx):
    """A tenant, a signed-in admin and a signed-in plain user (built once)."""
    global _world
    if _world is None:
        w = World()
        w.org = new_org(ctx, "Activities")
        w.admin_tok = login(ctx, w.org.key, w.org.admin_email)
        addr = "worker-%s@example.com" % uuid.uuid4().hex[:8]
        r = call(ctx, "POST", "/v1/users", w.org.key, None,
                 {"email": addr, "name": "Worker", "password": PASSWORD})
        assert r.status == 201, r
        w.user_id = r.json["id"]
        w.user_tok = login(ctx, w.org.key, addr)
        _world = w
    return _world


def new_lead(ctx, w, name="activity lead", token=None, **extra):
    body = {"name": name}
    body.update(extra)
    r = call(ctx, "POST", "/v1/leads", w.org.key, token, body)
    assert r.status == 201, r
    return r.json


def add(ctx, w, lead_id, token=None, **body):
    body.setdefault("type", "note")
    r = call(ctx, "POST", "/v1/leads/%s/activities" % lead_id, w.org.key, token, body)
    assert r.status == 201, r
    return r.json


def count(ctx, lead_id):
    return owner(ctx, "SELECT count(*) FROM activities WHERE lead_id = %s", (lead_id,))[0][0]


def owner_order(ctx, lead_id):
    return [r[0] for r in owner(ctx, "SELECT id::text FROM activities WHERE lead_id = %s"
                                     " ORDER BY created_at DESC, id DESC", (lead_id,))]


def walk(ctx, w, lead_id, limit, token=None):
    """All pages of the activity list; returns (items, page sizes)."""
    items, sizes, cursor = [], [], None
    for _ in range(200):
        path = "/v1/leads/%s/activities?limit=%d" % (lead_id, limit)
        if cursor is not None:
            path += "&cursor=" + cursor
        r = call(ctx, "GET", path, w.org.key, token)
        assert r.status == 200, r
        assert set(r.json) == {"data", "nextCursor"}, r.json
        items += r.json["data"]
        sizes.append(len(r.json["data"]))
        cursor = r.json["nextCursor"]
        if cursor is None:
            return items, sizes
    raise AssertionError("pagination did not end")


def lead_last_activity(ctx, lead_id):
    return owner(ctx, "SELECT last_activity_at FROM leads WHERE id = %s", (lead_id,))[0][0]


# --------------------------------------------------------------------------


@test
def create_activities_and_validation(ctx):
    w = world(ctx)
    lead = new_lead(ctx, w)
    lid = lead["id"]
    for kind in ("note", "call", "email", "meeting"):
        a = add(ctx, w, lid, type=kind, body="a %s" % kind)
        assert set(a) == ACTIVITY_KEYS, a
        assert (a["type"], a["body"], a["leadId"], a["tenantId"]) == \
            (kind, "a %s" % kind, lid, w.org.id), a
        assert a["userId"] is None, a  # the integration
        assert abs(parse_ts(a["occurredAt"]) - parse_ts(a["createdAt"])) < \
            datetime.timedelta(seconds=1), a
    # occurredAt is stored as given and answered in UTC.
    a = add(ctx, w, lid, type="meeting", occurredAt="2025-03-04T10:20:30+02:00")
    assert a["occurredAt"] == "2025-03-04T08:20:30.000000Z" and a["body"] is None, a
    a = add(ctx, w, lid, type="call", body="signed in", occurredAt="2025-03-04T08:20:30.5Z")
    assert a["occurredAt"] == "2025-03-04T08:20:30.500000Z", a
    # A signed-in user's activity carries their id.
    a = add(ctx, w, lid, w.admin_tok, type="email", body="by the admin")
    assert a["userId"] == w.org.admin_id, a
    assert owner(ctx, "SELECT user_id::text, type, body FROM activities WHERE id = %s",
                 (a["id"],)) == [(w.org.admin_id, "email", "by the admin")]

    n = count(ctx, lid)
    path = "/v1/leads/%s/activities" % lid
    for body, code, field in (
            ({"type": "status_change", "body": "NEW -> WON"}, "validation_error", "type"),
            ({"type": "sms"}, "validation_error", "type"),
            ({"type": "NOTE"}, "validation_error", "type"),
            ({"type": ""}, "validation_error", "type"),
            ({"type": 3}, "validation_error", "type"),
            ({"body": "no type"}, "validation_error", "type"),
            ({"type": None}, "validation_error", "type"),
            ({"type": "note", "body": 42}, "validation_error", "body"),
            ({"type": "note", "body": "x" * 10001}, "validation_error", "body"),
            ({"type": "note", "occurredAt": "yesterday"}, "validation_error", "occurredAt"),
            ({"type": "note", "occurredAt": "2025-13-45T00:00:00Z"}, "validation_error",
             "occurredAt"),
            ({"type": "note", "userId": w.org.admin_id}, "unknown_field", "userId"),
            ({"type": "note", "leadId": lid}, "unknown_field", "leadId"),
            ({"type": "note", "tenantId": w.org.id}, "unknown_field", "tenantId"),
            ({"type": "note", "createdAt": "2025-01-01T00:00:00Z"}, "unknown_field",
             "createdAt")):
        r = call(ctx, "POST", path, w.org.key, None, body)
        assert_error(r, 400, code, field)
    for raw in ("", "[]", "{not json"):
        r = call(ctx, "POST", path, w.org.key, None, raw)
        assert_error(r, 400, "invalid_json")
    assert count(ctx, lid) == n
    # The longest body is accepted.
    add(ctx, w, lid, body="y" * 10000)


@test
def list_is_newest_first_with_cursor_pagination(ctx):
    w = world(ctx)
    lid = new_lead(ctx, w, "paged")["id"]
    other = new_lead(ctx, w, "not this one")["id"]
    add(ctx, w, other, body="elsewhere")
    made = [add(ctx, w, lid, body="api %d" % i)["id"] for i in range(9)]
    # Six rows with one identical created_at: order falls back to id DESC.
    owner(ctx, "INSERT INTO activities (tenant_id, lead_id, type, body, created_at)"
               " SELECT %s, %s, 'call', 'tie ' || g, now() - interval '1 hour'"
               " FROM generate_series(1, 6) g", (w.org.id, lid))
    expected = owner_order(ctx, lid)
    assert len(expected) == 15
    # Newest first: the API-made ones, last made first, then the ties.
    assert expected[:9] == made[::-1]
    for limit in (1, 2, 4, 6, 14, 15, 16, 100):
        items, sizes = walk(ctx, w, lid, limit)
        ids = [a["id"] for a in items]
        assert ids == expected, (limit, ids, expected)
        assert all(s == limit for s in sizes[:-1]) and 1 <= sizes[-1] <= limit, (limit, sizes)
        stamps = [a["createdAt"] for a in items]
        assert stamps == sorted(stamps, reverse=True), limit
        assert all(a["leadId"] == lid for a in items)
    # The default page is 20.
    r = call(ctx, "GET", "/v1/leads/%s/activities" % lid, w.org.key)
    assert r.status == 200 and len(r.json["data"]) == 15 and r.json["nextCursor"] is None, r
    # A cursor is a position: activities added meanwhile do not shift later pages.
    r = call(ctx, "GET", "/v1/leads/%s/activities?limit=5" % lid, w.org.key)
    cursor = r.json["nextCursor"]
    add(ctx, w, lid, body="newer than the cursor")
    r = call(ctx, "GET", "/v1/leads/%s/activities?limit=5&cursor=%s" % (lid, cursor), w.org.key)
    assert [a["id"] for a in r.json["data"]] == expected[5:10], r.json
    # An empty lead has an empty list.
    empty = new_lead(ctx, w, "empty")["id"]
    r = call(ctx, "GET", "/v1/leads/%s/activities" % empty, w.org.key)
    assert r.status == 200 and r.json == {"data": [], "nextCursor": None}, r

    base = "/v1/leads/%s/activities?" % lid
    for q in ("limit=0", "limit=101", "limit=abc", "limit=-1", "limit=1.5"):
        assert_error(call(ctx, "GET", base + q, w.org.key), 400, "invalid_parameter", "limit")
    r = call(ctx, "GET", "/v1/leads?sort=name&cursor=&limit=1", w.org.key)
    assert r.status == 200 and r.json["nextCursor"], r
    lead_cursor = r.json["nextCursor"]
    for q in ("cursor=garbage", "cursor=" + "A" * 40, "cursor=" + lead_cursor):
        assert_error(call(ctx, "GET", base + q, w.org.key), 400, "invalid_cursor", "cursor")
    assert_error(call(ctx, "GET", base + "sort=oldest", w.org.key), 400, "unknown_parameter")


@test
def patch_and_delete_activities(ctx):
    w = world(ctx)
    lid = new_lead(ctx, w, "edited")["id"]
    a = add(ctx, w, lid, type="note", body="draft")
    r = call(ctx, "PATCH", "/v1/activities/" + a["id"], w.org.key, None,
             {"type": "call", "body": "final", "occurredAt": "2025-06-01T12:00:00Z"})
    assert r.status == 200, r
    assert (r.json["id"], r.json["type"], r.json["body"], r.json["occurredAt"]) == \
        (a["id"], "call", "final", "2025-06-01T12:00:00.000000Z"), r.json
    assert r.json["createdAt"] == a["createdAt"] and r.json["userId"] is None, r.json
    r = call(ctx, "PATCH", "/v1/activities/" + a["id"].upper(), w.org.key, w.admin_tok,
             {"body": "by admin"})
    assert r.status == 200 and r.json["body"] == "by admin" and r.json["type"] == "call", r
    row = owner(ctx, "SELECT type, body FROM activities WHERE id = %s", (a["id"],))
    assert row == [("call", "by admin")]
    for body, code, field in (({}, "validation_error", None),
                              ({"type": "status_change"}, "validation_error", "type"),
                              ({"type": "fax"}, "validation_error", "type"),
                              ({"occurredAt": "soon"}, "validation_error", "occurredAt"),
                              ({"leadId": lid}, "unknown_field", "leadId")):
        r = call(ctx, "PATCH", "/v1/activities/" + a["id"], w.org.key, None, body)
        assert_error(r, 400, code, field)
    assert owner(ctx, "SELECT type, body FROM activities WHERE id = %s", (a["id"],)) == row

    # A recorded status change is history: it cannot be rewritten.
    r = call(ctx, "PATCH", "/v1/leads/" + lid, w.org.key, None, {"status": "CONTACTED"})
    assert r.status == 200, r
    (sc,), = owner(ctx, "SELECT id::text FROM activities WHERE lead_id = %s"
                        " AND type = 'status_change'", (lid,))
    r = call(ctx, "PATCH", "/v1/activities/" + sc, w.org.key, None, {"body": "rewritten"})
    assert r.status in (403, 404, 409), r
    assert owner(ctx, "SELECT type, body FROM activities WHERE id = %s", (sc,)) == \
        [("status_change", "NEW -> CONTACTED")]

    r = call(ctx, "DELETE", "/v1/activities/" + a["id"], w.org.key, None)
    assert r.status == 204 and r.body == "", r
    assert owner(ctx, "SELECT count(*) FROM activities WHERE id = %s", (a["id"],)) == [(0,)]
    assert_error(call(ctx, "DELETE", "/v1/activities/" + a["id"], w.org.key), 404,
                 "activity_not_found")
    assert_error(call(ctx, "PATCH", "/v1/activities/" + a["id"], w.org.key, None,
                      {"body": "x"}), 404, "activity_not_found")
    r = call(ctx, "GET", "/v1/leads/%s/activities" % lid, w.org.key)
    assert a["id"] not in [x["id"] for x in r.json["data"]]

    # Ids.
    for bad in ("nope", "123", a["id"] + "a", a["id"][:-1]):
        assert_error(call(ctx, "PATCH", "/v1/activities/" + bad, w.org.key, None,
                          {"body": "x"}), 400, "invalid_id", "id")
        assert_error(call(ctx, "DELETE", "/v1/activities/" + bad, w.org.key), 400,
                     "invalid_id", "id")
        assert_error(call(ctx, "GET", "/v1/leads/%s/activities" % bad, w.org.key), 400,
                     "invalid_id", "id")
        assert_error(call(ctx, "POST", "/v1/leads/%s/activities" % bad, w.org.key, None,
                          {"type": "note"}), 400, "invalid_id", "id")
    ghost = str(uuid.uuid4())
    assert_error(call(ctx, "PATCH", "/v1/activities/" + ghost, w.org.key, None, {"body": "x"}),
                 404, "activity_not_found")
    assert_error(call(ctx, "DELETE", "/v1/activities/" + ghost, w.org.key), 404,
                 "activity_not_found")
    assert_error(call(ctx, "GET", "/v1/leads/%s/activities" % ghost, w.org.key), 404,
                 "lead_not_found")
    n = owner(ctx, "SELECT count(*) FROM activities")[0][0]
    assert_error(call(ctx, "POST", "/v1/leads/%s/activities" % ghost, w.org.key, None,
                      {"type": "note"}), 404, "lead_not_found")
    assert owner(ctx, "SELECT count(*) FROM activities")[0][0] == n
    # An activity id is not a lead id and vice versa.
    other = add(ctx, w, lid, body="kept")
    assert_error(call(ctx, "GET", "/v1/leads/%s/activities" % other["id"], w.org.key), 404,
                 "lead_not_found")
    assert_error(call(ctx, "DELETE", "/v1/activities/" + lid, w.org.key), 404,
                 "activity_not_found")


@test
def adding_an_activity_bumps_last_activity_at(ctx):
    w = world(ctx)
    lead = new_lead(ctx, w, "bumped", token=w.user_tok)  # the user's own lead
    lid = lead["id"]
    t0 = lead_last_activity(ctx, lid)
    assert parse_ts(lead["lastActivityAt"]) == t0
    time.sleep(0.02)
    a = add(ctx, w, lid, w.user_tok, type="call")
    t1 = lead_last_activity(ctx, lid)
    assert t1 > t0 and t1 == parse_ts(a["occurredAt"]), (t0, t1, a)
    r = call(ctx, "GET", "/v1/leads/" + lid, w.org.key, w.user_tok)
    assert parse_ts(r.json["lastActivityAt"]) == t1, r.json
    # An activity that happened earlier does not move it backwards.
    add(ctx, w, lid, type="meeting", occurredAt="2020-01-01T00:00:00Z")
    assert lead_last_activity(ctx, lid) == t1
    # Another lead is not touched.
    other = new_lead(ctx, w, "untouched")
    before = lead_last_activity(ctx, other["id"])
    add(ctx, w, lid, type="note")
    assert lead_last_activity(ctx, other["id"]) == before
    assert lead_last_activity(ctx, lid) > t1


@test
def status_change_is_recorded_as_an_activity(ctx):
    w = world(ctx)
    lead = new_lead(ctx, w, "moving", token=w.user_tok)
    lid = lead["id"]
    assert lead["status"] == "NEW"
    assert count(ctx, lid) == 0  # creating is not a change
    steps = [(w.user_tok, "CONTACTED", w.user_id), (None, "QUALIFIED", None),
             (w.admin_tok, "WON", w.org.admin_id)]
    prev = "NEW"
    for tok, status, who in steps:
        r = call(ctx, "PATCH", "/v1/leads/" + lid, w.org.key, tok, {"status": status})
        assert r.status == 200 and r.json["status"] == status, r
        r = call(ctx, "GET", "/v1/leads/%s/activities?limit=1" % lid, w.org.key, tok)
        newest = r.json["data"][0]
        assert (newest["type"], newest["body"], newest["userId"]) == \
            ("status_change", "%s -> %s" % (prev, status), who), newest
        # The recorded change also counts as activity on the lead.
        assert lead_last_activity(ctx, lid) >= parse_ts(newest["occurredAt"])
        prev = status
    # Not a change: same status, or other fields only.
    n = count(ctx, lid)
    assert call(ctx, "PATCH", "/v1/leads/" + lid, w.org.key, None, {"status": "WON"}).status == 200
    assert call(ctx, "PATCH", "/v1/leads/" + lid, w.org.key, None, {"name": "renamed"}).status \
        == 200
    assert count(ctx, lid) == n == 3
    bodies = [a["body"] for a in walk(ctx, w, lid, 100)[0]]
    assert bodies == ["QUALIFIED -> WON", "CONTACTED -> QUALIFIED", "NEW -> CONTACTED"], bodies
    # A lead created in another status has no history until it changes.
    lost = new_lead(ctx, w, "born lost", status="LOST")
    assert count(ctx, lost["id"]) == 0


@test
def activities_of_an_invisible_lead_are_not_found(ctx):
    w = world(ctx)
    k, u = w.org.key, w.user_tok
    lid = new_lead(ctx, w, "not the user's")["id"]
    a = add(ctx, w, lid, body="private")
    ghost = str(uuid.uuid4())

    def hidden():
        n = count(ctx, lid)
        for method, path, body in (("GET", "/v1/leads/%s/activities", None),
                                   ("POST", "/v1/leads/%s/activities", {"type": "note"})):
            r = call(ctx, method, path % lid, k, u, body)
            assert_error(r, 404, "lead_not_found")
            assert r.json == call(ctx, method, path % ghost, k, u, body).json
        for method, body in (("PATCH", {"body": "hijacked"}), ("DELETE", None)):
            r = call(ctx, method, "/v1/activities/" + a["id"], k, u, body)
            assert_error(r, 404, "activity_not_found")
            assert r.json == call(ctx, method, "/v1/activities/" + ghost, k, u, body).json
        assert count(ctx, lid) == n
        assert owner(ctx, "SELECT body FROM activities WHERE id = %s", (a["id"],)) == \
            [("private",)]

    hidden()
    # Assigned to the user: the lead and its whole history become visible.
    r = call(ctx, "PATCH", "/v1/leads/" + lid, k, None, {"assignedTo": w.user_id})
    assert r.status == 200, r
    items, _ = walk(ctx, w, lid, 100, token=u)
    assert a["id"] in [x["id"] for x in items], items
    b = add(ctx, w, lid, u, body="by the assignee")
    assert b["userId"] == w.user_id
    # Unassigned again: hidden again, including what the user wrote.
    r = call(ctx, "PATCH", "/v1/leads/" + lid, k, None, {"assignedTo": None})
    assert r.status == 200, r
    hidden()
    r = call(ctx, "DELETE", "/v1/activities/" + b["id"], k, u)
    assert_error(r, 404, "activity_not_found")
    # Another tenant's key sees none of it.
    other = new_org(ctx, "Activities other")
    r = call(ctx, "GET", "/v1/leads/%s/activities" % lid, other.key)
    assert_error(r, 404, "lead_not_found")
    r = call(ctx, "DELETE", "/v1/activities/" + a["id"], other.key)
    assert_error(r, 404, "activity_not_found")
    assert count(ctx, lid) == 2
