"""test_coalescing.py - the lead reads that a worker sends to PostgreSQL
together (src/http/server.c, flush_batch): many requests' transactions in
one pipeline, each with its own BEGIN ... COMMIT and its own tenant context.

Each test runs its own server with one worker, so that requests arriving
together on many keep-alive connections land in the same batch; the access
log's "batch" field (transactions in the pipeline that answered a request)
proves that they did.
"""
import json
import random
import socket
import struct
import threading
import time

from harness import BackendKiller, Server, owner, send_all, test

CONNECTIONS = 16


def hammer(port, jobs_per_conn):
    """Runs each list of (key, path, check) as GETs on its own keep-alive
    connection, all connections at once; returns the failures (strings)."""
    _, failures = send_all(port, [[("GET", path, key, None, {}, check)
                                   for key, path, check in jobs] for jobs in jobs_per_conn])
    return failures


def access_log(srv):
    """The server's access-log lines, parsed."""
    lines = []
    for line in srv.output().splitlines():
        if '"msg":"request"' in line:
            lines.append(json.loads(line))
    return lines


def leads_of(ctx, t, port):
    r = ctx.http("GET", "/v1/leads?limit=100", key=t.key, port=port)
    assert r.status == 200, r
    return {lead["id"]: lead for lead in r.json["data"]}


def expect_lead(lead):
    def check(status, body):
        if status != 200:
            return "expected 200"
        if body != lead:
            return "got another body than the lead's own"
        return None
    return check


def expect_error(status_want, code):
    def check(status, body):
        if status != status_want or not body or body.get("error", {}).get("code") != code:
            return "expected %d %s" % (status_want, code)
        return None
    return check


def expect_page_of(tenant_id, count):
    def check(status, body):
        if status != 200:
            return "expected 200"
        if len(body["data"]) != min(count, 5):
            return "expected %d leads" % min(count, 5)
        if any(lead["tenantId"] != tenant_id for lead in body["data"]):
            return "a lead of another tenant"
        return None
    return check


def expect_stats(total):
    def check(status, body):
        if status != 200:
            return "expected 200"
        if body.get("totalLeads") != total:
            return "expected total %d" % total
        return None
    return check


@test
def batched_reads_answer_each_request_with_its_own_tenants_data(ctx):
    """Sixteen connections of three tenants read leads, pages and stats at
    once through one worker: every answer is the asking tenant's own, a lead
    of another tenant is 404 and a malformed id 400, and the reads went to
    the database in batches."""
    tenants = [ctx.new_tenant(sample_leads=n) for n in (7, 9, 11)]
    srv = Server(ctx, ["--threads", "1", "--pool-size", "2"])
    try:
        leads = {t.id: leads_of(ctx, t, srv.port) for t in tenants}
        stats = {}
        for t in tenants:
            r = ctx.http("GET", "/v1/leads/stats", key=t.key, port=srv.port)
            assert r.status == 200, r
            stats[t.id] = r.json["totalLeads"]
            assert stats[t.id] == len(leads[t.id]), (stats[t.id], len(leads[t.id]))
        rng = random.Random(20261128)
        jobs_per_conn = []
        for c in range(CONNECTIONS):
            jobs = []
            for _ in range(40):
                t = tenants[rng.randrange(len(tenants))]
                other = tenants[(tenants.index(t) + 1) % len(tenants)]
                kind = rng.randrange(10)
                if kind < 5:
                    lid = rng.choice(sorted(leads[t.id]))
                    jobs.append((t.key, "/v1/leads/" + lid, expect_lead(leads[t.id][lid])))
                elif kind < 7:
                    lid = rng.choice(sorted(leads[other.id]))
                    jobs.append((t.key, "/v1/leads/" + lid, expect_error(404, "lead_not_found")))
                elif kind == 7:
                    jobs.append((t.key, "/v1/leads?limit=5",
                                 expect_page_of(t.id, len(leads[t.id]))))
                elif kind == 8:
                    jobs.append((t.key, "/v1/leads/stats", expect_stats(stats[t.id])))
                else:
                    jobs.append((t.key, "/v1/leads/not-a-uuid", expect_error(400, "invalid_id")))
            jobs_per_conn.append(jobs)
        failures = hammer(srv.port, jobs_per_conn)
        assert not failures, "%d wrong answers, e.g. %s" % (len(failures), failures[:5])
        batches = [e["batch"] for e in access_log(srv) if "batch" in e]
        assert batches, "no read went through a batch"
        assert max(batches) >= 2, "the reads never shared a pipeline: %r" % sorted(set(batches))
    finally:
        assert srv.stop() == 0


