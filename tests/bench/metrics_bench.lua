-- The metrics hot paths: c:inc() and h:observe(v) from Lua, through the FFI
-- (what po.metrics objects use) and through the C API binding (a userdata
-- method), each beside the same C function called in a loop from C
-- (tests/bench/metrics_c_bench.c, a separate process that times its own
-- loop, so its start-up is left out). Per operation, in nanoseconds.
local po = require "poengine"
local lib = require "tests.bench.lib"
local core = require "poengine_core"

local N = 5000000

local bindir = (arg[-1] or "build/poengine"):match("^(.*)/[^/]*$") or "."
local helper = bindir .. "/tests/metrics_c_bench"

local function c_loop(what)
  return function()
    local p = assert(io.popen(helper .. " " .. what .. " " .. N))
    local seconds = tonumber(p:read("*l"))
    p:close()
    return assert(seconds, "metrics_c_bench failed")
  end
end

local c = po.metrics.counter("bench_inc_total", { help = "bench" })
local h = po.metrics.histogram("bench_observe", { help = "bench" })
local craw = core.metrics.register("counter", "bench_inc_capi_total", { help = "bench" })
local hraw = core.metrics.register("histogram", "bench_observe_capi", { help = "bench" })
assert(po.metrics.fast_path == "ffi.C", "the FFI fast path is not in use")

local function ffi_inc()
  for _ = 1, N do c:inc() end
end
local function capi_inc()
  for _ = 1, N do craw:inc() end
end
local function ffi_observe()
  for i = 1, N do h:observe((i % 1000) * 0.001 + 0.0005) end
end
local function capi_observe()
  for i = 1, N do hraw:observe((i % 1000) * 0.001 + 0.0005) end
end

for _, row in ipairs {
  { "`c:inc()`", "inc", "FFI", ffi_inc, 3 },
  { "`c:inc()`", "inc", "C API", capi_inc },
  { "`h:observe(v)`", "observe", "FFI", ffi_observe, 3 },
  { "`h:observe(v)`", "observe", "C API", capi_observe },
} do
  local call, what, path, fn, extra = row[1], row[2], row[3], row[4], row[5]
  lib.compare {
    name = "metrics", case = ("%s through the %s vs the C function called from C"):format(call, path),
    subject = { label = "Lua, " .. path, fn = fn }, baseline = { label = "C loop", fn = c_loop(what) },
    ops = N, unit = "ns", goal = extra and { max_extra = extra },
  }
end
