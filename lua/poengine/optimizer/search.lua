--- The `search` proposer: a seeded strategy over a declared parameter space
--- (compiler flags, configuration values). No LLM involved.
---
--- A space names each parameter and its values:
---
---     space = {
---       opt    = { "-O0", "-O1", "-O2", "-O3" },   -- a list of choices
---       unroll = { "", "-funroll-loops" },
---       block  = { min = 16, max = 256, step = 16 }, -- an integer range
---     }
---
--- Strategies: "grid" walks every combination in a fixed order; "random"
--- samples without repeating itself; "hill" starts somewhere, tries the
--- neighbours of the best point found (one parameter moved one step), moves
--- when one is better, and restarts from a random point when none is. All of
--- them are deterministic for a given seed.
local json = require("poengine_core").json

local M = {}

local floor = math.floor

--- A small deterministic generator (Park-Miller, exact in doubles), so a
--- seed gives the same run everywhere, whatever else uses math.random.
local function rng(seed)
  local state = floor(tonumber(seed) or 1) % 2147483647
  if state <= 0 then
    state = state + 2147483646
  end
  return function(n)
    state = state * 48271 % 2147483647
    return state % n + 1
  end
end
M.rng = rng

-- Parameters in a fixed order, each with its list of values.
local function expand(space)
  if type(space) ~= "table" or next(space) == nil then
    error("search: space must be a non-empty table of parameters", 3)
  end
  local names = {}
  for name in pairs(space) do
    if type(name) ~= "string" then
      error("search: parameter names must be strings", 3)
    end
    names[#names + 1] = name
  end
  table.sort(names)
  local params = {}
  for i, name in ipairs(names) do
    local spec = space[name]
    local values
    if type(spec) == "table" and spec.min ~= nil then
      local step = spec.step or 1
      if type(spec.min) ~= "number" or type(spec.max) ~= "number" or step <= 0 or spec.max < spec.min then
        error("search: parameter '" .. name .. "' needs numbers min <= max and step > 0", 3)
      end
      values = {}
      for v = spec.min, spec.max + step * 1e-9, step do
        values[#values + 1] = v
      end
    elseif type(spec) == "table" and #spec > 0 then
      values = spec
    else
      error("search: parameter '" .. name .. "' must be a list of values or { min =, max = [, step =] }", 3)
    end
    params[i] = { name = name, values = values }
  end
  return params
end

local Search = {}
Search.__index = Search

--- Creates a search.
---@param opts { space: table, strategy?: "grid"|"random"|"hill", seed?: integer, direction?: "min"|"max", start?: table }
function M.new(opts)
  if type(opts) ~= "table" then
    error("search.new: opts must be a table", 2)
  end
  local strategy = opts.strategy or "hill"
  if strategy ~= "grid" and strategy ~= "random" and strategy ~= "hill" then
    error("search.new: strategy must be 'grid', 'random' or 'hill', got " .. tostring(strategy), 2)
  end
  local direction = opts.direction or "min"
  if direction ~= "min" and direction ~= "max" then
    error("search.new: direction must be 'min' or 'max'", 2)
  end
  local params = expand(opts.space)
  local size = 1
  for _, p in ipairs(params) do
    size = size * #p.values
  end
  local self = setmetatable({
    params = params,
    size = size,
    strategy = strategy,
    direction = direction,
    rand = rng(opts.seed or 1),
    seen = {},     -- key -> true, for every point proposed
    proposed = 0,
    scores = {},   -- key -> score, for every point observed
    next_index = 0, -- grid position
    best = nil,     -- { point =, score = }
    current = nil,  -- hill: the point whose neighbours are being tried
  }, Search)
  if opts.start then
    self.start = self:_indices_of(opts.start)
  end
  return self
end

function Search:_indices_of(point)
  local idx = {}
  for i, p in ipairs(self.params) do
    local v = point[p.name]
    for k, candidate in ipairs(p.values) do
      if candidate == v then
        idx[i] = k
      end
    end
    if not idx[i] then
      error("search: start value " .. tostring(v) .. " is not among the values of '" .. p.name .. "'", 3)
    end
  end
  return idx
end

function Search:_point(idx)
  local point = {}
  for i, p in ipairs(self.params) do
    point[p.name] = p.values[idx[i]]
  end
  return point
end

--- A stable text key for a point (canonical JSON).
function Search:key(point)
  return json.encode(point, { sort_keys = true })
end

function Search:_grid_next()
  while self.next_index < self.size do
    local n = self.next_index
    self.next_index = n + 1
    local idx = {}
    for i = #self.params, 1, -1 do
      local count = #self.params[i].values
      idx[i] = n % count + 1
      n = floor(n / count)
    end
    local point = self:_point(idx)
    if not self.seen[self:key(point)] then
      return point, idx
    end
  end
end

function Search:_random_next()
  if self:exhausted() then
    return nil
  end
  for _ = 1, 1000 do
    local idx = {}
    for i, p in ipairs(self.params) do
      idx[i] = self.rand(#p.values)
    end
    local point = self:_point(idx)
    if not self.seen[self:key(point)] then
      return point, idx
    end
  end
  return self:_grid_next() -- the space is nearly used up: take what is left in order
end

function Search:_neighbours(idx)
  local out = {}
  for i, p in ipairs(self.params) do
    for _, d in ipairs { -1, 1 } do
      local k = idx[i] + d
      if k >= 1 and k <= #p.values then
        local n = {}
        for j = 1, #idx do
          n[j] = idx[j]
        end
        n[i] = k
        out[#out + 1] = n
      end
    end
  end
  -- A seeded shuffle, so ties between neighbours do not always favour the
  -- first parameter.
  for i = #out, 2, -1 do
    local j = self.rand(i)
    out[i], out[j] = out[j], out[i]
  end
  return out
end

function Search:_hill_next()
  if not self.current then
    local idx = self.start
    self.start = nil
    if idx and not self.seen[self:key(self:_point(idx))] then
      self.current = idx
      return self:_point(idx), idx
    end
    local point, ridx = self:_random_next()
    self.current = ridx
    return point, ridx
  end
  for _, n in ipairs(self:_neighbours(self.current)) do
    local point = self:_point(n)
    if not self.seen[self:key(point)] then
      return point, n
    end
  end
  -- Every neighbour tried and none better: restart elsewhere.
  local point, ridx = self:_random_next()
  self.current = ridx
  return point, ridx
end

--- True once every point of the space has been proposed.
function Search:exhausted()
  return self.proposed >= self.size
end

--- Up to n new points to evaluate (fewer when the space runs out).
---@param n integer
---@return table[] points
function Search:propose(n)
  local out = {}
  for _ = 1, n do
    local point
    if self.strategy == "grid" then
      point = self:_grid_next()
    elseif self.strategy == "random" then
      point = self:_random_next()
    else
      point = self:_hill_next()
    end
    if not point then
      break
    end
    self.seen[self:key(point)] = true
    self.proposed = self.proposed + 1
    out[#out + 1] = point
  end
  return out
end

local better = require("poengine.metrics.stats").better

--- Records a point evaluated elsewhere (the baseline): it is never proposed,
--- and hill climbing starts from it.
---@param point table
---@param score number|nil
function Search:mark(point, score)
  local key = self:key(point)
  if not self.seen[key] then
    self.seen[key] = true
    self.proposed = self.proposed + 1
  end
  if self.strategy == "hill" and not self.current then
    self.current = self:_indices_of(point)
  end
  self:observe(point, score)
end

--- Records the score of a point (nil when it failed validation); hill
--- climbing moves to it when it beats the best so far.
---@param point table
---@param score number|nil
function Search:observe(point, score)
  self.scores[self:key(point)] = score or false
  if score and (not self.best or better(self.direction, score, self.best.score)) then
    self.best = { point = point, score = score }
    if self.strategy == "hill" then
      self.current = self:_indices_of(point)
    end
  end
end

return M
