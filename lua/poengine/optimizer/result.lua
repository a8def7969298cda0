--- The end of an optimizer's run: the original and the best timed once
--- more side by side by the cycles' own rule (the final check), the patch,
--- applying it, and the result table; and scores written for people.
local po = require "poengine"
local diff = require "poengine.optimizer.diff"
local sandbox = require "poengine.optimizer.sandbox"
local timing = require "poengine.optimizer.timing"

local M = {}

local format, concat = string.format, table.concat

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

--- How many times better `best` is than `first` in the objective's
--- direction (first / best for "min", best / first for "max"); nil for
--- tuples, a missing figure or a zero.
function M.improvement(direction, first, best)
  if type(first) ~= "number" or type(best) ~= "number" or first == 0 or best == 0 then
    return nil
  end
  if direction == "max" then
    return best / first
  end
  return first / best
end

-- The final check: the original and the final best, validated, then timed
-- side by side by the rule every cycle used (one candidate, the original
-- as the baseline), so the improvement reported is a verdict with an
-- interval from one run, not figures from different cycles. Returns
-- { original, best, verdict, speedup, ci_low, ci_high, runs, rule, cpu },
-- or nil, why.
function M.final_comparison(self)
  local task = self.task
  local orig_dir, err = self.sandboxes:make("final-original", self.original.files)
  local best_dir
  if orig_dir then
    best_dir, err = self.sandboxes:make("final-best", self.baseline.files)
  end
  if not (orig_dir and best_dir) then
    return nil, err
  end
  if task.apply_params then
    if self.original.params then
      task.apply_params(self.original.params, orig_dir)
    end
    if self.baseline.params then
      task.apply_params(self.baseline.params, best_dir)
    end
  end
  local arms = {
    [0] = { id = "original", cand = sandbox.candidate(task, orig_dir, "original", self.original.params) },
    { id = "best", cand = sandbox.candidate(task, best_dir, "best", self.baseline.params) },
  }
  local cy = { k = "final", spans = { validations = {}, runs = {} } }
  local failed
  if #task.validators > 0 then
    self:status("final check: validating the original and the best")
    local checks = {}
    for i = 0, 1 do
      checks[#checks + 1] = po.async(function()
        local report = self:run_validators(cy, arms[i].cand)
        if not report.passed then
          failed = "the " .. arms[i].id .. " fails its validators"
        end
      end)
    end
    po.all(checks)
  end
  local res, terr, spans
  if not failed then
    self:status("final check: timing the original beside the best")
    res, terr, spans = timing.run(task.objective, arms, { seed = (task.seed or 1) * 1000,
      on_round = function(round, runs)
        self:status("final check: timing the original beside the best, round %d, %d runs", round, runs)
      end })
    cy.spans.runs, cy.cpu, cy.noise = res and res.spans or spans or {}, res and res.cpu, res and res.noise
  end
  self:record_spans(cy, "final")
  if not self.keep_sandboxes then
    self.sandboxes:remove_all()
  end
  if failed or not res then
    return nil, failed or terr
  end
  local r = res.results[1]
  if r.failed then
    return nil, "the best failed its benchmark: " .. r.failed
  end
  return { original = res.baseline.median, best = r.stats.median, verdict = r.verdict, speedup = r.speedup,
    ci_low = r.ci_low, ci_high = r.ci_high, runs = r.runs, rule = r.rule, cpu = res.cpu, noise = res.noise }
end

--- The product of the accepted candidates' per-cycle speedups: what the
--- path claims, to be read beside the final check.
function M.chain_speedup(accepted)
  local product = 1
  for _, a in ipairs(accepted) do
    product = product * (a.speedup or 1)
  end
  return product
end

-- The plain sentence that heads a summary when the final check does not
-- confirm the accepted chain, or nil when it does.
local function final_warning(final, why, chain)
  if not final then
    return "the final side-by-side check could not be made (" .. tostring(why)
      .. "): the accepted improvement is unconfirmed"
  end
  if final.verdict == "faster" then
    return nil
  end
  return format("the final side-by-side check does not confirm the improvement: the best measured %.3gx the "
    .. "original (%s) although the accepted chain claimed %.3gx", final.speedup or 0, final.verdict, chain)
end

