"""test_sessions.py - sign-in, sessions and their end (issue 5, sections 1 and 5).

POST /v1/auth/login (tenant key + e-mail + password) returns an opaque
"ts_" + 64 hex token, stored only as its SHA-256, expiring after 12 hours;
the password is stored as an $argon2id$ hash (weaker parameters are upgraded
on sign-in).  Checked here:

  - a wrong password and an unknown e-mail get byte-identical 401
    invalid_credentials answers in about the same time (median of 5 each,
    generous bounds: both > 10 ms, ratio < 3 - not a benchmark);
  - after 5 failures for one account (or one unknown address) the next
    attempt gets 429 too_many_attempts with Retry-After, even with the right
    password, from any client address; other accounts and the same e-mail in
    another tenant are unaffected; the lock ends when the window passes;
    20 failures from one client address block that address only;
  - attempts that arrive together are counted before their passwords are
    checked: 30 parallel wrong passwords for one account (from 30
    addresses) get exactly 5 401s, the rest 429, and the count stays 5 -
    refused attempts do not extend the lock; 30 parallel failures from one
    address get exactly 20 401s; a success gives its attempt back;
  - behind a trusted proxy (--trusted-proxies) the address is the one the
    proxy appends to X-Forwarded-For: 20 failures from A block A, not B,
    not the proxy, and an entry a client prepends does not escape the
    block; without the setting the header is ignored; a bad value stops
    `tekup serve` with a message naming the setting;
  - logout -> 204 and the token is dead (401 invalid_session), other
    sessions of the user live on; an expired session, a deactivated user and
    a password change end sessions at once; a token of another tenant, and
    any malformed Authorization header, get 401 invalid_session and never
    fall back to the integration's access;
  - GET /v1/me: the user with a session, {"integration": true, ...} with the
    key alone; a revoked key or suspended tenant refuses a valid session.

Failed sign-ins are sent from their own loopback addresses (127.0.0.x), so
the server's per-address limit never blocks the rest of the suite.
"""
import ctypes
import ctypes.util
import datetime
import hashlib
import http.client
import json
import re
import statistics
import time
import uuid

from harness import new_org, owner, Response, Server, assert_error, free_port, test

PASSWORD = "correct horse 9"
TOKEN_RE = re.compile(r"^ts_[0-9a-f]{64}$")
CACHE_BOUND_S = 5.5  # key cache bound (5 s) plus slack
FAILURES_BEFORE_LOCK = 5


# --------------------------------------------------------------------------
# helpers


def call(ctx, method, path, key=None, token=None, body=None, headers=None, source=None):
    """A request, optionally from another loopback address (source)."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    if source is None:
        return ctx.http(method, path, key=key, body=body, headers=h)
    conn = http.client.HTTPConnection("127.0.0.1", ctx.server.port, timeout=30,
                                      source_address=(source, 0))
    if key is not None:
        h["X-Tenant-Key"] = key
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    resp = Response(r.status, r.getheaders(), r.read().decode("utf-8", "replace"))
    conn.close()
    return resp


def try_login(ctx, key, email, password=PASSWORD, source=None):
    return call(ctx, "POST", "/v1/auth/login", key, body={"email": email, "password": password},
                source=source)


def login(ctx, key, email, password=PASSWORD, source=None):
    r = try_login(ctx, key, email, password, source)
    assert r.status == 201, r
    return r.json["token"]


def create_user(ctx, key, email, name="Someone", role="user", password=PASSWORD):
    r = call(ctx, "POST", "/v1/users", key, None,
             {"email": email, "name": name, "password": password, "role": role})
    assert r.status == 201, r
    return r.json["id"]


def token_hash(token):
    return hashlib.sha256(token.encode()).digest()


def email():
    return "person-%s@example.com" % uuid.uuid4().hex[:10]


def parse_ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)


def assert_session_refused(ctx, key, token, headers=None):
    """401 invalid_session on a lead endpoint and /v1/me - never the
    integration's access."""
    for path in ("/v1/me", "/v1/leads?limit=1"):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + token
        r = ctx.http("GET", path, key=key, headers=h)
        assert_error(r, 401, "invalid_session")
    return r


