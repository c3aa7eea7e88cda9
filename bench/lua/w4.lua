-- W4: GET /v1/leads/stats (random small tenant).
local bench = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")
bench.run(function(d)
    return d.keys[bench.small_tenant(d)], "GET", "/v1/leads/stats"
end)
