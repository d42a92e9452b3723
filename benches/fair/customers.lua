-- wrk script: reservations each for a customer of its own, as a sale's distinct buyers
-- place them. Mode "hold" (args[3]): reserve-only, 7-day holds piling up. Mode "buy":
-- reserve -> commit cycles, the id a reserve returns committed by the thread's next
-- request, so each buyer leaves a purchase inside the limit's window.
local counter = 0
local pending = {}
local thread_id = 0
reserves, commits, failures = 0, 0, 0
threads = {}

function setup(thread)
   thread_id = thread_id + 1
   thread:set("tid", thread_id)
   table.insert(threads, thread)
end

function init(args)
   sku = args[1] or "FAIR-1"
   token = args[2] or ""
   mode = args[3] or "hold"
   -- Customer ids unique to this run and phase.
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
   }, '{"items":[{"sku":"' .. sku .. '","qty":1}],"ttl_seconds":604800,"customer":"c-'
      .. run .. '-' .. tid .. '-' .. counter .. '"}')
end

function response(status, headers, body)
   if status == 201 then
      reserves = reserves + 1
      if mode == "buy" then
         local id = string.match(body, '"reservation_id":"([0-9a-f%-]+)"')
         if id then table.insert(pending, id) end
      end
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
