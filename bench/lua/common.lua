-- Shared by every wrk script: the bearer token from $BENCH_TOKEN (nginx ignores it) and one
-- machine-readable summary line that bench/run parses.
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f mbps=%.1f requests=%d errors=%d\n",
    summary.requests / secs,
    latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    summary.bytes / secs / 1e6,
    summary.requests,
    e.connect + e.read + e.write + e.timeout + e.status))
end
