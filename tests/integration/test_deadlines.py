"""test_deadlines.py - how long the server waits for PostgreSQL.

PostgreSQL applies statement_timeout to each statement on its own, so a
transaction may take that long for each of its statements; the server must
wait for all of them (a write answered 503 that then commits is retried
into a duplicate), and still give up, in bounded time, on a peer that
stopped answering.  Each test runs its own `tekup serve` and restores what
it changed in the schema.
"""
import http.client
import json
import os
import signal
import socket
import struct
import threading
import time
import uuid

from harness import Server, assert_error, owner, test

# As src/db/pool.h's DB_REPLY_GRACE_MS.
GRACE_S = 2.0


def tenant_function_sleeping(ctx, per_statement):
    """Replaces current_tenant_id() (as the owner) with one that sleeps, for
    the tenants named in per_statement ({tenant id: seconds}), once in each
    statement (statement_timestamp() remembered in a transaction-local
    setting): the policies call it many times per statement.  Returns the
    original definition, for a finally to restore."""
    original = owner(ctx, "SELECT pg_get_functiondef('current_tenant_id()'::regprocedure)")[0][0]
    cases = "".join("WHEN '%s' THEN %s " % (tid, s) for tid, s in per_statement.items())
    owner(ctx, """
        CREATE OR REPLACE FUNCTION current_tenant_id() RETURNS uuid
            LANGUAGE plpgsql STABLE AS $$
        DECLARE
            tenant text := current_setting('app.current_tenant', true);
            pause float8 := CASE tenant %s ELSE 0 END;
        BEGIN
            IF pause > 0 AND current_setting('tk_test.slept_at', true)
                    IS DISTINCT FROM statement_timestamp()::text THEN
                PERFORM set_config('tk_test.slept_at', statement_timestamp()::text, true);
                PERFORM pg_sleep(pause);
            END IF;
            RETURN NULLIF(tenant, '')::uuid;
        END $$""" % cases)
    return original


def stop_and_restore(ctx, srv, original):
    """Puts current_tenant_id() back and stops srv; returns its exit code."""
    if original:
        owner(ctx, original)
    return srv.stop()


def assert_never_gave_up(srv, rc):
    """srv exited cleanly, and never gave up waiting for PostgreSQL."""
    assert rc == 0, srv.output()[-3000:]
    assert "did not answer within the deadline" not in srv.output()


def lead_row(ctx, lead_id):
    return owner(ctx, "SELECT name, version FROM leads WHERE id = %s", (lead_id,))[0]


@test
def a_write_whose_statements_together_outlast_one_timeout_is_answered(ctx):
    """A PATCH with If-Match is two statements (the UPDATE and a probe),
    each slowed to 3.4 s under a 4 s statement_timeout: 6.8 s in all, more
    than one statement_timeout plus the grace (6 s), which PostgreSQL
    allows.  The server waits for it: 200 with the new ETag, written once -
    not a 503 for a write that commits anyway (a client would retry it into
    a second write).  A statement that does pass the timeout (one slowed to
    20 s) still gets 503 statement_timeout, in about the timeout, and
    writes nothing."""
    slow, stuck = ctx.new_tenant(), ctx.new_tenant()
    srv = Server(ctx, ["--statement-timeout-ms", "4000"])
    original = None
    try:
        leads = {}
        for t in (slow, stuck):  # also caches the keys before anything is slow
            r = ctx.http("POST", "/v1/leads", key=t.key, port=srv.port, body={"name": "before"})
            assert r.status == 201 and r.header("ETag") == '"1"', r
            leads[t.id] = r.json["id"]
        original = tenant_function_sleeping(ctx, {slow.id: 3.4, stuck.id: 20})

        t0 = time.time()
        r = ctx.http("PATCH", "/v1/leads/" + leads[slow.id], key=slow.key, port=srv.port,
                     body={"name": "after"}, headers={"If-Match": '"1"'})
        took = time.time() - t0
        assert r.status == 200, (r, took, srv.output()[-2000:])
        assert r.header("ETag") == '"2"' and r.json["name"] == "after", r
        assert took > 4.0 + GRACE_S, "the statements were not slow enough to test it: %.1fs" % took
        assert lead_row(ctx, leads[slow.id]) == ("after", 2)

        t0 = time.time()
        r = ctx.http("PATCH", "/v1/leads/" + leads[stuck.id], key=stuck.key, port=srv.port,
                     body={"name": "after"}, headers={"If-Match": '"1"'})
        took = time.time() - t0
        assert_error(r, 503, "statement_timeout")
        assert r.header("Retry-After") == "1", r.headers
        assert 3.5 < took < 4.0 + GRACE_S, took
        assert lead_row(ctx, leads[stuck.id]) == ("before", 1)
    finally:
        rc = stop_and_restore(ctx, srv, original)
    assert_never_gave_up(srv, rc)


