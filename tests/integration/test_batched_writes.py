"""test_batched_writes.py - lead writes (create, update, delete) that a
worker sends to PostgreSQL together (src/http/server.c, flush_batch): each
write is its own transaction, on a pooled connection of its own when one is
free, so that the COMMITs of one batch wait for the WAL together, and
otherwise after the others in one pipeline.

Each test runs its own server with one worker and a pool of several
connections, so that writes arriving together on many keep-alive
connections land in one batch.  What the tests hold the server to: every
201 is a row that exists exactly once, in the asking tenant; every failure
wrote nothing; and a write is never sent a second time.
"""
import json
import time
import uuid

from harness import BackendKiller, Server, owner, send_all, test

CONNECTIONS = 16


def create(key, name, **fields):
    """A job: POST /v1/leads with name and fields, answers checked later."""
    return ("POST", "/v1/leads", key, dict(fields, name=name), {}, None)


def names_in_db(ctx, tenant_id, prefix):
    """name -> number of rows, for the tenant's leads whose name starts with
    prefix (seen by the owner, RLS bypassed)."""
    rows = owner(ctx, "SELECT name, count(*) FROM leads WHERE tenant_id = %s AND name LIKE %s"
                 " GROUP BY name", (tenant_id, prefix + "%"))
    return dict(rows)


def batched_posts(access_lines):
    return [e for e in access_lines if e.get("method") == "POST" and e.get("batch", 0) >= 1]


def access_log(srv):
    return [json.loads(line) for line in srv.output().splitlines() if '"msg":"request"' in line]


def creates_commit_once_in_their_own_tenant(ctx, pool_size):
    """Sixteen connections of three tenants create leads at once through one
    worker, one in five of them naming an assignee who does not exist (the
    database's foreign key refuses it): every good one is 201 with its
    tenant's id, its own name and a Location, and exists exactly once in
    that tenant; every refused one is 400 invalid_reference and wrote
    nothing; and the writes went to the database in batches.  Returns the
    server's log."""
    tenants = [ctx.new_tenant() for _ in range(3)]
    srv = Server(ctx, ["--threads", "1", "--pool-size", str(pool_size), "--log-level", "debug"])
    run = uuid.uuid4().hex[:8]
    try:
        jobs_per_conn = []
        for c in range(CONNECTIONS):
            jobs = []
            for i in range(25):
                t = tenants[(c + i) % 3]
                fields = {"email": "bw%d.%d@example.com" % (c, i)}
                if (c * 25 + i) % 5 == 0:
                    fields["assignedTo"] = str(uuid.uuid4())
                jobs.append(create(t.key, "bw-%s-%d-%d" % (run, c, i), **fields))
            jobs_per_conn.append(jobs)
        results, failures = send_all(srv.port, jobs_per_conn)
        assert not failures, failures[:5]
        assert len(results) == CONNECTIONS * 25, len(results)
        by_key = {t.key: t for t in tenants}
        wrong, created = [], {t.id: set() for t in tenants}
        for (_, _, key, body, _, _), status, js, location in results:
            t = by_key[key]
            if "assignedTo" in body:
                if status != 400 or (js or {}).get("error", {}).get("code") != "invalid_reference":
                    wrong.append(("expected 400 invalid_reference", body, status, js))
                continue
            if status != 201 or js["tenantId"] != t.id or js["name"] != body["name"] \
                    or location != "/v1/leads/" + js["id"]:
                wrong.append(("expected 201 with the tenant's own new lead", body, status, js))
                continue
            created[t.id].add(body["name"])
        assert not wrong, "%d wrong answers, e.g. %r" % (len(wrong), wrong[:3])
        for t in tenants:
            in_db = names_in_db(ctx, t.id, "bw-%s-" % run)
            assert set(in_db) == created[t.id], (
                "rows differ from the 201s: missing %r, extra %r"
                % (sorted(created[t.id] - set(in_db))[:5], sorted(set(in_db) - created[t.id])[:5]))
            doubled = [n for n, k in in_db.items() if k != 1]
            assert not doubled, "written twice: %r" % doubled[:5]
        batched = batched_posts(access_log(srv))
        assert batched, "no write went through a batch"
    finally:
        assert srv.stop() == 0
    return srv.output()


