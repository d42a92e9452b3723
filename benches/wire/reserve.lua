-- wrk script: reserve-only on one hot SKU, one unit each, the way a storefront sends them.
--   wrk ... -s reserve.lua URL -- SKU TOKEN
-- Holds last 10 minutes, so they pile up through a run as in a sale. reserve-keyed.lua
-- adds an Idempotency-Key.
--
-- Kept as lean as redis-benchmark: the request is static (wrk builds it
-- once per thread), and there is no response() callback, which would make wrk hand
-- every response's headers and body to Lua. wrk counts non-2xx answers itself.
function init(args)
   local sku = args[1] or "HOT"
   local token = args[2] or ""
   wrk.method = "POST"
   wrk.path = "/api/reservations"
   wrk.headers["Authorization"] = "Bearer " .. token
   wrk.headers["Content-Type"] = "application/json"
   wrk.body = '{"items":[{"sku":"' .. sku .. '","qty":1}],"ttl_seconds":600}'
end

function done(summary, latency, requests)
   local e = summary.errors
   local failures = e.status + e.connect + e.read + e.write + e.timeout
   io.write(string.format(
      "COUNTS reserved=%d failures=%d secs=%.3f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d\n",
      summary.requests - e.status, failures, summary.duration / 1e6,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max))
end
