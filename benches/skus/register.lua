-- wrk script: registers SKUs with unique names, as fast as the server takes them.
-- Each thread numbers its own SKUs (SKU-<chunk>-<thread>-<n>), at most `limit` of them,
-- then only asks /healthz; counts are read by done().
local counter = 0
local thread_id = 0
threads = {}
created, failures = 0, 0

function setup(thread)
   thread_id = thread_id + 1
   thread:set("tid", thread_id)
   table.insert(threads, thread)
end

function init(args)
   token = args[1] or ""
   chunk = args[2] or "1"
   limit = tonumber(args[3] or "1000000000")
end

function request()
   if counter >= limit then
      return wrk.format("GET", "/healthz")
   end
   counter = counter + 1
   return wrk.format("POST", "/api/skus", {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
   }, '{"sku":"SKU-' .. chunk .. '-' .. tid .. '-' .. counter .. '","pool":"physical","on_hand":10}')
end

function response(status, headers, body)
   if status == 201 then created = created + 1
   elseif status ~= 200 then failures = failures + 1 end
end

function done(summary, latency, requests)
   local c, f = 0, 0
   for _, t in ipairs(threads) do
      c = c + t:get("created"); f = f + t:get("failures")
   end
   io.write(string.format("COUNTS created=%d failures=%d\n", c, f))
end
