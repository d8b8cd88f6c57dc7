-- wrk script: replays pre-signed deliveries (benches/gen_webhooks.py), each thread its own
-- slice, so every request is a new event (no dedupe shortcut).
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  requests = {}
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == id then
      local tab = line:find("\t", 1, true)
      local sig, body = line:sub(1, tab - 1), line:sub(tab + 1)
      requests[#requests + 1] = wrk.format("POST", "/webhooks/zalo",
        { ["Content-Type"] = "application/json", ["X-ZEvent-Signature"] = sig }, body)
    end
    i = i + 1
  end
  pos = 0
  wrapped = 0
end

function request()
  pos = pos + 1
  if pos > #requests then pos = 1; wrapped = 1 end
  return requests[pos]
end

function done(summary, latency, requests_)
  io.write(string.format("RESULT rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f requests=%d non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
