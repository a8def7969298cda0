--- File I/O on the worker pool: po.files.read and po.files.write (po.batch,
--- its old name, is a deprecated alias of this module).
---
--- Each call splits its list into batches, runs every batch as one job on
--- the pool (in C: src/core/fileio.c, no Lua state involved) and returns the
--- per-file results in input order. With `root`, every path is confined
--- beneath that directory. See docs/scripting.md.
local core = require "poengine_core"
local pool = require "poengine.pool"

local type, error, tostring, ceil, max, min = type, error, tostring, math.ceil, math.max, math.min

local M = {}

local READ_OPTIONS = { batch_size = true, root = true }
local WRITE_OPTIONS = { batch_size = true, root = true, sync = true }
local MAX_DEFAULT_BATCH = 64

local check_names = require("poengine.util.options").check

local function check_options(fname, opts, allowed)
  if opts == nil then
    return {}
  end
  if type(opts) ~= "table" then
    error(fname .. ": options must be a table, got " .. type(opts), 3)
  end
  check_names(fname, opts, allowed, 3)
  if opts.batch_size ~= nil and (type(opts.batch_size) ~= "number" or opts.batch_size < 1
      or opts.batch_size ~= math.floor(opts.batch_size)) then
    error(fname .. ": batch_size must be a whole number of at least 1", 3)
  end
  if opts.root ~= nil and type(opts.root) ~= "string" then
    error(fname .. ": root must be a string, got " .. type(opts.root), 3)
  end
  return opts
end

-- Default: spread the files over every worker twice, at most 64 a batch.
local function batch_size(opts, n)
  if opts.batch_size then
    return opts.batch_size
  end
  local workers = pool.stats().workers
  return max(1, min(MAX_DEFAULT_BATCH, ceil(n / (2 * workers))))
end

local function run_batches(list, size, start)
  local n = #list
  local futures, spans = {}, {}
  for first = 1, n, size do
    local last = min(n, first + size - 1)
    local part = {}
    for i = first, last do
      part[#part + 1] = list[i]
    end
    futures[#futures + 1] = start(part)
    spans[#spans + 1] = { first, last }
  end
  local results = {}
  for b, fut in ipairs(futures) do
    local got, err, code = fut:wait()
    local first, last = spans[b][1], spans[b][2]
    for i = first, last do
      results[i] = got and got[i - first + 1] or { err = tostring(err), code = code }
    end
  end
  return results
end

--- Reads whole files on the pool. Returns, in input order, `{ content = s }`
--- or `{ err = message, code = "ENOENT" | "EOUTSIDE" | ... }` per path.
--- Inside po.async the task yields while the pool works.
---@param paths string[]
---@param opts? { batch_size?: integer, root?: string }
---@return ({ content: string }|{ err: string, code: string })[]
function M.read(paths, opts)
  if type(paths) ~= "table" then
    error("po.files.read: paths must be a table of strings, got " .. type(paths), 2)
  end
  opts = check_options("po.files.read", opts, READ_OPTIONS)
  for i = 1, #paths do
    if type(paths[i]) ~= "string" then
      error("po.files.read: paths[" .. i .. "] must be a string, got " .. type(paths[i]), 2)
    end
  end
  local root = opts.root
  return run_batches(paths, batch_size(opts, #paths), function(part)
    return core.read_files(part, root)
  end)
end

--- Writes files atomically on the pool (temporary file and rename; fsync of
--- the file and its directory with `sync`), creating parent directories.
--- Returns, in input order, `{ ok = true }` or `{ err =, code = }` per file.
---@param files { path: string, content: string }[]
---@param opts? { batch_size?: integer, root?: string, sync?: boolean }
---@return ({ ok: true }|{ err: string, code: string })[]
function M.write(files, opts)
  if type(files) ~= "table" then
    error("po.files.write: files must be a table of { path =, content = }, got " .. type(files), 2)
  end
  opts = check_options("po.files.write", opts, WRITE_OPTIONS)
  for i = 1, #files do
    local f = files[i]
    if type(f) ~= "table" or type(f.path) ~= "string" or type(f.content) ~= "string" then
      error("po.files.write: files[" .. i .. "] must be { path = string, content = string }", 2)
    end
  end
  local root, sync = opts.root, opts.sync and true or false
  return run_batches(files, batch_size(opts, #files), function(part)
    return core.write_files(part, root, sync)
  end)
end

--- What `path` is, without following a link: `{ type = "file" | "dir" |
--- "link" | "other", size = bytes, mtime = seconds }`, or nil, message,
--- code (the errno name: "ENOENT", "EACCES", ...).
---@param path string
function M.stat(path)
  if type(path) ~= "string" then
    error("po.files.stat: path must be a string, got " .. type(path), 2)
  end
  return core.stat(path)
end

--- The entries of directory `dir` (not "." and ".."), each as M.stat gives
--- it with its `name`, in no particular order; or nil, message, code.
---@param dir string
function M.list(dir)
  if type(dir) ~= "string" then
    error("po.files.list: dir must be a string, got " .. type(dir), 2)
  end
  return core.list_dir(dir)
end

return M
