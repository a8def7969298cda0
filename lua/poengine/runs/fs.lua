--- The file-system side of the run catalogue: what lies under
--- <home>/runs (read with find(1), which never follows a symbolic link) and
--- the removal of one run's tree (rm(1), which removes a link, never what it
--- points to). Child processes rather than system calls from Lua: they
--- yield inside po.async, so a server listing runs never blocks its loop.
local po = require "poengine"

local M = {}

-- Whether `path` can be opened: a directory can, on Linux, for reading.
local function exists(path)
  local f = io.open(path, "rb")
  if f then
    f:close()
    return true
  end
  return false
end

--- The runs under `runs_dir`: { [id] = { mtime =, log = "f"|"d"|...|nil,
--- log_size = } } for each real directory (not a link) directly in it;
--- `log` is the type find gives the entry named events.jsonl inside it,
--- nil when there is none. An absent `runs_dir` has no runs.
---@param runs_dir string
---@return table|nil entries, string? message, string? code
function M.entries(runs_dir)
  -- %d depth, %y type (l for a link: not followed), %T@ mtime, %s size,
  -- %P the path below runs_dir; NUL-ended, since a name may hold anything
  -- but NUL and "/".
  local r = po.run_sync { argv = { "find", runs_dir, "-mindepth", "1", "-maxdepth", "2",
    "-printf", "%d\t%y\t%T@\t%s\t%P\\0" }, timeout = 60 }
  if r.status ~= "ok" then
    if not exists(runs_dir) then
      return {}
    end
    return nil, "cannot list " .. runs_dir .. ": " .. (r.error or r.stderr or r.status), "EIO"
  end
  local entries, logs = {}, {}
  for record in r.stdout:gmatch("([^%z]+)%z") do
    local depth, kind, mtime, size, rel = record:match("^(%d)\t(%a)\t([^\t]+)\t(%d+)\t(.*)$")
    if depth == "1" and kind == "d" then
      entries[rel] = { mtime = tonumber(mtime) }
    elseif depth == "2" then
      local id, name = rel:match("^(.*)/([^/]*)$")
      if name == "events.jsonl" then
        logs[id] = { kind = kind, size = tonumber(size) }
      end
    end
  end
  for id, log in pairs(logs) do
    if entries[id] then
      entries[id].log, entries[id].log_size = log.kind, log.size
    end
  end
  return entries
end

--- The run directory at `path`: { log = type of its events.jsonl as find
--- gives it ("f" a file, "d" a directory...) or nil, log_size = }; nil when
--- `path` is not a directory itself (absent, a file, a link to one).
---@param path string
function M.entry(path)
  local r = po.run_sync { argv = { "find", path, "-maxdepth", "1", "-printf", "%d\t%y\t%s\t%f\\0" }, timeout = 60 }
  if r.status ~= "ok" then
    return nil
  end
  local e
  for record in r.stdout:gmatch("([^%z]+)%z") do
    local depth, kind, size, name = record:match("^(%d)\t(%a)\t(%d+)\t(.*)$")
    if depth == "0" then
      if kind ~= "d" then
        return nil
      end
      e = {}
    elseif e and name == "events.jsonl" then
      e.log, e.log_size = kind, tonumber(size)
    end
  end
  return e
end

--- Removes the tree at `path`, staying on its file system; true, or nil,
--- message, "EIO".
---@param path string
function M.remove_tree(path)
  local r = po.run_sync { argv = { "rm", "-rf", "--one-file-system", "--", path }, timeout = 600 }
  if r.status ~= "ok" or exists(path) then
    return nil, "cannot remove " .. path .. ": " .. (r.error or r.stderr or r.status), "EIO"
  end
  return true
end

return M
