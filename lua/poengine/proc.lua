--- Child processes: po.run and po.run_sync.
---
--- The mechanism is C (src/core/proc.c): each child in its own process
--- group, output drained through the event loop, SIGTERM to the group at the
--- deadline and SIGKILL after `kill_grace`. See docs/scripting.md.
local core = require "poengine_core"

local M = {}

---@class poengine.RunResult
---@field status "ok"|"failed"|"timeout"|"error"
---@field code? integer exit status (absent when killed by a signal or never started)
---@field signal? string the signal that ended it ("SIGKILL")
---@field stdout string
---@field stderr string
---@field truncated boolean
---@field duration number seconds
---@field pid? integer
---@field error? string why it could not start (status "error")

local core_run = core.run

--- Starts a child process and returns a future of its result table. With
--- `executor` ("local", "slurm", "default" or { kind =, ... }) it runs
--- there instead (poengine.executor); without, it is a local child.
---@param spec { argv?: string[], cmd?: string, shell?: boolean, cwd?: string, env?: table<string, string|false>, inherit_env?: boolean, stdin?: string, timeout?: number, kill_grace?: number, output_limit?: integer, cpu?: integer, executor?: string|table }
---@return poengine.Future
function M.run(spec)
  if type(spec) == "table" and spec.executor ~= nil then
    return require("poengine.executor").run(spec)
  end
  return core_run(spec)
end

--- The CPUs this process may run on (its affinity mask), ascending: the
--- values `po.run{ cpu = }` accepts.
---@return integer[]|nil cpus, string? err, string? code
M.cpus = core.cpus

--- Runs a child process and waits for it (inside po.async: yields the task).
---@param spec table as for po.run
---@return poengine.RunResult|nil result, string? err, string? code
function M.run_sync(spec)
  return M.run(spec):wait()
end

return M
