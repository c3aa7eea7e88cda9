"""test_leads_list.py - GET /v1/leads: filters, sorting, fields, both paginations.

Covers page mode ({data, pagination: {page, limit, total, pages, totalExact}},
default limit 20, default sort -createdAt, pages past the end, the total
cap), cursor mode ({data, nextCursor}; "cursor=" is the first page; walking
every page returns every row exactly once and in the sort's order, for every
sort, with exact ties on created_at/updated_at and on name, with thousands of
rows, with filters and field selection, and with names holding newlines,
quotes, emoji and 255 four-byte characters), every filter (status list,
source, assignedTo, email, q with literal % _ and \\, createdAfter >= and
createdBefore <, priority), `fields`, and every parameter error: unknown
(unknown_parameter naming it), bad values and repeats (invalid_parameter
naming it), page+cursor together, and foreign, forged or garbage cursors
(invalid_cursor).  Listings never show another tenant's rows.
"""
import base64
import datetime
import time
import urllib.parse
import uuid

from harness import make_user, assert_error, sql, test

LEAD_KEYS = {"id", "tenantId", "name", "email", "phone", "company", "status", "source",
             "createdAt", "updatedAt", "createdBy", "assignedTo", "customFields", "version",
             "lastActivityAt"}
STATUSES = ["NEW", "CONTACTED", "QUALIFIED", "PROPOSAL", "WON", "LOST"]
SORTS = ["createdAt", "-createdAt", "updatedAt", "-updatedAt", "name"]


# ---------------------------------------------------------------- helpers

def qs(params):
    """Query string with every reserved byte percent-encoded ('+' too)."""
    if isinstance(params, dict):
        params = list(params.items())
    return urllib.parse.urlencode(params, quote_via=urllib.parse.quote, safe="")


def list_leads(ctx, t, params=None):
    path = "/v1/leads"
    if params:
        path += "?" + qs(params)
    return ctx.http("GET", path, key=t.key)


def list_ok(ctx, t, params=None):
    r = list_leads(ctx, t, params)
    assert r.status == 200, (params, r)
    return r.json


def create(ctx, t, **fields):
    body = dict(fields)
    body.setdefault("name", "Lead")
    r = ctx.http("POST", "/v1/leads", key=t.key, body=body)
    assert r.status == 201, r
    return r.json


def all_rows(ctx, t, params=None):
    """Every row of a page-mode listing (limit 100), following pages."""
    params = dict(params or {})
    params["limit"] = 100
    rows = []
    page = 1
    while True:
        params["page"] = page
        body = list_ok(ctx, t, params)
        rows += body["data"]
        if page >= body["pagination"]["pages"]:
            return rows
        page += 1
        assert page < 1000


def walk(ctx, t, params=None, limit=7):
    """Walks cursor pages; returns (rows, number of pages).  Checks the page
    sizes: every page but the last is full, and only the last has a null
    nextCursor."""
    params = dict(params or {})
    params["limit"] = limit
    params["cursor"] = ""
    rows = []
    pages = 0
    while True:
        r = list_leads(ctx, t, params)
        assert r.status == 200, (params, r)
        body = r.json
        assert set(body.keys()) == {"data", "nextCursor"}, body.keys()
        pages += 1
        assert len(body["data"]) <= limit
        rows += body["data"]
        nxt = body["nextCursor"]
        if nxt is None:
            return rows, pages
        assert isinstance(nxt, str) and nxt, body
        assert len(body["data"]) == limit, "a page with a nextCursor is not full: %d" % len(
            body["data"])
        params["cursor"] = nxt
        assert pages < 20000, "cursor walk does not end"


def sort_key(sort):
    """Client-side order of full leads for a sort (ties broken by id)."""
    field = sort.lstrip("-")
    return (lambda lead: (lead[field], lead["id"])), sort.startswith("-")


def expected_order(rows, sort):
    key, reverse = sort_key(sort)
    return sorted(rows, key=key, reverse=reverse)


def ids(rows):
    return [r["id"] for r in rows]


def insert_tied(ctx, t, n, name, ts):
    """n leads sharing name, created_at and updated_at exactly (impossible
    through the API, where every request is its own transaction)."""
    c = ctx.owner_db()
    try:
        cur = c.cursor()
        cur.execute("INSERT INTO leads (tenant_id, name, created_at, updated_at)"
                    " SELECT %s, %s, %s::timestamptz, %s::timestamptz"
                    " FROM generate_series(1, %s)", (t.id, name, ts, ts, n))
    finally:
        c.close()


def b64(raw):
    if isinstance(raw, str):
        raw = raw.encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64(cursor):
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except ValueError:
        return None


def forge(cursor, *replacements):
    """A cursor made from a real one by replacing text inside it (the last
    row's id or sort key), or None when the cursor does not carry them as
    text (an opaque or signed format: nothing to forge from)."""
    raw = unb64(cursor)
    if raw is None:
        return None
    for old, new in replacements:
        old = old.encode() if isinstance(old, str) else old
        new = new.encode() if isinstance(new, str) else new
        if old not in raw:
            return None
        raw = raw.replace(old, new, 1)
    return b64(raw)


