"""test_errors.py - every error path of the HTTP layer, and that none writes.

Covers authentication (401 missing_tenant_key / invalid_tenant_key for every
endpoint, one message for every bad key, no tenant headers on failure),
X-Request-ID (echoed when sane, generated otherwise, on errors too), the
error shape and headers, bodies that are not acceptable JSON (malformed,
duplicate keys, "\\u0000", invalid UTF-8 and lone surrogates, 10,000- and
100,000-deep nesting, empty, non-object, huge numbers) on POST and PATCH,
415 for non-JSON Content-Type, 413 over 1 MiB (declared, chunked, and exactly
at the limit), 431 over 16 KiB of headers, 404 unknown routes, 405 with Allow,
400 body_not_allowed on GET and DELETE, query-string abuse (invalid UTF-8,
NUL, over-long values, too many parameters, unknown and repeated parameters
on every endpoint).  Every failed write is checked to have written nothing,
and a final sweep checks that no odd request gets a 500.
"""
import json
import re
import secrets
import socket
import threading
import uuid

from harness import Response, assert_error, test

RID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MiB = 1024 * 1024


# ---------------------------------------------------------------- helpers

def count_all(ctx):
    """Every lead of every tenant (owner, past RLS)."""
    c = ctx.owner_db()
    try:
        cur = c.cursor()
        cur.execute("SELECT count(*) FROM leads")
        return cur.fetchone()[0]
    finally:
        c.close()


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


def send_raw(ctx, head, body=b"", timeout=15):
    """Sends head (bytes, ending in CRLFCRLF), then body from a second thread
    so that a server answering early (413) can still be read; returns a
    harness Response (status 0 when nothing came back)."""
    s = socket.create_connection(("127.0.0.1", ctx.server.port), timeout=timeout)

    def pump():
        try:
            s.sendall(head)
            if body:
                s.sendall(body)
        except OSError:
            pass

    try:
        th = threading.Thread(target=pump, daemon=True)
        th.start()
        buf = b""
        while True:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError, socket.timeout):
                break
            if not b:
                break
            buf += b
            h, sep, rest = buf.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", h)
                if m and len(rest) >= int(m.group(1)):
                    break
                if not m and re.match(rb"HTTP/1\.[01] (204|304)", h):
                    break
        th.join(timeout)
    finally:
        s.close()
    head_b, _, body_b = buf.partition(b"\r\n\r\n")
    lines = head_b.split(b"\r\n")
    if not lines or not lines[0]:
        return Response(0, [], "")
    status = int(lines[0].split()[1])
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers.append((k.decode().strip(), v.decode("latin-1").strip()))
    return Response(status, headers, body_b.decode("utf-8", "replace"))


def raw_request(ctx, method, path, headers, body=b"", chunked=False, chunk=65536):
    """A request built by hand: headers is a list of (name, value)."""
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1", "Connection: close"]
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        parts = []
        for i in range(0, len(body), chunk):
            piece = body[i:i + chunk]
            parts.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
        parts.append(b"0\r\n\r\n")
        payload = b"".join(parts)
    else:
        if body or method in ("POST", "PATCH"):
            lines.append("Content-Length: %d" % len(body))
        payload = body
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return send_raw(ctx, head, payload)


def post_raw(ctx, t, body, content_type="application/json"):
    hdrs = {"Content-Type": content_type} if content_type is not None else {}
    return ctx.http("POST", "/v1/leads", key=t.key, body=body, headers=hdrs)


def expect_post_fails(ctx, t, body, status, code, field=None, content_type="application/json"):
    before = count_all(ctx)
    r = post_raw(ctx, t, body, content_type)
    assert_error(r, status, code, field)
    assert count_all(ctx) == before, "failed POST wrote a row: %r" % (body[:200],)
    return r


def expect_patch_fails(ctx, t, lead, body, status, code, field=None,
                       content_type="application/json"):
    before = count_all(ctx)
    r = ctx.http("PATCH", "/v1/leads/" + lead["id"], key=t.key, body=body,
                 headers={"Content-Type": content_type})
    assert_error(r, status, code, field)
    assert count_all(ctx) == before
    now = get(ctx, t, lead["id"])
    assert now == lead, "failed PATCH changed the lead: %r" % (body[:200],)
    return r


def nested(depth, open_="[", close="]", inner=b"1"):
    return open_.encode() * depth + inner + close.encode() * depth


