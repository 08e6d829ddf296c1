-- wrk script: streamed chat completions with a usage chunk (see common.lua).
package.path = debug.getinfo(1, "S").source:match("@?(.*/)") .. "?.lua;" .. package.path
local model = os.getenv("BENCH_MODEL") or "stub"
require("common").install(
  '{"model": "' .. model .. '", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16, ' ..
  '"stream": true, "stream_options": {"include_usage": true}}'
)
