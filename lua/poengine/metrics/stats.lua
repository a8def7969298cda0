--- Descriptive statistics, and the one pass over cycle records that the
--- collector's statistics() and the dashboards share.
---
--- Conventions, the same in every function: percentiles are on the 0–100
--- scale, by nearest rank; the functions that take `sorted` expect a list
--- sorted ascending and do not sort it; an empty list gives 0 (mean,
--- median, percentile, MAD, sd), never NaN; the standard deviation is the
--- sample one (n − 1), 0 below two values.
local sort = require("poengine.metrics.sort").numbers

local M = {}

local ceil, sqrt, abs = math.ceil, math.sqrt, math.abs
local type, setmetatable = type, setmetatable
local huge = math.huge

--- The p-th percentile (0–100) of a sorted list, by nearest rank: the
--- smallest value with at least p% of the list at or below it; 0 when empty.
---@param sorted number[]
---@param p number
---@return number
function M.percentile(sorted, p)
  local n = #sorted
  if n == 0 then
    return 0
  end
  local rank = ceil(p * n / 100)
  if rank < 1 then
    rank = 1
  elseif rank > n then
    rank = n
  end
  return sorted[rank]
end

--- The median of a sorted list (the mean of the two middle values for an
--- even count); 0 when empty.
---@param sorted number[]
---@return number
function M.median(sorted)
  local n = #sorted
  if n == 0 then
    return 0
  end
  if n % 2 == 1 then
    return sorted[(n + 1) / 2]
  end
  return (sorted[n / 2] + sorted[n / 2 + 1]) / 2
end

--- The arithmetic mean, summing in list order; 0 when empty.
---@param values number[]
---@return number
function M.mean(values)
  local n = #values
  if n == 0 then
    return 0
  end
  local s = 0
  for i = 1, n do
    s = s + values[i]
  end
  return s / n
end

--- The sample standard deviation (n − 1) around mean (computed when not
--- given); 0 below two values.
---@param values number[]
---@param mean? number
---@return number
function M.sd(values, mean)
  local n = #values
  if n < 2 then
    return 0
  end
  mean = mean or M.mean(values)
  local sq = 0
  for i = 1, n do
    local d = values[i] - mean
    sq = sq + d * d
  end
  return sqrt(sq / (n - 1))
end

--- A sorted copy of values (which is not modified).
---@param values number[]
---@return number[]
function M.sorted(values)
  local out, n = {}, #values
  for i = 1, n do
    out[i] = values[i]
  end
  sort(out, n)
  return out
end

