--- po.profile: wrap a function so that its calls, errors and durations are
--- recorded in the metrics registry under a name, and report them.
---
---   local parse = po.profile("parse", parse)   -- a wrapped function
---   po.profile.report()                         -- profiled names by total time
---
--- The records are the histogram po_profile_duration_seconds{name=...} and
--- the counter po_profile_errors_total{name=...}: process-wide, so the
--- report covers every Lua state of the process, and po.metrics.expose()
--- shows them too.
local core = require "poengine_core"
local metrics = require "poengine.metrics"

local now, pcall, error, type = core.now, pcall, error, type

local M = {}

local DURATION = "po_profile_duration_seconds"
local ERRORS = "po_profile_errors"

local function callable(fn)
  if type(fn) == "function" then
    return true
  end
  local mt = getmetatable(fn)
  return type(mt) == "table" and mt.__call ~= nil
end

--- Returns a function that calls fn with its arguments and returns what fn
--- returns, recording the call's duration, and counting an error before
--- re-raising it unchanged (the same value, no position added).
---@param name string
---@param fn function
---@return function
function M.wrap(name, fn)
  if type(name) ~= "string" or name == "" then
    error("po.profile: name must be a non-empty string, got " .. type(name), 2)
  end
  if not callable(fn) then
    error("po.profile: fn must be callable, got " .. type(fn), 2)
  end
  local labels = { name = name }
  local duration = metrics.histogram(DURATION, { help = "Duration of profiled function calls.", unit = "seconds",
    labels = labels })
  local errors = metrics.counter(ERRORS, { help = "Errors raised by profiled function calls.", labels = labels })
  local function finish(t0, ok, ...)
    duration:observe(now() - t0)
    if not ok then
      errors:inc()
      error((...), 0)
    end
    return ...
  end
  return function(...)
    return finish(now(), pcall(fn, ...))
  end
end

--- The profiled names, by total time (largest first; ties by name): each
--- { name, calls, errors, total, mean, min, max, p50, p90, p99 }, seconds.
---@return table[]
function M.report()
  local by_name, out = {}, {}
  for _, m in ipairs(metrics.collect()) do
    if m.name == DURATION then
      local r = {
        name = m.labels.name, calls = m.count, errors = 0, total = m.sum, mean = m.mean,
        min = m.min, max = m.max, p50 = m.p50, p90 = m.p90, p99 = m.p99,
      }
      by_name[r.name] = r
      out[#out + 1] = r
    end
  end
  for _, m in ipairs(metrics.collect()) do
    if m.name == ERRORS and by_name[m.labels.name] then
      by_name[m.labels.name].errors = m.value
    end
  end
  table.sort(out, function(a, b)
    if a.total ~= b.total then
      return a.total > b.total
    end
    return a.name < b.name
  end)
  return out
end

return setmetatable(M, {
  __call = function(_, name, fn)
    return M.wrap(name, fn)
  end,
})
