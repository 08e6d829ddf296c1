-- Shared by chat.lua and chat_stream.lua: POST a fixed chat body, count what was sent and
-- received per thread, and print one machine-readable summary line at the end.
-- BENCH_KEY (env): the bearer token; BENCH_MODEL (env, default "stub"): the model field.

local M = {}

function M.install(body)
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
  local key = os.getenv("BENCH_KEY")
  if key and key ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. key
  end

  -- No per-request Lua hooks (request/response): they cost wrk CPU on every request, and on 2 cores
  -- that CPU is taken from the gateway being measured. The ledger check works from wrk's own counts.
  done = function(summary, latency, requests)
    local e = summary.errors
    local total_sent, total_ok = -1, summary.requests - e.status
    io.write(string.format(
      'BENCHJSON {"requests": %d, "duration_us": %d, "bytes": %d, "sent": %d, "ok_2xx": %d, ' ..
      '"non2xx": %d, "err_connect": %d, "err_read": %d, "err_write": %d, "err_timeout": %d, ' ..
      '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
      summary.requests, summary.duration, summary.bytes, total_sent, total_ok,
      e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
  end
end

return M
