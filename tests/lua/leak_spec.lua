-- Nothing piles up with use: each workload runs once to warm up (JIT
-- traces, caches, pools reach their size), then twice more; the Lua heap
-- and the open descriptors after the third run must be within a small
-- bound of those after the second. A leak of even a few bytes per task,
-- entry or process shows at these counts (10,000 tasks, 10,000 cache
-- operations, 300 child processes per run).
local po = require "poengine"
local proc = require "tests.tools.proc"
local procstat = require "tests.tools.procstat"

local HEAP_BOUND = 256 * 1024 -- bytes; 10,000 tasks leaking 1 KB each would be 10 MB

-- Runs work three times; returns the samples after the second and third.
local function twice_after_warmup(work)
  work()
  work()
  local first = procstat.sample()
  work()
  local second = procstat.sample()
  return first, second
end

local function assert_flat(first, second)
  assert.is_true(second.heap - first.heap <= HEAP_BOUND,
    ("the Lua heap grew from %d to %d bytes"):format(first.heap, second.heap))
  assert.are.equal(first.fds, second.fds, "open descriptors")
end

describe("leaks", function()
  it("none in 10,000 async tasks and their results", function()
    local payload = ("x"):rep(1000)
    assert_flat(twice_after_warmup(function()
      local futures = {}
      for i = 1, 10000 do
        futures[i] = po.async(function(n)
          if n % 2 == 0 then
            coroutine.yield() -- half of them wait for a turn of the loop
          end
          return payload .. n
        end, i)
      end
      local results = assert(po.all(futures))
      assert.are.equal(10000, results.n)
    end))
  end)

  it("none in 10,000 cache operations on a store, the cache opened and closed each time", function()
    local dir = proc.tempdir()
    local value = ("v"):rep(200)
    assert_flat(twice_after_warmup(function()
      local cache = assert(po.cache.open { path = dir, max_entries = 500, sync = "none" })
      for i = 1, 2500 do
        local key = { model = "m", prompt = "p" .. i % 700 }
        assert(cache:set(key, value))
        cache:get(key)
        cache:get { model = "m", prompt = "absent" .. i }
        if i % 10 == 0 then
          cache:delete(key)
        end
      end
      cache:close()
    end))
    proc.rmdir(dir)
  end)

  it("none in 300 child processes, their output and a timed-out one", function()
    assert_flat(twice_after_warmup(function()
      local futures = {}
      for i = 1, 300 do
        futures[i] = po.run { argv = { "sh", "-c", "echo out $0; echo err >&2", tostring(i) } }
      end
      for i = 1, 300 do
        local r = assert(futures[i]:wait())
        assert.are.equal("out " .. i .. "\n", r.stdout)
      end
      local r = assert(po.run { argv = { "sleep", "5" }, timeout = 0.05, kill_grace = 0.05 }:wait())
      assert.are.equal("timeout", r.status)
    end))
  end)
end)
