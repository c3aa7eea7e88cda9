#!/usr/bin/env python3
"""run.py - the integration suite runner.

  python3 tests/integration/run.py --binary build/san/tekup [--only NAME]

Creates a fresh embedded cluster under build/test/, migrates it with the
real binary, starts `tekup serve`, runs every test_*.py module's tests, then
stops the server with SIGTERM and checks it exited cleanly (status 0, no
sanitizer report).  Ends with "integration: N passed, N failed".
"""
import argparse
import glob
import importlib
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")


def postgres_can_reach(path):
    """As root the embedded cluster runs as 'postgres', which must be able to
    traverse every parent of the data directory."""
    if os.geteuid() != 0:
        return True
    import pwd
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        return True

    def drop():
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)

    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    return subprocess.run(["test", "-x", probe], preexec_fn=drop).returncode == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="build/san/tekup")
    ap.add_argument("--workdir", default="build/test")
    ap.add_argument("--only", default=None)
    ap.add_argument("--pgbouncer", action="store_true",
                    help="serve through a real PgBouncer in transaction pooling mode")
    args = ap.parse_args()

    workdir = os.path.abspath(args.workdir)
    if not postgres_can_reach(workdir):
        # e.g. a checkout under /root: keep the test cluster in /tmp instead.
        workdir = os.path.join("/tmp", "tekup-" + workdir.strip("/").replace("/", "-"))
        print("note: the postgres user cannot reach the checkout; using " + workdir)
    ctx = harness.Context(args.binary, workdir)
    # A fresh cluster each run; stop one left over from an earlier run first.
    if os.path.isdir(ctx.data_dir):
        ctx.tekup("db", "stop", "--data-dir", ctx.data_dir)
        shutil.rmtree(workdir)
    os.makedirs(workdir, exist_ok=True)
    os.chmod(workdir, 0o755)

    runner = harness.Runner(ctx, args.only)
    bouncer = None
    try:
        p = ctx.tekup("migrate", "--data-dir", ctx.data_dir)
        runner.record("setup.migrate", p.returncode == 0, p.stdout + p.stderr)
        if p.returncode != 0:
            raise SystemExit(1)
        if args.pgbouncer:
            bouncer = harness.PgBouncer(ctx)
            ctx.env["DATABASE_URL"] = bouncer.url("tekup_app") + "?pgbouncer=true"
            ctx.env["DATABASE_ADMIN_URL"] = "host=%s dbname=tekup user=tekup_owner" % ctx.socket_dir
            ctx.env["DATABASE_OPERATOR_URL"] = ("host=%s dbname=tekup user=tekup_operator"
                                                % ctx.socket_dir)
            print("note: requests go through PgBouncer %s (transaction pooling)" % bouncer.version)
        ctx.server = harness.Server(ctx)
        modules = sorted(os.path.basename(f)[:-3] for f in glob.glob(os.path.join(HERE, "test_*.py")))
        for m in modules:
            importlib.import_module(m)
        runner.run(harness.TESTS)
        rc = ctx.server.stop()
        out = ctx.server.output()
        clean = rc == 0 and not any(m in out for m in SANITIZER_MARKERS)
        runner.record("teardown.server_exits_cleanly_without_sanitizer_reports", clean,
                      "exit %s\n%s" % (rc, "\n".join(l for l in out.splitlines()
                                                     if "Sanitizer" in l or "runtime error" in l
                                                     or "#" in l[:4])[-6000:]))
    except Exception:
        import traceback
        traceback.print_exc()
        runner.record("runner.completed_without_an_exception", False)
    finally:
        # Never let cleanup hide the summary line.
        for cleanup in (lambda: ctx.server and ctx.server.proc.poll() is None and ctx.server.stop(),
                        lambda: bouncer and bouncer.stop()):
            try:
                cleanup()
            except Exception as e:  # noqa: BLE001
                print("cleanup failed: %r" % e)
        for k in ("DATABASE_URL", "DATABASE_ADMIN_URL", "DATABASE_OPERATOR_URL"):
            ctx.env.pop(k, None)
        try:
            ctx.tekup("db", "stop", "--data-dir", ctx.data_dir)
        except Exception as e:  # noqa: BLE001
            print("cleanup failed: %r" % e)
        label = "pgbouncer" if args.pgbouncer else "integration"
        print("%s: %d passed, %d failed" % (label, runner.passed, runner.failed))
    sys.exit(0 if runner.failed == 0 else 1)


if __name__ == "__main__":
    main()
