-- common.lua - shared wrk machinery for the tekup workloads (bench/lua/w*.lua).
--
-- A workload script does
--     local bench = dofile(<this directory> .. "common.lua")
--     bench.run(function(d) return <method>, <path>, <body or nil> end)
-- where d is the data file written by bench/run.py (keys, lead id prefixes,
-- cursors).  The function is called once per request, so every request picks
-- its own random tenant / lead / cursor.
--
-- wrk runs on the same 2 CPUs as the server and PostgreSQL, so its own CPU
-- per request is taken from them.  Two things keep it small:
--   * the request is one string concatenation: the header block after the
--     path is built once per tenant key (and body), not with wrk.format's
--     table walk per request;
--   * status classes are counted in a Lua response() callback only when the
--     workload asks for it (W3, which compares its 201s with the rows
--     created).  Defining response() makes wrk copy every response's headers
--     and body into Lua; without it, wrk's own counter of responses with a
--     status of 400 or more is used, and any such response fails the run's
--     checks just the same.
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

function M.run(make_request, opts)
    local count_statuses = opts and opts.count_statuses
    function setup(thread)
        thread:set("tid", #threads + 1)
        table.insert(threads, thread)
    end

    local data, deadline, parked, host
    local tails = {} -- " HTTP/1.1\r\n<headers>\r\n\r\n<body>" per key and body
    function init(args)
        data = dofile(args[1])
        deadline = now() + tonumber(args[2])
        parked = false
        host = wrk.headers["Host"] or (wrk.host .. ":" .. tostring(wrk.port))
        math.randomseed(1000003 * (tid or 1) + 12345)
        n, n2xx, n201, n3xx, n4xx, n5xx, nother = 0, 0, 0, 0, 0, 0, 0
    end

    local function tail_for(key, body)
        local id = body and (key .. "\n" .. body) or key
        local t = tails[id]
        if t == nil then
            local h = { " HTTP/1.1\r\nHost: ", host, "\r\nX-Tenant-Key: ", key, "\r\n" }
            if body then
                table.insert(h, "Content-Type: application/json\r\nContent-Length: "
                    .. #body .. "\r\n\r\n" .. body)
            else
                table.insert(h, "\r\n")
            end
            t = table.concat(h)
            tails[id] = t
        end
        return t
    end

    function request()
        if parked or now() >= deadline then
            parked = true
            return ""
        end
        local key, method, path, body = make_request(data)
        return method .. " " .. path .. tail_for(key, body)
    end

    if not count_statuses then
        response = nil
    end
    local function count_response(status, hdrs, body)
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
    if count_statuses then
        response = count_response
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
        if not count_statuses then
            -- wrk's own counter: responses with a status of 400 or more.
            total.n = summary.requests
            total.n2xx = summary.requests - e.status
            total.n5xx = e.status -- counted as failures by the checks
        end
        add("statuses_counted", count_statuses and "true" or "false")
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
