-- The optimization cycle: a cycle of 4 candidates whose validator takes 1 s,
-- validated in parallel beside the same cycle run one candidate after
-- another (the reference design claimed 2x from parallel validation without
-- measuring it); and the share of LLM calls the cache served in 20-cycle runs
-- of the quickstart, from an empty cache and then again.
local po = require "poengine"
local lib = require "tests.bench.lib"

local work = os.tmpname()
os.remove(work)
assert(po.run_sync { argv = { "mkdir", "-p", work } }.status == "ok")
assert(po.files.write({ { path = "value.txt", content = "x\n" } }, { root = work })[1].ok)
local out = work .. "-runs"

local function cycle(parallel)
  return function()
    local n = 0
    po.optimizer.run({
      id = "bench-cycle",
      workdir = work,
      target_files = { "value.txt" },
      method = function(state)
        local list = {}
        for i = 1, 4 do
          n = n + 1
          list[i] = { params = { n = n } }
        end
        return list
      end,
      apply_params = function() end,
      validators = { { name = "one second", run = { "sleep", "1" } } },
      objective = {
        -- A constant score: no candidate is accepted, so the run is exactly
        -- one cycle (no final comparison).
        validator = po.validate.benchmark { name = "score", argv = { "true" }, repeats = 1, warmup = 0,
          metric = function() return 1 end },
        direction = "min",
      },
      budget = { cycles = 1 },
    }, { output = out, quiet = true, parallel = parallel })
  end
end

-- Five one-second cascades (the baseline's and four candidates') at most
-- `limit` at a time take ceil(5 / limit) seconds: the ideal ratio is
-- 5 / ceil(5 / limit); the goal is 90% of it.
local function ideal(limit)
  return 5 / math.ceil(5 / limit)
end
local cores = po.pool.cpu_count()
lib.compare {
  name = "optimizer",
  case = ("one cycle, 4 candidates and the baseline, a 1 s validator each, child processes limited to the %d cores "
    .. "(ideal %.2fx): parallel vs one after another"):format(cores, ideal(cores)),
  subject = { label = "parallel", fn = cycle(true) },
  baseline = { label = "sequential", fn = cycle(false) },
  runs = 3,
  warmup = false,
  unit = "s",
  goal = { min_speedup = 0.9 * ideal(cores) },
}
-- The validators here only wait (sleep), so the machine could run all five
-- at once: the same comparison with the limit raised to 5.
po.validate.configure { concurrency = 5 }
lib.compare {
  name = "optimizer",
  case = "the same cycle with the child-process limit raised to 5 (validators that wait rather than compute; ideal 5x)",
  subject = { label = "parallel", fn = cycle(true) },
  baseline = { label = "sequential", fn = cycle(false) },
  runs = 3,
  warmup = false,
  unit = "s",
  goal = { min_speedup = 0.9 * ideal(5) },
}
po.validate.configure { concurrency = cores }
po.run_sync { argv = { "rm", "-rf", work, out } }

-- The cache's share of the quickstart's LLM calls over 20 cycles (it stops
-- earlier when two cycles in a row accept nothing).
local home = os.tmpname()
os.remove(home)
local function quickstart_share()
  local r = po.run_sync { argv = { "env", "-u", "OPENAI_API_KEY", "-u", "ANTHROPIC_API_KEY", "-u", "OLLAMA_HOST",
    "POENGINE_HOME=" .. home, po.executable(), "examples/quickstart.lua", "20" }, timeout = 600 }
  assert(r.status == "ok", r.stderr)
  local calls, hits = r.stdout:match("LLM calls: (%d+), answered from the cache: (%d+)")
  return tonumber(hits) / tonumber(calls), tonumber(calls)
end
local first, calls1 = quickstart_share()
local second, calls2 = quickstart_share()
po.run_sync { argv = { "rm", "-rf", home } }
lib.record {
  name = "optimizer",
  case = ("quickstart, 20 cycles (stops after 2 without progress): share of LLM calls served by the cache, "
    .. "second run (%d calls) vs first run from an empty cache (%d calls)"):format(calls2, calls1),
  subject = { label = "second run", value = second },
  baseline = { label = "first run", value = first },
  unit = "share",
}
