"""test_deadlines.py - how long the server waits for PostgreSQL.

PostgreSQL applies statement_timeout to each statement on its own, so a
transaction may take that long for each of its statements; the server must
wait for all of them (a write answered 503 that then commits is retried
into a duplicate), and still give up, in bounded time, on a peer that
stopped answering.  Each test runs its own `tekup serve` and restores what
it changed in the schema.
"""
import json
import threading
import time

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
        if original:
            owner(ctx, original)
        rc = srv.stop()
    assert rc == 0, srv.output()[-3000:]
    assert "did not answer within the deadline" not in srv.output()


@test
def a_pipeline_of_writes_is_given_the_time_of_all_their_statements(ctx):
    """Six PATCHes with If-Match (two statements each, 0.8 s apiece under a
    1 s statement_timeout) reach one worker together and go to PostgreSQL
    in one pipeline on the pool's only connection: their first answer comes
    after all twelve statements ran, 9.6 s, more than one statement_timeout
    per transaction plus the grace (8 s).  Each is answered 200 and written
    once."""
    t = ctx.new_tenant()
    srv = Server(ctx, ["--statement-timeout-ms", "1000", "--threads", "1", "--pool-size", "1"])
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
        if original:
            owner(ctx, original)
        rc = srv.stop()
    assert rc == 0, srv.output()[-3000:]
    assert "did not answer within the deadline" not in srv.output()


def access_log(srv):
    return [json.loads(line) for line in srv.output().splitlines() if '"msg":"request"' in line]
