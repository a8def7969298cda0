--- The "run" dashboard section: what a person judging an optimization run
--- looks for (the best's speedup over the original with its interval, the
--- final check's verdict beside the accepted chain's product, the accepted
--- candidates in order, and each cycle's outcomes). A section spec as
--- po.dashboard.section takes; sections.lua adds it to the built-in list.
local fmt = require "poengine.dashboard.fmt"
local stats = require "poengine.metrics.stats"

local num = stats.num
local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring

local function json_array(t)
  return require("poengine").json.array(t)
end

local finite = stats.finite

local speedup_text = fmt.speedup

local OUTCOMES = { "proposed", "unusable", "slower", "same", "faster" }

-- "build 2, test 1": a cycle's failures by stage, in stage order by name.
local function failed_text(failed)
  local stages = {}
  for stage in pairs(type(failed) == "table" and failed or {}) do
    stages[#stages + 1] = tostring(stage)
  end
  table.sort(stages)
  local total = 0
  for i, stage in ipairs(stages) do
    local n = num(failed[stage])
    total = total + n
    stages[i] = stage .. " " .. fmt.int(n)
  end
  return total, table.concat(stages, ", ")
end

return {
  name = "run",
  title = "Run verdict",
  layout = "full",
  -- A run's event log gives the judging sections, which say all this and more.
  when = function(src)
    return src.run_model == nil
  end,
  data = function(src)
    local run = src.run
    local final = type(run.final) == "table" and run.final or nil
    local accepted = {}
    if type(run.accepted) == "table" then
      for i, a in ipairs(run.accepted) do
        accepted[i] = a
      end
    end
    local cycles = {}
    local from_cycles = #accepted == 0
    for _, r in ipairs(src.cycles) do
      local meta = type(r.metadata) == "table" and r.metadata or {}
      local o = meta.outcomes
      if type(o) == "table" then
        local total, stages = failed_text(o.failed)
        local id = meta.cycle or r.cycle_id
        local row = { cycle = id ~= nil and tostring(id) or nil, failed = total,
          failed_stages = stages, accepted = type(meta.accepted) == "table" and meta.accepted.id or nil }
        for _, k in ipairs(OUTCOMES) do
          row[k] = num(o[k])
        end
        cycles[#cycles + 1] = row
      end
      if from_cycles and type(meta.accepted) == "table" then
        -- A run still going: its accepted chain so far, from the cycles.
        local a = {}
        for k, v in pairs(meta.accepted) do
          a[k] = v
        end
        a.cycle = meta.cycle or r.cycle_id
        accepted[#accepted + 1] = a
      end
    end
    local chain = finite(run.chain_speedup) and run.chain_speedup or nil
    if not chain and #accepted > 0 then
      chain = 1
      for _, a in ipairs(accepted) do
        chain = chain * (finite(a.speedup) and a.speedup or 1)
      end
    end
    local list = {}
    for i, a in ipairs(accepted) do
      list[i] = { cycle = a.cycle ~= nil and tostring(a.cycle) or nil, id = a.id ~= nil and tostring(a.id) or nil,
        change = type(a.change) == "string" and a.change or "", speedup = finite(a.speedup) and a.speedup or nil,
        ci_low = finite(a.ci_low) and a.ci_low or nil, ci_high = finite(a.ci_high) and a.ci_high or nil,
        verdict = a.verdict ~= nil and tostring(a.verdict) or nil,
        confirmed = a.confirmed ~= nil and tostring(a.confirmed) or nil }
    end
    local warning = type(run.warning) == "string" and run.warning or nil
    return {
      direction = run.direction,
      final = final and { verdict = final.verdict ~= nil and tostring(final.verdict) or nil,
        speedup = finite(final.speedup) and final.speedup or nil, ci_low = finite(final.ci_low) and final.ci_low or nil,
        ci_high = finite(final.ci_high) and final.ci_high or nil } or nil,
      confirmed = final ~= nil and final.verdict == "faster",
      chain_speedup = chain,
      warning = warning,
      accepted = json_array(list),
      cycles = json_array(cycles),
    }
  end,
  view = function(d)
    local f = d.final
    local verdict
    if f then
      verdict = f.verdict == "faster" and "faster: confirmed" or ("NOT CONFIRMED: " .. tostring(f.verdict))
    else
      verdict = #d.accepted > 0 and "no final check yet" or "nothing accepted"
    end
    local blocks = {
      { "kv", tiles = true, items = {
        { "Speedup of the best", f and speedup_text(f.speedup, f.ci_low, f.ci_high) or fmt.none,
          "over the original, timed side by side" },
        { "Final check", verdict },
        { "Chain product", speedup_text(d.chain_speedup), "the accepted speedups multiplied" },
        { "Objective", d.direction == "min" and "minimise" or "maximise" },
      } },
    }
    if d.warning then
      blocks[#blocks + 1] = { "note", text = "Warning: " .. d.warning }
    end
    local rows = {}
    for i, a in ipairs(d.accepted) do
      rows[i] = { a.cycle or fmt.none, a.id or fmt.none, a.change, speedup_text(a.speedup, a.ci_low, a.ci_high),
        a.verdict or fmt.none }
    end
    blocks[#blocks + 1] = { "table", title = "Accepted candidates", empty = "no candidate accepted",
      columns = { "cycle", "candidate", { "change", "left", flex = true }, { "speedup", "right" }, "verdict" },
      rows = rows }
    local crows = {}
    for i, c in ipairs(d.cycles) do
      crows[i] = { c.cycle or fmt.none, fmt.int(c.proposed), fmt.int(c.unusable),
        c.failed > 0 and (fmt.int(c.failed) .. " (" .. c.failed_stages .. ")") or "0", fmt.int(c.slower),
        fmt.int(c.same), fmt.int(c.faster) }
    end
    blocks[#blocks + 1] = { "table", title = "Candidates per cycle", empty = "no cycle outcomes in this source",
      columns = { "cycle", { "proposed", "right" }, { "unusable", "right" }, { "failed", "left", flex = true }, { "slower", "right" }, { "same", "right" }, { "faster", "right" } },
      rows = crows }
    return blocks
  end,
}
