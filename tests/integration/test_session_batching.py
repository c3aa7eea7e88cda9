"""test_session_batching.py - signed-in requests in one round trip, in batches.

A session the server has verified is remembered (by its token's SHA-256,
src/auth/context.c).  The next lead request with that token sets the user
context from memory, and its transaction first runs session_assert()
(migration 0012), which fails the transaction before anything else runs if
the session was revoked, expired, its user deactivated, or the user's role
changed.  The server then forgets the session and verifies it afresh.  So a
signed-in lead request is one round trip and joins its worker's batch like
the integration's.

What the tests hold the server to:
  - signed-in reads and writes travel in batches (the access log's "batch"
    with a "userId"), and each sees and writes exactly what its own role
    allows;
  - a session ended behind the server's back (in the database, as another
    server instance would) is refused at once: 401 invalid_session, nothing
    written, also in the middle of a batch whose other writes succeed;
  - a role changed behind the server's back applies to the very next
    request, with no 401.
"""
import json
import time
import uuid

import psycopg2

from harness import Server, assert_error, call, login, new_org, owner, send_all, test

CONNECTIONS = 16
PASSWORD = "correct horse 9"


def access_log(srv):
    return [json.loads(line) for line in srv.output().splitlines() if '"msg":"request"' in line]


def access_line(srv, response):
    """The access-log line of the request that got response (access lines
    are written within a few milliseconds)."""
    rid = response.header("X-Request-ID")
    deadline = time.time() + 2
    while True:
        for e in access_log(srv):
            if e.get("requestId") == rid:
                return e
        assert time.time() < deadline, "no access line for request " + rid
        time.sleep(0.05)


def assert_served_from_memory(srv, response, uid):
    """The request went through a batch with its remembered session (one
    round trip): the access line has a batch and the user."""
    e = access_line(srv, response)
    assert e.get("batch", 0) >= 1 and e.get("userId") == uid, e


def key_resolved_just_now(ctx, org, port=None, ttl_s=2.0):
    """Lets org's cached key expire (ttl_s: the server's --key-cache-ttl-ms,
    2 s unless set), then has it resolved again: the requests right after
    find it cached and travel in a batch.  (A request whose key is resolved
    runs on its own, so a check of the batch path made just as the entry
    expired would fail on a slow machine.)"""
    time.sleep(ttl_s + 0.1)
    assert ctx.http("GET", "/v1/leads/stats", key=org.key, port=port).status == 200


def add_user(ctx, org, role, port=None):
    """A user of org with PASSWORD, made through the users API; its id."""
    email = "sb-%s@example.com" % uuid.uuid4().hex[:10]
    r = ctx.http("POST", "/v1/users", key=org.key, port=port,
                 body={"email": email, "name": "Someone", "password": PASSWORD, "role": role})
    assert r.status == 201, r
    return r.json["id"], email


def sign_in(ctx, org, email, port=None):
    r = ctx.http("POST", "/v1/auth/login", key=org.key, port=port,
                 body={"email": email, "password": PASSWORD})
    assert r.status == 201, r
    return r.json["token"]


def bearer(token):
    return {"Authorization": "Bearer " + token}


def org_with_two_users(ctx, label, port):
    """A new org with two users of role "user": org, (id, e-mail) x 2."""
    org = new_org(ctx, label)
    return org, add_user(ctx, org, "user", port), add_user(ctx, org, "user", port)


def new_lead(ctx, org, name, port=None, **fields):
    r = ctx.http("POST", "/v1/leads", key=org.key, port=port, body=dict(fields, name=name))
    assert r.status == 201, r
    return r.json["id"]


def visible_ids(ctx, org, token, port=None):
    r = call(ctx, "GET", "/v1/leads?limit=100", org.key, token) if port is None else \
        ctx.http("GET", "/v1/leads?limit=100", key=org.key, port=port, headers=bearer(token))
    assert r.status == 200, r
    return {lead["id"] for lead in r.json["data"]}


