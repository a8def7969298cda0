--- Dashboard sources: whatever a dashboard is built over — a collector, a
--- store directory, a statistics table or a list of cycle records — comes
--- out of `load` as one shape, read fresh at each render:
---
---   { kind = "collector" | "store" | "statistics" | "cycles",
---     label = "what it is, for people",
---     cycles = { record, ... },      -- oldest first; empty for a statistics table
---     statistics = { overall_stats =, cycle_stats =, cache_stats =, validation_stats = },
---                                    -- computed on first read for cycles, collectors and stores
---     collector = col | nil,
---     memo = {} }                    -- figures derived once per load (M.totals, M.successful,
---                                    -- M.validation_times)
local M = {}

local sort = require("poengine.metrics.sort").numbers

local ceil, sqrt = math.ceil, math.sqrt
local type, pairs, pcall = type, pairs, pcall

local function num(x)
  if type(x) == "number" and x == x then
    return x
  end
  return 0
end
M.num = num

--- The p-th percentile (0–100) of a sorted list by nearest rank, as the
--- collector's statistics() computes it; 0 for an empty list.
---@param sorted number[]
---@param p number
---@return number
function M.percentile(sorted, p)
  local n = #sorted
  if n == 0 then
    return 0
  end
  local rank = ceil(p * n / 100)
  return sorted[rank < 1 and 1 or rank]
end

--- mean, median, min, max, stdev (sample), p90, p99 and count of a list of
--- numbers (not modified); zeros for an empty list.
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
    sorted[i] = values[i]
    sum = sum + values[i]
  end
  sort(sorted, n)
  local mean = sum / n
  local sq = 0
  for i = 1, n do
    local d = sorted[i] - mean
    sq = sq + d * d
  end
  s.sum, s.mean = sum, mean
  s.min, s.max = sorted[1], sorted[n]
  s.median = n % 2 == 1 and sorted[(n + 1) / 2] or (sorted[n / 2] + sorted[n / 2 + 1]) / 2
  s.p90 = M.percentile(sorted, 90)
  s.p99 = M.percentile(sorted, 99)
  s.stdev = n > 1 and sqrt(sq / (n - 1)) or 0
  s.sorted = sorted
  return s
end

local function active(r)
  return r.end_time == nil and r.success == nil
end

local function finite(x)
  return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge
end

