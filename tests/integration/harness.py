"""harness.py - drives the real tekup binary against a real PostgreSQL.

The suite owns one embedded cluster (a fresh --data-dir under build/test),
starts `tekup serve` on a free port, and gives each test a Context with:

  ctx.http(method, path, key=..., body=..., headers=..., raw=...)  -> Response
  ctx.new_tenant(name, plan)   -> Tenant(id, key, slug) made by `tekup tenant create`
  ctx.app_db()                 -> psycopg2 connection as the request role (tekup_app)
  ctx.owner_db()               -> psycopg2 connection as the schema owner
  ctx.tekup(*args)             -> CompletedProcess of the tekup binary

Tests are plain functions registered with @test; a test fails by raising
(assert).  The runner prints one line per test and ends with
"integration: N passed, N failed".
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
import uuid

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def json(self):
        return json.loads(self.body)

    def error_code(self):
        try:
            return self.json["error"]["code"]
        except Exception:
            return None

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:300])


class Tenant:
    def __init__(self, tid, key, slug, name):
        self.id = tid
        self.key = key
        self.slug = slug
        self.name = name


def merged_env(base, override):
    """base + override; a test that points DATABASE_URL somewhere else means
    every database URL, so URLs it does not name are dropped (the PgBouncer
    run sets an operator URL in the base environment)."""
    env = dict(base)
    if override:
        if "DATABASE_URL" in override:
            for k in ("DATABASE_ADMIN_URL", "DATABASE_OPERATOR_URL"):
                if k not in override:
                    env.pop(k, None)
        env.update(override)
    return {k: v for k, v in env.items() if v is not None}  # None: unset it


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, timeout, alive=lambda: True):
    """Waits until something accepts connections on 127.0.0.1:port: True
    then, False once timeout passes or alive() says the process ended."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not alive():
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Server:
    """One running `tekup serve` process."""

    def __init__(self, ctx, extra_args=(), env=None):
        self.ctx = ctx
        self.port = free_port()
        self.log_path = os.path.join(ctx.workdir, "serve-%d.log" % self.port)
        self.log = open(self.log_path, "wb")
        args = [ctx.binary, "serve", "--data-dir", ctx.data_dir, "--port", str(self.port),
                "--no-demo", "--no-migrate"] + list(extra_args)
        full_env = merged_env(ctx.env, env)
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=full_env)
        if wait_listening(self.port, 30, lambda: self.proc.poll() is None):
            return
        if self.proc.poll() is not None:
            raise RuntimeError("tekup serve exited early: " + self.output())
        self.proc.kill()  # not left behind, stuck, by a failed test
        self.proc.wait()
        self.log.close()
        raise RuntimeError("tekup serve did not start listening: " + self.output()[-2000:])

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


