--- The built-in dashboard sections. Each is what a script would pass to
--- po.dashboard.section: `data(src, options)` computes plain values (what the
--- JSON format shows), `view(data, ctx)` lays them out as blocks that every
--- format knows how to draw (see poengine.dashboard.blocks).
local fmt = require "poengine.dashboard.fmt"
local source = require "poengine.dashboard.source"
local stats = require "poengine.metrics.stats"

local M = {}

local num = stats.num
local floor, max = math.floor, math.max
local type, pairs = type, pairs

local function json_array(t)
  return require("poengine").json.array(t)
end

local finite = stats.finite

-- The named figures of a statistics group, each a number (0 if missing).
local function figures(group, names, into)
  into = into or {}
  for _, k in ipairs(names) do
    into[k] = num(group[k])
  end
  return into
end

local function completed(r)
  return not (r.end_time == nil and r.success == nil)
end

-- Adds the number t[k] (a boolean counts 1 or 0) into a[k]; a figure no
-- entry has stays nil (shown as "–"), rather than a made-up zero.
local function sum_into(a, t, k)
  local v = t[k]
  if v == true then
    v = 1
  elseif v == false then
    v = 0
  end
  if type(v) == "number" and v == v then
    a[k] = (a[k] or 0) + v
  end
end

local PROVIDER_FIGURES = { "calls", "cache_hits", "tokens_in", "tokens_out", "cost", "latency", "latency_count" }
local VALIDATOR_FIGURES = { "runs", "passed", "duration" }

-- Named per-cycle breakdowns (`providers`, `validators`: name -> figures)
-- summed over the cycles (from each record, or its metadata), or taken from
-- the statistics when the source keeps them there (`provider_stats`,
-- `validator_stats`). Returns the list sorted by name.
local function merge_named(src, field, stats_key, figures_list)
  local acc, order = {}, {}
  local nf = #figures_list
  local function entry(name)
    local a = acc[name]
    if not a then
      a = { name = tostring(name) }
      acc[name] = a
      order[#order + 1] = name
    end
    return a
  end
  local from_stats = src.statistics[stats_key]
  if type(from_stats) == "table" then
    for name, t in pairs(from_stats) do
      if type(t) == "table" then
        local a = entry(t.name or name)
        for i = 1, nf do
          sum_into(a, t, figures_list[i])
        end
      end
    end
  else
    local cycles = src.cycles
    for i = 1, #cycles do
      local r = cycles[i]
      local per = r[field]
      if per == nil and type(r.metadata) == "table" then
        per = r.metadata[field]
      end
      if type(per) == "table" then
        for name, t in pairs(per) do
          if type(t) == "table" then
            local a = acc[name] or entry(name)
            -- Written out: this loop runs in LuaJIT's interpreter (pairs is
            -- not compiled), where a call per figure would double its cost.
            local v
            if field == "providers" then
              v = t.calls if type(v) == "number" then a.calls = (a.calls or 0) + v end
              v = t.cache_hits if type(v) == "number" then a.cache_hits = (a.cache_hits or 0) + v end
              v = t.tokens_in if type(v) == "number" then a.tokens_in = (a.tokens_in or 0) + v end
              v = t.tokens_out if type(v) == "number" then a.tokens_out = (a.tokens_out or 0) + v end
              v = t.cost if type(v) == "number" then a.cost = (a.cost or 0) + v end
              v = t.latency if type(v) == "number" then a.latency = (a.latency or 0) + v end
              v = t.latency_count if type(v) == "number" then a.latency_count = (a.latency_count or 0) + v end
            else
              v = t.runs if type(v) == "number" then a.runs = (a.runs or 0) + v end
              v = t.passed
              if v == true then v = 1 elseif v == false then v = 0 end
              if type(v) == "number" then a.passed = (a.passed or 0) + v end
              v = t.duration if type(v) == "number" then a.duration = (a.duration or 0) + v end
            end
          end
        end
      end
    end
  end
  table.sort(order, function(a, b)
    return tostring(a) < tostring(b)
  end)
  local list = {}
  for i, name in ipairs(order) do
    list[i] = acc[name]
  end
  return list
