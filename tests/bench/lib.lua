--- Benchmark helpers: time a subject beside its baseline in the same run,
--- interleaved, several runs, and report medians and the median ratio.
---
--- Each benchmark file (tests/bench/*_bench.lua) is a poengine script that
--- calls lib.compare once per row. Rows go, as JSON lines, to the file named
--- by BENCH_OUT (set by tests/bench/runner.lua), or to stdout.
local po = require "poengine"

local M = {}

local function median(xs)
  local s = {}
  for i, x in ipairs(xs) do
    s[i] = x
  end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then
    return s[(n + 1) / 2]
  end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end
M.median = median

--- Seconds that fn() takes, or the number fn returns (self-timed).
function M.time(fn)
  local t0 = po.now()
  local own = fn()
  local wall = po.now() - t0
  return type(own) == "number" and own or wall
end

local function emit(row)
  local line = po.json.encode(row, { sort_keys = true })
  local out = os.getenv("BENCH_OUT")
  if out and out ~= "" then
    local f = assert(io.open(out, "a"))
    f:write(line, "\n")
    f:close()
  else
    print(line)
  end
end

-- Sets row.goal (text) and row.met from a goal: { max_ratio = x }
-- (subject/baseline at most x), { min_speedup = x } (baseline/subject at
-- least x), { max_extra = x } (subject at most x units above the baseline),
-- { max = x } (subject below x units), { min = x } (the subject's value at
-- least x) or { above_baseline = true } (the subject's value above the
-- baseline's).
local function judge(row, goal)
  if not goal then
    return
  end
  if goal.max_ratio then
    row.goal = string.format("<= %gx the baseline's time", goal.max_ratio)
    row.met = row.ratio <= goal.max_ratio
  elseif goal.min_speedup then
    row.goal = string.format(">= %gx faster", goal.min_speedup)
    row.met = 1 / row.ratio >= goal.min_speedup
  elseif goal.max_extra then
    row.goal = string.format("<= %g %s above the baseline", goal.max_extra, row.unit)
    row.met = row.subject - row.baseline <= goal.max_extra
  elseif goal.max then
    row.goal = string.format("< %g %s", goal.max, row.unit)
    row.met = row.subject < goal.max
  elseif goal.min then
    row.goal = string.format(">= %g", goal.min)
    row.met = row.subject >= goal.min
  elseif goal.above_baseline then
    row.goal = "above the baseline"
    row.met = row.subject > row.baseline
  elseif goal.max_time then
    row.goal = string.format("<= %g %s", goal.max_time, row.unit)
    row.met = row.subject <= goal.max_time
  end
end

--- Times subject.fn and baseline.fn `runs` times each, alternating, and
--- records one row:
---   name      benchmark name (the file's topic), case: what this row measures
---   subject   { label =, fn = }   poengine's side
---   baseline  { label =, fn = }   what it is compared with
---   ops       operations per call of fn (figures are per operation)
---   unit      "ns" | "us" | "ms" | "s"   unit of the per-operation figures
---   goal      { max_ratio = x } (subject/baseline at most x),
---             { min_speedup = x } (baseline/subject at least x),
---             { max_extra = x } (subject at most x units above baseline) or
---             { max_time = x } (subject's figure at most x, in unit), optional
--- A fn that returns a number is self-timed: that number (seconds) is its
--- time, instead of the wall time of the call (for a process that measures
--- its own loop and leaves out its start-up).
---   runs      default 7
function M.compare(spec)
  local runs = spec.runs or 7
  local ops = spec.ops or 1
  local scale = ({ ns = 1e9, us = 1e6, ms = 1e3, s = 1 })[spec.unit or "ms"]
  local ts, tb, ratios = {}, {}, {}
  if spec.warmup ~= false then
    spec.subject.fn()
    spec.baseline.fn()
  end
  for r = 1, runs do
    -- Alternate which side goes first so a drifting machine favours neither.
    local a, b
    if r % 2 == 1 then
      a = M.time(spec.subject.fn)
      b = M.time(spec.baseline.fn)
    else
      b = M.time(spec.baseline.fn)
      a = M.time(spec.subject.fn)
    end
    ts[r], tb[r], ratios[r] = a, b, a / b
  end
  local ratio = median(ratios)
  local row = {
    name = spec.name,
    case = spec.case,
    subject_label = spec.subject.label,
    baseline_label = spec.baseline.label,
    subject = median(ts) / ops * scale,
    baseline = median(tb) / ops * scale,
    unit = spec.unit or "ms",
    ratio = ratio,
    runs = runs,
  }
  judge(row, spec.goal)
  emit(row)
  return row
end

--- Records one row whose figures are not a timed pair: either a figure
--- timed here with no baseline (subject = { label =, fn = }, as in compare;
--- its goal is absolute, { max = x }), or values measured elsewhere
--- (subject = { label =, value = }, optional baseline = { label =, value = };
--- unit names what they are, e.g. "precision").
---   name, case, ops, unit, runs, goal   as in compare, plus { min = x } and
---   { above_baseline = true } for values where higher is better
function M.record(spec)
  local row = {
    name = spec.name,
    case = spec.case,
    subject_label = spec.subject.label,
    unit = spec.unit or "ms",
    runs = spec.runs,
  }
  if spec.subject.fn then
    local runs = spec.runs or 7
    local scale = ({ ns = 1e9, us = 1e6, ms = 1e3, s = 1 })[row.unit]
    if spec.warmup ~= false then
      spec.subject.fn()
    end
    local ts = {}
    for r = 1, runs do
      ts[r] = M.time(spec.subject.fn)
    end
    row.subject = median(ts) / (spec.ops or 1) * scale
    row.runs = runs
  else
    row.subject = spec.subject.value
  end
  if spec.baseline then
    row.baseline_label = spec.baseline.label
    row.baseline = spec.baseline.value
    row.ratio = row.subject / row.baseline
  end
  judge(row, spec.goal)
  emit(row)
  return row
end

return M
