"""test_outbox.py - the outbox worker against real peers: a real SMTP server
(aiosmtpd) and a real HTTP receiver (http.server), both on 127.0.0.1.

Rows are inserted directly as the owner, as provisioning would insert them.
Each test runs its own `tekup serve` with the peers' URLs and short poll and
backoff intervals.  While a test runs, rows other tests left pending are
parked (next_attempt_at = infinity) so this test's servers neither deliver
nor dead-letter them, and put back afterwards; the test's own rows are
deleted at the end.
"""
import contextlib
import email
import email.policy
import email.utils
import hashlib
import hmac
import json
import os
import re
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import Server, free_port, test

SECRET = "whsec_it-is-a-secret-0123456789"
MAIL_FROM = "no-reply@tekup.test"
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")


def wait_for(predicate, timeout, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class HttpSink:
    """A webhook receiver.  statuses: replies to serve in order (then 200);
    hang: hold every request until release() (a peer that never answers)."""

    def __init__(self, port=None, statuses=(), hang=False):
        self.port = port or free_port()
        self.statuses = list(statuses)
        self.hang = hang
        self.requests = []  # (path, {lower-case header: value}, body bytes)
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.server = None

    @property
    def url(self):
        return "http://127.0.0.1:%d/hooks/billing" % self.port

    def start(self):
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with sink.lock:
                    sink.requests.append(
                        (self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    status = sink.statuses.pop(0) if sink.statuses else 200
                if sink.hang:
                    sink.released.wait(30)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass  # the client gave up (a hung peer's caller did)

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def release(self):
        self.released.set()

    def stop(self):
        self.release()
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def for_event(self, event_id):
        with self.lock:
            return [r for r in self.requests if r[1].get("x-tekup-event-id") == event_id]


class SmtpSink:
    """A real SMTP server (aiosmtpd) keeping every message it accepts."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.messages = []  # (envelope from, [recipients], raw bytes)
        self.controller = None

    @property
    def url(self):
        return "smtp://127.0.0.1:%d" % self.port

    def start(self):
        from aiosmtpd.controller import Controller
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                sink.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.original_content or envelope.content))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self):
        if self.controller:
            self.controller.stop()
            self.controller = None

    def for_event(self, event_id):
        found = []
        for mail_from, rcpts, raw in list(self.messages):
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            if msg["Message-ID"] == "<%s@tekup>" % event_id:
                found.append((mail_from, rcpts, raw, msg))
        return found


class Outbox:
    """One test's world: its rows (inserted as the owner), its tekup servers
    and its peers; outbox_scope tears all of it down."""

    def __init__(self, ctx, db):
        self.ctx = ctx
        self.db = db
        self.ids = []
        self.servers = []
        self.sinks = []

    def insert(self, kind, topic, payload, count=1):
        cur = self.db.cursor()
        cur.execute("INSERT INTO outbox (kind, topic, payload) "
                    "SELECT %s, %s, %s::jsonb FROM generate_series(1, %s) "
                    "RETURNING id, event_id::text", (kind, topic, json.dumps(payload), count))
        rows = cur.fetchall()
        self.ids += [r[0] for r in rows]
        return [r[1] for r in rows] if count > 1 else rows[0][1]

    def row(self, event_id):
        cur = self.db.cursor()
        cur.execute("SELECT status, attempts, last_error, delivered_at, "
                    "to_char(created_at AT TIME ZONE 'UTC', "
                    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
                    "FROM outbox WHERE event_id = %s", (event_id,))
        r = cur.fetchone()
        return dict(zip(("status", "attempts", "last_error", "delivered_at", "created_at"), r))

    def rows(self, event_ids):
        return [self.row(e) for e in event_ids]

    def status(self, event_id):
        return self.row(event_id)["status"]

    def all_in(self, event_ids, status):
        return all(self.status(e) == status for e in event_ids)

    def peer(self, sink, start=True):
        """Registers a peer to be stopped at the end; starts it unless told."""
        self.sinks.append(sink)
        return sink.start() if start else sink

    def server(self, smtp=None, webhook=None, extra=()):
        """Starts `tekup serve` delivering to the given peers."""
        args = ["--outbox-poll-ms", "50", "--outbox-backoff-ms", "50", "--mail-from", MAIL_FROM]
        if smtp:
            args += ["--smtp-url", smtp]
        if webhook:
            args += ["--billing-webhook-url", webhook, "--billing-webhook-secret", SECRET]
        srv = Server(self.ctx, args + list(extra))
        self.servers.append(srv)
        return srv

    def stop(self, srv):
        """Stops srv, asserts a clean exit, returns the seconds it took."""
        self.servers.remove(srv)
        t0 = time.time()
        rc = srv.stop()
        took = time.time() - t0
        out = srv.output()
        assert rc == 0 and not any(m in out for m in SANITIZER_MARKERS), \
            "exit %s:\n%s" % (rc, out[-4000:])
        return took


@contextlib.contextmanager
def outbox_scope(ctx):
    db = ctx.owner_db()
    cur = db.cursor()
    cur.execute("UPDATE outbox o SET next_attempt_at = 'infinity' FROM "
                "(SELECT id, next_attempt_at FROM outbox WHERE status = 'pending' "
                " AND next_attempt_at <> 'infinity' FOR UPDATE) old "
                "WHERE o.id = old.id RETURNING o.id, old.next_attempt_at")
    parked = cur.fetchall()
    box = Outbox(ctx, db)
    problem = None
    try:
        yield box
    finally:
        # Servers first: none may run once the parked rows are back.
        for srv in list(box.servers):
            try:
                box.stop(srv)
            except AssertionError as e:
                problem = problem or e
        for sink in box.sinks:
            sink.stop()
        cur = box.db.cursor()  # a test may have replaced the connection
        cur.execute("DELETE FROM outbox WHERE id = ANY(%s)", (box.ids,))
        for row_id, at in parked:
            cur.execute("UPDATE outbox SET next_attempt_at = %s "
                        "WHERE id = %s AND next_attempt_at = 'infinity'", (at, row_id))
        box.db.close()
    if problem:
        raise problem


def check_signature(headers, body):
    """Verifies a request as a receiver would; returns the signed timestamp."""
    ts = headers["x-tekup-timestamp"]
    m = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", headers["x-tekup-signature"])
    assert m, headers["x-tekup-signature"]
    assert m.group(1) == ts
    want = hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(m.group(2), want), "bad signature"
    assert abs(int(ts) - time.time()) < 60, ts
    return int(ts)


@test
def outbox_email_delivered_with_headers_and_body(ctx):
    with outbox_scope(ctx) as box:
        smtp = box.peer(SmtpSink())
        subject = "Willkommen bei tekup, Jürgen — Ihr Zugang"
        text = ("Hallo Jürgen,\n\nIhr Mandant ist bereit: a=b, 100 % ok.\n" +
                "lange Zeile " * 20 + "\n.\nEnde\n")
        ev = box.insert("email", "tenant.welcome",
                        {"to": "juergen@example.com", "subject": subject, "text": text,
                         "name": "extra fields are ignored"})
        injected = box.insert("email", "tenant.welcome",
                              {"to": "ada@example.com",
                               "subject": "Hi\r\nBcc: victim@example.com", "text": "x"})
        hook = box.insert("webhook", "billing.subscription.create", {"plan": "basic"})
        srv = box.server(smtp=smtp.url)  # no webhook URL: webhooks wait
        assert wait_for(lambda: box.status(ev) == "delivered", 15), srv.output()[-3000:]
        assert wait_for(lambda: box.status(injected) == "dead", 5), box.row(injected)

        got = smtp.for_event(ev)
        assert len(got) == 1, got
        mail_from, rcpts, raw, msg = got[0]
        assert mail_from == MAIL_FROM and rcpts == ["juergen@example.com"], got[0][:2]
        assert msg["Subject"] == subject
        assert msg["From"] == MAIL_FROM and msg["To"] == "juergen@example.com"
        assert msg["MIME-Version"] == "1.0"
        assert msg.get_content_type() == "text/plain"
        assert msg.get_content_charset() == "utf-8"
        when = email.utils.parsedate_to_datetime(msg["Date"])
        assert abs(when.timestamp() - time.time()) < 120, msg["Date"]
        # The body travels in SMTP's canonical CRLF form.
        assert msg.get_content().replace("\r\n", "\n") == text
        assert max(len(line) for line in raw.split(b"\r\n")) <= 998
        assert all(b < 0x80 for b in raw), "the message is 7-bit clean"

        # A line break in a header value is refused for good, and never sent.
        row = box.row(injected)
        assert row["attempts"] == 1 and "line break" in row["last_error"], row
        assert smtp.for_event(injected) == []
        assert all(b"victim" not in m[2] for m in smtp.messages)

        # With no webhook URL, webhook rows are left exactly as they were.
        row = box.row(hook)
        assert row["status"] == "pending" and row["attempts"] == 0, row
        assert row["last_error"] is None
        assert "webhooks stay pending" in srv.output()


@test
def outbox_webhook_delivered_signed_with_event_id(ctx):
    with outbox_scope(ctx) as box:
        sink = box.peer(HttpSink())
        payload = {"tenantId": "8c4d1a55-0000-4000-8000-000000000001", "plan": "basic",
                   "seats": 3, "name": "Zoë \"quoted\"", "nested": {"list": [1, 2.5, None]}}
        ev = box.insert("webhook", "billing.subscription.create", payload)
        mail = box.insert("email", "tenant.welcome",
                          {"to": "a@example.com", "subject": "s", "text": "t"})
        srv = box.server(webhook=sink.url)  # no SMTP URL: e-mail waits
        assert wait_for(lambda: box.status(ev) == "delivered", 15), srv.output()[-3000:]
        reqs = sink.for_event(ev)
        assert len(reqs) == 1, reqs
        path, headers, body = reqs[0]
        assert path == "/hooks/billing"
        assert headers["content-type"] == "application/json"
        assert headers["x-tekup-event-id"] == ev
        check_signature(headers, body)
        doc = json.loads(body)
        assert set(doc) == {"id", "type", "createdAt", "data"}, doc
        assert doc["id"] == ev and doc["type"] == "billing.subscription.create"
        assert doc["data"] == payload
        row = box.row(ev)
        assert doc["createdAt"] == row["created_at"], (doc, row)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["createdAt"])
        assert row["attempts"] == 0 and row["delivered_at"] is not None, row

        row = box.row(mail)
        assert row["status"] == "pending" and row["attempts"] == 0, row
        assert "e-mail stays pending" in srv.output()


@test
def outbox_webhook_500_is_retried_until_2xx(ctx):
    with outbox_scope(ctx) as box:
        sink = box.peer(HttpSink(statuses=[500, 503, 200]))
        ev = box.insert("webhook", "billing.subscription.create", {"plan": "basic"})
        srv = box.server(webhook=sink.url)
        assert wait_for(lambda: box.status(ev) == "delivered", 15), srv.output()[-3000:]
        reqs = sink.for_event(ev)
        assert len(reqs) == 3, reqs
        # Every retry carries the same event: same id, same body (a fresh
        # timestamp, so a fresh signature).
        assert len({r[2] for r in reqs}) == 1
        for _, headers, body in reqs:
            check_signature(headers, body)
        row = box.row(ev)
        assert row["attempts"] == 2, row
        assert row["last_error"] == "webhook: http status 503", row
        time.sleep(0.3)  # and nothing more is sent once it is delivered
        assert len(sink.for_event(ev)) == 3


@test
def outbox_peer_down_then_up_delivers_everything(ctx):
    with outbox_scope(ctx) as box:
        sink = box.peer(HttpSink(), start=False)  # ports chosen, nothing listening
        smtp = box.peer(SmtpSink(), start=False)
        hooks = box.insert("webhook", "billing.subscription.create", {"plan": "basic"}, 5)
        mails = [box.insert("email", "tenant.welcome",
                            {"to": "user%d@example.com" % i, "subject": "hi %d" % i,
                             "text": "welcome"}) for i in range(3)]
        everything = hooks + mails
        box.server(smtp=smtp.url, webhook=sink.url, extra=["--outbox-max-attempts", "50"])
        # Failing while the peers are down, but still pending.
        assert wait_for(lambda: all(r["attempts"] >= 2 for r in box.rows(everything)), 10), \
            box.rows(everything)
        assert box.all_in(everything, "pending")
        errors = {r["last_error"] for r in box.rows(everything)}
        assert errors <= {"webhook: Couldn't connect to server",
                          "smtp: Couldn't connect to server"}, errors
        sink.start()
        smtp.start()
        assert wait_for(lambda: box.all_in(everything, "delivered"), 15), box.rows(everything)
        for e in hooks:
            assert len(sink.for_event(e)) == 1, e
        for e in mails:
            assert len(smtp.for_event(e)) == 1, e


@test
def outbox_survives_a_tekup_restart(ctx):
    with outbox_scope(ctx) as box:
        sink = box.peer(HttpSink(), start=False)
        smtp = box.peer(SmtpSink(), start=False)
        hooks = box.insert("webhook", "billing.subscription.create", {"plan": "pro"}, 3)
        mail = box.insert("email", "tenant.welcome",
                          {"to": "ops@example.com", "subject": "restart", "text": "t"})
        everything = hooks + [mail]
        first = box.server(smtp=smtp.url, webhook=sink.url, extra=["--outbox-max-attempts", "50"])
        assert wait_for(lambda: all(r["attempts"] >= 1 for r in box.rows(everything)), 10)
        took = box.stop(first)
        assert took < 10, took
        assert box.all_in(everything, "pending")

        sink.start()
        smtp.start()
        box.server(smtp=smtp.url, webhook=sink.url)
        assert wait_for(lambda: box.all_in(everything, "delivered"), 15), box.rows(everything)
        for e in hooks:
            assert len(sink.for_event(e)) == 1
        assert len(smtp.for_event(mail)) == 1


@test
def outbox_dead_after_max_attempts_with_last_error_and_no_secret(ctx):
    down_http, down_smtp = free_port(), free_port()
    hook_url = "http://hookuser:hook-password-1@127.0.0.1:%d/billing?token=query-secret-2" \
        % down_http
    smtp_url = "smtp://mailuser:smtp-password-3@127.0.0.1:%d" % down_smtp
    secrets = ("hook-password-1", "query-secret-2", "smtp-password-3", SECRET, "hookuser",
               "mailuser")
    with outbox_scope(ctx) as box:
        hook = box.insert("webhook", "billing.subscription.create", {"plan": "basic"})
        mail = box.insert("email", "tenant.welcome",
                          {"to": "a@example.com", "subject": "s", "text": "t"})
        srv = box.server(smtp=smtp_url, webhook=hook_url, extra=["--outbox-max-attempts", "3"])
        assert wait_for(lambda: box.all_in([hook, mail], "dead"), 15), box.rows([hook, mail])
        time.sleep(0.3)  # a dead row is never tried again
        for ev, prefix in ((hook, "webhook: "), (mail, "smtp: ")):
            row = box.row(ev)
            assert row["attempts"] == 3, row
            assert row["delivered_at"] is None
            assert row["last_error"].startswith(prefix), row
            assert len(row["last_error"]) < 200
            assert not any(s in row["last_error"] for s in secrets), row
        out = srv.output()
        assert "gave up on webhook" in out and "gave up on email" in out, out[-3000:]
        assert not any(s in out for s in secrets), "a secret reached the log"


@test
def outbox_stop_is_prompt_while_a_peer_hangs(ctx):
    with outbox_scope(ctx) as box:
        hung = box.peer(HttpSink(hang=True))
        ev = box.insert("webhook", "billing.subscription.create", {"plan": "basic"})
        srv = box.server(webhook=hung.url)
        assert wait_for(lambda: hung.for_event(ev), 10), srv.output()[-3000:]
        took = box.stop(srv)
        assert took < 10, "shutdown waited for the hung peer (%.1fs)" % took
        # An interrupted transfer is not an attempt; the row is still due.
        row = box.row(ev)
        assert row["status"] == "pending" and row["attempts"] == 0, row
        assert row["last_error"] is None, row

        # At least once: the next receiver may see the event again, same id.
        sink = box.peer(HttpSink())
        box.server(webhook=sink.url)
        assert wait_for(lambda: box.status(ev) == "delivered", 15)
        assert len(sink.for_event(ev)) == 1


def outbox_backend(ctx):
    """The pid of the outbox worker's backend while it waits, in its
    transaction, for a delivery (its last statement was the claim); seen
    as the superuser, as only it sees other roles' statements."""
    import psycopg2
    db = psycopg2.connect(host=ctx.socket_dir, dbname="tekup", user="postgres")
    db.autocommit = True
    try:
        cur = db.cursor()
        cur.execute("SELECT pid FROM pg_stat_activity WHERE state = 'idle in transaction'"
                    " AND query LIKE '%FROM outbox WHERE status = ''pending''%'")
        pids = [r[0] for r in cur.fetchall()]
        assert len(pids) <= 1, pids
        return pids[0] if pids else None
    finally:
        db.close()


def delivering_to_a_hung_peer(ctx, box):
    """A server whose worker delivers a new webhook row to a peer that has
    not answered yet; returns the peer, the event id, the server and the
    pid of the worker's backend, waiting in its transaction."""
    sink = box.peer(HttpSink(hang=True))
    ev = box.insert("webhook", "billing.subscription.create", {"plan": "basic"})
    srv = box.server(webhook=sink.url)
    assert wait_for(lambda: sink.for_event(ev), 10), srv.output()[-3000:]
    assert wait_for(lambda: outbox_backend(ctx) is not None, 5)
    return sink, ev, srv, outbox_backend(ctx)


@contextlib.contextmanager
def stopped_process(pid):
    """SIGSTOPs pid (a backend: PostgreSQL stops answering on its
    connection, as on a stopped or partitioned host) until the block ends."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@test
def outbox_stop_is_prompt_while_the_database_stops_answering(ctx):
    """Shutdown interrupts a transfer; the worker then rolls back.  When its
    backend has stopped answering meanwhile, the ROLLBACK's wait ends at the
    stop too: the server still exits at once, and the row stays pending."""
    with outbox_scope(ctx) as box:
        _, ev, srv, pid = delivering_to_a_hung_peer(ctx, box)
        with stopped_process(pid):
            took = box.stop(srv)
        assert took < 10, "shutdown waited for a database that stopped answering (%.1fs)" % took
        # The dropped connection's transaction is rolled back once its
        # backend runs again: nothing was recorded, the row is still due.
        assert wait_for(lambda: outbox_backend(ctx) is None, 10)
        row = box.row(ev)
        assert row["status"] == "pending" and row["attempts"] == 0, row


@test
def outbox_drops_a_connection_that_stops_answering_and_delivers_again(ctx):
    """The worker's backend stops answering (SIGSTOP) between a delivery
    and its record: the worker waits statement_timeout plus the grace
    (12 s), says so, drops the connection and makes a new one; once the
    old session ends, the row (never marked) is delivered again under the
    same event id (at least once), and a new row is delivered too."""
    with outbox_scope(ctx) as box:
        sink, ev, srv, pid = delivering_to_a_hung_peer(ctx, box)
        with stopped_process(pid):
            sink.release()  # the delivery succeeds; its record waits
            gave_up = "PostgreSQL did not answer within 12000 ms; dropping the connection"
            assert wait_for(lambda: gave_up in srv.output(), 20), srv.output()[-3000:]
            assert box.status(ev) == "pending"
            later = box.insert("webhook", "billing.subscription.create", {"plan": "pro"})
            # The old session still holds the first row's lock; the new
            # connection skips it and delivers the new row.
            assert wait_for(lambda: box.status(later) == "delivered", 10), srv.output()[-3000:]
        assert wait_for(lambda: box.status(ev) == "delivered", 15), srv.output()[-3000:]
        assert len(sink.for_event(ev)) == 2 and len(sink.for_event(later)) == 1
        assert srv.proc.poll() is None


@test
def outbox_two_workers_deliver_each_row_once(ctx):
    with outbox_scope(ctx) as box:
        sink = box.peer(HttpSink())
        servers = [box.server(webhook=sink.url) for _ in range(2)]
        events = box.insert("webhook", "billing.subscription.create", {"plan": "basic"}, 40)
        assert wait_for(lambda: box.all_in(events, "delivered"), 20), \
            [r for r in box.rows(events) if r["status"] != "delivered"]
        counts = [len(sink.for_event(e)) for e in events]
        assert counts == [1] * len(events), counts
        # Both took part (SKIP LOCKED lets them share the rows).
        assert all("outbox: delivered" in s.output() for s in servers)


@test
def outbox_reconnects_after_postgres_restart(ctx):
    with outbox_scope(ctx) as box:
        sink = box.peer(HttpSink())
        srv = box.server(webhook=sink.url)
        before = box.insert("webhook", "billing.subscription.create", {"n": 1})
        assert wait_for(lambda: box.status(before) == "delivered", 15)
        box.db.close()
        p = ctx.tekup("db", "stop", "--data-dir", ctx.data_dir)
        assert p.returncode == 0, p.stderr
        try:
            time.sleep(1)  # the worker polls, fails, and backs off meanwhile
        finally:
            p = ctx.tekup("db", "start", "--data-dir", ctx.data_dir)
            assert p.returncode == 0, p.stderr
            box.db = ctx.owner_db()
        after = box.insert("webhook", "billing.subscription.create", {"n": 2})
        assert wait_for(lambda: box.status(after) == "delivered", 20), srv.output()[-3000:]
        assert len(sink.for_event(after)) == 1
        assert srv.proc.poll() is None