def rows_named(ctx, tenant_id, prefix):
    """name -> (rows, created_by) for the tenant's leads named prefix..."""
    rows = owner(ctx, "SELECT name, count(*), min(created_by::text) FROM leads"
                      " WHERE tenant_id = %s AND name LIKE %s GROUP BY name",
                 (tenant_id, prefix + "%"))
    return {name: (n, by) for name, n, by in rows}


@test
def signed_in_reads_travel_in_batches_each_with_its_own_role(ctx):
    """Sixteen connections read as an admin, two users and the integration
    at once through one worker: each list is exactly what the role may see,
    a user asking for another user's lead gets 404, and the signed-in reads
    shared pipelines."""
    srv = Server(ctx, ["--threads", "1", "--pool-size", "2"])
    try:
        port = srv.port
        org, (u1, e1), (u2, e2) = org_with_two_users(ctx, "Session batch reads", port)
        l1 = new_lead(ctx, org, "for u1", port, assignedTo=u1)
        l2 = new_lead(ctx, org, "for u2", port, assignedTo=u2)
        l3 = new_lead(ctx, org, "for nobody", port)
        everyone = {l1, l2, l3}
        tokens = {"admin": sign_in(ctx, org, org.admin_email, port),
                  "u1": sign_in(ctx, org, e1, port), "u2": sign_in(ctx, org, e2, port)}
        sees = {"admin": everyone, "u1": {l1}, "u2": {l2}, "integration": everyone}
        # Each session verified once (and so remembered) before the rush.
        for who, token in tokens.items():
            assert visible_ids(ctx, org, token, port) == sees[who], who

        def expect_list(want):
            def check(status, body):
                if status != 200:
                    return "expected 200"
                got = {lead["id"] for lead in body["data"]}
                return None if got == want else "saw %d leads, not %d" % (len(got), len(want))
            return check

        def expect_status(want):
            return lambda status, body: None if status == want else "expected %d" % want

        who_list = ["admin", "u1", "u2", "integration"]
        jobs_per_conn = []
        for c in range(CONNECTIONS):
            jobs = []
            for i in range(30):
                who = who_list[(c + i) % 4]
                h = bearer(tokens[who]) if who in tokens else {}
                if i % 3 == 0:
                    jobs.append(("GET", "/v1/leads?limit=100", org.key, None, h,
                                 expect_list(sees[who])))
                else:
                    lead = [l1, l2, l3][i % 3]
                    jobs.append(("GET", "/v1/leads/" + lead, org.key, None, h,
                                 expect_status(200 if lead in sees[who] else 404)))
            jobs_per_conn.append(jobs)
        _, failures = send_all(port, jobs_per_conn)
        assert not failures, "%d wrong answers, e.g. %s" % (len(failures), failures[:5])
        signed = [e for e in access_log(srv) if e.get("userId") and e.get("method") == "GET"]
        assert {e["userId"] for e in signed} >= {org.admin_id, u1, u2}, "userId not logged"
        batched = [e for e in signed if e.get("batch", 0) >= 1]
        assert batched, "no signed-in read went through a batch"
        assert max(e["batch"] for e in batched) >= 2, "signed-in reads never shared a pipeline"
    finally:
        assert srv.stop() == 0


