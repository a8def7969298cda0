--- The "outcomes" section of a run's judging dashboard: per cycle, how many
--- candidates were proposed, unusable, failed (by stage), slower, same and
--- faster, as a table and a stacked bar chart (one bar per cycle).
local judge = require "poengine.dashboard.judge"

local function json_array(t)
  return require("poengine").json.array(t)
end

local KINDS = { "unusable", "failed", "slower", "same", "faster" }
-- Palette entries (poengine.dashboard.chart): purple, red, amber, cyan, green.
local COLOURS = { unusable = 5, failed = 4, slower = 2, same = 6, faster = 3 }

-- "build 2, tests 1": failures by stage, stages sorted by name.
local function by_stage(failed)
  local stages, total = {}, 0
  for stage, n in pairs(failed or {}) do
    stages[#stages + 1] = tostring(stage)
    total = total + n
  end
  table.sort(stages)
  for i, stage in ipairs(stages) do
    stages[i] = stage .. " " .. tostring(failed[stage])
  end
  return total, table.concat(stages, ", ")
end

return judge.section {
  name = "outcomes",
  title = "Outcomes per cycle",
  data = function(m)
    local rows = {}
    for i, o in ipairs(m.cycle_outcomes) do
      local total, stages = by_stage(o.failed)
      rows[i] = { cycle = o.cycle, proposed = o.proposed, unusable = o.unusable, failed = total,
        failed_stages = stages, slower = o.slower, same = o.same, faster = o.faster }
    end
    return { cycles = json_array(rows) }
  end,
  view = function(d, ctx)
    if d.none then
      return { { "note", text = d.none } }
    end
    local fmt = ctx.fmt
    local rows, labels, series = {}, {}, {}
    for j, k in ipairs(KINDS) do
      series[j] = { name = k, values = {}, colour = COLOURS[k] }
    end
    for i, c in ipairs(d.cycles) do
      rows[i] = { tostring(c.cycle), fmt.int(c.proposed), fmt.int(c.unusable),
        c.failed > 0 and (fmt.int(c.failed) .. " (" .. c.failed_stages .. ")") or "0", fmt.int(c.slower),
        fmt.int(c.same), fmt.int(c.faster) }
      labels[i] = tostring(c.cycle)
      for j, k in ipairs(KINDS) do
        series[j].values[i] = c[k]
      end
    end
    return {
      { "table", empty = "no cycle recorded yet", rows = rows, columns = { { "cycle", "right" },
        { "proposed", "right" }, { "unusable", "right" }, { "failed", "left", flex = true }, { "slower", "right" },
        { "same", "right" }, { "faster", "right" } } },
      { "chart", chart = "bar", options = { title = "Candidates per cycle by outcome", labels = labels,
        series = series, x_label = "cycle", y_label = "candidates", y_min = 0, width = 1000, height = 240,
        empty = "no cycle recorded yet" } },
    }
  end,
}
