-- common.lua - shared wrk machinery for the tekup workloads (bench/lua/w*.lua).
--
-- A workload script does
--     local bench = dofile(<this directory> .. "common.lua")
--     bench.run(function(d) return <method>, <path>, <body or nil> end)
-- where d is the data file written by bench/run.py (keys, lead id prefixes,
-- cursors).  The function is called once per request, so every request picks
-- its own random tenant / lead / cursor.
--
-- wrk arguments (after "--"):  <data.lua> <send-window seconds>
--
-- Exact accounting: each thread sends requests only during the send window
-- (seconds after its init); after that request() returns an empty string,
-- which parks the connection without sending anything.  wrk runs a little
-- longer than the window (bench/run.py adds a grace period), so every request
-- that was sent also gets its response counted: no request is cut off in
-- flight, and W3 can compare its 201 count with the rows in the database.
-- Status classes are counted in response(); done() aggregates the threads and
-- prints one line "BENCHJSON {...}" for bench/run.py.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } tekup_bench_timespec;
int clock_gettime(int clk_id, tekup_bench_timespec *tp);
]]
local ts = ffi.new("tekup_bench_timespec")
local function now()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local M = {}
local threads = {}
local counter_names = { "n", "n2xx", "n201", "n3xx", "n4xx", "n5xx", "nother" }

function M.run(make_request)
    function setup(thread)
        thread:set("tid", #threads + 1)
        table.insert(threads, thread)
    end

    local data, deadline, parked
    local headers = {}
    function init(args)
        data = dofile(args[1])
        deadline = now() + tonumber(args[2])
        parked = false
        math.randomseed(1000003 * (tid or 1) + 12345)
        n, n2xx, n201, n3xx, n4xx, n5xx, nother = 0, 0, 0, 0, 0, 0, 0
    end

    function request()
        if parked or now() >= deadline then
            parked = true
            return ""
        end
        local key, method, path, body = make_request(data)
        headers["X-Tenant-Key"] = key
        if body then
            headers["Content-Type"] = "application/json"
        else
            headers["Content-Type"] = nil
        end
        return wrk.format(method, path, headers, body)
    end

    function response(status, hdrs, body)
        n = n + 1
        if status >= 200 and status < 300 then
            n2xx = n2xx + 1
            if status == 201 then n201 = n201 + 1 end
        elseif status >= 300 and status < 400 then
            n3xx = n3xx + 1
        elseif status >= 400 and status < 500 then
            n4xx = n4xx + 1
        elseif status >= 500 and status < 600 then
            n5xx = n5xx + 1
        else
            nother = nother + 1
        end
    end

    function done(summary, latency, requests)
        local total = {}
        for _, name in ipairs(counter_names) do total[name] = 0 end
        for _, t in ipairs(threads) do
            for _, name in ipairs(counter_names) do
                total[name] = total[name] + (t:get(name) or 0)
            end
        end
        local e = summary.errors
        local out = {}
        local function add(k, v) table.insert(out, string.format('"%s":%s', k, v)) end
        add("requests", summary.requests)
        add("duration_us", summary.duration)
        add("bytes", summary.bytes)
        add("err_connect", e.connect)
        add("err_read", e.read)
        add("err_write", e.write)
        add("err_status", e.status)
        add("err_timeout", e.timeout)
        add("lat_mean_us", string.format("%.1f", latency.mean))
        add("lat_max_us", latency.max)
        for _, p in ipairs({ 50, 90, 99, 99.9 }) do
            add("lat_p" .. tostring(p):gsub("%.", "_") .. "_us", latency:percentile(p))
        end
        for _, name in ipairs(counter_names) do add(name, total[name]) end
        io.write("BENCHJSON {" .. table.concat(out, ",") .. "}\n")
    end
end

-- Helpers for the workload scripts.
function M.small_tenant(d)
    return math.random(1, #d.keys)
end

function M.lead_id(d, tenant, k)
    return d.prefixes[tenant] .. "-0000-4000-8000-" .. string.format("%012d", k)
end

return M
