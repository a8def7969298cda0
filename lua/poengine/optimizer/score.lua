--- Scores of the optimizer: a number, or a tuple (a list of numbers) when
--- the task's `score` function measures several objectives at once. Tuples
--- compare lexicographically, each component in its own direction
--- (`objective.directions`, else `objective.direction` for all); with
--- `objective.pareto = true` the run also keeps the candidates no other
--- candidate dominates.
local stats = require "poengine.metrics.stats"

local M = {}

-- The direction of component i: directions[i] when given, else direction.
local function dir_of(direction, directions, i)
  return directions and directions[i] or direction
end

-- Whether x is ahead of y in dir ("max", else lower is better).
local function ahead(dir, x, y)
  return stats.better(dir == "max" and "max" or "min", x, y)
end

--- Whether score a is better than b: numbers in `direction` ("min" or
--- "max"); tuples component by component, the first that differs decides
--- (a missing component loses).
---@param direction string
---@param a number|number[]
---@param b number|number[]
---@param directions? string[] per component
function M.better(direction, a, b, directions)
  if type(a) ~= "table" or type(b) ~= "table" then
    if type(a) == "table" or type(b) == "table" then
      return false -- a tuple and a number do not compare
    end
    return ahead(dir_of(direction, directions, 1), a, b)
  end
  for i = 1, math.max(#a, #b) do
    local x, y = a[i], b[i]
    if x ~= y then
      if x == nil or y == nil then
        return y == nil
      end
      return ahead(dir_of(direction, directions, i), x, y)
    end
  end
  return false
end

--- Whether a dominates b: at least as good in every component and better
--- in one. Numbers are tuples of one.
function M.dominates(direction, a, b, directions)
  a = type(a) == "table" and a or { a }
  b = type(b) == "table" and b or { b }
  if #a ~= #b then
    return false
  end
  local strictly = false
  for i = 1, #a do
    local d = dir_of(direction, directions, i)
    if ahead(d, b[i], a[i]) then
      return false
    end
    if ahead(d, a[i], b[i]) then
      strictly = true
    end
  end
  return strictly
end

--- The front with `entry` ({ score =, ... }) considered: a new list
--- without the entries it dominates, with it unless one dominates it or
--- has the same score. Returns the list and whether it changed.
function M.pareto_add(front, entry, direction, directions)
  for _, e in ipairs(front) do
    if M.dominates(direction, e.score, entry.score, directions) then
      return front, false
    end
    local same = type(e.score) == type(entry.score) and not M.better(direction, entry.score, e.score, directions)
      and not M.better(direction, e.score, entry.score, directions)
    if same then
      return front, false
    end
  end
  local out = {}
  for _, e in ipairs(front) do
    if not M.dominates(direction, entry.score, e.score, directions) then
      out[#out + 1] = e
    end
  end
  out[#out + 1] = entry
  table.sort(out, function(x, y) return M.better(direction, x.score, y.score, directions) end)
  return out, true
end

-- With objective.pareto, the candidates no other candidate of the run
-- dominates, kept across cycles (a phase of the cycle: init.lua installs it): in the event log when it
-- changes, and on the cycle's record (metadata.pareto) for the dashboards.
function M.pareto_phase(self, cy, candidates)
  local o = self.task.objective
  if not o.pareto then
    return
  end
  local changed = false
  for _, c in ipairs(candidates) do
    if c.score ~= nil then
      local added
      self.pareto, added = M.pareto_add(self.pareto, { cycle = cy.k, id = c.id, score = c.score,
        params = c.params, speedup = c.speedup, verdict = c.verdict }, o.direction, o.directions)
      changed = changed or added
    end
  end
  if changed then
    self:event { kind = "pareto", cycle = cy.k, front = self.pareto }
  end
  local front = {}
  for i, e in ipairs(self.pareto) do
    front[i] = { cycle = e.cycle, id = e.id, score = e.score, speedup = e.speedup }
  end
  cy.rec.metadata = cy.rec.metadata or {}
  cy.rec.metadata.pareto = front
end

return M