@test
def a_pipeline_of_writes_is_given_the_time_of_all_their_statements(ctx):
    """Six PATCHes with If-Match (two statements each, 0.8 s apiece under a
    1 s statement_timeout) reach one worker together and go to PostgreSQL
    in one pipeline on the pool's only connection: their first answer comes
    after all twelve statements ran, 9.6 s, more than one statement_timeout
    per transaction plus the grace (8 s).  Each is answered 200 and written
    once."""
    t = ctx.new_tenant()
    # The longest key-cache TTL, for the reason given in
    # a_connection_that_stops_answering_its_rollback_costs_no_worker.
    srv = Server(ctx, ["--statement-timeout-ms", "1000", "--threads", "1", "--pool-size", "1",
                       "--key-cache-ttl-ms", "5000"])
    original = None
    try:
        ids = []
        for i in range(7):
            r = ctx.http("POST", "/v1/leads", key=t.key, port=srv.port, body={"name": "b%d" % i})
            assert r.status == 201, r
            ids.append(r.json["id"])
        original = tenant_function_sleeping(ctx, {t.id: 0.8})
        answers = {}

        def patch(lead_id):
            answers[lead_id] = ctx.http("PATCH", "/v1/leads/" + lead_id, key=t.key,
                                        port=srv.port, body={"name": "patched"},
                                        headers={"If-Match": '"1"'}, timeout=60)

        # The first holds the worker for 1.6 s, so the other six arrive
        # meanwhile and are read, and sent, together.
        threads = [threading.Thread(target=patch, args=(ids[0],))]
        threads[0].start()
        time.sleep(0.5)
        threads += [threading.Thread(target=patch, args=(lid,)) for lid in ids[1:]]
        for th in threads[1:]:
            th.start()
        for th in threads:
            th.join(60)
        wrong = {lid: r for lid, r in answers.items()
                 if r.status != 200 or r.header("ETag") != '"2"'}
        assert len(answers) == 7 and not wrong, (wrong, srv.output()[-2000:])
        rows = owner(ctx, "SELECT name, version FROM leads WHERE id = ANY(%s::uuid[])", (ids,))
        assert rows == [("patched", 2)] * 7, rows
        batches = sorted(e.get("batch", 0) for e in access_log(srv) if e.get("method") == "PATCH")
        assert batches[1:] == [6] * 6, "the six did not share one pipeline: %r" % batches
    finally:
        rc = stop_and_restore(ctx, srv, original)
    assert_never_gave_up(srv, rc)


def access_log(srv):
    return [json.loads(line) for line in srv.output().splitlines() if '"msg":"request"' in line]


def find_backend(ctx, state, timeout):
    """The pid of the one tekup_app backend in that state, waited for."""
    import psycopg2
    db = psycopg2.connect(host=ctx.socket_dir, dbname="tekup", user="postgres")
    db.autocommit = True
    try:
        cur = db.cursor()
        deadline = time.time() + timeout
        while time.time() < deadline:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE usename = 'tekup_app'"
                        " AND state = %s", (state,))
            pids = [row[0] for row in cur.fetchall()]
            if pids:
                assert len(pids) == 1, pids
                return pids[0]
            time.sleep(0.01)
        return None
    finally:
        db.close()


@test
def a_connection_that_stops_answering_its_rollback_costs_no_worker(ctx):
    """A write fails in the database (a foreign key) while a slow read of
    the same batch is still running on another connection, so its
    connection waits, aborted, for the ROLLBACK that releasing it sends;
    its backend is stopped (SIGSTOP) meanwhile.  The ROLLBACK is given
    statement_timeout plus the grace, then the connection is dropped: both
    requests get their answers, and the worker, the server's only one,
    serves the next request at once.  (Without the deadline the worker
    waited in poll() for as long as the backend was stopped.)"""
    slow, failing = ctx.new_tenant(), ctx.new_tenant()
    # The read and the write share a batch only if both keys are still
    # cached when they arrive (an uncached key is resolved, and its request
    # run, on the spot): the longest TTL keeps the keys resolved before the
    # pause valid through it on a slow machine (the 2 s default did not).
    srv = Server(ctx, ["--statement-timeout-ms", "2000", "--threads", "1", "--pool-size", "3",
                       "--key-cache-ttl-ms", "5000"])
    original = None
    stopped = None
    try:
        r = ctx.http("POST", "/v1/leads", key=slow.key, port=srv.port, body={"name": "s"})
        assert r.status == 201, r
        lead = r.json["id"]
        r = ctx.http("GET", "/v1/leads/stats", key=failing.key, port=srv.port)
        assert r.status == 200, r
        original = tenant_function_sleeping(ctx, {slow.id: 1.5})
        # The failing tenant's key once more (its function does not sleep):
        # resolved again if set-up was so slow that its TTL ran out.
        r = ctx.http("GET", "/v1/leads/stats", key=failing.key, port=srv.port)
        assert r.status == 200, r

        def send(method, path, key, body=None):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
            conn.connect()  # now, so that only the request waits for later
            out = {}

            def run():
                data = json.dumps(body) if body is not None else None
                conn.request(method, path, body=data, headers={
                    "X-Tenant-Key": key, "Content-Type": "application/json"})
                resp = conn.getresponse()
                out.update(status=resp.status, body=resp.read().decode(), at=time.time())
                conn.close()
            return threading.Thread(target=run), out

        blocker, _ = send("GET", "/v1/leads/" + lead, slow.key)
        read, read_out = send("GET", "/v1/leads/" + lead, slow.key)
        write, write_out = send("POST", "/v1/leads", failing.key,
                                {"name": "w", "assignedTo": str(uuid.uuid4())})
        # The blocker holds the worker for 1.5 s; the read and the write
        # arrive meanwhile and go to PostgreSQL together, each on its own
        # connection: the write fails at once, the read takes 1.5 s.
        blocker.start()
        time.sleep(0.4)
        read.start()
        write.start()
        stopped = find_backend(ctx, "idle in transaction (aborted)", 5)
        if not stopped:
            for th in (blocker, read, write):
                th.join(10)
            raise AssertionError("the failed write's connection was never seen waiting,"
                                 " aborted; the access log: %r" % access_log(srv))
        os.kill(stopped, signal.SIGSTOP)
        t_stop = time.time()
        give_up = time.time() + 1.5 + 2.0 + GRACE_S + 5.0
        for th in (blocker, read, write):
            th.join(max(0.1, give_up - time.time()))
        assert read_out.get("status") == 200, (read_out, srv.output()[-2000:])
        assert write_out.get("status") == 400, (write_out, srv.output()[-2000:])
        assert json.loads(write_out["body"])["error"]["code"] == "invalid_reference", write_out
        # The read ran 1.5 s after the stop at most; then the ROLLBACK waited.
        assert write_out["at"] - t_stop < 1.5 + 2.0 + GRACE_S + 1.0, write_out["at"] - t_stop
        t0 = time.time()
        r = ctx.http("GET", "/v1/leads/stats", key=failing.key, port=srv.port, timeout=10)
        assert r.status == 200 and time.time() - t0 < 3.0, (r, time.time() - t0)
    finally:
        if stopped:
            os.kill(stopped, signal.SIGCONT)
        if original:
            owner(ctx, original)
        rc = srv.stop()
    out = srv.output()
    assert rc == 0, out[-3000:]
    assert "did not answer a ROLLBACK in time" in out, out[-3000:]


