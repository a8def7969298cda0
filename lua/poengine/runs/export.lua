--- A run's model (poengine.runs.model) as a document: JSON (the model
--- itself, times of day in RFC 3339, lists always JSON arrays) or CSV (RFC
--- 4180, one row per candidate, a header first).
local po = require "poengine"
local fmt = require "poengine.dashboard.fmt"
local escape = require "poengine.dashboard.escape"

local M = {}

-- Fields that hold lists: written as arrays even when empty.
local LISTS = { candidates = true, chain = true, cycle_outcomes = true, results = true, errors = true }
-- Unix times that the exports write as RFC 3339.
local TIMES = { started = true, updated = true }

local function copy(v, key)
  if type(v) ~= "table" then
    if TIMES[key] and type(v) == "number" then
      return fmt.rfc3339(v)
    end
    return v
  end
  local out = {}
  for k, x in pairs(v) do
    out[k] = copy(x, k)
  end
  if LISTS[key] then
    return po.json.array(out)
  end
  return out
end

--- The model as plain JSON-ready values: a copy with its lists marked as
--- arrays and `started`/`updated` as RFC 3339 text (what the JSON export
--- encodes, and what a server can send).
---@param m table
---@return table
function M.document(m)
  return copy(m)
end

--- The CSV export's columns, in order.
M.columns = { "run", "cycle", "id", "parent", "change", "stage", "verdict", "speedup", "ci_low", "ci_high", "runs",
  "accepted", "malformed", "score", "cost_usd", "cost_tokens", "time" }

local function cell(v)
  if type(v) == "number" then
    return fmt.exact(v)
  elseif type(v) == "table" then
    return escape.csv(po.json.encode(v, { sort_keys = true })) -- a tuple score
  elseif v == nil then
    return ""
  end
  return escape.csv(v)
end

local function row(m, c)
  local cost = c.cost or {}
  local values = { m.id, c.cycle, c.id, c.parent, c.change, c.stage, c.verdict, c.speedup, c.ci_low, c.ci_high,
    c.runs, c.accepted, c.malformed, c.score, cost.usd, cost.tokens, c.time }
  local cells = {}
  for i = 1, #M.columns do
    cells[i] = cell(values[i])
  end
  return table.concat(cells, ",")
end

--- The model as "json" or "csv" text (raises for another format: the
--- caller names the formats).
---@param m table
---@param format "json"|"csv"
---@return string
function M.text(m, format)
  if type(m) ~= "table" then
    error("poengine.runs.export: model must be a table, got " .. type(m), 3)
  end
  if format == "json" then
    return po.json.encode(M.document(m), { sort_keys = true, indent = true }) .. "\n"
  elseif format == "csv" then
    local lines = { table.concat(M.columns, ",") }
    for _, c in ipairs(m.candidates or {}) do
      lines[#lines + 1] = row(m, c)
    end
    return table.concat(lines, "\r\n") .. "\r\n"
  end
  error("poengine.runs.export: format must be 'json' or 'csv', got " .. tostring(format), 3)
end

return M