@test
def the_first_request_after_sign_in_is_served_from_memory_and_still_checked(ctx):
    """Sign-in remembers the session it creates, so the user's very first
    lead request is one round trip in a batch (its access line has a batch
    and the user), and sees what a user may: its own lead, 404 for one
    assigned to nobody.  The remembered session is still checked: with
    another tenant's key it is 401, and once revoked in the database the
    next request is 401 invalid_session and writes nothing."""
    srv = Server(ctx, ["--threads", "1", "--pool-size", "2", "--key-cache-ttl-ms", "1000"])
    try:
        port = srv.port
        org, (u1, e1), _ = org_with_two_users(ctx, "Sign-in remembered", port)
        other = new_org(ctx, "Sign-in remembered, other")
        mine = new_lead(ctx, org, "for u1", port, assignedTo=u1)
        nobodys = new_lead(ctx, org, "for nobody", port)
        token = sign_in(ctx, org, e1, port)
        key_resolved_just_now(ctx, org, port, ttl_s=1.0)
        r = ctx.http("GET", "/v1/leads/" + mine, key=org.key, port=port, headers=bearer(token))
        assert r.status == 200 and r.json["id"] == mine, r
        assert_served_from_memory(srv, r, u1)
        r = ctx.http("GET", "/v1/leads/" + nobodys, key=org.key, port=port,
                     headers=bearer(token))
        assert_error(r, 404, "lead_not_found")
        assert_served_from_memory(srv, r, u1)
        # The other tenant's key cached first, so that the request takes the
        # batched path and it is the remembered session's tenant that fails.
        assert ctx.http("GET", "/v1/leads/stats", key=other.key, port=port).status == 200
        r = ctx.http("GET", "/v1/leads/" + mine, key=other.key, port=port,
                     headers=bearer(token))
        assert_error(r, 401, "invalid_session")
        owner(ctx, "UPDATE sessions SET revoked_at = now() WHERE tenant_id = %s AND user_id = %s",
              (org.id, u1))
        before = ctx.count_leads(org.id)
        r = ctx.http("POST", "/v1/leads", key=org.key, port=port, headers=bearer(token),
                     body={"name": "after revoke"})
        assert_error(r, 401, "invalid_session")
        assert ctx.count_leads(org.id) == before
    finally:
        assert srv.stop() == 0


@test
def signed_in_creates_in_batches_are_written_once_as_their_user(ctx):
    """Sixteen connections create leads at once as two users, an admin and
    the integration through one worker: every 201 is one row whose createdBy
    is the signed-in user (null for the integration), and the signed-in
    writes went through batches."""
    srv = Server(ctx, ["--threads", "1", "--pool-size", "4"])
    try:
        port = srv.port
        org, (u1, e1), (u2, e2) = org_with_two_users(ctx, "Session batch writes", port)
        tokens = {org.admin_id: sign_in(ctx, org, org.admin_email, port),
                  u1: sign_in(ctx, org, e1, port), u2: sign_in(ctx, org, e2, port)}
        for token in tokens.values():
            visible_ids(ctx, org, token, port)
        run = "sbw-%s-" % uuid.uuid4().hex[:8]
        authors = list(tokens) + [None]
        jobs_per_conn, author_of = [], {}
        for c in range(CONNECTIONS):
            jobs = []
            for i in range(12):
                who = authors[(c + i) % len(authors)]
                name = "%s%d-%d" % (run, c, i)
                author_of[name] = who
                h = bearer(tokens[who]) if who else {}
                jobs.append(("POST", "/v1/leads", org.key, {"name": name}, h, None))
            jobs_per_conn.append(jobs)
        results, failures = send_all(port, jobs_per_conn)
        assert not failures, failures[:5]
        assert len(results) == len(author_of)
        for job, status, body, _ in results:
            name = job[3]["name"]
            assert status == 201, (status, body)
            assert body["createdBy"] == author_of[name], (name, body["createdBy"])
        rows = rows_named(ctx, org.id, run)
        assert len(rows) == len(author_of), (len(rows), len(author_of))
        for name, (n, by) in rows.items():
            assert n == 1, "%s written %d times" % (name, n)
            assert by == author_of[name], (name, by, author_of[name])
        posts = [e for e in access_log(srv)
                 if e.get("method") == "POST" and e.get("userId") and e.get("batch", 0) >= 1]
        assert posts, "no signed-in write went through a batch"
    finally:
        assert srv.stop() == 0


