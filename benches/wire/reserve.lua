-- wrk script: reserve-only on one hot SKU, one unit each, the way a storefront sends them.
--   wrk ... -s reserve.lua URL -- SKU TOKEN [keyed] [run]
-- With `keyed`, every request carries a fresh Idempotency-Key (as storefronts retry
-- safely). Holds are short, so a long run does not pile up more than a sale would.
local counter = 0
local thread_id = 0
threads = {}
reserved, refused, failures = 0, 0, 0

function setup(thread)
   thread_id = thread_id + 1
   thread:set("tid", thread_id)
   table.insert(threads, thread)
end

function init(args)
   sku = args[1] or "HOT"
   token = args[2] or ""
   keyed = args[3] == "keyed"
   run = args[4] or tostring(os.time())
   body = '{"items":[{"sku":"' .. sku .. '","qty":1}],"ttl_seconds":600}'
   plain = wrk.format("POST", "/api/reservations", {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
   }, body)
end

function request()
   if not keyed then
      return plain
   end
   counter = counter + 1
   return wrk.format("POST", "/api/reservations", {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
      ["Idempotency-Key"] = "r-" .. run .. "-" .. tid .. "-" .. counter,
   }, body)
end

function response(status, headers, body)
   if status == 201 then
      reserved = reserved + 1
   elseif status == 409 then
      refused = refused + 1
   else
      failures = failures + 1
   end
end

function done(summary, latency, requests)
   local r, x, f = 0, 0, 0
   for _, t in ipairs(threads) do
      r = r + t:get("reserved"); x = x + t:get("refused"); f = f + t:get("failures")
   end
   io.write(string.format(
      "COUNTS reserved=%d refused=%d failures=%d secs=%.3f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d\n",
      r, x, f, summary.duration / 1e6, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9), latency.max))
end
