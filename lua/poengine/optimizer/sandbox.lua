--- Files, sandboxes and processes for the optimizer. A sandbox is a
--- directory holding the workdir as the baseline has it, with a candidate's
--- files written over it: a detached git worktree when the workdir is the
--- top of a git repository, else a copy.
local po = require "poengine"

local M = {}

local format = string.format

local function run(argv, cwd)
  local r = po.run_sync { argv = argv, cwd = cwd, timeout = 120 }
  if r.status ~= "ok" then
    return nil, format("%s failed (%s): %s", argv[1], r.error or r.status, (r.stderr or ""):sub(1, 500))
  end
  return r
end

--- Reads the files at `paths` under root into { [path] = content }; a
--- missing file is left out. Returns nil, message, code on another failure.
function M.read_files(root, paths)
  local results = po.files.read(paths, { root = root })
  local files = {}
  for i, r in ipairs(results) do
    if r.err then
      if r.code ~= "ENOENT" then
        return nil, paths[i] .. ": " .. r.err, r.code
      end
    else
      files[paths[i]] = r.content
    end
  end
  return files
end

--- Writes { [path] = content } under root, in path order; returns how
--- many, or nil, message, code.
function M.write_files(root, files, sync)
  local list = {}
  for path, content in pairs(files) do
    list[#list + 1] = { path = path, content = content }
  end
  table.sort(list, function(a, b) return a.path < b.path end)
  for i, r in ipairs(po.files.write(list, { root = root, sync = sync })) do
    if r.err then
      return nil, list[i].path .. ": " .. r.err, r.code
    end
  end
  return #list
end

-- True when dir is the top of a git work tree (a subdirectory of some
-- repository is copied instead: a worktree of the whole repository per
-- candidate would be far more than the task needs).
local function is_git_top(dir)
  local r = po.run_sync { argv = { "git", "-C", dir, "rev-parse", "--show-toplevel" }, timeout = 30 }
  return r.status == "ok" and r.stdout:gsub("%s+$", "") == dir
end

--- The absolute path of an existing directory, or nil, message, "ENOENT".
function M.absolute(dir)
  local r = po.run_sync { argv = { "realpath", "--", dir }, timeout = 30 }
  if r.status ~= "ok" then
    return nil, "no such directory: " .. dir, "ENOENT"
  end
  return (r.stdout:gsub("%s+$", ""))
end

--- Where a task's sandboxes go: under the run's directory, or on the
--- shared directory (task.shared_dir, else the executor's) when its
--- validators run on Slurm, whose nodes must see them.
function M.root(task, out_dir)
  local ex = po.executor
  if ex.kind_of(task.executor) == "slurm" then
    local settings = type(task.executor) == "table" and task.executor or ex.settings()
    return (task.shared_dir or ex.shared_dir(settings)) .. "/" .. task.id .. "/sandboxes"
  end
  return out_dir .. "/sandboxes"
end

local Sandboxes = {}
Sandboxes.__index = Sandboxes

--- The sandboxes of a task's run, made under root: `:make(name, files)`
--- returns a sandbox's directory (or nil, message), `:remove_all()` removes
--- every one made.
function M.new(task, root)
  local self = setmetatable({ task = task, root = root, made = {} }, Sandboxes)
  self.git = is_git_top(task.workdir)
  return self
end

function Sandboxes:make(name, files)
  local dir = self.root .. "/" .. name
  po.run_sync { argv = { "rm", "-rf", dir } }
  local ok, err
  if self.git then
    -- A detached worktree of HEAD; the baseline's target files (which may
    -- hold accepted, uncommitted changes) are written over it below.
    ok, err = run { "git", "-C", self.task.workdir, "worktree", "add", "--detach", "--force", dir, "HEAD" }
    if ok then
      self.made[#self.made + 1] = { dir = dir, git = true }
    end
  else
    local workdir = self.task.workdir
    local inside = self.root:sub(1, #workdir + 1) == workdir .. "/" and self.root:sub(#workdir + 2)
    if inside then
      -- The run's own directory (its store, its sandboxes) lies inside the
      -- workdir: copying it into each sandbox would copy a directory into
      -- itself. Everything else is copied.
      local run_dir = inside:match("^(.*)/[^/]+$") or inside
      po.run_sync { argv = { "mkdir", "-p", dir } }
      ok, err = run { "bash", "-c", 'set -o pipefail; tar -C "$1" --exclude="./$2" -cf - . | tar -C "$3" -xf -',
        "sandbox", workdir, run_dir, dir }
    else
      ok, err = run { "cp", "-a", workdir .. "/.", dir .. "/" }
      if not ok then
        po.run_sync { argv = { "mkdir", "-p", dir } }
        ok, err = run { "cp", "-a", workdir .. "/.", dir .. "/" }
      end
    end
    if ok then
      self.made[#self.made + 1] = { dir = dir }
    end
  end
  if not ok then
    return nil, "cannot make sandbox " .. name .. ": " .. err
  end
  local written, werr = M.write_files(dir, files)
  if not written then
    return nil, werr
  end
  return dir
end

function Sandboxes:remove_all()
  for _, s in ipairs(self.made) do
    if s.git then
      po.run_sync { argv = { "git", "-C", self.task.workdir, "worktree", "remove", "--force", s.dir } }
    end
    po.run_sync { argv = { "rm", "-rf", s.dir } }
  end
  self.made = {}
end

--- What po.validate gets for a sandbox: its directory and its target files
--- ({dir}, {file} and {files} in argv validators), the candidate's id and
--- its point of the search space.
function M.candidate(task, dir, id, params)
  local cand = { dir = dir, id = id, params = params, files = {} }
  for i, path in ipairs(task.target_files) do
    cand.files[i] = dir .. "/" .. path
  end
  if #cand.files == 1 then
    cand.file = cand.files[1]
  end
  return cand
end

return M
