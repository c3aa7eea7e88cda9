#!/usr/bin/python3
"""bench/run.py - the tekup benchmark harness (see bench/README.md).

One command (bench/run.sh, or `make bench`) does everything:

  1. a fresh embedded PostgreSQL cluster in its own data directory, migrated;
  2. the fixed dataset (bench/seed.sql): 100 tenants x 1,000 leads and one
     tenant x 100,000 leads, deterministic ids and keys, then VACUUM ANALYZE;
  3. the release server, driven by wrk (bench/lua/w*.lua) for W1..W5 at 16 and
     64 connections (warm-up, then the measured run);
  4. the database limit for the same work: pgbench -M prepared running exactly
     the statement each endpoint sends (printed by `tekup sql`, with the same
     bind parameters and session settings) inside BEGIN; <set the tenant>;
     ...; COMMIT, plain and pipelined, at the same client counts; and the
     W1/W2 scripts as the owner (RLS off), alternating with tekup_app;
     then, with the cluster under callgrind (bench/rls_cost.py), the
     instructions per transaction of every script, and of W1/W2 as the owner;
  5. bench/RESULTS.md: machine facts, the tables, CPU accounting, targets;
  6. correctness: W3 rows created == 201 responses, no 5xx, no socket errors,
     no failed pgbench transaction, and the pgbench statements return what
     the server returns.  Any failure makes the exit status non-zero.

Runs with Debian's python (/usr/bin/python3) and python3-psycopg2.
"""

import argparse
import datetime
import glob
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psycopg2

import rls_cost

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
LUA_DIR = os.path.join(BENCH, "lua")

SMALL_TENANTS = 100
SMALL_LEADS = 1000
BIG_TENANT = 101
BIG_LEADS = 100000
BASE_TS = "2026-07-01 00:00:00+00"  # newest created_at in the seed (see seed.sql)
# Deep cursor positions in the big tenant: the page after lead k (k-th newest).
# The cursors themselves come from the server (walking the tenant with
# limit=100 pages), so the harness never depends on the cursor's encoding.
CURSOR_FIRST, CURSOR_STEP, CURSOR_COUNT = 50000, 200, 200
CURSOR_WALK_LIMIT = 100
CURSOR_POSITIONS = [CURSOR_FIRST + CURSOR_STEP * i for i in range(CURSOR_COUNT)]

W2_QUERY = "page=1&limit=20&status=NEW&fields=id,name,email,status,createdAt"
# W3 sends this body; the pgbench script inserts the same values ($2..$9).
W3_BODY = {
    "name": "Ada Lovelace",
    "email": "ada.lovelace@example.com",
    "phone": "+45 12345678",
    "company": "Analytical Engines ApS",
    "source": "website",
    "customFields": {"priority": "high"},
}
W3_PARAMS = ["Ada Lovelace", "ada.lovelace@example.com", "+45 12345678",
             "Analytical Engines ApS", None, "website", '{"priority":"high"}', None]

WORKLOADS = {
    "W1": "GET /v1/leads/{id}",
    "W2": "GET /v1/leads?" + W2_QUERY,
    "W3": "POST /v1/leads",
    "W4": "GET /v1/leads/stats",
    "W5": "GET /v1/leads?cursor=<deep>&limit=20 (100k-lead tenant)",
}
# W3 writes, so it runs last (and its rows are deleted after each phase).
RUN_ORDER = ["W1", "W2", "W4", "W5", "W3"]


def tenant_id(n):
    return "b0000000-0000-4000-8000-%012d" % n


def lead_prefix(n):
    return "%08x" % n


def lead_id(n, k):
    return "%s-0000-4000-8000-%012d" % (lead_prefix(n), k)


def api_key(n):
    return "tk_" + hashlib.sha256(("tekup-bench-%d" % n).encode()).hexdigest()


def log(msg=""):
    print(msg, flush=True)


class Failure(Exception):
    pass


# ---------------------------------------------------------------- processes

def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if check and r.returncode != 0:
        raise Failure("command failed (%d): %s\n%s%s" % (r.returncode, " ".join(cmd), r.stdout,
                                                         r.stderr))
    return r


def child_cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    # the command name may contain spaces: fields start after the last ')'
    return data[data.rindex(")") + 2:].split()


def proc_cpu(pid, with_children=False):
    """CPU seconds of pid (and of its reaped children when asked)."""
    try:
        f = proc_stat_fields(pid)
    except OSError:
        return 0.0
    # fields (0-based after the name): 11 utime, 12 stime, 13 cutime, 14 cstime
    t = int(f[11]) + int(f[12])
    if with_children:
        t += int(f[13]) + int(f[14])
    return t / CLK_TCK


