-- The cycle collector with persistence: cost per cycle at a history of
-- 1,000, 5,000 and 10,000 cycles, beside the reference design's collector
-- (tests/bench/baselines/collector_reference.py, which rewrites its whole
-- JSON file after every cycle). Each cycle: start_cycle with metadata, two
-- LLM calls (a miss and a hit), a validation, a file operation, end_cycle.
--
-- poengine's history is built by running the cycles through the collector
-- (10,000 for the largest), with max_history equal to the history, so every
-- timed cycle also trims the oldest; a timed run is the next 100 cycles.
-- The reference is started on a history file of the same size and times its
-- next 10 cycles itself (at 5,000 cycles one takes about a third of a
-- second); both sides are reported per cycle.
local po = require "poengine"
local lib = require "tests.bench.lib"

local WINDOW, REF_WINDOW = 100, 10

local function tempdir()
  local path = os.tmpname()
  os.remove(path)
  assert(os.execute("mkdir -p '" .. path .. "'") == 0)
  return path
end

local function one_cycle(col, id)
  col:start_cycle(id, { strategy = "bench", round = id })
  col:record_llm_call(id, { cache_hit = false, tokens_in = 1200, tokens_out = 300, cost = 0.004, latency = 0.8,
    provider = "openai" })
  col:record_llm_call(id, { cache_hit = true, tokens_in = 1200, tokens_out = 300, cost = 0.004, latency = 0.001,
    provider = "openai" })
  col:record_validation(id, 0.25, 3)
  col:record_file_operation(id, 2)
  assert(col:end_cycle(id, true))
end

local dirs = {}

-- A collector on a store holding `history` cycles, and a function running
-- the next WINDOW cycles on it.
local function poengine_at(history)
  local dir = tempdir()
  dirs[#dirs + 1] = dir
  local col = assert(po.metrics.collector { path = dir, max_history = history, name = "bench" .. history })
  for i = 1, history do one_cycle(col, i) end
  assert(col:count() == history)
  local next_id = history
  return function()
    for _ = 1, WINDOW do
      next_id = next_id + 1
      one_cycle(col, next_id)
    end
  end
end

local python = "/usr/bin/python3"
local script = "tests/bench/baselines/collector_reference.py"

local function reference_at(history)
  local file = os.tmpname()
  return function()
    local p = assert(io.popen(("%s %s %s %d %d"):format(python, script, file, history, REF_WINDOW)))
    local seconds = tonumber(p:read("*l"))
    p:close()
    os.remove(file)
    return assert(seconds, "the reference collector failed") * WINDOW / REF_WINDOW
  end
end

local at1k, at5k, at10k = poengine_at(1000), poengine_at(5000), poengine_at(10000)

lib.compare {
  name = "collector", case = "cycle with persistence, history 1,000: poengine vs the reference",
  subject = { label = "poengine", fn = at1k }, baseline = { label = "Python reference", fn = reference_at(1000) },
  ops = WINDOW, unit = "us", runs = 5,
}
lib.compare {
  name = "collector", case = "cycle with persistence, history 5,000: poengine vs the reference",
  subject = { label = "poengine", fn = at5k }, baseline = { label = "Python reference", fn = reference_at(5000) },
  ops = WINDOW, unit = "us", runs = 5, goal = { min_speedup = 20 },
}
lib.compare {
  name = "collector", case = "growth with history: poengine at 10,000 vs at 1,000",
  subject = { label = "history 10,000", fn = at10k }, baseline = { label = "history 1,000", fn = at1k },
  ops = WINDOW, unit = "us", runs = 7, goal = { max_ratio = 1.5 },
}
lib.compare {
  name = "collector", case = "growth with history: the reference at 5,000 vs at 1,000",
  subject = { label = "history 5,000", fn = reference_at(5000) },
  baseline = { label = "history 1,000", fn = reference_at(1000) },
  ops = WINDOW, unit = "us", runs = 3,
}

for _, dir in ipairs(dirs) do os.execute("rm -rf '" .. dir .. "'") end
