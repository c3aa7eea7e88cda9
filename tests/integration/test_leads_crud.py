"""test_leads_crud.py - the single-lead endpoints and their behaviour.

Covers POST /v1/leads (201, Location, ETag, the lead's exact shape and
defaults, timestamp format, every field's validation and length limits at
the boundary - counted in characters, not bytes - unknown fields, the
customFields size limit), GET /v1/leads/{id} (ETag, invalid ids, absent and
other tenants' leads indistinguishable), PATCH (partial update, null
clearing, customFields shallow merge, version/updatedAt bumps, every If-Match
form, stale and malformed If-Match), DELETE (204, then 404), GET
/v1/leads/stats, the success headers (X-Tenant-ID, percent-encoded
X-Tenant-Name, Cache-Control), and that SQL/JSON meta-characters, emoji and
RTL text are stored and returned verbatim.

Every failing write checks that nothing was written: the tenant's row count
(seen by the owner, past RLS) is unchanged, and a lead a failed PATCH aimed at
reads back exactly as before.
"""
import datetime
import json
import re
import time
import uuid

from harness import make_user, assert_error, test

LEAD_KEYS = {"id", "tenantId", "name", "email", "phone", "company", "status", "source",
             "createdAt", "updatedAt", "createdBy", "assignedTo", "customFields", "version",
             "lastActivityAt"}
STATUSES = ["NEW", "CONTACTED", "QUALIFIED", "PROPOSAL", "WON", "LOST"]
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")

# Values that break naive SQL or JSON handling; each must come back verbatim.
META_VALUES = [
    "O'Brien \"The Hammer\"",
    "back\\slash \\\\ and \\n (not a newline) \\u0041",
    "Robert'); DROP TABLE leads; --",
    "'; DROP TABLE leads; --",
    "\" OR 1=1 --",
    "{\"json\": \"inside\", \"x\": [1, 2]}",
    "emoji \U0001F600\U0001F680 flags \U0001F1E9\U0001F1F0"
    " zwj \U0001F468\u200d\U0001F469\u200d\U0001F467",
    "RTL \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u202eoverride\u202c end",
    "tab\there newline\nthere cr\rthere",
    "percent % underscore _ star * caret ^",
    "$1 $$ dollar $$ ::uuid E'\\x00'",
    "</script><script>alert(1)</script>",
    "\u2028\u2029 separators, \u00a0nbsp, \ufeffbom",
    "control \u0001\u0002\u001f\u007f chars",
    "null",
    "   ",
]


# ---------------------------------------------------------------- helpers

def create(ctx, t, **fields):
    body = dict(fields)
    body.setdefault("name", "Lead")
    r = ctx.http("POST", "/v1/leads", key=t.key, body=body)
    assert r.status == 201, r
    return r.json


def get(ctx, t, lead_id):
    r = ctx.http("GET", "/v1/leads/" + lead_id, key=t.key)
    assert r.status == 200, r
    return r.json


def patch(ctx, t, lead_id, body, headers=None):
    return ctx.http("PATCH", "/v1/leads/" + lead_id, key=t.key, body=body, headers=headers)


def parse_ts(s):
    assert TS_RE.match(s), "timestamp %r is not YYYY-MM-DDTHH:MM:SS.ffffffZ" % s
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)


def assert_lead_shape(lead, tenant):
    assert set(lead.keys()) == LEAD_KEYS, sorted(lead.keys())
    assert UUID_RE.match(lead["id"]), lead["id"]
    assert lead["tenantId"] == tenant.id, lead
    assert isinstance(lead["version"], int) and lead["version"] >= 1, lead
    assert isinstance(lead["customFields"], dict), lead
    assert lead["status"] in STATUSES, lead
    for k in ("createdAt", "updatedAt", "lastActivityAt"):
        parse_ts(lead[k])


def expect_rejected_create(ctx, t, body, status, code, field=None):
    """POST body must fail with exactly (status, code, field) and write nothing."""
    before = ctx.count_leads(t.id)
    r = ctx.http("POST", "/v1/leads", key=t.key, body=body)
    assert_error(r, status, code, field)
    after = ctx.count_leads(t.id)
    assert after == before, "a rejected POST (%r) wrote %d row(s)" % (body, after - before)
    return r


def expect_rejected_patch(ctx, t, lead, body, status, code, field=None, headers=None):
    """PATCH must fail with exactly (status, code, field) and leave the lead as it was."""
    before = ctx.count_leads(t.id)
    r = patch(ctx, t, lead["id"], body, headers=headers)
    assert_error(r, status, code, field)
    assert ctx.count_leads(t.id) == before
    now = get(ctx, t, lead["id"])
    assert now == lead, "a rejected PATCH (%r) changed the lead:\n%r\n->\n%r" % (body, lead, now)
    return r


def compact_len(obj):
    return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())