def hand_made(sort, key, lead_id):
    """Cursors in the shapes the API is known to have used (sort, key, id in
    either order): each is either a valid position or invalid_cursor."""
    return [b64("v1\n%s\n%s\n%s" % (sort, key, lead_id)),
            b64("v1\n%s\n%s\n%s" % (sort, lead_id, key))]


def assert_walks_match(ctx, t, sort, params=None, limit=7):
    """For one sort: the cursor walk equals the page-mode listing, which
    equals the client-side order; no row twice, none missing."""
    p = dict(params or {})
    p["sort"] = sort
    paged = all_rows(ctx, t, p)
    walked, _ = walk(ctx, t, p, limit=limit)
    assert len(set(ids(walked))) == len(walked), "%s: a row came twice" % sort
    assert ids(walked) == ids(paged), "%s: cursor walk differs from page listing" % sort
    assert ids(paged) == ids(expected_order(paged, sort)), "%s: wrong order" % sort
    return walked


# ---------------------------------------------------------------- page mode

@test
def list_empty_tenant(ctx):
    t = ctx.new_tenant()
    body = list_ok(ctx, t)
    assert body == {"data": [], "pagination": {"page": 1, "limit": 20, "total": 0, "pages": 0,
                                                "totalExact": True}}, body
    body = list_ok(ctx, t, {"cursor": ""})
    assert body == {"data": [], "nextCursor": None}, body


@test
def list_page_mode_defaults_and_page_arithmetic(ctx):
    t = ctx.new_tenant()
    made = [create(ctx, t, name="L%02d" % i) for i in range(25)]
    newest_first = expected_order(made, "-createdAt")
    r = list_leads(ctx, t)
    assert r.status == 200, r
    assert r.header("X-Tenant-ID") == t.id and r.header("Cache-Control") == "no-store"
    body = r.json
    assert set(body.keys()) == {"data", "pagination"}
    assert body["pagination"] == {"page": 1, "limit": 20, "total": 25, "pages": 2,
                                  "totalExact": True}
    assert ids(body["data"]) == ids(newest_first[:20])
    # Rows are whole leads, as GET /v1/leads/{id} returns them.
    by_id = {m["id"]: m for m in made}
    for row in body["data"]:
        assert set(row.keys()) == LEAD_KEYS
        assert row == by_id[row["id"]]
    body = list_ok(ctx, t, {"page": 2})
    assert ids(body["data"]) == ids(newest_first[20:])
    assert body["pagination"] == {"page": 2, "limit": 20, "total": 25, "pages": 2,
                                  "totalExact": True}
    body = list_ok(ctx, t, {"page": 3})
    assert body["data"] == [] and body["pagination"]["total"] == 25
    assert body["pagination"]["page"] == 3 and body["pagination"]["pages"] == 2
    body = list_ok(ctx, t, {"page": 50000})
    assert body["data"] == [] and body["pagination"]["total"] == 25
    body = list_ok(ctx, t, {"limit": 7, "page": 4})
    assert ids(body["data"]) == ids(newest_first[21:25])
    assert body["pagination"] == {"page": 4, "limit": 7, "total": 25, "pages": 4,
                                  "totalExact": True}
    body = list_ok(ctx, t, {"limit": 1})
    assert body["pagination"]["pages"] == 25 and len(body["data"]) == 1
    body = list_ok(ctx, t, {"limit": 100})
    assert ids(body["data"]) == ids(newest_first)
    body = list_ok(ctx, t, {"limit": 5, "page": 5})
    assert ids(body["data"]) == ids(newest_first[20:25])
    assert body["pagination"]["pages"] == 5


@test
def list_shows_only_own_tenant(ctx):
    a = ctx.new_tenant()
    b = ctx.new_tenant(sample_leads=30)
    mine = [create(ctx, a, name="Anna Hansen", status="WON", source="website",
                   customFields={"priority": "high"}) for _ in range(3)]
    theirs = {x["id"] for x in all_rows(ctx, b)}
    assert len(theirs) == 30
    for params in ({}, {"q": "Hansen"}, {"status": "WON"}, {"source": "website"},
                   {"priority": "high"}, {"sort": "name"}, {"createdAfter": "2000-01-01"}):
        rows = all_rows(ctx, a, params)
        assert ids(rows) and set(ids(rows)) <= {m["id"] for m in mine}, params
        body = list_ok(ctx, a, params)
        assert body["pagination"]["total"] == 3, (params, body["pagination"])
        walked, _ = walk(ctx, a, params, limit=2)
        assert set(ids(walked)) == {m["id"] for m in mine}, params
        assert all(row["tenantId"] == a.id for row in walked)


@test
def list_total_of_a_large_result(ctx):
    t = ctx.new_tenant(plan="enterprise", sample_leads=10001)
    try:
        check_total_of_a_large_result(ctx, t)
    finally:
        # 10,001 leads (and their activities) dated back years: not left for
        # the later tests, whose daily job would spend its run deleting them.
        sql(ctx, "DELETE FROM tenants WHERE id = %s", (t.id,))


