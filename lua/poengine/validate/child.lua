--- The child side of an isolated function validator (`isolate = true`, see
--- validate/runners.lua): a `poengine -e` process that reads a job packed
--- by po.pool.pack from stdin, caps its own address space, runs the job
--- and writes `po.pool.encode(true, results...)` or
--- `po.pool.encode(false, message, code)` to the stdout it was started
--- with. Anything the function itself prints goes to stderr, so it cannot
--- corrupt the result. The parent kills it at the validator's deadline.
local po = require "poengine"
local ffi = require "ffi"

local select, tostring, xpcall, pcall, unpack = select, tostring, xpcall, pcall, unpack
local traceback = debug.traceback

pcall(ffi.cdef, [[
struct po_child_rlimit { unsigned long cur, max; };
int setrlimit(int resource, const struct po_child_rlimit *limit);
int dup(int fd);
int dup2(int from, int to);
long write(int fd, const void *buf, unsigned long n);
long sysconf(int name);
]])

local C = ffi.C
local RLIMIT_AS = 9 -- Linux, on every architecture poengine builds for
local SC_PAGESIZE = 30

-- The address space the process holds now, in bytes (0 if unknown).
local function address_space()
  local f = io.open("/proc/self/statm")
  local pages = f and tonumber((f:read("*l") or ""):match("^(%d+)"))
  if f then
    f:close()
  end
  return (pages or 0) * tonumber(C.sysconf(SC_PAGESIZE))
end

local M = {}

local function write_all(fd, s)
  local p, left = ffi.cast("const char *", s), #s
  while left > 0 do
    local n = tonumber(C.write(fd, p, left))
    if n <= 0 then
      if ffi.errno() ~= 4 then -- EINTR
        return false
      end
    else
      p, left = p + n, left - n
    end
  end
  return true
end

local function pack_results(ok, ...)
  return ok, select("#", ...), { ... }
end

local function call(fn, ...)
  return fn(...)
end

--- Runs the job on stdin. opts: `memory_limit` (bytes of address space
--- the job may add to what the process holds when it starts, or nil), `path` and `cpath` (the parent's package paths, so the job's
--- modules resolve as they do there).
---@param opts { memory_limit?: number, path?: string, cpath?: string }
function M.main(opts)
  local out = C.dup(1)
  C.dup2(2, 1)
  if opts.path then
    package.path = opts.path
  end
  if opts.cpath then
    package.cpath = opts.cpath
  end
  local payload = io.stdin:read("*a")
  if opts.memory_limit then
    -- The cap is what the function may add to what the child holds now:
    -- a fixed total would count the runtime itself, which under
    -- AddressSanitizer reserves terabytes of shadow memory at start.
    local cap = address_space() + opts.memory_limit
    local limit = ffi.new("struct po_child_rlimit", cap, cap)
    if C.setrlimit(RLIMIT_AS, limit) ~= 0 then
      io.stderr:write("poengine: cannot set the memory limit (errno ", tostring(ffi.errno()), ")\n")
    end
  end
  local ok, n, results = pack_results(xpcall(function() return call(po.pool.unpack(payload)) end, traceback))
  payload = nil
  local encoded, err
  if ok then
    ok, encoded = pcall(po.pool.encode, true, unpack(results, 1, n))
    err = not ok and encoded
  else
    err = results[1]
  end
  results = nil
  if not ok then
    err = tostring(err)
    collectgarbage() -- what a runaway allocation held, so the message can be written
    local code = err:find("not enough memory", 1, true) and "ENOMEM" or "ERUNTIME"
    encoded = po.pool.encode(false, err, code)
  end
  local written = write_all(out, encoded)
  io.stdout:flush()
  io.stderr:flush()
  os.exit(written and 0 or 1) -- now: tasks or timers the job left are not waited for
end

return M