# ---------------------------------------------------------------- create

@test
def create_minimal_lead_has_exact_shape_and_defaults(ctx):
    t = ctx.new_tenant()
    t0 = datetime.datetime.now(datetime.timezone.utc)
    r = ctx.http("POST", "/v1/leads", key=t.key, body={"name": "Ada"})
    t1 = datetime.datetime.now(datetime.timezone.utc)
    assert r.status == 201, r
    lead = r.json
    assert_lead_shape(lead, t)
    assert r.header("Location") == "/v1/leads/" + lead["id"], r.headers
    assert r.header("ETag") == '"1"', r.headers
    assert (r.header("Content-Type") or "").startswith("application/json"), r.headers
    assert lead["name"] == "Ada"
    assert lead["status"] == "NEW"
    for k in ("email", "phone", "company", "source", "assignedTo"):
        assert lead[k] is None, (k, lead)
    # A key acts for the tenant, not for a user: no user (or a user id).
    assert lead["createdBy"] is None or UUID_RE.match(lead["createdBy"]), lead
    assert lead["customFields"] == {}
    assert lead["version"] == 1
    assert lead["createdAt"] == lead["updatedAt"], lead
    created = parse_ts(lead["createdAt"])
    slack = datetime.timedelta(seconds=5)
    assert t0 - slack <= created <= t1 + slack, (t0, created, t1)
    assert ctx.count_leads(t.id) == 1


@test
def create_full_lead_returns_every_value(ctx):
    t = ctx.new_tenant()
    assignee = make_user(ctx, t)
    body = {
        "name": "Grace Hopper",
        "email": "grace@navy.example.mil",
        "phone": "+1 (555) 010-2030 ext. 7",
        "company": "US Navy",
        "status": "QUALIFIED",
        "source": "conference",
        "assignedTo": assignee,
        "customFields": {"priority": "high", "score": 42, "ratio": 0.5, "tags": ["a", "b"],
                         "nested": {"deep": {"x": [1, {"y": None}]}}, "flag": True,
                         "nothing": None, "": "empty key"},
    }
    r = ctx.http("POST", "/v1/leads", key=t.key, body=body)
    assert r.status == 201, r
    lead = r.json
    assert_lead_shape(lead, t)
    for k, v in body.items():
        assert lead[k] == v, (k, lead[k], v)
    assert get(ctx, t, lead["id"]) == lead


@test
def create_accepts_every_status(ctx):
    t = ctx.new_tenant()
    for s in STATUSES:
        lead = create(ctx, t, name="S " + s, status=s)
        assert lead["status"] == s
    assert ctx.count_leads(t.id) == len(STATUSES)


@test
def create_assigned_to_uppercase_uuid_is_normalized(ctx):
    t = ctx.new_tenant()
    u = make_user(ctx, t)
    lead = create(ctx, t, assignedTo=u.upper())
    assert lead["assignedTo"] == u


@test
def create_assigned_to_must_be_a_user_of_the_same_tenant(ctx):
    """assignedTo is a foreign key (tenant_id, assigned_to) -> users: another
    tenant's (real) user and an id that is no user at all are both 400
    invalid_reference, and nothing is written in either tenant."""
    t = ctx.new_tenant()
    other = ctx.new_tenant()
    theirs = make_user(ctx, other)
    n_other = ctx.count_leads(other.id)
    for stranger in (theirs, theirs.upper(), str(uuid.uuid4())):
        r = expect_rejected_create(ctx, t, {"name": "x", "assignedTo": stranger}, 400,
                                   "invalid_reference")
        assert other.id not in r.body and stranger.lower() not in r.body.lower(), r
        expect_rejected_create(ctx, t, {"name": "x", "status": "WON", "customFields": {"a": 1},
                                        "assignedTo": stranger}, 400, "invalid_reference")
    assert ctx.count_leads(t.id) == 0
    assert ctx.count_leads(other.id) == n_other
    # The other tenant may assign to its own user (control).
    lead = create(ctx, other, name="theirs", assignedTo=theirs)
    assert lead["assignedTo"] == theirs


@test
def create_null_optional_fields_are_null(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="N", email=None, phone=None, company=None, source=None,
                  assignedTo=None)
    for k in ("email", "phone", "company", "source", "assignedTo"):
        assert lead[k] is None, (k, lead)


@test
def create_ids_are_unique(ctx):
    t = ctx.new_tenant()
    ids = {create(ctx, t, name="L%d" % i)["id"] for i in range(10)}
    assert len(ids) == 10
    assert ctx.count_leads(t.id) == 10


@test
def create_name_is_required_and_non_empty(ctx):
    t = ctx.new_tenant()
    expect_rejected_create(ctx, t, {}, 400, "validation_error", "name")
    expect_rejected_create(ctx, t, {"email": "a@example.com"}, 400, "validation_error", "name")
    expect_rejected_create(ctx, t, {"name": ""}, 400, "validation_error", "name")
    expect_rejected_create(ctx, t, {"name": None}, 400, "validation_error", "name")