@test
def batched_writes_on_connections_of_their_own_each_commit_once(ctx):
    creates_commit_once_in_their_own_tenant(ctx, 6)


@test
def batched_writes_sharing_one_pipeline_each_commit_once(ctx):
    """As above with a pool of one connection, so that a batch's writes
    share one pipeline: a refused write makes PostgreSQL skip the writes
    after it, and those are sent again (they never ran)."""
    log = creates_commit_once_in_their_own_tenant(ctx, 1)
    assert "goes again" in log, "no write was ever skipped after a refused one"


@test
def the_writes_of_one_batch_run_at_once_on_separate_connections(ctx):
    """With one worker, the writes that arrive together are in the database
    at the same time, each on a backend of its own: a trigger (for this
    test's tenant only) notes each insert's backend and its start and end,
    and some inserts overlap on different backends.  One backend running a
    batch's COMMITs one after another would show no overlap."""
    t = ctx.new_tenant()
    owner(ctx, """
        CREATE TABLE test_insert_spans (pid int, started timestamptz, ended timestamptz);
        CREATE FUNCTION test_note_insert() RETURNS trigger LANGUAGE plpgsql
            SECURITY DEFINER SET search_path = public AS $$
        DECLARE t0 timestamptz := clock_timestamp();
        BEGIN
            PERFORM pg_sleep(0.05);
            INSERT INTO test_insert_spans VALUES (pg_backend_pid(), t0, clock_timestamp());
            RETURN NEW;
        END $$;
        CREATE TRIGGER test_note_insert BEFORE INSERT ON leads FOR EACH ROW
            WHEN (NEW.tenant_id = '%s') EXECUTE FUNCTION test_note_insert();""" % t.id)
    srv = Server(ctx, ["--threads", "1", "--pool-size", "6"])
    try:
        jobs_per_conn = [[create(t.key, "span-%d-%d" % (c, i)) for i in range(4)]
                         for c in range(8)]
        results, failures = send_all(srv.port, jobs_per_conn)
        assert not failures, failures[:5]
        assert [r[1] for r in results] == [201] * 32, sorted(set(r[1] for r in results))
        spans = owner(ctx, "SELECT pid, started, ended FROM test_insert_spans")
        assert len(spans) == 32, len(spans)
        overlapping = [(a, b) for a in spans for b in spans
                       if a[0] != b[0] and a[1] < b[2] and b[1] < a[2]]
        assert overlapping, "no two inserts ran at the same time: %d backends" % len(
            set(s[0] for s in spans))
        assert ctx.count_leads(t.id) == 32
    finally:
        owner(ctx, "DROP TRIGGER test_note_insert ON leads; DROP FUNCTION test_note_insert();"
                   " DROP TABLE test_insert_spans")
        assert srv.stop() == 0


