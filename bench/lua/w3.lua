-- W3: POST /v1/leads with a JSON body (random small tenant).  The body is
-- fixed (d.w3_body) so that the pgbench script can insert the same values.
local bench = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")
bench.run(function(d)
    return d.keys[bench.small_tenant(d)], "POST", "/v1/leads", d.w3_body
end, { count_statuses = true })