@test
def create_name_length_counts_characters_not_bytes(ctx):
    t = ctx.new_tenant()
    for ch in ("a", "\u00e9", "\u4e2d", "\U0001F600"):
        lead = create(ctx, t, name=ch * 255)
        assert lead["name"] == ch * 255
        assert get(ctx, t, lead["id"])["name"] == ch * 255
        expect_rejected_create(ctx, t, {"name": ch * 256}, 400, "validation_error", "name")
    assert create(ctx, t, name="x")["name"] == "x"


@test
def create_string_field_limits_at_the_boundary(ctx):
    t = ctx.new_tenant()
    limits = {"phone": 50, "company": 255, "source": 100}
    for field, n in limits.items():
        for ch in ("p", "\u00f8", "\U0001F4DE"):
            lead = create(ctx, t, name="limit " + field, **{field: ch * n})
            assert lead[field] == ch * n, field
            expect_rejected_create(ctx, t, {"name": "x", field: ch * (n + 1)}, 400,
                                   "validation_error", field)


@test
def create_email_limit_and_plausibility(ctx):
    t = ctx.new_tenant()
    # 64-char local part + "@" + 190-char domain = 255 characters.
    domain = ("d" * 63 + ".") * 2 + "e" * 58 + ".com"
    email255 = "l" * 64 + "@" + domain
    assert len(email255) == 255
    assert create(ctx, t, email=email255)["email"] == email255
    email256 = "l" * 64 + "@" + "x" + domain
    expect_rejected_create(ctx, t, {"name": "x", "email": email256}, 400, "validation_error",
                           "email")
    good = ["a@b.co", "first.last+tag@sub.example.org", "o'brien@example.ie",
            "\u00fcser@b\u00fccher.example"]
    for e in good:
        assert create(ctx, t, email=e)["email"] == e
    bad = ["", "plain", "no-at.example.com", "@example.com", "user@", "user@nodot",
           "a@@example.com", "a@b@example.com", "sp ace@example.com", "user@example.com.",
           "user@.example.com", "user@exa..mple.com", "<a@example.com>", "a@example.com\n"]
    for e in bad:
        expect_rejected_create(ctx, t, {"name": "x", "email": e}, 400, "validation_error",
                               "email")


@test
def create_status_must_be_one_of_six(ctx):
    t = ctx.new_tenant()
    for s in ("new", "New", "ARCHIVED", "", " NEW", "NEW ", "NEW,WON", "WONX"):
        expect_rejected_create(ctx, t, {"name": "x", "status": s}, 400, "validation_error",
                               "status")


@test
def create_wrong_json_types_name_the_field(ctx):
    t = ctx.new_tenant()
    cases = [
        ("name", 123), ("name", 1.5), ("name", True), ("name", ["a"]), ("name", {"a": 1}),
        ("email", 5), ("email", ["a@b.co"]), ("phone", 5551234), ("phone", False),
        ("company", {"n": "x"}), ("source", 1), ("source", []), ("status", 1),
        ("status", ["NEW"]), ("customFields", "text"), ("customFields", [1, 2]),
        ("customFields", 5), ("customFields", True), ("assignedTo", 5),
        ("assignedTo", "not-a-uuid"), ("assignedTo", ""), ("assignedTo", [str(uuid.uuid4())]),
        ("assignedTo", str(uuid.uuid4()) + "0"), ("assignedTo", "{%s}" % uuid.uuid4()),
    ]
    for field, value in cases:
        body = {"name": "x"}
        body[field] = value
        expect_rejected_create(ctx, t, body, 400, "validation_error", field)


@test
def create_unknown_and_server_owned_fields_are_rejected(ctx):
    t = ctx.new_tenant()
    other = ctx.new_tenant()
    for key, value in [("tenantId", other.id), ("tenantId", t.id), ("id", str(uuid.uuid4())),
                       ("version", 7), ("createdAt", "2020-01-01T00:00:00.000000Z"),
                       ("updatedAt", "2020-01-01T00:00:00.000000Z"),
                       ("createdBy", str(uuid.uuid4())),
                       ("lastActivityAt", "2020-01-01T00:00:00.000000Z"),
                       ("tenant_id", other.id), ("custom_fields", {}), ("Name", "x"),
                       ("foo", "bar"), ("name ", "x"), ("\u00e9", 1), ("a.b", 1),
                       ("name\"; --", "x")]:
        body = {"name": "x", key: value}
        expect_rejected_create(ctx, t, body, 400, "unknown_field", key)
    assert ctx.count_leads(other.id) == 0