# Bodies that are not one acceptable JSON object.
MALFORMED = [
    b"{", b"}", b"{}}", b"{\"name\": }", b"{\"name\": \"a\",}", b"{'name': 'a'}",
    b"{name: \"a\"}", b"{\"name\": \"a\"} x", b"{\"name\": \"a\"}{}", b"{\"name\": \"a\"}\x00",
    b"nul", b"{\"name\": \"a\"", b"{\"name\": \"unterminated}", b"{\"name\": NaN}",
    b"{\"name\": \"a\", \"customFields\": {\"x\": Infinity}}", b"{\"name\": 01}",
    b"{\"name\": \"a\\x\"}", b"{\"name\": \"\\u12\"}", b"{\"name\": \"raw\ttab\"}",
    b"{\"name\": \"raw\nnewline\"}", b"/* c */ {\"name\": \"a\"}", b"{\"name\" \"a\"}",
    b"{\"name\": \"a\" \"email\": \"b\"}", b"{,}", b"{\"a\":1,,\"b\":2}", b"\x00",
    b"{\"name\": -}", b"{\"name\": .5}", b"{\"name\": 1.}", b"{\"name\": +1}",
]
DUPLICATES = [
    b'{"name": "a", "name": "b"}',
    b'{"name": "a", "email": "x@example.com", "email": "x@example.com"}',
    b'{"name": "a", "customFields": {"k": 1, "k": 2}}',
    b'{"name": "a", "customFields": {"o": {"deep": 1, "deep": 1}}}',
    b'{"name": "a", "customFields": {"arr": [{"x": 1, "x": 2}]}}',
    b'{"name": "a", "na\\u006de": "b"}',
]
NUL_ESCAPES = [
    b'{"name": "a\\u0000b"}', b'{"name": "\\u0000"}', b'{"name": "x", "email": "a\\u0000@b.co"}',
    b'{"name": "x", "company": "\\u0000"}', b'{"name": "x", "customFields": {"k": "v\\u0000"}}',
    b'{"name": "x", "customFields": {"k\\u0000": 1}}',
    b'{"name": "x", "customFields": {"a": ["\\u0000"]}}', b'{"na\\u0000me": "x"}',
]
BAD_UTF8 = [
    b'{"name": "\xff"}', b'{"name": "a\xfeb"}', b'{"name": "\xc0\xaf"}',
    b'{"name": "\xe0\x80\xaf"}',
    b'{"name": "\xed\xa0\x80"}', b'{"name": "\xed\xbf\xbf"}', b'{"name": "\xe2\x82"}',
    b'{"name": "\xf5\x80\x80\x80"}', b'{"name": "\xf8\x88\x80\x80\x80"}', b'{"name": "\x80"}',
    b'{"na\xffme": "x"}', b'{"name": "x", "customFields": {"k": "\xc3"}}',
    b'{"name": "x", "customFields": {"\xc3\x28": 1}}', b'{"name": "x", "company": "\xf0\x9f\x98"}',
    b'{"name": "\\ud800"}', b'{"name": "\\udc00"}', b'{"name": "\\ud800x"}',
    b'{"name": "\\ud83d\\u0041"}', b'{"name": "x", "customFields": {"k": "\\udfff"}}',
]
NOT_OBJECTS = [b"[]", b'[{"name": "a"}]', b'"name"', b"1", b"null", b"true", b"false",
               b"-0", b'"{\\"name\\": \\"a\\"}"']
EMPTY = [b"", b" ", b"\n", b"\r\n\t "]


# ---------------------------------------------------------------- auth

@test
def missing_key_is_401_on_every_endpoint(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="stays")
    before = count_all(ctx)
    lid = "/v1/leads/" + lead["id"]
    for method, path, body in [("GET", "/v1/leads", None), ("POST", "/v1/leads", {"name": "x"}),
                               ("GET", "/v1/leads/stats", None), ("GET", lid, None),
                               ("PATCH", lid, {"name": "changed"}), ("DELETE", lid, None),
                               ("GET", "/v1/leads?cursor=", None),
                               ("GET", "/v1/leads/not-a-uuid", None),
                               ("GET", "/v1/leads?bogus=1", None)]:
        r = ctx.http(method, path, body=body)
        assert_error(r, 401, "missing_tenant_key")
        assert r.header("X-Tenant-ID") is None and r.header("X-Tenant-Name") is None, r.headers
        assert r.header("Cache-Control") == "no-store"
        assert RID_RE.match(r.header("X-Request-ID") or ""), r.headers
    assert count_all(ctx) == before
    assert get(ctx, t, lead["id"]) == lead


