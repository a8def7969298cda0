--- Test helper: this process's resident memory and open descriptors (from
--- /proc/self), and the Lua heap after a full collection, for the leak spec
--- and the soak.
local ffi = require "ffi"

local M = {}

pcall(ffi.cdef, [[
  typedef struct __dirstream DIR;
  DIR *opendir(const char *name);
  struct dirent *readdir(DIR *dirp);
  int closedir(DIR *dirp);
]])

--- Resident set size in bytes.
function M.rss()
  local f = assert(io.open("/proc/self/statm", "r"))
  local _, resident = f:read("*n", "*n")
  f:close()
  return resident * 4096
end

--- Open file descriptors (not counting the one that lists them).
function M.fds()
  local dir = ffi.C.opendir("/proc/self/fd")
  assert(dir ~= nil, "cannot list /proc/self/fd")
  local n = 0
  while ffi.C.readdir(dir) ~= nil do
    n = n + 1
  end
  ffi.C.closedir(dir)
  return n - 3 -- ".", ".." and the directory's own descriptor
end

--- Lua heap in bytes after two full collections (finalizers run in the first).
function M.heap()
  collectgarbage()
  collectgarbage()
  return collectgarbage("count") * 1024
end

--- All three at once.
function M.sample()
  local heap = M.heap()
  return { rss = M.rss(), fds = M.fds(), heap = heap }
end

return M