@test
def create_unknown_field_is_named_exactly_even_when_empty_or_long(ctx):
    t = ctx.new_tenant()
    wrong = []
    for key in ("", "k" * 100, "\u00e9" * 40):
        r = ctx.http("POST", "/v1/leads", key=t.key, body={"name": "x", key: 1})
        assert_error(r, 400, "unknown_field")
        if r.json["error"].get("field") != key:
            wrong.append((key, r.json["error"].get("field")))
    assert ctx.count_leads(t.id) == 0
    assert not wrong, "field does not name the key (sent, got): %r" % wrong


@test
def create_custom_fields_size_limit_boundary(ctx):
    t = ctx.new_tenant()
    limit = 16 * 1024
    # One key: {"k":"xxx..."} serialized compactly is exactly the limit.
    pad = limit - compact_len({"k": ""})
    cf = {"k": "x" * pad}
    assert compact_len(cf) == limit
    lead = create(ctx, t, customFields=cf)
    assert lead["customFields"] == cf
    cf_over = {"k": "x" * (pad + 1)}
    expect_rejected_create(ctx, t, {"name": "x", "customFields": cf_over}, 400,
                           "validation_error", "customFields")
    # Far over the limit.
    expect_rejected_create(ctx, t, {"name": "x", "customFields": {"k": "x" * 100000}}, 400,
                           "validation_error", "customFields")


@test
def create_custom_fields_with_many_keys_under_the_limit(ctx):
    t = ctx.new_tenant()
    # 1,200 small keys: 14,491 bytes as compact JSON (what the client sent
    # and what the 16 KiB limit measures), 16,890 bytes when pretty-printed
    # with a space after every ':' and ','.  It is within the limit, so it
    # must be accepted and come back whole.
    cf = {"k%04d" % i: i for i in range(1200)}
    assert compact_len(cf) == 14491
    lead = create(ctx, t, customFields=cf)
    assert lead["customFields"] == cf
    assert get(ctx, t, lead["id"])["customFields"] == cf


@test
def create_custom_fields_non_ascii_counts_bytes(ctx):
    t = ctx.new_tenant()
    # 6,000 two-byte characters: 6,000 characters but 12,000+ bytes - fine;
    # 9,000 of them: 18,000+ bytes, over the limit.
    ok = {"v": "\u00e9" * 6000}
    assert create(ctx, t, customFields=ok)["customFields"] == ok
    expect_rejected_create(ctx, t, {"name": "x", "customFields": {"v": "\u00e9" * 9000}}, 400,
                           "validation_error", "customFields")


@test
def create_meta_characters_are_stored_verbatim(ctx):
    t = ctx.new_tenant()
    ids = []
    for v in META_VALUES:
        body = {"name": v, "company": v, "source": v[:100], "phone": v[:50],
                "customFields": {v: v, "k": [v, {v: v}]}}
        r = ctx.http("POST", "/v1/leads", key=t.key, body=body)
        assert r.status == 201, (v, r)
        lead = r.json
        for k, want in body.items():
            assert lead[k] == want, (k, lead[k], want)
        again = get(ctx, t, lead["id"])
        assert again == lead
        ids.append(lead["id"])
    for e in ["o'brien+q@example.com", "x%_'--@example.com",
              "\U0001F600@example.com", "\u05e9\u05dc\u05d5\u05dd@example.co.il"]:
        assert create(ctx, t, email=e)["email"] == e
    # The table is still there and holds exactly these rows.
    assert ctx.count_leads(t.id) == len(META_VALUES) + 4
    r = ctx.http("GET", "/v1/leads?limit=100", key=t.key)
    assert r.status == 200, r
    names = sorted(x["name"] for x in r.json["data"])
    assert sorted(META_VALUES + ["Lead"] * 4) == names


@test
def create_json_escapes_are_decoded(ctx):
    t = ctx.new_tenant()
    raw = (b'{"name": "caf\\u00e9 \\ud83d\\ude00 \\"q\\" \\\\ \\/ \\b\\f\\n\\r\\t",'
           b' "customFields": {"\\u0041": "\\u00e9"}}')
    r = ctx.http("POST", "/v1/leads", key=t.key, body=raw)
    assert r.status == 201, r
    assert r.json["name"] == "caf\u00e9 \U0001F600 \"q\" \\ / \b\f\n\r\t"
    assert r.json["customFields"] == {"A": "\u00e9"}


@test
def create_numbers_in_custom_fields_round_trip(ctx):
    t = ctx.new_tenant()
    cf = {"int": 9007199254740991, "neg": -17, "zero": 0, "real": 0.1, "small": 2.5e-10,
          "big": -1234567890123}
    r = ctx.http("POST", "/v1/leads", key=t.key, body={"name": "n", "customFields": cf})
    assert r.status == 201, r
    assert r.json["customFields"] == cf
    assert get(ctx, t, r.json["id"])["customFields"] == cf


# ---------------------------------------------------------------- get