@test
def bad_keys_are_401_invalid_tenant_key_with_one_message(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="stays")
    hexpart = t.key[3:]
    bad = ["tk_", "tk_" + hexpart[:-1], t.key + "0", "tk_" + hexpart.upper(),
           "TK_" + hexpart, "tk-" + hexpart, "sk_" + hexpart, "tk_" + "g" * 64,
           "tk_" + hexpart[:-1] + "G", "Bearer " + t.key, t.key[:-1] + "x",
           t.key + " junk", "tk_" + hexpart[:32] + " " + hexpart[33:], hexpart, "x",
           "tk_" + secrets.token_hex(32), "tk_" + "0" * 64, "'; DROP TABLE api_keys; --",
           t.key[:-1] + ("0" if t.key[-1] != "0" else "1")]
    messages = set()
    before = count_all(ctx)
    for k in bad:
        for method, path, body in [("GET", "/v1/leads", None),
                                   ("POST", "/v1/leads", {"name": "x"}),
                                   ("PATCH", "/v1/leads/" + lead["id"], {"name": "y"}),
                                   ("DELETE", "/v1/leads/" + lead["id"], None)]:
            r = ctx.http(method, path, key=k, body=body)
            assert_error(r, 401, "invalid_tenant_key")
            assert r.header("X-Tenant-ID") is None, (k, r.headers)
            assert t.id not in r.body and "stays" not in r.body
            messages.add(r.json["error"]["message"])
    assert len(messages) == 1, messages
    assert count_all(ctx) == before
    assert get(ctx, t, lead["id"]) == lead


@test
def request_id_is_echoed_or_generated(ctx):
    t = ctx.new_tenant()
    for rid in ("abc", "A-b_c.9", "x" * 64, "0", "...", "---"):
        for key in (t.key, None):
            r = ctx.http("GET", "/v1/leads/stats", key=key, headers={"X-Request-ID": rid})
            assert r.header("X-Request-ID") == rid, (rid, r.headers)
    seen = set()
    for rid in (None, "", "has space", "a/b", "x" * 65, "<script>", "a:b", "a%20b", "\u00e9",
                "a\tb", "id;drop", "\"q\""):
        hdrs = {} if rid is None else {"X-Request-ID": rid.encode("utf-8")}
        r = ctx.http("GET", "/v1/leads/stats", key=t.key, headers=hdrs)
        assert r.status == 200, r
        got = r.header("X-Request-ID")
        assert got and RID_RE.match(got), (rid, got)
        assert got != rid and got not in seen, (rid, got)
        seen.add(got)
    # Error responses carry it too.
    for method, path in (("GET", "/nope"), ("PUT", "/v1/leads"), ("GET", "/v1/leads/x")):
        r = ctx.http(method, path, key=t.key, headers={"X-Request-ID": "err-1"})
        assert r.status >= 400 and r.header("X-Request-ID") == "err-1", r


@test
def error_responses_are_json_and_not_cached(ctx):
    t = ctx.new_tenant()
    for method, path, key in (("GET", "/nope", t.key), ("GET", "/v1/leads", None),
                              ("DELETE", "/v1/leads", t.key), ("GET", "/v1/leads/1", t.key),
                              ("GET", "/v1/leads/" + str(uuid.uuid4()), t.key)):
        r = ctx.http(method, path, key=key)
        assert r.status >= 400, r
        assert (r.header("Content-Type") or "").startswith("application/json"), r.headers
        assert r.header("Cache-Control") == "no-store", r.headers
        err = r.json["error"]
        assert set(err.keys()) <= {"code", "message", "field"}, err
        assert re.match(r"^[a-z_]+$", err["code"]), err


# ---------------------------------------------------------------- bodies

@test
def malformed_json_is_invalid_json(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="orig")
    for body in MALFORMED:
        expect_post_fails(ctx, t, body, 400, "invalid_json")
        expect_patch_fails(ctx, t, lead, body, 400, "invalid_json")


@test
def duplicate_keys_are_invalid_json(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="orig", customFields={"k": 0})
    for body in DUPLICATES:
        expect_post_fails(ctx, t, body, 400, "invalid_json")
        expect_patch_fails(ctx, t, lead, body, 400, "invalid_json")


@test
def nul_escapes_are_invalid_json(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="orig")
    for body in NUL_ESCAPES:
        expect_post_fails(ctx, t, body, 400, "invalid_json")
        expect_patch_fails(ctx, t, lead, body, 400, "invalid_json")


@test
def invalid_utf8_and_lone_surrogates_are_invalid_json(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="orig")
    for body in BAD_UTF8:
        expect_post_fails(ctx, t, body, 400, "invalid_json")
        expect_patch_fails(ctx, t, lead, body, 400, "invalid_json")


@test
def deep_nesting_is_invalid_json(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="orig")
    # (100,000 levels are 100,000 values: refused before parsing.)
    for depth, status, code in ((10000, 400, "invalid_json"),
                                (100000, 413, "payload_too_large")):
        bodies = [
            b'{"name": "x", "customFields": {"a": ' + nested(depth) + b"}}",
            b'{"name": "x", "customFields": ' + nested(depth, '{"a":', "}", b"1") + b"}",
            nested(depth),
            nested(depth, '{"a":', "}", b"{}"),
        ]
        for body in bodies:
            expect_post_fails(ctx, t, body, status, code)
            expect_patch_fails(ctx, t, lead, body, status, code)
    # Moderate nesting is an ordinary value.
    cf = json.loads(b'{"a": ' + nested(30) + b"}")
    r = ctx.http("POST", "/v1/leads", key=t.key, body={"name": "ok", "customFields": cf})
    assert r.status == 201 and r.json["customFields"] == cf, r


