-- wrk script: reserve-keyed.lua plus the routing header the docs tell clients to send,
-- so the load balancer sends every request for the SKU to the node that owns it.
--   wrk ... -s reserve-routed.lua URL -- SKU TOKEN RUN
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "../wire/reserve-keyed.lua")

local keyed_init = init

function init(args)
   keyed_init(args)
   wrk.headers["X-Stockade-Sku"] = args[1] or "HOT"
end
