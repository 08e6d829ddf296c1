-- Shared by chat.lua and chat_stream.lua: POST a fixed chat body, count what was sent and
-- received per thread, and print one machine-readable summary line at the end.
-- BENCH_KEY (env): the bearer token; BENCH_MODEL (env, default "stub"): the model field.

local M = {}
local threads = {}

function M.install(body)
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
  local key = os.getenv("BENCH_KEY")
  if key and key ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. key
  end

  setup = function(thread)
    table.insert(threads, thread)
  end

  init = function(args)
    -- wrk (4.1) calls request() once per thread before any connection writes; a counting TCP sink
    -- confirmed it, so start at -1 and `sent` is exactly the number of requests put on the wire.
    sent = -1
    ok = 0
    req = wrk.format()
  end

  -- Defining request() makes wrk call it for every request, so `sent` counts exactly what was sent.
  request = function()
    sent = sent + 1
    return req
  end

  response = function(status, headers, body)
    if status >= 200 and status < 300 then
      ok = ok + 1
    end
  end

  done = function(summary, latency, requests)
    local total_sent, total_ok = 0, 0
    for _, t in ipairs(threads) do
      total_sent = total_sent + t:get("sent")
      total_ok = total_ok + t:get("ok")
    end
    local e = summary.errors
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
