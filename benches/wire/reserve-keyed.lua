-- wrk script: reserve.lua with a fresh Idempotency-Key on every request, as storefronts
-- send them so that a retry is safe.
--   wrk ... -s reserve-keyed.lua URL -- SKU TOKEN RUN
-- RUN makes the keys unique to the run: a key seen before would replay its outcome.
-- No response() callback, as in reserve.lua.
local counter = 0
local thread_id = 0

function setup(thread)
   thread_id = thread_id + 1
   thread:set("tid", thread_id)
end

function init(args)
   local sku = args[1] or "HOT"
   local token = args[2] or ""
   run = args[3] or tostring(os.time())
   wrk.method = "POST"
   wrk.path = "/api/reservations"
   wrk.headers["Authorization"] = "Bearer " .. token
   wrk.headers["Content-Type"] = "application/json"
   wrk.body = '{"items":[{"sku":"' .. sku .. '","qty":1}],"ttl_seconds":600}'
end

function request()
   counter = counter + 1
   wrk.headers["Idempotency-Key"] = "r-" .. run .. "-" .. tid .. "-" .. counter
   return wrk.format()
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
