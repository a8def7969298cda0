-- Do the optimizer's verdicts hold? Runs examples/tune_flags_task.lua (the
-- task of examples/tune_flags.lua, 3 cycles) `runs` times and, after each
-- run, times every accepted step again beside the version it replaced —
-- each built afresh in a directory of its own, by the rule the cycles use
-- (optimizer/timing.lua: interleaved, warm-up, pinned, decide.sequential)
-- — and reports the share of accepted candidates confirmed "faster", with
-- the run's own final check (original against best) and the chain it
-- claimed. Not a *_bench.lua: scripts/bench does not run it (it takes
-- minutes); docs/benchmarks.md, "Verdicts: the optimizer on tune_flags",
-- holds its figures.
--   poengine tests/bench/tune_flags_verdicts.lua [runs]
local po = require "poengine"
local timing = require "poengine.optimizer.timing"

local runs = tonumber(arg and arg[1]) or 2
local source = os.getenv("POENGINE_SOURCE_DIR") or "."
local nbody = source .. "/examples/projects/nbody/nbody.c"

local function flags(p)
  return (table.concat({ p.opt, p.unroll, p.march, p.inline }, " "):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

-- A directory holding nbody built with the flags of params p.
local function build(root, name, p)
  local dir = root .. "/" .. name
  assert(po.run_sync({ argv = { "mkdir", "-p", dir } }).status == "ok")
  local r = po.run_sync { cmd = "cc " .. flags(p) .. " -o " .. dir .. "/nbody " .. nbody .. " -lm", shell = true }
  assert(r.status == "ok", r.stderr)
  return dir
end

local confirmed, accepted, final_ok, started = 0, 0, 0, po.now()
for run = 1, runs do
  local task = assert(po.optimizer.load_task(source .. "/examples/tune_flags_task.lua"))
  local out = os.tmpname()
  os.remove(out)
  local t0 = po.now()
  local result = assert(po.optimizer.run(task, { output = out, quiet = true }))
  local secs = po.now() - t0
  local f = result.final
  print(("run %d: %d cycles in %.0f s, %d accepted, chain %.2fx; final check %s %.2fx [%s, %s]%s"):format(run,
    result.cycles, secs, #result.accepted, result.chain_speedup or 1, f and f.verdict or "-", f and f.speedup or 0,
    f and f.ci_low and ("%.2f"):format(f.ci_low) or "?", f and f.ci_high and ("%.2f"):format(f.ci_high) or "?",
    result.warning and (" — " .. result.warning) or ""))
  -- What each cycle's timing phase said of its candidates.
  local per_cycle = {}
  for line in io.lines(result.events) do
    local e = po.json.decode(line)
    if e.kind == "candidate" then
      local c = per_cycle[e.cycle] or {}
      per_cycle[e.cycle] = c
      local what = e.verdict or ("failed " .. tostring(e.stage or "(unusable)"))
      c[what] = (c[what] or 0) + 1
    elseif e.kind == "timing" then
      local c = per_cycle[e.cycle] or {}
      per_cycle[e.cycle] = c
      c.timed_runs = #e.runs
    end
  end
  for k, c in ipairs(per_cycle) do
    local parts = {}
    for what, n in pairs(c) do
      if what ~= "timed_runs" then
        parts[#parts + 1] = n .. " " .. what
      end
    end
    table.sort(parts)
    print(("  cycle %d: %s; %d timed runs"):format(k, table.concat(parts, ", "), c.timed_runs or 0))
  end
  if f and f.verdict == "faster" then
    final_ok = final_ok + 1
  end
  local before = task.baseline_params
  for i, a in ipairs(result.accepted) do
    accepted = accepted + 1
    local arms = {
      [0] = { id = "before", cand = { dir = build(out, "before" .. i, before) } },
      { id = "after", cand = { dir = build(out, "after" .. i, a.params) } },
    }
    local res = assert(timing.run(task.objective, arms, { seed = 1000 * run + i }))
    local r = res.results[1]
    if r.verdict == "faster" then
      confirmed = confirmed + 1
    end
    print(("  cycle %d: %s -> %s, claimed %.2fx [%s, %s]; timed again %.2fx [%s, %s] %s, %d runs each"):format(
      a.cycle, flags(before), flags(a.params), a.speedup, a.ci_low and ("%.2f"):format(a.ci_low) or "?",
      a.ci_high and ("%.2f"):format(a.ci_high) or "?", r.speedup, r.ci_low and ("%.2f"):format(r.ci_low) or "?",
      r.ci_high and ("%.2f"):format(r.ci_high) or "?", r.verdict, r.runs))
    before = a.params
  end
  po.run_sync { argv = { "rm", "-rf", out } }
end
print(("accepted candidates confirmed: %d of %d; final checks \"faster\": %d of %d; %.0f s in all"):format(
  confirmed, accepted, final_ok, runs, po.now() - started))
