"""test_cli.py - the tekup command line, migrations, external-database mode and
the access log (issue 2, sections 2, 3, 9 and 10).

  - --version, --help of tekup and of every subcommand (exit 0, usage);
  - bad arguments and bad environment settings: exit 2, one clear message
    on stderr, nothing on stdout, no server started (including a --name
    over 255 characters and a --bind that is not an IP address); a port
    already in use: exit 1 with a clear message;
  - tenant create: prints tenant_id, slug and a tk_ + 64 hex key once; the
    slug follows the seed's generateSlug and gets -2, -3 for repeated
    names; plan handling; tenant list shows the tenants;
  - migrate: a second run applies nothing; checksums are the files'
    SHA-256; a tampered checksum stops migrate and serve with a message;
    with a copy of the migrations (tekup falls back to ./sql/migrations in
    its working directory) plus probe files on a fresh database: files apply
    in order, a failing file is rolled back whole and stops the run, an
    edited applied file stops the run before later files; concurrent runs
    on a fresh database apply each file exactly once; serve migrates a fresh
    database on start; migrate works from any working directory;
  - DATABASE_URL / DATABASE_ADMIN_URL: unreachable server, unknown role or
    database, admin URL without request URL -> exit 1 with a clear error
    (no crash, no sanitizer report); serve with an unreachable database
    starts and answers 503 database_unavailable with Retry-After; a second
    server on the same database via URLs serves the same data;
  - the access log: one JSON line per request on stderr with time,
    requestId (X-Request-ID echoed or generated), tenantId, method, path,
    status, durationMs; the API key never appears in the log.
"""
import glob
import http.client
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid

import psycopg2

