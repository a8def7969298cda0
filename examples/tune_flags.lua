-- tune_flags.lua: the `search` proposer tuning gcc flags for a bundled C
-- benchmark, with no LLM at all.
--
-- The project is examples/projects/nbody (a small gravity simulation that
-- prints the system's energy to fifteen decimals). Each candidate is a set
-- of compiler flags. Its validators build the program with those flags and
-- check that its output is exactly the output of the -O0 build — a flag that
-- changes the arithmetic (fused multiply-add from -march=native, say) is
-- rejected however fast it is — and, once every build and check of the
-- cycle has finished, the objective times a longer run of each survivor
-- beside the current baseline (measured again in every cycle), interleaved
-- and pinned to one CPU, until the verdict is clear. Hill climbing starts
-- from -O0 and moves one flag at a time. The task itself is the task file
-- examples/tune_flags_task.lua, which `poengine optimize` runs as well.
--
--   scripts/run examples/tune_flags.lua [cycles]

local here = (arg and arg[0] or "examples/tune_flags.lua"):match("^(.*)/[^/]*$") or "."
local task = assert(po.optimizer.load_task(here .. "/tune_flags_task.lua"))
-- A run id of its own: `poengine optimize examples/tune_flags_task.lua` keeps
-- its history under "tune-flags", this flow under "tune-flags-flow", and
-- `poengine dashboard tune-flags-flow` shows this one.
task.id = "tune-flags-flow"
task.budget.cycles = tonumber(arg and arg[1]) or task.budget.cycles

local result = assert(po.optimizer.run(task, { output = os.getenv("POENGINE_RUN_DIR"), progress = print }))
if result.warning then
  print("WARNING: " .. result.warning)
end
print(string.format("stopped after %d cycles (%s)", result.cycles, result.stopped))
if result.best_params then
  local p = result.best_params
  print("best flags: " .. table.concat({ p.opt, p.unroll, p.march, p.inline }, " "):gsub("%s+", " "))
end
if result.final then
  local f = result.final
  print(string.format("-O0 took %.3f s, the best flags %.3f s: %.2fx faster (%s, measured side by side)",
    f.original, f.best, f.speedup, f.verdict))
  print(string.format("accepted chain: %.2fx; final check: %.2fx [%s, %s]", result.chain_speedup, f.speedup,
    f.ci_low and string.format("%.2f", f.ci_low) or "?", f.ci_high and string.format("%.2f", f.ci_high) or "?"))
end
print("events: " .. result.events)