def wait_status(ctx, key, token, status, timeout=CACHE_BOUND_S):
    t0 = time.time()
    while True:
        r = call(ctx, "GET", "/v1/me", key, token)
        if r.status == status:
            return r
        assert time.time() - t0 < timeout, r
        time.sleep(0.1)


_org = None


def shared_org(ctx):
    global _org
    if _org is None:
        _org = new_org(ctx, "Sessions")
    return _org


def weak_argon2id(password):
    """An Argon2id hash with libsodium's minimum parameters, via ctypes."""
    name = ctypes.util.find_library("sodium")
    assert name, "libsodium is not installed"
    lib = ctypes.CDLL(name)
    assert lib.sodium_init() >= 0
    lib.crypto_pwhash_strbytes.restype = ctypes.c_size_t
    out = ctypes.create_string_buffer(lib.crypto_pwhash_strbytes())
    pw = password.encode()
    rc = lib.crypto_pwhash_str_alg(out, pw, ctypes.c_ulonglong(len(pw)), ctypes.c_ulonglong(1),
                                   ctypes.c_size_t(8192), ctypes.c_int(2))  # ARGON2ID13
    assert rc == 0
    return out.value.decode()


# --------------------------------------------------------------------------
# sign-in


@test
def login_returns_an_opaque_hashed_expiring_session(ctx):
    org = shared_org(ctx)
    r = try_login(ctx, org.key, org.admin_email)
    assert r.status == 201, r
    body = r.json
    assert set(body) == {"token", "expiresAt", "user"}, body
    token = body["token"]
    assert TOKEN_RE.match(token), token
    user = body["user"]
    assert user["id"] == org.admin_id and user["tenantId"] == org.id, user
    assert user["email"] == org.admin_email and user["role"] == "admin", user
    assert user["isActive"] is True and user["lastLoginAt"] is not None, user
    assert "password" not in json.dumps(user).lower() and "$argon2" not in r.body

    rows = owner(ctx, "SELECT token_hash, expires_at, revoked_at, user_id::text, tenant_id::text,"
                      " now() FROM sessions WHERE user_id = %s", (org.admin_id,))
    assert len(rows) == 1, rows
    stored, expires, revoked, user_id, tenant_id, now = rows[0]
    assert bytes(stored) == token_hash(token) and revoked is None
    assert (user_id, tenant_id) == (org.admin_id, org.id)
    assert abs((expires - now) - datetime.timedelta(hours=12)) < datetime.timedelta(minutes=1)
    assert parse_ts(body["expiresAt"]) == expires.astimezone(datetime.timezone.utc)
    # The token itself is stored nowhere.
    dump = owner(ctx, "SELECT s::text FROM sessions s WHERE user_id = %s", (org.admin_id,))
    assert token not in dump[0][0] and token[3:] not in dump[0][0]
    # The password is an Argon2id hash.
    (pw_hash,), = owner(ctx, "SELECT password_hash FROM users WHERE id = %s", (org.admin_id,))
    assert pw_hash.startswith("$argon2id$v=19$"), pw_hash
    assert PASSWORD not in pw_hash

    # /v1/me as the user and as the integration.
    r = call(ctx, "GET", "/v1/me", org.key, token)
    assert r.status == 200, r
    assert r.json["id"] == org.admin_id and r.json["role"] == "admin", r.json
    assert r.json["email"] == org.admin_email and "integration" not in r.json, r.json
    r = call(ctx, "GET", "/v1/me", org.key)
    assert r.status == 200, r
    assert r.json == {"integration": True, "tenantId": org.id, "tenantName": org.name}, r.json

    # E-mail is case-insensitive; each sign-in is its own session.
    token2 = login(ctx, org.key, org.admin_email.upper())
    assert token2 != token
    assert call(ctx, "GET", "/v1/me", org.key, token).status == 200
    assert call(ctx, "GET", "/v1/me", org.key, token2).status == 200
    assert owner(ctx, "SELECT count(*) FROM sessions WHERE user_id = %s",
                 (org.admin_id,))[0][0] == 2

    # A session needs the tenant key as well.
    r = call(ctx, "GET", "/v1/me", None, token)
    assert_error(r, 401, "missing_tenant_key")
    # Body validation (no password check happens).
    r = call(ctx, "POST", "/v1/auth/login", org.key, body={"email": org.admin_email})
    assert_error(r, 400, "validation_error", "password")
    r = call(ctx, "POST", "/v1/auth/login", org.key, body={"password": PASSWORD})
    assert_error(r, 400, "validation_error", "email")
    r = call(ctx, "POST", "/v1/auth/login", org.key,
             body={"email": org.admin_email, "password": PASSWORD, "role": "admin"})
    assert_error(r, 400, "unknown_field", "role")
    r = call(ctx, "POST", "/v1/auth/login", None,
             body={"email": org.admin_email, "password": PASSWORD})
    assert_error(r, 401, "missing_tenant_key")


