"""test_isolation.py - tenant isolation over HTTP (issue 2, sections 6 and 11).

Three tenants (A, B, C), each with sample leads and two leads made through
the API carrying values unique to that tenant (name, email, company, source,
customFields.priority, assignedTo).  With A's key every endpoint is tried
against B's and C's data:

  - GET / PATCH / DELETE of B's lead ids: 404 lead_not_found, identical to
    the answer for an id that does not exist, and B's rows unchanged (seen
    by the owner, who bypasses RLS);
  - list filters that match only B's rows (email, q, source, priority,
    assignedTo), in both paginations: empty, total 0;
  - B's activities (list/add on B's lead, PATCH/DELETE of B's activity) and
    B's users (GET/PATCH/DELETE by id; the list) with A's key: 404 exactly
    like a missing id, or only A's rows - and nothing of B changes;
  - assignedTo is a foreign key (tenant_id, assigned_to) -> users: A cannot
    assign its lead to B's user (nor to an id that is no user at all):
    400 invalid_reference and nothing written;
  - a keyset cursor obtained by B: positions inside A's rows only (checked
    against the owner's view of A's rows);
  - stats count only the caller's leads;
  - B's ids in upper case, with If-Match preconditions (never 412): 404;
  - forged tenant fields in bodies (tenantId, tenant_id, id): 400
    unknown_field and nothing written anywhere; tenant selectors as query
    parameters: 400 unknown_parameter;
  - client-sent X-Tenant-ID / X-Tenant-Name headers are ignored; two keys in
    one request never mix tenants; near-miss variants of B's key are
    unknown keys; X-Tenant-Name is percent-encoded (no header injection);
  - a revoked or expired key, a suspended tenant, and an archived tenant:
    401 invalid_tenant_key within 5 s (the cache bound), the same error as
    an unknown key, data untouched;
  - ~200 interleaved concurrent requests of A, B and C over the pooled
    connections - on the suite's server, on a server with a pool of ONE
    connection (every tenant's requests on the same PostgreSQL session), and
    in --pgbouncer mode: each response holds only its own tenant's rows (no
    SET LOCAL context leaks between pooled requests), and afterwards no
    pooled connection is left inside a transaction (pg_stat_activity).
"""
import concurrent.futures
import time
import urllib.parse
import uuid

from harness import Server, assert_error, test

STATUSES = ("NEW", "CONTACTED", "QUALIFIED", "PROPOSAL", "WON", "LOST")
REVOCATION_BOUND_S = 5.5  # the spec's 5 s plus scheduling slack


# --------------------------------------------------------------------------
# helpers


class World:
    """Tenants A, B, C and the unique markers of their API-made leads."""


def owner_query(ctx, sql, params=()):
    c = ctx.owner_db()
    try:
        cur = c.cursor()
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None
    finally:
        c.close()


def owner_exec(ctx, sql, params=()):
    c = ctx.owner_db()
    try:
        c.cursor().execute(sql, params)
    finally:
        c.close()


def lead_ids(ctx, tenant_id):
    return [r[0] for r in owner_query(
        ctx, "SELECT id::text FROM leads WHERE tenant_id = %s ORDER BY id", (tenant_id,))]


def snapshot(ctx, caller=None):
    """Every row of every tenant-scoped table, as the owner sees it.  With
    caller (a tenant id), that tenant's own audit_logs rows are left out: a
    server may record a refused attempt in the caller's audit trail, but
    never anything of another tenant's."""
    snap = {}
    for table in ("leads", "activities", "users", "tenant_users", "tenant_settings",
                  "sessions", "login_failures"):
        snap[table] = owner_query(
            ctx, "SELECT row_to_json(t)::text FROM %s t ORDER BY 1" % table)
    snap["audit_logs"] = owner_query(
        ctx, "SELECT row_to_json(t)::text FROM audit_logs t"
             " WHERE tenant_id IS DISTINCT FROM %s ORDER BY 1", (caller,))
    snap["tenants"] = owner_query(
        ctx, "SELECT id::text, name, slug, status, updated_at::text FROM tenants ORDER BY id")
    return snap


def tenant_snapshot(ctx, tenant_id):
    return owner_query(ctx, "SELECT row_to_json(l)::text FROM leads l WHERE tenant_id = %s"
                            " ORDER BY id", (tenant_id,))


def make_user(ctx, tenant_id, email, role="user"):
    """A user of the tenant (made by the owner): assignedTo must name one."""
    rows = owner_query(ctx, "INSERT INTO users (tenant_id, email, name) VALUES (%s, %s, %s)"
                            " RETURNING id::text", (tenant_id, email, "User " + email))
    uid = rows[0][0]
    owner_exec(ctx, "INSERT INTO tenant_users (tenant_id, user_id, role) VALUES (%s, %s, %s)",
               (tenant_id, uid, role))
    return uid


def qs(**params):
    return urllib.parse.urlencode(params)