@test
def a_failing_transaction_in_a_batch_fails_alone(ctx):
    """One tenant's reads fail in the database (a policy function made to
    raise for it) while another's succeed, in the same batches: each failed
    read gets its own 503, every other read its lead, and the transactions
    that PostgreSQL skipped after a failure were sent again."""
    good = ctx.new_tenant(sample_leads=6)
    bad = ctx.new_tenant(sample_leads=6)
    original = owner(ctx, "SELECT pg_get_functiondef('current_tenant_id()'::regprocedure)")[0][0]
    srv = Server(ctx, ["--threads", "1", "--pool-size", "2", "--log-level", "debug"])
    try:
        good_leads = leads_of(ctx, good, srv.port)
        bad_leads = leads_of(ctx, bad, srv.port)
        owner(ctx, """
            CREATE OR REPLACE FUNCTION current_tenant_id() RETURNS uuid
                LANGUAGE plpgsql STABLE AS $$
            BEGIN
                IF current_setting('app.current_tenant', true) = '%s' THEN
                    RAISE EXCEPTION 'injected' USING ERRCODE = '40001';
                END IF;
                RETURN NULLIF(current_setting('app.current_tenant', true), '')::uuid;
            END $$""" % bad.id)
        jobs_per_conn = []
        for c in range(CONNECTIONS):
            jobs = []
            for i, lid in enumerate(sorted(good_leads) * 5):
                if (c + i) % 2:
                    jobs.append((good.key, "/v1/leads/" + lid, expect_lead(good_leads[lid])))
                else:
                    bid = sorted(bad_leads)[i % len(bad_leads)]
                    jobs.append((bad.key, "/v1/leads/" + bid,
                                 expect_error(503, "conflict_retry")))
            jobs_per_conn.append(jobs)
        failures = hammer(srv.port, jobs_per_conn)
        assert not failures, "%d wrong answers, e.g. %s" % (len(failures), failures[:5])
        log = srv.output()
        assert "goes again" in log, "no transaction was ever skipped after a failure"
        shared = [e for e in access_log(srv)
                  if e.get("batch", 0) >= 2 and e.get("tenantId") == good.id]
        assert shared, "the good tenant's reads never shared a pipeline"
    finally:
        owner(ctx, original)
        try:
            lid = sorted(bad_leads)[0]
            r = ctx.http("GET", "/v1/leads/" + lid, key=bad.key, port=srv.port)
            assert r.status == 200 and r.json == bad_leads[lid], r
        finally:
            assert srv.stop() == 0


@test
def a_client_that_leaves_before_its_batch_is_sent_harms_no_one(ctx):
    """Clients that send three reads and then half-close, or close with a
    reset (the server's next read on them fails), while others read on
    keep-alive connections through the same worker: the others get their
    leads, the server keeps serving, and it exits cleanly under the
    sanitizers."""
    t = ctx.new_tenant(sample_leads=4)
    srv = Server(ctx, ["--threads", "1", "--pool-size", "2"])
    try:
        leads = leads_of(ctx, t, srv.port)  # also caches the key
        ids = sorted(leads)
        request = ("GET /v1/leads/%s HTTP/1.1\r\nHost: x\r\nX-Tenant-Key: %s\r\n\r\n"
                   % (ids[0], t.key)).encode()
        stop = threading.Event()

        def leavers(rst):
            while not stop.is_set():
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                try:
                    s.sendall(request * 3)
                    if rst:
                        # close with a reset: the server's next read fails
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
                    else:
                        s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass  # the server may already have answered and closed
                s.close()
                time.sleep(0.002)  # stay well under the per-IP connection limit

        bg = [threading.Thread(target=leavers, args=(rst,)) for rst in (False, True)]
        for b in bg:
            b.start()
        try:
            jobs = [[(t.key, "/v1/leads/" + lid, expect_lead(leads[lid])) for lid in ids * 10]
                    for _ in range(8)]
            failures = hammer(srv.port, jobs)
        finally:
            stop.set()
            for b in bg:
                b.join(30)
        assert not failures, "%d wrong answers, e.g. %s" % (len(failures), failures[:5])
        r = ctx.http("GET", "/v1/leads/" + ids[1], key=t.key, port=srv.port)
        assert r.status == 200 and r.json == leads[ids[1]], r
    finally:
        assert srv.stop() == 0


