"""test_resilience.py - the server under failure: PostgreSQL down and back,
a full pool, slow statements, and graceful shutdown with writes in flight.

Each test runs its own `tekup serve` (so it can choose pool and timeout
settings) against the suite's cluster.
"""
import signal
import threading
import time

from harness import PgBouncer, Server, assert_error, test


def wait_for(predicate, timeout, interval=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


@test
def postgres_restart_gives_503_then_recovers_without_restart(ctx):
    t = ctx.new_tenant()
    lead = ctx.http("POST", "/v1/leads", key=t.key, body={"name": "Before"}).json
    # A short statement timeout bounds the wait when a proxy (PgBouncer)
    # holds queries while PostgreSQL is away.
    srv = Server(ctx, ["--pool-size", "4", "--statement-timeout-ms", "500"])
    try:
        assert ctx.http("GET", "/v1/leads/" + lead["id"], key=t.key, port=srv.port).status == 200
        p = ctx.tekup("db", "stop", "--data-dir", ctx.data_dir)
        assert p.returncode == 0, p.stderr
        try:
            # Every request while PostgreSQL is down fails cleanly with 503.
            for i in range(4):
                r = ctx.http("GET", "/v1/leads/" + lead["id"], key=t.key, port=srv.port)
                assert_error(r, 503, "database_unavailable")
                assert r.header("Retry-After") == "1", r.headers
                w = ctx.http("POST", "/v1/leads", key=t.key, port=srv.port,
                             body={"name": "while down %d" % i})
                assert_error(w, 503, "database_unavailable")
        finally:
            p = ctx.tekup("db", "start", "--data-dir", ctx.data_dir)
            assert p.returncode == 0, p.stderr
        # The same server process recovers by itself (reconnect backoff is short).
        assert wait_for(lambda: ctx.http("GET", "/v1/leads/" + lead["id"], key=t.key,
                                         port=srv.port).status == 200, 10), srv.output()[-2000:]
        for _ in range(10):  # every pooled connection is usable again
            assert ctx.http("GET", "/v1/leads/" + lead["id"], key=t.key,
                            port=srv.port).status == 200
        w = ctx.http("POST", "/v1/leads", key=t.key, port=srv.port, body={"name": "After"})
        assert w.status == 201, w
        assert ctx.count_leads(t.id) == 2  # nothing from the outage was written
    finally:
        assert srv.stop() == 0, srv.output()[-3000:]


class TableLock:
    """Holds an ACCESS EXCLUSIVE lock on leads (as the owner) so requests block."""

    def __init__(self, ctx):
        self.conn = ctx.owner_db()
        self.conn.autocommit = False
        self.conn.cursor().execute("LOCK TABLE leads IN ACCESS EXCLUSIVE MODE")

    def release(self):
        self.conn.rollback()
        self.conn.close()


@test
def full_pool_gives_503_pool_timeout_with_retry_after(ctx):
    t = ctx.new_tenant()
    lead = ctx.http("POST", "/v1/leads", key=t.key, body={"name": "x"}).json
    srv = Server(ctx, ["--pool-size", "1", "--pool-timeout-ms", "300",
                       "--statement-timeout-ms", "4000", "--threads", "4"])
    try:
        # Warm the key cache so the blocked request holds the only connection.
        assert ctx.http("GET", "/v1/leads/" + lead["id"], key=t.key, port=srv.port).status == 200
        lock = TableLock(ctx)
        results = {}
        blocker = threading.Thread(target=lambda: results.update(
            first=ctx.http("GET", "/v1/leads/" + lead["id"], key=t.key, port=srv.port)))
        blocker.start()
        time.sleep(0.5)
        r = ctx.http("GET", "/v1/leads/" + lead["id"], key=t.key, port=srv.port)
        assert_error(r, 503, "pool_timeout")
        assert r.header("Retry-After") == "1"
        lock.release()
        blocker.join(10)
        assert results["first"].status == 200, results
    finally:
        assert srv.stop() == 0


@test
def slow_statement_hits_statement_timeout_and_writes_nothing(ctx):
    t = ctx.new_tenant()
    before = ctx.count_leads(t.id)
    srv = Server(ctx, ["--statement-timeout-ms", "300"])
    try:
        # Resolve the key first (api_keys is not locked, but be explicit).
        assert ctx.http("GET", "/v1/leads/stats", key=t.key, port=srv.port).status == 200
        lock = TableLock(ctx)
        try:
            r = ctx.http("POST", "/v1/leads", key=t.key, port=srv.port, body={"name": "slow"})
            assert_error(r, 503, "statement_timeout")
            assert r.header("Retry-After") == "1"
        finally:
            lock.release()
        assert ctx.count_leads(t.id) == before
        # The connection that timed out is healthy again.
        assert ctx.http("POST", "/v1/leads", key=t.key, port=srv.port,
                        body={"name": "fast"}).status == 201
    finally:
        assert srv.stop() == 0


@test
def sigterm_finishes_in_flight_writes_and_loses_none(ctx):
    t = ctx.new_tenant()
    srv = Server(ctx, ["--pool-size", "4", "--shutdown-timeout-s", "20"])
    acknowledged = []
    errors = []
    stop = threading.Event()

    def writer(n):
        i = 0
        while not stop.is_set():
            try:
                r = ctx.http("POST", "/v1/leads", key=t.key, port=srv.port,
                             body={"name": "w%d-%d" % (n, i)}, timeout=30)
            except OSError:
                return  # the listener is closed: shutdown has begun
            if r.status == 201:
                acknowledged.append(r.json["id"])
            else:
                errors.append(r)
            i += 1

    # Hold the table so writes are in flight (blocked) when SIGTERM arrives.
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for th in threads:
        th.start()
    time.sleep(0.5)
    lock = TableLock(ctx)
    time.sleep(0.5)
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    stop.set()
    lock.release()  # the blocked, in-flight writes now complete
    for th in threads:
        th.join(30)
    rc = srv.stop()
    assert rc == 0, srv.output()[-3000:]
    assert not errors, errors[:3]
    assert len(acknowledged) > 0
    c = ctx.owner_db()
    cur = c.cursor()
    cur.execute("SELECT id::text FROM leads WHERE tenant_id = %s", (t.id,))
    stored = {row[0] for row in cur.fetchall()}
    c.close()
    missing = set(acknowledged) - stored
    assert not missing, "acknowledged but not stored: %r" % list(missing)[:5]
    assert len(stored) == len(acknowledged), (len(stored), len(acknowledged))


@test
def idle_connections_postgres_closed_are_replaced_without_an_error(ctx):
    """A pooled connection idle for 50 ms or more is checked before it is
    handed out (only recently used ones skip the check), so connections that
    PostgreSQL closed while idle cost no request a 503: reads and writes go
    through on fresh connections, each write exactly once."""
    import psycopg2
    t = ctx.new_tenant()
    lead = ctx.http("POST", "/v1/leads", key=t.key, body={"name": "Before"}).json
    srv = Server(ctx, ["--pool-size", "2", "--threads", "2"])
    try:
        for _ in range(4):
            assert ctx.http("GET", "/v1/leads/" + lead["id"], key=t.key,
                            port=srv.port).status == 200
        killer = psycopg2.connect(host=ctx.socket_dir, dbname="tekup", user="postgres")
        killer.autocommit = True
        cur = killer.cursor()
        cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE usename = 'tekup_app' AND state = 'idle'")
        killed = cur.fetchone()[0]
        killer.close()
        assert killed >= 1, "no idle request connection to close"
        time.sleep(0.3)
        for i in range(6):  # a write first: it is not retried, so it must not fail
            w = ctx.http("POST", "/v1/leads", key=t.key, port=srv.port,
                         body={"name": "after %d" % i})
            assert w.status == 201, w
            r = ctx.http("GET", "/v1/leads/" + lead["id"], key=t.key, port=srv.port)
            assert r.status == 200, r
        assert ctx.count_leads(t.id) == 7
    finally:
        rc = srv.stop()
    out = srv.output()
    assert rc == 0, out[-3000:]
    if "pgbouncer=true" not in ctx.env.get("DATABASE_URL", ""):
        # (Through PgBouncer the closed connections were PgBouncer's, which
        # it replaced itself; tekup's own to PgBouncer stayed open.)
        assert "replacing a database connection the server closed" in out, out[-3000:]


@test
def connections_closed_just_after_use_cost_no_request_an_error(ctx):
    """A connection used less than --pool-recheck-ms ago is handed out
    without the liveness poll (here the window is 10 s, so timing cannot
    matter).  PostgreSQL closes both pooled connections right after use: a
    read meets the first, fails, and is retried on a fresh connection; from
    then on every acquire polls for a window, so a write that is handed the
    other dead connection (the fresh one is busy) replaces it and is stored
    exactly once - it is not retried, so without that poll it would be a
    503."""
    import psycopg2
    pgbouncer = "pgbouncer=true" in ctx.env.get("DATABASE_URL", "")
    t = ctx.new_tenant()
    lead = ctx.http("POST", "/v1/leads", key=t.key, body={"name": "Before"}).json
    url = "/v1/leads/" + lead["id"]
    srv = Server(ctx, ["--pool-size", "2", "--threads", "2", "--pool-recheck-ms", "10000"])
    superuser = psycopg2.connect(host=ctx.socket_dir, dbname="tekup", user="postgres")
    superuser.autocommit = True
    cur = superuser.cursor()
    waiting = []

    def waiters(n):
        cur.execute("SELECT pid FROM pg_stat_activity WHERE usename = 'tekup_app'"
                    " AND wait_event_type = 'Lock'")
        waiting[:] = [row[0] for row in cur.fetchall()]
        return len(waiting) == n

    def in_background(method, path, body=None):
        out = []
        th = threading.Thread(target=lambda: out.append(
            ctx.http(method, path, key=t.key, port=srv.port, body=body)))
        th.start()
        return th, out

    try:
        assert ctx.http("GET", url, key=t.key, port=srv.port).status == 200
        # Put both pooled connections to use at once: two reads on the two
        # workers wait on a lock, then finish together.
        lock = TableLock(ctx)
        try:
            readers = [in_background("GET", url) for _ in range(2)]
            assert wait_for(lambda: waiters(2), 10), "the reads did not both reach the database"
        finally:
            lock.release()
        for th, out in readers:
            th.join(10)
            assert out and out[0].status == 200, out
        pids = list(waiting)
        # (pg_terminate_backend's own wait polls every 100 ms; this is faster.)
        cur.execute("SELECT bool_and(pg_terminate_backend(pid)) FROM unnest(%s::int[]) AS pid",
                    (pids,))
        assert cur.fetchone()[0] is True
        assert wait_for(lambda: cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,))
            or cur.fetchone()[0] == 0, 5, interval=0.01)

        r = ctx.http("GET", url, key=t.key, port=srv.port)
        assert r.status == 200 and r.json["id"] == lead["id"], (r, srv.output()[-2000:])

        # Keep the fresh connection busy: a PATCH waits on the lead's row lock.
        row = ctx.owner_db()
        row.autocommit = False
        row.cursor().execute("SELECT 1 FROM leads WHERE id = %s FOR UPDATE", (lead["id"],))
        try:
            patch, patched = in_background("PATCH", url, body={"name": "Patched"})
            assert wait_for(lambda: waiters(1), 10), "the PATCH did not reach the database"
            w = ctx.http("POST", "/v1/leads", key=t.key, port=srv.port, body={"name": "After"})
            assert w.status == 201, (w, srv.output()[-2000:])
        finally:
            row.rollback()
            row.close()
        patch.join(10)
        assert patched and patched[0].status == 200, patched
        assert ctx.count_leads(t.id) == 2
    finally:
        superuser.close()
        rc = srv.stop()
    out = srv.output()
    assert rc == 0, out[-3000:]
    if not pgbouncer:
        # (Through PgBouncer the closed connections were PgBouncer's, which
        # it replaced itself; tekup's own to PgBouncer stayed open.)
        assert "retrying 1 reads on a fresh database connection" in out, out[-3000:]
        assert "replacing a database connection the server closed" in out, out[-3000:]