--- The collector's statistics, computed from a list of cycle records (for
--- sources that are plain lists): the same keys and definitions as
--- `col:statistics()`. A record with neither end_time nor success is a
--- cycle still running: it counts as active, not in the totals.
---
--- With memo, the same pass also fills in what the sections need besides
--- (so that a render reads the cycles once, not once per figure):
--- `validation_times` (see M.validation_times), `totals` (see M.totals) and
--- `successful` = { count =, time = } (the successful cycles with a finite
--- duration, and the sum of their durations).
---@param cycles table[]
---@param memo? table
---@return table
function M.statistics(cycles, memo)
  local durations, vtimes = {}, {}
  local total, ok, running, files = 0, 0, 0, 0
  local calls, hits, misses, tsaved, csaved, vcount = 0, 0, 0, 0, 0, 0
  -- M.totals' figures, over every cycle, running ones included.
  local tin, tout, cost, best, last, first_start, last_end = 0, 0, 0, nil, nil, nil, nil
  local ok_count, ok_time = 0, 0
  local with_totals = memo ~= nil
  for i = 1, #cycles do
    local r = cycles[i]
    if with_totals then
      tin = tin + num(r.tokens_in)
      tout = tout + num(r.tokens_out)
      cost = cost + num(r.cost)
      local score = r.score
      local b = r.best_score
      if not finite(b) then
        b = finite(score) and score or nil
      end
      if b and (not best or b > best) then
        best = b
      end
      if finite(score) then
        last = score
      end
      local t = r.start_time
      if finite(t) and (not first_start or t < first_start) then
        first_start = t
      end
      t = r.end_time
      if finite(t) and (not last_end or t > last_end) then
        last_end = t
      end
      if r.success and finite(r.duration) then
        ok_count, ok_time = ok_count + 1, ok_time + r.duration
      end
    end
    if active(r) then
      running = running + 1
    else
      total = total + 1
      if r.success then
        ok = ok + 1
        durations[#durations + 1] = num(r.duration)
      end
      calls = calls + num(r.llm_calls)
      hits = hits + num(r.llm_cache_hits)
      misses = misses + num(r.llm_cache_misses)
      tsaved = tsaved + num(r.tokens_saved)
      csaved = csaved + num(r.cost_saved)
      files = files + num(r.file_operations)
      local vc = num(r.validation_count)
      if vc > 0 then
        vtimes[#vtimes + 1] = num(r.validation_time)
      end
      vcount = vcount + vc
    end
  end
  local d = M.summary(durations)
  local v = M.summary(vtimes)
  if memo then
    memo.validation_times = v.sorted or {}
    memo.totals = { tokens_in = tin, tokens_out = tout, cost = cost, best_score = best, last_score = last,
      first_start = first_start, last_end = last_end }
    memo.successful = { count = ok_count, time = ok_time }
  end
  local rate = calls > 0 and hits / calls or 0
  return {
    cycle_stats = { mean = d.mean, median = d.median, min = d.min, max = d.max, stdev = d.stdev, p90 = d.p90,
      p99 = d.p99 },
    cache_stats = { total_llm_calls = calls, cache_hits = hits, cache_misses = misses, hit_rate = rate,
      api_reduction = rate * 100, tokens_saved = tsaved, cost_saved = csaved },
    validation_stats = { mean_validation_time = v.mean, median_validation_time = v.median,
      total_validations = vcount },
    overall_stats = { total_cycles = total, successful_cycles = ok, failed_cycles = total - ok,
      success_rate = total > 0 and ok / total or 0, active_cycles = running, total_file_operations = files },
  }
end

-- A source's statistics are computed on first use (a format that draws
-- only the cycles, csv, never pays for them); computing them fills the
-- memo, so the functions below read it first.
local function ensure_statistics(src)
  local _ = src.statistics
  return src.memo
end

--- Sums over a loaded source's cycles that the statistics do not carry,
--- computed once per load: tokens_in, tokens_out, cost (spent), best_score
--- (the highest best_score or score seen; nil if none), last_score,
--- first_start and last_end (Unix seconds; nil if none).
---@param src table   what M.load returned
---@return table
function M.totals(src)
  local memo = ensure_statistics(src)
  if memo.totals then
    return memo.totals
  end
  local t = { tokens_in = 0, tokens_out = 0, cost = 0 }
  local cycles = src.cycles
  for i = 1, #cycles do
    local r = cycles[i]
    t.tokens_in = t.tokens_in + num(r.tokens_in)
    t.tokens_out = t.tokens_out + num(r.tokens_out)
    t.cost = t.cost + num(r.cost)
    local b = finite(r.best_score) and r.best_score or finite(r.score) and r.score or nil
    if b and (not t.best_score or b > t.best_score) then
      t.best_score = b
    end
    if finite(r.score) then
      t.last_score = r.score
    end
    if finite(r.start_time) and (not t.first_start or r.start_time < t.first_start) then
      t.first_start = r.start_time
    end
    if finite(r.end_time) and (not t.last_end or r.end_time > t.last_end) then
      t.last_end = r.end_time
    end
  end
  memo.totals = t
  return t
end

--- The successful cycles with a finite duration: how many, and the sum of
--- their durations (seconds), computed once per load.
---@param src table   what M.load returned
---@return integer count, number time
function M.successful(src)
  local memo = ensure_statistics(src)
  local s = memo.successful
  if not s then
    local n, time = 0, 0
    local cycles = src.cycles
    for i = 1, #cycles do
      local r = cycles[i]
      if r.success and finite(r.duration) then
        n, time = n + 1, time + r.duration
      end
    end
    s = { count = n, time = time }
    memo.successful = s
  end
  return s.count, s.time
end

--- The validation time of every cycle that ran validations, sorted:
--- computed once per load.
---@param src table   what M.load returned
---@return number[]
function M.validation_times(src)
  local memo = ensure_statistics(src)
  if not memo.validation_times then
    local times, cycles = {}, src.cycles
    for i = 1, #cycles do
      local r = cycles[i]
      if num(r.validation_count) > 0 then
        times[#times + 1] = num(r.validation_time)
      end
    end
    sort(times)
    memo.validation_times = times
  end
  return memo.validation_times
end

local STAT_GROUPS = { "overall_stats", "cycle_stats", "cache_stats", "validation_stats" }

-- A statistics table is one with at least one of the four groups.
local function is_statistics(t)
  for _, k in ipairs(STAT_GROUPS) do
    if type(t[k]) == "table" then
      return true
    end
  end
  return false
end

-- Fills missing groups and keys with zeros so sections never meet a nil.
local function complete(stats)
  local zero = M.statistics({})
  local out = {}
  for _, g in ipairs(STAT_GROUPS) do
    local group = {}
    for k, v in pairs(zero[g]) do
      group[k] = v
    end
    if type(stats[g]) == "table" then
      for k, v in pairs(stats[g]) do
        group[k] = v
      end
    end
    out[g] = group
  end
  for k, v in pairs(stats) do
    if out[k] == nil then
      out[k] = v
    end
  end
  return out
end
M.complete = complete

local function is_collector(x)
  local tx = type(x)
  if tx ~= "table" and tx ~= "userdata" then
    return false
  end
  local ok, yes = pcall(function()
    return type(x.statistics) == "function" and type(x.cycles) == "function"
  end)
  return ok and yes
end

local function collector_cycles(col)
  local list = {}
  for r in col:cycles() do
    list[#list + 1] = r
  end
  return list
end

-- Per-provider figures of a live collector, from the process's metrics
-- registry (the collector keeps them there, labelled with its name): calls
-- by cache outcome and the latency histogram. Tokens and cost are not kept
-- per provider. nil when the registry has none for this collector.
local function registry_providers(name)
  local ok, metrics = pcall(require, "poengine.metrics")
  if not ok or type(name) ~= "string" then
    return nil
  end
  local by, any = {}, false
  for _, m in ipairs(metrics.collect()) do
    local l = m.labels
    if l and l.collector == name and l.provider and (m.name == "po_llm_calls" or m.name == "po_llm_latency_seconds") then
      local p = by[l.provider] or { calls = 0, cache_hits = 0, latency = 0, latency_count = 0 }
      by[l.provider] = p
      any = true
      if m.name == "po_llm_calls" then
        p.calls = p.calls + m.value
        if l.cache == "hit" then
          p.cache_hits = p.cache_hits + m.value
        end
      else
        p.latency, p.latency_count = p.latency + m.sum, p.latency_count + m.count
      end
    end
  end
  return any and by or nil
end

local function is_engine_collector(col)
  local ok, collector = pcall(require, "poengine.metrics.collector")
  return ok and collector.is_collector(col)
end

-- Makes src.statistics computed on first read, by compute().
local function lazy_statistics(src, compute)
  return setmetatable(src, {
    __index = function(t, k)
      if k == "statistics" then
        local stats = compute()
        rawset(t, "statistics", stats)
        return stats
      end
    end,
  })
end

local function from_collector(col, kind, label)
  local memo = {}
  local cycles = collector_cycles(col)
  local src = { kind = kind, label = label, collector = col, cycles = cycles, memo = memo }
  if is_engine_collector(col) then
    -- One pass over the history instead of two: the engine's collector
    -- computes its statistics exactly as M.statistics does (a spec checks
    -- it), and knows its active cycles. What is read from the collector
    -- is read now (a store's collector is closed after loading).
    local running = #col:active()
    local providers = kind == "collector" and registry_providers(col.name) or nil
    return lazy_statistics(src, function()
      local stats = M.statistics(cycles, memo)
      stats.overall_stats.active_cycles = running
      stats.provider_stats = providers
      return stats
    end)
  end
  local stats = complete(col:statistics())
  if kind == "collector" and stats.provider_stats == nil then
    stats.provider_stats = registry_providers(col.name)
  end
  src.statistics = stats
  return src
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then
    f:close()
    return true
  end
  return false
end

--- Describes what `spec` is, raising when it cannot be a source at all:
--- returns "collector", "store", "statistics" or "cycles".
---@param spec any
---@param fname string   the public function, for messages
---@return string
function M.kind(spec, fname)
  if type(spec) == "string" then
    return "store"
  elseif is_collector(spec) then
    return "collector"
  elseif type(spec) == "table" then
    if is_statistics(spec) then
      return "statistics"
    end
    local list = spec.cycles or spec
    if type(list) == "table" and (list[1] == nil or type(list[1]) == "table") then
      return "cycles"
    end
  end
  error(fname .. ": source must be a collector, a store directory, a statistics table or a list of cycle "
    .. "records, got " .. type(spec), 3)
end

--- Reads the source. A store that does not exist, or that cannot be opened,
--- is a runtime failure: nil, message, code.
---@param spec any
---@param kind string   from M.kind
---@return table|nil source, string? err, string? code
function M.load(spec, kind)
  if kind == "collector" then
    local path = type(spec.path) == "string" and spec.path or nil
    local name = type(spec.name) == "string" and ("collector " .. spec.name) or "collector"
    return from_collector(spec, "collector", name .. (path and (" at " .. path) or " (in memory)"))
  elseif kind == "store" then
    if not exists(spec .. "/data.mdb") then
      return nil, "po.dashboard: no store at " .. spec, "ENOENT"
    end
    local po = require "poengine"
    local metrics = po.metrics
    if not (metrics and metrics.collector) then
      return nil, "po.dashboard: reading a store needs po.metrics.collector", "ENOTSUP"
    end
    local col, err, code = metrics.collector { path = spec }
    if not col then
      return nil, err, code
    end
    local src = from_collector(col, "store", spec)
    if col.close then
      col:close()
    end
    src.collector = nil
    return src
  elseif kind == "statistics" then
    return { kind = "statistics", label = "statistics table", cycles = {}, statistics = complete(spec), memo = {} }
  end
  local list = spec.cycles or spec
  local memo = {}
  local src = { kind = "cycles", label = "cycle records", cycles = list, memo = memo }
  if spec.statistics then
    src.statistics = complete(spec.statistics)
    return src
  end
  return lazy_statistics(src, function()
    return M.statistics(list, memo)
  end)
end

return M