@test
def get_returns_lead_with_etag_and_headers(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="Gettable", email="g@example.com")
    r = ctx.http("GET", "/v1/leads/" + lead["id"], key=t.key)
    assert r.status == 200, r
    assert r.json == lead
    assert r.header("ETag") == '"1"'
    assert r.header("X-Tenant-ID") == t.id
    assert r.header("Cache-Control") == "no-store"
    assert (r.header("Content-Type") or "").startswith("application/json")
    # The uppercase spelling of the same UUID names the same lead.
    r2 = ctx.http("GET", "/v1/leads/" + lead["id"].upper(), key=t.key)
    assert r2.status == 200 and r2.json == lead, r2


@test
def get_invalid_ids_are_400(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t)
    bad = ["123", "not-a-uuid", lead["id"].replace("-", ""), lead["id"] + "0", lead["id"][:-1],
           "{" + lead["id"] + "}", lead["id"][:8] + "_" + lead["id"][9:],
           "g" + lead["id"][1:], "%20" + lead["id"], "00000000-0000-0000-0000-00000000000z",
           "'%20OR%20'1'='1", "%C3%A9", "null"]
    for b in bad:
        assert_error(ctx.http("GET", "/v1/leads/" + b, key=t.key), 400, "invalid_id", "id")


@test
def get_absent_and_foreign_leads_are_indistinguishable_404(ctx):
    a = ctx.new_tenant()
    b = ctx.new_tenant()
    theirs = create(ctx, b, name="B's secret")
    r1 = ctx.http("GET", "/v1/leads/" + theirs["id"], key=a.key)
    assert_error(r1, 404, "lead_not_found")
    r2 = ctx.http("GET", "/v1/leads/" + str(uuid.uuid4()), key=a.key)
    assert_error(r2, 404, "lead_not_found")
    assert r1.json == r2.json, (r1, r2)
    assert "secret" not in r1.body
    assert r1.header("ETag") is None
    assert get(ctx, b, theirs["id"]) == theirs


# ---------------------------------------------------------------- patch

@test
def patch_updates_only_given_fields_and_bumps_version(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="Before", email="b@example.com", phone="1", company="C",
                  source="web", customFields={"a": 1})
    time.sleep(0.002)
    r = patch(ctx, t, lead["id"], {"name": "After"})
    assert r.status == 200, r
    up = r.json
    assert r.header("ETag") == '"2"'
    assert up["name"] == "After"
    assert up["version"] == 2
    assert parse_ts(up["updatedAt"]) > parse_ts(lead["updatedAt"])
    for k in LEAD_KEYS - {"name", "version", "updatedAt", "lastActivityAt"}:
        assert up[k] == lead[k], (k, up[k], lead[k])
    assert get(ctx, t, lead["id"]) == up
    g = ctx.http("GET", "/v1/leads/" + lead["id"], key=t.key)
    assert g.header("ETag") == '"2"'
    # Every field at once.
    u = make_user(ctx, t)
    body = {"name": "All", "email": "all@example.com", "phone": "+45 1", "company": "Co",
            "status": "WON", "source": "ads", "assignedTo": u, "customFields": {"b": 2}}
    r = patch(ctx, t, lead["id"], body)
    assert r.status == 200, r
    for k, v in body.items():
        if k != "customFields":
            assert r.json[k] == v, k
    assert r.json["customFields"] == {"a": 1, "b": 2}
    assert r.json["version"] == 3 and r.header("ETag") == '"3"'
    assert ctx.count_leads(t.id) == 1


@test
def patch_null_clears_optional_fields(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="N", email="n@example.com", phone="12", company="Co",
                  source="src", assignedTo=make_user(ctx, t))
    for field in ("email", "phone", "company", "source", "assignedTo"):
        r = patch(ctx, t, lead["id"], {field: None})
        assert r.status == 200, (field, r)
        assert r.json[field] is None, field
    final = get(ctx, t, lead["id"])
    assert final["version"] == 6
    assert final["name"] == "N"


@test
def patch_assigned_to_must_be_a_user_of_the_same_tenant(ctx):
    """PATCH assignedTo to another tenant's user or to a non-user: 400
    invalid_reference, the lead unchanged (also with other valid changes in
    the same body); a user of the lead's own tenant is accepted."""
    t = ctx.new_tenant()
    other = ctx.new_tenant()
    mine, theirs = make_user(ctx, t), make_user(ctx, other)
    lead = create(ctx, t, name="Keep", assignedTo=mine)
    for stranger in (theirs, str(uuid.uuid4())):
        for body, headers in (({"assignedTo": stranger}, None),
                              ({"name": "Changed", "status": "WON", "assignedTo": stranger},
                               None),
                              ({"assignedTo": stranger}, {"If-Match": '"1"'})):
            expect_rejected_patch(ctx, t, lead, body, 400, "invalid_reference", headers=headers)
    assert ctx.count_leads(other.id) == 0
    second = make_user(ctx, t)
    r = patch(ctx, t, lead["id"], {"assignedTo": second})
    assert r.status == 200 and r.json["assignedTo"] == second and r.json["version"] == 2, r


