--- Two runs' bests timed against each other, as the optimizer's final
--- check times the original beside the best (poengine.optimizer.result):
--- each best rebuilt in a sandbox of the task's workdir from its run's last
--- checkpoint (the best's files and parameters), both through the task's
--- validators, then timed interleaved by the task's objective with the
--- cycles' own rule (poengine.optimizer.timing).
---
--- A run does not record the task file it was made from, so the caller
--- names it: the validators and the objective come from there.
local po = require "poengine"
local checkpoint = require "poengine.optimizer.checkpoint"
local sandbox = require "poengine.optimizer.sandbox"
local task_mod = require "poengine.optimizer.task"
local timing = require "poengine.optimizer.timing"

local M = {}

-- The checked task of the file at path, or nil, message, "ETASK".
local function load_task(path)
  local task, err = task_mod.load(path)
  if not task then
    return nil, err, "ETASK"
  end
  local ok, checked = pcall(task_mod.check, task)
  if not ok then
    return nil, task_mod.explain(path, checked), "ETASK"
  end
  local workdir, werr, wcode = sandbox.absolute(checked.workdir)
  if not workdir then
    return nil, path .. ": task.workdir: " .. werr, wcode
  end
  checked.workdir = workdir
  return checked
end

-- The best of run m: { files, params } from its last checkpoint.
local function best_of(m)
  local cp, err
  local data = io.open(m.dir .. "/store/data.mdb", "rb")
  if data then
    data:close()
    cp, err = checkpoint.last(m.dir .. "/store") -- (which would make a store where there is none)
  end
  if not cp then
    return nil, ("run '%s' has no checkpoint to rebuild its best from%s"):format(m.id,
      err and (": " .. tostring(err)) or " (it finished no cycle)"), "ENOENT"
  end
  return cp.baseline
end

-- A sandbox of the task's workdir holding best's files and parameters.
local function rebuild(task, sandboxes, name, best)
  local dir, err = sandboxes:make(name, best.files or {})
  if not dir then
    return nil, err
  end
  if best.params and task.apply_params then
    local ok, aerr = pcall(task.apply_params, best.params, dir)
    if not ok then
      return nil, "task.apply_params: " .. tostring(aerr)
    end
  end
  return sandbox.candidate(task, dir, name, best.params)
end

-- Validates both arms at once; nil, or the sentence saying which failed.
local function validate(task, arms)
  if #task.validators == 0 then
    return nil
  end
  local failed
  local checks = {}
  for i = 0, 1 do
    checks[#checks + 1] = po.async(function()
      local report = po.validate.run(task.validators, arms[i].cand, { cascade = true })
      if not report.passed then
        failed = ("the best of run '%s' fails the task's validators"):format(arms[i].id)
      end
    end)
  end
  po.all(checks)
  return failed
end

local function time_arms(task, arms, opts)
  local failed = validate(task, arms)
  if failed then
    return nil, failed, "EBENCH"
  end
  local res, err = timing.run(task.objective, arms, { seed = opts.seed or 1, on_round = opts.on_round })
  if not res then
    return nil, err, "EBENCH"
  end
  local r = res.results[1]
  if r.failed then
    return nil, ("the best of run '%s' failed its benchmark: %s"):format(arms[1].id, r.failed), "EBENCH"
  end
  return { a = arms[0].id, b = arms[1].id, a_median = res.baseline.median, b_median = r.stats.median,
    verdict = r.verdict, speedup = r.speedup, ci_low = r.ci_low, ci_high = r.ci_high, runs = r.runs, rule = r.rule,
    direction = task.objective.direction }
end

--- Times run a's best (the baseline arm) beside run b's with the task in
--- the file `task_path`. Returns { a, b (the run ids), a_median, b_median,
--- verdict, speedup (how many times better b's best is, in the objective's
--- direction), ci_low, ci_high, runs, rule, direction }, or nil, message,
--- code (ETASK: the task file; ENOENT: a run without a checkpoint;
--- EBENCH: a best that fails the validators or its benchmark; EIO: no
--- sandbox).
---@param task_path string
---@param a table a run's model
---@param b table a run's model
---@param opts? { seed?: integer, on_round?: fun(round: integer, runs: integer) }
---@return table|nil result, string? message, string? code
function M.time(task_path, a, b, opts)
  opts = opts or {}
  local task, err, code = load_task(task_path)
  if not task then
    return nil, err, code
  end
  local bests = {}
  for i, m in ipairs { a, b } do
    bests[i], err, code = best_of(m)
    if not bests[i] then
      return nil, err, code
    end
  end
  local made = po.run_sync { argv = { "mktemp", "-d", "-t", "poengine-versus.XXXXXX" }, timeout = 30 }
  if made.status ~= "ok" then
    return nil, "cannot make a directory for the sandboxes: " .. (made.stderr or made.status), "EIO"
  end
  local root = made.stdout:gsub("%s+$", "")
  local sandboxes = sandbox.new(task, root)
  local arms = {}
  for i, m in ipairs { a, b } do
    local cand, serr = rebuild(task, sandboxes, m.id .. (i == 1 and "-a" or "-b"), bests[i])
    if not cand then
      err, code = serr, "EIO"
      break
    end
    arms[i - 1] = { id = m.id, cand = cand }
  end
  local res
  if arms[1] then
    res, err, code = time_arms(task, arms, opts)
  end
  sandboxes:remove_all()
  po.run_sync { argv = { "rm", "-rf", "--", root }, timeout = 120 }
  if not res then
    return nil, err, code
  end
  return res
end

return M