@test
def empty_and_non_object_bodies_are_invalid_json(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="orig")
    for body in EMPTY + NOT_OBJECTS:
        expect_post_fails(ctx, t, body, 400, "invalid_json")
        expect_patch_fails(ctx, t, lead, body, 400, "invalid_json")
    # A scalar or an array is JSON, just not an object: the message says so.
    for body in (b"123", b'"x"', b"[1]", b"null"):
        r = post_raw(ctx, t, body)
        assert_error(r, 400, "invalid_json")
        assert r.json["error"]["message"] == "the body must be a JSON object", (body, r)
    # No body at all (no Content-Length, no Content-Type).
    before = count_all(ctx)
    r = raw_request(ctx, "POST", "/v1/leads", [("X-Tenant-Key", t.key),
                                               ("Content-Type", "application/json")])
    assert_error(r, 400, "invalid_json")
    assert count_all(ctx) == before


@test
def huge_numbers_are_rejected_cleanly(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="orig")
    bodies = [
        b'{"name": "x", "customFields": {"n": 1e400}}',
        b'{"name": "x", "customFields": {"n": -1e400}}',
        b'{"name": "x", "customFields": {"n": ' + b"9" * 5000 + b"}}",
        b'{"name": 1e400}', b'{"name": 123456789012345678901234567890}',
        b'{"name": "x", "status": 1e999}',
    ]
    for body in bodies:
        for r in (post_raw(ctx, t, body),
                  ctx.http("PATCH", "/v1/leads/" + lead["id"], key=t.key, body=body)):
            assert r.status == 400, (body[:80], r)
            assert r.error_code() in ("invalid_json", "validation_error"), (body[:80], r)
            assert_error(r, 400, r.error_code())
    assert ctx.count_leads(t.id) == 1
    assert get(ctx, t, lead["id"]) == lead


@test
def custom_fields_numbers_are_stored_exactly_as_sent(ctx):
    """customFields goes to PostgreSQL as the client wrote it: a number is not
    rounded through a double (0.1 stayed 0.1, not 0.10000000000000001), and
    an integer beyond 64 bits is kept, not refused as invalid JSON."""
    import decimal
    t = ctx.new_tenant()
    body = (b'{"name": "Numbers", "customFields": {"p": 0.1, "e": 1e2, "f": 1.5e-7,'
            b' "big": 123456789012345678901234567890, "priority": 1.1, "s": "0.1"}}')
    r = post_raw(ctx, t, body)
    assert r.status == 201, r
    cf = json.loads(r.body, parse_float=decimal.Decimal)["customFields"]
    D = decimal.Decimal
    assert cf == {"p": D("0.1"), "e": 100, "f": D("0.00000015"),
                  "big": 123456789012345678901234567890, "priority": D("1.1"), "s": "0.1"}, cf
    lead_id = json.loads(r.body)["id"]
    c = ctx.owner_db()
    cur = c.cursor()
    cur.execute("SELECT custom_fields->>'p', custom_fields->>'big', custom_fields->>'f'"
                " FROM leads WHERE id = %s", (lead_id,))
    assert cur.fetchone() == ("0.1", "123456789012345678901234567890", "0.00000015")
    c.close()
    # The filter finds what was sent.
    found = ctx.http("GET", "/v1/leads?priority=1.1", key=t.key)
    assert [x["id"] for x in found.json["data"]] == [lead_id], found
    # PATCH merges the same way.
    r = ctx.http("PATCH", "/v1/leads/" + lead_id, key=t.key,
                 body=b'{"customFields": {"q": 0.3, "big": -98765432109876543210987654321}}')
    assert r.status == 200, r
    cf = json.loads(r.body, parse_float=decimal.Decimal)["customFields"]
    assert cf["q"] == D("0.3") and cf["p"] == D("0.1"), cf
    assert cf["big"] == -98765432109876543210987654321, cf


# ---------------------------------------------------------------- media type