@test
def patch_null_on_required_fields_is_rejected(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="Keep", status="CONTACTED", customFields={"a": 1})
    for field in ("name", "status", "customFields"):
        expect_rejected_patch(ctx, t, lead, {field: None}, 400, "validation_error", field)


@test
def patch_empty_object_is_rejected(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t)
    expect_rejected_patch(ctx, t, lead, {}, 400, "validation_error")


@test
def patch_validation_errors_change_nothing(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="Stable", email="s@example.com", customFields={"a": 1})
    cases = [
        ({"name": ""}, "validation_error", "name"),
        ({"name": "x" * 256}, "validation_error", "name"),
        ({"name": 5}, "validation_error", "name"),
        ({"email": "nope"}, "validation_error", "email"),
        ({"phone": "1" * 51}, "validation_error", "phone"),
        ({"company": "c" * 256}, "validation_error", "company"),
        ({"source": "s" * 101}, "validation_error", "source"),
        ({"status": "DONE"}, "validation_error", "status"),
        ({"customFields": []}, "validation_error", "customFields"),
        ({"customFields": {"k": "x" * 17000}}, "validation_error", "customFields"),
        ({"assignedTo": "x"}, "validation_error", "assignedTo"),
        # A valid change next to an invalid one must not be applied either.
        ({"name": "Changed", "email": "bad"}, "validation_error", "email"),
        ({"email": "bad", "name": "Changed"}, "validation_error", "email"),
        ({"name": "Changed", "tenantId": str(uuid.uuid4())}, "unknown_field", "tenantId"),
        ({"id": str(uuid.uuid4())}, "unknown_field", "id"),
        ({"version": 99}, "unknown_field", "version"),
        ({"createdAt": "2000-01-01T00:00:00.000000Z"}, "unknown_field", "createdAt"),
        ({"updatedAt": "2000-01-01T00:00:00.000000Z"}, "unknown_field", "updatedAt"),
        ({"bogus": 1}, "unknown_field", "bogus"),
    ]
    for body, code, field in cases:
        expect_rejected_patch(ctx, t, lead, body, 400, code, field)


@test
def patch_custom_fields_merge_shallowly(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, customFields={"a": 1, "b": 2, "c": {"x": 1, "y": 1}, "keep": "me"})
    r = patch(ctx, t, lead["id"], {"customFields": {"b": 3, "c": {"z": 9}, "d": [4], "a": None}})
    assert r.status == 200, r
    # Given keys replace (whole values, not deep-merged), null removes, others kept.
    assert r.json["customFields"] == {"b": 3, "c": {"z": 9}, "d": [4], "keep": "me"}
    # Nulling an absent key is a no-op; an empty object changes nothing but is a valid PATCH.
    r = patch(ctx, t, lead["id"], {"customFields": {"absent": None}})
    assert r.status == 200, r
    assert r.json["customFields"] == {"b": 3, "c": {"z": 9}, "d": [4], "keep": "me"}
    r = patch(ctx, t, lead["id"], {"customFields": {}})
    assert r.status == 200, r
    assert r.json["customFields"] == {"b": 3, "c": {"z": 9}, "d": [4], "keep": "me"}
    assert r.json["version"] == 4
    # Nested nulls are values, not removals.
    r = patch(ctx, t, lead["id"], {"customFields": {"c": {"z": None}}})
    assert r.json["customFields"]["c"] == {"z": None}
    assert get(ctx, t, lead["id"]) == r.json


@test
def patch_custom_fields_merge_cannot_exceed_the_limit(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, customFields={"a": "x" * 10000})
    # Each request alone is under 16 KiB, the merged object would not be.
    expect_rejected_patch(ctx, t, lead, {"customFields": {"b": "y" * 10000}}, 400,
                          "validation_error", "customFields")
    # Replacing the big key with a small one is fine.
    r = patch(ctx, t, lead["id"], {"customFields": {"a": None, "b": "y" * 10000}})
    assert r.status == 200, r
    assert r.json["customFields"] == {"b": "y" * 10000}


@test
def patch_meta_characters_verbatim(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t)
    for v in META_VALUES:
        r = patch(ctx, t, lead["id"], {"name": v, "company": v, "customFields": {"m": v, v: 1}})
        assert r.status == 200, (v, r)
        assert r.json["name"] == v and r.json["company"] == v
        assert r.json["customFields"]["m"] == v and r.json["customFields"][v] == 1
        assert get(ctx, t, lead["id"]) == r.json