def children_of(ppid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if int(proc_stat_fields(int(d))[1]) == ppid:
                out.append(int(d))
        except (OSError, IndexError, ValueError):
            pass
    return out


def machine_cpu():
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return total - idle, total


class CpuMeter:
    """CPU used during a run by the machine, the server, PostgreSQL and the
    load generator (wrk/pgbench, a direct child of this script)."""

    def __init__(self, server_pid, postmaster_pid):
        self.server_pid = server_pid
        self.postmaster_pid = postmaster_pid

    def _pg(self):
        if not self.postmaster_pid:
            return 0.0
        t = proc_cpu(self.postmaster_pid, with_children=True)
        for c in children_of(self.postmaster_pid):
            t += proc_cpu(c)
        return t

    def _threads(self):
        out = {}
        if self.server_pid:
            try:
                for t in os.listdir("/proc/%d/task" % self.server_pid):
                    try:
                        with open("/proc/%d/task/%s/stat" % (self.server_pid, t)) as fh:
                            data = fh.read()
                        f = data[data.rindex(")") + 2:].split()
                        out[t] = int(f[11]) + int(f[12])
                    except (OSError, ValueError):
                        pass
            except OSError:
                pass
        return out

    def start(self):
        self.t0 = time.monotonic()
        self.m0 = machine_cpu()
        self.th0 = self._threads()
        self.s0 = proc_cpu(self.server_pid) if self.server_pid else 0.0
        self.p0 = self._pg()
        self.c0 = child_cpu_seconds()

    def stop(self):
        wall = time.monotonic() - self.t0
        m1 = machine_cpu()
        busy = (m1[0] - self.m0[0]) / CLK_TCK
        total = (m1[1] - self.m0[1]) / CLK_TCK
        server = (proc_cpu(self.server_pid) - self.s0) if self.server_pid else 0.0
        pg = self._pg() - self.p0
        loadgen = child_cpu_seconds() - self.c0
        # Server threads that did work: a connection stays on the worker
        # the listener gave it, so this shows how many workers actually
        # served the run's connections.
        th1 = self._threads()
        deltas = sorted((th1[t] - self.th0.get(t, 0) for t in th1), reverse=True)
        top = deltas[0] if deltas else 0
        used = sum(1 for d in deltas if top and d >= max(2, 0.1 * top))
        return {
            "threads_used": used,
            "busiest_thread_share": (top / sum(deltas)) if deltas and sum(deltas) else 0,
            "wall_s": wall,
            "cpus": total / wall if wall > 0 else 0,
            "busy_s": busy,
            "total_s": total,
            "server_s": server,
            "postgres_s": pg,
            "loadgen_s": loadgen,
            "other_s": max(0.0, busy - server - pg - loadgen),
        }


# ---------------------------------------------------------------- environment

def facts(binary, sock):
    f = {}
    model = "?"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    f["cpu"] = model
    f["cores"] = os.cpu_count()
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal"):
                f["memory"] = "%.1f GiB" % (int(line.split()[1]) / 1048576)
    f["kernel"] = platform.release()
    try:
        with open("/etc/debian_version") as fh:
            f["os"] = "Debian " + fh.read().strip()
    except OSError:
        f["os"] = platform.platform()
    f["wrk"] = run(["wrk", "-v"], check=False).stdout.splitlines()[0].split(" [")[0]
    f["pgbench"] = run(["pgbench", "--version"]).stdout.strip()
    f["tekup"] = run([binary, "--version"]).stdout.strip()
    with psycopg2.connect(host=sock, dbname="tekup", user="tekup_owner") as c:
        with c.cursor() as cur:
            cur.execute("SELECT version()")
            f["postgresql"] = cur.fetchone()[0].split(" on ")[0]
            cur.execute("SELECT name, setting, unit FROM pg_settings WHERE name IN "
                        "('shared_buffers','max_connections','synchronous_commit','fsync',"
                        "'work_mem','jit') ORDER BY name")
            f["pg_settings"] = ", ".join("%s=%s%s" % (n, s, u or "") for n, s, u in cur.fetchall())
    c.close()
    f["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    f["loadavg_start"] = open("/proc/loadavg").read().split()[:3]
    return f


def isolate_database(postmaster):
    """Pins the cluster (the postmaster and its processes; backends forked
    later inherit the mask) to the first half of the CPUs, and this harness to
    the rest, so everything it starts (server, wrk, pgbench) runs there: the
    database gets the same CPUs on both sides of every comparison, and the
    server's and load generators' CPU no longer comes out of its share."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise Failure("--isolate-db needs at least 2 CPUs")
    half = len(cpus) // 2
    db_cpus, rest = set(cpus[:half]), set(cpus[half:])
    pids = [postmaster] + sorted(rls_cost.children(postmaster))
    for pid in pids:
        os.sched_setaffinity(pid, db_cpus)
    os.sched_setaffinity(0, rest)
    return ("PostgreSQL (%d processes at start, and every backend after) on CPU %s; "
            "the server, wrk and pgbench on CPU %s" % (
                len(pids), ",".join(map(str, sorted(db_cpus))),
                ",".join(map(str, sorted(rest)))))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- cluster

class Cluster:
    def __init__(self, binary, data_dir):
        self.binary = binary
        self.data_dir = data_dir
        self.sock = None
        self.started = False

    def tekup(self, *args, check=True):
        env = dict(os.environ)
        for k in ("DATABASE_URL", "DATABASE_ADMIN_URL", "TEKUP_DATA_DIR"):
            env.pop(k, None)
        return run([self.binary] + list(args) + ["--data-dir", self.data_dir], check=check,
                   env=env)

    def fresh(self):
        if os.path.exists(self.data_dir):
            self.tekup("db", "stop", check=False)
            shutil.rmtree(self.data_dir)
        r = self.tekup("db", "start")
        self.started = True
        m = re.search(r"host=(\S+)", r.stdout)
        if not m:
            raise Failure("cannot find the socket directory in: " + r.stdout)
        self.sock = m.group(1)
        self.tekup("migrate")

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.data_dir, "pgdata", "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def stop(self):
        if self.started:
            self.tekup("db", "stop", check=False)
            self.started = False

    def connect(self, user="tekup_owner"):
        c = psycopg2.connect(host=self.sock, dbname="tekup", user=user)
        c.autocommit = True
        return c

    def psql(self, *args, user="tekup_owner", db="tekup"):
        return run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.sock, "-U", user,
                    "-d", db] + list(args))

    def count_leads(self):
        c = self.connect()
        try:
            cur = c.cursor()
            cur.execute("SELECT count(*) FROM leads")
            return cur.fetchone()[0]
        finally:
            c.close()

    def delete_created_rows(self):
        """Removes the leads W3 created (the seed's are all older than BASE_TS)."""
        c = self.connect()
        try:
            cur = c.cursor()
            cur.execute("DELETE FROM leads WHERE created_at > %s", (BASE_TS,))
            n = cur.rowcount
            cur.execute("VACUUM (ANALYZE) leads")
            return n
        finally:
            c.close()

    def checkpoint(self):
        self.psql("-c", "CHECKPOINT", user="postgres", db="postgres")


# ---------------------------------------------------------------- server

class Server:
    def __init__(self, binary, data_dir, port, threads, pool, log_path):
        self.cmd = [binary, "serve", "--data-dir", data_dir, "--no-demo", "--no-migrate",
                    "--port", str(port), "--threads", str(threads), "--pool-size", str(pool)]
        self.port = port
        self.log_path = log_path
        self.proc = None

    def start(self):
        env = dict(os.environ)
        for k in ("DATABASE_URL", "DATABASE_ADMIN_URL"):
            env.pop(k, None)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failure("the server exited at start (status %d); see %s"
                              % (self.proc.returncode, self.log_path))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise Failure("the server did not start listening within 20 s")

    def vm(self, field):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])  # kB
        except OSError:
            pass
        return None

    def check_alive(self, when):
        rc = self.proc.poll()
        if rc is not None:
            raise Failure("the server exited %s with status %d%s (its stderr: %s)" % (
                when, rc, " (signal %d)" % -rc if rc < 0 else "", self.log_path))

    def stop(self):
        """SIGTERM; returns the exit status, or a note if it was already gone."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self.log.close()
            return "already exited with %d" % self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        return rc


def http(port, method, path, key, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,
                                 method=method)
    req.add_header("X-Tenant-Key", key)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


# ---------------------------------------------------------------- SQL for pgbench

def tekup_sql(binary, *args):
    return json.loads(run([binary, "sql"] + list(args)).stdout)


def sql_literal(v):
    if v is None:
        return "NULL"
    return "'" + str(v).replace("'", "''") + "'"


def substitute(sql, values):
    """Replaces $n by values[n] (SQL text); every $n must be covered."""
    def repl(m):
        n = int(m.group(1))
        if n not in values:
            raise Failure("statement has $%d with no value: %s" % (n, sql))
        return values[n]
    return re.sub(r"\$(\d+)", repl, sql)


def escape_colons(sql):
    """pgbench takes every ':name' in a command as a variable, even inside a
    string literal (e.g. to_char's 'HH24:MI:SS').  Rewrite literals holding a
    ':' as E'' literals with \\x3a: the same string for PostgreSQL."""
    out = []
    i = 0
    while i < len(sql):
        ch = sql[i]
        if ch != "'":
            out.append(ch)
            i += 1
            continue
        j = i + 1
        buf = []
        while True:
            if j >= len(sql):
                raise Failure("unterminated literal in: " + sql)
            if sql[j] == "'":
                if j + 1 < len(sql) and sql[j + 1] == "'":
                    buf.append("'")
                    j += 2
                    continue
                break
            buf.append(sql[j])
            j += 1
        text = "".join(buf)
        prev = sql[i - 1] if i > 0 else " "
        if ":" in text and prev not in "Ee":
            esc = text.replace("\\", "\\\\").replace("'", "\\'").replace(":", "\\x3a")
            out.append("E'" + esc + "'")
        else:
            out.append("'" + text.replace("'", "''") + "'")
        i = j + 1
    return "".join(out)


VAR_RE = re.compile(r"(?<!:):([A-Za-z0-9_]+)")


def check_variables(sql, allowed):
    # "::type" casts are not variables; pgbench skips runs of colons.
    found = {m.group(1) for m in VAR_RE.finditer(sql.replace("::", "  "))}
    if not found <= set(allowed):
        raise Failure("pgbench would read variables %s in: %s" % (sorted(found - set(allowed)),
                                                                    sql))


# The tenant in a statement: an expression of the per-script variable n, so
# that, like the server's $1, it is a parameter to the planner (a literal
# would let PostgreSQL plan for that one tenant; the server's generic plans
# cannot).  SET LOCAL, which takes no parameter, has the literal.
TENANT_EXPR = "('b0000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid"
# The server's pooled sessions (src/db/pool.c) use these; pgbench sessions
# get the same, so both run the same plans.
SERVER_SESSION_OPTIONS = "-c plan_cache_mode=force_generic_plan -c jit=off -c TimeZone=UTC"


def build_statements(binary, cursors):
    """Per workload: (meta lines, statement, variables it uses, -D definitions).

    The statement is exactly what `tekup sql` prints for the endpoint, with
    each $n replaced by a pgbench variable (sent as a bind parameter, like the
    server's), by an expression of a random variable (lead id, cursor
    position) or by NULL where the server binds NULL."""
    out = {}

    def params_to_vars(st, special):
        vals, defines = {1: TENANT_EXPR}, {}
        for i, v in enumerate(st["params"][1:], start=2):
            if i in special:
                vals[i] = special[i]
            elif v is None:
                vals[i] = "NULL"
            else:
                vals[i] = ":p%d" % i
                defines["p%d" % i] = v
        return substitute(st["sql"], vals), defines

    st = tekup_sql(binary, "get")
    if len(st["params"]) != 1:
        raise Failure("expected only the tenant parameter: %s" % st)
    st["params"].append(None)  # $2, the lead id
    sql, d = params_to_vars(st, {2: "(lpad(to_hex(:n::int), 8, '0') || '-0000-4000-8000-' || "
                                    "lpad(:k::text, 12, '0'))::uuid"})
    sql = sql.replace(":n::text", ":n::int::text")  # one type per variable
    out["W1"] = (["\\set k random(1, %d)" % SMALL_LEADS], sql, ["n", "k"], d)

    st = tekup_sql(binary, "list", W2_QUERY)
    sql, d = params_to_vars(st, {})
    out["W2"] = ([], sql, ["n"] + sorted(d), d)

    st = tekup_sql(binary, "create")
    if len(st["params"]) != 1:
        raise Failure("expected only the tenant parameter: %s" % st)
    st["params"] += W3_PARAMS
    sql, d = params_to_vars(st, {})
    out["W3"] = ([], sql, ["n"] + sorted(d), d)

    st = tekup_sql(binary, "stats")
    if len(st["params"]) != 1:
        raise Failure("expected only the tenant parameter: %s" % st)
    sql, d = params_to_vars(st, {})
    out["W4"] = ([], sql, ["n"], d)

    # W5: the statement of a real cursor; its key and id become expressions of
    # the position k that reproduce the seed's created_at and id exactly.
    k0 = CURSOR_POSITIONS[0]
    st = tekup_sql(binary, "list", "cursor=%s&limit=20" % cursors[k0])
    special = {}
    us_per_lead = 31536000000000 // BIG_LEADS
    for i, v in enumerate(st["params"][1:], start=2):
        if v == created_at_text(BIG_TENANT, k0):
            special[i] = ("(timestamptz %s - (:k::bigint * %d + (:k::bigint * 7919) %% 1000000)"
                          " * interval '1 microsecond')" % (sql_literal(BASE_TS), us_per_lead))
        elif v == lead_id(BIG_TENANT, k0):
            special[i] = ("(%s || lpad(:k::bigint::text, 12, '0'))::uuid"
                          % sql_literal(lead_prefix(BIG_TENANT) + "-0000-4000-8000-"))
    if len(st["params"]) != 4 or len(special) != 2:
        raise Failure("unexpected cursor statement parameters: %s" % st["params"])
    sql, d = params_to_vars(st, special)
    out["W5"] = (["\\set i random(0, %d)" % (CURSOR_COUNT - 1),
                  "\\set k %d + :i * %d" % (CURSOR_FIRST, CURSOR_STEP)],
                 sql, ["n", "k"] + sorted(d), d)
    return out


def bind_vars(sql, values):
    """Replaces pgbench :variables by SQL literals (for running a script's
    statement once outside pgbench)."""
    def repl(m):
        name = m.group(1)
        if name not in values:
            raise Failure("no value for :%s" % name)
        v = values[name]
        return str(v) if isinstance(v, int) else sql_literal(v)
    return re.sub(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)", repl, sql)


def created_at_text(n, k):
    """The seed's created_at of lead k of tenant n, as the API prints it."""
    nleads = BIG_LEADS if n == BIG_TENANT else SMALL_LEADS
    base = datetime.datetime(2026, 7, 1, tzinfo=datetime.timezone.utc)
    us = k * (31536000000000 // nleads) + (k * 7919) % 1000000
    t = base - datetime.timedelta(microseconds=us)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def collect_cursors(port):
    """{position k: the server's nextCursor after lead k} for CURSOR_POSITIONS,
    by walking the big tenant from the first page; checks the seed's order
    (lead k is the k-th newest) on the way."""
    want = set(CURSOR_POSITIONS)
    out = {}
    cursor, pos = "", 0
    key = api_key(BIG_TENANT)
    while len(out) < len(want):
        st, body = http(port, "GET", "/v1/leads?cursor=%s&limit=%d&fields=id"
                        % (cursor, CURSOR_WALK_LIMIT), key)
        if st != 200:
            raise Failure("walking the cursor pages: HTTP %d %s" % (st, body[:200]))
        page = json.loads(body)
        pos += len(page["data"])
        if page["data"][-1]["id"] != lead_id(BIG_TENANT, pos) or not page["nextCursor"]:
            raise Failure("the 100,000-lead tenant is not in seed order at position %d" % pos)
        cursor = page["nextCursor"]
        if pos in want:
            out[pos] = cursor
    return out


def write_pgbench_scripts(work, statements, set_local_files):
    """Returns {(workload, plain|pipeline): [script files]}.

    Default: one script per workload; the tenant is \\set n random(1, 100)
    (W5: 101) and the transaction sets it with
        SELECT set_config('app.current_tenant', '<tenant>', true)
    which is what SET LOCAL does, but takes a parameter.  With
    set_local_files: one script per tenant with the server's literal
        SET LOCAL app.current_tenant = '<tenant>';
    (-f file@1 each, pgbench picks one per transaction).  Same work in steady
    state, but every client then prepares and plans each of the 100 scripts'
    statements the first time it picks it: at 64 clients that takes 10-20 s
    to settle, where the server has one statement per pooled connection."""
    d = os.path.join(work, "pgbench")
    os.makedirs(d, exist_ok=True)
    files = {}

    def write(name, lines):
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    for w, (meta, stmt, variables, defines) in statements.items():
        sql = escape_colons(stmt)
        check_variables(sql, variables)
        for mode in ("plain", "pipeline"):
            def wrap(set_tenant):
                body = ["BEGIN;", set_tenant, sql + ";", "COMMIT;"]
                if mode == "pipeline":
                    body = ["\\startpipeline"] + body + ["\\endpipeline"]
                return body
            if set_local_files:
                tenants = [BIG_TENANT] if w == "W5" else range(1, SMALL_TENANTS + 1)
                files[(w, mode)] = [
                    write("%s-%s-%03d.sql" % (w.lower(), mode, n),
                          ["\\set n %d" % n] + meta + wrap(
                              "SET LOCAL app.current_tenant = '%s';" % tenant_id(n)))
                    for n in tenants]
            else:
                pick = ("\\set n %d" % BIG_TENANT if w == "W5"
                        else "\\set n random(1, %d)" % SMALL_TENANTS)
                files[(w, mode)] = [write("%s-%s.sql" % (w.lower(), mode), [pick] + meta + wrap(
                    "SELECT set_config('app.current_tenant', 'b0000000-0000-4000-8000-' || "
                    "lpad(:n::text, 12, '0'), true);"))]
    return files


def write_lua_data(work, cursors):
    path = os.path.join(work, "data.lua")

    def s(v):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    lines = ["return {"]
    lines.append("  keys = {" + ", ".join(s(api_key(n)) for n in range(1, SMALL_TENANTS + 1))
                 + "},")
    lines.append("  prefixes = {" + ", ".join(s(lead_prefix(n))
                                              for n in range(1, SMALL_TENANTS + 1)) + "},")
    lines.append("  lead_count = %d," % SMALL_LEADS)
    lines.append("  big_key = %s," % s(api_key(BIG_TENANT)))
    lines.append("  cursors = {" + ", ".join(s(cursors[k]) for k in CURSOR_POSITIONS) + "},")
    lines.append("  w3_body = %s," % s(json.dumps(W3_BODY, separators=(",", ":"))))
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------- checks before load

def equivalence_checks(cluster, port, statements, cursors, checks):
    """The pgbench statement, run once as the request role, must return what
    the server answers for the same tenant and lead: the benchmark compares
    like with like."""
    def db_value(w, n, k):
        meta, stmt, variables, defines = statements[w]
        values = dict(defines, n=n)
        if k is not None:
            values["k"] = k
        sql = bind_vars(escape_colons(stmt), values)
        c = cluster.connect("tekup_app")
        c.autocommit = False
        try:
            cur = c.cursor()
            cur.execute("SET LOCAL app.current_tenant = '%s'" % tenant_id(n))
            cur.execute(sql)
            row = cur.fetchone()
            c.rollback()
            return row
        finally:
            c.close()

    n, k = 7, 537
    st, body = http(port, "GET", "/v1/leads/" + lead_id(n, k), api_key(n))
    row = db_value("W1", n, k)
    checks.append(("W1 pgbench statement returns the server's answer",
                   st == 200 and row is not None and json.loads(body) == json.loads(row[2]),
                   "HTTP %d" % st))

    st, body = http(port, "GET", "/v1/leads?" + W2_QUERY, api_key(n))
    row = db_value("W2", n, None)
    checks.append(("W2 pgbench statement returns the server's answer",
                   st == 200 and json.loads(body) == json.loads(row[0]), "HTTP %d" % st))

    st, body = http(port, "GET", "/v1/leads/stats", api_key(n))
    row = db_value("W4", n, None)
    ok = st == 200
    if ok:
        a, b = json.loads(body), json.loads(row[0])
        ok = a["totalLeads"] == b["totalLeads"] and all(
            a["byStatus"][s]["count"] == b["byStatus"][s]["count"]
            and abs(a["byStatus"][s]["avgDaysInStatus"] - b["byStatus"][s]["avgDaysInStatus"])
            <= 0.11 for s in a["byStatus"])
    checks.append(("W4 pgbench statement returns the server's answer", ok, "HTTP %d" % st))

    k5 = CURSOR_POSITIONS[len(CURSOR_POSITIONS) // 2]
    st, body = http(port, "GET", "/v1/leads?cursor=%s&limit=20" % cursors[k5],
                    api_key(BIG_TENANT))
    row = db_value("W5", BIG_TENANT, k5)
    ok = st == 200
    if ok:
        data = json.loads(body)["data"]
        ok = (data == json.loads(row[0]) and len(data) == 20
              and data[0]["id"] == lead_id(BIG_TENANT, k5 + 1))
    checks.append(("W5 pgbench statement returns the server's answer (page after lead %d)" % k5,
                   ok, "HTTP %d" % st))

    before = cluster.count_leads()
    st, body = http(port, "POST", "/v1/leads", api_key(n), W3_BODY)
    after = cluster.count_leads()
    ok = st == 201 and after == before + 1
    if ok:
        got = json.loads(body)
        ok = all(got[f] == W3_BODY[f] for f in W3_BODY) and got["status"] == "NEW"
    checks.append(("W3 POST creates exactly one lead with the pgbench values", ok,
                   "HTTP %d" % st))


# ---------------------------------------------------------------- wrk

def run_wrk(port, w, conns, seconds, grace, data_path, meter):
    script = os.path.join(LUA_DIR, w.lower() + ".lua")
    cmd = ["wrk", "-t2", "-c%d" % conns, "-d%ds" % (seconds + grace), "--timeout", "10s",
           "-s", script, "http://127.0.0.1:%d" % port, "--", data_path, str(seconds)]
    meter.start()
    r = run(cmd, check=False)
    cpu = meter.stop()
    m = re.search(r"^BENCHJSON (\{.*\})$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        raise Failure("wrk failed (%d): %s\n%s" % (r.returncode, r.stdout, r.stderr))
    res = json.loads(m.group(1))
    res["rps"] = res["n"] / seconds
    res["non2xx"] = res["n"] - res["n2xx"]
    res["socket_errors"] = (res["err_connect"] + res["err_read"] + res["err_write"]
                            + res["err_timeout"])
    res["cpu"] = cpu
    return res


# ---------------------------------------------------------------- pgbench

def pgbench_warmup(args, conns):
    """With one script per tenant pgbench needs longer to settle with many
    clients: every client prepares and plans the statements of each script
    the first time it picks it (64 clients x 100 scripts)."""
    if not args.pgbench_set_local:
        return args.warmup
    return args.warmup * max(1, conns // 16)


def run_pgbench(cluster, work, tag, files, defines, conns, warmup, seconds, user, meter):
    logdir = os.path.join(work, "pgbench-logs")
    os.makedirs(logdir, exist_ok=True)
    prefix = os.path.join(logdir, tag)
    for old in glob.glob(prefix + ".*"):
        os.remove(old)
    cmd = ["pgbench", "-n", "-M", "prepared", "-h", cluster.sock, "-U", user,
           "-c", str(conns), "-j", "2", "-T", str(warmup + seconds), "-l",
           "--log-prefix", prefix]
    for name, value in sorted(defines.items()):
        cmd += ["-D", "%s=%s" % (name, value)]
    for f in files:
        cmd += ["-f", f + "@1"]
    cmd.append("tekup")
    env = dict(os.environ)
    # The server's session settings: the same (generic) plans on both sides.
    env["PGOPTIONS"] = SERVER_SESSION_OPTIONS
    time.sleep(0.5)  # let the previous run's backends exit (CPU accounting)
    meter.start()
    r = run(cmd, check=False, env=env)
    time.sleep(0.5)  # this run's backends exit and are reaped by the postmaster
    cpu = meter.stop()
    out = r.stdout + r.stderr

    def grab(pattern, conv=float):
        m = re.search(pattern, out, re.M)
        return conv(m.group(1)) if m else None
    res = {
        "returncode": r.returncode,
        "processed": grab(r"number of transactions actually processed: (\d+)", int),
        "failed": grab(r"number of failed transactions: (\d+)", int) or 0,
        "tps_total": grab(r"tps = ([\d.]+)"),
        "aborted": "aborted" in out or r.returncode != 0,
        "cpu": cpu,
    }
    if res["aborted"]:
        res["output"] = out[-2000:]
    # Per-transaction log: client txno latency_us script epoch_s epoch_us [lag]
    ends, lats = [], []
    for path in glob.glob(prefix + ".*"):
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) < 6 or not p[2].isdigit():
                    continue  # failed/skipped transactions
                lat = int(p[2])
                end = int(p[4]) * 1000000 + int(p[5])
                ends.append(end)
                lats.append((end, lat))
        os.remove(path)
    if not lats:
        res.update(tps=0, p50_us=None, p99_us=None, logged=0)
        return res
    t0 = min(e - lat for e, lat in lats)
    lo, hi = t0 + warmup * 1000000, t0 + (warmup + seconds) * 1000000
    window = sorted(lat for e, lat in lats if lo <= e < hi)
    res["logged"] = len(lats)
    res["tps"] = len(window) / seconds
    res["p50_us"] = pct(window, 50)
    res["p99_us"] = pct(window, 99)
    return res


def pct(sorted_values, p):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values))) - 1))
    return sorted_values[i]