@test
def a_batched_write_is_never_sent_twice_when_backends_are_killed(ctx):
    """PostgreSQL terminates the server's backends again and again while
    twelve connections create leads through one worker: each answer is 201
    or 503 database_unavailable; every 201's lead exists exactly once; a
    503's lead exists at most once (the COMMIT may have happened just before
    the connection died, which is why the server does not send it again);
    nothing is written twice; and the server serves normally afterwards."""
    t = ctx.new_tenant()
    srv = Server(ctx, ["--threads", "1", "--pool-size", "4"])
    run = uuid.uuid4().hex[:8]
    try:
        # A backend busy with a transaction, so that writes die before,
        # during and after their COMMIT.  A connection killed while the pool
        # sets it up makes the pool back off, when every request gets a
        # quick 503: hence rounds, until enough writes succeed.
        results, failures = [], []
        with BackendKiller(ctx, pause=0.03, busy_only=True) as killer:
            for rnd in range(8):
                jobs_per_conn = [[create(t.key, "kw-%s-%d-%d-%d" % (run, rnd, c, i))
                                  for i in range(40)] for c in range(12)]
                res, fail = send_all(srv.port, jobs_per_conn)
                results += res
                failures += fail
                if sum(1 for r in results if r[1] == 201) >= 200 and killer.kills >= 3:
                    break
                time.sleep(0.5)
        assert killer.kills > 0, "no backend was terminated; the test proves nothing"
        assert not failures, failures[:5]
        name = {id(r): r[0][3]["name"] for r in results}
        ok = {name[id(r)] for r in results if r[1] == 201}
        unavailable = {name[id(r)] for r in results
                       if r[1] == 503 and r[2]["error"]["code"] == "database_unavailable"}
        other = [(r[1], r[2]) for r in results if name[id(r)] not in ok | unavailable]
        assert not other, other[:5]
        assert len(ok) >= 200, "too few writes succeeded to prove anything: %d" % len(ok)
        assert len(ok) + len(unavailable) == len(results), (len(ok), len(unavailable))
        in_db = names_in_db(ctx, t.id, "kw-%s-" % run)
        assert not [n for n, k in in_db.items() if k != 1], "a write was committed twice"
        assert ok <= set(in_db), "acknowledged writes missing: %r" % sorted(ok - set(in_db))[:5]
        assert set(in_db) <= ok | unavailable
        deadline = time.time() + 15
        while True:
            r = ctx.http("POST", "/v1/leads", key=t.key, body={"name": "kw-%s-after" % run},
                         port=srv.port)
            if r.status != 503 or time.time() > deadline:
                break
            time.sleep(0.2)
        assert r.status == 201, r
    finally:
        assert srv.stop() == 0


def expect(status_want, code=None, **fields):
    def check(status, body):
        if status != status_want:
            return "expected %d" % status_want
        if code is not None and (body or {}).get("error", {}).get("code") != code:
            return "expected error %s" % code
        for k, v in fields.items():
            if (body or {}).get(k) != v:
                return "expected %s = %r" % (k, v)
        return None
    return check