@test
def patch_if_match_forms(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="v1")
    forms = ['"1"', "1", 'W/"1"', "*"]
    for i, form in enumerate(forms):
        # Version before this request is i + 1.
        value = form.replace("1", str(i + 1)) if form != "*" else "*"
        r = patch(ctx, t, lead["id"], {"name": "v%d" % (i + 2)}, headers={"If-Match": value})
        assert r.status == 200, (value, r)
        assert r.json["version"] == i + 2, r.json
        assert r.header("ETag") == '"%d"' % (i + 2)


@test
def patch_stale_if_match_is_412_and_changes_nothing(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="orig")
    r = patch(ctx, t, lead["id"], {"name": "second"}, headers={"If-Match": '"1"'})
    assert r.status == 200, r
    lead = r.json
    for stale in ['"1"', "1", 'W/"1"', '"3"', '"999"']:
        expect_rejected_patch(ctx, t, lead, {"name": "lost update"}, 412, "version_conflict",
                              headers={"If-Match": stale})
    # The current ETag still works.
    r = patch(ctx, t, lead["id"], {"name": "third"}, headers={"If-Match": '"2"'})
    assert r.status == 200 and r.json["version"] == 3, r


@test
def patch_malformed_if_match_is_400(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t)
    for bad in ["abc", '"abc"', '"1', '1"', "-1", '"-1"', "1.0", "0x1", '""', "W/", 'W/"x"',
                "1 2", "**"]:
        expect_rejected_patch(ctx, t, lead, {"name": "x"}, 400, "invalid_if_match",
                              headers={"If-Match": bad})


@test
def patch_absent_or_foreign_lead_is_404(ctx):
    a = ctx.new_tenant()
    b = ctx.new_tenant()
    theirs = create(ctx, b, name="B")
    for headers in (None, {"If-Match": '"1"'}, {"If-Match": "*"}):
        for lid in (theirs["id"], str(uuid.uuid4())):
            r = patch(ctx, a, lid, {"name": "hijack"}, headers=headers)
            assert_error(r, 404, "lead_not_found")
    assert get(ctx, b, theirs["id"]) == theirs
    assert ctx.count_leads(a.id) == 0
    for bad in ("nope", "1", theirs["id"] + "x"):
        assert_error(patch(ctx, a, bad, {"name": "x"}), 400, "invalid_id", "id")


@test
def patch_status_change_is_reflected_in_stats(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t)
    r = patch(ctx, t, lead["id"], {"status": "LOST"})
    assert r.status == 200 and r.json["status"] == "LOST", r
    s = ctx.http("GET", "/v1/leads/stats", key=t.key).json
    assert s["byStatus"]["LOST"]["count"] == 1
    assert s["byStatus"]["NEW"]["count"] == 0


# ---------------------------------------------------------------- delete

@test
def delete_is_204_then_404(ctx):
    t = ctx.new_tenant()
    keep = create(ctx, t, name="keep")
    lead = create(ctx, t, name="gone")
    r = ctx.http("DELETE", "/v1/leads/" + lead["id"], key=t.key)
    assert r.status == 204, r
    assert r.body == ""
    assert ctx.count_leads(t.id) == 1
    assert_error(ctx.http("GET", "/v1/leads/" + lead["id"], key=t.key), 404, "lead_not_found")
    assert_error(ctx.http("DELETE", "/v1/leads/" + lead["id"], key=t.key), 404,
                 "lead_not_found")
    assert_error(patch(ctx, t, lead["id"], {"name": "zombie"}), 404, "lead_not_found")
    assert get(ctx, t, keep["id"]) == keep
    assert ctx.count_leads(t.id) == 1


@test
def delete_foreign_absent_and_invalid_ids(ctx):
    a = ctx.new_tenant()
    b = ctx.new_tenant()
    theirs = create(ctx, b)
    assert_error(ctx.http("DELETE", "/v1/leads/" + theirs["id"], key=a.key), 404,
                 "lead_not_found")
    assert_error(ctx.http("DELETE", "/v1/leads/" + str(uuid.uuid4()), key=a.key), 404,
                 "lead_not_found")
    assert ctx.count_leads(b.id) == 1
    assert get(ctx, b, theirs["id"]) == theirs
    for bad in ("x", "1", theirs["id"][:-1], theirs["id"] + "0"):
        assert_error(ctx.http("DELETE", "/v1/leads/" + bad, key=a.key), 400, "invalid_id", "id")
    assert ctx.count_leads(b.id) == 1


# ---------------------------------------------------------------- stats

@test
def stats_empty_tenant_lists_every_status(ctx):
    t = ctx.new_tenant()
    r = ctx.http("GET", "/v1/leads/stats", key=t.key)
    assert r.status == 200, r
    body = r.json
    assert set(body.keys()) == {"totalLeads", "byStatus"}
    assert body["totalLeads"] == 0
    assert set(body["byStatus"].keys()) == set(STATUSES)
    for s in STATUSES:
        assert body["byStatus"][s] == {"count": 0, "avgDaysInStatus": 0}, body


