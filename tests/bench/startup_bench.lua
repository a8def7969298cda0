-- Start-up cost: `poengine -e ''` beside `luajit -e ''`, 200 launches a run.
-- Processes are started with posix_spawn through the FFI, so no shell's own
-- start-up is added to either side.
local ffi = require "ffi"
local lib = require "tests.bench.lib"

ffi.cdef [[
  typedef int pid_t;
  int posix_spawn(pid_t *pid, const char *path, const void *file_actions,
                  const void *attrp, char *const argv[], char *const envp[]);
  pid_t waitpid(pid_t pid, int *status, int options);
  extern char **environ;
]]
local C = ffi.C

local function launcher(argv)
  local cargv = ffi.new("char *[?]", #argv + 1)
  local keep = {}
  for i, a in ipairs(argv) do
    keep[i] = ffi.new("char[?]", #a + 1, a)
    cargv[i - 1] = keep[i]
  end
  local pid = ffi.new("pid_t[1]")
  local status = ffi.new("int[1]")
  return function(times)
    for _ = 1, times do
      assert(C.posix_spawn(pid, argv[1], nil, nil, cargv, C.environ) == 0, "posix_spawn " .. argv[1])
      C.waitpid(pid[0], status, 0)
      assert(status[0] == 0, argv[1] .. " failed")
    end
  end
end

local function which(name)
  local p = io.popen("command -v " .. name)
  local path = p:read("*l")
  p:close()
  return assert(path, name .. " not found")
end

local poengine = launcher { arg[-1] or "poengine", "-e", "" }
local luajit = launcher { which("luajit"), "-e", "" }
local n = 200

lib.compare {
  name = "start-up",
  case = "`poengine -e ''` vs `luajit -e ''`",
  subject = { label = "poengine", fn = function() poengine(n) end },
  baseline = { label = "luajit", fn = function() luajit(n) end },
  ops = n,
  unit = "ms",
  goal = { max_ratio = 3 },
}
