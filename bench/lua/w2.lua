-- W2: GET /v1/leads, first page of NEW leads with a field selection (random small tenant).
local bench = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")
local path = "/v1/leads?page=1&limit=20&status=NEW&fields=id,name,email,status,createdAt"
bench.run(function(d)
    return d.keys[bench.small_tenant(d)], "GET", path
end)