@test
def batched_updates_and_deletes_each_apply_once(ctx):
    """Sixteen connections of two tenants update and delete leads at once
    through one worker.  Each connection owns two leads: it updates the
    first twice with the right If-Match (200 each, version +1 each) and once
    with a stale one between (412 version_conflict), deletes the second
    (204, then 404 a second time, and a PATCH of it 404), and tries to
    delete a lead of the other tenant (404).  Afterwards the first leads
    hold exactly the two updates, the stale update and the other tenant's
    delete changed nothing, the second leads are gone, and the updates and
    deletes went to the database in batches."""
    tenants = [ctx.new_tenant(sample_leads=16) for _ in range(2)]
    srv = Server(ctx, ["--threads", "1", "--pool-size", "6"])
    try:
        leads = {}
        for t in tenants:
            r = ctx.http("GET", "/v1/leads?limit=100&sort=name", key=t.key, port=srv.port)
            assert r.status == 200 and len(r.json["data"]) == 16, r
            leads[t.id] = r.json["data"]
        kept, gone, jobs_per_conn = {}, set(), []
        for c in range(CONNECTIONS):
            t, other = tenants[c % 2], tenants[(c + 1) % 2]
            a, b = leads[t.id][c // 2], leads[t.id][8 + c // 2]
            victim = leads[other.id][c // 2]  # another connection's first lead
            v = a["version"]
            kept[a["id"]] = (t.id, "patched-%d-2" % c, v + 2, a["email"])
            gone.add(b["id"])
            path_a, path_b = "/v1/leads/" + a["id"], "/v1/leads/" + b["id"]
            jobs_per_conn.append([
                ("PATCH", path_a, t.key, {"name": "patched-%d-1" % c}, {"If-Match": '"%d"' % v},
                 expect(200, name="patched-%d-1" % c, version=v + 1)),
                ("PATCH", path_a, t.key, {"name": "stale-%d" % c}, {"If-Match": '"%d"' % v},
                 expect(412, "version_conflict")),
                ("DELETE", "/v1/leads/" + victim["id"], t.key, None, {},
                 expect(404, "lead_not_found")),
                ("DELETE", path_b, t.key, None, {}, expect(204)),
                ("PATCH", path_a, t.key, {"name": "patched-%d-2" % c},
                 {"If-Match": '"%d"' % (v + 1)}, expect(200, version=v + 2)),
                ("DELETE", path_b, t.key, None, {}, expect(404, "lead_not_found")),
                ("PATCH", path_b, t.key, {"name": "late-%d" % c}, {},
                 expect(404, "lead_not_found")),
            ])
        _, failures = send_all(srv.port, jobs_per_conn)
        assert not failures, "%d wrong answers, e.g. %s" % (len(failures), failures[:5])
        rows = owner(ctx, "SELECT id::text, tenant_id::text, name, version, email FROM leads"
                          " WHERE tenant_id IN (%s, %s)", (tenants[0].id, tenants[1].id))
        by_id = {r[0]: r[1:] for r in rows}
        assert not gone & set(by_id), "deleted leads still there"
        assert len(by_id) == 16, len(by_id)
        for lid, want in kept.items():
            assert by_id.get(lid) == want, (lid, by_id.get(lid), want)
        deadline = time.time() + 5  # access lines may wait a few ms to be written
        while True:
            writes = [e for e in access_log(srv) if e.get("method") in ("PATCH", "DELETE")]
            if len(writes) >= CONNECTIONS * 7 or time.time() > deadline:
                break
            time.sleep(0.05)
        assert len(writes) == CONNECTIONS * 7, len(writes)
        assert [e for e in writes if e.get("batch", 0) >= 1], "no update or delete was batched"
    finally:
        assert srv.stop() == 0


@test
def writes_behind_slow_reads_in_a_batch_are_answered_not_dropped(ctx):
    """A batch whose reads take longer, all together, than one write is
    allowed (statement_timeout plus a grace): the writes on connections of
    their own have long been answered when the worker comes to read them,
    and each is a 201 that exists once - not a 503 for a write that
    committed (which a client would retry into a duplicate).  The reads are
    made slow (0.4 s each, under the 1 s statement_timeout) by a tenant
    function that sleeps for one tenant."""
    slow = ctx.new_tenant(sample_leads=1)
    fast = ctx.new_tenant()
    original = owner(ctx, "SELECT pg_get_functiondef('current_tenant_id()'::regprocedure)")[0][0]
    srv = Server(ctx, ["--threads", "1", "--pool-size", "8", "--statement-timeout-ms", "1000"])
    run = uuid.uuid4().hex[:8]
    try:
        lead = list(leads_of(ctx, slow, srv.port).values())[0]
        owner(ctx, """
            CREATE OR REPLACE FUNCTION current_tenant_id() RETURNS uuid
                LANGUAGE plpgsql STABLE AS $$
            BEGIN
                IF current_setting('app.current_tenant', true) = '%s' THEN
                    PERFORM pg_sleep(0.4);
                END IF;
                RETURN NULLIF(current_setting('app.current_tenant', true), '')::uuid;
            END $$""" % slow.id)
        jobs_per_conn = [[("GET", "/v1/leads/" + lead["id"], slow.key, None, {}, expect(200))] * 2
                         for _ in range(12)]
        jobs_per_conn += [[("POST", "/v1/leads", fast.key, {"name": "sr-%s-%d-%d" % (run, c, i)},
                            {}, expect(201)) for i in range(4)] for c in range(6)]
        _, failures = send_all(srv.port, jobs_per_conn)
        assert not failures, "%d wrong answers, e.g. %s" % (len(failures), failures[:5])
        in_db = names_in_db(ctx, fast.id, "sr-%s-" % run)
        assert len(in_db) == 24 and set(in_db.values()) == {1}, in_db
        assert "did not answer within the deadline" not in srv.output()
    finally:
        owner(ctx, original)
        assert srv.stop() == 0


def leads_of(ctx, t, port):
    r = ctx.http("GET", "/v1/leads?limit=100", key=t.key, port=port)
    assert r.status == 200, r
    return {lead["id"]: lead for lead in r.json["data"]}
