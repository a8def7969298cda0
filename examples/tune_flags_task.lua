-- tune_flags_task.lua: the task of examples/tune_flags.lua (gcc flags for the
-- nbody benchmark, by hill climbing), also for `poengine optimize examples/tune_flags_task.lua`.
-- A task file returns a task table; relative paths are taken from the
-- file's directory. See docs/optimizer.md for every field.
local expected -- the -O0 build's output, computed on first use

local function reference_output(dir)
  if not expected then
    local ref = dir .. "/nbody-reference"
    local b = po.run_sync { argv = { "cc", "-O0", "-o", ref, dir .. "/nbody.c", "-lm" } }
    assert(b.status == "ok", "cannot build the reference: " .. b.stderr)
    expected = po.run_sync { argv = { ref, "20000" } }.stdout
    os.remove(ref)
  end
  return expected
end

return {
  id = "tune-flags",
  description = "compiler flags for nbody.c",
  workdir = "projects/nbody",
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
  apply_params = function(params, dir)
    local flags = table.concat({ params.opt, params.unroll, params.march, params.inline }, " ")
    local r = po.files.write({ { path = "flags.txt", content = flags .. "\n" } }, { root = dir })
    assert(r[1].ok, r[1].err)
  end,
  validators = {
    po.validate.command { name = "build", stage = 1, argv = { "sh", "-c", "cc $(cat flags.txt) -o nbody nbody.c -lm" } },
    { name = "same output", stage = 2, run = { "./nbody", "20000" }, timeout = 60,
      parse = function(result, candidate)
        if result.stdout == reference_output(candidate.dir) then
          return true
        end
        return false, { errors = { "output differs from the -O0 build: " .. result.stdout:gsub("\n", " ") } }
      end },
  },
  objective = {
    validator = po.validate.benchmark { name = "speed", argv = { "./nbody", "300000" }, repeats = 5 },
    direction = "min",
    metric = "seconds for 300,000 steps",
  },
  candidates_per_cycle = 4,
  budget = { cycles = 3 },
}
