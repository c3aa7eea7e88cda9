"""test_shared_flush.py - the writes a worker sends together in one
pipeline wait for one WAL flush, not one each (src/http/server.c,
pipeline_plan_flush; db/tx.h, db_tx_flush; migration 0013).

Every write of a pipeline but the last commits with synchronous_commit off,
and the last (the anchor) ends with wal_flush_point(), so that its COMMIT
flushes the WAL through all of them.  None is answered before that flush;
when the anchor does not commit, one flush on its own comes first.

What the tests hold the server to: fewer flushes than writes when they
share (and one each with --no-shared-flush, so the count means something);
every 201 is a row that exists once; and a write answered 201 survives
PostgreSQL being killed right after the answer, including when the last
write of its pipeline failed.
"""
import json
import os
import signal
import time
import uuid

from harness import Server, owner, send_all, test

CONNECTIONS = 16


# The longest key-cache TTL, for queued_behind_a_lock: the key must still
# be cached when the queued requests are read.
KEY_TTL_ARGS = ["--key-cache-ttl-ms", "5000"]
KEY_TTL_S = 5.0


def superuser(ctx, sql):
    import psycopg2
    c = psycopg2.connect(host=ctx.socket_dir, dbname="tekup", user="postgres")
    c.autocommit = True
    try:
        cur = c.cursor()
        cur.execute(sql)
        return cur.fetchall() if cur.description else None
    finally:
        c.close()


def wal_syncs_reported(ctx):
    """WAL fsyncs so far (pg_stat_wal, cluster-wide), once the server
    roles' backends have reported theirs: a backend reports its counts
    only now and then, and always when it exits, so they are terminated
    first (servers and PgBouncer reconnect).  Returns the count."""
    superuser(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                   " WHERE usename IN ('tekup_app', 'tekup_operator')")
    deadline = time.time() + 10
    while superuser(ctx, "SELECT count(*) FROM pg_stat_activity"
                         " WHERE usename IN ('tekup_app', 'tekup_operator')")[0][0] > 0:
        assert time.time() < deadline, "the servers' backends did not exit"
        time.sleep(0.05)
    return superuser(ctx, "SELECT wal_sync FROM pg_stat_wal")[0][0]


def create(key, name, **fields):
    return ("POST", "/v1/leads", key, dict(fields, name=name), {}, None)


def names_in_db(ctx, tenant_id, prefix):
    rows = owner(ctx, "SELECT name, count(*) FROM leads WHERE tenant_id = %s AND name LIKE %s"
                 " GROUP BY name", (tenant_id, prefix + "%"))
    return dict(rows)


def creates_through_one_connection(ctx, extra_args):
    """Sixteen connections of two tenants create 20 leads each through one
    worker and one database connection, so that each batch is one
    pipeline.  Checks every answer and row; returns (201s, WAL fsyncs
    during the run, the server's log)."""
    tenants = [ctx.new_tenant() for _ in range(2)]
    run = uuid.uuid4().hex[:8]
    before = wal_syncs_reported(ctx)
    srv = Server(ctx, ["--threads", "1", "--pool-size", "1", "--log-level", "debug"]
                 + list(extra_args))
    stopped = False
    try:
        jobs = [[create(tenants[c % 2].key, "sf-%s-%d-%d" % (run, c, i)) for i in range(20)]
                for c in range(CONNECTIONS)]
        results, failures = send_all(srv.port, jobs)
        assert not failures, failures[:5]
        assert [r[1] for r in results] == [201] * (CONNECTIONS * 20), \
            sorted(set(r[1] for r in results))
        assert srv.stop() == 0
        stopped = True
        syncs = wal_syncs_reported(ctx) - before
        for t in tenants:
            in_db = names_in_db(ctx, t.id, "sf-%s-" % run)
            assert len(in_db) == CONNECTIONS // 2 * 20 and set(in_db.values()) == {1}, (
                len(in_db), set(in_db.values()))
        return len(results), syncs, srv.output()
    finally:
        if not stopped:
            srv.stop()


def access_lines(log):
    return [json.loads(line) for line in log.splitlines() if '"msg":"request"' in line]