@test
def a_remembered_session_ended_in_the_database_is_refused_at_once(ctx):
    """A session the server remembers is revoked, expired, or its user
    deactivated directly in the database (as another tekup instance or an
    operator would): the very next lead request with it - read or write -
    is 401 invalid_session, and the write wrote nothing."""
    org = new_org(ctx, "Session ends")
    cases = {
        "revoked": "UPDATE sessions SET revoked_at = now() WHERE token_hash = sha256(%s::bytea)",
        "expired": "UPDATE sessions SET expires_at = now() - interval '1 second'"
                   " WHERE token_hash = sha256(%s::bytea)",
        "deactivated": "UPDATE users SET is_active = false WHERE id ="
                       " (SELECT user_id FROM sessions WHERE token_hash = sha256(%s::bytea))",
    }
    for case, end_it in cases.items():
        uid, email = add_user(ctx, org, "user")
        token = sign_in(ctx, org, email)
        # Verified and remembered; a create and a read work.
        mine = new_lead(ctx, org, "before " + case, assignedTo=uid)
        assert visible_ids(ctx, org, token) == {mine}
        key_resolved_just_now(ctx, org)
        r = call(ctx, "POST", "/v1/leads", org.key, token, {"name": "ok " + case})
        assert r.status == 201 and r.json["createdBy"] == uid, r
        assert_served_from_memory(ctx.server, r, uid)
        before = ctx.count_leads(org.id)
        assert owner(ctx, end_it, (token.encode(),)) == 1, case
        r = call(ctx, "POST", "/v1/leads", org.key, token, {"name": "after " + case})
        assert_error(r, 401, "invalid_session")
        assert ctx.count_leads(org.id) == before, "%s: a refused write was written" % case
        r = call(ctx, "PATCH", "/v1/leads/" + mine, org.key, token, {"name": "changed"})
        assert_error(r, 401, "invalid_session")
        r = call(ctx, "DELETE", "/v1/leads/" + mine, org.key, token)
        assert_error(r, 401, "invalid_session")
        for path in ("/v1/leads?limit=5", "/v1/leads/" + mine, "/v1/leads/stats"):
            assert_error(call(ctx, "GET", path, org.key, token), 401, "invalid_session")
        (name,), = owner(ctx, "SELECT name FROM leads WHERE id = %s", (mine,))
        assert name == "before " + case, "%s: a refused PATCH changed the lead" % case
        assert ctx.count_leads(org.id) == before


@test
def a_role_changed_in_the_database_applies_to_the_next_request(ctx):
    """A remembered user is promoted to admin, then demoted again, directly
    in the database: each next list shows what the new role may see - all of
    the tenant's leads, then only the user's own - with no 401 between."""
    org = new_org(ctx, "Session role change")
    uid, email = add_user(ctx, org, "user")
    token = sign_in(ctx, org, email)
    mine = new_lead(ctx, org, "mine", assignedTo=uid)
    others = {new_lead(ctx, org, "other %d" % i) for i in range(3)}
    assert visible_ids(ctx, org, token) == {mine}
    key_resolved_just_now(ctx, org)
    r = call(ctx, "GET", "/v1/leads?limit=100", org.key, token)
    assert r.status == 200 and len(r.json["data"]) == 1, r
    assert_served_from_memory(ctx.server, r, uid)
    owner(ctx, "UPDATE tenant_users SET role = 'admin' WHERE user_id = %s", (uid,))
    assert visible_ids(ctx, org, token) == {mine} | others
    r = call(ctx, "GET", "/v1/leads/" + sorted(others)[0], org.key, token)
    assert r.status == 200, r
    owner(ctx, "UPDATE tenant_users SET role = 'user' WHERE user_id = %s", (uid,))
    assert visible_ids(ctx, org, token) == {mine}
    r = call(ctx, "GET", "/v1/leads/" + sorted(others)[0], org.key, token)
    assert_error(r, 404, "lead_not_found")
    r = call(ctx, "DELETE", "/v1/leads/" + sorted(others)[0], org.key, token)
    assert_error(r, 404, "lead_not_found")
    assert len(visible_ids(ctx, org, login(ctx, org.key, org.admin_email))) == 4