@test
def wrong_password_and_unknown_email_are_indistinguishable(ctx):
    org = shared_org(ctx)
    src = "127.0.0.31"
    victim = email()
    create_user(ctx, org.key, victim)
    ghost = email()
    times = {"wrong": [], "unknown": []}
    bodies = set()
    for i in range(5):
        for kind, addr, pw in (("wrong", victim, "Wrong horse %d" % i),
                               ("unknown", ghost, PASSWORD)):
            t0 = time.perf_counter()
            r = try_login(ctx, org.key, addr, pw, source=src)
            times[kind].append(time.perf_counter() - t0)
            assert_error(r, 401, "invalid_credentials")
            assert r.header("Retry-After") is None, r.headers
            bodies.add(r.body)
    assert len(bodies) == 1, bodies
    wrong, unknown = statistics.median(times["wrong"]), statistics.median(times["unknown"])
    assert wrong > 0.010 and unknown > 0.010, (wrong, unknown)
    ratio = max(wrong, unknown) / min(wrong, unknown)
    assert ratio < 3, "medians differ: wrong %.1f ms, unknown %.1f ms" % (wrong * 1e3,
                                                                         unknown * 1e3)
    # No session was created for the victim.
    assert owner(ctx, "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id"
                      " WHERE u.email = %s", (victim,))[0][0] == 0


@test
def five_failures_lock_the_account_until_the_window_passes(ctx):
    org = shared_org(ctx)
    src = "127.0.0.32"
    addr = email()
    uid = create_user(ctx, org.key, addr)
    ghost = email()
    for i in range(FAILURES_BEFORE_LOCK):
        for who in (addr, ghost):
            assert_error(try_login(ctx, org.key, who, "not the password %d" % i, source=src),
                         401, "invalid_credentials")
    failures = owner(ctx, "SELECT email_lower, failures FROM login_failures"
                          " WHERE tenant_id = %s AND email_lower IN (%s, %s)",
                     (org.id, addr, ghost))
    # The 6th attempt, with the right password, is refused - for an existing
    # account and for an unknown address alike.
    r = try_login(ctx, org.key, addr, PASSWORD, source=src)
    assert r.status == 429, ("after 5 failed sign-ins the right password must get 429"
                             " too_many_attempts; got %r; login_failures rows: %r"
                             % (r, failures))
    assert_error(r, 429, "too_many_attempts")
    g = try_login(ctx, org.key, ghost, PASSWORD, source=src)
    assert_error(g, 429, "too_many_attempts")
    assert g.body == r.body
    assert sorted(failures) == sorted([(addr, 5), (ghost, 5)]), failures
    t0 = time.time()
    for pw, source in (("still wrong", src), (PASSWORD, src), (PASSWORD, "127.0.0.33"),
                       (PASSWORD, None)):
        r = try_login(ctx, org.key, addr.upper() if source is None else addr, pw, source=source)
        assert_error(r, 429, "too_many_attempts")
        retry = r.header("Retry-After")
        assert retry is not None and retry.isdigit(), r.headers
        assert 1 <= int(retry) <= 15 * 60, retry
    # A locked attempt costs no password check (it is refused up front).
    assert time.time() - t0 < 5
    assert owner(ctx, "SELECT count(*) FROM sessions WHERE user_id = %s", (uid,))[0][0] == 0
    # Other accounts of the tenant sign in, from the same address too.
    login(ctx, org.key, org.admin_email, source=src)
    # The same e-mail in another tenant is another account.
    other = new_org(ctx, "Sessions other")
    create_user(ctx, other.key, addr)
    login(ctx, other.key, addr, source=src)
    # When the window has passed, the right password works and clears the count.
    owner(ctx, "UPDATE login_failures SET last_failure_at = now() - interval '16 minutes'"
               " WHERE tenant_id = %s AND email_lower = %s", (org.id, addr))
    token = login(ctx, org.key, addr, source=src)
    assert call(ctx, "GET", "/v1/me", org.key, token).json["id"] == uid
    assert owner(ctx, "SELECT count(*) FROM login_failures WHERE tenant_id = %s"
                      " AND email_lower = %s", (org.id, addr))[0][0] == 0