@test
def writes_sent_together_wait_for_one_wal_flush_not_one_each(ctx):
    """With one database connection every write of a batch runs on one
    backend, one after another.  On its own each COMMIT waits for its own
    fsync: about one per write (--no-shared-flush, which also shows that
    the count measures what it should).  Shared, a batch of k writes waits
    for one, and the run needs well under half as many.  Every write is a
    201 and a row that exists once, either way."""
    method = superuser(ctx, "SHOW wal_sync_method")[0][0]
    assert method in ("fdatasync", "fsync"), (
        "pg_stat_wal.wal_sync counts no flushes with wal_sync_method = %s" % method)
    n_own, syncs_own, _ = creates_through_one_connection(ctx, ["--no-shared-flush"])
    n, syncs, log = creates_through_one_connection(ctx, [])
    batches = [e.get("batch", 0) for e in access_lines(log) if e.get("method") == "POST"]
    assert sum(1 for b in batches if b >= 2) > n // 4, "too few writes were batched: %r" % (
        sorted(batches)[-10:],)
    assert syncs_own >= 0.9 * n_own, "without sharing: %d fsyncs for %d writes" % (
        syncs_own, n_own)
    assert syncs <= 0.5 * n, "shared: %d fsyncs for %d writes (%d without sharing)" % (
        syncs, n, syncs_own)
    print("    %d writes: %d WAL fsyncs shared, %d without sharing (%d writes)"
          % (n, syncs, syncs_own, n_own))


def postmaster_pid(ctx):
    with open(os.path.join(ctx.data_dir, "pgdata", "postmaster.pid")) as f:
        return int(f.readline())


def kill_postgres_and_restart(ctx):
    """PostgreSQL killed as in a crash (immediate shutdown: nothing in its
    shared memory, WAL buffers included, is written out), then started
    again, which replays the WAL that reached the disk."""
    pid = postmaster_pid(ctx)
    os.kill(pid, signal.SIGQUIT)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    p = ctx.tekup("db", "start", "--data-dir", ctx.data_dir)
    assert p.returncode == 0, p.stderr


class SlowWalWriter:
    """In its with-block the WAL writer runs every 10 s (its maximum), so
    that WAL which no COMMIT flushed is still in PostgreSQL's memory when
    it is killed.  Reset afterwards, restarting PostgreSQL first if a kill
    left it down, without hiding the block's own error."""

    def __init__(self, ctx):
        self.ctx = ctx

    def __enter__(self):
        superuser(self.ctx, "ALTER SYSTEM SET wal_writer_delay = '10s'")
        superuser(self.ctx, "SELECT pg_reload_conf()")
        return self

    def __exit__(self, *exc):
        try:
            self.ctx.tekup("db", "start", "--data-dir", self.ctx.data_dir)  # no-op if up
            superuser(self.ctx, "ALTER SYSTEM RESET wal_writer_delay")
            superuser(self.ctx, "SELECT pg_reload_conf()")
        except Exception as e:  # noqa: BLE001 - the block's error matters more
            if exc[0] is None:
                raise
            print("    could not reset wal_writer_delay: %r" % e)
        return False


def queued_behind_a_lock(ctx, srv, t, requests):
    """Sends requests, in this order, while the server's only worker waits
    for a lock (its GET /v1/leads/stats blocks on the leads table): it then
    reads them together as one batch, in the order they arrived.  Returns
    their answers, in that order.  They join a batch only while t's key is
    cached (resolving it runs a request on its own): the server runs with
    KEY_TTL_ARGS, and a retry first waits for the entry to expire, so that
    the blocking read resolves it afresh."""
    import threading
    answers = {}
    lock = ctx.owner_db()
    lock.autocommit = False
    lock.cursor().execute("LOCK TABLE leads IN ACCESS EXCLUSIVE MODE")

    def send(i, method, path, body):
        answers[i] = ctx.http(method, path, key=t.key, body=body, port=srv.port)

    jobs = [("GET", "/v1/leads/stats", None)] + list(requests)
    threads = [threading.Thread(target=send, args=(i,) + job) for i, job in enumerate(jobs)]
    try:
        threads[0].start()
        deadline = time.time() + 10
        while not superuser(ctx, "SELECT 1 FROM pg_stat_activity WHERE usename = 'tekup_app'"
                                 " AND wait_event_type = 'Lock'"):
            assert time.time() < deadline, "the blocking read never reached the lock"
            time.sleep(0.02)
        for th in threads[1:]:
            th.start()
            time.sleep(0.15)  # in the server's socket before the next is sent
    finally:
        lock.rollback()
        lock.close()
    for th in threads:
        th.join(30)
    assert answers[0].status == 200, answers[0]
    return [answers[i] for i in range(1, len(jobs))]


