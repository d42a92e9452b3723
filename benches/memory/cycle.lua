-- wrk script: keyed reserve -> commit cycles, as a storefront checkout sends them.
-- Each reserve carries a fresh Idempotency-Key; the id it returns is committed by the
-- same thread's next request. Counts land in the thread's globals, read by done().
local counter = 0
local pending = {}
local thread_id = 0
reserves, commits, failures = 0, 0, 0

function setup(thread)
   thread_id = thread_id + 1
   thread:set("tid", thread_id)
   table.insert(threads, thread)
end
threads = {}

function init(args)
   sku = args[1] or "MEM-1"
   token = args[2] or ""
   hold_secs = args[3] or "600"
   -- Keys unique to this run: a key seen in an earlier run would replay its outcome.
   run = args[4] or tostring(os.time())
end

function request()
   local id = table.remove(pending)
   if id then
      return wrk.format("POST", "/api/reservations/" .. id .. "/commit",
         { ["Authorization"] = "Bearer " .. token }, "")
   end
   counter = counter + 1
   return wrk.format("POST", "/api/reservations", {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
      ["Idempotency-Key"] = "cycle-" .. run .. "-" .. tid .. "-" .. counter,
   }, '{"items":[{"sku":"' .. sku .. '","qty":1}],"ttl_seconds":' .. hold_secs .. '}')
end

function response(status, headers, body)
   if status == 201 then
      reserves = reserves + 1
      local id = string.match(body, '"reservation_id":"([0-9a-f%-]+)"')
      if id then table.insert(pending, id) end
   elseif status == 200 then
      commits = commits + 1
   else
      failures = failures + 1
   end
end

function done(summary, latency, requests)
   local r, c, f = 0, 0, 0
   for _, t in ipairs(threads) do
      r = r + t:get("reserves"); c = c + t:get("commits"); f = f + t:get("failures")
   end
   io.write(string.format("COUNTS reserves=%d commits=%d failures=%d p50_us=%d p99_us=%d\n",
      r, c, f, latency:percentile(50), latency:percentile(99)))
end