@test
def stats_counts_by_status_and_only_own_tenant(ctx):
    t = ctx.new_tenant()
    other = ctx.new_tenant()
    plan = {"NEW": 3, "CONTACTED": 1, "WON": 2, "LOST": 1}
    for s, n in plan.items():
        for i in range(n):
            create(ctx, t, name="%s %d" % (s, i), status=s)
    for i in range(4):
        create(ctx, other, name="other", status="PROPOSAL")
    body = ctx.http("GET", "/v1/leads/stats", key=t.key).json
    assert body["totalLeads"] == 7
    for s in STATUSES:
        entry = body["byStatus"][s]
        assert set(entry.keys()) == {"count", "avgDaysInStatus"}
        assert entry["count"] == plan.get(s, 0), (s, body)
        assert isinstance(entry["avgDaysInStatus"], (int, float))
        assert 0 <= entry["avgDaysInStatus"] < 0.1, (s, body)
    # Deleting one is reflected.
    lead = create(ctx, t, status="WON")
    assert ctx.http("GET", "/v1/leads/stats", key=t.key).json["byStatus"]["WON"]["count"] == 3
    assert ctx.http("DELETE", "/v1/leads/" + lead["id"], key=t.key).status == 204
    body = ctx.http("GET", "/v1/leads/stats", key=t.key).json
    assert body["byStatus"]["WON"]["count"] == 2 and body["totalLeads"] == 7
    assert ctx.http("GET", "/v1/leads/stats", key=other.key).json["totalLeads"] == 4


@test
def stats_avg_days_in_status_uses_status_age(ctx):
    t = ctx.new_tenant(sample_leads=12)
    body = ctx.http("GET", "/v1/leads/stats", key=t.key).json
    assert body["totalLeads"] == 12
    assert sum(body["byStatus"][s]["count"] for s in STATUSES) == 12
    # Sample lead g (1..12) entered its status g days ago; status g % 6.
    for i, s in enumerate(["NEW", "CONTACTED", "QUALIFIED", "PROPOSAL", "WON", "LOST"]):
        days = [g for g in range(1, 13) if (g % 6) == i]
        want = round(sum(days) / len(days), 1)
        got = body["byStatus"][s]
        assert got["count"] == len(days), (s, got)
        assert abs(got["avgDaysInStatus"] - want) <= 0.1, (s, got, want)


# ---------------------------------------------------------------- headers

@test
def success_headers_carry_tenant_and_request_id(ctx):
    t = ctx.new_tenant(name="Plain Name Inc")
    r = ctx.http("GET", "/v1/leads/stats", key=t.key, headers={"X-Request-ID": "abc.DEF_123-x"})
    assert r.status == 200, r
    assert r.header("X-Tenant-ID") == t.id
    assert r.header("X-Tenant-Name") == "Plain Name Inc"
    assert r.header("X-Request-ID") == "abc.DEF_123-x"
    assert r.header("Cache-Control") == "no-store"
    r = ctx.http("POST", "/v1/leads", key=t.key, body={"name": "h"})
    assert r.status == 201
    assert r.header("X-Tenant-ID") == t.id and r.header("Cache-Control") == "no-store"
    assert re.match(r"^[A-Za-z0-9._-]{1,64}$", r.header("X-Request-ID") or ""), r.headers
    r = ctx.http("DELETE", "/v1/leads/" + r.json["id"], key=t.key)
    assert r.status == 204
    assert r.header("X-Tenant-ID") == t.id and r.header("Cache-Control") == "no-store"


@test
def tenant_name_header_is_percent_encoded(ctx):
    name = "Caf\u00e9 & S\u00f8n 100% \U0001F600 \u05e9"
    t = ctx.new_tenant(name=name)
    r = ctx.http("GET", "/v1/leads/stats", key=t.key)
    assert r.status == 200, r
    want = "".join(c if 0x20 <= ord(c) <= 0x7E and c != "%" else
                   "".join("%%%02X" % b for b in c.encode()) for c in name)
    assert r.header("X-Tenant-Name") == want, (r.header("X-Tenant-Name"), want)


@test
def tenant_name_header_is_complete_for_long_non_ascii_names(ctx):
    # 200 characters of two-byte UTF-8: a valid 200-character tenant name
    # (limit 255) whose UTF-8 form is 400 bytes.  The header must carry all
    # of it, not a truncated (and mid-character cut) prefix.
    name = "\u00e9" * 200
    t = ctx.new_tenant(name=name)
    r = ctx.http("GET", "/v1/leads/stats", key=t.key)
    assert r.status == 200, r
    got = r.header("X-Tenant-Name")
    assert got == "%C3%A9" * 200, "X-Tenant-Name is %d characters, ends %r" % (len(got or ""),
                                                                             (got or "")[-12:])
