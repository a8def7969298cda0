--- po.metrics: counters, gauges and histograms in one process-wide registry
--- (C, src/core/metrics.c), their exposition, and the cycle collector.
---
--- `inc`, `set`, `add` and `observe` call the C functions through the LuaJIT
--- FFI (ffi.C inside the poengine binary, which exports them; the module's
--- own symbols when poengine_core.so is loaded by a stock luajit); everything
--- else goes through the C API binding (poengine_core.metrics).
local core = require "poengine_core"

local cm = core.metrics
local type, error, setmetatable, tostring = type, error, setmetatable, tostring
local now = core.now

local M = {}

-- ---- the FFI fast path ---------------------------------------------------

local cffi = require "poengine._ffi"
local ffi = cffi.ffi

--- The C functions for the FFI (poengine._ffi finds them: in the process's
--- global symbols inside the poengine binary, in poengine_core.so's own when
--- a stock luajit loads it). Returns the namespace and how it was found, or
--- nil and "c-api".
local function find_fast_path()
  if not cffi.C or os.getenv("POENGINE_METRICS_FFI") == "off" then
    return nil, "c-api"
  end
  return cffi.C, cffi.found
end

local C, fast_path = find_fast_path()

--- How `inc`, `set`, `add` and `observe` reach C in this Lua state: "ffi.C",
--- "ffi.load" (stock luajit with poengine_core.so) or "c-api" (no FFI, or
--- POENGINE_METRICS_FFI=off).
M.fast_path = fast_path

local pointer_type = C and ffi.typeof("po_metric *")

local function number_arg(method, v)
  error(("%s: the value must be a number, got %s"):format(method, type(v)), 3)
end

-- ---- metric objects --------------------------------------------------------

local function class()
  local mt = {}
  mt.__index = mt
  mt.__tostring = function(self)
    return tostring(self._ud)
  end
  mt.__eq = function(a, b)
    return a._ud == b._ud
  end
  --- The metric's identity: name, type, help, unit, labels (name -> value),
  --- label_names, label_values and, for histograms, buckets, lowest, highest.
  function mt:info()
    return self._ud:info()
  end
  return mt
end

---@class po.Counter
local Counter = class()
---@class po.Gauge
local Gauge = class()
---@class po.Histogram
local Histogram = class()

--- Adds n (default 1; finite, >= 0).
---@param n? number
function Counter:inc(n)
  if n == nil then
    n = 1
  elseif type(n) ~= "number" then
    number_arg("counter:inc", n)
  end
  if C.po_counter_inc(self._p, n) ~= 0 then
    return self._ud:inc(n) -- raises the C API's message, at the caller's line
  end
end

---@return number
function Counter:value()
  return self._ud:value()
end

---@param v number
function Gauge:set(v)
  if type(v) ~= "number" then
    number_arg("gauge:set", v)
  end
  if C.po_gauge_set(self._p, v) ~= 0 then
    return self._ud:set(v)
  end
end

---@param d number
function Gauge:add(d)
  if type(d) ~= "number" then
    number_arg("gauge:add", d)
  end
  if C.po_gauge_add(self._p, d) ~= 0 then
    return self._ud:add(d)
  end
end

Gauge.value = Counter.value

--- Records v (finite, >= 0).
---@param v number
function Histogram:observe(v)
  if type(v) ~= "number" then
    number_arg("histogram:observe", v)
  end
  if C.po_histogram_observe(self._p, v) ~= 0 then
    return self._ud:observe(v)
  end
end

--- The value at percentile p (0..100), within 1% of the exact one.
---@param p number
---@return number
function Histogram:percentile(p)
  return self._ud:percentile(p)
end

--- count, sum, min, max, mean, p50, p90, p99 (zeros when empty).
---@return table
function Histogram:snapshot()
  return self._ud:snapshot()
end

--- Adds other's observations into this histogram (same buckets and range).
---@param other po.Histogram
function Histogram:merge(other)
  if getmetatable(other) ~= Histogram then
    error("histogram:merge: other must be a histogram", 2)
  end
  self._ud:merge(other._ud)
end

if not C then -- the C API path (tail calls: an error names the caller's line)
  function Counter:inc(n)
    return self._ud:inc(n)
  end
  function Gauge:set(v)
    return self._ud:set(v)
  end
  function Gauge:add(d)
    return self._ud:add(d)
  end
  function Histogram:observe(v)
    return self._ud:observe(v)
  end
end

local function wrap(mt, ud)
  return setmetatable({ _ud = ud, _p = C and ffi.cast(pointer_type, ud:pointer()) }, mt)
end

--- A counter: finds or creates it in the process-wide registry.
---@param name string
---@param opts? { help?: string, unit?: string, labels?: table<string, string|number> }
---@return po.Counter
function M.counter(name, opts)
  return wrap(Counter, cm.register("counter", name, opts))
end

---@param name string
---@param opts? { help?: string, unit?: string, labels?: table<string, string|number> }
---@return po.Gauge
function M.gauge(name, opts)
  return wrap(Gauge, cm.register("gauge", name, opts))
end

---@param name string
---@param opts? { help?: string, unit?: string, labels?: table<string, string|number>, buckets?: number[], lowest?: number, highest?: number }
---@return po.Histogram
function M.histogram(name, opts)
  return wrap(Histogram, cm.register("histogram", name, opts))
end

-- ---- timers ----------------------------------------------------------------

local Timer = {}
Timer.__index = Timer

--- Observes the seconds since the timer started into its histogram and
--- returns them. A timer stops once.
---@return number seconds
function Timer:stop()
  if not self._t0 then
    error("timer:stop: the timer was already stopped", 2)
  end
  local elapsed = now() - self._t0
  self._t0 = nil
  self._h:observe(elapsed)
  return elapsed
end

--- Starts a timer that will record into histogram h.
---@param h po.Histogram
---@return table timer
function M.timer(h)
  if getmetatable(h) ~= Histogram then
    error("po.metrics.timer: h must be a histogram, got " .. type(h), 2)
  end
  return setmetatable({ _h = h, _t0 = now() }, Timer)
end

-- ---- reading and exposition ------------------------------------------------

--- Every metric of the process, families in name order: a list of tables
--- with the fields of `info()` and `value` (counters, gauges) or count, sum,
--- min, max, mean, p50, p90, p99 and cumulative (histograms).
M.collect = cm.collect

--- The registry as text: "prometheus" (text format 0.0.4), "openmetrics"
--- (OpenMetrics 1.0 text, ending in # EOF) or "json".
---@param format "prometheus"|"openmetrics"|"json"
---@return string
function M.expose(format)
  return require("poengine.metrics.expose").expose(format, cm.collect())
end

-- ---- the cycle collector ---------------------------------------------------

--- A cycle collector (see poengine.metrics.collector).
function M.collector(opts)
  return require("poengine.metrics.collector").new(opts, M)
end

local global_collector

--- The process's default collector (in this Lua state), created on first use
--- with the default options unless set_global set one.
function M.global()
  if not global_collector then
    global_collector = M.collector()
  end
  return global_collector
end

--- The default collector if global() or set_global() has made one, else
--- nil: for code that records into it only when a script uses it.
function M.existing_global()
  return global_collector
end

--- Makes col the collector that global() returns.
function M.set_global(col)
  local collector = require "poengine.metrics.collector"
  if not collector.is_collector(col) then
    error("po.metrics.set_global: col must be a collector, got " .. type(col), 2)
  end
  global_collector = col
end

return M