def world(ctx):
    w = getattr(ctx, "_isolation_world", None)
    if w is not None:
        return w
    w = World()
    tag = uuid.uuid4().hex[:10]
    w.tag = tag
    # Different sample sizes so per-tenant counts differ.
    w.a = ctx.new_tenant(name="Iso Alpha %s" % tag, sample_leads=4)
    w.b = ctx.new_tenant(name="Iso Bravo %s" % tag, sample_leads=9)
    w.c = ctx.new_tenant(name="Iso Charlie %s" % tag, sample_leads=2)
    w.marks = {}
    for t, letter in ((w.a, "a"), (w.b, "b"), (w.c, "c")):
        m = {
            "token": "uniq%s%s" % (letter, tag),
            "company": "Company%s%s" % (letter.upper(), tag),
            "domain": "only-%s-%s.example" % (letter, tag),
            "source": "src-%s-%s" % (letter, tag),
            "priority": "prio-%s-%s" % (letter, tag),
        }
        m["email"] = "person@" + m["domain"]
        # A real user of this tenant (assignedTo is a foreign key into users).
        m["assignedTo"] = make_user(ctx, t.id, "owner-%s-%s@example.com" % (letter, tag))
        body = {"name": "Person %s" % m["token"], "email": m["email"], "company": m["company"],
                "source": m["source"], "status": "QUALIFIED", "assignedTo": m["assignedTo"],
                "customFields": {"priority": m["priority"]}}
        r = ctx.http("POST", "/v1/leads", key=t.key, body=body)
        assert r.status == 201, r
        assert r.json["tenantId"] == t.id, r
        assert r.json["assignedTo"] == m["assignedTo"], r
        m["lead"] = r.json
        r2 = ctx.http("POST", "/v1/leads", key=t.key,
                      body={"name": "Second %s" % letter.upper(), "status": "WON",
                            "source": "shared-source"})
        assert r2.status == 201, r2
        m["lead2"] = r2.json
        w.marks[t.id] = m
    ctx._isolation_world = w
    return w


def list_ids(resp):
    return [d["id"] for d in resp.json["data"]]


def wait_until_rejected(ctx, key, t0, path="/v1/leads?limit=1"):
    """Polls with key until 401; returns the seconds since t0.  Every answer
    before the 401 must be a 200 (the cached, still-valid key)."""
    while True:
        r = ctx.http("GET", path, key=key)
        elapsed = time.time() - t0
        if r.status == 401:
            assert_error(r, 401, "invalid_tenant_key")
            return elapsed, r
        assert r.status == 200, r
        assert elapsed < REVOCATION_BOUND_S, \
            "key still accepted %.2f s after it was invalidated" % elapsed
        time.sleep(0.1)


def unknown_key_error(ctx):
    r = ctx.http("GET", "/v1/leads", key="tk_" + uuid.uuid4().hex + uuid.uuid4().hex)
    assert_error(r, 401, "invalid_tenant_key")
    return r.json


# --------------------------------------------------------------------------
# reads, writes and deletes of another tenant's rows


@test
def get_other_tenants_lead_is_404_like_a_missing_one(ctx):
    w = world(ctx)
    missing = ctx.http("GET", "/v1/leads/" + str(uuid.uuid4()), key=w.a.key)
    assert_error(missing, 404, "lead_not_found")
    others = lead_ids(ctx, w.b.id) + lead_ids(ctx, w.c.id)
    assert len(others) == 11 + 4, others
    for lid in others:
        r = ctx.http("GET", "/v1/leads/" + lid, key=w.a.key)
        assert_error(r, 404, "lead_not_found")
        assert r.json == missing.json, "404 for another tenant's id differs from a missing id"
        assert r.header("ETag") is None, r.headers
        assert r.header("X-Tenant-ID") == w.a.id, r.headers
        assert w.b.id not in r.body and w.c.id not in r.body, r
    # Control: the owners themselves can read them.
    own = ctx.http("GET", "/v1/leads/" + w.marks[w.b.id]["lead"]["id"], key=w.b.key)
    assert own.status == 200 and own.json == w.marks[w.b.id]["lead"], own


@test
def patch_other_tenants_lead_is_404_and_changes_nothing(ctx):
    w = world(ctx)
    before = snapshot(ctx, w.a.id)
    a_user = w.marks[w.a.id]["assignedTo"]
    b_user = w.marks[w.b.id]["assignedTo"]
    for lid in lead_ids(ctx, w.b.id):
        for body, headers in (({"name": "hijacked"}, None),
                              ({"status": "LOST", "customFields": {"priority": "x"}}, None),
                              ({"assignedTo": str(uuid.uuid4())}, {"If-Match": '"1"'}),
                              ({"assignedTo": a_user}, None),   # a valid user - of A
                              ({"assignedTo": b_user}, None),   # a valid user of B
                              ({"assignedTo": None}, None),
                              ({"email": "evil@example.com"}, {"If-Match": '"999"'})):
            r = ctx.http("PATCH", "/v1/leads/" + lid, key=w.a.key, body=body, headers=headers)
            assert_error(r, 404, "lead_not_found")
    assert snapshot(ctx, w.a.id) == before


@test
def delete_other_tenants_lead_is_404_and_row_kept(ctx):
    w = world(ctx)
    before = snapshot(ctx, w.a.id)
    b_ids = lead_ids(ctx, w.b.id)
    for lid in b_ids + lead_ids(ctx, w.c.id):
        r = ctx.http("DELETE", "/v1/leads/" + lid, key=w.a.key)
        assert_error(r, 404, "lead_not_found")
    assert snapshot(ctx, w.a.id) == before
    for lid in b_ids:
        assert ctx.http("GET", "/v1/leads/" + lid, key=w.b.key).status == 200