@test
def non_json_content_type_is_415(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="orig")
    body = b'{"name": "x"}'
    for ct in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x",
               "application/jsonx", "application/json-patch+json", "json", "text/json",
               "application/xml", "application/javascript", "*/*", "application/*",
               "application", "application/ json"):
        expect_post_fails(ctx, t, body, 415, "unsupported_media_type", content_type=ct)
        expect_patch_fails(ctx, t, lead, body, 415, "unsupported_media_type", content_type=ct)
    # No Content-Type header at all.
    before = count_all(ctx)
    for method, path in (("POST", "/v1/leads"), ("PATCH", "/v1/leads/" + lead["id"])):
        r = raw_request(ctx, method, path, [("X-Tenant-Key", t.key)], body)
        assert_error(r, 415, "unsupported_media_type")
    assert count_all(ctx) == before
    assert get(ctx, t, lead["id"]) == lead


@test
def json_content_type_variants_are_accepted(ctx):
    t = ctx.new_tenant()
    for ct in ("application/json", "application/json; charset=utf-8",
               "application/json;charset=UTF-8", "Application/JSON", "APPLICATION/JSON"):
        r = post_raw(ctx, t, b'{"name": "ct"}', ct)
        assert r.status == 201, (ct, r)
    assert ctx.count_leads(t.id) == 5


# ---------------------------------------------------------------- size limits

def padded_body(total):
    """A valid lead body of exactly `total` bytes (whitespace padding)."""
    core = b'{"name": "big"'
    tail = b"}"
    pad = total - len(core) - len(tail)
    assert pad >= 0
    return core + b" " * pad + tail


@test
def body_at_the_limit_is_accepted(ctx):
    t = ctx.new_tenant()
    body = padded_body(MiB)
    assert len(body) == MiB
    r = post_raw(ctx, t, body)
    assert r.status == 201, r
    r = raw_request(ctx, "POST", "/v1/leads", [("X-Tenant-Key", t.key),
                                               ("Content-Type", "application/json")],
                    body, chunked=True)
    assert r.status == 201, r
    assert ctx.count_leads(t.id) == 2


@test
def body_over_the_limit_is_413(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="orig")
    before = count_all(ctx)
    hdrs = [("X-Tenant-Key", t.key), ("Content-Type", "application/json")]
    for method, path in (("POST", "/v1/leads"), ("PATCH", "/v1/leads/" + lead["id"])):
        # Declared with Content-Length, one byte over.
        r = raw_request(ctx, method, path, hdrs, padded_body(MiB + 1))
        assert_error(r, 413, "payload_too_large")
        # Chunked, no length announced.
        r = raw_request(ctx, method, path, hdrs, padded_body(MiB + 1), chunked=True)
        assert_error(r, 413, "payload_too_large")
        r = raw_request(ctx, method, path, hdrs, padded_body(3 * MiB), chunked=True)
        assert_error(r, 413, "payload_too_large")
        # A huge length announced: answered without waiting for the body.
        head = ("%s %s HTTP/1.1\r\nHost: x\r\nX-Tenant-Key: %s\r\nContent-Type: application/json"
                "\r\nContent-Length: 1000000000\r\nConnection: close\r\n\r\n"
                % (method, path, t.key)).encode()
        r = send_raw(ctx, head, b"", timeout=15)
        assert_error(r, 413, "payload_too_large")
    assert count_all(ctx) == before
    assert get(ctx, t, lead["id"]) == lead


@test
def content_length_is_read_as_a_number_and_yields_to_chunked(ctx):
    t = ctx.new_tenant()
    before = ctx.count_leads(t.id)
    body = b'{"name":"abc"}'
    assert len(body) == 14

    def head(method, path, *extra):
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: x", "X-Tenant-Key: " + t.key,
                 "Content-Type: application/json", "Connection: close"] + list(extra)
        return ("\r\n".join(lines) + "\r\n\r\n").encode()
    # Leading zeros: fourteen bytes, not "too long a number".
    r = send_raw(ctx, head("POST", "/v1/leads", "Content-Length: 0000000000014"), body)
    assert r.status == 201, r
    # "00" is no body.
    r = send_raw(ctx, head("GET", "/v1/leads/stats", "Content-Length: 00"))
    assert r.status == 200, r
    # Transfer-Encoding overrides Content-Length (RFC 9112 6.3): the chunked
    # body is what counts, as libmicrohttpd reads it.
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    r = send_raw(ctx, head("POST", "/v1/leads", "Content-Length: 2000000",
                           "Transfer-Encoding: chunked"), chunked)
    assert r.status == 201, r
    assert ctx.count_leads(t.id) == before + 2


