--- The end of an optimizer's run: the original and the best measured once
--- more side by side, the patch, applying it, and the result table; and
--- scores written for people.
local po = require "poengine"
local diff = require "poengine.optimizer.diff"
local sandbox = require "poengine.optimizer.sandbox"

local M = {}

local format, concat = string.format, table.concat

--- Whether score a is better than b in the objective's direction ("min"
--- or "max"); tuples compare element by element.
function M.better(direction, a, b)
  if type(a) == "table" then
    for i = 1, math.max(#a, #b) do
      local x, y = a[i], b[i]
      if x ~= y then
        if x == nil or y == nil then
          return y == nil
        end
        return M.better(direction, x, y)
      end
    end
    return false
  end
  if direction == "max" then
    return a > b
  end
  return a < b
end

--- A score for people: a number with 4 significant digits, a tuple as (a, b).
function M.format_score(score)
  if type(score) == "table" then
    local parts = {}
    for i, v in ipairs(score) do
      parts[i] = M.format_score(v)
    end
    return "(" .. concat(parts, ", ") .. ")"
  elseif type(score) == "number" then
    return format("%.4g", score)
  end
  return tostring(score)
end

-- The original and the final best, measured once more side by side, so the
-- improvement reported is a comparison made in one run, not figures from
-- different cycles.
function M.final_comparison(self)
  local task = self.task
  local orig_dir = self.sandboxes:make("final-original", self.original.files)
  local best_dir = orig_dir and self.sandboxes:make("final-best", self.baseline.files)
  if not (orig_dir and best_dir) then
    return nil
  end
  if task.apply_params then
    if self.original.params then
      task.apply_params(self.original.params, orig_dir)
    end
    if self.baseline.params then
      task.apply_params(self.baseline.params, best_dir)
    end
  end
  local function measure(dir, id, params)
    local cand = sandbox.candidate(task, dir, id, params)
    if #task.validators > 0 and not po.validate.run(task.validators, cand, { cascade = true }).passed then
      return { passed = false }
    end
    return po.validate.run({ task.objective.validator }, cand).results[1]
  end
  local a = measure(orig_dir, "original", self.original.params)
  local b = measure(best_dir, "best", self.baseline.params)
  if not self.keep_sandboxes then
    self.sandboxes:remove_all()
  end
  if not (a.passed and b.passed and a.details and b.details and a.details.median and b.details.median) then
    return nil
  end
  local verdict, speedup = po.validate.compare(b.details, a.details, {
    noise = task.objective.noise, higher_is_better = task.objective.direction == "max" })
  return { original = a.details.median, best = b.details.median, verdict = verdict, speedup = speedup }
end

--- The run's result (see po.optimizer.run): the patch of the accepted
--- changes written beside the run (and into the workdir with task.apply),
--- the final side-by-side measurement; closes the event log.
function M.finish(self, stopped)
  local task = self.task
  local result = {
    task = task.id, cycles = self.cycle, stopped = stopped, best_score = self.best_score,
    baseline_score = self.first_score, accepted = self.accepted, events = self.events_path,
    store = self.out_dir .. "/store", out_dir = self.out_dir, spent = self:spent(), malformed = self.malformed,
    collector = self.collector, router_stats = self.router and self.router.stats and self.router:stats() or nil,
  }
  if self.first_score and self.best_score and self.best_score ~= 0 then
    result.improvement = task.objective.direction == "min" and self.first_score / self.best_score
      or self.best_score / self.first_score
  end
  local parts = {}
  for _, path in ipairs(task.target_files) do
    local a, b = self.original.files[path] or "", self.baseline.files[path] or ""
    if a ~= b then
      parts[#parts + 1] = diff.unified(path, a, b)
    end
  end
  local patch = concat(parts)
  if #self.accepted > 0 then
    if task.apply and patch ~= "" then
      local changed = {}
      for _, path in ipairs(task.target_files) do
        if self.original.files[path] ~= self.baseline.files[path] then
          changed[path] = self.baseline.files[path]
        end
      end
      local ok, err = sandbox.write_files(task.workdir, changed, true)
      if not ok then
        result.apply_error = err
      else
        result.applied = true
      end
    end
    if patch ~= "" then
      result.patch = self.out_dir .. "/best.patch"
      sandbox.write_files(self.out_dir, { ["best.patch"] = patch }, true)
    end
    if self.baseline.params then
      result.best_params = self.baseline.params
    end
    result.final = self:final_comparison()
  end
  self.events:close()
  return result
end

return M