@test
def other_tenants_lead_id_in_other_spellings_and_with_preconditions_is_404(ctx):
    w = world(ctx)
    before = snapshot(ctx, w.a.id)
    lid = w.marks[w.b.id]["lead"]["id"]
    # Upper case is the same UUID: B can read it that way, A cannot.
    assert ctx.http("GET", "/v1/leads/" + lid.upper(), key=w.b.key).status == 200
    for method, headers in (("GET", None), ("DELETE", None), ("DELETE", {"If-Match": '"99"'}),
                            ("DELETE", {"If-Match": '"1"'}), ("DELETE", {"If-Match": "*"})):
        r = ctx.http(method, "/v1/leads/" + lid.upper(), key=w.a.key, headers=headers)
        assert_error(r, 404, "lead_not_found")
        r = ctx.http(method, "/v1/leads/" + lid, key=w.a.key, headers=headers)
        assert_error(r, 404, "lead_not_found")
    # A stale If-Match on B's lead must not turn into 412 (that would reveal it exists).
    r = ctx.http("PATCH", "/v1/leads/" + lid, key=w.a.key, body={"name": "x"},
                 headers={"If-Match": '"42"'})
    assert_error(r, 404, "lead_not_found")
    assert snapshot(ctx, w.a.id) == before


@test
def other_tenants_activities_and_users_are_404_and_unchanged(ctx):
    w = world(ctx)
    # An activity of B on B's second lead (the first lead's JSON is compared
    # verbatim by other tests; an activity bumps lastActivityAt).
    b_lead = w.marks[w.b.id]["lead2"]["id"]
    r = ctx.http("POST", "/v1/leads/%s/activities" % b_lead, key=w.b.key,
                 body={"type": "note", "body": "secret of B %s" % w.tag})
    assert r.status == 201 and r.json["tenantId"] == w.b.id, r
    b_act = r.json
    b_user = w.marks[w.b.id]["assignedTo"]
    before = snapshot(ctx, w.a.id)
    missing_lead = str(uuid.uuid4())
    missing_act = str(uuid.uuid4())
    for path in ("/v1/leads/%s/activities", "/v1/leads/%s/activities?cursor=",
                 "/v1/leads/%s/activities?limit=100"):
        miss = ctx.http("GET", path % missing_lead, key=w.a.key)
        assert_error(miss, 404, "lead_not_found")
        r = ctx.http("GET", path % b_lead, key=w.a.key)
        assert_error(r, 404, "lead_not_found")
        assert r.json == miss.json and "secret" not in r.body, r
    miss = ctx.http("POST", "/v1/leads/%s/activities" % missing_lead, key=w.a.key,
                    body={"type": "call", "body": "x"})
    assert_error(miss, 404, "lead_not_found")
    r = ctx.http("POST", "/v1/leads/%s/activities" % b_lead, key=w.a.key,
                 body={"type": "call", "body": "x"})
    assert_error(r, 404, "lead_not_found")
    assert r.json == miss.json, r
    for method, body in (("PATCH", {"body": "hijacked"}), ("PATCH", {"type": "meeting"}),
                         ("DELETE", None)):
        miss = ctx.http(method, "/v1/activities/" + missing_act, key=w.a.key, body=body)
        assert_error(miss, 404, "activity_not_found")
        for aid in (b_act["id"], b_act["id"].upper()):
            r = ctx.http(method, "/v1/activities/" + aid, key=w.a.key, body=body)
            assert_error(r, 404, "activity_not_found")
            assert r.json == miss.json, r
    # Users: B's user by id is "no user"; A's list holds only A's users.
    for method, body in (("GET", None), ("PATCH", {"name": "hijacked"}),
                         ("PATCH", {"role": "admin"}), ("DELETE", None)):
        miss = ctx.http(method, "/v1/users/" + str(uuid.uuid4()), key=w.a.key, body=body)
        assert_error(miss, 404, "user_not_found")
        r = ctx.http(method, "/v1/users/" + b_user, key=w.a.key, body=body)
        assert_error(r, 404, "user_not_found")
        assert r.json == miss.json, r
    r = ctx.http("GET", "/v1/users", key=w.a.key)
    assert r.status == 200, r
    a_users = sorted(x[0] for x in owner_query(
        ctx, "SELECT id::text FROM users WHERE tenant_id = %s", (w.a.id,)))
    assert sorted(u["id"] for u in r.json["data"]) == a_users, r
    assert {u["tenantId"] for u in r.json["data"]} == {w.a.id}, r
    assert w.b.id not in r.body and b_user not in r.body, r
    assert snapshot(ctx, w.a.id) == before
    # Control: B sees its activity and its user.
    r = ctx.http("GET", "/v1/leads/%s/activities" % b_lead, key=w.b.key)
    assert r.status == 200 and b_act in r.json["data"], r
    r = ctx.http("GET", "/v1/users/" + b_user, key=w.b.key)
    assert r.status == 200 and r.json["id"] == b_user and r.json["tenantId"] == w.b.id, r