import harness
from harness import assert_error, free_port, test

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
MIGRATIONS_DIR = os.path.join(REPO, "sql", "migrations")
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "Sanitizer")
KEY_RE = re.compile(r"^tk_[0-9a-f]{64}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# --------------------------------------------------------------------------
# helpers


def run(ctx, *args, env=None, timeout=60, cwd=REPO):
    """Runs tekup, by default from the repository root like the harness (every
    call passes --data-dir or database URLs, so no ./var is made there)."""
    full_env = harness.merged_env(ctx.env, env)
    return subprocess.run([ctx.binary] + list(args), capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd)


def assert_clean(p):
    out = p.stdout + p.stderr
    for m in SANITIZER_MARKERS:
        assert m not in out, "sanitizer report:\n" + out[-4000:]
    assert p.returncode >= 0, "killed by signal %d" % -p.returncode


def migration_files():
    files = sorted(glob.glob(os.path.join(MIGRATIONS_DIR, "[0-9][0-9][0-9][0-9]_*.sql")))
    assert files, MIGRATIONS_DIR
    return files


def owner_query(ctx, sql, params=(), dbname="tekup"):
    c = psycopg2.connect(host=ctx.socket_dir, dbname=dbname, user="tekup_owner")
    c.autocommit = True
    try:
        cur = c.cursor()
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None
    finally:
        c.close()


def superuser_exec(ctx, sql):
    c = psycopg2.connect(host=ctx.socket_dir, dbname="postgres", user="postgres")
    c.autocommit = True
    try:
        c.cursor().execute(sql)
    finally:
        c.close()


class FreshDatabase:
    """A new, empty database in the suite's cluster, owned by tekup_owner, and
    the DATABASE_URL / DATABASE_ADMIN_URL environment that points tekup at it."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.name = "tekup_t_" + uuid.uuid4().hex[:10]
        superuser_exec(ctx, "CREATE DATABASE %s OWNER tekup_owner TEMPLATE template0"
                            " ENCODING 'UTF8'" % self.name)
        self.env = {
            "DATABASE_URL": "host=%s dbname=%s user=tekup_app" % (ctx.socket_dir, self.name),
            "DATABASE_ADMIN_URL": "host=%s dbname=%s user=tekup_owner" % (ctx.socket_dir,
                                                                            self.name),
        }

    def query(self, sql, params=()):
        return owner_query(self.ctx, sql, params, dbname=self.name)

    def drop(self):
        superuser_exec(self.ctx, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.name)


class OwnServer:
    """A `tekup serve` with its own environment, stdout and stderr kept apart."""

    def __init__(self, ctx, env, extra_args=(), wait=True):
        self.port = free_port()
        base = os.path.join(ctx.workdir, "cli-serve-%d" % self.port)
        self.out_path, self.err_path = base + ".out", base + ".err"
        self._out, self._err = open(self.out_path, "wb"), open(self.err_path, "wb")
        full_env = harness.merged_env(ctx.env, env)
        args = [ctx.binary, "serve", "--port", str(self.port), "--no-demo"] + list(extra_args)
        self.proc = subprocess.Popen(args, stdout=self._out, stderr=self._err, env=full_env,
                                     cwd=REPO)
        if wait:
            deadline = time.time() + 30
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError("tekup serve exited early (%s): %s" % (
                        self.proc.returncode, self.stderr()))
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    break
                except OSError:
                    assert time.time() < deadline, "tekup serve did not start listening"
                    time.sleep(0.05)

    def stdout(self):
        if not self._out.closed:
            self._out.flush()
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        if not self._err.closed:
            self._err.flush()
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        self._err.close()
        return self.proc.returncode

    def assert_clean_exit(self):
        rc = self.stop()
        out = self.stdout() + self.stderr()
        for m in SANITIZER_MARKERS:
            assert m not in out, "sanitizer report:\n" + out[-4000:]
        assert rc == 0, "serve exited %s:\n%s" % (rc, out[-3000:])


def parse_created(stdout):
    fields = dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)
    return fields


def create_tenant(ctx, name, *extra, env=None):
    args = ["tenant", "create", "--name", name] + list(extra)
    if env is None:
        args += ["--data-dir", ctx.data_dir]
    p = run(ctx, *args, env=env)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert_clean(p)
    f = parse_created(p.stdout)
    assert {"tenant_id", "slug", "api_key"} <= set(f), p.stdout
    assert UUID_RE.match(f["tenant_id"]), f
    assert KEY_RE.match(f["api_key"]), f
    assert "shown once" in p.stdout, p.stdout
    return f


def seed_slug(name):
    """The seed's generateSlug: lower-case, non-alphanumerics to '-', runs
    collapsed, one leading/trailing '-' trimmed, first 50 characters."""
    s = re.sub(r"[^a-z0-9]", "-", name.lower())
    s = re.sub(r"-+", "-", s)
    s = re.sub(r"^-|-$", "", s)
    return s[:50]


def log_lines(text):
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
    return lines


def request_lines(text):
    return [l for l in log_lines(text) if l.get("msg") == "request"]


def wait_for_log(get_text, pred, timeout=3):
    deadline = time.time() + timeout
    while True:
        found = [l for l in request_lines(get_text()) if pred(l)]
        if found or time.time() > deadline:
            return found
        time.sleep(0.05)


# --------------------------------------------------------------------------
# version and help


@test
def version_prints_tekup_semver(ctx):
    p = run(ctx, "--version")
    assert p.returncode == 0, p
    assert re.fullmatch(r"tekup \d+\.\d+\.\d+\n", p.stdout), repr(p.stdout)
    assert p.stderr == "", p.stderr


@test
def help_of_tekup_and_each_subcommand(ctx):
    cases = {
        ("--help",): ["usage: tekup <command>", "serve", "migrate", "tenant", "db", "--version"],
        ("-h",): ["usage: tekup <command>"],
        ("serve", "--help"): ["usage: tekup serve", "--bind", "--port", "--threads",
                              "--pool-size", "TEKUP_PORT", "TEKUP_THREADS", "TEKUP_POOL_SIZE",
                              "DATABASE_URL", "--no-migrate"],
        ("migrate", "--help"): ["usage: tekup migrate", "DATABASE_ADMIN_URL", "--data-dir"],
        ("tenant", "--help"): ["usage: tekup tenant", "create --name NAME", "--plan",
                               "list"],
        ("tenant", "create", "--help"): ["usage: tekup tenant", "create --name NAME"],
        ("db", "--help"): ["usage: tekup db", "start", "stop", "status"],
    }
    for args, needles in cases.items():
        p = run(ctx, *args, timeout=10)
        assert p.returncode == 0, (args, p.returncode, p.stderr)
        assert p.stderr == "", (args, p.stderr)
        for n in needles:
            assert n in p.stdout, (args, n, p.stdout)
        assert_clean(p)


@test
def bad_arguments_exit_2_with_a_clear_message(ctx):
    dd = ["--data-dir", ctx.data_dir]
    cases = [
        ([], r"^usage: tekup <command>"),
        (["nosuch"], r"unknown command 'nosuch'"),
        (["serve", "--port", "0"] + dd, r"--port .*1 to 65535.*'0'"),
        (["serve", "--port", "65536"] + dd, r"--port .*1 to 65535.*'65536'"),
        (["serve", "--port", "abc"] + dd, r"--port .*'abc'"),
        (["serve", "--port=-1"] + dd, r"--port .*'-1'"),
        (["serve", "--port"], r"--port needs a value"),
        (["serve", "--threads", "0"] + dd, r"--threads .*1 to 256.*'0'"),
        (["serve", "--pool-size", "0"] + dd, r"--pool-size .*'0'"),
        (["serve", "--key-cache-ttl-ms", "5001"] + dd, r"--key-cache-ttl-ms .*5000.*'5001'"),
        (["serve", "--log-level", "loud"] + dd, r"--log-level.*'loud'"),
        (["serve", "--bind", ""] + dd, r"--bind"),
        (["serve", "--migrate=maybe"] + dd, r"--migrate.*'maybe'"),
        (["serve", "--no-port"] + dd, r"unknown argument '--no-port'"),
        (["serve", "--bogus"] + dd, r"unknown argument '--bogus'"),
        (["serve", "extra"] + dd, r"unknown argument 'extra'"),
        (["migrate", "--bogus"] + dd, r"unknown argument '--bogus'"),
        (["migrate", "--port", "8080"] + dd, r"unknown argument '--port'"),
        (["tenant"] + dd, r"expected a command"),
        (["tenant", "frobnicate"] + dd, r"unknown command 'frobnicate'"),
        (["tenant", "create"] + dd, r"--name is required"),
        (["tenant", "create", "--name", ""] + dd, r"--name is required"),
        (["tenant", "create"] + dd + ["--name"], r"--name needs a value"),
        (["tenant", "create", "--name", "X", "--plan", "gold"] + dd,
         r"--plan must be trial, basic, professional or enterprise"),
        (["tenant", "create", "--name", "X", "--sample-leads", "-1"] + dd, r"--sample-leads"),
        (["tenant", "create", "--name", "X", "--colour", "red"] + dd,
         r"unknown argument '--colour'"),
        (["tenant", "list", "extra"] + dd, r"unexpected argument 'extra'"),
        (["db"] + dd, r"expected start, stop or status"),
        (["db", "explode"] + dd, r"unknown action 'explode'"),
    ]
    n_tenants = owner_query(ctx, "SELECT count(*) FROM tenants")[0][0]
    for args, pattern in cases:
        p = run(ctx, *args, timeout=15)
        assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
        assert p.stdout == "", (args, p.stdout)
        assert re.search(pattern, p.stderr, re.M), (args, p.stderr)
        assert_clean(p)
    # Settings from the environment are validated the same way.
    env_cases = [
        ({"TEKUP_PORT": "abc"}, r"TEKUP_PORT.*'abc'"),
        ({"TEKUP_THREADS": "0"}, r"TEKUP_THREADS.*'0'"),
        ({"TEKUP_POOL_SIZE": "100000"}, r"TEKUP_POOL_SIZE.*'100000'"),
        ({"TEKUP_KEY_CACHE_TTL_MS": "60000"}, r"TEKUP_KEY_CACHE_TTL_MS"),
    ]
    for env, pattern in env_cases:
        p = run(ctx, "serve", "--data-dir", ctx.data_dir, env=env, timeout=15)
        assert p.returncode == 2, (env, p.returncode, p.stdout, p.stderr)
        assert re.search(pattern, p.stderr), (env, p.stderr)
        assert_clean(p)
    # A flag is validated even when the environment holds a valid value.
    p = run(ctx, "serve", "--data-dir", ctx.data_dir, "--threads", "0",
            env={"TEKUP_THREADS": "4"}, timeout=15)
    assert p.returncode == 2 and "'0'" in p.stderr, p.stderr
    assert owner_query(ctx, "SELECT count(*) FROM tenants")[0][0] == n_tenants


@test
def invalid_tenant_name_is_a_usage_error(ctx):
    """--name longer than 255 characters, or not UTF-8, is a bad argument:
    exit 2 with a message, and no tenant is created."""
    n = owner_query(ctx, "SELECT count(*) FROM tenants")[0][0]
    for name in ("x" * 256, b"\xff\xfe bad utf-8".decode("utf-8", "surrogateescape")):
        p = run(ctx, "tenant", "create", "--data-dir", ctx.data_dir, "--name", name, timeout=30)
        assert_clean(p)
        assert "--name" in p.stderr and "255" in p.stderr, p.stderr
        assert "api_key" not in p.stdout, p.stdout
        assert p.returncode == 2, "exit %d for a bad --name (expected 2): %s" % (
            p.returncode, p.stderr)
    # 255 characters is fine.
    f = create_tenant(ctx, "y" * 255)
    assert f["slug"] == "y" * 50, f
    assert owner_query(ctx, "SELECT count(*) FROM tenants")[0][0] == n + 1


@test
def invalid_bind_address_is_a_usage_error(ctx):
    """--bind / TEKUP_BIND that is not an IP address is a bad argument, found
    when the settings are validated: exit 2, before any database work."""
    for args, env in ((["--bind", "999.1.1.1"], None), (["--bind", "nonsense"], None),
                      ([], {"TEKUP_BIND": "localhost:80"})):
        p = run(ctx, "serve", "--data-dir", ctx.data_dir, "--port", str(free_port()),
                "--no-demo", *args, env=env, timeout=30)
        assert_clean(p)
        assert "--bind" in p.stderr or "TEKUP_BIND" in p.stderr, p.stderr
        assert "not an IPv4 or IPv6 address" in p.stderr, p.stderr
        assert p.returncode == 2, "exit %d for %s %s (expected 2): %s" % (
            p.returncode, args, env, p.stderr)


@test
def port_in_use_is_a_clear_runtime_error(ctx):
    p = run(ctx, "serve", "--data-dir", ctx.data_dir, "--port", str(ctx.server.port),
            "--no-demo", "--no-migrate", timeout=30)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert_clean(p)
    assert "cannot listen on 127.0.0.1:%d" % ctx.server.port in p.stderr, p.stderr
    # The running server is unaffected.
    assert ctx.http("GET", "/v1/leads").status == 401


# --------------------------------------------------------------------------
# tenants


@test
def tenant_create_prints_id_slug_and_key_once(ctx):
    tag = uuid.uuid4().hex[:8]
    name = "Acme  Widgets, Inc.! %s" % tag
    f1 = create_tenant(ctx, name, "--plan", "enterprise")
    assert f1["slug"] == "acme-widgets-inc-" + tag == seed_slug(name), f1
    f2 = create_tenant(ctx, name)
    f3 = create_tenant(ctx, name)
    assert f2["slug"] == f1["slug"] + "-2", f2
    assert f3["slug"] == f1["slug"] + "-3", f3
    assert len({f1["tenant_id"], f2["tenant_id"], f3["tenant_id"]}) == 3
    assert len({f1["api_key"], f2["api_key"], f3["api_key"]}) == 3
    rows = owner_query(ctx, "SELECT t.name, t.slug, t.status, t.subscription_plan,"
                            " t.enabled_features = p.features, t.resource_limits = p.limits"
                            " FROM tenants t JOIN plans p ON p.name = t.subscription_plan"
                            " WHERE t.id = %s", (f1["tenant_id"],))
    assert rows == [(name, f1["slug"], "active", "enterprise", True, True)], rows
    plan = owner_query(ctx, "SELECT subscription_plan FROM tenants WHERE id = %s",
                       (f2["tenant_id"],))
    assert plan == [("basic",)], plan
    # The key is stored only as its SHA-256, and it works.
    for f in (f1, f2, f3):
        h = owner_query(ctx, "SELECT key_hash FROM api_keys WHERE tenant_id = %s",
                        (f["tenant_id"],))
        assert [bytes(r[0]) for r in h] == [hashlib.sha256(f["api_key"].encode()).digest()]
        r = ctx.http("GET", "/v1/leads", key=f["api_key"])
        assert r.status == 200 and r.header("X-Tenant-ID") == f["tenant_id"], r
        assert r.json["data"] == [], r
    # --name=VALUE and --sample-leads.
    f4 = create_tenant(ctx, "  --Hello__World-- %s" % tag, "--sample-leads=4", "--plan=trial")
    assert f4["slug"] == "hello-world-" + tag, f4
    r = ctx.http("GET", "/v1/leads", key=f4["api_key"])
    assert r.status == 200 and len(r.json["data"]) == 4, r


@test
def tenant_slug_follows_the_seed_rule(ctx):
    tag = uuid.uuid4().hex[:8]
    names = [
        "Ærø Café & Co %s" % tag,
        "  Spaces   Around %s  " % tag,
        "UPPER lower 123 %s" % tag,
        "Very Long Company Name For Slug Truncation Purposes Indeed %s" % tag,
        "%s" % tag + "x" * 80,
        "a.b_c/d\\e'f\"g;h%s" % tag,
    ]
    for name in names:
        want = seed_slug(name)
        f = create_tenant(ctx, name)
        assert f["slug"] == want, (name, f["slug"], want)
        assert len(f["slug"]) <= 50
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", f["slug"]), f["slug"]
        again = create_tenant(ctx, name)
        assert again["slug"] == want + "-2", (name, again["slug"])
    # A name with no letters or digits still gets a usable, unique slug.
    f = create_tenant(ctx, "!!! ???")
    assert re.fullmatch(r"tenant(-\d+)?", f["slug"]), f["slug"]


@test
def tenant_list_shows_created_tenants(ctx):
    tag = uuid.uuid4().hex[:8]
    f = create_tenant(ctx, "Listed %s" % tag, "--plan", "professional")
    g = create_tenant(ctx, "Listed suspended %s" % tag)
    owner_query(ctx, "UPDATE tenants SET status = 'suspended' WHERE id = %s", (g["tenant_id"],))
    p = run(ctx, "tenant", "list", "--data-dir", ctx.data_dir)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert_clean(p)
    lines = p.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "SLUG", "STATUS"], lines[0]
    n = owner_query(ctx, "SELECT count(*) FROM tenants")[0][0]
    assert lines[-1] == "%d tenant(s)" % n, lines[-1]
    rows = [l for l in lines if re.match(r"[0-9a-f-]{36}  ", l)]
    assert len(rows) == n, (len(rows), n)
    for t, status, plan, name in ((f, "active", "professional", "Listed %s" % tag),
                                  (g, "suspended", "basic", "Listed suspended %s" % tag)):
        row = [l for l in lines if l.startswith(t["tenant_id"])]
        assert len(row) == 1, row
        cols = row[0].split()
        assert cols[:4] == [t["tenant_id"], t["slug"], status, plan], cols
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", cols[4]), cols
        assert cols[5] == "1", cols      # one unrevoked key
        assert row[0].endswith(name), row
        assert t["api_key"] not in p.stdout
    # No key is ever printed by list.
    assert not re.search(r"tk_[0-9a-f]{64}", p.stdout)


# --------------------------------------------------------------------------
# migrations


@test
def migrate_again_applies_nothing_and_checksums_match_files(ctx):
    files = migration_files()
    before = owner_query(ctx, "SELECT version, name, checksum FROM schema_migrations"
                              " ORDER BY version")
    assert [r[1] for r in before] == [os.path.basename(f) for f in files], before
    for (version, name, checksum), path in zip(before, files):
        with open(path, "rb") as fh:
            assert checksum == hashlib.sha256(fh.read()).hexdigest(), name
        assert version == int(name[:4]), (version, name)
    p = run(ctx, "migrate", "--data-dir", ctx.data_dir)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert_clean(p)
    assert "migrations: 0 applied now, %d files, schema up to date" % len(files) in p.stdout, \
        p.stdout
    assert not re.search(r"^applied ", p.stdout, re.M), p.stdout
    after = owner_query(ctx, "SELECT version, name, checksum FROM schema_migrations"
                             " ORDER BY version")
    assert after == before


@test
def migrate_refuses_an_edited_migration(ctx):
    old = owner_query(ctx, "SELECT checksum FROM schema_migrations WHERE version = 1")
    assert len(old) == 1 and re.fullmatch(r"[0-9a-f]{64}", old[0][0]), old
    owner_query(ctx, "UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
    try:
        p = run(ctx, "migrate", "--data-dir", ctx.data_dir)
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
        assert_clean(p)
        assert "0001_schema.sql" in p.stderr and "edited" in p.stderr, p.stderr
        assert "schema up to date" not in p.stdout, p.stdout
        # serve (which migrates first) refuses to start as well.
        port = free_port()
        s = run(ctx, "serve", "--data-dir", ctx.data_dir, "--port", str(port), "--no-demo",
                timeout=30)
        assert s.returncode == 1, (s.returncode, s.stderr)
        assert "edited" in s.stderr, s.stderr
        assert_clean(s)
    finally:
        owner_query(ctx, "UPDATE schema_migrations SET checksum = %s WHERE version = 1",
                    (old[0][0],))
    p = run(ctx, "migrate", "--data-dir", ctx.data_dir)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "0 applied now" in p.stdout, p.stdout


def temp_migrations(ctx, extra=None):
    """A copy of sql/migrations under a new directory (returned), plus extra
    files {name: sql}; use it with migrations_env()."""
    root = os.path.join(ctx.workdir, "mig-" + uuid.uuid4().hex[:8])
    os.makedirs(os.path.join(root, "sql", "migrations"))
    for f in migration_files():
        shutil.copy(f, os.path.join(root, "sql", "migrations"))
    for name, sql in (extra or {}).items():
        write_migration(root, name, sql)
    return root


def migrations_env(db, root):
    """db.env, pointing tekup at the copied migrations (--migrations-dir)."""
    env = dict(db.env)
    env["TEKUP_MIGRATIONS_DIR"] = os.path.join(root, "sql", "migrations")
    return env


def write_migration(root, name, sql):
    with open(os.path.join(root, "sql", "migrations", name), "w") as fh:
        fh.write(sql)


@test
def migrate_applies_files_in_order_each_in_its_own_transaction(ctx):
    """On a fresh database with a copy of the migrations plus two new files:
    a failing file is rolled back whole and stops the run; an edited applied
    file stops the run before any later file."""
    base = [os.path.basename(f) for f in migration_files()]
    db = FreshDatabase(ctx)
    root = temp_migrations(ctx, {
        "0090_probe_good.sql": "CREATE TABLE probe_good (x int);\nINSERT INTO probe_good VALUES (1);\n",
        "0091_probe_bad.sql": "CREATE TABLE probe_bad (x int);\nSELECT 1/0;\n",
    })
    try:
        p = run(ctx, "migrate", env=migrations_env(db, root), cwd=root)
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
        assert_clean(p)
        applied = re.findall(r"^applied (\S+)", p.stdout, re.M)
        assert applied == base + ["0090_probe_good.sql"], \
            "the copied migrations were not used (is there a sql/migrations next to the " \
            "binary now?): " + p.stdout
        assert "0091_probe_bad.sql" in p.stderr and "division by zero" in p.stderr, p.stderr
        versions = [r[0] for r in db.query("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == [int(n[:4]) for n in base] + [90], versions
        assert db.query("SELECT x FROM probe_good") == [(1,)]
        # The failed file left nothing behind: its CREATE TABLE was rolled back.
        assert db.query("SELECT to_regclass('public.probe_bad') IS NULL") == [(True,)]

        # Fixed, it applies alone.
        write_migration(root, "0091_probe_bad.sql", "CREATE TABLE probe_bad (x int);\n")
        p = run(ctx, "migrate", env=migrations_env(db, root), cwd=root)
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert re.findall(r"^applied (\S+)", p.stdout, re.M) == ["0091_probe_bad.sql"], p.stdout

        # An applied file edited on disk: refused, and the new 0092 is not applied.
        path = os.path.join(root, "sql", "migrations", base[1])
        with open(path) as fh:
            original = fh.read()
        with open(path, "a") as fh:
            fh.write("\n-- an innocent-looking edit\n")
        write_migration(root, "0092_probe_later.sql", "CREATE TABLE probe_later (x int);\n")
        p = run(ctx, "migrate", env=migrations_env(db, root), cwd=root)
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
        assert_clean(p)
        assert base[1] in p.stderr and "edited" in p.stderr, p.stderr
        assert "applied " not in p.stdout, p.stdout
        assert db.query("SELECT to_regclass('public.probe_later') IS NULL") == [(True,)]
        # Restored: the run goes on and applies 0092.
        with open(path, "w") as fh:
            fh.write(original)
        p = run(ctx, "migrate", env=migrations_env(db, root), cwd=root)
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert re.findall(r"^applied (\S+)", p.stdout, re.M) == ["0092_probe_later.sql"], p.stdout
    finally:
        db.drop()
        shutil.rmtree(root, ignore_errors=True)


@test
def migrate_works_from_any_working_directory(ctx):
    """The binary finds its migrations wherever it is started from (the README
    runs it from the repository root; an operator's service need not)."""
    p = run(ctx, "migrate", "--data-dir", ctx.data_dir, cwd=ctx.workdir)
    assert_clean(p)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert "0 applied now" in p.stdout, p.stdout


@test
def concurrent_migrate_runs_apply_each_file_once(ctx):
    files = [os.path.basename(f) for f in migration_files()]
    # On the suite's (migrated) database: all succeed, nothing applied.
    procs = [subprocess.Popen([ctx.binary, "migrate", "--data-dir", ctx.data_dir],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=ctx.env, cwd=REPO) for _ in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, (out, err)
        assert "0 applied now" in out, out
    # On a fresh database: the three race; each file is applied exactly once.
    db = FreshDatabase(ctx)
    try:
        full_env = harness.merged_env(ctx.env, db.env)
        procs = [subprocess.Popen([ctx.binary, "migrate"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=full_env,
                                  cwd=REPO) for _ in range(3)]
        outs = [p.communicate(timeout=60) for p in procs]
        applied = []
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, (p.returncode, out, err)
            for m in SANITIZER_MARKERS:
                assert m not in out + err, err
            assert "schema up to date" in out, out
            applied += re.findall(r"^applied (\S+)", out, re.M)
        assert sorted(applied) == files, outs
        rows = db.query("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [r[1] for r in rows] == files, rows
        assert db.query("SELECT count(*) FROM plans") == [(4,)]
        assert db.query("SELECT relforcerowsecurity FROM pg_class WHERE relname = 'leads'") \
            == [(True,)]
    finally:
        db.drop()


@test
def serve_migrates_a_fresh_database_on_start(ctx):
    db = FreshDatabase(ctx)
    srv = None
    try:
        srv = OwnServer(ctx, db.env)
        err = srv.stderr()
        for f in migration_files():
            assert "applied " + os.path.basename(f) in err, err
        assert len(db.query("SELECT version FROM schema_migrations")) == len(migration_files())
        t = create_tenant(ctx, "Fresh db tenant", "--sample-leads", "2", env=db.env)
        r = ctx.http("GET", "/v1/leads", key=t["api_key"], port=srv.port)
        assert r.status == 200 and len(r.json["data"]) == 2, r
        assert r.header("X-Tenant-ID") == t["tenant_id"]
        # That tenant does not exist in the suite's own database.
        assert owner_query(ctx, "SELECT count(*) FROM tenants WHERE id = %s",
                           (t["tenant_id"],)) == [(0,)]
        assert_error(ctx.http("GET", "/v1/leads", key=t["api_key"]), 401, "invalid_tenant_key")
        srv.assert_clean_exit()
        srv = None
    finally:
        if srv:
            srv.stop()
        db.drop()


# --------------------------------------------------------------------------
# external database URLs and failures


@test
def unreachable_or_wrong_database_is_a_clear_error(ctx):
    sock = ctx.socket_dir
    unreachable = {"DATABASE_URL": "postgresql://tekup_app@127.0.0.1:1/tekup",
                   "DATABASE_ADMIN_URL": "postgresql://tekup_owner@127.0.0.1:1/tekup"}
    cases = [
        (unreachable, ["migrate"], r"cannot connect to PostgreSQL.*127\.0\.0\.1.*(refused|1)"),
        (unreachable, ["tenant", "list"], r"cannot connect to PostgreSQL"),
        (unreachable, ["tenant", "create", "--name", "Nope"], r"cannot connect to PostgreSQL"),
        ({"DATABASE_URL": "host=%s dbname=tekup user=nosuch_role" % sock,
          "DATABASE_ADMIN_URL": "host=%s dbname=tekup user=nosuch_role" % sock},
         ["migrate"], r'role \\?"nosuch_role\\?" does not exist'),
        ({"DATABASE_URL": "host=%s dbname=nosuch_db user=tekup_app" % sock,
          "DATABASE_ADMIN_URL": "host=%s dbname=nosuch_db user=tekup_owner" % sock},
         ["migrate"], r'database \\?"nosuch_db\\?" does not exist'),
        ({"DATABASE_URL": None, "DATABASE_ADMIN_URL": "host=%s dbname=tekup user=tekup_owner" % sock},
         ["migrate"], r"DATABASE_ADMIN_URL is set but DATABASE_URL is not"),
        # Migrating as the request role (admin URL defaults to DATABASE_URL).
        ({"DATABASE_URL": "host=%s dbname=tekup user=tekup_app" % sock},
         ["migrate"], r"permission denied"),
        (unreachable, ["serve", "--port", str(free_port()), "--no-demo"],
         r"cannot connect to PostgreSQL"),
    ]
    n_tenants = owner_query(ctx, "SELECT count(*) FROM tenants")[0][0]
    for env, args, pattern in cases:
        t0 = time.time()
        p = run(ctx, *args, env=env, timeout=60)
        assert p.returncode == 1, (args, env, p.returncode, p.stdout, p.stderr)
        assert_clean(p)
        assert re.search(pattern, p.stderr), (args, env, p.stderr)
        assert "api_key" not in p.stdout, p.stdout
        assert time.time() - t0 < 20, "took %.1f s" % (time.time() - t0)
    assert owner_query(ctx, "SELECT count(*) FROM tenants")[0][0] == n_tenants


@test
def serve_with_unreachable_database_answers_503_with_retry_after(ctx):
    env = {"DATABASE_URL": "host=/nonexistent-tekup-socket-dir dbname=tekup user=tekup_app",
           "DATABASE_ADMIN_URL": "host=/nonexistent-tekup-socket-dir dbname=tekup"
                                 " user=tekup_owner"}
    srv = OwnServer(ctx, env, ["--no-migrate"])
    try:
        key = "tk_" + "ab" * 32
        for method, path, body in (("GET", "/v1/leads", None), ("GET", "/v1/leads/stats", None),
                                   ("GET", "/v1/leads/" + str(uuid.uuid4()), None),
                                   ("POST", "/v1/leads", {"name": "x"}),
                                   ("GET", "/v1/leads", None)):
            t0 = time.time()
            r = ctx.http(method, path, key=key, body=body, port=srv.port)
            assert_error(r, 503, "database_unavailable")
            ra = r.header("Retry-After")
            assert ra is not None and re.fullmatch(r"[1-9]\d*", ra), r.headers
            assert r.header("X-Tenant-ID") is None
            assert time.time() - t0 < 10
        assert srv.proc.poll() is None, "serve died"
        assert "cannot connect to PostgreSQL" in srv.stderr()
        srv.assert_clean_exit()
        srv = None
    finally:
        if srv:
            srv.stop()


@test
def second_server_via_database_urls_serves_the_same_data(ctx):
    t = ctx.new_tenant(name="Shared data %s" % uuid.uuid4().hex[:6], sample_leads=3)
    env = {"DATABASE_URL": "host=%s dbname=tekup user=tekup_app" % ctx.socket_dir,
           "DATABASE_ADMIN_URL": "host=%s dbname=tekup user=tekup_owner" % ctx.socket_dir}
    # No --no-migrate: it migrates on start (nothing to do) and then serves.
    srv = OwnServer(ctx, env)
    try:
        assert "migrations: 0 applied now" in srv.stderr(), srv.stderr()
        main = ctx.http("GET", "/v1/leads?limit=100", key=t.key)
        other = ctx.http("GET", "/v1/leads?limit=100", key=t.key, port=srv.port)
        assert other.status == 200 and other.header("X-Tenant-ID") == t.id, other
        assert other.json == main.json and len(other.json["data"]) == 3, other
        # A write through one is visible through the other.
        r = ctx.http("POST", "/v1/leads", key=t.key, port=srv.port, body={"name": "Via second"},
                     headers={"X-Request-ID": "second-server-write"})
        assert r.status == 201 and r.json["tenantId"] == t.id, r
        g = ctx.http("GET", "/v1/leads/" + r.json["id"], key=t.key)
        assert g.status == 200 and g.json == r.json, g
        # Its access log goes to stderr, not stdout.
        lines = wait_for_log(srv.stderr, lambda l: l.get("requestId") == "second-server-write")
        assert len(lines) == 1, srv.stderr()
        assert lines[0]["status"] == 201 and lines[0]["method"] == "POST", lines
        assert request_lines(srv.stdout()) == [], srv.stdout()
        srv.assert_clean_exit()
        srv = None
    finally:
        if srv:
            srv.stop()


# --------------------------------------------------------------------------
# access log


REQUIRED_LOG_KEYS = {"time", "requestId", "tenantId", "method", "path", "status", "durationMs"}


def check_line(line):
    assert REQUIRED_LOG_KEYS <= set(line), line
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", line["time"]), line
    assert isinstance(line["status"], int), line
    assert isinstance(line["durationMs"], (int, float)) and line["durationMs"] >= 0, line


@test
def access_log_has_one_json_line_per_request(ctx):
    t = ctx.new_tenant(name="Logged %s" % uuid.uuid4().hex[:6], sample_leads=1)
    lead = ctx.http("GET", "/v1/leads", key=t.key).json["data"][0]
    path = "/v1/leads/" + lead["id"]
    out = ctx.server.output

    r = ctx.http("GET", path, key=t.key, headers={"X-Request-ID": "abc-123"})
    assert r.status == 200 and r.header("X-Request-ID") == "abc-123", r.headers
    lines = wait_for_log(out, lambda l: l.get("requestId") == "abc-123" and l.get("path") == path)
    assert len(lines) == 1, lines
    line = lines[0]
    check_line(line)
    assert (line["tenantId"], line["method"], line["path"], line["status"]) == (
        t.id, "GET", path, 200), line

    # Generated id when none is sent; echoed in the response.
    r = ctx.http("POST", "/v1/leads", key=t.key, body={"name": "log me"})
    rid = r.header("X-Request-ID")
    assert r.status == 201 and rid and re.fullmatch(r"[0-9a-f]{16,64}", rid), r.headers
    lines = wait_for_log(out, lambda l: l.get("requestId") == rid)
    assert len(lines) == 1, lines
    check_line(lines[0])
    assert (lines[0]["method"], lines[0]["path"], lines[0]["status"], lines[0]["tenantId"]) == (
        "POST", "/v1/leads", 201, t.id), lines

    # An unacceptable X-Request-ID (spaces, quotes, too long) is replaced.
    for bad in ('has space', 'quote"inject', "x" * 300):
        r = ctx.http("GET", "/v1/leads", key=t.key, headers={"X-Request-ID": bad})
        rid = r.header("X-Request-ID")
        assert r.status == 200 and rid != bad and re.fullmatch(r"[0-9a-f]{16,64}", rid), r.headers
        assert len(wait_for_log(out, lambda l: l.get("requestId") == rid)) == 1

    # Failures are logged too: no tenant, the status and the error code.
    rid = "no-key-" + uuid.uuid4().hex[:8]
    r = ctx.http("GET", "/v1/leads", headers={"X-Request-ID": rid})
    assert_error(r, 401, "missing_tenant_key")
    lines = wait_for_log(out, lambda l: l.get("requestId") == rid)
    assert len(lines) == 1, lines
    check_line(lines[0])
    assert lines[0]["tenantId"] is None and lines[0]["status"] == 401, lines
    assert lines[0].get("error") == "missing_tenant_key", lines

    rid = "unknown-route-" + uuid.uuid4().hex[:8]
    r = ctx.http("GET", "/v1/nothing-here", key=t.key, headers={"X-Request-ID": rid})
    assert r.status == 404, r
    lines = wait_for_log(out, lambda l: l.get("requestId") == rid)
    assert len(lines) == 1 and lines[0]["status"] == 404, lines

    # The query string is not part of the logged path (filters may hold PII).
    rid = "with-query-" + uuid.uuid4().hex[:8]
    r = ctx.http("GET", "/v1/leads?email=private.person%40example.com", key=t.key,
                 headers={"X-Request-ID": rid})
    assert r.status == 200, r
    lines = wait_for_log(out, lambda l: l.get("requestId") == rid)
    assert len(lines) == 1 and lines[0]["path"] == "/v1/leads", lines

    text = out()
    assert t.key not in text, "the API key appears in the server log"
    assert t.key[3:] not in text
    for l in request_lines(text):
        check_line(l)


@test
def access_lines_held_back_are_written_when_idle_and_before_exit(ctx):
    """A worker keeps its access lines for up to 5 ms and writes them
    together (one write(2) for many requests).  They still appear promptly
    when the server goes quiet, and SIGTERM writes what is held before the
    process exits: no line is lost."""
    t = ctx.new_tenant(sample_leads=1)
    srv = harness.Server(ctx, ["--threads", "1"])
    tag = uuid.uuid4().hex[:8]

    def burst(prefix, n):
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        ids = []
        for i in range(n):
            rid = "%s-%s-%d" % (prefix, tag, i)
            conn.request("GET", "/v1/leads/stats", headers={"X-Tenant-Key": t.key,
                                                            "X-Request-ID": rid})
            r = conn.getresponse()
            r.read()
            assert r.status == 200, r.status
            ids.append(rid)
        conn.close()
        return ids

    try:
        quiet = burst("quiet", 30)
        # No more traffic: the held lines are written anyway.
        found = wait_for_log(srv.output, lambda l: l.get("requestId") == quiet[-1], timeout=2)
        assert len(found) == 1, srv.output()[-2000:]
        last = burst("last", 30)
    finally:
        rc = srv.stop()  # at once, while the last lines may still be held
    out = srv.output()
    assert rc == 0, out[-3000:]
    logged = [l["requestId"] for l in request_lines(out)]
    assert logged[-60:] == quiet + last, logged[-60:]


@test
def a_socket_directory_planted_in_tmp_is_not_adopted(ctx):
    """A data directory whose socket path is too long puts its sockets in
    /tmp/tekup-<hash of the path>, which anyone can create first.  A symbolic
    link or another user's directory there is refused, and the file it
    points at is left as it was."""
    base = os.path.join(ctx.workdir, "long-socket-" + uuid.uuid4().hex[:8])
    data_dir = os.path.join(base, "d" * 120)
    os.makedirs(data_dir)
    os.chmod(base, 0o755)
    digest = hashlib.blake2b(os.path.realpath(data_dir).encode(), digest_size=8).hexdigest()
    planted = "/tmp/tekup-" + digest
    victim = os.path.join(ctx.workdir, "victim-" + uuid.uuid4().hex[:8])
    os.mkdir(victim, 0o755)
    before = os.stat(victim)
    try:
        os.symlink(victim, planted)
        p = run(ctx, "db", "start", "--data-dir", data_dir)
        assert p.returncode != 0, p.stdout + p.stderr
        assert planted in p.stderr and "symbolic link" in p.stderr, p.stderr
        after = os.stat(victim)
        assert (after.st_uid, after.st_gid, after.st_mode) == \
            (before.st_uid, before.st_gid, before.st_mode)
        os.unlink(planted)
        os.mkdir(planted, 0o777)
        os.chown(planted, 65534, 65534)  # nobody's
        p = run(ctx, "db", "start", "--data-dir", data_dir)
        assert p.returncode != 0, p.stdout + p.stderr
        assert "belongs to another user" in p.stderr, p.stderr
        assert os.stat(planted).st_uid == 65534
        assert not os.path.exists(os.path.join(data_dir, "pgdata", "PG_VERSION"))
    finally:
        if os.path.islink(planted):
            os.unlink(planted)
        elif os.path.isdir(planted):
            os.rmdir(planted)
        shutil.rmtree(base, ignore_errors=True)
