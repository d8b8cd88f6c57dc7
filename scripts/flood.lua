-- wrk script for scripts/flood-bench: forged deliveries — half without a signature, half with a
-- wrong one — each a new, valid-looking event body (so nothing is cheaper than a real attack).
local n = 0
local app = "1234567890123456789"

function request()
  n = n + 1
  local ts = tostring(1767225600000 + n)
  local body = '{"app_id":"' .. app .. '","sender":{"id":"6660000' .. n ..
    '"},"recipient":{"id":"3662729599332560487"},"event_name":"user_send_text",' ..
    '"message":{"text":"spam","msg_id":"forged' .. n .. '"},"timestamp":"' .. ts .. '"}'
  local headers = { ["Content-Type"] = "application/json" }
  if n % 2 == 0 then
    headers["X-ZEvent-Signature"] = "mac=" .. string.rep("0", 64)
  end
  return wrk.format("POST", "/webhooks/zalo", headers, body)
end

function done(summary, latency, requests_)
  io.write(string.format("RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