@test
def a_body_of_many_tiny_values_is_413_before_it_is_parsed(ctx):
    """Parsing allocates ~100 bytes per value, so a 1 MiB body of "{}" cost
    40 MB: the values are counted before parsing (16,384 at most), on the
    lead endpoints and the others alike.  A long string is one value: it
    gets the ordinary checks."""
    t = ctx.new_tenant()
    lead = create(ctx, t, name="orig")
    before = count_all(ctx)
    many = b"{}," * 20000 + b"{}"  # 20,001 values
    for method, path, body in (
            ("POST", "/v1/leads", b'{"name":"x","customFields":{"a":[' + many + b']}}'),
            ("PATCH", "/v1/leads/" + lead["id"], b'{"customFields":{"a":[' + many + b']}}'),
            ("POST", "/v1/leads", b'{"name":[' + many + b']}'),
            ("POST", "/v1/users", b'{"email":"a@b.test","name":[' + many + b']}'),
            ("POST", "/v1/leads/%s/activities" % lead["id"],
             b'{"type":"note","body":[' + many + b']}')):
        r = ctx.http(method, path, key=t.key, body=body)
        assert_error(r, 413, "payload_too_large")
        assert r.json["error"]["message"] == "the JSON body holds more than 16384 values", r
    assert count_all(ctx) == before
    assert get(ctx, t, lead["id"]) == lead
    # Under the count, the ordinary checks answer.
    body = b'{"name":"x","customFields":{"a":[' + b"1," * 15999 + b'1]}}'
    assert_error(post_raw(ctx, t, body), 400, "validation_error", "customFields")
    body = b'{"name":"x","customFields":{"k":"' + b"x" * 200000 + b'"}}'
    assert_error(post_raw(ctx, t, body), 400, "validation_error", "customFields")
    assert count_all(ctx) == before


@test
def headers_over_16k_are_431(ctx):
    t = ctx.new_tenant()
    before = count_all(ctx)
    for pad in (17 * 1024, 24 * 1024, 28 * 1024):
        r = ctx.http("POST", "/v1/leads", key=t.key, body={"name": "x"},
                     headers={"X-Pad": "p" * pad})
        assert_error(r, 431, "headers_too_large")
        r = ctx.http("GET", "/v1/leads", key=t.key, headers={"X-Pad": "p" * pad})
        assert_error(r, 431, "headers_too_large")
    # Many small headers adding up to more than 16 KiB.
    many = {"X-H%03d" % i: "v" * 200 for i in range(100)}
    r = ctx.http("POST", "/v1/leads", key=t.key, body={"name": "x"}, headers=many)
    assert_error(r, 431, "headers_too_large")
    assert count_all(ctx) == before
    # Just under the limit is fine.
    r = ctx.http("GET", "/v1/leads", key=t.key, headers={"X-Pad": "p" * (12 * 1024)})
    assert r.status == 200, r


@test
def headers_far_over_the_limit_are_431(ctx):
    """Past libmicrohttpd's own per-connection memory (32 KiB, kept small
    because the library zeroes it after every request) it answers 431 with its
    own body - a documented limit; nginx in front rejects such heads long
    before (deploy/nginx.conf).  The status is right and nothing is written."""
    t = ctx.new_tenant()
    before = count_all(ctx)
    for pad in (40 * 1024, 100 * 1024, 300 * 1024):
        head = ("GET /v1/leads HTTP/1.1\r\nHost: x\r\nX-Tenant-Key: %s\r\nX-Pad: %s\r\n"
                "Connection: close\r\n\r\n" % (t.key, "p" * pad)).encode()
        r = send_raw(ctx, head)
        assert r.status == 431, r
    assert count_all(ctx) == before


# ---------------------------------------------------------------- routing

@test
def unknown_paths_are_404(ctx):
    t = ctx.new_tenant()
    for path in ("/", "/v1", "/v1/", "/v2/leads", "/v1/lead", "/v1/leadsx", "/V1/LEADS",
                 "/v1/leads/x/y", "/v1/leads/%s/z" % uuid.uuid4(), "/v1/leads/stats/x",
                 "/leads", "/v1/leads/stats/", "/favicon.ico", "/v1/tenants", "/v1/api_keys"):
        for key in (t.key, None):
            for method in ("GET", "POST", "DELETE"):
                assert_error(ctx.http(method, path, key=key), 404, "not_found")