@test
def a_write_answered_201_survives_a_crash_right_after_when_its_batch_failed_after_it(ctx):
    """A good create, then three the database refuses (an assignee who
    does not exist), read by the server's only worker as one batch in that
    order, on one connection: the good one commits without waiting for the
    flush, and the last, meant to flush it, fails.  The server must flush
    on its own before answering 201.  PostgreSQL is killed right after the
    answers (the WAL writer made slow, so only that flush can have put the
    create on disk): it must be there after the restart, and the refused
    ones wrote nothing."""
    t = ctx.new_tenant()
    run = uuid.uuid4().hex[:8]
    acknowledged = set()
    with SlowWalWriter(ctx):
        srv = Server(ctx, ["--threads", "1", "--pool-size", "1", "--log-level", "debug"]
                     + KEY_TTL_ARGS)
        try:
            assert ctx.http("GET", "/v1/leads/stats", key=t.key, port=srv.port).status == 200
            for attempt in range(3):  # the arrival order is up to the machine
                if attempt > 0:
                    time.sleep(KEY_TTL_S + 0.1)  # the blocking read resolves the key again
                answers = queued_behind_a_lock(
                    ctx, srv, t, [("POST", "/v1/leads", {"name": "cr-%s-%d" % (run, attempt)})]
                    + [("POST", "/v1/leads", {"name": "cr-%s-%d-bad%d" % (run, attempt, i),
                                              "assignedTo": str(uuid.uuid4())})
                       for i in range(3)])
                assert answers[0].status == 201, answers[0]
                acknowledged.add("cr-%s-%d" % (run, attempt))
                for r in answers[1:]:
                    assert r.status == 400 and r.error_code() == "invalid_reference", r
                if "flushed the WAL for writes whose anchor did not commit" in srv.output():
                    break
            assert "flushed the WAL for writes whose anchor did not commit" in srv.output(), (
                "the good create was never deferred; the test proves nothing")
            kill_postgres_and_restart(ctx)
        finally:
            srv.stop()
    in_db = names_in_db(ctx, t.id, "cr-%s-" % run)
    assert set(in_db) == acknowledged, "lost: %r" % sorted(acknowledged - set(in_db))
    assert ctx.count_leads(t.id) == len(acknowledged)


@test
def a_create_answered_201_survives_a_crash_when_its_anchor_wrote_nothing(ctx):
    """A create, then deletes of leads that do not exist (404), read by
    the server's only worker as one batch in that order, on one
    connection: the create commits without waiting for the flush, and the
    last delete is the anchor whose COMMIT must flush it.  That delete
    matched nothing, so its transaction wrote nothing, and only
    wal_flush_point() makes its COMMIT wait for a flush.  PostgreSQL is
    killed right after the answers (the WAL writer made slow): the create
    answered 201 must be there after the restart, and the deletes changed
    nothing."""
    t = ctx.new_tenant(sample_leads=3)
    run = uuid.uuid4().hex[:8]
    acknowledged = set()
    anchored_by_delete = "writes share one WAL flush; the last, DELETE"
    with SlowWalWriter(ctx):
        srv = Server(ctx, ["--threads", "1", "--pool-size", "1", "--log-level", "debug"]
                     + KEY_TTL_ARGS)
        try:
            assert ctx.http("GET", "/v1/leads/stats", key=t.key, port=srv.port).status == 200
            for attempt in range(3):  # the arrival order is up to the machine
                if attempt > 0:
                    time.sleep(KEY_TTL_S + 0.1)  # the blocking read resolves the key again
                name = "an-%s-%d" % (run, attempt)
                answers = queued_behind_a_lock(
                    ctx, srv, t, [("POST", "/v1/leads", {"name": name})]
                    + [("DELETE", "/v1/leads/" + str(uuid.uuid4()), None)] * 3)
                assert answers[0].status == 201, answers[0]
                acknowledged.add(name)
                for r in answers[1:]:
                    assert r.status == 404 and r.error_code() == "lead_not_found", r
                if "4 " + anchored_by_delete in srv.output():
                    break
            assert "4 " + anchored_by_delete in srv.output(), (
                "no batch of the four writes ended with a delete; the test proves nothing")
            kill_postgres_and_restart(ctx)
        finally:
            srv.stop()
    in_db = names_in_db(ctx, t.id, "an-%s-" % run)
    assert set(in_db) == acknowledged and set(in_db.values()) == {1}, (
        "lost: %r" % sorted(acknowledged - set(in_db)))
    assert ctx.count_leads(t.id) == 3 + len(acknowledged)


