-- The LLM client (issue 6 benchmarks):
--   1. 64 concurrent requests against the test server with 200 ms of latency
--      each: wall time beside the ideal 0.2 s (a 0.2 s sleep), and beside the
--      Python reference client (baselines/llm_client.py: urllib and a thread
--      pool) sending the same requests.
--   2. Router overhead per call, the network excluded (a lua provider): no
--      cache (outside a task, and inside one, where a call registers its
--      cancel hook), a cache miss and a cache hit, beside calling the
--      provider directly. Every call reserves its worst case in a budget.
local po = require "poengine"
local lib = require "tests.bench.lib"
local llm_server = require "tests.tools.llm_server"

local server = llm_server.start()
local N = 64
local url = server.url .. "/v1/chat/completions"
local body = po.json.encode { model = "m#delay=0.2", messages = { { role = "user", content = "benchmark" } } }

local function batch()
  local futs = {}
  for i = 1, N do
    futs[i] = assert(po.http.request { method = "POST", url = url, body = body,
      headers = { ["Content-Type"] = "application/json" } })
  end
  local all = assert(po.all(futs))
  for i = 1, N do
    assert(all[i].status == 200)
  end
end

-- The Python client runs warm in its own process; a FIFO says when a batch is done.
local tmp = os.tmpname()
local body_file, fifo = tmp .. ".json", tmp .. ".fifo"
local f = assert(io.open(body_file, "wb"))
f:write(body)
f:close()
assert(os.execute("mkfifo '" .. fifo .. "'") == 0)
local py = assert(io.popen("exec python3 tests/bench/baselines/llm_client.py '" .. url .. "' '" .. body_file .. "' "
  .. N .. " '" .. fifo .. "'", "w"))
local done = assert(io.open(fifo, "r"))
local function python_batch()
  py:write("go\n")
  py:flush()
  assert(done:read("*l") == "done", "the Python client failed")
end

lib.compare {
  name = "llm http",
  case = "64 concurrent requests, 200 ms each, vs the ideal 0.2 s",
  subject = { label = "po.http", fn = batch },
  baseline = { label = "ideal: 0.2 s", fn = function() po.sleep(0.2) end },
  unit = "ms",
  runs = 7,
  goal = { max_ratio = 1.25 },
}

lib.compare {
  name = "llm http",
  case = "64 concurrent requests, 200 ms each, vs Python urllib + 64 threads",
  subject = { label = "po.http", fn = batch },
  baseline = { label = "python urllib", fn = python_batch },
  unit = "ms",
  runs = 7,
  goal = { max_ratio = 1 },
}

py:write("stop\n")
py:close()
done:close()
os.remove(body_file)
os.remove(fifo)
server:stop()

-- Router overhead, no network: a lua provider that answers at once.
local provider = po.llm.provider("lua", {
  model = "bench",
  fn = function(req)
    return { text = "ok", usage = { input = 10, output = 2 } }
  end,
})
local cache = assert(po.cache.open { namespace = "llm-bench" })
cache:clear()
local budget = { usd = 1e9, tokens = 1e12 } -- never reached: the reservation's cost is what is measured
local router = po.llm.router { deployments = { { provider = provider } }, cache = cache, budget = budget }
local plain = po.llm.router { deployments = { { provider = provider } }, budget = budget }
local CALLS = 20000
local seq = 0

local function direct()
  for _ = 1, CALLS do
    seq = seq + 1
    provider:complete { prompt = "request " .. seq }
  end
end

-- One row: CALLS router calls, prompts from prompt(), beside CALLS direct calls.
local function router_row(case, r, prompt, max_ratio)
  lib.compare {
    name = "llm router",
    case = case,
    subject = { label = "router:complete", fn = function()
      for _ = 1, CALLS do
        r:complete { prompt = prompt() }
      end
    end },
    baseline = { label = "provider:complete", fn = direct },
    ops = CALLS,
    unit = "us",
    goal = { max_ratio = max_ratio },
  }
end

local function fresh()
  seq = seq + 1
  return "request " .. seq
end

router_row("overhead per call, no cache, network excluded (lua provider)", plain, fresh, 3)
lib.compare {
  name = "llm router",
  case = "overhead per call, no cache, inside a po.async task (cancel hook registered)",
  subject = { label = "router:complete", fn = function()
    po.async(function()
      for _ = 1, CALLS do
        plain:complete { prompt = fresh() }
      end
    end):wait()
  end },
  baseline = { label = "provider:complete", fn = function()
    po.async(direct):wait()
  end },
  ops = CALLS,
  unit = "us",
  goal = { max_ratio = 3 },
}
router_row("overhead per call, cache miss (lookup + store), network excluded", router, fresh, 5)
assert(router:complete { prompt = "the cached one" })
router_row("overhead per call, cache hit, network excluded", router, function() return "the cached one" end, 3)
cache:close()
