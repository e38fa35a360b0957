-- Update checks: one hardware id and installed version ($BENCH_HARDWARE, $BENCH_VERSION), a
-- distinct device id per request, also across runs: the service answers a device that checks
-- again within firmware.min_check_interval_s with 429, so ids carry the second the run started
-- (runs last at least 2 s). nginx serves the same path as a static file (query ignored).
dofile(os.getenv("BENCH_LUA") .. "/common.lua")

local hardware = os.getenv("BENCH_HARDWARE")
local version = os.getenv("BENCH_VERSION")
local run = os.time()
local threads = 0
local n = 0

function setup(thread)
  thread:set("tid", threads) -- a global in the thread's own Lua state
  threads = threads + 1
end

function request()
  n = n + 1
  return wrk.format("GET", string.format(
    "/v1/firmware/check?hardware=%s&version=%s&device_id=bench-%d-%d-%d", hardware, version, run, tid, n))
end
