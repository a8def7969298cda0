--- The timing phase: the baseline and the candidates that passed their
--- validators, timed side by side once nothing else of the run is building
--- or testing. Shared by every cycle and by the final check, so that both
--- decide by the same rule.
---
--- With an objective validator that can take one measurement
--- (`v.measure(candidate, { cpu = })`, as po.validate.benchmark's can), the
--- arms are timed by decide.sequential: warm-ups, then seeded shuffled
--- rounds, Holm across the candidates, more rounds only while a verdict is
--- unclear, each run pinned to one CPU (the last of po.cpus() when there
--- are two or more). A validator without `measure` (a user's own) is run
--- whole once per arm, in a shuffled order, and its reported figures are
--- compared with po.validate.compare: those verdicts have no calibrated
--- error rate.
local po = require "poengine"
local decide = require "poengine.validate.decide"
local metrics_stats = require "poengine.metrics.stats"

local M = {}

--- The objective's timing options with their defaults.
function M.options(objective)
  return {
    alpha = objective.alpha or decide.ALPHA, min_effect = objective.min_effect or 0.01,
    max_runs = objective.max_runs or decide.MAX_RUNS, warmup = objective.warmup or 1,
    higher_is_better = objective.direction == "max", noise = objective.noise,
  }
end

--- How spread the baseline's timed runs were: its median run beside its
--- fastest tenth (for scores, higher is better, the best tenth beside the
--- median), at least 1; nil under 6 runs. Other work on the machine only
--- slows a run down, so this says how much of it the timing met.
---@param samples number[]
---@param higher_is_better? boolean
---@return number|nil
function M.noise(samples, higher_is_better)
  local n = #samples
  if n < 6 then
    return nil
  end
  local s = metrics_stats.sorted(samples)
  local median = metrics_stats.median(s)
  local tenth = math.max(1, math.floor(0.1 * n + 0.5))
  local ratio = higher_is_better and s[n + 1 - tenth] / median or median / s[tenth]
  return ratio == ratio and ratio < math.huge and math.max(ratio, 1) or nil
end

--- Above this M.noise, a cycle line says the timing was noisy. On the
--- calibration benchmark's recordings the baseline's median run took
--- 1.02–1.07 times its fastest tenth on a machine with one compile loop
--- beside the timing, and 1.4–1.8 times where the rule's power at a 5% gain
--- fell to 50–75% (docs/benchmarks.md).
M.NOISY = 1.25

--- The CPU timed runs are pinned to: the last of the affinity mask when it
--- holds two or more (the first is where the run's own work, and most of
--- the machine's, tends to start), else none.
function M.cpu()
  local cpus = po.cpus()
  if cpus and #cpus >= 2 then
    return cpus[#cpus]
  end
  return nil
end

-- x when it is a positive finite number, else nil.
local function positive(x)
  return x and x > 0 and x < math.huge and x or nil
end

-- One arm's result from its samples and the decision. The interval
-- reported is the one at the run's own level (1 - 2 alpha), not the
-- stricter per-look one the verdict was decided at, which a few runs leave
-- unbounded; nil when even that is unbounded. It is computed on the
-- baseline's runs of the same rounds (the arm's first n, as the decision
-- was), not on those the baseline went on with beside other arms.
local function arm_result(r, stats, base_samples, o)
  local lo, hi = r.ci_low, r.ci_high
  if base_samples then
    local same_rounds = {}
    for k = 1, math.min(stats.n, #base_samples) do
      same_rounds[k] = base_samples[k]
    end
    local nominal = decide.compare_samples(stats.samples, same_rounds, o)
    lo, hi = nominal and nominal.ci_low, nominal and nominal.ci_high
  end
  lo, hi = positive(lo), positive(hi)
  return { verdict = r.verdict, speedup = r.speedup, ci_low = hi and lo, ci_high = lo and hi, p = r.p,
    runs = r.runs or stats.n, stopped = r.stopped, stats = stats, rule = r.rule or "mann-whitney",
    margin = r.margin or nil }
end

-- Times with v.measure. See M.run for arms and the result.
local function sequential(v, arms, o, cpu, seed, on_round, spans, executor)
  local function once(arm)
    local start = po.time()
    local value, err, code = v.measure(arms[arm].cand, { cpu = cpu, executor = executor })
    spans[#spans + 1] = { arm = arms[arm].id, cpu = cpu, start = start, finish = po.time() }
    if value ~= nil and not (type(value) == "number" and value > 0) then
      -- The rule compares log values: the arm's benchmark is what failed.
      return nil, "the metric gave " .. tostring(value) .. ", not a positive number", "EBENCH"
    end
    return value, err, code
  end
  -- A first untimed run of every arm: the first warm-up, and where a
  -- candidate whose benchmark fails drops out before it can stop the rest.
  local _, err = once(0)
  if err then
    return nil, "the baseline failed its benchmark: " .. err
  end
  local out, live = {}, {}
  for i = 1, #arms do
    local value, e = once(i)
    if value == nil then
      out[i] = { failed = e }
    else
      live[#live + 1] = i
    end
  end
  local runs
  local attempt = 0
  while #live > 0 do
    attempt = attempt + 1
    local failed_arm
    local res, serr = decide.sequential(#live, function(j)
      local arm = j == 0 and 0 or live[j]
      local value, e, code = once(arm)
      if value == nil then
        failed_arm = arm
      end
      return value, e, code
    end, { alpha = o.alpha, min_effect = o.min_effect, max_runs = o.max_runs, first = math.min(6, o.max_runs),
      warmup = math.max(o.warmup - 1, 0), higher_is_better = o.higher_is_better, margin = o.margin,
      seed = seed * 7 + attempt, on_round = on_round })
    if res then
      runs = res
      break
    end
    if not failed_arm then
      return nil, tostring(serr)
    elseif failed_arm == 0 then
      return nil, "the baseline failed its benchmark: " .. tostring(serr)
    end
    -- A candidate failed midway: it is out, and the others start again so
    -- that every comparison is made on rounds holding the same arms.
    out[failed_arm] = { failed = serr }
    for j, i in ipairs(live) do
      if i == failed_arm then
        table.remove(live, j)
        break
      end
    end
  end
  if not runs then
    -- No candidate to compare: the baseline alone, for its score.
    local samples = {}
    for k = 1, 6 do
      local value, e = once(0)
      if value == nil then
        return nil, "the baseline failed its benchmark: " .. e
      end
      samples[k] = value
    end
    return { results = out, baseline = po.validate.stats(samples), rounds = 6 }
  end
  for j, i in ipairs(live) do
    local r = runs.candidates[j]
    out[i] = arm_result(r, po.validate.stats(r.samples), runs.baseline, o)
  end
  return { results = out, baseline = po.validate.stats(runs.baseline), rounds = runs.rounds,
    noise = M.noise(runs.baseline, o.higher_is_better) }
end

-- Why an arm's whole run gave no figures. A parse function that fails
-- without errors of its own leaves the report's errors empty: the status and
-- the first line of stderr say what happened then.
local function failure_text(r)
  if r.passed then
    return "the objective validator reported no median"
  elseif r.errors and #r.errors > 0 then
    return table.concat(r.errors, "; ")
  end
  local first = (r.stderr or ""):match("[^\n]+")
  return tostring(r.status) .. (first and (": " .. first) or "")
end

-- Runs the validator whole per arm and compares the figures it reports.
local function whole(v, arms, o, seed, spans)
  local order = { 0 }
  for i = 1, #arms do
    order[#order + 1] = i
  end
  local next_int = decide.rng(seed)
  for i = #order, 2, -1 do
    local j = next_int(i)
    order[i], order[j] = order[j], order[i]
  end
  local figures, failures = {}, {}
  for _, arm in ipairs(order) do
    local start = po.time()
    local report = po.validate.run({ v }, arms[arm].cand)
    spans[#spans + 1] = { arm = arms[arm].id, start = start, finish = po.time() }
    local r = report.results[1]
    if r.passed and r.details and r.details.median then
      figures[arm] = r.details
    else
      failures[arm] = failure_text(r)
    end
  end
  if not figures[0] then
    return nil, "the baseline failed its benchmark: " .. failures[0]
  end
  local out = {}
  for i = 1, #arms do
    if figures[i] then
      local verdict, speedup, info = po.validate.compare(figures[i], figures[0], o)
      info.verdict, info.speedup = verdict, speedup
      out[i] = arm_result(info, figures[i])
    else
      out[i] = { failed = failures[i] }
    end
  end
  return { results = out, baseline = figures[0], rounds = 1 }
end

--- Times arms[0] (the baseline) and arms[1..n] (candidates), each
--- { id =, cand = sandbox candidate }, with the objective's validator.
--- Returns { results = { [i] = { verdict, speedup, ci_low, ci_high, p,
--- runs, stopped, stats, rule } or { failed = message } }, baseline =
--- stats, rounds, noise (M.noise of the baseline's runs; nil when they
--- were not timed one by one), cpu, spans = { { arm, cpu, start, finish }... } }, or
--- nil, message when the baseline's benchmark fails.
---@param objective table the task's objective
---@param arms table
--- opts.margin: "faster" only when better by more than min_effect (the
--- confirmation's question; decide.compare_samples).
---@param opts { seed: integer, on_round?: fun(round: integer, runs: integer), executor?: table, margin?: boolean }
function M.run(objective, arms, opts)
  local v = objective.validator
  local o = M.options(objective)
  o.margin = opts.margin
  local spans = {}
  local res, err, cpu
  if type(v.measure) == "function" then
    -- On a Slurm node (opts.executor) a core of this machine means nothing.
    cpu = not opts.executor and M.cpu() or nil
    res, err = sequential(v, arms, o, cpu, opts.seed, opts.on_round, spans, opts.executor)
  else
    res, err = whole(v, arms, o, opts.seed, spans)
  end
  if not res then
    return nil, err, spans
  end
  res.cpu, res.spans = cpu, spans
  return res
end

return M
