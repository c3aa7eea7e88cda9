"""test_sql_cli.py - `tekup sql`: prints the exact statement an endpoint sends
(used by bench/ and for EXPLAIN), and refuses bad input with exit 2.
"""
import json

from harness import test


@test
def sql_prints_the_statement_and_its_parameters(ctx):
    p = ctx.tekup("sql", "list", "status=NEW,WON&limit=7&fields=id,name")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["params"][0] == "00000000-0000-0000-0000-000000000000"
    assert "{NEW,WON}" in out["params"] and "7" in out["params"], out["params"]
    assert "l.tenant_id = $1" in out["sql"] and "'name', l.name" in out["sql"], out["sql"]
    for endpoint in ("get", "create", "delete", "stats"):
        p = ctx.tekup("sql", endpoint)
        assert p.returncode == 0, (endpoint, p.stderr)
        assert "tenant_id = $1" in json.loads(p.stdout)["sql"] or endpoint == "create"


@test
def sql_refuses_bad_input_with_exit_2(ctx):
    for args, needle in ((["sql", "list", "limit=0"], "limit"),
                         (["sql", "list", "colour=red"], "colour"),
                         (["sql", "nosuch"], "unknown endpoint"),
                         (["sql"], "usage")):
        p = ctx.tekup(*args)
        assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
        assert needle in (p.stderr + p.stdout), (args, p.stderr, p.stdout)