@test
def an_ended_session_in_a_batch_fails_alone(ctx):
    """Through one worker, half the connections create leads with a session
    that was revoked in the database after the server remembered it, half
    with live sessions, at once: every revoked one is 401 invalid_session
    and wrote nothing; every live one is 201 and written exactly once."""
    srv = Server(ctx, ["--threads", "1", "--pool-size", "2"])
    try:
        port = srv.port
        org = new_org(ctx, "Session batch ends")
        live, dead = [], []
        for i in range(4):
            _, email = add_user(ctx, org, "user", port)
            (live if i % 2 == 0 else dead).append(sign_in(ctx, org, email, port))
        for token in live + dead:
            visible_ids(ctx, org, token, port)  # remembered
        for token in dead:
            assert owner(ctx, "UPDATE sessions SET revoked_at = now()"
                              " WHERE token_hash = sha256(%s::bytea)", (token.encode(),)) == 1
        run = "sbe-%s-" % uuid.uuid4().hex[:8]
        jobs_per_conn, dead_names = [], set()
        for c in range(CONNECTIONS):
            jobs = []
            for i in range(10):
                name = "%s%d-%d" % (run, c, i)
                if c % 2:
                    token = dead[(c + i) % 2]
                    dead_names.add(name)
                else:
                    token = live[(c + i) % 2]
                jobs.append(("POST", "/v1/leads", org.key, {"name": name}, bearer(token), None))
            jobs_per_conn.append(jobs)
        results, failures = send_all(port, jobs_per_conn)
        assert not failures, failures[:5]
        for job, status, body, _ in results:
            name = job[3]["name"]
            if name in dead_names:
                assert status == 401 and body["error"]["code"] == "invalid_session", (status, body)
            else:
                assert status == 201, (status, body)
        rows = rows_named(ctx, org.id, run)
        assert not set(rows) & dead_names, "a refused write was written"
        assert len(rows) == len(results) - len(dead_names)
        assert all(n == 1 for n, _ in rows.values()), "a write was committed twice"
    finally:
        assert srv.stop() == 0


@test
def a_remembered_session_that_ended_gets_401_before_any_input_error(ctx):
    """Bad input from a session that has ended is answered 401
    invalid_session, as without the session cache, not 400/403 (those
    need no database work, so the remembered session was never checked);
    and a token remembered for one tenant is refused with another tenant's
    key.  Nothing is written, and the access log never names the user of
    a refused session."""
    org = new_org(ctx, "Session ended bad input")
    other = new_org(ctx, "Session other tenant")
    uid, email = add_user(ctx, org, "user")
    token = sign_in(ctx, org, email)
    key_resolved_just_now(ctx, org)
    for _ in range(2):  # verified, then remembered
        r = call(ctx, "GET", "/v1/leads?limit=5", org.key, token)
        assert r.status == 200, r
    assert_served_from_memory(ctx.server, r, uid)
    # Another tenant's key with this remembered token.
    before_other = ctx.count_leads(other.id)
    assert_error(call(ctx, "POST", "/v1/leads", other.key, token, {"name": "x"}), 401,
                 "invalid_session")
    assert_error(call(ctx, "GET", "/v1/leads?limit=5", other.key, token), 401,
                 "invalid_session")
    assert ctx.count_leads(other.id) == before_other
    # Live session, bad input: the input errors.
    assert_error(call(ctx, "POST", "/v1/leads", org.key, token, {"nope": 1}), 400,
                 "unknown_field")
    assert_error(call(ctx, "GET", "/v1/leads?limit=abc", org.key, token), 400,
                 "invalid_parameter")
    # Ended: 401 first.
    owner(ctx, "UPDATE sessions SET revoked_at = now() WHERE token_hash = sha256(%s::bytea)",
          (token.encode(),))
    before = ctx.count_leads(org.id)
    refused = [
        call(ctx, "POST", "/v1/leads", org.key, token, {"nope": 1}),
        call(ctx, "POST", "/v1/leads", org.key, token, {"name": ""}),
        call(ctx, "GET", "/v1/leads?limit=abc", org.key, token),
        call(ctx, "GET", "/v1/leads/not-a-uuid", org.key, token),
        call(ctx, "PATCH", "/v1/leads/" + str(uuid.uuid4()), org.key, token, {"status": "NOPE"}),
    ]
    for r in refused:
        assert_error(r, 401, "invalid_session")
        e = access_line(ctx.server, r)
        assert e.get("userId") is None, e
    assert ctx.count_leads(org.id) == before