@test
def many_failures_from_one_address_block_that_address(ctx):
    org = shared_org(ctx)
    src, elsewhere = "127.0.0.34", "127.0.0.35"
    # 20 different (unknown) accounts: no account reaches its own limit.
    for i in range(20):
        r = try_login(ctx, org.key, email(), "guess %d" % i, source=src)
        assert_error(r, 401, "invalid_credentials")
    r = try_login(ctx, org.key, org.admin_email, PASSWORD, source=src)
    assert_error(r, 429, "too_many_attempts")
    assert r.header("Retry-After") and int(r.header("Retry-After")) >= 1, r.headers
    login(ctx, org.key, org.admin_email, source=elsewhere)


def login_via(ctx, port, key, email, password, xff=None):
    """A sign-in sent to the server on port, with X-Forwarded-For when given."""
    h = {"X-Forwarded-For": xff} if xff is not None else None
    return ctx.http("POST", "/v1/auth/login", key=key, body={"email": email, "password": password},
                    headers=h, port=port)


def admin_sessions(ctx, org):
    return owner(ctx, "SELECT count(*) FROM sessions WHERE user_id = %s", (org.admin_id,))[0][0]


@test
def behind_a_trusted_proxy_the_forwarded_address_is_limited(ctx):
    """deploy/nginx.conf proxies from 127.0.0.1 and appends the client to
    X-Forwarded-For; with --trusted-proxies 127.0.0.1 each client has its own
    per-address limit instead of everyone sharing the proxy's."""
    org = new_org(ctx, "Behind nginx")
    a, b = "203.0.113.7", "2001:db8::b"
    srv = Server(ctx, ["--trusted-proxies", "127.0.0.1,::1"])
    try:
        # 20 unknown accounts: no account reaches its own limit.
        for i in range(20):
            r = login_via(ctx, srv.port, org.key, email(), "guess %d" % i, a)
            assert_error(r, 401, "invalid_credentials")
        before = admin_sessions(ctx, org)
        failures = owner(ctx, "SELECT count(*) FROM login_failures WHERE tenant_id = %s",
                         (org.id,))[0][0]
        # A is blocked, even with the right password, and even when the
        # client puts another address in front (nginx keeps it, to the left).
        for xff in (a, "1.2.3.4, " + a, "1.2.3.4," + a, "127.0.0.1, " + a, "garbage, " + a):
            r = login_via(ctx, srv.port, org.key, org.admin_email, PASSWORD, xff)
            assert_error(r, 429, "too_many_attempts")
            assert 1 <= int(r.header("Retry-After")) <= 15 * 60, r.headers
        # Two header fields are one list: the proxy's own comes last.
        r = ctx.http("POST", "/v1/auth/login", key=org.key, port=srv.port,
                     raw=("POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nX-Tenant-Key: %s\r\n"
                          "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: %s\r\n"
                          "Content-Type: application/json\r\nContent-Length: %d\r\n"
                          "Connection: close\r\n\r\n%s"
                          % (org.key, a, len(json.dumps({"email": org.admin_email,
                                                          "password": PASSWORD})),
                             json.dumps({"email": org.admin_email, "password": PASSWORD}))
                     ).encode())
        assert_error(r, 429, "too_many_attempts")
        # Nothing was written by the refused attempts.
        assert admin_sessions(ctx, org) == before
        assert owner(ctx, "SELECT count(*) FROM login_failures WHERE tenant_id = %s",
                     (org.id,))[0][0] == failures
        # Another client behind the same proxy, and the proxy itself, sign in.
        r = login_via(ctx, srv.port, org.key, org.admin_email, PASSWORD, b)
        assert r.status == 201, r
        r = login_via(ctx, srv.port, org.key, org.admin_email, PASSWORD, "2001:DB8:0::C")
        assert r.status == 201, r
        r = login_via(ctx, srv.port, org.key, org.admin_email, PASSWORD)
        assert r.status == 201, r
        # An IPv6 spelling of A is still A; an IPv4-mapped one too.
        r = login_via(ctx, srv.port, org.key, org.admin_email, PASSWORD, "::ffff:" + a)
        assert_error(r, 429, "too_many_attempts")
    finally:
        assert srv.stop() == 0, srv.output()[-3000:]


