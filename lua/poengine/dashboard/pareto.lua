--- The "Pareto front" dashboard section: with objective.pareto = true the
--- optimizer keeps the candidates no other candidate dominates and puts
--- the front, as of each cycle, on the cycle's record (metadata.pareto);
--- this section shows the latest one. Registered in sections.lua.
local fmt = require "poengine.dashboard.fmt"

local concat = table.concat

-- A score for the table: a number, or a tuple as (a, b).
local function score_text(s)
  if type(s) == "table" then
    local parts = {}
    for i, v in ipairs(s) do
      parts[i] = fmt.num(v, 4)
    end
    return "(" .. concat(parts, ", ") .. ")"
  end
  return fmt.num(s, 4)
end

return {
  name = "pareto",
  title = "Pareto front",
  layout = "full",
  data = function(src)
    local cycles = src.cycles
    for i = #cycles, 1, -1 do
      local meta = cycles[i].metadata
      if type(meta) == "table" and type(meta.pareto) == "table" then
        local front = {}
        for j, e in ipairs(meta.pareto) do
          front[j] = { cycle = e.cycle, id = e.id ~= nil and tostring(e.id) or nil, score = e.score,
            speedup = type(e.speedup) == "number" and e.speedup or nil }
        end
        return { cycle_id = tostring(cycles[i].cycle_id), front = require("poengine").json.array(front) }
      end
    end
    return { front = require("poengine").json.array({}) }
  end,
  view = function(d)
    local rows = {}
    for i, e in ipairs(d.front) do
      rows[i] = { e.id or fmt.none, e.cycle ~= nil and tostring(e.cycle) or fmt.none, score_text(e.score),
        e.speedup and (fmt.num(e.speedup, 3) .. "x") or fmt.none }
    end
    return {
      { "table", empty = "no Pareto front: the task does not set objective.pareto",
        columns = { { "candidate", "left", flex = true }, { "cycle", "right" }, { "score", "right" },
          { "speedup", "right" } },
        rows = rows },
    }
  end,
}
