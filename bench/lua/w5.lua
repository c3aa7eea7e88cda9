-- W5: a keyset-cursor page deep inside the 100,000-lead tenant: one of the
-- precomputed cursors (d.cursors, positions 50,000 .. 99,750).
local bench = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")
bench.run(function(d)
    return d.big_key, "GET", "/v1/leads?cursor=" .. d.cursors[math.random(1, #d.cursors)] .. "&limit=20"
end)