@test
def assigning_to_another_tenants_user_is_invalid_reference_and_writes_nothing(ctx):
    """assignedTo must be a user of the caller's tenant: B's user id (a real
    user, of another tenant) is treated exactly like an id that is no user
    at all - 400 invalid_reference, on create and on update - and nothing is
    written anywhere."""
    w = world(ctx)
    a_lead = w.marks[w.a.id]["lead"]
    b_user = w.marks[w.b.id]["assignedTo"]
    c_user = w.marks[w.c.id]["assignedTo"]
    before = snapshot(ctx, w.a.id)
    n_a = ctx.count_leads(w.a.id)
    for stranger in (b_user, c_user, str(uuid.uuid4())):
        for body in ({"name": "Bad assignee", "assignedTo": stranger},
                     {"name": "Bad assignee", "assignedTo": stranger.upper()},
                     {"name": "Bad assignee", "status": "WON", "assignedTo": stranger}):
            r = ctx.http("POST", "/v1/leads", key=w.a.key, body=body)
            assert_error(r, 400, "invalid_reference")
            assert w.b.id not in r.body and w.c.id not in r.body and stranger not in r.body, r
        for body, headers in (({"assignedTo": stranger}, None),
                              ({"assignedTo": stranger, "name": "moved"}, None),
                              ({"assignedTo": stranger},
                               {"If-Match": '"%d"' % a_lead["version"]})):
            r = ctx.http("PATCH", "/v1/leads/" + a_lead["id"], key=w.a.key, body=body,
                         headers=headers)
            assert_error(r, 400, "invalid_reference")
    # The other tenant's user answers like a non-user (no existence oracle).
    r_b = ctx.http("POST", "/v1/leads", key=w.a.key, body={"name": "x", "assignedTo": b_user})
    r_none = ctx.http("POST", "/v1/leads", key=w.a.key,
                      body={"name": "x", "assignedTo": str(uuid.uuid4())})
    assert r_b.status == r_none.status == 400 and r_b.json == r_none.json, (r_b, r_none)
    assert snapshot(ctx, w.a.id) == before
    assert ctx.count_leads(w.a.id) == n_a
    g = ctx.http("GET", "/v1/leads/" + a_lead["id"], key=w.a.key)
    assert g.status == 200 and g.json == a_lead, g
    # Control: A's own user is accepted (then the lead is removed again).
    a_user = w.marks[w.a.id]["assignedTo"]
    r = ctx.http("POST", "/v1/leads", key=w.a.key, body={"name": "Good assignee",
                                                          "assignedTo": a_user})
    assert r.status == 201 and r.json["assignedTo"] == a_user, r
    assert ctx.http("DELETE", "/v1/leads/" + r.json["id"], key=w.a.key).status == 204
    assert ctx.count_leads(w.a.id) == n_a


# --------------------------------------------------------------------------
# lists, cursors, stats


@test
def list_filters_matching_only_other_tenant_return_nothing(ctx):
    w = world(ctx)
    bm = w.marks[w.b.id]
    filters = [
        {"email": bm["email"]},
        {"q": bm["token"]},                 # name substring
        {"q": bm["company"].upper()},       # company, case-insensitive
        {"q": bm["domain"]},                # email substring
        {"source": bm["source"]},
        {"priority": bm["priority"]},
        {"assignedTo": bm["assignedTo"]},
        {"status": "QUALIFIED", "source": bm["source"]},
    ]
    for f in filters:
        # Control: the filter does find B's lead with B's key.
        rb = ctx.http("GET", "/v1/leads?" + qs(**f), key=w.b.key)
        assert rb.status == 200, (f, rb)
        assert list_ids(rb) == [bm["lead"]["id"]], (f, rb)
        assert rb.json["pagination"]["total"] == 1, (f, rb)
        for t in (w.a, w.c):
            ra = ctx.http("GET", "/v1/leads?" + qs(**f), key=t.key)
            assert ra.status == 200, (f, ra)
            assert ra.json["data"] == [], (f, ra)
            assert ra.json["pagination"]["total"] == 0, (f, ra)
            assert ra.json["pagination"]["pages"] == 0, (f, ra)
            assert ra.header("X-Tenant-ID") == t.id
            rc = ctx.http("GET", "/v1/leads?" + qs(cursor="", **f), key=t.key)
            assert rc.status == 200, (f, rc)
            assert rc.json == {"data": [], "nextCursor": None}, (f, rc)


@test
def list_returns_exactly_own_rows(ctx):
    w = world(ctx)
    for t in (w.a, w.b, w.c):
        expected = sorted(lead_ids(ctx, t.id))
        r = ctx.http("GET", "/v1/leads?limit=100", key=t.key)
        assert r.status == 200, r
        assert sorted(list_ids(r)) == expected, r
        assert {d["tenantId"] for d in r.json["data"]} == {t.id}
        assert r.json["pagination"]["total"] == len(expected)
        # A shared filter value: each tenant sees only its own match.
        r = ctx.http("GET", "/v1/leads?source=shared-source&fields=id,name", key=t.key)
        assert list_ids(r) == [w.marks[t.id]["lead2"]["id"]], r
        for status in ("QUALIFIED", "WON"):
            want = sorted(x[0] for x in owner_query(
                ctx, "SELECT id::text FROM leads WHERE tenant_id = %s AND status = %s",
                (t.id, status)))
            r = ctx.http("GET", "/v1/leads?limit=100&status=" + status, key=t.key)
            assert sorted(list_ids(r)) == want, (status, r)


def expected_after_cursor(ctx, tenant_id, sort, key, lid):
    if sort == "name":
        sql = ("SELECT id::text FROM leads WHERE tenant_id = %s AND (name, id) > (%s, %s::uuid)"
               " ORDER BY name, id")
    elif sort == "-createdAt":
        sql = ("SELECT id::text FROM leads WHERE tenant_id = %s"
               " AND (created_at, id) < (%s::timestamptz, %s::uuid)"
               " ORDER BY created_at DESC, id DESC")
    else:
        raise AssertionError("unexpected sort in cursor: " + sort)
    return [r[0] for r in owner_query(ctx, sql, (tenant_id, key, lid))]


