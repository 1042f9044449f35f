-- wrk script for the organization API (tests/benchmarks/bench_hot_path.py, bench_credits.py).
--
-- BENCH_TARGETS names a file of "<organization id> <api key>" lines; each request picks one at
-- random. BENCH_SUFFIX is the path after /api/v1/organizations/<org> ("/credits/consume", ...).
-- BENCH_KIND says what to send:
--   consume  POST {"amount": 1, ...} with a unique idempotency key
--   track    POST {"metric": BENCH_METRIC, ...} with a unique idempotency key
--   events   POST {"events": [BENCH_EVENTS events]}, each with a unique idempotency key
--   get      GET
-- done() prints one JSON line that the benchmark reads: counts, errors and latency percentiles.

local kind = os.getenv("BENCH_KIND") or "get"
local suffix = os.getenv("BENCH_SUFFIX") or "/credits"
local metric = os.getenv("BENCH_METRIC") or "API_REQUEST"
local batch = tonumber(os.getenv("BENCH_EVENTS") or "100")
local method = kind == "get" and "GET" or "POST"

local targets = {}
for line in io.lines(os.getenv("BENCH_TARGETS")) do
  local org, key = line:match("^(%S+)%s+(%S+)$")
  if org then
    targets[#targets + 1] = {
      path = "/api/v1/organizations/" .. org .. suffix,
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

local function body()
  counter = counter + 1
  if kind == "consume" then
    return string.format(
      '{"amount": 1, "reason": "bench", "idempotency_key": "wrk-%s-%d-%d"}', nonce, number, counter
    )
  elseif kind == "track" then
    return string.format(
      '{"metric": "%s", "idempotency_key": "wrk-%s-%d-%d"}', metric, nonce, number, counter
    )
  elseif kind == "events" then
    local parts = {}
    for i = 1, batch do
      parts[i] = string.format(
        '{"metric": "%s", "quantity": 1, "idempotency_key": "wrk-%s-%d-%d-%d", "user_id": "u%d"}',
        metric, nonce, number, counter, i, i % 50
      )
    end
    return '{"events": [' .. table.concat(parts, ", ") .. ']}'
  end
  return nil
end

function request()
  local target = targets[math.random(#targets)]
  return wrk.format(method, target.path, target.headers, body())
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
