"""bench/rls_cost.py - the cost of RLS counted in instructions (callgrind).

Throughput on the benchmark's shared 2-CPU VM drifts by tens of percent
within minutes: the same pgbench run as the owner gave 14,000 and 20,000 tps
a few minutes apart, and even two owner runs side by side differed by 34%.
A 5% cost cannot be read from that.  Instructions can: valgrind's callgrind
counts every instruction the PostgreSQL backend executes, the same number on
every run.

How: the benchmark cluster is restarted under `valgrind --tool=callgrind
--trace-children=yes` (each backend is a forked child, so each writes its own
count when it exits).  For each workload and role, pgbench runs the same
pipelined script as the throughput runs, with one client, first N1 and then
N2 transactions; (count(N2) - count(N1)) / (N2 - N1) is the backend's
instructions per transaction with connection start-up, catalog loading and
planning cancelled out.  It counts user-space instructions only: the kernel's
socket work is the same for both roles and is not in either number.

The read-only workloads of the RLS target (W1, W2) are measured as the
owner (policies not applied: BYPASSRLS) and as tekup_app (policies applied).
W3, W4 and W5 are counted as tekup_app only: the database's work per
transaction for every endpoint, a figure that does not drift with the VM and
so shows a change in the SQL at once (a function re-planned in every query
once cost W3 half its instructions; migration 0011).
"""

import glob
import os
import re
import signal
import subprocess
import time

PORT = 5432  # in a private socket directory, so it cannot collide
COUNTS = {"W1": (200, 1200), "W2": (100, 600), "W3": (100, 600), "W4": (20, 120),
          "W5": (100, 600)}
ROLES = ("tekup_app", "tekup_owner")
RLS_WORKLOADS = ("W1", "W2")  # counted as both roles; the others as tekup_app only