@test
def cursor_from_other_tenant_positions_only_within_own_rows(ctx):
    w = world(ctx)
    for sort in ("name", "-createdAt"):
        # A page of B's that ends in the middle of A's rows in this order.
        full = ctx.http("GET", "/v1/leads?" + qs(sort=sort, limit=100), key=w.b.key)
        if sort == "name":
            idx = list_ids(full).index(w.marks[w.b.id]["lead"]["id"])   # "Person uniqb..."
        else:
            idx = 3                                                      # B's sample 2 days old
        rb = ctx.http("GET", "/v1/leads?" + qs(sort=sort, limit=idx + 1, cursor=""),
                      key=w.b.key)
        assert rb.status == 200, rb
        cur_b = rb.json["nextCursor"]
        assert cur_b, rb
        # The cursor is opaque; it points after the last row of B's page.
        last = rb.json["data"][-1]
        key, lid = last["name" if sort == "name" else "createdAt"], last["id"]
        assert last["tenantId"] == w.b.id, last
        expected = expected_after_cursor(ctx, w.a.id, sort, key, lid)
        # The position splits A's rows, so the test can tell right from wrong.
        assert 0 < len(expected) < len(lead_ids(ctx, w.a.id)), (sort, expected)
        # Follow the cursor chain with A's key, 2 rows a page, to its end.
        got, cursor, pages = [], cur_b, 0
        while cursor is not None:
            r = ctx.http("GET", "/v1/leads?" + qs(sort=sort, limit=2, cursor=cursor),
                         key=w.a.key)
            assert r.status == 200, r
            assert {d["tenantId"] for d in r.json["data"]} <= {w.a.id}, r
            got += list_ids(r)
            cursor = r.json["nextCursor"]
            pages += 1
            assert pages < 20
        assert got == expected, (sort, got, expected)
        assert set(got) <= set(lead_ids(ctx, w.a.id))


@test
def stats_count_only_own_leads(ctx):
    w = world(ctx)
    totals = set()
    for t in (w.a, w.b, w.c):
        counts = dict(owner_query(
            ctx, "SELECT status, count(*) FROM leads WHERE tenant_id = %s GROUP BY status",
            (t.id,)))
        r = ctx.http("GET", "/v1/leads/stats", key=t.key)
        assert r.status == 200, r
        s = r.json
        assert s["totalLeads"] == sum(counts.values()), (s, counts)
        assert set(s["byStatus"]) == set(STATUSES), s
        for st in STATUSES:
            assert s["byStatus"][st]["count"] == counts.get(st, 0), (st, s, counts)
        totals.add(s["totalLeads"])
    assert len(totals) == 3, "tenants should differ in size for this test to mean anything"


# --------------------------------------------------------------------------
# forged tenant fields and headers


@test
def forged_tenant_fields_in_bodies_are_rejected_and_write_nothing(ctx):
    w = world(ctx)
    a_lead = w.marks[w.a.id]["lead"]
    before = snapshot(ctx, w.a.id)
    for field, value in (("tenantId", w.b.id), ("tenant_id", w.b.id), ("tenantId", w.a.id)):
        r = ctx.http("POST", "/v1/leads", key=w.a.key, body={"name": "Forged", field: value})
        assert_error(r, 400, "unknown_field", field=field)
        r = ctx.http("POST", "/v1/leads", key=w.a.key, body={field: value, "name": "Forged"})
        assert_error(r, 400, "unknown_field", field=field)
        r = ctx.http("PATCH", "/v1/leads/" + a_lead["id"], key=w.a.key,
                     body={"name": "Forged", field: value})
        assert_error(r, 400, "unknown_field", field=field)
        # Against B's lead: rejected either for the body or as not found.
        r = ctx.http("PATCH", "/v1/leads/" + w.marks[w.b.id]["lead"]["id"], key=w.a.key,
                     body={field: w.a.id, "name": "Forged"})
        assert r.status in (400, 404), r
        assert r.error_code() == ("unknown_field" if r.status == 400 else "lead_not_found"), r
    # Forging the row id to B's lead id is rejected as well.
    r = ctx.http("POST", "/v1/leads", key=w.a.key,
                 body={"name": "Forged", "id": w.marks[w.b.id]["lead"]["id"]})
    assert_error(r, 400, "unknown_field", field="id")
    assert snapshot(ctx, w.a.id) == before
    g = ctx.http("GET", "/v1/leads/" + a_lead["id"], key=w.a.key)
    assert g.json == a_lead, g