@test
def without_session_assert_or_with_the_cache_off_sessions_are_verified_the_old_way(ctx):
    """A server whose schema lacks session_assert() (a binary newer than
    its schema, serve --no-migrate) warns at start and serves signed-in
    users with a verification of their own, as does --no-session-cache;
    a running server whose session check finds the function gone answers
    the same way (verified afresh, never 500).  An ended session is
    still refused."""
    org = new_org(ctx, "Session old schema")
    uid, email = add_user(ctx, org, "admin")
    token = sign_in(ctx, org, email)
    lead = new_lead(ctx, org, "seen")
    rename = "ALTER FUNCTION %s(uuid, bytea) RENAME TO %s"
    off = Server(ctx, ["--no-session-cache"])
    try:
        for _ in range(3):
            r = ctx.http("GET", "/v1/leads/" + lead, key=org.key, port=off.port,
                         headers=bearer(token))
            assert r.status == 200, r
            e = access_line(off, r)
            assert e.get("userId") == uid and "batch" not in e, e
    finally:
        assert off.stop() == 0
    # Remembered by the shared server before the function goes away.
    key_resolved_just_now(ctx, org)
    r = call(ctx, "GET", "/v1/leads/" + lead, org.key, token)
    r = call(ctx, "GET", "/v1/leads/" + lead, org.key, token)
    assert_served_from_memory(ctx.server, r, uid)
    owner(ctx, rename % ("session_assert", "session_assert_gone"))
    try:
        srv = Server(ctx)
        try:
            for _ in range(3):
                r = ctx.http("GET", "/v1/leads/" + lead, key=org.key, port=srv.port,
                             headers=bearer(token))
                assert r.status == 200, r
                assert "batch" not in access_line(srv, r)
            assert "no session_assert()" in srv.output()
        finally:
            assert srv.stop() == 0
        for _ in range(3):  # the running server: its check fails, then verified afresh
            r = call(ctx, "GET", "/v1/leads/" + lead, org.key, token)
            assert r.status == 200, r
        r = call(ctx, "POST", "/v1/leads", org.key, token, {"name": "old schema write"})
        assert r.status == 201 and r.json["createdBy"] == uid, r
        assert owner(ctx, "SELECT count(*) FROM leads WHERE tenant_id = %s AND name = %s",
                     (org.id, "old schema write"))[0][0] == 1
        owner(ctx, "UPDATE sessions SET revoked_at = now() WHERE token_hash = sha256(%s::bytea)",
              (token.encode(),))
        assert_error(call(ctx, "GET", "/v1/leads/" + lead, org.key, token), 401,
                     "invalid_session")
    finally:
        owner(ctx, rename % ("session_assert_gone", "session_assert"))


@test
def the_session_check_requires_the_database_role_of_the_users_role(ctx):
    """session_assert (0016) vouches for the role the transaction reads as,
    not only for the settings: a plain user's remembered session passes only
    as tekup_app_user, an admin's only as the login role, so a server that
    chose the wrong role would fail the transaction (TKS01) instead of
    reading with the wrong policy."""
    org = new_org(ctx, "Session role check")
    uid, email = add_user(ctx, org, "user")
    user_token = sign_in(ctx, org, email)
    admin_token = sign_in(ctx, org, org.admin_email)
    admin_id = owner(ctx, "SELECT user_id::text FROM sessions WHERE token_hash ="
                          " sha256(%s::bytea)", (admin_token.encode(),))[0][0]
    c = ctx.app_db()
    try:
        for who, token, role, as_user_role, passes in (
                ("user", user_token, "user", True, True),
                ("user", user_token, "user", False, False),
                ("admin", admin_token, "admin", False, True),
                ("admin", admin_token, "admin", True, False)):
            cur = c.cursor()
            cur.execute("BEGIN")
            cur.execute("SET LOCAL app.current_tenant = %s", (org.id,))
            cur.execute("SET LOCAL app.\"current_user\" = %s", (uid if who == "user" else admin_id,))
            cur.execute("SET LOCAL app.current_user_role = %s", (role,))
            if as_user_role:
                cur.execute("SET LOCAL ROLE tekup_app_user")
            try:
                cur.execute("SELECT session_assert(%s, sha256(%s::bytea))",
                            (org.id, token.encode()))
                assert passes, (who, as_user_role)
            except psycopg2.Error as e:
                assert not passes and e.pgcode == "TKS01", (who, as_user_role, e.pgcode)
            c.rollback()
    finally:
        c.close()