--- The median absolute deviation of a sorted list: the median of the
--- distances to its median (given, or computed); 0 when empty.
---@param sorted number[]
---@param median? number
---@return number
function M.mad(sorted, median)
  median = median or M.median(sorted)
  local dev = {}
  for i = 1, #sorted do
    dev[i] = abs(sorted[i] - median)
  end
  sort(dev, #dev)
  return M.median(dev)
end

--- count, sum, mean, median, min, max, stdev (sample), p90, p99 and the
--- sorted copy (`sorted`) of a list of numbers (not modified); zeros, and no
--- `sorted`, for an empty list.
---@param values number[]
---@return table
function M.summary(values)
  local n = #values
  local s = { count = n, mean = 0, median = 0, min = 0, max = 0, stdev = 0, p90 = 0, p99 = 0, sum = 0 }
  if n == 0 then
    return s
  end
  local sorted, sum = {}, 0
  for i = 1, n do
    local v = values[i]
    sorted[i] = v
    sum = sum + v
  end
  sort(sorted, n)
  local mean = sum / n
  s.sum, s.mean = sum, mean
  s.min, s.max = sorted[1], sorted[n]
  s.median = M.median(sorted)
  s.p90 = M.percentile(sorted, 90)
  s.p99 = M.percentile(sorted, 99)
  s.stdev = M.sd(sorted, mean)
  s.sorted = sorted
  return s
end

-- ---- cycle records -------------------------------------------------------------

-- A record field as a number: anything else (absent, NaN, a string in a
-- hand-made record) counts as 0.
local function num(x)
  if type(x) == "number" and x == x then
    return x
  end
  return 0
end
M.num = num

local function finite(x)
  return type(x) == "number" and x == x and x ~= huge and x ~= -huge
end
M.finite = finite

--- Whether score a is better than b in direction ("min": lower is better,
--- anything else: higher).
---@param direction string
---@param a number
---@param b number
function M.better(direction, a, b)
  if direction == "min" then
    return a < b
  end
  return a > b
end

-- The pass over cycle records, in batches: a collector folds in its
-- history a batch at a time (keeping no record alive), a dashboard its
-- whole list at once. The running sums live in the pass table.
local Pass = {}
Pass.__index = Pass

--- A pass over cycle records (see M.cycles): `p:add(records [, n [, decode]])`
--- folds in records[1..n] (decode(records[i]) when given: the list holds
--- them encoded), `p:result()` gives the statistics (and fills extra).
---@param extra? table
---@return table
function M.pass(extra)
  return setmetatable({ extra = extra, durations = {}, vtimes = {}, total = 0, ok = 0, running = 0, files = 0,
    calls = 0, hits = 0, misses = 0, tsaved = 0, csaved = 0, vcount = 0, tin = 0, tout = 0, cost = 0, best = nil,
    last = nil, first_start = nil, last_end = nil, ok_count = 0, ok_time = 0,
    minimise = extra ~= nil and extra.direction == "min" }, Pass)
end

-- Folds record r into the figures of M.cycles' extra.
local function add_extra(self, r)
  self.tin = self.tin + num(r.tokens_in)
  self.tout = self.tout + num(r.tokens_out)
  self.cost = self.cost + num(r.cost)
  local score = r.score
  local b = r.best_score
  if not finite(b) then
    b = finite(score) and score or nil
  end
  if b then
    local best = self.best
    if not best or (self.minimise and b < best) or (not self.minimise and b > best) then
      self.best = b
    end
  end
  if finite(score) then
    self.last = score
  end
  local t = r.start_time
  if finite(t) then
    local first = self.first_start
    if not first or t < first then
      self.first_start = t
    end
  end
  t = r.end_time
  if finite(t) then
    local last_end = self.last_end
    if not last_end or t > last_end then
      self.last_end = t
    end
  end
  if r.success and finite(r.duration) then
    self.ok_count, self.ok_time = self.ok_count + 1, self.ok_time + r.duration
  end
end

---@param cycles table[]|string[]
---@param n? integer   default #cycles
---@param decode? fun(item: any): table
function Pass:add(cycles, n, decode)
  local durations, vtimes = self.durations, self.vtimes
  local with_extra = self.extra ~= nil
  -- The sums stay in self, not in locals: with a decoder inlined, a loop
  -- holding them all in registers is more than LuaJIT can compile whole.
  for i = 1, n or #cycles do
    local r = cycles[i]
    if decode then
      r = decode(r)
    end
    if with_extra then
      add_extra(self, r)
    end
    if r.end_time == nil and r.success == nil then
      self.running = self.running + 1
    else
      self.total = self.total + 1
      if r.success then
        self.ok = self.ok + 1
        durations[#durations + 1] = num(r.duration)
      end
      self.calls = self.calls + num(r.llm_calls)
      self.hits = self.hits + num(r.llm_cache_hits)
      self.misses = self.misses + num(r.llm_cache_misses)
      self.tsaved = self.tsaved + num(r.tokens_saved)
      self.csaved = self.csaved + num(r.cost_saved)
      self.files = self.files + num(r.file_operations)
      local vc = num(r.validation_count)
      if vc > 0 then
        vtimes[#vtimes + 1] = num(r.validation_time)
      end
      self.vcount = self.vcount + vc
    end
  end
end

---@return table
function Pass:result()
  local d = M.summary(self.durations)
  local v = M.summary(self.vtimes)
  local extra = self.extra
  if extra then
    extra.validation_times = v.sorted or {}
    extra.totals = { tokens_in = self.tin, tokens_out = self.tout, cost = self.cost, best_score = self.best,
      last_score = self.last, first_start = self.first_start, last_end = self.last_end }
    extra.successful = { count = self.ok_count, time = self.ok_time }
  end
  local calls, hits, total, ok = self.calls, self.hits, self.total, self.ok
  local rate = calls > 0 and hits / calls or 0
  return {
    cycle_stats = { mean = d.mean, median = d.median, min = d.min, max = d.max, stdev = d.stdev, p90 = d.p90,
      p99 = d.p99 },
    cache_stats = { total_llm_calls = calls, cache_hits = hits, cache_misses = self.misses, hit_rate = rate,
      api_reduction = rate * 100, tokens_saved = self.tsaved, cost_saved = self.csaved },
    validation_stats = { mean_validation_time = v.mean, median_validation_time = v.median,
      total_validations = self.vcount },
    overall_stats = { total_cycles = total, successful_cycles = ok, failed_cycles = total - ok,
      success_rate = total > 0 and ok / total or 0, active_cycles = self.running,
      total_file_operations = self.files },
  }
end

--- The statistics of a list of cycle records (oldest first), with every key
--- present (zeros for an empty list):
---
---   cycle_stats      = { mean, median, min, max, stdev, p90, p99 }  (successful cycles' durations)
---   cache_stats      = { total_llm_calls, cache_hits, cache_misses, hit_rate, api_reduction (percent),
---                        tokens_saved, cost_saved }
---   validation_stats = { mean_validation_time, median_validation_time, total_validations }
---                      (times of the cycles that ran validations)
---   overall_stats    = { total_cycles, successful_cycles, failed_cycles, success_rate, active_cycles,
---                        total_file_operations }
---
--- A record with neither end_time nor success is a cycle still running: it
--- counts as active, not in the totals. Fields that are not numbers count as 0.
---
--- With `extra`, the same pass also fills in (so that a dashboard reads the
--- cycles once, not once per figure), over every cycle, running ones included:
---   extra.validation_times  the validation times above, sorted
---   extra.totals            { tokens_in, tokens_out, cost, best_score (the highest best_score or score,
---                             the lowest when extra.direction is "min"; nil if none), last_score,
---                             first_start, last_end (nil if none) }
---   extra.successful        { count, time }: the successful cycles with a finite duration, and the
---                           sum of their durations
---@param cycles table[]
---@param extra? table
---@return table
function M.cycles(cycles, extra)
  local p = M.pass(extra)
  p:add(cycles)
  return p:result()
end

return M
