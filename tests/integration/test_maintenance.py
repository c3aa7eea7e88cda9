"""test_maintenance.py - the daily job in `tekup serve`: archived tenants past
the archive retention are deleted and each tenant's rows past its
dataRetentionDays purged, by exactly one server at a time (advisory lock),
once per interval across all servers (maintenance_runs).
"""
import time

from harness import Server, test


def owner_exec(ctx, sql, args=()):
    c = ctx.owner_db()
    cur = c.cursor()
    cur.execute(sql, args)
    rows = cur.fetchall() if cur.description else None
    c.close()
    return rows


@test
def two_servers_run_the_daily_job_once_and_it_cleans_up(ctx):
    old = ctx.new_tenant(name="Long Gone Ltd")
    recent = ctx.new_tenant(name="Recently Archived")
    keeper = ctx.new_tenant(name="Keeper", sample_leads=3)
    owner_exec(ctx, "UPDATE tenants SET status = 'archived', archived_at = now() - interval '100 days'"
                    " WHERE id = %s", (old.id,))
    owner_exec(ctx, "UPDATE tenants SET status = 'archived', archived_at = now() - interval '10 days'"
                    " WHERE id = %s", (recent.id,))
    # One stale lead (no change or activity for 400 days) and the rest fresh.
    owner_exec(ctx, "UPDATE leads SET updated_at = now() - interval '400 days',"
                    " last_activity_at = now() - interval '400 days'"
                    " WHERE id = (SELECT id FROM leads WHERE tenant_id = %s ORDER BY id LIMIT 1)",
               (keeper.id,))
    owner_exec(ctx, "DELETE FROM maintenance_runs")  # as if the job never ran
    args = ["--maintenance-interval-s", "30", "--archive-retention-days", "90"]
    a = Server(ctx, args)
    b = Server(ctx, args)
    try:
        deadline = time.time() + 15
        while time.time() < deadline:
            if not owner_exec(ctx, "SELECT 1 FROM tenants WHERE id = %s", (old.id,)):
                break
            time.sleep(0.2)
        assert not owner_exec(ctx, "SELECT 1 FROM tenants WHERE id = %s", (old.id,))
        assert owner_exec(ctx, "SELECT count(*) FROM leads WHERE tenant_id = %s", (old.id,)) == [(0,)]
        assert owner_exec(ctx, "SELECT status FROM tenants WHERE id = %s", (recent.id,)) == \
            [("archived",)]
        # The deletion commits first; retention then runs over every tenant
        # of the suite (one transaction each) before the run is recorded.
        deadline = time.time() + 60
        while time.time() < deadline and not owner_exec(
                ctx, "SELECT 1 FROM maintenance_runs WHERE job = 'daily'"
                     " AND finished_at IS NOT NULL"):
            time.sleep(0.2)
        runs = owner_exec(ctx, "SELECT finished_at IS NOT NULL, result FROM maintenance_runs"
                               " WHERE job = 'daily'")
        assert len(runs) == 1 and runs[0][0], runs
        # Exactly one deletion recorded, whichever server did it.
        assert owner_exec(ctx, "SELECT count(*) FROM operator_audit WHERE action = 'tenant.delete'"
                               " AND tenant_id = %s", (old.id,)) == [(1,)]
        assert owner_exec(ctx, "SELECT count(*) FROM leads WHERE tenant_id = %s",
                          (keeper.id,)) == [(2,)]
        assert ctx.http("GET", "/v1/leads", key=keeper.key).json["pagination"]["total"] == 2
    finally:
        assert a.stop() == 0
        assert b.stop() == 0