@test
def a_client_that_leaves_while_its_read_is_on_the_database_harms_no_one(ctx):
    """A client's read waits on the database (the owner holds an ACCESS
    EXCLUSIVE lock on leads) and the only worker waits with it; that client
    resets its connection, and more clients send reads and then reset or
    half-close.  When PostgreSQL answers, the worker answers into a closed
    connection and frees the request (under the sanitizers: no use after
    free, no leak); a client that stayed gets its lead, and the server goes
    on serving."""
    t = ctx.new_tenant(sample_leads=2)
    srv = Server(ctx, ["--threads", "1", "--pool-size", "2"])
    try:
        leads = leads_of(ctx, t, srv.port)  # also caches the key
        ids = sorted(leads)
        request = ("GET /v1/leads/%s HTTP/1.1\r\nHost: x\r\nX-Tenant-Key: %s\r\n\r\n"
                   % (ids[0], t.key)).encode()
        lock = ctx.owner_db()
        lock.autocommit = False
        lock.cursor().execute("LOCK TABLE leads IN ACCESS EXCLUSIVE MODE")
        import psycopg2
        # A superuser sees other roles' wait events.
        watcher = psycopg2.connect(host=ctx.socket_dir, dbname="tekup", user="postgres")
        watcher.autocommit = True
        try:
            first = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            first.sendall(request)
            cur = watcher.cursor()

            def first_read_waits():
                cur.execute("SELECT count(*) FROM pg_stat_activity"
                            " WHERE usename = 'tekup_app' AND wait_event_type = 'Lock'")
                return cur.fetchone()[0] >= 1
            deadline = time.time() + 10
            while not first_read_waits():
                assert time.time() < deadline, "the first read never reached the lock"
                time.sleep(0.02)
            stayed = []
            waiter = threading.Thread(target=lambda: stayed.append(
                ctx.http("GET", "/v1/leads/" + ids[1], key=t.key, port=srv.port)))
            waiter.start()
            leavers = [first]
            for _ in range(8):
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                s.sendall(request)
                leavers.append(s)
                time.sleep(0.02)
            time.sleep(0.2)
            for i, s in enumerate(leavers):
                if i % 2 == 0:  # the first one included
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    s.shutdown(socket.SHUT_WR)
                s.close()
            time.sleep(0.3)
        finally:
            lock.rollback()
            lock.close()
            watcher.close()
        waiter.join(30)
        assert len(stayed) == 1, "the client that stayed got no answer"
        assert stayed[0].status == 200 and stayed[0].json == leads[ids[1]], stayed[0]
        for lid in ids * 3:
            r = ctx.http("GET", "/v1/leads/" + lid, key=t.key, port=srv.port)
            assert r.status == 200 and r.json == leads[lid], r
    finally:
        rc = srv.stop()
    out = srv.output()
    assert rc == 0 and "Sanitizer" not in out, out[-3000:]


def or_unavailable(check):
    """check, but a 503 database_unavailable is also a right answer."""
    def either(status, body):
        if status == 503 and body and body.get("error", {}).get("code") == "database_unavailable":
            return None
        return check(status, body)
    return either


@test
def backends_killed_under_batched_reads_answer_right_or_503(ctx):
    """PostgreSQL terminates the server's backends again and again while two
    tenants read through one worker, with list queries that each connection
    must prepare afresh: every answer is the asking tenant's own data or a
    503 database_unavailable - never another request's results - and the
    server serves normally afterwards."""
    tenants = [ctx.new_tenant(sample_leads=n) for n in (5, 8)]
    srv = Server(ctx, ["--threads", "1", "--pool-size", "2"])
    try:
        leads = {t.id: leads_of(ctx, t, srv.port) for t in tenants}
        variants = ["/v1/leads?limit=5&fields=id,tenantId,name",
                    "/v1/leads?limit=5&fields=id,tenantId,email", "/v1/leads?limit=5&sort=name",
                    "/v1/leads?limit=5&fields=id,tenantId,status",
                    "/v1/leads?limit=5&fields=id,tenantId,company",
                    "/v1/leads?limit=5&sort=-createdAt", "/v1/leads?limit=5&sort=name&fields=id,tenantId,name,email",
                    "/v1/leads?limit=5&fields=id,tenantId,phone",
                    "/v1/leads?limit=5&fields=id,tenantId,source",
                    "/v1/leads?limit=5&status=NEW,CONTACTED,QUALIFIED,PROPOSAL,WON,LOST",
                    "/v1/leads?limit=5&fields=id,tenantId,createdAt"]
        rng = random.Random(7)
        jobs_per_conn = []
        for c in range(12):
            jobs = []
            for _ in range(60):
                t = tenants[rng.randrange(2)]
                if rng.randrange(2):
                    lid = rng.choice(sorted(leads[t.id]))
                    jobs.append((t.key, "/v1/leads/" + lid,
                                 or_unavailable(expect_lead(leads[t.id][lid]))))
                else:
                    jobs.append((t.key, rng.choice(variants),
                                 or_unavailable(expect_page_of(t.id, len(leads[t.id])))))
            jobs_per_conn.append(jobs)
        # One backend at a time, so a retry often lands on a connection
        # that has its statements prepared while another had to prepare.
        with BackendKiller(ctx) as killer:
            failures = hammer(srv.port, jobs_per_conn)
        assert killer.kills > 0, "no backend was terminated; the test proves nothing"
        assert not failures, "%d wrong answers, e.g. %s" % (len(failures), failures[:5])
        # A connection killed while it was being set up puts the pool into
        # its reconnect backoff; the server must recover on its own.
        deadline = time.time() + 15
        for t in tenants:
            for lid, lead in leads[t.id].items():
                while True:
                    r = ctx.http("GET", "/v1/leads/" + lid, key=t.key, port=srv.port)
                    if r.status != 503 or time.time() > deadline:
                        break
                    time.sleep(0.2)
                assert r.status == 200 and r.json == lead, r
    finally:
        assert srv.stop() == 0
