--- Where child processes run: po.executor (see docs/scripting.md,
--- "Executors").
---
--- "local" is po.run as always: a child of this process. "slurm" makes a
--- run one Slurm batch job (executor/slurm.lua) whose result looks exactly
--- like a local one. The process-wide default set here (or by
--- POENGINE_EXECUTOR) is what command validators use when they do not name
--- an executor; po.run itself stays local unless told (`executor =
--- "slurm"`, or `executor = "default"` for this default), because the
--- engine's own helper processes (mkdir, git, find) act on this machine.
local core = require "poengine_core"
local options = require "poengine.util.options"

local type, pairs, ipairs, tostring, error, getenv = type, pairs, ipairs, tostring, error, os.getenv

local M = {}

local KINDS = { ["local"] = true, slurm = true }

-- The options of a Slurm executor, as configure takes them and as an
-- executor table ({ kind = "slurm", ... }) may override them per run.
local FIELDS = {
  kind = "string", partition = "string", account = "string", qos = "string", cpus_per_task = "number",
  mem = true, time = true, extra_args = "table", shared_dir = "string", slurm_conf = "string",
}

local settings

local function from_env()
  local kind = getenv("POENGINE_EXECUTOR")
  if kind == nil or kind == "" then
    kind = "local"
  end
  if not KINDS[kind] then
    error("po.executor: POENGINE_EXECUTOR must be \"local\" or \"slurm\", got \"" .. kind .. "\"", 0)
  end
  return { kind = kind }
end

local function current()
  settings = settings or from_env()
  return settings
end

-- Checks an executor's options; raises naming fname and the field.
local function check(fname, opts, level)
  options.check(fname, opts, FIELDS, level + 1)
  if opts.kind ~= nil and not KINDS[opts.kind] then
    error(fname .. ": kind must be \"local\" or \"slurm\", got \"" .. tostring(opts.kind) .. "\"", level + 1)
  end
  local n = opts.cpus_per_task
  if n ~= nil and (n < 1 or n ~= math.floor(n)) then
    error(fname .. ": cpus_per_task must be a whole number of at least 1", level + 1)
  end
  for _, k in pairs { "mem", "time" } do
    local v = opts[k]
    if v ~= nil and type(v) ~= "string" and type(v) ~= "number" then
      error(fname .. ": " .. k .. " must be a string or a number (Slurm's --" .. k .. "), got " .. type(v), level + 1)
    end
  end
  for i, a in ipairs(opts.extra_args or {}) do
    if type(a) ~= "string" then
      error(fname .. ": extra_args[" .. i .. "] must be a string, got " .. type(a), level + 1)
    end
  end
end

--- Sets the process-wide default executor and its Slurm options; a field
--- left out keeps Slurm's own default. Raises on a misspelt field or a
--- value of the wrong type.
---@param opts { kind: "local"|"slurm", partition?: string, account?: string, qos?: string, cpus_per_task?: integer, mem?: string|number, time?: string|number, extra_args?: string[], shared_dir?: string, slurm_conf?: string }
function M.configure(opts)
  if type(opts) ~= "table" then
    error("po.executor.configure: options must be a table, got " .. type(opts), 2)
  end
  check("po.executor.configure", opts, 2)
  if opts.kind == nil then
    error("po.executor.configure: kind (\"local\" or \"slurm\") is required", 2)
  end
  local copy = {}
  for k, v in pairs(opts) do
    copy[k] = v
  end
  settings = copy
end

--- A copy of the process-wide settings ({ kind = "local" } unless
--- configured or POENGINE_EXECUTOR says otherwise).
---@return table
function M.settings()
  local copy = {}
  for k, v in pairs(current()) do
    copy[k] = v
  end
  return copy
end

--- The executor a run with `executor` (nil, "default", "local", "slurm" or
--- a table { kind =, ... }) uses: its settings table. nil means `fallback`
--- ("local" for po.run, "default" for validators). Raises naming `fname`,
--- at `level` (error()'s, counted from resolve's caller's caller: 3 unless
--- the user's call is further up).
---@param executor nil|string|table
---@param fname string
---@param fallback "local"|"default"
---@param level? integer
---@return table settings
function M.resolve(executor, fname, fallback, level)
  level = level or 3
  if executor == nil then
    executor = fallback
  end
  if executor == "default" then
    return current()
  elseif executor == "local" then
    return { kind = "local" }
  elseif executor == "slurm" then
    local s = current()
    if s.kind == "slurm" then
      return s
    end
    return { kind = "slurm" }
  elseif type(executor) == "table" then
    check(fname .. ": executor", executor, level)
    local merged = {}
    local base = current()
    if executor.kind == nil or executor.kind == base.kind then
      for k, v in pairs(base) do
        merged[k] = v
      end
    end
    for k, v in pairs(executor) do
      merged[k] = v
    end
    merged.kind = merged.kind or "local"
    return merged
  end
  error(fname .. ": executor must be \"local\", \"slurm\", \"default\" or a table { kind = ... }, got "
    .. (type(executor) == "string" and ("\"" .. executor .. "\"") or type(executor)), level)
end

--- The shared directory of Slurm settings `ex` (the node and this machine
--- both see it): ex.shared_dir, else $POENGINE_SHARED_DIR, else
--- $HOME/.poengine-slurm.
---@param ex? table
---@return string
function M.shared_dir(ex)
  local dir = ex and ex.shared_dir or getenv("POENGINE_SHARED_DIR")
  if dir == nil or dir == "" then
    local home = getenv("HOME")
    dir = (home and home ~= "" and home or "/tmp") .. "/.poengine-slurm"
  end
  return dir
end

--- The kind a validator with this executor field runs on ("local" or
--- "slurm"); nil means the process default.
function M.kind_of(executor)
  if executor == nil or executor == "default" then
    return current().kind
  elseif type(executor) == "table" then
    return executor.kind or current().kind
  end
  return executor
end

--- Runs spec (as po.run takes it) on the executor it names; spec.executor
--- nil means local. Returns a future of a po.run result table.
---@param spec table
---@return poengine.Future
function M.run(spec, fallback)
  if type(spec) ~= "table" then
    error("po.run: spec must be a table, got " .. type(spec), 2)
  end
  local ex = M.resolve(spec.executor, "po.run", fallback or "local")
  local copy = {}
  for k, v in pairs(spec) do
    copy[k] = v
  end
  copy.executor = nil
  if ex.kind == "local" then
    return core.run(copy)
  end
  -- Not a tail call: slurm's checks raise at the level that counts this frame.
  local fut = require("poengine.executor.slurm").run(copy, ex)
  return fut
end

return M
