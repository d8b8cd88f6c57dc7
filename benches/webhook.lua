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
  -- part/parts: several wrk processes (one per instance) take disjoint slices of the file.
  local path, nthreads = args[1], tonumber(args[2])
  local part, parts = tonumber(args[3] or "0"), tonumber(args[4] or "1")
  local slots, slot = nthreads * parts, part * nthreads + id
  requests = {}
  local i = 0
  for line in io.lines(path) do
    if i % slots == slot then
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
  io.write(string.format("RESULT rps=%.1f secs=%.3f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f requests=%d non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