@test
def one_ipv6_64_shares_one_sign_in_allowance(ctx):
    """A client given an IPv6 /64 holds 2^64 addresses: failures from any of
    them count together, so a new address in the same /64 is refused (429,
    nothing written), while the next /64 signs in."""
    org = new_org(ctx, "IPv6 sprayer")
    srv = Server(ctx, ["--trusted-proxies", "127.0.0.1,::1"])
    try:
        for i in range(20):
            r = login_via(ctx, srv.port, org.key, email(), "guess %d" % i,
                          "2001:db8:5:5::%x" % (i + 1))
            assert_error(r, 401, "invalid_credentials")
        before = admin_sessions(ctx, org)
        failures = owner(ctx, "SELECT count(*), sum(failures) FROM login_failures"
                         " WHERE tenant_id = %s", (org.id,))[0]
        for xff in ("2001:db8:5:5:ffff::1", "2001:db8:5:5::1"):
            r = login_via(ctx, srv.port, org.key, org.admin_email, PASSWORD, xff)
            assert_error(r, 429, "too_many_attempts")
            assert 1 <= int(r.header("Retry-After")) <= 15 * 60, r.headers
        assert admin_sessions(ctx, org) == before
        assert owner(ctx, "SELECT count(*), sum(failures) FROM login_failures"
                     " WHERE tenant_id = %s", (org.id,))[0] == failures
        r = login_via(ctx, srv.port, org.key, org.admin_email, PASSWORD, "2001:db8:5:6::1")
        assert r.status == 201, r
    finally:
        assert srv.stop() == 0, srv.output()[-3000:]


@test
def without_trusted_proxies_x_forwarded_for_is_ignored(ctx):
    """A client talking to tekup directly cannot pick its address: the block
    on its TCP peer holds whatever X-Forwarded-For it sends."""
    org = shared_org(ctx)
    src = "127.0.0.37"
    for i in range(20):
        r = call(ctx, "POST", "/v1/auth/login", org.key,
                 body={"email": email(), "password": "guess %d" % i}, source=src,
                 headers={"X-Forwarded-For": "198.51.100.%d" % i})
        assert_error(r, 401, "invalid_credentials")
    before = admin_sessions(ctx, org)
    for xff in ("198.51.100.200", "127.0.0.1", "198.51.100.201, 127.0.0.38"):
        r = call(ctx, "POST", "/v1/auth/login", org.key,
                 body={"email": org.admin_email, "password": PASSWORD}, source=src,
                 headers={"X-Forwarded-For": xff})
        assert_error(r, 429, "too_many_attempts")
    assert admin_sessions(ctx, org) == before
    login(ctx, org.key, org.admin_email, source="127.0.0.38")


