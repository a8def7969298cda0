--- Dashboard sources: whatever a dashboard is built over — a collector, a
--- store directory, a statistics table or a list of cycle records — comes
--- out of `load` as one shape, read fresh at each render:
---
---   { kind = "collector" | "store" | "statistics" | "cycles",
---     label = "what it is, for people",
---     cycles = { record, ... },      -- oldest first; empty for a statistics table
---     statistics = { overall_stats =, cycle_stats =, cache_stats =, validation_stats = },
---     collector = col | nil }
local M = {}

local floor, ceil, sqrt, sort = math.floor, math.ceil, math.sqrt, table.sort
local type, pairs, pcall = type, pairs, pcall

local function num(x)
  if type(x) == "number" and x == x then
    return x
  end
  return 0
end
M.num = num

--- The p-th percentile (0–100) of a sorted list, interpolating linearly
--- between the closest ranks (numpy's default); 0 for an empty list.
---@param sorted number[]
---@param p number
---@return number
function M.percentile(sorted, p)
  local n = #sorted
  if n == 0 then
    return 0
  end
  local h = (n - 1) * p / 100 + 1
  local lo = floor(h)
  if lo >= n then
    return sorted[n]
  end
  return sorted[lo] + (h - lo) * (sorted[lo + 1] - sorted[lo])
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
  sort(sorted)
  local mean = sum / n
  local sq = 0
  for i = 1, n do
    local d = sorted[i] - mean
    sq = sq + d * d
  end
  s.sum, s.mean = sum, mean
  s.min, s.max = sorted[1], sorted[n]
  s.median = M.percentile(sorted, 50)
  s.p90 = M.percentile(sorted, 90)
  s.p99 = M.percentile(sorted, 99)
  s.stdev = n > 1 and sqrt(sq / (n - 1)) or 0
  s.sorted = sorted
  return s
end

local function active(r)
  return r.end_time == nil and r.success == nil
end

--- The collector's statistics, computed from a list of cycle records (for
--- sources that are plain lists). Same keys as `col:statistics()`.
---@param cycles table[]
---@return table
function M.statistics(cycles)
  local durations, vtimes = {}, {}
  local total, ok, failed, running, files = 0, 0, 0, 0, 0
  local calls, hits, misses, vcount = 0, 0, 0, 0
  local miss_tokens, miss_cost, saved_tokens, saved_cost, have_saved = 0, 0, 0, 0, false
  for i = 1, #cycles do
    local r = cycles[i]
    if active(r) then
      running = running + 1
    else
      total = total + 1
      if r.success then
        ok = ok + 1
        if type(r.duration) == "number" then
          durations[#durations + 1] = r.duration
        end
      else
        failed = failed + 1
      end
    end
    files = files + num(r.file_operations)
    calls = calls + num(r.llm_calls)
    hits = hits + num(r.llm_cache_hits)
    misses = misses + num(r.llm_cache_misses)
    miss_tokens = miss_tokens + num(r.tokens_in) + num(r.tokens_out)
    miss_cost = miss_cost + num(r.cost)
    if r.tokens_saved or r.cost_saved then
      have_saved = true
      saved_tokens = saved_tokens + num(r.tokens_saved)
      saved_cost = saved_cost + num(r.cost_saved)
    end
    local vc = num(r.validation_count)
    vcount = vcount + vc
    if vc > 0 or num(r.validation_time) > 0 then
      vtimes[#vtimes + 1] = num(r.validation_time)
    end
  end
  if not have_saved and misses > 0 then
    -- Each hit is taken to have saved what an average miss cost.
    saved_tokens = floor(hits * miss_tokens / misses + 0.5)
    saved_cost = hits * miss_cost / misses
  end
  local d = M.summary(durations)
  local v = M.summary(vtimes)
  local rate = calls > 0 and hits / calls or 0
  return {
    cycle_stats = { mean = d.mean, median = d.median, min = d.min, max = d.max, stdev = d.stdev, p90 = d.p90,
      p99 = d.p99 },
    cache_stats = { total_llm_calls = calls, cache_hits = hits, cache_misses = misses, hit_rate = rate,
      api_reduction = rate, tokens_saved = saved_tokens, cost_saved = saved_cost },
    validation_stats = { mean = v.mean, median = v.median, total_validations = vcount },
    overall_stats = { total_cycles = total, successful_cycles = ok, failed_cycles = failed,
      success_rate = total > 0 and ok / total or 0, active_cycles = running, total_file_operations = files },
  }
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

local function from_collector(col, kind, label)
  return {
    kind = kind,
    label = label,
    collector = col,
    cycles = collector_cycles(col),
    statistics = complete(col:statistics()),
  }
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
    return from_collector(spec, "collector", path and ("collector at " .. path) or "collector (in memory)")
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
    return { kind = "statistics", label = "statistics table", cycles = {}, statistics = complete(spec) }
  end
  local list = spec.cycles or spec
  local stats = spec.statistics and complete(spec.statistics) or M.statistics(list)
  return { kind = "cycles", label = "cycle records", cycles = list, statistics = stats }
end

return M