@test
def a_path_that_encodes_nul_or_slash_is_400_invalid_path(ctx):
    """libmicrohttpd decodes the path before routing: %00 would cut it short
    and %2F would route as a slash, so tekup and a proxy reading the raw path
    would disagree on the resource.  Refused; nothing is touched."""
    t = ctx.new_tenant()
    lead = create(ctx, t, name="Kept")
    before = count_all(ctx)
    lid = lead["id"]
    for method, path, body in (
            ("DELETE", "/v1/leads/%s%%00anything" % lid, None),
            ("DELETE", "/v1/leads/%s%%00" % lid, None),
            ("GET", "/v1/leads/stats%00x", None),
            ("GET", "/v1/leads/%s%%00garbage" % lid, None),
            ("GET", "/v1%%2Fleads/%s" % lid, None),
            ("GET", "/v1%2fleads", None),
            ("PATCH", "/v1/leads%%2F%s" % lid, {"name": "Changed"}),
            ("POST", "/v1/leads%00", {"name": "New"}),
            ("POST", "/v1/leads%2F", {"name": "New"})):
        r = ctx.http(method, path, key=t.key, body=body)
        assert_error(r, 400, "invalid_path")
    assert count_all(ctx) == before
    assert get(ctx, t, lid)["name"] == "Kept"
    # Other escapes in the path, and %2F in a query value, are ordinary.
    r = ctx.http("GET", "/v1/leads/%%%02x%s" % (ord(lid[0]), lid[1:]), key=t.key)
    assert r.status == 200 and r.json["id"] == lid, r
    r = ctx.http("GET", "/v1/leads?source=a%2Fb", key=t.key)
    assert r.status == 200 and r.json["data"] == [], r


@test
def wrong_methods_are_405_with_allow(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t)
    before = count_all(ctx)

    def allow_set(r):
        return {m.strip() for m in (r.header("Allow") or "").split(",") if m.strip()}

    item = "/v1/leads/" + lead["id"]
    cases = [("PUT", "/v1/leads", {"GET", "POST"}), ("PATCH", "/v1/leads", {"GET", "POST"}),
             ("DELETE", "/v1/leads", {"GET", "POST"}), ("PUT", item, {"GET", "PATCH", "DELETE"}),
             ("POST", item, {"GET", "PATCH", "DELETE"}),
             ("POST", "/v1/leads/" + str(uuid.uuid4()), {"GET", "PATCH", "DELETE"}),
             ("POST", "/v1/leads/stats", {"GET"}), ("PUT", "/v1/leads/stats", {"GET"}),
             ("OPTIONS", "/v1/leads", {"GET", "POST"}),
             ("TRACE", item, {"GET", "PATCH", "DELETE"})]
    for method, path, allowed in cases:
        for key in (t.key, None):
            body = {"name": "via " + method} if method in ("POST", "PUT", "PATCH") else None
            r = ctx.http(method, path, key=key, body=body)
            assert_error(r, 405, "method_not_allowed")
            assert allow_set(r) == allowed, (method, path, r.header("Allow"))
    r = ctx.http("PUT", "/v1/leads", key=t.key)
    assert r.header("Allow") == "GET, POST", r.headers
    assert count_all(ctx) == before
    assert get(ctx, t, lead["id"]) == lead


@test
def stats_path_answers_405_for_every_other_method(ctx):
    # /v1/leads/stats is a literal route: it owns the path, so PATCH and
    # DELETE on it are a wrong method (405, Allow: GET) exactly like POST and
    # PUT are - not a lead whose id "stats" is not a UUID.
    t = ctx.new_tenant()
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        body = {"name": "x"} if method in ("POST", "PUT", "PATCH") else None
        r = ctx.http(method, "/v1/leads/stats", key=t.key, body=body)
        assert_error(r, 405, "method_not_allowed")
        assert r.header("Allow") == "GET", (method, r.headers)
    assert ctx.count_leads(t.id) == 0


@test
def body_on_get_or_delete_is_400(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="stays")
    item = "/v1/leads/" + lead["id"]
    for method, path in (("GET", "/v1/leads"), ("GET", item), ("GET", "/v1/leads/stats"),
                         ("DELETE", item)):
        for body in ({"name": "x"}, b"x", b"{}"):
            assert_error(ctx.http(method, path, key=t.key, body=body), 400, "body_not_allowed")
        r = raw_request(ctx, method, path, [("X-Tenant-Key", t.key)], b"{}", chunked=True)
        assert_error(r, 400, "body_not_allowed")
        r = raw_request(ctx, method, path, [("X-Tenant-Key", t.key),
                                            ("Content-Type", "text/plain")], b"hello")
        assert_error(r, 400, "body_not_allowed")
    assert get(ctx, t, lead["id"]) == lead
    # An explicitly empty body is no body.
    r = raw_request(ctx, "GET", "/v1/leads", [("X-Tenant-Key", t.key), ("Content-Length", "0")])
    assert r.status == 200, r
    r = raw_request(ctx, "DELETE", item, [("X-Tenant-Key", t.key), ("Content-Length", "0")])
    assert r.status == 204, r
    assert ctx.count_leads(t.id) == 0


# ---------------------------------------------------------------- query strings