class SilentPostgres:
    """A TCP server that completes PostgreSQL's start-up (trust) and then
    reads whatever it is sent and never answers: a peer that stopped
    answering once connected."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _read(c, n):
        buf = b""
        while len(buf) < n:
            b = c.recv(n - len(buf))
            if not b:
                raise OSError("closed")
            buf += b
        return buf

    def _serve(self, c):
        try:
            while True:
                n, code = struct.unpack("!ii", self._read(c, 8))
                self._read(c, n - 8)
                if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest
                    c.sendall(b"N")
                    continue
                break
            msgs = [b"R" + struct.pack("!ii", 8, 0)]
            for k, v in (("server_version", "15.0"), ("client_encoding", "UTF8"),
                         ("standard_conforming_strings", "on"), ("integer_datetimes", "on")):
                payload = k.encode() + b"\0" + v.encode() + b"\0"
                msgs.append(b"S" + struct.pack("!i", 4 + len(payload)) + payload)
            msgs.append(b"K" + struct.pack("!iii", 12, 4242, 1))
            msgs.append(b"Z" + struct.pack("!i", 5) + b"I")
            c.sendall(b"".join(msgs))
            while c.recv(65536):
                pass
        except OSError:
            pass

    def url(self):
        return ("postgresql://tekup_app@127.0.0.1:%d/tekup?sslmode=disable&gssencmode=disable"
                % self.port)

    def stop(self):
        self.sock.close()
        for c in self.conns:
            c.close()


@test
def a_database_that_stops_answering_at_connection_set_up_costs_no_worker(ctx):
    """The request pool's URL leads to a peer that completes the start-up
    and then never answers: each new connection's set-up (the pooler check,
    first) is given statement_timeout plus the grace, then dropped.  The
    server starts (its start-up checks go through the same pool) and
    answers 503 database_unavailable with Retry-After, in bounded time,
    request after request.  (Without the deadline the first check waited
    for good and the server never listened.)"""
    silent = SilentPostgres()
    srv = None
    try:
        srv = Server(ctx, ["--statement-timeout-ms", "500", "--threads", "1",
                           "--pool-size", "1"],
                     env={"DATABASE_URL": silent.url(),
                          "DATABASE_ADMIN_URL": "host=%s dbname=tekup user=tekup_owner"
                          % ctx.socket_dir,
                          "DATABASE_OPERATOR_URL": "host=%s dbname=tekup user=tekup_operator"
                          % ctx.socket_dir})
        for _ in range(3):
            t0 = time.time()
            r = ctx.http("GET", "/v1/leads", key="tk_" + "0" * 40, port=srv.port, timeout=30)
            assert_error(r, 503, "database_unavailable")
            assert r.header("Retry-After") == "1", r.headers
            assert time.time() - t0 < 0.5 + GRACE_S + 1.0, time.time() - t0
            time.sleep(2.1)  # past the reconnect backoff, so it connects again
    finally:
        rc = srv.stop() if srv else None
        silent.stop()
    out = srv.output()
    assert rc == 0, out[-3000:]
    assert "connection set-up: the database did not answer in time" in out, out[-3000:]