class CallgrindCluster:
    """The benchmark's data directory served by a postmaster under callgrind."""

    def __init__(self, pgdata, outdir, session_options):
        self.pgdata = pgdata
        self.outdir = outdir
        self.session_options = session_options  # the server's, as run.py's pgbench runs use
        self.proc = None

    def start(self, log):
        st = os.stat(self.pgdata)
        os.makedirs(self.outdir, exist_ok=True)
        os.chown(self.outdir, st.st_uid, st.st_gid)
        with open(os.path.join(self.pgdata, "PG_VERSION")) as f:
            version = f.read().strip()
        postgres = "/usr/lib/postgresql/%s/bin/postgres" % version
        cmd = ["valgrind", "--tool=callgrind", "--trace-children=yes",
               "--callgrind-out-file=" + os.path.join(self.outdir, "cg.%p"),
               postgres, "-D", self.pgdata, "-p", str(PORT),
               "-c", "listen_addresses=", "-c", "unix_socket_directories=" + self.outdir,
               "-c", "autovacuum=off", "-c", "logging_collector=off"]

        def as_data_owner():  # postgres refuses to run as root
            os.setgid(st.st_gid)
            os.setuid(st.st_uid)
        self.log = open(os.path.join(self.outdir, "postgres.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, preexec_fn=as_data_owner)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres under callgrind exited (%d); see %s"
                                   % (self.proc.returncode, self.log.name))
            r = subprocess.run(["pg_isready", "-q", "-h", self.outdir, "-p", str(PORT)])
            if r.returncode == 0:
                self.background = settled_children(self.proc.pid)
                log("   postgres is up under callgrind (%d background processes)"
                    % len(self.background))
                return
            time.sleep(1)
        raise RuntimeError("postgres under callgrind did not start within 180 s")

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.proc = None

    def outputs(self):
        return set(glob.glob(os.path.join(self.outdir, "cg.*")))

    def backend_count(self, user, files, defines, n):
        """Runs n transactions on one connection; returns the path of the
        callgrind output the backend wrote when it exited."""
        before = self.outputs()
        cmd = ["pgbench", "-n", "-M", "prepared", "-h", self.outdir, "-p", str(PORT),
               "-U", user, "-c", "1", "-j", "1", "-t", str(n)]
        for name, value in sorted(defines.items()):
            cmd += ["-D", "%s=%s" % (name, value)]
        for f in files:
            cmd += ["-f", f + "@1"]
        cmd.append("tekup")
        env = dict(os.environ, PGOPTIONS=self.session_options)
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        m = re.search(r"number of transactions actually processed: (\d+)", r.stdout)
        if r.returncode != 0 or not m or int(m.group(1)) != n:
            raise RuntimeError("pgbench under callgrind failed: %s" % (r.stdout + r.stderr)[-800:])
        # Each backend writes its counts as it exits, after pgbench has gone;
        # pgbench's own short set-up connection writes one too.  Wait until
        # the postmaster has no children but its own background processes,
        # then take the biggest new count: the backend that ran n transactions.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if children(self.proc.pid) <= self.background:
                counts = [(total_instructions(p) or 0, p) for p in self.outputs() - before]
                if counts:
                    return max(counts)[1]
            time.sleep(0.5)
        raise RuntimeError("the backend's callgrind output did not appear")


def children(pid):
    """The pids whose parent is pid."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            out.add(int(entry))
    return out


def settled_children(pid):
    """The children of pid once the set has not changed for two seconds
    (pg_isready's backend exits slowly under valgrind)."""
    seen, stable_since = children(pid), time.monotonic()
    deadline = time.monotonic() + 30
    while time.monotonic() - stable_since < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
        now = children(pid)
        if now != seen:
            seen, stable_since = now, time.monotonic()
    return seen


def total_instructions(path):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(("totals:", "summary:")):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def per_function(path):
    """{function: instructions} from callgrind_annotate (self cost)."""
    r = subprocess.run(["callgrind_annotate", "--threshold=100", path],
                       capture_output=True, text=True)
    out = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(\S.*?)(?:\s+\[.*\])?$", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        name = m.group(2).split(":", 1)[-1]
        if name.startswith("0x"):
            name = "(static functions of postgres)"
        out[name] = out.get(name, 0) + int(m.group(1).replace(",", ""))
    return out


def measure(cluster, work, scripts, statements, workloads, session_options, log):
    """{workload: {"tekup_app": instr/tx, "tekup_owner": instr/tx (W1, W2
    only), "top": [(function, instr/tx), ...]}}: for W1/W2 "top" is where the
    app's extra instructions go (app - owner), for the others where the app's
    go.  Stops the cluster first; it is left stopped."""
    cluster.stop()
    cg = CallgrindCluster(os.path.join(cluster.data_dir, "pgdata"),
                          os.path.join(work, "callgrind"), session_options)
    results = {}
    try:
        cg.start(log)
        for w in [w for w in sorted(COUNTS) if w in workloads]:
            n1, n2 = COUNTS[w]
            files = scripts[(w, "pipeline")]
            defines = statements[w][3]
            res = {}
            funcs = {}
            for user in ROLES if w in RLS_WORKLOADS else ROLES[:1]:
                p1 = cg.backend_count(user, files, defines, n1)
                p2 = cg.backend_count(user, files, defines, n2)
                res[user] = (total_instructions(p2) - total_instructions(p1)) / (n2 - n1)
                f1, f2 = per_function(p1), per_function(p2)
                funcs[user] = {k: (f2.get(k, 0) - f1.get(k, 0)) / (n2 - n1)
                               for k in set(f1) | set(f2)}
                log("   %s as %-11s: %9.0f instructions per transaction" % (w, user, res[user]))
            app, owner = funcs["tekup_app"], funcs.get("tekup_owner", {})
            extra = sorted(((app.get(k, 0) - owner.get(k, 0), k) for k in set(app) | set(owner)),
                           reverse=True)
            res["top"] = [(k, v) for v, k in extra[:8] if v > 0]
            results[w] = res
    finally:
        cg.stop()
    return results