# ---------------------------------------------------------------- report

def ms(us):
    return "—" if us is None else "%.2f" % (us / 1000.0)


def num(v, fmt="%.0f"):
    return "—" if v is None else fmt % v


def ratio(a, b, fmt="%.2f"):
    if a is None or b is None or b == 0:
        return "—"
    return fmt % (a / b)


def profile_section(L, profile):
    L.append("### Profile of the server")
    L.append("")
    if not profile or profile.get("error"):
        L.append("Not profiled: %s." % ((profile or {}).get("error") or "no W1 run"))
        L.append("")
        return
    L.append("`perf record -F 999 -g` on the tekup process during an extra %d s W1 run at %d "
             "connections (after the measured runs; %d requests): where tekup's own CPU goes. "
             "*kernel* is the socket work of the HTTP and PostgreSQL connections and waking "
             "the peers (wrk, the backends), which no user-space change removes short of fewer "
             "round trips." % (profile["seconds"], profile["conns"], profile["requests"]))
    L.append("")
    L.append("| where | share of tekup's samples |")
    L.append("|---|--:|")
    for name, pct in profile["dso"][:8]:
        L.append("| %s | %.1f%% |" % (name, pct))
    L.append("")
    L.append("Top user-space symbols:")
    L.append("")
    L.append("| symbol | library | share |")
    L.append("|---|---|--:|")
    for sym, dso, pct in profile["symbols"][:15]:
        L.append("| `%s` | %s | %.1f%% |" % (sym, dso, pct))
    L.append("")


