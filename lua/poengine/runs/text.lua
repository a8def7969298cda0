--- Runs as text for a terminal (`poengine runs list`, `show`, `compare`):
--- aligned tables (the dashboards' text tables), figures in the
--- objective's direction ("1.93x faster [1.88, 1.99]"), and whatever a run
--- recorded escaped, so that no byte of it reaches the terminal as a
--- control sequence.
local fmt = require "poengine.dashboard.fmt"
local escape = require "poengine.dashboard.escape"
local blocks = require "poengine.dashboard.blocks"

local M = {}

local format, concat = string.format, table.concat
local isnum = fmt.isnum

local WORDS = { min = { "faster", "slower" }, max = { "higher", "lower" } }

-- " [1.88, 1.99]", or "" without both ends.
local function interval(lo, hi)
  return isnum(lo) and isnum(hi) and format(" [%.2f, %.2f]", lo, hi) or ""
end

--- A speedup (how many times better, as the optimizer reports it) in the
--- objective's direction: "1.93x faster [1.88, 1.99]", "1.25x slower
--- [1.11, 1.43]" for 0.8, "1.00x (the same)"; a dash without a figure.
---@param s number?
---@param lo number?
---@param hi number?
---@param direction? "min"|"max"
---@return string
function M.speedup(s, lo, hi, direction)
  if not isnum(s) or s <= 0 then
    return fmt.none
  end
  local words = WORDS[direction] or WORDS.min
  local word = words[1]
  if s < 1 then
    s, lo, hi, word = 1 / s, isnum(hi) and hi > 0 and 1 / hi or nil, isnum(lo) and lo > 0 and 1 / lo or nil, words[2]
  end
  local text = format("%.2fx %s", s, word)
  if format("%.2f", s) == "1.00" then
    text = "1.00x (the same)"
  end
  return text .. interval(lo, hi)
end

-- A speedup cell of a candidates table: "1.93x [1.88, 1.99]" (the verdict
-- column beside it says which way).
local function ratio(s, lo, hi)
  return isnum(s) and format("%.2fx", s) .. interval(lo, hi) or fmt.none
end

--- "$0.0123, 1,234 tokens".
---@param cost? { usd: number, tokens: number }
function M.cost(cost)
  if type(cost) ~= "table" then
    return fmt.none
  end
  return fmt.money(cost.usd or 0) .. ", " .. fmt.int(cost.tokens or 0) .. " tokens"
end

--- A Unix time as "2026-12-04 21:47:52" (UTC).
function M.time(t)
  return isnum(t) and os.date("!%Y-%m-%d %H:%M:%S", math.floor(t)) or fmt.none
end

local function str(v)
  return escape.text(v == nil and fmt.none or v)
end

local function table_text(columns, rows, width, empty)
  return blocks.text({ { "table", columns = columns, rows = rows, empty = empty } }, { width = width }) .. "\n"
end

-- "label  value" lines, the labels padded to one width.
local function kv(items)
  local w = 0
  for _, it in ipairs(items) do
    w = math.max(w, fmt.width(it[1]))
  end
  local out = {}
  for _, it in ipairs(items) do
    out[#out + 1] = "  " .. fmt.pad(it[1], w) .. "  " .. str(it[2])
  end
  return concat(out, "\n") .. "\n"
end

-- The best over the original with where the figure comes from.
local function best_text(m)
  local b = m.best
  if not b then
    return fmt.none
  end
  local text = M.speedup(b.speedup, b.ci_low, b.ci_high, m.direction)
  if b.source == "final check" and m.final then
    text = text .. format(" by the final check (%s, %s runs each)", str(m.final.verdict), tostring(m.final.runs or "?"))
  elseif b.source then
    text = text .. " by the cycles' scores"
  end
  return text
end

--- The method a run used: a Lua function's address says nothing to a
--- reader, so it is "a Lua function".
function M.method(m)
  if m.method == "function" or type(m.method) == "string" and m.method:match("^function: ") then
    return "a Lua function"
  end
  return m.method
end

--- The list of runs (summaries as poengine.runs.list gives them) as an
--- aligned table; the unreadable ones with their reasons under it.
---@param list table[]
---@param width integer
---@return string
function M.list(list, width)
  local rows, notes = {}, {}
  for _, s in ipairs(list) do
    if s.status == "unreadable" then
      rows[#rows + 1] = { str(s.id), fmt.none, fmt.none, fmt.none, "unreadable", fmt.none, fmt.none }
      notes[#notes + 1] = "  " .. str(s.id) .. ": " .. str(s.reason)
    else
      rows[#rows + 1] = { str(s.id), str(s.task), M.time(s.started), fmt.int(s.cycles), s.status,
        s.best and M.speedup(s.best.speedup, s.best.ci_low, s.best.ci_high, s.direction) or fmt.none, M.cost(s.cost) }
    end
  end
  local text = table_text({ "id", "task", "started (UTC)", { "cycles", "right" }, "status", "best", "cost" }, rows,
    width, "no runs")
  if #notes > 0 then
    text = text .. "unreadable:\n" .. concat(notes, "\n") .. "\n"
  end
  return text
end

-- "check 1, build 2": failures by stage, stages in name order.
local function failed_text(failed)
  local stages = {}
  for stage, n in pairs(failed or {}) do
    stages[#stages + 1] = str(stage) .. " " .. fmt.int(n)
  end
  table.sort(stages)
  return #stages > 0 and concat(stages, ", ") or "0"
end

--- The stage a candidate reached: "proposal" (its change could not be
--- used), the validator it failed at, or "timing" (it was timed).
function M.stage(c)
  if c.pending then
    return c.passed and "to be timed" or tostring(c.stage or fmt.none)
  elseif c.malformed then
    return "proposal"
  elseif c.verdict then
    return "timing"
  end
  return c.stage and tostring(c.stage) or fmt.none
end

local function chain_text(m)
  local ids = {}
  for i, id in ipairs(m.chain or {}) do
    ids[i] = str(id)
  end
  return concat(ids, " \226\134\146 ")
end

local function scores(m)
  local result = require "poengine.optimizer.result"
  if m.original_score == nil and m.best_score == nil then
    return fmt.none
  end
  return "original " .. result.format_score(m.original_score) .. ", best " .. result.format_score(m.best_score)
    .. (m.direction == "max" and " (higher is better)" or " (lower is better)")
end

--- One run: its summary, the accepted chain, each cycle's outcomes and the
--- candidates.
---@param m table the model
---@param width integer
---@return string
function M.show(m, width)
  local items = {
    { "task", (m.task or fmt.none) .. (m.method and (" (" .. M.method(m) .. ")") or "") },
    { "directory", m.dir }, { "status", m.status }, { "started", M.time(m.started) .. " UTC" },
    { "updated", M.time(m.updated) .. " UTC" }, { "cycles", fmt.int(m.cycles) }, { "best", best_text(m) },
    { "scores", scores(m) }, { "cost", M.cost(m.cost) },
  }
  if m.warning then
    items[#items + 1] = { "warning", m.warning }
  end
  local out = { "run " .. str(m.id) .. "\n", kv(items), "\naccepted chain: " .. chain_text(m) .. "\n" }
  local rows = {}
  for _, o in ipairs(m.cycle_outcomes or {}) do
    rows[#rows + 1] = { fmt.int(o.cycle), fmt.int(o.proposed), fmt.int(o.unusable), failed_text(o.failed),
      fmt.int(o.slower), fmt.int(o.same), fmt.int(o.faster) }
  end
  out[#out + 1] = "\ncycle outcomes\n" .. table_text({ { "cycle", "right" }, { "proposed", "right" },
    { "unusable", "right" }, "failed", { "slower", "right" }, { "same", "right" }, { "faster", "right" } },
    rows, width, "no cycle recorded")
  rows = {}
  for _, c in ipairs(m.candidates or {}) do
    rows[#rows + 1] = { fmt.int(c.cycle), str(c.id) .. (c.accepted and " *" or ""), str(c.change), M.stage(c),
      c.pending and "pending" or str(c.verdict), ratio(c.speedup, c.ci_low, c.ci_high),
      c.cost and M.cost(c.cost) or fmt.none }
  end
  out[#out + 1] = "\ncandidates (* accepted; speedup: times better than its baseline)\n"
    .. table_text({ { "cycle", "right" }, "id", { "change", "left", flex = true }, "stage", "verdict",
      { "speedup", "right" }, "cost" }, rows, width, "no candidate recorded")
  return concat(out)
end

-- A run's outcomes summed over its cycles.
local function totals(m)
  local t = { proposed = 0, unusable = 0, failed = {}, slower = 0, same = 0, faster = 0 }
  for _, o in ipairs(m.cycle_outcomes or {}) do
    for _, k in ipairs { "proposed", "unusable", "slower", "same", "faster" } do
      t[k] = t[k] + (o[k] or 0)
    end
    for stage, n in pairs(o.failed or {}) do
      t.failed[stage] = (t.failed[stage] or 0) + n
    end
  end
  return t
end

--- Two runs side by side.
---@param a table a model
---@param b table a model
---@param width integer
---@return string
function M.compare(a, b, width)
  local ta, tb = totals(a), totals(b)
  local function row(label, f)
    return { label, f(a, ta), f(b, tb) }
  end
  local function field(k)
    return function(m)
      return str(m[k])
    end
  end
  local rows = {
    row("task", field("task")), row("method", function(m) return str(M.method(m)) end), row("status", field("status")),
    row("started (UTC)", function(m) return M.time(m.started) end),
    row("cycles", function(m) return fmt.int(m.cycles) end),
    row("best", function(m) return m.best and M.speedup(m.best.speedup, m.best.ci_low, m.best.ci_high, m.direction)
      or fmt.none end),
    row("best measured by", function(m) return m.best and m.best.source or fmt.none end),
    row("cost", function(m) return M.cost(m.cost) end),
    row("chain length", function(m) return fmt.int(#(m.chain or { 1 }) - 1) end),
    row("chain", chain_text),
  }
  for _, k in ipairs { "proposed", "unusable" } do
    rows[#rows + 1] = row(k, function(_, t) return fmt.int(t[k]) end)
  end
  rows[#rows + 1] = row("failed", function(_, t) return failed_text(t.failed) end)
  for _, k in ipairs { "slower", "same", "faster" } do
    rows[#rows + 1] = row(k, function(_, t) return fmt.int(t[k]) end)
  end
  return table_text({ "", str(a.id), str(b.id) }, rows, width)
end

--- The two bests timed against each other (poengine.runs.versus's result).
---@param r table
---@param direction "min"|"max"
---@return string
function M.versus(r, direction)
  local result = require "poengine.optimizer.result"
  return format("timed side by side: %s's best beside %s's: %s\n"
    .. "  verdict %s (%s, %s runs each); medians: %s %s, %s %s\n", str(r.b), str(r.a),
    M.speedup(r.speedup, r.ci_low, r.ci_high, direction), str(r.verdict), str(r.rule), tostring(r.runs or "?"),
    str(r.a), result.format_score(r.a_median), str(r.b), result.format_score(r.b_median))
end

return M
