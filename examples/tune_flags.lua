-- tune_flags.lua: the `search` proposer tuning gcc flags for a bundled C
-- benchmark, with no LLM at all.
--
-- The project is examples/projects/nbody (a small gravity simulation that
-- prints the system's energy to fifteen decimals). Each candidate is a set
-- of compiler flags. Its validators build the program with those flags and
-- check that its output is exactly the output of the -O0 build — a flag that
-- changes the arithmetic (fused multiply-add from -march=native, say) is
-- rejected however fast it is — and the objective times a longer run beside
-- the current baseline, measured again in every cycle. Hill climbing starts
-- from -O0 and moves one flag at a time.
--
--   scripts/run examples/tune_flags.lua [cycles]

local here = (arg and arg[0] or "examples/tune_flags.lua"):match("^(.*)/[^/]*$") or "."
local project = here .. "/projects/nbody"
local cycles = tonumber(arg and arg[1]) or 4

-- The output every candidate must reproduce: the -O0 build's.
local ref_dir = os.tmpname()
os.remove(ref_dir)
assert(po.run_sync { argv = { "mkdir", "-p", ref_dir } }.status == "ok")
local build = po.run_sync { argv = { "cc", "-O0", "-o", ref_dir .. "/nbody", project .. "/nbody.c", "-lm" } }
assert(build.status == "ok", "cannot build the reference: " .. build.stderr)
local expected = po.run_sync { argv = { ref_dir .. "/nbody", "20000" } }.stdout
po.run_sync { argv = { "rm", "-rf", ref_dir } }

local task = {
  id = "tune-flags",
  description = "compiler flags for nbody.c",
  workdir = project,
  target_files = { "nbody.c" },
  method = "search",
  strategy = "hill",
  seed = 7,
  space = {
    opt = { "-O0", "-O1", "-O2", "-O3" },
    unroll = { "", "-funroll-loops" },
    march = { "", "-march=native" },
    inline = { "", "-finline-functions" },
  },
  baseline_params = { opt = "-O0", unroll = "", march = "", inline = "" },
  -- A point of the space reaches the build as flags.txt in the sandbox.
  apply_params = function(params, dir)
    local flags = table.concat({ params.opt, params.unroll, params.march, params.inline }, " ")
    local r = po.batch.write({ { path = "flags.txt", content = flags .. "\n" } }, { root = dir })
    assert(r[1].ok, r[1].err)
  end,
  validators = {
    po.validate.command { name = "build", stage = 1,
      argv = { "sh", "-c", "cc $(cat flags.txt) -o nbody nbody.c -lm" } },
    { name = "same output", stage = 2, run = { "./nbody", "20000" }, timeout = 60,
      parse = function(result)
        if result.stdout == expected then
          return true
        end
        return false, { errors = { "output differs from the -O0 build: " .. result.stdout:gsub("\n", " ") } }
      end },
  },
  objective = {
    validator = po.validate.benchmark { name = "speed", argv = { "./nbody", "300000" }, repeats = 5, warmup = 1 },
    direction = "min",
    metric = "seconds for 300,000 steps",
  },
  candidates_per_cycle = 4,
  budget = { cycles = cycles },
}

local result = po.optimizer.run(task, { output = os.getenv("POENGINE_RUN_DIR") })
print(string.format("stopped after %d cycles (%s)", result.cycles, result.stopped))
if result.best_params then
  local p = result.best_params
  print("best flags: " .. table.concat({ p.opt, p.unroll, p.march, p.inline }, " "):gsub("%s+", " "))
end
if result.final then
  print(string.format("-O0 took %.3f s, the best flags %.3f s: %.2fx faster (%s, measured side by side)",
    result.final.original, result.final.best, result.final.speedup, result.final.verdict))
end
print("events: " .. result.events)