@test
def client_tenant_headers_are_ignored(ctx):
    w = world(ctx)
    spoof = {"X-Tenant-ID": w.b.id, "X-Tenant-Name": w.b.name, "X-Tenant-Slug": w.b.slug}
    r = ctx.http("GET", "/v1/leads?limit=100", key=w.a.key, headers=spoof)
    assert r.status == 200, r
    assert r.header("X-Tenant-ID") == w.a.id, r.headers
    assert urllib.parse.unquote(r.header("X-Tenant-Name")) == w.a.name, r.headers
    assert sorted(list_ids(r)) == sorted(lead_ids(ctx, w.a.id))
    r = ctx.http("GET", "/v1/leads/" + w.marks[w.b.id]["lead"]["id"], key=w.a.key, headers=spoof)
    assert_error(r, 404, "lead_not_found")
    s = ctx.http("GET", "/v1/leads/stats", key=w.a.key, headers=spoof)
    assert s.json["totalLeads"] == len(lead_ids(ctx, w.a.id)), s
    # A write with a spoofed header lands in A.
    b_before = tenant_snapshot(ctx, w.b.id)
    r = ctx.http("POST", "/v1/leads", key=w.a.key, headers=spoof, body={"name": "Header probe"})
    assert r.status == 201 and r.json["tenantId"] == w.a.id, r
    rows = owner_query(ctx, "SELECT tenant_id::text FROM leads WHERE id = %s", (r.json["id"],))
    assert rows == [(w.a.id,)], rows
    assert tenant_snapshot(ctx, w.b.id) == b_before
    d = ctx.http("DELETE", "/v1/leads/" + r.json["id"], key=w.a.key)
    assert d.status == 204, d
    # No key but a tenant id header: still 401, nothing of B.
    r = ctx.http("GET", "/v1/leads", headers={"X-Tenant-ID": w.b.id})
    assert_error(r, 401, "missing_tenant_key")
    assert r.header("X-Tenant-ID") is None, r.headers


@test
def tenant_selectors_in_query_parameters_are_rejected(ctx):
    w = world(ctx)
    for path in ("/v1/leads?tenantId=%s", "/v1/leads?tenant_id=%s", "/v1/leads/stats?tenantId=%s",
                 "/v1/leads/" + w.marks[w.a.id]["lead"]["id"] + "?tenantId=%s"):
        name = path.split("?")[1].split("=")[0]
        r = ctx.http("GET", path % w.b.id, key=w.a.key)
        assert_error(r, 400, "unknown_parameter", field=name)
        assert w.b.id not in r.body.replace(path % w.b.id, ""), r


@test
def two_tenant_keys_in_one_request_never_mix(ctx):
    """Two X-Tenant-Key headers (A's and B's): whatever the server decides,
    the rows returned belong to the tenant named in X-Tenant-ID."""
    from harness import raw_http
    w = world(ctx)
    for first, second in ((w.a, w.b), (w.b, w.a)):
        raw = ("GET /v1/leads?limit=100 HTTP/1.1\r\nHost: t\r\nX-Tenant-Key: %s\r\n"
               "X-Tenant-Key: %s\r\nConnection: close\r\n\r\n" % (first.key, second.key))
        r = raw_http(ctx.server.port, raw.encode())
        if r.status == 200:
            tid = r.header("X-Tenant-ID")
            assert tid in (w.a.id, w.b.id), r.headers
            assert sorted(list_ids(r)) == sorted(lead_ids(ctx, tid)), r
        else:
            assert r.status in (400, 401), r
            assert r.header("X-Tenant-ID") is None


