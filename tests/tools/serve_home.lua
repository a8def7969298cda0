--- Test helper for poengine serve: real optimizer runs in a home directory,
--- a task file that `poengine optimize` can run, and a Server-Sent Events
--- reader.
---
---   local home = require "tests.tools.serve_home"
---   home.task_file(dir, id, cycles)   → path of a task file (bench_spin search)
---   home.run(home_dir, id, cycles)    → the result of a real run under home_dir/runs/id
---   home.sse()                        → a parser: feed(chunk) → new events { id, event, data }
local po = require "poengine"
local proc = require "tests.tools.proc"

local M = {}

local build = os.getenv("POENGINE_BUILD_DIR") or "build"

-- A search over bench_spin's rounds (its run time): the halved rounds are
-- faster, the rest the same; each cycle tries two points.
local TASK = [[
local po = require "poengine"
local spin = %q
return {
  id = %q,
  workdir = %q,
  target_files = { "rounds.txt" },
  method = "search",
  space = { rounds = { 40000, 20000, 10000, 5000, 2500, 1250 } },
  strategy = "grid",
  baseline_params = { rounds = 40000 },
  candidates_per_cycle = 2,
  apply_params = function(params, dir)
    assert(po.files.write({ { path = "rounds.txt", content = tostring(params.rounds) .. "\n" } }, { root = dir })[1].ok)
  end,
  validators = { { name = "check", run = { "sh", "-c", "test -s rounds.txt" } } },
  objective = {
    validator = po.validate.benchmark { name = "spin", argv = { "sh", "-c", spin .. " $(cat rounds.txt)" },
      metric = function(r) return tonumber(r.stdout) end },
    direction = "min", alpha = 0.01, min_effect = 0.05,
  },
  budget = { cycles = %d },
}
]]

--- A task file for run `id` over a fresh workdir under `dir`.
function M.task_file(dir, id, cycles)
  local work = dir .. "/work-" .. id
  assert(os.execute("mkdir -p " .. proc.quote(work)) == 0)
  assert(po.write_file(work .. "/rounds.txt", "40000\n"))
  local spin = build .. "/tests/bench_spin"
  if spin:sub(1, 1) ~= "/" then
    spin = os.getenv("PWD") .. "/" .. spin
  end
  local path = dir .. "/task-" .. id .. ".lua"
  assert(po.write_file(path, TASK:format(spin, id, work, cycles or 1)))
  return path
end

--- A real run of `cycles` cycles under home/runs/id, in this process.
function M.run(home, id, cycles, opts)
  local task = dofile(M.task_file(home, id, cycles))
  local o = { output = home .. "/runs/" .. id, quiet = true }
  for k, v in pairs(opts or {}) do
    o[k] = v
  end
  return assert(po.optimizer.run(task, o))
end

--- An SSE parser: feed(chunk) returns the events completed by it, each
--- { id =, event =, data = (decoded JSON, or the text) }; comments dropped.
function M.sse()
  local buf = ""
  return function(chunk)
    buf = buf .. chunk
    local out = {}
    while true do
      local s, e = buf:find("\n\n", 1, true)
      if not s then
        break
      end
      local block = buf:sub(1, s - 1)
      buf = buf:sub(e + 1)
      local ev = {}
      for line in (block .. "\n"):gmatch("([^\n]*)\n") do
        local field, value = line:match("^(%a+): ?(.*)$")
        if field then
          ev[field] = (ev[field] and ev[field] .. "\n" or "") .. value
        end
      end
      if ev.data then
        ev.data = po.json.decode(ev.data) or ev.data
        out[#out + 1] = ev
      end
    end
    return out
  end
end

return M