SESSION_STATE_SQL = ("SELECT current_setting('plan_cache_mode'), current_setting('statement_timeout'),"
                     " current_setting('jit'), current_setting('TimeZone'),"
                     " (SELECT count(*) FROM pg_prepared_statements)")


@test
def a_pooler_in_front_is_found_and_shares_no_session_state(ctx):
    """DATABASE_URL leads to PgBouncer (transaction pooling) without
    ?pgbouncer=true: the server finds the pooler by itself, every request
    works, and no SET or named statement stays on a backend that PgBouncer
    gives other clients."""
    import psycopg2
    direct = ctx.app_db()
    cur = direct.cursor()
    cur.execute(SESSION_STATE_SQL)
    fresh = cur.fetchone()  # what a new session has
    direct.close()
    bouncer = PgBouncer(ctx, name="pgbouncer-unflagged")
    t = ctx.new_tenant()
    srv = Server(ctx, ["--pool-size", "6", "--threads", "4"],
                 env={"DATABASE_URL": bouncer.url("tekup_app")})
    statuses = []
    try:
        def client(i):  # enough at once that PgBouncer uses several backends
            for j in range(10):
                w = ctx.http("POST", "/v1/leads", key=t.key, port=srv.port,
                             body={"name": "pooled %d-%d" % (i, j)})
                r = ctx.http("GET", "/v1/leads?limit=5", key=t.key, port=srv.port)
                statuses.extend([w.status, r.status])
        threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert statuses == [201, 200] * 60 or sorted(statuses) == [200] * 60 + [201] * 60, \
            (statuses, srv.output()[-3000:])
        assert ctx.count_leads(t.id) == 60
    finally:
        rc = srv.stop()
    out = srv.output()
    assert rc == 0, out[-3000:]
    found = "the request pool's URL leads to PostgreSQL through a connection pooler"
    assert out.count(found) == 1, out[-3000:]  # said once, not per connection
    assert "connection set-up failed" not in out, out[-3000:]
    # Every backend PgBouncer keeps is as a new session would be.  Each
    # client holds its backend while its transaction is open, so eight
    # clients see eight different backends (the pool's default_pool_size).
    clients = [psycopg2.connect(host="127.0.0.1", port=bouncer.port, dbname="tekup",
                                user="tekup_app") for _ in range(8)]
    try:
        pids = set()
        for c in clients:
            cur = c.cursor()
            cur.execute("SELECT pg_backend_pid()")
            pids.add(cur.fetchone()[0])
            cur.execute(SESSION_STATE_SQL)
            assert cur.fetchone() == fresh
        assert len(pids) == 8, pids
    finally:
        for c in clients:
            c.close()
        bouncer.stop()


@test
def a_server_straight_on_postgresql_does_not_take_itself_for_pooled(ctx):
    t = ctx.new_tenant()
    srv = Server(ctx, env={"DATABASE_URL": "postgresql:///tekup?host=%s&user=tekup_app"
                           % ctx.socket_dir})
    try:
        for _ in range(3):
            assert ctx.http("POST", "/v1/leads", key=t.key, port=srv.port,
                            body={"name": "direct"}).status == 201
    finally:
        rc = srv.stop()
    out = srv.output()
    assert rc == 0, out[-3000:]
    assert "pooler" not in out, out[-3000:]
    assert ctx.count_leads(t.id) == 3