def perf_profile(port, conns, seconds, grace, data_path, pid, work):
    """An extra W1 run with perf sampling the server; {"error": why} when perf
    is missing or not permitted."""
    perf = shutil.which("perf")
    if perf is None:
        return {"error": "perf is not installed (Debian package linux-perf)"}
    out = os.path.join(work, "perf.data")
    rec = subprocess.Popen([perf, "record", "-q", "-F", "999", "-g", "-p", str(pid), "-o", out,
                            "--", "sleep", str(max(1, seconds - 1))],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        r = run_wrk(port, "W1", conns, seconds, grace, data_path, CpuMeter(None, None))
    finally:
        _, err = rec.communicate(timeout=seconds + 30)
    if rec.returncode != 0 or not os.path.exists(out):
        return {"error": "perf record failed: %s" % err.decode(errors="replace").strip()[:200]}

    def table(sort_key):
        rr = run([perf, "report", "-i", out, "--stdio", "--no-children", "-g", "none",
                  "--sort", sort_key], check=False)
        rows = []
        for line in rr.stdout.splitlines():
            m = re.match(r"^\s+([\d.]+)%\s+(.*\S)\s*$", line)
            if m:
                rows.append((float(m.group(1)), m.group(2)))
        return rows
    dso = [(name.strip("[]"), pct) for pct, name in table("dso")]
    symbols = []
    for pct, rest in table("dso,sym"):
        m = re.match(r"^(\S+)\s+\[([.k])\]\s+(.*)$", rest)
        if m and m.group(2) == ".":
            symbols.append((m.group(3), m.group(1), pct))
    return {"seconds": seconds, "conns": conns, "requests": r["n"], "dso": dso,
            "symbols": symbols}


def report(args, fx, results, rss, rls, checks, targets, started, wall, profile=None,
           db_cost=None):
    L = []
    L.append("# tekup benchmark results")
    L.append("")
    L.append("Generated by `bench/run.sh` (see `bench/README.md`). Re-running overwrites this file.")
    L.append("")
    L.append("## Machine and versions")
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    for k, label in [("date", "date"), ("cpu", "CPU"), ("cores", "cores"), ("memory", "memory"),
                     ("os", "OS"), ("kernel", "kernel"), ("postgresql", "PostgreSQL"),
                     ("pg_settings", "PostgreSQL settings"), ("wrk", "wrk"),
                     ("pgbench", "pgbench"), ("tekup", "tekup")]:
        L.append("| %s | %s |" % (label, fx.get(k, "?")))
    L.append("| server | `tekup serve --threads %d --pool-size %d`, access log to %s |"
             % (args.threads, args.pool_size, args.server_log or "/dev/null"))
    L.append("| load | wrk -t2 and pgbench -j2 on the same machine as the server and PostgreSQL |")
    L.append("| CPU placement | %s |" % (getattr(args, "placement", None) or
                                       "shared: every process may run on every CPU"))
    L.append("| durations | per workload and connection count: a %d s wrk warm-up run, then "
             "%d rounds of (wrk %d s, pgbench pipelined %d s after %s s discarded), then one "
             "pgbench plain run (%s s discarded, %d s measured) |" % (
                 args.warmup, args.rounds, args.duration, args.duration,
                 " / ".join("%d (%d clients)" % (max(2, pgbench_warmup(args, c) // 2), c)
                            for c in args.conns),
                 " / ".join("%d" % pgbench_warmup(args, c) for c in args.conns),
                 args.duration))
    L.append("| pgbench scripts | %s; bind parameters as the server binds them; sessions with "
             "the server's settings (`%s`) |" % (
                 "one per tenant, literal `SET LOCAL app.current_tenant`"
                 if args.pgbench_set_local else
                 "one per workload, tenant = `\\set n random(1, 100)` set with "
                 "`set_config('app.current_tenant', …, true)` (= SET LOCAL)",
                 SERVER_SESSION_OPTIONS))
    L.append("| load average | %s at start, %s at end (includes the benchmark's own "
             "processes) |" % (" ".join(fx["loadavg_start"]), " ".join(fx["loadavg_end"])))
    L.append("| harness run time | %.1f min |" % (wall / 60))
    L.append("")
    L.append("Other sessions may be using the CPU at the same time as this run (a shared "
             "2-core VM): the *others* column of the CPU table below shows how much CPU was "
             "used by processes that are not part of the benchmark. Treat differences of "
             "a few percent as noise.")
    L.append("")
    L.append("## Throughput and latency")
    L.append("")
    L.append("server = wrk against `tekup serve`; plain / pipelined = pgbench -M prepared running "
             "the endpoint's exact statement in BEGIN; <set tenant>; …; COMMIT (one round trip per "
             "statement, or the whole transaction in one pipeline). Latencies in ms. "
             "server and pipelined are the median runs of %d alternating rounds (the machine's "
             "speed drifts by tens of percent within minutes; the rounds are listed below); "
             "non-2xx is summed over the rounds. Ratios: server req/s ÷ pipelined tps, and "
             "server p99 ÷ pipelined p99." % args.rounds)
    L.append("")
    L.append("| workload | conns | server req/s | p50 | p99 | non-2xx | plain tps | p50 | p99 "
             "| pipelined tps | p50 | p99 | req/s ÷ limit | p99 ÷ p99 |")
    L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for w in sorted(results):
        for c in args.conns:
            r = results[w].get(c)
            if not r:
                continue
            s, pl, pp = r.get("server"), r.get("plain"), r.get("pipeline")
            L.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                w, c,
                num(s and s["rps"]), ms(s and s["lat_p50_us"]), ms(s and s["lat_p99_us"]),
                num(sum(x["non2xx"] for x in r.get("server_runs", [])) if s else None, "%d"),
                num(pl and pl["tps"]), ms(pl and pl["p50_us"]), ms(pl and pl["p99_us"]),
                num(pp and pp["tps"]), ms(pp and pp["p50_us"]), ms(pp and pp["p99_us"]),
                ratio(s and s["rps"], pp and pp["tps"]),
                ratio(s and s["lat_p99_us"], pp and pp["p99_us"])))
    L.append("")
    for w in sorted(WORKLOADS):
        L.append("- **%s** `%s`" % (w, WORKLOADS[w]))
    L.append("")
    L.append("Rounds (server req/s / pipelined tps, in the order run):")
    L.append("")
    L.append("| workload | conns | rounds |")
    L.append("|---|--:|---|")
    for w in sorted(results):
        for c in args.conns:
            r = results[w].get(c) or {}
            pairs = []
            for i, sv in enumerate(r.get("server_runs", [])):
                pr = r.get("pipeline_runs", [])
                pairs.append("%s / %s" % (num(sv["rps"]),
                                          num(pr[i]["tps"]) if i < len(pr) else "—"))
            L.append("| %s | %d | %s |" % (w, c, "; ".join(pairs)))
    L.append("")
    L.append("## Server memory")
    L.append("")
    L.append("| after | VmHWM (peak RSS) | VmRSS |")
    L.append("|---|--:|--:|")
    for label, hwm, cur in rss:
        L.append("| %s | %s | %s |" % (label, "%.1f MiB" % (hwm / 1024) if hwm else "?",
                                       "%.1f MiB" % (cur / 1024) if cur else "?"))
    L.append("")
    L.append("## Cost of RLS")
    L.append("")
    counted = {w: rls[w]["instructions"] for w in sorted(rls) if rls[w].get("instructions")}
    if counted:
        L.append("Counted, not timed (bench/rls_cost.py): instructions the PostgreSQL backend "
                 "executes per transaction of the pipelined W1/W2 script, one client, under "
                 "callgrind; the marginal cost between a short and a long run, so connection "
                 "start-up and planning cancel out. The same on every run, unlike tps on this "
                 "VM. User space only: the kernel's socket work is the same for both roles.")
        L.append("")
        L.append("| workload | as tekup_app (RLS on) | as tekup_owner (RLS off) | overhead |")
        L.append("|---|--:|--:|--:|")
        for w, c in counted.items():
            L.append("| %s | %s | %s | %s |" % (w, num(c["tekup_app"]), num(c["tekup_owner"]),
                                                num(instruction_overhead(c) * 100, "%+.1f%%")))
        L.append("")
        for w, c in counted.items():
            if c["top"]:
                L.append("%s, where the extra instructions go (per transaction, app − owner, "
                         "self cost): %s." % (w, "; ".join("%s %s" % (k, num(v))
                                                          for k, v in c["top"])))
                L.append("")
        L.append("What the W1 overhead is made of, and why it cannot reach 5% with PostgreSQL "
                 "15's RLS as tekup uses it: bench/README.md, \"The cost of RLS\".")
        L.append("")
        L.append("Timed:")
        L.append("")
    L.append("The W1 and W2 pgbench scripts, pipelined, %d clients, on the same data: as "
             "`tekup_app` (RLS policies applied) and as `tekup_owner` (BYPASSRLS: policies "
             "not applied), alternating, %d runs of %d s each (2 s discarded). Overhead = "
             "median owner tps ÷ median app tps − 1 (a single back-to-back pair on a shared "
             "VM differs by ±5%% from noise alone; the runs are listed to show the spread)."
             % (args.conns[0], args.rls_rounds, args.rls_seconds))
    L.append("")
    L.append("| workload | RLS on (tekup_app) median tps | p99 | RLS off (tekup_owner) median tps "
             "| p99 | overhead | app runs | owner runs |")
    L.append("|---|--:|--:|--:|--:|--:|---|---|")
    for w in sorted(rls):
        o = rls_overhead(rls[w])
        if o is None:
            L.append("| %s | — | — | — | — | — | | |" % w)
            continue
        on, off, ov = o
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            w, num(on["tps"]), ms(on["p99_us"]), num(off["tps"]), ms(off["p99_us"]),
            num(ov * 100, "%+.1f%%"),
            ", ".join(num(r["tps"]) for r in rls[w]["tekup_app"]),
            ", ".join(num(r["tps"]) for r in rls[w]["tekup_owner"])))
    L.append("")
    if db_cost:
        L.append("## PostgreSQL's work per transaction")
        L.append("")
        L.append("Instructions the backend executes per transaction of each workload's "
                 "pipelined pgbench script as tekup_app (the SQL the endpoint runs), counted "
                 "under callgrind like the cost of RLS above: deterministic, so a change in the "
                 "SQL or the schema shows here at once, whatever the VM's speed that day.")
        L.append("")
        L.append("| workload | instructions per transaction | where they go (self cost per "
                 "transaction) |")
        L.append("|---|--:|---|")
        for w in sorted(db_cost):
            c = db_cost[w]
            where = ("see the cost of RLS" if w in rls_cost.RLS_WORKLOADS else
                     "; ".join("%s %s" % (k, num(v)) for k, v in c["top"][:5]))
            L.append("| %s | %s | %s |" % (w, num(c["tekup_app"]), where))
        L.append("")
    L.append("## Where the CPU goes")
    L.append("")
    L.append("CPU time per request (µs) during each measured run (including its warm-up for "
             "pgbench), from /proc: the tekup process, all PostgreSQL processes of the "
             "benchmark cluster, the load generator (wrk or pgbench), and *others* = whole "
             "machine busy time minus those (other sessions on the VM). busy = share of "
             "the machine's %d CPUs in use. *tekup threads used* = server threads that did "
             "at least 10%% of the busiest thread's work. A connection stays on the worker "
             "the listener gave it to (the one with the fewest connections), and a worker "
             "runs one request's transaction at a time, so connections that share a worker "
             "wait for each other." % fx["cores"])
    L.append("")
    L.append("| workload | conns | run | req/s | busy | tekup µs/req | postgres µs/req "
             "| loadgen µs/req | others (CPU s) | tekup threads used |")
    L.append("|---|--:|---|--:|--:|--:|--:|--:|--:|--:|")
    for w in sorted(results):
        for c in args.conns:
            for kind in ("server", "plain", "pipeline"):
                r = results[w].get(c, {}).get(kind)
                if not r:
                    continue
                cpu = r["cpu"]
                n = r["n"] if kind == "server" else r.get("processed") or 0
                per = (lambda s: "%.0f" % (s / n * 1e6) if n else "—")
                L.append("| %s | %d | %s | %s | %.0f%% | %s | %s | %s | %.1f | %s |" % (
                    w, c, "wrk→tekup" if kind == "server" else "pgbench " + kind,
                    num(r["rps"] if kind == "server" else r["tps"]),
                    100 * cpu["busy_s"] / cpu["total_s"] if cpu["total_s"] else 0,
                    per(cpu["server_s"]) if kind == "server" else "—",
                    per(cpu["postgres_s"]), per(cpu["loadgen_s"]), cpu["other_s"],
                    "%d of %d" % (cpu["threads_used"], args.threads) if kind == "server"
                    else "—"))
    L.append("")
    profile_section(L, profile)
    L.append("### Where the remaining time goes")
    L.append("")
    if getattr(args, "placement", None):
        L.append("**This run isolated the database** (%s), so the *CPU model* column below, "
                 "which assumes every process shares every CPU, does not apply: here the "
                 "ratio is set by PostgreSQL's µs per request on its own CPU (compare the "
                 "first two columns)." % args.placement)
        L.append("")
    L.append("Both paths share the same %d CPUs with their load generator, so every µs of CPU "
             "that wrk and tekup spend per request is taken from PostgreSQL. *CPU model* = "
             "(postgres + pgbench µs per pipelined transaction) ÷ (postgres + tekup + wrk µs "
             "per request): the req/s ratio to expect if the machine is CPU-bound, which it is "
             "when busy is near 100%%. postgres µs/req higher behind the server than under "
             "pgbench means the server makes the database work harder per request (unnamed "
             "SET LOCAL is parsed each time, key lookups, …); lower tekup and wrk "
             "µs/req are the only other way up." % fx["cores"])
    L.append("")
    L.append("| workload | conns | postgres µs/req behind tekup | postgres µs/txn pgbench "
             "pipelined | tekup µs/req | wrk µs/req | pgbench µs/txn | CPU model | measured "
             "ratio |")
    L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for w in sorted(results):
        for c in args.conns:
            r = results[w].get(c, {})
            s, pp = r.get("server"), r.get("pipeline")
            if not s or not pp or not s["n"] or not pp.get("processed"):
                continue
            n, m = s["n"], pp["processed"]
            pg_s = s["cpu"]["postgres_s"] / n * 1e6
            tk = s["cpu"]["server_s"] / n * 1e6
            wk = s["cpu"]["loadgen_s"] / n * 1e6
            pg_p = pp["cpu"]["postgres_s"] / m * 1e6
            pb = pp["cpu"]["loadgen_s"] / m * 1e6
            L.append("| %s | %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.2f | %s |" % (
                w, c, pg_s, pg_p, tk, wk, pb, (pg_p + pb) / (pg_s + tk + wk),
                ratio(s["rps"], pp["tps"])))
    L.append("")
    L.append("## Targets (issue 3 §2)")
    L.append("")
    L.append("| target | measured | result |")
    L.append("|---|---|---|")
    for name, measured, ok in targets:
        L.append("| %s | %s | %s |" % (name, measured,
                                       "—" if ok is None else ("PASS" if ok else "**FAIL**")))
    L.append("")
    L.append("## Correctness checks (the harness exits non-zero if any fails)")
    L.append("")
    L.append("| check | result | detail |")
    L.append("|---|---|---|")
    for name, ok, detail in checks:
        L.append("| %s | %s | %s |" % (name, "ok" if ok else "**FAILED**", detail))
    L.append("")
    return "\n".join(L)