-- A search task's best point beside the run: best_params.json, and with
-- task.write_params the patch (best.patch) of the files it writes.
function M.write_params(self, result)
  local task = self.task
  sandbox.write_files(self.out_dir,
    { ["best_params.json"] = po.json.encode(self.baseline.params, { sort_keys = true }) .. "\n" }, true)
  result.params_file = self.out_dir .. "/best_params.json"
  if not task.write_params then
    return
  end
  local patch, err, files = M.params_patch(task, self.baseline.params)
  if not patch then
    result.patch_error = err
  elseif patch ~= "" and not result.patch then
    result.patch = self.out_dir .. "/best.patch"
    sandbox.write_files(self.out_dir, { ["best.patch"] = patch }, true)
    -- task.apply: the best point's files go into the workdir, as an LLM
    -- run's best files do (without write_params a point has no files).
    if task.apply and not result.applied and #self.accepted > 0 then
      local ok, werr = sandbox.write_files(task.workdir, files, true)
      if ok then
        result.applied = true
      else
        result.apply_error = werr
      end
    end
  end
end

-- The text of path under dir, or "" when there is none.
local function read_or_empty(dir, path)
  local f = io.open(dir .. "/" .. path, "rb")
  if not f then
    return ""
  end
  local text = f:read("*a")
  f:close()
  return text
end

--- A search task's best point as a change: task.write_params(params)
--- gives { [path] = text } (paths inside the workdir), compared with the
--- workdir's files. Returns the unified diff ("" when nothing changes) and
--- the files (nil, then the files' table), or nil, message when
--- write_params raises or returns something else.
function M.params_patch(task, params)
  local ok, files = pcall(task.write_params, params)
  if not ok or type(files) ~= "table" then
    return nil, "task.write_params: " .. (ok and ("must return a table of path = text, got " .. type(files))
      or tostring(files))
  end
  local paths = {}
  for path, text in pairs(files) do
    if type(path) ~= "string" or type(text) ~= "string" then
      return nil, "task.write_params: must return a table of path = text"
    end
    paths[#paths + 1] = path
  end
  table.sort(paths)
  local parts = {}
  for _, path in ipairs(paths) do
    local a = read_or_empty(task.workdir, path)
    if a ~= files[path] then
      parts[#parts + 1] = diff.unified(path, a, files[path])
    end
  end
  return concat(parts), nil, files
end

-- The final check and the accepted chain in the collector's run record,
-- where the dashboards read them.
local function record_run(self, result)
  local col = self.collector
  if not col.set_run then
    return
  end
  local record = require "poengine.optimizer.record" -- (it requires this module)
  local accepted = {}
  for i, a in ipairs(self.accepted) do
    accepted[i] = { cycle = a.cycle, id = tostring(a.id), change = record.describe_change(a) or "", speedup = a.speedup,
      ci_low = a.ci_low, ci_high = a.ci_high, verdict = a.verdict or "faster",
      confirmed = a.confirm and a.confirm.verdict or nil }
  end
  local f = result.final
  col:set_run {
    direction = self.task.objective.direction == "max" and "max" or "min",
    final = f and { verdict = f.verdict, speedup = f.speedup, ci_low = f.ci_low, ci_high = f.ci_high, runs = f.runs,
      original = f.original, best = f.best } or false,
    chain_speedup = result.chain_speedup or 1, warning = result.warning or false, accepted = accepted,
    cycles = self.cycle,
  }
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
  result.improvement = M.improvement(task.objective.direction, self.first_score, self.best_score)
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
      M.write_params(self, result)
    end
    result.chain_speedup = M.chain_speedup(self.accepted)
    local why
    result.final, why = self:final_comparison()
    result.confirmed = result.final ~= nil and result.final.verdict == "faster"
    result.warning = final_warning(result.final, why, result.chain_speedup)
  end
  record_run(self, result)
  local f = result.final
  self:event { kind = "end", stopped = tostring(stopped), cycles = self.cycle, best_score = self.best_score,
    original_score = self.first_score, spent = result.spent, chain_speedup = result.chain_speedup,
    final = f and { verdict = f.verdict, speedup = f.speedup, ci_low = f.ci_low, ci_high = f.ci_high,
      runs = f.runs } or nil, warning = result.warning }
  self.events:close()
  return result
end

return M
