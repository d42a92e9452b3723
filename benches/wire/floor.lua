-- wrk script: the HTTP floor. GET /healthz, which does no work, with reserve.lua's headers
-- and COUNTS line ("reserved" there counts the 2xx answers): what one request and its
-- answer cost the server and wrk before any reservation is made.
--   wrk ... -s floor.lua URL -- SKU TOKEN
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "reserve.lua")

local plain_init = init

function init(args)
   plain_init(args)
   wrk.method = "GET"
   wrk.path = "/healthz"
   wrk.body = nil
   wrk.headers["Content-Type"] = nil
end
