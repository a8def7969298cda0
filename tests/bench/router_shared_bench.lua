-- Limits shared through Redis (issue 17), against a private redis-server
-- on 127.0.0.1 and the test LLM server:
--   1. Four poengine processes of 20 concurrent calls each against one
--      shared budget: the calls the server answered beside the ideal (the
--      cap divided by a call's cost), and the tokens spent beside the cap;
--      the median of 5 runs, each on a budget of its own.
--   2. A router call's overhead with shared limits (budget, rpm and tpm in
--      Redis, its cooldowns looked up there) beside the same limits kept in
--      the process, the network to the LLM excluded (a lua provider):
--      sequential calls, and 50 calls at once in tasks.
local po = require "poengine"
local lib = require "tests.bench.lib"
local llm_server = require "tests.tools.llm_server"
local redis_server = require "tests.tools.redis_server"
local router_worker = require "tests.tools.router_worker"

local redis = redis_server.start_temp()
local server = llm_server.start()

-- 1. Calls sent vs the ideal.
local CAP, COST, RUNS = 200, 9, 5 -- a call: 4 words in, 5 out; it reserves 15
local sent, spent = {}, {}
for run = 1, RUNS do
  server:reset()
  local reports = router_worker.run(4, { llm_url = server.url, key = "sk-bench", model = "m#delay=0.05",
    redis = redis.url, name = "bench" .. run, calls = 20, budget = { tokens = CAP } })
  local tokens = 0
  for _, r in ipairs(reports) do
    tokens = tokens + r.spent_tokens
  end
  sent[run], spent[run] = server:stats().requests, tokens
end
lib.record {
  name = "router: shared budget",
  case = string.format("4 processes x 20 concurrent calls, one budget of %d tokens in Redis, %d a call: calls"
    .. " answered vs the ideal (cap / cost)", CAP, COST),
  subject = { label = "calls answered", value = lib.median(sent) },
  baseline = { label = "ideal", value = math.floor(CAP / COST) },
  unit = "calls",
  runs = RUNS,
  goal = { min = math.floor(CAP / COST) - 1 },
}
lib.record {
  name = "router: shared budget",
  case = "the same runs: tokens spent by the four vs the cap",
  subject = { label = "tokens spent", value = lib.median(spent) },
  baseline = { label = "cap", value = CAP },
  unit = "tokens",
  runs = RUNS,
  goal = { max = CAP + 1 },
}
server:stop()

-- 2. Overhead per call.
local provider = po.llm.provider("lua", {
  model = "bench",
  fn = function()
    return { text = "ok", usage = { input = 10, output = 2 } }
  end,
})
local function router(shared)
  return po.llm.router { deployments = { { provider = provider, rpm = 1e9, tpm = 1e12 } },
    budget = { usd = 1e9, tokens = 1e12 }, shared = shared }
end
local shared = router { redis = redis.url, name = "overhead" }
local plain = router()
local CALLS, CONCURRENT = 2000, 50
local seq = 0
local function sequential(r)
  return function()
    for _ = 1, CALLS do
      seq = seq + 1
      assert(r:complete { prompt = "request " .. seq })
    end
    r:flush()
  end
end
local function concurrent(r)
  return function()
    for _ = 1, CALLS / CONCURRENT do
      local futs = {}
      for i = 1, CONCURRENT do
        seq = seq + 1
        futs[i] = r:complete_async { prompt = "request " .. seq }
      end
      assert(po.all(futs))
    end
    r:flush()
  end
end
lib.compare {
  name = "router: shared limits",
  case = "overhead per call, budget + rpm + tpm in Redis (127.0.0.1) vs in the process, one call at a time",
  subject = { label = "shared", fn = sequential(shared) },
  baseline = { label = "local", fn = sequential(plain) },
  ops = CALLS,
  unit = "us",
  runs = 5,
}
lib.compare {
  name = "router: shared limits",
  case = "the same, 50 calls at once (po.async tasks)",
  subject = { label = "shared", fn = concurrent(shared) },
  baseline = { label = "local", fn = concurrent(plain) },
  ops = CALLS,
  unit = "us",
  runs = 5,
}
redis_server.stop_temp(redis)