class PgBouncer:
    """A real PgBouncer in transaction pooling mode in front of the cluster."""

    def __init__(self, ctx, name="pgbouncer"):
        import pwd
        self.port = free_port()
        self.dir = os.path.join(ctx.workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        ini = os.path.join(self.dir, "pgbouncer.ini")
        with open(os.path.join(self.dir, "users.txt"), "w") as f:
            f.write('"tekup_app" ""\n"tekup_owner" ""\n')
        with open(ini, "w") as f:
            f.write("[databases]\ntekup = host=%s dbname=tekup\n\n"
                    "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = %d\n"
                    "unix_socket_dir =\nauth_type = trust\nauth_file = %s/users.txt\n"
                    "pool_mode = transaction\nmax_client_conn = 500\ndefault_pool_size = 8\n"
                    "server_reset_query =\nserver_login_retry = 1\nlogfile = %s/pgbouncer.log\n"
                    "ignore_startup_parameters = extra_float_digits,options\n"
                    % (ctx.socket_dir, self.port, self.dir, self.dir))
        args = ["pgbouncer", ini]
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for name in os.listdir(self.dir) + [""]:
                os.chown(os.path.join(self.dir, name), pw.pw_uid, pw.pw_gid)
            args = ["pgbouncer", "-u", "postgres", ini]
        self.version = subprocess.run(["pgbouncer", "--version"], capture_output=True,
                                      text=True).stdout.split("\n")[0]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_listening(self.port, 10):
            raise RuntimeError("pgbouncer did not start")

    def url(self, user):
        return "postgresql://%s@127.0.0.1:%d/tekup" % (user, self.port)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class Context:
    def __init__(self, binary, workdir):
        self.binary = os.path.abspath(binary)
        self.workdir = os.path.abspath(workdir)
        self.data_dir = os.path.join(self.workdir, "var")
        self.env = dict(os.environ)
        for k in ("DATABASE_URL", "DATABASE_ADMIN_URL", "DATABASE_OPERATOR_URL"):
            self.env.pop(k, None)
        # Leaks are reported at exit and fail the run (see Runner.finish).
        self.env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:exitcode=86"
        self.env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
        self.server = None
        self._tenant_seq = 0

    @property
    def socket_dir(self):
        return os.path.join(self.data_dir, "run")

    def tekup(self, *args, env=None, check=False, timeout=120):
        full_env = merged_env(self.env, env)
        p = subprocess.run([self.binary] + list(args), capture_output=True, text=True,
                           env=full_env, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError("tekup %s failed (%d): %s%s" % (" ".join(args), p.returncode,
                                                               p.stdout, p.stderr))
        return p

    def new_tenant(self, name=None, plan="professional", sample_leads=0):
        self._tenant_seq += 1
        name = name or "Tenant %d" % self._tenant_seq
        p = self.tekup("tenant", "create", "--data-dir", self.data_dir, "--name", name,
                       "--plan", plan, "--sample-leads", str(sample_leads), check=True)
        fields = dict(line.split(": ", 1) for line in p.stdout.splitlines() if ": " in line)
        return Tenant(fields["tenant_id"], fields["api_key"], fields["slug"], name)

    def http(self, method, path, key=None, body=None, headers=None, raw=None, port=None,
             timeout=30):
        """One request on a fresh connection.  body: a dict/list (sent as JSON)
        or bytes/str (sent as is); raw: bytes sent verbatim instead."""
        port = port or self.server.port
        if raw is not None:
            return raw_http(port, raw, timeout)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        hdrs = {}
        if key is not None:
            hdrs["X-Tenant-Key"] = key
        data = None
        if body is not None:
            if isinstance(body, (dict, list)):
                data = json.dumps(body).encode()
            elif isinstance(body, str):
                data = body.encode()
            else:
                data = body
            hdrs["Content-Type"] = "application/json"
        if headers:
            hdrs.update(headers)
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        resp = Response(r.status, r.getheaders(), r.read().decode("utf-8", "replace"))
        conn.close()
        return resp

    def app_db(self):
        import psycopg2
        c = psycopg2.connect(host=self.socket_dir, dbname="tekup", user="tekup_app")
        c.autocommit = False
        return c

    def owner_db(self):
        import psycopg2
        c = psycopg2.connect(host=self.socket_dir, dbname="tekup", user="tekup_owner")
        c.autocommit = True
        return c

    def count_leads(self, tenant_id):
        """Rows of a tenant, seen by the owner (RLS bypassed) - to prove writes."""
        c = self.owner_db()
        try:
            cur = c.cursor()
            cur.execute("SELECT count(*) FROM leads WHERE tenant_id = %s", (tenant_id,))
            return cur.fetchone()[0]
        finally:
            c.close()


def raw_http(port, data, timeout=10):
    """Sends raw bytes and parses the response status, headers and body."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            chunks.append(b)
            buf = b"".join(chunks)
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if sep:
                length = None
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v.strip())
                if length is not None and len(rest) >= length:
                    break
        buf = b"".join(chunks)
    finally:
        s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines or not lines[0]:
        return Response(0, [], "")
    status = int(lines[0].split()[1])
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers.append((k.decode().strip(), v.decode("latin-1").strip()))
    return Response(status, headers, body.decode("utf-8", "replace"))


ADMIN_PASSWORD = "correct horse 9"


class Org:
    """A tenant with its key and its admin user (from `tekup tenant create`)."""

    def __init__(self, fields, admin_email, name):
        self.id = fields["tenant_id"]
        self.key = fields["api_key"]
        self.slug = fields["slug"]
        self.admin_id = fields["admin_user_id"]
        self.admin_email = admin_email
        self.name = name


def new_org(ctx, label, admin_email=None):
    """A professional tenant with an admin user whose password is ADMIN_PASSWORD."""
    tag = uuid.uuid4().hex[:10]
    email = admin_email or "boss-%s@example.com" % tag
    name = "%s %s" % (label, tag)
    p = ctx.tekup("tenant", "create", "--name", name, "--plan", "professional",
                  "--admin-email", email, "--admin-name", "Boss", "--data-dir", ctx.data_dir,
                  env={"TEKUP_ADMIN_PASSWORD": ADMIN_PASSWORD}, check=True)
    fields = dict(line.split(": ", 1) for line in p.stdout.splitlines() if ": " in line)
    assert fields.get("admin_user_id"), p.stdout
    return Org(fields, email, name)


def call(ctx, method, path, key=None, token=None, body=None, headers=None):
    """ctx.http with an optional session token."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    return ctx.http(method, path, key=key, body=body, headers=h)


def login(ctx, key, email, password=ADMIN_PASSWORD):
    r = ctx.http("POST", "/v1/auth/login", key=key, body={"email": email, "password": password})
    assert r.status == 201, r
    return r.json["token"]


def send_all(port, jobs_per_conn):
    """Runs each list of jobs on its own keep-alive connection, all
    connections at once.  A job is (method, path, key, body, headers,
    check): body a dict sent as JSON or None; check(status, json) returns a
    problem (string) or None, or check is None.  Returns the answers as
    [(job, status, json, Location header)] and the problems (strings)."""
    import threading
    results, failures = [], []
    lock = threading.Lock()
    start = threading.Barrier(len(jobs_per_conn))

    def run(jobs):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.connect()
        start.wait()
        try:
            for job in jobs:
                method, path, key, body, headers, check = job
                h = dict(headers, **{"X-Tenant-Key": key})
                data = None
                if body is not None:
                    data = json.dumps(body)
                    h["Content-Type"] = "application/json"
                conn.request(method, path, body=data, headers=h)
                r = conn.getresponse()
                text = r.read().decode()
                js = json.loads(text) if text else None
                problem = check(r.status, js) if check else None
                with lock:
                    results.append((job, r.status, js, r.getheader("Location")))
                    if problem:
                        failures.append("%s %s: %s (%d %s)" % (method, path, problem, r.status,
                                                                text[:200]))
        except Exception as e:  # noqa: BLE001 - reported as a failure
            with lock:
                failures.append("connection failed: %r" % e)
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(jobs,)) for jobs in jobs_per_conn]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results, failures


