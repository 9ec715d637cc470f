-- wrk script for scripts/bench-load.sh: each connection uploads the corpus images in
-- turn (POST /v1/images, raw body), and every tenth request reads metadata instead
-- (GET /v1/images?limit=10). Non-2xx answers are counted and reported as errors.
local bodies, types = {}, {}
local n, key

function init(args)
    key = args[1]
    for i = 2, #args do
        local f = assert(io.open(args[i], "rb"))
        bodies[#bodies + 1] = f:read("*a")
        f:close()
        types[#types + 1] = args[i]:match("%.png$") and "image/png" or "image/jpeg"
    end
    n = math.random(#bodies)
end

function request()
    n = n + 1
    local auth = { ["Authorization"] = "Bearer " .. key }
    if n % 10 == 0 then
        return wrk.format("GET", "/v1/images?limit=10", auth)
    end
    local i = n % #bodies + 1
    auth["Content-Type"] = types[i]
    return wrk.format("POST", "/v1/images", auth, bodies[i])
end

local failed = 0
function response(status)
    if status >= 400 then failed = failed + 1 end
end

function done(summary, latency, requests)
    io.write(string.format("LOAD requests=%d duration_s=%.1f rps=%.1f p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f max_ms=%.1f non2xx=%d socket_errors=%d\n",
        summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
        summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