def compute_targets(args, results, rss, rls):
    t = []
    c16, c64 = 16, 64
    for w in ("W1", "W2", "W3"):
        r = results.get(w, {})
        s16 = r.get(c16, {}).get("server")
        p16 = r.get(c16, {}).get("pipeline")
        if s16 and p16:
            t.append(("%s at 16 conns: server req/s ≥ 0.8 × pipelined limit" % w,
                      "%.0f vs %.0f (%.2f×)" % (s16["rps"], p16["tps"], s16["rps"] / p16["tps"]),
                      s16["rps"] >= 0.8 * p16["tps"]))
        s64 = r.get(c64, {}).get("server")
        if s16 and s64:
            t.append(("%s at 64 conns no worse than at 16 (≥ 0.95× allowing for noise)" % w,
                      "%.0f vs %.0f (%.2f×)" % (s64["rps"], s16["rps"], s64["rps"] / s16["rps"]),
                      s64["rps"] >= 0.95 * s16["rps"]))
        for c in args.conns:
            s = r.get(c, {}).get("server")
            p = r.get(c, {}).get("pipeline")
            if s and p and p["p99_us"]:
                t.append(("%s at %d conns: p99 ≤ 3 × pgbench (pipelined) p99" % (w, c),
                          "%s ms vs %s ms (%.2f×)" % (ms(s["lat_p99_us"]), ms(p["p99_us"]),
                                                       s["lat_p99_us"] / p["p99_us"]),
                          s["lat_p99_us"] <= 3 * p["p99_us"]))
    if rss:
        hwm = max(h or 0 for _, h, _ in rss)
        t.append(("server peak RSS ≤ 64 MiB at 64 conns", "%.1f MiB" % (hwm / 1024),
                  hwm <= 64 * 1024))
    for w in sorted(rls):
        o = rls_overhead(rls[w])
        tps = ("tps medians of %d runs: %+.1f%%" % (len(rls[w]["tekup_app"]), o[2] * 100)
               if o else "no tps runs")
        counted = rls[w].get("instructions")
        if counted:
            ov = instruction_overhead(counted)
            t.append(("RLS overhead on %s ≤ 5%% (instructions per transaction)" % w,
                      "%+.1f%% (%s)" % (ov * 100, tps), ov <= 0.05))
        elif o:
            t.append(("RLS overhead on %s ≤ 5%% (tps)" % w, tps, o[2] <= 0.05))
    return t


