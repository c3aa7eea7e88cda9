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
    n_own, syncs_own, log_own = creates_through_one_connection(ctx, ["--no-shared-flush"])
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


def queued_behind_a_lock(ctx, srv, t, requests):
    """Sends requests, in this order, while the server's only worker waits
    for a lock (its GET /v1/leads/stats blocks on the leads table): it then
    reads them together as one batch, in the order they arrived.  Returns
    their answers, in that order."""
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
        for th in threads:
            th.start()
            time.sleep(0.1)  # in the server's socket before the next is sent
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
    answers (the WAL writer made slow, 10 s, so only that flush can have put
    the create on disk): it must be there after the restart, and the
    refused ones wrote nothing."""
    t = ctx.new_tenant()
    run = uuid.uuid4().hex[:8]
    superuser(ctx, "ALTER SYSTEM SET wal_writer_delay = '10s'")
    superuser(ctx, "SELECT pg_reload_conf()")
    srv = Server(ctx, ["--threads", "1", "--pool-size", "1", "--log-level", "debug"])
    try:
        assert ctx.http("GET", "/v1/leads/stats", key=t.key, port=srv.port).status == 200
        answers = queued_behind_a_lock(
            ctx, srv, t, [("POST", "/v1/leads", {"name": "cr-%s" % run})]
            + [("POST", "/v1/leads", {"name": "cr-%s-bad%d" % (run, i),
                                      "assignedTo": str(uuid.uuid4())}) for i in range(3)])
        assert answers[0].status == 201, answers[0]
        for r in answers[1:]:
            assert r.status == 400 and r.error_code() == "invalid_reference", r
        assert "flushed the WAL for 1 writes whose anchor did not commit" in srv.output(), (
            srv.output()[-3000:])
        kill_postgres_and_restart(ctx)
    finally:
        srv.stop()
        superuser(ctx, "ALTER SYSTEM RESET wal_writer_delay")
        superuser(ctx, "SELECT pg_reload_conf()")
    assert names_in_db(ctx, t.id, "cr-%s" % run) == {"cr-%s" % run: 1}, "the 201 was lost"
    assert ctx.count_leads(t.id) == 1


@test
def a_create_answered_201_survives_a_crash_when_its_anchor_wrote_nothing(ctx):
    """A create, then deletes of leads that do not exist (404), read by
    the server's only worker as one batch in that order, on one
    connection: the create commits without waiting for the flush, and the
    last delete is the anchor whose COMMIT must flush it.  That delete
    matched nothing, so its transaction wrote nothing, and only
    wal_flush_point() makes its COMMIT wait for a flush.  PostgreSQL is
    killed right after the answers (the WAL writer made slow, 10 s): the
    create answered 201 must be there after the restart, and the deletes
    changed nothing."""
    t = ctx.new_tenant(sample_leads=3)
    run = uuid.uuid4().hex[:8]
    superuser(ctx, "ALTER SYSTEM SET wal_writer_delay = '10s'")
    superuser(ctx, "SELECT pg_reload_conf()")
    srv = Server(ctx, ["--threads", "1", "--pool-size", "1", "--log-level", "debug"])
    try:
        assert ctx.http("GET", "/v1/leads/stats", key=t.key, port=srv.port).status == 200
        answers = queued_behind_a_lock(
            ctx, srv, t, [("POST", "/v1/leads", {"name": "an-%s" % run})]
            + [("DELETE", "/v1/leads/" + str(uuid.uuid4()), None)] * 3)
        created, deletes = answers[0], answers[1:]
        assert created.status == 201, created
        for r in deletes:
            assert r.status == 404 and r.error_code() == "lead_not_found", r
        deadline = time.time() + 5  # access lines may wait a few ms to be written
        while True:
            batches = [e.get("batch") for e in access_lines(srv.output())
                       if e.get("method") in ("POST", "DELETE")]
            if len(batches) >= 4 or time.time() > deadline:
                break
            time.sleep(0.05)
        assert batches == [4] * 4, "the four writes did not share one pipeline: %r" % batches
        kill_postgres_and_restart(ctx)
    finally:
        srv.stop()
        superuser(ctx, "ALTER SYSTEM RESET wal_writer_delay")
        superuser(ctx, "SELECT pg_reload_conf()")
    assert names_in_db(ctx, t.id, "an-%s" % run) == {"an-%s" % run: 1}, "the 201 was lost"
    assert ctx.count_leads(t.id) == 4


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
