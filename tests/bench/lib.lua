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

--- Seconds that fn() takes.
function M.time(fn)
  local t0 = po.now()
  fn()
  return po.now() - t0
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

--- Times subject.fn and baseline.fn `runs` times each, alternating, and
--- records one row:
---   name      benchmark name (the file's topic), case: what this row measures
---   subject   { label =, fn = }   poengine's side
---   baseline  { label =, fn = }   what it is compared with
---   ops       operations per call of fn (figures are per operation)
---   unit      "us" | "ms" | "s"   unit of the per-operation figures
---   goal      { max_ratio = x } (subject/baseline at most x),
---             { min_speedup = x } (baseline/subject at least x), or
---             { max_time = x } (subject's figure at most x, in unit), optional
---   runs      default 7
function M.compare(spec)
  local runs = spec.runs or 7
  local ops = spec.ops or 1
  local scale = ({ us = 1e6, ms = 1e3, s = 1 })[spec.unit or "ms"]
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
  local goal = spec.goal
  if goal and goal.max_ratio then
    row.goal = string.format("<= %gx the baseline's time", goal.max_ratio)
    row.met = ratio <= goal.max_ratio
  elseif goal and goal.min_speedup then
    row.goal = string.format(">= %gx faster", goal.min_speedup)
    row.met = 1 / ratio >= goal.min_speedup
  elseif goal and goal.max_time then
    row.goal = string.format("<= %g %s", goal.max_time, row.unit)
    row.met = row.subject <= goal.max_time
  end
  emit(row)
  return row
end

return M
