--- Where a collector keeps its history of encoded cycle records: in memory,
--- or in the store (an append-only record log, poengine_core.store). Both
--- have the same methods:
---
---   h:append(bytes, max)   adds a record, dropping the oldest beyond max; true or nil, msg, code
---   h:count()              how many records it holds
---   h:scan(after, limit)   up to limit records after position `after` (0: from the oldest),
---                          and the position of the last one (nil, message on failure)
---   h:tail(n)              the n newest records, oldest first
---   h:clear()              forgets every record (the store's, for every process using it)
---   h:close()              releases the store; safe twice
---   h:set_run(bytes)       keeps the run's record (one encoded table; the last one written wins)
---   h:get_run()            that record's bytes, or nil
local core = require "poengine_core"

local setmetatable = setmetatable

local M = {}

local memory = {}
memory.__index = memory

function M.memory()
  return setmetatable({ items = {}, first = 1, last = 0 }, memory)
end

function memory:append(bytes, max)
  local last = self.last + 1
  self.items[last] = bytes
  self.last = last
  while last - self.first + 1 > max do
    self.items[self.first] = nil
    self.first = self.first + 1
  end
  return true
end

function memory:count()
  return self.last - self.first + 1
end

-- Up to limit records after position `after` (0: from the oldest), with the
-- position of the last one.
function memory:scan(after, limit)
  local out, from = {}, after + 1
  if from < self.first then
    from = self.first
  end
  local to = from + limit - 1
  if to > self.last then
    to = self.last
  end
  for i = from, to do
    out[#out + 1] = self.items[i]
  end
  return out, to
end

function memory:tail(n)
  local out = {}
  local from = self.last - n + 1
  if from < self.first then
    from = self.first
  end
  for i = from, self.last do
    out[#out + 1] = self.items[i]
  end
  return out
end

function memory:clear()
  self.items, self.first, self.last, self.run = {}, 1, 0, nil
  return true
end

function memory:close() end

function memory:set_run(bytes)
  self.run = bytes
  return true
end

function memory:get_run()
  return self.run
end

local stored = {}
stored.__index = stored

function M.stored(path, durability)
  local log, err, code = core.store.log(path, "cycles", { durability = durability })
  if not log then
    return nil, err, code
  end
  -- The run's record lives in a log of its own, holding one entry.
  local run
  run, err, code = core.store.log(path, "run", { durability = durability })
  if not run then
    log:close()
    return nil, err, code
  end
  return setmetatable({ log = log, run = run }, stored)
end

function stored:set_run(bytes)
  local key, err, code = self.run:append(bytes, 1)
  if not key then
    return nil, err, code
  end
  return true
end

function stored:get_run()
  local last = self.run:tail(1)
  return last and last[1]
end

function stored:append(bytes, max)
  local key, err, code = self.log:append(bytes, max)
  if not key then
    return nil, err, code
  end
  return true
end

function stored:count()
  return self.log:count()
end

function stored:scan(after, limit)
  local values, keys = self.log:scan(after, limit)
  if not values then
    return nil, keys
  end
  return values, keys[#keys] or after
end

function stored:tail(n)
  return (self.log:tail(n))
end

function stored:clear()
  local ok, err, code = self.log:clear()
  if not ok then
    return nil, err, code
  end
  return self.run:clear()
end

function stored:close()
  self.log:close()
  self.run:close()
end

return M