def instruction_overhead(counted):
    return counted["tekup_app"] / counted["tekup_owner"] - 1


# ---------------------------------------------------------------- rounds

def median_by(runs, key):
    """The run with the median value of key (the lower middle for an even
    count)."""
    ordered = sorted(runs, key=lambda r: r[key] or 0)
    return ordered[(len(ordered) - 1) // 2]


def wrk_run(args, cluster, server, port, w, c, phase, secs, data_path, meter, raw, checks):
    before = cluster.count_leads() if w == "W3" else None
    r = run_wrk(port, w, c, secs, args.grace, data_path, meter)
    server.check_alive("during the %s wrk run (%d conns)" % (w, c))
    raw["runs"].append({"workload": w, "conns": c, "kind": "wrk " + phase, "result": r})
    label = "%s wrk %d conns %s" % (w, c, phase)
    if r["n5xx"] or r["socket_errors"]:
        checks.append(("%s: no 5xx, no socket errors" % label, False,
                       "5xx=%d socket errors=%d" % (r["n5xx"], r["socket_errors"])))
    if w == "W3":
        after = cluster.count_leads()
        checks.append(("%s: rows created == 201 responses" % label, after - before == r["n201"],
                       "%d rows, %d × 201" % (after - before, r["n201"])))
    return r


def pgbench_run(args, cluster, work, scripts, statements, w, mode, c, rnd, pg_meter, raw,
                checks):
    """One pgbench run as tekup_app; rnd is the round (None for a single run,
    which gets the full warm-up: the rounds follow a warmed-up server run)."""
    user = "tekup_app"
    before = cluster.count_leads() if w == "W3" else None
    tag = "%s-%s-c%d%s" % (w.lower(), mode, c, "" if rnd is None else "-r%d" % rnd)
    warm = pgbench_warmup(args, c) if rnd is None else max(2, pgbench_warmup(args, c) // 2)
    r = run_pgbench(cluster, work, tag, scripts[(w, mode)], statements[w][3], c, warm,
                    args.duration, user, pg_meter)
    raw["runs"].append({"workload": w, "conns": c, "kind": "pgbench %s %s%s" % (
        mode, user, "" if rnd is None else " round %d" % (rnd + 1)), "result": r})
    label = "%s pgbench %s %d clients%s" % (w, mode, c,
                                            "" if rnd is None else " round %d" % (rnd + 1))
    if r["aborted"] or r["failed"]:
        checks.append(("%s: no failed transactions" % label, False,
                       "failed=%s rc=%s %s" % (r["failed"], r["returncode"],
                                               r.get("output", "")[-300:])))
    if w == "W3":
        after = cluster.count_leads()
        checks.append(("%s: rows created == transactions" % label,
                       after - before == r["processed"],
                       "%d rows, %s transactions" % (after - before, r["processed"])))
    log("   %s pgbench %-8s %3d clients: %8.0f tps  p50 %6s  p99 %6s ms" % (
        "round %d" % (rnd + 1) if rnd is not None else "       ", mode, c, r["tps"],
        ms(r["p50_us"]), ms(r["p99_us"])))
    return r


# ---------------------------------------------------------------- RLS cost

def rls_rounds(args, cluster, work, order, scripts, statements, pg_meter, rls, checks, raw):
    """The W1/W2 pipelined scripts as tekup_app (RLS applied) and as
    tekup_owner (BYPASSRLS), alternating, args.rls_rounds times each: one
    back-to-back pair on a shared VM differs by +-5% from noise alone, so the
    medians of several interleaved runs are compared."""
    c = args.conns[0]
    for w in [w for w in ("W1", "W2") if w in order]:
        log("== cost of RLS on %s: %d rounds of tekup_app / tekup_owner, %d clients, %d s each"
            % (w, args.rls_rounds, c, args.rls_seconds))
        rls[w] = {"tekup_app": [], "tekup_owner": []}
        for rnd in range(args.rls_rounds):
            for user in ("tekup_app", "tekup_owner"):
                tag = "%s-rls-%d-%s" % (w.lower(), rnd, user)
                r = run_pgbench(cluster, work, tag, scripts[(w, "pipeline")], statements[w][3],
                                c, 2, args.rls_seconds, user, pg_meter)
                raw["runs"].append({"workload": w, "conns": c,
                                    "kind": "pgbench rls %s round %d" % (user, rnd),
                                    "result": r})
                if r["aborted"] or r["failed"]:
                    checks.append(("%s RLS round %d as %s: no failed transactions"
                                   % (w, rnd, user), False,
                                   "failed=%s rc=%s" % (r["failed"], r["returncode"])))
                    continue
                rls[w][user].append(r)
                log("   round %d %-11s: %8.0f tps  p99 %6s ms" % (rnd + 1, user, r["tps"],
                                                                 ms(r["p99_us"])))


def rls_overhead(sides):
    """(app median run, owner median run, overhead) or None."""
    if not sides["tekup_app"] or not sides["tekup_owner"]:
        return None
    on, off = median_by(sides["tekup_app"], "tps"), median_by(sides["tekup_owner"], "tps")
    if not on["tps"] or not off["tps"]:
        return None
    return on, off, off["tps"] / on["tps"] - 1


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description="tekup benchmark harness")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/release/tekup"))
    ap.add_argument("--dir", default="/tmp/tekup-bench",
                    help="work directory; the cluster lives in DIR/pg (wiped at start)")
    cores = os.cpu_count() or 2
    ap.add_argument("--threads", type=int, default=2 * cores,
                    help="tekup serve --threads (default 2 x cores; see README)")
    ap.add_argument("--pool-size", type=int, default=2 * cores,
                    help="tekup serve --pool-size (default 2 x cores; see README)")
    ap.add_argument("--conns", default="16,64", help="connection / client counts")
    ap.add_argument("--warmup", type=int, default=5, help="seconds of warm-up per run")
    ap.add_argument("--duration", type=int, default=10, help="measured seconds per run")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating server / pgbench-pipelined runs per workload and "
                         "connection count (medians are compared)")
    ap.add_argument("--grace", type=int, default=1,
                    help="seconds wrk keeps running after the send window")
    ap.add_argument("--workloads", default=",".join(sorted(WORKLOADS)))
    ap.add_argument("--no-pgbench", action="store_true", help="server runs only")
    ap.add_argument("--pgbench-set-local", action="store_true",
                    help="one pgbench script per tenant with a literal SET LOCAL (slow to "
                         "warm up at 64 clients) instead of one script with set_config()")
    ap.add_argument("--rls-rounds", type=int, default=3,
                    help="alternating tekup_app / tekup_owner pgbench runs per workload for "
                         "the cost of RLS (the median of each side is compared)")
    ap.add_argument("--rls-seconds", type=int, default=10,
                    help="measured seconds per RLS run")
    ap.add_argument("--isolate-db", action="store_true",
                    help="pin PostgreSQL to the first half of the CPUs and this harness, the "
                         "server, wrk and pgbench to the other half (see bench/README.md)")
    ap.add_argument("--no-callgrind", action="store_true",
                    help="skip counting instructions per transaction and the cost of RLS "
                         "(bench/rls_cost.py)")
    ap.add_argument("--no-profile", action="store_true",
                    help="skip the extra W1 run under perf (the profile in RESULTS.md)")
    ap.add_argument("--server-log", default=None,
                    help="file for the server's stderr (access log); default /dev/null")
    ap.add_argument("--results", default=os.path.join(BENCH, "RESULTS.md"))
    args = ap.parse_args()
    args.conns = [int(c) for c in args.conns.split(",")]
    wanted = [w.strip().upper() for w in args.workloads.split(",")]
    order = [w for w in RUN_ORDER if w in wanted]

    started = time.monotonic()
    stopping = {"sig": None}

    def on_signal(sig, frame):
        stopping["sig"] = sig
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_signal)

    os.makedirs(args.dir, exist_ok=True)
    os.chmod(args.dir, 0o755)  # the postgres user must be able to traverse it
    work = os.path.join(args.dir, "work")
    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(work)
    # A private copy of the binary and its migrations (found at ../sql/migrations
    # from the binary): others may rebuild build/release/tekup during the run.
    os.makedirs(os.path.join(work, "bin"))
    binary = os.path.join(work, "bin", "tekup")
    shutil.copy2(args.binary, binary)
    shutil.copytree(os.path.join(ROOT, "sql", "migrations"),
                    os.path.join(work, "sql", "migrations"))
    args.binary = binary
    cluster = Cluster(args.binary, os.path.join(args.dir, "pg"))
    server = None
    checks = []
    results = {w: {} for w in order}
    rss = []
    rls = {}
    profile = None
    db_cost = {}
    raw = {"args": vars(args), "runs": []}
    try:
        log("== fresh cluster in %s" % cluster.data_dir)
        cluster.fresh()
        if args.isolate_db:
            args.placement = isolate_database(cluster.postmaster_pid())
            log("   placement: %s" % args.placement)
        log("== seeding (bench/seed.sql)")
        t = time.monotonic()
        cluster.psql("-f", os.path.join(BENCH, "seed.sql"))
        c = cluster.connect()
        cur = c.cursor()
        cur.execute("SELECT count(*), count(DISTINCT tenant_id) FROM leads")
        nleads, ntenants = cur.fetchone()
        c.close()
        log("   %d leads in %d tenants (%.1f s)" % (nleads, ntenants, time.monotonic() - t))
        if nleads != SMALL_TENANTS * SMALL_LEADS + BIG_LEADS:
            raise Failure("the seed produced %d leads" % nleads)
        fx = facts(args.binary, cluster.sock)

        port = free_port()
        server = Server(args.binary, cluster.data_dir, port, args.threads, args.pool_size,
                        args.server_log or "/dev/null")
        log("== server on port %d (--threads %d --pool-size %d)" % (port, args.threads,
                                                                   args.pool_size))
        server.start()
        t = time.monotonic()
        cursors = collect_cursors(port)
        log("   %d cursors at positions %d..%d of the 100,000-lead tenant (%.1f s)"
            % (len(cursors), CURSOR_POSITIONS[0], CURSOR_POSITIONS[-1], time.monotonic() - t))
        statements = build_statements(args.binary, cursors)
        scripts = write_pgbench_scripts(work, statements, args.pgbench_set_local)
        data_path = write_lua_data(work, cursors)
        equivalence_checks(cluster, port, statements, cursors, checks)
        for name, ok, detail in checks:
            log("   %s: %s" % (name, "ok" if ok else "FAILED (%s)" % detail))
        if not all(ok for _, ok, _ in checks):
            raise Failure("the pgbench statements do not match the server")
        cluster.delete_created_rows()
        meter = CpuMeter(server.proc.pid, cluster.postmaster_pid())
        pg_meter = CpuMeter(None, cluster.postmaster_pid())

        for w in order:
            cluster.checkpoint()
            log("== %s  %s" % (w, WORKLOADS[w]))
            for c in args.conns:
                wrk_run(args, cluster, server, port, w, c, "warm-up", args.warmup, data_path,
                        meter, raw, checks)
                # The machine's speed drifts by tens of percent within minutes
                # (a shared VM), so the server and its limit are measured in
                # alternating rounds and their medians compared.
                rounds = {"server": [], "pipeline": []}
                for rnd in range(args.rounds):
                    r = wrk_run(args, cluster, server, port, w, c, "round %d" % (rnd + 1),
                                args.duration, data_path, meter, raw, checks)
                    rounds["server"].append(r)
                    log("   round %d server   %3d conns  : %8.0f req/s  p50 %6s  p99 %6s ms  "
                        "non-2xx %d  (tekup %.0f µs/req, busy %.0f%%)" % (
                            rnd + 1, c, r["rps"], ms(r["lat_p50_us"]), ms(r["lat_p99_us"]),
                            r["non2xx"], r["cpu"]["server_s"] / max(1, r["n"]) * 1e6,
                            100 * r["cpu"]["busy_s"] / max(1e-9, r["cpu"]["total_s"])))
                    if args.no_pgbench:
                        continue
                    r = pgbench_run(args, cluster, work, scripts, statements, w, "pipeline", c,
                                    rnd, pg_meter, raw, checks)
                    rounds["pipeline"].append(r)
                if c == max(args.conns):
                    rss.append(("%s, %d conns" % (w, c), server.vm("VmHWM"), server.vm("VmRSS")))
                res = results[w].setdefault(c, {})
                res["server_runs"] = rounds["server"]
                res["server"] = median_by(rounds["server"], "rps")
                if rounds["pipeline"]:
                    res["pipeline_runs"] = rounds["pipeline"]
                    res["pipeline"] = median_by(rounds["pipeline"], "tps")
                if not args.no_pgbench:
                    res["plain"] = pgbench_run(args, cluster, work, scripts, statements, w,
                                               "plain", c, None, pg_meter, raw, checks)
                server.check_alive("during %s at %d conns" % (w, c))
            if w == "W3":
                n = cluster.delete_created_rows()
                log("   deleted the %d leads W3 created" % n)

        if "W1" in order and not args.no_profile:
            log("== profile: W1 at %d conns with perf sampling the server" % args.conns[0])
            profile = perf_profile(port, args.conns[0], 10, args.grace, data_path,
                                   server.proc.pid, work)
            log("   %s" % (profile.get("error") or "%d requests profiled" % profile["requests"]))
            server.check_alive("during the profiling run")
        if not args.no_pgbench:
            rls_rounds(args, cluster, work, order, scripts, statements, pg_meter, rls, checks,
                       raw)

        rc = server.stop()
        log("== server stopped (exit status %s)" % rc)
        checks.append(("server exits cleanly on SIGTERM", rc == 0, "exit status %s" % rc))
        server = None
        if not args.no_pgbench and not args.no_callgrind:
            log("== instructions per transaction (and the cost of RLS): the cluster under "
                "callgrind, 1 client")
            db_cost = rls_cost.measure(cluster, work, scripts, statements, order,
                                       SERVER_SESSION_OPTIONS, log)
            for w, res in db_cost.items():
                if w in rls_cost.RLS_WORKLOADS:
                    rls.setdefault(w, {"tekup_app": [], "tekup_owner": []})["instructions"] = res
        if not any("5xx" in name for name, _, _ in checks):
            checks.append(("no 5xx and no socket errors in any wrk run (warm-ups included)", True,
                           "%d runs" % sum(1 for r in raw["runs"] if r["kind"].startswith("wrk"))))
        fx["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        targets = compute_targets(args, results, rss, rls)
        wall = time.monotonic() - started
        text = report(args, fx, results, rss, rls, checks, targets, started, wall, profile,
                      db_cost)
        with open(args.results, "w") as f:
            f.write(text)
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump(raw, f, indent=1, default=str)
        log("")
        log(text)
        log("wrote %s (raw numbers: %s)" % (args.results, os.path.join(work, "results.json")))
    except KeyboardInterrupt:
        log("interrupted")
        checks.append(("run completed", False, "interrupted"))
    except Failure as e:
        log("FAILED: %s" % e)
        checks.append(("run completed", False, str(e)[:200]))
    except Exception as e:  # a bug or an unexpected answer: still clean up
        import traceback
        traceback.print_exc()
        checks.append(("run completed", False, "%s: %s" % (type(e).__name__, e)))
    finally:
        if server is not None:
            server.stop()
        cluster.stop()
    failed = [name for name, ok, _ in checks if not ok]
    if failed:
        log("")
        log("%d check(s) failed:" % len(failed))
        for name in failed:
            log("  - " + name)
        return 1
    log("all checks passed (%.1f min)" % ((time.monotonic() - started) / 60))
    return 0


if __name__ == "__main__":
    sys.exit(main())