@test
def tenant_name_header_is_safely_encoded(ctx):
    """X-Tenant-Name carries a name the tenant chose: CR/LF cannot inject a
    header, non-ASCII and '%' are percent-encoded, and it decodes back.
    Provisioning and renames now refuse control characters, so the name is
    put in place as one stored before that rule (before migration 0015)."""
    import socket
    name = "Evil\r\nX-Injected: 1 Caf\u00e9 100% \t end"
    p = ctx.tekup("tenant", "create", "--data-dir", ctx.data_dir, "--name", "Evil to be",
                  check=True)
    fields = dict(line.split(": ", 1) for line in p.stdout.splitlines() if ": " in line)
    c = ctx.owner_db()
    try:
        c.cursor().execute("UPDATE tenants SET name = %s WHERE id = %s",
                           (name, fields["tenant_id"]))
    finally:
        c.close()
    s = socket.create_connection(("127.0.0.1", ctx.server.port), timeout=10)
    try:
        s.sendall(("GET /v1/leads HTTP/1.1\r\nHost: t\r\nX-Tenant-Key: %s\r\n"
                   "Connection: close\r\n\r\n" % fields["api_key"]).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head = data.split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 200"), head
    assert not any(l.lower().startswith(b"x-injected") for l in lines), head
    values = [l.split(b":", 1)[1].strip() for l in lines if l.lower().startswith(b"x-tenant-name:")]
    assert len(values) == 1, head
    v = values[0]
    assert all(0x20 <= c <= 0x7E for c in v), v
    assert v == b"Evil%0D%0AX-Injected: 1 Caf%C3%A9 100%25 %09 end", v
    assert urllib.parse.unquote(v.decode()) == name


@test
def another_tenants_key_prefix_or_case_variant_is_rejected(ctx):
    """Keys that are near B's key (upper-cased, truncated, extended, with
    whitespace) are not B's key."""
    w = world(ctx)
    k = w.b.key
    variants = [k.upper(), "TK_" + k[3:], k[:-1], k + "0", k[:-1] + ("0" if k[-1] != "0" else "1"),
                k[3:], "tk_" + k[3:].upper()]
    expected = unknown_key_error(ctx)
    for v in variants:
        r = ctx.http("GET", "/v1/leads", key=v)
        assert_error(r, 401, "invalid_tenant_key")
        assert r.json == expected, (v, r)
        assert r.header("X-Tenant-ID") is None


# --------------------------------------------------------------------------
# keys and tenants that stop being valid


def lifecycle_tenant(ctx, label):
    t = ctx.new_tenant(name="Iso %s %s" % (label, uuid.uuid4().hex[:6]), sample_leads=3)
    r = ctx.http("GET", "/v1/leads?limit=100", key=t.key)  # resolves and caches the key
    assert r.status == 200 and len(r.json["data"]) == 3, r
    return t


def assert_stays_rejected(ctx, t, expected_error):
    for _ in range(3):
        r = ctx.http("GET", "/v1/leads", key=t.key)
        assert_error(r, 401, "invalid_tenant_key")
        assert r.json == expected_error, r
    n = ctx.count_leads(t.id)
    r = ctx.http("POST", "/v1/leads", key=t.key, body={"name": "after invalidation"})
    assert_error(r, 401, "invalid_tenant_key")
    assert ctx.count_leads(t.id) == n


@test
def revoked_key_stops_working_within_5s(ctx):
    t = lifecycle_tenant(ctx, "revoked")
    before = tenant_snapshot(ctx, t.id)
    owner_exec(ctx, "UPDATE api_keys SET revoked_at = now() WHERE tenant_id = %s", (t.id,))
    t0 = time.time()
    elapsed, r = wait_until_rejected(ctx, t.key, t0)
    assert elapsed <= REVOCATION_BOUND_S, elapsed
    expected = unknown_key_error(ctx)
    assert r.json == expected, "a revoked key must get the same error as an unknown one"
    assert_stays_rejected(ctx, t, expected)
    assert tenant_snapshot(ctx, t.id) == before
    assert owner_query(ctx, "SELECT status FROM tenants WHERE id = %s", (t.id,)) == [("active",)]


@test
def expired_key_stops_working_within_5s(ctx):
    t = lifecycle_tenant(ctx, "expired")
    before = tenant_snapshot(ctx, t.id)
    # Control: an expiry in the future leaves the key working.
    owner_exec(ctx, "UPDATE api_keys SET expires_at = now() + interval '1 hour'"
                    " WHERE tenant_id = %s", (t.id,))
    time.sleep(0.3)
    assert ctx.http("GET", "/v1/leads", key=t.key).status == 200
    owner_exec(ctx, "UPDATE api_keys SET expires_at = now() - interval '1 second'"
                    " WHERE tenant_id = %s", (t.id,))
    t0 = time.time()
    elapsed, r = wait_until_rejected(ctx, t.key, t0)
    assert elapsed <= REVOCATION_BOUND_S, elapsed
    expected = unknown_key_error(ctx)
    assert r.json == expected
    assert_stays_rejected(ctx, t, expected)
    assert tenant_snapshot(ctx, t.id) == before


@test
def suspended_tenant_stops_working_within_5s_and_data_is_kept(ctx):
    t = lifecycle_tenant(ctx, "suspended")
    before = tenant_snapshot(ctx, t.id)
    owner_exec(ctx, "UPDATE tenants SET status = 'suspended' WHERE id = %s", (t.id,))
    t0 = time.time()
    elapsed, r = wait_until_rejected(ctx, t.key, t0)
    assert elapsed <= REVOCATION_BOUND_S, elapsed
    expected = unknown_key_error(ctx)
    assert r.json == expected
    assert_stays_rejected(ctx, t, expected)
    assert tenant_snapshot(ctx, t.id) == before
    # Re-activated: failures are not cached, so the key works at once.
    owner_exec(ctx, "UPDATE tenants SET status = 'active' WHERE id = %s", (t.id,))
    r = ctx.http("GET", "/v1/leads?limit=100", key=t.key)
    assert r.status == 200, r
    assert sorted(list_ids(r)) == sorted(lead_ids(ctx, t.id))


@test
def archived_tenant_key_is_401(ctx):
    # Archived before the key was ever used (nothing cached).
    t = ctx.new_tenant(name="Iso archived %s" % uuid.uuid4().hex[:6], sample_leads=2)
    owner_exec(ctx, "UPDATE tenants SET status = 'archived', archived_at = now() WHERE id = %s",
               (t.id,))
    expected = unknown_key_error(ctx)
    r = ctx.http("GET", "/v1/leads", key=t.key)
    assert_error(r, 401, "invalid_tenant_key")
    assert r.json == expected
    assert ctx.count_leads(t.id) == 2
    # Archived while its key is cached: rejected within the bound.
    t2 = lifecycle_tenant(ctx, "archived-later")
    owner_exec(ctx, "UPDATE tenants SET status = 'archived', archived_at = now() WHERE id = %s",
               (t2.id,))
    elapsed, _ = wait_until_rejected(ctx, t2.key, time.time())
    assert elapsed <= REVOCATION_BOUND_S, elapsed
    assert ctx.count_leads(t2.id) == 3


@test
def revoking_one_tenants_key_leaves_others_working(ctx):
    w = world(ctx)
    t = lifecycle_tenant(ctx, "revoked-neighbour")
    owner_exec(ctx, "UPDATE api_keys SET revoked_at = now() WHERE tenant_id = %s", (t.id,))
    wait_until_rejected(ctx, t.key, time.time())
    for x in (w.a, w.b, w.c):
        r = ctx.http("GET", "/v1/leads?limit=1", key=x.key)
        assert r.status == 200 and r.header("X-Tenant-ID") == x.id, r


# --------------------------------------------------------------------------
# concurrency over the pooled connections


def superuser_db(ctx):
    import psycopg2
    c = psycopg2.connect(host=ctx.socket_dir, dbname="postgres", user="postgres")
    c.autocommit = True
    return c


def assert_pool_connections_idle(ctx):
    """No pooled connection is left inside a transaction (where a SET LOCAL
    context could survive the request)."""
    su = superuser_db(ctx)
    try:
        cur = su.cursor()
        deadline = time.time() + 2
        while True:
            cur.execute("SELECT pid, state, backend_xid::text, xact_start::text, query"
                        " FROM pg_stat_activity"
                        " WHERE usename = 'tekup_app' AND application_name = 'tekup'")
            rows = cur.fetchall()
            busy = [r for r in rows if r[1] != "idle" or r[2] is not None or r[3] is not None]
            if not busy or time.time() > deadline:
                break
            time.sleep(0.1)
        assert rows, "expected the server's pooled connections in pg_stat_activity"
        assert not busy, busy
    finally:
        su.close()


def run_interleaved(ctx, port, n=216):
    """n requests of A, B and C interleaved over 16 client threads: lists,
    reads of own and other tenants' leads, filters on the others' values,
    stats, cursor pages, and creates by C.  Every response must hold only
    the caller's rows."""
    w = world(ctx)
    tenants = (w.a, w.b, w.c)
    ids = {t.id: set(lead_ids(ctx, t.id)) for t in tenants}
    stats = {t.id: ctx.http("GET", "/v1/leads/stats", key=t.key).json for t in (w.a, w.b)}
    c_before = len(ids[w.c.id])
    posts = []

    def http(method, path, t, body=None):
        return ctx.http(method, path, key=t.key, body=body, port=port)

    def job(i):
        t = tenants[i % 3]
        other = tenants[(i + 1) % 3]
        kind = (i // 3) % 6
        mine = ids[t.id]
        if kind == 0:
            r = http("GET", "/v1/leads?limit=100", t)
            assert r.status == 200, r
            got = set(list_ids(r))
            if t is w.c:   # C gets new leads concurrently
                assert got >= mine and {d["tenantId"] for d in r.json["data"]} == {t.id}, r
            else:
                assert got == mine, (t.name, r)
        elif kind == 1:
            lid = w.marks[t.id]["lead"]["id"]
            r = http("GET", "/v1/leads/" + lid, t)
            assert r.status == 200 and r.json["id"] == lid and r.json["tenantId"] == t.id, r
        elif kind == 2:
            r = http("GET", "/v1/leads/" + w.marks[other.id]["lead"]["id"], t)
            assert_error(r, 404, "lead_not_found")
        elif kind == 3:
            r = http("GET", "/v1/leads?" + qs(email=w.marks[other.id]["email"]), t)
            assert r.status == 200 and r.json["data"] == [], r
            assert r.json["pagination"]["total"] == 0, r
        elif kind == 4:
            if t is w.c:
                r = http("POST", "/v1/leads", t, body={"name": "Concurrent %d" % i})
                assert r.status == 201 and r.json["tenantId"] == w.c.id, r
                posts.append(r.json["id"])
            else:
                r = http("GET", "/v1/leads/stats", t)
                assert r.status == 200 and r.json == stats[t.id], (t.name, r)
        else:
            r = http("GET", "/v1/leads?" + qs(cursor="", limit=100, sort="name"), t)
            assert r.status == 200, r
            got = set(list_ids(r))
            assert {d["tenantId"] for d in r.json["data"]} <= {t.id}, r
            if t is not w.c:
                assert got == mine, r
        assert r.header("X-Tenant-ID") == t.id, (i, r.headers)
        return True

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as ex:
        results = list(ex.map(job, range(n)))
    assert all(results)
    assert len(posts) == n // 18, len(posts)
    assert set(lead_ids(ctx, w.a.id)) == ids[w.a.id]
    assert set(lead_ids(ctx, w.b.id)) == ids[w.b.id]
    assert len(lead_ids(ctx, w.c.id)) == c_before + len(posts)
    assert set(posts) <= set(lead_ids(ctx, w.c.id))
    for lid in posts:
        assert ctx.http("DELETE", "/v1/leads/" + lid, key=w.c.key).status == 204
    assert_pool_connections_idle(ctx)


@test
def concurrent_interleaved_requests_never_mix_tenants(ctx):
    run_interleaved(ctx, ctx.server.port)


@test
def one_pooled_connection_shared_by_all_tenants_never_mixes_them(ctx):
    """A pool of one: every request of A, B and C runs on the same PostgreSQL
    session, one after another, so a context left behind would show."""
    srv = Server(ctx, extra_args=["--pool-size", "1", "--threads", "8"])
    try:
        run_interleaved(ctx, srv.port, n=108)
    finally:
        rc = srv.stop()
    out = srv.output()
    assert rc == 0 and not any(m in out for m in ("Sanitizer", "runtime error:")), out[-3000:]


@test
def pgbouncer_mode_never_mixes_tenants(ctx):
    """--pgbouncer (unnamed statements, per-transaction settings) on a pool of
    two, connected straight to PostgreSQL."""
    srv = Server(ctx, extra_args=["--pgbouncer", "--pool-size", "2"])
    try:
        run_interleaved(ctx, srv.port, n=108)
    finally:
        rc = srv.stop()
    out = srv.output()
    assert rc == 0 and not any(m in out for m in ("Sanitizer", "runtime error:")), out[-3000:]