@test
def writes_still_succeed_when_wal_flush_point_disappears_while_serving(ctx):
    """The schema loses wal_flush_point() under a running server (say a
    restore of an older schema).  The anchor of the next shared flush fails
    in its flush statement; it rolled back whole, so the server sends it
    again, now with each write waiting for its own flush, and says so in
    its log.  Each answer is 201, or 503 for a write that committed but
    could not be made durable (it may exist, once); no 500; every 201
    exists exactly once; and the writes after are all 201."""
    t = ctx.new_tenant()
    run = uuid.uuid4().hex[:8]
    srv = Server(ctx, ["--threads", "1", "--pool-size", "1", "--log-level", "debug"])
    renamed = False
    try:
        jobs = [[create(t.key, "dw-%s-a-%d-%d" % (run, c, i)) for i in range(3)] for c in range(8)]
        results, failures = send_all(srv.port, jobs)
        assert not failures and [r[1] for r in results] == [201] * 24, failures[:5]
        owner(ctx, "ALTER FUNCTION wal_flush_point() RENAME TO wal_flush_point_away")
        renamed = True
        jobs = [[create(t.key, "dw-%s-b-%d-%d" % (run, c, i)) for i in range(5)] for c in range(8)]
        results, failures = send_all(srv.port, jobs)
        assert not failures, failures[:5]
        statuses = [r[1] for r in results]
        assert set(statuses) <= {201, 503}, sorted(set(statuses))
        ok = {r[0][3]["name"] for r in results if r[1] == 201}
        maybe = {r[0][3]["name"] for r in results if r[1] == 503}
        for r in results:
            if r[1] == 503:
                assert r[2]["error"]["code"] == "database_unavailable", r[2]
        assert "writes sent together now each wait for their own WAL flush" in srv.output()
        jobs = [[create(t.key, "dw-%s-c-%d-%d" % (run, c, i)) for i in range(3)] for c in range(8)]
        results, failures = send_all(srv.port, jobs)
        assert not failures and [r[1] for r in results] == [201] * 24, failures[:5]
    finally:
        if renamed:
            owner(ctx, "ALTER FUNCTION wal_flush_point_away() RENAME TO wal_flush_point")
        assert srv.stop() == 0
    in_db = names_in_db(ctx, t.id, "dw-%s-" % run)
    assert set(in_db.values()) == {1}, "written twice"
    b_rows = {n for n in in_db if "-b-" in n}
    assert ok <= b_rows <= ok | maybe, (sorted(ok - b_rows)[:3], sorted(b_rows - ok - maybe)[:3])
    assert len(in_db) - len(b_rows) == 48


@test
def no_shared_flush_without_the_schema_function_and_writes_still_succeed(ctx):
    """A binary newer than its schema (serve --no-migrate before 0013): the
    server warns at start, each write waits for its own flush, and batched
    writes are 201 as before - never a failure for want of
    wal_flush_point()."""
    t = ctx.new_tenant()
    run = uuid.uuid4().hex[:8]
    owner(ctx, "ALTER FUNCTION wal_flush_point() RENAME TO wal_flush_point_away")
    try:
        srv = Server(ctx, ["--threads", "1", "--pool-size", "1"])
        try:
            jobs = [[create(t.key, "nf-%s-%d-%d" % (run, c, i)) for i in range(5)]
                    for c in range(8)]
            results, failures = send_all(srv.port, jobs)
            assert not failures, failures[:5]
            assert [r[1] for r in results] == [201] * 40, sorted(set(r[1] for r in results))
        finally:
            assert srv.stop() == 0
        assert "no wal_flush_point()" in srv.output(), srv.output()[-2000:]
    finally:
        owner(ctx, "ALTER FUNCTION wal_flush_point_away() RENAME TO wal_flush_point")
    in_db = names_in_db(ctx, t.id, "nf-%s-" % run)
    assert len(in_db) == 40 and set(in_db.values()) == {1}
