-- Dashboard rendering. At 1,000 cycles: the text summary and the Markdown
-- report beside a Python reference of the reference design's dashboard
-- (tests/bench/baselines/dashboard_reference.py, kept running as a server so
-- its start-up is not timed; each side computes the statistics and renders,
-- as at every redraw). At 10,000 cycles: every format, HTML included, with
-- an absolute goal (no baseline): under 100 ms, so --watch stays cheap; and
-- the text dashboard of a 10,000-cycle store, reading included.
local po = require "poengine"
local lib = require "tests.bench.lib"
local sample = require "tests.tools.sample_run"

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The Python reference, as a server over a pipe (commands) and a FIFO (replies).
local function reference(cycles)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. shell_quote(dir)) == 0)
  local data, fifo = dir .. "/cycles.json", dir .. "/reply"
  local f = assert(io.open(data, "w"))
  f:write(po.json.encode(cycles))
  f:close()
  assert(os.execute("mkfifo " .. shell_quote(fifo)) == 0)
  local script = "tests/bench/baselines/dashboard_reference.py"
  local cmd = assert(io.popen("python3 " .. script .. " " .. shell_quote(data) .. " " .. shell_quote(fifo), "w"))
  local reply = assert(io.open(fifo, "r"))
  return {
    render = function(kind, n)
      cmd:write(kind, " ", n, "\n")
      cmd:flush()
      local line = reply:read("*l")
      assert(line and line:match("^ok %d+$"), "the Python reference failed: " .. tostring(line))
    end,
    close = function()
      cmd:close()
      reply:close()
      os.execute("rm -rf " .. shell_quote(dir))
    end,
  }
end

local SECTIONS = { "overall", "cycles", "llm", "validation", "progress", "recent" }

local cycles_1k = sample(1000)
local py = reference(cycles_1k)
local d1k = po.dashboard.new(cycles_1k, { sections = SECTIONS })
local n = 20
for _, kind in ipairs { { "text", "text summary" }, { "markdown", "Markdown report" } } do
  lib.compare {
    name = "dashboard",
    case = kind[2] .. ", 1,000 cycles",
    subject = { label = "po.dashboard", fn = function()
      for _ = 1, n do
        d1k:render(kind[1])
      end
    end },
    baseline = { label = "Python reference", fn = function()
      py.render(kind[1], n)
    end },
    ops = n,
    unit = "ms",
    goal = { min_speedup = 5 },
  }
end
py.close()

local cycles_10k = sample(10000)
local d10k = po.dashboard.new(cycles_10k)
for _, format in ipairs { "text", "markdown", "json", "csv", "html", "prometheus" } do
  lib.record {
    name = "dashboard",
    case = format .. ", 10,000 cycles",
    subject = { label = "po.dashboard", fn = function()
      d10k:render(format)
    end },
    unit = "ms",
    goal = { max = 100 },
  }
end

-- What `poengine dashboard --watch` does at each redraw: read the store, render text.
local dir = os.tmpname()
os.remove(dir)
local col = assert(po.metrics.collector { path = dir, max_history = 10000, durability = "none" })
for i = 1, 10000 do
  local r = cycles_10k[i]
  local id = r.cycle_id
  col:start_cycle(id, r.metadata)
  for _ = 1, r.llm_calls do
    col:record_llm_call(id, { cache_hit = false, tokens_in = 100, tokens_out = 20, cost = 0.001 })
  end
  col:record_validation(id, r.validation_time, r.validation_count)
  col:record_score(id, r.score, r.best_score)
  col:end_cycle(id, r.success, r.error)
end
col:close()
local dstore = po.dashboard.new(dir, { sections = SECTIONS })
lib.record {
  name = "dashboard",
  case = "text of a 10,000-cycle store, reading included",
  subject = { label = "po.dashboard", fn = function()
    assert(dstore:render("text"))
  end },
  unit = "ms",
  goal = { max = 100 },
}
os.execute("rm -rf " .. shell_quote(dir))
