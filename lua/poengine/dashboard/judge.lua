--- The sections for judging an optimizer run, drawn from the run's model
--- (poengine.runs.model: the event log read as candidates, their parents,
--- the accepted chain and each cycle's outcomes) that a source brings when
--- it is a run directory, a run's store, a collector on one, or a model:
---
---   best        the best over the original with its interval and where it
---               comes from, the scores, status, cost and the accepted chain
---   candidates  every candidate: what changed, how far it got, its verdict,
---               speedup and cost; its diff or parameters and its
---               validators' output a click away
---   evolution   each candidate under the baseline it was proposed from,
---               the accepted path marked
---   outcomes    per cycle: proposed, unusable, failed by stage, slower,
---               same, faster (a table and a stacked bar chart)
---
--- Shown first by default when the source has a model (sections.lua adds
--- them); this module holds the words each section uses for a candidate.
local fmt = require "poengine.dashboard.fmt"

local M = {}

M.names = { "best", "candidates", "evolution", "outcomes" }
M.names_set = {}
for _, name in ipairs(M.names) do
  M.names_set[name] = true
end

M.NONE = "no optimizer event log in this source (give a run directory, a run's store or a run model)"

--- Whether a loaded source has a run model (the sections' `when`).
function M.applies(src)
  return src.run_model ~= nil
end

--- A judging section: full width, shown only over a source with a run
--- model, its data(m, src) given that model (a source without one gets
--- `{ none = M.NONE }`). `def` holds name, title, data and the views.
function M.section(def)
  local data = def.data
  def.layout = def.layout or "full"
  def.when = M.applies
  def.data = function(src)
    local m = src.run_model
    if not m then
      return { none = M.NONE }
    end
    return data(m, src)
  end
  return def
end

--- What a candidate came to, one word that is also its CSS class:
--- "faster", "same", "slower" (timed), "unusable" (the reply could not be
--- used), "failed" (a validator rejected it) or "pending" (validated in
--- the cycle still going on, its verdict to come).
function M.outcome(c)
  if c.pending then
    return "pending" -- validated in the cycle still going on
  elseif c.malformed then
    return "unusable"
  elseif c.verdict == "faster" or c.verdict == "same" or c.verdict == "slower" then
    return c.verdict
  end
  return "failed"
end

--- How far a candidate got: "reply" (unusable), the stage it failed at,
--- or "timing" (it passed every validator and was timed).
function M.stage(c)
  if c.pending then
    return c.passed and "validated" or tostring(c.stage)
  elseif c.malformed then
    return "reply"
  elseif c.stage then
    return tostring(c.stage)
  elseif c.verdict then
    return "timing"
  end
  return fmt.none
end

--- The verdict in words: "faster, accepted", "same", "failed at tests",
--- "unusable".
function M.verdict(c)
  local o = M.outcome(c)
  if o == "pending" then
    return c.passed and "to be timed" or ("failed at " .. tostring(c.stage))
  end
  if o == "failed" then
    return c.stage and ("failed at " .. tostring(c.stage)) or "failed"
  end
  return c.accepted and (o .. ", accepted") or o
end

--- A candidate's LLM cost: "$0.0012 · 1,177 tokens", or a dash.
function M.cost(cost)
  if type(cost) ~= "table" then
    return fmt.none
  end
  local parts = {}
  if type(cost.usd) == "number" then
    parts[#parts + 1] = fmt.money(cost.usd)
  end
  if type(cost.tokens) == "number" then
    parts[#parts + 1] = fmt.int(cost.tokens) .. " tokens"
  end
  return #parts > 0 and table.concat(parts, " \194\183 ") or fmt.none
end

--- A candidate in one line for lists: "c2.3 same 0.974x [0.95, 1]".
function M.label(c)
  local text = c.id .. " " .. M.verdict(c)
  if type(c.speedup) == "number" then
    text = text .. " " .. fmt.speedup(c.speedup, c.ci_low, c.ci_high)
  end
  return text
end

return M