class BackendKiller:
    """While in its with-block, terminates one of the server's backends
    (role tekup_app) every `pause` seconds, picked at random; busy_only
    picks among those running a statement or inside a transaction.  kills
    counts the backends terminated."""

    def __init__(self, ctx, pause=0.02, busy_only=False):
        self.ctx, self.pause, self.busy_only = ctx, pause, busy_only
        self.kills = 0

    def _run(self):
        cur = self.db.cursor()
        busy = " AND state IN ('active', 'idle in transaction')" if self.busy_only else ""
        while not self.stopping.is_set():
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM"
                        " (SELECT pid FROM pg_stat_activity WHERE usename = 'tekup_app'%s"
                        "  ORDER BY random() LIMIT 1) b" % busy)
            self.kills += cur.fetchone()[0]
            time.sleep(self.pause)

    def __enter__(self):
        import threading
        import psycopg2
        self.db = psycopg2.connect(host=self.ctx.socket_dir, dbname="tekup", user="postgres")
        self.db.autocommit = True
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(30)
        self.db.close()
        return False


def owner(ctx, sql, params=()):
    """Runs sql as the schema owner (RLS bypassed): rows, or the row count."""
    c = ctx.owner_db()
    try:
        cur = c.cursor()
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else cur.rowcount
    finally:
        c.close()

def rand():
    """A short random tag for unique names."""
    return uuid.uuid4().hex[:10]


def sql(ctx, query, params=()):
    c = ctx.owner_db()
    try:
        cur = c.cursor()
        cur.execute(query, params)
        return cur.fetchall() if cur.description else None
    finally:
        c.close()


def sql1(ctx, query, params=()):
    rows = sql(ctx, query, params)
    assert len(rows) == 1, rows
    return rows[0][0]


def make_user(ctx, t, role="user"):
    """A user of tenant t (made by the owner): assignedTo must name a user of
    the lead's own tenant (foreign key (tenant_id, assigned_to) -> users)."""
    c = ctx.owner_db()
    try:
        cur = c.cursor()
        cur.execute("INSERT INTO users (tenant_id, email, name) VALUES (%s, %s, 'Assignee')"
                    " RETURNING id::text", (t.id, "u-%s@example.com" % uuid.uuid4().hex[:12]))
        uid = cur.fetchone()[0]
        cur.execute("INSERT INTO tenant_users (tenant_id, user_id, role) VALUES (%s, %s, %s)",
                    (t.id, uid, role))
        return uid
    finally:
        c.close()



def assert_error(resp, status, code, field=None):
    assert resp.status == status, "expected %d %s, got %r" % (status, code, resp)
    body = resp.json
    assert set(body.keys()) == {"error"}, body
    assert body["error"]["code"] == code, "expected code %s, got %r" % (code, body)
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    if field is not None:
        assert body["error"].get("field") == field, "expected field %s, got %r" % (field, body)


class Runner:
    def __init__(self, ctx, only=None):
        self.ctx = ctx
        self.only = only
        self.passed = 0
        self.failed = 0

    def run(self, tests):
        for fn in tests:
            name = "%s.%s" % (fn.__module__, fn.__name__)
            if self.only and self.only not in name:
                continue
            t0 = time.time()
            try:
                fn(self.ctx)
                self.passed += 1
                print("ok     %-60s %6.2fs" % (name, time.time() - t0), flush=True)
            except Exception:
                self.failed += 1
                print("FAIL   %s" % name, flush=True)
                traceback.print_exc(file=sys.stdout)
                sys.stdout.flush()
            srv = self.ctx.server
            if srv is not None and srv.proc.poll() is not None:
                self.failed += 1
                print("FAIL   server died during %s:\n%s" % (name, srv.output()[-4000:]))
                self.ctx.server = Server(self.ctx)

    def record(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("ok     %s" % name)
        else:
            self.failed += 1
            print("FAIL   %s %s" % (name, detail))
