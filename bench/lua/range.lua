-- Random 1 MiB ranges of the image at the URL given to wrk ($BENCH_SIZE bytes long).
dofile(os.getenv("BENCH_LUA") .. "/common.lua")

local size = tonumber(os.getenv("BENCH_SIZE"))
local chunk = 1024 * 1024
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  math.randomseed(os.time() * 16 + tid)
end

function request()
  local start = math.random(0, size - chunk)
  wrk.headers["Range"] = string.format("bytes=%d-%d", start, start + chunk - 1)
  return wrk.format()
end