@test
def query_parameters_on_write_endpoints_change_nothing(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="orig")
    before = count_all(ctx)
    item = "/v1/leads/" + lead["id"]
    for q in ("x=1", "tenantId=%s" % uuid.uuid4(), "name=other", "dryRun=true"):
        name = q.split("=")[0]
        assert_error(ctx.http("POST", "/v1/leads?" + q, key=t.key, body={"name": "x"}), 400,
                     "unknown_parameter", name)
        assert_error(ctx.http("PATCH", item + "?" + q, key=t.key, body={"name": "x"}), 400,
                     "unknown_parameter", name)
        assert_error(ctx.http("DELETE", item + "?" + q, key=t.key), 400, "unknown_parameter",
                     name)
    assert count_all(ctx) == before
    assert get(ctx, t, lead["id"]) == lead


@test
def query_string_abuse_is_400(ctx):
    t = ctx.new_tenant()
    create(ctx, t)
    # Invalid UTF-8 and NUL in a value name the parameter.
    for raw in ("q=%FF", "q=%C0%AF", "q=%ED%A0%80", "q=a%00b", "status=NEW%00",
                "source=%E2%82"):
        name = raw.split("=")[0]
        assert_error(ctx.http("GET", "/v1/leads?" + raw, key=t.key), 400, "invalid_parameter",
                     name)
    # Over-long values.
    assert_error(ctx.http("GET", "/v1/leads?q=" + "a" * 3000, key=t.key), 400,
                 "invalid_parameter", "q")
    r = ctx.http("GET", "/v1/leads?cursor=" + "a" * 5000, key=t.key)
    assert r.status == 400 and r.error_code() in ("invalid_parameter", "invalid_cursor"), r
    assert_error(r, 400, r.error_code(), "cursor")
    # Too many parameters.
    many = "&".join("p%d=1" % i for i in range(40))
    r = ctx.http("GET", "/v1/leads?" + many, key=t.key)
    assert r.status == 400, r
    assert_error(r, 400, r.error_code())
    # A name that is not valid UTF-8, or empty.
    for raw in ("%FF=1", "=1", "a%00b=1"):
        r = ctx.http("GET", "/v1/leads?" + raw, key=t.key)
        assert r.status == 400 and r.error_code() in ("invalid_parameter", "unknown_parameter"), (
            raw, r)


# ---------------------------------------------------------------- sweep

@test
def odd_requests_never_get_a_5xx(ctx):
    t = ctx.new_tenant()
    lead = create(ctx, t, name="orig", customFields={"a": 1})
    item = "/v1/leads/" + lead["id"]
    bodies = MALFORMED + DUPLICATES + NUL_ESCAPES + BAD_UTF8 + NOT_OBJECTS + EMPTY + [
        b'{"name": "x", "customFields": {"a": ' + nested(2000) + b"}}",
        b'{"name": ["x"]}', b'{"name": {"x": 1}}', b'{"name": true}', b'{"name": null}',
        b'{"email": ["a@b.co"], "name": "x"}', b'{"assignedTo": "' + b"f" * 5000 + b'"}',
        b'{"status": "NEW\\u0000"}', b'{"customFields": {"": null}}',
        b'{"name": "' + b"x" * 100000 + b'"}', b'{"' + b"k" * 100000 + b'": 1}',
        b'{"customFields": {"priority": ' + b"[" * 50 + b"]" * 50 + b"}}",
        json.dumps({"name": "x", "customFields": {str(i): i for i in range(20000)}}).encode(),
    ]
    for body in bodies:
        for method, path in (("POST", "/v1/leads"), ("PATCH", item)):
            r = ctx.http(method, path, key=t.key, body=body)
            assert 400 <= r.status < 500 or r.status in (200, 201), (method, body[:100], r)
            if r.status >= 400:
                assert_error(r, r.status, r.error_code())
    odd_queries = ["status=%s" % ("NEW," * 100), "limit=%s" % ("9" * 50), "page=-0",
                   "sort=%00", "fields=%s" % ",".join(["id"] * 200), "q=%25%25%25",
                   "createdAfter=9999-12-31T23:59:59.999999999Z", "createdBefore=0001-01-01",
                   "createdAfter=2026-01-01T00:00:60Z", "createdAfter=1900-01-01T00:00:00-23:59",
                   "priority=%s" % ("p" * 100), "cursor=%s" % ("_" * 1400),
                   "email=%s" % ("e" * 255),
                   "assignedTo=%s" % str(uuid.uuid4()).upper(), "q=%E2%80%AE", "q=%F0%9F%98%80"]
    for oq in odd_queries:
        for extra in ("", "&cursor="):
            r = ctx.http("GET", "/v1/leads?" + oq + extra, key=t.key)
            assert r.status in (200, 400), (oq, r)
            if r.status == 400:
                assert_error(r, 400, r.error_code())
    # The lead is still what it became (only successful PATCHes above may
    # have changed it), and the server still answers normally.
    assert ctx.http("GET", item, key=t.key).status == 200
    assert ctx.http("GET", "/v1/leads/stats", key=t.key).status == 200
