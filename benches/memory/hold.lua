-- wrk script: reserve-only, long holds that pile up on one SKU (a sale's live carts).
-- Stops asking once `limit` holds are made by this thread (then it reads the stock).
holds, failures = 0, 0
threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   sku = args[1] or "MEM-HOLD"
   token = args[2] or ""
   limit = tonumber(args[3] or "300000")
end

function request()
   if holds >= limit then
      return wrk.format("GET", "/api/inventory/products/" .. sku)
   end
   return wrk.format("POST", "/api/reservations", {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
   }, '{"items":[{"sku":"' .. sku .. '","qty":1}],"ttl_seconds":604800}')
end

function response(status, headers, body)
   if status == 201 then
      holds = holds + 1
   elseif status ~= 200 then
      failures = failures + 1
   end
end

function done(summary, latency, requests)
   local h, f = 0, 0
   for _, t in ipairs(threads) do
      h = h + t:get("holds"); f = f + t:get("failures")
   end
   io.write(string.format("COUNTS holds=%d failures=%d p50_us=%d p99_us=%d\n",
      h, f, latency:percentile(50), latency:percentile(99)))
end
