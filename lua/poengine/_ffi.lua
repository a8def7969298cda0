--- Private to poengine: the LuaJIT FFI declarations of the C functions and
--- structs that the hot paths call directly (po.cache's get and set, the
--- metrics' inc, set, add and observe), and the library they are found in.
--- Every `ffi.cdef` of a poengine C symbol is here, so that a reader finds
--- what Lua assumes about C in one place; each struct whose layout is
--- repeated here says so in its C header.
---
--- One style: the functions are found by their exported symbols, declared as
--- their headers declare them. It works in both hosts, given how each is
--- built (CMakeLists.txt): the `poengine` binary is linked with
--- ENABLE_EXPORTS (-rdynamic), so its symbols are in `ffi.C`; a stock luajit
--- opens `poengine_core.so` with RTLD_LOCAL, so they are not global there, and
--- `ffi.load` of the module's own path (po_metrics_object_path) finds them.
--- (The other style, a table of function pointers a binding hands over, also
--- works in both, but it is one more struct whose layout Lua must repeat and
--- one more binding function for every pointer.)
local M = {}

local ok, ffi = pcall(require, "ffi")
if not ok then
  return M -- no FFI: M.C is nil, callers use the C API binding
end

-- pcall: a script that declared one of these structs before (differently)
-- leaves the FFI unused rather than failing to load poengine.
local declared = pcall(ffi.cdef, [[
  typedef struct po_cache po_cache;
  /* src/core/cache.h */
  typedef struct po_cache_result {
    char *value; size_t len; size_t cap; unsigned flags; double age;
  } po_cache_result;
  int po_cache_get(po_cache *c, const void *key, size_t klen, po_cache_result *r);
  int po_cache_set(po_cache *c, const void *key, size_t klen, const void *value, size_t vlen,
                   unsigned flags, double ttl, int sync); /* sync: a po_store_durability (an int) */

  /* src/core/metrics.h */
  typedef struct po_metric po_metric;
  int po_counter_inc(po_metric *m, double n);
  int po_gauge_set(po_metric *m, double v);
  int po_gauge_add(po_metric *m, double d);
  int po_histogram_observe(po_metric *m, double v);
]])
if not declared then
  return M
end

M.ffi = ffi

local function has_all(lib)
  return pcall(function()
    return lib.po_cache_get and lib.po_cache_set and lib.po_counter_inc and lib.po_gauge_set and lib.po_gauge_add
      and lib.po_histogram_observe
  end)
end

--- Where the functions are: `ffi.C` inside the poengine binary, else the
--- library `ffi.load` opened from poengine_core.so's path; nil when neither
--- holds them.
M.C = nil
--- How they were found: "ffi.C", "ffi.load", or nil.
M.found = nil

if has_all(ffi.C) then
  M.C, M.found = ffi.C, "ffi.C"
else
  local path = require("poengine_core").metrics.object_path()
  if path then
    local loaded, lib = pcall(ffi.load, path)
    if loaded and has_all(lib) then
      M.C, M.found = lib, "ffi.load"
    end
  end
end

return M
