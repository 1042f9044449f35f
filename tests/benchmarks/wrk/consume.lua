-- wrk script for POST /api/v1/organizations/<org>/credits/consume (tests/benchmarks/bench_credits.py).
--
-- BENCH_TARGETS names a file of "<organization id> <api key>" lines; each request picks one at
-- random (one line: one hot organization) and sends a unique idempotency key (a run nonce, the
-- wrk thread's number and a counter), so every request is a new consumption, never a replay.
-- done() prints one JSON line that the benchmark reads: counts, errors and latency percentiles.

local targets = {}
for line in io.lines(os.getenv("BENCH_TARGETS")) do
  local org, key = line:match("^(%S+)%s+(%S+)$")
  if org then
    targets[#targets + 1] = {
      path = "/api/v1/organizations/" .. org .. "/credits/consume",
      headers = {
        ["Authorization"] = "Bearer " .. key,
        ["Content-Type"] = "application/json",
        ["Accept"] = "application/json",
      },
    }
  end
end

local nonce = os.getenv("BENCH_NONCE") or tostring(os.time())
local threads = {}
local counter = 0

function setup(thread)
  thread:set("number", #threads + 1)
  threads[#threads + 1] = thread
end

function init(args)
  math.randomseed(os.time() * 1000 + number)
end

function request()
  counter = counter + 1
  local target = targets[math.random(#targets)]
  local body = string.format(
    '{"amount": 1, "reason": "bench", "idempotency_key": "wrk-%s-%d-%d"}', nonce, number, counter
  )
  return wrk.format("POST", target.path, target.headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "non_2xx": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean
  ))
end
