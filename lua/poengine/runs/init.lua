--- The run catalogue: the optimizer runs kept under <home>/runs, listed,
--- read (as poengine.runs.model gives them), removed and exported. Shared
--- by `poengine runs` and `poengine serve`. A run's id is its directory's
--- name, one path component; nothing here reaches outside <home>/runs.
---
---     local runs = require "poengine.runs"
---     for _, s in ipairs(runs.list(runs.home())) do print(s.id, s.status) end
---
--- docs/scripting.md, "Runs".
local po = require "poengine"
local model = require "poengine.runs.model"
local fs = require "poengine.runs.fs"

local M = {}

M.model = model

--- The home directory runs are kept under (po.store.default_dir:
--- $POENGINE_HOME, else $XDG_CACHE_HOME/poengine, else ~/.cache/poengine);
--- nil, message, code when there is none.
---@return string|nil home, string? message, string? code
function M.home()
  return po.store.default_dir()
end

--- Checks a run id from outside (a command line, a URL): a single path
--- component, so that <home>/runs/<id> is a directory in <home>/runs.
--- Returns id, or nil, message, "EINVAL".
---@param id string
---@return string|nil id, string? message, string? code
function M.check_id(id)
  if type(id) ~= "string" then
    error("poengine.runs.check_id: id must be a string, got " .. type(id), 2)
  end
  if id == "" then
    return nil, "a run id cannot be empty", "EINVAL"
  elseif id == "." or id == ".." or id:find("/", 1, true) or id:find("\0", 1, true) then
    return nil, ("'%s' is not a run id: an id is one directory name, without '/'"):format(
      (id:gsub("%z", "\\0"))), "EINVAL"
  end
  return id
end

local function home_of(fn, home)
  if home == nil then
    return M.home()
  elseif type(home) ~= "string" or home == "" then
    error("poengine.runs." .. fn .. ": home must be a directory name, got " .. type(home), 3)
  end
  return home
end

-- The model of the run in dir, or nil, why: a log that is not a file, a
-- log with bytes but not one readable event, or a model that cannot be
-- built, is a run that cannot be read.
local function load(dir, log_kind, log_size)
  if log_kind and log_kind ~= "f" then
    return nil, "its event log is not a regular file"
  end
  local ok, m, err = pcall(model.load, dir)
  if not ok then
    return nil, "its event log cannot be read: " .. tostring(m)
  elseif not m then
    return nil, err
  elseif m.task == nil and (log_size or 0) > 0 then
    return nil, "its event log holds no readable event"
  end
  return m
end

--- A run's summary, as list gives it (model is what model.load gives).
---@param m table
function M.summary(m)
  return { id = m.id, task = m.task, method = m.method, dir = m.dir, direction = m.direction, started = m.started,
    updated = m.updated, cycles = m.cycles, status = m.status, best = m.best, cost = m.cost, warning = m.warning }
end

--- The runs under <home>/runs, newest first (by start, else by the
--- directory's time): each a summary { id, task, method, dir, direction,
--- started, updated, cycles, status, best = { speedup, ci_low, ci_high,
--- verdict, source } | nil, cost = { usd, tokens }, warning }. A directory
--- without an event log is not a run and is left out; one that cannot be
--- read is listed as { id, dir, status = "unreadable", reason }. nil,
--- message, code when <home>/runs cannot be listed.
---@param home? string  default M.home()
---@return table[]|nil runs, string? message, string? code
function M.list(home)
  local h, herr, hcode = home_of("list", home)
  if not h then
    return nil, herr, hcode
  end
  local runs_dir = h .. "/runs"
  local entries, err, code = fs.entries(runs_dir)
  if not entries then
    return nil, err, code
  end
  local list = {}
  for id, e in pairs(entries) do
    if e.log then
      local dir = runs_dir .. "/" .. id
      local m, why = load(dir, e.log, e.log_size)
      local s = m and M.summary(m) or { id = id, dir = dir, status = "unreadable", reason = why }
      s.sort_time = s.started or e.mtime or 0
      list[#list + 1] = s
    end
  end
  table.sort(list, function(a, b)
    if a.sort_time ~= b.sort_time then
      return a.sort_time > b.sort_time
    end
    return a.id < b.id
  end)
  for _, s in ipairs(list) do
    s.sort_time = nil
  end
  return list
end

-- <home>/runs/<id> when id is a run id and that is a directory of its own
-- (not a link); else nil, message, code.
local function run_dir(fn, home, id)
  local h, herr, hcode = home_of(fn, home)
  if not h then
    return nil, herr, hcode
  end
  local ok, err, code = M.check_id(id)
  if not ok then
    return nil, err, code
  end
  local dir = h .. "/runs/" .. id
  local e = fs.entry(dir)
  if not e then
    return nil, ("no run '%s' in %s/runs"):format(id, h), "ENOENT"
  end
  return dir, e
end

--- The model of run `id` (poengine.runs.model), or nil, message, code:
--- EINVAL for an id that is not one, ENOENT when there is no such run, EIO
--- when it cannot be read.
---@param home? string  default M.home()
---@param id string
---@return table|nil model, string? message, string? code
function M.get(home, id)
  local dir, e, code = run_dir("get", home, id)
  if not dir then
    return nil, e, code
  end
  if not e.log then
    return nil, ("no run '%s': %s has no event log"):format(id, dir), "ENOENT"
  end
  local m, why = load(dir, e.log, e.log_size)
  if not m then
    return nil, ("run '%s' cannot be read: %s"):format(id, why), "EIO"
  end
  return m
end

--- Removes run `id`'s directory (its store, events, patch, sandboxes);
--- a link there is removed, never what it points to. A run whose process
--- is still running is refused (EBUSY) unless `opts.force`. Returns true,
--- or nil, message, code (EINVAL, ENOENT, EBUSY, EIO).
---@param home? string  default M.home()
---@param id string
---@param opts? { force?: boolean }
---@return true|nil ok, string? message, string? code
function M.remove(home, id, opts)
  opts = opts or {}
  local dir, err, code = run_dir("remove", home, id)
  if not dir then
    return nil, err, code
  end
  if not opts.force then
    local ok, m = pcall(model.load, dir)
    if ok and m and m.status == "running" then
      return nil, ("run '%s' is running; stop it first, or force the removal"):format(id), "EBUSY"
    end
  end
  return fs.remove_tree(dir)
end

--- A run's model as text: "json" (the model, times in RFC 3339) or "csv"
--- (one row per candidate). See poengine.runs.export.
---@param m table
---@param format "json"|"csv"
---@return string
function M.export(m, format)
  return require("poengine.runs.export").text(m, format)
end

return M