@test
def a_bad_trusted_proxies_value_stops_serve(ctx):
    n_tenants = owner(ctx, "SELECT count(*) FROM tenants")[0][0]
    cases = [
        (["--trusted-proxies", "10.0.0.0/8"], None, r"--trusted-proxies.*'10\.0\.0\.0/8'"),
        (["--trusted-proxies=127.0.0.1,nginx"], None, r"--trusted-proxies.*'nginx'"),
        (["--trusted-proxies", "127.0.0.1,"], None, r"--trusted-proxies.*empty"),
        ([], {"TEKUP_TRUSTED_PROXIES": "127.0.0.1:8080"},
         r"TEKUP_TRUSTED_PROXIES.*'127\.0\.0\.1:8080'"),
    ]
    for args, env, pattern in cases:
        port = free_port()
        p = ctx.tekup("serve", "--data-dir", ctx.data_dir, "--port", str(port), "--no-demo",
                      "--no-migrate", *args, env=env, timeout=30)
        assert p.returncode == 2, (args, env, p.returncode, p.stdout, p.stderr)
        assert re.search(pattern, p.stderr), (args, env, p.stderr)
    assert owner(ctx, "SELECT count(*) FROM tenants")[0][0] == n_tenants


def parallel_logins(ctx, attempts):
    """Sends every (key, email, password, source) at once, each on its own
    connection; returns the responses in order."""
    import threading
    out = [None] * len(attempts)
    start = threading.Barrier(len(attempts))

    def one(i, key, addr, pw, source):
        start.wait()
        out[i] = try_login(ctx, key, addr, pw, source=source)

    threads = [threading.Thread(target=one, args=(i,) + a) for i, a in enumerate(attempts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


@test
def parallel_wrong_passwords_get_five_checks_per_account(ctx):
    org = shared_org(ctx)
    addr = email()
    uid = create_user(ctx, org.key, addr)
    # Each from its own address, so only the account's limit can refuse them.
    answers = parallel_logins(ctx, [(org.key, addr, "guess %d" % i, "127.0.1.%d" % (i + 1))
                                    for i in range(30)])
    statuses = sorted(r.status for r in answers)
    assert statuses.count(401) == FAILURES_BEFORE_LOCK, statuses
    assert statuses.count(429) == 30 - FAILURES_BEFORE_LOCK, statuses
    for r in answers:
        if r.status == 429:
            assert_error(r, 429, "too_many_attempts")
            assert 1 <= int(r.header("Retry-After")) <= 15 * 60, r.headers
        else:
            assert_error(r, 401, "invalid_credentials")
    rows = owner(ctx, "SELECT failures, last_failure_at FROM login_failures"
                      " WHERE tenant_id = %s AND email_lower = %s", (org.id, addr))
    assert len(rows) == 1 and rows[0][0] == FAILURES_BEFORE_LOCK, rows
    # Refused attempts, the right password among them, change nothing: the
    # lock is not extended and no session is made.
    for pw in ("guess again", PASSWORD):
        assert_error(try_login(ctx, org.key, addr, pw, source="127.0.1.99"), 429,
                     "too_many_attempts")
    assert owner(ctx, "SELECT failures, last_failure_at FROM login_failures"
                      " WHERE tenant_id = %s AND email_lower = %s", (org.id, addr)) == rows
    assert owner(ctx, "SELECT count(*) FROM sessions WHERE user_id = %s", (uid,))[0][0] == 0


@test
def parallel_failures_from_one_address_get_twenty_checks(ctx):
    org = shared_org(ctx)
    src = "127.0.0.39"
    # 30 unknown accounts at once: no account reaches its own limit.
    answers = parallel_logins(ctx, [(org.key, email(), "guess %d" % i, src) for i in range(30)])
    statuses = sorted(r.status for r in answers)
    assert statuses.count(401) == 20 and statuses.count(429) == 10, statuses
    for r in answers:
        assert_error(r, r.status, "invalid_credentials" if r.status == 401
                     else "too_many_attempts")
    r = try_login(ctx, org.key, org.admin_email, PASSWORD, source=src)
    assert_error(r, 429, "too_many_attempts")
    login(ctx, org.key, org.admin_email, source="127.0.0.40")


@test
def a_successful_sign_in_gives_its_attempt_back(ctx):
    org = shared_org(ctx)
    src = "127.0.0.41"
    for i in range(19):
        assert_error(try_login(ctx, org.key, email(), "guess %d" % i, source=src), 401,
                     "invalid_credentials")
    # Counted while its password was checked, given back when it succeeded:
    # the address still has one failure left.
    login(ctx, org.key, org.admin_email, source=src)
    assert_error(try_login(ctx, org.key, email(), "guess 20", source=src), 401,
                 "invalid_credentials")
    assert_error(try_login(ctx, org.key, org.admin_email, PASSWORD, source=src), 429,
                 "too_many_attempts")


@test
def password_parameters_are_upgraded_on_sign_in(ctx):
    org = shared_org(ctx)
    addr = email()
    uid = create_user(ctx, org.key, addr)
    weak = weak_argon2id(PASSWORD)
    assert "m=8,t=1" in weak, weak
    owner(ctx, "UPDATE users SET password_hash = %s WHERE id = %s", (weak, uid))
    login(ctx, org.key, addr)
    (now_hash,), = owner(ctx, "SELECT password_hash FROM users WHERE id = %s", (uid,))
    assert now_hash != weak and now_hash.startswith("$argon2id$v=19$"), now_hash
    assert "m=8,t=1" not in now_hash, now_hash
    login(ctx, org.key, addr)  # the new hash verifies
    (again,), = owner(ctx, "SELECT password_hash FROM users WHERE id = %s", (uid,))
    assert again == now_hash  # current parameters: not rehashed again


# --------------------------------------------------------------------------
# the end of a session


@test
def logout_ends_only_that_session(ctx):
    org = shared_org(ctx)
    addr = email()
    uid = create_user(ctx, org.key, addr)
    t1 = login(ctx, org.key, addr)
    t2 = login(ctx, org.key, addr)
    r = call(ctx, "POST", "/v1/auth/logout", org.key, t1)
    assert r.status == 204 and r.body == "", r
    assert_session_refused(ctx, org.key, t1)
    r = call(ctx, "POST", "/v1/auth/logout", org.key, t1)
    assert_error(r, 401, "invalid_session")
    (revoked,), = owner(ctx, "SELECT revoked_at IS NOT NULL FROM sessions WHERE token_hash = %s",
                        (token_hash(t1),))
    assert revoked
    r = call(ctx, "GET", "/v1/me", org.key, t2)
    assert r.status == 200 and r.json["id"] == uid, r
    # Logging out needs a session.
    r = call(ctx, "POST", "/v1/auth/logout", org.key)
    assert_error(r, 400, "not_signed_in")


@test
def expired_session_is_refused(ctx):
    org = shared_org(ctx)
    token = login(ctx, org.key, org.admin_email)
    assert call(ctx, "GET", "/v1/me", org.key, token).status == 200
    n = owner(ctx, "UPDATE sessions SET expires_at = now() - interval '1 minute'"
                   " WHERE token_hash = %s", (token_hash(token),))
    assert n == 1
    assert_session_refused(ctx, org.key, token)
    r = call(ctx, "POST", "/v1/auth/logout", org.key, token)
    assert_error(r, 401, "invalid_session")


@test
def deactivation_and_password_change_end_sessions_at_once(ctx):
    org = shared_org(ctx)
    admin_tok = login(ctx, org.key, org.admin_email)
    addr = email()
    uid = create_user(ctx, org.key, addr)
    token = login(ctx, org.key, addr)
    assert call(ctx, "GET", "/v1/me", org.key, token).status == 200
    r = call(ctx, "DELETE", "/v1/users/" + uid, org.key, admin_tok)
    assert r.status == 204, r
    assert_session_refused(ctx, org.key, token)
    assert owner(ctx, "SELECT count(*) FROM sessions WHERE user_id = %s AND revoked_at IS NULL",
                 (uid,))[0][0] == 0
    # A deactivated user cannot sign in again: the ordinary 401.
    assert_error(try_login(ctx, org.key, addr, source="127.0.0.36"), 401, "invalid_credentials")

    # A new password ends the old sessions; the old password stops working.
    addr2 = email()
    uid2 = create_user(ctx, org.key, addr2)
    token2 = login(ctx, org.key, addr2)
    r = call(ctx, "PATCH", "/v1/users/" + uid2, org.key, admin_tok,
             {"password": "battery staple 42"})
    assert r.status == 200, r
    assert_session_refused(ctx, org.key, token2)
    token3 = login(ctx, org.key, addr2, "battery staple 42")
    assert call(ctx, "GET", "/v1/me", org.key, token3).json["id"] == uid2
    # (one failure for this account, from its own address)
    assert_error(try_login(ctx, org.key, addr2, PASSWORD, source="127.0.0.36"), 401,
                 "invalid_credentials")


@test
def token_of_another_tenant_is_refused(ctx):
    a = shared_org(ctx)
    b = new_org(ctx, "Sessions B")
    tok_b = login(ctx, b.key, b.admin_email)
    tok_a = login(ctx, a.key, a.admin_email)
    refusal = assert_session_refused(ctx, a.key, tok_b)
    assert_session_refused(ctx, b.key, tok_a)
    # Unchanged for their own tenants.
    assert call(ctx, "GET", "/v1/me", b.key, tok_b).json["id"] == b.admin_id
    assert call(ctx, "GET", "/v1/me", a.key, tok_a).json["id"] == a.admin_id
    # The same answer as for a token that never existed.
    unknown = assert_session_refused(ctx, a.key, "ts_" + "0" * 64)
    assert refusal.json == unknown.json
    # Writes are refused as well, and nothing is written.
    before = ctx.count_leads(a.id)
    r = call(ctx, "POST", "/v1/leads", a.key, tok_b, {"name": "cross-tenant"})
    assert_error(r, 401, "invalid_session")
    assert ctx.count_leads(a.id) == before


@test
def malformed_authorization_is_invalid_session(ctx):
    org = shared_org(ctx)
    token = login(ctx, org.key, org.admin_email)
    expected = None
    for value in ("Basic dXNlcjpwYXNzd29yZA==", "Bearer", "Bearer ts_", "Token " + token,
                  token, "Bearer " + token.upper(), "Bearer " + token + "0",
                  "Bearer " + token[:-1], "Bearer ts_" + "g" * 64, "Bearer " + token[3:],
                  "Bearer ts-" + token[3:], "Bearer ts_" + "0" * 64, "Bearer " + "x" * 4000,
                  "Bearer " + token + " " + token):
        r = assert_session_refused(ctx, org.key, None, headers={"Authorization": value})
        expected = expected or r.json
        assert r.json == expected, (value[:40], r)
    # The real token still works, and the scheme name is case-insensitive.
    assert call(ctx, "GET", "/v1/me", org.key, token).status == 200
    r = call(ctx, "GET", "/v1/me", org.key, headers={"Authorization": "bearer " + token})
    assert r.status == 200, r


@test
def revoked_key_or_suspended_tenant_refuses_a_valid_session(ctx):
    org = new_org(ctx, "Sessions lifecycle")
    token = login(ctx, org.key, org.admin_email)
    assert call(ctx, "GET", "/v1/me", org.key, token).status == 200
    # Suspended tenant: 401 invalid_tenant_key within the cache bound.
    owner(ctx, "UPDATE tenants SET status = 'suspended' WHERE id = %s", (org.id,))
    r = wait_status(ctx, org.key, token, 401)
    assert_error(r, 401, "invalid_tenant_key")
    assert_error(call(ctx, "GET", "/v1/leads", org.key, token), 401, "invalid_tenant_key")
    assert_error(try_login(ctx, org.key, org.admin_email), 401, "invalid_tenant_key")
    owner(ctx, "UPDATE tenants SET status = 'active' WHERE id = %s", (org.id,))
    r = wait_status(ctx, org.key, token, 200)
    assert r.json["id"] == org.admin_id
    # Revoked key: the session does not keep it alive.
    owner(ctx, "UPDATE api_keys SET revoked_at = now() WHERE tenant_id = %s", (org.id,))
    r = wait_status(ctx, org.key, token, 401)
    assert_error(r, 401, "invalid_tenant_key")
    assert_error(call(ctx, "POST", "/v1/leads", org.key, token, {"name": "x"}), 401,
                 "invalid_tenant_key")
    assert ctx.count_leads(org.id) == 0
