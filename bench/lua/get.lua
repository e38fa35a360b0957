-- A plain GET of the URL given to wrk (whole downloads, rollout status).
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
