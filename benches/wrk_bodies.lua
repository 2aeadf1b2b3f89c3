-- wrk script for benches/bench.sh: POSTs pre-signed TOP request bodies (one per line of the
-- file named by BODIES), each thread cycling through them from its own offset, so every call
-- is a valid, signed issuing request for its own recipient.
local bodies = {}
local path = os.getenv("BODIES")
for line in io.lines(path) do
  bodies[#bodies + 1] = line
end
assert(#bodies > 0, "no bodies in " .. tostring(path))

local counter = 1
local threads = 0

function setup(thread)
  thread:set("offset", threads * math.floor(#bodies / 2))
  threads = threads + 1
end

function init(args)
  counter = 1 + (offset or 0) % #bodies
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded;charset=UTF-8"
end

function request()
  local body = bodies[counter]
  counter = counter % #bodies + 1
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  io.write(string.format("WRK requests=%d duration_us=%d errors_status=%d errors_connect=%d errors_read=%d errors_write=%d errors_timeout=%d\n",
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout))
end
