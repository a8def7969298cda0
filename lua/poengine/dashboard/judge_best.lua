--- The "best" section of a run's judging dashboard: how much better the
--- best is than the original (direction-aware, with its interval, and
--- whether a final side-by-side check or only the cycles' scores say so),
--- the two scores, the run's status and cost, and the accepted chain from
--- the original to the best with each step's speedup.
local fmt = require "poengine.dashboard.fmt"
local judge = require "poengine.dashboard.judge"

local function json_array(t)
  return require("poengine").json.array(t)
end

local ARROW = " \226\134\146 "

-- "original → c1.1 (43x [40, 44.4]) → c3.2 (1.1x)"
local function chain_text(steps)
  local parts = {}
  for i, s in ipairs(steps) do
    parts[i] = i == 1 and s.id or (s.id .. " (" .. fmt.speedup(s.speedup, s.ci_low, s.ci_high) .. ")")
  end
  return table.concat(parts, ARROW)
end

return judge.section {
  name = "best",
  title = "Best over the original",
  data = function(m)
    local by_id = {}
    for _, c in ipairs(m.candidates) do
      by_id[c.id] = c
    end
    local steps = {}
    for i, id in ipairs(m.chain) do
      local c = by_id[id] or {}
      steps[i] = { id = id, cycle = c.cycle, change = c.change, speedup = c.speedup, ci_low = c.ci_low,
        ci_high = c.ci_high, verdict = c.verdict }
    end
    local best = m.best
    return {
      task = m.task, method = m.method, direction = m.direction, status = m.status, cycles = m.cycles,
      original_score = m.original_score, best_score = m.best_score,
      best = best and { speedup = best.speedup, ci_low = best.ci_low, ci_high = best.ci_high,
        verdict = best.verdict, source = best.source } or nil,
      warning = m.warning, cost = { usd = m.cost.usd, tokens = m.cost.tokens },
      chain = json_array(steps), chain_text = chain_text(steps),
    }
  end,
  view = function(d)
    if d.none then
      return { { "note", text = d.none } }
    end
    local b = d.best
    local how, detail
    if not b then
      how, detail = fmt.none, "no score for the best yet"
    elseif b.source == "final check" then
      how = b.verdict == "faster" and "final check: faster"
        or ("final check: NOT CONFIRMED (" .. tostring(b.verdict) .. ")")
      detail = "the best and the original timed side by side"
    else
      how, detail = "cycle scores", "no final check yet: no interval"
    end
    local blocks = {
      { "kv", tiles = true, items = {
        { "Best over the original", b and fmt.speedup(b.speedup, b.ci_low, b.ci_high) or fmt.none,
          d.direction == "max" and "higher score: better" or "lower score: better" },
        { "Measured by", how, detail },
        { "Score", fmt.num(d.original_score, 4) .. ARROW .. fmt.num(d.best_score, 4), "original" .. ARROW
          .. "best" },
        { "Run", tostring(d.status) .. ", " .. fmt.int(d.cycles or 0) .. (d.cycles == 1 and " cycle" or " cycles"),
          (d.task and tostring(d.task) or "") .. (d.method and (" \194\183 " .. tostring(d.method)) or "") },
        { "LLM cost", fmt.money(d.cost.usd), fmt.int(d.cost.tokens or 0) .. " tokens" },
      } },
    }
    if d.warning then
      blocks[#blocks + 1] = { "note", text = "Warning: " .. tostring(d.warning) }
    end
    blocks[#blocks + 1] = { "note", text = "Accepted chain: " .. d.chain_text }
    local rows = {}
    for i = 2, #d.chain do
      local s = d.chain[i]
      rows[#rows + 1] = { s.cycle ~= nil and tostring(s.cycle) or fmt.none, s.id, s.change or "",
        fmt.speedup(s.speedup, s.ci_low, s.ci_high), s.verdict or fmt.none }
    end
    blocks[#blocks + 1] = { "table", title = "Accepted candidates",
      empty = "nothing accepted: the original is the best",
      columns = { "cycle", "candidate", { "change", "left", flex = true }, { "speedup", "right" }, "verdict" },
      rows = rows }
    return blocks
  end,
}