end

local function ratio(a, b)
  if a and b and b > 0 then
    return a / b
  end
  return nil
end

--- The sections in their default order.
M.list = {}

local function add(spec)
  M.list[#M.list + 1] = spec
end

-- Elapsed time since the first cycle, as x values for a chart, in the unit
-- that reads best; falls back to cycle numbers when start times are missing.
local function time_axis(cycles)
  local n = #cycles
  local first = n > 0 and cycles[1].start_time
  if not finite(first) then
    return nil, "cycle"
  end
  for i = 1, n do
    if not finite(cycles[i].start_time) then
      return nil, "cycle"
    end
  end
  local span = cycles[n].start_time - first
  local unit, label = 1, "seconds since the first cycle"
  if span >= 7200 then
    unit, label = 3600, "hours since the first cycle"
  elseif span >= 120 then
    unit, label = 60, "minutes since the first cycle"
  end
  local xs = {}
  for i = 1, n do
    xs[i] = (cycles[i].start_time - first) / unit
  end
  return xs, label
end

add {
  name = "overall",
  title = "Overall",
  layout = "full",
  data = function(src)
    local t = source.totals(src)
    local first, last = t.first_start, t.last_end
    return figures(src.statistics.overall_stats, { "total_cycles", "successful_cycles", "failed_cycles",
      "success_rate", "active_cycles", "total_file_operations" }, {
      tokens_in = t.tokens_in,
      tokens_out = t.tokens_out,
      cost = t.cost,
      best_score = t.best_score,
      first_start = fmt.rfc3339(first),
      last_end = fmt.rfc3339(last),
      wall_time = first and last and last - first or 0,
    })
  end,
  view = function(d)
    return {
      { "kv", tiles = true, items = {
        { "Cycles", fmt.int(d.total_cycles) },
        { "Success rate", fmt.pct(d.success_rate), fmt.int(d.successful_cycles) .. " succeeded" },
        { "Failed", fmt.int(d.failed_cycles) },
        { "Active", fmt.int(d.active_cycles) },
        { "Best score", fmt.num(d.best_score, 4) },
        { "Wall time", fmt.seconds(d.wall_time) },
        { "Tokens", fmt.compact(d.tokens_in + d.tokens_out),
          fmt.compact(d.tokens_in) .. " in \194\183 " .. fmt.compact(d.tokens_out) .. " out" },
        { "Cost", fmt.money(d.cost) },
        { "File operations", fmt.int(d.total_file_operations) },
      } },
    }
  end,
}

add {
  name = "cycles",
  layout = "half",
  title = "Cycle durations",
  data = function(src)
    local c = src.statistics.cycle_stats
    local n, total = source.successful(src)
    return figures(c, { "mean", "median", "min", "max", "stdev", "p90", "p99" }, { count = n, total = total })
  end,
  view = function(d, ctx)
    local cycles = ctx.source.cycles
    local ys = {}
    for i = 1, #cycles do
      ys[i] = cycles[i].duration
    end
    local xs, xlabel = time_axis(cycles)
    return {
      { "kv", items = {
        { "Mean", fmt.seconds(d.mean) }, { "Median", fmt.seconds(d.median) },
        { "p90", fmt.seconds(d.p90) }, { "p99", fmt.seconds(d.p99) },
        { "Min", fmt.seconds(d.min) }, { "Max", fmt.seconds(d.max) },
        { "Std dev", fmt.seconds(d.stdev) }, { "Successful", fmt.int(d.count) },
      } },
      { "chart", chart = "line", label = "duration", spark = ys, spark_format = fmt.seconds, options = {
        title = "Cycle duration over time", x = xs, x_label = xlabel, y_label = "seconds",
        series = { { name = "duration", y = ys, n = #cycles } }, y_min = 0, empty = "no cycles yet",
      } },
    }
  end,
}

add {
  name = "llm",
  layout = "half",
  title = "LLM and cache",
  data = function(src)
    local c = src.statistics.cache_stats
    local t = source.totals(src)
    local providers = merge_named(src, "providers", "provider_stats", PROVIDER_FIGURES)
    for _, p in ipairs(providers) do
      p.hit_rate = ratio(p.cache_hits, p.calls)
      -- latency is the sum over the calls that report one (latency_count
      -- of them; when not given, the calls that missed the cache).
      p.mean_latency = ratio(p.latency, p.latency_count or (p.calls and p.calls - (p.cache_hits or 0)))
      p.latency, p.latency_count = nil, nil
    end
    return figures(c, { "total_llm_calls", "cache_hits", "cache_misses", "hit_rate", "api_reduction",
      "tokens_saved", "cost_saved" }, { tokens_in = t.tokens_in, tokens_out = t.tokens_out, cost = t.cost,
      providers = json_array(providers) })
  end,
  view = function(d, ctx)
    local rows = {}
    for i, p in ipairs(d.providers) do
      rows[i] = { p.name, fmt.int(p.calls), fmt.pct(p.hit_rate), fmt.int(p.tokens_in), fmt.int(p.tokens_out),
        fmt.money(p.cost), fmt.seconds(p.mean_latency) }
    end
    -- Hit rate over time: cumulative, and over a moving window of cycles.
    local cycles = ctx.source.cycles
    local n = #cycles
    local window = max(5, floor(n / 25))
    local cum, roll = {}, {}
    local calls, hits = 0, 0
    for i = 1, n do
      local r = cycles[i]
      calls, hits = calls + num(r.llm_calls), hits + num(r.llm_cache_hits)
      cum[i] = calls > 0 and hits / calls * 100 or nil
    end
    local wcalls, whits = 0, 0
    for i = 1, n do
      local r = cycles[i]
      wcalls, whits = wcalls + num(r.llm_calls), whits + num(r.llm_cache_hits)
      local old = i > window and cycles[i - window] -- (a key below 1 stops LuaJIT compiling the loop)
      if old then
        wcalls, whits = wcalls - num(old.llm_calls), whits - num(old.llm_cache_hits)
      end
      roll[i] = wcalls > 0 and whits / wcalls * 100 or nil
    end
    return {
      { "kv", items = {
        { "LLM calls", fmt.int(d.total_llm_calls) }, { "Cache hits", fmt.int(d.cache_hits) },
        { "Cache misses", fmt.int(d.cache_misses) }, { "Hit rate", fmt.pct(d.hit_rate) },
        { "API calls avoided", fmt.num(d.api_reduction, 3) .. "%" }, { "Tokens saved", fmt.int(d.tokens_saved) },
        { "Cost saved", fmt.money(d.cost_saved) }, { "Cost spent", fmt.money(d.cost) },
      } },
      { "table", title = "Per provider", empty = "no per-provider figures in this source",
        columns = { "provider", { "calls", "right" }, { "hit rate", "right" }, { "tokens in", "right" },
          { "tokens out", "right" }, { "cost", "right" }, { "latency", "right" } },
        rows = rows },
      { "chart", chart = "line", label = "hit rate", spark = roll, spark_format = function(v)
        return fmt.num(v, 3) .. "%"
      end, options = {
        title = "Cache hit rate over time", x_label = "cycle", y_label = "hit rate (%)", y_min = 0, y_max = 100,
        y_format = function(v)
          return string.format("%d%%", v)
        end,
        series = { { name = "cumulative", y = cum, n = n }, { name = window .. "-cycle window", y = roll, n = n } },
        empty = "no LLM calls yet",
      } },
    }
  end,
}

add {
  name = "validation",
  layout = "half",
  title = "Validation",
  data = function(src)
    local v = src.statistics.validation_stats
    local times = source.validation_times(src)
    local total = 0
    for i = 1, #times do
      total = total + times[i]
    end
    local validators = merge_named(src, "validators", "validator_stats", VALIDATOR_FIGURES)
    for _, x in ipairs(validators) do
      x.pass_rate = ratio(x.passed, x.runs)
      x.mean_duration = ratio(x.duration, x.runs)
    end
    return figures(v, { "total_validations", "mean_validation_time", "median_validation_time" }, {
      total_time = total, p90 = stats.percentile(times, 90), max = times[#times] or 0,
      validators = json_array(validators) })
  end,
  view = function(d, ctx)
    local rows = {}
    for i, x in ipairs(d.validators) do
      rows[i] = { x.name, fmt.int(x.runs), fmt.pct(x.pass_rate), fmt.seconds(x.mean_duration),
        fmt.seconds(x.duration) }
    end
    local times = source.validation_times(ctx.source)
    return {
      { "kv", items = {
        { "Validations", fmt.int(d.total_validations) }, { "Total time", fmt.seconds(d.total_time) },
        { "Mean", fmt.seconds(d.mean_validation_time) }, { "Median", fmt.seconds(d.median_validation_time) },
        { "p90", fmt.seconds(d.p90) }, { "Max", fmt.seconds(d.max) },
      } },
      { "table", title = "Per validator", empty = "no per-validator figures in this source",
        columns = { "validator", { "runs", "right" }, { "pass rate", "right" }, { "mean", "right" },
          { "total", "right" } },
        rows = rows },
      { "chart", chart = "histogram", label = "validation time", spark_format = fmt.seconds, options = {
        title = "Validation time per cycle", values = times, x_label = "seconds", y_label = "cycles",
        empty = "no validations yet",
      } },
    }
  end,
}

local better = stats.better

-- The best score so far after each cycle: a cycle's best_score, else its
-- score when that beats the best before it, in the objective's direction.
local function running_best(cycles, direction)
  local bests, run = {}, nil
  for i = 1, #cycles do
    local r = cycles[i]
    local s = finite(r.score) and r.score or nil
    local b = finite(r.best_score) and r.best_score or s
    if b and (not run or better(direction, b, run)) then
      run = b
    end
    bests[i] = run
  end
  return bests
end

add {
  name = "progress",
  layout = "half",
  title = "Optimization progress",
  data = function(src)
    local direction = src.run.direction
    -- The original's score, when the run record has it, is where the run
    -- started (the first cycle's score is already a candidate's).
    local original = src.run.original_score
    local from_original = finite(original)
    local first, last, best, best_id, improvements, scored = nil, nil, nil, nil, 0, 0
    if from_original then
      first, best, best_id = original, original, "original"
    end
    for _, r in ipairs(src.cycles) do
      local s = r.score
      if finite(s) then
        scored = scored + 1
        first = first or s
        last = s
      end
      local b = finite(r.best_score) and r.best_score or (finite(s) and s) or nil
      if b and (not best or better(direction, b, best)) then
        if best then
          improvements = improvements + 1
        end
        best, best_id = b, r.cycle_id
      end
    end
    local ratio
    if first and best and first ~= 0 and best ~= 0 then
      ratio = direction == "min" and first / best or best / first
    end
    return {
      direction = direction,
      scored_cycles = scored,
      first_score = first,
      first_is_original = from_original,
      last_score = last,
      best_score = best,
      best_cycle = best_id ~= nil and tostring(best_id) or nil,
      improvements = improvements,
      -- How much better the best is than the first score: positive is
      -- better whichever the direction.
      improvement = first and best and (direction == "min" and first - best or best - first) or nil,
      improvement_ratio = ratio,
    }
  end,
  view = function(d, ctx)
    local cycles = ctx.source.cycles
    local n = #cycles
    local scores = {}
    for i = 1, n do
      local r = cycles[i]
      scores[i] = finite(r.score) and r.score or nil
    end
    local bests = running_best(cycles, d.direction)
    local lower = d.direction == "min"
    return {
      { "kv", items = {
        { "Best score", fmt.num(d.best_score, 4) }, { "Best cycle", d.best_cycle or fmt.none },
        { d.first_is_original and "Original score" or "First score", fmt.num(d.first_score, 4) },
        { "Last score", fmt.num(d.last_score, 4) },
        { "Improvement", fmt.num(d.improvement, 4)
          .. (d.improvement_ratio and (" (" .. fmt.num(d.improvement_ratio, 3) .. "x)") or "") },
        { "Improvements", fmt.int(d.improvements) },
        { "Scored cycles", fmt.int(d.scored_cycles) },
        { "Direction", lower and "lower is better" or "higher is better" },
      } },
      { "chart", chart = "line", label = "best score", spark = bests, options = {
        title = "Best score over cycles", x_label = "cycle",
        y_label = lower and "score (lower is better)" or "score (higher is better)",
        series = { { name = "best score", y = bests, n = n }, { name = "score", y = scores, n = n } },
        empty = "no scores yet",
      } },
    }
  end,
}

add(require "poengine.dashboard.section_run")

add {
  name = "recent",
  title = "Recent cycles",
  layout = "full",
  data = function(src, options)
    local limit = options.recent or 10
    local cycles = src.cycles
    local list = {}
    for i = #cycles, max(1, #cycles - limit + 1), -1 do
      local r = cycles[i]
      list[#list + 1] = {
        cycle_id = r.cycle_id ~= nil and tostring(r.cycle_id) or nil,
        start_time = fmt.rfc3339(r.start_time),
        duration = finite(r.duration) and r.duration or nil,
        status = not completed(r) and "active" or r.success and "ok" or "failed",
        llm_calls = num(r.llm_calls),
        llm_cache_hits = num(r.llm_cache_hits),
        cost = num(r.cost),
        score = finite(r.score) and r.score or nil,
        error = r.error ~= nil and tostring(r.error) or nil,
      }
    end
    return { shown = #list, total = #cycles, cycles = json_array(list) }
  end,
  view = function(d)
    local rows = {}
    for i, c in ipairs(d.cycles) do
      rows[i] = { c.cycle_id or fmt.none, c.start_time and c.start_time:sub(12, 19) or fmt.none,
        fmt.seconds(c.duration), c.status, fmt.int(c.llm_calls) .. "/" .. fmt.int(c.llm_cache_hits),
        fmt.money(c.cost), fmt.num(c.score, 4), c.error or "" }
    end
    return {
      { "table", empty = "no cycles yet", status_column = 4,
        columns = { { "cycle", "left", flex = true }, "started", { "duration", "right" }, "status",
          { "LLM/hits", "right" }, { "cost", "right" }, { "score", "right" }, { "error", "left", flex = true } },
        rows = rows },
    }
  end,
}

add {
  name = "profile",
  title = "Profile",
  layout = "full",
  -- po.profile's report is this process's: a store another process wrote
  -- shows it only when asked for.
  when = function(src)
    return src.kind ~= "store"
  end,
  data = function()
    local po = require "poengine"
    local profile = po.profile
    local functions = {}
    if profile and profile.report then
      for i, f in ipairs(profile.report()) do
        functions[i] = {
          name = tostring(f.name),
          calls = num(f.calls),
          errors = num(f.errors),
          total = num(f.total),
          mean = num(f.mean),
          p99 = num(f.p99),
        }
      end
    end
    return { functions = json_array(functions) }
  end,
  view = function(d)
    local rows = {}
    for i, f in ipairs(d.functions) do
      rows[i] = { f.name, fmt.int(f.calls), fmt.int(f.errors), fmt.seconds(f.total), fmt.seconds(f.mean),
        fmt.seconds(f.p99) }
    end
    return {
      { "table", empty = "no profiled functions: wrap them with po.profile(name, fn)",
        columns = { { "function", "left", flex = true }, { "calls", "right" }, { "errors", "right" },
          { "total", "right" }, { "mean", "right" }, { "p99", "right" } },
        rows = rows },
    }
  end,
}

add(require "poengine.dashboard.pareto")

-- The judging sections come first: a run's dashboard opens on its verdict.
for i, name in ipairs { "judge_best", "judge_candidates", "judge_tree", "judge_outcomes" } do
  table.insert(M.list, i, require("poengine.dashboard." .. name))
end

return M
