-- wrk script: reserve.lua with a fresh Idempotency-Key on every request, as storefronts
-- send them so that a retry is safe.
--   wrk ... -s reserve-keyed.lua URL -- SKU TOKEN RUN
-- RUN makes the keys unique to the run: a key seen before would replay its outcome.
-- Defining request() makes wrk build every request anew, so this is a file of its own;
-- the rest (headers, body, the COUNTS line) is reserve.lua's, loaded from beside it.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "reserve.lua")

local counter = 0
local thread_id = 0
local plain_init = init

function setup(thread)
   thread_id = thread_id + 1
   thread:set("tid", thread_id)
end

function init(args)
   plain_init(args)
   run = args[3] or tostring(os.time())
end

function request()
   counter = counter + 1
   wrk.headers["Idempotency-Key"] = "r-" .. run .. "-" .. tid .. "-" .. counter
   return wrk.format()
end