def check_total_of_a_large_result(ctx, t):
    body = list_ok(ctx, t)
    p = body["pagination"]
    assert len(body["data"]) == 20
    assert isinstance(p["totalExact"], bool)
    if p["totalExact"]:
        assert p["total"] == 10001 and p["pages"] == 501, p
    else:
        assert 0 < p["total"] < 10001, p
        assert p["pages"] == -(-p["total"] // 20), p
    # Below the cap the total is exact.
    body = list_ok(ctx, t, {"createdAfter": (datetime.datetime.now(datetime.timezone.utc)
                                             - datetime.timedelta(days=50.5)).isoformat()})
    assert body["pagination"]["total"] == 50 and body["pagination"]["totalExact"] is True, body[
        "pagination"]


# ---------------------------------------------------------------- sorting

@test
def list_every_sort_orders_page_mode(ctx):
    t = ctx.new_tenant(sample_leads=30)
    # Touch a few leads so updated_at differs from created_at order.
    rows = all_rows(ctx, t, {"sort": "createdAt"})
    for row in rows[::4]:
        r = ctx.http("PATCH", "/v1/leads/" + row["id"], key=t.key, body={"phone": "1"})
        assert r.status == 200, r
    everything = all_rows(ctx, t)
    assert len(everything) == 30
    for sort in SORTS:
        got = all_rows(ctx, t, {"sort": sort})
        assert ids(got) == ids(expected_order(everything, sort)), sort
    assert ids(everything) == ids(all_rows(ctx, t, {"sort": "-createdAt"}))
    upd = all_rows(ctx, t, {"sort": "-updatedAt"})
    assert ids(upd[:8]) == ids(rows[::4][::-1]), "most recently patched first"


@test
def cursor_walk_every_sort_with_exact_ties(ctx):
    t = ctx.new_tenant(sample_leads=40)
    # 12 leads sharing one timestamp to the microsecond and one name, and 9
    # sharing another timestamp and name: keyset must break ties by id.
    insert_tied(ctx, t, 12, "Tie", "2025-06-01T12:00:00.123456Z")
    insert_tied(ctx, t, 9, "Anna Hansen", "2025-06-02T00:00:00Z")
    for i in range(4):
        create(ctx, t, name="Tie")
    total = 40 + 12 + 9 + 4
    for sort in SORTS:
        for limit in (1, 7, 20, 65, 100):
            walked = assert_walks_match(ctx, t, sort, limit=limit)
            assert len(walked) == total, (sort, limit, len(walked))


@test
def cursor_walk_thousands_of_rows(ctx):
    n = 2500
    t = ctx.new_tenant(sample_leads=n)
    for sort in ("-createdAt", "name", "updatedAt"):
        walked, pages = walk(ctx, t, {"sort": sort}, limit=100)
        assert len(walked) == n, (sort, len(walked))
        assert len(set(ids(walked))) == n, sort
        assert pages == n // 100, (sort, pages)
        assert ids(walked) == ids(expected_order(walked, sort)), sort


@test
def cursor_first_page_matches_page_one(ctx):
    t = ctx.new_tenant(sample_leads=12)
    for sort in SORTS:
        paged = list_ok(ctx, t, {"sort": sort, "limit": 5})["data"]
        body = list_ok(ctx, t, {"sort": sort, "limit": 5, "cursor": ""})
        assert ids(body["data"]) == ids(paged), sort
        assert body["data"] == paged
        assert body["nextCursor"]
    # Everything fits: no next cursor.
    body = list_ok(ctx, t, {"cursor": "", "limit": 12})
    assert len(body["data"]) == 12 and body["nextCursor"] is None, body["nextCursor"]
    body = list_ok(ctx, t, {"cursor": ""})
    assert len(body["data"]) == 12 and body["nextCursor"] is None
    body = list_ok(ctx, t, {"cursor": "", "limit": 11})
    assert len(body["data"]) == 11 and body["nextCursor"]


@test
def cursor_walk_with_filters_and_fields(ctx):
    t = ctx.new_tenant(sample_leads=60)
    for params in ({"status": "NEW,WON"}, {"q": "hansen"}, {"priority": "high"},
                   {"source": "linkedin", "status": "CONTACTED,QUALIFIED,PROPOSAL,LOST"}):
        for sort in ("-createdAt", "name"):
            walked = assert_walks_match(ctx, t, sort, params, limit=3)
            assert walked, params
    for sort in SORTS:
        p = {"sort": sort, "fields": "id"}
        walked, _ = walk(ctx, t, p, limit=9)
        assert all(set(row.keys()) == {"id"} for row in walked)
        assert ids(walked) == ids(all_rows(ctx, t, {"sort": sort})), sort


@test
def cursor_walk_by_name_with_unusual_names(ctx):
    t = ctx.new_tenant()
    names = ["tab\tname", "tab\tname", "quote \"q\" 'q'", "back\\slash", "\U0001F600 emoji",
             "\u05e9\u05dc\u05d5\u05dd", "a", "A", "z", "%_", "   ", "x,y", "\u00e9" * 255,
             "\u4e2d" * 255, "=", "a" * 255]
    for n in names:
        create(ctx, t, name=n)
    walked = assert_walks_match(ctx, t, "name", limit=1)
    assert sorted(r["name"] for r in walked) == sorted(names)
    assert_walks_match(ctx, t, "name", limit=2)


@test
def cursor_walk_by_name_with_newlines_in_names(ctx):
    # Names may hold line breaks; a cursor positioned on one must still work.
    t = ctx.new_tenant()
    names = ["line\nbreak", "line\nbreak", "a\r\nb", "v1\n-createdAt\n2020-01-01\nx",
             "plain", "\n"]
    for n in names:
        create(ctx, t, name=n)
    walked = assert_walks_match(ctx, t, "name", limit=1)
    assert sorted(r["name"] for r in walked) == sorted(names)


@test
def cursor_walk_by_name_with_longest_names(ctx):
    # 255 four-byte characters: the longest name there is, 1,020 bytes.
    t = ctx.new_tenant()
    names = [chr(0x1F600 + i) * 255 for i in range(4)]
    for n in names:
        create(ctx, t, name=n)
        create(ctx, t, name=n)
    walked = assert_walks_match(ctx, t, "name", limit=1)
    assert [r["name"] for r in walked] == sorted(names * 2)


@test
def cursor_is_a_position_not_a_snapshot(ctx):
    t = ctx.new_tenant()
    for n in ("alpha", "bravo", "charlie", "delta", "echo"):
        create(ctx, t, name=n)
    body = list_ok(ctx, t, {"sort": "name", "limit": 2, "cursor": ""})
    assert [r["name"] for r in body["data"]] == ["alpha", "bravo"]
    cur = body["nextCursor"]
    create(ctx, t, name="beta")      # before the position: not seen
    create(ctx, t, name="cobra")     # after it: seen
    rest, _ = walk_from(ctx, t, {"sort": "name", "limit": 2}, cur)
    assert [r["name"] for r in rest] == ["charlie", "cobra", "delta", "echo"]
    # A well-formed cursor the server never issued (made from a real one by
    # changing its key to "c") is just a position - or, for a server that
    # signs its cursors, refused as invalid_cursor; never anything else.
    bravo_id = body["data"][-1]["id"]
    forged = forge(cur, ("bravo", "c"), (bravo_id, "00000000-0000-0000-0000-000000000000"))
    if forged is not None:
        r = list_leads(ctx, t, {"sort": "name", "limit": 10, "cursor": forged})
        if r.status == 400:
            assert_error(r, 400, "invalid_cursor")
        else:
            assert r.status == 200, r
            assert [x["name"] for x in r.json["data"]] == ["charlie", "cobra", "delta", "echo"]
            assert r.json["nextCursor"] is None


def walk_from(ctx, t, params, cursor):
    params = dict(params)
    params["cursor"] = cursor
    rows = []
    pages = 0
    while params["cursor"] is not None:
        body = list_ok(ctx, t, params)
        rows += body["data"]
        params["cursor"] = body["nextCursor"]
        pages += 1
        assert pages < 1000
    return rows, pages


# ---------------------------------------------------------------- filters

@test
def filter_status(ctx):
    t = ctx.new_tenant()
    made = {}
    for s in STATUSES:
        made[s] = [create(ctx, t, name=s + " a", status=s)["id"],
                   create(ctx, t, name=s + " b", status=s)["id"]]
    for s in STATUSES:
        assert set(ids(all_rows(ctx, t, {"status": s}))) == set(made[s]), s
    got = set(ids(all_rows(ctx, t, {"status": "WON,NEW"})))
    assert got == set(made["WON"] + made["NEW"])
    got = set(ids(all_rows(ctx, t, {"status": ",".join(STATUSES)})))
    assert len(got) == 12
    assert list_ok(ctx, t, {"status": "LOST,WON,NEW"})["pagination"]["total"] == 6
    for bad in ("new", "New", "BOGUS", "", "NEW,", ",NEW", "NEW,,WON", "NEW WON", "NEW;WON",
                "NEW,bogus", " NEW", "'NEW'", "NEW\u0000", "NEW}", "{NEW}", "NEW,WON\"}"):
        assert_error(list_leads(ctx, t, {"status": bad}), 400, "invalid_parameter", "status")


@test
def filter_source_assigned_to_email_exact(ctx):
    t = ctx.new_tenant()
    u1, u2 = make_user(ctx, t), make_user(ctx, t)
    a = create(ctx, t, name="a", source="web", assignedTo=u1, email="ada@example.com")
    b = create(ctx, t, name="b", source="website", assignedTo=u2, email="ada@example.co")
    c = create(ctx, t, name="c", source="web site", email="xada@example.com")
    d = create(ctx, t, name="d")
    assert ids(all_rows(ctx, t, {"source": "web"})) == [a["id"]]
    assert ids(all_rows(ctx, t, {"source": "web site"})) == [c["id"]]
    assert ids(all_rows(ctx, t, {"source": "we"})) == []
    assert ids(all_rows(ctx, t, {"assignedTo": u1})) == [a["id"]]
    assert ids(all_rows(ctx, t, {"assignedTo": u2.upper()})) == [b["id"]]
    assert ids(all_rows(ctx, t, {"assignedTo": str(uuid.uuid4())})) == []
    # Another tenant's user, with a lead assigned to them there: nothing here.
    other = ctx.new_tenant()
    ou = make_user(ctx, other)
    theirs = create(ctx, other, name="a", source="web", assignedTo=ou, email="ada@example.com")
    assert ids(all_rows(ctx, t, {"assignedTo": ou})) == []
    assert ids(all_rows(ctx, other, {"assignedTo": ou})) == [theirs["id"]]
    assert ids(all_rows(ctx, other, {"assignedTo": u1})) == []
    assert ids(all_rows(ctx, t, {"email": "ada@example.com"})) == [a["id"]]
    assert ids(all_rows(ctx, t, {"email": "ada@example"})) == []
    assert ids(all_rows(ctx, t, {"email": "da@example.com"})) == []
    assert ids(all_rows(ctx, t, {"email": "ada@example.co"})) == [b["id"]]
    assert ids(all_rows(ctx, t, {"email": "%@example.com"})) == []
    assert ids(all_rows(ctx, t, {"source": "web", "assignedTo": u2})) == []
    assert len(all_rows(ctx, t)) == 4 and d
    for bad in ("x", "1234", u1 + "0", u1[:-1], "{" + u1 + "}", u1.replace("-", ""), ""):
        assert_error(list_leads(ctx, t, {"assignedTo": bad}), 400, "invalid_parameter",
                     "assignedTo")
    assert_error(list_leads(ctx, t, {"source": "s" * 101}), 400, "invalid_parameter", "source")
    assert ids(all_rows(ctx, t, {"source": "\u00e9" * 100})) == []


@test
def filter_q_is_case_insensitive_substring_with_literal_wildcards(ctx):
    t = ctx.new_tenant()
    L = {}
    L["alice"] = create(ctx, t, name="Alice Wonderland")
    L["bob"] = create(ctx, t, name="Robert", email="bob.BUILDER@Example.com")
    L["acme"] = create(ctx, t, name="Carol", company="ACME Widgets")
    L["pct"] = create(ctx, t, name="100% Pure")
    L["nopct"] = create(ctx, t, name="1000 Pure")
    L["us"] = create(ctx, t, name="snake_case")
    L["nous"] = create(ctx, t, name="snakeXcase")
    L["bs"] = create(ctx, t, name="back\\slash")
    L["quote"] = create(ctx, t, company="O'Reilly \"Media\"")
    L["sql"] = create(ctx, t, name="x'; DROP TABLE leads; --")
    L["uni"] = create(ctx, t, name="Caf\u00e9 \U0001F600")

    def q(term):
        return set(ids(all_rows(ctx, t, {"q": term})))

    def want(*keys):
        return {L[k]["id"] for k in keys}

    assert q("wonder") == want("alice")
    assert q("ALICE") == want("alice")
    assert q("builder") == want("bob")
    assert q("EXAMPLE.COM") == want("bob")
    assert q("widgets") == want("acme")
    assert q("%") == want("pct")
    assert q("100%") == want("pct")
    assert q("0% p") == want("pct")
    assert q("_") == want("us")
    assert q("e_c") == want("us")
    assert q("\\") == want("bs")
    assert q("k\\s") == want("bs")
    assert q("'") == want("quote", "sql")
    assert q("\"media\"") == want("quote")
    assert q("drop table") == want("sql")
    assert q("\U0001F600") == want("uni")
    assert q("caf\u00e9") == want("uni")
    assert q("pure") == want("pct", "nopct")
    assert q("zzz") == set()
    assert q("%%") == set()
    assert q("a" * 255) == set()
    assert_error(list_leads(ctx, t, {"q": "a" * 256}), 400, "invalid_parameter", "q")
    # Combined with another filter, and in cursor mode.
    assert set(ids(all_rows(ctx, t, {"q": "pure", "sort": "name"}))) == want("pct", "nopct")
    walked, _ = walk(ctx, t, {"q": "e"}, limit=2)
    assert set(ids(walked)) == q("e")
    assert ctx.count_leads(t.id) == len(L)


@test
def filter_created_after_and_before(ctx):
    t = ctx.new_tenant()
    leads = []
    for i in range(3):
        leads.append(create(ctx, t, name="t%d" % i))
        time.sleep(0.01)
    l0, l1, l2 = leads
    assert l0["createdAt"] < l1["createdAt"] < l2["createdAt"]

    def got(params):
        return set(ids(all_rows(ctx, t, params)))

    every = {x["id"] for x in leads}
    # createdAfter is inclusive (>=), createdBefore exclusive (<).
    assert got({"createdAfter": l1["createdAt"]}) == {l1["id"], l2["id"]}
    assert got({"createdBefore": l1["createdAt"]}) == {l0["id"]}
    assert got({"createdAfter": l0["createdAt"], "createdBefore": l2["createdAt"]}) == {
        l0["id"], l1["id"]}
    assert got({"createdAfter": l1["createdAt"], "createdBefore": l1["createdAt"]}) == set()
    # The same instant with an offset, and without fractional seconds.
    ts = datetime.datetime.strptime(l1["createdAt"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    plus = ts.astimezone(datetime.timezone(datetime.timedelta(hours=5, minutes=30)))
    minus = ts.astimezone(datetime.timezone(datetime.timedelta(hours=-8)))
    assert got({"createdAfter": plus.isoformat(timespec="microseconds")}) == {l1["id"], l2["id"]}
    assert got({"createdBefore": minus.isoformat(timespec="microseconds")}) == {l0["id"]}
    whole = (ts - datetime.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert got({"createdAfter": whole}) == every
    later = (ts + datetime.timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert got({"createdAfter": later}) == set()
    # Dates.
    day = ts.date()
    assert got({"createdAfter": (day - datetime.timedelta(days=1)).isoformat()}) == every
    assert got({"createdAfter": (day + datetime.timedelta(days=1)).isoformat()}) == set()
    assert got({"createdBefore": (day + datetime.timedelta(days=1)).isoformat()}) == every
    assert got({"createdBefore": (day - datetime.timedelta(days=1)).isoformat()}) == set()
    assert got({"createdAfter": "2999-12-31"}) == set()
    assert got({"createdBefore": "1970-01-01T00:00:00Z"}) == set()
    # Cursor mode with a range.
    walked, _ = walk(ctx, t, {"createdAfter": l1["createdAt"], "sort": "createdAt"}, limit=1)
    assert ids(walked) == [l1["id"], l2["id"]]


@test
def filter_created_rejects_bad_dates(ctx):
    t = ctx.new_tenant()
    create(ctx, t)
    bad = ["yesterday", "", "2026-1-1", "2026/01/01", "01/02/2026", "2026-13-01",
           "2026-00-10", "2026-01-00", "2026-01-32", "2026-01-01T25:00:00Z",
           "2026-01-01T10:60:00Z", "2026-01-01T10:00:00+25:00",
           "2026-01-01T10:00:00.Z", "2026-01-01Tnoon", "2026-01-01T10:00:00Z junk",
           "2026-01-01'; DROP TABLE leads; --"]
    for name in ("createdAfter", "createdBefore"):
        for v in bad:
            assert_error(list_leads(ctx, t, {name: v}), 400, "invalid_parameter", name)
    assert ctx.count_leads(t.id) == 1


@test
def filter_created_rejects_impossible_calendar_dates(ctx):
    # Well-shaped but not real dates: still the parameter's fault.
    t = ctx.new_tenant()
    for name in ("createdAfter", "createdBefore"):
        for v in ("2026-02-30", "2026-04-31", "2025-02-29", "2026-02-30T10:00:00Z"):
            assert_error(list_leads(ctx, t, {name: v}), 400, "invalid_parameter", name)


@test
def filter_priority(ctx):
    t = ctx.new_tenant()
    hi = [create(ctx, t, name="h%d" % i, customFields={"priority": "high", "x": i})["id"]
          for i in range(3)]
    lo = create(ctx, t, name="l", customFields={"priority": "low"})["id"]
    create(ctx, t, name="none", customFields={"other": "high"})
    create(ctx, t, name="nested", customFields={"meta": {"priority": "high"}})
    odd = create(ctx, t, name="odd", customFields={"priority": "it's \"urgent\" %"})["id"]
    assert set(ids(all_rows(ctx, t, {"priority": "high"}))) == set(hi)
    assert ids(all_rows(ctx, t, {"priority": "low"})) == [lo]
    assert ids(all_rows(ctx, t, {"priority": "HIGH"})) == []
    assert ids(all_rows(ctx, t, {"priority": "it's \"urgent\" %"})) == [odd]
    assert set(ids(all_rows(ctx, t, {"priority": "high", "q": "h1"}))) == {hi[1]}
    # PATCH changes what the filter sees.
    r = ctx.http("PATCH", "/v1/leads/" + hi[0], key=t.key,
                 body={"customFields": {"priority": None}})
    assert r.status == 200, r
    assert set(ids(all_rows(ctx, t, {"priority": "high"}))) == set(hi[1:])


@test
def filters_combine_with_and(ctx):
    t = ctx.new_tenant()
    u = make_user(ctx, t)
    target = create(ctx, t, name="Target Co", status="WON", source="ads", assignedTo=u,
                    email="t@example.com", customFields={"priority": "high"})
    create(ctx, t, name="Target Co", status="LOST", source="ads", assignedTo=u,
           email="t@example.com", customFields={"priority": "high"})
    create(ctx, t, name="Target Co", status="WON", source="web", assignedTo=u,
           email="t@example.com", customFields={"priority": "high"})
    create(ctx, t, name="Target Co", status="WON", source="ads",
           email="t@example.com", customFields={"priority": "high"})
    create(ctx, t, name="Target Co", status="WON", source="ads", assignedTo=u,
           email="other@example.com", customFields={"priority": "high"})
    create(ctx, t, name="Target Co", status="WON", source="ads", assignedTo=u,
           email="t@example.com", customFields={"priority": "low"})
    create(ctx, t, name="Other", status="WON", source="ads", assignedTo=u,
           email="t@example.com", customFields={"priority": "high"})
    params = {"status": "WON,NEW", "source": "ads", "assignedTo": u, "email": "t@example.com",
              "priority": "high", "q": "target", "createdAfter": "2000-01-01"}
    assert ids(all_rows(ctx, t, params)) == [target["id"]]
    walked, _ = walk(ctx, t, params, limit=1)
    assert ids(walked) == [target["id"]]


# ---------------------------------------------------------------- fields

@test
def fields_selects_a_subset(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="F", email="f@example.com", customFields={"a": 1})
    for fields, keys in [("id", {"id"}), ("id,name", {"id", "name"}),
                         ("name,id", {"id", "name"}),
                         ("customFields,version,tenantId", {"customFields", "version", "tenantId"}),
                         (",".join(sorted(LEAD_KEYS)), LEAD_KEYS)]:
        for extra in ({}, {"cursor": ""}):
            p = dict(extra)
            p["fields"] = fields
            row = list_ok(ctx, t, p)["data"][0]
            assert set(row.keys()) == keys, (fields, row)
            for k in keys:
                assert row[k] == lead[k], k
    for bad in ("bogus", "id,bogus", "", "id,", ",id", "id,,name", "ID", "tenant_id",
                "id name", "created_at", "*"):
        assert_error(list_leads(ctx, t, {"fields": bad}), 400, "invalid_parameter", "fields")


# ---------------------------------------------------------------- parameter errors

@test
def limit_page_sort_bad_values(ctx):
    t = ctx.new_tenant()
    create(ctx, t)
    for v in ("0", "101", "-1", "abc", "", "1.5", "1e2", " 5", "+5", "5 ", "0x10", "1000",
              "99999999999999999999999"):
        assert_error(list_leads(ctx, t, {"limit": v}), 400, "invalid_parameter", "limit")
        assert_error(list_leads(ctx, t, {"limit": v, "cursor": ""}), 400, "invalid_parameter",
                     "limit")
    for v in ("0", "-1", "x", "", "1.5", "99999999999999999999999", " 1"):
        assert_error(list_leads(ctx, t, {"page": v}), 400, "invalid_parameter", "page")
    for v in ("created", "createdat", "created_at", "-name", "NAME", "", " createdAt",
              "+createdAt", "name,createdAt", "--createdAt", "email", "id"):
        assert_error(list_leads(ctx, t, {"sort": v}), 400, "invalid_parameter", "sort")
        assert_error(list_leads(ctx, t, {"sort": v, "cursor": ""}), 400, "invalid_parameter",
                     "sort")
    for good in ("1", "100", "20"):
        assert list_leads(ctx, t, {"limit": good}).status == 200


@test
def unknown_and_repeated_parameters(ctx):
    t = ctx.new_tenant()
    for name in ("foo", "Status", "LIMIT", "offset", "page_size", "tenantId", "tenant_id", "id",
                 "sort_by", "cursor_", "q "):
        assert_error(list_leads(ctx, t, [(name, "1")]), 400, "unknown_parameter", name)
        assert_error(list_leads(ctx, t, [("limit", "5"), (name, "1")]), 400,
                     "unknown_parameter", name)
    for name, v in (("status", "NEW"), ("limit", "5"), ("page", "1"), ("q", "a"),
                    ("sort", "name"), ("cursor", ""), ("fields", "id"), ("email", "a@b.co"),
                    ("createdAfter", "2020-01-01")):
        assert_error(list_leads(ctx, t, [(name, v), (name, v)]), 400, "invalid_parameter", name)
    assert_error(list_leads(ctx, t, [("status", "NEW"), ("limit", "3"), ("status", "WON")]), 400,
                 "invalid_parameter", "status")
    # Other endpoints take no parameters at all.
    lead = create(ctx, t)
    assert_error(ctx.http("GET", "/v1/leads/stats?x=1", key=t.key), 400, "unknown_parameter",
                 "x")
    assert_error(ctx.http("GET", "/v1/leads/%s?fields=id" % lead["id"], key=t.key), 400,
                 "unknown_parameter", "fields")


@test
def cursor_errors(ctx):
    t = ctx.new_tenant(sample_leads=10)
    first = list_ok(ctx, t, {"cursor": "", "limit": 3})
    cur = first["nextCursor"]
    assert cur
    name_page = list_ok(ctx, t, {"cursor": "", "limit": 3, "sort": "name"})
    by_name = name_page["nextCursor"]
    by_created = list_ok(ctx, t, {"cursor": "", "limit": 3, "sort": "createdAt"})["nextCursor"]
    by_updated = list_ok(ctx, t, {"cursor": "", "limit": 3, "sort": "-updatedAt"})["nextCursor"]
    # The default sort is -createdAt: its cursor works with the sort spelled out.
    assert list_leads(ctx, t, {"cursor": cur, "limit": 3, "sort": "-createdAt"}).status == 200
    # A cursor belongs to its sort.
    for c, sort in ((cur, "createdAt"), (cur, "name"), (by_name, None), (by_name, "-createdAt"),
                    (by_created, None), (by_created, "-updatedAt"), (by_updated, "updatedAt"),
                    (by_updated, "-createdAt")):
        p = {"cursor": c, "limit": 3}
        if sort:
            p["sort"] = sort
        assert_error(list_leads(ctx, t, p), 400, "invalid_cursor")
    nil = "00000000-0000-0000-0000-000000000000"
    garbage = [
        "abc", "!!!!", "x" * 2000, cur[:-4], cur + "A", cur + "AAAA", "=" + cur, cur.upper(),
        b64("hello"), b64("v1\n-createdAt\n2025-01-01T00:00:00.000000Z"),
        b64("v2\n-createdAt\n2025-01-01T00:00:00.000000Z\n" + nil),
        b64("v1\nbogus\n2025-01-01T00:00:00.000000Z\n" + nil),
        b64("v1\n-createdAt\nnot a time\n" + nil),
        b64("v1\n-createdAt\n2025-01-01T00:00:00.000000Z\nnot-a-uuid"),
        b64("v1\n-createdAt\n2025-01-01T00:00:00.000000Z\n" + nil + "\nextra"),
        b64("v1\n-createdAt\n'; DROP TABLE leads; --\n" + nil),
        b64("v1\nname\n\n" + nil),
        base64.urlsafe_b64encode(b"v1\nname\n\xff\xfe\n" + nil.encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(b"v1\nname\na\x00b\n" + nil.encode()).decode().rstrip("="),
        base64.b64encode(b"v1\nname\n??>>\n" + nil.encode()).decode(),
    ]
    for g in garbage:
        assert_error(list_leads(ctx, t, {"cursor": g}), 400, "invalid_cursor")
        assert_error(list_leads(ctx, t, {"cursor": g, "sort": "name"}), 400, "invalid_cursor")
    # Real cursors with one part spoiled (where the format shows its parts).
    last = first["data"][-1]
    ts, lid = last["createdAt"], last["id"]
    spoiled = [(ts, "not a time"), (ts, "'; DROP TABLE leads; --"), (ts, ""),
               (ts, b"\xff\xfe"), (ts, ts + "\x00"), (ts, ts + "\nextra"), (lid, "not-a-uuid"),
               (lid, lid + "0"), (lid, ""), (lid, lid.replace("-", "")), ("-createdAt", "bogus"),
               ("v1", "v9")]
    for old, new in spoiled:
        f = forge(cur, (old, new))
        if f is not None:
            assert_error(list_leads(ctx, t, {"cursor": f}), 400, "invalid_cursor")
    nm, nid = name_page["data"][-1]["name"], name_page["data"][-1]["id"]
    for old, new in ((nm, ""), (nm, b"\xff"), (nm, nm + "\x00"), (nid, "x" * 36)):
        f = forge(by_name, (old, new))
        if f is not None:
            assert_error(list_leads(ctx, t, {"cursor": f, "sort": "name"}), 400, "invalid_cursor")
    raw = unb64(cur)
    if raw is not None:
        assert_error(list_leads(ctx, t, {"cursor": b64(raw[:-5])}), 400, "invalid_cursor")
        assert_error(list_leads(ctx, t, {"cursor": b64(raw[:len(raw) // 2])}), 400,
                     "invalid_cursor")
    # page and cursor together.
    for p in ({"page": 1, "cursor": ""}, {"page": 2, "cursor": cur}, {"cursor": cur, "page": 1}):
        r = list_leads(ctx, t, p)
        assert_error(r, 400, "invalid_parameter")
        assert r.json["error"].get("field") in ("page", "cursor"), r.json
    assert ctx.count_leads(t.id) == 10


@test
def cursor_with_impossible_timestamp_is_invalid_cursor(ctx):
    # A forged cursor whose timestamp is well-shaped but not a real instant.
    t = ctx.new_tenant(sample_leads=3)
    for sort, bad in (("-createdAt", "2026-02-30T00:00:00.000000Z"),
                      ("createdAt", "2025-04-31T12:00:00.000000Z"),
                      ("-updatedAt", "2026-02-29T00:00:00.000000Z"),
                      ("updatedAt", "2026-01-01T24:30:00.000000Z")):
        body = list_ok(ctx, t, {"cursor": "", "limit": 1, "sort": sort})
        last = body["data"][-1]
        key = last[sort.lstrip("-")]
        cursors = hand_made(sort, bad, last["id"])
        forged = forge(body["nextCursor"], (key, bad))
        if forged is not None:
            cursors.append(forged)
        for c in cursors:
            assert_error(list_leads(ctx, t, {"cursor": c, "sort": sort}), 400, "invalid_cursor")


@test
def foreign_cursor_only_positions_within_own_rows(ctx):
    a = ctx.new_tenant(sample_leads=10)
    b = ctx.new_tenant(sample_leads=10)
    cur = list_ok(ctx, b, {"cursor": "", "limit": 4})["nextCursor"]
    assert cur
    body = list_ok(ctx, a, {"cursor": cur, "limit": 100})
    mine = set(ids(all_rows(ctx, a)))
    assert set(ids(body["data"])) <= mine
    assert all(row["tenantId"] == a.id for row in body["data"])
