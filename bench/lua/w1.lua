-- W1: GET /v1/leads/{id} - a random lead of a random small tenant.
local bench = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")
bench.run(function(d)
    local t = bench.small_tenant(d)
    return d.keys[t], "GET", "/v1/leads/" .. bench.lead_id(d, t, math.random(1, d.lead_count))
end)
