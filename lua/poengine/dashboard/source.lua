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
---     run = { direction = "min" | "max", ... },  -- the run record (col:run(), or the list's `run`);
---                                    -- the direction from the record, else the newest cycle's
---                                    -- metadata.direction, else "max" (a higher score is better)
---     run_model = m | nil,           -- an optimizer run's model (poengine.runs.model) when the
---                                    -- source is a run directory, a run's store, a collector on
---                                    -- one, or a model itself (kind "run")
---     memo = {} }                    -- figures derived once per load (M.totals, M.successful,
---                                    -- M.validation_times)
local M = {}

local fmt = require "poengine.dashboard.fmt"
local stats = require "poengine.metrics.stats"

local type, pairs, pcall = type, pairs, pcall

--- The collector's statistics, computed from a list of cycle records (for
--- sources that are plain lists): poengine.metrics.stats.cycles, the pass
--- col:statistics() makes too. With memo, the same pass fills in what the
--- sections need besides: memo.validation_times, memo.totals and
--- memo.successful (see M.validation_times, M.totals, M.successful).
---@param cycles table[]
---@param memo? table
---@return table
M.statistics = stats.cycles

-- A source's statistics are computed on first use (a format that draws
-- only the cycles, csv, never pays for them); computing them fills the
-- memo. A source whose statistics were given (a statistics table, a
-- non-engine collector) fills it from its cycles on first need.
local function memo_of(src)
  local _ = src.statistics
  local memo = src.memo
  if not memo.totals then
    stats.cycles(src.cycles, memo)
  end
  return memo
end

--- Sums over a loaded source's cycles that the statistics do not carry,
--- computed once per load: tokens_in, tokens_out, cost (spent), best_score
--- (the highest best_score or score seen; nil if none), last_score,
--- first_start and last_end (Unix seconds; nil if none).
---@param src table   what M.load returned
---@return table
function M.totals(src)
  return memo_of(src).totals
end

--- The successful cycles with a finite duration: how many, and the sum of
--- their durations (seconds), computed once per load.
---@param src table   what M.load returned
---@return integer count, number time
function M.successful(src)
  local s = memo_of(src).successful
  return s.count, s.time
end

--- The validation time of every cycle that ran validations, sorted:
--- computed once per load.
---@param src table   what M.load returned
---@return number[]
function M.validation_times(src)
  return memo_of(src).validation_times
end

-- The run record and the objective's direction of a loaded source.
local function with_run(src, run)
  run = type(run) == "table" and run or {}
  local direction = run.direction
  if direction ~= "min" and direction ~= "max" then
    local cycles = src.cycles
    for i = #cycles, 1, -1 do
      local meta = cycles[i].metadata
      local d = type(meta) == "table" and meta.direction
      if d == "min" or d == "max" then
        direction = d
        break
      end
    end
  end
  local copy = {}
  for k, v in pairs(run) do
    copy[k] = v
  end
  copy.direction = direction == "min" and "min" or "max"
  src.run = copy
  src.memo.direction = copy.direction
  return src
end

--- One line that says what a loaded source is and how many cycles it
--- holds: "collector (in memory) · 1,000 cycles".
---@param src table   what M.load returned
---@return string
function M.describe(src)
  local n = src.kind == "statistics" and src.statistics.overall_stats.total_cycles or #src.cycles
  if n == 0 and src.run_model then
    n = src.run_model.cycles or 0
  end
  return src.label .. " \194\183 " .. fmt.int(n) .. (n == 1 and " cycle" or " cycles")
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
  local ok, run = pcall(function()
    return type(col.run) == "function" and col:run() or nil
  end)
  with_run(src, ok and run or nil)
  if is_engine_collector(col) then
    -- One pass over the history instead of two: the engine's collector's
    -- statistics() is the same pass (poengine.metrics.stats.cycles) over
    -- the same records, and it knows its active cycles. What is read from
    -- the collector is read now (a store's collector is closed after
    -- loading).
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

local function strip(path)
  return (path:gsub("(.)/+$", "%1"))
end

--- The optimizer run directory `path` belongs to: `path` itself when it
--- holds an event log (events.jsonl), its parent when `path` is a run's
--- store (<run>/store beside the event log); else nil.
---@param path string
---@return string?
function M.run_dir(path)
  if type(path) ~= "string" or path == "" then
    return nil
  end
  path = strip(path)
  if exists(path .. "/events.jsonl") then
    return path
  end
  local parent = path:match("^(.*)/store$")
  if parent and exists(parent .. "/events.jsonl") then
    return parent
  end
  return nil
end

-- Adds the run model of `dir` to a loaded source (read at each load, so a
-- run still going shows its newest events). A log that cannot be read
-- leaves the source as it was.
local function with_model(src, dir)
  local m = require("poengine.runs.model").load(dir)
  if m then
    src.run_model = m
    if src.run.direction ~= m.direction and #src.cycles == 0 then
      src.run.direction, src.memo.direction = m.direction, m.direction
    end
  end
  return src
end

local function is_model(t)
  return type(t) == "table" and type(t.candidates) == "table" and type(t.chain) == "table"
    and type(t.cycle_outcomes) == "table"
end

--- Describes what `spec` is, raising when it cannot be a source at all:
--- returns "collector", "store", "statistics" or "cycles".
---@param spec any
---@param fname string   the public function, for messages
---@return string
function M.kind(spec, fname)
  if type(spec) == "string" then
    return "store"
  elseif is_model(spec) then
    return "run"
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

-- A source with no cycle records of its own: a run's model, or a run
-- directory whose store is not there (yet).
local function model_only(kind, label, direction)
  local memo = {}
  local src = with_run({ kind = kind, label = label, cycles = {}, memo = memo }, { direction = direction })
  return lazy_statistics(src, function()
    return M.statistics({}, memo)
  end)
end

--- Reads the source. A store that does not exist, or that cannot be opened,
--- is a runtime failure: nil, message, code. A run directory (or a run's
--- store, or a collector on one) brings its run model along.
---@param spec any
---@param kind string   from M.kind
---@return table|nil source, string? err, string? code
function M.load(spec, kind)
  if kind == "collector" then
    local path = type(spec.path) == "string" and spec.path or nil
    local name = type(spec.name) == "string" and ("collector " .. spec.name) or "collector"
    local src = from_collector(spec, "collector", name .. (path and (" at " .. path) or " (in memory)"))
    local run = M.run_dir(path)
    return run and with_model(src, run) or src
  elseif kind == "run" then
    local src = model_only("run", "run " .. tostring(spec.id), spec.direction)
    src.run_model = spec
    return src
  elseif kind == "store" then
    local run = M.run_dir(spec)
    if run and run == strip(spec) then
      spec = run .. "/store"
    end
    if not exists(spec .. "/data.mdb") then
      if run then
        return with_model(model_only("store", "run " .. run), run)
      end
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
    return run and with_model(src, run) or src
  elseif kind == "statistics" then
    return with_run({ kind = "statistics", label = "statistics table", cycles = {}, statistics = complete(spec),
      memo = {} }, spec.run or { direction = spec.direction })
  end
  local list = spec.cycles or spec
  local memo = {}
  local src = { kind = "cycles", label = "cycle records", cycles = list, memo = memo }
  with_run(src, list ~= spec and (spec.run or { direction = spec.direction }) or nil)
  if spec.statistics then
    src.statistics = complete(spec.statistics)
    return src
  end
  return lazy_statistics(src, function()
    return M.statistics(list, memo)
  end)
end

return M
