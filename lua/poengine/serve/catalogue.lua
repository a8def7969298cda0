--- The runs a server shows: those under <home>/runs, or a fixed set of
--- run directories (poengine optimize --serve with --output). A run's model
--- is read again only when its event log has changed (size or mtime), so
--- a scrape or a poll of an idle run costs a stat, not a re-read; a model
--- that said "running" has its process looked at again each time.
local po = require "poengine"
local model = require "poengine.runs.model"
local runs = require "poengine.runs"

local M = {}
local Catalogue = {}
Catalogue.__index = Catalogue

--- opts: { home = dir } or { runs = { [id] = dir } }.
function M.new(opts)
  return setmetatable({ home = opts.home, fixed = opts.runs, cache = {} }, Catalogue)
end

--- The directory of run `id`, or nil, message, code (EINVAL, ENOENT).
function Catalogue:dir_of(id)
  local ok, err, code = runs.check_id(id)
  if not ok then
    return nil, err, code
  end
  local dir
  if self.fixed then
    dir = self.fixed[id]
  elseif self.home then
    dir = self.home .. "/runs/" .. id
  end
  local st = dir and po.files.stat(dir)
  if not st or st.type ~= "dir" then
    return nil, "no run '" .. id .. "'", "ENOENT"
  end
  return dir
end

-- { id, dir, size, mtime } of each run with an event log, newest first.
function Catalogue:entries()
  local list = {}
  local function add(id, dir)
    local st = po.files.stat(dir .. "/events.jsonl")
    if st and st.type == "file" then
      list[#list + 1] = { id = id, dir = dir, size = st.size, mtime = st.mtime }
    end
  end
  if self.fixed then
    for id, dir in pairs(self.fixed) do
      add(id, dir)
    end
  elseif self.home then
    for _, e in ipairs(po.files.list(self.home .. "/runs") or {}) do
      if e.type == "dir" and runs.check_id(e.name) then
        add(e.name, self.home .. "/runs/" .. e.name)
      end
    end
  end
  table.sort(list, function(a, b)
    if a.mtime ~= b.mtime then
      return a.mtime > b.mtime
    end
    return a.id < b.id
  end)
  return list
end

-- The model of an entry, from the cache while its event log is unchanged.
function Catalogue:model_of(e)
  local hit = self.cache[e.id]
  if hit and hit.dir == e.dir and hit.size == e.size and hit.mtime == e.mtime then
    local m = hit.model
    if m.status == "running" and not (m.process and model.alive(m.process)) then
      m.status = "stopped"
    end
    return m
  end
  local m, err, code = model.load(e.dir)
  if not m then
    return nil, err, code
  end
  m.id = e.id
  self.cache[e.id] = { dir = e.dir, size = e.size, mtime = e.mtime, model = m }
  return m
end

--- The model of run `id`, or nil, message, code.
function Catalogue:model(id)
  local dir, err, code = self:dir_of(id)
  if not dir then
    return nil, err, code
  end
  local st = po.files.stat(dir .. "/events.jsonl")
  if not st then
    return nil, "run '" .. id .. "' has no event log", "ENOENT"
  end
  return self:model_of { id = id, dir = dir, size = st.size, mtime = st.mtime }
end

--- Every run's model, newest first (by start); a run that cannot be read
--- is left out (its id in the second list, with the reason).
function Catalogue:models()
  local models, broken, seen = {}, {}, {}
  for _, e in ipairs(self:entries()) do
    seen[e.id] = true
    local m, err = self:model_of(e)
    if m then
      models[#models + 1] = m
    else
      broken[#broken + 1] = { id = e.id, error = err }
    end
  end
  for id in pairs(self.cache) do
    if not seen[id] then
      self.cache[id] = nil -- removed since: forget it
    end
  end
  -- newest first by start, as poengine runs list orders them
  table.sort(models, function(a, b)
    local ta, tb = a.started or a.updated or 0, b.started or b.updated or 0
    if ta ~= tb then
      return ta > tb
    end
    return a.id < b.id
  end)
  return models, broken
end

return M
